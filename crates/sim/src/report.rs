//! Figures of a run: `report.json` (population totals, sampling weights applied) and
//! the per-second series written as CSV. Weighted sums run in class order and
//! percentiles over sorted samples, so the JSON is byte-identical for the same
//! scenario and seed, whatever the thread count.
//!
//! Not here: HTML plots ([`crate::html`]).

use serde::Serialize;

use crate::edge::Upstream;
use crate::population::Population;
use crate::scenario::{Mode, Scenario};
use crate::tally::{Field, Tally};

/// The `report.json` of one preset.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub scenario: String,
    pub preset: String,
    pub mode: String,
    /// `peers.latency`: `max-offload` (whole segments), `low` or `balanced` (parts).
    pub latency: String,
    /// How far behind the live edge viewers join (`Scenario::live_offset_ms`).
    pub live_offset_s: f64,
    pub seed: u64,
    pub duration_s: u64,
    pub viewers: u64,
    pub simulated_viewers: u64,
    pub sample_fraction: f64,
    pub peak_concurrent_viewers: u64,
    /// Share of viewer bytes that came from peers.
    pub p2p_share: f64,
    pub origin_egress_bytes: u64,
    pub edge_egress_bytes: u64,
    pub shield_to_edge_bytes: u64,
    pub p2p_bytes: u64,
    pub cost_usd: f64,
    pub cost: Cost,
    pub startup_p50_s: f64,
    pub startup_p95_s: f64,
    /// Viewers that left before their first frame.
    pub failed_starts: u64,
    /// Stalled time ÷ watched time (played + stalled).
    pub stall_ratio: f64,
    pub stalls_per_viewer_hour: f64,
    pub latency_to_live_p50_s: f64,
    pub latency_to_live_p95_s: f64,
    pub edge_cache: CacheFigures,
    pub peer_requests: u64,
    pub peer_timeouts: u64,
    /// HTTP requests for a segment (or part) already inside the scheduler's urgent
    /// window when asked for: what peers could not bring in time, plus start-up.
    pub urgent_http_requests: u64,
    pub invariants: Invariants,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cost {
    pub edge_usd: f64,
    pub origin_usd: f64,
    pub shield_usd: f64,
    pub transcode_usd: f64,
    pub tracker_usd: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CacheFigures {
    /// Viewer HTTP requests to edges.
    pub requests: u64,
    /// Requests that caused no upstream fetch (`requests - misses`; requests that
    /// waited on another's fetch count here, as with coalescing).
    pub hits: u64,
    /// Upstream fetches (one per edge, rendition and segment per second at most).
    pub misses: u64,
    pub hit_ratio: f64,
}

/// Checks a run keeps (tests assert them; they are in the report for the reader).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Invariants {
    /// Bytes edges, origin and peers handed over (simulated viewers, unweighted).
    pub bytes_delivered: u64,
    /// Bytes the viewers' schedulers took in.
    pub bytes_consumed: u64,
    /// Segments received before they existed.
    pub early_deliveries: u64,
    /// Highest upload rate of any viewer over its upload time ÷ its uplink.
    pub max_uplink_utilization: f64,
}

/// Per-second figures (population totals).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Row {
    pub second: u64,
    pub viewers: f64,
    pub stalled: f64,
    pub edge_bytes: f64,
    pub p2p_bytes: f64,
    pub origin_bytes: f64,
}

impl Series {
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "second,viewers,stalled_viewers,edge_egress_bytes,p2p_bytes,origin_egress_bytes,p2p_share\n",
        );
        for r in &self.rows {
            let total = r.edge_bytes + r.p2p_bytes;
            let share = if total > 0.0 {
                r.p2p_bytes / total
            } else {
                0.0
            };
            out.push_str(&format!(
                "{},{:.0},{:.0},{:.0},{:.0},{:.0},{:.4}\n",
                r.second, r.viewers, r.stalled, r.edge_bytes, r.p2p_bytes, r.origin_bytes, share
            ));
        }
        out
    }
}

