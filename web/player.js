// The mediamesh player page: lists streams from /api/v1/streams and plays one with
// hls.js in low-latency mode. `?stream=NAME` (or `?url=...`) picks what plays first.
(function () {
  'use strict';
  const video = document.getElementById('video');
  const list = document.getElementById('streams');
  const $ = (id) => document.getElementById(id);
  const state = { hls: null, url: null, httpBytes: 0 };
  window.mediamesh = state;

  function play(url, name) {
    if (state.hls) { state.hls.destroy(); state.hls = null; }
    state.url = url;
    state.httpBytes = 0;
    $('s-name').textContent = name || url;
    $('s-url').textContent = url;
    document.querySelectorAll('#streams button').forEach((b) => b.classList.toggle('on', b.dataset.url === url));
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls({ lowLatencyMode: true, backBufferLength: 30 });
      hls.on(Hls.Events.FRAG_LOADED, (_e, d) => { state.httpBytes += d.frag.stats.loaded || 0; });
      hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => {
        const l = hls.levels[d.level];
        $('s-level').textContent = l ? `${l.width}x${l.height} @ ${Math.round(l.bitrate / 1000)} kbit/s` : '–';
      });
      hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) console.warn('hls.js fatal error', d.type, d.details); });
      hls.loadSource(url);
      hls.attachMedia(video);
      state.hls = hls;
    } else {
      video.src = url; // Safari plays HLS natively
    }
    video.play().catch(() => {});
  }

  function render(streams) {
    list.textContent = '';
    if (!streams.length) {
      list.innerHTML = '<li class="empty">No streams yet. Publish to rtmp://HOST:1935/live/NAME</li>';
      return;
    }
    for (const s of streams) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.dataset.url = s.url;
      const r = (s.renditions || [])[0];
      const detail = r && r.width ? `${r.width}x${r.height} ${r.codecs}` : s.kind;
      b.innerHTML = '<strong></strong><small></small>';
      b.querySelector('strong').textContent = s.name;
      b.querySelector('small').textContent = `${s.kind} · ${s.state} · ${detail}`;
      b.onclick = () => play(s.url, s.name);
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  async function refresh() {
    try {
      const r = await fetch('/api/v1/streams');
      const j = await r.json();
      render(j.streams || []);
      return j.streams || [];
    } catch (e) {
      list.innerHTML = '<li class="empty">cannot reach /api/v1/streams</li>';
      return [];
    }
  }

  setInterval(() => {
    const h = state.hls;
    if (h && h.latency !== undefined && isFinite(h.latency)) $('s-latency').textContent = h.latency.toFixed(2) + ' s';
    const b = video.buffered;
    if (b.length) $('s-buffer').textContent = (b.end(b.length - 1) - video.currentTime).toFixed(2) + ' s';
    $('s-http').textContent = state.httpBytes.toLocaleString();
  }, 500);

  (async () => {
    const params = new URLSearchParams(location.search);
    const streams = await refresh();
    setInterval(refresh, 5000);
    if (params.get('url')) return play(params.get('url'));
    const want = params.get('stream');
    const pick = streams.find((s) => s.name === want) || (want ? null : streams[0]);
    if (pick) play(pick.url, pick.name);
    else if (want) play(`/live/${encodeURIComponent(want)}/index.m3u8`, want);
  })();
})();
