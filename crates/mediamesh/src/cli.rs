//! Command line and config file. Every flag has a key of the same name (dashes become
//! underscores) in the TOML file given with `--config`; a flag on the command line wins
//! over the file, and the file wins over the built-in default.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use origin::{Origin, OriginConfig};
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(
    name = "mediamesh",
    version,
    about = "Live and on-demand video delivery: origin, CDN edge, P2P and edge compute in one binary."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Everything in one process: origin, web player and dashboard (and, as they land, edge, tracker and router).
    Serve(OriginArgs),
    /// The origin alone: RTMP ingest, packaging, LL-HLS/DASH, VOD.
    Origin(OriginArgs),
    /// One edge cache in front of HTTP origins (ours or any HLS/DASH server).
    Edge(crate::edge_cli::EdgeArgs),
    /// Mint an EdgeAuth token for edges started with --token-key.
    Token(crate::edge_cli::TokenArgs),
    /// The P2P tracker alone (WebTorrent protocol over WebSocket at /tracker).
    Tracker(TrackerArgs),
    /// Headless viewers that play a stream and share segments in a P2P swarm.
    Peer(crate::peer_cli::PeerArgs),
    /// Sends viewers to an edge of their region (302 and HLS/DASH Content Steering).
    Router(crate::fleet_cli::RouterArgs),
    /// Simulate an event at internet scale under CDN, P2P, hybrid and edge-transcode delivery.
    Sim(crate::sim_cli::SimArgs),
}

/// Flags of `tracker`.
#[derive(Args, Debug)]
pub struct TrackerArgs {
    /// Listen address [default: 127.0.0.1:8082].
    #[arg(long, default_value = "127.0.0.1:8082")]
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
    /// Announce interval told to clients, in seconds [default: 120].
    #[arg(long)]
    pub tracker_interval: Option<f64>,
    #[command(flatten)]
    pub fleet: crate::fleet_cli::FleetArgs,
}

/// Flags of `serve` and `origin`.
#[derive(Args, Debug, Default)]
pub struct OriginArgs {
    /// TOML file with any of these settings (keys named like the flags, `-` as `_`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// HTTP listen address [default: 127.0.0.1:8080].
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// RTMP listen address [default: 127.0.0.1:1935].
    #[arg(long)]
    pub rtmp: Option<SocketAddr>,
    /// Data folder (signing key) [default: ./mediamesh-data].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Folder of MP4 files to serve as VOD under /vod/{name}/.
    #[arg(long)]
    pub media: Option<PathBuf>,
    /// Publish the built-in looping live channel `demo`.
    #[arg(long)]
    pub demo: bool,
    /// Segment target duration in seconds [default: 2].
    #[arg(long)]
    pub segment_target: Option<f64>,
    /// LL-HLS part target in seconds, 0.2 or more [default: 0.5].
    #[arg(long)]
    pub part_target: Option<f64>,
    /// DVR window in seconds [default: 60].
    #[arg(long)]
    pub dvr_window: Option<f64>,
    /// Seconds a dropped publisher has to come back [default: 10].
    #[arg(long)]
    pub reconnect_grace: Option<f64>,
    /// Longest merged-read wait of RTMP publishers in seconds: fewer wake-ups per
    /// stream; waits end before a part is due; 0 reads at once [default: 0.1].
    #[arg(long)]
    pub ingest_batch: Option<f64>,
    /// Publish key for a stream, NAME=KEY (repeatable). Publish with `rtmp://…/live/NAME?key=KEY`
    /// or with KEY as the stream key.
    #[arg(long = "publish-key", value_name = "NAME=KEY")]
    pub publish_keys: Vec<String>,
    /// Refuse streams that have no publish key.
    #[arg(long)]
    pub require_keys: bool,
    /// Bytes of media kept per rendition [default: 268435456].
    #[arg(long)]
    pub max_rendition_bytes: Option<usize>,
    /// Concurrent HTTP connections [default: 10000].
    #[arg(long)]
    pub max_http_connections: Option<usize>,
    /// Concurrent RTMP connections [default: 256].
    #[arg(long)]
    pub max_rtmp_connections: Option<usize>,
    /// Largest HTTP request head in bytes [default: 16384].
    #[arg(long)]
    pub max_http_header_bytes: Option<usize>,
    /// Live streams at once [default: 1000].
    #[arg(long)]
    pub max_streams: Option<usize>,
    /// `serve`: partition P2P swarms by region; clients in CIDR only meet peers of
    /// REGION (repeatable).
    #[arg(long = "p2p-region", value_name = "CIDR=REGION")]
    pub p2p_region: Vec<String>,
    /// `serve`: turn P2P off for live stream NAME (the tracker refuses its swarms;
    /// repeatable).
    #[arg(long = "p2p-off", value_name = "NAME")]
    pub p2p_off: Vec<String>,
    /// `serve`: STUN/TURN server for browser viewers, e.g. stun:stun.example.org:3478 or
    /// turn:USER:PASS@turn.example.org:3478 (repeatable; the page reads /api/v1/p2p).
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_server: Vec<String>,
    /// `serve`: announce interval the tracker tells clients, in seconds [default: 120].
    #[arg(long)]
    pub tracker_interval: Option<f64>,
    /// `serve`: TLS certificate chain (PEM); with --tls-key serves HTTPS and wss:// on --http.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// `serve`: private key (PEM) of --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub fleet: crate::fleet_cli::FleetArgs,
}

