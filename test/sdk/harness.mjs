// Harness for the @metered-ca/realtime conformance suite.
//
// It runs the real `roomtape signal` binary named by ROOMTAPE_BIN (never skips: an unset or
// unusable ROOMTAPE_BIN makes every test file fail at import time), drives the UNMODIFIED SDK
// with the `ws` package as its webSocketFactory, and offers a raw `ws` client for frames the SDK
// would never send.
//
// Browser fidelity: `ws` by default emits every message contained in one TCP read synchronously
// in the same tick, so promise continuations (e.g. MeteredPeer.join() resuming after the subscribe
// ack) would run only after the following frames were dispatched. Browsers deliver each WebSocket
// message as its own task. The factory therefore sets `allowSynchronousEvents: false`, which makes
// `ws` defer each message to its own macrotask, as a browser does. Spec §4 relies on this ordering.

import { spawn, execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import WebSocket from 'ws';
import { SignallingClient, MeteredPeer } from '@metered-ca/realtime';
import { inertPeerConnectionFactory } from './inert-rtc.mjs';

export { sleep };

// ---------------------------------------------------------------------------------------------
// The server binary

function resolveBin() {
  const bin = process.env.ROOMTAPE_BIN;
  if (!bin) {
    throw new Error(
      'ROOMTAPE_BIN is not set. This suite never skips: build the server with\n' +
        '  cd /work/main && go build -o /tmp/roomtape ./cmd/roomtape\n' +
        'and run\n' +
        '  cd test/sdk && npm ci && ROOMTAPE_BIN=/tmp/roomtape npm test',
    );
  }
  const abs = path.resolve(bin);
  try {
    if (!statSync(abs).isFile()) throw new Error('not a regular file');
    accessSync(abs, constants.X_OK);
  } catch (err) {
    throw new Error(`ROOMTAPE_BIN=${bin} is not an executable file (${err.message})`);
  }
  return abs;
}

export const BIN = resolveBin();

// ---------------------------------------------------------------------------------------------
// Configuration

export const APP_ID = 'conformance';
export const PK = 'pk_live_conformance';
export const SK_ID = 'sk_id_conformance';
export const SK_SECRET = 'sk_secret_conformance_0123456789';
export const ALL_ACTIONS = ['subscribe', 'publish', 'presence', 'send'];

/** One explicit app with a publishable key and a secret key, both with every action on `**`. */
export function appConfig(extra = {}) {
  return {
    id: APP_ID,
    max_connections: 0,
    suspended: false,
    publishable_keys: [
      { key: PK, channel_patterns: ['**'], actions: ALL_ACTIONS, allowed_origins: [] },
    ],
    secret_keys: [{ id: SK_ID, secret: SK_SECRET, channel_patterns: ['**'], actions: ALL_ACTIONS }],
    ...extra,
  };
}

/** The base configuration; every test writes its own explicit file. */
export function baseConfig() {
  return {
    log: { level: 'debug', format: 'text' },
    signal: {
      apps: [appConfig()],
      ice_servers: [],
      max_message_size: 65536,
      rate_limit: { enabled: false, per_second: 100, burst: 200 },
      ping_interval: '30s',
      reap_after: '40s',
      expiry_lead: '250ms',
      testing: {
        welcome_delay: '0s',
        snapshot_before_ack: false,
        omit_presence_left: false,
        withhold_snapshot: false,
        no_supersede: false,
      },
    },
  };
}

function isPlainObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge; arrays and scalars in `over` replace those in `base`. */
export function merge(base, over) {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v);
  return out;
}

// ---------------------------------------------------------------------------------------------
// JWT helpers (only for tokens the server must reject: bad signature, expired, alg none ...)

const b64url = (buf) => Buffer.from(buf).toString('base64url');

export function signJwt(claims, { kid = SK_ID, secret = SK_SECRET, alg = 'HS256', header = {} } = {}) {
  const h = b64url(JSON.stringify({ alg, typ: 'JWT', kid, ...header }));
  const p = b64url(JSON.stringify(claims));
  if (alg === 'none') return `${h}.${p}.`;
  const sig = createHmac('sha256', secret).update(`${h}.${p}`).digest();
  return `${h}.${p}.${b64url(sig)}`;
}

export function decodeJwt(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
}

// ---------------------------------------------------------------------------------------------
// The server process

let serverSeq = 0;

