//! Viewer accounting (issue 15, item 2) without a browser: native viewers that also
//! share over P2P are counted once (an HTTP session at the edge, and a peer in the
//! tracker's swarm, which the origin maps to the stream by info hash), and a viewer
//! that stops drops out of the count after the session window.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn audience(server: &Server, name: &str) -> serde_json::Value {
    let (_, text) = get_text(&server.url("/api/v1/streams"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .cloned()
        .unwrap_or_default()
}

/// Waits (bounded) until the stream's entry satisfies `pred`; returns it.
fn wait_audience(
    server: &Server,
    what: &str,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + limit;
    let mut last = serde_json::Value::Null;
    while Instant::now() < until {
        last = audience(server, "demo");
        if pred(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{what} within {limit:?}; last: {last}");
}

#[test]
fn p2p_viewers_are_counted_once_and_leave_after_the_window() {
    let server = Server::start("serve", &["--demo", "--tracker-interval", "5"]);
    wait_for_200(
        &server.url("/live/demo/index.m3u8"),
        Duration::from_secs(30),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(server.url("/live/demo/index.m3u8"))
        .args(["--count", "3", "--duration", "120"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("peers");
    let mut peers = Proc {
        child,
        name: "mediamesh peer".into(),
    };
    // The readiness probe above is a session too (address + no User-Agent) until it
    // ages out; then: three sessions, three peers, three viewers.
    let seen = wait_audience(
        &server,
        "3 sessions and 3 peers",
        Duration::from_secs(60),
        |s| {
            let a = &s["audience"];
            a["http_sessions"] == 3 && a["p2p_peers"] == 3
        },
    );
    assert_eq!(
        seen["viewers"], 3,
        "peers are not added to sessions: {seen}"
    );
    let a = &seen["audience"];
    assert_eq!(a["nodes"].as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(a["nodes"][0]["kind"], "edge", "{seen}");
    // The viewers stop: they leave the tracker at once and the sessions after 15 s.
    let _ = peers.child.kill();
    let _ = peers.wait_exit(Duration::from_secs(10));
    let gone = wait_audience(&server, "no viewers left", Duration::from_secs(40), |s| {
        s["viewers"] == 0
    });
    assert_eq!(gone["audience"]["p2p_peers"], 0, "{gone}");
}
