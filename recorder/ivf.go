package recorder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotSeekable is returned by IVFWriter.PatchHeader when the output can be neither rewritten
// in place (io.WriterAt) nor seeked (io.WriteSeeker).
var ErrNotSeekable = errors.New("recorder: output is not seekable")

const (
	ivfHeaderLen      = 32
	ivfFrameHeaderLen = 12
	// IVFTimebase is the IVF time base denominator: PTS are 90 kHz RTP video ticks.
	IVFTimebase = 90000
)

// IVFFourCC returns the IVF FourCC for a video MIME type ("video/VP8" → "VP80"), case-insensitively.
// H.264 has none: write it with AnnexBWriter.
func IVFFourCC(mimeType string) (string, error) {
	switch strings.ToLower(mimeType) {
	case "video/vp8":
		return "VP80", nil
	case "video/vp9":
		return "VP90", nil
	case "video/av1":
		return "AV01", nil
	}
	return "", fmt.Errorf("ivf fourcc %q: %w", mimeType, ErrUnsupportedCodec)
}

// IVFWriter writes VP8, VP9 or AV1 frames in IVF with a 1/90000 time base, so PTS are the
// caller's 90 kHz ticks, unscaled (unlike pion's ivfwriter defaults, which stretch time by 11 %).
//
// The 32-byte file header is written with the first frame (or at Close if there is none), so a
// SetSize before the first frame puts the right size in the header even on a pipe. The frame count
// field can only be fixed later: PatchHeader rewrites the header in place, and Close does so when
// it can. ffprobe reads that field as a duration; judge IVF timing by packet PTS.
//
// Methods are safe for concurrent use.
type IVFWriter struct {
	writerState
	fourcc        string
	width, height uint16
	frames        uint32
	lastPTS       uint64
	started       bool                    // header written
	frameHeader   [ivfFrameHeaderLen]byte // scratch: a local would escape to the heap per frame
}

// NewIVFWriter returns a writer of fourcc ("VP80", "VP90", "AV01") frames to w. width and height
// may be 0 until SetSize learns them from a keyframe. Close takes ownership of w: it flushes w if
// w has a Flush() error method and closes it if it is an io.Closer.
func NewIVFWriter(w io.Writer, fourcc string, width, height uint16) (*IVFWriter, error) {
	if w == nil {
		return nil, errors.New("new ivf writer: nil io.Writer")
	}
	if len(fourcc) != 4 {
		return nil, fmt.Errorf("new ivf writer: fourcc %q is not 4 bytes", fourcc)
	}
	return &IVFWriter{writerState: writerState{w: w}, fourcc: fourcc, width: width, height: height}, nil
}

// SetSize sets the width and height for the header: written with the first frame, or by the next
// PatchHeader once frames are out.
func (v *IVFWriter) SetSize(width, height uint16) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.width, v.height = width, height
}

// WriteFrame writes one frame (for AV1 a temporal unit) with its PTS in 90 kHz ticks since the
// start of the recording. PTS must increase from frame to frame.
func (v *IVFWriter) WriteFrame(frame []byte, pts uint64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	switch {
	case len(frame) == 0:
		return fmt.Errorf("ivf write frame: %w", ErrEmptyMedia)
	case v.frames > 0 && pts <= v.lastPTS:
		return fmt.Errorf("ivf write frame: %w: pts %d after %d", ErrTimestampOrder, pts, v.lastPTS)
	}
	if !v.started {
		if err := v.write(v.header()); err != nil {
			return err
		}
		v.started = true
	}
	fh := v.frameHeader[:]
	binary.LittleEndian.PutUint32(fh, uint32(len(frame)))
	binary.LittleEndian.PutUint64(fh[4:], pts)
	if err := v.write(fh); err != nil {
		return err
	}
	if err := v.write(frame); err != nil {
		return err
	}
	v.frames++
	v.lastPTS = pts
	return nil
}

// Frames returns the number of frames written.
func (v *IVFWriter) Frames() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.frames
}

// Header returns the 32-byte file header as it stands now (current size and frame count), for a
// caller that buffers output in a way PatchHeader cannot see through: flush, then write it at
// offset 0 of the file.
func (v *IVFWriter) Header() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.header()
}

// PatchHeader rewrites the header in place with the current size and frame count. It flushes w
// first if w has a Flush() error method, then uses WriteAt when w is an io.WriterAt, or seeks
// when it is an io.WriteSeeker (returning to the end). Otherwise it returns ErrNotSeekable.
// Before the first frame it does nothing: the header is not out yet. (A file opened with O_APPEND
// cannot be patched: WriteAt fails on it and seeked writes land at the end.)
func (v *IVFWriter) PatchHeader() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	return v.patch()
}

// Close writes the header if no frame did, patches it when w can be rewritten, then flushes and
// closes w as NewIVFWriter describes. It always releases w, returns every error joined, and is
// idempotent.
func (v *IVFWriter) Close() error {
	return v.close(func() error {
		var err error
		if !v.started {
			err = v.write(v.header())
		} else if err = v.patch(); errors.Is(err, ErrNotSeekable) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("ivf close: %w", err)
		}
		return nil
	})
}

func (v *IVFWriter) header() []byte {
	h := make([]byte, ivfHeaderLen)
	copy(h, "DKIF")
	binary.LittleEndian.PutUint16(h[4:], 0) // version
	binary.LittleEndian.PutUint16(h[6:], ivfHeaderLen)
	copy(h[8:12], v.fourcc)
	binary.LittleEndian.PutUint16(h[12:], v.width)
	binary.LittleEndian.PutUint16(h[14:], v.height)
	binary.LittleEndian.PutUint32(h[16:], IVFTimebase) // rate (time base denominator)
	binary.LittleEndian.PutUint32(h[20:], 1)           // scale (time base numerator)
	binary.LittleEndian.PutUint32(h[24:], v.frames)
	return h
}

func (v *IVFWriter) patch() error {
	if !v.started {
		return nil
	}
	wa, canWriteAt := v.w.(io.WriterAt)
	ws, canSeek := v.w.(io.WriteSeeker)
	if !canWriteAt && !canSeek {
		return fmt.Errorf("ivf patch header: %w", ErrNotSeekable)
	}
	if f, ok := v.w.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			v.err = fmt.Errorf("ivf patch header: flush: %w", err)
			return v.err
		}
	}
	h := v.header()
	if canWriteAt {
		if _, err := wa.WriteAt(h, 0); err != nil {
			// WriteAt does not move the write offset: the stream itself is intact.
			return fmt.Errorf("ivf patch header: %w", err)
		}
		return nil
	}
	end, err := ws.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = ws.Seek(0, io.SeekStart)
	}
	if err == nil {
		_, err = ws.Write(h)
	}
	if err == nil {
		_, err = ws.Seek(end, io.SeekStart)
	}
	if err != nil {
		// The write offset may now be anywhere: appending more frames could corrupt the file.
		v.err = fmt.Errorf("ivf patch header: %w", err)
		return v.err
	}
	return nil
}

// write writes b in full; a failure is sticky.
func (v *IVFWriter) write(b []byte) error {
	if _, err := v.w.Write(b); err != nil {
		v.err = fmt.Errorf("ivf write: %w", err)
		return v.err
	}
	return nil
}
