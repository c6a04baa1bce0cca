//! One node's record in the registry: what every origin, edge and tracker says about
//! itself in each heartbeat (kind, id, public URL, region, capacity, live load; origins
//! also the streams they hold and their numbering timelines; edges and origins their
//! player sessions and CMCD figures per live stream; trackers their own peers per
//! swarm), and the bounds and checks a record goes through when it is read back from
//! the registry ([`parse_record`]): another process wrote it, so it is network input.
//!
//! Not here: keeping records (the stores beside this file), the rule that sums the
//! viewer figures of every node into one audience per stream (`viewers.rs`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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
    pub viewers: Vec<StreamViewers>,
    /// Trackers: their own peers per swarm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swarms: Vec<SwarmPeers>,
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

/// One stream's viewers as one node (edge or origin) counts them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamViewers {
    pub stream: String,
    /// Player sessions seen in the node's window.
    pub sessions: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmcd: Option<CmcdCounts>,
}

/// One swarm's peers as one tracker holds them (its own connections only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmPeers {
    /// The swarm's info hash, 40 lowercase hex digits (of its 20 bytes).
    pub info_hash: String,
    pub peers: u64,
}

/// CMCD figures of one stream as one node counted them over its window: sums and
/// counts, so that nodes add up exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmcdCounts {
    /// Requests that carried CMCD.
    pub requests: u64,
    /// Of them, with the buffer-starvation flag `bs`.
    pub starved: u64,
    /// Sum and number of `br` (encoded bitrate, kbps).
    pub br_sum: u64,
    pub br_n: u64,
    /// Sum and number of `mtp` (measured throughput, kbps).
    pub mtp_sum: u64,
    pub mtp_n: u64,
    /// Sum and number of `bl` (buffer length, ms).
    pub bl_sum: u64,
    pub bl_n: u64,
}

impl CmcdCounts {
    /// Adds `o` (saturating).
    pub fn add(&mut self, o: &CmcdCounts) {
        self.requests = self.requests.saturating_add(o.requests);
        self.starved = self.starved.saturating_add(o.starved);
        self.br_sum = self.br_sum.saturating_add(o.br_sum);
        self.br_n = self.br_n.saturating_add(o.br_n);
        self.mtp_sum = self.mtp_sum.saturating_add(o.mtp_sum);
        self.mtp_n = self.mtp_n.saturating_add(o.mtp_n);
        self.bl_sum = self.bl_sum.saturating_add(o.bl_sum);
        self.bl_n = self.bl_n.saturating_add(o.bl_n);
    }

    /// Clamps every figure into what one honest node could report.
    fn clamp(&mut self) {
        let c = |v: &mut u64, max: u64| *v = (*v).min(max);
        c(&mut self.requests, MAX_COUNT);
        c(&mut self.starved, self.requests);
        c(&mut self.br_n, self.requests);
        c(&mut self.mtp_n, self.requests);
        c(&mut self.bl_n, self.requests);
        let sum_max = |n: u64| n.saturating_mul(MAX_CMCD_VALUE);
        c(&mut self.br_sum, sum_max(self.br_n));
        c(&mut self.mtp_sum, sum_max(self.mtp_n));
        c(&mut self.bl_sum, sum_max(self.bl_n));
    }
}

/// Largest node record read from the registry, bytes (JSON).
pub const MAX_RECORD_BYTES: usize = 512 * 1024;
/// Most streams one node reports viewers for (the busiest are kept).
pub const MAX_VIEWER_STREAMS: usize = 1_000;
/// Most swarms one tracker reports (the busiest are kept).
pub const MAX_SWARMS: usize = 4_000;
/// Most streams in an origin's stream directory entry and timelines.
pub const MAX_STREAMS: usize = 2_000;
/// Largest count accepted in a report (sessions, peers, requests); larger is clamped.
pub const MAX_COUNT: u64 = 100_000_000;
/// Largest per-request CMCD figure summed (kbps or ms); larger requests are clamped.
pub const MAX_CMCD_VALUE: u64 = 10_000_000;

/// Why a record read from the registry was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("registry record is {0} bytes, over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("registry record is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("registry record has a bad {0}")]
    Bad(&'static str),
}

