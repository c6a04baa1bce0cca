//! Tests of `fmp4`.

use super::*;
use crate::codec::AvcConfig;

// ---- a minimal box reader for structural checks ----

#[derive(Debug, Clone)]
struct Bx<'a> {
    kind: String,
    /// Absolute offset of the box header in the parsed buffer.
    start: usize,
    /// Absolute offset of the payload.
    payload_start: usize,
    payload: &'a [u8],
}

/// Parses consecutive boxes covering `data` exactly; `base` is the absolute
/// offset of `data[0]`.
fn read_boxes(data: &[u8], base: usize) -> Vec<Bx<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        assert!(
            data.len() - pos >= 8,
            "box header truncated at {}",
            base + pos
        );
        let size32 = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
        let (size, header) = if size32 == 1 {
            let s = u64::from_be_bytes(data[pos + 8..pos + 16].try_into().unwrap());
            (s as usize, 16)
        } else {
            (size32, 8)
        };
        assert!(size >= header, "{kind}: size {size} < header");
        assert!(pos + size <= data.len(), "{kind}: overruns its parent");
        out.push(Bx {
            kind,
            start: base + pos,
            payload_start: base + pos + header,
            payload: &data[pos + header..pos + size],
        });
        pos += size;
    }
    out
}

/// Children of a box, for the container types this writer produces.
fn children<'a>(b: &Bx<'a>) -> Vec<Bx<'a>> {
    let skip = match b.kind.as_str() {
        "moov" | "trak" | "mdia" | "minf" | "dinf" | "stbl" | "mvex" | "moof" | "traf" => 0,
        "stsd" | "dref" => 8,
        "avc1" | "hvc1" | "av01" => 78,
        "mp4a" | "Opus" => 28,
        _ => return Vec::new(),
    };
    read_boxes(&b.payload[skip..], b.payload_start + skip)
}

/// Depth-first list of box paths, e.g. "moov/trak/tkhd".
fn tree(data: &[u8]) -> Vec<String> {
    fn walk(b: &Bx<'_>, prefix: &str, out: &mut Vec<String>) {
        let path = if prefix.is_empty() {
            b.kind.clone()
        } else {
            format!("{prefix}/{}", b.kind)
        };
        out.push(path.clone());
        for c in children(b) {
            walk(&c, &path, out);
        }
    }
    let mut out = Vec::new();
    for b in read_boxes(data, 0) {
        walk(&b, "", &mut out);
    }
    out
}

/// Finds all boxes along a path like "moov/trak/mdia/mdhd".
fn find<'a>(data: &'a [u8], path: &str) -> Vec<Bx<'a>> {
    let mut level = read_boxes(data, 0);
    let parts: Vec<&str> = path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let matching: Vec<Bx<'a>> = level.into_iter().filter(|b| b.kind == *part).collect();
        if i + 1 == parts.len() {
            return matching;
        }
        level = matching.iter().flat_map(children).collect();
    }
    Vec::new()
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn hex(s: &str) -> Bytes {
    let v: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    Bytes::from(v)
}

const AVC_720P: &str = "0164001fffe1001a6764001facd9405005bb011000000300100000030320f183196001000668ebe3cb22c0fdf8f800";
const AVC_1080P: &str = "01640028ffe1001b67640028acd940780227e5c044000003000400000300c83c60c65801000668ebe3cb22c0fdf8f800";

fn video_track(id: u32, rec: &str) -> Track {
    Track {
        id,
        timescale: 90_000,
        codec: TrackCodec::Avc(AvcConfig::parse(hex(rec)).unwrap()),
    }
}

fn audio_track(id: u32) -> Track {
    Track {
        id,
        timescale: 44_100,
        codec: TrackCodec::Aac(AacConfig::parse(hex("121056e500")).unwrap()),
    }
}

