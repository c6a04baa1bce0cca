//! The live CMAF packager, sans-IO: video (H.264, H.265 or AV1) and AAC (or, from WHIP,
//! Opus) frames with
//! millisecond timestamps go in; an init segment, CMAF parts (one moof+mdat each,
//! audio and video muxed) and segment boundaries come out.
//!
//! Parts close as soon as the frame that completes the part target arrives (its
//! duration is estimated from the frame rate, so no frame of delay is added). Segments
//! close on the first keyframe in the next cell of the stream's numbering [`Grid`]
//! (see `numbering.rs`), or, without a grid, on the first keyframe at or after the
//! segment target. Everything that ends up in the bytes is a function of the
//! publisher's timestamps (`tfdt` is its decode time, the `mfhd` sequence number is
//! the part's start in milliseconds, AAC timing is snapped to whole 1024-sample frames
//! from timestamp 0), so two origins packaging the same publish produce the same
//! segments even when one started later. It does not store anything or know about
//! HTTP: the caller moves its output into a `RenditionStore`.
//!
//! What one publisher can make it hold is bounded ([`Bounds`]): a part that reaches
//! its byte cap is closed early (a part needs no keyframe); a segment that runs past
//! its byte or time cap with no keyframe to cut it, video timestamps that stop
//! advancing, and audio that piles up with no video are errors, after which the
//! packager closes what it has and refuses further input (the caller drops the
//! publisher). A segment is never cut without a keyframe: players cannot start one.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use media::codec::{AudioConfig, VideoCodec, VideoConfig};
use media::fmp4::{self, Sample, Track, TrackRun};

use super::numbering::Grid;

/// Video timescale: 90 kHz, exact for millisecond input.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Track id of H.264 in the muxed fragments.
pub const VIDEO_TRACK: u32 = 1;
/// Track id of AAC in the muxed fragments.
pub const AUDIO_TRACK: u32 = 2;
const AAC_FRAME: u32 = 1024;
/// An Opus packet whose TOC cannot be read is taken as 20 ms (WebRTC's packet time).
const OPUS_FRAME: u32 = 960;

/// One frame handed to the packager.
#[derive(Debug, Clone)]
pub enum Input {
    /// The video decoder configuration record of `codec` (avcC, hvcC or av1C).
    VideoConfig(VideoCodec, Bytes),
    /// AudioSpecificConfig, or an Opus identification header (`OpusHead`).
    AudioConfig(Bytes),
    /// One access unit in its MP4 form (AVCC/HVCC NAL units, AV1 OBUs without
    /// temporal delimiters). `dts_ms` is monotonic (already unwrapped and restamped).
    Video {
        dts_ms: u64,
        cts_ms: i32,
        keyframe: bool,
        data: Bytes,
    },
    /// One raw AAC frame, or one Opus packet.
    Audio { dts_ms: u64, data: Bytes },
}

/// What the packager produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Init segment (ftyp+moov); sent again if the codec configuration changes.
    Init(Bytes),
    /// A complete part.
    Part {
        bytes: Bytes,
        /// Seconds (video duration).
        duration: f64,
        /// Starts with a keyframe.
        independent: bool,
        /// Decode time of the first video sample, 90 kHz.
        decode_time: u64,
    },
    /// The segment that the previous parts belong to is complete.
    SegmentEnd,
}

/// Why a frame was refused. All but the configuration errors stop the packager: the
/// publisher is to be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PackagerError {
    #[error("bad video configuration: {0}")]
    Video(media::codec::CodecError),
    #[error("bad audio configuration: {0}")]
    Audio(media::codec::CodecError),
    #[error(
        "video timestamps stopped advancing at {at_ms} ms: {frames} frames without a newer \
         timestamp, {bytes} bytes held waiting for time to move (limits: {max_frames} \
         frames, {max_bytes} bytes); fix the encoder's clock"
    )]
    FrozenTimestamps {
        at_ms: u64,
        frames: usize,
        bytes: usize,
        max_frames: usize,
        max_bytes: usize,
    },
    #[error(
        "no keyframe to cut the segment at after {seconds:.1} s and {bytes} bytes of media \
         (limits: {max_seconds:.1} s, {max_bytes} bytes); set the encoder's keyframe \
         interval (GOP) to the segment target or less"
    )]
    NoKeyframe {
        seconds: f64,
        bytes: usize,
        max_seconds: f64,
        max_bytes: usize,
    },
    #[error(
        "{bytes} bytes of audio arrived without a video frame (limit {max_bytes} bytes); \
         the encoder's video stopped"
    )]
    AudioWithoutVideo { bytes: usize, max_bytes: usize },
    #[error("the packager stopped after an earlier error; publish again")]
    Stopped,
}

