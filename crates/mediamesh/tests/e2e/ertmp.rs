//! End to end, Enhanced RTMP (issue 14, item 4): H.265 and AV1 published the way OBS
//! 30+ sends them (E-RTMP FourCC video tags) are packaged into CMAF as `hvc1`/`av01`
//! and named by their codec strings in the multivariant playlist and the MPD.
//!
//! The publisher is `common::ertmp`, a client of ours over a real encoder's output
//! (ffmpeg with libx265 / SVT-AV1 writes an MP4; the client sends its samples as
//! E-RTMP tags), because ffmpeg 5.1 cannot send E-RTMP. The players are real ones:
//! ffprobe and ffmpeg read and decode the LL-HLS stream; hls.js in headless Chromium
//! plays it. Chromium here decodes AV1 in software but H.265 only with a hardware
//! decoder (Chromium 156 on Linux without a GPU answers
//! `MediaSource.isTypeSupported('video/mp4; codecs="hvc1…"')` with false), so the
//! browser scenario must play AV1 and plays H.265 only where the browser says it can;
//! H.265 is checked by ffprobe and a full ffmpeg decode instead. Every wait is
//! bounded; nothing asserts on timing.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::ertmp::{self, Clip, Codec};
use crate::common::*;

/// The clip's configuration record, parsed as the origin parses it: the codec string
/// the manifests must carry.
fn expected_codec(codec: Codec, path: &std::path::Path) -> String {
    let file = std::fs::read(path).expect("clip");
    let mut pos = 0usize;
    while pos < file.len() {
        let h = media::mp4::read_box_header(&file[pos..])
            .expect("box")
            .expect("header");
        let size = h.size.map_or(file.len() - pos, |s| s as usize);
        if &h.kind == b"moov" {
            let moov = media::mp4::parse_moov(&file[pos..pos + size]).expect("moov");
            for t in moov.tracks {
                match (codec, t.entry) {
                    (Codec::Hevc, media::mp4::SampleEntry::Hevc { hvcc, .. }) => {
                        return media::codec::HevcConfig::parse(hvcc)
                            .expect("hvcC")
                            .codec_string()
                    }
                    (Codec::Av1, media::mp4::SampleEntry::Av1 { av1c, .. }) => {
                        return media::codec::Av1Config::parse(av1c)
                            .expect("av1C")
                            .codec_string()
                    }
                    _ => {}
                }
            }
        }
        pos += size.max(8);
    }
    panic!("no {codec:?} track in {}", path.display());
}

