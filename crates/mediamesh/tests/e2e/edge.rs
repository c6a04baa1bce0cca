//! End to end for the CDN tier: the real `mediamesh edge` binary in front of a test
//! origin that counts requests: coalescing (plain objects and LL-HLS blocking
//! reloads), origin failover and stale-if-error, the shield tier with rendezvous
//! hashing, the disk tier across restarts, signed URLs, and hostile clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::test_origin::{object_bytes, TestOrigin};
use crate::common::*;

/// GETs `url` from `n` threads at once; returns (status, body) of each.
fn herd(url: &str, n: usize) -> Vec<(u16, Vec<u8>)> {
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_string();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                get_with_timeout(&url, Duration::from_secs(30))
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect()
}

fn header(url: &str, name: &str) -> Option<String> {
    let r = reqwest::blocking::get(url).ok()?;
    r.headers().get(name)?.to_str().ok().map(str::to_string)
}

#[test]
fn concurrent_misses_make_one_upstream_request_and_stream_to_all() {
    let origin = TestOrigin::start();
    let edge = Server::start_edge(&["--origin", &origin.url()]);
    let answers = herd(&edge.url("/obj/herd.m4s?delay_ms=500"), 200);
    let want = object_bytes("herd.m4s", 2 << 20);
    for (status, body) in &answers {
        assert_eq!(*status, 200);
        assert!(body == &want, "a body differs ({} bytes)", body.len());
    }
    assert_eq!(
        origin.count("/obj/herd.m4s"),
        1,
        "200 misses → 1 upstream request"
    );
    // Now cached.
    assert_eq!(
        header(&edge.url("/obj/herd.m4s?delay_ms=500"), "x-cache").as_deref(),
        Some("HIT")
    );
    assert_eq!(origin.count("/obj/herd.m4s"), 1);

    // 50 viewers blocking on the same next LL-HLS part → one upstream blocking request.
    let answers = herd(&edge.url("/live/x/index.m3u8?_HLS_msn=12&_HLS_part=3"), 50);
    for (status, body) in &answers {
        assert_eq!(*status, 200);
        assert!(String::from_utf8_lossy(body).contains("msn 12 part 3"));
    }
    assert_eq!(
        origin.count("/live/x/index.m3u8"),
        1,
        "50 blocking reloads → 1 upstream"
    );
}

#[test]
fn failover_stale_if_error_and_502() {
    let mut first = TestOrigin::start();
    let mut second = TestOrigin::start();
    let edge = Server::start_edge(&["--origin", &first.url(), "--origin", &second.url()]);
    let short = "?size=1000&delay_ms=0&cc=max-age=1,stale-if-error=60";
    let (s, _) = get(&edge.url(&format!("/obj/a.m4s{short}")));
    assert_eq!(s, 200);
    assert_eq!(first.count("/obj/a.m4s"), 1);
    first.kill();
    let (s, body) = get(&edge.url("/obj/b.m4s?size=1000&delay_ms=0"));
    assert_eq!(s, 200);
    assert_eq!(body, object_bytes("b.m4s", 1000));
    assert_eq!(second.count("/obj/b.m4s"), 1, "served by the second origin");
    second.kill();
    std::thread::sleep(Duration::from_millis(1500)); // a.m4s is now stale
    let r = reqwest::blocking::get(edge.url(&format!("/obj/a.m4s{short}"))).expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers().get("x-cache").and_then(|v| v.to_str().ok()),
        Some("STALE-IF-ERROR")
    );
    let (s, body) = get(&edge.url("/obj/never.m4s?size=10&delay_ms=0"));
    assert!(
        s == 502 || s == 504,
        "{s} {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(get(&edge.url("/healthz")).0, 200, "the edge never crashes");
}

