//! HTTP/3 over QUIC (quinn + h3): the UDP accept loop beside the TCP one in `serve`,
//! calling the same kind of handler with a request whose body is an [`H3Body`].
//!
//! Bounds, as on TCP: connections in all and per client address (IPv6 by /64; a new
//! address is asked to prove itself with a QUIC Retry once the listener is half
//! full), the QUIC handshake and each request head within
//! [`ServeLimits::header_read_timeout`], request heads of at most
//! [`ServeLimits::max_header_bytes`] (QPACK-decoded; more gets 431), at most
//! [`MAX_STREAMS`] requests at once per connection (QUIC stream credit), and a
//! connection with no request in flight closed after [`ConnLimits::idle_timeout`]
//! (and the QUIC idle timeout a second later, so a silent peer goes too).
//!
//! Not here: TLS files (`load_tls`; QUIC takes the TCP listener's certificate with ALPN
//! `h3` and without 0-RTT), what the handler does, or advertising HTTP/3 (`Alt-Svc`
//! on TCP answers is the caller's). No WebSockets or extended CONNECT over HTTP/3.
//!
//! Metrics: `mediamesh_http3_connections_total`,
//! `mediamesh_http3_connections_refused_total{reason}` (`full`, `per_ip`),
//! `mediamesh_http3_connections_closed_total{reason}` (`handshake`, `request_head`,
//! `no_request`, `idle`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap};
use hyper::{Request, Response};
use quinn::crypto::rustls::QuicServerConfig;
use tokio::sync::Semaphore;
use tokio_rustls::rustls::ServerConfig;
use tracing::Instrument;

use crate::conn::{Activity, ConnGuard, ConnLimits, InFlight, PerIp};
use crate::listener::ServeLimits;

/// Requests (bidirectional streams) one connection may have open at once, as h2's
/// `max_concurrent_streams` on TCP.
pub const MAX_STREAMS: u32 = 256;

/// Unidirectional streams a client may open: HTTP/3 uses three (control, QPACK
/// encoder and decoder); the rest is room for grease streams.
const MAX_UNI_STREAMS: u32 = 8;

/// HTTP/3 `H3_NO_ERROR`, the code a connection closes with when the server ends it.
const H3_NO_ERROR: u32 = 0x100;

/// Why the HTTP/3 listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum H3Error {
    #[error("the TLS configuration cannot serve QUIC (it needs TLS 1.3 with AES-128-GCM): {0}")]
    Tls(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("cannot listen on UDP {addr} for HTTP/3: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound HTTP/3 listener; [`H3Listener::serve`] runs it.
#[derive(Debug)]
pub struct H3Listener {
    endpoint: quinn::Endpoint,
    limits: ServeLimits,
}

/// Closes the endpoint (and with it every connection) when the serving future is
/// dropped, as dropping the TCP loop's task stops accepting.
struct CloseOnDrop(quinn::Endpoint);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0
            .close(quinn::VarInt::from_u32(H3_NO_ERROR), b"server stopped");
    }
}

