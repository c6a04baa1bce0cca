//! The rules of draft-pantos-hls-rfc8216bis that a server must obey, checked on the
//! model ([`check_media_playlist`]). Not here: parsing.

use super::*;

/// How binding a [`Violation`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// The draft says MUST: clients may reject the playlist.
    Must,
    /// The draft says SHOULD, or mediamesh policy is stricter than the draft
    /// (e.g. PART-HOLD-BACK of at least three part targets). The origin
    /// treats these as errors too; they are separated so tests can tell.
    Should,
}

/// One broken rule found by [`check_media_playlist`].
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Stable rule identifier, e.g. `"part-hold-back-min"`.
    pub rule: &'static str,
    pub detail: String,
    pub level: Level,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lvl = match self.level {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        };
        write!(f, "[{lvl}] {}: {}", self.rule, self.detail)
    }
}

/// Spec rules (draft-pantos-hls-rfc8216bis) a playlist we generate must
/// satisfy. Returns every violation found; empty means clean.
///
/// MUST rules: every `EXTINF` rounded to the nearest integer is at most
/// TARGETDURATION (§4.4.3.1), which also covers the in-progress segment's
/// parts; EXT-X-PART-INF is present when parts are (§4.4.3.7); every part is
/// at most PART-TARGET, and at least 85 % of it except INDEPENDENT or GAP
/// parts, parts followed by a GAP part and the last part of a parent segment
/// (§4.4.4.9; the last trailing part is exempt as it may end its segment);
/// PART-HOLD-BACK is present with EXT-X-PART-INF and at least 2 × PART-TARGET;
/// HOLD-BACK ≥ 3 × TARGETDURATION; CAN-SKIP-UNTIL ≥ 6 × TARGETDURATION;
/// CAN-SKIP-DATERANGES needs CAN-SKIP-UNTIL (§4.4.3.8); EXT-X-SKIP needs
/// version 9 (§8) and an advertised CAN-SKIP-UNTIL; no EXT-X-PRELOAD-HINT
/// with EXT-X-ENDLIST (§4.4.5.3); version ≥ 3 for decimal EXTINF (the writer
/// always writes decimals) and ≥ 6 for EXT-X-MAP (§8); durations finite and
/// non-negative; URIs non-empty and free of characters the writer has to
/// percent-encode.
///
/// SHOULD / policy rules: PART-HOLD-BACK ≥ 3 × PART-TARGET; parts removed
/// once their parent segment ends more than three target durations before
/// the end of the playlist (§6.2.2); preload hints only in a playlist with
/// parts; CAN-BLOCK-RELOAD=YES with parts (Appendix B low-latency profile);
/// a segment's parts add up to its EXTINF duration (§3.2).
pub fn check_media_playlist(p: &MediaPlaylist) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut must = |rule: &'static str, detail: String| {
        v.push(Violation {
            rule,
            detail,
            level: Level::Must,
        })
    };
    let td = p.target_duration as f64;
    let msn0 = p.first_listed_msn();
    let has_parts = !p.trailing_parts.is_empty() || p.segments.iter().any(|s| !s.parts.is_empty());

    // Durations and URIs.
    for (i, s) in p.segments.iter().enumerate() {
        let msn = msn0.saturating_add(i as u64);
        if !s.duration.is_finite() || s.duration < 0.0 {
            must(
                "duration-valid",
                format!("segment {msn}: EXTINF {}", s.duration),
            );
        } else if s.duration.round() > td {
            must(
                "target-duration",
                format!(
                    "segment {msn}: EXTINF {} rounds above TARGETDURATION {}",
                    s.duration, p.target_duration
                ),
            );
        }
        if let Some(r) = uri_problem(&s.uri) {
            must("uri-valid", format!("segment {msn}: {r}"));
        }
    }
    let trailing_sum: f64 = p.trailing_parts.iter().map(|x| x.duration).sum();
    if trailing_sum.is_finite() && trailing_sum.round() > td {
        must(
            "target-duration",
            format!(
                "in-progress segment {}: parts already last {trailing_sum:.5} s, rounding above TARGETDURATION {}",
                p.next_msn(),
                p.target_duration
            ),
        );
    }
    if let Some(m) = &p.map_uri {
        if let Some(r) = uri_problem(m) {
            must("uri-valid", format!("EXT-X-MAP: {r}"));
        }
    }

    // Parts.
    if has_parts && p.part_inf.is_none() {
        must(
            "part-inf-required",
            "EXT-X-PART present without EXT-X-PART-INF".into(),
        );
    }
    let part_groups = p
        .segments
        .iter()
        .enumerate()
        .map(|(i, s)| (msn0.saturating_add(i as u64), &s.parts[..]))
        .chain(std::iter::once((p.next_msn(), &p.trailing_parts[..])));
    for (msn, parts) in part_groups {
        for (j, part) in parts.iter().enumerate() {
            let at = format!("part {msn}.{j}");
            if let Some(r) = uri_problem(&part.uri) {
                must("uri-valid", format!("{at}: {r}"));
            }
            if !part.duration.is_finite() || part.duration < 0.0 {
                must(
                    "duration-valid",
                    format!("{at}: DURATION {}", part.duration),
                );
                continue;
            }
            let Some(pt) = p.part_inf else { continue };
            if part.duration > pt + CHECK_EPSILON {
                must(
                    "part-duration-max",
                    format!("{at}: DURATION {} > PART-TARGET {pt}", part.duration),
                );
            }
            // The last trailing part is exempt too: it may turn out to be
            // the final part of its parent.
            let is_last = j + 1 == parts.len();
            let next_gap = parts.get(j + 1).is_some_and(|n| n.gap);
            let exempt = part.independent || part.gap || next_gap || is_last;
            if !exempt && part.duration < 0.85 * pt - CHECK_EPSILON {
                must(
                    "part-duration-min",
                    format!(
                        "{at}: DURATION {} < 85% of PART-TARGET {pt} (not independent, gap or last)",
                        part.duration
                    ),
                );
            }
        }
    }

    // Server control.
    let sc = p.server_control.as_ref();
    if let Some(pt) = p.part_inf {
        match sc.and_then(|s| s.part_hold_back) {
            None => must(
                "part-hold-back-required",
                "EXT-X-PART-INF present without PART-HOLD-BACK".into(),
            ),
            Some(phb) if phb < 2.0 * pt - CHECK_EPSILON => must(
                "part-hold-back-min",
                format!("PART-HOLD-BACK {phb} < 2 x PART-TARGET {pt}"),
            ),
            Some(_) => {}
        }
    }
    if let Some(hb) = sc.and_then(|s| s.hold_back) {
        if hb < 3.0 * td - CHECK_EPSILON {
            must(
                "hold-back-min",
                format!("HOLD-BACK {hb} < 3 x TARGETDURATION {}", p.target_duration),
            );
        }
    }
    let can_skip_until = sc.and_then(|s| s.can_skip_until);
    if let Some(csu) = can_skip_until {
        if csu < 6.0 * td - CHECK_EPSILON {
            must(
                "can-skip-until-min",
                format!(
                    "CAN-SKIP-UNTIL {csu} < 6 x TARGETDURATION {}",
                    p.target_duration
                ),
            );
        }
    }
    if sc.is_some_and(|s| s.can_skip_dateranges) && can_skip_until.is_none() {
        must(
            "can-skip-dateranges-requires-can-skip-until",
            "CAN-SKIP-DATERANGES without CAN-SKIP-UNTIL".into(),
        );
    }

    // Delta updates, hints, versions.
    if p.skipped_segments > 0 {
        if p.version < 9 {
            must(
                "skip-version",
                format!(
                    "EXT-X-SKIP requires EXT-X-VERSION 9, playlist has {}",
                    p.version
                ),
            );
        }
        if can_skip_until.is_none() {
            must(
                "skip-without-can-skip-until",
                "EXT-X-SKIP in a playlist that does not advertise CAN-SKIP-UNTIL".into(),
            );
        }
    }
    if p.ended && !p.preload_hints.is_empty() {
        must(
            "preload-hint-with-endlist",
            "EXT-X-PRELOAD-HINT in a playlist with EXT-X-ENDLIST".into(),
        );
    }
    for h in &p.preload_hints {
        if let Some(r) = uri_problem(&h.uri) {
            must("uri-valid", format!("EXT-X-PRELOAD-HINT: {r}"));
        }
    }
    for r in &p.rendition_reports {
        if let Some(e) = uri_problem(&r.uri) {
            must("uri-valid", format!("EXT-X-RENDITION-REPORT: {e}"));
        }
    }
    // Version 0 means "no tag", which clients read as 1.
    let version = p.version.max(1);
    if !p.segments.is_empty() && version < 3 {
        must(
            "version-decimal-extinf",
            format!("decimal EXTINF durations require EXT-X-VERSION 3, playlist has {version}"),
        );
    }
    if p.map_uri.is_some() && version < 6 {
        must(
            "map-version",
            format!("EXT-X-MAP requires EXT-X-VERSION 6, playlist has {version}"),
        );
    }

    // SHOULD / policy.
    let mut should = |rule: &'static str, detail: String| {
        v.push(Violation {
            rule,
            detail,
            level: Level::Should,
        })
    };
    if let (Some(pt), Some(phb)) = (p.part_inf, sc.and_then(|s| s.part_hold_back)) {
        if phb >= 2.0 * pt - CHECK_EPSILON && phb < 3.0 * pt - CHECK_EPSILON {
            should(
                "part-hold-back-3x",
                format!("PART-HOLD-BACK {phb} < 3 x PART-TARGET {pt}"),
            );
        }
    }
    if p.part_inf.is_some() && !sc.is_some_and(|s| s.can_block_reload) {
        should(
            "ll-profile-block-reload",
            "playlist with parts does not advertise CAN-BLOCK-RELOAD=YES".into(),
        );
    }
    if !p.preload_hints.is_empty() && p.part_inf.is_none() {
        should(
            "preload-hint-without-parts",
            "EXT-X-PRELOAD-HINT in a playlist without EXT-X-PART-INF".into(),
        );
    }
    // Distance from each segment's end to the end of the playlist.
    let mut after = trailing_sum;
    for (i, s) in p.segments.iter().enumerate().rev() {
        let msn = msn0.saturating_add(i as u64);
        if !s.parts.is_empty() {
            if after > 3.0 * td + CHECK_EPSILON {
                should(
                    "parts-too-old",
                    format!(
                        "segment {msn} still lists parts but ends {after:.3} s before the end (> 3 x TARGETDURATION)"
                    ),
                );
            }
            let sum: f64 = s.parts.iter().map(|x| x.duration).sum();
            let tol = CHECK_EPSILON + 1e-5 * s.parts.len() as f64;
            if (sum - s.duration).abs() > tol {
                should(
                    "parts-sum",
                    format!(
                        "segment {msn}: parts add up to {sum:.5} s but EXTINF is {}",
                        s.duration
                    ),
                );
            }
        }
        if s.duration.is_finite() {
            after += s.duration;
        }
    }
    v
}

/// Why a URI would not survive the writer unchanged, if it would not.
pub(super) fn uri_problem(uri: &str) -> Option<&'static str> {
    if uri.is_empty() {
        Some("empty URI")
    } else if uri.chars().any(|c| c.is_control() || c == ' ' || c == '"') {
        Some("URI contains whitespace, control characters or '\"'")
    } else if uri.starts_with('#') {
        Some("URI starts with '#'")
    } else {
        None
    }
}
