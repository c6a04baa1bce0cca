use super::*;
use crate::codec::{AacConfig, AvcConfig, HevcConfig};

const PMT_PID: u16 = 0x1000;
const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;

/// A tiny TS writer for the tests: sections and PES split into packets.
#[derive(Default)]
struct Mux {
    cc: HashMap<u16, u8>,
    out: Vec<u8>,
    /// version_number of the next PMT.
    pmt_version: u8,
}

impl Mux {
    fn packets(&mut self, pid: u16, payload: &[u8], unit_start: bool) {
        let mut first = true;
        let mut rest = payload;
        while !rest.is_empty() {
            let cc = self.cc.entry(pid).or_insert(15);
            *cc = (*cc + 1) & 0x0f;
            let mut p = vec![SYNC, (pid >> 8) as u8 & 0x1f, pid as u8, 0x10 | *cc];
            if first && unit_start {
                p[1] |= 0x40;
            }
            first = false;
            let room = PACKET_SIZE - 4;
            if rest.len() >= room {
                p.extend_from_slice(&rest[..room]);
                rest = &rest[room..];
            } else {
                // Stuff with an adaptation field.
                let stuff = room - rest.len();
                p[3] |= 0x20;
                p.push((stuff - 1) as u8);
                if stuff > 1 {
                    p.push(0);
                    p.extend(std::iter::repeat_n(0xff, stuff - 2));
                }
                p.extend_from_slice(rest);
                rest = &[];
            }
            assert_eq!(p.len(), PACKET_SIZE);
            self.out.extend_from_slice(&p);
        }
    }

    fn section(&mut self, pid: u16, table_id: u8, body: &[u8]) {
        self.section_version(pid, table_id, 0, body);
    }

    fn section_version(&mut self, pid: u16, table_id: u8, version: u8, body: &[u8]) {
        let mut s = vec![table_id, 0, 0, 0, 1, 0xc1 | ((version & 0x1f) << 1), 0, 0];
        s.extend_from_slice(body);
        let len = s.len() - 3 + 4;
        s[1] = 0xb0 | ((len >> 8) as u8 & 0x0f);
        s[2] = len as u8;
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        let mut payload = vec![0u8]; // pointer_field
        payload.extend_from_slice(&s);
        self.packets(pid, &payload, true);
    }

    fn pat(&mut self) {
        let body = [0, 1, 0xe0 | (PMT_PID >> 8) as u8, PMT_PID as u8];
        self.section(PID_PAT, 0, &body);
    }

    fn pmt(&mut self, streams: &[(u8, u16)]) {
        let mut body = vec![0xe0 | (VIDEO_PID >> 8) as u8, VIDEO_PID as u8, 0xf0, 0];
        for &(t, pid) in streams {
            body.extend_from_slice(&[t, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
        }
        self.section_version(PMT_PID, 2, self.pmt_version, &body);
    }

    fn pes(&mut self, pid: u16, stream_id: u8, pts: u64, dts: Option<u64>, es: &[u8]) {
        let mut h = vec![0, 0, 1, stream_id, 0, 0, 0x80];
        match dts {
            Some(d) => {
                h.extend_from_slice(&[0xc0, 10]);
                h.extend_from_slice(&ts_bytes(3, pts));
                h.extend_from_slice(&ts_bytes(1, d));
            }
            None => {
                h.extend_from_slice(&[0x80, 5]);
                h.extend_from_slice(&ts_bytes(2, pts));
            }
        }
        let len = h.len() - 6 + es.len();
        if stream_id != 0xe0 && len <= 0xffff {
            h[4] = (len >> 8) as u8;
            h[5] = len as u8;
        }
        h.extend_from_slice(es);
        self.packets(pid, &h, true);
    }
}

fn ts_bytes(prefix: u8, t: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1,
        (t >> 22) as u8,
        (((t >> 15) as u8) << 1) | 1,
        (t >> 7) as u8,
        ((t as u8) << 1) | 1,
    ]
}

/// SPS of a 320x240 Constrained Baseline stream (from x264), PPS, and slices.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00,
    0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0xa4, 0x80,
];
const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

