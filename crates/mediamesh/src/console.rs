//! The operator console: the page at `/console` (with its script, style and the
//! vendored uPlot, all compiled into the binary from `web/`), and the read-only JSON
//! it polls, `GET /api/v1/console/{info,streams,fleet,delivery}`, behind the admin
//! token like the write API.
//!
//! Where it is mounted is the roles' business (`origin_cli`, `fleet_cli`): on the
//! `--admin` listener when there is one, else where the write API lives; never on an
//! edge's or the router's viewer side. The page itself loads without a token; every
//! call it makes sends the token the operator typed (kept in `sessionStorage`).
//!
//! What it is not: a second write API (the page's buttons call the existing
//! `/api/v1/…` write routes), nor where viewers are counted (edges and origins report
//! them to the registry, `fleet::viewers` sums them; the streams answer shows the
//! totals the origin's audience source gives).

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fleet::registry::membership::View;
use origin::http::admin::AdminToken;
use origin::live::StreamState;
use serde::Serialize;
use serde_json::json;

use crate::console_delivery::Delivery;

/// Path prefixes of the console (page and its API), for a listener that routes by
/// prefix (`serve` without `--admin`).
pub const PREFIXES: &[&str] = &["/console", "/api/v1/console/"];

/// Which write routes sit next to the console, so the page shows only the buttons
/// that work here.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Actions {
    pub kick: bool,
    pub keys: bool,
    pub p2p: bool,
    pub drain: bool,
}

/// What the console reads. The parts that exist only once the role has started are
/// set later, once (`OnceLock`); until then the answers leave them out.
#[derive(Default)]
pub struct Console {
    /// `serve`, `origin` or `router`.
    pub role: &'static str,
    /// The live streams (serve, origin).
    pub streams: OnceLock<Arc<origin::live::Streams>>,
    /// The registry as this process sees it (serve, origin with `--registry`, router).
    pub view: OnceLock<Arc<View>>,
    /// The registry's name for people (`memory`, a Redis URL without password).
    pub registry: Option<String>,
    /// Router: the edges being drained and the probe results.
    pub drains: Option<Arc<fleet::router::server::Drains>>,
    pub health: Option<Arc<fleet::router::health::Health>>,
    /// Base URL viewers play from (previews), e.g. `http://127.0.0.1:8080`; unset,
    /// the page plays from its own origin.
    pub play_base: OnceLock<String>,
    /// This process's edge cache hit ratio, when an edge runs in it (serve).
    pub hit_ratio: OnceLock<HitRatio>,
    pub actions: Actions,
    /// Seconds between delivery samples.
    pub interval_seconds: f64,
    pub delivery: Arc<Delivery>,
    /// An edge runs in this process (edge bytes and CMCD are counted here).
    pub has_edge: bool,
    /// A tracker runs in this process (P2P bytes are counted here).
    pub has_tracker: bool,
}

/// Reads a cache hit ratio (0.0–1.0), `None` before the first lookup.
pub type HitRatio = Arc<dyn Fn() -> Option<f64> + Send + Sync>;

/// Seconds between delivery samples.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

impl Console {
    /// A console for `role` offering `actions`, sampling every [`INTERVAL`].
    pub fn new(role: &'static str, actions: Actions) -> Self {
        Console {
            role,
            actions,
            interval_seconds: INTERVAL.as_secs_f64(),
            ..Console::default()
        }
    }
}

/// The value of an unlabelled gauge `name` in a Prometheus page.
pub fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The console's routes: the page (no token) and its API (behind `token`).
pub fn routes(console: Arc<Console>, token: AdminToken) -> Router {
    let api = Router::new()
        .route("/api/v1/console/info", get(info))
        .route("/api/v1/console/streams", get(streams))
        .route("/api/v1/console/fleet", get(fleet))
        .route("/api/v1/console/delivery", get(delivery))
        .with_state(console);
    pages().merge(origin::http::admin::guard(api, token))
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// The embedded files of the page, by URL path.
const FILES: [(&str, &str, &str); 7] = [
    ("/console", HTML, include_str!("../../../web/console.html")),
    ("/console/", HTML, include_str!("../../../web/console.html")),
    (
        "/console/console.js",
        JS,
        include_str!("../../../web/console.js"),
    ),
    (
        "/console/console.css",
        CSS,
        include_str!("../../../web/console.css"),
    ),
    (
        "/console/uplot.min.js",
        JS,
        include_str!("../../../web/vendor/uplot.min.js"),
    ),
    (
        "/console/uplot.min.css",
        CSS,
        include_str!("../../../web/vendor/uplot.min.css"),
    ),
    (
        "/console/uplot.LICENSE",
        TEXT,
        include_str!("../../../web/vendor/uplot.LICENSE"),
    ),
];

fn pages() -> Router {
    FILES
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                            (
                                header::HeaderName::from_static("x-frame-options"),
                                HeaderValue::from_static("DENY"),
                            ),
                        ],
                        body,
                    )
                }),
            )
        })
}

