//! AV1 decoder configuration and OBU framing: the `AV1CodecConfigurationRecord`
//! (AV1 Codec ISO Media File Format Binding §2.3) that an Enhanced RTMP `av01`
//! SequenceStart and an MP4 `av1C` box carry, and the low-overhead OBU stream
//! (AV1 §5.3) of its coded frames.
//!
//! [`Av1Config::parse`] reads the record's four fixed bytes and, when the record
//! carries a sequence header OBU in `configOBUs`, its maximum frame size (AV1
//! §5.5.1). [`Av1Config::codec_string`] makes the codec string of the binding's
//! Annex A (`av01.0.08M.08`). [`sample_obus`] checks a temporal unit's OBU framing
//! and drops temporal delimiter and padding OBUs, which the binding keeps out of
//! MP4 samples.
//!
//! It is not a decoder: frame headers, tiles and the colour description are not
//! read, and the record is kept verbatim for `av1C`. Parsing is pure, bounded by
//! the input and panic-free; malformed input yields a [`CodecError`].

use bytes::{Bytes, BytesMut};

use super::{CodecError, SpsError};
use crate::bmff::BitReader;

/// OBU types (AV1 §6.2.2).
const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_PADDING: u8 = 15;

/// A parsed `AV1CodecConfigurationRecord`.
#[derive(Clone, Debug, PartialEq)]
pub struct Av1Config {
    /// `seq_profile` (0 Main, 1 High, 2 Professional).
    pub profile: u8,
    /// `seq_level_idx_0` (e.g. 8 for level 4.0).
    pub level_idx: u8,
    /// `seq_tier_0`: false = Main tier, true = High tier.
    pub high_tier: bool,
    /// Bit depth: 8, 10 or 12.
    pub bit_depth: u8,
    /// `mono_chrome`.
    pub monochrome: bool,
    /// `chroma_subsampling_x`, `chroma_subsampling_y`, `chroma_sample_position`.
    pub chroma: (bool, bool, u8),
    /// Maximum frame size from the sequence header in `configOBUs`, if the record
    /// carries one.
    pub dimensions: Option<(u32, u32)>,
    /// The record as received, reused verbatim in `av1C`.
    pub raw: Bytes,
}

impl Av1Config {
    /// Parses an `AV1CodecConfigurationRecord`.
    ///
    /// Requires `marker == 1` and `version == 1`, a profile of 0..=2 and a level
    /// index of 0..=23 or 31. `configOBUs` may be empty; when present their framing
    /// must be valid and at most one sequence header is read (for the frame size).
    pub fn parse(record: Bytes) -> Result<Self, CodecError> {
        let fixed: [u8; 4] = record
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(CodecError::Truncated("AV1CodecConfigurationRecord"))?;
        if fixed[0] != 0x81 {
            return Err(CodecError::UnsupportedConfigVersion {
                record: "AV1CodecConfigurationRecord (marker and version)",
                version: fixed[0],
            });
        }
        let profile = fixed[1] >> 5;
        let level_idx = fixed[1] & 0x1f;
        if profile > 2 {
            return Err(CodecError::InvalidRecord("AV1 seq_profile > 2"));
        }
        if level_idx > 23 && level_idx != 31 {
            return Err(CodecError::InvalidRecord("reserved AV1 seq_level_idx"));
        }
        let high_tier = fixed[2] & 0x80 != 0;
        let high_bitdepth = fixed[2] & 0x40 != 0;
        let twelve_bit = fixed[2] & 0x20 != 0;
        let bit_depth = match (profile, high_bitdepth, twelve_bit) {
            (2, true, true) => 12,
            (_, true, _) => 10,
            _ => 8,
        };
        let mut dimensions = None;
        for obu in Obus::new(&record[4..]) {
            let obu = obu?;
            if obu.kind == OBU_SEQUENCE_HEADER && dimensions.is_none() {
                dimensions = Some(sequence_header_size(obu.payload)?);
            }
        }
        Ok(Av1Config {
            profile,
            level_idx,
            high_tier,
            bit_depth,
            monochrome: fixed[2] & 0x10 != 0,
            chroma: (fixed[2] & 0x08 != 0, fixed[2] & 0x04 != 0, fixed[2] & 0x03),
            dimensions,
            raw: record,
        })
    }

    /// The codec string of the AV1 ISO-BMFF binding (Annex A), short form:
    /// `av01.` profile, two-digit level index with tier letter (`M`/`H`), two-digit
    /// bit depth. E.g. `av01.0.08M.08`.
    pub fn codec_string(&self) -> String {
        format!(
            "av01.{}.{:02}{}.{:02}",
            self.profile,
            self.level_idx,
            if self.high_tier { 'H' } else { 'M' },
            self.bit_depth
        )
    }
}

/// One OBU of a low-overhead bitstream.
#[derive(Debug, Clone, Copy)]
struct Obu<'a> {
    kind: u8,
    /// The whole OBU, header included.
    bytes: &'a [u8],
    payload: &'a [u8],
}

