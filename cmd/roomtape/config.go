package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/monitor"
	"github.com/roomtape/roomtape/pipeline"
	"github.com/roomtape/roomtape/signalling"
)

// Config is the whole roomtape configuration, as documented in config.yaml.
type Config struct {
	Log    LogConfig               `mapstructure:"log"`
	Signal signalling.ServerConfig `mapstructure:"signal"`
	// Profiles are named signalling services with the bot's credentials; jobs name one.
	Profiles map[string]pipeline.Profile `mapstructure:"profiles"`
	Bot      BotConfig                   `mapstructure:"bot"`
	Recorder RecorderConfig              `mapstructure:"recorder"`
	Monitor  MonitorConfig               `mapstructure:"monitor"`
	// NATS is the job queue (embedded server by default); Worker and Jobs configure `roomtape worker`.
	NATS   pipeline.NATSConfig  `mapstructure:"nats"`
	Worker WorkerConfig         `mapstructure:"worker"`
	Jobs   pipeline.JobDefaults `mapstructure:"jobs"`
}

// WorkerConfig is the `roomtape worker` daemon.
type WorkerConfig struct {
	ID            string        `mapstructure:"id"`             // default <hostname>-<random>
	Capacity      int           `mapstructure:"capacity"`       // jobs at once; 0 = CPU count
	DrainTimeout  time.Duration `mapstructure:"drain_timeout"`  // SIGTERM: finish within, else hand back
	MetricsListen string        `mapstructure:"metrics_listen"` // /healthz /readyz /metrics; "" = off
}

// BotConfig is how the bot presents itself and reaches browsers.
type BotConfig struct {
	PeerID             string            `mapstructure:"peer_id"`
	PeerMetadata       map[string]any    `mapstructure:"peer_metadata"`
	Announce           bool              `mapstructure:"announce"`
	LeftGrace          time.Duration     `mapstructure:"left_grace"`
	DeadSessionTimeout time.Duration     `mapstructure:"dead_session_timeout"`
	MaxTracksPerPeer   int               `mapstructure:"max_tracks_per_peer"`
	Network            bot.NetworkConfig `mapstructure:"network"`
}

// RecorderConfig is where and how files are written.
type RecorderConfig struct {
	OutDir          string        `mapstructure:"out_dir"`
	JitterLatency   time.Duration `mapstructure:"jitter_latency"`
	FlushInterval   time.Duration `mapstructure:"flush_interval"`
	CaptureMessages bool          `mapstructure:"capture_messages"`
}

// MonitorConfig is call monitoring: the stats interval and the alert thresholds (0 disables one).
type MonitorConfig struct {
	Interval        time.Duration `mapstructure:"interval"`
	SpeechLevelDBov float64       `mapstructure:"speech_level_dbov"`
	Alerts          struct {
		SilentAfter     time.Duration `mapstructure:"silent_after"`
		FrozenAfter     time.Duration `mapstructure:"frozen_after"`
		LossPercent     float64       `mapstructure:"loss_percent"`
		LossFor         time.Duration `mapstructure:"loss_for"`
		NoMediaAfter    time.Duration `mapstructure:"no_media_after"`
		NoKeyframeAfter time.Duration `mapstructure:"no_keyframe_after"`
		LeftAfter       time.Duration `mapstructure:"left_after"`
	} `mapstructure:"alerts"`
}

// monitorConfig turns the section into a monitor.Config.
func (c MonitorConfig) monitorConfig(jitterLatency time.Duration) monitor.Config {
	a := c.Alerts
	return monitor.Config{
		Interval: c.Interval, SpeechLevel: c.SpeechLevelDBov, RecoveryWindow: jitterLatency,
		Thresholds: monitor.Thresholds{
			SilentAfter: a.SilentAfter, FrozenAfter: a.FrozenAfter, LossPercent: a.LossPercent, LossFor: a.LossFor,
			NoMediaAfter: a.NoMediaAfter, NoKeyframeAfter: a.NoKeyframeAfter, LeftAfter: a.LeftAfter,
		},
	}
}

// monitorDefaults are the monitor section's defaults (an explicit 0 disables an alert).
func monitorDefaults() map[string]any {
	th := monitor.DefaultThresholds()
	return map[string]any{
		"monitor.interval": "5s", "monitor.speech_level_dbov": -50.0,
		"monitor.alerts.silent_after": th.SilentAfter.String(), "monitor.alerts.frozen_after": th.FrozenAfter.String(),
		"monitor.alerts.loss_percent": th.LossPercent, "monitor.alerts.loss_for": th.LossFor.String(),
		"monitor.alerts.no_media_after": th.NoMediaAfter.String(), "monitor.alerts.no_keyframe_after": th.NoKeyframeAfter.String(),
		"monitor.alerts.left_after": th.LeftAfter.String(),
	}
}

// boolDefaults are the options whose default is true (a zero bool cannot say "unset").
var boolDefaults = []string{"signal.rate_limit.enabled", "bot.announce", "recorder.capture_messages"}

// LogConfig selects the log output.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // auto (text on a terminal, else JSON), text, json
}

// loadedConfig is a Config plus facts about where it came from.
type loadedConfig struct {
	Config
	Path      string // file read, "" when none
	AddedDemo bool   // no apps configured: the built-in demo app is in use
}

