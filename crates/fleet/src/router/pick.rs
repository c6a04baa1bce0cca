//! Which edge serves a request: the client's region first, then the fallback regions
//! in their configured order, then the rest (least loaded first). Inside a region the
//! stream is placed by rendezvous (highest-random-weight) hashing of the stream key
//! over the edges — a consistent hash: an edge that joins or leaves moves only its
//! own streams, so caches stay hot — bounded by load as in "consistent hashing with
//! bounded loads": an edge busier than `load_factor` × the region's mean utilization
//! is passed over for the next one in hash order; a full edge goes behind every edge
//! of every region that still has room.
//!
//! Pure functions over node records; health and load come from the caller.

use std::collections::HashMap;

use crate::registry::NodeRecord;

/// Tuning of [`rank`].
#[derive(Clone, Debug)]
pub struct PickPolicy {
    /// An edge above this multiple of its region's mean utilization is passed over.
    pub load_factor: f64,
    /// Below this utilization the load bound does not apply (idle fleets hash freely).
    pub load_floor: f64,
    /// At or above this utilization an edge counts as full.
    pub full: f64,
    /// Fallback regions per region, nearest first (`--region-fallback eu=us,asia`).
    pub fallback: HashMap<String, Vec<String>>,
}

impl Default for PickPolicy {
    fn default() -> Self {
        PickPolicy {
            load_factor: 1.25,
            load_floor: 0.2,
            full: 0.95,
            fallback: HashMap::new(),
        }
    }
}

/// FNV-1a then a SplitMix64 finaliser: stable across builds and machines, so every
/// router of a fleet places a stream on the same edge.
fn weight(key: &str, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes().chain([0xff]).chain(node.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Orders the (already healthy) `edges` for stream `key` and a client in `region`.
pub fn rank<'a>(
    key: &str,
    region: Option<&str>,
    edges: &[&'a NodeRecord],
    policy: &PickPolicy,
) -> Vec<&'a NodeRecord> {
    // Region order.
    let mut regions: Vec<&str> = Vec::new();
    if let Some(r) = region {
        regions.push(r);
        if let Some(f) = policy.fallback.get(r) {
            regions.extend(f.iter().map(String::as_str));
        }
    }
    let mut rest: Vec<(&str, f64)> = Vec::new();
    for e in edges {
        let r = e.region.as_str();
        if !regions.contains(&r) && !rest.iter().any(|(x, _)| *x == r) {
            rest.push((r, mean_util(edges, r)));
        }
    }
    rest.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    // With no known client region every edge is one group (hashing over all).
    let groups: Vec<Vec<&'a NodeRecord>> = if region.is_none() {
        vec![edges.to_vec()]
    } else {
        regions
            .iter()
            .copied()
            .chain(rest.iter().map(|(r, _)| *r))
            .map(|r| edges.iter().copied().filter(|e| e.region == r).collect())
            .collect()
    };
    let mut out = Vec::with_capacity(edges.len());
    let mut full: Vec<&'a NodeRecord> = Vec::new();
    for mut group in groups {
        if group.is_empty() {
            continue;
        }
        group.sort_by(|a, b| {
            weight(key, &b.id)
                .cmp(&weight(key, &a.id))
                .then(a.id.cmp(&b.id))
        });
        let mean = group.iter().map(|e| e.utilization()).sum::<f64>() / group.len() as f64;
        let bound = (mean * policy.load_factor).max(policy.load_floor);
        let mut over = Vec::new();
        for e in group {
            let u = e.utilization();
            if u >= policy.full {
                full.push(e);
            } else if u > bound {
                over.push(e);
            } else {
                out.push(e);
            }
        }
        over.sort_by(|a, b| a.utilization().total_cmp(&b.utilization()));
        out.extend(over);
    }
    full.sort_by(|a, b| a.utilization().total_cmp(&b.utilization()));
    out.extend(full);
    out
}

