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
    /// Last code of the upstream range (6..=63 is left to p2p-media-loader).
    pub const UPSTREAM_MAX: u8 = 63;
    /// mediamesh part extension (`PROTOCOL.md` §5), sent only to peers whose
    /// announcement carries [`super::EXT_PARTS`] in field `x`.
    pub const PARTS_ANNOUNCEMENT: u8 = 64;
    pub const PART_REQUEST: u8 = 65;
    pub const PART_DATA: u8 = 66;
    pub const PART_SENDING_COMPLETED: u8 = 67;
    pub const PART_ABSENT: u8 = 68;
    pub const CANCEL_PART_REQUEST: u8 = 69;
}

/// Bit of the SegmentsAnnouncement field `x` saying "I speak the part extension".
pub const EXT_PARTS: i64 = 1;
/// Highest part index on the wire (a part is packed as `msn << 8 | index`).
pub const MAX_PART_INDEX: u32 = 255;
/// Highest media sequence number a packed part can carry and stay below 2^53 (what
/// a JavaScript number holds exactly).
pub const MAX_PART_MSN: i64 = (1 << 45) - 1;
/// Longest part signature (`g` of PartData) accepted or sent: the origin's are
/// about 105 ASCII characters.
pub const MAX_PART_SIGNATURE: usize = 256;

/// One LL-HLS part on the wire: media sequence number and index in its segment
/// (`part{msn}.{index}.m4s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WirePart {
    pub segment: SegmentId,
    pub index: u32,
}

impl WirePart {
    fn pack(self) -> Result<i64, UsageError> {
        if !(0..=MAX_PART_MSN).contains(&self.segment) || self.index > MAX_PART_INDEX {
            return Err(UsageError::PartOutOfRange {
                segment: self.segment,
                index: self.index,
            });
        }
        Ok((self.segment << 8) | i64::from(self.index))
    }

    fn unpack(v: i64) -> Result<Self, ProtoError> {
        if !(0..=(MAX_PART_MSN << 8 | 0xff)).contains(&v) {
            return Err(ProtoError::BadValue {
                field: "part",
                value: v,
            });
        }
        Ok(WirePart {
            segment: v >> 8,
            index: (v & 0xff) as u32,
        })
    }
}

/// Decode-time bounds.
#[derive(Debug, Clone, Copy)]
pub struct CommandLimits {
    /// Most segment ids accepted in one announcement (`l` and `p` together).
    pub max_announced: usize,
    /// Most parts accepted in one PartsAnnouncement.
    pub max_announced_parts: usize,
}

