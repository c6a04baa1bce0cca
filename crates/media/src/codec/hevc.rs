//! H.265/HEVC decoder configuration: the `HEVCDecoderConfigurationRecord`
//! (ISO/IEC 14496-15 §8.3.3.1) that an Enhanced RTMP `hvc1` SequenceStart and an
//! MP4 `hvcC` box carry.
//!
//! [`HevcConfig::parse`] reads the record's fixed fields and NAL unit arrays,
//! checks that it carries a VPS, an SPS and a PPS, and decodes just enough of the
//! first SPS (ITU-T H.265 §7.3.2.2) to learn the displayed picture size. It keeps
//! the record as received so the muxer copies it verbatim into `hvcC`, and makes
//! the RFC 6381 / ISO/IEC 14496-15 Annex E codec string (`hvc1.1.6.L93.B0`).
//!
//! It is not a bitstream decoder: VUI, PPS/VPS contents and slices are not read,
//! and the record is never rewritten. Parsing is pure, bounded by the input and
//! panic-free; malformed input yields a [`CodecError`].

use bytes::Bytes;

use super::{unescape_rbsp, CodecError, SpsError};
use crate::bmff::{BitReader, Reader};

/// NAL unit types of the parameter sets (H.265 Table 7-1).
const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;

/// A parsed `HEVCDecoderConfigurationRecord`.
#[derive(Clone, Debug, PartialEq)]
pub struct HevcConfig {
    /// `general_profile_space` (0..=3).
    pub profile_space: u8,
    /// `general_tier_flag`: false = Main tier, true = High tier.
    pub high_tier: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10, 3 Main Still Picture, 4 RExt…).
    pub profile_idc: u8,
    /// `general_profile_compatibility_flags`, flag 0 in the most significant bit.
    pub compatibility_flags: u32,
    /// The six bytes of `general_constraint_indicator_flags`.
    pub constraint_flags: [u8; 6],
    /// `general_level_idc` (30 × the level, e.g. 93 for 3.1, 120 for 4).
    pub level_idc: u8,
    /// `chromaFormat` (0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4).
    pub chroma_format: u8,
    /// Luma bit depth (8..=16).
    pub bit_depth_luma: u8,
    /// Size in bytes of the NAL unit length prefix: 1, 2 or 4.
    pub nal_length_size: u8,
    /// Video parameter sets, with their two-byte NAL header.
    pub vps: Vec<Bytes>,
    /// Sequence parameter sets, with their two-byte NAL header.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, with their two-byte NAL header.
    pub pps: Vec<Bytes>,
    /// Displayed (conformance-window cropped) luma width of the first SPS.
    pub width: u32,
    /// Displayed luma height of the first SPS.
    pub height: u32,
    /// The record as received, reused verbatim in `hvcC`.
    pub raw: Bytes,
}

/// Most NAL unit arrays a record may declare; real records have 3 or 4.
const MAX_ARRAYS: u8 = 16;

impl HevcConfig {
    /// Parses an `HEVCDecoderConfigurationRecord` and the first SPS in it.
    ///
    /// Requires `configurationVersion == 1`, a NAL length size of 1, 2 or 4, at
    /// least one VPS, SPS and PPS (each a NAL unit of its declared type), and an SPS
    /// whose picture size is non-zero after cropping. Other arrays (SEI) are kept in
    /// the record but not read. Reserved bits are not checked.
    pub fn parse(record: Bytes) -> Result<Self, CodecError> {
        let mut r = Reader::new(&record, "HEVCDecoderConfigurationRecord");
        let version = r.what("configurationVersion").u8()?;
        if version != 1 {
            return Err(CodecError::UnsupportedConfigVersion {
                record: "HEVCDecoderConfigurationRecord",
                version,
            });
        }
        let ptl = r.what("general_profile_space/tier/profile_idc").u8()?;
        let compatibility_flags = r.what("general_profile_compatibility_flags").u32()?;
        let constraint_flags = r.what("general_constraint_indicator_flags").array::<6>()?;
        let level_idc = r.what("general_level_idc").u8()?;
        r.what("min_spatial_segmentation_idc").skip(2)?;
        r.what("parallelismType").skip(1)?;
        let chroma_format = r.what("chromaFormat").u8()? & 0x03;
        let bit_depth_luma = (r.what("bitDepthLumaMinus8").u8()? & 0x07) + 8;
        r.what("bitDepthChromaMinus8").skip(1)?;
        r.what("avgFrameRate").skip(2)?;
        let nal_length_size = (r.what("lengthSizeMinusOne").u8()? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(CodecError::InvalidRecord(
                "HEVCDecoderConfigurationRecord lengthSizeMinusOne 2 (3-byte lengths) is not allowed",
            ));
        }
        let arrays = r.what("numOfArrays").u8()?;
        if arrays > MAX_ARRAYS {
            return Err(CodecError::InvalidRecord(
                "HEVCDecoderConfigurationRecord declares more than 16 NAL unit arrays",
            ));
        }
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..arrays {
            let nal_type = r.what("NAL_unit_type").u8()? & 0x3f;
            let count = r.what("numNalus").u16()?;
            for _ in 0..count {
                let len = usize::from(r.what("nalUnitLength").u16()?);
                let start = r.position();
                r.what("nalUnit").skip(len)?;
                let nal = record.slice(start..r.position());
                let header = *nal
                    .first()
                    .ok_or(CodecError::Truncated("HEVC NAL header"))?;
                let found = (header >> 1) & 0x3f;
                if found != nal_type {
                    return Err(CodecError::UnexpectedNalType {
                        expected: nal_type,
                        found,
                    });
                }
                match nal_type {
                    NAL_VPS => vps.push(nal),
                    NAL_SPS => sps.push(nal),
                    NAL_PPS => pps.push(nal),
                    _ => {}
                }
            }
        }
        if vps.is_empty() {
            return Err(CodecError::MissingParameterSet("HEVC", "VPS"));
        }
        let first_sps = sps
            .first()
            .ok_or(CodecError::MissingParameterSet("HEVC", "SPS"))?;
        if pps.is_empty() {
            return Err(CodecError::MissingParameterSet("HEVC", "PPS"));
        }
        let (width, height) = hevc_sps_dimensions(first_sps)?;
        Ok(HevcConfig {
            profile_space: ptl >> 6,
            high_tier: ptl & 0x20 != 0,
            profile_idc: ptl & 0x1f,
            compatibility_flags,
            constraint_flags,
            level_idc,
            chroma_format,
            bit_depth_luma,
            nal_length_size,
            vps,
            sps,
            pps,
            width,
            height,
            raw: record,
        })
    }

