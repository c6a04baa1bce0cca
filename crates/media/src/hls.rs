//! Low-Latency HLS playlists: a typed model of Media and Multivariant
//! Playlists, a writer, a parser, and a checker for the rules of
//! draft-pantos-hls-rfc8216bis that a *server* must obey.
//!
//! What it is for: the origin builds a [`MediaPlaylist`] or
//! [`MultivariantPlaylist`] from its segment index and calls `write()`.
//! [`check_media_playlist`] verifies the numeric relationships the draft
//! demands of what we generate (target duration, part target, hold-backs,
//! skip boundary, preload hints, version floors). The parsers exist so that
//! writer output can be round-tripped in tests, so that edge and test tools can
//! read our own playlists back, and so that they can be fuzzed.
//!
//! What it is not: a general HLS client parser. It models what mediamesh emits
//! and nothing more: one `EXT-X-MAP` for the whole playlist, no encryption, no
//! byte ranges, no `EXT-X-DATERANGE`, no alternate renditions (`EXT-X-MEDIA`),
//! no I-frame playlists. Tags it does not know are skipped, as the draft tells
//! clients to do. Tags whose omission would change the meaning of what *is*
//! modelled (`EXT-X-KEY` with a method other than NONE, `EXT-X-BYTERANGE`, a
//! part `BYTERANGE`, a second, different `EXT-X-MAP`, `EXT-X-I-FRAMES-ONLY`)
//! make the parse fail with [`PlaylistError::Unsupported`] instead of
//! returning a silently wrong model. No I/O and no HTTP here: blocking reload
//! and `_HLS_msn`/`_HLS_skip` handling belong to the origin.
//!
//! Hostile input: the parsers never panic; they bound line length
//! ([`MAX_LINE_LEN`]) and the number of non-blank lines ([`MAX_LINES`]) and
//! report everything else as a [`PlaylistError`].

use std::fmt::Write as _;

/// Longest line (in bytes, before trimming) the parsers accept.
pub const MAX_LINE_LEN: usize = 16 * 1024;
/// Most non-blank lines (tags, comments and URIs) the parsers accept.
pub const MAX_LINES: usize = 100_000;
/// Most attributes in one attribute-list.
pub const MAX_ATTRS: usize = 32;

/// Tolerance (seconds) used by [`check_media_playlist`] when comparing
/// durations against the limits derived from targets. The writer prints five
/// decimals, so real rounding noise is far below this.
pub const CHECK_EPSILON: f64 = 1e-3;

/// Why a playlist could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaylistError {
    /// The first line is not `#EXTM3U` (a byte order mark also lands here).
    #[error("playlist does not start with #EXTM3U")]
    MissingHeader,
    /// A line is longer than [`MAX_LINE_LEN`].
    #[error("line {line}: longer than {max} bytes")]
    LineTooLong { line: usize, max: usize },
    /// More than [`MAX_LINES`] non-blank lines.
    #[error("playlist has more than {0} lines")]
    TooManyLines(usize),
    /// A tag the playlist must carry is absent.
    #[error("missing required tag {0}")]
    MissingTag(&'static str),
    /// A tag's required attribute is absent.
    #[error("line {line}: {tag} lacks required attribute {attribute}")]
    MissingAttribute {
        line: usize,
        tag: &'static str,
        attribute: &'static str,
    },
    /// A tag, attribute or URI line is malformed or out of place. `line` is
    /// 1-based; 0 means the problem was found at the end of the input.
    #[error("line {line}: {tag}: {reason}")]
    Invalid {
        line: usize,
        tag: &'static str,
        reason: String,
    },
    /// A tag that may appear once appears again.
    #[error("line {line}: duplicate {tag}")]
    Duplicate { line: usize, tag: &'static str },
    /// A well-formed tag this model cannot represent without losing meaning.
    #[error("line {line}: {tag} is not supported by this model")]
    Unsupported { line: usize, tag: &'static str },
    /// A tag that belongs to the other kind of playlist (Media vs Multivariant).
    #[error("line {line}: {tag} belongs to the other playlist kind")]
    WrongKind { line: usize, tag: &'static str },
}

// ---------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------

/// A Media Playlist (one rendition), including the Low-Latency HLS tags.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MediaPlaylist {
    /// `EXT-X-VERSION`; `0` omits the tag. Use 9 when `skipped_segments > 0`;
    /// at least 6 when `map_uri` is set (the caller sets it).
    pub version: u8,
    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub target_duration: u64,
    /// `EXT-X-PART-INF:PART-TARGET=`, seconds.
    pub part_inf: Option<f64>,
    /// `EXT-X-SERVER-CONTROL`.
    pub server_control: Option<ServerControl>,
    /// `EXT-X-MEDIA-SEQUENCE` (always written).
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` (written when non-zero).
    pub discontinuity_sequence: u64,
    /// `EXT-X-INDEPENDENT-SEGMENTS`.
    pub independent_segments: bool,
    /// `EXT-X-PLAYLIST-TYPE`.
    pub playlist_type: Option<PlaylistType>,
    /// `EXT-X-MAP:URI="..."`, applying to every segment.
    pub map_uri: Option<String>,
    /// `> 0` writes `EXT-X-SKIP:SKIPPED-SEGMENTS=N` before the first segment
    /// (a Playlist Delta Update). `segments` then holds only the segments that
    /// were not skipped; the first of them has Media Sequence Number
    /// `media_sequence + skipped_segments`.
    pub skipped_segments: u64,
    /// Complete segments, oldest first.
    pub segments: Vec<MediaSegment>,
    /// `EXT-X-DISCONTINUITY` for the segment still being produced; written
    /// before `trailing_parts` (the draft requires it before the first part).
    pub trailing_discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME` of the segment still being produced.
    pub trailing_program_date_time: Option<String>,
    /// Parts of the segment still being produced, written after the last
    /// complete segment (no `EXTINF` yet).
    pub trailing_parts: Vec<Part>,
    /// `EXT-X-PRELOAD-HINT` lines, written after `trailing_parts`.
    pub preload_hints: Vec<PreloadHint>,
    /// `EXT-X-RENDITION-REPORT` lines, written after the preload hints.
    pub rendition_reports: Vec<RenditionReport>,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
}

/// One complete Media Segment and the Partial Segments it was announced as.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MediaSegment {
    pub uri: String,
    /// `EXTINF` duration, seconds.
    pub duration: f64,
    /// `EXT-X-DISCONTINUITY` before this segment.
    pub discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME`, preformatted ISO 8601 (written verbatim).
    pub program_date_time: Option<String>,
    /// `EXT-X-PART` lines, written before this segment's `EXTINF`.
    pub parts: Vec<Part>,
    /// `EXT-X-GAP`.
    pub gap: bool,
}

/// One `EXT-X-PART`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Part {
    pub uri: String,
    /// Seconds.
    pub duration: f64,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
    /// `GAP=YES`.
    pub gap: bool,
}

/// `EXT-X-SERVER-CONTROL` attributes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ServerControl {
    pub can_block_reload: bool,
    /// Skip Boundary, seconds.
    pub can_skip_until: Option<f64>,
    pub can_skip_dateranges: bool,
    pub hold_back: Option<f64>,
    pub part_hold_back: Option<f64>,
}

/// `EXT-X-PLAYLIST-TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaylistType {
    Vod,
    Event,
}

/// `EXT-X-PRELOAD-HINT`.
#[derive(Clone, Debug, PartialEq)]
pub struct PreloadHint {
    pub hint_type: PreloadHintType,
    pub uri: String,
    pub byterange_start: Option<u64>,
    pub byterange_length: Option<u64>,
}

/// `TYPE=` of an `EXT-X-PRELOAD-HINT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreloadHintType {
    Part,
    Map,
}

/// `EXT-X-RENDITION-REPORT`.
#[derive(Clone, Debug, PartialEq)]
pub struct RenditionReport {
    /// Relative URI of the other rendition's Media Playlist.
    pub uri: String,
    pub last_msn: u64,
    pub last_part: Option<u64>,
}

/// A Multivariant Playlist (formerly "master playlist").
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MultivariantPlaylist {
    /// `EXT-X-VERSION`; `0` omits the tag.
    pub version: u8,
    pub independent_segments: bool,
    /// `EXT-X-STREAM-INF` + URI line, in order.
    pub variants: Vec<Variant>,
    pub content_steering: Option<ContentSteering>,
    /// `EXT-X-SESSION-DATA:DATA-ID="..",VALUE=".."` as `(data_id, value)`.
    /// The parser skips the `URI=` form, which this model cannot hold.
    pub session_data: Vec<(String, String)>,
}

/// One `EXT-X-STREAM-INF` entry.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Variant {
    pub uri: String,
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub codecs: Option<String>,
    /// `(width, height)`.
    pub resolution: Option<(u32, u32)>,
    /// Written with three decimals, as the draft asks.
    pub frame_rate: Option<f64>,
    pub pathway_id: Option<String>,
}

