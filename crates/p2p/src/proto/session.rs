//! One peer connection's protocol state, sans-IO: what the remote announced, our one
//! outstanding request to it (with reassembly), its one request to us (with the
//! upload), and every protocol violation as a [`ProtoError`] that the caller uses to
//! drop and ban the peer.
//!
//! Mirrors p2p-media-loader 2.3 `Peer`: at most one download and one upload per
//! connection (raw chunks carry no request id, so nothing else is unambiguous); a new
//! request from the remote supersedes the upload in progress; data and headers for
//! requests we did not make are ignored by the JS, here they are tolerated only as
//! the tail of a request we cancelled and otherwise are violations. A connection
//! belongs to one stream swarm, so segment ids are those of one stream.
//!
//! Not here: clocks and timeouts (the scheduler cancels slow requests), integrity
//! (the caller checks bytes against signed digests), I/O.

use std::collections::{HashSet, VecDeque};

use bytes::Bytes;

use super::command::{
    CommandDecoder, CommandLimits, Incoming, PeerCommand, RequestId, SegmentId, WirePart,
    EXT_PARTS, MAX_PART_SIGNATURE,
};
use super::error::{ProtoError, UsageError};
use super::framing::{self, DEFAULT_MAX_MESSAGE_SIZE};

/// Explicit bounds for one connection.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Largest data-channel message we send (commands are split, data chunked).
    pub max_message_size: usize,
    /// Largest reassembled command we accept.
    pub max_command_size: usize,
    /// Most segment ids in one announcement.
    pub max_announced: usize,
    /// Largest segment we accept or send.
    pub max_segment_bytes: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_command_size: 256 * 1024,
            max_announced: 20_000,
            max_segment_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the remote said about a segment in its last announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentStatus {
    Loaded,
    HttpLoading,
}

/// Something the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The remote replaced its announcement; query [`Session::remote_status`].
    Announced { loaded: usize, http_loading: usize },
    /// The remote wants a segment: answer with [`Session::send_segment`] or
    /// [`Session::segment_absent`]. Any earlier request of the remote is void.
    SegmentRequested {
        segment: SegmentId,
        request_id: RequestId,
        byte_from: u64,
    },
    /// The remote cancelled its request; the upload (if any) has stopped.
    RequestCancelled {
        segment: SegmentId,
        request_id: RequestId,
    },
    /// The remote began answering our request with `size` bytes.
    ResponseStarted {
        segment: SegmentId,
        request_id: RequestId,
        size: u64,
    },
    /// Bytes of our request arrived (for progress and stall timers).
    BytesReceived { request_id: RequestId, len: usize },
    /// Our request completed with exactly the announced bytes (from `byte_from`).
    /// Not verified: the caller checks them before use.
    SegmentReceived {
        segment: SegmentId,
        request_id: RequestId,
        byte_from: u64,
        bytes: Bytes,
    },
    /// The remote does not have the segment we asked for.
    SegmentAbsent {
        segment: SegmentId,
        request_id: RequestId,
    },
    /// Part extension: the remote replaced its part announcement; query
    /// [`Session::remote_parts`].
    PartsAnnounced { parts: usize },
    /// The remote wants a part: answer with [`Session::send_part`] or
    /// [`Session::part_absent`]. Any earlier request of the remote is void.
    PartRequested {
        part: WirePart,
        request_id: RequestId,
    },
    /// The remote cancelled its part request; the upload (if any) has stopped.
    PartRequestCancelled {
        part: WirePart,
        request_id: RequestId,
    },
    /// Our part request completed with exactly the announced bytes. Not verified:
    /// `signature` is what the sender claims the origin signed.
    PartReceived {
        part: WirePart,
        request_id: RequestId,
        bytes: Bytes,
        signature: Option<String>,
    },
    /// The remote does not have the part we asked for.
    PartAbsent {
        part: WirePart,
        request_id: RequestId,
    },
}

/// What a request is for: a whole segment, or one part of it (`Some(index)`).
type Obj = (SegmentId, Option<u32>);

fn wire(obj: Obj) -> Option<WirePart> {
    obj.1.map(|index| WirePart {
        segment: obj.0,
        index,
    })
}

#[derive(Debug)]
struct Download {
    segment: SegmentId,
    part: Option<u32>,
    request_id: RequestId,
    byte_from: u64,
    expected: Option<u64>,
    buf: Vec<u8>,
    /// The part's object signature from its header, if the sender gave one.
    signature: Option<String>,
}

