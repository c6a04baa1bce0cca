//! Filter call-outs (`proxy_http_call`) sent by the edge, as the [`CalloutClient`] it
//! hands crate `compute`: a call to a filter upstream that is also a configured origin
//! fails over along the live origins (that origin first), one to a parent goes to
//! that parent, and any other base gets its own breaker; every call holds a slot of
//! its host's connection cap (shared with the origins and parents on the same
//! host:port) and counts on and obeys the breakers like a cache fill does.
//!
//! Not here: which upstreams a filter may name, the filter's timeout and the answer
//! size cap's meaning (crate `compute`, `callout`).

use std::sync::Arc;
use tokio::time::Instant;

use bytes::Bytes;
use compute::{CalloutClient, CalloutError, CalloutFuture, CalloutRequest, CalloutResponse};
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use super::health::Admission;
use super::{acquire, client, host_port, Breaker, Kind, Slot, SlotState, Target, Upstreams};

/// The edge's call-out client: the upstream set plus a breaker per call-out base
/// that is neither an origin nor a parent.
pub struct Callouts {
    upstreams: Arc<Upstreams>,
    own: Vec<Slot>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Callouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callouts")
            .field(
                "own",
                &self.own.iter().map(|s| &s.target.base).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Callouts {
    /// The client for filters whose upstreams are `bases` (as configured; one that
    /// does not normalize fails at call time, as a bad URL always did).
    pub fn new<'a>(upstreams: Arc<Upstreams>, bases: impl IntoIterator<Item = &'a str>) -> Self {
        let config = upstreams.config();
        let cap = config.max_connections_per_upstream.max(1);
        let mut own: Vec<Slot> = Vec::new();
        for raw in bases {
            let Ok(base) = client::normalize_base(raw) else {
                continue;
            };
            if config.origins.contains(&base)
                || config.parents.contains(&base)
                || own.iter().any(|s| s.target.base == base)
            {
                continue;
            }
            let conns = host_port(&base)
                .and_then(|hp| upstreams.conns.iter().find(|(k, _)| *k == hp))
                .map_or_else(|| Arc::new(Semaphore::new(cap)), |(_, s)| s.clone());
            own.push(Slot {
                target: Target {
                    base,
                    kind: Kind::Callout,
                    index: own.len(),
                },
                state: Mutex::new(SlotState {
                    breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
                    healthy: None,
                    last_error: None,
                }),
                conns,
            });
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build(connector);
        Self {
            upstreams,
            own,
            client,
        }
    }

    /// The slots to try for `base`, in order.
    fn plan(&self, base: &str) -> Vec<&Slot> {
        let u = &self.upstreams;
        if let Some(i) = u.origins.iter().position(|s| s.target.base == base) {
            let now = Instant::now();
            let mut out = vec![&u.origins[i]];
            out.extend(
                u.origins
                    .iter()
                    .enumerate()
                    .filter(|(j, s)| *j != i && s.state.lock().breaker.is_available(now))
                    .map(|(_, s)| s),
            );
            return out;
        }
        u.parents
            .iter()
            .chain(&self.own)
            .filter(|s| s.target.base == base)
            .take(1)
            .collect()
    }

    async fn call_one(
        &self,
        slot: &Slot,
        r: &CalloutRequest<'_>,
    ) -> Result<CalloutResponse, CalloutError> {
        // A request that cannot be made is no failure of the upstream: checked first.
        let request = build(&slot.target.base, r)?;
        let admission = slot.state.lock().breaker.try_acquire(Instant::now());
        if admission == Admission::Rejected {
            return Err(CalloutError::Failed(format!(
                "{}: breaker open",
                slot.target.base
            )));
        }
        let mut guard = super::TrialGuard {
            slot,
            armed: admission == Admission::Trial,
        };
        let timeout = self.upstreams.config.first_byte_timeout;
        let _permit = acquire(slot.conns.clone(), timeout, &slot.target.base)
            .await
            .map_err(|f| CalloutError::Failed(f.message))?;
        let sent = tokio::time::timeout(timeout, self.client.request(request)).await;
        guard.armed = false;
        let failed = |message: String| {
            self.upstreams.record(slot, false, Some(&message));
            CalloutError::Failed(message)
        };
        let response = match sent {
            Err(_) => {
                return Err(failed(format!(
                    "{}: no answer within {timeout:?}",
                    slot.target.base
                )))
            }
            Ok(Err(e)) => return Err(failed(format!("{}: {e}", slot.target.base))),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        if status >= 500 {
            // A failure for the breaker, but still an answer: the caller hands the
            // last one to the filter when no other target answers better.
            self.upstreams.record(
                slot,
                false,
                Some(&format!("{} answered {status}", slot.target.base)),
            );
        } else {
            self.upstreams.record(slot, true, None);
        }
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, compute::callout::MAX_CALL_BODY)
            .collect()
            .await
            .map_err(|_| CalloutError::TooLarge)?
            .to_bytes();
        Ok(CalloutResponse {
            status,
            headers: parts
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
            body: body.to_vec(),
        })
    }
}

/// The hyper request of a call-out to `base`.
fn build(base: &str, r: &CalloutRequest<'_>) -> Result<Request<Full<Bytes>>, CalloutError> {
    let bad = |why: String| CalloutError::BadRequest(why);
    let method =
        Method::from_bytes(r.method.as_bytes()).map_err(|e| bad(format!("method: {e}")))?;
    let uri: Uri = format!("{}{}", base.trim_end_matches('/'), r.path)
        .parse()
        .map_err(|e| bad(format!("uri: {e}")))?;
    let mut request = Request::new(Full::new(Bytes::copy_from_slice(r.body)));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    for (n, v) in r.headers {
        let name =
            HeaderName::try_from(n.as_str()).map_err(|e| bad(format!("header {n:?}: {e}")))?;
        let value =
            HeaderValue::try_from(v.as_str()).map_err(|e| bad(format!("header {n:?}: {e}")))?;
        request.headers_mut().append(name, value);
    }
    Ok(request)
}

impl CalloutClient for Callouts {
    fn call<'a>(&'a self, r: CalloutRequest<'a>) -> CalloutFuture<'a> {
        Box::pin(async move {
            let base = client::normalize_base(r.base)
                .map_err(|e| CalloutError::BadRequest(e.to_string()))?;
            let mut last = Err(CalloutError::Failed(format!("{base}: no upstream to call")));
            for slot in self.plan(&base) {
                match self.call_one(slot, &r).await {
                    Ok(answer) if answer.status >= 500 => last = Ok(answer),
                    Ok(answer) => return Ok(answer),
                    Err(e @ (CalloutError::BadRequest(_) | CalloutError::TooLarge)) => {
                        return Err(e)
                    }
                    Err(e) => {
                        if last.is_err() {
                            last = Err(e);
                        }
                    }
                }
            }
            last
        })
    }
}