/// `EXT-X-CONTENT-STEERING`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ContentSteering {
    pub server_uri: String,
    pub pathway_id: Option<String>,
}

// ---------------------------------------------------------------------------
// Writer helpers
// ---------------------------------------------------------------------------

/// Decimal-floating-point text: five decimals when that is exact, otherwise
/// the shortest text that reads back to the same `f64`, so `parse(write(x))`
/// returns `x`. Non-finite and negative values are written as Rust prints
/// them; the parser rejects them and [`check_media_playlist`] reports them.
fn fmt_decimal(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0.00000"
    if !v.is_finite() {
        return format!("{v}");
    }
    let fixed = format!("{v:.5}");
    if fixed.parse::<f64>() == Ok(v) {
        fixed
    } else {
        format!("{v}")
    }
}

/// A URI as the writer emits it. Control characters (line breaks included)
/// are percent-encoded everywhere. Inside a quoted-string (`own_line ==
/// false`) so is `"`. On a URI line of its own, a leading `#` (which would
/// make the line a comment or tag) and leading or trailing whitespace (which
/// readers trim) are encoded too. Anything the parser accepts comes back out
/// unchanged, so write/parse round-trips.
fn uri_text(uri: &str, own_line: bool) -> String {
    let last = uri.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(uri.len());
    for (i, c) in uri.chars().enumerate() {
        let encode = c.is_control()
            || (!own_line && c == '"')
            || (own_line && i == 0 && c == '#')
            || (own_line && (i == 0 || i == last) && c.is_whitespace());
        if encode {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A non-URI quoted-string value: `"` and control characters, which a
/// quoted-string cannot hold, are dropped.
fn quoted_text(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && !c.is_control()).collect()
}

/// Free text after a tag's colon (program date time): control characters
/// dropped, surrounding whitespace trimmed (readers trim it anyway).
fn line_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

fn write_part(out: &mut String, p: &Part) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\"",
        fmt_decimal(p.duration),
        uri_text(&p.uri, false)
    );
    if p.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    if p.gap {
        out.push_str(",GAP=YES");
    }
    out.push('\n');
}

impl MediaPlaylist {
    /// Serialise to playlist text (LF line endings, trailing newline).
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(256 + 96 * self.segments.len());
        out.push_str("#EXTM3U\n");
        if self.version > 0 {
            let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version);
        }
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        if let Some(t) = self.playlist_type {
            let t = match t {
                PlaylistType::Vod => "VOD",
                PlaylistType::Event => "EVENT",
            };
            let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{t}");
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if let Some(sc) = &self.server_control {
            let mut attrs: Vec<String> = Vec::new();
            if sc.can_block_reload {
                attrs.push("CAN-BLOCK-RELOAD=YES".into());
            }
            if let Some(v) = sc.can_skip_until {
                attrs.push(format!("CAN-SKIP-UNTIL={}", fmt_decimal(v)));
            }
            if sc.can_skip_dateranges {
                attrs.push("CAN-SKIP-DATERANGES=YES".into());
            }
            if let Some(v) = sc.hold_back {
                attrs.push(format!("HOLD-BACK={}", fmt_decimal(v)));
            }
            if let Some(v) = sc.part_hold_back {
                attrs.push(format!("PART-HOLD-BACK={}", fmt_decimal(v)));
            }
            let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:{}", attrs.join(","));
        }
        if let Some(pt) = self.part_inf {
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", fmt_decimal(pt));
        }
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if let Some(map) = &self.map_uri {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", uri_text(map, false));
        }
        if self.skipped_segments > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-SKIP:SKIPPED-SEGMENTS={}",
                self.skipped_segments
            );
        }
        for seg in &self.segments {
            // Segment tags first: the draft requires DISCONTINUITY and
            // PROGRAM-DATE-TIME before the first EXT-X-PART of the segment.
            if seg.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(pdt) = &seg.program_date_time {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", line_text(pdt));
            }
            if seg.gap {
                out.push_str("#EXT-X-GAP\n");
            }
            for p in &seg.parts {
                write_part(&mut out, p);
            }
            let _ = writeln!(out, "#EXTINF:{},", fmt_decimal(seg.duration));
            out.push_str(&uri_text(&seg.uri, true));
            out.push('\n');
        }
        if self.trailing_discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(pdt) = &self.trailing_program_date_time {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", line_text(pdt));
        }
        for p in &self.trailing_parts {
            write_part(&mut out, p);
        }
        for h in &self.preload_hints {
            let t = match h.hint_type {
                PreloadHintType::Part => "PART",
                PreloadHintType::Map => "MAP",
            };
            let _ = write!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE={t},URI=\"{}\"",
                uri_text(&h.uri, false)
            );
            if let Some(s) = h.byterange_start {
                let _ = write!(out, ",BYTERANGE-START={s}");
            }
            if let Some(l) = h.byterange_length {
                let _ = write!(out, ",BYTERANGE-LENGTH={l}");
            }
            out.push('\n');
        }
        for r in &self.rendition_reports {
            let _ = write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                uri_text(&r.uri, false),
                r.last_msn
            );
            if let Some(p) = r.last_part {
                let _ = write!(out, ",LAST-PART={p}");
            }
            out.push('\n');
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    /// Parse Media Playlist text. See the module docs for what is rejected.
    pub fn parse(text: &str) -> Result<Self, PlaylistError> {
        MediaParser::default().run(text)
    }

    /// Media Sequence Number of `segments[0]` (accounts for a skip).
    pub fn first_listed_msn(&self) -> u64 {
        self.media_sequence.saturating_add(self.skipped_segments)
    }

    /// Media Sequence Number the in-progress segment (the one
    /// `trailing_parts` belong to) has, i.e. one past the last full segment.
    pub fn next_msn(&self) -> u64 {
        self.first_listed_msn()
            .saturating_add(self.segments.len() as u64)
    }
}

impl MultivariantPlaylist {
    /// Serialise to playlist text (LF line endings, trailing newline).
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(128 + 160 * self.variants.len());
        out.push_str("#EXTM3U\n");
        if self.version > 0 {
            let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version);
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if let Some(cs) = &self.content_steering {
            let _ = write!(
                out,
                "#EXT-X-CONTENT-STEERING:SERVER-URI=\"{}\"",
                uri_text(&cs.server_uri, false)
            );
            if let Some(p) = &cs.pathway_id {
                let _ = write!(out, ",PATHWAY-ID=\"{}\"", quoted_text(p));
            }
            out.push('\n');
        }
        for (id, value) in &self.session_data {
            let _ = writeln!(
                out,
                "#EXT-X-SESSION-DATA:DATA-ID=\"{}\",VALUE=\"{}\"",
                quoted_text(id),
                quoted_text(value)
            );
        }
        for v in &self.variants {
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
            if let Some(a) = v.average_bandwidth {
                let _ = write!(out, ",AVERAGE-BANDWIDTH={a}");
            }
            if let Some(c) = &v.codecs {
                let _ = write!(out, ",CODECS=\"{}\"", quoted_text(c));
            }
            if let Some((w, h)) = v.resolution {
                let _ = write!(out, ",RESOLUTION={w}x{h}");
            }
            if let Some(f) = v.frame_rate {
                let _ = write!(out, ",FRAME-RATE={f:.3}");
            }
            if let Some(p) = &v.pathway_id {
                let _ = write!(out, ",PATHWAY-ID=\"{}\"", quoted_text(p));
            }
            out.push('\n');
            out.push_str(&uri_text(&v.uri, true));
            out.push('\n');
        }
        out
    }

    /// Parse Multivariant Playlist text. `EXT-X-MEDIA`, `EXT-X-SESSION-KEY`
    /// and other tags outside the model are skipped.
    pub fn parse(text: &str) -> Result<Self, PlaylistError> {
        parse_multivariant(text)
    }
}

// ---------------------------------------------------------------------------
// Parser plumbing
// ---------------------------------------------------------------------------

/// Non-blank, trimmed lines with their 1-based numbers, limits enforced.
struct Lines<'a> {
    inner: std::iter::Enumerate<std::str::Split<'a, char>>,
    seen: usize,
}

impl<'a> Lines<'a> {
    /// Checks the `#EXTM3U` header and positions after it.
    fn new(text: &'a str) -> Result<Self, PlaylistError> {
        let mut lines = Lines {
            inner: text.split('\n').enumerate(),
            seen: 0,
        };
        match lines.inner.next() {
            Some((_, first)) if first.len() <= MAX_LINE_LEN && first.trim_end() == "#EXTM3U" => {
                Ok(lines)
            }
            _ => Err(PlaylistError::MissingHeader),
        }
    }

