//! Sending a quick answer's body straight from its file (`sendfile`), on a plain TCP
//! socket: the kernel's socket buffers point at the file's pages instead of getting
//! a copy of the bytes. The edge keeps large cached bodies in sealed memory files for
//! this (`cache::sealed`); `park.rs` sends them here once the answer's head is out.
//!
//! The socket's unsent mark: while a body goes out by `sendfile`, the socket is told
//! to report itself writable only when less than [`UNSENT_MARK`] bytes are queued
//! but unsent (`TCP_NOTSENT_LOWAT`), and the mark is lifted again when the body is
//! out. Measured on loopback with `wrk -t2 -c100` and a 2 MiB body (bench/README.md):
//! without the mark, `sendfile` cut the server's time per answer from about 400 µs
//! to 130–160 µs but doubled wrk's (why, in the kernel, was not measured), so fewer
//! answers went out than by copy; with a 16–32 KiB mark, the server took 250–330 µs
//! and wrk no more than with copy. On a real network the mark also keeps the socket
//! from queueing megabytes that the congestion window will not let out for a while
//! (what is sent later is decided later).
//!
//! Not here: TLS (the bytes must be encrypted in this process; its IO says it
//! cannot), h2 and HTTP/3 (never on the quick path), which bodies have files.

use std::io;
use std::os::fd::BorrowedFd;
use std::task::{Context, Poll};

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::conn::GuardedIo;

/// The socket's unsent mark while a body is sent from its file (see the module doc).
pub(crate) const UNSENT_MARK: u32 = 32 * 1024;

/// An IO a quick answer's body may be sent from a file on.
pub(crate) trait SendFile {
    /// Whether this IO can send from a file at all (a plain socket can).
    fn can_send_file(&self) -> bool;

    /// Sends up to `len` bytes of `file` from `offset` on: how many went.
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>>;

    /// Sets the socket's unsent mark (`TCP_NOTSENT_LOWAT`; 0 lifts it, back to the
    /// system's default). Best effort: a socket that refuses keeps its default.
    fn set_unsent_mark(&self, bytes: u32);
}

impl SendFile for GuardedIo<TcpStream> {
    fn can_send_file(&self) -> bool {
        true
    }

    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let socket = self.get_ref();
        loop {
            std::task::ready!(socket.poll_write_ready(cx))?;
            let sent = socket.try_io(Interest::WRITABLE, || {
                let mut at = offset;
                rustix::fs::sendfile(socket, file, Some(&mut at), len).map_err(io::Error::from)
            });
            match sent {
                // The readiness was stale and is cleared: wait for the next.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn set_unsent_mark(&self, bytes: u32) {
        if let Err(e) = socket2::SockRef::from(self.get_ref()).set_tcp_notsent_lowat(bytes) {
            tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT refused");
        }
    }
}

impl<S> SendFile for TlsStream<S> {
    fn can_send_file(&self) -> bool {
        false
    }

    fn poll_send_file(
        &mut self,
        _: &mut Context<'_>,
        _: BorrowedFd<'_>,
        _: u64,
        _: usize,
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::Unsupported.into()))
    }

    fn set_unsent_mark(&self, _: u32) {}
}
