//! How long an upstream answer may be kept: RFC 9111 for a shared cache plus RFC
//! 5861's stale-while-revalidate / stale-if-error, with media-aware defaults for when
//! the origin says nothing (a live media playlist lives about half a part or half a
//! target duration, an LL-HLS blocking answer one second, segments and parts a day).
//!
//! Pure functions of status, path, response headers and body: no clocks, no storage,
//! no request headers (whether a request's `Authorization` or `Cache-Control` allows
//! storing or using a cached answer is the caller's business). `Expires` is not parsed.

/// RFC 9111 §1.2.2: larger delta-seconds are taken as 2^31.
const MAX_DELTA_SECS: u64 = 1 << 31;
/// Longest `Cache-Control` text and most directives looked at.
const MAX_CC_LEN: usize = 4096;
const MAX_DIRECTIVES: usize = 64;
/// Bytes of a playlist or MPD body searched for timing.
const MAX_SCAN: usize = 256 * 1024;
/// Bounds of a playlist TTL derived from its own timing.
const MIN_PLAYLIST_MS: u64 = 100;
const MAX_PLAYLIST_MS: u64 = 60_000;

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
    /// `must-revalidate` or `proxy-revalidate`.
    pub must_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

/// Parses a `Cache-Control` value (several header lines may be joined with `,`).
///
/// Tolerant: names are case-insensitive, values may be quoted (commas inside quotes
/// do not split), unknown directives and junk are ignored. Conservative where RFC 9111
/// §4.2.1 asks: an invalid `max-age`/`s-maxage` counts as 0 (stale), a repeated one
/// keeps the smallest value; an invalid stale-* window counts as absent. `no-cache`
/// and `private` with a field list are taken as the unqualified directives.
pub fn parse_cache_control(value: &str) -> CacheControl {
    let mut cc = CacheControl::default();
    let value = value.get(..MAX_CC_LEN).unwrap_or(value);
    for (name, arg) in directives(value).take(MAX_DIRECTIVES) {
        let name = name.to_ascii_lowercase();
        let secs = arg.as_deref().and_then(delta_seconds);
        match name.as_str() {
            "max-age" => cc.max_age = Some(min_of(cc.max_age, secs.unwrap_or(0))),
            "s-maxage" => cc.s_maxage = Some(min_of(cc.s_maxage, secs.unwrap_or(0))),
            "no-store" => cc.no_store = true,
            "no-cache" => cc.no_cache = true,
            "private" => cc.private = true,
            "public" => cc.public = true,
            "immutable" => cc.immutable = true,
            "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
            "stale-while-revalidate" => {
                if let Some(s) = secs {
                    cc.stale_while_revalidate = Some(min_of(cc.stale_while_revalidate, s));
                }
            }
            "stale-if-error" => {
                if let Some(s) = secs {
                    cc.stale_if_error = Some(min_of(cc.stale_if_error, s));
                }
            }
            _ => {}
        }
    }
    cc
}

fn min_of(old: Option<u64>, new: u64) -> u64 {
    old.map_or(new, |o| o.min(new))
}

/// `1*DIGIT`, capped at 2^31; anything else (sign, fraction, blank) is invalid.
fn delta_seconds(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .map_or(MAX_DELTA_SECS, |n| n.min(MAX_DELTA_SECS)),
    )
}

/// Splits `a, b=1, c="x, y"` into (name, value) pairs; quoted values are unescaped.
fn directives(s: &str) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    let mut rest = s;
    std::iter::from_fn(move || loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            return None;
        }
        let end = rest.find([',', '=']).unwrap_or(rest.len());
        let name = rest[..end].trim().to_string();
        rest = &rest[end..];
        let mut arg = None;
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            if let Some(quoted) = after_eq.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut consumed = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '"' => {
                            consumed = i + 1;
                            break;
                        }
                        '\\' => {
                            if let Some((_, e)) = chars.next() {
                                value.push(e);
                            }
                        }
                        _ => value.push(c),
                    }
                }
                rest = &quoted[consumed..];
                // Junk after the closing quote runs to the next comma.
                let junk = rest.find(',').unwrap_or(rest.len());
                rest = &rest[junk..];
                arg = Some(value);
            } else {
                let end = after_eq.find(',').unwrap_or(after_eq.len());
                arg = Some(after_eq[..end].trim().to_string());
                rest = &after_eq[end..];
            }
        }
        if !name.is_empty() {
            return Some((name, arg));
        }
    })
}

