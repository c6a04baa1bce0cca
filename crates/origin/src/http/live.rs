//! Live routes: the multivariant playlist and MPD of a stream, and per rendition the
//! media playlist (with LL-HLS blocking reload and delta updates), init segment,
//! segments, parts (held until complete when preload-hinted) and the signed digests.
//! A stream this origin does not hold live is answered with a redirect to the origin
//! that does, when the stream directory knows one (`elsewhere.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use super::{elsewhere, error, media_response, AppState};
use crate::hooks;
use crate::live::manifest;
use crate::live::packager::{AUDIO_TRACK, VIDEO_TIMESCALE, VIDEO_TRACK};
use crate::live::store::{unix_ms, Part};
use crate::live::{LiveStream, Rendition, StreamState};
use integrity::DigestList;
use media::fmp4::{self, Track};
use media::split;

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const MPD: &str = "application/dash+xml";
const MP4: &str = "video/mp4";
const IMMUTABLE: &str = "public, max-age=86400, immutable";

type Q = Query<HashMap<String, String>>;

/// What a request needs to be sent elsewhere.
struct Asked<'a> {
    state: &'a AppState,
    stream: &'a str,
    uri: &'a axum::http::Uri,
    headers: &'a HeaderMap,
}

impl Asked<'_> {
    /// A redirect to the origin holding the stream live, if the directory knows one.
    fn elsewhere(&self) -> Option<Response> {
        let directory = self.state.streams.directory()?;
        let pq = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let to = elsewhere::target(directory.as_ref(), self.stream, pq, self.headers)?;
        tracing::debug!(stream = self.stream, to = %to, "stream held by another origin; redirecting");
        elsewhere::redirect(&to)
    }

    /// `answer`, unless it is a miss and another origin holds the stream.
    fn or_elsewhere(&self, answer: Response) -> Response {
        if answer.status() == StatusCode::NOT_FOUND {
            if let Some(r) = self.elsewhere() {
                return r;
            }
        }
        answer
    }
}

/// Counts a direct viewer of `s`, unless the request comes from a mediamesh node (an
/// edge fetching for its viewers, who are counted there, or a tracker computing swarm
/// ids): they say so in `Via`.
fn touch_viewer(s: &LiveStream, peer: SocketAddr, headers: Option<&HeaderMap>) {
    let relayed = headers.is_some_and(|h| {
        h.get_all(axum::http::header::VIA)
            .iter()
            .any(|v| v.as_bytes().windows(10).any(|w| w == b"mediamesh-"))
    });
    if !relayed {
        s.touch_viewer(peer.ip());
    }
}

fn is_live(s: &LiveStream) -> bool {
    s.state() == StreamState::Live
}

/// `/live/{stream}/index.m3u8` and `/live/{stream}/index.mpd`.
pub async fn stream_file(
    State(state): State<AppState>,
    Path((stream, file)): Path<(String, String)>,
    Query(query): Q,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let asked = Asked {
        state: &state,
        stream: &stream,
        uri: &uri,
        headers: &headers,
    };
    let Some(s) = state.streams.get(&stream) else {
        return asked.or_elsewhere(no_stream(&stream));
    };
    // Manifests of a stream whose publisher left here come from where it went.
    if !is_live(&s) {
        if let Some(r) = asked.elsewhere() {
            return r;
        }
    }
    match file.as_str() {
        "index.m3u8" => {
            touch_viewer(&s, peer, Some(&headers));
            if !has_segment(&s) {
                return error(
                    StatusCode::NOT_FOUND,
                    "stream has not completed its first segment yet; retry shortly",
                );
            }
            let playlist = manifest::multivariant(&s).write();
            if !state.hooks.plays() {
                return text(playlist, PLAYLIST, "public, max-age=1");
            }
            match play_session(&state, &stream, &query, &headers, peer, "hls").await {
                // Per viewer: not for shared caches.
                Ok((id, _)) => text(
                    hooks::with_session(&playlist, &id),
                    PLAYLIST,
                    "private, no-store",
                ),
                Err(refused) => refused,
            }
        }
        "index.mpd" => {
            touch_viewer(&s, peer, Some(&headers));
            if !has_segment(&s) {
                return error(
                    StatusCode::NOT_FOUND,
                    "stream has not completed its first segment yet; retry shortly",
                );
            }
            if state.hooks.plays() {
                match play_session(&state, &stream, &query, &headers, peer, "dash").await {
                    Ok((_, false)) => {}
                    // A new session: the player reloads the MPD from its own URL.
                    Ok((id, true)) => return session_redirect(&uri, &id),
                    Err(refused) => return refused,
                }
                return text(manifest::mpd(&s).write(), MPD, "private, no-store");
            }
            text(manifest::mpd(&s).write(), MPD, "public, max-age=1")
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such file: use index.m3u8 or index.mpd",
        ),
    }
}

