//! P2P in real browsers: `mediamesh serve --demo`, three viewers of the demo channel in
//! headless Chromium (separate browser contexts, so separate peers) with hls.js and
//! p2p-media-loader 2.3 from the binary, announcing to the tracker at `/tracker`. They
//! must all play, and segment bytes must move between them over WebRTC, each one
//! checked against the origin's signed digests in the page. Also runs the node unit
//! tests of that check (`web/tests/integrity.test.mjs`).
//!
//! WebRTC needs a non-loopback interface with a default route to gather any candidate,
//! and the traffic must stay on this machine, so the scenario re-runs itself inside a
//! private network namespace (`unshare --net`, as root) that holds only `lo` and a veth
//! pair with 198.51.100.1/24 (TEST-NET-2) and a default route into that pair: peer
//! traffic goes from that address to itself and nothing can leave the namespace.
//! Needs Chromium, node with `web/node_modules`, `unshare` and `ip` (`bash .ci/run`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

pub(crate) const IN_NETNS: &str = "MEDIAMESH_TEST_IN_NETNS";

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

fn require_web() {
    assert!(
        web().join("node_modules/playwright-core").is_dir(),
        "web/node_modules is missing: run `bash .ci/run` or `cd web && npm ci`"
    );
}

/// Runs the named test of this module again inside a fresh network namespace, one
/// scenario at a time ([`browser_turn`]).
fn rerun_in_netns(test: &str) {
    rerun_in_netns_at(module_path!(), test, Duration::from_secs(170));
}

/// Runs test `test` of module `module` (its `module_path!()`) again inside a fresh
/// network namespace that holds `lo` and a veth pair with a default route, one browser
/// scenario at a time ([`browser_turn`]), within `limit`. The re-run finds
/// [`IN_NETNS`] set and runs the scenario itself.
pub(crate) fn rerun_in_netns_at(module: &str, test: &str, limit: Duration) {
    let _turn = browser_turn();
    // The test's full name in this binary: `{module without the crate}::{test}`.
    let module = module.split_once("::").map_or("", |(_, m)| m);
    let test = format!("{module}::{test}");
    let test = test.as_str();
    let exe = std::env::current_exe().expect("test binary path");
    let setup = "set -e; ip link set lo up; \
        ip link add mm0 type veth peer name mm1; \
        ip addr add 198.51.100.1/24 dev mm0; ip link set mm0 up; ip link set mm1 up; \
        ip route add default via 198.51.100.2 dev mm0; \
        exec \"$0\" \"$@\"";
    let out = run(
        Command::new("unshare")
            .args(["--net", "--", "sh", "-c", setup])
            .arg(&exe)
            // `--include-ignored`: an ignored scenario asked for with `--ignored` runs.
            .args([
                "--exact",
                test,
                "--nocapture",
                "--test-threads=1",
                "--include-ignored",
            ])
            .env(IN_NETNS, "1"),
        limit,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "the scenario failed inside its network namespace (it needs root for `unshare --net`, \
         and `ip` from iproute2):\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the scenario did not run inside the namespace:\n{stdout}"
    );
}

