//! The edge's quick path ([`service::Quick`]): a fresh cache hit in memory, asked for
//! by a plain `GET` that no step of the request path would treat differently, is
//! answered from the cached object as the request's bytes arrive, without hyper and
//! without building a request, a session or a response (service's `quick.rs` says how
//! the connection does it and why). The answer is the one `proxy` makes for the same
//! request: the same status, header fields and body, and the same counters, viewer
//! accounting and access-log line (or `access` event). The test `quick_answers_are_the_request_paths`
//! compares the two over real sockets.
//!
//! The head of an object's quick answers is made once, at its first quick answer,
//! and kept in the object's memo (`memo.rs`): a hit copies it and adds `age` and,
//! where the object has none, `date`. For HTTP/2 (`Quick::answer_fields`) the same
//! fields are kept as a header map, cloned per hit with `age` added (hyper adds
//! `date` where there is none, as it does to the long way's answers). Its lookup key
//! is the path itself ([`cache::key::plain_key`]), so no key is built per hit.
//!
//! What goes the long way instead (through `proxy`), decided per edge: a token key,
//! the rate limiter; and per request: a hook that would act on
//! it (`Hook::leaves_plain_get`: filters and the ladder always; media functions for
//! a watermark, or ads and device rules on playlists), a query, a path that is not
//! canonical or is the edge's own (`/healthz`, `/metrics`, the admin side, local
//! routes), a request header the path reads (`range`, `if-none-match`,
//! `cache-control`, `via`, CMCD), and anything but a fresh 200 in memory (a miss, a
//! stale copy, the disk tier).
//!
//! Not here: the request path itself (`proxy`), the answers it makes (`response`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use service::{BodyFile, Quick, QuickBody, QuickRequest};

use cache::decide::{decide, Decision};
use cache::key::plain_key;
use cache::{CacheStatus, CachedObject};

use crate::memo::QuickHead;
use crate::node::Edge;
use crate::proxy::{access_event, is_admin_path};

/// Request header fields the request path reads to make a cache hit's answer (the
/// `cmcd-` ones by prefix).
const READ_FIELDS: [&str; 4] = ["range", "if-none-match", "cache-control", "via"];

/// Stored header fields the request path replaces with its own (or, for
/// `content-length`, the connection writes from the body).
const REPLACED_FIELDS: [&str; 6] = [
    "content-length",
    "accept-ranges",
    "age",
    "x-cache",
    "cmsd-static",
    "cmsd-dynamic",
];

/// An edge's quick path, for its TCP listener (HTTP/1.1 and HTTP/2).
pub struct EdgeQuick {
    edge: Arc<Edge>,
    /// The edge's hooks that take part in some phase (indexes): each must leave a
    /// request alone (`Hook::leaves_plain_get`) for it to be quick.
    hooks: Vec<usize>,
    /// Paths the server answers itself (local routes): never quick.
    local_prefixes: Vec<String>,
    /// The `alt-svc` field the server adds to every answer (HTTP/3 on).
    alt_svc: Option<HeaderValue>,
}

impl EdgeQuick {
    /// The quick path of `edge`, or `None` where its configuration puts a step in
    /// every request's path that the quick path does not take (see the module doc).
    pub fn new(
        edge: Arc<Edge>,
        local_prefixes: Vec<String>,
        alt_svc: Option<HeaderValue>,
    ) -> Option<Self> {
        let plain =
            edge.config.quick_hits && edge.config.token_key.is_none() && edge.limiter.is_none();
        let hooks = edge
            .hook_phases
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != crate::phase::Phases::NONE)
            .map(|(i, _)| i)
            .collect();
        plain.then_some(EdgeQuick {
            edge,
            hooks,
            local_prefixes,
            alt_svc,
        })
    }
}

impl Quick for EdgeQuick {
    fn answer(&self, req: &QuickRequest<'_>, head: &mut Vec<u8>) -> Option<QuickBody> {
        let ((), body) = self.hit(req, |made, age, wall| {
            head.extend_from_slice(made.head.as_deref()?);
            field(head, b"age", itoa::Buffer::new().format(age).as_bytes());
            if !made.dated {
                service::put_date(head, wall);
            }
            Some(())
        })?;
        Some(body)
    }

    fn answer_fields(&self, req: &QuickRequest<'_>) -> Option<(HeaderMap, Bytes)> {
        // hyper adds `date` where the fields have none, as it does to the long way's.
        let (fields, body) = self.hit(req, |made, age, _| {
            let mut fields = made.fields.clone()?;
            fields.insert(header::AGE, HeaderValue::from(age));
            Some(fields)
        })?;
        Some((fields, body.bytes))
    }
}

impl EdgeQuick {
    /// The checks of a quick answer to `req` (see the module doc), then the hit's
    /// answer from the object: `head` makes its head from the object's memo, the age
    /// and the time, or refuses it (before anything is counted).
    fn hit<R>(
        &self,
        req: &QuickRequest<'_>,
        head: impl FnOnce(&QuickHead, u64, SystemTime) -> Option<R>,
    ) -> Option<(R, QuickBody)> {
        let edge = &*self.edge;
        // For the access log's `ms` only.
        let started = edge.access_log.as_ref().map(|_| std::time::Instant::now());
        if req.query().is_some() {
            return None;
        }
        let path = req.path();
        if !crate::canonical::is_canonical(path)
            || path == "/healthz"
            || path == "/metrics"
            || is_admin_path(path)
            || self
                .local_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
        {
            return None;
        }
        let hooked = self
            .hooks
            .iter()
            .any(|&i| edge.hooks.get(i).is_none_or(|h| !h.leaves_plain_get(path)));
        if hooked {
            return None;
        }
        let read = req.headers().any(|(name, _)| {
            READ_FIELDS.iter().any(|f| name.eq_ignore_ascii_case(f))
                || name
                    .get(..5)
                    .is_some_and(|p| p.eq_ignore_ascii_case("cmcd-"))
        });
        if read {
            return None;
        }
        // The key of a plain path without a query is the path (`target` would make
        // the same); any other goes the long way.
        // This thread's copy of the object when it is current (`cache::hot`): no
        // lock, no reference count shared with other threads.
        edge.memory
            .read_hot(plain_key(path)?, |obj, body| {
                self.answer_from(req, head, path, started, obj, body)
            })
            .flatten()
    }