impl H3Listener {
    /// Binds UDP `addr` with the certificate of `tls` (the TCP listener's config;
    /// ALPN becomes `h3`, 0-RTT stays off). `limits` bound the connections as on TCP.
    pub fn bind(
        addr: SocketAddr,
        limits: ServeLimits,
        tls: &ServerConfig,
    ) -> Result<H3Listener, H3Error> {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        // No 0-RTT: early data can be replayed, and nothing here needs the round trip.
        tls.max_early_data_size = 0;
        let crypto = QuicServerConfig::try_from(tls)?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_STREAMS))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(MAX_UNI_STREAMS))
            // A second later than our own idle close, so that close (H3_NO_ERROR) is
            // what an idle client sees, not a transport time-out racing it.
            .max_idle_timeout(
                quinn::IdleTimeout::try_from(transport_idle(limits.conn.idle_timeout)).ok(),
            )
            .keep_alive_interval(None);
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(transport));
        let bind_error = |source| H3Error::Bind { addr, source };
        let socket = std::net::UdpSocket::bind(addr).map_err(bind_error)?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(bind_error)?;
        Ok(H3Listener { endpoint, limits })
    }

    /// The UDP address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Serves `handler` until the future is dropped (which closes every connection).
    pub async fn serve<F, Fut, B>(self, handler: F)
    where
        F: Fn(Request<H3Body>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _close = CloseOnDrop(self.endpoint.clone());
        let max = self.limits.max_connections.max(1);
        let permits = Arc::new(Semaphore::new(max));
        let per_ip = PerIp::new(self.limits.conn.max_connections_per_ip);
        let limits = Arc::new(self.limits);
        while let Some(incoming) = self.endpoint.accept().await {
            let peer = incoming.remote_address();
            // Past half full, an address must answer a Retry first: spoofed sources
            // then cannot hold slots (or another address's per-IP share).
            if permits.available_permits() < max / 2
                && !incoming.remote_address_validated()
                && incoming.may_retry()
            {
                let _ = incoming.retry();
                continue;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                ::metrics::counter!("mediamesh_http3_connections_refused_total", "reason" => "full")
                    .increment(1);
                incoming.refuse();
                continue;
            };
            let Some(ip_slot) = per_ip.acquire(peer.ip()) else {
                ::metrics::counter!("mediamesh_http3_connections_refused_total", "reason" => "per_ip")
                    .increment(1);
                tracing::debug!(%peer, "HTTP/3 connection refused: per-IP cap reached");
                incoming.refuse();
                continue;
            };
            let guard = Arc::new(ConnGuard {
                _permit: permit,
                _ip: ip_slot,
            });
            let span = tracing::info_span!("h3conn", %peer);
            tokio::spawn(
                connection(incoming, peer, guard, limits.clone(), handler.clone()).instrument(span),
            );
        }
    }
}

fn closed(reason: &'static str) {
    ::metrics::counter!("mediamesh_http3_connections_closed_total", "reason" => reason)
        .increment(1);
    tracing::debug!(reason, "HTTP/3 connection closed by the server");
}

/// One QUIC connection, from the handshake to its end. `guard` holds its slots; each
/// request task holds a clone, so the slots go back when the last answer is sent.
async fn connection<F, Fut, B>(
    incoming: quinn::Incoming,
    peer: SocketAddr,
    guard: Arc<ConnGuard>,
    limits: Arc<ServeLimits>,
    handler: F,
) where
    F: Fn(Request<H3Body>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => return tracing::debug!(error = %e, "QUIC connection failed"),
    };
    let quic = match tokio::time::timeout(limits.header_read_timeout, connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return tracing::debug!(error = %e, "QUIC handshake failed"),
        Err(_) => return closed("handshake"),
    };
    ::metrics::counter!("mediamesh_http3_connections_total").increment(1);
    let max_head = limits.max_header_bytes.max(1024) as u64;
    let mut builder = h3::server::builder();
    builder.max_field_section_size(max_head);
    let built = builder.build::<_, Bytes>(h3_quinn::Connection::new(quic.clone()));
    let mut h3 = match tokio::time::timeout(limits.header_read_timeout, built).await {
        Ok(Ok(h3)) => h3,
        Ok(Err(e)) => return tracing::debug!(error = %e, "HTTP/3 setup failed"),
        Err(_) => return closed("handshake"),
    };
    let activity = Activity::new();
    let conn: &ConnLimits = &limits.conn;
    // The first request must come within the time a TCP client has for its first
    // byte and request head.
    let no_request = conn.first_byte_timeout + limits.header_read_timeout;
    loop {
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let in_flight = activity.begin();
                    tokio::spawn(
                        request(
                            resolver,
                            peer,
                            in_flight,
                            guard.clone(),
                            limits.header_read_timeout,
                            handler.clone(),
                        )
                        .in_current_span(),
                    );
                }
                // The client sent GOAWAY and its requests are done.
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "HTTP/3 connection ended");
                    break;
                }
            },
            why = activity.expired(no_request, conn.idle_timeout) => {
                closed(why.label());
                quic.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"idle");
                break;
            }
        }
    }
}

