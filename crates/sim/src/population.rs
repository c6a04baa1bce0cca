//! Who watches: viewers split into classes (region × rendition), classes into swarms
//! of bounded size, and each swarm's viewers drawn from a seeded ChaCha stream of its
//! own, so a swarm is the same whichever thread builds it and whichever swarms are
//! sampled.
//!
//! Not here: what viewers do once they arrive ([`crate::swarm`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{Mode, Scenario};

/// A region × rendition pair: viewers of one class share edges and a swarm protocol
/// (swarms are per rendition, as in p2p-media-loader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub region: usize,
    pub rendition: usize,
}

/// One viewer's fixed attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewerSpec {
    /// Wall ms of arrival and departure.
    pub join_ms: u64,
    pub leave_ms: u64,
    pub downlink_bps: u64,
    /// 0 for viewers that do not upload.
    pub uplink_bps: u64,
    pub symmetric_nat: bool,
    /// A new segment reaches this viewer's playlist this long after it is made: how
    /// stale the edge's copy of the playlist is plus the phase of the player's
    /// reloads (both uniform).
    pub list_delay_ms: u64,
}

/// A swarm to simulate: its class, its edge within the region, and the weight of each
/// of its viewers in population totals (1 when nothing is sampled).
#[derive(Debug, Clone)]
pub struct SwarmPlan {
    pub index: u64,
    pub class_index: usize,
    pub class: Class,
    pub edge: usize,
    pub viewers: u32,
}

/// The whole audience, and which swarms are simulated.
#[derive(Debug, Clone)]
pub struct Population {
    pub classes: Vec<Class>,
    /// Viewers per class in the population.
    pub class_viewers: Vec<u64>,
    /// Viewers per class in the simulated swarms.
    pub class_simulated: Vec<u64>,
    pub swarms: Vec<SwarmPlan>,
    pub sample_fraction: f64,
}

impl Population {
    /// Splits `s.viewers` over classes (largest remainder, so counts add up exactly),
    /// cuts classes into swarms of `peers.swarm_size` and samples whole swarms when
    /// the audience exceeds `sim.max_detailed_viewers`.
    pub fn plan(s: &Scenario) -> Population {
        let rshare: f64 = s.regions.iter().map(|r| r.share).sum();
        let qshare: f64 = s.renditions.iter().map(|r| r.share).sum();
        let mut classes = Vec::new();
        let mut exact = Vec::new();
        for (ri, r) in s.regions.iter().enumerate() {
            for (qi, q) in s.renditions.iter().enumerate() {
                classes.push(Class {
                    region: ri,
                    rendition: qi,
                });
                exact.push(s.viewers as f64 * (r.share / rshare) * (q.share / qshare));
            }
        }
        let class_viewers = largest_remainder(&exact, s.viewers);
        let sample_fraction =
            if s.sim.max_detailed_viewers == 0 || s.viewers <= s.sim.max_detailed_viewers {
                1.0
            } else {
                s.sim.max_detailed_viewers as f64 / s.viewers as f64
            };
        let size = u64::from(s.peers.swarm_size);
        let mut swarms = Vec::new();
        let mut class_simulated = vec![0u64; classes.len()];
        let mut index = 0u64;
        for (ci, (&class, &n)) in classes.iter().zip(&class_viewers).enumerate() {
            let count = n.div_ceil(size);
            // Every class keeps at least one swarm; then an even stride.
            let keep = ((count as f64 * sample_fraction).ceil() as u64).clamp(1.min(count), count);
            let edges = u64::from(s.regions[class.region].edges);
            for k in 0..keep {
                // Spread the kept swarms evenly over the class.
                let swarm = if keep == count { k } else { k * count / keep };
                let viewers = (n - swarm * size).min(size) as u32;
                swarms.push(SwarmPlan {
                    index,
                    class_index: ci,
                    class,
                    // Round-robin over the kept swarms, so a sample spreads over every
                    // edge as the whole class does (a stride of `count / keep` would
                    // skip edges when it shares a factor with their number).
                    edge: (k % edges) as usize,
                    viewers,
                });
                class_simulated[ci] += u64::from(viewers);
                index += 1;
            }
        }
        Population {
            classes,
            class_viewers,
            class_simulated,
            swarms,
            sample_fraction,
        }
    }

    /// Population viewers each simulated viewer of the class stands for.
    pub fn weight(&self, class_index: usize) -> f64 {
        match self.class_simulated[class_index] {
            0 => 0.0,
            n => self.class_viewers[class_index] as f64 / n as f64,
        }
    }

