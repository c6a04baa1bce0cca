//! Fuzz the Enhanced RTMP path of the ingest: an E-RTMP video tag body (the
//! `IsExHeader` bit forced on, and the FourCC steered to `hvc1`/`av01`/`avc1` by
//! the input so the packet parsers are reached) through `media::flv::parse_video`;
//! a SequenceStart's record through `VideoConfig::parse` (HEVC/AV1 configuration
//! records, the HEVC SPS and AV1 sequence header readers) and, when it parses, into
//! the CMAF init segment writer; a coded AV1 frame through
//! `codec::av1::sample_obus`, whose output must be a well-framed part of the input.
//! Nothing may panic, and the writer must hold the record verbatim.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::codec::{av1, VideoCodec, VideoConfig};
use media::flv::{parse_video, VideoPacket};
use media::fmp4::{init_segment, Track};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut body = Vec::with_capacity(rest.len() + 5);
    // First byte: IsExHeader | frame type | packet type from the input.
    body.push(0x80 | (selector & 0x7f));
    if selector & 0x80 != 0 {
        // Steer to a known FourCC (unless the packet is a ModEx prefix, where the
        // FourCC comes later and the input decides all of it).
        let fourcc: &[u8; 4] = match rest.first().map(|b| b % 3) {
            Some(0) => b"hvc1",
            Some(1) => b"av01",
            _ => b"avc1",
        };
        body.extend_from_slice(fourcc);
        body.extend_from_slice(rest.get(1..).unwrap_or_default());
    } else {
        body.extend_from_slice(rest);
    }
    let body = Bytes::from(body);
    match parse_video(body.clone()) {
        Ok(VideoPacket::SequenceHeader { codec, record }) => {
            if let Ok(cfg) = VideoConfig::parse(codec, record.clone()) {
                assert_eq!(cfg.codec(), codec);
                assert_eq!(cfg.raw(), &record);
                let _ = cfg.codec_string();
                let init = init_segment(&[Track {
                    id: 1,
                    timescale: 90_000,
                    codec: cfg.into_track_codec(),
                }]);
                assert!(init.windows(record.len()).any(|w| w == &record[..]));
            }
        }
        Ok(VideoPacket::Av1DescriptorConfig(record)) => {
            let _ = VideoConfig::parse(VideoCodec::Av1, record);
        }
        Ok(VideoPacket::Frame {
            codec: VideoCodec::Av1,
            data,
            ..
        }) => {
            if let Ok(obus) = av1::sample_obus(data.clone()) {
                assert!(!obus.is_empty() && obus.len() <= data.len());
                // What is kept is itself well framed and has nothing left to drop.
                assert_eq!(av1::sample_obus(obus.clone()).ok(), Some(obus));
            }
        }
        Ok(VideoPacket::Frame { data, .. }) => assert!(data.len() < body.len()),
        _ => {}
    }
});
