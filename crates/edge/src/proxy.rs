//! The edge's request path: the canonical path (`canonical`, computed once, then the
//! only path used: token check, filters, watermark, ladder, cache key and upstream
//! request), token check, cache lookup (memory, then disk), coalesced
//! upstream fetch streamed to every waiter, storing by the freshness policy, stale
//! serving (while revalidating, or when every upstream fails), and the answer itself
//! (HEAD, conditional requests, single byte ranges, CMSD headers, access log line).
//!
//! Upstream choice and the cache structures live in `upstream` and `cache`; this file
//! decides what to do with them for one request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::cmcd;
use crate::coalesce::{Flight, FlightError, Flights, Head, Joined};
use crate::config::EdgeConfig;
use crate::limit::RateLimiter;
use crate::token;
use crate::upstream::{UpstreamError, Upstreams};
use cache::disk::DiskCache;
use cache::key::target;
use cache::memory::MemoryCache;
use cache::policy::freshness;
use cache::CachedObject;

/// Response body type of the edge.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("upstream configuration: {0}")]
    Upstream(#[from] UpstreamError),
    #[error("disk cache: {0}")]
    Disk(String),
    #[error(transparent)]
    Filter(#[from] compute::LoadError),
}

/// How an answer was produced (X-Cache, logs, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// Stale while a refresh runs.
    Stale,
    /// Stale because every upstream failed.
    StaleIfError,
    /// Not from the cache (errors, local answers).
    Pass,
}

impl CacheStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::StaleIfError => "STALE-IF-ERROR",
            Self::Pass => "PASS",
        }
    }
}

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1) plus ones the edge sets itself.
const DROPPED_HEADERS: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "age",
    "set-cookie",
];

/// Objects fresh for less than this stay in memory only.
const DISK_MIN_TTL_MS: u64 = 10_000;

/// One edge node.
pub struct Edge {
    pub config: EdgeConfig,
    memory: MemoryCache,
    disk: Option<Arc<DiskCache>>,
    pub upstreams: Arc<Upstreams>,
    flights: Flights,
    limiter: Option<RateLimiter>,
    /// CMCD session ids seen recently (bounded, for the `edge_cmcd_sessions` gauge).
    pub(crate) sessions: crate::sessions::Sessions,
    /// Proxy-Wasm filters; `None` when none is configured.
    pub filters: Option<Arc<compute::Filters>>,
    /// The edge ABR ladder; `None` when no rung is configured.
    pub ladder: Option<crate::ladder::Transcoder>,
    /// Header values that never change, made once.
    via: HeaderValue,
    cmsd_dynamic: HeaderValue,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("server_id", &self.config.server_id)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What one cache miss needs to fetch and store its object.
#[derive(Clone, Debug)]
struct Miss {
    /// The cache key, which is also the path and query sent upstream.
    key: String,
    /// Path and kept query (what the key is made of).
    path: String,
    query: String,
    peer: SocketAddr,
}

enum Answer {
    Object(Arc<CachedObject>, CacheStatus),
    Stream(Arc<Flight>, Head),
    Error(StatusCode, String),
}

impl Edge {
    pub fn new(config: EdgeConfig) -> Result<Arc<Self>, EdgeError> {
        let upstreams = Upstreams::new(config.upstream.clone())?;
        let disk = match &config.cache_dir {
            Some(dir) => Some(Arc::new(
                DiskCache::open(dir, config.cache_disk_bytes)
                    .map_err(|e| EdgeError::Disk(format!("{}: {e}", dir.display())))?,
            )),
            None => None,
        };
        let filters = if config.filters.is_empty() {
            None
        } else {
            Some(compute::Filters::load(config.filters.clone())?)
        };
        Ok(Arc::new(Self {
            filters,
            ladder: config.ladder.clone().map(crate::ladder::Transcoder::new),
            memory: MemoryCache::new(config.cache_mem_bytes),
            disk,
            upstreams,
            flights: Flights::default(),
            limiter: config
                .limits
                .per_ip_rps
                .map(|rps| RateLimiter::new(rps, config.limits.per_ip_max_tracked)),
            sessions: crate::sessions::Sessions::new(config.cmcd_max_sessions),
            via: HeaderValue::from_str(&format!("1.1 {}", config.server_id))
                .unwrap_or(HeaderValue::from_static("1.1 mediamesh-edge")),
            cmsd_dynamic: HeaderValue::from_str(&cmcd::cmsd_dynamic(&config.server_id, None, None))
                .unwrap_or(HeaderValue::from_static("\"mediamesh-edge\"")),
            config,
        }))
    }

