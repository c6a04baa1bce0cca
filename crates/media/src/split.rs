//! Splits a muxed CMAF segment into one track (demuxing on request).
//!
//! The origin stores H.264 video and AAC audio muxed into the same `moof` +
//! `mdat` pairs (what HLS wants). DASH representations want one track each
//! (DASH-IF IOP, ffmpeg's DASH demuxer), so [`split_track`] rewrites a stored
//! segment or part into the same sequence of pairs holding only one track:
//! each `moof` keeps its `mfhd` and only that track's `traf`(s), every `trun`
//! gets an explicit `data_offset` into a new `mdat` that holds only that
//! track's sample bytes, and `tfhd` is marked default-base-is-moof.
//!
//! Input: one or more `moof` + `mdat` pairs (each `mdat` directly after its
//! `moof`), as [`crate::fmp4::fragment`] or any CMAF packager writes them.
//! Top-level `styp`, `sidx`, `ssix`, `prft`, `free` and `skip` boxes are
//! dropped (a `sidx` would index the wrong byte ranges after the split, a
//! `prft` may name the other track); `emsg` boxes are kept in front of the
//! pair that follows them. Unknown boxes inside `moof` and `traf` (`pssh`,
//! `sbgp`, `sgpd`, `senc`, ...) are copied as they are.
//!
//! Not handled, and reported as [`SplitError::Unsupported`] instead of
//! producing wrong output: `tfhd` with an explicit base-data-offset (an
//! absolute file offset that means nothing for a standalone segment), `saio`
//! in the kept track (its offsets would need rewriting; CENC-encrypted
//! input), and outputs whose `data_offset` or box sizes no longer fit in 32
//! bits. This module does not read the init segment, so sample sizes must come
//! from `trun` or `tfhd` (not from `trex` defaults). It does not touch
//! timestamps, sample flags or sequence numbers, and does no I/O.
//!
//! Hostile input: every length and offset is checked, nothing panics, and the
//! work and output size are linear in the input length (the kept sample-data
//! ranges of a pair must not overlap, so no byte is copied twice).

use bytes::{BufMut, Bytes, BytesMut};
use std::ops::Range;

