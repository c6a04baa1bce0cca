//! Part-level scheduling for low latency (`--latency low|balanced`): which LL-HLS
//! part to take from HTTP (the CDN) and which from a peer.
//!
//! A **pull mesh**: every peer announces the parts it holds (verified) to its
//! neighbours, and a peer that wants a part asks one of the holders. The elected
//! fetcher of a new part (rendezvous hash over the peers a viewer sees, the same
//! election as for whole segments) takes it from the CDN at once — for the part the
//! playlist's preload hint names, that is a blocking GET that returns when the part
//! is complete — and the others wait for its announcement, then pull it. The next in
//! rank steps in after [`PartConfig::seed_stagger_ms`] if nobody announced it, and a
//! part whose playback is less than the urgent window away always comes over HTTP,
//! so a slow or lying peer costs bandwidth, never a stall.
//!
//! The urgent window is [`PartConfig::urgent_ms`] or, when HTTP is slower than that
//! allows for, twice the time HTTP has lately taken for a complete part (plus
//! [`PartConfig::urgent_margin_ms`]), up to [`PartConfig::max_urgent_ms`]. A fixed
//! 300 ms holds on a fast link; on a slow or busy one, a peer request that timed out
//! at the edge of a fixed window left the HTTP fetch too little time, and the viewer
//! stalled. The estimate rises at once with a slow fetch and falls slowly.
//!
//! A peer request waits at most [`PartConfig::peer_wait_factor`] times what peer
//! transfers have lately taken (at least [`PartConfig::min_peer_wait_ms`], at most
//! [`PartConfig::peer_timeout_ms`]), not until the part turns urgent: a holder that
//! is slow to answer (a busy machine, a congested link) is given up while there is
//! still time for the CDN, instead of at the edge of the urgent window where HTTP
//! must then win a race against the playhead. A part gets one slow peer try: once a
//! request for it timed out, or its bytes failed the check, or its holder left, it
//! comes over HTTP. Asking the next holder spent the time a busy machine needs for
//! the HTTP fetch, and the viewer stalled where P2P off did not. For the same reason
//! a part is asked of a peer only while one whole peer wait still fits before it
//! turns urgent: a part learnt of late (a slow playlist reload, a late announcement,
//! a process that stood still) comes over HTTP at once, with the urgent window and
//! the peer wait both left for it, instead of a short peer try first or a wait for
//! the urgent window. An "absent" answer
//! (the holder has no free upload slot, or dropped the part) comes back within a
//! round trip, so the next holder is still asked: the elected fetcher is asked by
//! everyone at once, and sending all it cannot serve to HTTP nearly doubled the HTTP
//! fetches per part in the simulator's demo twin.
//!
//! Why pull and not push: a pushed part saves one round trip (the request) per hop,
//! a few ms on the links a swarm of neighbours has, against a part duration of
//! hundreds of ms and a hold-back of three parts. Pull keeps the one-transfer-per-
//! connection rule of the p2p-media-loader protocol (raw chunks carry no request
//! id), needs no subscription state or tree repair on churn, and never sends bytes
//! nobody asked for. Push is the step to take when measurements show the request
//! round trip matters (large swarms, long chains of peers).
//!
//! Sans-IO and deterministic like [`super::Scheduler`]: time in ms as input,
//! [`PartAction`]s out. Not here: playlists, transport, verification (the caller
//! checks every part against the signed digest list *before* [`PartScheduler::peer_done`]
//! and reports a mismatch as [`PeerFailure::Corrupt`]), the player clock.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::core::{rendezvous, PeerFailure, PeerKey, SegmentId};

/// Largest gap between two parts still taken as contiguous (rounding).
const SEAM_MS: u64 = 5;

/// One LL-HLS part: media sequence number of its segment and index in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartKey {
    pub segment: u64,
    pub index: u32,
}

impl PartKey {
    fn hash_id(self) -> SegmentId {
        SegmentId(
            self.segment
                .wrapping_mul(256)
                .wrapping_add(u64::from(self.index)),
        )
    }
}

/// A part on the media timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartInfo {
    pub key: PartKey,
    pub start_ms: u64,
    pub duration_ms: u64,
}

/// Tunables; all durations in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct PartConfig {
    pub p2p: bool,
    /// A part whose playback starts within this much media time comes over HTTP (the
    /// least urgent window; see the module doc).
    pub urgent_ms: u64,
    /// Added to twice the HTTP fetch time estimate for the adaptive urgent window.
    pub urgent_margin_ms: u64,
    /// Largest urgent window, however slow HTTP gets.
    pub max_urgent_ms: u64,
    /// Parts further ahead than this are not fetched yet.
    pub ahead_ms: u64,
    /// Longest wait for one peer request.
    pub peer_timeout_ms: u64,
    /// A peer request waits this many times the recent peer transfer time …
    pub peer_wait_factor: u64,
    /// … but at least this long (see the module doc).
    pub min_peer_wait_ms: u64,
    /// Delay between the HTTP fetches of the first, second, … ranked peers when
    /// nobody announced a complete part.
    pub seed_stagger_ms: u64,
    pub max_http: usize,
    pub max_peer_downloads: usize,
    /// Failed requests after which a peer is no longer asked.
    pub max_peer_failures: u32,
    /// Parts this far behind the playhead are forgotten.
    pub keep_behind_ms: u64,
}

