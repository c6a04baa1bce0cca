//! Fleet-wide viewer accounting: the rule that turns what every node says in its
//! heartbeat about who watches (edges and origins: player sessions per live stream,
//! with CMCD-derived quality; trackers: peers per swarm) into one audience per stream,
//! with the CMCD quality the API shows. Those figures, and the bounds and checks they
//! pass when they come back from the registry (another process wrote them: they are
//! network input), are part of the node record (`registry/record.rs`); this module
//! re-exports them.
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
//! Not here: counting sessions (crate `edge`, `origin`), checking what nodes report
//! (`registry/record.rs`), rendering the API (the binary).

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::registry::{NodeKind, NodeRecord};

// The figures summed here and their checks live with the node record.
pub use crate::registry::record::{
    parse_record, valid_info_hash, valid_stream, CmcdCounts, RecordError, StreamViewers,
    SwarmPeers, MAX_CMCD_VALUE, MAX_COUNT, MAX_RECORD_BYTES, MAX_STREAMS, MAX_SWARMS,
    MAX_VIEWER_STREAMS,
};

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

impl CmcdCounts {
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
}