impl Default for CommandLimits {
    fn default() -> Self {
        Self {
            max_announced: 20_000,
            max_announced_parts: 1_024,
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
        /// Field `x`, our extension bits ([`EXT_PARTS`]); 0 = omitted. Stock peers
        /// skip the unknown field.
        extensions: i64,
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
    /// `c=64` (extension): the parts the sender holds, verified (`q`, packed
    /// `msn << 8 | index`). Replaces the previous part announcement.
    PartsAnnouncement { parts: Vec<WirePart> },
    /// `c=65`: send me part `n` of segment `i`.
    PartRequest {
        part: WirePart,
        request_id: RequestId,
    },
    /// `c=66`: header before the raw chunks of a part: `s` bytes follow. `g`
    /// (optional String): the origin's object signature of the part, the
    /// `mediamesh-signature` header value the sender got with it.
    PartData {
        part: WirePart,
        request_id: RequestId,
        size: i64,
        signature: Option<String>,
    },
    /// `c=67`: all bytes of the part were sent.
    PartSendingCompleted {
        part: WirePart,
        request_id: RequestId,
    },
    /// `c=68`: I do not have that part.
    PartAbsent {
        part: WirePart,
        request_id: RequestId,
    },
    /// `c=69`: stop sending that part.
    CancelPartRequest {
        part: WirePart,
        request_id: RequestId,
    },
    /// A well-formed command with a code of 70..=255: a later extension, ignored.
    Extension { code: u8 },
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
            Self::PartsAnnouncement { .. } => "PartsAnnouncement",
            Self::PartRequest { .. } => "PartRequest",
            Self::PartData { .. } => "PartData",
            Self::PartSendingCompleted { .. } => "PartSendingCompleted",
            Self::PartAbsent { .. } => "PartAbsent",
            Self::CancelPartRequest { .. } => "CancelPartRequest",
            Self::Extension { .. } => "Extension",
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
                extensions,
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
                if *extensions != 0 {
                    int(&mut out, b'x', *extensions);
                }
            }
            Self::PartsAnnouncement { parts } => {
                out.push(code::PARTS_ANNOUNCEMENT);
                let packed = parts
                    .iter()
                    .map(|p| p.pack())
                    .collect::<Result<Vec<_>, _>>()?;
                if !packed.is_empty() {
                    out.push(b'q');
                    serial::put_similar_int_array(&mut out, &packed)?;
                }
            }
            Self::PartRequest { part, request_id }
            | Self::PartSendingCompleted { part, request_id }
            | Self::PartAbsent { part, request_id }
            | Self::CancelPartRequest { part, request_id } => {
                part.pack()?;
                out.push(match self {
                    Self::PartRequest { .. } => code::PART_REQUEST,
                    Self::PartSendingCompleted { .. } => code::PART_SENDING_COMPLETED,
                    Self::PartAbsent { .. } => code::PART_ABSENT,
                    _ => code::CANCEL_PART_REQUEST,
                });
                int(&mut out, b'i', part.segment);
                int(&mut out, b'n', i64::from(part.index));
                int(&mut out, b'r', *request_id);
            }
            Self::PartData {
                part,
                request_id,
                size,
                signature,
            } => {
                part.pack()?;
                out.push(code::PART_DATA);
                int(&mut out, b'i', part.segment);
                int(&mut out, b'n', i64::from(part.index));
                int(&mut out, b's', *size);
                int(&mut out, b'r', *request_id);
                if let Some(g) = signature {
                    if g.len() > MAX_PART_SIGNATURE {
                        return Err(UsageError::StringTooLong(g.len()));
                    }
                    out.push(b'g');
                    serial::put_string(&mut out, g)?;
                }
            }
            Self::Extension { code } => out.push(*code),
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
        if command > code::CANCEL_SEGMENT_REQUEST && command <= code::UPSTREAM_MAX {
            return Err(ProtoError::UnknownCommand(command));
        }
        let mut ints: [(u8, Option<i64>); 6] = [
            (b'i', None),
            (b'r', None),
            (b's', None),
            (b'b', None),
            (b'x', None),
            (b'n', None),
        ];
        let mut loaded = None;
        let mut loading = None;
        let mut parts = None;
        let mut signature = None;
        while let Some((&name, item)) = rest.split_first() {
            let item_type = item.first().ok_or(ProtoError::Truncated("field"))? >> 4;
            let used = match item_type {
                ITEM_INT => {
                    let (v, used) = serial::get_int(item)?;
                    match ints.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = Some(v),
                        None if matches!(name, b'l' | b'p')
                            || (name == b'q' && command == code::PARTS_ANNOUNCEMENT) =>
                        {
                            return Err(ProtoError::WrongFieldType(char::from(name)))
                        }
                        None => {}
                    }
                    used
                }
                ITEM_SIMILAR_INT_ARRAY => {
                    let taken =
                        loaded.as_ref().map_or(0, Vec::len) + loading.as_ref().map_or(0, Vec::len);
                    let budget = if name == b'q' {
                        limits.max_announced_parts
                    } else {
                        limits.max_announced.saturating_sub(taken)
                    };
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
                        b'q' => parts = Some(values),
                        b'i' | b'r' | b's' | b'b' | b'x' | b'n' => {
                            return Err(ProtoError::WrongFieldType(char::from(name)))
                        }
                        _ => {}
                    }
                    used
                }
                ITEM_STRING => {
                    let (text, used) = serial::get_string(item)?;
                    if name == b'g' && command == code::PART_DATA {
                        if text.len() > MAX_PART_SIGNATURE {
                            return Err(ProtoError::BadValue {
                                field: "part signature length",
                                value: text.len() as i64,
                            });
                        }
                        signature = Some(text);
                    }
                    // Our own fields (`x`, `n`, `q`) as strings are skipped like
                    // unknown ones: older senders may have used those names.
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
        let [(_, i), (_, r), (_, s), (_, b), (_, x), (_, n)] = ints;
        let need = |v: Option<i64>, field: char, command: &'static str| {
            v.ok_or(ProtoError::MissingField { command, field })
        };
        let part = |command: &'static str| -> Result<WirePart, ProtoError> {
            let segment = need(i, 'i', command)?;
            let index = need(n, 'n', command)?;
            if !(0..=MAX_PART_MSN).contains(&segment) {
                return Err(ProtoError::BadValue {
                    field: "part segment",
                    value: segment,
                });
            }
            let index = u32::try_from(index)
                .ok()
                .filter(|i| *i <= MAX_PART_INDEX)
                .ok_or(ProtoError::BadValue {
                    field: "part index",
                    value: index,
                })?;
            Ok(WirePart { segment, index })
        };
        Ok(match command {
            code::SEGMENTS_ANNOUNCEMENT => Self::SegmentsAnnouncement {
                loaded: loaded.unwrap_or_default(),
                http_loading: loading.unwrap_or_default(),
                extensions: x.unwrap_or(0),
            },
            code::PARTS_ANNOUNCEMENT => Self::PartsAnnouncement {
                parts: parts
                    .unwrap_or_default()
                    .into_iter()
                    .map(WirePart::unpack)
                    .collect::<Result<_, _>>()?,
            },
            code::PART_REQUEST => Self::PartRequest {
                part: part("PartRequest")?,
                request_id: need(r, 'r', "PartRequest")?,
            },
            code::PART_DATA => Self::PartData {
                part: part("PartData")?,
                request_id: need(r, 'r', "PartData")?,
                size: need(s, 's', "PartData")?,
                signature,
            },
            code::PART_SENDING_COMPLETED => Self::PartSendingCompleted {
                part: part("PartSendingCompleted")?,
                request_id: need(r, 'r', "PartSendingCompleted")?,
            },
            code::PART_ABSENT => Self::PartAbsent {
                part: part("PartAbsent")?,
                request_id: need(r, 'r', "PartAbsent")?,
            },
            code::CANCEL_PART_REQUEST => Self::CancelPartRequest {
                part: part("CancelPartRequest")?,
                request_id: need(r, 'r', "CancelPartRequest")?,
            },
            c if c > code::CANCEL_PART_REQUEST => Self::Extension { code: c },
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
            extensions: 0,
        });
        round_trip(PeerCommand::SegmentsAnnouncement {
            loaded: vec![],
            http_loading: vec![],
            extensions: EXT_PARTS,
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
        assert_eq!(decode(&[63]), Err(ProtoError::UnknownCommand(63)));
        // a later extension's command parses and is ignored
        assert_eq!(
            decode(&[200, b'i', 0x01, 5]),
            Ok(PeerCommand::Extension { code: 200 })
        );
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
            extensions: 0,
        };
        let body = c.body().unwrap();
        let limits = CommandLimits {
            max_announced: 50,
            ..CommandLimits::default()
        };
        assert_eq!(
            PeerCommand::decode(&body, &limits),
            Err(ProtoError::TooManySegments {
                count: 60,
                limit: 50
            })
        );
    }