    pub fn simulated_viewers(&self) -> u64 {
        self.class_simulated.iter().sum()
    }
}

/// Integer counts proportional to `exact` that sum to `total`.
fn largest_remainder(exact: &[f64], total: u64) -> Vec<u64> {
    let mut counts: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut left = total.saturating_sub(counts.iter().sum());
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for i in order.into_iter().cycle().take(exact.len() * 2) {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    counts
}

/// A seed for stream `k` of a run: splitmix64 of the two.
pub fn substream(seed: u64, k: u64) -> u64 {
    let mut x = seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Draws the viewers of one swarm. `playlist_ttl_ms` is how stale the edge's live
/// playlist may be (from the edge's freshness policy); players reload it every half
/// segment, as `mediamesh peer` does. With `audience.churn_s` the swarm's
/// `plan.viewers` are slots that newcomers refill (see [`churn_sessions`]).
pub fn draw_viewers(s: &Scenario, plan: &SwarmPlan, playlist_ttl_ms: u64) -> Vec<ViewerSpec> {
    let mut rng = ChaCha8Rng::seed_from_u64(substream(s.seed, plan.index));
    let end = s.duration_s * 1000;
    let bitrate = s.renditions[plan.class.rendition].bitrate_kbps * 1000;
    let p = &s.peers;
    let a = &s.audience;
    let after = (a.arrive_after_s * 1000.0) as u64;
    let poll_ms = (s.segment_ms / 2).max(250);
    let mut specs: Vec<ViewerSpec> = (0..plan.viewers)
        .map(|_| {
            let join_ms = if rng.gen_bool(a.flash_crowd_share) {
                after + exp_ms(&mut rng, a.flash_crowd_mean_s)
            } else {
                rng.gen_range(after..end.max(after + 1))
            };
            let join_ms = join_ms.min(end.saturating_sub(1));
            let join_ms = if s.mode == Mode::Live {
                join_ms
            } else {
                join_ms.min(end / 2)
            };
            let leave_ms = if a.churn_s <= 0.0 && rng.gen_bool(a.leave_early_share) {
                (join_ms + exp_ms(&mut rng, a.mean_watch_s).max(1_000)).min(end)
            } else {
                end
            };
            let mut v = draw_links(&mut rng, p, bitrate, playlist_ttl_ms, poll_ms);
            v.join_ms = join_ms;
            v.leave_ms = leave_ms.max(join_ms + 1);
            v
        })
        .collect();
    if a.churn_s > 0.0 {
        let first: Vec<u64> = specs.iter().map(|v| v.join_ms).collect();
        let sessions = churn_sessions(&first, (a.churn_s * 1000.0) as u64, end, MAX_SESSIONS);
        specs = sessions
            .into_iter()
            .enumerate()
            .map(|(k, (join_ms, leave_ms))| {
                let mut v = match specs.get(k) {
                    Some(v) => *v,
                    None => draw_links(&mut rng, p, bitrate, playlist_ttl_ms, poll_ms),
                };
                v.join_ms = join_ms;
                v.leave_ms = leave_ms.max(join_ms + 1);
                v
            })
            .collect();
    }
    specs
}

/// Viewer sessions one swarm holds at most (peers are kept in a 64-bit set).
pub const MAX_SESSIONS: usize = 64;

/// Links, NAT and playlist phase of one viewer (times set by the caller).
fn draw_links(
    rng: &mut ChaCha8Rng,
    p: &crate::scenario::Peers,
    bitrate: u64,
    playlist_ttl_ms: u64,
    poll_ms: u64,
) -> ViewerSpec {
    let down = lognormal(rng, p.downlink_median_mbps, p.link_sigma) * 1e6;
    // A viewer on this rung can carry it: the ladder share already reflects the
    // links, so the link is drawn at least 1.5 × the bitrate.
    let downlink_bps = (down as u64).max(bitrate * 3 / 2);
    let up = lognormal(rng, p.uplink_median_mbps, p.link_sigma) * 1e6;
    let uploads = rng.gen_bool(p.upload_share);
    ViewerSpec {
        join_ms: 0,
        leave_ms: 1,
        downlink_bps,
        uplink_bps: if uploads { (up as u64).max(64_000) } else { 0 },
        symmetric_nat: rng.gen_bool(p.symmetric_nat_share),
        list_delay_ms: rng.gen_range(0..=playlist_ttl_ms) + rng.gen_range(0..poll_ms),
    }
}

/// `mediamesh peer --churn` for one swarm: sessions (join, leave) in the order they
/// start. The first ones join at `first` (one per slot); session k stays
/// `churn_ms × (1 + k mod slots)`; when one ends with more than 2 s left a new one
/// starts in its slot at once. At most `max` sessions.
pub fn churn_sessions(first: &[u64], churn_ms: u64, end: u64, max: usize) -> Vec<(u64, u64)> {
    let slots = first.len().max(1) as u64;
    let mut order: Vec<usize> = (0..first.len()).collect();
    order.sort_by_key(|&i| (first[i], i));
    let mut out: Vec<(u64, u64)> = Vec::new();
    // (leave time, session) of the sessions running, to refill in end order.
    let mut running = std::collections::BinaryHeap::new();
    for &i in &order {
        if out.len() >= max {
            break;
        }
        let k = out.len() as u64;
        let leave = (first[i] + churn_ms * (1 + k % slots)).min(end);
        running.push(std::cmp::Reverse((leave, out.len())));
        out.push((first[i], leave));
    }
    while let Some(std::cmp::Reverse((at, _))) = running.pop() {
        if out.len() >= max || at + 2_000 >= end {
            continue;
        }
        let k = out.len() as u64;
        let leave = (at + churn_ms * (1 + k % slots)).min(end);
        running.push(std::cmp::Reverse((leave, out.len())));
        out.push((at, leave));
    }
    out
}

/// Exponential with mean `mean_s` seconds, in ms (capped at a week).
fn exp_ms(rng: &mut ChaCha8Rng, mean_s: f64) -> u64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    ((-u.ln() * mean_s * 1000.0).min(604_800_000.0)) as u64
}

/// Log-normal with the given median and sigma (Box–Muller).
fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    median * (sigma * z).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_swarms_are_bounded() {
        let s = Scenario {
            viewers: 12_345,
            ..Scenario::default()
        };
        let p = Population::plan(&s);
        assert_eq!(p.class_viewers.iter().sum::<u64>(), 12_345);
        assert_eq!(p.simulated_viewers(), 12_345);
        assert!(p
            .swarms
            .iter()
            .all(|w| w.viewers >= 1 && w.viewers <= s.peers.swarm_size));
        assert_eq!(p.sample_fraction, 1.0);
    }

    #[test]
    fn sampling_keeps_every_class_and_weights_restore_totals() {
        let mut s = Scenario {
            viewers: 1_000_000,
            ..Scenario::default()
        };
        s.sim.max_detailed_viewers = 20_000;
        let p = Population::plan(&s);
        let sim = p.simulated_viewers();
        assert!((18_000..=24_000).contains(&sim), "{sim}");
        let total: f64 = (0..p.classes.len())
            .map(|c| p.weight(c) * p.class_simulated[c] as f64)
            .sum();
        assert!((total - 1_000_000.0).abs() < 1e-3);
        assert!(p.class_simulated.iter().all(|&n| n > 0));
    }

    #[test]
    fn draws_are_seeded_and_sane() {
        let s = Scenario::default();
        let p = Population::plan(&s);
        let a = draw_viewers(&s, &p.swarms[3], 1_000);
        let b = draw_viewers(&s, &p.swarms[3], 1_000);
        assert_eq!(a, b);
        for v in &a {
            assert!(v.join_ms < v.leave_ms && v.leave_ms <= 600_000);
            assert!(v.downlink_bps > 0 && v.list_delay_ms < 2_000);
        }
    }

    #[test]
    fn churn_refills_slots_like_mediamesh_peer() {
        // 3 slots, churn 5 s, 30 s: sessions 0, 1, 2 stay 5, 10, 15 s; each newcomer
        // k stays 5 × (1 + k mod 3) s.
        let s = churn_sessions(&[0, 200, 400], 5_000, 30_000, 64);
        assert_eq!(
            &s[..4],
            &[
                (0, 5_000),
                (200, 10_200),
                (400, 15_400),
                (5_000, 5_000 + 5_000)
            ]
        );
        // Nobody starts with 2 s or less left; everyone leaves by the end.
        assert!(s.iter().all(|&(j, _)| j + 2_000 < 30_000 || j < 1_000));
        assert!(s.iter().all(|&(_, l)| l <= 30_000));
        assert_eq!(churn_sessions(&[0; 10], 1_000, 600_000, 64).len(), 64);
    }
}
