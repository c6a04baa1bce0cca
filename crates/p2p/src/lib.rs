//! mediamesh p2p: peer-to-peer delivery helpers.
//!
//! For now this is the WebTorrent tracker ([`tracker`]) that p2p-media-loader and
//! npm `bittorrent-tracker` clients use for signalling (announce, scrape, and
//! relaying WebRTC offers/answers). It never carries media itself.

pub mod tracker;
