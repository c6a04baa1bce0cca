//! Playlist text from the model: decimal and quoted-string formatting, and `write()`
//! of both playlist kinds. Not here: parsing or checking.

use std::fmt::Write as _;

use super::*;

// ---------------------------------------------------------------------------
// Writer helpers
// ---------------------------------------------------------------------------

/// Decimal-floating-point text: five decimals when that is exact, otherwise
/// the shortest text that reads back to the same `f64`, so `parse(write(x))`
/// returns `x`. Non-finite and negative values are written as Rust prints
/// them; the parser rejects them and [`check_media_playlist`] reports them.
pub(super) fn fmt_decimal(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0.00000"
    if !v.is_finite() {
        return format!("{v}");
    }
    let fixed = format!("{v:.5}");
    if fixed.parse::<f64>() == Ok(v) {
        fixed
    } else {
        format!("{v}")
    }
}

/// A URI as the writer emits it. Control characters (line breaks included)
/// are percent-encoded everywhere. Inside a quoted-string (`own_line ==
/// false`) so is `"`. On a URI line of its own, a leading `#` (which would
/// make the line a comment or tag) and leading or trailing whitespace (which
/// readers trim) are encoded too. Anything the parser accepts comes back out
/// unchanged, so write/parse round-trips.
pub(super) fn uri_text(uri: &str, own_line: bool) -> String {
    let last = uri.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(uri.len());
    for (i, c) in uri.chars().enumerate() {
        let encode = c.is_control()
            || (!own_line && c == '"')
            || (own_line && i == 0 && c == '#')
            || (own_line && (i == 0 || i == last) && c.is_whitespace());
        if encode {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A non-URI quoted-string value: `"` and control characters, which a
/// quoted-string cannot hold, are dropped.
pub(super) fn quoted_text(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && !c.is_control()).collect()
}

/// Free text after a tag's colon (program date time): control characters
/// dropped, surrounding whitespace trimmed (readers trim it anyway).
pub(super) fn line_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

pub(super) fn write_part(out: &mut String, p: &Part) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"{}\"",
        fmt_decimal(p.duration),
        uri_text(&p.uri, false)
    );
    if p.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    if p.gap {
        out.push_str(",GAP=YES");
    }
    out.push('\n');
}

