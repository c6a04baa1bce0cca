//! Native WebRTC data channels: one [`PeerLink`] is what a browser's
//! `RTCPeerConnection` + one `RTCDataChannel` is to simple-peer (`trickle: false`).
//!
//! Not signalling (see [`crate::signal`]), not media tracks. NAT traversal (srflx
//! candidates from STUN, relayed ones from TURN, one shared socket per viewer) is
//! [`hub`], switched on by [`LinkConfig::ice`].
//!
//! # Stack: str0m, not webrtc-rs
//!
//! [`str0m`] is a sans-IO WebRTC stack: one `Rtc` value per connection, fed with
//! datagrams and time, polled for datagrams and events. That matches this project's
//! style (sans-IO core, thin tokio shell), costs one small task per link (hundreds of
//! links in one process are cheap), and it does both offer and answer with an SCTP
//! data channel over DTLS, which is all we need. Its crypto is the pure-Rust backend
//! (`rust-crypto`: no C toolchain, no OpenSSL). webrtc-rs (`webrtc` crate) is a port
//! of Pion with its own internal tasks, timers and interceptors per connection, a much
//! larger dependency tree and async-only API; its extra features (media, TURN client,
//! mDNS) are not worth that here. str0m does not resolve mDNS names: remote `.local`
//! candidates are dropped by [`sdp::sanitize_remote`] and the connection relies on our
//! own host candidates plus peer-reflexive discovery (the browser's connectivity
//! checks reveal its real address). See `crates/p2p/RTC.md`.

mod datagram;
mod driver;
pub mod hub;
mod link;
pub mod sdp;
pub mod stun;

pub use hub::{GatherError, HubStats, IceHub};
pub use link::{LinkConfig, LinkEvent, LinkSender, PeerLink, PendingOffer, RtcError, MAX_MESSAGE};
