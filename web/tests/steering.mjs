// hls.js in headless Chromium playing a stream through the mediamesh router with HLS
// Content Steering. Phase 1: play until currentTime has advanced 3 s, then print
// {"phase":"playing","host":...} (the edge serving the fragments) and wait for a line
// on stdin (the test kills that edge meanwhile). Phase 2: wait until fragments come
// from another host and currentTime advances 3 s more; print the final JSON line.
// Exit 0 = switched pathway and kept playing.
//
//   node web/tests/steering.mjs PAGE_ORIGIN ROUTER_PLAYLIST_URL [timeout_s]
import { launch } from './chromium.mjs';
import readline from 'node:readline';

const [pageOrigin, src] = process.argv.slice(2, 4);
const limit = Number(process.argv[4] || 60) * 1000;
if (!pageOrigin || !src) {
  console.error('usage: steering.mjs PAGE_ORIGIN ROUTER_PLAYLIST_URL [timeout_s]');
  process.exit(2);
}
const stdin = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdin.once('line', resolve));

const browser = await launch();
let result = { ok: false };
const log = [];
try {
  const page = await browser.newPage();
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  // A page on the origin (hls.js comes from there); media comes cross-origin.
  await page.goto(`${pageOrigin}/healthz`, { timeout: 15000 });
  await page.setContent('<video id="video" muted autoplay playsinline></video>');
  await page.addScriptTag({ url: `${pageOrigin}/vendor/hls.min.js` });
  await page.evaluate((url) => {
    const s = { hosts: [], pathways: [], steering: 0, errors: [] };
    window.steer = s;
    const hls = new Hls({ backBufferLength: 10 });
    hls.on(Hls.Events.FRAG_LOADED, (_e, d) => {
      try {
        const u = (d.part && d.part.url) || d.frag.url;
        if (!u) return;
        const h = new URL(u).host;
        if (s.hosts[s.hosts.length - 1] !== h) s.hosts.push(h);
      } catch (e) { s.errors.push(`frag url: ${e}`); }
    });
    hls.on(Hls.Events.STEERING_MANIFEST_LOADED, (_e, d) => {
      s.steering += 1;
      try {
        const p = (d.steeringManifest && d.steeringManifest['PATHWAY-PRIORITY']) || [];
        s.pathways.push(p.join(','));
      } catch (e) { s.errors.push(`steering: ${e}`); }
    });
    hls.on(Hls.Events.ERROR, (_e, d) => s.errors.push(
      `${d.fatal ? 'FATAL ' : ''}${d.details}${d.error ? ': ' + d.error.message : ''}${d.event ? ' in ' + d.event : ''}`));
    hls.loadSource(url);
    hls.attachMedia(document.getElementById('video'));
    window.hls = hls;
  }, src);
  const state = () => page.evaluate(() => {
    const v = document.getElementById('video');
    const s = window.steer;
    return {
      t: v.currentTime, error: v.error && v.error.message,
      host: s.hosts[s.hosts.length - 1] || null, hosts: s.hosts.slice(),
      steering: s.steering, pathways: s.pathways.slice(-3),
      errors: s.errors.slice(-10), fatal: s.errors.some((e) => e.startsWith('FATAL')),
    };
  });
  const start = Date.now();
  // Phase 1.
  let first = null;
  let s = await state();
  while (Date.now() - start < limit) {
    s = await state();
    if (first === null && s.t > 0) first = s.t;
    if (first !== null && s.t >= first + 3 && s.host && s.steering > 0) break;
    if (s.error || s.fatal) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!(first !== null && s.t >= first + 3 && s.host && s.steering > 0)) {
    result = { ok: false, phase: 'start', state: s, log: log.slice(-20) };
  } else {
    const before = s.host;
    console.log(JSON.stringify({ phase: 'playing', host: before, t: s.t }));
    await nextLine();
    const killedAt = Date.now();
    const tAtKill = (await state()).t;
    let switchedAt = null;
    while (Date.now() - start < limit) {
      s = await state();
      if (switchedAt === null && s.host && s.host !== before) switchedAt = Date.now();
      if (switchedAt !== null && s.t >= tAtKill + 3) {
        result = {
          ok: true, from: before, to: s.host, hosts: s.hosts,
          switch_s: (switchedAt - killedAt) / 1000, played_after_kill_s: s.t - tAtKill,
          steering_manifests: s.steering, last_priorities: s.pathways, errors: s.errors,
        };
        break;
      }
      if (s.error || s.fatal) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    if (!result.ok) result = { ok: false, phase: 'switch', from: before, state: s, log: log.slice(-20) };
  }
} catch (e) {
  result = { ok: false, error: String(e), log: log.slice(-20) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
