//! `mediamesh edge` and `mediamesh token`: their settings (flags = TOML keys =
//! `MEDIAMESH_*` variables, see `layers`) and how they turn into the edge's config.
//!
//! Not here: what the edge does with them (crate `edge`), fleet membership.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use edge::config::EdgeConfig;
use serde::{Deserialize, Serialize};

use crate::layers::seconds;

/// The library's defaults, which the flags show and fall back to.
fn defaults() -> EdgeConfig {
    EdgeConfig::new(Vec::new())
}

/// Settings of `edge`.
#[derive(Args, Debug, Serialize, Deserialize)]
pub struct EdgeArgs {
    /// TOML file with any of these settings (keys named like the flags, `-` as `_`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address.
    #[arg(long, default_value_t = defaults().http)]
    pub http: SocketAddr,
    /// Origin base URL; repeat for failover order (first is primary).
    #[arg(long = "origin", value_name = "URL")]
    pub origins: Vec<String>,
    /// Parent (shield) edge base URL; repeat. Objects are spread over parents by rendezvous hashing.
    #[arg(long = "parent", value_name = "URL")]
    pub parents: Vec<String>,
    /// Memory tier size in bytes.
    #[arg(long, default_value_t = defaults().cache_mem_bytes)]
    pub cache_mem: usize,
    /// Disk tier folder (survives restarts).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Disk tier size in bytes.
    #[arg(long, default_value_t = defaults().cache_disk_bytes)]
    pub cache_disk: u64,
    /// Require EdgeAuth tokens signed with this hex key.
    #[arg(long)]
    pub token_key: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key serves HTTPS (HTTP/2 and HTTP/1.1).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Also serve HTTP/3 (QUIC) on UDP at the --http address and port (needs
    /// --tls-cert/--tls-key); TCP answers then advertise it with Alt-Svc.
    #[arg(long)]
    pub http3: bool,
    /// Serve every plain HTTP/1.1 request through the whole request path, also
    /// fresh cache hits the quick path would answer (for comparison and debugging).
    #[arg(long)]
    pub no_quick_hits: bool,
    /// Query parameter left out of cache keys (repeat).
    #[arg(long = "drop-param", value_name = "NAME", default_values_t = defaults().dropped_params)]
    pub drop_params: Vec<String>,
    /// Query parameter kept on media objects and playlists (repeat): those keep only
    /// the LL-HLS `_HLS_*` parameters and these; every other parameter is left out of
    /// the cache key and of the request to the origin.
    #[arg(long = "keep-param", value_name = "NAME", value_delimiter = ',')]
    pub keep_params: Vec<String>,
    /// CMCD sessions tracked at once (oldest forgotten first).
    #[arg(long, default_value_t = defaults().cmcd_max_sessions)]
    pub cmcd_max_sessions: usize,
    /// Client addresses (IPv6 by /64) the --rate-limit tracks before idle ones are swept.
    #[arg(long, default_value_t = defaults().limits.per_ip_max_tracked)]
    pub rate_limit_tracked: usize,
    /// Connections at once to one origin or parent (host:port).
    #[arg(long, default_value_t = defaults().upstream.max_connections_per_upstream)]
    pub max_upstream_connections: usize,
    /// Base URL an upstream's redirect may also lead to (repeat), besides the
    /// configured origins and parents.
    #[arg(long = "redirect-allow", value_name = "URL")]
    pub redirect_allow: Vec<String>,
    /// Largest object cached, bytes.
    #[arg(long, default_value_t = defaults().max_object_bytes)]
    pub max_object_bytes: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = defaults().limits.max_connections)]
    pub max_connections: usize,
    /// Largest request head in bytes.
    #[arg(long, default_value_t = defaults().limits.max_header_bytes)]
    pub max_header_bytes: usize,
    /// Seconds a client has to send its request head.
    #[arg(long, default_value_t = defaults().limits.header_read_timeout.as_secs_f64())]
    pub header_timeout: f64,
    /// Requests per second per client address (default: unlimited).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Name used in Via, CMSD and logs.
    #[arg(long, default_value_t = defaults().server_id)]
    pub server_id: String,
    /// Proxy-Wasm filter (ABI 0.2.1, .wasm or .wat) run on every request; repeat for a
    /// chain. The config file's [[filter]] tables add path scoping and plugin configuration.
    #[arg(long = "filter", value_name = "FILE.wasm")]
    pub filters: Vec<FilterEntry>,
    /// Linear memory cap per filter instance, bytes [default: 67108864].
    #[arg(long)]
    pub filter_memory: Option<usize>,
    /// CPU time one filter callback may take, milliseconds [default: 50].
    #[arg(long)]
    pub filter_deadline_ms: Option<u64>,
    /// Filter instances alive at once per filter [default: 64].
    #[arg(long)]
    pub filter_instances: Option<usize>,
    /// When a filter fails, pass the request on instead of answering 500.
    #[arg(long)]
    pub filter_fail_open: bool,
    /// Hex key of A/B watermark tokens: media segments then need a token (`wm`
    /// parameter or `x-watermark-token` header) and come from the origin's A/ or B/ copy.
    #[arg(long)]
    pub watermark_key: Option<String>,
    /// HLS media playlist of the ad that fills SCTE-35 breaks (server-side ad insertion).
    #[arg(long)]
    pub ad_playlist: Option<PathBuf>,
    /// Base URL for relative URIs in --ad-playlist.
    #[arg(long)]
    pub ad_base_url: Option<String>,
    /// Device class: User-Agent substring=max picture height (repeat), e.g. Watch=480.
    #[arg(long = "device-rule", value_name = "UA=HEIGHT")]
    pub device_rules: Vec<String>,
    /// Do not leave out renditions above the CMCD top bit rate (tb) a player declares.
    #[arg(long)]
    pub no_cmcd_renditions: bool,
    /// Edge ABR ladder rung NAME=WIDTHxHEIGHT@KBPS (repeat), e.g. 480p=854x480@1200:
    /// advertised in live multivariant playlists and transcoded here from the `src`
    /// rendition the first time a segment is asked for (never taller than the source).
    /// In the file also `[[ladder]]` tables of name, width, height, kbps.
    #[arg(long = "ladder", value_name = "NAME=WxH@KBPS")]
    pub ladder: Vec<LadderEntry>,
    /// Ladder transcodes running at once [default: number of cores].
    #[arg(long)]
    pub ladder_jobs: Option<usize>,
    /// The ffmpeg program the ladder runs [default: ffmpeg].
    #[arg(long)]
    pub ladder_ffmpeg: Option<PathBuf>,
    /// Seconds one ladder transcode may take before ffmpeg is killed [default: 30].
    #[arg(long)]
    pub ladder_timeout: Option<f64>,
    /// Ladder transcodes that may wait for a free job; past that the edge answers 503.
    #[arg(long, default_value_t = 16)]
    pub ladder_queue: usize,
    #[command(flatten)]
    #[serde(flatten)]
    pub conn: crate::listen_cli::ConnArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub admin: crate::listen_cli::AdminArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub fleet: crate::fleet_cli::FleetArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub access_log: crate::access_log_cli::AccessLogArgs,
}

