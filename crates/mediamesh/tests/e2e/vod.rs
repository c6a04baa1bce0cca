//! End to end: an MP4 file in the media folder plays as VOD over HLS and DASH, packaged
//! on request, with the file's full duration; names outside the folder are refused.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn vod_file_plays_full_length_over_hls_and_dash() {
    require("ffmpeg");
    let media = tempfile::tempdir().expect("tempdir");
    let file = media.path().join("talk.mp4");
    let out = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100"])
            .args([
                "-t",
                "13",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac"])
            .arg(&file),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A file outside the media folder that traversal attempts aim at.
    std::fs::write(media.path().join("..").join("secret.mp4"), b"not for you").ok();

    let media_arg = media.path().display().to_string();
    let server = Server::start("origin", &["--media", &media_arg]);

    for path in ["/vod/talk/index.m3u8", "/vod/talk/index.mpd"] {
        let url = server.url(path);
        let codecs = probe_codecs(&url);
        assert!(
            codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
            "{path}: {codecs:?}"
        );
        let rec = server.dir.path().join("rec.mp4");
        let warnings = record(&url, 60, &rec);
        let d = probe_duration(&rec.display().to_string());
        assert!((12.5..=13.5).contains(&d), "{path}: {d} s ({warnings})");
    }

    let (status, text) = get_text(&server.url("/vod/talk/media.m3u8"));
    assert_eq!(status, 200);
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.contains("#EXT-X-ENDLIST"));
    let pl = media::hls::MediaPlaylist::parse(&text).expect("parses");
    let total: f64 = pl.segments.iter().map(|s| s.duration).sum();
    assert!((total - 13.0).abs() <= 0.5, "{total}");
    assert!(media::hls::check_media_playlist(&pl).is_empty());

    for bad in [
        "/vod/..%2Fsecret/index.m3u8",
        "/vod/%2E%2E/index.m3u8",
        "/vod/../secret/index.m3u8",
        "/vod/..%2F..%2Fetc%2Fpasswd/index.m3u8",
        "/vod/.hidden/index.m3u8",
        "/vod/nope/index.m3u8",
    ] {
        let (status, body) = get_text(&server.url(bad));
        assert_eq!(status, 404, "{bad}: {body}");
    }
    let objects = verified_digests(&server, "/vod/talk/digests.json");
    for name in [
        "init.mp4",
        "seg0.m4s",
        "v-seg1.m4s",
        "a-seg1.m4s",
        "a-init.mp4",
    ] {
        let (status, bytes) = get(&server.url(&format!("/vod/talk/{name}")));
        assert_eq!(status, 200, "{name}");
        assert_eq!(objects.get(name), Some(&sha256_hex(&bytes)), "{name}");
    }

    let (_, api) = get_text(&server.url("/api/v1/streams"));
    assert!(api.contains("\"talk\""), "{api}");
}
