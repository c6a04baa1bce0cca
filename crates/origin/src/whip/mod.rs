//! WHIP ingest (WebRTC-HTTP Ingestion Protocol, RFC 9725): `POST /whip/{stream}` with
//! an SDP offer publishes a stream from a browser, OBS 30+ or any WHIP encoder; it
//! then plays like an RTMP or SRT publish (LL-HLS, DASH, P2P, edges, WHEP).
//!
//! - **Admission**: the bearer token is the publish key (same key store and rules as
//!   RTMP and SRT), then the `on_publish` hook, as for the other ingests; a name that
//!   is live is refused. `on_unpublish` follows when the publish ends, however.
//! - **Video**: H.264, depacketised by str0m into access units, re-framed as AVCC with
//!   an `avcC` built from the in-band SPS/PPS (`h264`), timed from RTP (`clock`), fed
//!   to the stream's `live::Publisher`. Keyframes are asked for with PLI (see
//!   `session`).
//! - **Audio**: Opus, packaged as it came into CMAF (`Opus` sample entry with `dOps`,
//!   CODECS `opus`) rather than transcoded to AAC: no generation loss and no AAC
//!   encoder to carry (the tree has an AAC decoder only), and hls.js, dash.js,
//!   Chromium, Firefox and current Safari play Opus in fMP4 (a player limited to AAC,
//!   such as an older Safari or some TVs, may not play such a stream at all). WHEP viewers get the Opus
//!   packets passed through. Timed from RTP at 48 kHz, anchored like the video.
//! - **Network**: the WHEP UDP socket (`--whep-udp`, ICE-lite, one host candidate) is
//!   shared; datagrams are routed by ICE ufrag and source address (`whep::udp`).
//! - **Limits**: sessions at once, offer size, idle timeout ([`WhipConfig`]).
//!
//! Not here: HTTP shapes (`http`); not served by edges (WebRTC is not cacheable).

pub mod clock;
pub mod h264;
pub mod http;
pub mod offer;
pub mod session;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use str0m::{Candidate, RtcConfig};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::hooks::{Hooks, PublishInfo};
use crate::live::{PublishError, Streams};
use crate::whep::udp::Mux;
pub use offer::OfferError;

/// WHIP settings (the UDP socket is WHEP's: `WhepConfig::udp`).
#[derive(Clone, Debug)]
pub struct WhipConfig {
    /// WHIP sessions at once (all streams); 0 turns WHIP off.
    pub max_sessions: usize,
    /// Largest SDP offer accepted, bytes.
    pub max_offer_bytes: usize,
    /// A publish with no video for this long ends (also bounds how long an answered
    /// offer may wait for its publisher to connect).
    pub idle_timeout: Duration,
}

impl Default for WhipConfig {
    fn default() -> Self {
        Self {
            max_sessions: 32,
            max_offer_bytes: 32 * 1024,
            idle_timeout: Duration::from_secs(15),
        }
    }
}

/// Why a publish request was refused (each maps to one HTTP status in `http`).
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    #[error("{0}")]
    Offer(#[from] OfferError),
    #[error("SDP offer could not be parsed: {0}")]
    Sdp(String),
    #[error("offer could not be answered: {0}")]
    Answer(String),
    #[error("{0:?} is not a valid stream name")]
    BadName(String),
    #[error(
        "stream {0:?} needs a publish key: send it as the bearer token (Authorization: Bearer KEY)"
    )]
    NoKey(String),
    #[error("wrong publish key for stream {0:?}")]
    BadKey(String),
    #[error("stream {0:?} is already being published")]
    AlreadyLive(String),
    #[error("too many live streams (limit {0})")]
    TooManyStreams(usize),
    #[error("too many WHIP sessions (limit {0}); try again later")]
    TooMany(usize),
    #[error("publish refused: {0}")]
    Hook(String),
}

/// An accepted publish.
#[derive(Debug)]
pub struct Answer {
    pub session: String,
    pub sdp: String,
}

struct Entry {
    stream: String,
    stop: Arc<Notify>,
}

/// The WHIP service of one origin.
pub struct Whip {
    streams: Arc<Streams>,
    hooks: Hooks,
    config: WhipConfig,
    mux: Arc<Mux>,
    candidate: SocketAddr,
    sessions: Mutex<HashMap<String, Entry>>,
    /// The socket's reader when WHIP bound the socket itself (WHEP off).
    reader: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Whip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whip")
            .field("udp", &self.mux.local)
            .field("sessions", &self.sessions.lock().len())
            .finish_non_exhaustive()
    }
}

