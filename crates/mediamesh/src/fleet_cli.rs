//! Fleet flags and roles of the binary: `--registry/--region/--public-url` on
//! `serve`, `origin`, `edge` and `tracker` (join a registry and heartbeat), and the
//! `mediamesh router` command. Like every other flag these have TOML keys named like
//! the flag (`registry`, `region`, `public_url`; for the router also `edge`,
//! `region_map`, `region_fallback`, `geoip`, `steering_ttl`) and `MEDIAMESH_*`
//! variables (see `layers`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use fleet::registry::load::{prometheus_value, LoadSampler};
use fleet::registry::membership::{Membership, MembershipConfig, RecordFn};
use fleet::registry::{NodeKind, NodeRecord, Store};
use serde::{Deserialize, Serialize};

use crate::fleet_state::FillFn;

/// Flags shared by every node that can join a fleet.
#[derive(Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct FleetArgs {
    /// Node registry to join: `memory` (this process only) or `redis://HOST:PORT`.
    #[arg(long)]
    pub registry: Option<String>,
    /// Region this node serves (matched against the router's --region-map) [default: default].
    #[arg(long)]
    pub region: Option<String>,
    /// URL others reach this node at [default: http://{--http}].
    #[arg(long)]
    pub public_url: Option<String>,
}

/// Merged fleet settings of a node.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    pub registry: String,
    pub region: String,
    pub public_url: String,
}

/// The fleet settings of a node; `None` when no registry is named and
/// `default_registry` is `None`.
pub fn settings(
    args: &FleetArgs,
    http: SocketAddr,
    default_registry: Option<&str>,
) -> Result<Option<FleetSettings>> {
    let Some(registry) = args
        .registry
        .clone()
        .or(default_registry.map(str::to_string))
    else {
        return Ok(None);
    };
    let public_url = match args.public_url.clone() {
        Some(u) => {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("--public-url must start with http:// or https://, got {u:?}");
            }
            u.trim_end_matches('/').to_string()
        }
        None if http.ip().is_unspecified() => bail!(
            "--http {http} listens on every address: give --public-url (the URL viewers and other nodes use)"
        ),
        None => format!("http://{http}"),
    };
    let region = args.region.clone().unwrap_or_else(|| "default".to_string());
    if region.is_empty() || region.contains(char::is_whitespace) {
        bail!("--region must be a non-empty name without spaces, got {region:?}");
    }
    Ok(Some(FleetSettings {
        registry,
        region,
        public_url,
    }))
}

/// Opens the store (`memory` stores can be shared by passing one in).
pub fn open_store(s: &FleetSettings) -> Result<Arc<dyn Store>> {
    fleet::registry::open(&s.registry).map_err(|e| anyhow::anyhow!("--registry: {e}"))
}

/// Joins the registry as `kind`; `fill` adds the live streams (origins).
pub fn join(
    store: Arc<dyn Store>,
    s: &FleetSettings,
    kind: NodeKind,
    port: u16,
    capacity_connections: u64,
    fill: Option<FillFn>,
) -> Membership {
    let sampler = Arc::new(LoadSampler::new(
        port,
        Box::new(|| {
            prometheus_value(
                &service::metrics::render(),
                "mediamesh_edge_egress_bytes_total",
            )
        }),
    ));
    let base = {
        let mut r = NodeRecord::new(kind, &s.public_url, &s.region);
        r.capacity.connections = capacity_connections;
        r
    };
    let record: RecordFn = Arc::new(move || {
        let mut r = base.clone();
        r.load = sampler.sample();
        if let Some(f) = &fill {
            f(&mut r);
        }
        r
    });
    tracing::info!(registry = %store.describe(), kind = kind.as_str(), region = %s.region, url = %s.public_url, "joining the fleet");
    Membership::spawn(store, MembershipConfig::default(), Some(record))
}

/// An origin's entries in the stream directory: the streams it holds live with a
/// complete segment (where other origins send askers), and the numbering timeline of
/// every stream it packages (what other origins of the same publish adopt).
pub fn origin_fill(state: &origin::http::AppState) -> FillFn {
    let streams = state.streams.clone();
    Arc::new(move |r: &mut NodeRecord| {
        crate::fleet_state::origin_viewers(&streams, r);
        for s in streams.list() {
            let Some(t) = s.shared_timeline() else {
                continue;
            };
            if t.live && t.last_msn.is_some() {
                r.streams.push(s.name.clone());
            }
            // Ended streams are left out: others remember them (and so does this
            // origin), but nothing new should adopt their grid.
            if !matches!(s.state(), origin::live::StreamState::Ended(_)) {
                if let Ok(v) = serde_json::to_value(&t) {
                    r.timelines.insert(s.name.clone(), v);
                }
            }
        }
    })
}

