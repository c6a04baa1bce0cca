//! H.265/HEVC decoder configuration: the `HEVCDecoderConfigurationRecord`
//! (ISO/IEC 14496-15 §8.3.3.1) that an Enhanced RTMP `hvc1` SequenceStart and an
//! MP4 `hvcC` box carry.
//!
//! [`HevcConfig::parse`] reads the record's fixed fields and NAL unit arrays,
//! checks that it carries a VPS, an SPS and a PPS, and decodes just enough of the
//! first SPS (ITU-T H.265 §7.3.2.2) to learn the displayed picture size. It keeps
//! the record as received so the muxer copies it verbatim into `hvcC`, and makes
//! the RFC 6381 / ISO/IEC 14496-15 Annex E codec string (`hvc1.1.6.L93.B0`).
//! [`record_from_parameter_sets`] builds such a record from the in-band VPS/SPS/PPS
//! of an Annex B stream (what the MPEG-TS demuxer of SRT ingest finds).
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
        let first_sps = first_sps(&vps, &sps, &pps)?;
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

/// Builds an `HEVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §8.3.3.1) from
/// in-band parameter sets (NAL units with their two-byte header, emulation
/// prevention bytes in), as an Annex B stream (MPEG-TS) carries them.
///
/// The general profile, tier, level, compatibility and constraint flags are
/// copied from the first SPS's `profile_tier_level`, chroma format, bit depths,
/// temporal layers and nesting from the same SPS; `lengthSizeMinusOne` is 3
/// (4-byte NAL lengths); one array each of VPS, SPS and PPS with
/// `array_completeness` 1. `min_spatial_segmentation_idc`, `parallelismType`,
/// frame rates are 0 (unknown), as the VUI is not read. The result is checked
/// with [`HevcConfig::parse`].
pub fn record_from_parameter_sets(
    vps: &[Bytes],
    sps: &[Bytes],
    pps: &[Bytes],
) -> Result<HevcConfig, CodecError> {
    let first = first_sps(vps, sps, pps)?;
    let info = Sps::parse(first)?;
    let (luma_minus8, chroma_minus8) = info.bit_depths_minus8.ok_or(CodecError::InvalidSps(
        "HEVC SPS ends before its bit depths, or they exceed 15 (the record holds 3 bits)",
    ))?;
    let mut r = Vec::with_capacity(
        23 + [vps, sps, pps]
            .iter()
            .flat_map(|a| a.iter())
            .map(|n| n.len() + 2)
            .sum::<usize>()
            + 9,
    );
    r.push(1); // configurationVersion
    r.extend_from_slice(&info.general_ptl);
    r.extend_from_slice(&[0xf0, 0x00]); // min_spatial_segmentation_idc 0
    r.push(0xfc); // parallelismType 0
    r.push(0xfc | (info.chroma_format_idc as u8 & 0x03));
    r.push(0xf8 | (luma_minus8 as u8 & 0x07));
    r.push(0xf8 | (chroma_minus8 as u8 & 0x07));
    r.extend_from_slice(&[0, 0]); // avgFrameRate unknown
                                  // constantFrameRate 0, numTemporalLayers, temporalIdNested, lengthSizeMinusOne 3.
    let layers = (info.max_sub_layers_minus1 as u8 + 1) & 0x07;
    r.push((layers << 3) | (u8::from(info.temporal_id_nesting) << 2) | 0x03);
    r.push(3); // numOfArrays
    for (nal_type, nals) in [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)] {
        r.push(0x80 | nal_type); // array_completeness 1
        let count = u16::try_from(nals.len())
            .map_err(|_| CodecError::InvalidRecord("more than 65535 parameter sets"))?;
        r.extend_from_slice(&count.to_be_bytes());
        for nal in nals {
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
            let len = u16::try_from(nal.len()).map_err(|_| {
                CodecError::InvalidRecord("parameter set NAL unit longer than 65535 bytes")
            })?;
            r.extend_from_slice(&len.to_be_bytes());
            r.extend_from_slice(nal);
        }
    }
    HevcConfig::parse(Bytes::from(r))
}

/// The first SPS of a set of parameter sets that has at least one VPS, SPS and PPS
/// (what both a parsed `hvcC` and one built from in-band sets need).
fn first_sps<'a>(vps: &[Bytes], sps: &'a [Bytes], pps: &[Bytes]) -> Result<&'a Bytes, CodecError> {
    if vps.is_empty() {
        return Err(CodecError::MissingParameterSet("HEVC", "VPS"));
    }
    let first = sps
        .first()
        .ok_or(CodecError::MissingParameterSet("HEVC", "SPS"))?;
    if pps.is_empty() {
        return Err(CodecError::MissingParameterSet("HEVC", "PPS"));
    }
    Ok(first)
}

/// Decodes the conformance-window cropped picture size from an HEVC SPS NAL unit
/// (two-byte header included).
fn hevc_sps_dimensions(nal: &[u8]) -> Result<(u32, u32), CodecError> {
    let sps = Sps::parse(nal)?;
    Ok((sps.width, sps.height))
}

/// What a decoder configuration record takes from an SPS.
struct Sps {
    /// The 12 bytes of the general profile_tier_level: profile space, tier and
    /// profile idc; compatibility flags; constraint flags; level idc.
    general_ptl: [u8; 12],
    max_sub_layers_minus1: u32,
    temporal_id_nesting: bool,
    chroma_format_idc: u32,
    /// `bit_depth_luma_minus8` and `bit_depth_chroma_minus8`, when the SPS has
    /// them and they are in range (only the record builder needs them).
    bit_depths_minus8: Option<(u32, u32)>,
    width: u32,
    height: u32,
}

impl Sps {
    /// Reads an SPS NAL unit (two-byte header included, emulation prevention
    /// bytes still in).
    fn parse(nal: &[u8]) -> Result<Self, CodecError> {
        let rbsp = unescape_rbsp(nal);
        hevc_sps_rbsp(&rbsp).map_err(CodecError::from)
    }
}

fn hevc_sps_rbsp(rbsp: &[u8]) -> Result<Sps, SpsError> {
    let mut r = BitReader::new(rbsp);
    r.bits(16)?; // NAL header, type already checked
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(SpsError::Invalid("sps_max_sub_layers_minus1 > 6"));
    }
    let temporal_id_nesting = r.flag()?;
    // The general part is byte-aligned here (16 + 8 bits read).
    let mut general_ptl = [0u8; 12];
    if let Some(bytes) = rbsp.get(3..15) {
        general_ptl.copy_from_slice(bytes);
    }
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
    let bit_depths_minus8 = match (r.ue(), r.ue()) {
        (Ok(luma), Ok(chroma)) if luma <= 7 && chroma <= 7 => Some((luma, chroma)),
        _ => None,
    };
    Ok(Sps {
        general_ptl,
        max_sub_layers_minus1,
        temporal_id_nesting,
        chroma_format_idc,
        bit_depths_minus8,
        width,
        height,
    })
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
