//! Tests of `mp4`.

use super::*;

// ---- a tiny hand-written box builder -------------------------------

fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = u32::try_from(payload.len() + 8)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(payload);
    v
}

fn fbx(kind: &[u8; 4], version: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![version, 0, 0, 0];
    p.extend_from_slice(payload);
    bx(kind, &p)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn be32(vals: &[u32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// entry count followed by the flattened entries
fn table(entries: &[&[u32]]) -> Vec<u8> {
    let mut v = be32(&[entries.len() as u32]);
    for e in entries {
        v.extend(be32(e));
    }
    v
}

/// mvhd/mdhd body: (c)time, (m)time, timescale, duration [+ padding]
fn time_box(kind: &[u8; 4], v1: bool, timescale: u32, duration: u64) -> Vec<u8> {
    let mut p = Vec::new();
    if v1 {
        p.extend([0u8; 16]);
        p.extend(timescale.to_be_bytes());
        p.extend(duration.to_be_bytes());
    } else {
        p.extend([0u8; 8]);
        p.extend(timescale.to_be_bytes());
        p.extend((duration as u32).to_be_bytes());
    }
    p.extend([0u8; 20]); // whatever follows; ignored
    fbx(kind, u8::from(v1), &p)
}

fn tkhd(v1: bool, id: u32) -> Vec<u8> {
    let mut p = vec![0u8; if v1 { 16 } else { 8 }];
    p.extend(id.to_be_bytes());
    p.extend([0u8; 60]);
    fbx(b"tkhd", u8::from(v1), &p)
}

fn hdlr(handler: &[u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 4];
    p.extend_from_slice(handler);
    p.extend([0u8; 12]);
    p.extend(b"name\0");
    fbx(b"hdlr", 0, &p)
}

fn avc1(kind: &[u8; 4], width: u16, height: u16, avcc: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 6];
    p.extend(1u16.to_be_bytes()); // data_reference_index
    p.extend([0u8; 16]);
    p.extend(width.to_be_bytes());
    p.extend(height.to_be_bytes());
    p.extend([0u8; 50]);
    p.extend(bx(b"pasp", &be32(&[1, 1])));
    p.extend(bx(b"avcC", avcc));
    p.extend(bx(b"btrt", &be32(&[0, 0, 0])));
    bx(kind, &p)
}

/// descriptor with a length written in `len_bytes` bytes (1-4)
fn desc(tag: u8, body: &[u8], len_bytes: usize) -> Vec<u8> {
    let mut v = vec![tag];
    for i in (0..len_bytes).rev() {
        let b = ((body.len() >> (7 * i)) & 0x7f) as u8;
        v.push(if i > 0 { b | 0x80 } else { b });
    }
    v.extend_from_slice(body);
    v
}

fn esds(object_type: u8, es_flags: u8, asc: Option<&[u8]>, len_bytes: usize) -> Vec<u8> {
    let mut dcd = vec![object_type, 0x15, 0, 0, 0];
    dcd.extend(be32(&[128_000, 128_000]));
    if let Some(asc) = asc {
        dcd.extend(desc(0x05, asc, len_bytes));
    }
    let mut es = vec![0, 1, es_flags];
    if es_flags & 0x80 != 0 {
        es.extend([0, 7]);
    }
    if es_flags & 0x40 != 0 {
        es.push(3);
        es.extend(b"abc");
    }
    if es_flags & 0x20 != 0 {
        es.extend([0, 9]);
    }
    es.extend(desc(0x04, &dcd, len_bytes));
    es.extend(desc(0x06, &[2], len_bytes)); // SLConfigDescriptor
    fbx(b"esds", 0, &desc(0x03, &es, len_bytes))
}

fn mp4a(channels: u16, rate: u32, esds: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 6];
    p.extend(1u16.to_be_bytes());
    p.extend([0u8; 8]);
    p.extend(channels.to_be_bytes());
    p.extend(16u16.to_be_bytes());
    p.extend([0u8; 4]);
    p.extend((rate << 16).to_be_bytes());
    p.extend_from_slice(esds);
    bx(b"mp4a", &p)
}

const AVCC: &[u8] = &[
    1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1e, 1, 0, 2, 0x68, 0xeb,
];
const ASC: &[u8] = &[0x12, 0x10]; // AAC-LC, 44100 Hz, 2 channels

enum Sz {
    Table(Vec<u32>),
    /// (size, count)
    Uniform(u32, u32),
    /// stz2: (field bits, count, packed table)
    Compact(u8, u32, Vec<u8>),
}

struct Trak {
    id: u32,
    handler: [u8; 4],
    timescale: u32,
    duration: u64,
    v1: bool,
    entry: Vec<u8>,
    stts: Vec<[u32; 2]>,
    ctts: Option<(u8, Vec<[u32; 2]>)>,
    stsc: Vec<[u32; 3]>,
    sizes: Sz,
    chunks: Vec<u64>,
    co64: bool,
    stss: Option<Vec<u32>>,
}

impl Trak {
    fn stbl(&self) -> Vec<u8> {
        let mut p = fbx(b"stsd", 0, &cat(&[&be32(&[1]), &self.entry]));
        let rows = |v: &[[u32; 2]]| table(&v.iter().map(|r| &r[..]).collect::<Vec<_>>());
        p.extend(fbx(b"stts", 0, &rows(&self.stts)));
        if let Some((version, ctts)) = &self.ctts {
            p.extend(fbx(b"ctts", *version, &rows(ctts)));
        }
        let stsc: Vec<&[u32]> = self.stsc.iter().map(|r| &r[..]).collect();
        p.extend(fbx(b"stsc", 0, &table(&stsc)));
        p.extend(match &self.sizes {
            Sz::Table(sizes) => fbx(
                b"stsz",
                0,
                &cat(&[&be32(&[0, sizes.len() as u32]), &be32(sizes)]),
            ),
            Sz::Uniform(size, count) => fbx(b"stsz", 0, &be32(&[*size, *count])),
            Sz::Compact(bits, count, data) => fbx(
                b"stz2",
                0,
                &cat(&[&[0, 0, 0, *bits], &be32(&[*count]), data]),
            ),
        });
        if self.co64 {
            let mut t = be32(&[self.chunks.len() as u32]);
            t.extend(self.chunks.iter().flat_map(|c| c.to_be_bytes()));
            p.extend(fbx(b"co64", 0, &t));
        } else {
            let c: Vec<u32> = self.chunks.iter().map(|&c| c as u32).collect();
            p.extend(fbx(
                b"stco",
                0,
                &cat(&[&be32(&[c.len() as u32]), &be32(&c)]),
            ));
        }
        if let Some(stss) = &self.stss {
            p.extend(fbx(
                b"stss",
                0,
                &cat(&[&be32(&[stss.len() as u32]), &be32(stss)]),
            ));
        }
        bx(b"stbl", &p)
    }

    fn build(&self) -> Vec<u8> {
        let elst = fbx(b"elst", 0, &be32(&[1, 2000, 1024, 0x0001_0000]));
        let minf = bx(
            b"minf",
            &cat(&[&fbx(b"vmhd", 0, &[0; 8]), &bx(b"dinf", &[]), &self.stbl()]),
        );
        let mdia = bx(
            b"mdia",
            &cat(&[
                &time_box(b"mdhd", self.v1, self.timescale, self.duration),
                &hdlr(&self.handler),
                &minf,
            ]),
        );
        bx(
            b"trak",
            &cat(&[&tkhd(self.v1, self.id), &bx(b"edts", &elst), &mdia]),
        )
    }
}

fn video_trak() -> Trak {
    Trak {
        id: 1,
        handler: *b"vide",
        timescale: 12800,
        duration: 5120,
        v1: false,
        entry: avc1(b"avc1", 320, 240, AVCC),
        stts: vec![[10, 512]],
        ctts: Some((0, vec![[1, 1024], [2, 0], [1, 1536], [6, 512]])),
        stsc: vec![[1, 3, 1], [3, 2, 1]],
        sizes: Sz::Table((100..110).collect()),
        chunks: vec![1000, 5000, 9000, 20000],
        co64: false,
        stss: Some(vec![1, 6]),
    }
}

fn audio_trak() -> Trak {
    Trak {
        id: 2,
        handler: *b"soun",
        timescale: 44100,
        duration: 4608,
        v1: true,
        entry: mp4a(2, 44100, &esds(0x40, 0, Some(ASC), 1)),
        stts: vec![[4, 1024], [1, 512]],
        ctts: None,
        stsc: vec![[1, 5, 1]],
        sizes: Sz::Uniform(200, 5),
        chunks: vec![1 << 33],
        co64: true,
        stss: None,
    }
}

fn moov(traks: &[&Trak], extra: &[u8]) -> Vec<u8> {
    let mut p = time_box(b"mvhd", false, 1000, 400);
    for t in traks {
        p.extend(t.build());
    }
    p.extend_from_slice(extra);
    p.extend(bx(b"udta", &bx(b"meta", &[0; 12])));
    bx(b"moov", &p)
}

fn sample_moov() -> Vec<u8> {
    moov(&[&video_trak(), &audio_trak()], &[])
}

// ---- box headers ----------------------------------------------------

#[test]
fn box_header_variants() {
    assert_eq!(read_box_header(&[]), Ok(None));
    assert_eq!(read_box_header(&[0, 0, 0, 8, b'f', b'r', b'e']), Ok(None));
    assert_eq!(
        read_box_header(b"\0\0\0\x10ftypxxxx"),
        Ok(Some(BoxHeader {
            kind: *b"ftyp",
            header_len: 8,
            size: Some(16)
        }))
    );
    assert_eq!(
        read_box_header(b"\0\0\0\0mdat"),
        Ok(Some(BoxHeader {
            kind: *b"mdat",
            header_len: 8,
            size: None
        }))
    );
    let mut large = b"\0\0\0\x01mdat".to_vec();
    assert_eq!(read_box_header(&large), Ok(None));
    large.extend((1u64 << 40).to_be_bytes());
    assert_eq!(
        read_box_header(&large),
        Ok(Some(BoxHeader {
            kind: *b"mdat",
            header_len: 16,
            size: Some(1 << 40)
        }))
    );
    let mut small_large = b"\0\0\0\x01mdat".to_vec();
    small_large.extend(15u64.to_be_bytes());
    assert!(matches!(
        read_box_header(&small_large),
        Err(Mp4Error::InvalidBoxSize { size: 15, .. })
    ));
    for s in 2u8..8 {
        assert!(read_box_header(&[0, 0, 0, s, b'a', b'b', b'c', b'd']).is_err());
    }
}

// ---- happy paths ----------------------------------------------------

#[test]
fn parses_video_and_audio_tracks() {
    let f = parse_moov(&sample_moov()).unwrap();
    assert_eq!((f.timescale, f.duration), (1000, 400));
    assert_eq!(f.tracks.len(), 2);

    let v = &f.tracks[0];
    assert_eq!(
        (v.id, v.kind, v.timescale, v.duration),
        (1, TrackKind::Video, 12800, 5120)
    );
    assert_eq!(
        v.entry,
        SampleEntry::Avc {
            avcc: Bytes::from_static(AVCC),
            width: 320,
            height: 240
        }
    );
    assert_eq!(v.samples.len(), 10);
    // chunk layout: 3 + 3 + 2 + 2 samples at 1000, 5000, 9000, 20000
    let offsets: Vec<u64> = v.samples.iter().map(|s| s.offset).collect();
    assert_eq!(
        offsets,
        [1000, 1100, 1201, 5000, 5103, 5207, 9000, 9106, 20000, 20108]
    );
    let ctts: Vec<i32> = v.samples.iter().map(|s| s.cts_offset).collect();
    assert_eq!(ctts, [1024, 0, 0, 1536, 512, 512, 512, 512, 512, 512]);
    for (i, s) in v.samples.iter().enumerate() {
        assert_eq!(s.size, 100 + i as u32);
        assert_eq!(s.dts, 512 * i as u64);
        assert_eq!(s.duration, 512);
        assert_eq!(s.keyframe, i == 0 || i == 5, "sample {i}");
    }

    let a = &f.tracks[1];
    assert_eq!(
        (a.id, a.kind, a.timescale, a.duration),
        (2, TrackKind::Audio, 44100, 4608)
    );
    assert_eq!(
        a.entry,
        SampleEntry::Aac {
            asc: Bytes::from_static(ASC),
            channels: 2,
            sample_rate: 44100
        }
    );
    let got: Vec<(u64, u32, u64, u32, bool)> = a
        .samples
        .iter()
        .map(|s| (s.offset, s.size, s.dts, s.duration, s.keyframe))
        .collect();
    let base = 1u64 << 33;
    assert_eq!(
        got,
        [
            (base, 200, 0, 1024, true),
            (base + 200, 200, 1024, 1024, true),
            (base + 400, 200, 2048, 1024, true),
            (base + 600, 200, 3072, 1024, true),
            (base + 800, 200, 4096, 512, true),
        ]
    );
}

#[test]
fn size_zero_moov_extends_to_end_and_trailing_bytes_ignored() {
    let mut m = sample_moov();
    let expected = parse_moov(&m).unwrap();
    m[..4].copy_from_slice(&[0; 4]);
    assert_eq!(parse_moov(&m).unwrap(), expected);
    let mut m = sample_moov();
    m.extend(bx(b"mdat", &[1, 2, 3]));
    assert_eq!(parse_moov(&m).unwrap(), expected);
}

#[test]
fn largesize_moov_header() {
    let m = sample_moov();
    let mut large = b"\0\0\0\x01moov".to_vec();
    large.extend((m.len() as u64 + 8).to_be_bytes());
    large.extend_from_slice(&m[8..]);
    assert_eq!(parse_moov(&large).unwrap(), parse_moov(&m).unwrap());
}

#[test]
fn ctts_v1_negative_and_v0_cast() {
    let mut t = video_trak();
    t.ctts = Some((1, vec![[1, (-512i32) as u32], [9, 0]]));
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert_eq!(f.tracks[0].samples[0].cts_offset, -512);
    t.ctts = Some((0, vec![[10, 0xffff_fe00]]));
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert!(f.tracks[0].samples.iter().all(|s| s.cts_offset == -512));
    t.ctts = Some((2, vec![[10, 0]]));
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::UnsupportedVersion {
            kind: [b'c', b't', b't', b's'],
            version: 2
        })
    ));
}

