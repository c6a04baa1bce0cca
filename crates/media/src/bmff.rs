//! ISO Base Media File Format (ISO/IEC 14496-12) box structure, and the bit reader
//! of the codec configurations those boxes carry: the one place in mediamesh that
//! reads and writes MP4 box headers, box sizes and big-endian fields.
//!
//! What it is for: every MP4 reader and writer of the workspace stands on it: the
//! `moov` sample-table reader ([`crate::mp4`]), the CMAF muxer ([`crate::fmp4`]),
//! the per-track splitter ([`crate::split`]), the H.264/AAC configuration parsers
//! ([`crate::codec`]) and the edge ladder's fMP4 walking. It gives:
//!
//! - [`BoxHeader`]: one box header: 32-bit size, 64-bit `largesize` (size 1), and
//!   size 0 meaning "to the end of the enclosing buffer". Parsed from a prefix of
//!   at most 16 bytes, so a caller can walk a file it has not loaded.
//! - [`Boxes`] and [`BoxRef`]: a sans-IO, zero-copy iterator over the boxes of a
//!   buffer, with offsets relative to the first buffer walked (so rewriters can
//!   patch absolute offsets), a nesting bound ([`MAX_DEPTH`]), an optional
//!   per-level box limit ([`Boxes::limit`]) and an optional whole-parse
//!   [`Budget`]; [`Boxes::find`], [`Boxes::find_all`] and [`Boxes::find_path`]
//!   look children up by type or path.
//! - [`Reader`]: a bounds-checked big-endian cursor over a payload: integers,
//!   full-box version and flags, counted tables, MPEG-4 descriptors (`esds`).
//! - [`Writer`]: appends boxes to one buffer and patches each size when the box
//!   is closed; full-box headers, known-size headers that switch to `largesize`
//!   ([`header_len_for`]), MPEG-4 descriptor headers.
//! - [`BitReader`]: MSB-first bits and Exp-Golomb codes (H.264 SPS, AAC
//!   AudioSpecificConfig).
//! - [`tfhd`] and [`trun`]: the flag bits of the fragment boxes both the muxer and
//!   the splitter use.
//!
//! What it is not: no I/O, and no object model of box types (there is no `Mvhd`
//! struct): each reader decodes the fields it needs with a [`Reader`], and knows
//! which boxes are containers (a box's payload is only walked when the caller asks
//! for its children). `uuid` boxes are not special-cased: their 16-byte user type
//! is the start of the payload. It does not decode video or audio.
//!
//! Hostile input gives an `Err`, never a panic: every read is bounds-checked,
//! declared sizes are checked against the bytes present (a 64-bit `largesize`
//! beyond the buffer is an [`BoxError::Overrun`], never a wrap-around), the
//! iterators stop at the first error, nesting is bounded by [`MAX_DEPTH`] and a
//! whole parse can be bounded by a [`Budget`] of boxes. Nothing is allocated from
//! a declared size.
//!
//! Why our own code rather than a crate: `mp4-atom` and `mp4` decode boxes into
//! owned, typed structs and write them back from those structs; our readers need
//! zero-copy slices with their byte offsets (the splitter copies unknown boxes byte
//! for byte and patches `trun` data offsets; the ladder compares `avcC` payloads),
//! a header read from the first 16 bytes of a file the VOD path has not loaded, and
//! the exact leniency each reader already had (trailing padding in `moov`, none in
//! fragments). `bitstream-io` would cover the bit reader, but the few dozen lines we
//! need (MSB-first bits, Exp-Golomb bounded to 32 bits) do not justify a dependency.
//! The code was already ours, in five places; this module is that code in one
//! place, with no new dependency.

use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};

/// A four-character box type, e.g. `*b"moov"`.
pub type FourCc = [u8; 4];

/// Deepest nesting level a [`Boxes`] iterator reads: top-level boxes are level 0,
/// their children level 1, and so on. Real files nest about 10 levels deep
/// (`moov/trak/mdia/minf/stbl/stsd/mp4a/wave/esds`); a deeper walk is hostile input
/// and gets [`BoxError::TooDeep`], which bounds any recursive walker.
pub const MAX_DEPTH: u32 = 16;

