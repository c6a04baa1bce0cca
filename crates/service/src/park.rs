//! Plain HTTP/1.1 connections that hold almost nothing while idle between requests
//! ("parked"), as nginx frees its request buffers on an idle keep-alive connection.
//!
//! Why this works around hyper: a hyper 1.x HTTP/1 connection keeps its whole state
//! for as long as the connection lives, also while it only waits for the next
//! request: an 8 KiB read buffer (reserved at the first read), an 8 KiB header write
//! buffer, the dispatcher's boxes and the header timer, none of it configurable
//! away; and the connection task's future held hyper's connection inline. At 10,000
//! idle keep-alive connections that was 27 KB per connection against nginx's 0.5 KB;
//! parked in a task, 2.2 KB; parked in the lot (below), 0.24 KB (`bench/edge_conns.sh`
//! at `--park-after 0`; see bench/README.md, also for what the default linger costs).
//!
//! So a plain HTTP/1.1 connection is served by a *series* of hyper connections over
//! one socket. Once a connection has lingered idle for
//! [`crate::ConnLimits::park_after`] (100 ms by default, so that requests following
//! each other closely keep their hyper connection), [`ParkIo`],
//! the IO under hyper, reports end-of-stream to hyper at a moment when the connection
//! is idle: no request in flight (its response body sent or dropped),
//! everything hyper wrote flushed, every byte hyper read part of a complete request
//! ([`Framing`] follows the request framing of those bytes), and the socket has
//! nothing more to read. hyper then ends its connection cleanly (an end-of-stream
//! between requests is a normal close to it; its responses are already out, so none
//! gets `Connection: close`), [`ParkIo`] turns the shutdown that follows into a no-op,
//! and [`serve_h1`] takes the socket back with `into_parts` and drops all of hyper's
//! state. Bytes hyper read but did not use (none, by construction, but hyper may say
//! otherwise) are replayed to the next hyper connection at once. hyper's header-read
//! timeout therefore runs from the first byte of each request, and the time between
//! requests is the idle timeout's alone.
//!
//! The connection then waits in its task for [`TO_LOT_AFTER`] (20 ms), and if no
//! byte came, its socket goes to the listener's *parking lot* (`lot.rs`) and the
//! connection's task ends. (The moment in the task is for clients that send their
//! next request right after an answer: through the lot, each such request cost a
//! few more system calls and two hops between threads, which halved the request
//! rate of `wrk` against `--park-after 0`.) Why: even with hyper's state gone, a task waiting on the
//! socket held about 2.2 KB per connection (the task and its future 1.4 KB, tokio's
//! I/O registration 256 B, the connection's tracing span about 400 B, the watchdog's
//! record 88 B), four times nginx's 0.5 KB for an idle keep-alive connection. tokio
//! has no way to wait on a socket without a task and a registration, and a span lives
//! as long as the future it instruments. So the socket leaves tokio
//! (`TcpStream::into_std` deregisters it and frees the registration), and the lot
//! keeps only a compact entry: the std socket, its slots ([`crate::conn::ConnGuard`],
//! so a parked connection still counts against `--max-connections` and
//! `--max-connections-per-ip`), the peer address, the runtime to return to, and the
//! watchdog's deadline (`Activity::idle_since`: the end of the last request, so the
//! time parked counts against the idle timeout exactly as before; the watchdog record
//! is rebuilt from it with `Activity::resumed`). One thread per listener waits on all
//! parked sockets with an epoll of its own (mio's `Poll`, the one under tokio) and
//! the earliest deadline. A readable socket (the next request, or the client's close)
//! leaves the lot: the thread spawns [`resume`] on the connection's runtime, which
//! registers the socket with tokio again and goes on with [`serve_h1`], in a new
//! `conn` span with the same fields (the span is per serving episode, not per
//! connection: a log line of the second request of a connection carries the same
//! `peer`, but it is not the same span). A deadline passed closes the connection
//! (counted as `idle` or `no_request`, as the watchdog would), and the accept loop's
//! end closes the lot and every connection in it. Should the lot's thread fail to
//! start, a parked connection waits in its task as before.
//!
//! The price: a request after a pause builds a new hyper connection (its buffers
//! and boxes), and every request head is parsed twice (here with httparse, as hyper
//! does, to follow the framing). A request on a parked connection also costs a few
//! more system calls (out of the lot's epoll and into tokio's again) and one hop
//! between threads; with the default linger, only requests after a pause pay it.
//!
//! With a quick path (`quick.rs`), a connection begins each stretch with no hyper
//! connection at all: [`serve_quick`] reads into one buffer per thread, answers the
//! quick requests there (each head made in another buffer per thread; only what the
//! socket does not take at once is kept with the connection), and hands hyper a
//! connection (and the bytes, replayed) only when a request is not quick. It
//! lingers and parks as hyper's connections do. Its
//! timers (the watchdog, the linger) are polled only when they woke the task
//! (`gate.rs`), not at every request.
//!
//! What it is not: TLS and HTTP/2 connections are not parked (they take the
//! `auto::Builder` path in `serve.rs` as before, except HTTP/1.1 over TLS with a
//! quick path: [`serve_tls_h1`] serves it over a [`ParkIo`] that never parks, only
//! refreshes hyper's connection as `quick.rs` explains); a connection on which a request
//! carried `Transfer-Encoding` (a chunked body) or asked for an upgrade (WebSocket,
//! `CONNECT`) is not parked again for the rest of its current hyper connection, which
//! then lives as before (an upgraded socket is no longer HTTP at all).
//!
//! Metric: `mediamesh_http_connections_parked` (gauge: plain HTTP/1.1 connections
//! parked right now, in the lot or, without one, in their tasks).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::Instrument;

