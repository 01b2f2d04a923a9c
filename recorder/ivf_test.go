package recorder_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/roomtape/roomtape/recorder"
)

type ivfHeader struct {
	fourcc        string
	width, height uint16
	rate, scale   uint32
	frames        uint32
}

func parseIVFHeader(t *testing.T, b []byte) ivfHeader {
	t.Helper()
	if len(b) < 32 || string(b[:4]) != "DKIF" || binary.LittleEndian.Uint16(b[6:]) != 32 {
		t.Fatalf("not an IVF header: % x", b[:min(len(b), 32)])
	}
	return ivfHeader{
		fourcc: string(b[8:12]),
		width:  binary.LittleEndian.Uint16(b[12:]), height: binary.LittleEndian.Uint16(b[14:]),
		rate: binary.LittleEndian.Uint32(b[16:]), scale: binary.LittleEndian.Uint32(b[20:]),
		frames: binary.LittleEndian.Uint32(b[24:]),
	}
}

func fileHeader(t *testing.T, path string) ivfHeader {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseIVFHeader(t, b)
}

// TestIVFWriterPipe: on a writer that cannot seek, SetSize before the first frame still puts the
// size in the header, PatchHeader says ErrNotSeekable, and Close succeeds.
func TestIVFWriterPipe(t *testing.T) {
	var buf bytes.Buffer
	w, err := recorder.NewIVFWriter(&buf, "VP80", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatal("header written before the first frame")
	}
	w.SetSize(320, 240)
	for i, pts := range []uint64{0, 3000, 6000} {
		if err := w.WriteFrame([]byte{byte(i), 1, 2}, pts); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.PatchHeader(); !errors.Is(err, recorder.ErrNotSeekable) {
		t.Errorf("PatchHeader on a bytes.Buffer: %v", err)
	}
	if h := parseIVFHeader(t, w.Header()); h.frames != 3 || h.width != 320 {
		t.Errorf("Header() = %+v", h)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h := parseIVFHeader(t, buf.Bytes())
	if h != (ivfHeader{fourcc: "VP80", width: 320, height: 240, rate: 90000, scale: 1, frames: 0}) {
		t.Errorf("header %+v", h)
	}
	if want := 32 + 3*(12+3); buf.Len() != want {
		t.Errorf("%d bytes, want %d", buf.Len(), want)
	}
	pts := binary.LittleEndian.Uint64(buf.Bytes()[32+15+4:])
	if pts != 3000 {
		t.Errorf("second frame pts %d", pts)
	}
}

func TestIVFWriterEmpty(t *testing.T) {
	var buf bytes.Buffer
	w, err := recorder.NewIVFWriter(&buf, "AV01", 160, 120)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if h := parseIVFHeader(t, buf.Bytes()); buf.Len() != 32 || h.fourcc != "AV01" || h.width != 160 {
		t.Errorf("empty file: %d bytes, %+v", buf.Len(), h)
	}
}

// writeSeeker offers Write and Seek only (no WriteAt), like a seekable stream that is not a file.
type writeSeeker struct{ f *os.File }

func (w writeSeeker) Write(b []byte) (int, error)           { return w.f.Write(b) }
func (w writeSeeker) Seek(off int64, wh int) (int64, error) { return w.f.Seek(off, wh) }
func (w writeSeeker) Close() error                          { return w.f.Close() }

// bufferedFile is a file behind a bufio.Writer that can still patch its header: PatchHeader
// must flush before writing at offset 0, or the buffered bytes would later overwrite it.
type bufferedFile struct {
	*bufio.Writer
	f *os.File
}

func (b bufferedFile) WriteAt(p []byte, off int64) (int, error) { return b.f.WriteAt(p, off) }
func (b bufferedFile) Close() error                             { return b.f.Close() }

func TestIVFWriterPatchHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(*os.File) io.Writer
	}{
		{"os.File", func(f *os.File) io.Writer { return f }},
		{"WriteSeeker", func(f *os.File) io.Writer { return writeSeeker{f} }},
		{"bufio+WriterAt", func(f *os.File) io.Writer { return bufferedFile{bufio.NewWriterSize(f, 1<<16), f} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.ivf")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			w, err := recorder.NewIVFWriter(tc.open(f), "VP80", 640, 480)
			if err != nil {
				t.Fatal(err)
			}
			frame := bytes.Repeat([]byte{7}, 100)
			for i := range 3 {
				if err := w.WriteFrame(frame, uint64(i)*3000); err != nil {
					t.Fatal(err)
				}
			}
			w.SetSize(320, 240)
			if err := w.PatchHeader(); err != nil {
				t.Fatal(err)
			}
			if h := fileHeader(t, path); h.frames != 3 || h.width != 320 || h.height != 240 {
				t.Fatalf("after PatchHeader: %+v", h)
			}
			for i := 3; i < 5; i++ { // appends must land at the end, not after the header
				if err := w.WriteFrame(frame, uint64(i)*3000); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := f.Stat(); err == nil {
				t.Error("Close left the file open")
			}
			if h := fileHeader(t, path); h.frames != 5 {
				t.Errorf("after Close: %+v", h)
			}
			_, frames := readIVF(t, path)
			if len(frames) != 5 || frames[4].pts != 12000 || !bytes.Equal(frames[4].data, frame) {
				t.Errorf("read back %d frames", len(frames))
			}
		})
	}
}

func TestIVFWriterErrors(t *testing.T) {
	if _, err := recorder.NewIVFWriter(io.Discard, "VP8", 0, 0); err == nil {
		t.Error("3-byte fourcc accepted")
	}
	if _, err := recorder.NewIVFWriter(nil, "VP80", 0, 0); err == nil {
		t.Error("nil writer accepted")
	}
	w, err := recorder.NewIVFWriter(io.Discard, "VP80", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(nil, 0); !errors.Is(err, recorder.ErrEmptyMedia) {
		t.Errorf("empty frame: %v", err)
	}
	if err := w.WriteFrame([]byte{1}, 3000); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame([]byte{1}, 3000); !errors.Is(err, recorder.ErrTimestampOrder) {
		t.Errorf("repeated pts: %v", err)
	}
	if err := w.WriteFrame([]byte{1}, 0); !errors.Is(err, recorder.ErrTimestampOrder) {
		t.Errorf("pts going back: %v", err)
	}
	if w.Frames() != 1 {
		t.Errorf("Frames() = %d", w.Frames())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame([]byte{1}, 6000); !errors.Is(err, recorder.ErrWriterClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if err := w.PatchHeader(); !errors.Is(err, recorder.ErrWriterClosed) {
		t.Errorf("PatchHeader after Close: %v", err)
	}

	fw := &faultyWriter{failAfter: 2} // header and first frame header
	w, err = recorder.NewIVFWriter(fw, "VP80", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame([]byte{1, 2, 3}, 0); !errors.Is(err, errDiskFull) {
		t.Fatalf("write: %v", err)
	}
	if err := w.WriteFrame([]byte{1, 2, 3}, 3000); !errors.Is(err, errDiskFull) {
		t.Fatalf("write after failure: %v", err)
	}
	err = w.Close()
	if !errors.Is(err, errDiskFull) || !errors.Is(err, errFlushFailed) || !errors.Is(err, errCloseFailed) || fw.closes != 1 {
		t.Errorf("Close = %v, closes %d", err, fw.closes)
	}
}

func TestIVFFourCC(t *testing.T) {
	for mime, want := range map[string]string{"video/VP8": "VP80", "video/vp9": "VP90", "video/AV1": "AV01"} {
		if got, err := recorder.IVFFourCC(mime); err != nil || got != want {
			t.Errorf("IVFFourCC(%q) = %q, %v", mime, got, err)
		}
	}
	if _, err := recorder.IVFFourCC("video/H264"); !errors.Is(err, recorder.ErrUnsupportedCodec) {
		t.Errorf("H264: %v", err)
	}
}

// TestIVFWriterConcurrentPatch: PatchHeader from another goroutine (a flush timer) while frames
// are written must neither race nor corrupt the file.
func TestIVFWriterConcurrentPatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.ivf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := recorder.NewIVFWriter(bufferedFile{bufio.NewWriter(f), f}, "VP80", 320, 240)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	patched := make(chan error, 1)
	go func() {
		defer close(patched)
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := w.PatchHeader(); err != nil {
				patched <- err
				return
			}
			_ = w.Frames()
		}
	}()
	frame := bytes.Repeat([]byte{9}, 500)
	for i := range 300 {
		if err := w.WriteFrame(frame, uint64(i)*3000); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-patched; err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	hdr, frames := readIVF(t, path)
	if len(frames) != 300 || hdr.NumFrames != 300 {
		t.Errorf("%d frames read, header says %d", len(frames), hdr.NumFrames)
	}
}
