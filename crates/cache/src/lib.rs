//! The cache core of mediamesh: the cached object type, the memory tier (S3-FIFO,
//! bounded in bytes; large bodies in sealed memory files, `sealed.rs`), the disk tier
//! (bounded in bytes, survives restarts), the freshness policy that says how long an
//! upstream answer may be kept, and cache keys.
//!
//! A crate of its own so the simulator runs the same cache as the edge without
//! compiling HTTP or the Wasm host. Not here: HTTP, upstream calls, request
//! coalescing, clocks (time is an argument). The edge's `proxy` drives these pieces
//! and decides what to store and when to serve stale.

pub mod decide;
pub mod disk;
pub mod hot;
pub mod key;
pub mod memory;
pub mod policy;
pub mod sealed;
pub mod status;

pub use sealed::{Pages, SealedBody};
pub use status::CacheStatus;

use std::any::Any;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One cached upstream answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedObject {
    pub status: u16,
    /// End-to-end headers to replay, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body (the disk tier stores it after the metadata, not in the JSON).
    #[serde(skip)]
    pub body: Bytes,
    /// Unix ms when stored.
    pub stored_ms: u64,
    /// Served without asking upstream until then.
    pub fresh_until_ms: u64,
    /// May be served stale while a refresh runs until then.
    pub stale_while_revalidate_until_ms: u64,
    /// May be served stale when every upstream fails until then.
    pub stale_if_error_until_ms: u64,
    /// What the server answering from this object derived from it once, for every
    /// answer it makes (see [`Memo`]). Not stored on disk.
    #[serde(skip)]
    pub memo: Memo,
    /// The sealed memory file `body` is a view of, when it is in one (large bodies
    /// in the memory tier, [`CachedObject::seal_body`]). Not stored on disk.
    #[serde(skip)]
    pub pages: Pages,
}

/// Something a server derives from a cached object once and reuses for every answer
/// it makes from it: the edge keeps there the HTTP/1.1 head of its quick answers (all
/// but the fields that change per answer), so a hit does not rebuild it from the
/// stored fields each time. Made at first use, by whoever uses it first; its type is
/// the user's (a crate of its own, the cache knows no HTTP encoding).
///
/// Not part of the object: not stored on disk, not compared (`==` ignores it), not
/// cloned (a clone may be changed, so its memo is made again), not counted in
/// [`CachedObject::size`] (it is about the size of the headers, which are).
#[derive(Default)]
pub struct Memo(OnceLock<Box<dyn Any + Send + Sync>>);

impl Memo {
    /// The memo, made by `make` if there is none yet; `None` if it was made by a
    /// user of another type.
    pub fn get_or_make<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(make())).downcast_ref()
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Memo(made)"
        } else {
            "Memo(none)"
        })
    }
}

/// Rough bookkeeping cost of one object beyond its body and headers.
const OBJECT_OVERHEAD: usize = 96;
/// Rough cost of one header pair beyond its text (two `String`s, a tuple).
const HEADER_OVERHEAD: usize = 48;

impl CachedObject {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// Approximate bytes this object costs in memory: body, headers, bookkeeping.
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + HEADER_OVERHEAD)
            .sum();
        self.body.len() + headers + OBJECT_OVERHEAD
    }

    /// Moves a large body (at least [`sealed::SEAL_MIN`]) into a sealed memory file,
    /// for [`CachedObject::body_file`]; keeps it on the heap when it is small, already
    /// sealed, or no file can be had (see `sealed.rs`). The bytes stay the same.
    pub fn seal_body(&mut self) {
        if self.body.len() < sealed::SEAL_MIN || self.pages.0.is_some() {
            return;
        }
        if let Some(file) = SealedBody::seal(&self.body) {
            self.body = file.bytes();
            self.pages = Pages(Some(file));
        }
    }

    /// The sealed file holding `view` (the body, or bytes of it) and where `view`
    /// starts in it, when `view` lies in this object's file: what a plain connection
    /// may `sendfile` from. `None` for bytes anywhere else (a copy of the body).
    pub fn body_file(&self, view: &[u8]) -> Option<(Arc<SealedBody>, u64)> {
        let file = self.pages.0.as_ref()?;
        let at = file.offset_of(view)?;
        Some((file.clone(), at))
    }

    /// Fresh: may be served without asking upstream.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms < self.fresh_until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let o = CachedObject {
            status: 200,
            headers: vec![
                ("content-type".into(), "video/mp4".into()),
                ("etag".into(), "\"abc\"".into()),
            ],
            body: Bytes::from_static(b"0123456789"),
            stored_ms: 1,
            fresh_until_ms: 100,
            stale_while_revalidate_until_ms: 200,
            stale_if_error_until_ms: 300,
            memo: Memo::default(),
            pages: Default::default(),
        };
        assert_eq!(o.etag(), Some("\"abc\""));
        assert_eq!(o.header("Content-Type"), Some("video/mp4"));
        assert_eq!(o.header("age"), None);
        assert!(o.size() > 10 + "content-type".len() + "video/mp4".len());
        assert!(o.is_fresh(99));
        assert!(!o.is_fresh(100));
    }

    #[test]
    fn a_memo_is_made_once_and_not_part_of_the_object() {
        let o = CachedObject {
            status: 200,
            headers: vec![],
            body: Bytes::new(),
            stored_ms: 1,
            fresh_until_ms: 100,
            stale_while_revalidate_until_ms: 200,
            stale_if_error_until_ms: 300,
            memo: Memo::default(),
            pages: Default::default(),
        };
        let copy = o.clone();
        assert_eq!(o.memo.get_or_make(|| 7u32), Some(&7));
        // Made already: `make` is not called again; another type gets nothing.
        assert_eq!(o.memo.get_or_make(|| 8u32), Some(&7));
        assert_eq!(o.memo.get_or_make(|| "x"), None);
        assert_eq!(o, copy);
        assert_eq!(o.clone().memo.get_or_make(|| 9u32), Some(&9));
        assert_eq!(format!("{:?}", o.memo), "Memo(made)");
    }

    #[test]
    fn a_large_body_is_sealed_and_a_small_one_is_not() {
        let object = |len: usize| CachedObject {
            status: 200,
            headers: vec![],
            body: Bytes::from((0..len).map(|i| (i % 7) as u8).collect::<Vec<u8>>()),
            stored_ms: 1,
            fresh_until_ms: 100,
            stale_while_revalidate_until_ms: 200,
            stale_if_error_until_ms: 300,
            memo: Memo::default(),
            pages: Default::default(),
        };
        let mut small = object(sealed::SEAL_MIN - 1);
        small.seal_body();
        assert!(small.body_file(&small.body).is_none());

        let mut large = object(sealed::SEAL_MIN * 3);
        let before = large.clone();
        large.seal_body();
        let (file, at) = large.body_file(&large.body).expect("sealed");
        assert_eq!(at, 0);
        assert_eq!(file.len(), large.body.len());
        // The same bytes, so the same object; sealing again changes nothing.
        assert_eq!(large, before);
        large.seal_body();
        assert_eq!(large.body_file(&large.body).map(|(_, at)| at), Some(0));
        assert_eq!(
            large.body_file(&large.body[10..20]).map(|(_, at)| at),
            Some(10)
        );
        // A clone shares the file; a body replaced by other bytes has none.
        let copy = large.clone();
        assert!(copy.body_file(&copy.body).is_some());
        let mut other = large.clone();
        other.body = before.body.clone();
        assert!(other.body_file(&other.body).is_none());
        // Nor do bytes of another copy of the same body.
        assert!(large.body_file(&before.body).is_none());
    }
}
