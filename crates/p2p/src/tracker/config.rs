//! Tracker limits and timings. Every bound the tracker enforces lives here, so an
//! operator can see (and a test can shrink) them in one place. No parsing of files
//! or flags happens here.

use std::collections::HashSet;
use std::time::Duration;

use super::id::Id20;
use super::region::RegionMap;

/// Limits and timings for [`crate::tracker::Tracker`] and its WebSocket shell.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Largest accepted text frame, bytes (also the WebSocket `max_message_size`).
    pub max_message_bytes: usize,
    /// Peers per swarm; announces of new peers beyond this are refused.
    pub max_peers_per_swarm: usize,
    /// Swarms (info hashes) tracked at once; new swarms beyond this are refused.
    pub max_swarms: usize,
    /// Peer ids (over all swarms) a single connection may announce.
    pub max_peers_per_connection: usize,
    /// Offers relayed per announce; extra offers are ignored.
    pub max_offers_per_announce: usize,
    /// Info hashes per scrape (and swarms listed by a scrape without info hashes).
    pub max_scrape_hashes: usize,
    /// Sustained messages per second per connection.
    pub rate_per_sec: f64,
    /// Messages a connection may send in a burst.
    pub rate_burst: f64,
    /// Announce interval told to clients; peers idle for twice this are expired.
    pub interval: Duration,
    /// Outgoing messages queued per connection before it counts as too slow and is
    /// disconnected (WebSocket shell only).
    pub outgoing_queue: usize,
    /// How long one WebSocket write may take before the client is dropped (shell only).
    pub send_timeout: Duration,
    /// How often the shell calls [`crate::tracker::Tracker::tick`].
    pub tick_every: Duration,
    /// How often the shell PINGs a WebSocket (browsers answer by themselves).
    pub ping_every: Duration,
    /// A WebSocket that sends nothing (no message, no PONG) for this long is closed.
    /// At least twice `ping_every` is used, so a live client always has time to answer.
    pub idle_timeout: Duration,
    /// Initial read buffer of a WebSocket, bytes. It grows up to `max_message_bytes`
    /// for a large message; small keeps thousands of idle sockets cheap (the
    /// tungstenite default, 128 KiB, cost ~130 KiB per socket).
    pub ws_read_buffer: usize,
    /// Swarms where the operator turned P2P off: announces get a failure reason.
    pub disabled_swarms: HashSet<Id20>,
    /// Client address blocks → regions; peers only meet peers of their region.
    pub regions: RegionMap,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_message_bytes: 64 * 1024,
            max_peers_per_swarm: 1000,
            max_swarms: 100_000,
            max_peers_per_connection: 100,
            max_offers_per_announce: 10,
            max_scrape_hashes: 100,
            rate_per_sec: 10.0,
            rate_burst: 20.0,
            interval: Duration::from_secs(120),
            outgoing_queue: 256,
            send_timeout: Duration::from_secs(10),
            tick_every: Duration::from_secs(15),
            ping_every: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            ws_read_buffer: 4 * 1024,
            disabled_swarms: HashSet::new(),
            regions: RegionMap::default(),
        }
    }
}

impl TrackerConfig {
    /// Idle time after which a peer is expired: twice the announce interval.
    pub fn peer_ttl(&self) -> Duration {
        self.interval.saturating_mul(2)
    }

    /// The WebSocket idle timeout actually applied: at least twice the ping period.
    pub fn ws_idle_timeout(&self) -> Duration {
        self.idle_timeout.max(self.ping_every.saturating_mul(2))
    }
}
