package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/publisher"
	"github.com/roomtape/roomtape/recorder"
	"github.com/roomtape/roomtape/signalling"
)

// built is the roomtape binary the tests run, compiled by the first buildBinary.
var built struct {
	once sync.Once
	dir  string // removed by TestMain
	out  []byte
	err  error
}

// buildBinary compiles roomtape once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "roomtape-test-bin-"); built.err == nil {
			built.out, built.err = exec.Command("go", "build", "-o", filepath.Join(built.dir, "roomtape"), ".").CombinedOutput()
		}
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return filepath.Join(built.dir, "roomtape")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// kill -9 of `roomtape record` mid-recording leaves .part files that decode up to at most the
// last second before the kill, and a manifest that lists them as partial.
func TestRecordSurvivesKill9(t *testing.T) {
	testenv.RequireTools(t)
	bin := buildBinary(t)
	url := testenv.SignalServer(t, signalling.ServerConfig{})
	tr := testenv.Transport(t)
	dir := fixtures.Dir(t)
	cc, err := pipeline.DemoProfile(url).ClientConfig("alice", nil, "room")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := publisher.New(publisher.Config{Channel: "room", Loop: true, Signalling: cc, Streams: []publisher.Stream{
		{Role: "camera", Audio: filepath.Join(dir, fixtures.Audio), Video: filepath.Join(dir, fixtures.Camera)}}}, tr.API())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = pub.Run(ctx) }()

	out := t.TempDir()
	cmd := exec.Command(bin, "record", "--config", filepath.Join(t.TempDir(), "none.yaml"), "--signal-url", url,
		"--channel", "room", "--loopback", "--out", out, "--id", "crash")
	// An explicit empty config keeps the repository's config.yaml out of the test.
	if err := os.WriteFile(cmd.Args[3], []byte("log: {level: warn}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(out, "crash", recorder.ManifestName)
	deadline := time.Now().Add(30 * time.Second)
	var m *recorder.Manifest
	for {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("recording never wrote two files with data")
		}
		time.Sleep(200 * time.Millisecond)
		if m, err = recorder.ReadManifest(manifest); err != nil {
			continue
		}
		withData := 0
		for _, f := range m.Files() {
			if f.File.DurationMs > 3000 {
				withData++
			}
		}
		if withData == 2 {
			break
		}
	}
	killedAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	m, err = recorder.ReadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != recorder.StatusRecording {
		t.Errorf("manifest status %q after kill -9, want %q (it never finished)", m.Status, recorder.StatusRecording)
	}
	for _, ref := range m.Files() {
		f := ref.File
		if !f.Partial || !strings.HasSuffix(f.Path, ".part") {
			t.Errorf("%s: partial=%v after kill -9", f.Path, f.Partial)
		}
		path := filepath.Join(out, "crash", f.Path)
		format := "ogg"
		if ref.Track.Kind == "video" {
			format = "ivf"
		}
		// Decode everything: errors are allowed only at the very end (a page or frame cut by the kill).
		dec, _ := exec.Command("ffmpeg", "-v", "error", "-f", format, "-i", path, "-f", "null", "-").CombinedOutput()
		if lines := strings.Split(strings.TrimSpace(string(dec)), "\n"); len(lines) > 2 {
			t.Errorf("%s: decoding errors beyond the cut:\n%s", f.Path, dec)
		}
		pts, err := exec.Command("ffprobe", "-v", "error", "-f", format, "-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", path, err)
		}
		fields := strings.Fields(string(pts))
		if len(fields) == 0 {
			t.Fatalf("%s has no packets", path)
		}
		last, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		recorded := killedAt.Sub(m.StartedAt) - time.Duration(f.StartOffsetMs)*time.Millisecond
		// At most one flush interval plus the jitter buffer's latency may be missing.
		lost := recorded - time.Duration(last*float64(time.Second))
		t.Logf("%s: %.2fs decodable, %s recorded before the kill", f.Path, last, recorded.Round(time.Millisecond))
		if lost > 1200*time.Millisecond {
			t.Errorf("%s: %.2fs decodable of %s recorded before the kill (lost %s)", f.Path, last, recorded, lost)
		}
	}
}
