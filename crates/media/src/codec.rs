//! Decoder configurations as they arrive in FLV / Enhanced RTMP sequence headers:
//! H.264 and AAC here, H.265 in [`hevc`] and AV1 in [`av1`]; [`VideoConfig`] is
//! whichever of the three video codecs a stream carries; Opus as WHIP ingest makes its
//! `OpusHead`.
//!
//! [`AvcConfig`] parses an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15
//! §5.3.3) and decodes just enough of its first sequence parameter set
//! (ITU-T H.264 §7.3.2.1.1) to learn the displayed picture size. [`AacConfig`]
//! parses the leading fields of an `AudioSpecificConfig` (ISO/IEC 14496-3
//! §1.6.2.1). Both keep the record exactly as received so the muxer can copy
//! it verbatim into `avcC` / `esds`, and both produce RFC 6381 codec strings.
//!
//! This is not a bitstream decoder: VUI, PPS contents, slice data, AAC program
//! config elements and the GASpecificConfig are not interpreted, and nothing
//! here rewrites or normalises the records. Parsing is pure and panic-free;
//! malformed or truncated input yields a [`CodecError`].

use bytes::Bytes;
use thiserror::Error;

use crate::bmff::{BitError, BitReader, BoxError, Reader};

pub mod av1;
pub mod hevc;

pub use av1::Av1Config;
pub use hevc::HevcConfig;

