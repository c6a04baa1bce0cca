//! Flags and config file of `mediamesh edge` and `mediamesh token`. Like the origin's,
//! every flag has a TOML key of the same name (`-` as `_`); flags win over the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use edge::config::EdgeConfig;
use serde::Deserialize;

/// Flags of `edge`.
#[derive(Args, Debug, Default)]
pub struct EdgeArgs {
    /// TOML file with any of these settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8081].
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Origin base URL; repeat for failover order (first is primary).
    #[arg(long = "origin", value_name = "URL")]
    pub origins: Vec<String>,
    /// Parent (shield) edge base URL; repeat. Objects are spread over parents by rendezvous hashing.
    #[arg(long = "parent", value_name = "URL")]
    pub parents: Vec<String>,
    /// Memory tier size in bytes [default: 536870912].
    #[arg(long)]
    pub cache_mem: Option<usize>,
    /// Disk tier folder (survives restarts).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Disk tier size in bytes [default: 10737418240].
    #[arg(long)]
    pub cache_disk: Option<u64>,
    /// Require EdgeAuth tokens signed with this hex key.
    #[arg(long)]
    pub token_key: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key serves HTTPS (HTTP/2 and HTTP/1.1).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Query parameter left out of cache keys (repeat) [default: CMCD, __token__].
    #[arg(long = "drop-param", value_name = "NAME")]
    pub drop_params: Vec<String>,
    /// Largest object cached, bytes [default: 67108864].
    #[arg(long)]
    pub max_object_bytes: Option<usize>,
    /// Concurrent client connections [default: 20000].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Largest request head in bytes [default: 16384].
    #[arg(long)]
    pub max_header_bytes: Option<usize>,
    /// Seconds a client has to send its request head [default: 10].
    #[arg(long)]
    pub header_timeout: Option<f64>,
    /// Requests per second per client address (default: unlimited).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Name used in Via, CMSD and logs [default: mediamesh-edge].
    #[arg(long)]
    pub server_id: Option<String>,
    /// Proxy-Wasm filter (ABI 0.2.1, .wasm or .wat) run on every request; repeat for a
    /// chain. The config file's [[filter]] tables add path scoping and plugin configuration.
    #[arg(long = "filter", value_name = "FILE.wasm")]
    pub filters: Vec<PathBuf>,
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
    #[arg(long = "ladder", value_name = "NAME=WxH@KBPS")]
    pub ladder: Vec<String>,
    /// Ladder transcodes running at once [default: number of cores].
    #[arg(long)]
    pub ladder_jobs: Option<usize>,
    /// The ffmpeg program the ladder runs [default: ffmpeg].
    #[arg(long)]
    pub ladder_ffmpeg: Option<PathBuf>,
    /// Seconds one ladder transcode may take before ffmpeg is killed [default: 30].
    #[arg(long)]
    pub ladder_timeout: Option<f64>,
    #[command(flatten)]
    pub fleet: crate::fleet_cli::FleetArgs,
}

