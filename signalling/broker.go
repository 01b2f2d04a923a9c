package signalling

import (
	"encoding/json"
	"sync"
)

// Broker routes between connections: identity registration (S10), channel membership and
// presence (S7–S9), publish fan-out (S12) and direct messages (S11). Every method is safe for
// concurrent use. The in-process implementation is localBroker; a clustered implementation
// (several servers sharing state through NATS) can replace it without touching Conn or Server.
type Broker interface {
	// Register admits c under its identity and enqueues welcome as its first frame, before any
	// other connection can route to it. It returns the close code to reject with (0 = admitted).
	// An older connection with the same peer id is evicted first ("newest wins", S10).
	Register(c *Conn, welcome []byte) (rejectCode int, reason string)
	// Unregister removes c and announces its departure from every channel it was in.
	Unregister(c *Conn)
	// Subscribe adds c to ch and, atomically, enqueues ack, snapshot and joined deltas (S7).
	Subscribe(c *Conn, ch string, includeSenderMetadata bool, requestID string) (errCode string)
	// Unsubscribe removes c from ch (a no-op when not a member) and enqueues the ack.
	Unsubscribe(c *Conn, ch string, requestID string)
	// Publish delivers a message to every subscriber of ch except exclude; it returns the count.
	Publish(appID, ch, from string, fromMeta, data json.RawMessage, exclude *Conn) int
	// Send delivers a direct frame to the newest connection of peer `to` and acks the sender.
	Send(from *Conn, to string, data json.RawMessage, requestID string) (errCode string)
	// Peers lists the members of ch.
	Peers(appID, ch string) []PresenceEntry
	// Kick closes every connection of peerID with code; it returns how many were closed.
	Kick(appID, peerID string, code int, reason string) int
	// Each calls fn for every registered connection (used by graceful shutdown).
	Each(fn func(*Conn))
	// Counts returns the number of connections and non-empty channels.
	Counts() (conns, channels int)
}

type member struct {
	includeMeta bool
}

type channelState struct {
	members map[*Conn]*member
}

// appRoom is one tenant's routing state; one mutex per app keeps every membership change and the
// enqueues it causes atomic with respect to each other (the ordering rules of S7 and S13).
type appRoom struct {
	mu       sync.Mutex
	peers    map[string]*Conn // newest connection per peer id
	conns    map[*Conn]struct{}
	channels map[string]*channelState
}

type localBroker struct {
	hooks TestingConfig
	mu    sync.RWMutex
	apps  map[string]*appRoom
}

func newLocalBroker(hooks TestingConfig) *localBroker {
	return &localBroker{hooks: hooks, apps: map[string]*appRoom{}}
}

var _ Broker = (*localBroker)(nil)

