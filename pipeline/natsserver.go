package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/roomtape/roomtape/internal/logattr"
)

// EmbeddedURL is the nats.url value that runs an embedded nats-server inside the worker.
const EmbeddedURL = "embedded"

// NATSConfig is how roomtape reaches NATS and names its JetStream objects (config section nats).
type NATSConfig struct {
	// URL is "embedded" (an in-process nats-server with JetStream, for one machine) or the URLs
	// of an external server or cluster: nats://a:4222,nats://b:4222.
	URL string `mapstructure:"url" json:"url"`
	// Listen is the embedded server's client address, which other commands on this host
	// (submit, status, stop) connect to. "" = 127.0.0.1:4222.
	Listen string `mapstructure:"listen" json:"listen"`
	// StoreDir holds the embedded server's JetStream data. "" = nats-store.
	StoreDir string `mapstructure:"store_dir" json:"store_dir"`
	// CredentialsFile is a NATS .creds file (user JWT + NKey seed).
	CredentialsFile string `mapstructure:"credentials_file" json:"credentials_file"`
	// NKeySeedFile is a file holding a user NKey seed (SU...).
	NKeySeedFile string `mapstructure:"nkey_seed_file" json:"nkey_seed_file"`
	User         string `mapstructure:"user" json:"user"`
	Password     string `mapstructure:"password" json:"-"`
	// TLS: CA to verify the server, and an optional client certificate.
	TLS NATSTLSConfig `mapstructure:"tls" json:"tls"`

	// Stream is the WorkQueue stream of jobs, on Subject. Consumer is the one durable pull
	// consumer every worker shares. Bucket is the KV bucket of job states. EventsStream keeps
	// roomtape.events.> for EventsMaxAge so `submit --wait` and `status` can replay them.
	Stream       string `mapstructure:"stream" json:"stream"`
	Subject      string `mapstructure:"subject" json:"subject"`
	Consumer     string `mapstructure:"consumer" json:"consumer"`
	Bucket       string `mapstructure:"bucket" json:"bucket"`
	EventsStream string `mapstructure:"events_stream" json:"events_stream"`
	// Replicas of the stream, consumer, bucket and events stream (1, or 3 on a cluster).
	Replicas int `mapstructure:"replicas" json:"replicas"`
	// AckWait: a job whose worker stops sending heartbeats is redelivered after this long.
	AckWait time.Duration `mapstructure:"ack_wait" json:"ack_wait"`
	// MaxDeliver bounds deliveries of one job (crashes, hand-offs and retries all count).
	MaxDeliver int `mapstructure:"max_deliver" json:"max_deliver"`
	// MaxAckPending caps jobs running at once across all workers.
	MaxAckPending int `mapstructure:"max_ack_pending" json:"max_ack_pending"`
	// DedupeWindow: a job id submitted again within this window is ignored by the stream.
	DedupeWindow time.Duration `mapstructure:"dedupe_window" json:"dedupe_window"`
	// StateTTL is how long job states stay in the bucket (`roomtape jobs`, duplicate detection).
	StateTTL time.Duration `mapstructure:"state_ttl" json:"state_ttl"`
	// EventsMaxAge is how long job events are kept.
	EventsMaxAge time.Duration `mapstructure:"events_max_age" json:"events_max_age"`
	// StatsTTL is how long the monitor's stats events stay in the events stream (a per-message
	// TTL): they come every monitor.interval and are also in each recording's stats.jsonl, so
	// they need not crowd out the job's other events for EventsMaxAge. Default 1h.
	StatsTTL time.Duration `mapstructure:"stats_ttl" json:"stats_ttl"`
	// RequestTimeout bounds every JetStream call.
	RequestTimeout time.Duration `mapstructure:"request_timeout" json:"request_timeout"`
}

// NATSTLSConfig holds TLS files for an external server.
type NATSTLSConfig struct {
	CA   string `mapstructure:"ca" json:"ca"`
	Cert string `mapstructure:"cert" json:"cert"`
	Key  string `mapstructure:"key" json:"key"`
}

// Defaults fills every unset field.
func (c *NATSConfig) Defaults() {
	str := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	str(&c.URL, EmbeddedURL)
	str(&c.Listen, "127.0.0.1:4222")
	str(&c.StoreDir, "nats-store")
	str(&c.Stream, "ROOMTAPE_JOBS")
	str(&c.Subject, "roomtape.jobs")
	str(&c.Consumer, "roomtape-workers")
	str(&c.Bucket, "roomtape_jobs")
	str(&c.EventsStream, "ROOMTAPE_EVENTS")
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 5
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1000
	}
	dur(&c.AckWait, 30*time.Second)
	dur(&c.DedupeWindow, 2*time.Minute)
	dur(&c.StateTTL, 7*24*time.Hour)
	dur(&c.EventsMaxAge, 24*time.Hour)
	dur(&c.StatsTTL, time.Hour)
	dur(&c.RequestTimeout, 5*time.Second)
}

