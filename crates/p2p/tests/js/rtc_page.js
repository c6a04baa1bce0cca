// Browser side of the native<->Chromium data channel test. Does what
// bittorrent-tracker's websocket client + simple-peer (trickle: false) do, with a
// plain RTCPeerConnection: complete SDP (ICE gathering finished) relayed through
// the WebTorrent tracker as an announce offer / answer. Then sends binary messages
// (1 B, 64 KiB, 2 MiB in 64 KiB chunks, honouring bufferedAmount) and expects the
// native peer to echo every message back unchanged.
/* eslint-env browser */
window.runPeer = async ({ trackerUrl, infoHashHex, role, sizes, timeoutMs }) => {
  const t0 = Date.now();
  const log = [];
  const hex2bin = (h) => h.match(/../g).map((x) => String.fromCharCode(parseInt(x, 16))).join('');
  const rand20 = () => String.fromCharCode(...crypto.getRandomValues(new Uint8Array(20)));
  const hex = (s) => Array.from(s, (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
  const infoHash = hex2bin(infoHashHex);
  const me = rand20();
  const CHUNK = 64 * 1024;

  const withTimeout = (p, what) => Promise.race([
    p,
    new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), Math.max(1, timeoutMs - (Date.now() - t0)))),
  ]);
  const gathered = (pc) => new Promise((res) => {
    if (pc.iceGatheringState === 'complete') return res();
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') res(); });
  });
  const candidates = (sdp) => sdp.split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'))
    .map((l) => l.split(' ').slice(4, 8).join(' '));

  const ws = new WebSocket(trackerUrl);
  await withTimeout(new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej(new Error('ws error')); }), 'tracker connect');
  const send = (o) => ws.send(JSON.stringify(o));
  const announce = (offers) => send({
    action: 'announce', info_hash: infoHash, peer_id: me, numwant: offers.length,
    uploaded: 0, downloaded: 0, left: 1, event: 'started', offers,
  });

  let pc;
  let localSdp = '';
  const channel = new Promise((resolveChannel, rejectChannel) => {
    if (role === 'offer') {
      pc = new RTCPeerConnection({ iceServers: [] });
      const dc = pc.createDataChannel(hex(rand20()));
      const offerId = rand20();
      (async () => {
        await pc.setLocalDescription(await pc.createOffer());
        await gathered(pc);
        localSdp = pc.localDescription.sdp;
        announce([{ offer: { type: 'offer', sdp: localSdp }, offer_id: offerId }]);
      })().catch(rejectChannel);
      ws.onmessage = async (ev) => {
        const d = JSON.parse(ev.data);
        if (d.answer && d.offer_id === offerId) {
          log.push(`answer from ${hex(d.peer_id)}`);
          await pc.setRemoteDescription(d.answer).catch(rejectChannel);
        }
      };
      resolveChannel(dc);
    } else {
      announce([]);
      ws.onmessage = async (ev) => {
        const d = JSON.parse(ev.data);
        if (!d.offer || pc) return; // answer the first offer only
        log.push(`offer from ${hex(d.peer_id)}`);
        try {
          pc = new RTCPeerConnection({ iceServers: [] });
          pc.ondatachannel = (e) => resolveChannel(e.channel);
          await pc.setRemoteDescription(d.offer);
          await pc.setLocalDescription(await pc.createAnswer());
          await gathered(pc);
          localSdp = pc.localDescription.sdp;
          send({
            action: 'announce', info_hash: infoHash, peer_id: me, to_peer_id: d.peer_id,
            answer: { type: 'answer', sdp: localSdp }, offer_id: d.offer_id,
          });
        } catch (e) { rejectChannel(e); }
      };
    }
  });

  try {
    const dc = await withTimeout(channel, 'data channel');
    dc.binaryType = 'arraybuffer';
    if (dc.readyState !== 'open') {
      await withTimeout(new Promise((res, rej) => { dc.onopen = res; dc.onclose = () => rej(new Error('closed')); }), 'channel open');
    }
    // What we send: one pattern per size, same formula as the Rust side checks.
    const msgs = [];
    sizes.forEach((size, k) => {
      const seed = k + 1;
      const all = new Uint8Array(size);
      for (let i = 0; i < size; i++) all[i] = (i * 13 + seed) & 255;
      for (let o = 0; o < size; o += CHUNK) msgs.push(all.subarray(o, Math.min(size, o + CHUNK)));
    });
    const total = msgs.reduce((n, m) => n + m.length, 0);
    const got = new Uint8Array(total);
    let have = 0;
    const echoed = new Promise((res) => {
      dc.onmessage = (e) => {
        const b = new Uint8Array(e.data);
        got.set(b.subarray(0, Math.min(b.length, total - have)), have);
        have += b.length;
        if (have >= total) res();
      };
    });
    dc.bufferedAmountLowThreshold = 256 * 1024;
    const sendStart = Date.now();
    for (const m of msgs) {
      if (dc.bufferedAmount > 1024 * 1024) {
        await withTimeout(new Promise((res) => { dc.onbufferedamountlow = res; }), 'buffered amount low');
      }
      dc.send(m);
    }
    await withTimeout(echoed, `echo (${have} of ${total})`);
    let k = 0;
    let mismatch = -1;
    for (const m of msgs) {
      for (let i = 0; i < m.length; i++, k++) if (got[k] !== m[i]) { mismatch = k; break; }
      if (mismatch >= 0) break;
    }
    return {
      ok: mismatch < 0 && have === total, role, bytes: total, echoed: have, mismatch,
      round_trip_ms: Date.now() - sendStart, local_candidates: candidates(localSdp), log,
    };
  } catch (e) {
    return { ok: false, role, error: String(e), local_candidates: candidates(localSdp), log, ice: pc && pc.iceConnectionState };
  } finally {
    try { ws.close(); } catch (_) { /* ignore */ }
  }
};
