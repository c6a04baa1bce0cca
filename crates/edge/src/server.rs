//! Starts an edge from an `EdgeConfig`: binds the listener (plain or TLS), serves the
//! proxy with the shared accept loop (its connections on threads of their own, see
//! `EdgeLimits::conn_threads`), runs the upstream health checks, and stops all of it
//! when dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::config::EdgeConfig;
use crate::node::{Edge, EdgeError};
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
}

/// A running edge. Dropping it stops its tasks.
#[derive(Debug)]
pub struct EdgeServer {
    pub addr: SocketAddr,
    pub edge: Arc<Edge>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Answers a request with a local axum router.
async fn serve_local(
    mut router: axum::Router,
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
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
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let mut tasks = vec![edge.upstreams.spawn_health_checks()];
        if let Some(f) = &edge.filters {
            tasks.extend(f.spawn_background());
        }
        let e = edge.clone();
        tasks.push(tokio::spawn(async move {
            service::serve_threaded(
                listener,
                limits,
                tls,
                conn_threads,
                move |req: Request<Incoming>, peer| {
                    let e = e.clone();
                    let local = local
                        .as_ref()
                        .filter(|l| {
                            l.prefixes
                                .iter()
                                .any(|p| req.uri().path().starts_with(p.as_str()))
                        })
                        .map(|l| l.router.clone());
                    async move {
                        match local {
                            Some(router) => serve_local(router, req, peer).await,
                            None => e.handle(req, peer).await,
                        }
                    }
                },
            )
            .await;
        }));
        tracing::info!(addr = %bound, origins = ?edge.config.upstream.origins, parents = ?edge.config.upstream.parents, "edge listening");
        Ok(Self {
            addr: bound,
            edge,
            tasks,
        })
    }
}