/// Headers that name the connection, which HTTP/3 answers must not carry (RFC 9114
/// §4.2).
const CONNECTION_HEADERS: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// One request stream: its head (bounded in time), the handler, the answer.
async fn request<F, Fut, B>(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    peer: SocketAddr,
    in_flight: InFlight,
    _guard: Arc<ConnGuard>,
    head_timeout: std::time::Duration,
    handler: F,
) where
    F: Fn(Request<H3Body>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (req, stream) = match tokio::time::timeout(head_timeout, resolver.resolve_request()).await {
        Ok(Ok(x)) => x,
        // Too large heads were answered 431 by h3 itself.
        Ok(Err(e)) => return tracing::debug!(error = %e, "HTTP/3 request refused"),
        Err(_) => return closed("request_head"),
    };
    let (mut send, recv) = stream.split();
    let (parts, ()) = req.into_parts();
    let body = H3Body::new(recv, &parts.method, &parts.headers);
    let res = handler(Request::from_parts(parts, body), peer).await;
    let (mut head, body) = res.into_parts();
    for name in CONNECTION_HEADERS {
        head.headers.remove(name);
    }
    if let Err(e) = send.send_response(Response::from_parts(head, ())).await {
        return tracing::debug!(error = %e, "HTTP/3 answer not sent");
    }
    let mut body = std::pin::pin!(body);
    loop {
        // The body's error is turned into text before any await (it need not be Send).
        let frame = match body.as_mut().frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                tracing::debug!(error = %e, "answer body failed; HTTP/3 stream reset");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return;
            }
        };
        let sent = match frame.into_data() {
            Ok(data) if data.is_empty() => Ok(()),
            Ok(data) => send.send_data(data).await,
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => send.send_trailers(trailers).await,
                Err(_) => Ok(()),
            },
        };
        if let Err(e) = sent {
            return tracing::debug!(error = %e, "HTTP/3 answer cut short");
        }
    }
    if let Err(e) = send.finish().await {
        tracing::debug!(error = %e, "HTTP/3 answer not finished");
    }
    drop(in_flight);
}

/// Why an HTTP/3 request body could not be read.
#[derive(Debug, thiserror::Error)]
#[error("HTTP/3 request body: {0}")]
pub struct H3BodyError(#[from] h3::error::StreamError);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyState {
    Data,
    Trailers,
    Done,
}

/// The body of an HTTP/3 request as it arrives: data frames, then trailers.
pub struct H3Body {
    recv: h3::server::RequestStream<h3_quinn::RecvStream, Bytes>,
    state: BodyState,
    /// Bytes the request said it carries (`content-length`).
    length: Option<u64>,
    /// Known to be empty from the head (a GET or HEAD without `content-length`, or
    /// `content-length: 0`), as hyper knows from the framing on TCP.
    empty: bool,
}

impl std::fmt::Debug for H3Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H3Body")
            .field("state", &self.state)
            .field("length", &self.length)
            .finish()
    }
}

impl H3Body {
    fn new(
        recv: h3::server::RequestStream<h3_quinn::RecvStream, Bytes>,
        method: &hyper::Method,
        headers: &HeaderMap,
    ) -> H3Body {
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bodiless = matches!(*method, hyper::Method::GET | hyper::Method::HEAD);
        H3Body {
            recv,
            state: BodyState::Data,
            length,
            empty: length == Some(0) || (length.is_none() && bodiless),
        }
    }
}

impl http_body::Body for H3Body {
    type Data = Bytes;
    type Error = H3BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, H3BodyError>>> {
        let this = &mut *self;
        if this.state == BodyState::Data {
            match this.recv.poll_recv_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(Some(mut buf))) => {
                    let data = buf.copy_to_bytes(buf.remaining());
                    return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                }
                Poll::Ready(Ok(None)) => this.state = BodyState::Trailers,
                Poll::Ready(Err(e)) => {
                    this.state = BodyState::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
        if this.state == BodyState::Trailers {
            let polled = this.recv.poll_recv_trailers(cx);
            if polled.is_ready() {
                this.state = BodyState::Done;
            }
            return match polled {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(Some(t))) => Poll::Ready(Some(Ok(http_body::Frame::trailers(t)))),
                Poll::Ready(Ok(None)) => Poll::Ready(None),
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            };
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.state == BodyState::Done || self.empty
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.length {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

/// The QUIC transport's idle timeout for an HTTP/3 idle timeout of `idle`.
fn transport_idle(idle: std::time::Duration) -> std::time::Duration {
    idle + std::time::Duration::from_secs(1)
}
