//! Common Media Client Data (CTA-5004) parsing and Common Media Server Data
//! (CTA-5006) response header values.
//!
//! What this is for: reading the `CMCD` query parameter or the `CMCD-Request`,
//! `CMCD-Object`, `CMCD-Status` and `CMCD-Session` headers a player sends, so
//! the edge can log session id, bitrate, buffer state and so on; and writing
//! the `CMSD-Static` / `CMSD-Dynamic` values the edge answers with.
//!
//! What this is not: a full RFC 8941 Structured Field parser, nor a source of
//! truth. CMCD is client-supplied and unauthenticated, so values are only fit
//! for logs and metrics, never for access or caching decisions. Parsing is
//! tolerant: an item that does not parse, or a known key with a value of the
//! wrong type, is dropped and the rest is kept. Unknown keys (custom keys,
//! CMCD v2 keys) land in [`Cmcd::other`], at most [`MAX_OTHER`] of them.
//! When a key repeats, the last value wins.

use percent_encoding::percent_decode_str;

/// Longest CMCD payload accepted (decoded query value, or all four headers
/// together), in bytes.
pub const MAX_CMCD_LEN: usize = 4096;
/// Most unknown keys kept in [`Cmcd::other`].
pub const MAX_OTHER: usize = 32;
/// Longest key accepted.
const MAX_KEY_LEN: usize = 64;
/// Structured-field integers have at most 15 digits.
const MAX_INT_DIGITS: usize = 15;
const MAX_SF_INT: u64 = 999_999_999_999_999;
/// Longest value written per field by [`Cmcd::log_fields`].
const MAX_LOG_VALUE: usize = 96;

/// The CTA-5004 keys a player may send. Integers are as sent (kbps, ms).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cmcd {
    /// Encoded bitrate, kbps.
    pub br: Option<u64>,
    /// Buffer length, ms.
    pub bl: Option<u64>,
    /// Buffer starvation since the last request.
    pub bs: bool,
    /// Content id.
    pub cid: Option<String>,
    /// Object duration, ms.
    pub d: Option<u64>,
    /// Deadline, ms.
    pub dl: Option<u64>,
    /// Measured throughput, kbps.
    pub mtp: Option<u64>,
    /// Next object request (relative URL).
    pub nor: Option<String>,
    /// Next range request.
    pub nrr: Option<String>,
    /// Object type (`m`, `a`, `v`, `av`, `i`, `c`, `tt`, `k`, `o`).
    pub ot: Option<String>,
    /// Playback rate.
    pub pr: Option<f64>,
    /// Requested maximum throughput, kbps.
    pub rtp: Option<u64>,
    /// Streaming format (`d`, `h`, `s`, `o`).
    pub sf: Option<String>,
    /// Session id.
    pub sid: Option<String>,
    /// Stream type (`v`, `l`).
    pub st: Option<String>,
    /// Startup.
    pub su: bool,
    /// Top bitrate, kbps.
    pub tb: Option<u64>,
    /// CMCD version (absent means 1).
    pub v: Option<u64>,
    /// Other keys with their values (strings unquoted, bare keys as `true`).
    pub other: Vec<(String, String)>,
}

/// One value as written on the wire.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Bool(bool),
    Str(String),
    Token(String),
}

impl Value {
    fn into_text(self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Str(s) | Value::Token(s) => s,
        }
    }

    fn into_string(self) -> Option<String> {
        match self {
            Value::Str(s) | Value::Token(s) => Some(s),
            Value::Bool(_) => None,
        }
    }
}

/// Finds the first `CMCD` parameter in `query` (with or without a leading
/// `?`), percent-decodes it and parses it. `None` when there is no such
/// parameter, or it is too long or not UTF-8 once decoded.
pub fn parse_query(query: &str) -> Option<Cmcd> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("CMCD="))?;
    // Each decoded byte takes at most three encoded ones.
    if raw.len() > MAX_CMCD_LEN * 3 {
        return None;
    }
    let decoded = percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.len() > MAX_CMCD_LEN {
        return None;
    }
    let mut c = Cmcd::default();
    c.merge(&decoded);
    Some(c)
}

