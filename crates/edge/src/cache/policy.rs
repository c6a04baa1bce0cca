//! How long an upstream answer may be kept (RFC 9111 plus RFC 5861's stale
//! extensions), with media-aware defaults for when the origin says nothing: a live
//! media playlist lives about half a part (or half a target duration), an LL-HLS
//! blocking answer one second, segments and parts are immutable.
//!
//! Pure functions of status, path, headers and body; no clocks and no storage.

/// The directives of a `Cache-Control` header that matter to a shared cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub immutable: bool,
    pub must_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

/// Parses a `Cache-Control` value; unknown directives and junk are ignored.
pub fn parse_cache_control(value: &str) -> CacheControl {
    let mut cc = CacheControl::default();
    for item in value.split(',').take(64) {
        let item = item.trim();
        let (name, arg) = match item.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (item, None),
        };
        let secs = || arg.and_then(|a| a.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "max-age" => cc.max_age = secs(),
            "s-maxage" => cc.s_maxage = secs(),
            "no-store" => cc.no_store = true,
            "no-cache" => cc.no_cache = true,
            "private" => cc.private = true,
            "public" => cc.public = true,
            "immutable" => cc.immutable = true,
            "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
            "stale-while-revalidate" => cc.stale_while_revalidate = secs(),
            "stale-if-error" => cc.stale_if_error = secs(),
            _ => {}
        }
    }
    cc
}

/// How long an object stays fresh, and how long it may be served stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub ttl_ms: u64,
    /// stale-while-revalidate window after the TTL.
    pub swr_ms: u64,
    /// stale-if-error window after the TTL.
    pub sie_ms: u64,
}

/// Defaults used when the origin sends no freshness information.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDefaults {
    /// Playlists whose timing cannot be read.
    pub playlist_fallback_ms: u64,
    /// LL-HLS blocking reload answers (`_HLS_msn` in the query).
    pub blocking_ms: u64,
    /// Segments, parts and init segments.
    pub segment_ms: u64,
    /// stale-if-error window when the origin gives none.
    pub stale_if_error_ms: u64,
}

impl Default for MediaDefaults {
    fn default() -> Self {
        Self {
            playlist_fallback_ms: 1_000,
            blocking_ms: 1_000,
            segment_ms: 86_400_000,
            stale_if_error_ms: 60_000,
        }
    }
}

const MEDIA_EXTENSIONS: [&str; 11] = [
    ".m4s", ".mp4", ".ts", ".aac", ".m4a", ".m4v", ".cmfv", ".cmfa", ".vtt", ".webm", ".key",
];

/// Statuses a shared cache may store without explicit freshness (RFC 9110 §15.1).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// How long to keep an answer; `None` = do not store.
pub fn freshness(
    status: u16,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    defaults: &MediaDefaults,
) -> Option<Freshness> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if header("set-cookie").is_some() || header("vary").is_some_and(|v| v.trim() == "*") {
        return None;
    }
    let cc = header("cache-control")
        .map(parse_cache_control)
        .unwrap_or_default();
    if cc.no_store || cc.private || cc.no_cache {
        return None;
    }
    let sie = cc
        .stale_if_error
        .map_or(defaults.stale_if_error_ms, |s| s.saturating_mul(1000));
    let swr = cc
        .stale_while_revalidate
        .map_or(0, |s| s.saturating_mul(1000));
    let sie = if cc.must_revalidate { 0 } else { sie };
    if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        return Some(Freshness {
            ttl_ms: secs.saturating_mul(1000),
            swr_ms: swr,
            sie_ms: sie,
        });
    }
    // The origin said nothing: media-aware defaults for media, nothing otherwise.
    if !heuristically_cacheable(status) {
        return None;
    }
    let lower = path.to_ascii_lowercase();
    let ttl_ms = if query.split('&').any(|kv| kv.starts_with("_HLS_msn=")) {
        defaults.blocking_ms
    } else if lower.ends_with(".m3u8") {
        playlist_ttl(body).unwrap_or(defaults.playlist_fallback_ms)
    } else if lower.ends_with(".mpd") {
        mpd_ttl(body).unwrap_or(defaults.playlist_fallback_ms)
    } else if MEDIA_EXTENSIONS.iter().any(|e| lower.ends_with(e)) {
        if status != 200 {
            // A missing segment may appear soon (live edge): keep the 404 briefly.
            defaults.blocking_ms
        } else {
            defaults.segment_ms
        }
    } else {
        return None;
    };
    Some(Freshness {
        ttl_ms,
        swr_ms: swr,
        sie_ms: sie,
    })
}

/// Half a part target, or half the target duration; VOD and ended playlists a day.
fn playlist_ttl(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body.get(..body.len().min(256 * 1024))?).ok()?;
    let mut target = None;
    let mut part = None;
    for line in text.lines() {
        if line.starts_with("#EXT-X-ENDLIST") || line.starts_with("#EXT-X-PLAYLIST-TYPE:VOD") {
            return Some(86_400_000);
        }
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = v.trim().parse::<f64>().ok();
        }
        if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            part = v
                .split(',')
                .find_map(|a| a.trim().strip_prefix("PART-TARGET="))
                .and_then(|p| p.trim().parse::<f64>().ok());
        }
        if line.starts_with("#EXT-X-STREAM-INF") {
            // Multivariant playlists change rarely.
            return Some(5_000);
        }
    }
    let secs = part.or(target)?;
    if !secs.is_finite() || secs <= 0.0 {
        return None;
    }
    Some(((secs * 1000.0 / 2.0) as u64).max(100))
}

