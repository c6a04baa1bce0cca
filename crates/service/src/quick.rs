//! The quick path of plain HTTP/1.1: a request the handler can answer at once, from
//! memory and without waiting (an edge's fresh cache hit), is answered by the IO
//! under hyper (`park.rs`'s `ParkIo`) as the bytes arrive, and hyper never sees it.
//! Every other request goes to hyper as before, byte for byte.
//!
//! Why: counted per 1 KB cache hit (bench/README.md, `edge_hit_profile.sh`), hyper's
//! own work (its dispatcher, the request's `HeaderMap`, the response's encoding, the
//! per-request future it moves into its connection) was about two thirds of the
//! user-space time of a hit, and it grew with the number of connections (each one's
//! state is memory of its own): at 1000 connections an edge served 1 KB hits at
//! 1.1–1.2× nginx against 1.4–1.7× at 16–256. A hit needs none of it: one parse of the
//! head (httparse, which hyper uses too), a lookup, and a `writev` of a head the
//! handler writes straight into a reused buffer and the object's bytes.
//!
//! What qualifies, decided here before the handler is asked: a complete head at a
//! request boundary with hyper idle (no request in flight, all it wrote flushed), a
//! `GET` in HTTP/1.1 with an origin-form target of plain characters (RFC 3986 path
//! characters without `%`, and a query of the same), and no header that gives the
//! request a body or changes the connection (`content-length`, `transfer-encoding`,
//! `expect`, `upgrade`, `te`, `connection` other than `keep-alive`). The handler
//! ([`Quick`]) then says whether it answers, and must answer exactly as its hyper
//! path would (status, headers, body); the edge's tests compare the two.
//!
//! HTTP/1.1 over TLS takes it too (ALPN `http/1.1` or none).
//!
//! hyper's header-read timer: hyper arms it when it starts waiting for a request
//! head and disarms it when a head is complete. Quick requests never reach hyper, so
//! on a connection that only sends them the timer would run out while the client is
//! busy, and hyper would close the connection under it (after 10 s of hits, found
//! with `wrk -d13s`). So the IO gives hyper a fresh connection in time: once hyper's
//! connection has gone half the header-read timeout without a head of its own, the
//! IO ends it at the next moment between requests, as it does to park (`park.rs`), and
//! the next request starts a new one ([`QuickSide::refresh_after`]).
//!
//! Not here: h2, h2c and HTTP/3 connections (they never take it), request bodies,
//! `HEAD`, anything the handler would have to wait for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Request header fields looked at; a request with more goes to hyper.
const MAX_QUICK_HEADERS: usize = 32;

/// A handler's quick path (see the module doc).
pub trait Quick: Send + Sync + 'static {
    /// Answers `req` now, or `None` for hyper to serve it. On `Some(body)`, `head`
    /// (empty when called) holds the status line and every header field except
    /// `content-length`, each line ending in CRLF, and nothing else: the caller adds
    /// the length of `body` and the empty line. A `date` field is the handler's to
    /// write ([`put_date`]), as hyper adds one only where the response has none.
    fn answer(&self, req: &QuickRequest<'_>, head: &mut Vec<u8>) -> Option<Bytes>;
}

/// The quick path as one connection's IO holds it.
#[derive(Clone)]
pub(crate) struct QuickSide {
    pub(crate) quick: Arc<dyn Quick>,
    /// The client, as [`QuickRequest::peer`] gives it.
    pub(crate) peer: SocketAddr,
    /// How long a hyper connection may go without a request head of its own while
    /// quick answers keep the connection busy: then it is ended between requests and
    /// the next request gets a new one, before hyper's header-read timer (armed when
    /// it began waiting, and never disarmed by quick requests) runs out. Half that
    /// timeout.
    pub(crate) refresh_after: Duration,
}

/// A request on the quick path: a `GET` in HTTP/1.1 with no body (see the module doc).
pub struct QuickRequest<'a> {
    target: &'a str,
    headers: &'a [httparse::Header<'a>],
    peer: SocketAddr,
}

impl<'a> QuickRequest<'a> {
    /// The request target as sent (origin form: path and query).
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path part of the target.
    pub fn path(&self) -> &'a str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// The query part of the target, if it has one.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The header fields as sent (names in the client's case).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.headers.iter().map(|h| (h.name, h.value))
    }

    /// The first value of the field `name` (any case).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// What the quick path made of the request at the start of some bytes.
pub(crate) struct Answered {
    /// Bytes of the request (its head).
    pub(crate) used: usize,
    /// The response body (`head` holds the rest, ending with the empty line).
    pub(crate) body: Bytes,
}