#[test]
fn init_segment_structure() {
    let tracks = [video_track(1, AVC_720P), audio_track(2)];
    let init = init_segment(&tracks);
    let stbl = |p: &str| {
        vec![
            format!("{p}/stsd"),
            // sample entry pushed below
            String::new(),
            String::new(),
            format!("{p}/stts"),
            format!("{p}/stsc"),
            format!("{p}/stco"),
            format!("{p}/stsz"),
        ]
    };
    let mut want = vec![
        "ftyp",
        "moov",
        "moov/mvhd",
        "moov/trak",
        "moov/trak/tkhd",
        "moov/trak/mdia",
        "moov/trak/mdia/mdhd",
        "moov/trak/mdia/hdlr",
        "moov/trak/mdia/minf",
        "moov/trak/mdia/minf/vmhd",
        "moov/trak/mdia/minf/dinf",
        "moov/trak/mdia/minf/dinf/dref",
        "moov/trak/mdia/minf/dinf/dref/url ",
        "moov/trak/mdia/minf/stbl",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    let p = "moov/trak/mdia/minf/stbl";
    let mut v = stbl(p);
    v[1] = format!("{p}/stsd/avc1");
    v[2] = format!("{p}/stsd/avc1/avcC");
    want.extend(v);
    want.extend(
        [
            "moov/trak",
            "moov/trak/tkhd",
            "moov/trak/mdia",
            "moov/trak/mdia/mdhd",
            "moov/trak/mdia/hdlr",
            "moov/trak/mdia/minf",
            "moov/trak/mdia/minf/smhd",
            "moov/trak/mdia/minf/dinf",
            "moov/trak/mdia/minf/dinf/dref",
            "moov/trak/mdia/minf/dinf/dref/url ",
            "moov/trak/mdia/minf/stbl",
        ]
        .map(String::from),
    );
    let mut v = stbl(p);
    v[1] = format!("{p}/stsd/mp4a");
    v[2] = format!("{p}/stsd/mp4a/esds");
    want.extend(v);
    want.extend(["moov/mvex", "moov/mvex/trex", "moov/mvex/trex"].map(String::from));
    assert_eq!(tree(&init), want);

    // ftyp brands.
    let ftyp = &find(&init, "ftyp")[0];
    assert_eq!(&ftyp.payload[..4], b"iso6");
    assert!(ftyp.payload[8..].chunks(4).any(|b| b == b"cmfc"));

    // mvhd next_track_ID.
    let mvhd = &find(&init, "moov/mvhd")[0];
    assert_eq!(mvhd.payload.len(), 100);
    assert_eq!(be32(mvhd.payload, 96), 3);

    // tkhd: ids, volume, 16.16 width/height.
    let tkhd = find(&init, "moov/trak/tkhd");
    assert_eq!(tkhd.len(), 2);
    assert_eq!(tkhd[0].payload.len(), 84);
    assert_eq!(be32(tkhd[0].payload, 0), 3); // version 0, flags enabled|in_movie
    assert_eq!(be32(tkhd[0].payload, 12), 1);
    assert_eq!(be32(tkhd[1].payload, 12), 2);
    assert_eq!(be16(tkhd[0].payload, 36), 0);
    assert_eq!(be16(tkhd[1].payload, 36), 0x0100);
    assert_eq!(be32(tkhd[0].payload, 76), 1280 << 16);
    assert_eq!(be32(tkhd[0].payload, 80), 720 << 16);
    assert_eq!(be32(tkhd[1].payload, 76), 0);

    // mdhd timescales and hdlr types.
    let mdhd = find(&init, "moov/trak/mdia/mdhd");
    assert_eq!(be32(mdhd[0].payload, 12), 90_000);
    assert_eq!(be32(mdhd[1].payload, 12), 44_100);
    let hdlr = find(&init, "moov/trak/mdia/hdlr");
    assert_eq!(&hdlr[0].payload[8..12], b"vide");
    assert_eq!(&hdlr[1].payload[8..12], b"soun");

    // avc1: dimensions and verbatim avcC.
    let avc1 = &find(&init, "moov/trak/mdia/minf/stbl/stsd/avc1")[0];
    assert_eq!(be16(avc1.payload, 6), 1); // data_reference_index
    assert_eq!(be16(avc1.payload, 24), 1280);
    assert_eq!(be16(avc1.payload, 26), 720);
    let avcc = &find(&init, "moov/trak/mdia/minf/stbl/stsd/avc1/avcC")[0];
    assert_eq!(avcc.payload, &hex(AVC_720P)[..]);

    // mp4a: channel count, sample size, 16.16 rate.
    let mp4a = &find(&init, "moov/trak/mdia/minf/stbl/stsd/mp4a")[0];
    assert_eq!(be16(mp4a.payload, 16), 2);
    assert_eq!(be16(mp4a.payload, 18), 16);
    assert_eq!(be32(mp4a.payload, 24), 44_100 << 16);

    // trex per track.
    let trex = find(&init, "moov/mvex/trex");
    assert_eq!(be32(trex[0].payload, 4), 1);
    assert_eq!(be32(trex[1].payload, 4), 2);
    assert_eq!(be32(trex[0].payload, 8), 1);

    // Empty sample tables.
    for kind in ["stts", "stsc", "stco"] {
        for b in find(&init, &format!("moov/trak/mdia/minf/stbl/{kind}")) {
            assert_eq!(b.payload, &[0u8; 8][..], "{kind}");
        }
    }
}

/// Parses an expandable-size MPEG-4 descriptor: (tag, body, rest).
fn descriptor(b: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = b[0];
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let byte = b[i];
        len = (len << 7) | usize::from(byte & 0x7f);
        i += 1;
        if byte & 0x80 == 0 {
            break;
        }
    }
    (tag, &b[i..i + len], &b[i + len..])
}

