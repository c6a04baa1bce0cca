//! MPEG-TS demuxer (ISO/IEC 13818-1), sans-IO: transport-stream bytes in (any
//! chunking: SRT payloads, files, a byte at a time), elementary-stream access units
//! out, in the form the CMAF packager takes from RTMP:
//!
//! - H.264 (stream type 0x1B): Annex B access units become AVCC samples (4-byte NAL
//!   lengths; SPS, PPS and access unit delimiters removed), and every new SPS/PPS pair
//!   becomes an `AVCDecoderConfigurationRecord` ([`Frame::VideoConfig`] with
//!   [`VideoCodec::Avc`]) that [`crate::codec::AvcConfig::parse`] accepts.
//! - H.265 (stream type 0x24): the same with 2-byte NAL headers: VPS, SPS, PPS and
//!   access unit delimiters (types 32–35, and end of sequence/bitstream, filler)
//!   removed from the samples, keyframes are IRAP pictures (types 16–23), and every
//!   new VPS/SPS/PPS set becomes an `HEVCDecoderConfigurationRecord`
//!   ([`Frame::VideoConfig`] with [`VideoCodec::Hevc`]) built by
//!   [`crate::codec::hevc::record_from_parameter_sets`] and checked with
//!   [`crate::codec::HevcConfig::parse`], as an Enhanced RTMP `hvc1` SequenceStart
//!   reaches the packager. A PMT that changes the video codec (a new version, or the
//!   same version with other streams, as concatenated files have) starts over:
//!   frames of the new codec wait for its own parameter sets.
//! - AAC in ADTS (stream type 0x0F): each ADTS frame becomes one raw AAC frame, and
//!   the ADTS header an `AudioSpecificConfig` ([`Frame::AudioConfig`]).
//!
//! PTS/DTS are the 33-bit 90 kHz clock extended to 64 bits (one clock per demuxer, as
//! TS has one program clock), so a stream that runs past 26.5 hours keeps counting.
//!
//! What it is not: no PCR or clock recovery, no scrambling, no teletext, subtitles or
//! SCTE-35; every stream type but the three above is reported once and skipped.
//! Only the first video and the first audio stream of the first program of the
//! PAT are played.
//! One PES packet is taken as one access unit (what ffmpeg, OBS and hardware encoders
//! send). Everything an input can make it hold is bounded by [`Limits`]; bad input is
//! reported as [`Frame::Error`] (the demuxer drops what it cannot use and carries on
//! with the next packet), never a panic.

use std::collections::{HashMap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::codec::{hevc, CodecError, VideoCodec};

/// Size of one transport packet.
pub const PACKET_SIZE: usize = 188;
const SYNC: u8 = 0x47;
const PID_PAT: u16 = 0;
const PID_NULL: u16 = 0x1fff;
/// Longest PAT/PMT section after its 3-byte header (13818-1 §2.4.4.3, §2.4.4.8).
const MAX_SECTION_LENGTH: usize = 1021;
/// PMT stream type of AAC in ADTS.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// PMT stream type of H.264.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// PMT stream type of H.265 (packaged as `hvc1`).
pub const STREAM_TYPE_H265: u8 = 0x24;
/// Longest ADTS frame (13-bit frame_length).
const MAX_ADTS_FRAME: usize = 8191;
const CLOCK_WRAP: u64 = 1 << 33;
/// H.265 NAL unit types of the parameter sets (H.265 Table 7-1).
const H265_VPS: u8 = 32;
const H265_SPS: u8 = 33;
const H265_PPS: u8 = 34;

/// What one demuxer may hold; every input is bounded by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one PES packet (one access unit); larger ones are dropped.
    pub max_pes_bytes: usize,
    /// Programs read from the PAT.
    pub max_programs: usize,
    /// Elementary streams read from one PMT.
    pub max_streams: usize,
    /// VPS, SPS or PPS NAL units kept per configuration (of each kind); more in
    /// one access unit are dropped (and reported for H.265).
    pub max_parameter_sets: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pes_bytes: 8 * 1024 * 1024,
            max_programs: 16,
            max_streams: 16,
            max_parameter_sets: 4,
        }
    }
}

