//! The viewer's window on the swarm: commands out, events in, over channels. A mesh
//! implementation owns the tracker client, the WebRTC links and the wire protocol;
//! the viewer only speaks in segments and peers.
//!
//! Not a transport itself: [`super::rtc_mesh`] is the WebRTC one.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::PeerError;
use crate::scheduler::{PartKey, PeerKey, SegmentId};

/// From the swarm to the viewer.
#[derive(Debug)]
pub enum MeshEvent {
    PeerUp(PeerKey),
    PeerDown(PeerKey),
    /// What the peer holds and is fetching (replaces its last announcement).
    Announced {
        peer: PeerKey,
        loaded: Vec<SegmentId>,
        loading: Vec<SegmentId>,
    },
    /// The peer asks us for a segment.
    Requested {
        peer: PeerKey,
        segment: SegmentId,
    },
    /// The peer withdrew its request.
    Cancelled {
        peer: PeerKey,
        segment: SegmentId,
    },
    /// All bytes of a segment we asked for (not verified yet).
    Received {
        peer: PeerKey,
        segment: SegmentId,
        bytes: Bytes,
    },
    /// The peer does not have what we asked for, or the transfer broke.
    Failed {
        peer: PeerKey,
        segment: SegmentId,
    },
    /// Part extension: the parts the peer holds (replaces its last part announcement).
    PartsAnnounced {
        peer: PeerKey,
        parts: Vec<PartKey>,
    },
    /// The peer asks us for a part.
    PartRequested {
        peer: PeerKey,
        part: PartKey,
    },
    /// All bytes of a part we asked for (not verified yet), with the object
    /// signature the peer sent, if any.
    PartReceived {
        peer: PeerKey,
        part: PartKey,
        bytes: Bytes,
        signature: Option<String>,
    },
    /// The peer does not have the part, or the request could not be made.
    PartFailed {
        peer: PeerKey,
        part: PartKey,
    },
}

/// From the viewer to the swarm.
#[derive(Debug)]
pub enum MeshCommand {
    Announce {
        loaded: Vec<SegmentId>,
        loading: Vec<SegmentId>,
    },
    Request {
        peer: PeerKey,
        segment: SegmentId,
    },
    Cancel {
        peer: PeerKey,
        segment: SegmentId,
    },
    /// Answer a request with the segment's bytes.
    Send {
        peer: PeerKey,
        segment: SegmentId,
        bytes: Bytes,
    },
    /// Answer a request with "absent".
    Absent {
        peer: PeerKey,
        segment: SegmentId,
    },
    /// Close the link and refuse the peer for the rest of the session.
    Ban(PeerKey),
    /// Part extension: announce the parts we hold to every peer that speaks it.
    AnnounceParts(Vec<PartKey>),
    RequestPart {
        peer: PeerKey,
        part: PartKey,
    },
    /// Answer a part request with its bytes (and the origin's signature of them).
    SendPart {
        peer: PeerKey,
        part: PartKey,
        bytes: Bytes,
        signature: Option<String>,
    },
    /// Answer a part request with "absent".
    PartAbsent {
        peer: PeerKey,
        part: PartKey,
    },
}

/// Both ends of a viewer's mesh.
#[derive(Debug)]
pub struct MeshLink {
    /// Our own key, derived from the peer id we announce (see [`PeerKey::from_peer_id`]).
    pub me: PeerKey,
    pub commands: mpsc::Sender<MeshCommand>,
    pub events: mpsc::Receiver<MeshEvent>,
}

/// What a viewer joins: the swarm of one rendition.
#[derive(Debug, Clone)]
pub struct SwarmSpec {
    /// The swarm id shared with browsers: the path of the multivariant playlist URL.
    pub swarm_id: String,
    /// The rendition's position in the multivariant playlist.
    pub variant_index: usize,
    /// The rendition's p2p-media-loader 2.3 stream index (see `hls::stream_index`).
    pub stream_index: String,
    /// WebSocket URL of the tracker.
    pub tracker: String,
    /// Most peers connected at once.
    pub max_peers: usize,
    /// Whom to trust for a `wss://` tracker (`None`: the system's roots).
    pub tracker_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Speak the part extension (`PROTOCOL.md` §5); off = the stock protocol.
    pub parts: bool,
}

/// Makes a mesh for each viewer.
pub trait MeshFactory: Send + Sync {
    fn join(&self, spec: &SwarmSpec, viewer: usize) -> Result<MeshLink, PeerError>;
}
