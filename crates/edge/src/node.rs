//! One edge node: its configuration and what it holds for its lifetime (memory and
//! disk tiers, upstreams, in-flight fetches, rate limiter, CMCD sessions, filters,
//! ladder), built once from an [`EdgeConfig`].
//!
//! Not here: the request path (`proxy`, which runs each request through its phases on
//! an `Edge`), serving sockets (`server`).

use std::sync::Arc;

use hyper::header::HeaderValue;

use crate::cmcd;
use crate::coalesce::Flights;
use crate::config::EdgeConfig;
use crate::filter::FilterHook;
use crate::limit::RateLimiter;
use crate::media::MediaHook;
use crate::phase::{Hook, Phases};
use crate::upstream::{ConfigError, Upstreams};
use cache::disk::DiskCache;
use cache::memory::MemoryCache;

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("upstream configuration: {0}")]
    Upstream(#[from] ConfigError),
    #[error("disk cache {dir}: {source}")]
    Disk {
        dir: std::path::PathBuf,
        #[source]
        source: cache::disk::DiskError,
    },
    #[error(transparent)]
    Filter(#[from] compute::LoadError),
    #[error(transparent)]
    AccessLog(#[from] crate::access_log::AccessLogError),
}

/// One edge node.
pub struct Edge {
    pub config: EdgeConfig,
    pub(crate) memory: MemoryCache,
    pub(crate) disk: Option<Arc<DiskCache>>,
    pub upstreams: Arc<Upstreams>,
    pub(crate) flights: Flights,
    pub(crate) limiter: Option<RateLimiter>,
    /// CMCD session ids seen recently (bounded, for the `mediamesh_edge_cmcd_sessions` gauge).
    pub(crate) sessions: crate::sessions::Sessions,
    /// Viewer sessions per live stream, for the fleet's viewer accounting.
    pub viewers: crate::viewers::Viewers,
    /// Proxy-Wasm filters; `None` when none is configured (also a hook).
    pub filters: Option<Arc<compute::Filters>>,
    /// What plugs into the request path's phases, in order: filters, the media
    /// functions, the ladder (see `phase`).
    pub(crate) hooks: Vec<Box<dyn Hook>>,
    /// What each of `hooks` takes part in (`Hook::phases`, read once).
    pub(crate) hook_phases: Vec<Phases>,
    /// Header values that never change, made once.
    pub(crate) via: HeaderValue,
    pub(crate) cmsd_dynamic: HeaderValue,
    /// The access log's writer; `None` = tracing events instead (see `access_log`).
    pub access_log: Option<crate::access_log::AccessLog>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("server_id", &self.config.server_id)
            .finish()
    }
}

impl Edge {
    pub fn new(config: EdgeConfig) -> Result<Arc<Self>, EdgeError> {
        let upstreams = Upstreams::new(config.upstream.clone())?;
        let disk = match &config.cache_dir {
            Some(dir) => Some(Arc::new(
                DiskCache::open(dir, config.cache_disk_bytes).map_err(|source| {
                    EdgeError::Disk {
                        dir: dir.clone(),
                        source,
                    }
                })?,
            )),
            None => None,
        };
        let filters = if config.filters.is_empty() {
            None
        } else {
            let bases = config
                .filters
                .iter()
                .flat_map(|f| f.upstreams.values().map(String::as_str));
            let callouts = crate::upstream::Callouts::new(upstreams.clone(), bases);
            Some(compute::Filters::load(
                config.filters.clone(),
                Arc::new(callouts),
            )?)
        };
        let mut hooks: Vec<Box<dyn Hook>> = Vec::new();
        if let Some(f) = &filters {
            hooks.push(Box::new(FilterHook {
                filters: f.clone(),
                tls: config.tls.is_some(),
                max_body: config.max_object_bytes,
            }));
        }
        hooks.push(Box::new(MediaHook {
            media: config.media.clone(),
            max_bytes: config.max_object_bytes,
        }));
        if let Some(ladder) = config.ladder.clone() {
            hooks.push(Box::new(crate::ladder::Transcoder::new(ladder)));
        }
        let access_log = config
            .access_log
            .clone()
            .map(crate::access_log::AccessLog::start)
            .transpose()?;
        let hook_phases = hooks.iter().map(|h| h.phases()).collect();
        Ok(Arc::new(Self {
            access_log,
            filters,
            hooks,
            hook_phases,
            memory: MemoryCache::new(config.cache_mem_bytes),
            disk,
            upstreams,
            flights: Flights::default(),
            limiter: config
                .limits
                .per_ip_rps
                .map(|rps| RateLimiter::new(rps, config.limits.per_ip_max_tracked)),
            sessions: crate::sessions::Sessions::new(config.cmcd_max_sessions),
            viewers: crate::viewers::Viewers::new(config.viewer_window, config.max_viewer_sessions),
            via: HeaderValue::from_str(&format!("1.1 {}", config.server_id))
                .unwrap_or(HeaderValue::from_static("1.1 mediamesh-edge")),
            cmsd_dynamic: HeaderValue::from_str(&cmcd::cmsd_dynamic(&config.server_id, None, None))
                .unwrap_or(HeaderValue::from_static("\"mediamesh-edge\"")),
            config,
        }))
    }

    /// The hooks that take part in a phase (`phase` picks its flag), in order.
    pub(crate) fn hooks_in(
        &self,
        phase: fn(&Phases) -> bool,
    ) -> impl Iterator<Item = &dyn Hook> + '_ {
        self.hooks
            .iter()
            .zip(&self.hook_phases)
            .filter(move |(_, p)| phase(p))
            .map(|(h, _)| h.as_ref())
    }

    /// Bytes held per tier.
    pub fn cache_bytes(&self) -> (usize, u64) {
        (
            self.memory.bytes(),
            self.disk.as_ref().map_or(0, |d| d.bytes()),
        )
    }
}
