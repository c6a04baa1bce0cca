//! ISO-BMFF / MP4 `moov` reader: turns the `moov` box of a progressive
//! (non-fragmented) MP4 file into per-track sample tables.
//!
//! What it is for: the origin packages an uploaded MP4 into HLS/DASH fMP4
//! segments on request (VOD), and loops the built-in demo clip as a live
//! stream. Both need, per track, the codec configuration (`avcC` payload for
//! H.264, AudioSpecificConfig for AAC) and a flat list of samples with absolute
//! file offset, size, decode time, duration, composition offset and keyframe
//! flag. [`parse_moov`] produces exactly that; the caller reads the `mdat`
//! bytes itself. [`read_box_header`] lets the caller walk the top-level boxes
//! of a file (to locate `moov` and `mdat`) without loading the whole file.
//!
//! What it is not: it does no I/O, it is not a general ISO-BMFF object model,
//! and it does not write anything. It does not read fragmented MP4 (`moof`),
//! returning [`Mp4Error::Fragmented`] for a `moov` with `mvex` and no samples.
//! Edit lists (`edts`/`elst`) are skipped, not applied: `dts` starts at 0 for
//! every track. Only the first sample description of a track is decoded
//! (`stsd` entries beyond the first, and `stsc`'s sample_description_index, are
//! ignored). Codecs other than H.264 (`avc1`/`avc3`) and AAC (`mp4a` with an
//! MPEG-4/MPEG-2 AAC object type) come back as [`SampleEntry::Unsupported`];
//! their sample tables are still read.
//!
//! Hostile input gives `Err`, never a panic: all reads are bounds-checked,
//! declared entry counts are checked against the bytes present before anything
//! is allocated, and the total number of samples, boxes and tracks is capped by
//! [`Limits`] (worst-case memory is about `max_samples * 32` bytes).

use std::cell::Cell;

use bytes::Bytes;

/// Errors from the MP4 reader. Every malformed or hostile input maps to one of
/// these; the parser never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    /// A fixed-size field or table ran past the end of its box.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A box declares a size larger than the bytes available in its parent.
    #[error("box '{}' declares {size} bytes but only {available} are available", .kind.escape_ascii())]
    BoxOverrun {
        kind: [u8; 4],
        size: u64,
        available: u64,
    },
    /// A box header declares an impossible size (smaller than the header).
    #[error("box '{}' has invalid size {size}", .kind.escape_ascii())]
    InvalidBoxSize { kind: [u8; 4], size: u64 },
    /// [`parse_moov`] was given something that does not start with a `moov` box.
    #[error("expected a 'moov' box, found '{}'", .0.escape_ascii())]
    NotMoov([u8; 4]),
    /// A box or descriptor required to build the sample tables is absent.
    #[error("missing required {0}")]
    MissingBox(&'static str),
    /// A full box has a version this reader does not know.
    #[error("unsupported version {version} of box '{}'", .kind.escape_ascii())]
    UnsupportedVersion { kind: [u8; 4], version: u8 },
    /// Structurally readable, but the values are inconsistent or invalid.
    #[error("invalid mp4: {0}")]
    Invalid(&'static str),
    /// The `moov` has `mvex` and no samples: a fragmented MP4, whose samples
    /// live in `moof` boxes this reader does not handle.
    #[error("fragmented mp4 (moov has mvex and no samples) is not supported")]
    Fragmented,
    /// One of the [`Limits`] was exceeded.
    #[error("limit exceeded: too many {0}")]
    LimitExceeded(&'static str),
}

type Result<T> = std::result::Result<T, Mp4Error>;

/// Resource caps applied by [`parse_moov_with_limits`]; [`parse_moov`] uses
/// [`Limits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total samples over all tracks (each costs ~32 bytes of memory).
    pub max_samples: u64,
    /// Total boxes visited while walking the `moov`.
    pub max_boxes: u64,
    /// Number of `trak` boxes.
    pub max_tracks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_samples: 10_000_000,
            max_boxes: 100_000,
            max_tracks: 1024,
        }
    }
}

/// A parsed box header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// The four-character box type.
    pub kind: [u8; 4],
    /// Header length: 8, or 16 when a 64-bit `largesize` follows the type.
    pub header_len: u8,
    /// Total size including the header; `None` when the size field is 0,
    /// meaning the box extends to the end of the file (or enclosing box).
    pub size: Option<u64>,
}

