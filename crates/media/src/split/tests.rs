//! Tests of `split`.

use super::*;
use crate::bmff::{u32_at as be32, u64_at as be64};
use crate::fmp4::{fragment, Sample, TrackRun};

// ---- a small box walker for checking the output ----

#[derive(Debug, Clone)]
struct Bx<'a> {
    kind: String,
    /// Absolute offset of the box header.
    start: usize,
    /// Absolute offset of the payload.
    payload_start: usize,
    payload: &'a [u8],
}

/// Boxes exactly covering `data`; `base` is the absolute offset of `data[0]`.
fn walk(data: &[u8], base: usize) -> Vec<Bx<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        assert!(data.len() - pos >= 8, "truncated header at {}", base + pos);
        let size32 = be32(data, pos).unwrap() as usize;
        let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
        let (size, header) = match size32 {
            1 => (be64(data, pos + 8).unwrap() as usize, 16),
            0 => (data.len() - pos, 8),
            n => (n, 8),
        };
        assert!(
            size >= header && pos + size <= data.len(),
            "{kind}: bad size"
        );
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

fn kids<'a>(b: &Bx<'a>) -> Vec<Bx<'a>> {
    walk(b.payload, b.payload_start)
}

fn kinds(v: &[Bx<'_>]) -> Vec<String> {
    v.iter().map(|b| b.kind.clone()).collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    be32(b, at).unwrap()
}

/// One decoded trun entry: (duration, size, flags, cts).
type Entry = (u32, u32, u32, i32);

/// Decodes a trun written with all per-sample fields: (flags, data_offset, entries).
fn decode_trun(p: &[u8]) -> (u32, i32, Vec<Entry>) {
    let flags = u32_at(p, 0) & 0xff_ffff;
    assert_eq!(flags, 0xf01);
    let n = u32_at(p, 4) as usize;
    assert_eq!(p.len(), 12 + 16 * n);
    let entries = (0..n)
        .map(|i| {
            let e = 12 + 16 * i;
            (
                u32_at(p, e),
                u32_at(p, e + 4),
                u32_at(p, e + 8),
                u32_at(p, e + 12) as i32,
            )
        })
        .collect();
    (flags, u32_at(p, 8) as i32, entries)
}

// ---- fixtures ----

struct Part {
    seq: u32,
    video: Vec<Sample>,
    video_dt: u64,
    audio: Vec<Sample>,
    audio_dt: u64,
}

fn video(n: usize, seed: u8) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            duration: 3000,
            // B-frame style reordering: positive and negative offsets.
            cts_offset: [6000, -3000, 3000, 0][i % 4],
            keyframe: i == 0,
            data: Bytes::from(vec![seed.wrapping_add(i as u8); 100 + 37 * i]),
        })
        .collect()
}

fn audio(n: usize, seed: u8) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            duration: 1024,
            cts_offset: 0,
            keyframe: true,
            data: Bytes::from(vec![seed.wrapping_add(i as u8); 20 + 3 * i]),
        })
        .collect()
}

fn parts() -> Vec<Part> {
    vec![
        Part {
            seq: 7,
            video: video(5, 0x10),
            video_dt: 900_000,
            audio: audio(7, 0x80),
            audio_dt: 441_000,
        },
        // Video only: no audio traf in this pair.
        Part {
            seq: 8,
            video: video(3, 0x30),
            video_dt: 915_000,
            audio: Vec::new(),
            audio_dt: 0,
        },
        Part {
            seq: 9,
            video: video(6, 0x50),
            video_dt: 924_000,
            audio: audio(9, 0xa0),
            audio_dt: 448_168,
        },
    ]
}

/// styp + the muxed pairs, as the origin stores a segment.
fn muxed(parts: &[Part]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 16];
    out.extend_from_slice(b"stypmsdh\0\0\0\0");
    for p in parts {
        let runs = [
            TrackRun {
                track_id: 1,
                base_decode_time: p.video_dt,
                samples: &p.video,
            },
            TrackRun {
                track_id: 2,
                base_decode_time: p.audio_dt,
                samples: &p.audio,
            },
        ];
        out.extend_from_slice(&fragment(p.seq, &runs));
    }
    out
}

