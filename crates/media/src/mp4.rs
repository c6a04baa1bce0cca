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
//! Boxes, fields and bits are read with [`crate::bmff`].
//!
//! What it is not: it does no I/O, it is not a general ISO-BMFF object model
//! (box walking lives in [`crate::bmff`]), and it does not write anything. It does not read fragmented MP4 (`moof`),
//! returning [`Mp4Error::Fragmented`] for a `moov` with `mvex` and no samples.
//! Edit lists (`edts`/`elst`) are skipped, not applied: `dts` starts at 0 for
//! every track. Only the first sample description of a track is decoded
//! (`stsd` entries beyond the first, and `stsc`'s sample_description_index, are
//! ignored). Codecs other than H.264 (`avc1`/`avc3`), H.265 (`hvc1`/`hev1`), AV1
//! (`av01`) and AAC (`mp4a` with an MPEG-4/MPEG-2 AAC object type) come back as
//! [`SampleEntry::Unsupported`];
//! their sample tables are still read.
//!
//! Hostile input gives `Err`, never a panic: all reads are bounds-checked,
//! declared entry counts are checked against the bytes present before anything
//! is allocated, and the total number of samples, boxes and tracks is capped by
//! [`Limits`] (worst-case memory is about `max_samples * 32` bytes).

use std::cell::Cell;

use bytes::Bytes;

use crate::bmff::{u16_at, u32_at, u64_at, BitReader, BoxError, BoxRef, Boxes, Budget, Reader};

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

pub use crate::bmff::BoxHeader;

