//! Built-in media functions of the edge that make manifests and segment choices per
//! viewer, as pure functions on text and numbers (no I/O), so they are tested and
//! fuzzed directly: rendition filtering by device or CMCD top bit rate (`renditions`),
//! server-side ad insertion at SCTE-35 markers (`ssai`), and A/B forensic watermark
//! variant selection from a signed token (`watermark`), and the edge ABR ladder's
//! playlists and transcode settings (`ladder`).
//!
//! Not here: fetching playlists or segments and running the transcoder (the edge does).

pub mod hls;
pub mod ladder;
pub mod renditions;
pub mod ssai;
pub mod watermark;
