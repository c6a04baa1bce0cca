//! The HTTP side of upstream calls: validating base URLs, building the pooled HTTP/1.1
//! client, shaping one upstream request, and sending it under a first-byte timeout.
//!
//! Plain `http://` only: `https://` upstreams would need a TLS connector (rustls via
//! hyper-rustls), which this crate does not pull in yet, so such URLs are rejected at
//! configuration time rather than failing on every request.
//!
//! Not here: which target to try (see `mod.rs`) or breaker bookkeeping (`health.rs`).

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{ConfigError, FetchError};

/// The value of the `Via` header added to every upstream request.
pub const VIA: &str = "1.1 mediamesh-edge";

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(30);

/// The pooled client used for every upstream (requests carry no body).
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Builds the keep-alive pooled HTTP/1.1 client with TCP_NODELAY and a connect timeout,
/// keeping at most `max_idle_per_host` idle connections per upstream (the cap on open
/// ones is the per-upstream semaphore in `mod.rs`).
pub fn build_client(connect_timeout: Duration, max_idle_per_host: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(max_idle_per_host)
        .build(connector)
}

/// Checks a configured base URL and returns it normalized: `http://authority` plus an
/// optional path prefix without a trailing slash.
pub fn normalize_base(raw: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::InvalidUrl(format!("{raw:?}: {why}"));
    let uri: Uri = raw.trim().parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad(
                "https upstreams are not supported yet (needs a rustls connector)",
            ))
        }
        Some(_) => return Err(bad("scheme must be http")),
        None => return Err(bad("missing scheme (want http://host:port)")),
    }
    let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("user info is not supported"));
    }
    if authority.host().is_empty() {
        return Err(bad("missing host"));
    }
    if uri.query().is_some() {
        return Err(bad("a base URL cannot have a query"));
    }
    let prefix = uri.path().trim_end_matches('/');
    Ok(format!(
        "http://{}{}",
        authority.as_str().to_ascii_lowercase(),
        prefix
    ))
}

/// Headers never forwarded upstream: hop-by-hop ones, `Host` (set from the target),
/// and body framing (upstream requests have no body).
const DROPPED: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
];

/// Builds the request for `base` (normalized) + `path_and_query`: forwards `headers`
/// minus hop-by-hop ones (and those named in their `Connection`), and appends
/// `Via: 1.1 mediamesh-edge`. `X-Forwarded-For` and the rest pass through as given.
pub fn build_request(
    base: &str,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<Request<Empty<Bytes>>, FetchError> {
    if *method != Method::GET && *method != Method::HEAD {
        return Err(FetchError::InvalidRequest(format!(
            "method {method} is not sent upstream (GET and HEAD only)"
        )));
    }
    if !path_and_query.starts_with('/') {
        return Err(FetchError::InvalidRequest(format!(
            "path {path_and_query:?} must start with '/'"
        )));
    }
    PathAndQuery::try_from(path_and_query)
        .map_err(|e| FetchError::InvalidRequest(format!("path {path_and_query:?}: {e}")))?;
    let uri: Uri = format!("{base}{path_and_query}")
        .parse()
        .map_err(|e| FetchError::InvalidRequest(format!("uri: {e}")))?;

    let named_by_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();

    let mut out = HeaderMap::with_capacity(headers.len() + 1);
    for (name, value) in headers {
        if DROPPED.contains(name)
            || named_by_connection.contains(name)
            || *name == header::CONTENT_LENGTH
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out.append(header::VIA, HeaderValue::from_static(VIA));

    let mut req = Request::new(Empty::new());
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = out;
    Ok(req)
}

/// Why one upstream attempt got no usable response.
#[derive(Debug)]
pub enum SendError {
    /// No response head within the first-byte timeout.
    Timeout,
    /// Connect refused or timed out, or the connection broke before a response head.
    Transport(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Timeout => f.write_str("no response within the first-byte timeout"),
            SendError::Transport(s) => f.write_str(s),
        }
    }
}

/// Sends `req` and waits for the response head at most `first_byte_timeout` (this
/// includes connecting, whose own timeout is usually shorter). The body still streams.
pub async fn send(
    client: &HttpClient,
    req: Request<Empty<Bytes>>,
    first_byte_timeout: Duration,
) -> Result<Response<Incoming>, SendError> {
    match tokio::time::timeout(first_byte_timeout, client.request(req)).await {
        Err(_) => Err(SendError::Timeout),
        Ok(Err(e)) => {
            let kind = if e.is_connect() { "connect: " } else { "" };
            Err(SendError::Transport(format!("{kind}{}", chain(&e))))
        }
        Ok(Ok(resp)) => Ok(resp),
    }
}

/// An error and its sources on one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_validated_and_normalized() {
        assert_eq!(
            normalize_base("http://127.0.0.1:8080").ok().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            normalize_base("http://Origin.Example:80/").ok().as_deref(),
            Some("http://origin.example:80")
        );
        assert_eq!(
            normalize_base(" http://o:1/prefix/ ").ok().as_deref(),
            Some("http://o:1/prefix")
        );
        for bad in [
            "",
            "127.0.0.1:8080",
            "https://o:443",
            "ftp://o",
            "http://o/?a=1",
            "http://u:p@o",
            "/just/a/path",
            "http://",
        ] {
            assert!(
                matches!(normalize_base(bad), Err(ConfigError::InvalidUrl(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn request_shaping() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("viewer.example"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::VIA, HeaderValue::from_static("1.1 player-proxy"));
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-99"));
        let req = build_request("http://o:1/p", &Method::GET, "/a/b.m3u8?_HLS_msn=3", &h);
        let req = match req {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(req.uri().to_string(), "http://o:1/p/a/b.m3u8?_HLS_msn=3");
        let hs = req.headers();
        assert!(hs.get(header::HOST).is_none());
        assert!(hs.get(header::CONNECTION).is_none());
        assert!(hs.get("x-secret").is_none());
        assert!(hs.get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(
            hs.get("x-forwarded-for").map(|v| v.as_bytes()),
            Some(&b"203.0.113.7"[..])
        );
        assert_eq!(
            hs.get(header::RANGE).map(|v| v.as_bytes()),
            Some(&b"bytes=0-99"[..])
        );
        let via: Vec<&[u8]> = hs
            .get_all(header::VIA)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(via, vec![&b"1.1 player-proxy"[..], VIA.as_bytes()]);
    }

    #[test]
    fn bad_requests_are_refused() {
        let h = HeaderMap::new();
        for (m, p) in [
            (Method::POST, "/x"),
            (Method::GET, "x"),
            (Method::GET, "/a b"),
            (Method::GET, "//evil.example/x"),
        ] {
            let r = build_request("http://o:1", &m, p, &h);
            // "//evil..." joins to http://o:1//evil.example/x, which stays on o:1.
            if p.starts_with("//") {
                let uri = r.map(|r| r.uri().clone()).ok();
                assert_eq!(
                    uri.and_then(|u| u.host().map(str::to_owned)).as_deref(),
                    Some("o")
                );
                continue;
            }
            assert!(
                matches!(r, Err(FetchError::InvalidRequest(_))),
                "{m} {p} accepted"
            );
        }
    }
}