/// The viewer session of a manifest request: the one its `session` parameter names,
/// or a new one that `on_play` allowed (true). The error is the answer to send.
async fn play_session(
    state: &AppState,
    stream: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    peer: SocketAddr,
    protocol: &'static str,
) -> Result<(String, bool), Response> {
    if let Some(id) = query.get("session") {
        if state.hooks.touch_session(id, stream) {
            return Ok((id.clone(), false));
        }
    }
    let header = |name: axum::http::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let mut param: Vec<String> = query
        .iter()
        .filter(|(k, _)| k.as_str() != "session")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    param.sort();
    let info = hooks::PlayInfo {
        client_id: hooks::PlayInfo::new_session_id(),
        ip: peer.ip().to_string(),
        tc_url: format!("http://{}/live", header(axum::http::header::HOST)),
        stream: stream.to_string(),
        param: if param.is_empty() {
            String::new()
        } else {
            format!("?{}", param.join("&"))
        },
        page_url: header(axum::http::header::REFERER),
        protocol,
    };
    let id = info.client_id.clone();
    match state.hooks.start_session(info).await {
        Ok(()) => Ok((id, true)),
        Err(e) => {
            tracing::info!(%peer, stream, error = %e, "play refused");
            metrics::counter!("mediamesh_play_refused_total").increment(1);
            let status = match e {
                hooks::HookRefusal::TooManySessions(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            };
            Err(error(status, &e.to_string()))
        }
    }
}

/// 302 to the same manifest with `session=ID` (other parameters kept).
fn session_redirect(uri: &axum::http::Uri, id: &str) -> Response {
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("session="))
        .collect();
    let mut to = format!("{}?", uri.path());
    for kv in kept {
        to.push_str(kv);
        to.push('&');
    }
    to.push_str("session=");
    to.push_str(id);
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = axum::http::HeaderValue::from_str(&to) {
        r.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("private, no-store"),
    );
    r
}

/// Manifests are served once the first segment is complete: players that do not
/// speak LL-HLS (ffmpeg, older hls.js, every DASH player) need a whole segment.
fn has_segment(s: &LiveStream) -> bool {
    s.renditions.iter().any(|r| {
        let t = r.store.read();
        t.init.is_some() && !t.segments.is_empty()
    })
}

fn no_stream(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("no live stream named {name:?}; see /api/v1/streams"),
    )
}

fn text(body: String, content_type: &'static str, cache: &'static str) -> Response {
    let len = body.len();
    media_response(Body::from(body), Some(len), content_type, cache)
}

/// `/live/{stream}/{rendition}/{file}`.
pub async fn rendition_file(
    State(state): State<AppState>,
    Path((stream, rendition, file)): Path<(String, String, String)>,
    Query(query): Q,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let asked = Asked {
        state: &state,
        stream: &stream,
        uri: &uri,
        headers: &headers,
    };
    let Some(s) = state.streams.get(&stream) else {
        return asked.or_elsewhere(no_stream(&stream));
    };
    // A viewer session's requests keep it alive (see `hooks`).
    if let Some(id) = query.get("session") {
        state.hooks.touch_session(id, &stream);
    }
    if !is_live(&s) {
        // What changes (playlists, the latest init, digests) comes from the origin
        // the stream moved to; objects still held here are served from here.
        if matches!(file.as_str(), "index.m3u8" | "init.mp4" | "digests.json") {
            if let Some(r) = asked.elsewhere() {
                return r;
            }
        }
        let answer =
            rendition_answer(&state, &s, &rendition, &file, &query, peer, Some(&asked)).await;
        return asked.or_elsewhere(answer);
    }
    rendition_answer(&state, &s, &rendition, &file, &query, peer, Some(&asked)).await
}

