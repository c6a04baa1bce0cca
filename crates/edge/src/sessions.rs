//! The bounded table of CMCD session ids seen recently, behind the
//! `mediamesh_edge_cmcd_sessions` gauge.
//!
//! Session ids are client input (anyone can send a new `sid` per request), so the
//! table must cost O(1) per request whatever it holds: it is sharded by a hash of the
//! id, and each shard keeps two generations of ids — the current one and the previous
//! one. A shard's current generation becomes the previous (and the old previous is
//! dropped) when it is a window old or holds its share of the cap, so memory stays
//! within twice the cap and each insert does constant work (dropping a generation is
//! amortized over the inserts that filled it). No scan ever runs under a lock a
//! request waits for.
//!
//! Not here: parsing CMCD (`cmcd`) or anything that decides access or caching: the
//! count is an estimate for a gauge (ids seen within one to two windows).

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long a session id counts as recent (at least; at most twice this).
pub const SESSION_WINDOW: Duration = Duration::from_secs(30);
/// Longest session id kept (longer ones are cut).
const MAX_SID_CHARS: usize = 64;
const SHARDS: usize = 16;

#[derive(Debug)]
struct Shard {
    current: HashSet<String>,
    previous: HashSet<String>,
    /// Ids of `current` also in `previous` (to count each id once).
    overlap: usize,
    since: Instant,
}

/// Recently seen CMCD session ids, bounded by `cap` (per generation).
#[derive(Debug)]
pub struct Sessions {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    window: Duration,
    hasher: RandomState,
}

impl Sessions {
    /// A table of at most `cap` ids per generation (two generations at most).
    pub fn new(cap: usize) -> Self {
        Self::with_window(cap, SESSION_WINDOW)
    }

    fn with_window(cap: usize, window: Duration) -> Self {
        let now = Instant::now();
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        current: HashSet::new(),
                        previous: HashSet::new(),
                        overlap: 0,
                        since: now,
                    })
                })
                .collect(),
            per_shard: cap.div_ceil(SHARDS).max(1),
            window,
            hasher: RandomState::new(),
        }
    }

    /// Notes that `sid` was seen now.
    pub fn record(&self, sid: &str) {
        self.record_at(sid, Instant::now());
    }

    fn record_at(&self, sid: &str, now: Instant) {
        let sid: String = sid.chars().take(MAX_SID_CHARS).collect();
        let i = (self.hasher.hash_one(&sid) as usize) % SHARDS;
        let Some(shard) = self.shards.get(i) else {
            return;
        };
        let old = {
            let mut s = shard.lock();
            let mut old = None;
            if now.saturating_duration_since(s.since) >= self.window
                || (s.current.len() >= self.per_shard && !s.current.contains(&sid))
            {
                let cur = std::mem::take(&mut s.current);
                old = Some(std::mem::replace(&mut s.previous, cur));
                s.overlap = 0;
                s.since = now;
            }
            if s.current.contains(&sid) {
                return;
            }
            if s.previous.contains(&sid) {
                s.overlap += 1;
            }
            s.current.insert(sid);
            old
        };
        // The dropped generation is freed outside the lock.
        drop(old);
    }

    /// Ids seen within the last one to two windows.
    pub fn count(&self) -> usize {
        self.count_at(Instant::now())
    }

    fn count_at(&self, now: Instant) -> usize {
        self.shards
            .iter()
            .map(|m| {
                let s = m.lock();
                let age = now.saturating_duration_since(s.since);
                if age >= self.window * 2 {
                    0
                } else if age >= self.window {
                    s.current.len()
                } else {
                    s.current.len() + s.previous.len() - s.overlap.min(s.previous.len())
                }
            })
            .sum()
    }

    #[cfg(test)]
    fn contains(&self, sid: &str) -> bool {
        self.shards.iter().any(|m| {
            let s = m.lock();
            s.current.contains(sid) || s.previous.contains(sid)
        })
    }

    /// Ids held now, both generations (for tests and memory estimates).
    pub fn held(&self) -> usize {
        self.shards
            .iter()
            .map(|m| {
                let s = m.lock();
                s.current.len() + s.previous.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_id_once_and_forgets_old_ones() {
        let t = Sessions::with_window(1000, Duration::from_secs(30));
        let t0 = Instant::now();
        for i in 0..100 {
            t.record_at(&format!("s{i}"), t0);
            t.record_at(&format!("s{i}"), t0);
        }
        assert_eq!(t.count_at(t0), 100);
        // A generation later the same ids are still counted once.
        let t1 = t0 + Duration::from_secs(31);
        for i in 0..10 {
            t.record_at(&format!("s{i}"), t1);
        }
        assert_eq!(t.count_at(t1), 100);
        assert_eq!(t.count_at(t1 + Duration::from_secs(31)), 10);
        assert_eq!(t.count_at(t1 + Duration::from_secs(61)), 0);
    }

    /// Finding 8: 100k (here 400k) distinct ids. The table stays within twice its cap
    /// and every insert does bounded work (this test would take minutes with the old
    /// scan-per-insert table: each new id past the cap re-scanned all of them).
    #[test]
    fn a_spray_of_ids_stays_bounded() {
        let cap = 10_000;
        let t = Sessions::new(cap);
        for i in 0..400_000u32 {
            t.record(&format!("sid-{i}"));
        }
        assert!(
            t.held() <= 2 * (cap.div_ceil(SHARDS)) * SHARDS,
            "{}",
            t.held()
        );
        assert!(t.count() > 0);
        // A new viewer is still counted (the old table, full of fresh ids, refused it).
        t.record("a-real-viewer");
        assert!(t.contains("a-real-viewer"));
        assert!(t.held() <= 2 * (cap.div_ceil(SHARDS)) * SHARDS + 1);
    }
}