/// Whether `name` is a stream name every role accepts (1-64 of `A-Z a-z 0-9 _ - .`,
/// not starting with a dot).
pub fn valid_stream(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether `h` is 40 lowercase hex digits.
pub fn valid_info_hash(h: &str) -> bool {
    h.len() == 40 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Keeps the busiest `max` of `v` by `key` (ties by order), dropping the rest.
fn keep_busiest<T>(v: &mut Vec<T>, max: usize, key: impl Fn(&T) -> u64) {
    if v.len() > max {
        v.sort_by_key(|t| std::cmp::Reverse(key(t)));
        v.truncate(max);
    }
}

impl NodeRecord {
    /// Bounds and checks a record read from the registry: the id and its texts must be
    /// sane (else the whole record is refused); lists are cut to their limits, entries
    /// with bad names are dropped, duplicates merged, counts clamped.
    pub fn sanitize(&mut self) -> Result<(), RecordError> {
        if !valid_id(&self.id) {
            return Err(RecordError::Bad("id"));
        }
        if self.public_url.len() > 2048 || self.public_url.chars().any(char::is_control) {
            return Err(RecordError::Bad("public_url"));
        }
        if self.region.len() > 64 || self.region.chars().any(char::is_control) {
            return Err(RecordError::Bad("region"));
        }
        self.streams.retain(|s| valid_stream(s));
        self.streams.truncate(MAX_STREAMS);
        self.timelines.retain(|s, _| valid_stream(s));
        while self.timelines.len() > MAX_STREAMS {
            self.timelines.pop_last();
        }
        let mut viewers: BTreeMap<String, StreamViewers> = BTreeMap::new();
        for mut v in std::mem::take(&mut self.viewers) {
            if !valid_stream(&v.stream) || viewers.len() >= 4 * MAX_VIEWER_STREAMS {
                continue;
            }
            v.sessions = v.sessions.min(MAX_COUNT);
            if let Some(c) = v.cmcd.as_mut() {
                c.clamp();
            }
            match viewers.get_mut(&v.stream) {
                Some(have) => {
                    have.sessions = have.sessions.saturating_add(v.sessions).min(MAX_COUNT);
                    if let Some(c) = v.cmcd {
                        have.cmcd.get_or_insert_with(CmcdCounts::default).add(&c);
                    }
                }
                None => {
                    viewers.insert(v.stream.clone(), v);
                }
            }
        }
        self.viewers = viewers.into_values().collect();
        keep_busiest(&mut self.viewers, MAX_VIEWER_STREAMS, |v| v.sessions);
        let mut swarms: BTreeMap<String, u64> = BTreeMap::new();
        for s in std::mem::take(&mut self.swarms) {
            if valid_info_hash(&s.info_hash) && swarms.len() < 4 * MAX_SWARMS {
                let p = swarms.entry(s.info_hash).or_default();
                *p = p.saturating_add(s.peers).min(MAX_COUNT);
            }
        }
        self.swarms = swarms
            .into_iter()
            .map(|(info_hash, peers)| SwarmPeers { info_hash, peers })
            .collect();
        keep_busiest(&mut self.swarms, MAX_SWARMS, |s| s.peers);
        Ok(())
    }
}

/// Parses and checks one record as read from the registry (see
/// [`NodeRecord::sanitize`]).
pub fn parse_record(text: &str) -> Result<NodeRecord, RecordError> {
    if text.len() > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge(text.len()));
    }
    let mut r: NodeRecord = serde_json::from_str(text)?;
    r.sanitize()?;
    Ok(r)
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
    fn records_without_timelines_still_parse() {
        let old = r#"{"id":"origin-a-1","kind":"origin","public_url":"http://a:1","region":"eu","streams":["cam"]}"#;
        let n: NodeRecord = serde_json::from_str(old).expect("parse");
        assert!(n.timelines.is_empty());
        let json = serde_json::to_string(&n).expect("json");
        assert!(!json.contains("timelines"));
    }

    #[test]
    fn hostile_records_are_bounded_and_cleaned() {
        let mut n = NodeRecord::new(NodeKind::Edge, "http://e:1", "eu");
        for i in 0..(MAX_VIEWER_STREAMS + 50) {
            n.viewers.push(StreamViewers {
                stream: format!("s{i}"),
                sessions: i as u64,
                cmcd: Some(CmcdCounts {
                    requests: 1,
                    starved: 99,
                    br_sum: u64::MAX,
                    br_n: 5,
                    ..Default::default()
                }),
            });
        }
        n.viewers.push(StreamViewers {
            stream: "../etc".into(),
            sessions: 1,
            cmcd: None,
        });
        n.viewers.push(StreamViewers {
            stream: "big".into(),
            sessions: u64::MAX,
            cmcd: None,
        });
        n.swarms.push(SwarmPeers {
            info_hash: "zz".into(),
            peers: 1,
        });
        n.sanitize().expect("sane");
        assert_eq!(n.viewers.len(), MAX_VIEWER_STREAMS);
        assert!(n.viewers.iter().all(|v| valid_stream(&v.stream)));
        assert_eq!(n.viewers[0].stream, "big");
        assert_eq!(n.viewers[0].sessions, MAX_COUNT);
        let c = n.viewers[1].cmcd.expect("cmcd");
        assert_eq!((c.starved, c.br_n), (1, 1));
        assert!(c.br_sum <= MAX_CMCD_VALUE);
        assert!(n.swarms.is_empty());
        let mut bad = NodeRecord::new(NodeKind::Edge, "http://e:1", "eu");
        bad.id = "a b".into();
        assert!(bad.sanitize().is_err());
        assert!(matches!(
            parse_record(&" ".repeat(MAX_RECORD_BYTES + 1)),
            Err(RecordError::TooLarge(_))
        ));
        assert!(parse_record("{").is_err());
    }

    #[test]
    fn old_records_without_viewers_parse_and_stay_small() {
        let old = r#"{"id":"edge-a-1","kind":"edge","public_url":"http://a:1","region":"eu"}"#;
        let n = parse_record(old).expect("parse");
        assert!(n.viewers.is_empty() && n.swarms.is_empty());
        let json = serde_json::to_string(&n).expect("json");
        assert!(!json.contains("viewers") && !json.contains("swarms"));
    }
}
