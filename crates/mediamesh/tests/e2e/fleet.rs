//! Fleet scenarios with real processes on loopback: a real `redis-server`, one origin
//! fed by ffmpeg, three edges in two regions and a router, all `mediamesh` binaries.
//! Viewers in region `eu` connect from 127.0.0.1 and viewers in `us` from 127.0.0.2
//! (the router's `--region-map`). Needs redis-server and ffmpeg (`bash .ci/run`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::common::redis::Redis;
use crate::common::*;

/// A viewer's HTTP client from `local` (its address picks its region), not following
/// redirects.
fn viewer(local: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(local.parse::<IpAddr>().expect("ip"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// (status, Location) of a request to the router.
fn route(c: &reqwest::blocking::Client, url: &str) -> (u16, Option<String>) {
    match c.get(url).send() {
        Ok(r) => (
            r.status().as_u16(),
            r.headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ),
        Err(_) => (0, None),
    }
}

fn nodes(router: &Server) -> serde_json::Value {
    let (s, body) = get_text(&router.url("/api/v1/nodes"));
    assert_eq!(s, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

/// Polls the router's view until `pred` holds (bounded).
fn wait_nodes(
    router: &Server,
    what: &str,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) {
    let until = Instant::now() + limit;
    loop {
        let n = nodes(router);
        if pred(&n) {
            return;
        }
        assert!(Instant::now() < until, "router never saw {what}: {n}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn base_of(location: &str) -> String {
    let rest = location.split_once("://").map_or(location, |x| x.1);
    let auth = rest.split('/').next().unwrap_or("");
    format!("http://{auth}")
}

fn steering(router: &Server, server_uri: &str, pathway: &str) -> serde_json::Value {
    let url = router.url(&format!(
        "{server_uri}&_HLS_pathway={pathway}&_HLS_throughput=50000000"
    ));
    let (s, body) = get_text(&url);
    assert_eq!(s, 200, "{body}");
    serde_json::from_str(&body).expect("steering json")
}

#[test]
fn router_sends_viewers_to_their_region_reroutes_around_dead_edges_and_survives_redis() {
    let redis = Redis::start();
    let reg = redis.url();
    let origin = Server::start("origin", &["--registry", &reg, "--region", "eu"]);
    let _publisher = publish(&origin.rtmp_url("cam"), 150, "320x180");
    let origin_url = origin.url("");
    let edge_args = |region: &'static str| -> Vec<String> {
        vec![
            "--origin".into(),
            origin_url.clone(),
            "--registry".into(),
            reg.clone(),
            "--region".into(),
            region.into(),
        ]
    };
    let mut edges: Vec<Option<Server>> = ["eu", "eu", "us"]
        .iter()
        .map(|r| {
            let a = edge_args(r);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            Some(Server::start_edge(&a))
        })
        .collect();
    let router = Server::start_role(
        "router",
        &[
            "--registry",
            &reg,
            "--region-map",
            "127.0.0.1/32=eu",
            "--region-map",
            "127.0.0.2/32=us",
            "--steering-ttl",
            "1",
        ],
    );
    let base = |i: usize| edges[i].as_ref().map(|e| e.url("")).unwrap_or_default();
    let eu: HashSet<String> = [base(0), base(1)].into();
    let us = base(2);

    wait_for_200(&origin.url("/live/cam/index.m3u8"), Duration::from_secs(30));
    wait_nodes(
        &router,
        "3 edges and the origin holding cam",
        Duration::from_secs(20),
        |n| {
            let list = n["nodes"].as_array().cloned().unwrap_or_default();
            list.iter().filter(|x| x["kind"] == "edge").count() == 3
                && list.iter().any(|x| {
                    x["kind"] == "origin"
                        && x["streams"]
                            .as_array()
                            .is_some_and(|s| s.contains(&"cam".into()))
                })
        },
    );

    // Redirects by region.
    let eu_viewer = viewer("127.0.0.1");
    let us_viewer = viewer("127.0.0.2");
    let media = router.url("/live/cam/src/index.m3u8");
    let (s, loc) = route(&eu_viewer, &media);
    assert_eq!(s, 302);
    let first = base_of(&loc.clone().expect("location"));
    assert!(
        eu.contains(&first),
        "eu viewer sent to {first}, eu edges {eu:?}"
    );
    let (s, body) = get_text(&loc.expect("location"));
    assert_eq!(s, 200);
    assert!(body.starts_with("#EXTM3U"));
    let (s, loc) = route(&us_viewer, &media);
    assert_eq!(s, 302);
    assert_eq!(
        base_of(&loc.expect("location")),
        us,
        "us viewer goes to the us edge"
    );
    // The same stream stays on the same edge (consistent hashing).
    for _ in 0..5 {
        assert_eq!(base_of(&route(&eu_viewer, &media).1.expect("loc")), first);
    }

    // Content Steering on the multivariant playlist.
    let r = eu_viewer
        .get(router.url("/live/cam/index.m3u8"))
        .send()
        .expect("playlist");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().expect("text");
    let mv = media::hls::MultivariantPlaylist::parse(&text).expect("multivariant parses");
    let cs = mv.content_steering.clone().expect("EXT-X-CONTENT-STEERING");
    let pathways: HashSet<String> = mv
        .variants
        .iter()
        .filter_map(|v| v.pathway_id.clone())
        .collect();
    assert_eq!(pathways.len(), 3, "{text}");
    let current = cs.pathway_id.clone().expect("PATHWAY-ID");
    let current_variant = mv
        .variants
        .iter()
        .find(|v| v.pathway_id.as_deref() == Some(current.as_str()))
        .expect("variant on the first pathway");
    assert_eq!(
        base_of(&current_variant.uri),
        first,
        "first pathway is the redirect target"
    );
    let m = steering(&router, &cs.server_uri, &current);
    assert_eq!(m["VERSION"], 1);
    assert_eq!(m["PATHWAY-PRIORITY"][0], current.as_str());
    assert_eq!(m["PATHWAY-PRIORITY"].as_array().map(Vec::len), Some(3));
    assert!(m["RELOAD-URI"]
        .as_str()
        .is_some_and(|u| u.starts_with("/steering/hls?")));
    // DASH gets the same treatment.
    let (s, mpd) = get_text(&router.url("/live/cam/index.mpd"));
    assert_eq!(s, 200);
    assert!(
        mpd.contains("<ContentSteering defaultServiceLocation="),
        "{mpd}"
    );
    assert_eq!(mpd.matches("<BaseURL serviceLocation=").count(), 3);

    // Kill the eu viewer's edge: new requests go elsewhere.
    let dead = (0..2).find(|i| base(*i) == first).expect("dead edge index");
    let other_eu = base(1 - dead);
    let killed_at = Instant::now();
    if let Some(e) = edges[dead].take() {
        e.kill();
    }
    let rerouted = loop {
        let (s, loc) = route(&eu_viewer, &media);
        if s == 302 && loc.as_deref().map(base_of).is_some_and(|b| b != first) {
            break base_of(&loc.expect("loc"));
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "router kept sending viewers to the dead edge"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let reroute_s = killed_at.elapsed().as_secs_f64();
    eprintln!("FLEET re-route after an edge died: {reroute_s:.2} s (to {rerouted})");
    assert_eq!(rerouted, other_eu, "the viewer stays in its region");
    let m = steering(&router, &cs.server_uri, &current);
    let prio: Vec<String> = m["PATHWAY-PRIORITY"]
        .as_array()
        .expect("priority")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert!(
        !prio.contains(&current),
        "dead pathway still steered to: {prio:?}"
    );
    assert_eq!(prio.len(), 2);

    // Redis goes away for 20 s: every viewer request still works.
    let redis_port = redis.port;
    drop(redis);
    let down_at = Instant::now();
    let mut asked = 0;
    let mut failed = Vec::new();
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut saw_down = false;
    while down_at.elapsed() < Duration::from_secs(20) {
        for c in [&eu_viewer, &us_viewer] {
            asked += 1;
            let (s, loc) = route(c, &media);
            let ok = s == 302
                && loc.as_ref().is_some_and(|l| {
                    plain
                        .get(l)
                        .send()
                        .is_ok_and(|r| r.status().as_u16() == 200)
                });
            if !ok {
                failed.push((down_at.elapsed().as_secs_f64(), s, loc));
            }
        }
        if nodes(&router)["registry_up"] == false {
            saw_down = true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "FLEET redis down 20 s: {asked} viewer requests, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "viewer requests failed while Redis was down: {failed:?}"
    );
    assert!(saw_down, "the router never noticed Redis was down");

    // Redis returns empty: every live node registers again.
    let redis = Redis::start_on(redis_port);
    let back_at = Instant::now();
    wait_nodes(
        &router,
        "the nodes registered again",
        Duration::from_secs(20),
        |n| {
            let list = n["nodes"].as_array().cloned().unwrap_or_default();
            n["registry_up"] == true
                && list.iter().filter(|x| x["kind"] == "edge").count() == 2
                && list.iter().any(|x| x["kind"] == "origin")
        },
    );
    eprintln!(
        "FLEET nodes re-registered {:.2} s after Redis returned",
        back_at.elapsed().as_secs_f64()
    );
    let (s, loc) = route(&eu_viewer, &media);
    assert_eq!(s, 302);
    assert_eq!(loc.map(|l| base_of(&l)), Some(other_eu));
    drop(redis);
}