impl Report {
    pub fn build(
        s: &Scenario,
        pop: &Population,
        t: &Tally,
        up: &Upstream,
        origin_series: &[u64],
    ) -> (Report, Series) {
        let classes = pop.classes.len();
        let w: Vec<f64> = (0..classes).map(|c| pop.weight(c)).collect();
        let edges = s.preset.edges();
        let (mut http, mut p2p, mut stall, mut watched, mut viewer_ms, mut stalls) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        let mut edge_usd = 0.0;
        let mut failed = 0.0;
        let (mut delivered, mut consumed) = (0u64, 0u64);
        let (mut requests, mut timeouts, mut urgent) = (0.0, 0.0, 0.0);
        for (c, tot) in t.totals.iter().enumerate().take(classes) {
            http += tot.http_delivered as f64 * w[c];
            p2p += tot.p2p_delivered as f64 * w[c];
            stall += tot.stall_ms as f64 * w[c];
            watched += (tot.stall_ms + tot.played_ms) as f64 * w[c];
            viewer_ms += tot.viewer_ms as f64 * w[c];
            stalls += tot.stalls as f64 * w[c];
            failed += tot.failed_starts as f64 * w[c];
            requests += tot.peer_requests as f64 * w[c];
            timeouts += tot.peer_timeouts as f64 * w[c];
            urgent += tot.urgent_http as f64 * w[c];
            if edges {
                let price = s.regions[pop.classes[c].region].edge_usd_per_gb;
                edge_usd += tot.http_delivered as f64 * w[c] * price / 1e9;
            }
            delivered += tot.http_delivered + tot.p2p_delivered;
            consumed += tot.consumed;
        }
        let origin_bytes = if edges { up.origin_bytes as f64 } else { http };
        let origin_usd = origin_bytes * s.origin.usd_per_gb / 1e9;
        let shield_usd = up.shield_bytes as f64 * s.origin.shield_usd_per_gb / 1e9;
        let transcode_usd =
            up.transcoded_ms as f64 / 3.6e6 * s.costs.transcode_usd_per_rendition_hour;
        let tracker_usd = if s.preset.p2p() {
            viewer_ms / 3.6e6 * s.costs.tracker_usd_per_viewer_hour
        } else {
            0.0
        };
        let cost = Cost {
            edge_usd: round(edge_usd, 4),
            origin_usd: round(origin_usd, 4),
            shield_usd: round(shield_usd, 4),
            transcode_usd: round(transcode_usd, 4),
            tracker_usd: round(tracker_usd, 4),
        };
        let startup = weighted_percentiles(&t.startup, &w, &[0.5, 0.95]);
        let latency = weighted_percentiles(&t.latency, &w, &[0.5, 0.95]);
        let live = s.mode == Mode::Live;
        let series = build_series(t, &w, origin_series, edges);
        let peak = series.rows.iter().map(|r| r.viewers).fold(0.0, f64::max);
        let hits = up.requests.saturating_sub(up.misses);
        let report = Report {
            scenario: s.name.clone(),
            preset: s.preset.name().into(),
            mode: if live { "live" } else { "vod" }.into(),
            latency: s.peers.latency.name().into(),
            live_offset_s: if live {
                round(s.live_offset_ms() as f64 / 1000.0, 3)
            } else {
                0.0
            },
            seed: s.seed,
            duration_s: s.duration_s,
            viewers: s.viewers,
            simulated_viewers: pop.simulated_viewers(),
            sample_fraction: round(pop.sample_fraction, 6),
            peak_concurrent_viewers: peak.round() as u64,
            p2p_share: round(ratio(p2p, p2p + http), 6),
            origin_egress_bytes: origin_bytes.round() as u64,
            edge_egress_bytes: if edges { http.round() as u64 } else { 0 },
            shield_to_edge_bytes: up.shield_bytes,
            p2p_bytes: p2p.round() as u64,
            cost_usd: round(
                edge_usd + origin_usd + shield_usd + transcode_usd + tracker_usd,
                4,
            ),
            cost,
            startup_p50_s: round(startup[0] / 1000.0, 3),
            startup_p95_s: round(startup[1] / 1000.0, 3),
            failed_starts: failed.round() as u64,
            stall_ratio: round(ratio(stall, watched), 6),
            stalls_per_viewer_hour: round(ratio(stalls, viewer_ms / 3.6e6), 4),
            latency_to_live_p50_s: if live {
                round(latency[0] / 1000.0, 3)
            } else {
                0.0
            },
            latency_to_live_p95_s: if live {
                round(latency[1] / 1000.0, 3)
            } else {
                0.0
            },
            edge_cache: CacheFigures {
                requests: up.requests,
                hits,
                misses: up.misses,
                hit_ratio: round(ratio(hits as f64, up.requests as f64), 6),
            },
            peer_requests: requests.round() as u64,
            peer_timeouts: timeouts.round() as u64,
            urgent_http_requests: urgent.round() as u64,
            invariants: Invariants {
                bytes_delivered: delivered,
                bytes_consumed: consumed,
                early_deliveries: t.early_deliveries,
                max_uplink_utilization: round(t.max_uplink_ppm as f64 / 1e6, 6),
            },
        };
        (report, series)
    }