/// Why a fragment sequence could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The input is empty or ends inside a box (or a `moof` has no `mdat` yet).
    #[error("truncated fragment")]
    Truncated,
    /// The boxes are inconsistent (bad sizes, offsets outside `mdat`, ...).
    #[error("malformed fragment: {0}")]
    Malformed(&'static str),
    /// No `moof` in the input has a `traf` for this `track_ID`.
    #[error("no fragment holds track {0}")]
    NoSuchTrack(u32),
    /// Valid ISO BMFF that this splitter does not rewrite.
    #[error("unsupported fragment: {0}")]
    Unsupported(&'static str),
}

use SplitError::{Malformed, Truncated, Unsupported};

const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
const TFHD_DEFAULT_SAMPLE_DURATION: u32 = 0x00_0008;
const TFHD_DEFAULT_SAMPLE_SIZE: u32 = 0x00_0010;
const TFHD_DEFAULT_SAMPLE_FLAGS: u32 = 0x00_0020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;

const TRUN_DATA_OFFSET: u32 = 0x00_0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
const TRUN_SAMPLE_DURATION: u32 = 0x00_0100;
const TRUN_SAMPLE_SIZE: u32 = 0x00_0200;
const TRUN_SAMPLE_FLAGS: u32 = 0x00_0400;
const TRUN_SAMPLE_CTS: u32 = 0x00_0800;

/// Returns the same sequence of `moof` + `mdat` pairs with only track
/// `track_id`.
///
/// For each pair: a new `moof` (`mfhd` and other non-`traf` children kept, only
/// that track's `traf`, its `tfhd` marked default-base-is-moof, every `trun`
/// with a `data_offset` pointing into the new `mdat`) and a new `mdat` with only
/// that track's sample bytes, in `trun` order. Pairs without a `traf` for the
/// track are dropped; if no pair has one, the result is
/// [`SplitError::NoSuchTrack`]. See the module docs for what is dropped,
/// copied and rejected.
pub fn split_track(fragments: &[u8], track_id: u32) -> Result<Bytes, SplitError> {
    if fragments.is_empty() {
        return Err(Truncated);
    }
    let mut out = BytesMut::with_capacity(fragments.len());
    let mut prefix: Vec<RawBox> = Vec::new();
    let mut moof: Option<RawBox> = None;
    let mut found = false;
    let mut pos = 0;
    while pos < fragments.len() {
        let b = read_box(fragments, pos, fragments.len())?;
        pos = b.end;
        if let Some(m) = moof.take() {
            if &b.kind != b"mdat" {
                return Err(Malformed("moof not followed by mdat"));
            }
            if let Some(pair) = split_pair(fragments, &m, &b, track_id)? {
                for e in &prefix {
                    out.put_slice(slice(fragments, e.start..e.end)?);
                }
                out.put_slice(&pair.moof);
                put_header(
                    &mut out,
                    b"mdat",
                    pair.mdat_payload_len,
                    pair.mdat_header_len,
                );
                for r in pair.data {
                    out.put_slice(slice(fragments, r)?);
                }
                found = true;
            }
            prefix.clear();
            continue;
        }
        match &b.kind {
            b"moof" => moof = Some(b),
            b"emsg" => prefix.push(b),
            b"styp" | b"sidx" | b"ssix" | b"prft" | b"free" | b"skip" => {}
            b"mdat" => return Err(Malformed("mdat without moof")),
            _ => return Err(Malformed("unexpected top-level box")),
        }
    }
    if moof.is_some() {
        return Err(Truncated);
    }
    if !found {
        return Err(SplitError::NoSuchTrack(track_id));
    }
    Ok(out.freeze())
}

/// A box located in the input; all positions are absolute input offsets.
#[derive(Clone, Copy, Debug)]
struct RawBox {
    kind: [u8; 4],
    start: usize,
    payload_start: usize,
    end: usize,
}

/// Reads the box header at `pos`; the box must end at or before `limit` (the
/// end of its parent). Size 0 means "to the end of the parent", size 1 means
/// a 64-bit largesize follows the type.
fn read_box(buf: &[u8], pos: usize, limit: usize) -> Result<RawBox, SplitError> {
    let window = buf
        .get(pos..limit)
        .ok_or(Malformed("box outside its parent"))?;
    let size32 = be32(window, 0).ok_or(Truncated)?;
    let kind: [u8; 4] = window
        .get(4..8)
        .and_then(|k| k.try_into().ok())
        .ok_or(Truncated)?;
    let (header, size) = match size32 {
        0 => (8usize, window.len() as u64),
        1 => (16, be64(window, 8).ok_or(Truncated)?),
        n => (8, u64::from(n)),
    };
    if size < header as u64 {
        return Err(Malformed("box size smaller than its header"));
    }
    let size = usize::try_from(size).map_err(|_| Truncated)?;
    if size > window.len() {
        return Err(Truncated);
    }
    // Both sums are bounded by `limit` (checked above), so they cannot overflow.
    Ok(RawBox {
        kind,
        start: pos,
        payload_start: pos + header,
        end: pos + size,
    })
}

/// The boxes that exactly fill `buf[start..end]`.
fn boxes_in(buf: &[u8], start: usize, end: usize) -> Result<Vec<RawBox>, SplitError> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let b = read_box(buf, pos, end)?;
        pos = b.end;
        out.push(b);
    }
    Ok(out)
}

fn slice(buf: &[u8], r: Range<usize>) -> Result<&[u8], SplitError> {
    buf.get(r).ok_or(Malformed("range outside the input"))
}

fn payload<'a>(buf: &'a [u8], b: &RawBox) -> Result<&'a [u8], SplitError> {
    slice(buf, b.payload_start..b.end)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(s.try_into().ok()?))
}

