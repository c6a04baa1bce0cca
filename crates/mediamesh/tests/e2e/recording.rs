//! End to end: recording live streams to disk and playing them back as VOD. ffmpeg
//! publishes over RTMP to a real `mediamesh origin`, drops (SIGKILL) and comes back
//! within the reconnect grace time: the result is ONE recording that ffprobe measures
//! at what was published, that ffmpeg decodes start to end without an error or a
//! timestamp hole, and (in Chromium) that hls.js plays to its end in one buffered
//! range. Also: the write API's start/stop (and its token), hostile names, the disk
//! bound deleting the oldest recording first (and stopping a recording when nothing is
//! left to delete), and the `on_record_done` webhook's JSON.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::hooks::{Answer, Receiver};

const TOKEN: &str = "recording-admin-token-0123";

/// ffmpeg publishing as [`publish`] does, writing its progress (`out_time_us`, how
/// much media it has sent) to `progress` every 0.1 s.
fn publish_with_progress(url: &str, secs: u32, progress: &Path) -> Proc {
    require("ffmpeg");
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac"])
        .args(["-stats_period", "0.1", "-progress"])
        .arg(progress)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc {
        child,
        name: "ffmpeg publish (progress)".into(),
    }
}

/// Seconds of media ffmpeg reported sent last in its progress file.
fn sent_seconds(progress: &Path) -> f64 {
    std::fs::read_to_string(progress)
        .unwrap_or_default()
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .find_map(|v| v.trim().parse::<f64>().ok())
        .map_or(0.0, |us| us / 1e6)
}

