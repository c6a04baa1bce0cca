//! The recorder of one live stream: follows the rendition store as segments complete
//! and writes each into the current recording, until the stream ends, an operator
//! stops it, or the disk bound is reached; splits recordings every
//! `--record-split-minutes` and when the publisher comes back with other codec
//! settings.
//!
//! Reconnects: a publisher that drops and comes back within the reconnect grace time
//! continues the same live stream, so the same recorder keeps writing the same
//! recording. The live packager places the new session a little later on the stream's
//! timeline (the next numbering cell) and marks its first segment as a discontinuity;
//! the recorder closes that hole by shifting the new session's fragments back (their
//! `tfdt`, per track, see `retime.rs`) so that video and audio each start exactly where
//! the recording's video and audio end (taken from the written fragments' own sample
//! durations: audio and video of a dropped session rarely end together, and a hole in
//! either one stalls Media Source Extensions players).
//! The recording is one continuous timeline: its HLS playlist needs no
//! `EXT-X-DISCONTINUITY`, its MPD one period, and players (hls.js, ffmpeg, dash.js)
//! play across the reconnect without a gap or a jump. What the publisher sent while
//! it was away is simply not there (the recording is shorter than the wall-clock
//! time by the outage).
//!
//! Not here: where recordings are kept and the disk bound (`mod.rs`), the manifests
//! (`recording.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media::fmp4::{self, Track};
use tokio::sync::Notify;

use super::recording::{EndReason, Meta, SegmentEntry, State};
use super::{retime, Inits, Recordings};
use crate::live::packager::{AUDIO_TRACK, VIDEO_TIMESCALE, VIDEO_TRACK};
use crate::live::store::Segment;
use crate::live::{LiveStream, StreamState};

/// How a recorder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The stream ended, or the operator stopped recording it.
    Done,
    /// It must not be attached again while this publish lasts (disk bound, write
    /// errors).
    Declined,
}

/// The recording being written.
struct Current {
    name: String,
    init: Bytes,
    /// Segments written.
    count: usize,
    duration: f64,
}

