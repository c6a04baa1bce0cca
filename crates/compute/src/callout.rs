//! Makes the HTTP call-outs filters ask for with `proxy_http_call`: only to upstreams
//! named in the filter's configuration (a filter cannot reach arbitrary hosts), with
//! the filter's timeout and a cap on the answer's size.
//!
//! Not here: the host-call side that records the request (see `hostcalls`).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::state::{CallResponse, PendingCall};

/// Largest call-out answer body handed to a filter.
pub const MAX_CALL_BODY: usize = 1 << 20;

/// HTTP client of the call-outs.
#[derive(Clone)]
pub struct Caller {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Caller {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        }
    }
}

impl Caller {
    /// Makes one call; `None` when it failed (the filter then sees no headers).
    pub async fn call(
        &self,
        upstreams: &HashMap<String, String>,
        call: &PendingCall,
    ) -> Option<CallResponse> {
        let base = upstreams.get(&call.upstream)?;
        let get = |n: &str| crate::state::header(&call.headers, n);
        let path = get(":path")?;
        let method = get(":method").unwrap_or("GET");
        let url = format!("{}{}", base.trim_end_matches('/'), path);
        let mut req = http::Request::builder().method(method).uri(&url);
        for (n, v) in &call.headers {
            if !n.starts_with(':') {
                req = req.header(n.as_str(), v.as_str());
            }
        }
        let req = match req.body(Full::new(Bytes::from(call.body.clone()))) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(upstream = %call.upstream, error = %e, "bad call-out request");
                return None;
            }
        };
        let fut =
            async {
                let res = self.client.request(req).await.ok()?;
                let (parts, body) = res.into_parts();
                let body = Limited::new(body, MAX_CALL_BODY)
                    .collect()
                    .await
                    .ok()?
                    .to_bytes();
                let mut headers = vec![(":status".to_string(), parts.status.as_u16().to_string())];
                headers.extend(parts.headers.iter().filter_map(|(n, v)| {
                    Some((n.as_str().to_string(), v.to_str().ok()?.to_string()))
                }));
                Some(CallResponse {
                    headers,
                    body: body.to_vec(),
                })
            };
        let out = tokio::time::timeout(call.timeout, fut).await.ok().flatten();
        ::metrics::counter!("compute_filter_callouts_total", "result" => if out.is_some() { "ok" } else { "failed" })
            .increment(1);
        if out.is_none() {
            tracing::warn!(upstream = %call.upstream, url, "call-out failed or timed out");
        }
        out
    }
}