    /// The quick answer from `obj` (its `body`, this thread's own when small).
    fn answer_from<R>(
        &self,
        req: &QuickRequest<'_>,
        head: impl FnOnce(&QuickHead, u64, SystemTime) -> Option<R>,
        path: &str,
        started: Option<std::time::Instant>,
        obj: &CachedObject,
        body: &Bytes,
    ) -> Option<(R, QuickBody)> {
        let edge = &*self.edge;
        let wall = SystemTime::now();
        let now = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if obj.status != 200 || decide(now, Some(obj)) != Decision::Hit {
            return None;
        }
        // The object's head, made at its first quick answer (the object is only ever
        // looked up by this path here: its key is the path).
        let made = crate::memo::of(obj)?
            .quick
            .get_or_init(|| self.head_of(obj, path));
        let age = now.saturating_sub(obj.stored_ms) / 1000;
        let answer = head(made, age, wall)?;
        // What the response and logging phases count.
        crate::response::record_egress(obj.body.len() as u64);
        let client = req.peer().ip();
        edge.count_viewer_of(
            path,
            client,
            StatusCode::OK,
            None,
            || false,
            || req.header("user-agent").unwrap_or(b""),
        );
        crate::metrics::record_response(200, CacheStatus::Hit);
        crate::metrics::record_quick();
        match &edge.access_log {
            Some(log) => {
                let line = crate::access_log::Line {
                    time_ms: now,
                    client,
                    method: "GET",
                    path,
                    status: 200,
                    cache: CacheStatus::Hit.as_str(),
                    user_agent: req.header("user-agent"),
                    referer: req.header("referer"),
                    cmcd: None,
                };
                let elapsed = started.map(|t| t.elapsed()).unwrap_or_default();
                log.log_whole(&line, obj.body.len() as u64, elapsed);
            }
            None => access_event(client, &Method::GET, path, 200, CacheStatus::Hit, 0, None),
        }
        // A large body in a sealed memory file goes out from it on a plain socket
        // (a thread's own copy of a small body is in no file).
        let file = obj
            .body_file(body)
            .map(|(fd, offset)| BodyFile { fd, offset });
        Some((
            answer,
            QuickBody {
                bytes: body.clone(),
                file,
            },
        ))
    }
}

impl EdgeQuick {
    /// The head `object_response`, the response phase and the server make for a
    /// 200 from `obj` asked for by `path`, but its `age` and `date`.
    fn head_of(&self, obj: &CachedObject, path: &str) -> QuickHead {
        let usable = obj
            .headers
            .iter()
            .all(|(n, v)| field_name(n) && field_value(v));
        if !usable {
            return QuickHead {
                head: None,
                fields: None,
                dated: false,
            };
        }
        let edge = &*self.edge;
        let cmsd_static = crate::cmcd::cmsd_static(path, false);
        let stored = obj.headers.iter().filter(|(n, _)| {
            !(REPLACED_FIELDS.contains(&n.as_str()) || (self.alt_svc.is_some() && n == "alt-svc"))
        });
        let added = [
            ("accept-ranges", "bytes".as_bytes()),
            ("x-cache", CacheStatus::Hit.as_str().as_bytes()),
            ("via", edge.via.as_bytes()),
            ("cmsd-static", cmsd_static.as_bytes()),
            ("cmsd-dynamic", edge.cmsd_dynamic.as_bytes()),
        ];
        let alt_svc = self.alt_svc.as_ref().map(|v| ("alt-svc", v.as_bytes()));
        let all = stored
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .chain(added)
            .chain(alt_svc);
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let mut fields = Some(HeaderMap::new());
        let mut dated = false;
        for (n, v) in all {
            dated |= n == "date";
            field(&mut head, n.as_bytes(), v);
            fields = fields.and_then(|mut f| {
                let name = HeaderName::from_bytes(n.as_bytes()).ok()?;
                f.append(name, HeaderValue::from_bytes(v).ok()?);
                Some(f)
            });
        }
        QuickHead {
            head: Some(head.into_boxed_slice()),
            fields,
            dated,
        }
    }
}

fn field(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// A field name `apply_headers` keeps as it is: lowercase token characters.
fn field_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&c)
        })
}

/// A field value `apply_headers` keeps (`HeaderValue::from_str`: visible ASCII,
/// space and tab).
fn field_value(v: &str) -> bool {
    v.bytes().all(|c| c == b'\t' || (b' '..=b'~').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::{field_name, field_value};

    #[test]
    fn fields_the_request_path_would_drop_are_seen() {
        assert!(field_name("etag") && field_name("x-a_b.c"));
        assert!(!field_name("") && !field_name("Etag") && !field_name("a b"));
        assert!(!field_name("a:b") && !field_name("é"));
        assert!(field_value("\"abc\"") && field_value("a\tb c") && field_value(""));
        assert!(!field_value("a\r\nb") && !field_value("a\u{7f}") && !field_value("é"));
    }
}