#[test]
fn esds_descriptor_chain() {
    for asc in [
        hex("121056e500"),
        hex("1190"),
        Bytes::from(vec![0x12; 200]), // forces a 2-byte size field
    ] {
        let track = Track {
            id: 7,
            timescale: 48_000,
            codec: TrackCodec::Aac(AacConfig {
                object_type: 2,
                sample_rate: 96_000,
                channels: 2,
                raw: asc.clone(),
            }),
        };
        let init = init_segment(std::slice::from_ref(&track));
        let mp4a = &find(&init, "moov/trak/mdia/minf/stbl/stsd/mp4a")[0];
        assert_eq!(be32(mp4a.payload, 24), 0, "96 kHz does not fit 16.16");
        let esds = &find(&init, "moov/trak/mdia/minf/stbl/stsd/mp4a/esds")[0];
        assert_eq!(be32(esds.payload, 0), 0);
        let (tag, es, rest) = descriptor(&esds.payload[4..]);
        assert_eq!((tag, rest.len()), (3, 0));
        assert_eq!(&es[..3], &[0, 0, 0]);
        let (tag, dcd, rest) = descriptor(&es[3..]);
        assert_eq!(tag, 4);
        assert_eq!(dcd[0], 0x40);
        assert_eq!(dcd[1] >> 2, 5);
        let (tag, dsi, after_dsi) = descriptor(&dcd[13..]);
        assert_eq!(tag, 5);
        assert_eq!(dsi, &asc[..]);
        assert!(after_dsi.is_empty());
        let (tag, sl, rest) = descriptor(rest);
        assert_eq!((tag, sl, rest.len()), (6, &[2u8][..], 0));
    }
}