#[test]
fn ctts_shorter_than_samples_pads_with_zero() {
    let mut t = video_trak();
    t.ctts = Some((0, vec![[2, 100]]));
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    let c: Vec<i32> = f.tracks[0].samples.iter().map(|s| s.cts_offset).collect();
    assert_eq!(c, [100, 100, 0, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn v1_headers_avc3_and_stss_absent() {
    let mut t = video_trak();
    t.v1 = true;
    t.duration = 1 << 40;
    t.entry = avc1(b"avc3", 64, 48, AVCC);
    t.stss = None;
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    let v = &f.tracks[0];
    assert_eq!(v.duration, 1 << 40);
    assert!(matches!(
        v.entry,
        SampleEntry::Avc {
            width: 64,
            height: 48,
            ..
        }
    ));
    assert!(v.samples.iter().all(|s| s.keyframe));
    // present but empty stss: no keyframes
    t.stss = Some(vec![]);
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert!(f.tracks[0].samples.iter().all(|s| !s.keyframe));
    // out-of-range sample numbers are ignored
    t.stss = Some(vec![0, 3, 11, u32::MAX]);
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    let k: Vec<usize> = (0..10)
        .filter(|&i| f.tracks[0].samples[i].keyframe)
        .collect();
    assert_eq!(k, [2]);
}

#[test]
fn mvhd_v1() {
    let mut p = time_box(b"mvhd", true, 90000, 1 << 36);
    p.extend(video_trak().build());
    let f = parse_moov(&bx(b"moov", &p)).unwrap();
    assert_eq!((f.timescale, f.duration), (90000, 1 << 36));
}

#[test]
fn esds_flags_and_long_lengths() {
    for flags in [0x00, 0x80, 0x40, 0x20, 0xe0] {
        for len_bytes in 1..=4 {
            let mut t = audio_trak();
            t.entry = mp4a(1, 48000, &esds(0x40, flags, Some(ASC), len_bytes));
            let f = parse_moov(&moov(&[&t], &[])).unwrap();
            assert_eq!(
                f.tracks[0].entry,
                SampleEntry::Aac {
                    asc: Bytes::from_static(ASC),
                    channels: 2,
                    sample_rate: 48000
                },
                "flags {flags:#x} len_bytes {len_bytes}"
            );
        }
    }
}

#[test]
fn aac_rate_and_channels_fall_back_to_asc() {
    let mut t = audio_trak();
    // 0x11 0x88: AAC-LC, index 3 (48000), 1 channel
    t.entry = mp4a(0, 0, &esds(0x40, 0, Some(&[0x11, 0x88]), 1));
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert!(matches!(
        f.tracks[0].entry,
        SampleEntry::Aac {
            channels: 1,
            sample_rate: 48000,
            ..
        }
    ));
    // explicit 24-bit frequency (index 15): 96000 Hz, 2 channels
    // bits: 00010 1111 <24 bits 96000> 0010 ...
    let v: u64 = (0b00010 << 35) | (0b1111 << 31) | (96000 << 7) | (0b0010 << 3);
    let asc = &v.to_be_bytes()[3..];
    t.entry = mp4a(0, 0, &esds(0x40, 0, Some(asc), 1));
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert!(matches!(
        f.tracks[0].entry,
        SampleEntry::Aac {
            channels: 2,
            sample_rate: 96000,
            ..
        }
    ));
}

#[test]
fn aac_channels_prefer_asc_unless_zero() {
    let mut t = audio_trak();
    // ffmpeg style: entry says 2 channels, ASC says mono
    t.entry = mp4a(2, 8000, &esds(0x40, 0, Some(&[0x15, 0x88]), 1));
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert!(matches!(
        f.tracks[0].entry,
        SampleEntry::Aac {
            channels: 1,
            sample_rate: 8000,
            ..
        }
    ));
    // channelConfiguration 0 (program_config_element): keep the entry's
    t.entry = mp4a(6, 44100, &esds(0x40, 0, Some(&[0x12, 0x00]), 1));
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert!(matches!(
        f.tracks[0].entry,
        SampleEntry::Aac {
            channels: 6,
            sample_rate: 44100,
            ..
        }
    ));
}

#[test]
fn mp4a_inside_quicktime_wave() {
    let mut p = vec![0u8; 6];
    p.extend(1u16.to_be_bytes());
    p.extend(1u16.to_be_bytes()); // QuickTime sound description version 1
    p.extend([0u8; 6]);
    p.extend(2u16.to_be_bytes());
    p.extend(16u16.to_be_bytes());
    p.extend([0u8; 4]);
    p.extend((44100u32 << 16).to_be_bytes());
    p.extend([0u8; 16]);
    let wave = bx(
        b"wave",
        &cat(&[&bx(b"frma", b"mp4a"), &esds(0x40, 0, Some(ASC), 4), &[0; 8]]),
    );
    p.extend(wave);
    let mut t = audio_trak();
    t.entry = bx(b"mp4a", &p);
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert!(matches!(
        f.tracks[0].entry,
        SampleEntry::Aac {
            channels: 2,
            sample_rate: 44100,
            ..
        }
    ));
}

#[test]
fn unsupported_entries_keep_samples() {
    let mut t = audio_trak();
    t.entry = mp4a(2, 44100, &esds(0x6b, 0, None, 1)); // MP3 in mp4a
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert_eq!(f.tracks[0].entry, SampleEntry::Unsupported(*b"mp4a"));
    assert_eq!(f.tracks[0].samples.len(), 5);

    let mut t = video_trak();
    t.entry = bx(b"vp09", &[0; 78]);
    t.handler = *b"text";
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert_eq!(f.tracks[0].entry, SampleEntry::Unsupported(*b"vp09"));
    assert_eq!(f.tracks[0].kind, TrackKind::Other);
    assert_eq!(f.tracks[0].samples.len(), 10);
}

#[test]
fn stz2_field_sizes() {
    for (bits, data, expected) in [
        (4u8, vec![0x12, 0x30], vec![1u32, 2, 3]),
        (8, vec![7, 8, 9], vec![7, 8, 9]),
        (16, vec![1, 0, 0, 2, 0xff, 0xff], vec![256, 2, 65535]),
    ] {
        let mut t = audio_trak();
        t.stts = vec![[3, 1024]];
        t.stsc = vec![[1, 3, 1]];
        t.sizes = Sz::Compact(bits, 3, data.clone());
        let f = parse_moov(&moov(&[&t], &[])).unwrap();
        let sizes: Vec<u32> = f.tracks[0].samples.iter().map(|s| s.size).collect();
        assert_eq!(sizes, expected, "{bits} bits");
        // one byte short of the packed table
        t.sizes = Sz::Compact(bits, 3, data[..data.len() - 1].to_vec());
        assert_eq!(
            parse_moov(&moov(&[&t], &[])),
            Err(Mp4Error::Truncated("stz2 box"))
        );
    }
    let mut t = audio_trak();
    t.sizes = Sz::Compact(12, 5, vec![0; 10]);
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::Invalid(_))
    ));
}

