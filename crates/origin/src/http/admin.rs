//! The write API (`/api/v1/…` admin routes): kick a publisher, add, list and revoke
//! publish keys, turn P2P off and on per stream, start and stop recording a stream,
//! delete a recording; and what guards it: a bearer token
//! compared in constant time (401 without one, 403 with a wrong one), JSON bodies that
//! are bounded and parsed strictly (unknown fields refused), errors as JSON.
//!
//! In a fleet with Redis (`Streams::fleet_control`), every change is written to the
//! fleet first and made here second (a change Redis did not take answers `503` and
//! changes nothing); a kick of a stream held by another origin answers `202`.
//!
//! Not here: where the routes listen (the binary mounts them on the admin listener, or
//! on the HTTP port with the same token) and what P2P off does to a tracker (the
//! binary hands [`Streams::p2p_off`](crate::live::Streams::p2p_off) to one).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::live::keys::KeyError;
use crate::live::KickError;
use crate::record::RecordError;

/// Largest JSON body the write API reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// The admin token. Its `Debug` does not show it.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

/// Why a token was not accepted as the admin token.
#[derive(Debug, thiserror::Error)]
#[error(
    "the admin token must be at least {MIN_TOKEN_LEN} characters of visible ASCII without spaces"
)]
pub struct WeakToken;

impl AdminToken {
    /// A token of at least [`MIN_TOKEN_LEN`] visible ASCII characters.
    pub fn new(token: &str) -> Result<Self, WeakToken> {
        if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(WeakToken);
        }
        Ok(Self(token.to_string()))
    }

    /// The token itself, to hand to a listener that checks it (never to a log).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `got` is the token, in time that does not depend on where they differ.
    pub fn matches(&self, got: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(got).into()
    }
}

/// What the guard decided about a request's `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// No bearer token: 401.
    Missing,
    /// A token, not the right one: 403.
    Wrong,
}

/// Judges an `Authorization` header against `token`.
pub fn access(token: &AdminToken, authorization: Option<&HeaderValue>) -> Access {
    let Some(v) = authorization else {
        return Access::Missing;
    };
    let bytes = v.as_bytes();
    let Some(scheme) = bytes.get(..7) else {
        return Access::Missing;
    };
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return Access::Missing;
    }
    if token.matches(bytes[7..].trim_ascii()) {
        Access::Granted
    } else {
        Access::Wrong
    }
}

/// An error answer of the write API: `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut r = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mediamesh admin\""),
            );
        }
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}

/// Parses a JSON body strictly: the type's own rules (request types refuse unknown
/// fields), a clear error naming what was wrong. Also what the fuzz target drives.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the request body is not what this endpoint takes: {e}"),
        )
    })
}

/// A JSON body: `Content-Type: application/json`, at most [`MAX_BODY_BYTES`], parsed
/// with [`parse_json`].
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not_json",
                "send the body as Content-Type: application/json",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the request body is over {MAX_BODY_BYTES} bytes or broken"),
                )
            })?;
        parse_json(&bytes).map(StrictJson)
    }
}

/// Body of `POST /api/v1/publish-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    pub stream: String,
    /// The secret; left out, one is generated.
    #[serde(default)]
    pub key: Option<String>,
}

/// Body of `PUT /api/v1/streams/{stream}/p2p`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetP2p {
    pub enabled: bool,
}

/// What the write API offers besides kicks and keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    /// A tracker runs in this process and follows `Streams::p2p_off`: the P2P
    /// switch routes are mounted.
    pub p2p: bool,
}

/// Path prefixes of the write API (for a listener that routes by prefix).
pub const PREFIXES: &[&str] = &[
    "/api/v1/streams/",
    "/api/v1/publish-keys",
    "/api/v1/recordings/",
];

