// The parts of one rendition at low latency: which LL-HLS part comes from HTTP and
// which from a peer, the parts we hold, what we announce and serve. A pull mesh as in
// the native peer (crates/p2p/src/scheduler/parts.rs, PROTOCOL.md §5 "Scheduling"):
//
// - a part whose playback is less than `urgentMs` away comes over HTTP;
// - a part some peer announced (PartsAnnouncement) is pulled from one of them, with a
//   deadline of `peerWaitFactor` times what peer transfers lately took (at least
//   `minPeerWaitMs`), so a holder slow to answer is given up while HTTP still has
//   time; only while that whole wait fits before the part turns urgent: a part learnt
//   of later comes over HTTP at once;
// - a part gets one slow peer try: once a peer request for it timed out, failed its
//   check or lost its link, it comes over HTTP (asking the next holder spent the time
//   a busy machine needs for HTTP); after a quick "absent" the next holder is asked;
// - otherwise the rendezvous election over the part-speaking peers (the same hash as
//   the native peer's) names one fetcher: the elected peer takes it over HTTP at once
//   (the preload hint's blocking GET for the part the playlist announces next), the
//   others wait for its announcement; if nobody announced a complete part, the next in
//   rank fetches it `staggerMs` later, and so on.
//
// Every part from a peer is verified (the `verify` hook: the part's signature `g`,
// else the signed digest list) before anything sees it; a part that fails bans the
// sender. A part from HTTP is given to the player at once and announced only once it
// verified too. The parts of a finished segment are joined into the segment, checked
// against the segment digest and handed to p2p-media-loader's storage, so stock pages
// (whole segments) get them from us.

import * as wire from './wire.js';
import { PartLink, peerKey, rendezvous } from './link.js';

const DEFAULTS = {
  // The least urgent window; it widens to twice what HTTP lately took for a complete
  // part plus `urgentMarginMs`, up to `maxUrgentMs` (as the native peer does: a peer
  // request that times out at the edge of a fixed 300 ms left a slow or busy link too
  // little time for HTTP).
  urgentMs: 300,
  urgentMarginMs: 100,
  maxUrgentMs: 2000,
  aheadMs: 6000,
  peerTimeoutMs: 1500,
  peerWaitFactor: 3,
  minPeerWaitMs: 400,
  staggerMs: 250,
  maxHttp: 3,
  keepBehindMs: 30000,
  maxAnnounced: 64,
  demandFallbackMs: 3000,
  tickMs: 100,
};

const NAME = /(?:^|\/)part(\d+)\.(\d+)\.[A-Za-z0-9]+$/;

