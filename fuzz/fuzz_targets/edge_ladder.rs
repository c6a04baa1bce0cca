//! Fuzz the edge ABR ladder's readers of network input: the multivariant rewrite and
//! the rung playlist derivation (origin playlists), the rung path classifier (client
//! paths) and the fMP4 readers (origin init segments, ffmpeg output). None may panic;
//! a derived rung playlist must parse back with no LL-HLS part left in it.
#![no_main]

use bytes::Bytes;
use edge::media::ladder::{self, Ladder, Rung};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rungs: Vec<Rung> = ["240p=426x240@300", "720p=1280x720@3000"]
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect();
    let Ok(l) = Ladder::new(rungs, "src") else {
        return;
    };
    let _ = ladder::video_size(data);
    let _ = ladder::avc_config(data);
    let _ = ladder::split_output(&Bytes::copy_from_slice(data));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = l.rung_path(text);
    let _ = l.multivariant_path(text);
    let _ = text.parse::<Rung>();
    if let Ok(Some(out)) = l.rewrite_multivariant(text) {
        let _ = media::hls::MultivariantPlaylist::parse(&out);
    }
    if let Ok(out) = l.rung_playlist(text) {
        if let Ok(pl) = media::hls::MediaPlaylist::parse(&out) {
            assert!(pl.segments.iter().all(|s| s.parts.is_empty()));
            assert!(pl.trailing_parts.is_empty() && pl.preload_hints.is_empty());
        }
    }
});
