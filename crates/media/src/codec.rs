//! H.264 and AAC decoder configurations, as they arrive in FLV sequence headers.
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
}

/// Codec configuration of one track.
#[derive(Clone, Debug, PartialEq)]
pub enum TrackCodec {
    /// H.264 video.
    Avc(AvcConfig),
    /// AAC audio.
    Aac(AacConfig),
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
        let mut r = ByteReader::new(&record);
        let version = r.u8("configurationVersion")?;
        if version != 1 {
            return Err(CodecError::UnsupportedAvcConfigVersion(version));
        }
        let profile = r.u8("AVCProfileIndication")?;
        let compatibility = r.u8("profile_compatibility")?;
        let level = r.u8("AVCLevelIndication")?;
        let nal_length_size = (r.u8("lengthSizeMinusOne")? & 0x03) + 1;

        let num_sps = r.u8("numOfSequenceParameterSets")? & 0x1f;
        let mut sps = Vec::with_capacity(usize::from(num_sps));
        for _ in 0..num_sps {
            let len = usize::from(r.u16("sequenceParameterSetLength")?);
            let (start, end) = r.span(len, "sequenceParameterSetNALUnit")?;
            sps.push(nal_unit(&record, start, end, 7)?);
        }
        let num_pps = r.u8("numOfPictureParameterSets")?;
        let mut pps = Vec::with_capacity(usize::from(num_pps));
        for _ in 0..num_pps {
            let len = usize::from(r.u16("pictureParameterSetLength")?);
            let (start, end) = r.span(len, "pictureParameterSetNALUnit")?;
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

/// Byte-aligned cursor over the configuration record.
struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        ByteReader { data, pos: 0 }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let v = *self.data.get(self.pos).ok_or(CodecError::Truncated(what))?;
        self.pos += 1;
        Ok(v)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        let hi = self.u8(what)?;
        let lo = self.u8(what)?;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    /// Skips `len` bytes and returns their `[start, end)` range.
    fn span(&mut self, len: usize, what: &'static str) -> Result<(usize, usize), CodecError> {
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.data.len())
            .ok_or(CodecError::Truncated(what))?;
        self.pos = end;
        Ok((start, end))
    }
}

/// Marker error for running off the end of a bit string.
#[derive(Debug)]
struct OutOfBits;

/// MSB-first bit reader with Exp-Golomb support (H.264 §9.1).
struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<u32, OutOfBits> {
        let byte = *self.data.get(self.pos / 8).ok_or(OutOfBits)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(u32::from(bit))
    }

    fn flag(&mut self) -> Result<bool, OutOfBits> {
        Ok(self.bit()? == 1)
    }

    /// Reads `n <= 32` bits.
    fn bits(&mut self, n: u32) -> Result<u32, OutOfBits> {
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        // n <= 32 at every call site, so this never truncates.
        Ok(v as u32)
    }

    /// Unsigned Exp-Golomb `ue(v)`; values up to 2^32 - 2.
    fn ue(&mut self) -> Result<u32, SpsError> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(SpsError::Invalid("Exp-Golomb code longer than 32 bits"));
            }
        }
        let suffix = self.bits(zeros)?;
        // (1 << zeros) - 1 + suffix <= 2^32 - 2 for zeros <= 31.
        Ok(((1u64 << zeros) - 1 + u64::from(suffix)) as u32)
    }

    /// Signed Exp-Golomb `se(v)`.
    fn se(&mut self) -> Result<i64, SpsError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Internal SPS error, mapped to [`CodecError`] at the boundary.
enum SpsError {
    Truncated,
    Invalid(&'static str),
}

impl From<OutOfBits> for SpsError {
    fn from(_: OutOfBits) -> Self {
        SpsError::Truncated
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
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        let v: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        Bytes::from(v)
    }

