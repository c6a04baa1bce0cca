//! The latency-to-live against P2P-share curve (`mediamesh sim --curve`): one
//! scenario run at several latency targets, from plain LL-HLS with P2P off through
//! parts at growing hold-backs to whole segments, so the price of latency in
//! offload (and the other way round) is visible at audience scale. Each point is a
//! full run of [`crate::run`] on the same audience (same seed); the curve keeps
//! latency to live p50/p95, P2P share and stalls of each, as a Markdown table and as
//! JSON.
//!
//! Not here: the runs themselves ([`crate::engine`]), writing files or progress bars
//! (the binary's `sim` subcommand).

use serde::Serialize;

use crate::report::Report;
use crate::scenario::{Latency, Preset, Scenario, ScenarioError};

/// The part target the curve uses when the scenario has none: the origin's default
/// (`crates/origin`, `part_target` 0.5 s), which `serve --demo` publishes with.
pub const DEFAULT_PART_MS: u64 = 500;

/// Hold-backs of the part points, in part targets: 3 (PART-HOLD-BACK), 4 (`low`, as
/// the peer plays with P2P on), 6 and 10 parts back; `balanced` (3 parts + a target
/// duration) sits between.
const HOLD_BACK_PARTS: [u64; 4] = [3, 4, 6, 10];

/// One run of the curve.
#[derive(Debug, Clone)]
pub struct Point {
    /// Short name, also the run's folder: `p2p-off-low`, `low-1.5s`, `low`,
    /// `balanced`, `max-offload`, …
    pub label: String,
    pub scenario: Scenario,
}

/// The points for `base` (its preset is the P2P one; the first point is the same
/// audience on `cdn-only` at `low`, i.e. LL-HLS with P2P off, as the reference).
/// A scenario without parts gets [`DEFAULT_PART_MS`].
pub fn points(base: &Scenario) -> Result<Vec<Point>, ScenarioError> {
    let mut base = base.clone();
    if base.part_ms == 0 {
        base.part_ms = DEFAULT_PART_MS;
    }
    let at = |preset: Preset, latency: Latency, offset_ms: u64| {
        let mut s = base.clone();
        s.preset = preset;
        s.peers.latency = latency;
        s.peers.live_offset_ms = offset_ms;
        s
    };
    let p = base.preset;
    let low = at(p, Latency::Low, 0).live_offset_ms();
    let mut parts: Vec<Point> = HOLD_BACK_PARTS
        .iter()
        .map(|n| n * base.part_ms)
        .map(|offset| Point {
            label: if offset == low {
                "low".into()
            } else {
                format!("low-{:.1}s", offset as f64 / 1000.0)
            },
            scenario: at(p, Latency::Low, if offset == low { 0 } else { offset }),
        })
        .collect();
    parts.push(Point {
        label: "balanced".into(),
        scenario: at(p, Latency::Balanced, 0),
    });
    // In order of latency (stable: `low` before an equal offset).
    parts.sort_by_key(|x| x.scenario.live_offset_ms());
    let mut out = vec![Point {
        label: "p2p-off-low".into(),
        scenario: at(Preset::CdnOnly, Latency::Low, 0),
    }];
    out.extend(parts);
    out.push(Point {
        label: "max-offload".into(),
        scenario: at(p, Latency::MaxOffload, 0),
    });
    for x in &out {
        x.scenario.validate()?;
    }
    Ok(out)
}

/// One row of the curve: a point's headline figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub label: String,
    pub preset: String,
    pub latency: String,
    pub live_offset_s: f64,
    pub latency_to_live_p50_s: f64,
    pub latency_to_live_p95_s: f64,
    pub p2p_share: f64,
    pub stall_ratio: f64,
    pub stalls_per_viewer_hour: f64,
    pub startup_p50_s: f64,
    pub urgent_http_requests: u64,
    pub peer_timeouts: u64,
    pub edge_egress_bytes: u64,
    pub cost_usd: f64,
}