fn access_unit(keyframe: bool) -> Vec<u8> {
    let mut es = vec![0, 0, 0, 1, 0x09, 0xf0];
    if keyframe {
        es.extend_from_slice(&[0, 0, 0, 1]);
        es.extend_from_slice(SPS);
        es.extend_from_slice(&[0, 0, 0, 1]);
        es.extend_from_slice(PPS);
        es.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33]);
    } else {
        es.extend_from_slice(&[0, 0, 1, 0x41, 0x9a, 0x02, 0x03]);
    }
    es
}

fn adts(payload: &[u8]) -> Vec<u8> {
    // AAC-LC (profile 1), 48 kHz (index 3), stereo, no CRC.
    let len = 7 + payload.len();
    let mut h = vec![
        0xff,
        0xf1,
        (1 << 6) | (3 << 2),
        (2 << 6) | ((len >> 11) as u8 & 0x03),
        (len >> 3) as u8,
        ((len as u8 & 0x07) << 5) | 0x1f,
        0xfc,
    ];
    h.extend_from_slice(payload);
    h
}

fn stream() -> Mux {
    let mut m = Mux::default();
    m.pat();
    m.pmt(&[
        (STREAM_TYPE_H264, VIDEO_PID),
        (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
    ]);
    m
}

fn drain(d: &mut Demuxer) -> (Vec<Frame>, Vec<TsError>) {
    let (mut frames, mut errors) = (Vec::new(), Vec::new());
    while let Some(f) = d.poll() {
        match f {
            Frame::Error(e) => errors.push(e),
            f => frames.push(f),
        }
    }
    (frames, errors)
}

fn demux(bytes: &[u8], limits: Limits) -> (Vec<Frame>, Vec<TsError>) {
    let mut d = Demuxer::new(limits);
    d.push(bytes);
    d.finish();
    drain(&mut d)
}

#[test]
fn h264_and_aac_come_out_as_avcc_samples_and_raw_frames_with_configs() {
    let mut m = stream();
    m.pes(VIDEO_PID, 0xe0, 129_600, Some(126_000), &access_unit(true));
    let mut two = adts(&[1, 2, 3]);
    two.extend_from_slice(&adts(&[4, 5]));
    m.pes(AUDIO_PID, 0xc0, 126_000, None, &two);
    m.pes(VIDEO_PID, 0xe0, 132_600, Some(129_000), &access_unit(false));
    let (frames, errors) = demux(&m.out, Limits::default());
    assert!(errors.is_empty(), "{errors:?}");
    // Video PES have no length (as ffmpeg writes them): each is complete when the
    // next one starts, so the audio of the same time is demuxed first; media waits
    // for both configurations, which come out first.
    let Frame::AudioConfig(asc) = &frames[0] else {
        panic!("{frames:?}");
    };
    let aac = AacConfig::parse(asc.clone()).expect("asc parses");
    assert_eq!(
        (aac.object_type, aac.sample_rate, aac.channels),
        (2, 48_000, 2)
    );
    let Frame::VideoConfig {
        codec: VideoCodec::Avc,
        record,
    } = &frames[1]
    else {
        panic!("{frames:?}");
    };
    let avc = AvcConfig::parse(record.clone()).expect("record parses");
    assert_eq!((avc.width, avc.height), (320, 240));
    assert_eq!(avc.nal_length_size, 4);
    assert_eq!(
        frames[2],
        Frame::Audio {
            pts: 126_000,
            data: Bytes::from_static(&[1, 2, 3])
        }
    );
    assert_eq!(
        frames[3],
        Frame::Audio {
            pts: 126_000 + 1920,
            data: Bytes::from_static(&[4, 5])
        }
    );
    assert_eq!(
        frames[4],
        Frame::Video {
            codec: VideoCodec::Avc,
            pts: 129_600,
            dts: 126_000,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 5, 0x65, 0x88, 0x84, 0x00, 0x33]),
        }
    );
    assert!(matches!(
        frames[5],
        Frame::Video {
            keyframe: false,
            dts: 129_000,
            ..
        }
    ));
    assert_eq!(frames.len(), 6);
}

#[test]
fn any_chunking_gives_the_same_output() {
    let mut m = stream();
    for i in 0..5u64 {
        m.pes(VIDEO_PID, 0xe0, 3000 * i, None, &access_unit(i == 0));
        m.pes(AUDIO_PID, 0xc0, 3000 * i, None, &adts(&[i as u8; 300]));
    }
    let whole = demux(&m.out, Limits::default());
    for chunk in [1, 7, 187, 189, 1316] {
        let mut d = Demuxer::new(Limits::default());
        for c in m.out.chunks(chunk) {
            d.push(c);
        }
        d.finish();
        assert_eq!(drain(&mut d), whole, "chunks of {chunk}");
    }
    assert_eq!(whole.0.len(), 2 + 10);
}