#[derive(Debug)]
enum UploadStage {
    Header,
    Chunks,
}

#[derive(Debug)]
struct Upload {
    segment: SegmentId,
    part: Option<u32>,
    request_id: RequestId,
    data: Bytes,
    stage: UploadStage,
    /// A part's object signature, sent in its header.
    signature: Option<String>,
    /// Header messages still to send (a header with a signature may need more than
    /// one message of the smallest size).
    queued: VecDeque<Vec<u8>>,
}

/// Requests we cancelled whose tail may still arrive; this many are remembered.
const CANCELLED_MEMORY: usize = 4;

/// Protocol state of one peer connection.
#[derive(Debug)]
pub struct Session {
    limits: SessionLimits,
    decoder: CommandDecoder,
    remote_loaded: HashSet<SegmentId>,
    remote_loading: HashSet<SegmentId>,
    download: Option<Download>,
    next_request_id: RequestId,
    cancelled: VecDeque<(Obj, RequestId)>,
    /// Bytes of data we still tolerate without a current response header.
    stray_allowance: u64,
    /// The remote's request waiting for our answer.
    asked: Option<(Obj, RequestId, u64)>,
    upload: Option<Upload>,
    /// Extension bits we put in our announcements (field `x`).
    extensions: i64,
    /// Extension bits of the remote's last announcement.
    remote_extensions: i64,
    remote_parts: HashSet<WirePart>,
}

impl Session {
    pub fn new(limits: SessionLimits) -> Result<Self, UsageError> {
        if limits.max_message_size < framing::MIN_MESSAGE_SIZE {
            return Err(UsageError::MessageSizeTooSmall(limits.max_message_size));
        }
        Ok(Self {
            limits,
            decoder: CommandDecoder::new(
                limits.max_command_size,
                CommandLimits {
                    max_announced: limits.max_announced,
                    ..CommandLimits::default()
                },
            ),
            remote_loaded: HashSet::new(),
            remote_loading: HashSet::new(),
            download: None,
            next_request_id: 0,
            cancelled: VecDeque::new(),
            stray_allowance: 0,
            asked: None,
            upload: None,
            extensions: 0,
            remote_extensions: 0,
            remote_parts: HashSet::new(),
        })
    }

    /// Advertises our extension bits (e.g. [`EXT_PARTS`]) in every announcement.
    /// Without it the session is byte-for-byte the stock protocol.
    pub fn with_extensions(mut self, bits: i64) -> Self {
        self.extensions = bits;
        self
    }

    /// Whether the remote's last announcement said it speaks the part extension.
    pub fn remote_speaks_parts(&self) -> bool {
        self.remote_extensions & EXT_PARTS != 0
    }

