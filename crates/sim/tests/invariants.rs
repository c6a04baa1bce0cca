//! The simulator's invariants on small scenarios: bytes delivered equal bytes
//! consumed, nobody receives a segment before it exists, `cdn-only` moves no peer
//! bytes, peers never upload beyond their uplink, and the same scenario and seed give
//! the same report.json whatever the thread count.

use std::collections::BTreeMap;

use sim::scenario::{Failure, FailureKind};
use sim::swarm::{Audit, SwarmConfig};
use sim::{run, Outcome, Preset, RunOptions, Scenario};

fn small(preset: Preset) -> Scenario {
    let mut s = Scenario {
        name: "small".into(),
        preset,
        viewers: 240,
        duration_s: 120,
        seed: 7,
        ..Scenario::default()
    };
    s.sim.threads = 2;
    s
}

/// `share` of the viewers present leave at once at `at_s`.
fn peers_leave(at_s: u64, share: f64) -> Failure {
    Failure {
        at_s,
        duration_s: None,
        kind: FailureKind::PeersLeave,
        region: None,
        edge: None,
        share: Some(share),
    }
}

fn go(s: &Scenario, audit: bool) -> Outcome {
    run(s, RunOptions { audit }, &mut |_, _| {}).expect("valid scenario")
}

#[test]
fn delivered_equals_consumed_and_nothing_arrives_early() {
    for preset in Preset::ALL {
        let s = small(preset);
        let o = go(&s, true);
        let inv = &o.report.invariants;
        assert!(inv.bytes_delivered > 0, "{preset:?}");
        assert_eq!(inv.bytes_delivered, inv.bytes_consumed, "{preset:?}");
        assert_eq!(inv.early_deliveries, 0, "{preset:?}");
        // The audit log agrees, delivery by delivery.
        let cfg = SwarmConfig::new(&s, true);
        let mut deliveries = 0;
        for (_, a) in &o.audit {
            if let Audit::Delivered { seg, at, .. } = a {
                deliveries += 1;
                assert!(
                    *at >= cfg.produced_at(*seg),
                    "{preset:?}: segment {seg} at {at}"
                );
            }
        }
        assert!(deliveries > 240 * 10, "{preset:?}: {deliveries} deliveries");
    }
}

#[test]
fn cdn_only_moves_no_peer_bytes() {
    let o = go(&small(Preset::CdnOnly), true);
    assert_eq!(o.report.p2p_bytes, 0);
    assert_eq!(o.report.p2p_share, 0.0);
    assert_eq!(o.report.peer_requests, 0);
    assert!(o.audit.iter().all(|(_, a)| !matches!(
        a,
        Audit::Upload { .. } | Audit::Delivered { from: Some(_), .. }
    )));
    assert!(o.report.edge_egress_bytes > 0);
}

#[test]
fn peers_never_upload_beyond_their_uplink() {
    let mut s = small(Preset::Hybrid);
    // Thin uplinks so that the cap binds.
    s.peers.uplink_median_mbps = 2.0;
    let o = go(&s, true);
    assert!(o.report.p2p_bytes > 0);
    // (swarm, sender) → (start, end, bytes, uplink) of each upload.
    type Uploads = Vec<(u64, u64, u64, u64)>;
    let mut per_sender: BTreeMap<(u64, u16), Uploads> = BTreeMap::new();
    for (swarm, a) in &o.audit {
        if let Audit::Upload {
            sender,
            start,
            end,
            bytes,
            uplink_bps,
        } = a
        {
            per_sender.entry((*swarm, *sender)).or_default().push((
                *start,
                *end,
                *bytes,
                *uplink_bps,
            ));
        }
    }
    assert!(!per_sender.is_empty());
    for (who, ups) in per_sender {
        // In every one-second window, bits sent (pro rata of each upload's span in the
        // window) stay within the uplink; transfer times are rounded up to the ms.
        let last = ups.iter().map(|u| u.1).max().unwrap_or(0);
        let mut w = ups.iter().map(|u| u.0).min().unwrap_or(0);
        while w < last {
            let (lo, hi) = (w, w + 1000);
            let mut bits = 0.0;
            let mut cap = 0.0;
            for &(start, end, bytes, uplink) in &ups {
                let overlap = end.min(hi).saturating_sub(start.max(lo));
                if overlap > 0 {
                    bits += bytes as f64 * 8.0 * overlap as f64 / (end - start) as f64;
                }
                cap = uplink as f64;
            }
            assert!(
                bits <= cap * 1.001,
                "{who:?} sent {bits} bits in [{lo}, {hi}) over {cap} bit/s"
            );
            w += 250;
        }
    }
    assert!(o.report.invariants.max_uplink_utilization <= 1.0 + 1e-3);
}

