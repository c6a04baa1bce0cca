//! Turns the live window of a stream into manifests: the LL-HLS media playlist (with
//! parts, preload hints, delta updates and rendition reports), the multivariant
//! playlist, and the dynamic DASH MPD. Object names used here are the ones the HTTP
//! routes serve: `init-{version}.mp4` (also `init.mp4`, the latest), `seg{msn}.m4s`,
//! `part{msn}.{index}.m4s`.
//!
//! Blocking and request validation live in the HTTP layer; this only writes.

use media::dash::{self, AdaptationSet, Mpd, Period, Representation, SegmentTemplate};
use media::hls::{
    MediaPlaylist, MediaSegment, MultivariantPlaylist, Part, PreloadHint, PreloadHintType,
    RenditionReport, ServerControl, Variant,
};

use super::packager::VIDEO_TIMESCALE;
use super::store::{unix_ms, Timeline};
use super::stream::{LiveStream, Rendition};

/// Target duration in whole seconds: the configured target, or the longest segment
/// (rounded) when the encoder's keyframe interval is longer.
pub fn target_duration(configured: f64, t: &Timeline) -> u64 {
    let configured = configured.ceil().max(1.0) as u64;
    configured.max(t.max_segment_duration.round() as u64)
}

/// Versioned init segment URI (see `Timeline::init_version`).
pub fn init_uri(version: u64) -> String {
    format!("init-{version}.mp4")
}

/// Segment URI.
pub fn segment_uri(msn: u64) -> String {
    format!("seg{msn}.m4s")
}

/// Part URI.
pub fn part_uri(msn: u64, index: u64) -> String {
    format!("part{msn}.{index}.m4s")
}

/// The media playlist of `rendition`; `skip` asks for a delta update.
pub fn media_playlist(stream: &LiveStream, rendition: &Rendition, skip: bool) -> MediaPlaylist {
    let cfg = rendition.store.config();
    let part_target = cfg.part_target.as_secs_f64();
    let t = rendition.store.read();
    let target = target_duration(cfg.segment_target.as_secs_f64(), &t);
    let can_skip_until = 6.0 * target as f64;
    let mut pl = MediaPlaylist {
        version: if skip { 9 } else { 6 },
        target_duration: target,
        part_inf: Some(part_target),
        server_control: Some(ServerControl {
            can_block_reload: true,
            can_skip_until: Some(can_skip_until),
            can_skip_dateranges: false,
            hold_back: Some(3.0 * target as f64),
            part_hold_back: Some(3.0 * part_target),
        }),
        media_sequence: t
            .segments
            .front()
            .map(|s| s.msn)
            .or(t.open.as_ref().map(|o| o.msn))
            .unwrap_or(t.next_msn),
        discontinuity_sequence: t.discontinuity_sequence,
        independent_segments: true,
        map_uri: Some(init_uri(t.init_version)),
        ended: t.ended,
        ..MediaPlaylist::default()
    };

    // Parts are listed for the segments within three target durations of the end.
    let total = t.duration();
    let parts_from = total - 3.0 * target as f64;
    let skip_before = if skip {
        total - can_skip_until
    } else {
        f64::MIN
    };
    let mut start = 0.0;
    for seg in &t.segments {
        let end = start + seg.duration;
        if end <= skip_before {
            pl.skipped_segments += 1;
            start = end;
            continue;
        }
        let parts = if end > parts_from {
            seg.parts
                .iter()
                .enumerate()
                .map(|(i, p)| Part {
                    uri: part_uri(seg.msn, i as u64),
                    duration: p.duration,
                    independent: p.independent,
                    gap: false,
                })
                .collect()
        } else {
            Vec::new()
        };
        pl.segments.push(MediaSegment {
            uri: segment_uri(seg.msn),
            duration: seg.duration,
            discontinuity: seg.discontinuity,
            program_date_time: Some(dash::format_iso8601_ms(seg.pdt_ms)),
            parts,
            gap: false,
        });
        start = end;
    }
    if pl.skipped_segments > 0 {
        pl.version = 9;
    }
    if !t.ended {
        if let Some(open) = &t.open {
            pl.trailing_discontinuity = open.discontinuity;
            pl.trailing_program_date_time = Some(dash::format_iso8601_ms(open.pdt_ms));
            pl.trailing_parts = open
                .parts
                .iter()
                .enumerate()
                .map(|(i, p)| Part {
                    uri: part_uri(open.msn, i as u64),
                    duration: p.duration,
                    independent: p.independent,
                    gap: false,
                })
                .collect();
        }
        let (msn, index) = t.next_part();
        pl.preload_hints.push(PreloadHint {
            hint_type: PreloadHintType::Part,
            uri: part_uri(msn, index),
            byterange_start: None,
            byterange_length: None,
        });
    }
    drop(t);

    for other in &stream.renditions {
        if other.name == rendition.name {
            continue;
        }
        let o = other.store.read();
        if let Some(last_msn) = o.last_msn() {
            let last_part = o
                .open
                .as_ref()
                .and_then(|open| (open.parts.len() as u64).checked_sub(1));
            pl.rendition_reports.push(RenditionReport {
                uri: format!("../{}/index.m3u8", other.name),
                last_msn,
                last_part,
            });
        }
    }
    pl
}

/// Peak and average bit rate of what the window holds, bits per second.
pub fn bitrate(t: &Timeline) -> (u64, u64) {
    let mut peak = 0.0f64;
    let mut bytes = 0usize;
    let mut secs = 0.0;
    for s in &t.segments {
        if s.duration > 0.0 {
            peak = peak.max(s.size as f64 * 8.0 / s.duration);
        }
        bytes += s.size;
        secs += s.duration;
    }
    let avg = if secs > 0.0 {
        bytes as f64 * 8.0 / secs
    } else {
        0.0
    };
    (peak.round() as u64, avg.round() as u64)
}

