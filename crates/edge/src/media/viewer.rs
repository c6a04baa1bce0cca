//! The per-viewer media functions applied to one answer (logic in the sibling modules):
//! A/B watermark variant selection on segment requests (the upstream path, and so the
//! cache key, becomes `…/A/segN.m4s` or `…/B/segN.m4s` by the viewer's signed token),
//! and per-viewer playlists on the way out (ad breaks filled from the configured ad
//! pod, renditions above the viewer's CMCD top bit rate or device class left out).
//! Playlists are cached as the origin made them and personalised per answer.
//!
//! Both plug into the request path as one hook ([`MediaHook`], see `phase`).
//!
//! Not here: the playlist and token logic itself.

use super::renditions::{self, DeviceRule};
use super::ssai::{self, AdPod};
use super::watermark;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::phase::{Hook, HookFuture, Phases, Session};
use crate::response::{full, text, Body};

/// Settings of the media functions; all off by default.
#[derive(Debug, Clone, Default)]
pub struct MediaFunctions {
    /// Key of A/B watermark tokens; `Some` = media segments need one.
    pub watermark_key: Option<Vec<u8>>,
    /// Query parameter (also header `x-watermark-token`) carrying the token.
    pub watermark_param: String,
    /// Fills SCTE-35 ad breaks of media playlists.
    pub ad_pod: Option<AdPod>,
    /// Device classes by User-Agent.
    pub device_rules: Vec<DeviceRule>,
    /// Leave out renditions above CMCD `tb`.
    pub cmcd_renditions: bool,
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// Why a media segment request was refused by the A/B watermark (403 either way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatermarkError {
    /// No token in the query parameter or the `x-watermark-token` header.
    #[error("a watermark token is required ({param} parameter)")]
    Missing { param: String },
    /// The token is malformed, forged or expired.
    #[error(transparent)]
    Refused(#[from] watermark::TokenError),
}

impl WatermarkError {
    /// The status the viewer gets: 403.
    pub fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    /// Whether the same request may succeed later: no (the viewer needs a new token).
    pub fn retryable(&self) -> bool {
        false
    }
}

/// For a media segment request: the variant path (`None` when the watermark is off or
/// the path is not a media segment), or why it is refused.
pub fn watermark_path(
    m: &MediaFunctions,
    path: &str,
    query: Option<&str>,
    header_token: Option<&str>,
    now: u64,
) -> Result<Option<String>, WatermarkError> {
    let Some(key) = &m.watermark_key else {
        return Ok(None);
    };
    let Some(n) = watermark::segment_number(path) else {
        return Ok(None);
    };
    let token = query_param(query, &m.watermark_param).or(header_token);
    let Some(token) = token else {
        return Err(WatermarkError::Missing {
            param: m.watermark_param.clone(),
        });
    };
    let pattern = watermark::verify(key, token, now)?;
    let variant = pattern.variant(n);
    ::metrics::counter!("mediamesh_edge_watermark_segments_total", "variant" => variant.as_str())
        .increment(1);
    Ok(watermark::variant_path(path, variant))
}

/// Personalises a playlist answer for one viewer.
pub async fn playlist(
    m: &MediaFunctions,
    res: Response<Body>,
    cmcd_top_kbps: Option<u64>,
    user_agent: Option<&str>,
    max_bytes: usize,
) -> Response<Body> {
    if res.status() != StatusCode::OK {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = match Limited::new(body, max_bytes).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let mut r = Response::new(
                Full::new(Bytes::from(format!("playlist could not be read: {e}\n")))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return r;
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Response::from_parts(parts, full(bytes));
    };
    let mut changed: Option<String> = None;
    if text.contains("#EXT-X-STREAM-INF") {
        let caps = renditions::caps(
            cmcd_top_kbps.filter(|_| m.cmcd_renditions),
            user_agent,
            &m.device_rules,
        );
        changed = renditions::filter_multivariant(text, &caps);
        if changed.is_some() {
            ::metrics::counter!("mediamesh_edge_playlists_personalised_total", "what" => "renditions")
                .increment(1);
        }
    } else if let Some(pod) = &m.ad_pod {
        if text.contains("#EXT-X-CUE-OUT") || text.contains("SCTE35-OUT") {
            changed = Some(ssai::insert_ads(text, pod));
            ::metrics::counter!("mediamesh_edge_playlists_personalised_total", "what" => "ads")
                .increment(1);
        }
    }
    let Some(new) = changed else {
        return Response::from_parts(parts, full(bytes));
    };
    parts.headers.remove(header::ETAG);
    parts.headers.remove(header::ACCEPT_RANGES);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(new.len()));
    parts.headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=1"),
    );
    Response::from_parts(parts, full(Bytes::from(new)))
}

