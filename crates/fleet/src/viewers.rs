//! Fleet-wide viewer accounting: what nodes say in their heartbeat about who watches
//! (edges and origins: player sessions per live stream, with CMCD-derived quality;
//! trackers: peers per swarm), the bounds and checks applied to those figures when they
//! come back from the registry (another process wrote them: they are network input),
//! and the rule that turns every node's figures into one audience per stream.
//!
//! **The counting rule.** A *viewer* is a player session seen by the node that serves
//! it: on an edge, a distinct CMCD session id (`sid`) or, without one, a distinct client
//! address + `User-Agent`, that fetched a playlist or media object of the stream with a
//! 2xx/3xx answer in the node's window (15 s by default). Requests that carry the
//! edges' own `Via: 1.1 mediamesh-edge` (a lower edge tier fetching from a parent)
//! are not viewers. An origin counts distinct client addresses of its direct viewers
//! the same way. The HTTP sessions of every edge and origin are summed.
//!
//! A P2P viewer still fetches its playlists from an edge (or the origin), so it is
//! already one of those HTTP sessions; tracker peers are therefore **not added** to
//! the total: `viewers = max(http_sessions, p2p_peers)`, where `p2p_peers` is the sum
//! over trackers of their *local* peers (peers a tracker learnt from another tracker
//! through Redis are not counted twice) in the swarms of the stream's renditions. The
//! maximum only matters when peers are seen that no HTTP node counted (a player whose
//! playlists came from elsewhere, or a tracker that outlives a session window).
//!
//! Swarms map to streams by info hash: the swarm of rendition *r* of stream *s* is
//! named from the playlist path `/live/{s}/index.m3u8` and *r*'s attributes (see
//! `p2p::peer::hls::info_hashes`), so whoever holds the stream's multivariant playlist
//! (the origin) computes the hashes and looks them up in the trackers' reports. A
//! swarm of a stream no origin lists stays unmapped and is not counted.
//!
//! Not here: counting sessions (crate `edge`, `origin`), rendering the API (the binary).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::registry::{NodeKind, NodeRecord};

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

    /// What the API shows: ratios and means.
    pub fn summary(&self) -> CmcdSummary {
        let mean = |s: u64, n: u64| (n > 0).then(|| s / n);
        CmcdSummary {
            requests: self.requests,
            starvation_ratio: (self.requests > 0)
                .then(|| self.starved as f64 / self.requests as f64),
            bitrate_kbps: mean(self.br_sum, self.br_n),
            throughput_kbps: mean(self.mtp_sum, self.mtp_n),
            buffer_ms: mean(self.bl_sum, self.bl_n),
        }
    }
}

/// CMCD quality of a stream as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CmcdSummary {
    /// Requests with CMCD in the window, over the nodes.
    pub requests: u64,
    /// Share of them with `bs` (buffer starvation) set.
    pub starvation_ratio: Option<f64>,
    /// Mean encoded bitrate players requested (`br`), kbps.
    pub bitrate_kbps: Option<u64>,
    /// Mean throughput players measured (`mtp`), kbps.
    pub throughput_kbps: Option<u64>,
    /// Mean buffer length players reported (`bl`), ms.
    pub buffer_ms: Option<u64>,
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

/// One node's share of a stream's audience.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeAudience {
    pub node: String,
    pub kind: NodeKind,
    pub region: String,
    pub sessions: u64,
}

/// A stream's audience over the fleet (see the counting rule in the module docs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Audience {
    /// The total: `max(http_sessions, p2p_peers)`.
    pub viewers: u64,
    /// Player sessions over every edge and origin.
    pub http_sessions: u64,
    /// Peers in the stream's swarms over every tracker (each tracker's own peers).
    pub p2p_peers: u64,
    /// Per node (edges and origins with sessions), busiest first.
    pub nodes: Vec<NodeAudience>,
    /// Sessions per region of the nodes that counted them.
    pub regions: BTreeMap<String, u64>,
    /// Peers per tracker region.
    pub p2p_regions: BTreeMap<String, u64>,
    /// CMCD quality over the nodes, when players sent CMCD.
    pub cmcd: Option<CmcdSummary>,
}

