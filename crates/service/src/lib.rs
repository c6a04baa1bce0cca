//! What every mediamesh HTTP service (origin, edge, later tracker and router) shares:
//! the accept loop with its explicit bounds (connections, request-head bytes, header
//! read time) serving HTTP/1.1 and HTTP/2 (h2c, or TLS with ALPN), and the one
//! process-wide Prometheus recorder behind every `/metrics`.
//!
//! It knows nothing about media; handlers are plain async functions.

pub mod metrics;
mod serve;
mod tls;

pub use serve::{serve, ServeLimits};
pub use tls::{load_tls, TlsError};