/// Errors produced while parsing decoder configurations.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The input ended before the named field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// `configurationVersion` of an AVCDecoderConfigurationRecord is not 1.
    #[error("unsupported AVCDecoderConfigurationRecord version {0}")]
    UnsupportedAvcConfigVersion(u8),
    /// The record carries no sequence parameter set.
    #[error("AVCDecoderConfigurationRecord has no SPS")]
    NoSps,
    /// The record carries no picture parameter set.
    #[error("AVCDecoderConfigurationRecord has no PPS")]
    NoPps,
    /// A parameter set NAL unit has the wrong `nal_unit_type`.
    #[error("expected NAL unit type {expected}, found {found}")]
    UnexpectedNalType {
        /// 7 for SPS, 8 for PPS.
        expected: u8,
        /// Type found in the NAL header.
        found: u8,
    },
    /// The SPS holds a value outside its legal range.
    #[error("invalid SPS: {0}")]
    InvalidSps(&'static str),
    /// The AudioSpecificConfig holds a value that is reserved or unsupported.
    #[error("invalid AudioSpecificConfig: {0}")]
    InvalidAsc(&'static str),
    /// The Opus identification header is malformed or unsupported.
    #[error("invalid OpusHead: {0}")]
    InvalidOpusHead(&'static str),
    /// A configuration record of another version than the one defined.
    #[error("unsupported {record} version {version}")]
    UnsupportedConfigVersion {
        /// Which record.
        record: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A configuration record holds a reserved or out-of-range value.
    #[error("invalid decoder configuration: {0}")]
    InvalidRecord(&'static str),
    /// A configuration record lacks a parameter set the decoder needs.
    #[error("{0} decoder configuration has no {1}")]
    MissingParameterSet(&'static str, &'static str),
    /// AV1 OBU framing or a sequence header is invalid.
    #[error("invalid AV1 OBU: {0}")]
    InvalidObu(&'static str),
}

/// The video configuration of a stream: H.264, H.265 or AV1.
#[derive(Clone, Debug, PartialEq)]
pub enum VideoConfig {
    /// H.264 (`avc1`).
    Avc(AvcConfig),
    /// H.265 (`hvc1`).
    Hevc(HevcConfig),
    /// AV1 (`av01`).
    Av1(Av1Config),
}

/// Which video codec a configuration record is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264: AVCDecoderConfigurationRecord, AVCC NAL units.
    Avc,
    /// H.265: HEVCDecoderConfigurationRecord, length-prefixed NAL units.
    Hevc,
    /// AV1: AV1CodecConfigurationRecord, low-overhead OBUs.
    Av1,
}

impl VideoCodec {
    /// The MP4 sample entry / FourCC name (`avc1`, `hvc1`, `av01`).
    pub fn fourcc(self) -> &'static str {
        match self {
            VideoCodec::Avc => "avc1",
            VideoCodec::Hevc => "hvc1",
            VideoCodec::Av1 => "av01",
        }
    }
}

impl VideoConfig {
    /// Parses a configuration record of `codec`.
    pub fn parse(codec: VideoCodec, record: Bytes) -> Result<Self, CodecError> {
        Ok(match codec {
            VideoCodec::Avc => VideoConfig::Avc(AvcConfig::parse(record)?),
            VideoCodec::Hevc => VideoConfig::Hevc(HevcConfig::parse(record)?),
            VideoCodec::Av1 => VideoConfig::Av1(Av1Config::parse(record)?),
        })
    }

    /// Which codec.
    pub fn codec(&self) -> VideoCodec {
        match self {
            VideoConfig::Avc(_) => VideoCodec::Avc,
            VideoConfig::Hevc(_) => VideoCodec::Hevc,
            VideoConfig::Av1(_) => VideoCodec::Av1,
        }
    }

    /// RFC 6381 codec string (`avc1.64001f`, `hvc1.1.6.L93.B0`, `av01.0.08M.08`).
    pub fn codec_string(&self) -> String {
        match self {
            VideoConfig::Avc(c) => c.codec_string(),
            VideoConfig::Hevc(c) => c.codec_string(),
            VideoConfig::Av1(c) => c.codec_string(),
        }
    }

    /// Displayed picture size, when the configuration tells it (an AV1 record
    /// without a sequence header does not).
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        match self {
            VideoConfig::Avc(c) => Some((c.width, c.height)),
            VideoConfig::Hevc(c) => Some((c.width, c.height)),
            VideoConfig::Av1(c) => c.dimensions,
        }
    }

    /// Picture width, 0 when unknown.
    pub fn width(&self) -> u32 {
        self.dimensions().map_or(0, |d| d.0)
    }

    /// Picture height, 0 when unknown.
    pub fn height(&self) -> u32 {
        self.dimensions().map_or(0, |d| d.1)
    }

    /// The H.264 configuration, if this is H.264.
    pub fn as_avc(&self) -> Option<&AvcConfig> {
        match self {
            VideoConfig::Avc(c) => Some(c),
            _ => None,
        }
    }

    /// The record as received.
    pub fn raw(&self) -> &Bytes {
        match self {
            VideoConfig::Avc(c) => &c.raw,
            VideoConfig::Hevc(c) => &c.raw,
            VideoConfig::Av1(c) => &c.raw,
        }
    }

    /// The track codec for the fMP4 writer.
    pub fn into_track_codec(self) -> TrackCodec {
        match self {
            VideoConfig::Avc(c) => TrackCodec::Avc(c),
            VideoConfig::Hevc(c) => TrackCodec::Hevc(c),
            VideoConfig::Av1(c) => TrackCodec::Av1(c),
        }
    }
}

/// Codec configuration of one track.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackCodec {
    /// H.264 video.
    Avc(AvcConfig),
    /// H.265 video.
    Hevc(HevcConfig),
    /// AV1 video.
    Av1(Av1Config),
    /// AAC audio.
    Aac(AacConfig),
    /// Opus audio (`Opus` sample entry with `dOps`, ISO/IEC 14496-12 Opus binding).
    Opus(OpusConfig),
}

/// The audio configuration of a live stream: AAC (RTMP, SRT, the demo) or Opus
/// (WHIP). Ingest hands it over as raw bytes: an `AudioSpecificConfig`, or an Opus
/// identification header (`OpusHead`, RFC 7845 §5.1), told apart by the header's
/// magic.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioConfig {
    Aac(AacConfig),
    Opus(OpusConfig),
}

impl AudioConfig {
    /// An `OpusHead` packet, or else an `AudioSpecificConfig`.
    pub fn parse(raw: Bytes) -> Result<Self, CodecError> {
        if raw.starts_with(OPUS_HEAD) {
            OpusConfig::parse(raw).map(AudioConfig::Opus)
        } else {
            AacConfig::parse(raw).map(AudioConfig::Aac)
        }
    }

    /// Samples per second of the track's timescale (Opus: always 48 000).
    pub fn sample_rate(&self) -> u32 {
        match self {
            AudioConfig::Aac(a) => a.sample_rate,
            AudioConfig::Opus(_) => OPUS_RATE,
        }
    }

    pub fn channels(&self) -> u8 {
        match self {
            AudioConfig::Aac(a) => a.channels,
            AudioConfig::Opus(o) => o.channels,
        }
    }

