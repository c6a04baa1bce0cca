// Glass-to-glass latency in headless Chromium, from a clock burnt into the picture
// (not from any server timestamp): the publisher (bench/whep_latency.sh) paints the
// wall clock in ms (mod 2^20) as 20 black/white columns of 32 px into each frame at the
// moment ffmpeg's filter graph makes it; this page script reads the columns of every
// frame the <video> presents (requestVideoFrameCallback → canvas) and subtracts them
// from the wall-clock time the frame is shown. Same machine, same clock. Frames whose
// columns are not clean black/white (mid-GOP blur, scaling) are skipped and counted.
//
//   node bench/glass_latency.mjs 'http://127.0.0.1:8080/?stream=clock&mode=whep' [seconds]
// Prints one JSON line: {mode, samples, skipped, p50_ms, p95_ms, min_ms, max_ms}.
import { launch } from '../web/tests/chromium.mjs';

const url = process.argv[2];
const seconds = Number(process.argv[3] || 30);
const browser = await launch(['--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns']);
let result = { ok: false };
try {
  const page = await browser.newPage();
  await page.goto(url, { timeout: 15000 });
  await page.evaluate(() => {
    const v = document.getElementById('video');
    const c = document.createElement('canvas');
    const ctx = c.getContext('2d', { willReadFrequently: true });
    window.glass = { samples: [], skipped: 0 };
    const MOD = 1 << 20;
    const onFrame = (_now, meta) => {
      const w = v.videoWidth, h = v.videoHeight;
      if (w && h) {
        c.width = w; c.height = h;
        ctx.drawImage(v, 0, 0, w, h);
        const row = ctx.getImageData(0, Math.floor(h / 2), w, 1).data;
        const col = w / 20;
        let value = 0, clean = true;
        for (let i = 0; i < 20; i++) {
          const x = Math.floor(col * i + col / 2);
          const lum = row[x * 4];
          if (lum > 64 && lum < 192) clean = false;
          if (lum >= 128) value |= 1 << i;
        }
        const shown = performance.timeOrigin + meta.expectedDisplayTime;
        if (clean) {
          const d = ((Math.floor(shown) % MOD) - value + MOD) % MOD;
          if (d < 60000) window.glass.samples.push(d);
          else window.glass.skipped++;
        } else window.glass.skipped++;
      }
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  });
  // Let playback settle (first keyframe, LL-HLS start-up) before counting.
  await new Promise((r) => setTimeout(r, 8000));
  await page.evaluate(() => { window.glass.samples.length = 0; window.glass.skipped = 0; });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const g = await page.evaluate(() => window.glass);
  const s = g.samples.slice().sort((a, b) => a - b);
  const q = (p) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null);
  result = {
    ok: s.length > 0, mode: new URL(url).searchParams.get('mode') || 'll-hls',
    samples: s.length, skipped: g.skipped,
    p50_ms: q(0.5), p95_ms: q(0.95), min_ms: s[0] ?? null, max_ms: s[s.length - 1] ?? null,
  };
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
