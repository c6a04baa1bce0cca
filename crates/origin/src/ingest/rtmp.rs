//! The RTMP ingest server: a thin tokio shell around the sans-IO `rtmp::ServerSession`.
//! It accepts connections (bounded), decides publishes (name, key, duplicates), turns
//! FLV tag bodies (legacy H.264, and Enhanced RTMP H.265/AV1/H.264 as OBS 30+ sends
//! them) into frames for the stream's `Publisher`, and ends only the offending
//! connection on any protocol or media error.
//!
//! No connection holds a slot for free: one that has no publish accepted within the
//! publish deadline of its accept (handshake, `connect`, `publish`), or that stops
//! publishing and lingers past it, is closed; so is a publisher that delivers no frame
//! for the idle timeout, and one whose media breaks the packager's bounds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use media::codec::VideoCodec;
use media::flv::{self, AudioPacket, VideoPacket};
use rtmp::{PublishRejection, ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::TimestampUnwrap;
use crate::hooks::{HookRefusal, Hooks, PublishGuard, PublishInfo};
use crate::live::{PublishError, Publisher, Streams};

/// What the RTMP shell needs from the origin's settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Concurrent connections.
    pub max_connections: usize,
    /// Concurrent connections from one client address (IPv6 by /64).
    pub max_connections_per_ip: usize,
    /// Longest merged-read wait of a publishing connection (see [`serve`]).
    pub read_batch: Duration,
    /// From accept to an accepted publish; also how long a connection may stay open
    /// while publishing nothing.
    pub publish_deadline: Duration,
    /// A publishing connection with no audio or video frame for this long is closed.
    pub idle_timeout: Duration,
}