    /// The codec string of ISO/IEC 14496-15 Annex E, as HLS `CODECS` and DASH
    /// `@codecs` take it: `hvc1.` profile space letter (none for 0, else A–C) and
    /// profile idc, the compatibility flags bit-reversed in hex, tier letter (`L`
    /// or `H`) and level idc, then the constraint bytes in hex without trailing
    /// zero bytes. E.g. `hvc1.1.6.L93.B0` (Main, level 3.1).
    pub fn codec_string(&self) -> String {
        let space = match self.profile_space {
            1 => "A",
            2 => "B",
            3 => "C",
            _ => "",
        };
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.profile_idc,
            self.compatibility_flags.reverse_bits(),
            if self.high_tier { 'H' } else { 'L' },
            self.level_idc
        );
        let used = self
            .constraint_flags
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        for b in &self.constraint_flags[..used] {
            s.push_str(&format!(".{b:X}"));
        }
        s
    }
}

/// Decodes the conformance-window cropped picture size from an HEVC SPS NAL unit
/// (two-byte header included).
fn hevc_sps_dimensions(nal: &[u8]) -> Result<(u32, u32), CodecError> {
    let rbsp = unescape_rbsp(nal);
    hevc_sps_rbsp(&rbsp).map_err(CodecError::from)
}

fn hevc_sps_rbsp(rbsp: &[u8]) -> Result<(u32, u32), SpsError> {
    let mut r = BitReader::new(rbsp);
    r.bits(16)?; // NAL header, type already checked
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(SpsError::Invalid("sps_max_sub_layers_minus1 > 6"));
    }
    r.bit()?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    if r.ue()? > 15 {
        return Err(SpsError::Invalid("sps_seq_parameter_set_id > 15"));
    }
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return Err(SpsError::Invalid("chroma_format_idc > 3"));
    }
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let width = u64::from(r.ue()?);
    let height = u64::from(r.ue()?);
    let (mut left, mut right, mut top, mut bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.flag()? {
        left = r.ue()?.into();
        right = r.ue()?.into();
        top = r.ue()?.into();
        bottom = r.ue()?.into();
    }
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    // SubWidthC / SubHeightC (H.265 Table 6-1).
    let (unit_x, unit_y) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_w = (left + right).saturating_mul(unit_x);
    let crop_h = (top + bottom).saturating_mul(unit_y);
    let width = width
        .checked_sub(crop_w)
        .filter(|&w| w > 0)
        .ok_or(SpsError::Invalid(
            "conformance window exceeds the picture width (or width 0)",
        ))?;
    let height = height
        .checked_sub(crop_h)
        .filter(|&h| h > 0)
        .ok_or(SpsError::Invalid(
            "conformance window exceeds the picture height (or height 0)",
        ))?;
    let width = u32::try_from(width).map_err(|_| SpsError::Invalid("picture width too large"))?;
    let height =
        u32::try_from(height).map_err(|_| SpsError::Invalid("picture height too large"))?;
    Ok((width, height))
}

/// Skips `profile_tier_level(1, max_sub_layers_minus1)` (H.265 §7.3.3).
fn skip_profile_tier_level(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u32,
) -> Result<(), SpsError> {
    // general_profile_space .. general_level_idc: 2+1+5+32+4+43+1 bits, then 8.
    for n in [8, 32, 32, 16, 8] {
        r.bits(n)?;
    }
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    for i in 0..max_sub_layers_minus1 as usize {
        profile_present[i] = r.flag()?;
        level_present[i] = r.flag()?;
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.bits(2)?; // reserved_zero_2bits
        }
    }
    for i in 0..max_sub_layers_minus1 as usize {
        if profile_present[i] {
            // sub_layer profile space .. inbld/reserved: 88 bits.
            for n in [8, 32, 32, 16] {
                r.bits(n)?;
            }
        }
        if level_present[i] {
            r.bits(8)?;
        }
    }
    Ok(())
}
