//! The request path as named phases, and the hooks that plug into them (in the
//! manner of Pingora's `ProxyHttp`): the edge runs every request through
//!
//! 1. **request** — each hook's [`Hook::request`] in order; one may change the path
//!    or query, or answer (filters, the A/B watermark);
//! 2. **admission** — built in: local routes, method, rate limit, token;
//! 3. **route** — [`Hook::route`]: a hook may answer a path it owns (the ladder's
//!    playlists);
//! 4. **cache lookup** — built in, by `cache::decide`; on a miss the leader of the
//!    coalesced fetch asks [`Hook::fill`] (the ladder makes rung objects) before the
//!    upstreams;
//! 5. **response** — [`Hook::response`] on the answer as cached or fetched (per-viewer
//!    playlists), then the edge's own headers, then [`Hook::response_filter`] just
//!    before it leaves (filters);
//! 6. **logging** — the access log line, then [`Hook::logging`] (filters' done).
//!
//! Hooks get a [`Session`] (the request as it goes) and, where they need objects
//! through the edge's cache, an [`ObjectSource`], so no hook names the edge itself.
//!
//! Not here: the phases' built-in steps (`proxy`) or the hooks (`filter`,
//! `media::viewer`, `ladder`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use crate::cmcd::Cmcd;
use crate::coalesce::{Flight, Head};
use crate::response::Body;

/// A request body as it arrived: over TCP (HTTP/1.1, h2) or over QUIC (HTTP/3).
#[derive(Debug)]
pub enum RequestBody {
    Tcp(Incoming),
    H3(service::H3Body),
}

impl From<Incoming> for RequestBody {
    fn from(b: Incoming) -> Self {
        RequestBody::Tcp(b)
    }
}

impl From<service::H3Body> for RequestBody {
    fn from(b: service::H3Body) -> Self {
        RequestBody::H3(b)
    }
}

/// Boxed error of a [`RequestBody`].
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            RequestBody::Tcp(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BodyError::from))),
            RequestBody::H3(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(BodyError::from))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Tcp(b) => b.is_end_stream(),
            RequestBody::H3(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            RequestBody::Tcp(b) => b.size_hint(),
            RequestBody::H3(b) => b.size_hint(),
        }
    }
}

/// The future a hook returns.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One request on its way through the phases.
pub struct Session {
    /// The request head (its headers as the filters left them); the body is `body`.
    pub req: Request<()>,
    pub method: Method,
    /// The canonical path (see `canonical`), as hooks may have changed it.
    pub path: String,
    pub query: Option<String>,
    pub peer: SocketAddr,
    /// When the edge got the request.
    pub started: Instant,
    /// Unix ms when the edge got the request.
    pub now_ms: u64,
    /// The request body, until a hook takes it (only filters read bodies).
    pub body: Option<RequestBody>,
    /// The filters running for this request, if any (the filter hook's state).
    pub filters: Option<compute::RequestRun>,
    /// CMCD the client sent, parsed at the response phase.
    pub cmcd: Option<Cmcd>,
}

/// Why an object a hook needs could not be had through the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The path cannot be a cache key (414).
    #[error("{path}: path too long")]
    PathTooLong { path: String },
    /// The upstream answered, but not 200 (its status is kept: 404 stays 404).
    #[error("{path}: upstream answered {status}")]
    Status { path: String, status: u16 },
    /// No usable answer (every upstream failed, timed out, or the body broke).
    #[error("{path}: {message}")]
    Unavailable {
        path: String,
        /// 502 or 504.
        status: u16,
        message: String,
    },
}

impl SourceError {
    /// The status the viewer gets for it.
    pub fn status(&self) -> u16 {
        match self {
            SourceError::PathTooLong { .. } => 414,
            SourceError::Status { status, .. } | SourceError::Unavailable { status, .. } => *status,
        }
    }

    /// Whether asking again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            SourceError::PathTooLong { .. } => false,
            SourceError::Status { status, .. } => *status >= 500 || *status == 429,
            SourceError::Unavailable { .. } => true,
        }
    }
}