async fn rendition_answer(
    state: &AppState,
    s: &Arc<LiveStream>,
    rendition: &str,
    file: &str,
    query: &HashMap<String, String>,
    peer: SocketAddr,
    asked: Option<&Asked<'_>>,
) -> Response {
    let s = s.clone();
    let (rendition, file) = (rendition.to_string(), file.to_string());
    // DASH addresses each track of a rendition on its own: `{rendition}.v` / `.a`.
    if let Some((base, track)) = rendition.rsplit_once('.') {
        let Some(r) = s.rendition(base).cloned() else {
            return error(StatusCode::NOT_FOUND, "no such rendition");
        };
        return match TrackSel::from_suffix(track) {
            Some(sel) => track_file(&r, sel, &file).await,
            None => error(StatusCode::NOT_FOUND, "no such track: use .v or .a"),
        };
    }
    let Some(r) = s.rendition(&rendition).cloned() else {
        return error(StatusCode::NOT_FOUND, "no such rendition");
    };
    match file.as_str() {
        "index.m3u8" => {
            touch_viewer(&s, peer, asked.map(|a| a.headers));
            media_playlist(&s, &r, query, asked).await
        }
        "init.mp4" => match r.store.read().init.clone() {
            Some(init) => bytes(init, "public, max-age=2"),
            None => error(StatusCode::NOT_FOUND, "no init segment yet"),
        },
        f if f.starts_with("init-") => {
            let t = r.store.read();
            match &t.init {
                Some(init) if f == manifest::init_uri(t.init_version) => {
                    bytes(init.clone(), IMMUTABLE)
                }
                _ => error(StatusCode::NOT_FOUND, "no such init segment version"),
            }
        }
        "digests.json" => digests(state, &s, &r),
        f => match parse_object(f) {
            Some(Object::Segment(msn)) => signed(state, &s, &r, f, segment(&r, msn).await),
            Some(Object::Part(msn, index)) => signed(state, &s, &r, f, part(&r, msn, index).await),
            None => error(StatusCode::NOT_FOUND, "no such object"),
        },
    }
}

/// One track of a muxed rendition, as DASH representations address them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrackSel {
    Video,
    Audio,
}

impl TrackSel {
    fn from_suffix(s: &str) -> Option<Self> {
        match s {
            "v" => Some(Self::Video),
            "a" => Some(Self::Audio),
            _ => None,
        }
    }

    fn id(self) -> u32 {
        match self {
            Self::Video => VIDEO_TRACK,
            Self::Audio => AUDIO_TRACK,
        }
    }
}

/// Init segment and segments of one track, split on request from the muxed CMAF
/// (stored once; edges cache the result).
async fn track_file(r: &Rendition, sel: TrackSel, file: &str) -> Response {
    if file == "init.mp4" {
        let info = r.info.read().clone();
        let track = match sel {
            TrackSel::Video => info.video.map(|v| Track {
                id: VIDEO_TRACK,
                timescale: VIDEO_TIMESCALE,
                codec: v.into_track_codec(),
            }),
            TrackSel::Audio => info.audio.map(|a| Track {
                id: AUDIO_TRACK,
                timescale: a.sample_rate().max(1),
                codec: a.track_codec(),
            }),
        };
        return match track {
            Some(t) => bytes(fmp4::init_segment(&[t]), "public, max-age=2"),
            None => error(StatusCode::NOT_FOUND, "the stream has no such track"),
        };
    }
    let Some(Object::Segment(msn)) = parse_object(file) else {
        return error(StatusCode::NOT_FOUND, "no such object");
    };
    wait_if_next(r, msn, None).await;
    let muxed: Vec<u8> = match r.store.read().segment(msn) {
        Some(seg) => seg
            .parts
            .iter()
            .flat_map(|p| p.bytes.iter().copied())
            .collect(),
        None => return error(StatusCode::NOT_FOUND, "segment is not in the live window"),
    };
    match split::split_track(&muxed, sel.id()) {
        Ok(b) => bytes(b, IMMUTABLE),
        Err(split::SplitError::NoSuchTrack(_)) => {
            error(StatusCode::NOT_FOUND, "the segment has no such track")
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot split a segment we packaged");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot split the segment",
            )
        }
    }
}

fn bytes(b: Bytes, cache: &'static str) -> Response {
    let len = b.len();
    media_response(Body::from(b), Some(len), MP4, cache)
}

/// Object names the live routes serve.
#[derive(Debug, PartialEq)]
pub enum Object {
    Segment(u64),
    Part(u64, u64),
}