impl Row {
    pub fn new(label: &str, r: &Report) -> Row {
        Row {
            label: label.into(),
            preset: r.preset.clone(),
            latency: r.latency.clone(),
            live_offset_s: r.live_offset_s,
            latency_to_live_p50_s: r.latency_to_live_p50_s,
            latency_to_live_p95_s: r.latency_to_live_p95_s,
            p2p_share: r.p2p_share,
            stall_ratio: r.stall_ratio,
            stalls_per_viewer_hour: r.stalls_per_viewer_hour,
            startup_p50_s: r.startup_p50_s,
            urgent_http_requests: r.urgent_http_requests,
            peer_timeouts: r.peer_timeouts,
            edge_egress_bytes: r.edge_egress_bytes,
            cost_usd: r.cost_usd,
        }
    }
}

/// The whole curve (`curve.json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Curve {
    pub scenario: String,
    pub preset: String,
    pub viewers: u64,
    pub simulated_viewers: u64,
    pub duration_s: u64,
    pub seed: u64,
    pub segment_ms: u64,
    pub part_ms: u64,
    pub rows: Vec<Row>,
}

impl Curve {
    /// The curve of `base` from its points' reports, in the order of [`points`].
    pub fn new(base: &Scenario, runs: &[(String, Report)]) -> Curve {
        Curve {
            scenario: base.name.clone(),
            preset: base.preset.name().into(),
            viewers: base.viewers,
            simulated_viewers: runs.first().map_or(0, |(_, r)| r.simulated_viewers),
            duration_s: base.duration_s,
            seed: base.seed,
            segment_ms: base.segment_ms,
            part_ms: if base.part_ms == 0 {
                DEFAULT_PART_MS
            } else {
                base.part_ms
            },
            rows: runs.iter().map(|(l, r)| Row::new(l, r)).collect(),
        }
    }

    pub fn to_json(&self) -> String {
        // Plain numbers and strings always serialize.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// A Markdown table, one row per point, in order of latency.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "latency to live vs P2P share: {} ({} viewers, {} simulated one by one, {} s, \
             seed {}, segments {} ms, parts {} ms)\n\n",
            self.scenario,
            self.viewers,
            self.simulated_viewers,
            self.duration_s,
            self.seed,
            self.segment_ms,
            self.part_ms
        );
        out.push_str(
            "| point | preset | latency | live offset s | latency p50 s | latency p95 s | P2P share | stall ratio | stalls / viewer-h | urgent HTTP | peer time-outs |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.3} | {:.6} | {:.2} | {} | {} |\n",
                r.label,
                r.preset,
                r.latency,
                r.live_offset_s,
                r.latency_to_live_p50_s,
                r.latency_to_live_p95_s,
                r.p2p_share,
                r.stall_ratio,
                r.stalls_per_viewer_hour,
                r.urgent_http_requests,
                r.peer_timeouts
            ));
        }
        out
    }
}

/// Runs every point of `base`'s curve. `progress(point, done, total)` after every
/// simulated second of each point.
pub fn run(
    base: &Scenario,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<(Curve, Vec<(String, crate::Outcome)>), ScenarioError> {
    let mut runs = Vec::new();
    for p in points(base)? {
        let label = p.label.clone();
        let o = crate::run(&p.scenario, crate::RunOptions::default(), &mut |d, t| {
            progress(&label, d, t)
        })?;
        runs.push((p.label, o));
    }
    let reports: Vec<(String, Report)> = runs
        .iter()
        .map(|(l, o)| (l.clone(), o.report.clone()))
        .collect();
    Ok((Curve::new(base, &reports), runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_run_from_p2p_off_to_whole_segments_in_latency_order() {
        let base = Scenario::default();
        let pts = points(&base).unwrap();
        let labels: Vec<&str> = pts.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "p2p-off-low",
                "low-1.5s",
                "low",
                "low-3.0s",
                "balanced",
                "low-5.0s",
                "max-offload"
            ]
        );
        assert_eq!(pts[0].scenario.preset, Preset::CdnOnly);
        assert!(pts[1..].iter().all(|p| p.scenario.preset == Preset::Hybrid));
        // No parts in the scenario: the origin's default part target.
        assert!(pts.iter().all(|p| p.scenario.part_ms == DEFAULT_PART_MS));
        let offsets: Vec<u64> = pts[1..]
            .iter()
            .map(|p| p.scenario.live_offset_ms())
            .collect();
        assert_eq!(offsets, [1_500, 2_000, 3_000, 3_500, 5_000, 6_000]);
    }
}
