//! [`PeerLink`]: the application's handle on one WebRTC connection with one
//! binary data channel, created as offerer ([`PendingOffer`]) or answerer
//! ([`PeerLink::answer`]). SDP is complete (all candidates inside, like simple-peer
//! with `trickle: false`).
//!
//! Not the event loop (see `driver`), not signalling.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::{Candidate, Rtc, RtcConfig};
use tokio::sync::mpsc;

use super::datagram::Datagram;
use super::driver::{self, Net};
use super::hub::{HubLink, IceHub};
use super::sdp::{sanitize_remote, SdpReject};

/// Largest message [`PeerLink::send`] accepts. Chromium accepts 256 KiB; str0m
/// buffers at most 128 KiB across a connection, so bigger payloads must be chunked
/// by the caller (p2p-media-loader sends segments in 16–64 KiB pieces).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Errors from creating or using a [`PeerLink`].
#[derive(Debug, thiserror::Error)]
pub enum RtcError {
    #[error("remote sdp refused: {0}")]
    Sdp(#[from] SdpReject),
    #[error("sdp could not be parsed: {0}")]
    SdpParse(String),
    #[error("webrtc: {0}")]
    Stack(#[from] str0m::RtcError),
    #[error("no usable local address to bind")]
    NoAddress,
    #[error("local ICE candidate refused: {0}")]
    Candidate(String),
    #[error("udp: {0}")]
    Io(#[from] std::io::Error),
    #[error("message of {0} bytes is larger than {MAX_MESSAGE}")]
    TooLarge(usize),
    #[error("link closed")]
    Closed,
}

/// How links bind and how long they wait.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Local addresses to bind one UDP socket each on (port chosen by the OS); each
    /// becomes a host candidate. Tests use `127.0.0.1` only.
    pub bind: Vec<IpAddr>,
    /// A link that has not opened its data channel by then is closed.
    pub connect_timeout: Duration,
    /// Messages queued in [`PeerLink::send`] before it waits for the network.
    pub send_queue: usize,
    /// Received events buffered before the link stops reading the network.
    pub event_queue: usize,
    /// NAT traversal: with a hub (gathered from `--ice-server`), links share its one
    /// socket and offer its host, server-reflexive and relayed candidates instead
    /// of binding `bind`.
    pub ice: Option<Arc<IceHub>>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            bind: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            connect_timeout: Duration::from_secs(20),
            send_queue: 4,
            event_queue: 64,
            ice: None,
        }
    }
}

pub use super::driver::LinkEvent;

/// A new link's network: sockets of its own, or its registration with the hub
/// (whose datagrams queue from the moment the SDP exists).
enum Sockets {
    Own(Vec<UdpSocket>),
    Hub(HubLink, mpsc::Receiver<Datagram>),
}

/// An offer we made, waiting for the remote answer.
pub struct PendingOffer {
    rtc: Rtc,
    pending: SdpPendingOffer,
    sockets: Sockets,
    cfg: LinkConfig,
}

impl std::fmt::Debug for PendingOffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingOffer").finish_non_exhaustive()
    }
}

fn candidate_error(e: impl std::fmt::Display) -> RtcError {
    RtcError::Candidate(e.to_string())
}

fn new_rtc(cfg: &LinkConfig) -> Result<(Rtc, Sockets), RtcError> {
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    if let Some(hub) = &cfg.ice {
        let host = hub.host();
        rtc.add_local_candidate(Candidate::host(host, "udp").map_err(candidate_error)?);
        for srflx in hub.server_reflexive() {
            let c = Candidate::server_reflexive(srflx, host, "udp").map_err(candidate_error)?;
            rtc.add_local_candidate(c);
        }
        if let Some(relayed) = hub.relayed() {
            let c = Candidate::relayed(relayed, host, "udp").map_err(candidate_error)?;
            rtc.add_local_candidate(c);
        }
        let ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        let (reg, rx) = hub.register(ufrag);
        return Ok((rtc, Sockets::Hub(reg, rx)));
    }
    let mut sockets = Vec::new();
    for ip in &cfg.bind {
        let sock = UdpSocket::bind(SocketAddr::new(*ip, 0))?;
        sock.set_nonblocking(true)?;
        let addr = sock.local_addr()?;
        let cand = Candidate::host(addr, "udp").map_err(|e| RtcError::SdpParse(e.to_string()))?;
        rtc.add_local_candidate(cand);
        sockets.push(sock);
    }
    if sockets.is_empty() {
        return Err(RtcError::NoAddress);
    }
    Ok((rtc, Sockets::Own(sockets)))
}