/// Records `live` until it ends or `stop` is set (see the module docs). With
/// `from_start` the segments still in the live window are recorded too; otherwise
/// recording starts with the segment being produced now.
pub async fn record(
    shelf: Arc<Recordings>,
    live: Arc<LiveStream>,
    from_start: bool,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
) -> Exit {
    let Some(rendition) = live.renditions.first().cloned() else {
        return Exit::Done;
    };
    let store = rendition.store.clone();
    let mut changed = store.subscribe();
    let mut next_msn: Option<u64> = if from_start {
        None
    } else {
        Some(store.read().next_part().0)
    };
    let mut current: Option<Current> = None;
    // Per track (track_ID, ticks of its timescale): how far the current session's
    // fragments are moved back, and where each track of the written media ends (after
    // the move).
    let mut shifts: Vec<(u32, u64)> = Vec::new();
    let mut ends: Vec<(u32, u64)> = Vec::new();
    let mut last_msn: Option<u64> = None;
    loop {
        let (segments, init, ended) = {
            let t = store.read();
            if let (Some(want), Some(front)) = (next_msn, t.segments.front()) {
                if front.msn > want && last_msn.is_some() {
                    tracing::warn!(
                        stream = %live.name,
                        lost = front.msn - want,
                        "recorder fell behind the live window: segments lost from the recording"
                    );
                    metrics::counter!("mediamesh_recording_lost_segments_total")
                        .increment(front.msn - want);
                }
            }
            let segments: Vec<Segment> = t
                .segments
                .iter()
                .filter(|s| next_msn.is_none_or(|n| s.msn >= n))
                .cloned()
                .collect();
            (segments, t.init.clone(), t.ended)
        };
        for seg in segments {
            next_msn = Some(seg.msn + 1);
            let Some(init) = init.clone() else {
                continue;
            };
            let new_run = seg.discontinuity || last_msn.is_some_and(|m| seg.msn != m + 1);
            last_msn = Some(seg.msn);
            // Other codec settings: this recording ends, the next one starts here.
            if let Some(c) = &current {
                if new_run && c.init != init {
                    let name = c.name.clone();
                    current = None;
                    shelf.finish(&name, EndReason::CodecChange).await;
                    ends.clear();
                    shifts.clear();
                }
            }
            let mut bytes: Vec<u8> = Vec::with_capacity(seg.size);
            for p in &seg.parts {
                bytes.extend_from_slice(&p.bytes);
            }
            let spans = retime::track_spans(&bytes).unwrap_or_else(|e| {
                tracing::warn!(stream = %live.name, error = %e, "cannot read a segment's timing");
                Vec::new()
            });
            if new_run && !ends.is_empty() {
                shifts = continue_after(&ends, &spans, &rendition.info.read());
                let gap = lookup(&shifts, VIDEO_TRACK) as f64 / f64::from(VIDEO_TIMESCALE);
                tracing::info!(
                    stream = %live.name,
                    gap_seconds = gap,
                    "publisher came back: the recording continues without the gap"
                );
            }
            let mut start = seg.start();
            if shifts.iter().any(|(_, by)| *by > 0) {
                match retime::shift_decode_times(&mut bytes, |t| lookup(&shifts, t)) {
                    Ok(()) => start = start.saturating_sub(lookup(&shifts, VIDEO_TRACK)),
                    Err(e) => {
                        tracing::warn!(stream = %live.name, error = %e, "cannot move a segment on the timeline; recorded as it is");
                        shifts.clear();
                    }
                }
            }
            let size = bytes.len() as u64;
            let inits = current.is_none().then(|| inits_for(&live, init.clone()));
            let need = size + inits.as_ref().map_or(0, Inits::bytes);
            if !shelf.make_room(need).await {
                tracing::warn!(
                    stream = %live.name,
                    max_bytes = shelf.config().max_bytes,
                    "recordings reached --record-max-bytes and no finished recording is left to delete: recording of this stream stops until it is published again"
                );
                if let Some(c) = current.take() {
                    shelf.finish(&c.name, EndReason::DiskLimit).await;
                }
                return Exit::Declined;
            }
            if let Some(inits) = inits {
                let meta = meta_for(&live);
                match shelf.begin(&live, seg.pdt_ms, inits, meta).await {
                    Ok(name) => {
                        current = Some(Current {
                            name,
                            init: init.clone(),
                            count: 0,
                            duration: 0.0,
                        })
                    }
                    Err(e) => {
                        tracing::error!(stream = %live.name, error = %e, "cannot start a recording");
                        metrics::counter!("mediamesh_recording_errors_total").increment(1);
                        return Exit::Declined;
                    }
                }
            }
            let Some(c) = current.as_mut() else {
                continue;
            };
            let entry = SegmentEntry {
                duration: seg.duration,
                bytes: size,
                start,
                pdt_ms: seg.pdt_ms,
            };
            if let Err(e) = shelf.add_segment(&c.name, c.count, bytes, entry).await {
                tracing::error!(recording = %c.name, error = %e, "cannot write a recorded segment");
                metrics::counter!("mediamesh_recording_errors_total").increment(1);
                let name = c.name.clone();
                shelf.finish(&name, EndReason::WriteError).await;
                return Exit::Declined;
            }
            c.count += 1;
            c.duration += seg.duration;
            for (track, _, end) in &spans {
                let end = end.saturating_sub(lookup(&shifts, *track));
                match ends.iter_mut().find(|(t, _)| t == track) {
                    Some(e) => e.1 = end,
                    None => ends.push((*track, end)),
                }
            }
            if c.duration >= shelf.config().split.as_secs_f64() {
                let name = c.name.clone();
                current = None;
                shelf.finish(&name, EndReason::Split).await;
            }
        }
        if stop.load(Ordering::SeqCst) {
            if let Some(c) = current.take() {
                shelf.finish(&c.name, EndReason::Stopped).await;
            }
            tracing::info!(stream = %live.name, "recording stopped by the write API");
            return Exit::Done;
        }
        if ended && matches!(live.state(), StreamState::Ended(_)) {
            if let Some(c) = current.take() {
                shelf.finish(&c.name, EndReason::Ended).await;
            }
            return Exit::Done;
        }
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() {
                    // The store is gone: nothing more will come.
                    if let Some(c) = current.take() {
                        shelf.finish(&c.name, EndReason::Ended).await;
                    }
                    return Exit::Done;
                }
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn lookup(table: &[(u32, u64)], track: u32) -> u64 {
    table
        .iter()
        .find(|(t, _)| *t == track)
        .map_or(0, |(_, v)| *v)
}

/// The shifts that start each track of a new session (`spans`, as packaged) where
/// that track of the recording ends (`ends`): every track continues without a hole.
/// A track the recording has no end for moves as far as the video does.
fn continue_after(
    ends: &[(u32, u64)],
    spans: &[(u32, u64, u64)],
    info: &crate::live::packager::StreamInfo,
) -> Vec<(u32, u64)> {
    let mut shifts: Vec<(u32, u64)> = spans
        .iter()
        .filter_map(|(track, first, _)| {
            let end = ends.iter().find(|(t, _)| t == track)?.1;
            Some((*track, first.saturating_sub(end)))
        })
        .collect();
    let video = lookup(&shifts, VIDEO_TRACK);
    if let Some(rate) = info.audio.as_ref().map(|a| u64::from(a.sample_rate())) {
        if !shifts.iter().any(|(t, _)| *t == AUDIO_TRACK) {
            let v = u64::from(VIDEO_TIMESCALE);
            shifts.push((AUDIO_TRACK, (video * rate + v / 2) / v));
        }
    }
    shifts
}

/// The manifest facts of `live` now.
fn meta_for(live: &LiveStream) -> Meta {
    let info = live
        .renditions
        .first()
        .map(|r| r.info.read().clone())
        .unwrap_or_default();
    Meta {
        name: String::new(),
        stream: live.name.clone(),
        started_ms: 0,
        ended_ms: None,
        state: State::Recording,
        reason: None,
        video_codec: info.video.as_ref().map(|v| v.codec_string()),
        width: info
            .video
            .as_ref()
            .and_then(|v| v.dimensions())
            .map(|d| d.0),
        height: info
            .video
            .as_ref()
            .and_then(|v| v.dimensions())
            .map(|d| d.1),
        audio_codec: info.audio.as_ref().map(|a| a.codec_string()),
        audio_sample_rate: info.audio.as_ref().map(|a| a.sample_rate()),
    }
}

/// The muxed init segment as stored, and one per track for DASH (as the live DASH
/// routes make them).
fn inits_for(live: &LiveStream, muxed: Bytes) -> Inits {
    let info = live
        .renditions
        .first()
        .map(|r| r.info.read().clone())
        .unwrap_or_default();
    Inits {
        muxed,
        video: info.video.map(|v| {
            fmp4::init_segment(&[Track {
                id: VIDEO_TRACK,
                timescale: VIDEO_TIMESCALE,
                codec: v.into_track_codec(),
            }])
        }),
        audio: info.audio.map(|a| {
            fmp4::init_segment(&[Track {
                id: AUDIO_TRACK,
                timescale: a.sample_rate().max(1),
                codec: a.track_codec(),
            }])
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::packager::StreamInfo;

    #[test]
    fn each_track_of_a_new_session_starts_where_that_track_ended() {
        // The recording's video ends at 10 s, its audio 20 ms earlier (48 kHz); the
        // new session was placed 2.5 s later on the live timeline.
        let ends = [(VIDEO_TRACK, 900_000), (AUDIO_TRACK, 479_040)];
        let spans = [
            (VIDEO_TRACK, 1_125_000, 1_305_000),
            (AUDIO_TRACK, 599_040, 695_040),
        ];
        let shifts = continue_after(&ends, &spans, &StreamInfo::default());
        assert_eq!(lookup(&shifts, VIDEO_TRACK), 225_000);
        assert_eq!(lookup(&shifts, AUDIO_TRACK), 120_000);
        // Moved back, each track starts at its own end: no hole in either.
        assert_eq!(1_125_000 - lookup(&shifts, VIDEO_TRACK), 900_000);
        assert_eq!(599_040 - lookup(&shifts, AUDIO_TRACK), 479_040);
        // A session that starts before a track's end is not moved (never forward).
        let shifts = continue_after(
            &ends,
            &[(VIDEO_TRACK, 800_000, 900_000)],
            &StreamInfo::default(),
        );
        assert_eq!(lookup(&shifts, VIDEO_TRACK), 0);
        assert_eq!(lookup(&[], 7), 0);
    }
}
