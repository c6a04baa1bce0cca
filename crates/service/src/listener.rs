//! What one listener's connections share, whichever way they are served: the
//! listener's bounds ([`ServeLimits`]), the handler and TLS acceptor held once per
//! listener ([`Shared`]). Here so that the
//! accept loops (`serve.rs`) and parked HTTP/1.1 connections (`park.rs`) both use it
//! without importing each other. Not here: accepting, serving, timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::conn::ConnLimits;
use crate::lot::{Lot, Resume};
use crate::quick::{Quick, QuickSide};

/// Bounds of one listener. The per-connection timeouts and the per-IP cap are in
/// [`ConnLimits`] (see `serve_with`); `serve` uses their defaults.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; more gets 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a request head (slowloris), and to finish a TLS
    /// handshake.
    pub header_read_timeout: Duration,
    /// Per-connection bounds: time to the first byte, idle time, connections per
    /// client address.
    pub conn: ConnLimits,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            conn: ConnLimits::default(),
        }
    }
}

/// How long a connection that was told to close (idle) may take to finish.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What every connection of one listener shares, allocated once per listener (not
/// per connection: a parked connection holds only a reference).
pub(crate) struct Shared<F> {
    pub(crate) limits: ServeLimits,
    pub(crate) conn: ConnLimits,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) handler: F,
    /// `mediamesh_http_connections_parked`.
    pub(crate) parked: ::metrics::Gauge,
    /// Where idle plain HTTP/1.1 connections are parked (`park.rs`, `lot.rs`). The
    /// accept loop closes it when it ends.
    pub(crate) lot: Lot,
    /// The handler's quick path for plain HTTP/1.1 requests (`quick.rs`), if any.
    pub(crate) quick: Option<Arc<dyn Quick>>,
}

impl<F, Fut, B> Shared<F>
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// `resume` makes the lot's way back to serving (`park::resumer`), given this
    /// `Shared` held weakly (the lot is part of it); passed in so that this module
    /// does not import the one that serves.
    pub(crate) fn new(
        limits: ServeLimits,
        conn: ConnLimits,
        tls: Option<Arc<ServerConfig>>,
        handler: F,
        quick: Option<Arc<dyn Quick>>,
        resume: fn(Weak<Self>) -> Resume,
    ) -> Arc<Self> {
        let parked = ::metrics::gauge!("mediamesh_http_connections_parked");
        Arc::new_cyclic(|weak| Shared {
            limits,
            conn,
            tls: tls.map(TlsAcceptor::from),
            handler,
            parked: parked.clone(),
            lot: Lot::new(parked, resume(weak.clone())),
            quick,
        })
    }
}

impl<F> Shared<F> {
    /// How long a connection may go without a request after accept: its first byte,
    /// then the header timeout for the head (the watchdog's `no_request`).
    pub(crate) fn no_request(&self) -> Duration {
        self.conn.first_byte_timeout + self.limits.header_read_timeout
    }

    /// The quick path with the client it answers, as a connection's IO holds it.
    pub(crate) fn quick_for(&self, peer: SocketAddr) -> Option<QuickSide> {
        self.quick.clone().map(|quick| QuickSide {
            quick,
            peer,
            refresh_after: self.limits.header_read_timeout / 2,
        })
    }
}