/// Something in the input that the demuxer dropped; it carries on after each.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TsError {
    #[error("lost sync: skipped {0} bytes to the next 0x47 sync byte")]
    LostSync(usize),
    #[error("packet on PID {0} has the transport error indicator set")]
    TransportError(u16),
    #[error("packet on PID {0} is scrambled; encrypted TS is not supported (use SRT encryption)")]
    Scrambled(u16),
    #[error("adaptation field of {0} bytes does not fit the packet")]
    BadAdaptationField(usize),
    #[error("continuity error on PID {pid}: expected counter {expected}, got {got}; the access unit in progress is dropped")]
    Continuity { pid: u16, expected: u8, got: u8 },
    #[error("PSI section on PID {pid}: {reason}")]
    BadSection { pid: u16, reason: &'static str },
    #[error("section of {0} bytes is longer than the 1021 bytes PAT and PMT may have")]
    SectionTooLong(usize),
    #[error("{kind} lists more than {limit} entries; the rest are ignored")]
    TooMany { kind: &'static str, limit: usize },
    #[error("PES on PID {pid}: {reason}")]
    BadPes { pid: u16, reason: &'static str },
    #[error("PES on PID {pid} exceeds {limit} bytes (a single access unit that large is refused)")]
    PesTooLarge { pid: u16, limit: usize },
    #[error("stream type 0x{0:02x} is not supported (only H.264 or H.265 video and AAC ADTS audio are); the stream is ignored")]
    UnsupportedStream(u8),
    #[error("video access unit before the first parameter sets of its codec: dropped")]
    NoVideoConfig,
    #[error("bad H.264 parameter set: {0}")]
    BadParameterSet(&'static str),
    #[error("bad H.265 parameter sets (no configuration made from them): {0}")]
    BadHevcParameterSets(CodecError),
    #[error("bad ADTS frame: {0}")]
    BadAdts(&'static str),
}

/// What the demuxer produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The decoder configuration record of `codec` (`AVCDecoderConfigurationRecord`
    /// or `HEVCDecoderConfigurationRecord`), whenever the parameter sets change (and
    /// first); what an RTMP/E-RTMP sequence header hands the packager.
    VideoConfig { codec: VideoCodec, record: Bytes },
    /// One H.264 or H.265 access unit with 4-byte NAL lengths. Times in 90 kHz ticks.
    Video {
        codec: VideoCodec,
        pts: u64,
        dts: u64,
        keyframe: bool,
        data: Bytes,
    },
    /// `AudioSpecificConfig`, whenever it changes (and first).
    AudioConfig(Bytes),
    /// One raw AAC frame (1024 samples). PTS in 90 kHz ticks.
    Audio { pts: u64, data: Bytes },
    /// Input the demuxer dropped (see [`TsError`]).
    Error(TsError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    H264,
    H265,
    Aac,
}

#[derive(Debug, Default)]
struct Section {
    buf: Vec<u8>,
    /// Reassembling (a start seen, no error since).
    active: bool,
}

#[derive(Debug)]
struct Pes {
    kind: Kind,
    buf: Vec<u8>,
    /// Collecting (a unit start seen, no error since).
    active: bool,
}

/// One 90 kHz clock extended from 33 bits.
#[derive(Debug, Default)]
struct Clock {
    last: Option<u64>,
}

impl Clock {
    fn extend(&mut self, raw: u64) -> u64 {
        let raw = raw & (CLOCK_WRAP - 1);
        let out = match self.last {
            None => raw,
            Some(last) => {
                let base = last & !(CLOCK_WRAP - 1);
                // The candidate nearest to the last value: wraps forward, and late
                // values from just before a wrap stay before it.
                [
                    base.checked_sub(CLOCK_WRAP),
                    Some(base),
                    base.checked_add(CLOCK_WRAP),
                ]
                .into_iter()
                .flatten()
                .map(|b| b + raw)
                .min_by_key(|c| c.abs_diff(last))
                .unwrap_or(raw)
            }
        };
        self.last = Some(self.last.map_or(out, |l| l.max(out)));
        out
    }
}

/// The demuxer. Feed it with [`push`](Self::push), drain it with
/// [`poll`](Self::poll) after each push.
#[derive(Debug)]
pub struct Demuxer {
    limits: Limits,
    partial: Vec<u8>,
    pmt_pid: Option<u16>,
    pmt_version: Option<u8>,
    /// Body of the PMT in use: a PMT of the same version but another body (files
    /// concatenated, an encoder restarted on the same connection) is taken too.
    pmt_body: Vec<u8>,
    sections: HashMap<u16, Section>,
    pes: HashMap<u16, Pes>,
    cc: HashMap<u16, u8>,
    reported_types: Vec<u8>,
    clock: Clock,
    /// Codec of the parameter sets below.
    video_codec: VideoCodec,
    vps: Vec<Bytes>,
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
    /// The parameter sets (VPS, SPS, PPS) of the configuration last emitted.
    config_sent: Option<ParameterSets>,
    asc_sent: Option<[u8; 2]>,
    /// Streams the PMT declares, as (video, audio).
    declared: (bool, bool),
    /// Frames held until every declared stream has its configuration (see
    /// [`Demuxer::poll`]); `None` once released.
    held: Option<VecDeque<Frame>>,
    out: VecDeque<Frame>,
}

/// VPS (H.265 only), SPS and PPS NAL units.
type ParameterSets = (Vec<Bytes>, Vec<Bytes>, Vec<Bytes>);

/// Frames held at most while waiting for the configurations of all declared streams
/// (about 2 s of 30 fps video with its audio, well within an ingest's idle timeout);
/// then what has come is released.
const MAX_HELD: usize = 150;

impl Demuxer {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            partial: Vec::with_capacity(PACKET_SIZE),
            pmt_pid: None,
            pmt_version: None,
            pmt_body: Vec::new(),
            sections: HashMap::new(),
            pes: HashMap::new(),
            cc: HashMap::new(),
            reported_types: Vec::new(),
            clock: Clock::default(),
            video_codec: VideoCodec::Avc,
            vps: Vec::new(),
            sps: Vec::new(),
            pps: Vec::new(),
            config_sent: None,
            asc_sent: None,
            declared: (false, false),
            held: Some(VecDeque::new()),
            out: VecDeque::new(),
        }
    }

    /// The next output, oldest first.
    ///
    /// Media waits until every stream the PMT declares has its configuration (a TS
    /// video access unit is complete only when the next one starts, so the first audio
    /// often comes out before the first video), and then the configurations come out
    /// first: a packager started on a configuration sees the whole stream's tracks.
    /// Errors are not held.
    pub fn poll(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }

    fn emit(&mut self, frame: Frame) {
        let Some(held) = self.held.as_mut() else {
            self.out.push_back(frame);
            return;
        };
        held.push_back(frame);
        let (video, audio) = self.declared;
        let complete = (self.declared != (false, false))
            && (!video || self.config_sent.is_some())
            && (!audio || self.asc_sent.is_some());
        if complete || held.len() >= MAX_HELD {
            self.release();
        }
    }

    /// Lets the held frames out, configurations first.
    fn release(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let (configs, media): (Vec<Frame>, Vec<Frame>) = held
            .into_iter()
            .partition(|f| matches!(f, Frame::VideoConfig { .. } | Frame::AudioConfig(_)));
        self.out.extend(configs);
        self.out.extend(media);
    }

    /// Feeds transport-stream bytes in any chunking.
    pub fn push(&mut self, mut data: &[u8]) {
        if !self.partial.is_empty() {
            let need = PACKET_SIZE - self.partial.len();
            let take = need.min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() < PACKET_SIZE {
                return;
            }
            let packet: [u8; PACKET_SIZE] = match self.partial[..].try_into() {
                Ok(p) => p,
                Err(_) => return,
            };
            self.partial.clear();
            self.packet(&packet);
        }
        while !data.is_empty() {
            if data[0] != SYNC {
                let skip = data.iter().position(|&b| b == SYNC).unwrap_or(data.len());
                self.error(TsError::LostSync(skip));
                data = &data[skip..];
                continue;
            }
            if data.len() < PACKET_SIZE {
                self.partial.extend_from_slice(data);
                return;
            }
            let (packet, rest) = data.split_at(PACKET_SIZE);
            self.packet(packet);
            data = rest;
        }
    }

    /// Flushes the access units in progress (the publish ended).
    pub fn finish(&mut self) {
        let pids: Vec<u16> = self.pes.keys().copied().collect();
        for pid in pids {
            self.flush_pes(pid);
        }
        self.release();
    }

    fn error(&mut self, e: TsError) {
        self.out.push_back(Frame::Error(e));
    }

    fn packet(&mut self, p: &[u8]) {
        let tei = p[1] & 0x80 != 0;
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let scrambling = p[3] >> 6;
        let afc = (p[3] >> 4) & 0x3;
        let cc = p[3] & 0x0f;
        if pid == PID_NULL {
            return;
        }
        if tei {
            self.error(TsError::TransportError(pid));
            self.break_pid(pid);
            return;
        }
        let mut at = 4;
        let mut discontinuity = false;
        if afc & 0x2 != 0 {
            let len = usize::from(p[4]);
            // With a payload the field leaves room for at least one byte; without,
            // it fills the packet.
            let max = if afc & 0x1 != 0 { 182 } else { 183 };
            if len > max {
                self.error(TsError::BadAdaptationField(len));
                self.break_pid(pid);
                return;
            }
            if len > 0 {
                discontinuity = p[5] & 0x80 != 0;
            }
            at = 5 + len;
        }
        if afc & 0x1 == 0 {
            return;
        }
        if scrambling != 0 {
            self.error(TsError::Scrambled(pid));
            return;
        }
        // Continuity: a repeated counter is a duplicate packet (dropped); any other
        // gap loses the unit in progress.
        if let Some(&last) = self.cc.get(&pid) {
            let expected = (last + 1) & 0x0f;
            if cc == last && !discontinuity {
                return;
            }
            if cc != expected && !discontinuity {
                self.error(TsError::Continuity {
                    pid,
                    expected,
                    got: cc,
                });
                self.break_pid(pid);
            }
        }
        if self.cc.len() < 64 || self.cc.contains_key(&pid) {
            self.cc.insert(pid, cc);
        }
        let payload = &p[at..];
        if pid == PID_PAT || Some(pid) == self.pmt_pid {
            self.psi(pid, pusi, payload);
        } else if self.pes.contains_key(&pid) {
            self.pes_payload(pid, pusi, payload);
        }
    }

    /// Forgets the partial unit on `pid` after an error.
    fn break_pid(&mut self, pid: u16) {
        if let Some(s) = self.sections.get_mut(&pid) {
            s.active = false;
            s.buf.clear();
        }
        if let Some(pes) = self.pes.get_mut(&pid) {
            pes.active = false;
            pes.buf.clear();
        }
    }

    fn psi(&mut self, pid: u16, pusi: bool, payload: &[u8]) {
        let mut sec = self.sections.remove(&pid).unwrap_or_default();
        let mut data = payload;
        if pusi {
            let Some((&pointer, rest)) = data.split_first() else {
                self.sections.insert(pid, sec);
                return;
            };
            let pointer = usize::from(pointer);
            if pointer > rest.len() {
                self.error(TsError::BadSection {
                    pid,
                    reason: "pointer_field points past the packet",
                });
                self.sections.insert(pid, Section::default());
                return;
            }
            // Bytes before the pointer end the previous section.
            if sec.active {
                sec.buf.extend_from_slice(&rest[..pointer]);
                self.try_section(pid, &mut sec);
            }
            sec = Section {
                buf: Vec::new(),
                active: true,
            };
            data = &rest[pointer..];
        }
        if sec.active {
            sec.buf.extend_from_slice(data);
            self.try_section(pid, &mut sec);
        }
        self.sections.insert(pid, sec);
    }

    /// Parses the section in `sec` once it is complete.
    fn try_section(&mut self, pid: u16, sec: &mut Section) {
        if sec.buf.len() < 3 {
            return;
        }
        if sec.buf[0] == 0xff {
            // Stuffing: no further section in this unit.
            sec.active = false;
            sec.buf.clear();
            return;
        }
        let len = (usize::from(sec.buf[1] & 0x0f) << 8) | usize::from(sec.buf[2]);
        if len > MAX_SECTION_LENGTH {
            self.error(TsError::SectionTooLong(len));
            sec.active = false;
            sec.buf.clear();
            return;
        }
        if sec.buf.len() < 3 + len {
            return;
        }
        let section: Vec<u8> = sec.buf.drain(..3 + len).collect();
        sec.active = false;
        sec.buf.clear();
        if let Err(reason) = check_section(&section) {
            self.error(TsError::BadSection { pid, reason });
            return;
        }
        // Payload between the 8-byte long header and the CRC.
        let body = &section[8..section.len() - 4];
        match (pid, section[0]) {
            (PID_PAT, 0x00) => self.pat(body),
            (_, 0x02) if Some(pid) == self.pmt_pid => {
                let version = (section[5] >> 1) & 0x1f;
                self.pmt(body, version);
            }
            _ => {}
        }
    }

    fn pat(&mut self, body: &[u8]) {
        let mut programs = 0;
        let mut first = None;
        for entry in body.chunks_exact(4) {
            let number = u16::from_be_bytes([entry[0], entry[1]]);
            let pid = (u16::from(entry[2] & 0x1f) << 8) | u16::from(entry[3]);
            if number == 0 {
                continue; // network PID
            }
            programs += 1;
            if programs > self.limits.max_programs {
                self.error(TsError::TooMany {
                    kind: "PAT",
                    limit: self.limits.max_programs,
                });
                break;
            }
            first.get_or_insert(pid);
        }
        if let Some(pid) = first {
            if self.pmt_pid != Some(pid) {
                if let Some(old) = self.pmt_pid {
                    self.sections.remove(&old);
                }
                self.pmt_pid = Some(pid);
                self.pmt_version = None;
            }
        }
    }

    fn pmt(&mut self, body: &[u8], version: u8) {
        if self.pmt_version == Some(version) && self.pmt_body == body {
            return;
        }
        let Some(info_len) = body
            .get(2..4)
            .map(|b| (usize::from(b[0] & 0x0f) << 8) | usize::from(b[1]))
        else {
            self.error(TsError::BadSection {
                pid: self.pmt_pid.unwrap_or(0),
                reason: "PMT shorter than its header",
            });
            return;
        };
        let mut es = match body.get(4 + info_len..) {
            Some(es) => es,
            None => {
                self.error(TsError::BadSection {
                    pid: self.pmt_pid.unwrap_or(0),
                    reason: "program_info_length past the section",
                });
                return;
            }
        };
        let mut streams: Vec<(u16, Kind)> = Vec::new();
        let mut count = 0;
        let (mut video, mut audio) = (false, false);
        while es.len() >= 5 {
            let stream_type = es[0];
            let pid = (u16::from(es[1] & 0x1f) << 8) | u16::from(es[2]);
            let info = (usize::from(es[3] & 0x0f) << 8) | usize::from(es[4]);
            es = es.get(5 + info..).unwrap_or(&[]);
            count += 1;
            if count > self.limits.max_streams {
                self.error(TsError::TooMany {
                    kind: "PMT",
                    limit: self.limits.max_streams,
                });
                break;
            }
            // Psi and media must not share a PID.
            if pid == PID_PAT || pid == PID_NULL || Some(pid) == self.pmt_pid {
                continue;
            }
            match stream_type {
                STREAM_TYPE_H264 if !video => {
                    video = true;
                    streams.push((pid, Kind::H264));
                }
                STREAM_TYPE_H265 if !video => {
                    video = true;
                    streams.push((pid, Kind::H265));
                }
                STREAM_TYPE_AAC_ADTS if !audio => {
                    audio = true;
                    streams.push((pid, Kind::Aac));
                }
                STREAM_TYPE_H264 | STREAM_TYPE_H265 | STREAM_TYPE_AAC_ADTS => {}
                other => {
                    if !self.reported_types.contains(&other) && self.reported_types.len() < 16 {
                        self.reported_types.push(other);
                        self.error(TsError::UnsupportedStream(other));
                    }
                }
            }
        }
        self.pmt_version = Some(version);
        self.pmt_body.clear();
        self.pmt_body.extend_from_slice(body);
        self.declared = (video, audio);
        // Streams that go or change codec end their unit in progress (a video PES
        // without a length ends only when the next starts).
        let ending: Vec<u16> = self
            .pes
            .iter()
            .filter(|(pid, p)| !streams.contains(&(**pid, p.kind)))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in ending {
            self.flush_pes(pid);
        }
        // Keep the units in progress of streams that stay.
        let mut next = HashMap::new();
        for (pid, kind) in streams {
            let pes = match self.pes.remove(&pid) {
                Some(p) if p.kind == kind => p,
                _ => Pes {
                    kind,
                    buf: Vec::new(),
                    active: false,
                },
            };
            next.insert(pid, pes);
        }
        self.pes = next;
    }

    fn pes_payload(&mut self, pid: u16, pusi: bool, payload: &[u8]) {
        if pusi {
            self.flush_pes(pid);
        }
        let limit = self.limits.max_pes_bytes;
        let Some(pes) = self.pes.get_mut(&pid) else {
            return;
        };
        if pusi {
            pes.active = true;
            pes.buf.clear();
        }
        if !pes.active {
            return;
        }
        if pes.buf.len() + payload.len() > limit {
            pes.active = false;
            pes.buf = Vec::new();
            self.error(TsError::PesTooLarge { pid, limit });
            return;
        }
        pes.buf.extend_from_slice(payload);
        // A PES with a length is complete as soon as it has all of it.
        if let Some(total) = pes_total_len(&pes.buf) {
            if pes.buf.len() >= total {
                self.flush_pes(pid);
            }
        }
    }

    fn flush_pes(&mut self, pid: u16) {
        let Some(pes) = self.pes.get_mut(&pid) else {
            return;
        };
        if !pes.active || pes.buf.is_empty() {
            pes.active = false;
            return;
        }
        pes.active = false;
        let kind = pes.kind;
        let buf = std::mem::take(&mut pes.buf);
        match parse_pes(&buf) {
            Ok((pts, dts, data)) => {
                let Some(pts) = pts else {
                    self.error(TsError::BadPes {
                        pid,
                        reason: "no PTS",
                    });
                    return;
                };
                let pts = self.clock.extend(pts);
                let dts = dts.map_or(pts, |d| self.clock.extend(d));
                match kind {
                    Kind::H264 => self.h264(pts, dts.min(pts), data),
                    Kind::H265 => self.h265(pts, dts.min(pts), data),
                    Kind::Aac => self.aac(pts, data),
                }
            }
            Err(reason) => self.error(TsError::BadPes { pid, reason }),
        }
        // Reuse the allocation for the next unit.
        if let Some(pes) = self.pes.get_mut(&pid) {
            if pes.buf.capacity() == 0 && buf.capacity() <= 1024 * 1024 {
                pes.buf = buf;
                pes.buf.clear();
            }
        }
    }

    /// Forgets the parameter sets of another codec (the PMT changed the video
    /// stream's codec): the new codec's frames wait for its own configuration.
    fn switch_codec(&mut self, codec: VideoCodec) {
        if self.video_codec != codec {
            self.video_codec = codec;
            self.vps.clear();
            self.sps.clear();
            self.pps.clear();
            self.config_sent = None;
        }
    }

    fn h264(&mut self, pts: u64, dts: u64, es: &[u8]) {
        self.switch_codec(VideoCodec::Avc);
        let mut out = BytesMut::with_capacity(es.len() + 16);
        let mut keyframe = false;
        let mut sps = Vec::new();
        let mut pps = Vec::new();
        for nal in annex_b_nals(es) {
            let Some(&header) = nal.first() else {
                continue;
            };
            match header & 0x1f {
                7 => sps.push(Bytes::copy_from_slice(nal)),
                8 => pps.push(Bytes::copy_from_slice(nal)),
                9..=12 => {} // delimiter, end of sequence/stream, filler
                t => {
                    keyframe |= t == 5;
                    let Ok(len) = u32::try_from(nal.len()) else {
                        continue;
                    };
                    out.put_u32(len);
                    out.put_slice(nal);
                }
            }
        }
        if !sps.is_empty() || !pps.is_empty() {
            let max = self.limits.max_parameter_sets;
            if !sps.is_empty() {
                sps.truncate(max);
                self.sps = sps;
            }
            if !pps.is_empty() {
                pps.truncate(max);
                self.pps = pps;
            }
            let current = (Vec::new(), self.sps.clone(), self.pps.clone());
            if !self.sps.is_empty()
                && !self.pps.is_empty()
                && self.config_sent.as_ref() != Some(&current)
            {
                match avc_record(&self.sps, &self.pps) {
                    Ok(record) => {
                        self.config_sent = Some(current);
                        self.emit(Frame::VideoConfig {
                            codec: VideoCodec::Avc,
                            record,
                        });
                    }
                    Err(reason) => self.error(TsError::BadParameterSet(reason)),
                }
            }
        }
        if out.is_empty() {
            return;
        }
        if self.config_sent.is_none() {
            self.error(TsError::NoVideoConfig);
            return;
        }
        self.emit(Frame::Video {
            codec: VideoCodec::Avc,
            pts,
            dts,
            keyframe,
            data: out.freeze(),
        });
    }

    fn h265(&mut self, pts: u64, dts: u64, es: &[u8]) {
        self.switch_codec(VideoCodec::Hevc);
        let mut out = BytesMut::with_capacity(es.len() + 16);
        let mut keyframe = false;
        let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
        let max = self.limits.max_parameter_sets;
        let mut too_many = false;
        for nal in annex_b_nals(es) {
            // Two-byte NAL header (H.265 §7.3.1.2).
            let [h0, _, ..] = nal else {
                continue;
            };
            let set = match (h0 >> 1) & 0x3f {
                H265_VPS => &mut vps,
                H265_SPS => &mut sps,
                H265_PPS => &mut pps,
                35..=38 => continue, // delimiter, end of sequence/bitstream, filler
                t => {
                    keyframe |= (16..=23).contains(&t);
                    let Ok(len) = u32::try_from(nal.len()) else {
                        continue;
                    };
                    out.put_u32(len);
                    out.put_slice(nal);
                    continue;
                }
            };
            if set.len() < max {
                set.push(Bytes::copy_from_slice(nal));
            } else {
                too_many = true;
            }
        }
        if too_many {
            self.error(TsError::TooMany {
                kind: "H.265 parameter sets of one kind in an access unit",
                limit: max,
            });
        }
        if !vps.is_empty() || !sps.is_empty() || !pps.is_empty() {
            if !vps.is_empty() {
                self.vps = vps;
            }
            if !sps.is_empty() {
                self.sps = sps;
            }
            if !pps.is_empty() {
                self.pps = pps;
            }
            let current = (self.vps.clone(), self.sps.clone(), self.pps.clone());
            if !self.vps.is_empty()
                && !self.sps.is_empty()
                && !self.pps.is_empty()
                && self.config_sent.as_ref() != Some(&current)
            {
                match hevc::record_from_parameter_sets(&self.vps, &self.sps, &self.pps) {
                    Ok(config) => {
                        self.config_sent = Some(current);
                        self.emit(Frame::VideoConfig {
                            codec: VideoCodec::Hevc,
                            record: config.raw,
                        });
                    }
                    Err(e) => {
                        // Forget the sets, so the next ones are tried afresh and
                        // frames do not go on under a configuration they do not match.
                        self.vps.clear();
                        self.sps.clear();
                        self.pps.clear();
                        self.config_sent = None;
                        self.error(TsError::BadHevcParameterSets(e));
                    }
                }
            }
        }
        if out.is_empty() {
            return;
        }
        if self.config_sent.is_none() {
            self.error(TsError::NoVideoConfig);
            return;
        }
        self.emit(Frame::Video {
            codec: VideoCodec::Hevc,
            pts,
            dts,
            keyframe,
            data: out.freeze(),
        });
    }

    fn aac(&mut self, pts: u64, mut es: &[u8]) {
        let mut index: u64 = 0;
        while !es.is_empty() {
            let frame = match parse_adts(es) {
                Ok(f) => f,
                Err(reason) => {
                    self.error(TsError::BadAdts(reason));
                    return;
                }
            };
            if self.asc_sent != Some(frame.asc) {
                self.asc_sent = Some(frame.asc);
                self.emit(Frame::AudioConfig(Bytes::copy_from_slice(&frame.asc)));
            }
            let at = pts + index * 1024 * 90_000 / u64::from(frame.sample_rate);
            self.emit(Frame::Audio {
                pts: at,
                data: Bytes::copy_from_slice(&es[frame.header..frame.len]),
            });
            index += 1;
            es = &es[frame.len..];
        }
    }
}

/// Checks a complete PSI section: long form, and its CRC.
fn check_section(s: &[u8]) -> Result<(), &'static str> {
    if s.len() < 12 {
        return Err("shorter than a long-form header and CRC");
    }
    if s[1] & 0x80 == 0 {
        return Err("section_syntax_indicator is 0");
    }
    if crc32_mpeg2(s) != 0 {
        return Err("CRC mismatch");
    }
    Ok(())
}

/// CRC-32/MPEG-2 over `data`; 0 over a section including its CRC means intact.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xffff_ffff;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Total length of a PES packet from its header, when it states one.
fn pes_total_len(buf: &[u8]) -> Option<usize> {
    let len = usize::from(u16::from_be_bytes([*buf.get(4)?, *buf.get(5)?]));
    (len != 0).then_some(6 + len)
}

/// A PES packet's PTS, DTS (33-bit, as written) and payload.
type PesParts<'a> = (Option<u64>, Option<u64>, &'a [u8]);