use crate::conn::{closed, Activity, Expired, GuardedIo, InFlight, TrackedBody};
use crate::gate::Gated;
use crate::listener::{Shared, CLOSE_GRACE};
use crate::lot::{Parked, Resume};
use crate::quick::{BodyFile, Quick, QuickSide};
use crate::sendfile::SendFile;

/// Request heads longer than this are not followed (hyper answers 431 and closes;
/// the tracker gives up and the connection is simply not parked).
const MAX_FOLLOWED_HEAD: usize = 64 * 1024;

/// How long a parked connection waits in its task before its socket goes to the lot
/// (see the module doc): long enough for a client that sends its next request right
/// after an answer (a load generator, a pipeline of segment fetches), short enough
/// that few connections hold a task at any moment.
const TO_LOT_AFTER: Duration = Duration::from_millis(20);

/// hyper's own limit on request header fields (`DEFAULT_MAX_HEADERS`); more and
/// hyper answers 431 (and [`Framing`] gives up on the connection).
const MAX_HEADERS: usize = 100;

/// Where the bytes hyper has read so far end, in the request stream.
#[derive(Debug, Default)]
pub struct Framing {
    state: FramingState,
    /// A request head split across reads, kept until it is complete (then freed).
    head: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum FramingState {
    /// Between requests (or inside a head that `head` holds).
    #[default]
    Head,
    /// Inside a request body with this many bytes to come.
    Body(u64),
    /// Not followed any more (chunked body, upgrade, unparseable head): never at a
    /// boundary.
    Opaque,
}

/// What a complete request head says about what follows it.
enum HeadEnd {
    /// `len` bytes of head, then `body` bytes of body.
    Framed { len: usize, body: u64 },
    /// Not followed: see [`FramingState::Opaque`].
    Opaque,
}

impl Framing {
    /// True when the bytes seen so far end exactly after a complete request (head and
    /// body), or when none were seen.
    pub fn at_boundary(&self) -> bool {
        self.state == FramingState::Head && self.head.is_empty()
    }

    /// Follows `data`, the next bytes hyper read: true if a request head ended in
    /// them.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        let mut ended = false;
        while !data.is_empty() {
            match self.state {
                FramingState::Opaque => return ended,
                FramingState::Body(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = &data[take..];
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        FramingState::Head
                    } else {
                        FramingState::Body(left)
                    };
                }
                FramingState::Head if self.head.is_empty() => match parse_head(data) {
                    Some(HeadEnd::Framed { len, body }) => {
                        data = &data[len..];
                        self.state = body_state(body);
                        ended = true;
                    }
                    Some(HeadEnd::Opaque) => return self.give_up(true),
                    None => {
                        if data.len() > MAX_FOLLOWED_HEAD {
                            return self.give_up(ended);
                        }
                        self.head.extend_from_slice(data);
                        return ended;
                    }
                },
                FramingState::Head => {
                    let had = self.head.len();
                    if had + data.len() > MAX_FOLLOWED_HEAD {
                        return self.give_up(ended);
                    }
                    self.head.extend_from_slice(data);
                    match parse_head(&self.head) {
                        Some(HeadEnd::Framed { len, body }) => {
                            // The head ends inside `data` (it was partial without it).
                            data = &data[len.saturating_sub(had)..];
                            self.head = Vec::new();
                            self.state = body_state(body);
                            ended = true;
                        }
                        Some(HeadEnd::Opaque) => return self.give_up(true),
                        None => return ended,
                    }
                }
            }
        }
        ended
    }

    /// Stops following; `ended` is passed through (an opaque head is a whole one to
    /// hyper, or one it rejects).
    fn give_up(&mut self, ended: bool) -> bool {
        self.state = FramingState::Opaque;
        self.head = Vec::new();
        ended
    }
}

fn body_state(body: u64) -> FramingState {
    if body == 0 {
        FramingState::Head
    } else {
        FramingState::Body(body)
    }
}

/// Parses one request head at the start of `buf` as hyper does (httparse, default
/// leniency): `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Option<HeadEnd> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(HeadEnd::Opaque),
    };
    if req.method == Some("CONNECT") {
        return Some(HeadEnd::Opaque);
    }
    let mut body: Option<u64> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            || h.name.eq_ignore_ascii_case("upgrade")
        {
            return Some(HeadEnd::Opaque);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                return Some(HeadEnd::Opaque);
            };
            if body.is_some_and(|b| b != n) {
                return Some(HeadEnd::Opaque);
            }
            body = Some(n);
        }
    }
    Some(HeadEnd::Framed {
        len,
        body: body.unwrap_or(0),
    })
}

/// The socket under one plain HTTP/1.1 connection's hyper connections: tells hyper
/// "end of stream" when the connection is idle (see the module doc), replays bytes a
/// previous hyper connection read but did not use, and answers quick requests
/// (`quick.rs`). HTTP/1.1 over TLS uses it for the quick path only: nothing asks
/// such a connection to park, but it is given a new hyper connection in time, as
/// quick answers need (see [`QuickSide::refresh_after`]).
pub(crate) struct ParkIo<I = GuardedIo<TcpStream>> {
    io: I,
    /// Given to hyper before anything is read from the socket.
    replay: Bytes,
    framing: Framing,
    activity: Arc<Activity>,
    /// hyper wrote since its last completed flush.
    dirty: bool,
    /// This hyper connection was told "end of stream" to park the socket (or to
    /// give it a new hyper connection: `refresh`).
    parked: bool,
    /// This hyper connection is to end at the next moment between requests (it has
    /// gone long without a head of its own, see [`QuickSide::refresh_after`]).
    refresh: bool,
    /// When this hyper connection began, or last read a request head: hyper's
    /// header-read timer was armed no earlier.
    hyper_head_at: Instant,
    /// The handler's quick path (`quick.rs`), if it has one.
    quick: Option<QuickSide>,
    /// A quick answer being written (kept while the socket takes it), allocated at the
    /// first quick answer and reused.
    out: Option<Box<QuickOut>>,
}

