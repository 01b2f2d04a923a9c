// Package testenv starts the real components that tests of several packages share: a signalling
// server on a loopback port and a WebRTC transport that only uses loopback addresses.
package testenv

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/roomtape/roomtape/bot"
	"github.com/roomtape/roomtape/signalling"
)

// SignalServer runs a signalling server with cfg (empty = the built-in demo app) on 127.0.0.1:0
// and returns its ws:// origin. It is shut down gracefully when the test ends.
func SignalServer(t testing.TB, cfg signalling.ServerConfig) string {
	t.Helper()
	srv, err := signalling.NewServer(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return "ws://" + ln.Addr().String()
}

// LoopbackNetwork gathers only 127.0.0.1 candidates.
func LoopbackNetwork() bot.NetworkConfig {
	return bot.NetworkConfig{IncludeLoopback: true, IPs: []string{"127.0.0.0/8"}}
}

// Transport builds a loopback-only transport closed when the test ends.
func Transport(t testing.TB) *bot.Transport {
	t.Helper()
	tr, err := bot.NewTransport(LoopbackNetwork(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}
