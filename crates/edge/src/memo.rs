//! What the edge keeps in a cached object's memo ([`cache::Memo`]): the parts of its
//! answers that are the same for every answer from the object, each made at its
//! first use. `response::object_response` takes the stored fields as a header map
//! from here instead of parsing them per answer; the quick path (`quick.rs`) takes
//! its whole HTTP/1.1 head but `age` and `date`, or the same fields as a header map
//! for HTTP/2.
//!
//! Not here: making either part (their users do), anything that changes per answer
//! (`age`, `date`, ranges, conditionals).

use std::sync::OnceLock;

use cache::CachedObject;
use hyper::header::HeaderMap;

/// The edge's memo of one cached object.
#[derive(Default)]
pub struct ObjectMemo {
    /// The stored fields but `content-length`, as `response::object_response` puts
    /// them in an answer (unusable ones left out).
    pub(crate) fields: OnceLock<HeaderMap>,
    /// The quick path's head.
    pub(crate) quick: OnceLock<QuickHead>,
}

/// The head of every quick answer from an object (see `quick.rs`).
pub(crate) struct QuickHead {
    /// The status line and header fields, but `age` and `date`; `None` when a stored
    /// field is one the request path would drop as unusable (the object's answers
    /// then go the long way).
    pub(crate) head: Option<Box<[u8]>>,
    /// The same fields for HTTP/2 answers; `None` where `head` is.
    pub(crate) fields: Option<HeaderMap>,
    /// The stored fields include a `date` (then no other is added).
    pub(crate) dated: bool,
}

/// The edge's memo of `obj` (`None` only if something else made a memo of another
/// type there, which nothing does).
pub(crate) fn of(obj: &CachedObject) -> Option<&ObjectMemo> {
    obj.memo.get_or_make(ObjectMemo::default)
}
