//! The quick path (`src/quick.rs`) against real sockets. HTTP/1.1: a request
//! the handler's [`Quick`] answers never reaches the hyper handler, one it declines
//! does, and on one connection the two kinds mix in any order, also pipelined in one
//! write, each answered in order. A quick answer larger than the socket takes at once
//! is finished before hyper's next answer starts; the idle timeout and parking still
//! work after quick answers; a connection kept busy with quick requests for longer
//! than hyper's header-read timeout stays open, plain and over TLS. A head longer than
//! the quick path reads at once goes to hyper whole, and a TLS connection that only
//! ever had quick requests is closed cleanly when idle. A body the handler has in a
//! file is sent from it on a plain socket (in order with the answers around it, also
//! when a client leaves in its middle) and from its bytes over TLS. HTTP/2 (TLS and
//! h2c): a plain `GET` the handler answers as fields gets that answer, and what is not
//! one (a body, another method, a target that is not plain, one declined) goes to
//! hyper, on one connection. Every wait is bounded; nothing is timed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Request, Response};
use service::{serve_threaded, BodyFile, ConnLimits, Quick, QuickBody, QuickRequest, ServeLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(15);
const BIG: usize = 8 * 1024 * 1024;

/// Answers `/q/...` itself (`quick <target>`, or 8 MiB for `/q/big`, or for
/// `/q/file` a body with a file), counting.
struct Q {
    answered: AtomicUsize,
    /// Answers to HTTP/2 requests ([`Quick::answer_fields`]).
    answered_h2: AtomicUsize,
    /// [`FILE_AT`] bytes of `-`, then [`file_bytes`].
    file: Arc<std::fs::File>,
}

/// Where the file answer's body starts in its file.
const FILE_AT: u64 = 100;
/// Its length: more than a socket takes at once.
const FILE_LEN: usize = 3 * 1024 * 1024 + 7;

fn file_bytes() -> Vec<u8> {
    (0..FILE_LEN).map(|i| (i % 251) as u8).collect()
}

impl Q {
    fn new() -> Arc<Q> {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[b'-'; FILE_AT as usize]).unwrap();
        f.write_all(&file_bytes()).unwrap();
        Arc::new(Q {
            answered: AtomicUsize::new(0),
            answered_h2: AtomicUsize::new(0),
            file: Arc::new(f),
        })
    }
}

impl Quick for Q {
    fn answer(&self, req: &QuickRequest<'_>, head: &mut Vec<u8>) -> Option<QuickBody> {
        if !req.path().starts_with("/q/") {
            return None;
        }
        self.answered.fetch_add(1, Ordering::SeqCst);
        head.extend_from_slice(b"HTTP/1.1 200 OK\r\nx-path: quick\r\n");
        service::put_date(head, std::time::SystemTime::now());
        if req.path() == "/q/big" {
            return Some(Bytes::from(vec![b'b'; BIG]).into());
        }
        if req.path() == "/q/file" {
            // The bytes differ from the file's on purpose (a handler must not do
            // this): what arrives says which of the two was sent.
            return Some(QuickBody {
                bytes: Bytes::from(vec![b'c'; FILE_LEN]),
                file: Some(BodyFile {
                    fd: self.file.clone(),
                    offset: FILE_AT,
                }),
            });
        }
        Some(Bytes::from(format!("quick {}", req.target())).into())
    }

    fn answer_fields(&self, req: &QuickRequest<'_>) -> Option<(HeaderMap, Bytes)> {
        if !req.path().starts_with("/q/") {
            return None;
        }
        self.answered_h2.fetch_add(1, Ordering::SeqCst);
        let mut fields = HeaderMap::new();
        fields.insert("x-path", HeaderValue::from_static("quick"));
        // A field looked up in any case, and the fields seen.
        let ua = String::from_utf8_lossy(req.header("User-Agent").unwrap_or(b"-"));
        let seen = req.headers().count();
        Some((
            fields,
            Bytes::from(format!("quick h2 {} ua={ua} fields={seen}", req.target())),
        ))
    }
}

async fn start(conn: ConnLimits) -> (SocketAddr, Arc<Q>) {
    start_with(ServeLimits {
        conn,
        ..ServeLimits::default()
    })
    .await
}

