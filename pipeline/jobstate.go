package pipeline

import (
	"fmt"
	"slices"
	"time"
)

// Job states, in the order a job normally goes through them.
const (
	StateQueued    = "queued"    // submitted, or handed back to the queue by a worker
	StateStarting  = "starting"  // a worker took it and is joining the channel
	StateRecording = "recording" // the bot is in the channel
	StateFinishing = "finishing" // closing files, writing the manifest
	StateDone      = "done"      // finished; Manifest is final
	StateFailed    = "failed"    // gave up; Reason says why
)

// States lists every job state (bounded metric label values).
var States = []string{StateQueued, StateStarting, StateRecording, StateFinishing, StateDone, StateFailed}

// JobState is the job's record in the KV bucket, changed only with compare-and-set.
type JobState struct {
	Version int               `json:"version"`
	ID      string            `json:"id"`
	State   string            `json:"state"`
	Channel string            `json:"channel,omitempty"`
	Profile string            `json:"profile,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Worker holds the job (starting, recording, finishing) or finished it.
	Worker string `json:"worker,omitempty"`
	// Attempt is the delivery number of the message that the worker holds (1 = first).
	Attempt int    `json:"attempt"`
	Reason  string `json:"reason,omitempty"`
	// Recording is the recording folder and Manifest its manifest.json, on the worker's disk.
	Recording string `json:"recording,omitempty"`
	Manifest  string `json:"manifest,omitempty"`
	// StopRequested is set by `roomtape stop`; the holder ends the recording within 2 s.
	StopRequested bool `json:"stopRequested,omitempty"`
	// Progress of the current attempt, refreshed every few seconds while recording.
	Participants int    `json:"participants"`
	Tracks       int    `json:"tracks"`
	Files        int    `json:"files"`
	Bytes        uint64 `json:"bytes"`

	SubmittedAt time.Time  `json:"submittedAt"`
	StartedAt   *time.Time `json:"startedAt,omitempty"` // first attempt's start: maxDuration counts from here
	UpdatedAt   time.Time  `json:"updatedAt"`
	EndedAt     *time.Time `json:"endedAt,omitempty"`

	// Revision is the KV revision this state was read at (not stored).
	Revision uint64 `json:"-"`
}

// Terminal reports whether the job will not run again.
func (s JobState) Terminal() bool { return s.State == StateDone || s.State == StateFailed }

// Held reports whether a worker currently holds the job.
func (s JobState) Held() bool {
	return s.State == StateStarting || s.State == StateRecording || s.State == StateFinishing
}

func validState(s string) error {
	if !slices.Contains(States, s) {
		return fmt.Errorf("unknown job state %q", s)
	}
	return nil
}
