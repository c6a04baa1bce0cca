//! WHEP playback (WebRTC-HTTP Egress Protocol, RFC 9725 style): `POST /whep/{stream}`
//! with an SDP offer plays any live stream of this origin (RTMP, SRT or demo
//! published) over WebRTC at sub-second latency.
//!
//! - **Video**: H.264 passed through (no re-encode); str0m packetises the access units.
//!   A viewer starts at the stream's next IDR; PLI/FIR are answered by the next IDR
//!   the publisher sends (see `session`).
//! - **Audio**: AAC transcoded to Opus once per stream (see `audio`).
//! - **One preparation per stream**: the publisher feeds a [`tap::Tap`]; the first
//!   viewer of a stream starts its [`fanout::FanOut`], which every later viewer shares
//!   (bounded broadcast; a slow viewer skips to the next keyframe).
//! - **Network**: one UDP socket for every session (`--whep-udp ADDR`), ICE-lite with
//!   one host candidate (the socket's address, or `--whep-candidate IP` when it binds
//!   0.0.0.0). No STUN/TURN on our side; viewers behind NAT reach us through their own
//!   connectivity checks (peer-reflexive), as with any ICE-lite server.
//! - **Limits**: sessions at once, offer size, idle timeout ([`WhepConfig`]).
//!
//! Not here: the HTTP parsing and answers (`http`); not served by edges (WebRTC is
//! not cacheable: edges proxy GET/HEAD only), so players reach WHEP at the origin or
//! at `mediamesh serve`'s viewer port.

pub mod audio;
pub mod fanout;
pub mod http;
pub mod offer;
pub mod session;
pub mod stun;
pub mod tap;
pub mod udp;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use str0m::{Candidate, RtcConfig};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::live::{StreamState, Streams};
use fanout::FanOut;
pub use offer::OfferError;
pub use tap::Tap;
use udp::Mux;

/// WHEP settings.
#[derive(Clone, Debug)]
pub struct WhepConfig {
    /// UDP address every WebRTC session uses (one port); `None` turns WHEP off.
    pub udp: Option<SocketAddr>,
    /// Address put in the host candidate when `udp` binds an unspecified address.
    pub candidate_ip: Option<IpAddr>,
    /// WHEP sessions at once (all streams).
    pub max_sessions: usize,
    /// Largest SDP offer accepted, bytes.
    pub max_offer_bytes: usize,
    /// A session that hears nothing from its viewer for this long ends (also bounds
    /// how long an offer may wait for the viewer's first ICE check).
    pub idle_timeout: Duration,
}

impl Default for WhepConfig {
    fn default() -> Self {
        Self {
            udp: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            candidate_ip: None,
            max_sessions: 256,
            max_offer_bytes: 32 * 1024,
            idle_timeout: Duration::from_secs(15),
        }
    }
}

/// Why WHEP could not start.
#[derive(Debug, thiserror::Error)]
pub enum WhepStartError {
    #[error("cannot bind the WHEP UDP socket on {addr}: {source} (pick another with --whep-udp)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--whep-udp {0} binds every address: give the address viewers reach with --whep-candidate IP")]
    NoCandidate(SocketAddr),
    #[error("WHEP host candidate {0}: {1}")]
    Candidate(SocketAddr, String),
}

/// Binds the shared WebRTC UDP socket at `addr` and starts reading it: the socket,
/// the address for our host candidate, and the reader task (abort it to stop).
pub async fn bind_udp(
    addr: SocketAddr,
    candidate_ip: Option<IpAddr>,
) -> Result<(Arc<Mux>, SocketAddr, JoinHandle<()>), WhepStartError> {
    let socket = tokio::net::UdpSocket::bind(addr)
        .await
        .map_err(|source| WhepStartError::Bind { addr, source })?;
    let mux = Mux::new(socket).map_err(|source| WhepStartError::Bind { addr, source })?;
    let candidate = match candidate_ip {
        Some(ip) => SocketAddr::new(ip, mux.local.port()),
        None if mux.local.ip().is_unspecified() => {
            return Err(WhepStartError::NoCandidate(mux.local))
        }
        None => mux.local,
    };
    let reader = tokio::spawn(mux.clone().read_loop());
    Ok((mux, candidate, reader))
}

/// Why a play request was refused (each maps to one HTTP status in `http`).
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error("{0}")]
    Offer(#[from] OfferError),
    #[error("no live stream {0:?}")]
    NoStream(String),
    #[error("too many WHEP sessions (limit {0}); try again later")]
    TooMany(usize),
    #[error("SDP offer could not be parsed: {0}")]
    Sdp(String),
    #[error("offer could not be answered: {0}")]
    Answer(String),
}

/// An accepted play request.
#[derive(Debug)]
pub struct Answer {
    pub session: String,
    pub sdp: String,
}

struct Entry {
    stream: String,
    stop: Arc<Notify>,
}

/// The WHEP service of one origin.
pub struct Whep {
    streams: Arc<Streams>,
    config: WhepConfig,
    mux: Arc<Mux>,
    candidate: SocketAddr,
    sessions: Mutex<HashMap<String, Entry>>,
    fanouts: Mutex<HashMap<String, Weak<FanOut>>>,
    fanouts_started: AtomicU64,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Whep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whep")
            .field("udp", &self.mux.local)
            .field("sessions", &self.sessions.lock().len())
            .finish_non_exhaustive()
    }
}

impl Drop for Whep {
    fn drop(&mut self) {
        self.reader.abort();
        for e in self.sessions.lock().values() {
            e.stop.notify_one();
        }
    }
}

