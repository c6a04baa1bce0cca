//! The WHEP offer check: the shared one ([`crate::webrtc::offer`]) with the offerer
//! playing, so one of its video sections must *receive* H.264 (`recvonly` or
//! `sendrecv`). The same [`summarize`], taken of our answer, tells whether the stack
//! accepted the video (a rejected section has port 0).
//!
//! Fuzzed in `fuzz/fuzz_targets/whep_offer.rs`.

pub use crate::webrtc::offer::{
    summarize, OfferError, Role, Summary, MAX_LINES, MAX_MEDIA_SECTIONS,
};

/// Checks a WHEP offer body (see [`crate::webrtc::offer::check`]).
pub fn check(body: &[u8], max_bytes: usize) -> Result<(&str, Summary), OfferError> {
    crate::webrtc::offer::check(body, max_bytes, Role::Play)
}