/// A quick answer on its way out: its head (the buffer is reused for the next one)
/// and body, what of them was written, and the request's in-flight mark, dropped
/// when the last byte is written (hyper's requests end when their body is sent).
#[derive(Default)]
struct QuickOut {
    head: Vec<u8>,
    head_sent: usize,
    /// What of the body is left to write (also when it goes from `file`).
    body: Bytes,
    /// The file the body is sent from, at the offset of what is left.
    file: Option<BodyFile>,
    /// The socket's unsent mark is set for `file` (`sendfile.rs`), to lift after.
    marked: bool,
    in_flight: Option<InFlight>,
}

/// The quick answer head buffer a connection (for the part of a head its socket did
/// not take at once) or a thread ([`HEAD`]) keeps between answers, at most (a head
/// of many or long fields grows it past this; that buffer is freed once written).
const KEEP_OUT: usize = 4 * 1024;

/// Quick answers made in one read before the connection lets its runtime run other
/// tasks (a client pipelining quick requests for ever must not hold the thread).
const QUICK_PER_READ: usize = 32;

impl<I: AsyncRead + AsyncWrite + SendFile + Unpin> ParkIo<I> {
    pub(crate) fn new(io: I, activity: Arc<Activity>, quick: Option<QuickSide>) -> Self {
        ParkIo {
            io,
            replay: Bytes::new(),
            framing: Framing::default(),
            activity,
            dirty: false,
            parked: false,
            refresh: false,
            hyper_head_at: Instant::now(),
            quick,
            out: None,
        }
    }

    /// Between requests: nothing in flight, everything written (by hyper and by the
    /// quick path) flushed, every byte read part of a complete request.
    fn between_requests(&self) -> bool {
        !self.dirty
            && !self.writing_quick()
            && self.framing.at_boundary()
            && self.activity.in_flight() == 0
    }

    /// Time to tell hyper "end of stream": between requests, and parking was asked
    /// for or this hyper connection is to be refreshed.
    fn idle(&self) -> bool {
        self.between_requests() && (self.refresh || self.activity.park_asked())
    }

    /// Gives `data` to hyper's side of the framing; a head ending in it restarts
    /// hyper's header-read timer, and so the time until a refresh.
    fn feed_hyper(&mut self, data: &[u8]) {
        if self.framing.feed(data) {
            self.hyper_head_at = Instant::now();
        }
    }

    /// A quick answer is still being written.
    fn writing_quick(&self) -> bool {
        self.out.as_ref().is_some_and(|o| o.in_flight.is_some())
    }

    /// Whether the next bytes may be a quick request.
    fn quick_ready(&self) -> bool {
        self.quick.is_some() && self.between_requests()
    }

    /// Writes what is left of the quick answer; `Ready(Ok)` once it is all written.
    fn poll_quick_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(out) = self.out.as_deref_mut() else {
            return Poll::Ready(Ok(()));
        };
        while out.in_flight.is_some() {
            let head = &out.head[out.head_sent..];
            if head.is_empty() && out.body.is_empty() {
                out.in_flight = None;
                out.body = Bytes::new();
                out.file = None;
                if out.marked {
                    out.marked = false;
                    self.io.set_unsent_mark(0);
                }
                if out.head.capacity() > KEEP_OUT {
                    // A large answer's buffer is not kept for the connection's life.
                    out.head = Vec::new();
                }
                break;
            }
            let written = match &mut out.file {
                // The head alone, then the body from its file (`sendfile.rs`).
                Some(_) if !head.is_empty() => Pin::new(&mut self.io).poll_write(cx, head),
                Some(file) => {
                    if !out.marked {
                        out.marked = true;
                        self.io.set_unsent_mark(crate::sendfile::UNSENT_MARK);
                    }
                    let sent =
                        self.io
                            .poll_send_file(cx, file.fd.as_fd(), file.offset, out.body.len());
                    if let Poll::Ready(Ok(n)) = sent {
                        file.offset += n as u64;
                    }
                    sent
                }
                None => {
                    let bufs = [io::IoSlice::new(head), io::IoSlice::new(&out.body)];
                    Pin::new(&mut self.io).poll_write_vectored(cx, &bufs)
                }
            };
            let n = match written {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let from_head = n.min(head.len());
            out.head_sent += from_head;
            out.body.advance(n - from_head);
        }
        Poll::Ready(Ok(()))
    }

    /// Answers the quick requests at the start of `data` (bytes just read, at a
    /// request boundary with hyper idle), as far as they go and each answer's bytes
    /// are taken by the socket: the number of bytes used. Stops at the first request
    /// that is not quick, or while an answer is still being written.
    fn answer_quick(&mut self, cx: &mut Context<'_>, data: &[u8]) -> io::Result<usize> {
        // Taken out for the call and put back (no reference count moves per answer).
        let Some(side) = self.quick.take() else {
            return Ok(0);
        };
        let r = self.answer_quick_with(cx, data, &side);
        self.quick = Some(side);
        r
    }

