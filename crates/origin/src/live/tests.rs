//! Spec rules checked on the playlists the live path really generates: the demo clip
//! is pushed through `Streams` → `Publisher` → packager → store, and the manifests are
//! checked with `media::hls::check_media_playlist` plus the rules below.

use std::time::Duration;

use media::hls::{check_media_playlist, MediaPlaylist};

use super::manifest;
use super::Streams;
use crate::config::{Limits, PackagingConfig};
use crate::ingest::demo::{Clip, DEMO_CLIP};

fn streams(part_target_ms: u64) -> Streams {
    Streams::new(
        PackagingConfig {
            part_target: Duration::from_millis(part_target_ms),
            reconnect_grace: Duration::from_millis(1),
            ..PackagingConfig::default()
        },
        Limits::default(),
        Default::default(),
        false,
    )
}

/// Publishes `loops` passes of the demo clip at once and returns the streams.
fn publish_demo(part_target_ms: u64, loops: u64) -> (Streams, super::Publisher) {
    let s = streams(part_target_ms);
    let clip = Clip::parse(DEMO_CLIP).expect("demo clip");
    let mut p = s.publish("demo", None).expect("publish");
    clip.configure(&mut p).expect("configure");
    for i in 0..loops {
        clip.feed_all(&mut p, i * clip.duration().as_millis() as u64)
            .expect("feed");
    }
    (s, p)
}

fn assert_clean(pl: &MediaPlaylist) {
    let v = check_media_playlist(pl);
    assert!(v.is_empty(), "violations: {v:#?}\n{}", pl.write());
}

fn check_rules(pl: &MediaPlaylist, part_target: f64) {
    assert_clean(pl);
    let td = pl.target_duration as f64;
    let first = pl.media_sequence + pl.skipped_segments;
    for (msn, seg) in (first..).zip(&pl.segments) {
        assert!(seg.duration.round() <= td, "segment longer than target");
        assert_eq!(
            seg.uri,
            manifest::segment_uri(msn),
            "media sequence continuity"
        );
        if let Some(first) = seg.parts.first() {
            assert!(first.independent, "segments start on a keyframe");
            let sum: f64 = seg.parts.iter().map(|p| p.duration).sum();
            assert!(
                (sum - seg.duration).abs() < 1e-6,
                "parts add up to the segment"
            );
        }
        for p in &seg.parts {
            assert!(
                p.duration <= part_target + 1e-9,
                "part {} > PART-TARGET",
                p.duration
            );
        }
    }
    let sc = pl.server_control.as_ref().expect("server control");
    assert!(sc.can_block_reload);
    assert!(sc.part_hold_back.unwrap_or(0.0) >= 3.0 * part_target - 1e-9);
    assert!(sc.hold_back.unwrap_or(0.0) >= 3.0 * td);
    assert!(sc.can_skip_until.unwrap_or(0.0) >= 6.0 * td);
    // Round trip through our own parser.
    assert_eq!(MediaPlaylist::parse(&pl.write()).as_ref(), Ok(pl));
}

#[test]
fn live_playlist_follows_the_spec_at_default_part_target() {
    let (s, _p) = publish_demo(500, 3);
    let stream = s.get("demo").expect("stream");
    let r = &stream.renditions[0];
    let pl = manifest::media_playlist(&stream, r, false);
    assert!(pl.segments.len() >= 13, "30 s of 2 s segments");
    assert_eq!(pl.part_inf, Some(0.5));
    assert_eq!(pl.target_duration, 2);
    check_rules(&pl, 0.5);
    assert!(!pl.preload_hints.is_empty());
    // Parts are listed only near the live edge.
    assert!(pl.segments[0].parts.is_empty());
    assert!(!pl.segments.last().expect("segments").parts.is_empty());
}

#[test]
fn small_part_targets_work() {
    let (s, _p) = publish_demo(200, 1);
    let stream = s.get("demo").expect("stream");
    let pl = manifest::media_playlist(&stream, &stream.renditions[0], false);
    check_rules(&pl, 0.2);
}

