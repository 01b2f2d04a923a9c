package publisher

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/roomtape/roomtape/recorder"
)

// clip is a media file loaded into memory as timed samples, ready to be sent in a loop.
type clip struct {
	mime    string
	samples []sample
}

type sample struct {
	data     []byte
	duration time.Duration
}

// loadClip reads an Ogg/Opus or IVF (VP8, VP9, AV1) file.
func loadClip(path string) (clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return clip{}, fmt.Errorf("open media: %w", err)
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return clip{}, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return clip{}, err
	}
	var c clip
	switch string(magic[:]) {
	case "OggS":
		c, err = loadOpus(f)
	case "DKIF":
		c, err = loadIVF(f)
	default:
		err = errors.New("not an Ogg or IVF file")
	}
	if err != nil {
		return clip{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.samples) == 0 {
		return clip{}, fmt.Errorf("%s: no media samples", path)
	}
	return c, nil
}

func loadOpus(r io.Reader) (clip, error) {
	ogg, _, err := oggreader.NewWith(r)
	if err != nil {
		return clip{}, err
	}
	c := clip{mime: webrtc.MimeTypeOpus}
	for {
		payload, hdr, err := ogg.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		if err != nil {
			return clip{}, err
		}
		if _, isHeader := hdr.HeaderType(payload); isHeader || len(payload) == 0 {
			continue // OpusTags
		}
		d := opusDuration(payload)
		if d == 0 {
			return clip{}, errors.New("ogg page does not hold a single Opus packet (generate with -page_duration 20000)")
		}
		c.samples = append(c.samples, sample{data: payload, duration: d})
	}
}

// opusDuration is the duration of one Opus packet from its TOC byte (RFC 6716 §3.1), 0 when the
// packet is not a valid one.
func opusDuration(p []byte) time.Duration {
	n, err := recorder.OpusSamples(p)
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second / 48000
}

func loadIVF(r io.Reader) (clip, error) {
	ivf, hdr, err := ivfreader.NewWith(r)
	if err != nil {
		return clip{}, err
	}
	c := clip{}
	switch hdr.FourCC {
	case "VP80":
		c.mime = webrtc.MimeTypeVP8
	case "VP90":
		c.mime = webrtc.MimeTypeVP9
	case "AV01":
		c.mime = webrtc.MimeTypeAV1
	default:
		return clip{}, fmt.Errorf("unsupported IVF codec %q", hdr.FourCC)
	}
	if hdr.TimebaseDenominator == 0 {
		return clip{}, errors.New("IVF timebase is zero")
	}
	tick := time.Second * time.Duration(hdr.TimebaseNumerator) / time.Duration(hdr.TimebaseDenominator)
	var pts []uint64
	for {
		frame, fh, err := ivf.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return clip{}, err
		}
		c.samples = append(c.samples, sample{data: frame})
		// ivfreader reports pts*den/num; undo that to get the file's pts in timebase ticks.
		pts = append(pts, fh.Timestamp*uint64(hdr.TimebaseNumerator)/uint64(hdr.TimebaseDenominator))
	}
	for i := range c.samples {
		d := tick
		if i+1 < len(pts) && pts[i+1] > pts[i] {
			d = time.Duration(pts[i+1]-pts[i]) * tick
		}
		c.samples[i].duration = d
	}
	return c, nil
}
