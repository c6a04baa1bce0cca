//! What is simulated: the audience, the delivery network, prices, the failure
//! timeline and the delivery preset, read from a TOML scenario file (every key has a
//! default, so an empty file is a valid scenario) and checked before a run.
//!
//! Not here: running it ([`crate::engine`]) or the model equations ([`crate::net`]).

use serde::{Deserialize, Serialize};

/// Why a scenario cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("unknown preset {0:?} (cdn-only, p2p-only, hybrid, hybrid-edge-transcode)")]
    UnknownPreset(String),
    #[error("unknown latency target {0:?} (low, balanced, max-offload)")]
    UnknownLatency(String),
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// How viewers get their segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Every byte from CDN edges; no tracker, no peers.
    CdnOnly,
    /// No CDN: the origin seeds the swarm directly, peers do the rest.
    P2pOnly,
    /// CDN edges plus peers running the segment scheduler of `mediamesh peer`.
    Hybrid,
    /// Hybrid, and edges make the lower renditions from the top one, so only the top
    /// rendition crosses origin → shield → edge.
    HybridEdgeTranscode,
}

impl Preset {
    pub const ALL: [Preset; 4] = [
        Preset::CdnOnly,
        Preset::P2pOnly,
        Preset::Hybrid,
        Preset::HybridEdgeTranscode,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::CdnOnly => "cdn-only",
            Preset::P2pOnly => "p2p-only",
            Preset::Hybrid => "hybrid",
            Preset::HybridEdgeTranscode => "hybrid-edge-transcode",
        }
    }

    pub fn parse(s: &str) -> Result<Preset, ScenarioError> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s.trim())
            .ok_or_else(|| ScenarioError::UnknownPreset(s.to_string()))
    }

    /// Peers exchange segments.
    pub fn p2p(self) -> bool {
        self != Preset::CdnOnly
    }

    /// HTTP goes to CDN edges (else straight to the origin).
    pub fn edges(self) -> bool {
        self != Preset::P2pOnly
    }

    pub fn edge_transcode(self) -> bool {
        self == Preset::HybridEdgeTranscode
    }
}

/// How close to live viewers play, and so what peers share: `mediamesh peer
/// --latency` (`p2p::peer::Latency`). `max-offload` is whole segments three target
/// durations back (the stock protocol); `low` and `balanced` play LL-HLS parts at
/// the part hold-back (plus one target duration for `balanced`) and share parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Latency {
    /// At PART-HOLD-BACK (three part targets), sharing parts.
    Low,
    /// One target duration further back than `low`, sharing parts.
    Balanced,
    /// Three target durations back, whole segments only.
    #[default]
    MaxOffload,
}

impl Latency {
    pub const ALL: [Latency; 3] = [Latency::Low, Latency::Balanced, Latency::MaxOffload];

    pub fn name(self) -> &'static str {
        match self {
            Latency::Low => "low",
            Latency::Balanced => "balanced",
            Latency::MaxOffload => "max-offload",
        }
    }

    pub fn parse(s: &str) -> Result<Latency, ScenarioError> {
        Latency::ALL
            .into_iter()
            .find(|l| l.name() == s.trim())
            .ok_or_else(|| ScenarioError::UnknownLatency(s.to_string()))
    }

    /// Whether viewers play and share LL-HLS parts (else whole segments).
    pub fn parts(self) -> bool {
        self != Latency::MaxOffload
    }
}

/// Live (segments appear as they are made) or on demand (all exist from the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Live,
    Vod,
}

/// One rung of the bitrate ladder; viewers are spread over rungs by `share`, moved
/// down when their downlink cannot carry 1.5 × the bitrate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rendition {
    pub name: String,
    pub bitrate_kbps: u64,
    pub share: f64,
}