impl Drop for Whip {
    fn drop(&mut self) {
        if let Some(r) = &self.reader {
            r.abort();
        }
        for e in self.sessions.lock().values() {
            e.stop.notify_one();
        }
    }
}

impl Whip {
    /// Starts WHIP on `udp` (WHEP's socket and candidate), or on a socket of its own
    /// bound like WHEP's when WHEP is off; `None` when WHIP is off.
    pub async fn start(
        streams: Arc<Streams>,
        hooks: Hooks,
        config: WhipConfig,
        udp: Option<(Arc<Mux>, SocketAddr)>,
        whep: &crate::whep::WhepConfig,
    ) -> Result<Option<Arc<Whip>>, crate::whep::WhepStartError> {
        if config.max_sessions == 0 {
            return Ok(None);
        }
        let (mux, candidate, reader) = match udp {
            Some((mux, candidate)) => (mux, candidate, None),
            None => {
                let Some(addr) = whep.udp else {
                    return Ok(None);
                };
                let (mux, candidate, reader) =
                    crate::whep::bind_udp(addr, whep.candidate_ip).await?;
                (mux, candidate, Some(reader))
            }
        };
        tracing::info!(udp = %mux.local, %candidate, "WHIP ingest: POST an SDP offer to /whip/STREAM");
        Ok(Some(Arc::new(Whip {
            streams,
            hooks,
            config,
            mux,
            candidate,
            sessions: Mutex::new(HashMap::new()),
            reader,
        })))
    }

    pub fn config(&self) -> &WhipConfig {
        &self.config
    }

    /// Sessions now.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Answers `offer` publishing `stream` with publish key `key` (the bearer token)
    /// from `ip`, and starts the session; `host` (the request's `Host`) names this
    /// server in the hooks' `tcUrl`.
    pub async fn publish(
        self: &Arc<Self>,
        stream: &str,
        key: Option<&str>,
        offer: &[u8],
        ip: IpAddr,
        host: Option<&str>,
    ) -> Result<Answer, WhipError> {
        let (text, _) = offer::check(offer, self.config.max_offer_bytes)?;
        let sdp_offer = str0m::change::SdpOffer::from_sdp_string(text)
            .map_err(|e| WhipError::Sdp(e.to_string()))?;
        self.streams
            .check_publish(stream, key)
            .map_err(|e| refusal(e, key.is_some()))?;
        // Reserve the slot before the (CPU-costly) DTLS identity and the hook.
        let session = format!("{:032x}", rand::random::<u128>());
        let stop = Arc::new(Notify::new());
        {
            let mut s = self.sessions.lock();
            if s.len() >= self.config.max_sessions {
                return Err(WhipError::TooMany(self.config.max_sessions));
            }
            s.insert(
                session.clone(),
                Entry {
                    stream: stream.to_string(),
                    stop: stop.clone(),
                },
            );
        }
        // Freed on a refusal, and also if this future is dropped while the hook is
        // asked (the client hung up): a slot must not outlive its request.
        let mut reserved = Reservation {
            whip: self,
            session: &session,
            held: true,
        };
        let tc_url = match host {
            Some(h) => format!("http://{h}/whip"),
            None => format!("http://{}/whip", self.candidate),
        };
        let sdp = self
            .admit(stream, key, sdp_offer, (ip, tc_url), &session, stop)
            .await?;
        // The session's task owns the slot now.
        reserved.held = false;
        drop(reserved);
        Ok(Answer { session, sdp })
    }