/// Splits a PES packet into PTS, DTS and its payload.
fn parse_pes(buf: &[u8]) -> Result<PesParts<'_>, &'static str> {
    if buf.len() < 9 {
        return Err("shorter than its header");
    }
    if buf[..3] != [0, 0, 1] {
        return Err("no packet_start_code_prefix");
    }
    let stated = pes_total_len(buf);
    let end = match stated {
        Some(total) if total > buf.len() => return Err("PES_packet_length past the data"),
        Some(total) => total,
        None => buf.len(),
    };
    if buf[6] & 0xc0 != 0x80 {
        return Err("not an MPEG-2 PES header");
    }
    let flags = buf[7] >> 6;
    let header_len = usize::from(buf[8]);
    let payload_at = 9 + header_len;
    if payload_at > end {
        return Err("PES_header_data_length past the packet");
    }
    let h = &buf[9..payload_at];
    let (pts, dts) = match flags {
        0b10 => (Some(timestamp(h.get(..5))?), None),
        0b11 => (Some(timestamp(h.get(..5))?), Some(timestamp(h.get(5..10))?)),
        0b00 => (None, None),
        _ => return Err("PTS_DTS_flags is 01 (forbidden)"),
    };
    Ok((pts, dts, &buf[payload_at..end]))
}