/// One parsed `trun`.
#[derive(Debug)]
struct Trun {
    b: RawBox,
    /// version (8 bits) and flags (24 bits).
    version_flags: u32,
    sample_count: u32,
    /// Input offset of what follows `data_offset`: the optional
    /// first_sample_flags and the sample table, copied verbatim.
    rest_start: usize,
    /// The run's sample bytes in the input.
    data: Range<usize>,
}

#[derive(Debug)]
enum TrafChild {
    Tfhd(RawBox, u32),
    Trun(Trun),
    Saio,
    Other(RawBox),
}

/// One parsed `traf`, and where its sample data ends (the implicit base of
/// the next `traf` when neither base-data-offset nor default-base-is-moof is
/// set).
#[derive(Debug)]
struct Traf {
    track_id: u32,
    children: Vec<TrafChild>,
    data_end: usize,
}

/// Parses a `traf`: `tfhd` first, then any boxes; `trun`s are decoded.
fn parse_traf(
    buf: &[u8],
    traf: &RawBox,
    moof_start: usize,
    implicit_base: usize,
) -> Result<Traf, SplitError> {
    let kids = boxes_in(buf, traf.payload_start, traf.end)?;
    let Some(tfhd) = kids.first().filter(|b| &b.kind == b"tfhd") else {
        return Err(Malformed("traf does not start with tfhd"));
    };
    let p = payload(buf, tfhd)?;
    let version_flags = be32(p, 0).ok_or(Malformed("tfhd too short"))?;
    if version_flags >> 24 != 0 {
        return Err(Malformed("tfhd version"));
    }
    let flags = version_flags & 0x00ff_ffff;
    let track_id = be32(p, 4).ok_or(Malformed("tfhd too short"))?;
    if flags & TFHD_BASE_DATA_OFFSET != 0 {
        return Err(Unsupported("tfhd with explicit base-data-offset"));
    }
    let mut at = 8usize;
    for flag in [TFHD_SAMPLE_DESCRIPTION_INDEX, TFHD_DEFAULT_SAMPLE_DURATION] {
        if flags & flag != 0 {
            at += 4;
        }
    }
    let default_size = if flags & TFHD_DEFAULT_SAMPLE_SIZE != 0 {
        let v = be32(p, at).ok_or(Malformed("tfhd too short"))?;
        at += 4;
        Some(v)
    } else {
        None
    };
    if flags & TFHD_DEFAULT_SAMPLE_FLAGS != 0 {
        at += 4;
    }
    if p.len() != at {
        return Err(Malformed("tfhd size does not match its flags"));
    }

    let base = if flags & TFHD_DEFAULT_BASE_IS_MOOF != 0 {
        moof_start
    } else {
        implicit_base
    };
    let mut cursor = base;
    let mut children = Vec::with_capacity(kids.len());
    children.push(TrafChild::Tfhd(*tfhd, version_flags));
    for b in kids.iter().skip(1) {
        children.push(match &b.kind {
            b"tfhd" => return Err(Malformed("second tfhd in traf")),
            b"trun" => {
                let run = parse_trun(buf, b, base, cursor, default_size)?;
                cursor = run.data.end;
                TrafChild::Trun(run)
            }
            b"saio" => TrafChild::Saio,
            _ => TrafChild::Other(*b),
        });
    }
    Ok(Traf {
        track_id,
        children,
        data_end: cursor,
    })
}

