//! Framing of peer commands on a WebRTC data channel, and the sans-IO [`Decoder`]
//! that tells commands from raw segment bytes exactly as p2p-media-loader 2.3 does
//! (`binary-command-creator.ts`, `peer-protocol.ts`).
//!
//! A command body that fits is sent as one message `cstr` + body + `cend`. A longer
//! one is cut into `n` equal slices sent as `cstr…dend`, `dstr…dend`…, `dstr…cend`.
//! Every other message is raw segment data. A message is a command chunk iff it
//! starts with `cstr`/`dstr` **and** ends with `cend`/`dend`; the framing has no
//! escape, so the sender of segment data must avoid chunks of that shape
//! ([`data_chunk_len`]). Not for command bodies (see `command`).

use super::error::{ProtoError, UsageError};

pub const COMMAND_START: &[u8; 4] = b"cstr";
pub const COMMAND_END: &[u8; 4] = b"cend";
pub const DIV_START: &[u8; 4] = b"dstr";
pub const DIV_END: &[u8; 4] = b"dend";
const FRAME_LEN: usize = 8;

/// p2p-media-loader's default `webRtcMaxMessageSize` (64 KiB − 1).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 - 1;
/// Smallest max message size we accept; the JS splitting arithmetic breaks down
/// for tiny sizes (it may emit messages larger than the limit). Defined beside the
/// error that names it, so the error module needs nothing of this one.
pub use super::error::MIN_MESSAGE_SIZE;

/// Whether p2p-media-loader reads `message` as a command chunk.
pub fn is_command_chunk(message: &[u8]) -> bool {
    message.len() >= FRAME_LEN
        && (message.starts_with(COMMAND_START) || message.starts_with(DIV_START))
        && (message.ends_with(COMMAND_END) || message.ends_with(DIV_END))
}

/// Frames a command body into data-channel messages of at most `max_message_size`
/// bytes, splitting exactly as `BinaryCommandCreator.complete()` does.
pub fn frame(body: &[u8], max_message_size: usize) -> Result<Vec<Vec<u8>>, UsageError> {
    if max_message_size < MIN_MESSAGE_SIZE {
        return Err(UsageError::MessageSizeTooSmall(max_message_size));
    }
    let wrap = |slice: &[u8], start: &[u8; 4], end: &[u8; 4]| {
        let mut m = Vec::with_capacity(slice.len() + FRAME_LEN);
        m.extend_from_slice(start);
        m.extend_from_slice(slice);
        m.extend_from_slice(end);
        m
    };
    if body.len() + FRAME_LEN <= max_message_size {
        return Ok(vec![wrap(body, COMMAND_START, COMMAND_END)]);
    }
    let mut count = body.len().div_ceil(max_message_size);
    if body.len().div_ceil(count) + FRAME_LEN > max_message_size {
        count += 1;
    }
    let chunk_len = body.len().div_ceil(count);
    Ok((0..count)
        .map(|i| {
            let from = (i * chunk_len).min(body.len());
            let to = ((i + 1) * chunk_len).min(body.len());
            let start = if i == 0 { COMMAND_START } else { DIV_START };
            let end = if i == count - 1 { COMMAND_END } else { DIV_END };
            wrap(&body[from..to], start, end)
        })
        .collect())
}

/// Length of the next raw data chunk to send from `remaining` bytes: at most
/// `max_message_size`, and one byte shorter if the chunk would otherwise look like
/// a command to the receiver (the JS sender does not guard against this; a
/// segment that happens to contain `cstr…cend` at a chunk boundary is lost).
pub fn data_chunk_len(remaining: &[u8], max_message_size: usize) -> usize {
    let len = remaining.len().min(max_message_size);
    if is_command_chunk(&remaining[..len]) {
        // The shortened chunk ends in "…en", which is no end frame.
        len - 1
    } else {
        len
    }
}

/// One received data-channel message, as the JS peer would interpret it.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete command body (type byte + fields), reassembled if it was split.
    Command(Vec<u8>),
    /// A chunk of a split command was taken; more must follow.
    Partial,
    /// A chunk of a split command was dropped, as the JS drops it (a `dstr` chunk
    /// with no `cstr` before it, or a new `cstr` while joining).
    Dropped,
    /// Raw segment bytes.
    Data(&'a [u8]),
}

/// Sans-IO reassembly of split commands (`BinaryCommandChunksJoiner`), with a bound
/// on the joined size that the JS lacks.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes joined so far. The JS tests this byte length (not a chunk count) to
    /// know whether joining started, so a `cstr` chunk with an empty body does not
    /// count as started; we mirror that.
    joining: Vec<u8>,
    max_command_size: usize,
}