/// Parse a box header at the start of `buf` (needs up to 16 bytes): the
/// [`crate::bmff`] header with this reader's error type. `Ok(None)` if `buf` is
/// too short to tell. A declared size smaller than the header itself is an
/// error. `uuid` boxes are not special-cased: their 16-byte user type is left at
/// the start of the payload.
pub fn read_box_header(buf: &[u8]) -> Result<Option<BoxHeader>> {
    Ok(BoxHeader::parse(buf)?)
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
    /// H.265 (`hvc1` or `hev1`).
    Hevc {
        /// The `hvcC` box payload = HEVCDecoderConfigurationRecord (not validated).
        hvcc: Bytes,
        width: u16,
        height: u16,
    },
    /// AV1 (`av01`).
    Av1 {
        /// The `av1C` box payload = AV1CodecConfigurationRecord (not validated).
        av1c: Bytes,
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
        boxes: Budget::new(limits.max_boxes),
        samples: Cell::new(0),
    };
    let header = read_box_header(moov)?.ok_or(Mp4Error::Truncated("moov box header"))?;
    if header.kind != *b"moov" {
        return Err(Mp4Error::NotMoov(header.kind));
    }
    let moov = Boxes::new(moov)
        .budget(&ctx.boxes)
        .allow_padding()
        .next()
        .ok_or(Mp4Error::Truncated("moov box header"))??;

    let mut mvhd = None;
    let mut has_mvex = false;
    let mut tracks = Vec::new();
    for child in ctx.children(&moov) {
        let child = child?;
        match &child.kind {
            b"mvhd" if mvhd.is_none() => mvhd = Some(parse_mvhd(child.payload())?),
            b"trak" => {
                if tracks.len() >= ctx.limits.max_tracks {
                    return Err(Mp4Error::LimitExceeded("tracks"));
                }
                tracks.push(parse_trak(&child, &ctx)?);
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
// Walking the boxes.

impl From<BoxError> for Mp4Error {
    fn from(e: BoxError) -> Self {
        match e {
            BoxError::Truncated(what) => Mp4Error::Truncated(what),
            BoxError::TruncatedHeader => Mp4Error::Truncated("box header"),
            BoxError::InvalidSize { kind, size } => Mp4Error::InvalidBoxSize { kind, size },
            BoxError::Overrun {
                kind,
                size,
                available,
            } => Mp4Error::BoxOverrun {
                kind,
                size,
                available,
            },
            BoxError::TooManyBoxes(_) => Mp4Error::LimitExceeded("boxes"),
            BoxError::TooDeep(_) => Mp4Error::LimitExceeded("nesting levels"),
            BoxError::Invalid(what) => Mp4Error::Invalid(what),
            BoxError::TooLarge(_) => Mp4Error::Invalid("box larger than 4 GiB"),
        }
    }
}

/// Per-parse state: limits and running totals.
struct Ctx {
    limits: Limits,
    boxes: Budget,
    samples: Cell<u64>,
}

impl Ctx {
    /// The child boxes of `b`, counted against the box budget. Fewer than 8
    /// trailing bytes are ignored (some muxers pad containers with a 32-bit
    /// zero terminator).
    fn children<'a>(&self, b: &BoxRef<'a>) -> Boxes<'a, '_> {
        b.children().budget(&self.boxes).allow_padding()
    }

    /// [`Ctx::children`] after the first `skip` payload bytes.
    fn children_after<'a>(&self, b: &BoxRef<'a>, skip: usize) -> Result<Boxes<'a, '_>> {
        Ok(b.children_after(skip)?.budget(&self.boxes).allow_padding())
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
    Ok(r.u32()?)
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

fn parse_trak(trak: &BoxRef<'_>, ctx: &Ctx) -> Result<Mp4Track> {
    // edts/elst and anything else is deliberately skipped.
    let [tkhd, mdia] = ctx.children(trak).find_all([b"tkhd", b"mdia"])?;
    let id = parse_tkhd(tkhd.ok_or(Mp4Error::MissingBox("tkhd box"))?.payload())?;
    let mdia = mdia.ok_or(Mp4Error::MissingBox("mdia box"))?;

    let [mdhd, hdlr, minf] = ctx.children(&mdia).find_all([b"mdhd", b"hdlr", b"minf"])?;
    let (timescale, duration) = parse_time_header(
        mdhd.ok_or(Mp4Error::MissingBox("mdhd box"))?.payload(),
        *b"mdhd",
        "mdhd box",
    )?;
    let kind = parse_hdlr(hdlr.ok_or(Mp4Error::MissingBox("hdlr box"))?.payload())?;
    let minf = minf.ok_or(Mp4Error::MissingBox("minf box"))?;
    let [stbl] = ctx.children(&minf).find_all([b"stbl"])?;
    let (entry, samples) = parse_stbl(&stbl.ok_or(Mp4Error::MissingBox("stbl box"))?, ctx)?;
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

fn parse_stsd(stsd: &BoxRef<'_>, ctx: &Ctx) -> Result<SampleEntry> {
    let mut r = stsd.reader("stsd box");
    r.full_header()?;
    if r.u32()? == 0 {
        return Err(Mp4Error::MissingBox("stsd sample entry"));
    }
    let entry = ctx
        .children_after(stsd, r.position())?
        .next()
        .ok_or(Mp4Error::MissingBox("stsd sample entry"))??;
    match &entry.kind {
        b"avc1" | b"avc3" => parse_visual_entry(&entry, ctx, b"avcC"),
        b"hvc1" | b"hev1" => parse_visual_entry(&entry, ctx, b"hvcC"),
        b"av01" => parse_visual_entry(&entry, ctx, b"av1C"),
        b"mp4a" => parse_mp4a_entry(&entry, ctx),
        _ => Ok(SampleEntry::Unsupported(entry.kind)),
    }
}

/// A visual sample entry and its configuration box `config` (`avcC`, `hvcC`, `av1C`).
fn parse_visual_entry(entry: &BoxRef<'_>, ctx: &Ctx, config: &[u8; 4]) -> Result<SampleEntry> {
    let mut r = entry.reader("visual sample entry");
    r.skip(8 + 16)?; // SampleEntry reserved + data_reference_index; pre_defined/reserved
    let width = r.u16()?;
    let height = r.u16()?;
    r.skip(50)?; // resolutions, reserved, frame_count, compressorname, depth, pre_defined
    let [found] = ctx
        .children_after(entry, r.position())?
        .find_all([config])?;
    let record = match found {
        Some(b) => Bytes::copy_from_slice(b.payload()),
        None => {
            return Err(Mp4Error::MissingBox(match config {
                b"hvcC" => "hvcC box",
                b"av1C" => "av1C box",
                _ => "avcC box",
            }))
        }
    };
    Ok(match config {
        b"hvcC" => SampleEntry::Hevc {
            hvcc: record,
            width,
            height,
        },
        b"av1C" => SampleEntry::Av1 {
            av1c: record,
            width,
            height,
        },
        _ => SampleEntry::Avc {
            avcc: record,
            width,
            height,
        },
    })
}

fn parse_mp4a_entry(entry: &BoxRef<'_>, ctx: &Ctx) -> Result<SampleEntry> {
    let mut r = entry.reader("audio sample entry");
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
    let [esds, wave] = ctx
        .children_after(entry, r.position())?
        .find_all([b"esds", b"wave"])?;
    let esds = match (esds, wave) {
        (Some(e), _) => e,
        (None, Some(wave)) => {
            let [inner] = ctx.children(&wave).find_all([b"esds"])?;
            inner.ok_or(Mp4Error::MissingBox("esds box"))?
        }
        (None, None) => return Err(Mp4Error::MissingBox("esds box")),
    };
    let Some(asc) = parse_esds(esds.payload())? else {
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

/// Find the first descriptor with `tag` among the descriptors in `buf`.
fn find_descriptor(buf: &[u8], tag: u8) -> Result<Option<&[u8]>> {
    let mut r = Reader::new(buf, "esds descriptor");
    while r.remaining() > 0 {
        let (t, body) = r.descriptor()?;
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
    let (tag, es) = r.descriptor()?;
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
    let mut bits = BitReader::new(asc);
    let read = |bits: &mut BitReader| -> Option<(u32, u16)> {
        if bits.bits(5).ok()? == 31 {
            bits.bits(6).ok()?;
        }
        let rate = match bits.bits(4).ok()? {
            15 => bits.bits(24).ok()?,
            i => RATES.get(usize::try_from(i).ok()?).copied().unwrap_or(0),
        };
        let channels = u16::try_from(bits.bits(4).ok()?).ok()?;
        Some((rate, channels))
    };
    read(&mut bits).unwrap_or((0, 0))
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
            Sizes::Table { data, bits: 16 } => u16_at(data, i.checked_mul(2).ok_or(err.clone())?)
                .map(u32::from)
                .ok_or(err),
            Sizes::Table { data, .. } => {
                u32_at(data, i.checked_mul(4).ok_or(err.clone())?).ok_or(err)
            }
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
        let mut r = self.r.clone();
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

fn parse_stbl(stbl: &BoxRef<'_>, ctx: &Ctx) -> Result<(SampleEntry, Vec<SampleInfo>)> {
    let [stsd, tables @ ..] = ctx.children(stbl).find_all([
        b"stsd", b"stts", b"ctts", b"stsc", b"stsz", b"stz2", b"stco", b"co64", b"stss",
    ])?;
    let [stts, ctts, stsc, stsz, stz2, stco, co64, stss] = tables.map(|b| b.map(|b| b.payload()));
    let entry = parse_stsd(&stsd.ok_or(Mp4Error::MissingBox("stsd box"))?, ctx)?;

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
            u64_at(chunks, i.checked_mul(8).ok_or(err.clone())?).ok_or(err)
        } else {
            u32_at(chunks, i.checked_mul(4).ok_or(err.clone())?)
                .map(u64::from)
                .ok_or(err)
        }
    };
    let stsc_entry = |i: usize| -> Result<(u64, u32)> {
        let at = i.checked_mul(12).ok_or(Mp4Error::Truncated("stsc box"))?;
        match (u32_at(stsc, at), u32_at(stsc, at.saturating_add(4))) {
            (Some(first), Some(per_chunk)) => Ok((u64::from(first), per_chunk)),
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
mod tests;