    fn next_line(&mut self) -> Result<Option<(usize, &'a str)>, PlaylistError> {
        for (idx, raw) in self.inner.by_ref() {
            let line = idx + 1;
            if raw.len() > MAX_LINE_LEN {
                return Err(PlaylistError::LineTooLong {
                    line,
                    max: MAX_LINE_LEN,
                });
            }
            let t = raw.trim();
            if t.is_empty() {
                continue;
            }
            self.seen += 1;
            if self.seen > MAX_LINES {
                return Err(PlaylistError::TooManyLines(MAX_LINES));
            }
            if t.chars().any(char::is_control) {
                // The draft forbids control characters other than CR and LF.
                return Err(invalid(line, T_LINE, "control character"));
            }
            return Ok(Some((line, t)));
        }
        Ok(None)
    }
}

/// The tag name (`#EXT-X-PART`) and what follows its colon.
fn split_tag(line: &str) -> (&str, &str) {
    match line.split_once(':') {
        Some((name, rest)) => (name, rest),
        None => (line, ""),
    }
}

fn invalid(line: usize, tag: &'static str, reason: impl Into<String>) -> PlaylistError {
    PlaylistError::Invalid {
        line,
        tag,
        reason: reason.into(),
    }
}

/// decimal-integer: 1 to 20 ASCII digits that fit the target type.
fn parse_int<T: std::str::FromStr>(
    s: &str,
    line: usize,
    tag: &'static str,
) -> Result<T, PlaylistError> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(line, tag, format!("not a decimal-integer: {s:?}")));
    }
    s.parse::<T>()
        .map_err(|_| invalid(line, tag, format!("integer out of range: {s}")))
}

/// decimal-floating-point: digits and at most one '.', at least one digit.
fn parse_float(s: &str, line: usize, tag: &'static str) -> Result<f64, PlaylistError> {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let dots = s.bytes().filter(|b| *b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != s.len() {
        return Err(invalid(
            line,
            tag,
            format!("not a decimal-floating-point: {s:?}"),
        ));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(invalid(line, tag, format!("number out of range: {s:?}"))),
    }
}

#[derive(Clone, Copy)]
enum AttrValue<'a> {
    Quoted(&'a str),
    Plain(&'a str),
}

/// A parsed attribute-list with typed accessors that produce line-tagged errors.
struct Attrs<'a> {
    items: Vec<(&'a str, AttrValue<'a>)>,
    line: usize,
    tag: &'static str,
}

impl<'a> Attrs<'a> {
    fn parse(s: &'a str, line: usize, tag: &'static str) -> Result<Self, PlaylistError> {
        let mut items: Vec<(&'a str, AttrValue<'a>)> = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let Some((name, after)) = rest.split_once('=') else {
                return Err(invalid(
                    line,
                    tag,
                    format!("attribute without '=': {rest:?}"),
                ));
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(line, tag, format!("bad attribute name {name:?}")));
            }
            let (value, after_value) = if let Some(q) = after.strip_prefix('"') {
                let Some(end) = q.find('"') else {
                    return Err(invalid(line, tag, "unterminated quoted-string"));
                };
                (AttrValue::Quoted(&q[..end]), &q[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (AttrValue::Plain(&after[..end]), &after[end..])
            };
            if items.len() >= MAX_ATTRS {
                return Err(invalid(
                    line,
                    tag,
                    format!("more than {MAX_ATTRS} attributes"),
                ));
            }
            if items.iter().any(|(n, _)| *n == name) {
                return Err(invalid(line, tag, format!("attribute {name} repeated")));
            }
            items.push((name, value));
            rest = if after_value.is_empty() {
                after_value
            } else if let Some(r) = after_value.strip_prefix(',') {
                if r.is_empty() {
                    return Err(invalid(line, tag, "trailing ','"));
                }
                r
            } else {
                return Err(invalid(line, tag, "expected ',' after quoted-string"));
            };
        }
        Ok(Attrs { items, line, tag })
    }

    fn get(&self, name: &str) -> Option<AttrValue<'a>> {
        self.items.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn quoted(&self, name: &'static str) -> Result<Option<&'a str>, PlaylistError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Quoted(v)) => Ok(Some(v)),
            Some(AttrValue::Plain(_)) => Err(invalid(
                self.line,
                self.tag,
                format!("{name} must be a quoted-string"),
            )),
        }
    }

    fn plain(&self, name: &'static str) -> Result<Option<&'a str>, PlaylistError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Plain(v)) => Ok(Some(v)),
            Some(AttrValue::Quoted(_)) => Err(invalid(
                self.line,
                self.tag,
                format!("{name} must not be quoted"),
            )),
        }
    }

    fn required<T>(&self, name: &'static str, v: Option<T>) -> Result<T, PlaylistError> {
        v.ok_or(PlaylistError::MissingAttribute {
            line: self.line,
            tag: self.tag,
            attribute: name,
        })
    }

    fn req_quoted(&self, name: &'static str) -> Result<&'a str, PlaylistError> {
        let v = self.quoted(name)?;
        self.required(name, v)
    }

    fn int(&self, name: &'static str) -> Result<Option<u64>, PlaylistError> {
        self.plain(name)?
            .map(|v| parse_int(v, self.line, self.tag))
            .transpose()
    }

    fn float(&self, name: &'static str) -> Result<Option<f64>, PlaylistError> {
        self.plain(name)?
            .map(|v| parse_float(v, self.line, self.tag))
            .transpose()
    }

    /// Enumerated `YES`/`NO`; absent means false.
    fn yes(&self, name: &'static str) -> Result<bool, PlaylistError> {
        match self.plain(name)? {
            None | Some("NO") => Ok(false),
            Some("YES") => Ok(true),
            Some(other) => Err(invalid(
                self.line,
                self.tag,
                format!("{name} must be YES or NO, got {other:?}"),
            )),
        }
    }
}

// Tag names, so errors can carry `&'static str`.
const T_VERSION: &str = "#EXT-X-VERSION";
const T_TARGET: &str = "#EXT-X-TARGETDURATION";
const T_PART_INF: &str = "#EXT-X-PART-INF";
const T_SERVER_CONTROL: &str = "#EXT-X-SERVER-CONTROL";
const T_MEDIA_SEQ: &str = "#EXT-X-MEDIA-SEQUENCE";
const T_DISC_SEQ: &str = "#EXT-X-DISCONTINUITY-SEQUENCE";
const T_INDEPENDENT: &str = "#EXT-X-INDEPENDENT-SEGMENTS";
const T_PLAYLIST_TYPE: &str = "#EXT-X-PLAYLIST-TYPE";
const T_MAP: &str = "#EXT-X-MAP";
const T_SKIP: &str = "#EXT-X-SKIP";
const T_EXTINF: &str = "#EXTINF";
const T_DISCONTINUITY: &str = "#EXT-X-DISCONTINUITY";
const T_PDT: &str = "#EXT-X-PROGRAM-DATE-TIME";
const T_GAP: &str = "#EXT-X-GAP";
const T_PART: &str = "#EXT-X-PART";
const T_PRELOAD: &str = "#EXT-X-PRELOAD-HINT";
const T_REPORT: &str = "#EXT-X-RENDITION-REPORT";
const T_ENDLIST: &str = "#EXT-X-ENDLIST";
const T_KEY: &str = "#EXT-X-KEY";
const T_BYTERANGE: &str = "#EXT-X-BYTERANGE";
const T_IFRAMES_ONLY: &str = "#EXT-X-I-FRAMES-ONLY";
const T_EXTM3U: &str = "#EXTM3U";
const T_STREAM_INF: &str = "#EXT-X-STREAM-INF";
const T_IFRAME_STREAM_INF: &str = "#EXT-X-I-FRAME-STREAM-INF";
const T_MEDIA: &str = "#EXT-X-MEDIA";
const T_SESSION_DATA: &str = "#EXT-X-SESSION-DATA";
const T_SESSION_KEY: &str = "#EXT-X-SESSION-KEY";
const T_STEERING: &str = "#EXT-X-CONTENT-STEERING";
const T_URI_LINE: &str = "URI line";
const T_LINE: &str = "line";

fn once<T>(
    slot: &mut Option<T>,
    v: T,
    line: usize,
    tag: &'static str,
) -> Result<(), PlaylistError> {
    if slot.is_some() {
        return Err(PlaylistError::Duplicate { line, tag });
    }
    *slot = Some(v);
    Ok(())
}

fn once_flag(slot: &mut bool, line: usize, tag: &'static str) -> Result<(), PlaylistError> {
    if *slot {
        return Err(PlaylistError::Duplicate { line, tag });
    }
    *slot = true;
    Ok(())
}

fn parse_part(value: &str, line: usize) -> Result<Part, PlaylistError> {
    let a = Attrs::parse(value, line, T_PART)?;
    if a.has("BYTERANGE") {
        return Err(PlaylistError::Unsupported { line, tag: T_PART });
    }
    let duration = a.float("DURATION")?;
    Ok(Part {
        uri: a.req_quoted("URI")?.to_string(),
        duration: a.required("DURATION", duration)?,
        independent: a.yes("INDEPENDENT")?,
        gap: a.yes("GAP")?,
    })
}