    /// RFC 6381 string: `mp4a.40.2`, or `opus`.
    pub fn codec_string(&self) -> String {
        match self {
            AudioConfig::Aac(a) => a.codec_string(),
            AudioConfig::Opus(o) => o.codec_string(),
        }
    }

    /// The sample entry to write for it.
    pub fn track_codec(&self) -> TrackCodec {
        match self {
            AudioConfig::Aac(a) => TrackCodec::Aac(a.clone()),
            AudioConfig::Opus(o) => TrackCodec::Opus(o.clone()),
        }
    }

    /// The raw configuration as ingest gave it.
    pub fn raw(&self) -> &Bytes {
        match self {
            AudioConfig::Aac(a) => &a.raw,
            AudioConfig::Opus(o) => &o.raw,
        }
    }
}

/// Magic of an Opus identification header.
pub const OPUS_HEAD: &[u8] = b"OpusHead";
/// Opus always decodes at 48 kHz; its timestamps count 48 kHz samples.
pub const OPUS_RATE: u32 = 48_000;

/// A parsed Opus identification header (RFC 7845 §5.1), mapping family 0 (mono or
/// stereo) only: what WebRTC sends.
#[derive(Clone, Debug, PartialEq)]
pub struct OpusConfig {
    /// Output channels (1 or 2).
    pub channels: u8,
    /// Samples (at 48 kHz) to drop from the start of decoding.
    pub pre_skip: u16,
    /// The encoder's input rate, informational.
    pub input_sample_rate: u32,
    /// Output gain, Q7.8 dB.
    pub output_gain: i16,
    /// The header as received.
    pub raw: Bytes,
}

impl OpusConfig {
    /// Parses an `OpusHead`: version 1 (any minor), 1 or 2 channels, family 0.
    pub fn parse(head: Bytes) -> Result<Self, CodecError> {
        let b = head.as_ref();
        if b.len() < 19 {
            return Err(CodecError::Truncated("OpusHead"));
        }
        if !b.starts_with(OPUS_HEAD) {
            return Err(CodecError::InvalidOpusHead("no OpusHead magic"));
        }
        if b[8] >> 4 != 0 {
            return Err(CodecError::InvalidOpusHead("unsupported version"));
        }
        let channels = b[9];
        if !(1..=2).contains(&channels) {
            return Err(CodecError::InvalidOpusHead("only mono or stereo"));
        }
        if b[18] != 0 {
            return Err(CodecError::InvalidOpusHead("only channel mapping family 0"));
        }
        Ok(OpusConfig {
            channels,
            pre_skip: u16::from_le_bytes([b[10], b[11]]),
            input_sample_rate: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
            output_gain: i16::from_le_bytes([b[16], b[17]]),
            raw: head,
        })
    }

    /// An `OpusHead` for `channels` (1 or 2) with the usual WebRTC values (pre-skip
    /// 312, 48 kHz input, no gain).
    pub fn head(channels: u8) -> Bytes {
        let mut v = Vec::with_capacity(19);
        v.extend_from_slice(OPUS_HEAD);
        v.push(1);
        v.push(channels.clamp(1, 2));
        v.extend_from_slice(&312u16.to_le_bytes());
        v.extend_from_slice(&OPUS_RATE.to_le_bytes());
        v.extend_from_slice(&0i16.to_le_bytes());
        v.push(0);
        Bytes::from(v)
    }

    /// RFC 6381 string: "opus".
    pub fn codec_string(&self) -> String {
        "opus".to_string()
    }
}

/// Samples (at 48 kHz) one Opus packet holds, from its TOC byte and frame count (RFC
/// 6716 §3.1); `None` for a packet too short to say.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame size in 48 kHz samples per configuration (SILK, hybrid, CELT ranges).
    let frame: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames: u32 = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let samples = frame * frames;
    // At most 120 ms per packet.
    (samples > 0 && samples <= 5760).then_some(samples)
}

impl TrackCodec {
    /// RFC 6381 codec string of the track.
    pub fn codec_string(&self) -> String {
        match self {
            TrackCodec::Avc(c) => c.codec_string(),
            TrackCodec::Hevc(c) => c.codec_string(),
            TrackCodec::Av1(c) => c.codec_string(),
            TrackCodec::Aac(c) => c.codec_string(),
            TrackCodec::Opus(c) => c.codec_string(),
        }
    }

    /// Whether this is a video track.
    pub fn is_video(&self) -> bool {
        !matches!(self, TrackCodec::Aac(_) | TrackCodec::Opus(_))
    }

