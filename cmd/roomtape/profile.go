package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/roomtape/roomtape/pipeline"
)

// profileFlags select the signalling service for commands that join channels.
type profileFlags struct {
	profile   string
	signalURL string
}

func (f *profileFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.profile, "profile", "", "signalling profile from the config's profiles (default: \"default\" when configured)")
	cmd.Flags().StringVar(&f.signalURL, "signal-url", "", "signalling origin, e.g. ws://127.0.0.1:8787 (overrides the profile's url)")
}

// resolve picks the profile: --profile, else "default" from the config, else the built-in demo
// app's secret key on the local server (so a `roomtape signal` without config just works).
func (f *profileFlags) resolve(lc loadedConfig) (pipeline.Profile, error) {
	name := f.profile
	if name == "" {
		name = "default"
	}
	p, ok := lc.Profiles[name]
	switch {
	case ok:
	case f.profile != "":
		return pipeline.Profile{}, fmt.Errorf("no profile %q in the configuration", f.profile)
	default:
		p = pipeline.DemoProfile("ws://" + lc.Signal.Listen)
	}
	if f.signalURL != "" {
		p.URL = f.signalURL
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("profile %s: %w", name, err)
	}
	return p, nil
}