/// Waits until the demo multivariant playlist's BANDWIDTH holds still for 3 s: p2p-media-
/// loader 2.3 hashes it into the swarm id, and the origin revises it once it has
/// measured its first segments. Viewers that loaded different values would be in
/// different swarms.
pub(crate) fn wait_for_stable_multivariant(server: &Server) {
    // BANDWIDTH= values of the variants (not AVERAGE-BANDWIDTH, which p2p-media-loader
    // does not use and which moves all the time).
    fn peaks(playlist: &str) -> Vec<String> {
        playlist
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-STREAM-INF:"))
            .flat_map(|attrs| attrs.split(','))
            .filter_map(|kv| kv.strip_prefix("BANDWIDTH="))
            .map(str::to_string)
            .collect()
    }
    let until = Instant::now() + Duration::from_secs(30);
    let mut last = Vec::new();
    let mut since = Instant::now();
    loop {
        let (_, body) = get_text(&server.url("/live/demo/index.m3u8"));
        let now = peaks(&body);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(3) && !last.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "the demo's BANDWIDTH kept changing: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn chromium_viewers_share_demo_segments_over_webrtc() {
    require_web();
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("chromium_viewers_share_demo_segments_over_webrtc");
        return;
    }
    assert!(
        Path::new("/usr/bin/chromium").exists() || std::env::var_os("CHROMIUM").is_some(),
        "Chromium is missing: run `bash .ci/run` or `apt-get install chromium`"
    );
    let server = Server::start("serve", &["--demo"]);
    wait_for_200(
        &server.url("/live/demo/src/index.m3u8"),
        Duration::from_secs(15),
    );
    wait_for_stable_multivariant(&server);
    let (status, page) = get_text(&server.url("/"));
    assert_eq!(status, 200);
    assert!(page.contains("/vendor/p2p-media-loader.min.js"));
    assert_eq!(get(&server.url("/vendor/p2p-media-loader.min.js")).0, 200);

    let out = run(
        Command::new("node")
            .arg(web().join("tests/p2p.mjs"))
            .arg(server.url("/?stream=demo"))
            .args(["3", "75"]),
        Duration::from_secs(110),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "p2p.mjs printed no JSON line ({e}): {stdout}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log_text()
        )
    });
    assert!(
        out.status.success() && seen["ok"] == true,
        "viewers did not play or share segments: {seen:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let viewers = seen["viewers"].as_array().expect("viewers");
    assert_eq!(viewers.len(), 3);
    let p2p: u64 = viewers.iter().filter_map(|v| v["p2p_bytes"].as_u64()).sum();
    let verified: u64 = viewers.iter().filter_map(|v| v["verified"].as_u64()).sum();
    let uploaded: u64 = viewers
        .iter()
        .filter_map(|v| v["uploaded_bytes"].as_u64())
        .sum();
    assert!(p2p > 0, "no bytes from peers: {seen:#}");
    assert!(
        verified > 0,
        "no segment from a peer was verified: {seen:#}"
    );
    assert!(uploaded > 0, "no viewer uploaded: {seen:#}");
    for v in viewers {
        assert_eq!(v["p2p_enabled"], true, "{v}");
        assert_eq!(v["swarm_id"], "/live/demo/index.m3u8", "{v}");
        assert!(v["played"].as_f64().unwrap_or(0.0) >= 3.0, "{v}");
    }
    // The info_hash the pages announced is the one the documented rule gives
    // (web/P2P.md; `mediamesh peer` must compute the same).
    assert_eq!(seen["swarm"]["announced"], true, "{:#}", seen["swarm"]);
    eprintln!(
        "swarm: {}  info_hash {} ({} bytes from peers, {verified} segments verified)",
        seen["swarm"]["stream_swarm_id"], seen["swarm"]["info_hash"], p2p
    );
}

