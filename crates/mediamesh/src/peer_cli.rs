//! Flags and config file of `mediamesh peer`: headless viewers that share a swarm.
//! Settings as flags = TOML keys = `MEDIAMESH_*` variables (see `layers`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use p2p::peer::{MeshFactory, PeerOptions, RenditionChoice};
use serde::{Deserialize, Serialize};

/// The library's defaults, which the flags show and fall back to.
fn defaults() -> PeerOptions {
    PeerOptions::default()
}

/// Settings of `peer`.
#[derive(Args, Debug, Serialize, Deserialize)]
pub struct PeerArgs {
    /// Multivariant (or media) playlist URL, e.g. http://127.0.0.1:8080/live/demo/index.m3u8.
    pub url: Option<String>,
    /// TOML file with any of these settings (keys named like the flags, `-` as `_`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Viewers in this process.
    #[arg(long, default_value_t = defaults().count)]
    pub count: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = defaults().duration.as_secs_f64())]
    pub duration: f64,
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
    /// Rendition: highest, lowest or an index into the multivariant playlist.
    #[arg(long, default_value = "highest")]
    pub rendition: String,
    /// Seconds behind the live edge to play [default: 3 target durations].
    #[arg(long)]
    pub live_offset: Option<f64>,
    /// Segments whose playback is this close (seconds) always come over HTTP.
    #[arg(long, default_value_t = defaults().sched.urgent_ms as f64 / 1000.0)]
    pub urgent: f64,
    /// Uploads at once per viewer.
    #[arg(long, default_value_t = defaults().upload_slots)]
    pub upload_slots: usize,
    /// Upload cap per viewer in bytes/s, 0 = none.
    #[arg(long, default_value_t = defaults().upload_rate)]
    pub upload_rate: u64,
    /// Peers per viewer.
    #[arg(long, default_value_t = defaults().max_peers)]
    pub max_peers: usize,
    /// Churn: viewer k leaves after CHURN × (1 + k mod count) seconds and a new one joins.
    #[arg(long)]
    pub churn: Option<f64>,
    /// The origin's Ed25519 public key (hex) to pin instead of trusting /api/v1/keys.
    #[arg(long)]
    pub origin_key: Option<String>,
    /// Serve Prometheus counters at http://ADDR/metrics while running.
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Testing: the first N viewers corrupt every segment (and part) they upload.
    #[arg(long, hide = true, default_value_t = 0)]
    pub corrupt_uploads: usize,
    /// Latency target: low (LL-HLS part hold-back, parts shared between peers),
    /// balanced (one target duration more, parts shared), max-offload (three target
    /// durations back, whole segments only).
    #[arg(long, default_value = "max-offload", value_parser = ["low", "balanced", "max-offload"])]
    pub latency: String,
    /// STUN/TURN server for NAT traversal, the same syntax as `serve --ice-server`:
    /// stun:HOST[:PORT] or turn:USER:PASS@HOST[:PORT][?transport=udp] (repeatable;
    /// UDP only). Each viewer gathers server-reflexive and relayed candidates before
    /// it joins the swarm.
    #[arg(long = "ice-server", value_name = "URL")]
    pub ice_server: Vec<String>,
}

fn secs(name: &str, v: f64, max: f64) -> Result<Duration> {
    crate::layers::seconds(name, v, 0.0, max)
}