/// A filter: a file name (`--filter`, or `filter = [...]` in the file) or a
/// `[[filter]]` table of the file.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum FilterEntry {
    File(PathBuf),
    Table(Box<FilterTable>),
}

impl std::str::FromStr for FilterEntry {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::File(PathBuf::from(s)))
    }
}

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct FilterTable {
    file: PathBuf,
    name: Option<String>,
    /// Only paths starting with this run the filter.
    path_prefix: Option<String>,
    /// Plugin configuration handed to the filter as-is (often JSON).
    configuration: Option<String>,
    vm_configuration: Option<String>,
    vm_id: Option<String>,
    fail_open: Option<bool>,
    /// Give the filter whole response bodies (buffers them).
    body: Option<bool>,
    memory: Option<usize>,
    deadline_ms: Option<u64>,
    instances: Option<usize>,
    /// Seconds between checks of the file for hot reload; 0 = never.
    reload_poll: Option<f64>,
    /// Upstream names the filter may `proxy_http_call`, with base URLs.
    #[serde(default)]
    upstreams: std::collections::HashMap<String, String>,
}

/// A ladder rung: `NAME=WxH@KBPS` (flag or file string) or a `[[ladder]]` table.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum LadderEntry {
    Text(String),
    Table {
        name: String,
        width: u32,
        height: u32,
        kbps: u32,
    },
}

impl std::str::FromStr for LadderEntry {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::Text(s.to_string()))
    }
}

