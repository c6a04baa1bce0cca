//! Where the edge's request path meets the Proxy-Wasm filters: turns a hyper request
//! into what filters see, applies their request-header changes (including a new
//! `:path`, which then decides the cache key and the upstream path), and runs the
//! answer — cached, streamed or an error — back through them before it leaves.
//! `/healthz` and `/metrics` never run filters.
//!
//! Response bodies reach filters only when a filter asks for them (`body = true`),
//! because that means buffering the whole object; otherwise bodies stream untouched
//! and only headers pass through the filters.
//!
//! Not here: the filter host itself (crate `compute`).

use std::net::SocketAddr;

use bytes::Bytes;
use compute::{LocalResponse, RequestInput, RequestRun, Verdict};
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::proxy::Body;

/// Paths the edge answers itself, never filtered.
pub fn exempt(path: &str) -> bool {
    path == "/healthz" || path == "/metrics"
}

fn pairs(h: &HeaderMap) -> compute::Headers {
    h.iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(pairs.len());
    for (n, v) in pairs {
        if n.starts_with(':') {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
    h
}

/// A filter's own answer as an HTTP response.
pub fn local_response(l: LocalResponse) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(l.body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = StatusCode::from_u16(l.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *r.headers_mut() = header_map(&l.headers);
    r.headers_mut().remove(hyper::header::CONTENT_LENGTH);
    r
}

/// Runs request headers through the filters. Returns a response when a filter
/// answered; otherwise updates `req`'s headers and `path`/`query` in place.
pub async fn on_request<B>(
    run: &mut RequestRun,
    req: &mut Request<B>,
    path: &mut String,
    query: &mut Option<String>,
    peer: SocketAddr,
    tls: bool,
) -> Option<Response<Body>> {
    let full_path = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let authority = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_string();
    let input = RequestInput {
        method: req.method().as_str().to_string(),
        path: full_path.clone(),
        authority,
        scheme: if tls { "https" } else { "http" }.to_string(),
        client: peer,
        headers: pairs(req.headers()),
    };
    let mut headers = compute::chain::pseudo_and(&input);
    match run.request_headers(&input, &mut headers).await {
        Verdict::Respond(l) => return Some(local_response(l)),
        Verdict::Continue => {}
    }
    if let Some((_, new_path)) = headers.iter().find(|(n, _)| n == ":path") {
        if *new_path != full_path && new_path.starts_with('/') {
            let (p, q) = match new_path.split_once('?') {
                Some((p, q)) => (p.to_string(), Some(q.to_string())),
                None => (new_path.clone(), None),
            };
            tracing::debug!(from = %full_path, to = %new_path, "filter rewrote the path");
            *path = p;
            *query = q;
        }
    }
    *req.headers_mut() = header_map(&headers);
    None
}

/// Runs an answer back through the filters.
pub async fn on_response(
    run: &mut RequestRun,
    res: Response<Body>,
    max_body: usize,
) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    let mut status = parts.status.as_u16();
    let mut headers = pairs(&parts.headers);
    let (verdict, body) = if run.wants_body() {
        let mut bytes = match Limited::new(body, max_body).collect().await {
            Ok(c) => c.to_bytes().to_vec(),
            Err(e) => {
                return local_response(LocalResponse {
                    status: 502,
                    headers: vec![],
                    body: format!("response body could not be read for the filters: {e}\n")
                        .into_bytes(),
                })
            }
        };
        let v = run
            .response(&mut status, &mut headers, Some(&mut bytes))
            .await;
        headers.retain(|(n, _)| n != "content-length");
        headers.push(("content-length".into(), bytes.len().to_string()));
        let b = Full::new(Bytes::from(bytes))
            .map_err(|never| match never {})
            .boxed_unsync();
        (v, b)
    } else {
        (run.response(&mut status, &mut headers, None).await, body)
    };
    if let Verdict::Respond(l) = verdict {
        return local_response(l);
    }
    parts.status = StatusCode::from_u16(status).unwrap_or(parts.status);
    parts.headers = header_map(&headers);
    Response::from_parts(parts, body)
}
