//! The router's HTTP shell: accepts viewers (shared accept loop of crate `service`),
//! looks up their region, ranks edges, and answers with a redirect, a steered
//! playlist or MPD, or a steering manifest. Never waits on the registry: it reads the
//! last known [`View`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use media::hls::MultivariantPlaylist;
use tokio::task::JoinHandle;

use super::health::{probe_loop, Health, ProbeConfig};
use super::pick::{rank, PickPolicy};
use super::region::Locator;
use super::steering::{self, Pathway, SteeringQuery};
use crate::registry::membership::{Membership, MembershipConfig, View};
use crate::registry::{NodeKind, NodeRecord, Store};

/// Where the router learns about edges.
pub enum EdgeSource {
    /// The registry: edges register and heartbeat.
    Registry(Arc<dyn Store>),
    /// A fixed list (`--edge URL`).
    Fixed(Vec<NodeRecord>),
}

/// Everything the router needs.
pub struct RouterConfig {
    pub http: SocketAddr,
    pub edges: EdgeSource,
    pub locator: Locator,
    pub policy: PickPolicy,
    pub probes: ProbeConfig,
    pub membership: MembershipConfig,
    /// `TTL` of steering manifests, seconds.
    pub steering_ttl: u64,
    /// Most pathways listed in a steered playlist.
    pub max_pathways: usize,
    /// Time limit on fetching a playlist or MPD from an edge.
    pub fetch_timeout: Duration,
    pub limits: service::ServeLimits,
    /// Answer `/metrics` on the viewers' port (off when an admin listener serves it).
    pub public_metrics: bool,
}

impl RouterConfig {
    pub fn new(http: SocketAddr, edges: EdgeSource) -> Self {
        RouterConfig {
            http,
            edges,
            locator: Locator::default(),
            policy: PickPolicy::default(),
            probes: ProbeConfig::default(),
            membership: MembershipConfig::default(),
            steering_ttl: 5,
            max_pathways: 8,
            fetch_timeout: Duration::from_secs(4),
            limits: service::ServeLimits::default(),
            public_metrics: true,
        }
    }
}

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source} (pick another address with --http)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Edges an operator is draining: the router sends no new viewer to them (redirects
/// and steering rank only the others), while viewers already there keep playing until
/// their next steering reload. In this router's memory only.
#[derive(Debug, Default)]
pub struct Drains {
    ids: parking_lot::RwLock<std::collections::BTreeSet<String>>,
}

/// Most edge ids marked draining at once.
pub const MAX_DRAINS: usize = 10_000;

/// Why a drain mark was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DrainError {
    #[error(
        "edge id {0:?} is not one: use the `id` of /api/v1/nodes (1-128 of A-Z a-z 0-9 . _ -)"
    )]
    BadId(String),
    #[error("too many edges marked draining (limit {MAX_DRAINS})")]
    TooMany,
}

impl Drains {
    /// Marks edge `id` draining or not.
    pub fn set(&self, id: &str, draining: bool) -> Result<(), DrainError> {
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(DrainError::BadId(id.to_string()));
        }
        let mut ids = self.ids.write();
        if draining {
            if ids.len() >= MAX_DRAINS && !ids.contains(id) {
                return Err(DrainError::TooMany);
            }
            ids.insert(id.to_string());
        } else {
            ids.remove(id);
        }
        ::metrics::gauge!("mediamesh_router_draining_edges").set(ids.len() as f64);
        Ok(())
    }

    pub fn draining(&self, id: &str) -> bool {
        self.ids.read().contains(id)
    }

    /// Every edge marked draining.
    pub fn ids(&self) -> Vec<String> {
        self.ids.read().iter().cloned().collect()
    }
}

struct State {
    drains: Arc<Drains>,
    view: Arc<View>,
    health: Arc<Health>,
    locator: Locator,
    policy: PickPolicy,
    client: reqwest::Client,
    steering_ttl: u64,
    max_pathways: usize,
    public_metrics: bool,
}

