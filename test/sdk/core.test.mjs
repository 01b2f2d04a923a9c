// Core behaviour of the unmodified @metered-ca/realtime SDK against a real `roomtape signal`
// process: connect, presence, publish, send, reconnects and terminal closes.
// MeteredPeer is used with an inert RTCPeerConnection (see inert-rtc.mjs): no media is involved.

import assert from 'node:assert/strict';
import { SignallingConnectError } from '@metered-ca/realtime';
import {
  sdkTest, waitFor, within, rejection, sleep, signJwt, decodeJwt, byPeerId,
  PK, UUID_V4, FAST_RECONNECT,
} from './harness.mjs';

const meta = {
  alice: { displayName: 'Alice', role: 'host' },
  bob: { displayName: 'Bob' },
};

sdkTest('1a. connect with a publishable key: fresh UUID peerId per connection, expiresAt null', async (ctx) => {
  const s = await ctx.server();
  const a = ctx.signalling(s, 'pk-a', { apiKey: PK, reconnect: { ...FAST_RECONNECT, initialDelayMs: 50 } });
  const b = ctx.signalling(s, 'pk-b', { apiKey: PK });
  await within(a.client.connect(), 5000, 'connect a');
  await within(b.client.connect(), 5000, 'connect b');
  const [wa] = a.events.payloads('connected');
  const [wb] = b.events.payloads('connected');
  for (const w of [wa, wb]) {
    assert.match(w.peerId, UUID_V4);
    assert.equal(w.expiresAt, null);
    assert.equal(w.isReconnect, false);
    assert.equal(w.maxMessageSize, 65536);
    assert.ok(Number.isFinite(w.serverTime) && Math.abs(w.serverTime - Date.now() / 1000) < 60, `serverTime ${w.serverTime} is Unix seconds`);
  }
  assert.notEqual(wa.peerId, wb.peerId);
  // The raw welcome carries expiresAt:null explicitly (the key must be present, §2.3).
  const rawWelcome = a.tap.sockets[0].received[0];
  assert.equal(rawWelcome.type, 'welcome');
  assert.ok('expiresAt' in rawWelcome && rawWelcome.expiresAt === null);

  // A reconnect of the same publishable-key client gets yet another identity.
  a.tap.sockets[0].ws.terminate();
  const re = await a.events.wait('connected', (p) => p.isReconnect, { timeout: 5000 });
  assert.match(re.payload.peerId, UUID_V4);
  assert.notEqual(re.payload.peerId, wa.peerId);
  assert.notEqual(re.payload.peerId, wb.peerId);
});

sdkTest('1b. connect with a JWT: peerId = sub, expiresAt = exp (CLI-minted and REST-minted)', async (ctx) => {
  const s = await ctx.server();
  const cliToken = await s.mintTokenCli({ sub: 'alice', ttl: '90s', peerMetadata: meta.alice });
  const cliExp = decodeJwt(cliToken).exp;
  assert.ok(Math.abs(cliExp - (Date.now() / 1000 + 90)) < 10);
  const rest = await s.mintToken({ peerId: 'bob', expiresInSec: 600 });
  assert.equal(decodeJwt(rest.token).exp, rest.expiresAt);

  const a = ctx.signalling(s, 'jwt-alice', { token: cliToken });
  const b = ctx.signalling(s, 'jwt-bob', { token: rest.token });
  await within(a.client.connect(), 5000, 'connect alice');
  await within(b.client.connect(), 5000, 'connect bob');
  const [wa] = a.events.payloads('connected');
  const [wb] = b.events.payloads('connected');
  assert.equal(wa.peerId, 'alice');
  assert.equal(wa.expiresAt, cliExp);
  assert.equal(wb.peerId, 'bob');
  assert.equal(wb.expiresAt, rest.expiresAt);
  assert.equal(a.calls.tokenProvider, 1);
  assert.equal(a.client.state, 'connected');
});