#[test]
fn garbage_between_packets_is_skipped_to_the_next_sync_byte() {
    let mut m = stream();
    m.pes(VIDEO_PID, 0xe0, 0, None, &access_unit(true));
    let mut bytes = vec![1, 2, 3];
    bytes.extend_from_slice(&m.out);
    let (frames, errors) = demux(&bytes, Limits::default());
    assert_eq!(errors, vec![TsError::LostSync(3)]);
    assert_eq!(frames.len(), 2);
}

#[test]
fn a_continuity_gap_drops_only_the_access_unit_it_hit() {
    let mut m = stream();
    m.pes(VIDEO_PID, 0xe0, 0, None, &access_unit(true));
    let big = [vec![0, 0, 1, 0x41], vec![7u8; 1000]].concat();
    let before = m.out.len();
    m.pes(VIDEO_PID, 0xe0, 3000, None, &big);
    // Lose the second packet of the big unit.
    m.out.drain(before + PACKET_SIZE..before + 2 * PACKET_SIZE);
    m.pes(VIDEO_PID, 0xe0, 6000, None, &access_unit(false));
    let (frames, errors) = demux(&m.out, Limits::default());
    assert!(
        matches!(errors[..], [TsError::Continuity { pid: VIDEO_PID, .. }]),
        "{errors:?}"
    );
    let times: Vec<u64> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Video { pts, .. } => Some(*pts),
            _ => None,
        })
        .collect();
    assert_eq!(times, vec![0, 6000]);
}

#[test]
fn duplicate_packets_are_dropped() {
    let mut m = stream();
    m.pes(VIDEO_PID, 0xe0, 0, None, &access_unit(true));
    let last = m.out[m.out.len() - PACKET_SIZE..].to_vec();
    m.out.extend_from_slice(&last);
    m.pes(VIDEO_PID, 0xe0, 3000, None, &access_unit(false));
    let (frames, errors) = demux(&m.out, Limits::default());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(frames.len(), 3);
}

#[test]
fn a_pes_over_the_limit_is_dropped_and_the_next_one_plays() {
    let limits = Limits {
        max_pes_bytes: 4096,
        ..Limits::default()
    };
    let mut m = stream();
    m.pes(VIDEO_PID, 0xe0, 0, None, &access_unit(true));
    m.pes(
        VIDEO_PID,
        0xe0,
        3000,
        None,
        &[vec![0, 0, 1, 0x41], vec![9u8; 100_000]].concat(),
    );
    m.pes(VIDEO_PID, 0xe0, 6000, None, &access_unit(false));
    let (frames, errors) = demux(&m.out, limits);
    assert_eq!(
        errors,
        vec![TsError::PesTooLarge {
            pid: VIDEO_PID,
            limit: 4096
        }]
    );
    assert_eq!(frames.len(), 3);
}

#[test]
fn pes_lengths_that_lie_are_refused() {
    let mut m = stream();
    // PES_packet_length says 0x7fff but the unit ends at the next unit start.
    let mut h = vec![0, 0, 1, 0xc0, 0x7f, 0xff, 0x80, 0x80, 5];
    h.extend_from_slice(&ts_bytes(2, 0));
    h.extend_from_slice(&adts(&[1]));
    m.packets(AUDIO_PID, &h, true);
    // Header length past the packet.
    m.packets(
        AUDIO_PID,
        &[0, 0, 1, 0xc0, 0, 5, 0x80, 0x80, 200, 0, 0],
        true,
    );
    // An ADTS frame_length past the PES.
    let mut bad = adts(&[1, 2, 3]);
    bad[4] = 0xff;
    m.pes(AUDIO_PID, 0xc0, 0, None, &bad);
    // No start code.
    m.packets(AUDIO_PID, &[9; 20], true);
    let (frames, errors) = demux(&m.out, Limits::default());
    assert!(frames.is_empty(), "{frames:?}");
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors
        .iter()
        .all(|e| matches!(e, TsError::BadPes { .. } | TsError::BadAdts(_))));
}