    /// Parts the remote announced (verified on its side; we verify again).
    pub fn remote_parts(&self) -> impl Iterator<Item = WirePart> + '_ {
        self.remote_parts.iter().copied()
    }

    /// Starts request ids at `first` (the JS uses random ids; any value works).
    pub fn with_first_request_id(mut self, first: RequestId) -> Self {
        self.next_request_id = first;
        self
    }

    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// The remote's last word on `segment`.
    pub fn remote_status(&self, segment: SegmentId) -> Option<SegmentStatus> {
        if self.remote_loaded.contains(&segment) {
            Some(SegmentStatus::Loaded)
        } else if self.remote_loading.contains(&segment) {
            Some(SegmentStatus::HttpLoading)
        } else {
            None
        }
    }

    /// Segments the remote announced as loaded.
    pub fn remote_loaded(&self) -> impl Iterator<Item = SegmentId> + '_ {
        self.remote_loaded.iter().copied()
    }

    /// Our outstanding request, if any (segment or part).
    pub fn downloading(&self) -> Option<(SegmentId, RequestId)> {
        self.download.as_ref().map(|d| (d.segment, d.request_id))
    }

    /// Our outstanding part request, if any.
    pub fn downloading_part(&self) -> Option<WirePart> {
        self.download
            .as_ref()
            .and_then(|d| wire((d.segment, d.part)))
    }

    /// Whether an upload still has messages to send.
    pub fn is_uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// Handles one received data-channel message.
    pub fn handle_message(&mut self, message: &[u8]) -> Result<Option<SessionEvent>, ProtoError> {
        match self.decoder.push(message)? {
            Incoming::Partial | Incoming::Dropped => Ok(None),
            Incoming::Data(data) => self.on_data(data),
            Incoming::Command(c) => self.on_command(c),
        }
    }

    fn on_data(&mut self, data: &[u8]) -> Result<Option<SessionEvent>, ProtoError> {
        let len = data.len();
        if let Some(d) = self.download.as_mut() {
            if let Some(expected) = d.expected {
                let received = (d.buf.len() + len) as u64;
                if received > expected {
                    return Err(ProtoError::Overflow { received, expected });
                }
                d.buf.extend_from_slice(data);
                return Ok(Some(SessionEvent::BytesReceived {
                    request_id: d.request_id,
                    len,
                }));
            }
        }
        // The tail of a request we cancelled, or a violation.
        match self.stray_allowance.checked_sub(len as u64) {
            Some(left) => {
                self.stray_allowance = left;
                Ok(None)
            }
            None => Err(ProtoError::UnexpectedData { len }),
        }
    }

    fn forget_cancelled(&mut self, obj: Obj, request_id: RequestId) -> bool {
        let before = self.cancelled.len();
        self.cancelled.retain(|c| *c != (obj, request_id));
        let found = self.cancelled.len() != before;
        if found && self.cancelled.is_empty() {
            self.stray_allowance = 0;
        }
        found
    }

    fn on_command(&mut self, c: PeerCommand) -> Result<Option<SessionEvent>, ProtoError> {
        match c {
            PeerCommand::SegmentsAnnouncement {
                loaded,
                http_loading,
                extensions,
            } => {
                self.remote_loaded = loaded.into_iter().collect();
                self.remote_loading = http_loading.into_iter().collect();
                self.remote_extensions = extensions;
                Ok(Some(SessionEvent::Announced {
                    loaded: self.remote_loaded.len(),
                    http_loading: self.remote_loading.len(),
                }))
            }
            PeerCommand::PartsAnnouncement { parts } => {
                self.remote_parts = parts.into_iter().collect();
                Ok(Some(SessionEvent::PartsAnnounced {
                    parts: self.remote_parts.len(),
                }))
            }
            PeerCommand::SegmentRequest {
                segment,
                request_id,
                byte_from,
            } => {
                let byte_from = byte_from.unwrap_or(0);
                let byte_from = u64::try_from(byte_from).map_err(|_| ProtoError::BadValue {
                    field: "byte_from",
                    value: byte_from,
                })?;
                // Like the JS: a new request stops the upload in progress.
                self.upload = None;
                self.asked = Some(((segment, None), request_id, byte_from));
                Ok(Some(SessionEvent::SegmentRequested {
                    segment,
                    request_id,
                    byte_from,
                }))
            }
            PeerCommand::PartRequest { part, request_id } => {
                self.upload = None;
                self.asked = Some(((part.segment, Some(part.index)), request_id, 0));
                Ok(Some(SessionEvent::PartRequested { part, request_id }))
            }
            PeerCommand::CancelSegmentRequest {
                segment,
                request_id,
            } => Ok(self
                .on_cancel(request_id)
                .then_some(SessionEvent::RequestCancelled {
                    segment,
                    request_id,
                })),
            PeerCommand::CancelPartRequest { part, request_id } => Ok(self
                .on_cancel(request_id)
                .then_some(SessionEvent::PartRequestCancelled { part, request_id })),
            PeerCommand::SegmentData {
                segment,
                request_id,
                size,
            } => self.on_header((segment, None), request_id, size),
            PeerCommand::PartData {
                part,
                request_id,
                size,
                signature,
            } => {
                let started = self.on_header((part.segment, Some(part.index)), request_id, size)?;
                if started.is_some() {
                    if let Some(d) = self.download.as_mut() {
                        d.signature = signature;
                    }
                }
                Ok(started)
            }
            PeerCommand::SendingCompleted {
                segment,
                request_id,
            } => self.on_completed((segment, None), request_id),
            PeerCommand::PartSendingCompleted { part, request_id } => {
                self.on_completed((part.segment, Some(part.index)), request_id)
            }
            PeerCommand::SegmentAbsent {
                segment,
                request_id,
            } => self.on_absent((segment, None), request_id),
            PeerCommand::PartAbsent { part, request_id } => {
                self.on_absent((part.segment, Some(part.index)), request_id)
            }
            PeerCommand::Extension { .. } => Ok(None),
        }
    }

    /// The remote cancels its request `request_id` (the JS matches the id only).
    fn on_cancel(&mut self, request_id: RequestId) -> bool {
        let asked = self.asked.is_some_and(|a| a.1 == request_id);
        let uploading = self
            .upload
            .as_ref()
            .is_some_and(|u| u.request_id == request_id);
        if asked || uploading {
            self.asked = None;
            self.upload = None;
        }
        asked || uploading
    }

    fn on_header(
        &mut self,
        obj: Obj,
        request_id: RequestId,
        size: i64,
    ) -> Result<Option<SessionEvent>, ProtoError> {
        let Some(d) = self.download.as_mut() else {
            return Ok(None);
        };
        if (d.segment, d.part) != obj || d.request_id != request_id || d.expected.is_some() {
            // The JS ignores it; a cancelled request's header is expected.
            return Ok(None);
        }
        let size = u64::try_from(size).map_err(|_| ProtoError::BadValue {
            field: "size",
            value: size,
        })?;
        if size > self.limits.max_segment_bytes {
            return Err(ProtoError::SegmentTooLarge {
                size,
                limit: self.limits.max_segment_bytes,
            });
        }
        d.expected = Some(size);
        d.buf = Vec::with_capacity(size.min(1 << 20) as usize);
        // Data of cancelled requests came before this header; their
        // SendingCompleted may still follow (the JS sends it a microtask
        // later, after it has already started the next upload).
        self.stray_allowance = 0;
        Ok(Some(SessionEvent::ResponseStarted {
            segment: obj.0,
            request_id,
            size,
        }))
    }

    fn on_completed(
        &mut self,
        obj: Obj,
        request_id: RequestId,
    ) -> Result<Option<SessionEvent>, ProtoError> {
        if self.forget_cancelled(obj, request_id) {
            return Ok(None);
        }
        let Some(d) = self.download.as_ref() else {
            return Ok(None);
        };
        let Some(expected) = d.expected else {
            // The JS ignores a completion before the header.
            return Ok(None);
        };
        if (d.segment, d.part) != obj || d.request_id != request_id {
            return Err(ProtoError::WrongCompletion {
                segment: obj.0,
                request_id,
            });
        }
        let received = d.buf.len() as u64;
        if received != expected {
            return Err(ProtoError::LengthMismatch { received, expected });
        }
        let Some(d) = self.download.take() else {
            return Ok(None);
        };
        let bytes = Bytes::from(d.buf);
        Ok(Some(match wire(obj) {
            Some(part) => SessionEvent::PartReceived {
                part,
                request_id,
                bytes,
                signature: d.signature,
            },
            None => SessionEvent::SegmentReceived {
                segment: obj.0,
                request_id,
                byte_from: d.byte_from,
                bytes,
            },
        }))
    }

    fn on_absent(
        &mut self,
        obj: Obj,
        request_id: RequestId,
    ) -> Result<Option<SessionEvent>, ProtoError> {
        if self.forget_cancelled(obj, request_id) {
            return Ok(None);
        }
        match &self.download {
            Some(d) if (d.segment, d.part) == obj && d.request_id == request_id => {
                // Bytes already sent for it (if any) are the remote's problem:
                // a header followed by absent leaves no tail we accept.
                self.download = None;
                Ok(Some(match wire(obj) {
                    Some(part) => {
                        self.remote_parts.remove(&part);
                        SessionEvent::PartAbsent { part, request_id }
                    }
                    None => {
                        self.remote_loaded.remove(&obj.0);
                        SessionEvent::SegmentAbsent {
                            segment: obj.0,
                            request_id,
                        }
                    }
                }))
            }
            _ => Ok(None),
        }
    }

    fn encode(&self, c: &PeerCommand) -> Result<Vec<Vec<u8>>, UsageError> {
        let messages = c.encode(self.limits.max_message_size)?;
        let size: usize = messages.iter().map(Vec::len).sum();
        if size > self.limits.max_command_size {
            return Err(UsageError::CommandTooLarge {
                size,
                limit: self.limits.max_command_size,
            });
        }
        Ok(messages)
    }

    /// Messages announcing our segments (replaces our previous announcement).
    pub fn announce(
        &self,
        loaded: &[SegmentId],
        http_loading: &[SegmentId],
    ) -> Result<Vec<Vec<u8>>, UsageError> {
        self.encode(&PeerCommand::SegmentsAnnouncement {
            loaded: loaded.to_vec(),
            http_loading: http_loading.to_vec(),
            extensions: self.extensions,
        })
    }

    /// Messages announcing the parts we hold (replaces our previous part
    /// announcement). Only for a remote that speaks the extension: anything else
    /// would not understand it (an older native peer would even drop us).
    pub fn announce_parts(&self, parts: &[WirePart]) -> Result<Vec<Vec<u8>>, UsageError> {
        if !self.remote_speaks_parts() {
            return Err(UsageError::NoPartExtension);
        }
        self.encode(&PeerCommand::PartsAnnouncement {
            parts: parts.to_vec(),
        })
    }

    /// Asks the remote for a part. Shares the one-download slot with segments.
    pub fn request_part(
        &mut self,
        part: WirePart,
    ) -> Result<(RequestId, Vec<Vec<u8>>), UsageError> {
        if !self.remote_speaks_parts() {
            return Err(UsageError::NoPartExtension);
        }
        if self.download.is_some() {
            return Err(UsageError::Busy);
        }
        let request_id = self.next_request_id;
        let messages = self.encode(&PeerCommand::PartRequest { part, request_id })?;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        self.download = Some(Download {
            segment: part.segment,
            part: Some(part.index),
            request_id,
            byte_from: 0,
            expected: None,
            buf: Vec::new(),
            signature: None,
        });
        Ok((request_id, messages))
    }

    /// Asks the remote for `segment` (from `byte_from`). One request at a time.
    pub fn request_segment(
        &mut self,
        segment: SegmentId,
        byte_from: u64,
    ) -> Result<(RequestId, Vec<Vec<u8>>), UsageError> {
        if self.download.is_some() {
            return Err(UsageError::Busy);
        }
        let request_id = self.next_request_id;
        let messages = self.encode(&PeerCommand::SegmentRequest {
            segment,
            request_id,
            byte_from: i64::try_from(byte_from).ok().filter(|b| *b != 0),
        })?;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        self.download = Some(Download {
            segment,
            part: None,
            request_id,
            byte_from,
            expected: None,
            buf: Vec::new(),
            signature: None,
        });
        Ok((request_id, messages))
    }

    /// Cancels our outstanding request (timeout, or HTTP won); returns the
    /// `CancelSegmentRequest` messages, or nothing if no request is outstanding.
    pub fn cancel_request(&mut self) -> Result<Vec<Vec<u8>>, UsageError> {
        let Some(d) = self.download.take() else {
            return Ok(Vec::new());
        };
        let tail = match d.expected {
            Some(expected) => expected.saturating_sub(d.buf.len() as u64),
            None => self.limits.max_segment_bytes,
        };
        if self.cancelled.len() == CANCELLED_MEMORY {
            self.cancelled.pop_front();
        }
        self.cancelled
            .push_back(((d.segment, d.part), d.request_id));
        self.stray_allowance = self
            .stray_allowance
            .saturating_add(tail)
            .min(self.limits.max_segment_bytes.saturating_mul(2));
        match wire((d.segment, d.part)) {
            Some(part) => self.encode(&PeerCommand::CancelPartRequest {
                part,
                request_id: d.request_id,
            }),
            None => self.encode(&PeerCommand::CancelSegmentRequest {
                segment: d.segment,
                request_id: d.request_id,
            }),
        }
    }

    fn take_asked(&mut self, request_id: RequestId) -> Result<(Obj, u64), UsageError> {
        match self.asked {
            Some((obj, id, byte_from)) if id == request_id => {
                self.asked = None;
                Ok((obj, byte_from))
            }
            _ => Err(UsageError::NoSuchRequest(request_id)),
        }
    }

    /// Answers the remote's part request `request_id` with the part's bytes; then
    /// drain [`Session::next_upload_message`].
    /// `signature` (the origin's object signature of the part) goes in the header.
    pub fn send_part(
        &mut self,
        request_id: RequestId,
        data: Bytes,
        signature: Option<String>,
    ) -> Result<(), UsageError> {
        if signature
            .as_ref()
            .is_some_and(|g| g.len() > MAX_PART_SIGNATURE)
        {
            return Err(UsageError::StringTooLong(signature.map_or(0, |g| g.len())));
        }
        let size = data.len() as u64;
        if size > self.limits.max_segment_bytes {
            return Err(UsageError::SegmentTooLarge {
                size,
                limit: self.limits.max_segment_bytes,
            });
        }
        match self.asked {
            Some(((_, Some(_)), id, _)) if id == request_id => {}
            _ => return Err(UsageError::NoSuchRequest(request_id)),
        }
        let ((segment, part), _) = self.take_asked(request_id)?;
        self.upload = Some(Upload {
            segment,
            part,
            request_id,
            data,
            stage: UploadStage::Header,
            signature,
            queued: VecDeque::new(),
        });
        Ok(())
    }

    /// Answers the remote's part request with `PartAbsent`.
    pub fn part_absent(&mut self, request_id: RequestId) -> Result<Vec<Vec<u8>>, UsageError> {
        match self.asked {
            Some(((_, Some(_)), id, _)) if id == request_id => {}
            _ => return Err(UsageError::NoSuchRequest(request_id)),
        }
        let (obj, _) = self.take_asked(request_id)?;
        match wire(obj) {
            Some(part) => self.encode(&PeerCommand::PartAbsent { part, request_id }),
            None => Err(UsageError::NoSuchRequest(request_id)),
        }
    }

    /// Answers the remote's request `request_id` with the whole segment `data` (the
    /// session applies the request's `byte_from`). Then drain
    /// [`Session::next_upload_message`] as the channel accepts data.
    pub fn send_segment(&mut self, request_id: RequestId, data: Bytes) -> Result<(), UsageError> {
        let size = data.len() as u64;
        if size > self.limits.max_segment_bytes {
            return Err(UsageError::SegmentTooLarge {
                size,
                limit: self.limits.max_segment_bytes,
            });
        }
        match self.asked {
            Some(((_, None), id, _)) if id == request_id => {}
            _ => return Err(UsageError::NoSuchRequest(request_id)),
        }
        let ((segment, _), byte_from) = self.take_asked(request_id)?;
        let from = usize::try_from(byte_from)
            .unwrap_or(usize::MAX)
            .min(data.len());
        self.upload = Some(Upload {
            segment,
            part: None,
            request_id,
            data: data.slice(from..),
            stage: UploadStage::Header,
            signature: None,
            queued: VecDeque::new(),
        });
        Ok(())
    }

    /// The next message of the upload in progress: the `SegmentData` header, raw
    /// chunks, then `SendingCompleted`. `None` when done, cancelled or superseded.
    pub fn next_upload_message(&mut self) -> Option<Vec<u8>> {
        let max = self.limits.max_message_size;
        let u = self.upload.as_mut()?;
        match u.stage {
            UploadStage::Header => {
                u.stage = UploadStage::Chunks;
                let size = u.data.len() as i64;
                let header = match wire((u.segment, u.part)) {
                    Some(part) => PeerCommand::PartData {
                        part,
                        request_id: u.request_id,
                        size,
                        signature: u.signature.take(),
                    },
                    None => PeerCommand::SegmentData {
                        segment: u.segment,
                        request_id: u.request_id,
                        size,
                    },
                };
                // A 3-int command fits one message of MIN_MESSAGE_SIZE; with a
                // signature it may take a few.
                let mut messages = header.encode(max).ok()?.into_iter();
                let first = messages.next();
                u.queued.extend(messages);
                first
            }
            UploadStage::Chunks if !u.queued.is_empty() => u.queued.pop_front(),
            UploadStage::Chunks if !u.data.is_empty() => {
                let n = framing::data_chunk_len(&u.data, max);
                let chunk = u.data.split_to(n);
                Some(chunk.to_vec())
            }
            UploadStage::Chunks => {
                let done = match wire((u.segment, u.part)) {
                    Some(part) => PeerCommand::PartSendingCompleted {
                        part,
                        request_id: u.request_id,
                    },
                    None => PeerCommand::SendingCompleted {
                        segment: u.segment,
                        request_id: u.request_id,
                    },
                };
                self.upload = None;
                done.encode(max).ok().and_then(|m| m.into_iter().next())
            }
        }
    }

    /// Answers the remote's request with `SegmentAbsent`.
    pub fn segment_absent(&mut self, request_id: RequestId) -> Result<Vec<Vec<u8>>, UsageError> {
        match self.asked {
            Some(((_, None), id, _)) if id == request_id => {}
            _ => return Err(UsageError::NoSuchRequest(request_id)),
        }
        let ((segment, _), _) = self.take_asked(request_id)?;
        self.encode(&PeerCommand::SegmentAbsent {
            segment,
            request_id,
        })
    }
}

#[cfg(test)]
mod tests;