#[derive(Default)]
struct MediaParser {
    p: MediaPlaylist,
    version: Option<u8>,
    target: Option<u64>,
    media_seq: Option<u64>,
    disc_seq: Option<u64>,
    part_inf: Option<f64>,
    server_control: Option<ServerControl>,
    playlist_type: Option<PlaylistType>,
    skip: Option<u64>,
    independent: bool,
    ended: bool,
    /// Tags collected for the segment whose URI line has not come yet.
    pending: MediaSegment,
    pending_extinf: Option<f64>,
    /// A map was seen after the first segment or part (cannot be modelled).
    segments_started: bool,
}

impl MediaParser {
    fn run(mut self, text: &str) -> Result<MediaPlaylist, PlaylistError> {
        let mut lines = Lines::new(text)?;
        while let Some((line, l)) = lines.next_line()? {
            if l.starts_with('#') {
                if l.starts_with("#EXT") {
                    self.tag(line, l)?;
                }
                // Other '#' lines are comments.
            } else {
                let Some(duration) = self.pending_extinf.take() else {
                    return Err(invalid(
                        line,
                        T_URI_LINE,
                        "URI line without a preceding #EXTINF",
                    ));
                };
                let mut seg = std::mem::take(&mut self.pending);
                seg.uri = l.to_string();
                seg.duration = duration;
                self.p.segments.push(seg);
            }
        }
        if self.pending_extinf.is_some() {
            return Err(invalid(
                0,
                T_EXTINF,
                "#EXTINF without a URI line at end of playlist",
            ));
        }
        if self.pending.gap {
            return Err(invalid(
                0,
                T_GAP,
                "#EXT-X-GAP without a segment at end of playlist",
            ));
        }
        let mut p = self.p;
        p.version = self.version.unwrap_or(0);
        p.target_duration = self.target.ok_or(PlaylistError::MissingTag(T_TARGET))?;
        p.media_sequence = self.media_seq.unwrap_or(0);
        p.discontinuity_sequence = self.disc_seq.unwrap_or(0);
        p.part_inf = self.part_inf;
        p.server_control = self.server_control;
        p.playlist_type = self.playlist_type;
        p.skipped_segments = self.skip.unwrap_or(0);
        p.independent_segments = self.independent;
        p.ended = self.ended;
        p.trailing_discontinuity = self.pending.discontinuity;
        p.trailing_program_date_time = self.pending.program_date_time;
        p.trailing_parts = self.pending.parts;
        Ok(p)
    }

    fn tag(&mut self, line: usize, l: &str) -> Result<(), PlaylistError> {
        let (name, value) = split_tag(l);
        match name {
            T_EXTM3U => {
                return Err(PlaylistError::Duplicate {
                    line,
                    tag: T_EXTM3U,
                })
            }
            T_VERSION => {
                let v = parse_int::<u8>(value, line, T_VERSION)?;
                once(&mut self.version, v, line, T_VERSION)?;
            }
            T_TARGET => {
                let v = parse_int::<u64>(value, line, T_TARGET)?;
                once(&mut self.target, v, line, T_TARGET)?;
            }
            T_MEDIA_SEQ => {
                let v = parse_int::<u64>(value, line, T_MEDIA_SEQ)?;
                once(&mut self.media_seq, v, line, T_MEDIA_SEQ)?;
            }
            T_DISC_SEQ => {
                let v = parse_int::<u64>(value, line, T_DISC_SEQ)?;
                once(&mut self.disc_seq, v, line, T_DISC_SEQ)?;
            }
            T_INDEPENDENT => once_flag(&mut self.independent, line, T_INDEPENDENT)?,
            T_ENDLIST => once_flag(&mut self.ended, line, T_ENDLIST)?,
            T_PLAYLIST_TYPE => {
                let t = match value {
                    "VOD" => PlaylistType::Vod,
                    "EVENT" => PlaylistType::Event,
                    _ => {
                        return Err(invalid(
                            line,
                            T_PLAYLIST_TYPE,
                            format!("unknown type {value:?}"),
                        ))
                    }
                };
                once(&mut self.playlist_type, t, line, T_PLAYLIST_TYPE)?;
            }
            T_PART_INF => {
                let a = Attrs::parse(value, line, T_PART_INF)?;
                let pt = a.float("PART-TARGET")?;
                let pt = a.required("PART-TARGET", pt)?;
                once(&mut self.part_inf, pt, line, T_PART_INF)?;
            }
            T_SERVER_CONTROL => {
                let a = Attrs::parse(value, line, T_SERVER_CONTROL)?;
                let sc = ServerControl {
                    can_block_reload: a.yes("CAN-BLOCK-RELOAD")?,
                    can_skip_until: a.float("CAN-SKIP-UNTIL")?,
                    can_skip_dateranges: a.yes("CAN-SKIP-DATERANGES")?,
                    hold_back: a.float("HOLD-BACK")?,
                    part_hold_back: a.float("PART-HOLD-BACK")?,
                };
                once(&mut self.server_control, sc, line, T_SERVER_CONTROL)?;
            }
            T_MAP => {
                let a = Attrs::parse(value, line, T_MAP)?;
                if a.has("BYTERANGE") {
                    return Err(PlaylistError::Unsupported { line, tag: T_MAP });
                }
                let uri = a.req_quoted("URI")?;
                match &self.p.map_uri {
                    None if !self.segments_started() => self.p.map_uri = Some(uri.to_string()),
                    Some(existing) if existing == uri => {}
                    _ => return Err(PlaylistError::Unsupported { line, tag: T_MAP }),
                }
            }
            T_SKIP => {
                let a = Attrs::parse(value, line, T_SKIP)?;
                if a.has("RECENTLY-REMOVED-DATERANGES") {
                    return Err(PlaylistError::Unsupported { line, tag: T_SKIP });
                }
                let n = a.int("SKIPPED-SEGMENTS")?;
                let n = a.required("SKIPPED-SEGMENTS", n)?;
                if self.segments_started() {
                    return Err(invalid(line, T_SKIP, "must precede every segment"));
                }
                once(&mut self.skip, n, line, T_SKIP)?;
            }
            T_EXTINF => {
                if self.pending_extinf.is_some() {
                    return Err(invalid(line, T_EXTINF, "two #EXTINF without a URI line"));
                }
                let dur = value.split_once(',').map_or(value, |(d, _title)| d).trim();
                self.pending_extinf = Some(parse_float(dur, line, T_EXTINF)?);
            }
            T_DISCONTINUITY => {
                self.pending.discontinuity = true;
            }
            T_PDT => {
                if value.is_empty() {
                    return Err(invalid(line, T_PDT, "empty date-time"));
                }
                self.pending.program_date_time = Some(value.to_string());
            }
            T_GAP => self.pending.gap = true,
            T_PART => {
                if self.pending_extinf.is_some() {
                    return Err(invalid(line, T_PART, "between #EXTINF and its URI line"));
                }
                let part = parse_part(value, line)?;
                self.pending.parts.push(part);
            }
            T_PRELOAD => {
                let a = Attrs::parse(value, line, T_PRELOAD)?;
                let t = a.plain("TYPE")?;
                let hint_type = match a.required("TYPE", t)? {
                    "PART" => PreloadHintType::Part,
                    "MAP" => PreloadHintType::Map,
                    other => {
                        return Err(invalid(line, T_PRELOAD, format!("unknown TYPE {other:?}")))
                    }
                };
                self.p.preload_hints.push(PreloadHint {
                    hint_type,
                    uri: a.req_quoted("URI")?.to_string(),
                    byterange_start: a.int("BYTERANGE-START")?,
                    byterange_length: a.int("BYTERANGE-LENGTH")?,
                });
            }
            T_REPORT => {
                let a = Attrs::parse(value, line, T_REPORT)?;
                let msn = a.int("LAST-MSN")?;
                self.p.rendition_reports.push(RenditionReport {
                    uri: a.req_quoted("URI")?.to_string(),
                    last_msn: a.required("LAST-MSN", msn)?,
                    last_part: a.int("LAST-PART")?,
                });
            }
            T_KEY => {
                let a = Attrs::parse(value, line, T_KEY)?;
                if a.plain("METHOD")? != Some("NONE") {
                    return Err(PlaylistError::Unsupported { line, tag: T_KEY });
                }
            }
            T_BYTERANGE => {
                return Err(PlaylistError::Unsupported {
                    line,
                    tag: T_BYTERANGE,
                })
            }
            T_IFRAMES_ONLY => {
                return Err(PlaylistError::Unsupported {
                    line,
                    tag: T_IFRAMES_ONLY,
                })
            }
            T_STREAM_INF => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_STREAM_INF,
                })
            }
            T_IFRAME_STREAM_INF => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_IFRAME_STREAM_INF,
                })
            }
            T_MEDIA => return Err(PlaylistError::WrongKind { line, tag: T_MEDIA }),
            T_SESSION_DATA => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_SESSION_DATA,
                })
            }
            T_SESSION_KEY => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_SESSION_KEY,
                })
            }
            T_STEERING => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_STEERING,
                })
            }
            _ => {} // unknown tags are ignored, as the draft requires of clients
        }
        if name == T_PART || name == T_EXTINF {
            self.segments_started = true;
        }
        Ok(())
    }

    fn segments_started(&self) -> bool {
        self.segments_started || !self.p.segments.is_empty()
    }
}