/// Parse a box header at the start of `buf` (needs up to 16 bytes).
/// `Ok(None)` if `buf` is too short to tell. A declared size smaller than the
/// header itself is an error. `uuid` boxes are not special-cased: their 16-byte
/// user type is left at the start of the payload.
pub fn read_box_header(buf: &[u8]) -> Result<Option<BoxHeader>> {
    let (Some(size32), Some(kind)) = (array::<4>(buf, 0), array::<4>(buf, 4)) else {
        return Ok(None);
    };
    match u32::from_be_bytes(size32) {
        0 => Ok(Some(BoxHeader {
            kind,
            header_len: 8,
            size: None,
        })),
        1 => {
            let Some(large) = array::<8>(buf, 8) else {
                return Ok(None);
            };
            let size = u64::from_be_bytes(large);
            if size < 16 {
                return Err(Mp4Error::InvalidBoxSize { kind, size });
            }
            Ok(Some(BoxHeader {
                kind,
                header_len: 16,
                size: Some(size),
            }))
        }
        s if s < 8 => Err(Mp4Error::InvalidBoxSize {
            kind,
            size: u64::from(s),
        }),
        s => Ok(Some(BoxHeader {
            kind,
            header_len: 8,
            size: Some(u64::from(s)),
        })),
    }
}

/// The codec configuration of a track (its first `stsd` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleEntry {
    /// H.264 (`avc1` or `avc3`).
    Avc {
        /// The `avcC` box payload = AVCDecoderConfigurationRecord (not validated).
        avcc: Bytes,
        width: u16,
        height: u16,
    },
    /// AAC (`mp4a` with object type 0x40, 0x66, 0x67 or 0x68).
    Aac {
        /// AudioSpecificConfig from the esds DecSpecificInfo (not validated).
        asc: Bytes,
        /// The AudioSpecificConfig channelConfiguration when non-zero, else
        /// the sample entry's channelcount.
        channels: u16,
        /// The sample entry's samplerate (output rate, as in the container);
        /// the AudioSpecificConfig sampling frequency if the entry says 0.
        sample_rate: u32,
    },
    /// Any other sample entry type (or `mp4a` carrying a non-AAC codec).
    Unsupported([u8; 4]),
}

/// Track type, from the `hdlr` handler type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// `vide`
    Video,
    /// `soun`
    Audio,
    /// anything else
    Other,
}

/// One sample (access unit) of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleInfo {
    /// Absolute file offset (from `stco`/`co64`).
    pub offset: u64,
    pub size: u32,
    /// Decode time in track timescale, accumulated from `stts`, starting at 0.
    pub dts: u64,
    pub duration: u32,
    /// Composition offset (pts - dts) from `ctts`; 0 without `ctts`.
    pub cts_offset: i32,
    /// Sync sample per `stss`; every sample is a keyframe when `stss` is absent.
    pub keyframe: bool,
}

/// One `trak`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4Track {
    /// `tkhd` track_ID.
    pub id: u32,
    pub kind: TrackKind,
    /// `mdhd` timescale (never 0).
    pub timescale: u32,
    /// `mdhd` duration in track timescale, as stored (all-ones means unknown).
    pub duration: u64,
    pub entry: SampleEntry,
    pub samples: Vec<SampleInfo>,
}

/// The parsed `moov`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mp4File {
    /// `mvhd` timescale (never 0).
    pub timescale: u32,
    /// `mvhd` duration in movie timescale, as stored.
    pub duration: u64,
    /// Tracks in file order.
    pub tracks: Vec<Mp4Track>,
}

/// Parse the payload-including `moov` box bytes (the whole box, header
/// included) of a progressive MP4. Bytes after the end of the `moov` box are
/// ignored; a `moov` whose size field is 0 extends to the end of the slice.
pub fn parse_moov(moov: &[u8]) -> Result<Mp4File> {
    parse_moov_with_limits(moov, &Limits::default())
}

