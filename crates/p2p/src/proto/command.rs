//! The six p2p-media-loader 2.3 peer commands and their binary bodies
//! (`commands/types.ts`, `commands/commands.ts`, `deserializeCommand`).
//!
//! A body is one command-type byte, then fields: a one-byte ASCII name followed by an
//! item (see `serial`). Not for framing (see `framing`) nor for deciding what a
//! command means on a connection (see `session`).

use super::error::{ProtoError, UsageError};
use super::framing;
use super::serial::{self, ITEM_INT, ITEM_SIMILAR_INT_ARRAY, ITEM_STRING};

/// A segment's `externalId`: the media sequence number for live HLS, the
/// position in the playlist (0-based) for VOD HLS.
pub type SegmentId = i64;
/// A request id chosen by the requester (the JS picks a random integer 0..1000).
pub type RequestId = i64;

/// Command type codes (the first body byte).
pub mod code {
    pub const SEGMENTS_ANNOUNCEMENT: u8 = 0;
    pub const SEGMENT_REQUEST: u8 = 1;
    pub const SEGMENT_DATA: u8 = 2;
    pub const SENDING_COMPLETED: u8 = 3;
    pub const SEGMENT_ABSENT: u8 = 4;
    pub const CANCEL_SEGMENT_REQUEST: u8 = 5;
}

/// Decode-time bounds.
#[derive(Debug, Clone, Copy)]
pub struct CommandLimits {
    /// Most segment ids accepted in one announcement (`l` and `p` together).
    pub max_announced: usize,
}

impl Default for CommandLimits {
    fn default() -> Self {
        Self {
            max_announced: 20_000,
        }
    }
}

/// One peer command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCommand {
    /// `c=0`: the full set of segments the sender has (`l`) and is loading over
    /// HTTP (`p`). Replaces the previous announcement.
    SegmentsAnnouncement {
        loaded: Vec<SegmentId>,
        http_loading: Vec<SegmentId>,
    },
    /// `c=1`: send me segment `i`; `b` = resume from this byte (omitted when 0).
    SegmentRequest {
        segment: SegmentId,
        request_id: RequestId,
        byte_from: Option<i64>,
    },
    /// `c=2`: header before the raw chunks: `s` bytes follow.
    SegmentData {
        segment: SegmentId,
        request_id: RequestId,
        size: i64,
    },
    /// `c=3`: all bytes of the request were sent.
    SendingCompleted {
        segment: SegmentId,
        request_id: RequestId,
    },
    /// `c=4`: I do not have that segment (any more).
    SegmentAbsent {
        segment: SegmentId,
        request_id: RequestId,
    },
    /// `c=5`: stop sending that request.
    CancelSegmentRequest {
        segment: SegmentId,
        request_id: RequestId,
    },
}

