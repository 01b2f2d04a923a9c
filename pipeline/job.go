package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/recorder"
	"github.com/roomtape/roomtape/signalling"
)

// JobVersion is the version of the job JSON schema this code reads and writes.
const JobVersion = 1

// Limits of a job's free-form parts.
const (
	MaxJobIDLen       = 64
	MaxLabels         = 16
	MaxLabelKeyLen    = 64
	MaxLabelValueLen  = 256
	MaxJobSize        = 16 << 10 // bytes of job JSON
	maxOutputPrefix   = 200
	maxPrefixElements = 8
	// MaxJobDuration is the hard ceiling of options.maxDuration (a worker may allow less).
	MaxJobDuration = 7 * 24 * time.Hour
)

// Job is one recording request, as JSON on the jobs subject. It never carries secrets: Profile
// names a signalling service (URL + credentials) from the worker's configuration.
//
//	{"version":1,"id":"standup-2026-11-03","channel":"team/standup","profile":"default",
//	 "options":{"maxDuration":"1h","stopWhenEmpty":"2m","codecs":["opus","vp8"],
//	            "captureMessages":true,"outputPrefix":"acme/2026","announce":true},
//	 "labels":{"meeting":"standup"}}
type Job struct {
	Version int `json:"version"`
	// ID is the client's idempotency key and the recording id: 1-64 of [A-Za-z0-9_-].
	ID      string `json:"id"`
	Channel string `json:"channel"`
	// Profile names the signalling profile; empty takes the worker's jobs.profile.
	Profile string     `json:"profile,omitempty"`
	Options JobOptions `json:"options"`
	// Labels are echoed in every event of the job (at most 16; keys 1-64 of [A-Za-z0-9_.-/]).
	Labels map[string]string `json:"labels,omitempty"`
}

// JobOptions tune one recording. Zero values take the worker's jobs defaults.
type JobOptions struct {
	// MaxDuration ends the recording this long after it first started ("1h"; at least 1s).
	MaxDuration Duration `json:"maxDuration,omitempty"`
	// StopWhenEmpty ends it once nobody else has been in the channel this long ("0s" = never).
	StopWhenEmpty *Duration `json:"stopWhenEmpty,omitempty"`
	// Codecs restricts what is negotiated (opus, vp8, vp9, av1, h264), in preference order.
	Codecs []string `json:"codecs,omitempty"`
	// CaptureMessages writes channel and direct messages to messages.jsonl.
	CaptureMessages *bool `json:"captureMessages,omitempty"`
	// OutputPrefix is a relative folder under the worker's out_dir ("acme/2026").
	OutputPrefix string `json:"outputPrefix,omitempty"`
	// Announce publishes roomtape.recording started/stopped on the channel.
	Announce *bool `json:"announce,omitempty"`
	// Mode is record (files only), monitor (quality and alerts, no media files) or both;
	// empty takes the worker's jobs.mode.
	Mode string `json:"mode,omitempty"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("90s", "1h30m").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a non-negative Go duration string; numbers are refused (ambiguous unit).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"90s\" or \"1h\", got %s", truncate(string(b), 40))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as \"90s\" or \"1h\", got %q", truncate(s, 40))
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// DecodeJob strictly decodes and validates a job: unknown fields, trailing data, wrong types,
// a missing or unknown version and invalid values all fail with a *JobError naming the field.
func DecodeJob(data []byte) (Job, error) {
	var j Job
	if len(data) > MaxJobSize {
		return j, &JobError{Msg: fmt.Sprintf("%d bytes, at most %d", len(data), MaxJobSize)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return Job{}, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Job{}, &JobError{Msg: "trailing data after the JSON object"}
	}
	if err := j.Validate(); err != nil {
		return Job{}, err
	}
	return j, nil
}

// decodeError turns encoding/json errors into a JobError with the field path.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(document)"
		}
		return &JobError{Field: field, Msg: fmt.Sprintf("want %s, got JSON %s", te.Type, te.Value)}
	case errors.As(err, &se):
		return &JobError{Msg: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &JobError{Msg: "empty or truncated JSON"}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &JobError{Field: strings.Trim(f, `"`), Msg: "unknown field"}
	}
	// Errors returned by Duration.UnmarshalJSON carry no field; name the likely one.
	return &JobError{Msg: strings.TrimPrefix(msg, "json: ")}
}

