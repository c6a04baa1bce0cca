//! Choosing and calling upstreams for cache misses.
//!
//! Two tiers: an optional shield tier of parent edges, one of which owns each object
//! (rendezvous hashing over the live parents, so a dead parent's objects, and only
//! those, move to their runner-up parent), and the origins, tried in configured order.
//! Every target has a circuit breaker fed by real requests, by [`Upstreams::report`]
//! and by an active health checker; [`Upstreams::plan`] skips targets whose breaker is
//! open unless every target is open, in which case all are returned so requests keep
//! probing.
//!
//! [`Upstreams::fetch`] walks the plan until a target answers below 500 (a 4xx is an
//! answer; a 5xx, a connect error or no response head within the first-byte timeout is
//! a failure and moves on), and hands back the response with its body still streaming.
//! An origin that does not hold a live stream may answer with a stream-directory
//! redirect (`302` marked `Mediamesh-Redirect: directory`, see the origin's
//! `http/elsewhere.rs`) to the origin that does: `fetch` follows it itself (at most
//! [`MAX_DIRECTORY_HOPS`], sending `Mediamesh-Hops`), so the viewer stays on the edge
//! and the object is cached under the path it asked for. Only redirects to a
//! configured origin or parent, or to a base listed in `redirect_allow` (same scheme,
//! host and port), are followed: any other target is a failure (502 when nothing else
//! answers) with a warning in the log, so an upstream cannot make the edge fetch, and
//! cache under a viewer's path, from anywhere.
//!
//! Connections per upstream host:port are capped (`max_connections_per_upstream`): a
//! request holds a permit from sending until its body is read (the permit lives in
//! [`Fetched`]), waits for one at most the first-byte timeout, and idle connections
//! are reused from hyper's pool.
//!
//! Not here: caching, request coalescing, LL-HLS holds or deciding what to answer the
//! viewer when everything failed (the caller answers 502/504 or serves stale). An
//! overall deadline across all attempts is also the caller's: wrap `fetch` in
//! `tokio::time::timeout` (dropping it mid-attempt is safe). `https://` upstreams are
//! refused until a rustls connector is added.

mod callout;
mod client;
mod health;
mod rendezvous;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Limited};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use callout::Callouts;
pub use client::VIA;
pub use health::{Admission, Breaker, BreakerState};
pub use rendezvous::{
    owner as rendezvous_owner, rank as rendezvous_rank, score as rendezvous_score,
};

/// How upstreams are reached. [`Default`] gives the documented defaults with no
/// origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Origin base URLs like `http://127.0.0.1:8080`, in failover order. At least one.
    pub origins: Vec<String>,
    /// Shield parent edges; empty = go straight to the origins.
    pub parents: Vec<String>,
    /// TCP connect timeout per attempt (2 s).
    pub connect_timeout: Duration,
    /// Longest wait for a response head per attempt, connect included (15 s: an LL-HLS
    /// blocking playlist request may legitimately be held ~3 target durations).
    pub first_byte_timeout: Duration,
    /// Path GETed by the active health checker (`/healthz`).
    pub health_path: String,
    /// Time between health-check rounds (1 s).
    pub health_interval: Duration,
    /// Consecutive failures that open a target's breaker (3).
    pub breaker_failures: u32,
    /// How long an open breaker skips its target before one trial (5 s).
    pub breaker_cooldown: Duration,
    /// Connections open at once to one upstream host:port (256); more requests wait.
    pub max_connections_per_upstream: usize,
    /// Base URLs besides the origins and parents that stream-directory redirects may
    /// lead to (e.g. the fleet's other origins); empty by default.
    pub redirect_allow: Vec<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            origins: Vec::new(),
            parents: Vec::new(),
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(15),
            health_path: "/healthz".to_string(),
            health_interval: Duration::from_secs(1),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(5),
            max_connections_per_upstream: 256,
            redirect_allow: Vec::new(),
        }
    }
}