fn recordings(server: &Server) -> Vec<Value> {
    let (status, body) = get_text(&server.url("/api/v1/recordings"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["recordings"].as_array().cloned().unwrap_or_default()
}

fn of_stream(server: &Server, stream: &str) -> Vec<Value> {
    recordings(server)
        .into_iter()
        .filter(|r| r["stream"] == stream)
        .collect()
}

/// Waits (bounded) until `check` holds for the recordings of `stream`.
fn wait_recordings(
    server: &Server,
    stream: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let until = Instant::now() + limit;
    loop {
        let r = of_stream(server, stream);
        if check(&r) {
            return r;
        }
        assert!(
            Instant::now() < until,
            "{what}: recordings of {stream} are {r:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A request with an optional bearer token: (status, JSON body or null).
fn call(method: reqwest::Method, url: &str, token: Option<&str>) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let mut req = client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send() {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
            (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// Publishes `stream` until the recording holds `segments` segments, kills ffmpeg
/// (SIGKILL), publishes again for `again` seconds within the grace time, and waits
/// for that to finish. Returns the seconds of media the killed publisher sent.
pub(crate) fn publish_with_a_reconnect(
    server: &Server,
    stream: &str,
    segments: u64,
    again: u32,
) -> f64 {
    let progress = server.dir.path().join(format!("{stream}-progress.txt"));
    let mut first = publish_with_progress(&server.rtmp_url(stream), 120, &progress);
    wait_recordings(
        server,
        stream,
        Duration::from_secs(60),
        "the first publish is recorded",
        |r| r.len() == 1 && r[0]["segments"].as_u64().unwrap_or(0) >= segments,
    );
    let _ = first.child.kill();
    let _ = first.child.wait();
    let sent = sent_seconds(&progress);
    assert!(sent > 1.0, "ffmpeg reported no progress");
    std::thread::sleep(Duration::from_secs(1));
    let mut second = publish(&server.rtmp_url(stream), again, "320x240");
    assert_eq!(
        second.wait_exit(Duration::from_secs(u64::from(again) + 40)),
        Some(true),
        "the second publish failed:\n{}",
        server.log_text()
    );
    sent
}

/// Presentation times of the packets of stream `kind` (`v` or `a`) ffprobe reads.
fn packet_times(url: &str, kind: &str) -> Vec<f64> {
    let out = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-select_streams",
            kind,
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
            url,
        ]),
        Duration::from_secs(90),
    );
    let mut t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    t
}

fn largest_gap(times: &[f64]) -> f64 {
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

#[test]
fn a_publish_with_a_reconnect_becomes_one_vod_asset_that_plays_without_a_gap() {
    require("ffprobe");
    let hooks = Receiver::start(|_| Answer::Allow);
    let server = Server::start(
        "origin",
        &[
            "--record",
            "--reconnect-grace",
            "6",
            "--hook-on-record-done",
            &hooks.url,
        ],
    );
    // ~15 s, a reconnect, 15 s more.
    let sent_first = publish_with_a_reconnect(&server, "rec", 7, 15);
    let expected = sent_first + 15.0;

    let event = hooks.wait_event("on_record_done", "rec", Duration::from_secs(60));
    let all = of_stream(&server, "rec");
    assert_eq!(all.len(), 1, "one recording across the reconnect: {all:?}");
    let rec = &all[0];
    assert_eq!(rec["state"], "finished");
    assert_eq!(rec["reason"], "ended");
    let name = rec["name"].as_str().expect("name").to_string();
    let url = server.url(rec["url"].as_str().expect("url"));
    assert_eq!(rec["url"], format!("/vod/recordings/{name}/index.m3u8"));

    // ffprobe: the duration of what was published.
    let hls = probe_duration(&url);
    assert!(
        (hls - expected).abs() <= 1.0,
        "ffprobe says {hls} s, published {expected} s ({sent_first} + 15)"
    );
    let listed = rec["duration_seconds"].as_f64().expect("duration");
    assert!((listed - hls).abs() < 0.1, "listed {listed}, ffprobe {hls}");
    let dash = probe_duration(&server.url(rec["dash_url"].as_str().expect("dash")));
    assert!((dash - hls).abs() <= 1.0, "DASH {dash} s, HLS {hls} s");
    let codecs = probe_codecs(&url);
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );

    // ffmpeg decodes it start to end without an error.
    let out = run(
        Command::new("ffmpeg").args(["-v", "error", "-i", &url, "-f", "null", "-"]),
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");

    // One timeline: no hole in the video or audio timestamps at the reconnect.
    let video = packet_times(&url, "v");
    let audio = packet_times(&url, "a");
    assert!(video.len() > 750, "{} video packets", video.len());
    assert!(
        largest_gap(&video) < 0.1,
        "video gap {}",
        largest_gap(&video)
    );
    assert!(
        largest_gap(&audio) < 0.1,
        "audio gap {}",
        largest_gap(&audio)
    );
    let span = video.last().copied().unwrap_or(0.0) - video.first().copied().unwrap_or(0.0);
    assert!((span - hls).abs() < 0.5, "video spans {span} s of {hls} s");

    // The webhook: SRS's fields, then the recording's.
    assert_eq!(event["action"], "on_record_done");
    assert_eq!(event["stream"], "rec");
    assert_eq!(event["app"], "live");
    assert_eq!(event["vhost"], "__defaultVhost__");
    assert_eq!(event["stream_url"], "/live/rec");
    for key in [
        "server_id",
        "service_id",
        "stream_id",
        "started",
        "ended",
        "dir",
    ] {
        assert!(
            event[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}: {event}"
        );
    }
    assert_eq!(event["name"], name.as_str());
    assert_eq!(event["state"], "finished");
    assert_eq!(event["reason"], "ended");
    assert_eq!(event["url"], rec["url"]);
    assert_eq!(event["dash_url"], rec["dash_url"]);
    assert_eq!(event["bytes"], rec["bytes"]);
    assert_eq!(event["segments"], rec["segments"]);
    assert_eq!(event["duration_seconds"], rec["duration_seconds"]);
    let dir = std::path::PathBuf::from(event["dir"].as_str().unwrap_or_default());
    assert!(dir.join("recording.json").is_file(), "{}", dir.display());
    assert!(dir.starts_with(server.dir.path().join("data").join("recordings")));
    assert_eq!(
        hooks
            .events()
            .iter()
            .filter(|e| e["action"] == "on_record_done")
            .count(),
        1
    );
}

#[test]
fn a_recording_with_a_reconnect_plays_to_its_end_in_hls_js_in_chromium() {
    let _turn = browser_turn();
    let web = browser_ready();
    let server = Server::start("origin", &["--record", "--reconnect-grace", "4"]);
    publish_with_a_reconnect(&server, "web", 4, 8);
    let all = wait_recordings(
        &server,
        "web",
        Duration::from_secs(30),
        "the recording finishes",
        |r| r.len() == 1 && r[0]["state"] == "finished",
    );
    let path = all[0]["url"].as_str().expect("url").to_string();
    let out = run(
        Command::new("node")
            .arg(web.join("tests/play_vod.mjs"))
            .arg(server.url(""))
            .arg(&path)
            .arg("60"),
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hls.js did not play the recording through: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("json line");
    assert_eq!(seen["ended"], true);
    assert_eq!(seen["ranges"].as_array().map(Vec::len), Some(1), "{seen}");
    let listed = all[0]["duration_seconds"].as_f64().unwrap_or(0.0);
    let played = seen["t"].as_f64().unwrap_or(0.0);
    assert!(
        (played - listed).abs() < 1.0,
        "played {played} of {listed} s"
    );
}

#[test]
fn the_recording_switch_needs_the_admin_token_and_records_a_live_stream() {
    let server = Server::start(
        "origin",
        &["--admin-token", TOKEN, "--reconnect-grace", "2"],
    );
    let _publisher = publish(&server.rtmp_url("cam"), 40, "320x240");
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    let switch = server.url("/api/v1/streams/cam/recording");
    use reqwest::Method;
    assert_eq!(call(Method::POST, &switch, None).0, 401);
    assert_eq!(
        call(Method::POST, &switch, Some("wrong-token-0123456789")).0,
        403
    );
    assert_eq!(call(Method::DELETE, &switch, None).0, 401);
    assert_eq!(call(Method::GET, &switch, None).0, 401);
    assert!(
        recordings(&server).is_empty(),
        "nothing recorded without --record"
    );

    // Hostile names: refused or not found, nothing written outside the folder.
    let long = "a".repeat(200);
    for bad in [
        "..%2F..%2Fetc",
        "%2e%2e",
        "..",
        "a%2Fb",
        "a%00b",
        "%2e%2e%2f%2e%2e%2fdata",
        long.as_str(),
    ] {
        let (status, body) = call(
            Method::POST,
            &server.url(&format!("/api/v1/streams/{bad}/recording")),
            Some(TOKEN),
        );
        assert!(
            [400, 404, 422].contains(&status),
            "POST {bad}: {status} {body}"
        );
        let (status, _) = call(
            Method::DELETE,
            &server.url(&format!("/api/v1/recordings/{bad}")),
            Some(TOKEN),
        );
        assert!([400, 404].contains(&status), "DELETE {bad}: {status}");
    }
    for bad in [
        "/vod/recordings/..%2F..%2Fsigning.key/index.m3u8",
        "/vod/recordings/%2e%2e/init.mp4",
        "/vod/recordings/%2e%2e%2f%2e%2e/recording.json",
        "/vod/recordings/x/..%2Frecording.json",
        "/vod/recordings/x/%2e%2e%2f%2e%2e%2fadmin-token",
        &format!("/vod/recordings/{long}/index.m3u8"),
    ] {
        let (status, body) = get_text(&server.url(bad));
        assert!([400, 404].contains(&status), "GET {bad}: {status} {body}");
    }
    let recordings_dir = server.dir.path().join("data").join("recordings");
    assert!(!recordings_dir.exists(), "nothing was recorded yet");

    // Start: the live stream is recorded from its next segment.
    let (status, body) = call(Method::POST, &switch, Some(TOKEN));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["live"], true);
    let r = wait_recordings(
        &server,
        "cam",
        Duration::from_secs(30),
        "recording starts",
        |r| r.len() == 1 && r[0]["segments"].as_u64().unwrap_or(0) >= 3,
    );
    assert_eq!(r[0]["state"], "recording");
    let name = r[0]["name"].as_str().expect("name").to_string();
    let (status, growing) = get_text(&server.url(&format!("/vod/recordings/{name}/media.m3u8")));
    assert_eq!(status, 200);
    assert!(growing.contains("#EXT-X-PLAYLIST-TYPE:EVENT") && !growing.contains("ENDLIST"));
    let (_, on) = call(Method::GET, &switch, Some(TOKEN));
    assert_eq!(on["record"], true);
    assert_eq!(on["recording"], name.as_str());

    // Stop: it finishes as a VOD asset, and nothing more is recorded.
    let (status, body) = call(Method::DELETE, &switch, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["finishing"], name.as_str());
    let r = wait_recordings(
        &server,
        "cam",
        Duration::from_secs(20),
        "recording stops",
        |r| r.len() == 1 && r[0]["state"] == "finished",
    );
    assert_eq!(r[0]["reason"], "stopped");
    let (_, pl) = get_text(&server.url(&format!("/vod/recordings/{name}/media.m3u8")));
    assert!(pl.contains("#EXT-X-PLAYLIST-TYPE:VOD") && pl.contains("#EXT-X-ENDLIST"));
    let d = probe_duration(&server.url(&format!("/vod/recordings/{name}/index.m3u8")));
    assert!(d >= 5.0, "{d}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(of_stream(&server, "cam").len(), 1, "stopped means stopped");

    // Delete the asset: token again, then its folder is gone.
    let asset = server.url(&format!("/api/v1/recordings/{name}"));
    assert_eq!(call(Method::DELETE, &asset, None).0, 401);
    assert!(recordings_dir.join(&name).is_dir());
    assert_eq!(call(Method::DELETE, &asset, Some(TOKEN)).0, 200);
    assert!(!recordings_dir.join(&name).exists());
    assert!(recordings(&server).is_empty());
    assert_eq!(
        get_text(&server.url(&format!("/vod/recordings/{name}/index.m3u8"))).0,
        404
    );
}

/// Starts an origin that records every stream, in `dir` (kept across restarts).
fn recording_origin(dir: tempfile::TempDir, extra: &[&str]) -> Server {
    let data = dir.path().join("data").display().to_string();
    let mut args = vec![
        "--rtmp",
        "127.0.0.1:0",
        "--data",
        &data,
        "--record",
        "--reconnect-grace",
        "1",
    ];
    args.extend_from_slice(extra);
    Server::start_role_in("origin", dir, &args)
}

fn publish_and_finish(server: &Server, stream: &str, secs: u32) -> Value {
    let mut p = publish(&server.rtmp_url(stream), secs, "320x240");
    assert_eq!(
        p.wait_exit(Duration::from_secs(u64::from(secs) + 40)),
        Some(true)
    );
    wait_recordings(
        server,
        stream,
        Duration::from_secs(30),
        "the recording finishes",
        |r| r.len() == 1 && r[0]["state"] == "finished",
    )
    .remove(0)
}

#[test]
fn the_oldest_recording_goes_first_when_the_disk_bound_is_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data").join("recordings");
    let server = recording_origin(dir, &[]);
    let first = publish_and_finish(&server, "first", 6);
    let size = first["bytes"].as_u64().expect("bytes");
    assert!(size > 0);
    let first_name = first["name"].as_str().expect("name").to_string();

    // Restart with room for one and a half such recordings: the first is still
    // there (read back from disk), and goes when the second needs its room.
    let (_, dir) = server.kill();
    let max = (size * 3 / 2).to_string();
    let server = recording_origin(dir, &["--record-max-bytes", &max]);
    assert_eq!(
        of_stream(&server, "first").len(),
        1,
        "kept across a restart"
    );
    let second = publish_and_finish(&server, "second", 6);
    assert_eq!(second["reason"], "ended");
    assert!(
        of_stream(&server, "first").is_empty(),
        "the oldest went first"
    );
    assert!(!root.join(&first_name).exists());
    let total: u64 = recordings(&server)
        .iter()
        .filter_map(|r| r["bytes"].as_u64())
        .sum();
    assert!(total <= size * 3 / 2, "{total} bytes on disk");
    let second_name = second["name"].as_str().expect("name").to_string();

    // Room for less than one: the finished one goes, then the recording in progress
    // stops at the bound (reason disk_limit) and stays playable.
    let (_, dir) = server.kill();
    let max = (size / 2).to_string();
    let server = recording_origin(dir, &["--record-max-bytes", &max]);
    let third = publish_and_finish(&server, "third", 8);
    assert_eq!(third["reason"], "disk_limit", "{third}");
    assert!(!root.join(&second_name).exists());
    assert!(third["bytes"].as_u64().unwrap_or(u64::MAX) <= size / 2);
    let name = third["name"].as_str().expect("name");
    let d = probe_duration(&server.url(&format!("/vod/recordings/{name}/index.m3u8")));
    assert!(d > 0.0, "{d}");
    assert!(server.log_text().contains("--record-max-bytes"));
}

#[test]
fn a_long_stream_is_split_into_recordings_every_n_minutes() {
    let hooks = Receiver::start(|_| Answer::Allow);
    // 0.1 minutes: a recording every 6 s.
    let server = Server::start(
        "origin",
        &[
            "--record",
            "--record-split-minutes",
            "0.1",
            "--reconnect-grace",
            "1",
            "--hook-on-record-done",
            &hooks.url,
        ],
    );
    let mut p = publish(&server.rtmp_url("long"), 16, "320x240");
    assert_eq!(p.wait_exit(Duration::from_secs(60)), Some(true));
    let all = wait_recordings(
        &server,
        "long",
        Duration::from_secs(30),
        "the last part finishes",
        |r| r.len() >= 2 && r.iter().all(|x| x["state"] == "finished"),
    );
    let reasons: Vec<&str> = all.iter().filter_map(|r| r["reason"].as_str()).collect();
    let (last, parts) = reasons.split_last().expect("parts");
    assert_eq!(*last, "ended", "{reasons:?}");
    assert!(parts.iter().all(|r| *r == "split"), "{reasons:?}");
    let mut total = 0.0;
    for r in &all[..all.len() - 1] {
        let d = r["duration_seconds"].as_f64().unwrap_or(0.0);
        assert!((6.0..8.5).contains(&d), "a part of {d} s: {r}");
    }
    for r in &all {
        let d = probe_duration(&server.url(r["url"].as_str().expect("url")));
        assert!(d > 0.0);
        total += d;
    }
    assert!(
        (total - 16.0).abs() <= 1.5,
        "the parts add up to {total} s of 16"
    );
    let until = Instant::now() + Duration::from_secs(20);
    while hooks
        .events()
        .iter()
        .filter(|e| e["action"] == "on_record_done")
        .count()
        < all.len()
    {
        assert!(
            Instant::now() < until,
            "one on_record_done per part: {:?}",
            hooks.events()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
