//! What an origin asks of the fleet it belongs to, as traits the binary implements
//! over the registry (the origin crate does not know Redis):
//! [`FleetControl`] writes operator changes (publish keys, P2P off, kicks, recording
//! switches) where every
//! node of the fleet reads them, and [`AudienceSource`] answers a stream's viewers
//! over every edge, origin and tracker.
//!
//! Not here: how the fleet stores or reads them (crate `fleet`), nor applying the
//! fleet's state back to this origin (the binary calls `PublishKeys::replace`,
//! `Streams::set_p2p`, `Streams::kick` and `Recordings::start`/`stop`).

use std::future::Future;
use std::pin::Pin;

use super::keys::KeyEntry;

/// A fleet write that did not happen (the store is away or refused it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FleetError(pub String);

/// The future of a fleet write.
pub type FleetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, FleetError>> + Send + 'a>>;

/// Operator changes that must reach every node of the fleet. Each is written to the
/// fleet first; the origin changes itself only once that succeeded.
pub trait FleetControl: Send + Sync + std::fmt::Debug {
    /// Adds a key; `false` when the stream already has it.
    fn add_key<'a>(&'a self, stream: &'a str, entry: &'a KeyEntry) -> FleetFuture<'a, bool>;
    /// Revokes key `id` (or every key) of `stream`; how many went.
    fn revoke_keys<'a>(&'a self, stream: &'a str, id: Option<&'a str>) -> FleetFuture<'a, u64>;
    /// Turns P2P of `stream` on or off for every tracker.
    fn set_p2p<'a>(&'a self, stream: &'a str, enabled: bool) -> FleetFuture<'a, ()>;
    /// Asks every origin to kick the publisher of `stream`.
    fn kick<'a>(&'a self, stream: &'a str) -> FleetFuture<'a, ()>;
    /// Switches recording of `stream` on or off on every origin.
    fn set_record<'a>(&'a self, stream: &'a str, on: bool) -> FleetFuture<'a, ()>;
}

/// A stream's audience over the fleet.
#[derive(Debug, Clone)]
pub struct Audience {
    /// The total (see the README's counting rule).
    pub viewers: u64,
    /// The breakdown as the API shows it (per node, per region, P2P, CMCD).
    pub detail: serde_json::Value,
}

/// Answers a stream's audience from the fleet's last reports; never waits.
pub trait AudienceSource: Send + Sync + std::fmt::Debug {
    fn audience(&self, stream: &str) -> Option<Audience>;
}
