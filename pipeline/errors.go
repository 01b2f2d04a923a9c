package pipeline

import (
	"errors"
	"fmt"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/signalling"
)

// Sentinel errors of the job pipeline.
var (
	// ErrInvalidJob wraps every job decoding or validation failure (a *JobError).
	ErrInvalidJob = errors.New("invalid job")
	// ErrPermanent marks failures that retrying cannot fix (auth failure, channel forbidden,
	// unknown profile): the job fails and its message is terminated.
	ErrPermanent = errors.New("permanent failure")
	// ErrInterrupted is the context cause that makes Record finalize as "interrupted" rather than
	// "finished": the worker is shutting down and hands the job back to the queue.
	ErrInterrupted = errors.New("worker shutting down: recording handed back to the queue")
	// ErrStopRequested is the context cause of a `roomtape stop` request.
	ErrStopRequested = errors.New("stop requested")
	// ErrLost means another delivery of the job (another worker) took it over.
	ErrLost = errors.New("job taken over by another attempt")
	// ErrNotFound is returned for a job id with no state.
	ErrNotFound = errors.New("job not found")
	// ErrDraining is returned by Worker.Run when called twice or after shutdown began.
	ErrDraining = errors.New("worker is draining")
)

// JobError is a job that failed to decode or validate; Field names the offending JSON field.
type JobError struct {
	Field string
	Msg   string
}

func (e *JobError) Error() string {
	if e.Field == "" {
		return "invalid job: " + e.Msg
	}
	return fmt.Sprintf("invalid job: %s: %s", e.Field, e.Msg)
}

// Unwrap makes errors.Is(err, ErrInvalidJob) true.
func (e *JobError) Unwrap() error { return ErrInvalidJob }

// permanentError wraps err so that errors.Is(err, ErrPermanent) holds.
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether a job failure should terminate the message instead of retrying:
// invalid jobs, errors marked Permanent, and signalling closes the SDK treats as final
// (invalid token, channel forbidden, app suspended, admin disconnect).
func IsPermanent(err error) bool {
	if errors.Is(err, ErrPermanent) || errors.Is(err, ErrInvalidJob) || errors.Is(err, bot.ErrChannelForbidden) {
		return true
	}
	var ce *signalling.CloseError
	if errors.As(err, &ce) {
		return signalling.IsTerminalClose(ce.Code)
	}
	return false
}
