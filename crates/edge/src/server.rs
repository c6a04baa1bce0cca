//! Starts an edge from an `EdgeConfig`: binds the listener (plain or TLS), serves the
//! proxy with the shared accept loop, runs the upstream health checks, and stops all
//! of it when dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::EdgeConfig;
use crate::proxy::{Edge, EdgeError};

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

impl EdgeServer {
    pub async fn start(config: EdgeConfig) -> Result<Self, StartError> {
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
        };
        let edge = Edge::new(config)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let mut tasks = vec![edge.upstreams.spawn_health_checks()];
        let e = edge.clone();
        tasks.push(tokio::spawn(async move {
            service::serve(listener, limits, tls, move |req, peer| {
                e.clone().handle(req, peer)
            })
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
