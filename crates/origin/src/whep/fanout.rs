//! One stream's WHEP fan-out: the only place its media is prepared for WebRTC, however
//! many viewers watch. It attaches to the stream's [`Tap`](super::tap::Tap), turns each
//! H.264 access unit from AVCC into Annex B (SPS and PPS in front of every IDR, which
//! is what str0m's packetiser wants), transcodes AAC to Opus (see `audio`) or passes
//! Opus through (a WHIP publish), and
//! publishes shared [`Frame`]s on a bounded broadcast channel. Viewers subscribe; a
//! viewer that falls a whole channel behind is told it lagged and skips to the next
//! keyframe, so a slow viewer costs no memory beyond the channel.
//!
//! Lives as long as some viewer holds it ([`Arc`]); the last one gone detaches the tap.
//! Not RTP packetisation (str0m does that per viewer: SSRCs and sequence numbers
//! differ per connection), not the sessions.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use media::codec::AvcConfig;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::audio::AacToOpus;
use super::tap::TapInput;
use crate::live::LiveStream;

/// Frames buffered for the viewers of one stream (video and audio together: about
/// 4 s at 30 fps plus 50 Opus packets a second). Shared, so the memory is per stream.
pub const FANOUT_QUEUE: usize = 320;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// H.264 access unit, Annex B; `rtp_time` in 90 kHz.
    Video { keyframe: bool },
    /// One Opus packet (20 ms); `rtp_time` in 48 kHz.
    Audio,
}

/// One frame ready for any viewer's RTP packetiser.
#[derive(Debug)]
pub struct Frame {
    pub kind: Kind,
    pub rtp_time: u64,
    pub data: Arc<[u8]>,
    /// When the frame reached the origin (RTCP sender reports map it to `rtp_time`).
    pub at: Instant,
}

/// A running fan-out.
#[derive(Debug)]
pub struct FanOut {
    pub stream: Arc<LiveStream>,
    tx: broadcast::Sender<Arc<Frame>>,
    number: u64,
    task: JoinHandle<()>,
}

