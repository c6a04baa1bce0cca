//! `wss://` trackers for native peers: a certificate for 127.0.0.1 from a private test
//! CA (made here with rcgen), a tracker serving it (`mediamesh tracker --tls-cert
//! --tls-key`, and `mediamesh serve --tls-cert --tls-key`, whose tracker shares the
//! HTTPS port), and `mediamesh peer --tracker wss://… --tracker-ca ca.pem` viewers of
//! the demo channel that meet there and share segments. Without `--tracker-ca` the
//! same viewers refuse the tracker's certificate and play over HTTP alone. Bad TLS,
//! CA and ICE-server flags are refused with errors that name the problem.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`:
/// (ca.pem, cert.pem, key.pem).
fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "mediamesh test CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("certificate");

    let files = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&files.0, ca_cert.pem()).expect("write ca.pem");
    std::fs::write(&files.1, leaf_cert.pem()).expect("write cert.pem");
    std::fs::write(&files.2, leaf_key.serialize_pem()).expect("write key.pem");
    (files.0, files.1, files.2)
}

/// `mediamesh tracker --tls-cert --tls-key` on port 0; waits until it accepts.
fn start_tls_tracker(cert: &Path, key: &Path) -> Server {
    Server::start_role(
        "tracker",
        &[
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    )
}

/// Runs `mediamesh peer` on the demo of `media` with `extra` flags; returns the stats
/// and the peer's log.
fn peers(media: &Server, name: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let playlist = media.url("/live/demo/index.m3u8");
    wait_for_200(&playlist, Duration::from_secs(20));
    let stats = media.dir.path().join(format!("{name}.json"));
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_mediamesh"))
            .arg("peer")
            .arg(&playlist)
            .args(["--count", "2", "--duration", "20", "--stats"])
            .arg(&stats)
            .args(extra)
            .env("RUST_LOG", "info"),
        Duration::from_secs(90),
    );
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "mediamesh peer failed: {log}");
    let v =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("stats JSON");
    (v, log)
}

#[test]
fn native_peers_meet_at_a_wss_tracker_with_a_private_ca() {
    let media = Server::start("serve", &["--demo"]);
    let (ca, cert, key) = test_pki(media.dir.path());
    let tracker = start_tls_tracker(&cert, &key);
    let wss = format!("wss://127.0.0.1:{}/tracker", tracker.http);
    let ca_arg = ca.display().to_string();

    let (v, log) = peers(&media, "wss", &["--tracker", &wss, "--tracker-ca", &ca_arg]);
    let total = &v["total"];
    assert_eq!(total["errors"], 0, "{v}");
    assert!(
        total["p2p_bytes"].as_u64().unwrap_or(0) > 0,
        "no bytes moved between peers that met at {wss}: {v}\npeer log:\n{log}\ntracker log:\n{}",
        tracker.log_text()
    );
    assert!(!log.contains("tracker connect failed"), "{log}");

    // Without the CA the tracker's certificate is not trusted: no swarm, HTTP only.
    let (v, log) = peers(&media, "untrusted", &["--tracker", &wss]);
    assert_eq!(v["total"]["errors"], 0, "{v}");
    assert_eq!(v["total"]["p2p_bytes"], 0, "{v}");
    assert!(v["total"]["http_bytes"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(
        log.contains("tracker connect failed") && log.to_lowercase().contains("certificate"),
        "the refusal should name the certificate: {log}"
    );
}

#[test]
fn serve_with_tls_answers_wss_on_its_https_port() {
    // Media from a plain `serve --demo`; the swarm meets at the tracker of a second
    // `serve` that runs with TLS (its tracker shares the HTTPS port).
    let media = Server::start("serve", &["--demo"]);
    let (ca, cert, key) = test_pki(media.dir.path());
    let secure = Server::start(
        "serve",
        &[
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    );
    let wss = format!("wss://127.0.0.1:{}/tracker", secure.http);
    let (v, log) = peers(
        &media,
        "serve-wss",
        &["--tracker", &wss, "--tracker-ca", &ca.display().to_string()],
    );
    assert_eq!(v["total"]["errors"], 0, "{v}");
    assert!(
        v["total"]["p2p_bytes"].as_u64().unwrap_or(0) > 0,
        "no bytes moved between peers that met at {wss}: {v}\npeer log:\n{log}\nserve log:\n{}",
        secure.log_text()
    );
}

#[test]
fn bad_tls_and_ice_flags_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, cert, _) = test_pki(dir.path());
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_mediamesh"))
            .args(["tracker", "--http", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&cert),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tls-cert and --tls-key go together"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_mediamesh"))
            .args([
                "peer",
                "http://127.0.0.1:9/live/x/index.m3u8",
                "--tracker-ca",
            ])
            .arg(&junk),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no PEM certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A credential on a stun: URL is refused before serve listens, without echoing it.
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_mediamesh"))
            .args(["serve", "--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0"])
            .arg("--data")
            .arg(dir.path().join("data"))
            .args(["--ice-server", "stun:bob:hunter2@stun.example.org"]),
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("only turn:/turns: take USER:PASS@"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        !err.contains("listening"),
        "serve started before refusing: {err}"
    );
}
