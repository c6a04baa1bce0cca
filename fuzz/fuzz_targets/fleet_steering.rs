//! Fuzz what the router reads from the network: edge playlists and MPDs it rewrites
//! with Content Steering, registry records from Redis, region map entries and the
//! /proc and Prometheus text the load sampler parses. Nothing may panic; a rewritten
//! playlist must parse again.
#![no_main]

use fleet::router::steering::{self, Pathway};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let paths = [
        Pathway {
            id: "edge-a".into(),
            base: "http://a:1".into(),
        },
        Pathway {
            id: "edge-b".into(),
            base: "http://b:2".into(),
        },
    ];
    if let Ok(mv) = media::hls::MultivariantPlaylist::parse(&text) {
        let out = steering::rewrite_multivariant(
            &mv,
            "/live/x/",
            &paths,
            "/steering/hls?stream=live/x".into(),
        );
        media::hls::MultivariantPlaylist::parse(&out.write()).expect("rewritten playlist parses");
    }
    let _ = steering::rewrite_mpd(&text, "/live/x/", &paths, "/s?a=1&b=2");
    let _ = serde_json::from_slice::<fleet::registry::NodeRecord>(data).map(|n| n.utilization());
    let _ = fleet::router::region::Locator::from_map(&[text.as_ref()]);
    let _ = fleet::registry::load::cpu_ticks(&text);
    let _ = fleet::registry::load::established_on(&text, 8080);
    let _ = fleet::registry::load::prometheus_value(&text, "mediamesh_edge_egress_bytes_total");
});