fn parse_resolution(s: &str, line: usize) -> Result<(u32, u32), PlaylistError> {
    let Some((w, h)) = s.split_once('x') else {
        return Err(invalid(line, T_STREAM_INF, format!("bad RESOLUTION {s:?}")));
    };
    Ok((
        parse_int::<u32>(w, line, T_STREAM_INF)?,
        parse_int::<u32>(h, line, T_STREAM_INF)?,
    ))
}

fn parse_multivariant(text: &str) -> Result<MultivariantPlaylist, PlaylistError> {
    let mut lines = Lines::new(text)?;
    let mut p = MultivariantPlaylist::default();
    let mut version: Option<u8> = None;
    let mut pending: Option<Variant> = None;
    while let Some((line, l)) = lines.next_line()? {
        if !l.starts_with('#') {
            let Some(mut v) = pending.take() else {
                return Err(invalid(
                    line,
                    T_URI_LINE,
                    "URI line without a preceding #EXT-X-STREAM-INF",
                ));
            };
            v.uri = l.to_string();
            p.variants.push(v);
            continue;
        }
        if !l.starts_with("#EXT") {
            continue;
        }
        let (name, value) = split_tag(l);
        match name {
            T_EXTM3U => {
                return Err(PlaylistError::Duplicate {
                    line,
                    tag: T_EXTM3U,
                })
            }
            T_VERSION => {
                let v = parse_int::<u8>(value, line, T_VERSION)?;
                once(&mut version, v, line, T_VERSION)?;
            }
            T_INDEPENDENT => once_flag(&mut p.independent_segments, line, T_INDEPENDENT)?,
            T_STEERING => {
                let a = Attrs::parse(value, line, T_STEERING)?;
                let cs = ContentSteering {
                    server_uri: a.req_quoted("SERVER-URI")?.to_string(),
                    pathway_id: a.quoted("PATHWAY-ID")?.map(str::to_string),
                };
                once(&mut p.content_steering, cs, line, T_STEERING)?;
            }
            T_SESSION_DATA => {
                let a = Attrs::parse(value, line, T_SESSION_DATA)?;
                let id = a.req_quoted("DATA-ID")?;
                // The URI= form cannot be held by the model and is skipped.
                if let Some(v) = a.quoted("VALUE")? {
                    p.session_data.push((id.to_string(), v.to_string()));
                }
            }
            T_STREAM_INF => {
                if pending.is_some() {
                    return Err(invalid(
                        line,
                        T_STREAM_INF,
                        "two #EXT-X-STREAM-INF without a URI line",
                    ));
                }
                let a = Attrs::parse(value, line, T_STREAM_INF)?;
                let bw = a.int("BANDWIDTH")?;
                pending = Some(Variant {
                    uri: String::new(),
                    bandwidth: a.required("BANDWIDTH", bw)?,
                    average_bandwidth: a.int("AVERAGE-BANDWIDTH")?,
                    codecs: a.quoted("CODECS")?.map(str::to_string),
                    resolution: a
                        .plain("RESOLUTION")?
                        .map(|r| parse_resolution(r, line))
                        .transpose()?,
                    frame_rate: a.float("FRAME-RATE")?,
                    pathway_id: a.quoted("PATHWAY-ID")?.map(str::to_string),
                });
            }
            T_EXTINF | T_TARGET | T_MEDIA_SEQ | T_PART | T_PART_INF | T_SKIP | T_ENDLIST
            | T_SERVER_CONTROL | T_PRELOAD | T_MAP | T_PLAYLIST_TYPE => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: media_tag_name(name),
                })
            }
            _ => {} // EXT-X-MEDIA, EXT-X-SESSION-KEY, unknown tags: not modelled
        }
    }
    if pending.is_some() {
        return Err(invalid(
            0,
            T_STREAM_INF,
            "#EXT-X-STREAM-INF without a URI line at end of playlist",
        ));
    }
    p.version = version.unwrap_or(0);
    Ok(p)
}

/// Map a matched media-playlist tag name back to its `'static` constant.
fn media_tag_name(name: &str) -> &'static str {
    [
        T_EXTINF,
        T_TARGET,
        T_MEDIA_SEQ,
        T_PART,
        T_PART_INF,
        T_SKIP,
        T_ENDLIST,
        T_SERVER_CONTROL,
        T_PRELOAD,
        T_MAP,
        T_PLAYLIST_TYPE,
    ]
    .into_iter()
    .find(|t| *t == name)
    .unwrap_or(T_EXTINF)
}

// ---------------------------------------------------------------------------
// Checker
// ---------------------------------------------------------------------------

/// How binding a [`Violation`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// The draft says MUST: clients may reject the playlist.
    Must,
    /// The draft says SHOULD, or mediamesh policy is stricter than the draft
    /// (e.g. PART-HOLD-BACK of at least three part targets). The origin
    /// treats these as errors too; they are separated so tests can tell.
    Should,
}

/// One broken rule found by [`check_media_playlist`].
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Stable rule identifier, e.g. `"part-hold-back-min"`.
    pub rule: &'static str,
    pub detail: String,
    pub level: Level,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lvl = match self.level {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        };
        write!(f, "[{lvl}] {}: {}", self.rule, self.detail)
    }
}

