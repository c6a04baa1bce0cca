//! Tests of the playlist model, writer, parser and checker.

use super::*;

fn part(uri: &str, d: f64, independent: bool) -> Part {
    Part {
        uri: uri.into(),
        duration: d,
        independent,
        gap: false,
    }
}

/// A clean LL-HLS live playlist: 2 s segments of four 0.5 s parts.
fn ll_playlist() -> MediaPlaylist {
    let mut segments = Vec::new();
    for msn in 100..106u64 {
        let parts = if msn >= 104 {
            (0..4)
                .map(|j| part(&format!("seg{msn}.{j}.m4s"), 0.5, j == 0))
                .collect()
        } else {
            Vec::new()
        };
        segments.push(MediaSegment {
            uri: format!("seg{msn}.m4s"),
            duration: 2.0,
            discontinuity: msn == 102,
            program_date_time: (msn == 100).then(|| "2026-11-25T20:13:58.123Z".to_string()),
            parts,
            gap: false,
        });
    }
    MediaPlaylist {
        version: 9,
        target_duration: 2,
        part_inf: Some(0.5),
        server_control: Some(ServerControl {
            can_block_reload: true,
            can_skip_until: Some(12.0),
            can_skip_dateranges: false,
            hold_back: Some(6.0),
            part_hold_back: Some(1.5),
        }),
        media_sequence: 100,
        discontinuity_sequence: 3,
        independent_segments: true,
        playlist_type: None,
        map_uri: Some("init.mp4".into()),
        skipped_segments: 0,
        segments,
        trailing_discontinuity: false,
        trailing_program_date_time: None,
        trailing_parts: vec![
            part("seg106.0.m4s", 0.5, true),
            part("seg106.1.m4s", 0.5, false),
        ],
        preload_hints: vec![PreloadHint {
            hint_type: PreloadHintType::Part,
            uri: "seg106.2.m4s".into(),
            byterange_start: None,
            byterange_length: None,
        }],
        rendition_reports: vec![RenditionReport {
            uri: "../audio/index.m3u8".into(),
            last_msn: 106,
            last_part: Some(1),
        }],
        ended: false,
    }
}

#[test]
fn writes_expected_text() {
    let text = ll_playlist().write();
    let expected_head = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.00000,HOLD-BACK=6.00000,PART-HOLD-BACK=1.50000\n\
#EXT-X-PART-INF:PART-TARGET=0.50000\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n\
#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T20:13:58.123Z\n#EXTINF:2.00000,\nseg100.m4s\n";
    assert!(text.starts_with(expected_head), "{text}");
    let expected_tail =
        "#EXT-X-PART:DURATION=0.50000,URI=\"seg105.3.m4s\"\n#EXTINF:2.00000,\nseg105.m4s\n\
#EXT-X-PART:DURATION=0.50000,URI=\"seg106.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PART:DURATION=0.50000,URI=\"seg106.1.m4s\"\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg106.2.m4s\"\n\
#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=106,LAST-PART=1\n";
    assert!(text.ends_with(expected_tail), "{text}");
    assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXTINF:2.00000,\nseg102.m4s\n"));
}

#[test]
fn round_trips_live_playlist() {
    let p = ll_playlist();
    assert_eq!(MediaPlaylist::parse(&p.write()), Ok(p));
}

#[test]
fn round_trips_delta_update_and_vod() {
    let mut p = ll_playlist();
    p.skipped_segments = 2;
    p.segments.drain(..2);
    p.trailing_discontinuity = true;
    p.trailing_program_date_time = Some("2026-11-25T20:14:10.123Z".into());
    let text = p.write();
    assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n"));
    assert_eq!(MediaPlaylist::parse(&text), Ok(p));

    let vod = MediaPlaylist {
        version: 6,
        target_duration: 4,
        playlist_type: Some(PlaylistType::Vod),
        segments: vec![
            MediaSegment {
                uri: "a.ts".into(),
                duration: 3.003,
                ..Default::default()
            },
            MediaSegment {
                uri: "b.ts".into(),
                duration: 1.0 / 3.0, // not exact in 5 decimals
                gap: true,
                ..Default::default()
            },
        ],
        ended: true,
        ..Default::default()
    };
    assert_eq!(MediaPlaylist::parse(&vod.write()), Ok(vod.clone()));
    assert!(vod.write().contains("#EXTINF:3.00300,\n"));
}

