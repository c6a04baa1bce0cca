//! The node registry: what every origin, edge and tracker of a fleet says about itself
//! (kind, public URL, region, capacity, live load, and for origins the streams they
//! hold), kept in a [`Store`] with a time-to-live that heartbeats renew. The record
//! itself, and the checks a record read back from a store passes, are [`record`].
//!
//! What it is for: the router reads it to choose edges, edges read the stream
//! directory to find the origin holding a stream. Two stores sit behind one trait:
//! [`memory::MemoryStore`] (inside one `mediamesh serve` process) and
//! [`redis::RedisStore`] (a fleet). [`membership::Membership`] is the heartbeat loop that
//! keeps a node registered and keeps a *last known view* that readers use without ever
//! waiting on the store.
//!
//! What it is not: a consensus system. Records are last-writer-wins, expire on their
//! own, and a store outage only freezes the view.

pub mod load;
pub mod membership;
pub mod memory;
pub mod record;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use record::{node_id, now_ms, Capacity, Load, NodeKind, NodeRecord};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry URL {0:?} is neither `memory` nor `redis://HOST:PORT`")]
    BadUrl(String),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("registry did not answer within {0:?}")]
    Timeout(Duration),
    #[error("registry record is not valid JSON: {0}")]
    Record(#[from] serde_json::Error),
}

/// Where node records live.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes (or renews) a record that expires after `ttl` unless written again.
    async fn put(&self, node: &NodeRecord, ttl: Duration) -> Result<(), RegistryError>;
    /// Removes a record at once (a node shutting down cleanly).
    async fn remove(&self, id: &str) -> Result<(), RegistryError>;
    /// Every record that has not expired.
    async fn list(&self) -> Result<Vec<NodeRecord>, RegistryError>;
    /// For logs: `memory` or the Redis address (never a password).
    fn describe(&self) -> String;
}

/// Opens the store named by a `--registry` value: `memory` (process-local) or
/// `redis://HOST:PORT[/DB]`.
pub fn open(url: &str) -> Result<Arc<dyn Store>, RegistryError> {
    if url == "memory" {
        Ok(Arc::new(memory::MemoryStore::default()))
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(Arc::new(redis::RedisStore::new(
            url,
            redis::RedisTimeouts::default(),
        )?))
    } else {
        Err(RegistryError::BadUrl(url.to_string()))
    }
}

/// The stream directory: origins that hold `stream` now, in the order given.
pub fn origins_for<'a>(nodes: &'a [NodeRecord], stream: &str) -> Vec<&'a NodeRecord> {
    nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Origin && n.streams.iter().any(|s| s == stream))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_lists_origins_holding_a_stream() {
        let mut a = NodeRecord::new(NodeKind::Origin, "http://a:1", "eu");
        a.streams = vec!["cam".into()];
        let mut e = NodeRecord::new(NodeKind::Edge, "http://e:1", "eu");
        e.streams = vec!["cam".into()];
        let b = NodeRecord::new(NodeKind::Origin, "http://b:1", "eu");
        let nodes = vec![a, e, b];
        let found = origins_for(&nodes, "cam");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].public_url, "http://a:1");
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(open("etcd://x"), Err(RegistryError::BadUrl(_))));
        assert!(open("memory").is_ok());
    }
}
