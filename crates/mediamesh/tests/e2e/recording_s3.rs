//! End to end: recordings uploaded to a real S3-compatible server (`s3rver` from npm,
//! see `common/s3rver.rs`). ffmpeg publishes over RTMP to a real `mediamesh origin`
//! with `--record --s3 …`: the finished recording's objects are in the bucket (checked
//! with the server's own listing and plain GETs, not our client), its local media is
//! deleted once the upload is confirmed, and it still plays start to end from the
//! origin, which reads the segments from S3 (ffprobe and ffmpeg over HTTP); the bucket
//! alone also plays as HLS. Then: the S3 server killed mid-upload, and the origin
//! restarted while S3 is still down, loses nothing: once S3 is back the upload
//! resumes where it was and every object is byte-identical to the local file.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::s3rver::{self, S3rver};
use crate::common::*;
use crate::hooks::{Answer, Receiver};
use crate::recording::publish_with_a_reconnect;

const PREFIX: &str = "rec/o1";
const TOKEN: &str = "recording-s3-admin-token-01";

fn env() -> [(&'static str, &'static str); 2] {
    [
        ("AWS_ACCESS_KEY_ID", s3rver::KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", s3rver::SECRET),
    ]
}

fn origin(dir: tempfile::TempDir, s3: &S3rver, extra: &[&str]) -> Server {
    let data = dir.path().join("data").display().to_string();
    let endpoint = s3.endpoint();
    let url = format!("s3://{}/{PREFIX}", s3rver::BUCKET);
    let mut args: Vec<&str> = vec![
        "--rtmp",
        "127.0.0.1:0",
        "--data",
        &data,
        "--record",
        "--s3",
        &url,
        "--s3-endpoint",
        &endpoint,
        "--s3-path-style",
        "--s3-retry-max",
        "2",
    ];
    args.extend_from_slice(extra);
    Server::start_role_in_env("origin", dir, &args, &env())
}

fn recordings_of(server: &Server, stream: &str) -> Vec<Value> {
    let (status, body) = get_text(&server.url("/api/v1/recordings"));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    v["recordings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["stream"] == stream)
        .collect()
}

/// Waits (bounded) until the one recording of `stream` satisfies `check`.
fn wait_one(
    server: &Server,
    stream: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let until = Instant::now() + limit;
    loop {
        let r = recordings_of(server, stream);
        if r.len() == 1 && check(&r[0]) {
            return r[0].clone();
        }
        assert!(
            Instant::now() < until,
            "{what}: recordings of {stream} are {r:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The files a recording of `segments` segments uploads.
fn expected_files(segments: usize) -> Vec<String> {
    let mut v: Vec<String> = [
        "init.mp4",
        "v-init.mp4",
        "a-init.mp4",
        "index.m3u8",
        "media.m3u8",
        "index.mpd",
        "segments.jsonl",
        "recording.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend((0..segments).map(|n| format!("seg{n}.m4s")));
    v.sort();
    v
}

/// ffmpeg reads every segment of `url` and decodes it; returns its error output.
fn decode_all(url: &str) -> String {
    let out = run(
        Command::new("ffmpeg").args(["-hide_banner", "-v", "error", "-i", url, "-f", "null", "-"]),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "ffmpeg failed on {url}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn recording_uploaded_to_s3_plays_from_s3_once_the_local_copy_is_gone() {
    let hooks = Receiver::start(|_| Answer::Allow);
    let s3dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3rver::start(&s3dir.path().join("s3"));
    let server = origin(
        tempfile::tempdir().expect("tempdir"),
        &s3,
        &[
            "--s3-delete-local",
            "--reconnect-grace",
            "1",
            // Segments of this stream are 50-200 KB: the bigger ones go in parts.
            "--s3-multipart-bytes",
            "100000",
            "--s3-part-bytes",
            "65536",
            "--hook-on-record-done",
            &hooks.url,
            "--admin-token",
            TOKEN,
        ],
    );
    let mut p = publish(&server.rtmp_url("cam"), 12, "320x240");
    assert_eq!(p.wait_exit(Duration::from_secs(60)), Some(true));
    let rec = wait_one(
        &server,
        "cam",
        Duration::from_secs(60),
        "uploaded, local copy deleted",
        |r| r["state"] == "finished" && r["s3"] == "uploaded" && r["local"] == false,
    );
    let name = rec["name"].as_str().expect("name").to_string();
    let segments = rec["segments"].as_u64().expect("segments") as usize;
    assert!(segments >= 4, "{rec}");
    assert_eq!(
        rec["s3_url"],
        format!("s3://{}/{PREFIX}/{name}/", s3rver::BUCKET),
        "{rec}"
    );

    // The bucket holds every file, and the sizes the listing reports are the ones
    // the recording's index says.
    let prefix = format!("{PREFIX}/{name}/");
    let listed = s3.list(&prefix);
    let mut keys: Vec<String> = listed
        .iter()
        .map(|(k, _)| k.strip_prefix(&prefix).unwrap_or(k).to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, expected_files(segments), "{listed:?}");
    let index = String::from_utf8(s3.object(&format!("{prefix}segments.jsonl"))).expect("utf-8");
    for (n, line) in index.lines().enumerate() {
        let entry: Value = serde_json::from_str(line).expect("index line");
        let key = format!("{prefix}seg{n}.m4s");
        let size = listed.iter().find(|(k, _)| *k == key).map(|(_, s)| *s);
        assert_eq!(size, entry["bytes"].as_u64(), "{key}");
    }
    assert!(
        listed
            .iter()
            .any(|(k, s)| k.ends_with(".m4s") && *s >= 100_000),
        "no segment big enough for a multipart upload: {listed:?}"
    );
    assert!(server.log_text().contains("recording uploaded to S3"));

    // The local media is gone; what says what the recording is stays.
    let dir = server.dir.path().join("data/recordings").join(&name);
    assert!(!dir.join("seg0.m4s").exists() && !dir.join("init.mp4").exists());
    assert!(dir.join("recording.json").exists() && dir.join("upload.json").exists());

    // It plays from the origin, which reads the segments from S3: every segment.
    let url = server.url(&format!("/vod/recordings/{name}/index.m3u8"));
    let want = rec["duration_seconds"].as_f64().expect("duration");
    let got = probe_duration(&url);
    assert!(
        (got - want).abs() < 0.5,
        "ffprobe says {got} s, the listing {want} s"
    );
    let errors = decode_all(&url);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
    let (status, _) = get(&server.url(&format!("/vod/recordings/{name}/v-seg0.m4s")));
    assert_eq!(status, 200, "DASH track split from the S3 copy");
    let (status, _) = get(&server.url(&format!("/vod/recordings/{name}/seg{segments}.m4s")));
    assert_eq!(status, 404);

    // The bucket alone is a playable HLS asset.
    let direct = format!("{}/{}/{prefix}index.m3u8", s3.endpoint(), s3rver::BUCKET);
    let got = probe_duration(&direct);
    assert!((got - want).abs() < 0.5, "from the bucket: {got} s");

    // on_record_done came once the upload was confirmed, with where it is.
    let until = Instant::now() + Duration::from_secs(10);
    let done = loop {
        if let Some(e) = hooks
            .events()
            .into_iter()
            .find(|e| e["action"] == "on_record_done")
        {
            break e;
        }
        assert!(Instant::now() < until, "no on_record_done");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["name"], name.as_str());
    assert_eq!(done["s3"], "uploaded");
    assert_eq!(done["s3_url"], rec["s3_url"]);
    assert_eq!(done["s3_bucket"], s3rver::BUCKET);

    // The credentials are never in the log.
    assert!(!server.log_text().contains(s3rver::SECRET));

    // A second origin with an empty disk and the same bucket finds it there and
    // plays it; names it does not find, or that are not names, are 404.
    let second = origin(
        tempfile::tempdir().expect("tempdir"),
        &s3,
        &["--reconnect-grace", "1"],
    );
    let url2 = second.url(&format!("/vod/recordings/{name}/index.m3u8"));
    let got = probe_duration(&url2);
    assert!((got - want).abs() < 0.5, "from the second origin: {got} s");
    assert_eq!(recordings_of(&second, "cam").len(), 1, "listed once found");
    for bad in [
        "cam-19700101T000000Z/index.m3u8",
        "..%2F..%2Fetc/index.m3u8",
        "%2e%2e/index.m3u8",
        &format!("{name}/..%2Frecording.json"),
        &format!("{name}/upload.json"),
    ] {
        let (status, _) = get(&second.url(&format!("/vod/recordings/{bad}")));
        assert_eq!(status, 404, "{bad}");
    }
    drop(second);

    // Deleting it through the API deletes it in the bucket too.
    let status = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
        .delete(server.url(&format!("/api/v1/recordings/{name}")))
        .bearer_auth(TOKEN)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert!((200..300).contains(&status), "delete answered {status}");
    let until = Instant::now() + Duration::from_secs(20);
    while !s3.list(&prefix).is_empty() {
        assert!(
            Instant::now() < until,
            "still in the bucket: {:?}",
            s3.list(&prefix)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(recordings_of(&server, "cam").is_empty());
}

#[test]
fn recording_upload_survives_s3_dying_mid_upload_and_an_origin_restart() {
    let s3dir = tempfile::tempdir().expect("tempdir");
    let s3path = s3dir.path().join("s3");
    let s3 = S3rver::start(&s3path);
    let pace = [
        "--reconnect-grace",
        "1",
        // Slow enough to kill the S3 server in the middle.
        "--s3-upload-rate",
        "40000",
        "--s3-multipart-bytes",
        "100000",
        "--s3-part-bytes",
        "65536",
    ];
    let server = origin(tempfile::tempdir().expect("tempdir"), &s3, &pace);
    let mut p = publish(&server.rtmp_url("cam"), 10, "320x240");
    assert_eq!(p.wait_exit(Duration::from_secs(60)), Some(true));
    let rec = wait_one(&server, "cam", Duration::from_secs(30), "uploading", |r| {
        r["state"] == "finished" && r["s3"] == "uploading"
    });
    let name = rec["name"].as_str().expect("name").to_string();
    let prefix = format!("{PREFIX}/{name}/");
    // Some objects are in, not all: kill the S3 server mid-upload.
    let until = Instant::now() + Duration::from_secs(20);
    while s3.list(&prefix).len() < 5 {
        assert!(Instant::now() < until, "no objects arrive");
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = s3.kill();
    // The origin retries, keeps the recording, and says so.
    let until = Instant::now() + Duration::from_secs(20);
    while !server.log_text().contains("S3 request failed: retrying") {
        assert!(
            Instant::now() < until,
            "no retry logged:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rec = recordings_of(&server, "cam");
    assert_eq!(rec[0]["s3"], "uploading", "{rec:?}");
    let (done, total) = (
        rec[0]["s3_uploaded_bytes"].as_u64().unwrap_or(0),
        rec[0]["s3_total_bytes"].as_u64().unwrap_or(0),
    );
    assert!(done > 0 && done < total, "{rec:?}");
    assert_eq!(rec[0]["local"], true);

    // The origin is restarted while S3 is still down: the upload state on disk
    // carries on from where it was.
    let data_dir = server.dir.path().join("data");
    let (_, dir) = server.kill();
    let state: Value = serde_json::from_slice(
        &std::fs::read(data_dir.join("recordings").join(&name).join("upload.json"))
            .expect("upload.json"),
    )
    .expect("json");
    assert_eq!(state["phase"], "uploading", "{state}");
    let done_before = state["files"]
        .as_array()
        .map_or(0, |f| f.iter().filter(|f| f["done"] == true).count());
    assert!(done_before >= 1, "{state}");

    let mut s3 = S3rver::start_on(&s3path, port);
    let server = origin(dir, &s3, &pace);
    let until = Instant::now() + Duration::from_secs(90);
    let mut revived = 0;
    let rec = loop {
        let r = recordings_of(&server, "cam");
        if r.len() == 1 && r[0]["s3"] == "uploaded" {
            break r[0].clone();
        }
        // The test's S3 may crash on what its kill left half-written (a real one
        // does not): brought back, at most a few times, the upload must go on.
        if revived < 5 && s3.revive_if_dead() {
            revived += 1;
        }
        assert!(
            Instant::now() < until,
            "uploaded after S3 came back ({revived} revivals): recordings of cam are {r:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        rec["local"], true,
        "no --s3-delete-local: the local copy stays"
    );
    let log = server.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("S3 upload started") && !l.contains("done_bytes=0")),
        "the restarted origin resumed rather than starting over:\n{log}"
    );

    // Every file is in the bucket, byte for byte.
    let segments = rec["segments"].as_u64().expect("segments") as usize;
    let local = data_dir.join("recordings").join(&name);
    let listed = s3.list(&prefix);
    let mut keys: Vec<String> = listed
        .iter()
        .map(|(k, _)| k.strip_prefix(&prefix).unwrap_or(k).to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, expected_files(segments), "{listed:?}");
    for file in &keys {
        let want = std::fs::read(local.join(file)).expect("local file");
        let got = s3.object(&format!("{prefix}{file}"));
        assert!(
            got == want,
            "{file}: {} bytes in S3, {} on disk",
            got.len(),
            want.len()
        );
    }
    let direct = format!("{}/{}/{prefix}index.m3u8", s3.endpoint(), s3rver::BUCKET);
    let errors = decode_all(&direct);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
}

#[test]
fn a_recording_with_a_reconnect_plays_from_s3_to_its_end_in_hls_js_in_chromium() {
    let _turn = browser_turn();
    let web = browser_ready();
    let s3dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3rver::start(&s3dir.path().join("s3"));
    let server = origin(
        tempfile::tempdir().expect("tempdir"),
        &s3,
        &["--s3-delete-local", "--reconnect-grace", "4"],
    );
    publish_with_a_reconnect(&server, "web", 4, 8);
    let rec = wait_one(
        &server,
        "web",
        Duration::from_secs(60),
        "one recording, uploaded, local copy deleted",
        |r| r["state"] == "finished" && r["s3"] == "uploaded" && r["local"] == false,
    );
    let path = rec["url"].as_str().expect("url").to_string();
    let errors = decode_all(&server.url(&path));
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
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
        "hls.js did not play the recording from S3 through: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("json line");
    assert_eq!(seen["ended"], true);
    assert_eq!(seen["ranges"].as_array().map(Vec::len), Some(1), "{seen}");
    let listed = rec["duration_seconds"].as_f64().unwrap_or(0.0);
    let played = seen["t"].as_f64().unwrap_or(0.0);
    assert!(
        (played - listed).abs() < 1.0,
        "played {played} of {listed} s"
    );
    assert!(
        server.log_text().contains("it plays from S3"),
        "the local copy was deleted"
    );
}

#[test]
fn an_s3_endpoint_that_hangs_or_answers_garbage_delays_only_the_upload() {
    use std::io::{Read, Write};
    // One endpoint accepts and never answers; after a few connections it answers
    // every request with garbage instead.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { break };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n < 3 {
                held.push(conn);
                continue;
            }
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 25\r\nconnection: close\r\n\r\n<<<not xml at all>>>\x00\x01\x02\x03\x04",
            );
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").display().to_string();
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = Server::start_role_in_env(
        "origin",
        dir,
        &[
            "--rtmp",
            "127.0.0.1:0",
            "--data",
            &data,
            "--record",
            "--reconnect-grace",
            "1",
            "--s3",
            "s3://recordings/x",
            "--s3-endpoint",
            &endpoint,
            "--s3-path-style",
            "--s3-timeout",
            "1",
            "--s3-retry-max",
            "1",
            "--s3-multipart-bytes",
            "100000",
            "--s3-part-bytes",
            "65536",
        ],
        &env(),
    );
    let mut p = publish(&server.rtmp_url("cam"), 6, "320x240");
    assert_eq!(p.wait_exit(Duration::from_secs(60)), Some(true));
    let rec = wait_one(&server, "cam", Duration::from_secs(30), "finished", |r| {
        r["state"] == "finished"
    });
    let until = Instant::now() + Duration::from_secs(30);
    while served.load(std::sync::atomic::Ordering::SeqCst) < 6 {
        assert!(
            Instant::now() < until,
            "the uploader stopped trying:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The recording is kept and plays from the disk; the server answers as ever.
    let rec_now = recordings_of(&server, "cam");
    assert_ne!(rec_now[0]["s3"], "uploaded", "{rec_now:?}");
    assert_eq!(rec_now[0]["local"], true);
    assert_eq!(get(&server.url("/healthz")).0, 200);
    let d = probe_duration(&server.url(rec["url"].as_str().expect("url")));
    assert!(d > 0.0);
    assert!(server.log_text().contains("S3 request failed: retrying"));
}

/// The test S3 server's supervisor (`S3rver::revive_if_dead`) brings a dead one back
/// on its port with what it stored; a live one is left alone.
#[test]
fn a_dead_test_s3_comes_back_on_its_port_with_its_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s3 = S3rver::start(&dir.path().join("s3"));
    assert!(!s3.revive_if_dead(), "alive: left alone");
    let key = "revive/a.txt";
    let put = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["--data-binary", "kept"])
        .arg(format!("{}/{}/{key}", s3.endpoint(), s3rver::BUCKET))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&put.stdout), "200");
    let port = s3.port;
    let ok = Command::new("kill")
        .args(["-KILL", &s3.pid().to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok);
    let until = Instant::now() + Duration::from_secs(10);
    while !s3.revive_if_dead() {
        assert!(Instant::now() < until, "never seen dead");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s3.port, port);
    assert_eq!(s3.object(key), b"kept");
}
