// Publishes Chromium's fake camera (and microphone) to a WHIP endpoint, the way a
// browser publishing page does: getUserMedia, sendonly transceivers, POST the offer
// (Authorization: Bearer KEY when given), apply the answer. Then it keeps publishing
// for `hold` seconds while watching the sender's stats (frames encoded and sent, the
// codec, keyframes asked for by the server), DELETEs the session, and prints one JSON
// line. Exit 0 = published and held; a refused POST prints its status (exit 1).
//
//   node web/tests/whip.mjs 'http://127.0.0.1:8080' STREAM [KEY|-] [hold_s] [timeout_s]
import { launch, P2P_FLAGS } from './chromium.mjs';

const [base, stream, keyArg, holdArg, limitArg] = process.argv.slice(2);
if (!base || !stream) {
  console.error('usage: whip.mjs BASE_URL STREAM [KEY|-] [hold_s] [timeout_s]');
  process.exit(2);
}
const key = keyArg && keyArg !== '-' ? keyArg : null;
const hold = Number(holdArg || 10) * 1000;
const limit = Number(limitArg || 30) * 1000;

const browser = await launch([
  ...P2P_FLAGS,
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
]);
let result = { ok: false };
try {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  // Any page of the server: a secure context (loopback) of the same origin.
  await page.goto(`${base}/healthz`, { timeout: 15000 });
  const posted = await page.evaluate(async ({ stream, key }) => {
    const media = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 360, frameRate: 30 }, audio: true,
    });
    const pc = new RTCPeerConnection();
    for (const t of media.getTracks()) pc.addTransceiver(t, { direction: 'sendonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const headers = { 'content-type': 'application/sdp' };
    if (key) headers.authorization = `Bearer ${key}`;
    const res = await fetch(`/whip/${stream}`, { method: 'POST', headers, body: pc.localDescription.sdp });
    const text = await res.text();
    if (res.status !== 201) return { status: res.status, text };
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    window.whip = { pc, location: res.headers.get('location') };
    return { status: res.status, location: window.whip.location };
  }, { stream, key });
  if (posted.status !== 201) {
    result = { ok: false, ...posted };
  } else {
    const stats = () => page.evaluate(async () => {
      const { pc } = window.whip;
      const out = { state: pc.connectionState };
      const s = await pc.getStats();
      s.forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'video') {
          out.frames_encoded = r.framesEncoded;
          out.frames_sent = r.framesSent;
          out.pli = r.pliCount;
          out.width = r.frameWidth;
          out.encoder = r.encoderImplementation;
          const c = s.get(r.codecId);
          out.codec = c && c.mimeType;
        }
        if (r.type === 'outbound-rtp' && r.kind === 'audio') out.audio_packets = r.packetsSent;
      });
      return out;
    });
    const start = Date.now();
    let s = await stats();
    while (s.state !== 'connected' && Date.now() - start < limit) {
      if (s.state === 'failed' || s.state === 'closed') break;
      await new Promise((r) => setTimeout(r, 200));
      s = await stats();
    }
    if (s.state !== 'connected') {
      result = { ok: false, error: `never connected (${s.state})`, log: log.slice(-20) };
    } else {
      const connected_s = (Date.now() - start) / 1000;
      await new Promise((r) => setTimeout(r, hold));
      s = await stats();
      const deleted = await page.evaluate(async () => {
        const r = await fetch(window.whip.location, { method: 'DELETE' });
        window.whip.pc.close();
        return r.status;
      });
      result = {
        ok: s.state === 'connected' && s.frames_sent > 0,
        status: posted.status, location: posted.location, connected_s, ...s, deleted,
      };
    }
  }
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
