//! What one accepted connection holds and how long it may hold it: the guard that
//! owns its slots (the listener's connection permit and its address's share of the
//! per-IP cap), the IO wrapper that carries that guard for as long as the socket
//! lives (through an HTTP/1.1 upgrade too, so a WebSocket keeps its slot), and the
//! watchdog that closes a connection which never sends a request or sits idle
//! between requests.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit};

/// Per-connection bounds of one listener: how long a connection may stay silent, and
/// how many connections one address may hold. Complements [`crate::ServeLimits`].
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// Time from accept to the first byte (the TLS ClientHello or the request line).
    /// A socket that sends nothing is closed after this.
    pub first_byte_timeout: Duration,
    /// Time a connection may sit with no request in flight (HTTP/1.1 keep-alive
    /// between requests, an HTTP/2 connection with no open stream) before it is
    /// closed (h2: GOAWAY).
    pub idle_timeout: Duration,
    /// Connections one client address may hold at once; IPv6 addresses count by
    /// their /64. Loopback is not exempt. Upgraded connections (WebSockets) count
    /// for as long as they are open.
    pub max_connections_per_ip: usize,
    /// HTTP/2: how often to PING a connection that sent nothing.
    pub h2_ping_interval: Duration,
    /// HTTP/2: how long to wait for the PING's answer before closing.
    pub h2_ping_timeout: Duration,
    /// Plain HTTP/1.1: how long a connection stays idle with hyper's state (about
    /// 20 KiB) before it is parked and holds about 0.25 KiB, in the listener's parking
    /// lot (`park.rs`, `lot.rs`). Zero parks at
    /// once, as nginx frees its buffers; a little more keeps requests that follow
    /// each other closely from rebuilding hyper's connection each time.
    pub park_after: Duration,
}

impl Default for ConnLimits {
    /// 10 s to the first byte, 60 s idle, 1024 connections per address (high enough
    /// for the many-viewers-from-loopback benchmarks and tests; lower it where
    /// clients are known to be spread out), h2 PING every 30 s with 20 s to answer,
    /// idle HTTP/1.1 connections parked after 100 ms.
    fn default() -> Self {
        Self {
            first_byte_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections_per_ip: 1024,
            h2_ping_interval: Duration::from_secs(30),
            h2_ping_timeout: Duration::from_secs(20),
            park_after: Duration::from_millis(100),
        }
    }
}

impl ConnLimits {
    /// Sets [`ConnLimits::first_byte_timeout`].
    pub fn first_byte_timeout(mut self, d: Duration) -> Self {
        self.first_byte_timeout = d;
        self
    }

    /// Sets [`ConnLimits::idle_timeout`].
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Sets [`ConnLimits::park_after`].
    pub fn park_after(mut self, d: Duration) -> Self {
        self.park_after = d;
        self
    }

    /// Sets [`ConnLimits::max_connections_per_ip`].
    pub fn max_connections_per_ip(mut self, n: usize) -> Self {
        self.max_connections_per_ip = n;
        self
    }
}

/// The part of a client address that the per-IP cap counts by: the whole IPv4
/// address (also when it arrives IPv4-mapped), the /64 of an IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpKey {
    V4(u32),
    V6Prefix64(u64),
}

