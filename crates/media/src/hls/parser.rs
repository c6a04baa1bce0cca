//! Playlist text into the model, bounded ([`MAX_LINE_LEN`], [`MAX_LINES`],
//! [`MAX_ATTRS`]); hostile input gives a [`PlaylistError`], never a panic. Also the
//! one HLS attribute-list parser of the workspace ([`attribute_list`]). Not here:
//! writing or checking.

use super::*;

// ---------------------------------------------------------------------------
// Parser plumbing
// ---------------------------------------------------------------------------

/// Non-blank, trimmed lines with their 1-based numbers, limits enforced.
pub(super) struct Lines<'a> {
    inner: std::iter::Enumerate<std::str::Split<'a, char>>,
    seen: usize,
}

impl<'a> Lines<'a> {
    /// Checks the `#EXTM3U` header and positions after it.
    fn new(text: &'a str) -> Result<Self, PlaylistError> {
        let mut lines = Lines {
            inner: text.split('\n').enumerate(),
            seen: 0,
        };
        match lines.inner.next() {
            Some((_, first)) if first.len() <= MAX_LINE_LEN && first.trim_end() == "#EXTM3U" => {
                Ok(lines)
            }
            _ => Err(PlaylistError::MissingHeader),
        }
    }

    fn next_line(&mut self) -> Result<Option<(usize, &'a str)>, PlaylistError> {
        for (idx, raw) in self.inner.by_ref() {
            let line = idx + 1;
            if raw.len() > MAX_LINE_LEN {
                return Err(PlaylistError::LineTooLong {
                    line,
                    max: MAX_LINE_LEN,
                });
            }
            let t = raw.trim();
            if t.is_empty() {
                continue;
            }
            self.seen += 1;
            if self.seen > MAX_LINES {
                return Err(PlaylistError::TooManyLines(MAX_LINES));
            }
            if t.chars().any(char::is_control) {
                // The draft forbids control characters other than CR and LF.
                return Err(invalid(line, T_LINE, "control character"));
            }
            return Ok(Some((line, t)));
        }
        Ok(None)
    }
}

/// The tag name (`#EXT-X-PART`) and what follows its colon.
pub(super) fn split_tag(line: &str) -> (&str, &str) {
    match line.split_once(':') {
        Some((name, rest)) => (name, rest),
        None => (line, ""),
    }
}

pub(super) fn invalid(line: usize, tag: &'static str, reason: impl Into<String>) -> PlaylistError {
    PlaylistError::Invalid {
        line,
        tag,
        reason: reason.into(),
    }
}

/// decimal-integer: 1 to 20 ASCII digits that fit the target type.
pub(super) fn parse_int<T: std::str::FromStr>(
    s: &str,
    line: usize,
    tag: &'static str,
) -> Result<T, PlaylistError> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(line, tag, format!("not a decimal-integer: {s:?}")));
    }
    s.parse::<T>()
        .map_err(|_| invalid(line, tag, format!("integer out of range: {s}")))
}

/// decimal-floating-point: digits and at most one '.', at least one digit.
pub(super) fn parse_float(s: &str, line: usize, tag: &'static str) -> Result<f64, PlaylistError> {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let dots = s.bytes().filter(|b| *b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != s.len() {
        return Err(invalid(
            line,
            tag,
            format!("not a decimal-floating-point: {s:?}"),
        ));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(invalid(line, tag, format!("number out of range: {s:?}"))),
    }
}

#[derive(Clone, Copy)]
pub(super) enum AttrValue<'a> {
    Quoted(&'a str),
    Plain(&'a str),
}

/// The attributes of one HLS attribute-list (`NAME=VALUE,NAME="quoted",…`, the text
/// after a tag's colon), in order, quoted values without their quotes. The same
/// parser the playlist parsers use, bounded by [`MAX_ATTRS`]; for code that reads tags
/// this model does not know (SCTE-35 `EXT-X-DATERANGE`, `EXT-X-MEDIA`).
pub fn attribute_list(text: &str) -> Result<Vec<(String, String)>, PlaylistError> {
    let attrs = Attrs::parse(text, 0, "attribute-list")?;
    Ok(attrs
        .items
        .iter()
        .map(|(name, value)| {
            let v = match value {
                AttrValue::Quoted(v) | AttrValue::Plain(v) => v,
            };
            ((*name).to_string(), (*v).to_string())
        })
        .collect())
}

/// A parsed attribute-list with typed accessors that produce line-tagged errors.
pub(super) struct Attrs<'a> {
    items: Vec<(&'a str, AttrValue<'a>)>,
    line: usize,
    tag: &'static str,
}

