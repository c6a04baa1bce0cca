//! The edge's production access log: one JSON line per request, written to a file (or
//! stdout) by a thread of its own, so that the request path only formats a line into a
//! reused buffer and hands it over through a bounded channel.
//!
//! Not here: the process log (`tracing`; without `--access-log` the edge still logs
//! each request there as a `target: "access"` event, see `proxy`), metrics other than
//! the log's own counters, and log shipping or compression (logrotate and a shipper
//! do that, reading the file).
//!
//! **Format: JSON lines** (one object per line, UTF-8, `\n`-terminated), chosen over
//! the combined log format because every field is named (a shipper — Vector, Fluent
//! Bit, Loki, `jq` — parses it without a pattern, and adding a field breaks no
//! parser), the cache status, CMCD and a fractional time have no column in the
//! combined format, and JSON's escaping is specified, so a hostile path or
//! `User-Agent` (quotes, backslashes, control characters, invalid UTF-8) can never
//! split a request over two lines or forge a field. Fields, in this order:
//!
//! | field | value |
//! | --- | --- |
//! | `ts` | when the request arrived, RFC 3339 UTC with milliseconds |
//! | `client` | the peer address (no port) |
//! | `method` | request method |
//! | `path` | the canonical path (the raw one when it was refused as not canonical); the query is left out, as today: it may carry tokens |
//! | `status` | response status |
//! | `cache` | `HIT`, `MISS`, `STALE`, `STALE-IF-ERROR` or `PASS` (the `X-Cache` header's value) |
//! | `ua` | `User-Agent`, when sent |
//! | `referer` | `Referer`, when sent |
//! | `cmcd` | the CMCD summary (`sid=… br=…`), when the player sent CMCD |
//! | `bytes` | body bytes handed to the connection: the whole body for an answer from memory, what was streamed for a streamed one (less when the client went away) |
//! | `ms` | milliseconds from the request's arrival to the end of its body (for an answer from memory: to its head), three decimals |
//!
//! Invalid UTF-8 in a header becomes U+FFFD; `"`, `\`, control characters, DEL,
//! U+2028 and U+2029 are escaped.
//!
//! **Overload policy: drop and count, never block.** A full queue (the writer thread
//! is behind: a slow or hung disk, or a starved thread) drops the line and counts it
//! in `mediamesh_edge_access_log_dropped_total`. Blocking, even briefly, would hold a
//! tokio worker thread and with it every connection that worker serves, so a slow
//! disk would become a slow edge — the opposite of what an edge is for; the log is
//! evidence of serving, not a reason to stop. The queue (32,768 lines by default,
//! `--access-log-queue`) holds well over a tenth of a second of the fastest rate this
//! edge reaches, so a healthy disk loses nothing (the end-to-end test checks every
//! line arrives). Write errors (a full disk) count in
//! `mediamesh_edge_access_log_write_errors_total` and their lines as dropped; serving
//! goes on.
//!
//! **Writing**: the writer thread takes lines from the queue into a large
//! `BufWriter` (256 KiB), then pauses 2 ms so that lines gather (a sender wakes the
//! thread only when it waits in an empty queue, so at high rates the request path
//! makes no system call for the log); it flushes every second and on shutdown
//! (`AccessLog::close`, called when the edge stops). Buffers go back to the request
//! threads through a free list, so a steady stream of requests allocates nothing for
//! its lines.
//!
//! **Rotation**: SIGHUP (`AccessLog::reopen_on_sighup`) reopens the file; so does
//! finding, at the once-a-second check, that the path no longer names the open file
//! (renamed or deleted by logrotate without `copytruncate`). The file is opened to
//! append and created when missing.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header;
use hyper::Response;

use crate::phase::Session;
use crate::response::Body;
use cache::CacheStatus;

/// Where the lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The process's standard output (`--access-log -`).
    Stdout,
    /// A file, opened to append (created when missing).
    File(PathBuf),
}

/// Settings of the access log.
#[derive(Clone, Debug)]
pub struct AccessLogConfig {
    pub target: Target,
    /// Lines waiting for the writer before new ones are dropped (32,768).
    pub queue_lines: usize,
    /// Size of the writer's buffer (256 KiB).
    pub buffer_bytes: usize,
    /// How often the buffer is flushed and the file checked for rotation (1 s).
    pub flush_interval: Duration,
}