/// Spec rules (draft-pantos-hls-rfc8216bis) a playlist we generate must
/// satisfy. Returns every violation found; empty means clean.
///
/// MUST rules: every `EXTINF` rounded to the nearest integer is at most
/// TARGETDURATION (§4.4.3.1), which also covers the in-progress segment's
/// parts; EXT-X-PART-INF is present when parts are (§4.4.3.7); every part is
/// at most PART-TARGET, and at least 85 % of it except INDEPENDENT or GAP
/// parts, parts followed by a GAP part and the last part of a parent segment
/// (§4.4.4.9; the last trailing part is exempt as it may end its segment);
/// PART-HOLD-BACK is present with EXT-X-PART-INF and at least 2 × PART-TARGET;
/// HOLD-BACK ≥ 3 × TARGETDURATION; CAN-SKIP-UNTIL ≥ 6 × TARGETDURATION;
/// CAN-SKIP-DATERANGES needs CAN-SKIP-UNTIL (§4.4.3.8); EXT-X-SKIP needs
/// version 9 (§8) and an advertised CAN-SKIP-UNTIL; no EXT-X-PRELOAD-HINT
/// with EXT-X-ENDLIST (§4.4.5.3); version ≥ 3 for decimal EXTINF (the writer
/// always writes decimals) and ≥ 6 for EXT-X-MAP (§8); durations finite and
/// non-negative; URIs non-empty and free of characters the writer has to
/// percent-encode.
///
/// SHOULD / policy rules: PART-HOLD-BACK ≥ 3 × PART-TARGET; parts removed
/// once their parent segment ends more than three target durations before
/// the end of the playlist (§6.2.2); preload hints only in a playlist with
/// parts; CAN-BLOCK-RELOAD=YES with parts (Appendix B low-latency profile);
/// a segment's parts add up to its EXTINF duration (§3.2).
pub fn check_media_playlist(p: &MediaPlaylist) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut must = |rule: &'static str, detail: String| {
        v.push(Violation {
            rule,
            detail,
            level: Level::Must,
        })
    };
    let td = p.target_duration as f64;
    let msn0 = p.first_listed_msn();
    let has_parts = !p.trailing_parts.is_empty() || p.segments.iter().any(|s| !s.parts.is_empty());

    // Durations and URIs.
    for (i, s) in p.segments.iter().enumerate() {
        let msn = msn0.saturating_add(i as u64);
        if !s.duration.is_finite() || s.duration < 0.0 {
            must(
                "duration-valid",
                format!("segment {msn}: EXTINF {}", s.duration),
            );
        } else if s.duration.round() > td {
            must(
                "target-duration",
                format!(
                    "segment {msn}: EXTINF {} rounds above TARGETDURATION {}",
                    s.duration, p.target_duration
                ),
            );
        }
        if let Some(r) = uri_problem(&s.uri) {
            must("uri-valid", format!("segment {msn}: {r}"));
        }
    }
    let trailing_sum: f64 = p.trailing_parts.iter().map(|x| x.duration).sum();
    if trailing_sum.is_finite() && trailing_sum.round() > td {
        must(
            "target-duration",
            format!(
                "in-progress segment {}: parts already last {trailing_sum:.5} s, rounding above TARGETDURATION {}",
                p.next_msn(),
                p.target_duration
            ),
        );
    }
    if let Some(m) = &p.map_uri {
        if let Some(r) = uri_problem(m) {
            must("uri-valid", format!("EXT-X-MAP: {r}"));
        }
    }

    // Parts.
    if has_parts && p.part_inf.is_none() {
        must(
            "part-inf-required",
            "EXT-X-PART present without EXT-X-PART-INF".into(),
        );
    }
    let part_groups = p
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| (msn0.saturating_add(i as u64), &s.parts[..]))
        .chain(std::iter::once((p.next_msn(), &p.trailing_parts[..])));
    for (msn, parts) in part_groups {
        for (j, part) in parts.iter().enumerate() {
            let at = format!("part {msn}.{j}");
            if let Some(r) = uri_problem(&part.uri) {
                must("uri-valid", format!("{at}: {r}"));
            }
            if !part.duration.is_finite() || part.duration < 0.0 {
                must(
                    "duration-valid",
                    format!("{at}: DURATION {}", part.duration),
                );
                continue;
            }
            let Some(pt) = p.part_inf else { continue };
            if part.duration > pt + CHECK_EPSILON {
                must(
                    "part-duration-max",
                    format!("{at}: DURATION {} > PART-TARGET {pt}", part.duration),
                );
            }
            // The last trailing part is exempt too: it may turn out to be
            // the final part of its parent.
            let is_last = j + 1 == parts.len();
            let next_gap = parts.get(j + 1).is_some_and(|n| n.gap);
            let exempt = part.independent || part.gap || next_gap || is_last;
            if !exempt && part.duration < 0.85 * pt - CHECK_EPSILON {
                must(
                    "part-duration-min",
                    format!(
                        "{at}: DURATION {} < 85% of PART-TARGET {pt} (not independent, gap or last)",
                        part.duration
                    ),
                );
            }
        }
    }

    // Server control.
    let sc = p.server_control.as_ref();
    if let Some(pt) = p.part_inf {
        match sc.and_then(|s| s.part_hold_back) {
            None => must(
                "part-hold-back-required",
                "EXT-X-PART-INF present without PART-HOLD-BACK".into(),
            ),
            Some(phb) if phb < 2.0 * pt - CHECK_EPSILON => must(
                "part-hold-back-min",
                format!("PART-HOLD-BACK {phb} < 2 x PART-TARGET {pt}"),
            ),
            Some(_) => {}
        }
    }
    if let Some(hb) = sc.and_then(|s| s.hold_back) {
        if hb < 3.0 * td - CHECK_EPSILON {
            must(
                "hold-back-min",
                format!("HOLD-BACK {hb} < 3 x TARGETDURATION {}", p.target_duration),
            );
        }
    }
    let can_skip_until = sc.and_then(|s| s.can_skip_until);
    if let Some(csu) = can_skip_until {
        if csu < 6.0 * td - CHECK_EPSILON {
            must(
                "can-skip-until-min",
                format!(
                    "CAN-SKIP-UNTIL {csu} < 6 x TARGETDURATION {}",
                    p.target_duration
                ),
            );
        }
    }
    if sc.is_some_and(|s| s.can_skip_dateranges) && can_skip_until.is_none() {
        must(
            "can-skip-dateranges-requires-can-skip-until",
            "CAN-SKIP-DATERANGES without CAN-SKIP-UNTIL".into(),
        );
    }

    // Delta updates, hints, versions.
    if p.skipped_segments > 0 {
        if p.version < 9 {
            must(
                "skip-version",
                format!(
                    "EXT-X-SKIP requires EXT-X-VERSION 9, playlist has {}",
                    p.version
                ),
            );
        }
        if can_skip_until.is_none() {
            must(
                "skip-without-can-skip-until",
                "EXT-X-SKIP in a playlist that does not advertise CAN-SKIP-UNTIL".into(),
            );
        }
    }
    if p.ended && !p.preload_hints.is_empty() {
        must(
            "preload-hint-with-endlist",
            "EXT-X-PRELOAD-HINT in a playlist with EXT-X-ENDLIST".into(),
        );
    }
    for h in &p.preload_hints {
        if let Some(r) = uri_problem(&h.uri) {
            must("uri-valid", format!("EXT-X-PRELOAD-HINT: {r}"));
        }
    }
    for r in &p.rendition_reports {
        if let Some(e) = uri_problem(&r.uri) {
            must("uri-valid", format!("EXT-X-RENDITION-REPORT: {e}"));
        }
    }
    // Version 0 means "no tag", which clients read as 1.
    let version = p.version.max(1);
    if !p.segments.is_empty() && version < 3 {
        must(
            "version-decimal-extinf",
            format!("decimal EXTINF durations require EXT-X-VERSION 3, playlist has {version}"),
        );
    }
    if p.map_uri.is_some() && version < 6 {
        must(
            "map-version",
            format!("EXT-X-MAP requires EXT-X-VERSION 6, playlist has {version}"),
        );
    }

    // SHOULD / policy.
    let mut should = |rule: &'static str, detail: String| {
        v.push(Violation {
            rule,
            detail,
            level: Level::Should,
        })
    };
    if let (Some(pt), Some(phb)) = (p.part_inf, sc.and_then(|s| s.part_hold_back)) {
        if phb >= 2.0 * pt - CHECK_EPSILON && phb < 3.0 * pt - CHECK_EPSILON {
            should(
                "part-hold-back-3x",
                format!("PART-HOLD-BACK {phb} < 3 x PART-TARGET {pt}"),
            );
        }
    }
    if p.part_inf.is_some() && !sc.is_some_and(|s| s.can_block_reload) {
        should(
            "ll-profile-block-reload",
            "playlist with parts does not advertise CAN-BLOCK-RELOAD=YES".into(),
        );
    }
    if !p.preload_hints.is_empty() && p.part_inf.is_none() {
        should(
            "preload-hint-without-parts",
            "EXT-X-PRELOAD-HINT in a playlist without EXT-X-PART-INF".into(),
        );
    }
    // Distance from each segment's end to the end of the playlist.
    let mut after = trailing_sum;
    for (i, s) in p.segments.iter().enumerate().rev() {
        let msn = msn0.saturating_add(i as u64);
        if !s.parts.is_empty() {
            if after > 3.0 * td + CHECK_EPSILON {
                should(
                    "parts-too-old",
                    format!(
                        "segment {msn} still lists parts but ends {after:.3} s before the end (> 3 x TARGETDURATION)"
                    ),
                );
            }
            let sum: f64 = s.parts.iter().map(|x| x.duration).sum();
            let tol = CHECK_EPSILON + 1e-5 * s.parts.len() as f64;
            if (sum - s.duration).abs() > tol {
                should(
                    "parts-sum",
                    format!(
                        "segment {msn}: parts add up to {sum:.5} s but EXTINF is {}",
                        s.duration
                    ),
                );
            }
        }
        if s.duration.is_finite() {
            after += s.duration;
        }
    }
    v
}