#[test]
fn init_segment_1080p_and_edge_cases() {
    let init = init_segment(&[video_track(3, AVC_1080P)]);
    let avc1 = &find(&init, "moov/trak/mdia/minf/stbl/stsd/avc1")[0];
    assert_eq!(
        (be16(avc1.payload, 24), be16(avc1.payload, 26)),
        (1920, 1080)
    );
    let mvhd = &find(&init, "moov/mvhd")[0];
    assert_eq!(be32(mvhd.payload, 96), 4);

    // No tracks: still a well-formed ftyp + moov.
    let init = init_segment(&[]);
    assert_eq!(tree(&init), ["ftyp", "moov", "moov/mvhd", "moov/mvex"]);

    // Oversized dimensions are clamped rather than wrapped.
    let mut t = video_track(u32::MAX, AVC_720P);
    if let TrackCodec::Avc(c) = &mut t.codec {
        c.width = 70_000;
    }
    let init = init_segment(&[t]);
    let avc1 = &find(&init, "moov/trak/mdia/minf/stbl/stsd/avc1")[0];
    assert_eq!(be16(avc1.payload, 24), u16::MAX);
    let mvhd = &find(&init, "moov/mvhd")[0];
    assert_eq!(be32(mvhd.payload, 96), u32::MAX);
}

fn samples(n: usize, seed: u8, with_key: bool) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            duration: 3000 + i as u32,
            cts_offset: if i % 3 == 1 { -1500 } else { 3000 * i as i32 },
            keyframe: with_key && i == 0,
            data: Bytes::from(vec![seed.wrapping_add(i as u8); 10 + i * 7]),
        })
        .collect()
}

/// Checks one fragment against its runs: box tree, tfhd/tfdt/trun fields,
/// data_offset pointing at each run's bytes, and sizes summing to the mdat.
fn check_fragment(frag: &[u8], seq: u32, runs: &[TrackRun]) {
    let top = read_boxes(frag, 0);
    assert_eq!(top.len(), 2);
    let (moof, mdat) = (&top[0], &top[1]);
    assert_eq!((moof.kind.as_str(), mdat.kind.as_str()), ("moof", "mdat"));
    assert_eq!(moof.start, 0);
    let mfhd = &find(frag, "moof/mfhd")[0];
    assert_eq!(be32(mfhd.payload, 4), seq);

    let nonempty: Vec<&TrackRun> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let trafs = find(frag, "moof/traf");
    assert_eq!(trafs.len(), nonempty.len());
    let mut expected_offset = mdat.payload_start;
    let mut expected_payload = Vec::new();
    for (traf, run) in trafs.iter().zip(&nonempty) {
        let kids = children(traf);
        let kinds: Vec<&str> = kids.iter().map(|b| b.kind.as_str()).collect();
        assert_eq!(kinds, ["tfhd", "tfdt", "trun"]);
        let (tfhd, tfdt, trun) = (&kids[0], &kids[1], &kids[2]);
        assert_eq!(
            be32(tfhd.payload, 0),
            crate::bmff::tfhd::DEFAULT_BASE_IS_MOOF
        );
        assert_eq!(be32(tfhd.payload, 4), run.track_id);
        assert_eq!(tfdt.payload[0], 1, "tfdt version 1");
        assert_eq!(be64(tfdt.payload, 4), run.base_decode_time);
        assert_eq!(trun.payload[0], 1, "trun version 1");
        assert_eq!(be32(trun.payload, 0) & 0xff_ffff, 0xf01);
        let count = be32(trun.payload, 4) as usize;
        assert_eq!(count, run.samples.len());
        assert_eq!(trun.payload.len(), 12 + 16 * count);
        let data_offset = be32(trun.payload, 8) as usize;
        assert_eq!(
            data_offset, expected_offset,
            "data_offset of track {}",
            run.track_id
        );
        let mut at = data_offset;
        for (i, s) in run.samples.iter().enumerate() {
            let e = 12 + 16 * i;
            assert_eq!(be32(trun.payload, e), s.duration);
            let size = be32(trun.payload, e + 4) as usize;
            assert_eq!(size, s.data.len());
            let flags = be32(trun.payload, e + 8);
            assert_eq!(flags, if s.keyframe { 0x0200_0000 } else { 0x0101_0000 });
            assert_eq!(be32(trun.payload, e + 12) as i32, s.cts_offset);
            // The bytes at the described position are the sample.
            assert_eq!(&frag[at..at + size], &s.data[..]);
            at += size;
            expected_payload.extend_from_slice(&s.data);
        }
        expected_offset = at;
    }
    assert_eq!(expected_offset, frag.len(), "sizes sum to the mdat end");
    assert_eq!(mdat.payload, &expected_payload[..]);
}