/// The write API's routes, behind the token guard.
pub fn routes(state: AppState, token: AdminToken, features: Features) -> Router {
    let mut r = Router::new()
        .route("/api/v1/streams/{stream}/kick", post(kick))
        .route("/api/v1/publish-keys", get(list_keys).post(add_key))
        .route("/api/v1/publish-keys/{stream}", delete(revoke_stream_keys))
        .route("/api/v1/publish-keys/{stream}/{id}", delete(revoke_key))
        .route(
            "/api/v1/streams/{stream}/recording",
            get(get_recording)
                .post(start_recording)
                .delete(stop_recording),
        )
        .route("/api/v1/recordings/{name}", delete(delete_recording));
    if features.p2p {
        r = r.route("/api/v1/streams/{stream}/p2p", get(get_p2p).put(set_p2p));
    } else {
        // An origin alone has no tracker to follow the switch; in a Redis fleet the
        // fleet's trackers follow it (see `Streams::fleet_control`).
        r = r.route(
            "/api/v1/streams/{stream}/p2p",
            get(fleet_get_p2p).put(fleet_set_p2p),
        );
    }
    guard(r.with_state(state), token)
}

/// Puts `router` behind the admin token.
pub fn guard(router: Router, token: AdminToken) -> Router {
    router.layer(middleware::from_fn_with_state(Arc::new(token), check_token))
}

/// The client address, for the log line of an action.
fn client(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

async fn check_token(State(token): State<Arc<AdminToken>>, req: Request, next: Next) -> Response {
    match access(&token, req.headers().get(header::AUTHORIZATION)) {
        Access::Granted => next.run(req).await,
        Access::Missing => {
            metrics::counter!("mediamesh_admin_denied_total", "reason" => "missing").increment(1);
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this is the admin API: send the admin token as `Authorization: Bearer TOKEN` (see --admin-token)",
            )
            .into_response()
        }
        Access::Wrong => {
            metrics::counter!("mediamesh_admin_denied_total", "reason" => "wrong").increment(1);
            tracing::warn!(client = %client(&req), path = %req.uri().path(), "admin request with a wrong token refused");
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", "wrong admin token").into_response()
        }
    }
}

fn ok(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The client's address, for the log line of an action (empty when unknown).
pub struct Client(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_default(),
        ))
    }
}

/// The answer when the fleet's store did not take a change (nothing changed).
fn fleet_down(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "fleet_unavailable",
        format!("the fleet's registry did not take the change ({e}); nothing changed: retry when it is back"),
    )
}

async fn kick(
    State(state): State<AppState>,
    Client(who): Client,
    Path(stream): Path<String>,
) -> Result<Response, ApiError> {
    let local = state.streams.kick(&stream);
    // In a fleet the publisher may be on another origin: every origin reads kicks.
    let fleet = match state.streams.fleet_control() {
        Some(f) if crate::live::name::valid_name(&stream) => Some(f.kick(&stream).await),
        _ => None,
    };
    let elsewhere = matches!(fleet, Some(Ok(())))
        && state
            .streams
            .directory()
            .is_some_and(|d| !d.holders(&stream).is_empty());
    match local {
        Ok(()) => {
            tracing::info!(client = %who, stream = %stream, "admin: publisher kicked");
            metrics::counter!("mediamesh_admin_actions_total", "action" => "kick").increment(1);
            Ok(ok(
                StatusCode::OK,
                serde_json::json!({"stream": stream, "kicked": true}),
            ))
        }
        Err(_) if elsewhere => {
            tracing::info!(client = %who, stream = %stream, "admin: publisher kicked on another origin of the fleet");
            metrics::counter!("mediamesh_admin_actions_total", "action" => "kick").increment(1);
            Ok(ok(
                StatusCode::ACCEPTED,
                serde_json::json!({"stream": stream, "kicked": true, "fleet": true}),
            ))
        }
        Err(e @ KickError::NoSuchStream(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_stream",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_kickable",
            e.to_string(),
        )),
    }
}

async fn list_keys(State(state): State<AppState>) -> Response {
    let keys = state.streams.keys();
    ok(
        StatusCode::OK,
        serde_json::json!({"require_keys": keys.require_keys(), "streams": keys.list()}),
    )
}