export class ServerProcess {
  constructor(config, name = `server${++serverSeq}`) {
    this.name = name;
    this.config = config;
    this.dir = mkdtempSync(path.join(tmpdir(), 'roomtape-sdk-'));
    this.configPath = path.join(this.dir, 'config.yaml');
    // JSON is valid YAML; the server reads it with its YAML loader (unknown keys are errors).
    writeFileSync(this.configPath, JSON.stringify(config, null, 2));
    this.logs = [];
    this.port = null;
    this.proc = null;
    this.exit = null;
    this.generation = 0;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}`;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  get running() {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  log(line) {
    this.logs.push(`[${this.name}#${this.generation} +${(performance.now() / 1000).toFixed(3)}s] ${line}`);
  }

  /** Starts the process; port 0 picks a free one, otherwise the given (previous) port is reused. */
  async start({ port = this.port ?? 0 } = {}) {
    if (this.running) throw new Error(`${this.name} is already running`);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#spawn(port);
        return this;
      } catch (err) {
        // A port reused right after a kill can still be held for a moment.
        if (attempt < 20 && port !== 0 && /address already in use/i.test(err.message)) {
          await sleep(100);
          continue;
        }
        throw err;
      }
    }
  }

  #spawn(port) {
    this.generation++;
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROOMTAPE_')));
    const args = ['signal', '--config', this.configPath, '--listen', `127.0.0.1:${port}`];
    this.log(`$ ${BIN} ${args.join(' ')}`);
    const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.proc = proc;
    this.exit = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.log(`process exited code=${code} signal=${signal}`);
        resolve({ code, signal });
      });
    });
    let errBuf = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      errBuf += chunk;
      let i;
      while ((i = errBuf.indexOf('\n')) >= 0) {
        this.log(errBuf.slice(0, i));
        errBuf = errBuf.slice(i + 1);
      }
    });
    return new Promise((resolve, reject) => {
      let outBuf = '';
      let first = true;
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`${this.name}: no "listening on" line within 10s\n${this.logs.join('\n')}`));
      }, 10000);
      proc.stdout.setEncoding('utf8');
      proc.stdout.on('data', (chunk) => {
        outBuf += chunk;
        let i;
        while ((i = outBuf.indexOf('\n')) >= 0) {
          const line = outBuf.slice(0, i);
          outBuf = outBuf.slice(i + 1);
          this.log(`stdout: ${line}`);
          if (!first) continue;
          first = false;
          clearTimeout(timer);
          const m = /^listening on ws:\/\/127\.0\.0\.1:(\d+)$/.exec(line);
          if (!m) {
            proc.kill('SIGKILL');
            reject(new Error(`${this.name}: unexpected first stdout line ${JSON.stringify(line)}`));
            return;
          }
          const got = Number(m[1]);
          if (port !== 0 && got !== port) {
            proc.kill('SIGKILL');
            reject(new Error(`${this.name}: asked for port ${port}, got ${got}`));
            return;
          }
          this.port = got;
          resolve();
        }
      });
      this.exit.then(({ code, signal }) => {
        if (!first) return;
        clearTimeout(timer);
        reject(new Error(`${this.name}: exited (code=${code} signal=${signal}) before listening\n${this.logs.join('\n')}`));
      });
    });
  }

  /** Sends a signal and waits for the process to exit (SIGKILL after 10 s). */
  async kill(signal = 'SIGKILL') {
    if (!this.running) return this.exit ? await this.exit : null;
    this.log(`sending ${signal}`);
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    try {
      return await this.exit;
    } finally {
      clearTimeout(t);
    }
  }

  /** Graceful stop: SIGTERM makes the server send going_away and close every client with 1001. */
  stop() {
    return this.kill('SIGTERM');
  }

  /** Starts again on the same port (after kill/stop). */
  restart() {
    return this.start({ port: this.port });
  }

  async dispose() {
    await this.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- REST control plane -------------------------------------------------------------------

  async rest(method, p, body, { auth = `Bearer ${SK_ID}:${SK_SECRET}` } = {}) {
    const res = await fetch(this.httpUrl + p, {
      method,
      headers: { ...(auth ? { Authorization: auth } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, body: json, text };
  }

  /** REST mint: POST /v1/tokens {peerId, channels?, permissions?, expiresInSec?, metadata?, peerMetadata?}. */
  async mintToken(req) {
    const res = await this.rest('POST', '/v1/tokens', req);
    if (res.status !== 200) throw new Error(`mint ${JSON.stringify(req)}: HTTP ${res.status} ${res.text}`);
    return res.body; // {token, expiresAt}
  }

  /** CLI mint: `roomtape token --config <same file> --sub ...`. */
  mintTokenCli({ sub, channels = [], permissions = [], ttl, metadata, peerMetadata }) {
    const args = ['token', '--config', this.configPath, '--sub', sub];
    for (const c of channels) args.push('--channel', c);
    for (const p of permissions) args.push('--permission', p);
    if (ttl) args.push('--ttl', ttl);
    if (metadata) args.push('--metadata', JSON.stringify(metadata));
    if (peerMetadata) args.push('--peer-metadata', JSON.stringify(peerMetadata));
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ROOMTAPE_')));
    return new Promise((resolve, reject) => {
      execFile(BIN, args, { env, timeout: 10000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`roomtape token failed: ${err.message}\n${stderr}`));
        else resolve(stdout.trim());
      });
    });
  }

  /** REST kick: DELETE /v1/peers/{id} (the server closes every socket of the peer with 4020). */
  kick(peerId) {
    return this.rest('DELETE', `/v1/peers/${encodeURIComponent(peerId)}`);
  }

  async health() {
    return (await this.rest('GET', '/healthz', undefined, { auth: null })).body;
  }

  /** Counts server log lines matching re (e.g. upgrade attempts). */
  countLogs(re) {
    return this.logs.filter((l) => re.test(l)).length;
  }
}

// ---------------------------------------------------------------------------------------------
// Waiting

export async function waitFor(cond, { timeout = 5000, interval = 10, what = 'condition' } = {}) {
  const deadline = performance.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

/** Resolves with the promise's value or rejects after ms. */
export async function within(promise, ms, what = 'operation') {
  let t;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        t = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/** Resolves with the rejection reason; fails if the promise resolves or hangs. */
export async function rejection(promise, ms = 15000, what = 'promise') {
  let settled;
  try {
    const v = await within(promise, ms, what);
    settled = { value: v };
  } catch (err) {
    if (/did not settle within/.test(err?.message ?? '')) throw err;
    return err;
  }
  throw new Error(`${what} resolved (${JSON.stringify(settled.value)}) but was expected to reject`);
}

// ---------------------------------------------------------------------------------------------
// Event recording

const SIGNALLING_EVENTS = [
  'connected', 'disconnected', 'state-change', 'message', 'direct', 'presence',
  'server-error', 'going-away', 'token-provider-error',
];
const PEER_EVENTS = ['joined', 'left', 'state-change', 'peer-joined', 'peer-left', 'data', 'error'];

export class EventLog {
  constructor(label, emitter, names) {
    this.label = label;
    this.entries = [];
    this.waiters = new Set();
    for (const name of names) {
      emitter.on(name, (payload) => this.#push(name, payload));
    }
  }

  #push(name, payload) {
    // RemotePeer objects are summarised by id so the log stays readable.
    const p = payload && payload.peer ? { ...payload, peerId: payload.peer.id } : payload;
    const e = { name, payload: p, at: performance.now(), index: this.entries.length };
    this.entries.push(e);
    for (const w of this.waiters) {
      if (w.match(e)) {
        this.waiters.delete(w);
        w.resolve(e);
      }
    }
  }

  all(name, pred = () => true) {
    return this.entries.filter((e) => e.name === name && pred(e.payload));
  }

  payloads(name, pred) {
    return this.all(name, pred).map((e) => e.payload);
  }

  count(name, pred) {
    return this.all(name, pred).length;
  }

  /** Waits for an event (already recorded at index >= since, or future). */
  wait(name, pred = () => true, { timeout = 5000, since = 0 } = {}) {
    const match = (e) => e.name === name && e.index >= since && pred(e.payload);
    const found = this.entries.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      this.waiters.add(w);
      setTimeout(() => {
        if (!this.waiters.delete(w)) return;
        reject(new Error(`${this.label}: no '${name}' event matching ${pred.toString()} within ${timeout} ms; events: ${this.describe()}`));
      }, timeout);
    });
  }

  get length() {
    return this.entries.length;
  }

  describe() {
    return this.entries.map((e) => `${e.name}${e.name === 'state-change' ? `(${e.payload.from}->${e.payload.to})` : ''}`).join(', ');
  }
}

// ---------------------------------------------------------------------------------------------
// A webSocketFactory that taps every socket the SDK opens (sent/received frames, close calls)

function parseFrame(data) {
  try {
    return JSON.parse(typeof data === 'string' ? data : data.toString());
  } catch {
    return { _unparsable: String(data).slice(0, 200) };
  }
}

export function tappedFactory() {
  const sockets = [];
  const factory = (url) => {
    const ws = new WebSocket(url, { allowSynchronousEvents: false });
    const rec = { ws, url, createdAt: performance.now(), sent: [], received: [], closeCalls: [], closed: null };
    const origSend = ws.send.bind(ws);
    ws.send = (data, ...rest) => {
      rec.sent.push(parseFrame(data));
      return origSend(data, ...rest);
    };
    const origClose = ws.close.bind(ws);
    ws.close = (code, reason) => {
      rec.closeCalls.push({ code, reason, at: performance.now() });
      return origClose(code, reason);
    };
    // Registered before the SDK's listeners, so a frame is recorded before the SDK handles it.
    ws.on('message', (data, isBinary) => {
      if (!isBinary) rec.received.push(parseFrame(data));
    });
    ws.on('close', (code, reason) => {
      rec.closed = { code, reason: reason.toString(), at: performance.now() };
    });
    ws.on('error', () => {}); // the SDK logs its own error event
    sockets.push(rec);
    return ws;
  };
  return { factory, sockets };
}

function recordingLogger(label, sink) {
  const log = (level) => (msg, ctx) => {
    let c = '';
    try {
      c = ctx ? ' ' + JSON.stringify(ctx) : '';
    } catch {
      c = ' [unserialisable ctx]';
    }
    sink.push({ at: performance.now(), label, level, msg, line: `[${label} +${(performance.now() / 1000).toFixed(3)}s] ${level} ${msg}${c}` });
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket client

export class RawClient {
  constructor(label, url) {
    this.label = label;
    this.url = url;
    this.frames = [];
    this.waiters = new Set();
    this.ws = new WebSocket(url, { allowSynchronousEvents: false, maxPayload: 2 << 20 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`${label}: HTTP ${res.statusCode} instead of an upgrade`)));
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), at: performance.now() }));
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      const f = isBinary ? { _binary: data.length } : parseFrame(data);
      const e = { frame: f, at: performance.now(), index: this.frames.length };
      this.frames.push(e);
      for (const w of this.waiters) {
        if (w.match(e)) {
          this.waiters.delete(w);
          w.resolve(e.frame);
        }
      }
    });
  }

  static async connect(label, server, { key, token, query } = {}) {
    const q = new URLSearchParams();
    if (key !== undefined) q.set('key', key);
    if (token !== undefined) q.set('token', token);
    let qs = q.toString();
    if (query !== undefined) qs = query;
    const c = new RawClient(label, `${server.url}/v1${qs ? '?' + qs : ''}`);
    await within(c.opened, 5000, `${label} open`);
    return c;
  }

  send(frame) {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  list(pred = () => true) {
    return this.frames.map((e) => e.frame).filter(pred);
  }

  waitFrame(pred, { timeout = 5000, since = 0, what } = {}) {
    const match = (e) => e.index >= since && pred(e.frame);
    const found = this.frames.find(match);
    if (found) return Promise.resolve(found.frame);
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      this.waiters.add(w);
      setTimeout(() => {
        if (!this.waiters.delete(w)) return;
        reject(new Error(`${this.label}: no frame ${what ?? pred.toString()} within ${timeout} ms; got ${JSON.stringify(this.list()).slice(0, 2000)}`));
      }, timeout);
    });
  }

  welcome(opts) {
    return this.waitFrame((f) => f.type === 'welcome', { what: 'welcome', ...opts });
  }

  async waitClosed(timeout = 5000) {
    return within(this.closed, timeout, `${this.label} close`);
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(1000, 'done');
    }
    // Never hang cleanup on a peer that does not answer the close handshake.
    const t = setTimeout(() => this.ws.terminate(), 1000);
    return this.closed.finally(() => clearTimeout(t));
  }
}