impl<'a> Attrs<'a> {
    fn parse(s: &'a str, line: usize, tag: &'static str) -> Result<Self, PlaylistError> {
        let mut items: Vec<(&'a str, AttrValue<'a>)> = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let Some((name, after)) = rest.split_once('=') else {
                return Err(invalid(
                    line,
                    tag,
                    format!("attribute without '=': {rest:?}"),
                ));
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(line, tag, format!("bad attribute name {name:?}")));
            }
            let (value, after_value) = if let Some(q) = after.strip_prefix('"') {
                let Some(end) = q.find('"') else {
                    return Err(invalid(line, tag, "unterminated quoted-string"));
                };
                (AttrValue::Quoted(&q[..end]), &q[end + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (AttrValue::Plain(&after[..end]), &after[end..])
            };
            if items.len() >= MAX_ATTRS {
                return Err(invalid(
                    line,
                    tag,
                    format!("more than {MAX_ATTRS} attributes"),
                ));
            }
            if items.iter().any(|(n, _)| *n == name) {
                return Err(invalid(line, tag, format!("attribute {name} repeated")));
            }
            items.push((name, value));
            rest = if after_value.is_empty() {
                after_value
            } else if let Some(r) = after_value.strip_prefix(',') {
                if r.is_empty() {
                    return Err(invalid(line, tag, "trailing ','"));
                }
                r
            } else {
                return Err(invalid(line, tag, "expected ',' after quoted-string"));
            };
        }
        Ok(Attrs { items, line, tag })
    }

    fn get(&self, name: &str) -> Option<AttrValue<'a>> {
        self.items.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn quoted(&self, name: &'static str) -> Result<Option<&'a str>, PlaylistError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Quoted(v)) => Ok(Some(v)),
            Some(AttrValue::Plain(_)) => Err(invalid(
                self.line,
                self.tag,
                format!("{name} must be a quoted-string"),
            )),
        }
    }

    fn plain(&self, name: &'static str) -> Result<Option<&'a str>, PlaylistError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Plain(v)) => Ok(Some(v)),
            Some(AttrValue::Quoted(_)) => Err(invalid(
                self.line,
                self.tag,
                format!("{name} must not be quoted"),
            )),
        }
    }

    fn required<T>(&self, name: &'static str, v: Option<T>) -> Result<T, PlaylistError> {
        v.ok_or(PlaylistError::MissingAttribute {
            line: self.line,
            tag: self.tag,
            attribute: name,
        })
    }

    fn req_quoted(&self, name: &'static str) -> Result<&'a str, PlaylistError> {
        let v = self.quoted(name)?;
        self.required(name, v)
    }

    fn int(&self, name: &'static str) -> Result<Option<u64>, PlaylistError> {
        self.plain(name)?
            .map(|v| parse_int(v, self.line, self.tag))
            .transpose()
    }

    fn float(&self, name: &'static str) -> Result<Option<f64>, PlaylistError> {
        self.plain(name)?
            .map(|v| parse_float(v, self.line, self.tag))
            .transpose()
    }

    /// Enumerated `YES`/`NO`; absent means false.
    fn yes(&self, name: &'static str) -> Result<bool, PlaylistError> {
        match self.plain(name)? {
            None | Some("NO") => Ok(false),
            Some("YES") => Ok(true),
            Some(other) => Err(invalid(
                self.line,
                self.tag,
                format!("{name} must be YES or NO, got {other:?}"),
            )),
        }
    }
}

