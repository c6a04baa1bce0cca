//! Fuzz the MP4 `moov` reader: arbitrary bytes must give `Ok` or `Err`, never a
//! panic, an overflow or an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::mp4::{parse_moov, read_box_header};

fuzz_target!(|data: &[u8]| {
    let _ = read_box_header(data);
    // As given (mostly rejected at the top-level header).
    let _ = parse_moov(data);
    // Wrapped in a valid `moov` header so the input reaches the nested parsers.
    if let Ok(size) = u32::try_from(data.len() + 8) {
        let mut moov = Vec::with_capacity(data.len() + 8);
        moov.extend_from_slice(&size.to_be_bytes());
        moov.extend_from_slice(b"moov");
        moov.extend_from_slice(data);
        let _ = parse_moov(&moov);
    }
});
