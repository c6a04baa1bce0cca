//! The edge's built-in media functions, which make manifests and segment choices per
//! viewer. The logic is pure functions on text and numbers (no I/O), so it is tested
//! and fuzzed directly: rendition filtering by device or CMCD top bit rate
//! (`renditions`), server-side ad insertion at SCTE-35 markers (`ssai`), A/B forensic
//! watermark variant selection from a signed token (`watermark`), the edge ABR
//! ladder's playlists, transcode settings and MP4 walking (`ladder`), and the few HLS
//! line helpers they share (`hls`). `viewer` applies them to one request and answer.
//!
//! Not here: fetching playlists or segments and running the transcoder (`crate::ladder`),
//! and the Proxy-Wasm host (crate `compute`), which these functions do not need.

pub mod hls;
pub mod ladder;
pub mod renditions;
pub mod ssai;
pub mod viewer;
pub mod watermark;

pub use viewer::{playlist, watermark_path, MediaFunctions, MediaHook, WatermarkError};
