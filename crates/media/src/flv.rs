//! FLV tag *bodies* as RTMP carries them: message type 9 (video) and 8 (audio).
//!
//! This module splits a tag body into its FLV header fields and payload for the
//! codecs mediamesh ingests: legacy H.264/AVC video tags (`CodecID` 7), Enhanced
//! RTMP video tags (Veovera E-RTMP v1/v2: `ExVideoTagHeader` with the
//! `IsExHeader` bit, a FourCC of `avc1`, `hvc1` or `av01`, PacketType
//! SequenceStart / CodedFrames / CodedFramesX / SequenceEnd / Metadata /
//! MPEG2TSSequenceStart, and v2's ModEx prefixes), and AAC audio. It does **not**
//! read FLV files (no file header, no tag headers, no previous-tag-size fields),
//! does not handle script-data/AMF0 messages, E-RTMP multitrack packets,
//! enhanced audio, or `vp09`, and does not look inside the payload: decoder
//! configuration records are parsed by [`crate::codec`], and NAL units / OBUs are
//! passed through untouched.
//!
//! All functions are pure and never panic on hostile input; they return
//! [`FlvError`] instead. Payloads are zero-copy slices of the input [`Bytes`].

use bytes::Bytes;
use thiserror::Error;

pub use crate::codec::VideoCodec;

/// FLV `CodecID` for AVC (H.264).
const CODEC_ID_AVC: u8 = 7;
/// FLV `SoundFormat` for AAC.
const SOUND_FORMAT_AAC: u8 = 10;
/// FLV `FrameType` of a keyframe.
const FRAME_TYPE_KEY: u8 = 1;
/// FLV `FrameType` of a video info/command frame.
const FRAME_TYPE_COMMAND: u8 = 5;
/// Length of the legacy video tag header for AVC: flags, AVCPacketType, SI24 CTS.
const AVC_HEADER_LEN: usize = 5;
/// E-RTMP `IsExHeader` bit of the first video byte.
const EX_HEADER: u8 = 0x80;
/// E-RTMP video PacketType values.
const PACKET_SEQUENCE_START: u8 = 0;
const PACKET_CODED_FRAMES: u8 = 1;
const PACKET_SEQUENCE_END: u8 = 2;
const PACKET_CODED_FRAMES_X: u8 = 3;
const PACKET_METADATA: u8 = 4;
const PACKET_MPEG2TS_SEQUENCE_START: u8 = 5;
const PACKET_MULTITRACK: u8 = 6;
const PACKET_MOD_EX: u8 = 7;
/// Most ModEx prefixes one tag may carry (the body bounds them anyway).
const MAX_MOD_EX: usize = 8;
/// Descriptor tag of the AV1 video descriptor in MPEG2TSSequenceStart.
const AV1_TS_DESCRIPTOR: u8 = 0x80;
/// Length of the audio tag header for AAC: flags, AACPacketType.
const AAC_HEADER_LEN: usize = 2;