/// Default of [`AccessLogConfig::queue_lines`].
pub const DEFAULT_QUEUE_LINES: usize = 32_768;

impl AccessLogConfig {
    /// `-` is stdout; anything else a file path.
    pub fn new(target: &str) -> Self {
        Self {
            target: if target == "-" {
                Target::Stdout
            } else {
                Target::File(PathBuf::from(target))
            },
            queue_lines: DEFAULT_QUEUE_LINES,
            buffer_bytes: 256 * 1024,
            flush_interval: Duration::from_secs(1),
        }
    }
}

/// Why the access log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error(
        "cannot open the access log {path}: {source} (check the folder exists and is writable)"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("access log queue must hold at least 1 line")]
    Queue,
    #[error("cannot start the access log writer thread: {0}")]
    Thread(#[source] io::Error),
}

/// The log's counters (also in `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Lines taken into the writer's buffer.
    pub written: u64,
    /// Lines lost: queue full, a failed write, or logged after shutdown.
    pub dropped: u64,
    /// Failed writes and flushes (a full disk counts one per attempt).
    pub write_errors: u64,
    /// Times the file was reopened (SIGHUP, or found renamed).
    pub reopens: u64,
}

#[derive(Default)]
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    reopens: AtomicU64,
    reopen: AtomicBool,
    stop: AtomicBool,
    /// Buffers the writer is done with, for the request threads to reuse.
    free: parking_lot::Mutex<Vec<Vec<u8>>>,
}

enum Msg {
    Line(Vec<u8>),
    /// Look at the flags (stop, reopen) now.
    Wake,
}

/// A running access log; clones share it. Dropping the last clone closes it.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

struct Inner {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    writer: parking_lot::Mutex<Option<JoinHandle<()>>>,
    target: Target,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("target", &self.inner.target)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        close(&self.shared, &self.tx, &self.writer, Duration::from_secs(5));
    }
}

/// Lines longer than this are not kept in the free list after use (a hostile 16 KiB
/// `User-Agent` does not pin 16 KiB per pooled buffer).
const KEEP_CAPACITY: usize = 2048;
/// A new buffer's capacity: a typical line fits.
const LINE_CAPACITY: usize = 384;
/// Buffers kept in the free list and per request thread.
const FREE_MAX: usize = 4096;
/// The writer's pause after a batch, so lines gather and senders rarely wake it.
const DRAIN_PAUSE: Duration = Duration::from_millis(2);

thread_local! {
    /// This thread's spare line buffers (refilled from the log's free list).
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buffer(shared: &Shared) -> Vec<u8> {
    let reused = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            if p.is_empty() {
                if let Some(mut free) = shared.free.try_lock() {
                    std::mem::swap(&mut *p, &mut *free);
                }
            }
            p.pop()
        })
        .ok()
        .flatten();
    let mut buf = reused.unwrap_or_else(|| Vec::with_capacity(LINE_CAPACITY));
    buf.clear();
    buf
}

fn give_back(buf: Vec<u8>) {
    if buf.capacity() > KEEP_CAPACITY {
        return;
    }
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < FREE_MAX {
            p.push(buf);
        }
    });
}

