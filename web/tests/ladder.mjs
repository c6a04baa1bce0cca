// Plays one rendition of the edge ABR ladder with hls.js in headless Chromium
// (Debian's, driven by playwright-core): opens a page on the edge's own origin
// (/healthz, so the playlist and segments are same-origin), injects the vendored
// hls.js (web/vendor/hls.min.js, the one the player page embeds), loads the rung's
// media playlist and waits until the <video> plays 3 s. Prints one JSON line with
// what it saw (currentTime, picture size); exit 0 = playing.
//
//   node web/tests/ladder.mjs http://127.0.0.1:8081 /live/demo/240p/index.m3u8 [timeout_s]
import { launch } from './chromium.mjs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const base = process.argv[2];
const playlist = process.argv[3];
const limit = Number(process.argv[4] || 45) * 1000;
if (!base || !playlist) {
  console.error('usage: ladder.mjs EDGE_URL PLAYLIST_PATH [timeout_s]');
  process.exit(2);
}
const hlsPath = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'vendor', 'hls.min.js');
const browser = await launch();
let result = { ok: false };
try {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(`${base}/healthz`, { timeout: 15000 });
  await page.addScriptTag({ path: hlsPath });
  await page.evaluate((src) => {
    document.body.innerHTML = '<video id="video" muted autoplay playsinline></video>';
    const v = document.getElementById('video');
    window.errors = [];
    if (!window.Hls || !window.Hls.isSupported()) {
      window.errors.push('hls.js not supported');
      return;
    }
    const hls = new window.Hls({ lowLatencyMode: false });
    hls.on(window.Hls.Events.ERROR, (_e, d) => {
      if (d.fatal) window.errors.push(`${d.type}: ${d.details}`);
    });
    hls.loadSource(src);
    hls.attachMedia(v);
    v.play().catch(() => {});
    window.hls = hls;
  }, `${base}${playlist}`);
  const start = Date.now();
  let first = null;
  let last = 0;
  while (Date.now() - start < limit) {
    const s = await page.evaluate(() => {
      const v = document.getElementById('video');
      return {
        t: v ? v.currentTime : 0,
        w: v ? v.videoWidth : 0,
        h: v ? v.videoHeight : 0,
        error: (v && v.error && v.error.message) || (window.errors || [])[0] || null,
      };
    });
    last = s.t;
    if (first === null && s.t > 0) first = s.t;
    if (first !== null && s.t >= first + 3) {
      result = { ok: true, first, now: s.t, width: s.w, height: s.h, waited_s: (Date.now() - start) / 1000 };
      break;
    }
    if (s.error) { result = { ok: false, error: s.error, log: log.slice(-20) }; break; }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!result.ok && !result.error) result = { ok: false, last_time: last, log: log.slice(-20) };
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
