//! WHIP's HTTP face (RFC 9725): `POST /whip/{stream}` (an `application/sdp` offer,
//! `Authorization: Bearer KEY` when the stream has a publish key; `201 Created`, the
//! answer, `Location: /whip/{stream}/{session}`), `DELETE` on the Location to end the
//! publish, `PATCH` (trickle ICE) answered `405` (our answer is complete and we are
//! ICE-lite), and `OPTIONS` for CORS preflight from pages of other origins. `GET
//! /whip/` is a page that publishes the browser's camera (`web/whip.html`).
//!
//! Not the sessions (see the parent module).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, options, post};
use axum::Router;

use super::{Whip, WhipError};
use crate::live::name::valid_name;
use crate::whep::http::{cors, is_sdp, patch, preflight, text};

/// The page that publishes this browser's camera (`web/whip.html`), served with the
/// routes it talks to, so a server with WHIP off does not offer it.
const PAGE: &str = include_str!("../../../../web/whip.html");

/// The WHIP routes (their own state; merge them into a router), and the publishing
/// page at `/whip/` (`?stream=NAME`).
pub fn routes(whip: Arc<Whip>) -> Router {
    Router::new()
        .route(
            "/whip/",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    PAGE,
                )
            }),
        )
        .route("/whip/{stream}", post(publish).options(preflight))
        .route(
            "/whip/{stream}/{session}",
            options(preflight).delete(stop).patch(patch),
        )
        .with_state(whip)
}

/// The bearer token of `headers`, if any (RFC 6750: scheme case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The HTTP status of a refusal, and the metric's reason.
fn status_of(e: &WhipError) -> (StatusCode, &'static str) {
    match e {
        WhipError::Offer(super::OfferError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        }
        WhipError::Offer(_) | WhipError::Sdp(_) | WhipError::Answer(_) => {
            (StatusCode::BAD_REQUEST, "bad_offer")
        }
        WhipError::BadName(_) => (StatusCode::NOT_FOUND, "bad_name"),
        WhipError::NoKey(_) => (StatusCode::UNAUTHORIZED, "no_key"),
        WhipError::BadKey(_) => (StatusCode::FORBIDDEN, "bad_key"),
        WhipError::Hook(_) => (StatusCode::FORBIDDEN, "hook"),
        WhipError::AlreadyLive(_) => (StatusCode::CONFLICT, "already_live"),
        WhipError::TooManyStreams(_) | WhipError::TooMany(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "limit")
        }
    }
}

async fn publish(
    State(whip): State<Arc<Whip>>,
    Path(stream): Path<String>,
    req: Request,
) -> Response {
    let refused = |reason: &'static str| {
        metrics::counter!("mediamesh_whip_refused_total", "reason" => reason).increment(1);
        metrics::counter!("mediamesh_publish_refused_total").increment(1);
    };
    let (parts, body) = req.into_parts();
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !is_sdp(&parts.headers) {
        refused("content_type");
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the SDP offer with Content-Type: application/sdp",
        );
    }
    if !valid_name(&stream) {
        refused("bad_name");
        return text(StatusCode::NOT_FOUND, "not a valid stream name");
    }
    let max = whip.config().max_offer_bytes;
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
    let key = bearer(&parts.headers);
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| h.len() <= 255 && !h.contains(['/', '?', '#', '@']));
    match whip.publish(&stream, key, &offer, ip, host).await {
        Ok(answer) => {
            let location = format!("/whip/{stream}/{}", answer.session);
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
            let (status, reason) = status_of(&e);
            refused(reason);
            // Key and hook refusals are worth a line (someone tries to publish); bad
            // offers are the client's bug and can be floods.
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                tracing::warn!(stream, %ip, error = %e, "whip publish refused");
            } else {
                tracing::debug!(stream, %ip, error = %e, "whip publish refused");
            }
            let mut res = text(status, &e.to_string());
            let h = res.headers_mut();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            if status == StatusCode::UNAUTHORIZED {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"whip\""),
                );
            }
            res
        }
    }
}

async fn stop(
    State(whip): State<Arc<Whip>>,
    Path((stream, session)): Path<(String, String)>,
) -> Response {
    if whip.stop(&stream, &session) {
        text(StatusCode::OK, "publish ended")
    } else {
        text(StatusCode::NOT_FOUND, "no such WHIP session")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_the_publish_key() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert_eq!(bearer(&h), Some("s3cret"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  k "),
        );
        assert_eq!(bearer(&h), Some("k"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }
}
