//! Fuzz the quick path's reading of a request (`service`'s `quick.rs`): the bytes a
//! client sends at a request boundary of a plain HTTP/1.1 connection. It must never
//! panic; what it answers must be one whole request with no body (the framing
//! follower ends at a boundary right after it, so hyper gets the rest from a
//! request's start), a `GET` with a plain origin-form target; and the head it
//! writes must end with the one empty line, with a `content-length` of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use service::fuzzing::{quick_request, Framing};

fuzz_target!(|data: &[u8]| {
    let Some((used, head)) = quick_request(data, b"body") else {
        return;
    };
    assert!(used > 0 && used <= data.len());
    let mut framing = Framing::default();
    framing.feed(&data[..used]);
    assert!(framing.at_boundary(), "{:?}", &data[..used]);
    assert!(data.starts_with(b"GET /"));
    assert!(head.ends_with(b"content-length: 4\r\n\r\n"));
    assert_eq!(head.windows(4).filter(|w| w == b"\r\n\r\n").count(), 1);
});
