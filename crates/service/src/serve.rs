//! The accept loop: bounded connections, HTTP/1.1 and HTTP/2 on one port (h2c by
//! preface, or TLS with ALPN), a cap on request-head bytes and on the time to send it.
//! HTTP/1.1 upgrades (WebSocket, for the tracker) are passed to the handler.
//!
//! No connection is held for free: a socket must send its first byte within
//! [`ConnLimits::first_byte_timeout`] and complete a request head soon after; a
//! connection with no request in flight is closed after [`ConnLimits::idle_timeout`]
//! (h2 connections are also PINGed); each client address (IPv6 by /64) holds at most
//! [`ConnLimits::max_connections_per_ip`] connections; and the connection's slots
//! travel with the socket, so an upgraded WebSocket keeps them until it closes.
//!
//! Connections run as tasks of the runtime that runs the loop ([`serve`]), or, with
//! [`serve_threaded`], on threads of their own, each with a single-threaded runtime,
//! handed out in turn by the accept loop (the edge's hit path: no work-stealing, no
//! cross-core wake-ups per request).
//!
//! A plain HTTP/1.1 connection (no TLS, not an h2 preface) is served by a series of
//! hyper connections and holds almost nothing while idle between requests: its
//! socket waits in the listener's parking lot, with no task (see `park.rs` for why
//! and how, `lot.rs` for the lot). Both accept loops park; ending the loop (dropping
//! its future) closes the parked connections. TLS and h2c connections use hyper's
//! auto builder for their whole life, except HTTP/1.1 over TLS (ALPN `http/1.1` or
//! none) when the handler has a quick path: hyper's HTTP/1.1 connections, as
//! `park::serve_tls_h1` runs them.
//!
//! Metrics: `mediamesh_http_connections_refused_total` (listener full),
//! `mediamesh_http_connections_refused_per_ip_total`,
//! `mediamesh_http_connections_closed_total{reason}` (`first_byte`, `tls_handshake`,
//! `no_request`, `idle`), `mediamesh_http_connections_parked` (gauge: idle plain
//! HTTP/1.1 connections parked outside hyper).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::rustls::ServerConfig;
use tracing::Instrument;

use crate::conn::closed;
use crate::conn::{Activity, ConnGuard, ConnLimits, GuardedIo, PerIp, TrackedBody};
pub use crate::listener::ServeLimits;
use crate::listener::{Shared, CLOSE_GRACE};
use crate::park;
use crate::quick::Quick;

/// What an HTTP/2 connection without TLS (h2c, prior knowledge) starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An accepted connection on its way to a connection thread (see [`serve_threaded`]).
struct Accepted {
    socket: std::net::TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
}

/// Serves `handler` on `listener` until the future is dropped. `tls` = HTTPS.
/// Per-connection bounds are [`ConnLimits::default`].
pub async fn serve<F, Fut, B>(
    listener: TcpListener,
    limits: ServeLimits,
    tls: Option<Arc<ServerConfig>>,
    handler: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = limits.conn.clone();
    serve_with(listener, limits, conn, tls, handler).await;
}

/// [`serve`] with per-connection bounds other than `limits.conn`.
pub async fn serve_with<F, Fut, B>(
    listener: TcpListener,
    limits: ServeLimits,
    conn: ConnLimits,
    tls: Option<Arc<ServerConfig>>,
    handler: F,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_on_runtime(listener, limits, conn, tls, handler, None).await;
}

/// [`serve_with`], with a quick path for plain HTTP/1.1.
async fn serve_on_runtime<F, Fut, B>(
    listener: TcpListener,
    limits: ServeLimits,
    conn: ConnLimits,
    tls: Option<Arc<ServerConfig>>,
    handler: F,
    quick: Option<Arc<dyn Quick>>,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let gate = Gate::new(&limits, &conn);
    let shared = Shared::new(limits, conn, tls, handler, quick, park::resumer);
    let _lot = shared.lot.close_on_drop();
    loop {
        let (socket, peer, guard) = gate.next(&listener).await;
        spawn_connection(socket, peer, guard, &shared);
    }
}

