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

mod checker;
mod model;
mod parser;
mod writer;

pub use checker::*;
pub use model::*;
pub use parser::attribute_list;
#[allow(unused_imports)]
use parser::*;
#[allow(unused_imports)]
use writer::*;

#[cfg(test)]
mod tests;
