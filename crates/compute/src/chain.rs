//! The filters of one request, in order: request headers through each filter (first
//! to last), then the response through each (last to first), then log/done/delete.
//! Drives call-outs (`proxy_http_call`) between callbacks and applies each filter's
//! header changes, local responses and body rewrites. A filter that fails is thrown
//! out of the request: the request gets 500 (naming the filter), or, with
//! `fail_open`, goes on as if that filter were absent.
//!
//! Bodies and trailers reach a filter only when its spec asks for bodies (`body`),
//! because that means buffering the whole message: the request body (with
//! `proxy_on_request_trailers` after it when the client sent trailers) once the
//! request headers have passed every filter, and the response body (then
//! `proxy_on_response_trailers` when the answer carries trailers) before it leaves.
//! Without `body`, `end_of_stream` is true on the headers callbacks.
//!
//! Not here: instance pooling (see `plugin`), the host functions (see `hostcalls`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::abi::Action;
use crate::callout::CalloutClient;
use crate::plugin::{Lease, Plugin};
use crate::state::{CallResponse, Headers, LocalResponse, RequestFacts};
use crate::vm::FilterFault;

/// What a request looks like to the filters.
#[derive(Debug, Clone)]
pub struct RequestInput {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authority: String,
    pub scheme: String,
    pub client: SocketAddr,
    /// Headers without pseudo-headers, names lowercase.
    pub headers: Headers,
    /// A body follows the headers (see `RequestRun::request_body`).
    pub has_body: bool,
}

/// A whole body and the trailers that came after it (empty when none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buffered {
    pub body: Vec<u8>,
    pub trailers: Headers,
}

/// What the filters decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    Respond(LocalResponse),
}

struct Stage {
    plugin: Arc<Plugin>,
    lease: Option<Lease>,
    context: u32,
}

/// The filters running for one request.
pub struct RequestRun {
    stages: Vec<Stage>,
    callouts: Arc<dyn CalloutClient>,
    /// Time spent inside the filters (wasm and host calls, not call-outs).
    pub spent: Duration,
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

fn failed(plugin: &Plugin, why: &str) -> Verdict {
    Verdict::Respond(LocalResponse {
        status: 500,
        headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
        body: format!("filter {} failed: {why}\n", plugin.spec.name).into_bytes(),
    })
}

impl RequestRun {
    pub(crate) fn new(plugins: Vec<Arc<Plugin>>, callouts: Arc<dyn CalloutClient>) -> Self {
        Self {
            stages: plugins
                .into_iter()
                .map(|plugin| Stage {
                    plugin,
                    lease: None,
                    context: 0,
                })
                .collect(),
            callouts,
            spent: Duration::ZERO,
        }
    }

    /// Whether some filter wants bodies (and trailers), request and response.
    pub fn wants_body(&self) -> bool {
        self.stages
            .iter()
            .any(|s| s.lease.is_some() && s.plugin.spec.body)
    }