// Validate checks the configuration after Defaults; errors name the config key.
func (c NATSConfig) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("nats.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.URL != EmbeddedURL {
		for _, u := range strings.Split(c.URL, ",") {
			p, err := url.Parse(strings.TrimSpace(u))
			if err != nil || p.Host == "" || !natsSchemes[p.Scheme] {
				bad("url", "%q: want \"embedded\" or nats://host:port[,nats://...]", u)
			}
		}
	} else {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("listen", "%q: want host:port", c.Listen)
		}
		if c.CredentialsFile != "" || c.NKeySeedFile != "" || c.User != "" || c.TLS.CA != "" {
			bad("url", "credentials and TLS apply to an external server, not \"embedded\"")
		}
	}
	auth := 0
	for _, set := range []bool{c.CredentialsFile != "", c.NKeySeedFile != "", c.User != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		bad("credentials_file", "set only one of credentials_file, nkey_seed_file, user/password")
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key go together")
	}
	for key, name := range map[string]string{"stream": c.Stream, "consumer": c.Consumer, "bucket": c.Bucket, "events_stream": c.EventsStream} {
		if strings.ContainsAny(name, " .*>\t/\\") {
			bad(key, "%q: no spaces, dots, wildcards or slashes", name)
		}
	}
	if strings.ContainsAny(c.Subject, " *>\t") || strings.HasPrefix(c.Subject, EventsPrefix) || c.Subject == "" {
		bad("subject", "%q: a literal subject outside %s.>", c.Subject, EventsPrefix)
	}
	if c.StatsTTL < time.Second {
		bad("stats_ttl", "%s: at least 1s (JetStream's smallest message TTL)", c.StatsTTL)
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		bad("replicas", "%d: want 1, 3 or 5", c.Replicas)
	}
	if c.URL == EmbeddedURL && c.Replicas != 1 {
		bad("replicas", "the embedded server is a single node: use 1")
	}
	if c.AckWait < time.Second {
		bad("ack_wait", "%s: at least 1s", c.AckWait)
	}
	if c.MaxDeliver < 2 {
		bad("max_deliver", "%d: at least 2, or a crashed worker's job is never resumed", c.MaxDeliver)
	}
	return errors.Join(errs...)
}

var natsSchemes = map[string]bool{"nats": true, "tls": true, "ws": true, "wss": true}

// Open connects a worker: with url "embedded" it first starts the embedded server (store_dir,
// listening on listen for the other commands) and connects in-process; the caller shuts the
// server down (Embedded is nil for an external server) after draining the connection.
func Open(c NATSConfig, name string, log *slog.Logger) (*nats.Conn, *Embedded, error) {
	if c.URL != EmbeddedURL {
		nc, err := Dial(c, name, log)
		return nc, nil, err
	}
	e, err := StartEmbedded(EmbeddedOptions{StoreDir: c.StoreDir, Listen: c.Listen, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	nc, err := e.Connect(c, name, log)
	if err != nil {
		e.Shutdown()
		return nil, nil, err
	}
	return nc, e, nil
}

// Dial connects a client command (submit, status, stop, jobs). With url "embedded" it connects
// to the worker's embedded server at Listen.
func Dial(c NATSConfig, name string, log *slog.Logger) (*nats.Conn, error) {
	u := c.URL
	if u == EmbeddedURL {
		u = "nats://" + c.Listen
	}
	opts, err := c.clientOptions(name, log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(u, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", u, err)
	}
	return nc, nil
}

// clientOptions are the connection options shared by every roomtape client.
func (c NATSConfig) clientOptions(name string, log *slog.Logger) ([]nats.Option, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.Timeout(c.RequestTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", logattr.Err, err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn("NATS error", logattr.Err, err) }),
	}
	switch {
	case c.CredentialsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredentialsFile))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkey_seed_file: %w", err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(c.TLS.CA))
	}
	if c.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(c.TLS.Cert, c.TLS.Key))
	}
	return opts, nil
}

// EmbeddedOptions configures an in-process nats-server with JetStream.
type EmbeddedOptions struct {
	// StoreDir holds JetStream data (required).
	StoreDir string
	// Listen is the client address ("127.0.0.1:0" picks a port); "" = no listener, in-process
	// clients only.
	Listen string
	// Name is the server name (required in a cluster; default: generated).
	Name string
	// Cluster joins a JetStream cluster when ClusterName is set.
	ClusterName   string
	ClusterListen string   // host:port of the route listener
	Routes        []string // nats-route://host:port of every node (self included is fine)
	Logger        *slog.Logger
}

// Embedded is a running in-process nats-server.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a nats-server with JetStream and waits until it accepts connections
// (and, in a cluster, until JetStream is ready).
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.StoreDir == "" {
		return nil, errors.New("embedded NATS: a store directory is required")
	}
	if err := os.MkdirAll(o.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded NATS store: %w", err)
	}
	opts := &server.Options{
		ServerName: o.Name, JetStream: true, StoreDir: o.StoreDir, NoSigs: true,
		DontListen: o.Listen == "", NoLog: o.Logger == nil, MaxPayload: 1 << 20,
	}
	if o.Listen != "" {
		host, port, err := splitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if o.ClusterName != "" {
		host, port, err := splitHostPort(o.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS cluster listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: host, Port: port}
		for _, r := range o.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("embedded NATS route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if o.Logger != nil {
		srv.SetLoggerV2(serverLogger{o.Logger.With(logattr.Component, "nats-server")}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded NATS did not become ready within 30s")
	}
	return &Embedded{srv: srv}, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Server is the underlying nats-server.
func (e *Embedded) Server() *server.Server { return e.srv }

// ClientURL is nats://host:port of the client listener ("" without one).
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// ClusterURL is nats-route://host:port of the route listener ("" outside a cluster).
func (e *Embedded) ClusterURL() string {
	a := e.srv.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats-route://" + a.String()
}

// Connect opens an in-process client connection (no sockets).
func (e *Embedded) Connect(c NATSConfig, name string, log *slog.Logger) (*nats.Conn, error) {
	c.Defaults()
	opts, err := c.clientOptions(name, log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect("", append(opts, nats.InProcessServer(e.srv))...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded NATS: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server and waits until it has stopped.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// serverLogger forwards nats-server logs to slog (notices at debug: they are chatty).
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l serverLogger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l serverLogger) Fatalf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l serverLogger) Errorf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l serverLogger) Debugf(f string, v ...any)  {}
func (l serverLogger) Tracef(f string, v ...any)  {}