/// A region: its viewers, its CDN edges and its prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Region {
    pub name: String,
    /// Share of the audience.
    pub share: f64,
    pub edges: u32,
    /// Egress capacity of one edge.
    pub edge_capacity_gbps: f64,
    /// Round trip viewer ↔ edge.
    pub edge_rtt_ms: u64,
    /// Round trip viewer ↔ viewer (same region).
    pub peer_rtt_ms: u64,
    /// Round trip viewer ↔ origin (p2p-only fetches from the origin).
    pub origin_rtt_ms: u64,
    /// Round trip edge ↔ shield ↔ origin on a cache miss.
    pub upstream_rtt_ms: u64,
    /// CDN egress price in this region.
    pub edge_usd_per_gb: f64,
}

impl Default for Region {
    fn default() -> Self {
        Region {
            name: "region".into(),
            share: 1.0,
            edges: 2,
            edge_capacity_gbps: 400.0,
            edge_rtt_ms: 20,
            peer_rtt_ms: 40,
            origin_rtt_ms: 90,
            upstream_rtt_ms: 60,
            edge_usd_per_gb: 0.02,
        }
    }
}

/// Arrivals and departures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audience {
    /// Share of viewers that arrive in the opening flash crowd.
    pub flash_crowd_share: f64,
    /// Mean arrival time of the flash crowd (exponential), seconds after the start.
    pub flash_crowd_mean_s: f64,
    /// Share of viewers that leave before the end (churn).
    pub leave_early_share: f64,
    /// Mean watch time of those who leave early (exponential), seconds.
    pub mean_watch_s: f64,
    /// Nobody arrives before this (a warm-up: the stream runs, no viewers yet).
    pub arrive_after_s: f64,
    /// `mediamesh peer --churn` as it is: `swarm_size` slots; the k-th session of a
    /// swarm stays `churn_s × (1 + k mod slots)` and a newcomer takes its slot at
    /// once while more than 2 s are left. 0 = off (then `leave_early_share` churns).
    pub churn_s: f64,
}

impl Default for Audience {
    fn default() -> Self {
        Audience {
            flash_crowd_share: 0.7,
            flash_crowd_mean_s: 20.0,
            leave_early_share: 0.3,
            mean_watch_s: 180.0,
            arrive_after_s: 0.0,
            churn_s: 0.0,
        }
    }
}

/// Viewers as peers: access links, NAT, upload willingness, swarms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Peers {
    /// Median downlink (log-normal spread `link_sigma`).
    pub downlink_median_mbps: f64,
    /// Median uplink (log-normal spread `link_sigma`).
    pub uplink_median_mbps: f64,
    pub link_sigma: f64,
    /// Share of viewers that upload at all (mobile players usually do not).
    pub upload_share: f64,
    /// Share behind symmetric NAT: two of them cannot connect (no TURN).
    pub symmetric_nat_share: f64,
    /// Viewers per swarm (the tracker hands each viewer the others of its swarm).
    pub swarm_size: u32,
    /// Tracker round trip plus WebRTC set-up before two peers can talk: base …
    pub connect_ms: u64,
    /// … plus a uniform random part up to this.
    pub connect_jitter_ms: u64,
    /// Concurrent uploads per viewer (the `UploadGate` slots).
    pub upload_slots: u32,
    /// Delay of an announcement reaching the other peers.
    pub announce_ms: u64,
    /// Offers a viewer sends per tracker announce, i.e. peers it can reach per
    /// announce (bittorrent-tracker and `mediamesh peer`: 5).
    pub offers_per_announce: u32,
    /// Seconds between a viewer's tracker announces (the tracker's `interval`: 120).
    pub announce_interval_s: u64,
    /// Links a viewer keeps at most (`mediamesh peer --max-peers`: 20).
    pub max_peers: u32,
    /// Media buffered before playback starts and after a stall (`mediamesh peer`: 1 s).
    /// Whole-segment mode only: at `low`/`balanced` the peer buffers 0.5 s.
    pub start_buffer_ms: u64,
    /// `mediamesh peer --latency`: `max-offload` (whole segments, the default),
    /// `low` or `balanced` (LL-HLS parts; need `part_ms` > 0 and a live event).
    pub latency: Latency,
    /// `mediamesh peer --live-offset` in ms: how far behind the live edge viewers
    /// join; 0 = the latency target's own (`low`: 3 part targets, `balanced`: that
    /// plus a target duration, `max-offload`: 3 segments).
    pub live_offset_ms: u64,
}

