package publisher

import (
	"testing"
	"time"

	"github.com/roomtape/roomtape/internal/fixtures"
)

func TestLoadClipDurations(t *testing.T) {
	dir := fixtures.Dir(t)
	for _, tc := range []struct {
		file    string
		mime    string
		samples int
		length  time.Duration
	}{
		{fixtures.Audio, "audio/opus", 301, 6 * time.Second}, // 6 s + pre-skip frame,
		{fixtures.Camera, "video/VP8", 180, 6 * time.Second},
		{fixtures.Screen, "video/VP8", 90, 6 * time.Second},
		{fixtures.CameraVP9, "video/VP9", 120, 4 * time.Second},
	} {
		t.Run(tc.file, func(t *testing.T) {
			c, err := loadClip(dir + "/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if c.mime != tc.mime || len(c.samples) != tc.samples {
				t.Errorf("mime %s samples %d, want %s %d", c.mime, len(c.samples), tc.mime, tc.samples)
			}
			if d := c.length(); d < tc.length-50*time.Millisecond || d > tc.length+50*time.Millisecond {
				t.Errorf("length %s, want %s", d, tc.length)
			}
		})
	}
}

func TestOpusDuration(t *testing.T) {
	for _, tc := range []struct {
		toc  []byte
		want time.Duration
	}{
		{[]byte{0xFC}, 20 * time.Millisecond},       // CELT FB 20 ms, 1 frame
		{[]byte{0xF8 | 1}, 40 * time.Millisecond},   // 2 frames of 20 ms
		{[]byte{0x08}, 20 * time.Millisecond},       // SILK NB 20 ms
		{[]byte{0xFB, 0x03}, 60 * time.Millisecond}, // code 3, 3 frames of 20 ms
		{[]byte{0xE0}, 2500 * time.Microsecond},     // CELT 2.5 ms
		{nil, 0},
	} {
		if got := opusDuration(tc.toc); got != tc.want {
			t.Errorf("opusDuration(%x) = %s, want %s", tc.toc, got, tc.want)
		}
	}
}

func TestLoadClipRejectsOtherFiles(t *testing.T) {
	if _, err := loadClip("media.go"); err == nil {
		t.Fatal("loaded a Go file as media")
	}
}

// length is the clip's total duration.
func (c clip) length() time.Duration {
	var d time.Duration
	for _, s := range c.samples {
		d += s.duration
	}
	return d
}
