package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/recorder"
)

func newWorkerCmd(g *globalFlags) *cobra.Command {
	var jsonOut, loopback bool
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a recording worker: pull jobs from NATS JetStream and record them",
		Long: "Pull recording jobs from the queue, one at a time and only while below worker.capacity, and\n" +
			"record them. With nats.url \"embedded\" (the default) the worker also runs the NATS server.\n" +
			"The first stdout line is \"worker ID ready\" (with --json, a JSON object). SIGTERM drains:\n" +
			"no more jobs are pulled, running ones get worker.drain_timeout to finish, then they are\n" +
			"finalized and handed back to the queue for another worker.",
		Args: cobra.NoArgs,
	}
	cmd.Flags().String("id", "", "worker id (config worker.id)")
	cmd.Flags().Int("capacity", 0, "jobs at once (config worker.capacity; default: CPU count)")
	cmd.Flags().Duration("drain-timeout", 0, "time running jobs get to finish on SIGTERM (config worker.drain_timeout)")
	cmd.Flags().String("metrics-listen", "", "address of /healthz, /readyz, /metrics (config worker.metrics_listen)")
	cmd.Flags().String("nats-url", "", "\"embedded\" or nats://host:port,... (config nats.url)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "JSON logs and a JSON ready line")
	cmd.Flags().BoolVar(&loopback, "loopback", false, "gather 127.0.0.1 candidates (peers on this host only)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		bound := map[string]*pflag.Flag{
			"worker.id": cmd.Flags().Lookup("id"), "worker.capacity": cmd.Flags().Lookup("capacity"),
			"worker.drain_timeout": cmd.Flags().Lookup("drain-timeout"), "worker.metrics_listen": cmd.Flags().Lookup("metrics-listen"),
			"nats.url": cmd.Flags().Lookup("nats-url"),
		}
		return g.run(cmd, bound, func(ctx context.Context, lc loadedConfig) error {
			if jsonOut {
				lc.Log.Format = "json"
			}
			lc.Bot.Network.IncludeLoopback = lc.Bot.Network.IncludeLoopback || loopback
			return runWorker(ctx, lc, jsonOut, cmd.OutOrStdout(), cmd.ErrOrStderr())
		})
	}
	return cmd
}

// workerProfiles are the configured profiles, or the demo app of a local `roomtape signal` as
// jobs.profile when none is configured (as `roomtape record` does).
func workerProfiles(lc loadedConfig) map[string]pipeline.Profile {
	if len(lc.Profiles) > 0 {
		return lc.Profiles
	}
	return map[string]pipeline.Profile{lc.Jobs.Profile: pipeline.DemoProfile("ws://" + lc.Signal.Listen)}
}

// runWorker runs the worker until ctx ends, then drains it, the NATS connection and (when
// embedded) the NATS server, in that order.
func runWorker(ctx context.Context, lc loadedConfig, jsonOut bool, stdout, stderr io.Writer) (err error) {
	log, err := newLogger(lc.Log, stderr)
	if err != nil {
		return err
	}
	nc, embedded, err := pipeline.Open(lc.NATS, "roomtape worker", log)
	if err != nil {
		return err
	}
	defer func() {
		drainConn(nc, 10*time.Second)
		if embedded != nil {
			embedded.Shutdown()
		}
	}()
	q, err := pipeline.OpenQueue(ctx, nc, lc.NATS, log)
	if err != nil {
		return err
	}
	tr, err := bot.NewTransport(lc.Bot.Network, log)
	if err != nil {
		return err
	}
	defer tr.Close()
	w, err := pipeline.NewWorker(q, pipeline.WorkerConfig{
		ID: lc.Worker.ID, Capacity: lc.Worker.Capacity, DrainTimeout: lc.Worker.DrainTimeout,
		Profiles: workerProfiles(lc), Jobs: lc.Jobs,
		PeerID: lc.Bot.PeerID, PeerMetadata: lc.Bot.PeerMetadata,
		Bot: bot.Config{Announce: lc.Bot.Announce, LeftGrace: lc.Bot.LeftGrace, DeadSessionTimeout: lc.Bot.DeadSessionTimeout,
			MaxTracksPerPeer: lc.Bot.MaxTracksPerPeer},
		Recorder: recorder.Options{Dir: lc.Recorder.OutDir, JitterLatency: lc.Recorder.JitterLatency,
			FlushInterval: lc.Recorder.FlushInterval, CaptureMessages: lc.Recorder.CaptureMessages},
		Monitor: lc.Monitor.monitorConfig(lc.Recorder.JitterLatency),
		Network: lc.Bot.Network, Transport: tr, Logger: log,
	})
	if err != nil {
		return err
	}
	metricsURL := ""
	if lc.Worker.MetricsListen != "" {
		ln, err := net.Listen("tcp", lc.Worker.MetricsListen)
		if err != nil {
			return fmt.Errorf("worker.metrics_listen %s: %w", lc.Worker.MetricsListen, err)
		}
		srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 5 * time.Second}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
				err = errors.Join(err, serr)
			}
		}()
		metricsURL = "http://" + ln.Addr().String()
	}
	natsURL := lc.NATS.URL
	if embedded != nil {
		natsURL = embedded.ClientURL()
	}
	if jsonOut {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"worker": w.ID(), "ready": true, "nats": natsURL, "metrics": metricsURL,
			"capacity": w.Capacity()})
	} else {
		fmt.Fprintf(stdout, "worker %s ready (nats %s, metrics %s)\n", w.ID(), natsURL, orNone(metricsURL))
	}
	return w.Run(ctx)
}

// drainConn drains a NATS connection (flushing acks and events) and waits until it is closed.
func drainConn(nc *nats.Conn, timeout time.Duration) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		nc.Close()
	}
}

func orNone(s string) string {
	if s == "" {
		return "off"
	}
	return s
}