/// [`parse_moov`] with explicit resource limits.
pub fn parse_moov_with_limits(moov: &[u8], limits: &Limits) -> Result<Mp4File> {
    let ctx = Ctx {
        limits: *limits,
        boxes: Cell::new(0),
        samples: Cell::new(0),
    };
    let header = read_box_header(moov)?.ok_or(Mp4Error::Truncated("moov box header"))?;
    if header.kind != *b"moov" {
        return Err(Mp4Error::NotMoov(header.kind));
    }
    let (_, payload) = ctx
        .children(moov)
        .next()
        .ok_or(Mp4Error::Truncated("moov box header"))??;

    let mut mvhd = None;
    let mut has_mvex = false;
    let mut tracks = Vec::new();
    for child in ctx.children(payload) {
        let (kind, body) = child?;
        match &kind {
            b"mvhd" if mvhd.is_none() => mvhd = Some(parse_mvhd(body)?),
            b"trak" => {
                if tracks.len() >= ctx.limits.max_tracks {
                    return Err(Mp4Error::LimitExceeded("tracks"));
                }
                tracks.push(parse_trak(body, &ctx)?);
            }
            b"mvex" => has_mvex = true,
            _ => {}
        }
    }
    let (timescale, duration) = mvhd.ok_or(Mp4Error::MissingBox("mvhd box"))?;
    if has_mvex && tracks.iter().all(|t| t.samples.is_empty()) {
        return Err(Mp4Error::Fragmented);
    }
    Ok(Mp4File {
        timescale,
        duration,
        tracks,
    })
}

// ---------------------------------------------------------------------------
// Low-level reading helpers.

/// `N` bytes at `at`, or `None` if out of range.
fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// A bounds-checked big-endian cursor over one box payload.
struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Mp4Error::Truncated(self.what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn skip(&mut self, n: usize) -> Result<()> {
        self.take(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let what = self.what;
        self.take(N)?
            .try_into()
            .map_err(|_| Mp4Error::Truncated(what))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// FullBox version and flags.
    fn full_header(&mut self) -> Result<(u8, u32)> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// Read a u32 entry count and return the table of `count * entry_size`
    /// bytes that must follow, checking it is present before anyone allocates.
    fn table(&mut self, entry_size: usize) -> Result<(usize, &'a [u8])> {
        let count = self.u32()?;
        let count = usize::try_from(count).map_err(|_| Mp4Error::Truncated(self.what))?;
        let len = count
            .checked_mul(entry_size)
            .ok_or(Mp4Error::Truncated(self.what))?;
        Ok((count, self.take(len)?))
    }
}

/// Per-parse state: limits and running totals.
struct Ctx {
    limits: Limits,
    boxes: Cell<u64>,
    samples: Cell<u64>,
}

impl Ctx {
    fn children<'a, 'c>(&'c self, payload: &'a [u8]) -> Children<'a, 'c> {
        Children {
            rest: payload,
            ctx: self,
        }
    }

    fn reserve_samples(&self, n: u64) -> Result<()> {
        let total = self.samples.get().saturating_add(n);
        if total > self.limits.max_samples {
            return Err(Mp4Error::LimitExceeded("samples"));
        }
        self.samples.set(total);
        Ok(())
    }
}

/// Iterates the child boxes in a container payload, yielding (type, payload).
/// Fewer than 8 trailing bytes are ignored (some muxers pad containers with a
/// 32-bit zero terminator). Stops after the first error.
struct Children<'a, 'c> {
    rest: &'a [u8],
    ctx: &'c Ctx,
}

impl<'a> Children<'a, '_> {
    fn next_box(&mut self) -> Result<([u8; 4], &'a [u8])> {
        let seen = self.ctx.boxes.get().saturating_add(1);
        if seen > self.ctx.limits.max_boxes {
            return Err(Mp4Error::LimitExceeded("boxes"));
        }
        self.ctx.boxes.set(seen);

        let h = read_box_header(self.rest)?.ok_or(Mp4Error::Truncated("box header"))?;
        let available = self.rest.len();
        let total = match h.size {
            None => available,
            Some(size) => match usize::try_from(size) {
                Ok(s) if s <= available => s,
                _ => {
                    return Err(Mp4Error::BoxOverrun {
                        kind: h.kind,
                        size,
                        available: available as u64,
                    })
                }
            },
        };
        let (whole, tail) = self.rest.split_at(total);
        let payload = whole
            .get(usize::from(h.header_len)..)
            .ok_or(Mp4Error::Truncated("box header"))?;
        self.rest = tail;
        Ok((h.kind, payload))
    }
}

impl<'a> Iterator for Children<'a, '_> {
    type Item = Result<([u8; 4], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 8 {
            return None;
        }
        let r = self.next_box();
        if r.is_err() {
            self.rest = &[];
        }
        Some(r)
    }
}

