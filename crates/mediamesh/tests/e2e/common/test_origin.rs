//! A small HTTP origin for edge tests that counts the requests it gets per path and
//! can be stopped (killed) on demand. Objects:
//! - `/obj/{name}?size=N&delay_ms=D&cc=…`: N deterministic bytes (default 2 MB) streamed
//!   in 64 KiB chunks after D ms (default 300), with `Cache-Control: cc` if given;
//! - `/live/x/index.m3u8?_HLS_msn=M&_HLS_part=P`: held 1 s (a blocking reload), then a
//!   tiny playlist naming M and P;
//! - `/healthz`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The query parameters the test origin reads on media paths (`--keep-param` of an
/// edge in front of it).
pub const KNOBS: &str = "size,delay_ms,cc";

/// The deterministic body of `/obj/{name}` with `size` bytes.
pub fn object_bytes(name: &str, size: usize) -> Vec<u8> {
    let seed = name
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..size)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

pub struct TestOrigin {
    pub addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    alive: Arc<AtomicBool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestOrigin {
    /// Starts on a free loopback port in its own runtime thread.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    pub fn start_on(port: u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", port)))
            .expect("bind test origin");
        let addr = listener.local_addr().expect("addr");
        let (c, a) = (counts.clone(), alive.clone());
        runtime.spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                if !a.load(Ordering::SeqCst) {
                    drop(sock);
                    continue;
                }
                let c = c.clone();
                tokio::spawn(async move {
                    let _ = handle(sock, c).await;
                });
            }
        });
        Self {
            addr,
            counts,
            alive,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL as a leaked `&'static str`, handy in argument arrays of tests.
    pub fn url_static(&self) -> &'static str {
        Box::leak(self.url().into_boxed_str())
    }

    /// Requests seen for `path` (without query).
    pub fn count(&self, path: &str) -> usize {
        self.counts
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Stops answering: the listener closes and all work is dropped.
    pub fn kill(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.kill();
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// A deliberately plain HTTP/1.1 server: one request per connection is all edges need
/// to be tested, but keep-alive is honoured for the edge's connection pool.
async fn handle(
    mut sock: tokio::net::TcpStream,
    counts: Arc<Mutex<HashMap<String, usize>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Read one request head.
        let mut tmp = [0u8; 4096];
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path != "/healthz" {
            *counts
                .lock()
                .expect("lock")
                .entry(path.to_string())
                .or_default() += 1;
        }
        let (status, cc, body, delay): (u16, Option<String>, Bytes, u64) = if path == "/healthz" {
            (200, None, Bytes::from_static(b"ok"), 0)
        } else if let Some(name) = path.strip_prefix("/obj/") {
            let size = query_param(query, "size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(2 << 20);
            let delay = query_param(query, "delay_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(300);
            let cc = query_param(query, "cc").map(|v| v.replace("%20", " ").replace("%2C", ","));
            (200, cc, Bytes::from(object_bytes(name, size)), delay)
        } else if path == "/live/x/index.m3u8" {
            let msn = query_param(query, "_HLS_msn").unwrap_or("0");
            let part = query_param(query, "_HLS_part").unwrap_or("0");
            let body = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n# msn {msn} part {part}\n");
            (200, None, Bytes::from(body), 1000)
        } else {
            (404, None, Bytes::from_static(b"not found"), 0)
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let mut resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\n",
            body.len()
        );
        if let Some(cc) = cc {
            resp.push_str(&format!("cache-control: {cc}\r\n"));
        }
        resp.push_str("\r\n");
        sock.write_all(resp.as_bytes()).await?;
        for chunk in body.chunks(64 * 1024) {
            sock.write_all(chunk).await?;
            tokio::task::yield_now().await;
        }
    }
}