#[test]
fn fragment_two_tracks() {
    let v = samples(5, 0x10, true);
    let a = samples(8, 0x80, false)
        .into_iter()
        .map(|s| Sample {
            keyframe: true,
            cts_offset: 0,
            ..s
        })
        .collect::<Vec<_>>();
    let runs = [
        TrackRun {
            track_id: 1,
            base_decode_time: 9_000_000_000,
            samples: &v,
        },
        TrackRun {
            track_id: 2,
            base_decode_time: 441_000,
            samples: &a,
        },
    ];
    let frag = fragment(42, &runs);
    check_fragment(&frag, 42, &runs);
    assert_eq!(
        tree(&frag),
        [
            "moof",
            "moof/mfhd",
            "moof/traf",
            "moof/traf/tfhd",
            "moof/traf/tfdt",
            "moof/traf/trun",
            "moof/traf",
            "moof/traf/tfhd",
            "moof/traf/tfdt",
            "moof/traf/trun",
            "mdat"
        ]
    );
}

#[test]
fn fragment_skips_empty_runs() {
    let v = samples(3, 1, true);
    let runs = [
        TrackRun {
            track_id: 1,
            base_decode_time: 0,
            samples: &[],
        },
        TrackRun {
            track_id: 2,
            base_decode_time: 5,
            samples: &v,
        },
        TrackRun {
            track_id: 3,
            base_decode_time: 0,
            samples: &[],
        },
    ];
    let frag = fragment(1, &runs);
    check_fragment(&frag, 1, &runs);
    assert_eq!(find(&frag, "moof/traf").len(), 1);

    let frag = fragment(2, &runs[..1]);
    check_fragment(&frag, 2, &runs[..1]);
    assert_eq!(tree(&frag), ["moof", "moof/mfhd", "mdat"]);
    assert_eq!(find(&frag, "mdat")[0].payload.len(), 0);
    let frag = fragment(3, &[]);
    assert_eq!(tree(&frag), ["moof", "moof/mfhd", "mdat"]);
}

#[test]
fn fragment_many_shapes() {
    // Interleavings of runs of different sizes, including zero-length samples.
    let pool: Vec<Vec<Sample>> = (0..6)
        .map(|n| samples(n, n as u8 * 31, n % 2 == 0))
        .collect();
    let mut zero = samples(2, 0, false);
    zero[1].data = Bytes::new();
    for a in 0..pool.len() {
        for b in 0..pool.len() {
            let runs = [
                TrackRun {
                    track_id: 1,
                    base_decode_time: a as u64 * 1000,
                    samples: &pool[a],
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: u64::MAX - b as u64,
                    samples: &pool[b],
                },
                TrackRun {
                    track_id: 3,
                    base_decode_time: 7,
                    samples: &zero,
                },
            ];
            let seq = (a * 10 + b) as u32;
            check_fragment(&fragment(seq, &runs), seq, &runs);
        }
    }
}

