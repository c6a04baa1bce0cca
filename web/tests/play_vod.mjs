// Plays a VOD asset from start to end with hls.js (served by mediamesh at
// /static/hls.min.js) in headless Chromium, at 4x speed, and reports whether it
// reached the end without a hole: one buffered range from the start to the end and
// no fatal hls.js error. A stall (the player outran its downloads, which a busy
// machine causes at 4x) is reported but is not a hole, so it does not fail the run.
// Prints one JSON line; exit 0 = played through.
//
//   node web/tests/play_vod.mjs http://127.0.0.1:8080 /vod/recordings/NAME/index.m3u8 [timeout_s]
import { launch } from './chromium.mjs';

const base = process.argv[2];
const path = process.argv[3];
const limit = Number(process.argv[4] || 60) * 1000;
if (!base || !path) {
  console.error('usage: play_vod.mjs BASE_URL PATH [timeout_s]');
  process.exit(2);
}
const browser = await launch();
let result = { ok: false };
try {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(`${base}/healthz`, { timeout: 15000 });
  await page.setContent('<video id="v" muted playsinline></video>');
  await page.addScriptTag({ url: `${base}/static/hls.min.js` });
  await page.evaluate((src) => {
    const v = document.getElementById('v');
    const s = { errors: [], fatal: 0, stalls: 0, waiting: 0, playing: false, ended: false };
    window.vodState = s;
    // eslint-disable-next-line no-undef
    const hls = new Hls({ enableWorker: true, backBufferLength: Infinity });
    hls.on('hlsError', (_e, d) => {
      s.errors.push(`${d.type}/${d.details}${d.fatal ? ' fatal' : ''}`);
      if (d.fatal) s.fatal += 1;
      if (d.details === 'bufferStalledError') s.stalls += 1;
    });
    hls.on('hlsManifestParsed', () => {
      v.playbackRate = 4;
      v.play().catch((e) => s.errors.push(`play: ${e}`));
    });
    v.addEventListener('playing', () => { s.playing = true; });
    v.addEventListener('waiting', () => { if (s.playing) s.waiting += 1; });
    v.addEventListener('ended', () => { s.ended = true; });
    hls.loadSource(src);
    hls.attachMedia(v);
  }, `${base}${path}`);
  const start = Date.now();
  while (Date.now() - start < limit) {
    const s = await page.evaluate(() => {
      const v = document.getElementById('v');
      const ranges = [];
      for (let i = 0; i < v.buffered.length; i += 1) ranges.push([v.buffered.start(i), v.buffered.end(i)]);
      return { ...window.vodState, t: v.currentTime, duration: v.duration, ranges, error: v.error && v.error.message };
    });
    if (s.ended || s.fatal || s.error) {
      const whole = s.ranges.length === 1 && s.ranges[0][0] < 0.5 && s.ranges[0][1] > s.duration - 0.5;
      result = { ...s, ok: s.ended && !s.fatal && !s.error && whole, waited_s: (Date.now() - start) / 1000 };
      break;
    }
    result = { ...s, ok: false };
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!result.ok) result.log = log.slice(-20);
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