#[test]
fn bad_adaptation_field_lengths_are_refused() {
    let mut p = vec![SYNC, 0x41, 0x00, 0x30, 184];
    p.resize(PACKET_SIZE, 0xff);
    let (frames, errors) = demux(&p, Limits::default());
    assert!(frames.is_empty());
    assert_eq!(errors, vec![TsError::BadAdaptationField(184)]);
}

#[test]
fn a_huge_pmt_is_refused_and_a_long_one_is_cut_at_the_stream_limit() {
    // section_length beyond 1021.
    let mut m = Mux::default();
    m.pat();
    let mut payload = vec![0u8, 2, 0xbf, 0xff];
    payload.resize(PACKET_SIZE * 30, 0xaa);
    m.packets(PMT_PID, &payload, true);
    let (_, errors) = demux(&m.out, Limits::default());
    assert_eq!(errors, vec![TsError::SectionTooLong(0xfff)]);

    // 150 streams (a 770-byte section spread over packets): only the limit is read,
    // and the H.264 stream listed first still plays.
    let mut m = Mux::default();
    m.pat();
    let mut streams = vec![(STREAM_TYPE_H264, VIDEO_PID)];
    streams.extend((0..149).map(|i| (0x06, 0x200 + i)));
    m.pmt(&streams);
    m.pes(VIDEO_PID, 0xe0, 0, None, &access_unit(true));
    let (frames, errors) = demux(&m.out, Limits::default());
    assert!(errors.contains(&TsError::TooMany {
        kind: "PMT",
        limit: 16
    }));
    assert!(errors.contains(&TsError::UnsupportedStream(0x06)));
    assert_eq!(frames.len(), 2);
}

#[test]
fn a_section_with_a_bad_crc_is_ignored() {
    let mut m2 = Mux::default();
    m2.pat();
    // The section ends the packet (stuffing comes first): flip its last CRC bit.
    let pat = &mut m2.out[..PACKET_SIZE];
    pat[PACKET_SIZE - 1] ^= 0x01;
    let (_, errors) = demux(&m2.out, Limits::default());
    assert_eq!(
        errors,
        vec![TsError::BadSection {
            pid: 0,
            reason: "CRC mismatch"
        }]
    );
}

/// 1 s of 64x48 H.265 (x265 Main, a keyframe every 5 frames, 10 fps) + AAC in
/// MPEG-TS, 18 KB, made with ffmpeg 5.1:
/// `ffmpeg -f lavfi -i testsrc2=size=64x48:rate=10 -f lavfi -i sine=frequency=440:sample_rate=48000
///  -t 1 -c:v libx265 -preset ultrafast -x265-params keyint=5:min-keyint=5 -pix_fmt yuv420p
///  -c:a aac -b:a 32k -f mpegts h265_aac_64x48_1s.ts`
const H265_TS: &[u8] = include_bytes!("../../tests/data/h265_aac_64x48_1s.ts");

/// The `hvcC` ffmpeg 5.1 writes for the same stream (`ffmpeg -i h265_aac_64x48_1s.ts
/// -c copy -tag:v hvc1 out.mp4`): the record the demuxer builds must be the same.
const FFMPEG_HVCC: &str = "0101600000009000000000001ef000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003001e959409a10001002942010101600000030090000003000003001ea0208316595952930bc05a020000030002000003001410a2000100064401c073c089";

/// The fixture's parameter sets (with emulation prevention bytes, as in the stream).
const H265_VPS: &str = "40010c01ffff01600000030090000003000003001e959409";
const H265_SPS: &str =
    "42010101600000030090000003000003001ea0208316595952930bc05a020000030002000003001410";
const H265_PPS: &str = "4401c073c089";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// NAL unit types of a sample with 4-byte lengths that must cover it exactly.
fn sample_nal_types(data: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        assert!(rest.len() >= 6, "a length and a NAL header: {rest:?}");
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(
            len >= 2 && len <= rest.len() - 4,
            "length {len} past the sample"
        );
        types.push((rest[4] >> 1) & 0x3f);
        rest = &rest[4 + len..];
    }
    types
}