/// Decodes a `trun`'s header and the total size of its samples.
fn parse_trun(
    buf: &[u8],
    b: &RawBox,
    base: usize,
    cursor: usize,
    default_size: Option<u32>,
) -> Result<Trun, SplitError> {
    const SHORT: SplitError = Malformed("trun too short");
    let p = payload(buf, b)?;
    let version_flags = be32(p, 0).ok_or(SHORT)?;
    let flags = version_flags & 0x00ff_ffff;
    let sample_count = be32(p, 4).ok_or(SHORT)?;
    let mut at = 8usize;
    let start = if flags & TRUN_DATA_OFFSET != 0 {
        // data_offset is a signed 32-bit field in both trun versions.
        let offset = be32(p, at).ok_or(SHORT)? as i32;
        at += 4;
        let start = i64::try_from(base)
            .ok()
            .and_then(|base| base.checked_add(i64::from(offset)))
            .ok_or(Malformed("data_offset out of range"))?;
        usize::try_from(start).map_err(|_| Malformed("data_offset before the input"))?
    } else {
        cursor
    };
    let rest_start = b.payload_start.checked_add(at).ok_or(SHORT)?;
    if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 {
        at += 4;
    }
    let per_sample = [
        TRUN_SAMPLE_DURATION,
        TRUN_SAMPLE_SIZE,
        TRUN_SAMPLE_FLAGS,
        TRUN_SAMPLE_CTS,
    ];
    let entry_len = 4 * per_sample.iter().filter(|&&f| flags & f != 0).count();
    // entry_len <= 16 and sample_count < 2^32, so this cannot overflow u64.
    let table_len = u64::from(sample_count) * entry_len as u64;
    if (p.len() as u64).checked_sub(at as u64) != Some(table_len) {
        return Err(Malformed("trun size does not match its sample count"));
    }
    let total: u64 = if flags & TRUN_SAMPLE_SIZE != 0 {
        let size_at = if flags & TRUN_SAMPLE_DURATION != 0 {
            4
        } else {
            0
        };
        // The table length was checked against the payload, so this loop is
        // bounded by the input length.
        let table = p.get(at..).ok_or(SHORT)?;
        table
            .chunks_exact(entry_len)
            .map(|e| be32(e, size_at).map_or(0, u64::from))
            .sum()
    } else if sample_count == 0 {
        0
    } else {
        let size = default_size.ok_or(Unsupported("sample size only in trex"))?;
        u64::from(sample_count) * u64::from(size)
    };
    let end = u64::try_from(start)
        .ok()
        .and_then(|s| s.checked_add(total))
        .and_then(|e| usize::try_from(e).ok())
        .ok_or(Malformed("sample data beyond the input"))?;
    Ok(Trun {
        b: *b,
        version_flags,
        sample_count,
        rest_start,
        data: start..end,
    })
}

/// The rewritten form of one pair: complete `moof` bytes and the input
/// ranges that make up the new `mdat` payload.
struct Pair {
    moof: Vec<u8>,
    mdat_header_len: usize,
    mdat_payload_len: u64,
    data: Vec<Range<usize>>,
}

