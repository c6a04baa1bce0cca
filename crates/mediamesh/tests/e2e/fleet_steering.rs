//! A player following HLS Content Steering switches pathway when its edge dies: the
//! origin's demo channel, three edges, a router with a fixed `--edge` list, and hls.js
//! in headless Chromium (`web/tests/steering.mjs`). Needs Chromium and
//! `web/node_modules` (`bash .ci/run` installs both).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;

#[test]
fn hls_js_follows_content_steering_to_another_edge_and_keeps_playing() {
    let _turn = browser_turn();
    let web = browser_ready();
    let origin = Server::start("origin", &["--demo"]);
    wait_for_200(
        &origin.url("/live/demo/index.m3u8"),
        Duration::from_secs(20),
    );
    let o = origin.url("");
    let mut edges: Vec<Option<Server>> = (0..3)
        .map(|_| Some(Server::start_edge(&["--origin", &o])))
        .collect();
    let url = |i: usize| edges[i].as_ref().map(|e| e.url("")).unwrap_or_default();
    let edge_flags: Vec<String> = vec![
        format!("eu={}", url(0)),
        format!("eu={}", url(1)),
        format!("us={}", url(2)),
    ];
    let mut args = vec!["--region-map", "127.0.0.1/32=eu", "--steering-ttl", "1"];
    for e in &edge_flags {
        args.extend(["--edge", e.as_str()]);
    }
    let router = Server::start_role("router", &args);

    let mut node = Proc {
        child: Command::new("node")
            .arg(web.join("tests/steering.mjs"))
            .arg(&o)
            .arg(router.url("/live/demo/index.m3u8"))
            .arg("90")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node"),
        name: "node steering.mjs".into(),
    };
    let stdout = node.child.stdout.take().expect("stdout");
    let mut stdin = node.child.stdin.take().expect("stdin");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(100))
        .expect("steering.mjs said nothing");
    eprintln!("{first}");
    let seen: serde_json::Value = serde_json::from_str(&first).expect("json line");
    assert_eq!(seen["phase"], "playing", "player did not start: {first}");
    let host = seen["host"].as_str().expect("host").to_string();
    let playing_on = (0..3)
        .find(|i| url(*i).ends_with(&host))
        .unwrap_or_else(|| panic!("fragments from {host}, not an edge"));
    assert!(
        playing_on < 2,
        "an eu viewer should play from an eu edge, got {host}"
    );
    if let Some(e) = edges[playing_on].take() {
        e.kill();
    }
    writeln!(stdin, "killed").expect("tell node");
    let last = rx
        .recv_timeout(Duration::from_secs(100))
        .expect("steering.mjs gave no result");
    eprintln!("{last}");
    let _ = node.wait_exit(Duration::from_secs(20));
    let r: serde_json::Value = serde_json::from_str(&last).expect("json line");
    assert_eq!(
        r["ok"], true,
        "player did not switch and keep playing: {last}"
    );
    let to = r["to"].as_str().expect("to");
    assert_ne!(to, host);
    eprintln!(
        "FLEET steering: hls.js moved from {host} to {to} {:.2} s after the edge died; played {:.1} s after",
        r["switch_s"].as_f64().unwrap_or(-1.0),
        r["played_after_kill_s"].as_f64().unwrap_or(-1.0)
    );
    drop(router);
}
