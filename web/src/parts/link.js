// One peer connection of p2p-media-loader, extended with the part commands (64–69):
// a PartLink sits between the connection (simple-peer, from the library) and the
// library's own PeerProtocol. It routes what arrives: part commands and the raw bytes
// of our part downloads to us, everything else to p2p-media-loader unchanged (the
// announcement and segment request/header are also read on the way past). It sends
// our commands and part bytes through the same connection object as the library, so
// the order on the data channel is the order of the writes, and keeps the protocol's
// one-slot rule (PROTOCOL.md §5): at most one download and one upload per connection,
// segment or part, a new request superseding the upload in progress.
//
// Not here: what to fetch when (swarm.js), verification (the page's integrity.js).

import * as wire from './wire.js';

const { CMD } = wire;

/** Largest part we accept from a peer (a part is a fraction of a 2–6 s segment). */
export const MAX_PART_BYTES = 8 * 1024 * 1024;
/** Cancelled part requests whose stray completion we still expect. */
const CANCELLED_MEMORY = 4;
/** What `downloadingSegment` reports to p2p-media-loader while a part download runs. */
const PART_DOWNLOAD = Object.freeze({ externalId: -1, partDownload: true });

// FNV-1a 64 over the peer id's bytes: `PeerKey::from_peer_id` of the native peer.
export function peerKey(id) {
  const bytes = new TextEncoder().encode(id);
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

/** Rendezvous score of a peer for a part (the native peer's `rendezvous`). */
export function rendezvous(key, packedPart) {
  const M = 0xffffffffffffffffn;
  let x = key ^ ((BigInt(packedPart) * 0x9e3779b97f4a7c15n) & M);
  x ^= x >> 30n;
  x = (x * 0xbf58476d1ce4e5b9n) & M;
  x ^= x >> 27n;
  x = (x * 0x94d049bb133111ebn) & M;
  return x ^ (x >> 31n);
}

export class ProtocolViolation extends Error {}

export class PartLink {
  /**
   * @param {object} peer   p2p-media-loader's Peer (fields `id`, `connection`, `peerProtocol`)
   * @param {object} events { onCapability(link), onAnnounce(link), onRequest(link, msn, index, r),
   *                          onViolation(link, reason), onClosed(link), onUploaded(n) }
   */
  constructor(peer, events) {
    this.peer = peer;
    this.id = peer.id;
    this.key = peerKey(peer.id);
    this.events = events;
    this.conn = peer.connection;
    this.pp = peer.peerProtocol;
    this.max = (this.pp && this.pp.peerConfig && this.pp.peerConfig.webRtcMaxMessageSize) || 65535;
    this.remoteX = 0;
    this.remoteParts = new Set();
    this.partsSent = false;
    this.download = null;
    this.upload = null;
    this.cancelled = [];
    this.owner = null; // who the raw bytes belong to: 'part' after our PartData header
    this.route = null; // where the chunks of the command being received go
    this.joiner = new wire.Joiner();
    this.closed = false;
    this.nextRequestId = Math.floor(Math.random() * 1000);
    this.counters = { partsIn: 0, partsOut: 0, absentIn: 0, absentOut: 0, violations: 0 };
  }

  /** Takes over the connection's data events and the peer's announcement. */
  install() {
    const { conn, pp, peer } = this;
    if (!conn || !pp || typeof pp.onDataReceived !== 'function') {
      throw new Error('p2p-media-loader internals changed: no connection/peerProtocol on Peer');
    }
    this.passOn = pp.onDataReceived;
    conn.off('data', pp.onDataReceived);
    conn.on('data', this.onData);
    conn.on('close', this.onClose);
    // Every announcement carries our capability bit `x`.
    peer.sendSegmentsAnnouncementCommand = (loaded, httpLoading) => {
      this.write(wire.segmentsAnnouncement(loaded, httpLoading, wire.EXT_PARTS, this.max));
    };
    // While a part download runs the link is busy for p2p-media-loader too.
    const proto = Object.getPrototypeOf(peer);
    const desc = Object.getOwnPropertyDescriptor(proto, 'downloadingSegment');
    this.libraryDownload = desc && desc.get ? () => desc.get.call(peer) : () => undefined;
    Object.defineProperty(peer, 'downloadingSegment', {
      configurable: true,
      get: () => (this.download ? PART_DOWNLOAD : this.libraryDownload()),
    });
  }

  get speaksParts() {
    return (this.remoteX & wire.EXT_PARTS) !== 0 && !this.closed;
  }

  /** Free for a part request: no download of ours or of the library. */
  get free() {
    return this.speaksParts && !this.download && !this.libraryDownload();
  }

  write(messages) {
    let ok = true;
    if (this.closed) return false;
    for (const m of messages) ok = this.conn.write(m);
    return ok;
  }

  // ---- receiving --------------------------------------------------------------------

  onData = (data) => {
    const b = data instanceof Uint8Array ? data : new Uint8Array(data);
    try {
      if (wire.isCommandChunk(b)) this.onCommandChunk(b, data);
      else this.onRaw(b, data);
    } catch (e) {
      if (e instanceof ProtocolViolation || e instanceof wire.WireError) this.violation(e.message);
      else throw e;
    }
  };

  onCommandChunk(b, original) {
    if (wire.startsCommand(b)) {
      const t = wire.commandTypeOf(b);
      // Ours alone: 64+. Read on the way past: the announcement (x), a segment
      // request (supersedes our upload), a segment header (raw bytes are the library's).
      this.route = t >= 64 ? 'ours' : t >= 0 && t <= 2 ? 'both' : 'library';
      if (this.joiner.size > 0) this.joiner.reset();
    } else if (!this.route) {
      this.route = 'library';
    }
    const route = this.route;
    if (wire.endsCommand(b)) this.route = null;
    if (route !== 'library') {
      let body = null;
      try {
        body = this.joiner.push(b);
      } catch (e) {
        if (route === 'ours') throw e;
      }
      if (body) this.onCommand(body, route === 'ours');
    }
    if (route !== 'ours') this.passOn(original);
  }

  onCommand(body, ours) {
    let cmd;
    try {
      cmd = wire.readCommand(wire.decodeBody(body));
    } catch (e) {
      if (ours) throw e;
      return; // the library judges its own commands
    }
    if (!cmd) return;
    switch (cmd.c) {
      case CMD.SegmentsAnnouncement: {
        const was = this.speaksParts;
        this.remoteX = cmd.x;
        if (this.speaksParts && !was) this.events.onCapability(this);
        break;
      }
      case CMD.SegmentRequest:
        this.stopUpload();
        break;
      case CMD.SegmentData:
        this.owner = 'library';
        break;
      case CMD.PartsAnnouncement:
        this.remoteParts = new Set(cmd.parts);
        this.events.onAnnounce(this);
        break;
      case CMD.PartRequest:
        // A new request of either kind supersedes the upload in progress.
        if (this.pp.getUploadingRequestId && this.pp.getUploadingRequestId() !== undefined) {
          this.pp.stopUploadingSegmentData();
        }
        this.stopUpload();
        this.events.onRequest(this, cmd.msn, cmd.index, cmd.r);
        break;
      case CMD.PartData:
        this.onPartHeader(cmd);
        break;
      case CMD.PartSendingCompleted:
        this.onPartCompleted(cmd);
        break;
      case CMD.PartAbsent:
        this.onPartAbsent(cmd);
        break;
      case CMD.CancelPartRequest:
        if (this.upload && this.upload.r === cmd.r) this.stopUpload();
        break;
      default:
        break; // 70–255: later extensions, ignored
    }
  }

  onPartHeader(cmd) {
    const d = this.download;
    if (!d || d.size !== null || d.msn !== cmd.msn || d.index !== cmd.index || d.r !== cmd.r) return;
    if (cmd.s > MAX_PART_BYTES) throw new ProtocolViolation(`part of ${cmd.s} bytes`);
    d.size = cmd.s;
    d.g = cmd.g;
    d.buf = new Uint8Array(cmd.s);
    this.owner = 'part';
  }

  onPartCompleted(cmd) {
    const at = this.cancelled.indexOf(cmd.r);
    if (at >= 0) {
      this.cancelled.splice(at, 1);
      return;
    }
    const d = this.download;
    if (!d || d.size === null) return; // before the header: ignored, as the JS does
    if (d.msn !== cmd.msn || d.index !== cmd.index || d.r !== cmd.r) {
      throw new ProtocolViolation('completion of another request');
    }
    if (d.received !== d.size) throw new ProtocolViolation(`completion after ${d.received} of ${d.size} bytes`);
    this.finish(null, { data: d.buf, g: d.g });
    this.owner = null;
  }

  onPartAbsent(cmd) {
    const at = this.cancelled.indexOf(cmd.r);
    if (at >= 0) {
      this.cancelled.splice(at, 1);
      return;
    }
    const d = this.download;
    if (!d || d.msn !== cmd.msn || d.index !== cmd.index || d.r !== cmd.r) return;
    this.remoteParts.delete(wire.packPart(cmd.msn, cmd.index));
    this.counters.absentIn++;
    if (this.owner === 'part') this.owner = null;
    this.finish(new Error('absent'));
  }

  onRaw(b, original) {
    if (this.owner === 'part') {
      const d = this.download;
      if (!d || d.size === null) return; // the tail of a part we cancelled
      if (d.received + b.length > d.size) throw new ProtocolViolation('more part bytes than announced');
      d.buf.set(b, d.received);
      d.received += b.length;
      return;
    }
    this.passOn(original);
  }

  // ---- our download ----------------------------------------------------------------

  /** Asks for a part; resolves `{ data, g }` or rejects (absent, timeout, closed). */
  request(msn, index, timeoutMs) {
    if (!this.free) return Promise.reject(new Error('busy'));
    const r = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId + 1) % 1000;
    return new Promise((resolve, reject) => {
      const d = { msn, index, r, size: null, received: 0, buf: null, g: undefined, resolve, reject, timer: null };
      this.download = d;
      d.timer = setTimeout(() => this.cancel('timeout'), Math.max(1, timeoutMs));
      this.write(wire.partCommand(CMD.PartRequest, msn, index, r, this.max));
    });
  }

  /** Cancels our part download (timeout, HTTP won, playback moved on). */
  cancel(reason) {
    const d = this.download;
    if (!d) return;
    this.write(wire.partCommand(CMD.CancelPartRequest, d.msn, d.index, d.r, this.max));
    this.cancelled.push(d.r);
    if (this.cancelled.length > CANCELLED_MEMORY) this.cancelled.shift();
    // `owner` stays: raw bytes still under way belong to the cancelled part.
    this.finish(new Error(reason || 'cancelled'));
  }

  finish(err, value) {
    const d = this.download;
    if (!d) return;
    clearTimeout(d.timer);
    this.download = null;
    if (err) d.reject(err);
    else d.resolve(value);
  }

  // ---- our upload --------------------------------------------------------------------

  stopUpload() {
    if (this.upload) this.upload.stop = true;
    this.upload = null;
  }

  sendAbsent(msn, index, r) {
    this.counters.absentOut++;
    this.write(wire.partCommand(CMD.PartAbsent, msn, index, r, this.max));
  }

  /** Sends a part in answer to request `r`; stops between chunks when superseded. */
  async sendPart(msn, index, r, bytes, g) {
    const up = { r, stop: false };
    this.upload = up;
    this.write(wire.partData(msn, index, bytes.length, r, g, this.max));
    let off = 0;
    while (off < bytes.length) {
      if (up.stop || this.closed) return false;
      let len = Math.min(this.max, bytes.length - off);
      // A raw chunk must never look like a command (PROTOCOL.md §2): shorten it by one.
      if (len > 8 && wire.isCommandChunk(bytes.subarray(off, off + len))) len--;
      const chunk = bytes.slice(off, off + len);
      off += len;
      const drained = this.conn.write(chunk);
      this.events.onUploaded(chunk.length);
      if (!drained) await this.drained();
    }
    if (up.stop || this.closed) return false;
    this.write(wire.partCommand(CMD.PartSendingCompleted, msn, index, r, this.max));
    if (this.upload === up) this.upload = null;
    this.counters.partsOut++;
    return true;
  }

  drained() {
    return new Promise((resolve) => {
      const done = () => {
        this.conn.off('drain', done);
        this.conn.off('close', done);
        resolve();
      };
      this.conn.on('drain', done);
      this.conn.on('close', done);
    });
  }

  sendPartsAnnouncement(packed) {
    if (!this.speaksParts) return;
    this.partsSent = true;
    this.write(wire.partsAnnouncement(packed, this.max));
  }

  // ---- end ---------------------------------------------------------------------------

  violation(reason) {
    if (this.closed) return;
    this.counters.violations++;
    this.finish(new Error(`protocol violation: ${reason}`));
    this.events.onViolation(this, reason);
  }

  onClose = () => {
    if (this.closed) return;
    this.closed = true;
    this.stopUpload();
    this.finish(new Error('peer closed'));
    this.events.onClosed(this);
  };
}
