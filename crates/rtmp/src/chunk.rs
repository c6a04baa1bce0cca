//! RTMP chunk stream: decoder (chunks -> messages) and encoder
//! (messages -> chunks).
//!
//! This module is for the chunk framing layer only: basic headers (1/2/3-byte
//! chunk stream ids), message headers of types 0-3, extended timestamps,
//! timestamp-delta accumulation and reassembly of interleaved messages. It
//! enforces the size limits given to it (chunk size, message size, number of
//! chunk streams, bytes buffered in partial messages).
//!
//! It does *not* interpret message payloads: the owner applies Set Chunk Size
//! ([`ChunkDecoder::set_chunk_size`]) and Abort ([`ChunkDecoder::abort`]) when
//! it sees those messages, so the decoder yields one message at a time.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Chunk size every RTMP connection starts with, in both directions.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Timestamp field value that announces an extended (32-bit) timestamp.
const EXTENDED_TIMESTAMP: u32 = 0x00ff_ffff;
/// Largest possible chunk header: 3-byte basic + 11-byte type 0 + 4-byte
/// extended timestamp.
pub const MAX_HEADER_SIZE: usize = 18;
/// Largest chunk stream id (3-byte basic header form).
pub const MAX_CSID: u32 = 65_599;

/// Chunk-layer protocol violation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    #[error("chunk of type {fmt} on chunk stream {csid} which has no previous header")]
    NoPreviousHeader { csid: u32, fmt: u8 },
    #[error("more than {limit} chunk streams in use")]
    TooManyChunkStreams { limit: usize },
    #[error("message length {len} exceeds the limit of {limit} bytes")]
    MessageTooLarge { len: u32, limit: u32 },
    #[error("invalid chunk size {size} (must be 1..={limit})")]
    InvalidChunkSize { size: u32, limit: u32 },
    #[error("more than {limit} bytes buffered in incomplete messages")]
    TooMuchBuffered { limit: usize },
}

/// Limits applied by the [`ChunkDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    pub max_chunk_size: u32,
    pub max_message_size: u32,
    pub max_chunk_streams: usize,
    /// Total bytes held in incomplete messages across all chunk streams.
    pub max_buffered: usize,
}

/// One reassembled RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping).
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last type 0/1/2 header used an extended timestamp, so type 3
    /// chunks on this stream carry one too.
    extended: bool,
    /// Payload of the message being reassembled.
    payload: BytesMut,
    /// A message is being reassembled (`payload.len() < length`).
    in_progress: bool,
}

/// Payload bytes still expected for the chunk whose header was parsed.
#[derive(Debug, Clone, Copy)]
struct OpenChunk {
    csid: u32,
    remaining: usize,
}

/// Decodes a byte stream of chunks into [`RawMessage`]s.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    chunk_size: u32,
    streams: HashMap<u32, ChunkStream>,
    open: Option<OpenChunk>,
    buffered: usize,
}

