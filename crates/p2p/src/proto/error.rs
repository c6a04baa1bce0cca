//! Errors of the peer wire protocol.
//!
//! [`ProtoError`] is always the remote peer's fault (a malformed or hostile message):
//! the caller drops the connection and may ban the peer. [`UsageError`] is a local
//! misuse of the API (a command that cannot be encoded, a request while another is
//! outstanding); it never comes from the network.

use thiserror::Error;

/// Smallest max message size the framing accepts (see `framing`).
pub const MIN_MESSAGE_SIZE: usize = 64;

/// The remote peer broke the protocol; drop the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtoError {
    #[error("command body is empty")]
    EmptyCommand,
    #[error("unknown command type {0}")]
    UnknownCommand(u8),
    #[error("field {name:?} has unknown item type {item_type}")]
    UnknownItemType { name: char, item_type: u8 },
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("integer does not fit in 64 bits")]
    IntOutOfRange,
    #[error("{command} lacks field {field:?}")]
    MissingField { command: &'static str, field: char },
    #[error("field {0:?} has the wrong item type")]
    WrongFieldType(char),
    #[error("string is not UTF-8")]
    InvalidString,
    #[error("{field} is negative or out of range: {value}")]
    BadValue { field: &'static str, value: i64 },
    #[error("command of {size} bytes exceeds the limit of {limit}")]
    CommandTooLarge { size: usize, limit: usize },
    #[error("announcement of {count} segments exceeds the limit of {limit}")]
    TooManySegments { count: usize, limit: usize },
    #[error("{len} bytes of segment data with no request that could explain them")]
    UnexpectedData { len: usize },
    #[error("peer sent {received} bytes, more than the {expected} it announced")]
    Overflow { received: u64, expected: u64 },
    #[error("peer announced a segment of {size} bytes, the limit is {limit}")]
    SegmentTooLarge { size: u64, limit: u64 },
    #[error("SendingCompleted after {received} of {expected} bytes")]
    LengthMismatch { received: u64, expected: u64 },
    #[error(
        "SendingCompleted for segment {segment} request {request_id}, not the one in progress"
    )]
    WrongCompletion { segment: i64, request_id: i64 },
}

/// A local misuse of the API; never caused by the remote peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UsageError {
    #[error("announcement needs {0} groups of ids, the wire format allows 255")]
    TooManyGroups(usize),
    #[error("string of {0} bytes is longer than the 4095 the wire format allows")]
    StringTooLong(usize),
    #[error("command of {size} bytes exceeds the limit of {limit}")]
    CommandTooLarge { size: usize, limit: usize },
    #[error("max message size {0} is below the minimum of {min}", min = MIN_MESSAGE_SIZE)]
    MessageSizeTooSmall(usize),
    #[error("a request to this peer is already outstanding")]
    Busy,
    #[error("no request {0} from the peer is waiting for an answer")]
    NoSuchRequest(i64),
    #[error("segment of {size} bytes exceeds the limit of {limit}")]
    SegmentTooLarge { size: u64, limit: u64 },
    #[error(
        "part {index} of segment {segment} cannot be put on the wire (msn < 2^45, index < 256)"
    )]
    PartOutOfRange { segment: i64, index: u32 },
    #[error("the peer does not speak the part extension")]
    NoPartExtension,
}
