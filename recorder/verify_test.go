package recorder_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/recorder"
)

func TestVerify(t *testing.T) {
	dir := fixtures.Dir(t)
	for _, tc := range []struct {
		file    string
		packets int
		dur     time.Duration
	}{
		{fixtures.Audio, 301, 6 * time.Second},
		{fixtures.Camera, 180, 6*time.Second - time.Second/30},
		{fixtures.CameraVP9, 120, 4*time.Second - time.Second/30},
	} {
		v, err := recorder.Verify(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if v.Packets != tc.packets || v.Duration < tc.dur-25*time.Millisecond || v.Duration > tc.dur+25*time.Millisecond {
			t.Errorf("%s: %+v, want %d packets over %s", tc.file, v, tc.packets, tc.dur)
		}
	}
	// Truncated and corrupted files are caught.
	for _, name := range []string{fixtures.Audio, fixtures.Camera} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(cut, b[:len(b)-37], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := recorder.Verify(cut); err == nil {
			t.Errorf("%s cut short passed verification", name)
		}
		bad := append([]byte(nil), b...)
		bad[len(bad)/2] ^= 0xFF
		if name == fixtures.Audio {
			if err := os.WriteFile(cut, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := recorder.Verify(cut); err == nil {
				t.Errorf("%s with a flipped byte passed the CRC check", name)
			}
		}
	}
}
