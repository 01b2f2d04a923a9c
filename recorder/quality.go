package recorder

import "time"

// Quality summarizes what one logical track received over the whole recording, measured from
// RTP and RTCP alone (package monitor computes it). Loss counts are over sequence numbers:
// LostBeforeRecovery holes were seen, Recovered of them were filled later (NACK retransmission
// or reordering), Lost were never filled (RFC 3550 cumulative loss).
type Quality struct {
	Packets               uint64  `json:"packets"`
	Bytes                 uint64  `json:"bytes"`
	Expected              uint64  `json:"expected"`
	LostBeforeRecovery    uint64  `json:"lostBeforeRecovery"`
	Recovered             uint64  `json:"recovered"`
	Lost                  uint64  `json:"lost"`
	Late                  uint64  `json:"late"`
	Duplicates            uint64  `json:"duplicates"`
	LossPct               float64 `json:"lossPct"`               // Lost / Expected × 100
	LossBeforeRecoveryPct float64 `json:"lossBeforeRecoveryPct"` // LostBeforeRecovery / Expected × 100
	JitterMeanMs          float64 `json:"jitterMeanMs"`          // RFC 3550 interarrival jitter, mean of the intervals
	JitterMaxMs           float64 `json:"jitterMaxMs"`
	BitrateMeanBps        float64 `json:"bitrateMeanBps"` // RTP payload bits per second while the track ran
	BitrateMaxBps         float64 `json:"bitrateMaxBps"`  // highest stats interval
	ActiveMs              int64   `json:"activeMs"`       // time the track was running

	// Video.
	Frames                 uint64  `json:"frames,omitempty"` // complete frames
	FPSMean                float64 `json:"fpsMean,omitempty"`
	Keyframes              uint64  `json:"keyframes,omitempty"`
	KeyframeIntervalMeanMs float64 `json:"keyframeIntervalMeanMs,omitempty"`
	Width                  int     `json:"width,omitempty"` // last size signalled by a keyframe
	Height                 int     `json:"height,omitempty"`
	MaxWidth               int     `json:"maxWidth,omitempty"`
	MaxHeight              int     `json:"maxHeight,omitempty"`
	Freezes                int     `json:"freezes,omitempty"` // pauses of more than 1 s without a complete frame
	FrozenMs               int64   `json:"frozenMs,omitempty"`

	// Audio (RFC 6464 audio level header extension).
	AudioLevel    bool    `json:"audioLevel,omitempty"`    // the sender sent audio levels
	SpeechPct     float64 `json:"speechPct,omitempty"`     // share of received audio that was speech
	LevelMeanDBov float64 `json:"levelMeanDbov,omitempty"` // mean level of the speech packets
	SilentMs      int64   `json:"silentMs,omitempty"`      // time without speech (silence or no packets)
}

// Alert codes.
const (
	AlertSilent           = "silent"            // a participant's audio carried no speech for the threshold
	AlertFrozen           = "frozen"            // a video track had no complete frame for the threshold
	AlertLoss             = "loss"              // packet loss above the threshold for its window
	AlertNoMedia          = "no_media"          // a present participant sent no media for the threshold
	AlertLeftUnexpectedly = "left_unexpectedly" // a participant's connection failed or vanished
	AlertNoKeyframe       = "no_keyframe"       // a video track got no keyframe for the threshold
)

// Alert states.
const (
	AlertRaised  = "raised"
	AlertCleared = "cleared"
)

// Alert is one alert raise or clear. Track is the logical track key (empty for participant
// alerts); Value and Threshold are in the unit of the code (seconds, or percent for loss).
type Alert struct {
	Code      string    `json:"code"`
	State     string    `json:"state"`
	Peer      string    `json:"peer"`
	Track     string    `json:"track,omitempty"`
	Kind      string    `json:"kind,omitempty"`
	At        time.Time `json:"at"`
	Since     time.Time `json:"since"` // when the condition began
	OffsetMs  int64     `json:"offsetMs"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Message   string    `json:"message"`
}