/// Why a URI would not survive the writer unchanged, if it would not.
fn uri_problem(uri: &str) -> Option<&'static str> {
    if uri.is_empty() {
        Some("empty URI")
    } else if uri.chars().any(|c| c.is_control() || c == ' ' || c == '"') {
        Some("URI contains whitespace, control characters or '\"'")
    } else if uri.starts_with('#') {
        Some("URI starts with '#'")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(uri: &str, d: f64, independent: bool) -> Part {
        Part {
            uri: uri.into(),
            duration: d,
            independent,
            gap: false,
        }
    }

    /// A clean LL-HLS live playlist: 2 s segments of four 0.5 s parts.
    fn ll_playlist() -> MediaPlaylist {
        let mut segments = Vec::new();
        for msn in 100..106u64 {
            let parts = if msn >= 104 {
                (0..4)
                    .map(|j| part(&format!("seg{msn}.{j}.m4s"), 0.5, j == 0))
                    .collect()
            } else {
                Vec::new()
            };
            segments.push(MediaSegment {
                uri: format!("seg{msn}.m4s"),
                duration: 2.0,
                discontinuity: msn == 102,
                program_date_time: (msn == 100).then(|| "2026-11-25T20:13:58.123Z".to_string()),
                parts,
                gap: false,
            });
        }
        MediaPlaylist {
            version: 9,
            target_duration: 2,
            part_inf: Some(0.5),
            server_control: Some(ServerControl {
                can_block_reload: true,
                can_skip_until: Some(12.0),
                can_skip_dateranges: false,
                hold_back: Some(6.0),
                part_hold_back: Some(1.5),
            }),
            media_sequence: 100,
            discontinuity_sequence: 3,
            independent_segments: true,
            playlist_type: None,
            map_uri: Some("init.mp4".into()),
            skipped_segments: 0,
            segments,
            trailing_discontinuity: false,
            trailing_program_date_time: None,
            trailing_parts: vec![
                part("seg106.0.m4s", 0.5, true),
                part("seg106.1.m4s", 0.5, false),
            ],
            preload_hints: vec![PreloadHint {
                hint_type: PreloadHintType::Part,
                uri: "seg106.2.m4s".into(),
                byterange_start: None,
                byterange_length: None,
            }],
            rendition_reports: vec![RenditionReport {
                uri: "../audio/index.m3u8".into(),
                last_msn: 106,
                last_part: Some(1),
            }],
            ended: false,
        }
    }

    #[test]
    fn writes_expected_text() {
        let text = ll_playlist().write();
        let expected_head = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.00000,HOLD-BACK=6.00000,PART-HOLD-BACK=1.50000\n\
#EXT-X-PART-INF:PART-TARGET=0.50000\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n\
#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T20:13:58.123Z\n#EXTINF:2.00000,\nseg100.m4s\n";
        assert!(text.starts_with(expected_head), "{text}");
        let expected_tail =
            "#EXT-X-PART:DURATION=0.50000,URI=\"seg105.3.m4s\"\n#EXTINF:2.00000,\nseg105.m4s\n\
#EXT-X-PART:DURATION=0.50000,URI=\"seg106.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.50000,URI=\"seg106.1.m4s\"\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg106.2.m4s\"\n\
#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=106,LAST-PART=1\n";
        assert!(text.ends_with(expected_tail), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXTINF:2.00000,\nseg102.m4s\n"));
    }

    #[test]
    fn round_trips_live_playlist() {
        let p = ll_playlist();
        assert_eq!(MediaPlaylist::parse(&p.write()), Ok(p));
    }

    #[test]
    fn round_trips_delta_update_and_vod() {
        let mut p = ll_playlist();
        p.skipped_segments = 2;
        p.segments.drain(..2);
        p.trailing_discontinuity = true;
        p.trailing_program_date_time = Some("2026-11-25T20:14:10.123Z".into());
        let text = p.write();
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"));
        assert_eq!(MediaPlaylist::parse(&text), Ok(p));

        let vod = MediaPlaylist {
            version: 6,
            target_duration: 4,
            playlist_type: Some(PlaylistType::Vod),
            segments: vec![
                MediaSegment {
                    uri: "a.ts".into(),
                    duration: 3.003,
                    ..Default::default()
                },
                MediaSegment {
                    uri: "b.ts".into(),
                    duration: 1.0 / 3.0, // not exact in 5 decimals
                    gap: true,
                    ..Default::default()
                },
            ],
            ended: true,
            ..Default::default()
        };
        assert_eq!(MediaPlaylist::parse(&vod.write()), Ok(vod.clone()));
        assert!(vod.write().contains("#EXTINF:3.00300,\n"));
    }

    #[test]
    fn writer_neutralises_hostile_strings() {
        let p = MediaPlaylist {
            version: 9,
            target_duration: 2,
            segments: vec![MediaSegment {
                uri: "#evil\n#EXT-X-ENDLIST\"x y".into(),
                duration: 2.0,
                program_date_time: Some("2026\n#EXT-X-ENDLIST".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = p.write();
        let back = MediaPlaylist::parse(&text).expect("writer output parses");
        assert!(!back.ended);
        assert_eq!(back.segments.len(), 1);
        assert_eq!(back.segments[0].uri, "%23evil%0A#EXT-X-ENDLIST\"x y");
        assert_eq!(
            back.segments[0].program_date_time.as_deref(),
            Some("2026#EXT-X-ENDLIST")
        );
        let rules: Vec<_> = check_media_playlist(&p).iter().map(|v| v.rule).collect();
        assert!(rules.contains(&"uri-valid"), "{rules:?}");
    }

    const APPLE_STYLE: &str = "#EXTM3U
# A typical low-latency playlist after the draft's and Apple's examples.
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:6
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=24.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:13:36.106Z
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:4.00008,
fileSequence266.mp4
#EXTINF:4.00008,
fileSequence267.mp4
#EXTINF:4.00008,
fileSequence268.mp4
#EXTINF:4.00008,
fileSequence269.mp4
#EXTINF:4.00008,
fileSequence270.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.0.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.1.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.2.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.3.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.4.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.5.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.6.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.7.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.8.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.9.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.10.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.11.mp4\"
#EXTINF:4.00008,
fileSequence271.mp4
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:14:00.106Z
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.a.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.b.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.c.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.d.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.e.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.f.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.g.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.h.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.i.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.j.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.k.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.l.mp4\"
#EXTINF:4.00008,
fileSequence272.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart273.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart273.1.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart273.2.mp4\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart273.3.mp4\"

#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2
#EXT-X-RENDITION-REPORT:URI=\"../4M/waitForMSN.php\",LAST-MSN=273,LAST-PART=1
";

    #[test]
    fn parses_apple_style_example() {
        let p = MediaPlaylist::parse(APPLE_STYLE).expect("parses");
        assert_eq!(p.version, 6);
        assert_eq!(p.target_duration, 4);
        assert_eq!(p.part_inf, Some(0.33334));
        let sc = p.server_control.clone().expect("server control");
        assert!(sc.can_block_reload);
        assert_eq!(sc.part_hold_back, Some(1.0));
        assert_eq!(sc.can_skip_until, Some(24.0));
        assert_eq!(p.media_sequence, 266);
        assert_eq!(p.map_uri.as_deref(), Some("init.mp4"));
        assert_eq!(p.segments.len(), 7);
        assert_eq!(
            p.segments[0].program_date_time.as_deref(),
            Some("2019-02-14T02:13:36.106Z")
        );
        assert_eq!(p.segments[5].parts.len(), 12);
        assert!(p.segments[5].parts[4].independent);
        assert_eq!(
            p.segments[6].program_date_time.as_deref(),
            Some("2019-02-14T02:14:00.106Z")
        );
        assert_eq!(p.trailing_parts.len(), 3);
        assert_eq!(p.next_msn(), 273);
        assert_eq!(p.preload_hints[0].uri, "filePart273.3.mp4");
        assert_eq!(p.rendition_reports.len(), 2);
        assert_eq!(p.rendition_reports[1].last_part, Some(1));
        // Writing it back and parsing again gives the same model.
        assert_eq!(MediaPlaylist::parse(&p.write()), Ok(p.clone()));
        // 1.0 vs 3 x 0.33334 is within the tolerance; the example is clean
        // except for the parts-sum nit (12 x 0.33334 = 4.00008 exactly).
        let v = check_media_playlist(&p);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn clean_playlist_has_no_violations() {
        let v = check_media_playlist(&ll_playlist());
        assert!(v.is_empty(), "{v:?}");
    }

    fn sc(p: &mut MediaPlaylist, f: impl FnOnce(&mut ServerControl)) {
        f(p.server_control.get_or_insert_with(Default::default));
    }

    fn rules(p: &MediaPlaylist) -> Vec<&'static str> {
        check_media_playlist(p)
            .into_iter()
            .map(|v| v.rule)
            .collect()
    }

    #[test]
    fn checker_flags_each_rule() {
        let mut p = ll_playlist();
        p.segments[0].duration = 2.6; // rounds to 3 > 2
        assert!(rules(&p).contains(&"target-duration"));
        p.segments[0].duration = 2.49; // rounds to 2: fine
        assert!(!rules(&p).contains(&"target-duration"));

        let mut p = ll_playlist();
        p.segments[5].parts[3].duration = 0.6;
        assert!(rules(&p).contains(&"part-duration-max"));

        let mut p = ll_playlist();
        p.segments[5].parts[1].duration = 0.3; // middle part, not independent
        let r = rules(&p);
        assert!(r.contains(&"part-duration-min"), "{r:?}");
        assert!(r.contains(&"parts-sum"), "{r:?}");
        let mut p = ll_playlist();
        p.segments[5].parts[3].duration = 0.3; // last part of its parent: exempt
        assert!(!rules(&p).contains(&"part-duration-min"));
        let mut p = ll_playlist();
        p.trailing_parts[1].duration = 0.1; // last trailing part: exempt
        assert!(!rules(&p).contains(&"part-duration-min"));
        p.trailing_parts[1].independent = false;
        p.trailing_parts.push(part("x", 0.5, false));
        assert!(rules(&p).contains(&"part-duration-min"));

        let mut p = ll_playlist();
        sc(&mut p, |s| s.part_hold_back = Some(1.2));
        let r = rules(&p);
        assert!(r.contains(&"part-hold-back-3x") && !r.contains(&"part-hold-back-min"));
        sc(&mut p, |s| s.part_hold_back = Some(0.9));
        assert!(rules(&p).contains(&"part-hold-back-min"));
        sc(&mut p, |s| s.part_hold_back = None);
        assert!(rules(&p).contains(&"part-hold-back-required"));

        let mut p = ll_playlist();
        sc(&mut p, |s| s.hold_back = Some(5.0));
        assert!(rules(&p).contains(&"hold-back-min"));
        sc(&mut p, |s| s.can_skip_until = Some(11.0));
        assert!(rules(&p).contains(&"can-skip-until-min"));
        sc(&mut p, |s| {
            s.can_skip_until = None;
            s.can_skip_dateranges = true
        });
        assert!(rules(&p).contains(&"can-skip-dateranges-requires-can-skip-until"));
        p.skipped_segments = 1;
        assert!(rules(&p).contains(&"skip-without-can-skip-until"));
        p.version = 8;
        assert!(rules(&p).contains(&"skip-version"));
        assert!(!rules(&p).contains(&"map-version"));
        p.version = 5;
        assert!(rules(&p).contains(&"map-version"));
        p.version = 0;
        assert!(rules(&p).contains(&"version-decimal-extinf"));

        let mut p = ll_playlist();
        p.ended = true;
        assert!(rules(&p).contains(&"preload-hint-with-endlist"));
        p.part_inf = None;
        let r = rules(&p);
        assert!(r.contains(&"preload-hint-without-parts") && r.contains(&"part-inf-required"));

        let mut p = ll_playlist();
        p.segments[1].parts = vec![part("old.m4s", 0.5, true); 4];
        assert!(rules(&p).contains(&"parts-too-old"));
        // Segment 104 ends 2 + 1 (trailing) = 3 s before the end: < 6 s, fine.
        assert!(!rules(&ll_playlist()).contains(&"parts-too-old"));

        let mut p = ll_playlist();
        sc(&mut p, |s| s.can_block_reload = false);
        assert!(rules(&p).contains(&"ll-profile-block-reload"));

        let mut p = ll_playlist();
        p.trailing_parts = vec![part("t", 0.5, true); 6]; // 3 s in progress
        assert!(rules(&p).contains(&"target-duration"));

        let mut p = ll_playlist();
        p.segments[0].duration = f64::NAN;
        p.segments[1].uri.clear();
        let r = rules(&p);
        assert!(r.contains(&"duration-valid") && r.contains(&"uri-valid"));
    }

    #[test]
    fn levels_and_display() {
        let mut p = ll_playlist();
        sc(&mut p, |s| s.part_hold_back = Some(1.2));
        let v = check_media_playlist(&p);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].level, Level::Should);
        assert!(v[0].to_string().starts_with("[SHOULD] part-hold-back-3x"));
    }

    #[test]
    fn multivariant_round_trip() {
        let m = MultivariantPlaylist {
            version: 6,
            independent_segments: true,
            variants: vec![
                Variant {
                    uri: "720p/index.m3u8".into(),
                    bandwidth: 3_000_000,
                    average_bandwidth: Some(2_500_000),
                    codecs: Some("avc1.64001f,mp4a.40.2".into()),
                    resolution: Some((1280, 720)),
                    frame_rate: Some(29.97),
                    pathway_id: Some("cdn-a".into()),
                },
                Variant {
                    uri: "audio/index.m3u8".into(),
                    bandwidth: 128_000,
                    codecs: Some("mp4a.40.2".into()),
                    ..Default::default()
                },
            ],
            content_steering: Some(ContentSteering {
                server_uri: "https://steer.example/s.json".into(),
                pathway_id: Some("cdn-a".into()),
            }),
            session_data: vec![("com.mediamesh.title".into(), "Live, now".into())],
        };
        let text = m.write();
        assert!(text.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970,PATHWAY-ID=\"cdn-a\"\n720p/index.m3u8\n"
        ), "{text}");
        assert!(text.contains("#EXT-X-CONTENT-STEERING:SERVER-URI=\"https://steer.example/s.json\",PATHWAY-ID=\"cdn-a\"\n"));
        assert_eq!(MultivariantPlaylist::parse(&text), Ok(m));
    }

    #[test]
    fn multivariant_write_is_idempotent_through_parse() {
        let m = MultivariantPlaylist {
            variants: vec![Variant {
                uri: "v.m3u8".into(),
                bandwidth: 1,
                frame_rate: Some(30000.0 / 1001.0),
                ..Default::default()
            }],
            ..Default::default()
        };
        let once = m.write();
        assert!(once.contains("FRAME-RATE=29.970"));
        let back = MultivariantPlaylist::parse(&once).expect("parses");
        assert_eq!(back.write(), once);
    }

    #[test]
    fn multivariant_skips_unmodelled_tags() {
        let text = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"a.m3u8\"\n\
#EXT-X-SESSION-DATA:DATA-ID=\"x\",URI=\"x.json\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv.m3u8\n";
        let m = MultivariantPlaylist::parse(text).expect("parses");
        assert_eq!(m.variants.len(), 1);
        assert!(m.session_data.is_empty());
    }

    #[test]
    fn wrong_kind_is_rejected() {
        let media = ll_playlist().write();
        assert!(matches!(
            MultivariantPlaylist::parse(&media),
            Err(PlaylistError::WrongKind { .. })
        ));
        let mv = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
        assert!(matches!(
            MediaPlaylist::parse(mv),
            Err(PlaylistError::WrongKind { .. })
        ));
    }

    #[test]
    fn parser_rejects_bad_input() {
        let bad = [
            "",
            "\u{feff}#EXTM3U\n#EXT-X-TARGETDURATION:2\n",
            "#EXTM3\n",
            "#EXTM3U\n",                                             // no TARGETDURATION
            "#EXTM3U\n#EXT-X-TARGETDURATION:-1\n",                   // not an integer
            "#EXTM3U\n#EXT-X-TARGETDURATION:99999999999999999999\n", // overflow
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-TARGETDURATION:2\n",
            "#EXTM3U\n#EXT-X-VERSION:300\n#EXT-X-TARGETDURATION:2\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:NaN,\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:inf,\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1e3,\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,URI=\"a\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=\"0.5\",URI=\"a\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,DURATION=0.5,URI=\"a\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,URI=\"a\",\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,URI=\"a\"x\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,URI=\"a\",INDEPENDENT=MAYBE\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PRELOAD-HINT:TYPE=SEGMENT,URI=\"a\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-RENDITION-REPORT:URI=\"a\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-BYTERANGE:100@0\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-MAP:URI=\"i.mp4\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-GAP\n",
            "#EXTM3U\n#EXTM3U\n#EXT-X-TARGETDURATION:2\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na\u{1}b.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na\rb.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1,RECENTLY-REMOVED-DATERANGES=\"\"\n",
        ];
        for b in bad {
            assert!(MediaPlaylist::parse(b).is_err(), "accepted {b:?}");
        }
        let long = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#{}\n",
            "x".repeat(MAX_LINE_LEN)
        );
        assert_eq!(
            MediaPlaylist::parse(&long),
            Err(PlaylistError::LineTooLong {
                line: 3,
                max: MAX_LINE_LEN
            })
        );
        let huge = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:{},\na.ts\n",
            "9".repeat(400)
        );
        assert!(MediaPlaylist::parse(&huge).is_err());
        let attrs: Vec<String> = (0..40).map(|i| format!("X{i}=1")).collect();
        let wide = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:{}\n",
            attrs.join(",")
        );
        assert!(MediaPlaylist::parse(&wide).is_err());
        let many = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n{}",
            "#c\n".repeat(MAX_LINES)
        );
        assert_eq!(
            MediaPlaylist::parse(&many),
            Err(PlaylistError::TooManyLines(MAX_LINES))
        );
    }

    #[test]
    fn parser_is_lenient_where_the_spec_is() {
        let text = "#EXTM3U\r\n# comment\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-UNKNOWN:FOO=1\r\n\
#EXT-X-KEY:METHOD=NONE\r\n#EXTINF:2,title here\r\nseg.ts\r\n\r\n";
        let p = MediaPlaylist::parse(text).expect("parses");
        assert_eq!(p.segments.len(), 1);
        assert_eq!(p.segments[0].duration, 2.0);
        assert_eq!(p.segments[0].uri, "seg.ts");
        assert_eq!(p.version, 0);
    }

    #[test]
    fn parser_survives_garbage() {
        // A tiny deterministic fuzz: mutate the writer output byte-wise.
        let base = ll_playlist().write().into_bytes();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut parsed = 0;
        for _ in 0..2000 {
            let mut b = base.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % b.len();
                b[i] = (seed >> 32) as u8;
            }
            let s = String::from_utf8_lossy(&b);
            // Whatever parses must round-trip exactly through the writer.
            if let Ok(p) = MediaPlaylist::parse(&s) {
                parsed += 1;
                assert_eq!(MediaPlaylist::parse(&p.write()).as_ref(), Ok(&p), "{s}");
                let _ = check_media_playlist(&p);
            }
            let _ = MultivariantPlaylist::parse(&s);
        }
        assert!(parsed > 20, "only {parsed} mutants parsed");
    }
}