// Tag names, so errors can carry `&'static str`.
pub(super) const T_VERSION: &str = "#EXT-X-VERSION";
pub(super) const T_TARGET: &str = "#EXT-X-TARGETDURATION";
pub(super) const T_PART_INF: &str = "#EXT-X-PART-INF";
pub(super) const T_SERVER_CONTROL: &str = "#EXT-X-SERVER-CONTROL";
pub(super) const T_MEDIA_SEQ: &str = "#EXT-X-MEDIA-SEQUENCE";
pub(super) const T_DISC_SEQ: &str = "#EXT-X-DISCONTINUITY-SEQUENCE";
pub(super) const T_INDEPENDENT: &str = "#EXT-X-INDEPENDENT-SEGMENTS";
pub(super) const T_PLAYLIST_TYPE: &str = "#EXT-X-PLAYLIST-TYPE";
pub(super) const T_MAP: &str = "#EXT-X-MAP";
pub(super) const T_SKIP: &str = "#EXT-X-SKIP";
pub(super) const T_EXTINF: &str = "#EXTINF";
pub(super) const T_DISCONTINUITY: &str = "#EXT-X-DISCONTINUITY";
pub(super) const T_PDT: &str = "#EXT-X-PROGRAM-DATE-TIME";
pub(super) const T_GAP: &str = "#EXT-X-GAP";
pub(super) const T_PART: &str = "#EXT-X-PART";
pub(super) const T_PRELOAD: &str = "#EXT-X-PRELOAD-HINT";
pub(super) const T_REPORT: &str = "#EXT-X-RENDITION-REPORT";
pub(super) const T_ENDLIST: &str = "#EXT-X-ENDLIST";
pub(super) const T_KEY: &str = "#EXT-X-KEY";
pub(super) const T_BYTERANGE: &str = "#EXT-X-BYTERANGE";
pub(super) const T_IFRAMES_ONLY: &str = "#EXT-X-I-FRAMES-ONLY";
pub(super) const T_EXTM3U: &str = "#EXTM3U";
pub(super) const T_STREAM_INF: &str = "#EXT-X-STREAM-INF";
pub(super) const T_IFRAME_STREAM_INF: &str = "#EXT-X-I-FRAME-STREAM-INF";
pub(super) const T_MEDIA: &str = "#EXT-X-MEDIA";
pub(super) const T_SESSION_DATA: &str = "#EXT-X-SESSION-DATA";
pub(super) const T_SESSION_KEY: &str = "#EXT-X-SESSION-KEY";
pub(super) const T_STEERING: &str = "#EXT-X-CONTENT-STEERING";
pub(super) const T_URI_LINE: &str = "URI line";
pub(super) const T_LINE: &str = "line";

pub(super) fn once<T>(
    slot: &mut Option<T>,
    v: T,
    line: usize,
    tag: &'static str,
) -> Result<(), PlaylistError> {
    if slot.is_some() {
        return Err(PlaylistError::Duplicate { line, tag });
    }
    *slot = Some(v);
    Ok(())
}

pub(super) fn once_flag(
    slot: &mut bool,
    line: usize,
    tag: &'static str,
) -> Result<(), PlaylistError> {
    if *slot {
        return Err(PlaylistError::Duplicate { line, tag });
    }
    *slot = true;
    Ok(())
}

pub(super) fn parse_part(value: &str, line: usize) -> Result<Part, PlaylistError> {
    let a = Attrs::parse(value, line, T_PART)?;
    if a.has("BYTERANGE") {
        return Err(PlaylistError::Unsupported { line, tag: T_PART });
    }
    let duration = a.float("DURATION")?;
    Ok(Part {
        uri: a.req_quoted("URI")?.to_string(),
        duration: a.required("DURATION", duration)?,
        independent: a.yes("INDEPENDENT")?,
        gap: a.yes("GAP")?,
    })
}

#[derive(Default)]
pub(super) struct MediaParser {
    p: MediaPlaylist,
    version: Option<u8>,
    target: Option<u64>,
    media_seq: Option<u64>,
    disc_seq: Option<u64>,
    part_inf: Option<f64>,
    server_control: Option<ServerControl>,
    playlist_type: Option<PlaylistType>,
    skip: Option<u64>,
    independent: bool,
    ended: bool,
    /// Tags collected for the segment whose URI line has not come yet.
    pending: MediaSegment,
    pending_extinf: Option<f64>,
    /// A map was seen after the first segment or part (cannot be modelled).
    segments_started: bool,
}

