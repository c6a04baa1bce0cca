//! RTMP message layer: message type ids, protocol-control and user-control
//! payloads, and command/data message (de)serialisation.
//!
//! This module is for turning a reassembled message payload into a typed
//! value ([`ControlMessage`], [`Command`]) and for building the payloads the
//! server sends. It knows nothing about chunking (see `chunk`) or about
//! connection/stream state and which replies to send (see `session`).

use thiserror::Error;

use crate::amf0::{self, Amf0Error, Value};

pub const SET_CHUNK_SIZE: u8 = 1;
pub const ABORT: u8 = 2;
pub const ACKNOWLEDGEMENT: u8 = 3;
pub const USER_CONTROL: u8 = 4;
pub const WINDOW_ACK_SIZE: u8 = 5;
pub const SET_PEER_BANDWIDTH: u8 = 6;
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const DATA_AMF3: u8 = 15;
pub const COMMAND_AMF3: u8 = 17;
pub const DATA_AMF0: u8 = 18;
pub const COMMAND_AMF0: u8 = 20;
pub const AGGREGATE: u8 = 22;

/// User control event types used by the server.
pub const UC_STREAM_BEGIN: u16 = 0;
pub const UC_SET_BUFFER_LENGTH: u16 = 3;
pub const UC_PING_REQUEST: u16 = 6;
pub const UC_PING_RESPONSE: u16 = 7;

/// Set Peer Bandwidth limit type "dynamic".
pub const LIMIT_DYNAMIC: u8 = 2;

/// A malformed message payload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    #[error("message type {type_id} payload too short ({len} bytes)")]
    TooShort { type_id: u8, len: usize },
    #[error("command message has no command name")]
    NoCommandName,
    #[error("invalid AMF0 in command: {0}")]
    Amf0(#[from] Amf0Error),
}

/// Protocol control messages (types 1-6) as received from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    SetChunkSize(u32),
    Abort { csid: u32 },
    Acknowledgement { sequence: u32 },
    UserControl { event: u16, data: Vec<u8> },
    WindowAckSize(u32),
    SetPeerBandwidth { size: u32, limit_type: u8 },
}

fn be32(p: &[u8], type_id: u8) -> Result<u32, MessageError> {
    match p.get(..4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(MessageError::TooShort {
            type_id,
            len: p.len(),
        }),
    }
}

impl ControlMessage {
    /// Parse a protocol control message; `Ok(None)` if `type_id` is not one.
    /// Trailing bytes are ignored.
    pub fn parse(type_id: u8, p: &[u8]) -> Result<Option<ControlMessage>, MessageError> {
        Ok(Some(match type_id {
            SET_CHUNK_SIZE => ControlMessage::SetChunkSize(be32(p, type_id)?),
            ABORT => ControlMessage::Abort {
                csid: be32(p, type_id)?,
            },
            ACKNOWLEDGEMENT => ControlMessage::Acknowledgement {
                sequence: be32(p, type_id)?,
            },
            USER_CONTROL => match p {
                [a, b, rest @ ..] => ControlMessage::UserControl {
                    event: u16::from_be_bytes([*a, *b]),
                    data: rest.to_vec(),
                },
                _ => {
                    return Err(MessageError::TooShort {
                        type_id,
                        len: p.len(),
                    })
                }
            },
            WINDOW_ACK_SIZE => ControlMessage::WindowAckSize(be32(p, type_id)?),
            SET_PEER_BANDWIDTH => ControlMessage::SetPeerBandwidth {
                size: be32(p, type_id)?,
                // Some clients omit the limit type; treat as dynamic.
                limit_type: p.get(4).copied().unwrap_or(LIMIT_DYNAMIC),
            },
            _ => return Ok(None),
        }))
    }
}

/// Payload of Set Chunk Size / Window Ack Size / Acknowledgement.
pub fn u32_payload(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// Payload of Set Peer Bandwidth.
pub fn set_peer_bandwidth_payload(size: u32, limit_type: u8) -> [u8; 5] {
    let b = size.to_be_bytes();
    [b[0], b[1], b[2], b[3], limit_type]
}

/// Payload of a user control message whose data is one u32 (StreamBegin,
/// PingResponse, ...).
pub fn user_control_payload(event: u16, value: u32) -> [u8; 6] {
    let e = event.to_be_bytes();
    let v = value.to_be_bytes();
    [e[0], e[1], v[0], v[1], v[2], v[3]]
}

/// An AMF command message: `name, transaction id, command object, args...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    /// Usually an `Object` for `connect`, `Null` otherwise.
    pub command_object: Value,
    pub args: Vec<Value>,
}