/// Which tier a target belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A shield edge.
    Parent,
    /// An origin.
    Origin,
    /// A filter call-out base that is neither (see `callout`).
    Callout,
}

impl Kind {
    /// `"parent"` or `"origin"`, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Parent => "parent",
            Kind::Origin => "origin",
            Kind::Callout => "callout",
        }
    }
}

/// One upstream: its normalized base URL, tier, and index in its configured list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Normalized base URL (`http://host:port[/prefix]`).
    pub base: String,
    /// Tier.
    pub kind: Kind,
    /// Index in `UpstreamConfig::parents` or `::origins`.
    pub index: usize,
}

/// A target's health as of now, for `/metrics` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    /// Normalized base URL.
    pub base: String,
    /// Tier.
    pub kind: Kind,
    /// Result of the last active health check; `None` before the first one.
    pub healthy: Option<bool>,
    /// Breaker state now.
    pub breaker: BreakerState,
    /// Consecutive failures (requests, reports and checks) since the last success.
    pub consecutive_failures: u32,
    /// The last failure's description, if any since start.
    pub last_error: Option<String>,
}

/// A response from an upstream, its body not yet read.
#[derive(Debug)]
pub struct Fetched {
    /// Status and headers; the body streams from the upstream connection.
    pub response: hyper::Response<hyper::body::Incoming>,
    /// Who answered.
    pub target: Target,
    /// From sending the request to having the response head.
    pub elapsed_first_byte: Duration,
    /// The connection slot this response holds until it is dropped.
    _permit: OwnedSemaphorePermit,
}

/// Why an upstream configuration is refused (at start, never per request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A configured base URL is not usable.
    #[error("invalid upstream URL {0}")]
    InvalidUrl(String),
    /// The configuration is unusable otherwise (no origins, duplicates, zero timeouts).
    #[error("invalid upstream config: {0}")]
    InvalidConfig(String),
}

/// Why a fetch got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Every target tried failed (5xx, connect error, or a mix with timeouts): answer
    /// 502 or serve stale.
    #[error("all {tried} upstreams failed; last: {last}")]
    AllFailed {
        /// How many targets were tried.
        tried: usize,
        /// The last failure.
        last: String,
    },
    /// Every target tried gave no response head within the first-byte timeout: answer
    /// 504 or serve stale.
    #[error("upstreams timed out")]
    Timeout,
    /// The request cannot be sent upstream (method, path).
    #[error("invalid upstream request: {0}")]
    InvalidRequest(String),
}