    fn answer_quick_with(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
        side: &QuickSide,
    ) -> io::Result<usize> {
        let QuickSide { quick, peer, .. } = side;
        let mut used = 0;
        for _ in 0..QUICK_PER_READ {
            if used == data.len() || self.writing_quick() {
                break;
            }
            let answered = HEAD.with_borrow_mut(|head| {
                let r = self.answer_one(cx, &**quick, &data[used..], *peer, head);
                if head.capacity() > KEEP_OUT {
                    // A head of many or long fields: its buffer is not kept.
                    *head = Vec::new();
                }
                r
            })?;
            match answered {
                Some(n) => used += n,
                None => break,
            }
        }
        Ok(used)
    }

    /// One quick answer to the request at the start of `data`, its head made in
    /// `head` (the thread's buffer, [`HEAD`]) and written at once as far as the
    /// socket takes it; only what it does not take is copied to the connection's
    /// [`QuickOut`], to be written when it can. The bytes of `data` used, or `None`
    /// when the request is not quick.
    fn answer_one(
        &mut self,
        cx: &mut Context<'_>,
        quick: &dyn Quick,
        data: &[u8],
        peer: SocketAddr,
        head: &mut Vec<u8>,
    ) -> io::Result<Option<usize>> {
        let Some(a) = crate::quick::answer(quick, data, peer, head) else {
            return Ok(None);
        };
        let mut body = a.body.bytes;
        // Sent from its file where this IO can (a plain socket), else copied.
        let file = a.body.file.filter(|_| self.io.can_send_file());
        let mut head_sent = 0;
        if file.is_none() {
            let bufs = [io::IoSlice::new(head), io::IoSlice::new(&body)];
            match Pin::new(&mut self.io).poll_write_vectored(cx, &bufs) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    head_sent = n.min(head.len());
                    body.advance(n - head_sent);
                    if head_sent == head.len() && body.is_empty() {
                        // All of it went: the request began and ended here.
                        self.activity.answered();
                        return Ok(Some(a.used));
                    }
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        let out = self.out.get_or_insert_with(Box::default);
        out.head.clear();
        out.head.extend_from_slice(&head[head_sent..]);
        out.head_sent = 0;
        out.body = body;
        out.file = file;
        out.in_flight = Some(self.activity.begin());
        if let Poll::Ready(Err(e)) = self.poll_quick_out(cx) {
            return Err(e);
        }
        Ok(Some(a.used))
    }

    /// Under hyper: after quick answers, whether hyper's connection has gone so long
    /// without a head of its own that it is to end at the next moment between
    /// requests (see [`QuickSide::refresh_after`]).
    fn check_refresh(&mut self) {
        if let Some(q) = &self.quick {
            if !self.refresh && self.hyper_head_at.elapsed() >= q.refresh_after {
                self.refresh = true;
            }
        }
    }

    /// With no hyper connection: answers quick requests as they come, until bytes
    /// that are not a quick request (kept in `replay` for hyper), the client's end of
    /// stream, or an idle moment once parking was asked for. What is read lands in
    /// `scratch` first; only bytes left for hyper are copied out of it.
    fn poll_quick(
        &mut self,
        cx: &mut Context<'_>,
        scratch: &mut [u8],
    ) -> Poll<io::Result<QuickEnd>> {
        let mut answered = 0;
        loop {
            std::task::ready!(self.poll_quick_out(cx))?;
            if answered >= QUICK_PER_READ {
                // A client pipelining quick requests for ever must not hold the thread.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !self.replay.is_empty() {
                // Left over from the last read (its answer was still being written).
                let data = std::mem::take(&mut self.replay);
                let used = self.answer_quick(cx, &data)?;
                self.replay = data.slice(used..);
                if used == 0 && !self.writing_quick() {
                    return Poll::Ready(Ok(QuickEnd::Hyper));
                }
                answered += 1;
                continue;
            }
            let mut buf = ReadBuf::new(scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => {
                    let got = buf.filled();
                    if got.is_empty() {
                        return Poll::Ready(Ok(QuickEnd::Closed));
                    }
                    let used = self.answer_quick(cx, got)?;
                    if used < got.len() {
                        self.replay = Bytes::copy_from_slice(&got[used..]);
                    }
                    if used == 0 && !self.writing_quick() {
                        return Poll::Ready(Ok(QuickEnd::Hyper));
                    }
                    answered += 1;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if self.activity.park_asked() && self.between_requests() => {
                    return Poll::Ready(Ok(QuickEnd::Idle));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// How a stretch of quick answers with no hyper connection ended ([`serve_quick`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuickEnd {
    /// A request that is not quick came (its bytes are in `replay`): hyper's turn.
    Hyper,
    /// Idle after parking was asked for: the socket can wait without a task.
    Idle,
    /// The client ended the stream, an error, or the watchdog closed it.
    Closed,
}

impl<I: AsyncRead + AsyncWrite + SendFile + Unpin> AsyncRead for ParkIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.parked {
            return Poll::Ready(Ok(()));
        }
        // A quick answer goes out before anything else is read.
        match this.poll_quick_out(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            let chunk = this.replay.split_to(n);
            this.feed_hyper(&chunk);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let mut reads = 0;
        loop {
            match Pin::new(&mut this.io).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {
                    let got = buf.filled().len() - before;
                    if got > 0 && this.quick_ready() {
                        let used = this.answer_quick(cx, &buf.filled()[before..])?;
                        if used > 0 {
                            // hyper gets only what follows the quick requests.
                            buf.filled_mut().copy_within(before + used.., before);
                            buf.set_filled(before + got - used);
                            this.check_refresh();
                            if used == got {
                                // Nothing for hyper (an empty read would be its end of
                                // stream): read on, a bounded number of times.
                                reads += 1;
                                if reads == QUICK_PER_READ {
                                    cx.waker().wake_by_ref();
                                    return Poll::Pending;
                                }
                                if this.writing_quick() {
                                    // The socket will say when it takes more.
                                    return Poll::Pending;
                                }
                                continue;
                            }
                        }
                    }
                    this.feed_hyper(&buf.filled()[before..]);
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending if this.idle() => {
                    // End of stream to hyper: it ends its connection between requests.
                    this.parked = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<I: AsyncRead + AsyncWrite + SendFile + Unpin> AsyncWrite for ParkIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // A quick answer made before hyper's goes out first.
        std::task::ready!(self.poll_quick_out(cx))?;
        self.dirty = true;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_quick_out(cx))?;
        self.dirty = true;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_quick_out(cx))?;
        let r = Pin::new(&mut self.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            self.dirty = false;
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parked {
            // hyper closing the connection we parked: the socket stays open.
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(self.poll_quick_out(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<I> ParkIo<I> {
    /// Takes back the socket of a hyper connection that ended, with the bytes hyper
    /// read but did not use: `Some` (ready for the next hyper connection) if it ended
    /// because this wrapper parked or refreshed it, `None` if HTTP closed it.
    fn unpark(mut self, unread: Bytes) -> Option<ParkIo<I>> {
        if !self.parked {
            return None;
        }
        self.parked = false;
        self.refresh = false;
        self.dirty = false;
        self.activity.clear_park();
        // Normally empty: replayed first to the next hyper connection. Copied, never
        // kept as a slice: even an empty `Bytes` from hyper may hold its whole read
        // buffer (8 KiB) alive.
        self.replay = if unread.is_empty() && self.replay.is_empty() {
            Bytes::new()
        } else {
            let mut joined = Vec::with_capacity(unread.len() + self.replay.len());
            joined.extend_from_slice(&unread);
            joined.extend_from_slice(&self.replay);
            Bytes::from(joined)
        };
        drop(unread);
        // The replayed bytes are fed to the tracker again when hyper reads them.
        self.framing = Framing::default();
        Some(self)
    }
}

impl ParkIo {
    /// Waits until the client sends the next bytes (or closes: hyper will see it).
    async fn readable(&self) -> io::Result<()> {
        if self.replay.has_remaining() {
            return Ok(());
        }
        self.io.get_ref().readable().await
    }
}

/// Serves the plain HTTP/1.1 connection on `io` (its first bytes have arrived) as
/// a series of hyper connections, parked between requests, until it ends: closed by
/// HTTP (`Connection: close`, the client's close, an error), upgraded, or closed by
/// the watchdog (no request in time, idle).
pub(crate) async fn serve_h1<F, Fut, B>(mut io: ParkIo, peer: SocketAddr, shared: Arc<Shared<F>>)
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = io.activity.clone();
    let expired = activity.expired(shared.no_request(), shared.conn.idle_timeout);
    tokio::pin!(expired);
    loop {
        // Quick requests first, with no hyper connection at all; idle there, the
        // connection skips hyper and waits parked.
        let mut idle = false;
        if io.quick.is_some() {
            let quick = Box::pin(serve_quick(
                &mut io,
                &activity,
                &shared,
                expired.as_mut(),
                Linger::Park,
            ));
            match quick.await {
                QuickEnd::Hyper => {}
                QuickEnd::Idle => {
                    activity.clear_park();
                    idle = true;
                }
                QuickEnd::Closed => return,
            }
        }
        if !idle {
            // Boxed, and in statements of their own (a temporary in an awaited
            // expression would be kept in this future): hyper's state and the active
            // phase's are allocated only while the connection is active.
            let active = Box::pin(serve_until_idle(
                io,
                peer,
                &activity,
                &shared,
                expired.as_mut(),
                Linger::Park,
            ));
            io = match active.await {
                Some(parked) => parked,
                None => return,
            };
            if io.replay.has_remaining() {
                // The next request's first bytes are here already: serve them.
                continue;
            }
        }
        let waiting = Box::pin(wait_parked(io, peer, &shared, expired.as_mut()));
        io = match waiting.await {
            Some(io) => io,
            None => return,
        };
    }
}

/// Waits in the task for the idle connection's next bytes for a moment (a request
/// that follows at once, as under a load generator, then costs no trip through the
/// lot), then gives its socket to the lot. Without a lot (its thread could not
/// start), waits in this task until woken. The connection back when its next bytes
/// came (serve them); `None` when it left the task (to the lot, or closed).
async fn wait_parked<F, E>(
    io: ParkIo,
    peer: SocketAddr,
    shared: &Shared<F>,
    mut expired: Pin<&mut E>,
) -> Option<ParkIo>
where
    E: Future<Output = Expired>,
{
    let lot = shared.lot.available();
    // Counted while it waits here, also if the task is dropped meanwhile (its
    // runtime shutting down).
    let counted = ParkedHere::count(&shared.parked);
    let woke = tokio::select! {
        r = io.readable() => Woke::Readable(r),
        () = tokio::time::sleep(TO_LOT_AFTER), if lot => Woke::ToLot,
        why = expired.as_mut() => Woke::Expired(why),
    };
    drop(counted);
    match woke {
        Woke::Readable(Ok(())) => Some(io),
        Woke::Readable(Err(e)) => {
            tracing::debug!(error = %e, "parked connection failed");
            None
        }
        Woke::ToLot => {
            // The socket goes to the lot and this task ends (see the module doc).
            to_lot(io, peer, shared);
            None
        }
        Woke::Expired(why) => {
            closed(why.label());
            None
        }
    }
}

/// One connection parked in its task, in `mediamesh_http_connections_parked` for as
/// long as this lives.
struct ParkedHere<'a>(&'a ::metrics::Gauge);

impl<'a> ParkedHere<'a> {
    fn count(gauge: &'a ::metrics::Gauge) -> Self {
        gauge.increment(1.0);
        ParkedHere(gauge)
    }
}

impl Drop for ParkedHere<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// How a connection parked in its task stopped waiting.
enum Woke {
    Readable(io::Result<()>),
    ToLot,
    Expired(Expired),
}

/// Gives the idle socket of `io` to the listener's lot with what it needs to be
/// served again; the caller's task then ends.
fn to_lot<F>(io: ParkIo, peer: SocketAddr, shared: &Shared<F>) {
    let ParkIo { io, activity, .. } = io;
    let (since, started) = activity.idle_since();
    drop(activity);
    let (socket, guard) = io.into_parts();
    // Deregisters the socket from tokio's driver (its registration is freed).
    let socket = match socket.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "cannot park a connection; closing it");
            return;
        }
    };
    // The deadline the watchdog (`Activity::expired`) has now.
    let (deadline, why) = if started {
        (since + shared.conn.idle_timeout, Expired::Idle)
    } else {
        (since + shared.no_request(), Expired::NoRequest)
    };
    shared.lot.park(Parked {
        socket,
        guard,
        peer,
        runtime: tokio::runtime::Handle::current(),
        since,
        started,
        deadline,
        why,
    });
}

/// What the lot does with a connection that woke: spawns its serving task again on
/// the runtime it came from, in a new `conn` span with the same fields. A listener
/// gone (`shared` dropped) closes it.
pub(crate) fn resumer<F, Fut, B>(shared: Weak<Shared<F>>) -> Resume
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Box::new(move |p: Parked| {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let span = tracing::info_span!("conn", peer = %p.peer);
        let runtime = p.runtime.clone();
        // A runtime that shut down drops the task, closing the connection.
        drop(runtime.spawn(resume(p, shared).instrument(span)));
    })
}

/// Serves a connection that woke in the lot, as [`serve_h1`] served it before.
async fn resume<F, Fut, B>(p: Parked, shared: Arc<Shared<F>>)
where
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Parked {
        socket,
        guard,
        peer,
        runtime,
        since,
        started,
        deadline,
        why,
    } = p;
    drop(runtime);
    let socket = match TcpStream::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "cannot register a woken connection");
            return;
        }
    };
    // A fresh registration knows no readiness yet: hyper's first read would be
    // `Pending`, which `ParkIo` takes for idle, parking the socket straight back.
    // (A wake-up with nothing to read then parks it again, as it should.)
    match tokio::time::timeout_at(deadline.into(), socket.readable()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "woken connection failed");
            return;
        }
        Err(_) => return closed(why.label()),
    }
    let io = ParkIo::new(
        GuardedIo::new(socket, guard),
        Activity::resumed(since, started),
        shared.quick_for(peer),
    );
    let h1 = serve_h1(io, peer, shared);
    h1.await;
}