    pub fn to_json(&self) -> String {
        // A struct of plain numbers and strings always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

fn build_series(t: &Tally, w: &[f64], origin_series: &[u64], edges: bool) -> Series {
    let mut rows = Vec::with_capacity(t.secs);
    let mut present = vec![0i64; t.classes];
    let mut stalled = vec![0i64; t.classes];
    for sec in 0..t.secs {
        let mut row = Row {
            second: sec as u64,
            ..Row::default()
        };
        for c in 0..t.classes {
            present[c] +=
                t.get(c, Field::JoinDiff, sec) as i64 - t.get(c, Field::LeaveDiff, sec) as i64;
            stalled[c] +=
                t.get(c, Field::StallStart, sec) as i64 - t.get(c, Field::StallEnd, sec) as i64;
            row.viewers += present[c] as f64 * w[c];
            row.stalled += stalled[c].max(0) as f64 * w[c];
            let http = t.get(c, Field::HttpBytes, sec) as f64 * w[c];
            if edges {
                row.edge_bytes += http;
            } else {
                row.origin_bytes += http;
            }
            row.p2p_bytes += t.get(c, Field::P2pBytes, sec) as f64 * w[c];
        }
        if edges {
            row.origin_bytes = origin_series.get(sec).copied().unwrap_or(0) as f64;
        }
        rows.push(row);
    }
    Series { rows }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Percentiles of (value, class) samples, each weighted by its class weight.
fn weighted_percentiles(samples: &[(u32, u16)], w: &[f64], qs: &[f64]) -> Vec<f64> {
    let mut v: Vec<(u32, u16)> = samples.to_vec();
    v.sort_unstable();
    let total: f64 = v.iter().map(|(_, c)| w[*c as usize]).sum();
    qs.iter()
        .map(|q| {
            if v.is_empty() || total <= 0.0 {
                return 0.0;
            }
            let target = q * total;
            let mut acc = 0.0;
            for (x, c) in &v {
                acc += w[*c as usize];
                if acc >= target {
                    return f64::from(*x);
                }
            }
            v.last().map_or(0.0, |(x, _)| f64::from(*x))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_with_weights() {
        let samples = vec![(100, 0), (200, 0), (300, 1)];
        // Class 1 weighs as much as the two samples of class 0 together.
        let p = weighted_percentiles(&samples, &[1.0, 2.0], &[0.5, 0.95, 0.0]);
        assert_eq!(p, vec![200.0, 300.0, 100.0]);
        assert_eq!(weighted_percentiles(&[], &[1.0], &[0.5]), vec![0.0]);
    }

    #[test]
    fn csv_has_a_header_and_a_share() {
        let s = Series {
            rows: vec![Row {
                second: 3,
                viewers: 10.0,
                stalled: 1.0,
                edge_bytes: 300.0,
                p2p_bytes: 100.0,
                origin_bytes: 5.0,
            }],
        };
        let csv = s.to_csv();
        assert!(csv.starts_with("second,viewers"));
        assert!(csv.ends_with("3,10,1,300,100,5,0.2500\n"));
    }
}
