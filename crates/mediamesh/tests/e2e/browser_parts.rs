//! Part-level P2P in real browsers (issue 13, item 2): the player page at
//! `?latency=low` plays LL-HLS with hls.js and shares LL-HLS **parts** with native
//! peers (`mediamesh peer --latency low`) over the part extension of the peer
//! protocol (`crates/p2p/PROTOCOL.md` §5, `web/P2P.md`), every part from a peer
//! verified in the page before hls.js sees it; and a stock page (no `?latency`) still
//! shares whole segments with it in one swarm.
//!
//! Like `browser_p2p`, each scenario re-runs itself inside a private network namespace
//! (WebRTC needs a non-loopback interface with a default route) and takes its turn
//! with the other browser scenarios. Assertions are on outcomes, each waited for
//! within a bound; no timed assertion.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::browser_p2p::{rerun_in_netns_at, wait_for_stable_multivariant, IN_NETNS};
use crate::common::*;

/// Runs the named test of this module again inside a fresh network namespace (the
/// set-up of `browser_p2p`), one browser scenario at a time.
fn rerun_in_netns(test: &str) {
    rerun_in_netns_at(module_path!(), test, Duration::from_secs(200));
}

/// `serve --demo`, once its LL-HLS playlist is up and its BANDWIDTH holds still (it
/// is part of the swarm id).
fn demo_server() -> Server {
    let server = Server::start("serve", &["--demo"]);
    wait_for_200(
        &server.url("/live/demo/src/index.m3u8"),
        Duration::from_secs(15),
    );
    wait_for_stable_multivariant(&server);
    server
}

/// Runs `web/tests/parts_p2p.mjs` with `config` (JSON, see that script) and returns
/// what it printed.
fn pages(
    web: &Path,
    server: &Server,
    config: serde_json::Value,
    limit: Duration,
) -> serde_json::Value {
    let out = run(
        Command::new("node")
            .arg(web.join("tests/parts_p2p.mjs"))
            .arg(config.to_string()),
        limit,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "parts_p2p.mjs printed no JSON line ({e}): {stdout}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log_text()
        )
    });
    assert!(
        out.status.success() && seen["ok"] == true,
        "the pages did not reach their goals: {seen:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen
}

/// A `?latency=low` page and a native `--latency low` peer, alone in the swarm, share
/// parts both ways: the rendezvous election makes each the HTTP fetcher of about half
/// of the parts, and the other pulls those from it. Both play; nothing is rejected.
#[test]
fn a_low_latency_page_and_a_native_peer_share_parts_both_ways() {
    let web = browser_ready();
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("a_low_latency_page_and_a_native_peer_share_parts_both_ways");
        return;
    }
    let server = demo_server();
    let stats = server.dir.path().join("native.json");
    let native = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(server.url("/live/demo/index.m3u8"))
        .args(["--count", "1", "--duration", "60", "--latency", "low"])
        .arg("--stats")
        .arg(&stats)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mediamesh peer");
    let mut native = Proc {
        child: native,
        name: "mediamesh peer --latency low".into(),
    };
    // The page stays at least as long as the native peer (60 s) so that the native
    // peer can pull parts from it all along; it must play, take verified parts from the
    // native peer and serve parts to it.
    let seen = pages(
        &web,
        &server,
        serde_json::json!({
            "pages": [server.url("/?stream=demo&latency=low")],
            "watch_s": 62,
            "limit_s": 110,
            "need": { "played_s": 10, "p2p_part_bytes": 1, "uploaded_part_bytes": 1 },
        }),
        Duration::from_secs(140),
    );
    assert_eq!(
        native.wait_exit(Duration::from_secs(60)),
        Some(true),
        "mediamesh peer did not finish well"
    );
    let native: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("JSON");
    let page = &seen["pages"][0];
    let total = &native["total"];
    eprintln!(
        "page: latency p50 {} s, {} part bytes from peers, {} uploaded, {} over HTTP\n\
         native: latency p50 {} s, {} part bytes from peers",
        page["latency_p50_s"],
        page["p2p_part_bytes"],
        page["uploaded_part_bytes"],
        page["http_bytes"],
        total["latency_to_live_p50_seconds"],
        total["p2p_part_bytes"]
    );
    // Page → native.
    assert!(
        total["p2p_part_bytes"].as_u64().unwrap_or(0) > 0,
        "the native peer took no part from the page: {native}\npage: {page:#}"
    );
    assert_eq!(total["rejected_parts"], 0, "{native}");
    assert_eq!(total["rejected_segments"], 0, "{native}");
    assert_eq!(total["errors"], 0, "{native}");
    assert!(
        native["peers"][0]["startup_seconds"].is_number(),
        "{native}"
    );
    // Native → page, verified; the page played LL-HLS.
    assert_eq!(page["p2p_enabled"], true, "{page}");
    assert_eq!(page["mode"], "low", "{page}");
    assert!(page["p2p_part_bytes"].as_u64().unwrap_or(0) > 0, "{page}");
    assert_eq!(page["rejected_parts"], 0, "{page}");
    assert_eq!(page["rejected"], 0, "{page}");
    assert_eq!(page["bans"], 0, "{page}");
    assert!(page["played"].as_f64().unwrap_or(0.0) >= 10.0, "{page}");
    assert!(page["latency_p50_s"].is_number(), "{page}");
    assert_eq!(page["swarm_id"], "/live/demo/index.m3u8", "{page}");
}

