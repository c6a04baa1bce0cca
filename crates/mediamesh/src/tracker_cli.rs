//! `mediamesh tracker`: its settings (flags = TOML keys = `MEDIAMESH_*` variables) and
//! how it starts; also the tracker settings `serve` shares with it.
//!
//! Not here: the tracker itself (crate `p2p`), the Redis relay (crate `fleet`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use p2p::tracker::TrackerConfig;
use serde::{Deserialize, Serialize};

use crate::layers::seconds;

/// The library's tracker defaults.
pub fn defaults() -> TrackerConfig {
    TrackerConfig::default()
}

/// Settings of `tracker`.
#[derive(Args, Debug, Serialize, Deserialize)]
pub struct TrackerArgs {
    /// TOML file with any of these settings (keys named like the flags, `-` as `_`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], 8082)))]
    pub http: SocketAddr,
    /// Partition swarms by region: clients in CIDR only meet peers of REGION (repeatable).
    #[arg(long = "p2p-region", value_name = "CIDR=REGION")]
    pub p2p_region: Vec<String>,
    /// TLS certificate chain (PEM); with --tls-key the tracker is at wss://ADDR/tracker.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Announce interval told to clients, in seconds.
    #[arg(long, default_value_t = defaults().interval.as_secs_f64())]
    pub tracker_interval: f64,
    #[command(flatten)]
    #[serde(flatten)]
    pub conn: crate::listen_cli::ConnArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub admin: crate::listen_cli::AdminArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub fleet: crate::fleet_cli::FleetArgs,
}

/// Tracker settings from the region map and announce interval (shared with `serve`).
pub fn tracker_config(regions: &[String], interval: f64) -> Result<TrackerConfig> {
    Ok(TrackerConfig {
        regions: p2p::tracker::RegionMap::parse(regions.iter().map(String::as_str))?,
        interval: seconds("tracker-interval", interval, 5.0, 3_600.0)?,
        ..defaults()
    })
}

/// Runs `mediamesh tracker`.
pub async fn run(args: TrackerArgs) -> Result<()> {
    service::metrics::handle();
    let tls = crate::layers::tls_pair(args.tls_cert.clone(), args.tls_key.clone())?
        .map(|(c, k)| service::load_tls(&c, &k))
        .transpose()?;
    let tracker = p2p::tracker::ws::TrackerService::new(tracker_config(
        &args.p2p_region,
        args.tracker_interval,
    )?);
    let ticker = tracker.spawn_ticker();
    let mut app = tracker
        .router()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }));
    if args.admin.admin.is_none() {
        app = app.route(
            "/metrics",
            axum::routing::get(|| async { service::metrics::render() }),
        );
    }
    let _admin =
        crate::listen_cli::start_admin(&args.admin, std::sync::Arc::new(service::metrics::render))
            .await?;
    let listener = service::bind(args.http)
        .with_context(|| format!("cannot listen on {} (pick another with --http)", args.http))?;
    let bound = listener.local_addr()?;
    let _fleet = crate::fleet_cli::join_tracker(&args.fleet, bound, &tracker)?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    tracing::info!("tracker at {scheme}://{bound}/tracker");
    crate::ready::listening(
        "tracker",
        bound,
        None,
        crate::listen_cli::admin_addr(&_admin),
    );
    let serve = crate::listen_cli::serve_app(
        listener,
        service::ServeLimits {
            conn: args.conn.limits()?,
            ..service::ServeLimits::default()
        },
        tls,
        app,
    );
    tokio::select! {
        () = serve => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    ticker.abort();
    Ok(())
}
