//! End to end for the edge ABR ladder: a real origin publishing only `src` (the
//! built-in 640x360 demo) and a real edge with `--ladder` rungs. The edge's
//! multivariant lists the rungs (never one taller than the source), a rung's playlist
//! is regular HLS with the source's sequence numbers, a rung segment ffprobes at the
//! rung's size and continues the previous one's timeline, concurrent first requests
//! run one transcode, ffmpeg plays a rung with advancing timestamps, a failing
//! transcoder answers 502 without caching, and hls.js in Chromium plays a rung (that
//! edge reads its ladder from a TOML file).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// A rung whose output is 426x240 from the 640x360 demo.
const R240: &str = "240p=426x240@300";
const R144: &str = "144p=256x144@120";
/// Taller than the source: never offered.
const R480: &str = "480p=854x480@1200";

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name_and_labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start_pair(extra_edge: &[&str]) -> (Server, Server) {
    require("ffmpeg");
    let origin = Server::start("origin", &["--demo"]);
    let upstream = origin.url("");
    let mut args = vec!["--origin", upstream.as_str()];
    args.extend_from_slice(extra_edge);
    let edge = Server::start_edge(&args);
    wait_for_200(
        &origin.url("/live/demo/src/index.m3u8"),
        Duration::from_secs(20),
    );
    (origin, edge)
}

/// Segment names listed in a playlist.
fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| l.starts_with("seg"))
        .map(str::to_string)
        .collect()
}