async fn add_key(
    State(state): State<AppState>,
    Client(who): Client,
    StrictJson(body): StrictJson<AddKey>,
) -> Result<Response, ApiError> {
    let keys = state.streams.keys();
    let added = match keys.prepare(&body.stream, body.key) {
        Ok((entry, secret)) => match state.streams.fleet_control() {
            Some(fleet) => match fleet.add_key(&body.stream, &entry).await {
                Ok(true) => {
                    // The fleet's sync may have brought it here already.
                    let _ = keys.insert(&body.stream, entry.clone());
                    Ok((entry, secret))
                }
                Ok(false) => Err(KeyError::Exists(body.stream.clone())),
                Err(e) => return Err(fleet_down(e)),
            },
            None => keys
                .insert(&body.stream, entry.clone())
                .map(|()| (entry, secret)),
        },
        Err(e) => Err(e),
    };
    match added {
        Ok((key, secret)) => {
            tracing::info!(client = %who, stream = %body.stream, id = %key.id, "admin: publish key added");
            metrics::counter!("mediamesh_admin_actions_total", "action" => "add_key").increment(1);
            Ok(ok(
                StatusCode::CREATED,
                serde_json::json!({"stream": body.stream, "id": key.id, "key": secret}),
            ))
        }
        Err(e) => {
            let (status, code) = match e {
                KeyError::Exists(_) => (StatusCode::CONFLICT, "exists"),
                KeyError::TooMany => (StatusCode::INSUFFICIENT_STORAGE, "too_many"),
                KeyError::BadName(_) | KeyError::BadSecret(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "invalid")
                }
            };
            Err(ApiError::new(status, code, e.to_string()))
        }
    }
}

async fn revoked(
    state: &AppState,
    who: &str,
    stream: &str,
    id: Option<&str>,
) -> Result<Response, ApiError> {
    let fleet = match state.streams.fleet_control() {
        Some(f) if crate::live::name::valid_name(stream) => {
            Some(f.revoke_keys(stream, id).await.map_err(fleet_down)?)
        }
        _ => None,
    };
    let here = state.streams.keys().revoke(stream, id) as u64;
    let n = fleet.unwrap_or(here).max(here);
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_key",
            format!("stream {stream:?} has no such publish key"),
        ));
    }
    tracing::info!(client = %who, stream = %stream, id = id.unwrap_or("all"), revoked = n, "admin: publish keys revoked");
    metrics::counter!("mediamesh_admin_actions_total", "action" => "revoke_key").increment(1);
    Ok(ok(
        StatusCode::OK,
        serde_json::json!({"stream": stream, "revoked": n}),
    ))
}

async fn revoke_stream_keys(
    State(state): State<AppState>,
    Client(who): Client,
    Path(stream): Path<String>,
) -> Result<Response, ApiError> {
    revoked(&state, &who, &stream, None).await
}

async fn revoke_key(
    State(state): State<AppState>,
    Client(who): Client,
    Path((stream, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    revoked(&state, &who, &stream, Some(&id)).await
}

async fn get_p2p(State(state): State<AppState>, Path(stream): Path<String>) -> Response {
    let on = state.streams.p2p_enabled(&stream);
    ok(
        StatusCode::OK,
        serde_json::json!({"stream": stream, "p2p": on}),
    )
}

fn no_fleet() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_tracker",
        "no tracker follows this origin's P2P switch: it works on `serve` and on origins that share a Redis registry (--registry redis://…) with their trackers",
    )
}

async fn fleet_get_p2p(
    State(state): State<AppState>,
    path: Path<String>,
) -> Result<Response, ApiError> {
    if state.streams.fleet_control().is_none() {
        return Err(no_fleet());
    }
    Ok(get_p2p(State(state), path).await)
}

async fn fleet_set_p2p(
    State(state): State<AppState>,
    who: Client,
    path: Path<String>,
    body: StrictJson<SetP2p>,
) -> Result<Response, ApiError> {
    if state.streams.fleet_control().is_none() {
        return Err(no_fleet());
    }
    set_p2p(State(state), who, path, body).await
}