    /// Bytes held per tier.
    pub fn cache_bytes(&self) -> (usize, u64) {
        (
            self.memory.bytes(),
            self.disk.as_ref().map_or(0, |d| d.bytes()),
        )
    }

    /// Handles one request.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        // The edge forwards GET and HEAD only; a request body is for filters alone.
        let (parts, incoming) = req.into_parts();
        let mut req = Request::from_parts(parts, ());
        let method = req.method().clone();
        // The one path used from here on (see `canonical`); a path that is not
        // canonical is refused before anything else sees it.
        let (mut path, refused) = match crate::canonical::canonical_path(req.uri().path()) {
            Ok(p) => (p, None),
            Err(e) => (req.uri().path().to_string(), Some(e)),
        };
        let mut query = req.uri().query().map(str::to_string);
        let mut run = match &self.filters {
            Some(f) if refused.is_none() && !crate::filter::exempt(&path) => f.begin(&path),
            _ => None,
        };
        let answered = match (&refused, run.as_mut()) {
            (Some(e), _) => {
                ::metrics::counter!("edge_bad_path_total").increment(1);
                Some(text(StatusCode::BAD_REQUEST, &format!("bad path: {e}")))
            }
            (None, Some(r)) => {
                let client = crate::filter::Client {
                    addr: peer,
                    tls: self.config.tls.is_some(),
                    max_body: self.config.max_object_bytes,
                };
                let before = path.clone();
                let a =
                    crate::filter::on_request(r, &mut req, incoming, &mut path, &mut query, client)
                        .await;
                // A path a filter set is held to the same rules.
                match a {
                    None if path != before => match crate::canonical::canonical_path(&path) {
                        Ok(p) => {
                            path = p;
                            None
                        }
                        Err(e) => Some(text(
                            StatusCode::BAD_REQUEST,
                            &format!("bad path from a filter: {e}"),
                        )),
                    },
                    other => other,
                }
            }
            (None, None) => None,
        };
        let answered = match answered {
            Some(a) => Some(a),
            None if self.config.media.watermark_key.is_some() => {
                let hdr = req
                    .headers()
                    .get("x-watermark-token")
                    .and_then(|v| v.to_str().ok());
                match crate::media::watermark_path(
                    &self.config.media,
                    &path,
                    query.as_deref(),
                    hdr,
                    now_ms() / 1000,
                ) {
                    Ok(Some(variant)) => {
                        path = variant;
                        None
                    }
                    Ok(None) => None,
                    Err((code, msg)) => Some(text(code, &msg)),
                }
            }
            None => None,
        };
        let (mut res, status) = match answered {
            Some(local) => (local, CacheStatus::Pass),
            None => {
                self.route(&req, &method, &path, query.as_deref(), peer)
                    .await
            }
        };
        let cmcd = cmcd::parse_query(query.as_deref().unwrap_or("")).or_else(|| {
            let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok());
            cmcd::parse_headers(
                h("cmcd-request"),
                h("cmcd-object"),
                h("cmcd-status"),
                h("cmcd-session"),
            )
        });
        if let Some(c) = &cmcd {
            crate::metrics::record_cmcd(c, &self.sessions);
        }
        let media = &self.config.media;
        let personalise = media.ad_pod.is_some()
            || !media.device_rules.is_empty()
            || (media.cmcd_renditions && cmcd.as_ref().is_some_and(|c| c.tb.is_some()));
        if personalise && path.ends_with(".m3u8") {
            let ua = req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            res = crate::media::playlist(
                &self.config.media,
                res,
                cmcd.as_ref().and_then(|c| c.tb),
                ua,
                self.config.max_object_bytes,
            )
            .await;
        }
        let hdrs = res.headers_mut();
        hdrs.insert(
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(status.as_str()),
        );
        hdrs.append(header::VIA, self.via.clone());
        if let Ok(v) = HeaderValue::from_str(&cmcd::cmsd_static(&path, query.is_some())) {
            hdrs.insert(HeaderName::from_static("cmsd-static"), v);
        }
        hdrs.insert(
            HeaderName::from_static("cmsd-dynamic"),
            self.cmsd_dynamic.clone(),
        );
        if let Some(r) = run.as_mut() {
            res = crate::filter::on_response(r, res, self.config.max_object_bytes).await;
        }
        let code = res.status().as_u16();
        crate::metrics::record_response(code, status);
        tracing::info!(
            target: "access",
            client = %peer.ip(),
            method = %method,
            path = %path,
            status = code,
            cache = status.as_str(),
            ms = started.elapsed().as_millis() as u64,
            cmcd = %cmcd.as_ref().map(|c| c.log_fields()).unwrap_or_default(),
        );
        if let Some(r) = run {
            r.finish();
        }
        res
    }

    async fn route(
        self: &Arc<Self>,
        req: &Request<()>,
        method: &Method,
        path: &str,
        query: Option<&str>,
        peer: SocketAddr,
    ) -> (Response<Body>, CacheStatus) {
        let local = |s: StatusCode, m: &str| (text(s, m), CacheStatus::Pass);
        match path {
            "/healthz" => return local(StatusCode::OK, "ok"),
            "/metrics" if self.config.public_metrics => {
                let body = crate::metrics::render(self);
                let mut r = Response::new(full(Bytes::from(body)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return (r, CacheStatus::Pass);
            }
            _ => {}
        }
        if *method != Method::GET && *method != Method::HEAD {
            return local(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        }
        if let Some(limiter) = &self.limiter {
            if !limiter.allow(peer.ip()) {
                ::metrics::counter!("edge_rate_limited_total").increment(1);
                return local(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests from your address",
                );
            }
        }
        if let Some(key) = &self.config.token_key {
            let cookie = req
                .headers()
                .get(header::COOKIE)
                .and_then(|v| v.to_str().ok());
            let hdr = req
                .headers()
                .get(self.config.token_name.as_str())
                .and_then(|v| v.to_str().ok());
            let Some(tok) = token::extract(&self.config.token_name, query, cookie, hdr) else {
                ::metrics::counter!("edge_token_rejected_total", "reason" => "missing")
                    .increment(1);
                return local(StatusCode::FORBIDDEN, "a token is required (__token__)");
            };
            let now = now_ms() / 1000;
            let ip = peer.ip().to_string();
            if let Err(e) = token::verify(key, &tok, path, query, Some(&ip), now) {
                ::metrics::counter!("edge_token_rejected_total", "reason" => "invalid")
                    .increment(1);
                tracing::info!(client = %peer.ip(), path, error = %e, "token refused");
                return local(StatusCode::FORBIDDEN, &format!("token refused: {e}"));
            }
        }
        if let Some(t) = &self.ladder {
            if let Some(res) = crate::ladder::route(self, t, path).await {
                return (res, CacheStatus::Pass);
            }
        }
        // The key and the upstream request are one string, so what is cached is what
        // was fetched; parameters that do not change the object are in neither.
        let Some(t) = target(
            path,
            query,
            &self.config.dropped_params,
            &self.config.kept_params,
        ) else {
            return local(StatusCode::URI_TOO_LONG, "request target too long");
        };
        // RFC 9111 §5.2.1.7: answer from the cache or not at all.
        let only_if_cached = req
            .headers()
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("only-if-cached"));
        let miss = Miss {
            path: t.path().to_string(),
            query: t.query().to_string(),
            key: t.into_key(),
            peer,
        };
        let answer = if only_if_cached {
            match self.cached(&miss.key).await {
                Some(obj) => Answer::Object(obj, CacheStatus::Hit),
                None => Answer::Error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "not cached (only-if-cached)".into(),
                ),
            }
        } else {
            self.lookup_or_fetch(&miss).await
        };
        let head_only = *method == Method::HEAD;
        match answer {
            Answer::Object(obj, status) => {
                (object_response(&obj, req.headers(), head_only), status)
            }
            Answer::Stream(flight, head) => {
                // Ranges and conditionals need the whole object; plain GETs stream.
                let wants_whole = req.headers().contains_key(header::RANGE)
                    || req.headers().contains_key(header::IF_NONE_MATCH);
                if wants_whole {
                    match flight.complete().await {
                        Ok(body) => {
                            let obj = CachedObject {
                                status: head.status,
                                headers: head.headers.clone(),
                                body,
                                stored_ms: now_ms(),
                                fresh_until_ms: 0,
                                stale_while_revalidate_until_ms: 0,
                                stale_if_error_until_ms: 0,
                            };
                            (
                                object_response(&obj, req.headers(), head_only),
                                CacheStatus::Miss,
                            )
                        }
                        Err(e) => (
                            text(StatusCode::BAD_GATEWAY, &e.to_string()),
                            CacheStatus::Miss,
                        ),
                    }
                } else {
                    (stream_response(flight, &head, head_only), CacheStatus::Miss)
                }
            }
            Answer::Error(status, msg) => (text(status, &msg), CacheStatus::Pass),
        }
    }

    /// Gets an object for the edge's own use (the ladder's source objects) through
    /// the cache and the coalesced miss path, so it counts and is stored like a
    /// viewer's request. `Err((status, message))` unless the answer is a 200.
    pub(crate) async fn get_internal(self: &Arc<Self>, path: &str) -> Result<Bytes, (u16, String)> {
        let t = target(path, None, &self.config.dropped_params, &[])
            .ok_or_else(|| (414, format!("{path}: path too long")))?;
        let miss = Miss {
            path: t.path().to_string(),
            query: String::new(),
            key: t.into_key(),
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        match self.lookup_or_fetch(&miss).await {
            Answer::Object(obj, _) if obj.status == 200 => Ok(obj.body.clone()),
            Answer::Object(obj, _) => Err((
                obj.status,
                format!("{path}: upstream answered {}", obj.status),
            )),
            Answer::Stream(flight, head) if head.status == 200 => flight
                .complete()
                .await
                .map_err(|e| (502, format!("{path}: {e}"))),
            Answer::Stream(_, head) => Err((
                head.status,
                format!("{path}: upstream answered {}", head.status),
            )),
            Answer::Error(status, msg) => Err((status.as_u16(), format!("{path}: {msg}"))),
        }
    }

    async fn cached(&self, key: &str) -> Option<Arc<CachedObject>> {
        if let Some(obj) = self.memory.get(key) {
            return Some(obj);
        }
        let disk = self.disk.clone()?;
        let k = key.to_string();
        let found = tokio::task::spawn_blocking(move || disk.get(&k))
            .await
            .ok()??;
        let obj = Arc::new(found);
        self.memory.insert(key.to_string(), obj.clone());
        ::metrics::counter!("edge_disk_hits_total").increment(1);
        Some(obj)
    }

    async fn lookup_or_fetch(self: &Arc<Self>, miss: &Miss) -> Answer {
        let key = miss.key.as_str();
        let now = now_ms();
        let stale = match self.cached(key).await {
            Some(obj) if obj.is_fresh(now) => return Answer::Object(obj, CacheStatus::Hit),
            Some(obj) if now < obj.stale_while_revalidate_until_ms => {
                // Serve stale now; refresh in the background (coalesced).
                if let Joined::Lead(flight) = self.flights.join(key) {
                    self.spawn_fetch(miss, flight);
                }
                ::metrics::counter!("edge_stale_served_total", "why" => "revalidate").increment(1);
                return Answer::Object(obj, CacheStatus::Stale);
            }
            other => other,
        };
        let flight = match self.flights.join(key) {
            Joined::Lead(flight) => {
                self.spawn_fetch(miss, flight.clone());
                flight
            }
            Joined::Follow(flight) => {
                ::metrics::counter!("edge_coalesced_waiters_total").increment(1);
                flight
            }
        };
        // A stale copy still within stale-if-error beats an upstream 5xx or failure.
        let stale_if_error = || {
            stale
                .clone()
                .filter(|o| now_ms() < o.stale_if_error_until_ms)
                .map(|obj| {
                    ::metrics::counter!("edge_stale_served_total", "why" => "error").increment(1);
                    Answer::Object(obj, CacheStatus::StaleIfError)
                })
        };
        match flight.head().await {
            Ok(head) if head.status < 500 => Answer::Stream(flight, head),
            Ok(head) => stale_if_error().unwrap_or(Answer::Stream(flight, head)),
            Err(e) => stale_if_error().unwrap_or_else(|| {
                let status = match e {
                    FlightError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                Answer::Error(status, format!("{e}; nothing cached for this object"))
            }),
        }
    }

    fn spawn_fetch(self: &Arc<Self>, miss: &Miss, flight: Arc<Flight>) {
        let edge = self.clone();
        let miss = miss.clone();
        tokio::spawn(async move {
            if !crate::ladder::fetch(&edge, &miss.key, &miss.path, &flight).await {
                edge.fetch(&miss, &flight).await;
            }
            edge.flights.land(&miss.key);
        });
    }

    /// Leads one upstream fetch: fills the flight, then stores the object.
    async fn fetch(&self, miss: &Miss, flight: &Flight) {
        let Miss {
            key,
            path,
            query,
            peer,
        } = miss;
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
        ::metrics::counter!("edge_upstream_requests_total").increment(1);
        let fetched = match self.upstreams.fetch(key, &Method::GET, key, &headers).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path, error = %e, "no upstream answered");
                flight.fail(match e {
                    UpstreamError::Timeout => FlightError::Timeout,
                    other => FlightError::Upstream(other.to_string()),
                });
                return;
            }
        };
        ::metrics::histogram!("edge_upstream_first_byte_seconds")
            .record(fetched.elapsed_first_byte.as_secs_f64());
        let (parts, mut body) = fetched.response.into_parts();
        let head = Head {
            status: parts.status.as_u16(),
            headers: forwardable(&parts.headers),
        };
        flight.set_head(head.clone());
        let max = self.config.max_object_bytes;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        ::metrics::counter!("edge_upstream_bytes_total")
                            .increment(data.len() as u64);
                        if flight.len() + data.len() > max {
                            flight.fail(FlightError::TooLarge(max));
                            return;
                        }
                        flight.push(data);
                    }
                }
                Some(Err(e)) => {
                    self.upstreams.report(&fetched.target, false);
                    flight.fail(FlightError::Body(e.to_string()));
                    return;
                }
                None => break,
            }
        }
        flight.finish();
        let Some(body) = flight.body() else {
            return;
        };
        self.store(key, path, query, head, body);
    }

    /// Stores a fetched or made object by the freshness policy (memory, and disk when
    /// it lives long enough).
    pub(crate) fn store(&self, key: &str, path: &str, query: &str, head: Head, body: Bytes) {
        let Some(fresh) = freshness(
            head.status,
            path,
            query,
            &head.headers,
            &body,
            &self.config.media_defaults,
        ) else {
            return;
        };
        let now = now_ms();
        let mut headers = head.headers;
        if !headers.iter().any(|(n, _)| n == "etag") {
            let digest =
                sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), &body));
            headers.push(("etag".into(), format!("\"{}\"", hex::encode(&digest[..12]))));
        }
        let obj = Arc::new(CachedObject {
            status: head.status,
            headers,
            body,
            stored_ms: now,
            fresh_until_ms: now + fresh.ttl_ms,
            stale_while_revalidate_until_ms: now + fresh.ttl_ms + fresh.swr_ms,
            stale_if_error_until_ms: now + fresh.ttl_ms + fresh.sie_ms,
        });
        self.memory.insert(key.to_string(), obj.clone());
        // Short-lived objects (live playlists) are not worth a disk write.
        let disk = self
            .disk
            .clone()
            .filter(|_| fresh.ttl_ms >= DISK_MIN_TTL_MS);
        if let Some(disk) = disk {
            let k = key.to_string();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = disk.insert(&k, &obj) {
                    tracing::warn!(error = %e, "disk cache write failed");
                }
            });
        }
    }
}

