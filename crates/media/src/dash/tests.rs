//! Tests of `dash`.

use super::*;

/// Minimal well-formedness check for the XML this module writes:
/// prolog, balanced elements, quoted attributes with unique names,
/// only the five entities and numeric references, a single root.
fn well_formed(xml: &str) -> Result<(), String> {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .ok_or("missing prolog")?;
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    loop {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() {
                return Err(format!("trailing text {rest:?}"));
            }
            break;
        };
        let text = &rest[..lt];
        if !text.trim().is_empty() {
            return Err(format!("unexpected text {text:?}"));
        }
        rest = &rest[lt + 1..];
        if let Some(r) = rest.strip_prefix('/') {
            let gt = r.find('>').ok_or("unterminated end tag")?;
            let name = &r[..gt];
            if stack.pop() != Some(name) {
                return Err(format!("mismatched </{name}>"));
            }
            rest = &r[gt + 1..];
            continue;
        }
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .ok_or("unterminated tag")?;
        let name = &rest[..name_end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("bad element name {name:?}"));
        }
        if stack.is_empty() {
            roots += 1;
        }
        rest = &rest[name_end..];
        let mut names: Vec<&str> = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix("/>") {
                rest = r;
                break;
            }
            if let Some(r) = rest.strip_prefix('>') {
                stack.push(name);
                rest = r;
                break;
            }
            let eq = rest.find('=').ok_or("attribute without =")?;
            let an = &rest[..eq];
            if an.is_empty() || !an.chars().all(|c| c.is_ascii_alphanumeric() || c == ':') {
                return Err(format!("bad attribute name {an:?}"));
            }
            if names.contains(&an) {
                return Err(format!("duplicate attribute {an}"));
            }
            names.push(an);
            let v = rest[eq + 1..].strip_prefix('"').ok_or("unquoted value")?;
            let close = v.find('"').ok_or("unterminated value")?;
            let value = &v[..close];
            if value.contains('<') {
                return Err(format!("raw < in {an}"));
            }
            let mut amp = value;
            while let Some(i) = amp.find('&') {
                let after = &amp[i + 1..];
                let semi = after.find(';').ok_or("bare &")?;
                let ent = &after[..semi];
                let ok = ["amp", "lt", "gt", "quot", "apos"].contains(&ent)
                    || ent
                        .strip_prefix('#')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    return Err(format!("bad entity &{ent};"));
                }
                amp = &after[semi + 1..];
            }
            rest = &v[close + 1..];
        }
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(())
}