/// A running router; dropping it stops it.
pub struct RouterServer {
    pub addr: SocketAddr,
    /// The edges being drained (the binary's write API changes it).
    pub drains: Arc<Drains>,
    /// The edges the router knows (registry or fixed list), for the console.
    pub view: Arc<View>,
    /// The router's probe results per edge base URL, for the console.
    pub health: Arc<Health>,
    tasks: Vec<JoinHandle<()>>,
    _membership: Option<Membership>,
}

impl Drop for RouterServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RouterServer {
    pub async fn start(config: RouterConfig) -> Result<Self, StartError> {
        service::metrics::handle();
        let (view, membership) = match config.edges {
            EdgeSource::Registry(store) => {
                let m = Membership::spawn(store, config.membership, None);
                (m.view.clone(), Some(m))
            }
            EdgeSource::Fixed(nodes) => (View::fixed(nodes), None),
        };
        let client = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let health = Arc::new(Health::new(config.probes.fail_after));
        let listener = service::bind(config.http).map_err(|source| StartError::Bind {
            addr: config.http,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.http,
            source,
        })?;
        let v = view.clone();
        let mut tasks = vec![tokio::spawn(probe_loop(
            health.clone(),
            client.clone(),
            config.probes,
            move || {
                v.nodes()
                    .iter()
                    .filter(|n| n.kind == NodeKind::Edge)
                    .map(|n| n.public_url.clone())
                    .collect()
            },
        ))];
        let drains = Arc::new(Drains::default());
        let state = Arc::new(State {
            drains: drains.clone(),
            view: view.clone(),
            health: health.clone(),
            locator: config.locator,
            policy: config.policy,
            client,
            steering_ttl: config.steering_ttl,
            max_pathways: config.max_pathways.max(1),
            public_metrics: config.public_metrics,
        });
        let limits = config.limits;
        tasks.push(tokio::spawn(async move {
            service::serve(listener, limits, None, move |req, peer| {
                let state = state.clone();
                async move { handle(&state, req, peer).await }
            })
            .await;
        }));
        tracing::info!(%addr, "router listening");
        Ok(RouterServer {
            addr,
            drains,
            view,
            health,
            tasks,
            _membership: membership,
        })
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn typed(body: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// `live/cam` and `/live/cam/` for `/live/cam/…`; `None` for other paths.
fn stream_of(path: &str) -> Option<(String, String)> {
    let mut it = path.trim_start_matches('/').splitn(3, '/');
    let kind = it.next()?;
    let name = it.next()?;
    it.next()?;
    if !(kind == "live" || kind == "vod") || name.is_empty() || name == ".." || name == "." {
        return None;
    }
    Some((format!("{kind}/{name}"), format!("/{kind}/{name}/")))
}

/// Query parameters (percent-decoded), first of each name wins.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl State {
    /// Healthy edges ranked for this client and stream key.
    fn ranked(&self, key: &str, client: IpAddr) -> (Option<String>, Vec<NodeRecord>) {
        let region = self.locator.region_of(client);
        let nodes = self.view.nodes();
        let edges: Vec<&NodeRecord> = nodes
            .iter()
            .filter(|n| {
                n.kind == NodeKind::Edge
                    && self.health.healthy(&n.public_url)
                    && !self.drains.draining(&n.id)
            })
            .collect();
        let ranked = rank(key, region.as_deref(), &edges, &self.policy)
            .into_iter()
            .cloned()
            .collect();
        (region, ranked)
    }

    fn known_pathways(&self) -> Vec<Pathway> {
        self.view
            .nodes()
            .iter()
            .filter(|n| n.kind == NodeKind::Edge)
            .map(|n| Pathway {
                id: n.id.clone(),
                base: n.public_url.clone(),
            })
            .collect()
    }
}

fn pathways(nodes: &[NodeRecord], max: usize) -> Vec<Pathway> {
    nodes
        .iter()
        .take(max)
        .map(|n| Pathway {
            id: n.id.clone(),
            base: n.public_url.clone(),
        })
        .collect()
}

async fn handle(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the router answers GET and HEAD\n",
        );
    }
    match path.as_str() {
        "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/metrics" if state.public_metrics => {
            return text(StatusCode::OK, service::metrics::render())
        }
        "/api/v1/nodes" => return nodes_json(state),
        "/steering/hls" | "/steering/dash" => {
            return steering_manifest(state, path.ends_with("dash"), &query, peer.ip())
        }
        _ => {}
    }
    let key_dir = if path == "/api/v1/time" {
        Some(("api/time".to_string(), String::new()))
    } else {
        stream_of(&path)
    };
    let Some((key, dir)) = key_dir else {
        return text(
            StatusCode::NOT_FOUND,
            "the router redirects /live/{stream}/… and /vod/{name}/… to an edge\n",
        );
    };
    let (region, ranked) = state.ranked(&key, peer.ip());
    if ranked.is_empty() {
        ::metrics::counter!("mediamesh_router_no_edge_total").increment(1);
        tracing::warn!(%key, region = ?region, "no healthy edge to send a viewer to");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy edge is registered; start edges with --registry (or give the router --edge URL)\n",
        );
    }
    let steerable = path.ends_with("/index.m3u8") && path.matches('/').count() == 3
        || path.ends_with("/index.mpd") && path.matches('/').count() == 3;
    if steerable && req.method() == hyper::Method::GET {
        if let Some(r) = steered(state, &path, &query, &key, &dir, &ranked).await {
            ::metrics::counter!("mediamesh_router_steered_total").increment(1);
            return r;
        }
    }
    let target = format!(
        "{}{}{}{}",
        ranked[0].public_url,
        path,
        if query.is_empty() { "" } else { "?" },
        query
    );
    ::metrics::counter!("mediamesh_router_redirects_total", "region" => region.unwrap_or_else(|| "unknown".into()))
        .increment(1);
    let mut r = text(StatusCode::FOUND, format!("{target}\n"));
    match HeaderValue::from_str(&target) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "request path cannot be redirected\n",
            )
        }
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// Fetches the top-level playlist or MPD from the best edges (first that answers) and
/// adds Content Steering. `None`: not steerable (fall back to a redirect).
async fn steered(
    state: &State,
    path: &str,
    query: &str,
    key: &str,
    dir: &str,
    ranked: &[NodeRecord],
) -> Option<Response<Body>> {
    let dash = path.ends_with(".mpd");
    let mut body = None;
    for edge in ranked.iter().take(3) {
        let url = format!(
            "{}{}{}{}",
            edge.public_url,
            path,
            if query.is_empty() { "" } else { "?" },
            query
        );
        match state.client.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                if r.content_length().unwrap_or(0) > steering::MAX_MPD_BYTES as u64 {
                    return None;
                }
                match r.text().await {
                    Ok(t) => {
                        body = Some(t);
                        break;
                    }
                    Err(e) => tracing::debug!(%url, error = %e, "edge body failed"),
                }
            }
            Ok(r) => {
                tracing::debug!(%url, status = %r.status(), "edge did not give the playlist");
                // The stream may not exist: let the client see the edge's answer.
                return None;
            }
            Err(e) => tracing::debug!(%url, error = %e, "edge unreachable for playlist"),
        }
    }
    let body = body?;
    let paths = pathways(ranked, state.max_pathways);
    if dash {
        let uri = steering::steering_uri(true, key, &paths, 0);
        let out = steering::rewrite_mpd(&body, dir, &paths, &uri).ok()?;
        return Some(typed(out, "application/dash+xml"));
    }
    let mv = MultivariantPlaylist::parse(&body).ok()?;
    if mv.variants.is_empty() {
        return None;
    }
    let uri = steering::steering_uri(false, key, &paths, steering::min_bandwidth(&mv));
    let out = steering::rewrite_multivariant(&mv, dir, &paths, uri);
    Some(typed(out.write(), "application/vnd.apple.mpegurl"))
}