    async fn admit(
        self: &Arc<Self>,
        stream: &str,
        key: Option<&str>,
        offer: str0m::change::SdpOffer,
        (ip, tc_url): (IpAddr, String),
        session: &str,
        stop: Arc<Notify>,
    ) -> Result<String, WhipError> {
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(Instant::now());
        let cand = Candidate::host(self.candidate, "udp")
            .map_err(|e| WhipError::Answer(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(cand);
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhipError::Answer(e.to_string()))?;
        let sdp = answer.to_sdp_string();
        if !crate::webrtc::offer::summarize(&sdp).video_h264 {
            return Err(WhipError::Answer(
                "no H.264 video could be agreed (offer H.264 with packetization-mode=1)".into(),
            ));
        }

        // The hook is asked once our own checks passed (as for RTMP and SRT).
        let guard = if self.hooks.asks_on_publish() {
            let info = PublishInfo {
                client_id: PublishInfo::new_client_id(),
                ip: ip.to_string(),
                app: "live".into(),
                tc_url,
                stream: stream.to_string(),
                param: key.map(|k| format!("?key={k}")).unwrap_or_default(),
                protocol: "whip",
            };
            self.hooks
                .on_publish(&info)
                .await
                .map_err(|e| WhipError::Hook(e.to_string()))?;
            Some(self.hooks.published(info))
        } else {
            None
        };
        let publisher = self
            .streams
            .publish(stream, key)
            .map_err(|e| refusal(e, key.is_some()))?;
        publisher.stream().set_source("whip");
        let kick = Arc::new(Notify::new());
        publisher.on_kick(kick.clone());

        let id = self.mux.new_id();
        let datagrams = self.mux.register(id, &ufrag);
        let keyframe_interval = self.streams.packaging().segment_target;
        let ingest = session::Ingest::new(rtc, self.candidate, Instant::now(), keyframe_interval);
        let links = session::Links {
            mux: self.mux.clone(),
            datagrams,
            publisher,
            stop,
            kick,
            idle_timeout: self.config.idle_timeout,
        };
        let span = tracing::info_span!(parent: None, "whip", stream = %stream, session = %&session[..8], %ip);
        let me: Weak<Whip> = Arc::downgrade(self);
        let key = session.to_string();
        metrics::gauge!("mediamesh_whip_sessions").increment(1.0);
        metrics::counter!("mediamesh_whip_sessions_total").increment(1);
        tokio::spawn(
            async move {
                tracing::info!("whip publish started");
                let started = Instant::now();
                let (reason, stats) = session::run(ingest, links).await;
                // The publisher is gone (stream interrupted); now on_unpublish.
                drop(guard);
                tracing::info!(
                    %reason,
                    seconds = started.elapsed().as_secs_f64(),
                    video_frames = stats.video_frames,
                    keyframes = stats.keyframes,
                    audio_packets = stats.audio_packets,
                    skipped = stats.skipped,
                    gaps = stats.gaps,
                    keyframe_requests = stats.keyframe_requests,
                    "whip publish stopped"
                );
                metrics::gauge!("mediamesh_whip_sessions").decrement(1.0);
                if let Some(me) = me.upgrade() {
                    me.mux.unregister(id);
                    me.sessions.lock().remove(&key);
                }
            }
            .instrument(span),
        );
        Ok(sdp)
    }

    /// Ends session `session` of `stream`; `false` if there is no such session.
    pub fn stop(&self, stream: &str, session: &str) -> bool {
        let s = self.sessions.lock();
        match s.get(session) {
            Some(e) if e.stream == stream => {
                e.stop.notify_one();
                true
            }
            _ => false,
        }
    }
}

/// A session slot taken for a publish request until its session task starts.
struct Reservation<'a> {
    whip: &'a Whip,
    session: &'a str,
    held: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held {
            self.whip.sessions.lock().remove(self.session);
        }
    }
}

/// The WHIP refusal for a publish the stream table refused.
fn refusal(e: PublishError, had_key: bool) -> WhipError {
    match e {
        PublishError::BadName(n) => WhipError::BadName(n),
        PublishError::BadKey(n) if had_key => WhipError::BadKey(n),
        PublishError::BadKey(n) => WhipError::NoKey(n),
        PublishError::AlreadyLive(n) => WhipError::AlreadyLive(n),
        PublishError::TooMany(n) => WhipError::TooManyStreams(n),
    }
}

#[cfg(test)]
mod loopback;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_refusals_say_whether_the_key_was_missing_or_wrong() {
        assert!(matches!(
            refusal(PublishError::BadKey("cam".into()), false),
            WhipError::NoKey(_)
        ));
        assert!(matches!(
            refusal(PublishError::BadKey("cam".into()), true),
            WhipError::BadKey(_)
        ));
        assert!(matches!(
            refusal(PublishError::AlreadyLive("cam".into()), true),
            WhipError::AlreadyLive(_)
        ));
    }
}
