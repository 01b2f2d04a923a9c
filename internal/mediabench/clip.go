package mediabench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/roomtape/roomtape/internal/fixtures"
)

// Clip is the media every publisher sends in a loop.
type Clip struct {
	Audio string `json:"audio"` // Ogg/Opus, 20 ms frames (the embedded fixture)
	Video string `json:"video"` // IVF (VP8)
	// Generated says the video was made at run time with ffmpeg (GenerateArgs).
	Generated    bool    `json:"generated"`
	VideoKbps    float64 `json:"video_kbps"` // average payload bitrate of the IVF file
	VideoFPS     float64 `json:"video_fps"`
	VideoSeconds float64 `json:"video_seconds"`
	Width        int     `json:"width"`
	Height       int     `json:"height"`
}

// GenerateArgs are the ffmpeg arguments (before the output path) of the default video clip:
// 10 s of testsrc2 at 640x480, 30 fps, VP8 at 1 Mbps with a keyframe every 2 s, encoded as a
// real-time encoder would.
var GenerateArgs = []string{"-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x480:rate=30", "-t", "10",
	"-c:v", "libvpx", "-b:v", "1M", "-g", "60", "-deadline", "realtime", "-cpu-used", "8", "-f", "ivf"}

// prepareClip extracts the audio fixture into dir and generates the video there (unless video
// names an existing IVF file), then measures the video.
func prepareClip(ctx context.Context, dir, video string) (Clip, error) {
	if _, err := fixtures.Extract(dir); err != nil {
		return Clip{}, err
	}
	c := Clip{Audio: filepath.Join(dir, fixtures.Audio), Video: video}
	if video == "" {
		if _, err := exec.LookPath("ffmpeg"); err != nil {
			return Clip{}, errors.New("bench: ffmpeg is required to generate the ~1 Mbps VP8 clip (apt-get install ffmpeg), or pass --video FILE.ivf")
		}
		c.Video, c.Generated = filepath.Join(dir, "video-1mbps.ivf"), true
		out, err := exec.CommandContext(ctx, "ffmpeg", append(GenerateArgs, c.Video)...).CombinedOutput()
		if err != nil {
			return Clip{}, fmt.Errorf("bench: generate video clip: %w\n%s", err, out)
		}
	}
	b, err := os.ReadFile(c.Video)
	if err != nil {
		return Clip{}, fmt.Errorf("bench: video clip: %w", err)
	}
	st, err := scanIVF(b)
	if err != nil {
		return Clip{}, fmt.Errorf("bench: %s: %w", c.Video, err)
	}
	c.Width, c.Height, c.VideoFPS, c.VideoSeconds = st.width, st.height, st.fps, st.seconds
	if st.seconds > 0 {
		c.VideoKbps = float64(st.payload) * 8 / st.seconds / 1000
	}
	return c, nil
}

type ivfStats struct {
	width, height int
	frames        int
	payload       int
	fps, seconds  float64
}

// scanIVF reads an IVF file's header and frame sizes.
func scanIVF(b []byte) (ivfStats, error) {
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		return ivfStats{}, errors.New("not an IVF file")
	}
	st := ivfStats{width: int(binary.LittleEndian.Uint16(b[12:])), height: int(binary.LittleEndian.Uint16(b[14:]))}
	rate, scale := binary.LittleEndian.Uint32(b[16:]), binary.LittleEndian.Uint32(b[20:])
	hdr := int(binary.LittleEndian.Uint16(b[6:]))
	if hdr < 32 || rate == 0 || scale == 0 {
		return ivfStats{}, errors.New("bad IVF header")
	}
	var first, last uint64
	for off := hdr; off+12 <= len(b); {
		size := int(binary.LittleEndian.Uint32(b[off:]))
		pts := binary.LittleEndian.Uint64(b[off+4:])
		if st.frames == 0 {
			first = pts
		}
		last = pts
		st.frames++
		st.payload += size
		off += 12 + size
	}
	if st.frames < 2 {
		return ivfStats{}, errors.New("fewer than two frames")
	}
	tick := float64(scale) / float64(rate) // seconds per pts unit
	span := float64(last-first) * tick
	st.fps = float64(st.frames-1) / span
	st.seconds = span + 1/st.fps
	return st, nil
}