impl MediaParser {
    pub(super) fn run(mut self, text: &str) -> Result<MediaPlaylist, PlaylistError> {
        let mut lines = Lines::new(text)?;
        while let Some((line, l)) = lines.next_line()? {
            if l.starts_with('#') {
                if l.starts_with("#EXT") {
                    self.tag(line, l)?;
                }
                // Other '#' lines are comments.
            } else {
                let Some(duration) = self.pending_extinf.take() else {
                    return Err(invalid(
                        line,
                        T_URI_LINE,
                        "URI line without a preceding #EXTINF",
                    ));
                };
                let mut seg = std::mem::take(&mut self.pending);
                seg.uri = l.to_string();
                seg.duration = duration;
                self.p.segments.push(seg);
            }
        }
        if self.pending_extinf.is_some() {
            return Err(invalid(
                0,
                T_EXTINF,
                "#EXTINF without a URI line at end of playlist",
            ));
        }
        if self.pending.gap {
            return Err(invalid(
                0,
                T_GAP,
                "#EXT-X-GAP without a segment at end of playlist",
            ));
        }
        let mut p = self.p;
        p.version = self.version.unwrap_or(0);
        p.target_duration = self.target.ok_or(PlaylistError::MissingTag(T_TARGET))?;
        p.media_sequence = self.media_seq.unwrap_or(0);
        p.discontinuity_sequence = self.disc_seq.unwrap_or(0);
        p.part_inf = self.part_inf;
        p.server_control = self.server_control;
        p.playlist_type = self.playlist_type;
        p.skipped_segments = self.skip.unwrap_or(0);
        p.independent_segments = self.independent;
        p.ended = self.ended;
        p.trailing_discontinuity = self.pending.discontinuity;
        p.trailing_program_date_time = self.pending.program_date_time;
        p.trailing_parts = self.pending.parts;
        Ok(p)
    }