/// Tries the quick path on the request at the start of `data`: `Some` when `quick`
/// answered it (`head` then holds the whole response head), `None` when hyper is to
/// serve it (incomplete, not a quick request, or not answered).
pub(crate) fn answer(
    quick: &dyn Quick,
    data: &[u8],
    peer: SocketAddr,
    head: &mut Vec<u8>,
) -> Option<Answered> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_QUICK_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let used = match req.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let target = req.path?;
    if !plain_target(target) {
        return None;
    }
    for h in req.headers.iter() {
        let n = h.name;
        let refused = [
            "content-length",
            "transfer-encoding",
            "expect",
            "upgrade",
            "te",
        ]
        .iter()
        .any(|r| n.eq_ignore_ascii_case(r))
            || (n.eq_ignore_ascii_case("connection")
                && !h.value.eq_ignore_ascii_case(b"keep-alive"));
        if refused {
            return None;
        }
    }
    head.clear();
    let req = QuickRequest {
        target,
        headers: req.headers,
        peer,
    };
    let body = quick.answer(&req, head)?;
    head.extend_from_slice(b"content-length: ");
    head.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    Some(Answered { used, body })
}

/// An origin-form target of plain characters only: `/`, then RFC 3986 `pchar`s
/// without `%` (unreserved, sub-delims, `:`, `@`), `/`, and a query of the same
/// plus `?`. hyper's URI parser takes all of them, so nothing it would refuse
/// is answered here.
fn plain_target(t: &str) -> bool {
    let b = t.as_bytes();
    b.first() == Some(&b'/')
        && b.iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                )
        })
}

/// Appends `date: <IMF-fixdate>\r\n` for now, as hyper writes it (made once a
/// second per thread).
pub fn put_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(d.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every request with 200 and its target as the body.
    struct Echo;

    impl Quick for Echo {
        fn answer(&self, req: &QuickRequest<'_>, head: &mut Vec<u8>) -> Option<Bytes> {
            if req.path() == "/no" {
                return None;
            }
            head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            Some(Bytes::copy_from_slice(req.target().as_bytes()))
        }
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn try_quick(data: &[u8]) -> Option<(usize, String, Bytes)> {
        let mut head = Vec::new();
        answer(&Echo, data, peer(), &mut head)
            .map(|a| (a.used, String::from_utf8_lossy(&head).into_owned(), a.body))
    }

    #[test]
    fn a_plain_get_is_answered_with_its_length() {
        let req =
            b"GET /a/b.m4s?x=1 HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\nGET /next";
        let (used, head, body) = try_quick(req).unwrap();
        assert_eq!(used, req.len() - b"GET /next".len());
        assert_eq!(head, "HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n");
        assert_eq!(&body[..], b"/a/b.m4s?x=1");
    }

    #[test]
    fn what_is_not_a_quick_request_goes_to_hyper() {
        for req in [
            &b"GET /a HTTP/1.1\r\nHost: h\r\n"[..],           // incomplete
            b"HEAD /a HTTP/1.1\r\n\r\n",                      // not GET
            b"POST /a HTTP/1.1\r\ncontent-length: 0\r\n\r\n", // not GET
            b"GET /a HTTP/1.0\r\n\r\n",                       // HTTP/1.0
            b"GET http://h/a HTTP/1.1\r\n\r\n",               // absolute form
            b"GET /a%2e HTTP/1.1\r\n\r\n",                    // an escape
            b"GET /a\"b HTTP/1.1\r\n\r\n",                    // not a plain character
            b"GET /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /a HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /a HTTP/1.1\r\nTE: trailers\r\n\r\n",
            b"GET /no HTTP/1.1\r\n\r\n", // the handler says no
            b"GET /a HTTP/1.1\r\nbad header\r\n\r\n",
            b"\r\n\r\n",
            b"",
        ] {
            assert!(try_quick(req).is_none(), "{}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn too_many_header_fields_go_to_hyper() {
        let mut req = b"GET /a HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_QUICK_HEADERS {
            req.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert!(try_quick(&req).is_none());
    }

    #[test]
    fn the_date_is_an_imf_fixdate() {
        let mut out = Vec::new();
        put_date(&mut out);
        let s = String::from_utf8(out).unwrap();
        let v = s
            .strip_prefix("date: ")
            .unwrap()
            .strip_suffix("\r\n")
            .unwrap();
        assert!(httpdate::parse_http_date(v).is_ok(), "{v}");
        assert!(v.ends_with(" GMT"));
    }
}
