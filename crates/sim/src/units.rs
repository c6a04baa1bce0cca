//! The media timeline of a run in the units viewers fetch and share: whole segments
//! (`latency = "max-offload"`) or LL-HLS parts (`low`, `balanced`). A unit is a dense
//! index: part `i` of segment `s` is `s × per_segment + i`; with whole segments the
//! unit is the segment number, so segment mode keeps its old numbers. This module
//! says how long a unit is, where it sits on the media timeline, how many bytes it
//! has, when it exists (live: its last frame is made), and which `PartKey` the
//! part scheduler knows it by.
//!
//! Not here: who fetches what ([`crate::swarm`]), caching ([`crate::edge`]).

use p2p::scheduler::{PartInfo, PartKey, SegmentId, SegmentInfo};

use crate::net::segment_bytes;
use crate::scenario::{Mode, Scenario};

/// The units of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Units {
    parts: bool,
    live: bool,
    segment_ms: u64,
    /// Part target (the last part of a segment may be shorter); `segment_ms` when
    /// the run shares whole segments.
    part_ms: u64,
    per_segment: u64,
    segments: u64,
}

impl Units {
    pub fn new(s: &Scenario) -> Units {
        let parts = s.peers.latency.parts() && s.part_ms > 0;
        let part_ms = if parts { s.part_ms } else { s.segment_ms };
        Units {
            parts,
            live: s.mode == Mode::Live,
            segment_ms: s.segment_ms,
            part_ms,
            per_segment: s.segment_ms.div_ceil(part_ms).max(1),
            segments: s.segments(),
        }
    }

    /// Units are LL-HLS parts (else whole segments).
    pub fn parts(&self) -> bool {
        self.parts
    }

    /// Units of the event.
    pub fn count(&self) -> u64 {
        self.segments * self.per_segment
    }

    pub fn per_segment(&self) -> u64 {
        self.per_segment
    }

    pub fn segment_of(&self, u: u64) -> u64 {
        u / self.per_segment
    }

    /// Media span of unit `u` within its segment: (start, end) offsets in ms.
    fn offsets(&self, u: u64) -> (u64, u64) {
        let i = u % self.per_segment;
        let start = i * self.part_ms;
        (start, ((i + 1) * self.part_ms).min(self.segment_ms))
    }

    /// Media time at which unit `u` starts.
    pub fn start_ms(&self, u: u64) -> u64 {
        self.segment_of(u) * self.segment_ms + self.offsets(u).0
    }

    pub fn duration_ms(&self, u: u64) -> u64 {
        let (a, b) = self.offsets(u);
        b - a
    }

    /// Media time at which unit `u` ends.
    pub fn end_ms(&self, u: u64) -> u64 {
        self.start_ms(u) + self.duration_ms(u)
    }

    /// Wall time at which unit `u` exists: live, when its last frame is made (the
    /// stream starts at wall time 0 with media time 0); on demand, from the start.
    pub fn produced_at(&self, u: u64) -> u64 {
        if self.live {
            self.end_ms(u)
        } else {
            0
        }
    }

    /// The unit holding media time `ms`.
    pub fn unit_at(&self, ms: u64) -> u64 {
        let seg = ms / self.segment_ms;
        let i = ((ms % self.segment_ms) / self.part_ms).min(self.per_segment - 1);
        seg * self.per_segment + i
    }

    /// Bytes of unit `u` at `bitrate_bps`: a part is its share of the segment's bytes
    /// by duration (the parts of a segment add up to the segment exactly; a CMAF
    /// segment is its parts back to back).
    pub fn bytes(&self, bitrate_bps: u64, u: u64) -> u64 {
        let seg = self.segment_of(u);
        let whole = segment_bytes(bitrate_bps, self.segment_ms, seg);
        if !self.parts {
            return whole;
        }
        let (a, b) = self.offsets(u);
        (whole * b / self.segment_ms - whole * a / self.segment_ms).max(1)
    }

    /// The part scheduler's key and timeline entry of unit `u`.
    pub fn part_info(&self, u: u64) -> PartInfo {
        PartInfo {
            key: self.key(u),
            start_ms: self.start_ms(u),
            duration_ms: self.duration_ms(u),
        }
    }

    pub fn key(&self, u: u64) -> PartKey {
        PartKey {
            segment: self.segment_of(u),
            index: (u % self.per_segment) as u32,
        }
    }

    pub fn unit_of(&self, k: PartKey) -> u64 {
        k.segment * self.per_segment + u64::from(k.index)
    }

    /// The segment scheduler's timeline entry of segment `seg` (segment mode).
    pub fn segment_info(&self, seg: u64) -> SegmentInfo {
        SegmentInfo {
            id: SegmentId(seg),
            start_ms: seg * self.segment_ms,
            duration_ms: self.segment_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Latency;

    fn units(segment_ms: u64, part_ms: u64, latency: Latency) -> Units {
        let mut s = Scenario {
            segment_ms,
            part_ms,
            duration_s: 60,
            ..Scenario::default()
        };
        s.peers.latency = latency;
        Units::new(&s)
    }

    #[test]
    fn segments_keep_their_numbers() {
        let u = units(2_000, 500, Latency::MaxOffload);
        assert!(!u.parts());
        assert_eq!(u.count(), 30);
        assert_eq!(
            (u.start_ms(7), u.end_ms(7), u.produced_at(7)),
            (14_000, 16_000, 16_000)
        );
        assert_eq!(u.bytes(3_000_000, 7), segment_bytes(3_000_000, 2_000, 7));
        assert_eq!(u.unit_at(15_999), 7);
    }

    #[test]
    fn parts_tile_their_segment() {
        let u = units(2_000, 500, Latency::Low);
        assert!(u.parts());
        assert_eq!((u.per_segment(), u.count()), (4, 120));
        // Part 2 of segment 5.
        let p = 5 * 4 + 2;
        assert_eq!(
            (u.start_ms(p), u.end_ms(p), u.produced_at(p)),
            (11_000, 11_500, 11_500)
        );
        assert_eq!(
            u.key(p),
            PartKey {
                segment: 5,
                index: 2
            }
        );
        assert_eq!(u.unit_of(u.key(p)), p);
        assert_eq!(u.unit_at(11_499), p);
        let sum: u64 = (20..24).map(|q| u.bytes(3_000_000, q)).sum();
        assert_eq!(sum, segment_bytes(3_000_000, 2_000, 5));
        // A segment that is not a whole number of parts ends with a short part.
        let u = units(2_000, 600, Latency::Balanced);
        assert_eq!(u.per_segment(), 4);
        assert_eq!((u.start_ms(3), u.duration_ms(3)), (1_800, 200));
        assert_eq!(u.unit_at(1_999), 3);
        assert_eq!(u.unit_at(2_000), 4);
    }
}