/// The edge configuration these settings describe, validated.
pub fn edge_config(args: &EdgeArgs) -> Result<EdgeConfig> {
    if args.origins.is_empty() {
        bail!("an edge needs at least one --origin URL (e.g. --origin http://127.0.0.1:8080)");
    }
    let mut c = EdgeConfig::new(args.origins.clone());
    c.upstream.parents = args.parents.clone();
    c.http = args.http;
    c.cache_mem_bytes = args.cache_mem;
    c.cache_dir = args.cache_dir.clone();
    c.cache_disk_bytes = args.cache_disk;
    if let Some(k) = &args.token_key {
        c.token_key = Some(
            edge::token::parse_key(k)
                .map_err(|e| anyhow::anyhow!("--token-key must be a hex key: {e}"))?,
        );
    }
    c.tls = crate::layers::tls_pair(args.tls_cert.clone(), args.tls_key.clone())?;
    c.http3 = args.http3;
    c.quick_hits = !args.no_quick_hits;
    c.dropped_params = args.drop_params.clone();
    c.kept_params = args.keep_params.clone();
    c.cmcd_max_sessions = args.cmcd_max_sessions;
    c.limits.per_ip_max_tracked = args.rate_limit_tracked;
    c.upstream.max_connections_per_upstream = args.max_upstream_connections;
    c.upstream.redirect_allow = args.redirect_allow.clone();
    c.max_object_bytes = args.max_object_bytes;
    c.limits.max_connections = args.max_connections;
    c.limits.max_header_bytes = args.max_header_bytes;
    c.limits.header_read_timeout = seconds("header-timeout", args.header_timeout, 0.001, 600.0)?;
    c.limits.per_ip_rps = args.rate_limit;
    c.limits.conn = args.conn.limits()?;
    c.public_metrics = args.admin.admin.is_none();
    c.server_id = args.server_id.clone();
    if let Some(k) = &args.watermark_key {
        c.media.watermark_key = Some(
            edge::token::parse_key(k)
                .map_err(|e| anyhow::anyhow!("--watermark-key must be a hex key: {e}"))?,
        );
        let p = c.media.watermark_param.clone();
        if !c.dropped_params.contains(&p) {
            c.dropped_params.push(p);
        }
    }
    if let Some(p) = &args.ad_playlist {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("cannot read --ad-playlist {}", p.display()))?;
        let base = args.ad_base_url.clone().unwrap_or_default();
        let pod = edge::media::ssai::AdPod::from_playlist(&text, &base);
        if pod.segments.is_empty() {
            bail!("--ad-playlist {} lists no segments", p.display());
        }
        c.media.ad_pod = Some(pod);
    }
    for r in &args.device_rules {
        let Some((ua, h)) = r.split_once('=') else {
            bail!("--device-rule wants UA=HEIGHT, got {r}");
        };
        let max_height = h
            .trim()
            .parse()
            .with_context(|| format!("--device-rule {r}: height must be a number"))?;
        c.media
            .device_rules
            .push(edge::media::renditions::DeviceRule {
                user_agent_contains: ua.trim().to_string(),
                max_height,
            });
    }
    c.media.cmcd_renditions = !args.no_cmcd_renditions;
    let rungs: Vec<String> = args
        .ladder
        .iter()
        .map(|e| match e {
            LadderEntry::Text(t) => t.clone(),
            LadderEntry::Table {
                name,
                width,
                height,
                kbps,
            } => format!("{name}={width}x{height}@{kbps}"),
        })
        .collect();
    if !rungs.is_empty() {
        let rungs = rungs
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<_>, _>>()?;
        let ladder = edge::media::ladder::Ladder::new(rungs, "src")?;
        let mut lc = edge::ladder::LadderConfig::new(ladder);
        if let Some(j) = args.ladder_jobs {
            if j == 0 {
                bail!("--ladder-jobs must be at least 1");
            }
            lc.jobs = j;
        }
        if let Some(f) = &args.ladder_ffmpeg {
            lc.ffmpeg = f.clone();
        }
        lc.max_queue = args.ladder_queue;
        if let Some(t) = args.ladder_timeout {
            lc.timeout = seconds("ladder-timeout", t, 0.001, 3600.0)?;
        }
        c.ladder = Some(lc);
    }
    c.filters = filter_specs(args)?;
    c.access_log = args.access_log.config()?;
    c.validate()?;
    Ok(c)
}

