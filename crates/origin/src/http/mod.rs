//! The origin's HTTP face: axum routes for live and VOD manifests and media, the JSON
//! API, metrics and the web pages, served by hyper over HTTP/1.1 and h2c with explicit
//! bounds (connections, request-head bytes, header read time).
//!
//! Handlers only look things up and format answers; packaging and storage live in
//! `live` and `vod`.

pub mod admin;
mod api;
pub mod elsewhere;
mod live;
mod recordings;
mod vod;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use service::ServeLimits;
use tokio::net::TcpListener;

use crate::config::Limits;
use crate::live::Streams;
use crate::vod::Library;
use integrity::Signer;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub streams: Arc<Streams>,
    pub vod: Option<Arc<Library>>,
    pub signer: Arc<Signer>,
    /// Webhooks: viewer sessions (`on_play`, `on_stop`).
    pub hooks: crate::hooks::Hooks,
    /// Recordings: listed, served as VOD, switched by the write API.
    pub recordings: Arc<crate::record::Recordings>,
}

/// All origin routes; `/metrics` only when `public_metrics` (otherwise an admin
/// listener serves it); the write API (behind `admin`'s token) when given.
pub fn router(state: AppState, public_metrics: bool, admin: Option<admin::AdminToken>) -> Router {
    let write_api =
        admin.map(|token| admin::routes(state.clone(), token, admin::Features::default()));
    let routes = Router::new()
        .route("/live/{stream}/{file}", get(live::stream_file))
        .route(
            "/live/{stream}/{rendition}/{file}",
            get(live::rendition_file),
        )
        .route("/vod/{name}/{file}", get(vod::vod_file))
        .route("/vod/recordings/{name}/{file}", get(recordings::file))
        .route("/api/v1/recordings", get(recordings::list))
        .route("/api/v1/streams", get(api::streams))
        .route("/api/v1/keys", get(api::keys))
        .route("/api/v1/time", get(api::time))
        .route("/healthz", get(|| async { "ok\n" }));
    let routes = if public_metrics {
        routes.route("/metrics", get(api::metrics))
    } else {
        routes
    };
    let routes = match write_api {
        Some(w) => routes.with_state(state).merge(w),
        None => routes.with_state(state),
    };
    routes
        .merge(crate::web::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such path") })
        .layer(middleware::from_fn(count_requests))
}

async fn count_requests(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("mediamesh_http_requests_total", "status" => status).increment(1);
    // Bytes of answers that state their length (the console's "from origin" series).
    if let Some(len) = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        metrics::counter!("mediamesh_origin_egress_bytes_total").increment(len);
    }
    res.headers_mut()
        .entry(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .or_insert(HeaderValue::from_static("*"));
    res
}

/// A plain-text error answer that says what was wrong.
pub fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

/// Serves `app` on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, app: Router, limits: &Limits) {
    let limits = ServeLimits {
        max_connections: limits.max_http_connections,
        max_header_bytes: limits.max_http_header_bytes,
        header_read_timeout: Duration::from_secs(10),
        conn: limits.conn.clone(),
    };
    service::serve(
        listener,
        limits,
        None,
        move |req: hyper::Request<Incoming>, peer| {
            let mut app = app.clone();
            async move {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                match tower::Service::call(&mut app, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            }
        },
    )
    .await;
}

/// Media answers with their content type and cache policy.
pub fn media_response(
    body: Body,
    len: Option<usize>,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    res
}
