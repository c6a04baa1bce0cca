//! Plain HTTP/1.1 keep-alive connections parked outside hyper between requests
//! (`src/park.rs`), against real sockets: the connection goes on serving after each
//! park (the `mediamesh_http_connections_parked` gauge shows it parked), pipelined
//! requests are answered in order, a request head or body split across writes with
//! a pause between is answered, `Connection: close` and HTTP/1.0 still close, the
//! idle timeout closes a parked connection, and parked connections still hold their
//! slot of the connection cap. A parked connection lives in the listener's parking
//! lot (`src/lot.rs`, no task): one the client closes leaves it and frees its slots,
//! hundreds parked at once all answer their next request (also with the connections
//! spread over threads), and closing the listener closes them. Every wait is
//! bounded; nothing is timed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use service::{serve_threaded, serve_with, ConnLimits, ServeLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const BOUND: Duration = Duration::from_secs(15);
/// A pause between two writes, long enough for the server to see them apart.
const PAUSE: Duration = Duration::from_millis(150);

/// A server answering `<method> <path> <body>` to every request (the body read
/// whole).
async fn start(limits: ServeLimits, conn: ConnLimits) -> SocketAddr {
    start_task(limits, conn).await.0
}

/// The answer of every test server: `<method> <path> <body>`.
async fn echo(req: Request<Incoming>, _peer: SocketAddr) -> Response<String> {
    let line = format!("{} {}", req.method(), req.uri().path());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Default::default(),
    };
    Response::new(format!("{line} {}", String::from_utf8_lossy(&body)))
}

/// [`start`], with the server's task (aborting it closes the listener).
async fn start_task(limits: ServeLimits, conn: ConnLimits) -> (SocketAddr, JoinHandle<()>) {
    service::metrics::handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(serve_with(listener, limits, conn, None, echo));
    (addr, task)
}

/// [`start`] with the connections on `threads` threads of their own.
async fn start_threaded(limits: ServeLimits, threads: usize) -> SocketAddr {
    service::metrics::handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_threaded(listener, limits, None, threads, echo, None));
    addr
}

fn limits(max_connections: usize) -> ServeLimits {
    ServeLimits {
        max_connections,
        ..ServeLimits::default()
    }
}

/// The parked gauge is one per process, and `cargo test` runs a file's tests on
/// threads of one process: the tests that read it run one at a time, each from none
/// parked (what the one before left is closed once its runtime is gone).
static GAUGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    let one = GAUGE.lock().await;
    assert!(parked_exactly(0.0).await, "{} left parked", parked());
    one
}

