//! The process-wide Prometheus recorder (`metrics` crate facade). Counters are
//! incremented where things happen; this module installs the recorder once and renders
//! the text format for `/metrics`. One recorder serves every role in the process, so
//! `mediamesh serve` shows origin and edge figures on one page.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder handle, installed on first use. Call it at start-up so nothing
/// counted before the first scrape is lost.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows only what it sees"
            );
        }
        handle
    })
}

/// All metrics in the Prometheus text format.
pub fn render() -> String {
    handle().render()
}
