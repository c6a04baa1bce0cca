//! The live CMAF packager, sans-IO: H.264 and AAC frames with millisecond timestamps go
//! in; an init segment, CMAF parts (one moof+mdat each, audio and video muxed) and
//! segment boundaries come out.
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

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use media::codec::{AacConfig, AvcConfig, TrackCodec};
use media::fmp4::{self, Sample, Track, TrackRun};

use super::numbering::Grid;

/// Video timescale: 90 kHz, exact for millisecond input.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Track id of H.264 in the muxed fragments.
pub const VIDEO_TRACK: u32 = 1;
/// Track id of AAC in the muxed fragments.
pub const AUDIO_TRACK: u32 = 2;
const AAC_FRAME: u32 = 1024;

/// One frame handed to the packager.
#[derive(Debug, Clone)]
pub enum Input {
    /// AVCDecoderConfigurationRecord.
    VideoConfig(Bytes),
    /// AudioSpecificConfig.
    AudioConfig(Bytes),
    /// AVCC NAL units. `dts_ms` is monotonic (already unwrapped and restamped).
    Video {
        dts_ms: u64,
        cts_ms: i32,
        keyframe: bool,
        data: Bytes,
    },
    /// One raw AAC frame.
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

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackagerError {
    #[error("bad H.264 configuration: {0}")]
    Video(media::codec::CodecError),
    #[error("bad AAC configuration: {0}")]
    Audio(media::codec::CodecError),
}

/// Stream facts the API and manifests need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamInfo {
    pub video: Option<AvcConfig>,
    pub audio: Option<AacConfig>,
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
        }
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

    pub fn handle(&mut self, input: Input) -> Result<(), PackagerError> {
        match input {
            Input::VideoConfig(raw) => {
                let cfg = AvcConfig::parse(raw).map_err(PackagerError::Video)?;
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
                let cfg = AacConfig::parse(raw).map_err(PackagerError::Audio)?;
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
            } => self.video_frame(dts_ms * 90, cts_ms.saturating_mul(90), keyframe, data),
            Input::Audio { dts_ms, data } => self.audio_frame(dts_ms, data),
        }
        Ok(())
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
            codec: TrackCodec::Avc(video),
        }];
        if let Some(audio) = self.info.audio.clone() {
            tracks.push(Track {
                id: AUDIO_TRACK,
                timescale: audio.sample_rate.max(1),
                codec: TrackCodec::Aac(audio),
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
    }

    fn video_frame(&mut self, dts: u64, cts: i32, keyframe: bool, data: Bytes) {
        if !self.started {
            if !keyframe || self.info.video.is_none() {
                return;
            }
            self.start(dts);
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
        let part_end = dts + self.frame_duration;
        let elapsed = part_end.saturating_sub(self.part_start);
        if elapsed + self.frame_duration > self.part_target + self.frame_duration / 4 {
            self.flush_part();
        }
    }

    fn audio_frame(&mut self, dts_ms: u64, data: Bytes) {
        let Some(rate) = self.info.audio.as_ref().map(|a| u64::from(a.sample_rate)) else {
            return;
        };
        if !self.started || rate == 0 {
            return;
        }
        let at = dts_ms * rate / 1000;
        let next = match self.audio_next {
            // Keep the clean 1024-sample cadence while the timestamps stay within half a
            // frame of it: then `next` is also the whole frame nearest to them, which
            // is where an origin that joined later starts (below).
            Some(next) if next.abs_diff(at) <= u64::from(AAC_FRAME / 2) => next,
            // (Re)start on the nearest whole AAC frame counted from timestamp 0, so an
            // origin that joined later lands on the same sample positions.
            _ => (at + u64::from(AAC_FRAME / 2)) / u64::from(AAC_FRAME) * u64::from(AAC_FRAME),
        };
        if self.audio.is_empty() {
            self.audio_base = Some(next);
        }
        self.audio.push(Sample {
            duration: AAC_FRAME,
            cts_offset: 0,
            keyframe: true,
            data,
        });
        self.audio_next = Some(next + u64::from(AAC_FRAME));
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
    }
}

fn ticks(d: Duration) -> u64 {
    (d.as_secs_f64() * f64::from(VIDEO_TIMESCALE)).round() as u64
}

#[cfg(test)]
mod tests {
    use super::frame_rate;

    #[test]
    fn frame_rates_snap_to_the_nearest_common_rate() {
        assert_eq!(frame_rate(3000.0), 30.0);
        assert_eq!(frame_rate(3003.0), 29.97);
        assert_eq!(frame_rate(3600.0), 25.0);
        assert_eq!(frame_rate(1501.5), 59.94);
        assert_eq!(frame_rate(7000.0), 12.86);
    }
}