/// Collect the first child box of each listed type in one pass.
fn collect_children<'a, const N: usize>(
    ctx: &Ctx,
    payload: &'a [u8],
    kinds: [&[u8; 4]; N],
) -> Result<[Option<&'a [u8]>; N]> {
    let mut found = [None; N];
    for child in ctx.children(payload) {
        let (kind, body) = child?;
        for (slot, k) in found.iter_mut().zip(kinds.iter()) {
            if slot.is_none() && kind == **k {
                *slot = Some(body);
            }
        }
    }
    Ok(found)
}

// ---------------------------------------------------------------------------
// Header boxes.

/// (timescale, duration) from `mvhd` or `mdhd`, which share this layout.
fn parse_time_header(body: &[u8], kind: [u8; 4], what: &'static str) -> Result<(u32, u64)> {
    let mut r = Reader::new(body, what);
    let (version, _) = r.full_header()?;
    let (timescale, duration) = match version {
        0 => {
            r.skip(8)?; // creation + modification time
            (r.u32()?, u64::from(r.u32()?))
        }
        1 => {
            r.skip(16)?;
            (r.u32()?, r.u64()?)
        }
        version => return Err(Mp4Error::UnsupportedVersion { kind, version }),
    };
    if timescale == 0 {
        return Err(Mp4Error::Invalid("timescale is 0"));
    }
    Ok((timescale, duration))
}

fn parse_mvhd(body: &[u8]) -> Result<(u32, u64)> {
    parse_time_header(body, *b"mvhd", "mvhd box")
}

fn parse_tkhd(body: &[u8]) -> Result<u32> {
    let mut r = Reader::new(body, "tkhd box");
    let (version, _) = r.full_header()?;
    match version {
        0 => r.skip(8)?,
        1 => r.skip(16)?,
        version => {
            return Err(Mp4Error::UnsupportedVersion {
                kind: *b"tkhd",
                version,
            })
        }
    }
    r.u32()
}

fn parse_hdlr(body: &[u8]) -> Result<TrackKind> {
    let mut r = Reader::new(body, "hdlr box");
    r.full_header()?;
    r.skip(4)?; // pre_defined
    Ok(match &r.array::<4>()? {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        _ => TrackKind::Other,
    })
}

fn parse_trak(body: &[u8], ctx: &Ctx) -> Result<Mp4Track> {
    // edts/elst and anything else is deliberately skipped.
    let [tkhd, mdia] = collect_children(ctx, body, [b"tkhd", b"mdia"])?;
    let id = parse_tkhd(tkhd.ok_or(Mp4Error::MissingBox("tkhd box"))?)?;
    let mdia = mdia.ok_or(Mp4Error::MissingBox("mdia box"))?;

    let [mdhd, hdlr, minf] = collect_children(ctx, mdia, [b"mdhd", b"hdlr", b"minf"])?;
    let (timescale, duration) = parse_time_header(
        mdhd.ok_or(Mp4Error::MissingBox("mdhd box"))?,
        *b"mdhd",
        "mdhd box",
    )?;
    let kind = parse_hdlr(hdlr.ok_or(Mp4Error::MissingBox("hdlr box"))?)?;
    let minf = minf.ok_or(Mp4Error::MissingBox("minf box"))?;
    let [stbl] = collect_children(ctx, minf, [b"stbl"])?;
    let (entry, samples) = parse_stbl(stbl.ok_or(Mp4Error::MissingBox("stbl box"))?, ctx)?;
    Ok(Mp4Track {
        id,
        kind,
        timescale,
        duration,
        entry,
        samples,
    })
}

// ---------------------------------------------------------------------------
// Sample descriptions.

fn parse_stsd(body: &[u8], ctx: &Ctx) -> Result<SampleEntry> {
    let mut r = Reader::new(body, "stsd box");
    r.full_header()?;
    if r.u32()? == 0 {
        return Err(Mp4Error::MissingBox("stsd sample entry"));
    }
    let (kind, entry) = ctx
        .children(r.rest())
        .next()
        .ok_or(Mp4Error::MissingBox("stsd sample entry"))??;
    match &kind {
        b"avc1" | b"avc3" => parse_avc_entry(entry, ctx),
        b"mp4a" => parse_mp4a_entry(entry, ctx),
        _ => Ok(SampleEntry::Unsupported(kind)),
    }
}