fn timestamp(b: Option<&[u8]>) -> Result<u64, &'static str> {
    let b = b.ok_or("PTS/DTS past the header")?;
    if b.len() < 5 {
        return Err("PTS/DTS past the header");
    }
    Ok((u64::from(b[0] >> 1) & 0x07) << 30
        | u64::from(b[1]) << 22
        | (u64::from(b[2]) >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4]) >> 1)
}

/// NAL units of an Annex B byte stream (start codes of 3 or 4 bytes), without the
/// trailing zero bytes of each.
fn annex_b_nals(es: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| s - 3)
        .chain(std::iter::once(es.len()))
        .collect();
    starts.into_iter().zip(ends).map(move |(s, e)| {
        let mut nal = &es[s..e];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        nal
    })
}

/// Builds an `AVCDecoderConfigurationRecord` from parameter sets.
fn avc_record(sps: &[Bytes], pps: &[Bytes]) -> Result<Bytes, &'static str> {
    let first = sps.first().ok_or("no SPS")?;
    if first.len() < 4 {
        return Err("SPS shorter than its profile and level");
    }
    let mut r = BytesMut::new();
    r.put_u8(1);
    r.put_u8(first[1]);
    r.put_u8(first[2]);
    r.put_u8(first[3]);
    r.put_u8(0xff); // 4-byte NAL lengths
    r.put_u8(0xe0 | (sps.len() as u8 & 0x1f));
    for s in sps {
        let len = u16::try_from(s.len()).map_err(|_| "SPS longer than 65535 bytes")?;
        r.put_u16(len);
        r.put_slice(s);
    }
    r.put_u8(pps.len() as u8);
    for p in pps {
        let len = u16::try_from(p.len()).map_err(|_| "PPS longer than 65535 bytes")?;
        r.put_u16(len);
        r.put_slice(p);
    }
    Ok(r.freeze())
}

