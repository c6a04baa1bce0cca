//! AAC to Opus for WHEP: browsers' WebRTC stacks take Opus, publishers send AAC (RTMP,
//! SRT). One [`AacToOpus`] per stream (in its fan-out), never per viewer.
//!
//! # Path: symphonia's AAC decoder + libopus
//!
//! - **Decode**: `symphonia-codec-aac`, pure Rust (no C, no unsafe), AAC-LC mono or
//!   stereo, which is what OBS and ffmpeg publish. HE-AAC (SBR/PS) and more than two
//!   channels are refused with a log line; such a stream plays as video only.
//! - **Encode**: libopus through the `opus` crate (a thin safe binding over
//!   `audiopus_sys`, which links the system libopus found by pkg-config: Debian's
//!   `libopus-dev`). libopus is the reference encoder every WebRTC stack uses; a
//!   pure-Rust Opus *encoder* of comparable quality does not exist today. The
//!   alternative of linking ffmpeg's libraries (libavcodec for both) would pull a far
//!   larger C surface into the origin for one resampler and two codecs.
//! - **Resample**: Opus runs at 48 kHz (it also takes 8/12/16/24 kHz input, which we use
//!   as is). Other rates (44.1 kHz above all) go through a small linear interpolator of
//!   ours: enough for monitoring-grade audio at sub-second latency; not a studio
//!   resampler.
//!
//! Output: 20 ms stereo Opus packets (mono sources are duplicated to both channels)
//! with an RTP time in 48 kHz, derived from the AAC frames' timestamps (so audio and
//! video share one timeline) and then counted in samples; a jump in the input
//! timestamps (a publisher reconnecting) starts the count again.
//!
//! Not a general audio pipeline: no mixing, no loudness, no PCM out.

use bytes::Bytes;
use media::codec::AacConfig;
use opus::{Application, Channels as OpusChannels, Encoder};
use symphonia_codec_aac::AacDecoder;
use symphonia_core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia_core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia_core::packet::PacketRef;
use symphonia_core::units::{Duration as SymDuration, Timestamp};

/// Opus frame: 20 ms.
const FRAME_MS: u64 = 20;
/// Largest Opus packet we produce (RFC 6716 allows 1275 bytes per frame).
const MAX_PACKET: usize = 1500;
/// Opus bitrate, bits per second (stereo music at WebRTC quality).
const BITRATE: i32 = 96_000;
/// An input timestamp this far from where the samples say it should be restarts the
/// RTP count (reconnects, splices).
const RESYNC_MS: u64 = 500;

/// Why audio cannot be transcoded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("AAC configuration: {0}")]
    Config(#[from] media::codec::CodecError),
    #[error("AAC decoder: {0}")]
    Decoder(String),
    #[error("Opus encoder: {0}")]
    Encoder(#[from] opus::Error),
    #[error("unsupported audio: {0}")]
    Unsupported(String),
}

/// Stateful AAC to Opus converter for one stream.
pub struct AacToOpus {
    asc: Bytes,
    config: AacConfig,
    decoder: AacDecoder,
    encoder: Encoder,
    /// Rate fed to the encoder (48000 or one Opus takes natively).
    enc_rate: u32,
    resampler: Option<Linear>,
    /// Interleaved stereo samples at `enc_rate` waiting for a full frame.
    pending: Vec<f32>,
    /// RTP time (48 kHz) of the first sample in `pending`.
    next_rtp: Option<u64>,
    /// Input timestamp (ms) the next AAC frame should carry.
    expect_ms: Option<f64>,
    decoded: Vec<f32>,
}

impl std::fmt::Debug for AacToOpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacToOpus")
            .field("source", &self.describe())
            .finish_non_exhaustive()
    }
}

impl AacToOpus {
    /// A converter for AAC with this `AudioSpecificConfig`.
    pub fn new(asc: Bytes) -> Result<Self, AudioError> {
        let config = AacConfig::parse(asc.clone())?;
        if config.channels == 0 || config.channels > 2 {
            return Err(AudioError::Unsupported(format!(
                "{} channels (mono and stereo are transcoded)",
                config.channels
            )));
        }
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(asc.to_vec().into_boxed_slice());
        let decoder = AacDecoder::try_new(&params, &AudioDecoderOptions::default())
            .map_err(|e| AudioError::Decoder(e.to_string()))?;
        let enc_rate = match config.sample_rate {
            r @ (8_000 | 12_000 | 16_000 | 24_000 | 48_000) => r,
            _ => 48_000,
        };
        let resampler = (enc_rate != config.sample_rate).then(|| Linear::new(config.sample_rate));
        let mut encoder = Encoder::new(enc_rate, OpusChannels::Stereo, Application::Audio)?;
        encoder.set_bitrate(opus::Bitrate::Bits(BITRATE))?;
        Ok(Self {
            asc,
            config,
            decoder,
            encoder,
            enc_rate,
            resampler,
            pending: Vec::new(),
            next_rtp: None,
            expect_ms: None,
            decoded: Vec::new(),
        })
    }

    /// The `AudioSpecificConfig` this converter was made for.
    pub fn config(&self) -> &[u8] {
        &self.asc
    }

    /// e.g. "mp4a.40.2 44100 Hz 2 ch, resampled to 48000 Hz".
    pub fn describe(&self) -> String {
        let c = &self.config;
        let mut s = format!(
            "{} {} Hz {} ch",
            c.codec_string(),
            c.sample_rate,
            c.channels
        );
        if self.resampler.is_some() {
            s.push_str(&format!(", resampled to {} Hz", self.enc_rate));
        }
        s
    }

