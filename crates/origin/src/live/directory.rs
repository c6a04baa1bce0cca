//! The origin's side of the fleet's stream directory: what other origins say about a
//! stream (its numbering timeline, and whether they hold it live), and this origin's
//! own memory of streams that ended, so numbering continues without reusing a name.
//!
//! The fleet implements [`Directory`] over its registry (`mediamesh` wires it in with
//! [`super::Streams::set_directory`]); without a fleet there is none and only the local
//! [`History`] counts. Lookups never wait on the network: implementations answer from
//! their last known view. Not here: the numbering rule (`numbering.rs`) or HTTP
//! redirects (`http/live.rs`).

use std::collections::HashMap;

use parking_lot::Mutex;

use super::numbering::SharedTimeline;

/// The stream directory as an origin reads it.
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// Timelines other origins published for `stream` (recently, even if they have
    /// since left), the most relevant first. Must not block.
    fn timelines(&self, stream: &str) -> Vec<SharedTimeline>;
    /// Public base URLs (`http://host:port`) of other origins that hold `stream` live,
    /// with at least one complete segment. Never this origin. Must not block.
    fn holders(&self, stream: &str) -> Vec<String>;
}

/// Most stream names remembered after they end.
const MAX_REMEMBERED: usize = 10_000;

/// The last timeline of each stream this origin packaged, kept after the stream is
/// forgotten so that a new publish under the name continues above it.
#[derive(Debug, Default)]
pub struct History {
    map: Mutex<HashMap<String, SharedTimeline>>,
}

impl History {
    pub fn get(&self, stream: &str) -> Option<SharedTimeline> {
        self.map.lock().get(stream).cloned()
    }

    pub fn put(&self, stream: &str, timeline: SharedTimeline) {
        let mut map = self.map.lock();
        if map.len() >= MAX_REMEMBERED && !map.contains_key(stream) {
            // Forget the oldest entry.
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, t)| t.updated_ms)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(stream.to_string(), timeline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::numbering::Grid;

    fn tl(updated_ms: u64) -> SharedTimeline {
        SharedTimeline {
            grid: Grid {
                anchor_ms: 0,
                target_ms: 2000,
            },
            pdt_anchor_ms: 0,
            last_msn: Some(updated_ms),
            last_cc: 0,
            live: false,
            updated_ms,
        }
    }

    #[test]
    fn history_is_bounded_and_forgets_the_oldest() {
        let h = History::default();
        for i in 0..MAX_REMEMBERED as u64 + 5 {
            h.put(&format!("s{i}"), tl(i + 1));
        }
        assert_eq!(h.map.lock().len(), MAX_REMEMBERED);
        assert!(h.get("s0").is_none());
        assert_eq!(h.get("s10004").and_then(|t| t.last_msn), Some(10005));
    }
}