/// What was wrong with the box structure or a field. Every malformed or hostile
/// input maps to one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoxError {
    /// A field or table ran past the end of its payload; names what was read.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Fewer bytes remain than a box header needs (8, or 16 with `largesize`).
    #[error("truncated box header")]
    TruncatedHeader,
    /// A header declares a size smaller than the header itself.
    #[error("box '{}' has invalid size {size}", .kind.escape_ascii())]
    InvalidSize { kind: FourCc, size: u64 },
    /// A box declares more bytes than its parent (or buffer) holds.
    #[error("box '{}' declares {size} bytes but only {available} are available", .kind.escape_ascii())]
    Overrun {
        kind: FourCc,
        size: u64,
        available: u64,
    },
    /// Boxes nest deeper than [`MAX_DEPTH`].
    #[error("boxes nested deeper than {0} levels")]
    TooDeep(u32),
    /// More boxes than a [`Boxes::limit`] or a [`Budget`] allows.
    #[error("more than {0} boxes")]
    TooManyBoxes(u64),
    /// A field holds a value this module cannot represent.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A written box is larger than its 32-bit size field can say.
    #[error("box '{}' is larger than 4 GiB", .0.escape_ascii())]
    TooLarge(FourCc),
}

// ---------------------------------------------------------------------------
// Box headers.

/// A parsed box header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxHeader {
    /// The four-character box type.
    pub kind: FourCc,
    /// Header length: 8, or 16 when a 64-bit `largesize` follows the type.
    pub header_len: u8,
    /// Total size including the header; `None` when the size field is 0,
    /// meaning the box extends to the end of the file (or enclosing box).
    pub size: Option<u64>,
}

