//! What `--stats FILE` writes: one entry per viewer session and the totals. The key
//! names of `total` (`http_bytes`, `p2p_bytes`, `stalls`, `stall_seconds`,
//! `startup_seconds_p50`, `rejected_segments`) are relied on by scripts.

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
        for p in peers.iter().filter(|p| !p.corrupting) {
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
        ] {
            assert!(v["total"].get(k).is_some(), "{k}");
        }
        assert_eq!(v["total"]["startup_seconds_p50"], 2.0);
    }
}
