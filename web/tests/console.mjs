// Drives the operator console (/console) in headless Chromium for the e2e tests in
// crates/mediamesh/tests/e2e/browser_console.rs. Prints one JSON line; exit 0 = ok.
//
//   node web/tests/console.mjs kick CONSOLE_URL TOKEN OUT_DIR PLAYLIST_URL STREAM
//     1. no token: the page's API calls get 401 and the page says so; a wrong token:
//        403 and the page says so; the right token: the page goes live;
//     2. writes OUT_DIR/ready, then waits (bounded) until PLAYLIST_URL answers 200
//        (the publish is live) and gives the page at most 2 s from then to list
//        STREAM as live;
//     3. plays the stream's preview (muted hls.js) until it advances;
//     4. kicks the publisher from the page (confirmation accepted) and waits
//        (bounded) until the page shows the stream ended.
//   node web/tests/console.mjs offload CONSOLE_URL TOKEN OUT_DIR
//     waits (bounded) until the offload chart holds points with P2P bytes.
//   node web/tests/console.mjs viewers CONSOLE_URL TOKEN OUT_DIR STREAM EXPECTED
//     waits (bounded) until STREAM's viewer cell reads EXPECTED (the fleet's total),
//     and reports the cell's breakdown (its title).
// Screenshots go to OUT_DIR (console-*.png).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from './chromium.mjs';

const [mode, url, token, out, playlist, stream] = process.argv.slice(2);
// viewers mode: STREAM EXPECTED in the places of PLAYLIST_URL STREAM.
if (!mode || !url || !token || !out) {
  console.error('usage: console.mjs kick|offload CONSOLE_URL TOKEN OUT_DIR [PLAYLIST_URL STREAM]');
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const result = { ok: false, mode, screenshots: [] };
const browser = await launch();
const log = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  const statuses = [];
  page.on('response', (r) => {
    if (r.url().includes('/api/v1/console/')) statuses.push(r.status());
  });
  const shot = async (name, full = true) => {
    const path = join(out, name);
    await page.screenshot({ path, fullPage: full });
    result.screenshots.push(path);
  };
  const statusText = () => page.locator('#status').textContent();
  const waitStatus = async (what, test, limit) => {
    const until = Date.now() + limit;
    for (;;) {
      const t = await statusText();
      if (test(t)) return t;
      if (Date.now() > until) throw new Error(`${what}: status still ${JSON.stringify(t)}`);
      await sleep(100);
    }
  };
  const login = async (t) => {
    await page.fill('#token', t);
    await page.click('#token-form button[type=submit]');
  };

  await page.goto(url, { timeout: 15000 });
  if (mode === 'kick') {
    result.no_token_status = await waitStatus('no token', (t) => t.startsWith('401'), 10000);
    result.no_token_http = [...new Set(statuses)];
    await shot('console-401.png', false);
    statuses.length = 0;
    await login('not-the-admin-token-at-all');
    result.wrong_token_status = await waitStatus('wrong token', (t) => t.startsWith('403'), 10000);
    result.wrong_token_http = [...new Set(statuses)];
  }
  await login(token);
  await waitStatus('right token', (t) => t.startsWith('Live'), 10000);

  if (mode === 'kick') {
    writeFileSync(join(out, 'ready'), 'ready\n');
    // The publish is live once its playlist answers.
    const until = Date.now() + 60000;
    for (;;) {
      const r = await fetch(playlist).catch(() => null);
      if (r && r.ok) break;
      if (Date.now() > until) throw new Error('the publish never went live: ' + playlist);
      await sleep(100);
    }
    const live = Date.now();
    const row = `tr[data-stream="${stream}"][data-state="live"]`;
    await page.waitForSelector(row, { timeout: 2000 });
    result.listed_after_live_ms = Date.now() - live;
    // A few more polls so the charts and bit rate have something to show.
    await page.waitForFunction(() => (window.mmConsole.delivery?.samples?.length || 0) >= 3, null, { timeout: 20000 });
    // The preview plays the stream muted (hls.js from the viewers' side).
    await page.click(`button[data-action="preview"][data-stream="${stream}"]`);
    await page.waitForFunction(() => document.getElementById('preview-video').currentTime > 0.5, null, { timeout: 30000 });
    result.preview_time = await page.evaluate(() => document.getElementById('preview-video').currentTime);
    await shot('console-live.png');
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(300);
    await shot('console-phone.png');
    await page.setViewportSize({ width: 1280, height: 900 });

    await page.click(`button[data-action="kick"][data-stream="${stream}"]`);
    await page.waitForSelector('#confirm[open]', { timeout: 5000 });
    result.dialog = await page.locator('#confirm-text').textContent();
    await page.click('#confirm-ok');
    await page.waitForSelector(`tr[data-stream="${stream}"][data-state="ended"]`, { timeout: 30000 });
    result.after_kick_status = await statusText();
    await shot('console-kicked.png');
    result.ok = result.no_token_http.every((s) => s === 401) && result.wrong_token_http.every((s) => s === 403)
      && result.no_token_http.length > 0 && result.wrong_token_http.length > 0;
  } else if (mode === 'offload') {
    await page.waitForFunction(() => {
      const c = window.mmConsole.charts.offload;
      return c && c.data[1].some((v) => v != null && v > 0);
    }, null, { timeout: 90000, polling: 500 });
    result.offload_points = await page.evaluate(() => window.mmConsole.charts.offload.data[1].filter((v) => v != null && v > 0).length);
    result.p2p_bytes = await page.evaluate(() => window.mmConsole.delivery.samples.reduce((a, s) => a + (s.p2p_bytes || 0), 0));
    result.kpi_offload = await page.locator('#kpi-offload').textContent();
    result.kpi_saved = await page.locator('#kpi-saved').textContent();
    await shot('console-offload.png');
    result.ok = result.offload_points > 0;
  } else if (mode === 'viewers') {
    const [name, expected] = [playlist, stream];
    const cell = `tr[data-stream="${name}"] td.viewers`;
    await page.waitForSelector(cell, { timeout: 30000 });
    const seen = [];
    const until = Date.now() + 60000;
    for (;;) {
      const t = (await page.locator(cell).textContent()).trim();
      if (seen[seen.length - 1] !== t) seen.push(t);
      if (t === expected) break;
      if (Date.now() > until) throw new Error(`the viewer cell read ${JSON.stringify(seen)}, never ${expected}`);
      await sleep(200);
    }
    result.viewers_cell = await page.locator(cell).textContent();
    result.viewers_title = await page.locator(cell).getAttribute('title');
    result.viewers_seen = seen;
    await shot('console-viewers.png');
    result.ok = true;
  } else {
    throw new Error('unknown mode ' + mode);
  }
} catch (e) {
  result.error = String(e);
  result.log = log.slice(-20);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
