//! The quick path: a request the handler can answer at once, from memory and without
//! waiting (an edge's fresh cache hit), is answered without the handler's request
//! path. Over HTTP/1.1 the connection's IO (`park.rs`'s `ParkIo`) answers it as the
//! bytes arrive, and hyper never sees it; every other request goes to hyper as
//! before, byte for byte. Over HTTP/2, see below.
//!
//! A connection starts with no hyper connection at all: `park.rs`'s `serve_quick`
//! answers quick requests until one is not quick, and only then builds hyper's
//! connection and hands it the bytes. While hyper's connection lives (until the
//! connection lingers idle or is refreshed, below), quick requests are still answered
//! under it, by the same IO. Counted per 1 KB hit (`edge_hit_profile.sh`), serving
//! with no hyper connection took 6,655 instructions down to 5,618 (plain) and 19,610
//! to 18,685 (TLS).
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
//! A body the handler has in a file ([`QuickBody::file`]: the edge's large cached
//! bodies, kept in sealed memory files) goes out by `sendfile` on a plain socket,
//! after its head (`sendfile.rs`); over TLS its bytes are written like any other's.
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
//! HTTP/2 (over TLS, and h2c) takes it too, one level up: hyper's h2 connection reads
//! the request, and before the handler is called `serve.rs` asks the handler's
//! [`Quick::answer_fields`] (the same answer as header fields; a `GET` whose body
//! ended with its head, a plain `:path`, none of the fields refused above). Its answer
//! goes back to hyper as the response; hyper's h2 stream for it is polled where the
//! request arrived (`exec.rs`). Counted per 1 KB hit over h2 (`edge_hit_profile.sh`,
//! 64 connections, TLS handshakes included): 77,419 instructions and 18.9
//! allocations, 72,842 with `exec.rs`, then 66,286 and 14.9 with this.
//!
//! Not here: HTTP/3 connections (they never take it), request bodies, `HEAD`,
//! anything the handler would have to wait for.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response};

/// Request header fields looked at; a request with more goes to hyper.
const MAX_QUICK_HEADERS: usize = 32;

/// A handler's quick path (see the module doc).
pub trait Quick: Send + Sync + 'static {
    /// Answers `req` now, or `None` for hyper to serve it. On `Some(body)`, `head`
    /// (empty when called) holds the status line and every header field except
    /// `content-length`, each line ending in CRLF, and nothing else: the caller adds
    /// the length of `body` and the empty line. A `date` field is the handler's to
    /// write ([`put_date`]), as hyper adds one only where the response has none.
    fn answer(&self, req: &QuickRequest<'_>, head: &mut Vec<u8>) -> Option<QuickBody>;

    /// The same answer to `req` come over HTTP/2: its header fields, but
    /// `content-length` (hyper adds it from the body) and, as in [`Quick::answer`],
    /// `date` where hyper is to add one; and its body. The status is 200. `None`
    /// leaves the request to the handler; so does this default.
    fn answer_fields(&self, req: &QuickRequest<'_>) -> Option<(HeaderMap, Bytes)> {
        let _ = req;
        None
    }
}

/// A quick answer's body: its bytes, and the file they are in when they are in one a
/// plain connection may `sendfile` from (the edge's large cached bodies, kept in
/// sealed memory files). TLS connections send the bytes.
pub struct QuickBody {
    pub bytes: Bytes,
    pub file: Option<BodyFile>,
}

impl From<Bytes> for QuickBody {
    fn from(bytes: Bytes) -> Self {
        QuickBody { bytes, file: None }
    }
}

/// A file whose bytes from `offset` on are a body's bytes, and stay so while the file
/// is held (its owner must guarantee it: the edge's are sealed against writes).
#[derive(Clone)]
pub struct BodyFile {
    pub fd: Arc<dyn AsFd + Send + Sync>,
    pub offset: u64,
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

/// A request on the quick path: a `GET` with no body, in HTTP/1.1 or HTTP/2 (see the
/// module doc).
pub struct QuickRequest<'a> {
    target: &'a str,
    /// Where the query starts (`?`), if there is one.
    query_at: Option<usize>,
    fields: Fields<'a>,
    peer: SocketAddr,
}