#[test]
fn delta_update_skips_old_segments_and_keeps_the_tail() {
    let (s, _p) = publish_demo(500, 3);
    let stream = s.get("demo").expect("stream");
    let r = &stream.renditions[0];
    let full = manifest::media_playlist(&stream, r, false);
    let delta = manifest::media_playlist(&stream, r, true);
    assert!(delta.skipped_segments > 0);
    assert_eq!(delta.version, 9);
    assert_eq!(delta.media_sequence, full.media_sequence);
    let kept = full.segments.len() - delta.skipped_segments as usize;
    assert_eq!(delta.segments, full.segments[full.segments.len() - kept..]);
    let remaining: f64 = delta.segments.iter().map(|s| s.duration).sum::<f64>()
        + delta.trailing_parts.iter().map(|p| p.duration).sum::<f64>();
    let can_skip_until = full
        .server_control
        .as_ref()
        .and_then(|c| c.can_skip_until)
        .expect("CAN-SKIP-UNTIL");
    assert!(
        remaining >= can_skip_until - 1e-6,
        "skip boundary respected"
    );
    check_rules(&delta, 0.5);
    assert!(delta.write().contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="));
}

#[test]
fn ended_stream_gets_endlist_and_no_hint() {
    let (s, p) = publish_demo(500, 1);
    drop(p);
    std::thread::sleep(Duration::from_millis(5));
    s.reap();
    let stream = s.get("demo").expect("stream");
    let pl = manifest::media_playlist(&stream, &stream.renditions[0], false);
    assert!(pl.ended);
    assert!(pl.preload_hints.is_empty());
    assert!(pl.trailing_parts.is_empty());
    assert!(pl.write().trim_end().ends_with("#EXT-X-ENDLIST"));
    check_rules(&pl, 0.5);
}

#[test]
fn reconnect_continues_with_a_discontinuity() {
    let s = Streams::new(
        PackagingConfig::default(),
        Limits::default(),
        Default::default(),
        false,
    );
    let clip = Clip::parse(DEMO_CLIP).expect("demo clip");
    let mut p = s.publish("demo", None).expect("publish");
    clip.configure(&mut p).expect("configure");
    clip.feed_all(&mut p, 0).expect("feed");
    drop(p);
    // The new publisher starts its timestamps at 0 again.
    let mut p = s.publish("demo", None).expect("resume");
    clip.configure(&mut p).expect("configure");
    clip.feed_all(&mut p, 0).expect("feed");
    let stream = s.get("demo").expect("stream");
    let r = &stream.renditions[0];
    let pl = manifest::media_playlist(&stream, r, false);
    check_rules(&pl, 0.5);
    assert_eq!(pl.segments.iter().filter(|s| s.discontinuity).count(), 1);
    // Decode times keep increasing across the reconnect.
    let t = r.store.read();
    let starts: Vec<u64> = t.segments.iter().map(|s| s.start()).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
}

#[test]
fn dash_timeline_matches_the_segments() {
    let (s, _p) = publish_demo(500, 2);
    let stream = s.get("demo").expect("stream");
    let mpd = manifest::mpd(&stream);
    let t = stream.renditions[0].store.read();
    let tmpl = mpd.periods[0].adaptation_sets[0]
        .segment_template
        .as_ref()
        .expect("template");
    assert_eq!(tmpl.start_number, t.segments.front().expect("segments").msn);
    let count: u64 = tmpl.timeline.iter().map(|e| u64::from(e.r) + 1).sum();
    assert_eq!(count, t.segments.len() as u64);
    assert_eq!(tmpl.timeline[0].t, Some(t.segments[0].start()));
    let xml = mpd.write();
    assert!(xml.contains("type=\"dynamic\""));
    assert!(xml.contains("timeShiftBufferDepth=\"PT1M\""));
}

#[test]
fn the_packager_knows_when_the_next_part_is_due() {
    let s = streams(500);
    let clip = Clip::parse(DEMO_CLIP).expect("demo clip");
    let mut p = s.publish("demo", None).expect("publish");
    assert_eq!(
        p.until_part_complete_ms(),
        None,
        "nothing before the first keyframe"
    );
    clip.configure(&mut p).expect("configure");
    clip.feed_all(&mut p, 0).expect("feed");
    let until = p.until_part_complete_ms().expect("packaging");
    assert!(until <= 500, "due within one part target, got {until} ms");
}

/// Issue 18: a publisher that sends one keyframe and then 256 KiB frames without
/// another keyframe is dropped at the open-segment cap derived from
/// `max_rendition_bytes`, and the store never holds more than the rendition bytes.
#[test]
fn a_publisher_without_keyframes_is_stopped_and_the_store_stays_bounded() {
    let rendition_bytes = 16 * 1024 * 1024;
    let s = Streams::new(
        PackagingConfig::default(),
        Limits {
            max_rendition_bytes: rendition_bytes,
            ..Limits::default()
        },
        Default::default(),
        false,
    );
    assert_eq!(s.bounds().max_segment_bytes, rendition_bytes / 4);
    assert_eq!(s.bounds().max_part_bytes, 1024 * 1024);
    let clip = Clip::parse(DEMO_CLIP).expect("demo clip");
    let mut p = s.publish("hostile", None).expect("publish");
    clip.configure(&mut p).expect("configure");
    let frame = bytes::Bytes::from(vec![0x41; 256 * 1024]);
    p.video(0, 0, true, frame.clone()).expect("keyframe");
    let stream = s.get("hostile").expect("stream");
    let store = stream.renditions[0].store.clone();
    let mut stopped = None;
    // 400 frames = 100 MiB: the old origin kept all of it in one open segment.
    for i in 1..400u64 {
        if let Err(e) = p.video(i * 33, 0, false, frame.clone()) {
            stopped = Some((i, e));
            break;
        }
        // The cap counts media bytes; moof boxes add a little.
        let held = store.bytes();
        assert!(held <= rendition_bytes / 4 + 16 * 1024, "{held} bytes");
    }
    let (at, e) = stopped.expect("the publisher was never stopped");
    assert!(
        matches!(e, super::packager::PackagerError::NoKeyframe { .. }),
        "{e}"
    );
    assert!(at <= 17, "stopped after {at} frames");
    // What was published stays playable: closed, and starting on the keyframe.
    let t = store.read();
    assert!(t.open.is_none());
    assert!(t.segments.iter().all(|seg| seg.parts[0].independent));
    drop(t);
    drop(p);
    assert!(matches!(stream.state(), super::StreamState::Interrupted(_)));
}