/// Parses and merges the `CMCD-Request`, `CMCD-Object`, `CMCD-Status` and
/// `CMCD-Session` header values. Any key is accepted in any header. `None`
/// when all are absent or together longer than [`MAX_CMCD_LEN`].
pub fn parse_headers(
    request: Option<&str>,
    object: Option<&str>,
    status: Option<&str>,
    session: Option<&str>,
) -> Option<Cmcd> {
    let parts = [request, object, status, session];
    if parts.iter().all(Option::is_none) {
        return None;
    }
    let total: usize = parts.iter().flatten().map(|p| p.len()).sum();
    if total > MAX_CMCD_LEN {
        return None;
    }
    let mut c = Cmcd::default();
    for p in parts.into_iter().flatten() {
        c.merge(p);
    }
    Some(c)
}

impl Cmcd {
    /// Parses `key=value,key,...` and sets the fields found.
    fn merge(&mut self, text: &str) {
        for (key, value) in Items::new(text) {
            self.set(key, value);
        }
    }

    fn set(&mut self, key: &str, value: Value) {
        match key {
            "br" => set_int(&mut self.br, value),
            "bl" => set_int(&mut self.bl, value),
            "d" => set_int(&mut self.d, value),
            "dl" => set_int(&mut self.dl, value),
            "mtp" => set_int(&mut self.mtp, value),
            "rtp" => set_int(&mut self.rtp, value),
            "tb" => set_int(&mut self.tb, value),
            "v" => set_int(&mut self.v, value),
            "bs" => set_bool(&mut self.bs, value),
            "su" => set_bool(&mut self.su, value),
            "cid" => set_str(&mut self.cid, value),
            "nor" => set_str(&mut self.nor, value),
            "nrr" => set_str(&mut self.nrr, value),
            "sid" => set_str(&mut self.sid, value),
            "ot" => set_str(&mut self.ot, value),
            "sf" => set_str(&mut self.sf, value),
            "st" => set_str(&mut self.st, value),
            "pr" => {
                if let Value::Token(t) = value {
                    if let Some(x) = parse_decimal(&t) {
                        self.pr = Some(x);
                    }
                }
            }
            _ => {
                let text = value.into_text();
                if let Some(slot) = self.other.iter_mut().find(|(k, _)| k == key) {
                    slot.1 = text;
                } else if self.other.len() < MAX_OTHER {
                    self.other.push((key.to_owned(), text));
                }
            }
        }
    }

    /// A compact, space-separated `key=value` summary for the access log,
    /// e.g. `sid=6e2f… br=3200 bl=21300 bs=1 ot=v`. Values keep only
    /// `A-Z a-z 0-9 - . _ : / @ + %`; anything else (spaces, quotes, `=`,
    /// control characters, non-ASCII) becomes `_`, and each value is cut to
    /// 96 bytes. Empty strings and unknown keys are left out.
    pub fn log_fields(&self) -> String {
        let mut out = String::new();
        let mut put = |k: &str, v: &str| {
            if v.is_empty() {
                return;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            out.extend(v.chars().take(MAX_LOG_VALUE).map(|c| {
                if c.is_ascii_alphanumeric() || "-._:/@+%".contains(c) {
                    c
                } else {
                    '_'
                }
            }));
        };
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        let n = |o: Option<u64>| o.map(|x| x.to_string()).unwrap_or_default();
        put("sid", &s(&self.sid));
        put("cid", &s(&self.cid));
        put("ot", &s(&self.ot));
        put("sf", &s(&self.sf));
        put("st", &s(&self.st));
        put("br", &n(self.br));
        put("tb", &n(self.tb));
        put("bl", &n(self.bl));
        put("bs", if self.bs { "1" } else { "" });
        put("su", if self.su { "1" } else { "" });
        put("mtp", &n(self.mtp));
        put("rtp", &n(self.rtp));
        put("d", &n(self.d));
        put("dl", &n(self.dl));
        put("pr", &self.pr.map(|x| x.to_string()).unwrap_or_default());
        put("nor", &s(&self.nor));
        put("nrr", &s(&self.nrr));
        put("v", &n(self.v));
        out
    }
}

fn set_int(slot: &mut Option<u64>, v: Value) {
    if let Value::Token(t) = v {
        if !t.is_empty() && t.len() <= MAX_INT_DIGITS && t.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(x) = t.parse() {
                *slot = Some(x);
            }
        }
    }
}

