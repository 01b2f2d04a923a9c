package mediabench

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/internal/testenv"
)

// newTestCtx bounds a test.
func newTestCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// withFleet starts an in-process server and n publishers (fixture clips) in channel "room".
func withFleet(t *testing.T, ctx context.Context, n int) string {
	t.Helper()
	srv, err := startServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.close(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	dir := fixtures.Dir(t)
	clip := Clip{Audio: filepath.Join(dir, fixtures.Audio), Video: filepath.Join(dir, fixtures.Camera)}
	f, err := startFleet(ctx, srv.url, "room", n, testenv.Transport(t), clip, nil, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.close(); err != nil {
			t.Errorf("publishers: %v", err)
		}
	})
	return srv.url
}

// Each receiver stack joins a channel with two publishers, receives all four tracks, and prints a
// final counters line once stopped; the disk sink leaves pion-written files.
func TestRunReceiverStacks(t *testing.T) {
	ctx := newTestCtx(t, 90*time.Second)
	url := withFleet(t, ctx, 2)
	for _, tc := range []struct{ stack, sink string }{
		{StackPion, SinkDiscard}, {StackPion, SinkDisk}, {StackBot, SinkDiscard},
	} {
		t.Run(tc.stack+"-"+tc.sink, func(t *testing.T) {
			out := t.TempDir()
			cfg := ReceiverConfig{SignalURL: url, Channel: "room", PeerID: "~test-" + tc.stack + "-" + tc.sink,
				Stack: tc.stack, Sink: tc.sink, Out: out, Interval: 50 * time.Millisecond}
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			pr, pw := io.Pipe()
			errc := make(chan error, 1)
			go func() { errc <- RunReceiver(runCtx, cfg, pw); pw.Close() }()
			sc := bufio.NewScanner(pr)
			var last Counters
			stopped := false
			for sc.Scan() {
				if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
					t.Fatalf("line %q: %v", sc.Text(), err)
				}
				if !stopped && last.Tracks == 4 && last.Peers == 2 && last.Packets > 200 {
					stop() // every track is flowing: finish
					stopped = true
				}
			}
			if err := <-errc; err != nil {
				t.Fatalf("RunReceiver: %v", err)
			}
			if !stopped {
				t.Fatalf("never saw 4 tracks from 2 peers receiving; last %+v", last)
			}
			if !last.Final || last.Packets == 0 || last.Bytes == 0 {
				t.Errorf("final line %+v", last)
			}
			if tc.sink != SinkDisk {
				return
			}
			files, _ := filepath.Glob(filepath.Join(out, "track-*"))
			var ogg, ivf int
			for _, f := range files {
				if st, err := os.Stat(f); err != nil {
					t.Errorf("%s: %v", f, err)
				} else if st.Size() < 100 {
					t.Errorf("%s: %d bytes", f, st.Size())
				}
				switch {
				case strings.HasSuffix(f, ".ogg"):
					ogg++
				case strings.HasSuffix(f, ".ivf"):
					ivf++
				}
			}
			if ogg != 2 || ivf != 2 {
				t.Errorf("files %v: want 2 .ogg and 2 .ivf", files)
			}
		})
	}
}

func TestReceiverConfigRejects(t *testing.T) {
	base := ReceiverConfig{SignalURL: "ws://x", Channel: "c", PeerID: "~r", Stack: StackPion, Sink: SinkDiscard}
	for name, mut := range map[string]func(*ReceiverConfig){
		"peer id without ~":   func(c *ReceiverConfig) { c.PeerID = "r" },
		"unknown stack":       func(c *ReceiverConfig) { c.Stack = "gst" },
		"bot writing to disk": func(c *ReceiverConfig) { c.Stack, c.Sink, c.Out = StackBot, SinkDisk, "/tmp" },
		"disk without folder": func(c *ReceiverConfig) { c.Sink = SinkDisk },
	} {
		c := base
		mut(&c)
		if err := c.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := base.validate(); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
}

func TestScanIVFFixture(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures.Dir(t), fixtures.Camera))
	if err != nil {
		t.Fatal(err)
	}
	st, err := scanIVF(b)
	if err != nil {
		t.Fatal(err)
	}
	// camera.ivf: 6 s, 320x240, 30 fps VP8.
	if st.width != 320 || st.height != 240 || st.fps < 29 || st.fps > 31 || st.seconds < 5.9 || st.seconds > 6.1 {
		t.Errorf("scan %+v", st)
	}
	if _, err := scanIVF([]byte("OggS....")); err == nil {
		t.Error("an Ogg file scanned as IVF")
	}
}
