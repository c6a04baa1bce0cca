//! Flags and config file of `mediamesh peer`: headless viewers that share a swarm.
//! Every flag has a TOML key of the same name (`-` as `_`); flags win over the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use p2p::peer::{MeshFactory, PeerOptions, RenditionChoice};
use serde::Deserialize;

/// Flags of `peer`.
#[derive(Args, Debug, Default)]
pub struct PeerArgs {
    /// Multivariant (or media) playlist URL, e.g. http://127.0.0.1:8080/live/demo/index.m3u8.
    pub url: Option<String>,
    /// TOML file with any of these settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Viewers in this process [default: 1].
    #[arg(long)]
    pub count: Option<usize>,
    /// Seconds to run [default: 60].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Fetch everything over HTTP, like a plain player.
    #[arg(long)]
    pub no_p2p: bool,
    /// Tracker WebSocket URL [default: ws://{host of URL}/tracker].
    #[arg(long)]
    pub tracker: Option<String>,
    /// PEM file of CA certificates to trust for a wss:// tracker, besides the system's.
    #[arg(long, value_name = "FILE")]
    pub tracker_ca: Option<PathBuf>,
    /// Write JSON stats here at the end.
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Rendition: highest, lowest or an index into the multivariant playlist [default: highest].
    #[arg(long)]
    pub rendition: Option<String>,
    /// Seconds behind the live edge to play [default: 3 target durations].
    #[arg(long)]
    pub live_offset: Option<f64>,
    /// Segments whose playback is this close (seconds) always come over HTTP [default: 1.5].
    #[arg(long)]
    pub urgent: Option<f64>,
    /// Uploads at once per viewer [default: 4].
    #[arg(long)]
    pub upload_slots: Option<usize>,
    /// Upload cap per viewer in bytes/s, 0 = none [default: 0].
    #[arg(long)]
    pub upload_rate: Option<u64>,
    /// Peers per viewer [default: 20].
    #[arg(long)]
    pub max_peers: Option<usize>,
    /// Churn: viewer k leaves after CHURN × (1 + k mod count) seconds and a new one joins.
    #[arg(long)]
    pub churn: Option<f64>,
    /// The origin's Ed25519 public key (hex) to pin instead of trusting /api/v1/keys.
    #[arg(long)]
    pub origin_key: Option<String>,
    /// Serve Prometheus counters at http://ADDR/metrics while running.
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Testing: the first N viewers corrupt every segment they upload.
    #[arg(long, hide = true, default_value_t = 0)]
    pub corrupt_uploads: usize,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    url: Option<String>,
    count: Option<usize>,
    duration: Option<f64>,
    no_p2p: Option<bool>,
    tracker: Option<String>,
    tracker_ca: Option<PathBuf>,
    stats: Option<PathBuf>,
    rendition: Option<String>,
    live_offset: Option<f64>,
    urgent: Option<f64>,
    upload_slots: Option<usize>,
    upload_rate: Option<u64>,
    max_peers: Option<usize>,
    churn: Option<f64>,
    origin_key: Option<String>,
    metrics: Option<std::net::SocketAddr>,
}