/// Waits until the rung playlist lists at least `n` segments.
fn rung_segments(edge: &Server, rung: &str, n: usize) -> (String, Vec<String>) {
    let url = edge.url(&format!("/live/demo/{rung}/index.m3u8"));
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = get_text(&url);
        let segs = segments(&text);
        if status == 200 && segs.len() >= n {
            return (text, segs);
        }
        assert!(
            std::time::Instant::now() < until,
            "{url}: fewer than {n} segments ({status}: {text})"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn ffprobe(path: &Path, entries: &str) -> String {
    let out = run(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
            .arg(path),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "ffprobe {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn edge_ladder_rungs_are_listed_transcoded_and_play_in_ffmpeg() {
    let (origin, edge) = start_pair(&["--ladder", R240, "--ladder", R144, "--ladder", R480]);

    // The multivariant: source plus the rungs at or below its height, CODECS/RESOLUTION.
    let multi = wait_for_200(&edge.url("/live/demo/index.m3u8"), Duration::from_secs(20));
    let pl = media::hls::MultivariantPlaylist::parse(&multi).expect("multivariant");
    let uris: Vec<&str> = pl.variants.iter().map(|v| v.uri.as_str()).collect();
    assert_eq!(
        uris,
        ["src/index.m3u8", "240p/index.m3u8", "144p/index.m3u8"],
        "{multi}"
    );
    assert_eq!(pl.variants[1].resolution, Some((426, 240)));
    assert_eq!(pl.variants[2].resolution, Some((256, 144)));
    let (s, body) = get_text(&edge.url("/live/demo/480p/index.m3u8"));
    assert_eq!(
        s, 404,
        "a rung taller than the source is not offered: {body}"
    );
    // The origin itself still lists only src.
    let (_, at_origin) = get_text(&origin.url("/live/demo/index.m3u8"));
    assert!(!at_origin.contains("240p"));

    // A rung playlist: regular HLS with the source's segments.
    let (rung_text, rung_segs) = rung_segments(&edge, "240p", 3);
    for tag in [
        "EXT-X-PART",
        "PRELOAD-HINT",
        "CAN-BLOCK-RELOAD",
        "RENDITION-REPORT",
    ] {
        assert!(
            !rung_text.contains(tag),
            "{tag} in a rung playlist:\n{rung_text}"
        );
    }
    let rung_pl = media::hls::MediaPlaylist::parse(&rung_text).expect("rung playlist");
    let (_, src_text) = get_text(&edge.url("/live/demo/src/index.m3u8"));
    let src_pl = media::hls::MediaPlaylist::parse(&src_text).expect("src playlist");
    assert_eq!(rung_pl.map_uri, src_pl.map_uri);
    let src_segs = segments(&src_text);
    let shared = rung_segs.iter().filter(|s| src_segs.contains(s)).count();
    assert!(
        shared + 2 >= rung_segs.len() && shared > 0,
        "rung segments are the source's:\n{rung_text}\n{src_text}"
    );

    // Two consecutive rung segments: the rung's size, one continuous timeline.
    let map = rung_pl.map_uri.clone().expect("map");
    let (s, init) = get(&edge.url(&format!("/live/demo/240p/{map}")));
    assert_eq!(s, 200);
    let n = rung_segs.len();
    let (a, b) = (&rung_segs[n - 3], &rung_segs[n - 2]);
    let (sa, seg_a) = get(&edge.url(&format!("/live/demo/240p/{a}")));
    let (sb, seg_b) = get(&edge.url(&format!("/live/demo/240p/{b}")));
    assert_eq!((sa, sb), (200, 200));
    assert_eq!(&seg_a[4..8], b"moof", "a media segment, not a whole file");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rung.mp4");
    std::fs::write(&file, [init.clone(), seg_a.clone(), seg_b].concat()).expect("write");
    let streams = ffprobe(&file, "stream=codec_name,width,height");
    assert!(streams.contains("h264,426,240"), "{streams}");
    assert!(streams.contains("aac"), "{streams}");
    // CODECS in the multivariant is what the init's avcC says.
    let avcc = edge::media::ladder::avc_config(&init)
        .expect("init parses")
        .expect("avcC");
    let codec = format!("avc1.{:02x}{:02x}{:02x}", avcc[1], avcc[2], avcc[3]);
    assert!(
        pl.variants[1]
            .codecs
            .as_deref()
            .unwrap_or("")
            .starts_with(&codec),
        "{codec} vs {:?}",
        pl.variants[1].codecs
    );
    let pts: Vec<f64> = ffprobe(&file, "packet=stream_index,pts_time")
        .lines()
        .filter_map(|l| l.strip_prefix("0,"))
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    assert!(
        pts.len() >= 100,
        "two segments of video: {} frames",
        pts.len()
    );
    let mut sorted = pts.clone();
    sorted.sort_by(f64::total_cmp);
    let biggest_step = sorted
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0f64, f64::max);
    assert!(
        biggest_step < 0.05,
        "a gap of {biggest_step} s between frames: the second segment does not continue the first"
    );
    // Source timeline kept (the demo's media time, not 0 for every segment).
    let src_init = get(&edge.url(&format!("/live/demo/src/{map}"))).1;
    let src_seg = get(&edge.url(&format!("/live/demo/src/{a}"))).1;
    let src_file = dir.path().join("src.mp4");
    std::fs::write(&src_file, [src_init, src_seg].concat()).expect("write");
    let src_start: f64 = ffprobe(&src_file, "stream=start_time")
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .fold(f64::MAX, f64::min);
    assert!(
        (sorted[0] - src_start).abs() < 0.2,
        "rung starts at {} but the source segment at {src_start}",
        sorted[0]
    );

    // Concurrent first requests for one new rung segment: one transcode.
    let (_, segs144) = rung_segments(&edge, "144p", 2);
    let target = segs144.last().expect("segment").clone();
    let before = metric(
        &get_text(&edge.url("/metrics")).1,
        "mediamesh_edge_ladder_transcodes_total{rung=\"144p\"}",
    );
    let url = edge.url(&format!("/live/demo/144p/{target}"));
    let bodies: Vec<(u16, Vec<u8>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| get(&url))).collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(bodies.iter().all(|(s, b)| *s == 200 && *b == bodies[0].1));
    let after = metric(
        &get_text(&edge.url("/metrics")).1,
        "mediamesh_edge_ladder_transcodes_total{rung=\"144p\"}",
    );
    assert_eq!(
        after - before,
        1.0,
        "8 concurrent first requests ran {} transcodes",
        after - before
    );
    // Later requests are cache hits.
    let (s, again) = get(&url);
    assert_eq!((s, again), (200, bodies[0].1.clone()));

    // ffmpeg plays the rung through the edge; timestamps advance.
    let out = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-i"])
            .arg(edge.url("/live/demo/240p/index.m3u8"))
            .args(["-t", "8", "-f", "framemd5", "-"]),
        Duration::from_secs(90),
    );
    assert!(
        out.status.success(),
        "ffmpeg could not play the rung: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let video_pts: Vec<i64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("0,"))
        .filter_map(|l| l.split(',').nth(2)?.trim().parse().ok())
        .collect();
    assert!(
        video_pts.len() >= 200,
        "8 s at 30 fps, got {} frames",
        video_pts.len()
    );
    assert!(
        video_pts.windows(2).all(|w| w[1] > w[0]),
        "timestamps do not advance"
    );
    let metrics = get_text(&edge.url("/metrics")).1;
    assert!(metric(&metrics, "mediamesh_edge_ladder_transcode_seconds_count") >= 3.0);
    assert_eq!(
        metric(&metrics, "mediamesh_edge_ladder_init_mismatch_total"),
        0.0
    );
}

#[test]
fn failed_transcodes_answer_502_and_are_not_cached() {
    let (_origin, edge) = start_pair(&["--ladder", R240, "--ladder-ffmpeg", "/bin/false"]);
    let (_, segs) = rung_segments(&edge, "240p", 1);
    let url = edge.url(&format!("/live/demo/240p/{}", segs[0]));
    let (s1, body) = get_text(&url);
    assert_eq!(s1, 502, "{body}");
    assert!(body.contains("ffmpeg"), "{body}");
    let (s2, _) = get_text(&url);
    assert_eq!(s2, 502);
    let metrics = get_text(&edge.url("/metrics")).1;
    assert_eq!(
        metric(
            &metrics,
            "mediamesh_edge_ladder_errors_total{reason=\"transcode\"}"
        ),
        2.0,
        "each request tried again (nothing cached)"
    );
    // The source still plays.
    assert_eq!(
        get(&edge.url(&format!("/live/demo/src/{}", segs[0]))).0,
        200
    );
}

#[test]
fn hls_js_plays_a_rung_in_chromium() {
    let _turn = browser_turn();
    let web = browser_ready();
    // The ladder from the config file this time (`[[ladder]]` tables).
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        "ladder_jobs = 1\n[[ladder]]\nname = \"240p\"\nwidth = 426\nheight = 240\nkbps = 300\n",
    )
    .expect("write config");
    let config = config.display().to_string();
    let (_origin, edge) = start_pair(&["--config", &config]);
    rung_segments(&edge, "240p", 2);
    let out = run(
        Command::new("node")
            .arg(web.join("tests/ladder.mjs"))
            .arg(edge.url(""))
            .arg("/live/demo/240p/index.m3u8")
            .arg("60"),
        Duration::from_secs(100),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "hls.js did not play the rung: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json line");
    assert_eq!(seen["ok"], true);
    assert_eq!(seen["width"], 426);
    assert_eq!(seen["height"], 240);
}