/// The config file: the same settings as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub http: Option<SocketAddr>,
    pub rtmp: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub media: Option<PathBuf>,
    pub demo: Option<bool>,
    pub segment_target: Option<f64>,
    pub part_target: Option<f64>,
    pub dvr_window: Option<f64>,
    pub reconnect_grace: Option<f64>,
    pub ingest_batch: Option<f64>,
    #[serde(default)]
    pub publish_keys: HashMap<String, String>,
    pub require_keys: Option<bool>,
    pub max_rendition_bytes: Option<usize>,
    pub max_http_connections: Option<usize>,
    pub max_rtmp_connections: Option<usize>,
    pub max_http_header_bytes: Option<usize>,
    pub max_streams: Option<usize>,
    #[serde(default)]
    pub p2p_region: Vec<String>,
    #[serde(default)]
    pub p2p_off: Vec<String>,
    #[serde(default)]
    pub ice_server: Vec<String>,
    pub tracker_interval: Option<f64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    // Fleet keys, read by `fleet_cli::settings`; listed so the file may hold them.
    #[allow(dead_code)]
    pub registry: Option<String>,
    #[allow(dead_code)]
    pub region: Option<String>,
    #[allow(dead_code)]
    pub public_url: Option<String>,
}

/// The P2P settings of `serve` (flags win over the file).
struct ServeP2p {
    tracker: p2p::tracker::TrackerConfig,
    /// Live streams with P2P off.
    p2p_off: Vec<String>,
    /// STUN/TURN servers for browser viewers (`/api/v1/p2p`).
    ice: Vec<p2p::signal::ice::IceServer>,
    tls: Option<(PathBuf, PathBuf)>,
}

/// The announce interval of `--tracker-interval`.
fn tracker_interval(v: Option<f64>) -> Result<Duration> {
    match v {
        Some(v) => seconds("tracker-interval", v, 5.0, 3_600.0),
        None => Ok(p2p::tracker::TrackerConfig::default().interval),
    }
}

/// `--tls-cert` and `--tls-key` together or not at all.
fn tls_pair(cert: Option<PathBuf>, key: Option<PathBuf>) -> Result<Option<(PathBuf, PathBuf)>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => bail!("--tls-cert and --tls-key go together"),
    }
}

fn serve_p2p(args: &OriginArgs) -> Result<ServeP2p> {
    let file: FileConfig = load_file(args.config.as_deref())?;
    let (ice, interval) = (
        if args.ice_server.is_empty() {
            file.ice_server.clone()
        } else {
            args.ice_server.clone()
        },
        args.tracker_interval.or(file.tracker_interval),
    );
    let ice = p2p::signal::ice::parse_all(ice.iter().map(String::as_str))?;
    let tls = tls_pair(
        args.tls_cert.clone().or(file.tls_cert.clone()),
        args.tls_key.clone().or(file.tls_key.clone()),
    )?;
    let (mut tracker, p2p_off) = tracker_config(args, file)?;
    tracker.interval = tracker_interval(interval)?;
    Ok(ServeP2p {
        tracker,
        p2p_off,
        ice,
        tls,
    })
}

/// Tracker settings of `serve` and the streams with P2P off (flags win over the file).
fn tracker_config(
    args: &OriginArgs,
    file: FileConfig,
) -> Result<(p2p::tracker::TrackerConfig, Vec<String>)> {
    let pick = |flag: &Vec<String>, file: Vec<String>| {
        if flag.is_empty() {
            file
        } else {
            flag.clone()
        }
    };
    let regions = pick(&args.p2p_region, file.p2p_region);
    let config = p2p::tracker::TrackerConfig {
        regions: p2p::tracker::RegionMap::parse(regions.iter().map(String::as_str))?,
        ..p2p::tracker::TrackerConfig::default()
    };
    Ok((config, pick(&args.p2p_off, file.p2p_off)))
}

