//! Edge compute for mediamesh: a Proxy-Wasm host (ABI 0.2.1, the ABI of Envoy, Kong,
//! ngx_wasm_module and ATS) on wasmtime, so operators run filters built with the
//! upstream SDKs inside `mediamesh edge`, sandboxed (memory cap, CPU deadline per
//! callback, crash isolation with back-off, hot reload).
//!
//! Why not the `proxy-wasm-host` crate: its only release (0.2.0) needs Rust 1.96 and
//! edition 2024 (this workspace builds on 1.95), is a single-author 0.x, and brings its
//! own instance and call-out model that would have to be bent around the edge's
//! pooling, deadlines and crash policy. The ABI glue is a few hundred lines over
//! wasmtime (`hostcalls`), so it is written here.
//!
//! Layout: `abi` (wire formats, pure), `state` (what a filter can see), `hostcalls`
//! (the imports), `vm` (one instance, deadlines, faults), `plugin` (pool, crashes,
//! reload, tick), `chain` (one request through the filters), `callout`
//! (`proxy_http_call`, over a [`CalloutClient`] the embedder supplies). The edge uses
//! `Filters`.
//!
//! Not here: HTTP serving, caching, an HTTP client, and the built-in media functions
//! (all in crate `edge`).

pub mod abi;
pub mod callout;
pub mod chain;
pub mod hostcalls;
pub mod plugin;
pub mod state;
pub mod vm;

use std::sync::Arc;
use std::time::Duration;

pub use callout::{
    CalloutClient, CalloutError, CalloutFuture, CalloutRequest, CalloutResponse, NoCallouts,
};
pub use chain::{Buffered, RequestInput, RequestRun, Verdict};
pub use plugin::{FilterSpec, LoadError, Plugin, SandboxLimits};
pub use state::{Headers, LocalResponse};

/// The filters of one edge, in configuration order.
pub struct Filters {
    pub plugins: Vec<Arc<Plugin>>,
    callouts: Arc<dyn CalloutClient>,
}

impl std::fmt::Debug for Filters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filters")
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

impl Filters {
    /// Loads and starts every filter; the first that fails stops the load. Call-outs
    /// (`proxy_http_call`) go through `callouts`.
    pub fn load(
        specs: Vec<FilterSpec>,
        callouts: Arc<dyn CalloutClient>,
    ) -> Result<Arc<Self>, LoadError> {
        let mut plugins = Vec::with_capacity(specs.len());
        for spec in specs {
            let p = Plugin::load(spec)?;
            tracing::info!(filter = %p.spec.name, file = %p.spec.file.display(), prefix = ?p.spec.path_prefix, "filter loaded");
            plugins.push(p);
        }
        Ok(Arc::new(Self { plugins, callouts }))
    }

    /// The filters for a request path, or `None` when none applies.
    pub fn begin(&self, path: &str) -> Option<RequestRun> {
        let chosen: Vec<Arc<Plugin>> = self
            .plugins
            .iter()
            .filter(|p| p.applies_to(path))
            .cloned()
            .collect();
        (!chosen.is_empty()).then(|| RequestRun::new(chosen, self.callouts.clone()))
    }

    /// Background work: hot-reload polling and ticks. Abort the handles to stop.
    pub fn spawn_background(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        for p in &self.plugins {
            if let Some(every) = p.spec.reload_poll {
                let p = p.clone();
                tasks.push(tokio::spawn(async move {
                    let mut t = tokio::time::interval(every);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        t.tick().await;
                        let q = p.clone();
                        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || q.reload_if_changed()).await {
                            tracing::error!(filter = %p.spec.name, error = %e, "reload failed; the previous version keeps running");
                        }
                    }
                }));
            }
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match p.tick_period() {
                        Some(period) => {
                            tokio::time::sleep(period.max(Duration::from_millis(10))).await;
                            p.tick_idle();
                        }
                        None => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }));
        }
        tasks
    }
}
