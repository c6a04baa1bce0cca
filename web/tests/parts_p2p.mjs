// Opens player pages in headless Chromium (one browser context each: own peer id) and
// watches them until the goals in the config are met, then prints one JSON line with
// per-page stats: mode, played seconds, latency to live (p50/p95 from the page's clock
// against program date time), bytes and parts from peers and HTTP, uploads, rejected
// parts, stalls, joined segments, and whether all pages announced one info_hash.
// Exit 0 = goals met within the limit. Used by crates/mediamesh/tests/e2e/browser_parts.rs.
//
//   node web/tests/parts_p2p.mjs '{"pages":["http://H/?stream=demo&latency=low", …],
//     "gap_s":1.5, "watch_s":0, "limit_s":90,
//     "need":{"played_s":5, "p2p_part_bytes":1, "uploaded_part_bytes":1,
//             "p2p_bytes_any":1, "segments_from_low":1}}'
//
// need: played_s — every page played that long; p2p_part_bytes / uploaded_part_bytes —
// summed over `?latency=low|balanced` pages; p2p_bytes_any — summed whole-segment bytes
// from peers of stock pages; segments_from_low — part pages joined and uploaded whole
// segments; rejected_parts — part pages rejected that many parts from peers. watch_s: keep watching at least that long after the first page opened.
// MM_WEB_DIR=web (development): serve the page's scripts from that folder instead of
// the binary's, so they can be changed without rebuilding mediamesh (not the page
// itself: a document Playwright fulfils may not reach the tracker on 127.0.0.1).
import fs from 'node:fs';
import path from 'node:path';
import { launch, P2P_FLAGS } from './chromium.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
const urls = cfg.pages || [];
const need = cfg.need || {};
const limit = (cfg.limit_s || 90) * 1000;
const watch = (cfg.watch_s || 0) * 1000;
const gap = (cfg.gap_s ?? 1.5) * 1000;
if (!urls.length) {
  console.error('usage: parts_p2p.mjs CONFIG_JSON (see the header)');
  process.exit(2);
}

const LOCAL = {
  '/static/player.js': ['player.js', 'text/javascript'],
  '/static/integrity.js': ['integrity.js', 'text/javascript'],
  '/static/ban.js': ['ban.js', 'text/javascript'],
  '/vendor/p2p-media-loader.min.js': ['vendor/p2p-media-loader.min.js', 'text/javascript'],
};

const started = Date.now();
const browser = await launch(P2P_FLAGS);
const pages = [];
let result = { ok: false };

function summary(s, v) {
  const pt = s.parts || {};
  return {
    mode: s.mode, t: s.t, played: v.first === null ? 0 : s.t - v.first, error: s.error,
    p2p_enabled: s.enabled, reason: s.reason, swarm_id: s.swarmId,
    http_bytes: s.httpBytes, p2p_bytes: s.p2pBytes, uploaded_bytes: s.uploadedBytes,
    p2p_part_bytes: pt.p2pPartBytes || 0, http_part_bytes: pt.httpPartBytes || 0,
    uploaded_part_bytes: pt.uploadedPartBytes || 0, parts_served: pt.partsServed || 0,
    p2p_parts: pt.p2pParts || 0, http_parts: pt.httpParts || 0, part_peers: pt.partPeers || 0,
    rejected_parts: pt.rejectedParts || 0, joined_segments: pt.joinedSegments || 0,
    peer_timeouts: pt.peerTimeouts || 0, peer_requests: pt.peerRequests || 0,
    rejected: s.rejected, bans: s.bans, peers: s.peers, offload: s.offload,
    latency_p50_s: s.latencyP50, latency_p95_s: s.latencyP95, latency_hls_s: s.latency,
    latency_samples: s.samples, stalls: s.stalls, stall_seconds: s.stallSeconds,
    errors: s.errors, parts: s.parts ? { ...pt, integrity: undefined } : null,
    part_integrity: pt.integrity || null,
  };
}

