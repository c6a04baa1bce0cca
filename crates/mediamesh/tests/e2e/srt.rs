//! End to end, real processes: ffmpeg (libsrt) and Debian's `srt-live-transmit`
//! publish MPEG-TS over SRT to `mediamesh serve`/`origin --srt`, and ffprobe, ffmpeg
//! and `mediamesh peer` play the result over HLS, DASH and P2P. Encryption
//! (passphrase, key lengths), publish keys, refusals that leave another live publish
//! alone, and a flood of bogus handshake datagrams during a live publish.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const PASS: &str = "correct horse battery";

/// The SRT port from the role's `listening … srt=ADDR` line.
pub(crate) fn srt_port(server: &Server) -> u16 {
    let log = server.log_text();
    log.lines()
        .find(|l| l.contains(" listening role="))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("srt="))
                .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        })
        .map(|a| a.port())
        .unwrap_or_else(|| panic!("no srt= in the listening line:\n{log}"))
}

/// An srt:// URL of the server with `streamid` and extra options, for ffmpeg.
pub(crate) fn srt_url(server: &Server, streamid: &str, options: &str) -> String {
    let mut url = format!("srt://127.0.0.1:{}?streamid={streamid}", srt_port(server));
    if !options.is_empty() {
        url.push('&');
        url.push_str(options);
    }
    url
}

/// ffmpeg publishing a synthetic picture and a tone as MPEG-TS over SRT for `secs`.
pub(crate) fn publish_srt(url: &str, secs: u32) -> Proc {
    publish_as(url, secs, "640x360", "mpegts")
}

/// Runs an ffmpeg SRT publish that the server is expected to refuse: it must exit
/// with an error (bounded wait).
fn refused(url: &str) {
    let mut p = publish_srt(url, 20);
    let exit = p.wait_exit(Duration::from_secs(30));
    assert_eq!(exit, Some(false), "publish to {url} was not refused");
}

/// The newest complete media sequence number of a stream's media playlist.
fn last_msn(server: &Server, stream: &str) -> u64 {
    let (status, text) = get_text(&server.url(&format!("/live/{stream}/src/index.m3u8")));
    assert_eq!(status, 200, "{stream}: {text}");
    let pl = media::hls::MediaPlaylist::parse(&text).expect("playlist parses");
    pl.media_sequence + pl.skipped_segments + pl.segments.len() as u64
}