fn parse_avc_entry(body: &[u8], ctx: &Ctx) -> Result<SampleEntry> {
    let mut r = Reader::new(body, "visual sample entry");
    r.skip(8 + 16)?; // SampleEntry reserved + data_reference_index; pre_defined/reserved
    let width = r.u16()?;
    let height = r.u16()?;
    r.skip(50)?; // resolutions, reserved, frame_count, compressorname, depth, pre_defined
    let [avcc] = collect_children(ctx, r.rest(), [b"avcC"])?;
    let avcc = avcc.ok_or(Mp4Error::MissingBox("avcC box"))?;
    Ok(SampleEntry::Avc {
        avcc: Bytes::copy_from_slice(avcc),
        width,
        height,
    })
}

fn parse_mp4a_entry(body: &[u8], ctx: &Ctx) -> Result<SampleEntry> {
    let mut r = Reader::new(body, "audio sample entry");
    r.skip(8)?; // SampleEntry reserved + data_reference_index
    let version = r.u16()?; // QuickTime sound description version; 0 in ISO files
    r.skip(6)?;
    let mut channels = r.u16()?;
    r.skip(6)?; // samplesize, pre_defined, reserved
    let mut sample_rate = r.u32()? >> 16;
    match version {
        0 => {}
        1 => r.skip(16)?,
        2 => {
            r.skip(4)?; // sizeOfStructOnly
                        // Float-to-int `as` saturates and maps NaN to 0.
            sample_rate = f64::from_bits(r.u64()?) as u32;
            channels = u16::try_from(r.u32()?).unwrap_or(0);
            r.skip(20)?;
        }
        _ => return Err(Mp4Error::Invalid("unknown audio sample entry version")),
    }
    let [esds, wave] = collect_children(ctx, r.rest(), [b"esds", b"wave"])?;
    let esds = match (esds, wave) {
        (Some(e), _) => e,
        (None, Some(wave)) => {
            let [inner] = collect_children(ctx, wave, [b"esds"])?;
            inner.ok_or(Mp4Error::MissingBox("esds box"))?
        }
        (None, None) => return Err(Mp4Error::MissingBox("esds box")),
    };
    let Some(asc) = parse_esds(esds)? else {
        return Ok(SampleEntry::Unsupported(*b"mp4a"));
    };
    // The entry's channelcount is often the ISO template value 2 (ffmpeg
    // writes 2 even for mono), so a non-zero ASC channelConfiguration wins.
    // The entry's samplerate is the output rate (it differs from the ASC core
    // rate for HE-AAC), so it wins unless it is 0 (rates above 65535 Hz).
    let (asc_rate, asc_channels) = asc_rate_channels(asc);
    if asc_channels != 0 {
        channels = asc_channels;
    }
    if sample_rate == 0 {
        sample_rate = asc_rate;
    }
    Ok(SampleEntry::Aac {
        asc: Bytes::copy_from_slice(asc),
        channels,
        sample_rate,
    })
}

/// Read one MPEG-4 descriptor: tag, 1-4 byte length (7 bits per byte, 0x80 =
/// more follows), body.
fn read_descriptor<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8])> {
    let tag = r.u8()?;
    let mut len: usize = 0;
    let mut done = false;
    for _ in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            done = true;
            break;
        }
    }
    if !done {
        return Err(Mp4Error::Invalid("descriptor length longer than 4 bytes"));
    }
    Ok((tag, r.take(len)?))
}