/// [`serve`] with the connections spread over `threads` threads of their own, each
/// running a single-threaded tokio runtime, as nginx spreads them over its worker
/// processes: the accept loop (on the caller's runtime) hands each new connection to
/// the next thread in turn, and a connection stays on its thread, so its requests'
/// wake-ups, timers and tasks (also those the handler spawns) never cross cores and no
/// work-stealing scheduler runs per request. `threads == 0` is [`serve`]; so is a
/// machine where the threads cannot be started (logged). Dropping the future ends the
/// threads, closing their connections.
///
/// `quick`: the handler's quick path for plain HTTP/1.1 requests it can answer at
/// once (see [`Quick`]); `None` serves every request through `handler`.
pub async fn serve_threaded<F, Fut, B>(
    listener: TcpListener,
    limits: ServeLimits,
    tls: Option<Arc<ServerConfig>>,
    threads: usize,
    handler: F,
    quick: Option<Arc<dyn Quick>>,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = limits.conn.clone();
    if threads == 0 {
        return serve_on_runtime(listener, limits, conn, tls, handler, quick).await;
    }
    let fallback = (
        limits.clone(),
        conn.clone(),
        tls.clone(),
        handler.clone(),
        quick.clone(),
    );
    let gate = Gate::new(&limits, &conn);
    let shared = Shared::new(limits, conn, tls, handler, quick, park::resumer);
    // Parked connections are closed when this future is dropped.
    let _lot = shared.lot.close_on_drop();
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
        let shared = shared.clone();
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|rt| {
                std::thread::Builder::new()
                    .name(format!("http-conn-{i}"))
                    .spawn(move || {
                        rt.block_on(conn_thread(rx, shared));
                    })
            });
        match started {
            Ok(_) => workers.push(tx),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start connection threads; serving on the shared runtime");
                drop(workers);
                let (limits, conn, tls, handler, quick) = fallback;
                return serve_on_runtime(listener, limits, conn, tls, handler, quick).await;
            }
        }
    }
    let mut next = 0;
    loop {
        let (socket, peer, guard) = gate.next(&listener).await;
        let socket = match socket.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "accepted socket lost");
                continue;
            }
        };
        // A thread whose runtime is gone (it cannot be, but if) is skipped.
        let mut job = Accepted {
            socket,
            peer,
            guard,
        };
        for _ in 0..workers.len() {
            next = (next + 1) % workers.len();
            match workers[next].send(job) {
                Ok(()) => break,
                Err(tokio::sync::mpsc::error::SendError(back)) => job = back,
            }
        }
    }
}

/// One connection thread of [`serve_threaded`]: serves what the accept loop hands it
/// until the loop is gone.
async fn conn_thread<F, Fut, B>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    shared: Arc<Shared<F>>,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    while let Some(Accepted {
        socket,
        peer,
        guard,
    }) = rx.recv().await
    {
        let socket = match TcpStream::from_std(socket) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot register an accepted socket");
                continue;
            }
        };
        spawn_connection(socket, peer, guard, &shared);
    }
}

/// Spawns the task of one accepted connection on the current runtime, in a span of
/// its own (`conn`, with the peer address).
fn spawn_connection<F, Fut, B>(
    socket: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
    shared: &Arc<Shared<F>>,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let span = tracing::info_span!("conn", %peer);
    tokio::spawn(connection(socket, peer, guard, shared.clone()).instrument(span));
}

/// The listener's admission: the connection cap and the per-address cap.
struct Gate {
    permits: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
}

impl Gate {
    fn new(limits: &ServeLimits, conn: &ConnLimits) -> Self {
        Gate {
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_ip: PerIp::new(conn.max_connections_per_ip),
        }
    }

    /// The next connection within the caps (TCP_NODELAY set) with its slots.
    async fn next(&self, listener: &TcpListener) -> (TcpStream, SocketAddr, ConnGuard) {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                ::metrics::counter!("mediamesh_http_connections_refused_total").increment(1);
                drop(socket);
                continue;
            };
            let Some(ip_slot) = self.per_ip.acquire(peer.ip()) else {
                ::metrics::counter!("mediamesh_http_connections_refused_per_ip_total").increment(1);
                tracing::debug!(%peer, "connection refused: per-IP cap reached");
                drop(socket);
                continue;
            };
            let _ = socket.set_nodelay(true);
            let guard = ConnGuard {
                _permit: permit,
                _ip: ip_slot,
            };
            return (socket, peer, guard);
        }
    }
}

