package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/roomtape/roomtape/signalling"
)

type tokenFlags struct {
	sub          string
	app          string
	keyID        string
	channels     []string
	permissions  []string
	ttl          time.Duration
	metadata     string
	peerMetadata string
}

func newTokenCmd(g *globalFlags) *cobra.Command {
	f := &tokenFlags{}
	cmd := &cobra.Command{
		Use:   "token --sub NAME",
		Short: "Mint a JWT for the signalling protocol with a configured secret key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lc, err := g.load(nil)
			if err != nil {
				return err
			}
			tok, err := mintFromConfig(lc.Signal, f, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.sub, "sub", "", "peer id (JWT sub), required")
	cmd.Flags().StringVar(&f.app, "app", "", "app id (default: the first app)")
	cmd.Flags().StringVar(&f.keyID, "key-id", "", "secret key id (default: the app's first secret key)")
	cmd.Flags().StringArrayVar(&f.channels, "channel", nil, "channel pattern the token may use (repeatable; default: the key's patterns)")
	cmd.Flags().StringArrayVar(&f.permissions, "permission", nil, "subscribe, publish, presence or send (repeatable; default: the key's actions)")
	cmd.Flags().DurationVar(&f.ttl, "ttl", time.Hour, "token lifetime")
	cmd.Flags().StringVar(&f.metadata, "metadata", "", "connection metadata JSON object (delivered in welcome)")
	cmd.Flags().StringVar(&f.peerMetadata, "peer-metadata", "", "peer metadata JSON object (shown to other peers)")
	_ = cmd.MarkFlagRequired("sub")
	return cmd
}

// mintFromConfig signs a token with the selected app's secret key.
func mintFromConfig(cfg signalling.ServerConfig, f *tokenFlags, now time.Time) (string, error) {
	if f.ttl <= 0 {
		return "", fmt.Errorf("--ttl must be positive, got %s", f.ttl)
	}
	key, err := selectSecretKey(cfg, f.app, f.keyID)
	if err != nil {
		return "", err
	}
	c := signalling.Claims{Subject: f.sub, IssuedAt: now.Unix(), ExpiresAt: now.Add(f.ttl).Unix(), Channels: f.channels}
	for _, p := range f.permissions {
		c.Permissions = append(c.Permissions, signalling.Action(p))
	}
	for name, src := range map[string]struct {
		in  string
		out *json.RawMessage
	}{"--metadata": {f.metadata, &c.Metadata}, "--peer-metadata": {f.peerMetadata, &c.PeerMetadata}} {
		if src.in == "" {
			continue
		}
		if !json.Valid([]byte(src.in)) {
			return "", fmt.Errorf("%s is not valid JSON", name)
		}
		*src.out = json.RawMessage(src.in)
	}
	return signalling.MintToken(key.ID, key.Secret, c)
}

func selectSecretKey(cfg signalling.ServerConfig, appID, keyID string) (signalling.SecretKeyConfig, error) {
	for _, app := range cfg.Apps {
		if appID != "" && app.ID != appID {
			continue
		}
		for _, k := range app.SecretKeys {
			if keyID == "" || k.ID == keyID {
				return k, nil
			}
		}
		if appID != "" {
			break
		}
	}
	return signalling.SecretKeyConfig{}, fmt.Errorf("no secret key found (app %q, key id %q) in the configuration", appID, keyID)
}
