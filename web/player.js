// The mediamesh player page: lists streams from /api/v1/streams and plays one with
// hls.js; with P2P on (the default where the browser can) segments also move between
// viewers through p2p-media-loader, announced to our tracker, and every segment from a
// peer is checked against the origin's signed digests (integrity.js) first. With P2P
// off it plays LL-HLS (parts); with P2P on, whole segments further behind live, or, at
// `?latency=low`, LL-HLS near the part hold-back with parts shared between peers too
// (our part extension of p2p-media-loader: p2pml.parts, web/src/parts/).
// Not a general player: no DRM, no subtitles UI, no DASH.
//
// Query knobs (web/P2P.md): ?stream=NAME or ?url=URL picks what plays first; ?p2p=0
// turns P2P off; ?tracker=WS_URL replaces the tracker (default ws(s)://HOST/tracker);
// ?ice=stun:HOST:PORT,… sets ICE servers (default: the operator's, from /api/v1/p2p
// (`serve --ice-server`); none there means host candidates only);
// ?latency=low|balanced plays LL-HLS and shares parts; ?latency=S (seconds, default 16)
// and ?urgent=S (default 6) tune whole-segment P2P (web/P2P.md).
// Stats are on `window.mediamesh` (`.p2p` for the P2P counters, `.p2p.parts` for parts,
// `.playback` for latency to live and stalls) for tests.
(function () {
  'use strict';
  const video = document.getElementById('video');
  const list = document.getElementById('streams');
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = { hls: null, url: null, httpBytes: 0, p2p: null, playback: null };
  window.mediamesh = state;

  // `?latency=low|balanced`: LL-HLS with parts from peers; anything else (absent, or
  // seconds) is today's whole-segment mode.
  const latencyKnob = params.get('latency') || '';
  const partMode = latencyKnob === 'low' || latencyKnob === 'balanced' ? latencyKnob : '';

  const p2pWanted = params.get('p2p') !== '0';
  const trackers = params.get('tracker')
    ? [params.get('tracker')]
    : [`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/tracker`];
  // ICE servers: `?ice=` wins; else what the operator configured (`serve --ice-server`,
  // read from /api/v1/p2p before the first stream plays); else none.
  let iceServers = (params.get('ice') || '').split(',').filter(Boolean).map((u) => ({ urls: u }));

  // The operator's P2P settings for the page: {"ice_servers": [RTCIceServer…]}. Missing
  // (plain `origin`, older servers) or malformed means none; bounded to 3 s.
  async function loadP2PConfig() {
    if (params.get('ice') || !p2pWanted) return;
    const ctl = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = ctl ? setTimeout(() => ctl.abort(), 3000) : null;
    try {
      const r = await fetch('/api/v1/p2p', { cache: 'no-cache', signal: ctl ? ctl.signal : undefined });
      if (!r.ok) return;
      const j = await r.json();
      const list = j && Array.isArray(j.ice_servers) ? j.ice_servers : [];
      iceServers = list
        .filter((x) => x && (typeof x.urls === 'string' || Array.isArray(x.urls)))
        .slice(0, 16)
        .map((x) => {
          const o = { urls: x.urls };
          if (typeof x.username === 'string' && typeof x.credential === 'string') {
            o.username = x.username;
            o.credential = x.credential;
          }
          return o;
        });
    } catch (e) {
      /* no operator ICE servers: host candidates only */
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  // The swarm rule shared with `mediamesh peer`: the path of the multivariant playlist,
  // no scheme, host or query, so viewers of one stream on any host or edge meet.
  function swarmIdFor(url) {
    return new URL(url, location.href).pathname;
  }

  function newP2PStats(url) {
    return {
      enabled: false, reason: '', swarmId: swarmIdFor(url), trackers,
      httpBytes: 0, p2pBytes: 0, p2pBytesReceived: 0, uploadedBytes: 0,
      peers: 0, peerIds: [], offload: 0, rejected: 0, verified: 0,
      httpSegments: 0, p2pSegments: 0, errors: [], trackerErrors: [],
      bans: 0, banned: null, segmentsFromBanned: 0, iceServers: [],
      mode: partMode || 'stock', parts: null,
    };
  }

  // Latency to live and stalls, whatever the mode: latency from the player's clock
  // against the program date time of what plays (hls.js `playingDate`), and hls.js's
  // own estimate against the playlist edge (`latency`).
  function newPlayback() {
    return {
      latency: null, latencyPdt: null, latencyP50: null, latencyP95: null, samples: 0,
      stalls: 0, stallSeconds: 0, playing: false, started: null, stallLog: [],
    };
  }
  const latencySamples = [];
  let stallSince = null;
  video.addEventListener('playing', () => {
    const pb = state.playback;
    if (!pb) return;
    if (!pb.playing) pb.started = performance.now();
    pb.playing = true;
    if (stallSince !== null) {
      pb.stallSeconds += (performance.now() - stallSince) / 1000;
      stallSince = null;
    }
  });
  video.addEventListener('waiting', () => {
    const pb = state.playback;
    if (!pb || !pb.playing || stallSince !== null) return;
    pb.stalls++;
    stallSince = performance.now();
    // What the player waited for, for the benchmark's stall log (the last 20).
    const h = state.hls;
    const ranges = [];
    for (let i = 0; i < video.buffered.length; i++) {
      ranges.push([+video.buffered.start(i).toFixed(3), +video.buffered.end(i).toFixed(3)]);
    }
    let parts = null;
    try {
      parts = h && h.partsEngine ? h.partsEngine.explain() : null;
    } catch (e) {
      parts = { error: String(e) };
    }
    pb.stallLog.push({
      at: +(performance.now() / 1000).toFixed(3),
      currentTime: +video.currentTime.toFixed(3),
      buffered: ranges,
      latency: h && isFinite(h.latency) ? +h.latency.toFixed(3) : null,
      parts,
    });
    if (pb.stallLog.length > 20) pb.stallLog.shift();
  });
  function sampleLatency() {
    const pb = state.playback;
    const h = state.hls;
    if (!pb || !h || !pb.playing || video.paused) return;
    if (h.latency !== undefined && isFinite(h.latency)) pb.latency = h.latency;
    const d = h.playingDate;
    if (d && isFinite(d.getTime())) {
      pb.latencyPdt = (Date.now() - d.getTime()) / 1000;
      latencySamples.push(pb.latencyPdt);
      if (latencySamples.length > 1200) latencySamples.shift();
      const sorted = latencySamples.slice().sort((a, b) => a - b);
      const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
      pb.latencyP50 = at(0.5);
      pb.latencyP95 = at(0.95);
      pb.samples = sorted.length;
    }
  }

  function p2pReason() {
    if (!p2pWanted) return 'off (?p2p=0)';
    if (!window.p2pml || !window.p2pml.HlsJsP2PEngine) return 'p2p-media-loader not loaded';
    if (partMode && !window.p2pml.parts) return 'the part extension is not loaded';
    if (!window.RTCPeerConnection) return 'no WebRTC in this browser';
    if (!window.crypto || !window.crypto.subtle) return 'no WebCrypto (page not in a secure context)';
    if (!window.MediameshIntegrity) return 'integrity.js not loaded';
    if (!window.MediameshBan || !window.MediameshBan.page) return 'ban.js not loaded';
    return '';
  }

  // hls.js asks a server that can block playlist reloads for the next full segment with
  // `_HLS_msn`/`_HLS_part`/`_HLS_skip` even when lowLatencyMode is off (good: one request
  // per segment), but then reports the playlist under that URL, and p2p-media-loader
  // 2.3 finds its stream by the bare playlist URL, so no segment would go through it.
  // This playlist loader hands hls.js the response under the URL without the directives.
  function withoutDeliveryDirectives(Base) {
    const clean = (u) => {
      if (typeof u !== 'string' || u.indexOf('_HLS_') < 0) return u;
      const x = new URL(u);
      for (const k of ['_HLS_msn', '_HLS_part', '_HLS_skip']) x.searchParams.delete(k);
      return x.href;
    };
    return class extends Base {
      load(context, config, callbacks) {
        const onSuccess = callbacks.onSuccess;
        const wrapped = Object.assign({}, callbacks, {
          onSuccess(response, stats, ctx, details) {
            const url = clean(response.url !== undefined ? response.url : ctx.url);
            onSuccess(Object.assign({}, response, { url }), stats, ctx, details);
          },
        });
        super.load(context, config, wrapped);
      }
    };
  }

  // hls.js transfers a fragment's ArrayBuffer to its transmux worker, which detaches it,
  // and p2p-media-loader keeps that same buffer to share with peers: they would be sent
  // zero bytes (and reject them). This fragment loader hands hls.js a copy instead.
  function copyingFragmentLoader(Base) {
    return class extends Base {
      load(context, config, callbacks) {
        const onSuccess = callbacks.onSuccess;
        const wrapped = Object.assign({}, callbacks, {
          onSuccess(response, stats, ctx, details) {
            const data = response.data instanceof ArrayBuffer ? response.data.slice(0) : response.data;
            onSuccess(Object.assign({}, response, { data }), stats, ctx, details);
          },
        });
        super.load(context, config, wrapped);
      }
    };
  }

  // The part extension for `?latency=low|balanced`: parts from peers are verified with
  // their `mediamesh-signature` (PartData field `g`) or else digests.json before hls.js
  // sees them; a peer whose part fails, or that breaks the part protocol, is banned for
  // the session like one whose segment failed. Returns the parts engine.
  function startPartMode(stats, ban, update, p2pEngine) {
    const partVerifier = MediameshIntegrity.createVerifier({});
    const parts = p2pml.parts.createPartsEngine({
      video,
      swarmId: stats.swarmId,
      p2pCore: p2pEngine.core, // p2p-media-loader internal (pinned 2.3.1): joins the swarm
      verify: partVerifier.verifyObject,
      onBan: (peerId, reason) => {
        if (ban.list.ban(peerId, reason)) console.warn('mediamesh: banned peer', peerId, 'for the session:', reason);
        ban.closePeer(peerId);
        update();
      },
    });
    stats.parts = parts.stats;
    stats.parts.integrity = partVerifier.stats;
    const timer = setInterval(update, 500); // parts move without p2p-media-loader events
    const destroy = parts.destroy;
    parts.destroy = () => { clearInterval(timer); destroy(); };
    return parts;
  }

  function makeHls(url) {
    const stats = newP2PStats(url);
    state.p2p = stats;
    stats.reason = p2pReason();
    if (stats.reason) {
      // Plain hls.js; LL-HLS parts when the stream has them.
      const hls = new Hls({ lowLatencyMode: true, backBufferLength: 30 });
      hls.on(Hls.Events.FRAG_LOADED, (_e, d) => { state.httpBytes += d.frag.stats.loaded || 0; });
      return hls;
    }
    stats.enabled = true;
    stats.iceServers = iceServers.map((x) => x.urls);
    const verifier = MediameshIntegrity.createVerifier({
      onReject: (r) => {
        stats.rejected = verifier.stats.rejected;
        console.warn('mediamesh: rejected a segment from a peer', r.reason, r.url);
      },
    });
    stats.integrity = verifier.stats;
    // A peer whose segment failed the digest check (or that broke the wire protocol) is
    // refused for the rest of the session: ban.js drops its offers and answers at the
    // tracker socket and closes any connection to it (p2p-media-loader itself only drops
    // it until the next announce).
    const ban = MediameshBan.page;
    stats.banned = ban.list.stats;
    const BANNED_FOR = ['p2p-segment-validation-failed', 'peer-protocol-violation'];
    const peers = new Set();
    const update = () => {
      stats.peers = peers.size;
      stats.peerIds = [...peers];
      const pt = stats.parts;
      const p2p = stats.p2pBytes + (pt ? pt.p2pPartBytes : 0);
      const http = stats.httpBytes + (pt ? pt.httpPartBytes : 0);
      stats.offload = p2p + http ? p2p / (p2p + http) : 0;
      stats.verified = verifier.stats.verified;
      stats.rejected = verifier.stats.rejected;
      stats.bans = ban.list.stats.bans;
      state.httpBytes = http;
    };
    // p2p-media-loader moves whole segments only, and loads every segment that is due
    // within `highDemandTimeWindow` over HTTP at once. A viewer at the LL-HLS live edge
    // would fetch every part over HTTP before any peer had it. So with P2P the player
    // plays whole segments `latency` seconds behind live: a new segment is listed that
    // long before it is due, one viewer (chosen at random by p2p-media-loader) fetches it
    // over HTTP and the others get it from peers; the last `urgent` seconds before the
    // playhead are loaded over HTTP if no peer delivered. See web/P2P.md.
    //
    // At `?latency=low` the player plays LL-HLS near the part hold-back instead, and the
    // part extension (p2pml.parts) shares the parts: see startPartMode below. Whole
    // segments still go through p2p-media-loader; `highDemandTimeWindow` (`?keep=`,
    // default 20 s) is then mainly how long p2p-media-loader keeps the segments we
    // joined from parts, for whole-segment peers further behind live.
    const latency = Number(latencyKnob) || 16;
    const urgent = Number(params.get('urgent')) || 6;
    // p2p-media-loader keeps the bytes a peer sent when that download stops (peer
    // banned, closed or too slow), resumes the segment over HTTP from there (or
    // completes it from those bytes alone when they are all there), and checks the
    // result with `validateHTTPSegment` only. So every segment whose download ever
    // started from a peer is checked like a P2P one, whatever finishes it; segments
    // that came from the CDN alone are not.
    const fromPeers = new Set();
    const validateAfterPeer = (url, byteRange, data) =>
      fromPeers.has(url) ? verifier.validate(url, byteRange, data) : Promise.resolve(true);
    const engine = new p2pml.HlsJsP2PEngine({
      core: {
        swarmId: stats.swarmId,
        announceTrackers: trackers,
        rtcConfig: { iceServers },
        validateP2PSegment: verifier.validate,
        validateHTTPSegment: validateAfterPeer,
        highDemandTimeWindow: partMode ? Number(params.get('keep')) || 20 : urgent,
      },
    });
    const loaders = engine.getConfigForHlsJs();
    const parts = partMode ? startPartMode(stats, ban, update, engine) : null;
    const hls = new Hls(parts
      ? {
        lowLatencyMode: true,
        backBufferLength: 30,
        // Where the player sits. low: one part above PART-HOLD-BACK (set below once the
        // playlist is known), with a gentle catch-up (×1.05, which hls.js applies only
        // with more than 1 s buffered) so a page that joined late or stalled comes back
        // instead of staying behind for the session; balanced: 3.5 s, no catch-up.
        // (Sitting right on the hold-back with ×1.1, the page stalled more than P2P off;
        // with neither, pages stayed wherever start-up left them, 1.9–4.5 s.)
        // `?sync=S` sets the target, `?catchup=1` turns the catch-up off.
        ...(partMode === 'balanced' ? { liveSyncDuration: Number(params.get('sync')) || 3.5 } : {}),
        ...(partMode === 'low' ? { maxLiveSyncPlaybackRate: Math.min(1.25, Math.max(1, Number(params.get('catchup')) || 1.05)) } : {}),
        fLoader: parts.fragmentLoader(loaders.fLoader),
        pLoader: withoutDeliveryDirectives(loaders.pLoader),
      }
      : {
        lowLatencyMode: false,
        backBufferLength: 30,
        liveSyncDuration: latency,
        liveMaxLatencyDuration: latency * 2,
        fLoader: copyingFragmentLoader(loaders.fLoader),
        pLoader: withoutDeliveryDirectives(loaders.pLoader),
      });
    if (parts) parts.bindHls(hls);
    if (partMode === 'low') {
      // Once, before playback starts (the setter also clears hls.js's stall count).
      const onLevel = (_e, d) => {
        const hb = d && d.details && d.details.partHoldBack;
        if (!hb) return;
        hls.off(Hls.Events.LEVEL_UPDATED, onLevel);
        const part = d.details.partTarget || hb / 3;
        hls.targetLatency = Number(params.get('sync')) > 0 ? Number(params.get('sync')) : hb + part;
      };
      hls.on(Hls.Events.LEVEL_UPDATED, onLevel);
    }
    engine.bindHls(hls);
    hls.p2pEngine = engine;
    hls.partsEngine = parts;
    const e = engine;
    e.addEventListener('onChunkDownloaded', (n, source) => {
      if (source === 'http') stats.httpBytes += n;
      else stats.p2pBytesReceived += n;
      update();
    });
    // Bytes from peers count once verified (a rejected segment is loaded again).
    e.addEventListener('onSegmentLoaded', (d) => {
      fromPeers.delete(d.segmentUrl);
      if (d.downloadSource === 'p2p') {
        stats.p2pBytes += d.bytesLength;
        stats.p2pSegments++;
        if (ban.list.has(d.peerId)) stats.segmentsFromBanned++;
      }
      else stats.httpSegments++;
      update();
    });
    e.addEventListener('onChunkUploaded', (n) => { stats.uploadedBytes += n; update(); });
    e.addEventListener('onPeerConnect', (p) => {
      // A handshake that was under way when the peer was banned: close it at once.
      if (ban.list.has(p.peerId)) { ban.closePeer(p.peerId); return; }
      peers.add(p.peerId);
      update();
    });
    e.addEventListener('onSegmentStart', (d) => {
      if (d.downloadSource === 'p2p' && d.segment) {
        fromPeers.add(d.segment.url);
        // Bounded: a segment loads within a minute of its start, far fewer than this.
        if (fromPeers.size > 256) fromPeers.delete(fromPeers.values().next().value);
      }
      if (d.downloadSource === 'p2p' && ban.list.has(d.peerId)) {
        stats.segmentsFromBanned++;
        ban.closePeer(d.peerId);
      }
    });
    e.addEventListener('onPeerClose', (p) => { peers.delete(p.peerId); update(); });
    e.addEventListener('onSegmentError', (d) => {
      const type = d.error && d.error.type;
      if (d.downloadSource === 'p2p' && d.peerId && BANNED_FOR.includes(type) && ban.list.ban(d.peerId, type)) {
        console.warn('mediamesh: banned peer', d.peerId, 'for the session:', type);
        update();
      }
      if (stats.errors.length < 20) stats.errors.push(`${d.downloadSource}: ${d.error && d.error.type}`);
    });
    e.addEventListener('onTrackerError', (d) => {
      if (stats.trackerErrors.length < 20) stats.trackerErrors.push(String(d.error && (d.error.message || d.error)));
    });
    // Init segments do not go through p2p-media-loader: count them here.
    hls.on(Hls.Events.FRAG_LOADED, (_e, d) => {
      if (d.frag.sn === 'initSegment') { stats.httpBytes += d.frag.stats.loaded || 0; update(); }
    });
    return hls;
  }

  function play(url, name) {
    if (state.hls) {
      if (state.hls.partsEngine) state.hls.partsEngine.destroy();
      state.hls.destroy();
      state.hls = null;
    }
    state.playback = newPlayback();
    latencySamples.length = 0;
    stallSince = null;
    state.url = url;
    state.httpBytes = 0;
    $('s-name').textContent = name || url;
    $('s-url').textContent = url;
    document.querySelectorAll('#streams button').forEach((b) => b.classList.toggle('on', b.dataset.url === url));
    if (window.Hls && Hls.isSupported()) {
      const hls = makeHls(url);
      hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => {
        const l = hls.levels[d.level];
        $('s-level').textContent = l ? `${l.width}x${l.height} @ ${Math.round(l.bitrate / 1000)} kbit/s` : '–';
      });
      hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) console.warn('hls.js fatal error', d.type, d.details); });
      hls.loadSource(url);
      hls.attachMedia(video);
      state.hls = hls;
    } else {
      state.p2p = Object.assign(newP2PStats(url), { reason: 'no MSE: native HLS' });
      video.src = url; // Safari plays HLS natively
    }
    video.play().catch(() => {});
  }

  function render(streams) {
    list.textContent = '';
    if (!streams.length) {
      list.innerHTML = '<li class="empty">No streams yet. Publish to rtmp://HOST:1935/live/NAME</li>';
      return;
    }
    for (const s of streams) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.dataset.url = s.url;
      const r = (s.renditions || [])[0];
      const detail = r && r.width ? `${r.width}x${r.height} ${r.codecs}` : s.kind;
      b.innerHTML = '<strong></strong><small></small>';
      b.querySelector('strong').textContent = s.name;
      b.querySelector('small').textContent = `${s.kind} · ${s.state} · ${detail}`;
      b.onclick = () => play(s.url, s.name);
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  async function refresh() {
    try {
      const r = await fetch('/api/v1/streams');
      const j = await r.json();
      render(j.streams || []);
      return j.streams || [];
    } catch (e) {
      list.innerHTML = '<li class="empty">cannot reach /api/v1/streams</li>';
      return [];
    }
  }

  const kb = (n) => (n / 1024).toLocaleString(undefined, { maximumFractionDigits: 0 }) + ' KiB';
  setInterval(() => {
    sampleLatency();
    const pb = state.playback;
    if (pb && pb.latencyPdt !== null) $('s-latency').textContent = pb.latencyPdt.toFixed(2) + ' s';
    else if (pb && pb.latency !== null) $('s-latency').textContent = pb.latency.toFixed(2) + ' s';
    if (pb && $('s-stalls')) $('s-stalls').textContent = `${pb.stalls} (${pb.stallSeconds.toFixed(1)} s)`;
    const b = video.buffered;
    if (b.length) $('s-buffer').textContent = (b.end(b.length - 1) - video.currentTime).toFixed(2) + ' s';
    $('s-http').textContent = kb(state.httpBytes);
    const p = state.p2p;
    if (!p) return;
    $('s-p2p').textContent = p.enabled ? `on · swarm ${p.swarmId}` : p.reason;
    $('s-peer-bytes').textContent = kb(p.p2pBytes);
    $('s-upload').textContent = kb(p.uploadedBytes);
    $('s-peers').textContent = String(p.peers);
    $('s-offload').textContent = (p.offload * 100).toFixed(1) + ' %';
    $('s-rejected').textContent = String(p.rejected);
    $('s-banned').textContent = String(p.bans || 0);
    const pt = p.parts;
    if (pt && $('s-parts')) {
      $('s-parts').textContent = `${kb(pt.p2pPartBytes)} from peers · ${kb(pt.httpPartBytes)} over HTTP · ` +
        `${kb(pt.uploadedPartBytes)} uploaded · ${pt.partPeers} part peers`;
      $('s-rejected-parts').textContent = String(pt.rejectedParts);
    }
  }, 500);

  (async () => {
    const [streams] = await Promise.all([refresh(), loadP2PConfig()]);
    setInterval(refresh, 5000);
    if (params.get('url')) return play(params.get('url'));
    const want = params.get('stream');
    const pick = streams.find((s) => s.name === want) || (want ? null : streams[0]);
    if (pick) play(pick.url, pick.name);
    else if (want) play(`/live/${encodeURIComponent(want)}/index.m3u8`, want);
  })();
})();