/// BANDWIDTH of a rendition: fixed the first time a segment exists, at 1.5× that
/// segment's bit rate rounded up to 10 kbit/s (headroom for the peaks that follow),
/// because players and p2p-media-loader treat a changed BANDWIDTH as a new stream.
fn advertised_bandwidth(r: &Rendition, peak: u64) -> u64 {
    if peak == 0 {
        return 2_000_000;
    }
    let mut fixed = r.advertised_bandwidth.lock();
    *fixed.get_or_insert_with(|| (peak * 3 / 2).div_ceil(10_000) * 10_000)
}

/// The multivariant playlist listing every rendition of `stream`.
pub fn multivariant(stream: &LiveStream) -> MultivariantPlaylist {
    let mut pl = MultivariantPlaylist {
        version: 6,
        independent_segments: true,
        ..MultivariantPlaylist::default()
    };
    for r in &stream.renditions {
        let info = r.info.read().clone();
        let (peak, avg) = bitrate(&r.store.read());
        pl.variants.push(Variant {
            uri: format!("{}/index.m3u8", r.name),
            bandwidth: advertised_bandwidth(r, peak),
            average_bandwidth: (avg > 0).then_some(avg),
            codecs: Some(info.codecs()).filter(|c| !c.is_empty()),
            resolution: info.video.as_ref().and_then(|v| v.dimensions()),
            frame_rate: info.frame_rate,
            pathway_id: None,
        });
    }
    pl
}

/// The dynamic MPD of `stream` (one muxed representation per rendition).
pub fn mpd(stream: &LiveStream) -> Mpd {
    let Some(first) = stream.renditions.first() else {
        return Mpd::default();
    };
    let cfg = first.store.config();
    let seg_target = cfg.segment_target.as_secs_f64();
    let t = first.store.read();
    let ended = t.ended;
    let start_number = t.segments.front().map_or(t.next_msn, |s| s.msn);
    let durations: Vec<u64> = t
        .segments
        .iter()
        .map(|s| (s.duration * f64::from(VIDEO_TIMESCALE)).round() as u64)
        .collect();
    let start_t = t.segments.front().map_or(0, |s| s.start());
    let end_secs = t
        .segments
        .back()
        .map(|s| s.start() as f64 / f64::from(VIDEO_TIMESCALE) + s.duration);
    let max_seg = t.max_segment_duration.max(seg_target);
    drop(t);

    // One adaptation set per media type: DASH players (and DASH-IF IOP) want one
    // track per representation, so each track of a rendition is addressed on its own
    // (`{rendition}.v`, `{rendition}.a`) and split from the muxed CMAF on request.
    let mut video = Vec::new();
    let mut audio = Vec::new();
    for r in &stream.renditions {
        let info = r.info.read().clone();
        let (peak, _) = bitrate(&r.store.read());
        let peak = if peak > 0 { peak } else { 2_000_000 };
        if let Some(v) = &info.video {
            video.push(Representation {
                id: format!("{}.v", r.name),
                codecs: v.codec_string(),
                bandwidth: peak,
                width: v.dimensions().map(|d| d.0),
                height: v.dimensions().map(|d| d.1),
                frame_rate: info.frame_rate.map(|f| format!("{}", f.round() as u64)),
                ..Representation::default()
            });
        }
        if let Some(a) = &info.audio {
            audio.push(Representation {
                id: format!("{}.a", r.name),
                codecs: a.codec_string(),
                bandwidth: 128_000,
                audio_sampling_rate: Some(a.sample_rate()),
                ..Representation::default()
            });
        }
    }
    let template = SegmentTemplate {
        timescale: VIDEO_TIMESCALE,
        initialization: "$RepresentationID$/init.mp4".to_string(),
        media: "$RepresentationID$/seg$Number$.m4s".to_string(),
        start_number,
        presentation_time_offset: 0,
        duration: None,
        timeline: dash::timeline_from_durations(start_t, &durations),
        availability_time_offset: None,
        availability_time_complete: None,
    };
    let mut adaptation_sets = Vec::new();
    for (kind, representations) in [("video", video), ("audio", audio)] {
        if representations.is_empty() {
            continue;
        }
        adaptation_sets.push(AdaptationSet {
            id: adaptation_sets.len() as u32,
            content_type: Some(kind.to_string()),
            mime_type: format!("{kind}/mp4"),
            segment_alignment: true,
            representations,
            segment_template: Some(template.clone()),
        });
    }

    Mpd {
        dynamic: true,
        availability_start_time_ms: Some(stream.epoch_ms.load(std::sync::atomic::Ordering::SeqCst)),
        publish_time_ms: Some(unix_ms()),
        media_presentation_duration: if ended { end_secs } else { None },
        minimum_update_period: if ended { None } else { Some(seg_target) },
        min_buffer_time: seg_target,
        time_shift_buffer_depth: Some(cfg.dvr_window.as_secs_f64()),
        suggested_presentation_delay: Some(3.0 * seg_target),
        max_segment_duration: Some(max_seg),
        utc_timing_iso: Some("/api/v1/time".to_string()),
        profiles: "urn:mpeg:dash:profile:isoff-live:2011".to_string(),
        periods: vec![Period {
            id: "0".to_string(),
            start: 0.0,
            adaptation_sets,
        }],
    }
}
