package testenv

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequireTools fails the test (never skips) when ffmpeg or ffprobe is missing: checking the
// recorded files is the point of the tests that call it.
func RequireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (apt-get install ffmpeg); ./scripts/test installs it", tool)
		}
	}
}

// Probed is what ffmpeg and ffprobe say about a recorded file.
type Probed struct {
	End    time.Duration // last packet's time plus its duration (never trust format=duration for IVF)
	Frames int           // frames the decoder produced (video)
}

// Probe decodes a file with ffmpeg, which must print nothing (no corrupt frame, no bad packet),
// and measures it with ffprobe.
//
// The decoded frames keep the file's own time base (-enc_time_base -1, 1/90000 for IVF). With
// ffmpeg's default, frames are re-timed to the frame rate it guesses (20 fps for Chromium's fake
// camera), and the null muxer then reports "non monotonically increasing dts" for two frames that
// fall into one 50 ms slot. Chromium does send such frames when the machine is busy: its fake
// capturer delivers two frames about a millisecond apart and their RTP timestamps say so. That is
// the browser's timing, faithfully kept, not a decoding error; a decoding error is still printed.
func Probe(t testing.TB, path string) Probed {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-enc_time_base", "-1", "-f", "null", "-").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("%s does not decode cleanly: %v\n%s", path, err, out)
	}
	pts, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	lines := strings.Fields(strings.TrimSpace(string(pts)))
	if len(lines) == 0 {
		t.Fatalf("%s has no packets", path)
	}
	parts := strings.Split(lines[len(lines)-1], ",")
	last, _ := strconv.ParseFloat(parts[0], 64)
	if len(parts) > 1 {
		if d, err := strconv.ParseFloat(parts[1], 64); err == nil {
			last += d
		}
	}
	p := Probed{End: time.Duration(last * float64(time.Second))}
	if strings.HasSuffix(path, ".ivf") {
		n, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
			"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatalf("ffprobe -count_frames %s: %v", path, err)
		}
		p.Frames, _ = strconv.Atoi(strings.TrimSpace(string(n)))
	}
	return p
}
