//! Which segment to fetch next, and from where: HTTP (the CDN) or a peer.
//!
//! The rule that keeps P2P from ever making playback worse: a segment whose playback
//! is less than [`SchedulerConfig::urgent_ms`] away always comes over HTTP; peers are
//! only asked for segments further ahead, with a deadline that ends before the
//! segment turns urgent, so a slow or lying peer costs bandwidth, never a stall.
//! For a live edge every viewer sees a new segment at about the same time; one of
//! them (chosen by rendezvous hash over the swarm, so all agree without talking)
//! fetches it over HTTP at once, the others wait for its announcement and take it
//! from a peer; the next in rank steps in after [`SchedulerConfig::seed_stagger_ms`]
//! if nobody announced it. A viewer that just started waits
//! [`SchedulerConfig::join_grace_ms`] for its peers' announcements before it seeds
//! anything, so that joining does not mean loading the whole buffer from the CDN.
//!
//! Sans-IO and deterministic: time is milliseconds passed in by the caller, events go
//! in as method calls and [`Action`]s come out of [`Scheduler::poll_action`]. The same
//! code drives `mediamesh peer` (real sockets) and `mediamesh sim` (simulated time).
//!
//! At `--latency low|balanced` the same rules apply per LL-HLS part instead
//! ([`PartScheduler`], `parts.rs`: a pull mesh, its doc says why).
//!
//! Not here: transport, the wire protocol ([`crate::proto`]), integrity (the caller
//! checks a peer's bytes against the origin's signed digests *before* reporting
//! [`Scheduler::peer_done`], and reports a mismatch as [`PeerFailure::Corrupt`]), and
//! the player clock ([`Playhead`]).

mod config;
mod core;
mod holdings;
mod ids;
mod parts;
mod playhead;
mod tables;
mod upload;

#[cfg(test)]
mod tests;

pub use self::config::SchedulerConfig;
pub use self::core::{
    Action, PeerFailure, PeerKey, Scheduler, SchedulerStats, SegmentId, SegmentInfo, Source,
};
pub use self::holdings::Holdings;
pub use self::parts::{PartAction, PartConfig, PartInfo, PartKey, PartScheduler, PartStats};
pub use self::playhead::{PlayState, Playhead};
pub use self::upload::UploadGate;
