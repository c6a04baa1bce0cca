//! What to do with a request given what the cache holds and the time: the edge's
//! freshness decisions (RFC 9111 freshness, RFC 5861 stale-while-revalidate and
//! stale-if-error) as pure functions of `now_ms` and the cached object, so they are
//! tested on virtual time. The windows themselves come from `policy::freshness` when
//! the object is stored (`fresh_until_ms`, `stale_while_revalidate_until_ms`,
//! `stale_if_error_until_ms`); an LL-HLS blocking reload (`_HLS_msn` in the key) is
//! an object of its own key with `MediaDefaults::blocking_ms` of life, so the same
//! rules hold for it.
//!
//! Not here: fetching, coalescing the fetch, or answering (the edge does those).

use crate::CachedObject;

/// What to do with a request before asking upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Fresh: answer from the cache.
    Hit,
    /// Stale within stale-while-revalidate: answer the cached copy now and refresh
    /// it in the background.
    ServeStaleAndRefresh,
    /// Fetch (joining a fetch in flight for the key). `stale_if_error`: a cached copy
    /// exists that may answer if the upstream fails (ask [`on_upstream`] when it does,
    /// since the window may close while the fetch runs).
    Fetch { stale_if_error: bool },
}

/// What the cache says for a request at `now_ms` (Unix ms) given the cached object
/// for its key, if any.
pub fn decide(now_ms: u64, cached: Option<&CachedObject>) -> Decision {
    match cached {
        Some(obj) if obj.is_fresh(now_ms) => Decision::Hit,
        Some(obj) if now_ms < obj.stale_while_revalidate_until_ms => Decision::ServeStaleAndRefresh,
        Some(obj) => Decision::Fetch {
            stale_if_error: now_ms < obj.stale_if_error_until_ms,
        },
        None => Decision::Fetch {
            stale_if_error: false,
        },
    }
}

/// How an upstream fetch went, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// A response head with this status.
    Answered(u16),
    /// No usable response (every upstream failed or timed out).
    Failed,
}

/// What to answer once the upstream has answered or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFetch {
    /// Pass the upstream's answer on (a 4xx is an answer).
    Forward,
    /// Serve the stale copy instead (stale-if-error).
    ServeStale,
    /// Nothing to serve: answer with an error (502, or 504 for a time-out).
    Fail,
}

