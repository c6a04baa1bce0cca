//! Edge settings with their defaults; the binary fills them from flags and the TOML
//! file. Values only, no behaviour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::upstream::UpstreamConfig;
use cache::policy::MediaDefaults;

/// Everything an edge needs.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    pub http: SocketAddr,
    pub upstream: UpstreamConfig,
    /// Memory tier size in bytes.
    pub cache_mem_bytes: usize,
    /// Disk tier folder and size; `None` = memory only.
    pub cache_dir: Option<PathBuf>,
    pub cache_disk_bytes: u64,
    /// EdgeAuth key; `Some` = every media request needs a valid token.
    pub token_key: Option<Vec<u8>>,
    /// Query parameter, cookie and header name of the token.
    pub token_name: String,
    /// Query parameters left out of cache keys and upstream requests.
    pub dropped_params: Vec<String>,
    /// Query parameters kept in the keys and upstream requests of media objects and
    /// playlists (whose other parameters, bar LL-HLS's `_HLS_*`, are dropped); empty
    /// by default.
    pub kept_params: Vec<String>,
    /// Most CMCD session ids tracked for the `mediamesh_edge_cmcd_sessions` gauge (100,000).
    pub cmcd_max_sessions: usize,
    /// How long a viewer session counts after its last request (see `viewers`).
    pub viewer_window: Duration,
    /// Most viewer sessions tracked over all streams (100,000).
    pub max_viewer_sessions: usize,
    /// Answer `/metrics` on the viewers' port (off when an admin listener serves it).
    pub public_metrics: bool,
    /// Largest object the edge buffers and caches.
    pub max_object_bytes: usize,
    pub media_defaults: MediaDefaults,
    pub limits: EdgeLimits,
    /// Name in `Via`, CMSD and logs.
    pub server_id: String,
    /// TLS certificate and key (PEM); both set = HTTPS (HTTP/1.1 and HTTP/2 by ALPN).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Also serve HTTP/3 (QUIC) on UDP at the `http` address, with the `tls`
    /// certificate; TCP answers then carry `Alt-Svc`. Needs `tls`.
    pub http3: bool,
    /// Proxy-Wasm filters, run in this order on requests (reverse on responses).
    pub filters: Vec<compute::FilterSpec>,
    /// Per-viewer media functions (A/B watermark, ad insertion, rendition filtering).
    pub media: crate::media::MediaFunctions,
    /// The edge ABR ladder (rungs transcoded here); `None` = off.
    pub ladder: Option<crate::ladder::LadderConfig>,
    /// The access log (see `access_log`); `None` = each request is a tracing event
    /// of target `access` in the process log instead.
    pub access_log: Option<crate::access_log::AccessLogConfig>,
    /// Fresh cache hits of plain HTTP/1.1 requests are answered on the quick path
    /// (`quick`) where the configuration allows it; `false` = always the whole
    /// request path.
    pub quick_hits: bool,
}

/// Explicit bounds on what clients may cost the edge.
#[derive(Clone, Debug)]
pub struct EdgeLimits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    /// Time a client has to send its request head (slowloris).
    pub header_read_timeout: Duration,
    /// Requests per second per client address (burst = 2 s worth); `None` = unlimited.
    /// IPv6 addresses count per /64.
    pub per_ip_rps: Option<u32>,
    /// Addresses the rate limiter keeps before it sweeps out idle ones (100,000); a
    /// spray of addresses never locks a newcomer out, it only costs a sweep.
    pub per_ip_max_tracked: usize,
    /// Time to the first byte, idle time, connections per client address.
    pub conn: service::ConnLimits,
    /// Threads the viewers' connections are served on, each with a single-threaded
    /// runtime (`service::serve_threaded`: a connection stays on its thread, as on an
    /// nginx worker); 0 = on the process's shared runtime. Default: one per core.
    pub conn_threads: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            per_ip_rps: None,
            per_ip_max_tracked: 100_000,
            conn: service::ConnLimits::default(),
            conn_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl EdgeConfig {
    /// Defaults on loopback in front of `origins`.
    pub fn new(origins: Vec<String>) -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8081)),
            upstream: UpstreamConfig {
                origins,
                ..UpstreamConfig::default()
            },
            cache_mem_bytes: 512 * 1024 * 1024,
            cache_dir: None,
            cache_disk_bytes: 10 * 1024 * 1024 * 1024,
            token_key: None,
            token_name: "__token__".to_string(),
            dropped_params: vec!["CMCD".to_string(), "__token__".to_string()],
            kept_params: Vec::new(),
            cmcd_max_sessions: 100_000,
            viewer_window: crate::viewers::VIEWER_WINDOW,
            max_viewer_sessions: 100_000,
            public_metrics: true,
            max_object_bytes: 64 * 1024 * 1024,
            media_defaults: MediaDefaults::default(),
            limits: EdgeLimits::default(),
            server_id: "mediamesh-edge".to_string(),
            tls: None,
            http3: false,
            filters: Vec::new(),
            media: crate::media::MediaFunctions {
                watermark_param: "wm".to_string(),
                cmcd_renditions: true,
                ..Default::default()
            },
            ladder: None,
            access_log: None,
            quick_hits: true,
        }
    }
}

/// A setting outside what the edge can run with.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The setting, named as its flag (`max-connections`).
    pub setting: &'static str,
    pub problem: String,
}

impl EdgeConfig {
    /// Checks the settings before anything starts; the first problem found, named by
    /// its flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting, problem: &str| ConfigError {
            setting,
            problem: problem.to_string(),
        };
        if self.upstream.origins.is_empty() {
            return Err(bad("origin", "an edge needs at least one origin URL"));
        }
        for url in self.upstream.origins.iter().chain(&self.upstream.parents) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError {
                    setting: "origin",
                    problem: format!("{url:?} is not an http:// or https:// URL"),
                });
            }
        }
        for (setting, v) in [
            ("max-connections", self.limits.max_connections),
            ("max-header-bytes", self.limits.max_header_bytes),
            ("max-object-bytes", self.max_object_bytes),
        ] {
            if v == 0 {
                return Err(bad(setting, "must be at least 1"));
            }
        }
        if self.limits.header_read_timeout.is_zero() {
            return Err(bad("header-timeout", "must be more than 0 seconds"));
        }
        if self.limits.per_ip_rps == Some(0) {
            return Err(bad("rate-limit", "must be at least 1 request per second"));
        }
        if self.http3 && self.tls.is_none() {
            return Err(bad(
                "http3",
                "HTTP/3 runs over TLS only: give --tls-cert and --tls-key too",
            ));
        }
        if self.cache_dir.is_some() && self.cache_disk_bytes == 0 {
            return Err(bad(
                "cache-disk",
                "must be more than 0 bytes with --cache-dir",
            ));
        }
        Ok(())
    }
}
