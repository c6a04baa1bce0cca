//! The server session state machine.
//!
//! This module is for gluing the layers together for one publisher
//! connection: handshake, then chunk decoding, protocol control handling
//! (chunk size, abort, acknowledgements, pings), the command flow
//! (`connect`, `createStream`, `publish`, ...), per-stream publish state and
//! the replies the server sends. It emits [`ServerEvent`]s and never blocks.
//!
//! It is *not* for I/O, timeouts, authentication or stream-name policy: the
//! application sees `PublishRequest` and answers with `accept_publish` or
//! `reject_publish`.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

use crate::amf0::Value;
use crate::chunk::{ChunkDecoder, ChunkEncoder, DecoderLimits, RawMessage};
use crate::handshake::Handshake;
use crate::message::{self, Command, ControlMessage};
use crate::{PublishRejection, RtmpError, ServerConfig, ServerEvent};

/// Chunk stream for protocol control and user control messages.
const CSID_CONTROL: u32 = 2;
/// Chunk stream for NetConnection commands (message stream 0).
const CSID_COMMAND: u32 = 3;
/// Chunk stream for NetStream status messages.
const CSID_STREAM: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PublishState {
    /// Created by `createStream`, not publishing.
    Idle,
    /// `publish` received, waiting for the application.
    Pending,
    /// Accepted: media flows.
    Publishing,
    /// Rejected: media is dropped.
    Rejected,
}

#[derive(Debug)]
struct Stream {
    state: PublishState,
    /// Publish name without the query string.
    name: String,
}

/// One RTMP server connection, sans-IO. See the crate docs.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    handshake: Handshake,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    input: BytesMut,
    output: BytesMut,
    events: VecDeque<ServerEvent>,
    /// App name, set by `connect`.
    app: Option<String>,
    streams: BTreeMap<u32, Stream>,
    next_stream_id: u32,
    bytes_received: u64,
    bytes_acked: u64,
    /// Window we announced (acks are sent only after announcing it).
    ack_window: Option<u32>,
    failed: bool,
    /// The decoder runs with the full limits (a publish is requested or running)
    /// rather than `max_pending_before_publish`.
    wide_limits: bool,
}

impl ServerSession {
    pub fn new(config: ServerConfig) -> Self {
        let decoder = ChunkDecoder::new(decoder_limits(&config, false));
        ServerSession {
            config,
            handshake: Handshake::new(),
            decoder,
            encoder: ChunkEncoder::new(),
            input: BytesMut::new(),
            output: BytesMut::new(),
            events: VecDeque::new(),
            app: None,
            streams: BTreeMap::new(),
            next_stream_id: 1,
            bytes_received: 0,
            bytes_acked: 0,
            ack_window: None,
            failed: false,
            wide_limits: false,
        }
    }

    /// Widens the decoder's limits while a publish is requested or running, and
    /// narrows them again when none is.
    fn sync_limits(&mut self) {
        let wide = self
            .streams
            .values()
            .any(|s| matches!(s.state, PublishState::Pending | PublishState::Publishing));
        if wide != self.wide_limits {
            self.wide_limits = wide;
            self.decoder.set_limits(decoder_limits(&self.config, wide));
        }
    }

