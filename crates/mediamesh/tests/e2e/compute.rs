//! End to end for edge compute: the real `mediamesh edge` binary running Proxy-Wasm
//! filters in front of the counting test origin — the SDK-built example filter
//! (blocked paths answered at the edge, token check, call-out, header rewrite over
//! plain and cached answers), hostile filters (endless loop, unbounded memory, bad
//! pointers, traps) that fail only their own requests, and hot reload under a live
//! keep-alive connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::test_origin::{object_bytes, TestOrigin};
use crate::common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compute/fixtures")
        .join(name)
}

/// GET with request headers; returns status, response headers (lowercase) and body.
fn fetch(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut req = client.get(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = req.send().expect("request");
    let status = res.status().as_u16();
    let hs = res
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, hs, res.bytes().expect("body").to_vec())
}

fn h<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("edge.toml");
    std::fs::write(&p, body).expect("write config");
    p.display().to_string()
}

#[test]
fn sdk_filter_blocks_at_the_edge_and_rewrites_plain_and_cached_answers() {
    let origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[filter]]
file = "{}"
configuration = '{{"blocked":["/private/"],"protected":["/paid/"],"token":"s3cret","header_name":"x-edge-filter","header_value":"token-check","auth_prefix":"/"}}'
[filter.upstreams]
auth = "{}"
"#,
            fixture("token_check.wasm").display(),
            origin.url()
        ),
    );
    let edge = Server::start_edge(&["--origin", origin.url_static(), "--config", &config]);

    // Blocked: answered by the filter, the origin never sees it.
    let (status, hs, body) = fetch(&edge.url("/private/seg1.m4s"), &[]);
    assert_eq!(status, 403);
    assert_eq!(body, b"blocked at the edge\n");
    assert_eq!(h(&hs, "x-blocked-by"), Some("token-check"));
    assert_eq!(origin.count("/private/seg1.m4s"), 0, "origin never asked");

    // Cached object: MISS then HIT, the filter's header on both, one origin request.
    let url = edge.url("/obj/a.m4s?size=5000&delay_ms=0");
    let (s1, h1, b1) = fetch(&url, &[("server", "x")]);
    let (s2, h2, b2) = fetch(&url, &[]);
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(b1, object_bytes("a.m4s", 5000));
    assert_eq!(b2, b1);
    assert_eq!(h(&h1, "x-cache"), Some("MISS"));
    assert_eq!(h(&h2, "x-cache"), Some("HIT"));
    for hs in [&h1, &h2] {
        assert_eq!(h(hs, "x-edge-filter"), Some("token-check"));
        assert_eq!(h(hs, "x-filter-path"), Some("/obj/a.m4s"));
    }
    assert_eq!(origin.count("/obj/a.m4s"), 1);

    // Plain (not stored) answer: the header too, and each request reaches the origin.
    let url = edge.url("/obj/p.txt?size=100&delay_ms=0&cc=no-store");
    for _ in 0..2 {
        let (s, hs, _) = fetch(&url, &[]);
        assert_eq!(s, 200);
        assert_eq!(h(&hs, "x-edge-filter"), Some("token-check"));
        assert_ne!(h(&hs, "x-cache"), Some("HIT"));
    }
    assert_eq!(origin.count("/obj/p.txt"), 2);

    // Token check.
    let (s, ..) = fetch(&edge.url("/paid/seg1.m4s"), &[("x-token", "wrong")]);
    assert_eq!(s, 401);
    assert_eq!(origin.count("/paid/seg1.m4s"), 0);
    let (s, ..) = fetch(&edge.url("/paid/seg1.m4s"), &[("x-token", "s3cret")]);
    assert_eq!(
        s, 404,
        "let through to the origin, which has no such object"
    );
    assert_eq!(origin.count("/paid/seg1.m4s"), 1);

    // Call-out through proxy_http_call: the filter asks the `auth` upstream.
    let url = edge.url("/obj/c.m4s?size=10&delay_ms=0");
    let (s, ..) = fetch(&url, &[("x-auth", "nobody")]);
    assert_eq!(s, 403);
    assert_eq!(
        origin.count("/nobody"),
        1,
        "the call-out reached the upstream"
    );
    assert_eq!(origin.count("/obj/c.m4s"), 0);
    let (s, ..) = fetch(&url, &[("x-auth", "obj/alice?size=2&delay_ms=0")]);
    assert_eq!(s, 200);
    assert_eq!(origin.count("/obj/alice"), 1);
    assert_eq!(origin.count("/obj/c.m4s"), 1);

    // The filter never runs on the edge's own endpoints.
    let (s, hs, _) = fetch(&edge.url("/healthz"), &[]);
    assert_eq!(s, 200);
    assert_eq!(h(&hs, "x-edge-filter"), None);
}