impl BoxHeader {
    /// Parses a box header at the start of `buf` (needs up to 16 bytes).
    /// `Ok(None)` if `buf` is too short to tell. A declared size smaller than the
    /// header itself is [`BoxError::InvalidSize`].
    pub fn parse(buf: &[u8]) -> Result<Option<BoxHeader>, BoxError> {
        let (Some(size32), Some(kind)) = (array_at::<4>(buf, 0), array_at::<4>(buf, 4)) else {
            return Ok(None);
        };
        match u32::from_be_bytes(size32) {
            0 => Ok(Some(BoxHeader {
                kind,
                header_len: 8,
                size: None,
            })),
            1 => {
                let Some(large) = u64_at(buf, 8) else {
                    return Ok(None);
                };
                if large < 16 {
                    return Err(BoxError::InvalidSize { kind, size: large });
                }
                Ok(Some(BoxHeader {
                    kind,
                    header_len: 16,
                    size: Some(large),
                }))
            }
            s if s < 8 => Err(BoxError::InvalidSize {
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

    /// The box's total length when `available` bytes remain from its start: its
    /// declared size (size 0: all of `available`), or [`BoxError::Overrun`].
    pub fn len_within(&self, available: usize) -> Result<usize, BoxError> {
        let Some(size) = self.size else {
            return Ok(available);
        };
        match usize::try_from(size) {
            Ok(s) if s <= available => Ok(s),
            _ => Err(BoxError::Overrun {
                kind: self.kind,
                size,
                available: available as u64,
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Walking boxes.

/// A count of boxes shared by every iterator of one parse (give each the same
/// budget with [`Boxes::budget`]), so hostile input cannot make the parse visit
/// more than `max_boxes` boxes in all.
#[derive(Debug)]
pub struct Budget {
    max_boxes: u64,
    seen: Cell<u64>,
}

impl Budget {
    /// A budget of `max_boxes` boxes.
    pub fn new(max_boxes: u64) -> Self {
        Budget {
            max_boxes,
            seen: Cell::new(0),
        }
    }

    /// Boxes read so far.
    pub fn seen(&self) -> u64 {
        self.seen.get()
    }

    fn spend(&self) -> Result<(), BoxError> {
        let seen = self.seen.get().saturating_add(1);
        if seen > self.max_boxes {
            return Err(BoxError::TooManyBoxes(self.max_boxes));
        }
        self.seen.set(seen);
        Ok(())
    }
}

/// One box inside a buffer being walked. Offsets are relative to the first buffer
/// given to [`Boxes::new`] (children keep counting from there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef<'a> {
    /// The four-character box type.
    pub kind: FourCc,
    offset: usize,
    header_len: u8,
    bytes: &'a [u8],
    depth: u32,
}

impl<'a> BoxRef<'a> {
    /// Offset of the box's first header byte.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Offset of the first byte after the box.
    pub fn end(&self) -> usize {
        self.offset.saturating_add(self.bytes.len())
    }

    /// Offset of the payload's first byte.
    pub fn payload_offset(&self) -> usize {
        self.offset.saturating_add(usize::from(self.header_len))
    }

    /// Header length: 8, or 16 with `largesize`.
    pub fn header_len(&self) -> usize {
        usize::from(self.header_len)
    }

    /// Total length, header included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Never true: a box has at least its header. Here for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Nesting level: 0 for the boxes of the first buffer walked.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The whole box, header included, as it is in the input.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The payload (after the header).
    pub fn payload(&self) -> &'a [u8] {
        // The header length is at most the box length (checked when read).
        self.bytes
            .get(usize::from(self.header_len)..)
            .unwrap_or(&[])
    }

    /// A [`Reader`] over the payload; `what` names it in truncation errors.
    pub fn reader(&self, what: &'static str) -> Reader<'a> {
        Reader::new(self.payload(), what)
    }

    /// The boxes of the payload, one level deeper.
    pub fn children(&self) -> Boxes<'a, 'static> {
        Boxes {
            rest: self.payload(),
            offset: self.payload_offset(),
            depth: self.depth.saturating_add(1),
            budget: None,
            max: u64::MAX,
            count: 0,
            padding: false,
        }
    }

    /// The boxes of the payload after its first `skip` bytes (the fields of a full
    /// box, `stsd` or a sample entry); [`BoxError::Truncated`] if the payload is
    /// shorter than `skip`.
    pub fn children_after(&self, skip: usize) -> Result<Boxes<'a, 'static>, BoxError> {
        let mut kids = self.children();
        kids.rest = kids
            .rest
            .get(skip..)
            .ok_or(BoxError::Truncated("box fields before its children"))?;
        kids.offset = kids.offset.saturating_add(skip);
        Ok(kids)
    }

    /// The first descendant along `path` (`[b"mdia", b"minf", b"stbl"]`), checking
    /// every level it walks through as [`Boxes::find`] does.
    pub fn find_path(&self, path: &[&FourCc]) -> Result<Option<BoxRef<'a>>, BoxError> {
        let mut at = *self;
        for kind in path {
            at = match at.children().find(kind)? {
                Some(b) => b,
                None => return Ok(None),
            };
        }
        Ok(Some(at))
    }
}

/// Iterates the boxes of a buffer (a file, or the payload of a container box),
/// yielding each as a [`BoxRef`]. Stops after the first error.
///
/// By default the boxes must fill the buffer exactly: fewer than 8 trailing bytes
/// are a [`BoxError::TruncatedHeader`]; [`Boxes::allow_padding`] ignores them
/// instead (some muxers end containers with a 32-bit zero).
#[derive(Debug, Clone)]
pub struct Boxes<'a, 'b> {
    rest: &'a [u8],
    offset: usize,
    depth: u32,
    budget: Option<&'b Budget>,
    max: u64,
    count: u64,
    padding: bool,
}

impl<'a> Boxes<'a, 'static> {
    /// The top-level boxes of `buf` (offsets count from `buf[0]`, depth 0).
    pub fn new(buf: &'a [u8]) -> Self {
        Boxes {
            rest: buf,
            offset: 0,
            depth: 0,
            budget: None,
            max: u64::MAX,
            count: 0,
            padding: false,
        }
    }
}

impl<'a, 'b> Boxes<'a, 'b> {
    /// Counts every box read against `budget` (shared by the iterators of one parse).
    pub fn budget<'c>(self, budget: &'c Budget) -> Boxes<'a, 'c> {
        Boxes {
            rest: self.rest,
            offset: self.offset,
            depth: self.depth,
            budget: Some(budget),
            max: self.max,
            count: self.count,
            padding: self.padding,
        }
    }

    /// At most `max` boxes at this level; one more is [`BoxError::TooManyBoxes`].
    pub fn limit(mut self, max: u64) -> Self {
        self.max = max;
        self
    }

    /// Ignore fewer than 8 trailing bytes instead of reporting a truncated header.
    pub fn allow_padding(mut self) -> Self {
        self.padding = true;
        self
    }

    /// The first box of type `kind` at this level. The whole level is read, so a
    /// broken box after the match is still an error: a reader never acts on a box
    /// list it could not read to its end.
    pub fn find(self, kind: &FourCc) -> Result<Option<BoxRef<'a>>, BoxError> {
        let [found] = self.find_all([kind])?;
        Ok(found)
    }

    /// The first box of each listed type, in one pass over the whole level (see
    /// [`Boxes::find`]).
    pub fn find_all<const N: usize>(
        self,
        kinds: [&FourCc; N],
    ) -> Result<[Option<BoxRef<'a>>; N], BoxError> {
        let mut found = [None; N];
        for b in self {
            let b = b?;
            for (slot, k) in found.iter_mut().zip(kinds.iter()) {
                if slot.is_none() && b.kind == **k {
                    *slot = Some(b);
                }
            }
        }
        Ok(found)
    }

    /// The first box along `path` (`[b"moov", b"trak"]`), reading each level it
    /// walks through whole (see [`Boxes::find`]); every level has this iterator's
    /// limit, padding rule and budget.
    pub fn find_path(self, path: &[&FourCc]) -> Result<Option<BoxRef<'a>>, BoxError> {
        if path.len() > MAX_DEPTH as usize + 1 {
            return Err(BoxError::TooDeep(MAX_DEPTH));
        }
        let Some((first, rest)) = path.split_first() else {
            return Ok(None);
        };
        let (max, padding, budget) = (self.max, self.padding, self.budget);
        let mut at = match self.find(first)? {
            Some(b) => b,
            None => return Ok(None),
        };
        for kind in rest {
            let mut kids = at.children().limit(max);
            kids.padding = padding;
            let kids = match budget {
                Some(b) => kids.budget(b),
                None => kids,
            };
            at = match kids.find(kind)? {
                Some(b) => b,
                None => return Ok(None),
            };
        }
        Ok(Some(at))
    }

    fn read_one(&mut self) -> Result<BoxRef<'a>, BoxError> {
        if self.depth > MAX_DEPTH {
            return Err(BoxError::TooDeep(MAX_DEPTH));
        }
        if let Some(budget) = self.budget {
            budget.spend()?;
        }
        self.count = self.count.saturating_add(1);
        if self.count > self.max {
            return Err(BoxError::TooManyBoxes(self.max));
        }
        let header = BoxHeader::parse(self.rest)?.ok_or(BoxError::TruncatedHeader)?;
        let len = header.len_within(self.rest.len())?;
        let (Some(bytes), Some(tail)) = (self.rest.get(..len), self.rest.get(len..)) else {
            return Err(BoxError::TruncatedHeader);
        };
        let b = BoxRef {
            kind: header.kind,
            offset: self.offset,
            header_len: header.header_len,
            bytes,
            depth: self.depth,
        };
        self.rest = tail;
        self.offset = self.offset.saturating_add(len);
        Ok(b)
    }
}

impl<'a> Iterator for Boxes<'a, '_> {
    type Item = Result<BoxRef<'a>, BoxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || (self.padding && self.rest.len() < 8) {
            return None;
        }
        let r = self.read_one();
        if r.is_err() {
            self.rest = &[];
        }
        Some(r)
    }
}

