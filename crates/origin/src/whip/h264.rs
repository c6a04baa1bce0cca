//! H.264 access units as str0m depacketises them (Annex B: NAL units behind start
//! codes) turned into what the packager takes: AVCC samples (4-byte length prefixes)
//! and an `AVCDecoderConfigurationRecord` built from the SPS and PPS the publisher
//! sends in-band (WebRTC has no out-of-band parameter sets; browsers repeat them
//! before every IDR).
//!
//! Sans-IO and panic-free on any input (fuzzed with the offer path). Not a bitstream
//! parser: only NAL unit types are read; the SPS is interpreted by `media::codec`.

use bytes::{BufMut, Bytes, BytesMut};

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// Largest access unit taken (bigger ones are dropped: no WebRTC encoder makes them).
pub const MAX_ACCESS_UNIT: usize = 8 * 1024 * 1024;
/// Largest parameter set kept.
const MAX_PARAMETER_SET: usize = 1024;

/// One access unit ready for the packager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// A new `AVCDecoderConfigurationRecord`, when the parameter sets changed (always
    /// before the first access unit).
    pub config: Option<Bytes>,
    /// Holds an IDR slice.
    pub keyframe: bool,
    /// AVCC NAL units (SPS, PPS and access unit delimiters left out: they live in
    /// the configuration record).
    pub data: Bytes,
}

/// Why an access unit was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum H264Error {
    #[error("access unit of {0} bytes is larger than the limit of {MAX_ACCESS_UNIT}")]
    TooLarge(usize),
    #[error("access unit has no slice data")]
    Empty,
    #[error("no SPS and PPS seen yet: waiting for a keyframe")]
    NoParameterSets,
}

/// The NAL units of an Annex B byte stream (start codes `00 00 01` or `00 00 00 01`;
/// trailing zero bytes dropped). Input without a start code is one NAL unit.
pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // (start of the code, start of the NAL)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    if starts.is_empty() {
        return trim(data).into_iter().collect();
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &(_, nal_start)) in starts.iter().enumerate() {
        let end = starts
            .get(n + 1)
            .map(|&(code, _)| code)
            .unwrap_or(data.len());
        if let Some(nal) = data.get(nal_start..end).and_then(trim) {
            out.push(nal);
        }
    }
    out
}

/// Drops trailing zero bytes (the first zero of a 4-byte start code, padding).
fn trim(nal: &[u8]) -> Option<&[u8]> {
    let end = nal.iter().rposition(|&b| b != 0)? + 1;
    Some(&nal[..end])
}

/// An `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3) with one SPS and one
/// PPS and 4-byte NAL lengths. `None` when the SPS is too short to name a profile.
pub fn config_record(sps: &[u8], pps: &[u8]) -> Option<Bytes> {
    let (profile, compat, level) = (*sps.get(1)?, *sps.get(2)?, *sps.get(3)?);
    let sps_len = u16::try_from(sps.len()).ok()?;
    let pps_len = u16::try_from(pps.len()).ok()?;
    let mut r = BytesMut::with_capacity(11 + sps.len() + pps.len());
    r.put_slice(&[1, profile, compat, level, 0xff, 0xe1]);
    r.put_u16(sps_len);
    r.put_slice(sps);
    r.put_u8(1);
    r.put_u16(pps_len);
    r.put_slice(pps);
    Some(r.freeze())
}

/// Turns a publisher's access units into packager input, tracking its parameter sets.
#[derive(Debug, Default)]
pub struct Depacketized {
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// The record last handed out.
    record: Option<Bytes>,
}

