//! Why the tracker refused or dropped a frame. The `Display` text is the
//! `failure reason` sent to the client; [`Reject::label`] is the metrics label.
//! Nothing here is fatal to the tracker: every rejection is per message.

use thiserror::Error;

/// A refused (or silently dropped) request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Reject {
    #[error("message too large")]
    TooLarge,
    #[error("rate limited")]
    RateLimited,
    #[error("invalid JSON request")]
    InvalidJson,
    #[error("invalid action in WS request")]
    InvalidAction,
    #[error("invalid info_hash")]
    InvalidInfoHash,
    #[error("invalid peer_id")]
    InvalidPeerId,
    #[error("invalid `to_peer_id` (required with `answer`)")]
    InvalidToPeerId,
    #[error("invalid `offer_id`")]
    InvalidOfferId,
    #[error("invalid event")]
    InvalidEvent,
    #[error("peer_id is announced by another connection")]
    PeerIdTaken,
    #[error("swarm is full")]
    SwarmFull,
    #[error("tracker is full")]
    TooManySwarms,
    #[error("too many peer ids on this connection")]
    TooManyPeersOnConnection,
    #[error("too many info_hash values in scrape")]
    TooManyScrapeHashes,
    #[error("no peer with that `to_peer_id`")]
    UnknownPeer,
    #[error("unknown connection")]
    UnknownConnection,
    #[error("p2p is off for this stream")]
    P2pOff,
}

impl Reject {
    /// Stable, low-cardinality label for `mediamesh_tracker_rejected_total{reason}`.
    pub fn label(self) -> &'static str {
        match self {
            Reject::TooLarge => "too_large",
            Reject::RateLimited => "rate_limited",
            Reject::InvalidJson => "invalid_json",
            Reject::InvalidAction => "invalid_action",
            Reject::InvalidInfoHash => "invalid_info_hash",
            Reject::InvalidPeerId => "invalid_peer_id",
            Reject::InvalidToPeerId => "invalid_to_peer_id",
            Reject::InvalidOfferId => "invalid_offer_id",
            Reject::InvalidEvent => "invalid_event",
            Reject::PeerIdTaken => "peer_id_taken",
            Reject::SwarmFull => "swarm_full",
            Reject::TooManySwarms => "too_many_swarms",
            Reject::TooManyPeersOnConnection => "too_many_peers_on_connection",
            Reject::TooManyScrapeHashes => "too_many_scrape_hashes",
            Reject::UnknownPeer => "unknown_peer",
            Reject::UnknownConnection => "unknown_connection",
            Reject::P2pOff => "p2p_off",
        }
    }
}
