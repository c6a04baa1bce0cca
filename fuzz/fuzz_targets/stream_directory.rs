//! Fuzz what an origin reads from the fleet's stream directory (Redis): node records
//! whose `timelines` hold other origins' numbering timelines, fed to the numbering
//! rule, and the hop-count header of a redirected request. Nothing may panic; a
//! number chosen must respect the floor it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use origin::live::numbering::{self, SharedTimeline};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut known: Vec<SharedTimeline> = Vec::new();
    if let Ok(record) = serde_json::from_str::<fleet::registry::NodeRecord>(&text) {
        for v in record.timelines.values() {
            if let Ok(t) = serde_json::from_value::<SharedTimeline>(v.clone()) {
                known.push(t);
            }
        }
    }
    if let Ok(t) = serde_json::from_str::<SharedTimeline>(&text) {
        known.push(t);
    }
    let n = |i: usize| {
        data.get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let (now, kf, target, floor) = (n(0), n(8), n(16) % 60_000, n(24));
    let s = numbering::start(now, kf, target, floor, &known);
    assert!(s.first_msn >= floor);
    let _ = s.grid.cell(kf);
    let _ = s.grid.center_ms(s.first_msn);
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(v) = axum::http::HeaderValue::from_bytes(data) {
        headers.insert(origin::http::elsewhere::HOPS_HEADER, v);
    }
    let _ = origin::http::elsewhere::hops(&headers);
});
