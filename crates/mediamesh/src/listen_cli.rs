//! Settings every HTTP listener shares (serve, origin, edge, tracker, router): how long
//! a connection may stay silent or idle and how many one client address may hold.
//! Flattened into each role's settings, so they are flags, file keys and `MEDIAMESH_*`
//! variables like the rest.
//!
//! Not here: the accept loop that applies them (crate `service`).

use anyhow::Result;
use clap::Args;
use serde::{Deserialize, Serialize};
use service::ConnLimits;

use crate::layers::seconds;

/// Per-connection bounds of an HTTP listener.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct ConnArgs {
    /// Seconds a new connection may stay silent before it is closed.
    #[arg(long, default_value_t = ConnLimits::default().first_byte_timeout.as_secs_f64())]
    pub first_byte_timeout: f64,
    /// Seconds a keep-alive connection may wait for its next request before it is
    /// closed (HTTP/2: GOAWAY).
    #[arg(long, default_value_t = ConnLimits::default().idle_timeout.as_secs_f64())]
    pub idle_timeout: f64,
    /// Connections one client address may hold at once (IPv6 by /64; WebSockets
    /// count while open).
    #[arg(long, default_value_t = ConnLimits::default().max_connections_per_ip)]
    pub max_connections_per_ip: usize,
}

impl ConnArgs {
    /// The bounds these settings describe.
    pub fn limits(&self) -> Result<ConnLimits> {
        if self.max_connections_per_ip == 0 {
            anyhow::bail!("--max-connections-per-ip must be at least 1");
        }
        Ok(ConnLimits {
            first_byte_timeout: seconds(
                "first-byte-timeout",
                self.first_byte_timeout,
                0.1,
                3_600.0,
            )?,
            idle_timeout: seconds("idle-timeout", self.idle_timeout, 0.1, 86_400.0)?,
            max_connections_per_ip: self.max_connections_per_ip,
            ..ConnLimits::default()
        })
    }
}

/// Where the admin side listens.
#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
pub struct AdminArgs {
    /// Serve /metrics on this address instead of the public port (the operator
    /// console and write API will live here too).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<std::net::SocketAddr>,
}

/// What the admin listener shows at `/metrics`.
pub type Render = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Starts the admin listener when `--admin` is set; dropping the handle stops it.
pub async fn start_admin(args: &AdminArgs, render: Render) -> Result<Option<AdminServer>> {
    let Some(addr) = args.admin else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on --admin {addr}: {e} (pick another address)")
    })?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let render = render.clone();
                async move { render() }
            }),
        );
    let task = tokio::spawn(serve_app(
        listener,
        service::ServeLimits::default(),
        None,
        app,
    ));
    tracing::info!(addr = %bound, "admin listening: /metrics");
    Ok(Some(AdminServer { addr: bound, task }))
}

/// A running admin listener.
pub struct AdminServer {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The admin address of a running admin listener, if any.
pub fn admin_addr(a: &Option<AdminServer>) -> Option<std::net::SocketAddr> {
    a.as_ref().map(|a| a.addr)
}

/// Serves an axum `app` through the shared accept loop (`service::serve`), with the
/// client's address as axum's `ConnectInfo`.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    limits: service::ServeLimits,
    tls: Option<std::sync::Arc<service::TlsConfig>>,
    app: axum::Router,
) {
    service::serve(
        listener,
        limits,
        tls,
        move |req: hyper::Request<hyper::body::Incoming>, peer| {
            let mut app = app.clone();
            async move {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                match tower::Service::call(&mut app, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            }
        },
    )
    .await;
}
