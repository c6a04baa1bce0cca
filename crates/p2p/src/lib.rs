//! mediamesh p2p: peer-to-peer delivery helpers.
//!
//! - [`tracker`]: the WebTorrent tracker that p2p-media-loader and npm
//!   `bittorrent-tracker` clients use for signalling (announce, scrape, and relaying
//!   WebRTC offers/answers). It never carries media itself.
//! - [`scheduler`]: sans-IO choice of HTTP or peer for each segment, and the player
//!   clock; shared by `mediamesh peer` and `mediamesh sim`.

pub mod peer;
pub mod scheduler;
pub mod tracker;
