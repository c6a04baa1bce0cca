//! Sending an asker to the origin that holds a stream: when this origin is asked for
//! `/live/{stream}/…` that it does not hold live, and the fleet's stream directory
//! says another origin holds it live, it answers `302 Found` with that origin's URL
//! (same path and query).
//!
//! Why a redirect and not a proxy: an edge (or player) then talks to the origin that
//! has the stream, at no cost to this one, and it keeps working when this origin is
//! the one going away. Edges follow these redirects themselves (they are marked with
//! `Mediamesh-Redirect: directory`), so viewers stay on the edge and its cache keys do
//! not change; other clients (ffmpeg, players) follow them as any redirect.
//!
//! Loop safety: the directory never lists this origin itself; a follower sends
//! `Mediamesh-Hops: N` (the redirects it has followed for this request) and no
//! redirect is given at [`MAX_HOPS`] or more, so stale views cannot bounce a request
//! between two origins. What this origin still holds (older segments of an interrupted
//! stream) it serves itself. Not here: the directory (fleet) or following (edge).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use crate::live::directory::Directory;

/// Request header: how many directory redirects the request has followed.
pub const HOPS_HEADER: &str = "mediamesh-hops";
/// Response header marking a stream-directory redirect (edges follow these).
pub const REDIRECT_HEADER: &str = "mediamesh-redirect";
/// No redirect is given to a request that has followed this many.
pub const MAX_HOPS: u32 = 2;

/// Where to send a request for `stream` (path and query `path_and_query`) that this
/// origin cannot answer, if anywhere: the first holder of the stream, unless the
/// request has followed [`MAX_HOPS`] redirects already.
pub fn target(
    directory: &dyn Directory,
    stream: &str,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Option<String> {
    if !path_and_query.starts_with('/') || path_and_query.starts_with("//") {
        return None;
    }
    if hops(headers) >= MAX_HOPS {
        return None;
    }
    let holder = directory.holders(stream).into_iter().find(|h| {
        (h.starts_with("http://") || h.starts_with("https://"))
            && !h.contains(|c: char| c.is_whitespace() || c.is_control())
    })?;
    Some(format!("{}{path_and_query}", holder.trim_end_matches('/')))
}

/// Redirects the request followed so far (a missing or malformed header counts as 0).
pub fn hops(headers: &HeaderMap) -> u32 {
    headers
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0)
}

/// The `302 Found` answer to `location`.
pub fn redirect(location: &str) -> Option<Response> {
    let value = HeaderValue::from_str(location).ok()?;
    let mut res = Response::new(axum::body::Body::from(format!(
        "this origin does not hold the stream live; it is at {location}\n"
    )));
    *res.status_mut() = StatusCode::FOUND;
    let h = res.headers_mut();
    h.insert(header::LOCATION, value);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(REDIRECT_HEADER, HeaderValue::from_static("directory"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    metrics::counter!("mediamesh_directory_redirects_total").increment(1);
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::numbering::SharedTimeline;

    #[derive(Debug)]
    struct Fixed(Vec<String>);

    impl Directory for Fixed {
        fn timelines(&self, _: &str) -> Vec<SharedTimeline> {
            Vec::new()
        }
        fn holders(&self, stream: &str) -> Vec<String> {
            if stream == "cam" {
                self.0.clone()
            } else {
                Vec::new()
            }
        }
    }

    fn with_hops(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOPS_HEADER, HeaderValue::from_str(v).expect("value"));
        h
    }

    #[test]
    fn sends_the_asker_to_the_holder_with_path_and_query() {
        let d = Fixed(vec!["http://b:8080/".into()]);
        let t = target(
            &d,
            "cam",
            "/live/cam/src/index.m3u8?_HLS_msn=5",
            &HeaderMap::new(),
        );
        assert_eq!(
            t.as_deref(),
            Some("http://b:8080/live/cam/src/index.m3u8?_HLS_msn=5")
        );
        assert_eq!(
            target(&d, "other", "/live/other/index.m3u8", &HeaderMap::new()),
            None
        );
        let r = redirect(&t.unwrap_or_default()).expect("response");
        assert_eq!(r.status(), StatusCode::FOUND);
        assert_eq!(r.headers()[REDIRECT_HEADER], "directory");
    }

    #[test]
    fn the_hop_limit_stops_loops() {
        let d = Fixed(vec!["http://b:8080".into()]);
        let p = "/live/cam/index.m3u8";
        assert!(target(&d, "cam", p, &with_hops("1")).is_some());
        assert!(target(&d, "cam", p, &with_hops("2")).is_none());
        assert!(
            target(&d, "cam", p, &with_hops("99999999999999")).is_some(),
            "malformed = 0"
        );
        assert_eq!(hops(&with_hops(" 3 ")), 3);
        assert_eq!(hops(&with_hops("x")), 0);
    }

    #[test]
    fn hostile_holders_and_paths_are_refused() {
        let d = Fixed(vec!["javascript:alert(1)".into(), "http://a b".into()]);
        assert!(target(&d, "cam", "/live/cam/index.m3u8", &HeaderMap::new()).is_none());
        let d = Fixed(vec!["http://b:1".into()]);
        assert!(target(&d, "cam", "//evil/x", &HeaderMap::new()).is_none());
        assert!(target(&d, "cam", "live/cam", &HeaderMap::new()).is_none());
        assert!(redirect("http://b:1/\nx").is_none());
    }
}