#[test]
fn shield_tier_fetches_each_object_once_and_only_dead_parents_objects_move() {
    let origin = TestOrigin::start();
    let mut parents: Vec<Server> = (0..2)
        .map(|_| Server::start_edge(&["--origin", &origin.url()]))
        .collect();
    let parent_args: Vec<String> = parents
        .iter()
        .flat_map(|p| {
            [
                "--parent".to_string(),
                format!("http://127.0.0.1:{}", p.http),
            ]
        })
        .collect();
    let edges: Vec<Server> = (0..3)
        .map(|_| {
            let mut args: Vec<&str> = vec!["--origin", origin.url_static()];
            args.extend(parent_args.iter().map(String::as_str));
            Server::start_edge(&args)
        })
        .collect();
    let names: Vec<String> = (0..20)
        .map(|i| format!("/obj/s{i}.m4s?size=2000&delay_ms=0"))
        .collect();
    for e in &edges {
        for n in &names {
            assert_eq!(get(&e.url(n)).0, 200);
        }
    }
    for i in 0..20 {
        assert_eq!(
            origin.count(&format!("/obj/s{i}.m4s")),
            1,
            "object {i} fetched once"
        );
    }
    // Which parent holds what: ask parent 0 whether it has it cached, without letting
    // it fetch (only-if-cached).
    let owner = |p: &Server, n: &str| {
        let r = reqwest::blocking::Client::new()
            .get(p.url(n))
            .header("cache-control", "only-if-cached")
            .send()
            .expect("answer");
        r.status().as_u16() == 200
    };
    let owned_by_0: Vec<bool> = names.iter().map(|n| owner(&parents[0], n)).collect();
    assert!(
        owned_by_0.iter().any(|x| *x) && owned_by_0.iter().any(|x| !*x),
        "both parents own objects: {owned_by_0:?}"
    );
    let dead = parents.remove(0);
    dead.kill();
    // Fresh edges (empty caches) now go through the surviving parent.
    let mut args: Vec<&str> = vec!["--origin", origin.url_static()];
    args.extend(parent_args.iter().map(String::as_str));
    let fresh = Server::start_edge(&args);
    for n in &names {
        assert_eq!(get(&fresh.url(n)).0, 200);
    }
    for (i, was_dead_parents) in owned_by_0.iter().enumerate() {
        let want = if *was_dead_parents { 2 } else { 1 };
        assert_eq!(origin.count(&format!("/obj/s{i}.m4s")), want, "object {i}");
    }
}

/// Whether a finished (not temporary) file of more than `size` bytes is under `dir`.
fn has_file_over(dir: &std::path::Path, size: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            return has_file_over(&p, size);
        }
        let temporary = p
            .extension()
            .is_some_and(|x| x.to_string_lossy().starts_with("tmp"))
            || p.to_string_lossy().contains(".tmp.");
        !temporary && e.metadata().is_ok_and(|m| m.len() > size)
    })
}

#[test]
fn disk_tier_survives_a_restart_without_the_origin() {
    let mut origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let cache_arg = cache.display().to_string();
    let args = [
        "--origin",
        origin.url_static(),
        "--cache-dir",
        &cache_arg,
        "--cache-disk",
        "100000000",
    ];
    let edge = Server::start_edge(&args);
    let path = "/obj/disk.m4s?size=300000&delay_ms=0";
    assert_eq!(get(&edge.url(path)).0, 200);
    // The disk write is in the background: wait (bounded) for the object's file, which
    // is written under a temporary name and renamed into place.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while !has_file_over(&cache, 300_000) {
        assert!(
            std::time::Instant::now() < until,
            "the object never reached the disk tier"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (port, folder) = edge.kill();
    origin.kill();
    let edge = Server::start_edge_on(port, folder, &args);
    let r = reqwest::blocking::get(edge.url(path)).expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers().get("x-cache").and_then(|v| v.to_str().ok()),
        Some("HIT")
    );
    assert_eq!(
        r.bytes().expect("body").to_vec(),
        object_bytes("disk.m4s", 300000)
    );
}