    #[test]
    fn part_commands_round_trip() {
        let part = WirePart {
            segment: 1234,
            index: 3,
        };
        round_trip(PeerCommand::PartsAnnouncement {
            parts: vec![
                part,
                WirePart {
                    segment: MAX_PART_MSN,
                    index: 255,
                },
                WirePart {
                    segment: 0,
                    index: 0,
                },
            ],
        });
        round_trip(PeerCommand::PartsAnnouncement { parts: vec![] });
        round_trip(PeerCommand::PartRequest {
            part,
            request_id: 9,
        });
        round_trip(PeerCommand::PartData {
            part,
            request_id: 9,
            size: 70_000,
            signature: None,
        });
        round_trip(PeerCommand::PartData {
            part,
            request_id: 9,
            size: 70_000,
            signature: Some(format!("0123456789abcdef:{}", "A".repeat(86) + "==")),
        });
        round_trip(PeerCommand::PartSendingCompleted {
            part,
            request_id: 9,
        });
        round_trip(PeerCommand::PartAbsent {
            part,
            request_id: 9,
        });
        round_trip(PeerCommand::CancelPartRequest {
            part,
            request_id: 9,
        });
        // Example from PROTOCOL.md §5.
        let body = PeerCommand::PartRequest {
            part: WirePart {
                segment: 123,
                index: 2,
            },
            request_id: 7,
        }
        .body()
        .unwrap();
        assert_eq!(body, [65, b'i', 0x01, 0x7b, b'n', 0x01, 2, b'r', 0x01, 7]);
    }

