//! Fuzz what a WHEP play request hands us (`origin::whep`): the offer check (size,
//! text, media sections, H.264 video that receives) and, for offers it passes, str0m's
//! SDP parser and answer as `Whep::play` runs them; the STUN USERNAME reader that
//! routes datagrams on the shared WHEP socket; and the AVCC → Annex B conversion the
//! fan-out applies to every access unit (with the input's first bytes as the NAL
//! length size). Must never panic.
#![no_main]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::codec::AvcConfig;
use origin::whep::{fanout, offer, stun};

fuzz_target!(|data: &[u8]| {
    if let Ok((text, summary)) = offer::check(data, 64 * 1024) {
        assert!(summary.video_h264_receives);
        if let Ok(sdp) = str0m::change::SdpOffer::from_sdp_string(text) {
            let mut rtc = str0m::RtcConfig::new()
                .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
                .set_ice_lite(true)
                .clear_codecs()
                .enable_h264(true)
                .enable_opus(true, false)
                .build(Instant::now());
            if let Ok(answer) = rtc.sdp_api().accept_offer(sdp) {
                let _ = offer::summarize(&answer.to_sdp_string());
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = offer::summarize(text);
    }
    if let Some(ufrag) = stun::local_ufrag(data) {
        assert!(!ufrag.is_empty());
    }
    let cfg = AvcConfig {
        profile: 100,
        compatibility: 0,
        level: 31,
        nal_length_size: data.first().map_or(4, |b| b % 5),
        sps: vec![Bytes::from_static(&[0x67, 0x64, 0, 31])],
        pps: vec![Bytes::from_static(&[0x68, 0xee])],
        width: 16,
        height: 16,
        raw: Bytes::new(),
    };
    let keyframe = data.get(1).is_some_and(|b| b & 1 == 1);
    if let Some(out) = fanout::annex_b(data.get(2..).unwrap_or_default(), &cfg, keyframe) {
        assert!(out.starts_with(&[0, 0, 0, 1]));
    }
});