/// Find the first descriptor with `tag` among the descriptors in `buf`.
fn find_descriptor(buf: &[u8], tag: u8) -> Result<Option<&[u8]>> {
    let mut r = Reader::new(buf, "esds descriptor");
    while r.remaining() > 0 {
        let (t, body) = read_descriptor(&mut r)?;
        if t == tag {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// The AudioSpecificConfig from an `esds` payload; `None` if the stream is not
/// AAC.
fn parse_esds(body: &[u8]) -> Result<Option<&[u8]>> {
    let mut r = Reader::new(body, "esds box");
    let (version, _) = r.full_header()?;
    if version != 0 {
        return Err(Mp4Error::UnsupportedVersion {
            kind: *b"esds",
            version,
        });
    }
    let (tag, es) = read_descriptor(&mut r)?;
    if tag != 0x03 {
        return Err(Mp4Error::MissingBox("ES_Descriptor"));
    }
    let mut es = Reader::new(es, "ES_Descriptor");
    es.skip(2)?; // ES_ID
    let flags = es.u8()?;
    if flags & 0x80 != 0 {
        es.skip(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let url_len = es.u8()?;
        es.skip(usize::from(url_len))?;
    }
    if flags & 0x20 != 0 {
        es.skip(2)?; // OCR_ES_Id
    }
    let dcd =
        find_descriptor(es.rest(), 0x04)?.ok_or(Mp4Error::MissingBox("DecoderConfigDescriptor"))?;
    let mut dcd = Reader::new(dcd, "DecoderConfigDescriptor");
    let object_type = dcd.u8()?;
    // streamType/upStream, bufferSizeDB, maxBitrate, avgBitrate
    dcd.skip(12)?;
    // 0x40 MPEG-4 Audio; 0x66..=0x68 MPEG-2 AAC Main/LC/SSR.
    if !matches!(object_type, 0x40 | 0x66..=0x68) {
        return Ok(None);
    }
    let asc = find_descriptor(dcd.rest(), 0x05)?.ok_or(Mp4Error::MissingBox("DecSpecificInfo"))?;
    Ok(Some(asc))
}

/// (sampling frequency, channel configuration) from an AudioSpecificConfig,
/// best effort: zeros where it cannot be read.
fn asc_rate_channels(asc: &[u8]) -> (u32, u16) {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut bits = Bits { buf: asc, pos: 0 };
    let read = |bits: &mut Bits| -> Option<(u32, u16)> {
        if bits.read(5)? == 31 {
            bits.read(6)?;
        }
        let rate = match bits.read(4)? {
            15 => bits.read(24)?,
            i => RATES.get(usize::try_from(i).ok()?).copied().unwrap_or(0),
        };
        let channels = u16::try_from(bits.read(4)?).ok()?;
        Some((rate, channels))
    };
    read(&mut bits).unwrap_or((0, 0))
}

/// Minimal MSB-first bit reader.
struct Bits<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut v: u32 = 0;
        for _ in 0..n {
            let byte = *self.buf.get(self.pos / 8)?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos = self.pos.checked_add(1)?;
        }
        Some(v)
    }
}

// ---------------------------------------------------------------------------
// Sample tables.

/// Sample sizes from `stsz` or `stz2`, read lazily from the box bytes.
enum Sizes<'a> {
    Uniform(u32),
    /// Table with entries of 4, 8, 16 or 32 bits.
    Table {
        data: &'a [u8],
        bits: u8,
    },
}

impl Sizes<'_> {
    fn get(&self, i: usize) -> Result<u32> {
        let err = Mp4Error::Truncated("sample size table");
        match *self {
            Sizes::Uniform(s) => Ok(s),
            Sizes::Table { data, bits: 4 } => {
                let b = data.get(i / 2).ok_or(err)?;
                Ok(u32::from(if i & 1 == 0 { b >> 4 } else { b & 0x0f }))
            }
            Sizes::Table { data, bits: 8 } => data.get(i).map(|&b| u32::from(b)).ok_or(err),
            Sizes::Table { data, bits: 16 } => {
                array::<2>(data, i.checked_mul(2).ok_or(err.clone())?)
                    .map(|a| u32::from(u16::from_be_bytes(a)))
                    .ok_or(err)
            }
            Sizes::Table { data, .. } => array::<4>(data, i.checked_mul(4).ok_or(err.clone())?)
                .map(u32::from_be_bytes)
                .ok_or(err),
        }
    }
}

fn parse_stsz(body: &[u8]) -> Result<(usize, Sizes<'_>)> {
    let mut r = Reader::new(body, "stsz box");
    r.full_header()?;
    let uniform = r.u32()?;
    if uniform != 0 {
        let count = usize::try_from(r.u32()?).map_err(|_| Mp4Error::LimitExceeded("samples"))?;
        return Ok((count, Sizes::Uniform(uniform)));
    }
    let (count, data) = r.table(4)?;
    Ok((count, Sizes::Table { data, bits: 32 }))
}

