//! The edge's request path, as the phases of `phase` run on an `Edge`: request
//! (canonical path, then hooks such as filters and the watermark), admission (local
//! routes, method, rate limit, token), route and cache lookup (hooks such as the
//! ladder, then memory and disk by `cache::decide`, a coalesced upstream fetch
//! streamed to every waiter, storing by the freshness policy, stale serving), response
//! (hooks, CMSD and `X-Cache` headers) and logging (the access log line).
//!
//! Not here: what the hooks do (`filter`, `media`, `ladder`), building the answers
//! (`response`), upstream choice (`upstream`) and the cache structures (crate
//! `cache`); this file decides what to do with them for one request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::cmcd;
use crate::coalesce::{Flight, FlightError, Head, Joined};
use crate::node::Edge;
use crate::phase::{HookFuture, ObjectSource, RequestBody, Session, SourceError};
use crate::response::{full, object_response, stream_response, text, Body};
use crate::token;
use crate::upstream::FetchError;
use cache::decide::{decide, on_upstream, AfterFetch, Decision, Upstream};
use cache::key::{target, Target};
use cache::policy::freshness;
use cache::{CacheStatus, CachedObject};

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

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What one cache miss needs to fetch and store its object.
#[derive(Clone, Debug)]
struct Miss {
    /// The cache key, which is also the path and query sent upstream; its path and
    /// kept query are what the key is made of.
    target: Target,
    peer: SocketAddr,
}

impl Miss {
    fn key(&self) -> &str {
        self.target.key()
    }

    fn path(&self) -> &str {
        self.target.path()
    }

    fn query(&self) -> &str {
        self.target.query()
    }
}

enum Answer {
    Object(Arc<CachedObject>, CacheStatus),
    Stream(Arc<Flight>, Head),
    Error(LookupError),
}

/// Why the cache lookup has nothing to answer with.
#[derive(Debug, thiserror::Error)]
enum LookupError {
    /// `Cache-Control: only-if-cached` and nothing cached (504).
    #[error("not cached (only-if-cached)")]
    NotCached,
    /// The fetch failed and no stale copy may stand in (502, or 504 for a time-out).
    #[error("{0}; nothing cached for this object")]
    Failed(FlightError),
}

impl LookupError {
    fn status(&self) -> StatusCode {
        match self {
            LookupError::NotCached => StatusCode::GATEWAY_TIMEOUT,
            LookupError::Failed(e) => {
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        }
    }
}

/// The session of a request as it arrives: the edge forwards GET and HEAD only, so
/// the body is for filters alone. `path` is empty until the request phase makes it
/// canonical (or, for a path it refuses, the raw path).
fn session<B: Into<RequestBody>>(req: Request<B>, peer: SocketAddr) -> Session {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, ());
    Session {
        method: req.method().clone(),
        path: String::new(),
        query: req.uri().query().map(str::to_string),
        req,
        peer,
        started: Instant::now(),
        now_ms: now_ms(),
        body: Some(body.into()),
        filters: None,
        cmcd: None,
    }
}

/// Paths of the admin side (the write API, the console): an edge never forwards them,
/// whatever the method or token (the same prefixes as `origin::http::admin::PREFIXES`,
/// plus the console).
pub const ADMIN_PREFIXES: &[&str] = &[
    "/api/v1/streams/",
    "/api/v1/publish-keys",
    "/api/v1/console/",
    "/console",
];

/// Whether a canonical path belongs to the admin side.
pub fn is_admin_path(path: &str) -> bool {
    ADMIN_PREFIXES.iter().any(|p| path.starts_with(p))
}

impl Edge {
    /// Handles one request (over TCP or HTTP/3): the phases of `phase`, in order.
    pub async fn handle<B: Into<RequestBody>>(
        self: Arc<Self>,
        req: Request<B>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let mut s = session(req, peer);
        let (res, status) = match self.request_phase(&mut s).await {
            Some(local) => (local, CacheStatus::Pass),
            None => match self.admission_phase(&s) {
                Some(local) => (local, CacheStatus::Pass),
                None => self.lookup_phase(&s).await,
            },
        };
        let res = self.response_phase(&mut s, res, status).await;
        self.logging_phase(&mut s, res, status)
    }