/// Serves HTTP/1.1 over TLS with the quick path (ALPN `http/1.1` or none) as a
/// series of hyper connections, each ended between requests when quick answers have
/// kept it from reading a head of its own for long (see `QuickSide::refresh_after`),
/// until the connection ends: closed by HTTP, upgraded, or by the watchdog. Never
/// parked (the TLS session stays in its task).
pub(crate) async fn serve_tls_h1<I, F, Fut, B>(
    mut io: ParkIo<I>,
    peer: SocketAddr,
    shared: Arc<Shared<F>>,
) where
    I: AsyncRead + AsyncWrite + SendFile + Unpin + Send + 'static,
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = io.activity.clone();
    let expired = activity.expired(shared.no_request(), shared.conn.idle_timeout);
    tokio::pin!(expired);
    loop {
        let quick = Box::pin(serve_quick(
            &mut io,
            &activity,
            &shared,
            expired.as_mut(),
            Linger::Stay,
        ));
        if quick.await == QuickEnd::Closed {
            return;
        }
        let active = Box::pin(serve_until_idle(
            io,
            peer,
            &activity,
            &shared,
            expired.as_mut(),
            Linger::Stay,
        ));
        io = match active.await {
            Some(refreshed) => refreshed,
            None => return,
        };
    }
}

