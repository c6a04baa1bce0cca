//! The accept loop over TLS with the config `load_tls` makes, against a real rustls
//! client: ALPN picks HTTP/2 or HTTP/1.1, the server's cipher order wins (AES-128-GCM
//! for a client that lists AES-256-GCM first, as OpenSSL's do), and a second
//! connection with the same client config resumes the session (TLS 1.3 ticket)
//! instead of a full handshake. Every wait is bounded; nothing is timed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use service::{load_tls, serve, ServeLimits};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, CipherSuite, ClientConfig, HandshakeKind, RootCertStore};
use tokio_rustls::TlsConnector;

const BOUND: Duration = Duration::from_secs(15);

/// A TLS server answering "hello <version>" with a fresh self-signed certificate for
/// `localhost`; returns its address, the certificate and the folder holding the PEMs.
async fn start() -> (SocketAddr, CertificateDer<'static>, tempfile::TempDir) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let config = load_tls(&cert, &key).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        ServeLimits::default(),
        Some(config),
        |req: Request<Incoming>, _peer| async move {
            let v = format!("hello {:?}", req.version());
            Response::new(Full::new(Bytes::from(v)))
        },
    ));
    (addr, ck.cert.der().clone(), dir)
}

/// A client trusting `cert`, offering `alpn`, with the ring provider's suites in their
/// default order (AES-256-GCM before AES-128-GCM) and rustls's default session store.
fn client(cert: &CertificateDer<'static>, alpn: &[u8]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = rustls::crypto::ring::default_provider();
    assert_eq!(
        provider.cipher_suites[0].suite(),
        CipherSuite::TLS13_AES_256_GCM_SHA384
    );
    let mut c = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(c)
}

/// One connection, one GET: (handshake kind, suite, ALPN, body).
async fn get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> (Option<HandshakeKind>, Option<CipherSuite>, Vec<u8>, String) {
    let tcp = tokio::time::timeout(BOUND, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(BOUND, TlsConnector::from(config).connect(name, tcp))
        .await
        .expect("handshake in time")
        .unwrap();
    let (_, conn) = tls.get_ref();
    let kind = conn.handshake_kind();
    let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
    let alpn = conn.alpn_protocol().unwrap_or_default().to_vec();
    let req = || {
        Request::get("https://localhost/x")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let body = if alpn == b"h2" {
        let (mut send, c) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(c);
        let res = tokio::time::timeout(BOUND, send.send_request(req()))
            .await
            .expect("answer in time")
            .unwrap();
        res.into_body().collect().await.unwrap().to_bytes()
    } else {
        let (mut send, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(c);
        let res = tokio::time::timeout(BOUND, send.send_request(req()))
            .await
            .expect("answer in time")
            .unwrap();
        res.into_body().collect().await.unwrap().to_bytes()
    };
    (
        kind,
        suite,
        alpn,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn alpn_server_cipher_order_and_resumption() {
    let (addr, cert, _dir) = start().await;
    for (alpn, version) in [(&b"h2"[..], "HTTP/2.0"), (&b"http/1.1"[..], "HTTP/1.1")] {
        let config = client(&cert, alpn);
        let (kind, suite, got_alpn, body) = get(addr, config.clone()).await;
        assert_eq!(kind, Some(HandshakeKind::Full));
        assert_eq!(suite, Some(CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert_eq!(got_alpn, alpn);
        assert_eq!(body, format!("hello {version}"));
        // The same client config again: it holds the server's ticket now.
        let (kind, suite, _, body) = get(addr, config).await;
        assert_eq!(kind, Some(HandshakeKind::Resumed), "{alpn:?}");
        assert_eq!(suite, Some(CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert_eq!(body, format!("hello {version}"));
    }
}
