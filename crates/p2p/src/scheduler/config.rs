//! Tunables of the segment scheduler. Defaults suit 2 s live segments played about
//! three segments behind the live edge.

/// Scheduler settings; all durations in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    /// Ask peers at all. `false` makes the scheduler a plain HTTP player.
    pub p2p: bool,
    /// A segment whose playback starts within this much media time is fetched over HTTP.
    pub urgent_ms: u64,
    /// How far ahead of the playhead segments are fetched at all.
    pub ahead_ms: u64,
    /// Longest wait for one peer request before it is given up.
    pub peer_timeout_ms: u64,
    /// A peer request is only made when at least this much time is left before the
    /// segment turns urgent.
    pub min_peer_window_ms: u64,
    /// Delay between the HTTP fetches of a new segment by the first, second, … ranked
    /// peer when nobody has announced it yet.
    pub seed_stagger_ms: u64,
    /// HTTP downloads at once.
    pub max_http: usize,
    /// Peer downloads at once (all peers together).
    pub max_peer_downloads: usize,
    /// Downloads at once from one peer (p2p-media-loader's protocol allows one).
    pub max_per_peer: usize,
    /// Failed requests after which a peer is no longer asked (it may still ask us).
    pub max_peer_failures: u32,
    /// Segments this far behind the playhead are forgotten.
    pub keep_behind_ms: u64,
    /// After start, how long a viewer that sees no peer yet waits for one before it
    /// loads non-urgent segments over HTTP: the time to announce to the tracker and
    /// open the first connections. Without it a joining viewer fills its whole
    /// look-ahead from the CDN before its first peer could answer.
    pub join_grace_ms: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            p2p: true,
            urgent_ms: 1_500,
            ahead_ms: 30_000,
            peer_timeout_ms: 4_000,
            min_peer_window_ms: 300,
            seed_stagger_ms: 600,
            max_http: 2,
            max_peer_downloads: 4,
            max_per_peer: 1,
            max_peer_failures: 4,
            keep_behind_ms: 30_000,
            join_grace_ms: 3_000,
        }
    }
}
