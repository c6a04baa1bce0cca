//! Fuzz both HLS playlist parsers with arbitrary UTF-8. They must never panic;
//! a Media Playlist that parses must survive write -> parse unchanged, and a
//! Multivariant Playlist's written form must be stable through parse -> write
//! (FRAME-RATE is rounded to three decimals on the first write).
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::hls::{check_media_playlist, MediaPlaylist, MultivariantPlaylist, PlaylistError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = MediaPlaylist::parse(text) {
        match MediaPlaylist::parse(&p.write()) {
            Ok(again) => assert_eq!(again, p),
            // The writer always adds EXT-X-MEDIA-SEQUENCE, which can push an
            // input sitting exactly at the line limit over it.
            Err(PlaylistError::TooManyLines(_)) => {}
            Err(e) => panic!("written playlist must parse: {e}"),
        }
        let _ = check_media_playlist(&p);
    }
    if let Ok(m) = MultivariantPlaylist::parse(text) {
        let once = m.write();
        let back = MultivariantPlaylist::parse(&once).expect("written playlist must parse");
        assert_eq!(back.write(), once);
    }
});