/// Errors produced while splitting FLV tag bodies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvError {
    /// The body is shorter than the header it must carry.
    #[error("truncated FLV {what}: need {need} bytes, got {got}")]
    Truncated {
        /// Which header was being read.
        what: &'static str,
        /// Minimum number of bytes required.
        need: usize,
        /// Number of bytes available.
        got: usize,
    },
    /// The legacy video `CodecID` is not 7 (AVC).
    #[error("unsupported FLV video codec id {0}")]
    UnsupportedVideoCodec(u8),
    /// An Enhanced RTMP video FourCC other than `avc1`, `hvc1` and `av01`.
    #[error("unsupported Enhanced RTMP video FourCC {:?}", String::from_utf8_lossy(.0))]
    UnsupportedFourCc([u8; 4]),
    /// An Enhanced RTMP PacketType this server does not take (multitrack, a
    /// reserved value, CodedFramesX or MPEG2TSSequenceStart for a codec without
    /// them).
    #[error("unsupported Enhanced RTMP video PacketType {0}")]
    UnsupportedPacketType(u8),
    /// An Enhanced RTMP Metadata packet (`colorInfo` and such, AMF): carries no
    /// picture; callers are expected to ignore it.
    #[error("Enhanced RTMP video metadata")]
    ExMetadata,
    /// An Enhanced RTMP ModEx prefix that is malformed (its data too short for its
    /// type, or more prefixes than allowed).
    #[error("invalid Enhanced RTMP ModEx: {0}")]
    InvalidModEx(&'static str),
    /// An MPEG2TSSequenceStart whose AV1 video descriptor is malformed.
    #[error("invalid AV1 video descriptor in MPEG2TSSequenceStart")]
    InvalidAv1Descriptor,
    /// The audio `SoundFormat` is not 10 (AAC).
    #[error("unsupported FLV audio sound format {0}")]
    UnsupportedAudioCodec(u8),
    /// A video info/command frame (`FrameType` 5). Carries no picture; callers
    /// are expected to ignore it.
    #[error("FLV video info/command frame")]
    CommandFrame,
    /// `FrameType` 0 or 6/7, which FLV does not define.
    #[error("invalid FLV video frame type {0}")]
    InvalidFrameType(u8),
    /// `AVCPacketType` other than 0, 1 or 2.
    #[error("unknown AVCPacketType {0}")]
    UnknownAvcPacketType(u8),
    /// `AACPacketType` other than 0 or 1.
    #[error("unknown AACPacketType {0}")]
    UnknownAacPacketType(u8),
    /// A sequence header or media packet with no payload after its header.
    #[error("empty FLV {0} payload")]
    EmptyPayload(&'static str),
}

/// A parsed video tag body: legacy AVC or Enhanced RTMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoPacket {
    /// The decoder configuration record: AVCPacketType 0, or E-RTMP SequenceStart
    /// (AVCDecoderConfigurationRecord, HEVCDecoderConfigurationRecord or
    /// AV1CodecConfigurationRecord).
    SequenceHeader {
        /// Which codec the record is for.
        codec: VideoCodec,
        /// The record, not validated here.
        record: Bytes,
    },
    /// One coded picture: AVCPacketType 1, or E-RTMP CodedFrames / CodedFramesX.
    Frame {
        /// Which codec.
        codec: VideoCodec,
        /// `FrameType == 1`.
        keyframe: bool,
        /// Signed 24-bit composition time offset (PTS - DTS) in milliseconds; 0
        /// for CodedFramesX and AV1, which carry none.
        composition_time_ms: i32,
        /// Length-prefixed NAL units (AVC, HEVC) or low-overhead OBUs (AV1); not
        /// validated here.
        data: Bytes,
    },
    /// E-RTMP MPEG2TSSequenceStart for `av01`: an `AV1CodecConfigurationRecord`
    /// made from the AV1 video descriptor, without `configOBUs`. Only useful when
    /// no SequenceStart came.
    Av1DescriptorConfig(Bytes),
    /// AVCPacketType 2 or E-RTMP SequenceEnd.
    EndOfSequence(VideoCodec),
}

/// A parsed audio tag body (AAC only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPacket {
    /// AudioSpecificConfig (AACPacketType 0)
    SequenceHeader(Bytes),
    /// raw AAC frame (AACPacketType 1)
    Raw(Bytes),
}