#[test]
fn h265_from_x265_yields_the_hvcc_ffmpeg_writes_keyframes_and_length_prefixed_samples() {
    let (frames, errors) = demux(H265_TS, Limits::default());
    assert_eq!(errors, vec![]);
    // Configurations first (audio's first in the stream: it is complete first).
    let record = frames
        .iter()
        .find_map(|f| match f {
            Frame::VideoConfig {
                codec: VideoCodec::Hevc,
                record,
            } => Some(record.clone()),
            _ => None,
        })
        .expect("an HEVC configuration");
    assert!(matches!(
        frames[0],
        Frame::AudioConfig(_) | Frame::VideoConfig { .. }
    ));
    assert!(matches!(
        frames[1],
        Frame::AudioConfig(_) | Frame::VideoConfig { .. }
    ));
    assert_eq!(record.to_vec(), unhex(FFMPEG_HVCC));
    let hevc = HevcConfig::parse(record).expect("the packager's parser takes it");
    assert_eq!(hevc.codec_string(), "hvc1.1.6.L30.90");
    assert_eq!((hevc.width, hevc.height), (64, 48));
    assert_eq!(hevc.nal_length_size, 4);
    assert_eq!((hevc.chroma_format, hevc.bit_depth_luma), (1, 8));
    let configs = frames
        .iter()
        .filter(|f| matches!(f, Frame::VideoConfig { .. }))
        .count();
    assert_eq!(configs, 1, "the repeated parameter sets are the same");

    let video: Vec<(bool, Vec<u8>)> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Video {
                codec,
                keyframe,
                data,
                ..
            } => {
                assert_eq!(*codec, VideoCodec::Hevc);
                Some((*keyframe, sample_nal_types(data)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(video.len(), 10, "1 s at 10 fps");
    for (i, (keyframe, types)) in video.iter().enumerate() {
        assert!(
            types.iter().all(|t| !(32..=35).contains(t)),
            "frame {i}: parameter sets or delimiters left in {types:?}"
        );
        let irap = types.iter().any(|t| (16..=23).contains(t));
        assert_eq!(*keyframe, irap, "frame {i}: {types:?}");
    }
    assert!(video[0].0, "the stream starts on a keyframe");
    assert!(
        video.iter().filter(|(k, _)| *k).count() >= 2,
        "keyint 5: a second keyframe"
    );
    assert!(frames.iter().any(|f| matches!(f, Frame::Audio { .. })));
}

fn h265_stream() -> Mux {
    let mut m = Mux::default();
    m.pat();
    m.pmt(&[(STREAM_TYPE_H265, VIDEO_PID)]);
    m
}

/// An H.265 access unit: delimiter, the given parameter sets, then an IDR_W_RADL
/// slice or a TRAIL_R one.
fn h265_au(sets: &[Vec<u8>], keyframe: bool) -> Vec<u8> {
    let mut es = vec![0, 0, 0, 1, 0x46, 0x01, 0x50];
    for set in sets {
        es.extend_from_slice(&[0, 0, 0, 1]);
        es.extend_from_slice(set);
    }
    if keyframe {
        es.extend_from_slice(&[0, 0, 1, 0x26, 0x01, 0xaf, 0x1e, 0x80]);
    } else {
        es.extend_from_slice(&[0, 0, 1, 0x02, 0x01, 0xd0, 0x2f, 0x40]);
    }
    es
}

fn good_sets() -> Vec<Vec<u8>> {
    vec![unhex(H265_VPS), unhex(H265_SPS), unhex(H265_PPS)]
}

fn hevc_configs(frames: &[Frame]) -> Vec<HevcConfig> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::VideoConfig {
                codec: VideoCodec::Hevc,
                record,
            } => Some(HevcConfig::parse(record.clone()).expect("emitted records parse")),
            _ => None,
        })
        .collect()
}

fn video_frames(frames: &[Frame]) -> usize {
    frames
        .iter()
        .filter(|f| matches!(f, Frame::Video { .. }))
        .count()
}

#[test]
fn h265_samples_drop_parameter_sets_and_delimiters() {
    let mut m = h265_stream();
    m.pes(VIDEO_PID, 0xe0, 3000, Some(0), &h265_au(&good_sets(), true));
    m.pes(VIDEO_PID, 0xe0, 6000, Some(3000), &h265_au(&[], false));
    let (frames, errors) = demux(&m.out, Limits::default());
    assert_eq!(errors, vec![]);
    assert_eq!(hevc_configs(&frames).len(), 1);
    assert_eq!(
        frames[1],
        Frame::Video {
            codec: VideoCodec::Hevc,
            pts: 3000,
            dts: 0,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 5, 0x26, 0x01, 0xaf, 0x1e, 0x80]),
        }
    );
    assert!(matches!(
        frames[2],
        Frame::Video {
            keyframe: false,
            ..
        }
    ));
}