/// Parses `seg{msn}.m4s` and `part{msn}.{index}.m4s`.
pub fn parse_object(name: &str) -> Option<Object> {
    let stem = name.strip_suffix(".m4s")?;
    if let Some(n) = stem.strip_prefix("seg") {
        return digits(n).map(Object::Segment);
    }
    let (msn, index) = stem.strip_prefix("part")?.split_once('.')?;
    Some(Object::Part(digits(msn)?, digits(index)?))
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn hold_limit(r: &Rendition) -> Duration {
    let t = r.store.read();
    let target = manifest::target_duration(r.store.config().segment_target.as_secs_f64(), &t);
    Duration::from_secs(3 * target)
}

/// How many parts ahead of the last one a client may ask for (rfc8216bis: three
/// divided by the part target when it is under a second, else three).
fn advance_part_limit(part_target: f64) -> u64 {
    if part_target < 1.0 {
        (3.0 / part_target).floor() as u64
    } else {
        3
    }
}

async fn media_playlist(
    s: &Arc<LiveStream>,
    r: &Arc<Rendition>,
    q: &HashMap<String, String>,
    asked: Option<&Asked<'_>>,
) -> Response {
    let msn = match q.get("_HLS_msn").map(|v| digits(v)) {
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "_HLS_msn must be a decimal integer",
            )
        }
        Some(Some(m)) => Some(m),
        None => None,
    };
    let part = match q.get("_HLS_part").map(|v| digits(v)) {
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "_HLS_part must be a decimal integer",
            )
        }
        Some(Some(p)) => Some(p),
        None => None,
    };
    let skip = matches!(q.get("_HLS_skip").map(String::as_str), Some("YES" | "v2"));
    if part.is_some() && msn.is_none() {
        return error(StatusCode::BAD_REQUEST, "_HLS_part needs _HLS_msn");
    }
    if r.store.read().init.is_none() && msn.is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "stream has not produced its first keyframe yet; retry shortly",
        );
    }
    let mut cache = "public, max-age=1";
    if let Some(msn) = msn {
        let part_target = r.store.config().part_target.as_secs_f64();
        let parts_per_segment =
            (r.store.config().segment_target.as_secs_f64() / part_target).ceil() as u64;
        {
            let t = r.store.read();
            let (next_msn, next_part) = t.next_part();
            let last = t.last_msn().unwrap_or(next_msn.saturating_sub(1));
            if msn > last + 2 {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("_HLS_msn={msn} is more than two segments past the last one ({last})"),
                );
            }
            if let Some(p) = part {
                // Distance in parts from the next part to be produced to the asked one.
                let asked = msn * parts_per_segment.max(1) + p;
                let next = next_msn * parts_per_segment.max(1) + next_part;
                if asked >= next + advance_part_limit(part_target) {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "_HLS_part is beyond the advance part limit",
                    );
                }
            }
        }
        let limit = hold_limit(r);
        // Wait in slices: if the publisher leaves meanwhile and the stream goes on at
        // another origin, the held request is sent there.
        let deadline = tokio::time::Instant::now() + limit;
        let mut arrived = false;
        while tokio::time::Instant::now() < deadline {
            let slice = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .min(Duration::from_millis(250));
            if r.store.wait_for(msn, part, slice).await {
                arrived = true;
                break;
            }
            if r.store.read().ended {
                break;
            }
            if !is_live(s) {
                if let Some(redirect) = asked.and_then(Asked::elsewhere) {
                    return redirect;
                }
            }
        }
        if !arrived && !r.store.read().ended {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the asked segment or part did not appear within three target durations",
            );
        }
        cache = "public, max-age=6";
    }
    text(
        manifest::media_playlist(s, r, skip).write(),
        PLAYLIST,
        cache,
    )
}

/// Waits (bounded) for an object that is the next to be produced, so preload hints work.
async fn wait_if_next(r: &Rendition, msn: u64, part: Option<u64>) {
    let (next_msn, next_part) = r.store.read().next_part();
    let soon = match part {
        Some(p) => (msn == next_msn && p <= next_part + 1) || (msn == next_msn + 1 && p == 0),
        None => msn == next_msn || msn + 1 == next_msn,
    };
    if soon {
        r.store.wait_for(msn, part, hold_limit(r)).await;
    }
}