/// Splits an FLV video tag body (RTMP message type 9), legacy or Enhanced RTMP.
///
/// Errors: empty or short bodies ([`FlvError::Truncated`]), legacy codecs other
/// than AVC ([`FlvError::UnsupportedVideoCodec`]), E-RTMP FourCCs other than
/// `avc1`/`hvc1`/`av01` and packet types not taken here, info/command frames
/// ([`FlvError::CommandFrame`]) and E-RTMP metadata ([`FlvError::ExMetadata`]),
/// both safe to ignore, undefined frame or packet types, and sequence headers /
/// coded frames with an empty payload ([`FlvError::EmptyPayload`]).
pub fn parse_video(body: Bytes) -> Result<VideoPacket, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated {
        what: "video tag header",
        need: 1,
        got: 0,
    })?;
    if first & EX_HEADER != 0 {
        return parse_ex_video(body, first);
    }
    let frame_type = first >> 4;
    let codec_id = first & 0x0f;
    if frame_type == FRAME_TYPE_COMMAND {
        return Err(FlvError::CommandFrame);
    }
    if !(1..=4).contains(&frame_type) {
        return Err(FlvError::InvalidFrameType(frame_type));
    }
    if codec_id != CODEC_ID_AVC {
        return Err(FlvError::UnsupportedVideoCodec(codec_id));
    }
    let header = match body.get(..AVC_HEADER_LEN) {
        Some(&[_, packet_type, c0, c1, c2]) => (packet_type, [c0, c1, c2]),
        _ => {
            return Err(FlvError::Truncated {
                what: "AVC video tag header",
                need: AVC_HEADER_LEN,
                got: body.len(),
            })
        }
    };
    let (packet_type, cts) = header;
    let payload = body.slice(AVC_HEADER_LEN..);
    match packet_type {
        0 => {
            if payload.is_empty() {
                return Err(FlvError::EmptyPayload("AVC sequence header"));
            }
            Ok(VideoPacket::SequenceHeader {
                codec: VideoCodec::Avc,
                record: payload,
            })
        }
        1 => {
            if payload.is_empty() {
                return Err(FlvError::EmptyPayload("AVC NALU"));
            }
            Ok(VideoPacket::Frame {
                codec: VideoCodec::Avc,
                keyframe: frame_type == FRAME_TYPE_KEY,
                composition_time_ms: si24(cts),
                data: payload,
            })
        }
        2 => Ok(VideoPacket::EndOfSequence(VideoCodec::Avc)),
        other => Err(FlvError::UnknownAvcPacketType(other)),
    }
}

