//! Fuzz the request-framing follower of parked HTTP/1.1 connections
//! (`service::park::Framing`): the bytes a client sends, cut into input-chosen reads.
//! It must never panic, and where the request stream ends a request must not depend
//! on how the bytes were cut into reads: a connection is parked (hyper told
//! "end of stream") only at a boundary, so a split head or body that looked like a
//! boundary would cut a request in half.
#![no_main]

use libfuzzer_sys::fuzz_target;
use service::fuzzing::Framing;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, data)) = data.split_first() else {
        return;
    };
    let mut whole = Framing::default();
    whole.feed(data);
    // Reads of 1 + (cuts-derived) bytes, varying along the input.
    let mut split = Framing::default();
    let mut rest = data;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = (1 + usize::from(cuts.rotate_left(i as u32 % 8) % 17)).min(rest.len());
        let (read, tail) = rest.split_at(n);
        split.feed(read);
        rest = tail;
        i += 1;
    }
    assert_eq!(whole.at_boundary(), split.at_boundary(), "{data:?}");
});
