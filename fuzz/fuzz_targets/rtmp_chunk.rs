//! Fuzz the RTMP server session after a valid handshake: arbitrary chunk
//! stream bytes, fed in pieces whose sizes come from the input, with every
//! publish request accepted so the media and metadata paths are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp::{ServerConfig, ServerEvent, ServerSession};

fuzz_target!(|data: &[u8]| {
    let mut session = ServerSession::new(ServerConfig::default());
    let mut hello = vec![3u8];
    hello.extend_from_slice(&[0u8; 2 * 1536]); // C0 + C1 + C2
    if session.handle_input(&hello).is_err() {
        return;
    }
    let _ = session.take_output();

    // First byte picks the write size (1..=256) to exercise partial parsing.
    let (step, body) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s) + 1, rest),
        None => return,
    };
    for piece in body.chunks(step) {
        if session.handle_input(piece).is_err() {
            break;
        }
        while let Some(event) = session.poll_event() {
            if let ServerEvent::PublishRequest { stream_id, .. } = event {
                session.accept_publish(stream_id);
            }
        }
        let _ = session.take_output();
    }
});