struct Adts {
    /// Header length (7, or 9 with CRC).
    header: usize,
    /// Frame length including the header.
    len: usize,
    asc: [u8; 2],
    sample_rate: u32,
}

const ADTS_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

fn parse_adts(b: &[u8]) -> Result<Adts, &'static str> {
    if b.len() < 7 {
        return Err("shorter than its header");
    }
    if b[0] != 0xff || b[1] & 0xf0 != 0xf0 {
        return Err("no syncword");
    }
    let protection_absent = b[1] & 0x01 != 0;
    let profile = b[2] >> 6;
    let sfi = (b[2] >> 2) & 0x0f;
    let channels = ((b[2] & 0x01) << 2) | (b[3] >> 6);
    let len = (usize::from(b[3] & 0x03) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
    let blocks = b[6] & 0x03;
    let header = if protection_absent { 7 } else { 9 };
    let sample_rate = *ADTS_RATES
        .get(usize::from(sfi))
        .ok_or("reserved sampling_frequency_index")?;
    if channels == 0 {
        return Err("channel_configuration 0 (program config element) is not supported");
    }
    if blocks != 0 {
        return Err("several raw data blocks in one frame are not supported");
    }
    if len <= header || len > MAX_ADTS_FRAME {
        return Err("frame_length shorter than its header");
    }
    if len > b.len() {
        return Err("frame_length past the PES");
    }
    let object_type = u16::from(profile) + 1;
    let asc = (object_type << 11) | (u16::from(sfi) << 7) | (u16::from(channels) << 3);
    Ok(Adts {
        header,
        len,
        asc: asc.to_be_bytes(),
        sample_rate,
    })
}

#[cfg(test)]
mod tests;