impl Decoder {
    pub fn new(max_command_size: usize) -> Self {
        Self {
            joining: Vec::new(),
            max_command_size,
        }
    }

    /// Classifies one received message.
    pub fn push<'a>(&mut self, message: &'a [u8]) -> Result<Frame<'a>, ProtoError> {
        if !is_command_chunk(message) {
            return Ok(Frame::Data(message));
        }
        let first = message.starts_with(COMMAND_START);
        let joining = !self.joining.is_empty();
        if !joining && !first {
            return Ok(Frame::Dropped);
        }
        if joining && first {
            self.joining.clear();
            return Ok(Frame::Dropped);
        }
        let body = &message[4..message.len() - 4];
        let size = self.joining.len() + body.len();
        if size > self.max_command_size {
            self.joining = Vec::new();
            return Err(ProtoError::CommandTooLarge {
                size,
                limit: self.max_command_size,
            });
        }
        self.joining.extend_from_slice(body);
        if message.ends_with(COMMAND_END) {
            Ok(Frame::Command(std::mem::take(&mut self.joining)))
        } else {
            Ok(Frame::Partial)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_commands_are_one_message() {
        assert_eq!(
            frame(b"\x01ab", 100).unwrap(),
            vec![b"cstr\x01abcend".to_vec()]
        );
    }

    #[test]
    fn long_commands_split_and_rejoin() {
        let body: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let parts = frame(&body, 100).unwrap();
        assert!(parts.len() > 10);
        assert!(parts.iter().all(|p| p.len() <= 100));
        assert!(parts[0].starts_with(b"cstr") && parts[0].ends_with(b"dend"));
        assert!(parts.last().unwrap().starts_with(b"dstr"));
        let mut d = Decoder::new(4096);
        let mut out = None;
        for p in &parts {
            match d.push(p).unwrap() {
                Frame::Command(c) => out = Some(c),
                Frame::Partial => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(out.unwrap(), body);
    }

    #[test]
    fn tiny_message_size_is_refused() {
        assert_eq!(frame(b"x", 10), Err(UsageError::MessageSizeTooSmall(10)));
    }

    #[test]
    fn classification_matches_js() {
        assert!(!is_command_chunk(b"cstr"));
        assert!(!is_command_chunk(b"cstrend"));
        assert!(is_command_chunk(b"cstrcend"));
        assert!(is_command_chunk(b"dstrxdend"));
        assert!(!is_command_chunk(b"xcstrcend"));
        assert!(!is_command_chunk(b"cstrcendx"));
    }

    #[test]
    fn hostile_sequences() {
        let mut d = Decoder::new(16);
        // dstr without cstr: dropped
        assert_eq!(d.push(b"dstrabcdend").unwrap(), Frame::Dropped);
        // data passes through even while joining
        assert_eq!(d.push(b"cstr\x01dend").unwrap(), Frame::Partial);
        assert_eq!(d.push(b"raw").unwrap(), Frame::Data(b"raw"));
        // a new cstr while joining drops both, like the JS
        assert_eq!(d.push(b"cstr\x02cend").unwrap(), Frame::Dropped);
        assert_eq!(d.push(b"cstr\x02cend").unwrap(), Frame::Command(vec![2]));
        // size bound
        assert_eq!(d.push(b"cstr0123456789dend").unwrap(), Frame::Partial);
        assert!(matches!(
            d.push(b"dstr0123456789cend"),
            Err(ProtoError::CommandTooLarge { .. })
        ));
        // the decoder recovered
        assert_eq!(d.push(b"cstr\x03cend").unwrap(), Frame::Command(vec![3]));
        // an empty-bodied first chunk does not start joining (JS tests byte length)
        assert_eq!(d.push(b"cstrdend").unwrap(), Frame::Partial);
        assert_eq!(d.push(b"dstr\x04cend").unwrap(), Frame::Dropped);
    }

    #[test]
    fn data_chunks_never_look_like_commands() {
        let mut seg = b"cstr".to_vec();
        seg.extend([0u8; 92]);
        seg.extend(b"cend");
        seg.extend([7u8; 50]);
        let mut rest = &seg[..];
        let mut d = Decoder::new(1024);
        let mut total = 0;
        while !rest.is_empty() {
            let n = data_chunk_len(rest, 100);
            assert!(n > 0 && n <= 100);
            assert_eq!(d.push(&rest[..n]).unwrap(), Frame::Data(&rest[..n]));
            total += n;
            rest = &rest[n..];
        }
        assert_eq!(total, seg.len());
    }
}