// ---------------------------------------------------------------------------------------------
// Per-test context: owns servers and clients, cleans up, prints logs on failure

const FAST_RECONNECT = { initialDelayMs: 100, multiplier: 2, maxDelayMs: 1000, jitterRatio: 0.2, maxAttempts: 100 };
export { FAST_RECONNECT };

export class Ctx {
  constructor(t) {
    this.t = t;
    this.servers = [];
    this.cleanups = [];
    this.sdkLogs = [];
    this.notes = [];
  }

  /** Records a measurement: shown as a test diagnostic, and in the failure dump. */
  note(msg) {
    this.notes.push(`[note +${(performance.now() / 1000).toFixed(3)}s] ${msg}`);
    this.t.diagnostic(msg);
  }

  /** Starts a server with baseConfig() deep-merged with overrides. */
  async server(overrides = {}, name) {
    const s = new ServerProcess(merge(baseConfig(), overrides), name);
    this.servers.push(s);
    await s.start();
    return s;
  }

  /** Token provider that mints once via REST and then keeps returning that token (counts calls). */
  async tokenFor(server, req) {
    const { token } = await server.mintToken({ expiresInSec: 3600, ...req });
    return token;
  }

  #sdkOptions(server, label, { apiKey, token, tokenProvider, ...rest }) {
    const tap = tappedFactory();
    const calls = { tokenProvider: 0 };
    const opts = {
      url: server.url,
      webSocketFactory: tap.factory,
      logger: recordingLogger(label, this.sdkLogs),
      ...rest,
    };
    if (apiKey !== undefined) opts.apiKey = apiKey;
    if (token !== undefined || tokenProvider !== undefined) {
      const inner = tokenProvider ?? (async () => token);
      opts.tokenProvider = async () => {
        calls.tokenProvider++;
        return inner();
      };
    }
    return { opts, tap, calls };
  }

  /** A SignallingClient with an event log and a socket tap. */
  signalling(server, label, credOpts) {
    const { opts, tap, calls } = this.#sdkOptions(server, label, credOpts);
    const client = new SignallingClient(opts);
    const events = new EventLog(label, client, SIGNALLING_EVENTS);
    this.cleanups.push(() => client.close());
    return { client, events, tap, calls, label };
  }

  /** A MeteredPeer (inert RTCPeerConnection; no media in these scenarios) with an event log and a tap. */
  metered(server, label, credOpts) {
    const { opts, tap, calls } = this.#sdkOptions(server, label, credOpts);
    const pcs = inertPeerConnectionFactory();
    const peer = new MeteredPeer({ ...opts, rtcPeerConnectionFactory: pcs.factory });
    const events = new EventLog(label, peer, PEER_EVENTS);
    this.cleanups.push(() => peer.close());
    return { peer, events, tap, calls, pcs, label };
  }

  async raw(server, label, cred) {
    const c = await RawClient.connect(label, server, cred);
    this.cleanups.push(() => c.close());
    return c;
  }

  dump(err) {
    const lines = [
      `\n======== FAILED: ${this.t.name} ========`,
      String(err?.stack ?? err),
      ...this.notes,
      ...this.sdkLogs.map((l) => l.line),
    ];
    for (const s of this.servers) lines.push(`---- ${s.name} (${s.configPath}) ----`, ...s.logs);
    lines.push(`======== end of ${this.t.name} ========\n`);
    process.stderr.write(lines.join('\n') + '\n');
  }

  async cleanup() {
    for (const fn of this.cleanups.reverse()) {
      try {
        await within(Promise.resolve().then(fn), 3000, 'cleanup');
      } catch {
        /* best effort */
      }
    }
    for (const s of this.servers) await s.dispose();
  }
}

/**
 * Declares one bounded test. The body gets a Ctx; servers and clients are always cleaned up, and
 * on failure the server's stderr and the SDK loggers' output are printed.
 */
export function sdkTest(name, fn, { timeout = 30000 } = {}) {
  // The body has its own deadline so that a hung test still prints logs and cleans up; the
  // runner's timeout is only a backstop.
  test(name, { timeout: timeout + 20000 }, async (t) => {
    const ctx = new Ctx(t);
    try {
      await within(fn(ctx), timeout, `test body (${name})`);
    } catch (err) {
      ctx.dump(err);
      throw err;
    } finally {
      await ctx.cleanup();
    }
  });
}

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Sorts presence entries by peerId for order-independent comparisons. */
export const byPeerId = (list) => [...list].sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
