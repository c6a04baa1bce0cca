// Session ban list of the player page: a peer whose segment failed the digest check
// (integrity.js) is refused for the rest of the session. p2p-media-loader 2.3 only drops
// such a peer and would meet it again at the next announce; it has no ban list and no
// hook to refuse a peer id. So this file, loaded before p2p-media-loader, wraps the two
// browser classes the library reaches through globals:
//
// - `WebSocket` (bittorrent-tracker's client captures it when its script runs): tracker
//   frames that relay an `offer` or an `answer` from a banned `peer_id` are dropped
//   before the client sees them, so no connection to that peer is set up again;
// - `RTCPeerConnection`: remembers which peer id each connection talks to (the SDP it
//   is given came in a tracker frame whose peer id we noted), refuses a remote
//   description from a banned peer, and closes the data channels and connection of a
//   peer when it is banned or when it connects anyway (a handshake under way at ban
//   time), which p2p-media-loader sees as the peer closing.
//
// Not a verdict on the data (integrity.js decides) and not protection against a peer
// that comes back under a new peer id (the tracker binds an id to one socket; a new id
// is a new peer whose first bad segment bans it too). Works in the page (sets
// `window.MediameshBan`, installed at load) and in node (module.exports) for
// web/tests/ban.test.mjs.
(function (root, factory) {
  if (typeof module === 'object' && module.exports) module.exports = factory();
  else {
    root.MediameshBan = factory();
    root.MediameshBan.page = root.MediameshBan.install(root);
  }
})(typeof self !== 'undefined' ? self : globalThis, function () {
  'use strict';

  const MAX_FRAME_CHARS = 1 << 20; // tracker frames are small; never parse more
  const MAX_SDP_NOTES = 256;

  // A WebTorrent-tracker binary string (one char per byte) → the peer id as
  // p2p-media-loader names it (UTF-8 decoding of those bytes, `hexToUtf8`).
  function peerIdOf(binary) {
    if (typeof binary !== 'string' || binary.length > 64) return null;
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i) & 0xff;
    return new TextDecoder().decode(bytes);
  }

  /**
   * The ban list and its counters. `frame(text)` → true when a tracker frame must be
   * dropped; `noteSdp`/`peerOfSdp` map remote SDPs to peer ids.
   */
  function createBanList() {
    const banned = new Map(); // peer id → { at, reason }
    const sdpPeer = new Map(); // remote SDP → peer id (last MAX_SDP_NOTES)
    const stats = {
      bans: 0, bannedIds: [], refusedOffers: 0, refusedAnswers: 0,
      refusedDescriptions: 0, closedConnections: 0,
    };
    const listeners = [];

    function has(id) { return typeof id === 'string' && banned.has(id); }

    function ban(id, reason) {
      if (typeof id !== 'string' || !id || banned.has(id)) return false;
      banned.set(id, { at: Date.now(), reason: String(reason || '') });
      stats.bans++;
      if (stats.bannedIds.length < 50) stats.bannedIds.push(id);
      for (const f of listeners) {
        try { f(id); } catch (e) { /* a listener must not break the ban */ }
      }
      return true;
    }

    function noteSdp(sdp, id) {
      if (typeof sdp !== 'string' || typeof id !== 'string') return;
      sdpPeer.delete(sdp);
      sdpPeer.set(sdp, id);
      if (sdpPeer.size > MAX_SDP_NOTES) sdpPeer.delete(sdpPeer.keys().next().value);
    }

    function peerOfSdp(sdp) { return typeof sdp === 'string' ? sdpPeer.get(sdp) : undefined; }

    // Decides on one text frame from the tracker. Anything that is not a relayed offer
    // or answer passes untouched (the client handles errors itself).
    function frame(text) {
      if (typeof text !== 'string' || text.length > MAX_FRAME_CHARS) return false;
      if (text.indexOf('"offer"') < 0 && text.indexOf('"answer"') < 0) return false;
      let m;
      try { m = JSON.parse(text); } catch (e) { return false; }
      if (!m || typeof m !== 'object' || (!m.offer && !m.answer)) return false;
      const id = peerIdOf(m.peer_id);
      if (id === null) return false;
      if (banned.has(id)) {
        if (m.offer) stats.refusedOffers++;
        else stats.refusedAnswers++;
        return true;
      }
      const d = m.offer || m.answer;
      if (d && typeof d.sdp === 'string') noteSdp(d.sdp, id);
      return false;
    }

    return {
      has, ban, frame, noteSdp, peerOfSdp, stats,
      onBan(f) { listeners.push(f); },
    };
  }

  // WebSocket whose incoming frames pass `list.frame` first (both `onmessage` and
  // `addEventListener('message')`, the two ways a client can listen).
  function wrapWebSocket(Base, list) {
    const drop = (ev) => ev && typeof ev.data === 'string' && list.frame(ev.data);
    const desc = Object.getOwnPropertyDescriptor(Base.prototype, 'onmessage');
    class BanningWebSocket extends Base {
      addEventListener(type, fn, opts) {
        if (type !== 'message' || typeof fn !== 'function') return super.addEventListener(type, fn, opts);
        if (!this._mmWrapped) this._mmWrapped = new Map();
        let w = this._mmWrapped.get(fn);
        if (!w) {
          w = function (ev) { if (!drop(ev)) return fn.call(this, ev); };
          this._mmWrapped.set(fn, w);
        }
        return super.addEventListener(type, w, opts);
      }
      removeEventListener(type, fn, opts) {
        const w = type === 'message' && this._mmWrapped && this._mmWrapped.get(fn);
        return super.removeEventListener(type, w || fn, opts);
      }
    }
    if (desc && desc.set && desc.get) {
      Object.defineProperty(BanningWebSocket.prototype, 'onmessage', {
        configurable: true,
        enumerable: desc.enumerable,
        get() { return this._mmOnMessage || null; },
        set(fn) {
          this._mmOnMessage = typeof fn === 'function' ? fn : null;
          desc.set.call(this, typeof fn === 'function'
            ? (ev) => { if (!drop(ev)) fn.call(this, ev); }
            : fn);
        },
      });
    }
    return BanningWebSocket;
  }

  // RTCPeerConnection that knows its remote peer id, refuses banned ones and can be
  // closed by peer id. `closeAll(id)` closes the data channels first: a channel's
  // `close` event is what simple-peer (inside p2p-media-loader) reacts to.
  function wrapPeerConnection(Base, list) {
    const byPeer = new Map(); // peer id → Set of connections
    const track = (pc, id) => {
      pc._mmPeer = id;
      let s = byPeer.get(id);
      if (!s) { s = new Set(); byPeer.set(id, s); }
      s.add(pc);
    };
    const untrack = (pc) => {
      const s = pc._mmPeer && byPeer.get(pc._mmPeer);
      if (s) { s.delete(pc); if (!s.size) byPeer.delete(pc._mmPeer); }
    };
    function shut(pc) {
      for (const ch of pc._mmChannels || []) {
        try { ch.close(); } catch (e) { /* already closed */ }
      }
      // Let the channels' close events reach the library, then end the connection.
      setTimeout(() => { try { pc.close(); } catch (e) { /* closed */ } }, 500);
      untrack(pc);
      list.stats.closedConnections++;
    }
    class BanningPeerConnection extends Base {
      constructor(...args) {
        super(...args);
        this._mmChannels = [];
        super.addEventListener('datachannel', (ev) => { if (ev && ev.channel) this._mmChannels.push(ev.channel); });
        super.addEventListener('connectionstatechange', () => {
          if (this.connectionState === 'closed' || this.connectionState === 'failed') untrack(this);
        });
      }
      createDataChannel(...args) {
        const ch = super.createDataChannel(...args);
        this._mmChannels.push(ch);
        return ch;
      }
      setRemoteDescription(d, ...rest) {
        const id = list.peerOfSdp(d && d.sdp);
        if (id !== undefined) {
          if (list.has(id)) {
            list.stats.refusedDescriptions++;
            return Promise.reject(new Error(`mediamesh: peer ${id} is banned for this session`));
          }
          track(this, id);
        }
        return super.setRemoteDescription(d, ...rest);
      }
    }
    list.onBan((id) => {
      for (const pc of [...(byPeer.get(id) || [])]) shut(pc);
    });
    return {
      Class: BanningPeerConnection,
      closeAll(id) {
        const s = byPeer.get(id);
        if (!s) return 0;
        const n = s.size;
        for (const pc of [...s]) shut(pc);
        return n;
      },
    };
  }

  // Installs the wrappers on `win` (the page's window) and returns
  // { list, closePeer(id) }. Without WebSocket or RTCPeerConnection it wraps what
  // exists (P2P is then off anyway).
  function install(win) {
    const list = createBanList();
    let pcs = null;
    if (win && typeof win.WebSocket === 'function') win.WebSocket = wrapWebSocket(win.WebSocket, list);
    if (win && typeof win.RTCPeerConnection === 'function') {
      pcs = wrapPeerConnection(win.RTCPeerConnection, list);
      win.RTCPeerConnection = pcs.Class;
    }
    return { list, closePeer: (id) => (pcs ? pcs.closeAll(id) : 0) };
  }

  return { createBanList, wrapWebSocket, wrapPeerConnection, install, peerIdOf };
});
