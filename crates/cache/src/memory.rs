//! The memory tier: objects bounded in bytes, admitted and evicted by S3-FIFO (Yang et
//! al., SOSP 2023). New objects enter a small FIFO (about 10 % of the bytes); those
//! read again before they reach its head move to the main FIFO, the others leave and
//! their key's hash is remembered in a ghost FIFO, so an object inserted again soon
//! after goes straight to main. The main FIFO gives objects with reads left (2-bit
//! counters) another round instead of evicting them. A one-time scan of new objects
//! therefore only churns the small FIFO and cannot flush the working set as in LRU.
//!
//! Replacing a key updates it in place (same queue, same position, its read count
//! kept), so live playlists replaced twice a second cost no queue growth.
//!
//! Internally synchronized (one `parking_lot::Mutex`; every operation is O(1)
//! amortized); share it behind an `Arc`. It stores; it does not judge freshness.
//! Every change is counted ([`MemoryCache::version`]), so that per-thread copies of
//! hot objects (`hot.rs`) know when they are out of date.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::CachedObject;

/// Highest read count (2 bits).
const MAX_FREQ: u8 = 3;
/// The ghost remembers at least this many keys, else as many as the cache holds.
const MIN_GHOST: usize = 64;
/// Bytes charged per entry beyond the object and its key (map slot, list node).
const ENTRY_OVERHEAD: usize = 64;
const NIL: usize = usize::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

#[derive(Debug)]
struct Node {
    key: String,
    obj: Arc<CachedObject>,
    size: usize,
    freq: u8,
    queue: Queue,
    prev: usize,
    next: usize,
}

/// A doubly linked FIFO over slab indices: `head` is the oldest.
#[derive(Debug, Clone, Copy)]
struct List {
    head: usize,
    tail: usize,
    bytes: usize,
    len: usize,
}

impl Default for List {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            bytes: 0,
            len: 0,
        }
    }
}

/// Hashes of recently evicted keys, oldest first. A hash collision only means an
/// object skips the small FIFO, so hashes are enough.
#[derive(Debug, Default)]
struct Ghost {
    order: VecDeque<(u64, u64)>,
    /// hash → sequence number of its live entry in `order`.
    live: HashMap<u64, u64>,
    seq: u64,
}

impl Ghost {
    fn push(&mut self, hash: u64) {
        self.seq += 1;
        self.live.insert(hash, self.seq);
        self.order.push_back((hash, self.seq));
    }

    /// Forgets `hash` and says whether it was remembered.
    fn take(&mut self, hash: u64) -> bool {
        self.live.remove(&hash).is_some()
    }