async fn start_with(limits: ServeLimits) -> (SocketAddr, Arc<Q>) {
    service::metrics::handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let q = Q::new();
    tokio::spawn(serve_threaded(
        listener,
        limits,
        None,
        1,
        |req: Request<Incoming>, _peer| async move { Response::new(format!("hyper {}", req.uri())) },
        Some(q.clone() as Arc<dyn Quick>),
    ));
    (addr, q)
}

/// One response read from `s`: its head (lowercase) and body (by content-length).
async fn response<S>(s: &mut S, pending: &mut Vec<u8>) -> (String, Vec<u8>)
where
    S: tokio::io::AsyncRead + Unpin,
{
    let read = async {
        loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                let total = end + 4 + len;
                while pending.len() < total {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "closed inside a body");
                    pending.extend_from_slice(&buf[..n]);
                }
                let body = pending[end + 4..total].to_vec();
                pending.drain(..total);
                return (head, body);
            }
            let mut buf = vec![0u8; 64 * 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a response: {pending:?}");
            pending.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(BOUND, read)
        .await
        .expect("a response in time")
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn quick_and_hyper_requests_mix_on_one_connection() {
    let (addr, q) = start(ConnLimits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut pending = Vec::new();
    for (target, by) in [
        ("/q/1", "quick"),
        ("/h/2", "hyper"),
        ("/q/3?x=1", "quick"),
        ("/q/3", "quick"),
        ("/h/4", "hyper"),
    ] {
        s.write_all(&get(target)).await.unwrap();
        let (head, body) = response(&mut s, &mut pending).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(String::from_utf8_lossy(&body), format!("{by} {target}"));
        assert_eq!(head.contains("x-path: quick"), by == "quick", "{head}");
        assert_eq!(head.matches("date: ").count(), 1, "{head}");
    }
    assert_eq!(q.answered.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (addr, q) = start(ConnLimits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let targets = ["/q/a", "/q/b", "/h/c", "/q/d", "/h/e", "/h/f", "/q/g"];
    let mut all = Vec::new();
    for t in targets {
        all.extend_from_slice(&get(t));
    }
    // A request with a body in the middle of the pipeline goes to hyper.
    all.extend_from_slice(b"POST /q/post HTTP/1.1\r\nHost: t\r\ncontent-length: 3\r\n\r\nabc");
    all.extend_from_slice(&get("/q/last"));
    s.write_all(&all).await.unwrap();
    let mut pending = Vec::new();
    for t in targets.iter().chain(&["/q/post", "/q/last"]) {
        let (head, body) = response(&mut s, &mut pending).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let body = String::from_utf8_lossy(&body).into_owned();
        assert!(body.ends_with(&format!(" {t}")), "{t}: {body}");
        if t.starts_with("/h/") || *t == "/q/post" {
            assert!(body.starts_with("hyper "), "{t}: {body}");
        }
    }
    // At least the two at the head of the pipeline were quick.
    assert!(q.answered.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn a_quick_answer_the_socket_takes_slowly_comes_before_the_next_one() {
    let (addr, q) = start(ConnLimits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut reqs = get("/q/big");
    reqs.extend_from_slice(&get("/h/after"));
    reqs.extend_from_slice(&get("/q/after"));
    s.write_all(&reqs).await.unwrap();
    // Nothing read for a moment: the 8 MiB answer fills the socket's buffers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.contains("x-path: quick"), "{head}");
    assert_eq!(body.len(), BIG);
    assert!(body.iter().all(|&b| b == b'b'));
    let (_, body) = response(&mut s, &mut pending).await;
    assert_eq!(body, b"hyper /h/after");
    let (_, body) = response(&mut s, &mut pending).await;
    assert!(
        body.ends_with(b" /q/after"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(q.answered.load(Ordering::SeqCst) >= 1);
    // The connection goes on.
    s.write_all(&get("/q/again")).await.unwrap();
    let (_, body) = response(&mut s, &mut pending).await;
    assert_eq!(body, b"quick /q/again");
}

#[tokio::test]
async fn a_body_with_a_file_goes_out_from_the_file_in_order_on_a_plain_socket() {
    let (addr, q) = start(ConnLimits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut reqs = Vec::new();
    for t in ["/q/file", "/q/file", "/h/after"] {
        reqs.extend_from_slice(&get(t));
    }
    s.write_all(&reqs).await.unwrap();
    // Nothing read for a moment: the first answer fills the socket's buffers, and
    // `sendfile` has to wait for room.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pending = Vec::new();
    let want = file_bytes();
    let file_answer = |head: &str, body: &[u8]| {
        assert!(head.contains("x-path: quick"), "{head}");
        assert_eq!(body.len(), FILE_LEN);
        assert!(body == want, "not the file's bytes");
    };
    for _ in 0..2 {
        let (head, body) = response(&mut s, &mut pending).await;
        file_answer(&head, &body);
    }
    let (_, body) = response(&mut s, &mut pending).await;
    assert_eq!(body, b"hyper /h/after");
    // Under the hyper connection that served `/h/after`, and then a small answer.
    s.write_all(&get("/q/file")).await.unwrap();
    let (head, body) = response(&mut s, &mut pending).await;
    file_answer(&head, &body);
    s.write_all(&get("/q/again")).await.unwrap();
    let (_, body) = response(&mut s, &mut pending).await;
    assert_eq!(body, b"quick /q/again");
    assert_eq!(q.answered.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_client_gone_in_the_middle_of_a_file_body_does_not_hurt_the_next() {
    let (addr, q) = start(ConnLimits::default()).await;
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&get("/q/file")).await.unwrap();
        // A little of the answer, then gone (reset: unread bytes are left).
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(BOUND, s.read(&mut buf))
            .await
            .expect("a first read in time")
            .unwrap();
        assert!(n > 0);
        drop(s);
    }
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&get("/q/file")).await.unwrap();
    let mut pending = Vec::new();
    let (_, body) = response(&mut s, &mut pending).await;
    assert!(body == file_bytes(), "not the file's bytes");
    assert_eq!(q.answered.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn after_quick_answers_a_connection_is_parked_and_closed_when_idle() {
    let conn = ConnLimits::default()
        .park_after(Duration::ZERO)
        .idle_timeout(Duration::from_millis(600));
    let (addr, q) = start(conn).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..3 {
        s.write_all(&get(&format!("/q/{i}"))).await.unwrap();
        let (_, body) = response(&mut s, &mut pending).await;
        assert_eq!(body, format!("quick /q/{i}").as_bytes());
        // Long enough to be parked (in the lot) between requests.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(q.answered.load(Ordering::SeqCst), 3);
    // Idle past the timeout: the server closes the connection.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(BOUND, s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed, with nothing more sent");
}

#[tokio::test]
async fn a_request_split_across_writes_is_served() {
    let (addr, _q) = start(ConnLimits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = get("/q/split");
    let (a, b) = req.split_at(9);
    s.write_all(a).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b).await.unwrap();
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // hyper had the first bytes; it serves the request (through the handler).
    assert_eq!(body, b"hyper /q/split");
}

/// A TLS server with the quick path (certificate for `localhost`) and a client
/// config trusting it that offers `alpn`.
async fn start_tls(
    alpn: &[u8],
    limits: ServeLimits,
) -> (SocketAddr, Arc<Q>, Arc<tokio_rustls::rustls::ClientConfig>) {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    service::metrics::handle();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let tls = service::load_tls(&cert, &key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let q = Q::new();
    tokio::spawn(serve_threaded(
        listener,
        limits,
        Some(tls),
        1,
        |req: Request<Incoming>, _peer| async move {
            Response::new(format!("hyper {}", req.uri().path()))
        },
        Some(q.clone() as Arc<dyn Quick>),
    ));
    let mut roots = RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let provider = tokio_rustls::rustls::crypto::ring::default_provider();
    let mut c = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![alpn.to_vec()];
    (addr, q, Arc::new(c))
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<tokio_rustls::rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        BOUND,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .unwrap()
}

#[tokio::test]
async fn http11_and_h2_over_tls_take_the_quick_path() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    // Origin form over HTTP/1.1 (an absolute target is not quick), absolute over h2.
    let req = |target: String| {
        Request::get(target)
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // HTTP/1.1: quick and hyper answers on one connection.
    let (addr, q, config) = start_tls(b"http/1.1", ServeLimits::default()).await;
    let tls = tls_connect(addr, config).await;
    let (mut send, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(c);
    for (path, want) in [
        ("/q/0", "quick /q/0"),
        ("/q/1", "quick /q/1"),
        ("/h/2", "hyper /h/2"),
        ("/q/3", "quick /q/3"),
    ] {
        let res = tokio::time::timeout(BOUND, send.send_request(req(path.to_string())))
            .await
            .expect("answer in time")
            .unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(String::from_utf8_lossy(&body), want);
    }
    assert_eq!(q.answered.load(Ordering::SeqCst), 3);
    // HTTP/2: the handler's answer for h2 (`answer_fields`), the other for hyper.
    let (addr, q, config) = start_tls(b"h2", ServeLimits::default()).await;
    let tls = tls_connect(addr, config).await;
    h2_quick_and_hyper(tls, "https", &q).await;
    assert_eq!(q.answered.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn h2c_takes_the_quick_path_and_what_it_does_not_take_goes_to_hyper() {
    let (addr, q) = start(ConnLimits::default()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    h2_quick_and_hyper(tcp, "http", &q).await;
    assert_eq!(q.answered.load(Ordering::SeqCst), 0);
}

/// Over one HTTP/2 connection on `io`: GETs the handler's quick path takes are
/// answered by it (its fields, a length and a date added by hyper), and a request
/// with a body, a method other than `GET`, a target that is not plain, or one it
/// declines goes to hyper, in any order.
async fn h2_quick_and_hyper<I>(io: I, scheme: &str, q: &Q)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (mut send, c) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(c);
    // (method, target, request body, the quick answer's body or `None` for hyper's)
    let cases: [(&str, &str, &[u8], Option<&str>); 7] = [
        ("GET", "/q/1", b"", Some("quick h2 /q/1 ua=t fields=1")),
        (
            "GET",
            "/q/2?x=1",
            b"",
            Some("quick h2 /q/2?x=1 ua=t fields=1"),
        ),
        ("POST", "/q/3", b"", None),
        ("GET", "/q/4", b"a body", None),
        ("GET", "/q/%41", b"", None),
        ("GET", "/h/6", b"", None),
        ("GET", "/q/7", b"", Some("quick h2 /q/7 ua=t fields=1")),
    ];
    for (method, target, body, quick) in cases {
        let req = Request::builder()
            .method(method)
            .uri(format!("{scheme}://localhost{target}"))
            .header("user-agent", "t")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        let res = tokio::time::timeout(BOUND, send.send_request(req))
            .await
            .expect("answer in time")
            .unwrap();
        let what = format!("{method} {target}");
        assert!(res.headers().contains_key("date"), "{what}");
        let from_quick = res.headers().get("x-path").is_some();
        let length = res.headers().get("content-length").cloned();
        let got = res.into_body().collect().await.unwrap().to_bytes();
        let got = String::from_utf8_lossy(&got).into_owned();
        match quick {
            Some(want) => {
                assert!(from_quick, "{what}");
                assert_eq!(got, want, "{what}");
                assert_eq!(length, Some(HeaderValue::from(got.len())), "{what}");
            }
            None => {
                assert!(!from_quick, "{what}");
                // The handler answers `hyper <uri or path>`.
                let path = target.split('?').next().unwrap_or(target);
                assert!(
                    got.starts_with("hyper ") && got.ends_with(path),
                    "{what}: {got}"
                );
            }
        }
    }
    assert_eq!(q.answered_h2.load(Ordering::SeqCst), 3);
}

/// hyper's header-read timer of these tests: a connection busy with quick requests
/// for three times as long must stay open.
const HEAD_TIMEOUT: Duration = Duration::from_millis(800);

fn short_head_timeout() -> ServeLimits {
    ServeLimits {
        header_read_timeout: HEAD_TIMEOUT,
        ..ServeLimits::default()
    }
}

/// Quick requests one after another (20 ms apart, so the connection never lingers
/// long enough to be parked) for `3 * HEAD_TIMEOUT` on one connection; each must be
/// answered. hyper never sees them, so without a new hyper connection in time its
/// header-read timer, armed before the first, would close the connection.
async fn busy_with_quick_requests<S>(s: &mut S, pending: &mut Vec<u8>) -> usize
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let until = tokio::time::Instant::now() + 3 * HEAD_TIMEOUT;
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        let target = format!("/q/{n}");
        s.write_all(&get(&target)).await.unwrap();
        // (Closed by the server: "closed before a response".)
        let (head, body) = response(s, pending).await;
        assert!(head.starts_with("http/1.1 200"), "{target}: {head}");
        assert_eq!(body, format!("quick {target}").as_bytes());
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

#[tokio::test]
async fn quick_requests_for_longer_than_the_header_timeout_keep_the_connection() {
    let (addr, q) = start_with(short_head_timeout()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut pending = Vec::new();
    let n = busy_with_quick_requests(&mut s, &mut pending).await;
    assert_eq!(q.answered.load(Ordering::SeqCst), n);
    // hyper's requests still work on it.
    s.write_all(&get("/h/after")).await.unwrap();
    let (_, body) = response(&mut s, &mut pending).await;
    assert_eq!(body, b"hyper /h/after");
}

#[tokio::test]
async fn quick_requests_over_tls_for_longer_than_the_header_timeout_keep_the_connection() {
    let (addr, q, config) = start_tls(b"http/1.1", short_head_timeout()).await;
    let mut s = tls_connect(addr, config).await;
    let mut pending = Vec::new();
    let n = busy_with_quick_requests(&mut s, &mut pending).await;
    assert_eq!(q.answered.load(Ordering::SeqCst), n);
}

#[tokio::test]
async fn a_head_longer_than_the_quick_read_buffer_goes_to_hyper_whole() {
    let (addr, q) = start(ConnLimits::default()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // 12 KiB of head, in one write, as the connection's first request: more than the
    // quick path reads at once (8 KiB), less than the head limit (16 KiB).
    let long = format!(
        "GET /q/long HTTP/1.1\r\nHost: t\r\nx-long: {}\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    s.write_all(long.as_bytes()).await.unwrap();
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"hyper /q/long");
    // The connection goes on, quick again.
    s.write_all(&get("/q/after")).await.unwrap();
    let (_, body) = response(&mut s, &mut pending).await;
    assert_eq!(body, b"quick /q/after");
    assert_eq!(q.answered.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn over_tls_a_body_with_a_file_goes_out_from_its_bytes() {
    let (addr, q, config) = start_tls(b"http/1.1", ServeLimits::default()).await;
    let mut s = tls_connect(addr, config).await;
    let mut reqs = get("/q/file");
    reqs.extend_from_slice(&get("/q/after"));
    s.write_all(&reqs).await.unwrap();
    let mut pending = Vec::new();
    let (head, body) = response(&mut s, &mut pending).await;
    assert!(head.contains("x-path: quick"), "{head}");
    assert_eq!(body.len(), FILE_LEN);
    assert!(body.iter().all(|&b| b == b'c'), "TLS sent from the file");
    let (_, body) = response(&mut s, &mut pending).await;
    assert_eq!(body, b"quick /q/after");
    assert_eq!(q.answered.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_tls_connection_of_quick_requests_is_closed_cleanly_when_idle() {
    let limits = ServeLimits {
        conn: ConnLimits::default().idle_timeout(Duration::from_millis(600)),
        ..ServeLimits::default()
    };
    let (addr, q, config) = start_tls(b"http/1.1", limits).await;
    let mut s = tls_connect(addr, config).await;
    let mut pending = Vec::new();
    for i in 0..3 {
        s.write_all(&get(&format!("/q/{i}"))).await.unwrap();
        let (_, body) = response(&mut s, &mut pending).await;
        assert_eq!(body, format!("quick /q/{i}").as_bytes());
    }
    assert_eq!(q.answered.load(Ordering::SeqCst), 3);
    // Idle past the timeout, with no hyper connection ever made: closed with a TLS
    // close_notify (a plain end of stream to the client), nothing more sent.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(BOUND, s.read(&mut buf))
        .await
        .expect("closed in time")
        .expect("a clean TLS close");
    assert_eq!(n, 0);
}