#[test]
fn integrity_check_of_the_page_passes_its_node_tests() {
    require_web();
    let out = run(
        Command::new("node")
            .arg("--test")
            .arg(web().join("tests/integrity.test.mjs")),
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

/// Starts `mediamesh peer` (one native viewer) writing its stats to `name` in the
/// server's folder; [`stats_of`] waits for it and reads them.
fn native_viewer(
    server: &Server,
    live_offset: &str,
    urgent: &str,
    secs: &str,
    name: &str,
) -> (Proc, std::path::PathBuf) {
    let stats = server.dir.path().join(name);
    let child = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(server.url("/live/demo/index.m3u8"))
        .args([
            "--count",
            "1",
            "--duration",
            secs,
            "--live-offset",
            live_offset,
            "--urgent",
            urgent,
        ])
        .arg("--stats")
        .arg(&stats)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mediamesh peer");
    let proc = Proc {
        child,
        name: "mediamesh peer".into(),
    };
    (proc, stats)
}

/// Waits (bounded) for a native viewer to finish and returns its stats.
fn stats_of((mut proc, stats): (Proc, std::path::PathBuf), limit: Duration) -> serde_json::Value {
    assert_eq!(
        proc.wait_exit(limit),
        Some(true),
        "mediamesh peer did not finish well within {limit:?}"
    );
    serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("stats JSON")
}

#[test]
fn browser_and_native_peers_share_one_swarm_both_ways() {
    require_web();
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("browser_and_native_peers_share_one_swarm_both_ways");
        return;
    }
    let server = Server::start("serve", &["--demo"]);
    wait_for_200(
        &server.url("/live/demo/src/index.m3u8"),
        Duration::from_secs(15),
    );
    wait_for_stable_multivariant(&server);
    // Native → browser: a native viewer closer to live than the browsers (4 s; its
    // whole buffer counts as urgent, so it loads every segment over HTTP as soon as it
    // is listed) joins first and so holds every segment before the browsers, 16 s
    // behind, look for it. p2p-media-loader loads over HTTP at random only segments no
    // peer holds, so the browsers take from it. (When it joined after the browsers,
    // they sometimes fetched the newest segments first and took nothing from it.)
    let ahead = native_viewer(&server, "4", "4", "45", "ahead.json");
    std::thread::sleep(Duration::from_secs(8));
    // Two browser viewers (p2p-media-loader plays 16 s behind live) for the rest.
    let browsers = Command::new("node")
        .arg(web().join("tests/p2p.mjs"))
        .arg(server.url("/?stream=demo"))
        .args(["2", "130", "95"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start node");
    let mut browsers = Proc {
        child: browsers,
        name: "p2p.mjs".into(),
    };
    let ahead = stats_of(ahead, Duration::from_secs(90));
    // Browser → native: once the native viewer ahead has left, a second one joins 19 s
    // behind live, just behind the browsers (16 s). p2p-media-loader keeps a live
    // segment until the playhead is `highDemandTimeWindow` (6 s, the page's `urgent`)
    // past its end, so the browsers hold every segment from about 22 s behind live up to
    // the live edge, and everything this viewer plays was loaded by them seconds before
    // it asks. (At 26 s behind live it asked for segments the browsers had already
    // dropped, and got them from peers only when the browsers' playheads lagged.)
    let behind = stats_of(
        native_viewer(&server, "19", "1.5", "25", "behind.json"),
        Duration::from_secs(90),
    );
    let _ = browsers.wait_exit(Duration::from_secs(60));
    eprintln!(
        "native behind: {}\nnative ahead: {}",
        behind["total"], ahead["total"]
    );
    assert_eq!(behind["total"]["errors"], 0, "{behind}");
    assert_eq!(ahead["total"]["errors"], 0, "{ahead}");
    assert!(
        behind["total"]["p2p_bytes"].as_u64().unwrap_or(0) > 0,
        "the native viewer got nothing from the browsers: {behind}"
    );
    assert!(
        ahead["total"]["uploaded_bytes"].as_u64().unwrap_or(0) > 0,
        "the browsers took nothing from the native viewer: {ahead}"
    );
    assert_eq!(behind["total"]["rejected_segments"], 0, "{behind}");
}

#[test]
fn ban_list_of_the_page_passes_its_node_tests() {
    require_web();
    let out = run(
        Command::new("node")
            .arg("--test")
            .arg(web().join("tests/ban.test.mjs")),
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

/// Media sequence number of the last segment the demo's first rendition lists.
fn demo_last_msn(server: &Server) -> Option<u64> {
    let (status, multi) = get_text(&server.url("/live/demo/index.m3u8"));
    if status != 200 {
        return None;
    }
    let variant = multi
        .lines()
        .find(|l| !l.is_empty() && !l.starts_with('#'))?
        .to_string();
    let (status, text) = get_text(&server.url(&format!("/live/demo/{variant}")));
    if status != 200 {
        return None;
    }
    let first: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let listed = text.lines().filter(|l| l.starts_with("#EXTINF:")).count() as u64;
    (first + listed).checked_sub(1)
}

/// A browser viewer whose only peer is a native viewer that corrupts every segment it
/// uploads (`--corrupt-uploads 1`): the page rejects the segment, bans that peer for
/// the session, refuses the offers and answers it keeps sending through the tracker
/// (re-announced every 10 s here), never plays a byte from it and keeps playing over
/// HTTP.
///
/// The page must ask the corrupting peer: it is the only other peer, it plays 4 s
/// behind live and loads every segment over HTTP as soon as it is listed (its whole
/// buffer is `--urgent`), and it has run for 10 segments before the page opens. The
/// page plays 16 s behind live and loads over HTTP only the segments due within 6 s
/// (`?latency=16&urgent=6`, the player's defaults): every later segment in its window
/// is already held by the corrupting peer, and p2p-media-loader loads a segment some
/// peer holds from that peer (its random HTTP loads take only segments no peer holds).
/// The assertions are on outcomes, each waited for within a bound.
#[test]
fn a_browser_bans_a_corrupting_peer_for_the_session() {
    require_web();
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("a_browser_bans_a_corrupting_peer_for_the_session");
        return;
    }
    let server = Server::start("serve", &["--demo", "--tracker-interval", "10"]);
    wait_for_200(
        &server.url("/live/demo/src/index.m3u8"),
        Duration::from_secs(15),
    );
    wait_for_stable_multivariant(&server);
    let stats = server.dir.path().join("corrupt.json");
    let log = server.dir.path().join("corrupt.log");
    let native = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(server.url("/live/demo/index.m3u8"))
        .args([
            "--count",
            "1",
            "--duration",
            "170",
            "--live-offset",
            "4",
            "--urgent",
            "4",
            "--corrupt-uploads",
            "1",
            "--stats",
        ])
        .arg(&stats)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("peer log"))
        .spawn()
        .expect("start mediamesh peer");
    let mut native = Proc {
        child: native,
        name: "mediamesh peer --corrupt-uploads".into(),
    };
    // The corrupting peer announced itself, then 10 more segments went live: it holds
    // every segment the page will ask peers for.
    let peer_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = get_text(&server.url("/metrics"));
        let announced = metrics
            .lines()
            .find_map(|l| l.strip_prefix("mediamesh_tracker_announces_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if announced >= 1.0 {
            break;
        }
        assert!(
            matches!(native.child.try_wait(), Ok(None)) && Instant::now() < until,
            "the corrupting peer did not announce itself:\n{}",
            peer_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let first = demo_last_msn(&server).expect("the demo's media playlist");
    let until = Instant::now() + Duration::from_secs(60);
    while demo_last_msn(&server).unwrap_or(0) < first + 10 {
        assert!(
            matches!(native.child.try_wait(), Ok(None)) && Instant::now() < until,
            "the demo did not list 10 more segments while the corrupting peer ran:\n{}",
            peer_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = run(
        Command::new("node")
            .arg(web().join("tests/ban_p2p.mjs"))
            .arg(server.url("/?stream=demo&latency=16&urgent=6"))
            .args(["100", "10"]),
        Duration::from_secs(130),
    );
    let _ = native.child.kill();
    let _ = native.wait_exit(Duration::from_secs(10));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "ban_p2p.mjs printed no JSON line ({e}): {stdout}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log_text()
        )
    });
    let s = &seen["stats"];
    assert_eq!(s["p2p_enabled"], true, "{seen:#}");
    // The page asked the corrupting peer and caught what it sent.
    assert!(
        s["rejected"].as_u64().unwrap_or(0) >= 1,
        "no segment from the corrupting peer was rejected: {seen:#}\npeer log:\n{}",
        peer_log()
    );
    assert!(
        s["reasons"]["digest-mismatch"].as_u64().unwrap_or(0) >= 1,
        "{s}"
    );
    // Banned once, for the session; the stats panel shows it.
    assert_eq!(s["bans"], 1, "{s}");
    assert_eq!(s["panel_banned"], "1", "the stats panel shows the ban: {s}");
    // Not one byte from the corrupting peer was played: nothing from peers at all.
    assert_eq!(s["p2p_bytes"], 0, "{s}");
    assert_eq!(s["p2p_segments"], 0, "{s}");
    assert_eq!(s["segments_from_banned"], 0, "{s}");
    assert_eq!(seen["seen_banned_connected"], 0, "{seen}");
    // It came back through the tracker and was refused.
    let refused = ["refused_offers", "refused_answers", "refused_descriptions"]
        .iter()
        .map(|k| s[*k].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert!(refused >= 1, "the banned peer never came back: {s}");
    // And the video went on over HTTP.
    assert!(
        seen["played_after_ban_s"].as_f64().unwrap_or(0.0) >= 10.0,
        "{seen}"
    );
    assert!(s["http_segments"].as_u64().unwrap_or(0) >= 5, "{s}");
    assert!(
        out.status.success() && seen["ok"] == true,
        "the page did not ban the corrupting peer for the session: {seen:#}"
    );
}

/// `serve --ice-server` reaches WebRTC in the page: `/api/v1/p2p` lists the servers
/// (TURN credentials included, for the browser), the page hands them to every
/// RTCPeerConnection, and Chromium's ICE agent sends its STUN binding request to the
/// configured server: a UDP socket of this test inside the private namespace (no
/// real STUN server is contacted; nothing leaves the namespace).
#[test]
fn the_page_hands_operator_ice_servers_to_webrtc() {
    require_web();
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_netns("the_page_hands_operator_ice_servers_to_webrtc");
        return;
    }
    let stun = std::net::UdpSocket::bind("198.51.100.1:0").expect("bind the test STUN socket");
    let port = stun.local_addr().expect("addr").port();
    let stun_url = format!("stun:198.51.100.1:{port}");
    let turn_arg = format!("turn:alice:s3cret@198.51.100.1:{port}?transport=udp");
    let server = Server::start(
        "serve",
        &[
            "--demo",
            "--ice-server",
            &stun_url,
            "--ice-server",
            &turn_arg,
        ],
    );
    let (status, body) = get_text(&server.url("/api/v1/p2p"));
    assert_eq!(status, 200, "{body}");
    let config: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let turn_url = format!("turn:198.51.100.1:{port}?transport=udp");
    assert_eq!(
        config,
        serde_json::json!({"ice_servers": [
            {"urls": stun_url},
            {"urls": turn_url, "username": "alice", "credential": "s3cret"},
        ]})
    );
    wait_for_200(
        &server.url("/live/demo/src/index.m3u8"),
        Duration::from_secs(15),
    );
    wait_for_stable_multivariant(&server);
    let out = run(
        Command::new("node")
            .arg(web().join("tests/ice.mjs"))
            .arg(server.url("/?stream=demo"))
            .arg("30"),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "ice.mjs printed no JSON line ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success() && seen["ok"] == true, "{seen:#}");
    assert_eq!(
        seen["page_ice"],
        serde_json::json!([stun_url, turn_url]),
        "{seen}"
    );
    let first = &seen["pc_configs"][0];
    assert_eq!(first[0]["urls"], stun_url.as_str(), "{seen}");
    assert_eq!(first[1]["urls"], turn_url.as_str(), "{seen}");
    assert_eq!(first[1]["username"], "alice", "{seen}");
    assert_eq!(first[1]["credential_len"], 6, "{seen}");

    // Chromium asked our "STUN server" for its reflexive address: a Binding request
    // (type 0x0001, magic cookie 0x2112A442, RFC 5389).
    stun.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let until = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1500];
    let mut binding = false;
    while !binding && Instant::now() < until {
        if let Ok((n, _)) = stun.recv_from(&mut buf) {
            binding = n >= 20 && buf[0..2] == [0x00, 0x01] && buf[4..8] == [0x21, 0x12, 0xa4, 0x42];
        }
    }
    assert!(
        binding,
        "no STUN binding request reached the configured ICE server"
    );

    // Without --ice-server the page gets an empty list (host candidates only).
    drop(server);
    let plain = Server::start("serve", &[]);
    let (_, body) = get_text(&plain.url("/api/v1/p2p"));
    assert_eq!(body, r#"{"ice_servers":[]}"#);
}
