//! Per-thread copies of the memory tier's hottest objects, for the edge's quick path:
//! the same few keys (a live stream's newest segments and playlists, the object of a
//! load test) read by every connection thread at once.
//!
//! Why: [`MemoryCache::get`] takes the tier's one lock, hashes the key (SipHash:
//! keys come from clients), marks the node read and clones the object's `Arc`; the
//! caller then clones the body's `Bytes`. For one hot key, every one of those writes
//! the same few cache lines from every core: the lock word, the node, two reference
//! counts. Here each thread keeps up to [`HOT_ENTRIES`] recently read objects of its
//! own, found by comparing the key, with a body whose reference count only this
//! thread touches (a copy, for bodies up to [`HOT_COPY_MAX`]).
//!
//! Never stale: the tier counts its changes (every insert, replacement, removal and
//! eviction bumps [`MemoryCache::version`]); a thread's copies are dropped as soon as
//! it sees another count, and are tagged with the count read *before* the lookup
//! that filled them, so a change racing with that lookup drops them too. Freshness
//! (TTL) is still the caller's to judge, per read, as for [`MemoryCache::get`].
//!
//! What it changes for eviction: a read served here does not mark the node read.
//! The tier only evicts on an insert, and an insert bumps the count, so each
//! thread's next read of a hot key goes to the tier again and marks it; a key read
//! between two inserts is marked at least once, which is what S3-FIFO asks (its
//! counters stop at 3 anyway).
//!
//! What it is not: a second cache tier. It holds at most [`HOT_ENTRIES`] objects
//! per thread, which stay alive until the thread reads again after a change (an
//! evicted object kept here by a thread that stopped serving lives on until then).

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;

use super::memory::MemoryCache;
use super::CachedObject;

/// Objects one thread keeps.
pub const HOT_ENTRIES: usize = 8;
/// Bodies up to this size are copied for the thread; larger ones are shared (their
/// reference count is common to all threads, but no copy is made).
pub const HOT_COPY_MAX: usize = 16 * 1024;

struct Entry {
    key: Box<str>,
    obj: Arc<CachedObject>,
    body: Bytes,
}

#[derive(Default)]
struct Hot {
    /// The tier these entries are from ([`MemoryCache::id`]) and its change count
    /// when they were read.
    tier: u64,
    version: u64,
    entries: Vec<Entry>,
    /// Where the next new entry goes once full (round robin).
    next: usize,
}

thread_local! {
    static HOT: RefCell<Hot> = RefCell::new(Hot::default());
}