fn set_bool(slot: &mut bool, v: Value) {
    if let Value::Bool(b) = v {
        *slot = b;
    }
}

fn set_str(slot: &mut Option<String>, v: Value) {
    if let Some(s) = v.into_string() {
        *slot = Some(s);
    }
}

/// A non-negative decimal like `1`, `1.5` or `.5`; finite.
fn parse_decimal(t: &str) -> Option<f64> {
    let ok = !t.is_empty()
        && t.len() <= 20
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|b| *b == b'.').count() <= 1
        && t.bytes().any(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    t.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY_LEN
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'*'))
}

/// Iterator over `key[=value]` items separated by commas outside quotes.
struct Items<'a> {
    rest: &'a str,
}

impl<'a> Items<'a> {
    fn new(text: &'a str) -> Self {
        Items { rest: text }
    }

    /// Reads one item; `None` inside means "skip it".
    fn item(&mut self) -> Option<(&'a str, Value)> {
        let s = self.rest.trim_start_matches([' ', '\t']);
        let key_end = s.find(['=', ',']).unwrap_or(s.len());
        let key = s[..key_end].trim_matches([' ', '\t']);
        let after = &s[key_end..];
        if let Some(v) = after.strip_prefix('=') {
            let v = v.trim_start_matches([' ', '\t']);
            if let Some(q) = v.strip_prefix('"') {
                let (text, used) = match read_quoted(q) {
                    Some(x) => x,
                    None => {
                        // Unterminated string: drop the rest.
                        self.rest = "";
                        return None;
                    }
                };
                self.rest = skip_to_comma(&q[used..]);
                return valid_key(key).then_some((key, Value::Str(text)));
            }
            let end = v.find(',').unwrap_or(v.len());
            let tok = v[..end].trim_matches([' ', '\t']);
            self.rest = skip_to_comma(&v[end..]);
            if !valid_key(key) {
                return None;
            }
            let value = match tok {
                "?1" => Value::Bool(true),
                "?0" => Value::Bool(false),
                t => Value::Token(t.to_owned()),
            };
            Some((key, value))
        } else {
            self.rest = skip_to_comma(after);
            valid_key(key).then_some((key, Value::Bool(true)))
        }
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = (&'a str, Value);

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            if let Some(x) = self.item() {
                return Some(x);
            }
        }
        None
    }
}

/// Text after the next comma (or empty).
fn skip_to_comma(s: &str) -> &str {
    match s.find(',') {
        Some(i) => &s[i + 1..],
        None => "",
    }
}