    fn tag(&mut self, line: usize, l: &str) -> Result<(), PlaylistError> {
        let (name, value) = split_tag(l);
        match name {
            T_EXTM3U => {
                return Err(PlaylistError::Duplicate {
                    line,
                    tag: T_EXTM3U,
                })
            }
            T_VERSION => {
                let v = parse_int::<u8>(value, line, T_VERSION)?;
                once(&mut self.version, v, line, T_VERSION)?;
            }
            T_TARGET => {
                let v = parse_int::<u64>(value, line, T_TARGET)?;
                once(&mut self.target, v, line, T_TARGET)?;
            }
            T_MEDIA_SEQ => {
                let v = parse_int::<u64>(value, line, T_MEDIA_SEQ)?;
                once(&mut self.media_seq, v, line, T_MEDIA_SEQ)?;
            }
            T_DISC_SEQ => {
                let v = parse_int::<u64>(value, line, T_DISC_SEQ)?;
                once(&mut self.disc_seq, v, line, T_DISC_SEQ)?;
            }
            T_INDEPENDENT => once_flag(&mut self.independent, line, T_INDEPENDENT)?,
            T_ENDLIST => once_flag(&mut self.ended, line, T_ENDLIST)?,
            T_PLAYLIST_TYPE => {
                let t = match value {
                    "VOD" => PlaylistType::Vod,
                    "EVENT" => PlaylistType::Event,
                    _ => {
                        return Err(invalid(
                            line,
                            T_PLAYLIST_TYPE,
                            format!("unknown type {value:?}"),
                        ))
                    }
                };
                once(&mut self.playlist_type, t, line, T_PLAYLIST_TYPE)?;
            }
            T_PART_INF => {
                let a = Attrs::parse(value, line, T_PART_INF)?;
                let pt = a.float("PART-TARGET")?;
                let pt = a.required("PART-TARGET", pt)?;
                once(&mut self.part_inf, pt, line, T_PART_INF)?;
            }
            T_SERVER_CONTROL => {
                let a = Attrs::parse(value, line, T_SERVER_CONTROL)?;
                let sc = ServerControl {
                    can_block_reload: a.yes("CAN-BLOCK-RELOAD")?,
                    can_skip_until: a.float("CAN-SKIP-UNTIL")?,
                    can_skip_dateranges: a.yes("CAN-SKIP-DATERANGES")?,
                    hold_back: a.float("HOLD-BACK")?,
                    part_hold_back: a.float("PART-HOLD-BACK")?,
                };
                once(&mut self.server_control, sc, line, T_SERVER_CONTROL)?;
            }
            T_MAP => {
                let a = Attrs::parse(value, line, T_MAP)?;
                if a.has("BYTERANGE") {
                    return Err(PlaylistError::Unsupported { line, tag: T_MAP });
                }
                let uri = a.req_quoted("URI")?;
                match &self.p.map_uri {
                    None if !self.segments_started() => self.p.map_uri = Some(uri.to_string()),
                    Some(existing) if existing == uri => {}
                    _ => return Err(PlaylistError::Unsupported { line, tag: T_MAP }),
                }
            }
            T_SKIP => {
                let a = Attrs::parse(value, line, T_SKIP)?;
                if a.has("RECENTLY-REMOVED-DATERANGES") {
                    return Err(PlaylistError::Unsupported { line, tag: T_SKIP });
                }
                let n = a.int("SKIPPED-SEGMENTS")?;
                let n = a.required("SKIPPED-SEGMENTS", n)?;
                if self.segments_started() {
                    return Err(invalid(line, T_SKIP, "must precede every segment"));
                }
                once(&mut self.skip, n, line, T_SKIP)?;
            }
            T_EXTINF => {
                if self.pending_extinf.is_some() {
                    return Err(invalid(line, T_EXTINF, "two #EXTINF without a URI line"));
                }
                let dur = value.split_once(',').map_or(value, |(d, _title)| d).trim();
                self.pending_extinf = Some(parse_float(dur, line, T_EXTINF)?);
            }
            T_DISCONTINUITY => {
                self.pending.discontinuity = true;
            }
            T_PDT => {
                if value.is_empty() {
                    return Err(invalid(line, T_PDT, "empty date-time"));
                }
                self.pending.program_date_time = Some(value.to_string());
            }
            T_GAP => self.pending.gap = true,
            T_PART => {
                if self.pending_extinf.is_some() {
                    return Err(invalid(line, T_PART, "between #EXTINF and its URI line"));
                }
                let part = parse_part(value, line)?;
                self.pending.parts.push(part);
            }
            T_PRELOAD => {
                let a = Attrs::parse(value, line, T_PRELOAD)?;
                let t = a.plain("TYPE")?;
                let hint_type = match a.required("TYPE", t)? {
                    "PART" => PreloadHintType::Part,
                    "MAP" => PreloadHintType::Map,
                    other => {
                        return Err(invalid(line, T_PRELOAD, format!("unknown TYPE {other:?}")))
                    }
                };
                self.p.preload_hints.push(PreloadHint {
                    hint_type,
                    uri: a.req_quoted("URI")?.to_string(),
                    byterange_start: a.int("BYTERANGE-START")?,
                    byterange_length: a.int("BYTERANGE-LENGTH")?,
                });
            }
            T_REPORT => {
                let a = Attrs::parse(value, line, T_REPORT)?;
                let msn = a.int("LAST-MSN")?;
                self.p.rendition_reports.push(RenditionReport {
                    uri: a.req_quoted("URI")?.to_string(),
                    last_msn: a.required("LAST-MSN", msn)?,
                    last_part: a.int("LAST-PART")?,
                });
            }
            T_KEY => {
                let a = Attrs::parse(value, line, T_KEY)?;
                if a.plain("METHOD")? != Some("NONE") {
                    return Err(PlaylistError::Unsupported { line, tag: T_KEY });
                }
            }
            T_BYTERANGE => {
                return Err(PlaylistError::Unsupported {
                    line,
                    tag: T_BYTERANGE,
                })
            }
            T_IFRAMES_ONLY => {
                return Err(PlaylistError::Unsupported {
                    line,
                    tag: T_IFRAMES_ONLY,
                })
            }
            T_STREAM_INF => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_STREAM_INF,
                })
            }
            T_IFRAME_STREAM_INF => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_IFRAME_STREAM_INF,
                })
            }
            T_MEDIA => return Err(PlaylistError::WrongKind { line, tag: T_MEDIA }),
            T_SESSION_DATA => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_SESSION_DATA,
                })
            }
            T_SESSION_KEY => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_SESSION_KEY,
                })
            }
            T_STEERING => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: T_STEERING,
                })
            }
            _ => {} // unknown tags are ignored, as the draft requires of clients
        }
        if name == T_PART || name == T_EXTINF {
            self.segments_started = true;
        }
        Ok(())
    }

    fn segments_started(&self) -> bool {
        self.segments_started || !self.p.segments.is_empty()
    }
}

pub(super) fn parse_resolution(s: &str, line: usize) -> Result<(u32, u32), PlaylistError> {
    let Some((w, h)) = s.split_once('x') else {
        return Err(invalid(line, T_STREAM_INF, format!("bad RESOLUTION {s:?}")));
    };
    Ok((
        parse_int::<u32>(w, line, T_STREAM_INF)?,
        parse_int::<u32>(h, line, T_STREAM_INF)?,
    ))
}

