//! The scheduler's name for a segment, shared by its core and its holdings tables.

/// A segment of the rendition being played: its media sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);
