//! Fuzz the tracker *client*: arbitrary frames into the WebTorrent message parser,
//! the SDP sanitiser, and the sans-IO signalling core (with one pending offer so
//! answers have something to match); every remote SDP the sanitiser lets through goes
//! on to str0m's SDP parser, as `rtc::link` does with relayed offers and answers.
//! Must never panic; whatever the core asks to send must be JSON.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2p::rtc::sdp::sanitize_remote;
use p2p::signal::message::parse;
use p2p::signal::{Action, SignalConfig, SignalCore};
use p2p::tracker::Id20;
use str0m::change::{SdpAnswer, SdpOffer};

/// The remote-SDP path of `rtc::link`: sanitise, then parse as offer and as answer.
fn remote_sdp(sdp: &str) {
    if let Ok((clean, _)) = sanitize_remote(sdp) {
        let _ = SdpOffer::from_sdp_string(&clean);
        let _ = SdpAnswer::from_sdp_string(&clean);
    }
}

fuzz_target!(|data: &[u8]| {
    let ih = Id20([1; 20]);
    let me = Id20([2; 20]);
    let text = String::from_utf8_lossy(data);
    let _ = parse(&text, &ih, &me);
    remote_sdp(&text);

    let now = Instant::now();
    let mut core = SignalCore::new(SignalConfig::new(ih, me), now);
    let _ = core.poll(now);
    core.connected(now);
    let _ = core.poll(now);
    let _ = core.offers_made(&[(Id20([3; 20]), "v=0".into())], now);
    for (i, frame) in std::iter::once(&text[..]).chain(text.split('\n').take(32)).enumerate() {
        let t = now + Duration::from_millis(i as u64 * 100);
        for a in core.frame(frame, t).into_iter().chain(core.poll(t)) {
            match a {
                Action::Send(s) => assert!(serde_json::from_str::<serde_json::Value>(&s).is_ok()),
                Action::AnswerOffer(r) | Action::UseAnswer(r) => {
                    remote_sdp(&r.sdp);
                    core.link_failed(&r.from);
                }
                _ => {}
            }
        }
    }
    let _ = core.stop();
});