#[test]
fn init_then_fragment_from_flv_packets() {
    use crate::flv::{parse_audio, parse_video, AudioPacket, VideoPacket};
    let seq = parse_video(hex(&format!("1700000000{AVC_720P}"))).unwrap();
    let VideoPacket::SequenceHeader { record: rec, .. } = seq else {
        panic!("not a sequence header")
    };
    let AudioPacket::SequenceHeader(asc) = parse_audio(hex("af00121056e500")).unwrap() else {
        panic!("not a sequence header")
    };
    let tracks = [
        Track {
            id: 1,
            timescale: 1000,
            codec: TrackCodec::Avc(AvcConfig::parse(rec).unwrap()),
        },
        Track {
            id: 2,
            timescale: 44_100,
            codec: TrackCodec::Aac(AacConfig::parse(asc).unwrap()),
        },
    ];
    let init = init_segment(&tracks);
    assert_eq!(read_boxes(&init, 0).len(), 2);
    let VideoPacket::Frame {
        keyframe,
        composition_time_ms,
        data,
        ..
    } = parse_video(Bytes::from_static(&[
        0x17, 1, 0, 0, 40, 0, 0, 0, 2, 0x65, 0x88,
    ]))
    .unwrap()
    else {
        panic!("not NALUs")
    };
    let v = [Sample {
        duration: 40,
        cts_offset: composition_time_ms,
        keyframe,
        data,
    }];
    let runs = [TrackRun {
        track_id: 1,
        base_decode_time: 0,
        samples: &v,
    }];
    let frag = fragment(1, &runs);
    check_fragment(&frag, 1, &runs);
}

#[test]
fn an_opus_track_gets_an_opus_sample_entry_with_dops() {
    let head = crate::codec::OpusConfig::head(2);
    let opus = crate::codec::OpusConfig::parse(head).expect("head");
    let init = init_segment(&[Track {
        id: 2,
        timescale: 48_000,
        codec: TrackCodec::Opus(opus),
    }]);
    let entry = &find(&init, "moov/trak/mdia/minf/stbl/stsd/Opus")[0];
    // channelcount 2, samplesize 16, samplerate 48000 << 16.
    assert_eq!(be16(entry.payload, 16), 2);
    assert_eq!(be16(entry.payload, 18), 16);
    assert_eq!(be32(entry.payload, 24), 48_000 << 16);
    let dops = &find(&init, "moov/trak/mdia/minf/stbl/stsd/Opus/dOps")[0];
    // Version 0, 2 channels, pre-skip 312 and 48 kHz big-endian, gain 0, family 0.
    assert_eq!(dops.payload, &[0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]);
    let hdlr = &find(&init, "moov/trak/mdia/hdlr")[0];
    assert_eq!(&hdlr.payload[8..12], b"soun");
}

#[test]
fn hevc_and_av1_sample_entries() {
    use crate::codec::tests::{AV1C_320X240, HVCC_320X240_MAIN};
    use crate::codec::{Av1Config, HevcConfig};
    for (codec, entry, config, record) in [
        (
            TrackCodec::Hevc(HevcConfig::parse(hex(HVCC_320X240_MAIN)).unwrap()),
            "hvc1",
            "hvcC",
            HVCC_320X240_MAIN,
        ),
        (
            TrackCodec::Av1(Av1Config::parse(hex(AV1C_320X240)).unwrap()),
            "av01",
            "av1C",
            AV1C_320X240,
        ),
    ] {
        let init = init_segment(&[
            Track {
                id: 1,
                timescale: 90_000,
                codec,
            },
            audio_track(2),
        ]);
        let stsd = "moov/trak/mdia/minf/stbl/stsd";
        let e = &find(&init, &format!("{stsd}/{entry}"))[0];
        assert_eq!(be16(e.payload, 24), 320);
        assert_eq!(be16(e.payload, 26), 240);
        let c = &find(&init, &format!("{stsd}/{entry}/{config}"))[0];
        assert_eq!(c.payload, &hex(record)[..]);
        let tkhd = &find(&init, "moov/trak/tkhd")[0];
        assert_eq!(be32(tkhd.payload, 76), 320 << 16);
        // What the MP4 reader reads back.
        let moov = &find(&init, "moov")[0];
        let f = crate::mp4::parse_moov_with_limits(
            &init[moov.start..moov.payload_start + moov.payload.len()],
            &crate::mp4::Limits::default(),
        );
        assert!(matches!(f, Err(crate::mp4::Mp4Error::Fragmented)), "{f:?}");
    }
}
