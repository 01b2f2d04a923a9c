package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/internal/fixtures"
	"github.com/roomtape/roomtape/publisher"
)

type publishFlags struct {
	profileFlags
	channel  string
	sub      string
	audio    string
	video    string
	role     string
	loop     bool
	loopback bool
}

func newPublishCmd(g *globalFlags) *cobra.Command {
	f := &publishFlags{}
	cmd := &cobra.Command{
		Use:   "publish --channel C [--audio a.ogg] [--video v.ivf] [--role camera] [--loop]",
		Short: "Join a channel as a participant that sends media from files (like an SDK peer)",
		Long: "Join a channel and publish an Ogg/Opus and/or IVF (VP8, VP9, AV1) file as one stream with\n" +
			"track metadata {\"role\": ROLE}, offering to every member like @metered-ca/realtime does.\n" +
			"Without --audio and --video the embedded test clips are sent.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.run(cmd, nil, func(ctx context.Context, lc loadedConfig) error { return runPublish(ctx, lc, f, cmd) })
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&f.channel, "channel", "", "channel to join (required)")
	cmd.Flags().StringVar(&f.sub, "sub", "", "peer id (default: publisher-<random>)")
	cmd.Flags().StringVar(&f.audio, "audio", "", "Ogg/Opus file (one packet per page)")
	cmd.Flags().StringVar(&f.video, "video", "", "IVF file (VP8, VP9 or AV1)")
	cmd.Flags().StringVar(&f.role, "role", "camera", "stream role sent as track metadata")
	cmd.Flags().BoolVar(&f.loop, "loop", false, "repeat the media until stopped")
	cmd.Flags().BoolVar(&f.loopback, "loopback", false, "gather 127.0.0.1 candidates (peers on this host only)")
	_ = cmd.MarkFlagRequired("channel")
	return cmd
}

func runPublish(ctx context.Context, lc loadedConfig, f *publishFlags, cmd *cobra.Command) error {
	log, err := newLogger(lc.Log, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	prof, err := f.resolve(lc)
	if err != nil {
		return err
	}
	sub := f.sub
	if sub == "" {
		sub = "publisher-" + uuid.NewString()[:8]
	}
	cc, err := prof.ClientConfig(sub, map[string]any{"name": sub}, f.channel)
	if err != nil {
		return err
	}
	audio, video := f.audio, f.video
	if audio == "" && video == "" {
		dir, err := os.MkdirTemp("", "roomtape-fixtures-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if _, err := fixtures.Extract(dir); err != nil {
			return err
		}
		audio, video = filepath.Join(dir, fixtures.Audio), filepath.Join(dir, fixtures.Camera)
	}
	netCfg := lc.Bot.Network
	netCfg.IncludeLoopback = netCfg.IncludeLoopback || f.loopback
	tr, err := bot.NewTransport(netCfg, log)
	if err != nil {
		return err
	}
	defer tr.Close()
	p, err := publisher.New(publisher.Config{
		Channel: f.channel, Signalling: cc, Loop: f.loop, Logger: log,
		Streams: []publisher.Stream{{Role: f.role, Audio: audio, Video: video}},
	}, tr.API())
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "publishing to %s as %s (%d tracks); Ctrl-C to stop\n", f.channel, sub, len(p.Tracks()))
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !f.loop {
		go func() {
			select {
			case <-p.MediaDone():
				cancel()
			case <-runCtx.Done():
			}
		}()
	}
	return p.Run(runCtx)
}