/// Response headers worth keeping and replaying (lowercase names).
fn forwardable(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| !DROPPED_HEADERS.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn full(b: Bytes) -> Body {
    Full::new(b)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    full(Bytes::new())
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(format!("{message}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn apply_headers(res: &mut Response<Body>, headers: &[(String, String)], skip_length: bool) {
    let h = res.headers_mut();
    for (n, v) in headers {
        if skip_length && n == "content-length" {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(n, v);
        }
    }
}

/// Streams a flight to one client as its bytes arrive.
fn stream_response(flight: Arc<Flight>, head: &Head, head_only: bool) -> Response<Body> {
    let body = if head_only {
        empty()
    } else {
        let stream = futures_util::stream::unfold((flight, 0usize), |(f, i)| async move {
            match f.chunk(i).await {
                Some(Ok(c)) => {
                    ::metrics::counter!("edge_egress_bytes_total").increment(c.len() as u64);
                    Some((Ok(Frame::data(c)), (f, i + 1)))
                }
                Some(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), (f, usize::MAX))),
                None => None,
            }
        });
        BodyExt::boxed_unsync(StreamBody::new(stream))
    };
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    apply_headers(&mut res, &head.headers, false);
    res
}

/// Answers from a whole object: 304 for a matching If-None-Match, 206/416 for a
/// single byte range, HEAD without body.
fn object_response(obj: &CachedObject, req: &HeaderMap, head_only: bool) -> Response<Body> {
    let age = now_ms().saturating_sub(obj.stored_ms) / 1000;
    let etag = obj
        .headers
        .iter()
        .find(|(n, _)| n == "etag")
        .map(|(_, v)| v.as_str());
    if let (Some(inm), Some(etag)) = (
        req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()),
        etag,
    ) {
        if inm.split(',').any(|t| t.trim() == etag || t.trim() == "*") {
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            if let Ok(v) = HeaderValue::from_str(etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            return r;
        }
    }
    let len = obj.body.len();
    let range = if obj.status == 200 {
        req.get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|v| parse_range(v, len))
    } else {
        None
    };
    let (status, body, content_range) = match range {
        Some(Some((start, end))) => (
            StatusCode::PARTIAL_CONTENT,
            obj.body.slice(start..=end),
            Some(format!("bytes {start}-{end}/{len}")),
        ),
        Some(None) => {
            let mut r = text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        None => (
            StatusCode::from_u16(obj.status).unwrap_or(StatusCode::OK),
            obj.body.clone(),
            None,
        ),
    };
    let body_len = body.len();
    if !head_only {
        ::metrics::counter!("edge_egress_bytes_total").increment(body_len as u64);
    }
    let mut res = Response::new(if head_only { empty() } else { full(body) });
    *res.status_mut() = status;
    apply_headers(&mut res, &obj.headers, true);
    let h = res.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::AGE, HeaderValue::from(age));
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    res
}

/// One `bytes=` range against a body of `len` bytes: inclusive (start, end), or
/// `None` when unsatisfiable. Multiple ranges are answered with the first only.
pub fn parse_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")?
        .split(',')
        .next()?
        .trim();
    let (a, b) = spec.split_once('-')?;
    if len == 0 {
        return None;
    }
    let (start, end) = if a.is_empty() {
        let n: usize = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: usize = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<usize>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-1", 100), None);
        assert_eq!(parse_range("bytes=-0", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=a-b", 100), None);
        assert_eq!(parse_range("bytes=0-0", 0), None);
    }
}
