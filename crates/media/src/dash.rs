//! MPEG-DASH manifests: a small typed model of the MPD (ISO/IEC 23009-1) and a
//! writer, plus the date, duration and `SegmentTimeline` helpers it needs.
//!
//! What it is for: the origin describes its live (or finished) CMAF
//! presentation as an [`Mpd`] — periods, adaptation sets, representations,
//! `SegmentTemplate` with either `@duration` or a `SegmentTimeline`, the
//! low-latency `availabilityTimeOffset`/`availabilityTimeComplete` pair and a
//! `UTCTiming` element — and serves `Mpd::write()`.
//!
//! What it is not: an MPD parser, a schema validator, or a full model of the
//! standard. There is no `BaseURL`, `ContentProtection`, `SegmentList`,
//! `Role`/`Label`, `EventStream` or `ServiceDescription`; add fields when the
//! origin needs them. The writer does not enforce profile rules (for example
//! that a dynamic MPD carries `availabilityStartTime`); callers build valid
//! presentations. Every attribute value is XML-escaped, so no field content can
//! break the document's structure. Dates are formatted without a calendar
//! crate (see [`format_iso8601_ms`]).

use std::fmt::Write as _;

/// `urn:mpeg:dash:profile:isoff-live:2011`, the profile for `SegmentTemplate`
/// based live streams.
pub const PROFILE_ISOFF_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
/// `UTCTiming@schemeIdUri` for an HTTP resource returning an ISO 8601 time.
pub const UTC_HTTP_ISO: &str = "urn:mpeg:dash:utc:http-iso:2014";

/// The Media Presentation Description (root `MPD` element).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Mpd {
    /// `@type`: `dynamic` (live) or `static`.
    pub dynamic: bool,
    /// `@availabilityStartTime`, Unix milliseconds.
    pub availability_start_time_ms: Option<u64>,
    /// `@publishTime`, Unix milliseconds.
    pub publish_time_ms: Option<u64>,
    /// `@mediaPresentationDuration`, seconds.
    pub media_presentation_duration: Option<f64>,
    /// `@minimumUpdatePeriod`, seconds.
    pub minimum_update_period: Option<f64>,
    /// `@minBufferTime`, seconds (required by the schema, always written).
    pub min_buffer_time: f64,
    /// `@timeShiftBufferDepth`, seconds.
    pub time_shift_buffer_depth: Option<f64>,
    /// `@suggestedPresentationDelay`, seconds.
    pub suggested_presentation_delay: Option<f64>,
    /// `@maxSegmentDuration`, seconds.
    pub max_segment_duration: Option<f64>,
    /// URL for `<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value=".."/>`.
    pub utc_timing_iso: Option<String>,
    pub periods: Vec<Period>,
    /// `@profiles`, e.g. [`PROFILE_ISOFF_LIVE`].
    pub profiles: String,
}

/// `Period`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Period {
    pub id: String,
    /// `@start`, seconds from the start of the presentation.
    pub start: f64,
    pub adaptation_sets: Vec<AdaptationSet>,
}

/// `AdaptationSet`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AdaptationSet {
    pub id: u32,
    /// `@contentType`, e.g. `video`, `audio`.
    pub content_type: Option<String>,
    /// `@mimeType`, e.g. `video/mp4`.
    pub mime_type: String,
    /// `@segmentAlignment="true"` when set (false is the default, not written).
    pub segment_alignment: bool,
    pub representations: Vec<Representation>,
    /// Template shared by all representations (written before them).
    pub segment_template: Option<SegmentTemplate>,
}

/// `Representation`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Representation {
    pub id: String,
    pub codecs: String,
    /// `@bandwidth`, bits per second.
    pub bandwidth: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `@frameRate` as written, e.g. `30` or `30000/1001`.
    pub frame_rate: Option<String>,
    pub audio_sampling_rate: Option<u32>,
    /// Per-representation template, overriding the adaptation set's.
    pub segment_template: Option<SegmentTemplate>,
}

/// `SegmentTemplate`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SegmentTemplate {
    pub timescale: u32,
    /// `@initialization`, e.g. `$RepresentationID$/init.mp4`.
    pub initialization: String,
    /// `@media`, e.g. `$RepresentationID$/$Number$.m4s` or `..$Time$..`.
    pub media: String,
    pub start_number: u64,
    /// `@presentationTimeOffset` in timescale units (written when non-zero).
    pub presentation_time_offset: u64,
    /// `@duration` in timescale units (number-based addressing).
    pub duration: Option<u64>,
    /// `SegmentTimeline` entries (written when non-empty).
    pub timeline: Vec<TimelineEntry>,
    /// `@availabilityTimeOffset`, seconds (`f64::INFINITY` writes `INF`).
    pub availability_time_offset: Option<f64>,
    /// `@availabilityTimeComplete`.
    pub availability_time_complete: Option<bool>,
}

