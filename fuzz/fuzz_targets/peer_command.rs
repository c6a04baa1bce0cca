//! Fuzz the p2p-media-loader peer wire protocol: arbitrary data-channel messages
//! into the command decoder and into a session that also makes and answers
//! requests. Must never panic, never hold more than the limits allow, and every
//! decoded command must survive encode → decode.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use p2p::proto::{
    CommandDecoder, CommandLimits, Incoming, PeerCommand, Session, SessionEvent, SessionLimits,
};

const LIMITS: SessionLimits = SessionLimits {
    max_message_size: 1024,
    max_command_size: 16 * 1024,
    max_announced: 2_000,
    max_segment_bytes: 64 * 1024,
};

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

/// encode → decode gives the same command (announcement ids as a multiset: the
/// encoder regroups them).
fn check_round_trip(c: &PeerCommand) {
    let messages = c
        .encode(LIMITS.max_message_size)
        .expect("a decoded command encodes");
    let mut d = CommandDecoder::new(
        1 << 20,
        CommandLimits {
            max_announced: 1 << 20,
            max_announced_parts: 1 << 20,
        },
    );
    let mut back = None;
    for m in &messages {
        assert!(m.len() <= LIMITS.max_message_size);
        if let Incoming::Command(c) = d.push(m).expect("our encoding decodes") {
            back = Some(c);
        }
    }
    match (c, back.expect("complete")) {
        (
            PeerCommand::SegmentsAnnouncement {
                loaded,
                http_loading,
                extensions,
            },
            PeerCommand::SegmentsAnnouncement {
                loaded: l2,
                http_loading: p2,
                extensions: x2,
            },
        ) => {
            assert_eq!(sorted(loaded.clone()), sorted(l2));
            assert_eq!(sorted(http_loading.clone()), sorted(p2));
            assert_eq!(*extensions, x2);
        }
        (a, b) => {
            // `b: Some(0)` is written as no `b` at all, like the JS.
            let norm = |c: PeerCommand| match c {
                PeerCommand::SegmentRequest {
                    segment,
                    request_id,
                    byte_from,
                } => PeerCommand::SegmentRequest {
                    segment,
                    request_id,
                    byte_from: byte_from.filter(|b| *b != 0),
                },
                c => c,
            };
            assert_eq!(norm(a.clone()), norm(b));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // Messages: 2-byte big-endian length, then that many bytes. The top bits of the
    // length word pick a local action before the message, and bit 0x4000 wraps the
    // message in `cstr`…`cend` (a whole command), so the fuzzer reaches the command
    // parser without having to find the framing first.
    let mut decoder = CommandDecoder::new(
        LIMITS.max_command_size,
        CommandLimits {
            max_announced: LIMITS.max_announced,
            ..CommandLimits::default()
        },
    );
    let Ok(mut session) = Session::new(LIMITS) else {
        return;
    };
    let mut alive = true;
    let mut rest = data;
    while rest.len() >= 2 && alive {
        let word = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(word & 0x0fff).min(rest.len() - 2);
        let raw = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let framed;
        let message = if word & 0x4000 != 0 {
            framed = [b"cstr".as_slice(), raw, b"cend".as_slice()].concat();
            &framed[..]
        } else {
            raw
        };
        match word >> 12 {
            1 => {
                let _ = session.request_segment(i64::from(word & 0xff), u64::from(word & 0x3));
            }
            2 => {
                let _ = session.cancel_request();
            }
            _ => {}
        }

        if let Ok(Incoming::Command(c)) = decoder.push(message) {
            check_round_trip(&c);
        }

        match session.handle_message(message) {
            Err(_) => alive = false,
            Ok(Some(SessionEvent::SegmentRequested { request_id, .. })) => {
                if word & 0x8000 != 0 {
                    let _ = session.segment_absent(request_id);
                } else {
                    let _ = session.send_segment(request_id, Bytes::from(message.to_vec()));
                    let mut n = 0;
                    while let Some(m) = session.next_upload_message() {
                        assert!(m.len() <= LIMITS.max_message_size);
                        n += 1;
                        assert!(n <= 3 + message.len());
                    }
                }
            }
            Ok(Some(SessionEvent::SegmentReceived { bytes, .. })) => {
                assert!(bytes.len() as u64 <= LIMITS.max_segment_bytes);
            }
            Ok(_) => {}
        }
    }
});
