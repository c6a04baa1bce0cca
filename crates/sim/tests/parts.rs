//! Part mode (`peers.latency = "low" | "balanced"`): viewers play LL-HLS parts near
//! the live edge and share parts with the real part scheduler. Deterministic (fixed
//! seeds); no wall-clock timing is asserted.
//!
//! - it plays closer to live than whole segments, and P2P share falls as latency
//!   falls (the curve's point);
//! - parts due within the urgent window come over HTTP, so peers too slow for the
//!   hold-back cost offload, not playback;
//! - one elected fetcher per part takes it from the CDN, the others pull it;
//! - the invariants of segment mode hold per part (bytes, nothing before it exists,
//!   uplinks, same seed same report).

use std::collections::BTreeMap;

use sim::scenario::{Region, Rendition};
use sim::swarm::{Audit, SwarmConfig};
use sim::{run, Latency, Outcome, Preset, RunOptions, Scenario};

/// A small internet-like event: 144 viewers (12 swarms of 12) of one 3.5 Mbit/s
/// rendition in one region with two edges, 2 s segments of 0.5 s parts, the default
/// log-normal links, NAT and upload shares, 90 s.
fn small(preset: Preset, latency: Latency) -> Scenario {
    let mut s = Scenario {
        name: "small-parts".into(),
        preset,
        viewers: 144,
        duration_s: 90,
        seed: 7,
        part_ms: 500,
        regions: vec![Region {
            name: "eu".into(),
            edges: 2,
            ..Region::default()
        }],
        renditions: vec![Rendition {
            name: "720p".into(),
            bitrate_kbps: 3_500,
            share: 1.0,
        }],
        ..Scenario::default()
    };
    s.peers.latency = latency;
    s.sim.threads = 2;
    s
}

fn go(s: &Scenario, audit: bool) -> Outcome {
    run(s, RunOptions { audit }, &mut |_, _| {}).expect("valid scenario")
}

fn offset(mut s: Scenario, ms: u64) -> Scenario {
    s.peers.live_offset_ms = ms;
    s
}

#[test]
fn parts_at_low_latency_play_closer_to_live_than_whole_segments() {
    let parts = go(&small(Preset::Hybrid, Latency::Low), false).report;
    let segments = go(&small(Preset::Hybrid, Latency::MaxOffload), false).report;
    assert_eq!((parts.latency.as_str(), parts.live_offset_s), ("low", 2.0));
    assert!(
        parts.latency_to_live_p50_s < 2.5,
        "parts p50 {}",
        parts.latency_to_live_p50_s
    );
    assert!(
        parts.latency_to_live_p50_s + 3.0 < segments.latency_to_live_p50_s,
        "parts {} vs segments {}",
        parts.latency_to_live_p50_s,
        segments.latency_to_live_p50_s
    );
    assert!(parts.latency_to_live_p95_s < segments.latency_to_live_p95_s);
    // Still a real P2P share, and playback holds.
    assert!(parts.p2p_share > 0.2, "parts share {}", parts.p2p_share);
    assert!(parts.stall_ratio < 0.01, "{}", parts.stall_ratio);
    // `balanced` sits a target duration behind the hold-back, `low` one part.
    let balanced = go(&small(Preset::Hybrid, Latency::Balanced), false).report;
    let d = balanced.latency_to_live_p50_s - parts.latency_to_live_p50_s;
    assert!((1.0..2.0).contains(&d), "balanced is {d} s further back");
}

#[test]
fn offload_falls_as_latency_falls() {
    let base = small(Preset::Hybrid, Latency::Low);
    let shares: Vec<(f64, f64)> = [1_500, 2_000, 3_000]
        .into_iter()
        .map(|ms| {
            let r = go(&offset(base.clone(), ms), false).report;
            (r.latency_to_live_p50_s, r.p2p_share)
        })
        .collect();
    for w in shares.windows(2) {
        // Further back: more time for peers, more offload.
        assert!(w[0].0 < w[1].0, "{shares:?}");
        assert!(w[0].1 < w[1].1, "{shares:?}");
    }
    // And the step from the hold-back to 3 s back is a real one.
    assert!(shares[2].1 > shares[0].1 + 0.05, "{shares:?}");
}

