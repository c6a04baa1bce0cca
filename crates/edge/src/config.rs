//! Edge settings with their defaults; the binary fills them from flags and the TOML
//! file. Values only, no behaviour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cache::policy::MediaDefaults;
use crate::upstream::UpstreamConfig;

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
    /// Query parameters left out of cache keys.
    pub dropped_params: Vec<String>,
    /// Largest object the edge buffers and caches.
    pub max_object_bytes: usize,
    pub media_defaults: MediaDefaults,
    pub limits: EdgeLimits,
    /// Name in `Via`, CMSD and logs.
    pub server_id: String,
    /// TLS certificate and key (PEM); both set = HTTPS (HTTP/1.1 and HTTP/2 by ALPN).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Proxy-Wasm filters, run in this order on requests (reverse on responses).
    pub filters: Vec<compute::FilterSpec>,
    /// Per-viewer media functions (A/B watermark, ad insertion, rendition filtering).
    pub media: crate::media::MediaFunctions,
    /// The edge ABR ladder (rungs transcoded here); `None` = off.
    pub ladder: Option<crate::ladder::LadderConfig>,
}

/// Explicit bounds on what clients may cost the edge.
#[derive(Clone, Debug)]
pub struct EdgeLimits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    /// Time a client has to send its request head (slowloris).
    pub header_read_timeout: Duration,
    /// Requests per second per client address (burst = 2 s worth); `None` = unlimited.
    pub per_ip_rps: Option<u32>,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            per_ip_rps: None,
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
            max_object_bytes: 64 * 1024 * 1024,
            media_defaults: MediaDefaults::default(),
            limits: EdgeLimits::default(),
            server_id: "mediamesh-edge".to_string(),
            tls: None,
            filters: Vec::new(),
            media: crate::media::MediaFunctions {
                watermark_param: "wm".to_string(),
                cmcd_renditions: true,
                ..Default::default()
            },
            ladder: None,
        }
    }
}