struct Header {
    fmt: u8,
    csid: u32,
    /// Timestamp or delta (already resolved if extended).
    time: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

impl ChunkDecoder {
    pub fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            open: None,
            buffered: 0,
        }
    }

    /// Replaces the limits; they apply to the headers and payload read from now
    /// on (a message in progress that is over the new limits fails).
    pub fn set_limits(&mut self, limits: DecoderLimits) {
        self.limits = limits;
    }

    pub fn limits(&self) -> DecoderLimits {
        self.limits
    }

    /// Current incoming chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Apply a Set Chunk Size from the peer. The top bit must be clear, the
    /// size non-zero and within `max_chunk_size`.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > 0x7fff_ffff || size > self.limits.max_chunk_size {
            return Err(ChunkError::InvalidChunkSize {
                size,
                limit: self.limits.max_chunk_size,
            });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Apply an Abort message: drop the partial message on `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(cs) = self.streams.get_mut(&csid) {
            if cs.in_progress {
                self.buffered -= cs.payload.len();
                cs.payload = BytesMut::new();
                cs.in_progress = false;
                if matches!(self.open, Some(o) if o.csid == csid) {
                    // Should not happen (Abort arrives between chunks), but
                    // the rest of that chunk then belongs to nothing.
                    self.open = None;
                }
            }
        }
    }

    /// Bytes held in incomplete messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Number of chunk streams seen so far.
    pub fn chunk_streams(&self) -> usize {
        self.streams.len()
    }

    /// Consume bytes from the front of `input` until one message is complete
    /// (returned) or more input is needed (`Ok(None)`; incomplete headers
    /// stay in `input`, partial payloads are moved into the decoder).
    pub fn poll(&mut self, input: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            if let Some(open) = self.open {
                if let Some(msg) = self.read_payload(open, input)? {
                    return Ok(Some(msg));
                }
                if self.open.is_some() {
                    return Ok(None); // need more payload bytes
                }
                continue;
            }
            let Some((consumed, header)) = self.parse_header(input)? else {
                return Ok(None);
            };
            input.advance(consumed);
            if let Some(msg) = self.apply_header(header)? {
                return Ok(Some(msg));
            }
        }
    }

    fn read_payload(
        &mut self,
        open: OpenChunk,
        input: &mut BytesMut,
    ) -> Result<Option<RawMessage>, ChunkError> {
        let n = open.remaining.min(input.len());
        if n == 0 {
            return Ok(None);
        }
        if self.buffered + n > self.limits.max_buffered {
            return Err(ChunkError::TooMuchBuffered {
                limit: self.limits.max_buffered,
            });
        }
        let Some(cs) = self.streams.get_mut(&open.csid) else {
            // Unreachable by construction; drop the bytes rather than panic.
            input.advance(n);
            self.open = None;
            return Ok(None);
        };
        cs.payload.extend_from_slice(&input[..n]);
        input.advance(n);
        self.buffered += n;
        let remaining = open.remaining - n;
        self.open = (remaining > 0).then_some(OpenChunk { remaining, ..open });
        if remaining == 0 && cs.payload.len() as u64 >= u64::from(cs.length) {
            self.buffered -= cs.payload.len();
            cs.in_progress = false;
            let payload = std::mem::take(&mut cs.payload).freeze();
            return Ok(Some(RawMessage {
                csid: open.csid,
                timestamp: cs.timestamp,
                type_id: cs.type_id,
                stream_id: cs.stream_id,
                payload,
            }));
        }
        Ok(None)
    }

    /// Parse one chunk header without consuming. `Ok(None)` if incomplete.
    fn parse_header(&self, input: &[u8]) -> Result<Option<(usize, Header)>, ChunkError> {
        let mut r = Reader { buf: input, pos: 0 };
        let Some(b0) = r.u8() else { return Ok(None) };
        let fmt = b0 >> 6;
        let csid = match b0 & 0x3f {
            0 => match r.u8() {
                Some(b) => 64 + u32::from(b),
                None => return Ok(None),
            },
            1 => match (r.u8(), r.u8()) {
                (Some(lo), Some(hi)) => 64 + u32::from(lo) + 256 * u32::from(hi),
                _ => return Ok(None),
            },
            n => u32::from(n),
        };
        let prev = self.streams.get(&csid);
        if prev.is_none() {
            if fmt != 0 {
                return Err(ChunkError::NoPreviousHeader { csid, fmt });
            }
            if self.streams.len() >= self.limits.max_chunk_streams {
                return Err(ChunkError::TooManyChunkStreams {
                    limit: self.limits.max_chunk_streams,
                });
            }
        }
        let mut h = Header {
            fmt,
            csid,
            time: 0,
            extended: false,
            length: 0,
            type_id: 0,
            stream_id: 0,
        };
        if fmt <= 2 {
            let Some(time) = r.u24() else { return Ok(None) };
            h.time = time;
            h.extended = time == EXTENDED_TIMESTAMP;
        }
        if fmt <= 1 {
            let (Some(length), Some(type_id)) = (r.u24(), r.u8()) else {
                return Ok(None);
            };
            if length > self.limits.max_message_size {
                return Err(ChunkError::MessageTooLarge {
                    len: length,
                    limit: self.limits.max_message_size,
                });
            }
            h.length = length;
            h.type_id = type_id;
        }
        if fmt == 0 {
            let Some(sid) = r.u32_le() else {
                return Ok(None);
            };
            h.stream_id = sid;
        }
        if fmt == 3 {
            h.extended = prev.is_some_and(|p| p.extended);
        }
        if h.extended {
            let Some(ext) = r.u32_be() else {
                return Ok(None);
            };
            if fmt != 3 {
                h.time = ext;
            }
        }
        Ok(Some((r.pos, h)))
    }

    fn apply_header(&mut self, h: Header) -> Result<Option<RawMessage>, ChunkError> {
        let cs = self.streams.entry(h.csid).or_default();
        if h.fmt != 3 && cs.in_progress {
            // A new message header while one is incomplete: the peer gave up
            // on the old one without an Abort. Drop it.
            tracing::debug!(
                csid = h.csid,
                "new message header before previous message completed"
            );
            self.buffered -= cs.payload.len();
            cs.payload = BytesMut::new();
            cs.in_progress = false;
        }
        if !cs.in_progress {
            match h.fmt {
                0 => {
                    cs.timestamp = h.time;
                    // Spec: a type 3 chunk following type 0 uses the type 0
                    // timestamp as its delta.
                    cs.delta = h.time;
                    cs.length = h.length;
                    cs.type_id = h.type_id;
                    cs.stream_id = h.stream_id;
                }
                1 | 2 => {
                    cs.delta = h.time;
                    cs.timestamp = cs.timestamp.wrapping_add(h.time);
                    if h.fmt == 1 {
                        cs.length = h.length;
                        cs.type_id = h.type_id;
                    }
                }
                _ => cs.timestamp = cs.timestamp.wrapping_add(cs.delta),
            }
            if h.fmt != 3 {
                cs.extended = h.extended;
            }
            if cs.length > self.limits.max_message_size {
                // Only reachable for type 2/3 reuse after a limit change.
                return Err(ChunkError::MessageTooLarge {
                    len: cs.length,
                    limit: self.limits.max_message_size,
                });
            }
            if cs.length == 0 {
                return Ok(Some(RawMessage {
                    csid: h.csid,
                    timestamp: cs.timestamp,
                    type_id: cs.type_id,
                    stream_id: cs.stream_id,
                    payload: Bytes::new(),
                }));
            }
            cs.in_progress = true;
            // Pre-size for typical frames without trusting the declared
            // length for large allocations.
            cs.payload.reserve((cs.length as usize).min(64 * 1024));
        }
        let left = (cs.length as usize).saturating_sub(cs.payload.len());
        let remaining = left.min(self.chunk_size as usize);
        self.open = Some(OpenChunk {
            csid: h.csid,
            remaining,
        });
        Ok(None)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let s = self.buf.get(self.pos..self.pos + N)?;
        self.pos += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|b| b[0])
    }
    fn u24(&mut self) -> Option<u32> {
        self.bytes::<3>()
            .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
    fn u32_be(&mut self) -> Option<u32> {
        self.bytes::<4>().map(u32::from_be_bytes)
    }
    fn u32_le(&mut self) -> Option<u32> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }
}

/// Splits outgoing messages into chunks. Uses a type 0 header for the first
/// chunk of every message and type 3 for continuations (simple and always
/// valid; header compression is not worth it for control traffic).
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// Outgoing chunk size; call after *sending* a Set Chunk Size. Values are
    /// clamped to `1..=0x7fffffff`.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, 0x7fff_ffff);
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Append `payload` as one message on chunk stream `csid` (2..=65599;
    /// out-of-range values are clamped). Payloads longer than 16 MiB - 1 are
    /// truncated to what the 24-bit length field can express.
    pub fn encode(
        &self,
        out: &mut BytesMut,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        let csid = csid.clamp(2, MAX_CSID);
        let payload = &payload[..payload.len().min(0x00ff_ffff)];
        let extended = timestamp >= EXTENDED_TIMESTAMP;
        let chunk_size = self.chunk_size as usize;
        out.reserve(payload.len() + MAX_HEADER_SIZE * (1 + payload.len() / chunk_size));
        put_basic_header(out, 0, csid);
        out.put_uint(u64::from(timestamp.min(EXTENDED_TIMESTAMP)), 3);
        out.put_uint(payload.len() as u64, 3);
        out.put_u8(type_id);
        out.put_u32_le(stream_id);
        if extended {
            out.put_u32(timestamp);
        }
        let mut chunks = payload.chunks(chunk_size);
        if let Some(first) = chunks.next() {
            out.put_slice(first);
        }
        for chunk in chunks {
            put_basic_header(out, 3, csid);
            if extended {
                out.put_u32(timestamp);
            }
            out.put_slice(chunk);
        }
    }
}

/// Basic header in its shortest form.
pub fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = (fmt & 3) << 6;
    if (2..64).contains(&csid) {
        out.put_u8(fmt | csid as u8);
    } else if (64..320).contains(&csid) {
        out.put_u8(fmt);
        out.put_u8((csid - 64) as u8);
    } else {
        let v = csid.saturating_sub(64).min(0xffff);
        out.put_u8(fmt | 1);
        out.put_u8(v as u8);
        out.put_u8((v >> 8) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DecoderLimits {
        DecoderLimits {
            max_chunk_size: 1 << 24,
            max_message_size: 1 << 20,
            max_chunk_streams: 8,
            max_buffered: 4 << 20,
        }
    }

    fn drain(dec: &mut ChunkDecoder, input: &mut BytesMut) -> Vec<RawMessage> {
        let mut v = Vec::new();
        while let Some(m) = dec.poll(input).unwrap() {
            v.push(m);
        }
        v
    }

    /// Hand-built chunk: basic header, raw message header fields, optional
    /// extended timestamp, payload.
    fn chunk(fmt: u8, csid: u32, fields: &[u8], ext: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let mut b = BytesMut::new();
        put_basic_header(&mut b, fmt, csid);
        b.put_slice(fields);
        if let Some(e) = ext {
            b.put_u32(e);
        }
        b.put_slice(payload);
        b.to_vec()
    }

    fn t0(ts: u32, len: u32, type_id: u8, sid: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ts.min(EXTENDED_TIMESTAMP).to_be_bytes()[1..]);
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.push(type_id);
        v.extend_from_slice(&sid.to_le_bytes());
        v
    }

    #[test]
    fn encoder_decoder_roundtrip_all_csid_forms() {
        for csid in [2u32, 63, 64, 319, 320, 65_599] {
            for size in [1u32, 7, 128, 4096] {
                let mut enc = ChunkEncoder::new();
                enc.set_chunk_size(size);
                let mut dec = ChunkDecoder::new(limits());
                dec.set_chunk_size(size).unwrap();
                let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
                let mut buf = BytesMut::new();
                enc.encode(&mut buf, csid, 0x0100_0000, 9, 1, &payload);
                enc.encode(&mut buf, csid, 5, 8, 1, &payload[..10]);
                let msgs = drain(&mut dec, &mut buf);
                assert!(buf.is_empty());
                assert_eq!(msgs.len(), 2, "csid {csid} size {size}");
                assert_eq!(msgs[0].csid, csid);
                assert_eq!(msgs[0].timestamp, 0x0100_0000);
                assert_eq!(msgs[0].type_id, 9);
                assert_eq!(msgs[0].stream_id, 1);
                assert_eq!(&msgs[0].payload[..], &payload[..]);
                assert_eq!(msgs[1].timestamp, 5);
                assert_eq!(&msgs[1].payload[..], &payload[..10]);
            }
        }
    }

    #[test]
    fn byte_by_byte_feeding() {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(50);
        let mut dec = ChunkDecoder::new(limits());
        dec.set_chunk_size(50).unwrap();
        let payload = vec![0xabu8; 333];
        let mut all = BytesMut::new();
        enc.encode(&mut all, 300, 0xffff_fff0, 9, 1, &payload);
        let mut input = BytesMut::new();
        let mut msgs = Vec::new();
        for b in all.iter() {
            input.put_u8(*b);
            msgs.extend(drain(&mut dec, &mut input));
            assert!(input.len() < MAX_HEADER_SIZE);
        }
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].payload.len(), 333);
        assert_eq!(msgs[0].timestamp, 0xffff_fff0);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn header_types_and_delta_accumulation() {
        let mut dec = ChunkDecoder::new(limits());
        let mut b = Vec::new();
        b.extend(chunk(0, 4, &t0(1000, 3, 8, 1), None, b"aaa"));
        // type 1: delta 20, new length 2, same type
        b.extend(chunk(1, 4, &[0, 0, 20, 0, 0, 2, 8], None, b"bb"));
        // type 2: delta 30
        b.extend(chunk(2, 4, &[0, 0, 30], None, b"cc"));
        // type 3: new message, repeats delta 30
        b.extend(chunk(3, 4, &[], None, b"dd"));
        let mut input = BytesMut::from(&b[..]);
        let msgs = drain(&mut dec, &mut input);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![1000, 1020, 1050, 1080]);
        assert!(msgs.iter().all(|m| m.stream_id == 1 && m.type_id == 8));
        assert_eq!(&msgs[3].payload[..], b"dd");
    }

    #[test]
    fn type3_after_type0_uses_timestamp_as_delta() {
        let mut dec = ChunkDecoder::new(limits());
        let mut b = chunk(0, 3, &t0(40, 1, 8, 1), None, b"a");
        b.extend(chunk(3, 3, &[], None, b"b"));
        let msgs = drain(&mut dec, &mut BytesMut::from(&b[..]));
        assert_eq!(msgs[1].timestamp, 80);
    }

    #[test]
    fn extended_timestamps_on_all_header_types_and_wrapping() {
        let mut dec = ChunkDecoder::new(limits());
        dec.set_chunk_size(4).unwrap();
        let mut b = Vec::new();
        // type 0 extended ts, 6 bytes split into 4 + 2 (type 3 carries ext).
        b.extend(chunk(
            0,
            5,
            &t0(EXTENDED_TIMESTAMP, 6, 9, 1),
            Some(0xffff_ff00),
            b"abcd",
        ));
        b.extend(chunk(3, 5, &[], Some(0xffff_ff00), b"ef"));
        // type 1 with extended delta 0x200 -> wraps past u32::MAX
        b.extend(chunk(
            1,
            5,
            &[0xff, 0xff, 0xff, 0, 0, 1, 9],
            Some(0x200),
            b"g",
        ));
        // type 3 new message repeats extended delta
        b.extend(chunk(3, 5, &[], Some(0x200), b"h"));
        // type 2 with small delta: extended flag cleared
        b.extend(chunk(2, 5, &[0, 0, 1], None, b"i"));
        b.extend(chunk(3, 5, &[], None, b"j"));
        let msgs = drain(&mut dec, &mut BytesMut::from(&b[..]));
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![0xffff_ff00, 0x100, 0x300, 0x301, 0x302]);
        assert_eq!(&msgs[0].payload[..], b"abcdef");
    }

    #[test]
    fn interleaved_messages() {
        let mut dec = ChunkDecoder::new(limits());
        dec.set_chunk_size(2).unwrap();
        let mut b = Vec::new();
        b.extend(chunk(0, 4, &t0(1, 4, 8, 1), None, b"A1"));
        b.extend(chunk(0, 6, &t0(2, 4, 9, 1), None, b"V1"));
        b.extend(chunk(3, 4, &[], None, b"A2"));
        b.extend(chunk(3, 6, &[], None, b"V2"));
        let msgs = drain(&mut dec, &mut BytesMut::from(&b[..]));
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].csid, &msgs[0].payload[..]), (4, &b"A1A2"[..]));
        assert_eq!((msgs[1].csid, &msgs[1].payload[..]), (6, &b"V1V2"[..]));
    }

    #[test]
    fn zero_length_message() {
        let mut dec = ChunkDecoder::new(limits());
        let b = chunk(0, 3, &t0(7, 0, 20, 0), None, b"");
        let msgs = drain(&mut dec, &mut BytesMut::from(&b[..]));
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].payload.is_empty());
    }

    #[test]
    fn abort_drops_partial_message() {
        let mut dec = ChunkDecoder::new(limits());
        dec.set_chunk_size(2).unwrap();
        let mut input = BytesMut::from(&chunk(0, 4, &t0(1, 4, 8, 1), None, b"A1")[..]);
        assert!(dec.poll(&mut input).unwrap().is_none());
        assert_eq!(dec.buffered(), 2);
        dec.abort(4);
        assert_eq!(dec.buffered(), 0);
        let b = chunk(0, 4, &t0(1, 2, 8, 1), None, b"ok");
        let msgs = drain(&mut dec, &mut BytesMut::from(&b[..]));
        assert_eq!(&msgs[0].payload[..], b"ok");
    }

    #[test]
    fn limits_are_enforced() {
        let mut dec = ChunkDecoder::new(limits());
        assert!(dec.set_chunk_size(0).is_err());
        assert!(dec.set_chunk_size(0x8000_0000).is_err());
        assert!(dec.set_chunk_size((1 << 24) + 1).is_err());
        assert!(dec.set_chunk_size(1 << 24).is_ok());

        let b = chunk(0, 3, &t0(0, (1 << 20) + 1, 9, 1), None, b"");
        assert!(matches!(
            dec.poll(&mut BytesMut::from(&b[..])),
            Err(ChunkError::MessageTooLarge { .. })
        ));

        let mut dec = ChunkDecoder::new(limits());
        let b = chunk(1, 3, &[0, 0, 0, 0, 0, 1, 9], None, b"x");
        assert!(matches!(
            dec.poll(&mut BytesMut::from(&b[..])),
            Err(ChunkError::NoPreviousHeader { csid: 3, fmt: 1 })
        ));

        let mut dec = ChunkDecoder::new(limits());
        let mut b = Vec::new();
        for csid in 2..20 {
            b.extend(chunk(0, csid, &t0(0, 1, 9, 1), None, b"x"));
        }
        let mut input = BytesMut::from(&b[..]);
        let mut ok = 0;
        let err = loop {
            match dec.poll(&mut input) {
                Ok(Some(_)) => ok += 1,
                Ok(None) => panic!("should fail"),
                Err(e) => break e,
            }
        };
        assert_eq!(ok, 8);
        assert_eq!(err, ChunkError::TooManyChunkStreams { limit: 8 });
    }

    #[test]
    fn buffered_bytes_are_limited() {
        let mut dec = ChunkDecoder::new(DecoderLimits {
            max_buffered: 100,
            ..limits()
        });
        let mut b = Vec::new();
        b.extend(chunk(0, 3, &t0(0, 1000, 9, 1), None, &[0u8; 128]));
        assert!(matches!(
            dec.poll(&mut BytesMut::from(&b[..])),
            Err(ChunkError::TooMuchBuffered { limit: 100 })
        ));
    }
}