/// Where a quick request's header fields are.
#[derive(Clone, Copy)]
enum Fields<'a> {
    /// Parsed from HTTP/1.1 bytes, names in the client's case.
    Parsed(&'a [httparse::Header<'a>]),
    /// hyper's map of an HTTP/2 request (names lowercase).
    Map(&'a HeaderMap),
}

impl<'a> QuickRequest<'a> {
    /// The request of a `GET` with `target` and `fields`, if both may take the quick
    /// path: a plain target ([`plain_target`]) and none of the [`refused`] fields.
    fn checked(target: &'a str, fields: Fields<'a>, peer: SocketAddr) -> Option<Self> {
        let query_at = plain_target(target)?;
        // Not through `headers()`: its chained iterator cost every HTTP/1.1 hit
        // about 70 instructions more (`edge_hit_profile.sh`).
        let any_refused = match fields {
            Fields::Parsed(p) => p.iter().any(|h| refused(h.name, h.value)),
            Fields::Map(m) => m.iter().any(|(n, v)| refused(n.as_str(), v.as_bytes())),
        };
        (!any_refused).then_some(QuickRequest {
            target,
            query_at,
            fields,
            peer,
        })
    }

    /// The request target as sent (origin form: path and query).
    pub fn target(&self) -> &'a str {
        self.target
    }

    /// The path part of the target.
    pub fn path(&self) -> &'a str {
        self.query_at.map_or(self.target, |q| &self.target[..q])
    }

    /// The query part of the target, if it has one.
    pub fn query(&self) -> Option<&'a str> {
        self.query_at.map(|q| &self.target[q + 1..])
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The header fields as sent (names in the client's case; lowercase over HTTP/2).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        let (parsed, map) = match self.fields {
            Fields::Parsed(p) => (p, None),
            Fields::Map(m) => (&[][..], Some(m)),
        };
        parsed.iter().map(|h| (h.name, h.value)).chain(
            map.into_iter()
                .flat_map(|m| m.iter().map(|(n, v)| (n.as_str(), v.as_bytes()))),
        )
    }

    /// The first value of the field `name` (any case).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        match self.fields {
            Fields::Parsed(p) => p
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value),
            Fields::Map(m) => m.get(name).map(|v| v.as_bytes()),
        }
    }
}

/// What the quick path made of the request at the start of some bytes.
pub(crate) struct Answered {
    /// Bytes of the request (its head).
    pub(crate) used: usize,
    /// The response body (`head` holds the rest, ending with the empty line).
    pub(crate) body: QuickBody,
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
    let req = QuickRequest::checked(req.path?, Fields::Parsed(req.headers), peer)?;
    head.clear();
    let body = quick.answer(&req, head)?;
    head.extend_from_slice(b"content-length: ");
    head.extend_from_slice(itoa::Buffer::new().format(body.bytes.len()).as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    Some(Answered { used, body })
}

/// Tries the quick path on a request hyper read from an HTTP/2 connection: the
/// answer, or `None` for the handler. What qualifies is what does over HTTP/1.1 (the
/// module doc), read from the request's `:method`, `:path` and fields, and its body
/// must have ended with its head.
pub(crate) fn answer_h2<B: http_body::Body>(
    quick: &dyn Quick,
    req: &Request<B>,
    peer: SocketAddr,
) -> Option<Response<Full<Bytes>>> {
    if req.method() != Method::GET
        || !req.body().is_end_stream()
        || req.headers().len() > MAX_QUICK_HEADERS
    {
        return None;
    }
    let target = req.uri().path_and_query()?.as_str();
    let q = QuickRequest::checked(target, Fields::Map(req.headers()), peer)?;
    let (fields, body) = quick.answer_fields(&q)?;
    let mut resp = Response::new(Full::new(body));
    *resp.headers_mut() = fields;
    Some(resp)
}

/// An origin-form target of plain characters only: `/`, then RFC 3986 `pchar`s
/// without `%` (unreserved, sub-delims, `:`, `@`), `/`, and a query of the same
/// plus `?`. hyper's URI parser takes all of them, so nothing it would refuse
/// is answered here.
/// A header field that makes a request hyper's: a body, an expectation, an upgrade,
/// trailers, or a connection option other than `keep-alive`. (Matched by length
/// first: this runs for every field of every quick request.)
fn refused(name: &str, value: &[u8]) -> bool {
    match name.len() {
        2 => name.eq_ignore_ascii_case("te"),
        6 => name.eq_ignore_ascii_case("expect"),
        7 => name.eq_ignore_ascii_case("upgrade"),
        10 => name.eq_ignore_ascii_case("connection") && !value.eq_ignore_ascii_case(b"keep-alive"),
        14 => name.eq_ignore_ascii_case("content-length"),
        17 => name.eq_ignore_ascii_case("transfer-encoding"),
        _ => false,
    }
}

/// An origin-form target of plain characters only: `Some` with where its query
/// starts (the first `?`), or `None`.
fn plain_target(t: &str) -> Option<Option<usize>> {
    let b = t.as_bytes();
    let plain = b.first() == Some(&b'/')
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
        });
    plain.then(|| b.iter().position(|&c| c == b'?'))
}