    /// Feed bytes read from the socket. Err = protocol violation: the caller
    /// closes the connection (further calls return [`RtmpError::Closed`]).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        if self.failed {
            return Err(RtmpError::Closed);
        }
        let r = self.process(data);
        if r.is_err() {
            self.failed = true;
            self.input = BytesMut::new();
        }
        r
    }

    /// Bytes to write to the socket (drain; empty when nothing pending).
    pub fn take_output(&mut self) -> Bytes {
        self.output.split().freeze()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Accept a pending publish: sends StreamBegin and
    /// `NetStream.Publish.Start`; media for the stream is then delivered.
    /// Ignored unless the stream has a pending publish request.
    pub fn accept_publish(&mut self, stream_id: u32) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            tracing::debug!(stream_id, "accept_publish for unknown stream");
            return;
        };
        if stream.state != PublishState::Pending {
            tracing::debug!(stream_id, state = ?stream.state, "accept_publish without pending publish");
            return;
        }
        stream.state = PublishState::Publishing;
        let description = format!("{} is now published.", stream.name);
        self.send(
            CSID_CONTROL,
            0,
            message::USER_CONTROL,
            &message::user_control_payload(message::UC_STREAM_BEGIN, stream_id),
        );
        self.send_on_status(stream_id, "status", "NetStream.Publish.Start", &description);
    }

    /// Refuse a pending (or end an accepted) publish: sends an error
    /// `onStatus`; media for the stream is dropped afterwards.
    pub fn reject_publish(&mut self, stream_id: u32, reason: PublishRejection, description: &str) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            tracing::debug!(stream_id, "reject_publish for unknown stream");
            return;
        };
        if !matches!(
            stream.state,
            PublishState::Pending | PublishState::Publishing
        ) {
            tracing::debug!(stream_id, state = ?stream.state, "reject_publish without publish");
            return;
        }
        stream.state = PublishState::Rejected;
        let code = match reason {
            PublishRejection::BadName => "NetStream.Publish.BadName",
            PublishRejection::Denied => "NetStream.Publish.Denied",
        };
        self.send_on_status(stream_id, "error", code, description);
    }

    fn process(&mut self, data: &[u8]) -> Result<(), RtmpError> {
        self.bytes_received += data.len() as u64;
        self.input.extend_from_slice(data);
        if !self.handshake.is_done() {
            self.handshake.process(&mut self.input, &mut self.output)?;
            if !self.handshake.is_done() {
                return Ok(());
            }
        }
        loop {
            self.sync_limits();
            let Some(msg) = self.decoder.poll(&mut self.input)? else {
                break;
            };
            self.on_message(msg)?;
        }
        self.maybe_acknowledge();
        if self.output.len() > self.config.max_pending_input {
            return Err(RtmpError::OutputBacklog {
                limit: self.config.max_pending_input,
            });
        }
        Ok(())
    }

    fn maybe_acknowledge(&mut self) {
        let Some(window) = self.ack_window.filter(|w| *w > 0) else {
            return;
        };
        if self.bytes_received - self.bytes_acked >= u64::from(window) {
            self.bytes_acked = self.bytes_received;
            // The sequence number wraps at 2^32 by definition.
            let seq = self.bytes_received as u32;
            self.send(
                CSID_CONTROL,
                0,
                message::ACKNOWLEDGEMENT,
                &message::u32_payload(seq),
            );
        }
    }

    fn on_message(&mut self, msg: RawMessage) -> Result<(), RtmpError> {
        if let Some(ctrl) = ControlMessage::parse(msg.type_id, &msg.payload)? {
            return self.on_control(ctrl);
        }
        match msg.type_id {
            message::AUDIO | message::VIDEO => {
                if !self.is_publishing(msg.stream_id) {
                    tracing::trace!(
                        stream_id = msg.stream_id,
                        "dropping media for stream not publishing"
                    );
                    return Ok(());
                }
                let (stream_id, timestamp, data) = (msg.stream_id, msg.timestamp, msg.payload);
                self.events.push_back(if msg.type_id == message::AUDIO {
                    ServerEvent::Audio {
                        stream_id,
                        timestamp,
                        data,
                    }
                } else {
                    ServerEvent::Video {
                        stream_id,
                        timestamp,
                        data,
                    }
                });
            }
            message::DATA_AMF0 | message::DATA_AMF3 => self.on_data(&msg),
            message::COMMAND_AMF0 | message::COMMAND_AMF3 => {
                let cmd = Command::parse(&msg.payload, msg.type_id == message::COMMAND_AMF3)?;
                self.on_command(msg.stream_id, cmd)?;
            }
            other => tracing::debug!(type_id = other, "ignoring message type"),
        }
        Ok(())
    }

    fn on_control(&mut self, ctrl: ControlMessage) -> Result<(), RtmpError> {
        match ctrl {
            ControlMessage::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
            ControlMessage::Abort { csid } => self.decoder.abort(csid),
            ControlMessage::Acknowledgement { sequence } => {
                tracing::trace!(sequence, "peer acknowledgement");
            }
            ControlMessage::UserControl { event, data } => {
                if event == message::UC_PING_REQUEST {
                    if let Some(b) = data.get(..4) {
                        let ts = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        self.send(
                            CSID_CONTROL,
                            0,
                            message::USER_CONTROL,
                            &message::user_control_payload(message::UC_PING_RESPONSE, ts),
                        );
                    }
                } else {
                    tracing::trace!(event, "ignoring user control event");
                }
            }
            ControlMessage::WindowAckSize(size) => {
                tracing::debug!(size, "peer window acknowledgement size");
            }
            ControlMessage::SetPeerBandwidth { size, limit_type } => {
                tracing::debug!(size, limit_type, "peer bandwidth");
            }
        }
        Ok(())
    }

    fn on_data(&mut self, msg: &RawMessage) {
        if !self.is_publishing(msg.stream_id) {
            tracing::trace!(
                stream_id = msg.stream_id,
                "dropping data for stream not publishing"
            );
            return;
        }
        let values = match message::parse_data(&msg.payload, msg.type_id == message::DATA_AMF3) {
            Ok(v) => v,
            Err(e) => {
                // Malformed metadata should not kill an otherwise fine stream.
                tracing::debug!(error = %e, "dropping undecodable data message");
                return;
            }
        };
        let mut values = values.into_iter().peekable();
        if values.peek().and_then(Value::as_str) == Some("@setDataFrame") {
            values.next();
        }
        if values.peek().and_then(Value::as_str) != Some("onMetaData") {
            tracing::debug!("ignoring data message other than onMetaData");
            return;
        }
        values.next();
        self.events.push_back(ServerEvent::Metadata {
            stream_id: msg.stream_id,
            values: values.collect(),
        });
    }

    fn is_publishing(&self, stream_id: u32) -> bool {
        self.streams
            .get(&stream_id)
            .is_some_and(|s| s.state == PublishState::Publishing)
    }

    fn require_app(&self, cmd: &Command) -> Result<String, RtmpError> {
        self.app
            .clone()
            .ok_or_else(|| RtmpError::NotConnected(cmd.name.clone()))
    }

    fn on_command(&mut self, msg_stream_id: u32, cmd: Command) -> Result<(), RtmpError> {
        tracing::debug!(name = %cmd.name, msg_stream_id, "command");
        match cmd.name.as_str() {
            "connect" => self.on_connect(&cmd)?,
            "createStream" => {
                self.require_app(&cmd)?;
                if self.streams.len() >= self.config.max_streams {
                    return Err(RtmpError::TooManyStreams {
                        limit: self.config.max_streams,
                    });
                }
                let id = self.next_stream_id;
                self.next_stream_id = id.checked_add(1).ok_or(RtmpError::TooManyStreams {
                    limit: self.config.max_streams,
                })?;
                self.streams.insert(
                    id,
                    Stream {
                        state: PublishState::Idle,
                        name: String::new(),
                    },
                );
                self.send_command(
                    0,
                    Command {
                        name: "_result".into(),
                        transaction_id: cmd.transaction_id,
                        command_object: Value::Null,
                        args: vec![Value::Number(f64::from(id))],
                    },
                );
            }
            "FCPublish" => {
                self.require_app(&cmd)?;
                let name = cmd.arg_str(0).unwrap_or_default().to_owned();
                self.send_command(
                    0,
                    Command {
                        name: "onFCPublish".into(),
                        transaction_id: 0.0,
                        command_object: Value::Null,
                        args: vec![message::status("status", "NetStream.Publish.Start", &name)],
                    },
                );
            }
            "publish" => self.on_publish(msg_stream_id, &cmd)?,
            "FCUnpublish" => {
                let raw = cmd.arg_str(0).unwrap_or_default();
                let (name, _) = split_query(raw);
                let ids: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| s.name == name)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.unpublish(id);
                }
            }
            "closeStream" => self.unpublish(msg_stream_id),
            "deleteStream" => {
                let id = cmd.args.first().and_then(Value::as_f64).unwrap_or(-1.0);
                if id >= 0.0 && id <= f64::from(u32::MAX) {
                    let id = id as u32;
                    self.unpublish(id);
                    self.streams.remove(&id);
                }
            }
            "play" => {
                self.send_on_status(
                    msg_stream_id,
                    "error",
                    "NetStream.Play.Failed",
                    "playback over RTMP is not supported",
                );
            }
            "releaseStream" | "getStreamLength" | "_checkbw" => {}
            other => tracing::debug!(command = other, "ignoring unknown command"),
        }
        Ok(())
    }

    fn on_connect(&mut self, cmd: &Command) -> Result<(), RtmpError> {
        if self.app.is_some() {
            return Err(RtmpError::AlreadyConnected);
        }
        let obj = &cmd.command_object;
        let app = obj
            .get("app")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let tc_url = obj.get("tcUrl").and_then(Value::as_str).map(str::to_owned);
        let object_encoding = obj
            .get("objectEncoding")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);

        let window = self.config.window_ack_size;
        self.send(
            CSID_CONTROL,
            0,
            message::WINDOW_ACK_SIZE,
            &message::u32_payload(window),
        );
        self.ack_window = Some(window);
        self.send(
            CSID_CONTROL,
            0,
            message::SET_PEER_BANDWIDTH,
            &message::set_peer_bandwidth_payload(window, message::LIMIT_DYNAMIC),
        );
        let chunk_size = self.config.out_chunk_size.clamp(1, 0x7fff_ffff);
        self.send(
            CSID_CONTROL,
            0,
            message::SET_CHUNK_SIZE,
            &message::u32_payload(chunk_size),
        );
        self.encoder.set_chunk_size(chunk_size);
        let mut properties = Value::object([
            ("fmsVer", Value::string("FMS/3,0,1,123")),
            ("capabilities", Value::Number(31.0)),
        ]);
        let enhanced = obj.get("fourCcList").is_some() || obj.get("videoFourCcInfoMap").is_some();
        if enhanced && !self.config.video_fourccs.is_empty() {
            if let Value::Object(props) = &mut properties {
                props.extend(enhanced_rtmp_properties(&self.config.video_fourccs));
            }
        }
        self.send_command(
            0,
            Command {
                name: "_result".into(),
                transaction_id: cmd.transaction_id,
                command_object: properties,
                args: vec![Value::object([
                    ("level", Value::string("status")),
                    ("code", Value::string("NetConnection.Connect.Success")),
                    ("description", Value::string("Connection succeeded.")),
                    ("objectEncoding", Value::Number(object_encoding)),
                ])],
            },
        );
        self.app = Some(app.clone());
        self.events.push_back(ServerEvent::Connect { app, tc_url });
        Ok(())
    }

    fn on_publish(&mut self, stream_id: u32, cmd: &Command) -> Result<(), RtmpError> {
        let app = self.require_app(cmd)?;
        let raw = cmd.arg_str(0).unwrap_or_default();
        let (name, query) = split_query(raw);
        let (name, query) = (name.to_owned(), query.map(str::to_owned));
        let stream = self
            .streams
            .get_mut(&stream_id)
            .ok_or(RtmpError::UnknownStream(stream_id))?;
        if matches!(
            stream.state,
            PublishState::Pending | PublishState::Publishing
        ) {
            return Err(RtmpError::AlreadyPublishing(stream_id));
        }
        stream.state = PublishState::Pending;
        stream.name.clone_from(&name);
        self.events.push_back(ServerEvent::PublishRequest {
            stream_id,
            app,
            name,
            query,
        });
        Ok(())
    }

    /// End a pending or accepted publish (emits `Unpublish`).
    fn unpublish(&mut self, stream_id: u32) {
        if let Some(s) = self.streams.get_mut(&stream_id) {
            if matches!(s.state, PublishState::Pending | PublishState::Publishing) {
                s.state = PublishState::Idle;
                self.events.push_back(ServerEvent::Unpublish { stream_id });
            }
        }
    }

    fn send(&mut self, csid: u32, stream_id: u32, type_id: u8, payload: &[u8]) {
        self.encoder
            .encode(&mut self.output, csid, 0, type_id, stream_id, payload);
    }

    fn send_command(&mut self, stream_id: u32, cmd: Command) {
        let csid = if stream_id == 0 {
            CSID_COMMAND
        } else {
            CSID_STREAM
        };
        self.send(csid, stream_id, message::COMMAND_AMF0, &cmd.encode());
    }

    fn send_on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.send_command(
            stream_id,
            Command {
                name: "onStatus".into(),
                transaction_id: 0.0,
                command_object: Value::Null,
                args: vec![message::status(level, code, description)],
            },
        );
    }
}

