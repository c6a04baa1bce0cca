//! The CDN side of the model: edges per region and one shield in front of the origin,
//! each edge holding segments in the real `edge` S3-FIFO memory tier with lifetimes
//! from the real `edge` freshness policy, so hit, miss and upstream bytes follow the
//! code that serves real viewers. Also routing around failed edges, regions and the
//! origin, and the congestion factor of an edge whose demand exceeds its capacity.
//!
//! Not here: per-request timing (that is [`crate::swarm`], reading an [`EdgeView`]).
//!
//! Objects are the run's units ([`crate::units`]): segments, or LL-HLS parts at
//! `latency = "low" | "balanced"` (then every part is its own cache object, as the
//! real edge caches `part{msn}.{i}.m4s`).
//!
//! Bodies: a cached segment's body is a slice of one static zero buffer, so the cache
//! charges each object its real size while the simulator holds no segment bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use cache::memory::MemoryCache;
use cache::policy::{freshness, MediaDefaults};
use cache::CachedObject;

use crate::scenario::{Preset, Scenario};
use crate::units::Units;

/// Largest body the model stores (bigger segments are charged as this much).
const MAX_BODY: usize = 32 << 20;
static ZEROS: [u8; MAX_BODY] = [0; MAX_BODY];

/// What the swarms see of the CDN during one epoch (read-only while swarms run).
#[derive(Debug, Clone)]
pub struct EdgeView {
    pub origin_up: bool,
    /// Per edge: up.
    pub edge_up: Vec<bool>,
    /// Per edge: throughput factor (1 = uncongested).
    pub factor: Vec<f64>,
    /// Origin throughput factor for direct (p2p-only) fetches.
    pub origin_factor: f64,
    /// Per edge, per rendition: segments known to be cached at the edge.
    present: Vec<Vec<Vec<bool>>>,
    /// Per region: first edge index.
    region_first: Vec<usize>,
    region_edges: Vec<usize>,
    /// Per region: every edge of it is down.
    pub region_down: Vec<bool>,
}

impl EdgeView {
    /// The edge serving a swarm of `region` normally on edge `edge`: that one, else
    /// the next up edge of the region, else the first up edge of the next region up
    /// (`true` = crossed regions).
    pub fn route(&self, region: usize, edge: usize) -> Option<(usize, bool)> {
        let first = self.region_first[region];
        let n = self.region_edges[region];
        if !self.region_down[region] {
            for k in 0..n {
                let e = first + (edge + k) % n;
                if self.edge_up[e] {
                    return Some((e, false));
                }
            }
        }
        let regions = self.region_first.len();
        for dr in 1..regions {
            let r = (region + dr) % regions;
            if self.region_down[r] {
                continue;
            }
            for k in 0..self.region_edges[r] {
                let e = self.region_first[r] + k;
                if self.edge_up[e] {
                    return Some((e, true));
                }
            }
        }
        None
    }

    /// Whether segment `seg` of `rendition` is known to be at edge `e`.
    pub fn cached(&self, e: usize, rendition: usize, seg: u64) -> bool {
        self.present
            .get(e)
            .and_then(|r| r.get(rendition))
            .and_then(|s| s.get(seg as usize))
            .copied()
            .unwrap_or(false)
    }
}

/// HTTP requests of one epoch for one (edge, rendition, segment).
#[derive(Debug, Default, Clone, Copy)]
pub struct Demand {
    pub bytes: u64,
}

/// Upstream traffic caused by one epoch's edge misses.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Upstream {
    pub origin_bytes: u64,
    pub shield_bytes: u64,
    /// (edge, rendition, segment) keys asked for in the epoch and found fresh.
    pub key_hits: u64,
    /// Upstream fetches: keys asked for in the epoch and not found fresh (the
    /// epoch's requests for one key share one fetch, as coalescing does).
    pub misses: u64,
    /// Viewer HTTP requests that reached an edge (the engine fills this in,
    /// weighted by the class weight when sampling).
    pub requests: u64,
    /// Segment-seconds of media transcoded at edges.
    pub transcoded_ms: u64,
}

/// Edges, shield and origin state across the run.
pub struct EdgeTier {
    preset: Preset,
    caches: Vec<MemoryCache>,
    shield: MemoryCache,
    capacity_bps: Vec<f64>,
    origin_capacity_bps: f64,
    segment_ttl_ms: u64,
    top: usize,
    top_bps: u64,
    units: Units,
    view: EdgeView,
}

