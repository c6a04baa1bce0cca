// The low-latency part engine of the player page (`?latency=low`): ties hls.js (LL-HLS
// playlists, the fragment loader for parts) to one PartSwarm per rendition and those
// to p2p-media-loader's loaders and peers (through hook.js). The page creates one per
// stream it plays; `stats` is the live counter object the page shows and tests read.
//
//   const parts = p2pml.parts.createPartsEngine({ video, swarmId, verify, onBan });
//   const hls = new Hls({ lowLatencyMode: true, fLoader: parts.fragmentLoader(p2pLoaders.fLoader), … });
//   parts.bindHls(hls);
//
// Whole segments keep going through p2p-media-loader; only `context.part` loads are ours.

import { register } from './hook.js';
import { PartSwarm, folderOf } from './swarm.js';

export function newPartStats() {
  const stats = {
    partPeers: 0, p2pPartBytes: 0, p2pPartBytesReceived: 0, p2pParts: 0,
    httpPartBytes: 0, httpParts: 0, httpPartMs: 0, httpErrors: 0, httpUnverified: 0,
    uploadedPartBytes: 0, partsServed: 0, rejectedParts: 0, rejectReasons: {},
    peerRequests: 0, peerTimeouts: 0, joinedSegments: 0, joinRejected: 0, bannedPeers: 0,
    hintFetches: 0,
  };
  // `rejected`: the same count as `rejectedParts` (bench/p2p_pages.mjs reads this name).
  Object.defineProperty(stats, 'rejected', { enumerable: true, get: () => stats.rejectedParts });
  return stats;
}

/**
 * @param {object} o
 * @param {HTMLMediaElement} o.video
 * @param {string} o.swarmId    the swarm id given to p2p-media-loader (core.swarmId)
 * @param {Function} o.verify   (url, Uint8Array, signatureHeader|null) → Promise<{ ok, reason, signature }>
 *                              (`signature`: the header value to pass on, when it verified)
 * @param {Function} o.onBan    (peerId, reason) → void: refuse that peer for the session
 * @param {object} o.p2pCore    p2p-media-loader's Core (`HlsJsP2PEngine#core`), to join the swarm
 * @param {object} [o.config]   PartSwarm tunables (urgentMs, peerTimeoutMs, staggerMs, …)
 */
