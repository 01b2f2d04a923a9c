package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugServer serves net/http/pprof on its own listener, apart from the public endpoints, so that
// profiles are never reachable through the signalling port. It is off unless --debug-listen is set.
type debugServer struct {
	hs   *http.Server
	errc chan error
}

// startDebug listens on addr, prints `debug on http://HOST:PORT` to stdout and serves pprof.
func startDebug(addr string, stdout io.Writer) (*debugServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	d := &debugServer{
		hs:   &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		errc: make(chan error, 1),
	}
	fmt.Fprintf(stdout, "debug on http://%s\n", ln.Addr())
	go func() {
		err := d.hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		d.errc <- err
	}()
	return d, nil
}

// Close stops the listener and returns the serve error, if any. A nil *debugServer is a no-op.
func (d *debugServer) Close() error {
	if d == nil {
		return nil
	}
	err := d.hs.Close()
	if serr := <-d.errc; serr != nil {
		err = errors.Join(err, fmt.Errorf("debug serve: %w", serr))
	}
	return err
}