try {
  for (let i = 0; i < urls.length; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const v = { page, log: [], first: null, infoHashes: new Set(), url: urls[i] };
    page.on('console', (m) => { if (v.log.length < 300) v.log.push(`[${m.type()}] ${m.text()}`); });
    page.on('pageerror', (e) => v.log.push(`[pageerror] ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400 && v.log.length < 300) v.log.push(`[http ${r.status()}] ${r.url()}`);
    });
    page.on('websocket', (ws) => {
      if (!ws.url().endsWith('/tracker')) return;
      ws.on('framesent', (f) => {
        try {
          const m = JSON.parse(String(f.payload));
          if (m.action === 'announce' && typeof m.info_hash === 'string') v.infoHashes.add(m.info_hash);
        } catch { /* not JSON */ }
      });
    });
    if (process.env.MM_WEB_DIR) {
      await page.route((u) => LOCAL[u.pathname] !== undefined, async (route) => {
        const [file, type] = LOCAL[new URL(route.request().url()).pathname];
        await route.fulfill({ status: 200, contentType: type, body: fs.readFileSync(path.join(process.env.MM_WEB_DIR, file)) });
      });
    }
    await page.goto(urls[i], { timeout: 15000 });
    pages.push(v);
    if (i + 1 < urls.length) await page.waitForTimeout(gap);
  }

  let last = [];
  while (Date.now() - started < limit) {
    last = [];
    for (const v of pages) {
      const s = await v.page.evaluate(() => {
        const vid = document.getElementById('video');
        const m = window.mediamesh || {};
        const p = m.p2p || {};
        const pb = m.playback || {};
        return {
          t: vid.currentTime, error: vid.error && vid.error.message,
          mode: p.mode, enabled: !!p.enabled, reason: p.reason, swarmId: p.swarmId,
          httpBytes: m.httpBytes || 0, p2pBytes: p.p2pBytes || 0, uploadedBytes: p.uploadedBytes || 0,
          rejected: p.rejected || 0, bans: p.bans || 0, peers: p.peers || 0, offload: p.offload || 0,
          errors: (p.errors || []).slice(-5), parts: p.parts ? JSON.parse(JSON.stringify(p.parts)) : null,
          latencyP50: pb.latencyP50 ?? null, latencyP95: pb.latencyP95 ?? null, latency: pb.latency ?? null,
          samples: pb.samples || 0, stalls: pb.stalls || 0, stallSeconds: pb.stallSeconds || 0,
        };
      });
      if (v.first === null && s.t > 0) v.first = s.t;
      last.push(summary(s, v));
    }
    const low = last.filter((s) => s.mode === 'low' || s.mode === 'balanced');
    const stock = last.filter((s) => s.mode === 'stock');
    const sum = (xs, k) => xs.reduce((a, s) => a + (s[k] || 0), 0);
    const broken = last.find((s) => s.error);
    if (broken) { result = { ok: false, error: broken.error }; break; }
    const met = {
      played_s: last.every((s) => s.played >= (need.played_s || 0)),
      p2p_part_bytes: sum(low, 'p2p_part_bytes') >= (need.p2p_part_bytes || 0),
      uploaded_part_bytes: sum(low, 'uploaded_part_bytes') >= (need.uploaded_part_bytes || 0),
      p2p_bytes_any: sum(stock, 'p2p_bytes') >= (need.p2p_bytes_any || 0),
      rejected_parts: sum(low, 'rejected_parts') >= (need.rejected_parts || 0),
      segments_from_low: !need.segments_from_low ||
        (sum(low, 'joined_segments') >= need.segments_from_low && sum(low, 'uploaded_bytes') > 0),
    };
    result.met = met;
    if (Object.values(met).every(Boolean) && Date.now() - started >= watch) {
      result.ok = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  if (!result.ok && !result.error) result.error = 'timed out before the goals were met';
  result.pages = last;
  const sets = pages.map((v) => v.infoHashes);
  result.info_hashes = sets.map((s) => [...s]);
  result.same_info_hash = sets.length > 0 && [...sets[0]].some((h) => sets.every((s) => s.has(h)));
} catch (e) {
  result = { ok: false, error: String(e && e.stack || e), pages: result.pages };
} finally {
  result.waited_s = (Date.now() - started) / 1000;
  if (!result.ok || process.env.MM_LOGS) result.logs = pages.map((v) => v.log.slice(-40));
  await browser.close().catch(() => {});
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
