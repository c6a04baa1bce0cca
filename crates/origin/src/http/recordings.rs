//! Recordings over HTTP: `GET /api/v1/recordings` (the list) and the VOD asset of
//! each recording at `/vod/recordings/{name}/…`: `index.m3u8` (multivariant),
//! `media.m3u8`, `index.mpd`, `init.mp4` and `seg{n}.m4s` (the muxed CMAF as
//! recorded), `v-init.mp4`, `a-init.mp4`, `v-seg{n}.m4s`, `a-seg{n}.m4s` (one track,
//! split on request for DASH).
//!
//! A name from the URL is only looked up among the recordings the shelf knows, and a
//! file name only matched against the names above; no path or object key is ever made
//! from request text (a name is checked with `recording::valid_name` before it becomes
//! part of an S3 key). A recording whose local media is gone (deleted after its upload
//! to S3, `record::s3`), or that is only in the bucket, is served from S3: its init
//! and media segments are read from the bucket (bounded by `--s3-max-fetch-bytes`),
//! its manifests are built here as for a local one. Not here: writing recordings (`record`), the write API
//! (`admin.rs`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use media::split;

use super::live::{parse_object, Object};
use super::{error, media_response, AppState};
use crate::live::packager::{AUDIO_TRACK, VIDEO_TRACK};
use crate::record::files;
use crate::record::recording::{self, State as RecState};

const FINISHED: &str = "public, max-age=3600";
const GROWING: &str = "public, max-age=1";

/// `GET /api/v1/recordings`.
pub async fn list(State(state): State<AppState>) -> Response {
    let recordings = state.recordings.list();
    let recording_now: Vec<serde_json::Value> = state
        .recordings
        .active()
        .into_iter()
        .map(|(stream, recording)| serde_json::json!({"stream": stream, "recording": recording}))
        .collect();
    let mut r = axum::Json(serde_json::json!({
        "recordings": recordings,
        "recording_now": recording_now,
    }))
    .into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    r
}

/// `/vod/recordings/{name}/{file}`.
pub async fn file(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
) -> Response {
    let Some(rec) = state.recordings.get_or_fetch(&name).await else {
        return error(StatusCode::NOT_FOUND, "no such recording");
    };
    let cache = if rec.meta.state == RecState::Finished {
        FINISHED
    } else {
        GROWING
    };
    let text = |body: String, ct: &'static str| {
        let len = body.len();
        media_response(Body::from(body), Some(len), ct, cache)
    };
    match file.as_str() {
        "index.m3u8" => return text(rec.multivariant().write(), "application/vnd.apple.mpegurl"),
        "media.m3u8" => {
            return text(
                rec.media_playlist().write(),
                "application/vnd.apple.mpegurl",
            )
        }
        "index.mpd" => return text(rec.mpd().write(), "application/dash+xml"),
        files::INIT_FILE | files::VIDEO_INIT_FILE | files::AUDIO_INIT_FILE => {
            return match load(&state, &rec, &file).await {
                Ok(b) => {
                    let len = b.len();
                    media_response(Body::from(b), Some(len), "video/mp4", FINISHED)
                }
                Err(r) => r,
            };
        }
        _ => {}
    }
    let (track, object) = match file.split_once('-') {
        Some(("v", rest)) => (Some(VIDEO_TRACK), rest),
        Some(("a", rest)) => (Some(AUDIO_TRACK), rest),
        _ => (None, file.as_str()),
    };
    let Some(Object::Segment(n)) = parse_object(object) else {
        return error(StatusCode::NOT_FOUND, "no such recording object");
    };
    let Some(index) = usize::try_from(n).ok().filter(|i| *i < rec.segments.len()) else {
        return error(StatusCode::NOT_FOUND, "no such segment");
    };
    let muxed = match load(&state, &rec, &files::segment_file(index)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(track) = track else {
        let len = muxed.len();
        return media_response(Body::from(muxed), Some(len), "video/mp4", FINISHED);
    };
    let split = tokio::task::spawn_blocking(move || split::split_track(&muxed, track)).await;
    match split {
        Ok(Ok(b)) => {
            let len = b.len();
            media_response(Body::from(b), Some(len), "video/mp4", FINISHED)
        }
        Ok(Err(split::SplitError::NoSuchTrack(_))) => {
            error(StatusCode::NOT_FOUND, "the recording has no such track")
        }
        Ok(Err(e)) => {
            tracing::error!(recording = %name, error = %e, "cannot split a recorded segment");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot split the segment",
            )
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "split task failed"),
    }
}

/// File `file` (a name this module matched, never request text) of recording `rec`:
/// from its folder, or from S3 when the local copy is gone.
async fn load(
    state: &AppState,
    rec: &recording::Recording,
    file: &str,
) -> Result<bytes::Bytes, Response> {
    if rec.local {
        match tokio::fs::read(rec.dir.join(file)).await {
            Ok(b) => return Ok(b.into()),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(error(StatusCode::NOT_FOUND, "no such recording object"))
            }
            // Deleted after its upload while this request came in: try S3.
            Err(_) => {}
        }
    }
    let Some(s3) = state.recordings.s3() else {
        return Err(error(StatusCode::NOT_FOUND, "no such recording object"));
    };
    let key = match &rec.upload {
        Some(u) => format!("{}{file}", u.key_prefix),
        None => return Err(error(StatusCode::NOT_FOUND, "no such recording object")),
    };
    match s3.fetch(&key).await {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(error(
            StatusCode::NOT_FOUND,
            "no such recording object in S3",
        )),
        Err(e) => {
            tracing::warn!(recording = %rec.meta.name, error = %e, "cannot read a recording from S3");
            Err(error(
                StatusCode::BAD_GATEWAY,
                "the recording is in S3, which did not answer; try again",
            ))
        }
    }
}