/// What one publisher may make the packager hold (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Media bytes (video and audio) of the pending part at which it is closed early.
    pub max_part_bytes: usize,
    /// Media bytes a segment may reach without a keyframe to cut it at.
    pub max_segment_bytes: usize,
    /// Media time a segment may reach without a keyframe to cut it at.
    pub max_keyframe_interval: Duration,
    /// Consecutive video frames whose timestamp is not newer than the newest one.
    pub max_frozen_frames: usize,
}

impl Default for Bounds {
    /// The values `Limits::default()` yields.
    fn default() -> Self {
        Self {
            max_part_bytes: 16 * 1024 * 1024,
            max_segment_bytes: 64 * 1024 * 1024,
            max_keyframe_interval: Duration::from_secs(20),
            max_frozen_frames: 300,
        }
    }
}

/// Stream facts the API and manifests need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamInfo {
    pub video: Option<VideoConfig>,
    /// AAC (RTMP, SRT, demo) or Opus (WHIP).
    pub audio: Option<AudioConfig>,
    /// Frames per second estimated from timestamps.
    pub frame_rate: Option<f64>,
}

impl StreamInfo {
    /// RFC 6381 codecs list, e.g. `avc1.64001f,mp4a.40.2`.
    pub fn codecs(&self) -> String {
        let mut out = Vec::new();
        if let Some(v) = &self.video {
            out.push(v.codec_string());
        }
        if let Some(a) = &self.audio {
            out.push(a.codec_string());
        }
        out.join(",")
    }
}

#[derive(Debug)]
struct PendingVideo {
    dts: u64,
    cts: i32,
    keyframe: bool,
    data: Bytes,
}

/// The packager of one rendition.
#[derive(Debug)]
pub struct Packager {
    segment_target: u64,
    part_target: u64,
    info: StreamInfo,
    init_sent: Option<Bytes>,
    started: bool,
    video: Vec<PendingVideo>,
    audio: Vec<Sample>,
    audio_base: Option<u64>,
    audio_next: Option<u64>,
    segment_start: u64,
    part_start: u64,
    frame_duration: u64,
    /// Recent frame-to-frame deltas: millisecond input jitters (33, 33, 34 ms at
    /// 30 fps), so the estimate averages them.
    deltas: VecDeque<u64>,
    last_video_dts: Option<u64>,
    grid: Option<Grid>,
    out: VecDeque<Output>,
    bounds: Bounds,
    /// `bounds.max_keyframe_interval` in 90 kHz ticks.
    max_keyframe_ticks: u64,
    /// Media bytes (video and audio) in `video` and `audio`.
    pending_bytes: usize,
    /// Media bytes since the current segment started.
    segment_bytes: usize,
    /// Newest video decode time seen, and the run of frames since that were not newer.
    newest_dts: Option<u64>,
    frozen_frames: usize,
    frozen_bytes: usize,
    /// An error stopped the packager: all further input is refused.
    failed: bool,
}

const DELTA_WINDOW: usize = 30;
const COMMON_RATES: [f64; 8] = [23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0];

/// Frames per second from a mean frame duration, snapped to a common rate when close.
fn frame_rate(mean_ticks: f64) -> f64 {
    let fps = f64::from(VIDEO_TIMESCALE) / mean_ticks;
    COMMON_RATES
        .iter()
        .copied()
        .filter(|r| (r - fps).abs() / r < 0.005)
        .min_by(|a, b| (a - fps).abs().total_cmp(&(b - fps).abs()))
        .unwrap_or((fps * 100.0).round() / 100.0)
}