fn parse_stz2(body: &[u8]) -> Result<(usize, Sizes<'_>)> {
    let mut r = Reader::new(body, "stz2 box");
    r.full_header()?;
    r.skip(3)?;
    let bits = r.u8()?;
    let count = usize::try_from(r.u32()?).map_err(|_| Mp4Error::LimitExceeded("samples"))?;
    let len = match bits {
        4 => count / 2 + count % 2,
        8 => count,
        16 => count
            .checked_mul(2)
            .ok_or(Mp4Error::Truncated("stz2 box"))?,
        _ => return Err(Mp4Error::Invalid("stz2 field_size must be 4, 8 or 16")),
    };
    let data = r.take(len)?;
    Ok((count, Sizes::Table { data, bits }))
}

/// Run-length table of (count, value) u32 pairs (`stts`, `ctts`), iterated
/// one sample at a time.
struct Runs<'a> {
    r: Reader<'a>,
    left: u32,
    value: u32,
}

impl<'a> Runs<'a> {
    fn new(table: &'a [u8], what: &'static str) -> Self {
        Runs {
            r: Reader::new(table, what),
            left: 0,
            value: 0,
        }
    }

    /// Value for the next sample, `None` when the table is exhausted.
    fn next_value(&mut self) -> Result<Option<u32>> {
        while self.left == 0 {
            if self.r.remaining() == 0 {
                return Ok(None);
            }
            self.left = self.r.u32()?;
            self.value = self.r.u32()?;
        }
        self.left -= 1;
        Ok(Some(self.value))
    }

    /// Total count over all runs, without consuming.
    fn total(&self) -> Result<u64> {
        let mut r = Reader::new(self.r.rest(), self.r.what);
        let mut total: u64 = 0;
        while r.remaining() > 0 {
            total = total.saturating_add(u64::from(r.u32()?));
            r.skip(4)?;
        }
        Ok(total)
    }
}

/// Table from a full box holding `entry count` + fixed-size entries.
fn full_box_table<'a>(
    body: &'a [u8],
    entry_size: usize,
    what: &'static str,
) -> Result<(u8, usize, &'a [u8])> {
    let mut r = Reader::new(body, what);
    let (version, _) = r.full_header()?;
    let (count, table) = r.table(entry_size)?;
    Ok((version, count, table))
}

