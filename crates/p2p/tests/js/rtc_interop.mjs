// Drives headless Chromium (Debian's /usr/bin/chromium via playwright-core from
// web/node_modules) through rtc_page.js: one browser peer that joins the swarm on
// our tracker and exchanges binary data-channel messages with a native peer.
// Prints one JSON line; exit 0 = every byte echoed back intact.
//
//   node rtc_interop.mjs ws://127.0.0.1:PORT/tracker INFOHASH_HEX offer|answer [timeout_s]
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../../../web/package.json'));
const { chromium } = require('playwright-core');

const [trackerUrl, infoHashHex, role, secs] = process.argv.slice(2);
if (!trackerUrl || !/^[0-9a-f]{40}$/.test(infoHashHex || '') || !['offer', 'answer'].includes(role)) {
  console.error('usage: rtc_interop.mjs TRACKER_URL INFOHASH_HEX offer|answer [timeout_s]');
  process.exit(2);
}
const timeoutMs = Number(secs || 60) * 1000;
const extra = (process.env.RTC_CHROMIUM_FLAGS || '').split(' ').filter(Boolean);
// playwright always starts Chromium with a fresh temporary --user-data-dir.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ...extra,
  ],
});
let result = { ok: false };
try {
  const page = await browser.newPage();
  const log = [];
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  // Chromium blocks about:blank -> loopback WebSockets (local network access
  // checks), so the page comes from the tracker's own origin: the test serves an
  // empty page at `/` beside `/tracker`.
  const origin = new URL(trackerUrl.replace(/^ws/, 'http')).origin;
  await page.goto(`${origin}/`, { timeout: 15000 });
  await page.addScriptTag({ path: path.join(here, 'rtc_page.js') });
  result = await page.evaluate((a) => window.runPeer(a), {
    trackerUrl, infoHashHex, role, sizes: [1, 64 * 1024, 2 * 1024 * 1024], timeoutMs,
  });
  if (!result.ok) result.console = log.slice(-20);
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
