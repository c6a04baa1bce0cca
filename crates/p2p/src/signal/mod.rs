//! Tracker client for native peers: joins a WebTorrent-tracker swarm the way
//! npm `bittorrent-tracker` (and so p2p-media-loader) does, and yields open
//! WebRTC links ([`crate::rtc::PeerLink`]) to other peers, native or browser.
//!
//! [`message`] is the wire format, [`core`] the sans-IO state machine, [`client`]
//! the thin tokio shell ([`Swarm`]). Not the media protocol that runs over the
//! links (see `proto`), not the tracker server (see [`crate::tracker`]).

pub mod client;
pub mod core;
pub mod ice;
pub mod message;
pub mod tls;

pub use self::client::{Swarm, SwarmConfig};
pub use self::core::{Action, SignalConfig, SignalCore, SignalStats};