fn live_mpd() -> Mpd {
    let video_tpl = SegmentTemplate {
        timescale: 90_000,
        initialization: "$RepresentationID$/init.mp4".into(),
        media: "$RepresentationID$/$Time$.m4s".into(),
        start_number: 1,
        presentation_time_offset: 0,
        duration: None,
        timeline: timeline_from_durations(900_000, &[180_000, 180_000, 180_000, 179_000]),
        availability_time_offset: Some(1.5),
        availability_time_complete: Some(false),
    };
    Mpd {
        dynamic: true,
        availability_start_time_ms: Some(1_795_637_638_123),
        publish_time_ms: Some(1_795_637_700_000),
        media_presentation_duration: None,
        minimum_update_period: Some(2.0),
        min_buffer_time: 2.0,
        time_shift_buffer_depth: Some(63.5),
        suggested_presentation_delay: Some(3.0),
        max_segment_duration: Some(2.0),
        utc_timing_iso: Some("https://example.com/time?a=1&b=2".into()),
        periods: vec![Period {
            id: "p0".into(),
            start: 0.0,
            adaptation_sets: vec![
                AdaptationSet {
                    id: 0,
                    content_type: Some("video".into()),
                    mime_type: "video/mp4".into(),
                    segment_alignment: true,
                    representations: vec![Representation {
                        id: "720p".into(),
                        codecs: "avc1.64001f".into(),
                        bandwidth: 3_000_000,
                        width: Some(1280),
                        height: Some(720),
                        frame_rate: Some("30000/1001".into()),
                        audio_sampling_rate: None,
                        segment_template: None,
                    }],
                    segment_template: Some(video_tpl),
                },
                AdaptationSet {
                    id: 1,
                    content_type: Some("audio".into()),
                    mime_type: "audio/mp4".into(),
                    segment_alignment: true,
                    representations: vec![Representation {
                        id: "aac".into(),
                        codecs: "mp4a.40.2".into(),
                        bandwidth: 128_000,
                        audio_sampling_rate: Some(48_000),
                        segment_template: Some(SegmentTemplate {
                            timescale: 48_000,
                            initialization: "aac/init.mp4".into(),
                            media: "aac/$Number$.m4s".into(),
                            start_number: 5,
                            presentation_time_offset: 96_000,
                            duration: Some(96_000),
                            availability_time_offset: Some(f64::INFINITY),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    segment_template: None,
                },
            ],
        }],
        profiles: PROFILE_ISOFF_LIVE.into(),
    }
}

#[test]
fn live_mpd_structure() {
    let xml = live_mpd().write();
    well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    for needle in [
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"dynamic\"",
        "availabilityStartTime=\"2026-11-25T20:13:58.123Z\"",
        "publishTime=\"2026-11-25T20:15:00.000Z\"",
        "minimumUpdatePeriod=\"PT2S\"",
        "minBufferTime=\"PT2S\"",
        "timeShiftBufferDepth=\"PT1M3.5S\"",
        "<Period id=\"p0\" start=\"PT0S\">",
        "<AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" segmentAlignment=\"true\">",
        "availabilityTimeOffset=\"1.5\" availabilityTimeComplete=\"false\">",
        "<S t=\"900000\" d=\"180000\" r=\"2\"/>\n",
        "<S d=\"179000\"/>\n",
        "frameRate=\"30000/1001\"",
        "audioSamplingRate=\"48000\"",
        "presentationTimeOffset=\"96000\" duration=\"96000\" availabilityTimeOffset=\"INF\"/>",
        "<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"https://example.com/time?a=1&amp;b=2\"/>\n</MPD>\n",
    ] {
        assert!(xml.contains(needle), "missing {needle}\n{xml}");
    }
    assert!(!xml.contains("mediaPresentationDuration"));
    // SegmentTemplate before Representation inside the video set.
    let tpl = xml.find("<SegmentTemplate").unwrap_or(usize::MAX);
    let rep = xml.find("<Representation").unwrap_or(0);
    assert!(tpl < rep);
}

#[test]
fn static_mpd_and_escaping() {
    let mut m = live_mpd();
    m.dynamic = false;
    m.availability_start_time_ms = None;
    m.minimum_update_period = None;
    m.media_presentation_duration = Some(3725.25);
    m.periods[0].id = "a\"b<c>&'d\n".into();
    m.periods[0].adaptation_sets[0].representations[0].codecs = "x\u{1}y".into();
    let xml = m.write();
    well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(xml.contains("type=\"static\""));
    assert!(xml.contains("mediaPresentationDuration=\"PT1H2M5.25S\""));
    assert!(xml.contains("id=\"a&quot;b&lt;c&gt;&amp;&apos;d&#10;\""));
    assert!(xml.contains("codecs=\"xy\""));
    well_formed(&Mpd::default().write()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn checker_catches_broken_xml() {
    assert!(well_formed("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a><b></a>").is_err());
    assert!(well_formed("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a x=\"&\"/>").is_err());
    assert!(well_formed("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a/><b/>").is_err());
    assert!(
        well_formed("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a x=\"1\" x=\"2\"/>").is_err()
    );
}

#[test]
fn iso8601_vectors() {
    let cases = [
        (0, "1970-01-01T00:00:00.000Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (946_684_799_000, "1999-12-31T23:59:59.000Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (951_868_800_000, "2000-03-01T00:00:00.000Z"),
        (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
        (1_795_637_638_123, "2026-11-25T20:13:58.123Z"),
        (2_147_483_648_000, "2038-01-19T03:14:08.000Z"),
        (4_107_542_400_000, "2100-03-01T00:00:00.000Z"), // 2100 is not leap
        (4_107_456_000_000, "2100-02-28T00:00:00.000Z"),
    ];
    for (ms, want) in cases {
        assert_eq!(format_iso8601_ms(ms), want, "{ms}");
    }
    // No panic at the extreme.
    assert!(format_iso8601_ms(u64::MAX).ends_with('Z'));
}

#[test]
fn duration_vectors() {
    let cases = [
        (0.0, "PT0S"),
        (2.0, "PT2S"),
        (0.5, "PT0.5S"),
        (63.5, "PT1M3.5S"),
        (60.0, "PT1M"),
        (3600.0, "PT1H"),
        (3725.25, "PT1H2M5.25S"),
        (90000.001, "PT25H0.001S"),
        (1.0004, "PT1S"),
        (1.0005, "PT1.001S"),
        (-1.5, "-PT1.5S"),
        (-0.0001, "PT0S"),
        (f64::NAN, "PT0S"),
        (f64::INFINITY, "PT0S"),
    ];
    for (s, want) in cases {
        assert_eq!(format_duration(s), want, "{s}");
    }
}

#[test]
fn timeline_compression() {
    assert!(timeline_from_durations(0, &[]).is_empty());
    assert_eq!(
        timeline_from_durations(10, &[5]),
        vec![TimelineEntry {
            t: Some(10),
            d: 5,
            r: 0
        }]
    );
    assert_eq!(
        timeline_from_durations(1000, &[4, 4, 4, 3, 4, 4]),
        vec![
            TimelineEntry {
                t: Some(1000),
                d: 4,
                r: 2
            },
            TimelineEntry {
                t: None,
                d: 3,
                r: 0
            },
            TimelineEntry {
                t: None,
                d: 4,
                r: 1
            },
        ]
    );
    // Expanding the runs gives back the input.
    let durs = [7, 7, 1, 1, 1, 9, 7, 7];
    let tl = timeline_from_durations(0, &durs);
    let expanded: Vec<u64> = tl
        .iter()
        .flat_map(|e| (0..=e.r).map(move |_| e.d))
        .collect();
    assert_eq!(expanded, durs);
}
