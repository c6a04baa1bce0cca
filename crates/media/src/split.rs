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

use crate::bmff::{header_len_for, tfhd, trun, u32_at, BoxError, BoxRef, Boxes, Writer};

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

/// Box-structure errors: a box that does not fit is a truncated fragment.
impl From<BoxError> for SplitError {
    fn from(e: BoxError) -> Self {
        match e {
            BoxError::InvalidSize { .. } => Malformed("box size smaller than its header"),
            BoxError::TooDeep(_) => Malformed("boxes nested too deep"),
            BoxError::Truncated(what) | BoxError::Invalid(what) => Malformed(what),
            BoxError::TooLarge(_) => Unsupported("box larger than 4 GiB"),
            BoxError::TruncatedHeader | BoxError::Overrun { .. } | BoxError::TooManyBoxes(_) => {
                Truncated
            }
        }
    }
}

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
    let mut prefix: Vec<BoxRef<'_>> = Vec::new();
    let mut moof: Option<BoxRef<'_>> = None;
    let mut found = false;
    for b in Boxes::new(fragments) {
        let b = b?;
        if let Some(m) = moof.take() {
            if &b.kind != b"mdat" {
                return Err(Malformed("moof not followed by mdat"));
            }
            if let Some(pair) = split_pair(fragments, &m, &b, track_id)? {
                for e in &prefix {
                    out.put_slice(e.bytes());
                }
                out.put_slice(&pair.moof);
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

fn slice(buf: &[u8], r: Range<usize>) -> Result<&[u8], SplitError> {
    buf.get(r).ok_or(Malformed("range outside the input"))
}

/// One parsed `trun`.
#[derive(Debug)]
struct Trun<'a> {
    b: BoxRef<'a>,
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
enum TrafChild<'a> {
    Tfhd(BoxRef<'a>, u32),
    Trun(Trun<'a>),
    Saio,
    Other(BoxRef<'a>),
}

/// One parsed `traf`, and where its sample data ends (the implicit base of
/// the next `traf` when neither base-data-offset nor default-base-is-moof is
/// set).
#[derive(Debug)]
struct Traf<'a> {
    track_id: u32,
    children: Vec<TrafChild<'a>>,
    data_end: usize,
}

/// Parses a `traf`: `tfhd` first, then any boxes; `trun`s are decoded.
fn parse_traf<'a>(
    traf: &BoxRef<'a>,
    moof_start: usize,
    implicit_base: usize,
) -> Result<Traf<'a>, SplitError> {
    let kids = traf.children().collect::<Result<Vec<_>, _>>()?;
    let Some(tfhd) = kids.first().filter(|b| &b.kind == b"tfhd") else {
        return Err(Malformed("traf does not start with tfhd"));
    };
    let p = tfhd.payload();
    let version_flags = u32_at(p, 0).ok_or(Malformed("tfhd too short"))?;
    if version_flags >> 24 != 0 {
        return Err(Malformed("tfhd version"));
    }
    let flags = version_flags & 0x00ff_ffff;
    let track_id = u32_at(p, 4).ok_or(Malformed("tfhd too short"))?;
    if flags & tfhd::BASE_DATA_OFFSET != 0 {
        return Err(Unsupported("tfhd with explicit base-data-offset"));
    }
    let mut at = 8usize;
    for flag in [
        tfhd::SAMPLE_DESCRIPTION_INDEX,
        tfhd::DEFAULT_SAMPLE_DURATION,
    ] {
        if flags & flag != 0 {
            at += 4;
        }
    }
    let default_size = if flags & tfhd::DEFAULT_SAMPLE_SIZE != 0 {
        let v = u32_at(p, at).ok_or(Malformed("tfhd too short"))?;
        at += 4;
        Some(v)
    } else {
        None
    };
    if flags & tfhd::DEFAULT_SAMPLE_FLAGS != 0 {
        at += 4;
    }
    if p.len() != at {
        return Err(Malformed("tfhd size does not match its flags"));
    }

    let base = if flags & tfhd::DEFAULT_BASE_IS_MOOF != 0 {
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
                let run = parse_trun(b, base, cursor, default_size)?;
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
fn parse_trun<'a>(
    b: &BoxRef<'a>,
    base: usize,
    cursor: usize,
    default_size: Option<u32>,
) -> Result<Trun<'a>, SplitError> {
    const SHORT: SplitError = Malformed("trun too short");
    let p = b.payload();
    let version_flags = u32_at(p, 0).ok_or(SHORT)?;
    let flags = version_flags & 0x00ff_ffff;
    let sample_count = u32_at(p, 4).ok_or(SHORT)?;
    let mut at = 8usize;
    let start = if flags & trun::DATA_OFFSET != 0 {
        // data_offset is a signed 32-bit field in both trun versions.
        let offset = u32_at(p, at).ok_or(SHORT)? as i32;
        at += 4;
        let start = i64::try_from(base)
            .ok()
            .and_then(|base| base.checked_add(i64::from(offset)))
            .ok_or(Malformed("data_offset out of range"))?;
        usize::try_from(start).map_err(|_| Malformed("data_offset before the input"))?
    } else {
        cursor
    };
    let rest_start = b.payload_offset().checked_add(at).ok_or(SHORT)?;
    if flags & trun::FIRST_SAMPLE_FLAGS != 0 {
        at += 4;
    }
    let per_sample = [
        trun::SAMPLE_DURATION,
        trun::SAMPLE_SIZE,
        trun::SAMPLE_FLAGS,
        trun::SAMPLE_CTS,
    ];
    let entry_len = 4 * per_sample.iter().filter(|&&f| flags & f != 0).count();
    // entry_len <= 16 and sample_count < 2^32, so this cannot overflow u64.
    let table_len = u64::from(sample_count) * entry_len as u64;
    if (p.len() as u64).checked_sub(at as u64) != Some(table_len) {
        return Err(Malformed("trun size does not match its sample count"));
    }
    let total: u64 = if flags & trun::SAMPLE_SIZE != 0 {
        let size_at = if flags & trun::SAMPLE_DURATION != 0 {
            4
        } else {
            0
        };
        // The table length was checked against the payload, so this loop is
        // bounded by the input length.
        let table = p.get(at..).ok_or(SHORT)?;
        table
            .chunks_exact(entry_len)
            .map(|e| u32_at(e, size_at).map_or(0, u64::from))
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

/// The rewritten form of one pair: complete `moof` bytes and `mdat` header,
/// and the input ranges that make up the new `mdat` payload.
struct Pair {
    moof: Bytes,
    data: Vec<Range<usize>>,
}

/// Rewrites one `moof` + `mdat` pair; `None` if the track is not in it.
fn split_pair(
    buf: &[u8],
    moof: &BoxRef<'_>,
    mdat: &BoxRef<'_>,
    track_id: u32,
) -> Result<Option<Pair>, SplitError> {
    let kids = moof.children().collect::<Result<Vec<_>, _>>()?;
    let mut trafs = Vec::new();
    let mut implicit_base = moof.offset();
    let mut kept = false;
    for b in &kids {
        if &b.kind == b"traf" {
            let traf = parse_traf(b, moof.offset(), implicit_base)?;
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

    let mut out = Writer::with_capacity(moof.len() + 64);
    // (position of a data_offset field in `out`, offset in the new mdat payload)
    let mut patches: Vec<(usize, u64)> = Vec::new();
    let mut data: Vec<Range<usize>> = Vec::new();
    let mut payload_len: u64 = 0;
    let moof_at = out.begin(b"moof");
    for (b, traf) in kids.iter().zip(&trafs) {
        let Some(traf) = traf else {
            out.bytes(b.bytes());
            continue;
        };
        if traf.track_id != track_id {
            continue;
        }
        let traf_at = out.begin(b"traf");
        for child in &traf.children {
            match child {
                TrafChild::Tfhd(t, version_flags) => {
                    let tfhd_at = out.begin(b"tfhd");
                    out.u32(version_flags | tfhd::DEFAULT_BASE_IS_MOOF);
                    // Everything after version/flags is kept (no base_data_offset:
                    // rejected while parsing).
                    out.bytes(t.payload().get(4..).ok_or(Truncated)?);
                    out.end(tfhd_at)?;
                }
                TrafChild::Trun(run) => {
                    // A run without sample bytes may point anywhere; it copies nothing.
                    if !run.data.is_empty()
                        && (run.data.start < mdat.payload_offset() || run.data.end > mdat.end())
                    {
                        return Err(Malformed("trun data outside the mdat payload"));
                    }
                    let trun_at = out.begin(b"trun");
                    out.u32(run.version_flags | trun::DATA_OFFSET);
                    out.u32(run.sample_count);
                    patches.push((out.len(), payload_len));
                    out.u32(0);
                    out.bytes(slice(buf, run.rest_start..run.b.end())?);
                    out.end(trun_at)?;
                    if !run.data.is_empty() {
                        payload_len += (run.data.end - run.data.start) as u64;
                        data.push(run.data.clone());
                    }
                }
                TrafChild::Saio => return Err(Unsupported("saio in the kept traf")),
                TrafChild::Other(o) => out.bytes(o.bytes()),
            }
        }
        out.end(traf_at)?;
    }
    out.end(moof_at)?;

    // Each sample byte belongs to one sample: overlapping runs are malformed,
    // and rejecting them keeps the output no larger than the input.
    let mut sorted = data.clone();
    sorted.sort_by_key(|r| r.start);
    if sorted.windows(2).any(|w| w[1].start < w[0].end) {
        return Err(Malformed("overlapping trun data"));
    }

    let first = (out.len() + header_len_for(payload_len)) as u64;
    for (at, offset) in patches {
        let value = i32::try_from(first + offset)
            .map_err(|_| Unsupported("data_offset does not fit in 32 bits"))?;
        out.patch_u32(at, value as u32);
    }
    out.header(b"mdat", payload_len);
    Ok(Some(Pair {
        moof: out.finish(),
        data,
    }))
}

#[cfg(test)]
mod tests;