    /// Takes one raw AAC frame with its timestamp; returns the Opus packets it
    /// completed, each with its RTP time (48 kHz).
    pub fn push(&mut self, dts_ms: u64, aac: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, AudioError> {
        // Keep the RTP clock on the input timeline.
        let frame_ms = 1024.0 * 1000.0 / f64::from(self.config.sample_rate);
        let resync = match self.expect_ms {
            Some(e) => (dts_ms as f64 - e).abs() > RESYNC_MS as f64,
            None => true,
        };
        if resync {
            self.pending.clear();
            self.next_rtp = Some(dts_ms.saturating_mul(48));
            if let Some(r) = self.resampler.as_mut() {
                r.reset();
            }
        }
        self.expect_ms = Some(dts_ms as f64 + frame_ms);

        let packet = PacketRef::new(0, Timestamp::new(0), SymDuration::new(1024), aac);
        let buf = self
            .decoder
            .decode_ref(&packet)
            .map_err(|e| AudioError::Decoder(e.to_string()))?;
        let channels = buf.spec().channels().count().max(1);
        buf.copy_to_vec_interleaved(&mut self.decoded);
        // To interleaved stereo at the source rate.
        let frames = self.decoded.len() / channels;
        let mut stereo = Vec::with_capacity(frames * 2);
        for f in 0..frames {
            let l = self.decoded[f * channels];
            let r = if channels > 1 {
                self.decoded[f * channels + 1]
            } else {
                l
            };
            stereo.push(l);
            stereo.push(r);
        }
        match self.resampler.as_mut() {
            Some(r) => r.process(&stereo, &mut self.pending),
            None => self.pending.extend_from_slice(&stereo),
        }

        let per_frame = (self.enc_rate as usize * FRAME_MS as usize / 1000) * 2;
        let mut out = Vec::new();
        let mut consumed = 0;
        while self.pending.len() - consumed >= per_frame {
            let pcm = &self.pending[consumed..consumed + per_frame];
            let mut packet = vec![0u8; MAX_PACKET];
            let n = self.encoder.encode_float(pcm, &mut packet)?;
            packet.truncate(n);
            let rtp = self.next_rtp.unwrap_or(0);
            out.push((rtp, packet));
            self.next_rtp = Some(rtp + 48 * FRAME_MS);
            consumed += per_frame;
        }
        self.pending.drain(..consumed);
        Ok(out)
    }
}

/// Linear interpolation of interleaved stereo to 48 kHz.
#[derive(Debug)]
struct Linear {
    /// Input samples per output sample.
    step: f64,
    /// Position of the next output sample, in input frames, relative to `last`.
    pos: f64,
    /// The last input frame of the previous call (interpolation crosses calls).
    last: Option<(f32, f32)>,
}

impl Linear {
    fn new(input_rate: u32) -> Self {
        Self {
            step: f64::from(input_rate) / 48_000.0,
            pos: 0.0,
            last: None,
        }
    }

    fn reset(&mut self) {
        self.pos = 0.0;
        self.last = None;
    }

    /// Appends the resampled `input` (interleaved stereo) to `out`.
    fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let n = input.len() / 2;
        if n == 0 {
            return;
        }
        // Frame i of the virtual input: -1 is `last`, 0.. is `input`.
        let frame = |i: isize| -> (f32, f32) {
            if i < 0 {
                self.last.unwrap_or((input[0], input[1]))
            } else {
                let i = i as usize;
                (input[i * 2], input[i * 2 + 1])
            }
        };
        let start = if self.last.is_some() { -1isize } else { 0 };
        let mut pos = self.pos;
        // Output while both neighbours are known.
        loop {
            let base = pos.floor();
            let i = base as isize + start;
            if i + 1 >= n as isize {
                break;
            }
            let t = (pos - base) as f32;
            let (l0, r0) = frame(i);
            let (l1, r1) = frame(i + 1);
            out.push(l0 + (l1 - l0) * t);
            out.push(r0 + (r1 - r0) * t);
            pos += self.step;
        }
        // Carry the position over, relative to the last input frame.
        let consumed = (n as isize - 1 - start) as f64;
        self.pos = pos - consumed;
        self.last = Some((input[(n - 1) * 2], input[(n - 1) * 2 + 1]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_resampling_keeps_the_rate() {
        let mut r = Linear::new(44_100);
        let mut out = Vec::new();
        // One second of input in 1024-frame chunks.
        let mut fed = 0;
        while fed < 44_100 {
            let n = 1024.min(44_100 - fed);
            let chunk: Vec<f32> = (0..n).flat_map(|i| [(fed + i) as f32, 0.0]).collect();
            r.process(&chunk, &mut out);
            fed += n;
        }
        let frames = out.len() / 2;
        assert!((47_990..=48_000).contains(&frames), "{frames}");
        // Monotone ramp in, monotone ramp out.
        assert!(out
            .chunks(2)
            .zip(out.chunks(2).skip(1))
            .all(|(a, b)| b[0] >= a[0]));
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(AacToOpus::new(Bytes::from_static(&[0, 0])).is_err());
        // AAC-LC 48 kHz stereo: 0x11 0x90.
        let t = AacToOpus::new(Bytes::from_static(&[0x11, 0x90])).expect("aac-lc");
        assert!(t.describe().contains("48000 Hz 2 ch"), "{}", t.describe());
        // 44.1 kHz: resampled.
        let t = AacToOpus::new(Bytes::from_static(&[0x12, 0x10])).expect("aac-lc 44.1");
        assert!(t.describe().contains("resampled"), "{}", t.describe());
    }
}