fn parse_stbl(body: &[u8], ctx: &Ctx) -> Result<(SampleEntry, Vec<SampleInfo>)> {
    let [stsd, stts, ctts, stsc, stsz, stz2, stco, co64, stss] = collect_children(
        ctx,
        body,
        [
            b"stsd", b"stts", b"ctts", b"stsc", b"stsz", b"stz2", b"stco", b"co64", b"stss",
        ],
    )?;
    let entry = parse_stsd(stsd.ok_or(Mp4Error::MissingBox("stsd box"))?, ctx)?;

    let (count, sizes) = match (stsz, stz2) {
        (Some(b), _) => parse_stsz(b)?,
        (None, Some(b)) => parse_stz2(b)?,
        (None, None) => return Err(Mp4Error::MissingBox("stsz box")),
    };
    ctx.reserve_samples(u64::try_from(count).unwrap_or(u64::MAX))?;

    let (_, _, stts) =
        full_box_table(stts.ok_or(Mp4Error::MissingBox("stts box"))?, 8, "stts box")?;
    let mut durations = Runs::new(stts, "stts box");
    if durations.total()? < u64::try_from(count).unwrap_or(u64::MAX) {
        return Err(Mp4Error::Invalid("stts covers fewer samples than stsz"));
    }
    let mut cts = match ctts {
        Some(b) => {
            let (version, _, table) = full_box_table(b, 8, "ctts box")?;
            if version > 1 {
                return Err(Mp4Error::UnsupportedVersion {
                    kind: *b"ctts",
                    version,
                });
            }
            // v0 is unsigned, v1 signed; both are reinterpreted as i32 below.
            Some(Runs::new(table, "ctts box"))
        }
        None => None,
    };

    let (_, stsc_count, stsc) = full_box_table(
        stsc.ok_or(Mp4Error::MissingBox("stsc box"))?,
        12,
        "stsc box",
    )?;
    let (chunk_count, chunks, wide) = match (stco, co64) {
        (Some(b), _) => {
            let (_, n, t) = full_box_table(b, 4, "stco box")?;
            (n, t, false)
        }
        (None, Some(b)) => {
            let (_, n, t) = full_box_table(b, 8, "co64 box")?;
            (n, t, true)
        }
        (None, None) => return Err(Mp4Error::MissingBox("stco box")),
    };
    let chunk_offset = |i: usize| -> Result<u64> {
        let err = Mp4Error::Truncated("chunk offset table");
        if wide {
            array::<8>(chunks, i.checked_mul(8).ok_or(err.clone())?)
                .map(u64::from_be_bytes)
                .ok_or(err)
        } else {
            array::<4>(chunks, i.checked_mul(4).ok_or(err.clone())?)
                .map(|a| u64::from(u32::from_be_bytes(a)))
                .ok_or(err)
        }
    };
    let stsc_entry = |i: usize| -> Result<(u64, u32)> {
        let at = i.checked_mul(12).ok_or(Mp4Error::Truncated("stsc box"))?;
        match (array::<4>(stsc, at), array::<4>(stsc, at.saturating_add(4))) {
            (Some(first), Some(per_chunk)) => Ok((
                u64::from(u32::from_be_bytes(first)),
                u32::from_be_bytes(per_chunk),
            )),
            _ => Err(Mp4Error::Truncated("stsc box")),
        }
    };

    let mut samples = Vec::with_capacity(count);
    let mut dts: u64 = 0;
    let chunk_end = u64::try_from(chunk_count)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    // Chunks are numbered from 1. Each stsc entry covers chunks
    // [first_chunk, next entry's first_chunk), the last one up to the end.
    'entries: for i in 0..stsc_count {
        let (first, per_chunk) = stsc_entry(i)?;
        if (i == 0 && first != 1) || first == 0 {
            return Err(Mp4Error::Invalid("stsc must start at chunk 1"));
        }
        let next = if i.saturating_add(1) < stsc_count {
            let (next, _) = stsc_entry(i.saturating_add(1))?;
            if next <= first {
                return Err(Mp4Error::Invalid("stsc first_chunk not increasing"));
            }
            next.min(chunk_end)
        } else {
            chunk_end
        };
        for chunk in first..next {
            if samples.len() >= count {
                break 'entries;
            }
            let idx = usize::try_from(chunk.saturating_sub(1))
                .map_err(|_| Mp4Error::Truncated("chunk offset table"))?;
            let mut offset = chunk_offset(idx)?;
            for _ in 0..per_chunk {
                if samples.len() >= count {
                    break 'entries;
                }
                let size = sizes.get(samples.len())?;
                let duration = durations
                    .next_value()?
                    .ok_or(Mp4Error::Invalid("stts covers fewer samples than stsz"))?;
                let cts_offset = match cts.as_mut() {
                    Some(c) => c.next_value()?.unwrap_or(0) as i32,
                    None => 0,
                };
                samples.push(SampleInfo {
                    offset,
                    size,
                    dts,
                    duration,
                    cts_offset,
                    keyframe: stss.is_none(),
                });
                offset = offset
                    .checked_add(u64::from(size))
                    .ok_or(Mp4Error::Invalid("sample offset overflows"))?;
                dts = dts
                    .checked_add(u64::from(duration))
                    .ok_or(Mp4Error::Invalid("decode time overflows"))?;
            }
        }
    }
    if samples.len() < count {
        return Err(Mp4Error::Invalid("stsc/stco map fewer samples than stsz"));
    }

    if let Some(stss) = stss {
        let (_, n, table) = full_box_table(stss, 4, "stss box")?;
        let mut r = Reader::new(table, "stss box");
        for _ in 0..n {
            // Sample numbers are 1-based; out-of-range numbers are ignored.
            let number = r.u32()?;
            let idx = usize::try_from(number).ok().and_then(|n| n.checked_sub(1));
            if let Some(s) = idx.and_then(|i| samples.get_mut(i)) {
                s.keyframe = true;
            }
        }
    }
    Ok((entry, samples))
}

#[cfg(test)]
mod tests {
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
        t.entry = bx(b"hvc1", &[0; 78]);
        t.handler = *b"text";
        let f = parse_moov(&moov(&[&t], &[])).unwrap();
        assert_eq!(f.tracks[0].entry, SampleEntry::Unsupported(*b"hvc1"));
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
            b"trak", b"mdia", b"minf", b"stbl", b"stsd", b"stts", b"stsz", b"stsc", b"stco",
            b"mdhd", b"hdlr", b"tkhd",
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

    const REAL: &[u8] = include_bytes!("../tests/data/h264_aac_64x48_2s.mp4");

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
}