/// How long an object stays fresh, and how long it may be served stale afterwards.
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
    /// Playlists and MPDs whose timing cannot be read; also how long a media 404
    /// (or another heuristically cacheable non-200) is kept.
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

const SEGMENT_EXTENSIONS: [&str; 9] = [
    ".m4s", ".mp4", ".ts", ".aac", ".m4a", ".m4v", ".cmfv", ".cmfa", ".vtt",
];

/// Statuses a shared cache may store without explicit freshness (RFC 9110 §15.1).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses stored when the origin gives explicit freshness. RFC 9111 would allow
/// any final status the cache understands; 206 (we store whole objects), 304 (not an
/// object) and transient errors (5xx but 501) are refused so that one origin hiccup
/// is never pinned at the edge.
fn explicitly_cacheable(status: u16) -> bool {
    heuristically_cacheable(status) || matches!(status, 302 | 303 | 307 | 400 | 403)
}

/// How long to keep an answer; `None` = must not be stored (no-store, private,
/// no-cache, `Set-Cookie`, `Vary: *`, a status not cacheable, no explicit freshness
/// and no media default, or nothing left after subtracting `Age`).
///
/// Order: `s-maxage` > `max-age` > media defaults. The upstream's `Age` (a parent
/// cache's) is subtracted from the lifetime. Stale windows: the origin's
/// stale-while-revalidate / stale-if-error; without them none and
/// `defaults.stale_if_error_ms`, except that `must-revalidate`, `proxy-revalidate`
/// and `s-maxage` (RFC 9111 §5.2.2.10) forbid the default stale-if-error.
pub fn freshness(
    status: u16,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    defaults: &MediaDefaults,
) -> Option<Freshness> {
    let values = |name: &'static str| header_values(headers, name);
    if values("set-cookie").next().is_some()
        || values("vary").any(|v| v.split(',').any(|f| f.trim() == "*"))
    {
        return None;
    }
    let cc_text: Vec<&str> = values("cache-control").collect();
    let cc = parse_cache_control(&cc_text.join(","));
    if cc.no_store || cc.private || cc.no_cache {
        return None;
    }
    let age_ms = values("age")
        .next()
        .and_then(delta_seconds)
        .unwrap_or(0)
        .saturating_mul(1000);
    let swr_ms = cc.stale_while_revalidate.map_or(0, |s| s * 1000);
    let strict = cc.must_revalidate || cc.s_maxage.is_some();
    let sie_ms = match cc.stale_if_error {
        Some(s) => s * 1000,
        None if strict => 0,
        None => defaults.stale_if_error_ms,
    };
    let lifetime_ms = if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        if !explicitly_cacheable(status) {
            return None;
        }
        secs * 1000
    } else {
        if !heuristically_cacheable(status) {
            return None;
        }
        media_default(status, path, query, body, defaults)?
    };
    let ttl_ms = lifetime_ms.saturating_sub(age_ms);
    if ttl_ms == 0 && swr_ms == 0 && sie_ms == 0 {
        return None;
    }
    Some(Freshness {
        ttl_ms,
        swr_ms,
        sie_ms,
    })
}

fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'static str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The lifetime of a media answer the origin said nothing about; `None` for
/// anything that is not media.
fn media_default(
    status: u16,
    path: &str,
    query: &str,
    body: &[u8],
    d: &MediaDefaults,
) -> Option<u64> {
    let file = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let blocking = query
        .split('&')
        .any(|kv| kv.split('=').next() == Some("_HLS_msn"));
    let playlist = file.ends_with(".m3u8");
    let mpd = file.ends_with(".mpd");
    let segment = SEGMENT_EXTENSIONS.iter().any(|e| file.ends_with(e));
    if !(blocking || playlist || mpd || segment) {
        return None;
    }
    if !matches!(status, 200 | 203) {
        // A missing segment or playlist may appear soon (live edge): keep it briefly.
        return Some(d.playlist_fallback_ms);
    }
    Some(if blocking {
        d.blocking_ms
    } else if playlist {
        playlist_ttl(body).unwrap_or(d.playlist_fallback_ms)
    } else if mpd {
        mpd_ttl(body).unwrap_or(d.playlist_fallback_ms)
    } else {
        d.segment_ms
    })
}

