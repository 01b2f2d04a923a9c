package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// echoReadLimit matches the signalling server's default frame cap (maxMessageSize + 4096).
const echoReadLimit = 65536 + 4096

// EchoHandler is the baseline server: a bare coder/websocket endpoint, accepted with the same
// options as the signalling server, that writes every frame back to its sender from the handler
// goroutine. It holds one goroutine and no application state per connection, so comparing it with
// the signalling server shows what the protocol layer costs.
func EchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			InsecureSkipVerify: true,
			CompressionMode:    websocket.CompressionDisabled,
		})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(echoReadLimit)
		ctx := r.Context()
		for {
			typ, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if err := ws.Write(ctx, typ, data); err != nil {
				return
			}
		}
	})
}

// ServeEcho serves EchoHandler on ln until ctx ends, then closes every connection.
func ServeEcho(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           EchoHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("echo serve: %w", err)
	case <-ctx.Done():
	}
	err := hs.Close() // hijacked connections end through BaseContext
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
