//! Segment numbering by timestamps, so that several origins packaging the same publish
//! name and cut segments alike, and a stream that starts again never reuses a name.
//!
//! The rule (sans-IO; the publisher and the fleet's stream directory feed it):
//!
//! - The publisher's timeline (its RTMP timestamps, unchanged: `tfdt` is the
//!   publisher's decode time) is mapped onto the wall clock once per publish:
//!   `pdt_anchor = wall clock at the first keyframe − its timestamp`. Two origins fed
//!   the same publish (ffmpeg `tee`, an encoder's backup URL) get the same mapping to
//!   within their difference in arrival time.
//! - A numbering grid of cells one segment target long is laid over the timeline:
//!   `cell(t) = ⌊(anchor + t) / target⌋`. A segment is cut on the first keyframe that
//!   falls in a later cell than the segment's first frame, and its media sequence
//!   number (MSN) is its cell. The grid is placed so that the first keyframe sits
//!   0.382 of the way into its cell (`anchor = cell·target + 0.382·target − t₀`): with
//!   a keyframe interval of the target, or a half, third or quarter of it, every
//!   keyframe then stays at least 4 % of a cell (80 ms at 2 s) from a cell edge, so
//!   keyframe jitter never moves a boundary, and every cell has exactly one cut.
//! - The first origin to package a publish writes `(anchor, pdt_anchor)` to the stream
//!   directory ([`SharedTimeline`]); an origin that starts packaging the same publish
//!   later (seconds later, or after a restart) **adopts** that grid when its own
//!   `pdt_anchor` is within [`ADOPT_TOLERANCE_MS`] of the shared one, so both produce
//!   the same MSNs, boundaries and `tfdt` without any rounding at a boundary splitting
//!   them. Without a directory each origin centres its own grid: two origins then agree
//!   unless their first keyframes straddle a cell edge by their arrival-time
//!   difference (probability ≈ difference / target, ~0.1 % on a LAN).
//! - A **new timeline** (no directory entry, or one that does not match: the encoder
//!   restarted its clock, or moved from another origin) starts fresh. If the stream had
//!   a predecessor (in the directory or in this origin's memory) numbering continues at
//!   its last MSN + 1 (plus one per target duration its record may be stale) and the
//!   first segment carries `EXT-X-DISCONTINUITY` with the discontinuity sequence
//!   continued, so players see one discontinuity exactly where the timeline changes and
//!   never a reused name. Without a predecessor the first MSN is `⌊now / target⌋`, as
//!   before, so a stream started again after the origin restarted does not reuse names
//!   either (MSNs never run ahead of the wall clock).
//!
//! Not here: reading the directory (the fleet does that) or cutting media (the
//! packager applies [`Grid::cell`]).

use serde::{Deserialize, Serialize};

/// Largest difference between two origins' `pdt_anchor` for the same publish: arrival
/// time differences plus clock error between origin machines.
pub const ADOPT_TOLERANCE_MS: u64 = 1_000;

/// Where in its cell a stream's first keyframe is placed, in thousandths: away from
/// the cell edges for keyframe intervals of 1, 1/2, 1/3 and 1/4 of the target.
pub const KEYFRAME_OFFSET: u64 = 382;

fn offset(target_ms: u64) -> i128 {
    (target_ms as i128 * KEYFRAME_OFFSET as i128) / 1000
}

/// The numbering grid of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    /// Added to a publisher timestamp (ms) to place it on the grid.
    pub anchor_ms: i64,
    /// Cell length: the segment target, ms.
    pub target_ms: u64,
}

impl Grid {
    /// A grid whose cell `cell` has the keyframe at `first_kf_ms` at
    /// [`KEYFRAME_OFFSET`] of its length.
    pub fn centered(first_kf_ms: u64, cell: u64, target_ms: u64) -> Grid {
        let target_ms = target_ms.max(1);
        let mid = (cell as i128) * (target_ms as i128) + offset(target_ms);
        let anchor = mid - first_kf_ms as i128;
        Grid {
            anchor_ms: anchor.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            target_ms,
        }
    }

    /// The cell (MSN) of publisher time `ms`.
    pub fn cell(&self, ms: u64) -> u64 {
        let t = self.anchor_ms as i128 + ms as i128;
        if t <= 0 {
            return 0;
        }
        (t / self.target_ms.max(1) as i128).min(u64::MAX as i128) as u64
    }

