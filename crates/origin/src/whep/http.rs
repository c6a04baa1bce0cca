//! WHEP's HTTP face (RFC 9725 shapes): `POST /whep/{stream}` (an `application/sdp`
//! offer; `201 Created`, the answer, `Location: /whep/{stream}/{session}`), `DELETE`
//! on the Location to end a session, `PATCH` (trickle ICE) answered `405` (our answer
//! is complete and we are ICE-lite: nothing to trickle), and `OPTIONS` for CORS
//! preflight from pages of other origins.
//!
//! Not the sessions (see the parent module).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, options, post};
use axum::Router;

use super::{PlayError, Whep};
use crate::live::name::valid_name;

/// CORS for WHEP and WHIP answers (both are called from pages of other origins).
pub(crate) const CORS_HEADERS: [(header::HeaderName, &str); 4] = [
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        "POST, DELETE, PATCH, OPTIONS",
    ),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "content-type, authorization, if-match",
    ),
    (
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        "location, link, etag, accept-patch",
    ),
];

/// The page's WHEP client (`web/whep.js`), served with the routes it talks to, so a
/// server with WHEP off does not offer it.
const CLIENT: &str = include_str!("../../../../web/whep.js");

/// The WHEP routes (their own state; merge them into a router), and the page's client
/// at `/static/whep.js`.
pub fn routes(whep: Arc<Whep>) -> Router {
    Router::new()
        .route(
            "/static/whep.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    CLIENT,
                )
            }),
        )
        .route("/whep/{stream}", post(play).options(preflight))
        .route(
            "/whep/{stream}/{session}",
            options(preflight).delete(stop).patch(patch),
        )
        .with_state(whep)
}

/// A plain-text answer with CORS headers (WHEP and WHIP).
pub(crate) fn text(status: StatusCode, message: &str) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response();
    cors(&mut res);
    res
}

pub(crate) fn cors(res: &mut Response) {
    for (k, v) in CORS_HEADERS {
        res.headers_mut().insert(k, HeaderValue::from_static(v));
    }
}

/// `OPTIONS` on a WHEP or WHIP resource.
pub(crate) async fn preflight() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    cors(&mut res);
    res.headers_mut().insert(
        header::HeaderName::from_static("accept-post"),
        HeaderValue::from_static("application/sdp"),
    );
    res
}

/// Whether the request's body is declared `application/sdp` (parameters ignored).
pub(crate) fn is_sdp(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/sdp")
        })
        .unwrap_or(false)
}

async fn play(
    State(whep): State<Arc<Whep>>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let refused = |reason: &'static str| {
        metrics::counter!("mediamesh_whep_refused_total", "reason" => reason).increment(1);
    };
    if !is_sdp(&headers) {
        refused("content_type");
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the SDP offer with Content-Type: application/sdp",
        );
    }
    if !valid_name(&stream) {
        refused("no_stream");
        return text(StatusCode::NOT_FOUND, "no such stream name");
    }
    let max = whep.config().max_offer_bytes;
    let offer = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(_) => {
            refused("too_large");
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("SDP offer larger than {max} bytes (or the upload broke off)"),
            );
        }
    };
    match whep.play(&stream, &offer) {
        Ok(answer) => {
            let location = format!("/whep/{stream}/{}", answer.session);
            let mut res = (StatusCode::CREATED, answer.sdp).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            cors(&mut res);
            res
        }
        Err(e) => {
            let status = match &e {
                PlayError::Offer(super::OfferError::TooLarge { .. }) => {
                    refused("too_large");
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                PlayError::Offer(_) | PlayError::Sdp(_) | PlayError::Answer(_) => {
                    refused("bad_offer");
                    StatusCode::BAD_REQUEST
                }
                PlayError::NoStream(_) => {
                    refused("no_stream");
                    StatusCode::NOT_FOUND
                }
                PlayError::TooMany(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            tracing::debug!(stream, error = %e, "WHEP offer refused");
            let mut res = text(status, &e.to_string());
            if status == StatusCode::SERVICE_UNAVAILABLE {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            res
        }
    }
}

async fn stop(
    State(whep): State<Arc<Whep>>,
    Path((stream, session)): Path<(String, String)>,
) -> Response {
    if whep.stop(&stream, &session) {
        text(StatusCode::OK, "session ended")
    } else {
        text(StatusCode::NOT_FOUND, "no such WHEP session")
    }
}

/// `PATCH` (trickle ICE) on a WHEP or WHIP session: refused, the answer is complete.
pub(crate) async fn patch() -> Response {
    let mut res = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE is not supported: the answer carries every candidate",
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    res
}