fn no_store(v: serde_json::Value) -> Response {
    let mut r = Json(v).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn info(State(c): State<Arc<Console>>) -> Response {
    no_store(json!({
        "role": c.role,
        "actions": c.actions,
        "registry": c.registry,
        "play_base": c.play_base.get(),
        "interval_seconds": c.interval_seconds,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Seconds between the newest media the origin holds and now (how far the origin's
/// live edge trails the wall clock); `None` before the first part.
fn media_age_seconds(t: &origin::live::store::Timeline, now_ms: u64) -> Option<f64> {
    let end_ms = match &t.open {
        Some(open) if !open.parts.is_empty() => {
            let d: f64 = open.parts.iter().map(|p| p.duration).sum();
            open.pdt_ms as f64 + d * 1000.0
        }
        _ => {
            let s = t.segments.back()?;
            s.pdt_ms as f64 + s.duration * 1000.0
        }
    };
    Some(((now_ms as f64 - end_ms) / 1000.0).max(0.0))
}

async fn streams(State(c): State<Arc<Console>>) -> Response {
    let Some(streams) = c.streams.get() else {
        return no_store(json!({
            "streams": [],
            "notes": ["this role packages no streams (see the origins in the fleet view)"],
        }));
    };
    let now = origin::live::store::unix_ms();
    let mut out = Vec::new();
    for s in streams.list() {
        let mut age: Option<f64> = None;
        let mut total_bitrate = 0u64;
        let renditions: Vec<_> = s
            .renditions
            .iter()
            .map(|r| {
                let info = r.info.read().clone();
                let t = r.store.read();
                let (peak, avg) = origin::live::manifest::bitrate(&t);
                total_bitrate = total_bitrate.saturating_add(avg);
                if let Some(a) = media_age_seconds(&t, now) {
                    age = Some(age.map_or(a, |b: f64| b.min(a)));
                }
                json!({
                    "name": r.name,
                    "codecs": info.codecs(),
                    "width": info.video.as_ref().and_then(|v| v.dimensions()).map(|d| d.0),
                    "height": info.video.as_ref().and_then(|v| v.dimensions()).map(|d| d.1),
                    "frame_rate": info.frame_rate,
                    "bitrate": avg,
                    "peak_bitrate": peak,
                })
            })
            .collect();
        let play = format!("/live/{}/index.m3u8", s.name);
        let audience = streams.audience(&s.name);
        out.push(json!({
            "name": s.name,
            "state": match s.state() {
                StreamState::Live => "live",
                StreamState::Interrupted(_) => "interrupted",
                StreamState::Ended(_) => "ended",
            },
            "source": s.source(),
            "p2p": c.actions.p2p.then(|| streams.p2p_enabled(&s.name)),
            "viewers": audience.as_ref().map_or(s.viewers() as u64, |a| a.viewers),
            "audience": audience.map(|a| a.detail),
            "ingest_bytes": s.ingest_bytes.load(std::sync::atomic::Ordering::Relaxed),
            "bitrate": total_bitrate,
            "media_age_seconds": age,
            "renditions": renditions,
            "url": play,
            "play_url": c.play_base.get().map(|b| format!("{b}{play}")),
        }));
    }
    no_store(json!({
        "streams": out,
        "notes": [
            "viewers: with a registry, player sessions (CMCD sid, else address + User-Agent) that fetched the stream from any edge or directly from an origin in the last 15 s, summed over the fleet; P2P viewers fetch playlists from edges too, so tracker peers count only where they outnumber the sessions (viewers = max(http_sessions, p2p_peers)); audience holds the breakdown per node and region. Without a registry: distinct addresses that fetched from this origin",
            "media_age_seconds: how far the newest media the origin holds trails the wall clock (packaging delay), not a player's latency",
        ],
    }))
}

async fn fleet(State(c): State<Arc<Console>>) -> Response {
    let Some(view) = c.view.get() else {
        return no_store(json!({
            "registry": null,
            "nodes": [],
            "notes": ["no registry: start with --registry redis://HOST:PORT to see a fleet"],
        }));
    };
    let now = fleet::registry::now_ms();
    let local_hit = c.hit_ratio.get().and_then(|f| f());
    let nodes: Vec<_> = view
        .nodes()
        .iter()
        .map(|n| {
            let age = now.saturating_sub(n.updated_ms) as f64 / 1000.0;
            let probe = c
                .health
                .as_ref()
                .filter(|_| n.kind == fleet::registry::NodeKind::Edge)
                .map(|h| h.healthy(&n.public_url));
            // A record is written every heartbeat; one older than three is stale.
            let fresh = age < 15.0;
            let health = match (probe, fresh) {
                (Some(false), _) => "failing probes",
                (_, false) => "stale",
                _ => "ok",
            };
            json!({
                "id": n.id,
                "kind": n.kind,
                "region": n.region,
                "public_url": n.public_url,
                "connections": n.load.connections,
                "egress_bps": n.load.egress_bps,
                "cpu": n.load.cpu,
                "utilization": n.utilization(),
                "capacity": n.capacity,
                "streams": n.streams,
                // Viewer accounting: sessions an edge or origin counted, peers a
                // tracker holds (see fleet::viewers).
                "viewers": n.viewers.iter().map(|v| v.sessions).fold(0u64, u64::saturating_add),
                "p2p_peers": n.swarms.iter().map(|s| s.peers).fold(0u64, u64::saturating_add),
                "heartbeat_age_seconds": age,
                "health": health,
                "draining": c.drains.as_ref().map(|d| d.draining(&n.id)),
                // The registry does not carry cache hit ratios; only an edge in this
                // process is known.
                "hit_ratio": if c.has_edge && n.kind == fleet::registry::NodeKind::Edge { local_hit } else { None },
            })
        })
        .collect();
    no_store(json!({
        "registry": c.registry,
        "store_up": view.store_up(),
        "nodes": nodes,
        "notes": ["cache hit ratio: the registry does not carry it; shown only for an edge running in this process"],
    }))
}

async fn delivery(State(c): State<Arc<Console>>) -> Response {
    let (samples, last) = c.delivery.snapshot();
    let viewer_tier = if c.has_edge { "edge" } else { "origin" };
    let mut notes = vec![
        "start-up time: CMCD (CTA-5004) carries no start-up time, so none is shown".to_string(),
    ];
    if c.has_tracker {
        notes.push("p2p bytes: what peers report as uploaded in their tracker announces, so they arrive in steps at each announce (--tracker-interval); mediamesh peer reports them, browsers' p2p-media-loader sends 0".into());
    } else {
        notes.push("p2p bytes: no tracker runs in this process".into());
    }
    if c.role == "router" {
        notes.push(
            "router: origin and edge bytes are the registry's egress rates integrated over time"
                .into(),
        );
    }
    no_store(json!({
        "interval_seconds": c.interval_seconds,
        "viewer_tier": viewer_tier,
        "samples": samples,
        "totals": last.map(|l| json!({
            "origin_bytes": l.origin,
            "edge_bytes": l.edge,
            "p2p_bytes": l.p2p,
            "cmcd_requests": l.cmcd.map(|c| c.0),
            "cmcd_stalls": l.cmcd.map(|c| c.1),
        })),
        "notes": notes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_by_exact_name_only() {
        let text = "mediamesh_edge_hit_ratio_other 0.1\nmediamesh_edge_hit_ratio 0.625\n";
        assert_eq!(gauge(text, "mediamesh_edge_hit_ratio"), Some(0.625));
        assert_eq!(gauge(text, "mediamesh_missing"), None);
        assert_eq!(
            gauge(
                "mediamesh_edge_hit_ratio nan-ish\n",
                "mediamesh_edge_hit_ratio"
            ),
            None
        );
    }

    #[test]
    fn every_page_file_is_under_the_console_prefix() {
        // The prefix list is what `serve` routes to the console without --admin.
        for (path, _, body) in FILES {
            assert!(path.starts_with(PREFIXES[0]), "{path}");
            assert!(!body.is_empty(), "{path}");
        }
    }
}