#[test]
fn writer_neutralises_hostile_strings() {
    let p = MediaPlaylist {
        version: 9,
        target_duration: 2,
        segments: vec![MediaSegment {
            uri: "#evil\n#EXT-X-ENDLIST\"x y".into(),
            duration: 2.0,
            program_date_time: Some("2026\n#EXT-X-ENDLIST".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let text = p.write();
    let back = MediaPlaylist::parse(&text).expect("writer output parses");
    assert!(!back.ended);
    assert_eq!(back.segments.len(), 1);
    assert_eq!(back.segments[0].uri, "%23evil%0A#EXT-X-ENDLIST\"x y");
    assert_eq!(
        back.segments[0].program_date_time.as_deref(),
        Some("2026#EXT-X-ENDLIST")
    );
    let rules: Vec<_> = check_media_playlist(&p).iter().map(|v| v.rule).collect();
    assert!(rules.contains(&"uri-valid"), "{rules:?}");
}

const APPLE_STYLE: &str = "#EXTM3U
# A typical low-latency playlist after the draft's and Apple's examples.
#EXT-X-TARGETDURATION:4
#EXT-X-VERSION:6
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=24.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:13:36.106Z
#EXT-X-MAP:URI=\"init.mp4\"
#EXTINF:4.00008,
fileSequence266.mp4
#EXTINF:4.00008,
fileSequence267.mp4
#EXTINF:4.00008,
fileSequence268.mp4
#EXTINF:4.00008,
fileSequence269.mp4
#EXTINF:4.00008,
fileSequence270.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.0.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.1.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.2.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.3.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.4.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.5.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.6.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.7.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.8.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.9.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.10.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart271.11.mp4\"
#EXTINF:4.00008,
fileSequence271.mp4
#EXT-X-PROGRAM-DATE-TIME:2019-02-14T02:14:00.106Z
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.a.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.b.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.c.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.d.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.e.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.f.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.g.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.h.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.i.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.j.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.k.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart272.l.mp4\"
#EXTINF:4.00008,
fileSequence272.mp4
#EXT-X-PART:DURATION=0.33334,URI=\"filePart273.0.mp4\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI=\"filePart273.1.mp4\"
#EXT-X-PART:DURATION=0.33334,URI=\"filePart273.2.mp4\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart273.3.mp4\"

#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2
#EXT-X-RENDITION-REPORT:URI=\"../4M/waitForMSN.php\",LAST-MSN=273,LAST-PART=1
";

#[test]
fn parses_apple_style_example() {
    let p = MediaPlaylist::parse(APPLE_STYLE).expect("parses");
    assert_eq!(p.version, 6);
    assert_eq!(p.target_duration, 4);
    assert_eq!(p.part_inf, Some(0.33334));
    let sc = p.server_control.clone().expect("server control");
    assert!(sc.can_block_reload);
    assert_eq!(sc.part_hold_back, Some(1.0));
    assert_eq!(sc.can_skip_until, Some(24.0));
    assert_eq!(p.media_sequence, 266);
    assert_eq!(p.map_uri.as_deref(), Some("init.mp4"));
    assert_eq!(p.segments.len(), 7);
    assert_eq!(
        p.segments[0].program_date_time.as_deref(),
        Some("2019-02-14T02:13:36.106Z")
    );
    assert_eq!(p.segments[5].parts.len(), 12);
    assert!(p.segments[5].parts[4].independent);
    assert_eq!(
        p.segments[6].program_date_time.as_deref(),
        Some("2019-02-14T02:14:00.106Z")
    );
    assert_eq!(p.trailing_parts.len(), 3);
    assert_eq!(p.next_msn(), 273);
    assert_eq!(p.preload_hints[0].uri, "filePart273.3.mp4");
    assert_eq!(p.rendition_reports.len(), 2);
    assert_eq!(p.rendition_reports[1].last_part, Some(1));
    // Writing it back and parsing again gives the same model.
    assert_eq!(MediaPlaylist::parse(&p.write()), Ok(p.clone()));
    // 1.0 vs 3 x 0.33334 is within the tolerance; the example is clean
    // except for the parts-sum nit (12 x 0.33334 = 4.00008 exactly).
    let v = check_media_playlist(&p);
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn clean_playlist_has_no_violations() {
    let v = check_media_playlist(&ll_playlist());
    assert!(v.is_empty(), "{v:?}");
}

fn sc(p: &mut MediaPlaylist, f: impl FnOnce(&mut ServerControl)) {
    f(p.server_control.get_or_insert_with(Default::default));
}

fn rules(p: &MediaPlaylist) -> Vec<&'static str> {
    check_media_playlist(p)
        .into_iter()
        .map(|v| v.rule)
        .collect()
}

#[test]
fn checker_flags_each_rule() {
    let mut p = ll_playlist();
    p.segments[0].duration = 2.6; // rounds to 3 > 2
    assert!(rules(&p).contains(&"target-duration"));
    p.segments[0].duration = 2.49; // rounds to 2: fine
    assert!(!rules(&p).contains(&"target-duration"));

    let mut p = ll_playlist();
    p.segments[5].parts[3].duration = 0.6;
    assert!(rules(&p).contains(&"part-duration-max"));

    let mut p = ll_playlist();
    p.segments[5].parts[1].duration = 0.3; // middle part, not independent
    let r = rules(&p);
    assert!(r.contains(&"part-duration-min"), "{r:?}");
    assert!(r.contains(&"parts-sum"), "{r:?}");
    let mut p = ll_playlist();
    p.segments[5].parts[3].duration = 0.3; // last part of its parent: exempt
    assert!(!rules(&p).contains(&"part-duration-min"));
    let mut p = ll_playlist();
    p.trailing_parts[1].duration = 0.1; // last trailing part: exempt
    assert!(!rules(&p).contains(&"part-duration-min"));
    p.trailing_parts[1].independent = false;
    p.trailing_parts.push(part("x", 0.5, false));
    assert!(rules(&p).contains(&"part-duration-min"));

    let mut p = ll_playlist();
    sc(&mut p, |s| s.part_hold_back = Some(1.2));
    let r = rules(&p);
    assert!(r.contains(&"part-hold-back-3x") && !r.contains(&"part-hold-back-min"));
    sc(&mut p, |s| s.part_hold_back = Some(0.9));
    assert!(rules(&p).contains(&"part-hold-back-min"));
    sc(&mut p, |s| s.part_hold_back = None);
    assert!(rules(&p).contains(&"part-hold-back-required"));

    let mut p = ll_playlist();
    sc(&mut p, |s| s.hold_back = Some(5.0));
    assert!(rules(&p).contains(&"hold-back-min"));
    sc(&mut p, |s| s.can_skip_until = Some(11.0));
    assert!(rules(&p).contains(&"can-skip-until-min"));
    sc(&mut p, |s| {
        s.can_skip_until = None;
        s.can_skip_dateranges = true
    });
    assert!(rules(&p).contains(&"can-skip-dateranges-requires-can-skip-until"));
    p.skipped_segments = 1;
    assert!(rules(&p).contains(&"skip-without-can-skip-until"));
    p.version = 8;
    assert!(rules(&p).contains(&"skip-version"));
    assert!(!rules(&p).contains(&"map-version"));
    p.version = 5;
    assert!(rules(&p).contains(&"map-version"));
    p.version = 0;
    assert!(rules(&p).contains(&"version-decimal-extinf"));

    let mut p = ll_playlist();
    p.ended = true;
    assert!(rules(&p).contains(&"preload-hint-with-endlist"));
    p.part_inf = None;
    let r = rules(&p);
    assert!(r.contains(&"preload-hint-without-parts") && r.contains(&"part-inf-required"));

    let mut p = ll_playlist();
    p.segments[1].parts = vec![part("old.m4s", 0.5, true); 4];
    assert!(rules(&p).contains(&"parts-too-old"));
    // Segment 104 ends 2 + 1 (trailing) = 3 s before the end: < 6 s, fine.
    assert!(!rules(&ll_playlist()).contains(&"parts-too-old"));

    let mut p = ll_playlist();
    sc(&mut p, |s| s.can_block_reload = false);
    assert!(rules(&p).contains(&"ll-profile-block-reload"));

    let mut p = ll_playlist();
    p.trailing_parts = vec![part("t", 0.5, true); 6]; // 3 s in progress
    assert!(rules(&p).contains(&"target-duration"));

    let mut p = ll_playlist();
    p.segments[0].duration = f64::NAN;
    p.segments[1].uri.clear();
    let r = rules(&p);
    assert!(r.contains(&"duration-valid") && r.contains(&"uri-valid"));
}

#[test]
fn levels_and_display() {
    let mut p = ll_playlist();
    sc(&mut p, |s| s.part_hold_back = Some(1.2));
    let v = check_media_playlist(&p);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].level, Level::Should);
    assert!(v[0].to_string().starts_with("[SHOULD] part-hold-back-3x"));
}

#[test]
fn multivariant_round_trip() {
    let m = MultivariantPlaylist {
        version: 6,
        independent_segments: true,
        variants: vec![
            Variant {
                uri: "720p/index.m3u8".into(),
                bandwidth: 3_000_000,
                average_bandwidth: Some(2_500_000),
                codecs: Some("avc1.64001f,mp4a.40.2".into()),
                resolution: Some((1280, 720)),
                frame_rate: Some(29.97),
                pathway_id: Some("cdn-a".into()),
            },
            Variant {
                uri: "audio/index.m3u8".into(),
                bandwidth: 128_000,
                codecs: Some("mp4a.40.2".into()),
                ..Default::default()
            },
        ],
        content_steering: Some(ContentSteering {
            server_uri: "https://steer.example/s.json".into(),
            pathway_id: Some("cdn-a".into()),
        }),
        session_data: vec![("com.mediamesh.title".into(), "Live, now".into())],
    };
    let text = m.write();
    assert!(text.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970,PATHWAY-ID=\"cdn-a\"\n720p/index.m3u8\n"
        ), "{text}");
    assert!(text.contains("#EXT-X-CONTENT-STEERING:SERVER-URI=\"https://steer.example/s.json\",PATHWAY-ID=\"cdn-a\"\n"));
    assert_eq!(MultivariantPlaylist::parse(&text), Ok(m));
}

#[test]
fn multivariant_write_is_idempotent_through_parse() {
    let m = MultivariantPlaylist {
        variants: vec![Variant {
            uri: "v.m3u8".into(),
            bandwidth: 1,
            frame_rate: Some(30000.0 / 1001.0),
            ..Default::default()
        }],
        ..Default::default()
    };
    let once = m.write();
    assert!(once.contains("FRAME-RATE=29.970"));
    let back = MultivariantPlaylist::parse(&once).expect("parses");
    assert_eq!(back.write(), once);
}

#[test]
fn multivariant_skips_unmodelled_tags() {
    let text = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"a.m3u8\"\n\
#EXT-X-SESSION-DATA:DATA-ID=\"x\",URI=\"x.json\"\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv.m3u8\n";
    let m = MultivariantPlaylist::parse(text).expect("parses");
    assert_eq!(m.variants.len(), 1);
    assert!(m.session_data.is_empty());
}

#[test]
fn wrong_kind_is_rejected() {
    let media = ll_playlist().write();
    assert!(matches!(
        MultivariantPlaylist::parse(&media),
        Err(PlaylistError::WrongKind { .. })
    ));
    let mv = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
    assert!(matches!(
        MediaPlaylist::parse(mv),
        Err(PlaylistError::WrongKind { .. })
    ));
}

#[test]
fn parser_rejects_bad_input() {
    let bad = [
            "",
            "\u{feff}#EXTM3U\n#EXT-X-TARGETDURATION:2\n",
            "#EXTM3\n",
            "#EXTM3U\n",                                             // no TARGETDURATION
            "#EXTM3U\n#EXT-X-TARGETDURATION:-1\n",                   // not an integer
            "#EXTM3U\n#EXT-X-TARGETDURATION:99999999999999999999\n", // overflow
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-TARGETDURATION:2\n",
            "#EXTM3U\n#EXT-X-VERSION:300\n#EXT-X-TARGETDURATION:2\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:NaN,\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:inf,\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1e3,\nseg.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,URI=\"a\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=\"0.5\",URI=\"a\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,DURATION=0.5,URI=\"a\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,URI=\"a\",\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,URI=\"a\"x\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART:DURATION=0.5,URI=\"a\",INDEPENDENT=MAYBE\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PRELOAD-HINT:TYPE=SEGMENT,URI=\"a\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-RENDITION-REPORT:URI=\"a\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-BYTERANGE:100@0\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-MAP:URI=\"i.mp4\"\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-GAP\n",
            "#EXTM3U\n#EXTM3U\n#EXT-X-TARGETDURATION:2\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na\u{1}b.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na\rb.ts\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1,RECENTLY-REMOVED-DATERANGES=\"\"\n",
        ];
    for b in bad {
        assert!(MediaPlaylist::parse(b).is_err(), "accepted {b:?}");
    }
    let long = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#{}\n",
        "x".repeat(MAX_LINE_LEN)
    );
    assert_eq!(
        MediaPlaylist::parse(&long),
        Err(PlaylistError::LineTooLong {
            line: 3,
            max: MAX_LINE_LEN
        })
    );
    let huge = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:{},\na.ts\n",
        "9".repeat(400)
    );
    assert!(MediaPlaylist::parse(&huge).is_err());
    let attrs: Vec<String> = (0..40).map(|i| format!("X{i}=1")).collect();
    let wide = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:{}\n",
        attrs.join(",")
    );
    assert!(MediaPlaylist::parse(&wide).is_err());
    let many = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n{}",
        "#c\n".repeat(MAX_LINES)
    );
    assert_eq!(
        MediaPlaylist::parse(&many),
        Err(PlaylistError::TooManyLines(MAX_LINES))
    );
}

