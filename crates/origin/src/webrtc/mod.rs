//! What WHIP (publishing) and WHEP (playback) share about WebRTC before str0m sees a
//! session: the check of an SDP offer ([`offer`]). One line walk, one set of limits
//! and one error type, with the direction the offerer must take as the parameter.
//!
//! Not here: sessions, sockets and HTTP (each protocol's own module).

pub mod offer;
