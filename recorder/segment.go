package recorder

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pion/rtcp"

	"github.com/roomtape/roomtape/bot"
)

// segment is one file of one track: written as NAME.part through a buffered writer flushed at
// least every FlushInterval, renamed to NAME on a clean close. Only the track's worker touches it.
type segment struct {
	rec      *Recording
	mf       *File
	relPath  string // final path relative to the recording directory
	partPath string
	file     *os.File
	bw       *bufio.Writer
	start    time.Time // wall time of the first frame
	audio    bool
	mime     string

	ogg     *OggWriter
	ivf     *IVFWriter
	annexb  *AnnexBWriter
	samples int64 // audio: 48 kHz samples written, silence included
	lastPTS int64 // video: last 90 kHz pts written
	lastDur int64 // video: last frame interval, for the duration of the final frame
	width   int
	height  int

	frames  uint64
	bytes   uint64
	gaps    []Gap
	waits   []KeyframeWait
	resizes []ResolutionChange
	sr      *SenderReport
}

// fileStats is a snapshot of a segment for the manifest.
type fileStats struct {
	DurationMs        int64
	Frames            uint64
	Bytes             uint64
	Packets           uint64
	Lost              uint64
	Recovered         uint64
	Late              uint64
	Duplicates        uint64
	Dropped           uint64
	Gaps              []Gap
	KeyframeWaits     []KeyframeWait
	ResolutionChanges []ResolutionChange
	Width, Height     int
	SenderReport      *SenderReport
}

func (s *segment) stats(j jitterStats, queueDrops uint64) fileStats {
	var sr *SenderReport
	if s.sr != nil {
		// A copy: the manifest is encoded under the recording's lock while this track's worker
		// keeps counting sender reports into s.sr without it.
		c := *s.sr
		sr = &c
	}
	return fileStats{
		DurationMs: s.duration().Milliseconds(), Frames: s.frames, Bytes: s.bytes,
		Packets: j.Received, Lost: j.Lost, Recovered: j.Recovered, Late: j.Late, Duplicates: j.Duplicates,
		Dropped:           j.Dropped + queueDrops,
		Gaps:              append([]Gap(nil), s.gaps...),
		KeyframeWaits:     append([]KeyframeWait(nil), s.waits...),
		ResolutionChanges: append([]ResolutionChange(nil), s.resizes...),
		Width:             s.width, Height: s.height, SenderReport: sr,
	}
}

// duration is the media span of the file.
func (s *segment) duration() time.Duration {
	if s.audio {
		return time.Duration(s.samples) * time.Second / OpusSampleRate
	}
	if s.frames == 0 {
		return 0
	}
	return time.Duration(s.lastPTS+s.lastDur) * time.Second / videoRate
}

// write appends one frame at wall-clock time wall. For audio, a gap between where the file is
// and where the frame belongs is filled with Opus silence, so the file's duration follows the
// wall clock (DTX, mute, loss and reconnect pauses stay pauses).
func (s *segment) write(f Frame, wall time.Time, gapCause string) error {
	if s.audio {
		return s.writeAudio(f, wall, gapCause)
	}
	return s.writeVideo(f, wall, gapCause)
}

func (s *segment) writeAudio(f Frame, wall time.Time, gapCause string) error {
	n, err := OpusSamples(f.Data)
	if err != nil {
		return nil // not a valid Opus packet; skip it rather than corrupt the stream
	}
	dur := int64(n)
	expected := samplesAt(wall.Sub(s.start))
	if gap := expected - s.samples; gap >= minGapSamples {
		startMs := s.samples * 1000 / OpusSampleRate
		filled := int64(0)
		for _, pkt := range OpusSilence(time.Duration(gap) * time.Second / OpusSampleRate) {
			k, err := OpusSamples(pkt)
			if err != nil {
				return err
			}
			s.samples += int64(k)
			filled += int64(k)
			if err := s.ogg.WritePacket(pkt, uint64(s.samples)); err != nil {
				return err
			}
		}
		s.addGap(Gap{StartMs: startMs, LengthMs: filled * 1000 / OpusSampleRate, Cause: gapCause})
	}
	s.samples += dur
	if err := s.ogg.WritePacket(f.Data, uint64(s.samples)); err != nil {
		return err
	}
	s.frames++
	s.bytes += uint64(len(f.Data))
	return nil
}

// minGapSamples is the smallest hole in the audio timeline that is filled (and reported): one
// 20 ms frame. Smaller differences are network jitter, absorbed by the timeline.
const minGapSamples = 960

