//! Fleet: what turns single mediamesh processes into one delivery network — the node
//! registry (memory or Redis) with heartbeats and the stream directory, and the router
//! that sends viewers to an edge of their region (302 and HLS/DASH Content Steering).
//!
//! Not here: caching (crate `edge`), packaging (crate `origin`), the tracker protocol
//! (crate `p2p`); this crate only tells them about each other.

pub mod control;
pub mod registry;
pub mod router;
pub mod tracker_relay;
pub mod viewers;