/// A stock page (no `?latency`: p2p-media-loader as before, whole segments 16 s behind
/// live) and a `?latency=low` page in one swarm: the low-latency page joins the parts
/// it played into whole segments (checked against the signed segment digest) and
/// shares them, and the stock page takes them.
#[test]
fn a_stock_page_and_a_low_latency_page_share_whole_segments() {
    let web = browser_ready();
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("a_stock_page_and_a_low_latency_page_share_whole_segments");
        return;
    }
    let server = demo_server();
    let seen = pages(
        &web,
        &server,
        serde_json::json!({
            "pages": [
                server.url("/?stream=demo&latency=low"),
                server.url("/?stream=demo"),
            ],
            "gap_s": 6,
            "watch_s": 0,
            "limit_s": 110,
            "need": { "played_s": 5, "p2p_bytes_any": 1, "segments_from_low": 1 },
        }),
        Duration::from_secs(140),
    );
    let low = &seen["pages"][0];
    let stock = &seen["pages"][1];
    eprintln!(
        "low-latency page: {} segments joined from parts, {} bytes uploaded; \
         stock page: {} bytes from peers",
        low["joined_segments"], low["uploaded_bytes"], stock["p2p_bytes"]
    );
    assert_eq!(low["mode"], "low", "{low}");
    assert_eq!(stock["mode"], "stock", "{stock}");
    // One swarm: both announced the same info_hash.
    assert_eq!(seen["same_info_hash"], true, "{seen:#}");
    assert!(stock["p2p_bytes"].as_u64().unwrap_or(0) > 0, "{stock}");
    assert_eq!(stock["rejected"], 0, "{stock}");
    assert!(low["joined_segments"].as_u64().unwrap_or(0) > 0, "{low}");
    assert!(low["uploaded_bytes"].as_u64().unwrap_or(0) > 0, "{low}");
}

/// A `?latency=low` page whose only peer is a native `--latency low` peer that
/// corrupts every part it uploads (`--corrupt-uploads 1`): the page rejects the first
/// part it takes from it, bans it for the session, uses no byte from it and plays on
/// over HTTP.
#[test]
fn a_low_latency_page_bans_a_peer_that_corrupts_parts() {
    let web = browser_ready();
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("a_low_latency_page_bans_a_peer_that_corrupts_parts");
        return;
    }
    let server = demo_server();
    let native = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(server.url("/live/demo/index.m3u8"))
        .args(["--count", "1", "--duration", "100", "--latency", "low"])
        .args(["--corrupt-uploads", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mediamesh peer");
    let mut native = Proc {
        child: native,
        name: "mediamesh peer --corrupt-uploads 1".into(),
    };
    let seen = pages(
        &web,
        &server,
        serde_json::json!({
            "pages": [server.url("/?stream=demo&latency=low")],
            "watch_s": 25,
            "limit_s": 90,
            "need": { "played_s": 15, "rejected_parts": 1 },
        }),
        Duration::from_secs(120),
    );
    let _ = native.child.kill();
    let _ = native.wait_exit(Duration::from_secs(10));
    let page = &seen["pages"][0];
    assert!(page["rejected_parts"].as_u64().unwrap_or(0) >= 1, "{page}");
    assert_eq!(page["bans"], 1, "banned once, for the session: {page}");
    assert_eq!(
        page["p2p_part_bytes"], 0,
        "a corrupted part was used: {page}"
    );
    assert_eq!(page["p2p_bytes"], 0, "{page}");
    assert!(page["played"].as_f64().unwrap_or(0.0) >= 15.0, "{page}");
}

#[test]
fn part_wire_of_the_page_passes_its_node_tests() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    assert!(
        web.join("node_modules").is_dir(),
        "web/node_modules is missing: run `cd web && npm ci`"
    );
    let out = run(
        Command::new("node")
            .arg("--test")
            .arg(web.join("tests/parts.test.mjs")),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");
    assert!(!stdout.contains("# pass 0"), "{stdout}");
}
