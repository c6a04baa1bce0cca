//! Fuzz the tracker *client*: arbitrary frames into the WebTorrent message parser,
//! the SDP sanitiser, and the sans-IO signalling core (with one pending offer so
//! answers have something to match). Must never panic; whatever the core asks to
//! send must be JSON.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2p::rtc::sdp::sanitize_remote;
use p2p::signal::message::parse;
use p2p::signal::{Action, SignalConfig, SignalCore};
use p2p::tracker::Id20;

fuzz_target!(|data: &[u8]| {
    let ih = Id20([1; 20]);
    let me = Id20([2; 20]);
    let text = String::from_utf8_lossy(data);
    let _ = parse(&text, &ih, &me);
    let _ = sanitize_remote(&text);

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
                    let _ = sanitize_remote(&r.sdp);
                    core.link_failed(&r.from);
                }
                _ => {}
            }
        }
    }
    let _ = core.stop();
});