/// Appends `date: <IMF-fixdate>\r\n` for now, as hyper writes it (made once a
/// second per thread).
pub fn put_date(out: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
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
        fn answer(&self, req: &QuickRequest<'_>, head: &mut Vec<u8>) -> Option<QuickBody> {
            if req.path() == "/no" {
                return None;
            }
            head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            Some(Bytes::copy_from_slice(req.target().as_bytes()).into())
        }
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn try_quick(data: &[u8]) -> Option<(usize, String, Bytes)> {
        let mut head = Vec::new();
        answer(&Echo, data, peer(), &mut head).map(|a| {
            (
                a.used,
                String::from_utf8_lossy(&head).into_owned(),
                a.body.bytes,
            )
        })
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
    fn the_path_and_query_split_at_the_first_question_mark() {
        struct Parts;
        impl Quick for Parts {
            fn answer(&self, req: &QuickRequest<'_>, head: &mut Vec<u8>) -> Option<QuickBody> {
                head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
                let q = req.query().map_or("-".to_string(), |q| format!("[{q}]"));
                Some(Bytes::from(format!("{} {q}", req.path())).into())
            }
        }
        for (target, want) in [
            ("/a/b.m4s", "/a/b.m4s -"),
            ("/a/b.m4s?x=1&y", "/a/b.m4s [x=1&y]"),
            ("/a?", "/a []"),
            ("/a?b?c", "/a [b?c]"),
            ("/?", "/ []"),
        ] {
            let req = format!("GET {target} HTTP/1.1\r\n\r\n");
            let mut head = Vec::new();
            let a = answer(&Parts, req.as_bytes(), peer(), &mut head).unwrap();
            assert_eq!(&a.body.bytes[..], want.as_bytes(), "{target}");
        }
    }

    #[test]
    fn refused_fields_are_matched_in_any_case() {
        for (name, value) in [
            ("TE", "trailers"),
            ("Expect", "100-continue"),
            ("UPGRADE", "h2c"),
            ("Connection", "close"),
            ("connection", "upgrade"),
            ("Content-Length", "0"),
            ("transfer-ENCODING", "chunked"),
        ] {
            assert!(refused(name, value.as_bytes()), "{name}: {value}");
        }
        for (name, value) in [
            ("Connection", "Keep-Alive"),
            ("host", "h"),
            ("tee", "x"),
            ("content-type", "x"),
            ("user-agent", "x"),
        ] {
            assert!(!refused(name, value.as_bytes()), "{name}: {value}");
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
        put_date(&mut out, SystemTime::now());
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
