//! Cache keys: the path plus the query parameters that matter, sorted by name so that
//! parameter order does not split the cache. The key is also exactly the path and
//! query sent upstream ([`Target::upstream`]), so an answer is never cached under a
//! key that differs from what was fetched.
//!
//! Which parameters matter:
//! - media objects and playlists ([`is_media_path`]: `.m3u8`, `.mpd`, `.m4s`, `.mp4`,
//!   `.ts`, …): only LL-HLS's `_HLS_msn`, `_HLS_part` and `_HLS_skip` (a blocking
//!   reload for the next part is a different object from the plain playlist) and the
//!   names an operator lists in `kept` (minus `dropped`); everything else (junk,
//!   cache busters, CMCD, tokens) is dropped, so it can neither split the cache nor
//!   multiply origin fetches and ladder transcodes;
//! - other paths: every parameter except the `dropped` names (LL-HLS ones are always
//!   kept).
//!
//! Normalization is only what RFC 3986 §6.2.2 calls equivalent: `%xx` escapes get
//! upper-case hex, and escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//! decoded; a bare `%` (not starting an escape) is taken literally and written
//! `%25`. The path is expected to be canonical already (the edge's `canonical`, which
//! refuses dot-segments and encoded slashes); the key does not refuse anything but
//! length. Keys are opaque strings, not URLs to re-parse.

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 8 * 1024;

/// Longest `path` + `query` looked at; longer targets are refused before any work.
const MAX_INPUT_LEN: usize = 4 * MAX_KEY_LEN;

const ALWAYS_KEPT: [&str; 3] = ["_HLS_msn", "_HLS_part", "_HLS_skip"];

/// File extensions of media objects and playlists, whose keys keep only protocol and
/// operator-listed parameters.
const MEDIA_EXTENSIONS: [&str; 22] = [
    "m3u8", "m3u", "mpd", "m4s", "mp4", "m4a", "m4v", "m4f", "fmp4", "cmfv", "cmfa", "cmft",
    "cmfm", "ts", "aac", "ac3", "ec3", "mp3", "vtt", "webvtt", "ttml", "mov",
];

/// Whether `path` names a media object or playlist (by its extension, any case).
pub fn is_media_path(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or(path);
    match last.rsplit_once('.') {
        Some((_, ext)) => MEDIA_EXTENSIONS.iter().any(|m| m.eq_ignore_ascii_case(ext)),
        None => false,
    }
}

/// What one request maps to: the key it is cached under, which is also the exact
/// path and query fetched upstream for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    key: String,
    path_len: usize,
}

impl Target {
    /// The cache key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The path and query sent upstream: the key itself.
    pub fn upstream(&self) -> &str {
        &self.key
    }

    /// The path part (normalized).
    pub fn path(&self) -> &str {
        &self.key[..self.path_len]
    }

    /// The kept query (normalized, sorted), without `?`; empty when none is kept.
    pub fn query(&self) -> &str {
        self.key
            .get(self.path_len..)
            .and_then(|q| q.strip_prefix('?'))
            .unwrap_or("")
    }

    pub fn into_key(self) -> String {
        self.key
    }
}

/// The [`Target`] of `path?query` by the rules of the module doc, or `None` when the
/// key would be longer than [`MAX_KEY_LEN`].
pub fn target(
    path: &str,
    query: Option<&str>,
    dropped: &[String],
    kept: &[String],
) -> Option<Target> {
    let query = query.unwrap_or("");
    if path.len().saturating_add(query.len()) > MAX_INPUT_LEN {
        return None;
    }
    let media = is_media_path(path);
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (name, rest) = match kv.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (kv, None),
            };
            let name = normalize(name, false);
            let rest = rest.map_or(String::new(), |v| format!("={}", normalize(v, false)));
            (name, rest)
        })
        .filter(|(name, _)| {
            ALWAYS_KEPT.contains(&name.as_str())
                || (!dropped.iter().any(|d| d == name)
                    && (!media || kept.iter().any(|k| k == name)))
        })
        .collect();
    // Stable: repeated names keep their order (`a=1&a=2` is not `a=2&a=1`).
    params.sort_by(|a, b| a.0.cmp(&b.0));
    let mut key = normalize(path, true);
    let path_len = key.len();
    for (i, (name, rest)) in params.iter().enumerate() {
        key.push(if i == 0 { '?' } else { '&' });
        key.push_str(name);
        key.push_str(rest);
        if key.len() > MAX_KEY_LEN {
            return None;
        }
    }
    (key.len() <= MAX_KEY_LEN).then_some(Target { key, path_len })
}

/// The cache key of `path` asked for without a query, when that key is `path`
/// itself: no `%` and no `?` in it (nothing [`target`] rewrites) and within the
/// length limit. Lets a lookup skip building the key (the edge's quick path); any
/// other path takes [`target`].
pub fn plain_key(path: &str) -> Option<&str> {
    let plain = path.len() <= MAX_KEY_LEN && !path.bytes().any(|b| b == b'%' || b == b'?');
    plain.then_some(path)
}

