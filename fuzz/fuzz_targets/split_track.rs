//! Fuzz the CMAF track splitter: arbitrary bytes must give `Ok` or `Err`, never
//! a panic, an overflow or an output larger than linear in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::split::split_track;

fuzz_target!(|data: &[u8]| {
    for track in [1, 2] {
        if let Ok(out) = split_track(data, track) {
            // Each rewritten trun grows by at most 4 bytes (an explicit
            // data_offset); everything else only shrinks.
            assert!(out.len() <= data.len() + data.len() / 4 + 16);
        }
    }
});