/// Walks OBUs; an OBU without `obu_has_size_field` extends to the end.
struct Obus<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Obus<'a> {
    fn new(data: &'a [u8]) -> Self {
        Obus {
            rest: data,
            failed: false,
        }
    }

    fn next_obu(&mut self) -> Result<Obu<'a>, CodecError> {
        let data = self.rest;
        let header = *data.first().ok_or(CodecError::Truncated("OBU header"))?;
        if header & 0x80 != 0 {
            return Err(CodecError::InvalidObu("obu_forbidden_bit is set"));
        }
        let kind = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut pos = if has_extension { 2 } else { 1 };
        if data.len() < pos {
            return Err(CodecError::Truncated("OBU extension header"));
        }
        let size = if has_size {
            let (size, used) = leb128(&data[pos..])?;
            pos += used;
            usize::try_from(size).map_err(|_| CodecError::InvalidObu("obu_size too large"))?
        } else {
            data.len() - pos
        };
        let end = pos
            .checked_add(size)
            .filter(|&end| end <= data.len())
            .ok_or(CodecError::Truncated("OBU payload"))?;
        self.rest = &data[end..];
        Ok(Obu {
            kind,
            bytes: &data[..end],
            payload: &data[pos..end],
        })
    }
}

impl<'a> Iterator for Obus<'a> {
    type Item = Result<Obu<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let obu = self.next_obu();
        self.failed = obu.is_err();
        Some(obu)
    }
}

/// `leb128()` (AV1 §4.10.5): at most 8 bytes, value below 2^32.
fn leb128(data: &[u8]) -> Result<(u64, usize), CodecError> {
    let mut value = 0u64;
    for i in 0..8 {
        let byte = *data.get(i).ok_or(CodecError::Truncated("OBU size"))?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if value > u64::from(u32::MAX) {
                return Err(CodecError::InvalidObu("obu_size above 2^32 - 1"));
            }
            return Ok((value, i + 1));
        }
    }
    Err(CodecError::InvalidObu("obu_size longer than 8 bytes"))
}

/// Checks the OBU framing of one temporal unit (an MP4 sample's worth) and returns
/// it without temporal delimiter and padding OBUs. Returns the input itself
/// (no copy) when there is nothing to drop, and an error for empty units, broken
/// framing, and units left with no OBU.
pub fn sample_obus(data: Bytes) -> Result<Bytes, CodecError> {
    let mut keep: Vec<(usize, usize)> = Vec::new();
    let mut dropped = false;
    let mut offset = 0usize;
    for obu in Obus::new(&data) {
        let obu = obu?;
        let len = obu.bytes.len();
        if obu.kind == OBU_TEMPORAL_DELIMITER || obu.kind == OBU_PADDING {
            dropped = true;
        } else {
            match keep.last_mut() {
                Some((start, end)) if *end == offset => *end = offset + len,
                _ => keep.push((offset, offset + len)),
            }
        }
        offset += len;
    }
    if keep.is_empty() {
        return Err(CodecError::InvalidObu("temporal unit holds no frame OBU"));
    }
    if !dropped {
        return Ok(data);
    }
    if let [(start, end)] = keep[..] {
        return Ok(data.slice(start..end));
    }
    let mut out = BytesMut::with_capacity(data.len());
    for (start, end) in keep {
        out.extend_from_slice(&data[start..end]);
    }
    Ok(out.freeze())
}

/// Reads `max_frame_width_minus_1 + 1` and `max_frame_height_minus_1 + 1` from a
/// sequence header OBU payload (AV1 §5.5.1).
fn sequence_header_size(payload: &[u8]) -> Result<(u32, u32), CodecError> {
    sequence_header_bits(payload).map_err(|e| match e {
        SpsError::Truncated => CodecError::Truncated("AV1 sequence header"),
        SpsError::Invalid(msg) => CodecError::InvalidObu(msg),
    })
}

fn sequence_header_bits(payload: &[u8]) -> Result<(u32, u32), SpsError> {
    let mut r = BitReader::new(payload);
    r.bits(3)?; // seq_profile
    r.bit()?; // still_picture
    let reduced = r.flag()?;
    if reduced {
        r.bits(5)?; // seq_level_idx[0]
    } else {
        let mut decoder_model_info = false;
        let mut buffer_delay_length = 0;
        if r.flag()? {
            // timing_info()
            r.bits(32)?; // num_units_in_display_tick
            r.bits(32)?; // time_scale
            if r.flag()? {
                uvlc(&mut r)?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info = r.flag()?;
            if decoder_model_info {
                buffer_delay_length = r.bits(5)? + 1;
                r.bits(32)?; // num_units_in_decoding_tick
                r.bits(5)?; // buffer_removal_time_length_minus_1
                r.bits(5)?; // frame_presentation_time_length_minus_1
            }
        }
        let initial_display_delay = r.flag()?;
        let points = r.bits(5)? + 1;
        for _ in 0..points {
            r.bits(12)?; // operating_point_idc
            if r.bits(5)? > 7 {
                r.bit()?; // seq_tier
            }
            if decoder_model_info && r.flag()? {
                r.bits(buffer_delay_length)?; // decoder_buffer_delay
                r.bits(buffer_delay_length)?; // encoder_buffer_delay
                r.bit()?; // low_delay_mode_flag
            }
            if initial_display_delay && r.flag()? {
                r.bits(4)?; // initial_display_delay_minus_1
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = u64::from(r.bits(width_bits)?) + 1;
    let height = u64::from(r.bits(height_bits)?) + 1;
    // At most 16 bits each, so both fit.
    Ok((width as u32, height as u32))
}

/// `uvlc()` (AV1 §4.10.3), bounded at 32 leading zeros.
fn uvlc(r: &mut BitReader<'_>) -> Result<u64, SpsError> {
    let mut zeros = 0u32;
    while !r.flag()? {
        zeros += 1;
        if zeros > 32 {
            return Err(SpsError::Invalid("uvlc() longer than 32 bits"));
        }
    }
    if zeros == 32 {
        return Ok(u64::from(u32::MAX));
    }
    Ok(u64::from(r.bits(zeros)?) + (1u64 << zeros) - 1)
}