/// Whether a hyper connection idle for `park_after` ends so that its socket can be
/// parked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Linger {
    /// Plain HTTP/1.1: parked after `park_after`.
    Park,
    /// TLS: never parked; ended only to be refreshed.
    Stay,
}

impl Linger {
    /// At the start of a stretch (quick answers, or a hyper connection): whether it
    /// is to wait out `park_after` idle before parking is asked for. A plain
    /// connection with no linger asks at once; TLS never does.
    fn begin(self, activity: &Activity, park_after: Duration) -> bool {
        let parks = self == Linger::Park;
        let lingering = parks && !park_after.is_zero();
        if parks && !lingering {
            activity.ask_park();
        }
        lingering
    }
}

/// Quick answers on `io` with no hyper connection (see [`ParkIo::poll_quick`]), until
/// a request that is not quick comes ([`QuickEnd::Hyper`]), the connection lingers
/// idle for `park_after` with `Linger::Park` ([`QuickEnd::Idle`]), or it ends
/// ([`QuickEnd::Closed`]: the client's close, an error, or the watchdog `expired`).
async fn serve_quick<I, F, E>(
    io: &mut ParkIo<I>,
    activity: &Activity,
    shared: &Shared<F>,
    mut expired: Pin<&mut E>,
    linger_mode: Linger,
) -> QuickEnd
where
    I: AsyncRead + AsyncWrite + SendFile + Unpin,
    E: Future<Output = Expired>,
{
    let park_after = shared.conn.park_after;
    let linger = activity.lingered(park_after);
    tokio::pin!(linger);
    let mut lingering = linger_mode.begin(activity, park_after);
    // The socket wakes the task for every request; the two timers share one gate
    // and are polled only when one of them woke it (`gate.rs`). `None`: lingered
    // (the linger is not polled again). The watchdog is polled first, so that it is
    // registered whatever the linger does.
    let timers = Gated::new(std::future::poll_fn(|cx| {
        if let Poll::Ready(why) = expired.as_mut().poll(cx) {
            return Poll::Ready(Some(why));
        }
        if lingering && linger.as_mut().poll(cx).is_ready() {
            lingering = false;
            return Poll::Ready(None);
        }
        Poll::Pending
    }));
    tokio::pin!(timers);
    let answered =
        std::future::poll_fn(|cx| SCRATCH.with_borrow_mut(|scratch| io.poll_quick(cx, scratch)));
    tokio::pin!(answered);
    let why = loop {
        tokio::select! {
            biased;
            r = answered.as_mut() => {
                return match r {
                    Ok(end) => end,
                    Err(e) => {
                        tracing::debug!(error = %e, "http connection ended with an error");
                        QuickEnd::Closed
                    }
                };
            }
            timer = timers.as_mut() => match timer {
                // Polled again by the loop: idle now (or at the next idle moment),
                // the answers end.
                None => activity.ask_park(),
                Some(why) => break why,
            },
        }
    };
    closed(why.label());
    // As hyper closes an idle connection (TLS: with its close_notify).
    let shutdown = std::future::poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx));
    let _ = tokio::time::timeout(CLOSE_GRACE, shutdown).await;
    QuickEnd::Closed
}