/// An Enhanced RTMP video tag body: `IsExHeader | FrameType << 4 | PacketType`,
/// ModEx prefixes (v2), the FourCC, then the packet.
fn parse_ex_video(body: Bytes, first: u8) -> Result<VideoPacket, FlvError> {
    let frame_type = (first >> 4) & 0x07;
    let mut packet_type = first & 0x0f;
    let mut pos = 1usize;
    let mut prefixes = 0usize;
    while packet_type == PACKET_MOD_EX {
        prefixes += 1;
        if prefixes > MAX_MOD_EX {
            return Err(FlvError::InvalidModEx("more than 8 ModEx prefixes"));
        }
        let size_byte = *body
            .get(pos)
            .ok_or(truncated("E-RTMP ModEx size", pos + 1, &body))?;
        pos += 1;
        let mut size = usize::from(size_byte) + 1;
        if size == 256 {
            let wide =
                body.get(pos..pos + 2)
                    .ok_or(truncated("E-RTMP ModEx size", pos + 2, &body))?;
            size = usize::from(u16::from_be_bytes([wide[0], wide[1]])) + 1;
            pos += 2;
        }
        let data_end = pos + size;
        let next =
            *body
                .get(data_end)
                .ok_or(truncated("E-RTMP ModEx data", data_end + 1, &body))?;
        let mod_ex_type = next >> 4;
        // TimestampOffsetNano (type 0) needs 3 bytes; the sub-millisecond offset
        // is below what the packager keeps, so it is checked and dropped. Other
        // types are not defined yet and are skipped, as the spec asks.
        if mod_ex_type == 0 && size < 3 {
            return Err(FlvError::InvalidModEx(
                "TimestampOffsetNano with fewer than 3 bytes",
            ));
        }
        packet_type = next & 0x0f;
        pos = data_end + 1;
    }
    if frame_type == FRAME_TYPE_COMMAND && packet_type != PACKET_METADATA {
        return Err(FlvError::CommandFrame);
    }
    if packet_type == PACKET_MULTITRACK {
        return Err(FlvError::UnsupportedPacketType(packet_type));
    }
    if !(1..=4).contains(&frame_type) && frame_type != FRAME_TYPE_COMMAND {
        return Err(FlvError::InvalidFrameType(frame_type));
    }
    let fourcc: [u8; 4] = body
        .get(pos..pos + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or(truncated("E-RTMP video FourCC", pos + 4, &body))?;
    pos += 4;
    let codec = match &fourcc {
        b"avc1" => VideoCodec::Avc,
        b"hvc1" => VideoCodec::Hevc,
        b"av01" => VideoCodec::Av1,
        _ => return Err(FlvError::UnsupportedFourCc(fourcc)),
    };
    let keyframe = frame_type == FRAME_TYPE_KEY;
    match packet_type {
        PACKET_SEQUENCE_START => {
            let record = body.slice(pos..);
            if record.is_empty() {
                return Err(FlvError::EmptyPayload("E-RTMP SequenceStart"));
            }
            Ok(VideoPacket::SequenceHeader { codec, record })
        }
        PACKET_CODED_FRAMES if codec == VideoCodec::Av1 => {
            let data = body.slice(pos..);
            if data.is_empty() {
                return Err(FlvError::EmptyPayload("E-RTMP CodedFrames"));
            }
            Ok(VideoPacket::Frame {
                codec,
                keyframe,
                composition_time_ms: 0,
                data,
            })
        }
        PACKET_CODED_FRAMES => {
            let cts: [u8; 3] = body
                .get(pos..pos + 3)
                .and_then(|b| b.try_into().ok())
                .ok_or(truncated("E-RTMP CompositionTime", pos + 3, &body))?;
            let data = body.slice(pos + 3..);
            if data.is_empty() {
                return Err(FlvError::EmptyPayload("E-RTMP CodedFrames"));
            }
            Ok(VideoPacket::Frame {
                codec,
                keyframe,
                composition_time_ms: si24(cts),
                data,
            })
        }
        PACKET_CODED_FRAMES_X if codec != VideoCodec::Av1 => {
            let data = body.slice(pos..);
            if data.is_empty() {
                return Err(FlvError::EmptyPayload("E-RTMP CodedFramesX"));
            }
            Ok(VideoPacket::Frame {
                codec,
                keyframe,
                composition_time_ms: 0,
                data,
            })
        }
        PACKET_SEQUENCE_END => Ok(VideoPacket::EndOfSequence(codec)),
        PACKET_METADATA => Err(FlvError::ExMetadata),
        PACKET_MPEG2TS_SEQUENCE_START if codec == VideoCodec::Av1 => {
            // av1_video_descriptor: tag, length, then the first four bytes of an
            // AV1CodecConfigurationRecord, except that the fourth byte carries
            // hdr_wcg_idc where the record has reserved bits.
            match body.get(pos..) {
                Some(&[AV1_TS_DESCRIPTOR, len, b0, b1, b2, b3, ..]) if len >= 4 => {
                    if usize::from(len) > body.len() - pos - 2 {
                        return Err(FlvError::InvalidAv1Descriptor);
                    }
                    Ok(VideoPacket::Av1DescriptorConfig(Bytes::from(vec![
                        b0,
                        b1,
                        b2,
                        b3 & 0x1f,
                    ])))
                }
                _ => Err(FlvError::InvalidAv1Descriptor),
            }
        }
        other => Err(FlvError::UnsupportedPacketType(other)),
    }
}

fn truncated(what: &'static str, need: usize, body: &Bytes) -> FlvError {
    FlvError::Truncated {
        what,
        need,
        got: body.len(),
    }
}

/// Splits an FLV audio tag body (RTMP message type 8).
///
/// Errors: short bodies ([`FlvError::Truncated`]), non-AAC sound formats
/// ([`FlvError::UnsupportedAudioCodec`]), undefined AACPacketType values, and
/// an empty AudioSpecificConfig or raw frame ([`FlvError::EmptyPayload`]).
/// The sound rate/size/type bits are ignored: for AAC they are fixed by the
/// specification and the real values come from the AudioSpecificConfig.
pub fn parse_audio(body: Bytes) -> Result<AudioPacket, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated {
        what: "audio tag header",
        need: 1,
        got: 0,
    })?;
    let sound_format = first >> 4;
    if sound_format != SOUND_FORMAT_AAC {
        return Err(FlvError::UnsupportedAudioCodec(sound_format));
    }
    let packet_type = *body.get(1).ok_or(FlvError::Truncated {
        what: "AAC audio tag header",
        need: AAC_HEADER_LEN,
        got: body.len(),
    })?;
    let payload = body.slice(AAC_HEADER_LEN..);
    match packet_type {
        0 if payload.is_empty() => Err(FlvError::EmptyPayload("AAC sequence header")),
        0 => Ok(AudioPacket::SequenceHeader(payload)),
        1 if payload.is_empty() => Err(FlvError::EmptyPayload("AAC raw frame")),
        1 => Ok(AudioPacket::Raw(payload)),
        other => Err(FlvError::UnknownAacPacketType(other)),
    }
}

