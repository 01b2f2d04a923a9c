// An inert RTCPeerConnectionLike for driving MeteredPeer in Node 20.
//
// Node 20 has no RTCPeerConnection. MeteredPeer creates one per discovered remote peer, through
// its documented test-injection option `rtcPeerConnectionFactory` (dist/index.d.ts,
// MeteredPeerOptions). The scenarios that use MeteredPeer here exercise only the signalling layer
// (join, presence-driven discovery, reconcile, errors, sends, close codes); NO MEDIA IS INVOLVED.
// No local tracks or data channels are ever added, so the SDK never offers, and this object never
// fires any event: each RemotePeer simply stays "idle", exactly like two media-less browsers
// (spec §5.5: "Two media-less peers never create a connection").
//
// Every method the SDK might call is present. Methods that would only run during a negotiation
// throw loudly, so a test that accidentally triggers media negotiation fails instead of passing
// vacuously.

class InertPeerConnection {
  constructor(config, registry) {
    this.config = config;
    this.connectionState = 'new';
    this.signalingState = 'stable';
    this.iceConnectionState = 'new';
    this.localDescription = null;
    this.remoteDescription = null;
    this.listeners = new Map();
    this.closed = false;
    registry.created.push(this);
  }

  #unexpected(method) {
    throw new Error(`InertPeerConnection.${method}: media negotiation is not part of this scenario`);
  }

  async createOffer() {
    this.#unexpected('createOffer');
  }

  async createAnswer() {
    this.#unexpected('createAnswer');
  }

  async setLocalDescription() {
    this.#unexpected('setLocalDescription');
  }

  async setRemoteDescription() {
    this.#unexpected('setRemoteDescription');
  }

  async addIceCandidate() {
    this.#unexpected('addIceCandidate');
  }

  addTrack() {
    this.#unexpected('addTrack');
  }

  removeTrack() {
    this.#unexpected('removeTrack');
  }

  createDataChannel() {
    this.#unexpected('createDataChannel');
  }

  getSenders() {
    return [];
  }

  setConfiguration(config) {
    this.config = config;
  }

  addEventListener(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
  }

  removeEventListener(type, listener) {
    this.listeners.get(type)?.delete(listener);
  }

  close() {
    // A real RTCPeerConnection fires no connectionstatechange on close(); neither does this one.
    this.closed = true;
    this.signalingState = 'closed';
    this.connectionState = 'closed';
  }
}

/** Returns {factory, created}: pass `factory` as MeteredPeer's rtcPeerConnectionFactory. */
export function inertPeerConnectionFactory() {
  const registry = { created: [] };
  registry.factory = (config) => new InertPeerConnection(config, registry);
  return registry;
}
