//! End to end for the edge's access log (`--access-log`): no line is lost under
//! concurrent load and every line parses, a full disk does not stop serving (the
//! write-error counter rises instead), rotation by rename and by SIGHUP, and `serve`
//! writes one too. The real `mediamesh` binary, stopped with SIGTERM as a service
//! manager stops it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::test_origin::TestOrigin;
use crate::common::*;

/// A value the edge's `/metrics` page shows (0 when absent).
fn metric(server: &Server, name: &str) -> f64 {
    get_text(&server.url("/metrics"))
        .1
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < until,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(server: &Server, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &server.proc.pid().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} failed");
}

/// SIGTERM, then the exit (bounded): a clean stop flushes the log.
fn stop(mut server: Server) -> Server {
    signal(&server, "-TERM");
    let exited = server.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(
        exited,
        Some(true),
        "mediamesh did not exit cleanly on SIGTERM:\n{}",
        server.log_text()
    );
    server
}

/// Every line of the file, parsed; a line that is not one JSON object fails the test.
fn lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"))
        })
        .collect()
}

#[test]
fn no_line_is_lost_under_concurrent_load() {
    const CLIENTS: usize = 16;
    const REQUESTS: usize = 250;
    // Quotes, a backslash and a tab: still one line, and the value comes back whole.
    const UA: &str = "load \"test\" \\ \tclient/1.0";
    let origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let edge = Server::start_edge(&[
        "--origin",
        &origin.url(),
        "--access-log",
        path.to_str().expect("utf-8 path"),
    ]);
    let base = edge.url("");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let base = base.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .user_agent(UA)
                    .build()
                    .expect("client");
                // Five objects per client: the first request of each is a miss (a
                // streamed answer), the rest are hits (answers from memory).
                (0..REQUESTS)
                    .map(|r| {
                        let url = format!("{base}/obj/c{c}-{}.m4s?size=4096&delay_ms=0", r % 5);
                        match client.get(&url).send() {
                            Ok(res) => {
                                let status = res.status().as_u16();
                                let len = res.bytes().map(|b| b.len()).unwrap_or(0);
                                (status, len)
                            }
                            Err(_) => (0, 0),
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for c in clients {
        for (status, len) in c.join().expect("client thread") {
            assert_eq!((status, len), (200, 4096));
        }
    }
    let want = (CLIENTS * REQUESTS) as f64;
    wait_until(
        "the writer took every line",
        Duration::from_secs(20),
        || metric(&edge, "mediamesh_edge_access_log_lines_total") >= want,
    );
    assert_eq!(
        metric(&edge, "mediamesh_edge_access_log_dropped_total"),
        0.0
    );
    assert_eq!(
        metric(&edge, "mediamesh_edge_access_log_write_errors_total"),
        0.0
    );
    let _edge = stop(edge);

    let all = lines(&path);
    let ours: Vec<_> = all
        .iter()
        .filter(|v| v["path"].as_str().is_some_and(|p| p.starts_with("/obj/c")))
        .collect();
    assert_eq!(ours.len(), CLIENTS * REQUESTS, "one line per request");
    let mut per_cache: BTreeMap<String, usize> = BTreeMap::new();
    for v in &ours {
        assert_eq!(v["status"], 200, "{v}");
        assert_eq!(v["bytes"], 4096, "{v}");
        assert_eq!(v["method"], "GET", "{v}");
        assert_eq!(v["client"], "127.0.0.1", "{v}");
        assert_eq!(v["ua"], UA, "{v}");
        assert!(
            v["ms"].as_f64().is_some() && v["ts"].as_str().is_some(),
            "{v}"
        );
        *per_cache
            .entry(v["cache"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    // Both ways an answer leaves (streamed on a miss, whole on a hit) were logged.
    assert!(
        per_cache.get("HIT").copied().unwrap_or(0) >= CLIENTS * (REQUESTS - 5),
        "{per_cache:?}"
    );
    assert!(
        per_cache.get("MISS").copied().unwrap_or(0) >= 1,
        "{per_cache:?}"
    );
    // Each request once: no line written twice.
    let mut per_path: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &ours {
        *per_path
            .entry(v["path"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    assert_eq!(per_path.len(), CLIENTS * 5);
    assert!(
        per_path.values().all(|n| *n == REQUESTS / 5),
        "{per_path:?}"
    );
}

#[test]
fn a_full_disk_does_not_stop_serving() {
    let full = Path::new("/dev/full");
    assert!(full.exists(), "/dev/full is missing (every Linux has it)");
    let origin = TestOrigin::start();
    // /dev/full answers every write with ENOSPC, as a full disk does.
    let edge = Server::start_edge(&["--origin", &origin.url(), "--access-log", "/dev/full"]);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let fetch = |i: usize| {
        let url = edge.url(&format!("/obj/f{}.m4s?size=1024&delay_ms=0", i % 10));
        client
            .get(url)
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    for i in 0..300 {
        assert_eq!(fetch(i), 200, "request {i}");
    }
    wait_until("a write error was counted", Duration::from_secs(15), || {
        metric(&edge, "mediamesh_edge_access_log_write_errors_total") > 0.0
    });
    let before = metric(&edge, "mediamesh_edge_access_log_write_errors_total");
    // Still serving, and still counting: enough lines to overflow the writer's buffer.
    for i in 0..3000 {
        assert_eq!(fetch(i), 200, "request {i} after the disk filled");
    }
    wait_until("more write errors", Duration::from_secs(15), || {
        metric(&edge, "mediamesh_edge_access_log_write_errors_total") > before
    });
    assert!(metric(&edge, "mediamesh_edge_access_log_dropped_total") > 0.0);
    assert_eq!(get(&edge.url("/healthz")).0, 200);
    // A stop with an unwritable log still ends promptly.
    let _edge = stop(edge);
}

#[test]
fn rotation_by_rename_and_by_sighup() {
    let origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let edge = Server::start_edge(&[
        "--origin",
        &origin.url(),
        "--access-log",
        path.to_str().expect("utf-8 path"),
    ]);
    let hit = |name: &str| {
        let (s, _) = get(&edge.url(&format!("/obj/{name}.m4s?size=100&delay_ms=0")));
        assert_eq!(s, 200);
    };
    let has = |p: &Path, name: &str| {
        let want = format!("/obj/{name}.m4s");
        lines(p).iter().any(|v| v["path"] == want.as_str())
    };
    hit("before");
    wait_until("the first line is on disk", Duration::from_secs(10), || {
        has(&path, "before")
    });
    // logrotate without copytruncate: rename, then the edge notices within a second.
    std::fs::rename(&path, &rotated).expect("rename");
    wait_until("the edge reopened the log", Duration::from_secs(10), || {
        metric(&edge, "mediamesh_edge_access_log_reopens_total") >= 1.0
    });
    hit("after-rename");
    wait_until("a line in the new file", Duration::from_secs(10), || {
        has(&path, "after-rename")
    });
    assert!(!has(&rotated, "after-rename"));
    // logrotate's postrotate: kill -HUP.
    std::fs::rename(&path, dir.path().join("access.log.2")).expect("rename");
    signal(&edge, "-HUP");
    hit("after-hup");
    wait_until("a line after SIGHUP", Duration::from_secs(10), || {
        has(&path, "after-hup")
    });
    assert!(metric(&edge, "mediamesh_edge_access_log_reopens_total") >= 2.0);
    let edge = stop(edge);
    // The process log (RUST_LOG=info) no longer carries a line per request.
    let log = edge.log_text();
    assert!(log.contains("SIGHUP"), "{log}");
    assert!(
        !log.contains("path=/obj/before.m4s"),
        "with --access-log, requests are not also tracing events:\n{log}"
    );
}

#[test]
fn serve_writes_the_access_log_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("serve-access.log");
    let server = Server::start("serve", &["--access-log", path.to_str().expect("utf-8")]);
    let (s, _) = get(&server.url("/api/v1/streams"));
    assert_eq!(s, 200);
    let _server = stop(server);
    let all = lines(&path);
    assert!(
        all.iter()
            .any(|v| v["path"] == "/api/v1/streams" && v["status"] == 200),
        "{all:?}"
    );
}

/// Hits answered on the quick path (`edge::quick`) are logged as the request path
/// logs them: two edges in front of one origin, one with `--no-quick-hits`, the same
/// plain GETs to both; their access-log lines for the hits are the same but for the
/// time fields (`ts`, `ms`), and the quick edge answered them itself.
#[test]
fn quick_hits_are_logged_as_the_request_path_logs_them() {
    const HITS: usize = 40;
    let origin = TestOrigin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |name: &str, more: &[&str]| {
        let path = dir.path().join(name);
        let mut args = vec![
            "--origin".to_string(),
            origin.url(),
            "--access-log".to_string(),
            path.to_str().expect("utf-8 path").to_string(),
        ];
        args.extend(more.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        (Server::start_edge(&args), path)
    };
    let (quick, quick_log) = start("quick.log", &[]);
    let (whole, whole_log) = start("whole.log", &["--no-quick-hits"]);
    for edge in [&quick, &whole] {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent("quick \"log\" test")
            .build()
            .expect("client");
        for i in 0..=HITS {
            let res = client
                .get(edge.url("/obj/logged.m4s"))
                .header("referer", "https://player.test/page")
                .send()
                .expect("answer");
            assert_eq!(res.status().as_u16(), 200, "request {i}");
            assert_eq!(res.bytes().map(|b| b.len()).unwrap_or(0), 2 << 20);
        }
    }
    assert!(
        metric(&quick, "mediamesh_edge_quick_answers_total") >= HITS as f64,
        "the hits were not quick"
    );
    assert_eq!(metric(&whole, "mediamesh_edge_quick_answers_total"), 0.0);
    let (_quick, _whole) = (stop(quick), stop(whole));
    let hits = |path: &Path| -> Vec<serde_json::Value> {
        lines(path)
            .into_iter()
            .filter(|l| l["cache"] == "HIT")
            .map(|mut l| {
                let o = l.as_object_mut().expect("an object");
                assert!(o.remove("ts").is_some() && o.remove("ms").is_some());
                l
            })
            .collect()
    };
    let (q, w) = (hits(&quick_log), hits(&whole_log));
    assert_eq!(q.len(), HITS, "{q:?}");
    assert_eq!(q, w);
    assert_eq!(q[0]["ua"], "quick \"log\" test");
    assert_eq!(q[0]["referer"], "https://player.test/page");
    assert_eq!(q[0]["bytes"], 2 << 20);
}
