//! Fuzz what a WHIP publish request and its media hand us (`origin::whip`): the offer
//! check (size, text, media sections, H.264 video that sends) and, for offers it
//! passes, str0m's SDP parser and answer as `Whip::publish` runs them; the bearer
//! token reader; the Annex B → AVCC conversion and `avcC` building every received
//! access unit goes through (fed twice, so parameter sets seen first apply), with
//! the record checked by the packager's own parser; and the RTP → millisecond clock
//! with timestamps from the input. Must never panic.
#![no_main]

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use media::codec::AvcConfig;
use origin::whip::{clock, h264, http, offer};

fuzz_target!(|data: &[u8]| {
    if let Ok((text, summary)) = offer::check(data, 64 * 1024) {
        assert!(summary.video_h264_sends);
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
        if let Ok(v) = axum::http::HeaderValue::from_str(text) {
            let mut h = axum::http::HeaderMap::new();
            h.insert(axum::http::header::AUTHORIZATION, v);
            if let Some(token) = http::bearer(&h) {
                assert!(!token.is_empty());
            }
        }
    }
    let mut depay = h264::Depacketized::default();
    for _ in 0..2 {
        if let Ok(au) = depay.access_unit(data) {
            assert!(!au.data.is_empty());
            if let Some(record) = au.config {
                let _ = AvcConfig::parse(Bytes::clone(&record));
            }
        }
    }
    let mut c = clock::TrackClock::new(90_000);
    let mut last = 0u64;
    for chunk in data.chunks(16) {
        let mut rtp = [0u8; 8];
        let mut at = [0u8; 8];
        for (i, b) in chunk.iter().take(8).enumerate() {
            rtp[i] = *b;
        }
        for (i, b) in chunk.iter().skip(8).take(8).enumerate() {
            at[i] = *b;
        }
        let ms = c.map(u64::from_le_bytes(rtp), u64::from_le_bytes(at) >> 20);
        assert!(ms >= last, "the clock went back");
        last = ms;
    }
});