/// The longest valid UTF-8 prefix of the first [`MAX_SCAN`] bytes.
fn text_prefix(body: &[u8]) -> &str {
    let head = body.get(..MAX_SCAN).unwrap_or(body);
    match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(head.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or(""),
    }
}

/// Half of `seconds`, in ms, within the playlist bounds; `None` when not a usable
/// positive number.
fn half_of(seconds: f64) -> Option<u64> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    let ms = (seconds * 500.0) as u64; // saturating cast
    Some(ms.clamp(MIN_PLAYLIST_MS, MAX_PLAYLIST_MS))
}

/// Half the part target, else half the target duration.
fn playlist_ttl(body: &[u8]) -> Option<u64> {
    let mut target = None;
    let mut part = None;
    for line in text_prefix(body).lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = v.trim().parse::<f64>().ok();
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            part = v
                .split(',')
                .find_map(|a| a.trim().strip_prefix("PART-TARGET="))
                .and_then(|p| p.trim().parse::<f64>().ok());
        }
    }
    part.and_then(half_of).or_else(|| target.and_then(half_of))
}

/// Half the MPD's `minimumUpdatePeriod`.
fn mpd_ttl(body: &[u8]) -> Option<u64> {
    let text = text_prefix(body);
    let start = text.find("minimumUpdatePeriod")? + "minimumUpdatePeriod".len();
    let rest = text
        .get(start..)?
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = rest.get(1..)?.split(quote).next()?;
    half_of(parse_xs_duration(value)?)
}