    fn trim(&mut self, cap: usize) {
        while self.live.len() > cap || self.order.len() > 2 * cap.max(1) {
            let Some((hash, seq)) = self.order.pop_front() else {
                break;
            };
            if self.live.get(&hash) == Some(&seq) {
                self.live.remove(&hash);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, usize>,
    slab: Vec<Option<Node>>,
    free: Vec<usize>,
    small: List,
    main: List,
    ghost: Ghost,
}

/// The byte-bounded S3-FIFO memory tier.
#[derive(Debug)]
pub struct MemoryCache {
    max_bytes: usize,
    max_object: usize,
    inner: Mutex<Inner>,
    /// Unique to this tier in the process (never reused, unlike an address).
    id: u64,
    /// Changes so far: bumped under the lock by every insert, replacement, removal
    /// and eviction.
    version: AtomicU64,
}

/// The next tier's [`MemoryCache::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl MemoryCache {
    /// A tier of `max_bytes`; objects over a quarter of it are not admitted.
    pub fn new(max_bytes: usize) -> Self {
        Self::with_max_object(max_bytes, max_bytes / 4)
    }

    /// A tier of `max_bytes` admitting objects up to `max_object` bytes (never more
    /// than `max_bytes`), as counted by [`CachedObject::size`] plus the key.
    pub fn with_max_object(max_bytes: usize, max_object: usize) -> Self {
        Self {
            max_bytes,
            max_object: max_object.min(max_bytes),
            inner: Mutex::new(Inner::default()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
        }
    }

    /// This tier's identity in the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// How many changes the tier has seen: equal counts, equal contents.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The object under `key`, counting the read.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        let mut inner = self.inner.lock();
        let idx = *inner.map.get(key)?;
        let node = inner.node_mut(idx)?;
        node.freq = (node.freq + 1).min(MAX_FREQ);
        Some(node.obj.clone())
    }

    /// Stores `obj` under `key`, replacing what was there. An object larger than the
    /// admission limit is not stored, and removes the older version of its key.
    pub fn insert(&self, key: String, obj: Arc<CachedObject>) {
        let size = obj
            .size()
            .saturating_add(key.len())
            .saturating_add(ENTRY_OVERHEAD);
        let mut evicted = Vec::new();
        {
            let mut inner = self.inner.lock();
            // Counted before anything changes, under the lock: a reader that saw the
            // old count and then reads the new contents keeps nothing (`hot.rs`).
            self.changed();
            if size > self.max_object {
                if let Some(old) = inner.remove_key(&key) {
                    evicted.push(old);
                }
                return;
            }
            if let Some(&idx) = inner.map.get(&key) {
                if let Some(node) = inner.node_mut(idx) {
                    let old_size = node.size;
                    let queue = node.queue;
                    evicted.push(std::mem::replace(&mut node.obj, obj));
                    node.size = size;
                    let list = inner.list_mut(queue);
                    list.bytes = list.bytes - old_size + size;
                }
            } else {
                let queue = if inner.ghost.take(hash_key(&key)) {
                    Queue::Main
                } else {
                    Queue::Small
                };
                inner.push_new(key, obj, size, queue);
            }
            self.evict(&mut inner, &mut evicted);
        }
        drop(evicted); // outside the lock: dropping a last reference frees a body
    }

    pub fn remove(&self, key: &str) {
        let old = {
            let mut inner = self.inner.lock();
            self.changed();
            inner.remove_key(key)
        };
        drop(old);
    }

    /// Bytes held, as charged against `max_bytes`.
    pub fn bytes(&self) -> usize {
        let inner = self.inner.lock();
        inner.small.bytes + inner.main.bytes
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Evicts until within `max_bytes`: from the small FIFO while it holds more than
    /// its share, else from main.
    fn evict(&self, inner: &mut Inner, out: &mut Vec<Arc<CachedObject>>) {
        let small_share = self.max_bytes / 10;
        while inner.small.bytes + inner.main.bytes > self.max_bytes {
            let from_small =
                inner.small.len > 0 && (inner.small.bytes > small_share || inner.main.len == 0);
            let done = if from_small {
                inner.evict_small(out)
            } else {
                inner.evict_main(out)
            };
            if !done {
                break; // both empty: cannot happen while bytes > 0
            }
        }
        let cap = inner.map.len().max(MIN_GHOST);
        inner.ghost.trim(cap);
    }
}

fn hash_key(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl Inner {
    fn node_mut(&mut self, idx: usize) -> Option<&mut Node> {
        self.slab.get_mut(idx).and_then(Option::as_mut)
    }

    fn list_mut(&mut self, q: Queue) -> &mut List {
        match q {
            Queue::Small => &mut self.small,
            Queue::Main => &mut self.main,
        }
    }

    fn push_new(&mut self, key: String, obj: Arc<CachedObject>, size: usize, queue: Queue) {
        let node = Node {
            key: key.clone(),
            obj,
            size,
            freq: 0,
            queue,
            prev: NIL,
            next: NIL,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slab[i] = Some(node);
                i
            }
            None => {
                self.slab.push(Some(node));
                self.slab.len() - 1
            }
        };
        self.map.insert(key, idx);
        self.link_tail(idx, queue);
    }

    /// Appends slab entry `idx` (already holding its node) to the tail of `queue`.
    fn link_tail(&mut self, idx: usize, queue: Queue) {
        let tail = self.list_mut(queue).tail;
        let size = match self.node_mut(idx) {
            Some(n) => {
                n.queue = queue;
                n.prev = tail;
                n.next = NIL;
                n.size
            }
            None => return,
        };
        if let Some(t) = self.node_mut(tail) {
            t.next = idx;
        }
        let list = self.list_mut(queue);
        if list.head == NIL {
            list.head = idx;
        }
        list.tail = idx;
        list.bytes += size;
        list.len += 1;
    }

    /// Takes `idx` out of its queue (the node stays in the slab).
    fn unlink(&mut self, idx: usize) {
        let Some(n) = self.node_mut(idx) else {
            return;
        };
        let (prev, next, queue, size) = (n.prev, n.next, n.queue, n.size);
        n.prev = NIL;
        n.next = NIL;
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.list_mut(queue).head = next,
        }
        match self.node_mut(next) {
            Some(nx) => nx.prev = prev,
            None => self.list_mut(queue).tail = prev,
        }
        let list = self.list_mut(queue);
        list.bytes -= size;
        list.len -= 1;
    }

    /// Unlinks and frees `idx`, returning its node.
    fn take(&mut self, idx: usize) -> Option<Node> {
        self.unlink(idx);
        let node = self.slab.get_mut(idx)?.take()?;
        self.free.push(idx);
        self.map.remove(&node.key);
        Some(node)
    }

    fn remove_key(&mut self, key: &str) -> Option<Arc<CachedObject>> {
        let idx = *self.map.get(key)?;
        self.take(idx).map(|n| n.obj)
    }

    /// The small FIFO's oldest: read since insertion → main, else out (into the
    /// ghost). False when the small FIFO is empty.
    fn evict_small(&mut self, out: &mut Vec<Arc<CachedObject>>) -> bool {
        let idx = self.small.head;
        let Some(freq) = self.node_mut(idx).map(|n| n.freq) else {
            return false;
        };
        if freq > 0 {
            self.unlink(idx);
            self.link_tail(idx, Queue::Main);
        } else if let Some(node) = self.take(idx) {
            self.ghost.push(hash_key(&node.key));
            out.push(node.obj);
        }
        true
    }

    /// The main FIFO's oldest: reads left → another round with one read less, else
    /// out. False when the main FIFO is empty.
    fn evict_main(&mut self, out: &mut Vec<Arc<CachedObject>>) -> bool {
        let idx = self.main.head;
        let Some(freq) = self.node_mut(idx).map(|n| n.freq) else {
            return false;
        };
        if freq > 0 {
            if let Some(n) = self.node_mut(idx) {
                n.freq -= 1;
            }
            self.unlink(idx);
            self.link_tail(idx, Queue::Main);
        } else if let Some(node) = self.take(idx) {
            out.push(node.obj);
        }
        true
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
            memo: crate::Memo::default(),
            pages: Default::default(),
        })
    }

