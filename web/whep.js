// The player page's WHEP client (RFC 9725 style, no dependencies): plays a live stream
// over WebRTC from the origin's `POST /whep/{stream}` at sub-second latency. One
// RTCPeerConnection with recvonly video and audio transceivers; the offer is POSTed
// once ICE gathering has completed (no trickle: the server is ICE-lite and answers
// with its one candidate), then the answer is applied. `stop()` closes the connection
// and DELETEs the session's Location. Not a general WHEP player: no simulcast layers,
// no auth token, no reconnect (the page starts a new session when asked).
//
//   const s = await MediameshWhep.start(video, '/whep/NAME', { iceServers });
//   s.stats   // {state, framesDecoded, framesReceived, videoPackets, audioPackets, ...}
//   await s.stop();
(function () {
  'use strict';

  // Resolves when gathering is complete, or after `ms` with what was gathered.
  function gathered(pc, ms) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState !== 'complete') return;
        pc.removeEventListener('icegatheringstatechange', done);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(resolve, ms);
      pc.addEventListener('icegatheringstatechange', done);
    });
  }

  async function start(video, endpoint, opts = {}) {
    const stats = {
      state: 'connecting', error: null, location: null,
      framesDecoded: 0, framesReceived: 0, framesDropped: 0, videoPackets: 0,
      audioPackets: 0, audioSamples: 0, width: 0, height: 0, jitterBufferMs: null,
    };
    const pc = new RTCPeerConnection({ iceServers: opts.iceServers || [] });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const media = new MediaStream();
    pc.addEventListener('track', (e) => {
      media.addTrack(e.track);
      if (video.srcObject !== media) video.srcObject = media;
      video.play().catch(() => {});
    });
    pc.addEventListener('connectionstatechange', () => { stats.state = pc.connectionState; });
    let location = null;
    let timer = null;
    const stop = async () => {
      if (timer) clearInterval(timer);
      timer = null;
      // DELETE first, so the server ends the session because the viewer asked (not
      // because the media stopped); then close the connection.
      if (location) {
        const l = location;
        location = null;
        try { await fetch(l, { method: 'DELETE' }); } catch (e) { /* server gone */ }
      }
      pc.close();
      stats.state = 'closed';
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 2000);
      const r = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp' },
        body: pc.localDescription.sdp,
      });
      const body = await r.text();
      if (r.status !== 201) throw new Error(`WHEP ${r.status}: ${body.trim()}`);
      const where = r.headers.get('location');
      if (where) location = new URL(where, new URL(endpoint, window.location.href)).href;
      stats.location = location;
      await pc.setRemoteDescription({ type: 'answer', sdp: body });
    } catch (e) {
      stats.error = String(e && e.message ? e.message : e);
      stats.state = 'failed';
      await stop();
      return { stats, stop, pc };
    }
    // Counters from getStats() for the page and tests.
    timer = setInterval(async () => {
      let report;
      try { report = await pc.getStats(); } catch (e) { return; }
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') {
          stats.framesDecoded = s.framesDecoded || 0;
          stats.framesReceived = s.framesReceived || 0;
          stats.framesDropped = s.framesDropped || 0;
          stats.videoPackets = s.packetsReceived || 0;
          stats.width = s.frameWidth || 0;
          stats.height = s.frameHeight || 0;
          if (s.jitterBufferEmittedCount) {
            stats.jitterBufferMs = Math.round((s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000);
          }
        } else if (s.kind === 'audio') {
          stats.audioPackets = s.packetsReceived || 0;
          stats.audioSamples = s.totalSamplesReceived || 0;
        }
      });
    }, 500);
    return { stats, stop, pc };
  }

  window.MediameshWhep = { start };
})();