/// Sign-extends a big-endian 24-bit two's complement value.
fn si24(b: [u8; 3]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sequence header tag body produced by ffmpeg/libx264 (1280x720 High@3.1).
    const AVC_SEQ_720P: &str = "17000000000164001fffe1001a6764001facd9405005bb011000000300100000030320f183196001000668ebe3cb22c0fdf8f800";
    /// AAC-LC 44.1 kHz stereo sequence header tag body produced by ffmpeg.
    const AAC_SEQ: &str = "af00121056e500";

    fn hex(s: &str) -> Bytes {
        let v: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        Bytes::from(v)
    }

    #[test]
    fn video_sequence_header() {
        let body = hex(AVC_SEQ_720P);
        match parse_video(body.clone()).unwrap() {
            VideoPacket::SequenceHeader { record: rec, .. } => {
                assert_eq!(rec, body.slice(5..));
                assert_eq!(rec[0], 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn video_keyframe_and_interframe() {
        let body = Bytes::from_static(&[0x17, 1, 0, 0, 0x50, 0, 0, 0, 2, 0x65, 0x88]);
        assert_eq!(
            parse_video(body).unwrap(),
            VideoPacket::Frame {
                codec: VideoCodec::Avc,
                keyframe: true,
                composition_time_ms: 80,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            }
        );
        let body = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]);
        assert_eq!(
            parse_video(body).unwrap(),
            VideoPacket::Frame {
                codec: VideoCodec::Avc,
                keyframe: false,
                composition_time_ms: 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            }
        );
        // Disposable inter frame and generated keyframe are not keyframes.
        for ft in [0x37u8, 0x47] {
            let body = Bytes::from(vec![ft, 1, 0, 0, 0, 0, 0, 0, 1, 0x01]);
            assert!(matches!(
                parse_video(body).unwrap(),
                VideoPacket::Frame {
                    keyframe: false,
                    ..
                }
            ));
        }
    }

    #[test]
    fn composition_time_sign_extension() {
        let cases: [([u8; 3], i32); 6] = [
            ([0, 0, 0], 0),
            ([0, 0, 1], 1),
            ([0x7f, 0xff, 0xff], 8_388_607),
            ([0xff, 0xff, 0xff], -1),
            ([0xff, 0xff, 0xd8], -40),
            ([0x80, 0, 0], -8_388_608),
        ];
        for (raw, want) in cases {
            let body = Bytes::from(vec![0x27, 1, raw[0], raw[1], raw[2], 0, 0, 0, 1, 0x41]);
            match parse_video(body).unwrap() {
                VideoPacket::Frame {
                    composition_time_ms,
                    ..
                } => assert_eq!(composition_time_ms, want, "{raw:?}"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn video_end_of_sequence() {
        let body = Bytes::from_static(&[0x17, 2, 0, 0, 0]);
        assert_eq!(
            parse_video(body).unwrap(),
            VideoPacket::EndOfSequence(VideoCodec::Avc)
        );
    }

    #[test]
    fn video_errors() {
        let err = |b: &'static [u8]| parse_video(Bytes::from_static(b)).unwrap_err();
        assert!(matches!(err(&[]), FlvError::Truncated { got: 0, .. }));
        assert!(matches!(err(&[0x17]), FlvError::Truncated { got: 1, .. }));
        assert!(matches!(
            err(&[0x17, 1, 0, 0]),
            FlvError::Truncated { got: 4, .. }
        ));
        assert_eq!(err(&[0x12, 0, 0]), FlvError::UnsupportedVideoCodec(2));
        assert_eq!(err(&[0x1c, 0, 0]), FlvError::UnsupportedVideoCodec(12));
        // Enhanced RTMP: IsExHeader | KeyFrame<<4 | SequenceStart, FourCC "hvc1".
        assert!(matches!(
            err(&[0x90, b'h', b'v', b'c', b'1']),
            FlvError::EmptyPayload(_)
        ));
        assert_eq!(err(&[0x57, 0]), FlvError::CommandFrame);
        assert_eq!(err(&[0x50]), FlvError::CommandFrame);
        assert_eq!(err(&[0x07, 1, 0, 0, 0, 1]), FlvError::InvalidFrameType(0));
        assert_eq!(err(&[0x67, 1, 0, 0, 0, 1]), FlvError::InvalidFrameType(6));
        assert_eq!(
            err(&[0x17, 3, 0, 0, 0, 1]),
            FlvError::UnknownAvcPacketType(3)
        );
        assert!(matches!(
            err(&[0x17, 0, 0, 0, 0]),
            FlvError::EmptyPayload(_)
        ));
        assert!(matches!(
            err(&[0x27, 1, 0, 0, 0]),
            FlvError::EmptyPayload(_)
        ));
    }

    /// An E-RTMP video body: first byte, FourCC, then `rest`.
    fn ex(first: u8, fourcc: &[u8; 4], rest: &[u8]) -> Bytes {
        let mut v = vec![first];
        v.extend_from_slice(fourcc);
        v.extend_from_slice(rest);
        Bytes::from(v)
    }

    #[test]
    fn enhanced_rtmp_hevc() {
        // IsExHeader | KeyFrame << 4 | SequenceStart.
        let rec = [1u8, 1, 0x60, 0, 0];
        assert_eq!(
            parse_video(ex(0x90, b"hvc1", &rec)).unwrap(),
            VideoPacket::SequenceHeader {
                codec: VideoCodec::Hevc,
                record: Bytes::copy_from_slice(&rec),
            }
        );
        // CodedFrames: SI24 composition time, then NAL units.
        assert_eq!(
            parse_video(ex(0x91, b"hvc1", &[0xff, 0xff, 0xd8, 0, 0, 0, 1, 0x26])).unwrap(),
            VideoPacket::Frame {
                codec: VideoCodec::Hevc,
                keyframe: true,
                composition_time_ms: -40,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x26]),
            }
        );
        // CodedFramesX: no composition time; an inter frame.
        assert_eq!(
            parse_video(ex(0xa3, b"hvc1", &[0, 0, 0, 1, 0x02])).unwrap(),
            VideoPacket::Frame {
                codec: VideoCodec::Hevc,
                keyframe: false,
                composition_time_ms: 0,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x02]),
            }
        );
        assert_eq!(
            parse_video(ex(0x92, b"hvc1", &[])).unwrap(),
            VideoPacket::EndOfSequence(VideoCodec::Hevc)
        );
        // E-RTMP v2 also carries AVC under a FourCC.
        assert!(matches!(
            parse_video(ex(0x91, b"avc1", &[0, 0, 0, 0, 0, 0, 1, 0x65])).unwrap(),
            VideoPacket::Frame {
                codec: VideoCodec::Avc,
                keyframe: true,
                ..
            }
        ));
    }

    #[test]
    fn enhanced_rtmp_av1() {
        let rec = [0x81u8, 0, 0x0c, 0];
        assert_eq!(
            parse_video(ex(0x90, b"av01", &rec)).unwrap(),
            VideoPacket::SequenceHeader {
                codec: VideoCodec::Av1,
                record: Bytes::copy_from_slice(&rec),
            }
        );
        // CodedFrames for AV1 carry no composition time: the OBUs start at once.
        assert_eq!(
            parse_video(ex(0x91, b"av01", &[0x12, 0, 0x32, 1, 0xaa])).unwrap(),
            VideoPacket::Frame {
                codec: VideoCodec::Av1,
                keyframe: true,
                composition_time_ms: 0,
                data: Bytes::from_static(&[0x12, 0, 0x32, 1, 0xaa]),
            }
        );
        // MPEG2TSSequenceStart: the AV1 video descriptor becomes a bare av1C
        // (hdr_wcg_idc masked off).
        assert_eq!(
            parse_video(ex(0x95, b"av01", &[0x80, 4, 0x81, 0x08, 0x0c, 0xc0])).unwrap(),
            VideoPacket::Av1DescriptorConfig(Bytes::from_static(&[0x81, 0x08, 0x0c, 0x00]))
        );
        for bad in [
            &[0x80u8, 3, 0x81, 0, 0][..],
            &[0x81, 4, 0x81, 0, 0, 0],
            &[0x80, 9, 0x81, 0, 0, 0],
        ] {
            assert_eq!(
                parse_video(ex(0x95, b"av01", bad)).unwrap_err(),
                FlvError::InvalidAv1Descriptor
            );
        }
        // CodedFramesX is not defined for AV1.
        assert_eq!(
            parse_video(ex(0x93, b"av01", &[0x32, 0])).unwrap_err(),
            FlvError::UnsupportedPacketType(3)
        );
    }

    #[test]
    fn enhanced_rtmp_mod_ex() {
        // ModEx (7) with TimestampOffsetNano (3 bytes), then CodedFrames.
        let body = Bytes::from_static(&[
            0x97, 2, 0, 0x01, 0xf4, 0x01, b'h', b'v', b'c', b'1', 0, 0, 0, 0, 0, 0, 1, 0x26,
        ]);
        assert!(matches!(
            parse_video(body).unwrap(),
            VideoPacket::Frame {
                codec: VideoCodec::Hevc,
                keyframe: true,
                ..
            }
        ));
        // A 16-bit ModEx size (0xff escape), unknown ModEx type 3, then SequenceEnd.
        let mut v = vec![0x97, 0xff, 0x01, 0x00];
        v.extend(std::iter::repeat_n(0, 257));
        v.push(0x32);
        v.extend_from_slice(b"av01");
        assert_eq!(
            parse_video(Bytes::from(v)).unwrap(),
            VideoPacket::EndOfSequence(VideoCodec::Av1)
        );
        // TimestampOffsetNano with only 2 bytes.
        let body = Bytes::from_static(&[0x97, 1, 0, 0, 0x01, b'h', b'v', b'c', b'1']);
        assert!(matches!(
            parse_video(body).unwrap_err(),
            FlvError::InvalidModEx(_)
        ));
        // Endless ModEx chains are cut off.
        let mut v = vec![0x97];
        for _ in 0..20 {
            v.extend_from_slice(&[2, 0, 0, 0, 0x07]);
        }
        assert!(matches!(
            parse_video(Bytes::from(v)).unwrap_err(),
            FlvError::InvalidModEx(_)
        ));
    }

    #[test]
    fn enhanced_rtmp_errors() {
        let err = |b: Bytes| parse_video(b).unwrap_err();
        assert_eq!(
            err(ex(0x90, b"vp09", &[1])),
            FlvError::UnsupportedFourCc(*b"vp09")
        );
        assert_eq!(
            err(ex(0x90, b"\0\0\0\0", &[1])),
            FlvError::UnsupportedFourCc([0; 4])
        );
        assert_eq!(
            err(ex(0x96, b"hvc1", &[1])),
            FlvError::UnsupportedPacketType(6)
        );
        assert_eq!(
            err(ex(0x98, b"hvc1", &[1])),
            FlvError::UnsupportedPacketType(8)
        );
        assert_eq!(
            err(ex(0x95, b"hvc1", &[1])),
            FlvError::UnsupportedPacketType(5)
        );
        assert_eq!(err(ex(0x94, b"hvc1", &[2, 0, 1])), FlvError::ExMetadata);
        assert_eq!(err(ex(0xd1, b"hvc1", &[1])), FlvError::CommandFrame);
        assert_eq!(
            err(ex(0x81, b"hvc1", &[0, 0, 0, 1])),
            FlvError::InvalidFrameType(0)
        );
        assert_eq!(
            err(ex(0xe1, b"hvc1", &[0, 0, 0, 1])),
            FlvError::InvalidFrameType(6)
        );
        assert!(matches!(
            err(ex(0x90, b"hvc1", &[])),
            FlvError::EmptyPayload(_)
        ));
        assert!(matches!(
            err(ex(0x91, b"hvc1", &[0, 0, 0])),
            FlvError::EmptyPayload(_)
        ));
        assert!(matches!(
            err(ex(0x93, b"hvc1", &[])),
            FlvError::EmptyPayload(_)
        ));
        assert!(matches!(
            err(ex(0x91, b"av01", &[])),
            FlvError::EmptyPayload(_)
        ));
        for n in 0..5 {
            assert!(matches!(
                err(Bytes::copy_from_slice(&[0x91, b'h', b'v', b'c', b'1'][..n])),
                FlvError::Truncated { .. }
            ));
        }
        assert!(matches!(
            err(ex(0x91, b"hvc1", &[0, 0])),
            FlvError::Truncated { .. }
        ));
        // Truncated ModEx at every length.
        let full = [0x97u8, 2, 0, 1, 2, 0x01, b'h', b'v', b'c', b'1', 0, 0, 0, 1];
        for n in 1..10 {
            assert!(
                parse_video(Bytes::copy_from_slice(&full[..n])).is_err(),
                "{n}"
            );
        }
    }

    #[test]
    fn audio_packets() {
        let body = hex(AAC_SEQ);
        assert_eq!(
            parse_audio(body).unwrap(),
            AudioPacket::SequenceHeader(Bytes::from_static(&[0x12, 0x10, 0x56, 0xe5, 0x00]))
        );
        let body = Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04]);
        assert_eq!(
            parse_audio(body).unwrap(),
            AudioPacket::Raw(Bytes::from_static(&[0x21, 0x10, 0x04]))
        );
        // The rate/size/type bits do not matter for AAC.
        let body = Bytes::from_static(&[0xa0, 1, 0x21]);
        assert!(matches!(parse_audio(body).unwrap(), AudioPacket::Raw(_)));
    }

    #[test]
    fn audio_errors() {
        let err = |b: &'static [u8]| parse_audio(Bytes::from_static(b)).unwrap_err();
        assert!(matches!(err(&[]), FlvError::Truncated { got: 0, .. }));
        assert!(matches!(err(&[0xaf]), FlvError::Truncated { got: 1, .. }));
        assert_eq!(err(&[0x2f, 1, 0xff]), FlvError::UnsupportedAudioCodec(2));
        assert_eq!(err(&[0xbf, 1, 0xff]), FlvError::UnsupportedAudioCodec(11));
        assert_eq!(err(&[0xaf, 2, 0xff]), FlvError::UnknownAacPacketType(2));
        assert!(matches!(err(&[0xaf, 0]), FlvError::EmptyPayload(_)));
        assert!(matches!(err(&[0xaf, 1]), FlvError::EmptyPayload(_)));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bodies = [
            hex(AVC_SEQ_720P),
            hex(AAC_SEQ),
            Bytes::from_static(&[0x17, 1, 0, 0, 0x50, 0, 0, 0, 2, 0x65, 0x88]),
        ];
        for body in bodies {
            for n in 0..body.len() {
                let cut = body.slice(..n);
                // Either parser may accept a prefix that is itself a valid
                // (shorter) packet; the point is that nothing panics and that
                // any accepted payload is a sub-slice of the input.
                if let Ok(
                    VideoPacket::Frame { data, .. }
                    | VideoPacket::SequenceHeader { record: data, .. },
                ) = parse_video(cut.clone())
                {
                    assert!(data.len() < n);
                }
                if let Ok(AudioPacket::Raw(data) | AudioPacket::SequenceHeader(data)) =
                    parse_audio(cut.clone())
                {
                    assert!(data.len() < n);
                }
                if n < 5 && body[0] == 0x17 {
                    assert!(parse_video(cut).is_err());
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Deterministic xorshift so the test needs no extra dependencies.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in 0..64usize {
            for _ in 0..64 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state >> 24) as u8
                    })
                    .collect();
                let b = Bytes::from(v);
                let _ = parse_video(b.clone());
                let _ = parse_audio(b);
            }
        }
        for first in 0..=255u8 {
            for len in 0..8 {
                let mut v = vec![0u8; len];
                if let Some(f) = v.first_mut() {
                    *f = first;
                }
                let _ = parse_video(Bytes::from(v.clone()));
                let _ = parse_audio(Bytes::from(v));
            }
        }
    }
}
