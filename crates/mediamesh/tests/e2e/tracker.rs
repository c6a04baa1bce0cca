//! End to end: the WebTorrent tracker answers the real npm `bittorrent-tracker` client
//! at `/tracker` on the viewers' port of `mediamesh serve` (next to the edge), and
//! from `mediamesh tracker` alone. The client script is the p2p crate's
//! (`crates/p2p/tests/js`, installed by `bash .ci/run`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn run_client(ws_url: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../p2p/tests/js");
    assert!(
        dir.join("node_modules/bittorrent-tracker").is_dir(),
        "npm packages missing: run `bash .ci/run` or `cd crates/p2p/tests/js && npm ci`"
    );
    let out = run(
        Command::new("node")
            .arg("e2e.mjs")
            .arg(ws_url)
            .current_dir(&dir),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "tracker e2e failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_has_the_tracker_beside_the_edge() {
    let server = Server::start("serve", &[]);
    run_client(&format!("ws://127.0.0.1:{}/tracker", server.http));
    // The edge still proxies everything else.
    assert_eq!(get(&server.url("/api/v1/streams")).0, 200);
    let (_, metrics) = get_text(&server.url("/metrics"));
    assert!(
        metrics.contains("mediamesh_tracker_announces_total"),
        "tracker metrics on /metrics"
    );
}

#[test]
fn tracker_runs_alone() {
    let tracker = Server::start_role("tracker", &[]);
    run_client(&format!("ws://127.0.0.1:{}/tracker", tracker.http));
}