impl Default for PartConfig {
    fn default() -> Self {
        PartConfig {
            p2p: true,
            urgent_ms: 300,
            urgent_margin_ms: 100,
            max_urgent_ms: 2_000,
            ahead_ms: 10_000,
            peer_timeout_ms: 1_500,
            peer_wait_factor: 3,
            min_peer_wait_ms: 400,
            seed_stagger_ms: 250,
            max_http: 3,
            max_peer_downloads: 4,
            max_peer_failures: 4,
            keep_behind_ms: 20_000,
        }
    }
}

/// What the caller must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartAction {
    /// GET the part (the preload hint's URL if it is not complete yet).
    FetchHttp(PartKey),
    RequestPeer {
        peer: PeerKey,
        part: PartKey,
    },
    CancelPeer {
        peer: PeerKey,
        part: PartKey,
    },
    /// Our set of held parts changed: announce it.
    Announce,
    /// Drop and refuse the peer (it sent a part that fails its digest).
    Disconnect(PeerKey),
}

/// Counters for the stats file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartStats {
    pub http_bytes: u64,
    pub p2p_bytes: u64,
    pub rejected_parts: u64,
    pub banned_peers: u64,
    pub peer_timeouts: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    Http,
    Peer {
        peer: PeerKey,
        deadline: u64,
        since: u64,
    },
    Have,
}

#[derive(Debug)]
struct Part {
    info: PartInfo,
    /// When the playlist listed it as complete (`None`: only preload-hinted).
    complete_at: Option<u64>,
    state: State,
    /// Its preload hint's GET failed (the origin answers 404 for a hinted part that
    /// will not come: the segment ended first). Not asked for again until the
    /// playlist lists it as complete; before, every failure planned the next GET at
    /// once, a loop of requests until the next playlist reload forgot the part.
    hint_failed: bool,
    /// A peer request for it timed out, failed its check or lost its holder: it
    /// comes over HTTP now (one slow peer try per part).
    peer_failed: bool,
}

#[derive(Debug, Default)]
struct Peer {
    parts: HashSet<PartKey>,
    busy: bool,
    failures: u32,
}

/// The part scheduler of one viewer.
#[derive(Debug)]
pub struct PartScheduler {
    cfg: PartConfig,
    me: PeerKey,
    now: u64,
    pos: u64,
    parts: BTreeMap<PartKey, Part>,
    peers: HashMap<PeerKey, Peer>,
    banned: HashSet<PeerKey>,
    actions: VecDeque<PartAction>,
    stats: PartStats,
    /// When each HTTP fetch of an already complete part started (fetches of a
    /// preload-hinted part wait for the part to be made and are not timed).
    http_since: HashMap<PartKey, u64>,
    /// How long HTTP takes for a complete part, ms (rises at once, falls by 1/8).
    http_ms: Option<u64>,
    /// How long a peer takes to deliver a part it announced, ms (likewise).
    peer_ms: Option<u64>,
}

impl PartScheduler {
    pub fn new(cfg: PartConfig, me: PeerKey) -> Self {
        PartScheduler {
            cfg,
            me,
            now: 0,
            pos: 0,
            parts: BTreeMap::new(),
            peers: HashMap::new(),
            banned: HashSet::new(),
            actions: VecDeque::new(),
            stats: PartStats::default(),
            http_since: HashMap::new(),
            http_ms: None,
            peer_ms: None,
        }
    }

    /// The urgent window now: parts due sooner come over HTTP (see the module doc).
    pub fn urgent_ms(&self) -> u64 {
        let adaptive = self
            .http_ms
            .map_or(0, |h| h.saturating_mul(2) + self.cfg.urgent_margin_ms);
        self.cfg.urgent_ms.max(adaptive.min(self.cfg.max_urgent_ms))
    }

    /// How long a peer request may take now (see the module doc).
    pub fn peer_wait_ms(&self) -> u64 {
        let adaptive = self
            .peer_ms
            .map_or(0, |p| p.saturating_mul(self.cfg.peer_wait_factor));
        adaptive
            .max(self.cfg.min_peer_wait_ms)
            .min(self.cfg.peer_timeout_ms)
    }

    pub fn stats(&self) -> PartStats {
        self.stats
    }