/// Accepts RTMP connections forever.
///
/// `read_batch` caps the merged-read wait: once a connection publishes, the loop
/// sleeps between socket reads so each wake-up takes many FLV messages at once —
/// wake-ups, not bytes, are what ingest costs. The wait ends shortly before the frame
/// that completes the current part is due, so parts are not delayed; zero reads as
/// soon as data arrives.
///
/// Every publish goes through the `on_publish` hook of `hooks` (when configured); the
/// call runs on the connection's own task, so a slow hook delays only that publish.
pub async fn serve(listener: TcpListener, streams: Arc<Streams>, settings: Settings, hooks: Hooks) {
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let per_ip = service::PerIp::new(settings.max_connections_per_ip);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "rtmp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "rtmp connection refused: too many connections");
            metrics::counter!("mediamesh_rtmp_connections_refused_total").increment(1);
            continue;
        };
        let Some(slot) = per_ip.acquire(peer.ip()) else {
            tracing::warn!(%peer, "rtmp connection refused: too many connections from this address");
            metrics::counter!("mediamesh_rtmp_connections_refused_per_ip_total").increment(1);
            continue;
        };
        let streams = streams.clone();
        let hooks = hooks.clone();
        // One span per connection: every line it logs (publish, drops) names the peer.
        let span = tracing::info_span!("rtmp", %peer);
        tokio::spawn(
            async move {
                let _permit = permit;
                let _slot = slot;
                metrics::counter!("mediamesh_rtmp_connections_total").increment(1);
                match connection(socket, peer, &streams, settings, &hooks).await {
                    Ok(()) => tracing::debug!("rtmp connection closed"),
                    Err(e) => {
                        metrics::counter!("mediamesh_rtmp_errors_total").increment(1);
                        tracing::info!(error = %e, "rtmp connection ended");
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(#[from] rtmp::RtmpError),
    #[error("no audio or video frame for {0:?} while publishing (idle timeout)")]
    Idle(Duration),
    #[error("no publish within {0:?} of connecting (publish deadline)")]
    NoPublish(Duration),
    #[error("kicked by the operator (stream {0})")]
    Kicked(String),
    #[error("publisher of stream {stream:?} dropped: {reason}")]
    Dropped {
        stream: String,
        reason: crate::live::packager::PackagerError,
    },
}

struct Publishing {
    publisher: Publisher,
    clock: TimestampUnwrap,
    /// Sends `on_unpublish` when the publish ends (dropped after the publisher).
    _hook: Option<PublishGuard>,
}

/// What a connection knows besides its streams: for the hooks.
struct ConnInfo<'a> {
    peer: SocketAddr,
    client_id: String,
    tc_url: Option<String>,
    hooks: &'a Hooks,
}

/// When a connection is to be closed for holding its slot without use: the rules of
/// the module docs, as a pure function of what the connection did when.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    accepted: tokio::time::Instant,
    /// Last audio or video frame of a publishing stream.
    last_frame: tokio::time::Instant,
    publish_deadline: Duration,
    idle_timeout: Duration,
}

impl Deadlines {
    fn new(now: tokio::time::Instant, settings: &Settings) -> Self {
        Self {
            accepted: now,
            last_frame: now,
            publish_deadline: settings.publish_deadline,
            idle_timeout: settings.idle_timeout,
        }
    }

    /// Why the connection must close at `now`, if it must.
    fn check(&self, now: tokio::time::Instant, publishing: bool) -> Option<ConnectionError> {
        if !publishing {
            return (now.duration_since(self.accepted) >= self.publish_deadline)
                .then_some(ConnectionError::NoPublish(self.publish_deadline));
        }
        // A publisher's idle time counts from its publish or its last frame.
        (now.duration_since(self.last_frame) >= self.idle_timeout)
            .then_some(ConnectionError::Idle(self.idle_timeout))
    }
}

async fn connection(
    mut socket: TcpStream,
    peer: SocketAddr,
    streams: &Streams,
    settings: Settings,
    hooks: &Hooks,
) -> Result<(), ConnectionError> {
    let _ = socket.set_nodelay(true);
    let mut conn = ConnInfo {
        peer,
        client_id: PublishInfo::new_client_id(),
        tc_url: None,
        hooks,
    };
    let mut session = ServerSession::new(ServerConfig::default());
    let mut publishing: HashMap<u32, Publishing> = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut deadlines = Deadlines::new(tokio::time::Instant::now(), &settings);
    // One coarse tick checks the deadlines: cheaper than a timer per read.
    let period =
        (settings.publish_deadline.min(settings.idle_timeout) / 4).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    // Woken when an operator kicks one of this connection's publishes.
    let kick = Arc::new(tokio::sync::Notify::new());
    loop {
        let n = tokio::select! {
            r = socket.read(&mut buf) => r?,
            () = kick.notified() => {
                let kicked: Vec<u32> = publishing
                    .iter()
                    .filter(|(_, p)| p.publisher.kicked())
                    .map(|(id, _)| *id)
                    .collect();
                if kicked.is_empty() {
                    continue;
                }
                let mut names = Vec::new();
                for id in kicked {
                    if let Some(p) = publishing.remove(&id) {
                        names.push(p.publisher.stream().name.clone());
                    }
                }
                // Dropping the rest ends them as a disconnect would.
                return Err(ConnectionError::Kicked(names.join(",")));
            }
            _ = tick.tick() => {
                let now = tokio::time::Instant::now();
                if let Some(e) = deadlines.check(now, !publishing.is_empty()) {
                    return Err(e);
                }
                continue;
            }
        };
        if n == 0 {
            return Ok(());
        }
        session.handle_input(&buf[..n])?;
        let was_publishing = !publishing.is_empty();
        let mut frames = false;
        while let Some(event) = session.poll_event() {
            frames |= matches!(event, ServerEvent::Video { .. } | ServerEvent::Audio { .. });
            handle_event(
                &mut session,
                event,
                &mut conn,
                streams,
                &mut publishing,
                &kick,
            )
            .await?;
        }
        if frames || (!was_publishing && !publishing.is_empty()) {
            deadlines.last_frame = tokio::time::Instant::now();
        }
        let out = session.take_output();
        if !out.is_empty() {
            socket.write_all(&out).await?;
        }
        if !publishing.is_empty() && n < buf.len() {
            let wait = merged_read_wait(&publishing, settings.read_batch);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Stop merging reads this long before a part-completing frame is due: covers the
/// last frame interval before it plus arrival jitter, so from then on every frame is
/// read as it arrives and the part is published without added delay.
const WAKE_MARGIN_MS: u64 = 50;

/// How long a publishing connection may sleep before its next read: until shortly
/// before the earliest part completion among its streams, at most `cap`.
fn merged_read_wait(publishing: &HashMap<u32, Publishing>, cap: Duration) -> Duration {
    let until = publishing
        .values()
        .filter_map(|p| p.publisher.until_part_complete_ms())
        .min();
    match until {
        Some(ms) => Duration::from_millis(ms.saturating_sub(WAKE_MARGIN_MS)).min(cap),
        // Not packaging yet (no keyframe): no part to delay.
        None => cap,
    }
}

async fn handle_event(
    session: &mut ServerSession,
    event: ServerEvent,
    conn: &mut ConnInfo<'_>,
    streams: &Streams,
    publishing: &mut HashMap<u32, Publishing>,
    kick: &Arc<tokio::sync::Notify>,
) -> Result<(), ConnectionError> {
    let peer = conn.peer;
    match event {
        ServerEvent::Connect { app, tc_url } => {
            tracing::debug!(%peer, app, "rtmp connect");
            conn.tc_url = tc_url;
        }
        ServerEvent::PublishRequest {
            stream_id,
            app,
            name,
            query,
        } => {
            let key = query.as_deref().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("key="))
                    .map(str::to_string)
            });
            // OBS-style stream keys: the secret itself as the publish name.
            let (name, key) = match (key, streams.stream_for_key(&name)) {
                (None, Some(mapped)) => (mapped, Some(name)),
                (key, _) => (name, key),
            };
            if app != "live" {
                tracing::warn!(%peer, app, stream = %name, "publish refused: wrong application");
                session.reject_publish(
                    stream_id,
                    PublishRejection::Denied,
                    "publish to rtmp://HOST:PORT/live/STREAM",
                );
                return Ok(());
            }
            // Ask the hook only about publishes we would accept, then publish for real
            // (another publisher of the name may have come meanwhile).
            let mut hook = None;
            let checked = streams.check_publish(&name, key.as_deref());
            if checked.is_ok() && conn.hooks.asks_on_publish() {
                let info = PublishInfo {
                    client_id: conn.client_id.clone(),
                    ip: peer.ip().to_string(),
                    app: app.clone(),
                    tc_url: conn.tc_url.clone().unwrap_or_default(),
                    stream: name.clone(),
                    param: query
                        .as_deref()
                        .map(|q| format!("?{q}"))
                        .unwrap_or_default(),
                    protocol: "rtmp",
                };
                if let Err(refusal) = conn.hooks.on_publish(&info).await {
                    refuse_by_hook(session, stream_id, peer, &name, &refusal);
                    return Ok(());
                }
                hook = Some(conn.hooks.published(info));
            }
            match checked.and_then(|()| streams.publish(&name, key.as_deref())) {
                Ok(publisher) => {
                    tracing::info!(%peer, stream = %name, "publish started");
                    publisher.stream().set_source("rtmp");
                    session.accept_publish(stream_id);
                    publisher.on_kick(kick.clone());
                    publishing.insert(
                        stream_id,
                        Publishing {
                            publisher,
                            clock: TimestampUnwrap::default(),
                            _hook: hook,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(%peer, stream = %name, error = %e, "publish refused");
                    metrics::counter!("mediamesh_publish_refused_total").increment(1);
                    let kind = match e {
                        PublishError::AlreadyLive(_) | PublishError::BadName(_) => {
                            PublishRejection::BadName
                        }
                        PublishError::BadKey(_) | PublishError::TooMany(_) => {
                            PublishRejection::Denied
                        }
                    };
                    session.reject_publish(stream_id, kind, &e.to_string());
                }
            }
        }
        ServerEvent::Metadata { .. } => {}
        ServerEvent::Video {
            stream_id,
            timestamp,
            data,
        } => {
            let Some(p) = publishing.get_mut(&stream_id) else {
                return Ok(());
            };
            match flv::parse_video(data) {
                Ok(VideoPacket::SequenceHeader { codec, record }) => {
                    if let Err(e) = p.publisher.video_config_of(codec, record) {
                        tracing::warn!(%peer, codec = codec.fourcc(), error = %e, "bad video configuration");
                    } else if codec != VideoCodec::Avc {
                        tracing::debug!(%peer, codec = codec.fourcc(), "Enhanced RTMP video configuration");
                    }
                }
                Ok(VideoPacket::Av1DescriptorConfig(record)) => {
                    // Only a fallback: a SequenceStart's record carries the sequence
                    // header too, and is kept over this one.
                    if p.publisher.video_codec() != Some(VideoCodec::Av1) {
                        if let Err(e) = p.publisher.video_config_of(VideoCodec::Av1, record) {
                            tracing::warn!(%peer, error = %e, "bad AV1 video descriptor");
                        }
                    }
                }
                Ok(VideoPacket::Frame {
                    codec,
                    keyframe,
                    composition_time_ms,
                    data,
                }) => {
                    let Some(data) = frame_for(&p.publisher, codec, data, peer) else {
                        metrics::counter!("mediamesh_ingest_rejected_frames_total").increment(1);
                        return Ok(());
                    };
                    let ts = p.clock.unwrap(timestamp);
                    let fed = p.publisher.video(ts, composition_time_ms, keyframe, data);
                    if let Err(reason) = fed {
                        return Err(drop_publisher(peer, stream_id, publishing, reason));
                    }
                }
                Ok(VideoPacket::EndOfSequence(_))
                | Err(flv::FlvError::CommandFrame | flv::FlvError::ExMetadata) => {}
                Err(e) => {
                    metrics::counter!("mediamesh_ingest_rejected_frames_total").increment(1);
                    tracing::debug!(%peer, error = %e, "video frame ignored");
                }
            }
        }
        ServerEvent::Audio {
            stream_id,
            timestamp,
            data,
        } => {
            let Some(p) = publishing.get_mut(&stream_id) else {
                return Ok(());
            };
            match flv::parse_audio(data) {
                Ok(AudioPacket::SequenceHeader(asc)) => {
                    if let Err(e) = p.publisher.audio_config(asc) {
                        tracing::warn!(%peer, error = %e, "bad audio configuration");
                    }
                }
                Ok(AudioPacket::Raw(frame)) => {
                    let ts = p.clock.unwrap(timestamp);
                    if let Err(reason) = p.publisher.audio(ts, frame) {
                        return Err(drop_publisher(peer, stream_id, publishing, reason));
                    }
                }
                Err(e) => {
                    metrics::counter!("mediamesh_ingest_rejected_frames_total").increment(1);
                    tracing::debug!(%peer, error = %e, "audio frame ignored");
                }
            }
        }
        ServerEvent::Unpublish { stream_id } => {
            if let Some(p) = publishing.remove(&stream_id) {
                tracing::info!(%peer, stream = %p.publisher.stream().name, "publish stopped");
            }
        }
    }
    Ok(())
}

/// A coded frame in the form the packager takes, or `None` (logged) when it cannot
/// be packaged: its codec is not the one of the configuration in use, or its AV1 OBU
/// framing is broken. AV1 temporal delimiters are dropped
/// here (MP4 samples carry none); NAL units are passed as they are.
fn frame_for(
    publisher: &Publisher,
    codec: VideoCodec,
    data: bytes::Bytes,
    peer: SocketAddr,
) -> Option<bytes::Bytes> {
    let configured = publisher.video_codec();
    // Before any configuration the packager drops frames itself (as it always has).
    if configured.is_some_and(|c| c != codec) {
        tracing::debug!(
            %peer,
            codec = codec.fourcc(),
            configured = configured.map_or("none", VideoCodec::fourcc),
            "video frame of another codec than the configuration ignored"
        );
        return None;
    }
    if codec != VideoCodec::Av1 {
        return Some(data);
    }
    match media::codec::av1::sample_obus(data) {
        Ok(obus) => Some(obus),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "AV1 frame ignored");
            None
        }
    }
}

/// Refuses a publish that the `on_publish` hook refused (or could not be asked about,
/// failing closed).
fn refuse_by_hook(
    session: &mut ServerSession,
    stream_id: u32,
    peer: SocketAddr,
    name: &str,
    refusal: &HookRefusal,
) {
    tracing::warn!(%peer, stream = %name, error = %refusal, "publish refused");
    metrics::counter!("mediamesh_publish_refused_total").increment(1);
    session.reject_publish(stream_id, PublishRejection::Denied, &refusal.to_string());
}

/// Ends a publish whose media broke a bound, with a log line naming the cause and
/// the limit; the connection is closed by the caller.
fn drop_publisher(
    peer: SocketAddr,
    stream_id: u32,
    publishing: &mut HashMap<u32, Publishing>,
    reason: crate::live::packager::PackagerError,
) -> ConnectionError {
    let stream = publishing
        .remove(&stream_id)
        .map(|p| p.publisher.stream().name.clone())
        .unwrap_or_default();
    metrics::counter!("mediamesh_publishers_dropped_total").increment(1);
    tracing::warn!(%peer, stream = %stream, error = %reason, "publisher dropped");
    ConnectionError::Dropped { stream, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, PackagingConfig};

    fn settings(publish_deadline: Duration, idle_timeout: Duration) -> Settings {
        Settings {
            max_connections: 4,
            max_connections_per_ip: 4,
            read_batch: Duration::ZERO,
            publish_deadline,
            idle_timeout,
        }
    }

    #[test]
    fn connections_that_publish_nothing_or_stop_sending_frames_are_closed() {
        let t0 = tokio::time::Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::new(t0, &settings(s(10), s(15)));
        // Before a publish: the deadline counts from accept, whatever bytes arrive.
        assert!(d.check(t0 + Duration::from_millis(9_999), false).is_none());
        assert!(matches!(
            d.check(t0 + s(10), false),
            Some(ConnectionError::NoPublish(_))
        ));
        // Publishing: idle counts from the last frame.
        d.last_frame = t0 + s(5);
        assert!(d.check(t0 + s(19), true).is_none());
        assert!(matches!(
            d.check(t0 + s(20), true),
            Some(ConnectionError::Idle(_))
        ));
        // Done publishing but still connected: past the deadline, closed.
        assert!(d.check(t0 + s(19), false).is_some());
    }

    #[tokio::test]
    async fn a_client_dribbling_handshake_bytes_is_closed_at_the_publish_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let streams = Arc::new(Streams::new(
            PackagingConfig::default(),
            Limits::default(),
            HashMap::new(),
            false,
        ));
        let server = tokio::spawn(serve(
            listener,
            streams,
            settings(Duration::from_millis(300), Duration::from_secs(30)),
            Hooks::none(),
        ));
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // One handshake byte every 50 ms: never idle, never done. The old shell only
        // closed a connection after 30 s without a byte, so this one stayed forever.
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = [0u8; 64];
            loop {
                if s.write_all(&[3]).await.is_err() {
                    return true;
                }
                match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return true,
                    _ => {}
                }
            }
        })
        .await;
        server.abort();
        assert_eq!(closed, Ok(true), "the server did not close the connection");
    }
}
