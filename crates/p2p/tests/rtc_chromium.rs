//! Chromium interop: a headless Chromium page (`tests/js/rtc_page.js`, a plain
//! `RTCPeerConnection` used the way simple-peer does with `trickle: false`) and a
//! native [`Swarm`] peer meet through our in-process tracker and exchange binary
//! data-channel messages (1 B, 64 KiB, 2 MiB in 64 KiB chunks; the native side
//! checks every byte and echoes it, the page checks the echo). Once with Chromium
//! as offerer, once as answerer. Chromium runs with default features, so it hides
//! its host addresses behind mDNS `.local` names; the native side drops those and
//! connects through peer-reflexive discovery.
//!
//! Skips (with a message) only when node, Chromium or `web/node_modules` is absent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use p2p::rtc::{LinkConfig, LinkEvent};
use p2p::signal::{SignalConfig, Swarm, SwarmConfig};
use p2p::tracker::ws::TrackerService;
use p2p::tracker::{Id20, TrackerConfig};
use tokio::net::TcpListener;
use tokio::time::timeout;

const SIZES: [usize; 3] = [1, 64 * 1024, 2 * 1024 * 1024];

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

fn missing_tools() -> Option<String> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Some(format!("{} not found", chromium.display()));
    }
    let pw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/node_modules/playwright-core");
    if !pw.is_dir() {
        return Some("web/node_modules/playwright-core missing (cd web && npm ci)".into());
    }
    match std::process::Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("node not found".into()),
    }
}

/// The byte stream the page sends: per size k, `(i * 13 + k + 1) & 255`.
fn expected() -> Vec<u8> {
    let mut v = Vec::new();
    for (k, &size) in SIZES.iter().enumerate() {
        v.extend((0..size).map(|i| ((i * 13 + k + 1) & 255) as u8));
    }
    v
}

async fn run(role: &str) {
    if let Some(why) = missing_tools() {
        eprintln!("SKIP chromium interop ({role}): {why}");
        return;
    }
    let svc = TrackerService::new(TrackerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // An empty page on the tracker's origin for the browser to run in.
    let router = svc.router().route(
        "/",
        axum::routing::get(|| async { axum::response::Html("<!doctype html><title>rtc</title>") }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let url = format!("ws://{addr}/tracker");
    let ih = Id20([if role == "offer" { 0x51 } else { 0x52 }; 20]);
    let mut signal = SignalConfig::new(ih, Id20([0x77; 20]));
    signal.numwant = 2;
    let cfg = SwarmConfig {
        tracker_url: url.clone(),
        signal,
        link: LinkConfig::default(),
        uploaded: Default::default(),
    };

    let wait_peers = |n: usize| {
        let svc = svc.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while svc.stats().0 < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "tracker never saw {n} peer(s)"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    // The tracker relays an announce's offers to peers already in the swarm, so
    // the answering side joins first.
    let mut swarm = None;
    if role == "offer" {
        swarm = Some(Swarm::join(cfg.clone()));
        wait_peers(1).await;
    }
    let node = tokio::process::Command::new("node")
        .arg(js_dir().join("rtc_interop.mjs"))
        .arg(&url)
        .arg(ih.to_hex())
        .arg(role)
        .arg("60")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    if role == "answer" {
        wait_peers(1).await;
        swarm = Some(Swarm::join(cfg.clone()));
    }
    let mut swarm = swarm.expect("swarm");

    let native = async {
        let Ok(Some((peer, mut link))) = timeout(Duration::from_secs(60), swarm.next_peer()).await
        else {
            return Err(format!(
                "no browser peer within 60 s; signal stats {:?}",
                swarm.stats()
            ));
        };
        let want = expected();
        let mut got = 0usize;
        while got < want.len() {
            match timeout(Duration::from_secs(60), link.recv()).await {
                Ok(Some(LinkEvent::Message(m))) => {
                    if got + m.len() > want.len() || m[..] != want[got..got + m.len()] {
                        return Err(format!("wrong bytes at offset {got}"));
                    }
                    got += m.len();
                    link.send(m).await.map_err(|e| format!("echo: {e}"))?;
                }
                other => return Err(format!("native side at {got} of {}: {other:?}", want.len())),
            }
        }
        Ok((peer, link))
    };
    let browser = async { timeout(Duration::from_secs(120), node.wait_with_output()).await };
    let (out, native) = tokio::join!(browser, native);
    let out = out.expect("browser finished in time").expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{role}: browser said {stdout}");
    let (peer, link) = match native {
        Ok(x) => x,
        Err(e) => panic!(
            "native side ({role}) failed: {e}\nbrowser: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    println!("{role}: linked with browser peer {}", peer.to_hex());
    assert!(
        out.status.success(),
        "browser ({role}) failed: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json line");
    assert_eq!(v["ok"], true);
    assert_eq!(v["bytes"].as_u64(), Some(expected().len() as u64));
    drop(link);
    swarm.shutdown().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_offers_native_answers() {
    run("offer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_offers_chromium_answers() {
    run("answer").await;
}
