package main

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/roomtape/roomtape/internal/browsertest"
	"github.com/roomtape/roomtape/internal/testenv"
	"github.com/roomtape/roomtape/recorder"
)

// `roomtape demo --browser`: a person (headless Chromium with a fake camera) opens the page, joins
// through the real SDK served from the project's npm dependency, and is recorded next to the two
// Go participants; every file verifies.
func TestDemoBrowserParticipantIsRecorded(t *testing.T) {
	testenv.RequireTools(t)
	out := t.TempDir()
	lc, err := ParseConfig(strings.NewReader("log: {level: warn}\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	urls := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`open (http://127\.0\.0\.1:\d+/)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			t.Log(sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	var stdout strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- runDemo(context.Background(), lc, &demoFlags{duration: 25 * time.Second, out: out, browser: true}, &stdout, pw)
		pw.Close()
	}()
	var pageURL string
	select {
	case pageURL = <-urls:
	case err := <-done:
		t.Fatalf("demo ended before serving the page: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the demo page was never announced")
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browsertest.ChromiumPath()), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("open the demo page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.roomtapeJoin()`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("join from the demo page: %v", err)
	}
	state, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.roomtapeState`))
	if err != nil || !strings.HasPrefix(state, "publishing") {
		t.Fatalf("page state %q (%v)", state, err)
	}
	browserPeer := strings.TrimPrefix(state, "publishing as ")

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v\n%s", err, stdout.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("demo did not finish")
	}
	if !strings.Contains(stdout.String(), "files verified") {
		t.Fatalf("no verification summary:\n%s", stdout.String())
	}
	manifests, _ := filepath.Glob(filepath.Join(out, "*", recorder.ManifestName))
	if len(manifests) != 1 {
		t.Fatalf("manifests: %v", manifests)
	}
	m, err := recorder.ReadManifest(manifests[0])
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, ref := range m.Files() {
		if ref.Participant.PeerID == browserPeer && ref.Track.Role == "camera" {
			kinds[ref.Track.Kind] = true
		}
	}
	if !kinds["audio"] || !kinds["video"] {
		t.Fatalf("the browser participant %s was not recorded (audio %v, video %v):\n%s", browserPeer, kinds["audio"], kinds["video"], stdout.String())
	}
}
