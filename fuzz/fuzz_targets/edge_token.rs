//! Fuzz the edge's signed-token and CMCD parsers with arbitrary UTF-8. They
//! must never panic; a token that verifies must parse to the same fields;
//! the ACL matcher must agree with a plain string compare when the pattern
//! has no `*`; CMCD log fields must stay on one line without quotes.
#![no_main]

use edge::{cmcd, token};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = token::Token::parse(text);
    let _ = token::parse_key(text);
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    for esc in [token::Escape::AsIs, token::Escape::Early] {
        if let Ok(t) = token::verify_with(KEY, first, path, query, Some(path), 1_000, esc) {
            assert_eq!(token::Token::parse(first).ok(), Some(t));
        }
    }
    let _ = token::extract("__token__", Some(text), Some(text), Some(text));
    if !first.contains('*') && !first.contains('!') {
        assert_eq!(token::acl_matches(first, rest), first == rest);
    } else {
        let _ = token::acl_matches(first, rest);
    }

    let parts: Vec<&str> = text.splitn(4, '\n').collect();
    let cmcds = [
        cmcd::parse_query(text),
        cmcd::parse_headers(
            parts.first().copied(),
            parts.get(1).copied(),
            parts.get(2).copied(),
            parts.get(3).copied(),
        ),
    ];
    for c in cmcds.into_iter().flatten() {
        let line = c.log_fields();
        assert!(!line.contains(['"', '\n', '\r', '\\']), "{line:?}");
    }
    let _ = cmcd::cmsd_static(text, true);
    let dynamic = cmcd::cmsd_dynamic(text, Some(1), None);
    assert!(dynamic.bytes().all(|b| (0x20..0x7f).contains(&b)));
});
