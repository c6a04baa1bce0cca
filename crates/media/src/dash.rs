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
mod tests;
