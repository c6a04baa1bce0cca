//! The canonical request path: the one form of a viewer's path that the edge uses for
//! everything (the token check, Proxy-Wasm filters, the watermark variant, the ladder,
//! the cache key and the upstream request), computed once at the start of
//! `Edge::handle`. A path that could mean something else to another component (an
//! origin that collapses `..`, a file server that decodes `%2F`) is refused with 400
//! instead of being guessed at.
//!
//! Rules (RFC 3986 §6.2.2 equivalences, plus refusals):
//! - escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded (`%6C` →
//!   `l`); every other escape is kept with upper-case hex (`%3f` → `%3F`);
//! - refused: a path not starting with `/`; a `%` not followed by two hex digits;
//!   `%2F` (encoded slash); `\` raw or as `%5C`; NUL and other control characters,
//!   raw or escaped (`%00`–`%1F`, `%7F`); any dot-segment, literal or encoded (`.`,
//!   `..`, `%2e%2E`), also with a `;` parameter (`..;x`, as Tomcat reads it);
//! - `//`: runs of slashes are merged into one, as nginx (`merge_slashes`, on by
//!   default) and most file servers do, so `//vod/x` is `/vod/x` for the token check,
//!   a filter's deny-list, the key and the origin alike.
//!
//! The result is a fixed point (`canonical_path(canonical_path(p)) == canonical_path(p)`)
//! and keeps non-ASCII text as it came. Not here: the query (see `cache::key`, which
//! decides which parameters are kept) and length limits (the key refuses long targets).

/// Why a path was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("malformed percent-escape in the path")]
    BadEscape,
    #[error("encoded slash (%2F) in the path")]
    EncodedSlash,
    #[error("backslash in the path")]
    Backslash,
    #[error("control character in the path")]
    Control,
    #[error("dot-segment ('.' or '..') in the path")]
    DotSegment,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether a path starting with `/` is its own canonical form: nothing to decode or
/// refuse, no slash to merge, and no segment starting with `.` (so no dot-segment).
fn is_plain(bytes: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in bytes {
        match b {
            b'%' | b'\\' | 0..=0x1F | 0x7F => return false,
            b'/' | b'.' if prev == b'/' => return false,
            _ => {}
        }
        prev = b;
    }
    true
}

/// Whether `raw` (a request path without query) is its own canonical form, so that
/// [`canonical_path`] would give it back unchanged (checked without allocating).
pub fn is_canonical(raw: &str) -> bool {
    raw.starts_with('/') && is_plain(raw.as_bytes())
}