// ---- errors -----------------------------------------------------------

#[test]
fn not_moov_and_missing_boxes() {
    assert_eq!(
        parse_moov(&bx(b"ftyp", &[0; 8])),
        Err(Mp4Error::NotMoov(*b"ftyp"))
    );
    assert_eq!(
        parse_moov(b"\0\0"),
        Err(Mp4Error::Truncated("moov box header"))
    );
    assert_eq!(
        parse_moov(&bx(b"moov", &[])),
        Err(Mp4Error::MissingBox("mvhd box"))
    );
    let empty = bx(b"moov", &time_box(b"mvhd", false, 1000, 0));
    assert_eq!(parse_moov(&empty).unwrap().tracks, vec![]);
    let zero_ts = bx(b"moov", &time_box(b"mvhd", false, 0, 0));
    assert!(matches!(parse_moov(&zero_ts), Err(Mp4Error::Invalid(_))));
    let v2 = bx(b"moov", &fbx(b"mvhd", 2, &[0; 100]));
    assert!(matches!(
        parse_moov(&v2),
        Err(Mp4Error::UnsupportedVersion { version: 2, .. })
    ));

    let mut t = audio_trak();
    t.entry = mp4a(2, 44100, &bx(b"free", &[]));
    assert_eq!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::MissingBox("esds box"))
    );
    t.entry = mp4a(2, 44100, &esds(0x40, 0, None, 1));
    assert_eq!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::MissingBox("DecSpecificInfo"))
    );
    let mut t = video_trak();
    t.entry = bx(b"avc1", &[0; 78]);
    assert_eq!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::MissingBox("avcC box"))
    );
}

