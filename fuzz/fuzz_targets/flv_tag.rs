//! Fuzz the FLV tag-body splitters: arbitrary bytes must give `Ok` or `Err`,
//! never a panic. Accepted payloads are fed on to the codec parsers, as the
//! ingest path does.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::codec::{AacConfig, VideoConfig};
use media::flv::{parse_audio, parse_video, AudioPacket, VideoPacket};

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    if let Ok(VideoPacket::SequenceHeader { codec, record }) = parse_video(body.clone()) {
        let _ = VideoConfig::parse(codec, record);
    }
    if let Ok(AudioPacket::SequenceHeader(asc)) = parse_audio(body) {
        let _ = AacConfig::parse(asc);
    }
});