fn steering_manifest(state: &State, dash: bool, query: &str, client: IpAddr) -> Response<Body> {
    let (p, t) = if dash {
        ("_DASH_pathway", "_DASH_throughput")
    } else {
        ("_HLS_pathway", "_HLS_throughput")
    };
    let Some(stream) = query_param(query, "stream").filter(|s| !s.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "steering request lacks stream=\n");
    };
    let q = SteeringQuery {
        have: query_param(query, "have")
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .take(64)
            .map(str::to_string)
            .collect(),
        min_bandwidth: query_param(query, "minbw")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        current: query_param(query, p).filter(|s| !s.is_empty() && s != "."),
        throughput: query_param(query, t).and_then(|v| v.parse().ok()),
        stream,
    };
    let (_, ranked) = state.ranked(&q.stream, client);
    let best_region = ranked.first().map(|n| n.region.clone());
    let regions: Vec<(String, String)> = ranked
        .iter()
        .map(|n| (n.id.clone(), n.region.clone()))
        .collect();
    let same_region = move |id: &str| {
        regions
            .iter()
            .any(|(i, r)| i == id && Some(r) == best_region.as_ref())
    };
    let m = steering::manifest(
        dash,
        &q,
        &pathways(&ranked, usize::MAX),
        &state.known_pathways(),
        &same_region,
        state.steering_ttl,
    );
    ::metrics::counter!("mediamesh_router_steering_manifests_total").increment(1);
    match serde_json::to_string(&m) {
        Ok(json) => typed(json, "application/json"),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

fn nodes_json(state: &State) -> Response<Body> {
    let nodes: Vec<serde_json::Value> = state
        .view
        .nodes()
        .iter()
        .map(|n| {
            serde_json::json!({
                "id": n.id, "kind": n.kind, "region": n.region, "public_url": n.public_url,
                "healthy": state.health.healthy(&n.public_url),
                "draining": state.drains.draining(&n.id),
                "utilization": n.utilization(), "load": n.load, "streams": n.streams,
                "updated_ms": n.updated_ms,
            })
        })
        .collect();
    let body = serde_json::json!({
        "registry_up": state.view.store_up(),
        "reregistrations": state.view.reregistrations(),
        "nodes": nodes,
    });
    typed(body.to_string(), "application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_marks_are_checked_and_bounded() {
        let d = Drains::default();
        assert!(d.set("edge-a.1", true).is_ok());
        assert!(d.draining("edge-a.1"));
        assert!(d.set("edge-a.1", false).is_ok());
        assert!(!d.draining("edge-a.1"));
        for bad in ["", "a/b", "x y", &"a".repeat(129)] {
            assert!(matches!(d.set(bad, true), Err(DrainError::BadId(_))));
        }
    }

    #[test]
    fn stream_keys_come_from_the_first_two_segments() {
        assert_eq!(
            stream_of("/live/cam/src/seg1.m4s"),
            Some(("live/cam".into(), "/live/cam/".into()))
        );
        assert_eq!(
            stream_of("/vod/talk/index.mpd").map(|x| x.0),
            Some("vod/talk".into())
        );
        assert_eq!(stream_of("/live/cam"), None);
        assert_eq!(stream_of("/etc/passwd/x"), None);
        assert_eq!(stream_of("/live/../x"), None);
    }

    #[test]
    fn query_values_are_decoded() {
        let q = "stream=live%2Fcam&have=a%2Cb&_HLS_pathway=edge-a&x";
        assert_eq!(query_param(q, "stream").as_deref(), Some("live/cam"));
        assert_eq!(query_param(q, "have").as_deref(), Some("a,b"));
        assert_eq!(query_param(q, "x").as_deref(), Some(""));
        assert_eq!(query_param(q, "nope"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }
}
