//! The mediamesh origin: takes live streams in over RTMP (or from the built-in demo
//! loop), packages them once into CMAF parts and segments, keeps a bounded DVR window
//! in memory, packages MP4 files for VOD on request, signs segment digests, and serves
//! all of it as LL-HLS and DASH over HTTP.
//!
//! It is not a cache and not a player: edges and peers sit in front of it (other crates).
//! Format work (FLV, fMP4, manifests) lives in the `media` crate and the RTMP protocol
//! core in `rtmp`; this crate wires them to tokio and axum.

pub mod config;
pub mod hooks;
pub mod http;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod record;
pub mod server;
pub mod vod;
pub mod web;
pub mod webrtc;
pub mod whep;
pub mod whip;

pub use config::OriginConfig;
pub use server::{Origin, StartError};