#[test]
fn fragmented() {
    let mut t = video_trak();
    t.stts = vec![];
    t.stsc = vec![];
    t.sizes = Sz::Table(vec![]);
    t.chunks = vec![];
    t.ctts = None;
    t.stss = None;
    let mvex = bx(b"mvex", &fbx(b"trex", 0, &[0; 20]));
    assert_eq!(parse_moov(&moov(&[&t], &mvex)), Err(Mp4Error::Fragmented));
    // without mvex an empty track is fine
    assert!(parse_moov(&moov(&[&t], &[])).unwrap().tracks[0]
        .samples
        .is_empty());
    // mvex alongside real samples: parse what moov has
    assert_eq!(
        parse_moov(&moov(&[&video_trak()], &mvex)).unwrap().tracks[0]
            .samples
            .len(),
        10
    );
}

#[test]
fn inconsistent_tables() {
    let mut t = video_trak();
    t.stts = vec![[9, 512]];
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::Invalid(_))
    ));

    let mut t = video_trak();
    t.chunks.pop();
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::Invalid(_))
    ));

    let mut t = video_trak();
    t.stsc = vec![[2, 3, 1]];
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::Invalid(_))
    ));
    t.stsc = vec![[1, 3, 1], [1, 2, 1]];
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::Invalid(_))
    ));

    let mut t = video_trak();
    t.chunks = vec![u64::MAX - 150, 0, 0, 0];
    t.co64 = true;
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::Invalid(_))
    ));

    let mut t = audio_trak();
    t.stts = vec![[1, u32::MAX]; 5];
    t.sizes = Sz::Uniform(u32::MAX, 5);
    // large values are fine as long as u64 does not overflow
    assert!(parse_moov(&moov(&[&t], &[])).is_ok());
}