impl EdgeTier {
    pub fn new(s: &Scenario) -> EdgeTier {
        let mut region_first = Vec::new();
        let mut region_edges = Vec::new();
        let mut capacity_bps = Vec::new();
        for r in &s.regions {
            region_first.push(capacity_bps.len());
            region_edges.push(r.edges as usize);
            for _ in 0..r.edges {
                capacity_bps.push(r.edge_capacity_gbps * 1e9);
            }
        }
        let n = capacity_bps.len();
        let units = Units::new(s);
        let segs = units.count() as usize + 1;
        let cache_bytes = (s.origin.edge_cache_mb as usize).saturating_mul(1 << 20);
        // Renditions are ranked by bitrate; the top one feeds edge transcoding.
        let top = s
            .renditions
            .iter()
            .enumerate()
            .max_by_key(|(i, r)| (r.bitrate_kbps, usize::MAX - i))
            .map_or(0, |(i, _)| i);
        EdgeTier {
            preset: s.preset,
            caches: (0..n).map(|_| MemoryCache::new(cache_bytes)).collect(),
            shield: MemoryCache::new(cache_bytes.saturating_mul(4)),
            capacity_bps,
            origin_capacity_bps: s.origin.capacity_gbps * 1e9,
            segment_ttl_ms: segment_ttl_ms(),
            top,
            top_bps: s.renditions[top].bitrate_kbps * 1000,
            units,
            view: EdgeView {
                origin_up: true,
                edge_up: vec![true; n],
                factor: vec![1.0; n],
                origin_factor: 1.0,
                present: vec![vec![vec![false; segs]; s.renditions.len()]; n],
                region_first,
                region_edges,
                region_down: vec![false; s.regions.len()],
            },
        }
    }

    pub fn view(&self) -> &EdgeView {
        &self.view
    }

    pub fn edges(&self) -> usize {
        self.caches.len()
    }

    /// Sets what is up for the coming epoch.
    pub fn set_health(&mut self, origin_up: bool, edge_up: Vec<bool>, region_down: Vec<bool>) {
        self.view.origin_up = origin_up;
        self.view.edge_up = edge_up;
        self.view.region_down = region_down;
    }

    /// Sets next epoch's congestion from this epoch's demand, in bits per second
    /// (already scaled to the population): capacity ÷ demand, at most 1.
    pub fn set_load(&mut self, edge_bps: &[f64], origin_bps: f64) {
        for (f, (d, c)) in self
            .view
            .factor
            .iter_mut()
            .zip(edge_bps.iter().zip(&self.capacity_bps))
        {
            *f = if *d > *c { c / d } else { 1.0 };
        }
        self.view.origin_factor = if origin_bps > self.origin_capacity_bps {
            self.origin_capacity_bps / origin_bps
        } else {
            1.0
        };
    }

    /// Runs one epoch's requests, keyed (edge, rendition, segment), through the edge
    /// caches at wall time `now_ms`: a hit costs nothing upstream; a miss fetches from
    /// the shield (and the shield from the origin) once, as request coalescing does.
    /// With edge transcoding a lower rendition is made from the top one, so only the
    /// top one is fetched. Unfresh objects count as misses.
    pub fn serve(
        &mut self,
        now_ms: u64,
        demand: &BTreeMap<(usize, usize, u64), Demand>,
    ) -> Upstream {
        let mut up = Upstream::default();
        if !self.preset.edges() {
            return up;
        }
        for (&(e, q, seg), d) in demand {
            if self.lookup(e, q, seg, now_ms) {
                up.key_hits += 1;
                continue;
            }
            up.misses += 1;
            let fetch_q = if self.preset.edge_transcode() && q != self.top {
                up.transcoded_ms += self.units.duration_ms(seg);
                self.top
            } else {
                q
            };
            if fetch_q != q && self.lookup(e, fetch_q, seg, now_ms) {
                // Made from the top rendition already at the edge.
            } else {
                let size = if fetch_q == q {
                    d.bytes
                } else {
                    self.units.bytes(self.top_bps, seg)
                };
                if !self.view.origin_up && !self.shield_has(fetch_q, seg, now_ms) {
                    continue;
                }
                up.shield_bytes += size;
                if !self.shield_has(fetch_q, seg, now_ms) {
                    up.origin_bytes += size;
                    self.shield
                        .insert(self.key(fetch_q, seg), self.object(now_ms, size));
                }
                self.store(e, fetch_q, seg, now_ms, size);
            }
            self.store(e, q, seg, now_ms, d.bytes);
        }
        up
    }

    fn lookup(&mut self, e: usize, q: usize, seg: u64, now_ms: u64) -> bool {
        let hit = self.caches[e]
            .get(&self.key(q, seg))
            .is_some_and(|o| o.is_fresh(now_ms));
        self.mark(e, q, seg, hit);
        hit
    }

    fn shield_has(&self, q: usize, seg: u64, now_ms: u64) -> bool {
        self.shield
            .get(&self.key(q, seg))
            .is_some_and(|o| o.is_fresh(now_ms))
    }

    fn store(&mut self, e: usize, q: usize, seg: u64, now_ms: u64, size: u64) {
        self.caches[e].insert(self.key(q, seg), self.object(now_ms, size));
        self.mark(e, q, seg, true);
    }

    fn mark(&mut self, e: usize, q: usize, seg: u64, v: bool) {
        if let Some(slot) = self
            .view
            .present
            .get_mut(e)
            .and_then(|r| r.get_mut(q))
            .and_then(|s| s.get_mut(seg as usize))
        {
            *slot = v;
        }
    }