impl Depacketized {
    /// One Annex B access unit.
    pub fn access_unit(&mut self, annexb: &[u8]) -> Result<AccessUnit, H264Error> {
        if annexb.len() > MAX_ACCESS_UNIT {
            return Err(H264Error::TooLarge(annexb.len()));
        }
        let mut data = BytesMut::with_capacity(annexb.len() + 16);
        let mut keyframe = false;
        for nal in nal_units(annexb) {
            let Some(&header) = nal.first() else { continue };
            match header & 0x1f {
                NAL_SPS if nal.len() <= MAX_PARAMETER_SET => {
                    self.sps = Some(Bytes::copy_from_slice(nal));
                }
                NAL_PPS if nal.len() <= MAX_PARAMETER_SET => {
                    self.pps = Some(Bytes::copy_from_slice(nal));
                }
                NAL_SPS | NAL_PPS | NAL_AUD => {}
                kind => {
                    keyframe |= kind == NAL_IDR;
                    let Ok(len) = u32::try_from(nal.len()) else {
                        continue;
                    };
                    data.put_u32(len);
                    data.put_slice(nal);
                }
            }
        }
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            return Err(H264Error::NoParameterSets);
        };
        if data.is_empty() {
            return Err(H264Error::Empty);
        }
        let record = config_record(sps, pps).ok_or(H264Error::NoParameterSets)?;
        let config = (self.record.as_ref() != Some(&record)).then(|| {
            self.record = Some(record.clone());
            record
        });
        Ok(AccessUnit {
            config,
            keyframe,
            data: data.freeze(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real 320x240 Constrained Baseline SPS (x264) and a PPS.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0xa4, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, n) in nals.iter().enumerate() {
            // Both start code lengths.
            if i % 2 == 0 {
                v.extend_from_slice(&[0, 0, 0, 1]);
            } else {
                v.extend_from_slice(&[0, 0, 1]);
            }
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn nal_units_split_on_both_start_codes() {
        let d = annexb(&[&[0x09, 0xf0], SPS, PPS, &[0x65, 1, 2, 3, 0]]);
        let n = nal_units(&d);
        assert_eq!(n.len(), 4);
        assert_eq!(n[0], &[0x09, 0xf0]);
        assert_eq!(n[1], SPS);
        assert_eq!(n[3], &[0x65, 1, 2, 3]);
        assert_eq!(nal_units(&[0x41, 7]), vec![&[0x41u8, 7][..]]);
        assert!(nal_units(&[]).is_empty());
        assert!(nal_units(&[0, 0, 1]).is_empty());
    }

    #[test]
    fn the_config_record_comes_from_in_band_parameter_sets() {
        let mut d = Depacketized::default();
        // A P-frame before any SPS/PPS: wait.
        assert_eq!(
            d.access_unit(&annexb(&[&[0x41, 9, 9]])),
            Err(H264Error::NoParameterSets)
        );
        let idr = annexb(&[SPS, PPS, &[0x65, 0x88, 0x84]]);
        let au = d.access_unit(&idr).expect("idr");
        assert!(au.keyframe);
        assert_eq!(&au.data[..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
        let record = au.config.expect("first config");
        let cfg = media::codec::AvcConfig::parse(record).expect("parses");
        assert_eq!((cfg.width, cfg.height), (320, 240));
        assert_eq!(cfg.codec_string(), "avc1.42c00d");
        assert_eq!(cfg.nal_length_size, 4);
        // The same parameter sets again: no new record; a P-frame is not a keyframe.
        assert_eq!(d.access_unit(&idr).expect("idr").config, None);
        let p = d
            .access_unit(&annexb(&[&[0x41, 1], &[0x41, 2]]))
            .expect("p");
        assert!(!p.keyframe);
        assert_eq!(&p.data[..], &[0, 0, 0, 2, 0x41, 1, 0, 0, 0, 2, 0x41, 2]);
        // New parameter sets: a new record.
        let pps2: &[u8] = &[0x68, 0xce, 0x38, 0x80];
        let au = d
            .access_unit(&annexb(&[SPS, pps2, &[0x65, 1]]))
            .expect("idr");
        assert!(au.config.is_some());
        assert_eq!(d.access_unit(&annexb(&[SPS, PPS])), Err(H264Error::Empty));
    }

    #[test]
    fn garbage_never_panics() {
        let mut d = Depacketized::default();
        for len in 0..64u8 {
            let v: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) % 3).collect();
            let _ = d.access_unit(&v);
        }
        assert_eq!(config_record(&[0x67], PPS), None);
    }
}