#[test]
fn same_seed_same_report_whatever_the_threads() {
    let mut a = small(Preset::Hybrid);
    a.failures.push(peers_leave(60, 0.3));
    let mut b = a.clone();
    b.sim.threads = 1;
    let ja = go(&a, false).report.to_json();
    let jb = go(&b, false).report.to_json();
    assert_eq!(ja, jb);
    let mut c = a.clone();
    c.seed = 8;
    assert_ne!(ja, go(&c, false).report.to_json());
}

#[test]
fn presets_differ_as_designed() {
    let cdn = go(&small(Preset::CdnOnly), false).report;
    let hybrid = go(&small(Preset::Hybrid), false).report;
    let p2p = go(&small(Preset::P2pOnly), false).report;
    let transcode = go(&small(Preset::HybridEdgeTranscode), false).report;
    // Peers carry a real share in hybrid, and it costs less than cdn-only.
    assert!(
        hybrid.p2p_share > 0.2,
        "hybrid p2p share {}",
        hybrid.p2p_share
    );
    assert!(hybrid.cost_usd < cdn.cost_usd);
    // p2p-only has no CDN at all.
    assert_eq!(p2p.edge_egress_bytes, 0);
    assert!(p2p.origin_egress_bytes > 0);
    // Edge transcoding moves only the top rendition upstream.
    assert!(transcode.shield_to_edge_bytes < hybrid.shield_to_edge_bytes);
    // cdn-only viewers start with HTTP at once and rarely stall.
    assert!(
        cdn.startup_p50_s > 0.0 && cdn.startup_p50_s < 3.0,
        "{}",
        cdn.startup_p50_s
    );
    assert!(cdn.stall_ratio < 0.02, "{}", cdn.stall_ratio);
}

#[test]
fn failures_on_the_timeline() {
    let base = small(Preset::CdnOnly);
    let calm = go(&base, false).report;
    let mut origin_down = base.clone();
    origin_down.failures.push(Failure {
        at_s: 40,
        duration_s: Some(30),
        kind: FailureKind::OriginDown,
        region: None,
        edge: None,
        share: None,
    });
    let hurt = go(&origin_down, false).report;
    assert!(
        hurt.stall_ratio > calm.stall_ratio + 0.05,
        "{} vs {}",
        hurt.stall_ratio,
        calm.stall_ratio
    );
    // A whole region down: its viewers go to another region and keep playing.
    let mut region_down = base.clone();
    region_down.failures.push(Failure {
        at_s: 40,
        duration_s: None,
        kind: FailureKind::RegionDown,
        region: Some("eu".into()),
        edge: None,
        share: None,
    });
    let moved = go(&region_down, false).report;
    assert!(moved.stall_ratio < 0.05, "{}", moved.stall_ratio);
}

