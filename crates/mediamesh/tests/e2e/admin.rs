//! The write API end to end (issue 15): every write needs the admin token (401 without,
//! 403 with a wrong one); a kick closes ffmpeg's RTMP publish and ends the stream; a
//! revoked publish key is refused at the next publish; P2P switched off at run time
//! makes the tracker refuse the swarm; an edge in front of an origin never forwards
//! the write API, whatever the token.

use std::time::{Duration, Instant};

use crate::common::*;

const TOKEN: &str = "e2e-admin-token-0123456789";

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

/// One request with an optional bearer token and JSON body: (status, JSON or Null).
fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let mut req = client.request(method.parse().expect("method"), url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    match req.send() {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            )
        }
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

/// Asserts that `method path` answers 401 without a token and 403 with a wrong one.
fn needs_token(base: &str, method: &str, path: &str, body: Option<&str>) {
    let url = format!("{base}{path}");
    let (s, v) = call(method, &url, None, body);
    assert_eq!(s, 401, "{method} {path} without a token: {v}");
    assert_eq!(v["error"]["code"], "unauthorized", "{v}");
    let (s, v) = call(method, &url, Some("wrong-token-but-long-enough"), body);
    assert_eq!(s, 403, "{method} {path} with a wrong token: {v}");
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < until,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stream_state(server: &Server, name: &str) -> Option<String> {
    let (_, text) = get_text(&server.url("/api/v1/streams"));
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["streams"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["state"].as_str().map(str::to_string))
}

#[test]
fn a_kick_closes_the_rtmp_publish_and_ends_the_stream() {
    require("ffmpeg");
    let server = Server::start("serve", &["--admin-token", TOKEN]);
    let base = server.url("");
    let mut ffmpeg = publish(&server.rtmp_url("cam"), 120, "320x180");
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    needs_token(&base, "POST", "/api/v1/streams/cam/kick", None);
    assert!(
        ffmpeg.wait_exit(Duration::from_millis(1)).is_none(),
        "still publishing"
    );
    let (s, v) = call(
        "POST",
        &format!("{base}/api/v1/streams/cam/kick"),
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 200, "{v}");
    // The RTMP connection is closed: ffmpeg gives up (long before its 120 s).
    assert!(
        ffmpeg.wait_exit(Duration::from_secs(20)).is_some(),
        "ffmpeg still publishing after the kick"
    );
    // The stream ends at once (no reconnect grace): ENDLIST, state "ended".
    wait_until("the stream ending", Duration::from_secs(20), || {
        stream_state(&server, "cam").as_deref() != Some("live")
    });
    assert_eq!(stream_state(&server, "cam").as_deref(), Some("ended"));
    wait_until("EXT-X-ENDLIST", Duration::from_secs(20), || {
        get_text(&server.url("/live/cam/src/index.m3u8"))
            .1
            .contains("#EXT-X-ENDLIST")
    });
    // Nothing left to kick.
    let (s, _) = call(
        "POST",
        &format!("{base}/api/v1/streams/cam/kick"),
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 409);
    let log = server.log_text();
    assert!(log.contains("admin: publisher kicked"), "{log}");
    assert!(log.contains("kicked by the operator"), "{log}");
    assert!(!log.contains(TOKEN), "the token is never logged");
}

#[test]
fn a_revoked_key_is_refused_at_the_next_publish() {
    require("ffmpeg");
    let server = Server::start("serve", &["--admin", "127.0.0.1:0", "--admin-token", TOKEN]);
    let admin = format!("http://127.0.0.1:{}", admin_port(&server));
    for (method, path, body) in [
        ("GET", "/api/v1/publish-keys", None),
        ("POST", "/api/v1/publish-keys", Some(r#"{"stream":"cam"}"#)),
        ("DELETE", "/api/v1/publish-keys/cam", None),
        (
            "PUT",
            "/api/v1/streams/cam/p2p",
            Some(r#"{"enabled":false}"#),
        ),
        ("POST", "/api/v1/streams/cam/kick", None),
    ] {
        needs_token(&admin, method, path, body);
        // With --admin, the viewers' port has no write API, even with the token.
        let (s, v) = call(method, &server.url(path), Some(TOKEN), body);
        assert!(s == 404 || s == 405, "{method} {path} on --http: {s} {v}");
    }
    let (s, v) = call(
        "POST",
        &format!("{admin}/api/v1/publish-keys"),
        Some(TOKEN),
        Some(r#"{"stream":"cam"}"#),
    );
    assert_eq!(s, 201, "{v}");
    let key = v["key"].as_str().expect("generated key").to_string();
    let id = v["id"].as_str().expect("key id").to_string();
    // The key opens the stream; a publish without it is refused.
    let mut none = publish(&server.rtmp_url("cam"), 5, "320x180");
    assert_eq!(none.wait_exit(Duration::from_secs(20)), Some(false));
    let mut keyed = publish(
        &format!("{}?key={key}", server.rtmp_url("cam")),
        120,
        "320x180",
    );
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    let (s, v) = call(
        "GET",
        &format!("{admin}/api/v1/publish-keys"),
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 200);
    assert!(
        v.to_string().contains(&id) && !v.to_string().contains(&key),
        "{v}"
    );
    // Revoke it and kick the publisher: the same key no longer publishes.
    let (s, v) = call(
        "DELETE",
        &format!("{admin}/api/v1/publish-keys/cam/{id}"),
        Some(TOKEN),
        None,
    );
    assert_eq!((s, v["revoked"].as_u64()), (200, Some(1)), "{v}");
    let (s, _) = call(
        "POST",
        &format!("{admin}/api/v1/streams/cam/kick"),
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 200);
    assert!(keyed.wait_exit(Duration::from_secs(20)).is_some());
    let mut again = publish(
        &format!("{}?key={key}", server.rtmp_url("cam")),
        5,
        "320x180",
    );
    assert_eq!(
        again.wait_exit(Duration::from_secs(20)),
        Some(false),
        "a revoked key must be refused"
    );
    assert_ne!(stream_state(&server, "cam").as_deref(), Some("live"));
    let log = server.log_text();
    assert!(log.contains("admin: publish keys revoked"), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains(&key),
        "secrets never logged"
    );
}

#[test]
fn p2p_turned_off_at_run_time_makes_the_tracker_refuse_the_swarm() {
    let server = Server::start("serve", &["--demo", "--admin-token", TOKEN]);
    let base = server.url("");
    wait_for_200(
        &server.url("/live/demo/index.m3u8"),
        Duration::from_secs(20),
    );
    let refused = || {
        get_text(&server.url("/metrics"))
            .1
            .lines()
            .find_map(|l| l.strip_prefix("mediamesh_tracker_disabled_swarms "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    needs_token(
        &base,
        "PUT",
        "/api/v1/streams/demo/p2p",
        Some(r#"{"enabled":false}"#),
    );
    let (s, v) = call(
        "PUT",
        &format!("{base}/api/v1/streams/demo/p2p"),
        Some(TOKEN),
        Some(r#"{"enabled":false}"#),
    );
    assert_eq!((s, &v["p2p"]), (200, &serde_json::json!(false)), "{v}");
    wait_until(
        "the tracker refusing the swarm",
        Duration::from_secs(20),
        || refused() >= 1.0,
    );
    let v = crate::peer::run_peers_to(
        &server,
        "admin-peers.json",
        &["--count", "2", "--duration", "8"],
    );
    assert_eq!(v["total"]["errors"], 0, "{v}");
    assert_eq!(v["total"]["p2p_bytes"], 0, "{v}");
    let (_, metrics) = get_text(&server.url("/metrics"));
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mediamesh_tracker_rejected_total") && l.contains("p2p_off")),
        "the tracker did not refuse the swarm: {metrics}"
    );
    // And back on at run time.
    let (s, _) = call(
        "PUT",
        &format!("{base}/api/v1/streams/demo/p2p"),
        Some(TOKEN),
        Some(r#"{"enabled":true}"#),
    );
    assert_eq!(s, 200);
    wait_until(
        "the tracker accepting the swarm",
        Duration::from_secs(20),
        || refused() == 0.0,
    );
    let (s, v) = call(
        "GET",
        &format!("{base}/api/v1/streams/demo/p2p"),
        Some(TOKEN),
        None,
    );
    assert_eq!((s, &v["p2p"]), (200, &serde_json::json!(true)), "{v}");
}

#[test]
fn an_edge_never_forwards_the_write_api() {
    require("ffmpeg");
    let origin = Server::start("origin", &["--admin-token", TOKEN]);
    let edge = Server::start_edge(&["--origin", &origin.url("")]);
    let mut ffmpeg = publish(&origin.rtmp_url("cam"), 120, "320x180");
    wait_for_200(&edge.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    for (method, path, body) in [
        ("POST", "/api/v1/streams/cam/kick", None),
        ("GET", "/api/v1/publish-keys", None),
        ("POST", "/api/v1/publish-keys", Some(r#"{"stream":"cam"}"#)),
        ("DELETE", "/api/v1/publish-keys/cam", None),
        ("GET", "/console", None),
    ] {
        for token in [None, Some(TOKEN)] {
            let (s, v) = call(method, &edge.url(path), token, body);
            assert_eq!(s, 404, "{method} {path} through the edge: {v}");
        }
        // Spelled differently, still not forwarded.
        let odd = format!("/api/v1/./{}", path.trim_start_matches("/api/v1/"));
        let (s, _) = call(method, &edge.url(&odd), Some(TOKEN), body);
        assert!(s == 404 || s == 400, "{method} {odd} through the edge: {s}");
    }
    // The origin's own port serves it, with the token only.
    needs_token(&origin.url(""), "POST", "/api/v1/streams/cam/kick", None);
    needs_token(&origin.url(""), "GET", "/api/v1/publish-keys", None);
    assert!(
        ffmpeg.wait_exit(Duration::from_millis(1)).is_none(),
        "still publishing"
    );
    let (s, v) = call(
        "POST",
        &origin.url("/api/v1/streams/cam/kick"),
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert!(ffmpeg.wait_exit(Duration::from_secs(20)).is_some());
}

#[test]
fn serve_generates_a_token_file_when_none_is_given() {
    let server = Server::start("serve", &[]);
    let file = server.dir.path().join("data").join("admin-token");
    let token = std::fs::read_to_string(&file).expect("token file");
    let token = token.trim();
    assert!(token.len() >= 32, "{token}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "the token file is the owner's alone");
    }
    needs_token(&server.url(""), "GET", "/api/v1/publish-keys", None);
    let (s, v) = call(
        "GET",
        &server.url("/api/v1/publish-keys"),
        Some(token),
        None,
    );
    assert_eq!(s, 200, "{v}");
    let log = server.log_text();
    assert!(
        log.contains(&file.display().to_string()),
        "the log names the file"
    );
    assert!(!log.contains(token), "the token is never logged");
}

#[test]
fn a_draining_edge_gets_no_new_viewers_from_the_router() {
    let origin = Server::start("origin", &["--admin-token", TOKEN]);
    let edges = [
        Server::start_edge(&["--origin", &origin.url("")]),
        Server::start_edge(&["--origin", &origin.url("")]),
    ];
    let router = Server::start_role(
        "router",
        &[
            "--edge",
            &format!("eu={}", edges[0].url("")),
            "--edge",
            &format!("eu={}", edges[1].url("")),
            "--region-map",
            "127.0.0.1/32=eu",
            "--admin",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
        ],
    );
    let admin = format!("http://127.0.0.1:{}", admin_port(&router));
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let edge_for = || {
        let r = client
            .get(router.url("/live/cam/src/index.m3u8"))
            .send()
            .expect("router answers");
        assert_eq!(r.status().as_u16(), 302);
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        edges
            .iter()
            .position(|e| loc.starts_with(&e.url("/")))
            .unwrap_or_else(|| panic!("redirect to no known edge: {loc}"))
    };
    let first = edge_for();
    let (_, nodes) = get_text(&router.url("/api/v1/nodes"));
    let nodes: serde_json::Value = serde_json::from_str(&nodes).expect("nodes");
    let id = nodes["nodes"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|n| n["public_url"].as_str() == Some(edges[first].url("").as_str()))
        })
        .and_then(|n| n["id"].as_str())
        .expect("the edge's id")
        .to_string();
    let path = format!("/api/v1/edges/{id}/drain");
    let on = r#"{"draining":true}"#;
    needs_token(&admin, "PUT", &path, Some(on));
    // Not on the viewers' port of the router, token or not.
    let (s, _) = call("PUT", &router.url(&path), Some(TOKEN), Some(on));
    assert_eq!(s, 405);
    let (s, v) = call("PUT", &format!("{admin}{path}"), Some(TOKEN), Some(on));
    assert_eq!((s, &v["draining"]), (200, &serde_json::json!(true)), "{v}");
    for _ in 0..5 {
        assert_eq!(edge_for(), 1 - first, "a draining edge got a new viewer");
    }
    let (_, nodes) = get_text(&router.url("/api/v1/nodes"));
    assert!(nodes.contains("\"draining\":true"), "{nodes}");
    let (s, _) = call(
        "PUT",
        &format!("{admin}{path}"),
        Some(TOKEN),
        Some(r#"{"draining":false}"#),
    );
    assert_eq!(s, 200);
    assert_eq!(edge_for(), first, "an undrained edge gets its viewers back");
    assert!(router.log_text().contains("admin: edge drain switched"));
}

/// Every operation `docs/openapi.yaml` documents for serve exists and wants the token.
#[test]
fn every_documented_operation_needs_the_token() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.yaml");
    let text = std::fs::read_to_string(&path).expect("docs/openapi.yaml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    let paths = doc["paths"].as_mapping().expect("paths");
    let server = Server::start("serve", &["--admin-token", TOKEN]);
    let mut checked = 0;
    for (p, ops) in paths {
        let p = p.as_str().expect("path");
        if p.starts_with("/api/v1/edges/") {
            continue; // the router's, checked in a_draining_edge_gets_no_new_viewers_from_the_router
        }
        let concrete = p.replace("{stream}", "cam").replace("{id}", "0123456789ab");
        for (method, op) in ops.as_mapping().expect("operations") {
            let Some(method) = method.as_str().filter(|m| *m != "description") else {
                continue;
            };
            // Public operations say so (`security: []`), like GET /api/v1/streams.
            if op["security"].as_sequence().is_some_and(|s| s.is_empty()) {
                continue;
            }
            let body = matches!(method, "post" | "put").then_some("{}");
            let (s, v) = call(
                &method.to_ascii_uppercase(),
                &server.url(&concrete),
                None,
                body,
            );
            assert_eq!(s, 401, "{method} {p}: {v}");
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} operations documented");
}