func (s *segment) writeVideo(f Frame, wall time.Time, gapCause string) error {
	pts := wall.Sub(s.start).Nanoseconds() * videoRate / int64(time.Second)
	if s.frames > 0 {
		if pts <= s.lastPTS {
			pts = s.lastPTS + 1 // keep PTS strictly increasing
		}
		interval := pts - s.lastPTS
		// A pause far longer than the frame interval is a gap in the picture (mute, loss, reconnect).
		if s.lastDur > 0 && interval > 10*s.lastDur && interval > videoRate/2 {
			s.addGap(Gap{StartMs: (s.lastPTS + s.lastDur) * 1000 / videoRate, LengthMs: (interval - s.lastDur) * 1000 / videoRate, Cause: gapCause})
		} else {
			s.lastDur = interval
		}
	}
	if f.Keyframe && f.Width > 0 && f.Height > 0 && (f.Width != s.width || f.Height != s.height) {
		if s.width != 0 {
			s.resizes = append(s.resizes, ResolutionChange{AtMs: pts * 1000 / videoRate, Width: f.Width, Height: f.Height})
			s.rec.log.Info("resolution changed", "file", s.relPath, "width", f.Width, "height", f.Height)
		}
		s.width, s.height = f.Width, f.Height
		if s.ivf != nil && len(s.resizes) == 0 {
			s.ivf.SetSize(uint16(f.Width), uint16(f.Height))
		}
	}
	var err error
	switch {
	case s.ivf != nil:
		err = s.ivf.WriteFrame(f.Data, uint64(pts))
	case s.annexb != nil:
		err = s.annexb.WriteAccessUnit(SplitAnnexB(f.Data))
	}
	if err != nil {
		return err
	}
	s.lastPTS = pts
	s.frames++
	s.bytes += uint64(len(f.Data))
	return nil
}

func (s *segment) addGap(g Gap) {
	if len(s.gaps) < maxGapsPerFile {
		s.gaps = append(s.gaps, g)
	}
}

// maxGapsPerFile bounds the manifest (a DTX talker produces a gap per pause).
const maxGapsPerFile = 10000

func (s *segment) keyframeWait(from, to time.Time) {
	if w := to.Sub(from); w > 0 && len(s.waits) < 1000 {
		s.waits = append(s.waits, KeyframeWait{AtMs: max(0, from.Sub(s.start).Milliseconds()), WaitMs: w.Milliseconds()})
	}
}

func (s *segment) senderReport(sr *rtcp.SenderReport, at time.Time) {
	if s.sr == nil {
		s.sr = &SenderReport{NTPTime: sr.NTPTime, RTPTime: sr.RTPTime, ReceivedAtMs: at.Sub(s.rec.started).Milliseconds()}
	}
	s.sr.Count++
}

// flush pushes buffered bytes to the file (and keeps the IVF header current).
func (s *segment) flush() error {
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("flush %s: %w", s.partPath, err)
	}
	if s.ivf != nil {
		return s.ivf.PatchHeader()
	}
	return nil
}

// close finishes the container and the file; the caller renames it.
func (s *segment) close() error {
	var errs []error
	switch {
	case s.ogg != nil:
		errs = append(errs, s.ogg.Close())
	case s.ivf != nil:
		errs = append(errs, s.ivf.Close()) // patches the header with the final frame count
	case s.annexb != nil:
		errs = append(errs, s.annexb.Close())
	}
	errs = append(errs, s.bw.Flush(), s.file.Sync(), s.file.Close())
	return errors.Join(errs...)
}

// openContainer creates the writer for the track's codec: Ogg for Opus (with OpusTags naming the
// participant and start time), IVF for VP8/VP9/AV1 (size from the first keyframe), Annex-B for H.264.
func (s *segment) openContainer(info bot.TrackInfo, first Frame, r *Recording) error {
	out := &bufferedFile{Writer: s.bw, f: s.file}
	var err error
	switch strings.ToLower(info.MimeType) {
	case "audio/opus":
		ch := uint8(2)
		if info.Channels == 1 {
			ch = 1
		}
		s.ogg, err = NewOggWriter(out, OggOptions{Channels: ch, Serial: info.SSRC, Comments: []string{
			"ROOMTAPE_RECORDING=" + r.opts.ID, "ROOMTAPE_PEER=" + info.PeerID, "ROOMTAPE_TRACK=" + info.TrackID,
			"ROOMTAPE_ROLE=" + info.Role(), "ROOMTAPE_START=" + s.start.UTC().Format(time.RFC3339Nano),
		}})
	case "video/h264":
		s.annexb, err = NewAnnexBWriter(out)
	default:
		var fourcc string
		if fourcc, err = IVFFourCC(info.MimeType); err == nil {
			s.ivf, err = NewIVFWriter(out, fourcc, uint16(first.Width), uint16(first.Height))
			s.width, s.height = first.Width, first.Height
		}
	}
	if err != nil {
		return fmt.Errorf("open %s writer: %w", info.MimeType, err)
	}
	return nil
}

// extensionFor is the file extension of a codec's container.
func extensionFor(mimeType string) string {
	switch strings.ToLower(mimeType) {
	case "audio/opus":
		return "ogg"
	case "video/h264":
		return "h264"
	default:
		return "ivf"
	}
}

// bufferedFile is the buffered output of a segment. WriteAt flushes the buffer and then writes
// in place, which lets the IVF writer patch its header without losing buffered frames.
type bufferedFile struct {
	*bufio.Writer
	f *os.File
}

// WriteAt writes p at off in the file after flushing buffered bytes.
func (b *bufferedFile) WriteAt(p []byte, off int64) (int, error) {
	if err := b.Flush(); err != nil {
		return 0, err
	}
	return b.f.WriteAt(p, off)
}
