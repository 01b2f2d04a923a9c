// ice.js: loaded before the SDK. It replaces window.RTCPeerConnection with a
// thin subclass that
//   - counts ICE candidates per connection (window.rtIce.stats()), and
//   - when window.__rtLoopbackOnly is true (the default of package
//     browsertest), keeps ICE on loopback: candidates whose address is not in
//     127.0.0.0/8 or ::1 are neither given to the page's listeners (so the SDK
//     never signals them), nor put in pc.localDescription's SDP, nor accepted
//     from the remote side (addIceCandidate, setRemoteDescription).
// Chromium has no switch that limits WebRTC to the loopback interface: with
// --allow-loopback-in-peer-connection it gathers on every interface and
// prefers the others (loopback candidates carry network-cost 50). The SDK is
// not modified: it sees a standard RTCPeerConnection.
(function () {
  "use strict";
  const Native = window.RTCPeerConnection;
  if (!Native) return;
  const loopbackOnly = window.__rtLoopbackOnly === true;
  const all = [];

  // isLoopback reports whether a candidate line ("candidate:F C proto prio ADDR PORT typ ...")
  // names a loopback address. An empty candidate (end of candidates) passes.
  function isLoopback(cand) {
    if (!cand) return true;
    const f = String(cand).trim().split(/\s+/);
    const addr = (f[4] || "").replace(/^\[|\]$/g, "");
    return addr.startsWith("127.") || addr === "::1" || addr === "localhost";
  }

  function filterSDP(sdp) {
    if (!loopbackOnly || typeof sdp !== "string") return sdp;
    return sdp
      .split("\r\n")
      .filter(function (l) { return !l.startsWith("a=candidate:") || isLoopback(l.slice(2)); })
      .join("\r\n");
  }

  const t0 = performance.now();
  // note appends to the connection's API/event timeline (newest 300 entries).
  function note(pc, what) {
    const s = pc.__rtIce;
    if (!s) return;
    s.log.push(Math.round(performance.now() - t0) + " " + what);
    if (s.log.length > 300) s.log.shift();
  }

  function traced(pc, what, promise) {
    return promise.then(
      function (v) { note(pc, what + " ok"); return v; },
      function (e) { note(pc, what + " failed: " + (e && e.name) + ": " + (e && e.message)); throw e; });
  }

  class RTCPeerConnection extends Native {
    constructor(config, ...rest) {
      super(config, ...rest);
      const s = { gathered: 0, signalled: 0, droppedLocal: 0, remoteAdded: 0, droppedRemote: 0, remoteAddFailed: 0, log: [] };
      this.__rtIce = s;
      this.__rtWrapped = new Map();
      all.push(this);
      const pc = this;
      const add = Native.prototype.addEventListener;
      add.call(this, "icecandidate", function (ev) {
        if (ev.candidate && ev.candidate.candidate) s.gathered++;
        else note(pc, "icecandidate end");
      });
      add.call(this, "negotiationneeded", function () { note(pc, "negotiationneeded"); });
      add.call(this, "signalingstatechange", function () { note(pc, "signalingState " + pc.signalingState); });
      add.call(this, "icegatheringstatechange", function () { note(pc, "iceGatheringState " + pc.iceGatheringState); });
      add.call(this, "iceconnectionstatechange", function () { note(pc, "iceConnectionState " + pc.iceConnectionState); });
      add.call(this, "connectionstatechange", function () { note(pc, "connectionState " + pc.connectionState); });
    }

    createOffer(...args) {
      note(this, "createOffer " + JSON.stringify(args[0] || {}));
      return traced(this, "createOffer", super.createOffer(...args));
    }

    createAnswer(...args) {
      note(this, "createAnswer");
      return traced(this, "createAnswer", super.createAnswer(...args));
    }

    setLocalDescription(...args) {
      note(this, "setLocalDescription " + (args[0] && args[0].type));
      return traced(this, "setLocalDescription", super.setLocalDescription(...args));
    }

    addEventListener(type, fn, opts) {
      if (type !== "icecandidate" || typeof fn !== "function") return super.addEventListener(type, fn, opts);
      const s = this.__rtIce;
      const self = this;
      const wrapped = function (ev) {
        if (ev.candidate && ev.candidate.candidate) {
          if (loopbackOnly && !isLoopback(ev.candidate.candidate)) {
            s.droppedLocal++;
            return;
          }
          s.signalled++;
        }
        return fn.call(self, ev);
      };
      this.__rtWrapped.set(fn, wrapped);
      return super.addEventListener(type, wrapped, opts);
    }

    removeEventListener(type, fn, opts) {
      if (type === "icecandidate" && this.__rtWrapped.has(fn)) {
        const w = this.__rtWrapped.get(fn);
        this.__rtWrapped.delete(fn);
        return super.removeEventListener(type, w, opts);
      }
      return super.removeEventListener(type, fn, opts);
    }

    get localDescription() {
      const d = super.localDescription;
      if (!d || !loopbackOnly) return d;
      const plain = { type: d.type, sdp: filterSDP(d.sdp) };
      plain.toJSON = function () { return { type: plain.type, sdp: plain.sdp }; };
      return plain;
    }

    setRemoteDescription(desc, ...rest) {
      note(this, "setRemoteDescription " + (desc && desc.type));
      if (loopbackOnly && desc && typeof desc.sdp === "string") desc = { type: desc.type, sdp: filterSDP(desc.sdp) };
      return traced(this, "setRemoteDescription", super.setRemoteDescription(desc, ...rest));
    }

    addIceCandidate(cand, ...rest) {
      const s = this.__rtIce;
      const line = cand && typeof cand === "object" ? cand.candidate : undefined;
      if (line) {
        if (loopbackOnly && !isLoopback(line)) {
          s.droppedRemote++;
          return Promise.resolve();
        }
        s.remoteAdded++;
      }
      const p = arguments.length === 0 ? super.addIceCandidate() : super.addIceCandidate(cand, ...rest);
      return p.catch(function (err) {
        if (line) s.remoteAddFailed++;
        throw err;
      });
    }
  }

  window.RTCPeerConnection = RTCPeerConnection;
  window.rtIce = {
    loopbackOnly: loopbackOnly,
    stats: function () {
      return all.map(function (pc, i) {
        return Object.assign({ index: i, connectionState: pc.connectionState, signalingState: pc.signalingState }, pc.__rtIce);
      });
    },
  };
})();