impl MediaPlaylist {
    /// Serialise to playlist text (LF line endings, trailing newline).
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(256 + 96 * self.segments.len());
        out.push_str("#EXTM3U\n");
        if self.version > 0 {
            let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version);
        }
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        if let Some(t) = self.playlist_type {
            let t = match t {
                PlaylistType::Vod => "VOD",
                PlaylistType::Event => "EVENT",
            };
            let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{t}");
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if let Some(sc) = &self.server_control {
            let mut attrs: Vec<String> = Vec::new();
            if sc.can_block_reload {
                attrs.push("CAN-BLOCK-RELOAD=YES".into());
            }
            if let Some(v) = sc.can_skip_until {
                attrs.push(format!("CAN-SKIP-UNTIL={}", fmt_decimal(v)));
            }
            if sc.can_skip_dateranges {
                attrs.push("CAN-SKIP-DATERANGES=YES".into());
            }
            if let Some(v) = sc.hold_back {
                attrs.push(format!("HOLD-BACK={}", fmt_decimal(v)));
            }
            if let Some(v) = sc.part_hold_back {
                attrs.push(format!("PART-HOLD-BACK={}", fmt_decimal(v)));
            }
            let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:{}", attrs.join(","));
        }
        if let Some(pt) = self.part_inf {
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", fmt_decimal(pt));
        }
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        if let Some(map) = &self.map_uri {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", uri_text(map, false));
        }
        if self.skipped_segments > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-SKIP:SKIPPED-SEGMENTS={}",
                self.skipped_segments
            );
        }
        for seg in &self.segments {
            // Segment tags first: the draft requires DISCONTINUITY and
            // PROGRAM-DATE-TIME before the first EXT-X-PART of the segment.
            if seg.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(pdt) = &seg.program_date_time {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", line_text(pdt));
            }
            if seg.gap {
                out.push_str("#EXT-X-GAP\n");
            }
            for p in &seg.parts {
                write_part(&mut out, p);
            }
            let _ = writeln!(out, "#EXTINF:{},", fmt_decimal(seg.duration));
            out.push_str(&uri_text(&seg.uri, true));
            out.push('\n');
        }
        if self.trailing_discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(pdt) = &self.trailing_program_date_time {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", line_text(pdt));
        }
        for p in &self.trailing_parts {
            write_part(&mut out, p);
        }
        for h in &self.preload_hints {
            let t = match h.hint_type {
                PreloadHintType::Part => "PART",
                PreloadHintType::Map => "MAP",
            };
            let _ = write!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE={t},URI=\"{}\"",
                uri_text(&h.uri, false)
            );
            if let Some(s) = h.byterange_start {
                let _ = write!(out, ",BYTERANGE-START={s}");
            }
            if let Some(l) = h.byterange_length {
                let _ = write!(out, ",BYTERANGE-LENGTH={l}");
            }
            out.push('\n');
        }
        for r in &self.rendition_reports {
            let _ = write!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                uri_text(&r.uri, false),
                r.last_msn
            );
            if let Some(p) = r.last_part {
                let _ = write!(out, ",LAST-PART={p}");
            }
            out.push('\n');
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }

    /// Parse Media Playlist text. See the module docs for what is rejected.
    pub fn parse(text: &str) -> Result<Self, PlaylistError> {
        MediaParser::default().run(text)
    }

    /// Media Sequence Number of `segments[0]` (accounts for a skip).
    pub fn first_listed_msn(&self) -> u64 {
        self.media_sequence.saturating_add(self.skipped_segments)
    }

    /// Media Sequence Number the in-progress segment (the one
    /// `trailing_parts` belong to) has, i.e. one past the last full segment.
    pub fn next_msn(&self) -> u64 {
        self.first_listed_msn()
            .saturating_add(self.segments.len() as u64)
    }
}

impl MultivariantPlaylist {
    /// Serialise to playlist text (LF line endings, trailing newline).
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(128 + 160 * self.variants.len());
        out.push_str("#EXTM3U\n");
        if self.version > 0 {
            let _ = writeln!(out, "#EXT-X-VERSION:{}", self.version);
        }
        if self.independent_segments {
            out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        if let Some(cs) = &self.content_steering {
            let _ = write!(
                out,
                "#EXT-X-CONTENT-STEERING:SERVER-URI=\"{}\"",
                uri_text(&cs.server_uri, false)
            );
            if let Some(p) = &cs.pathway_id {
                let _ = write!(out, ",PATHWAY-ID=\"{}\"", quoted_text(p));
            }
            out.push('\n');
        }
        for (id, value) in &self.session_data {
            let _ = writeln!(
                out,
                "#EXT-X-SESSION-DATA:DATA-ID=\"{}\",VALUE=\"{}\"",
                quoted_text(id),
                quoted_text(value)
            );
        }
        for v in &self.variants {
            let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth);
            if let Some(a) = v.average_bandwidth {
                let _ = write!(out, ",AVERAGE-BANDWIDTH={a}");
            }
            if let Some(c) = &v.codecs {
                let _ = write!(out, ",CODECS=\"{}\"", quoted_text(c));
            }
            if let Some((w, h)) = v.resolution {
                let _ = write!(out, ",RESOLUTION={w}x{h}");
            }
            if let Some(f) = v.frame_rate {
                let _ = write!(out, ",FRAME-RATE={f:.3}");
            }
            if let Some(p) = &v.pathway_id {
                let _ = write!(out, ",PATHWAY-ID=\"{}\"", quoted_text(p));
            }
            out.push('\n');
            out.push_str(&uri_text(&v.uri, true));
            out.push('\n');
        }
        out
    }

    /// Parse Multivariant Playlist text. `EXT-X-MEDIA`, `EXT-X-SESSION-KEY`
    /// and other tags outside the model are skipped.
    pub fn parse(text: &str) -> Result<Self, PlaylistError> {
        parse_multivariant(text)
    }
}