/// Reads a quoted string body (after the opening quote) with `\"` and `\\`
/// escapes; returns the text and the bytes used including the closing quote.
fn read_quoted(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// The `CMSD-Static` value for an object at `path`: `ot` and `sf` guessed
/// from the file name, and `st` from `live` (`l` or `v`), keys in
/// alphabetical order, e.g. `ot=m,sf=h,st=l`.
///
/// The guess: `.m3u8` is an HLS manifest, `.mpd` a DASH one, `.ts` muxed
/// audio+video HLS, packed audio (`.aac`, `.ac3`, `.ec3`, `.mp3`) HLS audio,
/// `.vtt`/`.ttml` captions, `.key` a key. For fMP4 (`.m4s`, `.mp4`, `.cmf*`)
/// a file name starting with or containing `init` is an init segment, and the
/// track comes from mediamesh's naming (`v-…`/`a-…` files, `….v`/`….a`
/// rendition directories, `video`/`audio` in the path). What the path cannot
/// tell is left out rather than guessed.
///
/// A static string (one of a few), so the hit path formats nothing per request.
pub fn cmsd_static(path: &str, live: bool) -> &'static str {
    // `ot`/`sf` prefix, then `st`: every combination is a literal.
    macro_rules! st {
        ($prefix:literal) => {
            if live {
                concat!($prefix, "st=l")
            } else {
                concat!($prefix, "st=v")
            }
        };
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let parent = dir.rsplit('/').next().unwrap_or("");
    let (stem, ext) = file.rsplit_once('.').unwrap_or((file, ""));
    // The extension in lower case, on the stack (none is longer than 6 letters).
    let mut lower = [0u8; 8];
    let ext: &[u8] = match lower.get_mut(..ext.len()) {
        Some(buf) => {
            buf.copy_from_slice(ext.as_bytes());
            buf.make_ascii_lowercase();
            buf
        }
        None => b"",
    };
    match ext {
        b"m3u8" | b"m3u" => st!("ot=m,sf=h,"),
        b"mpd" => st!("ot=m,sf=d,"),
        b"ts" => st!("ot=av,sf=h,"),
        b"aac" | b"ac3" | b"ec3" | b"mp3" => st!("ot=a,sf=h,"),
        b"vtt" | b"webvtt" | b"ttml" | b"dfxp" | b"srt" => st!("ot=c,"),
        b"key" => st!("ot=k,"),
        b"cmfa" | b"m4a" => st!("ot=a,"),
        b"cmfv" | b"m4v" => st!("ot=v,"),
        b"cmft" => st!("ot=tt,"),
        b"m4s" | b"mp4" | b"cmfi" | b"fmp4" => {
            if ext == b"cmfi" || starts_with_ci(stem, "init") || contains_ci(stem, "-init") {
                st!("ot=i,")
            } else if starts_with_ci(file, "v-")
                || ends_with_ci(parent, ".v")
                || contains_ci(dir, "video")
            {
                st!("ot=v,")
            } else if starts_with_ci(file, "a-")
                || ends_with_ci(parent, ".a")
                || contains_ci(dir, "audio")
            {
                st!("ot=a,")
            } else {
                st!("")
            }
        }
        _ => st!(""),
    }
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn contains_ci(s: &str, needle: &str) -> bool {
    s.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The `CMSD-Dynamic` value this edge adds: its id as a structured-field
/// string, with `etp` (estimated throughput, kbps) and `rtt` (ms) when known,
/// e.g. `"mediamesh-edge";etp=48000;rtt=12`. Characters outside printable
/// ASCII are dropped from `server_id`, `"` and `\` are escaped, and numbers
/// are capped at the structured-field maximum.
pub fn cmsd_dynamic(
    server_id: &str,
    estimated_throughput_kbps: Option<u64>,
    rtt_ms: Option<u64>,
) -> String {
    let mut out = String::from("\"");
    for c in server_id.chars().take(MAX_KEY_LEN * 4) {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
    if let Some(etp) = estimated_throughput_kbps {
        out.push_str(&format!(";etp={}", etp.min(MAX_SF_INT)));
    }
    if let Some(rtt) = rtt_ms {
        out.push_str(&format!(";rtt={}", rtt.min(MAX_SF_INT)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_QUERY: &str = "CMCD=bl%3D21300%2Cbr%3D3200%2Cbs%2Ccid%3D%22faec5fc2-ac30-11ea-bb37-0242ac130002%22%2Cd%3D4004%2Cmtp%3D25400%2Cot%3Dv%2Crtp%3D15000%2Csid%3D%226e2fb550-c457-11e9-bb97-0800200c9a66%22%2Ctb%3D6000";

    fn spec_expected() -> Cmcd {
        Cmcd {
            bl: Some(21300),
            br: Some(3200),
            bs: true,
            cid: Some("faec5fc2-ac30-11ea-bb37-0242ac130002".into()),
            d: Some(4004),
            mtp: Some(25400),
            ot: Some("v".into()),
            rtp: Some(15000),
            sid: Some("6e2fb550-c457-11e9-bb97-0800200c9a66".into()),
            tb: Some(6000),
            ..Cmcd::default()
        }
    }

    #[test]
    fn spec_query_example() {
        assert_eq!(parse_query(SPEC_QUERY), Some(spec_expected()));
        let q = format!("?a=1&{SPEC_QUERY}&b=2");
        assert_eq!(parse_query(&q), Some(spec_expected()));
        assert_eq!(parse_query("a=1&b=2"), None);
        assert_eq!(parse_query("xCMCD=br%3D1"), None);
        assert_eq!(parse_query("CMCD="), Some(Cmcd::default()));
    }

    #[test]
    fn spec_header_example() {
        let c = parse_headers(
            Some("bl=21300,dl=18500,mtp=48100,nor=\"../300kbps/track.m4v\",nrr=\"12323-48763\",su"),
            Some("br=3200,d=4004,ot=v,tb=6000"),
            Some("bs,rtp=15000"),
            Some("cid=\"faec5fc2-ac30-11ea-bb37-0242ac130002\",pr=1.08,sf=d,sid=\"6e2fb550-c457-11e9-bb97-0800200c9a66\",st=v"),
        )
        .unwrap();
        assert_eq!(c.bl, Some(21300));
        assert_eq!(c.dl, Some(18500));
        assert_eq!(c.mtp, Some(48100));
        assert_eq!(c.nor.as_deref(), Some("../300kbps/track.m4v"));
        assert_eq!(c.nrr.as_deref(), Some("12323-48763"));
        assert!(c.su && c.bs);
        assert_eq!(c.br, Some(3200));
        assert_eq!(c.pr, Some(1.08));
        assert_eq!(c.sf.as_deref(), Some("d"));
        assert_eq!(c.st.as_deref(), Some("v"));
        assert_eq!(c.rtp, Some(15000));
        assert!(c.other.is_empty());
        assert_eq!(parse_headers(None, None, None, None), None);
        assert_eq!(
            parse_headers(Some(""), None, None, None),
            Some(Cmcd::default())
        );
    }

    #[test]
    fn values_and_tolerance() {
        let c = parse_headers(
            Some(" br = 100 , bs=?0, su=?1,com.example-myKey=\"a,b\\\"c\",x-flag,br=200"),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(c.br, Some(200), "last value wins");
        assert!(!c.bs);
        assert!(c.su);
        assert_eq!(
            c.other,
            vec![
                ("com.example-myKey".into(), "a,b\"c".into()),
                ("x-flag".into(), "true".into())
            ]
        );

        // Junk items are dropped; the good ones survive.
        let c = parse_headers(
            Some(",,=,br=-5,bl=abc,d=1.5,tb=9999999999999999,mtp=12,pr=NaN,pr=inf,sid=\"ok\""),
            Some("bad key=1,bs=\"yes\",ot=\"v\",pr=.5,\u{0}\u{7f}é=1,v=2"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(c.br, None);
        assert_eq!(c.bl, None);
        assert_eq!(c.d, None);
        assert_eq!(c.tb, None);
        assert_eq!(c.mtp, Some(12));
        assert_eq!(c.pr, Some(0.5));
        assert_eq!(c.sid.as_deref(), Some("ok"));
        assert!(!c.bs);
        assert_eq!(c.ot.as_deref(), Some("v"));
        assert_eq!(c.v, Some(2));
        assert!(c.other.is_empty(), "{:?}", c.other);

        // Unterminated string ends parsing without losing earlier items.
        let c = parse_headers(Some("br=1,sid=\"abc,bl=2"), None, None, None).unwrap();
        assert_eq!(c.br, Some(1));
        assert_eq!(c.sid, None);
        assert_eq!(c.bl, None);
        // Text after a closing quote up to the comma is ignored.
        let c = parse_headers(Some("sid=\"a\"junk,br=3"), None, None, None).unwrap();
        assert_eq!(c.sid.as_deref(), Some("a"));
        assert_eq!(c.br, Some(3));
        // Trailing backslash inside a string.
        let c = parse_headers(Some("sid=\"a\\"), None, None, None).unwrap();
        assert_eq!(c, Cmcd::default());
    }

    #[test]
    fn limits() {
        let long = "a".repeat(MAX_CMCD_LEN + 1);
        assert_eq!(parse_headers(Some(&long), None, None, None), None);
        let half = "b".repeat(MAX_CMCD_LEN / 2 + 1);
        assert_eq!(parse_headers(Some(&half), Some(&half), None, None), None);
        assert_eq!(parse_query(&format!("CMCD={long}")), None);
        let many: Vec<String> = (0..100).map(|i| format!("k{i}=1")).collect();
        let c = parse_headers(Some(&many.join(",")), None, None, None).unwrap();
        assert_eq!(c.other.len(), MAX_OTHER);
        assert_eq!(parse_query("CMCD=%ff"), None);
    }

    #[test]
    fn log_fields_are_compact_and_safe() {
        let c = parse_query(SPEC_QUERY).unwrap();
        assert_eq!(
            c.log_fields(),
            "sid=6e2fb550-c457-11e9-bb97-0800200c9a66 cid=faec5fc2-ac30-11ea-bb37-0242ac130002 \
             ot=v br=3200 tb=6000 bl=21300 bs=1 mtp=25400 rtp=15000 d=4004"
        );
        assert_eq!(Cmcd::default().log_fields(), "");

        let evil = parse_headers(
            None,
            None,
            None,
            Some("sid=\"x\\\" admin=1\\nstatus=200\",cid=\"a\r\nb\tc=d\",nor=\"é/../\\\\x\""),
        )
        .unwrap();
        let line = evil.log_fields();
        assert_eq!(line, "sid=x__admin_1nstatus_200 cid=a__b_c_d nor=_/../_x");
        assert!(!line.contains(['"', '\n', '\r', '\\']));
        assert_eq!(line.split(' ').count(), 3);

        let big = Cmcd {
            sid: Some("z".repeat(1000)),
            ..Cmcd::default()
        };
        assert_eq!(big.log_fields().len(), 4 + MAX_LOG_VALUE);
    }

    #[test]
    fn cmsd_static_values() {
        assert_eq!(cmsd_static("/live/ch/index.m3u8", true), "ot=m,sf=h,st=l");
        assert_eq!(
            cmsd_static("/live/ch/index.mpd?x=1", true),
            "ot=m,sf=d,st=l"
        );
        assert_eq!(cmsd_static("/vod/a/seg1.ts", false), "ot=av,sf=h,st=v");
        assert_eq!(cmsd_static("/live/ch/720p/init.mp4", true), "ot=i,st=l");
        assert_eq!(cmsd_static("/vod/talk/v-init.mp4", false), "ot=i,st=v");
        assert_eq!(cmsd_static("/vod/talk/v-seg3.m4s", false), "ot=v,st=v");
        assert_eq!(cmsd_static("/vod/talk/a-seg3.m4s", false), "ot=a,st=v");
        assert_eq!(cmsd_static("/live/ch/720p.v/seg9.m4s", true), "ot=v,st=l");
        assert_eq!(cmsd_static("/live/ch/720p.a/seg9.m4s", true), "ot=a,st=l");
        assert_eq!(cmsd_static("/live/ch/720p/seg9.m4s", true), "st=l");
        assert_eq!(cmsd_static("/subs/en.vtt", false), "ot=c,st=v");
        assert_eq!(cmsd_static("", true), "st=l");
        assert_eq!(cmsd_static("/x/.m3u8", true), "ot=m,sf=h,st=l");
        // Case does not matter.
        assert_eq!(cmsd_static("/VOD/Talk/V-Seg3.M4S", false), "ot=v,st=v");
        assert_eq!(cmsd_static("/live/ch/720P.A/Init.MP4", true), "ot=i,st=l");
        assert_eq!(cmsd_static("/live/VIDEO/x.m4s", true), "ot=v,st=l");
        assert_eq!(cmsd_static("/live/ch/x-INIT.cmfv", true), "ot=v,st=l");
        assert_eq!(cmsd_static("/live/ch/x.CMFI", false), "ot=i,st=v");
        assert_eq!(cmsd_static("/a/b.TTML#frag", false), "ot=c,st=v");
        assert_eq!(cmsd_static("/a/b.AAC", true), "ot=a,sf=h,st=l");
        assert_eq!(cmsd_static("/a/noext", true), "st=l");
    }

    #[test]
    fn cmsd_dynamic_values() {
        assert_eq!(
            cmsd_dynamic("mediamesh-edge", Some(48000), Some(12)),
            "\"mediamesh-edge\";etp=48000;rtt=12"
        );
        assert_eq!(cmsd_dynamic("e1", None, None), "\"e1\"");
        assert_eq!(
            cmsd_dynamic("a\"b\\c\nd", None, Some(u64::MAX)),
            "\"a\\\"b\\\\cd\";rtt=999999999999999"
        );
    }
}