/// Parked connections now, as `/metrics` shows them (0 before the first park).
fn parked() -> f64 {
    service::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix("mediamesh_http_connections_parked "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits (bounded) until exactly `n` connections are parked; true if they were.
async fn parked_exactly(n: f64) -> bool {
    let until = Instant::now() + BOUND;
    while Instant::now() < until {
        if parked() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Waits (bounded) until at least `n` connections are parked; true if they were.
async fn parked_at_least(n: f64) -> bool {
    let until = Instant::now() + BOUND;
    while Instant::now() < until {
        if parked() >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// A client connection with what it has read but not yet used (pipelined answers
/// can arrive in one read).
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let s = tokio::time::timeout(BOUND, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Client { s, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write");
    }

    /// Reads more; false when the server closed.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(BOUND, self.s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("no answer and no close within {BOUND:?}"),
        }
    }

    /// The next response: (head, body); `None` when the server closed first.
    async fn response(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_string())
                    })
                    .and_then(|v| v.parse().ok())
                    .expect("content-length");
                if self.buf.len() >= end + 4 + len {
                    let body =
                        String::from_utf8_lossy(&self.buf[end + 4..end + 4 + len]).into_owned();
                    self.buf.drain(..end + 4 + len);
                    return Some((head, body));
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The body of the next response, which must be a 200.
    async fn ok_body(&mut self) -> String {
        let (head, body) = self.response().await.expect("an answer, not a close");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body
    }

    async fn get(&mut self, path: &str) -> String {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await;
        self.ok_body().await
    }

    /// Waits (bounded) until the server closes; true if it did.
    async fn closed_by_server(&mut self) -> bool {
        let until = Instant::now() + BOUND;
        let mut chunk = [0u8; 256];
        while Instant::now() < until {
            match tokio::time::timeout(Duration::from_millis(500), self.s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) | Err(_) => {}
            }
        }
        false
    }
}

#[tokio::test]
async fn keep_alive_survives_parking() {
    let _alone = alone().await;
    let addr = start(limits(16), ConnLimits::default()).await;
    let mut c = Client::connect(addr).await;
    for i in 0..5 {
        assert_eq!(c.get(&format!("/{i}")).await, format!("GET /{i} "));
        // Between requests the connection is parked (outside hyper)…
        assert!(parked_at_least(1.0).await, "request {i}: never parked");
        tokio::time::sleep(PAUSE).await;
    }
    // …and the next request on the same socket wakes it.
    assert_eq!(c.get("/last").await, "GET /last ");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let _alone = alone().await;
    let addr = start(limits(16), ConnLimits::default()).await;
    let mut c = Client::connect(addr).await;
    // On a fresh connection and on a parked one.
    for round in 0..2 {
        c.send(
            b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n\
              POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyzGET /d HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .await;
        assert_eq!(c.ok_body().await, "GET /a ", "round {round}");
        assert_eq!(c.ok_body().await, "GET /b ", "round {round}");
        assert_eq!(c.ok_body().await, "POST /c xyz", "round {round}");
        assert_eq!(c.ok_body().await, "GET /d ", "round {round}");
        assert!(parked_at_least(1.0).await, "round {round}: never parked");
    }
}

#[tokio::test]
async fn a_request_head_split_across_writes_is_answered() {
    let _alone = alone().await;
    let addr = start(limits(16), ConnLimits::default()).await;
    let mut c = Client::connect(addr).await;
    // First on a fresh connection, then on a parked one.
    for round in 0..2 {
        c.send(b"GET /split HTTP/1.1\r\nHo").await;
        tokio::time::sleep(PAUSE).await;
        c.send(b"st: t\r\n").await;
        tokio::time::sleep(PAUSE).await;
        c.send(b"\r\n").await;
        assert_eq!(c.ok_body().await, "GET /split ", "round {round}");
        assert!(parked_at_least(1.0).await, "round {round}: never parked");
    }
}

#[tokio::test]
async fn request_bodies_across_writes_are_read_whole() {
    let _alone = alone().await;
    let addr = start(limits(16), ConnLimits::default()).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.get("/first").await, "GET /first ");
    assert!(parked_at_least(1.0).await, "never parked");
    // A body in two writes with a pause between: not parked in the middle.
    c.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        .await;
    tokio::time::sleep(PAUSE).await;
    c.send(b"world").await;
    assert_eq!(c.ok_body().await, "POST /p helloworld");
    assert!(parked_at_least(1.0).await, "not parked after the body");
    // A chunked body (not followed: served, and the connection goes on).
    c.send(b"POST /ch HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        .await;
    tokio::time::sleep(PAUSE).await;
    c.send(b"2\r\nde\r\n0\r\n\r\n").await;
    assert_eq!(c.ok_body().await, "POST /ch abcde");
    assert_eq!(c.get("/after").await, "GET /after ");
}

#[tokio::test]
async fn connection_close_and_http10_still_close() {
    let _alone = alone().await;
    let addr = start(limits(16), ConnLimits::default()).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.get("/1").await, "GET /1 ");
    assert!(parked_at_least(1.0).await, "never parked");
    c.send(b"GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(c.ok_body().await, "GET /bye ");
    assert!(c.closed_by_server().await, "Connection: close kept open");

    let mut c = Client::connect(addr).await;
    c.send(b"GET /old HTTP/1.0\r\n\r\n").await;
    let (head, body) = c.response().await.expect("an answer");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert_eq!(body, "GET /old ");
    assert!(c.closed_by_server().await, "HTTP/1.0 kept open");
}

#[tokio::test]
async fn the_idle_timeout_closes_a_parked_connection() {
    let _alone = alone().await;
    let conn = ConnLimits::default().idle_timeout(Duration::from_secs(2));
    let addr = start(limits(16), conn).await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.get("/1").await, "GET /1 ");
    assert!(parked_at_least(1.0).await, "never parked");
    assert!(c.closed_by_server().await, "parked connection kept open");
    let until = Instant::now() + BOUND;
    while parked() > 0.0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        parked(),
        0.0,
        "the closed connection still counts as parked"
    );
}

#[tokio::test]
async fn parked_connections_hold_their_slot() {
    let _alone = alone().await;
    let addr = start(limits(2), ConnLimits::default()).await;
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    assert_eq!(a.get("/a").await, "GET /a ");
    assert_eq!(b.get("/b").await, "GET /b ");
    assert!(parked_at_least(2.0).await, "not both parked");
    // The cap is reached: a third connection is turned away…
    let mut c = Client::connect(addr).await;
    // (The server may have closed it already: the write may fail.)
    let _ = c.s.write_all(b"GET /c HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(
        c.response().await.is_none(),
        "a third connection was served"
    );
    // …until a parked one closes.
    drop(a);
    let until = Instant::now() + BOUND;
    let mut served = false;
    while !served && Instant::now() < until {
        let mut c = Client::connect(addr).await;
        let _ = c.s.write_all(b"GET /c HTTP/1.1\r\nHost: t\r\n\r\n").await;
        served = c.response().await.is_some();
        if !served {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(served, "the closed connection's slot did not come back");
    // The other parked connection still serves.
    assert_eq!(b.get("/b2").await, "GET /b2 ");
}

#[tokio::test]
async fn a_parked_connection_the_client_closes_leaves_the_lot_and_frees_its_slot() {
    let _alone = alone().await;
    let conn = ConnLimits::default()
        .max_connections_per_ip(1)
        .park_after(Duration::ZERO);
    let addr = start(limits(16), conn).await;
    let mut a = Client::connect(addr).await;
    assert_eq!(a.get("/a").await, "GET /a ");
    assert!(parked_exactly(1.0).await, "never parked");
    // Parked, it still holds the address's only slot…
    let mut b = Client::connect(addr).await;
    let _ = b.s.write_all(b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(
        b.response().await.is_none(),
        "a second connection was served"
    );
    // …until the client closes it: it leaves the lot…
    drop(a);
    assert!(
        parked_exactly(0.0).await,
        "the closed connection is still parked"
    );
    // …and its slot is free (given back once the woken socket reads the close).
    let until = Instant::now() + BOUND;
    let mut served = None;
    while served.is_none() && Instant::now() < until {
        let mut c = Client::connect(addr).await;
        let _ = c.s.write_all(b"GET /c HTTP/1.1\r\nHost: t\r\n\r\n").await;
        served = c.response().await.map(|(_, body)| body);
        if served.is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(
        served.as_deref(),
        Some("GET /c "),
        "the slot did not come back"
    );
}

/// Opens `n` connections, one request each, waits until all are parked, then asks
/// each for a second answer.
async fn many_parked_answer_again(addr: SocketAddr, n: usize) {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = Client::connect(addr).await;
        assert_eq!(c.get(&format!("/{i}")).await, format!("GET /{i} "));
        clients.push(c);
    }
    assert!(parked_exactly(n as f64).await, "{} of {n} parked", parked());
    // All at once: every socket wakes in the lot.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("GET /again{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await;
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(
            c.ok_body().await,
            format!("GET /again{i} "),
            "connection {i}"
        );
    }
    assert!(parked_exactly(n as f64).await, "not all parked again");
}

#[tokio::test]
async fn many_parked_connections_all_answer_a_second_request() {
    let _alone = alone().await;
    let conn = ConnLimits::default().park_after(Duration::ZERO);
    let addr = start(limits(1000), conn).await;
    many_parked_answer_again(addr, 500).await;
    // Parked connections have no task: the accept loop's is the only one left.
    let rt = tokio::runtime::Handle::current();
    let until = Instant::now() + BOUND;
    while rt.metrics().num_alive_tasks() > 1 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        rt.metrics().num_alive_tasks(),
        1,
        "tasks besides the accept loop"
    );
}

#[tokio::test]
async fn parked_connections_on_connection_threads_answer_again() {
    let _alone = alone().await;
    let limits = ServeLimits {
        max_connections: 1000,
        conn: ConnLimits::default().park_after(Duration::ZERO),
        ..ServeLimits::default()
    };
    let addr = start_threaded(limits, 2).await;
    many_parked_answer_again(addr, 200).await;
}

#[tokio::test]
async fn closing_the_listener_closes_parked_connections() {
    let _alone = alone().await;
    let (addr, server) = start_task(limits(16), ConnLimits::default()).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(addr).await;
        assert_eq!(c.get(&format!("/{i}")).await, format!("GET /{i} "));
        clients.push(c);
    }
    assert!(parked_exactly(3.0).await, "not all parked");
    server.abort();
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(
            c.closed_by_server().await,
            "parked connection {i} kept open"
        );
    }
    assert!(
        parked_exactly(0.0).await,
        "closed connections still count as parked"
    );
}