/// "cam?key=secret" -> ("cam", Some("key=secret")); an empty query is None.
/// `videoFourCcInfoMap` flag: the server can forward (here: package) the codec.
const FOURCC_CAN_FORWARD: f64 = 4.0;

/// `capsEx` flag: ModEx prefixes in media messages are parsed.
const CAPS_EX_MOD_EX: f64 = 4.0;

/// The Enhanced RTMP properties of the `connect` reply (the spec puts them in the
/// reply's properties object): `fourCcList` (v1) and `videoFourCcInfoMap` (v2)
/// naming the video codecs taken, and `capsEx` (ModEx is parsed; no reconnect
/// requests, no multitrack).
fn enhanced_rtmp_properties(fourccs: &[String]) -> [(String, Value); 3] {
    [
        (
            "fourCcList".to_owned(),
            Value::StrictArray(fourccs.iter().map(|f| Value::string(f.as_str())).collect()),
        ),
        (
            "videoFourCcInfoMap".to_owned(),
            Value::Object(
                fourccs
                    .iter()
                    .map(|f| (f.clone(), Value::Number(FOURCC_CAN_FORWARD)))
                    .collect(),
            ),
        ),
        ("capsEx".to_owned(), Value::Number(CAPS_EX_MOD_EX)),
    ]
}

fn split_query(raw: &str) -> (&str, Option<&str>) {
    match raw.split_once('?') {
        Some((name, q)) if !q.is_empty() => (name, Some(q)),
        Some((name, _)) => (name, None),
        None => (raw, None),
    }
}

/// The chunk decoder's limits: the configured ones while a publish is requested or
/// running (`wide`), else capped at `max_pending_before_publish`.
fn decoder_limits(config: &ServerConfig, wide: bool) -> DecoderLimits {
    let (message, buffered) = if wide {
        (config.max_message_size, config.max_pending_input)
    } else {
        let cap = config.max_pending_before_publish;
        (
            config
                .max_message_size
                .min(u32::try_from(cap).unwrap_or(u32::MAX)),
            config.max_pending_input.min(cap),
        )
    };
    DecoderLimits {
        max_chunk_size: config.max_chunk_size,
        max_message_size: message,
        max_chunk_streams: config.max_chunk_streams,
        max_buffered: buffered,
    }
}

#[cfg(test)]
mod tests;