impl Packager {
    pub fn new(segment_target: Duration, part_target: Duration) -> Self {
        Self {
            segment_target: ticks(segment_target),
            part_target: ticks(part_target),
            info: StreamInfo::default(),
            init_sent: None,
            started: false,
            video: Vec::new(),
            audio: Vec::new(),
            audio_base: None,
            audio_next: None,
            segment_start: 0,
            part_start: 0,
            frame_duration: u64::from(VIDEO_TIMESCALE / 30),
            deltas: VecDeque::with_capacity(DELTA_WINDOW),
            last_video_dts: None,
            grid: None,
            out: VecDeque::new(),
            bounds: Bounds::default(),
            max_keyframe_ticks: ticks(Bounds::default().max_keyframe_interval),
            pending_bytes: 0,
            segment_bytes: 0,
            newest_dts: None,
            frozen_frames: 0,
            frozen_bytes: 0,
            failed: false,
        }
    }

    /// Replaces the default [`Bounds`].
    pub fn with_bounds(mut self, bounds: Bounds) -> Self {
        self.bounds = bounds;
        self.max_keyframe_ticks = ticks(bounds.max_keyframe_interval);
        self
    }

    /// Media bytes held in the pending part (for tests and metrics).
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Media milliseconds from the last video frame to the frame expected to complete
    /// the current part (or segment), if packaging has started. Frames arrive in real
    /// time, so this is also about how long the ingest may wait before reading again
    /// without delaying a part.
    pub fn until_part_complete_ms(&self) -> Option<u64> {
        let last = self.last_video_dts.filter(|_| self.started)?;
        let part_end = self.part_start + self.part_target;
        let segment_end = self.segment_start + self.segment_target;
        let completing = part_end
            .min(segment_end)
            .saturating_sub(self.frame_duration);
        Some(completing.saturating_sub(last) / 90)
    }

    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Cuts segments on `grid`'s cells from now on (set before the first keyframe).
    pub fn set_grid(&mut self, grid: Option<Grid>) {
        self.grid = grid;
    }

    /// Whether the next keyframe starts packaging (the caller sets the grid first).
    pub fn waiting_for_keyframe(&self) -> bool {
        !self.started && self.info.video.is_some()
    }

    /// Next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Takes one input. An error other than a bad configuration stops the packager:
    /// it has closed its segment, and later input gets [`PackagerError::Stopped`].
    pub fn handle(&mut self, input: Input) -> Result<(), PackagerError> {
        if self.failed {
            return Err(PackagerError::Stopped);
        }
        match input {
            Input::VideoConfig(codec, raw) => {
                let cfg = VideoConfig::parse(codec, raw).map_err(PackagerError::Video)?;
                if self.info.video.as_ref() != Some(&cfg) {
                    self.info.video = Some(cfg);
                    if self.started {
                        self.flush_part();
                        self.out.push_back(Output::SegmentEnd);
                        self.started = false;
                    }
                }
            }
            Input::AudioConfig(raw) => {
                let cfg = AudioConfig::parse(raw).map_err(PackagerError::Audio)?;
                if self.info.audio.as_ref() != Some(&cfg) {
                    self.info.audio = Some(cfg);
                    self.audio_next = None;
                    if self.started {
                        self.flush_part();
                        self.out.push_back(Output::SegmentEnd);
                        self.started = false;
                    }
                }
            }
            Input::Video {
                dts_ms,
                cts_ms,
                keyframe,
                data,
            } => self.video_frame(
                dts_ms.saturating_mul(90),
                cts_ms.saturating_mul(90),
                keyframe,
                data,
            )?,
            Input::Audio { dts_ms, data } => self.audio_frame(dts_ms, data)?,
        }
        Ok(())
    }

    /// Stops on `error`: what is pending is discarded (it broke a bound), the segment
    /// is closed (it started on a keyframe, so it plays), and input is refused from now.
    fn fail(&mut self, error: PackagerError) -> PackagerError {
        self.video.clear();
        self.audio.clear();
        self.audio_base = None;
        self.pending_bytes = 0;
        if self.started {
            self.out.push_back(Output::SegmentEnd);
            self.started = false;
        }
        self.failed = true;
        error
    }

    /// The publisher is gone: emit what is buffered and close the segment.
    pub fn finish(&mut self) {
        if self.started {
            self.flush_part();
            self.out.push_back(Output::SegmentEnd);
        }
    }

