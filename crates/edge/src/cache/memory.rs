//! The memory tier: objects bounded in bytes, admitted and evicted by S3-FIFO (Yang et
//! al., SOSP 2023): new objects enter a small FIFO (10 % of the bytes); those read
//! again before they leave it move to the main FIFO, the rest are dropped and
//! remembered in a ghost FIFO of keys, so a one-time scan of new objects cannot push
//! out the working set the way it does in LRU. The main FIFO gives objects with
//! reads left (2-bit counters) another round instead of evicting them.
//!
//! Internally synchronized; share it behind an `Arc`. It stores, it does not decide
//! freshness.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::CachedObject;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

#[derive(Debug)]
struct Entry {
    obj: Arc<CachedObject>,
    size: usize,
    freq: u8,
    queue: Queue,
    /// Bumped on every replace so stale queue slots of the same key are skipped.
    generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    small: VecDeque<(String, u64)>,
    main: VecDeque<(String, u64)>,
    ghost: VecDeque<String>,
    ghost_set: HashSet<String>,
    small_bytes: usize,
    main_bytes: usize,
    next_generation: u64,
}

/// The byte-bounded S3-FIFO memory tier.
#[derive(Debug)]
pub struct MemoryCache {
    max_bytes: usize,
    max_object: usize,
    inner: Mutex<Inner>,
}

impl MemoryCache {
    /// A tier of `max_bytes`; objects over a quarter of it are not admitted.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            max_object: max_bytes / 4,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        let mut inner = self.inner.lock();
        let e = inner.entries.get_mut(key)?;
        e.freq = (e.freq + 1).min(3);
        Some(e.obj.clone())
    }

    pub fn insert(&self, key: String, obj: Arc<CachedObject>) {
        let size = obj.size() + key.len();
        if size > self.max_object {
            self.remove(&key);
            return;
        }
        let mut inner = self.inner.lock();
        inner.next_generation += 1;
        let generation = inner.next_generation;
        let queue = match inner.entries.remove(&key) {
            Some(old) => {
                inner.sub(old.queue, old.size);
                old.queue
            }
            None if inner.ghost_set.remove(&key) => Queue::Main,
            None => Queue::Small,
        };
        match queue {
            Queue::Small => inner.small.push_back((key.clone(), generation)),
            Queue::Main => inner.main.push_back((key.clone(), generation)),
        }
        inner.add(queue, size);
        inner.entries.insert(
            key,
            Entry {
                obj,
                size,
                freq: 0,
                queue,
                generation,
            },
        );
        self.evict(&mut inner);
    }

    pub fn remove(&self, key: &str) {
        let mut inner = self.inner.lock();
        if let Some(old) = inner.entries.remove(key) {
            inner.sub(old.queue, old.size);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        let inner = self.inner.lock();
        inner.small_bytes + inner.main_bytes
    }

    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict(&self, inner: &mut Inner) {
        let small_target = self.max_bytes / 10;
        while inner.small_bytes + inner.main_bytes > self.max_bytes {
            let from_small = inner.small_bytes > small_target || inner.main.is_empty();
            let progressed = if from_small {
                inner.evict_small()
            } else {
                inner.evict_main()
            };
            if !(progressed || inner.evict_small() || inner.evict_main()) {
                break;
            }
        }
        // The ghost remembers about as many keys as the cache holds objects.
        let ghost_cap = inner.entries.len().max(64);
        while inner.ghost.len() > ghost_cap {
            if let Some(k) = inner.ghost.pop_front() {
                inner.ghost_set.remove(&k);
            }
        }
    }
}

impl Inner {
    fn add(&mut self, q: Queue, n: usize) {
        match q {
            Queue::Small => self.small_bytes += n,
            Queue::Main => self.main_bytes += n,
        }
    }

    fn sub(&mut self, q: Queue, n: usize) {
        match q {
            Queue::Small => self.small_bytes = self.small_bytes.saturating_sub(n),
            Queue::Main => self.main_bytes = self.main_bytes.saturating_sub(n),
        }
    }

