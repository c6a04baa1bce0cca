//! HTTP/3 at the edge, with a real HTTP/3 client: headless Chromium with QUIC forced
//! to the test addresses (`web/tests/h3.mjs`) and a self-signed certificate for
//! 127.0.0.1 made here (rcgen), accepted by its SPKI hash.
//!
//! - `mediamesh edge --tls-cert --tls-key --http3` in front of the test origin: a
//!   cached object, fetched twice over HTTP/3, comes from the origin once;
//! - `mediamesh serve --demo --tls-cert --tls-key --http3`: the live playlist and a
//!   segment (twice, the second a cache hit) over HTTP/3, and a route `serve` answers
//!   itself (`/api/v1/p2p`).
//!
//! Each side proves the version: Chromium's Resource Timing says `h3` for every
//! fetch, and the server counts them in `mediamesh_edge_h3_requests_total`. The TCP
//! answers advertise HTTP/3 with `Alt-Svc`. Debian's curl has no HTTP/3, so curl only
//! checks the TCP side. Flags that cannot work are refused with a clear error.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use sha2::Digest;

use crate::common::test_origin::TestOrigin;
use crate::common::*;

/// A self-signed certificate for 127.0.0.1 as PEM files in `dir`, and the base64
/// SHA-256 of its public key (SPKI), which Chromium is told to accept.
fn self_signed(dir: &Path) -> (String, String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write cert.pem");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key.pem");
    let spki = rcgen::PublicKeyData::subject_public_key_info(&made.signing_key);
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki));
    (cert.display().to_string(), key.display().to_string(), hash)
}

/// `curl -k` (TCP, TLS) with `args`; stdout.
fn curl(args: &[&str]) -> String {
    let out = run(
        Command::new("curl")
            .args(["-sk", "--max-time", "15"])
            .args(args),
        Duration::from_secs(20),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `mediamesh_edge_h3_requests_total` on an HTTPS `/metrics`.
fn h3_requests(port: u16) -> u64 {
    let text = curl(&[&format!("https://127.0.0.1:{port}/metrics")]);
    text.lines()
        .find(|l| l.starts_with("mediamesh_edge_h3_requests_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The `Alt-Svc` header of a TCP answer.
fn alt_svc(port: u16) -> Option<String> {
    let head = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("https://127.0.0.1:{port}/healthz"),
    ]);
    head.lines()
        .find_map(|l| l.strip_prefix("alt-svc: "))
        .map(|v| v.trim().to_string())
}

#[test]
fn chromium_fetches_cached_objects_and_a_live_playlist_over_http3() {
    let _turn = browser_turn();
    let web = browser_ready();
    let pki = tempfile::tempdir().expect("tempdir");
    let (cert, key, spki) = self_signed(pki.path());
    let tls = ["--tls-cert", &cert, "--tls-key", &key, "--http3"];

    let origin = TestOrigin::start();
    let mut edge_args = vec!["--origin", origin.url_static()];
    edge_args.extend(tls);
    let edge = Server::start_edge(&edge_args);
    let mut serve_args = vec!["--demo"];
    serve_args.extend(tls);
    let serve = Server::start("serve", &serve_args);

    // TCP answers advertise HTTP/3 on the same port.
    for port in [edge.http, serve.http] {
        assert_eq!(
            alt_svc(port).as_deref(),
            Some(format!("h3=\":{port}\"; ma=86400").as_str()),
            "Alt-Svc on a TCP answer of port {port}"
        );
    }
    assert!(
        edge.log_text().contains("edge serves HTTP/3"),
        "{}",
        edge.log_text()
    );

    // A live segment of the demo channel (over TCP, to know its name).
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let segment = loop {
        let text = curl(&[&format!(
            "https://127.0.0.1:{}/live/demo/src/index.m3u8",
            serve.http
        )]);
        if let Some(seg) = media::hls::MediaPlaylist::parse(&text)
            .ok()
            .and_then(|pl| pl.segments.first().map(|s| s.uri.clone()))
        {
            break seg;
        }
        assert!(
            std::time::Instant::now() < until,
            "the demo channel has no segment yet: {text}\n{}",
            serve.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let edge_before = h3_requests(edge.http);
    let serve_before = h3_requests(serve.http);

    // The browser's URLs differ (its own cache would answer otherwise); the edge's
    // cache keys do not (media objects keep only the test origin's knobs).
    let obj = "/obj/h3.m4s?size=5000&delay_ms=0";
    let seg = format!("/live/demo/src/{segment}");
    let edge_spec = format!("https://127.0.0.1:{}|{obj}&v=1|{obj}&v=2", edge.http);
    let serve_spec = format!(
        "https://127.0.0.1:{}|/live/demo/index.m3u8|{seg}?v=1|{seg}?v=2|/api/v1/p2p",
        serve.http
    );
    let out = run(
        Command::new("node")
            .arg(web.join("tests/h3.mjs"))
            .arg(&spki)
            .arg(&edge_spec)
            .arg(&serve_spec),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "Chromium over HTTP/3: {stdout}\n{}\nedge log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        edge.log_text()
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json line");
    let origins = seen["origins"].as_array().expect("origins");
    assert_eq!(origins.len(), 2, "{stdout}");
    for o in origins {
        assert_eq!(o["navigation"], "h3", "page load over HTTP/3: {stdout}");
        for f in o["fetches"].as_array().expect("fetches") {
            assert_eq!(f["status"], 200, "{stdout}");
            assert_eq!(f["protocol"], "h3", "fetch over HTTP/3: {stdout}");
        }
    }

    // The edge: the object is whole, cached after the first request.
    let fetches = &origins[0]["fetches"];
    assert_eq!(fetches[0]["length"], 5000, "{stdout}");
    assert_eq!(fetches[1]["length"], 5000, "{stdout}");
    assert_eq!(fetches[1]["x_cache"], "HIT", "{stdout}");
    assert_eq!(origin.count("/obj/h3.m4s"), 1, "one origin request");

    // serve: the live playlist, then a segment twice (the second from the cache).
    let fetches = &origins[1]["fetches"];
    assert_eq!(fetches[0]["head"], "#EXTM3U", "{stdout}");
    assert!(fetches[1]["length"].as_u64().unwrap_or(0) > 0, "{stdout}");
    assert_eq!(fetches[1]["length"], fetches[2]["length"], "{stdout}");
    assert_eq!(fetches[2]["x_cache"], "HIT", "{stdout}");
    // A route serve answers itself (not proxied) works over HTTP/3 too.
    assert!(
        fetches[3]["head"]
            .as_str()
            .is_some_and(|h| h.starts_with('{')),
        "{stdout}"
    );

    // Server side: the page loads and fetches were counted as HTTP/3 requests.
    assert!(
        h3_requests(edge.http) >= edge_before + 3,
        "edge counted {} HTTP/3 requests (before {edge_before})",
        h3_requests(edge.http)
    );
    assert!(
        h3_requests(serve.http) >= serve_before + 5,
        "serve counted {} HTTP/3 requests (before {serve_before})",
        h3_requests(serve.http)
    );
}

#[test]
fn http3_without_tls_is_refused_with_a_clear_error() {
    let origin = TestOrigin::start();
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_mediamesh")).args([
            "edge",
            "--http",
            "127.0.0.1:0",
            "--origin",
            origin.url_static(),
            "--http3",
        ]),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HTTP/3 runs over TLS only") && err.contains("--tls-cert"),
        "{err}"
    );
}