/// The canonical form of `raw` (a request path without query), or why it is refused.
pub fn canonical_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Most paths are canonical already (no escape, backslash, control character,
    // `//` or `/.`): one pass over the bytes proves it and they are copied as they are.
    if is_plain(raw.as_bytes()) {
        return Ok(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    // Copy whole UTF-8 runs between the ASCII bytes that need looking at.
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi * 16 + lo;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    0..=0x1F | 0x7F => return Err(PathError::Control),
                    _ if is_unreserved(v) => out.push(char::from(v)),
                    _ => {
                        out.push('%');
                        out.push(char::from(HEX[usize::from(hi)]));
                        out.push(char::from(HEX[usize::from(lo)]));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x1F | 0x7F => return Err(PathError::Control),
            b'/' if out.ends_with('/') => i += 1,
            _ => {
                // Copy one char (ASCII or a whole multi-byte UTF-8 sequence).
                let ch_len = raw[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&raw[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    for segment in out.split('/') {
        let name = segment.split(';').next().unwrap_or(segment);
        if name == "." || name == ".." {
            return Err(PathError::DotSegment);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> String {
        match canonical_path(p) {
            Ok(c) => c,
            Err(e) => panic!("{p:?} refused: {e}"),
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_upper_cased() {
        // Finding 1: the poisoning path is the same object as the plain one.
        assert_eq!(ok("/%6Cive/demo/index.m3u8"), "/live/demo/index.m3u8");
        assert_eq!(ok("/%76od/x.mp4"), "/vod/x.mp4");
        assert_eq!(ok("/%7euser/%41.ts"), "/~user/A.ts");
        assert_eq!(ok("/a%20b"), "/a%20b");
        assert_eq!(ok("/a%3fb%e9"), "/a%3Fb%E9");
        assert_eq!(ok("/é/x"), "/é/x");
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/a/"), "/a/");
        assert_eq!(ok("/a..b/.x/x./...;"), "/a..b/.x/x./...;");
    }

    #[test]
    fn dot_segments_are_refused_literal_or_encoded() {
        // Finding 2: the ACL bypasses.
        for p in [
            "/live/a/../b/index.m3u8",
            "/live/a/%2e%2e/b/index.m3u8",
            "/live/a/%2E%2E/b/index.m3u8",
            "/live/a/.%2e/b",
            "/live/a/./b",
            "/live/a/%2e/b",
            "/live/a/..",
            "/..",
            "/live/a/..;x/b",
            "/live/a/.;/b",
        ] {
            assert_eq!(canonical_path(p), Err(PathError::DotSegment), "{p}");
        }
        assert_eq!(
            canonical_path("/live/a/%2E%2E%2Fb%2Findex.m3u8"),
            Err(PathError::EncodedSlash)
        );
    }

    #[test]
    fn slashes_backslashes_controls_and_broken_escapes_are_refused() {
        assert_eq!(canonical_path("/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(canonical_path("/a\\b"), Err(PathError::Backslash));
        assert_eq!(canonical_path("/a%5cb"), Err(PathError::Backslash));
        assert_eq!(canonical_path("/a%00b"), Err(PathError::Control));
        assert_eq!(canonical_path("/a%0Ab"), Err(PathError::Control));
        assert_eq!(canonical_path("/a%7f"), Err(PathError::Control));
        assert_eq!(canonical_path("/a\u{1}b"), Err(PathError::Control));
        assert_eq!(canonical_path("/a%"), Err(PathError::BadEscape));
        assert_eq!(canonical_path("/a%4"), Err(PathError::BadEscape));
        assert_eq!(canonical_path("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(canonical_path("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(canonical_path(""), Err(PathError::NotAbsolute));
    }

    #[test]
    fn plain_paths_come_back_as_they_are_and_others_take_the_long_way() {
        for p in [
            "/",
            "/vod/a/seg1.m4s",
            "/live/ch/720p.v/x.m4s",
            "/a;b/c~d",
            "/ü/ß.ts",
        ] {
            assert!(is_plain(p.as_bytes()), "{p}");
            assert_eq!(ok(p), p);
        }
        // Not plain, still accepted (and canonical) by the full pass.
        for (p, want) in [
            ("/a/.hidden", "/a/.hidden"),
            ("/a%2dz", "/a-z"),
            ("/a//b", "/a/b"),
        ] {
            assert!(!is_plain(p.as_bytes()), "{p}");
            assert_eq!(ok(p), want);
        }
        for p in [
            "/a/./b",
            "/a/../b",
            "/a/..;x/b",
            "/a\\b",
            "/a\u{7f}",
            "/%2e%2e/x",
        ] {
            assert!(!is_plain(p.as_bytes()), "{p:?}");
            assert!(canonical_path(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn doubled_slashes_merge() {
        assert_eq!(ok("//vod/x.mp4"), "/vod/x.mp4");
        assert_eq!(ok("/live//a///b/"), "/live/a/b/");
        // An escaped dot next to merged slashes is still found.
        assert_eq!(
            canonical_path("/live/a//%2e%2e//b"),
            Err(PathError::DotSegment)
        );
    }

    #[test]
    fn output_is_a_fixed_point() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: Vec<char> = "%%%/./.2eE6cCfF0_~-aé;\\".chars().collect();
        for _ in 0..20_000 {
            let len = (x % 20) as usize;
            let s: String = std::iter::once('/')
                .chain((0..len).map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                }))
                .collect();
            if let Ok(c) = canonical_path(&s) {
                assert_eq!(canonical_path(&c).as_deref(), Ok(c.as_str()), "{s:?}");
                assert!(!c.contains("//") && !c.contains("%2F"), "{s:?}");
            }
        }
    }
}
