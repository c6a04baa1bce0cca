//! Tests of `codec`.

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

#[test]
fn opus_heads_parse_and_packets_say_their_length() {
    let head = OpusConfig::head(2);
    assert_eq!(head.len(), 19);
    let cfg = AudioConfig::parse(head.clone()).expect("opus head");
    assert_eq!(cfg.sample_rate(), 48_000);
    assert_eq!(cfg.channels(), 2);
    assert_eq!(cfg.codec_string(), "opus");
    assert!(matches!(cfg.track_codec(), TrackCodec::Opus(_)));
    let AudioConfig::Opus(o) = cfg else {
        panic!("not opus")
    };
    assert_eq!(
        (o.pre_skip, o.input_sample_rate, o.output_gain),
        (312, 48_000, 0)
    );
    // An AudioSpecificConfig is still AAC.
    let aac = AudioConfig::parse(Bytes::from_static(&[0x12, 0x10])).expect("asc");
    assert_eq!(aac.codec_string(), "mp4a.40.2");
    assert_eq!(aac.sample_rate(), 44_100);
    // Bad heads.
    assert!(OpusConfig::parse(head.slice(..10)).is_err());
    let mut v = head.to_vec();
    v[9] = 6;
    assert!(OpusConfig::parse(Bytes::from(v.clone())).is_err());
    v[9] = 2;
    v[18] = 1;
    assert!(OpusConfig::parse(Bytes::from(v)).is_err());
    // TOC: config 31 (CELT 20 ms) one frame; config 18 (CELT 10 ms) two frames;
    // config 3 (SILK 60 ms); code 3 with 3 frames of 20 ms (hybrid), with 0 frames,
    // without its count byte; empty.
    assert_eq!(opus_packet_samples(&[31 << 3]), Some(960));
    assert_eq!(opus_packet_samples(&[(18 << 3) | 1]), Some(960));
    assert_eq!(opus_packet_samples(&[3 << 3]), Some(2880));
    assert_eq!(opus_packet_samples(&[(15 << 3) | 3, 3]), Some(2880));
    assert_eq!(opus_packet_samples(&[(15 << 3) | 3, 0]), None);
    assert_eq!(opus_packet_samples(&[(15 << 3) | 3]), None);
    assert_eq!(opus_packet_samples(&[]), None);
}

/// HEVCDecoderConfigurationRecords written by ffmpeg 5.1 / libx265 3.5 (`hvcC` of an
/// MP4 from `testsrc2`, `info=0`), with what ffprobe reports.
pub(crate) const HVCC_320X240_MAIN: &str = "0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003003c959409a10001002a42010101600000030090000003000003003ca00a080f16595952930bc05a020000030002000003003c10a2000100064401c073c189";
const HVCC_720P_MAIN10: &str = "0102200000009000000000005df000fcfdfafa00000f03a00001001840010c01ffff02200000030090000003000003005d959409a10001002b42010102200000030090000003000003005da00280802d136595952930bc05a020000003002000000303c1a2000100064401c073c189";
/// AV1CodecConfigurationRecord written by ffmpeg 5.1 / SVT-AV1 1.4.1 (`av1C`,
/// 320x240, main profile, 8 bit 4:2:0), with its sequence header OBU.
pub(crate) const AV1C_320X240: &str = "81000c000a0b000000043cffbc02f80040";

#[test]
fn hevc_records_from_x265() {
    let c = HevcConfig::parse(hex(HVCC_320X240_MAIN)).unwrap();
    assert_eq!((c.width, c.height), (320, 240));
    assert_eq!((c.profile_idc, c.level_idc, c.high_tier), (1, 60, false));
    assert_eq!(
        (c.chroma_format, c.bit_depth_luma, c.nal_length_size),
        (1, 8, 4)
    );
    assert_eq!((c.vps.len(), c.sps.len(), c.pps.len()), (1, 1, 1));
    assert_eq!(c.codec_string(), "hvc1.1.6.L60.90");
    assert_eq!(c.raw, hex(HVCC_320X240_MAIN));

    let c = HevcConfig::parse(hex(HVCC_720P_MAIN10)).unwrap();
    assert_eq!((c.width, c.height), (1280, 720));
    assert_eq!(c.bit_depth_luma, 10);
    assert_eq!(c.codec_string(), "hvc1.2.4.L93.90");
    let v = VideoConfig::parse(VideoCodec::Hevc, hex(HVCC_720P_MAIN10)).unwrap();
    assert_eq!(v.dimensions(), Some((1280, 720)));
    assert_eq!(v.codec_string(), "hvc1.2.4.L93.90");
    assert!(v.as_avc().is_none());
}

#[test]
fn hevc_codec_strings() {
    let mut c = HevcConfig::parse(hex(HVCC_320X240_MAIN)).unwrap();
    c.level_idc = 93;
    c.constraint_flags = [0xb0, 0, 0, 0, 0, 0];
    assert_eq!(c.codec_string(), "hvc1.1.6.L93.B0");
    c.high_tier = true;
    c.level_idc = 120;
    c.constraint_flags = [0; 6];
    assert_eq!(c.codec_string(), "hvc1.1.6.H120");
    c.constraint_flags = [0x90, 0, 0x01, 0, 0, 0];
    assert_eq!(c.codec_string(), "hvc1.1.6.H120.90.0.1");
    c.profile_space = 2;
    c.profile_idc = 4;
    c.compatibility_flags = 0x0800_0000; // flag 4
    assert_eq!(c.codec_string(), "hvc1.B4.10.H120.90.0.1");
}

