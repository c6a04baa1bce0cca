// Browser viewers for bench/p2p_latency.sh: opens N player pages (headless Chromium,
// one browser context each, so one peer each) at URL for D seconds, then prints one
// JSON object with each page's own figures, read from `window.mediamesh` (web/player.js):
// latency to live p50/p95 from the player's clock against the program date time of
// what plays, stalls, bytes from HTTP and from peers (segments and parts), rejected.
// Not a test: it asserts nothing and exits 0 unless Chromium could not be driven.
//
//   node bench/p2p_pages.mjs URL VIEWERS SECONDS
import { launch, P2P_FLAGS } from '../web/tests/chromium.mjs';

const [url, viewers = '4', seconds = '120'] = process.argv.slice(2);
if (!url) {
  console.error('usage: p2p_pages.mjs URL [viewers] [seconds]');
  process.exit(2);
}
const browser = await launch(P2P_FLAGS);
const pages = [];
try {
  for (let i = 0; i < Number(viewers); i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url, { timeout: 15000 });
    pages.push(page);
  }
  await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
  const out = [];
  for (const page of pages) {
    out.push(await page.evaluate(() => {
      const m = window.mediamesh || {};
      const p = m.p2p || {};
      const parts = p.parts || {};
      const pb = m.playback || {};
      const vid = document.getElementById('video');
      return {
        played_s: vid.currentTime,
        error: vid.error && vid.error.message,
        mode: p.mode || (p.enabled ? 'stock' : 'off'),
        p2p_enabled: !!p.enabled,
        latency_p50: pb.latencyP50 ?? null,
        latency_p95: pb.latencyP95 ?? null,
        stalls: pb.stalls || 0,
        stall_seconds: pb.stallSeconds || 0,
        http_bytes: (p.httpBytes || m.httpBytes || 0) + (parts.httpPartBytes || 0),
        p2p_bytes: (p.p2pBytes || 0) + (parts.p2pPartBytes || 0),
        p2p_part_bytes: parts.p2pPartBytes || 0,
        rejected: (p.rejected || 0) + (parts.rejected || 0),
        bans: p.bans || 0,
        // What each stall waited for (web/player.js, PartSwarm#explain in parts mode).
        stall_log: pb.stallLog || [],
      };
    }));
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close().catch(() => {});
}