/// What hooks may ask of the edge they run in: objects through the cache and the
/// coalesced miss path (counted and stored like a viewer's request), and storing
/// what they made. The edge implements it (`proxy`).
pub trait ObjectSource: Send + Sync {
    /// The body of `path` when the answer is a 200.
    fn get<'a>(&'a self, path: &'a str) -> HookFuture<'a, Result<Bytes, SourceError>>;
    /// Stores a made object under `key` by the freshness policy.
    fn store(&self, key: &str, path: &str, head: Head, body: Bytes);
    /// Largest object the edge holds.
    fn max_object_bytes(&self) -> usize;
}

/// The phases a hook takes part in (see [`Hook::phases`]). The edge calls a hook only
/// in these, so a hook that sits out a phase costs that phase nothing (no boxed
/// future per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases {
    pub request: bool,
    pub route: bool,
    pub fill: bool,
    pub response: bool,
    pub response_filter: bool,
    pub logging: bool,
}

impl Phases {
    /// Every phase.
    pub const ALL: Phases = Phases {
        request: true,
        route: true,
        fill: true,
        response: true,
        response_filter: true,
        logging: true,
    };
    /// No phase.
    pub const NONE: Phases = Phases {
        request: false,
        route: false,
        fill: false,
        response: false,
        response_filter: false,
        logging: false,
    };
}

/// A piece of the request path that plugs into the phases. Every method has a
/// default that does nothing, so a hook implements only its phases.
pub trait Hook: Send + Sync + std::fmt::Debug {
    /// The phases the edge calls this hook in, read once when the edge is built.
    /// Default: all (a phase the hook does not implement then runs its no-op default).
    fn phases(&self) -> Phases {
        Phases::ALL
    }

    /// Request phase: change `s.path`/`s.query`/headers, or answer.
    fn request<'a>(&'a self, s: &'a mut Session) -> HookFuture<'a, Option<Response<Body>>> {
        let _ = s;
        Box::pin(async { None })
    }

    /// Route phase (after admission, before the cache): answer a path the hook owns.
    fn route<'a>(
        &'a self,
        src: &'a dyn ObjectSource,
        s: &'a Session,
    ) -> HookFuture<'a, Option<Response<Body>>> {
        let _ = (src, s);
        Box::pin(async { None })
    }

    /// Miss phase, in the leader of a coalesced fetch: fill `flight` for `key` (and
    /// return `true`) instead of the upstreams.
    fn fill<'a>(
        &'a self,
        src: &'a dyn ObjectSource,
        key: &'a str,
        path: &'a str,
        flight: &'a Flight,
    ) -> HookFuture<'a, bool> {
        let _ = (src, key, path, flight);
        Box::pin(async { false })
    }

    /// Response phase, on the answer as cached or fetched (before the edge's headers).
    fn response<'a>(
        &'a self,
        s: &'a mut Session,
        res: Response<Body>,
    ) -> HookFuture<'a, Response<Body>> {
        let _ = s;
        Box::pin(async { res })
    }

    /// Last response phase, on the answer as it leaves (after the edge's headers).
    fn response_filter<'a>(
        &'a self,
        s: &'a mut Session,
        res: Response<Body>,
    ) -> HookFuture<'a, Response<Body>> {
        let _ = s;
        Box::pin(async { res })
    }

    /// Logging phase, after the access log line.
    fn logging(&self, s: &mut Session) {
        let _ = s;
    }

    /// Whether, in every phase it takes part in, this hook leaves a plain `GET` of
    /// `path` alone (no query, no CMCD, none of the fields the request path reads):
    /// no answer of its own, no change to the path, the request or the answer. If
    /// every hook does, the edge may answer such a request's fresh hits on its quick
    /// path (`quick`), which runs no hook. Default: no.
    fn leaves_plain_get(&self, path: &str) -> bool {
        let _ = path;
        false
    }
}
