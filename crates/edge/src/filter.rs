//! Where the edge's request path meets the Proxy-Wasm filters: turns a hyper request
//! into what filters see, applies their request-header changes (including a new
//! `:path`, which then decides the cache key and the upstream path), and runs the
//! answer — cached, streamed or an error — back through them before it leaves.
//! `/healthz` and `/metrics` never run filters.
//!
//! Bodies reach filters only when a filter asks for them (`body = true`), because
//! that means buffering the whole message; otherwise bodies stream untouched and only
//! headers pass through the filters. A request body (and the trailers a chunked or
//! HTTP/2 client sends after it) goes to the filters and no further: the edge
//! forwards GET and HEAD only, so a body is useful to a filter that answers the
//! request itself (a beacon collector, a licence check). Response trailers reach the
//! filters when the answer carries them; objects served from the cache carry none
//! (the cache keeps bodies, not trailers), and filters' trailers are sent on, which
//! HTTP/1.1 clients receive when they asked with `TE: trailers`.
//!
//! The filters plug into the request path as a hook ([`FilterHook`], see `phase`):
//! request phase first, then the last response phase, then logging.
//!
//! Not here: the filter host itself (crate `compute`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use compute::{Buffered, LocalResponse, RequestInput, RequestRun, Verdict};
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::phase::{Hook, HookFuture, Phases, Session};
use crate::response::{text, Body};

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

/// Who sent a request, and how much of its body the filters may buffer.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
    pub tls: bool,
    pub max_body: usize,
}

/// Runs request headers (then, for filters that take bodies, the request body and
/// trailers) through the filters. Returns a response when a filter answered;
/// otherwise updates `req`'s headers and `path`/`query` in place.
pub async fn on_request<B>(
    run: &mut RequestRun,
    req: &mut Request<()>,
    body: B,
    path: &mut String,
    query: &mut Option<String>,
    client: Client,
) -> Option<Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
        scheme: if client.tls { "https" } else { "http" }.to_string(),
        client: client.addr,
        headers: pairs(req.headers()),
        has_body: !body.is_end_stream(),
    };
    let mut headers = compute::chain::pseudo_and(&input);
    match run.request_headers(&input, &mut headers).await {
        Verdict::Respond(l) => return Some(local_response(l)),
        Verdict::Continue => {}
    }
    if input.has_body && run.wants_body() {
        let mut msg = match buffer(body, client.max_body).await {
            Ok(m) => m,
            Err(why) => return Some(too_large_or_broken("request", &why)),
        };
        if let Verdict::Respond(l) = run.request_body(&mut msg).await {
            return Some(local_response(l));
        }
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
    // Whole answers leave their length to the HTTP layer; filters see it as sent.
    if !parts.headers.contains_key(hyper::header::CONTENT_LENGTH) {
        if let Some(n) = hyper::body::Body::size_hint(&body).exact() {
            headers.push(("content-length".into(), n.to_string()));
        }
    }
    let (verdict, body) = if run.wants_body() {
        let mut msg = match buffer(body, max_body).await {
            Ok(m) => m,
            Err(why) => return too_large_or_broken("response", &why),
        };
        let v = run
            .response(&mut status, &mut headers, Some(&mut msg))
            .await;
        headers.retain(|(n, _)| n != "content-length");
        if msg.trailers.is_empty() {
            headers.push(("content-length".into(), msg.body.len().to_string()));
        }
        (v, rebuild(msg))
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

/// Reads a whole body and its trailers, at most `max` bytes of body.
async fn buffer<B>(body: B, max: usize) -> Result<Buffered, String>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collected = Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let trailers = collected.trailers().map(pairs).unwrap_or_default();
    Ok(Buffered {
        body: collected.to_bytes().to_vec(),
        trailers,
    })
}

/// A body the filters may have changed, with its trailers (if any) after it.
fn rebuild(msg: Buffered) -> Body {
    let mut frames = vec![Ok(Frame::data(Bytes::from(msg.body)))];
    if !msg.trailers.is_empty() {
        frames.push(Ok(Frame::trailers(header_map(&msg.trailers))));
    }
    StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
}

fn too_large_or_broken(what: &str, why: &str) -> Response<Body> {
    let status = if what == "request" { 413 } else { 502 };
    local_response(LocalResponse {
        status,
        headers: vec![],
        body: format!("{what} body could not be read for the filters: {why}\n").into_bytes(),
    })
}

/// The filters as a hook of the request path (see `phase`). Their per-request state
/// lives in `Session::filters`.
#[derive(Debug)]
pub struct FilterHook {
    pub filters: Arc<compute::Filters>,
    /// The edge serves TLS (the filters see `https`).
    pub tls: bool,
    /// Most body bytes buffered for the filters.
    pub max_body: usize,
}

impl Hook for FilterHook {
    fn phases(&self) -> Phases {
        Phases {
            request: true,
            response_filter: true,
            logging: true,
            ..Phases::NONE
        }
    }

    fn request<'a>(&'a self, s: &'a mut Session) -> HookFuture<'a, Option<Response<Body>>> {
        Box::pin(async move {
            if exempt(&s.path) {
                return None;
            }
            let mut run = self.filters.begin(&s.path)?;
            let client = Client {
                addr: s.peer,
                tls: self.tls,
                max_body: self.max_body,
            };
            let before = s.path.clone();
            let answer = match s.body.take() {
                Some(body) => {
                    on_request(
                        &mut run,
                        &mut s.req,
                        body,
                        &mut s.path,
                        &mut s.query,
                        client,
                    )
                    .await
                }
                None => {
                    let body = Empty::<Bytes>::new();
                    on_request(
                        &mut run,
                        &mut s.req,
                        body,
                        &mut s.path,
                        &mut s.query,
                        client,
                    )
                    .await
                }
            };
            s.filters = Some(run);
            // A path a filter set is held to the same rules.
            match answer {
                None if s.path != before => match crate::canonical::canonical_path(&s.path) {
                    Ok(p) => {
                        s.path = p;
                        None
                    }
                    Err(e) => Some(text(
                        StatusCode::BAD_REQUEST,
                        &format!("bad path from a filter: {e}"),
                    )),
                },
                other => other,
            }
        })
    }

    fn response_filter<'a>(
        &'a self,
        s: &'a mut Session,
        res: Response<Body>,
    ) -> HookFuture<'a, Response<Body>> {
        Box::pin(async move {
            match s.filters.as_mut() {
                Some(run) => on_response(run, res, self.max_body).await,
                None => res,
            }
        })
    }

    fn logging(&self, s: &mut Session) {
        if let Some(run) = s.filters.take() {
            run.finish();
        }
    }
}