/// Half the MPD's minimumUpdatePeriod; static MPDs a day.
fn mpd_ttl(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body.get(..body.len().min(256 * 1024))?).ok()?;
    if text.contains("type=\"static\"") {
        return Some(86_400_000);
    }
    let start = text.find("minimumUpdatePeriod=\"")? + "minimumUpdatePeriod=\"".len();
    let value = text.get(start..)?.split('"').next()?;
    let secs = parse_xs_seconds(value)?;
    Some(((secs * 1000.0 / 2.0) as u64).max(100))
}

/// Seconds of a simple xs:duration like `PT2S`, `PT1M3.5S`.
fn parse_xs_seconds(v: &str) -> Option<f64> {
    let rest = v.strip_prefix("PT")?;
    let mut total = 0.0;
    let mut num = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'H' => total += num.parse::<f64>().ok()? * 3600.0,
            'M' => total += num.parse::<f64>().ok()? * 60.0,
            'S' => total += num.parse::<f64>().ok()?,
            _ => return None,
        }
        if c.is_ascii_alphabetic() {
            num.clear();
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn cache_control_parses_tolerantly() {
        let cc = parse_cache_control("Public, max-age=\"60\", s-maxage=30, stale-while-revalidate=5, stale-if-error=600, junk=, =, immutable");
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(30));
        assert!(cc.public && cc.immutable);
        assert_eq!(cc.stale_while_revalidate, Some(5));
        assert_eq!(cc.stale_if_error, Some(600));
        assert_eq!(parse_cache_control("max-age=abc").max_age, None);
    }

    #[test]
    fn explicit_directives_win() {
        let d = MediaDefaults::default();
        let f = freshness(
            200,
            "/a.m4s",
            "",
            &h(&[(
                "cache-control",
                "max-age=10, s-maxage=3, stale-while-revalidate=2",
            )]),
            b"",
            &d,
        );
        assert_eq!(
            f,
            Some(Freshness {
                ttl_ms: 3000,
                swr_ms: 2000,
                sie_ms: 60_000
            })
        );
        for no in ["no-store", "private", "no-cache"] {
            assert_eq!(
                freshness(200, "/a.m4s", "", &h(&[("cache-control", no)]), b"", &d),
                None
            );
        }
        assert_eq!(
            freshness(200, "/a.m4s", "", &h(&[("set-cookie", "a=b")]), b"", &d),
            None
        );
        let f = freshness(
            200,
            "/a",
            "",
            &h(&[("cache-control", "max-age=5, must-revalidate")]),
            b"",
            &d,
        );
        assert_eq!(f.map(|f| f.sie_ms), Some(0));
    }

    #[test]
    fn media_defaults() {
        let d = MediaDefaults::default();
        let ll = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.5\n";
        assert_eq!(
            freshness(200, "/s/src/index.m3u8", "", &[], ll, &d).map(|f| f.ttl_ms),
            Some(250)
        );
        let plain = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n";
        assert_eq!(
            freshness(200, "/i.m3u8", "", &[], plain, &d).map(|f| f.ttl_ms),
            Some(3000)
        );
        assert_eq!(
            freshness(200, "/i.m3u8", "_HLS_msn=3&_HLS_part=1", &[], ll, &d).map(|f| f.ttl_ms),
            Some(1000)
        );
        let vod = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-ENDLIST\n";
        assert_eq!(
            freshness(200, "/v.m3u8", "", &[], vod, &d).map(|f| f.ttl_ms),
            Some(86_400_000)
        );
        assert_eq!(
            freshness(200, "/seg1.m4s", "", &[], b"", &d).map(|f| f.ttl_ms),
            Some(86_400_000)
        );
        assert_eq!(
            freshness(404, "/seg9.m4s", "", &[], b"", &d).map(|f| f.ttl_ms),
            Some(1000)
        );
        let mpd = br#"<MPD type="dynamic" minimumUpdatePeriod="PT2S">"#;
        assert_eq!(
            freshness(200, "/x.mpd", "", &[], mpd, &d).map(|f| f.ttl_ms),
            Some(1000)
        );
        assert_eq!(freshness(200, "/api/v1/streams", "", &[], b"{}", &d), None);
        assert_eq!(freshness(500, "/seg.m4s", "", &[], b"", &d), None);
        assert_eq!(
            freshness(200, "/i.m3u8", "", &[], &[0xff, 0xfe], &d).map(|f| f.ttl_ms),
            Some(1000)
        );
    }

    #[test]
    fn xs_durations() {
        assert_eq!(parse_xs_seconds("PT2S"), Some(2.0));
        assert_eq!(parse_xs_seconds("PT1M3.5S"), Some(63.5));
        assert_eq!(parse_xs_seconds("PT1H"), Some(3600.0));
        assert_eq!(parse_xs_seconds("P1D"), None);
        assert_eq!(parse_xs_seconds("PTxS"), None);
    }
}
