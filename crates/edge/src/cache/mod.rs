//! What the edge keeps: cached objects, the memory tier (S3-FIFO, bounded in bytes),
//! the disk tier (bounded in bytes, survives restarts), the freshness policy that says
//! how long an upstream answer may be kept, and cache keys. No HTTP and no upstream
//! calls here; `proxy` drives it.

pub mod disk;
pub mod key;
pub mod memory;
pub mod policy;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One cached upstream answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedObject {
    pub status: u16,
    /// End-to-end headers to replay, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body (the disk tier stores it after the metadata).
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

impl CachedObject {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn etag(&self) -> Option<&str> {
        self.header("etag")
    }

    /// Bytes this object costs in memory (body, headers, bookkeeping).
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 16)
                .sum::<usize>()
            + 96
    }

    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms < self.fresh_until_ms
    }
}
