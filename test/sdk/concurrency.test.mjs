// Spec §7 scenario 25 (concurrency limit). Takes ~35 s: after a 4010 close the SDK floors its next
// reconnect delay to 30 s ±20 %, and this test measures that delay.

import assert from 'node:assert/strict';
import { sdkTest, waitFor, within, appConfig, PK } from './harness.mjs';

const ATTEMPT = /msg="connection (accepted|rejected)"/;
const REJECTED_4010 = /msg="connection rejected".*code=4010/;

sdkTest('25. concurrency limit: third connection gets 4010; an SDK client that gets 4010 on a reconnect waits 24–36 s before the next attempt', async (ctx) => {
  const s = await ctx.server({ signal: { apps: [appConfig({ max_connections: 2 })] } });
  const token = await ctx.tokenFor(s, { peerId: 'alice' });
  // Default jitter (±20 %); a 2 s first retry leaves time to refill the freed slot.
  const a = ctx.signalling(s, 'alice', { token, reconnect: { initialDelayMs: 2000, jitterRatio: 0.2, maxAttempts: 10 } });
  await within(a.client.connect(), 5000, 'alice connect');
  await a.client.subscribe('room/cap');
  const b = await ctx.raw(s, 'raw-b', { key: PK });
  await b.welcome();

  // 1. The third concurrent connection is rejected with 4010 after the upgrade.
  const c = await ctx.raw(s, 'raw-c', { key: PK });
  const cClosed = await c.waitClosed();
  assert.equal(cClosed.code, 4010);
  assert.equal(c.frames.length, 0);
  assert.equal(s.countLogs(REJECTED_4010), 1);

  // 2. Alice's socket drops (network cut). While she waits to reconnect, D takes the free slot.
  const dropAt = a.events.length;
  a.tap.sockets[0].ws.terminate();
  await a.events.wait('disconnected', (p) => p.code === 1006 && p.willReconnect, { since: dropAt });
  await waitFor(async () => (await s.health()).connections === 1, { what: 'server freed alice\'s slot' });
  const d = await ctx.raw(s, 'raw-d', { key: PK });
  await d.welcome();
  assert.equal(a.tap.sockets.length, 1, 'alice has not retried yet');

  // 3. Alice's reconnect attempt is refused with 4010.
  const refused = await a.events.wait('disconnected', (p) => p.code === 4010, { since: dropAt, timeout: 5000 });
  assert.equal(refused.payload.willReconnect, true);
  assert.equal(a.tap.sockets.length, 2);
  assert.equal(a.tap.sockets[1].closed?.code, 4010);
  assert.equal(s.countLogs(REJECTED_4010), 2);
  const attemptsAtRefusal = s.countLogs(ATTEMPT);
  ctx.note(`4010 on reconnect at ${refused.at.toFixed(0)}`);

  // Free a slot right away: only the SDK's 4010 floor can delay the next attempt now.
  await d.close();
  await waitFor(async () => (await s.health()).connections === 1, { what: 'D gone' });

  // 4. The next attempt comes 24–36 s later, and succeeds.
  const back = await a.events.wait('connected', (p) => p.isReconnect, { since: dropAt, timeout: 40000 });
  const third = a.tap.sockets[2];
  assert.ok(third, 'a third socket was opened');
  const delay = third.createdAt - refused.at;
  ctx.note(`next attempt after ${delay.toFixed(0)} ms`);
  assert.ok(delay >= 24000 - 50 && delay <= 36000 + 500, `next attempt after ${delay.toFixed(0)} ms, want 24000–36000`);
  assert.equal(a.tap.sockets.length, 3, 'exactly one attempt after the 4010');
  // Server side: exactly one upgrade attempt (accepted) between the refusal and now.
  assert.equal(s.countLogs(ATTEMPT) - attemptsAtRefusal, 1);
  assert.equal(back.payload.peerId, 'alice');
  assert.equal(a.client.state, 'connected');
  const last = a.tap.sockets[2];
  await waitFor(() => last.received.some((f) => f.type === 'ack' && last.sent.some((o) => o.type === 'subscribe' && o.requestId === f.requestId)), { what: 're-subscribe ack' });
}, { timeout: 60000 });