    /// Runs request headers through the filters. `headers` (with pseudo-headers
    /// `:method`, `:path`, `:authority`, `:scheme` first) comes back as changed.
    pub async fn request_headers(
        &mut self,
        input: &RequestInput,
        headers: &mut Headers,
    ) -> Verdict {
        let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed).to_string();
        let facts = RequestFacts {
            method: input.method.clone(),
            path: input.path.clone(),
            authority: input.authority.clone(),
            scheme: input.scheme.clone(),
            client: input.client,
            id,
        };
        for i in 0..self.stages.len() {
            let plugin = self.stages[i].plugin.clone();
            let mut lease = match plugin.acquire().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(filter = %plugin.spec.name, error = %e, "filter unavailable");
                    if plugin.spec.fail_open {
                        continue;
                    }
                    return failed(&plugin, &e.to_string());
                }
            };
            let started = Instant::now();
            let result = (|| -> Result<(u32, Action), FilterFault> {
                let Some(vm) = lease.vm() else {
                    return Err(FilterFault::Trap("no instance".into()));
                };
                let ctx = vm.create_http_context()?;
                let s = vm.state_mut();
                s.http.facts = Some(facts.clone());
                s.http.request_headers = std::mem::take(headers);
                let n = s.http.request_headers.len();
                let eos = !(input.has_body && plugin.spec.body);
                let action = vm.on_request_headers(ctx, n, eos)?;
                Ok((ctx, action))
            })();
            self.spent += started.elapsed();
            let ctx = match result {
                Ok((ctx, _action)) => ctx,
                Err(fault) => {
                    // The headers went into the instance; rebuild them from the input.
                    *headers = pseudo_and(input);
                    lease.poison(&fault);
                    if plugin.spec.fail_open {
                        continue;
                    }
                    return failed(&plugin, &fault.to_string());
                }
            };
            self.stages[i].context = ctx;
            self.stages[i].lease = Some(lease);
            if let Some(v) = self.drive(i).await {
                if let Verdict::Respond(_) = v {
                    return v;
                }
                // fail-open after a fault during call-outs: headers restart from input.
                *headers = pseudo_and(input);
                continue;
            }
            if let Some(vm) = self.stages[i].lease.as_mut().and_then(Lease::vm) {
                *headers = std::mem::take(&mut vm.state_mut().http.request_headers);
                // Later phases still read the request headers.
                vm.state_mut().http.request_headers = headers.clone();
            }
        }
        Verdict::Continue
    }

    /// Runs a buffered request body and its trailers through the filters that take
    /// bodies, first to last. Call it after `request_headers` answered `Continue`,
    /// for a request whose input had `has_body`; `msg` comes back as changed.
    pub async fn request_body(&mut self, msg: &mut Buffered) -> Verdict {
        for i in 0..self.stages.len() {
            let plugin = self.stages[i].plugin.clone();
            let ctx = self.stages[i].context;
            let Some(lease) = self.stages[i].lease.as_mut() else {
                continue;
            };
            if !plugin.spec.body {
                continue;
            }
            let started = Instant::now();
            let result = (|| -> Result<(), FilterFault> {
                let Some(vm) = lease.vm() else {
                    return Ok(());
                };
                vm.state_mut().http.request_body = std::mem::take(&mut msg.body);
                let len = vm.state().http.request_body.len();
                let r = vm.on_request_body(ctx, len, msg.trailers.is_empty());
                msg.body = std::mem::take(&mut vm.state_mut().http.request_body);
                r?;
                if !msg.trailers.is_empty() && vm.state().http.local_response.is_none() {
                    vm.state_mut().http.request_trailers = std::mem::take(&mut msg.trailers);
                    let n = vm.state().http.request_trailers.len();
                    let r = vm.on_request_trailers(ctx, n);
                    msg.trailers = std::mem::take(&mut vm.state_mut().http.request_trailers);
                    r?;
                }
                Ok(())
            })();
            self.spent += started.elapsed();
            if let Err(fault) = result {
                lease.poison(&fault);
                self.stages[i].lease = None;
                if plugin.spec.fail_open {
                    continue;
                }
                return failed(&plugin, &fault.to_string());
            }
            if let Some(Verdict::Respond(l)) = self.drive(i).await {
                return Verdict::Respond(l);
            }
        }
        Verdict::Continue
    }

    /// After a callback of stage `i`: local response? pending call-outs? Runs
    /// call-outs and their callbacks until neither is left. `None` = carry on;
    /// `Some(Continue)` = the stage failed open and was dropped.
    async fn drive(&mut self, i: usize) -> Option<Verdict> {
        loop {
            let stage = &mut self.stages[i];
            let lease = stage.lease.as_mut()?;
            let vm = lease.vm()?;
            if let Some(local) = vm.state_mut().http.local_response.take() {
                return Some(Verdict::Respond(local));
            }
            let calls = std::mem::take(&mut vm.state_mut().http.pending_calls);
            if calls.is_empty() {
                return None;
            }
            let upstreams = stage.plugin.info.upstreams.clone();
            for call in calls {
                let response =
                    crate::callout::call(self.callouts.as_ref(), &upstreams, &call).await;
                let stage = &mut self.stages[i];
                let ctx = stage.context;
                let plugin = stage.plugin.clone();
                let lease = stage.lease.as_mut()?;
                let started = Instant::now();
                let result = match lease.vm() {
                    Some(vm) => {
                        let (nh, nb) = response
                            .as_ref()
                            .map_or((0, 0), |r: &CallResponse| (r.headers.len(), r.body.len()));
                        vm.state_mut().http.call_response = Some(response.unwrap_or_default());
                        let r = vm.on_http_call_response(ctx, call.token, nh, nb);
                        vm.state_mut().http.call_response = None;
                        r
                    }
                    None => Ok(()),
                };
                self.spent += started.elapsed();
                if let Err(fault) = result {
                    lease.poison(&fault);
                    self.stages[i].lease = None;
                    if plugin.spec.fail_open {
                        return Some(Verdict::Continue);
                    }
                    return Some(failed(&plugin, &fault.to_string()));
                }
            }
        }
    }

    /// Runs the response through the filters, last to first. `body` is given when
    /// the caller buffered it (see `wants_body`), with the trailers that followed it.
    pub async fn response(
        &mut self,
        status: &mut u16,
        headers: &mut Headers,
        mut body: Option<&mut Buffered>,
    ) -> Verdict {
        for i in (0..self.stages.len()).rev() {
            let plugin = self.stages[i].plugin.clone();
            let ctx = self.stages[i].context;
            let Some(lease) = self.stages[i].lease.as_mut() else {
                continue;
            };
            let started = Instant::now();
            let result = (|| -> Result<(), FilterFault> {
                let Some(vm) = lease.vm() else {
                    return Ok(());
                };
                let s = vm.state_mut();
                s.http.response_status = *status;
                s.http.response_headers = std::mem::take(headers);
                s.http
                    .response_headers
                    .insert(0, (":status".to_string(), status.to_string()));
                let n = s.http.response_headers.len();
                let with_body = plugin.spec.body && body.is_some();
                vm.on_response_headers(ctx, n, !with_body)?;
                if let (true, Some(b)) = (with_body, body.as_deref_mut()) {
                    if vm.state().http.local_response.is_none() {
                        vm.state_mut().http.response_body = std::mem::take(&mut b.body);
                        let len = vm.state().http.response_body.len();
                        vm.on_response_body(ctx, len, b.trailers.is_empty())?;
                        b.body = std::mem::take(&mut vm.state_mut().http.response_body);
                    }
                    if !b.trailers.is_empty() && vm.state().http.local_response.is_none() {
                        vm.state_mut().http.response_trailers = std::mem::take(&mut b.trailers);
                        let n = vm.state().http.response_trailers.len();
                        vm.on_response_trailers(ctx, n)?;
                        b.trailers = std::mem::take(&mut vm.state_mut().http.response_trailers);
                    }
                }
                Ok(())
            })();
            self.spent += started.elapsed();
            // Headers back out of the instance (even after a fault, best effort).
            if let Some(vm) = lease.vm() {
                let mut h = std::mem::take(&mut vm.state_mut().http.response_headers);
                if let Some(pos) = h.iter().position(|(n, _)| n == ":status") {
                    let (_, v) = h.remove(pos);
                    if let Ok(code) = v.parse::<u16>() {
                        if (100..=599).contains(&code) {
                            *status = code;
                        }
                    }
                }
                *headers = h;
            }
            if let Err(fault) = result {
                lease.poison(&fault);
                self.stages[i].lease = None;
                if plugin.spec.fail_open {
                    continue;
                }
                return failed(&plugin, &fault.to_string());
            }
            if let Some(v) = self.drive(i).await {
                if let Verdict::Respond(_) = v {
                    return v;
                }
            }
        }
        Verdict::Continue
    }

    /// Log, done, delete on every filter still in the request; instances go back to
    /// their pools.
    pub fn finish(mut self) {
        let started = Instant::now();
        for stage in &mut self.stages {
            let Some(mut lease) = stage.lease.take() else {
                continue;
            };
            let r = match lease.vm() {
                Some(vm) => vm.close_context(stage.context),
                None => Ok(()),
            };
            if let Err(fault) = r {
                lease.poison(&fault);
            }
        }
        self.spent += started.elapsed();
        ::metrics::histogram!("mediamesh_compute_filter_request_seconds")
            .record(self.spent.as_secs_f64());
    }
}

/// The request's pseudo-headers followed by its headers.
pub fn pseudo_and(input: &RequestInput) -> Headers {
    let mut h = Vec::with_capacity(input.headers.len() + 4);
    h.push((":method".to_string(), input.method.clone()));
    h.push((":path".to_string(), input.path.clone()));
    h.push((":authority".to_string(), input.authority.clone()));
    h.push((":scheme".to_string(), input.scheme.clone()));
    h.extend(input.headers.iter().cloned());
    h
}
