//! The run loop: one-second epochs. In each epoch every swarm runs its own events
//! (swarms spread over worker threads), then the main thread puts the epoch's HTTP
//! requests through the edge caches in swarm order and sets the next epoch's health
//! (failure timeline) and congestion. Swarms see the CDN as it was at the start of
//! the epoch, which is the one approximation the coupling makes.
//!
//! Not here: per-viewer behaviour ([`crate::swarm`]), report figures
//! ([`crate::report`]).

use std::collections::BTreeMap;

use crate::edge::{playlist_ttl_ms, Demand, EdgeTier, Upstream};
use crate::population::{draw_viewers, Population};
use crate::report::{Report, Series};
use crate::scenario::{FailureKind, Scenario, ScenarioError};
use crate::swarm::{Audit, Swarm, SwarmConfig, ORIGIN};
use crate::tally::Tally;

/// Extra outputs for tests and tools.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunOptions {
    /// Keep a log of deliveries and uploads (small scenarios only).
    pub audit: bool,
}

/// Everything a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    pub series: Series,
    /// (swarm index, record) when auditing.
    pub audit: Vec<(u64, Audit)>,
}

/// Runs the scenario. `progress(done, total)` is called after every simulated second.
pub fn run(
    s: &Scenario,
    opts: RunOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Outcome, ScenarioError> {
    s.validate()?;
    let pop = Population::plan(s);
    let ttl = playlist_ttl_ms(s.segment_ms, s.part_ms);
    let cfg = SwarmConfig::new(s, opts.audit);
    let mut tier = EdgeTier::new(s);
    let mut swarms: Vec<Swarm> = pop
        .swarms
        .iter()
        .map(|p| Swarm::new(s, p.clone(), draw_viewers(s, p, ttl)))
        .collect();
    let threads = match s.sim.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    }
    .clamp(1, 64);
    let secs = s.duration_s as usize + 2;
    let mut tallies: Vec<Tally> = (0..threads)
        .map(|_| Tally::new(secs, pop.classes.len()))
        .collect();
    let mut upstream = Upstream::default();
    let mut origin_series = vec![0u64; secs];
    // Viewer requests to edges per class (weighted once, at the end).
    let mut edge_requests = vec![0u64; pop.classes.len()];
    let chunk = swarms.len().div_ceil(threads).max(1);
    let total = s.duration_s + 1;
    for epoch in 0..total {
        let now = epoch * 1000;
        let until = now + 1000;
        set_health(s, &mut tier, epoch);
        for f in &s.failures {
            if f.kind == FailureKind::PeersLeave && f.at_s == epoch {
                for sw in swarms.iter_mut() {
                    sw.mass_leave(now, f.share.unwrap_or(0.0));
                }
            }
        }
        let view = tier.view();
        if threads == 1 {
            for sw in swarms.iter_mut() {
                sw.run_until(until, &cfg, view, &mut tallies[0]);
            }
        } else {
            std::thread::scope(|scope| {
                for (part, tally) in swarms.chunks_mut(chunk).zip(tallies.iter_mut()) {
                    let cfg = &cfg;
                    scope.spawn(move || {
                        for sw in part.iter_mut() {
                            sw.run_until(until, cfg, view, tally);
                        }
                    });
                }
            });
        }
        // The epoch's HTTP requests, in swarm order, through the caches.
        let mut demand: BTreeMap<(usize, usize, u64), Demand> = BTreeMap::new();
        let mut edge_bits = vec![0.0f64; tier.edges()];
        let mut origin_bits = 0.0f64;
        for sw in swarms.iter_mut() {
            let class = sw.plan.class_index;
            let w = pop.weight(class);
            for r in sw.requests.drain(..) {
                let bits = r.bytes as f64 * 8.0 * w;
                if r.edge == ORIGIN {
                    origin_bits += bits;
                } else {
                    edge_requests[class] += 1;
                    edge_bits[r.edge] += bits;
                    demand
                        .entry((r.edge, r.rendition, r.seg))
                        .or_insert(Demand { bytes: r.bytes });
                }
            }
        }
        let up = tier.serve(until, &demand);
        upstream.origin_bytes += up.origin_bytes;
        upstream.shield_bytes += up.shield_bytes;
        upstream.key_hits += up.key_hits;
        upstream.misses += up.misses;
        upstream.transcoded_ms += up.transcoded_ms;
        origin_series[epoch as usize] += up.origin_bytes;
        tier.set_load(&edge_bits, origin_bits);
        progress(epoch + 1, total);
    }
    upstream.requests = edge_requests
        .iter()
        .enumerate()
        .map(|(c, n)| *n as f64 * pop.weight(c))
        .sum::<f64>()
        .round() as u64;
    let mut tally = Tally::new(secs, pop.classes.len());
    for t in &tallies {
        tally.merge(t);
    }
    let mut audit = Vec::new();
    if opts.audit {
        for sw in swarms.iter_mut() {
            let idx = sw.plan.index;
            audit.extend(sw.audit.drain(..).map(|a| (idx, a)));
        }
    }
    let (report, series) = Report::build(s, &pop, &tally, &upstream, &origin_series);
    Ok(Outcome {
        report,
        series,
        audit,
    })
}

/// Applies the failure timeline for the epoch starting at `epoch` seconds.
fn set_health(s: &Scenario, tier: &mut EdgeTier, epoch: u64) {
    let mut origin_up = true;
    let mut edge_up = vec![true; tier.edges()];
    let mut region_down = vec![false; s.regions.len()];
    let first: Vec<usize> = s
        .regions
        .iter()
        .scan(0usize, |acc, r| {
            let f = *acc;
            *acc += r.edges as usize;
            Some(f)
        })
        .collect();
    for f in &s.failures {
        let active = epoch >= f.at_s
            && match f.duration_s {
                None => true,
                Some(d) => epoch < f.at_s + d,
            };
        if !active {
            continue;
        }
        let region = f
            .region
            .as_ref()
            .and_then(|n| s.regions.iter().position(|r| &r.name == n));
        match (f.kind, region) {
            (FailureKind::OriginDown, _) => origin_up = false,
            (FailureKind::RegionDown, Some(r)) => region_down[r] = true,
            (FailureKind::EdgeDown, Some(r)) => {
                if let Some(up) = edge_up.get_mut(first[r] + f.edge.unwrap_or(0) as usize) {
                    *up = false;
                }
            }
            _ => {}
        }
    }
    tier.set_health(origin_up, edge_up, region_down);
}
