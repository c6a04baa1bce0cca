//! What every mediamesh HTTP service (origin, edge, tracker and router) shares: the
//! accept loop with its explicit bounds (connections in all and per client address,
//! request-head bytes, time to the first byte and to a request head, idle time
//! between requests; upgraded WebSockets keep their connection slot) serving
//! HTTP/1.1 and HTTP/2 (h2c, or TLS with ALPN; an idle plain HTTP/1.1 keep-alive
//! connection is parked outside hyper and holds almost no memory; a request the
//! handler can answer at once from memory takes the quick path, `quick`: over
//! HTTP/1.1 without hyper, over HTTP/2 without the handler's request path), the
//! HTTP/3 (QUIC) accept loop beside it (`http3`, same kind of handler and bounds), the
//! TCP listener they accept from (`bind`: a listen queue long enough for a crowd), and
//! the one process-wide Prometheus recorder behind every `/metrics`.
//!
//! It knows nothing about media; handlers are plain async functions.

mod bind;
mod conn;
mod exec;
mod gate;
pub mod http3;
mod listener;
mod lot;
pub mod metrics;
mod park;
mod quick;
mod sendfile;
/// For the fuzz targets only (`fuzz/fuzz_targets/http1_framing.rs`): the request
/// framing follower of parked HTTP/1.1 connections. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::park::Framing;

    /// The quick path's reading of the request at the start of `data`
    /// (`fuzz/fuzz_targets/http1_quick.rs`), with a handler that answers every
    /// request it is asked with `body`: the bytes of the request answered, and the
    /// whole response head, or `None` for hyper.
    pub fn quick_request(data: &[u8], body: &[u8]) -> Option<(usize, Vec<u8>)> {
        struct Everything(bytes::Bytes);
        impl crate::Quick for Everything {
            fn answer(
                &self,
                req: &crate::QuickRequest<'_>,
                head: &mut Vec<u8>,
            ) -> Option<crate::QuickBody> {
                let _ = (req.path(), req.query(), req.header("host"), req.peer());
                head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
                Some(self.0.clone().into())
            }
        }
        let quick = Everything(bytes::Bytes::copy_from_slice(body));
        let mut head = Vec::new();
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        crate::quick::answer(&quick, data, peer, &mut head).map(|a| (a.used, head))
    }
}
mod serve;
mod tls;

pub use bind::{bind, LISTEN_BACKLOG};
pub use conn::{ConnLimits, IpKey, IpSlot, PerIp};
pub use http3::{H3Body, H3Error, H3Listener};
pub use quick::{put_date, BodyFile, Quick, QuickBody, QuickRequest};
pub use serve::{serve, serve_threaded, serve_with, ServeLimits};
pub use tls::{load_tls, TlsError};
/// The TLS server configuration `serve` takes (what `load_tls` makes).
pub use tokio_rustls::rustls::ServerConfig as TlsConfig;
