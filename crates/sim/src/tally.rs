//! Counters that swarms add to while they run, one set per worker thread, merged by
//! plain integer addition so totals do not depend on how swarms were spread over
//! threads. Everything is kept per class (region × rendition) so that sampling
//! weights are applied once, at the end.
//!
//! Not here: turning counts into the report ([`crate::report`]).

/// Fields of the per-second series, per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Field {
    /// Difference arrays: viewers present / stalled at each second boundary.
    JoinDiff,
    LeaveDiff,
    StallStart,
    StallEnd,
    /// Bytes delivered in that second.
    HttpBytes,
    P2pBytes,
}

pub const FIELDS: usize = 6;

/// Totals per class.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClassTotals {
    pub viewers_done: u64,
    pub failed_starts: u64,
    pub played_ms: u64,
    pub stall_ms: u64,
    pub stalls: u64,
    /// Bytes handed to viewers by edges (or the origin, with no CDN) and by peers.
    pub http_delivered: u64,
    pub p2p_delivered: u64,
    /// Bytes the viewers' schedulers accepted (their own counters).
    pub consumed: u64,
    pub uploaded: u64,
    pub viewer_ms: u64,
    pub peer_requests: u64,
    pub peer_timeouts: u64,
    /// HTTP requests for a unit already inside the scheduler's urgent window.
    pub urgent_http: u64,
}

/// One worker's counters.
#[derive(Debug, Clone)]
pub struct Tally {
    pub secs: usize,
    pub classes: usize,
    series: Vec<u64>,
    pub totals: Vec<ClassTotals>,
    /// (startup ms, class) of viewers that started.
    pub startup: Vec<(u32, u16)>,
    /// (mean latency to live ms, class) of viewers that played.
    pub latency: Vec<(u32, u16)>,
    /// Deliveries before the segment existed (must stay 0).
    pub early_deliveries: u64,
    /// Largest share of its uplink any viewer used over its upload time, in ppm.
    pub max_uplink_ppm: u64,
}

impl Tally {
    pub fn new(secs: usize, classes: usize) -> Tally {
        Tally {
            secs,
            classes,
            series: vec![0; secs * classes * FIELDS],
            totals: vec![ClassTotals::default(); classes],
            startup: Vec::new(),
            latency: Vec::new(),
            early_deliveries: 0,
            max_uplink_ppm: 0,
        }
    }

    /// Adds `v` to `field` of `class` in the second holding wall time `ms`.
    pub fn add(&mut self, class: usize, field: Field, ms: u64, v: u64) {
        let sec = ((ms / 1000) as usize).min(self.secs - 1);
        self.series[(class * self.secs + sec) * FIELDS + field as usize] += v;
    }

    /// Adds one at the first second boundary at or after `ms`.
    pub fn mark(&mut self, class: usize, field: Field, ms: u64) {
        self.add(class, field, ms.div_ceil(1000) * 1000, 1);
    }

    pub fn get(&self, class: usize, field: Field, sec: usize) -> u64 {
        self.series[(class * self.secs + sec) * FIELDS + field as usize]
    }

    pub fn merge(&mut self, o: &Tally) {
        for (a, b) in self.series.iter_mut().zip(&o.series) {
            *a += b;
        }
        for (a, b) in self.totals.iter_mut().zip(&o.totals) {
            a.viewers_done += b.viewers_done;
            a.failed_starts += b.failed_starts;
            a.played_ms += b.played_ms;
            a.stall_ms += b.stall_ms;
            a.stalls += b.stalls;
            a.http_delivered += b.http_delivered;
            a.p2p_delivered += b.p2p_delivered;
            a.consumed += b.consumed;
            a.uploaded += b.uploaded;
            a.viewer_ms += b.viewer_ms;
            a.peer_requests += b.peer_requests;
            a.peer_timeouts += b.peer_timeouts;
            a.urgent_http += b.urgent_http;
        }
        self.startup.extend_from_slice(&o.startup);
        self.latency.extend_from_slice(&o.latency);
        self.early_deliveries += o.early_deliveries;
        self.max_uplink_ppm = self.max_uplink_ppm.max(o.max_uplink_ppm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_addition() {
        let mut a = Tally::new(10, 2);
        let mut b = Tally::new(10, 2);
        a.add(1, Field::HttpBytes, 2_500, 7);
        b.add(1, Field::HttpBytes, 2_000, 5);
        b.mark(0, Field::JoinDiff, 2_001);
        b.add(0, Field::P2pBytes, 99_999, 1);
        a.merge(&b);
        assert_eq!(a.get(1, Field::HttpBytes, 2), 12);
        assert_eq!(a.get(0, Field::JoinDiff, 3), 1);
        assert_eq!(a.get(0, Field::P2pBytes, 9), 1);
    }
}
