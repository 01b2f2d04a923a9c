// Spec §7 interop scenarios 18–31 that need no media (25 lives in concurrency.test.mjs because it
// takes ~35 s).
//
// MeteredPeer runs in Node 20, which has no RTCPeerConnection: every MeteredPeer here is built
// with the SDK's documented test-injection option `rtcPeerConnectionFactory` and a minimal inert
// RTCPeerConnectionLike (inert-rtc.mjs). No media is involved in any of these scenarios; no track
// or data channel is ever added, so no offer is ever made.

import assert from 'node:assert/strict';
import { SignallingConnectError } from '@metered-ca/realtime';
import {
  sdkTest, waitFor, within, rejection, sleep, signJwt, byPeerId,
  PK, SK_ID, FAST_RECONNECT,
} from './harness.mjs';

const now = () => Math.floor(Date.now() / 1000);

sdkTest('18. bad token: close 4001 after the upgrade, join() rejects with SignallingConnectError(4001), error invalid_token, no reconnect', async (ctx) => {
  const s = await ctx.server();
  const bad = signJwt({ sub: 'mallory', exp: now() + 3600 }, { secret: 'wrong-secret-wrong-secret' });
  const m = ctx.metered(s, 'mallory', { token: bad, reconnect: FAST_RECONNECT });
  const err = await rejection(m.peer.join('room/x'), 5000, 'join');
  assert.ok(err instanceof SignallingConnectError, `got ${err?.name}: ${err?.message}`);
  assert.equal(err.closeCode, 4001);
  const e = await m.events.wait('error');
  assert.equal(e.payload.err.name, 'invalid_token');
  assert.equal(m.peer.state, 'idle');
  await sleep(700);
  assert.equal(m.tap.sockets.length, 1, 'no reconnect attempts');
  assert.equal(m.calls.tokenProvider, 1);

  // The server completes the upgrade and closes 4001 without any frame, for every kind of bad credential.
  const exp = now() + 3600;
  const cases = {
    'wrong signature': { token: bad },
    'unknown kid': { token: signJwt({ sub: 'x', exp }, { kid: 'sk_id_unknown' }) },
    'alg none': { token: signJwt({ sub: 'x', exp }, { alg: 'none' }) },
    'alg HS512 label': { token: signJwt({ sub: 'x', exp }, { alg: 'HS512' }) },
    'missing sub': { token: signJwt({ exp }) },
    'garbage token': { token: 'not.a.jwt' },
    'unknown publishable key': { key: 'pk_live_nope' },
    'both key and token': { query: `key=${PK}&token=${encodeURIComponent(signJwt({ sub: 'x', exp }))}` },
    'no credential': { query: '' },
  };
  for (const [what, cred] of Object.entries(cases)) {
    const r = await ctx.raw(s, `raw ${what}`, cred);
    const c = await r.waitClosed();
    assert.equal(c.code, 4001, `${what}: close code`);
    assert.equal(r.frames.length, 0, `${what}: no frame before the close`);
  }
});

sdkTest('19. expired token on first connect: close 4002, join() rejects, no retry', async (ctx) => {
  const s = await ctx.server();
  const expired = signJwt({ sub: 'late', iat: now() - 7200, exp: now() - 60 }, { kid: SK_ID });
  const m = ctx.metered(s, 'late', { token: expired, reconnect: FAST_RECONNECT });
  const err = await rejection(m.peer.join('room/x'), 5000, 'join');
  assert.ok(err instanceof SignallingConnectError, `got ${err?.name}: ${err?.message}`);
  assert.equal(err.closeCode, 4002);
  assert.equal((await m.events.wait('error')).payload.err.name, 'token_expired');
  assert.equal(m.peer.state, 'idle');
  await sleep(700);
  assert.equal(m.tap.sockets.length, 1, 'a first connect never retries');
  assert.equal(m.calls.tokenProvider, 1);

  const r = await ctx.raw(s, 'raw expired', { token: expired });
  assert.equal((await r.waitClosed()).code, 4002);
  assert.equal(r.frames.length, 0);
});