impl Default for Peers {
    fn default() -> Self {
        Peers {
            downlink_median_mbps: 50.0,
            uplink_median_mbps: 10.0,
            link_sigma: 0.9,
            upload_share: 0.8,
            symmetric_nat_share: 0.2,
            swarm_size: 12,
            connect_ms: 1_000,
            connect_jitter_ms: 1_500,
            upload_slots: 4,
            announce_ms: 40,
            offers_per_announce: 5,
            announce_interval_s: 120,
            max_peers: 20,
            start_buffer_ms: 1_000,
            latency: Latency::MaxOffload,
            live_offset_ms: 0,
        }
    }
}

/// The origin (and the shield cache in front of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginSpec {
    /// Egress capacity of the origin (what p2p-only viewers share).
    pub capacity_gbps: f64,
    /// Cloud egress price of the origin.
    pub usd_per_gb: f64,
    /// Price of shield → edge transfer.
    pub shield_usd_per_gb: f64,
    /// Memory of each edge's cache (the real S3-FIFO tier).
    pub edge_cache_mb: u64,
}

impl Default for OriginSpec {
    fn default() -> Self {
        OriginSpec {
            capacity_gbps: 10.0,
            usd_per_gb: 0.05,
            shield_usd_per_gb: 0.01,
            edge_cache_mb: 2_048,
        }
    }
}

/// Prices and delays that are not per region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Costs {
    /// Edge transcoding, per rendition made, per edge, per hour.
    pub transcode_usd_per_rendition_hour: f64,
    /// Extra delay of an edge-made segment the first time it is asked for.
    pub transcode_ms: u64,
    /// Tracker (signalling) cost per viewer-hour.
    pub tracker_usd_per_viewer_hour: f64,
}

impl Default for Costs {
    fn default() -> Self {
        Costs {
            transcode_usd_per_rendition_hour: 0.40,
            transcode_ms: 400,
            tracker_usd_per_viewer_hour: 0.00002,
        }
    }
}

/// What goes wrong, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    pub at_s: u64,
    /// How long it lasts; absent = to the end (not used by `peers-leave`).
    #[serde(default)]
    pub duration_s: Option<u64>,
    pub kind: FailureKind,
    /// Region of `edge-down` and `region-down`.
    #[serde(default)]
    pub region: Option<String>,
    /// Edge number within the region for `edge-down`.
    #[serde(default)]
    pub edge: Option<u32>,
    /// Share of the viewers present that leave at once, for `peers-leave`.
    #[serde(default)]
    pub share: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    EdgeDown,
    RegionDown,
    OriginDown,
    PeersLeave,
}

/// Knobs of the simulator itself.
/// Default of [`SimKnobs::max_detailed_viewers`].
pub const DEFAULT_MAX_DETAILED: u64 = 50_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimKnobs {
    /// At most this many viewers are simulated one by one; above it whole swarms are
    /// sampled (the same share in every region × rendition) and their figures scaled.
    /// 0 = no limit. The default, 50 000, keeps a 1 M-viewer run near 30 s on two
    /// cores with population figures within 1 % of simulating everyone (README).
    pub max_detailed_viewers: u64,
    /// Worker threads; 0 = the machine's cores. The result does not depend on it.
    pub threads: u32,
    /// How long a peer keeps and announces segments behind its playhead (the
    /// scheduler's `keep_behind_ms`).
    pub keep_behind_ms: u64,
}

impl Default for SimKnobs {
    fn default() -> Self {
        SimKnobs {
            max_detailed_viewers: DEFAULT_MAX_DETAILED,
            threads: 0,
            keep_behind_ms: 10_000,
        }
    }
}

