//! Starts an edge from an `EdgeConfig`: binds the listener (plain or TLS, and with
//! `http3` the QUIC listener on the same port, advertised by `Alt-Svc` on every TCP
//! answer), serves the proxy with the shared accept loops (TCP connections on threads
//! of their own, see `EdgeLimits::conn_threads`), runs the upstream health checks, and
//! stops all of it when dropped. Both loops call the same request path.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};

use crate::config::EdgeConfig;
use crate::node::{Edge, EdgeError};
use crate::phase::RequestBody;
use crate::response::Body;

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Edge(#[from] EdgeError),
    #[error("cannot listen on {addr}: {source} (pick another address with --http)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] service::TlsError),
    #[error(transparent)]
    Http3(#[from] service::H3Error),
    #[error("HTTP/3 runs over TLS only: give --tls-cert and --tls-key too")]
    Http3WithoutTls,
}

/// A running edge. Dropping it stops its tasks.
#[derive(Debug)]
pub struct EdgeServer {
    pub addr: SocketAddr,
    /// The UDP address of HTTP/3, when on (the same as `addr`).
    pub h3_addr: Option<SocketAddr>,
    pub edge: Arc<Edge>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // What the access log holds reaches its file before the process goes.
        if let Some(log) = &self.edge.access_log {
            log.close(std::time::Duration::from_secs(5));
        }
    }
}

/// Answers a request with a local axum router.
async fn serve_local<B>(
    mut router: axum::Router,
    req: Request<B>,
    peer: std::net::SocketAddr,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let mut req = req.map(axum::body::Body::new);
    // Local routes see the client address as axum's `ConnectInfo` (the tracker
    // partitions swarms by it).
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    match tower::Service::call(&mut router, req).await {
        Ok(res) => res.map(|b| b.map_err(std::io::Error::other).boxed_unsync()),
        Err(never) => match never {},
    }
}

/// Routes a process serves itself on the edge's port instead of proxying them (in
/// `mediamesh serve`: the tracker's WebSocket at `/tracker`).
#[derive(Clone, Debug)]
pub struct LocalRoutes {
    /// Path prefixes handled by `router`.
    pub prefixes: Vec<String>,
    pub router: axum::Router,
}

/// Answers one request, over TCP or HTTP/3: a local route, or the proxy.
async fn answer<B>(
    edge: Arc<Edge>,
    local: Option<&LocalRoutes>,
    req: Request<B>,
    peer: SocketAddr,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Into<RequestBody> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let router = local
        .filter(|l| {
            l.prefixes
                .iter()
                .any(|p| req.uri().path().starts_with(p.as_str()))
        })
        .map(|l| l.router.clone());
    match router {
        Some(router) => serve_local(router, req, peer).await,
        None => edge.handle(req, peer).await,
    }
}

impl EdgeServer {
    pub async fn start(config: EdgeConfig) -> Result<Self, StartError> {
        Self::start_with(config, None).await
    }

    /// Starts an edge that also answers `local` routes itself.
    pub async fn start_with(
        config: EdgeConfig,
        local: Option<LocalRoutes>,
    ) -> Result<Self, StartError> {
        service::metrics::handle();
        let tls = match &config.tls {
            Some((cert, key)) => Some(service::load_tls(cert, key)?),
            None => None,
        };
        let addr = config.http;
        let limits = service::ServeLimits {
            max_connections: config.limits.max_connections,
            max_header_bytes: config.limits.max_header_bytes,
            header_read_timeout: config.limits.header_read_timeout,
            conn: config.limits.conn.clone(),
        };
        let conn_threads = config.limits.conn_threads;
        let edge = Edge::new(config)?;
        let listener = service::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let mut tasks = vec![edge.upstreams.spawn_health_checks()];
        if let Some(f) = &edge.filters {
            tasks.extend(f.spawn_background());
        }
        let local = local.map(Arc::new);
        // HTTP/3 on the same port over UDP, advertised on every TCP answer.
        let mut alt_svc = None;
        let mut h3_addr = None;
        if edge.config.http3 {
            let Some(tls) = &tls else {
                return Err(StartError::Http3WithoutTls);
            };
            let h3 = service::H3Listener::bind(bound, limits.clone(), tls)?;
            let udp = h3
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            alt_svc = HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", udp.port())).ok();
            h3_addr = Some(udp);
            let (e, local) = (edge.clone(), local.clone());
            tasks.push(tokio::spawn(h3.serve(
                move |req: Request<service::H3Body>, peer| {
                    crate::metrics::record_h3_request();
                    let (e, local) = (e.clone(), local.clone());
                    async move { answer(e, local.as_deref(), req, peer).await }
                },
            )));
            tracing::info!(udp = %udp, "edge serves HTTP/3 (QUIC)");
        }
        if let Some(log) = &edge.access_log {
            match log.reopen_on_sighup() {
                Ok(task) => tasks.push(task),
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGHUP handler: the access log reopens only when its file is renamed")
                }
            }
        }
        let quick = crate::quick::EdgeQuick::new(
            edge.clone(),
            local
                .as_ref()
                .map(|l| l.prefixes.clone())
                .unwrap_or_default(),
            alt_svc.clone(),
        )
        .map(|q| Arc::new(q) as Arc<dyn service::Quick>);
        let e = edge.clone();
        tasks.push(tokio::spawn(async move {
            service::serve_threaded(
                listener,
                limits,
                tls,
                conn_threads,
                move |req: Request<Incoming>, peer| {
                    let (e, local, alt_svc) = (e.clone(), local.clone(), alt_svc.clone());
                    let fut = async move {
                        let mut res = answer(e, local.as_deref(), req, peer).await;
                        if let Some(v) = alt_svc {
                            res.headers_mut().insert(header::ALT_SVC, v);
                        }
                        res
                    };
                    // Boxed: the request path's future is about 2.9 KB, and hyper moves
                    // the future it is given into its connection per request (a copy
                    // of that size per hit, into memory of its own per connection).
                    // Boxed, hyper moves a pointer: +8% hits/s at 1000 connections.
                    Box::pin(fut)
                },
                quick,
            )
            .await;
        }));
        tracing::info!(addr = %bound, origins = ?edge.config.upstream.origins, parents = ?edge.config.upstream.parents, "edge listening");
        Ok(Self {
            addr: bound,
            h3_addr,
            edge,
            tasks,
        })
    }
}
