//! The origin's HTTP face: axum routes for live and VOD manifests and media, the JSON
//! API, metrics and the web pages, served by hyper over HTTP/1.1 and h2c with explicit
//! bounds (connections, request-head bytes, header read time).
//!
//! Handlers only look things up and format answers; packaging and storage live in
//! `live` and `vod`.

mod api;
mod live;
mod vod;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::Limits;
use crate::integrity::Signer;
use crate::live::Streams;
use crate::vod::Library;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub streams: Arc<Streams>,
    pub vod: Option<Arc<Library>>,
    pub signer: Arc<Signer>,
}

/// All origin routes. `extra` is merged in (the binary adds the web pages there).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/live/{stream}/{file}", get(live::stream_file))
        .route(
            "/live/{stream}/{rendition}/{file}",
            get(live::rendition_file),
        )
        .route("/vod/{name}/{file}", get(vod::vod_file))
        .route("/api/v1/streams", get(api::streams))
        .route("/api/v1/keys", get(api::keys))
        .route("/api/v1/time", get(api::time))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(crate::web::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such path") })
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

async fn count_requests(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("mediamesh_http_requests_total", "status" => status).increment(1);
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
    let permits = Arc::new(Semaphore::new(limits.max_http_connections.max(1)));
    let max_head = limits.max_http_header_bytes.max(8192);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!("mediamesh_http_connections_refused_total").increment(1);
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let mut app = app.clone();
                async move {
                    let req = req.map(Body::new);
                    let res = tower::Service::call(&mut app, req).await;
                    Ok::<_, Infallible>(match res {
                        Ok(r) => r,
                        Err(never) => match never {},
                    })
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(max_head)
                .keep_alive(true);
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX))
                .max_concurrent_streams(256);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
}

/// Binds `addr` and serves; returns the bound address and the server task.
pub async fn bind(
    addr: SocketAddr,
    app: Router,
    limits: Limits,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move { serve(listener, app, &limits).await });
    Ok((local, task))
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