/// simple-peer labels its channel with 20 random bytes in hex.
fn random_label() -> String {
    let mut b = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl PendingOffer {
    /// Binds sockets and creates the offer (with one data channel); returns the
    /// complete offer SDP to send.
    pub fn new(cfg: &LinkConfig) -> Result<(PendingOffer, String), RtcError> {
        let (mut rtc, sockets) = new_rtc(cfg)?;
        let mut api = rtc.sdp_api();
        api.add_channel(random_label());
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| RtcError::SdpParse("nothing to offer".into()))?;
        let sdp = offer.to_sdp_string();
        Ok((
            PendingOffer {
                rtc,
                pending,
                sockets,
                cfg: cfg.clone(),
            },
            sdp,
        ))
    }

    /// Applies the remote answer and starts the link. Must run inside a tokio runtime.
    pub fn accept_answer(self, answer_sdp: &str) -> Result<PeerLink, RtcError> {
        self.accept_answer_guarded(answer_sdp, None)
    }

    pub(crate) fn accept_answer_guarded(
        mut self,
        answer_sdp: &str,
        guard: Option<Arc<()>>,
    ) -> Result<PeerLink, RtcError> {
        let (clean, dropped) = sanitize_remote(answer_sdp)?;
        tracing::debug!(
            mdns = dropped.mdns,
            other = dropped.other,
            "answer candidates dropped"
        );
        let answer =
            SdpAnswer::from_sdp_string(&clean).map_err(|e| RtcError::SdpParse(e.to_string()))?;
        self.rtc.sdp_api().accept_answer(self.pending, answer)?;
        PeerLink::spawn(self.rtc, self.sockets, &self.cfg, guard)
    }
}

/// Sends on a link; cheap to clone, usable while another task reads events.
#[derive(Debug, Clone)]
pub struct LinkSender {
    tx: mpsc::Sender<Bytes>,
}

impl LinkSender {
    /// Queues one binary message; waits while the link's buffers are full
    /// (back-pressure), so a sender of many chunks never holds more than a few.
    pub async fn send(&self, msg: Bytes) -> Result<(), RtcError> {
        if msg.len() > MAX_MESSAGE {
            return Err(RtcError::TooLarge(msg.len()));
        }
        self.tx.send(msg).await.map_err(|_| RtcError::Closed)
    }
}

/// One connection with one data channel. Dropping it closes the connection.
#[derive(Debug)]
pub struct PeerLink {
    sender: LinkSender,
    events: mpsc::Receiver<LinkEvent>,
}

impl PeerLink {
    /// Answers a remote offer: returns the link (not yet open) and the complete
    /// answer SDP to send back. Must run inside a tokio runtime.
    pub fn answer(cfg: &LinkConfig, offer_sdp: &str) -> Result<(PeerLink, String), RtcError> {
        Self::answer_guarded(cfg, offer_sdp, None)
    }

    pub(crate) fn answer_guarded(
        cfg: &LinkConfig,
        offer_sdp: &str,
        guard: Option<Arc<()>>,
    ) -> Result<(PeerLink, String), RtcError> {
        let (clean, dropped) = sanitize_remote(offer_sdp)?;
        tracing::debug!(
            mdns = dropped.mdns,
            other = dropped.other,
            "offer candidates dropped"
        );
        let offer =
            SdpOffer::from_sdp_string(&clean).map_err(|e| RtcError::SdpParse(e.to_string()))?;
        let (mut rtc, sockets) = new_rtc(cfg)?;
        let answer = rtc.sdp_api().accept_offer(offer)?;
        let link = PeerLink::spawn(rtc, sockets, cfg, guard)?;
        Ok((link, answer.to_sdp_string()))
    }

    fn spawn(
        rtc: Rtc,
        sockets: Sockets,
        cfg: &LinkConfig,
        guard: Option<Arc<()>>,
    ) -> Result<PeerLink, RtcError> {
        let (net, dg_rx) = match sockets {
            Sockets::Own(sockets) => {
                let mut socks = Vec::with_capacity(sockets.len());
                for s in sockets {
                    socks.push(Arc::new(tokio::net::UdpSocket::from_std(s)?));
                }
                Net::own(socks)
            }
            Sockets::Hub(reg, rx) => (Net::Hub(reg), rx),
        };
        let (out_tx, out_rx) = mpsc::channel(cfg.send_queue.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(cfg.event_queue.max(1));
        let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
        tokio::spawn(driver::run(rtc, net, dg_rx, out_rx, ev_tx, deadline, guard));
        Ok(PeerLink {
            sender: LinkSender { tx: out_tx },
            events: ev_rx,
        })
    }

    /// Next event; `None` after [`LinkEvent::Closed`].
    pub async fn recv(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    /// Sends one binary message (see [`LinkSender::send`]).
    pub async fn send(&self, msg: Bytes) -> Result<(), RtcError> {
        self.sender.send(msg).await
    }

    /// A clone-able sender for use from another task.
    pub fn sender(&self) -> LinkSender {
        self.sender.clone()
    }

    /// Waits until the data channel is open (bounded by the connect timeout);
    /// messages that arrive in between are returned in order.
    pub async fn wait_open(&mut self) -> Result<Vec<Bytes>, RtcError> {
        let mut early = Vec::new();
        loop {
            match self.events.recv().await {
                Some(LinkEvent::Open) => return Ok(early),
                Some(LinkEvent::Message(m)) => early.push(m),
                Some(LinkEvent::Closed(_)) | None => return Err(RtcError::Closed),
            }
        }
    }
}
