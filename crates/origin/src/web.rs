//! The player and dashboard pages, and hls.js, compiled into the binary so the page
//! loads nothing from the internet. The files live in `web/` at the repository root;
//! `web/update-vendor.sh` refreshes hls.js from its npm package.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::http::AppState;

const INDEX: &str = include_str!("../../../web/index.html");
const PLAYER: &str = include_str!("../../../web/player.js");
const HLS: &str = include_str!("../../../web/vendor/hls.min.js");

/// Routes for `/` and `/static/*`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/static/player.js",
            get(|| async { page(PLAYER, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/hls.min.js",
            get(|| async { page(HLS, "text/javascript; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}
