package loadtest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// benchPair connects a sender and a receiver to a fresh in-process server. The receiver's reader
// passes each delivered frame's stamp to got.
func benchPair(b *testing.B, got chan<- int64) (from *client, to *client) {
	b.Helper()
	url := newTestServer(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &dialer{origin: url, keyID: testKeyID, secret: testSecret, expires: time.Now().Add(time.Hour), tally: &tally{}}
	f, err := connect(ctx, d, 2, 2, func(i int) string { return []string{"bench-sender", "bench-receiver"}[i] }, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.close)
	prefix := deliveryPrefix(false)
	f[1].handle(func(frame []byte) {
		if t, ok := stampOf(frame); ok && bytes.HasPrefix(frame, prefix) {
			got <- t
		}
	})
	return f[0], f[1]
}

// BenchmarkSendRoundTrip is one direct message through a real server on loopback: the sender
// writes a send frame and waits until the receiver has read the direct frame (ns/op is the
// one-way send→receive latency with nothing else in flight).
func BenchmarkSendRoundTrip(b *testing.B) {
	got := make(chan int64, 1)
	from, to := benchPair(b, got)
	msg := newMessage(to.peer, 128)
	ctx := context.Background()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		i++
		buf = msg.append(buf[:0], i)
		if err := from.ws.Write(ctx, websocket.MessageText, buf); err != nil {
			b.Fatal(err)
		}
		if t := <-got; t != i {
			b.Fatalf("received stamp %d, want %d", t, i)
		}
	}
}

// BenchmarkSendPipelined keeps up to 32 direct messages in flight between one pair; ns/op is the
// inverse of the pair's throughput.
func BenchmarkSendPipelined(b *testing.B) {
	const window = 32
	got := make(chan int64, window)
	from, to := benchPair(b, got)
	msg := newMessage(to.peer, 128)
	ctx := context.Background()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	inFlight := 0
	var i int64
	for b.Loop() {
		if inFlight == window {
			<-got
			inFlight--
		}
		i++
		buf = msg.append(buf[:0], i)
		if err := from.ws.Write(ctx, websocket.MessageText, buf); err != nil {
			b.Fatal(err)
		}
		inFlight++
	}
	for ; inFlight > 0; inFlight-- {
		<-got
	}
}
