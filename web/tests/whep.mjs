// Opens the player page in WebRTC mode (`?mode=whep`) in headless Chromium and waits
// until the <video> plays over WHEP: currentTime advances by at least 3 s, the video
// has a size, and getStats() counts decoded frames (and received audio packets when
// asked). Then it keeps watching for `hold` seconds more and says whether the picture
// kept moving (decoded frames and currentTime advanced in every 2 s window). Prints
// one JSON line; exit 0 = all held.
//
//   node web/tests/whep.mjs 'http://127.0.0.1:8080/?stream=cam&mode=whep' [timeout_s] [hold_s] [audio]
import { launch } from './chromium.mjs';

const url = process.argv[2];
const limit = Number(process.argv[3] || 45) * 1000;
const hold = Number(process.argv[4] || 0) * 1000;
const wantAudio = process.argv[5] === 'audio';
if (!url) {
  console.error('usage: whep.mjs URL [timeout_s] [hold_s] [audio]');
  process.exit(2);
}
// Loopback candidates are what the test server offers.
const browser = await launch(['--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns']);
let result = { ok: false };
const sample = (page) => page.evaluate(() => {
  const v = document.getElementById('video');
  const w = window.mediamesh && window.mediamesh.whep;
  return {
    t: v.currentTime, width: v.videoWidth, height: v.videoHeight, paused: v.paused,
    error: v.error && v.error.message,
    whep: w ? Object.assign({}, w.stats) : null,
    at: performance.now(),
  };
});
try {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(url, { timeout: 15000 });
  const start = Date.now();
  let first = null;
  let s = null;
  let playing = false;
  while (Date.now() - start < limit) {
    s = await sample(page);
    if (s.whep && s.whep.error) { result = { ok: false, error: s.whep.error, log: log.slice(-20) }; break; }
    if (first === null && s.t > 0) first = s;
    const audioOk = !wantAudio || (s.whep && s.whep.audioPackets > 0);
    if (first && s.t >= first.t + 3 && s.width > 0 && s.whep && s.whep.framesDecoded > 0 && audioOk) {
      playing = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!playing) {
    if (!result.error) result = { ok: false, last: s, log: log.slice(-20) };
  } else {
    result = {
      ok: true, waited_s: (Date.now() - start) / 1000,
      first_play_s: first ? (first.at - 0) / 1000 : null,
      current_time: s.t, width: s.width, height: s.height,
      frames_decoded: s.whep.framesDecoded, audio_packets: s.whep.audioPackets,
      jitter_buffer_ms: s.whep.jitterBufferMs,
    };
    // Hold: every 2 s window must show new decoded frames and a moving playhead.
    const holdStart = Date.now();
    let prev = s;
    let windows = 0;
    let stuck = 0;
    while (Date.now() - holdStart < hold) {
      await new Promise((r) => setTimeout(r, 2000));
      const now = await sample(page);
      windows++;
      if (!(now.whep && now.whep.framesDecoded > prev.whep.framesDecoded && now.t > prev.t)) stuck++;
      prev = now;
    }
    result.hold_windows = windows;
    result.stuck_windows = stuck;
    result.frames_decoded_end = prev.whep.framesDecoded;
    result.audio_packets_end = prev.whep.audioPackets;
    result.frames_dropped = prev.whep.framesDropped;
    result.ok = stuck === 0;
    // End the session the way a player does (DELETE on the Location).
    result.deleted = await page.evaluate(async () => {
      const w = window.mediamesh.whep;
      if (!w) return false;
      await w.stop();
      return true;
    });
  }
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
