package mediabench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/roomtape/roomtape/signalling"
)

// server is the in-process signalling server (built-in demo app) shared by a whole run.
type server struct {
	srv  *signalling.Server
	url  string
	errc chan error
}

func startServer(log *slog.Logger) (*server, error) {
	srv, err := signalling.NewServer(signalling.ServerConfig{}, log) // built-in demo app, no rate limit
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: listen: %w", err)
	}
	s := &server{srv: srv, url: "ws://" + ln.Addr().String(), errc: make(chan error, 1)}
	go func() { s.errc <- srv.Serve(ln) }()
	return s, nil
}

func (s *server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.errc; serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}