#[test]
fn limits_and_declared_counts() {
    // uniform stsz claiming more samples than the cap: rejected before allocating
    let mut t = audio_trak();
    t.sizes = Sz::Uniform(1, 20_000_000);
    t.stts = vec![[20_000_000, 1]];
    t.stsc = vec![[1, 20_000_000, 1]];
    assert_eq!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::LimitExceeded("samples"))
    );

    // the cap is across tracks
    let limits = Limits {
        max_samples: 12,
        ..Limits::default()
    };
    let m = sample_moov();
    assert_eq!(
        parse_moov_with_limits(&m, &limits),
        Err(Mp4Error::LimitExceeded("samples"))
    );
    let limits = Limits {
        max_samples: 15,
        ..Limits::default()
    };
    assert!(parse_moov_with_limits(&m, &limits).is_ok());
    let limits = Limits {
        max_tracks: 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_moov_with_limits(&m, &limits),
        Err(Mp4Error::LimitExceeded("tracks"))
    );
    let limits = Limits {
        max_boxes: 20,
        ..Limits::default()
    };
    assert_eq!(
        parse_moov_with_limits(&m, &limits),
        Err(Mp4Error::LimitExceeded("boxes"))
    );

    // declared table sizes beyond the box bytes
    let mut t = video_trak();
    t.sizes = Sz::Table((100..110).collect());
    let mut m = moov(&[&t], &[]);
    let stsz_count = cat(&[b"stsz", &[0; 8], &be32(&[10])]);
    let pos = m
        .windows(stsz_count.len())
        .position(|w| w == &stsz_count[..])
        .unwrap();
    m[pos + 12..pos + 16].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(parse_moov(&m), Err(Mp4Error::Truncated("stsz box")));
}

