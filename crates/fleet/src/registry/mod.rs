//! The node registry: what every origin, edge and tracker of a fleet says about itself
//! (kind, public URL, region, capacity, live load, and for origins the streams they
//! hold), kept in a [`Store`] with a time-to-live that heartbeats renew.
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
pub mod redis;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Origin,
    Edge,
    Tracker,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Origin => "origin",
            NodeKind::Edge => "edge",
            NodeKind::Tracker => "tracker",
        }
    }
}

/// What a node can carry; zero means "not stated" (no bound from that figure).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub connections: u64,
    pub egress_bps: u64,
}

/// What a node carries now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub connections: u64,
    pub egress_bps: u64,
    /// Share of one machine's CPU time used by the process over the last interval
    /// (0.0–1.0 per core, summed over cores, divided by the core count).
    pub cpu: f64,
}

/// One node's record in the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Unique in the fleet; also the HLS pathway id of an edge, so only
    /// `[A-Za-z0-9._-]` (see [`node_id`]).
    pub id: String,
    pub kind: NodeKind,
    /// Base URL viewers (or edges) use, without a trailing slash.
    pub public_url: String,
    pub region: String,
    #[serde(default)]
    pub capacity: Capacity,
    #[serde(default)]
    pub load: Load,
    /// Origins: the live streams they hold now, each with at least one complete
    /// segment (the stream directory).
    #[serde(default)]
    pub streams: Vec<String>,
    /// Origins: per stream they package (live, or waiting for its publisher to come
    /// back), the segment-numbering timeline other origins of the same publish adopt
    /// (`origin::live::numbering::SharedTimeline` as JSON; the fleet does not look
    /// inside).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timelines: BTreeMap<String, serde_json::Value>,
    /// Edges and origins: player sessions (and CMCD quality) per live stream (see
    /// [`crate::viewers`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub viewers: Vec<crate::viewers::StreamViewers>,
    /// Trackers: their own peers per swarm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swarms: Vec<crate::viewers::SwarmPeers>,
    /// Wall-clock milliseconds of the heartbeat that wrote the record.
    #[serde(default)]
    pub updated_ms: u64,
}

impl NodeRecord {
    /// A record with no load yet.
    pub fn new(kind: NodeKind, public_url: &str, region: &str) -> Self {
        let public_url = public_url.trim_end_matches('/').to_string();
        NodeRecord {
            id: node_id(kind, &public_url),
            kind,
            public_url,
            region: region.to_string(),
            capacity: Capacity::default(),
            load: Load::default(),
            streams: Vec::new(),
            timelines: BTreeMap::new(),
            viewers: Vec::new(),
            swarms: Vec::new(),
            updated_ms: now_ms(),
        }
    }

    /// The busiest of connections, egress and CPU as a share of capacity (0.0 = idle,
    /// 1.0 = full). Figures without a stated capacity count only through CPU.
    pub fn utilization(&self) -> f64 {
        let share = |used: u64, cap: u64| {
            if cap == 0 {
                0.0
            } else {
                used as f64 / cap as f64
            }
        };
        share(self.load.connections, self.capacity.connections)
            .max(share(self.load.egress_bps, self.capacity.egress_bps))
            .max(if self.load.cpu.is_finite() {
                self.load.cpu
            } else {
                0.0
            })
    }
}

/// A fleet-unique id from kind and URL: `edge-10.0.0.5-8081`. Only `[A-Za-z0-9._-]`,
/// so it is a valid HLS `PATHWAY-ID` and DASH `serviceLocation`.
pub fn node_id(kind: NodeKind, public_url: &str) -> String {
    let rest = public_url
        .split_once("://")
        .map_or(public_url, |(_, r)| r)
        .trim_end_matches('/');
    let mut id = format!("{}-", kind.as_str());
    for c in rest.chars() {
        id.push(if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            c
        } else {
            '-'
        });
    }
    id.chars().take(120).collect()
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
    fn ids_are_pathway_safe() {
        let id = node_id(NodeKind::Edge, "http://10.0.0.5:8081/");
        assert_eq!(id, "edge-10.0.0.5-8081");
        let id = node_id(NodeKind::Edge, "https://[::1]:443/x y\"");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    }

    #[test]
    fn utilization_takes_the_busiest_figure() {
        let mut n = NodeRecord::new(NodeKind::Edge, "http://a:1", "eu");
        assert_eq!(n.utilization(), 0.0);
        n.capacity.connections = 100;
        n.load.connections = 50;
        n.load.cpu = 0.2;
        assert!((n.utilization() - 0.5).abs() < 1e-9);
        n.load.cpu = f64::NAN;
        assert!((n.utilization() - 0.5).abs() < 1e-9);
    }

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
    fn records_without_timelines_still_parse() {
        let old = r#"{"id":"origin-a-1","kind":"origin","public_url":"http://a:1","region":"eu","streams":["cam"]}"#;
        let n: NodeRecord = serde_json::from_str(old).expect("parse");
        assert!(n.timelines.is_empty());
        let json = serde_json::to_string(&n).expect("json");
        assert!(!json.contains("timelines"));
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(open("etcd://x"), Err(RegistryError::BadUrl(_))));
        assert!(open("memory").is_ok());
    }
}
