//! The player page and the front-end libraries it uses (hls.js, p2p-media-loader),
//! compiled into the binary so the page loads nothing from the internet and building
//! needs neither node nor the network. The files live in `web/` at the repository root;
//! `web/update-vendor.sh` refreshes `web/vendor/` from the npm packages pinned in
//! `web/package.json`. Not a general static file server: only the files listed here.
//!
//! Every file is answered with a strong `ETag` (SHA-256 of its bytes) and honours
//! `If-None-Match`, so browsers revalidate cheaply after `max-age`. The vendored
//! libraries change only with a new mediamesh build, so they get a longer `max-age`
//! than the page and its script.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

const JS: &str = "text/javascript; charset=utf-8";
const PAGE_CACHE: &str = "public, max-age=300";
const VENDOR_CACHE: &str = "public, max-age=86400";

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    cache: &'static str,
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str, cache: &'static str) -> Self {
        Asset {
            body,
            content_type,
            cache,
            etag: OnceLock::new(),
        }
    }

    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let sum = Sha256::digest(self.body.as_bytes());
            let tag = format!("\"{}\"", hex::encode(&sum[..12]));
            HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\""))
        })
    }

    fn respond(&self, headers: &HeaderMap) -> Response {
        let etag = self.etag().clone();
        let fresh = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t.as_bytes() == etag.as_bytes());
        let common = [
            (header::CACHE_CONTROL, HeaderValue::from_static(self.cache)),
            (header::ETAG, etag),
        ];
        if fresh {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
        (
            common,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            )],
            self.body,
        )
            .into_response()
    }
}

static INDEX: Asset = Asset::new(
    include_str!("../../../web/index.html"),
    "text/html; charset=utf-8",
    PAGE_CACHE,
);
static PLAYER: Asset = Asset::new(include_str!("../../../web/player.js"), JS, PAGE_CACHE);
static INTEGRITY: Asset = Asset::new(include_str!("../../../web/integrity.js"), JS, PAGE_CACHE);
static BAN: Asset = Asset::new(include_str!("../../../web/ban.js"), JS, PAGE_CACHE);
static HLS: Asset = Asset::new(
    include_str!("../../../web/vendor/hls.min.js"),
    JS,
    VENDOR_CACHE,
);
static P2PML: Asset = Asset::new(
    include_str!("../../../web/vendor/p2p-media-loader.min.js"),
    JS,
    VENDOR_CACHE,
);
static HLS_LICENSE: Asset = Asset::new(
    include_str!("../../../web/vendor/hls.js.LICENSE"),
    "text/plain; charset=utf-8",
    VENDOR_CACHE,
);
static P2PML_LICENSE: Asset = Asset::new(
    include_str!("../../../web/vendor/p2p-media-loader.LICENSE"),
    "text/plain; charset=utf-8",
    VENDOR_CACHE,
);

/// Every embedded file by its URL path. `/static/hls.min.js` is the older path of
/// hls.js, kept for pages and bookmarks that use it.
const FILES: [(&str, &Asset); 10] = [
    ("/", &INDEX),
    ("/static/player.js", &PLAYER),
    ("/static/integrity.js", &INTEGRITY),
    ("/static/ban.js", &BAN),
    ("/static/hls.min.js", &HLS),
    ("/vendor/hls.min.js", &HLS),
    ("/vendor/hls.js.LICENSE", &HLS_LICENSE),
    ("/vendor/p2p-media-loader.min.js", &P2PML),
    ("/vendor/p2p-media-loader.LICENSE", &P2PML_LICENSE),
    ("/index.html", &INDEX),
];

/// Routes for `/`, `/static/*` and `/vendor/*`, for a router of any state (the pages
/// need none, so this module needs nothing of `http`).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    assets()
}

fn assets<S: Clone + Send + Sync + 'static>() -> Router<S> {
    FILES.iter().fold(Router::new(), |router, &(path, asset)| {
        router.route(
            path,
            get(move |headers: HeaderMap| async move { asset.respond(&headers) }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn fetch(path: &str, inm: Option<&str>) -> Response {
        fetch_raw(path, inm.map(str::as_bytes)).await
    }

    async fn fetch_raw(path: &str, inm: Option<&[u8]>) -> Response {
        let mut req = Request::get(path);
        if let Some(v) = inm {
            req = req.header(header::IF_NONE_MATCH, HeaderValue::from_bytes(v).unwrap());
        }
        assets::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn serves_every_file_with_type_cache_and_etag() {
        for (path, asset) in FILES {
            let r = fetch(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(r.headers()[header::CACHE_CONTROL], asset.cache);
            assert!(r.headers()[header::ETAG].to_str().unwrap().starts_with('"'));
            let body = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(body.len(), asset.body.len(), "{path}");
        }
    }

    #[tokio::test]
    async fn vendored_p2p_loader_is_a_self_contained_script() {
        let r = fetch("/vendor/p2p-media-loader.min.js", None).await;
        assert_eq!(r.headers()[header::CACHE_CONTROL], VENDOR_CACHE);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("var p2pml="), "an IIFE setting window.p2pml");
        assert!(!text.contains("import "), "no ES module imports left");
    }

    #[tokio::test]
    async fn if_none_match_gives_304_and_a_stale_tag_the_body() {
        let tag = INDEX.etag().to_str().unwrap().to_string();
        let r = fetch("/", Some(&tag)).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
        let r = fetch("/", Some(&format!("\"other\", W/{tag}"))).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = fetch("/", Some("\"other\"")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = fetch_raw("/", Some(b"\xff\xfe not ascii")).await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_paths_are_not_served() {
        assert_eq!(
            fetch("/vendor/../Cargo.toml", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            fetch("/vendor/other.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}