fn secs(name: &str, v: f64, max: f64) -> Result<Duration> {
    if !(v.is_finite() && v >= 0.0 && v <= max) {
        bail!("--{name} must be between 0 and {max} seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

/// Merges flags, file and defaults: the viewers' options, the stats file and the
/// metrics address.
pub fn peer_options(args: &PeerArgs) -> Result<(PeerOptions, Option<PathBuf>, Option<SocketAddr>)> {
    let f: FileConfig = crate::cli::load_file(args.config.as_deref())?;
    let Some(url) = args.url.clone().or(f.url) else {
        bail!("peer needs a playlist URL");
    };
    let mut o = PeerOptions {
        url,
        ..PeerOptions::default()
    };
    if let Some(n) = args.count.or(f.count) {
        if !(1..=10_000).contains(&n) {
            bail!("--count must be between 1 and 10000");
        }
        o.count = n;
    }
    if let Some(d) = args.duration.or(f.duration) {
        o.duration = secs("duration", d, 7.0 * 86_400.0)?;
    }
    o.sched.p2p = !(args.no_p2p || f.no_p2p.unwrap_or(false));
    o.tracker = args.tracker.clone().or(f.tracker);
    if let Some(ca) = args.tracker_ca.clone().or(f.tracker_ca) {
        o.tracker_tls = Some(p2p::signal::tls::client_config(Some(&ca))?);
    }
    if let Some(r) = args.rendition.clone().or(f.rendition) {
        o.choice = r.parse::<RenditionChoice>().map_err(anyhow::Error::msg)?;
    }
    if let Some(v) = args.live_offset.or(f.live_offset) {
        o.live_offset = Some(secs("live-offset", v, 3_600.0)?);
    }
    if let Some(v) = args.urgent.or(f.urgent) {
        o.sched.urgent_ms = secs("urgent", v, 60.0)?.as_millis() as u64;
    }
    if let Some(v) = args.upload_slots.or(f.upload_slots) {
        o.upload_slots = v;
    }
    if let Some(v) = args.upload_rate.or(f.upload_rate) {
        o.upload_rate = v;
    }
    if let Some(v) = args.max_peers.or(f.max_peers) {
        o.max_peers = v;
    }
    if let Some(v) = args.churn.or(f.churn) {
        o.churn = Some(secs("churn", v, 86_400.0)?);
    }
    if let Some(hex_key) = args.origin_key.clone().or(f.origin_key) {
        let mut k = [0u8; 32];
        hex_decode(&hex_key, &mut k).context("--origin-key wants 64 hex characters")?;
        o.origin_key = Some(
            ed25519_dalek::VerifyingKey::from_bytes(&k)
                .context("--origin-key is not a valid Ed25519 key")?,
        );
    }
    o.corrupt_uploads = args.corrupt_uploads;
    Ok((
        o,
        args.stats.clone().or(f.stats),
        args.metrics.or(f.metrics),
    ))
}

fn hex_decode(s: &str, out: &mut [u8; 32]) -> Result<()> {
    if s.len() != 64 {
        bail!("wrong length");
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)?;
    }
    Ok(())
}

/// Runs `mediamesh peer`.
pub async fn run(args: PeerArgs, mesh: Option<Arc<dyn MeshFactory>>) -> Result<()> {
    let (opts, stats_path, metrics_addr) = peer_options(&args)?;
    let _metrics = match metrics_addr {
        Some(addr) => Some(serve_metrics(addr).await?),
        None => None,
    };
    let count = opts.count;
    let p2p = opts.sched.p2p;
    tracing::info!(url = %opts.url, count, p2p, "starting viewers");
    let report = p2p::peer::run(opts, if p2p { mesh } else { None }).await?;
    let t = &report.total;
    tracing::info!(
        viewers = t.viewers,
        http_bytes = t.http_bytes,
        p2p_bytes = t.p2p_bytes,
        offload = format!("{:.3}", t.offload),
        stalls = t.stalls,
        stall_seconds = format!("{:.2}", t.stall_seconds),
        startup_p50 = ?t.startup_seconds_p50,
        rejected = t.rejected_segments,
        errors = t.errors,
        "done"
    );
    let json = serde_json::to_string_pretty(&report)?;
    match stats_path {
        Some(p) => std::fs::write(&p, json + "\n")
            .with_context(|| format!("cannot write stats to {}", p.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}

/// Serves `/metrics` (Prometheus text) until the returned task is dropped.
async fn serve_metrics(addr: std::net::SocketAddr) -> Result<AbortOnDrop> {
    service::metrics::handle();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { service::metrics::render() }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "metrics at /metrics");
    Ok(AbortOnDrop(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
