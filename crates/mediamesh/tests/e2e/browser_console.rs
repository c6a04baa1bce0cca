//! The operator console (issue 15, item 1) end to end: where it is served (the admin
//! side only: `--admin` when given, never an edge's or the router's viewer side), that
//! its API wants the admin token, and in headless Chromium (web/tests/console.mjs)
//! that the page says 401/403 without the right token, lists a publish within 2 s of
//! it going live, plays its preview, kicks the publisher after a confirmation and
//! shows the stream ended,
//! charts P2P offload while native peers play, and shows viewers from two edges (in
//! front of one origin, sharing a real redis-server) as one total.
//!
//! Screenshots: `target/tmp/console-<test>/console-*.png` (Cargo's
//! `CARGO_TARGET_TMPDIR`, which outlives the run).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const TOKEN: &str = "e2e-console-token-0123456789";

/// The admin port of a role's `listening … admin=ADDR` line.
fn admin_port(server: &Server) -> u16 {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.log_text();
        let port = log
            .lines()
            .find(|l| l.contains(" listening role="))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("admin="))
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            })
            .map(|a| a.port());
        if let Some(p) = port {
            return p;
        }
        assert!(
            Instant::now() < until,
            "no admin address in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_with(url: &str, token: Option<&str>) -> u16 {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.send()
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn json_with(url: &str, token: &str) -> serde_json::Value {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
        .get(url)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(r.status().as_u16(), 200, "GET {url}");
    r.json().expect("JSON")
}

/// The console's page is public, its API is not: 401 without a token, 403 with a
/// wrong one, 200 with the right one.
fn console_at(base: &str) {
    assert_eq!(status_with(&format!("{base}/console"), None), 200);
    for path in ["info", "streams", "fleet", "delivery"] {
        let url = format!("{base}/api/v1/console/{path}");
        assert_eq!(status_with(&url, None), 401, "{url}");
        assert_eq!(
            status_with(&url, Some("wrong-token-but-long-enough")),
            403,
            "{url}"
        );
        assert_eq!(status_with(&url, Some(TOKEN)), 200, "{url}");
    }
}

fn no_console_at(base: &str) {
    for path in ["/console", "/console/console.js", "/api/v1/console/streams"] {
        for token in [None, Some(TOKEN)] {
            let url = format!("{base}{path}");
            assert_eq!(
                status_with(&url, token),
                404,
                "{url} must not be served here"
            );
        }
    }
}

#[test]
fn the_console_lives_on_the_admin_side_only() {
    // serve with --admin: the admin listener has it, the viewers' port does not.
    let serve = Server::start("serve", &["--admin", "127.0.0.1:0", "--admin-token", TOKEN]);
    let admin = format!("http://127.0.0.1:{}", admin_port(&serve));
    console_at(&admin);
    no_console_at(&serve.url(""));
    let info = json_with(&format!("{admin}/api/v1/console/info"), TOKEN);
    assert_eq!(info["role"], "serve", "{info}");
    assert_eq!(info["actions"]["kick"], true, "{info}");
    // serve's fleet view: its own origin and edge in the in-memory registry.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let fleet = json_with(&format!("{admin}/api/v1/console/fleet"), TOKEN);
        let kinds: Vec<_> = fleet["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["kind"].as_str().map(str::to_string))
            .collect();
        if kinds.iter().any(|k| k == "origin") && kinds.iter().any(|k| k == "edge") {
            break;
        }
        assert!(Instant::now() < until, "serve's fleet view: {fleet}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // origin without --admin: on its HTTP port next to the write API; an edge in
    // front of it answers 404.
    let origin = Server::start("origin", &["--admin-token", TOKEN]);
    console_at(&origin.url(""));
    let edge = Server::start_edge(&["--origin", &origin.url("")]);
    no_console_at(&edge.url(""));

    // router: on its admin listener, never on the viewer side.
    let router = Server::start_role(
        "router",
        &[
            "--edge",
            &edge.url(""),
            "--admin",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
        ],
    );
    let radmin = format!("http://127.0.0.1:{}", admin_port(&router));
    console_at(&radmin);
    no_console_at(&router.url(""));
    let fleet = json_with(&format!("{radmin}/api/v1/console/fleet"), TOKEN);
    let nodes = fleet["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{fleet}");
    assert_eq!(nodes[0]["kind"], "edge", "{fleet}");
    assert_eq!(nodes[0]["draining"], false, "{fleet}");
}

/// Where this test's screenshots go (kept after the run).
fn shots(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("console-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot folder");
    dir
}

/// Runs node on `args` with a bounded wait; returns its JSON line.
fn node_json(child: std::process::Child, limit: Duration) -> serde_json::Value {
    let mut child = child;
    let until = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    let out = child.wait_with_output().expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or(serde_json::Value::Null)
}

#[test]
fn the_console_lists_a_publish_within_2s_and_kicks_it_after_a_confirmation() {
    require("ffmpeg");
    let _turn = browser_turn();
    let web = browser_ready();
    let server = Server::start("serve", &["--admin", "127.0.0.1:0", "--admin-token", TOKEN]);
    let admin = format!("http://127.0.0.1:{}", admin_port(&server));
    let out = shots("kick");
    let node = Command::new("node")
        .arg(web.join("tests/console.mjs"))
        .arg("kick")
        .arg(format!("{admin}/console"))
        .arg(TOKEN)
        .arg(&out)
        .arg(server.url("/live/cam/index.m3u8"))
        .arg("cam")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    // Publish once the page is logged in, so "listed within 2 s of live" measures
    // the console, not the login.
    let until = Instant::now() + Duration::from_secs(60);
    while !out.join("ready").exists() {
        assert!(Instant::now() < until, "the console page never logged in");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut ffmpeg = publish(&server.rtmp_url("cam"), 120, "320x180");
    let seen = node_json(node, Duration::from_secs(150));
    assert_eq!(seen["ok"], true, "{seen}");
    assert!(seen["no_token_status"]
        .as_str()
        .unwrap_or("")
        .starts_with("401"));
    assert!(seen["wrong_token_status"]
        .as_str()
        .unwrap_or("")
        .starts_with("403"));
    assert!(seen["listed_after_live_ms"].as_u64().is_some(), "{seen}");
    assert!(seen["preview_time"].as_f64().unwrap_or(0.0) > 0.5, "{seen}");
    assert!(
        ffmpeg.wait_exit(Duration::from_secs(20)).is_some(),
        "the kick closed ffmpeg's publish"
    );
    assert!(server.log_text().contains("admin: publisher kicked"));
    for name in [
        "console-401.png",
        "console-live.png",
        "console-phone.png",
        "console-kicked.png",
    ] {
        assert!(
            out.join(name).is_file(),
            "{name} saved in {}",
            out.display()
        );
    }
}

#[test]
fn the_offload_chart_has_points_while_native_peers_play() {
    let _turn = browser_turn();
    let web = browser_ready();
    let server = Server::start(
        "serve",
        &[
            "--demo",
            "--admin",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
            "--tracker-interval",
            "5",
        ],
    );
    let admin = format!("http://127.0.0.1:{}", admin_port(&server));
    wait_for_200(
        &server.url("/live/demo/index.m3u8"),
        Duration::from_secs(20),
    );
    let out = shots("offload");
    let stats = server.dir.path().join("peers.json");
    let peers = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(server.url("/live/demo/index.m3u8"))
        .args(["--count", "4", "--duration", "60", "--stats"])
        .arg(&stats)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("peers");
    let mut peers = Proc {
        child: peers,
        name: "mediamesh peer".into(),
    };
    let node = Command::new("node")
        .arg(web.join("tests/console.mjs"))
        .arg("offload")
        .arg(format!("{admin}/console"))
        .arg(TOKEN)
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let seen = node_json(node, Duration::from_secs(120));
    let _ = peers.wait_exit(Duration::from_secs(90));
    assert_eq!(seen["ok"], true, "{seen}");
    assert!(seen["p2p_bytes"].as_u64().unwrap_or(0) > 0, "{seen}");
    assert!(out.join("console-offload.png").is_file());
}

/// Whether `url` answers 200 to a readiness probe that says it comes from an edge
/// (`Via: 1.1 mediamesh-edge`), so the probe itself is not counted as a viewer.
fn ready_uncounted(url: &str) -> bool {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(url)
        .header("via", "1.1 mediamesh-edge")
        .send()
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// Headless viewers (`mediamesh peer --no-p2p`, each with its own CMCD session id)
/// playing `demo` through `edge` until the test drops them.
fn viewers_at(edge: &Server, count: usize) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(edge.url("/live/demo/index.m3u8"))
        .args([
            "--no-p2p",
            "--count",
            &count.to_string(),
            "--duration",
            "150",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("peers");
    Proc {
        child,
        name: "mediamesh peer".into(),
    }
}

/// Issue 15, item 2: viewers on two edges (two regions) in front of one origin are
/// counted by the edges, reported to the registry (a real redis-server) and shown by
/// the origin's console as one total, with the per-edge and per-region breakdown in
/// `/api/v1/streams`.
#[test]
fn the_console_shows_viewers_from_two_edges_as_one_total() {
    let _turn = browser_turn();
    let web = browser_ready();
    let redis = crate::common::redis::Redis::start();
    let reg = redis.url();
    let origin = Server::start(
        "origin",
        &[
            "--demo",
            "--registry",
            &reg,
            "--region",
            "eu",
            "--admin",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
        ],
    );
    let admin = format!("http://127.0.0.1:{}", admin_port(&origin));
    let edge = |region: &str| {
        Server::start_edge(&[
            "--origin",
            &origin.url(""),
            "--registry",
            &reg,
            "--region",
            region,
        ])
    };
    let (eu, us) = (edge("eu"), edge("us"));
    let until = Instant::now() + Duration::from_secs(30);
    while !ready_uncounted(&origin.url("/live/demo/index.m3u8")) {
        assert!(Instant::now() < until, "the demo never went live");
        std::thread::sleep(Duration::from_millis(200));
    }
    let _two = viewers_at(&eu, 2);
    let _three = viewers_at(&us, 3);
    let out = shots("viewers");
    let node = Command::new("node")
        .arg(web.join("tests/console.mjs"))
        .arg("viewers")
        .arg(format!("{admin}/console"))
        .arg(TOKEN)
        .arg(&out)
        .arg("demo")
        .arg("5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let seen = node_json(node, Duration::from_secs(120));
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["viewers_cell"], "5", "{seen}");
    assert!(out.join("console-viewers.png").is_file());
    // The same total, with its breakdown, in the public API.
    let v: serde_json::Value =
        serde_json::from_str(&get_text(&origin.url("/api/v1/streams")).1).expect("JSON");
    let demo = v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "demo"))
        .cloned()
        .unwrap_or_default();
    let a = &demo["audience"];
    assert_eq!(demo["viewers"], 5, "{demo}");
    assert_eq!(a["http_sessions"], 5, "{demo}");
    assert_eq!(a["regions"]["eu"], 2, "{demo}");
    assert_eq!(a["regions"]["us"], 3, "{demo}");
    let nodes = a["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 2, "one line per edge: {demo}");
    assert!(nodes.iter().all(|n| n["kind"] == "edge"), "{demo}");
}
