//! mediamesh p2p: peer-to-peer delivery helpers.
//!
//! - [`tracker`]: the WebTorrent tracker that p2p-media-loader and npm
//!   `bittorrent-tracker` clients use for signalling (announce, scrape, and relaying
//!   WebRTC offers/answers). It never carries media itself.
//! - [`scheduler`]: sans-IO choice of HTTP or peer for each segment (or LL-HLS part
//!   at low latency), and the player clock; shared by `mediamesh peer` and
//!   `mediamesh sim`.
//! - [`proto`]: the p2p-media-loader 2.3 peer wire protocol (commands, framing,
//!   per-connection session, swarm ids) and our part extension, sans-IO; see
//!   `PROTOCOL.md`.
//! - [`rtc`]: native WebRTC data channels (`PeerLink`, str0m); see `RTC.md`.
//! - [`signal`]: the WebTorrent tracker client that links native peers into a swarm.

pub mod peer;
pub mod proto;
pub mod rtc;
pub mod scheduler;
pub mod signal;
pub mod tracker;
