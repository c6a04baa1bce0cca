//! Origin HA: one encoder publishes the same stream to two origins (ffmpeg's tee
//! muxer, as an encoder with a backup ingest URL does); an edge lists both with
//! `--origin` in failover order; ffmpeg plays through the edge while the primary
//! origin is killed. Checks that the origins name and cut segments alike, that playback
//! goes on through the backup, and prints the stall it caused.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// ffmpeg publishing one encode to several RTMP URLs.
fn publish_tee(urls: &[String], secs: u32) -> Proc {
    require("ffmpeg");
    let tee: Vec<String> = urls
        .iter()
        .map(|u| format!("[f=flv:onfail=ignore]{u}"))
        .collect();
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string(), "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "60",
        ])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-flags",
            "+global_header",
        ])
        .args(["-f", "tee", &tee.join("|")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc {
        child,
        name: "ffmpeg tee publish".into(),
    }
}

fn segments(playlist: &str) -> BTreeSet<String> {
    playlist
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("seg"))
        .map(str::to_string)
        .collect()
}

#[test]
fn edge_fails_over_between_two_origins_publishing_the_same_stream() {
    let primary = Server::start("origin", &[]);
    let backup = Server::start("origin", &[]);
    let _enc = publish_tee(&[primary.rtmp_url("cam"), backup.rtmp_url("cam")], 120);
    let media = "/live/cam/src/index.m3u8";
    wait_for_200(&primary.url(media), Duration::from_secs(30));
    wait_for_200(&backup.url(media), Duration::from_secs(30));
    // Wait for a few segments on both, then compare names and bytes.
    let until = Instant::now() + Duration::from_secs(30);
    let common_segs = loop {
        let a = segments(&get_text(&primary.url(media)).1);
        let b = segments(&get_text(&backup.url(media)).1);
        let both: Vec<String> = a.intersection(&b).cloned().collect();
        if both.len() >= 2 {
            break both;
        }
        assert!(
            Instant::now() < until,
            "the origins never listed the same segment names:\n{a:?}\n{b:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let seg = &common_segs[0];
    let (sa, ba) = get(&primary.url(&format!("/live/cam/src/{seg}")));
    let (sb, bb) = get(&backup.url(&format!("/live/cam/src/{seg}")));
    assert_eq!((sa, sb), (200, 200));
    let same_bytes = sha256_hex(&ba) == sha256_hex(&bb);
    eprintln!(
        "FLEET origin HA: {} common segment names; {seg} identical bytes on both origins: {same_bytes} ({} / {} bytes)",
        common_segs.len(),
        ba.len(),
        bb.len()
    );

    let edge = Server::start_edge(&["--origin", &primary.url(""), "--origin", &backup.url("")]);
    // ffmpeg plays through the edge and reports its position twice a second.
    require("ffmpeg");
    let mut player = Proc {
        child: Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostats"])
            .args(["-i", &edge.url(media)])
            .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
            .args(["-progress", "pipe:1", "-stats_period", "0.25"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ffmpeg player"),
        name: "ffmpeg player".into(),
    };
    let out = player.child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<(Instant, f64)>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(us) = line.strip_prefix("out_time_us=") {
                if let Ok(us) = us.trim().parse::<i64>() {
                    if tx.send((Instant::now(), us as f64 / 1e6)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    // Samples of (wall clock, media position).
    let mut samples: Vec<(Instant, f64)> = Vec::new();
    let collect = |samples: &mut Vec<(Instant, f64)>, until: Instant| {
        while Instant::now() < until {
            if let Ok(s) = rx.recv_timeout(Duration::from_millis(200)) {
                samples.push(s);
            }
        }
    };
    collect(&mut samples, Instant::now() + Duration::from_secs(12));
    let before = samples.iter().rev().find(|s| s.1 > 0.0).copied();
    let before = before.expect("ffmpeg never advanced through the edge");
    let killed_at = Instant::now();
    drop(primary);
    collect(&mut samples, Instant::now() + Duration::from_secs(20));
    let last = *samples.last().expect("samples");
    let played_after = last.1 - before.1;
    assert!(
        played_after > 10.0,
        "playback did not continue through the backup origin: {played_after:.1} s of media in 20 s"
    );
    // The longest wall-clock stretch in which the position did not move. ffmpeg reads
    // a live stream a segment at a time, so even a healthy stream shows pauses of about
    // one segment: compare the stretch after the kill with the one before.
    let longest_stall = |after: bool| {
        let mut worst = 0.0f64;
        let mut prev: Option<(Instant, f64)> = None;
        for s in samples
            .iter()
            .filter(|s| (s.0 >= killed_at) == after && s.1 > 0.0)
        {
            match prev {
                Some(p) if s.1 > p.1 => prev = Some(*s),
                Some(p) => worst = worst.max(s.0.duration_since(p.0).as_secs_f64()),
                None => prev = Some(*s),
            }
        }
        worst
    };
    let (stall_before, stall) = (longest_stall(false), longest_stall(true));
    // Lag growth: wall time minus media time, after versus before the kill.
    let lag = |s: (Instant, f64)| s.0.duration_since(before.0).as_secs_f64() - (s.1 - before.1);
    eprintln!(
        "FLEET origin failover: longest pause {stall:.2} s after the kill (before: {stall_before:.2} s); player fell {:.2} s further behind; {played_after:.1} s of media in the 20 s after the kill",
        lag(last)
    );
    drop(player);
}
