//! The edge's built-in per-viewer media functions (logic in `compute::media`):
//! A/B watermark variant selection on segment requests (the upstream path, and so the
//! cache key, becomes `…/A/segN.m4s` or `…/B/segN.m4s` by the viewer's signed token),
//! and per-viewer playlists on the way out (ad breaks filled from the configured ad
//! pod, renditions above the viewer's CMCD top bit rate or device class left out).
//! Playlists are cached as the origin made them and personalised per answer.
//!
//! Not here: the playlist and token logic itself.

use bytes::Bytes;
use compute::media::renditions::{self, DeviceRule};
use compute::media::ssai::AdPod;
use compute::media::watermark;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::proxy::Body;

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

/// For a media segment request: the variant path, or an error answer.
pub fn watermark_path(
    m: &MediaFunctions,
    path: &str,
    query: Option<&str>,
    header_token: Option<&str>,
    now: u64,
) -> Result<Option<String>, (StatusCode, String)> {
    let Some(key) = &m.watermark_key else {
        return Ok(None);
    };
    let Some(n) = watermark::segment_number(path) else {
        return Ok(None);
    };
    let token = query_param(query, &m.watermark_param).or(header_token);
    let Some(token) = token else {
        return Err((
            StatusCode::FORBIDDEN,
            format!(
                "a watermark token is required ({} parameter)",
                m.watermark_param
            ),
        ));
    };
    let pattern =
        watermark::verify(key, token, now).map_err(|e| (StatusCode::FORBIDDEN, e.to_string()))?;
    let variant = pattern.variant(n);
    ::metrics::counter!("edge_watermark_segments_total", "variant" => variant.as_str())
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
            ::metrics::counter!("edge_playlists_personalised_total", "what" => "renditions")
                .increment(1);
        }
    } else if let Some(pod) = &m.ad_pod {
        if text.contains("#EXT-X-CUE-OUT") || text.contains("SCTE35-OUT") {
            changed = Some(compute::media::ssai::insert_ads(text, pod));
            ::metrics::counter!("edge_playlists_personalised_total", "what" => "ads").increment(1);
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

fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
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
}