    /// Checks the lists against the slab and the map.
    fn check(c: &MemoryCache) {
        let inner = c.inner.lock();
        let mut seen = 0;
        for (q, list) in [(Queue::Small, inner.small), (Queue::Main, inner.main)] {
            let (mut idx, mut prev, mut bytes, mut len) = (list.head, NIL, 0, 0);
            while idx != NIL {
                let n = inner.slab[idx].as_ref().expect("linked node exists");
                assert_eq!(n.queue, q);
                assert_eq!(n.prev, prev);
                assert_eq!(inner.map.get(&n.key), Some(&idx));
                bytes += n.size;
                len += 1;
                prev = idx;
                idx = n.next;
            }
            assert_eq!(list.tail, prev);
            assert_eq!((list.bytes, list.len), (bytes, len));
            seen += len;
        }
        assert_eq!(seen, inner.map.len());
        assert!(inner.small.bytes + inner.main.bytes <= c.max_bytes);
    }

    /// xorshift: deterministic test traffic without a `rand` dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    #[test]
    fn byte_bound_holds_under_random_traffic() {
        let c = MemoryCache::new(100_000);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..20_000 {
            let key = format!("k{}", rng.below(400));
            match rng.below(10) {
                0..=4 => {
                    c.get(&key);
                }
                5..=8 => c.insert(key, obj(rng.below(8000))),
                _ => c.remove(&key),
            }
            assert!(c.bytes() <= 100_000);
            if i % 500 == 0 {
                check(&c);
            }
        }
        check(&c);
        assert!(c.len() > 10);
        // The slab never holds more slots than the cache ever held at once.
        assert!(c.inner.lock().slab.len() <= 400);
    }

    #[test]
    fn oversized_objects_are_not_admitted() {
        let c = MemoryCache::new(100_000);
        c.insert("huge".into(), obj(30_000));
        assert!(c.get("huge").is_none());
        assert_eq!(c.bytes(), 0);
        // A too-large update removes the old version rather than keep serving it.
        c.insert("k".into(), obj(100));
        c.insert("k".into(), obj(30_000));
        assert!(c.get("k").is_none());
        assert_eq!((c.len(), c.bytes()), (0, 0));
        let c = MemoryCache::with_max_object(100_000, 1000);
        c.insert("a".into(), obj(2000));
        assert!(c.is_empty());
        let c = MemoryCache::new(0);
        c.insert("a".into(), obj(0));
        assert!(c.is_empty());
    }

