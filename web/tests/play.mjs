// Opens the mediamesh player page in headless Chromium (Debian's, driven by
// playwright-core) and waits until the <video> element really plays: currentTime
// advances by at least 3 s. Prints one JSON line with what it saw; exit 0 = playing.
// With CODECS (an HLS CODECS value), it first asks MediaSource.isTypeSupported for
// `video/mp4; codecs="CODECS"`: if this Chromium cannot decode them (HEVC without a
// hardware decoder, say) it prints {"ok":false,"supported":false} and exits 3.
//
//   node web/tests/play.mjs http://127.0.0.1:8080/?stream=demo [timeout_s] [CODECS]
import { launch } from './chromium.mjs';

const url = process.argv[2];
const limit = Number(process.argv[3] || 45) * 1000;
const codecs = process.argv[4];
if (!url) {
  console.error('usage: play.mjs URL [timeout_s]');
  process.exit(2);
}
const browser = await launch(['--disable-features=WebRtcHideLocalIpsWithMdns']);
let result = { ok: false };
try {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(url, { timeout: 15000 });
  if (codecs) {
    const supported = await page.evaluate(
      (c) => MediaSource.isTypeSupported(`video/mp4; codecs="${c}"`), codecs);
    if (!supported) {
      console.log(JSON.stringify({ ok: false, supported: false, codecs }));
      await browser.close();
      process.exit(3);
    }
  }
  const start = Date.now();
  let first = null;
  let last = 0;
  while (Date.now() - start < limit) {
    const s = await page.evaluate(() => {
      const v = document.getElementById('video');
      const h = window.mediamesh && window.mediamesh.hls;
      return {
        t: v.currentTime, paused: v.paused, ready: v.readyState,
        error: v.error && v.error.message,
        latency: h && isFinite(h.latency) ? h.latency : null,
        http: window.mediamesh ? window.mediamesh.httpBytes : 0,
      };
    });
    last = s.t;
    if (first === null && s.t > 0) first = s.t;
    if (first !== null && s.t >= first + 3) {
      result = { ok: true, first, now: s.t, latency: s.latency, http_bytes: s.http, waited_s: (Date.now() - start) / 1000, codecs };
      break;
    }
    if (s.error) { result = { ok: false, error: s.error, log }; break; }
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