/// The viewers' options, the stats file and the metrics address these settings
/// describe.
pub fn peer_options(args: &PeerArgs) -> Result<(PeerOptions, Option<PathBuf>, Option<SocketAddr>)> {
    let Some(url) = args.url.clone() else {
        bail!("peer needs a playlist URL");
    };
    let mut o = PeerOptions {
        url,
        ..PeerOptions::default()
    };
    if !(1..=10_000).contains(&args.count) {
        bail!("--count must be between 1 and 10000");
    }
    o.count = args.count;
    o.duration = secs("duration", args.duration, 7.0 * 86_400.0)?;
    o.sched.p2p = !args.no_p2p;
    o.tracker = args.tracker.clone();
    if let Some(ca) = &args.tracker_ca {
        o.tracker_tls = Some(p2p::signal::tls::client_config(Some(ca))?);
    }
    o.choice = args
        .rendition
        .parse::<RenditionChoice>()
        .map_err(anyhow::Error::msg)?;
    if let Some(v) = args.live_offset {
        o.live_offset = Some(secs("live-offset", v, 3_600.0)?);
    }
    o.sched.urgent_ms = secs("urgent", args.urgent, 60.0)?.as_millis() as u64;
    o.upload_slots = args.upload_slots;
    o.upload_rate = args.upload_rate;
    o.max_peers = args.max_peers;
    if let Some(v) = args.churn {
        o.churn = Some(secs("churn", v, 86_400.0)?);
    }
    if let Some(hex_key) = &args.origin_key {
        let mut k = [0u8; 32];
        hex_decode(hex_key, &mut k).context("--origin-key wants 64 hex characters")?;
        o.origin_key = Some(
            ed25519_dalek::VerifyingKey::from_bytes(&k)
                .context("--origin-key is not a valid Ed25519 key")?,
        );
    }
    o.corrupt_uploads = args.corrupt_uploads;
    o.ice_servers = p2p::signal::ice::parse_all(args.ice_server.iter().map(String::as_str))?
        .iter()
        .map(p2p::signal::ice::IceServer::native)
        .collect::<Result<_, _>>()?;
    o.latency = args
        .latency
        .parse::<p2p::peer::Latency>()
        .map_err(anyhow::Error::msg)?;
    Ok((o, args.stats.clone(), args.metrics))
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

/// Runs `mediamesh peer` with the WebRTC mesh (and its `--ice-server`s).
pub async fn run(args: PeerArgs) -> Result<()> {
    let (opts, stats_path, metrics_addr) = peer_options(&args)?;
    let mesh = Some(p2p::peer::rtc_mesh::factory_with_ice(
        opts.ice_servers.clone(),
    ));
    run_with(opts, stats_path, metrics_addr, mesh).await
}

async fn run_with(
    opts: PeerOptions,
    stats_path: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
    mesh: Option<Arc<dyn MeshFactory>>,
) -> Result<()> {
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
        latency_p50 = ?t.latency_to_live_p50_seconds,
        latency_p95 = ?t.latency_to_live_p95_seconds,
        p2p_part_bytes = t.p2p_part_bytes,
        rejected_parts = t.rejected_parts,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_args(extra: &[&str]) -> PeerArgs {
        let cmd = crate::cli::command();
        let mut argv = vec!["mediamesh", "peer", "http://127.0.0.1:1/live/a/index.m3u8"];
        argv.extend(extra);
        let m = cmd.clone().try_get_matches_from(argv).expect("parses");
        match crate::cli::layered(&cmd, &m).expect("layers") {
            crate::cli::Command::Peer(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn ice_servers_become_native_stun_and_turn_servers() {
        let args = peer_args(&[
            "--ice-server",
            "stun:198.51.100.1",
            "--ice-server",
            "turn:u:p@198.51.100.1:3479?transport=udp",
        ]);
        let (o, _, _) = peer_options(&args).expect("options");
        assert_eq!(o.ice_servers.len(), 2);
        assert_eq!(o.ice_servers[0].port, 3478);
        assert!(o.ice_servers[0].turn.is_none());
        assert_eq!(o.ice_servers[1].port, 3479);
        assert!(o.ice_servers[1].turn.is_some());
        for refused in ["turns:u:p@t.example.org", "stun:", "turn:t.example.org"] {
            let e = peer_options(&peer_args(&["--ice-server", refused]))
                .err()
                .map(|e| e.to_string());
            assert!(e.is_some(), "{refused} was accepted");
        }
        let e = peer_options(&peer_args(&["--ice-server", "turns:u:p@t.example.org"]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("UDP only") && !e.contains(":p@"), "{e}");
    }
}