impl AccessLog {
    /// Opens the target and starts the writer thread.
    pub fn start(config: AccessLogConfig) -> Result<Self, AccessLogError> {
        if config.queue_lines == 0 {
            return Err(AccessLogError::Queue);
        }
        let out = Output::open(&config)?;
        let (tx, rx) = mpsc::sync_channel(config.queue_lines);
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let interval = config.flush_interval;
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || run(rx, &s, out, interval))
            .map_err(AccessLogError::Thread)?;
        Ok(Self {
            inner: Arc::new(Inner {
                tx,
                shared,
                writer: parking_lot::Mutex::new(Some(writer)),
                target: config.target,
            }),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let s = &self.inner.shared;
        Stats {
            written: s.written.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            write_errors: s.write_errors.load(Ordering::Relaxed),
            reopens: s.reopens.load(Ordering::Relaxed),
        }
    }

    /// Asks the writer to reopen the file (what SIGHUP does).
    pub fn reopen(&self) {
        self.inner.shared.reopen.store(true, Ordering::Release);
        let _ = self.inner.tx.try_send(Msg::Wake);
    }

    /// Reopens the file on every SIGHUP until the returned task is aborted.
    pub fn reopen_on_sighup(&self) -> io::Result<tokio::task::JoinHandle<()>> {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let log = self.clone();
        Ok(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!(file = ?log.inner.target, "SIGHUP: reopening the access log");
                log.reopen();
            }
        }))
    }

    /// Writes what is queued, flushes and stops the writer, waiting at most `limit`
    /// for it. Lines logged afterwards are dropped (and counted).
    pub fn close(&self, limit: Duration) {
        let i = &self.inner;
        close(&i.shared, &i.tx, &i.writer, limit);
    }

    /// Hands one line over; a full queue drops it.
    fn send(&self, buf: Vec<u8>) {
        match self.inner.tx.try_send(Msg::Line(buf)) {
            Ok(()) => {}
            Err(
                TrySendError::Full(Msg::Line(buf)) | TrySendError::Disconnected(Msg::Line(buf)),
            ) => {
                self.inner.shared.dropped.fetch_add(1, Ordering::Relaxed);
                give_back(buf);
            }
            Err(_) => {}
        }
    }

    /// Logs one answer: at once when its body is whole (its length known), else when
    /// the streamed body ends or is dropped (the client went away). Returns the
    /// response to send, its body wrapped in the second case.
    pub fn log_response(
        &self,
        s: &Session,
        cache: CacheStatus,
        res: Response<Body>,
    ) -> Response<Body> {
        let h = s.req.headers();
        let cmcd = s.cmcd.as_ref().map(|c| c.log_fields());
        let line = Line {
            time_ms: s.now_ms,
            client: s.peer.ip(),
            method: s.method.as_str(),
            path: &s.path,
            status: res.status().as_u16(),
            cache: cache.as_str(),
            user_agent: h.get(header::USER_AGENT).map(|v| v.as_bytes()),
            referer: h.get(header::REFERER).map(|v| v.as_bytes()),
            cmcd: cmcd.as_deref(),
        };
        match res.body().size_hint().exact() {
            Some(bytes) => {
                self.log_whole(&line, bytes, s.started.elapsed());
                res
            }
            None => res.map(|body| {
                let mut buf = take_buffer(&self.inner.shared);
                format_head(&mut buf, &line);
                Logged {
                    body,
                    line: Some(buf),
                    sent: 0,
                    started: s.started,
                    log: self.clone(),
                }
                .boxed_unsync()
            }),
        }
    }

    /// Logs one answer whose body is whole, `bytes` long, `elapsed` after the
    /// request arrived: an answer from memory, also the quick path's (`quick`).
    pub fn log_whole(&self, line: &Line<'_>, bytes: u64, elapsed: Duration) {
        let mut buf = take_buffer(&self.inner.shared);
        format_head(&mut buf, line);
        format_tail(&mut buf, bytes, elapsed);
        self.send(buf);
    }
}

fn close(
    shared: &Shared,
    tx: &SyncSender<Msg>,
    writer: &parking_lot::Mutex<Option<JoinHandle<()>>>,
    limit: Duration,
) {
    shared.stop.store(true, Ordering::Release);
    let _ = tx.try_send(Msg::Wake);
    let Some(handle) = writer.lock().take() else {
        return;
    };
    let until = Instant::now() + limit;
    while !handle.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    if handle.is_finished() {
        let _ = handle.join();
    } else {
        tracing::warn!("the access log writer did not finish within {limit:?} (a hung disk?); its last lines may be lost");
    }
}

/// A streamed body that logs its line when it ends or is dropped.
struct Logged {
    body: Body,
    line: Option<Vec<u8>>,
    sent: u64,
    started: Instant,
    log: AccessLog,
}