    /// The same trace on a byte-bounded LRU, to show what S3-FIFO is for.
    struct Lru {
        max: usize,
        order: VecDeque<(String, usize)>,
    }
    impl Lru {
        fn get(&mut self, k: &str) -> bool {
            let Some(pos) = self.order.iter().position(|(x, _)| x == k) else {
                return false;
            };
            if let Some(e) = self.order.remove(pos) {
                self.order.push_back(e);
            }
            true
        }
        fn insert(&mut self, k: String, size: usize) {
            self.order.retain(|(x, _)| *x != k);
            self.order.push_back((k, size));
            while self.order.iter().map(|(_, s)| s).sum::<usize>() > self.max {
                self.order.pop_front();
            }
        }
    }

    #[test]
    fn a_scan_does_not_flush_the_working_set() {
        let max = 200_000;
        let c = MemoryCache::new(max);
        let size = obj(2000).size() + 6 + ENTRY_OVERHEAD;
        let mut lru = Lru {
            max,
            order: VecDeque::new(),
        };
        let hot: Vec<String> = (0..20).map(|i| format!("hot{i}")).collect();
        for k in &hot {
            c.insert(k.clone(), obj(2000));
            lru.insert(k.clone(), size);
        }
        // The working set is read a few times.
        for _ in 0..3 {
            for k in &hot {
                assert!(c.get(k).is_some());
                assert!(lru.get(k));
            }
        }
        // Then a one-time scan of 1000 new objects, ten times what the cache holds,
        // with the working set read only every 200 of them.
        for i in 0..1000 {
            let k = format!("scan{i:04}");
            c.insert(k.clone(), obj(2000));
            lru.insert(k, size);
            if i % 200 == 199 {
                for k in &hot {
                    c.get(k);
                    lru.get(k);
                }
            }
            assert!(c.bytes() <= max);
        }
        let kept = hot.iter().filter(|k| c.get(k).is_some()).count();
        let lru_kept = hot.iter().filter(|k| lru.get(k)).count();
        assert_eq!(kept, hot.len(), "S3-FIFO keeps the hot set through a scan");
        assert_eq!(lru_kept, 0, "LRU loses it to the same trace");
        check(&c);
    }

    #[test]
    fn ghost_hits_go_straight_to_main() {
        let c = MemoryCache::new(20_000);
        c.insert("a".into(), obj(1000));
        // Enough to push "a" out of the small FIFO, few enough that the ghost
        // remembers it.
        for i in 0..40 {
            c.insert(format!("f{i}"), obj(1000));
        }
        assert!(c.get("a").is_none(), "evicted from small, unread");
        c.insert("a".into(), obj(1000));
        let queue_of = |k: &str| {
            let inner = c.inner.lock();
            let idx = *inner.map.get(k)?;
            inner.slab[idx].as_ref().map(|n| n.queue)
        };
        assert_eq!(queue_of("a"), Some(Queue::Main));
        // A key never seen goes to small.
        c.insert("new".into(), obj(1000));
        assert_eq!(queue_of("new"), Some(Queue::Small));
        check(&c);
    }

    #[test]
    fn updates_replace_in_place() {
        let c = MemoryCache::new(1_000_000);
        c.insert("p".into(), obj(1000));
        c.get("p");
        let before = c.bytes();
        for n in 0..10_000 {
            c.insert("p".into(), obj(1000 + n % 7));
        }
        assert_eq!(c.get("p").map(|o| o.body.len()), Some(1000 + 9_999 % 7));
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), before + 9_999 % 7);
        {
            let inner = c.inner.lock();
            assert_eq!(inner.slab.len(), 1, "no queue growth from updates");
            assert_eq!(
                inner
                    .map
                    .get("p")
                    .and_then(|&i| inner.slab[i].as_ref())
                    .map(|n| n.freq),
                Some(2)
            );
        }
        c.remove("p");
        assert!(c.get("p").is_none());
        assert_eq!((c.len(), c.bytes()), (0, 0));
        c.remove("p");
        check(&c);
    }

    #[test]
    fn shared_between_threads() {
        let c = Arc::new(MemoryCache::new(50_000));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut rng = Rng(t + 1);
                    for _ in 0..5_000 {
                        let k = format!("k{}", rng.below(100));
                        if rng.below(2) == 0 {
                            c.insert(k, obj(rng.below(3000)));
                        } else {
                            c.get(&k);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        check(&c);
    }
}
