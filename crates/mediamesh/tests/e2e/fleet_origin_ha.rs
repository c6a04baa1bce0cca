//! Origin HA with real processes on loopback: a `redis-server`, two `mediamesh origin`s
//! sharing one signing key and the fleet's stream directory, an edge listing both with
//! `--origin` in failover order, ffmpeg publishers and `mediamesh peer` viewers whose
//! play clocks count stalls exactly.
//!
//! 1. The same publish reaches both origins, the second one 6 s later: both name, cut
//!    and time segments alike (the late one adopts the first one's numbering grid from
//!    the directory); the primary is killed while viewers play through the edge, and
//!    no viewer stalls longer than one segment.
//! 2. The encoder moves from the primary to the backup (a new timeline): the backup
//!    continues the numbering with one EXT-X-DISCONTINUITY, the primary sends askers
//!    there (302 from the stream directory, followed by the edge), viewers go on.
//!
//! Needs ffmpeg and redis-server (`bash .ci/run`).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::redis::Redis;
use crate::common::*;

/// Starts `mediamesh origin` in the fleet with `key` (64 hex) as its signing key:
/// origins of one stream must share the key for peers to verify segments from either.
fn origin(redis: &Redis, key: &str) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(data.join("origin-ed25519.key"), key).expect("key file");
    Server::start_role_in(
        "origin",
        dir,
        &[
            "--rtmp",
            "127.0.0.1:0",
            "--data",
            &data.display().to_string(),
            "--registry",
            &redis.url(),
            "--region",
            "eu",
        ],
    )
}

fn shared_key() -> String {
    let seed = format!("ha-test-{}-{:?}", std::process::id(), Instant::now());
    sha256_hex(seed.as_bytes())
}

/// ffmpeg encodes `secs` of a test picture and tone (keyframe every 2 s) to an FLV file.
fn encode_clip(dir: &std::path::Path, secs: u32) -> std::path::PathBuf {
    require("ffmpeg");
    let out = dir.join("clip.flv");
    let o = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", &secs.to_string(), "-map", "0:v", "-map", "1:a"])
            .args(["-c:v", "libx264", "-preset", "veryfast", "-g", "60"])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv"])
            .arg(&out),
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "encoding the clip failed");
    out
}

/// The rest of `clip` from the keyframe at or before `from_secs`, keeping the clip's
/// timestamps; and that keyframe's timestamp in ms.
fn cut_clip(clip: &std::path::Path, from_secs: f64) -> (std::path::PathBuf, u64) {
    let out = clip.with_file_name("clip-late.flv");
    let o = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-ss", &format!("{from_secs}"), "-copyts", "-i"])
            .arg(clip)
            .args(["-c", "copy", "-f", "flv"])
            .arg(&out),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "cutting the clip failed");
    let o = run(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-read_intervals",
                "%+#1",
            ])
            .args(["-show_entries", "packet=dts_time", "-of", "csv=p=0"])
            .arg(&out),
        Duration::from_secs(30),
    );
    let first: f64 = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().trim_end_matches(',').parse().ok())
        .expect("first video timestamp of the cut clip");
    (out, (first * 1000.0).round() as u64)
}

/// ffmpeg sends `clip` in real time to `url` with the clip's own timestamps.
fn send_clip(clip: &std::path::Path, url: &str) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re", "-copyts"]);
    let child = cmd
        .arg("-i")
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc {
        child,
        name: "ffmpeg send".into(),
    }
}

/// (MSN, duration, discontinuity before it) of the complete segments of a playlist,
/// and its EXT-X-DISCONTINUITY-SEQUENCE.
fn listed(playlist: &str) -> (Vec<(u64, String, bool)>, u64) {
    let mut out = Vec::new();
    let mut extinf = String::new();
    let mut disc = false;
    let mut dseq = 0;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            dseq = d.trim().parse().unwrap_or(0);
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            extinf = d.trim_end_matches(',').to_string();
        } else if let Some(n) = line
            .strip_prefix("seg")
            .and_then(|r| r.strip_suffix(".m4s"))
        {
            if let Ok(msn) = n.parse() {
                out.push((msn, std::mem::take(&mut extinf), std::mem::take(&mut disc)));
            }
        }
    }
    (out, dseq)
}

/// `tfdt` of the first track fragment in an fMP4 fragment.
fn first_tfdt(b: &[u8]) -> Option<u64> {
    use media::bmff::{u32_at, u64_at, Boxes};
    let tfdt = Boxes::new(b)
        .find_path(&[b"moof", b"traf", b"tfdt"])
        .ok()??;
    let p = tfdt.payload();
    match p.first()? {
        1 => u64_at(p, 4),
        _ => u32_at(p, 4).map(u64::from),
    }
}

