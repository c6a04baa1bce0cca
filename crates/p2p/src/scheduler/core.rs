//! The scheduler state machine: segments of one rendition, the peers that announced
//! them, and what is in flight where.

use std::collections::{BTreeSet, VecDeque};

use super::config::SchedulerConfig;
use super::holdings::Holdings;
use super::tables::SortedDeque;

pub use super::ids::SegmentId;

/// A peer of the swarm as the scheduler knows it: a stable 64-bit key that every peer
/// derives the same way from the peer id ([`PeerKey::from_peer_id`]), so that the
/// rendezvous ranking of who seeds a segment agrees across the swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub u64);

impl PeerKey {
    /// FNV-1a of the peer id bytes.
    pub fn from_peer_id(id: &[u8]) -> PeerKey {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        PeerKey(h)
    }
}

/// A segment listed by the playlist, placed on the media timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: SegmentId,
    /// Media time at which the segment starts playing.
    pub start_ms: u64,
    pub duration_ms: u64,
}

/// Where a segment's bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Http,
    Peer(PeerKey),
}

/// What the caller must do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fetch the segment over HTTP; report with `http_done` or `http_failed`.
    FetchHttp(SegmentId),
    /// Ask the peer for the segment; report with `peer_done` or `peer_failed`.
    RequestPeer { peer: PeerKey, segment: SegmentId },
    /// Withdraw a peer request (it timed out or the segment is no longer wanted).
    CancelPeer { peer: PeerKey, segment: SegmentId },
    /// The set of segments we hold changed: announce it to the peers.
    Announce,
    /// The peer sent bad data: close the connection and refuse it from now on.
    Disconnect(PeerKey),
}

/// Why a peer request ended without a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerFailure {
    /// It did not finish in time (the scheduler reports this itself).
    Timeout,
    /// The peer said it does not have the segment.
    Absent,
    /// The bytes did not match the signed digest. The peer is banned.
    Corrupt,
    /// The connection closed or broke the protocol.
    Closed,
}

/// Counters, for stats and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    pub http_bytes: u64,
    pub p2p_bytes: u64,
    pub http_segments: u64,
    pub p2p_segments: u64,
    pub peer_requests: u64,
    pub peer_timeouts: u64,
    pub peer_failures: u64,
    pub rejected_segments: u64,
    pub banned_peers: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Missing,
    Http,
    Peer { peer: PeerKey, deadline: u64 },
    Have { source: Source },
}

#[derive(Debug)]
struct Seg {
    info: SegmentInfo,
    listed_at: u64,
    state: State,
    /// Peers that already failed this segment (a few at most).
    tried: Vec<PeerKey>,
}

#[derive(Debug, Default)]
struct Peer {
    /// Its latest announcement.
    held: Holdings,
    /// Segments it failed to deliver since that announcement: no longer trusted.
    distrusted: Vec<SegmentId>,
    inflight: usize,
    failures: u32,
}

impl Peer {
    fn holds(&self, id: SegmentId) -> bool {
        self.held.holds(id) && !self.distrusted.contains(&id)
    }
}