sdkTest('2. presence roster: 3 SignallingClients join and leave (snapshot, then exact deltas, peerMetadata)', async (ctx) => {
  const s = await ctx.server();
  const ch = 'room/presence';
  const a = ctx.signalling(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice', peerMetadata: meta.alice }) });
  const b = ctx.signalling(s, 'bob', { token: await ctx.tokenFor(s, { peerId: 'bob', peerMetadata: meta.bob }) });
  const c = ctx.signalling(s, 'carol', { token: await ctx.tokenFor(s, { peerId: 'carol' }) }); // no peerMetadata
  for (const x of [a, b, c]) await within(x.client.connect(), 5000, `connect ${x.label}`);
  const presence = (x) => x.events.payloads('presence');
  const waitN = (x, n) => waitFor(() => presence(x).length >= n, { what: `${x.label} presence #${n}` });

  await a.client.subscribe(ch);
  await waitN(a, 1);
  await b.client.subscribe(ch);
  await waitN(b, 1);
  await waitN(a, 2);
  await c.client.subscribe(ch);
  await waitN(c, 1);
  await waitN(a, 3);
  await waitN(b, 2);
  await c.client.unsubscribe(ch);
  await waitN(a, 4);
  await waitN(b, 3);
  await b.client.close();
  await waitN(a, 5);
  await sleep(300); // nothing else may arrive

  const aliceE = { peerId: 'alice', metadata: meta.alice };
  const bobE = { peerId: 'bob', metadata: meta.bob };
  const carolE = { peerId: 'carol' }; // no metadata key at all without a peerMetadata claim
  const snap = (joined) => ({ channel: ch, joined, left: [] });
  const joined = (e) => ({ channel: ch, joined: [e], left: [] });
  const left = (id) => ({ channel: ch, joined: [], left: [{ peerId: id }] });

  assert.deepEqual(presence(a), [snap([]), joined(bobE), joined(carolE), left('carol'), left('bob')]);
  assert.deepEqual(presence(b), [snap([aliceE]), joined(carolE), left('carol')]);
  const cp = presence(c);
  assert.equal(cp.length, 1);
  assert.deepEqual({ ...cp[0], joined: byPeerId(cp[0].joined) }, snap([aliceE, bobE]));
  assert.ok(!('metadata' in presence(a)[2].joined[0]), 'entry without peerMetadata carries no metadata key');
});

sdkTest('3. publish with and without includeSenderMetadata; the publisher gets no copy', async (ctx) => {
  const s = await ctx.server();
  const ch = 'room/publish';
  const a = ctx.signalling(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice', peerMetadata: meta.alice }) });
  const b = ctx.signalling(s, 'bob', { token: await ctx.tokenFor(s, { peerId: 'bob', peerMetadata: meta.bob }) });
  const c = ctx.signalling(s, 'carol', { apiKey: PK });
  for (const x of [a, b, c]) await within(x.client.connect(), 5000, `connect ${x.label}`);
  await a.client.subscribe(ch);
  await b.client.subscribe(ch, { includeSenderMetadata: true });
  await c.client.subscribe(ch);
  // The SDK only puts the flag on the wire when true.
  assert.equal(b.tap.sockets[0].sent.find((f) => f.type === 'subscribe').includeSenderMetadata, true);
  assert.ok(!('includeSenderMetadata' in c.tap.sockets[0].sent.find((f) => f.type === 'subscribe')));

  const data = { hello: 'world', n: 1, nested: [1, { x: null }] };
  await within(a.client.publish(ch, data), 5000, 'publish');
  const mb = (await b.events.wait('message')).payload;
  const mc = (await c.events.wait('message')).payload;
  assert.deepEqual(mb, { channel: ch, from: 'alice', data, fromMetadata: meta.alice });
  assert.deepEqual(mc, { channel: ch, from: 'alice', data });

  // null is a legal payload and the data key must be present.
  await a.client.publish(ch, null);
  const mc2 = (await c.events.wait('message', (p) => p.data === null)).payload;
  assert.deepEqual(mc2, { channel: ch, from: 'alice', data: null });
  const rawNull = c.tap.sockets[0].received.find((f) => f.type === 'message' && f.data === null);
  assert.ok(rawNull && 'data' in rawNull);

  // A publisher without peerMetadata never yields fromMetadata, even for opted-in subscribers.
  await c.client.publish(ch, 'from-carol');
  const mb3 = (await b.events.wait('message', (p) => p.data === 'from-carol')).payload;
  assert.ok(!('fromMetadata' in mb3));

  // Last subscribe wins: carol opts in now.
  await c.client.subscribe(ch, { includeSenderMetadata: true });
  await a.client.publish(ch, 'again');
  const mc4 = (await c.events.wait('message', (p) => p.data === 'again')).payload;
  assert.deepEqual(mc4.fromMetadata, meta.alice);

  await sleep(300);
  assert.equal(a.events.count('message', (p) => p.from === 'alice'), 0, 'publisher must not receive its own messages');
  assert.deepEqual(a.events.payloads('message'), [{ channel: ch, from: c.events.payloads('connected')[0].peerId, data: 'from-carol' }]);
  assert.equal(c.events.count('message', (p) => p.data === 'from-carol'), 0, 'carol must not receive her own message');
});

sdkTest('4. send/direct between two clients (fromMetadata always) and peer_not_found', async (ctx) => {
  const s = await ctx.server();
  const a = ctx.signalling(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice', peerMetadata: meta.alice }) });
  const b = ctx.signalling(s, 'bob', { token: await ctx.tokenFor(s, { peerId: 'bob', peerMetadata: meta.bob }) });
  const d = ctx.signalling(s, 'dave-pk', { apiKey: PK });
  for (const x of [a, b, d]) await within(x.client.connect(), 5000, `connect ${x.label}`);
  // No channel needed: direct sends are app-wide.
  await within(a.client.send('bob', { ping: 1 }), 5000, 'send a->b');
  assert.deepEqual((await b.events.wait('direct')).payload, { from: 'alice', data: { ping: 1 }, fromMetadata: meta.alice });
  await within(b.client.send('alice', null), 5000, 'send b->a');
  assert.deepEqual((await a.events.wait('direct')).payload, { from: 'bob', data: null, fromMetadata: meta.bob });
  // A sender without peerMetadata: no fromMetadata.
  await d.client.send('alice', 'hi');
  const fromD = (await a.events.wait('direct', (p) => p.data === 'hi')).payload;
  assert.equal(fromD.from, d.events.payloads('connected')[0].peerId);
  assert.ok(!('fromMetadata' in fromD));

  const err = await rejection(a.client.send('nobody-here', { x: 1 }), 5000, 'send to absent peer');
  assert.equal(err.name, 'peer_not_found');
  // The correlated error carried the request's requestId.
  const sent = a.tap.sockets[0].sent.find((f) => f.type === 'send' && f.to === 'nobody-here');
  const got = a.tap.sockets[0].received.find((f) => f.type === 'error' && f.code === 'peer_not_found');
  assert.equal(got.requestId, sent.requestId);
  assert.equal(a.client.state, 'connected');
  assert.equal(a.events.count('server-error'), 0);
});

sdkTest('5. SDK reconnects and re-subscribes after the server is SIGKILLed and restarted on the same port', async (ctx) => {
  const s = await ctx.server();
  const ch = 'room/restart';
  const aliceTok = await ctx.tokenFor(s, { peerId: 'alice', peerMetadata: meta.alice });
  const bobTok = await ctx.tokenFor(s, { peerId: 'bob', peerMetadata: meta.bob });
  const carolTok = await ctx.tokenFor(s, { peerId: 'carol' });
  const a = ctx.metered(s, 'alice-mp', { token: aliceTok, reconnect: FAST_RECONNECT });
  const b = ctx.signalling(s, 'bob', { token: bobTok, reconnect: FAST_RECONNECT });
  await within(b.client.connect(), 5000, 'connect bob');
  await b.client.subscribe(ch);
  await within(a.peer.join(ch), 5000, 'alice join');
  await a.events.wait('peer-joined', (p) => p.peerId === 'bob');
  await b.events.wait('presence', (p) => p.joined.some((e) => e.peerId === 'alice'));
  const port = s.port;

  const killedAt = a.events.length;
  await s.kill('SIGKILL');
  await b.events.wait('disconnected', (p) => p.willReconnect === true);
  await a.events.wait('state-change', (p) => p.to === 'reconnecting', { since: killedAt });
  await sleep(300); // let a few reconnect attempts fail against the closed port
  await s.restart();
  assert.equal(s.port, port);

  await b.events.wait('connected', (p) => p.isReconnect === true, { timeout: 5000 });
  await a.events.wait('state-change', (p) => p.to === 'joined', { since: killedAt, timeout: 5000 });
  // Both re-subscribed on their new sockets.
  for (const x of [a, b]) {
    const last = x.tap.sockets.at(-1);
    await waitFor(() => last.received.some((f) => f.type === 'ack' && last.sent.some((o) => o.type === 'subscribe' && o.channel === ch && o.requestId === f.requestId)), { what: `${x.label} re-subscribe ack` });
  }
  // Presence works again: a newcomer sees both and both see the newcomer.
  const c = ctx.signalling(s, 'carol', { token: carolTok });
  await c.client.connect();
  const sinceB = b.events.length;
  await c.client.subscribe(ch);
  const snap = (await c.events.wait('presence')).payload;
  assert.deepEqual(byPeerId(snap.joined).map((e) => e.peerId), ['alice', 'bob']);
  await b.events.wait('presence', (p) => p.joined.some((e) => e.peerId === 'carol'), { since: sinceB });
  await a.events.wait('peer-joined', (p) => p.peerId === 'carol', { since: killedAt });
  await waitFor(() => a.peer.remotePeers.some((r) => r.id === 'bob'), { what: 'alice knows bob again' });
  assert.equal(a.peer.state, 'joined');
  assert.equal(a.peer.peerId, 'alice');
});

sdkTest('6. reconnect after a going_away graceful shutdown and restart (SDK emits going-away)', async (ctx) => {
  const s = await ctx.server();
  const ch = 'room/graceful';
  const a = ctx.signalling(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice' }), reconnect: FAST_RECONNECT });
  const carolTok = await ctx.tokenFor(s, { peerId: 'carol' });
  await within(a.client.connect(), 5000, 'connect');
  await a.client.subscribe(ch);
  const r = await ctx.raw(s, 'raw-bob', { token: await ctx.tokenFor(s, { peerId: 'bob' }) });
  await r.welcome();

  const exit = await s.stop(); // SIGTERM
  assert.deepEqual(exit, { code: 0, signal: null }, 'graceful shutdown exits 0');
  const ga = await a.events.wait('going-away');
  const dc = await a.events.wait('disconnected');
  assert.deepEqual(ga.payload, { retryAfterMs: 1000 });
  assert.ok(ga.index < dc.index, 'going-away precedes the close');
  assert.equal(dc.payload.code, 1001);
  assert.equal(dc.payload.willReconnect, true);
  // On the wire: going_away is the last frame, then close 1001.
  const closed = await r.waitClosed();
  assert.equal(closed.code, 1001);
  assert.deepEqual(r.list().at(-1), { type: 'going_away', retryAfterMs: 1000 });

  await s.restart();
  await a.events.wait('connected', (p) => p.isReconnect === true, { timeout: 5000 });
  const c = ctx.signalling(s, 'carol', { token: carolTok });
  await c.client.connect();
  const since = a.events.length;
  // The replayed subscribe may still be in flight; poll the newcomer's view.
  await waitFor(async () => {
    await c.client.subscribe(ch);
    const snaps = c.events.payloads('presence');
    return snaps.at(-1)?.joined.some((e) => e.peerId === 'alice');
  }, { what: 'alice back in the channel', interval: 100 });
  await a.events.wait('presence', (p) => p.joined.some((e) => e.peerId === 'carol'), { since });
});

sdkTest('7a. terminal: bad token closes 4001, connect() rejects with closeCode 4001, no reconnect attempts', async (ctx) => {
  const s = await ctx.server();
  const bad = signJwt({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 3600 }, { secret: 'not-the-secret-at-all' });
  const m = ctx.signalling(s, 'mallory', { token: bad, reconnect: FAST_RECONNECT });
  const err = await rejection(m.client.connect(), 5000, 'connect');
  assert.ok(err instanceof SignallingConnectError, `got ${err?.name}: ${err?.message}`);
  assert.equal(err.closeCode, 4001);
  assert.equal(m.client.state, 'closed');
  await sleep(700); // FAST_RECONNECT would have retried within ~120 ms
  assert.equal(m.tap.sockets.length, 1);
  assert.equal(m.calls.tokenProvider, 1);
  assert.equal(m.tap.sockets[0].received.length, 0, 'no frame before the close');
  assert.equal(s.countLogs(/connection rejected.*code=4001/), 1);
});

sdkTest('7b. terminal: REST kick closes a connected client with 4020; it goes to closed and never reconnects', async (ctx) => {
  const s = await ctx.server();
  const a = ctx.signalling(s, 'alice', { token: await ctx.tokenFor(s, { peerId: 'alice' }), reconnect: FAST_RECONNECT });
  await within(a.client.connect(), 5000, 'connect');
  const res = await s.kick('alice');
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { peerId: 'alice', closed: 1 });
  const dc = await a.events.wait('disconnected');
  assert.equal(dc.payload.code, 4020);
  assert.equal(dc.payload.willReconnect, false);
  await waitFor(() => a.client.state === 'closed', { what: 'closed' });
  await sleep(700);
  assert.equal(a.tap.sockets.length, 1);
  assert.equal(a.events.count('connected'), 1);
  assert.equal(a.client.state, 'closed');
  // Kicking an absent peer closes nothing.
  assert.deepEqual((await s.kick('alice')).body, { peerId: 'alice', closed: 0 });
});