impl IpKey {
    pub fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey::V4(u32::from(v4)),
                None => IpKey::V6Prefix64((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Open connections per [`IpKey`]. Entries are removed at zero, so the table never
/// holds more keys than the listener holds connections. The HTTP accept loop uses it;
/// other listeners (RTMP) may too.
#[derive(Debug)]
pub struct PerIp {
    max: usize,
    counts: Mutex<HashMap<IpKey, usize>>,
}

impl PerIp {
    /// A table allowing `max` connections per address (at least 1).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(PerIp {
            max: max.max(1),
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one slot for `ip`, or `None` when its share is used up.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let key = IpKey::of(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// One address's slot; given back on drop.
#[derive(Debug)]
pub struct IpSlot {
    table: Arc<PerIp>,
    key: IpKey,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self
            .table
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Everything a connection holds against the listener's bounds; dropping it gives
/// the slots back.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    pub(crate) _permit: OwnedSemaphorePermit,
    pub(crate) _ip: IpSlot,
}

/// The socket with its [`ConnGuard`]. hyper moves the IO into the `Upgraded` value on
/// an HTTP/1.1 upgrade, so the guard lives exactly as long as the socket, WebSocket
/// or not.
pub(crate) struct GuardedIo<S> {
    io: S,
    _guard: ConnGuard,
}

impl<S> GuardedIo<S> {
    pub(crate) fn new(io: S, guard: ConnGuard) -> Self {
        GuardedIo { io, _guard: guard }
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.io
    }

    /// The socket and its slots, apart (to park the socket outside the runtime and
    /// keep the slots with it, `park.rs`).
    pub(crate) fn into_parts(self) -> (S, ConnGuard) {
        (self.io, self._guard)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

/// Writes go out by `send` and `sendmsg`, not by tokio's `write` and `writev`: those
/// pass through the kernel's file layer (`vfs_writev`, its checks and file-change
/// notification), which touches more of each connection's kernel state than the
/// socket calls do. Sampled with `perf` under `wrk -t2 -c1000` (1 KB answers), the
/// system call's own share outside `tcp_sendmsg` fell from 5.1 % to 2.1 % of the
/// server's time over TLS (one record per answer, one slice: `send`) and from 6.6 %
/// to 4.4 % on plain HTTP (head and body: `sendmsg`, in one call as by `writev`).
impl AsyncWrite for GuardedIo<TcpStream> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // tokio's `poll_write` is `send` already.
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let [one] = bufs {
            return Pin::new(&mut self.io).poll_write(cx, one);
        }
        let socket = &self.io;
        loop {
            std::task::ready!(socket.poll_write_ready(cx))?;
            let sent = socket.try_io(Interest::WRITABLE, || {
                rustix::net::sendmsg(
                    socket,
                    bufs,
                    &mut rustix::net::SendAncillaryBuffer::default(),
                    rustix::net::SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            });
            match sent {
                // The readiness was stale and is cleared: wait for the next.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Why the watchdog closed a connection (the `reason` label of
/// `mediamesh_http_connections_closed_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expired {
    /// Accepted (and past the first byte) but no request head completed in time.
    NoRequest,
    /// No request in flight for the idle timeout.
    Idle,
}

impl Expired {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Expired::NoRequest => "no_request",
            Expired::Idle => "idle",
        }
    }
}

/// Requests in flight on one connection and when the last one ended.
///
/// The end of a request wakes the watchdog only while it waits for the requests in
/// flight to end (`waiting`); otherwise the watchdog sleeps until its deadline and
/// then re-reads the state, so a keep-alive connection costs no task wake-up and no
/// timer reset per request.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    started: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` when the last request ended.
    last_done_ms: AtomicU64,
    /// The watchdog waits on `done` for `in_flight` to reach zero.
    waiting: AtomicBool,
    /// The connection has lingered idle long enough to be parked (`park.rs`).
    park_asked: AtomicBool,
    done: Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            started: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            park_asked: AtomicBool::new(false),
            done: Notify::new(),
        })
    }

    /// The state of a connection that was parked in the lot (`park.rs`) and woke: its
    /// watchdog keeps the deadline it had, as [`Activity::idle_since`] gave it.
    pub(crate) fn resumed(since: Instant, started: bool) -> Arc<Self> {
        Arc::new(Activity {
            start: since,
            started: AtomicBool::new(started),
            in_flight: AtomicUsize::new(0),
            last_done_ms: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            park_asked: AtomicBool::new(false),
            done: Notify::new(),
        })
    }

    /// Where the idle deadline of a connection with no request in flight counts from,
    /// and whether a request came: (the end of the last request, true), or (the
    /// accept, false) before the first. [`Activity::resumed`] takes it back.
    pub(crate) fn idle_since(&self) -> (Instant, bool) {
        if self.started.load(Ordering::SeqCst) {
            let last = self.last_done_ms.load(Ordering::Acquire);
            (self.start + Duration::from_millis(last), true)
        } else {
            (self.start, false)
        }
    }

    /// A request head arrived; the returned token ends it when dropped (with the
    /// response body, so a long download is not idle).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.note_start();
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// A request that began and ended at once (a quick answer the socket took
    /// whole): as [`Activity::begin`] and the drop of its token, without them.
    pub(crate) fn answered(&self) {
        self.note_start();
        self.note_end();
        self.wake_watchdog();
    }

    /// The connection has had a request (written once, then only read).
    fn note_start(&self) {
        if !self.started.load(Ordering::Relaxed) {
            // SeqCst: the watchdog sets `waiting` and then reads this (see `expired`).
            self.started.store(true, Ordering::SeqCst);
        }
    }

    /// The time of the last end moves on to now. A later end never moves it back
    /// (h2 streams end in any order); most ends fall in the millisecond of the one
    /// before, and write nothing.
    fn note_end(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        if ms > self.last_done_ms.load(Ordering::Relaxed) {
            self.last_done_ms.fetch_max(ms, Ordering::Release);
        }
    }

    /// Only a watchdog waiting for an end needs waking (see `Activity`).
    fn wake_watchdog(&self) {
        if self.waiting.load(Ordering::SeqCst) {
            self.done.notify_waiters();
        }
    }

    /// Requests in flight now (a response being sent counts).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Resolves once no request has been in flight for `linger` (counted from the
    /// end of the last one, or from the start). While requests keep coming it wakes
    /// once per `linger`, never per request.
    pub(crate) async fn lingered(&self, linger: Duration) {
        let mut last = self.last_done_ms.load(Ordering::Acquire);
        let mut at = self.start + Duration::from_millis(last) + linger;
        loop {
            tokio::time::sleep_until(at.into()).await;
            let now_last = self.last_done_ms.load(Ordering::Acquire);
            let busy = self.in_flight.load(Ordering::SeqCst) > 0;
            if !busy && now_last == last {
                return;
            }
            last = now_last;
            at = if busy {
                Instant::now() + linger
            } else {
                self.start + Duration::from_millis(last) + linger
            };
        }
    }

    /// Lets the connection be parked at its next idle moment (see `park.rs`).
    pub(crate) fn ask_park(&self) {
        self.park_asked.store(true, Ordering::Relaxed);
    }

    pub(crate) fn park_asked(&self) -> bool {
        self.park_asked.load(Ordering::Relaxed)
    }

    pub(crate) fn clear_park(&self) {
        self.park_asked.store(false, Ordering::Relaxed);
    }

    /// Resolves when the connection has been silent too long: no request by
    /// `no_request` after accept, or no request in flight for `idle`.
    pub(crate) async fn expired(&self, no_request: Duration, idle: Duration) -> Expired {
        loop {
            if !self.started.load(Ordering::SeqCst) {
                // Until the first request the end of one wakes the watchdog (as when
                // it waits for requests in flight), so idle time counts from there.
                let done = self.done.notified();
                tokio::pin!(done);
                done.as_mut().enable();
                self.waiting.store(true, Ordering::SeqCst);
                let mut timed_out = false;
                if !self.started.load(Ordering::SeqCst) {
                    tokio::select! {
                        () = tokio::time::sleep_until((self.start + no_request).into()) => {
                            timed_out = true;
                        }
                        () = &mut done => {}
                    }
                }
                self.waiting.store(false, Ordering::SeqCst);
                if timed_out && !self.started.load(Ordering::SeqCst) {
                    return Expired::NoRequest;
                }
                continue;
            }
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                // Registered before `waiting` is set and the count read again, so an
                // end in between is not lost (the ender reads `waiting` after its
                // decrement; SeqCst on both sides).
                let done = self.done.notified();
                tokio::pin!(done);
                done.as_mut().enable();
                self.waiting.store(true, Ordering::SeqCst);
                if self.in_flight.load(Ordering::SeqCst) > 0 {
                    done.await;
                }
                self.waiting.store(false, Ordering::SeqCst);
                continue;
            }
            let last = self.last_done_ms.load(Ordering::Acquire);
            let deadline = self.start + Duration::from_millis(last) + idle;
            tokio::time::sleep_until(deadline.into()).await;
            if self.in_flight.load(Ordering::SeqCst) == 0
                && self.last_done_ms.load(Ordering::Acquire) == last
            {
                return Expired::Idle;
            }
            // Requests came (and maybe went) meanwhile: look again.
        }
    }
}

/// One request in flight; ends on drop.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        // The end's time first: a watchdog that sees no request in flight reads it.
        a.note_end();
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
        a.wake_watchdog();
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it is sent or dropped.
    pub(crate) struct TrackedBody<B> {
        #[pin]
        inner: B,
        _in_flight: InFlight,
    }
}

impl<B> TrackedBody<B> {
    pub(crate) fn new(inner: B, in_flight: InFlight) -> Self {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a connection the server closed, by reason.
pub(crate) fn closed(reason: &'static str) {
    ::metrics::counter!("mediamesh_http_connections_closed_total", "reason" => reason).increment(1);
    tracing::debug!(reason, "connection closed by the server");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_keys_group_ipv6_by_64_and_unmap_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(IpKey::of(a), IpKey::of(b));
        assert_ne!(IpKey::of(a), IpKey::of(c));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(IpKey::of(v4), IpKey::of(mapped));
    }

    #[test]
    fn per_ip_slots_are_capped_and_entries_removed_at_zero() {
        let t = PerIp::new(2);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let same64: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let s1 = t.acquire(ip).unwrap();
        let s2 = t.acquire(same64).unwrap();
        assert!(t.acquire(ip).is_none(), "third from the same /64");
        let s3 = t.acquire(other).unwrap();
        assert_eq!(t.tracked(), 2);
        drop(s1);
        let s4 = t.acquire(ip).unwrap();
        drop((s2, s3, s4));
        assert_eq!(t.tracked(), 0, "no entry left at zero");
    }
}
