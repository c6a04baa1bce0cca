// One viewer of the mediamesh player page in headless Chromium whose only peer sends
// corrupted segments (`mediamesh peer --corrupt-uploads 1`, started by the caller ahead
// of the page, so it holds the segments the page asks peers for). Waits until the page
// rejected a segment and banned that peer, the banned peer came back through the
// tracker and was refused (run the tracker with a short --tracker-interval so it
// re-announces), and the video played `after_s` more seconds after the ban; gives up
// after `timeout_s`. Prints one JSON line; exit 0 when:
//   - a peer was banned after a rejected segment,
//   - its later offers/answers were refused (ban.js counters) at least once,
//   - no download from it started after the ban and it never showed up as a
//     connected peer again,
//   - the video kept playing (`after_s` seconds of playback after the ban).
//
//   node web/tests/ban_p2p.mjs URL [timeout_s] [after_s]
import { launch, P2P_FLAGS } from './chromium.mjs';

const url = process.argv[2];
const limit = Number(process.argv[3] || 120) * 1000;
const after = Number(process.argv[4] || 30) * 1000;
if (!url) {
  console.error('usage: ban_p2p.mjs URL [timeout_s] [after_s]');
  process.exit(2);
}
const started = Date.now();
const browser = await launch(P2P_FLAGS);
let result = { ok: false };
const log = [];
try {
  const page = await browser.newPage();
  page.on('console', (m) => { if (log.length < 300) log.push(`[${m.type()}] ${m.text()}`); });
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(url, { timeout: 15000 });
  let bannedAt = null; // wall clock (ms) and video time when the first ban was seen
  let tAtBan = 0;
  let seenBannedConnected = 0;
  let s = null;
  while (Date.now() - started < limit) {
    s = await page.evaluate(() => {
      const v = document.getElementById('video');
      const p = (window.mediamesh && window.mediamesh.p2p) || {};
      const b = p.banned || {};
      return {
        t: v.currentTime, error: v.error && v.error.message,
        p2p_enabled: !!p.enabled, reason: p.reason,
        http_bytes: p.httpBytes || 0, p2p_bytes: p.p2pBytes || 0,
        p2p_segments: p.p2pSegments || 0, http_segments: p.httpSegments || 0,
        verified: p.verified || 0, rejected: p.rejected || 0,
        reasons: (p.integrity && p.integrity.reasons) || {},
        peer_ids: p.peerIds || [], bans: b.bans || 0, banned_ids: b.bannedIds || [],
        refused_offers: b.refusedOffers || 0, refused_answers: b.refusedAnswers || 0,
        refused_descriptions: b.refusedDescriptions || 0,
        closed_connections: b.closedConnections || 0,
        segments_from_banned: p.segmentsFromBanned || 0,
        errors: (p.errors || []).slice(-5),
        panel_banned: (document.getElementById('s-banned') || {}).textContent,
      };
    });
    if (s.error) { result = { ok: false, error: s.error }; break; }
    if (bannedAt === null && s.bans > 0) { bannedAt = Date.now(); tAtBan = s.t; }
    if (bannedAt !== null && s.peer_ids.some((id) => s.banned_ids.includes(id))) seenBannedConnected++;
    const refused = s.refused_offers + s.refused_answers + s.refused_descriptions;
    if (bannedAt !== null && s.t - tAtBan >= after / 1000 && refused > 0) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  if (!result.error) {
    const refused = s.refused_offers + s.refused_answers + s.refused_descriptions;
    const playedAfterBan = bannedAt === null ? 0 : s.t - tAtBan;
    result = {
      ok: bannedAt !== null && s.rejected >= 1 && refused > 0 && s.segments_from_banned === 0
        && seenBannedConnected === 0 && playedAfterBan >= after / 1000,
      banned_after_s: bannedAt === null ? null : (bannedAt - started) / 1000,
      played_after_ban_s: playedAfterBan,
      seen_banned_connected: seenBannedConnected,
      stats: s,
    };
  }
} catch (e) {
  result = { ok: false, error: String(e) };
} finally {
  result.waited_s = (Date.now() - started) / 1000;
  if (!result.ok) result.logs = log.slice(-40);
  await browser.close().catch(() => {});
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