    /// The cell of a 90 kHz decode time (exact for millisecond input).
    pub fn cell_90k(&self, ticks: u64) -> u64 {
        let t = self.anchor_ms as i128 * 90 + ticks as i128;
        if t <= 0 {
            return 0;
        }
        (t / (self.target_ms.max(1) as i128 * 90)).min(u64::MAX as i128) as u64
    }

    /// Publisher time (ms) where a first keyframe goes in `cell` (at
    /// [`KEYFRAME_OFFSET`]); 0 if that is before the timeline.
    pub fn center_ms(&self, cell: u64) -> u64 {
        let t =
            cell as i128 * self.target_ms as i128 + offset(self.target_ms) - self.anchor_ms as i128;
        t.clamp(0, u64::MAX as i128) as u64
    }
}

/// A stream's numbering grid and wall-clock mapping, fixed at its first keyframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub grid: Grid,
    /// Wall clock (unix ms) minus publisher time.
    pub pdt_anchor_ms: i64,
}

/// What one origin says about a stream's timeline in the stream directory (and what
/// it remembers of its own ended streams).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedTimeline {
    /// The numbering grid.
    pub grid: Grid,
    /// Wall clock (unix ms) minus publisher time: where the publish's timestamps sit on
    /// the wall clock (PROGRAM-DATE-TIME, and the test that a publish is the same one).
    pub pdt_anchor_ms: i64,
    /// MSN of the last complete segment, if any.
    pub last_msn: Option<u64>,
    /// Discontinuity sequence number of that segment (`EXT-X-DISCONTINUITY-SEQUENCE`
    /// plus the discontinuities before it in the playlist).
    pub last_cc: u64,
    /// The publisher was connected when this was written.
    pub live: bool,
    /// Wall clock (unix ms) of the write.
    pub updated_ms: u64,
}

/// How a publish starts its numbering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub grid: Grid,
    pub pdt_anchor_ms: i64,
    /// MSN of the first segment.
    pub first_msn: u64,
    /// The first segment follows another timeline: mark `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` to start the playlist with.
    pub discontinuity_sequence: u64,
    /// The grid came from another origin packaging the same publish.
    pub adopted: bool,
}

/// Whether `t` describes the same publish as a first keyframe at publisher time
/// `first_kf_ms` arriving at wall clock `now_ms`.
pub fn same_publish(t: &SharedTimeline, now_ms: u64, first_kf_ms: u64, target_ms: u64) -> bool {
    let raw = now_ms as i128 - first_kf_ms as i128;
    t.grid.target_ms == target_ms
        && (t.pdt_anchor_ms as i128 - raw).unsigned_abs() <= u128::from(ADOPT_TOLERANCE_MS)
}