/// The media functions as a hook of the request path (see `phase`): the A/B
/// watermark at the request phase, per-viewer playlists at the response phase.
#[derive(Debug)]
pub struct MediaHook {
    pub media: MediaFunctions,
    /// Largest playlist read for personalising.
    pub max_bytes: usize,
}

impl Hook for MediaHook {
    /// The watermark's request step only with a watermark key; the playlist step only
    /// when some personalisation is on.
    fn phases(&self) -> Phases {
        let m = &self.media;
        Phases {
            request: m.watermark_key.is_some(),
            response: m.ad_pod.is_some() || !m.device_rules.is_empty() || m.cmcd_renditions,
            ..Phases::NONE
        }
    }

    fn request<'a>(&'a self, s: &'a mut Session) -> HookFuture<'a, Option<Response<Body>>> {
        Box::pin(async move {
            self.media.watermark_key.as_ref()?;
            let hdr = s
                .req
                .headers()
                .get("x-watermark-token")
                .and_then(|v| v.to_str().ok());
            match watermark_path(
                &self.media,
                &s.path,
                s.query.as_deref(),
                hdr,
                s.now_ms / 1000,
            ) {
                Ok(Some(variant)) => {
                    s.path = variant;
                    None
                }
                Ok(None) => None,
                Err(e) => Some(text(e.status(), &e.to_string())),
            }
        })
    }

    /// No watermark key, and no personalisation a request without CMCD gets (ads,
    /// device rules) for a playlist: the request and response steps leave it alone.
    fn leaves_plain_get(&self, path: &str) -> bool {
        let m = &self.media;
        m.watermark_key.is_none()
            && !((m.ad_pod.is_some() || !m.device_rules.is_empty()) && path.ends_with(".m3u8"))
    }

    fn response<'a>(
        &'a self,
        s: &'a mut Session,
        res: Response<Body>,
    ) -> HookFuture<'a, Response<Body>> {
        Box::pin(async move {
            let m = &self.media;
            let top_kbps = s.cmcd.as_ref().and_then(|c| c.tb);
            let personalise = m.ad_pod.is_some()
                || !m.device_rules.is_empty()
                || (m.cmcd_renditions && top_kbps.is_some());
            if !(personalise && s.path.ends_with(".m3u8")) {
                return res;
            }
            let ua = s
                .req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            playlist(m, res, top_kbps, ua, self.max_bytes).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_paths() {
        let key = b"k".to_vec();
        let m = MediaFunctions {
            watermark_key: Some(key.clone()),
            watermark_param: "wm".into(),
            ..Default::default()
        };
        let t = watermark::mint(&key, &[0x80], 100);
        let q = format!("wm={t}");
        assert_eq!(
            watermark_path(&m, "/vod/a/seg0.m4s", Some(&q), None, 1),
            Ok(Some("/vod/a/B/seg0.m4s".into()))
        );
        assert_eq!(
            watermark_path(&m, "/vod/a/seg1.m4s", None, Some(&t), 1),
            Ok(Some("/vod/a/A/seg1.m4s".into()))
        );
        assert_eq!(
            watermark_path(&m, "/vod/a/index.m3u8", None, None, 1),
            Ok(None)
        );
        assert!(watermark_path(&m, "/vod/a/seg1.m4s", None, None, 1).is_err());
        assert!(watermark_path(&m, "/vod/a/seg1.m4s", Some("wm=bad"), None, 1).is_err());
        assert_eq!(
            watermark_path(&MediaFunctions::default(), "/vod/a/seg1.m4s", None, None, 1),
            Ok(None)
        );
    }

    #[test]
    fn phases_follow_the_settings() {
        let hook = |media: MediaFunctions| MediaHook {
            media,
            max_bytes: 1 << 20,
        };
        let off = hook(MediaFunctions::default()).phases();
        assert_eq!(off, Phases::NONE);
        let cmcd = hook(MediaFunctions {
            cmcd_renditions: true,
            ..Default::default()
        })
        .phases();
        assert!(cmcd.response && !cmcd.request && !cmcd.route && !cmcd.response_filter);
        let wm = hook(MediaFunctions {
            watermark_key: Some(b"k".to_vec()),
            ..Default::default()
        })
        .phases();
        assert!(wm.request && !wm.response);
    }
}