/// Waits (bounded) until `stream`'s playlist lists `more` segments beyond `from`.
fn wait_for_segments(server: &Server, stream: &str, from: u64, more: u64) {
    let until = Instant::now() + Duration::from_secs(30);
    while last_msn(server, stream) < from + more {
        assert!(
            Instant::now() < until,
            "{stream} stopped growing:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn assert_plays_h264_and_aac(url: &str) {
    let codecs = probe_codecs(url);
    assert!(
        codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
        "{url}: {codecs:?}"
    );
}

#[test]
fn ffmpeg_publishes_over_srt_and_it_plays_as_hls_dash_and_p2p_through_the_edge() {
    require("ffmpeg");
    // `serve`: viewers meet the edge, which fetches from the origin that SRT feeds.
    let server = Server::start("serve", &["--srt", "127.0.0.1:0"]);
    let _publisher = publish_srt(&srt_url(&server, "#!::r=live/cam,m=publish", ""), 90);
    let master = wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    assert!(master.contains("CODECS=\"avc1."), "{master}");
    assert!(master.contains("mp4a.40.2"), "{master}");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert_plays_h264_and_aac(&server.url("/live/cam/index.m3u8"));
    assert_plays_h264_and_aac(&server.url("/live/cam/index.mpd"));

    // ffmpeg records 5 s cleanly through the edge.
    let out = server.dir.path().join("rec.mp4");
    let warnings = record(&server.url("/live/cam/index.m3u8"), 5, &out);
    let d = probe_duration(&out.display().to_string());
    assert!((4.5..=5.6).contains(&d), "recorded {d} s: {warnings}");
    assert!(
        !warnings.contains("Non-monotonous") && !warnings.contains("out of order"),
        "ffmpeg warned: {}",
        warnings.chars().take(2000).collect::<String>()
    );

    // The LL-HLS playlist obeys the rules, as for RTMP.
    let (_, text) = get_text(&server.url("/live/cam/src/index.m3u8"));
    let pl = media::hls::MediaPlaylist::parse(&text).expect("playlist parses");
    let violations = media::hls::check_media_playlist(&pl);
    assert!(violations.is_empty(), "{violations:#?}\n{text}");
    assert!(!pl.preload_hints.is_empty(), "{text}");

    // Native peers play it and share segments over WebRTC, verified against the
    // origin's signed digests.
    let stats = server.dir.path().join("peers.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediamesh"));
    cmd.arg("peer")
        .arg(server.url("/live/cam/index.m3u8"))
        .args(["--count", "3", "--duration", "20"])
        .args(["--stats", &stats.display().to_string()]);
    let o = run(&mut cmd, Duration::from_secs(90));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats")).expect("json");
    let total = &v["total"];
    assert_eq!(total["errors"], 0, "{v}");
    assert_eq!(total["rejected_segments"], 0, "{v}");
    assert!(total["p2p_bytes"].as_u64().unwrap_or(0) > 0, "{v}");

    let (_, metrics) = get_text(&server.url("/metrics"));
    assert!(
        metrics.contains("mediamesh_srt_connections_total"),
        "{metrics}"
    );
    let log = server.log_text();
    assert!(log.contains("srt publish started"), "{log}");
}

#[test]
fn encrypted_srt_publishes_play_and_wrong_passphrases_and_keys_are_refused_without_disturbing_them()
{
    require("ffmpeg");
    let server = Server::start(
        "origin",
        &[
            "--srt",
            "127.0.0.1:0",
            "--srt-passphrase",
            PASS,
            "--publish-key",
            "cam=k1",
        ],
    );
    let pass = format!("passphrase={PASS}");
    // Key in the plain stream id, the libsrt default key length (AES-128).
    let _cam = publish_srt(&srt_url(&server, "live/cam?key=k1", &pass), 120);
    // The access-control form, AES-256.
    let _other = publish_srt(
        &srt_url(
            &server,
            "#!::r=live/other,m=publish",
            &format!("{pass}&pbkeylen=32"),
        ),
        120,
    );
    for stream in ["cam", "other"] {
        wait_for_200(
            &server.url(&format!("/live/{stream}/index.m3u8")),
            Duration::from_secs(20),
        );
        assert_plays_h264_and_aac(&server.url(&format!("/live/{stream}/index.m3u8")));
    }
    let before = last_msn(&server, "cam");

    // Refused: wrong passphrase, none, wrong key, no key, the live name again (right
    // key), and a playback request.
    refused(&srt_url(&server, "live/x1", "passphrase=not the right one"));
    refused(&srt_url(&server, "live/x2", ""));
    refused(&srt_url(&server, "live/cam?key=nope", &pass));
    refused(&srt_url(&server, "#!::r=live/cam,m=publish", &pass));
    refused(&srt_url(&server, "live/cam?key=k1", &pass));
    refused(&srt_url(&server, "#!::r=live/x3,m=request", &pass));
    let log = server.log_text();
    for reason in [
        "wrong passphrase",
        "a passphrase is required",
        "publish key for stream \"cam\" is missing or wrong",
        "stream \"cam\" is already being published",
        "only m=publish",
    ] {
        assert!(log.contains(reason), "no refusal for {reason:?}:\n{log}");
    }

    // The live publishes went on: no interruption, the playlist still grows, and it
    // still plays.
    assert!(
        !log.contains("publisher left"),
        "a refused publish disturbed a live one:\n{log}"
    );
    wait_for_segments(&server, "cam", before, 2);
    let out = server.dir.path().join("cam.mp4");
    // ffmpeg's HLS reader gives up early when the publisher (a real-time ffmpeg
    // encode) falls behind on a loaded machine: up to three tries.
    let played = (0..3).any(|_| {
        record(&server.url("/live/cam/index.m3u8"), 3, &out);
        probe_duration(&out.display().to_string()) > 2.5
    });
    assert!(played, "the stream did not play 2.5 s in three tries");
    let (_, streams) = get_text(&server.url("/api/v1/streams"));
    for ghost in ["x1", "x2", "x3"] {
        assert!(
            !streams.contains(&format!("\"name\":\"{ghost}\"")),
            "{streams}"
        );
    }
    let (_, metrics) = get_text(&server.url("/metrics"));
    let refusals: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mediamesh_srt_refused_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(refusals >= 6, "{metrics}");
}

#[test]
fn srt_live_transmit_pushes_a_ts_file_encrypted_and_it_plays() {
    require("ffmpeg");
    let ok = Command::new("srt-live-transmit")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "srt-live-transmit is not installed: run `bash .ci/run` or `apt-get install srt-tools`"
    );
    let server = Server::start(
        "origin",
        &["--srt", "127.0.0.1:0", "--srt-passphrase", PASS],
    );
    // A TS file as an encoder would have written it.
    let file = server.dir.path().join("clip.ts");
    let o = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-t", "40", "-c:v", "libx264", "-preset", "veryfast", "-g", "50",
            ])
            .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts"])
            .arg(&file),
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // srt-live-transmit sends what it reads as it reads it (live mode): the file is
    // fed at its own pace (ffmpeg -re, stream copy), as from a playout server.
    let mut reader = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&file)
        .args(["-c", "copy", "-f", "mpegts", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    let pipe = reader.stdout.take().expect("pipe");
    let _reader = Proc {
        child: reader,
        name: "ffmpeg reader".into(),
    };
    // libsrt's own client, encrypting with AES-192.
    let target = format!(
        "srt://127.0.0.1:{}?streamid=#!::r=live/slt,m=publish&passphrase={PASS}&pbkeylen=24",
        srt_port(&server)
    );
    let transmit = Command::new("srt-live-transmit")
        .args(["-q", "file://con", &target])
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start srt-live-transmit");
    let _transmit = Proc {
        child: transmit,
        name: "srt-live-transmit".into(),
    };
    wait_for_200(&server.url("/live/slt/index.m3u8"), Duration::from_secs(20));
    assert_plays_h264_and_aac(&server.url("/live/slt/index.m3u8"));
    let out = server.dir.path().join("slt.mp4");
    record(&server.url("/live/slt/index.m3u8"), 4, &out);
    let d = probe_duration(&out.display().to_string());
    assert!(d > 3.5, "recorded {d} s");
}

/// SRT packets a hostile sender makes: garbage, truncated headers, inductions from
/// many ports, conclusions with made-up cookies and stream ids, data for no socket.
fn bogus_datagrams(seed: u32) -> Vec<Vec<u8>> {
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let handshake = |version: u32, kind: u32, cookie: u32, ext: u16| {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&version.to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes()); // encryption
        p.extend_from_slice(&ext.to_be_bytes());
        p.extend_from_slice(&1234u32.to_be_bytes()); // initial sequence
        p.extend_from_slice(&1500u32.to_be_bytes()); // MTU
        p.extend_from_slice(&8192u32.to_be_bytes()); // flow window
        p.extend_from_slice(&kind.to_be_bytes());
        p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes()); // socket id
        p.extend_from_slice(&cookie.to_be_bytes());
        p.extend_from_slice(&[127, 0, 0, 1]);
        p.extend_from_slice(&[0; 12]);
        p
    };
    let mut out = Vec::new();
    for i in 0..400u32 {
        out.push(match i % 6 {
            0 => (0..(rnd() % 1400) as usize).map(|_| rnd() as u8).collect(),
            1 => handshake(4, 1, 0, 2),
            2 => {
                // A v5 conclusion with HSREQ and a stream id, bogus cookie.
                let mut p = handshake(5, 0xffff_ffff, rnd(), 0x4a17 | 0x1 | 0x4);
                p.extend_from_slice(&[0, 1, 0, 3]); // HSREQ, 3 words
                p.extend_from_slice(&0x0001_0500u32.to_be_bytes());
                p.extend_from_slice(&0xbfu32.to_be_bytes());
                p.extend_from_slice(&[0, 120, 0, 120]);
                p.extend_from_slice(&[0, 5, 0, 2]); // SID, 2 words
                p.extend_from_slice(b"evil/cam");
                p
            }
            3 => {
                let mut p = handshake(5, 0xffff_ffff, rnd(), 0xffff);
                p.truncate(20 + (rnd() % 40) as usize);
                p
            }
            4 => {
                // Data packets for socket ids we never gave out.
                let mut p = rnd().to_be_bytes().to_vec();
                p[0] &= 0x7f;
                p.extend_from_slice(&[0xc0, 0, 0, 1, 0, 0, 0, 0]);
                p.extend_from_slice(&rnd().to_be_bytes());
                p.extend((0..1316).map(|_| rnd() as u8));
                p
            }
            _ => {
                // Control packets of every type with random bodies.
                let mut p = vec![0x80 | (rnd() as u8 & 0x7f), rnd() as u8];
                p.extend((0..(rnd() % 200) as usize).map(|_| rnd() as u8));
                p
            }
        });
    }
    out
}