#[test]
fn urgent_parts_come_over_http_when_peers_are_too_slow() {
    // Peers 1.2 s apart (round trip): no part pulled from a peer can arrive before it
    // turns urgent at 1.5 s hold-back; the CDN takes over and nobody stalls.
    let mut s = small(Preset::Hybrid, Latency::Low);
    for r in &mut s.regions {
        r.peer_rtt_ms = 1_200;
    }
    let slow = go(&s, false).report;
    let fast = go(&small(Preset::Hybrid, Latency::Low), false).report;
    assert!(slow.p2p_share < 0.05, "share {}", slow.p2p_share);
    assert!(slow.p2p_share < fast.p2p_share);
    assert!(
        slow.urgent_http_requests > fast.urgent_http_requests,
        "urgent HTTP {} vs {}",
        slow.urgent_http_requests,
        fast.urgent_http_requests
    );
    assert!(slow.peer_timeouts > 0);
    assert!(slow.stall_ratio < 0.01, "stall ratio {}", slow.stall_ratio);
    assert_eq!(
        slow.invariants.bytes_delivered,
        slow.invariants.bytes_consumed
    );
}

#[test]
fn one_elected_fetcher_per_part_and_the_others_pull() {
    // The demo twin: 8 viewers in one swarm that all see each other.
    let s = Scenario::from_toml(include_str!("../scenarios/demo-8-parts.toml")).expect("parses");
    let o = go(&s, true);
    let cfg = SwarmConfig::new(&s, true);
    // Per part: HTTP deliveries and peer deliveries, after everyone is linked.
    let mut per_part: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
    for (_, a) in &o.audit {
        if let Audit::Delivered { seg, at, from, .. } = a {
            assert!(*at >= cfg.produced_at(*seg), "part {seg} at {at}");
            if cfg.units.start_ms(*seg) < 20_000 {
                continue;
            }
            let e = per_part.entry(*seg).or_default();
            match from {
                None => e.0 += 1,
                Some(_) => e.1 += 1,
            }
        }
    }
    assert!(per_part.len() > 80, "{} parts", per_part.len());
    let http: u32 = per_part.values().map(|e| e.0).sum();
    let peers: u32 = per_part.values().map(|e| e.1).sum();
    // Every part comes over HTTP at least once (someone fetches it), rarely twice.
    assert!(per_part.values().all(|e| e.0 >= 1), "{per_part:?}");
    let mean_http = f64::from(http) / per_part.len() as f64;
    assert!(mean_http < 1.5, "{mean_http} HTTP fetches per part");
    assert!(peers > 5 * http, "{peers} from peers, {http} over HTTP");
}

#[test]
fn invariants_hold_in_part_mode() {
    let mut hybrid = None;
    for preset in Preset::ALL {
        let s = small(preset, Latency::Low);
        let o = go(&s, true);
        let r = &o.report;
        if preset == Preset::Hybrid {
            hybrid = Some(r.to_json());
        }
        assert!(r.invariants.bytes_delivered > 0, "{preset:?}");
        assert_eq!(
            r.invariants.bytes_delivered, r.invariants.bytes_consumed,
            "{preset:?}"
        );
        assert_eq!(r.invariants.early_deliveries, 0, "{preset:?}");
        assert!(
            r.invariants.max_uplink_utilization <= 1.0 + 1e-3,
            "{preset:?}"
        );
        let cfg = SwarmConfig::new(&s, true);
        assert!(cfg.units.parts());
        for (_, a) in &o.audit {
            if let Audit::Delivered { seg, at, .. } = a {
                assert!(
                    *at >= cfg.produced_at(*seg),
                    "{preset:?}: part {seg} at {at}"
                );
            }
        }
        if preset == Preset::CdnOnly {
            assert_eq!(r.p2p_bytes, 0);
            assert_eq!(r.peer_requests, 0);
        } else {
            assert!(r.p2p_bytes > 0, "{preset:?}");
        }
    }
    // The same seed gives the same report, whatever the threads (and the audit).
    let mut one = small(Preset::Hybrid, Latency::Low);
    one.sim.threads = 1;
    assert_eq!(hybrid, Some(go(&one, false).report.to_json()));
}

