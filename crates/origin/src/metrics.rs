//! Prometheus metrics of the origin. The recorder is process-wide and lives in the
//! `service` crate; this re-exports it so origin code reads `crate::metrics::render()`.

pub use service::metrics::{handle, render};