impl Command {
    /// Parse a type 20 (or, with `amf3` set, type 17) command payload.
    /// Type 17 payloads start with a format byte 0x00 followed by AMF0.
    pub fn parse(payload: &[u8], amf3: bool) -> Result<Command, MessageError> {
        let payload = match payload {
            [0, rest @ ..] if amf3 => rest,
            p => p,
        };
        let mut it = amf0::decode_all(payload)?.into_iter();
        let name = match it.next() {
            Some(Value::String(s)) | Some(Value::LongString(s)) => s,
            _ => return Err(MessageError::NoCommandName),
        };
        let transaction_id = it.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let command_object = it.next().unwrap_or(Value::Null);
        Ok(Command {
            name,
            transaction_id,
            command_object,
            args: it.collect(),
        })
    }

    /// Serialise to an AMF0 command payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        amf0::encode(&Value::String(self.name.clone()), &mut out);
        amf0::encode(&Value::Number(self.transaction_id), &mut out);
        amf0::encode(&self.command_object, &mut out);
        for a in &self.args {
            amf0::encode(a, &mut out);
        }
        out
    }

    /// The `n`th argument after the command object, as a string.
    pub fn arg_str(&self, n: usize) -> Option<&str> {
        self.args.get(n).and_then(Value::as_str)
    }
}

/// `onStatus` info object.
pub fn status(level: &str, code: &str, description: &str) -> Value {
    Value::object([
        ("level", Value::string(level)),
        ("code", Value::string(code)),
        ("description", Value::string(description)),
    ])
}

/// Parse a data message (type 18, or 15 with a leading 0x00) into values.
pub fn parse_data(payload: &[u8], amf3: bool) -> Result<Vec<Value>, Amf0Error> {
    let payload = match payload {
        [0, rest @ ..] if amf3 => rest,
        p => p,
    };
    amf0::decode_all(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages() {
        assert_eq!(
            ControlMessage::parse(1, &[0, 0, 16, 0]).unwrap(),
            Some(ControlMessage::SetChunkSize(4096))
        );
        assert_eq!(
            ControlMessage::parse(6, &[0, 0, 0, 5]).unwrap(),
            Some(ControlMessage::SetPeerBandwidth {
                size: 5,
                limit_type: 2
            })
        );
        assert_eq!(
            ControlMessage::parse(4, &[0, 6, 1, 2, 3, 4]).unwrap(),
            Some(ControlMessage::UserControl {
                event: 6,
                data: vec![1, 2, 3, 4]
            })
        );
        assert!(ControlMessage::parse(5, &[0, 0]).is_err());
        assert!(ControlMessage::parse(4, &[0]).is_err());
        assert_eq!(ControlMessage::parse(9, &[]).unwrap(), None);
    }

    #[test]
    fn command_roundtrip_and_amf3_prefix() {
        let cmd = Command {
            name: "publish".into(),
            transaction_id: 5.0,
            command_object: Value::Null,
            args: vec![Value::string("cam?key=k"), Value::string("live")],
        };
        let bytes = cmd.encode();
        assert_eq!(Command::parse(&bytes, false).unwrap(), cmd);
        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&bytes);
        assert_eq!(Command::parse(&amf3, true).unwrap(), cmd);
        assert_eq!(cmd.arg_str(0), Some("cam?key=k"));
    }

    #[test]
    fn command_needs_a_name() {
        let mut b = Vec::new();
        amf0::encode(&Value::Number(1.0), &mut b);
        assert_eq!(Command::parse(&b, false), Err(MessageError::NoCommandName));
        assert_eq!(Command::parse(&[], false), Err(MessageError::NoCommandName));
        assert!(matches!(
            Command::parse(&[0x02, 0xff], false),
            Err(MessageError::Amf0(_))
        ));
    }

    #[test]
    fn minimal_command_defaults() {
        let mut b = Vec::new();
        amf0::encode(&Value::string("closeStream"), &mut b);
        let c = Command::parse(&b, false).unwrap();
        assert_eq!(c.transaction_id, 0.0);
        assert_eq!(c.command_object, Value::Null);
        assert!(c.args.is_empty());
    }
}
