//! The parking lot of one listener: idle plain HTTP/1.1 sockets that no task, no
//! tokio I/O registration and no tracing span hold, watched by one thread with an
//! epoll of its own until they become readable (the next request, or the client's
//! close), then handed back to the runtime they came from; closed when their idle
//! deadline passes or when the listener shuts down. See `park.rs` for why it exists
//! and when a connection is parked; this module only keeps the sockets.
//!
//! What it is not: it never reads or writes a socket, knows nothing of HTTP, and
//! does not serve: waking a socket means giving it to the `resume` function the
//! listener gave the lot (which spawns the serving task again).
//!
//! Bounds: an entry exists only for a connection that holds its slots (its
//! [`ConnGuard`] is in the entry), so the lot never holds more entries than the
//! listener's connection cap; the thread starts at the first park and ends when the
//! listener closes the lot.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use crate::conn::{closed, ConnGuard, Expired};

/// The lot thread's own wake-up (a new earliest deadline, or the close).
const WAKE: Token = Token(usize::MAX);

/// Stack of the lot thread: it only moves entries and spawns tasks.
const STACK: usize = 256 * 1024;

/// One parked connection: what it needs to be served again, and nothing more.
pub(crate) struct Parked {
    /// Deregistered from tokio (non-blocking).
    pub(crate) socket: std::net::TcpStream,
    /// Its slots of the connection caps, released when the entry is dropped.
    pub(crate) guard: ConnGuard,
    pub(crate) peer: SocketAddr,
    /// The runtime that served it, and will again.
    pub(crate) runtime: tokio::runtime::Handle,
    /// The watchdog's state (`Activity::idle_since`).
    pub(crate) since: Instant,
    pub(crate) started: bool,
    /// When the watchdog would close it, and why.
    pub(crate) deadline: Instant,
    pub(crate) why: Expired,
}

/// Serves a woken connection again (spawns its task); dropping the entry instead
/// closes the connection.
pub(crate) type Resume = Box<dyn Fn(Parked) + Send + Sync>;

/// The lot of one listener (cheap to clone: a reference).
#[derive(Clone)]
pub(crate) struct Lot {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Set at the first park: `None` if the epoll or the thread could not be made.
    io: OnceLock<Option<LotIo>>,
    resume: Resume,
    /// `mediamesh_http_connections_parked`.
    gauge: ::metrics::Gauge,
}

/// What other threads need to reach the lot thread's epoll.
struct LotIo {
    registry: Registry,
    waker: Waker,
}

#[derive(Default)]
struct State {
    entries: Slab<Parked>,
    /// Deadlines in order, with the entry's key. Not a FIFO in parking order: the
    /// idle deadline counts from the end of the last request, and connections do not
    /// park in that order (the linger, pipelined answers, slow flushes), so a FIFO
    /// would close some late; a set also removes a woken entry at once, where a FIFO
    /// would keep one dead item per wake-up for the whole idle timeout.
    deadlines: BTreeSet<(Instant, usize)>,
    closed: bool,
}