sdkTest('20. channel outside the token patterns: error channel_not_authorized with the requestId, connection stays open, join() rejects, back to idle', async (ctx) => {
  const s = await ctx.server();
  const token = await ctx.tokenFor(s, { peerId: 'bee', channels: ['acme/room-*'] });
  const m = ctx.metered(s, 'bee', { token });
  const err = await rejection(m.peer.join('other/x'), 5000, 'join other/x');
  assert.equal(err.name, 'channel_not_authorized');
  assert.equal(m.peer.state, 'idle');
  const sock = m.tap.sockets[0];
  const sub = sock.sent.find((f) => f.type === 'subscribe' && f.channel === 'other/x');
  assert.ok(sub?.requestId, 'the SDK sent a requestId');
  const errFrame = sock.received.find((f) => f.type === 'error');
  assert.equal(errFrame.code, 'channel_not_authorized');
  assert.equal(errFrame.requestId, sub.requestId);
  // The connection stays open: the SDK's follow-up unsubscribe is acked on the same socket...
  const unsub = await waitFor(() => sock.sent.find((f) => f.type === 'unsubscribe' && f.channel === 'other/x'), { what: 'unsubscribe' });
  await waitFor(() => sock.received.some((f) => f.type === 'ack' && f.requestId === unsub.requestId), { what: 'unsubscribe ack' });
  assert.equal(sock.closed, null);
  // ...and a permitted channel can be joined on the same MeteredPeer over the same socket.
  await within(m.peer.join('acme/room-1'), 5000, 'join acme/room-1');
  assert.equal(m.peer.state, 'joined');
  assert.equal(m.tap.sockets.length, 1);
  assert.equal(sock.closed, null);
});

sdkTest('21. reserved channel: SDK rejects locally (reserved_channel); a raw client gets channel_reserved', async (ctx) => {
  const s = await ctx.server();
  const m = ctx.metered(s, 'res', { apiKey: PK });
  const err = await rejection(m.peer.join('_system/x'), 5000, 'join _system/x');
  assert.equal(err.name, 'MeteredPeerSendError');
  assert.equal(err.code, 'reserved_channel');
  assert.equal(m.peer.state, 'idle');
  assert.equal(m.tap.sockets.length, 0, 'rejected locally, before any connection');

  const r = await ctx.raw(s, 'raw', { key: PK });
  await r.welcome();
  const probes = [
    { type: 'subscribe', channel: '_system/x', requestId: 'r1' },
    { type: 'subscribe', channel: '_Metered/y', requestId: 'r2' },
    { type: 'publish', channel: '_INTERNAL/z', data: 1, requestId: 'r3' },
  ];
  for (const p of probes) {
    r.send(p);
    const f = await r.waitFrame((x) => x.requestId === p.requestId);
    assert.equal(f.type, 'error');
    assert.equal(f.code, 'channel_reserved', `${p.channel}`);
  }
  r.send({ type: 'ping' });
  await r.waitFrame((x) => x.type === 'pong');
  assert.equal(r.ws.readyState, 1, 'connection stays open');
});

