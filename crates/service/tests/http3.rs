//! The HTTP/3 accept loop with a real HTTP/3 client (quinn + h3, a separate
//! implementation of the client side) on loopback: requests reach the handler as
//! HTTP/3 with their bodies, answers stream back with their trailers, and the bounds
//! hold (request-head size, connections per address, idle connections closed).
//! Chromium against the edge is in `crates/mediamesh/tests/e2e/h3.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use service::{ConnLimits, H3Body, H3Listener, ServeLimits};
use tokio_rustls::rustls;

/// Every wait in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(20);

struct Pki {
    cert: rustls::pki_types::CertificateDer<'static>,
    dir: tempfile::TempDir,
}

/// A self-signed certificate for 127.0.0.1, as PEM files (what `--tls-cert` takes).
fn pki() -> Pki {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    Pki {
        cert: made.cert.der().clone(),
        dir,
    }
}

type Answer = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// Echoes what arrived: version, method, path, body length, and a trailer.
async fn echo(req: Request<H3Body>, _peer: SocketAddr) -> Response<Answer> {
    let (parts, body) = req.into_parts();
    let had_end_hint = hyper::body::Body::is_end_stream(&body);
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let text = format!(
        "{:?} {} {} {} {}",
        parts.version,
        parts.method,
        parts.uri.path(),
        body.len(),
        had_end_hint
    );
    let mut trailers = hyper::HeaderMap::new();
    trailers.insert("x-done", "yes".parse().unwrap());
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(Frame::data(Bytes::from(text))),
        Ok(Frame::data(Bytes::from_static(b" |tail"))),
        Ok(Frame::trailers(trailers)),
    ];
    let mut res = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
    // A connection header, which HTTP/3 answers must not carry: the loop drops it.
    res.headers_mut()
        .insert(hyper::header::CONNECTION, "keep-alive".parse().unwrap());
    res
}

/// Starts the listener on 127.0.0.1:0; the task serves until aborted.
async fn start(limits: ServeLimits, pki: &Pki) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let tls = service::load_tls(
        &pki.dir.path().join("cert.pem"),
        &pki.dir.path().join("key.pem"),
    )
    .unwrap();
    let listener = H3Listener::bind("127.0.0.1:0".parse().unwrap(), limits, &tls).unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, tokio::spawn(listener.serve(echo)))
}

/// A client endpoint that trusts `cert`, speaking h3.
fn client(cert: &rustls::pki_types::CertificateDer<'static>) -> quinn::Endpoint {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    endpoint
}

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// Connects and returns the request sender (its driver runs on a task) and the QUIC
/// connection.
async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
) -> Result<(Sender, quinn::Connection), quinn::ConnectionError> {
    let conn = endpoint.connect(addr, "127.0.0.1").unwrap().await?;
    let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .unwrap();
    tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    Ok((sender, conn))
}