impl FanOut {
    /// Attaches to `stream`'s tap and starts the task (on the current runtime).
    pub fn start(stream: Arc<LiveStream>) -> Arc<FanOut> {
        let attached = stream.whep_tap.attach();
        let (tx, _) = broadcast::channel(FANOUT_QUEUE);
        let span = tracing::info_span!(parent: None, "whep_fanout", stream = %stream.name);
        let mut work = Work {
            video: None,
            audio: None,
            need_keyframe: true,
            tx: tx.clone(),
        };
        if let Some(v) = attached.video_config {
            work.video_config(v);
        }
        if let Some(a) = attached.audio_config {
            work.audio_config(a);
        }
        let mut rx = attached.rx;
        let task = tokio::spawn(
            async move {
                tracing::info!("fan-out started");
                while let Some(input) = rx.recv().await {
                    work.handle(input);
                }
            }
            .instrument(span),
        );
        metrics::gauge!("mediamesh_whep_fanouts").increment(1.0);
        Arc::new(FanOut {
            stream,
            tx,
            number: attached.number,
            task,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.tx.subscribe()
    }
}

impl Drop for FanOut {
    fn drop(&mut self) {
        self.task.abort();
        self.stream.whep_tap.detach(self.number);
        metrics::gauge!("mediamesh_whep_fanouts").decrement(1.0);
        tracing::info!(stream = %self.stream.name, "fan-out stopped (no viewers left)");
    }
}

/// How a stream's audio reaches WebRTC.
enum Audio {
    /// AAC (RTMP, SRT, demo): transcoded once per stream.
    Transcode(Box<AacToOpus>),
    /// Opus (WHIP): passed through as it came; the `OpusHead` it was announced with.
    Pass(Bytes),
}

struct Work {
    video: Option<AvcConfig>,
    audio: Option<Audio>,
    need_keyframe: bool,
    tx: broadcast::Sender<Arc<Frame>>,
}

impl Work {
    fn video_config(&mut self, raw: Bytes) {
        match AvcConfig::parse(raw) {
            Ok(c) => {
                if self.video.as_ref() != Some(&c) {
                    tracing::info!(codec = %c.codec_string(), width = c.width, height = c.height, "video");
                    self.video = Some(c);
                    self.need_keyframe = true;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "video configuration refused; no video until a good one")
            }
        }
    }

    fn audio_config(&mut self, raw: Bytes) {
        let same = match &self.audio {
            Some(Audio::Transcode(a)) => a.config() == &raw[..],
            Some(Audio::Pass(head)) => *head == raw,
            None => false,
        };
        if same {
            return;
        }
        if raw.starts_with(media::codec::OPUS_HEAD) {
            tracing::info!("audio: Opus passed through");
            self.audio = Some(Audio::Pass(raw));
            return;
        }
        match AacToOpus::new(raw) {
            Ok(t) => {
                tracing::info!(source = %t.describe(), "audio transcoded to Opus");
                self.audio = Some(Audio::Transcode(Box::new(t)));
            }
            Err(e) => {
                tracing::warn!(error = %e, "audio not transcoded; WHEP viewers get video only");
                self.audio = None;
            }
        }
    }

    fn handle(&mut self, input: TapInput) {
        match input {
            TapInput::VideoConfig(raw) => self.video_config(raw),
            TapInput::AudioConfig(raw) => self.audio_config(raw),
            TapInput::Video {
                dts_ms,
                cts_ms,
                keyframe,
                data,
                after_gap,
                at,
            } => {
                if after_gap {
                    self.need_keyframe = true;
                }
                if self.need_keyframe && !keyframe {
                    return;
                }
                let Some(cfg) = &self.video else { return };
                let Some(au) = annex_b(&data, cfg, keyframe) else {
                    tracing::debug!("malformed access unit dropped; waiting for a keyframe");
                    self.need_keyframe = true;
                    return;
                };
                self.need_keyframe = false;
                let pts_ms = (dts_ms as i64).saturating_add(i64::from(cts_ms)).max(0) as u64;
                let _ = self.tx.send(Arc::new(Frame {
                    kind: Kind::Video { keyframe },
                    rtp_time: pts_ms.saturating_mul(90),
                    data: au.into(),
                    at,
                }));
            }
            TapInput::Audio { dts_ms, data, at } => {
                let t = match self.audio.as_mut() {
                    Some(Audio::Transcode(t)) => t,
                    Some(Audio::Pass(_)) => {
                        let _ = self.tx.send(Arc::new(Frame {
                            kind: Kind::Audio,
                            rtp_time: dts_ms.saturating_mul(48),
                            data: data.to_vec().into(),
                            at,
                        }));
                        return;
                    }
                    None => return,
                };
                match t.push(dts_ms, &data) {
                    Ok(packets) => {
                        for (rtp_time, packet) in packets {
                            let _ = self.tx.send(Arc::new(Frame {
                                kind: Kind::Audio,
                                rtp_time,
                                data: packet.into(),
                                at,
                            }));
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "AAC frame not transcoded"),
                }
            }
        }
    }
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// One AVCC access unit as Annex B, with the configuration's SPS and PPS in front of
/// a keyframe that does not carry its own. `None` if a length runs past the end.
pub fn annex_b(avcc: &[u8], cfg: &AvcConfig, keyframe: bool) -> Option<Vec<u8>> {
    let n = usize::from(cfg.nal_length_size);
    if !(1..=4).contains(&n) {
        return None;
    }
    let mut nals = Vec::new();
    let mut at = 0usize;
    let mut has_sps = false;
    while at < avcc.len() {
        let len_bytes = avcc.get(at..at + n)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        at += n;
        let nal = avcc.get(at..at.checked_add(len)?)?;
        at += len;
        if let Some(h) = nal.first() {
            has_sps |= h & 0x1f == 7;
            nals.push(nal);
        }
    }
    if nals.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(avcc.len() + 64);
    if keyframe && !has_sps {
        for ps in cfg.sps.iter().chain(cfg.pps.iter()) {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(ps);
        }
    }
    for nal in nals {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AvcConfig {
        AvcConfig {
            profile: 100,
            compatibility: 0,
            level: 31,
            nal_length_size: 4,
            sps: vec![Bytes::from_static(&[0x67, 1, 2])],
            pps: vec![Bytes::from_static(&[0x68, 3])],
            width: 16,
            height: 16,
            raw: Bytes::new(),
        }
    }

    #[test]
    fn avcc_becomes_annex_b_with_parameter_sets_on_keyframes() {
        let au = [0, 0, 0, 2, 0x65, 9, 0, 0, 0, 1, 0x06];
        let out = annex_b(&au, &cfg(), true).expect("ok");
        assert_eq!(
            out,
            [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9, 0, 0, 0, 1, 0x06]
        );
        let out = annex_b(&[0, 0, 0, 1, 0x41], &cfg(), false).expect("ok");
        assert_eq!(out, [0, 0, 0, 1, 0x41]);
        assert!(annex_b(&[0, 0, 0, 9, 0x41], &cfg(), false).is_none());
        assert!(annex_b(&[0, 0], &cfg(), false).is_none());
        assert!(annex_b(&[], &cfg(), false).is_none());
    }
}
