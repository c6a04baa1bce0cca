//! FLV tag *bodies* as RTMP carries them: message type 9 (video) and 8 (audio).
//!
//! This module splits a tag body into its FLV header fields and payload for the
//! only codecs mediamesh ingests, H.264/AVC and AAC. It does **not** read FLV
//! files (no file header, no tag headers, no previous-tag-size fields), does not
//! handle script-data/AMF0 messages, does not understand Enhanced RTMP
//! (`ExVideoTagHeader`, HEVC/AV1 FourCCs) and does not look inside the payload:
//! decoder configuration records are parsed by [`crate::codec`], and NAL units
//! are passed through untouched.
//!
//! All functions are pure and never panic on hostile input; they return
//! [`FlvError`] instead. Payloads are zero-copy slices of the input [`Bytes`].

use bytes::Bytes;
use thiserror::Error;

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
    /// The video `CodecID` is not 7 (AVC). For Enhanced RTMP bodies (first
    /// byte has its high bit set) the whole first byte (`>= 0x80`) is reported.
    #[error("unsupported FLV video codec id {0}")]
    UnsupportedVideoCodec(u8),
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

/// A parsed video tag body (AVC only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoPacket {
    /// AVCDecoderConfigurationRecord (AVCPacketType 0)
    SequenceHeader(Bytes),
    /// AVCPacketType 1: AVCC (length-prefixed) NAL units
    Nalus {
        /// `FrameType == 1`.
        keyframe: bool,
        /// Signed 24-bit composition time offset (PTS - DTS) in milliseconds.
        composition_time_ms: i32,
        /// The NAL units, still length-prefixed; not validated here.
        data: Bytes,
    },
    /// AVCPacketType 2
    EndOfSequence,
}

/// A parsed audio tag body (AAC only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioPacket {
    /// AudioSpecificConfig (AACPacketType 0)
    SequenceHeader(Bytes),
    /// raw AAC frame (AACPacketType 1)
    Raw(Bytes),
}

/// Splits an FLV video tag body (RTMP message type 9).
///
/// Errors: empty or short bodies ([`FlvError::Truncated`]), Enhanced RTMP or
/// non-AVC codecs ([`FlvError::UnsupportedVideoCodec`]), info/command frames
/// ([`FlvError::CommandFrame`], safe to ignore), undefined frame or packet
/// types, and sequence headers / NAL packets with an empty payload
/// ([`FlvError::EmptyPayload`]).
pub fn parse_video(body: Bytes) -> Result<VideoPacket, FlvError> {
    let first = *body.first().ok_or(FlvError::Truncated {
        what: "video tag header",
        need: 1,
        got: 0,
    })?;
    if first & 0x80 != 0 {
        // Enhanced RTMP: IsExHeader bit set, a FourCC follows instead of CodecID.
        return Err(FlvError::UnsupportedVideoCodec(first));
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
            Ok(VideoPacket::SequenceHeader(payload))
        }
        1 => {
            if payload.is_empty() {
                return Err(FlvError::EmptyPayload("AVC NALU"));
            }
            Ok(VideoPacket::Nalus {
                keyframe: frame_type == FRAME_TYPE_KEY,
                composition_time_ms: si24(cts),
                data: payload,
            })
        }
        2 => Ok(VideoPacket::EndOfSequence),
        other => Err(FlvError::UnknownAvcPacketType(other)),
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
            VideoPacket::SequenceHeader(rec) => {
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
            VideoPacket::Nalus {
                keyframe: true,
                composition_time_ms: 80,
                data: Bytes::from_static(&[0, 0, 0, 2, 0x65, 0x88]),
            }
        );
        let body = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]);
        assert_eq!(
            parse_video(body).unwrap(),
            VideoPacket::Nalus {
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
                VideoPacket::Nalus {
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
                VideoPacket::Nalus {
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
        assert_eq!(parse_video(body).unwrap(), VideoPacket::EndOfSequence);
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
        assert_eq!(
            err(&[0x90, b'h', b'v', b'c', b'1']),
            FlvError::UnsupportedVideoCodec(0x90)
        );
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
                if let Ok(VideoPacket::Nalus { data, .. } | VideoPacket::SequenceHeader(data)) =
                    parse_video(cut.clone())
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