/// A `[[filter]]` table of the config file (or just a file name in `filter = [...]`).
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum FilterEntry {
    File(PathBuf),
    Table(Box<FilterTable>),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FilterTable {
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

/// A `[[ladder]]` table of the config file (or `ladder = ["480p=854x480@1200"]`).
#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum LadderEntry {
    Text(String),
    Table {
        name: String,
        width: u32,
        height: u32,
        kbps: u32,
    },
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct EdgeFile {
    http: Option<SocketAddr>,
    #[serde(default)]
    origin: Vec<String>,
    #[serde(default)]
    parent: Vec<String>,
    cache_mem: Option<usize>,
    cache_dir: Option<PathBuf>,
    cache_disk: Option<u64>,
    token_key: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    drop_param: Vec<String>,
    max_object_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_header_bytes: Option<usize>,
    header_timeout: Option<f64>,
    rate_limit: Option<u32>,
    server_id: Option<String>,
    #[serde(default)]
    filter: Vec<FilterEntry>,
    filter_memory: Option<usize>,
    filter_deadline_ms: Option<u64>,
    filter_instances: Option<usize>,
    filter_fail_open: Option<bool>,
    watermark_key: Option<String>,
    ad_playlist: Option<PathBuf>,
    ad_base_url: Option<String>,
    #[serde(default)]
    device_rule: Vec<String>,
    no_cmcd_renditions: Option<bool>,
    #[serde(default)]
    ladder: Vec<LadderEntry>,
    ladder_jobs: Option<usize>,
    ladder_ffmpeg: Option<PathBuf>,
    ladder_timeout: Option<f64>,
    // Fleet keys, read by `fleet_cli::settings`; listed so the file may hold them.
    #[allow(dead_code)]
    registry: Option<String>,
    #[allow(dead_code)]
    region: Option<String>,
    #[allow(dead_code)]
    public_url: Option<String>,
}

fn load(path: Option<&Path>) -> Result<EdgeFile> {
    let Some(path) = path else {
        return Ok(EdgeFile::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

/// Merges flags, file and defaults.
pub fn edge_config(args: &EdgeArgs) -> Result<EdgeConfig> {
    let file = load(args.config.as_deref())?;
    let origins = if args.origins.is_empty() {
        file.origin
    } else {
        args.origins.clone()
    };
    if origins.is_empty() {
        bail!("an edge needs at least one --origin URL (e.g. --origin http://127.0.0.1:8080)");
    }
    let mut c = EdgeConfig::new(origins);
    c.upstream.parents = if args.parents.is_empty() {
        file.parent
    } else {
        args.parents.clone()
    };
    if let Some(a) = args.http.or(file.http) {
        c.http = a;
    }
    if let Some(v) = args.cache_mem.or(file.cache_mem) {
        c.cache_mem_bytes = v;
    }
    c.cache_dir = args.cache_dir.clone().or(file.cache_dir);
    if let Some(v) = args.cache_disk.or(file.cache_disk) {
        c.cache_disk_bytes = v;
    }
    if let Some(k) = args.token_key.clone().or(file.token_key) {
        c.token_key = Some(
            edge::token::parse_key(&k)
                .map_err(|e| anyhow::anyhow!("--token-key must be a hex key: {e}"))?,
        );
    }
    c.tls = match (
        args.tls_cert.clone().or(file.tls_cert),
        args.tls_key.clone().or(file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let drop = if args.drop_params.is_empty() {
        file.drop_param
    } else {
        args.drop_params.clone()
    };
    if !drop.is_empty() {
        c.dropped_params = drop;
    }
    if let Some(v) = args.max_object_bytes.or(file.max_object_bytes) {
        c.max_object_bytes = v;
    }
    if let Some(v) = args.max_connections.or(file.max_connections) {
        c.limits.max_connections = v;
    }
    if let Some(v) = args.max_header_bytes.or(file.max_header_bytes) {
        c.limits.max_header_bytes = v;
    }
    if let Some(v) = args.header_timeout.or(file.header_timeout) {
        if !(v.is_finite() && v > 0.0 && v <= 600.0) {
            bail!("--header-timeout must be between 0 and 600 seconds");
        }
        c.limits.header_read_timeout = Duration::from_secs_f64(v);
    }
    c.limits.per_ip_rps = args.rate_limit.or(file.rate_limit);
    if let Some(v) = args.server_id.clone().or(file.server_id) {
        c.server_id = v;
    }
    if let Some(k) = args.watermark_key.clone().or(file.watermark_key) {
        c.media.watermark_key = Some(
            edge::token::parse_key(&k)
                .map_err(|e| anyhow::anyhow!("--watermark-key must be a hex key: {e}"))?,
        );
        let p = c.media.watermark_param.clone();
        if !c.dropped_params.contains(&p) {
            c.dropped_params.push(p);
        }
    }
    if let Some(p) = args.ad_playlist.clone().or(file.ad_playlist) {
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read --ad-playlist {}", p.display()))?;
        let base = args
            .ad_base_url
            .clone()
            .or(file.ad_base_url)
            .unwrap_or_default();
        let pod = edge::compute::media::ssai::AdPod::from_playlist(&text, &base);
        if pod.segments.is_empty() {
            bail!("--ad-playlist {} lists no segments", p.display());
        }
        c.media.ad_pod = Some(pod);
    }
    let rules = if args.device_rules.is_empty() {
        file.device_rule
    } else {
        args.device_rules.clone()
    };
    for r in rules {
        let Some((ua, h)) = r.split_once('=') else {
            bail!("--device-rule wants UA=HEIGHT, got {r}");
        };
        let max_height = h
            .trim()
            .parse()
            .with_context(|| format!("--device-rule {r}: height must be a number"))?;
        c.media
            .device_rules
            .push(edge::compute::media::renditions::DeviceRule {
                user_agent_contains: ua.trim().to_string(),
                max_height,
            });
    }
    c.media.cmcd_renditions =
        !(args.no_cmcd_renditions || file.no_cmcd_renditions.unwrap_or(false));
    let rungs = if args.ladder.is_empty() {
        file.ladder
            .into_iter()
            .map(|e| match e {
                LadderEntry::Text(t) => t,
                LadderEntry::Table {
                    name,
                    width,
                    height,
                    kbps,
                } => format!("{name}={width}x{height}@{kbps}"),
            })
            .collect()
    } else {
        args.ladder.clone()
    };
    if !rungs.is_empty() {
        let rungs = rungs
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<_>, _>>()?;
        let ladder = edge::compute::media::ladder::Ladder::new(rungs, "src")?;
        let mut lc = edge::ladder::LadderConfig::new(ladder);
        if let Some(j) = args.ladder_jobs.or(file.ladder_jobs) {
            if j == 0 {
                bail!("--ladder-jobs must be at least 1");
            }
            lc.jobs = j;
        }
        if let Some(f) = args.ladder_ffmpeg.clone().or(file.ladder_ffmpeg) {
            lc.ffmpeg = f;
        }
        if let Some(t) = args.ladder_timeout.or(file.ladder_timeout) {
            if !(t > 0.0 && t <= 3600.0) {
                bail!("--ladder-timeout must be between 0 and 3600 seconds");
            }
            lc.timeout = Duration::from_secs_f64(t);
        }
        c.ladder = Some(lc);
    }
    c.filters = filter_specs(
        args,
        file.filter,
        &FilterDefaults {
            memory: args.filter_memory.or(file.filter_memory),
            deadline_ms: args.filter_deadline_ms.or(file.filter_deadline_ms),
            instances: args.filter_instances.or(file.filter_instances),
            fail_open: args.filter_fail_open || file.filter_fail_open.unwrap_or(false),
        },
    )?;
    Ok(c)
}

struct FilterDefaults {
    memory: Option<usize>,
    deadline_ms: Option<u64>,
    instances: Option<usize>,
    fail_open: bool,
}

/// Filters from `--filter` (which win) or the file's `filter` entries.
fn filter_specs(
    args: &EdgeArgs,
    file: Vec<FilterEntry>,
    d: &FilterDefaults,
) -> Result<Vec<edge::compute::FilterSpec>> {
    let entries: Vec<FilterEntry> = if args.filters.is_empty() {
        file
    } else {
        args.filters
            .iter()
            .cloned()
            .map(FilterEntry::File)
            .collect()
    };
    let base = |file: PathBuf| -> Result<edge::compute::FilterSpec> {
        let mut s = edge::compute::FilterSpec::new(file);
        s.fail_open = d.fail_open;
        if let Some(m) = d.memory {
            s.limits.memory_bytes = m;
        }
        if let Some(ms) = d.deadline_ms {
            if ms == 0 || ms > 60_000 {
                bail!("--filter-deadline-ms must be between 1 and 60000");
            }
            s.limits.callback_deadline = Duration::from_millis(ms);
        }
        if let Some(n) = d.instances {
            s.limits.max_instances = n.max(1);
        }
        Ok(s)
    };
    let mut out: Vec<edge::compute::FilterSpec> = Vec::new();
    for e in entries {
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
