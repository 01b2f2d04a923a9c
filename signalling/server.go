package signalling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/roomtape/roomtape/internal/logattr"
)

// frameAllowance is accepted on top of maxMessageSize for the JSON envelope (S18).
const frameAllowance = 4096

// Server is a Metered Realtime compatible signalling server: the WebSocket endpoint /v1,
// the REST control plane, /healthz and /metrics.
type Server struct {
	cfg     ServerConfig
	auth    *Authenticator
	broker  Broker
	metrics *metrics
	log     *slog.Logger
	mux     *http.ServeMux

	ctx      context.Context // ends when the server shuts down; parent of every connection
	cancel   context.CancelFunc
	conns    sync.WaitGroup
	nextID   atomic.Uint64
	draining atomic.Bool

	httpMu  sync.Mutex
	httpSrv *http.Server
}

// NewServer validates cfg (after applying Defaults) and builds a server. logger may be nil.
func NewServer(cfg ServerConfig, logger *slog.Logger) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("signal config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	auth, err := NewAuthenticator(&cfg)
	if err != nil {
		return nil, fmt.Errorf("signal config: %w", err)
	}
	s := &Server{cfg: cfg, auth: auth, log: logger.With(logattr.Component, "signal")}
	s.broker = newLocalBroker(cfg.Testing)
	s.metrics = newMetrics(s.broker)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /v1", s.handleWebSocket)
	s.mux.HandleFunc("POST /v1/tokens", s.withSecretKey(s.handleMintToken))
	s.mux.HandleFunc("GET /v1/channels/{id}/peers", s.withSecretKey(s.handlePeers))
	s.mux.HandleFunc("POST /v1/channels/{id}/publish", s.withSecretKey(s.handlePublish))
	s.mux.HandleFunc("DELETE /v1/peers/{id}", s.withSecretKey(s.handleKick))
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	if cfg.Testing.Enabled() {
		s.log.Warn("signalling test hooks are enabled; this server deliberately breaks the protocol", "hooks", fmt.Sprintf("%+v", cfg.Testing))
	}
	return s, nil
}

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() ServerConfig { return s.cfg }

// Handler serves every endpoint of the server.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve accepts connections on ln until Shutdown. It returns nil after a graceful shutdown.
func (s *Server) Serve(ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    256 << 10, // query strings carry JWTs; S1 asks for at least 32 KiB
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.httpMu.Lock()
	s.httpSrv = hs
	s.httpMu.Unlock()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting, sends going_away to every client and closes each with 1001 (S17),
// then waits for the connections to end or ctx to expire (remaining ones are dropped).
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.httpMu.Lock()
	hs := s.httpSrv
	s.httpMu.Unlock()
	var errs []error
	if hs != nil {
		// Shutdown does not wait for hijacked (WebSocket) connections; they are handled below.
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
	}
	goingAway := encodeGoingAway(1000)
	s.broker.Each(func(c *Conn) { c.goAway(goingAway) })
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("shutdown: %w", ctx.Err()))
	}
	s.cancel()
	<-done
	return errors.Join(errs...)
}

// Close drops every connection without going_away (as a crash would, for tests) and stops.
func (s *Server) Close() error {
	s.draining.Store(true)
	s.httpMu.Lock()
	hs := s.httpSrv
	s.httpMu.Unlock()
	var err error
	if hs != nil {
		err = hs.Close()
	}
	s.cancel()
	s.conns.Wait()
	return err
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	conns, channels := s.broker.Counts()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "connections": conns, "channels": channels})
}

// handleWebSocket implements S1–S3: upgrade first, then authenticate, then welcome or close.
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	key, hasKey := q["key"]
	token, hasToken := q["token"]
	origin := r.Header.Get("Origin")
	bw := &batchingWriter{ResponseWriter: w}
	ws, err := websocket.Accept(bw, r, &websocket.AcceptOptions{
		// Origins are checked per publishable key below (S22), after the upgrade, so that a
		// rejected browser sees close code 4001 instead of an opaque 1006.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		s.log.Debug("websocket upgrade failed", logattr.Remote, r.RemoteAddr, logattr.Err, err)
		return
	}
	ws.SetReadLimit(int64(s.cfg.MaxMessageSize + frameAllowance))
	connID := s.nextID.Add(1)
	log := s.log.With(logattr.Conn, connID, logattr.Remote, r.RemoteAddr)

	var id *Identity
	switch {
	case hasKey == hasToken:
		err = &AuthError{Close: CloseInvalidToken, Reason: "exactly one of key or token is required"}
	case hasKey:
		id, err = s.auth.Publishable(key[0], origin)
	default:
		id, err = s.auth.Token(token[0])
	}
	if err == nil && id.App.Suspended {
		err = &AuthError{Close: CloseSuspended, Reason: "account suspended"}
	}
	if err != nil {
		s.reject(ws, log, err)
		return
	}
	if d := s.cfg.Testing.WelcomeDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-s.ctx.Done():
			ws.CloseNow()
			return
		}
	}
	c := newConn(s, ws, id, connID)
	c.batch = bw.conn
	if code, reason := s.broker.Register(c, s.welcome(id)); code != 0 {
		s.reject(ws, log, &AuthError{Close: code, Reason: reason})
		return
	}
	if s.draining.Load() {
		// Registered while Shutdown was broadcasting: it may have missed the going_away.
		c.goAway(encodeGoingAway(1000))
	}
	kind := "token"
	if id.Publishable {
		kind = "key"
	}
	s.metrics.accepted.WithLabelValues(kind).Inc()
	c.log.Info("connection accepted", "credential", kind, "key_id", id.KeyID)
	s.conns.Add(1)
	defer s.conns.Done()
	c.run(s.ctx)
}

func (s *Server) reject(ws *websocket.Conn, log *slog.Logger, err error) {
	var ae *AuthError
	if !errors.As(err, &ae) {
		ae = &AuthError{Close: CloseInvalidToken, Reason: "invalid credentials"}
	}
	s.metrics.closes.WithLabelValues(closeLabel(ae.Close)).Inc()
	log.Info("connection rejected", logattr.Code, ae.Close, "reason", ae.Reason)
	_ = ws.Close(websocket.StatusCode(ae.Close), truncateReason(ae.Reason))
}

// truncateReason keeps a close reason within the 123 bytes a close frame allows.
func truncateReason(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}

func (s *Server) welcome(id *Identity) []byte {
	w := Welcome{PeerID: id.PeerID, ServerTime: time.Now().Unix(), MaxMessageSize: s.cfg.MaxMessageSize}
	if !id.ExpiresAt.IsZero() {
		exp := id.ExpiresAt.Unix()
		w.ExpiresAt = &exp
	}
	w.Metadata = s.welcomeMetadata(id.Metadata)
	return encodeWelcome(w)
}

// welcomeMetadata is the token's metadata with the configured ICE servers injected when the token
// carries none (S3).
func (s *Server) welcomeMetadata(tokenMeta json.RawMessage) json.RawMessage {
	if len(s.cfg.ICEServers) == 0 {
		return tokenMeta
	}
	m := map[string]json.RawMessage{}
	if len(tokenMeta) > 0 {
		if err := json.Unmarshal(tokenMeta, &m); err != nil {
			return tokenMeta
		}
	}
	if _, ok := m["iceServers"]; ok {
		return tokenMeta
	}
	ice, err := json.Marshal(s.cfg.ICEServers)
	if err != nil {
		return tokenMeta
	}
	m["iceServers"] = ice
	out, err := json.Marshal(m)
	if err != nil {
		return tokenMeta
	}
	return out
}