export function createPartsEngine(o) {
  const stats = newPartStats();
  const swarms = new Map(); // rendition folder → PartSwarm
  const doFetch = o.fetch || ((...a) => globalThis.fetch(...a));
  const position = () => {
    const v = o.video;
    return v && v.currentTime > 0 && v.readyState >= 2 ? v.currentTime : null;
  };
  // Seconds of media buffered ahead of the playhead (null before playback).
  const bufferAhead = () => {
    const v = o.video;
    if (!v || !(v.currentTime > 0)) return null;
    const t = v.currentTime;
    for (let i = 0; i < v.buffered.length; i++) {
      if (v.buffered.start(i) <= t + 0.1 && t < v.buffered.end(i)) return v.buffered.end(i) - t;
    }
    return 0;
  };

  function swarmFor(folder) {
    let s = swarms.get(folder);
    if (!s) {
      s = new PartSwarm({
        folder, position, bufferAhead, verify: o.verify, fetch: doFetch, stats, config: o.config,
        onBan: (id, reason) => {
          stats.bannedPeers++;
          o.onBan(id, reason);
        },
      });
      swarms.set(folder, s);
    }
    return s;
  }

  const loaderFolder = (loader) => folderOf(loader.stream && loader.stream.runtimeId);

  const engine = {
    stats,
    swarms,
    onLoader(loader) {
      swarmFor(loaderFolder(loader)).attachLoader(loader);
    },
    onPeer(peer, loader) {
      const s = swarmFor(loaderFolder(loader));
      if (s.loader !== loader) s.attachLoader(loader);
      s.addPeer(peer);
    },
    onLoaderGone(loader) {
      const s = swarms.get(loaderFolder(loader));
      if (s && s.loader === loader) s.loader = null;
    },
    /** hls.js fLoader: parts through the swarm, everything else through `Base`. */
    fragmentLoader(Base) {
      return class PartFragmentLoader extends Base {
        load(context, config, callbacks) {
          const part = context.part;
          const pending = part ? swarmFor(folderOf(context.url)).get(context.url, part) : null;
          if (!pending) {
            // Whole segments (and init segments): p2p-media-loader, with a copy of the
            // buffer for hls.js (its worker detaches what it gets).
            super.load(context, config, Object.assign({}, callbacks, {
              onSuccess(response, st, ctx, details) {
                const data = response.data instanceof ArrayBuffer ? response.data.slice(0) : response.data;
                callbacks.onSuccess(Object.assign({}, response, { data }), st, ctx, details);
              },
            }));
            return;
          }
          this.partMode = true;
          this.pending = pending;
          this.context = context;
          this.callbacks = callbacks;
          const st = this.stats;
          st.aborted = false;
          st.loading = { start: performance.now(), first: 0, end: 0 };
          pending.then(({ data }) => {
            if (st.aborted || !this.callbacks) return;
            const copy = data.slice().buffer;
            const t = performance.now();
            st.loading.first = t;
            st.loading.end = t;
            st.loaded = copy.byteLength;
            st.total = copy.byteLength;
            const cb = this.callbacks;
            this.callbacks = null;
            cb.onSuccess({ data: copy, url: context.url }, st, context, null);
          }, (e) => {
            if (st.aborted || !this.callbacks) return;
            const cb = this.callbacks;
            this.callbacks = null;
            cb.onError({ code: 0, text: String((e && e.message) || e) }, context, null, st);
          });
        }
        abort() {
          if (!this.partMode) return super.abort();
          this.stats.aborted = true;
          if (this.callbacks) this.pending.release();
          const cb = this.callbacks;
          this.callbacks = null;
          if (cb && cb.onAbort) cb.onAbort(this.stats, this.context, null);
        }
        destroy() {
          if (!this.partMode) return super.destroy();
          this.stats.aborted = true;
          if (this.callbacks) this.pending.release();
          this.callbacks = null;
        }
      };
    },
    /** The active rendition's `PartSwarm#explain` at the playhead (stall log). */
    explain() {
      const pos = position();
      for (const s of swarms.values()) if (s.active) return pos === null ? null : s.explain(pos);
      return null;
    },
    destroy() {
      unregister();
      for (const s of swarms.values()) s.destroy();
      swarms.clear();
    },
  };

  // p2p-media-loader joins a stream's swarm (tracker client, peers) only when the
  // player first asks it for a whole segment, and hls.js at the LL-HLS edge asks for
  // parts only. So the engine asks p2p-media-loader for the newest whole segment once
  // (its Core.loadSegment, as the library's own fragment loader does): that starts the
  // swarm, and the segment lands in the library's storage to be shared like any other.
  let joining = false;
  function joinSwarm(swarm, det) {
    const core = o.p2pCore;
    const frags = det.fragments || [];
    const last = frags[frags.length - 1];
    if (swarm.loader || joining || !core || !last || !last.url) return;
    joining = true;
    setTimeout(() => {
      const retry = () => { joining = false; };
      try {
        Promise.resolve(core.loadSegment(last.url, { onSuccess: () => {}, onError: retry })).catch(retry);
      } catch (e) {
        retry();
      }
    }, 0);
  }

  /** Follows hls.js's playlists (parts, preload hint, segments); call before loadSource. */
  engine.bindHls = (hls) => {
    hls.on(hls.constructor.Events.LEVEL_UPDATED, (_e, d) => {
      const det = d && d.details;
      if (!det || !det.live || !det.url || !det.partList) return;
      const swarm = swarmFor(folderOf(det.url));
      for (const s of swarms.values()) s.active = s === swarm; // the level hls.js plays
      swarm.playlist(det);
      joinSwarm(swarm, det);
    });
  };

  const unregister = register(o.swarmId, engine);
  return engine;
}