/// One `S` element of a `SegmentTimeline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TimelineEntry {
    /// `@t`, timescale units; absent means "right after the previous entry".
    pub t: Option<u64>,
    /// `@d`, timescale units.
    pub d: u64,
    /// `@r`, number of *additional* segments of the same duration.
    pub r: u32,
}

/// XML attribute value escaping: the five predefined entities, character
/// references for TAB/LF/CR (which attribute-value normalisation would
/// otherwise turn into spaces), and other control characters, which XML 1.0
/// cannot carry at all, dropped.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if c.is_control() && (c as u32) < 0x20 => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// xs:double text: shortest round-trip decimal, `INF`, `-INF` or `NaN`.
fn fmt_double(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "INF".into()
    } else if v == f64::NEG_INFINITY {
        "-INF".into()
    } else {
        format!("{v}")
    }
}

fn attr(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, " {name}=\"{}\"", xml_escape(value));
}

impl Mpd {
    /// Serialise to an XML document (UTF-8, two-space indentation).
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str("<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"");
        attr(&mut out, "profiles", &self.profiles);
        attr(
            &mut out,
            "type",
            if self.dynamic { "dynamic" } else { "static" },
        );
        if let Some(ms) = self.availability_start_time_ms {
            attr(&mut out, "availabilityStartTime", &format_iso8601_ms(ms));
        }
        if let Some(ms) = self.publish_time_ms {
            attr(&mut out, "publishTime", &format_iso8601_ms(ms));
        }
        let durations = [
            (
                "mediaPresentationDuration",
                self.media_presentation_duration,
            ),
            ("minimumUpdatePeriod", self.minimum_update_period),
            ("minBufferTime", Some(self.min_buffer_time)),
            ("timeShiftBufferDepth", self.time_shift_buffer_depth),
            (
                "suggestedPresentationDelay",
                self.suggested_presentation_delay,
            ),
            ("maxSegmentDuration", self.max_segment_duration),
        ];
        for (name, v) in durations {
            if let Some(v) = v {
                attr(&mut out, name, &format_duration(v));
            }
        }
        out.push_str(">\n");
        for p in &self.periods {
            write_period(&mut out, p);
        }
        // UTCTiming follows Period in the schema's element order.
        if let Some(url) = &self.utc_timing_iso {
            out.push_str("  <UTCTiming");
            attr(&mut out, "schemeIdUri", UTC_HTTP_ISO);
            attr(&mut out, "value", url);
            out.push_str("/>\n");
        }
        out.push_str("</MPD>\n");
        out
    }
}

