//! WHIP ingest end to end: headless Chromium publishes its fake camera with WHIP
//! (web/tests/whip.mjs, bearer token = publish key), another Chromium page plays the
//! stream over WHEP (video and audio), and the LL-HLS playlist gets segments that
//! ffprobe reads as the published H.264 and Opus (the manifests name `opus`); a wrong or missing key is refused without disturbing the publish;
//! a flood of bogus WHIP offers does not stop a live (RTMP) publish. Needs ffmpeg,
//! Chromium and `web/node_modules` (the browser test).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// A real WebRTC publish offer (sendonly H.264 video and Opus audio) from str0m.
fn offer() -> String {
    let mut rtc = str0m::RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(
        str0m::media::MediaKind::Video,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    api.add_media(
        str0m::media::MediaKind::Audio,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    let (offer, _pending) = api.apply().expect("offer");
    offer.to_sdp_string()
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// POSTs `body` as a WHIP offer with an optional bearer token; (status, Location,
/// body).
fn post(
    url: &str,
    key: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Option<String>, String) {
    let mut req = client()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    match req.send() {
        Ok(r) => {
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (status, location, r.text().unwrap_or_default())
        }
        Err(_) => (0, None, String::new()),
    }
}

/// The media sequence number after the last segment of `stream`'s media playlist.
fn next_msn(server: &Server, stream: &str) -> u64 {
    let (_, pl) = get_text(&server.url(&format!("/live/{stream}/src/index.m3u8")));
    let seq: u64 = pl
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    seq + pl.lines().filter(|l| l.starts_with("#EXTINF")).count() as u64
}

fn wait_for_log(server: &Server, needle: &str, limit: Duration) {
    let until = Instant::now() + limit;
    while !server.log_text().contains(needle) {
        assert!(
            Instant::now() < until,
            "the log never said {needle:?}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `stream` has listed `more` segments beyond what it had.
fn advances(server: &Server, stream: &str, more: u64, limit: Duration) {
    let from = next_msn(server, stream);
    let until = Instant::now() + limit;
    while next_msn(server, stream) < from + more {
        assert!(
            Instant::now() < until,
            "stream {stream} stopped advancing at {from}:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Starts the browser publisher: `node whip.mjs BASE STREAM KEY HOLD`.
fn browser_publish(
    server: &Server,
    web: &std::path::Path,
    stream: &str,
    key: &str,
    hold: u32,
) -> Child {
    Command::new("node")
        .arg(web.join("tests/whip.mjs"))
        .arg(server.url(""))
        .args([stream, key, &hold.to_string(), "40"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node")
}

/// Waits (bounded) for a node child and returns its parsed JSON line.
fn finish(mut child: Child, limit: Duration) -> (bool, serde_json::Value, String) {
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser script did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let seen = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (status.success(), seen, format!("{stdout}\n{stderr}"))
}

#[test]
fn a_browser_publishes_with_whip_and_it_plays_over_whep_and_ll_hls() {
    let _turn = browser_turn();
    let web = browser_ready();
    let server = Server::start("serve", &["--publish-key", "cam=s3cret"]);
    let publisher = browser_publish(&server, &web, "cam", "s3cret", 70);
    wait_for_log(&server, "publisher connected", Duration::from_secs(40));
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(30));

    // A missing or wrong key, and a second publish of a live name, are refused; the
    // publish goes on.
    let whip = server.url("/whip/cam");
    let sdp = "application/sdp";
    let (status, _, text) = post(&whip, None, sdp, offer().into_bytes());
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("Bearer"), "says how to send the key: {text}");
    let (status, _, text) = post(&whip, Some("wrong"), sdp, offer().into_bytes());
    assert_eq!(status, 403, "{text}");
    let (status, _, text) = post(&whip, Some("s3cret"), sdp, offer().into_bytes());
    assert_eq!(status, 409, "{text}");
    // A flood of bogus offers (garbage, wrong keys, the live name) meanwhile.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let whip = &whip;
                s.spawn(move || {
                    (0..10)
                        .map(|i| match i % 3 {
                            0 => post(whip, None, sdp, vec![b'v'; 3000]).0,
                            1 => post(whip, Some("guess"), sdp, offer().into_bytes()).0,
                            _ => post(whip, Some("s3cret"), sdp, offer().into_bytes()).0,
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(
        statuses.iter().all(|s| [400, 403, 409].contains(s)),
        "{statuses:?}"
    );
    advances(&server, "cam", 2, Duration::from_secs(30));

    // The multivariant playlist and the MPD name H.264 and Opus; ffprobe reads both
    // tracks of the LL-HLS stream.
    let (_, master) = get_text(&server.url("/live/cam/index.m3u8"));
    assert!(
        master.contains("avc1.") && master.contains(",opus\""),
        "{master}"
    );
    let (_, mpd) = get_text(&server.url("/live/cam/index.mpd"));
    assert!(mpd.contains("codecs=\"opus\""), "{mpd}");
    let codecs = probe_codecs(&server.url("/live/cam/index.m3u8"));
    assert!(codecs.iter().any(|c| c == "h264"), "{codecs:?}");
    assert!(codecs.iter().any(|c| c == "opus"), "{codecs:?}");
    let codecs = probe_codecs(&server.url("/live/cam/index.mpd"));
    assert!(
        codecs.iter().any(|c| c == "h264") && codecs.iter().any(|c| c == "opus"),
        "the DASH stream: {codecs:?}"
    );

    // Another page plays it over WHEP, video and (passed through) audio.
    let out = run(
        Command::new("node")
            .arg(web.join("tests/whep.mjs"))
            .arg(server.url("/?stream=cam&mode=whep"))
            .args(["45", "4", "audio"]),
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("whep: {stdout}");
    assert!(
        out.status.success(),
        "WHEP did not play the WHIP publish: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json line");
    // Chromium may scale its camera down while its bandwidth estimate ramps up.
    assert!(
        seen["width"].as_u64().unwrap_or(0) >= 160,
        "a picture plays: {seen}"
    );
    assert_eq!(seen["stuck_windows"], 0, "{seen}");

    // And hls.js plays the LL-HLS (H.264 + Opus in CMAF) in the player page.
    let out = run(
        Command::new("node")
            .arg(web.join("tests/play.mjs"))
            .arg(server.url("/?stream=cam"))
            .arg("45"),
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("hls.js: {stdout}");
    assert!(
        out.status.success(),
        "hls.js did not play the WHIP publish: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The publisher ends with DELETE; the server says so.
    let (ok, seen, out) = finish(publisher, Duration::from_secs(120));
    eprintln!("whip: {out}");
    assert!(
        ok,
        "the browser publish was disturbed: {out}\n{}",
        server.log_text()
    );
    assert_eq!(seen["codec"], "video/H264", "{seen}");
    assert_eq!(seen["deleted"], 200, "{seen}");
    wait_for_log(
        &server,
        "ended by the publisher (DELETE)",
        Duration::from_secs(10),
    );
    let log = server.log_text();
    assert!(log.contains("whip publish stopped"), "{log}");
    assert!(log.contains("audio: Opus passed through"), "{log}");
}

#[test]
fn hostile_whip_offers_do_not_stop_a_live_publish() {
    let server = Server::start(
        "origin",
        &[
            "--publish-key",
            "locked=s3cret",
            "--max-whip-sessions",
            "4",
            "--whip-idle-timeout",
            "3",
            "--max-whip-offer-bytes",
            "16384",
        ],
    );
    let _publisher = publish(&server.rtmp_url("cam"), 120, "320x240");
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    let sdp = "application/sdp";
    let whip = |s: &str| server.url(&format!("/whip/{s}"));

    // The publish-from-camera page is there (the browser test drives the same calls).
    let (status, page) = get_text(&server.url("/whip/"));
    assert_eq!(status, 200);
    assert!(
        page.contains("getUserMedia") && page.contains("'DELETE'"),
        "{page}"
    );

    // Each hostile request gets its own refusal.
    assert_eq!(post(&whip("x"), None, sdp, b"garbage".to_vec()).0, 400);
    assert_eq!(
        post(&whip("x"), None, "text/plain", offer().into_bytes()).0,
        415
    );
    let (status, ..) = post(&whip("x"), None, sdp, vec![b'v'; 4 * 1024 * 1024]);
    assert!(status == 413 || status == 0, "huge body: {status}");
    let (status, _, text) = post(
        &whip("x"),
        None,
        sdp,
        offer().replace("a=sendonly", "a=recvonly").into_bytes(),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("sendonly"), "says what to change: {text}");
    assert_eq!(post(&whip("cam"), None, sdp, offer().into_bytes()).0, 409);
    assert_eq!(
        post(&whip("locked"), None, sdp, offer().into_bytes()).0,
        401
    );
    assert_eq!(
        post(&whip("locked"), Some("no"), sdp, offer().into_bytes()).0,
        403
    );
    assert_eq!(
        post(&whip("bad%20name"), None, sdp, offer().into_bytes()).0,
        404
    );
    let c = client();
    let del = c
        .delete(server.url("/whip/cam/0123456789abcdef"))
        .send()
        .expect("delete");
    assert_eq!(del.status().as_u16(), 404);
    let patch = c
        .patch(server.url("/whip/cam/0123456789abcdef"))
        .body("a=candidate")
        .send()
        .expect("patch");
    assert_eq!(patch.status().as_u16(), 405);
    let pre = c
        .request(reqwest::Method::OPTIONS, whip("cam"))
        .header("origin", "http://elsewhere.example")
        .header("access-control-request-method", "POST")
        .send()
        .expect("options");
    assert_eq!(pre.status().as_u16(), 204);
    let allowed = pre
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(allowed.contains("authorization"), "{allowed}");

    // A flood: garbage, offers to the live name, and valid offers to new names that
    // never connect (past the session limit).
    let before = next_msn(&server, "cam");
    // Each answer with when its request was sent and when the answer came.
    let timed: Vec<(u16, Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let whip = &whip;
                s.spawn(move || {
                    (0..10)
                        .map(|i| {
                            let sent = Instant::now();
                            let status = match i % 3 {
                                0 => post(&whip("x"), None, sdp, vec![b'x'; 2000]).0,
                                1 => post(&whip("cam"), None, sdp, offer().into_bytes()).0,
                                _ => {
                                    let name = format!("f{t}x{i}");
                                    post(&whip(&name), None, sdp, offer().into_bytes()).0
                                }
                            };
                            (status, sent, Instant::now())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let results: Vec<u16> = timed.iter().map(|a| a.0).collect();
    let created = results.iter().filter(|s| **s == 201).count();
    eprintln!("flood: {created} answered, statuses {results:?}");
    // The limit: every flood session was made after the first one's request was sent,
    // and none can end (idle timeout, 3 s) before 3 s after that; so the sessions
    // answered until then were all alive at once, and at most 4 of them. (On a slow
    // machine the flood outlasts that and freed slots are given out again.)
    if let Some(first) = timed.iter().filter(|a| a.0 == 201).map(|a| a.1).min() {
        let early = timed
            .iter()
            .filter(|a| a.0 == 201 && a.2 < first + Duration::from_secs(3))
            .count();
        assert!(early <= 4, "the session limit holds: {results:?}");
    }
    assert!(
        results.iter().all(|s| [201, 400, 409, 503].contains(s)),
        "{results:?}"
    );
    // The RTMP publish kept packaging.
    let until = Instant::now() + Duration::from_secs(20);
    while next_msn(&server, "cam") < before + 2 {
        assert!(Instant::now() < until, "the live publish stopped advancing");
        std::thread::sleep(Duration::from_millis(250));
    }
    // The flood's sessions never connected: they end after the idle timeout and the
    // slots come back.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, location, _) = post(&whip("later"), None, sdp, offer().into_bytes());
        if status == 201 {
            assert!(location.is_some_and(|l| l.starts_with("/whip/later/")));
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < until, "slots never came back");
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_for_log(&server, "idle: no video", Duration::from_secs(1));
}

#[test]
fn whip_publishes_ask_on_publish_and_tell_on_unpublish() {
    use crate::hooks::{Answer as Hook, Receiver};
    let hook = Receiver::start(|e| {
        if e["stream"].as_str().unwrap_or("").starts_with("deny") {
            Hook::Refuse
        } else {
            Hook::Allow
        }
    });
    let server = Server::start(
        "origin",
        &[
            "--publish-key",
            "cam=k1",
            "--hook-on-publish",
            &hook.url,
            "--hook-on-unpublish",
            &hook.url,
        ],
    );
    let sdp = "application/sdp";
    // Refused by the hook: 403, and the stream does not exist.
    let (status, _, text) = post(&server.url("/whip/deny1"), None, sdp, offer().into_bytes());
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("on_publish"), "names the hook: {text}");
    hook.wait_event("on_publish", "deny1", Duration::from_secs(5));
    assert_eq!(get(&server.url("/live/deny1/index.m3u8")).0, 404);
    // A wrong key never reaches the hook.
    assert_eq!(
        post(
            &server.url("/whip/cam"),
            Some("no"),
            sdp,
            offer().into_bytes()
        )
        .0,
        403
    );
    // Allowed: the SRS-shaped body says whip and carries the key as SRS sends it.
    let (status, location, text) = post(
        &server.url("/whip/cam"),
        Some("k1"),
        sdp,
        offer().into_bytes(),
    );
    assert_eq!(status, 201, "{text}");
    let e = hook.wait_event("on_publish", "cam", Duration::from_secs(5));
    assert_eq!(e["protocol"], "whip", "{e}");
    assert_eq!(e["param"], "?key=k1", "{e}");
    assert_eq!(e["tcUrl"], format!("http://{}/whip", server.addr()), "{e}");
    assert!(hook
        .events()
        .iter()
        .all(|e| !(e["stream"] == "cam" && e["param"] == "?key=no")));
    // DELETE ends it (before it ever connected): on_unpublish follows.
    let location = location.expect("location");
    let del = client()
        .delete(server.url(&location))
        .send()
        .expect("delete");
    assert_eq!(del.status().as_u16(), 200);
    hook.wait_event("on_unpublish", "cam", Duration::from_secs(10));
    wait_for_log(
        &server,
        "ended by the publisher (DELETE)",
        Duration::from_secs(5),
    );
}
