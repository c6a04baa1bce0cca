//! What `--stats FILE` writes: one entry per viewer session and the totals. The key
//! names of `total` (`http_bytes`, `p2p_bytes`, `stalls`, `stall_seconds`,
//! `startup_seconds_p50`, `rejected_segments`, `latency_to_live_p50_seconds`,
//! `latency_to_live_p95_seconds`, `p2p_part_bytes`, `rejected_parts`) are relied on
//! by scripts. Latency to live is sampled from the player clock: wall time now minus
//! the capture time of the media at the playhead (the segment's
//! EXT-X-PROGRAM-DATE-TIME plus the offset into it), while playing.

use serde::Serialize;

/// One viewer session.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewerStats {
    pub viewer: usize,
    /// A test double that corrupts what it uploads (`--corrupt-uploads`); left out
    /// of the totals.
    pub corrupting: bool,
    pub http_bytes: u64,
    pub p2p_bytes: u64,
    pub uploaded_bytes: u64,
    pub segments_played: u64,
    pub stalls: u32,
    pub stall_seconds: f64,
    /// `null` when the viewer never started playing.
    pub startup_seconds: Option<f64>,
    pub watched_seconds: f64,
    pub rejected_segments: u64,
    pub banned_peers: u64,
    pub peer_timeouts: u64,
    pub peers_max: usize,
    pub error: Option<String>,
    /// Verified part bytes from peers (part of `p2p_bytes`).
    pub p2p_part_bytes: u64,
    pub rejected_parts: u64,
    /// Signed digest lists fetched to verify peers' bytes (not in `http_bytes`).
    pub digest_bytes: u64,
    pub latency_to_live_p50_seconds: Option<f64>,
    pub latency_to_live_p95_seconds: Option<f64>,
    /// Latency samples (seconds), for the totals.
    #[serde(skip)]
    pub latency_samples: Vec<f64>,
}

impl ViewerStats {
    /// Fills the latency percentiles from the samples.
    pub fn finish_latency(&mut self) {
        let (p50, p95) = percentiles(&mut self.latency_samples.clone());
        self.latency_to_live_p50_seconds = p50;
        self.latency_to_live_p95_seconds = p95;
    }
}

fn percentiles(v: &mut [f64]) -> (Option<f64>, Option<f64>) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| (!v.is_empty()).then(|| v[((v.len() as f64 * q) as usize).min(v.len() - 1)]);
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    (at(0.5).map(round), at(0.95).map(round))
}

/// Sums over all sessions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub viewers: usize,
    pub http_bytes: u64,
    pub p2p_bytes: u64,
    pub uploaded_bytes: u64,
    /// p2p_bytes / (http_bytes + p2p_bytes).
    pub offload: f64,
    pub stalls: u64,
    pub stall_seconds: f64,
    pub startup_seconds_p50: Option<f64>,
    pub startup_seconds_max: Option<f64>,
    pub rejected_segments: u64,
    pub banned_peers: u64,
    pub errors: usize,
    pub p2p_part_bytes: u64,
    pub rejected_parts: u64,
    pub digest_bytes: u64,
    /// Over the samples of all viewers (`null` without program date times).
    pub latency_to_live_p50_seconds: Option<f64>,
    pub latency_to_live_p95_seconds: Option<f64>,
}

/// The whole file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub peers: Vec<ViewerStats>,
    pub total: Totals,
}

impl Report {
    pub fn new(mut peers: Vec<ViewerStats>) -> Report {
        peers.sort_by_key(|p| p.viewer);
        let mut t = Totals {
            viewers: peers.iter().filter(|p| !p.corrupting).count(),
            ..Totals::default()
        };
        let mut startups: Vec<f64> = Vec::new();
        let mut latency: Vec<f64> = Vec::new();
        for p in peers.iter().filter(|p| !p.corrupting) {
            t.p2p_part_bytes += p.p2p_part_bytes;
            t.rejected_parts += p.rejected_parts;
            t.digest_bytes += p.digest_bytes;
            latency.extend(&p.latency_samples);
            t.http_bytes += p.http_bytes;
            t.p2p_bytes += p.p2p_bytes;
            t.uploaded_bytes += p.uploaded_bytes;
            t.stalls += u64::from(p.stalls);
            t.stall_seconds += p.stall_seconds;
            t.rejected_segments += p.rejected_segments;
            t.banned_peers += p.banned_peers;
            t.errors += usize::from(p.error.is_some());
            startups.extend(p.startup_seconds);
        }
        let all = t.http_bytes + t.p2p_bytes;
        t.offload = if all == 0 {
            0.0
        } else {
            t.p2p_bytes as f64 / all as f64
        };
        startups.sort_by(f64::total_cmp);
        t.startup_seconds_p50 = startups.get(startups.len() / 2).copied();
        t.startup_seconds_max = startups.last().copied();
        (t.latency_to_live_p50_seconds, t.latency_to_live_p95_seconds) = percentiles(&mut latency);
        Report { peers, total: t }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_key_names() {
        let r = Report::new(vec![
            ViewerStats {
                viewer: 1,
                http_bytes: 100,
                p2p_bytes: 300,
                startup_seconds: Some(2.0),
                stall_seconds: 0.5,
                stalls: 1,
                ..ViewerStats::default()
            },
            ViewerStats {
                viewer: 0,
                http_bytes: 100,
                startup_seconds: Some(1.0),
                ..ViewerStats::default()
            },
        ]);
        assert_eq!(r.peers[0].viewer, 0);
        assert!((r.total.offload - 0.6).abs() < 1e-9);
        let v = serde_json::to_value(&r).expect("json");
        for k in [
            "http_bytes",
            "p2p_bytes",
            "stalls",
            "stall_seconds",
            "startup_seconds_p50",
            "rejected_segments",
            "latency_to_live_p50_seconds",
            "latency_to_live_p95_seconds",
            "p2p_part_bytes",
            "rejected_parts",
        ] {
            assert!(v["total"].get(k).is_some(), "{k}");
        }
        assert_eq!(v["total"]["startup_seconds_p50"], 2.0);
    }
}