/// The audience of `stream` from every node's last report; `info_hashes` are the
/// stream's swarms (hex) for the trackers' reports.
pub fn audience(nodes: &[NodeRecord], stream: &str, info_hashes: &HashSet<String>) -> Audience {
    let mut a = Audience {
        viewers: 0,
        http_sessions: 0,
        p2p_peers: 0,
        nodes: Vec::new(),
        regions: BTreeMap::new(),
        p2p_regions: BTreeMap::new(),
        cmcd: None,
    };
    let mut cmcd: Option<CmcdCounts> = None;
    for n in nodes {
        if matches!(n.kind, NodeKind::Edge | NodeKind::Origin) {
            for v in n.viewers.iter().filter(|v| v.stream == stream) {
                a.http_sessions = a.http_sessions.saturating_add(v.sessions);
                if v.sessions > 0 {
                    *a.regions.entry(n.region.clone()).or_default() += v.sessions;
                    a.nodes.push(NodeAudience {
                        node: n.id.clone(),
                        kind: n.kind,
                        region: n.region.clone(),
                        sessions: v.sessions,
                    });
                }
                if let Some(c) = &v.cmcd {
                    cmcd.get_or_insert_with(CmcdCounts::default).add(c);
                }
            }
        }
        // Trackers report swarms; so does `serve`'s edge, whose process runs a tracker.
        let peers: u64 = n
            .swarms
            .iter()
            .filter(|s| info_hashes.contains(&s.info_hash))
            .map(|s| s.peers)
            .fold(0, u64::saturating_add);
        if peers > 0 {
            a.p2p_peers = a.p2p_peers.saturating_add(peers);
            *a.p2p_regions.entry(n.region.clone()).or_default() += peers;
        }
    }
    a.nodes
        .sort_by(|x, y| y.sessions.cmp(&x.sessions).then(x.node.cmp(&y.node)));
    a.viewers = a.http_sessions.max(a.p2p_peers);
    a.cmcd = cmcd.filter(|c| c.requests > 0).map(|c| c.summary());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(url: &str, region: &str, viewers: &[(&str, u64)]) -> NodeRecord {
        let mut n = NodeRecord::new(NodeKind::Edge, url, region);
        n.viewers = viewers
            .iter()
            .map(|(s, c)| StreamViewers {
                stream: s.to_string(),
                sessions: *c,
                cmcd: None,
            })
            .collect();
        n
    }

    fn hash(b: u8) -> String {
        format!("{:02x}", b).repeat(20)
    }

    #[test]
    fn edges_add_up_and_peers_are_not_added_again() {
        let mut e1 = edge("http://e1:1", "eu", &[("cam", 3), ("other", 5)]);
        e1.viewers[0].cmcd = Some(CmcdCounts {
            requests: 10,
            starved: 1,
            br_sum: 10_000,
            br_n: 10,
            ..Default::default()
        });
        let e2 = edge("http://e2:1", "us", &[("cam", 2)]);
        let mut t = NodeRecord::new(NodeKind::Tracker, "http://t:1", "eu");
        t.swarms = vec![
            SwarmPeers {
                info_hash: hash(1),
                peers: 4,
            },
            SwarmPeers {
                info_hash: hash(2),
                peers: 9,
            },
        ];
        let hashes: HashSet<String> = [hash(1)].into();
        let a = audience(&[e1.clone(), e2.clone(), t.clone()], "cam", &hashes);
        assert_eq!(a.http_sessions, 5);
        assert_eq!(a.p2p_peers, 4);
        assert_eq!(a.viewers, 5, "peers are HTTP sessions too");
        assert_eq!(a.regions.get("eu"), Some(&3));
        assert_eq!(a.regions.get("us"), Some(&2));
        assert_eq!(a.nodes[0].node, e1.id);
        let q = a.cmcd.expect("cmcd");
        assert_eq!(q.bitrate_kbps, Some(1000));
        assert_eq!(q.starvation_ratio, Some(0.1));
        // More peers than sessions: the peers are the better count.
        let a = audience(&[e2, t], "cam", &[hash(1), hash(2)].into());
        assert_eq!(a.viewers, 13);
    }

    #[test]
    fn hostile_records_are_bounded_and_cleaned() {
        let mut n = edge("http://e:1", "eu", &[]);
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
        let mut bad = edge("http://e:1", "eu", &[]);
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
