//! One simulated viewer's scheduler behind one interface: the whole-segment
//! `p2p::scheduler::Scheduler` (`latency = "max-offload"`) or the part-level
//! `p2p::scheduler::PartScheduler` (`low`, `balanced`), both the real code of
//! `mediamesh peer`, addressed in the run's units ([`crate::units`]) so that the
//! swarm drives either the same way: events in, [`Act`]s out.
//!
//! Not here: the network, the playlist and the player clock ([`crate::swarm`]); no
//! decision of its own — every choice of source, peer or time-out is the scheduler's.

use p2p::scheduler::{
    Action, Holdings, PartAction, PartConfig, PartInfo, PartKey, PartScheduler, PeerFailure,
    PeerKey, Scheduler, SchedulerConfig, SegmentId, SegmentInfo,
};

use crate::units::Units;

/// Parts a viewer announces at most in the simulator: its newest 16 held parts.
/// `mediamesh peer` announces its newest 64; the older 48 end behind every
/// neighbour's playhead at the latency targets simulated (at most a few seconds
/// apart), so no scheduler could ask for them, and leaving them out keeps each
/// announcement cheap to hand over (every part is announced to every neighbour).
pub const ANNOUNCED_PARTS: usize = 16;

/// What the swarm must do for a viewer (its scheduler's action, in units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    FetchHttp(u64),
    RequestPeer { peer: PeerKey, unit: u64 },
    CancelPeer { peer: PeerKey, unit: u64 },
    Announce,
    Disconnect(PeerKey),
}

/// What a viewer announces to its neighbours.
#[derive(Debug, Clone)]
pub enum Announcement {
    /// Segments held and being fetched over HTTP (shared, reference-counted).
    Segments(Holdings),
    /// The newest verified parts held.
    Parts(Vec<PartKey>),
}

impl Default for Announcement {
    fn default() -> Self {
        Announcement::Segments(Holdings::default())
    }
}

/// Byte and request counters of a viewer, at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayerStats {
    pub http_bytes: u64,
    pub p2p_bytes: u64,
    pub peer_requests: u64,
    pub peer_timeouts: u64,
}

/// A viewer's scheduler.
#[derive(Debug)]
pub enum Player {
    Segments(Scheduler),
    Parts {
        sched: PartScheduler,
        units: Units,
        /// Peer requests made (the part scheduler does not count them).
        requests: u64,
    },
}

impl Player {
    /// The whole-segment scheduler of `mediamesh peer --latency max-offload`.
    pub fn segments(cfg: SchedulerConfig, me: PeerKey) -> Player {
        Player::Segments(Scheduler::new(cfg, me))
    }

    /// The part scheduler of `mediamesh peer --latency low|balanced`.
    pub fn parts(cfg: PartConfig, me: PeerKey, units: Units) -> Player {
        Player::Parts {
            sched: PartScheduler::new(cfg, me),
            units,
            requests: 0,
        }
    }

    pub fn is_parts(&self) -> bool {
        matches!(self, Player::Parts { .. })
    }

    /// The playlist lists segment `info` (segment mode; ignored otherwise).
    pub fn list_segment(&mut self, now: u64, info: SegmentInfo) {
        if let Player::Segments(s) = self {
            s.segment_listed(now, info);
        }
    }

    /// The playlist lists part `info`, `complete` or only preload-hinted (part mode;
    /// ignored otherwise).
    pub fn list_part(&mut self, now: u64, info: PartInfo, complete: bool) {
        if let Player::Parts { sched, .. } = self {
            sched.part_listed(now, info, complete);
        }
    }

    pub fn set_position(&mut self, now: u64, position_ms: u64) {
        match self {
            Player::Segments(s) => s.set_position(now, position_ms),
            Player::Parts { sched, .. } => sched.set_position(now, position_ms),
        }
    }

    pub fn tick(&mut self, now: u64) {
        match self {
            Player::Segments(s) => s.tick(now),
            Player::Parts { sched, .. } => sched.tick(now),
        }
    }

    pub fn poll_action(&mut self) -> Option<Act> {
        match self {
            Player::Segments(s) => s.poll_action().map(|a| match a {
                Action::FetchHttp(SegmentId(u)) => Act::FetchHttp(u),
                Action::RequestPeer { peer, segment } => Act::RequestPeer {
                    peer,
                    unit: segment.0,
                },
                Action::CancelPeer { peer, segment } => Act::CancelPeer {
                    peer,
                    unit: segment.0,
                },
                Action::Announce => Act::Announce,
                Action::Disconnect(p) => Act::Disconnect(p),
            }),
            Player::Parts {
                sched,
                units,
                requests,
            } => sched.poll_action().map(|a| match a {
                PartAction::FetchHttp(k) => Act::FetchHttp(units.unit_of(k)),
                PartAction::RequestPeer { peer, part } => {
                    *requests += 1;
                    Act::RequestPeer {
                        peer,
                        unit: units.unit_of(part),
                    }
                }
                PartAction::CancelPeer { peer, part } => Act::CancelPeer {
                    peer,
                    unit: units.unit_of(part),
                },
                PartAction::Announce => Act::Announce,
                PartAction::Disconnect(p) => Act::Disconnect(p),
            }),
        }
    }