impl Logged {
    fn finish(&mut self) {
        if let Some(mut buf) = self.line.take() {
            format_tail(&mut buf, self.sent, self.started.elapsed());
            self.log.send(buf);
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        self.finish();
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

// ------------------------------------------------------------------ the writer

enum Sink {
    Stdout(io::Stdout),
    File(File),
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(b),
            Sink::File(f) => f.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

struct Output {
    target: Target,
    w: BufWriter<Sink>,
    /// Device and inode of the open file, to notice a rename.
    id: Option<(u64, u64)>,
    capacity: usize,
    /// Errors since the last warning in the process log.
    unreported: u64,
}

fn open_file(path: &Path) -> Result<(File, (u64, u64)), AccessLogError> {
    let open = || -> io::Result<(File, (u64, u64))> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let m = f.metadata()?;
        Ok((f, (m.dev(), m.ino())))
    };
    open().map_err(|source| AccessLogError::Open {
        path: path.to_path_buf(),
        source,
    })
}

impl Output {
    fn open(config: &AccessLogConfig) -> Result<Self, AccessLogError> {
        let (sink, id) = match &config.target {
            Target::Stdout => (Sink::Stdout(io::stdout()), None),
            Target::File(path) => {
                let (f, id) = open_file(path)?;
                (Sink::File(f), Some(id))
            }
        };
        Ok(Self {
            target: config.target.clone(),
            w: BufWriter::with_capacity(config.buffer_bytes.max(4096), sink),
            id,
            capacity: config.buffer_bytes.max(4096),
            unreported: 0,
        })
    }

    fn error(&mut self, shared: &Shared) {
        shared.write_errors.fetch_add(1, Ordering::Relaxed);
        self.unreported += 1;
    }

    fn line(&mut self, buf: &[u8], shared: &Shared) {
        match self.w.write_all(buf) {
            Ok(()) => {
                shared.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                self.error(shared);
            }
        }
    }

    fn flush(&mut self, shared: &Shared) {
        if let Err(e) = self.w.flush() {
            self.error(shared);
            if self.unreported > 0 {
                tracing::warn!(file = ?self.target, error = %e, errors = self.unreported, "access log write failed; lines are dropped until it works again");
                self.unreported = 0;
            }
        }
    }

    /// Whether the path no longer names the file being written.
    fn renamed(&self) -> bool {
        match (&self.target, self.id) {
            (Target::File(path), Some(id)) => match std::fs::metadata(path) {
                Ok(m) => (m.dev(), m.ino()) != id,
                Err(_) => true,
            },
            _ => false,
        }
    }

    fn reopen(&mut self, shared: &Shared) {
        let Target::File(path) = self.target.clone() else {
            return;
        };
        self.flush(shared);
        match open_file(&path) {
            Ok((f, id)) => {
                // What the old buffer could not write (a failed disk) is lost here.
                let old = std::mem::replace(
                    &mut self.w,
                    BufWriter::with_capacity(self.capacity, Sink::File(f)),
                );
                let _ = old.into_parts();
                self.id = Some(id);
                shared.reopens.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.error(shared);
                tracing::warn!(error = %e, "cannot reopen the access log; still writing to the old file");
            }
        }
    }
}

fn run(rx: Receiver<Msg>, shared: &Shared, mut out: Output, interval: Duration) {
    let mut spent: Vec<Vec<u8>> = Vec::with_capacity(1024);
    let mut next_tick = Instant::now() + interval;
    let recycle = |spent: &mut Vec<Vec<u8>>| {
        let mut free = shared.free.lock();
        for mut b in spent.drain(..) {
            if free.len() >= FREE_MAX {
                break;
            }
            if b.capacity() <= KEEP_CAPACITY {
                b.clear();
                free.push(b);
            }
        }
    };
    let take = |msg: Msg, out: &mut Output, spent: &mut Vec<Vec<u8>>| {
        if let Msg::Line(buf) = msg {
            out.line(&buf, shared);
            spent.push(buf);
            if spent.len() >= 1024 {
                recycle(spent);
            }
        }
    };
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(msg) => {
                take(msg, &mut out, &mut spent);
                while let Ok(msg) = rx.try_recv() {
                    take(msg, &mut out, &mut spent);
                }
                recycle(&mut spent);
                if !shared.stop.load(Ordering::Acquire) {
                    std::thread::sleep(DRAIN_PAUSE);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                out.flush(shared);
                return;
            }
        }
        if shared.stop.load(Ordering::Acquire) {
            while let Ok(msg) = rx.try_recv() {
                take(msg, &mut out, &mut spent);
            }
            out.flush(shared);
            return;
        }
        if shared.reopen.swap(false, Ordering::AcqRel) {
            out.reopen(shared);
        }
        if Instant::now() >= next_tick {
            out.flush(shared);
            if out.renamed() {
                out.reopen(shared);
            }
            next_tick = Instant::now() + interval;
        }
    }
}

// ------------------------------------------------------------------ the line

/// What one line says (see the module doc for the fields).
#[derive(Clone, Debug)]
pub struct Line<'a> {
    /// Unix milliseconds when the request arrived.
    pub time_ms: u64,
    pub client: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub cache: &'a str,
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
    pub cmcd: Option<&'a str>,
}

thread_local! {
    /// The formatted `YYYY-MM-DDTHH:MM:SS` of the last second seen on this thread.
    static SECOND: RefCell<(u64, [u8; 19])> = const { RefCell::new((u64::MAX, [0; 19])) };
}

fn put_time(buf: &mut Vec<u8>, time_ms: u64) {
    let secs = time_ms / 1000;
    let ms = (time_ms % 1000) as u16;
    let mut prefix = [0u8; 19];
    let cached = SECOND
        .try_with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                let t = UNIX_EPOCH + Duration::from_secs(secs);
                let s = humantime::format_rfc3339_seconds(t).to_string();
                if let Some(p) = s.as_bytes().get(..19) {
                    c.1.copy_from_slice(p);
                    c.0 = secs;
                }
            }
            prefix = c.1;
        })
        .is_ok();
    if !cached {
        let s = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs));
        let s = s.to_string();
        prefix.copy_from_slice(s.as_bytes().get(..19).unwrap_or(&[b'?'; 19]));
    }
    buf.extend_from_slice(&prefix);
    buf.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// Appends `s` as the inside of a JSON string: `"` `\` control characters, DEL,