impl FetchError {
    /// The status a viewer gets when nothing stale can stand in.
    pub fn status(&self) -> http::StatusCode {
        match self {
            FetchError::AllFailed { .. } => http::StatusCode::BAD_GATEWAY,
            FetchError::Timeout => http::StatusCode::GATEWAY_TIMEOUT,
            // The edge could not form the upstream request: still the gateway's side.
            FetchError::InvalidRequest(_) => http::StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether the same request may succeed later (the upstreams may recover).
    pub fn retryable(&self) -> bool {
        !matches!(self, FetchError::InvalidRequest(_))
    }
}

struct SlotState {
    breaker: Breaker,
    healthy: Option<bool>,
    last_error: Option<String>,
}

struct Slot {
    target: Target,
    state: Mutex<SlotState>,
    conns: Arc<Semaphore>,
}

/// (host, port) of a normalized `http://` base URL.
fn host_port(base: &str) -> Option<(String, u16)> {
    let uri: http::Uri = base.parse().ok()?;
    let host = uri.host()?.to_ascii_lowercase();
    Some((host, uri.port_u16().unwrap_or(80)))
}

/// The upstream set of one edge: targets, their breakers, and the HTTP client pool.
/// Share it as `Arc<Upstreams>`.
pub struct Upstreams {
    config: UpstreamConfig,
    parents: Vec<Slot>,
    parent_ids: Vec<String>,
    origins: Vec<Slot>,
    client: client::HttpClient,
    /// Connection caps per upstream (host, port): every target and redirect target.
    conns: Vec<((String, u16), Arc<Semaphore>)>,
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("parents", &self.parent_ids)
            .field(
                "origins",
                &self
                    .origins
                    .iter()
                    .map(|s| &s.target.base)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The plan with whether it is the all-open fallback (then breakers are not asked).
struct Plan {
    targets: Vec<Target>,
    probing: bool,
}

impl Upstreams {
    /// Validates `config` (http URLs only, at least one origin, no duplicates, non-zero
    /// timeouts, health path starting with `/`) and builds the client pool. Needs no
    /// runtime; [`fetch`](Self::fetch) and the health checker need tokio.
    pub fn new(config: UpstreamConfig) -> Result<Arc<Self>, ConfigError> {
        if config.origins.is_empty() {
            return Err(ConfigError::InvalidConfig("no origins".into()));
        }
        if config.connect_timeout.is_zero() || config.first_byte_timeout.is_zero() {
            return Err(ConfigError::InvalidConfig(
                "connect and first-byte timeouts must be > 0".into(),
            ));
        }
        if !config.health_path.starts_with('/')
            || http::uri::PathAndQuery::try_from(config.health_path.as_str()).is_err()
        {
            return Err(ConfigError::InvalidConfig(format!(
                "health path {:?} must be an absolute path",
                config.health_path
            )));
        }
        let mut config = config;
        config.parents = normalize_all(&config.parents, "parent")?;
        config.origins = normalize_all(&config.origins, "origin")?;
        config.redirect_allow = normalize_all(&config.redirect_allow, "redirect target")?;
        let cap = config.max_connections_per_upstream.max(1);
        let mut conns: Vec<((String, u16), Arc<Semaphore>)> = Vec::new();
        for base in config
            .parents
            .iter()
            .chain(&config.origins)
            .chain(&config.redirect_allow)
        {
            let hp = host_port(base)
                .ok_or_else(|| ConfigError::InvalidUrl(format!("{base:?}: no host")))?;
            if !conns.iter().any(|(k, _)| *k == hp) {
                conns.push((hp, Arc::new(Semaphore::new(cap))));
            }
        }
        let conns_of = |base: &str| {
            host_port(base)
                .and_then(|hp| conns.iter().find(|(k, _)| *k == hp))
                .map_or_else(|| Arc::new(Semaphore::new(cap)), |(_, s)| s.clone())
        };

        let slots = |bases: &[String], kind: Kind| -> Vec<Slot> {
            bases
                .iter()
                .enumerate()
                .map(|(index, base)| Slot {
                    target: Target {
                        base: base.clone(),
                        kind,
                        index,
                    },
                    state: Mutex::new(SlotState {
                        breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
                        healthy: None,
                        last_error: None,
                    }),
                    conns: conns_of(base),
                })
                .collect()
        };
        let parents = slots(&config.parents, Kind::Parent);
        let origins = slots(&config.origins, Kind::Origin);
        Ok(Arc::new(Upstreams {
            parent_ids: config.parents.clone(),
            parents,
            origins,
            client: client::build_client(config.connect_timeout, cap),
            conns,
            config,
        }))
    }

    /// The configuration in effect (base URLs normalized).
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Spawns the active health checker on the current tokio runtime (panics outside
    /// one, like `tokio::spawn`). Abort the returned handle on shutdown; the task also
    /// ends by itself once every `Arc<Upstreams>` is gone.
    pub fn spawn_health_checks(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(health::run(
            Arc::downgrade(self),
            self.config.health_interval,
        ))
    }

    /// The targets to try for `key`, in order: the live parents ranked by rendezvous
    /// score for `key` (the owner first; the next only if it fails), then the live
    /// origins in configured order. "Live" = breaker not open (or half-open with its
    /// trial free). If nothing is live, every target is returned in the same order.
    pub fn plan(&self, key: &str) -> Vec<Target> {
        self.plan_at(key, Instant::now()).targets
    }

    fn plan_at(&self, key: &str, now: Instant) -> Plan {
        let live = |s: &Slot| s.state.lock().breaker.is_available(now);
        let live_parents: Vec<usize> = (0..self.parents.len())
            .filter(|&i| live(&self.parents[i]))
            .collect();
        let live_origins: Vec<&Slot> = self.origins.iter().filter(|s| live(s)).collect();
        if live_parents.is_empty() && live_origins.is_empty() {
            let mut targets: Vec<Target> =
                rendezvous::rank(&self.parent_ids, 0..self.parents.len(), key)
                    .into_iter()
                    .filter_map(|i| self.parents.get(i).map(|s| s.target.clone()))
                    .collect();
            targets.extend(self.origins.iter().map(|s| s.target.clone()));
            return Plan {
                targets,
                probing: true,
            };
        }
        let mut targets: Vec<Target> = rendezvous::rank(&self.parent_ids, live_parents, key)
            .into_iter()
            .filter_map(|i| self.parents.get(i).map(|s| s.target.clone()))
            .collect();
        targets.extend(live_origins.into_iter().map(|s| s.target.clone()));
        Plan {
            targets,
            probing: false,
        }
    }

    /// Sends `method` (GET or HEAD) `path_and_query` with `headers` (hop-by-hop ones and
    /// `Host` dropped, `Via: 1.1 mediamesh-edge` appended) to the targets of
    /// [`plan`](Self::plan)`(key)` in turn until one answers below 500. Failures feed the
    /// breakers; an answer closes its target's breaker (report body failures with
    /// [`report`](Self::report)). Errors ([`FetchError`]): `InvalidRequest` before sending anything;
    /// `Timeout` when every attempt timed out; `AllFailed` otherwise.
    pub async fn fetch(
        &self,
        key: &str,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Fetched, FetchError> {
        // Validate once, before touching any breaker.
        let first_base = self
            .origins
            .first()
            .map(|s| s.target.base.as_str())
            .unwrap_or("");
        client::build_request(first_base, method, path_and_query, headers)?;

        let plan = self.plan_at(key, Instant::now());
        let mut failures = Failures::default();
        let mut skipped = Vec::new();
        for target in plan.targets {
            let Some(slot) = self.slot(&target) else {
                continue;
            };
            let admission = if plan.probing {
                Admission::Normal
            } else {
                slot.state.lock().breaker.try_acquire(Instant::now())
            };
            if admission == Admission::Rejected {
                // Raced with another request for a half-open trial, or just opened.
                skipped.push(target);
                continue;
            }
            match self
                .attempt(slot, admission, method, path_and_query, headers)
                .await
            {
                Ok(fetched) => match self.follow_directory(fetched, method, headers).await {
                    Ok(fetched) => return Ok(fetched),
                    Err(f) => failures.add(f),
                },
                Err(f) => failures.add(f),
            }
        }
        if failures.tried == 0 {
            // Everything in the plan was rejected between planning and sending: probe
            // anyway rather than fail without trying.
            for target in skipped {
                let Some(slot) = self.slot(&target) else {
                    continue;
                };
                match self
                    .attempt(slot, Admission::Normal, method, path_and_query, headers)
                    .await
                {
                    Ok(fetched) => match self.follow_directory(fetched, method, headers).await {
                        Ok(fetched) => return Ok(fetched),
                        Err(f) => failures.add(f),
                    },
                    Err(f) => failures.add(f),
                }
            }
        }
        metrics::counter!("mediamesh_edge_upstream_all_failed_total").increment(1);
        Err(failures.into_error())
    }

    /// Follows stream-directory redirects (see the module doc) from `fetched`; any
    /// other answer is returned as it is. The origin that redirected is healthy, so a
    /// failure here does not count against its breaker; the caller tries the next
    /// target.
    async fn follow_directory(
        &self,
        mut fetched: Fetched,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Fetched, Failure> {
        let mut hops = 0u32;
        while let Some(location) = directory_redirect(&fetched.response) {
            hops += 1;
            let fail = |message: String| Failure {
                message,
                timeout: false,
            };
            if hops > MAX_DIRECTORY_HOPS {
                return Err(fail(format!(
                    "{}: more than {MAX_DIRECTORY_HOPS} stream-directory redirects",
                    fetched.target.base
                )));
            }
            let (base, path) = split_location(&location)
                .ok_or_else(|| fail(format!("unusable directory redirect to {location:?}")))?;
            let Some(conns) = self.redirect_conns(&base) else {
                tracing::warn!(
                    from = %fetched.target.base,
                    to = %base,
                    "refused a stream-directory redirect to an upstream that is not configured"
                );
                metrics::counter!("mediamesh_edge_upstream_redirects_refused_total").increment(1);
                return Err(fail(format!(
                    "{}: directory redirect to {base}, which is not a configured upstream",
                    fetched.target.base
                )));
            };
            let permit = acquire(conns, self.config.first_byte_timeout, &base).await?;
            let mut h = headers.clone();
            h.insert(HOPS_HEADER, http::HeaderValue::from(hops));
            let req =
                client::build_request(&base, method, &path, &h).map_err(|e| fail(e.to_string()))?;
            let started = Instant::now();
            let response = client::send(&self.client, req, self.config.first_byte_timeout)
                .await
                .map_err(|e| Failure {
                    timeout: matches!(e, client::SendError::Timeout),
                    message: format!("{base} (directory redirect): {e}"),
                })?;
            if response.status().as_u16() >= 500 {
                return Err(fail(format!(
                    "{base} (directory redirect) answered {}",
                    response.status()
                )));
            }
            metrics::counter!("mediamesh_edge_upstream_directory_redirects_total").increment(1);
            tracing::debug!(from = %fetched.target.base, to = %base, "followed a stream-directory redirect");
            fetched = Fetched {
                response,
                target: fetched.target,
                elapsed_first_byte: fetched.elapsed_first_byte + started.elapsed(),
                _permit: permit,
            };
        }
        Ok(fetched)
    }

    /// One attempt at one target; records the outcome on its breaker.
    async fn attempt(
        &self,
        slot: &Slot,
        admission: Admission,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<Fetched, Failure> {
        let target = &slot.target;
        let req =
            client::build_request(&target.base, method, path_and_query, headers).map_err(|e| {
                Failure {
                    message: e.to_string(),
                    timeout: false,
                }
            })?;
        let mut guard = TrialGuard {
            slot,
            armed: admission == Admission::Trial,
        };
        // A full connection cap is not the target's failure: no breaker record (the
        // guard gives a half-open trial back).
        let permit = acquire(
            slot.conns.clone(),
            self.config.first_byte_timeout,
            &target.base,
        )
        .await?;
        let started = Instant::now();
        let result = client::send(&self.client, req, self.config.first_byte_timeout).await;
        guard.armed = false;
        let elapsed = started.elapsed();
        let kind = target.kind.as_str();
        match result {
            Ok(response) if response.status().as_u16() < 500 => {
                self.record(slot, true, None);
                metrics::counter!("mediamesh_edge_upstream_attempts_total", "kind" => kind, "outcome" => "ok")
                    .increment(1);
                metrics::histogram!("mediamesh_edge_upstream_first_byte_seconds", "kind" => kind)
                    .record(elapsed.as_secs_f64());
                Ok(Fetched {
                    response,
                    target: target.clone(),
                    elapsed_first_byte: elapsed,
                    _permit: permit,
                })
            }
            Ok(response) => {
                let message = format!("{} answered {}", target.base, response.status());
                self.record(slot, false, Some(&message));
                metrics::counter!("mediamesh_edge_upstream_attempts_total", "kind" => kind, "outcome" => "status_5xx")
                    .increment(1);
                Err(Failure {
                    message,
                    timeout: false,
                })
            }
            Err(e) => {
                let timeout = matches!(e, client::SendError::Timeout);
                let message = format!("{}: {e}", target.base);
                self.record(slot, false, Some(&message));
                let outcome = if timeout { "timeout" } else { "transport" };
                metrics::counter!("mediamesh_edge_upstream_attempts_total", "kind" => kind, "outcome" => outcome)
                    .increment(1);
                Err(Failure { message, timeout })
            }
        }
    }

    /// Reports the outcome of using `target` beyond the response head, e.g. a body
    /// stream that broke (`ok = false`). Unknown targets are ignored.
    pub fn report(&self, target: &Target, ok: bool) {
        if let Some(slot) = self.slot(target) {
            let msg = (!ok).then(|| format!("{}: reported failure", target.base));
            self.record(slot, ok, msg.as_deref());
        }
    }

    /// Every target (parents, then origins) with its health and breaker state.
    pub fn status(&self) -> Vec<TargetStatus> {
        let now = Instant::now();
        self.parents
            .iter()
            .chain(self.origins.iter())
            .map(|slot| {
                let st = slot.state.lock();
                TargetStatus {
                    base: slot.target.base.clone(),
                    kind: slot.target.kind,
                    healthy: st.healthy,
                    breaker: st.breaker.state(now),
                    consecutive_failures: st.breaker.consecutive_failures(),
                    last_error: st.last_error.clone(),
                }
            })
            .collect()
    }

    fn slot(&self, target: &Target) -> Option<&Slot> {
        let list = match target.kind {
            Kind::Parent => &self.parents,
            Kind::Origin => &self.origins,
            Kind::Callout => return None,
        };
        list.get(target.index)
            .filter(|s| s.target.base == target.base)
    }

    fn record(&self, slot: &Slot, ok: bool, error: Option<&str>) {
        self.record_at(slot, ok, error, Instant::now());
    }

    fn record_at(&self, slot: &Slot, ok: bool, error: Option<&str>, now: Instant) {
        let (before, after) = {
            let mut st = slot.state.lock();
            let before = st.breaker.state(now);
            if ok {
                st.breaker.record_success();
            } else {
                st.breaker.record_failure(now);
                if let Some(e) = error {
                    st.last_error = Some(e.to_string());
                }
            }
            (before, st.breaker.state(now))
        };
        let t = &slot.target;
        if before != after {
            match after {
                BreakerState::Open => tracing::warn!(
                    upstream = %t.base, kind = t.kind.as_str(), error = error.unwrap_or(""),
                    "upstream breaker opened"
                ),
                BreakerState::Closed => {
                    tracing::info!(upstream = %t.base, kind = t.kind.as_str(), "upstream breaker closed")
                }
                BreakerState::HalfOpen => {}
            }
        } else if !ok {
            tracing::debug!(upstream = %t.base, error = error.unwrap_or(""), "upstream failure");
        }
    }

    /// The connection cap of a redirect target, `None` unless it is a configured
    /// origin, parent or `redirect_allow` base (same host and port; all are http).
    fn redirect_conns(&self, base: &str) -> Option<Arc<Semaphore>> {
        let hp = host_port(base)?;
        self.conns
            .iter()
            .find(|(k, _)| *k == hp)
            .map(|(_, s)| s.clone())
    }

    // --- used by the health checker ---

    fn all_targets(&self) -> Vec<Target> {
        self.parents
            .iter()
            .chain(self.origins.iter())
            .map(|s| s.target.clone())
            .collect()
    }

    /// One health check: GET `health_path`; passes on any status below 500 within
    /// `max(connect_timeout, health_interval)`.
    async fn check_one(&self, target: &Target) -> Result<(), String> {
        let timeout = self.config.connect_timeout.max(self.config.health_interval);
        let req = client::build_request(
            &target.base,
            &Method::GET,
            &self.config.health_path,
            &HeaderMap::new(),
        )
        .map_err(|e| e.to_string())?;
        let work = async {
            let resp = client::send(&self.client, req, timeout)
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            // Read a small body so the connection can go back to the pool.
            let _ = Limited::new(resp.into_body(), 64 * 1024).collect().await;
            if status.as_u16() < 500 {
                Ok(())
            } else {
                Err(format!("health check answered {status}"))
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err("health check timed out".to_string()),
        }
    }

    fn record_check(&self, target: &Target, result: Result<(), String>) {
        let Some(slot) = self.slot(target) else {
            return;
        };
        slot.state.lock().healthy = Some(result.is_ok());
        match result {
            Ok(()) => self.record(slot, true, None),
            Err(e) => self.record(slot, false, Some(&format!("{}: {e}", target.base))),
        }
    }
}

/// Waits at most `timeout` for one of `base`'s connection slots.
async fn acquire(
    conns: Arc<Semaphore>,
    timeout: Duration,
    base: &str,
) -> Result<OwnedSemaphorePermit, Failure> {
    match tokio::time::timeout(timeout, conns.acquire_owned()).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(_)) => Err(Failure {
            message: format!("{base}: connection cap closed"),
            timeout: false,
        }),
        Err(_) => {
            metrics::counter!("mediamesh_edge_upstream_connection_cap_waits_total").increment(1);
            Err(Failure {
                message: format!("{base}: every connection slot stayed busy"),
                timeout: true,
            })
        }
    }
}

/// Stream-directory redirects followed per request at most.
pub const MAX_DIRECTORY_HOPS: u32 = 2;
/// Request header telling the origin how many directory redirects were followed.
const HOPS_HEADER: http::HeaderName = http::HeaderName::from_static("mediamesh-hops");

/// The `Location` of a stream-directory redirect (3xx with `Mediamesh-Redirect:
/// directory`), if `response` is one.
fn directory_redirect<B>(response: &hyper::Response<B>) -> Option<String> {
    if !response.status().is_redirection() {
        return None;
    }
    let marked = response
        .headers()
        .get("mediamesh-redirect")
        .is_some_and(|v| v.as_bytes() == b"directory");
    if !marked {
        return None;
    }
    response
        .headers()
        .get(http::header::LOCATION)?
        .to_str()
        .ok()
        .map(str::to_string)
}

/// `http://host:port/path?q` → (normalized base, path and query). Only absolute
/// `http` URLs (what the origin sends).
fn split_location(location: &str) -> Option<(String, String)> {
    let uri: http::Uri = location.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let authority = uri.authority()?;
    let base = client::normalize_base(&format!("http://{authority}")).ok()?;
    let path = uri.path_and_query().map(|p| p.as_str().to_string())?;
    path.starts_with('/').then_some((base, path))
}

fn normalize_all(raw: &[String], what: &str) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for r in raw {
        let n = client::normalize_base(r)?;
        if out.contains(&n) {
            return Err(ConfigError::InvalidConfig(format!(
                "{what} {n} listed twice"
            )));
        }
        out.push(n);
    }
    Ok(out)
}

/// Gives a half-open trial back if the attempt is dropped before it has an outcome.
struct TrialGuard<'a> {
    slot: &'a Slot,
    armed: bool,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.slot.state.lock().breaker.release_trial();
        }
    }
}

struct Failure {
    message: String,
    timeout: bool,
}

#[derive(Default)]
struct Failures {
    tried: usize,
    timeouts: usize,
    last: String,
}

impl Failures {
    fn add(&mut self, f: Failure) {
        self.tried += 1;
        if f.timeout {
            self.timeouts += 1;
        }
        self.last = f.message;
    }

    fn into_error(self) -> FetchError {
        if self.tried > 0 && self.timeouts == self.tried {
            FetchError::Timeout
        } else {
            FetchError::AllFailed {
                tried: self.tried,
                last: self.last,
            }
        }
    }
}
