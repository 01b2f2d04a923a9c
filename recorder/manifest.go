package recorder

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// ManifestVersion is the manifest.json schema version.
const ManifestVersion = 1

// Manifest describes one recording: who was there, which files hold which track, where each file
// sits on the recording's timeline (offsets in ms from StartedAt), and what went missing.
type Manifest struct {
	Version      int            `json:"version"`
	RecordingID  string         `json:"recordingId"`
	Channel      string         `json:"channel"`
	Status       string         `json:"status"` // recording, finished, failed, interrupted
	StartedAt    time.Time      `json:"startedAt"`
	EndedAt      *time.Time     `json:"endedAt,omitempty"`
	Attempts     []Attempt      `json:"attempts"`
	Participants []*Participant `json:"participants"`
	Messages     string         `json:"messages,omitempty"` // messages.jsonl, when captured
	// Mode is what the job asked for: record (files only), monitor (quality only, no media
	// files) or both. Empty in manifests written before monitoring existed.
	Mode   string  `json:"mode,omitempty"`
	Stats  string  `json:"stats,omitempty"`  // stats.jsonl: one monitor.Sample per interval
	Report string  `json:"report,omitempty"` // report.html, written when the recording ends
	Alerts []Alert `json:"alerts,omitempty"` // every alert raise and clear, in order
}

// Recording statuses.
const (
	StatusRecording   = "recording"
	StatusFinished    = "finished"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted" // this attempt ended without finishing (worker stop, crash recovery)
)

// Attempt is one run of the recording (a job redelivered to another worker adds one).
type Attempt struct {
	N         int        `json:"n"`
	Worker    string     `json:"worker,omitempty"`
	StartedAt time.Time  `json:"startedAt"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	Status    string     `json:"status"`
	Reason    string     `json:"reason,omitempty"`
}

// Participant is one remote peer id.
type Participant struct {
	PeerID   string          `json:"peerId"`
	Dir      string          `json:"dir"` // folder of this peer's files (a safe name)
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Sessions []*Session      `json:"sessions"`
	Tracks   []*Track        `json:"tracks"`
}

// Session is one remote PeerConnection of a participant (a reconnect opens a new one).
type Session struct {
	ID          string `json:"id"` // SDP o= session id
	Attempt     int    `json:"attempt"`
	Connection  int    `json:"connection"`
	StartOffset int64  `json:"startOffsetMs"`
}

// Track is one logical track of a participant across sessions: same role (or stream) and kind.
type Track struct {
	Key      string          `json:"key"`
	Role     string          `json:"role,omitempty"`
	Kind     string          `json:"kind"`
	Codec    string          `json:"codec"`
	StreamID string          `json:"streamId"`
	TrackID  string          `json:"trackId"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Files    []*File         `json:"files"`
	// Quality sums up what the track received (all its sessions), when monitoring ran.
	Quality *Quality `json:"quality,omitempty"`
}

// File is one segment file. Offsets are ms from the recording's StartedAt.
type File struct {
	Path              string             `json:"path"` // relative to the recording folder
	Segment           int                `json:"segment"`
	Attempt           int                `json:"attempt"`
	Session           string             `json:"session"`
	TrackID           string             `json:"trackId"`
	SSRC              uint32             `json:"ssrc"`
	StartOffsetMs     int64              `json:"startOffsetMs"`
	DurationMs        int64              `json:"durationMs"`
	Frames            uint64             `json:"frames"`
	Packets           uint64             `json:"packets"`
	Bytes             uint64             `json:"bytes"`
	Lost              uint64             `json:"lost"`
	Recovered         uint64             `json:"recovered"`
	Late              uint64             `json:"late"`
	Duplicates        uint64             `json:"duplicates"`
	Dropped           uint64             `json:"dropped"`
	Width             int                `json:"width,omitempty"`
	Height            int                `json:"height,omitempty"`
	Gaps              []Gap              `json:"gaps"`
	KeyframeWaits     []KeyframeWait     `json:"keyframeWaits,omitempty"`
	ResolutionChanges []ResolutionChange `json:"resolutionChanges,omitempty"`
	SenderReport      *SenderReport      `json:"senderReport,omitempty"`
	Partial           bool               `json:"partial"` // not closed cleanly (still writing, or crashed)
	EndReason         string             `json:"endReason,omitempty"`
}

// Gap is a pause inside a file, in ms from the file's start.
type Gap struct {
	StartMs  int64  `json:"startMs"`
	LengthMs int64  `json:"lengthMs"`
	Cause    string `json:"cause"` // silence (DTX/mute), loss, reconnect, ssrc_change, timestamp_jump
}

// KeyframeWait is time spent dropping video until a keyframe arrived (start or after loss).
type KeyframeWait struct {
	AtMs   int64 `json:"atMs"`
	WaitMs int64 `json:"waitMs"`
}

// ResolutionChange is a keyframe with a new size.
type ResolutionChange struct {
	AtMs   int64 `json:"atMs"`
	Width  int   `json:"width"`
	Height int   `json:"height"`
}

// SenderReport is the first RTCP SR of the file's SSRC: the sender's NTP↔RTP mapping, which lines
// up the sender's tracks exactly (ReceivedAtMs is on the recording timeline).
type SenderReport struct {
	NTPTime      uint64 `json:"ntpTime"`
	RTPTime      uint32 `json:"rtpTime"`
	ReceivedAtMs int64  `json:"receivedAtMs"`
	Count        int    `json:"count"`
}

// ReadManifest loads a manifest.json.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode manifest %s: %w", path, err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("manifest %s: version %d, want %d", path, m.Version, ManifestVersion)
	}
	return &m, nil
}

// Files lists every file of the manifest with its participant and track.
func (m *Manifest) Files() []FileRef {
	var out []FileRef
	for _, p := range m.Participants {
		for _, t := range p.Tracks {
			for _, f := range t.Files {
				out = append(out, FileRef{Participant: p, Track: t, File: f})
			}
		}
	}
	return out
}

// FileRef ties a file to its participant and track.
type FileRef struct {
	Participant *Participant
	Track       *Track
	File        *File
}