fn flags_of(s: &Sample) -> u32 {
    if s.keyframe {
        0x0200_0000
    } else {
        0x0101_0000
    }
}

/// Checks a split output against the samples of `track` in each part.
fn check_split(out: &[u8], parts: &[Part], track: u32) {
    let expected: Vec<(u32, u64, &[Sample])> = parts
        .iter()
        .map(|p| {
            if track == 1 {
                (p.seq, p.video_dt, &p.video[..])
            } else {
                (p.seq, p.audio_dt, &p.audio[..])
            }
        })
        .filter(|(_, _, s)| !s.is_empty())
        .collect();
    let top = walk(out, 0);
    assert_eq!(top.len(), 2 * expected.len());
    for (pair, (seq, dt, samples)) in top.chunks(2).zip(&expected) {
        let (moof, mdat) = (&pair[0], &pair[1]);
        assert_eq!((moof.kind.as_str(), mdat.kind.as_str()), ("moof", "mdat"));
        let mk = kids(moof);
        assert_eq!(kinds(&mk), ["mfhd", "traf"]);
        assert_eq!(u32_at(mk[0].payload, 4), *seq);
        let tk = kids(&mk[1]);
        assert_eq!(kinds(&tk), ["tfhd", "tfdt", "trun"]);
        assert_eq!(u32_at(tk[0].payload, 0), tfhd::DEFAULT_BASE_IS_MOOF);
        assert_eq!(u32_at(tk[0].payload, 4), track);
        assert_eq!(tk[1].payload[0], 1);
        assert_eq!(be64(tk[1].payload, 4).unwrap(), *dt);
        let (_, data_offset, entries) = decode_trun(tk[2].payload);
        assert_eq!(
            data_offset as usize,
            mdat.payload_start - moof.start,
            "data_offset points at the mdat payload"
        );
        let want: Vec<Entry> = samples
            .iter()
            .map(|s| (s.duration, s.data.len() as u32, flags_of(s), s.cts_offset))
            .collect();
        assert_eq!(entries, want);
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.data.to_vec()).collect();
        assert_eq!(mdat.payload, &bytes[..]);
    }
}

#[test]
fn splits_each_track_of_muxed_fragments() {
    let parts = parts();
    let input = muxed(&parts);
    let v = split_track(&input, 1).unwrap();
    check_split(&v, &parts, 1);
    let a = split_track(&input, 2).unwrap();
    check_split(&a, &parts, 2);
    assert_eq!(walk(&a, 0).len(), 4, "the video-only pair is dropped");
    // Splitting is idempotent.
    assert_eq!(split_track(&v, 1).unwrap(), v);
    assert_eq!(split_track(&a, 2).unwrap(), a);
    assert_eq!(split_track(&input, 3), Err(SplitError::NoSuchTrack(3)));
    assert_eq!(split_track(&v, 2), Err(SplitError::NoSuchTrack(2)));
}

#[test]
fn single_pair_without_styp_and_zero_length_samples() {
    let mut v = video(3, 1);
    v[1].data = Bytes::new();
    let a = audio(2, 9);
    let parts = [Part {
        seq: 1,
        video: v,
        video_dt: 0,
        audio: a,
        audio_dt: 0,
    }];
    let input = muxed(&parts);
    let input = &input[16..];
    check_split(&split_track(input, 1).unwrap(), &parts, 1);
    check_split(&split_track(input, 2).unwrap(), &parts, 2);
}

// ---- hand-built fragments for the flags fmp4 does not write ----

fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(payload);
    v
}

