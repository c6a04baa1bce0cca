//! End to end for the edge's side of issue 18, against the real `mediamesh edge`
//! binary in front of a test origin that counts requests per raw path:
//! - one canonical path: a percent-encoded path cannot poison the plain one's cache
//!   entry, and dot-segments / encoded slashes are refused before the token check;
//! - cache keys keep only what changes the object: junk query parameters on a media
//!   object or an LL-HLS blocking reload do not multiply origin requests;
//! - stream-directory redirects are followed only to configured upstreams.
//!
//! Requests whose path must reach the edge unaltered are written on a raw TCP socket
//! (an HTTP client library would resolve `..` and `%2e%2e` itself). Every wait is
//! bounded; no assertion is about time.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::test_origin::TestOrigin;
use crate::common::*;

/// Sends `GET {target}` as written and returns (status, body as text).
fn raw_get(port: u16, target: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
    let req = format!("GET {target} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn mint(key: &str, acl: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediamesh"));
    cmd.args(["token", "--key", key, "--acl", acl, "--ttl", "300"]);
    let out = run(&mut cmd, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Finding 1: the key decoded `%6C` but the origin was asked for the raw path, got a
/// 404, and the 404 was cached under `/live/…`: one request made the plain playlist
/// answer 404 to everyone. Now the origin is asked for the canonical path.
#[test]
fn a_percent_encoded_path_cannot_poison_the_plain_one() {
    let origin = TestOrigin::start();
    let edge = Server::start_edge(&["--origin", origin.url_static()]);
    let (s, body) = raw_get(edge.http, "/%6Cive/x/index.m3u8");
    assert_eq!(s, 200, "the encoded form is the same object: {body}");
    let (s, body) = raw_get(edge.http, "/live/x/index.m3u8");
    assert_eq!(s, 200, "the plain playlist was poisoned: {body}");
    assert_eq!(
        origin.count("/%6Cive/x/index.m3u8"),
        0,
        "the origin must be asked for the canonical path only"
    );
    assert!(origin.count("/live/x/index.m3u8") >= 1);
}

/// Finding 2: a token for `/live/a/*` opened `/live/a/../b/…` and its encoded forms.
/// Now such paths are refused (400) before the token check, and never reach the
/// origin; the token still opens its own paths.
#[test]
fn dot_segments_and_encoded_slashes_are_refused_before_the_token_check() {
    let origin = TestOrigin::start();
    let key = "0123456789abcdef0123456789abcdef";
    let edge = Server::start_edge(&["--origin", origin.url_static(), "--token-key", key]);
    let tok = mint(key, "/live/a/*");
    for path in [
        "/live/a/../b/index.m3u8",
        "/live/a/%2e%2e/b/index.m3u8",
        "/live/a/%2E%2E%2Fb%2Findex.m3u8",
        "/live/a/./../b/index.m3u8",
        "/live/a/..%5Cb/index.m3u8",
        "/live/a/%00/index.m3u8",
    ] {
        let (s, body) = raw_get(edge.http, &format!("{path}?__token__={tok}"));
        assert_eq!(s, 400, "{path}: {body}");
        assert_eq!(origin.count(path), 0, "{path} reached the origin");
    }
    // The token works for its own prefix, in any equivalent spelling (here the origin
    // answers 404: it has no such stream, but the request got through).
    let (s, _) = raw_get(edge.http, &format!("/live/%61/index.m3u8?__token__={tok}"));
    assert_eq!(s, 404);
    assert_eq!(origin.count("/live/a/index.m3u8"), 1);
    let (s, _) = raw_get(edge.http, &format!("/live/b/index.m3u8?__token__={tok}"));
    assert_eq!(s, 403);
}

/// Finding 6 (the origin side; the ladder's bounded queue has a unit test): `?x=1…12`
/// on one segment made 13 objects and 13 origin fetches (13 transcodes on a rung).
#[test]
fn junk_query_params_on_media_make_one_object() {
    let origin = TestOrigin::start();
    let edge = Server::start_edge(&["--origin", origin.url_static()]);
    let (s, plain) = get(&edge.url("/obj/j.m4s"));
    assert_eq!(s, 200);
    for i in 1..=12 {
        let (s, body) = get(&edge.url(&format!("/obj/j.m4s?x={i}")));
        assert_eq!(s, 200);
        assert!(body == plain, "answer {i} differs");
    }
    assert_eq!(
        origin.count("/obj/j.m4s"),
        1,
        "13 requests → 1 origin fetch"
    );
}

/// Finding 7: LL-HLS blocking reloads with unique junk parameters each held their
/// own origin connection. Now they are one object, so they coalesce onto one held
/// origin request (the test origin holds blocking reloads 1 s).
#[test]
fn ll_hls_blocking_reloads_with_junk_params_share_one_origin_request() {
    let origin = TestOrigin::start();
    let edge = Server::start_edge(&["--origin", origin.url_static()]);
    let n = 30;
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let url = edge.url(&format!(
                "/live/x/index.m3u8?_HLS_msn=12&_HLS_part=3&junk{i}={i}"
            ));
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                get_with_timeout(&url, Duration::from_secs(30))
            })
        })
        .collect();
    for h in handles {
        let (s, body) = h.join().expect("thread");
        assert_eq!(s, 200);
        let text = String::from_utf8_lossy(&body).into_owned();
        assert!(text.contains("# msn 12 part 3"), "{text}");
    }
    assert_eq!(
        origin.count("/live/x/index.m3u8"),
        1,
        "{n} blocking reloads → 1 origin request"
    );
}

/// A tiny HTTP/1.1 server on its own thread: answers every request with `answer`
/// (a whole response head and body) and counts requests.
fn tiny_server(answer: String) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let answer = answer.clone();
            let count = count.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                if !head.starts_with(b"GET /healthz") {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let _ = s.write_all(answer.as_bytes());
            });
        }
    });
    (port, seen)
}

/// Finding 10: the edge followed an upstream's `Mediamesh-Redirect: directory` to any
/// URL and cached the answer under the viewer's path. Now only configured upstreams
/// are followed; anything else is a 502 with a log line, and the stranger is never
/// asked.
#[test]
fn directory_redirects_to_unconfigured_upstreams_are_not_followed() {
    let body = "#EXTM3U\n# from a stranger\n";
    let (stranger, asked) = tiny_server(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\ncache-control: max-age=60\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    let (origin, redirected) = tiny_server(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{stranger}/live/s/index.m3u8\r\nmediamesh-redirect: directory\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ));
    let origin_url = format!("http://127.0.0.1:{origin}");
    let edge = Server::start_edge(&["--origin", &origin_url]);
    let (s, text) = get_text(&edge.url("/live/s/index.m3u8"));
    assert_eq!(s, 502, "{text}");
    assert!(!text.contains("stranger"));
    assert!(redirected.load(Ordering::SeqCst) >= 1);
    assert_eq!(asked.load(Ordering::SeqCst), 0, "the stranger was asked");
    let log = edge.log_text();
    assert!(
        log.contains("not configured"),
        "no log line about the refused redirect:\n{log}"
    );
}