    fn start(&mut self, dts: u64) {
        let Some(video) = self.info.video.clone() else {
            return;
        };
        let mut tracks = vec![Track {
            id: VIDEO_TRACK,
            timescale: VIDEO_TIMESCALE,
            codec: video.into_track_codec(),
        }];
        if let Some(audio) = self.info.audio.clone() {
            tracks.push(Track {
                id: AUDIO_TRACK,
                timescale: audio.sample_rate().max(1),
                codec: audio.track_codec(),
            });
        }
        let init = fmp4::init_segment(&tracks);
        if self.init_sent.as_ref() != Some(&init) {
            self.init_sent = Some(init.clone());
            self.out.push_back(Output::Init(init));
        }
        self.started = true;
        self.segment_start = dts;
        self.part_start = dts;
        self.audio.clear();
        self.audio_base = None;
        self.pending_bytes = 0;
        self.segment_bytes = 0;
    }

    fn video_frame(
        &mut self,
        dts: u64,
        cts: i32,
        keyframe: bool,
        data: Bytes,
    ) -> Result<(), PackagerError> {
        if !self.started {
            if !keyframe || self.info.video.is_none() {
                return Ok(());
            }
            self.start(dts);
        }
        let len = data.len();
        match self.newest_dts {
            Some(newest) if dts <= newest => {
                self.frozen_frames += 1;
                self.frozen_bytes = self.frozen_bytes.saturating_add(len);
                if self.frozen_frames > self.bounds.max_frozen_frames
                    || self.frozen_bytes > self.bounds.max_part_bytes
                {
                    return Err(self.frozen(newest, self.frozen_bytes));
                }
            }
            _ => {
                self.newest_dts = Some(dts);
                self.frozen_frames = 0;
                self.frozen_bytes = 0;
            }
        }
        if let Some(prev) = self.last_video_dts {
            let delta = dts.saturating_sub(prev);
            if delta > 0 && delta < u64::from(VIDEO_TIMESCALE) {
                if self.deltas.len() == DELTA_WINDOW {
                    self.deltas.pop_front();
                }
                self.deltas.push_back(delta);
                let mean = self.deltas.iter().sum::<u64>() as f64 / self.deltas.len() as f64;
                self.frame_duration = mean.round() as u64;
                self.info.frame_rate = Some(frame_rate(mean));
            }
        }
        self.last_video_dts = Some(dts);
        let elapsed = dts.saturating_sub(self.segment_start);
        let cut = match &self.grid {
            Some(g) => g.cell_90k(dts) > g.cell_90k(self.segment_start),
            None => elapsed + self.frame_duration / 2 >= self.segment_target,
        };
        if keyframe && dts > self.segment_start && cut {
            self.flush_part();
            self.out.push_back(Output::SegmentEnd);
            self.segment_start = dts;
            self.part_start = dts;
            self.segment_bytes = 0;
        } else if elapsed > self.max_keyframe_ticks
            || self.segment_bytes.saturating_add(len) > self.bounds.max_segment_bytes
        {
            let e = PackagerError::NoKeyframe {
                seconds: elapsed as f64 / f64::from(VIDEO_TIMESCALE),
                bytes: self.segment_bytes.saturating_add(len),
                max_seconds: self.bounds.max_keyframe_interval.as_secs_f64(),
                max_bytes: self.bounds.max_segment_bytes,
            };
            return Err(self.fail(e));
        }
        if self.video.is_empty() {
            self.part_start = dts;
        }
        self.video.push(PendingVideo {
            dts,
            cts,
            keyframe,
            data,
        });
        self.pending_bytes = self.pending_bytes.saturating_add(len);
        self.segment_bytes = self.segment_bytes.saturating_add(len);
        let part_end = dts + self.frame_duration;
        let elapsed = part_end.saturating_sub(self.part_start);
        if elapsed + self.frame_duration > self.part_target + self.frame_duration / 4 {
            self.flush_part();
        } else if self.pending_bytes >= self.bounds.max_part_bytes {
            // A part cut on size: it needs no keyframe, players play it like any other.
            // Frames stuck on one timestamp would make it a part of no duration.
            if self.frozen_frames > 0 {
                return Err(self.frozen(dts, self.pending_bytes));
            }
            self.flush_part();
        }
        Ok(())
    }