#[test]
fn hevc_hostile_records() {
    let good = hex(HVCC_320X240_MAIN);
    // Every truncation is an error.
    for n in 0..good.len() {
        assert!(HevcConfig::parse(good.slice(..n)).is_err(), "prefix {n}");
    }
    let with = |at: usize, v: u8| {
        let mut b = good.to_vec();
        b[at] = v;
        HevcConfig::parse(Bytes::from(b))
    };
    assert!(matches!(
        with(0, 2),
        Err(CodecError::UnsupportedConfigVersion { version: 2, .. })
    ));
    // lengthSizeMinusOne 2.
    assert!(matches!(with(21, 0x0e), Err(CodecError::InvalidRecord(_))));
    // Too many arrays.
    assert!(matches!(with(22, 200), Err(CodecError::InvalidRecord(_))));
    // The VPS array declared as SPS: its NAL header says 32.
    assert!(matches!(
        with(23, 0xa1),
        Err(CodecError::UnexpectedNalType {
            expected: 33,
            found: 32
        })
    ));
    // No PPS: drop the last array.
    let mut b = good.to_vec();
    b[22] = 2;
    assert!(matches!(
        HevcConfig::parse(Bytes::from(b)),
        Err(CodecError::MissingParameterSet("HEVC", "PPS"))
    ));
    // An AVC record is not an HEVC one.
    assert!(HevcConfig::parse(hex(RECORDS[0].1)).is_err());
}

#[test]
fn av1_record_from_svt() {
    let c = Av1Config::parse(hex(AV1C_320X240)).unwrap();
    assert_eq!(
        (c.profile, c.level_idx, c.high_tier, c.bit_depth),
        (0, 0, false, 8)
    );
    assert_eq!(c.chroma, (true, true, 0));
    assert_eq!(c.dimensions, Some((320, 240)));
    assert_eq!(c.codec_string(), "av01.0.00M.08");
    // Without configOBUs the record still parses; the size is unknown.
    let c = Av1Config::parse(hex("81084c00")).unwrap();
    assert_eq!(c.dimensions, None);
    assert_eq!(c.codec_string(), "av01.0.08M.10");
    let c = Av1Config::parse(hex("8153e000")).unwrap();
    assert_eq!(c.codec_string(), "av01.2.19H.12");
}

#[test]
fn av1_hostile_records() {
    let good = hex(AV1C_320X240);
    for n in 0..4 {
        assert!(Av1Config::parse(good.slice(..n)).is_err());
    }
    for n in 5..good.len() {
        assert!(Av1Config::parse(good.slice(..n)).is_err(), "prefix {n}");
    }
    let with = |at: usize, v: u8| {
        let mut b = good.to_vec();
        b[at] = v;
        Av1Config::parse(Bytes::from(b))
    };
    assert!(matches!(
        with(0, 0x01),
        Err(CodecError::UnsupportedConfigVersion { .. })
    ));
    assert!(matches!(with(1, 0x60), Err(CodecError::InvalidRecord(_))));
    assert!(matches!(with(1, 0x18), Err(CodecError::InvalidRecord(_))));
    // Forbidden bit, an OBU size past the end, a size longer than 8 bytes.
    assert!(matches!(with(4, 0x8a), Err(CodecError::InvalidObu(_))));
    assert!(matches!(with(5, 0x7f), Err(CodecError::Truncated(_))));
    let long = hex("810000000a808080808080808001");
    assert!(matches!(
        Av1Config::parse(long),
        Err(CodecError::InvalidObu(_))
    ));
}

#[test]
fn av1_sample_obus() {
    // Temporal delimiter (12 00), a frame OBU (32 02 aa bb), padding (7a 01 00).
    let unit = hex("120032 02aabb7a0100".replace(' ', "").as_str());
    assert_eq!(av1::sample_obus(unit).unwrap(), hex("3202aabb"));
    // Nothing to drop: the same bytes back.
    let unit = hex("0a0b000000043cffbc02f800403202aabb");
    assert_eq!(av1::sample_obus(unit.clone()).unwrap(), unit);
    // Kept OBUs around a dropped one are joined.
    let unit = hex("3201aa12003201bb");
    assert_eq!(av1::sample_obus(unit).unwrap(), hex("3201aa3201bb"));
    // A last OBU without a size field runs to the end.
    let unit = hex("12003099");
    assert_eq!(av1::sample_obus(unit).unwrap(), hex("3099"));
    // Errors: empty, only a delimiter, broken sizes.
    assert!(av1::sample_obus(Bytes::new()).is_err());
    assert!(av1::sample_obus(hex("1200")).is_err());
    assert!(av1::sample_obus(hex("3205aa")).is_err());
    assert!(av1::sample_obus(hex("32ff")).is_err());
    assert!(av1::sample_obus(hex("b200")).is_err());
}

#[test]
fn new_records_never_panic_on_garbage() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..96usize {
        for _ in 0..96 {
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let b = Bytes::from(v);
            let _ = HevcConfig::parse(b.clone());
            let _ = Av1Config::parse(b.clone());
            let _ = av1::sample_obus(b.clone());
            // And with valid headers in front, so the parsers get deeper.
            let mut h = hex(HVCC_320X240_MAIN)[..23].to_vec();
            h.extend_from_slice(&b);
            let _ = HevcConfig::parse(Bytes::from(h));
            let mut a = vec![0x81, 0x00, 0x0c, 0x00, 0x0a, len as u8];
            a.extend_from_slice(&b);
            let _ = Av1Config::parse(Bytes::from(a));
        }
    }
}
