// Fetches paths from HTTPS origins over HTTP/3 in Debian's headless Chromium (or
// $CHROMIUM): QUIC is forced to each origin (--origin-to-force-quic-on), and the test's
// self-signed certificate is accepted by its SPKI hash (--ignore-certificate-errors-
// spki-list), as a browser that learned `Alt-Svc: h3` would connect. For each origin a
// page opens ORIGIN/healthz, then fetch()es the paths in order; prints one JSON line:
// {"ok":true,"origins":[{"origin","navigation":PROTO,"fetches":[{path,status,
// x_cache,length,head,protocol}]}]} where PROTO/protocol are Resource Timing's
// nextHopProtocol ("h3" over HTTP/3). Exit 0 when every page and fetch completed.
//
//   node web/tests/h3.mjs SPKI_BASE64 'https://127.0.0.1:8443|/a|/b' ['https://…|/c']…
import { chromium } from 'playwright-core';

const [spki, ...specs] = process.argv.slice(2);
if (!spki || specs.length === 0) {
  console.error('usage: h3.mjs SPKI_BASE64 ORIGIN|/path|/path …');
  process.exit(2);
}
const jobs = specs.map((s) => {
  const [origin, ...paths] = s.split('|');
  return { origin, paths };
});
const hosts = jobs.map((j) => new URL(j.origin).host).join(',');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--enable-quic', `--origin-to-force-quic-on=${hosts}`,
    `--ignore-certificate-errors-spki-list=${spki}`,
  ],
});
let result = { ok: false };
try {
  const origins = [];
  for (const job of jobs) {
    const page = await browser.newPage();
    const log = [];
    page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
    await page.goto(`${job.origin}/healthz`, { timeout: 15000 });
    const seen = await page.evaluate(async (paths) => {
      const fetches = [];
      for (const path of paths) {
        const r = await fetch(path);
        const body = new Uint8Array(await r.arrayBuffer());
        fetches.push({
          path, status: r.status, x_cache: r.headers.get('x-cache'), length: body.length,
          head: new TextDecoder().decode(body.slice(0, 7)),
        });
      }
      const entries = performance.getEntriesByType('resource');
      for (const f of fetches) {
        const e = entries.find((x) => x.name.endsWith(f.path));
        f.protocol = e ? e.nextHopProtocol : null;
      }
      const nav = performance.getEntriesByType('navigation')[0];
      return { navigation: nav ? nav.nextHopProtocol : null, fetches };
    }, job.paths);
    origins.push({ origin: job.origin, ...seen, log: log.slice(-10) });
    await page.close();
  }
  result = { ok: true, origins };
} catch (e) {
  result = { ok: false, error: String(e) };
}
await browser.close();
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
