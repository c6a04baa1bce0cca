//! Cache keys: the path plus the query parameters that matter, sorted by name so that
//! parameter order does not split the cache. LL-HLS's `_HLS_msn`, `_HLS_part` and
//! `_HLS_skip` are always kept (a blocking reload for the next part is a different
//! object from the plain playlist); configured names (CMCD, tokens, tracking) are
//! dropped. Keys are opaque strings: nothing here decodes or validates paths.

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 8 * 1024;

const ALWAYS_KEPT: [&str; 3] = ["_HLS_msn", "_HLS_part", "_HLS_skip"];

/// The cache key of `path?query`, or `None` when it would be longer than
/// [`MAX_KEY_LEN`].
pub fn cache_key(path: &str, query: Option<&str>, dropped: &[String]) -> Option<String> {
    if path.len() > MAX_KEY_LEN {
        return None;
    }
    let mut params: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter(|kv| {
            let name = kv.split_once('=').map_or(*kv, |(n, _)| n);
            ALWAYS_KEPT.contains(&name) || !dropped.iter().any(|d| d == name)
        })
        .collect();
    params.sort_unstable();
    let mut key = normalize_escapes(path);
    if !params.is_empty() {
        key.push('?');
        key.push_str(&params.join("&"));
    }
    (key.len() <= MAX_KEY_LEN).then_some(key)
}

/// Upper-cases the hex digits of `%xx` escapes so `%2f` and `%2F` share a key.
fn normalize_escapes(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            out.push('%');
            out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
            out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
            i += 3;
            continue;
        }
        // Copy one UTF-8 character.
        let len = utf8_len(c);
        out.push_str(path.get(i..i + len).unwrap_or(""));
        i += len.max(1);
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped() -> Vec<String> {
        vec!["CMCD".into(), "__token__".into()]
    }

    #[test]
    fn order_does_not_matter_and_dropped_params_go() {
        let a = cache_key(
            "/live/x/i.m3u8",
            Some("_HLS_part=2&_HLS_msn=10&CMCD=bl%3D1"),
            &dropped(),
        );
        let b = cache_key(
            "/live/x/i.m3u8",
            Some("_HLS_msn=10&__token__=abc&_HLS_part=2"),
            &dropped(),
        );
        assert_eq!(a, b);
        assert_eq!(a.as_deref(), Some("/live/x/i.m3u8?_HLS_msn=10&_HLS_part=2"));
        assert_eq!(cache_key("/a", None, &dropped()).as_deref(), Some("/a"));
        assert_eq!(cache_key("/a", Some(""), &dropped()).as_deref(), Some("/a"));
    }

    #[test]
    fn ll_hls_params_are_always_kept() {
        let d = vec!["_HLS_msn".to_string()];
        assert_eq!(
            cache_key("/p", Some("_HLS_msn=1"), &d).as_deref(),
            Some("/p?_HLS_msn=1")
        );
        assert_ne!(
            cache_key("/p", Some("_HLS_msn=1"), &d),
            cache_key("/p", Some("_HLS_msn=2"), &d)
        );
    }

    #[test]
    fn escapes_normalize_and_long_keys_are_refused() {
        assert_eq!(
            cache_key("/a%2fb", None, &[]),
            cache_key("/a%2Fb", None, &[])
        );
        assert_eq!(cache_key("/é%", None, &[]).as_deref(), Some("/é%"));
        assert_eq!(cache_key(&"/a".repeat(5000), None, &[]), None);
        assert_eq!(cache_key("/a", Some(&"x".repeat(9000)), &[]), None);
    }
}