/// Segment scheduler of one viewer for one rendition. See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    me: PeerKey,
    now: u64,
    /// The first instant this scheduler was told (start of the join grace).
    started: Option<u64>,
    position_ms: u64,
    segs: SortedDeque<SegmentId, Seg>,
    peers: SortedDeque<PeerKey, Peer>,
    banned: BTreeSet<PeerKey>,
    /// Segments with an HTTP request under way (`max_http` at most).
    http: Vec<SegmentId>,
    /// Segments in state `Missing` (kept by [`set_state`]): none means no plan.
    missing: usize,
    peer_inflight: usize,
    actions: VecDeque<Action>,
    stats: SchedulerStats,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig, me: PeerKey) -> Self {
        Scheduler {
            cfg,
            me,
            now: 0,
            started: None,
            position_ms: 0,
            segs: SortedDeque::default(),
            peers: SortedDeque::default(),
            banned: BTreeSet::new(),
            http: Vec::new(),
            missing: 0,
            peer_inflight: 0,
            actions: VecDeque::new(),
            stats: SchedulerStats::default(),
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    pub fn stats(&self) -> SchedulerStats {
        self.stats
    }

    /// A segment appeared in the playlist. Listing it again is a no-op.
    pub fn segment_listed(&mut self, now: u64, info: SegmentInfo) {
        self.clock(now);
        let mut added = false;
        self.segs.get_or_insert_with(info.id, || {
            added = true;
            Seg {
                info,
                listed_at: now,
                state: State::Missing,
                tried: Vec::new(),
            }
        });
        self.missing += usize::from(added);
        self.plan();
    }

    /// The player's position on the media timeline.
    pub fn set_position(&mut self, now: u64, position_ms: u64) {
        self.clock(now);
        self.position_ms = position_ms;
        self.forget_old();
        self.plan();
    }

    /// Time passes: expires peer requests and re-plans.
    pub fn tick(&mut self, now: u64) {
        self.clock(now);
        self.expire();
        self.plan();
    }

    /// The next action to carry out, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn clock(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.started.get_or_insert(now);
    }

    /// `Some(end)` during the join grace ([`SchedulerConfig::join_grace_ms`]): a
    /// viewer that just started takes non-urgent segments from peers that announce
    /// them and seeds nothing over HTTP, since its peers' announcements are still on
    /// their way.
    fn join_grace_end(&self) -> Option<u64> {
        let end = self.started.unwrap_or(self.now) + self.cfg.join_grace_ms;
        (self.now < end).then_some(end)
    }

    /// The earliest time at which `tick` has something to do.
    pub fn next_wakeup(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut take = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        for seg in self.segs.values() {
            match seg.state {
                State::Peer { deadline, .. } => take(deadline),
                State::Missing if self.wants(seg) => {
                    if let Some(t) = self.urgent_at(seg) {
                        if t > self.now {
                            take(t);
                        }
                    }
                    if let Some(t) = self.seed_at(seg) {
                        if t > self.now {
                            take(t);
                        }
                    }
                }
                _ => {}
            }
        }
        next
    }

    pub fn peer_joined(&mut self, now: u64, peer: PeerKey) {
        self.clock(now);
        if peer == self.me || self.banned.contains(&peer) {
            return;
        }
        self.peers.get_or_insert_with(peer, Peer::default);
        self.plan();
    }

    pub fn peer_left(&mut self, now: u64, peer: PeerKey) {
        self.clock(now);
        self.peers.remove(&peer);
        let mut lost = Vec::new();
        for seg in self.segs.values_mut() {
            if let State::Peer { peer: p, .. } = seg.state {
                if p == peer {
                    set_state(seg, State::Missing, &mut self.missing);
                    try_once(&mut seg.tried, peer);
                    lost.push(seg.info.id);
                }
            }
        }
        self.peer_inflight = self.peer_inflight.saturating_sub(lost.len());
        self.plan();
    }

    /// What the peer holds (`loaded`) and is fetching right now (`loading`); replaces
    /// its earlier announcement.
    pub fn peer_announced(
        &mut self,
        now: u64,
        peer: PeerKey,
        loaded: impl IntoIterator<Item = SegmentId>,
        loading: impl IntoIterator<Item = SegmentId>,
    ) {
        self.peer_holdings(now, peer, &Holdings::new(loaded, loading));
    }

    /// [`Scheduler::peer_announced`] with the announcement already built (shared
    /// between every neighbour it goes to).
    pub fn peer_holdings(&mut self, now: u64, peer: PeerKey, holdings: &Holdings) {
        self.clock(now);
        if peer == self.me || self.banned.contains(&peer) {
            return;
        }
        let p = self.peers.get_or_insert_with(peer, Peer::default);
        p.held = holdings.clone();
        p.distrusted.clear();
        self.plan();
    }

    pub fn http_done(&mut self, now: u64, id: SegmentId, bytes: u64) {
        self.clock(now);
        if remove_id(&mut self.http, id) {
            self.stats.http_bytes += bytes;
            self.stats.http_segments += 1;
        }
        if let Some(seg) = self.segs.get_mut(&id) {
            if seg.state == State::Http {
                set_state(
                    seg,
                    State::Have {
                        source: Source::Http,
                    },
                    &mut self.missing,
                );
                self.actions.push_back(Action::Announce);
            }
        }
        self.plan();
    }

    pub fn http_failed(&mut self, now: u64, id: SegmentId) {
        self.clock(now);
        remove_id(&mut self.http, id);
        if let Some(seg) = self.segs.get_mut(&id) {
            if seg.state == State::Http {
                set_state(seg, State::Missing, &mut self.missing);
            }
        }
        self.plan();
    }

    /// The peer delivered the segment and its bytes matched the signed digest. Late
    /// deliveries (after a time-out, or while HTTP fetches it too) are kept as well:
    /// verified bytes are good bytes.
    pub fn peer_done(&mut self, now: u64, peer: PeerKey, id: SegmentId, bytes: u64) {
        self.clock(now);
        let Some(seg) = self.segs.get_mut(&id) else {
            return;
        };
        match seg.state {
            State::Have { .. } => return,
            State::Peer { peer: p, .. } => {
                self.peer_inflight = self.peer_inflight.saturating_sub(1);
                if let Some(ps) = self.peers.get_mut(&p) {
                    ps.inflight = ps.inflight.saturating_sub(1);
                }
            }
            State::Missing | State::Http => {}
        }
        set_state(
            seg,
            State::Have {
                source: Source::Peer(peer),
            },
            &mut self.missing,
        );
        if let Some(p) = self.peers.get_mut(&peer) {
            p.failures = 0;
        }
        self.stats.p2p_bytes += bytes;
        self.stats.p2p_segments += 1;
        self.actions.push_back(Action::Announce);
        self.plan();
    }

    /// A peer request ended without a usable segment.
    pub fn peer_failed(&mut self, now: u64, peer: PeerKey, id: SegmentId, why: PeerFailure) {
        self.clock(now);
        self.fail_request(peer, id, why);
        self.plan();
    }

    /// Whether the segment is held (so it can be played and shared).
    pub fn has(&self, id: SegmentId) -> bool {
        matches!(
            self.segs.get(&id).map(|s| s.state),
            Some(State::Have { .. })
        )
    }

    /// Where a held segment came from.
    pub fn source(&self, id: SegmentId) -> Option<Source> {
        match self.segs.get(&id)?.state {
            State::Have { source } => Some(source),
            _ => None,
        }
    }

    /// Segments held, oldest first (what [`Action::Announce`] should announce).
    pub fn loaded(&self) -> impl Iterator<Item = SegmentId> + '_ {
        self.segs
            .values()
            .filter(|s| matches!(s.state, State::Have { .. }))
            .map(|s| s.info.id)
    }

    /// Segments being fetched over HTTP right now.
    pub fn loading(&self) -> impl Iterator<Item = SegmentId> + '_ {
        self.segs
            .values()
            .filter(|s| s.state == State::Http)
            .map(|s| s.info.id)
    }

    /// The media time up to which held segments play without a gap from `from_ms`.
    pub fn contiguous_end(&self, from_ms: u64) -> u64 {
        let mut end = from_ms;
        for seg in self.segs.values() {
            let s = seg.info.start_ms;
            let e = s + seg.info.duration_ms;
            if e <= end {
                continue;
            }
            // Allow rounding gaps of a few ms between EXTINF-derived start times.
            if s > end + 5 || !matches!(seg.state, State::Have { .. }) {
                break;
            }
            end = e;
        }
        end
    }

    /// Whether some segment inside the look-ahead window is still missing: the only
    /// case in which an announcement can change what the scheduler does. While this
    /// is false, [`Scheduler::peer_announced`] just records what the peer holds, so
    /// a caller that delivers many announcements (the simulator) may hold them back
    /// and hand over only each peer's latest before its next call to this scheduler.
    pub fn has_missing(&self) -> bool {
        self.missing > 0 && self.wanted_missing().next().is_some()
    }

    /// Whether the peer is banned for sending bad data.
    pub fn is_banned(&self, peer: PeerKey) -> bool {
        self.banned.contains(&peer)
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    fn fail_request(&mut self, peer: PeerKey, id: SegmentId, why: PeerFailure) {
        if let Some(seg) = self.segs.get_mut(&id) {
            if let State::Peer { peer: p, .. } = seg.state {
                if p == peer {
                    set_state(seg, State::Missing, &mut self.missing);
                    try_once(&mut seg.tried, peer);
                    self.peer_inflight = self.peer_inflight.saturating_sub(1);
                    if let Some(ps) = self.peers.get_mut(&peer) {
                        ps.inflight = ps.inflight.saturating_sub(1);
                    }
                }
            }
        }
        match why {
            PeerFailure::Timeout => self.stats.peer_timeouts += 1,
            PeerFailure::Corrupt => self.stats.rejected_segments += 1,
            PeerFailure::Absent | PeerFailure::Closed => self.stats.peer_failures += 1,
        }
        if why == PeerFailure::Corrupt {
            if self.banned.insert(peer) {
                self.stats.banned_peers += 1;
            }
            self.drop_peer_requests(peer);
            self.peers.remove(&peer);
            self.actions.push_back(Action::Disconnect(peer));
        } else if let Some(ps) = self.peers.get_mut(&peer) {
            ps.failures += 1;
            // What it said it holds is no longer trusted for this segment.
            if !ps.distrusted.contains(&id) {
                ps.distrusted.push(id);
            }
        }
    }

    fn drop_peer_requests(&mut self, peer: PeerKey) {
        for seg in self.segs.values_mut() {
            if let State::Peer { peer: p, .. } = seg.state {
                if p == peer {
                    set_state(seg, State::Missing, &mut self.missing);
                    try_once(&mut seg.tried, peer);
                    self.peer_inflight = self.peer_inflight.saturating_sub(1);
                }
            }
        }
    }

    fn expire(&mut self) {
        let now = self.now;
        let expired: Vec<(PeerKey, SegmentId)> = self
            .segs
            .values()
            .filter_map(|s| match s.state {
                State::Peer { peer, deadline } if deadline <= now => Some((peer, s.info.id)),
                _ => None,
            })
            .collect();
        for (peer, id) in expired {
            self.actions
                .push_back(Action::CancelPeer { peer, segment: id });
            self.fail_request(peer, id, PeerFailure::Timeout);
        }
    }

    fn forget_old(&mut self) {
        let keep_from = self.position_ms.saturating_sub(self.cfg.keep_behind_ms);
        while let Some((id, seg)) = self
            .segs
            .pop_front_if(|s| s.info.start_ms + s.info.duration_ms < keep_from)
        {
            if seg.state == State::Missing {
                self.missing -= 1;
            }
            if let State::Peer { peer, .. } = seg.state {
                self.peer_inflight = self.peer_inflight.saturating_sub(1);
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.inflight = p.inflight.saturating_sub(1);
                }
                self.actions
                    .push_back(Action::CancelPeer { peer, segment: id });
            }
            // Peers' announcements may still list it: harmless, only segments
            // inside the window are ever looked up there.
        }
    }

    /// Missing segments inside the look-ahead window: what a plan may start fetching.
    fn wanted_missing(&self) -> impl Iterator<Item = &Seg> + '_ {
        self.segs
            .values()
            .filter(|s| s.state == State::Missing && self.wants(s))
    }

    /// Whether the segment is still to be played and inside the look-ahead window.
    fn wants(&self, seg: &Seg) -> bool {
        let end = seg.info.start_ms + seg.info.duration_ms;
        end > self.position_ms && seg.info.start_ms < self.position_ms + self.cfg.ahead_ms
    }

    /// Media time left before the segment plays.
    fn slack(&self, seg: &Seg) -> u64 {
        seg.info.start_ms.saturating_sub(self.position_ms)
    }

    /// Wall time at which the segment turns urgent, assuming playback runs on.
    fn urgent_at(&self, seg: &Seg) -> Option<u64> {
        let slack = self.slack(seg);
        Some(self.now + slack.saturating_sub(self.cfg.urgent_ms))
    }

    /// This peer's rank among the swarm for seeding `id` (0 = fetches it first).
    fn seed_rank(&self, id: SegmentId) -> usize {
        let mine = rendezvous(self.me, id);
        self.peers
            .keys()
            .filter(|p| rendezvous(**p, id) > mine)
            .count()
    }

    /// Wall time at which this peer fetches a segment nobody announced over HTTP.
    fn seed_at(&self, seg: &Seg) -> Option<u64> {
        if !self.cfg.p2p {
            return Some(self.now);
        }
        let grace = self.join_grace_end();
        if self.peers.is_empty() {
            return Some(grace.unwrap_or(self.now));
        }
        let rank = self.seed_rank(seg.info.id) as u64;
        let elected = seg.listed_at + rank * self.cfg.seed_stagger_ms;
        Some(grace.map_or(elected, |end| elected.max(end)))
    }

    fn someone_has(&self, id: SegmentId) -> bool {
        self.peers
            .values()
            .any(|p| p.holds(id) || p.held.fetching(id))
    }

    fn best_peer(&self, seg: &Seg) -> Option<PeerKey> {
        let id = seg.info.id;
        self.peers
            .iter()
            .filter(|(k, p)| {
                p.holds(id)
                    && p.inflight < self.cfg.max_per_peer
                    && p.failures < self.cfg.max_peer_failures
                    && !seg.tried.contains(k)
            })
            // Least busy first, then spread by hash so that the swarm does not pile
            // onto the one peer that seeded.
            .min_by_key(|(k, p)| (p.inflight, u64::MAX - rendezvous(**k, id)))
            .map(|(k, _)| *k)
    }

    fn plan(&mut self) {
        debug_assert_eq!(
            self.missing,
            self.segs
                .values()
                .filter(|s| s.state == State::Missing)
                .count()
        );
        // Only missing segments inside the window can start a fetch; most calls have
        // none, so look before allocating.
        if self.missing == 0 {
            return;
        }
        let ids: Vec<SegmentId> = self.wanted_missing().map(|s| s.info.id).collect();
        for id in ids {
            let Some(seg) = self.segs.get(&id) else {
                continue;
            };
            if seg.state != State::Missing || !self.wants(seg) {
                continue;
            }
            let slack = self.slack(seg);
            let urgent = slack <= self.cfg.urgent_ms;
            let use_http = if urgent || !self.cfg.p2p {
                true
            } else if self.peers.is_empty() {
                self.join_grace_end().is_none()
            } else if self.someone_has(id) || self.join_grace_end().is_some() {
                false
            } else {
                self.seed_at(seg).is_some_and(|t| t <= self.now)
            };
            if use_http {
                if self.http.len() < self.cfg.max_http {
                    self.start_http(id);
                }
                continue;
            }
            if self.peer_inflight >= self.cfg.max_peer_downloads {
                continue;
            }
            let window = slack - self.cfg.urgent_ms;
            if window < self.cfg.min_peer_window_ms {
                continue;
            }
            if let Some(peer) = self.best_peer(seg) {
                let deadline = self.now + window.min(self.cfg.peer_timeout_ms);
                self.start_peer(id, peer, deadline);
            }
        }
    }

    fn start_http(&mut self, id: SegmentId) {
        if let Some(seg) = self.segs.get_mut(&id) {
            set_state(seg, State::Http, &mut self.missing);
            if !self.http.contains(&id) {
                self.http.push(id);
            }
            self.actions.push_back(Action::FetchHttp(id));
            // Peers learn that it is coming and wait for it instead of fetching it too.
            self.actions.push_back(Action::Announce);
        }
    }

    fn start_peer(&mut self, id: SegmentId, peer: PeerKey, deadline: u64) {
        if let Some(seg) = self.segs.get_mut(&id) {
            set_state(seg, State::Peer { peer, deadline }, &mut self.missing);
            self.peer_inflight += 1;
            if let Some(p) = self.peers.get_mut(&peer) {
                p.inflight += 1;
            }
            self.stats.peer_requests += 1;
            self.actions
                .push_back(Action::RequestPeer { peer, segment: id });
        }
    }
}

/// Moves a segment to `state`, keeping the count of missing segments.
fn set_state(seg: &mut Seg, state: State, missing: &mut usize) {
    if seg.state == State::Missing {
        *missing -= 1;
    }
    if state == State::Missing {
        *missing += 1;
    }
    seg.state = state;
}

/// Notes that `peer` failed a segment (once).
fn try_once(tried: &mut Vec<PeerKey>, peer: PeerKey) {
    if !tried.contains(&peer) {
        tried.push(peer);
    }
}

/// Removes `id` from a small list; whether it was there.
fn remove_id(ids: &mut Vec<SegmentId>, id: SegmentId) -> bool {
    match ids.iter().position(|x| *x == id) {
        Some(i) => {
            ids.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Rendezvous score of a peer for a segment (higher seeds first).
pub(crate) fn rendezvous(peer: PeerKey, id: SegmentId) -> u64 {
    let mut x = peer.0 ^ id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
