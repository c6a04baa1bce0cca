//! The built-in `demo` channel: a short H.264/AAC clip compiled into the binary
//! (`media/demo.mp4`, made by `scripts/make-demo-clip.sh`), played in real time in an
//! endless loop with timestamps that keep running, so `mediamesh serve --demo` shows a
//! live stream with no encoder installed.
//!
//! It reads the clip with the `media::mp4` reader and feeds the same `Publisher` an
//! RTMP publish would; it is not a general file-to-live tool.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media::bmff::Boxes;
use media::mp4::{self, SampleEntry, TrackKind};

use crate::live::{Publisher, Streams};

/// The clip shipped in the repository.
pub static DEMO_CLIP: &[u8] = include_bytes!("../../../../media/demo.mp4");

/// Errors preparing the loop.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo clip is not a usable MP4: {0}")]
    Clip(String),
    #[error("cannot publish the demo channel: {0}")]
    Publish(#[from] crate::live::PublishError),
    #[error("the demo channel's media was refused: {0}")]
    Media(#[from] crate::live::packager::PackagerError),
}

#[derive(Debug, Clone)]
struct Frame {
    /// Milliseconds from the start of the clip.
    at_ms: u64,
    video: bool,
    cts_ms: i32,
    keyframe: bool,
    data: Bytes,
}

/// The clip, demuxed once.
#[derive(Debug)]
pub struct Clip {
    avcc: Bytes,
    asc: Option<Bytes>,
    frames: Vec<Frame>,
    duration_ms: u64,
}

impl Clip {
    /// Demuxes an in-memory MP4 (H.264 video, optional AAC audio).
    pub fn parse(file: &[u8]) -> Result<Self, DemoError> {
        let moov = find_moov(file).ok_or_else(|| DemoError::Clip("no moov box".into()))?;
        let parsed = mp4::parse_moov(moov).map_err(|e| DemoError::Clip(e.to_string()))?;
        let mut avcc = None;
        let mut asc = None;
        let mut frames = Vec::new();
        let mut duration_ms = 0;
        for t in parsed.tracks {
            let scale = u64::from(t.timescale.max(1));
            let video = match (&t.kind, &t.entry) {
                (TrackKind::Video, SampleEntry::Avc { avcc: rec, .. }) if avcc.is_none() => {
                    avcc = Some(rec.clone());
                    true
                }
                (TrackKind::Audio, SampleEntry::Aac { asc: cfg, .. }) if asc.is_none() => {
                    asc = Some(cfg.clone());
                    false
                }
                _ => continue,
            };
            for s in &t.samples {
                let start =
                    usize::try_from(s.offset).map_err(|_| DemoError::Clip("offset".into()))?;
                let data = file
                    .get(start..start + s.size as usize)
                    .ok_or_else(|| DemoError::Clip("sample outside the file".into()))?;
                frames.push(Frame {
                    at_ms: s.dts * 1000 / scale,
                    video,
                    cts_ms: i32::try_from(i64::from(s.cts_offset) * 1000 / scale as i64)
                        .unwrap_or(0),
                    keyframe: s.keyframe,
                    data: Bytes::copy_from_slice(data),
                });
            }
            if video {
                duration_ms = t
                    .samples
                    .last()
                    .map_or(0, |s| (s.dts + u64::from(s.duration)) * 1000 / scale);
            }
        }
        let avcc = avcc.ok_or_else(|| DemoError::Clip("no H.264 track".into()))?;
        if duration_ms == 0 {
            return Err(DemoError::Clip("empty video track".into()));
        }
        // Audio past the end of the video would overlap the next loop.
        frames.retain(|f| f.at_ms < duration_ms);
        frames.sort_by_key(|f| (f.at_ms, !f.video));
        Ok(Self {
            avcc,
            asc,
            frames,
            duration_ms,
        })
    }

    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }

    /// The clip's AVCDecoderConfigurationRecord (for tests that build their own frames).
    #[cfg(test)]
    pub(crate) fn avcc(&self) -> Bytes {
        self.avcc.clone()
    }

    /// The clip's video frames in decode order: (ms, keyframe, AVCC data) (for tests).
    #[cfg(test)]
    pub(crate) fn video_frames(&self) -> Vec<(u64, bool, Bytes)> {
        self.frames
            .iter()
            .filter(|f| f.video)
            .map(|f| (f.at_ms, f.keyframe, f.data.clone()))
            .collect()
    }

    /// The clip's AudioSpecificConfig, if it has audio (for tests).
    #[cfg(test)]
    pub(crate) fn asc(&self) -> Option<Bytes> {
        self.asc.clone()
    }

    /// Hands the clip's codec configurations to `publisher`.
    pub fn configure(&self, publisher: &mut Publisher) -> Result<(), DemoError> {
        publisher
            .video_config(self.avcc.clone())
            .map_err(|e| DemoError::Clip(e.to_string()))?;
        if let Some(asc) = &self.asc {
            publisher
                .audio_config(asc.clone())
                .map_err(|e| DemoError::Clip(e.to_string()))?;
        }
        Ok(())
    }

    /// Feeds one pass of the clip at once (no pacing), timestamps shifted by `offset_ms`.
    pub fn feed_all(&self, publisher: &mut Publisher, offset_ms: u64) -> Result<(), DemoError> {
        for f in &self.frames {
            feed(publisher, f, offset_ms + f.at_ms)?;
        }
        Ok(())
    }
}

fn feed(publisher: &mut Publisher, f: &Frame, ts: u64) -> Result<(), DemoError> {
    if f.video {
        publisher.video(ts, f.cts_ms, f.keyframe, f.data.clone())?;
    } else {
        publisher.audio(ts, f.data.clone())?;
    }
    Ok(())
}

fn find_moov(file: &[u8]) -> Option<&[u8]> {
    Boxes::new(file)
        .find(b"moov")
        .ok()
        .flatten()
        .map(|b| b.bytes())
}

/// Publishes `name` from `clip` in real time, forever (until the task is dropped).
pub async fn run(streams: Arc<Streams>, name: &str, clip: Clip) -> Result<(), DemoError> {
    let mut publisher = streams.publish(name, None)?;
    publisher.stream().set_source("demo");
    clip.configure(&mut publisher)?;
    tracing::info!(
        stream = name,
        seconds = clip.duration_ms as f64 / 1000.0,
        "demo channel looping"
    );
    let start = tokio::time::Instant::now();
    let mut loop_offset = 0u64;
    loop {
        for f in &clip.frames {
            let ts = loop_offset + f.at_ms;
            tokio::time::sleep_until(start + Duration::from_millis(ts)).await;
            feed(&mut publisher, f, ts)?;
        }
        loop_offset += clip.duration_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_clip_demuxes() {
        let clip = Clip::parse(DEMO_CLIP).expect("demo clip parses");
        assert!(clip.duration_ms >= 2000);
        assert!(clip.asc.is_some());
        assert!(clip.frames.iter().any(|f| f.video && f.keyframe));
        assert!(clip.frames.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Clip::parse(b"").is_err());
        assert!(Clip::parse(&[0u8; 64]).is_err());
        assert!(Clip::parse(&DEMO_CLIP[..DEMO_CLIP.len() / 2]).is_err());
    }
}
