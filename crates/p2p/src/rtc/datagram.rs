//! One received UDP datagram, as the link drivers and the shared [`IceHub`](super::IceHub)
//! socket pass it to a link: its own type so that neither has to import the other.
//! Not a parser: STUN and TURN framing is [`super::stun`].

use std::net::SocketAddr;

/// One received datagram: the local address it arrived on (for relayed traffic, the
/// relayed address), who sent it, and its bytes.
pub(super) struct Datagram {
    pub local: SocketAddr,
    pub source: SocketAddr,
    pub data: Vec<u8>,
}
