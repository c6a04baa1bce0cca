//! Fuzz the edge's canonical request path with arbitrary UTF-8. It must never panic;
//! its output is a fixed point, starts with `/`, and holds no dot-segment, no `//`,
//! no encoded slash or backslash, no escape of an unreserved character and no
//! lower-case escape, so nothing downstream (token check, filters, cache key,
//! origin) can read it two ways.
#![no_main]

use edge::canonical::canonical_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = text.split_once('?').map_or(text, |(p, _)| p);
    let Ok(c) = canonical_path(path) else {
        return;
    };
    assert!(c.starts_with('/'));
    assert_eq!(canonical_path(&c).as_deref(), Ok(c.as_str()));
    assert!(!c.contains("//"));
    assert!(!c.contains('\\'));
    let upper = c.to_ascii_uppercase();
    assert!(!upper.contains("%2F") && !upper.contains("%5C") && !upper.contains("%2E"));
    for seg in c.split('/') {
        let name = seg.split(';').next().unwrap_or(seg);
        assert!(name != "." && name != "..", "{c:?}");
    }
    let b = c.as_bytes();
    for (i, _) in c.match_indices('%') {
        let hex = b.get(i + 1..i + 3).unwrap_or(b"zz");
        assert!(hex
            .iter()
            .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h)));
    }
    assert!(!c.bytes().any(|x| x < 0x20 || x == 0x7f));
});
