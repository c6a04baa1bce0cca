//! Live streams: packaging frames into CMAF parts and segments, keeping them in a
//! bounded window, and turning the window into LL-HLS and DASH manifests.

pub mod directory;
pub mod fleet;
pub mod keys;
pub mod manifest;
pub mod name;
pub mod numbering;
pub mod packager;
pub mod store;
pub mod stream;

#[cfg(test)]
mod ha_tests;
#[cfg(test)]
mod tests;

pub use stream::{KickError, LiveStream, PublishError, Publisher, Rendition, StreamState, Streams};
