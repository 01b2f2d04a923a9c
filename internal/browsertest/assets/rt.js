// rt.js: the page-side half of package browsertest. It drives the unmodified
// @metered-ca/realtime SDK (global `MeteredPeer`, loaded before this file from
// the UMD build) and records everything it observes in window.rt.events, which
// the Go side polls. Every method returns plain JSON-serialisable values.
(function () {
  "use strict";

  const t0 = performance.now();
  const events = [];
  const logs = [];
  const MAX_LOGS = 4000;
  let seq = 0;
  let peer = null;
  let currentToken = null;
  // Label of the data channel the page opens to every remote peer (join option
  // dataChannel), like an app that calls remote.pc.createDataChannel on
  // "peer-joined" and again on "connection-reset" (§5.15); null = none.
  let dcLabel = null;
  // role -> {stream, metadata, added}: local streams (camera, screen, ...).
  const local = new Map();
  // Inbound tracks by id, so tests can inspect them (readyState, muted).
  const inbound = new Map();
  // peerId -> Map(sender track id -> metadata) from the __meteredTrackMeta
  // control messages the signalling server delivered (observed on the
  // SignallingClient's "direct" event; the SDK consumes them itself).
  const signalledMeta = new Map();

  function now() {
    return Math.round(performance.now() - t0);
  }

  // plain deep-copies v through JSON so events never hold live objects.
  function plain(v) {
    if (v === undefined) return undefined;
    try {
      return JSON.parse(JSON.stringify(v));
    } catch (e) {
      return String(v);
    }
  }

  function errText(e) {
    if (e === undefined || e === null) return "unknown error";
    if (typeof e === "string") return e;
    const name = e.name || "Error";
    const code = e.code !== undefined ? " [" + e.code + "]" : "";
    return name + code + ": " + (e.message || String(e));
  }

  function push(type, fields) {
    const ev = Object.assign({ seq: seq++, t: now(), type: type }, fields || {});
    events.push(ev);
    return ev;
  }

  const logger = {};
  for (const level of ["debug", "info", "warn", "error"]) {
    logger[level] = function (msg, ctx) {
      logs.push({ t: now(), level: level, msg: String(msg), ctx: plain(ctx) });
      if (logs.length > MAX_LOGS) logs.splice(0, logs.length - MAX_LOGS);
    };
  }

  window.addEventListener("error", function (ev) {
    push("page-error", { error: String(ev.message || ev.error) });
  });
  window.addEventListener("unhandledrejection", function (ev) {
    push("page-error", { error: "unhandled rejection: " + errText(ev.reason) });
  });

  // senderTrackIdOf returns the track id of the a=msid line of an inbound
  // track's m-section in the remote description. It is the sender's
  // MediaStreamTrack.id when the sender's transceiver came from its own
  // addTrack (not when addTrack reused a transceiver created by our offer).
  // Chromium's receiving track has that id only if our transceiver was created
  // by the remote offer; otherwise its id is random.
  function senderTrackIdOf(remote, track) {
    try {
      const pc = remote.pc;
      const tr = pc.getTransceivers().find(function (x) { return x.receiver && x.receiver.track === track; });
      const desc = pc.remoteDescription;
      if (!tr || !tr.mid || !desc) return "";
      for (const section of desc.sdp.split("\r\nm=")) {
        const lines = section.split("\r\n");
        if (lines.indexOf("a=mid:" + tr.mid) < 0) continue;
        const msid = lines.find(function (l) { return l.startsWith("a=msid:"); });
        return msid ? (msid.slice("a=msid:".length).split(" ")[1] || "") : "";
      }
    } catch (e) {
      logger.warn("rt: senderTrackIdOf failed", { err: errText(e) });
    }
    return "";
  }

  function onDirect(e) {
    const d = e && e.data;
    const m = d && typeof d === "object" ? d.__meteredTrackMeta : undefined;
    if (!m || typeof m !== "object" || typeof m.trackId !== "string") return;
    let byTrack = signalledMeta.get(e.from);
    if (!byTrack) {
      byTrack = new Map();
      signalledMeta.set(e.from, byTrack);
    }
    if (m.metadata === undefined) byTrack.delete(m.trackId);
    else byTrack.set(m.trackId, plain(m.metadata));
    push("track-meta", { peer: e.from, trackId: m.trackId, metadata: plain(m.metadata) });
  }

  // openDataChannel creates the page's data channel on the remote peer's
  // current RTCPeerConnection and records its lifecycle (dc-created, dc-open,
  // dc-close).
  function openDataChannel(remote) {
    if (!dcLabel) return;
    const id = remote.id;
    let ch;
    try {
      ch = remote.pc.createDataChannel(dcLabel);
    } catch (e) {
      push("page-error", { error: "createDataChannel: " + errText(e) });
      return;
    }
    push("dc-created", { peer: id, label: ch.label });
    ch.addEventListener("open", function () { push("dc-open", { peer: id, label: ch.label }); });
    ch.addEventListener("close", function () { push("dc-close", { peer: id, label: ch.label }); });
  }

  function wireRemote(remote) {
    const id = remote.id;
    remote.on("state-change", function (e) {
      push("remote-state", { peer: id, from: e.from, to: e.to });
    });
    remote.on("track", function (e) {
      const track = e.track;
      inbound.set(track.id, track);
      const senderTrackId = senderTrackIdOf(remote, track);
      const byTrack = signalledMeta.get(id);
      push("track", {
        peer: id,
        kind: track.kind,
        trackId: track.id,
        senderTrackId: senderTrackId,
        streamIds: (e.streams || []).map(function (s) { return s.id; }),
        metadata: plain(e.metadata),
        signalledMetadata: byTrack && senderTrackId ? byTrack.get(senderTrackId) : undefined,
      });
      track.addEventListener("ended", function () {
        push("track-ended", { peer: id, kind: track.kind, trackId: track.id });
      });
    });
    remote.on("stream-added", function (e) {
      const first = e.stream.getTracks()[0];
      const senderTrackId = first ? senderTrackIdOf(remote, first) : "";
      const byTrack = signalledMeta.get(id);
      push("stream-added", {
        peer: id,
        streamId: e.stream.id,
        senderTrackId: senderTrackId,
        metadata: plain(e.metadata),
        signalledMetadata: byTrack && senderTrackId ? byTrack.get(senderTrackId) : undefined,
      });
    });
    remote.on("stream-removed", function (e) {
      push("stream-removed", { peer: id, streamId: e.stream.id });
    });
    remote.on("negotiation-error", function (e) {
      push("negotiation-error", { peer: id, error: errText(e.err) });
    });
    remote.on("ice-candidate-error", function (e) {
      push("ice-candidate-error", { peer: id, error: errText(e.err) });
    });
    remote.on("connection-reset", function () {
      push("connection-reset", { peer: id });
      openDataChannel(remote); // channels die with the old RTCPeerConnection
    });
    remote.on("data-channel", function (e) {
      push("data-channel", { peer: id, label: e.channel.label });
    });
  }

  function wirePeer(p) {
    p.on("joined", function (e) {
      push("joined", { peer: e.peerId, channel: e.channel });
    });
    p.on("left", function (e) {
      push("left", { peer: e.peerId, channel: e.channel, reason: e.reason });
    });
    p.on("state-change", function (e) {
      push("state", { from: e.from, to: e.to });
    });
    p.on("peer-joined", function (e) {
      push("peer-joined", { peer: e.peer.id, metadata: plain(e.peer.metadata) });
      wireRemote(e.peer);
      openDataChannel(e.peer);
    });
    p.on("peer-left", function (e) {
      push("peer-left", { peer: e.peer.id });
    });
    p.on("data", function (e) {
      push("data", { peer: e.senderPeerId, kind: e.kind, data: plain(e.data), metadata: plain(e.senderMetadata) });
    });
    p.on("error", function (e) {
      push("error", { error: errText(e.err) });
    });
    // The SignallingClient is a private field in the typings but a plain
    // property at runtime; its lifecycle explains most failures.
    const c = p.client;
    if (c && typeof c.on === "function") {
      c.on("connected", function (e) {
        push("signalling-connected", { peer: e.peerId, reconnect: !!e.isReconnect });
      });
      c.on("disconnected", function (e) {
        push("signalling-disconnected", { code: e.code, reason: e.reason, willReconnect: !!e.willReconnect });
      });
      c.on("server-error", function (e) {
        push("server-error", { errorCode: String(e.code), error: e.message || "" });
      });
      c.on("direct", onDirect);
      c.on("going-away", function (e) {
        push("going-away", { data: plain(e) });
      });
    }
  }

  function requirePeer(method) {
    if (!peer) throw new Error("rt." + method + ": join first");
    return peer;
  }

  function findRemote(peerId) {
    const p = requirePeer("remote");
    const r = p.remotePeers.find(function (x) { return x.id === peerId; });
    if (!r) {
      throw new Error("rt: no remote peer " + JSON.stringify(peerId) + " (have " +
        JSON.stringify(p.remotePeers.map(function (x) { return x.id; })) + ")");
    }
    return r;
  }

  function describeStream(role, stream, metadata) {
    return {
      role: role,
      streamId: stream.id,
      metadata: plain(metadata),
      tracks: stream.getTracks().map(function (t) { return { id: t.id, kind: t.kind, label: t.label }; }),
    };
  }

  // addLocal registers a local stream under a role and hands it to the SDK
  // (now if a MeteredPeer exists, otherwise at join).
  function addLocal(role, stream, metadata) {
    if (local.has(role)) {
      stream.getTracks().forEach(function (t) { t.stop(); });
      throw new Error("rt: a local stream with role " + JSON.stringify(role) + " already exists");
    }
    const entry = { stream: stream, metadata: metadata, added: false };
    local.set(role, entry);
    if (peer) {
      peer.addStream(stream, metadata);
      entry.added = true;
    }
    return describeStream(role, stream, metadata);
  }

  function roleOf(metadata, fallback) {
    return metadata && typeof metadata.role === "string" ? metadata.role : fallback;
  }

  function addCounters(into, kind, bytes, packets, frames) {
    const k = kind || "unknown";
    if (!into[k]) into[k] = { bytes: 0, packets: 0, frames: 0, streams: 0 };
    into[k].bytes += bytes || 0;
    into[k].packets += packets || 0;
    into[k].frames += frames || 0;
    into[k].streams += 1;
  }

  function candidateText(c) {
    if (!c) return "";
    return (c.protocol || "") + " " + (c.address || c.ip || "") + ":" + c.port + " " + (c.candidateType || "");
  }

  window.rt = {
    ready: true,
    events: events,
    logs: logs,

    // join creates the MeteredPeer (token or apiKey), attaches every local
    // stream added so far and joins the channel.
    join: async function (opts) {
      if (peer) throw new Error("rt.join: this page already has a MeteredPeer; open a new page");
      const o = { url: opts.url, logger: logger };
      if (opts.reconnect === false) o.reconnect = false;
      else if (opts.reconnect) o.reconnect = opts.reconnect;
      if (opts.inactivityTimeoutMs !== undefined) o.inactivityTimeoutMs = opts.inactivityTimeoutMs;
      dcLabel = opts.dataChannel || null;
      if (opts.apiKey) {
        o.apiKey = opts.apiKey;
      } else if (opts.token) {
        currentToken = opts.token;
        o.tokenProvider = async function () { return currentToken; };
      } else {
        throw new Error("rt.join: token or apiKey is required");
      }
      peer = new MeteredPeer.MeteredPeer(o);
      wirePeer(peer);
      for (const entry of local.values()) {
        if (!entry.added) {
          peer.addStream(entry.stream, entry.metadata);
          entry.added = true;
        }
      }
      await peer.join(opts.channel, { includeSenderMetadata: !!opts.includeSenderMetadata });
      return { peerId: peer.peerId, state: peer.state, channel: peer.channel };
    },

    // setToken changes what the tokenProvider returns on the next (re)connect.
    setToken: function (token) {
      currentToken = token;
      return true;
    },

    // addCamera: getUserMedia({audio, video}) then peer.addStream(stream, metadata).
    addCamera: async function (metadata) {
      const meta = metadata || { role: "camera" };
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      return addLocal(roleOf(meta, "camera"), stream, meta);
    },

    // addScreen stands in for a screen share with a second fake-camera video stream.
    addScreen: async function (metadata) {
      const meta = metadata || { role: "screen" };
      const stream = await navigator.mediaDevices.getUserMedia({ audio: false, video: true });
      return addLocal(roleOf(meta, "screen"), stream, meta);
    },

    removeStream: function (role) {
      const entry = local.get(role);
      if (!entry) throw new Error("rt.removeStream: no local stream with role " + JSON.stringify(role));
      if (peer && entry.added) peer.removeStream(entry.stream);
      entry.stream.getTracks().forEach(function (t) { t.stop(); });
      local.delete(role);
      return true;
    },

    // replaceVideoTrack swaps the video track of a local stream for a fresh
    // fake-camera track via peer.replaceTrack (no renegotiation).
    replaceVideoTrack: async function (role) {
      const r = role || "camera";
      const entry = local.get(r);
      if (!entry) throw new Error("rt.replaceVideoTrack: no local stream with role " + JSON.stringify(r));
      const old = entry.stream.getVideoTracks()[0];
      if (!old) throw new Error("rt.replaceVideoTrack: stream " + JSON.stringify(r) + " has no video track");
      const fresh = (await navigator.mediaDevices.getUserMedia({ video: true })).getVideoTracks()[0];
      if (peer && entry.added) await peer.replaceTrack(old, fresh);
      entry.stream.removeTrack(old);
      entry.stream.addTrack(fresh);
      old.stop();
      return { oldTrackId: old.id, newTrackId: fresh.id };
    },

    close: async function (reason) {
      if (peer) await peer.close(reason);
      for (const entry of local.values()) entry.stream.getTracks().forEach(function (t) { t.stop(); });
      local.clear();
      return true;
    },

    state: function () {
      if (!peer) return { state: "none", peerId: null, channel: null };
      return { state: peer.state, peerId: peer.peerId, channel: peer.channel };
    },

    remotes: function () {
      if (!peer) return [];
      return peer.remotePeers.map(function (r) {
        const pc = r.pc;
        return {
          id: r.id,
          state: r.state,
          polite: r.polite,
          metadata: plain(r.metadata),
          connectionState: pc ? pc.connectionState : "",
          iceConnectionState: pc ? pc.iceConnectionState : "",
          signalingState: pc ? pc.signalingState : "",
        };
      });
    },

    localStreams: function () {
      const out = [];
      for (const [role, entry] of local) out.push(describeStream(role, entry.stream, entry.metadata));
      return out;
    },

    inboundTrack: function (trackId) {
      const t = inbound.get(trackId);
      if (!t) return null;
      return { id: t.id, kind: t.kind, readyState: t.readyState, muted: t.muted, enabled: t.enabled };
    },

    // stats sums inbound/outbound RTP counters of remote.pc.getStats() by kind.
    stats: async function (peerId) {
      const r = findRemote(peerId);
      const pc = r.pc;
      const report = await pc.getStats();
      const out = {
        peer: peerId,
        state: r.state,
        connectionState: pc.connectionState,
        iceConnectionState: pc.iceConnectionState,
        signalingState: pc.signalingState,
        inbound: {},
        outbound: {},
        inboundBytes: 0,
        outboundBytes: 0,
        localCandidate: "",
        remoteCandidate: "",
      };
      const byId = new Map();
      report.forEach(function (s) { byId.set(s.id, s); });
      report.forEach(function (s) {
        if (s.type === "inbound-rtp") {
          addCounters(out.inbound, s.kind, s.bytesReceived, s.packetsReceived, s.framesDecoded);
          out.inboundBytes += s.bytesReceived || 0;
        } else if (s.type === "outbound-rtp") {
          addCounters(out.outbound, s.kind, s.bytesSent, s.packetsSent, s.framesEncoded);
          out.outboundBytes += s.bytesSent || 0;
        } else if (s.type === "transport" && s.selectedCandidatePairId) {
          const pair = byId.get(s.selectedCandidatePairId);
          if (pair) {
            out.localCandidate = candidateText(byId.get(pair.localCandidateId));
            out.remoteCandidate = candidateText(byId.get(pair.remoteCandidateId));
          }
        }
      });
      return out;
    },
  };
})();
