//! JSON API and operational endpoints: `/api/v1/streams`, `/api/v1/keys`,
//! `/api/v1/time` (DASH UTCTiming) and `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Serialize;

use super::AppState;
use crate::live::manifest::bitrate;
use crate::live::StreamState;

#[derive(Serialize)]
struct StreamsAnswer {
    streams: Vec<StreamEntry>,
}

#[derive(Serialize)]
struct StreamEntry {
    name: String,
    kind: &'static str,
    state: &'static str,
    url: String,
    dash: String,
    /// Over the fleet when the origin is in one (edges, origins, peers), else this
    /// origin's direct viewers.
    viewers: u64,
    /// The fleet's breakdown of `viewers` (per node, region, P2P, CMCD), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    audience: Option<serde_json::Value>,
    ingest_bytes: u64,
    renditions: Vec<RenditionEntry>,
}

#[derive(Serialize)]
struct RenditionEntry {
    name: String,
    codecs: String,
    width: Option<u32>,
    height: Option<u32>,
    frame_rate: Option<f64>,
    bitrate: u64,
    peak_bitrate: u64,
}

/// Live and VOD streams with their renditions.
pub async fn streams(State(state): State<AppState>) -> Json<serde_json::Value> {
    let mut out = Vec::new();
    for s in state.streams.list() {
        let renditions = s
            .renditions
            .iter()
            .map(|r| {
                let info = r.info.read().clone();
                let (peak, avg) = bitrate(&r.store.read());
                RenditionEntry {
                    name: r.name.clone(),
                    codecs: info.codecs(),
                    width: info
                        .video
                        .as_ref()
                        .and_then(|v| v.dimensions())
                        .map(|d| d.0),
                    height: info
                        .video
                        .as_ref()
                        .and_then(|v| v.dimensions())
                        .map(|d| d.1),
                    frame_rate: info.frame_rate,
                    bitrate: avg,
                    peak_bitrate: peak,
                }
            })
            .collect();
        let audience = state.streams.audience(&s.name);
        out.push(StreamEntry {
            url: format!("/live/{}/index.m3u8", s.name),
            dash: format!("/live/{}/index.mpd", s.name),
            name: s.name.clone(),
            kind: "live",
            state: match s.state() {
                StreamState::Live => "live",
                StreamState::Interrupted(_) => "interrupted",
                StreamState::Ended(_) => "ended",
            },
            viewers: audience.as_ref().map_or(s.viewers() as u64, |a| a.viewers),
            audience: audience.map(|a| a.detail),
            ingest_bytes: s.ingest_bytes.load(std::sync::atomic::Ordering::Relaxed),
            renditions,
        });
    }
    let mut value = serde_json::to_value(StreamsAnswer { streams: out }).unwrap_or_default();
    if let (Some(lib), Some(list)) = (
        &state.vod,
        value.get_mut("streams").and_then(|v| v.as_array_mut()),
    ) {
        for name in lib.list() {
            list.push(serde_json::json!({
                "name": name,
                "kind": "vod",
                "state": "vod",
                "url": format!("/vod/{name}/index.m3u8"),
                "dash": format!("/vod/{name}/index.mpd"),
                "renditions": [],
            }));
        }
    }
    metrics::gauge!("mediamesh_live_streams").set(state.streams.list().len() as f64);
    Json(value)
}

/// The public key that signs digest lists.
pub async fn keys(State(state): State<AppState>) -> Json<serde_json::Value> {
    let pk = state.signer.public_key();
    Json(serde_json::json!({
        "keys": [{
            "kid": state.signer.kid(),
            "alg": "Ed25519",
            "public_key": base64::engine::general_purpose::STANDARD.encode(pk.as_bytes()),
            "public_key_hex": hex::encode(pk.as_bytes()),
        }]
    }))
}

/// Server time in ISO 8601 (DASH UTCTiming http-iso).
pub async fn time() -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        media::dash::format_iso8601_ms(crate::live::store::unix_ms()),
    )
        .into_response()
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let streams = state.streams.list();
    metrics::gauge!("mediamesh_live_streams").set(streams.len() as f64);
    let viewers: usize = streams.iter().map(|s| s.viewers()).sum();
    metrics::gauge!("mediamesh_viewers").set(viewers as f64);
    let bytes: usize = streams
        .iter()
        .flat_map(|s| s.renditions.iter())
        .map(|r| r.store.bytes())
        .sum();
    metrics::gauge!("mediamesh_store_bytes").set(bytes as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}