    /// Stops on frozen timestamps at `at` (90 kHz) with `bytes` held because of them.
    fn frozen(&mut self, at: u64, bytes: usize) -> PackagerError {
        let e = PackagerError::FrozenTimestamps {
            at_ms: at / 90,
            frames: self.frozen_frames,
            bytes,
            max_frames: self.bounds.max_frozen_frames,
            max_bytes: self.bounds.max_part_bytes,
        };
        self.fail(e)
    }

    fn audio_frame(&mut self, dts_ms: u64, data: Bytes) -> Result<(), PackagerError> {
        let Some((rate, frame)) = self.info.audio.as_ref().map(|a| match a {
            AudioConfig::Aac(a) => (u64::from(a.sample_rate), AAC_FRAME),
            // Opus packets say how long they are (WebRTC sends 20 ms: 960).
            AudioConfig::Opus(_) => (
                u64::from(media::codec::OPUS_RATE),
                media::codec::opus_packet_samples(&data).unwrap_or(OPUS_FRAME),
            ),
        }) else {
            return Ok(());
        };
        if !self.started || rate == 0 {
            return Ok(());
        }
        let len = data.len();
        if self.segment_bytes.saturating_add(len) > self.bounds.max_segment_bytes {
            let elapsed = self
                .newest_dts
                .unwrap_or(self.segment_start)
                .saturating_sub(self.segment_start);
            let e = PackagerError::NoKeyframe {
                seconds: elapsed as f64 / f64::from(VIDEO_TIMESCALE),
                bytes: self.segment_bytes.saturating_add(len),
                max_seconds: self.bounds.max_keyframe_interval.as_secs_f64(),
                max_bytes: self.bounds.max_segment_bytes,
            };
            return Err(self.fail(e));
        }
        let at = dts_ms.saturating_mul(rate) / 1000;
        let f = u64::from(frame);
        let next = match self.audio_next {
            // Keep the clean frame cadence (1024 samples for AAC) while the timestamps
            // stay within half a frame of it: then `next` is also the whole frame
            // nearest to them, which is where an origin that joined later starts
            // (below).
            Some(next) if next.abs_diff(at) <= f / 2 => next,
            // (Re)start on the nearest whole frame counted from timestamp 0, so an
            // origin that joined later lands on the same sample positions.
            _ => (at + f / 2) / f * f,
        };
        if self.audio.is_empty() {
            self.audio_base = Some(next);
        }
        self.audio.push(Sample {
            duration: frame,
            cts_offset: 0,
            keyframe: true,
            data,
        });
        self.audio_next = Some(next + f);
        self.pending_bytes = self.pending_bytes.saturating_add(len);
        self.segment_bytes = self.segment_bytes.saturating_add(len);
        if self.pending_bytes >= self.bounds.max_part_bytes {
            if self.video.is_empty() {
                let e = PackagerError::AudioWithoutVideo {
                    bytes: self.pending_bytes,
                    max_bytes: self.bounds.max_part_bytes,
                };
                return Err(self.fail(e));
            }
            if self.frozen_frames > 0 {
                let at = self.newest_dts.unwrap_or(0);
                return Err(self.frozen(at, self.pending_bytes));
            }
            self.flush_part();
        }
        Ok(())
    }

    fn flush_part(&mut self) {
        if self.video.is_empty() {
            return;
        }
        let mut samples = Vec::with_capacity(self.video.len());
        for (i, v) in self.video.iter().enumerate() {
            let duration = match self.video.get(i + 1) {
                Some(next) => next.dts.saturating_sub(v.dts),
                None => self.frame_duration,
            };
            samples.push(Sample {
                duration: u32::try_from(duration).unwrap_or(u32::MAX),
                cts_offset: v.cts,
                keyframe: v.keyframe,
                data: v.data.clone(),
            });
        }
        let decode_time = self.video[0].dts;
        let independent = self.video[0].keyframe;
        let total: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
        let mut runs = vec![TrackRun {
            track_id: VIDEO_TRACK,
            base_decode_time: decode_time,
            samples: &samples,
        }];
        if let (Some(base), false) = (self.audio_base, self.audio.is_empty()) {
            runs.push(TrackRun {
                track_id: AUDIO_TRACK,
                base_decode_time: base,
                samples: &self.audio,
            });
        }
        // The part's start in ms: increasing, and the same on every origin.
        let sequence = (decode_time / 90) as u32;
        let bytes = fmp4::fragment(sequence, &runs);
        self.out.push_back(Output::Part {
            bytes,
            duration: total as f64 / f64::from(VIDEO_TIMESCALE),
            independent,
            decode_time,
        });
        self.part_start = decode_time + total;
        self.video.clear();
        self.audio.clear();
        self.audio_base = None;
        self.pending_bytes = 0;
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_secs_f64() * f64::from(VIDEO_TIMESCALE)).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::demo::{Clip, DEMO_CLIP};

    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;

