//! Fuzz the AVCDecoderConfigurationRecord / SPS parser and the
//! AudioSpecificConfig parser: arbitrary bytes must give `Ok` or `Err`, never a
//! panic or an overflow. Whatever parses is also muxed into an init segment.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::codec::{AacConfig, AvcConfig, TrackCodec};
use media::fmp4::{init_segment, Track};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let mut tracks = Vec::new();
    if let Ok(avc) = AvcConfig::parse(bytes.clone()) {
        let _ = avc.codec_string();
        tracks.push(Track {
            id: 1,
            timescale: 90_000,
            codec: TrackCodec::Avc(avc),
        });
    }
    // Also reach the SPS parser directly: wrap the input as the sole SPS of a
    // minimal record (with a fixed NAL header so the type check passes).
    if let Ok(len) = u16::try_from(data.len() + 1) {
        let mut rec = vec![1, 0x64, 0, 0x1f, 0xff, 0xe1];
        rec.extend_from_slice(&len.to_be_bytes());
        rec.push(0x67);
        rec.extend_from_slice(data);
        rec.extend_from_slice(&[1, 0, 1, 0x68]);
        if let Ok(avc) = AvcConfig::parse(Bytes::from(rec)) {
            tracks.push(Track {
                id: 2,
                timescale: 90_000,
                codec: TrackCodec::Avc(avc),
            });
        }
    }
    if let Ok(aac) = AacConfig::parse(bytes) {
        let _ = aac.codec_string();
        tracks.push(Track {
            id: 3,
            timescale: aac.sample_rate,
            codec: TrackCodec::Aac(aac),
        });
    }
    let _ = init_segment(&tracks);
});
