//! The console's delivery time series: every few seconds a sampler reads this
//! process's cumulative byte and CMCD counters (or, on the router, the egress rates
//! the registry reports) and keeps the difference to the last reading in a small
//! ring buffer in memory, which `GET /api/v1/console/delivery` returns.
//!
//! What it is for: the console's "bytes from origin, edges and peers over time" and
//! P2P offload charts, and its CMCD stall ratio. What it is not: storage (a restart
//! forgets it, and it holds [`CAPACITY`] samples only), nor fleet-wide accounting (a
//! node counts what passes through it; the router only integrates reported rates).

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

/// Samples kept: at the default 2 s interval, the last 10 minutes.
pub const CAPACITY: usize = 300;

/// Cumulative counters at one instant, as a source reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// Bytes the origin answered (to edges or viewers).
    pub origin: u64,
    /// Bytes edges answered to viewers; `None` where no edge runs (origin alone).
    pub edge: Option<u64>,
    /// Bytes peers uploaded to each other, as they report it to the tracker; `None`
    /// where no tracker runs.
    pub p2p: Option<u64>,
    /// Requests that carried CMCD; and of those, how many said the buffer ran dry
    /// (`bs`). `None` where no edge reads CMCD.
    pub cmcd: Option<(u64, u64)>,
}

/// What moved in one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Wall clock at the end of the interval, Unix milliseconds.
    pub t_ms: u64,
    pub origin_bytes: u64,
    pub edge_bytes: Option<u64>,
    pub p2p_bytes: Option<u64>,
    pub cmcd_requests: Option<u64>,
    pub cmcd_stalls: Option<u64>,
}

/// The ring buffer and the last reading it is differenced against.
#[derive(Debug, Default)]
pub struct Delivery {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    samples: VecDeque<Sample>,
    last: Option<Counters>,
}

/// `now - before`, where a counter that went down was reset (a restart of what it
/// counts): then everything it holds now is new.
fn delta(now: u64, before: u64) -> u64 {
    if now >= before {
        now - before
    } else {
        now
    }
}

fn delta_opt(now: Option<u64>, before: Option<u64>) -> Option<u64> {
    match (now, before) {
        (Some(n), Some(b)) => Some(delta(n, b)),
        (Some(_), None) => Some(0),
        (None, _) => None,
    }
}

impl Delivery {
    /// Records a reading taken at `t_ms`. The first reading only sets the baseline.
    pub fn record(&self, t_ms: u64, now: Counters) {
        let mut g = self.inner.lock();
        if let Some(before) = g.last {
            let s = Sample {
                t_ms,
                origin_bytes: delta(now.origin, before.origin),
                edge_bytes: delta_opt(now.edge, before.edge),
                p2p_bytes: delta_opt(now.p2p, before.p2p),
                cmcd_requests: delta_opt(now.cmcd.map(|c| c.0), before.cmcd.map(|c| c.0)),
                cmcd_stalls: delta_opt(now.cmcd.map(|c| c.1), before.cmcd.map(|c| c.1)),
            };
            if g.samples.len() >= CAPACITY {
                g.samples.pop_front();
            }
            g.samples.push_back(s);
        }
        g.last = Some(now);
    }

    /// The samples, oldest first, and the last cumulative reading.
    pub fn snapshot(&self) -> (Vec<Sample>, Option<Counters>) {
        let g = self.inner.lock();
        (g.samples.iter().copied().collect(), g.last)
    }
}

/// The sampling task; dropping it stops the sampling.
pub struct Sampler(tokio::task::JoinHandle<()>);

impl Drop for Sampler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads `source` every `interval` into `delivery` until the [`Sampler`] is dropped.
pub fn spawn(
    delivery: std::sync::Arc<Delivery>,
    interval: Duration,
    mut source: impl FnMut() -> Counters + Send + 'static,
) -> Sampler {
    Sampler(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            delivery.record(fleet::registry::now_ms(), source());
        }
    }))
}

/// This process's counters from its Prometheus page (`text`): origin answers, edge
/// answers to viewers, P2P bytes the tracker heard of, CMCD requests and stalls.
pub fn from_metrics(text: &str, edge: bool, tracker: bool) -> Counters {
    use fleet::registry::load::prometheus_value as value;
    Counters {
        origin: value(text, "mediamesh_origin_egress_bytes_total"),
        edge: edge.then(|| value(text, "mediamesh_edge_egress_bytes_total")),
        p2p: tracker.then(|| value(text, "mediamesh_tracker_peer_uploaded_bytes_total")),
        cmcd: edge.then(|| {
            (
                value(text, "mediamesh_edge_cmcd_requests_total"),
                value(text, "mediamesh_edge_cmcd_buffer_starvation_total"),
            )
        }),
    }
}