    /// Picture size of a video track, when known.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        match self {
            TrackCodec::Avc(c) => Some((c.width, c.height)),
            TrackCodec::Hevc(c) => Some((c.width, c.height)),
            TrackCodec::Av1(c) => c.dimensions,
            TrackCodec::Aac(_) | TrackCodec::Opus(_) => None,
        }
    }
}

/// A parsed `AVCDecoderConfigurationRecord`.
#[derive(Clone, Debug, PartialEq)]
pub struct AvcConfig {
    /// `AVCProfileIndication` (e.g. 66 baseline, 77 main, 100 high).
    pub profile: u8,
    /// `profile_compatibility` (the constraint_set flags byte).
    pub compatibility: u8,
    /// `AVCLevelIndication` (e.g. 31 for level 3.1).
    pub level: u8,
    /// Size in bytes of the NAL unit length prefix: 1..=4 (lengthSizeMinusOne + 1).
    pub nal_length_size: u8,
    /// Sequence parameter set NAL units, with their NAL header byte.
    pub sps: Vec<Bytes>,
    /// Picture parameter set NAL units, with their NAL header byte.
    pub pps: Vec<Bytes>,
    /// Displayed (cropped) luma width of the first SPS, in pixels.
    pub width: u32,
    /// Displayed (cropped) luma height of the first SPS, in pixels (frame height
    /// for interlaced streams).
    pub height: u32,
    /// The record as received, reused verbatim in avcC.
    pub raw: Bytes,
}

impl AvcConfig {
    /// Parses an `AVCDecoderConfigurationRecord` and the first SPS in it.
    ///
    /// Requires `configurationVersion == 1`, at least one SPS (NAL type 7) and
    /// one PPS (NAL type 8). Reserved bits and the optional high-profile
    /// extension fields after the PPS list are not checked, so records from
    /// sloppy encoders still parse.
    pub fn parse(record: Bytes) -> Result<Self, CodecError> {
        let mut r = Reader::new(&record, "AVCDecoderConfigurationRecord");
        let version = r.what("configurationVersion").u8()?;
        if version != 1 {
            return Err(CodecError::UnsupportedAvcConfigVersion(version));
        }
        let profile = r.what("AVCProfileIndication").u8()?;
        let compatibility = r.what("profile_compatibility").u8()?;
        let level = r.what("AVCLevelIndication").u8()?;
        let nal_length_size = (r.what("lengthSizeMinusOne").u8()? & 0x03) + 1;

        let num_sps = r.what("numOfSequenceParameterSets").u8()? & 0x1f;
        let mut sps = Vec::with_capacity(usize::from(num_sps));
        for _ in 0..num_sps {
            let len = usize::from(r.what("sequenceParameterSetLength").u16()?);
            let (start, end) = span(&mut r, len, "sequenceParameterSetNALUnit")?;
            sps.push(nal_unit(&record, start, end, 7)?);
        }
        let num_pps = r.what("numOfPictureParameterSets").u8()?;
        let mut pps = Vec::with_capacity(usize::from(num_pps));
        for _ in 0..num_pps {
            let len = usize::from(r.what("pictureParameterSetLength").u16()?);
            let (start, end) = span(&mut r, len, "pictureParameterSetNALUnit")?;
            pps.push(nal_unit(&record, start, end, 8)?);
        }
        let first_sps = sps.first().ok_or(CodecError::NoSps)?;
        if pps.is_empty() {
            return Err(CodecError::NoPps);
        }
        let (width, height) = sps_dimensions(first_sps)?;
        Ok(AvcConfig {
            profile,
            compatibility,
            level,
            nal_length_size,
            sps,
            pps,
            width,
            height,
            raw: record,
        })
    }

