//! Measures what Proxy-Wasm filters add to one edge request, in process: the request
//! and response passes of `edge::filter` (header conversion, instance checkout, the
//! wasm callbacks, log/done/delete) for a cached-hit-shaped request and response.
//! Prints one JSON line with p50/p99/mean in microseconds. Used by
//! `bench/edge_filter.sh`.
//!
//! Usage: filter_overhead FILTER.(wasm|wat) [ITERATIONS] [CONFIGURATION]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: filter_overhead FILTER.wasm [ITERATIONS] [CONFIGURATION]");
        std::process::exit(2);
    };
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let configuration = args.next().unwrap_or_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut spec = compute::FilterSpec::new(PathBuf::from(&file));
    spec.configuration = configuration.into_bytes();
    spec.reload_poll = None;
    let filters = match compute::Filters::load(vec![spec], std::sync::Arc::new(compute::NoCallouts))
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let client = edge::filter::Client {
        addr: SocketAddr::from(([127, 0, 0, 1], 50000)),
        tls: false,
        max_body: 1 << 20,
    };
    let body = Bytes::from(vec![7u8; 1024]);
    let mut samples = Vec::with_capacity(n);
    rt.block_on(async {
        for i in 0..n + n / 10 {
            let mut req = http::Request::builder()
                .method("GET")
                .uri("/obj/1k.m4s")
                .header("host", "127.0.0.1:8081")
                .header("user-agent", "wrk")
                .header("accept", "*/*")
                .body(())
                .unwrap_or_default();
            let mut res = http::Response::new(
                Full::new(body.clone())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            for (k, v) in [
                ("content-type", "video/iso.segment"),
                ("cache-control", "public, max-age=3600"),
                ("etag", "\"0123456789abcdef01234567\""),
                ("content-length", "1024"),
                ("accept-ranges", "bytes"),
                ("age", "3"),
                ("x-cache", "HIT"),
                ("via", "1.1 mediamesh-edge"),
            ] {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    http::HeaderValue::from_str(v),
                ) {
                    res.headers_mut().insert(k, v);
                }
            }
            let mut path = "/obj/1k.m4s".to_string();
            let mut query = None;
            let t = Instant::now();
            let Some(mut run) = filters.begin(&path) else {
                eprintln!("filter does not apply");
                std::process::exit(1);
            };
            if let Some(local) = edge::filter::on_request(
                &mut run,
                &mut req,
                Empty::<Bytes>::new(),
                &mut path,
                &mut query,
                client,
            )
            .await
            {
                eprintln!("filter answered locally: {}", local.status());
                std::process::exit(1);
            }
            let res = edge::filter::on_response(&mut run, res, 1 << 20).await;
            run.finish();
            let dt = t.elapsed();
            std::hint::black_box(res);
            if i >= n / 10 {
                samples.push(dt.as_nanos() as f64 / 1000.0);
            }
        }
    });
    samples.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "{{\"filter\":\"{}\",\"iterations\":{},\"p50_us\":{:.2},\"p90_us\":{:.2},\"p99_us\":{:.2},\"p999_us\":{:.2},\"mean_us\":{:.2}}}",
        file.replace('"', "'"),
        samples.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        mean
    );
}