/// The filter chain: `--filter` files and `[[filter]]` tables, the `--filter-*`
/// settings as defaults that a table may override.
fn filter_specs(args: &EdgeArgs) -> Result<Vec<compute::FilterSpec>> {
    let base = |file: PathBuf| -> Result<compute::FilterSpec> {
        let mut s = compute::FilterSpec::new(file);
        s.fail_open = args.filter_fail_open;
        if let Some(m) = args.filter_memory {
            s.limits.memory_bytes = m;
        }
        if let Some(ms) = args.filter_deadline_ms {
            if ms == 0 || ms > 60_000 {
                bail!("--filter-deadline-ms must be between 1 and 60000");
            }
            s.limits.callback_deadline = Duration::from_millis(ms);
        }
        if let Some(n) = args.filter_instances {
            s.limits.max_instances = n.max(1);
        }
        Ok(s)
    };
    let mut out: Vec<compute::FilterSpec> = Vec::new();
    for e in args.filters.iter().cloned() {
        let spec = match e {
            FilterEntry::File(f) => base(f)?,
            FilterEntry::Table(t) => {
                let t = *t;
                let mut s = base(t.file)?;
                if let Some(n) = t.name {
                    s.name = n;
                }
                s.path_prefix = t.path_prefix;
                s.configuration = t.configuration.unwrap_or_default().into_bytes();
                s.vm_configuration = t.vm_configuration.unwrap_or_default().into_bytes();
                s.vm_id = t.vm_id;
                if let Some(v) = t.fail_open {
                    s.fail_open = v;
                }
                s.body = t.body.unwrap_or(false);
                if let Some(m) = t.memory {
                    s.limits.memory_bytes = m;
                }
                if let Some(ms) = t.deadline_ms {
                    if ms == 0 || ms > 60_000 {
                        bail!("filter {}: deadline_ms must be between 1 and 60000", s.name);
                    }
                    s.limits.callback_deadline = Duration::from_millis(ms);
                }
                if let Some(n) = t.instances {
                    s.limits.max_instances = n.max(1);
                }
                match t.reload_poll {
                    Some(0.0) => s.reload_poll = None,
                    Some(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => {
                        s.reload_poll = Some(Duration::from_secs_f64(v))
                    }
                    Some(_) => bail!("filter {}: reload_poll must be 0..3600 seconds", s.name),
                    None => {}
                }
                for (name, url) in &t.upstreams {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        bail!(
                            "filter {}: upstream {name} must be an http:// URL, got {url}",
                            s.name
                        );
                    }
                }
                s.upstreams = t.upstreams;
                s
            }
        };
        if out.iter().any(|o| o.name == spec.name) {
            bail!(
                "two filters are named {}; give one a `name` in its [[filter]] table",
                spec.name
            );
        }
        out.push(spec);
    }
    Ok(out)
}

/// Runs `mediamesh edge`.
pub async fn run(args: EdgeArgs) -> Result<()> {
    let config = edge_config(&args)?;
    let edge = edge::server::EdgeServer::start(config).await?;
    let _fleet = crate::fleet_cli::join_edge(&args.fleet, &edge)?;
    let shown = edge.edge.clone();
    let _admin = crate::listen_cli::start_admin(
        &args.admin,
        std::sync::Arc::new(move || edge::metrics::render(&shown)),
    )
    .await?;
    crate::ready::listening(
        "edge",
        edge.addr,
        None,
        crate::listen_cli::admin_addr(&_admin),
    );
    tracing::info!("edge serving on http://{}", edge.addr);
    crate::access_log_cli::stopped().await?;
    tracing::info!("shutting down");
    drop(edge);
    Ok(())
}

/// Flags of `token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Hex key shared with the edges (`--token-key`).
    #[arg(long)]
    pub key: String,
    /// Path pattern the token grants, `*` wildcards, several joined by `!`.
    #[arg(long, conflicts_with = "url")]
    pub acl: Option<String>,
    /// Exact URL path the token grants (a URL token instead of an ACL token).
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds the token stays valid.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Start time (unix seconds) [default: now].
    #[arg(long)]
    pub start: Option<u64>,
    /// Bind the token to a client IP.
    #[arg(long)]
    pub ip: Option<String>,
    /// Session id.
    #[arg(long)]
    pub id: Option<String>,
    /// Opaque payload.
    #[arg(long)]
    pub data: Option<String>,
}

/// Mints a token and returns it.
pub fn mint(args: &TokenArgs) -> Result<String> {
    let key = edge::token::parse_key(&args.key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    if args.acl.is_none() && args.url.is_none() {
        bail!("give --acl PATTERN (e.g. '/live/cam/*') or --url PATH");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let start = args.start.unwrap_or(now);
    Ok(edge::token::mint(
        &key,
        &edge::token::MintRequest {
            acl: args.acl.as_deref(),
            url: args.url.as_deref(),
            start: Some(start),
            expires: start + args.ttl,
            ip: args.ip.as_deref(),
            id: args.id.as_deref(),
            data: args.data.as_deref(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(argv: &[&str]) -> Result<EdgeConfig> {
        let args: EdgeArgs = crate::layers::read(argv, &[])?;
        edge_config(&args)
    }

    #[test]
    fn http3_from_flag_and_file_needs_tls() {
        let origin = ["--origin", "http://127.0.0.1:8080"];
        assert!(!config(&origin).expect("defaults").http3, "off by default");
        let e = config(&[origin[0], origin[1], "--http3"]).expect_err("no TLS");
        assert!(e.to_string().contains("--tls-cert"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.toml");
        std::fs::write(
            &path,
            "http3 = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let c = config(&[origin[0], origin[1], "--config", p]).expect("config");
        assert!(c.http3);
        assert!(c.tls.is_some());
    }
}