fn bx64(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut p = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
    p.extend_from_slice(body);
    bx(kind, &p)
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// A moof + mdat using tfhd defaults, implicit trun offsets, several truns,
/// no default-base-is-moof, first-sample-flags and an unknown traf box.
/// Track 1: 5 samples of 5 bytes (tfhd default size) in two truns; track 2:
/// samples of 3 and 4 bytes. `large` uses 64-bit sizes for moof, traf and
/// mdat.
fn hand_built(large: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let wrap = |kind: &[u8; 4], p: &[u8]| if large { bx64(kind, p) } else { bx(kind, p) };
    let t1_data: Vec<u8> = (0u8..25).collect();
    let t2_data: Vec<u8> = (100u8..107).collect();
    let build = |first_offset: u32| {
        let traf1 = [
            // sample-description-index, default duration/size/flags; no base flags.
            full(b"tfhd", 0, 0x3a, &words(&[1, 1, 1024, 5, 0x0101_0000])),
            full(b"tfdt", 0, 0, &words(&[4242])),
            // data offset + first-sample-flags, no per-sample fields.
            full(b"trun", 0, 0x5, &words(&[3, first_offset, 0x0200_0000])),
            // No data offset: continues after the previous run.
            full(b"trun", 0, 0x0, &words(&[2])),
            full(b"sbgp", 0, 0, &words(&[0x726f6c6c, 1, 5, 1])),
        ]
        .concat();
        let traf2 = [
            // No flags at all: base is where track 1's data ended.
            full(b"tfhd", 0, 0, &words(&[2])),
            full(b"trun", 0, 0x300, &words(&[2, 1024, 3, 1024, 4])),
        ]
        .concat();
        let moof = [
            full(b"mfhd", 0, 0, &words(&[77])),
            wrap(b"traf", &traf1),
            bx(b"traf", &traf2),
        ]
        .concat();
        wrap(b"moof", &moof)
    };
    let mdat_header = if large { 16 } else { 8 };
    let moof_len = build(0).len();
    let mut input = build((moof_len + mdat_header) as u32);
    input.extend_from_slice(&wrap(b"mdat", &[t1_data.clone(), t2_data.clone()].concat()));
    (input, t1_data, t2_data)
}

#[test]
fn defaults_implicit_offsets_multiple_truns_and_large_sizes() {
    let small = hand_built(false);
    let large = hand_built(true);
    for (input, t1, t2) in [&small, &large] {
        let out = split_track(input, 1).unwrap();
        let top = walk(&out, 0);
        assert_eq!(kinds(&top), ["moof", "mdat"]);
        let mk = kids(&top[0]);
        assert_eq!(kinds(&mk), ["mfhd", "traf"]);
        let tk = kids(&mk[1]);
        assert_eq!(kinds(&tk), ["tfhd", "tfdt", "trun", "trun", "sbgp"]);
        assert_eq!(
            tk[0].payload,
            &words(&[0x02_003a, 1, 1, 1024, 5, 0x0101_0000])[..]
        );
        assert_eq!(tk[1].payload, &words(&[0, 4242])[..]);
        let start = (top[1].payload_start - top[0].start) as u32;
        assert_eq!(tk[2].payload, &words(&[0x5, 3, start, 0x0200_0000])[..]);
        assert_eq!(tk[3].payload, &words(&[0x1, 2, start + 15])[..]);
        assert_eq!(tk[4].payload, &words(&[0, 0x726f6c6c, 1, 5, 1])[..]);
        assert_eq!(top[1].payload, &t1[..]);

        let out = split_track(input, 2).unwrap();
        let top = walk(&out, 0);
        let tk = kids(&kids(&top[0])[1]);
        assert_eq!(kinds(&tk), ["tfhd", "trun"]);
        assert_eq!(tk[0].payload, &words(&[0x02_0000, 2])[..]);
        let start = (top[1].payload_start - top[0].start) as u32;
        assert_eq!(
            tk[1].payload,
            &words(&[0x301, 2, start, 1024, 3, 1024, 4])[..]
        );
        assert_eq!(top[1].payload, &t2[..]);
    }
    // 64-bit input sizes give the same (32-bit) output.
    assert_eq!(
        split_track(&small.0, 1).unwrap(),
        split_track(&large.0, 1).unwrap()
    );
}

#[test]
fn emsg_travels_with_its_pair_and_other_boxes_are_dropped() {
    let parts = parts();
    let muxed = muxed(&parts);
    let top = walk(&muxed, 0);
    // styp, (moof, mdat) x 3. Put an emsg before the video-only pair and a
    // prft + emsg before the last one.
    let emsg1 = full(b"emsg", 0, 0, b"one");
    let emsg2 = full(b"emsg", 0, 0, b"two");
    let mut input = muxed[..top[3].start].to_vec();
    input.extend_from_slice(&emsg1);
    input.extend_from_slice(&muxed[top[3].start..top[5].start]);
    input.extend_from_slice(&full(b"prft", 0, 0, &[0; 12]));
    input.extend_from_slice(&emsg2);
    input.extend_from_slice(&muxed[top[5].start..]);
    let out = split_track(&input, 2).unwrap();
    assert_eq!(
        kinds(&walk(&out, 0)),
        ["moof", "mdat", "emsg", "moof", "mdat"]
    );
    let out = split_track(&input, 1).unwrap();
    assert_eq!(
        kinds(&walk(&out, 0)),
        ["moof", "mdat", "emsg", "moof", "mdat", "emsg", "moof", "mdat"]
    );
}

#[test]
fn rejects_inconsistent_input() {
    let (input, ..) = hand_built(false);
    let top = walk(&input, 0);
    let (moof, mdat) = (&top[0], &top[1]);

    assert_eq!(split_track(&[], 1), Err(Truncated));
    assert_eq!(
        split_track(&input[..moof.payload_start + moof.payload.len()], 1),
        Err(Truncated)
    );
    assert_eq!(
        split_track(&input[mdat.start..], 1),
        Err(Malformed("mdat without moof"))
    );
    let mut two_moofs = input[..mdat.start].to_vec();
    two_moofs.extend_from_slice(&input);
    assert_eq!(
        split_track(&two_moofs, 1),
        Err(Malformed("moof not followed by mdat"))
    );
    assert_eq!(
        split_track(&bx(b"ftyp", b"iso6"), 1),
        Err(Malformed("unexpected top-level box"))
    );

    // Shrinking the mdat payload puts track 2's data outside it.
    let mut short = input[..input.len() - 1].to_vec();
    let len = short.len() - mdat.start;
    short[mdat.start..mdat.start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    assert_eq!(
        split_track(&short, 2),
        Err(Malformed("trun data outside the mdat payload"))
    );
    assert!(split_track(&short, 1).is_ok(), "track 1 is still complete");

    // fmp4 fragments: point video's data_offset one byte before the mdat
    // payload, then before the start of the input.
    let parts = parts();
    let muxed = muxed(&parts);
    let pair = walk(&muxed, 0);
    let (moof, mdat) = (&pair[1], &pair[2]);
    let trun = &kids(&kids(moof)[1])[2];
    let field = trun.payload_start + 8;
    let mut bad = muxed.clone();
    let before = (mdat.payload_start - moof.start - 1) as u32;
    bad[field..field + 4].copy_from_slice(&before.to_be_bytes());
    assert_eq!(
        split_track(&bad, 1),
        Err(Malformed("trun data outside the mdat payload"))
    );
    bad[field..field + 4].copy_from_slice(&(-100i32).to_be_bytes());
    assert_eq!(
        split_track(&bad, 1),
        Err(Malformed("data_offset before the input"))
    );
}

#[test]
fn rejects_unsupported_and_overlapping() {
    /// One moof (mfhd + the trafs) and a 16-byte mdat; `trafs` gets the
    /// offset of the mdat payload from the moof start.
    fn pair(trafs: impl Fn(u32) -> Vec<Vec<u8>>) -> Vec<u8> {
        let build = |base| {
            let mut moof = full(b"mfhd", 0, 0, &words(&[1]));
            for t in trafs(base) {
                moof.extend_from_slice(&bx(b"traf", &t));
            }
            bx(b"moof", &moof)
        };
        let mut v = build(build(0).len() as u32 + 8);
        v.extend_from_slice(&bx(b"mdat", &[0; 16]));
        v
    }
    // Explicit base-data-offset.
    let input = pair(|base| {
        vec![[
            full(b"tfhd", 0, 0x1, &[words(&[1]), vec![0; 8]].concat()),
            full(b"trun", 0, 0x201, &words(&[1, base, 4])),
        ]
        .concat()]
    });
    assert_eq!(
        split_track(&input, 1),
        Err(Unsupported("tfhd with explicit base-data-offset"))
    );
    // Sample size only known from trex.
    let input = pair(|base| {
        vec![[
            full(b"tfhd", 0, 0x2_0000, &words(&[1])),
            full(b"trun", 0, 0x1, &words(&[1, base])),
        ]
        .concat()]
    });
    assert_eq!(
        split_track(&input, 1),
        Err(Unsupported("sample size only in trex"))
    );
    // saio in the kept track only.
    let input = pair(|base| {
        vec![
            [
                full(b"tfhd", 0, 0x2_0000, &words(&[1])),
                full(b"trun", 0, 0x201, &words(&[1, base, 4])),
                full(b"saio", 0, 0, &words(&[1, 0])),
            ]
            .concat(),
            [
                full(b"tfhd", 0, 0x2_0000, &words(&[2])),
                full(b"trun", 0, 0x201, &words(&[1, base + 4, 4])),
            ]
            .concat(),
        ]
    });
    assert_eq!(
        split_track(&input, 1),
        Err(Unsupported("saio in the kept traf"))
    );
    let out = split_track(&input, 2).unwrap();
    assert_eq!(walk(&out, 0)[1].payload, &[0; 4]);
    // Two runs of the same track claiming the same bytes.
    let input = pair(|base| {
        vec![[
            full(b"tfhd", 0, 0x2_0000, &words(&[1])),
            full(b"trun", 0, 0x201, &words(&[1, base, 8])),
            full(b"trun", 0, 0x201, &words(&[1, base + 4, 8])),
        ]
        .concat()]
    });
    assert_eq!(
        split_track(&input, 1),
        Err(Malformed("overlapping trun data"))
    );
    // trun whose size disagrees with its sample count.
    let input = pair(|base| {
        vec![[
            full(b"tfhd", 0, 0x2_0000, &words(&[1])),
            full(b"trun", 0, 0x201, &words(&[2, base, 4])),
        ]
        .concat()]
    });
    assert_eq!(
        split_track(&input, 1),
        Err(Malformed("trun size does not match its sample count"))
    );
    // A huge sample count with default sizes is rejected without looping.
    let input = pair(|base| {
        vec![[
            full(b"tfhd", 0, 0x2_0010, &words(&[1, u32::MAX])),
            full(b"trun", 0, 0x1, &words(&[u32::MAX, base])),
        ]
        .concat()]
    });
    assert_eq!(
        split_track(&input, 1),
        Err(Malformed("trun data outside the mdat payload"))
    );
}

/// Deterministic xorshift generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_truncation_is_handled() {
    let mut inputs = vec![muxed(&parts()), hand_built(false).0, hand_built(true).0];
    inputs.push(inputs[0][16..].to_vec());
    for input in &inputs {
        let boundaries: Vec<usize> = walk(input, 0).iter().map(|b| b.start).collect();
        for len in 0..input.len() {
            for track in [1, 2] {
                let r = split_track(&input[..len], track);
                if let Ok(out) = &r {
                    // Only whole pairs can succeed.
                    assert!(boundaries.contains(&len), "Ok at {len}");
                    walk(out, 0);
                }
            }
        }
    }
}

#[test]
fn garbage_and_mutations_do_not_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in 0..2000 {
        let len = (rng.next() % 300) as usize + n % 3;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(split_track(&data, 1).is_err());
        assert!(split_track(&data, 2).is_err());
    }
    // Random byte edits of valid input: Ok or Err, never a panic, and any
    // output is well-formed and no larger than the input plus 4 bytes per
    // rewritten trun.
    let inputs = [muxed(&parts()), hand_built(false).0, hand_built(true).0];
    for input in &inputs {
        for _ in 0..3000 {
            let mut data = input.clone();
            for _ in 0..(rng.next() % 4 + 1) {
                let at = (rng.next() as usize) % data.len();
                data[at] = rng.next() as u8;
            }
            for track in [1, 2, (rng.next() % 4) as u32] {
                if let Ok(out) = split_track(&data, track) {
                    walk(&out, 0);
                    assert!(out.len() <= data.len() + 64);
                }
            }
        }
    }
}