    /// The playlist lists a part: `complete` when it is a finished part, not only
    /// the preload hint. Idempotent; a hinted part listed again as complete starts
    /// the seeding clock of the ranked fetchers.
    pub fn part_listed(&mut self, now: u64, info: PartInfo, complete: bool) {
        self.now = now;
        let p = self.parts.entry(info.key).or_insert(Part {
            info,
            complete_at: None,
            state: State::Missing,
            hint_failed: false,
            peer_failed: false,
        });
        p.info = info;
        if complete && p.complete_at.is_none() {
            p.complete_at = Some(now);
            p.hint_failed = false;
        }
        self.plan();
    }

    pub fn set_position(&mut self, now: u64, position_ms: u64) {
        self.now = now;
        self.pos = position_ms;
    }

    /// Time passes: time-outs, forgetting, new fetches.
    pub fn tick(&mut self, now: u64) {
        self.now = now;
        let expired: Vec<(PartKey, PeerKey)> = self
            .parts
            .iter()
            .filter_map(|(k, p)| match p.state {
                State::Peer { peer, deadline, .. } if deadline <= now => Some((*k, peer)),
                _ => None,
            })
            .collect();
        for (key, peer) in expired {
            self.stats.peer_timeouts += 1;
            self.actions
                .push_back(PartAction::CancelPeer { peer, part: key });
            self.fail(peer, key, PeerFailure::Timeout);
        }
        let keep = self.pos.saturating_sub(self.cfg.keep_behind_ms);
        self.parts
            .retain(|_, p| p.info.start_ms + p.info.duration_ms >= keep || p.state == State::Http);
        self.plan();
    }

    pub fn poll_action(&mut self) -> Option<PartAction> {
        self.actions.pop_front()
    }

    /// The earliest time a seeding turn comes up (the caller also ticks regularly).
    pub fn next_wakeup(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        for p in self.parts.values() {
            let at = match p.state {
                State::Peer { deadline, .. } => Some(deadline),
                State::Missing => p
                    .complete_at
                    .map(|c| c + self.seed_rank(p.info.key) as u64 * self.cfg.seed_stagger_ms),
                _ => None,
            };
            if let Some(at) = at.filter(|a| *a > self.now) {
                t = Some(t.map_or(at, |x| x.min(at)));
            }
        }
        t
    }

    pub fn peer_joined(&mut self, now: u64, peer: PeerKey) {
        self.now = now;
        if !self.banned.contains(&peer) {
            self.peers.entry(peer).or_default();
        }
    }

    pub fn peer_left(&mut self, now: u64, peer: PeerKey) {
        self.now = now;
        self.peers.remove(&peer);
        self.release(peer);
        self.plan();
    }