// ---------------------------------------------------------------------------
// Reading fields.

/// `N` bytes at `at`, or `None` if out of range.
pub fn array_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Big-endian `u16` at `at`, or `None` if out of range.
pub fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    array_at(buf, at).map(u16::from_be_bytes)
}

/// Big-endian `u32` at `at`, or `None` if out of range.
pub fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    array_at(buf, at).map(u32::from_be_bytes)
}

/// Big-endian `u64` at `at`, or `None` if out of range.
pub fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    array_at(buf, at).map(u64::from_be_bytes)
}

/// A bounds-checked big-endian cursor over a payload. Every read past the end is
/// [`BoxError::Truncated`] naming what is being read (set with [`Reader::new`] or
/// [`Reader::what`]).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`; `what` names it in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    /// Names the next reads in errors (e.g. the field being read).
    pub fn what(&mut self, what: &'static str) -> &mut Self {
        self.what = what;
        self
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.rest().len()
    }

    /// The bytes left, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], BoxError> {
        let out = self.rest().get(..n).ok_or(BoxError::Truncated(self.what))?;
        self.pos = self.pos.saturating_add(n);
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), BoxError> {
        self.take(n).map(|_| ())
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], BoxError> {
        let what = self.what;
        self.take(N)?
            .try_into()
            .map_err(|_| BoxError::Truncated(what))
    }

    pub fn u8(&mut self) -> Result<u8, BoxError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub fn u16(&mut self) -> Result<u16, BoxError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, BoxError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, BoxError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A full box's version (8 bits) and flags (24 bits).
    pub fn full_header(&mut self) -> Result<(u8, u32), BoxError> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// A `u32` entry count and the `count * entry_size` bytes of table that must
    /// follow, checked present before anyone allocates for them.
    pub fn table(&mut self, entry_size: usize) -> Result<(usize, &'a [u8]), BoxError> {
        let count = self.u32()?;
        let count = usize::try_from(count).map_err(|_| BoxError::Truncated(self.what))?;
        let len = count
            .checked_mul(entry_size)
            .ok_or(BoxError::Truncated(self.what))?;
        Ok((count, self.take(len)?))
    }

    /// One MPEG-4 descriptor (ISO/IEC 14496-1 §8.3.3): tag, a size of 1-4 bytes
    /// (7 bits each, high bit = more follow), body.
    pub fn descriptor(&mut self) -> Result<(u8, &'a [u8]), BoxError> {
        let tag = self.u8()?;
        let mut len: usize = 0;
        for _ in 0..4 {
            let b = self.u8()?;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                return Ok((tag, self.take(len)?));
            }
        }
        Err(BoxError::Invalid("descriptor length longer than 4 bytes"))
    }
}