/// The router's reading: the registry's egress rates of origins and edges, integrated
/// over the time since the last call (the router moves no media itself).
pub struct RateIntegrator {
    view: std::sync::Arc<fleet::registry::membership::View>,
    last: Option<std::time::Instant>,
    totals: Counters,
}

impl RateIntegrator {
    pub fn new(view: std::sync::Arc<fleet::registry::membership::View>) -> Self {
        RateIntegrator {
            view,
            last: None,
            totals: Counters {
                edge: Some(0),
                ..Counters::default()
            },
        }
    }

    /// Adds `rate × elapsed` for every node and returns the running totals.
    pub fn read(&mut self) -> Counters {
        use fleet::registry::NodeKind;
        let now = std::time::Instant::now();
        let secs = self
            .last
            .map_or(0.0, |l| now.duration_since(l).as_secs_f64());
        self.last = Some(now);
        let (mut origin, mut edge) = (0.0, 0.0);
        for n in self.view.nodes().iter() {
            let bytes = n.load.egress_bps as f64 / 8.0 * secs;
            match n.kind {
                NodeKind::Origin => origin += bytes,
                NodeKind::Edge => edge += bytes,
                NodeKind::Tracker => {}
            }
        }
        self.totals.origin = self.totals.origin.saturating_add(origin as u64);
        self.totals.edge = Some(self.totals.edge.unwrap_or(0).saturating_add(edge as u64));
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(origin: u64, edge: u64, p2p: u64) -> Counters {
        Counters {
            origin,
            edge: Some(edge),
            p2p: Some(p2p),
            cmcd: Some((edge / 10, p2p / 10)),
        }
    }

    #[test]
    fn samples_are_differences_and_the_first_reading_is_a_baseline() {
        let d = Delivery::default();
        d.record(1, c(100, 1000, 50));
        assert!(d.snapshot().0.is_empty());
        d.record(2, c(150, 1600, 250));
        let (s, last) = d.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].t_ms, 2);
        assert_eq!(s[0].origin_bytes, 50);
        assert_eq!(s[0].edge_bytes, Some(600));
        assert_eq!(s[0].p2p_bytes, Some(200));
        assert_eq!(s[0].cmcd_requests, Some(60));
        assert_eq!(s[0].cmcd_stalls, Some(20));
        assert_eq!(last, Some(c(150, 1600, 250)));
    }

    #[test]
    fn a_counter_that_goes_down_was_reset_and_absent_ones_stay_absent() {
        let d = Delivery::default();
        let only_origin = |o| Counters {
            origin: o,
            ..Counters::default()
        };
        d.record(1, only_origin(500));
        d.record(2, only_origin(30));
        let (s, _) = d.snapshot();
        assert_eq!(s[0].origin_bytes, 30);
        assert_eq!(s[0].edge_bytes, None);
        assert_eq!(s[0].p2p_bytes, None);
        assert_eq!(s[0].cmcd_requests, None);
    }

    #[test]
    fn the_ring_keeps_the_newest_samples_only() {
        let d = Delivery::default();
        for i in 0..(CAPACITY as u64 + 10) {
            d.record(i, c(i * 10, 0, 0));
        }
        let (s, _) = d.snapshot();
        assert_eq!(s.len(), CAPACITY);
        assert_eq!(s.last().map(|x| x.t_ms), Some(CAPACITY as u64 + 9));
        assert_eq!(s.first().map(|x| x.t_ms), Some(10));
    }

    #[test]
    fn counters_come_from_the_prometheus_page() {
        let text = "mediamesh_origin_egress_bytes_total 10\n\
            mediamesh_edge_egress_bytes_total{cache=\"hit\"} 5\n\
            mediamesh_edge_egress_bytes_total{cache=\"miss\"} 7\n\
            mediamesh_tracker_peer_uploaded_bytes_total 3\n\
            mediamesh_edge_cmcd_requests_total 4\n";
        let got = from_metrics(text, true, true);
        assert_eq!(got.origin, 10);
        assert_eq!(got.edge, Some(12));
        assert_eq!(got.p2p, Some(3));
        assert_eq!(got.cmcd, Some((4, 0)));
        let origin_alone = from_metrics(text, false, false);
        assert_eq!(origin_alone.edge, None);
        assert_eq!(origin_alone.p2p, None);
        assert_eq!(origin_alone.cmcd, None);
    }
}