#[test]
fn ll_hls_with_p2p_off_plays_at_the_hold_back() {
    // cdn-only at `low` is plain LL-HLS: the latency is the hold-back plus how old
    // the newest part was at join and the start-up; peers change none of it.
    let cdn = go(&small(Preset::CdnOnly, Latency::Low), false).report;
    let p2p = go(&small(Preset::Hybrid, Latency::Low), false).report;
    assert!(
        (1.5..2.3).contains(&cdn.latency_to_live_p50_s),
        "{}",
        cdn.latency_to_live_p50_s
    );
    // With peers, `low` plays one part (0.5 s) further back, as `mediamesh peer
    // --latency low` does with P2P on; nothing else adds latency.
    assert!(
        (p2p.latency_to_live_p50_s - cdn.latency_to_live_p50_s - 0.5).abs() < 0.3,
        "p2p {} vs cdn {}",
        p2p.latency_to_live_p50_s,
        cdn.latency_to_live_p50_s
    );
}

#[test]
fn the_curve_runs_every_point_in_latency_order() {
    let mut s = small(Preset::Hybrid, Latency::MaxOffload);
    s.viewers = 48;
    s.duration_s = 60;
    s.part_ms = 0; // the curve brings the origin's default part target
    let (curve, runs) = sim::curve::run(&s, &mut |_, _, _| {}).expect("runs");
    assert_eq!(runs.len(), curve.rows.len());
    assert_eq!(curve.part_ms, 500);
    let labels: Vec<&str> = curve.rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels.first(), Some(&"p2p-off-low"));
    assert_eq!(labels.last(), Some(&"max-offload"));
    assert_eq!(curve.rows[0].p2p_share, 0.0);
    // Parts points: latency grows with the offset.
    let parts = &curve.rows[1..curve.rows.len() - 1];
    assert!(parts
        .windows(2)
        .all(|w| w[0].latency_to_live_p50_s < w[1].latency_to_live_p50_s));
    let json: serde_json::Value = serde_json::from_str(&curve.to_json()).expect("json");
    assert_eq!(
        json["rows"].as_array().map(Vec::len),
        Some(curve.rows.len())
    );
    let table = curve.to_table();
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        1 + curve.rows.len()
    );
}

/// The curve at audience scale: `cargo test -p sim --release --test parts -- --ignored
/// --nocapture` (the same runs as `mediamesh sim --curve --viewers 100000`; about
/// ten minutes on two cores, see the README). Prints the table and each point's wall
/// time; asserts only the shape.
#[test]
#[ignore = "minutes of CPU: run on demand in release"]
fn curve_at_100k_viewers() {
    let viewers = std::env::var("SIM_CURVE_VIEWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let s = Scenario {
        viewers,
        ..Scenario::default()
    };
    let started = std::time::Instant::now();
    let mut last = String::new();
    let mut lap = std::time::Instant::now();
    let (curve, _) = sim::curve::run(&s, &mut |label, _, _| {
        if label != last {
            if !last.is_empty() {
                eprintln!("{last}: {:.1} s", lap.elapsed().as_secs_f64());
            }
            last = label.to_string();
            lap = std::time::Instant::now();
        }
    })
    .expect("runs");
    eprintln!("{last}: {:.1} s", lap.elapsed().as_secs_f64());
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
    println!("{}", curve.to_table());
    println!("{}", curve.to_json());
    assert_eq!(curve.rows[0].p2p_share, 0.0);
}
