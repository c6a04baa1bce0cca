//! The cache core of mediamesh: the cached object type, the memory tier (S3-FIFO,
//! bounded in bytes), the disk tier (bounded in bytes, survives restarts), the
//! freshness policy that says how long an upstream answer may be kept, and cache keys.
//!
//! A crate of its own so the simulator runs the same cache as the edge without
//! compiling HTTP or the Wasm host. Not here: HTTP, upstream calls, request
//! coalescing, clocks (time is an argument). The edge's `proxy` drives these pieces
//! and decides what to store and when to serve stale.

pub mod decide;
pub mod disk;
pub mod key;
pub mod memory;
pub mod policy;
pub mod status;

pub use status::CacheStatus;

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
        };
        assert_eq!(o.etag(), Some("\"abc\""));
        assert_eq!(o.header("Content-Type"), Some("video/mp4"));
        assert_eq!(o.header("age"), None);
        assert!(o.size() > 10 + "content-type".len() + "video/mp4".len());
        assert!(o.is_fresh(99));
        assert!(!o.is_fresh(100));
    }
}
