package signalling

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// batchConn lets a connection's writer send every frame of one wake-up in a single write(2):
// between begin and end, writes are collected; outside, they go straight through (pings and
// close frames from other goroutines are never held back for long). coder/websocket flushes
// after every frame, so without this each frame is its own syscall — the largest cost of a
// busy server (BENCHMARKS.md, "Signalling server").
type batchConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hold {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.hold = true
	b.mu.Unlock()
}

// end writes what was collected within timeout.
func (b *batchConn) end(timeout time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hold = false
	if len(b.buf) == 0 {
		return nil
	}
	_ = b.Conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := b.Conn.Write(b.buf)
	_ = b.Conn.SetWriteDeadline(time.Time{})
	if cap(b.buf) > 64<<10 {
		b.buf = nil // do not keep a burst's buffer on an idle connection
	} else {
		b.buf = b.buf[:0]
	}
	return err
}

// batchingWriter hands coder/websocket a hijacked connection wrapped in a batchConn.
type batchingWriter struct {
	http.ResponseWriter
	conn *batchConn
}

func (w *batchingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // the 101 response, if still buffered
		c.Close()
		return nil, nil, err
	}
	w.conn = &batchConn{Conn: c}
	return w.conn, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(w.conn, 4096)), nil
}

// Unwrap exposes the wrapped writer to http.ResponseController.
func (w *batchingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