/// Waits until the stream's media playlist lists `n` segments; returns it.
fn wait_for_segments(server: &Server, stream: &str, n: usize, limit: Duration) -> String {
    let url = server.url(&format!("/live/{stream}/src/index.m3u8"));
    let until = Instant::now() + limit;
    loop {
        let (status, text) = get_text(&url);
        if status == 200 {
            if let Ok(pl) = media::hls::MediaPlaylist::parse(&text) {
                if pl.segments.len() >= n {
                    return text;
                }
            }
        }
        assert!(
            Instant::now() < until,
            "{stream}: fewer than {n} segments within {limit:?} (last answer {status}: {text})\nserver log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The CODECS and RESOLUTION of the multivariant playlist's first variant.
pub(crate) fn variant_attrs(text: &str) -> (String, String) {
    let line = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .unwrap_or_else(|| panic!("no variant in {text}"));
    let attr = |name: &str| {
        let at = line
            .find(&format!("{name}="))
            .unwrap_or_else(|| panic!("no {name} in {line}"));
        let rest = &line[at + name.len() + 1..];
        if let Some(quoted) = rest.strip_prefix('"') {
            quoted.split('"').next().unwrap_or_default().to_owned()
        } else {
            rest.split(',').next().unwrap_or_default().to_owned()
        }
    };
    (attr("CODECS"), attr("RESOLUTION"))
}

/// `ffprobe` on `url`: `codec_name|codec_tag_string|width|height` per stream.
pub(crate) fn probe_streams(url: &str) -> Vec<String> {
    require("ffprobe");
    let out = run(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,codec_tag_string,width,height",
            "-of",
            "compact=p=0:nk=1",
            url,
        ]),
        Duration::from_secs(60),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn an_enhanced_rtmp_hevc_publish_is_packaged_as_hvc1_for_ll_hls_and_dash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip_path = dir.path().join("hevc.mp4");
    ertmp::encode_clip(Codec::Hevc, "640x360", 4, &clip_path);
    let codec = expected_codec(Codec::Hevc, &clip_path);
    assert!(codec.starts_with("hvc1.1.6.L"), "{codec}");

    // The clip's folder doubles as the VOD media folder: the MP4 plays as VOD too.
    let media = dir.path().display().to_string();
    let server = Server::start("serve", &["--media", &media]);
    let publish = ertmp::publish(server.rtmp, "cam", Clip::load(Codec::Hevc, &clip_path), 60);
    // The connect reply announced E-RTMP support.
    let reply = String::from_utf8_lossy(&publish.connect_reply).into_owned();
    assert!(
        reply.contains("fourCcList") && reply.contains("hvc1"),
        "{reply:?}"
    );
    assert!(reply.contains("videoFourCcInfoMap"), "{reply:?}");

    let media_playlist = wait_for_segments(&server, "cam", 3, Duration::from_secs(40));
    assert!(media_playlist.contains("#EXT-X-PART:"), "LL-HLS parts");

    // The multivariant playlist names the codec from the hvcC.
    let (status, multivariant) = get_text(&server.url("/live/cam/index.m3u8"));
    assert_eq!(status, 200);
    let (codecs, resolution) = variant_attrs(&multivariant);
    assert!(codecs.starts_with("hvc1."), "{multivariant}");
    assert_eq!(codecs, format!("{codec},mp4a.40.2"), "{multivariant}");
    assert_eq!(resolution, "640x360");

    // So does the MPD, on its video representation.
    let (status, mpd) = get_text(&server.url("/live/cam/index.mpd"));
    assert_eq!(status, 200);
    assert!(mpd.contains(&format!("codecs=\"{codec}\"")), "{mpd}");

    // The stream list too.
    let (_, list) = get_text(&server.url("/api/v1/streams"));
    assert!(list.contains(&codec), "{list}");

    // The init segment has an hvc1 sample entry with the publisher's hvcC.
    let (status, init) = get(&server.url("/live/cam/src/init.mp4"));
    assert_eq!(status, 200);
    assert!(init.windows(4).any(|w| w == b"hvc1") && init.windows(4).any(|w| w == b"hvcC"));

    // ffprobe reads the LL-HLS stream as HEVC tagged hvc1, 640x360, with AAC.
    let url = server.url("/live/cam/index.m3u8");
    let streams = probe_streams(&url);
    assert!(
        streams.iter().any(|s| s == "hevc|hvc1|640|360"),
        "ffprobe saw {streams:?}"
    );
    assert!(streams.iter().any(|s| s.starts_with("aac|")), "{streams:?}");

    // And ffmpeg decodes three seconds of it without a decoding error.
    let out = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i", &url])
            .args(["-map", "0:v", "-t", "3", "-f", "null", "-"]),
        Duration::from_secs(60),
    );
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "{errors}");

    // The DASH video track (split per track) is HEVC as well.
    let streams = probe_streams(&server.url("/live/cam/index.mpd"));
    assert!(
        streams.iter().any(|s| s.starts_with("hevc|hvc1|640|360")),
        "ffprobe (DASH) saw {streams:?}"
    );

    // The encoder's MP4 itself, as VOD: hvc1 with the same codec string.
    let (status, vod) = get_text(&server.url("/vod/hevc/index.m3u8"));
    assert_eq!(status, 200, "{vod}");
    assert!(vod.contains(&codec), "{vod}");
    let streams = probe_streams(&server.url("/vod/hevc/index.m3u8"));
    assert!(
        streams.iter().any(|s| s == "hevc|hvc1|640|360"),
        "ffprobe (VOD) saw {streams:?}"
    );

    let log = server.log_text();
    assert!(!log.contains("bad video configuration"), "{log}");
    drop(publish);
}

#[test]
fn an_enhanced_rtmp_av1_publish_is_packaged_as_av01() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip_path = dir.path().join("av1.mp4");
    ertmp::encode_clip(Codec::Av1, "640x360", 4, &clip_path);
    let codec = expected_codec(Codec::Av1, &clip_path);
    assert!(
        codec.starts_with("av01.0.") && codec.ends_with("M.08"),
        "{codec}"
    );

    let server = Server::start("serve", &[]);
    let _publish = ertmp::publish(server.rtmp, "cam", Clip::load(Codec::Av1, &clip_path), 60);
    wait_for_segments(&server, "cam", 3, Duration::from_secs(40));
    let (_, multivariant) = get_text(&server.url("/live/cam/index.m3u8"));
    let (codecs, resolution) = variant_attrs(&multivariant);
    assert_eq!(codecs, format!("{codec},mp4a.40.2"), "{multivariant}");
    assert_eq!(resolution, "640x360");
    let (_, mpd) = get_text(&server.url("/live/cam/index.mpd"));
    assert!(mpd.contains(&format!("codecs=\"{codec}\"")), "{mpd}");

    let url = server.url("/live/cam/index.m3u8");
    let streams = probe_streams(&url);
    assert!(
        streams.iter().any(|s| s.starts_with("av1|av01|640|360")),
        "ffprobe saw {streams:?}"
    );
    let out = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i", &url])
            .args(["-map", "0:v", "-t", "3", "-f", "null", "-"]),
        Duration::from_secs(60),
    );
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "{errors}");
}