fn mean_util(edges: &[&NodeRecord], region: &str) -> f64 {
    let (sum, n) = edges
        .iter()
        .filter(|e| e.region == region)
        .fold((0.0, 0usize), |(s, n), e| (s + e.utilization(), n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::NodeKind;

    fn edge(port: u16, region: &str, util: f64) -> NodeRecord {
        let mut n = NodeRecord::new(NodeKind::Edge, &format!("http://h:{port}"), region);
        n.capacity.connections = 1000;
        n.load.connections = (util * 1000.0) as u64;
        n
    }

    fn ids(v: &[&NodeRecord]) -> Vec<String> {
        v.iter().map(|n| n.public_url.clone()).collect()
    }

    #[test]
    fn own_region_first_then_fallback_then_rest() {
        let nodes = [
            edge(1, "eu", 0.0),
            edge(2, "us", 0.0),
            edge(3, "asia", 0.0),
            edge(4, "eu", 0.0),
        ];
        let refs: Vec<&NodeRecord> = nodes.iter().collect();
        let mut p = PickPolicy::default();
        p.fallback.insert("eu".into(), vec!["asia".into()]);
        let r = ids(&rank("live/cam", Some("eu"), &refs, &p));
        assert!(
            r[..2].contains(&"http://h:1".to_string())
                && r[..2].contains(&"http://h:4".to_string())
        );
        assert_eq!(r[2], "http://h:3");
        assert_eq!(r[3], "http://h:2");
    }

    #[test]
    fn streams_spread_and_only_a_dead_edges_streams_move() {
        let nodes: Vec<NodeRecord> = (1..=4).map(|p| edge(p, "eu", 0.0)).collect();
        let refs: Vec<&NodeRecord> = nodes.iter().collect();
        let p = PickPolicy::default();
        let keys: Vec<String> = (0..400).map(|i| format!("live/s{i}")).collect();
        let before: Vec<String> = keys
            .iter()
            .map(|k| rank(k, Some("eu"), &refs, &p)[0].id.clone())
            .collect();
        for n in &nodes {
            let share = before.iter().filter(|b| **b == n.id).count();
            assert!(share > 50, "{} got {share} of 400 streams", n.id);
        }
        let without: Vec<&NodeRecord> = refs
            .iter()
            .copied()
            .filter(|n| n.id != nodes[0].id)
            .collect();
        for (k, b) in keys.iter().zip(&before) {
            let now = &rank(k, Some("eu"), &without, &p)[0].id;
            if *b != nodes[0].id {
                assert_eq!(now, b, "{k} moved although its edge lives");
            }
        }
    }

    #[test]
    fn a_busy_edge_is_passed_over_and_a_full_one_goes_last() {
        let p = PickPolicy::default();
        // Find a key whose first choice is port 1 when idle.
        let idle = [edge(1, "eu", 0.0), edge(2, "eu", 0.0)];
        let refs: Vec<&NodeRecord> = idle.iter().collect();
        let key = (0..100)
            .map(|i| format!("live/k{i}"))
            .find(|k| rank(k, Some("eu"), &refs, &p)[0].public_url == "http://h:1")
            .expect("some key lands on edge 1");
        let busy = [edge(1, "eu", 0.8), edge(2, "eu", 0.1)];
        let refs: Vec<&NodeRecord> = busy.iter().collect();
        assert_eq!(
            rank(&key, Some("eu"), &refs, &p)[0].public_url,
            "http://h:2"
        );
        let full = [edge(1, "eu", 0.99), edge(2, "eu", 0.99), edge(3, "us", 0.5)];
        let refs: Vec<&NodeRecord> = full.iter().collect();
        assert_eq!(
            rank(&key, Some("eu"), &refs, &p)[0].public_url,
            "http://h:3"
        );
    }

    #[test]
    fn unknown_region_hashes_over_everything() {
        let nodes = [edge(1, "eu", 0.0), edge(2, "us", 0.0)];
        let refs: Vec<&NodeRecord> = nodes.iter().collect();
        assert_eq!(rank("live/x", None, &refs, &PickPolicy::default()).len(), 2);
        assert!(rank("live/x", None, &[], &PickPolicy::default()).is_empty());
    }
}