/// Seconds of an `xs:duration` without years or months (`PT2S`, `PT1M3.5S`, `P1DT2H`).
fn parse_xs_duration(v: &str) -> Option<f64> {
    let rest = v.trim().strip_prefix('P')?;
    let mut total = 0.0;
    let mut num = String::new();
    let mut in_time = false;
    let mut any = false;
    for c in rest.chars() {
        let unit = match (c, in_time) {
            ('0'..='9' | '.', _) => {
                num.push(c);
                continue;
            }
            ('T', false) if num.is_empty() => {
                in_time = true;
                continue;
            }
            ('D', false) => 86_400.0,
            ('H', true) => 3_600.0,
            ('M', true) => 60.0,
            ('S', true) => 1.0,
            _ => return None,
        };
        total += num.parse::<f64>().ok()? * unit;
        num.clear();
        any = true;
    }
    (any && num.is_empty()).then_some(total)
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

    fn ttl(status: u16, path: &str, query: &str, hs: &[(&str, &str)], body: &[u8]) -> Option<u64> {
        freshness(status, path, query, &h(hs), body, &MediaDefaults::default()).map(|f| f.ttl_ms)
    }

    #[test]
    fn cache_control_parses_tolerantly() {
        let cc = parse_cache_control(
            "Public, MAX-AGE=\"60\", s-maxage=30, stale-while-revalidate=5, stale-if-error=600, junk=, =, ,immutable",
        );
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(30));
        assert!(cc.public && cc.immutable && !cc.no_store);
        assert_eq!(cc.stale_while_revalidate, Some(5));
        assert_eq!(cc.stale_if_error, Some(600));
        assert_eq!(parse_cache_control(""), CacheControl::default());
        assert_eq!(parse_cache_control(",,, = ,\"\""), CacheControl::default());
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let cc = parse_cache_control("no-cache=\"set-cookie, max-age=5\", max-age=9");
        assert!(cc.no_cache);
        assert_eq!(cc.max_age, Some(9));
        let cc = parse_cache_control("private=\"a\\\"b, no-store\"x, public");
        assert!(cc.private && cc.public && !cc.no_store);
        // Unterminated quote: the rest is the value.
        let cc = parse_cache_control("x=\"max-age=5, no-store");
        assert_eq!(cc, CacheControl::default());
    }

    #[test]
    fn invalid_and_repeated_ages_are_conservative() {
        assert_eq!(parse_cache_control("max-age=abc").max_age, Some(0));
        assert_eq!(parse_cache_control("max-age=+5").max_age, Some(0));
        assert_eq!(parse_cache_control("max-age=-5").max_age, Some(0));
        assert_eq!(parse_cache_control("max-age").max_age, Some(0));
        assert_eq!(
            parse_cache_control("max-age=10, max-age=3").max_age,
            Some(3)
        );
        assert_eq!(
            parse_cache_control("max-age=99999999999999999999999").max_age,
            Some(MAX_DELTA_SECS)
        );
        assert_eq!(parse_cache_control("stale-if-error=x").stale_if_error, None);
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
        // s-maxage wins and, being proxy-revalidate too, removes the default stale-if-error.
        assert_eq!(
            f,
            Some(Freshness {
                ttl_ms: 3000,
                swr_ms: 2000,
                sie_ms: 0
            })
        );
        let f = freshness(
            200,
            "/x.json",
            "",
            &h(&[("cache-control", "max-age=7")]),
            b"",
            &d,
        );
        assert_eq!(
            f,
            Some(Freshness {
                ttl_ms: 7000,
                swr_ms: 0,
                sie_ms: 60_000
            })
        );
        // Several Cache-Control lines combine.
        let hs = [
            ("Cache-Control", "public"),
            ("cache-control", "max-age=4, stale-if-error=9"),
        ];
        let f = freshness(200, "/x", "", &h(&hs), b"", &d);
        assert_eq!(f.map(|f| (f.ttl_ms, f.sie_ms)), Some((4000, 9000)));
        // must-revalidate: no default stale-if-error, an explicit one still counts.
        let mr = |cc: &str| {
            freshness(200, "/a", "", &h(&[("cache-control", cc)]), b"", &d).map(|f| f.sie_ms)
        };
        assert_eq!(mr("max-age=5, must-revalidate"), Some(0));
        assert_eq!(
            mr("max-age=5, proxy-revalidate, stale-if-error=3"),
            Some(3000)
        );
    }

    #[test]
    fn refusals() {
        for cc in [
            "no-store",
            "private",
            "no-cache",
            "max-age=60, private=\"x\"",
        ] {
            assert_eq!(
                ttl(200, "/a.m4s", "", &[("cache-control", cc)], b""),
                None,
                "{cc}"
            );
        }
        assert_eq!(ttl(200, "/a.m4s", "", &[("set-cookie", "a=b")], b""), None);
        assert_eq!(ttl(200, "/a.m4s", "", &[("vary", "accept, *")], b""), None);
        assert!(ttl(200, "/a.m4s", "", &[("vary", "accept-encoding")], b"").is_some());
        // Statuses.
        let max = [("cache-control", "max-age=60")];
        for s in [206, 304, 500, 502, 503, 504, 100] {
            assert_eq!(ttl(s, "/a.m4s", "", &max, b""), None, "{s}");
        }
        assert_eq!(ttl(302, "/a", "", &max, b""), Some(60_000));
        assert_eq!(ttl(302, "/a.m4s", "", &[], b""), None);
        assert_eq!(ttl(500, "/seg.m4s", "", &[], b""), None);
        // Not media, no explicit freshness.
        assert_eq!(ttl(200, "/api/v1/streams", "", &[], b"{}"), None);
        assert_eq!(ttl(200, "/a.m4s.json", "", &[], b""), None);
        // max-age=0 without stale windows: nothing to keep.
        let zero = [("cache-control", "max-age=0, must-revalidate")];
        assert_eq!(ttl(200, "/a.m4s", "", &zero, b""), None);
        // max-age=0 alone: stale at once, but kept for stale-if-error.
        let f = freshness(
            200,
            "/a",
            "",
            &h(&[("cache-control", "max-age=0")]),
            b"",
            &MediaDefaults::default(),
        );
        assert_eq!(f.map(|f| (f.ttl_ms, f.sie_ms)), Some((0, 60_000)));
    }

    #[test]
    fn age_from_a_parent_is_subtracted() {
        let hs = [("cache-control", "max-age=10"), ("age", "4")];
        assert_eq!(ttl(200, "/a", "", &hs, b""), Some(6000));
        let hs = [("cache-control", "max-age=10"), ("age", "40")];
        assert_eq!(ttl(200, "/a", "", &hs, b""), Some(0));
        let hs = [("cache-control", "max-age=10"), ("age", "junk")];
        assert_eq!(ttl(200, "/a", "", &hs, b""), Some(10_000));
        assert_eq!(
            ttl(200, "/s.m4s", "", &[("age", "1")], b""),
            Some(86_399_000)
        );
    }

    #[test]
    fn media_defaults() {
        let ll = b"#EXTM3U\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-PART-INF:PART-TARGET=0.5\r\n";
        assert_eq!(ttl(200, "/s/src/index.m3u8", "", &[], ll), Some(250));
        let plain = b"#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n";
        assert_eq!(ttl(200, "/i.M3U8", "", &[], plain), Some(3000));
        assert_eq!(
            ttl(200, "/i.m3u8", "_HLS_msn=3&_HLS_part=1", &[], ll),
            Some(1000)
        );
        assert_eq!(ttl(200, "/i.m3u8", "_HLS_msn&x=1", &[], ll), Some(1000));
        assert_eq!(ttl(200, "/i.m3u8", "x_HLS_msn=3", &[], ll), Some(250));
        // Tiny and huge targets are clamped; junk falls back.
        let tiny = b"#EXT-X-PART-INF:PART-TARGET=0.01\n";
        assert_eq!(ttl(200, "/i.m3u8", "", &[], tiny), Some(MIN_PLAYLIST_MS));
        let huge = b"#EXT-X-TARGETDURATION:1e300\n";
        assert_eq!(ttl(200, "/i.m3u8", "", &[], huge), Some(MAX_PLAYLIST_MS));
        let bad_part = b"#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=NaN\n";
        assert_eq!(ttl(200, "/i.m3u8", "", &[], bad_part), Some(2000));
        assert_eq!(ttl(200, "/i.m3u8", "", &[], &[0xff, 0xfe]), Some(1000));
        assert_eq!(
            ttl(200, "/i.m3u8", "", &[], b"#EXT-X-TARGETDURATION:-1"),
            Some(1000)
        );
        // Segments, parts, init.
        for p in [
            "/seg1.m4s",
            "/init.mp4",
            "/a.ts",
            "/p.cmfv",
            "/x/sub.vtt",
            "/A.AAC",
        ] {
            assert_eq!(ttl(200, p, "", &[], b""), Some(86_400_000), "{p}");
        }
        // A 404 for media is kept briefly, for anything else not at all.
        assert_eq!(ttl(404, "/seg9.m4s", "", &[], b""), Some(1000));
        assert_eq!(ttl(404, "/nothing", "", &[], b""), None);
    }

    #[test]
    fn mpd_defaults() {
        let mpd = br#"<MPD type="dynamic" minimumUpdatePeriod="PT2S">"#;
        assert_eq!(ttl(200, "/x.mpd", "", &[], mpd), Some(1000));
        let mpd = b"<MPD minimumUpdatePeriod = 'PT1M'>";
        assert_eq!(ttl(200, "/x.mpd", "", &[], mpd), Some(30_000));
        let mpd = br#"<MPD type="static">"#;
        assert_eq!(ttl(200, "/x.mpd", "", &[], mpd), Some(1000));
        let mpd = br#"<MPD minimumUpdatePeriod="P1Y">"#;
        assert_eq!(ttl(200, "/x.mpd", "", &[], mpd), Some(1000));
    }

    #[test]
    fn xs_durations() {
        assert_eq!(parse_xs_duration("PT2S"), Some(2.0));
        assert_eq!(parse_xs_duration("PT1M3.5S"), Some(63.5));
        assert_eq!(parse_xs_duration("PT1H"), Some(3600.0));
        assert_eq!(parse_xs_duration("P1DT1S"), Some(86_401.0));
        assert_eq!(parse_xs_duration("P1D"), Some(86_400.0));
        assert_eq!(parse_xs_duration("P1Y"), None);
        assert_eq!(parse_xs_duration("PTxS"), None);
        assert_eq!(parse_xs_duration("PT"), None);
        assert_eq!(parse_xs_duration("PT5"), None);
        assert_eq!(parse_xs_duration("PT1.2.3S"), None);
        assert_eq!(parse_xs_duration("P2H"), None);
    }
}
