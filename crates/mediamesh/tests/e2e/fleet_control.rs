//! Operator changes across a fleet (issue 15, item 3): with a real `redis-server` as
//! the registry, P2P turned off on one origin makes the trackers of the other nodes
//! (another `serve`'s and a standalone `mediamesh tracker`) refuse the stream's
//! swarms; a publish key added on origin A opens (and once revoked locks) the stream on
//! origin B; a kick on A ends B's publish; a drain mark set on one router holds on
//! another.

use std::time::{Duration, Instant};

use crate::common::redis::Redis;
use crate::common::*;

const TOKEN: &str = "e2e-fleet-admin-token-0123456789";

fn call(method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let mut req = client
        .request(method.parse().expect("method"), url)
        .header("authorization", format!("Bearer {TOKEN}"));
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

fn metric(url: &str, name: &str) -> f64 {
    get_text(url)
        .1
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn p2p_off_refusals(metrics_url: &str) -> bool {
    get_text(metrics_url)
        .1
        .lines()
        .any(|l| l.starts_with("mediamesh_tracker_rejected_total") && l.contains("p2p_off"))
}

#[test]
fn p2p_off_on_one_origin_makes_every_tracker_of_the_fleet_refuse_the_swarm() {
    let redis = Redis::start();
    let reg = redis.url();
    let serve = |extra: &[&str]| {
        let mut args = vec!["--demo", "--registry", &reg, "--admin-token", TOKEN];
        args.extend_from_slice(extra);
        Server::start("serve", &args)
    };
    let (a, b) = (serve(&[]), serve(&[]));
    let tracker = Server::start_role("tracker", &["--registry", &reg]);
    for s in [&a, &b] {
        wait_for_200(&s.url("/live/demo/index.m3u8"), Duration::from_secs(30));
    }
    let disabled = |url: &str| metric(url, "mediamesh_tracker_disabled_swarms");
    assert_eq!(disabled(&b.url("/metrics")), 0.0);
    // Off on A: B's tracker and the standalone tracker refuse the demo's swarms.
    let (s, v) = call(
        "PUT",
        &a.url("/api/v1/streams/demo/p2p"),
        Some(r#"{"enabled":false}"#),
    );
    assert_eq!((s, &v["p2p"]), (200, &serde_json::json!(false)), "{v}");
    wait_until(
        "B's tracker refusing the swarm",
        Duration::from_secs(20),
        || disabled(&b.url("/metrics")) >= 1.0,
    );
    wait_until(
        "the standalone tracker refusing the swarm",
        Duration::from_secs(20),
        || disabled(&tracker.url("/metrics")) >= 1.0,
    );
    let (s, v) = call("GET", &b.url("/api/v1/streams/demo/p2p"), None);
    assert_eq!((s, &v["p2p"]), (200, &serde_json::json!(false)), "{v}");
    // Real announces are refused: peers of B, and peers sent to the standalone tracker.
    let v = crate::peer::run_peers_to(&b, "b-peers.json", &["--count", "2", "--duration", "8"]);
    assert_eq!(v["total"]["p2p_bytes"], 0, "{v}");
    assert!(p2p_off_refusals(&b.url("/metrics")), "B's tracker refused");
    let ws = format!("ws://127.0.0.1:{}/tracker", tracker.http);
    let v = crate::peer::run_peers_to(
        &b,
        "t-peers.json",
        &["--count", "2", "--duration", "8", "--tracker", &ws],
    );
    assert_eq!(v["total"]["p2p_bytes"], 0, "{v}");
    assert!(
        p2p_off_refusals(&tracker.url("/metrics")),
        "the standalone tracker refused"
    );
    // On again from B: A's tracker accepts again.
    let (s, _) = call(
        "PUT",
        &b.url("/api/v1/streams/demo/p2p"),
        Some(r#"{"enabled":true}"#),
    );
    assert_eq!(s, 200);
    wait_until(
        "A's tracker accepting again",
        Duration::from_secs(20),
        || disabled(&a.url("/metrics")) == 0.0,
    );
}

#[test]
fn keys_and_kicks_made_on_one_origin_hold_on_another() {
    require("ffmpeg");
    let redis = Redis::start();
    let reg = redis.url();
    let origin = || Server::start("origin", &["--registry", &reg, "--admin-token", TOKEN]);
    let (a, b) = (origin(), origin());
    let (s, v) = call(
        "POST",
        &a.url("/api/v1/publish-keys"),
        Some(r#"{"stream":"cam"}"#),
    );
    assert_eq!(s, 201, "{v}");
    let key = v["key"].as_str().expect("key").to_string();
    let id = v["id"].as_str().expect("id").to_string();
    wait_until("B knowing A's key", Duration::from_secs(20), || {
        call("GET", &b.url("/api/v1/publish-keys"), None)
            .1
            .to_string()
            .contains(&id)
    });
    // The stream has a key now: B refuses a publish without it, takes one with it.
    let mut none = publish(&b.rtmp_url("cam"), 5, "320x180");
    assert_eq!(none.wait_exit(Duration::from_secs(20)), Some(false));
    let mut keyed = publish(&format!("{}?key={key}", b.rtmp_url("cam")), 120, "320x180");
    wait_for_200(&b.url("/live/cam/index.m3u8"), Duration::from_secs(30));
    // A learns from the directory that B holds it.
    wait_for_200(&a.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    // Recording switched on A: B, where the stream is published, records it; switched
    // off on A: B's recording finishes.
    let (s, v) = call("POST", &a.url("/api/v1/streams/cam/recording"), None);
    assert_eq!(s, 202, "{v}");
    wait_until("B recording cam", Duration::from_secs(30), || {
        call("GET", &b.url("/api/v1/streams/cam/recording"), None).1["recording"].is_string()
    });
    let (s, v) = call("DELETE", &a.url("/api/v1/streams/cam/recording"), None);
    assert_eq!(s, 200, "{v}");
    wait_until("B stopping its recording", Duration::from_secs(30), || {
        let v = call("GET", &b.url("/api/v1/streams/cam/recording"), None).1;
        v["record"] == false && v["recording"].is_null()
    });
    // Revoked and kicked on A: B's publisher is kicked, the key no longer works on B.
    let (s, v) = call(
        "DELETE",
        &a.url(&format!("/api/v1/publish-keys/cam/{id}")),
        None,
    );
    assert_eq!((s, v["revoked"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = call("POST", &a.url("/api/v1/streams/cam/kick"), None);
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["fleet"], true, "{v}");
    assert!(
        keyed.wait_exit(Duration::from_secs(20)).is_some(),
        "B kicked the publisher"
    );
    assert!(b
        .log_text()
        .contains("fleet: publisher kicked (asked on another node)"));
    let mut again = publish(&format!("{}?key={key}", b.rtmp_url("cam")), 5, "320x180");
    assert_eq!(
        again.wait_exit(Duration::from_secs(20)),
        Some(false),
        "a key revoked on A must be refused on B"
    );
    let (_, v) = call("GET", &b.url("/api/v1/publish-keys"), None);
    assert!(!v.to_string().contains(&id), "{v}");
    assert!(!b.log_text().contains(&key) && !a.log_text().contains(&key));
}

#[test]
fn a_drain_set_on_one_router_holds_on_another() {
    let redis = Redis::start();
    let reg = redis.url();
    let router = || {
        let r = Server::start_role(
            "router",
            &[
                "--registry",
                &reg,
                "--admin",
                "127.0.0.1:0",
                "--admin-token",
                TOKEN,
            ],
        );
        let port = admin_port(&r);
        (r, format!("http://127.0.0.1:{port}"))
    };
    let ((_r1, admin1), (_r2, admin2)) = (router(), router());
    let path = "/api/v1/edges/edge-10.0.0.9-8081/drain";
    let (s, v) = call(
        "PUT",
        &format!("{admin1}{path}"),
        Some(r#"{"draining":true}"#),
    );
    assert_eq!((s, &v["draining"]), (200, &serde_json::json!(true)), "{v}");
    wait_until(
        "router 2 draining the edge",
        Duration::from_secs(20),
        || call("GET", &format!("{admin2}{path}"), None).1["draining"] == true,
    );
    let (s, _) = call(
        "PUT",
        &format!("{admin2}{path}"),
        Some(r#"{"draining":false}"#),
    );
    assert_eq!(s, 200);
    wait_until(
        "router 1 undraining the edge",
        Duration::from_secs(20),
        || call("GET", &format!("{admin1}{path}"), None).1["draining"] == false,
    );
}

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

/// One Redis command over RESP (bounded); the raw answer.
fn redis_cmd(port: u16, args: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("redis");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

/// What other processes wrote to Redis is network input: records too large, with bad
/// ids or thousands of viewer lines, and control entries with bad names are dropped
/// or cut, and the origin keeps serving.
#[test]
fn hostile_registry_and_control_data_is_bounded() {
    let redis = Redis::start();
    let reg = redis.url();
    let big = format!(
        r#"{{"id":"edge-big","kind":"edge","public_url":"http://x:1","region":"eu","pad":"{}"}}"#,
        "x".repeat(600 * 1024)
    );
    let many: Vec<String> = (0..5000)
        .map(|i| format!(r#"{{"stream":"s{i}","sessions":{}}}"#, u64::MAX))
        .collect();
    let many = format!(
        r#"{{"id":"edge-many","kind":"edge","public_url":"http://y:1","region":"eu","viewers":[{}],"swarms":[{{"info_hash":"nothex","peers":5}}]}}"#,
        many.join(",")
    );
    let bad_id = r#"{"id":"edge bad\u0000","kind":"edge","public_url":"http://z:1","region":"eu"}"#;
    for (id, rec) in [
        ("edge-big", big.as_str()),
        ("edge-many", &many),
        ("edge-bad", bad_id),
    ] {
        assert!(redis_cmd(
            redis.port,
            &["SET", &format!("mediamesh:node:{id}"), rec, "PX", "600000"]
        )
        .starts_with('+'));
        redis_cmd(redis.port, &["SADD", "mediamesh:nodes", id]);
    }
    redis_cmd(
        redis.port,
        &["SADD", "mediamesh:control:p2p_off", "../etc", "ok-name"],
    );
    redis_cmd(
        redis.port,
        &[
            "HSET",
            "mediamesh:control:keys",
            "cam/zz",
            "{",
            "nofield",
            "x",
        ],
    );
    let origin = Server::start("origin", &["--registry", &reg, "--admin-token", TOKEN]);
    let fleet = |origin: &Server| call("GET", &origin.url("/api/v1/console/fleet"), None).1;
    wait_until(
        "the origin reading the registry",
        Duration::from_secs(20),
        || {
            fleet(&origin)["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["id"] == "edge-many"))
        },
    );
    let v = fleet(&origin);
    let ids: Vec<&str> = v["nodes"]
        .as_array()
        .map(|n| n.iter().filter_map(|n| n["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        !ids.contains(&"edge-big") && !ids.contains(&"edge-bad"),
        "{ids:?}"
    );
    let many = v["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == "edge-many"))
        .cloned()
        .unwrap_or_default();
    // 1,000 lines at most, each clamped to 10^8 sessions.
    assert_eq!(many["viewers"], 1_000u64 * 100_000_000, "{many}");
    assert_eq!(many["p2p_peers"], 0, "{many}");
    wait_until(
        "bad control entries counted",
        Duration::from_secs(20),
        || {
            metric(
                &origin.url("/metrics"),
                "mediamesh_fleet_control_invalid_total",
            ) >= 3.0
        },
    );
    let (s, v) = call("GET", &origin.url("/api/v1/streams/ok-name/p2p"), None);
    assert_eq!((s, &v["p2p"]), (200, &serde_json::json!(false)), "{v}");
    assert_eq!(get(&origin.url("/healthz")).0, 200);
}