    /// Takes the oldest live entry of the small queue: read again → main, else out
    /// (into the ghost). Returns false when the queue is empty.
    fn evict_small(&mut self) -> bool {
        while let Some((key, generation)) = self.small.pop_front() {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.generation != generation || e.queue != Queue::Small {
                continue;
            }
            if e.freq > 0 {
                e.freq = 0;
                e.queue = Queue::Main;
                let size = e.size;
                self.sub(Queue::Small, size);
                self.add(Queue::Main, size);
                self.main.push_back((key, generation));
            } else if let Some(e) = self.entries.remove(&key) {
                self.sub(Queue::Small, e.size);
                if self.ghost_set.insert(key.clone()) {
                    self.ghost.push_back(key);
                }
            }
            return true;
        }
        false
    }

    /// Takes the oldest live entry of the main queue: reads left → another round
    /// with one read less, else out.
    fn evict_main(&mut self) -> bool {
        while let Some((key, generation)) = self.main.pop_front() {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.generation != generation || e.queue != Queue::Main {
                continue;
            }
            if e.freq > 0 {
                e.freq -= 1;
                self.main.push_back((key, generation));
            } else if let Some(e) = self.entries.remove(&key) {
                self.sub(Queue::Main, e.size);
            }
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn obj(n: usize) -> Arc<CachedObject> {
        Arc::new(CachedObject {
            status: 200,
            headers: vec![],
            body: Bytes::from(vec![0u8; n]),
            stored_ms: 0,
            fresh_until_ms: u64::MAX,
            stale_while_revalidate_until_ms: 0,
            stale_if_error_until_ms: 0,
        })
    }

    #[test]
    fn byte_bound_holds() {
        let c = MemoryCache::new(100_000);
        for i in 0..1000 {
            c.insert(format!("k{i}"), obj(1000 + i % 500));
            assert!(c.bytes() <= 100_000);
        }
        assert!(c.len() > 10);
        // Too large to admit.
        c.insert("huge".into(), obj(50_000));
        assert!(c.get("huge").is_none());
    }

    #[test]
    fn a_scan_does_not_flush_the_working_set() {
        let c = MemoryCache::new(200_000);
        let hot: Vec<String> = (0..20).map(|i| format!("hot{i}")).collect();
        for k in &hot {
            c.insert(k.clone(), obj(2000));
        }
        // Read the working set a few times so it is promoted.
        for _ in 0..3 {
            for k in &hot {
                assert!(c.get(k).is_some());
            }
        }
        // A scan of 2000 new objects read once, far more than the cache holds.
        for i in 0..2000 {
            c.insert(format!("scan{i}"), obj(2000));
            if i % 50 == 0 {
                for k in &hot {
                    c.get(k);
                }
            }
        }
        let kept = hot.iter().filter(|k| c.get(k).is_some()).count();
        assert_eq!(kept, hot.len(), "S3-FIFO keeps the hot set through a scan");
        assert!(c.bytes() <= 200_000);
    }

    #[test]
    fn ghost_hits_go_straight_to_main_and_replace_updates() {
        let c = MemoryCache::new(20_000);
        c.insert("a".into(), obj(1000));
        // Enough to push "a" out of the small queue, few enough that the ghost
        // (64 keys at this size) still remembers it.
        for i in 0..40 {
            c.insert(format!("f{i}"), obj(1000));
        }
        assert!(c.get("a").is_none(), "evicted from small");
        c.insert("a".into(), obj(1000));
        assert_eq!(
            c.inner.lock().entries.get("a").map(|e| e.queue),
            Some(Queue::Main)
        );
        c.insert("a".into(), obj(1500));
        assert_eq!(c.get("a").map(|o| o.body.len()), Some(1500));
        c.remove("a");
        assert!(c.get("a").is_none());
        let before = c.bytes();
        c.insert("b".into(), obj(10));
        assert!(c.bytes() > before || c.bytes() <= 20_000);
    }
}
