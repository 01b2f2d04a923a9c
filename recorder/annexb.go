package recorder

import (
	"errors"
	"fmt"
	"io"
)

// annexBStartCode prefixes every NAL unit AnnexBWriter writes.
var annexBStartCode = []byte{0, 0, 0, 1}

// AnnexBWriter writes an H.264 elementary stream in Annex-B byte-stream format (ITU-T H.264
// Annex B), each NAL unit behind a 4-byte start code. The format carries no timestamps: keep
// them elsewhere (the manifest) or remux with ffmpeg -r / a timestamp file.
//
// Methods are safe for concurrent use.
type AnnexBWriter struct {
	writerState
	buf   []byte
	units int
}

// NewAnnexBWriter returns a writer of access units to w. Close takes ownership of w: it flushes w
// if w has a Flush() error method and closes it if it is an io.Closer.
func NewAnnexBWriter(w io.Writer) (*AnnexBWriter, error) {
	if w == nil {
		return nil, errors.New("new annex-b writer: nil io.Writer")
	}
	return &AnnexBWriter{writerState: writerState{w: w}}, nil
}

// WriteAccessUnit writes the NAL units of one access unit (without start codes, as RTP carries
// them) in a single Write. Empty NAL units are skipped; an access unit with none is an error.
// A Frame from the H.264 Depacketizer is already Annex-B: SplitAnnexB(frame.Data) gives its NALs.
func (a *AnnexBWriter) WriteAccessUnit(nals [][]byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.usable(); err != nil {
		return err
	}
	a.buf = a.buf[:0]
	for _, n := range nals {
		if len(n) > 0 {
			a.buf = append(a.buf, annexBStartCode...)
			a.buf = append(a.buf, n...)
		}
	}
	if len(a.buf) == 0 {
		return fmt.Errorf("annex-b write access unit: %w", ErrEmptyMedia)
	}
	if _, err := a.w.Write(a.buf); err != nil {
		a.err = fmt.Errorf("annex-b write access unit %d: %w", a.units, err)
		return a.err
	}
	a.units++
	return nil
}

// Close flushes and closes w as NewAnnexBWriter describes. It always releases w, returns every
// error joined (including an earlier write error), and is idempotent.
func (a *AnnexBWriter) Close() error { return a.close(nil) }

// SplitAnnexB returns the NAL units of an Annex-B byte stream (3- or 4-byte start codes), without
// start codes and without the zero bytes that trail a NAL unit before the next start code. Bytes
// before the first start code are ignored. The NAL units alias b.
func SplitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1 // first byte of the current NAL unit
	zeros := 0
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == 0:
			zeros++
			continue
		case b[i] == 1 && zeros >= 2:
			if start >= 0 {
				if n := b[start : i-zeros]; len(n) > 0 {
					nals = append(nals, n)
				}
			}
			start = i + 1
		}
		zeros = 0
	}
	if start >= 0 {
		end := len(b)
		for end > start && b[end-1] == 0 {
			end--
		}
		if end > start {
			nals = append(nals, b[start:end])
		}
	}
	return nals
}
