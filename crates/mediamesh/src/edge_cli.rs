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
    Ok(c)
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
