//! The network and media model: segment sizes and transfer times. Flows are fluid (a
//! transfer takes size ÷ rate plus half a round trip each way); there are no
//! per-packet or per-byte events.
//!
//! Not here: who transfers what ([`crate::swarm`]) or caches ([`crate::edge`]).

use crate::population::substream;

/// Bytes of segment `seg` at `bitrate_bps` for `segment_ms`: the nominal size times a
/// per-segment complexity factor in 0.85..1.15, shared by every rendition.
pub fn segment_bytes(bitrate_bps: u64, segment_ms: u64, seg: u64) -> u64 {
    let nominal = bitrate_bps * segment_ms / 8_000;
    let r = substream(0x5e6_0001, seg) % 1_000;
    (nominal * (850 + r * 300 / 1_000) / 1_000).max(1)
}

/// Milliseconds to move `bytes` at `bps` (at least 1).
pub fn transfer_ms(bytes: u64, bps: f64) -> u64 {
    if !(bps.is_finite() && bps > 0.0) {
        return u64::MAX / 4;
    }
    ((bytes as f64 * 8_000.0 / bps).ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_vary_around_nominal() {
        let sizes: Vec<u64> = (0..100)
            .map(|s| segment_bytes(3_000_000, 2_000, s))
            .collect();
        assert!(sizes.iter().all(|&b| (637_500..=862_500).contains(&b)));
        assert!(sizes.iter().any(|&b| b != sizes[0]));
        assert_eq!(
            segment_bytes(3_000_000, 2_000, 7),
            segment_bytes(3_000_000, 2_000, 7)
        );
    }

    #[test]
    fn transfer_times() {
        assert_eq!(transfer_ms(1_000_000, 8e6), 1_000);
        assert_eq!(transfer_ms(1, 1e12), 1);
        assert!(transfer_ms(1, 0.0) > 1_000_000_000);
    }
}
