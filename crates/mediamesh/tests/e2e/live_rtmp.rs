//! End to end, real processes: ffmpeg publishes over RTMP to `mediamesh origin`,
//! ffprobe and ffmpeg play the result over HLS and DASH, and the LL-HLS rules
//! (blocking reload, preload hints, delta updates) and signed digests are checked on
//! the live server.

use std::time::{Duration, Instant};

use crate::common::*;
use media::hls::{check_media_playlist, MediaPlaylist};

fn media_playlist(server: &Server, stream: &str, query: &str) -> (u16, String) {
    get_text(&server.url(&format!("/live/{stream}/src/index.m3u8{query}")))
}

/// Waits (at most 30 s) until the first `SegmentTimeline` of the MPD at `path`
/// lists at least `segments` segments.
fn wait_for_timeline(server: &Server, path: &str, segments: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, mpd) = get_text(&server.url(path));
        let listed = timeline_segments(&mpd);
        if status == 200 && listed >= segments {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the MPD timeline never reached {segments} segments (last {listed}): {mpd}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How many segments the first `SegmentTimeline` in an MPD lists (`r` counted).
fn timeline_segments(mpd: &str) -> usize {
    let Some(start) = mpd.find("<SegmentTimeline>") else {
        return 0;
    };
    let end = mpd[start..]
        .find("</SegmentTimeline>")
        .map_or(mpd.len(), |e| start + e);
    mpd[start..end]
        .split("<S ")
        .skip(1)
        .map(|s| {
            let repeat = s
                .split_once("r=\"")
                .and_then(|(_, rest)| rest.split('"').next())
                .and_then(|r| r.parse::<usize>().ok())
                .unwrap_or(0);
            1 + repeat
        })
        .sum()
}

/// The (msn, part) that comes next after what a parsed playlist lists.
fn live_edge(pl: &MediaPlaylist) -> (u64, usize) {
    let complete = pl.media_sequence + pl.skipped_segments + pl.segments.len() as u64;
    (complete, pl.trailing_parts.len())
}

#[test]
fn rtmp_publish_plays_over_hls_and_dash_with_ll_hls_rules() {
    require("ffmpeg");
    let server = Server::start("origin", &["--reconnect-grace", "2"]);
    let mut publisher = publish(&server.rtmp_url("cam"), 60, "640x360");
    let started = Instant::now();
    let master = wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(15));
    eprintln!("playlist after {:?}", started.elapsed());
    assert!(master.contains("CODECS=\"avc1."), "{master}");
    assert!(master.contains("mp4a.40.2"), "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");

    // ffprobe sees H.264 and AAC through HLS and DASH.
    let codecs = probe_codecs(&server.url("/live/cam/index.m3u8"));
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );
    let codecs = probe_codecs(&server.url("/live/cam/index.mpd"));
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{codecs:?}"
    );

    // ffmpeg records 6 s cleanly, from HLS and from DASH. ffmpeg 5.1's DASH reader
    // starts 60 s before the end of a live `SegmentTimeline` and, when it has to
    // reload the MPD, confuses a segment's index with its `$Number$` unless
    // `startNumber` is 0 (ours are clock-based), which sends it back to the first
    // segment. So the DASH recording waits until the timeline already holds more
    // than the 6 s it records; dash.js and Shaka play young streams in the
    // browser tests.
    wait_for_timeline(&server, "/live/cam/index.mpd", 5);
    for (name, path) in [
        ("hls", "/live/cam/index.m3u8"),
        ("dash", "/live/cam/index.mpd"),
    ] {
        let out = server.dir.path().join(format!("rec-{name}.mp4"));
        let attempt = || {
            let warnings = record(&server.url(path), 6, &out);
            let d = probe_duration(&out.display().to_string());
            assert!(
                (5.5..=6.6).contains(&d),
                "{name}: recorded {d} s; ffmpeg said: {warnings}"
            );
            let rec_codecs = probe_codecs(&out.display().to_string());
            assert_eq!(rec_codecs.len(), 2, "{name}: {rec_codecs:?}");
            assert!(
                !warnings.contains("Non-monotonous") && !warnings.contains("out of order"),
                "{name}: ffmpeg warned: {}",
                warnings.chars().take(2000).collect::<String>()
            );
        };
        if name == "dash" {
            // ffmpeg 5.1's DASH reader still jumps back to the first segment now and
            // then after an MPD reload (see above), whatever the timeline holds; one
            // more try, and a second jump fails the test.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)).is_err() {
                eprintln!("dash: ffmpeg's DASH reader went back; trying once more");
                attempt();
            }
        } else {
            attempt();
        }
    }

    // The media playlist obeys the spec rules.
    let (status, text) = media_playlist(&server, "cam", "");
    assert_eq!(status, 200);
    let pl = MediaPlaylist::parse(&text).expect("our playlist parses");
    let violations = check_media_playlist(&pl);
    assert!(violations.is_empty(), "{violations:#?}\n{text}");
    assert!(!pl.preload_hints.is_empty());

    // Blocking reload: the next part is answered once it exists.
    let (msn, parts) = live_edge(&pl);
    let (status, text) = media_playlist(
        &server,
        "cam",
        &format!("?_HLS_msn={msn}&_HLS_part={parts}"),
    );
    assert_eq!(status, 200, "{text}");
    let next = MediaPlaylist::parse(&text).expect("parses");
    let (msn2, parts2) = live_edge(&next);
    assert!(
        (msn2, parts2) > (msn, parts),
        "blocking reload returned {msn2}.{parts2} for {msn}.{parts}"
    );
    // …and a whole next segment.
    let (status, text) = media_playlist(&server, "cam", &format!("?_HLS_msn={}", msn + 1));
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&format!("seg{}.m4s", msn + 1)), "{text}");
    // Out-of-range and malformed requests.
    let (status, _) = media_playlist(&server, "cam", &format!("?_HLS_msn={}", msn + 10));
    assert_eq!(status, 400);
    let (status, _) = media_playlist(&server, "cam", "?_HLS_part=1");
    assert_eq!(status, 400);
    let (status, _) = media_playlist(&server, "cam", "?_HLS_msn=abc");
    assert_eq!(status, 400);
    let (status, _) = media_playlist(&server, "cam", &format!("?_HLS_msn={msn}&_HLS_part=40"));
    assert_eq!(status, 400);

    // A preload-hinted part is held until it is complete, then served.
    let (_, text) = media_playlist(&server, "cam", "");
    let pl = MediaPlaylist::parse(&text).expect("parses");
    let hint = pl.preload_hints.first().expect("hint").uri.clone();
    let (status, body) = get(&server.url(&format!("/live/cam/src/{hint}")));
    assert_eq!(status, 200);
    assert!(body.len() > 100 && &body[4..8] == b"moof", "a CMAF chunk");

    // Signed digests verify, and the segment bytes match.
    let objects = verified_digests(&server, "/live/cam/src/digests.json");
    let seg = pl.segments.last().expect("segment").uri.clone();
    let (_, seg_bytes) = get(&server.url(&format!("/live/cam/src/{seg}")));
    assert_eq!(Some(&sha256_hex(&seg_bytes)), objects.get(&seg));
    let part = pl
        .segments
        .last()
        .and_then(|s| s.parts.first())
        .expect("part")
        .uri
        .clone();
    let (_, part_bytes) = get(&server.url(&format!("/live/cam/src/{part}")));
    assert_eq!(Some(&sha256_hex(&part_bytes)), objects.get(&part));

    // Delta updates once the window is longer than CAN-SKIP-UNTIL (12 s).
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = media_playlist(&server, "cam", "?_HLS_skip=YES");
        assert_eq!(status, 200);
        if text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
            let pl = MediaPlaylist::parse(&text).expect("delta parses");
            assert!(check_media_playlist(&pl).is_empty());
            break;
        }
        assert!(Instant::now() < until, "no delta update: {text}");
        std::thread::sleep(Duration::from_secs(1));
    }

    // A second publisher of the same name is refused.
    let mut second = publish(&server.rtmp_url("cam"), 10, "320x180");
    assert_eq!(
        second.wait_exit(Duration::from_secs(20)),
        Some(false),
        "duplicate publish must fail"
    );

    // API, metrics.
    let (_, api) = get_text(&server.url("/api/v1/streams"));
    let api: serde_json::Value = serde_json::from_str(&api).expect("json");
    let cam = api["streams"]
        .as_array()
        .expect("list")
        .iter()
        .find(|s| s["name"] == "cam")
        .expect("cam listed")
        .clone();
    assert_eq!(cam["state"], "live");
    assert!(cam["renditions"][0]["codecs"]
        .as_str()
        .unwrap_or("")
        .contains("avc1"));
    assert!(cam["renditions"][0]["bitrate"].as_u64().unwrap_or(0) > 0);
    let (_, metrics) = get_text(&server.url("/metrics"));
    for name in [
        "mediamesh_ingest_bytes_total",
        "mediamesh_segments_total",
        "mediamesh_http_requests_total",
        "mediamesh_live_streams",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }

    // The publisher goes away: after the grace period the playlist ends.
    drop(publisher.child.kill());
    let _ = publisher.child.wait();
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, text) = media_playlist(&server, "cam", "");
        if text.contains("#EXT-X-ENDLIST") {
            assert!(!text.contains("EXT-X-PRELOAD-HINT"));
            break;
        }
        assert!(
            Instant::now() < until,
            "no ENDLIST after the publisher left: {text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn publisher_reconnecting_within_grace_continues_the_stream() {
    require("ffmpeg");
    let server = Server::start("origin", &["--reconnect-grace", "8"]);
    let mut first = publish(&server.rtmp_url("re"), 7, "320x180");
    wait_for_200(&server.url("/live/re/index.m3u8"), Duration::from_secs(15));
    assert_eq!(first.wait_exit(Duration::from_secs(30)), Some(true));
    let (_, before) = media_playlist(&server, "re", "");
    let before = MediaPlaylist::parse(&before).expect("parses");
    let _second = publish(&server.rtmp_url("re"), 30, "320x180");
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = media_playlist(&server, "re", "");
        let pl = MediaPlaylist::parse(&text).expect("parses");
        assert!(
            !pl.ended,
            "stream ended although the publisher came back:\n{text}"
        );
        if pl.segments.iter().any(|s| s.discontinuity)
            && pl.segments.len() > before.segments.len() + 1
        {
            assert_eq!(
                pl.media_sequence, before.media_sequence,
                "same stream, numbering continues"
            );
            assert!(check_media_playlist(&pl).is_empty());
            break;
        }
        assert!(Instant::now() < until, "stream did not continue:\n{text}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn publish_keys_are_enforced() {
    require("ffmpeg");
    let server = Server::start("origin", &["--publish-key", "cam=s3cret"]);
    let mut wrong = publish(
        &format!("{}?key=nope", server.rtmp_url("cam")),
        5,
        "320x180",
    );
    assert_eq!(
        wrong.wait_exit(Duration::from_secs(20)),
        Some(false),
        "wrong key must be refused"
    );
    let mut none = publish(&server.rtmp_url("cam"), 5, "320x180");
    assert_eq!(
        none.wait_exit(Duration::from_secs(20)),
        Some(false),
        "missing key must be refused"
    );
    let _right = publish(
        &format!("{}?key=s3cret", server.rtmp_url("cam")),
        20,
        "320x180",
    );
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(15));
    assert!(
        !server.log_text().contains("s3cret"),
        "secrets never appear in logs"
    );
}
