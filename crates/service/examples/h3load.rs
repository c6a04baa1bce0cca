//! A small closed-loop HTTP load generator for the benchmarks (bench/edge_cache.sh's
//! HTTP/3 row): CONNS connections, each with STREAMS requests in flight one after
//! another, for SECS seconds, against one URL; prints one JSON line (requests,
//! req/s, errors, bytes, latency percentiles).
//!
//! It speaks HTTP/3 (quinn + h3, each connection on its own UDP socket) with `--h3`,
//! else HTTP/1.1 over TCP (`http://`) or TLS (`https://`), one request at a time per
//! connection (STREAMS is then 1), so the two protocols are measured by the same
//! client. Not wrk or h2load: neither speaks HTTP/3 in Debian; compare its HTTP/1.1
//! figure, not wrk's, with its HTTP/3 one.
//!
//! `--insecure` skips the certificate check (still checks the handshake signatures):
//! for loopback benchmarks against a self-signed certificate only.
//!
//!   cargo run --release -p service --example h3load -- --h3 --insecure \
//!     --conns 16 --streams 8 --secs 10 https://127.0.0.1:8443/obj/1k

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls;

#[derive(Debug, Clone)]
struct Args {
    url: hyper::Uri,
    h3: bool,
    conns: usize,
    streams: usize,
    secs: f64,
    threads: usize,
    insecure: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: h3load [--h3] [--insecure] [--conns N] [--streams N] [--secs S] [--threads N] URL"
    );
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        url: hyper::Uri::from_static("http://127.0.0.1/"),
        h3: false,
        conns: 16,
        streams: 8,
        secs: 10.0,
        threads: 1,
        insecure: false,
    };
    let mut url = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> f64 {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} wants a number");
                usage()
            })
        };
        match arg.as_str() {
            "--h3" => a.h3 = true,
            "--insecure" => a.insecure = true,
            "--conns" => a.conns = num("--conns") as usize,
            "--streams" => a.streams = num("--streams") as usize,
            "--secs" => a.secs = num("--secs"),
            "--threads" => a.threads = num("--threads") as usize,
            s if !s.starts_with('-') => url = Some(s.to_string()),
            _ => usage(),
        }
    }
    let Some(url) = url else { usage() };
    a.url = url.parse().unwrap_or_else(|_| {
        eprintln!("{url} is not a URL");
        usage()
    });
    if !a.h3 {
        a.streams = 1;
    }
    a.conns = a.conns.max(1);
    a.streams = a.streams.max(1);
    a
}

/// What one request loop counted.
#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    bytes: u64,
    /// Latencies in microseconds.
    lat: Vec<u32>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.bytes += o.bytes;
        self.lat.extend(o.lat);
    }
}

/// Accepts any certificate, but still checks the handshake signatures with the
/// provider's algorithms (a benchmark against a self-signed certificate).
#[derive(Debug)]
struct AnyCert(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

fn tls_config(insecure: bool, alpn: &[u8]) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if !insecure {
        return Err("only --insecure is supported (loopback benchmarks)".into());
    }
    let algs = provider.signature_verification_algorithms;
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(algs)))
        .with_no_client_auth();
    c.alpn_protocols = vec![alpn.to_vec()];
    Ok(c)
}

fn target(a: &Args) -> Result<(SocketAddr, String), String> {
    let host = a.url.host().ok_or("the URL has no host")?.to_string();
    let default = if a.url.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = a.url.port_u16().unwrap_or(default);
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("the host has no address")?;
    Ok((addr, host))
}