/// Adds the object's signature ([`integrity::SIGNATURE_HEADER`]) to a 200 answer for
/// segment or part `name`, so that a viewer can pass it on to peers with the bytes.
/// Each object is signed once, on its first request (the store keeps the signature).
fn signed(
    state: &AppState,
    s: &LiveStream,
    r: &Rendition,
    name: &str,
    mut resp: Response,
) -> Response {
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let value = {
        let t = r.store.read();
        // Signed under the object's canonical name (the one playlists list), whatever
        // spelling was asked for (`seg012.m4s` is segment 12 too): the signature is
        // kept, so the first request must not choose the name the others get.
        // The name is written only when the object is first signed, not on every hit.
        let sign = |canonical: &str, d: &[u8; 32]| {
            state.signer.sign_object(&s.name, &r.name, canonical, d)
        };
        match parse_object(name) {
            Some(Object::Segment(msn)) => t.segment(msn).map(|seg| {
                seg.signature(|d| sign(&manifest::segment_uri(msn), d))
                    .to_owned()
            }),
            Some(Object::Part(msn, index)) => t.part(msn, index).map(|p| {
                p.signature(|d| sign(&manifest::part_uri(msn, index), d))
                    .to_owned()
            }),
            None => None,
        }
    };
    if let Some(value) = value {
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            let headers = resp.headers_mut();
            headers.insert(integrity::SIGNATURE_HEADER, v);
            // Pages on another origin read it with fetch() only when exposed.
            headers.insert(
                axum::http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                axum::http::HeaderValue::from_static(integrity::SIGNATURE_HEADER),
            );
        }
    }
    resp
}

async fn segment(r: &Rendition, msn: u64) -> Response {
    wait_if_next(r, msn, None).await;
    let parts: Vec<Arc<Part>> = match r.store.read().segment(msn) {
        Some(seg) => seg.parts.clone(),
        None => return error(StatusCode::NOT_FOUND, "segment is not in the live window"),
    };
    let len = parts.iter().map(|p| p.bytes.len()).sum();
    let chunks = parts
        .into_iter()
        .map(|p| Ok::<_, std::convert::Infallible>(p.bytes.clone()));
    media_response(
        Body::from_stream(futures_util::stream::iter(chunks)),
        Some(len),
        MP4,
        IMMUTABLE,
    )
}

async fn part(r: &Rendition, msn: u64, index: u64) -> Response {
    wait_if_next(r, msn, Some(index)).await;
    let found = r.store.read().part(msn, index);
    match found {
        Some(p) => bytes(p.bytes.clone(), IMMUTABLE),
        None => error(StatusCode::NOT_FOUND, "part is not in the live window"),
    }
}

fn digests(state: &AppState, s: &LiveStream, r: &Rendition) -> Response {
    let mut objects = std::collections::BTreeMap::new();
    {
        let t = r.store.read();
        if let Some(init) = &t.init {
            let digest = integrity::sha256_hex(init);
            objects.insert(manifest::init_uri(t.init_version), digest.clone());
            objects.insert("init.mp4".to_string(), digest);
        }
        for seg in &t.segments {
            objects.insert(manifest::segment_uri(seg.msn), hex::encode(seg.sha256()));
            for (i, p) in seg.parts.iter().enumerate() {
                objects.insert(
                    manifest::part_uri(seg.msn, i as u64),
                    hex::encode(p.sha256()),
                );
            }
        }
        if let Some(open) = &t.open {
            for (i, p) in open.parts.iter().enumerate() {
                objects.insert(
                    manifest::part_uri(open.msn, i as u64),
                    hex::encode(p.sha256()),
                );
            }
        }
    }
    let signed = state.signer.sign(&DigestList {
        version: 1,
        stream: s.name.clone(),
        rendition: r.name.clone(),
        generated_ms: unix_ms(),
        objects,
    });
    let body = serde_json::to_string(&signed).unwrap_or_default();
    text(body, "application/json", "no-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_parse_strictly() {
        assert_eq!(parse_object("seg12.m4s"), Some(Object::Segment(12)));
        assert_eq!(parse_object("part12.3.m4s"), Some(Object::Part(12, 3)));
        for bad in [
            "seg.m4s",
            "seg-1.m4s",
            "seg1.mp4",
            "part1.m4s",
            "part1..m4s",
            "part.1.m4s",
            "seg99999999999999999999.m4s",
            "seg+1.m4s",
            "../seg1.m4s",
        ] {
            assert_eq!(parse_object(bad), None, "{bad}");
        }
    }

    #[test]
    fn advance_limit_follows_the_draft() {
        assert_eq!(advance_part_limit(0.5), 6);
        assert_eq!(advance_part_limit(0.2), 15);
        assert_eq!(advance_part_limit(1.0), 3);
    }
}
