// Opens N viewers of one stream on the mediamesh player page in headless Chromium
// (Debian's, driven by playwright-core), each in its own browser context (own storage,
// own peer id), with P2P on, and waits until every viewer plays (currentTime advanced
// by ≥ 3 s) and segment bytes came from peers (sum of verified p2p bytes > 0). Prints
// one JSON line: per-viewer stats, the first tracker announce the page sent (offer SDPs
// cut short) and the info_hashes it announced; on failure also console logs. Exit 0 = ok.
//
//   node web/tests/p2p.mjs http://127.0.0.1:8080/?stream=demo [viewers] [timeout_s] [watch_s]
//
// watch_s (default 0): keep watching that long after the first viewer opened even once
// the checks pass, to measure offload over a longer run.
//
// Chromium runs with `--allow-loopback-in-peer-connection` (127.0.0.1 host candidates)
// and mDNS hiding of local IPs off, so candidates are plain IP addresses.
import { createHash } from 'node:crypto';
import { launch, P2P_FLAGS } from './chromium.mjs';

const url = process.argv[2];
const viewers = Number(process.argv[3] || 3);
const limit = Number(process.argv[4] || 60) * 1000;
const watch = Number(process.argv[5] || 0) * 1000;
if (!url || !(viewers >= 2)) {
  console.error('usage: p2p.mjs URL [viewers>=2] [timeout_s]');
  process.exit(2);
}

const started = Date.now();
const browser = await launch(P2P_FLAGS);

// Decodes a WebTorrent-tracker binary string (one char per byte) to hex.
const binHex = (s) => (typeof s === 'string' ? [...s].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('') : s);

const announces = [];
const infoHashes = new Set();
const candidates = new Set();
function recordFrame(payload) {
  let m;
  try { m = JSON.parse(typeof payload === 'string' ? payload : payload.toString()); } catch { return; }
  if (m.action !== 'announce') return;
  if (typeof m.info_hash === 'string') infoHashes.add(m.info_hash);
  for (const o of m.offers || []) {
    for (const line of String(o.offer && o.offer.sdp).split(/\r?\n/)) {
      if (line.startsWith('a=candidate:')) candidates.add(line.split(' ').slice(4, 8).join(' '));
    }
  }
  if (process.env.P2P_DUMP_SDP && m.offers && m.offers[0]) console.error(m.offers[0].offer.sdp);
  if (announces.length < 2) {
    const copy = JSON.parse(JSON.stringify(m));
    copy.info_hash_hex = binHex(m.info_hash);
    copy.peer_id_ascii = m.peer_id;
    for (const o of copy.offers || []) if (o.offer && o.offer.sdp) o.offer.sdp = o.offer.sdp.slice(0, 160) + '…';
    if (copy.offers && copy.offers.length > 2) copy.offers = copy.offers.slice(0, 2).concat([`… ${copy.offers.length} offers`]);
    if (copy.answer && copy.answer.sdp) copy.answer.sdp = copy.answer.sdp.slice(0, 160) + '…';
    announces.push(copy);
  }
}

// p2p-media-loader 2.3's swarm naming, redone here to check what the page announced
// (and for native peers: web/P2P.md): stream index = base64(SHA-1(
// "{BANDWIDTH}-{codecs}-{width}-{height}-{lang}-{channels}-{name}-{fps}-{video range}")),
// stream swarm id = "v2-{swarmId}-main-{index}", info_hash = base64(SHA-1(that)[0..15]).
function swarmOf(swarmId, l) {
  const b = l.maxBitrate ?? l.bitrate;
  const missing = b === 0;
  const codecs = missing || !l.videoCodec ? '' : l.videoCodec.split(',').map((c) => c.trim().toLowerCase()).sort().join(',');
  const fps = !missing && l.frameRate && !isNaN(Number(l.frameRate)) ? Number(l.frameRate).toString() : '';
  const range = !missing && l.videoRange ? l.videoRange.toUpperCase().trim() : '';
  const str = `${b ?? 0}-${codecs}-${missing ? '' : l.width ?? ''}-${missing ? '' : l.height ?? ''}----${fps}-${range}`;
  const index = createHash('sha1').update(str).digest('base64');
  const streamSwarmId = `v2-${swarmId}-main-${index}`;
  const infoHash = createHash('sha1').update(streamSwarmId).digest().subarray(0, 15).toString('base64');
  return { index_input: str, index, stream_swarm_id: streamSwarmId, info_hash: infoHash };
}