sdkTest('22. missing send permission: presence works, every send errors action_not_permitted', async (ctx) => {
  const s = await ctx.server();
  const ch = 'room/nosend';
  const perms = ['subscribe', 'publish', 'presence'];
  const a = ctx.metered(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice', permissions: perms }) });
  const b = ctx.metered(s, 'bob', { token: await ctx.tokenFor(s, { peerId: 'bob', permissions: perms }) });
  await within(a.peer.join(ch), 5000, 'alice join');
  await within(b.peer.join(ch), 5000, 'bob join');
  await a.events.wait('peer-joined', (p) => p.peerId === 'bob');
  await b.events.wait('peer-joined', (p) => p.peerId === 'alice');

  const attempts = [
    () => a.peer.sendTo('bob', { hi: 1 }),
    () => b.peer.sendTo('alice', 'hello'),
    () => a.peer.remotePeers.find((r) => r.id === 'bob').send({ via: 'remote' }),
  ];
  for (const send of attempts) {
    const err = await rejection(send(), 5000, 'send');
    assert.equal(err.name, 'action_not_permitted');
  }
  const errs = a.tap.sockets[0].received.filter((f) => f.type === 'error');
  assert.ok(errs.length >= 2 && errs.every((f) => f.code === 'action_not_permitted' && f.requestId));
  // Publishing is still allowed; nobody got disconnected.
  await a.peer.send({ broadcast: true });
  const d = await b.events.wait('data');
  assert.deepEqual(d.payload, { senderPeerId: 'alice', data: { broadcast: true }, kind: 'broadcast' });
  assert.equal(b.events.count('data', (p) => p.kind === 'direct'), 0);
  assert.equal(a.peer.state, 'joined');
  assert.equal(b.peer.state, 'joined');
  assert.equal(a.tap.sockets.length, 1);
});

sdkTest('23. oversized payload: SDK throws its oversized error locally; a raw 75 KB frame is closed 1009; an SDK socket that sends one reconnects and reconciles', async (ctx) => {
  const s = await ctx.server();
  const ch = 'room/big';
  const a = ctx.metered(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice' }), reconnect: FAST_RECONNECT });
  const b = ctx.metered(s, 'bob', { token: await ctx.tokenFor(s, { peerId: 'bob' }), reconnect: FAST_RECONNECT });
  await within(a.peer.join(ch), 5000, 'alice join');
  await within(b.peer.join(ch), 5000, 'bob join');
  await a.events.wait('peer-joined', (p) => p.peerId === 'bob');

  const big = 'x'.repeat(70 * 1024);
  const e1 = await rejection(a.peer.sendTo('bob', big), 5000, 'sendTo 70 KB');
  assert.equal(e1.name, 'MeteredPeerOversizedError');
  assert.equal(e1.cap, 65536);
  assert.ok(e1.size > 65536);
  const e2 = await rejection(a.peer.send(big), 5000, 'send 70 KB');
  assert.equal(e2.name, 'MeteredPeerOversizedError');
  const sc = ctx.signalling(s, 'sc', { apiKey: PK });
  await sc.client.connect();
  const e3 = await rejection(sc.client.publish(ch, big), 5000, 'publish 70 KB');
  assert.equal(e3.name, 'OversizedPayloadError');
  assert.ok(!a.tap.sockets[0].sent.some((f) => JSON.stringify(f).length > 65536), 'nothing oversized left the SDK');
  // Just under the cap passes the SDK check and the server's envelope allowance (S18).
  const nearCap = 'y'.repeat(65000);
  await within(a.peer.sendTo('bob', nearCap), 5000, 'sendTo 65000 B');
  const got = await b.events.wait('data', (p) => p.kind === 'direct');
  assert.equal(got.payload.data.length, 65000);
  assert.equal(a.peer.state, 'joined');

  const hugeFrame = JSON.stringify({ type: 'publish', channel: ch, data: 'z'.repeat(75 * 1024) });
  const r = await ctx.raw(s, 'raw', { key: PK });
  await r.welcome();
  r.send(hugeFrame);
  assert.equal((await r.waitClosed()).code, 1009);

  // An SDK socket that somehow sends one (bypassing the SDK's check) is closed 1009, reconnects
  // and reconciles; the other member sees the session boundary.
  const sinceA = a.events.length;
  const sinceB = b.events.length;
  a.tap.sockets[0].ws.send(hugeFrame);
  await waitFor(() => a.tap.sockets[0].closed, { what: 'alice socket closed' });
  assert.equal(a.tap.sockets[0].closed.code, 1009);
  await a.events.wait('state-change', (p) => p.to === 'reconnecting', { since: sinceA });
  await a.events.wait('state-change', (p) => p.to === 'joined', { since: sinceA, timeout: 5000 });
  await b.events.wait('peer-left', (p) => p.peerId === 'alice', { since: sinceB });
  await b.events.wait('peer-joined', (p) => p.peerId === 'alice', { since: sinceB });
  await waitFor(() => a.peer.remotePeers.some((x) => x.id === 'bob'), { what: 'alice still knows bob' });
  assert.equal(a.tap.sockets.length, 2);
});

sdkTest('24. rate limit: raw 300 frames in 100 ms closes 4011; pings never count; an SDK client reconnects with normal backoff', async (ctx) => {
  const s = await ctx.server({ signal: { rate_limit: { enabled: true, per_second: 100, burst: 200 } } });
  const ch = 'room/rate';
  const r = await ctx.raw(s, 'raw-flood', { key: PK });
  await r.welcome();
  const t0 = performance.now();
  for (let i = 0; i < 300; i++) r.send({ type: 'publish', channel: ch, data: i });
  const sentIn = performance.now() - t0;
  assert.ok(sentIn < 100, `300 frames sent in ${sentIn.toFixed(1)} ms`);
  assert.equal((await r.waitClosed()).code, 4011);

  const p = await ctx.raw(s, 'raw-pings', { key: PK });
  await p.welcome();
  for (let i = 0; i < 300; i++) p.send({ type: 'ping' });
  await waitFor(() => p.list((f) => f.type === 'pong').length === 300, { what: '300 pongs' });
  assert.equal(p.ws.readyState, 1, 'pings never trip the limiter');

  const c = ctx.signalling(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice' }) }); // default backoff
  await c.client.connect();
  await c.client.subscribe(ch);
  const results = Promise.allSettled(Array.from({ length: 300 }, (_, i) => c.client.publish(ch, i)));
  const dc = await c.events.wait('disconnected');
  assert.equal(dc.payload.code, 4011);
  assert.equal(dc.payload.willReconnect, true);
  const re = await c.events.wait('connected', (x) => x.isReconnect, { timeout: 5000 });
  const delay = c.tap.sockets[1].createdAt - dc.at;
  ctx.note(`SDK retried ${delay.toFixed(0)} ms after the 4011 close`);
  assert.ok(delay >= 350 && delay < 1500, `first retry after ${delay.toFixed(0)} ms (normal backoff 500 ms ±20 %)`);
  assert.ok(re);
  const settled = await results;
  assert.ok(settled.some((x) => x.status === 'rejected' && x.reason.name === 'DisconnectedError'));
  // Re-subscribed on the new socket.
  const last = c.tap.sockets[1];
  await waitFor(() => last.received.some((f) => f.type === 'ack' && last.sent.some((o) => o.type === 'subscribe' && o.requestId === f.requestId)), { what: 're-subscribe ack' });
});

sdkTest('26. admin kick: 4020, error admin_disconnect on MeteredPeer, no reconnect; the other member sees left', async (ctx) => {
  const s = await ctx.server();
  const ch = 'room/kick';
  const a = ctx.metered(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice' }), reconnect: FAST_RECONNECT });
  const b = ctx.metered(s, 'bob', { token: await ctx.tokenFor(s, { peerId: 'bob' }) });
  await within(a.peer.join(ch), 5000, 'alice join');
  await within(b.peer.join(ch), 5000, 'bob join');
  await b.events.wait('peer-joined', (p) => p.peerId === 'alice');
  await a.events.wait('peer-joined', (p) => p.peerId === 'bob');

  const res = await s.kick('alice');
  assert.deepEqual(res.body, { peerId: 'alice', closed: 1 });
  const e = await a.events.wait('error');
  assert.equal(e.payload.err.name, 'admin_disconnect');
  const left = await a.events.wait('left');
  assert.equal(left.payload.peerId, 'alice');
  assert.equal(left.payload.channel, ch);
  assert.equal(a.peer.state, 'closed');
  await a.events.wait('peer-left', (p) => p.peerId === 'bob');
  await b.events.wait('peer-left', (p) => p.peerId === 'alice');
  assert.equal(a.tap.sockets[0].closed?.code, 4020);
  await sleep(700);
  assert.equal(a.tap.sockets.length, 1, 'no reconnect');
  assert.deepEqual(b.peer.remotePeers, []);
  assert.equal(b.peer.state, 'joined');
});

sdkTest('27. keepalive: with inactivityTimeoutMs 3000 the SDK pings every ~1 s, gets pongs, never reconnects', async (ctx) => {
  const s = await ctx.server();
  const c = ctx.signalling(s, 'idle', { token: await ctx.tokenFor(s, { peerId: 'idle' }), inactivityTimeoutMs: 3000 });
  await c.client.connect();
  await c.client.subscribe('room/idle');
  await sleep(10000);
  const sock = c.tap.sockets[0];
  const pings = sock.sent.filter((f) => f.type === 'ping');
  const pongs = sock.received.filter((f) => f.type === 'pong');
  ctx.note(`${pings.length} pings, ${pongs.length} pongs in 10 s`);
  assert.ok(pings.length >= 8 && pings.length <= 11, `${pings.length} pings in 10 s`);
  assert.ok(pongs.length >= pings.length - 1, `${pongs.length} pongs for ${pings.length} pings`);
  assert.ok(pings.every((f) => JSON.stringify(f) === '{"type":"ping"}'), 'ping carries no requestId');
  assert.equal(c.tap.sockets.length, 1, 'no reconnects');
  assert.equal(c.events.count('disconnected'), 0);
  assert.equal(sock.closeCalls.length, 0, 'no 4000 inactivity close');
  assert.equal(c.client.state, 'connected');
  assert.equal(sock.received.filter((f) => f.type === 'error').length, 0);
}, { timeout: 30000 });

sdkTest('28. welcome timeout: welcome_delay 12s makes the SDK close 4000 "welcome timeout" and connect() reject', async (ctx) => {
  const s = await ctx.server({ signal: { testing: { welcome_delay: '12s' } } });
  const c = ctx.signalling(s, 'slow', { apiKey: PK, reconnect: FAST_RECONNECT });
  const t0 = performance.now();
  const err = await rejection(c.client.connect(), 15000, 'connect');
  const took = performance.now() - t0;
  ctx.note(`connect() rejected after ${took.toFixed(0)} ms`);
  assert.match(err.message, /no welcome frame within 10000ms/);
  assert.ok(took >= 9900 && took < 11500, `rejected after ${took.toFixed(0)} ms`);
  const sock = c.tap.sockets[0];
  assert.deepEqual(sock.closeCalls.map(({ code, reason }) => ({ code, reason })), [{ code: 4000, reason: 'welcome timeout' }]);
  assert.equal(sock.received.length, 0);
  assert.equal(c.events.count('connected'), 0);
  await sleep(300);
  assert.equal(c.tap.sockets.length, 1, 'a first connect never retries');
}, { timeout: 30000 });

sdkTest('29. ack-before-snapshot regression: snapshot_before_ack hides the existing member from a joining MeteredPeer; normal mode discovers it', async (ctx) => {
  const ch = 'room/order';
  for (const broken of [true, false]) {
    const s = await ctx.server({ signal: { testing: { snapshot_before_ack: broken } } }, broken ? 'broken' : 'normal');
    const t = await ctx.metered(s, `T-${broken}`, { token: await ctx.tokenFor(s, { peerId: 't-existing' }) });
    await within(t.peer.join(ch), 5000, 'T join');
    const b = await ctx.metered(s, `B-${broken}`, { token: await ctx.tokenFor(s, { peerId: 'b-joining' }) });
    await within(b.peer.join(ch), 5000, 'B join');
    await t.events.wait('peer-joined', (p) => p.peerId === 'b-joining'); // deltas still work both ways
    const sock = b.tap.sockets[0];
    const subId = sock.sent.find((f) => f.type === 'subscribe').requestId;
    await waitFor(() => sock.received.some((f) => f.type === 'presence'), { what: 'B snapshot on the wire' });
    const order = sock.received.filter((f) => f.type !== 'welcome').map((f) => (f.type === 'ack' && f.requestId === subId ? 'ack' : f.type));
    if (broken) {
      assert.deepEqual(order.slice(0, 2), ['presence', 'ack'], 'test hook sends the snapshot first');
      await sleep(500);
      assert.equal(b.events.count('peer-joined'), 0, 'B fails to discover T (documents why S7 matters)');
      assert.deepEqual(b.peer.remotePeers, []);
    } else {
      assert.deepEqual(order.slice(0, 2), ['ack', 'presence']);
      await b.events.wait('peer-joined', (p) => p.peerId === 't-existing');
      assert.deepEqual(b.peer.remotePeers.map((r) => r.id), ['t-existing']);
    }
  }
});

sdkTest('30. presence without left: omit_presence_left makes the SDK drop the frame; normal mode includes it', async (ctx) => {
  const ch = 'room/noleft';
  for (const broken of [true, false]) {
    const s = await ctx.server({ signal: { testing: { omit_presence_left: broken } } }, broken ? 'broken' : 'normal');
    const t = ctx.metered(s, `T-${broken}`, { token: await ctx.tokenFor(s, { peerId: 't-existing' }) });
    await within(t.peer.join(ch), 5000, 'T join');
    const b = ctx.metered(s, `B-${broken}`, { token: await ctx.tokenFor(s, { peerId: 'b-joining' }) });
    await within(b.peer.join(ch), 5000, 'B join');
    const sc = ctx.signalling(s, `SC-${broken}`, { apiKey: PK });
    await sc.client.connect();
    await sc.client.subscribe(ch);
    const snap = await waitFor(() => sc.tap.sockets[0].received.find((f) => f.type === 'presence'), { what: 'raw snapshot' });
    if (broken) {
      assert.ok(!('left' in snap), 'the hook omits left');
      await sleep(500);
      assert.equal(sc.events.count('presence'), 0, 'SignallingClient drops every presence frame');
      assert.equal(b.events.count('peer-joined'), 0);
      assert.equal(t.events.count('peer-joined'), 0);
      const warned = ctx.sdkLogs.filter((l) => l.label === `SC-${broken}` && l.level === 'warn' && /malformed inbound frame/.test(l.msg) && /presence\.left invalid/.test(l.line));
      assert.ok(warned.length >= 1, 'the SDK logs the frame as malformed');
    } else {
      assert.deepEqual(snap.left, []);
      assert.equal(sc.events.count('presence'), 1);
      assert.deepEqual(byPeerId(sc.events.payloads('presence')[0].joined).map((e) => e.peerId), ['b-joining', 't-existing']);
      await b.events.wait('peer-joined', (p) => p.peerId === 't-existing');
      await t.events.wait('peer-joined', (p) => p.peerId === 'b-joining');
      // left deltas flow too
      await b.peer.close();
      await t.events.wait('peer-left', (p) => p.peerId === 'b-joining');
    }
  }
});

sdkTest('31. duplicate subscribe from a raw client: two acks, two snapshots, only one joined broadcast', async (ctx) => {
  const s = await ctx.server();
  const ch = 'room/dup';
  const obs = ctx.signalling(s, 'observer', { token: await ctx.tokenFor(s, { peerId: 'observer', peerMetadata: { o: 1 } }) });
  await obs.client.connect();
  await obs.client.subscribe(ch);
  const r = await ctx.raw(s, 'raw-dup', { token: await ctx.tokenFor(s, { peerId: 'dup', peerMetadata: { d: 1 } }) });
  await r.welcome();
  r.send({ type: 'subscribe', channel: ch, requestId: 'sub-1' });
  r.send({ type: 'subscribe', channel: ch, requestId: 'sub-2', includeSenderMetadata: true });
  await r.waitFrame((f) => f.type === 'ack' && f.requestId === 'sub-2');
  await waitFor(() => r.list((f) => f.type === 'presence').length >= 2, { what: 'two snapshots' });
  await sleep(300);
  const snapshot = { type: 'presence', channel: ch, joined: [{ peerId: 'observer', metadata: { o: 1 } }], left: [] };
  assert.deepEqual(r.list((f) => f.type !== 'welcome'), [
    { type: 'ack', requestId: 'sub-1' },
    snapshot,
    { type: 'ack', requestId: 'sub-2' },
    snapshot,
  ]);
  assert.deepEqual(obs.events.payloads('presence'), [
    { channel: ch, joined: [], left: [] },
    { channel: ch, joined: [{ peerId: 'dup', metadata: { d: 1 } }], left: [] },
  ]);
});