impl PeerCommand {
    /// The command's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::SegmentsAnnouncement { .. } => "SegmentsAnnouncement",
            Self::SegmentRequest { .. } => "SegmentRequest",
            Self::SegmentData { .. } => "SegmentData",
            Self::SendingCompleted { .. } => "SendingCompleted",
            Self::SegmentAbsent { .. } => "SegmentAbsent",
            Self::CancelSegmentRequest { .. } => "CancelSegmentRequest",
        }
    }

    /// The unframed body, field order as the JS writes it.
    pub fn body(&self) -> Result<Vec<u8>, UsageError> {
        let mut out = Vec::new();
        let int = |out: &mut Vec<u8>, name: u8, v: i64| {
            out.push(name);
            serial::put_int(out, v);
        };
        match self {
            Self::SegmentsAnnouncement {
                loaded,
                http_loading,
            } => {
                out.push(code::SEGMENTS_ANNOUNCEMENT);
                if !loaded.is_empty() {
                    out.push(b'l');
                    serial::put_similar_int_array(&mut out, loaded)?;
                }
                if !http_loading.is_empty() {
                    out.push(b'p');
                    serial::put_similar_int_array(&mut out, http_loading)?;
                }
            }
            Self::SegmentRequest {
                segment,
                request_id,
                byte_from,
            } => {
                out.push(code::SEGMENT_REQUEST);
                int(&mut out, b'i', *segment);
                int(&mut out, b'r', *request_id);
                // The JS writes `b` only when truthy.
                if let Some(b) = byte_from.filter(|b| *b != 0) {
                    int(&mut out, b'b', b);
                }
            }
            Self::SegmentData {
                segment,
                request_id,
                size,
            } => {
                out.push(code::SEGMENT_DATA);
                int(&mut out, b'i', *segment);
                int(&mut out, b's', *size);
                int(&mut out, b'r', *request_id);
            }
            Self::SendingCompleted {
                segment,
                request_id,
            }
            | Self::SegmentAbsent {
                segment,
                request_id,
            }
            | Self::CancelSegmentRequest {
                segment,
                request_id,
            } => {
                out.push(match self {
                    Self::SendingCompleted { .. } => code::SENDING_COMPLETED,
                    Self::SegmentAbsent { .. } => code::SEGMENT_ABSENT,
                    _ => code::CANCEL_SEGMENT_REQUEST,
                });
                int(&mut out, b'i', *segment);
                int(&mut out, b'r', *request_id);
            }
        }
        Ok(out)
    }

    /// The data-channel messages for this command, each ≤ `max_message_size`.
    pub fn encode(&self, max_message_size: usize) -> Result<Vec<Vec<u8>>, UsageError> {
        framing::frame(&self.body()?, max_message_size)
    }

    /// Parses an unframed body. Stricter than the JS, which keeps going with
    /// missing or mistyped fields: here those are errors. Unknown field names are
    /// skipped (the JS stores and ignores them); a repeated field keeps the last
    /// value, as in the JS.
    pub fn decode(body: &[u8], limits: &CommandLimits) -> Result<Self, ProtoError> {
        let (&command, mut rest) = body.split_first().ok_or(ProtoError::EmptyCommand)?;
        if command > code::CANCEL_SEGMENT_REQUEST {
            return Err(ProtoError::UnknownCommand(command));
        }
        let mut ints: [(u8, Option<i64>); 4] =
            [(b'i', None), (b'r', None), (b's', None), (b'b', None)];
        let mut loaded = None;
        let mut loading = None;
        while let Some((&name, item)) = rest.split_first() {
            let item_type = item.first().ok_or(ProtoError::Truncated("field"))? >> 4;
            let used = match item_type {
                ITEM_INT => {
                    let (v, used) = serial::get_int(item)?;
                    match ints.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = Some(v),
                        None if matches!(name, b'l' | b'p') => {
                            return Err(ProtoError::WrongFieldType(char::from(name)))
                        }
                        None => {}
                    }
                    used
                }
                ITEM_SIMILAR_INT_ARRAY => {
                    let taken =
                        loaded.as_ref().map_or(0, Vec::len) + loading.as_ref().map_or(0, Vec::len);
                    let budget = limits.max_announced.saturating_sub(taken);
                    let (values, used) =
                        serial::get_similar_int_array(item, budget).map_err(|e| match e {
                            ProtoError::TooManySegments { count, .. } => {
                                ProtoError::TooManySegments {
                                    count: count + taken,
                                    limit: limits.max_announced,
                                }
                            }
                            e => e,
                        })?;
                    match name {
                        b'l' => loaded = Some(values),
                        b'p' => loading = Some(values),
                        b'i' | b'r' | b's' | b'b' => {
                            return Err(ProtoError::WrongFieldType(char::from(name)))
                        }
                        _ => {}
                    }
                    used
                }
                ITEM_STRING => {
                    let (_, used) = serial::get_string(item)?;
                    if matches!(name, b'i' | b'r' | b's' | b'b' | b'l' | b'p') {
                        return Err(ProtoError::WrongFieldType(char::from(name)));
                    }
                    used
                }
                _ => {
                    return Err(ProtoError::UnknownItemType {
                        name: char::from(name),
                        item_type,
                    })
                }
            };
            rest = &item[used..];
        }
        let [(_, i), (_, r), (_, s), (_, b)] = ints;
        let need = |v: Option<i64>, field: char, command: &'static str| {
            v.ok_or(ProtoError::MissingField { command, field })
        };
        Ok(match command {
            code::SEGMENTS_ANNOUNCEMENT => Self::SegmentsAnnouncement {
                loaded: loaded.unwrap_or_default(),
                http_loading: loading.unwrap_or_default(),
            },
            code::SEGMENT_REQUEST => Self::SegmentRequest {
                segment: need(i, 'i', "SegmentRequest")?,
                request_id: need(r, 'r', "SegmentRequest")?,
                byte_from: b,
            },
            code::SEGMENT_DATA => Self::SegmentData {
                segment: need(i, 'i', "SegmentData")?,
                request_id: need(r, 'r', "SegmentData")?,
                size: need(s, 's', "SegmentData")?,
            },
            code::SENDING_COMPLETED => Self::SendingCompleted {
                segment: need(i, 'i', "SendingCompleted")?,
                request_id: need(r, 'r', "SendingCompleted")?,
            },
            code::SEGMENT_ABSENT => Self::SegmentAbsent {
                segment: need(i, 'i', "SegmentAbsent")?,
                request_id: need(r, 'r', "SegmentAbsent")?,
            },
            _ => Self::CancelSegmentRequest {
                segment: need(i, 'i', "CancelSegmentRequest")?,
                request_id: need(r, 'r', "CancelSegmentRequest")?,
            },
        })
    }
}

/// A received message, as the JS peer would interpret it.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Command(PeerCommand),
    /// Raw segment bytes.
    Data(&'a [u8]),
    /// A chunk of a split command; nothing to do yet.
    Partial,
    /// A command chunk the JS would drop silently (out-of-order split chunks).
    Dropped,
}

