//! VOD routes: `/vod/{name}/index.m3u8` (multivariant), `media.m3u8`, `index.mpd`
//! (static), `init.mp4` and `seg{n}.m4s`, all made on request from the MP4 file.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use media::dash::{self, AdaptationSet, Mpd, Period, Representation, SegmentTemplate};
use media::hls::{MediaPlaylist, MediaSegment, MultivariantPlaylist, PlaylistType, Variant};

use super::live::{parse_object, Object};
use super::{error, media_response, AppState};
use crate::vod::{Asset, VodError};

const CACHE: &str = "public, max-age=3600";

pub async fn vod_file(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
) -> Response {
    let Some(lib) = state.vod.clone() else {
        return error(StatusCode::NOT_FOUND, "VOD is off: start with --media DIR");
    };
    let asset = {
        let n = name.clone();
        match tokio::task::spawn_blocking(move || lib.asset(&n)).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return vod_error(&name, e),
            Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "VOD task failed"),
        }
    };
    match file.as_str() {
        "index.m3u8" => text(
            multivariant(&asset).write(),
            "application/vnd.apple.mpegurl",
        ),
        "media.m3u8" => text(
            media_playlist(&asset).write(),
            "application/vnd.apple.mpegurl",
        ),
        "index.mpd" => text(mpd(&asset).write(), "application/dash+xml"),
        "init.mp4" => {
            let len = asset.init.len();
            media_response(
                Body::from(asset.init.clone()),
                Some(len),
                "video/mp4",
                CACHE,
            )
        }
        f => match parse_object(f) {
            Some(Object::Segment(n)) => segment(asset, n).await,
            _ => error(StatusCode::NOT_FOUND, "no such VOD object"),
        },
    }
}

fn vod_error(name: &str, e: VodError) -> Response {
    match e {
        VodError::NotFound | VodError::BadName => error(
            StatusCode::NOT_FOUND,
            &format!("no VOD file named {name:?}"),
        ),
        other => {
            tracing::warn!(name, error = %other, "VOD file unusable");
            error(StatusCode::UNPROCESSABLE_ENTITY, &other.to_string())
        }
    }
}

fn text(body: String, ct: &'static str) -> Response {
    let len = body.len();
    media_response(Body::from(body), Some(len), ct, CACHE)
}

async fn segment(asset: Arc<Asset>, n: u64) -> Response {
    let Ok(index) = usize::try_from(n) else {
        return error(StatusCode::NOT_FOUND, "no such segment");
    };
    match tokio::task::spawn_blocking(move || asset.segment_bytes(index)).await {
        Ok(Ok(b)) => {
            let len = b.len();
            media_response(Body::from(b), Some(len), "video/mp4", CACHE)
        }
        Ok(Err(VodError::NoSegment)) => error(StatusCode::NOT_FOUND, "no such segment"),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "VOD task failed"),
    }
}

fn multivariant(a: &Asset) -> MultivariantPlaylist {
    let (peak, avg) = a.bitrate();
    MultivariantPlaylist {
        version: 6,
        independent_segments: true,
        variants: vec![Variant {
            uri: "media.m3u8".into(),
            bandwidth: peak.max(1),
            average_bandwidth: Some(avg.max(1)),
            codecs: Some(a.codecs()),
            resolution: a.resolution(),
            ..Variant::default()
        }],
        ..MultivariantPlaylist::default()
    }
}

fn media_playlist(a: &Asset) -> MediaPlaylist {
    let max = a
        .segments
        .iter()
        .map(|s| a.segment_secs(s))
        .fold(0.0f64, f64::max);
    MediaPlaylist {
        version: 6,
        target_duration: max.round().max(1.0) as u64,
        playlist_type: Some(PlaylistType::Vod),
        independent_segments: true,
        map_uri: Some("init.mp4".into()),
        segments: a
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: format!("seg{i}.m4s"),
                duration: a.segment_secs(s),
                ..MediaSegment::default()
            })
            .collect(),
        ended: true,
        ..MediaPlaylist::default()
    }
}

fn mpd(a: &Asset) -> Mpd {
    let (peak, _) = a.bitrate();
    let (width, height) = a.resolution().unzip();
    let durations: Vec<u64> = a.segments.iter().map(|s| s.duration).collect();
    let start = a.segments.first().map_or(0, |s| s.start);
    Mpd {
        dynamic: false,
        media_presentation_duration: Some(a.duration_secs()),
        min_buffer_time: 2.0,
        max_segment_duration: a
            .segments
            .iter()
            .map(|s| a.segment_secs(s))
            .reduce(f64::max),
        profiles:
            "urn:mpeg:dash:profile:isoff-on-demand:2011,urn:mpeg:dash:profile:isoff-live:2011"
                .into(),
        periods: vec![Period {
            id: "0".into(),
            start: 0.0,
            adaptation_sets: vec![AdaptationSet {
                id: 0,
                content_type: None,
                mime_type: "video/mp4".into(),
                segment_alignment: true,
                representations: vec![Representation {
                    id: "v".into(),
                    codecs: a.codecs(),
                    bandwidth: peak.max(1),
                    width,
                    height,
                    frame_rate: None,
                    audio_sampling_rate: a.tracks.iter().find_map(|t| match &t.codec {
                        media::codec::TrackCodec::Aac(c) => Some(c.sample_rate),
                        _ => None,
                    }),
                    segment_template: None,
                }],
                segment_template: Some(SegmentTemplate {
                    timescale: a.timescale,
                    initialization: "init.mp4".into(),
                    media: "seg$Number$.m4s".into(),
                    start_number: 0,
                    presentation_time_offset: start,
                    duration: None,
                    timeline: dash::timeline_from_durations(start, &durations),
                    availability_time_offset: None,
                    availability_time_complete: None,
                }),
            }],
        }],
        ..Mpd::default()
    }
}