#[test]
fn parser_is_lenient_where_the_spec_is() {
    let text = "#EXTM3U\r\n# comment\r\n#EXT-X-TARGETDURATION:2\r\n#EXT-X-UNKNOWN:FOO=1\r\n\
#EXT-X-KEY:METHOD=NONE\r\n#EXTINF:2,title here\r\nseg.ts\r\n\r\n";
    let p = MediaPlaylist::parse(text).expect("parses");
    assert_eq!(p.segments.len(), 1);
    assert_eq!(p.segments[0].duration, 2.0);
    assert_eq!(p.segments[0].uri, "seg.ts");
    assert_eq!(p.version, 0);
}

#[test]
fn parser_survives_garbage() {
    // A tiny deterministic fuzz: mutate the writer output byte-wise.
    let base = ll_playlist().write().into_bytes();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut parsed = 0;
    for _ in 0..2000 {
        let mut b = base.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % b.len();
            b[i] = (seed >> 32) as u8;
        }
        let s = String::from_utf8_lossy(&b);
        // Whatever parses must round-trip exactly through the writer.
        if let Ok(p) = MediaPlaylist::parse(&s) {
            parsed += 1;
            assert_eq!(MediaPlaylist::parse(&p.write()).as_ref(), Ok(&p), "{s}");
            let _ = check_media_playlist(&p);
        }
        let _ = MultivariantPlaylist::parse(&s);
    }
    assert!(parsed > 20, "only {parsed} mutants parsed");
}

#[test]
fn attribute_lists_read_quoted_and_plain_values() {
    let a =
        attribute_list("ID=\"ad-1\",START-DATE=\"2026-01-01T00:00:00Z\",DURATION=30.0,X-Y=\"a,b\"")
            .expect("parses");
    assert_eq!(
        a,
        vec![
            ("ID".to_string(), "ad-1".to_string()),
            ("START-DATE".to_string(), "2026-01-01T00:00:00Z".to_string()),
            ("DURATION".to_string(), "30.0".to_string()),
            ("X-Y".to_string(), "a,b".to_string()),
        ]
    );
    assert!(attribute_list("A=\"unterminated").is_err());
    let many: Vec<String> = (0..=MAX_ATTRS).map(|i| format!("A{i}=1")).collect();
    assert!(attribute_list(&many.join(",")).is_err());
}
