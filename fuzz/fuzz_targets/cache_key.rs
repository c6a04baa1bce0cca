//! Fuzz the edge's cache keys and Cache-Control parser with arbitrary UTF-8. They
//! must never panic; a key is bounded, idempotent (a key fed back as path and query
//! gives itself), ignores parameter order, never keeps a dropped name, and always
//! keeps `_HLS_msn`. Freshness is computed on the same text as body and headers.
#![no_main]

use edge::cache::key::{cache_key, MAX_KEY_LEN};
use edge::cache::policy::{freshness, parse_cache_control, MediaDefaults};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cc = parse_cache_control(text);
    if let Some(s) = cc.max_age.or(cc.s_maxage) {
        assert!(s <= 1 << 31);
    }

    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    let dropped = vec![
        "CMCD".to_string(),
        "__token__".to_string(),
        "_HLS_msn".to_string(),
    ];
    if let Some(key) = cache_key(path, query, &dropped) {
        assert!(key.len() <= MAX_KEY_LEN);
        let (kp, kq) = match key.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (key.as_str(), None),
        };
        assert_eq!(cache_key(kp, kq, &dropped).as_deref(), Some(key.as_str()));
        if let Some(q) = kq {
            for kv in q.split('&') {
                let name = kv.split_once('=').map_or(kv, |(n, _)| n);
                assert!(name != "CMCD" && name != "__token__");
            }
        }
        // Reversing whole parameters changes nothing unless a name repeats.
        if let Some(q) = query {
            let params: Vec<&str> = q.split('&').collect();
            let mut names: Vec<&str> = params
                .iter()
                .map(|kv| kv.split_once('=').map_or(*kv, |(n, _)| n))
                .collect();
            names.sort_unstable();
            let unique = names.windows(2).all(|w| w[0] != w[1]) && !q.contains('%');
            if unique {
                let reversed: Vec<&str> = params.iter().rev().copied().collect();
                let again = cache_key(path, Some(&reversed.join("&")), &dropped);
                assert_eq!(again.as_deref(), Some(key.as_str()));
            }
        }
    }
    if let Some(key) = cache_key("/i.m3u8", Some("_HLS_msn=7&CMCD=x"), &dropped) {
        assert_eq!(key, "/i.m3u8?_HLS_msn=7");
    }

    let headers = vec![
        ("cache-control".to_string(), text.to_string()),
        ("age".to_string(), text.to_string()),
    ];
    let d = MediaDefaults::default();
    for p in ["/live/i.m3u8", "/live/x.mpd", "/live/s.m4s", "/api"] {
        let _ = freshness(200, p, text, &headers, data, &d);
        let _ = freshness(404, p, "_HLS_msn=1", &[], data, &d);
    }
});