/// One connection, from the first byte to its end.
pub(crate) async fn connection<F, Fut, B>(
    socket: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
    shared: Arc<Shared<F>>,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Activity::new();
    // hyper's header timer starts only once bytes arrive (and the h2c sniff before
    // it waits forever), so the first byte has its own deadline.
    let plain_h1 = {
        let mut probe = [0u8; H2_PREFACE.len()];
        let first_byte = shared.conn.first_byte_timeout;
        match tokio::time::timeout(first_byte, socket.peek(&mut probe)).await {
            // Plain HTTP/1.1 (the first bytes cannot start an h2 preface) is parked
            // between requests (see `park`); h2c, what may yet become an h2 preface,
            // and TLS go to hyper's auto builder.
            Ok(Ok(n)) if n > 0 => shared.tls.is_none() && !H2_PREFACE.starts_with(&probe[..n]),
            Ok(_) => return, // closed or failed before sending anything
            Err(_) => return closed("first_byte"),
        }
    };
    if plain_h1 {
        // Not boxed: a parked connection is this task (and its socket) and nothing
        // more; `serve_h1` boxes what it needs only while a request is served. (The
        // future is made in a statement of its own: its arguments are not kept.)
        let h1 = park::serve_h1(
            park::ParkIo::new(
                GuardedIo::new(socket, guard),
                activity,
                shared.quick_for(peer),
            ),
            peer,
            shared,
        );
        h1.await;
        return;
    }
    // Boxed: a connection waiting for its first byte stays a small task.
    let rest = Box::pin(tls_or_h2(
        GuardedIo::new(socket, guard),
        peer,
        activity,
        shared,
    ));
    rest.await;
}

/// A TLS connection, or an h2c one (or one that may yet send an h2 preface), for
/// its whole life.
async fn tls_or_h2<F, Fut, B>(
    io: GuardedIo<TcpStream>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared<F>>,
) where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match &shared.tls {
        Some(acceptor) => {
            let handshake = Box::pin(acceptor.accept(io));
            match tokio::time::timeout(shared.limits.header_read_timeout, handshake).await {
                Ok(Ok(stream)) => {
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    match shared.quick_for(peer) {
                        // HTTP/1.1 over TLS takes the quick path too, served by
                        // hyper's HTTP/1.1 connections (never parked).
                        Some(quick) if !h2 => {
                            let io = park::ParkIo::new(stream, activity, Some(quick));
                            park::serve_tls_h1(io, peer, shared).await
                        }
                        _ => http(stream, peer, activity, &shared).await,
                    }
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => closed("tls_handshake"),
            }
        }
        None => http(io, peer, activity, &shared).await,
    }
}

/// HTTP/1.1 or h2 over `io`, closed by the watchdog when it stays silent.
async fn http<I, F, Fut, B>(
    io: I,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: &Arc<Shared<F>>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (limits, conn) = (&shared.limits, &shared.conn);
    let max_head = limits.max_header_bytes.max(8192);
    let (a, s) = (activity.clone(), shared.clone());
    // HTTP/1.1 requests had their chance at the quick path in `ParkIo`, under hyper;
    // h2 ones have it here, before the handler (`quick.rs`).
    let quick = shared.quick_for(peer);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = a.begin();
        let answered = match &quick {
            Some(q) if req.version() == hyper::Version::HTTP_2 => {
                crate::quick::answer_h2(&*q.quick, &req, peer)
            }
            _ => None,
        };
        let handled = match answered {
            Some(resp) => Err(resp),
            None => Ok((s.handler)(req, peer)),
        };
        async move {
            let resp = match handled {
                Ok(fut) => fut.await.map(Either::Left),
                Err(resp) => resp.map(Either::Right),
            };
            Ok::<_, Infallible>(resp.map(|b| TrackedBody::new(b, in_flight)))
        }
    });
    // h2 streams are polled once where they arrive (`exec.rs`).
    let mut builder = auto::Builder::new(crate::exec::PollFirst);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(max_head)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(conn.h2_ping_interval))
        .keep_alive_timeout(conn.h2_ping_timeout);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        r = connection.as_mut() => r,
        why = activity.expired(shared.no_request(), conn.idle_timeout) => {
            closed(why.label());
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(CLOSE_GRACE, connection.as_mut()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// What a parked connection's task holds is the `connection` future (with
    /// `park::serve_h1` inline): it must not grow back to hyper's size (hyper's connection
    /// inline, or kept in a moved-from box, was 2 KB and more per connection).
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _c = TcpStream::connect(addr).await.unwrap();
        let (s, peer) = l.accept().await.unwrap();
        let guard = ConnGuard {
            _permit: Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap(),
            _ip: PerIp::new(1).acquire(peer.ip()).unwrap(),
        };
        let shared = Shared::new(
            crate::ServeLimits::default(),
            crate::ConnLimits::default(),
            None,
            |_r: Request<Incoming>, _p| async { Response::new(String::new()) },
            None,
            park::resumer,
        );
        let c = connection(s, peer, guard, shared);
        let size = std::mem::size_of_val(&c);
        eprintln!("connection future: {size} bytes");
        assert!(size <= 1536, "the connection future is {size} bytes");
    }
}