// ---------------------------------------------------------------------------
// Writing boxes.

/// Header length of a box with `payload_len` bytes written by [`Writer::header`]:
/// 8, or 16 when the size needs the 64-bit `largesize`.
pub const fn header_len_for(payload_len: u64) -> usize {
    if payload_len.saturating_add(8) > u32::MAX as u64 {
        16
    } else {
        8
    }
}

/// Bytes of the size field of an MPEG-4 descriptor with a `body`-byte body.
fn descriptor_size_len(body: usize) -> usize {
    match body {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        _ => 4,
    }
}

/// Total length (tag + size field + body) of an MPEG-4 descriptor as
/// [`Writer::descriptor_header`] writes it.
pub fn descriptor_len(body: usize) -> usize {
    1 + descriptor_size_len(body) + body
}

/// A box opened by [`Writer::begin`], to be closed by [`Writer::end`].
#[must_use = "close the box with Writer::end"]
#[derive(Debug)]
pub struct OpenBox {
    start: usize,
    kind: FourCc,
}

/// Appends boxes to one buffer. A box is opened, its fields and children are
/// written, and its 32-bit size is patched in when it is closed.
#[derive(Debug, Default)]
pub struct Writer {
    buf: BytesMut,
}

impl Writer {
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: BytesMut::with_capacity(n),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Opens a box: writes a size placeholder and the type.
    pub fn begin(&mut self, kind: &FourCc) -> OpenBox {
        let start = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_slice(kind);
        OpenBox { start, kind: *kind }
    }

    /// Opens a full box: [`Writer::begin`], then version and 24-bit flags.
    pub fn begin_full(&mut self, kind: &FourCc, version: u8, flags: u32) -> OpenBox {
        let open = self.begin(kind);
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        open
    }

    /// Closes a box, patching its size. A box larger than 4 GiB gets size
    /// `u32::MAX` and the error [`BoxError::TooLarge`].
    pub fn end(&mut self, open: OpenBox) -> Result<(), BoxError> {
        let size = u32::try_from(self.buf.len().saturating_sub(open.start));
        self.patch_u32(open.start, size.unwrap_or(u32::MAX));
        size.map(|_| ()).map_err(|_| BoxError::TooLarge(open.kind))
    }

    /// Writes a box whose contents `body` writes. For builders that cannot fail:
    /// a box over 4 GiB is written with size `u32::MAX` (use [`Writer::begin`] and
    /// [`Writer::end`] to get the error instead).
    pub fn plain(&mut self, kind: &FourCc, body: impl FnOnce(&mut Self)) {
        let open = self.begin(kind);
        body(self);
        // Saturated on overflow, as documented.
        let _ = self.end(open);
    }

    /// [`Writer::plain`] for a full box with `version` and `flags`.
    pub fn full(&mut self, kind: &FourCc, version: u8, flags: u32, body: impl FnOnce(&mut Self)) {
        let open = self.begin_full(kind, version, flags);
        body(self);
        // Saturated on overflow, as documented.
        let _ = self.end(open);
    }

