package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// globalFlags are shared by every subcommand.
type globalFlags struct {
	configPath string
	logLevel   string
	logFormat  string
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "roomtape",
		Short: "Record WebRTC rooms of Metered Realtime channels",
		Long: "roomtape joins Metered Realtime channels as a bot peer and records every remote track.\n" +
			"It also ships a self-hosted signalling server that speaks Metered's wire protocol.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "configuration file (default ./config.yaml when present)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "log level: debug, info, warn, error (config log.level)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "", "log format: auto, text, json (config log.format)")
	root.AddCommand(newSignalCmd(g), newTokenCmd(g), newBenchCmd(g), newPublishCmd(g), newRecordCmd(g), newDemoCmd(g))
	root.AddCommand(newWorkerCmd(g), newSubmitCmd(g), newStatusCmd(g), newJobsCmd(g), newStopCmd(g), newWatchCmd(g), newHealthcheckCmd())
	return root
}

// load reads the configuration with the given subcommand flags bound to config keys.
func (g *globalFlags) load(bound map[string]*pflag.Flag) (loadedConfig, error) {
	if bound == nil {
		bound = map[string]*pflag.Flag{}
	}
	if g.logLevel != "" {
		bound["log.level"] = stringFlag("log-level", g.logLevel)
	}
	if g.logFormat != "" {
		bound["log.format"] = stringFlag("log-format", g.logFormat)
	}
	return loadConfig(g.configPath, bound)
}

// run is the body of a subcommand's RunE: it loads the configuration (bound as for load) and
// runs fn with cmd's context, cancelled by Ctrl-C or SIGTERM.
func (g *globalFlags) run(cmd *cobra.Command, bound map[string]*pflag.Flag, fn func(ctx context.Context, lc loadedConfig) error) error {
	lc, err := g.load(bound)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return fn(ctx, lc)
}

// stringFlag makes a changed flag carrying value, for binding global flags to config keys.
func stringFlag(name, value string) *pflag.Flag {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.String(name, "", "")
	_ = fs.Set(name, value)
	return fs.Lookup(name)
}

// newLogger builds the process logger: text on a terminal, JSON otherwise (or as configured).
func newLogger(cfg LogConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		return nil, fmt.Errorf("log.level %q: %w", cfg.Level, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := strings.ToLower(cfg.Format)
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log.format %q: want auto, text or json", cfg.Format)
	}
}
