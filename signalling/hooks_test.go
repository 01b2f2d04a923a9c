package signalling

import (
	"testing"
	"time"
)

// The testing hooks deliberately break the protocol for the interop scenarios 28–32 (§7).

func TestHookWelcomeDelay(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.Testing.WelcomeDelay = 400 * time.Millisecond })
	start := time.Now()
	ts.connect(t, keyQuery(testPK))
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("welcome after %s, want the configured delay", d)
	}
}

func TestHookOmitPresenceLeft(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.Testing.OmitPresenceLeft = true })
	a := ts.connectAs(t, "alice")
	a.send(t, `{"type":"subscribe","channel":"room","requestId":"s"}`)
	a.expectAck(t, "s")
	if got := string(a.readUnchecked(t)); got != `{"type":"presence","channel":"room","joined":[]}` {
		t.Fatalf("snapshot = %s, want it without left", got)
	}
}

func TestHookWithholdSnapshot(t *testing.T) {
	ts := newTestServer(t, func(c *ServerConfig) { c.Testing.WithholdSnapshot = true })
	a := ts.connectAs(t, "alice")
	a.subscribe(t, "room", "s1") // the first subscribe still gets its snapshot
	a.send(t, `{"type":"subscribe","channel":"room","requestId":"s2"}`)
	a.expectAck(t, "s2")
	a.sync(t) // no snapshot on the repeated subscribe
}