    /// The header of a box whose `payload_len` is known in advance (an `mdat`
    /// written piece by piece): 8 bytes, or 16 with `largesize` when the size does
    /// not fit 32 bits (see [`header_len_for`]).
    pub fn header(&mut self, kind: &FourCc, payload_len: u64) {
        if header_len_for(payload_len) == 16 {
            self.buf.put_u32(1);
            self.buf.put_slice(kind);
            self.buf.put_u64(payload_len.saturating_add(16));
        } else {
            // Fits: checked by header_len_for.
            self.buf.put_u32((payload_len + 8) as u32);
            self.buf.put_slice(kind);
        }
    }

    /// An MPEG-4 descriptor's tag and size field for a `body`-byte body (7 bits a
    /// byte, high bit = more follow). Sizes beyond 2^28 - 1 are saturated.
    pub fn descriptor_header(&mut self, tag: u8, body: usize) {
        self.buf.put_u8(tag);
        let body = body.min(0x0fff_ffff);
        let n = descriptor_size_len(body);
        for i in (0..n).rev() {
            let seven = ((body >> (7 * i)) & 0x7f) as u8;
            self.buf.put_u8(if i == 0 { seven } else { seven | 0x80 });
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }

    pub fn u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.put_slice(v);
    }

    /// `n` zero bytes.
    pub fn zeros(&mut self, n: usize) {
        self.buf.put_bytes(0, n);
    }

    /// Overwrites four already-written bytes at `at` (e.g. a `trun` data offset
    /// known only once the `moof` is complete); out of range does nothing.
    pub fn patch_u32(&mut self, at: usize, value: u32) {
        if let Some(slot) = at.checked_add(4).and_then(|end| self.buf.get_mut(at..end)) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

// ---------------------------------------------------------------------------
// Fragment box flags.

/// `tfhd` flags (ISO/IEC 14496-12 §8.8.7).
pub mod tfhd {
    pub const BASE_DATA_OFFSET: u32 = 0x00_0001;
    pub const SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
    pub const DEFAULT_SAMPLE_DURATION: u32 = 0x00_0008;
    pub const DEFAULT_SAMPLE_SIZE: u32 = 0x00_0010;
    pub const DEFAULT_SAMPLE_FLAGS: u32 = 0x00_0020;
    pub const DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
}

/// `trun` flags (ISO/IEC 14496-12 §8.8.8).
pub mod trun {
    pub const DATA_OFFSET: u32 = 0x00_0001;
    pub const FIRST_SAMPLE_FLAGS: u32 = 0x00_0004;
    pub const SAMPLE_DURATION: u32 = 0x00_0100;
    pub const SAMPLE_SIZE: u32 = 0x00_0200;
    pub const SAMPLE_FLAGS: u32 = 0x00_0400;
    pub const SAMPLE_CTS: u32 = 0x00_0800;
}

// ---------------------------------------------------------------------------
// Bits.

/// Why a [`BitReader`] read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitError {
    /// The bit string ended before the value.
    #[error("bit string ended")]
    End,
    /// An Exp-Golomb code with more than 31 leading zeros (a value beyond `u32`).
    #[error("Exp-Golomb code longer than 32 bits")]
    ExpGolombTooLong,
    /// More than 32 bits asked for at once.
    #[error("cannot read {0} bits at once (at most 32)")]
    TooWide(u32),
}

/// MSB-first bit reader with Exp-Golomb codes (ITU-T H.264 §9.1).
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// Bits consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// One bit, 0 or 1.
    pub fn bit(&mut self) -> Result<u32, BitError> {
        let byte = *self.data.get(self.pos / 8).ok_or(BitError::End)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos = self.pos.saturating_add(1);
        Ok(u32::from(bit))
    }

    /// One bit as a flag.
    pub fn flag(&mut self) -> Result<bool, BitError> {
        Ok(self.bit()? == 1)
    }

    /// `n <= 32` bits, most significant first.
    pub fn bits(&mut self, n: u32) -> Result<u32, BitError> {
        if n > 32 {
            return Err(BitError::TooWide(n));
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        // n <= 32, so this never truncates.
        Ok(v as u32)
    }

    /// Unsigned Exp-Golomb `ue(v)`; values up to 2^32 - 2.
    pub fn ue(&mut self) -> Result<u32, BitError> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(BitError::ExpGolombTooLong);
            }
        }
        let suffix = self.bits(zeros)?;
        // (1 << zeros) - 1 + suffix <= 2^32 - 2 for zeros <= 31.
        Ok(((1u64 << zeros) - 1 + u64::from(suffix)) as u32)
    }

    /// Signed Exp-Golomb `se(v)`.
    pub fn se(&mut self) -> Result<i64, BitError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests;