#[test]
fn hostile_enhanced_rtmp_tags_are_skipped_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip_path = dir.path().join("hevc.mp4");
    ertmp::encode_clip(Codec::Hevc, "320x240", 4, &clip_path);
    let codec = expected_codec(Codec::Hevc, &clip_path);

    let server = Server::start("serve", &[]);
    // A well-behaved publish beside the hostile one must not notice it.
    let _good = ertmp::publish(server.rtmp, "good", Clip::load(Codec::Hevc, &clip_path), 60);
    let _bad = ertmp::publish(
        server.rtmp,
        "bad",
        Clip::load(Codec::Hevc, &clip_path).with_hostile_tags(),
        60,
    );
    for stream in ["good", "bad"] {
        wait_for_segments(&server, stream, 4, Duration::from_secs(40));
        let (_, multivariant) = get_text(&server.url(&format!("/live/{stream}/index.m3u8")));
        let (codecs, _) = variant_attrs(&multivariant);
        assert_eq!(
            codecs,
            format!("{codec},mp4a.40.2"),
            "{stream}: {multivariant}"
        );
        let out = run(
            Command::new("ffmpeg")
                .args(["-hide_banner", "-v", "error", "-i"])
                .arg(server.url(&format!("/live/{stream}/index.m3u8")))
                .args(["-map", "0:v", "-t", "3", "-f", "null", "-"]),
            Duration::from_secs(60),
        );
        let errors = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && errors.trim().is_empty(),
            "{stream}: {errors}"
        );
    }
    // The skipped tags were counted, and the truncated SequenceStart was logged.
    let (_, metrics) = get_text(&server.url("/metrics"));
    let rejected: f64 = metrics
        .lines()
        .find(|l| l.starts_with("mediamesh_ingest_rejected_frames_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(rejected >= 5.0, "rejected frames: {rejected}\n{metrics}");
    let log = server.log_text();
    assert!(log.contains("bad video configuration"), "{log}");
    assert!(!log.contains("publisher dropped"), "{log}");
}

/// Plays `stream` with the player page (hls.js, low-latency) in Chromium after
/// asking whether Chromium decodes `codecs`. `Some(true)`: played; `Some(false)`:
/// the browser cannot decode them; panics if it can and playback fails.
fn play_in_chromium(
    web: &std::path::Path,
    server: &Server,
    stream: &str,
    codecs: &str,
) -> Option<bool> {
    let out = run(
        Command::new("node")
            .arg(web.join("tests/play.mjs"))
            .arg(server.url(&format!("/?stream={stream}")))
            .arg("45")
            .arg(codecs),
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stream}: {stdout}");
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "no JSON from play.mjs: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if seen["supported"] == false {
        return Some(false);
    }
    assert_eq!(seen["ok"], true, "{stream} did not play: {stdout}");
    Some(true)
}

#[test]
fn enhanced_rtmp_av1_plays_in_chromium_and_hevc_where_it_decodes() {
    let _turn = browser_turn();
    let web = browser_ready();
    let dir = tempfile::tempdir().expect("tempdir");
    let av1_path = dir.path().join("av1.mp4");
    let hevc_path = dir.path().join("hevc.mp4");
    ertmp::encode_clip(Codec::Av1, "640x360", 4, &av1_path);
    ertmp::encode_clip(Codec::Hevc, "640x360", 4, &hevc_path);

    let server = Server::start("serve", &[]);
    let _av1 = ertmp::publish(server.rtmp, "av1", Clip::load(Codec::Av1, &av1_path), 120);
    let _hevc = ertmp::publish(
        server.rtmp,
        "hevc",
        Clip::load(Codec::Hevc, &hevc_path),
        120,
    );
    wait_for_segments(&server, "av1", 3, Duration::from_secs(40));
    wait_for_segments(&server, "hevc", 3, Duration::from_secs(40));

    let (_, av1_list) = get_text(&server.url("/live/av1/index.m3u8"));
    let (av1_codecs, _) = variant_attrs(&av1_list);
    assert!(av1_codecs.starts_with("av01."), "{av1_list}");
    assert_eq!(
        play_in_chromium(&web, &server, "av1", &av1_codecs),
        Some(true),
        "Chromium decodes AV1 in software: it must play"
    );

    let (_, hevc_list) = get_text(&server.url("/live/hevc/index.m3u8"));
    let (hevc_codecs, _) = variant_attrs(&hevc_list);
    assert!(hevc_codecs.starts_with("hvc1."), "{hevc_list}");
    match play_in_chromium(&web, &server, "hevc", &hevc_codecs) {
        Some(true) => eprintln!("HEVC played in Chromium (a hardware decoder is present)"),
        _ => eprintln!(
            "Chromium cannot decode {hevc_codecs} here (no hardware HEVC decoder); \
             the HEVC stream is checked with ffprobe/ffmpeg in \
             an_enhanced_rtmp_hevc_publish_is_packaged_as_hvc1_for_ll_hls_and_dash"
        ),
    }
}