/// One request: (status, body, trailer `x-done`, whether a `connection` header came).
async fn fetch(
    sender: &mut Sender,
    req: Request<()>,
    body: &[u8],
) -> (u16, String, Option<String>, bool) {
    let mut stream = sender.send_request(req).await.unwrap();
    if !body.is_empty() {
        stream
            .send_data(Bytes::copy_from_slice(body))
            .await
            .unwrap();
    }
    stream.finish().await.unwrap();
    let res = stream.recv_response().await.unwrap();
    let mut text = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        while chunk.has_remaining() {
            let c = chunk.chunk();
            text.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    let trailer = stream.recv_trailers().await.ok().flatten().and_then(|t| {
        t.get("x-done")
            .map(|v| v.to_str().unwrap_or("").to_string())
    });
    (
        res.status().as_u16(),
        String::from_utf8_lossy(&text).into_owned(),
        trailer,
        res.headers().contains_key(hyper::header::CONNECTION),
    )
}

fn get(path: &str) -> Request<()> {
    Request::get(format!("https://127.0.0.1{path}"))
        .body(())
        .unwrap()
}

#[tokio::test]
async fn requests_arrive_as_http3_with_bodies_and_answers_stream_back() {
    let pki = pki();
    let (addr, server) = start(ServeLimits::default(), &pki).await;
    let endpoint = client(&pki.cert);
    tokio::time::timeout(LIMIT, async {
        let (mut sender, _conn) = connect(&endpoint, addr).await.unwrap();
        let (status, body, trailer, conn_header) = fetch(&mut sender, get("/hello"), b"").await;
        assert_eq!(status, 200);
        assert_eq!(body, "HTTP/3.0 GET /hello 0 true |tail");
        assert_eq!(trailer.as_deref(), Some("yes"), "trailers reach the client");
        assert!(!conn_header, "connection headers are not sent over HTTP/3");

        let post = Request::post("https://127.0.0.1/upload")
            .header("content-length", "5")
            .body(())
            .unwrap();
        let (status, body, _, _) = fetch(&mut sender, post, b"abcde").await;
        assert_eq!(status, 200);
        assert_eq!(body, "HTTP/3.0 POST /upload 5 false |tail");

        // Several requests at once on one connection.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let mut s = sender.clone();
            tasks.push(tokio::spawn(async move {
                fetch(&mut s, get(&format!("/many/{i}")), b"").await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let (status, body, _, _) = t.await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(body, format!("HTTP/3.0 GET /many/{i} 0 true |tail"));
        }
    })
    .await
    .expect("requests answered in time");
    server.abort();
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431() {
    let pki = pki();
    let limits = ServeLimits {
        max_header_bytes: 4096,
        ..ServeLimits::default()
    };
    let (addr, server) = start(limits, &pki).await;
    let endpoint = client(&pki.cert);
    tokio::time::timeout(LIMIT, async {
        let (mut sender, _conn) = connect(&endpoint, addr).await.unwrap();
        let big = Request::get("https://127.0.0.1/big")
            .header("x-big", "a".repeat(8000))
            .body(())
            .unwrap();
        let mut stream = sender.send_request(big).await.unwrap();
        stream.finish().await.unwrap();
        let res = stream.recv_response().await.unwrap();
        assert_eq!(res.status().as_u16(), 431);
        // The connection still serves requests of a fitting size.
        let (status, _, _, _) = fetch(&mut sender, get("/small"), b"").await;
        assert_eq!(status, 200);
    })
    .await
    .expect("answered in time");
    server.abort();
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_refused() {
    let limits = ServeLimits {
        conn: ConnLimits::default().max_connections_per_ip(1),
        ..ServeLimits::default()
    };
    one_connection_only(limits).await;
}

#[tokio::test]
async fn connections_past_the_listener_cap_are_refused() {
    let limits = ServeLimits {
        max_connections: 1,
        ..ServeLimits::default()
    };
    one_connection_only(limits).await;
}

/// With `limits` allowing one connection: a second is refused, the first serves on.
async fn one_connection_only(limits: ServeLimits) {
    let pki = pki();
    let (addr, server) = start(limits, &pki).await;
    let endpoint = client(&pki.cert);
    tokio::time::timeout(LIMIT, async {
        let (mut first, _c1) = connect(&endpoint, addr).await.unwrap();
        let second = connect(&endpoint, addr).await;
        assert!(
            matches!(second, Err(quinn::ConnectionError::ConnectionClosed(_))),
            "second connection from one address: {:?}",
            second.as_ref().map(|_| ())
        );
        // The first keeps working.
        let (status, _, _, _) = fetch(&mut first, get("/still"), b"").await;
        assert_eq!(status, 200);
    })
    .await
    .expect("answered in time");
    server.abort();
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_its_slot_given_back() {
    let pki = pki();
    let limits = ServeLimits {
        conn: ConnLimits::default()
            .idle_timeout(Duration::from_millis(500))
            .max_connections_per_ip(1),
        ..ServeLimits::default()
    };
    let (addr, server) = start(limits, &pki).await;
    let endpoint = client(&pki.cert);
    tokio::time::timeout(LIMIT, async {
        let (mut sender, conn) = connect(&endpoint, addr).await.unwrap();
        let (status, _, _, _) = fetch(&mut sender, get("/once"), b"").await;
        assert_eq!(status, 200);
        // Nothing in flight: the server closes the connection with H3_NO_ERROR.
        match conn.closed().await {
            quinn::ConnectionError::ApplicationClosed(c) => {
                assert_eq!(c.error_code, quinn::VarInt::from_u32(0x100));
            }
            other => panic!("closed otherwise: {other}"),
        }
        // Its per-address slot is free again (once the server has let go of it).
        let (mut again, _c) = loop {
            match connect(&endpoint, addr).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let (status, _, _, _) = fetch(&mut again, get("/again"), b"").await;
        assert_eq!(status, 200);
    })
    .await
    .expect("closed and reconnected in time");
    server.abort();
}