pub(super) fn parse_multivariant(text: &str) -> Result<MultivariantPlaylist, PlaylistError> {
    let mut lines = Lines::new(text)?;
    let mut p = MultivariantPlaylist::default();
    let mut version: Option<u8> = None;
    let mut pending: Option<Variant> = None;
    while let Some((line, l)) = lines.next_line()? {
        if !l.starts_with('#') {
            let Some(mut v) = pending.take() else {
                return Err(invalid(
                    line,
                    T_URI_LINE,
                    "URI line without a preceding #EXT-X-STREAM-INF",
                ));
            };
            v.uri = l.to_string();
            p.variants.push(v);
            continue;
        }
        if !l.starts_with("#EXT") {
            continue;
        }
        let (name, value) = split_tag(l);
        match name {
            T_EXTM3U => {
                return Err(PlaylistError::Duplicate {
                    line,
                    tag: T_EXTM3U,
                })
            }
            T_VERSION => {
                let v = parse_int::<u8>(value, line, T_VERSION)?;
                once(&mut version, v, line, T_VERSION)?;
            }
            T_INDEPENDENT => once_flag(&mut p.independent_segments, line, T_INDEPENDENT)?,
            T_STEERING => {
                let a = Attrs::parse(value, line, T_STEERING)?;
                let cs = ContentSteering {
                    server_uri: a.req_quoted("SERVER-URI")?.to_string(),
                    pathway_id: a.quoted("PATHWAY-ID")?.map(str::to_string),
                };
                once(&mut p.content_steering, cs, line, T_STEERING)?;
            }
            T_SESSION_DATA => {
                let a = Attrs::parse(value, line, T_SESSION_DATA)?;
                let id = a.req_quoted("DATA-ID")?;
                // The URI= form cannot be held by the model and is skipped.
                if let Some(v) = a.quoted("VALUE")? {
                    p.session_data.push((id.to_string(), v.to_string()));
                }
            }
            T_STREAM_INF => {
                if pending.is_some() {
                    return Err(invalid(
                        line,
                        T_STREAM_INF,
                        "two #EXT-X-STREAM-INF without a URI line",
                    ));
                }
                let a = Attrs::parse(value, line, T_STREAM_INF)?;
                let bw = a.int("BANDWIDTH")?;
                pending = Some(Variant {
                    uri: String::new(),
                    bandwidth: a.required("BANDWIDTH", bw)?,
                    average_bandwidth: a.int("AVERAGE-BANDWIDTH")?,
                    codecs: a.quoted("CODECS")?.map(str::to_string),
                    resolution: a
                        .plain("RESOLUTION")?
                        .map(|r| parse_resolution(r, line))
                        .transpose()?,
                    frame_rate: a.float("FRAME-RATE")?,
                    pathway_id: a.quoted("PATHWAY-ID")?.map(str::to_string),
                });
            }
            T_EXTINF | T_TARGET | T_MEDIA_SEQ | T_PART | T_PART_INF | T_SKIP | T_ENDLIST
            | T_SERVER_CONTROL | T_PRELOAD | T_MAP | T_PLAYLIST_TYPE => {
                return Err(PlaylistError::WrongKind {
                    line,
                    tag: media_tag_name(name),
                })
            }
            _ => {} // EXT-X-MEDIA, EXT-X-SESSION-KEY, unknown tags: not modelled
        }
    }
    if pending.is_some() {
        return Err(invalid(
            0,
            T_STREAM_INF,
            "#EXT-X-STREAM-INF without a URI line at end of playlist",
        ));
    }
    p.version = version.unwrap_or(0);
    Ok(p)
}

/// Map a matched media-playlist tag name back to its `'static` constant.
pub(super) fn media_tag_name(name: &str) -> &'static str {
    [
        T_EXTINF,
        T_TARGET,
        T_MEDIA_SEQ,
        T_PART,
        T_PART_INF,
        T_SKIP,
        T_ENDLIST,
        T_SERVER_CONTROL,
        T_PRELOAD,
        T_MAP,
        T_PLAYLIST_TYPE,
    ]
    .into_iter()
    .find(|t| *t == name)
    .unwrap_or(T_EXTINF)
}

// ---------------------------------------------------------------------------
// Checker
// ---------------------------------------------------------------------------