    /// The peer's part announcement (replaces the previous one).
    pub fn peer_announced(&mut self, now: u64, peer: PeerKey, parts: Vec<PartKey>) {
        self.now = now;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.parts = parts.into_iter().collect();
            self.plan();
        }
    }

    pub fn http_done(&mut self, now: u64, key: PartKey, bytes: u64) {
        self.now = now;
        self.stats.http_bytes += bytes;
        if let Some(since) = self.http_since.remove(&key) {
            self.http_ms = Some(estimate(self.http_ms, now.saturating_sub(since)));
        }
        self.got(key);
    }

    pub fn http_failed(&mut self, now: u64, key: PartKey) {
        self.now = now;
        self.http_since.remove(&key);
        if let Some(p) = self.parts.get_mut(&key) {
            if p.state == State::Http {
                p.state = State::Missing;
                p.hint_failed = p.complete_at.is_none();
            }
        }
        self.plan();
    }

    /// A part from `peer` passed its digest check.
    pub fn peer_done(&mut self, now: u64, peer: PeerKey, key: PartKey, bytes: u64) {
        self.now = now;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.busy = false;
            p.failures = 0;
        }
        if self.parts.get(&key).is_some_and(|p| p.state != State::Have) {
            self.stats.p2p_bytes += bytes;
        }
        if let Some(p) = self.parts.get_mut(&key) {
            if let State::Peer { peer: q, since, .. } = p.state {
                if q == peer {
                    // Delivered: nothing to cancel.
                    p.state = State::Missing;
                    self.peer_ms = Some(estimate(self.peer_ms, now.saturating_sub(since)));
                }
            }
        }
        self.got(key);
    }

    pub fn peer_failed(&mut self, now: u64, peer: PeerKey, key: PartKey, why: PeerFailure) {
        self.now = now;
        self.fail(peer, key, why);
        self.plan();
    }

    /// Parts not held yet (to [`PartScheduler::forget`] the ones no longer listed).
    pub fn unheld(&self) -> Vec<PartKey> {
        self.parts
            .iter()
            .filter(|(_, p)| p.state != State::Have)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The playlist no longer lists the part (a preload hint that named another
    /// part): it must not hold up playback.
    pub fn forget(&mut self, key: PartKey) {
        if let Some(p) = self.parts.get(&key) {
            if p.state != State::Have {
                if let State::Peer { peer, .. } = p.state {
                    self.actions
                        .push_back(PartAction::CancelPeer { peer, part: key });
                    if let Some(x) = self.peers.get_mut(&peer) {
                        x.busy = false;
                    }
                }
                self.parts.remove(&key);
                self.http_since.remove(&key);
            }
        }
    }

    pub fn has(&self, key: PartKey) -> bool {
        self.parts.get(&key).is_some_and(|p| p.state == State::Have)
    }

    /// Parts held, newest last.
    pub fn held(&self) -> impl Iterator<Item = PartKey> + '_ {
        self.parts
            .iter()
            .filter(|(_, p)| p.state == State::Have)
            .map(|(k, _)| *k)
    }

    /// End of the media held without a gap from `from_ms`.
    pub fn contiguous_end(&self, from_ms: u64) -> u64 {
        let mut end = from_ms;
        for p in self.parts.values() {
            let (s, e) = (p.info.start_ms, p.info.start_ms + p.info.duration_ms);
            if e <= end {
                continue;
            }
            // Part durations are rounded to ms: allow that much of a seam.
            if s > end + SEAM_MS || p.state != State::Have {
                break;
            }
            end = e;
        }
        end
    }

    /// Why playback at `pos_ms` cannot go on: the first part not held there, its
    /// state and how long ago it was listed, completed and asked for (for the log
    /// line of a stall; not used to decide anything).
    pub fn explain(&self, pos_ms: u64) -> String {
        let Some((key, p)) = self
            .parts
            .iter()
            .find(|(_, p)| p.info.start_ms + p.info.duration_ms > pos_ms && p.state != State::Have)
        else {
            return "no part listed at the playhead".into();
        };
        let ago = |t: u64| self.now.saturating_sub(t);
        let state = match p.state {
            State::Missing if p.hint_failed => "missing (hint failed)".to_string(),
            State::Missing => "missing".to_string(),
            State::Http => match self.http_since.get(key) {
                Some(t) => format!("http for {} ms", ago(*t)),
                None => "http (preload hint)".to_string(),
            },
            State::Peer { peer, deadline, .. } => format!(
                "peer {:x} for {} ms more",
                peer.0,
                deadline.saturating_sub(self.now)
            ),
            State::Have => "held".to_string(),
        };
        let holders = self
            .peers
            .values()
            .filter(|x| x.parts.contains(key))
            .count();
        format!(
            "part {}.{} at {} ms: {state}; listed {} ago; seed rank {}; {holders} peers announce it; http estimate {:?} ms",
            key.segment,
            key.index,
            p.info.start_ms,
            p.complete_at
                .map_or("as a hint only".to_string(), |c| format!("complete {} ms", ago(c))),
            self.seed_rank(*key),
            self.http_ms,
        )
    }

    pub fn is_banned(&self, peer: PeerKey) -> bool {
        self.banned.contains(&peer)
    }

    fn got(&mut self, key: PartKey) {
        if let Some(p) = self.parts.get_mut(&key) {
            if let State::Peer { peer, .. } = p.state {
                // HTTP won the race: the peer request is moot.
                self.actions
                    .push_back(PartAction::CancelPeer { peer, part: key });
                if let Some(x) = self.peers.get_mut(&peer) {
                    x.busy = false;
                }
            }
            if p.state != State::Have {
                p.state = State::Have;
                self.actions.push_back(PartAction::Announce);
            }
        }
        self.plan();
    }

    fn fail(&mut self, peer: PeerKey, key: PartKey, why: PeerFailure) {
        if let Some(p) = self.parts.get_mut(&key) {
            if matches!(p.state, State::Peer { peer: q, .. } if q == peer) {
                p.state = State::Missing;
                p.peer_failed = why != PeerFailure::Absent;
            }
        }
        if why == PeerFailure::Corrupt {
            self.stats.rejected_parts += 1;
            if self.banned.insert(peer) {
                self.stats.banned_peers += 1;
            }
            self.peers.remove(&peer);
            self.release(peer);
            self.actions.push_back(PartAction::Disconnect(peer));
            return;
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.busy = false;
            p.failures += 1;
            p.parts.remove(&key);
        }
    }

    /// Parts being fetched from a departed peer go back to missing.
    fn release(&mut self, peer: PeerKey) {
        for p in self.parts.values_mut() {
            if matches!(p.state, State::Peer { peer: q, .. } if q == peer) {
                p.state = State::Missing;
                p.peer_failed = true;
            }
        }
    }

    fn seed_rank(&self, key: PartKey) -> usize {
        let id = key.hash_id();
        let mine = rendezvous(self.me, id);
        self.peers
            .keys()
            .filter(|p| rendezvous(**p, id) > mine)
            .count()
    }

    fn plan(&mut self) {
        let mut http = self
            .parts
            .values()
            .filter(|p| p.state == State::Http)
            .count();
        let mut peer_dl = self
            .parts
            .values()
            .filter(|p| matches!(p.state, State::Peer { .. }))
            .count();
        let (now, pos, cfg) = (self.now, self.pos, self.cfg.clone());
        let urgent_ms = self.urgent_ms();
        let peer_wait_ms = self.peer_wait_ms();
        let keys: Vec<PartKey> = self
            .parts
            .iter()
            .filter(|(_, p)| {
                p.state == State::Missing
                    && !p.hint_failed
                    && p.info.start_ms + p.info.duration_ms > pos
                    && p.info.start_ms < pos + cfg.ahead_ms
            })
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(p) = self.parts.get(&key) else {
                continue;
            };
            let start = p.info.start_ms;
            let complete_at = p.complete_at;
            let someone_has = self.peers.values().any(|x| x.parts.contains(&key));
            // Too late for one whole peer try before the part turns urgent (see the
            // module doc): once it exists, it comes over HTTP now.
            let late =
                start < pos + urgent_ms + peer_wait_ms && (complete_at.is_some() || someone_has);
            let urgent = !cfg.p2p
                || self.peers.is_empty()
                || p.peer_failed
                || start <= pos + urgent_ms
                || late;
            let mut go_http = urgent;
            if !urgent {
                let window = peer_wait_ms;
                let holder = (peer_dl < cfg.max_peer_downloads)
                    .then(|| {
                        self.peers
                            .iter()
                            .filter(|(_, x)| {
                                !x.busy
                                    && x.failures < cfg.max_peer_failures
                                    && x.parts.contains(&key)
                            })
                            .map(|(k, _)| *k)
                            .min_by_key(|k| u64::MAX - rendezvous(*k, key.hash_id()))
                    })
                    .flatten();
                if let Some(peer) = holder {
                    if let Some(x) = self.peers.get_mut(&peer) {
                        x.busy = true;
                    }
                    if let Some(p) = self.parts.get_mut(&key) {
                        p.state = State::Peer {
                            peer,
                            deadline: now + window,
                            since: now,
                        };
                    }
                    peer_dl += 1;
                    self.actions
                        .push_back(PartAction::RequestPeer { peer, part: key });
                    continue;
                }
                let rank = self.seed_rank(key) as u64;
                go_http = rank == 0
                    || (!someone_has
                        && complete_at.is_some_and(|c| now >= c + rank * cfg.seed_stagger_ms));
            }
            if go_http && http < cfg.max_http {
                http += 1;
                if let Some(p) = self.parts.get_mut(&key) {
                    p.state = State::Http;
                }
                if complete_at.is_some() {
                    self.http_since.insert(key, now);
                }
                self.actions.push_back(PartAction::FetchHttp(key));
            }
        }
    }
}

