//! End to end, issue 13 item 1: native peers at `--latency low` on `serve --demo`
//! share LL-HLS parts over WebRTC (the part extension of the peer protocol), play
//! without errors, and catch and ban a peer that corrupts the parts it uploads.
//! Outcomes only, no timed assertions.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn run_peers(server: &Server, name: &str, extra: &[&str]) -> serde_json::Value {
    let stats = server.dir.path().join(name);
    let playlist = server.url("/live/demo/index.m3u8");
    wait_for_200(&playlist, Duration::from_secs(20));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediamesh"));
    cmd.arg("peer")
        .arg(&playlist)
        .args(["--stats", &stats.display().to_string()])
        .args(extra);
    let out = run(&mut cmd, Duration::from_secs(90));
    assert!(
        out.status.success(),
        "peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&stats).expect("stats file");
    serde_json::from_str(&text).expect("stats JSON")
}

#[test]
fn native_peers_share_parts_at_low_latency() {
    let server = Server::start("serve", &["--demo"]);
    let v = run_peers(
        &server,
        "low.json",
        &["--count", "4", "--duration", "20", "--latency", "low"],
    );
    let total = &v["total"];
    for key in [
        "latency_to_live_p50_seconds",
        "latency_to_live_p95_seconds",
        "p2p_part_bytes",
        "rejected_parts",
    ] {
        assert!(total.get(key).is_some(), "total.{key} missing: {v}");
    }
    assert_eq!(total["errors"], 0, "{v}");
    assert!(
        total["p2p_part_bytes"].as_u64().unwrap_or(0) > 0,
        "no parts moved between peers: {v}"
    );
    assert_eq!(total["rejected_parts"], 0, "{v}");
    assert_eq!(total["rejected_segments"], 0, "{v}");
    assert!(
        total["latency_to_live_p50_seconds"].is_number(),
        "no latency measured: {v}"
    );
    for p in v["peers"].as_array().expect("peers") {
        assert!(p["startup_seconds"].is_number(), "never played: {p}");
        assert!(p["watched_seconds"].as_f64().unwrap_or(0.0) > 0.0, "{p}");
        assert!(p["segments_played"].as_u64().unwrap_or(0) >= 1, "{p}");
    }
}

#[test]
fn a_peer_that_corrupts_parts_is_caught_and_banned() {
    let server = Server::start("serve", &["--demo"]);
    // Viewer 0 flips a byte in every part it uploads; viewer 1 is honest and its only
    // peer is viewer 0.
    let v = run_peers(
        &server,
        "corrupt.json",
        &[
            "--count",
            "2",
            "--duration",
            "20",
            "--latency",
            "low",
            "--corrupt-uploads",
            "1",
        ],
    );
    let honest = &v["peers"][1];
    assert_eq!(honest["corrupting"], false, "{v}");
    // Banned on the first bad part: never asked again.
    assert_eq!(
        honest["rejected_parts"], 1,
        "the corrupted part was not caught: {v}"
    );
    assert_eq!(honest["banned_peers"], 1, "{v}");
    assert_eq!(
        honest["p2p_part_bytes"], 0,
        "a corrupted part was used: {v}"
    );
    assert!(honest["startup_seconds"].is_number(), "{v}");
    assert_eq!(v["total"]["errors"], 0, "{v}");
}

#[test]
fn max_offload_stays_the_default_and_measures_latency() {
    let server = Server::start("serve", &["--demo"]);
    let v = run_peers(
        &server,
        "default.json",
        &["--count", "2", "--duration", "15"],
    );
    let total = &v["total"];
    assert_eq!(total["errors"], 0, "{v}");
    // Whole segments only: no part crosses between peers.
    assert_eq!(total["p2p_part_bytes"], 0, "{v}");
    assert!(total["latency_to_live_p50_seconds"].is_number(), "{v}");
}