#[test]
fn hostile_filters_fail_only_their_own_requests() {
    let origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let f = |n: &str| fixture(n).display().to_string();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
filter_memory = 16777216
filter_deadline_ms = 100
[[filter]]
file = "{}"
path_prefix = "/loop/"
[[filter]]
file = "{}"
path_prefix = "/grow/"
[[filter]]
file = "{}"
path_prefix = "/bad/"
[[filter]]
file = "{}"
path_prefix = "/open/"
fail_open = true
[[filter]]
file = "{}"
"#,
            f("loop.wat"),
            f("grow.wat"),
            f("badptr.wat"),
            f("trap.wat"),
            f("pass.wat"),
        ),
    );
    let edge = Server::start_edge(&["--origin", origin.url_static(), "--config", &config]);
    for round in 0..3 {
        for (path, why) in [
            ("/loop/x.m4s", "deadline"),
            ("/grow/x.m4s", "memory"),
            ("/bad/x.m4s", "bad pointer"),
        ] {
            let (s, _, body) = fetch(&edge.url(path), &[]);
            let body = String::from_utf8_lossy(&body);
            assert_eq!(s, 500, "round {round} {path}: {body}");
            // Later rounds may find the filter quarantined; both name the filter.
            if round == 0 {
                assert!(body.contains(why), "{path}: {body}");
            } else {
                assert!(
                    body.contains(why) || body.contains("quarantined"),
                    "{path}: {body}"
                );
            }
            let name = path.trim_matches('/').split('/').next().unwrap_or("");
            assert_eq!(origin.count(&format!("/{name}/x.m4s")), 0);
            // Everyone else is served, through the well-behaved filter.
            let ok = format!("/obj/ok{round}.m4s?size=1000&delay_ms=0");
            let (s, hs, b) = fetch(&edge.url(&ok), &[]);
            assert_eq!(s, 200, "{ok}");
            assert_eq!(b.len(), 1000);
            assert_eq!(h(&hs, "x-hostile"), Some("yes"));
        }
    }
    // Fail-open: the trapping filter is skipped.
    let (s, hs, _) = fetch(&edge.url("/open/obj.m4s"), &[]);
    assert_eq!(s, 404, "reached the origin");
    assert_eq!(h(&hs, "x-hostile"), Some("yes"));
    assert_eq!(origin.count("/open/obj.m4s"), 1);
    // A loop on another thread while normal requests go on.
    let loop_url = edge.url("/loop/y.m4s");
    let t = std::thread::spawn(move || (0..5).map(|_| fetch(&loop_url, &[]).0).collect::<Vec<_>>());
    for i in 0..10 {
        let (s, ..) = fetch(
            &edge.url(&format!("/obj/during{i}.m4s?size=10&delay_ms=0")),
            &[],
        );
        assert_eq!(s, 200);
    }
    assert!(t.join().expect("thread").iter().all(|s| *s == 500));
    let metrics = get_text(&edge.url("/metrics")).1;
    assert!(
        metrics.contains("mediamesh_compute_filter_crashes_total"),
        "crashes counted"
    );
    assert_eq!(get(&edge.url("/healthz")).0, 200);
}

/// One request on an open keep-alive connection; returns status and headers.
fn keepalive_get(
    w: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    path: &str,
) -> std::io::Result<(u16, Vec<(String, String)>)> {
    write!(w, "GET {path} HTTP/1.1\r\nHost: edge\r\n\r\n")?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l)?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = h(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other("no content-length"))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((status, headers))
}