const pages = [];
let result = { ok: false };
try {
  for (let i = 0; i < viewers; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const log = [];
    page.on('console', (m) => { if (log.length < 200) log.push(`[${m.type()}] ${m.text()}`); });
    page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
    page.on('websocket', (ws) => {
      if (!ws.url().endsWith('/tracker')) return;
      ws.on('framesent', (f) => recordFrame(f.payload));
    });
    await page.goto(url, { timeout: 15000 });
    pages.push({ page, log, first: null, t: 0 });
    // Later viewers join a swarm that already holds segments.
    if (i + 1 < viewers) await page.waitForTimeout(1500);
  }

  let last = [];
  while (Date.now() - started < limit) {
    last = [];
    for (const v of pages) {
      const s = await v.page.evaluate(() => {
        const vid = document.getElementById('video');
        const m = window.mediamesh || {};
        const p = m.p2p || {};
        return {
          t: vid.currentTime, error: vid.error && vid.error.message,
          p2p_enabled: !!p.enabled, reason: p.reason, swarm_id: p.swarmId,
          http_bytes: p.httpBytes || 0, p2p_bytes: p.p2pBytes || 0,
          uploaded_bytes: p.uploadedBytes || 0, peers: p.peers || 0,
          offload: p.offload || 0, verified: p.verified || 0, rejected: p.rejected || 0,
          p2p_segments: p.p2pSegments || 0, http_segments: p.httpSegments || 0,
          errors: (p.errors || []).slice(-5), tracker_errors: (p.trackerErrors || []).slice(-3),
        };
      });
      if (v.first === null && s.t > 0) v.first = s.t;
      s.played = v.first === null ? 0 : s.t - v.first;
      last.push(s);
    }
    const playing = last.every((s) => s.played >= 3);
    const p2pBytes = last.reduce((a, s) => a + s.p2p_bytes, 0);
    const broken = last.find((s) => s.error);
    if (broken) { result = { ok: false, error: broken.error }; break; }
    if (playing && p2pBytes > 0 && Date.now() - started >= watch) {
      const httpBytes = last.reduce((a, s) => a + s.http_bytes, 0);
      result = { ok: true, p2p_bytes: p2pBytes, http_bytes: httpBytes, offload: p2pBytes / (p2pBytes + httpBytes) };
      break;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  if (!result.ok && !result.error) result = { ok: false, error: 'timed out' };
  const level = await pages[0].page.evaluate(() => {
    const l = window.mediamesh.hls && window.mediamesh.hls.levels[0];
    return l && { maxBitrate: l.maxBitrate, bitrate: l.bitrate, videoCodec: l.videoCodec, width: l.width, height: l.height,
      frameRate: l.attrs['FRAME-RATE'], videoRange: l.attrs['VIDEO-RANGE'] };
  });
  if (level && last[0]) {
    result.swarm = swarmOf(last[0].swarm_id, level);
    result.swarm.level = level;
  }
  result.viewers = last;
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  result.waited_s = (Date.now() - started) / 1000;
  result.info_hashes = [...infoHashes].map((h) => ({ hex: binHex(h), text: h }));
  if (result.swarm) result.swarm.announced = infoHashes.has(result.swarm.info_hash);
  result.candidates = [...candidates];
  result.announces = announces;
  if (!result.ok) result.logs = pages.map((v) => v.log.slice(-30));
  await browser.close().catch(() => {});
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