    pub fn http_done(&mut self, now: u64, unit: u64, bytes: u64) {
        match self {
            Player::Segments(s) => s.http_done(now, SegmentId(unit), bytes),
            Player::Parts { sched, units, .. } => sched.http_done(now, units.key(unit), bytes),
        }
    }

    pub fn http_failed(&mut self, now: u64, unit: u64) {
        match self {
            Player::Segments(s) => s.http_failed(now, SegmentId(unit)),
            Player::Parts { sched, units, .. } => sched.http_failed(now, units.key(unit)),
        }
    }

    pub fn peer_done(&mut self, now: u64, peer: PeerKey, unit: u64, bytes: u64) {
        match self {
            Player::Segments(s) => s.peer_done(now, peer, SegmentId(unit), bytes),
            Player::Parts { sched, units, .. } => {
                sched.peer_done(now, peer, units.key(unit), bytes)
            }
        }
    }

    pub fn peer_failed(&mut self, now: u64, peer: PeerKey, unit: u64, why: PeerFailure) {
        match self {
            Player::Segments(s) => s.peer_failed(now, peer, SegmentId(unit), why),
            Player::Parts { sched, units, .. } => {
                sched.peer_failed(now, peer, units.key(unit), why)
            }
        }
    }

    pub fn peer_joined(&mut self, now: u64, peer: PeerKey) {
        match self {
            Player::Segments(s) => s.peer_joined(now, peer),
            Player::Parts { sched, .. } => sched.peer_joined(now, peer),
        }
    }

    pub fn peer_left(&mut self, now: u64, peer: PeerKey) {
        match self {
            Player::Segments(s) => s.peer_left(now, peer),
            Player::Parts { sched, .. } => sched.peer_left(now, peer),
        }
    }

    /// A neighbour's announcement (replaces its previous one).
    pub fn peer_announced(&mut self, now: u64, peer: PeerKey, a: &Announcement) {
        match (self, a) {
            (Player::Segments(s), Announcement::Segments(h)) => s.peer_holdings(now, peer, h),
            (Player::Parts { sched, .. }, Announcement::Parts(p)) => {
                sched.peer_announced(now, peer, p.clone())
            }
            // Every viewer of a run plays the same way; a mismatch carries nothing.
            _ => {}
        }
    }

    /// What this viewer announces now.
    pub fn announcement(&self) -> Announcement {
        match self {
            Player::Segments(s) => Announcement::Segments(Holdings::new(s.loaded(), s.loading())),
            Player::Parts { sched, .. } => {
                let held: Vec<PartKey> = sched.held().collect();
                let from = held.len().saturating_sub(ANNOUNCED_PARTS);
                Announcement::Parts(held[from..].to_vec())
            }
        }
    }

    pub fn next_wakeup(&self) -> Option<u64> {
        match self {
            Player::Segments(s) => s.next_wakeup(),
            Player::Parts { sched, .. } => sched.next_wakeup(),
        }
    }

    /// End of the media held without a gap from `from_ms`.
    pub fn contiguous_end(&self, from_ms: u64) -> u64 {
        match self {
            Player::Segments(s) => s.contiguous_end(from_ms),
            Player::Parts { sched, .. } => sched.contiguous_end(from_ms),
        }
    }

    /// Holds unit `unit` (verified, so it may be served to a peer).
    pub fn has(&self, unit: u64) -> bool {
        match self {
            Player::Segments(s) => s.has(SegmentId(unit)),
            Player::Parts { sched, units, .. } => sched.has(units.key(unit)),
        }
    }

    /// Whether an announcement could change what the scheduler does now (segment
    /// mode: some listed segment in its window is missing). The part scheduler has
    /// no such query, so part mode always says yes.
    pub fn has_missing(&self) -> bool {
        match self {
            Player::Segments(s) => s.has_missing(),
            Player::Parts { .. } => true,
        }
    }

    pub fn stats(&self) -> PlayerStats {
        match self {
            Player::Segments(s) => {
                let st = s.stats();
                PlayerStats {
                    http_bytes: st.http_bytes,
                    p2p_bytes: st.p2p_bytes,
                    peer_requests: st.peer_requests,
                    peer_timeouts: st.peer_timeouts,
                }
            }
            Player::Parts {
                sched, requests, ..
            } => {
                let st = sched.stats();
                PlayerStats {
                    http_bytes: st.http_bytes,
                    p2p_bytes: st.p2p_bytes,
                    peer_requests: *requests,
                    peer_timeouts: st.peer_timeouts,
                }
            }
        }
    }
}
