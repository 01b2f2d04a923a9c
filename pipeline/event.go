package pipeline

import (
	"time"

	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/recorder"
)

// EventsPrefix is the subject prefix of job events: roomtape.events.<job-id>.
const EventsPrefix = "roomtape.events"

// InvalidJobsSubject receives the failed events of messages whose job id could not be read.
const InvalidJobsSubject = EventsPrefix + ".~invalid"

// EventsSubject is the subject of one job's events.
func EventsSubject(jobID string) string { return EventsPrefix + "." + jobID }

// Event types published on roomtape.events.<job-id>.
const (
	EventQueued            = "queued"  // submitted (published by Submit)
	EventStarted           = "started" // a worker joined the channel (Attempt > 1: resumed)
	EventParticipantJoined = "participant_joined"
	EventParticipantLeft   = "participant_left"
	EventTrackStarted      = "track_started"
	EventTrackEnded        = "track_ended"
	EventFirstKeyframe     = "first_keyframe" // the first video keyframe of the attempt is on disk
	EventWarning           = "warning"
	EventStopping          = "stopping" // a stop request was seen
	EventFinished          = "finished" // with the manifest
	EventFailed            = "failed"   // with a reason
	EventStats             = "stats"    // every monitor interval, with Stats
	EventAlert             = "alert"    // an alert raised or cleared, with Alert
)

// Warning codes of warning events.
const (
	WarnNoKeyframe = "no_keyframe" // a video track wrote no frame for 10 s
	WarnSilence    = "silence"     // an audio track received nothing for 60 s
	WarnHandedOff  = "handed_off"  // the worker shut down; the job went back to the queue
	WarnRetrying   = "retrying"    // a transient failure; the job goes back to the queue
)

// Event is one JSON message on roomtape.events.<job-id>. Labels of the job are echoed in each.
type Event struct {
	Version int               `json:"version"`
	Type    string            `json:"type"`
	JobID   string            `json:"jobId"`
	Time    time.Time         `json:"time"`
	Worker  string            `json:"worker,omitempty"`
	Attempt int               `json:"attempt,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Peer    string            `json:"peer,omitempty"`
	Track   *EventTrack       `json:"track,omitempty"`
	// Reason: why a track ended, why the job failed or stopped.
	Reason  string `json:"reason,omitempty"`
	Warning string `json:"warning,omitempty"`
	// Manifest is the final manifest (finished; omitted when too large for one message).
	Manifest     *recorder.Manifest `json:"manifest,omitempty"`
	ManifestPath string             `json:"manifestPath,omitempty"`
	// Elapsed is the time since the job was submitted (first_keyframe, started).
	ElapsedMs int64 `json:"elapsedMs,omitempty"`
	// Stats is the monitor's interval sample (stats events).
	Stats *monitor.Sample `json:"stats,omitempty"`
	// Alert is an alert raise or clear (alert events).
	Alert *recorder.Alert `json:"alert,omitempty"`
}

// EventTrack identifies a track in an event.
type EventTrack struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Role  string `json:"role,omitempty"`
	Codec string `json:"codec,omitempty"`
	Path  string `json:"path,omitempty"`
}

// Final reports whether no more events follow for this attempt chain.
func (e Event) Final() bool { return e.Type == EventFinished || e.Type == EventFailed }
