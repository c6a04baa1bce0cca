//! Prometheus metrics: one process-wide recorder from the `metrics` crate, rendered in
//! the Prometheus text format at `/metrics`. Counters are incremented where things
//! happen (ingest, packager, HTTP); this module only installs and renders.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder handle, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows only what it sees"
            );
        }
        handle
    })
}

/// Renders all metrics in the Prometheus text format.
pub fn render() -> String {
    handle().render()
}