// ---- robustness -------------------------------------------------------

/// Every prefix, with the moov size left alone and with it patched to the
/// prefix length (so the truncation is inside nested boxes).
fn check_prefixes(m: &[u8]) {
    for n in 0..m.len() {
        assert!(parse_moov(&m[..n]).is_err(), "prefix {n}");
        let _ = read_box_header(&m[..n]);
        if n >= 8 {
            let mut p = m[..n].to_vec();
            p[..4].copy_from_slice(&(n as u32).to_be_bytes());
            let _ = parse_moov(&p);
        }
    }
}

/// Flip bits / overwrite every byte; must never panic.
fn check_mutations(m: &[u8]) {
    let mut buf = m.to_vec();
    for i in 0..buf.len() {
        let orig = buf[i];
        for v in [orig ^ 0x01, orig ^ 0x80, 0xff, 0x00, 0x7f] {
            buf[i] = v;
            let _ = parse_moov(&buf);
        }
        buf[i] = orig;
    }
}

#[test]
fn truncations_never_panic() {
    check_prefixes(&sample_moov());
    let mut t = audio_trak();
    t.entry = mp4a(1, 48000, &esds(0x40, 0xe0, Some(ASC), 4));
    check_prefixes(&moov(&[&t], &[]));
}

#[test]
fn mutations_never_panic() {
    check_mutations(&sample_moov());
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let kinds: [&[u8; 4]; 12] = [
        b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"stts", b"stsz", b"stsc", b"stco", b"mdhd",
        b"hdlr", b"tkhd",
    ];
    for _ in 0..5000 {
        let len = (rng.next() % 300) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // sprinkle plausible box headers so the walk goes deeper
        for _ in 0..(rng.next() % 6) {
            if body.len() >= 8 {
                let at = (rng.next() as usize) % (body.len() - 7);
                let size = (rng.next() % (body.len() - at) as u64) as u32;
                body[at..at + 4].copy_from_slice(&size.to_be_bytes());
                let k = kinds[(rng.next() % kinds.len() as u64) as usize];
                body[at + 4..at + 8].copy_from_slice(k);
            }
        }
        let _ = read_box_header(&body);
        let _ = parse_moov(&body);
        let _ = parse_moov(&bx(b"moov", &body));
        let mut with_mvhd = time_box(b"mvhd", false, 1000, 0);
        with_mvhd.extend(bx(b"trak", &body));
        let _ = parse_moov(&bx(b"moov", &with_mvhd));
    }
}