fn mint(key: &str, acl: &str, ttl: &str, start: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediamesh"));
    cmd.args(["token", "--key", key, "--acl", acl, "--ttl", ttl]);
    if let Some(s) = start {
        cmd.args(["--start", s]);
    }
    let out = run(&mut cmd, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn tokens_gate_requests_before_the_origin() {
    let origin = TestOrigin::start();
    let key = "0123456789abcdef0123456789abcdef";
    let edge = Server::start_edge(&["--origin", origin.url_static(), "--token-key", key]);
    let good = mint(key, "/obj/*", "300", None);
    let (s, _) = get(&edge.url(&format!("/obj/t1.m4s?size=10&delay_ms=0&__token__={good}")));
    assert_eq!(s, 200);
    // Cookie and header forms.
    let client = reqwest::blocking::Client::new();
    let r = client
        .get(edge.url("/obj/t1.m4s?size=10&delay_ms=0"))
        .header("cookie", format!("__token__={good}"))
        .send()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    let refused = [
        ("missing", String::new()),
        ("expired", mint(key, "/obj/*", "10", Some("1000"))),
        ("forged", {
            let mut t = good.clone();
            let last = t.pop().expect("char");
            t.push(if last == '0' { '1' } else { '0' });
            t
        }),
        (
            "wrong key",
            mint("fedcba9876543210fedcba9876543210", "/obj/*", "300", None),
        ),
        ("outside acl", mint(key, "/live/other/*", "300", None)),
    ];
    for (what, tok) in refused {
        let q = if tok.is_empty() {
            String::new()
        } else {
            format!("&__token__={tok}")
        };
        let (s, body) = get(&edge.url(&format!("/obj/t2.m4s?size=10&delay_ms=0{q}")));
        assert_eq!(s, 403, "{what}: {}", String::from_utf8_lossy(&body));
    }
    assert_eq!(
        origin.count("/obj/t2.m4s"),
        0,
        "refused requests never reach the origin"
    );
}

#[test]
fn hostile_clients_do_not_hurt_the_edge() {
    raise_fd_limit();
    let origin = TestOrigin::start();
    let mut edge = Server::start_edge(&["--origin", origin.url_static(), "--header-timeout", "1"]);
    let rss_before = edge.rss_kib();
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", edge.http)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    };
    // Malformed requests and huge headers.
    for junk in [
        &b"\x16\x03\x01garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/7.0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
    ] {
        let mut s = connect();
        let _ = s.write_all(junk);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let mut s = connect();
    let mut req = b"GET /obj/x.m4s HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend(b"\r\n\r\n");
    let _ = s.write_all(&req);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    // Slowloris: a head sent a byte at a time is cut off by the header timeout.
    let mut slow = connect();
    let started = Instant::now();
    let mut cut = false;
    for b in b"GET /obj/slow.m4s HTTP/1.1\r\nHost: x\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" {
        if slow.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    if !cut {
        let mut sink = [0u8; 64];
        cut = matches!(slow.read(&mut sink), Ok(0) | Err(_))
            || String::from_utf8_lossy(&sink).contains("408");
    }
    assert!(cut, "slowloris connection was not cut");
    // 10,000 idle connections.
    let idle: Vec<TcpStream> = (0..10_000)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", edge.http)).ok())
        .collect();
    assert!(idle.len() > 9_000, "only {} connections opened", idle.len());
    // The edge keeps serving a viewer from another address (the idle ones' address
    // is past its per-address cap).
    let viewer = reqwest::blocking::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let r = viewer
        .get(edge.url("/obj/ok.m4s?size=1000&delay_ms=0"))
        .send()
        .expect("the edge answers a new viewer");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().expect("body").len(), 1000);
    assert!(edge.alive());
    let rss = edge.rss_kib();
    drop(idle);
    assert!(
        rss < 400 * 1024,
        "RSS {rss} KiB with 10k idle connections (before: {rss_before} KiB)"
    );
}

/// 10k sockets need more than the usual 1024 descriptors, in this process and the edge.
#[allow(unsafe_code)] // setrlimit through libc, the one unsafe call of the test suite
fn raise_fd_limit() {
    #[cfg(target_os = "linux")]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur = lim.rlim_max.min(65_536);
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

#[test]
fn serve_puts_the_edge_in_front_of_the_origin_end_to_end() {
    require("ffmpeg");
    let server = Server::start("serve", &[]);
    let _publisher = publish(&server.rtmp_url("cam"), 40, "320x180");
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(15));
    let out = server.dir.path().join("via-edge.mp4");
    record(&server.url("/live/cam/index.m3u8"), 4, &out);
    let d = probe_duration(&out.display().to_string());
    assert!((3.5..=4.6).contains(&d), "{d}");
    // Segments come through the cache.
    let (_, text) = get_text(&server.url("/live/cam/src/index.m3u8"));
    let pl = media::hls::MediaPlaylist::parse(&text).expect("playlist");
    let seg = pl.segments.last().expect("segment").uri.clone();
    let url = server.url(&format!("/live/cam/src/{seg}"));
    let _ = get(&url);
    assert_eq!(header(&url, "x-cache").as_deref(), Some("HIT"));
    let (_, metrics) = get_text(&server.url("/metrics"));
    assert!(
        metrics.contains("mediamesh_edge_requests_total"),
        "edge metrics on /metrics"
    );
    assert!(
        metrics.contains("mediamesh_segments_total"),
        "origin metrics on the same page"
    );
}

fn curl(args: &[&str]) -> String {
    require("curl");
    let out = run(
        Command::new("curl").args(["-s", "-S"]).args(args),
        Duration::from_secs(30),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn http2_tls_ranges_conditionals_and_head() {
    require("openssl");
    let origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = run(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    let plain = Server::start_edge(&["--origin", origin.url_static()]);
    let path = "/obj/h.m4s?size=5000&delay_ms=0";

    // h2c with prior knowledge, and HTTP/1.1, on the same port.
    let v = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &plain.url(path),
    ]);
    assert_eq!(v, "2 200");
    let v = curl(&[
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &plain.url(path),
    ]);
    assert_eq!(v, "1.1 200");

    // Range → 206 with the right bytes; unsatisfiable → 416.
    let (s, body) = {
        let r = reqwest::blocking::Client::new()
            .get(plain.url(path))
            .header("range", "bytes=100-199")
            .send()
            .expect("answer");
        (r.status().as_u16(), r.bytes().expect("body").to_vec())
    };
    assert_eq!(s, 206);
    assert_eq!(body, object_bytes("h.m4s", 5000)[100..200].to_vec());
    let r = reqwest::blocking::Client::new()
        .get(plain.url(path))
        .header("range", "bytes=9000-")
        .send()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 416);

    // ETag → 304; HEAD has headers and no body.
    let etag = header(&plain.url(path), "etag").expect("etag");
    let r = reqwest::blocking::Client::new()
        .get(plain.url(path))
        .header("if-none-match", &etag)
        .send()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 304);
    let r = reqwest::blocking::Client::new()
        .head(plain.url(path))
        .send()
        .expect("answer");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some("5000")
    );
    assert_eq!(origin.count("/obj/h.m4s"), 1);

    // TLS with ALPN: HTTP/2 and HTTP/1.1.
    let tls = Server::start_edge(&[
        "--origin",
        origin.url_static(),
        "--tls-cert",
        &c,
        "--tls-key",
        &k,
    ]);
    let url = format!("https://127.0.0.1:{}{path}", tls.http);
    let v = curl(&[
        "-k",
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]);
    assert_eq!(v, "2 200");
    let v = curl(&[
        "-k",
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]);
    assert_eq!(v, "1.1 200");
}

/// Tokens minted by Akamai's own EdgeAuth library (PyPI `akamai-edgeauth`, installed
/// by `bash .ci/run`) verify at the edge; tampered ones do not.
#[test]
fn tokens_from_akamais_edgeauth_library_verify() {
    let origin = TestOrigin::start();
    let key = "0123456789abcdef0123456789abcdef";
    let edge = Server::start_edge(&["--origin", origin.url_static(), "--token-key", key]);
    let script = format!(
        r#"
from akamai.edgeauth import EdgeAuth
import time
ea = EdgeAuth(key="{key}", window_seconds=300)
print(ea.generate_acl_token("/obj/*"))
print(ea.generate_url_token("/obj/url.m4s"))
ea2 = EdgeAuth(key="{key}", window_seconds=300, start_time=int(time.time()) - 5, session_id="s1", payload="p1", ip="127.0.0.1")
print(ea2.generate_acl_token("/obj/*!/live/*"))
ea3 = EdgeAuth(key="{key}", window_seconds=300, ip="10.9.9.9")
print(ea3.generate_acl_token("/obj/*"))
"#
    );
    let out = run(
        Command::new("python3").args(["-c", &script]),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "python akamai-edgeauth missing? run `bash .ci/run` or `pip install akamai-edgeauth`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let tokens: Vec<&str> = text.lines().collect();
    assert_eq!(tokens.len(), 4, "{text}");
    let status = |path: &str, tok: &str| {
        get(&edge.url(&format!("{path}?size=10&delay_ms=0&__token__={tok}"))).0
    };
    assert_eq!(status("/obj/a.m4s", tokens[0]), 200, "ACL token");
    assert_eq!(status("/obj/url.m4s", tokens[1]), 200, "URL token");
    assert_eq!(
        status("/obj/other.m4s", tokens[1]),
        403,
        "URL token on another path"
    );
    assert_eq!(
        status("/obj/b.m4s", tokens[2]),
        200,
        "token with st, id, data, ip and two ACLs"
    );
    assert_eq!(
        status("/obj/c.m4s", tokens[3]),
        403,
        "token bound to another IP"
    );
    let tampered = tokens[0].replace("acl=/obj/*", "acl=/*");
    assert_eq!(status("/obj/d.m4s", &tampered), 403, "widened ACL");
    assert_eq!(
        origin.count("/obj/other.m4s") + origin.count("/obj/c.m4s") + origin.count("/obj/d.m4s"),
        0
    );
}

/// One request on a new connection, raw: the status line, the header fields (names
/// lowercase) sorted, and the body (none for HEAD, 304, or without a length).
fn exchange(port: u16, request: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let end = loop {
        if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).expect("read a head");
        assert!(n > 0, "closed before a head");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_string();
    let mut fields: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    fields.sort();
    let len = fields
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let bodiless = request.starts_with("HEAD ") || status.contains(" 304 ");
    let want = if bodiless { 0 } else { len };
    let mut body = got[end + 4..].to_vec();
    while body.len() < want {
        let n = s.read(&mut buf).expect("read a body");
        assert!(n > 0, "closed inside a body");
        body.extend_from_slice(&buf[..n]);
    }
    (status, fields, body)
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = get(&format!("http://127.0.0.1:{port}/metrics"));
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Two answers to one request, from the quick edge (`a`) and the one with
/// `--no-quick-hits` (`b`), as header fields (sorted) and body: each has a `date` (and
/// an `age` when `aged`), they are the same but for those two, and a quick one is the
/// 2 MiB hit.
fn assert_same_answer(
    what: &str,
    aged: bool,
    is_quick: bool,
    a: (&mut Vec<(String, String)>, &[u8]),
    b: (&mut Vec<(String, String)>, &[u8]),
) {
    for f in [&mut *a.0, &mut *b.0] {
        if aged {
            assert!(f.iter().any(|(n, _)| n == "age"), "{what}: {f:?}");
        }
        assert!(f.iter().any(|(n, _)| n == "date"), "{what}: {f:?}");
        f.retain(|(n, _)| n != "date" && n != "age");
    }
    assert_eq!(a.0, b.0, "{what}");
    assert!(a.1 == b.1, "{what}: the bodies differ");
    if is_quick {
        assert_eq!(a.1, object_bytes("q.m4s", 2 << 20));
        assert!(a.0.contains(&("x-cache".to_string(), "HIT".to_string())));
    }
}

/// The quick path (fresh hits of plain GETs answered without hyper over HTTP/1.1,
/// without the request path over HTTP/2, `edge::quick`) answers exactly as the whole
/// request path does: the same requests to an edge with it and one with
/// `--no-quick-hits` get the same status, header fields (but `date` and `age`) and
/// body, for the requests it takes and those it leaves to the request path, over
/// HTTP/1.1 and over h2c.
#[test]
fn quick_answers_are_the_request_paths() {
    let origin = TestOrigin::start();
    let quick = Server::start_edge(&["--origin", &origin.url()]);
    let whole = Server::start_edge(&["--origin", &origin.url(), "--no-quick-hits"]);
    let plain = |target: &str, more: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: edge.test\r\nUser-Agent: quick-test\r\nAccept: */*\r\n{more}\r\n"
        )
    };
    // Misses first (the long way on both), then the same objects as hits.
    for target in [
        "/obj/q.m4s",
        "/obj/small.m4s?size=1000",
        "/nothing/here.m4s",
    ] {
        let a = exchange(quick.http, &plain(target, ""));
        let b = exchange(whole.http, &plain(target, ""));
        assert_eq!(a.0, b.0, "{target}");
    }
    let etag = exchange(quick.http, &plain("/obj/q.m4s", ""))
        .1
        .into_iter()
        .find(|(n, _)| n == "etag")
        .map(|(_, v)| v)
        .expect("an etag");
    let quick_before = metric(quick.http, "mediamesh_edge_quick_answers_total");
    let cases = [
        (plain("/obj/q.m4s", ""), true),
        (plain("/obj/q.m4s", "Connection: keep-alive\r\n"), true),
        (plain("/obj/small.m4s?size=1000", ""), false),
        (plain("/obj/q.m4s", "Range: bytes=10-99\r\n"), false),
        (
            plain("/obj/q.m4s", &format!("If-None-Match: {etag}\r\n")),
            false,
        ),
        (
            plain("/obj/q.m4s", "Cache-Control: only-if-cached\r\n"),
            false,
        ),
        (plain("/obj/q.m4s", "Connection: close\r\n"), false),
        (plain("/nothing/here.m4s", ""), false),
        (plain("//obj/q.m4s", ""), false),
        (
            "HEAD /obj/q.m4s HTTP/1.1\r\nHost: edge.test\r\n\r\n".to_string(),
            false,
        ),
        ("GET /obj/q.m4s HTTP/1.0\r\n\r\n".to_string(), false),
    ];
    let mut quick_ones = 0.0;
    for (request, is_quick) in &cases {
        let (sa, mut fa, ba) = exchange(quick.http, request);
        let (sb, mut fb, bb) = exchange(whole.http, request);
        let first = request.lines().next().unwrap_or_default();
        assert_eq!(sa, sb, "{first}");
        let aged = sa.contains(" 200 ") || sa.contains(" 206 ");
        assert_same_answer(first, aged, *is_quick, (&mut fa, &ba), (&mut fb, &bb));
        if *is_quick {
            quick_ones += 1.0;
        }
    }
    // The quick edge answered the plain hits itself, and nothing else.
    assert_eq!(
        metric(quick.http, "mediamesh_edge_quick_answers_total") - quick_before,
        quick_ones
    );
    assert_eq!(
        metric(whole.http, "mediamesh_edge_quick_answers_total"),
        0.0
    );
    assert_eq!(origin.count("/obj/q.m4s"), 2, "one miss per edge");

    // The same over HTTP/2 (h2c with prior knowledge): the quick edge answers plain
    // hits from its fields (`Quick::answer_fields`), the rest the long way.
    let h2 = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an h2 client");
    let h2_get = |port: u16, target: &str, field: Option<(&str, &str)>| {
        let mut req = h2
            .get(format!("http://127.0.0.1:{port}{target}"))
            .header("user-agent", "quick-test");
        if let Some((n, v)) = field {
            req = req.header(n, v);
        }
        let r = req.send().expect("an h2 answer");
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        let status = r.status().as_u16();
        let mut fields: Vec<(String, String)> = r
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect();
        fields.sort();
        (status, fields, r.bytes().expect("an h2 body").to_vec())
    };
    let quick_before = metric(quick.http, "mediamesh_edge_quick_answers_total");
    let h2_cases = [
        ("/obj/q.m4s", None, true),
        ("/obj/small.m4s?size=1000", None, false),
        ("/obj/q.m4s", Some(("range", "bytes=10-99")), false),
        ("/obj/q.m4s", Some(("if-none-match", etag.as_str())), false),
        (
            "/obj/q.m4s",
            Some(("cache-control", "only-if-cached")),
            false,
        ),
        ("/nothing/here.m4s", None, false),
        ("//obj/q.m4s", None, false),
        ("/obj/q.m4s", None, true),
    ];
    let mut quick_ones = 0.0;
    for (target, field, is_quick) in h2_cases {
        let (sa, mut fa, ba) = h2_get(quick.http, target, field);
        let (sb, mut fb, bb) = h2_get(whole.http, target, field);
        let what = format!("h2 {target} {field:?}");
        assert_eq!(sa, sb, "{what}");
        let aged = sa == 200 || sa == 206;
        assert_same_answer(&what, aged, is_quick, (&mut fa, &ba), (&mut fb, &bb));
        if is_quick {
            quick_ones += 1.0;
        }
    }
    assert_eq!(
        metric(quick.http, "mediamesh_edge_quick_answers_total") - quick_before,
        quick_ones
    );
    assert_eq!(origin.count("/obj/q.m4s"), 2, "still one miss per edge");
    // The 2 MiB body is in a sealed memory file on both edges (`cache::sealed`): the
    // quick edge sent its hits from it (`sendfile`), the other copied from its pages.
    for edge in [&quick, &whole] {
        assert!(metric(edge.http, "mediamesh_edge_cache_sealed_bodies") >= 1.0);
    }
}
