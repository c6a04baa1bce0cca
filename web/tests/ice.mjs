// Opens the mediamesh player page in headless Chromium and records the configuration
// of every RTCPeerConnection the page creates (an init script wraps the constructor
// before any page script runs). p2p-media-loader makes its offers as soon as it
// announces, so a single viewer is enough. Prints one JSON line: the ICE servers the
// page reports (`window.mediamesh.p2p.iceServers`) and the `iceServers` each
// connection got (credentials replaced by their length), and whether ICE gathering
// started. Exit 0 when at least one connection was made.
//
//   node web/tests/ice.mjs URL [timeout_s]
import { launch } from './chromium.mjs';

const url = process.argv[2];
const limit = Number(process.argv[3] || 30) * 1000;
if (!url) {
  console.error('usage: ice.mjs URL [timeout_s]');
  process.exit(2);
}
const started = Date.now();
const browser = await launch(['--disable-features=WebRtcHideLocalIpsWithMdns']);
let result = { ok: false };
const log = [];
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (log.length < 100) log.push(`[${m.type()}] ${m.text()}`); });
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    window.__pcConfigs = [];
    window.RTCPeerConnection = class extends Native {
      constructor(config, ...rest) {
        const servers = ((config && config.iceServers) || []).map((s) => ({
          urls: s.urls,
          username: s.username,
          credential_len: typeof s.credential === 'string' ? s.credential.length : null,
        }));
        if (window.__pcConfigs.length < 20) window.__pcConfigs.push(servers);
        super(config, ...rest);
        // ICE gathering started: the STUN binding requests go out from here on.
        this.addEventListener('icegatheringstatechange', () => {
          if (this.iceGatheringState !== 'new') window.__gathering = true;
        });
      }
    };
  });
  await page.goto(url, { timeout: 15000 });
  let s = null;
  while (Date.now() - started < limit) {
    s = await page.evaluate(() => ({
      p2p_enabled: !!(window.mediamesh && window.mediamesh.p2p && window.mediamesh.p2p.enabled),
      reason: window.mediamesh && window.mediamesh.p2p && window.mediamesh.p2p.reason,
      page_ice: (window.mediamesh && window.mediamesh.p2p && window.mediamesh.p2p.iceServers) || [],
      pc_configs: window.__pcConfigs,
      gathering: !!window.__gathering,
    }));
    // Not only made: gathering, so that the browser is not closed before its ICE
    // agent sends anything (a loaded machine is slow between the two).
    if (s.pc_configs.length > 0 && s.gathering) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  if (s && s.gathering) {
    // A moment for the binding requests to leave before the browser closes.
    await new Promise((r) => setTimeout(r, 2000));
  }
  result = Object.assign({ ok: !!(s && s.pc_configs.length > 0) }, s);
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  result.waited_s = (Date.now() - started) / 1000;
  if (!result.ok) result.logs = log.slice(-30);
  await browser.close().catch(() => {});
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