/// Sans-IO decoder for one data channel: framing plus command bodies.
#[derive(Debug)]
pub struct CommandDecoder {
    frames: framing::Decoder,
    limits: CommandLimits,
}

impl CommandDecoder {
    pub fn new(max_command_size: usize, limits: CommandLimits) -> Self {
        Self {
            frames: framing::Decoder::new(max_command_size),
            limits,
        }
    }

    /// Interprets one received data-channel message.
    pub fn push<'a>(&mut self, message: &'a [u8]) -> Result<Incoming<'a>, ProtoError> {
        Ok(match self.frames.push(message)? {
            framing::Frame::Command(body) => {
                Incoming::Command(PeerCommand::decode(&body, &self.limits)?)
            }
            framing::Frame::Data(d) => Incoming::Data(d),
            framing::Frame::Partial => Incoming::Partial,
            framing::Frame::Dropped => Incoming::Dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: PeerCommand) {
        let messages = c.encode(framing::DEFAULT_MAX_MESSAGE_SIZE).unwrap();
        let mut d = CommandDecoder::new(1 << 20, CommandLimits::default());
        let mut got = None;
        for m in &messages {
            if let Incoming::Command(c) = d.push(m).unwrap() {
                got = Some(c);
            }
        }
        assert_eq!(got, Some(c));
    }

    #[test]
    fn every_command_round_trips() {
        round_trip(PeerCommand::SegmentsAnnouncement {
            loaded: vec![1, 2, 3, 300, 70_000],
            http_loading: vec![4],
        });
        round_trip(PeerCommand::SegmentsAnnouncement {
            loaded: vec![],
            http_loading: vec![],
        });
        round_trip(PeerCommand::SegmentRequest {
            segment: 12345,
            request_id: 999,
            byte_from: Some(1000),
        });
        round_trip(PeerCommand::SegmentRequest {
            segment: 0,
            request_id: 0,
            byte_from: None,
        });
        round_trip(PeerCommand::SegmentData {
            segment: 1 << 40,
            request_id: 7,
            size: 5_000_000,
        });
        round_trip(PeerCommand::SendingCompleted {
            segment: 1,
            request_id: 2,
        });
        round_trip(PeerCommand::SegmentAbsent {
            segment: 1,
            request_id: 2,
        });
        round_trip(PeerCommand::CancelSegmentRequest {
            segment: 1,
            request_id: 2,
        });
    }

    fn decode(body: &[u8]) -> Result<PeerCommand, ProtoError> {
        PeerCommand::decode(body, &CommandLimits::default())
    }

    #[test]
    fn hostile_bodies() {
        assert_eq!(decode(&[]), Err(ProtoError::EmptyCommand));
        assert_eq!(decode(&[9]), Err(ProtoError::UnknownCommand(9)));
        assert_eq!(
            decode(&[1, b'i', 0x01, 5]),
            Err(ProtoError::MissingField {
                command: "SegmentRequest",
                field: 'r'
            })
        );
        // name with no item
        assert_eq!(decode(&[1, b'i']), Err(ProtoError::Truncated("field")));
        // truncated int
        assert_eq!(
            decode(&[1, b'i', 0x04, 5]),
            Err(ProtoError::Truncated("integer"))
        );
        // unknown item type 3..15
        assert_eq!(
            decode(&[1, b'i', 0x31]),
            Err(ProtoError::UnknownItemType {
                name: 'i',
                item_type: 3
            })
        );
        // i as a string
        assert_eq!(
            decode(&[1, b'i', 0x20, 0]),
            Err(ProtoError::WrongFieldType('i'))
        );
        // l as an int
        assert_eq!(
            decode(&[0, b'l', 0x01, 0]),
            Err(ProtoError::WrongFieldType('l'))
        );
        // unknown fields are skipped
        assert_eq!(
            decode(&[3, b'z', 0x01, 1, b'i', 0x01, 5, b'r', 0x01, 6, b'q', 0x20, 1, b'x']),
            Ok(PeerCommand::SendingCompleted {
                segment: 5,
                request_id: 6
            })
        );
        // negative values decode (meaning is the session's business)
        assert_eq!(
            decode(&[2, b'i', 0x01, 1, b's', 0x01, 0x85, b'r', 0x01, 1]),
            Ok(PeerCommand::SegmentData {
                segment: 1,
                request_id: 1,
                size: -5
            })
        );
    }

    #[test]
    fn announcement_limit_spans_both_lists() {
        let c = PeerCommand::SegmentsAnnouncement {
            loaded: (0..30).collect(),
            http_loading: (100..130).collect(),
        };
        let body = c.body().unwrap();
        let limits = CommandLimits { max_announced: 50 };
        assert_eq!(
            PeerCommand::decode(&body, &limits),
            Err(ProtoError::TooManySegments {
                count: 60,
                limit: 50
            })
        );
    }
}