// ---- a real file (ffmpeg: 64x48 25 fps H.264 GOP 25 + 8 kHz mono AAC, 2 s, faststart) --

const REAL: &[u8] = include_bytes!("../../tests/data/h264_aac_64x48_2s.mp4");

/// Walk top-level boxes with read_box_header, the way the origin would.
fn top_level_box<'a>(file: &'a [u8], kind: &[u8; 4]) -> Option<(usize, &'a [u8])> {
    let mut pos = 0usize;
    while let Ok(Some(h)) = read_box_header(&file[pos..]) {
        let size = h.size.map_or(file.len() - pos, |s| s as usize);
        if &h.kind == kind {
            return Some((pos, &file[pos..pos + size]));
        }
        pos += size;
    }
    None
}

#[test]
fn real_ffmpeg_file() {
    let (_, moov) = top_level_box(REAL, b"moov").unwrap();
    let (mdat_pos, mdat) = top_level_box(REAL, b"mdat").unwrap();
    let mdat_range = mdat_pos as u64 + 8..(mdat_pos + mdat.len()) as u64;
    let f = parse_moov(moov).unwrap();
    assert_eq!(f.tracks.len(), 2);

    let v = &f.tracks[0];
    assert_eq!((v.kind, v.timescale), (TrackKind::Video, 12800));
    let SampleEntry::Avc {
        avcc,
        width,
        height,
    } = &v.entry
    else {
        panic!("{:?}", v.entry)
    };
    assert_eq!((*width, *height), (64, 48));
    assert_eq!(avcc[0], 1); // configurationVersion
    assert_eq!(v.samples.len(), 50); // ffprobe -count_packets
    let keys: Vec<usize> = (0..50).filter(|&i| v.samples[i].keyframe).collect();
    assert_eq!(keys, [0, 25]);
    assert_eq!(
        v.samples.iter().map(|s| u64::from(s.size)).sum::<u64>(),
        3138
    );
    assert_eq!((v.samples[0].offset, v.samples[0].size), (2635, 1213));
    assert!(v.samples.iter().all(|s| s.duration == 512));
    assert_eq!(v.samples[49].dts, 49 * 512);
    assert!(v.samples.iter().any(|s| s.cts_offset != 0)); // B-frames

    let a = &f.tracks[1];
    assert_eq!((a.kind, a.timescale), (TrackKind::Audio, 8000));
    let SampleEntry::Aac {
        asc,
        channels,
        sample_rate,
    } = &a.entry
    else {
        panic!("{:?}", a.entry)
    };
    assert_eq!((*channels, *sample_rate), (1, 8000));
    assert_eq!(asc_rate_channels(asc), (8000, 1));
    assert_eq!(a.samples.len(), 17);
    assert!(a.samples.iter().all(|s| s.keyframe));
    assert_eq!(
        a.samples.iter().map(|s| u64::from(s.size)).sum::<u64>(),
        4500
    );
    assert_eq!(a.samples[0].offset, 2278);

    for s in v.samples.iter().chain(&a.samples) {
        assert!(mdat_range.contains(&s.offset));
        assert!(mdat_range.contains(&(s.offset + u64::from(s.size) - 1)));
    }
    // first video sample is AVC length-prefixed NAL units filling the sample
    let s = v.samples[0];
    let mut nal = &REAL[s.offset as usize..(s.offset + u64::from(s.size)) as usize];
    while !nal.is_empty() {
        let n = u32::from_be_bytes(nal[..4].try_into().unwrap()) as usize;
        nal = &nal[4 + n..];
    }
}