    fn bounds(part: usize, segment: usize) -> Bounds {
        Bounds {
            max_part_bytes: part,
            max_segment_bytes: segment,
            max_keyframe_interval: Duration::from_secs(20),
            max_frozen_frames: 300,
        }
    }

    /// A packager configured with the demo clip's codecs.
    fn packager(bounds: Bounds) -> Packager {
        let clip = Clip::parse(DEMO_CLIP).expect("demo clip");
        let mut p =
            Packager::new(Duration::from_secs(2), Duration::from_millis(500)).with_bounds(bounds);
        p.handle(Input::VideoConfig(VideoCodec::Avc, clip.avcc()))
            .expect("video config");
        if let Some(asc) = clip.asc() {
            p.handle(Input::AudioConfig(asc)).expect("audio config");
        }
        p
    }

    fn video(dts_ms: u64, keyframe: bool, size: usize) -> Input {
        Input::Video {
            dts_ms,
            cts_ms: 0,
            keyframe,
            data: Bytes::from(vec![0x11; size]),
        }
    }

    fn outputs(p: &mut Packager) -> Vec<Output> {
        std::iter::from_fn(|| p.poll_output()).collect()
    }

    /// Feeds `next(i)` until the packager refuses a frame, at most `max` frames; checks
    /// that it never holds more than `cap` bytes of pending part. Returns the error
    /// and how many frames went in before it.
    fn feed_until_error(
        p: &mut Packager,
        max: usize,
        cap: usize,
        mut next: impl FnMut(usize) -> Input,
    ) -> (Option<PackagerError>, usize) {
        for i in 0..max {
            if let Err(e) = p.handle(next(i)) {
                return (Some(e), i);
            }
            assert!(
                p.pending_bytes() <= cap,
                "pending part {} bytes",
                p.pending_bytes()
            );
        }
        (None, max)
    }

    /// HEVCDecoderConfigurationRecord of a 320x240 libx265 clip (Main, level 2).
    const HVCC: &str = "0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003003c959409a10001002a42010101600000030090000003000003003ca00a080f16595952930bc05a020000030002000003003c10a2000100064401c073c189";

    fn hex(s: &str) -> Bytes {
        Bytes::from(
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect::<Vec<u8>>(),
        )
    }

    #[test]
    fn a_switch_to_hevc_closes_the_segment_and_sends_an_hvc1_init() {
        let mut p = packager(bounds(MIB, 4 * MIB));
        p.handle(video(0, true, 1000)).expect("keyframe");
        p.handle(video(33, false, 1000)).expect("frame");
        assert!(p.info().codecs().starts_with("avc1."));
        let out = outputs(&mut p);
        assert!(matches!(out.first(), Some(Output::Init(_))));

        // A bad HEVC record is refused and the H.264 configuration stays.
        assert!(matches!(
            p.handle(Input::VideoConfig(VideoCodec::Hevc, hex("0101"))),
            Err(PackagerError::Video(_))
        ));
        assert!(p.info().codecs().starts_with("avc1."));

        p.handle(Input::VideoConfig(VideoCodec::Hevc, hex(HVCC)))
            .expect("hvcC");
        assert!(
            p.info().codecs().starts_with("hvc1.1.6.L60.90,"),
            "{}",
            p.info().codecs()
        );
        assert_eq!(
            p.info().video.as_ref().and_then(|v| v.dimensions()),
            Some((320, 240))
        );
        let out = outputs(&mut p);
        assert!(out.iter().any(|o| matches!(o, Output::SegmentEnd)));
        // Nothing until the next keyframe, which starts with an hvc1 init segment.
        p.handle(video(66, false, 1000)).expect("frame");
        assert!(outputs(&mut p).is_empty());
        p.handle(video(100, true, 1000)).expect("keyframe");
        let out = outputs(&mut p);
        let Some(Output::Init(init)) = out.first() else {
            panic!("no init segment: {out:?}")
        };
        assert!(init.windows(4).any(|w| w == b"hvc1"));
        assert!(init.windows(4).any(|w| w == b"hvcC"));
        assert!(!init.windows(4).any(|w| w == b"avcC"));
    }