impl MemoryCache {
    /// `f` of the object under `key` and its body, from this thread's copies when
    /// they are current, else from the tier (counting the read, as [`Self::get`]),
    /// keeping it for the next read. `None` when the tier does not have it.
    pub fn read_hot<R>(&self, key: &str, f: impl FnOnce(&CachedObject, &Bytes) -> R) -> Option<R> {
        HOT.with(|hot| {
            let Ok(mut hot) = hot.try_borrow_mut() else {
                // Called from inside `f`: no copies for this one.
                let obj = self.get(key)?;
                return Some(f(&obj, &obj.body));
            };
            let version = self.version();
            if hot.tier != self.id() || hot.version != version {
                hot.entries.clear();
                hot.next = 0;
                hot.tier = self.id();
                hot.version = version;
            }
            if let Some(e) = hot.entries.iter().find(|e| &*e.key == key) {
                return Some(f(&e.obj, &e.body));
            }
            let obj = self.get(key)?;
            let body = if obj.body.len() <= HOT_COPY_MAX {
                Bytes::copy_from_slice(&obj.body)
            } else {
                obj.body.clone()
            };
            let entry = Entry {
                key: key.into(),
                obj,
                body,
            };
            let at = if hot.entries.len() < HOT_ENTRIES {
                hot.entries.push(entry);
                hot.entries.len() - 1
            } else {
                let at = hot.next;
                hot.next = (at + 1) % HOT_ENTRIES;
                hot.entries[at] = entry;
                at
            };
            let e = &hot.entries[at];
            Some(f(&e.obj, &e.body))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryCache;

    fn obj(body: &[u8]) -> Arc<CachedObject> {
        Arc::new(CachedObject {
            status: 200,
            headers: Vec::new(),
            body: Bytes::copy_from_slice(body),
            stored_ms: 0,
            fresh_until_ms: u64::MAX,
            stale_while_revalidate_until_ms: u64::MAX,
            stale_if_error_until_ms: u64::MAX,
            memo: Default::default(),
            pages: Default::default(),
        })
    }

    fn read(c: &MemoryCache, key: &str) -> Option<Vec<u8>> {
        c.read_hot(key, |o, body| {
            assert_eq!(&o.body[..], &body[..]);
            body.to_vec()
        })
    }

    #[test]
    fn a_replaced_or_removed_object_is_never_read_from_a_copy() {
        let c = MemoryCache::new(1 << 20);
        c.insert("/a".into(), obj(b"one"));
        assert_eq!(read(&c, "/a").as_deref(), Some(&b"one"[..]));
        assert_eq!(read(&c, "/a").as_deref(), Some(&b"one"[..]));
        c.insert("/a".into(), obj(b"two"));
        assert_eq!(read(&c, "/a").as_deref(), Some(&b"two"[..]));
        c.remove("/a");
        assert_eq!(read(&c, "/a"), None);
    }

    #[test]
    fn another_key_changing_drops_the_copies_too() {
        let c = MemoryCache::new(1 << 20);
        c.insert("/a".into(), obj(b"a"));
        assert!(read(&c, "/a").is_some());
        let v = c.version();
        c.insert("/b".into(), obj(b"b"));
        assert_ne!(c.version(), v);
        assert_eq!(read(&c, "/a").as_deref(), Some(&b"a"[..]));
        assert_eq!(read(&c, "/b").as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn two_tiers_on_one_thread_keep_apart() {
        let (x, y) = (MemoryCache::new(1 << 20), MemoryCache::new(1 << 20));
        x.insert("/k".into(), obj(b"x"));
        y.insert("/k".into(), obj(b"y"));
        for _ in 0..3 {
            assert_eq!(read(&x, "/k").as_deref(), Some(&b"x"[..]));
            assert_eq!(read(&y, "/k").as_deref(), Some(&b"y"[..]));
        }
        let z = MemoryCache::new(1 << 20);
        assert_eq!(read(&z, "/k"), None, "a new tier is not an old one");
    }

    #[test]
    fn more_keys_than_entries_are_all_read_right() {
        let c = MemoryCache::new(1 << 20);
        for i in 0..(3 * HOT_ENTRIES) {
            c.insert(format!("/{i}"), obj(format!("body {i}").as_bytes()));
        }
        for round in 0..3 {
            for i in 0..(3 * HOT_ENTRIES) {
                let got = read(&c, &format!("/{i}")).unwrap();
                assert_eq!(got, format!("body {i}").into_bytes(), "round {round}");
            }
        }
    }

    #[test]
    fn small_bodies_are_this_threads_own_and_large_ones_shared() {
        let c = MemoryCache::new(64 << 20);
        let small = obj(&[1; 100]);
        let large = obj(&vec![2; HOT_COPY_MAX + 1]);
        c.insert("/s".into(), small.clone());
        c.insert("/l".into(), large.clone());
        let same = |key: &str, o: &Arc<CachedObject>| {
            c.read_hot(key, |_, body| body.as_ptr() == o.body.as_ptr())
                .unwrap()
        };
        assert!(!same("/s", &small), "a copy");
        assert!(same("/l", &large), "the tier's bytes");
    }

    #[test]
    fn a_read_inside_a_read_goes_to_the_tier() {
        let c = MemoryCache::new(1 << 20);
        c.insert("/a".into(), obj(b"a"));
        c.insert("/b".into(), obj(b"b"));
        let inner = c.read_hot("/a", |_, _| read(&c, "/b")).unwrap();
        assert_eq!(inner.as_deref(), Some(&b"b"[..]));
    }
}
