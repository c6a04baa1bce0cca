//! Origin settings with their defaults. Every field is reachable from the command line
//! and the TOML config file of the `mediamesh` binary; this module only holds values.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the origin needs to run.
#[derive(Clone, Debug)]
pub struct OriginConfig {
    /// HTTP listen address.
    pub http: SocketAddr,
    /// RTMP listen address; `None` disables RTMP ingest.
    pub rtmp: Option<SocketAddr>,
    /// Data folder: keeps the signing key.
    pub data_dir: PathBuf,
    /// Folder of MP4 files served as VOD; `None` disables VOD.
    pub media_dir: Option<PathBuf>,
    /// Publish the built-in looping `demo` channel.
    pub demo: bool,
    pub packaging: PackagingConfig,
    pub limits: Limits,
    /// Stream name -> publish key. A stream listed here needs `?key=` to match; streams
    /// not listed are open unless `require_keys` is set.
    pub publish_keys: HashMap<String, String>,
    /// Refuse publishes for streams without an entry in `publish_keys`.
    pub require_keys: bool,
}

/// How live streams are cut and kept.
#[derive(Clone, Debug)]
pub struct PackagingConfig {
    /// Segments are cut on the first keyframe at or after this duration.
    pub segment_target: Duration,
    /// LL-HLS part duration target (0.2 s .. segment target).
    pub part_target: Duration,
    /// How much past media stays playable (DVR window).
    pub dvr_window: Duration,
    /// A publisher that drops may come back within this time and the stream continues.
    pub reconnect_grace: Duration,
    /// How long an ended stream stays listed with EXT-X-ENDLIST before it is forgotten.
    pub ended_linger: Duration,
    /// Longest merged-read wait of publishing RTMP connections (see `ingest::rtmp::serve`).
    pub ingest_read_batch: Duration,
}

/// Explicit bounds on what clients and publishers may cost us.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of media kept per rendition; the oldest segments go first when exceeded.
    pub max_rendition_bytes: usize,
    /// Concurrent RTMP connections.
    pub max_rtmp_connections: usize,
    /// Concurrent HTTP connections.
    pub max_http_connections: usize,
    /// Largest HTTP request head (request line + headers) in bytes.
    pub max_http_header_bytes: usize,
    /// Live streams at once.
    pub max_streams: usize,
    /// Largest moov box of a VOD file we parse.
    pub max_vod_moov_bytes: u64,
}

impl Default for PackagingConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(500),
            dvr_window: Duration::from_secs(60),
            reconnect_grace: Duration::from_secs(10),
            ended_linger: Duration::from_secs(60),
            ingest_read_batch: Duration::from_millis(100),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_rendition_bytes: 256 * 1024 * 1024,
            max_rtmp_connections: 256,
            max_http_connections: 10_000,
            max_http_header_bytes: 16 * 1024,
            max_streams: 1_000,
            max_vod_moov_bytes: 64 * 1024 * 1024,
        }
    }
}

impl OriginConfig {
    /// Defaults bound to loopback, as DESIGN.md promises.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            rtmp: Some(SocketAddr::from(([127, 0, 0, 1], 1935))),
            data_dir,
            media_dir: None,
            demo: false,
            packaging: PackagingConfig::default(),
            limits: Limits::default(),
            publish_keys: HashMap::new(),
            require_keys: false,
        }
    }
}