#[test]
fn a_flood_of_bogus_srt_handshakes_does_not_stop_a_live_srt_publish() {
    require("ffmpeg");
    let server = Server::start(
        "origin",
        &["--srt", "127.0.0.1:0", "--max-srt-connections", "8"],
    );
    let _cam = publish_srt(&srt_url(&server, "live/cam", ""), 120);
    wait_for_200(&server.url("/live/cam/index.m3u8"), Duration::from_secs(20));
    let before = last_msn(&server, "cam");

    // 100 source ports (far more than the 8 connections the listener may hold), each
    // sending the whole hostile mix, twice.
    let target = ("127.0.0.1", srt_port(&server));
    for wave in 0..2u32 {
        let sockets: Vec<UdpSocket> = (0..100)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        for (i, s) in sockets.iter().enumerate() {
            for d in bogus_datagrams(wave * 1000 + i as u32 + 1) {
                let _ = s.send_to(&d, target);
            }
        }
        // Answers (induction responses) are read; with the cookie of one, each socket
        // completes a handshake that offers key material to this listener, which has
        // no passphrase (a combination the protocol core would panic on).
        for s in &sockets {
            let _ = s.set_nonblocking(true);
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                if n >= 48 && buf[0] == 0x80 && buf[36..40] == [0, 0, 0, 1] {
                    let cookie = [buf[44], buf[45], buf[46], buf[47]];
                    let _ = s.send_to(&conclusion_with_key_material(cookie), target);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // The live publish went on: the playlist grows by further segments, and the
    // publisher never left.
    wait_for_segments(&server, "cam", before, 2);
    let log = server.log_text();
    assert!(!log.contains("publisher left"), "{log}");
    assert_plays_h264_and_aac(&server.url("/live/cam/index.m3u8"));

    let (_, metrics) = get_text(&server.url("/metrics"));
    for line in metrics.lines().filter(|l| l.starts_with("mediamesh_srt_")) {
        eprintln!("{line}");
    }

    // The flood is counted, and a new publisher still gets in: half-open handshakes
    // hold nothing.
    assert!(
        metrics.contains("mediamesh_srt_bad_datagrams_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mediamesh_srt_stray_packets_total"),
        "{metrics}"
    );
    let _late = publish_srt(&srt_url(&server, "live/late", ""), 60);
    wait_for_200(
        &server.url("/live/late/index.m3u8"),
        Duration::from_secs(20),
    );
    assert!(!server.log_text().contains("protocol core failed"));
}

/// A v5 conclusion handshake with the listener's `cookie`, a stream id, and an
/// AES-128 key-material request (well formed, wrapped with no known passphrase).
fn conclusion_with_key_material(cookie: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(&5u32.to_be_bytes());
    p.extend_from_slice(&2u16.to_be_bytes()); // encryption: AES-128
    p.extend_from_slice(&(0x1u16 | 0x2 | 0x4).to_be_bytes()); // HSREQ, KMREQ, CONFIG
    p.extend_from_slice(&1234u32.to_be_bytes());
    p.extend_from_slice(&1500u32.to_be_bytes());
    p.extend_from_slice(&8192u32.to_be_bytes());
    p.extend_from_slice(&0xffff_ffffu32.to_be_bytes()); // conclusion
    p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
    p.extend_from_slice(&cookie);
    p.extend_from_slice(&[127, 0, 0, 1]);
    p.extend_from_slice(&[0; 12]);
    // HSREQ: version 1.5.0, flags, latencies.
    p.extend_from_slice(&[0, 1, 0, 3]);
    p.extend_from_slice(&0x0001_0500u32.to_be_bytes());
    p.extend_from_slice(&0xbfu32.to_be_bytes());
    p.extend_from_slice(&[0, 120, 0, 120]);
    // KMREQ: 14 words of key material.
    p.extend_from_slice(&[0, 3, 0, 14]);
    p.extend_from_slice(&[0x12, 0x20, 0x29, 0x01]); // version 1, PT 2, sign, even key
    p.extend_from_slice(&[0, 0, 0, 0]); // KEKI
    p.extend_from_slice(&[2, 0, 2, 0]); // AES-CTR, no auth, SE 2
    p.extend_from_slice(&[0, 0, 4, 4]); // salt and key lengths in words
    p.extend_from_slice(&[0x5a; 16]); // salt
    p.extend_from_slice(&[0xa5; 24]); // wrapped key
                                      // SID: "live/km" padded to words.
    p.extend_from_slice(&[0, 5, 0, 2]);
    p.extend_from_slice(b"evil/km\0");
    p
}

/// ffmpeg publishing a synthetic picture as H.265 (libx265, ultrafast, a keyframe a
/// second, B-frames) and a tone as AAC, in MPEG-TS over SRT, for `secs`.
fn publish_h265_srt(url: &str, secs: u32) -> Proc {
    require("ffmpeg");
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string(), "-pix_fmt", "yuv420p"])
        .args(["-c:v", "libx265", "-preset", "ultrafast"])
        .args([
            "-x265-params",
            "keyint=30:min-keyint=30:scenecut=0:bframes=2:info=0:log-level=error",
        ])
        .args(["-c:a", "aac", "-f", "mpegts", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ffmpeg");
    Proc {
        child,
        name: "ffmpeg publish (H.265 mpegts over SRT)".into(),
    }
}

#[test]
fn ffmpeg_publishes_h265_over_srt_and_it_is_packaged_as_hvc1_for_hls_and_dash() {
    use crate::ertmp::{probe_streams, variant_attrs};
    require("ffprobe");
    let server = Server::start("serve", &["--srt", "127.0.0.1:0"]);
    let _publisher = publish_h265_srt(&srt_url(&server, "live/hevc", ""), 40);
    wait_for_200(
        &server.url("/live/hevc/src/index.m3u8"),
        Duration::from_secs(20),
    );
    let first = last_msn(&server, "hevc");
    wait_for_segments(&server, "hevc", first, 3);

    // The multivariant playlist and the MPD name the codec of the record the
    // demuxer built from x265's in-band parameter sets.
    let (status, multivariant) = get_text(&server.url("/live/hevc/index.m3u8"));
    assert_eq!(status, 200, "{multivariant}\n{}", server.log_text());
    let (codecs, resolution) = variant_attrs(&multivariant);
    assert!(codecs.starts_with("hvc1.1.6.L"), "{multivariant}");
    assert!(codecs.ends_with(",mp4a.40.2"), "{multivariant}");
    assert_eq!(resolution, "320x240");
    let video_codec = codecs.split(',').next().unwrap_or_default();
    let (status, mpd) = get_text(&server.url("/live/hevc/index.mpd"));
    assert_eq!(status, 200);
    assert!(mpd.contains(&format!("codecs=\"{video_codec}\"")), "{mpd}");
    let (status, init) = get(&server.url("/live/hevc/src/init.mp4"));
    assert_eq!(status, 200);
    assert!(init.windows(4).any(|w| w == b"hvc1") && init.windows(4).any(|w| w == b"hvcC"));

    // ffprobe reads HEVC tagged hvc1 and AAC from the LL-HLS stream, and ffmpeg
    // decodes three seconds of it without a decoding error.
    let url = server.url("/live/hevc/index.m3u8");
    let streams = probe_streams(&url);
    assert!(
        streams.iter().any(|s| s == "hevc|hvc1|320|240"),
        "ffprobe saw {streams:?}"
    );
    assert!(streams.iter().any(|s| s.starts_with("aac|")), "{streams:?}");
    let out = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error", "-i", &url])
            .args(["-map", "0:v", "-t", "3", "-f", "null", "-"]),
        Duration::from_secs(60),
    );
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "{errors}");

    // The DASH video track is HEVC as well.
    let streams = probe_streams(&server.url("/live/hevc/index.mpd"));
    assert!(
        streams.iter().any(|s| s.starts_with("hevc|hvc1|320|240")),
        "ffprobe (DASH) saw {streams:?}"
    );

    let log = server.log_text();
    assert!(log.contains("srt publish started"), "{log}");
    assert!(!log.contains("bad video configuration"), "{log}");
    assert!(!log.contains("stream that is not played"), "{log}");
}