// Validate checks every field of a decoded job.
func (j Job) Validate() error {
	var errs []*JobError
	bad := func(field, format string, args ...any) {
		errs = append(errs, &JobError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if j.Version != JobVersion {
		if j.Version == 0 {
			bad("version", "required (this worker reads version %d)", JobVersion)
		} else {
			bad("version", "%d is not supported (this worker reads version %d)", j.Version, JobVersion)
		}
	}
	if err := ValidateJobID(j.ID); err != nil {
		bad("id", "%v", err)
	}
	if code := signalling.ValidateChannel(j.Channel); code != "" {
		bad("channel", "%q: %s", truncate(j.Channel, 64), code)
	}
	if j.Profile != "" && (len(j.Profile) > 64 || strings.ContainsFunc(j.Profile, func(r rune) bool { return r < 0x21 || r > 0x7e })) {
		bad("profile", "%q: want a configured profile name", truncate(j.Profile, 64))
	}
	o := j.Options
	if d := o.MaxDuration.D(); d != 0 && (d < time.Second || d > MaxJobDuration) {
		bad("options.maxDuration", "%s: want between 1s and %s", d, MaxJobDuration)
	}
	if o.StopWhenEmpty != nil && o.StopWhenEmpty.D() != 0 && o.StopWhenEmpty.D() < time.Second {
		bad("options.stopWhenEmpty", "%s: want 0s (never) or at least 1s", o.StopWhenEmpty.D())
	}
	if o.Codecs != nil && len(o.Codecs) == 0 {
		bad("options.codecs", "empty list: omit it to use the worker's codecs")
	}
	seen := map[string]bool{}
	for _, c := range o.Codecs {
		switch {
		case !slices.Contains(bot.DefaultCodecs, c):
			bad("options.codecs", "unknown codec %q (want %s)", truncate(c, 32), strings.Join(bot.DefaultCodecs, ", "))
		case seen[c]:
			bad("options.codecs", "%q listed twice", c)
		}
		seen[c] = true
	}
	if o.Mode != "" {
		if _, err := ParseMode(o.Mode); err != nil {
			bad("options.mode", "%q: want record, monitor or both", truncate(o.Mode, 32))
		}
	}
	if err := validateOutputPrefix(o.OutputPrefix); err != nil {
		bad("options.outputPrefix", "%v", err)
	}
	if len(j.Labels) > MaxLabels {
		bad("labels", "%d labels, at most %d", len(j.Labels), MaxLabels)
	}
	keys := make([]string, 0, len(j.Labels))
	for k := range j.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := j.Labels[k]
		if len(k) == 0 || len(k) > MaxLabelKeyLen || strings.ContainsFunc(k, func(r rune) bool { return !labelKeyRune(r) }) {
			bad("labels", "key %q: want 1-%d of A-Z a-z 0-9 _ . - /", truncate(k, 80), MaxLabelKeyLen)
		}
		if len(v) > MaxLabelValueLen || !utf8.ValidString(v) {
			bad("labels."+truncate(k, 64), "value: want valid UTF-8 of at most %d bytes", MaxLabelValueLen)
		}
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	// One line listing every problem (it travels in events and TermWithReason).
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = strings.TrimPrefix(e.Error(), "invalid job: ")
	}
	return &JobError{Msg: strings.Join(parts, "; ")}
}

// ValidateJobID checks a job id: 1-64 of [A-Za-z0-9_-]. It names the recording folder, the KV
// key and the last token of roomtape.events.<id>, so nothing else is allowed.
func ValidateJobID(id string) error {
	if id == "" {
		return errors.New("required")
	}
	if len(id) > MaxJobIDLen {
		return fmt.Errorf("%d characters, at most %d", len(id), MaxJobIDLen)
	}
	for _, r := range id {
		if !idRune(r) {
			return fmt.Errorf("%q: use only A-Z a-z 0-9 _ -", truncate(id, 80))
		}
	}
	return nil
}

func idRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

func labelKeyRune(r rune) bool { return idRune(r) || r == '.' || r == '/' }

func validateOutputPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > maxOutputPrefix {
		return fmt.Errorf("%d bytes, at most %d", len(p), maxOutputPrefix)
	}
	parts := strings.Split(p, "/")
	if len(parts) > maxPrefixElements {
		return fmt.Errorf("%d folders, at most %d", len(parts), maxPrefixElements)
	}
	for _, e := range parts {
		if e == "" || e == "." || e == ".." || recorder.SafeName(e) != e {
			return fmt.Errorf("%q: want a relative path of folder names made of A-Z a-z 0-9 . _ - (no leading dot)", truncate(p, 80))
		}
	}
	return nil
}

// Encode writes the job as JSON (for submitting).
func (j Job) Encode() ([]byte, error) {
	if j.Version == 0 {
		j.Version = JobVersion
	}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(j)
}

// jobIDOf recovers a job id from an undecodable message, for the failed event and state: the
// Nats-Msg-Id header first, then a lenient read of "id". "" when neither is a valid id.
func jobIDOf(data []byte, msgID string) string {
	if ValidateJobID(msgID) == nil {
		return msgID
	}
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &probe) == nil && ValidateJobID(probe.ID) == nil {
		return probe.ID
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