/// Decides the numbering of a publish whose first keyframe, at publisher time
/// `first_kf_ms`, arrived at wall clock `now_ms`. `known` are the timelines the stream
/// directory and this origin's memory hold for the stream name; `floor` is the lowest
/// MSN this origin may still use for it (its own last MSN + 1, or 0).
pub fn start(
    now_ms: u64,
    first_kf_ms: u64,
    target_ms: u64,
    floor: u64,
    known: &[SharedTimeline],
) -> Start {
    let target_ms = target_ms.max(1);
    let raw =
        (now_ms as i128 - first_kf_ms as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    // The same publish, packaged elsewhere first: adopt its grid.
    for t in known {
        if !same_publish(t, now_ms, first_kf_ms, target_ms) {
            continue;
        }
        let first_msn = t.grid.cell(first_kf_ms);
        // A timeline whose publisher has left is only continued past its last segment
        // (a clock that restarted must not land on names already used).
        let past = match (t.live, t.last_msn) {
            (false, Some(last)) => first_msn > last,
            _ => true,
        };
        if first_msn < floor || !past {
            continue;
        }
        return Start {
            grid: t.grid,
            pdt_anchor_ms: t.pdt_anchor_ms,
            first_msn,
            discontinuity: false,
            discontinuity_sequence: t.last_cc,
            adopted: true,
        };
    }
    // A new timeline: continue after the latest predecessor, if any.
    let predecessor = known
        .iter()
        .filter_map(|t| {
            let last = t.last_msn?;
            // A record written while the publisher was still connected may be behind
            // by the time since it was written: skip the segments it may have missed.
            let stale = if t.live {
                now_ms.saturating_sub(t.updated_ms).div_ceil(target_ms)
            } else {
                0
            };
            Some((last.saturating_add(1).saturating_add(stale), t.last_cc))
        })
        .max();
    let (first_msn, discontinuity, discontinuity_sequence) = match predecessor {
        Some((next, cc)) => (next.max(floor), true, cc),
        None => ((now_ms / target_ms).max(floor), false, 0),
    };
    Start {
        grid: Grid::centered(first_kf_ms, first_msn, target_ms),
        pdt_anchor_ms: raw,
        first_msn,
        discontinuity,
        discontinuity_sequence,
        adopted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 2_000;
    const NOW: u64 = 1_764_100_000_123;

    fn shared(s: &Start, last_msn: Option<u64>, live: bool, updated_ms: u64) -> SharedTimeline {
        SharedTimeline {
            grid: s.grid,
            pdt_anchor_ms: s.pdt_anchor_ms,
            last_msn,
            last_cc: 0,
            live,
            updated_ms,
        }
    }

    /// MSNs of the segments cut from keyframes at `kfs` (ms) by `grid`.
    fn cuts(grid: &Grid, kfs: &[u64]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut cell = None;
        for &k in kfs {
            let c = grid.cell(k);
            if cell.is_none_or(|p| c > p) {
                out.push((c, k));
                cell = Some(c);
            }
        }
        out
    }

    #[test]
    fn a_fresh_grid_centres_the_first_keyframe_and_follows_the_wall_clock() {
        let s = start(NOW, 5_000, T, 0, &[]);
        assert_eq!(s.first_msn, NOW / T);
        assert!(!s.discontinuity && !s.adopted);
        assert_eq!(s.grid.cell(5_000), s.first_msn);
        // The keyframe sits well inside its cell: jitter is harmless.
        assert_eq!(s.grid.cell(5_000 - 764), s.first_msn);
        assert_eq!(s.grid.cell(5_000 - 765), s.first_msn - 1);
        assert_eq!(s.grid.cell(5_000 + 1_235), s.first_msn);
        assert_eq!(s.grid.cell(5_000 + 1_236), s.first_msn + 1);
        assert_eq!(s.grid.center_ms(s.first_msn), 5_000);
        assert_eq!(s.grid.cell_90k(5_000 * 90), s.first_msn);
    }

    #[test]
    fn a_late_origin_adopts_the_shared_grid_and_cuts_the_same_segments() {
        // Origin A saw the first keyframe at ts 0; origin B joins 7.3 s later (it was
        // restarted, or its publish began later) and its first keyframe is ts 8000.
        let a = start(NOW, 0, T, 0, &[]);
        let b = start(
            NOW + 8_000 + 37,
            8_000,
            T,
            0,
            &[shared(&a, Some(a.first_msn + 3), true, NOW + 7_000)],
        );
        assert!(b.adopted);
        assert_eq!(b.grid, a.grid);
        assert_eq!(b.pdt_anchor_ms, a.pdt_anchor_ms);
        // Keyframes every 2 s with millisecond jitter.
        let kfs: Vec<u64> = (0..20).map(|i| i * 2_000 + (i * 7) % 3).collect();
        let from_a = cuts(&a.grid, &kfs);
        let from_b = cuts(&b.grid, &kfs[4..]);
        assert_eq!(&from_a[4..], &from_b[..], "same MSNs at the same keyframes");
        // Contiguous: one cut per cell.
        for w in from_a.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1);
        }
    }

    #[test]
    fn one_second_gops_make_two_second_segments_on_both_origins() {
        let a = start(NOW, 0, T, 0, &[]);
        let kfs: Vec<u64> = (0..30).map(|i| i * 1_000).collect();
        let from_a = cuts(&a.grid, &kfs);
        assert!(from_a
            .windows(2)
            .all(|w| w[1].1 - w[0].1 == 2_000 && w[1].0 == w[0].0 + 1));
        // B joins on an odd keyframe: its first segment is short, then the same cuts.
        let b = start(NOW + 5_000, 5_000, T, 0, &[shared(&a, None, true, NOW)]);
        let from_b = cuts(&b.grid, &kfs[5..]);
        assert_eq!(from_b[0].1, 5_000);
        assert!(from_a.contains(&from_b[1]) && from_a.contains(&from_b[2]));
    }

    #[test]
    fn keyframes_stay_away_from_cell_edges_for_common_intervals() {
        for den in [1, 2, 3, 4] {
            let g = Grid::centered(0, 1000, T);
            for i in 0..200u64 {
                let at = g.anchor_ms + (i * T / den) as i64;
                let into = at.rem_euclid(T as i64) as u64;
                let edge = into.min(T - into);
                assert!(
                    edge >= T / 25,
                    "1/{den}: keyframe {i} {edge} ms from an edge"
                );
            }
        }
    }

    #[test]
    fn without_a_directory_two_origins_agree_when_arrival_differs_a_little() {
        let a = start(NOW, 0, T, 0, &[]);
        let b = start(NOW + 12, 0, T, 0, &[]);
        assert_eq!(a.grid, b.grid);
        assert_eq!(a.first_msn, b.first_msn);
    }

    #[test]
    fn a_new_encoder_timeline_continues_after_the_predecessor_with_a_discontinuity() {
        let a = start(NOW, 0, T, 0, &[]);
        let last = a.first_msn + 30;
        let mut t = shared(&a, Some(last), false, NOW + 61_000);
        t.last_cc = 2;
        // The encoder reconnects to another origin 64 s in, its clock back at 0.
        let b = start(NOW + 64_000, 0, T, 0, &[t.clone()]);
        assert!(!b.adopted);
        assert!(b.discontinuity);
        assert_eq!(b.first_msn, last + 1, "no gap, no reuse");
        assert_eq!(b.discontinuity_sequence, 2);
        assert_eq!(b.grid.cell(0), last + 1);
        // A record written while the publisher was still connected, 2.5 s old, may
        // miss up to two segments: skip them rather than reuse their names.
        t.live = true;
        let c = start(NOW + 64_000, 0, T, 0, &[t]);
        assert_eq!(c.first_msn, last + 1 + 2);
    }

    #[test]
    fn a_restarted_stream_never_goes_below_the_local_floor() {
        let s = start(NOW, 0, T, NOW / T + 100, &[]);
        assert_eq!(s.first_msn, NOW / T + 100);
        // Nor adopts a grid that would take it back.
        let a = start(NOW, 0, T, 0, &[]);
        let b = start(
            NOW + 10,
            10,
            T,
            a.first_msn + 50,
            &[shared(&a, Some(a.first_msn), true, NOW)],
        );
        assert!(!b.adopted);
        assert!(b.first_msn >= a.first_msn + 50);
    }

    #[test]
    fn a_left_timeline_is_adopted_only_past_its_last_segment() {
        let a = start(NOW, 0, T, 0, &[]);
        // The publisher left after 10 segments; it comes back to another origin with
        // its clock running on (same anchor): the grid continues.
        let left = shared(&a, Some(a.first_msn + 10), false, NOW + 21_000);
        let b = start(NOW + 30_000, 30_000, T, 0, std::slice::from_ref(&left));
        assert!(b.adopted);
        assert_eq!(b.first_msn, a.first_msn + 15);
        // Its clock restarted at 0 within the tolerance: a new timeline after the last.
        let c = start(NOW + 500, 0, T, 0, &[left]);
        assert!(!c.adopted && c.discontinuity);
        assert_eq!(c.first_msn, a.first_msn + 11);
    }

    #[test]
    fn other_targets_and_far_anchors_are_not_the_same_publish() {
        let a = start(NOW, 0, T, 0, &[]);
        let t = shared(&a, None, true, NOW);
        assert!(same_publish(&t, NOW + 900, 900, T));
        assert!(!same_publish(&t, NOW + 2_000, 900, T));
        assert!(!same_publish(&t, NOW + 900, 900, 4_000));
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let s = start(u64::MAX, u64::MAX, 1, u64::MAX, &[]);
        let _ = s.grid.cell(u64::MAX);
        let _ = s.grid.cell_90k(u64::MAX);
        let _ = s.grid.center_ms(u64::MAX);
        let g = Grid {
            anchor_ms: i64::MIN,
            target_ms: 0,
        };
        assert_eq!(g.cell(5), 0);
        assert_eq!(g.cell_90k(5), 0);
        let _ = start(
            0,
            u64::MAX,
            0,
            0,
            &[SharedTimeline {
                grid: g,
                pdt_anchor_ms: i64::MAX,
                last_msn: Some(u64::MAX),
                last_cc: u64::MAX,
                live: true,
                updated_ms: 0,
            }],
        );
    }
}
