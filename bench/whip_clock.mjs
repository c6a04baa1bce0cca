// A WHIP publisher with a clock burnt into the picture, for bench/latency.sh: headless
// Chromium paints the wall clock in ms (mod 2^20) as 20 black/white columns of 32 px
// into a 640x360 canvas at the moment it draws each frame (the same code
// bench/glass_latency.mjs reads), and publishes canvas.captureStream(30) over WHIP
// (RFC 9725: POST the offer, bearer token = publish key) as H.264. It runs until killed
// or for the given seconds.
//
//   node bench/whip_clock.mjs http://127.0.0.1:8080/whip/clock [seconds] [key]
// Prints one JSON line when the publish is up: {ok, location} (or {ok:false, error}).
import { launch } from '../web/tests/chromium.mjs';

const endpoint = process.argv[2];
const seconds = Number(process.argv[3] || 120);
const key = process.argv[4] || '';
const browser = await launch(['--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns']);
let up = { ok: false };
try {
  const page = await browser.newPage();
  // A page of the server's own origin, so the POST is same-origin.
  await page.goto(new URL('/', endpoint).href, { timeout: 15000 });
  up = await page.evaluate(async ({ endpoint, key }) => {
    const c = document.createElement('canvas');
    c.width = 640; c.height = 360;
    document.body.appendChild(c);
    const ctx = c.getContext('2d');
    const MOD = 1 << 20;
    const paint = () => {
      const t = Math.floor(Date.now()) % MOD;
      for (let i = 0; i < 20; i++) {
        ctx.fillStyle = (t >> i) & 1 ? '#fff' : '#000';
        ctx.fillRect(i * 32, 0, 32, 360);
      }
    };
    paint();
    setInterval(paint, 1000 / 60);
    const stream = c.captureStream(30);
    const pc = new RTCPeerConnection();
    const tr = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly' });
    const h264 = RTCRtpSender.getCapabilities('video').codecs.filter((k) => /h264/i.test(k.mimeType));
    if (h264.length && tr.setCodecPreferences) tr.setCodecPreferences(h264);
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => {
      if (pc.iceGatheringState === 'complete') return r();
      pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
      setTimeout(r, 3000);
    });
    const headers = { 'content-type': 'application/sdp' };
    if (key) headers.authorization = `Bearer ${key}`;
    const res = await fetch(endpoint, { method: 'POST', headers, body: pc.localDescription.sdp });
    if (res.status !== 201) return { ok: false, error: `POST ${res.status}: ${await res.text()}` };
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    window.whipPc = pc;
    return { ok: true, location: res.headers.get('location') };
  }, { endpoint, key });
  console.log(JSON.stringify(up));
  if (up.ok) await new Promise((r) => setTimeout(r, seconds * 1000));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e) }));
} finally {
  await browser.close();
}
process.exit(up.ok ? 0 : 1);
