//! End to end: webhooks. A small HTTP receiver in the test (std threads on
//! 127.0.0.1:0) plays the backend; ffmpeg publishes over RTMP and SRT to a real
//! `mediamesh origin`. The exact JSON of on_publish/on_unpublish, a refusing hook that
//! stops that RTMP and that SRT publish and not the others, a hanging hook that delays
//! only its own publish (RTMP or SRT), hostile answers (garbage, huge, redirects, a dead port) that
//! neither crash nor hang anything, and the log line and metric of a hook that is down.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::srt::{publish_srt, srt_url};

/// How the receiver answers one event.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    /// 200 `{"code":0}`.
    Allow,
    /// 200 `{"code":403}` (SRS's refusal).
    Refuse,
    /// Nothing until the test releases it (then 200 `0`).
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with 8 MiB of `0`s.
    Huge,
    /// 302 to a URL that would allow.
    Redirect,
}

/// The backend: records every event body, answers as `decide` says.
pub(crate) struct Receiver {
    pub(crate) url: String,
    events: Arc<Mutex<Vec<Value>>>,
    release: Arc<AtomicBool>,
    /// Hung requests still waiting for the release.
    hanging: Arc<Mutex<usize>>,
}

impl Receiver {
    pub(crate) fn start(decide: fn(&Value) -> Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let url = format!(
            "http://{}/api/v1/hooks",
            listener.local_addr().expect("receiver address")
        );
        let events = Arc::new(Mutex::new(Vec::new()));
        let release = Arc::new(AtomicBool::new(false));
        let hanging = Arc::new(Mutex::new(0));
        let (ev, rel, hang) = (events.clone(), release.clone(), hanging.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (ev, rel, hang) = (ev.clone(), rel.clone(), hang.clone());
                std::thread::spawn(move || serve_one(conn, decide, &ev, &rel, &hang));
            }
        });
        Receiver {
            url,
            events,
            release,
            hanging,
        }
    }

    pub(crate) fn events(&self) -> Vec<Value> {
        self.events.lock().expect("events").clone()
    }

    /// Waits (bounded) for an event of `action` for `stream`.
    pub(crate) fn wait_event(&self, action: &str, stream: &str, limit: Duration) -> Value {
        let until = Instant::now() + limit;
        loop {
            if let Some(e) = self
                .events()
                .into_iter()
                .find(|e| e["action"] == action && e["stream"] == stream)
            {
                return e;
            }
            assert!(
                Instant::now() < until,
                "no {action} for {stream}; got {:?}",
                self.events()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn hanging(&self) -> usize {
        *self.hanging.lock().expect("hanging")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.release.store(true, Ordering::SeqCst);
    }
}

fn serve_one(
    mut conn: TcpStream,
    decide: fn(&Value) -> Answer,
    events: &Mutex<Vec<Value>>,
    release: &AtomicBool,
    hanging: &Mutex<usize>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body: Value = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
    assert!(
        head.contains("content-type: application/json"),
        "hook without a JSON content type: {head}"
    );
    events.lock().expect("events").push(body.clone());
    let reply = |conn: &mut TcpStream, status: &str, extra: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
    };
    match decide(&body) {
        Answer::Allow => reply(&mut conn, "200 OK", "", br#"{"code":0}"#),
        Answer::Refuse => reply(&mut conn, "200 OK", "", br#"{"code":403,"data":null}"#),
        Answer::Garbage => reply(&mut conn, "200 OK", "", b"<html>\x00\xff not json"),
        Answer::Huge => reply(&mut conn, "200 OK", "", &vec![b'0'; 8 << 20]),
        Answer::Redirect => reply(
            &mut conn,
            "302 Found",
            "location: http://127.0.0.1:1/allow\r\n",
            b"",
        ),
        Answer::Hang => {
            *hanging.lock().expect("hanging") += 1;
            let until = Instant::now() + Duration::from_secs(60);
            while !release.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
            *hanging.lock().expect("hanging") -= 1;
            reply(&mut conn, "200 OK", "", b"0");
        }
    }
}

fn stream_of(e: &Value) -> &str {
    e["stream"].as_str().unwrap_or_default()
}

/// Waits (bounded) for a publish attempt to end with an error exit.
fn assert_refused(p: &mut Proc, what: &str) {
    assert_eq!(
        p.wait_exit(Duration::from_secs(30)),
        Some(false),
        "{what} was not refused"
    );
}

fn metrics(server: &Server) -> String {
    get_text(&server.url("/metrics")).1
}

/// Waits (bounded) until the log has `needle`.
fn wait_log(server: &Server, needle: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while !server.log_text().contains(needle) {
        assert!(
            Instant::now() < until,
            "no {needle:?} in the log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn publish_hooks_send_srs_bodies_and_a_refusal_stops_only_that_rtmp_and_srt_publish() {
    require("ffmpeg");
    let hook = Receiver::start(|e| {
        if stream_of(e).starts_with("deny") {
            Answer::Refuse
        } else {
            Answer::Allow
        }
    });
    let server = Server::start(
        "origin",
        &[
            "--srt",
            "127.0.0.1:0",
            "--hook-on-publish",
            &hook.url,
            "--hook-on-unpublish",
            &hook.url,
        ],
    );
    let mut cam = publish(&format!("{}?key=k1", server.rtmp_url("cam")), 8, "320x180");
    let _srtcam = publish_srt(&srt_url(&server, "live/srtcam?key=k2", ""), 40);
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    wait_for_200(
        &server.url("/live/srtcam/index.m3u8"),
        Duration::from_secs(20),
    );

    // Refused by the hook: this RTMP publish and this SRT publish, not the others.
    let mut deny_rtmp = publish(&server.rtmp_url("deny1"), 20, "320x180");
    assert_refused(&mut deny_rtmp, "an RTMP publish the hook refuses");
    let mut deny_srt = publish_srt(&srt_url(&server, "#!::r=live/deny2,m=publish", ""), 20);
    assert_refused(&mut deny_srt, "an SRT publish the hook refuses");
    for name in ["deny1", "deny2"] {
        assert_eq!(
            get(&server.url(&format!("/live/{name}/index.m3u8"))).0,
            404,
            "{name} must not exist"
        );
        hook.wait_event("on_publish", name, Duration::from_secs(5));
    }
    assert_eq!(
        get(&server.url("/live/srtcam/index.m3u8")).0,
        200,
        "the SRT publish must go on"
    );
    let log = server.log_text();
    assert!(log.contains("the on_publish hook refused"), "{log}");

    // The exact bodies.
    let published = hook.wait_event("on_publish", "cam", Duration::from_secs(5));
    let rtmp_port = server.rtmp;
    let obj = published.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "app",
            "client_id",
            "ip",
            "param",
            "protocol",
            "server_id",
            "service_id",
            "stream",
            "stream_id",
            "stream_url",
            "tcUrl",
            "vhost"
        ]
    );
    assert_eq!(published["action"], "on_publish");
    assert_eq!(published["ip"], "127.0.0.1");
    assert_eq!(published["vhost"], "__defaultVhost__");
    assert_eq!(published["app"], "live");
    assert_eq!(
        published["tcUrl"],
        format!("rtmp://127.0.0.1:{rtmp_port}/live")
    );
    assert_eq!(published["param"], "?key=k1");
    assert_eq!(published["stream_url"], "/live/cam");
    assert_eq!(published["protocol"], "rtmp");
    for id in ["server_id", "service_id", "client_id", "stream_id"] {
        assert!(
            published[id].as_str().is_some_and(|s| !s.is_empty()),
            "{id}: {published}"
        );
    }
    let srt = hook.wait_event("on_publish", "srtcam", Duration::from_secs(5));
    assert_eq!(srt["protocol"], "srt");
    assert_eq!(srt["param"], "?key=k2");
    assert_eq!(srt["stream_url"], "/live/srtcam");
    assert!(srt["tcUrl"]
        .as_str()
        .is_some_and(|u| u.starts_with("srt://127.0.0.1:") && u.ends_with("/live")));
    assert_eq!(srt["server_id"], published["server_id"]);

    // The RTMP publish ends: on_unpublish, the same fields with its action.
    assert_eq!(cam.wait_exit(Duration::from_secs(30)), Some(true));
    let unpublished = hook.wait_event("on_unpublish", "cam", Duration::from_secs(20));
    let mut expected = published.clone();
    expected["action"] = "on_unpublish".into();
    assert_eq!(unpublished, expected);
    // Refused publishes get no on_unpublish.
    assert!(hook
        .events()
        .iter()
        .all(|e| !(e["action"] == "on_unpublish" && stream_of(e).starts_with("deny"))));
    assert!(metrics(&server).contains("mediamesh_hook_calls_total"));
}

#[test]
fn a_hanging_hook_delays_only_its_own_publish() {
    require("ffmpeg");
    let hook = Receiver::start(|e| {
        if stream_of(e).starts_with("slow") {
            Answer::Hang
        } else {
            Answer::Allow
        }
    });
    // A hook timeout far longer than the test needs: nothing here races it.
    let server = Server::start(
        "origin",
        &[
            "--srt",
            "127.0.0.1:0",
            "--hook-on-publish",
            &hook.url,
            "--hook-timeout",
            "25",
            "--rtmp-publish-deadline",
            "60",
        ],
    );
    let _slow = publish(&server.rtmp_url("slow"), 60, "320x180");
    let _slow_srt = publish_srt(&srt_url(&server, "live/slowsrt", ""), 60);
    let until = Instant::now() + Duration::from_secs(20);
    while hook.hanging() < 2 {
        assert!(Instant::now() < until, "the slow hook was never called");
        std::thread::sleep(Duration::from_millis(50));
    }
    // While that hook hangs, other publishers (RTMP and SRT) and their viewers go on.
    let _fast = publish(&server.rtmp_url("fast"), 60, "320x180");
    let _fast_srt = publish_srt(&srt_url(&server, "live/fastsrt", ""), 60);
    wait_for_200(
        &server.url("/live/fast/index.m3u8"),
        Duration::from_secs(20),
    );
    wait_for_200(
        &server.url("/live/fastsrt/index.m3u8"),
        Duration::from_secs(20),
    );
    assert_eq!(get(&server.url("/healthz")).0, 200);
    assert_eq!(hook.hanging(), 2, "the slow hooks must still be waiting");
    assert_eq!(get(&server.url("/live/slow/index.m3u8")).0, 404);
    assert_eq!(get(&server.url("/live/slowsrt/index.m3u8")).0, 404);
    // Released, the slow publishes go live too (SRT's held transport stream first).
    hook.release.store(true, Ordering::SeqCst);
    wait_for_200(
        &server.url("/live/slow/index.m3u8"),
        Duration::from_secs(20),
    );
    wait_for_200(
        &server.url("/live/slowsrt/index.m3u8"),
        Duration::from_secs(20),
    );
}

#[test]
fn hostile_hook_answers_and_a_dead_hook_neither_crash_nor_hang_and_are_counted() {
    require("ffmpeg");
    let hook = Receiver::start(|e| match stream_of(e) {
        "garbage" => Answer::Garbage,
        "huge" => Answer::Huge,
        "redirect" => Answer::Redirect,
        _ => Answer::Allow,
    });
    let mut server = Server::start("origin", &["--hook-on-publish", &hook.url]);
    // Fail-closed (the default): broken answers refuse; a redirect is not followed and
    // refuses.
    for name in ["garbage", "huge", "redirect"] {
        let mut p = publish(&server.rtmp_url(name), 20, "320x180");
        assert_refused(&mut p, name);
        hook.wait_event("on_publish", name, Duration::from_secs(5));
    }
    assert_eq!(
        hook.events()
            .iter()
            .filter(|e| stream_of(e) == "redirect")
            .count(),
        1,
        "a redirect must not be followed"
    );
    assert!(server.alive());
    wait_log(&server, "webhook down");
    let m = metrics(&server);
    assert!(
        m.contains(r#"mediamesh_hook_calls_total{event="on_publish",result="down"}"#),
        "{m}"
    );
    // A good answer still lets a publish in.
    let _ok = publish(&server.rtmp_url("fine"), 30, "320x180");
    wait_for_200(
        &server.url("/live/fine/index.m3u8"),
        Duration::from_secs(20),
    );
    drop(server);

    // A hook nobody listens on: down, with a log line and metrics; fail-open lets the
    // publish in, fail-closed does not.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!(
            "http://{}/hook?token=not-for-logs",
            l.local_addr().expect("addr")
        )
    };
    let open = Server::start(
        "origin",
        &[
            "--hook-on-publish",
            &dead,
            "--hook-fail-open",
            "--hook-timeout",
            "1",
        ],
    );
    let _p = publish(&open.rtmp_url("open"), 30, "320x180");
    wait_for_200(&open.url("/live/open/index.m3u8"), Duration::from_secs(20));
    wait_log(&open, "webhook down");
    let log = open.log_text();
    assert!(
        !log.contains("not-for-logs"),
        "the hook's query was logged:\n{log}"
    );
    let m = metrics(&open);
    assert!(
        m.contains(r#"mediamesh_hook_up{event="on_publish"} 0"#),
        "{m}"
    );
    let closed = Server::start(
        "origin",
        &["--hook-on-publish", &dead, "--hook-timeout", "1"],
    );
    let mut p = publish(&closed.rtmp_url("closed"), 20, "320x180");
    assert_refused(&mut p, "a publish while the hook is down (fail-closed)");
    wait_log(&closed, "hooks fail closed");
    let mut closed = closed;
    assert!(closed.alive());
}

/// The session id in a multivariant playlist's variant URI.
fn session_of(playlist: &str) -> String {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.split("session=").nth(1))
        .map(|s| s.split('&').next().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no session in the playlist:\n{playlist}"))
}

#[test]
fn on_play_and_on_stop_follow_hls_and_dash_viewer_sessions() {
    require("ffmpeg");
    let hook = Receiver::start(|e| {
        let good = e["param"]
            .as_str()
            .is_some_and(|p| p.contains("token=good"));
        match e["action"].as_str() {
            Some("on_play") if !good => Answer::Refuse,
            _ => Answer::Allow,
        }
    });
    let server = Server::start(
        "origin",
        &[
            "--hook-on-play",
            &hook.url,
            "--hook-on-stop",
            &hook.url,
            "--hook-play-idle",
            "2",
        ],
    );
    let _cam = publish(&server.rtmp_url("cam"), 60, "320x180");
    // The media playlist opens no session: wait on it for a first whole segment.
    let until = Instant::now() + Duration::from_secs(30);
    while !get_text(&server.url("/live/cam/src/index.m3u8"))
        .1
        .contains("#EXTINF")
    {
        assert!(Instant::now() < until, "no segment of cam");
        std::thread::sleep(Duration::from_millis(200));
    }
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    // A refused viewer: 403, and no session (so no on_stop).
    let r = client
        .get(server.url("/live/cam/index.m3u8?token=bad"))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 403);

    // An allowed viewer: on_play once, the session id in the variant URIs.
    let r = client
        .get(server.url("/live/cam/index.m3u8?token=good"))
        .header("referer", "https://site.example/watch")
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let playlist = r.text().expect("text");
    let id = session_of(&playlist);
    let play = hook
        .events()
        .into_iter()
        .find(|e| e["action"] == "on_play" && e["client_id"] == id.as_str())
        .expect("on_play of the session");
    let obj = play.as_object().expect("object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "app",
            "client_id",
            "ip",
            "pageUrl",
            "param",
            "protocol",
            "server_id",
            "service_id",
            "stream",
            "stream_id",
            "stream_url",
            "tcUrl",
            "vhost"
        ]
    );
    assert_eq!(play["ip"], "127.0.0.1");
    assert_eq!(play["vhost"], "__defaultVhost__");
    assert_eq!(play["app"], "live");
    assert_eq!(play["stream"], "cam");
    assert_eq!(play["param"], "?token=good");
    assert_eq!(play["pageUrl"], "https://site.example/watch");
    assert_eq!(
        play["tcUrl"],
        format!("http://127.0.0.1:{}/live", server.http)
    );
    assert_eq!(play["stream_url"], "/live/cam");
    assert_eq!(play["protocol"], "hls");
    let plays = |id: &str| {
        hook.events()
            .iter()
            .filter(|e| e["action"] == "on_play" && e["client_id"] == id)
            .count()
    };
    // The session's requests keep it alive and ask nothing more.
    let variant = playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .expect("variant");
    for _ in 0..3 {
        let (s, _) = get(&server.url(&format!("/live/cam/{variant}")));
        assert_eq!(s, 200);
        let (s, _) = get(&server.url(&format!("/live/cam/index.m3u8?session={id}")));
        assert_eq!(s, 200);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(plays(&id), 1, "on_play is per session, not per request");
    // Left idle, the session ends: on_stop with the same fields.
    let stop = hook.wait_event("on_stop", "cam", Duration::from_secs(20));
    let mut expected = play.clone();
    expected["action"] = "on_stop".into();
    assert_eq!(stop, expected);
    assert_eq!(
        hook.events()
            .iter()
            .filter(|e| e["action"] == "on_stop")
            .count(),
        1,
        "only the allowed session stops"
    );

    // DASH: redirected to the MPD with the session id.
    let r = client
        .get(server.url("/live/cam/index.mpd?token=good"))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 302);
    let to = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    assert!(
        to.starts_with("/live/cam/index.mpd?token=good&session="),
        "{to}"
    );
    let r = client.get(server.url(&to)).send().expect("get");
    assert_eq!(r.status().as_u16(), 200);
    assert!(hook
        .events()
        .iter()
        .any(|e| e["action"] == "on_play" && e["protocol"] == "dash"));

    // A real player follows the session URIs.
    let codecs = probe_codecs(&server.url("/live/cam/index.m3u8?token=good"));
    assert!(codecs.iter().any(|c| c == "h264"), "{codecs:?}");
}