fn write_period(out: &mut String, p: &Period) {
    out.push_str("  <Period");
    attr(out, "id", &p.id);
    attr(out, "start", &format_duration(p.start));
    out.push_str(">\n");
    for a in &p.adaptation_sets {
        out.push_str("    <AdaptationSet");
        attr(out, "id", &a.id.to_string());
        if let Some(ct) = &a.content_type {
            attr(out, "contentType", ct);
        }
        attr(out, "mimeType", &a.mime_type);
        if a.segment_alignment {
            attr(out, "segmentAlignment", "true");
        }
        out.push_str(">\n");
        // SegmentTemplate precedes Representation in the schema.
        if let Some(t) = &a.segment_template {
            write_template(out, t, "      ");
        }
        for r in &a.representations {
            out.push_str("      <Representation");
            attr(out, "id", &r.id);
            attr(out, "codecs", &r.codecs);
            attr(out, "bandwidth", &r.bandwidth.to_string());
            if let Some(w) = r.width {
                attr(out, "width", &w.to_string());
            }
            if let Some(h) = r.height {
                attr(out, "height", &h.to_string());
            }
            if let Some(f) = &r.frame_rate {
                attr(out, "frameRate", f);
            }
            if let Some(s) = r.audio_sampling_rate {
                attr(out, "audioSamplingRate", &s.to_string());
            }
            match &r.segment_template {
                Some(t) => {
                    out.push_str(">\n");
                    write_template(out, t, "        ");
                    out.push_str("      </Representation>\n");
                }
                None => out.push_str("/>\n"),
            }
        }
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n");
}

fn write_template(out: &mut String, t: &SegmentTemplate, indent: &str) {
    out.push_str(indent);
    out.push_str("<SegmentTemplate");
    attr(out, "timescale", &t.timescale.to_string());
    attr(out, "initialization", &t.initialization);
    attr(out, "media", &t.media);
    attr(out, "startNumber", &t.start_number.to_string());
    if t.presentation_time_offset != 0 {
        attr(
            out,
            "presentationTimeOffset",
            &t.presentation_time_offset.to_string(),
        );
    }
    if let Some(d) = t.duration {
        attr(out, "duration", &d.to_string());
    }
    if let Some(o) = t.availability_time_offset {
        attr(out, "availabilityTimeOffset", &fmt_double(o));
    }
    if let Some(c) = t.availability_time_complete {
        attr(
            out,
            "availabilityTimeComplete",
            if c { "true" } else { "false" },
        );
    }
    if t.timeline.is_empty() {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    let _ = writeln!(out, "{indent}  <SegmentTimeline>");
    for e in &t.timeline {
        let _ = write!(out, "{indent}    <S");
        if let Some(ts) = e.t {
            let _ = write!(out, " t=\"{ts}\"");
        }
        let _ = write!(out, " d=\"{}\"", e.d);
        if e.r > 0 {
            let _ = write!(out, " r=\"{}\"", e.r);
        }
        out.push_str("/>\n");
    }
    let _ = writeln!(out, "{indent}  </SegmentTimeline>");
    let _ = writeln!(out, "{indent}</SegmentTemplate>");
}

/// Compress consecutive equal durations into `r` runs. The first entry
/// carries `t = start_t`; later entries omit `t` (they follow on directly).
/// An empty slice gives an empty timeline.
pub fn timeline_from_durations(start_t: u64, durations: &[u64]) -> Vec<TimelineEntry> {
    let mut out: Vec<TimelineEntry> = Vec::new();
    for &d in durations {
        match out.last_mut() {
            Some(last) if last.d == d && last.r < u32::MAX => last.r += 1,
            _ => out.push(TimelineEntry {
                t: if out.is_empty() { Some(start_t) } else { None },
                d,
                r: 0,
            }),
        }
    }
    out
}

/// Proleptic Gregorian `(year, month, day)` for a count of days since
/// 1970-01-01. The calendar repeats every 400 years (146 097 days); counting
/// from 0000-03-01 puts the leap day at the end of each computed year, so the
/// month lengths within a year are fixed (153 days per five months).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of (March-based) year
    let mp = (5 * doy + 2) / 153; // March = 0 .. February = 11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-11-25T20:13:58.123Z` for Unix milliseconds (UTC, always three
/// fractional digits). No calendar crate: days are converted with a
/// civil-from-days computation.
pub fn format_iso8601_ms(unix_ms: u64) -> String {
    let ms = unix_ms % 1000;
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64; // u64::MAX / 86_400_000 fits easily
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// xs:duration text such as `PT1M3.5S`, `PT2S`, `PT1H`, `PT0S`, rounded to
/// milliseconds, using hours, minutes and seconds only (`PT25H` rather than
/// `P1DT1H`, which is equally valid). Negative values get a leading `-`;
/// non-finite values, which xs:duration cannot express, give `PT0S`.
pub fn format_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "PT0S".into();
    }
    let neg = seconds < 0.0;
    // `as` saturates, so absurdly large inputs cannot panic.
    let total_ms = (seconds.abs() * 1000.0).round() as u64;
    let mut out = String::from(if neg && total_ms > 0 { "-PT" } else { "PT" });
    let h = total_ms / 3_600_000;
    let m = (total_ms / 60_000) % 60;
    let s_ms = total_ms % 60_000;
    if h > 0 {
        let _ = write!(out, "{h}H");
    }
    if m > 0 {
        let _ = write!(out, "{m}M");
    }
    if s_ms > 0 || (h == 0 && m == 0) {
        let (s, frac) = (s_ms / 1000, s_ms % 1000);
        if frac == 0 {
            let _ = write!(out, "{s}S");
        } else {
            let f = format!("{frac:03}");
            let _ = write!(out, "{s}.{}S", f.trim_end_matches('0'));
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
                        || ent.strip_prefix('#').is_some_and(|n| {
                            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                        });
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
            well_formed("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a x=\"1\" x=\"2\"/>")
                .is_err()
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
}