// envPrefix prefixes environment overrides: ROOMTAPE_SIGNAL_LISTEN overrides signal.listen.
const envPrefix = "ROOMTAPE"

// ParseConfig decodes YAML from r (which may be nil) with environment overrides and bound flags,
// then applies defaults and validates. It has no side effects beyond reading its inputs.
func ParseConfig(r io.Reader, flags map[string]*pflag.Flag, environ []string) (loadedConfig, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	for _, k := range boolDefaults {
		v.SetDefault(k, true)
	}
	for k, val := range monitorDefaults() {
		v.SetDefault(k, val)
	}
	if r != nil {
		if err := v.ReadConfig(r); err != nil {
			return loadedConfig{}, fmt.Errorf("parse config: %w", err)
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix+"_") {
			env[k] = val
		}
	}
	for _, key := range leafKeys(reflect.TypeOf(Config{}), "") {
		name := envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		if val, ok := env[name]; ok {
			v.Set(key, val)
		}
	}
	for key, f := range flags {
		if f != nil && f.Changed {
			v.Set(key, f.Value.String())
		}
	}
	var cfg Config
	err := v.Unmarshal(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)), func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = true })
	if err != nil {
		return loadedConfig{}, fmt.Errorf("decode config: %w", err)
	}
	lc := loadedConfig{Config: cfg}
	if lc.Log.Level == "" {
		lc.Log.Level = "info"
	}
	if lc.Log.Format == "" {
		lc.Log.Format = "auto"
	}
	lc.AddedDemo = lc.Signal.Defaults()
	if err := lc.Signal.Validate(); err != nil {
		return loadedConfig{}, err
	}
	if lc.Recorder.OutDir == "" {
		lc.Recorder.OutDir = "recordings"
	}
	if lc.Bot.PeerID == "" {
		lc.Bot.PeerID = "~roomtape-recorder"
	}
	if !signalling.ValidPeerID(lc.Bot.PeerID) {
		return loadedConfig{}, &signalling.ConfigError{Field: "bot.peer_id", Msg: "must be 1-128 printable ASCII characters"}
	}
	if lc.Bot.PeerMetadata == nil {
		lc.Bot.PeerMetadata = map[string]any{"roomtape": "recorder"}
	}
	if err := lc.Bot.Network.Validate(); err != nil {
		return loadedConfig{}, err
	}
	lc.NATS.Defaults()
	if err := lc.NATS.Validate(); err != nil {
		return loadedConfig{}, fmt.Errorf("%w: %w", signalling.ErrInvalidConfig, err)
	}
	if lc.Monitor.Interval < 100*time.Millisecond {
		return loadedConfig{}, &signalling.ConfigError{Field: "monitor.interval", Msg: "must be at least 100ms"}
	}
	if lc.Monitor.Alerts.LossPercent < 0 || lc.Monitor.Alerts.LossPercent > 100 {
		return loadedConfig{}, &signalling.ConfigError{Field: "monitor.alerts.loss_percent", Msg: "must be between 0 and 100"}
	}
	if l := lc.Monitor.SpeechLevelDBov; l > 0 || l < -127 {
		return loadedConfig{}, &signalling.ConfigError{Field: "monitor.speech_level_dbov", Msg: "must be between -127 and 0"}
	}
	lc.Jobs.Defaults()
	if err := lc.Jobs.Validate(); err != nil {
		return loadedConfig{}, fmt.Errorf("%w: %w", signalling.ErrInvalidConfig, err)
	}
	if lc.Worker.Capacity < 0 {
		return loadedConfig{}, &signalling.ConfigError{Field: "worker.capacity", Msg: "must be >= 0 (0 = CPU count)"}
	}
	if lc.Worker.DrainTimeout < 0 {
		return loadedConfig{}, &signalling.ConfigError{Field: "worker.drain_timeout", Msg: "must be >= 0"}
	}
	if lc.Worker.DrainTimeout == 0 {
		lc.Worker.DrainTimeout = 30 * time.Second
	}
	for name, p := range lc.Profiles {
		if err := p.Validate(); err != nil {
			return loadedConfig{}, &signalling.ConfigError{Field: "profiles." + name, Msg: err.Error()}
		}
	}
	return lc, nil
}

// leafKeys lists the dotted mapstructure keys of every scalar field (slices of structs excluded),
// so that each can be overridden from the environment.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("mapstructure"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration":
			keys = append(keys, leafKeys(f.Type, key)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct, f.Type.Kind() == reflect.Map:
			// lists (apps, servers) and maps (profiles, metadata) only come from the file
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

// loadConfig reads the file named by --config (or ./config.yaml when present).
func loadConfig(path string, flags map[string]*pflag.Flag) (loadedConfig, error) {
	explicit := path != ""
	if !explicit {
		path = "config.yaml"
	}
	f, err := os.Open(path)
	switch {
	case err == nil:
		defer f.Close()
		lc, err := ParseConfig(f, flags, os.Environ())
		if err != nil {
			return lc, fmt.Errorf("%s: %w", path, err)
		}
		lc.Path = path
		return lc, nil
	case explicit || !errors.Is(err, fs.ErrNotExist):
		return loadedConfig{}, fmt.Errorf("open config: %w", err)
	default:
		return ParseConfig(nil, flags, os.Environ())
	}
}
