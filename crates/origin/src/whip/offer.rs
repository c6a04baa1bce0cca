//! The WHIP offer check: the shared one ([`crate::webrtc::offer`]) with the offerer
//! publishing, so one of its video sections must *send* H.264 (`sendonly` or
//! `sendrecv`). Audio is optional; an Opus audio section that sends is noted.
//!
//! Fuzzed in `fuzz/fuzz_targets/whip_offer.rs`.

pub use crate::webrtc::offer::{
    summarize, OfferError, Role, Summary, MAX_LINES, MAX_MEDIA_SECTIONS,
};

/// Checks a WHIP offer body (see [`crate::webrtc::offer::check`]).
pub fn check(body: &[u8], max_bytes: usize) -> Result<(&str, Summary), OfferError> {
    crate::webrtc::offer::check(body, max_bytes, Role::Publish)
}