    /// AVCDecoderConfigurationRecords extracted from FLV files written by
    /// ffmpeg 5.1 / libx264 from `testsrc`, with the size ffprobe reports.
    const RECORDS: &[(&str, &str, u32, u32, &str)] = &[
        (
            "high 1280x720",
            "0164001fffe1001a6764001facd9405005bb011000000300100000030320f183196001000668ebe3cb22c0fdf8f800",
            1280,
            720,
            "avc1.64001f",
        ),
        (
            "high 1920x1080 (coded 1088, cropped)",
            "01640028ffe1001b67640028acd940780227e5c044000003000400000300c83c60c65801000668ebe3cb22c0fdf8f800",
            1920,
            1080,
            "avc1.640028",
        ),
        (
            "constrained baseline 350x198 (both cropped)",
            "0142c00dffe100196742c00dd90161bea6c044000003000400000300c83c50a92001000568cb83cb20",
            350,
            198,
            "avc1.42c00d",
        ),
        (
            "high 4:4:4 640x480",
            "01f4001effe1001967f4001e919b281407b60220000003002000000641e2c5b2c001000668ebe3c44844fff8f800",
            640,
            480,
            "avc1.f4001e",
        ),
        (
            "high 4:4:4 642x482 (1-pixel crop units)",
            "01f4001effe1001b67f4001e919b281487fc7c7e0220000003002000000641e2c5b2c001000668ebe3c44844fff8f800",
            642,
            482,
            "avc1.f4001e",
        ),
        (
            "high 4:2:2 330x250",
            "017a000dffe1001a677a000dbcd9415087927c0440000003004000000c83c50a658001000668ebe3cb22c0fef8f800",
            330,
            250,
            "avc1.7a000d",
        ),
        (
            "high interlaced (frame_mbs_only = 0) 320x240",
            "01640015ffe1001a67640015acd941410fcb808800000300080000030190f8a14cb001000668fba3cb22c0fdf8f800",
            320,
            240,
            "avc1.640015",
        ),
        (
            "high 10 1280x720",
            "016e001fffe1001a676e001fa6cd9405005bb011000003000100000300320f18319601000668ebe3cb22c0fdfafa00",
            1280,
            720,
            "avc1.6e001f",
        ),
    ];

    /// Bit writer used to hand-build SPS test vectors.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        nbits: usize,
    }

