// WHEP viewers for bench/whep_viewers.sh: one headless Chromium page opens N receive-only
// RTCPeerConnections to `POST {base}/whep/{stream}` (the same offer/answer exchange as
// web/whep.js, no trickle), waits until every one is connected, prints a line
// `connected N` on stdout, keeps them open for SECONDS and prints one JSON line with
// what each viewer received over that time (RTP packets and bytes of video and audio,
// frames decoded), then closes them. The tracks are not rendered, so the page costs
// the machine less than N players would; the server does the same work either way.
//
//   node bench/whep_viewers.mjs http://127.0.0.1:8080 demo 16 20
import { launch, P2P_FLAGS } from '../web/tests/chromium.mjs';

const [base, stream, nArg, secsArg] = process.argv.slice(2);
const n = Number(nArg || 4);
const seconds = Number(secsArg || 20);
const browser = await launch(P2P_FLAGS);
let result = { ok: false };
try {
  const page = await browser.newPage();
  // Same origin as the WHEP endpoint (a page on the server itself).
  await page.goto(`${base}/healthz`, { timeout: 15000 });
  const connected = await page.evaluate(async ({ stream, n }) => {
    window.viewers = [];
    const one = async () => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => {
        if (pc.iceGatheringState === 'complete') return r();
        pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r());
        setTimeout(r, 2000);
      });
      const res = await fetch(`/whep/${stream}`, {
        method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp,
      });
      if (res.status !== 201) throw new Error(`WHEP answered ${res.status}`);
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      await new Promise((r, j) => {
        if (pc.connectionState === 'connected') return r();
        pc.addEventListener('connectionstatechange', () => {
          if (pc.connectionState === 'connected') r();
          if (pc.connectionState === 'failed') j(new Error('ICE failed'));
        });
        setTimeout(() => j(new Error('not connected within 15 s')), 15000);
      });
      window.viewers.push(pc);
    };
    const settled = await Promise.allSettled(Array.from({ length: n }, one));
    window.failures = settled.filter((s) => s.status === 'rejected').map((s) => String(s.reason));
    return settled.filter((s) => s.status === 'fulfilled').length;
  }, { stream, n });
  const failures = await page.evaluate(() => window.failures);
  const snapshot = () => page.evaluate(async () => {
    const out = [];
    for (const pc of window.viewers) {
      const v = { video_bytes: 0, audio_bytes: 0, video_packets: 0, audio_packets: 0, frames_decoded: 0 };
      (await pc.getStats()).forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        v[`${s.kind}_bytes`] += s.bytesReceived || 0;
        v[`${s.kind}_packets`] += s.packetsReceived || 0;
        if (s.kind === 'video') v.frames_decoded += s.framesDecoded || 0;
      });
      out.push(v);
    }
    return out;
  });
  console.log(`connected ${connected}`);
  const before = await snapshot();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = await snapshot();
  const per = after.map((a, i) => Object.fromEntries(
    Object.keys(a).map((k) => [k, a[k] - ((before[i] || {})[k] || 0)])));
  const starved = per.filter((v) => v.video_packets === 0 || v.audio_packets === 0).length;
  result = {
    ok: connected === n, asked: n, connected, seconds, starved,
    failures: [...new Set(failures)].slice(0, 5),
    video_kbit_s_mean: per.length ? Math.round(per.reduce((s, v) => s + v.video_bytes, 0) * 8 / 1000 / seconds / per.length) : 0,
    audio_kbit_s_mean: per.length ? Math.round(per.reduce((s, v) => s + v.audio_bytes, 0) * 8 / 1000 / seconds / per.length) : 0,
  };
} catch (e) {
  console.log('connected 0');
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