/// One HTTP/3 connection with `streams` request loops until `end`.
async fn h3_conn(a: Arc<Args>, addr: SocketAddr, host: String, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let run = async {
        let tls = tls_config(a.insecure, b"h3")?;
        let quic =
            quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(|_| "bind address")?;
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| e.to_string())?;
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let conn = endpoint
            .connect(addr, &host)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut driver, sender) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let drive = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        let mut loops = Vec::new();
        for _ in 0..a.streams {
            let mut sender = sender.clone();
            let url = a.url.clone();
            loops.push(tokio::spawn(async move {
                let mut t = Tally::default();
                while Instant::now() < end {
                    let started = Instant::now();
                    let one = async {
                        let req = hyper::Request::get(url.clone())
                            .body(())
                            .map_err(|e| e.to_string())?;
                        let mut s = sender.send_request(req).await.map_err(|e| e.to_string())?;
                        s.finish().await.map_err(|e| e.to_string())?;
                        let res = s.recv_response().await.map_err(|e| e.to_string())?;
                        let mut n = 0u64;
                        while let Some(chunk) = s.recv_data().await.map_err(|e| e.to_string())? {
                            n += chunk.remaining() as u64;
                        }
                        Ok::<_, String>((res.status().as_u16(), n))
                    };
                    match one.await {
                        Ok((200, n)) => {
                            t.requests += 1;
                            t.bytes += n;
                            t.lat
                                .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        _ => t.errors += 1,
                    }
                }
                t
            }));
        }
        drop(sender);
        for l in loops {
            if let Ok(t) = l.await {
                tally.add(t);
            }
        }
        conn.close(quinn::VarInt::from_u32(0x100), b"done");
        drive.abort();
        endpoint.wait_idle().await;
        Ok::<_, String>(())
    };
    if let Err(e) = run.await {
        eprintln!("h3 connection failed: {e}");
        tally.errors += 1;
    }
    tally
}

/// One HTTP/1.1 connection (TCP or TLS) with one request at a time until `end`.
async fn h1_conn(a: Arc<Args>, addr: SocketAddr, host: String, end: Instant) -> Tally {
    let mut tally = Tally::default();
    let run = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let mut sender = if a.url.scheme_str() == Some("https") {
            let tls = tls_config(a.insecure, b"http/1.1")?;
            let name =
                rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender
        };
        let path = a
            .url
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string());
        while Instant::now() < end {
            let started = Instant::now();
            sender.ready().await.map_err(|e| e.to_string())?;
            let req = hyper::Request::get(path.as_str())
                .header(hyper::header::HOST, host.as_str())
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = res.status().as_u16();
            let body = res
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if status == 200 {
                tally.requests += 1;
                tally.bytes += body.len() as u64;
                tally
                    .lat
                    .push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
            } else {
                tally.errors += 1;
            }
        }
        Ok::<_, String>(())
    };
    if let Err(e) = run.await {
        eprintln!("HTTP/1.1 connection failed: {e}");
        tally.errors += 1;
    }
    tally
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let a = Arc::new(args());
    let (addr, host) = target(&a).unwrap_or_else(|e| {
        eprintln!("{}: {e}", a.url);
        std::process::exit(2)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("runtime: {e}");
            std::process::exit(1)
        });
    let (tally, secs) = rt.block_on(async {
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(a.secs);
        let mut conns = Vec::new();
        for _ in 0..a.conns {
            let (a, host) = (a.clone(), host.clone());
            conns.push(tokio::spawn(async move {
                if a.h3 {
                    h3_conn(a, addr, host, end).await
                } else {
                    h1_conn(a, addr, host, end).await
                }
            }));
        }
        let mut tally = Tally::default();
        for c in conns {
            if let Ok(t) = c.await {
                tally.add(t);
            }
        }
        (tally, start.elapsed().as_secs_f64())
    });
    let mut lat = tally.lat;
    lat.sort_unstable();
    let out = serde_json::json!({
        "proto": if a.h3 { "h3" } else if a.url.scheme_str() == Some("https") { "https/1.1" } else { "http/1.1" },
        "conns": a.conns,
        "streams": a.streams,
        "secs": secs,
        "requests": tally.requests,
        "errors": tally.errors,
        "bytes": tally.bytes,
        "req_per_s": tally.requests as f64 / secs.max(1e-9),
        "latency_ms_p50": pct(&lat, 0.5),
        "latency_ms_p99": pct(&lat, 0.99),
    });
    println!("{out}");
}