async fn set_p2p(
    State(state): State<AppState>,
    Client(who): Client,
    Path(stream): Path<String>,
    StrictJson(body): StrictJson<SetP2p>,
) -> Result<Response, ApiError> {
    if let Some(fleet) = state.streams.fleet_control() {
        if crate::live::name::valid_name(&stream) {
            fleet
                .set_p2p(&stream, body.enabled)
                .await
                .map_err(fleet_down)?;
        }
    }
    state
        .streams
        .set_p2p(&stream, body.enabled)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?;
    tracing::info!(client = %who, stream = %stream, p2p = body.enabled, "admin: P2P switched");
    metrics::counter!("mediamesh_admin_actions_total", "action" => "p2p").increment(1);
    Ok(ok(
        StatusCode::OK,
        serde_json::json!({"stream": stream, "p2p": body.enabled}),
    ))
}

fn record_error(e: RecordError) -> ApiError {
    match e {
        RecordError::BadStreamName(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
        }
        RecordError::NoSuchRecording(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "no_such_recording", e.to_string())
        }
        RecordError::Busy(_) => ApiError::new(StatusCode::CONFLICT, "recording", e.to_string()),
        RecordError::TooMany(_) => {
            ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "too_many", e.to_string())
        }
        RecordError::Io { .. } | RecordError::Corrupt { .. } => {
            tracing::error!(error = %e, "recording operation failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "io",
                "the recording operation failed on the server's disk (see its log)",
            )
        }
    }
}

/// Whether `stream` is recorded and what it writes now.
fn recording_status(state: &AppState, stream: &str) -> serde_json::Value {
    let now = state
        .recordings
        .active()
        .into_iter()
        .find(|(s, _)| s == stream)
        .and_then(|(_, r)| r);
    serde_json::json!({
        "stream": stream,
        "record": state.recordings.wanted(stream),
        "recording": now,
    })
}

async fn get_recording(
    State(state): State<AppState>,
    Path(stream): Path<String>,
) -> Result<Response, ApiError> {
    if !crate::live::name::valid_name(&stream) {
        return Err(record_error(RecordError::BadStreamName(stream)));
    }
    Ok(ok(StatusCode::OK, recording_status(&state, &stream)))
}

async fn start_recording(
    State(state): State<AppState>,
    Client(who): Client,
    Path(stream): Path<String>,
) -> Result<Response, ApiError> {
    // In a fleet the stream may be published to another origin: every origin reads
    // the switch, and the fleet is written first (nothing changes if it fails).
    if let Some(f) = state.streams.fleet_control() {
        if !crate::live::name::valid_name(&stream) {
            return Err(record_error(RecordError::BadStreamName(stream)));
        }
        f.set_record(&stream, true).await.map_err(fleet_down)?;
    }
    let started = state
        .recordings
        .start(&stream, &state.streams)
        .map_err(record_error)?;
    tracing::info!(client = %who, stream = %stream, live = started.live, "admin: recording switched on");
    metrics::counter!("mediamesh_admin_actions_total", "action" => "record_start").increment(1);
    let mut body = recording_status(&state, &stream);
    if let Some(o) = body.as_object_mut() {
        o.insert("live".into(), started.live.into());
    }
    Ok(ok(
        if started.already {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        },
        body,
    ))
}

async fn stop_recording(
    State(state): State<AppState>,
    Client(who): Client,
    Path(stream): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(f) = state.streams.fleet_control() {
        if !crate::live::name::valid_name(&stream) {
            return Err(record_error(RecordError::BadStreamName(stream)));
        }
        f.set_record(&stream, false).await.map_err(fleet_down)?;
    }
    let finishing = state.recordings.stop(&stream).map_err(record_error)?;
    tracing::info!(client = %who, stream = %stream, recording = finishing.as_deref().unwrap_or(""), "admin: recording switched off");
    metrics::counter!("mediamesh_admin_actions_total", "action" => "record_stop").increment(1);
    Ok(ok(
        StatusCode::OK,
        serde_json::json!({"stream": stream, "record": false, "finishing": finishing}),
    ))
}

async fn delete_recording(
    State(state): State<AppState>,
    Client(who): Client,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.recordings.delete(&name).await.map_err(record_error)?;
    tracing::info!(client = %who, recording = %name, "admin: recording deleted");
    metrics::counter!("mediamesh_admin_actions_total", "action" => "record_delete").increment(1);
    Ok(ok(
        StatusCode::OK,
        serde_json::json!({"name": name, "deleted": true}),
    ))
}

#[cfg(test)]
mod tests;