#[test]
fn real_file_truncations_and_mutations() {
    let (_, moov) = top_level_box(REAL, b"moov").unwrap();
    check_prefixes(moov);
    check_mutations(moov);
}

/// A visual sample entry `kind` whose configuration box is `config`.
fn visual(kind: &[u8; 4], width: u16, height: u16, config: &[u8; 4], record: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 6];
    p.extend(1u16.to_be_bytes());
    p.extend([0u8; 16]);
    p.extend(width.to_be_bytes());
    p.extend(height.to_be_bytes());
    p.extend([0u8; 50]);
    p.extend(bx(b"colr", b"nclx\0\x01\0\x01\0\x01\0"));
    p.extend(bx(config, record));
    bx(kind, &p)
}

#[test]
fn hevc_and_av1_entries() {
    let hvcc = [1u8, 1, 0x60, 0, 0, 0];
    for kind in [b"hvc1", b"hev1"] {
        let mut t = video_trak();
        t.entry = visual(kind, 640, 360, b"hvcC", &hvcc);
        let f = parse_moov(&moov(&[&t], &[])).unwrap();
        assert_eq!(
            f.tracks[0].entry,
            SampleEntry::Hevc {
                hvcc: Bytes::copy_from_slice(&hvcc),
                width: 640,
                height: 360
            }
        );
        assert_eq!(f.tracks[0].samples.len(), 10);
    }
    let av1c = [0x81u8, 0x08, 0x0c, 0];
    let mut t = video_trak();
    t.entry = visual(b"av01", 1280, 720, b"av1C", &av1c);
    let f = parse_moov(&moov(&[&t], &[])).unwrap();
    assert_eq!(
        f.tracks[0].entry,
        SampleEntry::Av1 {
            av1c: Bytes::copy_from_slice(&av1c),
            width: 1280,
            height: 720
        }
    );
    // The configuration box is required.
    let mut t = video_trak();
    t.entry = visual(b"hvc1", 640, 360, b"avcC", &hvcc);
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::MissingBox("hvcC box"))
    ));
    let mut t = video_trak();
    t.entry = visual(b"av01", 640, 360, b"hvcC", &hvcc);
    assert!(matches!(
        parse_moov(&moov(&[&t], &[])),
        Err(Mp4Error::MissingBox("av1C box"))
    ));
}