/// Decides at `now_ms` between the upstream's answer and the stale copy `stale`: a
/// 5xx or a failure is replaced by a stale copy still within stale-if-error.
pub fn on_upstream(now_ms: u64, stale: Option<&CachedObject>, upstream: Upstream) -> AfterFetch {
    let stale_ok = stale.is_some_and(|o| now_ms < o.stale_if_error_until_ms);
    match upstream {
        Upstream::Answered(status) if status < 500 => AfterFetch::Forward,
        Upstream::Answered(_) if stale_ok => AfterFetch::ServeStale,
        Upstream::Answered(_) => AfterFetch::Forward,
        Upstream::Failed if stale_ok => AfterFetch::ServeStale,
        Upstream::Failed => AfterFetch::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{freshness, MediaDefaults};

    /// An object stored at `t` with the windows `policy::freshness` gives.
    fn stored(t: u64, path: &str, query: &str, headers: &[(&str, &str)]) -> CachedObject {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let f = freshness(200, path, query, &headers, b"", &MediaDefaults::default())
            .unwrap_or_else(|| panic!("{path}?{query} not storable"));
        CachedObject {
            status: 200,
            headers,
            body: bytes::Bytes::new(),
            stored_ms: t,
            fresh_until_ms: t + f.ttl_ms,
            stale_while_revalidate_until_ms: t + f.ttl_ms + f.swr_ms,
            stale_if_error_until_ms: t + f.ttl_ms + f.sie_ms,
            memo: crate::Memo::default(),
            pages: Default::default(),
        }
    }

    #[test]
    fn nothing_cached_fetches() {
        assert_eq!(
            decide(0, None),
            Decision::Fetch {
                stale_if_error: false
            }
        );
        assert_eq!(on_upstream(0, None, Upstream::Failed), AfterFetch::Fail);
        assert_eq!(
            on_upstream(0, None, Upstream::Answered(503)),
            AfterFetch::Forward
        );
    }

    #[test]
    fn fresh_then_revalidating_then_stale_if_error_then_gone() {
        let t = 1_000_000;
        let o = stored(
            t,
            "/vod/a/seg1.m4s",
            "",
            &[(
                "cache-control",
                "max-age=10, stale-while-revalidate=5, stale-if-error=60",
            )],
        );
        assert_eq!(decide(t, Some(&o)), Decision::Hit);
        assert_eq!(decide(t + 9_999, Some(&o)), Decision::Hit);
        assert_eq!(decide(t + 10_000, Some(&o)), Decision::ServeStaleAndRefresh);
        assert_eq!(decide(t + 14_999, Some(&o)), Decision::ServeStaleAndRefresh);
        assert_eq!(
            decide(t + 15_000, Some(&o)),
            Decision::Fetch {
                stale_if_error: true
            }
        );
        // The upstream answers: passed on, 4xx too; a 5xx or a failure: stale.
        let now = t + 30_000;
        assert_eq!(
            on_upstream(now, Some(&o), Upstream::Answered(200)),
            AfterFetch::Forward
        );
        assert_eq!(
            on_upstream(now, Some(&o), Upstream::Answered(404)),
            AfterFetch::Forward
        );
        assert_eq!(
            on_upstream(now, Some(&o), Upstream::Answered(502)),
            AfterFetch::ServeStale
        );
        assert_eq!(
            on_upstream(now, Some(&o), Upstream::Failed),
            AfterFetch::ServeStale
        );
        // Past stale-if-error: fetch with no fallback.
        let late = t + 70_000;
        assert_eq!(
            decide(late, Some(&o)),
            Decision::Fetch {
                stale_if_error: false
            }
        );
        assert_eq!(
            on_upstream(late, Some(&o), Upstream::Failed),
            AfterFetch::Fail
        );
        assert_eq!(
            on_upstream(late, Some(&o), Upstream::Answered(500)),
            AfterFetch::Forward
        );
    }

    #[test]
    fn the_stale_if_error_window_is_read_when_the_fetch_ends() {
        let t = 0;
        let o = stored(
            t,
            "/v/seg.m4s",
            "",
            &[("cache-control", "max-age=1, stale-if-error=2")],
        );
        // Decided within the window, but the fetch failed after it closed.
        assert_eq!(
            decide(2_500, Some(&o)),
            Decision::Fetch {
                stale_if_error: true
            }
        );
        assert_eq!(
            on_upstream(3_000, Some(&o), Upstream::Failed),
            AfterFetch::Fail
        );
    }

    #[test]
    fn ll_hls_blocking_reload_lives_blocking_ms() {
        // An answer to `?_HLS_msn=…` without Cache-Control: MediaDefaults::blocking_ms
        // (1 s), then the default stale-if-error (60 s), no stale-while-revalidate.
        let t = 5_000;
        let o = stored(t, "/live/s/index.m3u8", "_HLS_msn=7&_HLS_part=1", &[]);
        assert_eq!(decide(t + 999, Some(&o)), Decision::Hit);
        assert_eq!(
            decide(t + 1_000, Some(&o)),
            Decision::Fetch {
                stale_if_error: true
            }
        );
        assert_eq!(
            on_upstream(t + 60_999, Some(&o), Upstream::Failed),
            AfterFetch::ServeStale
        );
        assert_eq!(
            on_upstream(t + 61_000, Some(&o), Upstream::Failed),
            AfterFetch::Fail
        );
    }

    #[test]
    fn must_revalidate_never_serves_stale() {
        let t = 0;
        let o = stored(
            t,
            "/v/seg.m4s",
            "",
            &[("cache-control", "max-age=2, must-revalidate")],
        );
        assert_eq!(decide(1_999, Some(&o)), Decision::Hit);
        assert_eq!(
            decide(2_000, Some(&o)),
            Decision::Fetch {
                stale_if_error: false
            }
        );
        assert_eq!(
            on_upstream(2_000, Some(&o), Upstream::Failed),
            AfterFetch::Fail
        );
    }
}