/// The fleet registry as an origin's stream directory (see
/// `origin::live::directory`): answers from the membership's last known view.
#[derive(Debug)]
pub struct FleetDirectory {
    view: Arc<fleet::registry::membership::View>,
    self_id: String,
}

/// A timeline written within this long by an origin whose publisher was connected is
/// taken first.
const FRESH_MS: u64 = 5_000;

impl origin::live::directory::Directory for FleetDirectory {
    fn timelines(&self, stream: &str) -> Vec<origin::live::numbering::SharedTimeline> {
        let now = fleet::registry::now_ms();
        let mut seen: Vec<(bool, u64, origin::live::numbering::SharedTimeline)> = self
            .view
            .timelines(stream, &self.self_id)
            .into_iter()
            .filter_map(|s| {
                let t: origin::live::numbering::SharedTimeline =
                    serde_json::from_value(s.timeline).ok()?;
                let fresh = t.live && now.saturating_sub(s.seen_ms) <= FRESH_MS;
                Some((fresh, s.seen_ms, t))
            })
            .collect();
        seen.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        seen.into_iter().map(|(_, _, t)| t).collect()
    }

    fn holders(&self, stream: &str) -> Vec<String> {
        let nodes = self.view.nodes();
        fleet::registry::origins_for(&nodes, stream)
            .into_iter()
            .filter(|n| n.id != self.self_id)
            .map(|n| n.public_url.clone())
            .collect()
    }
}

/// Joins an origin to the fleet and makes the registry its stream directory and the
/// source of its viewer totals; with Redis, also shares its operator state (keys,
/// P2P switches, kicks) with the fleet.
fn join_as_origin(
    store: Arc<dyn Store>,
    s: &FleetSettings,
    o: &origin::Origin,
) -> Result<(Membership, Option<crate::fleet_state::Tasks>)> {
    let m = join(
        store,
        s,
        NodeKind::Origin,
        o.http_addr.port(),
        0,
        Some(origin_fill(&o.state)),
    );
    o.state.streams.set_directory(Arc::new(FleetDirectory {
        view: m.view.clone(),
        self_id: fleet::registry::node_id(NodeKind::Origin, &s.public_url),
    }));
    o.state
        .streams
        .set_audience(Arc::new(crate::fleet_state::FleetAudience::new(
            m.view.clone(),
            o.state.streams.clone(),
        )));
    let control = crate::fleet_state::join_origin_control(
        &s.registry,
        o.state.streams.clone(),
        o.state.recordings.clone(),
    )?
    .map(|t| crate::fleet_state::Tasks(vec![t]));
    Ok((m, control))
}

/// `origin --registry …`: registers the origin with its live streams (the stream
/// directory).
pub fn join_origin(
    args: &FleetArgs,
    o: &origin::Origin,
) -> Result<Option<(Membership, Option<crate::fleet_state::Tasks>)>> {
    let Some(s) = settings(args, o.http_addr, None)? else {
        return Ok(None);
    };
    let store = open_store(&s)?;
    join_as_origin(store, &s, o).map(Some)
}

/// `edge --registry …`: registers the edge so routers send viewers to it.
pub fn join_edge(args: &FleetArgs, e: &edge::server::EdgeServer) -> Result<Option<Membership>> {
    let Some(s) = settings(args, e.addr, None)? else {
        return Ok(None);
    };
    let store = open_store(&s)?;
    Ok(Some(join(
        store,
        &s,
        NodeKind::Edge,
        e.addr.port(),
        e.edge.config.limits.max_connections as u64,
        Some(crate::fleet_state::edge_fill(e.edge.clone())),
    )))
}

