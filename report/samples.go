package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/roomtape/roomtape/monitor"
)

// SampleLog is what [ReadSampleLog] found in a stats.jsonl.
type SampleLog struct {
	Samples []monitor.Sample // the samples that decoded, in file order
	Lines   int              // non-blank lines read
	// Skipped holds the 1-based line numbers of garbled lines before the last one, including
	// torn lines that a whole sample was salvaged from (at most maxSkippedLines are kept;
	// SkippedCount counts them all).
	Skipped      []int
	SkippedCount int
	// TruncatedTail is set when the last line did not decode: the writer crashed mid-line (or
	// was still writing it). It is skipped and not counted in SkippedCount.
	TruncatedTail bool
}

// maxSkippedLines bounds SampleLog.Skipped.
const maxSkippedLines = 100

// ReadSamples reads a stats.jsonl (one monitor.Sample per line). Garbled lines are skipped, never
// an error: a truncated last line is what a crash leaves, a garbled line in the middle is counted
// (use [ReadSampleLog] to learn how many and which). A torn line that a later attempt appended a
// whole sample to (stats.jsonl is opened for appending) keeps that sample and still counts as
// skipped. Blank lines are ignored. Only a read error of r is returned, with the samples read so
// far.
func ReadSamples(r io.Reader) ([]monitor.Sample, error) {
	l, err := ReadSampleLog(r)
	return l.Samples, err
}

// ReadSampleLog is [ReadSamples] that also reports which lines it skipped. It never returns nil.
func ReadSampleLog(r io.Reader) (*SampleLog, error) {
	l := &SampleLog{}
	br := bufio.NewReaderSize(r, 64<<10)
	lineNo := 0
	pendingBad := 0 // line number of the last garbled line, not yet known to be in the middle
	for {
		line, err := br.ReadBytes('\n') // no length limit: a line holds every live track
		if len(line) > 0 {
			lineNo++
			if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
				l.Lines++
				if pendingBad > 0 { // a line follows it: the garbled one was in the middle
					l.skip(pendingBad)
					pendingBad = 0
				}
				if s, ok := decodeSample(trimmed); ok {
					l.Samples = append(l.Samples, s)
				} else if s, ok := salvage(trimmed); ok {
					// A torn line with a whole sample appended to it (the writer crashed mid-line
					// and the next attempt appended to the file): keep the sample, count the line.
					l.Samples = append(l.Samples, s)
					l.skip(lineNo)
				} else {
					pendingBad = lineNo
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if pendingBad > 0 {
				l.skip(pendingBad)
			}
			return l, fmt.Errorf("read stats: %w", err)
		}
	}
	l.TruncatedTail = pendingBad > 0
	return l, nil
}

func (l *SampleLog) skip(line int) {
	l.SkippedCount++
	if len(l.Skipped) < maxSkippedLines {
		l.Skipped = append(l.Skipped, line)
	}
}

func decodeSample(b []byte) (monitor.Sample, bool) {
	var s monitor.Sample
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &s) != nil {
		return monitor.Sample{}, false
	}
	return s, true
}

// sampleStart is how every encoded monitor.Sample begins (At is its first field).
var sampleStart = []byte(`{"at":`)

// salvage decodes the last sample that starts inside a garbled line, if the line ends with one.
func salvage(b []byte) (monitor.Sample, bool) {
	i := bytes.LastIndex(b, sampleStart)
	if i <= 0 {
		return monitor.Sample{}, false
	}
	return decodeSample(b[i:])
}