impl Whep {
    /// Binds the UDP socket and starts reading it; `None` when WHEP is off.
    pub async fn start(
        streams: Arc<Streams>,
        config: WhepConfig,
    ) -> Result<Option<Arc<Whep>>, WhepStartError> {
        let Some(addr) = config.udp.filter(|_| config.max_sessions > 0) else {
            return Ok(None);
        };
        let (mux, candidate, reader) = bind_udp(addr, config.candidate_ip).await?;
        tracing::info!(udp = %mux.local, %candidate, "WHEP playback: POST an SDP offer to /whep/STREAM");
        Ok(Some(Arc::new(Whep {
            streams,
            config,
            mux,
            candidate,
            sessions: Mutex::new(HashMap::new()),
            fanouts: Mutex::new(HashMap::new()),
            fanouts_started: AtomicU64::new(0),
            reader,
        })))
    }

    pub fn config(&self) -> &WhepConfig {
        &self.config
    }

    /// The UDP socket (and the address in our ICE candidate) WHIP publishers share.
    pub fn shared_udp(&self) -> (Arc<Mux>, SocketAddr) {
        (self.mux.clone(), self.candidate)
    }

    /// The bound UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.mux.local
    }

    /// Sessions now.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Fan-outs started since the start (one per stream while it has viewers).
    pub fn fanouts_started(&self) -> u64 {
        self.fanouts_started.load(Ordering::SeqCst)
    }

    /// The stream's fan-out, started if it has none.
    fn fanout(&self, stream: &Arc<crate::live::LiveStream>) -> Arc<FanOut> {
        let mut map = self.fanouts.lock();
        if let Some(f) = map.get(&stream.name).and_then(Weak::upgrade) {
            if Arc::ptr_eq(&f.stream, stream) {
                return f;
            }
        }
        let f = FanOut::start(stream.clone());
        self.fanouts_started.fetch_add(1, Ordering::SeqCst);
        map.retain(|_, w| w.strong_count() > 0);
        map.insert(stream.name.clone(), Arc::downgrade(&f));
        f
    }

    /// Answers `offer` for `stream` and starts the session.
    pub fn play(self: &Arc<Self>, stream: &str, offer: &[u8]) -> Result<Answer, PlayError> {
        let (text, _) = offer::check(offer, self.config.max_offer_bytes)?;
        let live = self
            .streams
            .get(stream)
            .filter(|s| !matches!(s.state(), StreamState::Ended(_)))
            .ok_or_else(|| PlayError::NoStream(stream.to_string()))?;
        let sdp_offer = str0m::change::SdpOffer::from_sdp_string(text)
            .map_err(|e| PlayError::Sdp(e.to_string()))?;
        // Reserve the slot before the (CPU-costly) DTLS identity is made.
        let session = format!("{:032x}", rand::random::<u128>());
        let stop = Arc::new(Notify::new());
        {
            let mut s = self.sessions.lock();
            if s.len() >= self.config.max_sessions {
                metrics::counter!("mediamesh_whep_refused_total", "reason" => "limit").increment(1);
                return Err(PlayError::TooMany(self.config.max_sessions));
            }
            s.insert(
                session.clone(),
                Entry {
                    stream: stream.to_string(),
                    stop: stop.clone(),
                },
            );
        }
        match self.answer(&live, sdp_offer, &session, stop) {
            Ok(sdp) => Ok(Answer { session, sdp }),
            Err(e) => {
                self.sessions.lock().remove(&session);
                Err(e)
            }
        }
    }

    fn answer(
        self: &Arc<Self>,
        live: &Arc<crate::live::LiveStream>,
        offer: str0m::change::SdpOffer,
        session: &str,
        stop: Arc<Notify>,
    ) -> Result<String, PlayError> {
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(Instant::now());
        let cand = Candidate::host(self.candidate, "udp")
            .map_err(|e| PlayError::Answer(format!("host candidate: {e}")))?;
        rtc.add_local_candidate(cand);
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PlayError::Answer(e.to_string()))?;
        let sdp = answer.to_sdp_string();
        if !offer::summarize(&sdp).video_h264 {
            return Err(PlayError::Answer(
                "no H.264 video could be agreed (offer H.264 with packetization-mode=1)".into(),
            ));
        }
        let id = self.mux.new_id();
        let datagrams = self.mux.register(id, &ufrag);
        let fanout = self.fanout(live);
        let links = session::Links {
            mux: self.mux.clone(),
            datagrams,
            frames: fanout.subscribe(),
            fanout,
            stop,
            idle_timeout: self.config.idle_timeout,
        };
        let viewer = session::Viewer::new(rtc, self.candidate);
        let span = tracing::info_span!(parent: None, "whep", stream = %live.name, session = %&session[..8]);
        let me = Arc::downgrade(self);
        let key = session.to_string();
        metrics::gauge!("mediamesh_whep_sessions").increment(1.0);
        metrics::counter!("mediamesh_whep_sessions_total").increment(1);
        tokio::spawn(
            async move {
                tracing::info!("session started");
                let started = Instant::now();
                let (reason, stats) = session::run(viewer, links).await;
                tracing::info!(
                    %reason,
                    seconds = started.elapsed().as_secs_f64(),
                    video_frames = stats.video_frames,
                    audio_packets = stats.audio_packets,
                    skipped = stats.skipped,
                    lagged = stats.lagged,
                    keyframe_requests = stats.keyframe_requests,
                    "session ended"
                );
                metrics::gauge!("mediamesh_whep_sessions").decrement(1.0);
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
