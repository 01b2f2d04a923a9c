package pipeline_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/roomtape/roomtape/pipeline"
)

func TestDecodeJobValid(t *testing.T) {
	j, err := pipeline.DecodeJob([]byte(`{"version":1,"id":"standup-42","channel":"team/standup","profile":"acme",
		"options":{"maxDuration":"1h30m","stopWhenEmpty":"0s","codecs":["opus","vp8"],"captureMessages":false,
		"outputPrefix":"acme/2026","announce":false,"mode":"monitor"},"labels":{"meeting":"standup","acme.io/team":"core"}}`))
	if err != nil {
		t.Fatal(err)
	}
	o := j.Options
	if j.ID != "standup-42" || j.Channel != "team/standup" || j.Profile != "acme" || o.MaxDuration.D() != 90*time.Minute ||
		o.StopWhenEmpty == nil || o.StopWhenEmpty.D() != 0 || len(o.Codecs) != 2 || *o.CaptureMessages || *o.Announce ||
		o.OutputPrefix != "acme/2026" || o.Mode != "monitor" || j.Labels["acme.io/team"] != "core" {
		t.Fatalf("decoded %+v", j)
	}
	// Round trip through Encode.
	b, err := j.Encode()
	if err != nil {
		t.Fatal(err)
	}
	j2, err := pipeline.DecodeJob(b)
	if err != nil || j2.Options.MaxDuration != j.Options.MaxDuration || j2.Labels["meeting"] != "standup" {
		t.Fatalf("round trip: %v %+v", err, j2)
	}
}

// Every malformed job is rejected with an error that names the problem.
func TestDecodeJobRejects(t *testing.T) {
	const ok = `"version":1,"id":"j1","channel":"room"`
	cases := []struct{ name, json, want string }{
		{"unknown top-level field", `{` + ok + `,"colour":"red"}`, "colour: unknown field"},
		{"unknown option", `{` + ok + `,"options":{"maxDuraton":"1h"}}`, "maxDuraton: unknown field"},
		{"not JSON", `recording please`, "malformed JSON"},
		{"empty", ``, "empty or truncated"},
		{"array", `[1,2]`, "want pipeline.Job"},
		{"trailing data", `{` + ok + `} {}`, "trailing data"},
		{"missing version", `{"id":"j1","channel":"room"}`, "version: required"},
		{"future version", `{"version":2,"id":"j1","channel":"room"}`, "version: 2 is not supported"},
		{"version as string", `{"version":"1","id":"j1","channel":"room"}`, "version: want int"},
		{"missing id", `{"version":1,"channel":"room"}`, "id: required"},
		{"id with a dot", `{"version":1,"id":"a.b","channel":"room"}`, "id: \"a.b\""},
		{"id too long", `{"version":1,"id":"` + strings.Repeat("x", 65) + `","channel":"room"}`, "at most 64"},
		{"missing channel", `{"version":1,"id":"j1"}`, "channel"},
		{"reserved channel", `{"version":1,"id":"j1","channel":"_metered/x"}`, "channel_reserved"},
		{"numeric duration", `{` + ok + `,"options":{"maxDuration":3600}}`, "duration string"},
		{"bad duration", `{` + ok + `,"options":{"maxDuration":"an hour"}}`, "want a duration"},
		{"negative duration", `{` + ok + `,"options":{"stopWhenEmpty":"-5s"}}`, "negative duration"},
		{"too short", `{` + ok + `,"options":{"maxDuration":"10ms"}}`, "options.maxDuration"},
		{"too long", `{` + ok + `,"options":{"maxDuration":"9000h"}}`, "options.maxDuration"},
		{"unknown codec", `{` + ok + `,"options":{"codecs":["opus","h265"]}}`, "unknown codec \"h265\""},
		{"empty codecs", `{` + ok + `,"options":{"codecs":[]}}`, "options.codecs: empty list"},
		{"duplicate codec", `{` + ok + `,"options":{"codecs":["vp8","vp8"]}}`, "listed twice"},
		{"unknown mode", `{` + ok + `,"options":{"mode":"spy"}}`, "options.mode"},
		{"mode not a string", `{` + ok + `,"options":{"mode":1}}`, "mode"},
		{"escaping prefix", `{` + ok + `,"options":{"outputPrefix":"../etc"}}`, "options.outputPrefix"},
		{"absolute prefix", `{` + ok + `,"options":{"outputPrefix":"/tmp"}}`, "options.outputPrefix"},
		{"label key", `{` + ok + `,"labels":{"a b":"x"}}`, "labels: key \"a b\""},
		{"label value type", `{` + ok + `,"labels":{"a":1}}`, "labels: want string"},
		{"bool as string", `{` + ok + `,"options":{"announce":"yes"}}`, "options.announce: want bool"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := pipeline.DecodeJob([]byte(c.json))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, pipeline.ErrInvalidJob) || !pipeline.IsPermanent(err) {
				t.Errorf("error %v is not ErrInvalidJob/permanent", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
	many := map[string]string{}
	for i := range 17 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	j := pipeline.Job{Version: 1, ID: "j1", Channel: "room", Labels: many}
	if err := j.Validate(); err == nil || !strings.Contains(err.Error(), "at most 16") {
		t.Errorf("17 labels: %v", err)
	}
}

// FuzzDecodeJob: the decoder never panics, and whatever it accepts re-encodes to an equal job.
func FuzzDecodeJob(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"j","channel":"c","options":{"maxDuration":"1h","codecs":["opus"]},"labels":{"a":"b"}}`))
	f.Add([]byte(`{"version":1,"id":"j","channel":"c","options":{"stopWhenEmpty":"1s","outputPrefix":"a/b"}}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := pipeline.DecodeJob(data)
		if err != nil {
			if !errors.Is(err, pipeline.ErrInvalidJob) {
				t.Fatalf("error without ErrInvalidJob: %v", err)
			}
			return
		}
		b, err := j.Encode()
		if err != nil {
			t.Fatalf("accepted job does not re-encode: %v", err)
		}
		if _, err := pipeline.DecodeJob(b); err != nil {
			t.Fatalf("re-encoded job rejected: %v\n%s", err, b)
		}
	})
}