/// U+2028 and U+2029 escaped; invalid UTF-8 as U+FFFD.
pub fn put_escaped(buf: &mut Vec<u8>, s: &[u8]) {
    match std::str::from_utf8(s) {
        Ok(text) => put_escaped_str(buf, text),
        Err(_) => put_escaped_str(buf, &String::from_utf8_lossy(s)),
    }
}

fn put_escaped_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f | 0x7f => Some(b""),
            // U+2028 / U+2029 (E2 80 A8 / E2 80 A9): line breaks to JavaScript.
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                Some(b"")
            }
            _ => None,
        };
        let Some(esc) = esc else {
            i += 1;
            continue;
        };
        buf.extend_from_slice(&bytes[start..i]);
        if !esc.is_empty() {
            buf.extend_from_slice(esc);
            i += 1;
        } else if b == 0xe2 {
            buf.extend_from_slice(if bytes[i + 2] == 0xa8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
        } else {
            buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
            i += 1;
        }
        start = i;
    }
    buf.extend_from_slice(&bytes[start..]);
}

fn put_str_field(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(name);
    buf.extend_from_slice(b"\":\"");
    put_escaped(buf, value);
    buf.push(b'"');
}

fn put_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    // An address is at most 45 characters (IPv4-mapped IPv6); no escaping needed.
    let mut tmp = [0u8; 48];
    let mut cursor = io::Cursor::new(&mut tmp[..]);
    if write!(cursor, "{ip}").is_ok() {
        let n = cursor.position() as usize;
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Writes the line up to (not including) `bytes` and `ms`: `{"ts":…,"cmcd":"…"`.
pub fn format_head(buf: &mut Vec<u8>, l: &Line<'_>) {
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(b"{\"ts\":\"");
    put_time(buf, l.time_ms);
    buf.extend_from_slice(b"\",\"client\":\"");
    put_ip(buf, l.client);
    buf.push(b'"');
    put_str_field(buf, b"method", l.method.as_bytes());
    put_str_field(buf, b"path", l.path.as_bytes());
    buf.extend_from_slice(b",\"status\":");
    buf.extend_from_slice(itoa.format(l.status).as_bytes());
    put_str_field(buf, b"cache", l.cache.as_bytes());
    if let Some(ua) = l.user_agent {
        put_str_field(buf, b"ua", ua);
    }
    if let Some(r) = l.referer {
        put_str_field(buf, b"referer", r);
    }
    if let Some(c) = l.cmcd {
        put_str_field(buf, b"cmcd", c.as_bytes());
    }
}

/// Ends a line begun by [`format_head`]: `,"bytes":N,"ms":M.mmm}` and a newline.
pub fn format_tail(buf: &mut Vec<u8>, bytes: u64, elapsed: Duration) {
    let mut itoa = itoa::Buffer::new();
    buf.extend_from_slice(b",\"bytes\":");
    buf.extend_from_slice(itoa.format(bytes).as_bytes());
    buf.extend_from_slice(b",\"ms\":");
    let us = elapsed.as_micros();
    buf.extend_from_slice(itoa.format(us / 1000).as_bytes());
    let frac = (us % 1000) as u16;
    buf.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
        b'}',
        b'\n',
    ]);
}

