//! The p2p-media-loader 2.3 peer wire protocol, sans-IO, so native peers and
//! browser peers share one swarm. `PROTOCOL.md` in this crate describes the
//! format as implemented; the summary:
//!
//! - [`framing`]: a data-channel message is a command chunk iff it starts with
//!   `cstr`/`dstr` and ends with `cend`/`dend`; everything else is raw segment
//!   bytes. Commands longer than the max message size (default 65535) are cut into
//!   equal slices `cstr…dend`, `dstr…dend`…, `dstr…cend`.
//! - [`serial`]: fields are a one-byte ASCII name and an item whose first byte's high
//!   nibble is its type: Int (sign-magnitude big-endian, low nibble = byte count),
//!   SimilarIntArray (values grouped by `v & !0xff`), String (12-bit length).
//! - [`command`]: six commands (type byte 0..=5): SegmentsAnnouncement `{l, p}`,
//!   SegmentRequest `{i, r, b?}`, SegmentData `{i, s, r}` (then `s` raw bytes in
//!   chunks ≤ max message size), SendingCompleted / SegmentAbsent /
//!   CancelSegmentRequest `{i, r}`. `i` is the segment's external id (media sequence
//!   number for live HLS, playlist position for VOD), `r` a request id.
//! - Part extension (`PROTOCOL.md` §5): a SegmentsAnnouncement field `x` = 1 says a
//!   peer speaks it; commands 64..=69 announce, request and carry LL-HLS parts
//!   `(msn, index)`, sent only to such peers (stock p2p-media-loader ignores unknown
//!   fields and command types). Codes 70..=255 are reserved and ignored.
//! - [`session`]: one connection's state (one download and one upload at a time,
//!   segment or part).
//! - [`ids`]: stream swarm id `v2-{swarmId}-{main|secondary}-{index}`, the 20-char
//!   base64 `info_hash`, `-PM0203-` peer ids and the 2.3 stream short id.
//!
//! Not here: WebRTC, the tracker, scheduling and integrity checks.

pub mod command;
pub mod error;
pub mod framing;
pub mod ids;
pub mod serial;
pub mod session;

pub use command::{
    CommandDecoder, CommandLimits, Incoming, PeerCommand, RequestId, SegmentId, WirePart,
    EXT_PARTS, MAX_PART_SIGNATURE,
};
pub use error::{ProtoError, UsageError};
pub use ids::{info_hash, stream_short_id, stream_swarm_id, StreamKind, StreamProps};
pub use session::{SegmentStatus, Session, SessionEvent, SessionLimits};

#[cfg(test)]
mod golden;
