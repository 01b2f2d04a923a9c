package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/roomtape/roomtape/signalling"
)

func newSignalCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "signal",
		Short: "Run the self-hosted signalling server (Metered Realtime wire protocol)",
		Long: "Run the signalling server. The first line on stdout is `listening on ws://HOST:PORT`, so scripts\n" +
			"can start it on a free port with --listen 127.0.0.1:0. SIGTERM shuts down gracefully\n" +
			"(going_away, then close 1001).",
		Args: cobra.NoArgs,
	}
	cmd.Flags().String("listen", "", "listen address (config signal.listen, default 127.0.0.1:8787)")
	debugListen := cmd.Flags().String("debug-listen", "",
		"serve net/http/pprof on this separate address, announced as a second stdout line \"debug on http://HOST:PORT\" (off by default)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		bound := map[string]*pflag.Flag{"signal.listen": cmd.Flags().Lookup("listen")}
		return g.run(cmd, bound, func(ctx context.Context, lc loadedConfig) error {
			return serveSignal(ctx, lc, *debugListen, cmd.OutOrStdout(), cmd.ErrOrStderr())
		})
	}
	return cmd
}

// runSignal serves until ctx ends, then shuts down gracefully.
func runSignal(ctx context.Context, lc loadedConfig, stdout, stderr io.Writer) error {
	return serveSignal(ctx, lc, "", stdout, stderr)
}

// serveSignal is runSignal with an optional pprof listener on debugAddr ("" = none).
func serveSignal(ctx context.Context, lc loadedConfig, debugAddr string, stdout, stderr io.Writer) (err error) {
	log, err := newLogger(lc.Log, stderr)
	if err != nil {
		return err
	}
	srv, err := signalling.NewServer(lc.Signal, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", lc.Signal.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", lc.Signal.Listen, err)
	}
	fmt.Fprintf(stdout, "listening on ws://%s\n", ln.Addr())
	if debugAddr != "" {
		dbg, derr := startDebug(debugAddr, stdout)
		if derr != nil {
			_ = ln.Close()
			return derr
		}
		defer func() { err = errors.Join(err, dbg.Close()) }()
	}
	if lc.AddedDemo {
		log.Warn("no apps configured: serving the built-in demo app",
			"app", "demo", "publishable_key", "pk_live_demo", "secret_key_id", "sk_id_demo")
	}
	if lc.Path != "" {
		log.Info("configuration loaded", "path", lc.Path)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), srv.Config().ShutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && err == nil {
		err = serr
	}
	return err
}