/// Reads a TOML config file (any command's settings type); no file gives the defaults.
pub(crate) fn load_file<T: serde::de::DeserializeOwned + Default>(
    path: Option<&Path>,
) -> Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

fn seconds(name: &str, value: f64, min: f64, max: f64) -> Result<Duration> {
    if !(value.is_finite() && value >= min && value <= max) {
        bail!("{name} must be between {min} and {max} seconds, got {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// Merges flags, file and defaults into an origin configuration.
pub fn origin_config(args: &OriginArgs) -> Result<OriginConfig> {
    let file: FileConfig = load_file(args.config.as_deref())?;
    let data = args
        .data
        .clone()
        .or(file.data)
        .unwrap_or_else(|| PathBuf::from("mediamesh-data"));
    let mut c = OriginConfig::new(data);
    if let Some(a) = args.http.or(file.http) {
        c.http = a;
    }
    if let Some(a) = args.rtmp.or(file.rtmp) {
        c.rtmp = Some(a);
    }
    c.media_dir = args.media.clone().or(file.media);
    c.demo = args.demo || file.demo.unwrap_or(false);
    let p = &mut c.packaging;
    if let Some(v) = args.segment_target.or(file.segment_target) {
        p.segment_target = seconds("segment-target", v, 0.5, 30.0)?;
    }
    if let Some(v) = args.part_target.or(file.part_target) {
        p.part_target = seconds("part-target", v, 0.2, 5.0)?;
    }
    if p.part_target > p.segment_target {
        bail!("part-target must not exceed segment-target");
    }
    if let Some(v) = args.dvr_window.or(file.dvr_window) {
        p.dvr_window = seconds("dvr-window", v, 6.0, 86_400.0)?;
    }
    if let Some(v) = args.reconnect_grace.or(file.reconnect_grace) {
        p.reconnect_grace = seconds("reconnect-grace", v, 0.0, 3_600.0)?;
    }
    if let Some(v) = args.ingest_batch.or(file.ingest_batch) {
        p.ingest_read_batch = seconds("ingest-batch", v, 0.0, 0.2)?;
    }
    c.publish_keys = file.publish_keys;
    for kv in &args.publish_keys {
        let Some((name, key)) = kv.split_once('=') else {
            bail!("--publish-key wants NAME=KEY, got {kv:?}");
        };
        c.publish_keys.insert(name.to_string(), key.to_string());
    }
    c.require_keys = args.require_keys || file.require_keys.unwrap_or(false);
    let l = &mut c.limits;
    if let Some(v) = args.max_rendition_bytes.or(file.max_rendition_bytes) {
        l.max_rendition_bytes = v;
    }
    if let Some(v) = args.max_http_connections.or(file.max_http_connections) {
        l.max_http_connections = v;
    }
    if let Some(v) = args.max_rtmp_connections.or(file.max_rtmp_connections) {
        l.max_rtmp_connections = v;
    }
    if let Some(v) = args.max_http_header_bytes.or(file.max_http_header_bytes) {
        l.max_http_header_bytes = v;
    }
    if let Some(v) = args.max_streams.or(file.max_streams) {
        l.max_streams = v;
    }
    Ok(c)
}

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            // The origin listens on a private loopback port; the edge faces viewers
            // on --http and caches, coalesces and holds LL-HLS requests in front of it.
            let mut config = origin_config(&args)?;
            // P2P settings are checked before anything starts listening.
            let ServeP2p {
                tracker: tracker_config,
                p2p_off,
                ice,
                tls,
            } = serve_p2p(&args)?;
            let public = config.http;
            config.http = SocketAddr::from(([127, 0, 0, 1], 0));
            let origin = Origin::start(config).await?;
            let mut edge_config =
                edge::config::EdgeConfig::new(vec![format!("http://{}", origin.http_addr)]);
            edge_config.http = public;
            edge_config.cache_mem_bytes = 256 * 1024 * 1024;
            edge_config.tls = tls;
            // The tracker answers on the viewers' port too (WebSocket at /tracker).
            let tracker = p2p::tracker::ws::TrackerService::new(tracker_config);
            let ticker = tracker.spawn_ticker();
            let refuser = (!p2p_off.is_empty()).then(|| {
                tokio::spawn(p2p::peer::refuse_streams(
                    tracker.clone(),
                    format!("http://{}", origin.http_addr),
                    p2p_off,
                ))
            });
            // The player page reads its ICE servers (STUN/TURN) here.
            let page_p2p = p2p::signal::ice::page_config(&ice).to_string();
            let local = edge::server::LocalRoutes {
                prefixes: vec!["/tracker".to_string(), "/api/v1/p2p".to_string()],
                router: tracker.router().route(
                    "/api/v1/p2p",
                    axum::routing::get(move || {
                        let body = page_p2p.clone();
                        async move {
                            (
                                [
                                    (axum::http::header::CONTENT_TYPE, "application/json"),
                                    (axum::http::header::CACHE_CONTROL, "no-cache"),
                                ],
                                body,
                            )
                        }
                    }),
                ),
            };
            let edge = edge::server::EdgeServer::start_with(edge_config, Some(local)).await?;
            let _fleet = crate::fleet_cli::join_serve(&args, &origin, &edge)?;
            tracing::info!(
                "open http://{}/ to watch; streams at http://{}/live/NAME/index.m3u8",
                edge.addr,
                edge.addr
            );
            tokio::signal::ctrl_c().await?;
            tracing::info!("shutting down");
            ticker.abort();
            if let Some(r) = refuser {
                r.abort();
            }
            drop(edge);
            drop(origin);
            Ok(())
        }
        Command::Tracker(args) => {
            service::metrics::handle();
            let tls = tls_pair(args.tls_cert.clone(), args.tls_key.clone())?
                .map(|(c, k)| service::load_tls(&c, &k))
                .transpose()?;
            let tracker = p2p::tracker::ws::TrackerService::new(p2p::tracker::TrackerConfig {
                regions: p2p::tracker::RegionMap::parse(
                    args.p2p_region.iter().map(String::as_str),
                )?,
                interval: tracker_interval(args.tracker_interval)?,
                ..p2p::tracker::TrackerConfig::default()
            });
            let ticker = tracker.spawn_ticker();
            let _fleet = crate::fleet_cli::join_tracker(&args.fleet, args.http, &tracker)?;
            let app = tracker
                .router()
                .route("/healthz", axum::routing::get(|| async { "ok\n" }))
                .route(
                    "/metrics",
                    axum::routing::get(|| async { service::metrics::render() }),
                );
            let listener = tokio::net::TcpListener::bind(args.http)
                .await
                .with_context(|| {
                    format!("cannot listen on {} (pick another with --http)", args.http)
                })?;
            let scheme = if tls.is_some() { "wss" } else { "ws" };
            tracing::info!(addr = %args.http, "tracker at {scheme}://{}/tracker", args.http);
            let serve = service::serve(
                listener,
                service::ServeLimits::default(),
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
            );
            tokio::select! {
                () = serve => {}
                r = tokio::signal::ctrl_c() => r?,
            }
            ticker.abort();
            Ok(())
        }
        Command::Origin(args) => {
            let config = origin_config(&args)?;
            let origin = Origin::start(config).await?;
            let _fleet = crate::fleet_cli::join_origin(&args, &origin)?;
            tracing::info!(
                "streams at http://{}/live/NAME/index.m3u8",
                origin.http_addr
            );
            tokio::signal::ctrl_c().await?;
            tracing::info!("shutting down");
            drop(origin);
            Ok(())
        }
        Command::Edge(args) => {
            let config = crate::edge_cli::edge_config(&args)?;
            let edge = edge::server::EdgeServer::start(config).await?;
            let _fleet = crate::fleet_cli::join_edge(&args, &edge)?;
            tracing::info!("edge serving on http://{}", edge.addr);
            tokio::signal::ctrl_c().await?;
            tracing::info!("shutting down");
            drop(edge);
            Ok(())
        }
        Command::Peer(args) => {
            crate::peer_cli::run(args, Some(p2p::peer::rtc_mesh::factory())).await
        }
        Command::Router(args) => crate::fleet_cli::run_router(args).await,
        Command::Sim(args) => {
            tokio::task::spawn_blocking(move || crate::sim_cli::run(args)).await?
        }
        Command::Token(args) => {
            println!("{}", crate::edge_cli::mint(&args)?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "http = \"127.0.0.1:9000\"\npart_target = 0.25\ndemo = true\n[publish_keys]\ncam = \"s\"\n",
        )
        .expect("write");
        let args = OriginArgs {
            config: Some(path),
            http: Some("127.0.0.1:9100".parse().expect("addr")),
            ..OriginArgs::default()
        };
        let c = origin_config(&args).expect("config");
        assert_eq!(c.http.port(), 9100);
        assert_eq!(c.packaging.part_target, Duration::from_millis(250));
        assert!(c.demo);
        assert_eq!(c.publish_keys.get("cam").map(String::as_str), Some("s"));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let args = OriginArgs {
            part_target: Some(0.1),
            ..OriginArgs::default()
        };
        let e = origin_config(&args).expect_err("too small");
        assert!(e.to_string().contains("part-target"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "no_such_key = 1\n").expect("write");
        let args = OriginArgs {
            config: Some(path),
            ..OriginArgs::default()
        };
        assert!(origin_config(&args).is_err());
    }
}