#[test]
fn truncated_oversized_and_garbage_h265_sps_are_reported_and_dropped() {
    let sps = unhex(H265_SPS);
    let truncated = sps[..12].to_vec();
    let mut oversized = sps.clone();
    oversized.resize(70_000, 0x5a);
    // sps_max_sub_layers_minus1 = 7.
    let garbage = vec![0x42, 0x01, 0xff, 0xff, 0x00, 0x13, 0x37];
    for bad in [truncated, oversized, garbage] {
        let mut m = h265_stream();
        let sets = vec![unhex(H265_VPS), bad, unhex(H265_PPS)];
        m.pes(VIDEO_PID, 0xe0, 0, None, &h265_au(&sets, true));
        m.pes(VIDEO_PID, 0xe0, 3000, None, &h265_au(&[], false));
        // Then a good set: the stream recovers.
        m.pes(VIDEO_PID, 0xe0, 6000, None, &h265_au(&good_sets(), true));
        m.pes(VIDEO_PID, 0xe0, 9000, None, &h265_au(&[], false));
        let (frames, errors) = demux(&m.out, Limits::default());
        assert!(
            matches!(errors[0], TsError::BadHevcParameterSets(_)),
            "{errors:?}"
        );
        assert_eq!(
            errors[1..],
            [TsError::NoVideoConfig, TsError::NoVideoConfig],
            "the pictures under the bad SPS are dropped"
        );
        assert_eq!(hevc_configs(&frames).len(), 1);
        assert_eq!(video_frames(&frames), 2);
    }
}

#[test]
fn too_many_h265_parameter_sets_are_cut_at_the_limit_and_reported() {
    let limits = Limits {
        max_parameter_sets: 2,
        ..Limits::default()
    };
    let mut sets = good_sets();
    for _ in 0..3 {
        sets.push(unhex(H265_PPS));
    }
    let mut m = h265_stream();
    m.pes(VIDEO_PID, 0xe0, 0, None, &h265_au(&sets, true));
    let (frames, errors) = demux(&m.out, limits);
    assert_eq!(
        errors,
        vec![TsError::TooMany {
            kind: "H.265 parameter sets of one kind in an access unit",
            limit: 2
        }]
    );
    let configs = hevc_configs(&frames);
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].pps.len(), 2);
    assert_eq!(video_frames(&frames), 1);
}

#[test]
fn h265_pictures_without_an_sps_are_dropped_and_reported() {
    let mut m = h265_stream();
    let no_sps = vec![unhex(H265_VPS), unhex(H265_PPS)];
    m.pes(VIDEO_PID, 0xe0, 0, None, &h265_au(&no_sps, true));
    m.pes(VIDEO_PID, 0xe0, 3000, None, &h265_au(&[], false));
    let (frames, errors) = demux(&m.out, Limits::default());
    assert_eq!(errors, vec![TsError::NoVideoConfig, TsError::NoVideoConfig]);
    assert_eq!(frames, vec![]);
}

#[test]
fn a_concatenated_h265_stream_with_the_same_pmt_version_is_taken_too() {
    let mut m = stream();
    m.pes(VIDEO_PID, 0xe0, 0, None, &access_unit(true));
    m.pes(AUDIO_PID, 0xc0, 0, None, &adts(&[1]));
    // A second file muxed separately: PMT version 0 again, counters jump (a
    // continuity error, not a duplicate).
    let mut second = Mux::default();
    for pid in [PID_PAT, PMT_PID, VIDEO_PID, AUDIO_PID] {
        second.cc.insert(pid, 7);
    }
    second.pat();
    second.pmt(&[
        (STREAM_TYPE_H265, VIDEO_PID),
        (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
    ]);
    second.pes(VIDEO_PID, 0xe0, 3000, None, &h265_au(&good_sets(), true));
    second.pes(VIDEO_PID, 0xe0, 6000, None, &h265_au(&[], false));
    m.out.extend_from_slice(&second.out);
    let (frames, _errors) = demux(&m.out, Limits::default());
    let codecs: Vec<VideoCodec> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Video { codec, .. } => Some(*codec),
            _ => None,
        })
        .collect();
    assert_eq!(
        codecs,
        vec![VideoCodec::Avc, VideoCodec::Hevc, VideoCodec::Hevc]
    );
    assert_eq!(hevc_configs(&frames).len(), 1);
}

