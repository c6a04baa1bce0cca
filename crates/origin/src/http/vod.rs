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
use crate::live::store::unix_ms;
use crate::vod::{Asset, VodError};
use integrity::DigestList;
use media::codec::TrackCodec;

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
        "digests.json" => digests(&state, &name, asset).await,
        "init.mp4" => {
            let len = asset.init.len();
            media_response(
                Body::from(asset.init.clone()),
                Some(len),
                "video/mp4",
                CACHE,
            )
        }
        f => {
            // DASH representations address one track: `v-…` or `a-…`.
            let (track, f) = match f.split_once('-') {
                Some(("v", rest)) => (asset.track_index(true), rest),
                Some(("a", rest)) => (asset.track_index(false), rest),
                _ => (None, f),
            };
            if f != file && track.is_none() {
                return error(StatusCode::NOT_FOUND, "the file has no such track");
            }
            if f == "init.mp4" {
                return match track.and_then(|t| asset.track_init(t)) {
                    Some(init) => {
                        let len = init.len();
                        media_response(Body::from(init), Some(len), "video/mp4", CACHE)
                    }
                    None => error(StatusCode::NOT_FOUND, "no such VOD object"),
                };
            }
            match parse_object(f) {
                Some(Object::Segment(n)) => segment(asset, n, track).await,
                _ => error(StatusCode::NOT_FOUND, "no such VOD object"),
            }
        }
    }
}

async fn digests(state: &AppState, name: &str, asset: Arc<Asset>) -> Response {
    let objects = match tokio::task::spawn_blocking(move || asset.digests().cloned()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "VOD task failed"),
    };
    let signed = state.signer.sign(&DigestList {
        version: 1,
        stream: name.to_string(),
        rendition: "vod".to_string(),
        generated_ms: unix_ms(),
        objects,
    });
    let body = serde_json::to_string(&signed).unwrap_or_default();
    let len = body.len();
    media_response(Body::from(body), Some(len), "application/json", CACHE)
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

async fn segment(asset: Arc<Asset>, n: u64, track: Option<usize>) -> Response {
    let Ok(index) = usize::try_from(n) else {
        return error(StatusCode::NOT_FOUND, "no such segment");
    };
    match tokio::task::spawn_blocking(move || asset.segment_bytes(index, track)).await {
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
    let mut adaptation_sets = Vec::new();
    for (ti, t) in a.tracks.iter().enumerate() {
        let (kind, id, representation) = match &t.codec {
            TrackCodec::Avc(_) | TrackCodec::Hevc(_) | TrackCodec::Av1(_) => (
                "video",
                "v",
                Representation {
                    id: "v".into(),
                    codecs: t.codec.codec_string(),
                    bandwidth: peak.max(1),
                    width: t.codec.dimensions().map(|d| d.0),
                    height: t.codec.dimensions().map(|d| d.1),
                    ..Representation::default()
                },
            ),
            TrackCodec::Aac(c) => (
                "audio",
                "a",
                Representation {
                    id: "a".into(),
                    codecs: c.codec_string(),
                    bandwidth: 128_000,
                    audio_sampling_rate: Some(c.sample_rate),
                    ..Representation::default()
                },
            ),
            TrackCodec::Opus(c) => (
                "audio",
                "a",
                Representation {
                    id: "a".into(),
                    codecs: c.codec_string(),
                    bandwidth: 128_000,
                    audio_sampling_rate: Some(media::codec::OPUS_RATE),
                    ..Representation::default()
                },
            ),
        };
        if adaptation_sets
            .iter()
            .any(|s: &AdaptationSet| s.content_type.as_deref() == Some(kind))
        {
            continue;
        }
        let timeline = a.track_timeline(ti);
        let start = timeline.first().map_or(0, |(t, _)| *t);
        let durations: Vec<u64> = timeline.iter().map(|(_, d)| *d).collect();
        adaptation_sets.push(AdaptationSet {
            id: adaptation_sets.len() as u32,
            content_type: Some(kind.into()),
            mime_type: format!("{kind}/mp4"),
            segment_alignment: true,
            representations: vec![representation],
            segment_template: Some(SegmentTemplate {
                timescale: t.timescale,
                initialization: format!("{id}-init.mp4"),
                media: format!("{id}-seg$Number$.m4s"),
                start_number: 0,
                presentation_time_offset: start,
                duration: None,
                timeline: dash::timeline_from_durations(start, &durations),
                availability_time_offset: None,
                availability_time_complete: None,
            }),
        });
    }
    Mpd {
        dynamic: false,
        media_presentation_duration: Some(a.duration_secs()),
        min_buffer_time: 2.0,
        max_segment_duration: a
            .segments
            .iter()
            .map(|s| a.segment_secs(s))
            .reduce(f64::max),
        profiles: "urn:mpeg:dash:profile:isoff-live:2011".into(),
        periods: vec![Period {
            id: "0".into(),
            start: 0.0,
            adaptation_sets,
        }],
        ..Mpd::default()
    }
}