/** `…/part123.4.m4s?x` → { msn: 123, index: 4 } (the origin's part names), or null. */
export function partOfUrl(url) {
  const path = String(url).split(/[?#]/)[0];
  const m = NAME.exec(path);
  if (!m) return null;
  const msn = Number(m[1]);
  const index = Number(m[2]);
  return Number.isSafeInteger(msn) && index <= wire.MAX_PART_INDEX ? { msn, index } : null;
}

export const folderOf = (url) => {
  const u = String(url).split(/[?#]/)[0];
  return u.slice(0, u.lastIndexOf('/') + 1);
};

export class PartSwarm {
  /**
   * @param {object} o
   * @param {string} o.folder        the rendition folder (absolute URL ending in /)
   * @param {Function} o.position    () → playback position in s (hls.js timeline), or null before playback
   * @param {Function} [o.bufferAhead] () → seconds buffered ahead of the playhead, or null
   * @param {Function} o.verify      (url, bytes, g) → Promise<{ ok, reason, signature }>
   * @param {Function} o.fetch       fetch() to use
   * @param {Function} o.onBan       (peerId, reason) → void
   * @param {object}   o.stats       counters to update (see engine.js)
   */
  constructor(o) {
    this.o = o;
    this.cfg = Object.assign({}, DEFAULTS, o.config || {});
    this.folder = o.folder;
    this.stats = o.stats;
    this.parts = new Map(); // packed → part entry
    this.segments = new Map(); // msn → { count, url, joined }
    this.links = new Map(); // peer id → PartLink
    this.me = null; // our peer key (BigInt) for the election
    this.loader = null; // p2p-media-loader's P2PLoader of this rendition
    this.hint = null; // { msn, index, url } of the preload hint
    this.announceQueued = false;
    this.httpMs = null; // how long HTTP takes for a complete part (rises at once, falls by 1/8)
    this.peerMs = null; // how long a peer takes to deliver a part it announced (likewise)
    // Only the rendition hls.js plays fetches ahead; the others just serve what they hold.
    this.active = true;
    this.http = 0;
    this.destroyed = false;
    this.timer = setInterval(() => this.plan(), this.cfg.tickMs);
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.timer);
    for (const l of this.links.values()) l.cancel('destroyed');
  }

  // ---- p2p-media-loader side -----------------------------------------------------

  attachLoader(loader) {
    this.loader = loader;
    const client = loader.trackerClient && loader.trackerClient.client;
    if (client && typeof client.peerId === 'string') {
      const bytes = client.peerId.match(/../g) || [];
      this.me = peerKey(String.fromCharCode(...bytes.map((h) => parseInt(h, 16))));
    }
  }

  addPeer(peer) {
    if (this.destroyed || this.links.has(peer.id)) return;
    const link = new PartLink(peer, {
      onCapability: (l) => {
        l.sendPartsAnnouncement(this.announced());
        this.stats.partPeers = this.partPeers().length;
        this.plan();
      },
      onAnnounce: () => this.plan(),
      onRequest: (l, msn, index, r) => this.serve(l, msn, index, r),
      onViolation: (l, reason) => this.ban(l, `peer-protocol-violation: ${reason}`),
      onClosed: (l) => {
        if (this.links.get(l.id) === l) this.links.delete(l.id);
        this.stats.partPeers = this.partPeers().length;
        this.plan();
      },
      onUploaded: (n) => { this.stats.uploadedPartBytes += n; },
    });
    link.install();
    this.links.set(peer.id, link);
  }

  partPeers() {
    return [...this.links.values()].filter((l) => l.speaksParts);
  }

  ban(link, reason) {
    this.links.delete(link.id);
    this.stats.partPeers = this.partPeers().length;
    for (const p of this.parts.values()) if (p.peer === link) this.peerFailed(p);
    try {
      this.o.onBan(link.id, reason);
    } finally {
      try { link.peer.destroy(); } catch (e) { /* already gone */ }
    }
  }

  // ---- the playlist ------------------------------------------------------------------

  /**
   * hls.js parsed the media playlist: its parts (`details.partList`), segments and
   * preload hint. Parts carry their media time in the hls.js timeline.
   */
  playlist(details) {
    const now = performance.now();
    for (const part of details.partList || []) {
      const msn = part.fragment && part.fragment.sn;
      if (typeof msn !== 'number') continue;
      const p = this.entry(msn, part.index, part.url);
      if (!p) continue;
      p.start = part.start;
      p.duration = part.duration;
      if (!p.completeAt) p.completeAt = now;
    }
    const counts = new Map();
    for (const part of details.partList || []) {
      const sn = part.fragment && part.fragment.sn;
      if (typeof sn === 'number') counts.set(sn, (counts.get(sn) || 0) + 1);
    }
    for (const f of details.fragments || []) {
      if (typeof f.sn !== 'number' || !counts.has(f.sn) || this.segments.has(f.sn)) continue;
      this.segments.set(f.sn, { count: counts.get(f.sn), url: f.url, joined: false });
    }
    this.hint = null;
    const h = details.preloadHint;
    if (h && h.TYPE === 'PART' && h.URI && !h['BYTERANGE-START']) {
      const url = new URL(h.URI, details.url).href;
      const key = partOfUrl(url);
      // A hint past the parts a segment has had so far names a part that may never
      // come (the segment ends first): not worth a blocking GET.
      const most = Math.max(0, ...[...this.segments.values()].map((x) => x.count));
      if (key && (most === 0 || key.index < most)) {
        const p = this.entry(key.msn, key.index, url);
        if (p) {
          // Where it will play: right after the last listed part.
          const last = (details.partList || [])[details.partList.length - 1];
          if (last && p.start === null) {
            p.start = last.start + last.duration;
            p.duration = last.duration;
          }
          this.hint = p;
        }
      }
    }
    this.forget();
    this.tryJoins();
    this.plan();
  }

  entry(msn, index, url) {
    if (!Number.isSafeInteger(msn) || msn < 0 || index < 0 || index > wire.MAX_PART_INDEX) return null;
    const packed = wire.packPart(msn, index);
    let p = this.parts.get(packed);
    if (!p) {
      p = {
        packed, msn, index, url, name: url.split(/[?#]/)[0].split('/').pop(),
        start: null, duration: null, completeAt: 0,
        state: 'missing', data: null, g: null, verified: false, source: null,
        peer: null, peerTried: false, waiters: [], demandedAt: 0,
      };
      this.parts.set(packed, p);
    }
    return p;
  }

  forget() {
    const pos = this.o.position();
    if (pos === null) return;
    const keep = pos - this.cfg.keepBehindMs / 1000;
    for (const [k, p] of this.parts) {
      if (p.start !== null && p.start + p.duration < keep && !p.waiters.length && p.state !== 'http') {
        if (p.peer) p.peer.cancel('forgotten');
        this.parts.delete(k);
      }
    }
    const oldest = Math.min(...[...this.parts.values()].map((p) => p.msn));
    for (const msn of this.segments.keys()) if (msn < oldest) this.segments.delete(msn);
  }

  // ---- what hls.js asks for ------------------------------------------------------------

  /** The part for hls.js: resolves `{ data, source }` (verified when from a peer). */
  get(url, info) {
    const key = partOfUrl(url);
    const p = key && this.entry(key.msn, key.index, url);
    if (!p) return null; // not a part we can name: the caller loads it itself
    if (p.start === null && info) {
      p.start = info.start;
      p.duration = info.duration;
    }
    if (p.state === 'have') return Promise.resolve({ data: p.data, source: p.source });
    if (p.state === 'failed') p.state = 'missing';
    let waiter = null;
    const pending = new Promise((resolve, reject) => {
      waiter = { resolve, reject };
      p.waiters.push(waiter);
      if (!p.demandedAt) p.demandedAt = performance.now();
    });
    pending.release = () => {
      // hls.js gave up on it (abort): it is no longer wanted by the player.
      p.waiters = p.waiters.filter((w) => w !== waiter);
      if (!p.waiters.length) p.demandedAt = 0;
    };
    this.plan();
    return pending;
  }

  // ---- the plan -------------------------------------------------------------------------

  /** The urgent window now, ms: parts due sooner come over HTTP. */
  urgentMs() {
    const adaptive = this.httpMs === null ? 0 : 2 * this.httpMs + this.cfg.urgentMarginMs;
    return Math.max(this.cfg.urgentMs, Math.min(adaptive, this.cfg.maxUrgentMs));
  }

  /** How long a peer request may take now, ms (as the native peer's `peer_wait_ms`). */
  peerWaitMs() {
    const adaptive = this.peerMs === null ? 0 : this.cfg.peerWaitFactor * this.peerMs;
    return Math.min(Math.max(adaptive, this.cfg.minPeerWaitMs), this.cfg.peerTimeoutMs);
  }

  plan() {
    if (this.destroyed) return;
    const now = performance.now();
    const pos = this.o.position();
    const urgentMs = this.urgentMs();
    this.stats.urgentMs = urgentMs;
    // The player has less than the least urgent window buffered (about to stall, or
    // stalled): whatever it asks for is needed now, wherever the part sits on the
    // timeline, instead of after `demandFallbackMs`.
    const ahead = this.o.bufferAhead ? this.o.bufferAhead() : null;
    const starving = ahead !== null && ahead * 1000 <= this.cfg.urgentMs;
    const peers = this.partPeers();
    this.stats.partPeers = peers.length;
    const sorted = [...this.parts.values()].sort((a, b) => a.packed - b.packed);
    for (const p of sorted) {
      if (p.state !== 'missing') continue;
      const demanded = p.waiters.length > 0;
      if (!this.active && !demanded) continue;
      if (pos === null || p.start === null) {
        // Before playback (or a part we cannot place): only what hls.js asks for, over HTTP.
        if (demanded) this.fetchHttp(p, true);
        continue;
      }
      const leadMs = (p.start - pos) * 1000;
      if (p.start + p.duration <= pos && !demanded) continue; // played already
      if (leadMs > this.cfg.aheadMs) continue;
      const someoneHas = peers.some((l) => l.remoteParts.has(p.packed));
      const complete = p !== this.hint && p.completeAt > 0;
      const peerWaitMs = this.peerWaitMs();
      // Too late for one whole peer wait before the part turns urgent: once it
      // exists, it comes over HTTP now (as the native peer does).
      const late = leadMs - urgentMs < peerWaitMs && (complete || someoneHas);
      const urgent = !peers.length || p.peerTried || leadMs <= urgentMs || late ||
        (demanded && (starving || now - p.demandedAt > this.cfg.demandFallbackMs));
      if (urgent) {
        this.fetchHttp(p, true);
        continue;
      }
      const holders = peers.filter((l) => l.free && l.remoteParts.has(p.packed));
      if (holders.length) {
        holders.sort((a, b) => (rendezvous(b.key, p.packed) > rendezvous(a.key, p.packed) ? 1 : -1));
        this.fetchPeer(p, holders[0], peerWaitMs);
        continue;
      }
      const rank = this.rank(p, peers);
      if (rank === 0 || (!someoneHas && complete && now >= p.completeAt + rank * this.cfg.staggerMs)) {
        this.fetchHttp(p, false);
      }
    }
  }

  /**
   * Why playback at `pos` (s) cannot go on: the first part there not held, its state
   * and how long ago it was listed and asked for. For the stall log only.
   */
  explain(pos) {
    const now = performance.now();
    const ahead = [...this.parts.values()]
      .filter((p) => p.start !== null && p.start + p.duration > pos)
      .sort((a, b) => a.packed - b.packed);
    const p = ahead.find((x) => x.state !== 'have');
    const base = {
      urgentMs: Math.round(this.urgentMs()), httpMs: this.httpMs === null ? null : Math.round(this.httpMs),
      peerWaitMs: Math.round(this.peerWaitMs()),
      http: this.http, partPeers: this.partPeers().length,
      heldAhead: p ? ahead.indexOf(p) : ahead.length, // parts held from the playhead on
    };
    if (!p) return Object.assign(base, { part: null });
    return Object.assign(base, {
      part: `${p.msn}.${p.index}`,
      state: p.state,
      leadMs: Math.round((p.start - pos) * 1000),
      hint: p === this.hint,
      listedMsAgo: p.completeAt ? Math.round(now - p.completeAt) : null,
      demandedMsAgo: p.demandedAt ? Math.round(now - p.demandedAt) : null,
      waiters: p.waiters.length,
      holders: this.partPeers().filter((l) => l.remoteParts.has(p.packed)).length,
      rank: this.rank(p, this.partPeers()),
    });
  }

  rank(p, peers) {
    if (this.me === null) return 0;
    const mine = rendezvous(this.me, p.packed);
    return peers.filter((l) => rendezvous(l.key, p.packed) > mine).length;
  }

  fetchHttp(p, urgent) {
    if (this.http >= this.cfg.maxHttp && !urgent) return;
    if (p === this.hint) this.stats.hintFetches++;
    if (p.peer) p.peer.cancel('http');
    p.peer = null;
    p.state = 'http';
    this.http++;
    const started = performance.now();
    // Only a part that is already complete is timed (a preload hint's GET waits for
    // the part to be made).
    const timed = p !== this.hint && p.completeAt > 0;
    (async () => {
      const r = await this.o.fetch(p.url);
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const g = r.headers.get('mediamesh-signature');
      const data = new Uint8Array(await r.arrayBuffer());
      return { data, g };
    })().then(({ data, g }) => {
      this.http--;
      this.stats.httpPartBytes += data.length;
      this.stats.httpParts++;
      const took = performance.now() - started;
      this.stats.httpPartMs = took;
      if (timed) {
        this.httpMs = this.httpMs === null || took >= this.httpMs ? took : (this.httpMs * 7 + took) / 8;
      }
      this.have(p, data, g, 'http', false);
      // Announced and served only once verified.
      this.o.verify(p.url, data, g).then((v) => {
        if (v.ok) {
          p.g = v.signature || null; // passed on only when it verified
          p.verified = true;
          this.verified(p);
        } else {
          this.stats.httpUnverified++;
        }
      });
    }, (e) => {
      this.http--;
      this.stats.httpErrors++;
      // Not fetched again unless hls.js asks (it retries on its own): a preload hint
      // can name a part that never comes (the segment ended before it).
      if (p.state === 'http') p.state = 'failed';
      const waiters = p.waiters;
      p.waiters = [];
      for (const w of waiters) w.reject(e);
      this.plan();
    });
  }

  fetchPeer(p, link, windowMs) {
    p.state = 'peer';
    p.peer = link;
    this.stats.peerRequests++;
    const started = performance.now();
    link.request(p.msn, p.index, windowMs).then(async ({ data, g }) => {
      const took = performance.now() - started;
      this.peerMs = this.peerMs === null || took >= this.peerMs ? took : (this.peerMs * 7 + took) / 8;
      this.stats.p2pPartBytesReceived += data.length;
      const v = await this.o.verify(p.url, data, g);
      if (!v.ok) {
        this.stats.rejectedParts++;
        this.stats.rejectReasons[v.reason] = (this.stats.rejectReasons[v.reason] || 0) + 1;
        if (p.peer === link) p.peer = null;
        if (p.state === 'peer') p.state = 'missing';
        p.peerTried = true;
        this.ban(link, `p2p-part-validation-failed: ${v.reason}`);
        this.plan();
        return;
      }
      if (p.peer === link) p.peer = null;
      if (p.state === 'have') return; // HTTP won the race
      this.stats.p2pPartBytes += data.length;
      this.stats.p2pParts++;
      p.verified = true;
      this.have(p, data, v.signature, 'p2p', true);
    }, (e) => {
      if (p.peer === link) {
        p.peer = null;
        if (p.state === 'peer') p.state = 'missing';
        // An "absent" answer came within a round trip: another holder may be asked.
        if (!(e && e.message === 'absent')) p.peerTried = true;
      }
      if (e && e.message === 'timeout') this.stats.peerTimeouts++;
      this.plan();
    });
  }

  peerFailed(p) {
    p.peer = null;
    if (p.state === 'peer') p.state = 'missing';
    p.peerTried = true;
  }

  have(p, data, g, source, verified) {
    if (p.state === 'have') return;
    p.state = 'have';
    p.data = data;
    p.g = g || null;
    p.source = source;
    const waiters = p.waiters;
    p.waiters = [];
    for (const w of waiters) w.resolve({ data, source });
    if (verified) this.verified(p);
    this.plan();
  }

  verified(p) {
    this.queueAnnounce();
    this.tryJoins();
  }

  // ---- announcing and serving ------------------------------------------------------------

  announced() {
    const held = [...this.parts.values()].filter((p) => p.state === 'have' && p.verified).map((p) => p.packed);
    held.sort((a, b) => a - b);
    return held.slice(-this.cfg.maxAnnounced);
  }

  queueAnnounce() {
    if (this.announceQueued) return;
    this.announceQueued = true;
    queueMicrotask(() => {
      this.announceQueued = false;
      const packed = this.announced();
      for (const l of this.links.values()) if (l.speaksParts) l.sendPartsAnnouncement(packed);
    });
  }

  serve(link, msn, index, r) {
    const p = this.parts.get(wire.packPart(msn, index));
    if (!p || p.state !== 'have' || !p.verified || !p.data) {
      link.sendAbsent(msn, index, r);
      return;
    }
    this.stats.partsServed++;
    link.sendPart(msn, index, r, p.data, p.g).catch(() => {});
  }

  // ---- whole segments for whole-segment peers ---------------------------------------------

  tryJoins() {
    for (const [msn, seg] of this.segments) {
      if (seg.joined || seg.joining) continue;
      const parts = [];
      for (let i = 0; i < seg.count; i++) {
        const p = this.parts.get(wire.packPart(msn, i));
        if (!p || p.state !== 'have' || !p.verified) break;
        parts.push(p.data);
      }
      if (parts.length !== seg.count) continue;
      seg.joining = true;
      this.join(msn, seg, wire.concat(parts)).finally(() => { seg.joining = false; });
    }
  }

  async join(msn, seg, data) {
    const loader = this.loader;
    if (!loader || !loader.segmentStorage || !loader.stream) return;
    let segment = null;
    for (const s of loader.stream.segments.values()) if (s.externalId === msn) segment = s;
    if (!segment) return; // p2p-media-loader has not listed it yet: next playlist
    const swarmId = loader.config.swarmId ?? loader.streamManifestUrl;
    const streamSwarmId = `v2-${swarmId}-${loader.stream.type}-${loader.stream.index}`;
    seg.joined = true;
    if (loader.segmentStorage.hasSegment(swarmId, streamSwarmId, msn)) return;
    // A stock peer bans us for a segment that fails its digest: check it first.
    const v = await this.o.verify(segment.url, data, null);
    if (!v.ok) {
      this.stats.joinRejected++;
      return;
    }
    this.stats.joinedSegments++;
    await loader.segmentStorage.storeSegment(
      swarmId, streamSwarmId, msn, data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
      segment.startTime, segment.endTime, loader.stream.type, true,
    );
  }
}
