//! Fuzz what viewer accounting and the fleet's shared operator state read from Redis:
//! node records with `viewers` and `swarms` (another process wrote them) through
//! `fleet::viewers::parse_record` and the audience sum, and the control state's sets
//! and hashes through `fleet::control::parse_state`; plus the edge's session table fed
//! input-chosen stream names, session ids and CMCD. Nothing may panic; every bound
//! must hold.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = fleet::viewers::parse_record(&text) {
        assert!(r.viewers.len() <= fleet::viewers::MAX_VIEWER_STREAMS);
        assert!(r.swarms.len() <= fleet::viewers::MAX_SWARMS);
        assert!(r
            .viewers
            .iter()
            .all(|v| fleet::viewers::valid_stream(&v.stream)
                && v.sessions <= fleet::viewers::MAX_COUNT));
        let hashes: HashSet<String> = r.swarms.iter().map(|s| s.info_hash.clone()).collect();
        for v in &r.viewers {
            let a = fleet::viewers::audience(std::slice::from_ref(&r), &v.stream, &hashes);
            assert!(a.viewers >= a.http_sessions && a.viewers >= a.p2p_peers);
            if let Some(q) = a.cmcd {
                assert!(q.starvation_ratio.is_none_or(|s| (0.0..=1.0).contains(&s)));
            }
        }
    }
    // The control state: lines split into the five lists by their first byte.
    let (mut p2p, mut drains, mut keys, mut kicks, mut record) =
        (vec![], vec![], vec![], vec![], vec![]);
    for line in text.split('\n') {
        let cut = line.char_indices().nth(1).map_or(line.len(), |(i, _)| i);
        let (tag, rest) = line.split_at(cut);
        let (a, b) = rest.split_once('=').unwrap_or((rest, ""));
        match tag {
            "p" => p2p.push(rest.to_string()),
            "d" => drains.push(rest.to_string()),
            "k" => keys.push((a.to_string(), b.to_string())),
            "r" => record.push((a.to_string(), b.to_string())),
            _ => kicks.push((a.to_string(), b.to_string())),
        }
    }
    let s = fleet::control::parse_state(p2p, drains, keys, kicks, record);
    assert!(s.record.keys().all(|n| fleet::viewers::valid_stream(n)));
    assert!(s.p2p_off.iter().all(|n| fleet::viewers::valid_stream(n)));
    assert!(s.keys.values().flatten().all(|k| k.id.len() == 12));
    // The edge's session table under input-chosen names and ids.
    let table = edge::viewers::Viewers::new(std::time::Duration::from_secs(15), 64);
    for (i, chunk) in data.chunks(7).enumerate() {
        let piece = String::from_utf8_lossy(chunk);
        let path = format!("/live/{piece}/index.m3u8");
        let stream = edge::viewers::live_stream(&path).unwrap_or("x");
        let cmcd = edge::cmcd::parse_query(&format!("CMCD={piece}"));
        let key = if i % 2 == 0 {
            edge::viewers::SessionKey::Sid(&piece)
        } else {
            edge::viewers::SessionKey::Client(std::net::IpAddr::from([127, 0, 0, 1]), chunk)
        };
        table.record(stream, key, cmcd.as_ref());
    }
    assert!(table.held() <= 64);
    let _ = table.report();
});
