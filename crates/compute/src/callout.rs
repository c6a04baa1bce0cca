//! The HTTP call-outs filters ask for with `proxy_http_call`, as seen from the host:
//! a call goes only to an upstream named in the filter's configuration (a filter
//! cannot reach arbitrary hosts), under the filter's timeout, and its answer body is
//! capped ([`MAX_CALL_BODY`]). The transport is not here: the embedder hands
//! [`crate::Filters::load`] a [`CalloutClient`] (the edge's goes through its upstream
//! set, so call-outs share its breakers and connection caps), so this crate has no
//! HTTP client of its own.
//!
//! Not here: the host-call side that records the request (see `hostcalls`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use crate::state::{CallResponse, Headers, PendingCall};

/// Largest call-out answer body handed to a filter; a client reads no more than this.
pub const MAX_CALL_BODY: usize = 1 << 20;

/// One call-out, resolved to the base URL of the filter's named upstream.
#[derive(Debug, Clone, Copy)]
pub struct CalloutRequest<'a> {
    /// The upstream's name in the filter's configuration (for logs).
    pub upstream: &'a str,
    /// The upstream's base URL as configured, e.g. `http://127.0.0.1:9000`.
    pub base: &'a str,
    /// `:method`, `GET` when the filter gave none.
    pub method: &'a str,
    /// `:path` (path and query).
    pub path: &'a str,
    /// The other headers the filter set (no pseudo-headers).
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The answer to a call-out: status, headers (names lowercase) and at most
/// [`MAX_CALL_BODY`] bytes of body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CalloutResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Why a call-out got no answer (the filter then sees no headers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalloutError {
    /// The request cannot be made (bad method, path or header).
    #[error("bad call-out request: {0}")]
    BadRequest(String),
    /// The upstream could not be reached, answered badly, or its breaker is open.
    #[error("call-out failed: {0}")]
    Failed(String),
    /// The answer body is larger than [`MAX_CALL_BODY`].
    #[error("call-out answer larger than {MAX_CALL_BODY} bytes")]
    TooLarge,
}

/// The future a [`CalloutClient`] returns.
pub type CalloutFuture<'a> =
    Pin<Box<dyn Future<Output = Result<CalloutResponse, CalloutError>> + Send + 'a>>;

/// Sends call-outs for the filters; implemented by the embedder (the edge).
pub trait CalloutClient: Send + Sync + 'static {
    /// Makes one call. The host applies the filter's timeout around it (dropping the
    /// future must be safe).
    fn call<'a>(&'a self, request: CalloutRequest<'a>) -> CalloutFuture<'a>;
}

/// A client for hosts without call-outs: every call fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallouts;

impl CalloutClient for NoCallouts {
    fn call<'a>(&'a self, request: CalloutRequest<'a>) -> CalloutFuture<'a> {
        let upstream = request.upstream.to_string();
        Box::pin(async move {
            Err(CalloutError::Failed(format!(
                "{upstream}: this host makes no call-outs"
            )))
        })
    }
}

/// Makes one call for a filter whose upstreams are `upstreams` (name → base URL);
/// `None` when it failed or timed out (the filter then sees no headers).
pub(crate) async fn call(
    client: &dyn CalloutClient,
    upstreams: &HashMap<String, String>,
    call: &PendingCall,
) -> Option<CallResponse> {
    let base = upstreams.get(&call.upstream)?;
    let get = |n: &str| crate::state::header(&call.headers, n);
    let path = get(":path")?;
    let method = get(":method").unwrap_or("GET");
    let headers: Vec<(String, String)> = call
        .headers
        .iter()
        .filter(|(n, _)| !n.starts_with(':'))
        .cloned()
        .collect();
    let request = CalloutRequest {
        upstream: &call.upstream,
        base,
        method,
        path,
        headers: &headers,
        body: &call.body,
    };
    let out = match tokio::time::timeout(call.timeout, client.call(request)).await {
        Ok(Ok(r)) if r.body.len() <= MAX_CALL_BODY => {
            let mut headers = vec![(":status".to_string(), r.status.to_string())];
            headers.extend(r.headers);
            Ok(CallResponse {
                headers,
                body: r.body,
            })
        }
        Ok(Ok(_)) => Err(CalloutError::TooLarge.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", call.timeout)),
    };
    ::metrics::counter!("mediamesh_compute_filter_callouts_total", "result" => if out.is_ok() { "ok" } else { "failed" })
        .increment(1);
    match out {
        Ok(r) => Some(r),
        Err(error) => {
            tracing::warn!(upstream = %call.upstream, base = %base, path, error, "call-out failed or timed out");
            None
        }
    }
}
