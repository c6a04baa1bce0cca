//! The accept loop's per-connection bounds against real sockets: silent sockets are
//! closed after the first-byte timeout, idle keep-alive connections after the idle
//! timeout, upgraded connections keep their connection permit, and one address
//! cannot take more than its per-IP share. Every wait is bounded; no assertion
//! depends on how fast the machine is.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use service::{serve_with, ConnLimits, ServeLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const BOUND: Duration = Duration::from_secs(15);

/// Starts a server: `GET` answers "ok"; a request with `Upgrade: test` is upgraded
/// and the upgraded socket is held until the client closes it.
async fn start(limits: ServeLimits, conn: ConnLimits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_with(
        listener,
        limits,
        conn,
        None,
        |mut req: Request<Incoming>, _peer| async move {
            if req.headers().contains_key(hyper::header::UPGRADE) {
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(up) = on.await {
                        let mut io = TokioIo::new(up);
                        let mut buf = [0u8; 64];
                        while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
                    }
                });
                let mut r = Response::new(String::new());
                *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                r.headers_mut()
                    .insert(hyper::header::UPGRADE, "test".parse().unwrap());
                r.headers_mut()
                    .insert(hyper::header::CONNECTION, "upgrade".parse().unwrap());
                r
            } else {
                Response::new("ok".to_string())
            }
        },
    ));
    addr
}

async fn connect_from(src: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(IpAddr::V4(src), 0)).unwrap();
    tokio::time::timeout(BOUND, s.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Reads a response head; `None` when the server closed without one.
async fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = match tokio::time::timeout(BOUND, s.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => return None,
            Err(_) => panic!("no answer and no close within {BOUND:?}"),
        };
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&buf[..end]).into_owned());
        }
    }
}

/// One GET on a new connection from `src`: whether it was answered.
async fn served_from(src: Ipv4Addr, addr: SocketAddr) -> bool {
    let mut s = connect_from(src, addr).await;
    if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    matches!(read_head(&mut s).await, Some(h) if h.starts_with("HTTP/1.1 200"))
}

async fn served(addr: SocketAddr) -> bool {
    served_from(Ipv4Addr::LOCALHOST, addr).await
}

/// An upgraded connection (held open by the server until we close it).
async fn upgraded(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n")
        .await
        .ok()?;
    let head = read_head(&mut s).await?;
    head.starts_with("HTTP/1.1 101").then_some(s)
}

/// Waits (bounded) until the server closes `s`; true if it did.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let until = Instant::now() + BOUND;
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}

/// Polls until a new GET is served, bounded.
async fn eventually_served(addr: SocketAddr) -> bool {
    let until = Instant::now() + BOUND;
    while Instant::now() < until {
        if served(addr).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn small(max_connections: usize) -> ServeLimits {
    ServeLimits {
        max_connections,
        header_read_timeout: Duration::from_secs(30),
        ..ServeLimits::default()
    }
}

#[tokio::test]
async fn silent_sockets_are_closed_after_the_first_byte_timeout() {
    let conn = ConnLimits::default().first_byte_timeout(Duration::from_millis(300));
    let addr = start(small(2), conn).await;
    let mut a = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    let mut b = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    assert!(closed_by_server(&mut a).await, "silent socket a kept open");
    assert!(closed_by_server(&mut b).await, "silent socket b kept open");
    assert!(eventually_served(addr).await, "slots did not come back");
}

#[tokio::test]
async fn a_socket_that_never_completes_a_request_is_closed() {
    // One byte, then nothing: past the first-byte check, never a request head.
    let conn = ConnLimits::default().first_byte_timeout(Duration::from_millis(200));
    let limits = ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        ..small(4)
    };
    let addr = start(limits, conn).await;
    // 'P' keeps hyper's h2c sniff waiting for the rest of the preface.
    let mut s = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    s.write_all(b"P").await.unwrap();
    assert!(closed_by_server(&mut s).await, "half a preface kept open");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let conn = ConnLimits::default().idle_timeout(Duration::from_millis(300));
    let addr = start(small(4), conn).await;
    let mut s = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await.expect("answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(closed_by_server(&mut s).await, "idle keep-alive kept open");
}

#[tokio::test]
async fn idle_h2_connections_are_closed() {
    let conn = ConnLimits::default()
        .first_byte_timeout(Duration::from_millis(200))
        .idle_timeout(Duration::from_millis(300));
    let limits = ServeLimits {
        header_read_timeout: Duration::from_millis(300),
        ..small(4)
    };
    let addr = start(limits, conn).await;
    let mut s = connect_from(Ipv4Addr::LOCALHOST, addr).await;
    // h2c preface and an empty SETTINGS frame, then silence (answering nothing).
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut s).await,
        "idle h2 connection kept open"
    );
}

#[tokio::test]
async fn upgraded_connections_keep_their_permit() {
    let addr = start(small(2), ConnLimits::default()).await;
    let first = upgraded(addr).await.expect("first upgrade");
    let _second = upgraded(addr).await.expect("second upgrade");
    // Both permits are still held by the upgraded sockets: a third is turned away.
    assert!(
        !served(addr).await,
        "upgraded connections released their permit"
    );
    // Closing one upgraded socket gives its permit back.
    drop(first);
    assert!(
        eventually_served(addr).await,
        "permit not given back on close"
    );
}

#[tokio::test]
async fn one_address_gets_its_share_and_no_more() {
    let conn = ConnLimits::default().max_connections_per_ip(2);
    let addr = start(small(100), conn).await;
    let _a = upgraded(addr).await.expect("first");
    let b = upgraded(addr).await.expect("second");
    assert!(!served(addr).await, "a third connection from one address");
    // Another address is served meanwhile.
    assert!(served_from(Ipv4Addr::new(127, 0, 0, 2), addr).await);
    drop(b);
    assert!(
        eventually_served(addr).await,
        "share not given back on close"
    );
}