    /// Request phase: the canonical path (a path that is not canonical is refused
    /// before anything else sees it), then each hook's request step.
    async fn request_phase(&self, s: &mut Session) -> Option<Response<Body>> {
        match crate::canonical::canonical_path(s.req.uri().path()) {
            Ok(p) => s.path = p,
            Err(e) => {
                s.path = s.req.uri().path().to_string();
                ::metrics::counter!("mediamesh_edge_bad_path_total").increment(1);
                return Some(text(StatusCode::BAD_REQUEST, &format!("bad path: {e}")));
            }
        }
        for hook in self.hooks_in(|p| p.request) {
            if let Some(answer) = hook.request(s).await {
                return Some(answer);
            }
        }
        None
    }

    /// Admission phase: the edge's own routes, the method, the rate limit and the
    /// token. `Some` is the answer.
    fn admission_phase(&self, s: &Session) -> Option<Response<Body>> {
        match s.path.as_str() {
            "/healthz" => return Some(text(StatusCode::OK, "ok")),
            "/metrics" if self.config.public_metrics => {
                let body = crate::metrics::render(self);
                let mut r = Response::new(full(Bytes::from(body)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                return Some(r);
            }
            _ => {}
        }
        if is_admin_path(&s.path) {
            ::metrics::counter!("mediamesh_edge_admin_refused_total").increment(1);
            return Some(text(
                StatusCode::NOT_FOUND,
                "the write API and the console are not served through an edge: use the origin's admin side",
            ));
        }
        if s.method != Method::GET && s.method != Method::HEAD {
            return Some(text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD"));
        }
        if let Some(limiter) = &self.limiter {
            if !limiter.allow(s.peer.ip()) {
                ::metrics::counter!("mediamesh_edge_rate_limited_total").increment(1);
                return Some(text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests from your address",
                ));
            }
        }
        let key = self.config.token_key.as_ref()?;
        let headers = s.req.headers();
        let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        let hdr = headers
            .get(self.config.token_name.as_str())
            .and_then(|v| v.to_str().ok());
        let query = s.query.as_deref();
        let Some(tok) = token::extract(&self.config.token_name, query, cookie, hdr) else {
            ::metrics::counter!("mediamesh_edge_token_rejected_total", "reason" => "missing")
                .increment(1);
            return Some(text(
                StatusCode::FORBIDDEN,
                "a token is required (__token__)",
            ));
        };
        let ip = s.peer.ip().to_string();
        if let Err(e) = token::verify(key, &tok, &s.path, query, Some(&ip), now_ms() / 1000) {
            ::metrics::counter!("mediamesh_edge_token_rejected_total", "reason" => "invalid")
                .increment(1);
            tracing::info!(client = %s.peer.ip(), path = %s.path, error = %e, "token refused");
            return Some(text(StatusCode::FORBIDDEN, &format!("token refused: {e}")));
        }
        None
    }

    /// Route phase (hooks that own a path), then the cache lookup: the key, then the
    /// object from the cache or the coalesced fetch.
    async fn lookup_phase(self: &Arc<Self>, s: &Session) -> (Response<Body>, CacheStatus) {
        for hook in self.hooks_in(|p| p.route) {
            if let Some(res) = hook.route(self, s).await {
                return (res, CacheStatus::Pass);
            }
        }
        let local = |code: StatusCode, m: &str| (text(code, m), CacheStatus::Pass);
        // The key and the upstream request are one string, so what is cached is what
        // was fetched; parameters that do not change the object are in neither.
        let Some(t) = target(
            &s.path,
            s.query.as_deref(),
            &self.config.dropped_params,
            &self.config.kept_params,
        ) else {
            return local(StatusCode::URI_TOO_LONG, "request target too long");
        };
        let headers = s.req.headers();
        // RFC 9111 §5.2.1.7: answer from the cache or not at all.
        let only_if_cached = headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("only-if-cached"));
        let miss = Miss {
            target: t,
            peer: s.peer,
        };
        let answer = if only_if_cached {
            match self.cached(miss.key()).await {
                Some(obj) => Answer::Object(obj, CacheStatus::Hit),
                None => Answer::Error(LookupError::NotCached),
            }
        } else {
            self.lookup_or_fetch(&miss).await
        };
        let head_only = s.method == Method::HEAD;
        match answer {
            Answer::Object(obj, status) => {
                (object_response(&obj, headers, head_only, now_ms()), status)
            }
            Answer::Stream(flight, head) => {
                // Ranges and conditionals need the whole object; plain GETs stream.
                let wants_whole = headers.contains_key(header::RANGE)
                    || headers.contains_key(header::IF_NONE_MATCH);
                if !wants_whole {
                    return (stream_response(flight, &head, head_only), CacheStatus::Miss);
                }
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
                            memo: cache::Memo::default(),
                            pages: Default::default(),
                        };
                        (
                            object_response(&obj, headers, head_only, now_ms()),
                            CacheStatus::Miss,
                        )
                    }
                    Err(e) => (
                        text(StatusCode::BAD_GATEWAY, &e.to_string()),
                        CacheStatus::Miss,
                    ),
                }
            }
            Answer::Error(e) => local(e.status(), &e.to_string()),
        }
    }

    /// Response phase: CMCD is read and counted, the hooks' response step runs (on
    /// the answer as made), the edge adds its headers, and the hooks' last step runs
    /// on the answer as it leaves.
    async fn response_phase(
        &self,
        s: &mut Session,
        mut res: Response<Body>,
        status: CacheStatus,
    ) -> Response<Body> {
        s.cmcd = cmcd::parse_query(s.query.as_deref().unwrap_or("")).or_else(|| {
            // One pass over the names first: most requests carry no CMCD header, and
            // four lookups by name cost more than that.
            let headers = s.req.headers();
            if !headers.keys().any(|k| k.as_str().starts_with("cmcd-")) {
                return None;
            }
            let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
            cmcd::parse_headers(
                h("cmcd-request"),
                h("cmcd-object"),
                h("cmcd-status"),
                h("cmcd-session"),
            )
        });
        if let Some(c) = &s.cmcd {
            crate::metrics::record_cmcd(c, &self.sessions);
        }
        self.count_viewer(s, res.status());
        for hook in self.hooks_in(|p| p.response) {
            res = hook.response(s, res).await;
        }
        let hdrs = res.headers_mut();
        hdrs.insert(
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(status.as_str()),
        );
        hdrs.append(header::VIA, self.via.clone());
        hdrs.insert(
            HeaderName::from_static("cmsd-static"),
            HeaderValue::from_static(cmcd::cmsd_static(&s.path, s.query.is_some())),
        );
        hdrs.insert(
            HeaderName::from_static("cmsd-dynamic"),
            self.cmsd_dynamic.clone(),
        );
        for hook in self.hooks_in(|p| p.response_filter) {
            res = hook.response_filter(s, res).await;
        }
        res
    }

    /// Counts the request's player session for its live stream (see `viewers`):
    /// answered 2xx/3xx, not from another edge.
    fn count_viewer(&self, s: &Session, status: StatusCode) {
        let headers = s.req.headers();
        let from_edge = || {
            headers
                .get_all(header::VIA)
                .iter()
                .any(|v| v.as_bytes().windows(14).any(|w| w == b"mediamesh-edge"))
        };
        let user_agent = || {
            headers
                .get(header::USER_AGENT)
                .map_or(&b""[..], |v| v.as_bytes())
        };
        self.count_viewer_of(
            &s.path,
            s.peer.ip(),
            status,
            s.cmcd.as_ref(),
            from_edge,
            user_agent,
        );
    }

    /// [`Edge::count_viewer`] from the request's parts (the quick path has no
    /// `Session`); `from_edge` and `user_agent` are asked only for a live stream.
    pub(crate) fn count_viewer_of<'a>(
        &self,
        path: &str,
        client: std::net::IpAddr,
        status: StatusCode,
        cmcd: Option<&cmcd::Cmcd>,
        from_edge: impl FnOnce() -> bool,
        user_agent: impl FnOnce() -> &'a [u8],
    ) {
        if status.as_u16() >= 400 {
            return;
        }
        let Some(stream) = crate::viewers::live_stream(path) else {
            return;
        };
        if from_edge() {
            return;
        }
        let sid = cmcd
            .and_then(|c| c.sid.as_deref())
            .filter(|sid| !sid.is_empty());
        let key = match sid {
            Some(sid) => crate::viewers::SessionKey::Sid(sid),
            None => crate::viewers::SessionKey::Client(client, user_agent()),
        };
        self.viewers.record(stream, key, cmcd);
    }

    /// Logging phase: metrics and the access log line (`access_log`, or a tracing
    /// event without one), then the hooks' last step.
    fn logging_phase(
        &self,
        s: &mut Session,
        res: Response<Body>,
        status: CacheStatus,
    ) -> Response<Body> {
        let code = res.status().as_u16();
        crate::metrics::record_response(code, status);
        let res = match &self.access_log {
            Some(log) => log.log_response(s, status, res),
            None => {
                access_event(
                    s.peer.ip(),
                    &s.method,
                    &s.path,
                    code,
                    status,
                    s.started.elapsed().as_millis() as u64,
                    s.cmcd.as_ref(),
                );
                res
            }
        };
        for hook in &self.hooks {
            hook.logging(s);
        }
        res
    }

    async fn cached(&self, key: &str) -> Option<Arc<CachedObject>> {
        if let Some(obj) = self.memory.get(key) {
            return Some(obj);
        }
        let disk = self.disk.clone()?;
        let k = key.to_string();
        // Sealed there too (large bodies, `cache::sealed`): it enters the memory tier.
        let found = tokio::task::spawn_blocking(move || {
            disk.get(&k).map(|mut obj| {
                obj.seal_body();
                obj
            })
        })
        .await
        .ok()??;
        let obj = Arc::new(found);
        self.memory.insert(key.to_string(), obj.clone());
        ::metrics::counter!("mediamesh_edge_disk_hits_total").increment(1);
        Some(obj)
    }

    /// The cache lookup: what `cache::decide` says for the cached copy now, then the
    /// coalesced fetch and what `cache::decide::on_upstream` says of its outcome.
    async fn lookup_or_fetch(self: &Arc<Self>, miss: &Miss) -> Answer {
        let key = miss.key();
        let cached = self.cached(key).await;
        let stale = match (decide(now_ms(), cached.as_deref()), cached) {
            (Decision::Hit, Some(obj)) => return Answer::Object(obj, CacheStatus::Hit),
            (Decision::ServeStaleAndRefresh, Some(obj)) => {
                // Serve stale now; refresh in the background (coalesced).
                if let Joined::Lead(flight) = self.flights.join(key) {
                    self.spawn_fetch(miss, flight);
                }
                ::metrics::counter!("mediamesh_edge_stale_served_total", "why" => "revalidate")
                    .increment(1);
                return Answer::Object(obj, CacheStatus::Stale);
            }
            (_, cached) => cached,
        };
        let flight = match self.flights.join(key) {
            Joined::Lead(flight) => {
                self.spawn_fetch(miss, flight.clone());
                flight
            }
            Joined::Follow(flight) => {
                ::metrics::counter!("mediamesh_edge_coalesced_waiters_total").increment(1);
                flight
            }
        };
        let head = flight.head().await;
        let outcome = match &head {
            Ok(h) => Upstream::Answered(h.status),
            Err(_) => Upstream::Failed,
        };
        match (
            on_upstream(now_ms(), stale.as_deref(), outcome),
            stale,
            head,
        ) {
            (AfterFetch::ServeStale, Some(obj), _) => {
                // A stale copy still within stale-if-error beats an upstream 5xx or failure.
                ::metrics::counter!("mediamesh_edge_stale_served_total", "why" => "error")
                    .increment(1);
                Answer::Object(obj, CacheStatus::StaleIfError)
            }
            (_, _, Ok(head)) => Answer::Stream(flight, head),
            (_, _, Err(e)) => Answer::Error(LookupError::Failed(e)),
        }
    }

    fn spawn_fetch(self: &Arc<Self>, miss: &Miss, flight: Arc<Flight>) {
        let edge = self.clone();
        let miss = miss.clone();
        tokio::spawn(async move {
            let mut made = false;
            for hook in edge.hooks_in(|p| p.fill) {
                if hook.fill(&edge, miss.key(), miss.path(), &flight).await {
                    made = true;
                    break;
                }
            }
            if !made {
                edge.fetch(&miss, &flight).await;
            }
            edge.flights.land(miss.key());
        });
    }

    /// Leads one upstream fetch: fills the flight, then stores the object.
    async fn fetch(&self, miss: &Miss, flight: &Flight) {
        let (key, path, query, peer) = (miss.key(), miss.path(), miss.query(), miss.peer);
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
        ::metrics::counter!("mediamesh_edge_upstream_requests_total").increment(1);
        let fetched = match self.upstreams.fetch(key, &Method::GET, key, &headers).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path, error = %e, "no upstream answered");
                flight.fail(match e {
                    FetchError::Timeout => FlightError::Timeout,
                    other => FlightError::Upstream(other),
                });
                return;
            }
        };
        ::metrics::histogram!("mediamesh_edge_upstream_first_byte_seconds")
            .record(fetched.elapsed_first_byte.as_secs_f64());
        let (parts, mut body) = fetched.response.into_parts();
        let head = Head {
            status: parts.status.as_u16(),
            headers: forwardable(&parts.headers),
        };
        flight.set_head(head.clone());
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let max = self.config.max_object_bytes;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        ::metrics::counter!("mediamesh_edge_upstream_bytes_total")
                            .increment(data.len() as u64);
                        if flight.len() + data.len() > max {
                            flight.fail(FlightError::TooLarge(max));
                            return;
                        }
                        if declared == Some(flight.len() + data.len()) {
                            // The declared last byte: a client holding it may ask
                            // again at once, so the copy is stored before anyone
                            // sees the end (not after the upstream's end of stream).
                            self.store(key, path, query, head, flight.collected_with(&data));
                            flight.push(data);
                            flight.finish();
                            // Read the end of the stream so the upstream connection
                            // can be reused (bounded: it is already due).
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_secs(1),
                                body.frame(),
                            )
                            .await;
                            return;
                        }
                        flight.push(data);
                    }
                }
                Some(Err(e)) => {
                    self.upstreams.report(&fetched.target, false);
                    flight.fail(FlightError::Body(Arc::new(e)));
                    return;
                }
                None => break,
            }
        }
        // Stored before the flight ends, so a request after the end finds the copy.
        self.store(key, path, query, head, flight.collected_with(&[]));
        flight.finish();
    }

    /// Stores a fetched or made object by the freshness policy (memory, and disk when
    /// it lives long enough).
    fn store(&self, key: &str, path: &str, query: &str, head: Head, body: Bytes) {
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
        let mut obj = CachedObject {
            status: head.status,
            headers,
            body,
            stored_ms: now,
            fresh_until_ms: now + fresh.ttl_ms,
            stale_while_revalidate_until_ms: now + fresh.ttl_ms + fresh.swr_ms,
            stale_if_error_until_ms: now + fresh.ttl_ms + fresh.sie_ms,
            memo: cache::Memo::default(),
            pages: Default::default(),
        };
        // A large body goes into a sealed memory file (`cache::sealed`): hits of it
        // are then sent from its pages on plain sockets.
        obj.seal_body();
        let obj = Arc::new(obj);
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

/// The access log line as a tracing event (target `access`), where the edge has no
/// access-log file: one per answer, from the request path and the quick path.
pub(crate) fn access_event(
    client: std::net::IpAddr,
    method: &Method,
    path: &str,
    code: u16,
    cache: CacheStatus,
    ms: u64,
    cmcd: Option<&cmcd::Cmcd>,
) {
    tracing::info!(
        target: "access",
        client = %client,
        method = %method,
        path = %path,
        status = code,
        cache = cache.as_str(),
        ms = ms,
        cmcd = %cmcd.map(|c| c.log_fields()).unwrap_or_default(),
    );
}

/// Response headers worth keeping and replaying (lowercase names).
fn forwardable(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| !DROPPED_HEADERS.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

impl ObjectSource for Arc<Edge> {
    /// Gets an object for the edge's own use (the ladder's source objects) through
    /// the cache and the coalesced miss path, so it counts and is stored like a
    /// viewer's request.
    fn get<'a>(&'a self, path: &'a str) -> HookFuture<'a, Result<Bytes, SourceError>> {
        Box::pin(async move {
            let t = target(path, None, &self.config.dropped_params, &[]).ok_or_else(|| {
                SourceError::PathTooLong {
                    path: path.to_string(),
                }
            })?;
            let miss = Miss {
                target: t,
                peer: SocketAddr::from(([127, 0, 0, 1], 0)),
            };
            let status = |status: u16| SourceError::Status {
                path: path.to_string(),
                status,
            };
            match self.lookup_or_fetch(&miss).await {
                Answer::Object(obj, _) if obj.status == 200 => Ok(obj.body.clone()),
                Answer::Object(obj, _) => Err(status(obj.status)),
                Answer::Stream(flight, head) if head.status == 200 => flight
                    .complete()
                    .await
                    .map_err(|e| SourceError::Unavailable {
                        path: path.to_string(),
                        status: 502,
                        message: e.to_string(),
                    }),
                Answer::Stream(_, head) => Err(status(head.status)),
                Answer::Error(e) => Err(SourceError::Unavailable {
                    path: path.to_string(),
                    status: e.status().as_u16(),
                    message: e.to_string(),
                }),
            }
        })
    }

    fn store(&self, key: &str, path: &str, head: Head, body: Bytes) {
        Edge::store(self, key, path, "", head, body);
    }

    fn max_object_bytes(&self) -> usize {
        self.config.max_object_bytes
    }
}
