//! Fuzz the WebTorrent tracker core with arbitrary bytes as WebSocket frames. It
//! must never panic, every reply must be JSON, a refused frame always gets a
//! `failure reason` to its sender, and the peer/swarm counts stay consistent
//! through close and expiry.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2p::tracker::{Id20, Tracker, TrackerConfig};

fuzz_target!(|data: &[u8]| {
    let mut t = Tracker::new(TrackerConfig::default());
    let now = Instant::now();
    let (a, b) = (t.open(now), t.open(now));
    // A peer already in a swarm, so offers/answers in the input have somewhere to go.
    let ih = Id20([7; 20]).to_binary_string();
    let pid = Id20([9; 20]).to_binary_string();
    let seed =
        serde_json::json!({"action": "announce", "info_hash": ih, "peer_id": pid, "left": 0});
    let _ = t.handle_frame(a, seed.to_string().as_bytes(), now);

    // The whole input as one frame, then split on newlines as several frames.
    let mut frames = vec![data];
    frames.extend(data.split(|&c| c == b'\n').take(32));
    for (i, frame) in frames.into_iter().enumerate() {
        let conn = if i % 2 == 0 { b } else { a };
        let h = t.handle_frame(conn, frame, now + Duration::from_millis(i as u64 * 100));
        for o in &h.out {
            assert!(serde_json::from_str::<serde_json::Value>(&o.text).is_ok());
        }
        if h.rejected.is_some() && h.out.is_empty() {
            // Only silently dropped cases: an answer to an unknown peer.
            assert_eq!(h.rejected.map(|r| r.label()), Some("unknown_peer"));
        }
    }
    assert!(t.peer_count() <= 1 + 100 * 2);
    t.close(b);
    let _ = t.tick(now + Duration::from_secs(10_000));
    assert_eq!(t.peer_count(), 0);
    assert_eq!(t.swarm_count(), 0);
    t.close(a);
});