    fn object(&self, now_ms: u64, size: u64) -> Arc<CachedObject> {
        let len = (size as usize).min(MAX_BODY);
        Arc::new(CachedObject {
            status: 200,
            headers: Vec::new(),
            body: Bytes::from_static(&ZEROS[..len]),
            stored_ms: now_ms,
            fresh_until_ms: now_ms.saturating_add(self.segment_ttl_ms),
            stale_while_revalidate_until_ms: 0,
            stale_if_error_until_ms: 0,
            memo: cache::Memo::default(),
            pages: Default::default(),
        })
    }

    /// The cache key of unit `u` of rendition `q`.
    fn key(&self, q: usize, u: u64) -> String {
        if self.units.parts() {
            let k = self.units.key(u);
            format!("/live/r{q}/part{}.{}.m4s", k.segment, k.index)
        } else {
            format!("/live/r{q}/seg-{u}.m4s")
        }
    }

    /// Bytes held by edge `e`'s memory tier.
    pub fn cache_bytes(&self, e: usize) -> usize {
        self.caches[e].bytes()
    }
}

/// Lifetime the edge policy gives a media segment the origin sent without headers.
fn segment_ttl_ms() -> u64 {
    freshness(
        200,
        "/live/demo/720p/seg-1.m4s",
        "",
        &[],
        b"",
        &MediaDefaults::default(),
    )
    .map_or(0, |f| f.ttl_ms)
}

/// How stale the edge may serve a live media playlist of `segment_ms` segments and
/// `part_ms` LL-HLS parts (0 = none), per the edge policy (half the part target, or
/// half the target duration without parts).
pub fn playlist_ttl_ms(segment_ms: u64, part_ms: u64) -> u64 {
    let mut body = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n",
        segment_ms.div_ceil(1000)
    );
    if part_ms > 0 {
        body.push_str(&format!(
            "#EXT-X-PART-INF:PART-TARGET={:.3}\n",
            part_ms as f64 / 1000.0
        ));
    }
    let headers: Vec<(String, String)> = Vec::new();
    freshness(
        200,
        "/live/demo/720p/playlist.m3u8",
        "",
        &headers,
        body.as_bytes(),
        &MediaDefaults::default(),
    )
    .map_or(segment_ms / 2, |f| f.ttl_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(preset: Preset) -> EdgeTier {
        EdgeTier::new(&Scenario {
            preset,
            ..Scenario::default()
        })
    }

    #[test]
    fn policy_gives_segments_a_day_and_playlists_half_a_target() {
        assert_eq!(segment_ttl_ms(), 86_400_000);
        assert_eq!(playlist_ttl_ms(2_000, 0), 1_000);
        assert_eq!(playlist_ttl_ms(2_000, 500), 250);
    }

    #[test]
    fn first_request_misses_then_hits() {
        let mut t = tier(Preset::Hybrid);
        let mut d = BTreeMap::new();
        d.insert((0, 1, 5), Demand { bytes: 1_000_000 });
        let up = t.serve(10_000, &d);
        assert_eq!((up.misses, up.key_hits, up.origin_bytes), (1, 0, 1_000_000));
        assert!(t.view().cached(0, 1, 5));
        // Another edge misses at the edge but hits the shield: no origin bytes.
        d.clear();
        d.insert((1, 1, 5), Demand { bytes: 1_000_000 });
        let up = t.serve(11_000, &d);
        assert_eq!(
            (up.misses, up.shield_bytes, up.origin_bytes),
            (1, 1_000_000, 0)
        );
        let up = t.serve(12_000, &d);
        assert_eq!((up.key_hits, up.shield_bytes), (1, 0));
        assert!(t.cache_bytes(0) >= 1_000_000);
    }

    #[test]
    fn edge_transcode_fetches_only_the_top_rendition() {
        let mut t = tier(Preset::HybridEdgeTranscode);
        let mut d = BTreeMap::new();
        for q in 0..4 {
            d.insert((0, q, 7), Demand { bytes: 500_000 });
        }
        let up = t.serve(20_000, &d);
        // Rendition 0 (1080p) is the top: one upstream fetch for all four.
        assert_eq!(up.shield_bytes, 500_000);
        assert_eq!(up.transcoded_ms, 3 * 2_000);
    }

    #[test]
    fn routing_avoids_failed_edges_and_regions() {
        let mut t = tier(Preset::Hybrid);
        assert_eq!(t.view().route(1, 2), Some((6, false)));
        let mut up = vec![true; t.edges()];
        up[6] = false;
        t.set_health(true, up.clone(), vec![false, false, false, false]);
        assert_eq!(t.view().route(1, 2), Some((7, false)));
        t.set_health(true, up, vec![false, true, false, false]);
        assert_eq!(t.view().route(1, 2), Some((8, true)));
        t.set_health(true, vec![false; 13], vec![true; 4]);
        assert_eq!(t.view().route(1, 2), None);
    }

    #[test]
    fn congestion_factor() {
        let mut t = tier(Preset::Hybrid);
        let mut load = vec![0.0; t.edges()];
        load[0] = 800e9;
        t.set_load(&load, 0.0);
        assert!((t.view().factor[0] - 0.5).abs() < 1e-9);
        assert_eq!(t.view().factor[1], 1.0);
    }
}