#[test]
fn a_pmt_switching_h264_to_h265_starts_over_with_the_new_codec() {
    let mut m = stream();
    m.pes(VIDEO_PID, 0xe0, 0, None, &access_unit(true));
    m.pes(AUDIO_PID, 0xc0, 0, None, &adts(&[1]));
    m.pes(VIDEO_PID, 0xe0, 3000, None, &access_unit(false));
    m.pmt_version = 1;
    m.pmt(&[
        (STREAM_TYPE_H265, VIDEO_PID),
        (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
    ]);
    // An H.265 picture before its parameter sets is dropped, not sent under H.264's.
    m.pes(VIDEO_PID, 0xe0, 6000, None, &h265_au(&[], false));
    m.pes(VIDEO_PID, 0xe0, 9000, None, &h265_au(&good_sets(), true));
    m.pes(VIDEO_PID, 0xe0, 12000, None, &h265_au(&[], false));
    let (frames, errors) = demux(&m.out, Limits::default());
    assert_eq!(errors, vec![TsError::NoVideoConfig]);
    let video: Vec<(VideoCodec, bool)> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::VideoConfig { codec, .. } => Some((*codec, true)),
            Frame::Video { codec, .. } => Some((*codec, false)),
            _ => None,
        })
        .collect();
    assert_eq!(
        video,
        vec![
            (VideoCodec::Avc, true),
            (VideoCodec::Avc, false),
            (VideoCodec::Avc, false),
            (VideoCodec::Hevc, true),
            (VideoCodec::Hevc, false),
            (VideoCodec::Hevc, false),
        ]
    );
}

#[test]
fn video_before_its_parameter_sets_is_dropped() {
    let mut m = stream();
    m.pes(VIDEO_PID, 0xe0, 0, None, &access_unit(false));
    m.pes(VIDEO_PID, 0xe0, 3000, None, &access_unit(true));
    let (frames, errors) = demux(&m.out, Limits::default());
    assert_eq!(errors, vec![TsError::NoVideoConfig]);
    assert_eq!(frames.len(), 2);
}

#[test]
fn timestamps_continue_across_the_33_bit_wrap() {
    let mut c = Clock::default();
    let near = CLOCK_WRAP - 3000;
    assert_eq!(c.extend(near), near);
    assert_eq!(c.extend(1000), CLOCK_WRAP + 1000);
    // A B-frame presented just before the wrap stays before it.
    assert_eq!(c.extend(CLOCK_WRAP - 100), CLOCK_WRAP - 100);
    assert_eq!(c.extend(4000), CLOCK_WRAP + 4000);
}

#[test]
fn random_bytes_never_panic() {
    // A cheap deterministic stand-in for the fuzz target, run with the unit tests.
    let mut m = stream();
    for i in 0..20u64 {
        m.pes(VIDEO_PID, 0xe0, 3000 * i, None, &access_unit(i % 5 == 0));
        m.pes(AUDIO_PID, 0xc0, 3000 * i, None, &adts(&[i as u8; 200]));
    }
    let mut x: u32 = 0x1234_5678;
    for round in 0..200 {
        let mut bytes = m.out.clone();
        for _ in 0..(round % 40 + 1) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = x as usize % bytes.len();
            bytes[at] = (x >> 24) as u8;
        }
        let _ = demux(&bytes, Limits::default());
    }
}

#[test]
fn media_waits_for_every_declared_configuration_but_not_forever() {
    let mut m = stream();
    for i in 0..(MAX_HELD as u64 + 10) {
        m.pes(VIDEO_PID, 0xe0, 3000 * i, None, &access_unit(i == 0));
    }
    let mut d = Demuxer::new(Limits::default());
    d.push(&m.out[..m.out.len() / 2]);
    // The PMT promises audio that never comes: nothing yet.
    assert_eq!(d.poll(), None);
    d.push(&m.out[m.out.len() / 2..]);
    // Past the bound, video alone goes out, its configuration first.
    assert!(matches!(d.poll(), Some(Frame::VideoConfig { .. })));
    assert!(matches!(
        d.poll(),
        Some(Frame::Video { keyframe: true, .. })
    ));
}