/// `tracker --registry redis://…`: registers the tracker and shares its swarms with
/// the other trackers of the fleet through Redis pub/sub.
pub fn join_tracker(
    fleet: &FleetArgs,
    http: SocketAddr,
    tracker: &p2p::tracker::ws::TrackerService,
) -> Result<
    Option<(
        Membership,
        Option<fleet::tracker_relay::RedisRelay>,
        crate::fleet_state::Tasks,
    )>,
> {
    let Some(s) = settings(fleet, http, None)? else {
        return Ok(None);
    };
    let store = open_store(&s)?;
    let relay = if s.registry.starts_with("redis") {
        let node = fleet::registry::node_id(NodeKind::Tracker, &s.public_url);
        Some(
            fleet::tracker_relay::RedisRelay::start(tracker.clone(), &s.registry, &node)
                .map_err(|e| anyhow::anyhow!("--registry: {e}"))?,
        )
    } else {
        None
    };
    let m = join(
        store,
        &s,
        NodeKind::Tracker,
        http.port(),
        0,
        Some(crate::fleet_state::tracker_fill(tracker.clone())),
    );
    let control =
        crate::fleet_state::join_tracker_control(&s.registry, tracker.clone(), m.view.clone())?;
    Ok(Some((m, relay, crate::fleet_state::Tasks(control))))
}

/// `serve`: the origin (on its private port) and the viewers' edge join the registry,
/// the in-memory one unless `--registry` names another.
pub fn join_serve(
    args: &FleetArgs,
    o: &origin::Origin,
    e: &edge::server::EdgeServer,
    tracker: &p2p::tracker::ws::TrackerService,
) -> Result<(Vec<Membership>, Option<crate::fleet_state::Tasks>)> {
    let Some(s) = settings(args, e.addr, Some("memory"))? else {
        return Ok((Vec::new(), None));
    };
    let store = open_store(&s)?;
    let origin_settings = FleetSettings {
        public_url: format!("http://{}", o.http_addr),
        ..s.clone()
    };
    let (origin, control) = join_as_origin(store.clone(), &origin_settings, o)?;
    Ok((
        vec![
            origin,
            join(
                store,
                &s,
                NodeKind::Edge,
                e.addr.port(),
                e.edge.config.limits.max_connections as u64,
                Some(crate::fleet_state::serve_edge_fill(
                    e.edge.clone(),
                    tracker.clone(),
                )),
            ),
        ],
        control,
    ))
}

/// Settings of `router`.
#[derive(Args, Debug, Serialize, Deserialize)]
pub struct RouterArgs {
    /// TOML file with any of these settings (keys named like the flags, `-` as `_`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address.
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], 8084)))]
    pub http: SocketAddr,
    /// Registry the edges join: `redis://HOST:PORT` (or `memory`, useful only in tests).
    #[arg(long, conflicts_with = "edges")]
    pub registry: Option<String>,
    /// A fixed edge instead of a registry: `URL` or `REGION=URL` (repeat).
    #[arg(long = "edge", value_name = "[REGION=]URL")]
    pub edges: Vec<String>,
    /// Clients in CIDR belong to REGION (repeat; longest prefix wins).
    #[arg(long = "region-map", value_name = "CIDR=REGION")]
    pub region_map: Vec<String>,
    /// Regions to try, nearest first, when REGION has no healthy edge: REGION=A,B (repeat).
    #[arg(long = "region-fallback", value_name = "REGION=A,B")]
    pub region_fallback: Vec<String>,
    /// MaxMind-format database (GeoLite2/GeoIP2 Country or City, or your own with a `region` field).
    #[arg(long)]
    pub geoip: Option<PathBuf>,
    /// TTL of Content Steering manifests in seconds.
    #[arg(long, default_value_t = 5)]
    pub steering_ttl: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub conn: crate::listen_cli::ConnArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub admin: crate::listen_cli::AdminArgs,
    /// The router's write API (drain an edge) is on --admin only and needs one of
    /// these (the router has no data folder to keep a generated token in).
    #[command(flatten)]
    #[serde(flatten)]
    pub admin_token: crate::listen_cli::AdminTokenArgs,
}