/// Rewrites one `moof` + `mdat` pair; `None` if the track is not in it.
fn split_pair(
    buf: &[u8],
    moof: &RawBox,
    mdat: &RawBox,
    track_id: u32,
) -> Result<Option<Pair>, SplitError> {
    let kids = boxes_in(buf, moof.payload_start, moof.end)?;
    let mut trafs = Vec::new();
    let mut implicit_base = moof.start;
    let mut kept = false;
    for b in &kids {
        if &b.kind == b"traf" {
            let traf = parse_traf(buf, b, moof.start, implicit_base)?;
            implicit_base = traf.data_end;
            kept |= traf.track_id == track_id;
            trafs.push(Some(traf));
        } else {
            trafs.push(None);
        }
    }
    if !kept {
        return Ok(None);
    }

    let mut out = Vec::with_capacity(moof.end - moof.start + 64);
    // (position of a data_offset field in `out`, offset in the new mdat payload)
    let mut patches: Vec<(usize, u64)> = Vec::new();
    let mut data: Vec<Range<usize>> = Vec::new();
    let mut payload_len: u64 = 0;
    let moof_at = begin(&mut out, b"moof");
    for (b, traf) in kids.iter().zip(&trafs) {
        let Some(traf) = traf else {
            out.extend_from_slice(slice(buf, b.start..b.end)?);
            continue;
        };
        if traf.track_id != track_id {
            continue;
        }
        let traf_at = begin(&mut out, b"traf");
        for child in &traf.children {
            match child {
                TrafChild::Tfhd(t, version_flags) => {
                    let tfhd_at = begin(&mut out, b"tfhd");
                    out.extend_from_slice(
                        &(version_flags | TFHD_DEFAULT_BASE_IS_MOOF).to_be_bytes(),
                    );
                    // Everything after version/flags is kept (no base_data_offset:
                    // rejected while parsing).
                    let rest = t.payload_start.checked_add(4).ok_or(Truncated)?;
                    out.extend_from_slice(slice(buf, rest..t.end)?);
                    finish(&mut out, tfhd_at)?;
                }
                TrafChild::Trun(run) => {
                    // A run without sample bytes may point anywhere; it copies nothing.
                    if !run.data.is_empty()
                        && (run.data.start < mdat.payload_start || run.data.end > mdat.end)
                    {
                        return Err(Malformed("trun data outside the mdat payload"));
                    }
                    let trun_at = begin(&mut out, b"trun");
                    out.extend_from_slice(&(run.version_flags | TRUN_DATA_OFFSET).to_be_bytes());
                    out.extend_from_slice(&run.sample_count.to_be_bytes());
                    patches.push((out.len(), payload_len));
                    out.extend_from_slice(&[0; 4]);
                    out.extend_from_slice(slice(buf, run.rest_start..run.b.end)?);
                    finish(&mut out, trun_at)?;
                    if !run.data.is_empty() {
                        payload_len += (run.data.end - run.data.start) as u64;
                        data.push(run.data.clone());
                    }
                }
                TrafChild::Saio => return Err(Unsupported("saio in the kept traf")),
                TrafChild::Other(o) => out.extend_from_slice(slice(buf, o.start..o.end)?),
            }
        }
        finish(&mut out, traf_at)?;
    }
    finish(&mut out, moof_at)?;

    // Each sample byte belongs to one sample: overlapping runs are malformed,
    // and rejecting them keeps the output no larger than the input.
    let mut sorted = data.clone();
    sorted.sort_by_key(|r| r.start);
    if sorted.windows(2).any(|w| w[1].start < w[0].end) {
        return Err(Malformed("overlapping trun data"));
    }

    let mdat_header_len: usize = if payload_len + 8 > u64::from(u32::MAX) {
        16
    } else {
        8
    };
    let first = (out.len() + mdat_header_len) as u64;
    for (at, offset) in patches {
        let value = i32::try_from(first + offset)
            .map_err(|_| Unsupported("data_offset does not fit in 32 bits"))?;
        if let Some(slot) = out.get_mut(at..at + 4) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
    }
    Ok(Some(Pair {
        moof: out,
        mdat_header_len,
        mdat_payload_len: payload_len,
        data,
    }))
}

/// Starts a box in `out`; returns its start for [`finish`].
fn begin(out: &mut Vec<u8>, kind: &[u8; 4]) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    at
}

/// Patches the 32-bit size of the box started at `at`.
fn finish(out: &mut [u8], at: usize) -> Result<(), SplitError> {
    let size = u32::try_from(out.len() - at).map_err(|_| Unsupported("box larger than 4 GiB"))?;
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&size.to_be_bytes());
    }
    Ok(())
}

/// Writes a box header for `payload_len` bytes with an 8- or 16-byte header.
fn put_header(out: &mut BytesMut, kind: &[u8; 4], payload_len: u64, header_len: usize) {
    if header_len == 16 {
        out.put_u32(1);
        out.put_slice(kind);
        out.put_u64(payload_len + 16);
    } else {
        out.put_u32((payload_len + 8) as u32);
        out.put_slice(kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            assert_eq!(u32_at(tk[0].payload, 0), TFHD_DEFAULT_BASE_IS_MOOF);
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
}
