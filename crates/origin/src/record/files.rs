//! The files of a recording's folder, by name (the same names under its S3 prefix):
//! `recording.json`, the segment index, the init segments, the media segments, the
//! VOD manifests written for an upload and the upload state. Recording, uploading and
//! serving a recording all name its files through these.
//!
//! Not here: what the files hold (`recording.rs`, `upload.rs`), the order they are
//! uploaded in (`upload.rs`).

/// What a recording is: written when it starts and again when it finishes.
pub const META_FILE: &str = "recording.json";
/// One JSON line per segment, appended as each is written.
pub const INDEX_FILE: &str = "segments.jsonl";
/// The muxed init segment (HLS `EXT-X-MAP`).
pub const INIT_FILE: &str = "init.mp4";
/// Per-track init segments (DASH representations).
pub const VIDEO_INIT_FILE: &str = "v-init.mp4";
pub const AUDIO_INIT_FILE: &str = "a-init.mp4";

/// File name of media segment `index`.
pub fn segment_file(index: usize) -> String {
    format!("seg{index}.m4s")
}

/// `n` of `seg{n}.m4s` (digits only, no leading zero but `0`).
pub fn segment_index(file: &str) -> Option<u64> {
    let digits = file.strip_prefix("seg")?.strip_suffix(".m4s")?;
    if digits.is_empty()
        || digits.len() > 9
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

/// The manifests written beside the media when an upload is planned.
pub const MULTIVARIANT_FILE: &str = "index.m3u8";
pub const MEDIA_PLAYLIST_FILE: &str = "media.m3u8";
pub const MPD_FILE: &str = "index.mpd";

/// The upload state of a recording, beside its files.
pub const STATE_FILE: &str = "upload.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_numbers_are_read_back_from_plain_names_only() {
        assert_eq!(segment_index("seg12.m4s"), Some(12));
        for bad in [
            "seg.m4s",
            "seg01.m4s",
            "seg-1.m4s",
            "seg1.m4s/..",
            "segx.m4s",
        ] {
            assert_eq!(segment_index(bad), None, "{bad}");
        }
    }
}