    /// RFC 6381 string, e.g. "avc1.64001f"
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

/// Slices a parameter set out of the record and checks its NAL type.
fn nal_unit(record: &Bytes, start: usize, end: usize, expected: u8) -> Result<Bytes, CodecError> {
    let nal = record.slice(start..end);
    let header = *nal.first().ok_or(CodecError::Truncated(if expected == 7 {
        "SPS NAL header"
    } else {
        "PPS NAL header"
    }))?;
    let found = header & 0x1f;
    if found != expected {
        return Err(CodecError::UnexpectedNalType { expected, found });
    }
    Ok(nal)
}

/// A parsed `AudioSpecificConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct AacConfig {
    /// `audioObjectType` after resolving the escape value 31 (2 = AAC-LC,
    /// 5 = SBR, 29 = PS).
    pub object_type: u8,
    /// Core sampling rate in Hz: from `samplingFrequencyIndex`, or the explicit
    /// 24-bit value when the index is 15. For explicitly signalled HE-AAC
    /// (object type 5 or 29) this is the AAC core rate, i.e. the rate at which
    /// every raw frame carries 1024 samples, not the SBR output rate.
    pub sample_rate: u32,
    /// Number of channels implied by `channelConfiguration` (1..=7 map to
    /// 1, 2, 3, 4, 5, 6, 8; 11..=14 map to 7, 8, 24, 8).
    pub channels: u8,
    /// AudioSpecificConfig as received
    pub raw: Bytes,
}

/// Sampling frequencies for `samplingFrequencyIndex` 0..=12.
const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl AacConfig {
    /// Parses the leading fields of an `AudioSpecificConfig`.
    ///
    /// Rejects object type 0, reserved frequency indices (13, 14), an explicit
    /// rate of 0, and `channelConfiguration` values that need a program config
    /// element (0) or are reserved (8..=10, 15). For object types 5 and 29 the
    /// SBR extension header is read (and must be present) but not returned.
    pub fn parse(asc: Bytes) -> Result<Self, CodecError> {
        let mut r = BitReader::new(&asc);
        let object_type = aac_object_type(&mut r)?;
        if object_type == 0 {
            return Err(CodecError::InvalidAsc("audioObjectType 0 (null)"));
        }
        let sample_rate = aac_sample_rate(&mut r)?;
        let channel_config = r.bits(4).map_err(|_| asc_truncated())?;
        let channels = match channel_config {
            1..=6 => channel_config as u8,
            7 | 12 | 14 => 8,
            11 => 7,
            13 => 24,
            0 => {
                return Err(CodecError::InvalidAsc(
                    "channelConfiguration 0 (program config element) is not supported",
                ))
            }
            _ => return Err(CodecError::InvalidAsc("reserved channelConfiguration")),
        };
        if object_type == 5 || object_type == 29 {
            // Explicit hierarchical SBR/PS signalling: the extension rate and the
            // underlying core object type follow.
            aac_sample_rate(&mut r)?;
            if aac_object_type(&mut r)? == 0 {
                return Err(CodecError::InvalidAsc("core audioObjectType 0 (null)"));
            }
        }
        Ok(AacConfig {
            object_type,
            sample_rate,
            channels,
            raw: asc,
        })
    }

    /// RFC 6381 string, e.g. "mp4a.40.2"
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

fn asc_truncated() -> CodecError {
    CodecError::Truncated("AudioSpecificConfig")
}

/// Reads `audioObjectType` with its escape (31 => 32 + 6 bits).
fn aac_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let aot = r.bits(5).map_err(|_| asc_truncated())?;
    let aot = if aot == 31 {
        32 + r.bits(6).map_err(|_| asc_truncated())?
    } else {
        aot
    };
    // At most 32 + 63 = 95, always fits.
    u8::try_from(aot).map_err(|_| CodecError::InvalidAsc("audioObjectType out of range"))
}

/// Reads `samplingFrequencyIndex` and, for index 15, the explicit 24-bit rate.
fn aac_sample_rate(r: &mut BitReader<'_>) -> Result<u32, CodecError> {
    let index = r.bits(4).map_err(|_| asc_truncated())?;
    if index == 15 {
        let rate = r.bits(24).map_err(|_| asc_truncated())?;
        if rate == 0 {
            return Err(CodecError::InvalidAsc("explicit samplingFrequency 0"));
        }
        return Ok(rate);
    }
    AAC_SAMPLE_RATES
        .get(index as usize)
        .copied()
        .ok_or(CodecError::InvalidAsc("reserved samplingFrequencyIndex"))
}

/// Skips `len` bytes of the record and returns their `[start, end)` range.
fn span(r: &mut Reader<'_>, len: usize, what: &'static str) -> Result<(usize, usize), CodecError> {
    let start = r.position();
    r.what(what).skip(len)?;
    Ok((start, r.position()))
}

/// Record reads only fail by running off the end.
impl From<BoxError> for CodecError {
    fn from(e: BoxError) -> Self {
        match e {
            BoxError::Truncated(what) => CodecError::Truncated(what),
            _ => CodecError::Truncated("AVCDecoderConfigurationRecord"),
        }
    }
}

