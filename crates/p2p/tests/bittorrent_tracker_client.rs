//! End-to-end: start the tracker on 127.0.0.1 and run `tests/js/e2e.mjs`, which
//! drives the real npm `bittorrent-tracker` client plus raw `ws` sockets against it.
//! Needs Node.js and `cd crates/p2p/tests/js && npm ci`; fails (never skips) if not.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use p2p::tracker::{ws, TrackerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

const SETUP: &str = "run `cd crates/p2p/tests/js && npm ci` (needs Node.js >= 18 on PATH)";

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

async fn start_tracker() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ws::serve(listener, TrackerConfig::default(), async move {
        let _ = stop_rx.await;
    }));
    (addr, stop_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_bittorrent_tracker_client() {
    let dir = js_dir();
    let node_ok = Command::new("node")
        .arg("--version")
        .output()
        .await
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(node_ok, "`node` not found: {SETUP}");
    for pkg in ["bittorrent-tracker", "ws"] {
        let p = dir.join("node_modules").join(pkg).join("package.json");
        assert!(
            p.exists(),
            "npm package `{pkg}` missing ({}): {SETUP}",
            p.display()
        );
    }

    let (addr, stop) = start_tracker().await;
    let url = format!("ws://{addr}/tracker");
    let child = Command::new("node")
        .arg("e2e.mjs")
        .arg(&url)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .expect("node e2e timed out after 40 s")
        .expect("wait for node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- node stdout ---\n{stdout}--- node stderr ---\n{stderr}");
    assert!(out.status.success(), "node e2e failed: {stderr}");
    assert!(stdout.contains("ALL OK"));
    let _ = stop.send(());
}

#[tokio::test]
async fn plain_get_gets_426() {
    let (addr, stop) = start_tracker().await;
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect timeout")
        .expect("connect");
    s.write_all(b"GET /tracker HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("read timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 426"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("upgrade: websocket"),
        "{text}"
    );
    assert!(text.contains("WebTorrent tracker"), "{text}");
    let _ = stop.send(());
}

#[test]
fn router_builds_outside_runtime() {
    let _router = ws::router();
}