#[test]
fn sampling_scales_totals() {
    let mut full = small(Preset::Hybrid);
    full.viewers = 2_000;
    full.duration_s = 60;
    let mut sampled = full.clone();
    sampled.sim.max_detailed_viewers = 500;
    let (fo, so) = (go(&full, false), go(&sampled, false));
    // The page says when its figures are estimates from a sample.
    let page = |o: &Outcome| sim::html::page(&[(o.report.clone(), o.series.clone())]);
    assert!(page(&so).contains("Estimated:"));
    assert!(!page(&fo).contains("Estimated:"));
    let (f, s) = (fo.report, so.report);
    assert_eq!(f.simulated_viewers, 2_000);
    assert!(s.simulated_viewers < 800, "{}", s.simulated_viewers);
    let rel = |a: u64, b: u64| (a as f64 - b as f64).abs() / b as f64;
    assert!(
        rel(
            s.edge_egress_bytes + s.p2p_bytes,
            f.edge_egress_bytes + f.p2p_bytes
        ) < 0.15
    );
    assert!(rel(s.peak_concurrent_viewers, f.peak_concurrent_viewers) < 0.15);
    // Edge requests are per viewer, so they scale; misses are per object and do not.
    assert!(
        rel(s.edge_cache.requests, f.edge_cache.requests) < 0.15,
        "{:?} vs {:?}",
        s.edge_cache,
        f.edge_cache
    );
    for r in [&f, &s] {
        let c = &r.edge_cache;
        assert!(c.requests > c.misses && c.misses > 0, "{c:?}");
        assert_eq!(c.hits, c.requests - c.misses);
    }
}

#[test]
fn vod_viewers_start_at_the_beginning_and_read_ahead_of_any_live_edge() {
    let mut s = small(Preset::Hybrid);
    s.mode = sim::scenario::Mode::Vod;
    let o = go(&s, true);
    let r = &o.report;
    assert_eq!(r.mode, "vod");
    assert_eq!(r.invariants.bytes_delivered, r.invariants.bytes_consumed);
    assert_eq!(r.invariants.early_deliveries, 0);
    assert_eq!(r.failed_starts, 0);
    assert!(r.stall_ratio < 0.01, "{}", r.stall_ratio);
    assert!(r.p2p_share > 0.0, "VOD viewers share too: {}", r.p2p_share);
    // Every viewer's first segment is the first of the title.
    let mut first: BTreeMap<(u64, u16), u64> = BTreeMap::new();
    let mut ahead_of_live = 0;
    for (swarm, a) in &o.audit {
        if let Audit::Delivered {
            viewer, seg, at, ..
        } = a
        {
            let f = first.entry((*swarm, *viewer)).or_insert(*seg);
            *f = (*f).min(*seg);
            // A live stream would not have this segment yet: VOD has no live edge.
            if (seg + 1) * s.segment_ms > *at {
                ahead_of_live += 1;
            }
        }
    }
    assert!(first.len() > 200, "{} viewers got segments", first.len());
    assert!(first.values().all(|&seg| seg == 0), "{first:?}");
    assert!(ahead_of_live > 0);
}

#[test]
fn hybrid_rides_out_30_percent_of_peers_leaving_at_once() {
    let mut calm = small(Preset::Hybrid);
    calm.viewers = 600;
    calm.audience.leave_early_share = 0.0;
    let mut hit = calm.clone();
    hit.failures.push(peers_leave(60, 0.3));
    let a = go(&calm, false);
    let b = go(&hit, false);
    let window = |o: &Outcome, from: u64, to: u64| {
        let rows = o
            .series
            .rows
            .iter()
            .filter(|r| (from..to).contains(&r.second));
        let (mut v, mut st, mut p2p, mut all) = (0.0, 0.0, 0.0, 0.0);
        for r in rows {
            v += r.viewers;
            st += r.stalled;
            p2p += r.p2p_bytes;
            all += r.p2p_bytes + r.edge_bytes;
        }
        (v, st / v.max(1.0), p2p / all.max(1.0))
    };
    let (v_calm, stalled_calm, share_calm) = window(&a, 61, 90);
    let (v_hit, stalled_hit, share_hit) = window(&b, 61, 90);
    // About 30 % fewer viewers after the departure …
    assert!(v_hit < v_calm * 0.8, "{v_hit} vs {v_calm}");
    // … and the rest keep playing (the CDN takes what peers no longer carry) with
    // peers still carrying a real share.
    assert!(stalled_hit < 0.02, "{stalled_hit} (calm {stalled_calm})");
    assert!(share_hit > 0.2, "{share_hit} (calm {share_calm})");
    assert_eq!(
        b.report.invariants.bytes_delivered,
        b.report.invariants.bytes_consumed
    );
}
