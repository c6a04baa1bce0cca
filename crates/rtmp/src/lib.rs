//! Sans-IO RTMP server session core for mediamesh ingest.
//!
//! Bytes read from a publisher's socket go into
//! [`ServerSession::handle_input`]; the session answers with bytes to write
//! ([`ServerSession::take_output`]) and [`ServerEvent`]s
//! ([`ServerSession::poll_event`]). The application decides about publish
//! requests with [`ServerSession::accept_publish`] /
//! [`ServerSession::reject_publish`]. There are no sockets, timers, threads or
//! async runtimes in this crate; the caller owns all I/O (and timeouts).
//!
//! Scope: the server side of *publishing* (OBS, ffmpeg and similar encoders):
//! simple handshake, chunk stream, protocol control messages, the
//! `connect`/`createStream`/`publish` command flow, metadata, audio and video, and
//! the Enhanced RTMP `connect` negotiation (`fourCcList`, `videoFourCcInfoMap`);
//! the E-RTMP tag bodies themselves are read by `media::flv`.
//! Not in scope: playback over RTMP (`play` is answered with an error), the
//! client side, RTMPS/RTMPE, AMF3 values, aggregate messages, shared objects.
//!
//! Why our own implementation instead of an existing crate such as
//! `rml_rtmp`: we want a strictly sans-IO core that is driven by bytes in and
//! bytes/events out, with every resource limit explicit in [`ServerConfig`]
//! and fuzzed, no panics on network input, and code we maintain ourselves
//! rather than depending on a crate with little recent maintenance.
//!
//! Modules: [`handshake`] (C0/C1/C2), [`chunk`] (chunk framing, both
//! directions), [`amf0`] (values), [`message`] (message types and payloads)
//! and `session` (state machine; exported as [`ServerSession`]).

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod message;
mod session;

pub use session::ServerSession;

use thiserror::Error;

/// Limits and parameters of one server session. Every resource a peer can
/// make the session hold is bounded by one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest chunk size a client may announce with Set Chunk Size; larger
    /// values are a protocol error. (The chunk size does not drive memory use:
    /// buffering is bounded by `max_message_size` and `max_pending_input`.)
    pub max_chunk_size: u32,
    /// Largest message length accepted in a chunk message header.
    pub max_message_size: u32,
    /// Maximum number of distinct chunk stream ids a client may use.
    pub max_chunk_streams: usize,
    /// Chunk size the server announces and uses for its own messages
    /// (clamped to `1..=0x7fff_ffff`).
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size and Set Peer Bandwidth value announced on
    /// `connect`; the server acknowledges every time it has received this many
    /// bytes since its last acknowledgement.
    pub window_ack_size: u32,
    /// Maximum bytes held by the session: incomplete messages plus unparsed
    /// input, and separately the unsent output (if the caller does not drain
    /// [`ServerSession::take_output`]). Should be at least `max_message_size`
    /// and at least 3073 (handshake).
    pub max_pending_input: usize,
    /// Maximum number of message streams (`createStream`) open at once.
    pub max_streams: usize,
    /// Until a stream has a publish requested (and again when none has), the
    /// message size and the bytes held in incomplete messages are capped at
    /// this instead (commands are small): a connection that never publishes
    /// cannot make the session hold `max_pending_input`.
    pub max_pending_before_publish: usize,
    /// Video FourCCs announced to Enhanced RTMP clients in the `connect` reply
    /// (`fourCcList`, `videoFourCcInfoMap` with CanForward, and `capsEx` ModEx):
    /// the codecs the application takes in E-RTMP video tags. Announced only to a client whose
    /// `connect` carries `fourCcList` or `videoFourCcInfoMap`; empty announces
    /// nothing.
    pub video_fourccs: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_chunk_size: 16 * 1024 * 1024,
            max_message_size: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_pending_input: 16 * 1024 * 1024,
            max_streams: 8,
            max_pending_before_publish: 64 * 1024,
            video_fourccs: ["avc1", "hvc1", "av01"].map(String::from).to_vec(),
        }
    }
}

/// Why a publish request is refused; selects the `onStatus` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRejection {
    /// `NetStream.Publish.BadName`, e.g. the stream name is already in use.
    BadName,
    /// `NetStream.Publish.Denied`, e.g. a wrong stream key.
    Denied,
}

/// What happened on the connection, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The client sent `connect` (already answered with success).
    Connect { app: String, tc_url: Option<String> },
    /// The client wants to publish; answer with `accept_publish` or
    /// `reject_publish`. `name` is the publish name up to the first `?`,
    /// `query` what follows it (if non-empty).
    PublishRequest {
        stream_id: u32,
        app: String,
        name: String,
        query: Option<String>,
    },
    /// `onMetaData` for an accepted stream: the values after the
    /// `@setDataFrame`/`onMetaData` names (usually one `EcmaArray`).
    Metadata {
        stream_id: u32,
        values: Vec<amf0::Value>,
    },
    /// FLV video tag body; `timestamp` is the absolute message timestamp (ms,
    /// wrapping).
    Video {
        stream_id: u32,
        timestamp: u32,
        data: bytes::Bytes,
    },
    /// FLV audio tag body; `timestamp` as for `Video`.
    Audio {
        stream_id: u32,
        timestamp: u32,
        data: bytes::Bytes,
    },
    /// A pending or accepted publish ended (`FCUnpublish`, `closeStream` or
    /// `deleteStream`). Not emitted when the connection simply drops.
    Unpublish { stream_id: u32 },
}

/// A protocol violation or exceeded limit; the caller closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RtmpError {
    #[error("handshake: {0}")]
    Handshake(#[from] handshake::HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] chunk::ChunkError),
    #[error("message: {0}")]
    Message(#[from] message::MessageError),
    #[error("command {0:?} before connect")]
    NotConnected(String),
    #[error("connect received twice")]
    AlreadyConnected,
    #[error("command on unknown message stream {0}")]
    UnknownStream(u32),
    #[error("publish on stream {0} which is already publishing")]
    AlreadyPublishing(u32),
    #[error("more than {limit} message streams")]
    TooManyStreams { limit: usize },
    #[error("more than {limit} bytes of unsent output")]
    OutputBacklog { limit: usize },
    #[error("session already failed")]
    Closed,
}
