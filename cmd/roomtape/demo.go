package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/publisher"
	"github.com/roomtape/roomtape/recorder"
	"github.com/roomtape/roomtape/signalling"
)

type demoFlags struct {
	duration time.Duration
	out      string
	jsonOut  bool
	browser  bool
}

func newDemoCmd(g *globalFlags) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Record a room end to end on this machine: embedded NATS, signalling server, worker, two participants",
		Long: "Start everything embedded — NATS with JetStream, the signalling server on a free port, one\n" +
			"worker — plus two Go participants sending test clips (one adds a screen share half way),\n" +
			"submit a recording job, show its progress and a table of the files. Exit code 0 only if every\n" +
			"file verifies (in-process demux; ffmpeg's decode too when it is installed).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.run(cmd, nil, func(ctx context.Context, lc loadedConfig) error {
				if g.logLevel == "" {
					lc.Log.Level = "warn" // the demo's own output is the progress and the table
				}
				return runDemo(ctx, lc, f, cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	}
	cmd.Flags().DurationVar(&f.duration, "duration", 15*time.Second, "length of the recording job")
	cmd.Flags().StringVar(&f.out, "out", "", "output folder (config recorder.out_dir)")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print events and the verification as JSON lines")
	cmd.Flags().BoolVar(&f.browser, "browser", false, "also serve a page on 127.0.0.1 where you join the room with your camera (default duration 60s)")
	cmd.PreRun = func(cmd *cobra.Command, _ []string) {
		if f.browser && !cmd.Flags().Changed("duration") {
			f.duration = time.Minute // time to open the page and join
		}
	}
	return cmd
}

// demoChannel is the room the demo participants and the job use.
const demoChannel = "demo-room"

func runDemo(ctx context.Context, lc loadedConfig, f *demoFlags, stdout, stderr io.Writer) (err error) {
	log, err := newLogger(lc.Log, stderr)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "roomtape-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	out := f.out
	if out == "" {
		out = lc.Recorder.OutDir
	}

	// 1. The signalling server with the built-in demo app, on a free port.
	srv, err := signalling.NewServer(signalling.ServerConfig{}, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, srv.Shutdown(sctx), <-served)
	}()
	url := "ws://" + ln.Addr().String()
	fmt.Fprintf(stderr, "signalling server on %s\n", url)

	if f.browser {
		page, err := serveDemoPage(url, stderr)
		if err != nil {
			return err
		}
		defer page.Close()
	}

	// 2. Embedded NATS with JetStream (in-process only) and the job queue.
	natsCfg := lc.NATS
	natsCfg.Defaults()
	embedded, err := pipeline.StartEmbedded(pipeline.EmbeddedOptions{StoreDir: filepath.Join(tmp, "nats")})
	if err != nil {
		return err
	}
	defer embedded.Shutdown()
	nc, err := embedded.Connect(natsCfg, "roomtape demo", log)
	if err != nil {
		return err
	}
	defer drainConn(nc, 5*time.Second)
	q, err := pipeline.OpenQueue(ctx, nc, natsCfg, log)
	if err != nil {
		return err
	}

	// 3. One worker, peers on this host over loopback.
	netCfg := lc.Bot.Network
	netCfg.IncludeLoopback = true
	tr, err := bot.NewTransport(netCfg, log)
	if err != nil {
		return err
	}
	defer tr.Close()
	w, err := pipeline.NewWorker(q, pipeline.WorkerConfig{
		ID: "demo-worker", Capacity: 2, Profiles: map[string]pipeline.Profile{"default": pipeline.DemoProfile(url)},
		Jobs: pipeline.JobDefaults{Profile: "default"}, Transport: tr, Network: netCfg, Logger: log,
		Recorder: recorder.Options{Dir: out, CaptureMessages: true},
		Monitor:  lc.Monitor.monitorConfig(0),
		Bot:      bot.Config{Announce: true},
	})
	if err != nil {
		return err
	}
	wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(wctx) }()
	defer func() { stopWorker(); err = errors.Join(err, <-workerDone) }()

	// 4. Two participants; bob shares his "screen" half way through.
	media, err := fixtures.Extract(tmp)
	if err != nil {
		return err
	}
	camera := publisher.Stream{Role: "camera", Audio: filepath.Join(media, fixtures.Audio), Video: filepath.Join(media, fixtures.Camera)}
	pctx, stopPublishers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPublishers()
	var pubs []*publisher.Publisher
	for _, name := range []string{"alice", "bob"} {
		cc, err := pipeline.DemoProfile(url).ClientConfig(name, map[string]any{"name": name}, demoChannel)
		if err != nil {
			return err
		}
		p, err := publisher.New(publisher.Config{Channel: demoChannel, Signalling: cc, Streams: []publisher.Stream{camera}, Loop: true, Logger: log}, tr.API())
		if err != nil {
			return err
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = p.Run(pctx) }()
		defer func() { stopPublishers(); <-done }()
		pubs = append(pubs, p)
	}
	go func() {
		select {
		case <-time.After(f.duration / 2):
			if _, err := pubs[1].AddStream(publisher.Stream{Role: "screen", Video: filepath.Join(media, fixtures.Screen)}); err != nil {
				log.Warn("screen share", "err", err)
			}
		case <-pctx.Done():
		}
	}()

	// 5. Submit the job and follow it.
	d := pipeline.Duration(f.duration)
	job := pipeline.Job{Version: 1, ID: newJobID(demoChannel), Channel: demoChannel, Options: pipeline.JobOptions{MaxDuration: d},
		Labels: map[string]string{"source": "roomtape-demo"}}
	if _, err := q.Submit(ctx, job); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "submitted job %s: recording %s of %q with alice and bob\n", job.ID, f.duration, demoChannel)
	if err := followJob(ctx, q, job.ID, f.jsonOut, stdout, stderr); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// 6. Verify every file.
	return verifyRecording(filepath.Join(out, job.ID), stdout)
}