/// Internal SPS error, mapped to [`CodecError`] at the boundary.
enum SpsError {
    Truncated,
    Invalid(&'static str),
}

impl From<BitError> for SpsError {
    fn from(e: BitError) -> Self {
        match e {
            BitError::End => SpsError::Truncated,
            BitError::ExpGolombTooLong => SpsError::Invalid("Exp-Golomb code longer than 32 bits"),
            BitError::TooWide(_) => SpsError::Invalid("field wider than 32 bits"),
        }
    }
}

impl From<SpsError> for CodecError {
    fn from(e: SpsError) -> Self {
        match e {
            SpsError::Truncated => CodecError::Truncated("SPS"),
            SpsError::Invalid(msg) => CodecError::InvalidSps(msg),
        }
    }
}

/// Removes emulation-prevention bytes (`00 00 03` -> `00 00`) from a NAL unit.
fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Profiles whose SPS carries chroma format, bit depth and scaling lists.
fn has_chroma_info(profile_idc: u32) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Skips one `scaling_list()` of `size` coefficients (H.264 §7.3.2.1.1.1).
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), SpsError> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(SpsError::Invalid("delta_scale out of range"));
            }
            next_scale = (last_scale + delta).rem_euclid(256);
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Decodes the cropped picture size from an SPS NAL unit (header byte included).
fn sps_dimensions(nal: &[u8]) -> Result<(u32, u32), CodecError> {
    let rbsp = unescape_rbsp(nal);
    sps_dimensions_rbsp(&rbsp).map_err(CodecError::from)
}

fn sps_dimensions_rbsp(rbsp: &[u8]) -> Result<(u32, u32), SpsError> {
    let mut r = BitReader::new(rbsp);
    r.bits(8)?; // NAL header, type already checked
    let profile_idc = r.bits(8)?;
    r.bits(8)?; // constraint_set flags + reserved_zero_2bits
    r.bits(8)?; // level_idc
    if r.ue()? > 31 {
        return Err(SpsError::Invalid("seq_parameter_set_id > 31"));
    }
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(SpsError::Invalid("chroma_format_idc > 3"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        if r.ue()? > 6 {
            return Err(SpsError::Invalid("bit_depth_luma_minus8 > 6"));
        }
        if r.ue()? > 6 {
            return Err(SpsError::Invalid("bit_depth_chroma_minus8 > 6"));
        }
        r.flag()?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    if r.ue()? > 12 {
        return Err(SpsError::Invalid("log2_max_frame_num_minus4 > 12"));
    }
    match r.ue()? {
        0 => {
            if r.ue()? > 12 {
                return Err(SpsError::Invalid("log2_max_pic_order_cnt_lsb_minus4 > 12"));
            }
        }
        1 => {
            r.flag()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(SpsError::Invalid(
                    "num_ref_frames_in_pic_order_cnt_cycle > 255",
                ));
            }
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
        }
        2 => {}
        _ => return Err(SpsError::Invalid("pic_order_cnt_type > 2")),
    }
    r.ue()?; // max_num_ref_frames
    r.flag()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.flag()?; // mb_adaptive_frame_field_flag
    }
    r.flag()?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        crop_l = r.ue()?.into();
        crop_r = r.ue()?.into();
        crop_t = r.ue()?.into();
        crop_b = r.ue()?.into();
    }
    // VUI and the rest are not needed.

    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let coded_w = width_mbs * 16;
    let coded_h = height_map_units * 16 * field_factor;
    let crop_w = (crop_l + crop_r) * crop_unit_x;
    let crop_h = (crop_t + crop_b) * crop_unit_y;
    let width = coded_w
        .checked_sub(crop_w)
        .filter(|&w| w > 0)
        .ok_or(SpsError::Invalid(
            "horizontal cropping exceeds picture width",
        ))?;
    let height = coded_h
        .checked_sub(crop_h)
        .filter(|&h| h > 0)
        .ok_or(SpsError::Invalid(
            "vertical cropping exceeds picture height",
        ))?;
    let width = u32::try_from(width).map_err(|_| SpsError::Invalid("picture width too large"))?;
    let height =
        u32::try_from(height).map_err(|_| SpsError::Invalid("picture height too large"))?;
    Ok((width, height))
}

#[cfg(test)]
pub(crate) mod tests;
