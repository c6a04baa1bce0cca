//! Live streams: packaging frames into CMAF parts and segments, keeping them in a
//! bounded window, and turning the window into LL-HLS and DASH manifests.

pub mod manifest;
pub mod packager;
pub mod store;
pub mod stream;

#[cfg(test)]
mod tests;

pub use stream::{LiveStream, PublishError, Publisher, Rendition, StreamState, Streams};