/// A whole scenario. `Default` is a 10-minute live event for 10 000 viewers in four
/// regions with a four-rung ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    pub name: String,
    pub preset: Preset,
    pub mode: Mode,
    /// Distinct viewers over the event.
    pub viewers: u64,
    pub duration_s: u64,
    pub seed: u64,
    pub segment_ms: u64,
    /// LL-HLS part target (0 = plain HLS); the edge keeps a live playlist fresh for
    /// half a part target when there are parts, else half a segment.
    pub part_ms: u64,
    pub renditions: Vec<Rendition>,
    pub regions: Vec<Region>,
    pub audience: Audience,
    pub peers: Peers,
    pub origin: OriginSpec,
    pub costs: Costs,
    pub failures: Vec<Failure>,
    pub sim: SimKnobs,
}

impl Default for Scenario {
    fn default() -> Self {
        let region =
            |name: &str, share: f64, edges: u32, rtt: u64, origin_rtt: u64, usd: f64| Region {
                name: name.into(),
                share,
                edges,
                edge_rtt_ms: rtt,
                origin_rtt_ms: origin_rtt,
                edge_usd_per_gb: usd,
                ..Region::default()
            };
        let rendition = |name: &str, kbps: u64, share: f64| Rendition {
            name: name.into(),
            bitrate_kbps: kbps,
            share,
        };
        Scenario {
            name: "live-event".into(),
            preset: Preset::Hybrid,
            mode: Mode::Live,
            viewers: 10_000,
            duration_s: 600,
            seed: 1,
            segment_ms: 2_000,
            part_ms: 0,
            renditions: vec![
                rendition("1080p", 6_000, 0.30),
                rendition("720p", 3_500, 0.35),
                rendition("480p", 1_500, 0.25),
                rendition("360p", 800, 0.10),
            ],
            regions: vec![
                region("na", 0.35, 4, 18, 70, 0.02),
                region("eu", 0.30, 4, 15, 90, 0.02),
                region("apac", 0.25, 3, 25, 160, 0.04),
                region("sa", 0.10, 2, 30, 140, 0.05),
            ],
            audience: Audience::default(),
            peers: Peers::default(),
            origin: OriginSpec::default(),
            costs: Costs::default(),
            failures: Vec::new(),
            sim: SimKnobs::default(),
        }
    }
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        Ok(s)
    }

    /// Checks ranges and references; every figure the engine divides by is non-zero.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        if self.duration_s == 0 || self.duration_s > 7 * 24 * 3600 {
            return bad(format!("duration_s {} not in 1..=604800", self.duration_s));
        }
        if !(200..=60_000).contains(&self.segment_ms) {
            return bad(format!("segment_ms {} not in 200..=60000", self.segment_ms));
        }
        if self.viewers > 100_000_000 {
            return bad("more than 100 000 000 viewers".into());
        }
        if self.renditions.is_empty() || self.renditions.len() > 16 {
            return bad("1 to 16 renditions".into());
        }
        for r in &self.renditions {
            if r.bitrate_kbps == 0 || r.bitrate_kbps > 100_000 {
                return bad(format!("rendition {}: bitrate_kbps", r.name));
            }
            if !r.share.is_finite() || r.share < 0.0 {
                return bad(format!("rendition {}: share", r.name));
            }
        }
        if self.renditions.iter().map(|r| r.share).sum::<f64>() <= 0.0 {
            return bad("rendition shares sum to 0".into());
        }
        if self.regions.is_empty() || self.regions.len() > 64 {
            return bad("1 to 64 regions".into());
        }
        for r in &self.regions {
            if r.edges == 0 || r.edges > 1_000 {
                return bad(format!("region {}: edges not in 1..=1000", r.name));
            }
            if !(r.edge_capacity_gbps.is_finite() && r.edge_capacity_gbps > 0.0) {
                return bad(format!("region {}: edge_capacity_gbps", r.name));
            }
            if !r.share.is_finite() || r.share < 0.0 || !r.edge_usd_per_gb.is_finite() {
                return bad(format!("region {}: share or price", r.name));
            }
        }
        if self.regions.iter().map(|r| r.share).sum::<f64>() <= 0.0 {
            return bad("region shares sum to 0".into());
        }
        if self.part_ms > self.segment_ms {
            return bad(format!("part_ms {} above segment_ms", self.part_ms));
        }
        let p = &self.peers;
        if p.latency.parts() {
            if self.part_ms == 0 {
                return bad(format!(
                    "latency {} needs LL-HLS parts: set part_ms (the origin's default \
                     part target is 500), or use latency max-offload",
                    p.latency.name()
                ));
            }
            if self.part_ms < 100 {
                return bad(format!("part_ms {} below 100", self.part_ms));
            }
            if self.segment_ms.div_ceil(self.part_ms) > 64 {
                return bad("more than 64 parts per segment".into());
            }
            if self.mode == Mode::Vod {
                return bad(format!(
                    "latency {} plays a live edge; a VOD title has no parts (use max-offload)",
                    p.latency.name()
                ));
            }
        }
        if p.live_offset_ms > 3_600_000 {
            return bad("peers.live_offset_ms above 3600000".into());
        }
        if !(2..=64).contains(&p.swarm_size) {
            return bad("peers.swarm_size not in 2..=64".into());
        }
        if !(1..=64).contains(&p.offers_per_announce) || !(1..=64).contains(&p.max_peers) {
            return bad("peers.offers_per_announce and peers.max_peers in 1..=64".into());
        }
        if p.announce_interval_s == 0 || p.start_buffer_ms > 60_000 {
            return bad("peers.announce_interval_s > 0, start_buffer_ms <= 60000".into());
        }
        let a = &self.audience;
        for (name, v, max) in [
            (
                "audience.arrive_after_s",
                a.arrive_after_s,
                self.duration_s as f64,
            ),
            ("audience.churn_s", a.churn_s, 86_400.0),
            (
                "audience.flash_crowd_mean_s",
                a.flash_crowd_mean_s,
                86_400.0,
            ),
            ("audience.mean_watch_s", a.mean_watch_s, 7.0 * 86_400.0),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                return bad(format!("{name} not in 0..={max}"));
            }
        }
        for (name, v) in [
            ("peers.downlink_median_mbps", p.downlink_median_mbps),
            ("peers.uplink_median_mbps", p.uplink_median_mbps),
            ("origin.capacity_gbps", self.origin.capacity_gbps),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be > 0"));
            }
        }
        for (name, v) in [
            ("peers.upload_share", p.upload_share),
            ("peers.symmetric_nat_share", p.symmetric_nat_share),
            (
                "audience.flash_crowd_share",
                self.audience.flash_crowd_share,
            ),
            (
                "audience.leave_early_share",
                self.audience.leave_early_share,
            ),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} not in 0..=1"));
            }
        }
        if !(p.link_sigma.is_finite() && (0.0..=3.0).contains(&p.link_sigma)) {
            return bad("peers.link_sigma not in 0..=3".into());
        }
        for f in &self.failures {
            match f.kind {
                FailureKind::EdgeDown | FailureKind::RegionDown => {
                    let Some(name) = &f.region else {
                        return bad(format!("{:?} at {} s needs a region", f.kind, f.at_s));
                    };
                    let Some(region) = self.regions.iter().find(|r| &r.name == name) else {
                        return bad(format!("failure names unknown region {name:?}"));
                    };
                    if f.kind == FailureKind::EdgeDown && f.edge.unwrap_or(0) >= region.edges {
                        return bad(format!("region {name} has no edge {:?}", f.edge));
                    }
                }
                FailureKind::PeersLeave => {
                    if !f.share.is_some_and(|s| (0.0..=1.0).contains(&s)) {
                        return bad("peers-leave needs a share in 0..=1".into());
                    }
                }
                FailureKind::OriginDown => {}
            }
        }
        Ok(())
    }

    /// Segments of the event.
    pub fn segments(&self) -> u64 {
        (self.duration_s * 1000).div_ceil(self.segment_ms)
    }

    /// How far behind the live edge viewers join, in ms, as `mediamesh peer` picks it:
    /// `peers.live_offset_ms` if set, else at `low` 3 part targets (PART-HOLD-BACK)
    /// plus one part when the preset has peers (the peer's `--latency low` with P2P
    /// on: the pull comes out of that part's time) and PART-HOLD-BACK alone without
    /// (`cdn-only`, the peer's `--no-p2p`), that plus the target duration at
    /// `balanced`, 3 target durations at `max-offload` (the simulator starts at the
    /// segment three before the newest it sees, as the peer does with whole-second
    /// segments).
    pub fn live_offset_ms(&self) -> u64 {
        let target = self.segment_ms.div_ceil(1000) * 1000;
        let swarm_part = if self.preset.p2p() { self.part_ms } else { 0 };
        match (self.peers.live_offset_ms, self.peers.latency) {
            (0, Latency::Low) => 3 * self.part_ms + swarm_part,
            (0, Latency::Balanced) => 3 * self.part_ms + target,
            (0, Latency::MaxOffload) => 3 * self.segment_ms,
            (ms, _) => ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_scenario() {
        let s = Scenario::from_toml("").unwrap();
        assert_eq!(s, Scenario::default());
        s.validate().unwrap();
    }

    #[test]
    fn presets_round_trip() {
        for p in Preset::ALL {
            assert_eq!(Preset::parse(p.name()).unwrap(), p);
            let s = Scenario::from_toml(&format!("preset = \"{}\"", p.name())).unwrap();
            assert_eq!(s.preset, p);
        }
        assert!(Preset::parse("p2p").is_err());
    }

    #[test]
    fn latency_targets_parse_and_need_parts() {
        for l in Latency::ALL {
            assert_eq!(Latency::parse(l.name()).unwrap(), l);
        }
        assert!(Latency::parse("lowest").is_err());
        let s = Scenario::from_toml("part_ms = 500\n[peers]\nlatency = \"low\"").unwrap();
        s.validate().unwrap();
        assert_eq!(
            s.live_offset_ms(),
            2_000,
            "hybrid: one part behind the hold-back"
        );
        let mut off = s.clone();
        off.preset = Preset::CdnOnly;
        assert_eq!(off.live_offset_ms(), 1_500, "LL-HLS alone: the hold-back");
        let b = Scenario::from_toml("part_ms = 500\n[peers]\nlatency = \"balanced\"").unwrap();
        assert_eq!(b.live_offset_ms(), 3_500);
        assert_eq!(Scenario::default().live_offset_ms(), 6_000);
        // No parts, or VOD: refused with a reason.
        let s = Scenario::from_toml("[peers]\nlatency = \"low\"").unwrap();
        assert!(s.validate().unwrap_err().to_string().contains("part_ms"));
        let s = Scenario::from_toml("mode = \"vod\"\npart_ms = 500\n[peers]\nlatency = \"low\"")
            .unwrap();
        assert!(s.validate().is_err());
    }

    #[test]
    fn failures_parse_and_are_checked() {
        let s = Scenario::from_toml(
            r#"
            [[failures]]
            at_s = 60
            kind = "edge-down"
            region = "eu"
            edge = 1
            [[failures]]
            at_s = 120
            kind = "peers-leave"
            share = 0.3
            "#,
        )
        .unwrap();
        s.validate().unwrap();
        let s = Scenario::from_toml(
            "[[failures]]\nat_s = 1\nkind = \"region-down\"\nregion = \"mars\"",
        )
        .unwrap();
        assert!(s.validate().is_err());
    }

    #[test]
    fn hostile_values_are_refused() {
        for text in [
            "segment_ms = 0",
            "duration_s = 0",
            "[peers]\nswarm_size = 1",
            "[peers]\nuplink_median_mbps = -1.0",
            "renditions = []",
            "[[regions]]\nname = \"x\"\nedges = 0",
            "[audience]\nflash_crowd_share = 2.0",
        ] {
            let s = Scenario::from_toml(text).unwrap();
            assert!(s.validate().is_err(), "{text}");
        }
        assert!(Scenario::from_toml("bogus = 1").is_err());
        assert!(Scenario::from_toml("viewers = \"many\"").is_err());
    }
}