    #[test]
    fn unencodable_parts_are_refused() {
        let c = PeerCommand::PartRequest {
            part: WirePart {
                segment: MAX_PART_MSN + 1,
                index: 0,
            },
            request_id: 1,
        };
        assert!(matches!(c.body(), Err(UsageError::PartOutOfRange { .. })));
        let c = PeerCommand::PartsAnnouncement {
            parts: vec![WirePart {
                segment: 1,
                index: 256,
            }],
        };
        assert!(matches!(c.body(), Err(UsageError::PartOutOfRange { .. })));
    }

    #[test]
    fn part_signatures_are_bounded_both_ways() {
        let part = WirePart {
            segment: 1,
            index: 0,
        };
        let long = PeerCommand::PartData {
            part,
            request_id: 1,
            size: 10,
            signature: Some("a".repeat(MAX_PART_SIGNATURE + 1)),
        };
        assert!(matches!(long.body(), Err(UsageError::StringTooLong(_))));
        // Received: a 300-byte `g` on PartData is refused; on other commands skipped.
        let mut body = vec![
            66, b'i', 0x01, 1, b'n', 0x01, 0, b's', 0x01, 10, b'r', 0x01, 1,
        ];
        body.extend_from_slice(&[b'g', 0x21, 0x2c]);
        body.extend(std::iter::repeat_n(b'a', 300));
        assert!(matches!(
            decode(&body),
            Err(ProtoError::BadValue {
                field: "part signature length",
                ..
            })
        ));
        body[0] = 67;
        assert!(decode(&body).is_ok());
    }

    #[test]
    fn hostile_part_bodies() {
        // missing n
        assert_eq!(
            decode(&[65, b'i', 0x01, 5, b'r', 0x01, 1]),
            Err(ProtoError::MissingField {
                command: "PartRequest",
                field: 'n'
            })
        );
        // index 256
        assert_eq!(
            decode(&[65, b'i', 0x01, 5, b'n', 0x02, 0x01, 0x00, b'r', 0x01, 1]),
            Err(ProtoError::BadValue {
                field: "part index",
                value: 256
            })
        );
        // negative msn
        assert_eq!(
            decode(&[66, b'i', 0x01, 0x85, b'n', 0x01, 0, b's', 0x01, 1, b'r', 0x01, 1]),
            Err(ProtoError::BadValue {
                field: "part segment",
                value: -5
            })
        );
        // q as an int, n as a string
        assert_eq!(
            decode(&[64, b'q', 0x01, 0]),
            Err(ProtoError::WrongFieldType('q'))
        );
        assert_eq!(
            decode(&[65, b'n', 0x20, 0]),
            Err(ProtoError::MissingField {
                command: "PartRequest",
                field: 'i'
            })
        );
        // a packed part that is negative
        let mut body = vec![64, b'q'];
        serial::put_similar_int_array(&mut body, &[-3]).unwrap();
        assert!(matches!(decode(&body), Err(ProtoError::BadValue { .. })));
        // too many parts
        let mut body = vec![64, b'q'];
        serial::put_similar_int_array(&mut body, &(0..2000).collect::<Vec<_>>()).unwrap();
        assert!(matches!(
            decode(&body),
            Err(ProtoError::TooManySegments { .. })
        ));
        // x is read; old decoders skip it (unknown int field)
        assert_eq!(
            decode(&[0, b'x', 0x01, 1]),
            Ok(PeerCommand::SegmentsAnnouncement {
                loaded: vec![],
                http_loading: vec![],
                extensions: 1
            })
        );
    }

    #[test]
    fn random_bodies_never_panic() {
        let mut x: u64 = 0x1234_5678;
        for _ in 0..20_000 {
            let len = (x % 40) as usize;
            let mut body = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                body.push(x as u8);
            }
            if let Some(b) = body.first_mut() {
                *b = 64 + *b % 8;
            }
            let _ = decode(&body);
        }
    }
}