/// A moving estimate of a fetch time: rises at once with a slower fetch, falls by
/// 1/8 of the difference with a faster one.
fn estimate(est: Option<u64>, took: u64) -> u64 {
    match est {
        Some(est) if took < est => (est * 7 + took) / 8,
        _ => took,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(segment: u64, index: u32) -> PartInfo {
        PartInfo {
            key: PartKey { segment, index },
            start_ms: segment * 2_000 + u64::from(index) * 500,
            duration_ms: 500,
        }
    }

    /// A 500 ms part at `start_ms` (for timelines [`info`] does not give).
    fn at(key: PartKey, start_ms: u64) -> PartInfo {
        PartInfo {
            key,
            start_ms,
            duration_ms: 500,
        }
    }

    fn drain(s: &mut PartScheduler) -> Vec<PartAction> {
        std::iter::from_fn(|| s.poll_action()).collect()
    }

    /// The stall log line names the part at the playhead and what it waits for.
    #[test]
    fn explain_names_the_missing_part_and_its_state() {
        let mut s = PartScheduler::new(PartConfig::default(), PeerKey(1));
        assert_eq!(s.explain(0), "no part listed at the playhead");
        s.set_position(0, 10_000);
        s.part_listed(0, info(5, 0), true);
        assert!(drain(&mut s).contains(&PartAction::FetchHttp(info(5, 0).key)));
        s.tick(40);
        let why = s.explain(10_000);
        assert!(
            why.starts_with("part 5.0 at 10000 ms: http for 40 ms"),
            "{why}"
        );
        s.http_done(60, info(5, 0).key, 100);
        assert_eq!(s.explain(10_000), "no part listed at the playhead");
    }

    /// Two peers that see each other elect exactly one fetcher of a new part; the
    /// other pulls it after the announcement, and falls back to HTTP when urgent.
    #[test]
    fn one_fetcher_then_pull() {
        let (a, b) = (PeerKey(1), PeerKey(2));
        let mut sa = PartScheduler::new(PartConfig::default(), a);
        let mut sb = PartScheduler::new(PartConfig::default(), b);
        sa.peer_joined(0, b);
        sb.peer_joined(0, a);
        for s in [&mut sa, &mut sb] {
            s.set_position(0, 8_500);
        }
        let part = info(5, 0); // starts at 10 000: 1.5 s ahead
        sa.part_listed(0, part, false);
        sb.part_listed(0, part, false);
        let (fa, fb) = (drain(&mut sa), drain(&mut sb));
        let fetchers = [&fa, &fb]
            .iter()
            .filter(|v| v.contains(&PartAction::FetchHttp(part.key)))
            .count();
        assert_eq!(fetchers, 1, "{fa:?} {fb:?}");
        let (fetcher, other, other_key, fetcher_key) = if fa.is_empty() {
            (&mut sb, &mut sa, a, b)
        } else {
            (&mut sa, &mut sb, b, a)
        };
        fetcher.http_done(100, part.key, 1000);
        assert!(drain(fetcher).contains(&PartAction::Announce));
        other.part_listed(100, part, true);
        other.peer_announced(110, fetcher_key, vec![part.key]);
        assert_eq!(
            drain(other),
            vec![PartAction::RequestPeer {
                peer: fetcher_key,
                part: part.key
            }]
        );
        other.peer_done(150, fetcher_key, part.key, 1000);
        assert!(other.has(part.key));
        assert_eq!(other.stats().p2p_bytes, 1000);
        assert_eq!(other.contiguous_end(8_500), 8_500, "gap before the part");
        let _ = other_key;
    }

    #[test]
    fn urgent_parts_come_over_http_and_liars_are_banned() {
        let (me, liar) = (PeerKey(1), PeerKey(2));
        let mut s = PartScheduler::new(PartConfig::default(), me);
        s.peer_joined(0, liar);
        s.set_position(0, 9_000);
        let far = info(5, 1); // 10 500: 1.5 s ahead
        s.part_listed(0, far, true);
        s.peer_announced(0, liar, vec![far.key]);
        let acts = drain(&mut s);
        assert!(acts.contains(&PartAction::RequestPeer {
            peer: liar,
            part: far.key
        }));
        s.peer_failed(10, liar, far.key, PeerFailure::Corrupt);
        let acts = drain(&mut s);
        assert!(acts.contains(&PartAction::Disconnect(liar)));
        assert!(s.is_banned(liar));
        assert_eq!(s.stats().rejected_parts, 1);
        // No peers left: HTTP.
        assert!(acts.contains(&PartAction::FetchHttp(far.key)));
        // A part inside the urgent window goes to HTTP even with a holder.
        let mut s = PartScheduler::new(PartConfig::default(), me);
        s.peer_joined(0, PeerKey(3));
        s.set_position(0, 9_900);
        s.peer_announced(0, PeerKey(3), vec![info(5, 0).key]);
        s.part_listed(0, info(5, 0), true);
        assert_eq!(drain(&mut s), vec![PartAction::FetchHttp(info(5, 0).key)]);
    }

    /// When HTTP takes 600 ms for a complete part, a part 1 s ahead is urgent: it
    /// comes over HTTP although a peer holds it (a peer request would leave HTTP too
    /// little time if it failed). With fast HTTP the same part comes from the peer, and
    /// the window shrinks back as HTTP speeds up again.
    #[test]
    fn the_urgent_window_follows_how_long_http_takes() {
        let (me, holder) = (PeerKey(1), PeerKey(2));
        let mut s = PartScheduler::new(PartConfig::default(), me);
        s.peer_joined(0, holder);
        assert_eq!(s.urgent_ms(), 300);
        // A complete part due at once: HTTP, timed.
        s.set_position(0, 9_000);
        s.part_listed(0, info(4, 2), true);
        assert_eq!(drain(&mut s), vec![PartAction::FetchHttp(info(4, 2).key)]);
        s.http_done(600, info(4, 2).key, 1_000);
        drain(&mut s);
        assert_eq!(s.urgent_ms(), 2 * 600 + 100);
        // 1 s ahead, held by a peer: still HTTP.
        s.set_position(600, 9_500);
        s.peer_announced(600, holder, vec![info(5, 1).key]);
        s.part_listed(600, info(5, 1), true);
        assert_eq!(drain(&mut s), vec![PartAction::FetchHttp(info(5, 1).key)]);
        // Fast fetches bring the window down by 1/8 of the gap each, not at once.
        s.http_done(620, info(5, 1).key, 1_000);
        drain(&mut s);
        let after_one = s.urgent_ms();
        assert!(after_one < 1_300 && after_one > 1_000, "{after_one}");
        let mut t = 620;
        for i in 2..4 {
            let p = info(5, i);
            s.part_listed(t, p, true);
            drain(&mut s);
            t += 10;
            s.http_done(t, p.key, 1_000);
            drain(&mut s);
        }
        for seg in 6..30 {
            let p = info(seg, 0);
            s.set_position(t, p.start_ms);
            s.part_listed(t, p, true);
            drain(&mut s);
            t += 10;
            s.http_done(t, p.key, 1_000);
            drain(&mut s);
        }
        assert_eq!(s.urgent_ms(), 300, "fast HTTP again: the least window");
        // Never more than the cap, however slow.
        let mut slow = PartScheduler::new(PartConfig::default(), me);
        slow.set_position(0, 9_000);
        slow.part_listed(0, info(4, 2), true);
        drain(&mut slow);
        slow.http_done(10_000, info(4, 2).key, 1_000);
        assert_eq!(slow.urgent_ms(), 2_000);
    }

    /// A preload hint whose GET failed (404: the segment ended before that part) is
    /// not asked for again in a loop; once the playlist lists it as complete, it is.
    #[test]
    fn a_failed_hint_waits_for_the_playlist() {
        let mut s = PartScheduler::new(PartConfig::default(), PeerKey(1));
        s.set_position(0, 9_000);
        let hint = info(4, 2);
        s.part_listed(0, hint, false);
        assert_eq!(drain(&mut s), vec![PartAction::FetchHttp(hint.key)]);
        s.http_failed(5, hint.key);
        s.tick(10);
        assert_eq!(drain(&mut s), vec![], "no GET again for a failed hint");
        s.part_listed(20, hint, false);
        assert_eq!(drain(&mut s), vec![], "still only a hint");
        s.part_listed(30, hint, true);
        assert_eq!(drain(&mut s), vec![PartAction::FetchHttp(hint.key)]);
        // A complete part that fails is asked for again (the next plan).
        s.http_failed(40, hint.key);
        assert_eq!(drain(&mut s), vec![PartAction::FetchHttp(hint.key)]);
    }

    #[test]
    fn slow_peers_time_out_before_urgency() {
        let (me, slow) = (PeerKey(1), PeerKey(2));
        let mut s = PartScheduler::new(PartConfig::default(), me);
        s.peer_joined(0, slow);
        s.set_position(0, 9_000);
        let p = info(5, 1);
        s.part_listed(0, p, true);
        s.peer_announced(0, slow, vec![p.key]);
        drain(&mut s);
        let deadline = s.next_wakeup().expect("deadline");
        assert!(deadline <= 10_500 - 9_000 - 300);
        s.set_position(deadline, 9_000 + deadline);
        s.tick(deadline);
        let acts = drain(&mut s);
        assert!(acts.contains(&PartAction::CancelPeer {
            peer: slow,
            part: p.key
        }));
        assert!(acts.contains(&PartAction::FetchHttp(p.key)));
        assert_eq!(s.stats().peer_timeouts, 1);
    }

    /// A part learnt of too late for one whole peer wait comes over HTTP at once.
    #[test]
    fn a_part_learnt_of_too_late_for_a_whole_peer_wait_comes_over_http_at_once() {
        let (me, a) = (PeerKey(1), PeerKey(2));
        let mut s = PartScheduler::new(PartConfig::default(), me);
        s.peer_joined(0, a);
        s.set_position(0, 10_000);
        // Urgent window 300 ms and peer wait 400 ms: a part 650 ms ahead has room for
        // a 350 ms peer try only, so it comes over HTTP now, not 350 ms later.
        let late = at(
            PartKey {
                segment: 5,
                index: 1,
            },
            10_650,
        );
        s.peer_announced(0, a, vec![late.key]);
        s.part_listed(0, late, true);
        assert_eq!(drain(&mut s), vec![PartAction::FetchHttp(late.key)]);
        // 700 ms ahead: one whole peer wait fits, so the holder is asked, with the
        // whole wait as its deadline.
        let ahead = at(
            PartKey {
                segment: 5,
                index: 2,
            },
            10_700,
        );
        s.peer_announced(0, a, vec![late.key, ahead.key]);
        s.part_listed(0, ahead, true);
        assert_eq!(
            drain(&mut s),
            vec![PartAction::RequestPeer {
                peer: a,
                part: ahead.key
            }]
        );
        assert_eq!(s.next_wakeup(), Some(400));
        // A hinted part nobody holds yet is not fetched early by a viewer that is
        // not its elected fetcher: it waits for the part to exist.
        let hinted = at(
            PartKey {
                segment: 5,
                index: 3,
            },
            10_600,
        );
        let rank = s.seed_rank(hinted.key);
        s.part_listed(0, hinted, false);
        let fetched = drain(&mut s).contains(&PartAction::FetchHttp(hinted.key));
        assert_eq!(fetched, rank == 0, "rank {rank}");
    }

    /// A holder that does not answer is given up after the peer wait (not at the edge
    /// of the urgent window), and the part then comes over HTTP (one peer try per
    /// part); the wait follows how long peer transfers take.
    #[test]
    fn a_silent_holder_is_given_up_early_and_the_wait_follows_peer_transfers() {
        let (me, a, b) = (PeerKey(1), PeerKey(2), PeerKey(3));
        let mut s = PartScheduler::new(PartConfig::default(), me);
        s.peer_joined(0, a);
        s.peer_joined(0, b);
        s.set_position(0, 9_000);
        let p = info(6, 0); // 3 s ahead of the playhead
        s.peer_announced(0, a, vec![p.key]);
        s.peer_announced(0, b, vec![p.key]);
        s.part_listed(0, p, true);
        let first = match drain(&mut s).as_slice() {
            [PartAction::RequestPeer { peer, part }] if *part == p.key => *peer,
            other => panic!("expected one peer request, got {other:?}"),
        };
        assert_eq!(s.peer_wait_ms(), 400, "no estimate yet: the least wait");
        assert_eq!(s.next_wakeup(), Some(400));
        s.set_position(400, 9_400);
        s.tick(400);
        assert_eq!(
            drain(&mut s),
            vec![
                PartAction::CancelPeer {
                    peer: first,
                    part: p.key
                },
                PartAction::FetchHttp(p.key)
            ],
            "another holder has it, but the part had its peer try: HTTP, 2.6 s early"
        );
        s.http_done(450, p.key, 1_000);
        assert!(s.has(p.key));
        // The other holder delivers the next part after 250 ms: the wait becomes
        // 3 × 250 ms.
        let second = if first == a { b } else { a };
        let q = info(7, 0);
        s.peer_announced(500, second, vec![q.key]);
        s.peer_announced(500, first, vec![]);
        s.part_listed(500, q, true);
        assert_eq!(
            drain(&mut s),
            vec![
                PartAction::Announce,
                PartAction::RequestPeer {
                    peer: second,
                    part: q.key
                }
            ]
        );
        s.peer_done(750, second, q.key, 1_000);
        assert!(s.has(q.key));
        assert_eq!(
            drain(&mut s),
            vec![PartAction::Announce],
            "nothing to cancel"
        );
        assert_eq!(s.peer_wait_ms(), 750);
        // Never more than the peer time-out, however slow.
        let r = info(8, 0);
        s.peer_announced(800, second, vec![r.key]);
        s.part_listed(800, r, true);
        assert_eq!(
            drain(&mut s),
            vec![PartAction::RequestPeer {
                peer: second,
                part: r.key
            }]
        );
        s.peer_done(5_000, second, r.key, 1_000);
        assert_eq!(s.peer_wait_ms(), PartConfig::default().peer_timeout_ms);
    }

    /// A quick "absent" (no free upload slot) costs a round trip, not the peer wait:
    /// the next holder is asked, not HTTP.
    #[test]
    fn after_an_absent_answer_the_next_holder_is_asked() {
        let (me, a, b) = (PeerKey(1), PeerKey(2), PeerKey(3));
        let mut s = PartScheduler::new(PartConfig::default(), me);
        s.peer_joined(0, a);
        s.peer_joined(0, b);
        s.set_position(0, 9_000);
        let p = info(6, 0);
        s.peer_announced(0, a, vec![p.key]);
        s.peer_announced(0, b, vec![p.key]);
        s.part_listed(0, p, true);
        let first = match drain(&mut s).as_slice() {
            [PartAction::RequestPeer { peer, part }] if *part == p.key => *peer,
            other => panic!("expected one peer request, got {other:?}"),
        };
        let second = if first == a { b } else { a };
        s.peer_failed(5, first, p.key, PeerFailure::Absent);
        assert_eq!(
            drain(&mut s),
            vec![PartAction::RequestPeer {
                peer: second,
                part: p.key
            }]
        );
    }

    #[test]
    fn contiguous_end_walks_held_parts() {
        let mut s = PartScheduler::new(PartConfig::default(), PeerKey(1));
        for i in 0..4 {
            s.part_listed(0, info(5, i), true);
        }
        s.http_done(0, info(5, 0).key, 1);
        s.http_done(0, info(5, 1).key, 1);
        s.http_done(0, info(5, 3).key, 1);
        assert_eq!(s.contiguous_end(10_000), 11_000);
        assert_eq!(s.held().count(), 3);
    }
}