/// The cache key of `path?query` minus the `dropped` parameter names (compared
/// exactly, after normalizing their escapes), with no operator-kept names for media
/// paths; `None` when it would be longer than [`MAX_KEY_LEN`]. See [`target`].
pub fn cache_key(path: &str, query: Option<&str>, dropped: &[String]) -> Option<String> {
    target(path, query, dropped, &[]).map(Target::into_key)
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

/// Upper-cases `%xx` hex, decodes escaped unreserved characters, escapes a bare `%`
/// as `%25`; in a path, a literal `?` becomes `%3F` so the key's first `?` always
/// starts the query. Idempotent.
fn normalize(part: &str, is_path: bool) -> String {
    let bytes = part.as_bytes();
    // Nothing to rewrite (the common case): a copy.
    if !bytes.iter().any(|&b| b == b'%' || (is_path && b == b'?')) {
        return part.to_string();
    }
    let mut out = String::with_capacity(part.len());
    let mut chars = part.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                let v = hi * 16 + lo;
                if is_unreserved(v) {
                    out.push(char::from(v));
                } else {
                    out.push('%');
                    out.push(char::from(HEX[usize::from(hi)]));
                    out.push(char::from(HEX[usize::from(lo)]));
                }
                // The two hex digits are ASCII, so skipping two chars skips them.
                chars.next();
                chars.next();
                continue;
            }
        }
        if c == '%' {
            // A bare `%` means a literal one: `%25`, so it can never combine with
            // what follows into an escape when the key is read again.
            out.push_str("%25");
            continue;
        }
        if c == '?' && is_path {
            out.push_str("%3F");
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped() -> Vec<String> {
        vec!["CMCD".into(), "__token__".into(), "utm_source".into()]
    }

    fn key(path: &str, query: Option<&str>) -> Option<String> {
        cache_key(path, query, &dropped())
    }

    #[test]
    fn a_plain_key_is_the_key_target_makes() {
        let long = format!("/{}", "a".repeat(MAX_KEY_LEN));
        let edge = format!("/{}", "a".repeat(MAX_KEY_LEN - 1));
        for path in [
            "/live/abc/seg1.m4s",
            "/",
            "",
            "/a%2Fb",
            "/a%41",
            "/odd?",
            "/x/../y",
            "/UPPER/Case.M4S",
            edge.as_str(),
            long.as_str(),
        ] {
            let made = target(path, None, &dropped(), &["kept".to_string()]);
            // Not plain: looked up by `target`'s key (which may be the path too).
            if let Some(k) = plain_key(path) {
                assert_eq!(Some(k), made.as_ref().map(Target::key), "{path}");
            }
        }
        assert_eq!(plain_key("/live/abc/seg1.m4s"), Some("/live/abc/seg1.m4s"));
        assert_eq!(plain_key(&edge), Some(edge.as_str()));
        for not_plain in ["/a%41", "/odd?", long.as_str()] {
            assert_eq!(plain_key(not_plain), None, "{not_plain}");
        }
    }

    #[test]
    fn order_does_not_matter_and_dropped_params_go() {
        let a = key(
            "/live/x/i.m3u8",
            Some("_HLS_part=2&_HLS_msn=10&CMCD=bl%3D1,br%3D300"),
        );
        let b = key(
            "/live/x/i.m3u8",
            Some("_HLS_msn=10&__token__=st=1~exp=2~hmac=ab&_HLS_part=2&utm_source=x"),
        );
        assert_eq!(a, b);
        assert_eq!(a.as_deref(), Some("/live/x/i.m3u8?_HLS_msn=10&_HLS_part=2"));
        assert_eq!(key("/a", None).as_deref(), Some("/a"));
        assert_eq!(key("/a", Some("")).as_deref(), Some("/a"));
        assert_eq!(key("/a", Some("&&CMCD=x&")).as_deref(), Some("/a"));
        assert_eq!(key("/a", Some("b=2&a=1")).as_deref(), Some("/a?a=1&b=2"));
    }

    #[test]
    fn other_params_are_kept_with_their_form() {
        assert_eq!(key("/a", Some("v")).as_deref(), Some("/a?v"));
        assert_ne!(key("/a", Some("v")), key("/a", Some("v=")));
        assert_ne!(key("/a", Some("x=1")), key("/a", None));
        // Repeated names keep their relative order.
        assert_eq!(
            key("/a", Some("a=2&b=0&a=1")).as_deref(),
            Some("/a?a=2&a=1&b=0")
        );
        assert_ne!(key("/a", Some("a=1&a=2")), key("/a", Some("a=2&a=1")));
        // Dropped names match exactly (query names are case-sensitive).
        assert_eq!(key("/a", Some("cmcd=1")).as_deref(), Some("/a?cmcd=1"));
    }

    #[test]
    fn ll_hls_params_are_always_kept() {
        let d = vec!["_HLS_msn".to_string(), "_HLS_skip".to_string()];
        assert_eq!(
            cache_key("/p", Some("_HLS_msn=1&_HLS_skip=YES"), &d).as_deref(),
            Some("/p?_HLS_msn=1&_HLS_skip=YES")
        );
        assert_ne!(
            cache_key("/p", Some("_HLS_msn=1"), &d),
            cache_key("/p", Some("_HLS_msn=2"), &d)
        );
        // An escaped name is the same name.
        assert_eq!(
            key("/p", Some("%5FHLS_msn=1")).as_deref(),
            Some("/p?_HLS_msn=1")
        );
        assert_eq!(key("/p", Some("%43MCD=1")).as_deref(), Some("/p"));
    }

    #[test]
    fn escapes_normalize_but_reserved_ones_stay_escaped() {
        assert_eq!(key("/a%2fb", None).as_deref(), Some("/a%2Fb"));
        assert_ne!(key("/a%2Fb", None), key("/a/b", None));
        assert_eq!(key("/%7euser/%41.ts", None).as_deref(), Some("/~user/A.ts"));
        assert_eq!(key("/a%20b", None).as_deref(), Some("/a%20b"));
        assert_eq!(key("/x", Some("q=%2f%41")).as_deref(), Some("/x?q=%2FA"));
        // Broken escapes and non-ASCII pass through untouched.
        assert_eq!(key("/é", None).as_deref(), Some("/é"));
        assert_eq!(key("/a%", None), key("/a%25", None));
        assert_eq!(key("/%zz%4", None).as_deref(), Some("/%25zz%254"));
        // A bare `%` cannot team up with a decoded digit into a new escape.
        assert_eq!(key("/%%341", None).as_deref(), Some("/%2541"));
        assert_eq!(key("/%e9", None).as_deref(), Some("/%E9"));
        // Dot segments and doubled slashes are not ours to fold.
        assert_ne!(key("/a/../b", None), key("/b", None));
        assert_ne!(key("//b", None), key("/b", None));
    }

    #[test]
    fn keys_are_fixed_points() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let alphabet: Vec<char> = "%%%?&==aAfF09_~-./2Ѐé_HLS_msnCMCD".chars().collect();
        for _ in 0..20_000 {
            let len = (x % 24) as usize;
            let s: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let (p, q) = match s.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (s.as_str(), None),
            };
            let k = key(p, q).expect("short");
            let (kp, kq) = match k.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (k.as_str(), None),
            };
            assert_eq!(key(kp, kq).as_deref(), Some(k.as_str()), "{s:?}");
        }
    }

    #[test]
    fn junk_params_on_media_paths_do_not_split_the_key_or_reach_upstream() {
        // Findings 6 and 7: `?x=1…12` made 13 objects (13 transcodes, 13 holds).
        let d = dropped();
        let plain = target("/live/s/240p/seg7.m4s", None, &d, &[]);
        for i in 1..=12 {
            let q = format!("x={i}");
            assert_eq!(target("/live/s/240p/seg7.m4s", Some(&q), &d, &[]), plain);
        }
        let t = target(
            "/live/x/index.m3u8",
            Some("_HLS_msn=5&junk=7&_HLS_part=1&CMCD=sid%3D1"),
            &d,
            &[],
        )
        .expect("short");
        assert_eq!(t.key(), "/live/x/index.m3u8?_HLS_msn=5&_HLS_part=1");
        assert_eq!(t.upstream(), t.key());
        assert_eq!(t.path(), "/live/x/index.m3u8");
        assert_eq!(t.query(), "_HLS_msn=5&_HLS_part=1");
        // Operator-kept names stay, unless also dropped; extension case does not matter.
        let kept = vec!["size".to_string(), "CMCD".to_string()];
        let t = target("/obj/a.M4S", Some("size=10&b=2&CMCD=x"), &d, &kept).expect("short");
        assert_eq!(t.upstream(), "/obj/a.M4S?size=10");
        assert_eq!(t.query(), "size=10");
        // Other paths keep every parameter that is not dropped.
        let t = target("/api/x", Some("b=2&a=1&CMCD=x"), &d, &[]).expect("short");
        assert_eq!(t.upstream(), "/api/x?a=1&b=2");
        assert_eq!(
            target("/a", None, &d, &[]).map(|t| t.query().len()),
            Some(0)
        );
        assert!(is_media_path("/a/b.mpd") && is_media_path("/x.ts") && !is_media_path("/a.b/c"));
    }

    #[test]
    fn a_question_mark_in_the_path_cannot_fake_a_query() {
        assert_ne!(key("/a?b", None), key("/a", Some("b")));
        assert_eq!(key("/a?b", None).as_deref(), Some("/a%3Fb"));
    }

    #[test]
    fn long_keys_are_refused() {
        assert_eq!(key(&"/a".repeat(5000), None), None);
        assert_eq!(key("/a", Some(&"x".repeat(9000))), None);
        assert_eq!(key("/a", Some(&"y=1&".repeat(9000))), None);
        // A long dropped parameter does not matter.
        let q = format!("CMCD={}&a=1", "z".repeat(9000));
        assert_eq!(key("/a", Some(&q)).as_deref(), Some("/a?a=1"));
        assert!(key(&"/".repeat(MAX_KEY_LEN), None).is_some());
        assert!(key(&"/".repeat(MAX_KEY_LEN + 1), None).is_none());
    }
}