/// The router configuration these settings describe.
pub fn router_config(args: &RouterArgs) -> Result<fleet::router::RouterConfig> {
    use fleet::router::server::EdgeSource;
    let http = args.http;
    let edges = &args.edges;
    let source = match (args.registry.clone(), edges.is_empty()) {
        (Some(_), false) => bail!("give the router either --registry or --edge, not both"),
        (Some(r), true) => EdgeSource::Registry(
            fleet::registry::open(&r).map_err(|e| anyhow::anyhow!("--registry: {e}"))?,
        ),
        (None, false) => {
            let mut nodes = Vec::new();
            for e in edges {
                let (region, url) = match e.split_once('=') {
                    Some((r, u)) if !r.contains("://") => (r, u),
                    _ => ("default", e.as_str()),
                };
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("--edge wants URL or REGION=URL with an http(s) URL, got {e:?}");
                }
                nodes.push(NodeRecord::new(NodeKind::Edge, url, region));
            }
            EdgeSource::Fixed(nodes)
        }
        (None, true) => bail!(
            "the router needs edges: --registry redis://HOST:PORT (edges started with the same --registry) or --edge URL"
        ),
    };
    let mut locator = fleet::router::region::Locator::from_map(&args.region_map)?;
    if let Some(db) = &args.geoip {
        locator = locator.with_geoip(db)?;
    }
    let mut c = fleet::router::RouterConfig::new(http, source);
    c.locator = locator;
    let mut fallback = HashMap::new();
    for f in &args.region_fallback {
        let Some((r, list)) = f.split_once('=') else {
            bail!("--region-fallback wants REGION=A,B, got {f:?}");
        };
        fallback.insert(
            r.trim().to_string(),
            list.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    c.policy.fallback = fallback;
    let t = args.steering_ttl;
    if !(1..=3600).contains(&t) {
        bail!("--steering-ttl must be 1 to 3600 seconds, got {t}");
    }
    c.steering_ttl = t;
    c.limits.conn = args.conn.limits()?;
    c.public_metrics = args.admin.admin.is_none();
    Ok(c)
}

/// `mediamesh router`.
pub async fn run_router(args: RouterArgs) -> Result<()> {
    let config = router_config(&args)?;
    let token_given =
        args.admin_token.admin_token.is_some() || args.admin_token.admin_token_file.is_some();
    if token_given && args.admin.admin.is_none() {
        anyhow::bail!(
            "--admin-token on the router needs --admin ADDR: the router's write API (drain) lives on the admin listener only"
        );
    }
    let token = if token_given {
        Some(crate::listen_cli::admin_token(
            &args.admin_token,
            std::path::Path::new("."),
        )?)
    } else {
        None
    };
    let router = fleet::router::RouterServer::start(config).await?;
    // With Redis, drain marks are the fleet's: every router follows them.
    let control = match &args.registry {
        Some(r) => crate::fleet_state::join_router_control(r, router.drains.clone())?,
        None => None,
    };
    let (control, _control_task) = match control {
        Some((c, t)) => (Some(c), Some(crate::fleet_state::Tasks(vec![t]))),
        None => (None, None),
    };
    let console = std::sync::Arc::new(crate::console::Console {
        registry: args.registry.clone(),
        drains: Some(router.drains.clone()),
        health: Some(router.health.clone()),
        ..crate::console::Console::new(
            "router",
            crate::console::Actions {
                drain: true,
                ..Default::default()
            },
        )
    });
    let _ = console.view.set(router.view.clone());
    let mut integrator = crate::console_delivery::RateIntegrator::new(router.view.clone());
    let _sampler = crate::console_delivery::spawn(
        console.delivery.clone(),
        crate::console::INTERVAL,
        move || integrator.read(),
    );
    let write_api = match token {
        Some(t) => Some(
            drain_api(router.drains.clone(), control.clone(), t.clone())
                .merge(crate::console::routes(console.clone(), t)),
        ),
        None => {
            if args.admin.admin.is_some() {
                tracing::info!(
                    "router write API (drain) off: give --admin-token or --admin-token-file"
                );
            }
            None
        }
    };
    let _admin = crate::listen_cli::start_admin_with(
        &args.admin,
        std::sync::Arc::new(service::metrics::render),
        write_api,
    )
    .await?;
    tracing::info!(
        "router on http://{}: viewers open http://{}/live/NAME/index.m3u8",
        router.addr,
        router.addr
    );
    crate::ready::listening(
        "router",
        router.addr,
        None,
        crate::listen_cli::admin_addr(&_admin),
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    drop(router);
    Ok(())
}

/// Body of `PUT /api/v1/edges/{id}/drain`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetDrain {
    draining: bool,
}

/// The router's write API: `GET|PUT /api/v1/edges/{id}/drain` behind the admin token.
/// With Redis (`control`), a mark is written to the fleet first, so every router
/// follows it; `503` when Redis did not take it.
fn drain_api(
    drains: std::sync::Arc<fleet::router::server::Drains>,
    control: Option<std::sync::Arc<fleet::control::Control>>,
    token: origin::http::admin::AdminToken,
) -> axum::Router {
    use axum::extract::Path;
    use axum::http::StatusCode;
    use origin::http::admin::{ApiError, Client, StrictJson};
    let read = drains.clone();
    let routes = axum::Router::new().route(
        "/api/v1/edges/{id}/drain",
        axum::routing::get(move |Path(id): Path<String>| {
            let d = read.clone();
            async move { axum::Json(serde_json::json!({"edge": id, "draining": d.draining(&id)})) }
        })
        .put(
            move |Client(who): Client,
                  Path(id): Path<String>,
                  StrictJson(body): StrictJson<SetDrain>| {
                let d = drains.clone();
                let control = control.clone();
                async move {
                    if let Some(c) = &control {
                        if fleet::control::valid_node_id(&id) {
                            c.set_drain(&id, body.draining).await.map_err(|e| {
                                ApiError::new(
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    "fleet_unavailable",
                                    format!("the fleet's registry did not take the change ({e}); nothing changed: retry when it is back"),
                                )
                            })?;
                        }
                    }
                    d.set(&id, body.draining).map_err(|e| {
                        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
                    })?;
                    tracing::info!(client = %who, edge = %id, draining = body.draining, "admin: edge drain switched");
                    Ok::<_, ApiError>(axum::Json(
                        serde_json::json!({"edge": id, "draining": body.draining}),
                    ))
                }
            },
        ),
    );
    origin::http::admin::guard(routes, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role<T>(_name: &str, argv: &[&str]) -> Result<T>
    where
        T: clap::Args + clap::FromArgMatches + Serialize + serde::de::DeserializeOwned,
    {
        crate::layers::read(argv, crate::origin_cli::ALIASES)
    }

    #[test]
    fn public_url_defaults_to_the_http_address() {
        let args = FleetArgs {
            registry: Some("memory".into()),
            ..FleetArgs::default()
        };
        let s = settings(&args, "127.0.0.1:9000".parse().expect("addr"), None)
            .expect("ok")
            .expect("some");
        assert_eq!(s.public_url, "http://127.0.0.1:9000");
        assert_eq!(s.region, "default");
        assert!(settings(&args, "0.0.0.0:9000".parse().expect("addr"), None).is_err());
        let none = settings(
            &FleetArgs::default(),
            "127.0.0.1:1".parse().expect("addr"),
            None,
        )
        .expect("ok");
        assert!(none.is_none());
    }

    #[test]
    fn file_keys_apply_and_flags_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "registry = \"redis://127.0.0.1:1\"\nregion = \"eu\"\npublic_url = \"http://e.example:80\"\nhttp = \"127.0.0.1:1\"\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let args: crate::origin_cli::OriginArgs =
            role("origin", &["--config", p, "--region", "us"]).expect("layers");
        let s = settings(&args.fleet, "127.0.0.1:1".parse().expect("addr"), None)
            .expect("ok")
            .expect("some");
        assert_eq!(s.region, "us");
        assert_eq!(s.public_url, "http://e.example:80");
        assert_eq!(s.registry, "redis://127.0.0.1:1");
    }

    fn router(argv: &[&str]) -> Result<fleet::router::RouterConfig> {
        router_config(&role::<RouterArgs>("router", argv)?)
    }

    #[test]
    fn router_flags_are_checked() {
        assert!(router(&[]).is_err());
        let c = router(&[
            "--edge",
            "eu=http://127.0.0.1:1",
            "--edge",
            "http://127.0.0.1:2",
            "--region-map",
            "127.0.0.0/8=eu",
            "--region-fallback",
            "eu=us",
        ])
        .expect("config");
        assert_eq!(c.policy.fallback.get("eu").map(Vec::len), Some(1));
        assert!(router(&["--edge", "ftp://x"]).is_err());
        assert!(router(&["--edge", "http://x", "--region-map", "nonsense"]).is_err());
    }
}