thread_local! {
    /// Where [`ParkIo::poll_quick`] reads into: one buffer per thread, not one per
    /// connection (only bytes left for hyper are copied out of it).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; QUICK_SCRATCH].into_boxed_slice());
}

thread_local! {
    /// Where [`ParkIo::answer_one`] makes a quick answer's head: one buffer per
    /// thread, so that an answer the socket takes at once touches no buffer of its
    /// connection's (at a thousand connections each such buffer is cold memory).
    static HEAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The size of [`SCRATCH`]: a request head longer than this is hyper's.
const QUICK_SCRATCH: usize = 8 * 1024;

/// One hyper connection over `io`, until it ends: `Some` when [`ParkIo`] parked or
/// refreshed it (the socket to wait on, ready for the next hyper connection), `None`
/// when it was closed (by HTTP or the watchdog `expired`) or upgraded.
async fn serve_until_idle<I, F, Fut, B, E>(
    io: ParkIo<I>,
    peer: SocketAddr,
    activity: &Arc<Activity>,
    shared: &Arc<Shared<F>>,
    mut expired: Pin<&mut E>,
    linger_mode: Linger,
) -> Option<ParkIo<I>>
where
    I: AsyncRead + AsyncWrite + SendFile + Unpin + Send + 'static,
    F: Fn(Request<Incoming>, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Future<Output = Expired>,
{
    // hyper's header-read timer starts with its connection.
    let mut io = io;
    io.hyper_head_at = Instant::now();
    // The service holds `Arc`s only, so that it (and with it hyper's connection) is
    // `Unpin`, which `into_parts` after polling needs.
    let (a, s) = (activity.clone(), shared.clone());
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let in_flight = a.begin();
        let fut = (s.handler)(req, peer);
        async move {
            let resp = fut.await;
            Ok::<_, Infallible>(resp.map(|b| TrackedBody::new(b, in_flight)))
        }
    });
    let mut http = {
        let limits = &shared.limits;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
    };
    // Parked only after lingering idle for `park_after`: a connection whose requests
    // follow each other closely keeps its hyper connection (no rebuild per request).
    let park_after = shared.conn.park_after;
    let linger = activity.lingered(park_after);
    tokio::pin!(linger);
    let mut lingering = linger_mode.begin(activity, park_after);
    let result = loop {
        tokio::select! {
            r = Pin::new(&mut http) => break r,
            () = linger.as_mut(), if lingering => {
                // hyper, polled again by the loop, reads; `ParkIo` says end-of-stream
                // if the connection is still idle (or at its next idle moment).
                lingering = false;
                activity.ask_park();
            }
            why = expired.as_mut() => {
                closed(why.label());
                Pin::new(&mut http).graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, Pin::new(&mut http)).await;
                return None;
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "http connection ended with an error");
        return None;
    }
    // `None`: upgraded; the socket lives on in the handler's `Upgraded`.
    let parts = http.into_parts()?;
    // `None`: closed by HTTP; hyper has shut the socket down.
    parts.io.into_inner().unpark(parts.read_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(chunks: &[&[u8]]) -> Framing {
        let mut f = Framing::default();
        for c in chunks {
            f.feed(c);
        }
        f
    }

    #[test]
    fn whole_and_pipelined_heads_end_at_a_boundary() {
        assert!(fed(&[]).at_boundary());
        assert!(fed(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]).at_boundary());
        assert!(fed(&[b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n\r\n"]).at_boundary());
        assert!(!fed(&[b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HT"]).at_boundary());
    }

    #[test]
    fn split_heads_and_bodies_are_followed() {
        let f = fed(&[b"GET / HTTP/1.1\r\nHo", b"st: a\r\n", b"\r\n"]);
        assert!(f.at_boundary());
        assert!(f.head.capacity() == 0, "the split head's buffer is freed");
        let f = fed(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"]);
        assert!(!f.at_boundary());
        let f = fed(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", b"cde"]);
        assert!(f.at_boundary());
        let f = fed(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
            b"cdeGET / HTTP/1.1\r\n\r\n",
        ]);
        assert!(f.at_boundary());
        // A split head whose completing read carries the next request too.
        let f = fed(&[b"GET /1 HTTP/1.1\r\n", b"\r\nGET /2 HTTP/1.1\r\n"]);
        assert!(!f.at_boundary());
        let f = fed(&[b"GET /1 HTTP/1.1\r\n", b"\r\nGET /2 HTTP/1.1\r\n\r\n"]);
        assert!(f.at_boundary());
    }

    #[test]
    fn chunked_upgrades_and_garbage_are_never_at_a_boundary() {
        for head in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"\x16\x03\x01 not http\r\n\r\n",
        ] {
            let mut f = fed(&[head]);
            assert!(!f.at_boundary(), "{}", String::from_utf8_lossy(head));
            f.feed(b"GET / HTTP/1.1\r\n\r\n");
            assert!(
                !f.at_boundary(),
                "recovered after {}",
                String::from_utf8_lossy(head)
            );
        }
    }

    /// A socket that takes at most `step` bytes per write and refuses every third
    /// write (`Pending`, woken at once), with requests to read from `input`.
    struct Trickle {
        input: Vec<u8>,
        written: Vec<u8>,
        step: usize,
        /// Write calls so far; every third is refused (when `step` is finite).
        calls: usize,
        writes: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.input.len().min(buf.remaining());
            buf.put_slice(&self.input[..n]);
            self.input.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.calls += 1;
            if self.step < usize::MAX && self.calls.is_multiple_of(3) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.writes += 1;
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            self.poll_write(cx, &all)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl SendFile for Trickle {
        fn can_send_file(&self) -> bool {
            false
        }

        fn poll_send_file(
            &mut self,
            _: &mut Context<'_>,
            _: std::os::fd::BorrowedFd<'_>,
            _: u64,
            _: usize,
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
        }

        fn set_unsent_mark(&self, _: u32) {}
    }

    /// Answers every request with its target as the body, behind a head of a few
    /// fields.
    struct Echo;

    impl Quick for Echo {
        fn answer(
            &self,
            req: &crate::quick::QuickRequest<'_>,
            head: &mut Vec<u8>,
        ) -> Option<crate::quick::QuickBody> {
            head.extend_from_slice(b"HTTP/1.1 200 OK\r\nx-a: aaaaaaaaaa\r\nx-b: bbbbbbbbbb\r\n");
            Some(Bytes::from(format!("body of {}", req.target())).into())
        }
    }

    fn expected(target: &str) -> Vec<u8> {
        let body = format!("body of {target}");
        format!(
            "HTTP/1.1 200 OK\r\nx-a: aaaaaaaaaa\r\nx-b: bbbbbbbbbb\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Pipelined quick requests on a socket that takes their answers a few bytes at a
    /// time, refusing in between: the part of each head the socket did not take at
    /// once waits in the connection's buffer, and every answer goes out whole and in
    /// order. Also with a socket that takes everything at once (nothing waits).
    #[test]
    fn answers_a_socket_takes_piecemeal_go_out_whole_and_in_order() {
        let targets = ["/a", "/bb", "/ccc?x=1", "/d"];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        for step in [1, 7, 64, usize::MAX] {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for t in targets {
                input.extend_from_slice(format!("GET {t} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
                want.extend_from_slice(&expected(t));
            }
            let io = Trickle {
                input,
                written: Vec::new(),
                step,
                calls: 0,
                writes: 0,
            };
            let side = QuickSide {
                quick: Arc::new(Echo),
                peer: "127.0.0.1:1".parse().unwrap(),
                refresh_after: Duration::from_secs(60),
            };
            let mut io = ParkIo::new(io, Activity::new(), Some(side));
            let mut scratch = vec![0; QUICK_SCRATCH];
            let end = rt.block_on(async {
                let f = std::future::poll_fn(|cx| io.poll_quick(cx, &mut scratch));
                tokio::time::timeout(Duration::from_secs(10), f).await
            });
            assert!(
                matches!(end, Ok(Ok(QuickEnd::Closed))),
                "step {step}: {end:?}"
            );
            assert_eq!(
                String::from_utf8_lossy(&io.io.written),
                String::from_utf8_lossy(&want),
                "step {step}"
            );
            assert!(!io.writing_quick());
            assert_eq!(io.activity.in_flight(), 0, "step {step}");
            if step == usize::MAX {
                // One write per answer, from the thread's head buffer.
                assert_eq!(io.io.writes, targets.len());
                assert!(io.out.is_none(), "no answer waited in the connection");
            }
        }
    }
}