// verifyRecording checks every file of a finished recording: the in-process demux always, and
// ffmpeg's decode when ffmpeg is installed. It fails unless every file passes.
func verifyRecording(dir string, w io.Writer) error {
	m, err := recorder.ReadManifest(filepath.Join(dir, recorder.ManifestName))
	if err != nil {
		return err
	}
	ffmpeg, _ := exec.LookPath("ffmpeg")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tVERIFIED\tFFMPEG")
	failed := 0
	for _, ref := range m.Files() {
		path := filepath.Join(dir, ref.File.Path)
		verdict := "ok"
		if v, err := recorder.Verify(path); err != nil {
			verdict, failed = err.Error(), failed+1
		} else {
			verdict = fmt.Sprintf("ok (%d packets, %.1fs)", v.Packets, v.Duration.Seconds())
		}
		ff := "not installed"
		if ffmpeg != "" {
			// -enc_time_base -1 keeps the file's own time base: browsers may send two frames ~1 ms apart,
			// which ffmpeg's default re-timing reports as non-monotonic, though nothing is corrupt.
			out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", path, "-enc_time_base", "-1", "-f", "null", "-").CombinedOutput()
			switch msg := strings.TrimSpace(string(out)); {
			case err != nil || msg != "":
				ff, failed = "errors: "+firstLine(msg), failed+1
			default:
				ff = "decodes cleanly"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ref.File.Path, verdict, ff)
	}
	_ = tw.Flush()
	files := len(m.Files())
	switch {
	case files == 0:
		return errors.New("the demo recorded no files")
	case failed > 0:
		return &exitError{code: 1, err: fmt.Errorf("%d of %d files failed verification", failed, files)}
	}
	fmt.Fprintf(w, "all %d files verified; manifest: %s\n", files, filepath.Join(dir, recorder.ManifestName))
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

//go:embed demo_page.html
var demoPage string

// serveDemoPage serves, on 127.0.0.1, a page that joins the demo room with the visitor's camera
// through the real SDK, loaded from the project's npm dependency (test/sdk/node_modules).
func serveDemoPage(signalURL string, stderr io.Writer) (*http.Server, error) {
	sdk, err := findSDK()
	if err != nil {
		return nil, err
	}
	cfg, _ := json.Marshal(map[string]string{"url": signalURL, "apiKey": "pk_live_demo", "channel": demoChannel})
	page := strings.Replace(demoPage, "</head>", `<script id="config" type="application/json">`+string(cfg)+"</script>\n</head>", 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})
	mux.HandleFunc("GET /sdk.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, sdk)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(stderr, "join the room with your camera: open http://%s/ and press \"Join with camera\"\n", ln.Addr())
	return srv, nil
}

// findSDK locates the SDK's UMD bundle in the project's npm dependency.
func findSDK() (string, error) {
	const rel = "test/sdk/node_modules/@metered-ca/realtime/dist/index.umd.js"
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("--browser needs the SDK from npm: run (cd %s && npm ci)", filepath.Join(dir, "test/sdk"))
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("--browser must run inside the roomtape repository (it serves the SDK from test/sdk/node_modules)")
		}
		dir = parent
	}
}
