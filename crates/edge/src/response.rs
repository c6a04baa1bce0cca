//! The edge's answers as HTTP: the response body type ([`Body`]) and the helpers that
//! make responses from text, from a whole cached object (304 for a matching
//! `If-None-Match`, 206/416 for a single byte range, HEAD without body) and from an
//! in-flight fetch streamed as it arrives.
//!
//! Not here: deciding what to answer (`proxy`), or any clock (the caller passes the
//! time).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use cache::CachedObject;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use crate::coalesce::{Flight, Head};

/// Response body type of the edge.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// `mediamesh_edge_egress_bytes_total`, made once (it is bumped on every answer).
/// Here, with the answers, rather than in `metrics`: that module renders the page
/// from the whole `Edge`, and the answers must not depend on it.
/// Striped: every core counts its answers at once.
static EGRESS: std::sync::OnceLock<&'static service::metrics::StripedCounter> =
    std::sync::OnceLock::new();

/// Counts body bytes sent to viewers.
pub fn record_egress(bytes: u64) {
    EGRESS
        .get_or_init(|| {
            service::metrics::StripedCounter::new(::metrics::counter!(
                "mediamesh_edge_egress_bytes_total"
            ))
        })
        .increment(bytes);
}

/// A whole body.
pub fn full(b: Bytes) -> Body {
    Full::new(b)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A plain-text answer of `status` (the message and a newline).
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(format!("{message}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Appends stored headers to `h` (`skip_length`: not `content-length`); unusable
/// ones are skipped.
pub fn apply_headers(h: &mut HeaderMap, headers: &[(String, String)], skip_length: bool) {
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

/// The stored fields of `obj` but `content-length`, as [`apply_headers`] adds them.
fn stored_fields(obj: &CachedObject) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(obj.headers.len() + 8);
    apply_headers(&mut h, &obj.headers, true);
    h
}

/// Streams a flight to one client as its bytes arrive.
pub fn stream_response(flight: Arc<Flight>, head: &Head, head_only: bool) -> Response<Body> {
    let body = if head_only {
        empty()
    } else {
        let stream = futures_util::stream::unfold((flight, 0usize), |(f, i)| async move {
            match f.chunk(i).await {
                Some(Ok(c)) => {
                    record_egress(c.len() as u64);
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
    apply_headers(res.headers_mut(), &head.headers, false);
    res
}

/// Answers from a whole object: 304 for a matching If-None-Match, 206/416 for a
/// single byte range, HEAD without body. `now_ms` (Unix ms) gives the `Age`.
pub fn object_response(
    obj: &CachedObject,
    req: &HeaderMap,
    head_only: bool,
    now_ms: u64,
) -> Response<Body> {
    let age = now_ms.saturating_sub(obj.stored_ms) / 1000;
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
        record_egress(body_len as u64);
    }
    let head_len = head_only.then(|| HeaderValue::from(body_len));
    let mut res = Response::new(if head_only { empty() } else { full(body) });
    *res.status_mut() = status;
    // The stored fields, parsed once per object (`memo.rs`).
    let fields = crate::memo::of(obj).map(|m| m.fields.get_or_init(|| stored_fields(obj)));
    *res.headers_mut() = match fields {
        Some(f) => {
            // Room for the ones added here and by the proxy (length, ranges, age,
            // range, x-cache, via, two CMSD), instead of growing twice. (It cannot
            // fail: a stored answer has at most hyper's 100 fields.)
            let mut h = f.clone();
            let _ = h.try_reserve(8);
            h
        }
        None => stored_fields(obj),
    };
    let h = res.headers_mut();
    // A body's length is written by hyper from the body itself (exact size); a HEAD
    // answer has no body, so it carries the object's length here.
    if let Some(len) = head_len {
        h.insert(header::CONTENT_LENGTH, len);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::AGE, age_value(age));
    if let Some(cr) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, cr);
    }
    res
}

/// `Age` values up to this many seconds are made once and reused.
const AGE_TABLE: u64 = 3600;

/// The `Age` header value of `age` seconds, without formatting or allocating for the
/// ages most answers have.
fn age_value(age: u64) -> HeaderValue {
    static TABLE: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..AGE_TABLE).map(|n| n.to_string()).collect());
    match usize::try_from(age).ok().and_then(|i| table.get(i)) {
        // A `&'static str` from the static table: no copy, no reference count.
        Some(s) => HeaderValue::from_static(s.as_str()),
        None => HeaderValue::from(age),
    }
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
    use super::{age_value, parse_range, AGE_TABLE};

    #[test]
    fn ages() {
        for age in [0, 1, 59, AGE_TABLE - 1, AGE_TABLE, 86_400 * 365] {
            assert_eq!(age_value(age).to_str().ok(), Some(age.to_string().as_str()));
        }
    }

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