/// The log's counters as Prometheus counters (called at scrape time):
/// `mediamesh_edge_access_log_lines_total`, `…_dropped_total`,
/// `…_write_errors_total`, `…_reopens_total`.
pub fn export_metrics(log: Option<&AccessLog>) {
    let Some(log) = log else {
        return;
    };
    let s = log.stats();
    ::metrics::counter!("mediamesh_edge_access_log_lines_total").absolute(s.written);
    ::metrics::counter!("mediamesh_edge_access_log_dropped_total").absolute(s.dropped);
    ::metrics::counter!("mediamesh_edge_access_log_write_errors_total").absolute(s.write_errors);
    ::metrics::counter!("mediamesh_edge_access_log_reopens_total").absolute(s.reopens);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str, ua: Option<&'a [u8]>) -> Line<'a> {
        Line {
            time_ms: 1_764_849_676_042, // 2025-12-04T12:01:16.042Z
            client: "203.0.113.9".parse().expect("ip"),
            method: "GET",
            path,
            status: 200,
            cache: "HIT",
            user_agent: ua,
            referer: None,
            cmcd: None,
        }
    }

    fn format(l: &Line<'_>, bytes: u64, elapsed: Duration) -> Vec<u8> {
        let mut buf = Vec::new();
        format_head(&mut buf, l);
        format_tail(&mut buf, bytes, elapsed);
        buf
    }

    fn parse(buf: &[u8]) -> serde_json::Value {
        assert_eq!(buf.last(), Some(&b'\n'), "a line ends with a newline");
        assert_eq!(
            buf.iter().filter(|b| **b == b'\n').count(),
            1,
            "one request, one line: {}",
            String::from_utf8_lossy(buf)
        );
        serde_json::from_slice(buf)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(buf)))
    }

    #[test]
    fn a_plain_line_has_every_field_in_order() {
        let buf = format(
            &Line {
                referer: Some(b"https://example.com/p"),
                cmcd: Some("sid=abc br=3200"),
                ..line("/live/cam/seg_1.m4s", Some(b"hls.js/1.5"))
            },
            1024,
            Duration::from_micros(1_234_567),
        );
        assert_eq!(
            String::from_utf8(buf).expect("utf-8"),
            "{\"ts\":\"2025-12-04T12:01:16.042Z\",\"client\":\"203.0.113.9\",\"method\":\"GET\",\
             \"path\":\"/live/cam/seg_1.m4s\",\"status\":200,\"cache\":\"HIT\",\"ua\":\"hls.js/1.5\",\
             \"referer\":\"https://example.com/p\",\"cmcd\":\"sid=abc br=3200\",\"bytes\":1024,\
             \"ms\":1234.567}\n"
        );
        let buf = format(&line("/", None), 0, Duration::ZERO);
        let v = parse(&buf);
        assert_eq!(v["ms"], serde_json::json!(0.0));
        assert!(v.get("ua").is_none() && v.get("cmcd").is_none());
    }

    #[test]
    fn hostile_paths_and_user_agents_stay_one_parseable_line() {
        let hostile: &[&[u8]] = &[
            b"evil\nGET /forged HTTP/1.1",
            b"quote\" and \\ backslash \\\"",
            b"\r\n\t\x00\x01\x1b[31mred\x7f",
            b"\xff\xfe not utf-8 \xc3",
            "line\u{2028}sep\u{2029}para \u{00e9}\u{1f600}".as_bytes(),
            b"\",\"status\":999,\"x\":\"",
            b"",
        ];
        for h in hostile {
            let path = String::from_utf8_lossy(h).into_owned();
            let buf = format(&line(&path, Some(h)), 7, Duration::from_millis(3));
            let text = String::from_utf8(buf.clone()).expect("the line is UTF-8");
            assert!(!text.contains('\r') && !text.contains('\u{2028}'), "{text}");
            assert!(
                !text.bytes().any(|b| b < 0x20 && b != b'\n'),
                "raw control byte: {text}"
            );
            let v = parse(&buf);
            // Valid UTF-8 comes back exactly; invalid bytes as U+FFFD.
            assert_eq!(v["ua"], serde_json::json!(String::from_utf8_lossy(h)));
            assert_eq!(v["path"], serde_json::json!(path));
            assert_eq!(
                v["status"],
                serde_json::json!(200),
                "a value cannot forge a field"
            );
            assert_eq!(v["bytes"], serde_json::json!(7));
        }
    }

    #[test]
    fn ipv6_clients_and_odd_methods_are_written_whole() {
        let mut l = line("/x", None);
        l.client = "2001:db8::ffff:1.2.3.4".parse().expect("ip");
        l.method = "PROPFIND";
        let v = parse(&format(&l, 0, Duration::ZERO));
        assert_eq!(v["client"], serde_json::json!("2001:db8::ffff:102:304"));
        assert_eq!(v["method"], serde_json::json!("PROPFIND"));
    }

    fn start(path: &std::path::Path, queue: usize) -> AccessLog {
        let mut c = AccessLogConfig::new(path.to_str().expect("utf-8 path"));
        c.queue_lines = queue;
        c.flush_interval = Duration::from_millis(50);
        AccessLog::start(c).expect("start")
    }

    fn send_line(log: &AccessLog, n: u64) {
        let mut buf = take_buffer(&log.inner.shared);
        format_head(&mut buf, &line(&format!("/n/{n}"), Some(b"t")));
        format_tail(&mut buf, n, Duration::ZERO);
        log.send(buf);
    }

    #[test]
    fn every_line_from_many_threads_reaches_the_file_by_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("access.log");
        let log = start(&path, DEFAULT_QUEUE_LINES);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000u64 {
                        send_line(&log, t * 1_000_000 + i);
                        if i % 1000 == 0 {
                            // Let the writer drain now and then, as requests do.
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        log.close(Duration::from_secs(10));
        let text = std::fs::read_to_string(&path).expect("read");
        let mut seen: Vec<u64> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                v["bytes"].as_u64().expect("bytes")
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        let s = log.stats();
        assert_eq!(s.dropped, 0, "{s:?}");
        assert_eq!(seen.len(), 20_000);
        assert_eq!(text.lines().count(), 20_000);
        assert_eq!(s.written, 20_000);
        // After close, lines are dropped and counted, not lost silently.
        send_line(&log, 1);
        assert_eq!(log.stats().dropped, 1);
    }

    #[test]
    fn a_renamed_file_is_reopened_and_sighup_reopens_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("access.log");
        let log = start(&path, 1024);
        send_line(&log, 1);
        let wait = |what: &str, f: &dyn Fn() -> bool| {
            let until = Instant::now() + Duration::from_secs(10);
            while !f() {
                assert!(Instant::now() < until, "timed out waiting: {what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let lines = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        wait("first line flushed", &|| lines(&path) == 1);
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).expect("rename");
        wait("reopened after rename", &|| log.stats().reopens == 1);
        send_line(&log, 2);
        wait("second line in the new file", &|| lines(&path) == 1);
        assert_eq!(lines(&rotated), 1);
        // An explicit reopen (SIGHUP) while the path still names the file.
        log.reopen();
        wait("reopened on request", &|| log.stats().reopens == 2);
        send_line(&log, 3);
        log.close(Duration::from_secs(10));
        assert_eq!(lines(&path), 2);
        assert_eq!(log.stats().write_errors, 0);
    }

    #[test]
    fn a_full_device_counts_errors_and_never_blocks() {
        let full = std::path::Path::new("/dev/full");
        assert!(full.exists(), "/dev/full is missing (Linux has it)");
        let log = start(full, 1024);
        for i in 0..5_000 {
            send_line(&log, i);
        }
        let until = Instant::now() + Duration::from_secs(10);
        while log.stats().write_errors == 0 {
            assert!(Instant::now() < until, "no write error counted");
            std::thread::sleep(Duration::from_millis(10));
        }
        log.close(Duration::from_secs(10));
        let s = log.stats();
        assert!(s.write_errors > 0 && s.dropped > 0, "{s:?}");
        assert_eq!(s.written + s.dropped, 5_000, "{s:?}");
    }
}