    #[test]
    fn frozen_timestamps_stop_the_packager_within_the_part_cap() {
        let mut p = packager(bounds(MIB, 4 * MIB));
        p.handle(video(5_000, true, 256 * KIB)).expect("keyframe");
        // The old packager took all of it (2.5 GiB) into one part that never closed.
        let (err, fed) = feed_until_error(&mut p, 10_000, MIB + 256 * KIB, |_| {
            video(5_000, false, 256 * KIB)
        });
        assert!(
            matches!(
                err,
                Some(PackagerError::FrozenTimestamps { at_ms: 5_000, .. })
            ),
            "{err:?} after {fed} frames"
        );
        assert!(fed <= 4, "stopped after {fed} frozen frames");
        let out = outputs(&mut p);
        assert!(
            out.iter()
                .all(|o| !matches!(o, Output::Part { duration, .. } if *duration <= 0.0)),
            "no part of zero duration is published"
        );
        assert_eq!(
            out.last(),
            Some(&Output::SegmentEnd),
            "the segment is closed"
        );
        assert!(matches!(
            p.handle(video(6_000, true, 10)),
            Err(PackagerError::Stopped)
        ));
        assert_eq!(p.pending_bytes(), 0);
    }

    #[test]
    fn frozen_timestamps_are_counted_in_frames_too() {
        let mut p = packager(bounds(16 * MIB, 64 * MIB));
        p.handle(video(0, true, 100)).expect("keyframe");
        let (err, fed) = feed_until_error(&mut p, 10_000, 16 * MIB, |_| video(0, false, 100));
        assert!(
            matches!(
                err,
                Some(PackagerError::FrozenTimestamps { frames: 301, .. })
            ),
            "{err:?}"
        );
        assert_eq!(fed, 300);
        // Timestamps that go back count as frozen too, without resetting the count.
        let mut p = packager(bounds(16 * MIB, 64 * MIB));
        p.handle(video(1_000, true, 100)).expect("keyframe");
        let (err, _) = feed_until_error(&mut p, 10_000, 16 * MIB, |i| {
            video(if i % 2 == 0 { 0 } else { 1_000 }, false, 100)
        });
        assert!(
            matches!(err, Some(PackagerError::FrozenTimestamps { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn a_segment_without_keyframes_is_stopped_at_its_byte_cap() {
        let mut p = packager(bounds(MIB, 4 * MIB));
        p.handle(video(0, true, 256 * KIB)).expect("keyframe");
        let (err, fed) = feed_until_error(&mut p, 10_000, MIB + 256 * KIB, |i| {
            video(33 * (i as u64 + 1), false, 256 * KIB)
        });
        assert!(
            matches!(err, Some(PackagerError::NoKeyframe { max_bytes, .. }) if max_bytes == 4 * MIB),
            "{err:?} after {fed} frames"
        );
        // Everything published since the keyframe fits the segment cap.
        let out = outputs(&mut p);
        let published: usize = out
            .iter()
            .map(|o| match o {
                Output::Part { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        assert!(
            published <= 4 * MIB + 64 * KIB,
            "{published} bytes in the segment"
        );
        assert_eq!(out.last(), Some(&Output::SegmentEnd));
    }

    #[test]
    fn a_segment_without_keyframes_is_stopped_at_its_time_cap() {
        let mut p = packager(bounds(16 * MIB, 64 * MIB));
        p.handle(video(0, true, 1000)).expect("keyframe");
        let (err, fed) = feed_until_error(&mut p, 100_000, 16 * MIB, |i| {
            video(40 * (i as u64 + 1), false, 1000)
        });
        match err {
            Some(PackagerError::NoKeyframe {
                seconds,
                max_seconds,
                ..
            }) => assert!(seconds > 20.0 && seconds < 20.1 && max_seconds == 20.0),
            other => panic!("{other:?} after {fed} frames"),
        }
    }

    #[test]
    fn parts_are_cut_on_size_and_regular_streams_never_trip_a_bound() {
        // 400 KiB frames at 30 fps: a 500 ms part would hold 6 MiB; the cap cuts at 1 MiB.
        let mut p = packager(bounds(MIB, 64 * MIB));
        let (err, _) = feed_until_error(&mut p, 30 * 120, MIB + 400 * KIB, |i| {
            video(i as u64 * 1000 / 30, i % 60 == 0, 400 * KIB)
        });
        assert!(err.is_none(), "{err:?}");
        let out = outputs(&mut p);
        let parts: Vec<(usize, bool)> = out
            .iter()
            .filter_map(|o| match o {
                Output::Part {
                    bytes, independent, ..
                } => Some((bytes.len(), *independent)),
                _ => None,
            })
            .collect();
        assert!(parts.len() >= 30 * 120 / 3, "{} parts", parts.len());
        assert!(parts
            .iter()
            .all(|(len, _)| *len <= MIB + 400 * KIB + 4 * KIB));
        // Segments still start on keyframes: one segment per 2 s GOP.
        let segments = out.iter().filter(|o| **o == Output::SegmentEnd).count();
        assert_eq!(segments, 59);
    }

    #[test]
    fn audio_without_video_is_stopped_at_the_part_cap() {
        let mut p = packager(bounds(64 * KIB, 4 * MIB));
        p.handle(video(0, true, 1000)).expect("keyframe");
        p.handle(video(33, false, 1000)).expect("frame");
        p.handle(video(66, false, 1000)).expect("frame");
        let _ = outputs(&mut p);
        // Audio alone from here: the first cap cuts the part with the video above, the
        // next one finds no video to cut a part with.
        let (err, fed) = feed_until_error(&mut p, 100_000, 64 * KIB + 4 * KIB, |i| Input::Audio {
            dts_ms: 100 + 21 * i as u64,
            data: Bytes::from(vec![0x22; 1024]),
        });
        assert!(
            matches!(err, Some(PackagerError::AudioWithoutVideo { .. })),
            "{err:?} after {fed} frames"
        );
    }

    #[test]
    fn frame_rates_snap_to_the_nearest_common_rate() {
        assert_eq!(frame_rate(3000.0), 30.0);
        assert_eq!(frame_rate(3003.0), 29.97);
        assert_eq!(frame_rate(3600.0), 25.0);
        assert_eq!(frame_rate(1501.5), 59.94);
        assert_eq!(frame_rate(7000.0), 12.86);
    }

    #[test]
    fn opus_audio_is_packaged_in_packets_of_their_own_length() {
        let clip = Clip::parse(DEMO_CLIP).expect("demo clip");
        let mut p = Packager::new(Duration::from_secs(2), Duration::from_millis(500));
        p.handle(Input::VideoConfig(VideoCodec::Avc, clip.avcc()))
            .expect("video");
        p.handle(Input::AudioConfig(media::codec::OpusConfig::head(2)))
            .expect("opus head");
        let codecs = p.info().codecs();
        assert!(
            codecs.starts_with("avc1.") && codecs.ends_with(",opus"),
            "{codecs}"
        );
        // 20 ms Opus packets (TOC config 31) beside 30 fps video, from 1 s, in order.
        let packet = Bytes::from_static(&[31 << 3, 1, 2, 3]);
        let mut audio_ms = 1000u64;
        for i in 0..90u64 {
            let v = 1000 + i * 100 / 3;
            p.handle(video(v, i == 0, 500)).expect("video");
            while audio_ms < v + 33 {
                p.handle(Input::Audio {
                    dts_ms: audio_ms,
                    data: packet.clone(),
                })
                .expect("audio");
                audio_ms += 20;
            }
        }
        let out = outputs(&mut p);
        let Some(Output::Init(init)) = out.first() else {
            panic!("no init first: {out:?}")
        };
        let has = |needle: &[u8]| init.windows(needle.len()).any(|w| w == needle);
        assert!(
            has(b"Opus") && has(b"dOps"),
            "Opus sample entry in the init"
        );
        assert!(out.iter().any(|o| matches!(o, Output::Part { .. })));
    }
}
