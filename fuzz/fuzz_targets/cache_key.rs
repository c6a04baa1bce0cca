//! Fuzz the edge's cache keys and Cache-Control parser with arbitrary UTF-8. They
//! must never panic. The property that matters: the key and the upstream path agree
//! — whatever request a key maps to is exactly what is fetched: the upstream
//! path-and-query is the key, and fed back as a request (path and query) it maps to
//! itself, with the canonical path unchanged. A key is also bounded, ignores
//! parameter order, never keeps a dropped name, always keeps `_HLS_msn`, and on a
//! media path keeps nothing but `_HLS_*` and the operator's kept names; the quick
//! path's key of a plain path (`plain_key`) is the one `target` makes. Freshness is
//! computed on the same text as body and headers.
#![no_main]

use cache::key::{is_media_path, plain_key, target, MAX_KEY_LEN};
use cache::policy::{freshness, parse_cache_control, MediaDefaults};
use edge::canonical::canonical_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cc = parse_cache_control(text);
    if let Some(s) = cc.max_age.or(cc.s_maxage) {
        assert!(s <= 1 << 31);
    }

    let (raw_path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    let dropped = vec![
        "CMCD".to_string(),
        "__token__".to_string(),
        "_HLS_msn".to_string(),
    ];
    let kept = vec!["size".to_string(), "CMCD".to_string()];
    // As the edge does: canonical path first, then the target of path and query.
    let Ok(path) = canonical_path(raw_path) else {
        return;
    };
    // The quick path's lookup key of a plain path is the key `target` makes for it
    // without a query (the raw path too: `plain_key` is not only for canonical ones).
    for p in [raw_path, path.as_str()] {
        if let Some(k) = plain_key(p) {
            assert_eq!(k, p);
            let made = target(p, None, &dropped, &kept);
            assert_eq!(made.as_ref().map(|t| t.key()), Some(k), "{p:?}");
        }
    }
    if let Some(t) = target(&path, query, &dropped, &kept) {
        let key = t.key();
        assert!(key.len() <= MAX_KEY_LEN);
        // The key and the upstream path agree.
        assert_eq!(t.upstream(), key);
        let (kp, kq) = match key.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (key, None),
        };
        assert_eq!(kp, t.path());
        assert_eq!(kq.unwrap_or(""), t.query());
        // Fetching the upstream path through an edge gives the same key: a shield
        // parent caches what its child asked for under the same name.
        assert_eq!(canonical_path(kp).as_deref(), Ok(kp));
        let again = target(kp, kq, &dropped, &kept);
        assert_eq!(again.as_ref().map(|a| a.key()), Some(key));
        if let Some(q) = kq {
            for kv in q.split('&') {
                let name = kv.split_once('=').map_or(kv, |(n, _)| n);
                assert!(name != "CMCD" && name != "__token__");
                if is_media_path(kp) {
                    assert!(name.starts_with("_HLS_") || name == "size", "{key:?}");
                }
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
                let again = target(&path, Some(&reversed.join("&")), &dropped, &kept);
                assert_eq!(again.as_ref().map(|a| a.key()), Some(key));
            }
        }
    }
    if let Some(t) = target("/i.m3u8", Some("_HLS_msn=7&CMCD=x&junk=1"), &dropped, &kept) {
        assert_eq!(t.upstream(), "/i.m3u8?_HLS_msn=7");
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
