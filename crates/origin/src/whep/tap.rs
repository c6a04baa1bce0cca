//! The tap a live stream's publisher feeds beside its packager: H.264 access units
//! (AVCC, as RTMP and the TS demuxer hand them over) and raw AAC frames, with their
//! codec configurations. Idle (one atomic load per frame) until a WHEP fan-out
//! attaches; then every frame is handed over with a non-blocking `try_send` into a
//! bounded queue: the ingest thread never waits for WHEP. A full queue drops the frame
//! and marks a gap, after which the fan-out waits for the next keyframe.
//!
//! Not the fan-out (see `fanout`), not a copy of the media: `Bytes` are shared.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Frames queued from the publisher to the fan-out (about 3 s of 30 fps video with
/// AAC audio at 48 kHz).
pub const TAP_QUEUE: usize = 256;

/// What the publisher hands over.
#[derive(Debug, Clone)]
pub enum TapInput {
    /// `AVCDecoderConfigurationRecord`.
    VideoConfig(Bytes),
    /// AAC `AudioSpecificConfig`.
    AudioConfig(Bytes),
    /// One access unit, AVCC (length-prefixed NAL units).
    Video {
        dts_ms: u64,
        cts_ms: i32,
        keyframe: bool,
        data: Bytes,
        /// Frames were dropped just before this one.
        after_gap: bool,
        at: Instant,
    },
    /// One raw AAC frame.
    Audio {
        dts_ms: u64,
        data: Bytes,
        at: Instant,
    },
}

/// A fan-out's end of the tap.
#[derive(Debug)]
pub struct Attached {
    pub number: u64,
    pub rx: mpsc::Receiver<TapInput>,
    pub video_config: Option<Bytes>,
    pub audio_config: Option<Bytes>,
}

/// One stream's tap (a field of the live stream).
#[derive(Debug, Default)]
pub struct Tap {
    active: AtomicBool,
    gap: AtomicBool,
    /// The attached fan-out's queue and its attach number.
    sink: Mutex<Option<(u64, mpsc::Sender<TapInput>)>>,
    attached: std::sync::atomic::AtomicU64,
    /// The latest configurations, so a fan-out that attaches mid-stream can start.
    configs: Mutex<(Option<Bytes>, Option<Bytes>)>,
}

impl Tap {
    /// Attaches a fan-out (replacing any other); returns its attach number, its queue
    /// and the current configurations (video, audio).
    pub fn attach(&self) -> Attached {
        let (tx, rx) = mpsc::channel(TAP_QUEUE);
        let configs = self.configs.lock().clone();
        let number = self.attached.fetch_add(1, Ordering::SeqCst) + 1;
        *self.sink.lock() = Some((number, tx));
        self.gap.store(false, Ordering::SeqCst);
        self.active.store(true, Ordering::SeqCst);
        Attached {
            number,
            rx,
            video_config: configs.0,
            audio_config: configs.1,
        }
    }

    /// Detaches fan-out `number` (if it is still the attached one): the tap goes idle.
    pub fn detach(&self, number: u64) {
        let mut sink = self.sink.lock();
        if sink.as_ref().is_some_and(|(n, _)| *n == number) {
            self.active.store(false, Ordering::SeqCst);
            *sink = None;
        }
    }

    /// Whether a fan-out is attached.
    pub fn is_attached(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub fn video_config(&self, record: &Bytes) {
        self.configs.lock().0 = Some(record.clone());
        self.send(TapInput::VideoConfig(record.clone()));
    }

    pub fn audio_config(&self, asc: &Bytes) {
        self.configs.lock().1 = Some(asc.clone());
        self.send(TapInput::AudioConfig(asc.clone()));
    }

    pub fn video(&self, dts_ms: u64, cts_ms: i32, keyframe: bool, data: &Bytes) {
        if !self.is_attached() {
            return;
        }
        let after_gap = self.gap.swap(false, Ordering::SeqCst);
        if !self.send(TapInput::Video {
            dts_ms,
            cts_ms,
            keyframe,
            data: data.clone(),
            after_gap,
            at: Instant::now(),
        }) && after_gap
        {
            self.gap.store(true, Ordering::SeqCst);
        }
    }

    pub fn audio(&self, dts_ms: u64, data: &Bytes) {
        if !self.is_attached() {
            return;
        }
        self.send(TapInput::Audio {
            dts_ms,
            data: data.clone(),
            at: Instant::now(),
        });
    }

    /// Hands `input` over without waiting; `false` if it was dropped.
    fn send(&self, input: TapInput) -> bool {
        if !self.is_attached() {
            return false;
        }
        let mut sink = self.sink.lock();
        let Some((_, tx)) = sink.as_ref() else {
            return false;
        };
        match tx.try_send(input) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.gap.store(true, Ordering::SeqCst);
                metrics::counter!("mediamesh_whep_tap_dropped_total").increment(1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.active.store(false, Ordering::SeqCst);
                *sink = None;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_until_attached_then_a_full_queue_marks_a_gap() {
        let tap = Tap::default();
        let frame = Bytes::from_static(b"x");
        tap.video_config(&Bytes::from_static(b"cfg"));
        tap.video(0, 0, true, &frame);
        let Attached {
            number,
            mut rx,
            video_config,
            audio_config,
        } = tap.attach();
        assert_eq!(video_config.as_deref(), Some(&b"cfg"[..]));
        assert!(audio_config.is_none());
        // An older fan-out going away does not detach this one.
        tap.detach(number - 1);
        assert!(tap.is_attached());
        for i in 0..TAP_QUEUE + 5 {
            tap.video(i as u64, 0, false, &frame);
        }
        // Drain; the next frame after the overflow says so.
        while rx.try_recv().is_ok() {}
        tap.video(9_999, 0, true, &frame);
        match rx.try_recv() {
            Ok(TapInput::Video { after_gap, .. }) => assert!(after_gap),
            other => panic!("unexpected {other:?}"),
        }
        drop(rx);
        tap.audio(1, &frame);
        assert!(!tap.is_attached());
    }
}
