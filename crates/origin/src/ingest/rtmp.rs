//! The RTMP ingest server: a thin tokio shell around the sans-IO `rtmp::ServerSession`.
//! It accepts connections (bounded), decides publishes (name, key, duplicates), turns
//! FLV tag bodies into frames for the stream's `Publisher`, and ends only the
//! offending connection on any protocol or media error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use media::flv::{self, AudioPacket, VideoPacket};
use rtmp::{PublishRejection, ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::TimestampUnwrap;
use crate::live::{PublishError, Publisher, Streams};

/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts RTMP connections forever.
///
/// `read_batch` caps the merged-read wait: once a connection publishes, the loop
/// sleeps between socket reads so each wake-up takes many FLV messages at once —
/// wake-ups, not bytes, are what ingest costs. The wait ends shortly before the frame
/// that completes the current part is due, so parts are not delayed; zero reads as
/// soon as data arrives.
pub async fn serve(
    listener: TcpListener,
    streams: Arc<Streams>,
    max_connections: usize,
    read_batch: Duration,
) {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
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
        let streams = streams.clone();
        tokio::spawn(async move {
            let _permit = permit;
            metrics::counter!("mediamesh_rtmp_connections_total").increment(1);
            match connection(socket, peer, &streams, read_batch).await {
                Ok(()) => tracing::debug!(%peer, "rtmp connection closed"),
                Err(e) => {
                    metrics::counter!("mediamesh_rtmp_errors_total").increment(1);
                    tracing::info!(%peer, error = %e, "rtmp connection ended");
                }
            }
        });
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(#[from] rtmp::RtmpError),
    #[error("no data for {0:?}")]
    Idle(Duration),
}

struct Publishing {
    publisher: Publisher,
    clock: TimestampUnwrap,
}

async fn connection(
    mut socket: TcpStream,
    peer: SocketAddr,
    streams: &Streams,
    read_batch: Duration,
) -> Result<(), ConnectionError> {
    let _ = socket.set_nodelay(true);
    let mut session = ServerSession::new(ServerConfig::default());
    let mut publishing: HashMap<u32, Publishing> = HashMap::new();
    let mut buf = vec![0u8; 64 * 1024];
    // One coarse tick checks for idleness: cheaper than a timer per read.
    let mut tick = tokio::time::interval(IDLE_TIMEOUT / 4);
    let mut last = tokio::time::Instant::now();
    loop {
        let n = tokio::select! {
            r = socket.read(&mut buf) => r?,
            _ = tick.tick() => {
                if last.elapsed() >= IDLE_TIMEOUT {
                    return Err(ConnectionError::Idle(IDLE_TIMEOUT));
                }
                continue;
            }
        };
        last = tokio::time::Instant::now();
        if n == 0 {
            return Ok(());
        }
        session.handle_input(&buf[..n])?;
        while let Some(event) = session.poll_event() {
            handle_event(&mut session, event, peer, streams, &mut publishing);
        }
        let out = session.take_output();
        if !out.is_empty() {
            socket.write_all(&out).await?;
        }
        if !publishing.is_empty() && n < buf.len() {
            let wait = merged_read_wait(&publishing, read_batch);
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

fn handle_event(
    session: &mut ServerSession,
    event: ServerEvent,
    peer: SocketAddr,
    streams: &Streams,
    publishing: &mut HashMap<u32, Publishing>,
) {
    match event {
        ServerEvent::Connect { app, .. } => {
            tracing::debug!(%peer, app, "rtmp connect");
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
                return;
            }
            match streams.publish(&name, key.as_deref()) {
                Ok(publisher) => {
                    tracing::info!(%peer, stream = %name, "publish started");
                    session.accept_publish(stream_id);
                    publishing.insert(
                        stream_id,
                        Publishing {
                            publisher,
                            clock: TimestampUnwrap::default(),
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
                return;
            };
            match flv::parse_video(data) {
                Ok(VideoPacket::SequenceHeader(record)) => {
                    if let Err(e) = p.publisher.video_config(record) {
                        tracing::warn!(%peer, error = %e, "bad video configuration");
                    }
                }
                Ok(VideoPacket::Nalus {
                    keyframe,
                    composition_time_ms,
                    data,
                }) => {
                    let ts = p.clock.unwrap(timestamp);
                    p.publisher.video(ts, composition_time_ms, keyframe, data);
                }
                Ok(VideoPacket::EndOfSequence) => {}
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
                return;
            };
            match flv::parse_audio(data) {
                Ok(AudioPacket::SequenceHeader(asc)) => {
                    if let Err(e) = p.publisher.audio_config(asc) {
                        tracing::warn!(%peer, error = %e, "bad audio configuration");
                    }
                }
                Ok(AudioPacket::Raw(frame)) => {
                    let ts = p.clock.unwrap(timestamp);
                    p.publisher.audio(ts, frame);
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
}
