// The mediamesh operator console. Polls /api/v1/console/{info,streams,fleet,delivery}
// and /api/v1/publish-keys every second with the admin token (sessionStorage, this tab
// only) and draws what they say; actions go to the write API after a confirmation.
// Charts are uPlot (vendored, /console/uplot.min.js). Nothing here invents numbers:
// where the server has no data the page says so.
'use strict';
(() => {
  const TOKEN_KEY = 'mediamesh-admin-token';
  const PRICE_KEY = 'mediamesh-price-per-gb';
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const state = {
    info: null, streams: null, fleet: null, delivery: null, keys: null,
    lastError: null, lastAction: null, polls: 0, charts: {},
  };
  window.mmConsole = state;

  // ---- token -------------------------------------------------------------------
  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    $('token').value = '';
    poll();
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    poll();
  });

  function status(text, error) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', !!error);
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    // Without a token the call still goes out, so the page shows the server's 401.
    const headers = token() ? { Authorization: 'Bearer ' + token() } : {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let v = null;
    try { v = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const msg = (v && v.error && v.error.message) || r.statusText;
      throw new ApiError(r.status, msg);
    }
    return v;
  }

  // ---- formatting --------------------------------------------------------------
  const fmtBits = (bps) => {
    if (bps == null) return '–';
    if (bps >= 1e9) return (bps / 1e9).toFixed(2) + ' Gbit/s';
    if (bps >= 1e6) return (bps / 1e6).toFixed(2) + ' Mbit/s';
    if (bps >= 1e3) return (bps / 1e3).toFixed(0) + ' kbit/s';
    return bps + ' bit/s';
  };
  const fmtBytes = (b) => {
    if (b == null) return '–';
    const u = ['B', 'kB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
    return b.toFixed(i ? 2 : 0) + ' ' + u[i];
  };
  // Axis numbers with three significant digits, so small rates do not repeat.
  const axisValues = (u, ticks) => ticks.map((t) => (t === 0 ? '0' : Number(t.toPrecision(3)).toString()));
  const money = (x) => (x === 0 ? '0' : x >= 1 ? x.toFixed(2) : x.toPrecision(3));
  const pct = (x) => (x == null || !isFinite(x) ? '–' : (x * 100).toFixed(1) + ' %');

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function button(td, label, data, onClick, danger) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    for (const [k, v] of Object.entries(data)) b.dataset[k] = v;
    if (danger) b.className = 'danger';
    b.addEventListener('click', onClick);
    td.appendChild(b);
    return b;
  }
  function emptyRow(tbody, cols, text) {
    const tr = document.createElement('tr');
    const td = cell(tr, text, 'empty');
    td.colSpan = cols;
    tbody.replaceChildren(tr);
  }

  // ---- confirmation ------------------------------------------------------------
  function confirmAction(text) {
    const d = $('confirm');
    $('confirm-text').textContent = text;
    return new Promise((resolve) => {
      d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
      d.returnValue = '';
      d.showModal();
    });
  }
  async function act(question, method, path, body, done) {
    if (!(await confirmAction(question))) return;
    try {
      const v = await api(method, path, body);
      state.lastAction = done(v);
      status(state.lastAction);
    } catch (e) {
      status(`${method} ${path} failed: ${e.status || ''} ${e.message}`, true);
    }
    poll();
  }

  // ---- streams -----------------------------------------------------------------
  function renderStreams(v) {
    const tbody = $('streams').querySelector('tbody');
    const actions = (state.info && state.info.actions) || {};
    if (!v.streams.length) {
      emptyRow(tbody, 10, 'No streams. Publish to rtmp://HOST:1935/live/NAME (or SRT).');
    } else {
      const rows = v.streams.map((s) => {
        const tr = document.createElement('tr');
        tr.dataset.stream = s.name;
        tr.dataset.state = s.state;
        cell(tr, s.name);
        cell(tr, s.state, 'state state-' + s.state);
        cell(tr, s.source);
        cell(tr, [...new Set(s.renditions.map((r) => r.codecs).filter(Boolean))].join(' / ') || '–');
        cell(tr, fmtBits(s.bitrate));
        cell(tr, s.renditions.map((r) => (r.height ? r.height + 'p' : r.name)).join(', '));
        const vc = cell(tr, String(s.viewers), 'viewers');
        if (s.audience) {
          const a = s.audience;
          const parts = Object.entries(a.regions || {}).map(([r, n]) => `${r}: ${n}`);
          vc.title = `HTTP sessions ${a.http_sessions} (${parts.join(', ') || 'none'}), P2P peers ${a.p2p_peers}` +
            (a.cmcd && a.cmcd.starvation_ratio != null ? `, CMCD stall ratio ${(a.cmcd.starvation_ratio * 100).toFixed(1)} %` : '');
        }
        cell(tr, s.media_age_seconds == null ? '–' : s.media_age_seconds.toFixed(1) + ' s');
        cell(tr, s.p2p == null ? 'n/a' : s.p2p ? 'on' : 'off');
        const td = cell(tr, '');
        const live = s.state === 'live';
        if (live) {
          button(td, 'Preview', { action: 'preview', stream: s.name }, () => preview(s));
        }
        if (actions.kick && live) {
          button(td, 'Kick', { action: 'kick', stream: s.name }, () => act(
            `Kick the publisher of "${s.name}"? The stream ends for every viewer.`,
            'POST', `/api/v1/streams/${encodeURIComponent(s.name)}/kick`, undefined,
            () => `Publisher of ${s.name} kicked.`), true);
        }
        if (actions.p2p && s.p2p != null && s.state !== 'ended') {
          const to = !s.p2p;
          button(td, to ? 'P2P on' : 'P2P off', { action: 'p2p', stream: s.name }, () => act(
            `Turn P2P ${to ? 'on' : 'off'} for "${s.name}"?`,
            'PUT', `/api/v1/streams/${encodeURIComponent(s.name)}/p2p`, { enabled: to },
            (r) => `P2P for ${s.name} is now ${r.p2p ? 'on' : 'off'}.`), !to);
        }
        return tr;
      });
      tbody.replaceChildren(...rows);
    }
    $('streams-notes').textContent = (v.notes || []).map((n) => '* ' + n).join(' · ');
  }

  let hls = null;
  function loadHls() {
    if (window.Hls) return Promise.resolve();
    const base = (state.info && state.info.play_base) || '';
    return new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = base + '/vendor/hls.min.js';
      s.onload = resolve;
      s.onerror = () => reject(new Error('cannot load hls.js from ' + s.src));
      document.head.appendChild(s);
    });
  }
  async function preview(s) {
    const url = s.play_url || s.url;
    $('preview').hidden = false;
    $('preview-name').textContent = s.name;
    const video = $('preview-video');
    try {
      await loadHls();
      if (hls) hls.destroy();
      if (window.Hls && window.Hls.isSupported()) {
        hls = new window.Hls({ lowLatencyMode: true });
        hls.loadSource(url);
        hls.attachMedia(video);
      } else {
        video.src = url;
      }
      video.muted = true;
      video.play().catch(() => {});
    } catch (e) {
      status('Preview: ' + e.message, true);
    }
  }
  $('preview-close').addEventListener('click', () => {
    if (hls) { hls.destroy(); hls = null; }
    const v = $('preview-video');
    v.removeAttribute('src');
    v.load();
    $('preview').hidden = true;
  });

  // ---- charts ------------------------------------------------------------------
  function chartWidth(id) {
    return Math.max(260, Math.floor($(id).getBoundingClientRect().width || 320));
  }
  function lineChart(id, series, yLabel) {
    return new uPlot({
      width: chartWidth(id), height: 220,
      series: [{}, ...series.map(([label, stroke, fill]) => ({ label, stroke, fill, width: 2, spanGaps: false }))],
      axes: [{}, { label: yLabel, size: 60, values: axisValues }],
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      legend: { live: false },
    }, [[], ...series.map(() => [])], $(id));
  }
  function ensureCharts() {
    if (state.charts.bytes || !window.uPlot) return;
    state.charts.bytes = lineChart('chart-bytes', [
      ['origin', '#8250df'], ['edges', '#0969da'], ['peers (P2P)', '#1a7f37', 'rgba(26,127,55,0.12)'],
    ], 'Mbit/s');
    state.charts.offload = lineChart('chart-offload', [['P2P offload %', '#1a7f37', 'rgba(26,127,55,0.15)']], '%');
    // Edges and origins side by side in each region.
    const barsLeft = uPlot.paths.bars({ size: [0.35, 60], align: -1 });
    const barsRight = uPlot.paths.bars({ size: [0.35, 60], align: 1 });
    state.charts.regions = new uPlot({
      width: chartWidth('chart-regions'), height: 220,
      series: [{}, { label: 'edges', fill: 'rgba(9,105,218,0.6)', stroke: '#0969da', paths: barsLeft, points: { show: false } },
        { label: 'origins', fill: 'rgba(130,80,223,0.6)', stroke: '#8250df', paths: barsRight, points: { show: false } }],
      // One slot per region: x is the region's index, set in renderFleet.
      scales: { x: { time: false, auto: false, min: -0.5, max: 0.5 },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [{ splits: () => (state.regionNames || []).map((_, i) => i),
        values: (u, ticks) => ticks.map((t) => (state.regionNames || [])[t] || '') },
        { label: 'Mbit/s', size: 60, values: axisValues }],
      legend: { live: false },
    }, [[], [], []], $('chart-regions'));
    window.addEventListener('resize', () => {
      for (const [id, c] of [['chart-bytes', state.charts.bytes], ['chart-offload', state.charts.offload], ['chart-regions', state.charts.regions]]) {
        c.setSize({ width: chartWidth(id), height: 220 });
      }
    });
  }

  // ---- delivery ----------------------------------------------------------------
  const priceInput = $('price');
  priceInput.value = localStorage.getItem(PRICE_KEY) || '0.02';
  priceInput.addEventListener('input', () => {
    localStorage.setItem(PRICE_KEY, priceInput.value);
    if (state.delivery) renderDelivery(state.delivery);
  });

  function renderDelivery(v) {
    ensureCharts();
    const secs = v.interval_seconds || 2;
    const xs = [], origin = [], edge = [], p2p = [], offload = [];
    let p2pSum = 0, httpSum = 0, cmcdReq = 0, cmcdStall = 0, hasP2p = false, hasCmcd = false;
    for (const s of v.samples) {
      xs.push(s.t_ms / 1000);
      const mbps = (b) => (b == null ? null : (b * 8) / secs / 1e6);
      origin.push(mbps(s.origin_bytes));
      edge.push(mbps(s.edge_bytes));
      p2p.push(mbps(s.p2p_bytes));
      const http = v.viewer_tier === 'edge' ? s.edge_bytes : s.origin_bytes;
      if (s.p2p_bytes != null) {
        hasP2p = true;
        const total = s.p2p_bytes + (http || 0);
        offload.push(total > 0 ? (100 * s.p2p_bytes) / total : null);
        p2pSum += s.p2p_bytes;
      } else {
        offload.push(null);
      }
      httpSum += http || 0;
      if (s.cmcd_requests != null) {
        hasCmcd = true;
        cmcdReq += s.cmcd_requests;
        cmcdStall += s.cmcd_stalls || 0;
      }
    }
    state.charts.bytes.setData([xs, origin, edge, p2p]);
    state.charts.offload.setData([xs, offload]);
    const price = Number(priceInput.value);
    $('kpi-p2p').textContent = hasP2p ? fmtBytes(p2pSum) : 'no P2P data';
    $('kpi-offload').textContent = hasP2p ? pct(p2pSum + httpSum > 0 ? p2pSum / (p2pSum + httpSum) : null) : 'no P2P data';
    $('kpi-saved').textContent = hasP2p && isFinite(price) ? money((p2pSum / 1e9) * price) : '–';
    $('kpi-stall').textContent = hasCmcd && cmcdReq > 0
      ? pct(cmcdStall / cmcdReq) + ` (${cmcdStall}/${cmcdReq})` : 'no CMCD data';
    $('kpi-startup').textContent = 'not in CMCD';
    $('delivery-notes').replaceChildren(...(v.notes || []).map((n) => {
      const li = document.createElement('li');
      li.textContent = n;
      return li;
    }));
  }

  // ---- fleet -------------------------------------------------------------------
  function renderFleet(v) {
    ensureCharts();
    $('registry').textContent = v.registry ? 'registry: ' + v.registry + (v.store_up === false ? ' (unreachable)' : '') : 'no registry';
    const tbody = $('fleet').querySelector('tbody');
    const actions = (state.info && state.info.actions) || {};
    if (!v.nodes.length) {
      emptyRow(tbody, 10, v.registry ? 'No nodes registered.' : 'No registry: this process sees no fleet.');
    } else {
      tbody.replaceChildren(...v.nodes.map((n) => {
        const tr = document.createElement('tr');
        tr.dataset.node = n.id;
        const name = cell(tr, n.id);
        name.title = n.public_url;
        cell(tr, n.kind);
        cell(tr, n.region);
        cell(tr, n.draining ? 'draining' : n.health, n.health === 'ok' ? 'health-ok' : 'health-bad');
        cell(tr, pct(n.utilization));
        cell(tr, String(n.connections));
        cell(tr, n.p2p_peers ? `${n.viewers || 0} · ${n.p2p_peers} peers` : String(n.viewers || 0));
        cell(tr, fmtBits(n.egress_bps));
        cell(tr, n.hit_ratio == null ? 'not reported' : pct(n.hit_ratio));
        const td = cell(tr, '');
        if (actions.drain && n.kind === 'edge') {
          const to = !n.draining;
          button(td, to ? 'Drain' : 'Undrain', { action: 'drain', node: n.id }, () => act(
            to ? `Drain edge ${n.id}? The router sends it no new viewers.` : `Give edge ${n.id} viewers again?`,
            'PUT', `/api/v1/edges/${encodeURIComponent(n.id)}/drain`, { draining: to },
            (r) => `Edge ${n.id} is ${r.draining ? 'draining' : 'taking viewers'}.`), to);
        }
        return tr;
      }));
    }
    const regions = [...new Set(v.nodes.map((n) => n.region))].sort();
    state.regionNames = regions;
    const sum = (kind) => regions.map((r) => v.nodes.filter((n) => n.region === r && n.kind === kind)
      .reduce((a, n) => a + n.egress_bps / 1e6, 0));
    state.charts.regions.setData([regions.map((_, i) => i), sum('edge'), sum('origin')], false);
    state.charts.regions.setScale('x', { min: -0.5, max: Math.max(regions.length, 1) - 0.5 });
    $('fleet-notes').textContent = (v.notes || []).join(' · ');
  }

  // ---- keys --------------------------------------------------------------------
  function renderKeys(v) {
    const tbody = $('keys').querySelector('tbody');
    const rows = [];
    for (const s of v.streams) {
      if (!s.keys.length) {
        const tr = document.createElement('tr');
        cell(tr, s.stream);
        cell(tr, 'locked (every key revoked)', 'empty');
        cell(tr, ''); cell(tr, ''); cell(tr, '');
        rows.push(tr);
      }
      for (const k of s.keys) {
        const tr = document.createElement('tr');
        tr.dataset.key = k.id;
        cell(tr, s.stream);
        cell(tr, k.id);
        cell(tr, k.added_ms ? new Date(k.added_ms).toLocaleString() : '–');
        cell(tr, typeof k.source === 'string' ? k.source : JSON.stringify(k.source));
        const td = cell(tr, '');
        button(td, 'Revoke', { action: 'revoke', stream: s.stream, key: k.id }, () => act(
          `Revoke key ${k.id} of "${s.stream}"? Publishers using it are refused at their next publish.`,
          'DELETE', `/api/v1/publish-keys/${encodeURIComponent(s.stream)}/${encodeURIComponent(k.id)}`, undefined,
          (r) => `Revoked ${r.revoked} key(s) of ${s.stream}.`), true);
        rows.push(tr);
      }
    }
    if (rows.length) tbody.replaceChildren(...rows);
    else emptyRow(tbody, 5, 'No publish keys: ' + (v.require_keys ? 'every publish is refused (--require-keys).' : 'any stream name may be published.'));
  }
  $('key-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const stream = $('key-stream').value.trim();
    if (!stream || !(await confirmAction(`Add a publish key for "${stream}"?`))) return;
    try {
      const r = await api('POST', '/api/v1/publish-keys', { stream });
      const p = $('new-key');
      p.hidden = false;
      p.textContent = `New key for ${r.stream} (shown once, copy it now): ${r.key}`;
      $('key-stream').value = '';
    } catch (err) {
      status(`Adding a key failed: ${err.status || ''} ${err.message}`, true);
    }
    poll();
  });

  // ---- polling -----------------------------------------------------------------
  let timer = null;
  let running = false;
  async function poll() {
    clearTimeout(timer);
    timer = setTimeout(poll, POLL_MS);
    if (running) return;
    running = true;
    try {
      if (!state.info) {
        state.info = await api('GET', '/api/v1/console/info');
        $('role').textContent = state.info.role;
        $('keys-section').hidden = !state.info.actions.keys;
      }
      const [streams, fleet, delivery] = await Promise.all([
        api('GET', '/api/v1/console/streams'),
        api('GET', '/api/v1/console/fleet'),
        api('GET', '/api/v1/console/delivery'),
      ]);
      state.streams = streams; state.fleet = fleet; state.delivery = delivery;
      renderStreams(streams);
      renderFleet(fleet);
      renderDelivery(delivery);
      if (state.info.actions.keys) {
        state.keys = await api('GET', '/api/v1/publish-keys');
        renderKeys(state.keys);
      }
      state.polls++;
      state.lastError = null;
      status(`Live · updated ${new Date().toLocaleTimeString()}` +
        (state.lastAction ? ' · ' + state.lastAction : ''));
    } catch (e) {
      state.lastError = { status: e.status || 0, message: e.message };
      if (e.status === 401) status('401: the API wants the admin token (--admin-token, or the file DATA/admin-token). Enter it above.', true);
      else if (e.status === 403) status('403: that admin token is wrong. Enter the right one above.', true);
      else status('The API did not answer: ' + (e.status ? e.status + ' ' : '') + e.message, true);
      if (e.status === 401 || e.status === 403) {
        // Wait for a new token instead of knocking every second.
        state.info = null;
        clearTimeout(timer);
      }
    } finally {
      running = false;
    }
  }
  poll();
})();
