//! WebTorrent-protocol tracker over WebSocket, wire-compatible with the npm
//! `bittorrent-tracker` server.
//!
//! [`core`] is the sans-IO state machine (swarms, connections, limits); [`ws`] is the
//! thin axum WebSocket shell around it. HTTP and UDP BitTorrent trackers are not
//! implemented: browsers only speak the WebSocket flavour.

pub mod config;
pub mod core;
pub mod error;
pub mod id;
mod ratelimit;
pub mod region;
mod wire;
pub mod ws;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod ws_tests;

pub use self::config::TrackerConfig;
pub use self::core::{ConnId, Handled, Outgoing, Tracker};
pub use self::error::Reject;
pub use self::id::Id20;
pub use self::region::RegionMap;
