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
mod tests;