impl Lot {
    pub(crate) fn new(gauge: ::metrics::Gauge, resume: Resume) -> Lot {
        Lot {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                io: OnceLock::new(),
                resume,
                gauge,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn io(&self) -> Option<&LotIo> {
        self.inner
            .io
            .get_or_init(|| match start(self.inner.clone()) {
                Ok(io) => Some(io),
                Err(e) => {
                    tracing::warn!(error = %e, "no parking lot: idle HTTP/1.1 connections stay in their tasks");
                    None
                }
            })
            .as_ref()
    }

    /// True when connections can be parked here (the thread runs, starting it if
    /// needed, and the listener is open).
    pub(crate) fn available(&self) -> bool {
        self.io().is_some() && !self.state().closed
    }

    /// Parks `p` until its socket is readable (then `resume`), its deadline passes
    /// or the lot closes (then it is closed). A lot that cannot take it closes it.
    pub(crate) fn park(&self, p: Parked) {
        let Some(io) = self.io() else {
            return;
        };
        let fd = p.socket.as_raw_fd();
        let deadline = p.deadline;
        let mut state = self.state();
        if state.closed {
            return;
        }
        let key = state.entries.vacant_key();
        // Edge-triggered; a socket already readable reports at once. Registered under
        // the lock, so the thread finds the entry when the event comes.
        if let Err(e) = io
            .registry
            .register(&mut SourceFd(&fd), Token(key), Interest::READABLE)
        {
            drop(state);
            tracing::debug!(error = %e, "cannot park a connection; closing it");
            return;
        }
        state.entries.insert(p);
        state.deadlines.insert((deadline, key));
        let earliest = state.deadlines.first() == Some(&(deadline, key));
        drop(state);
        self.inner.gauge.increment(1.0);
        if earliest {
            // The thread may sleep until a later deadline.
            if let Err(e) = io.waker.wake() {
                tracing::warn!(error = %e, "cannot wake the parking lot");
            }
        }
    }

    /// Closes every parked connection and ends the thread; later parks close their
    /// connection at once.
    pub(crate) fn close(&self) {
        self.state().closed = true;
        if let Some(Some(io)) = self.inner.io.get() {
            if let Err(e) = io.waker.wake() {
                tracing::warn!(error = %e, "cannot wake the parking lot to close it");
            }
        }
    }

    /// Closes the lot when dropped (held by the accept loop's future).
    pub(crate) fn close_on_drop(&self) -> CloseOnDrop {
        CloseOnDrop(self.clone())
    }
}

/// See [`Lot::close_on_drop`].
pub(crate) struct CloseOnDrop(Lot);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Makes the epoll and starts the thread.
fn start(inner: Arc<Inner>) -> io::Result<LotIo> {
    let poll = Poll::new()?;
    let registry = poll.registry().try_clone()?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    std::thread::Builder::new()
        .name("http-park".into())
        .stack_size(STACK)
        .spawn(move || run(&Lot { inner }, poll))?;
    Ok(LotIo { registry, waker })
}

/// The lot thread: waits for readable sockets and deadlines until the lot closes.
fn run(lot: &Lot, mut poll: Poll) {
    let mut events = Events::with_capacity(256);
    let mut woken = Vec::new();
    let mut expired = Vec::new();
    loop {
        let timeout = {
            let state = lot.state();
            if state.closed {
                break;
            }
            state
                .deadlines
                .first()
                .map(|(d, _)| d.saturating_duration_since(Instant::now()))
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(error = %e, "parking lot poll failed");
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        {
            let mut state = lot.state();
            // Events first: an entry can only leave the lot on this thread, so every
            // event of this batch is for the entry its key names now.
            for ev in events.iter() {
                let key = ev.token().0;
                if ev.token() == WAKE {
                    continue;
                }
                if let Some(p) = take(&mut state, poll.registry(), key) {
                    woken.push(p);
                }
            }
            let now = Instant::now();
            while let Some(&(d, key)) = state.deadlines.first() {
                if d > now {
                    break;
                }
                state.deadlines.pop_first();
                if let Some(p) = take(&mut state, poll.registry(), key) {
                    expired.push(p);
                }
            }
        }
        let left = woken.len() + expired.len();
        if left > 0 {
            lot.inner.gauge.decrement(left as f64);
        }
        for p in expired.drain(..) {
            let _span = tracing::info_span!("conn", peer = %p.peer).entered();
            closed(p.why.label());
            drop(p);
        }
        for p in woken.drain(..) {
            (lot.inner.resume)(p);
        }
    }
    // Closed: every parked connection with it.
    let all: Vec<Parked> = {
        let mut state = lot.state();
        state.deadlines.clear();
        state.entries.drain().collect()
    };
    if !all.is_empty() {
        lot.inner.gauge.decrement(all.len() as f64);
        tracing::debug!(
            connections = all.len(),
            "listener closed: parked connections closed"
        );
    }
    drop(all);
}

/// Takes entry `key` out of the lot (and its socket out of the epoll).
fn take(state: &mut State, registry: &Registry, key: usize) -> Option<Parked> {
    let p = state.entries.try_remove(key)?;
    state.deadlines.remove(&(p.deadline, key));
    if let Err(e) = registry.deregister(&mut SourceFd(&p.socket.as_raw_fd())) {
        tracing::debug!(error = %e, "cannot take a parked socket out of the lot's epoll");
    }
    Some(p)
}