/// Sends raw HTTP/1.1 and reads the whole answer (the edge closes: `Connection: close`).
fn raw_exchange(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn sdk_filter_reads_request_bodies_and_trailers_at_the_edge() {
    let origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[filter]]
file = "{}"
body = true
configuration = '{{"beacon":"/beacon","header_name":"x-edge-filter","header_value":"on"}}'
"#,
            fixture("token_check.wasm").display(),
        ),
    );
    let edge = Server::start_edge(&[
        "--origin",
        origin.url_static(),
        "--config",
        &config,
        "--max-object-bytes",
        "1048576",
    ]);
    let addr = edge.url("").trim_start_matches("http://").to_string();

    // Chunked POST with trailers: the filter reads body and trailers and answers.
    let chunked = b"POST /beacon/cmcd HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\
Transfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n\
5\r\nhello\r\n6\r\n world\r\n0\r\nx-checksum: c0ffee\r\n\r\n";
    let answer = raw_exchange(&addr, chunked);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with("{\"bytes\":11,\"trailers\":1,\"checksum\":\"c0ffee\"}\n"),
        "{answer}"
    );

    // A plain POST with Content-Length: body only.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let res = client
        .post(edge.url("/beacon/cmcd"))
        .body(vec![b'x'; 3000])
        .send()
        .expect("post");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.text().expect("body"),
        "{\"bytes\":3000,\"trailers\":0,\"checksum\":\"\"}\n"
    );
    assert_eq!(origin.count("/beacon/cmcd"), 0, "origin never asked");

    // A body larger than the edge buffers for filters is refused, not truncated.
    let big = format!(
        "POST /beacon/x HTTP/1.1\r\nHost: edge\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        4 << 20
    );
    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(big.as_bytes()).expect("write");
    let chunk = vec![b'y'; 1 << 20];
    for _ in 0..4 {
        if stream.write_all(&chunk).is_err() {
            break; // the edge answered and closed early
        }
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // GETs still pass through the body-taking filter, cached or not.
    for _ in 0..2 {
        let (status, hs, body) = fetch(&edge.url("/obj/b.m4s?size=4000&delay_ms=0"), &[]);
        assert_eq!(status, 200);
        assert_eq!(body.len(), 4000);
        assert_eq!(h(&hs, "x-edge-filter"), Some("on"));
    }
    assert_eq!(origin.count("/obj/b.m4s"), 1);
}

#[test]
fn hot_reload_keeps_connections_and_swaps_the_filter() {
    let origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let live = dir.path().join("live-filter.wasm");
    std::fs::copy(fixture("pass.wat"), &live).expect("copy");
    let live_s = live.display().to_string();
    let edge = Server::start_edge(&["--origin", origin.url_static(), "--filter", &live_s]);
    let stream = TcpStream::connect(("127.0.0.1", edge.http)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    let path = "/obj/r.m4s?size=100&delay_ms=0";
    let (s, hs) = keepalive_get(&mut w, &mut r, path).expect("first request");
    assert_eq!(s, 200);
    assert_eq!(h(&hs, "x-hostile"), Some("yes"));
    // Swap in the SDK filter (no configuration: it only adds x-filter-path).
    std::fs::copy(fixture("token_check.wasm"), &live).expect("swap");
    // The new filter is compiled before it is swapped in (debug Cranelift: seconds).
    let until = Instant::now() + Duration::from_secs(60);
    let mut served = 1;
    let swapped = loop {
        let (s, hs) = keepalive_get(&mut w, &mut r, path).expect("same connection keeps working");
        assert_eq!(s, 200);
        served += 1;
        if h(&hs, "x-filter-path").is_some() {
            assert_eq!(h(&hs, "x-hostile"), None);
            break true;
        }
        if Instant::now() > until {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        swapped,
        "new filter in use after {served} requests on one connection"
    );
    // A broken file does not take the filter down.
    std::fs::write(&live, b"\0asm broken").expect("break");
    std::thread::sleep(Duration::from_millis(1500));
    let (s, hs) = keepalive_get(&mut w, &mut r, path).expect("still the same connection");
    assert_eq!(s, 200);
    assert!(
        h(&hs, "x-filter-path").is_some(),
        "previous version keeps running"
    );
    assert!(edge.log_text().contains("reload failed"));
}

#[test]
fn edge_refuses_to_start_with_a_bad_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"definitely not wasm").expect("write");
    let out = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_mediamesh")).args([
            "edge",
            "--http",
            "127.0.0.1:0",
            "--origin",
            "http://127.0.0.1:9",
            "--filter",
            &bad.display().to_string(),
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot compile") && err.contains("bad.wasm"),
        "{err}"
    );
}