func (b *localBroker) room(appID string) *appRoom {
	b.mu.RLock()
	r := b.apps[appID]
	b.mu.RUnlock()
	if r != nil {
		return r
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if r = b.apps[appID]; r == nil {
		r = &appRoom{peers: map[string]*Conn{}, conns: map[*Conn]struct{}{}, channels: map[string]*channelState{}}
		b.apps[appID] = r
	}
	return r
}

func (b *localBroker) Register(c *Conn, welcome []byte) (int, string) {
	r := b.room(c.id.App.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.peers[c.id.PeerID]
	if old != nil && !b.hooks.NoSupersede {
		b.evictLocked(r, old, CloseAdminDisconnect, "superseded")
	}
	if limit := c.id.App.MaxConnections; limit > 0 && len(r.conns) >= limit {
		return CloseOverConnLimit, "over concurrent connection limit"
	}
	r.peers[c.id.PeerID] = c
	r.conns[c] = struct{}{}
	c.enqueue(welcome, TypeWelcome)
	return 0, ""
}

func (b *localBroker) Unregister(c *Conn) {
	r := b.room(c.id.App.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.conns[c]; !ok {
		return
	}
	b.removeLocked(r, c)
}

// evictLocked removes c from routing (announcing left everywhere) and asks it to close.
func (b *localBroker) evictLocked(r *appRoom, c *Conn, code int, reason string) {
	b.removeLocked(r, c)
	c.closeWith(code, reason)
}

// removeLocked takes c out of every channel (announcing left) and out of the app's routing.
func (b *localBroker) removeLocked(r *appRoom, c *Conn) {
	for ch := range c.subs {
		b.leaveLocked(r, c, ch)
	}
	delete(r.conns, c)
	if r.peers[c.id.PeerID] == c {
		delete(r.peers, c.id.PeerID)
	}
}

func (b *localBroker) leaveLocked(r *appRoom, c *Conn, ch string) {
	delete(c.subs, ch)
	cs := r.channels[ch]
	if cs == nil {
		return
	}
	delete(cs.members, c)
	if len(cs.members) == 0 {
		delete(r.channels, ch)
		return
	}
	frame := encodePresence(ch, nil, []PresenceEntry{{PeerID: c.id.PeerID}}, b.hooks.OmitPresenceLeft)
	for m := range cs.members {
		if m.id.Can(ActionPresence) {
			m.enqueue(frame, TypePresence)
		}
	}
}

func (b *localBroker) Subscribe(c *Conn, ch string, includeMeta bool, requestID string) string {
	r := b.room(c.id.App.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, registered := r.conns[c]; !registered {
		// Evicted (superseded or kicked) and closing: frames it sent before seeing the close must
		// not make it a member again, or it would stay in the channel forever.
		return ""
	}
	_, already := c.subs[ch]
	if !already && len(c.subs) >= c.maxChannels {
		return CodeChannelLimitExceeded
	}
	cs := r.channels[ch]
	if cs == nil {
		cs = &channelState{members: map[*Conn]*member{}}
		r.channels[ch] = cs
	}
	if m := cs.members[c]; m != nil {
		m.includeMeta = includeMeta // last subscribe wins
	} else {
		cs.members[c] = &member{includeMeta: includeMeta}
		c.subs[ch] = struct{}{}
	}
	var snapshot []byte
	wantSnapshot := c.id.Can(ActionPresence) && !(already && b.hooks.WithholdSnapshot)
	if wantSnapshot {
		others := make([]PresenceEntry, 0, len(cs.members)-1)
		for m := range cs.members {
			if m != c {
				others = append(others, PresenceEntry{PeerID: m.id.PeerID, Metadata: m.id.PeerMetadata})
			}
		}
		snapshot = encodePresence(ch, others, nil, b.hooks.OmitPresenceLeft)
	}
	if b.hooks.SnapshotBeforeAck && snapshot != nil {
		c.enqueue(snapshot, TypePresence)
	}
	if requestID != "" {
		c.enqueue(encodeAck(requestID), TypeAck)
	}
	if !b.hooks.SnapshotBeforeAck && snapshot != nil {
		c.enqueue(snapshot, TypePresence)
	}
	if !already {
		joined := encodePresence(ch, []PresenceEntry{{PeerID: c.id.PeerID, Metadata: c.id.PeerMetadata}}, nil, b.hooks.OmitPresenceLeft)
		for m := range cs.members {
			if m != c && m.id.Can(ActionPresence) {
				m.enqueue(joined, TypePresence)
			}
		}
	}
	return ""
}

func (b *localBroker) Unsubscribe(c *Conn, ch string, requestID string) {
	r := b.room(c.id.App.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := c.subs[ch]; ok {
		b.leaveLocked(r, c, ch)
	}
	if requestID != "" {
		c.enqueue(encodeAck(requestID), TypeAck)
	}
}

func (b *localBroker) Publish(appID, ch, from string, fromMeta, data json.RawMessage, exclude *Conn) int {
	r := b.room(appID)
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.channels[ch]
	if cs == nil {
		return 0
	}
	var plain, withMeta []byte
	n := 0
	for m, mem := range cs.members {
		if m == exclude {
			continue
		}
		if mem.includeMeta && len(fromMeta) > 0 {
			if withMeta == nil {
				withMeta = encodeMessage(ch, from, data, fromMeta)
			}
			m.enqueue(withMeta, TypeMessage)
		} else {
			if plain == nil {
				plain = encodeMessage(ch, from, data, nil)
			}
			m.enqueue(plain, TypeMessage)
		}
		n++
	}
	return n
}

func (b *localBroker) Send(from *Conn, to string, data json.RawMessage, requestID string) string {
	r := b.room(from.id.App.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	target := r.peers[to]
	if target == nil {
		return CodePeerNotFound
	}
	target.enqueue(encodeDirect(from.id.PeerID, data, from.id.PeerMetadata), TypeDirect)
	if requestID != "" {
		from.enqueue(encodeAck(requestID), TypeAck)
	}
	return ""
}

func (b *localBroker) Peers(appID, ch string) []PresenceEntry {
	r := b.room(appID)
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.channels[ch]
	out := []PresenceEntry{}
	if cs == nil {
		return out
	}
	for m := range cs.members {
		out = append(out, PresenceEntry{PeerID: m.id.PeerID, Metadata: m.id.PeerMetadata})
	}
	return out
}

func (b *localBroker) Kick(appID, peerID string, code int, reason string) int {
	r := b.room(appID)
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for c := range r.conns {
		if c.id.PeerID == peerID {
			b.evictLocked(r, c, code, reason)
			n++
		}
	}
	return n
}

func (b *localBroker) Each(fn func(*Conn)) {
	b.mu.RLock()
	rooms := make([]*appRoom, 0, len(b.apps))
	for _, r := range b.apps {
		rooms = append(rooms, r)
	}
	b.mu.RUnlock()
	for _, r := range rooms {
		r.mu.Lock()
		conns := make([]*Conn, 0, len(r.conns))
		for c := range r.conns {
			conns = append(conns, c)
		}
		r.mu.Unlock()
		for _, c := range conns {
			fn(c)
		}
	}
}

func (b *localBroker) Counts() (conns, channels int) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, r := range b.apps {
		r.mu.Lock()
		conns += len(r.conns)
		channels += len(r.channels)
		r.mu.Unlock()
	}
	return conns, channels
}