/// Starts `mediamesh peer` viewers of `url` over HTTP only; returns the process and
/// where its stats go.
fn viewers(url: &str, count: u32, secs: u32, dir: &std::path::Path) -> (Proc, std::path::PathBuf) {
    static VIEWERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = VIEWERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stats = dir.join(format!("peers-{n}.json"));
    let child = Command::new(env!("CARGO_BIN_EXE_mediamesh"))
        .arg("peer")
        .arg(url)
        .args(["--no-p2p", "--count", &count.to_string()])
        .args(["--duration", &secs.to_string()])
        .args(["--stats", &stats.display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mediamesh peer");
    (
        Proc {
            child,
            name: "mediamesh peer".into(),
        },
        stats,
    )
}

fn finish(mut p: Proc, stats: &std::path::Path, limit: Duration) -> serde_json::Value {
    assert_eq!(
        p.wait_exit(limit),
        Some(true),
        "mediamesh peer did not finish cleanly"
    );
    let text = std::fs::read_to_string(stats).expect("stats file");
    serde_json::from_str(&text).expect("stats JSON")
}

/// Waits until `until` holds for the text at `url`, polling; returns the text.
fn wait_text(url: &str, limit: Duration, until: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (s, t) = get_text(url);
        if s == 200 && until(&t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: condition not met within {limit:?}; last {s}:\n{t}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn two_origins_number_alike_and_viewers_do_not_stall_when_the_primary_dies() {
    let redis = Redis::start();
    let key = shared_key();
    let primary = origin(&redis, &key);
    let backup = origin(&redis, &key);
    let clip = encode_clip(primary.dir.path(), 150);
    let media = "/live/cam/src/index.m3u8";

    // The primary gets the publish from the start; the backup joins about 6 s later
    // with the same timestamps (as a second ingest of one encoder would).
    let (late, late_ms) = cut_clip(&clip, 6.5);
    let t0 = Instant::now();
    let _a = send_clip(&clip, &primary.rtmp_url("cam"));
    std::thread::sleep(Duration::from_millis(late_ms).saturating_sub(t0.elapsed()));
    let _b = send_clip(&late, &backup.rtmp_url("cam"));
    wait_for_200(&primary.url(media), Duration::from_secs(30));
    wait_for_200(&backup.url(media), Duration::from_secs(30));

    // Both list the same segment names with the same durations once the backup has
    // a few segments; compare times and bytes of what both hold.
    let mut common = Vec::new();
    let until = Instant::now() + Duration::from_secs(40);
    while common.len() < 4 {
        let (a, _) = listed(&get_text(&primary.url(media)).1);
        let (b, _) = listed(&get_text(&backup.url(media)).1);
        let a: BTreeMap<u64, String> = a.into_iter().map(|(m, d, _)| (m, d)).collect();
        // The backup's first segment may hold less audio (it joined mid-stream).
        common = b
            .iter()
            .skip(1)
            .filter(|(m, d, _)| a.get(m) == Some(d))
            .map(|(m, _, _)| *m)
            .collect();
        let mismatched: Vec<_> = b
            .iter()
            .skip(1)
            .filter(|(m, d, _)| a.get(m).is_some_and(|ad| ad != d))
            .collect();
        assert!(
            mismatched.is_empty(),
            "same names, other durations: {mismatched:?}"
        );
        assert!(
            Instant::now() < until,
            "the origins never listed the same segments:\nprimary {a:?}\nbackup {b:?}\n{}",
            backup.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        backup.log_text().contains("adopted from another origin"),
        "the backup did not adopt the primary's numbering:\n{}",
        backup.log_text()
    );
    let mut identical = 0;
    for m in &common {
        let (sa, ba) = get(&primary.url(&format!("/live/cam/src/seg{m}.m4s")));
        let (sb, bb) = get(&backup.url(&format!("/live/cam/src/seg{m}.m4s")));
        assert_eq!((sa, sb), (200, 200));
        assert_eq!(first_tfdt(&ba), first_tfdt(&bb), "seg{m}: same tfdt");
        if ba == bb {
            identical += 1;
        }
    }
    eprintln!(
        "FLEET origin HA: backup joined {late_ms} ms late; {} common segments {:?}: same names, durations and tfdt; {identical} byte-identical",
        common.len(),
        common
    );
    assert!(
        identical >= common.len() - 1,
        "segments differ between origins"
    );

    // Viewers play through an edge that lists both origins; the primary dies.
    let edge = Server::start_edge(&["--origin", &primary.url(""), "--origin", &backup.url("")]);
    let url = edge.url("/live/cam/index.m3u8");
    wait_for_200(&url, Duration::from_secs(20));
    let (peers, stats) = viewers(&url, 3, 45, edge.dir.path());
    std::thread::sleep(Duration::from_secs(18));
    let (_, _) = primary.kill();
    let killed_at = Instant::now();
    let s = finish(peers, &stats, Duration::from_secs(120));
    let total = &s["total"];
    eprintln!(
        "FLEET origin failover (primary killed {:.0} s before the viewers ended): total stalls {} stall seconds {:.2}; per viewer {}",
        45.0 - 18.0,
        total["stalls"],
        total["stall_seconds"].as_f64().unwrap_or(-1.0),
        s["peers"]
            .as_array()
            .map(|p| p
                .iter()
                .map(|v| format!(
                    "[stalls {} stall_s {:.2} watched_s {:.1}]",
                    v["stalls"],
                    v["stall_seconds"].as_f64().unwrap_or(-1.0),
                    v["watched_seconds"].as_f64().unwrap_or(-1.0)
                ))
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default()
    );
    let _ = killed_at;
    let peers = s["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 3);
    for v in peers {
        assert!(v["error"].is_null(), "viewer failed: {v}");
        // Each viewer's whole stall time is at most one segment, so no single stall
        // was longer: the failover cost less than a segment.
        let stalled = v["stall_seconds"].as_f64().unwrap_or(f64::MAX);
        assert!(
            stalled <= 2.0,
            "a viewer stalled {stalled:.2} s (> one 2 s segment): {v}"
        );
        let watched = v["watched_seconds"].as_f64().unwrap_or(0.0);
        assert!(watched > 30.0, "a viewer played only {watched:.1} s: {v}");
    }
}

#[test]
fn when_the_encoder_moves_to_the_backup_numbering_continues_after_one_discontinuity() {
    let redis = Redis::start();
    let key = shared_key();
    let primary = origin(&redis, &key);
    let backup = origin(&redis, &key);
    let media = "/live/cam/src/index.m3u8";
    let first = publish(&primary.rtmp_url("cam"), 300, "320x180");
    wait_for_200(&primary.url(media), Duration::from_secs(30));
    let edge = Server::start_edge(&["--origin", &primary.url(""), "--origin", &backup.url("")]);
    let url = edge.url("/live/cam/index.m3u8");
    wait_for_200(&url, Duration::from_secs(20));
    let (peers, stats) = viewers(&url, 3, 45, edge.dir.path());
    std::thread::sleep(Duration::from_secs(14));

    // The encoder loses the primary and reconnects to the backup: a new ffmpeg, its
    // clock back at 0.
    drop(first);
    // Reconnecting takes an encoder a few seconds; by then the primary has told the
    // directory (heartbeat every second) that its publisher left.
    std::thread::sleep(Duration::from_millis(3000));
    let (before, dseq_before) = listed(&get_text(&primary.url(media)).1);
    let last = before.last().map(|s| s.0).expect("primary listed segments");
    let cc_before = dseq_before + before.iter().filter(|s| s.2).count() as u64;
    let _second = publish(&backup.rtmp_url("cam"), 300, "320x180");
    let b = wait_text(&backup.url(media), Duration::from_secs(30), |t| {
        !listed(t).0.is_empty()
    });
    let (after, dseq_after) = listed(&b);
    eprintln!(
        "FLEET publisher switch: primary's last segment {last} (cc {cc_before}); backup starts at {} discontinuity {} with EXT-X-DISCONTINUITY-SEQUENCE {dseq_after}",
        after[0].0, after[0].2
    );
    assert_eq!(
        after[0].0,
        last + 1,
        "numbering continues without a gap or a reused name"
    );
    assert!(
        after[0].2,
        "EXT-X-DISCONTINUITY where the timeline changes:\n{b}"
    );
    assert_eq!(dseq_after, cc_before, "discontinuity sequence continues");
    assert!(
        after.iter().skip(1).all(|s| !s.2),
        "only one discontinuity:\n{b}"
    );

    // The primary, whose copy is interrupted, sends askers to the backup (the stream
    // directory), but not a request that already followed two such redirects.
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(10);
    let location = loop {
        let r = client.get(primary.url(media)).send().expect("GET primary");
        if r.status().as_u16() == 302 {
            assert_eq!(r.headers()["mediamesh-redirect"], "directory");
            break r.headers()["location"]
                .to_str()
                .expect("location")
                .to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the primary never redirected: {}",
            r.status()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(location, backup.url(media));
    let r = client
        .get(primary.url(media))
        .header("mediamesh-hops", "2")
        .send()
        .expect("GET primary");
    assert_ne!(r.status().as_u16(), 302, "hop limit");
    // An old segment the primary still holds is served by the primary itself.
    let (s, _) = get(&primary.url(&format!("/live/cam/src/seg{last}.m4s")));
    assert_eq!(s, 200);

    // Through the edge: the playlist goes on past the switch with the discontinuity.
    let e = wait_text(&edge.url(media), Duration::from_secs(20), |t| {
        listed(t).0.iter().any(|s| s.0 == last + 2)
    });
    let (through_edge, _) = listed(&e);
    assert!(through_edge.iter().any(|s| s.0 == last + 1 && s.2), "{e}");

    let s = finish(peers, &stats, Duration::from_secs(120));
    eprintln!(
        "FLEET publisher switch through the edge: total stalls {} stall seconds {:.2}",
        s["total"]["stalls"],
        s["total"]["stall_seconds"].as_f64().unwrap_or(-1.0)
    );
    for v in s["peers"].as_array().expect("peers") {
        assert!(v["error"].is_null(), "viewer failed: {v}");
        // They played on after the switch (14 s before it at most).
        let watched = v["watched_seconds"].as_f64().unwrap_or(0.0);
        assert!(
            watched > 22.0,
            "a viewer did not play on after the switch: {v}"
        );
    }
}
