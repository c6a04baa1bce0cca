//! Media formats for mediamesh: FLV and Enhanced RTMP tag bodies, H.264/H.265/AV1/AAC
//! decoder configurations, the CMAF fMP4 muxer, an MP4 sample-table reader, a CMAF
//! track splitter, an MPEG-TS demuxer, and HLS/DASH manifest models. Every MP4 reader and writer here (and the edge
//! ladder's fMP4 walking) reads and writes boxes through one module, [`bmff`].
//!
//! Everything here is pure: bytes in, values out, no sockets and no files. The
//! runtime crates (origin, edge) do the I/O and call into this crate, which keeps
//! these parsers easy to unit-test and to fuzz directly.
pub mod bmff;
pub mod codec;
pub mod dash;
pub mod flv;
pub mod fmp4;
pub mod hls;
pub mod mp4;
pub mod split;
pub mod ts;