    impl BitWriter {
        fn bit(&mut self, b: bool) {
            if self.nbits & 7 == 0 {
                self.bytes.push(0);
            }
            if b {
                let last = self.bytes.last_mut().unwrap();
                *last |= 0x80 >> (self.nbits % 8);
            }
            self.nbits += 1;
        }
        fn bits(&mut self, n: u32, v: u32) {
            for i in (0..n).rev() {
                self.bit((v >> i) & 1 == 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let v1 = u64::from(v) + 1;
            let len = 64 - v1.leading_zeros();
            for _ in 0..len - 1 {
                self.bit(false);
            }
            for i in (0..len).rev() {
                self.bit((v1 >> i) & 1 == 1);
            }
        }
        fn se(&mut self, v: i32) {
            self.ue(if v > 0 {
                (2 * v - 1) as u32
            } else {
                (-2 * v) as u32
            });
        }
        /// rbsp_trailing_bits, then emulation prevention.
        fn finish_nal(mut self) -> Vec<u8> {
            self.bit(true);
            while self.nbits & 7 != 0 {
                self.bit(false);
            }
            let mut out = Vec::new();
            let mut zeros = 0;
            for b in self.bytes {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    fn record_with_sps(sps: &[u8]) -> Bytes {
        let mut rec = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
        rec.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        rec.extend_from_slice(sps);
        rec.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        Bytes::from(rec)
    }

    #[test]
    fn ffmpeg_records() {
        for &(name, rec, w, h, codec) in RECORDS {
            let raw = hex(rec);
            let c = AvcConfig::parse(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((c.width, c.height), (w, h), "{name}");
            assert_eq!(c.codec_string(), codec, "{name}");
            assert_eq!(c.nal_length_size, 4, "{name}");
            assert_eq!(c.sps.len(), 1, "{name}");
            assert_eq!(c.pps.len(), 1, "{name}");
            assert_eq!(c.sps[0][0] & 0x1f, 7);
            assert_eq!(c.pps[0][0] & 0x1f, 8);
            assert_eq!(c.raw, raw, "{name}");
        }
        let c = AvcConfig::parse(hex(RECORDS[0].1)).unwrap();
        assert_eq!((c.profile, c.compatibility, c.level), (100, 0, 31));
        assert_eq!(c.sps[0].len(), 26);
        assert_eq!(c.pps[0], hex("68ebe3cb22c0"));
    }

    /// Offset just past the last PPS, i.e. where the optional high-profile
    /// extension (if any) starts.
    fn end_of_pps(c: &AvcConfig) -> usize {
        6 + c.sps.iter().map(|s| 2 + s.len()).sum::<usize>()
            + 1
            + c.pps.iter().map(|p| 2 + p.len()).sum::<usize>()
    }

    #[test]
    fn every_truncation_of_records_fails() {
        for &(name, rec, ..) in RECORDS {
            let raw = hex(rec);
            let end = end_of_pps(&AvcConfig::parse(raw.clone()).unwrap());
            // Everything up to the end of the PPS list is required; the
            // high-profile extension after it is optional and not checked.
            for n in 0..raw.len() {
                let res = AvcConfig::parse(raw.slice(..n));
                if n < end {
                    assert!(res.is_err(), "{name} cut at {n}");
                } else {
                    assert_eq!(res.unwrap().raw.len(), n, "{name} cut at {n}");
                }
            }
        }
    }

    #[test]
    fn truncated_sps_inside_consistent_record_fails() {
        // Shorten the SPS itself (and its length field), keeping the record
        // well formed, so the SPS bit reader is the one that runs out.
        for &(name, rec, w, h, _) in RECORDS {
            let sps = AvcConfig::parse(hex(rec)).unwrap().sps[0].clone();
            let mut first_ok = None;
            for n in 4..=sps.len() {
                match AvcConfig::parse(record_with_sps(&sps[..n])) {
                    Err(CodecError::Truncated(_)) | Err(CodecError::InvalidSps(_)) => {
                        assert!(first_ok.is_none(), "{name}: failure after success at {n}");
                    }
                    Err(e) => panic!("{name}: unexpected error {e}"),
                    Ok(c) => {
                        // Once the size fields are complete the result is stable.
                        assert_eq!((c.width, c.height), (w, h), "{name} cut at {n}");
                        first_ok.get_or_insert(n);
                    }
                }
            }
            // The size/crop fields end a few bytes in; cutting before them fails.
            let first_ok = first_ok.unwrap();
            assert!(first_ok >= 8, "{name}: {first_ok}");
        }
    }

    #[test]
    fn record_errors() {
        let good = hex(RECORDS[0].1);
        let mut v = good.to_vec();
        v[0] = 0;
        assert_eq!(
            AvcConfig::parse(Bytes::from(v)),
            Err(CodecError::UnsupportedAvcConfigVersion(0))
        );
        // numOfSequenceParameterSets = 0
        assert_eq!(
            AvcConfig::parse(Bytes::from_static(&[
                1, 0x64, 0, 0x1f, 0xff, 0xe0, 1, 0, 2, 0x68, 0xce
            ])),
            Err(CodecError::NoSps)
        );
        // numOfPictureParameterSets = 0
        let mut v = good.to_vec();
        let pps_count_at = 6 + 2 + 26;
        v.truncate(pps_count_at);
        v.push(0);
        assert_eq!(AvcConfig::parse(Bytes::from(v)), Err(CodecError::NoPps));
        // SPS slot holding a PPS.
        let mut v = good.to_vec();
        v[8] = 0x68;
        assert_eq!(
            AvcConfig::parse(Bytes::from(v)),
            Err(CodecError::UnexpectedNalType {
                expected: 7,
                found: 8
            })
        );
        // Zero-length SPS.
        assert!(matches!(
            AvcConfig::parse(Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0, 1])),
            Err(CodecError::Truncated(_))
        ));
        assert!(AvcConfig::parse(Bytes::new()).is_err());
    }

    #[test]
    fn nal_length_size_and_trailing_extension() {
        let mut v = hex(RECORDS[0].1).to_vec();
        v[4] = 0xfc; // lengthSizeMinusOne = 0
                     // High-profile extension: chroma_format, bit depths, no SPS ext.
        v.extend_from_slice(&[0xfd, 0xf8, 0xf8, 0x00]);
        let c = AvcConfig::parse(Bytes::from(v)).unwrap();
        assert_eq!(c.nal_length_size, 1);
        assert_eq!(c.width, 1280);
    }

    #[test]
    fn multiple_parameter_sets() {
        let base = AvcConfig::parse(hex(RECORDS[0].1)).unwrap();
        let other = AvcConfig::parse(hex(RECORDS[1].1)).unwrap();
        let mut v = vec![1, 0x64, 0, 0x1f, 0xff, 0xe2];
        for s in [&base.sps[0], &other.sps[0]] {
            v.extend_from_slice(&(s.len() as u16).to_be_bytes());
            v.extend_from_slice(s);
        }
        v.push(2);
        for p in [&base.pps[0], &other.pps[0]] {
            v.extend_from_slice(&(p.len() as u16).to_be_bytes());
            v.extend_from_slice(p);
        }
        let c = AvcConfig::parse(Bytes::from(v)).unwrap();
        assert_eq!(c.sps, vec![base.sps[0].clone(), other.sps[0].clone()]);
        assert_eq!(c.pps.len(), 2);
        // Size comes from the first SPS.
        assert_eq!((c.width, c.height), (1280, 720));
    }

    /// Builds an SPS by hand: chroma 4:2:0 high profile with a scaling matrix,
    /// POC type 1, field coding and cropping, in 1920x1080i layout.
    fn handmade_sps(scaling: bool, poc_type: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(8, 0x67);
        w.bits(8, 100);
        w.bits(8, 0);
        w.bits(8, 40);
        w.ue(0); // sps id
        w.ue(1); // chroma_format_idc
        w.ue(0); // bit_depth_luma_minus8
        w.ue(0); // bit_depth_chroma_minus8
        w.bit(false); // qpprime
        w.bit(scaling);
        if scaling {
            for i in 0..8 {
                let present = i % 3 != 2;
                w.bit(present);
                if present {
                    let n = if i < 6 { 16 } else { 64 };
                    if i == 1 {
                        // useDefaultScalingMatrixFlag: first delta makes nextScale 0.
                        w.se(-8);
                    } else {
                        for j in 0..n {
                            // Deltas that wrap both ways (8, 135, 6, 135, 8, ...)
                            // without ever reaching 0.
                            w.se([127, 127, -127, -127][j % 4]);
                        }
                    }
                }
            }
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(poc_type);
        match poc_type {
            0 => w.ue(2),
            1 => {
                w.bit(false);
                w.se(-3);
                w.se(5);
                w.ue(3);
                for k in [1, -1, 200] {
                    w.se(k);
                }
            }
            _ => {}
        }
        w.ue(4); // max_num_ref_frames
        w.bit(false); // gaps
        w.ue(119); // 120 MBs wide = 1920
        w.ue(33); // 34 map units * 2 (fields) * 16 = 1088
        w.bit(false); // frame_mbs_only_flag = 0
        w.bit(true); // mb_adaptive_frame_field_flag
        w.bit(true); // direct_8x8_inference
        w.bit(true); // frame_cropping_flag
        w.ue(0);
        w.ue(0);
        w.ue(0);
        w.ue(2); // 2 * CropUnitY(4) = 8 lines
        w.bit(false); // vui_parameters_present_flag
        w.finish_nal()
    }

    #[test]
    fn handmade_sps_with_scaling_lists_and_fields() {
        for scaling in [false, true] {
            for poc in [0, 1, 2] {
                let sps = handmade_sps(scaling, poc);
                let c = AvcConfig::parse(record_with_sps(&sps))
                    .unwrap_or_else(|e| panic!("scaling={scaling} poc={poc}: {e}"));
                assert_eq!(
                    (c.width, c.height),
                    (1920, 1080),
                    "scaling={scaling} poc={poc}"
                );
                assert_eq!(c.codec_string(), "avc1.640028");
                for n in 4..sps.len() - 1 {
                    assert!(
                        AvcConfig::parse(record_with_sps(&sps[..n])).is_err(),
                        "scaling={scaling} poc={poc} cut at {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn handmade_sps_4_4_4_with_twelve_scaling_lists() {
        let mut w = BitWriter::default();
        w.bits(8, 0x67);
        w.bits(8, 244);
        w.bits(8, 0);
        w.bits(8, 30);
        w.ue(0);
        w.ue(3); // chroma_format_idc 4:4:4
        w.bit(false); // separate_colour_plane_flag
        w.ue(2);
        w.ue(2);
        w.bit(false);
        w.bit(true); // scaling matrix
        for i in 0..12 {
            w.bit(i >= 6); // only the 8x8 lists (64 coefficients each)
            if i >= 6 {
                for _ in 0..64 {
                    w.se(1);
                }
            }
        }
        w.ue(0);
        w.ue(2); // poc type 2
        w.ue(1);
        w.bit(false);
        w.ue(39); // 640
        w.ue(29); // 480
        w.bit(true); // frame_mbs_only
        w.bit(true);
        w.bit(true); // cropping, unit 1x1 for 4:4:4
        w.ue(1);
        w.ue(2);
        w.ue(3);
        w.ue(4);
        w.bit(false);
        let sps = w.finish_nal();
        let c = AvcConfig::parse(record_with_sps(&sps)).unwrap();
        assert_eq!((c.width, c.height), (637, 473));
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3]), vec![0, 0, 1, 0, 0]);
        assert_eq!(unescape_rbsp(&[0, 0, 3, 0, 0, 3, 0]), vec![0, 0, 0, 0, 0]);
        assert_eq!(unescape_rbsp(&[0, 3, 0, 3]), vec![0, 3, 0, 3]);
        // The 720p vector carries two emulation-prevention bytes before VUI
        // timing info; the size fields precede them but the parse must agree.
        let c = AvcConfig::parse(hex(RECORDS[0].1)).unwrap();
        assert!(c.sps[0].windows(3).any(|w| w == [0, 0, 3]));
    }

    #[test]
    fn hostile_sps_values() {
        // Cropping larger than the picture.
        let mut w = BitWriter::default();
        w.bits(8, 0x67);
        w.bits(8, 66);
        w.bits(8, 0);
        w.bits(8, 30);
        w.ue(0);
        w.ue(0);
        w.ue(2);
        w.ue(1);
        w.bit(false);
        w.ue(0); // 16 px wide
        w.ue(0);
        w.bit(true);
        w.bit(true);
        w.bit(true);
        w.ue(8); // 16 px of crop in 2-px units
        w.ue(0);
        w.ue(0);
        w.ue(0);
        w.bit(false);
        let sps = w.finish_nal();
        assert!(matches!(
            AvcConfig::parse(record_with_sps(&sps)),
            Err(CodecError::InvalidSps(_))
        ));

        // Huge Exp-Golomb values must not overflow.
        let mut w = BitWriter::default();
        w.bits(8, 0x67);
        w.bits(8, 66);
        w.bits(8, 0);
        w.bits(8, 30);
        w.ue(0);
        w.ue(0);
        w.ue(2);
        w.ue(1);
        w.bit(false);
        w.ue(u32::MAX - 1);
        w.ue(u32::MAX - 1);
        w.bit(false);
        w.bit(false);
        w.bit(true);
        w.bit(true);
        for _ in 0..4 {
            w.ue(u32::MAX - 1);
        }
        w.bit(false);
        let sps = w.finish_nal();
        assert!(matches!(
            AvcConfig::parse(record_with_sps(&sps)),
            Err(CodecError::InvalidSps(_))
        ));

        // 33 leading zero bits.
        let sps = [0x67, 66, 0, 30, 0, 0, 0, 0, 0x00, 0x80];
        assert!(matches!(
            AvcConfig::parse(record_with_sps(&sps)),
            Err(CodecError::InvalidSps(_))
        ));
        // All-ones SPS body.
        let sps = [0x67, 100, 0, 30, 0xff, 0xff, 0xff, 0xff];
        assert!(AvcConfig::parse(record_with_sps(&sps)).is_err());
    }

    #[test]
    fn aac_configs() {
        let cases: &[(&[u8], u8, u32, u8, &str)] = &[
            // ffmpeg AAC-LC 44.1 kHz stereo and 48 kHz mono.
            (&[0x12, 0x10, 0x56, 0xe5, 0x00], 2, 44100, 2, "mp4a.40.2"),
            (&[0x11, 0x88, 0x56, 0xe5, 0x00], 2, 48000, 1, "mp4a.40.2"),
            // Minimal two-byte LC configs.
            (&[0x11, 0x90], 2, 48000, 2, "mp4a.40.2"),
            (&[0x13, 0x08], 2, 24000, 1, "mp4a.40.2"),
            // 5.1 and 7.1.
            (&[0x11, 0xb0], 2, 48000, 6, "mp4a.40.2"),
            (&[0x11, 0xb8], 2, 48000, 8, "mp4a.40.2"),
            // HE-AAC explicit: aot 5, core 24 kHz, stereo, ext 48 kHz, core aot 2.
            (&[0x2b, 0x11, 0x88, 0x00], 5, 24000, 2, "mp4a.40.5"),
            // HE-AACv2 explicit: aot 29, core 24 kHz, mono, ext 48 kHz, core aot 2.
            (&[0xeb, 0x09, 0x88, 0x00], 29, 24000, 1, "mp4a.40.29"),
            // Escape: aot 31 + 6 bits (10 => 42, USAC), 48 kHz stereo.
            (&[0xf9, 0x46, 0x40], 42, 48000, 2, "mp4a.40.42"),
            // Explicit 24-bit rate 44056 Hz (index 15), mono.
            (&[0x17, 0x80, 0x56, 0x0c, 0x08], 2, 44056, 1, "mp4a.40.2"),
        ];
        for &(asc, aot, rate, ch, codec) in cases {
            let c = AacConfig::parse(Bytes::copy_from_slice(asc))
                .unwrap_or_else(|e| panic!("{asc:02x?}: {e}"));
            assert_eq!(
                (c.object_type, c.sample_rate, c.channels),
                (aot, rate, ch),
                "{asc:02x?}"
            );
            assert_eq!(c.codec_string(), codec);
            assert_eq!(&c.raw[..], asc);
        }
    }

    #[test]
    fn aac_errors_and_truncations() {
        let bad: &[&[u8]] = &[
            &[],
            &[0x12],
            &[0x00, 0x10],             // aot 0
            &[0x16, 0x90],             // frequency index 13
            &[0x17, 0x10],             // frequency index 14
            &[0x17, 0x80, 0, 0, 0x10], // explicit rate 0
            &[0x12, 0x00],             // channelConfiguration 0 (PCE)
            &[0x12, 0x40],             // channelConfiguration 8 (reserved)
            &[0x12, 0x78],             // channelConfiguration 15
            &[0x2b, 0x10],             // SBR without extension fields
            &[0xf8],                   // escape without its 6 bits
        ];
        for asc in bad {
            assert!(
                AacConfig::parse(Bytes::copy_from_slice(asc)).is_err(),
                "{asc:02x?}"
            );
        }
        for asc in [
            &[0x2b, 0x11, 0x88, 0x00][..],
            &[0x17, 0x80, 0x56, 0x0c, 0x08],
            &[0xf9, 0x46, 0x40],
        ] {
            let min_ok = (0..=asc.len())
                .find(|&n| AacConfig::parse(Bytes::copy_from_slice(&asc[..n])).is_ok())
                .unwrap();
            for n in 0..min_ok {
                assert!(AacConfig::parse(Bytes::copy_from_slice(&asc[..n])).is_err());
            }
        }
        // The 2-byte LC header is the minimum; every shorter prefix fails.
        let asc = [0x12u8, 0x10, 0x56, 0xe5, 0x00];
        for n in 0..2 {
            assert!(AacConfig::parse(Bytes::copy_from_slice(&asc[..n])).is_err());
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        };
        for len in 0..80usize {
            for _ in 0..200 {
                let v: Vec<u8> = (0..len).map(|_| next()).collect();
                let _ = AacConfig::parse(Bytes::from(v.clone()));
                let _ = AvcConfig::parse(Bytes::from(v.clone()));
                // Garbage behind a plausible record header reaches the SPS parser.
                let mut rec = vec![1, 100, 0, 31, 0xff, 0xe1, 0, len as u8 + 1, 0x67];
                rec.extend_from_slice(&v);
                rec.extend_from_slice(&[1, 0, 1, 0x68]);
                let _ = AvcConfig::parse(Bytes::from(rec));
            }
        }
        // Bit flips of every real record.
        for &(_, rec, ..) in RECORDS {
            let raw = hex(rec).to_vec();
            for i in 0..raw.len() {
                for bit in 0..8 {
                    let mut v = raw.clone();
                    v[i] ^= 1 << bit;
                    let _ = AvcConfig::parse(Bytes::from(v));
                }
            }
        }
    }
}
