//! What a peer announced: the segments it holds and those it is fetching over HTTP,
//! as sorted, shared (reference-counted) lists.
//!
//! An announcement replaces the peer's previous one as a whole, and the same
//! announcement goes to every neighbour: sharing it makes handing it over a
//! reference-count increment instead of a copy per neighbour (the simulator hands
//! over millions).
//!
//! Not here: what the scheduler does with it ([`super::core`]), the wire format
//! ([`crate::proto`]).

use std::sync::Arc;

use super::ids::SegmentId;

/// One announcement. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    loaded: Arc<[SegmentId]>,
    loading: Arc<[SegmentId]>,
}

impl Holdings {
    /// Segments held (`loaded`) and being fetched (`loading`), in any order and
    /// with repeats (they are sorted and de-duplicated here).
    pub fn new(
        loaded: impl IntoIterator<Item = SegmentId>,
        loading: impl IntoIterator<Item = SegmentId>,
    ) -> Holdings {
        Holdings {
            loaded: sorted(loaded),
            loading: sorted(loading),
        }
    }

    /// Whether the peer said it holds the segment.
    pub fn holds(&self, id: SegmentId) -> bool {
        self.loaded.binary_search(&id).is_ok()
    }

    /// Whether the peer said it is fetching the segment.
    pub fn fetching(&self, id: SegmentId) -> bool {
        self.loading.binary_search(&id).is_ok()
    }
}

fn sorted(ids: impl IntoIterator<Item = SegmentId>) -> Arc<[SegmentId]> {
    let mut v: Vec<SegmentId> = ids.into_iter().collect();
    // Announcements usually come sorted (oldest first); only sort when not.
    if !v.windows(2).all(|w| w[0] < w[1]) {
        v.sort_unstable();
        v.dedup();
    }
    v.into()
}

#[cfg(test)]
mod tests {
    use super::{Holdings, SegmentId};

    #[test]
    fn unsorted_and_repeated_ids_are_found() {
        let h = Holdings::new([9, 3, 3, 7].map(SegmentId), [12, 11].map(SegmentId));
        assert!(h.holds(SegmentId(3)) && h.holds(SegmentId(7)) && h.holds(SegmentId(9)));
        assert!(!h.holds(SegmentId(11)) && !h.holds(SegmentId(4)));
        assert!(h.fetching(SegmentId(11)) && h.fetching(SegmentId(12)));
        assert!(!h.fetching(SegmentId(9)));
        assert_eq!(h.clone(), h);
        assert!(!Holdings::default().holds(SegmentId(0)));
    }
}
