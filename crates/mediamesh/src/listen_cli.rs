//! Settings every HTTP listener shares (serve, origin, edge, tracker, router): how long
//! a connection may stay silent or idle and how many one client address may hold.
//! Flattened into each role's settings, so they are flags, file keys and `MEDIAMESH_*`
//! variables like the rest.
//!
//! The admin side lives here too: the `--admin` listener (`/metrics`, and on `serve`
//! and `origin` the write API) and the admin token (`--admin-token`,
//! `--admin-token-file`, or one generated into the data folder).
//!
//! Not here: the accept loop that applies them (crate `service`); the write API's
//! routes and token check (`origin::http::admin`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use origin::http::admin::AdminToken;
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
    /// Seconds an idle plain HTTP/1.1 keep-alive connection keeps its full HTTP
    /// state (about 20 KiB) before it is parked in about 2 KiB; 0 parks at once.
    #[arg(long, default_value_t = ConnLimits::default().park_after.as_secs_f64())]
    pub park_after: f64,
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
            park_after: seconds("park-after", self.park_after, 0.0, 3_600.0)?,
            ..ConnLimits::default()
        })
    }
}

/// Where the admin side listens.
#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
pub struct AdminArgs {
    /// Serve /metrics on this address instead of the public port; on serve and origin
    /// the write API (/api/v1/…, needs the admin token) moves here too, and the
    /// router's drain API lives here.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<std::net::SocketAddr>,
}

/// The admin token of the roles with a write API (serve, origin, router).
#[derive(Args, Debug, Clone, Default, Serialize, Deserialize)]
pub struct AdminTokenArgs {
    /// Token the write API wants as `Authorization: Bearer TOKEN` (16 characters or
    /// more) [default on serve and origin: read from, or generated into,
    /// DATA/admin-token; the router has none, its write API is then off].
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// File whose first line is the admin token (instead of --admin-token).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

/// Name of the generated token's file in the data folder.
pub const TOKEN_FILE: &str = "admin-token";

/// The admin token: `--admin-token`, or the first line of `--admin-token-file`, or the
/// one in `data/admin-token` (generated there, readable by the owner only, when
/// missing). The log says which, never the token.
pub fn admin_token(args: &AdminTokenArgs, data: &Path) -> Result<AdminToken> {
    let weak = |e: origin::http::admin::WeakToken, from: &str| anyhow::anyhow!("{from}: {e}");
    match (&args.admin_token, &args.admin_token_file) {
        (Some(_), Some(_)) => bail!("give --admin-token or --admin-token-file, not both"),
        (Some(t), None) => AdminToken::new(t).map_err(|e| weak(e, "--admin-token")),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read --admin-token-file {}", file.display()))?;
            let line = text.lines().next().unwrap_or_default().trim();
            let t = AdminToken::new(line)
                .map_err(|e| weak(e, &format!("--admin-token-file {}", file.display())))?;
            tracing::info!(file = %file.display(), "admin token read from --admin-token-file");
            Ok(t)
        }
        (None, None) => {
            let path = data.join(TOKEN_FILE);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let line = text.lines().next().unwrap_or_default().trim();
                let t = AdminToken::new(line).map_err(|e| {
                    weak(
                        e,
                        &format!("{} (delete it to have a new one made)", path.display()),
                    )
                })?;
                tracing::info!(file = %path.display(), "admin token: the write API wants `Authorization: Bearer` and the token in this file");
                return Ok(t);
            }
            let token = format!(
                "{}{}",
                origin::live::keys::generate_secret(),
                origin::live::keys::generate_secret()
            );
            std::fs::create_dir_all(data)
                .with_context(|| format!("cannot create data folder {}", data.display()))?;
            let mut f = {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| {
                        format!("cannot write the admin token to {}", path.display())
                    })?
            };
            std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())
                .with_context(|| format!("cannot write the admin token to {}", path.display()))?;
            tracing::info!(file = %path.display(), "admin token generated (no --admin-token given): the write API wants `Authorization: Bearer` and the token in this file");
            AdminToken::new(&token).map_err(|e| weak(e, "generated token"))
        }
    }
}

/// What the admin listener shows at `/metrics`.
pub type Render = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Starts the admin listener when `--admin` is set; dropping the handle stops it.
pub async fn start_admin(args: &AdminArgs, render: Render) -> Result<Option<AdminServer>> {
    start_admin_with(args, render, None).await
}

/// [`start_admin`] that also serves `write_api` (routes that check the token
/// themselves).
pub async fn start_admin_with(
    args: &AdminArgs,
    render: Render,
    write_api: Option<axum::Router>,
) -> Result<Option<AdminServer>> {
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
    let what = if write_api.is_some() {
        "/metrics and the write API /api/v1/…"
    } else {
        "/metrics"
    };
    let app = match write_api {
        Some(w) => app.merge(w),
        None => app,
    };
    let task = tokio::spawn(serve_app(
        listener,
        service::ServeLimits::default(),
        None,
        app,
    ));
    tracing::info!(addr = %bound, "admin listening: {what}");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(token: Option<&str>, file: Option<PathBuf>) -> AdminTokenArgs {
        AdminTokenArgs {
            admin_token: token.map(str::to_string),
            admin_token_file: file,
        }
    }

    #[test]
    fn the_admin_token_comes_from_the_flag_the_file_or_the_data_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let flag = "flag-token-0123456789";
        let t = admin_token(&args(Some(flag), None), &data).expect("flag");
        assert_eq!(t.expose(), flag);
        assert!(!data.exists(), "no file made when a token is given");
        let file = dir.path().join("token");
        std::fs::write(&file, "file-token-0123456789\nignored\n").expect("write");
        let t = admin_token(&args(None, Some(file.clone())), &data).expect("file");
        assert_eq!(t.expose(), "file-token-0123456789");
        assert!(admin_token(&args(Some(flag), Some(file)), &data).is_err());
        assert!(admin_token(&args(Some("short"), None), &data).is_err());
        // Neither: generated once into the data folder, owner-only, then reused.
        let made = admin_token(&args(None, None), &data).expect("generated");
        assert_eq!(made.expose().len(), 64);
        let again = admin_token(&args(None, None), &data).expect("reused");
        assert_eq!(made.expose(), again.expose());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join(TOKEN_FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }

    #[test]
    fn the_token_is_a_flag_a_file_key_and_a_hidden_variable() {
        use clap::{Args as _, Command};
        let cmd = crate::layers::with_env(AdminTokenArgs::augment_args(Command::new("x")));
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("admin-token"))
            .expect("flag");
        assert_eq!(
            arg.get_env().map(|e| e.to_string_lossy().into_owned()),
            Some("MEDIAMESH_ADMIN_TOKEN".to_string())
        );
        assert!(
            arg.is_hide_env_values_set(),
            "--help must not print the token"
        );
    }
}
