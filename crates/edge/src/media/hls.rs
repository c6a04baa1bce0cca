//! The little HLS syntax the media functions need: attribute lists
//! (`KEY=VALUE,KEY="quoted, with commas"`, through crate `media`'s parser) and the
//! segment blocks of a media playlist. Tolerant: what it does not understand it passes through untouched.
//!
//! Not here: a full playlist model (crate `media` has the writer of our origin).

/// Attributes of a tag such as `#EXT-X-STREAM-INF:BANDWIDTH=…,CODECS="…"`, in order,
/// read by the one HLS attribute-list parser of the workspace
/// (`media::hls::attribute_list`); a list it refuses (malformed, or more attributes
/// than it accepts) reads as no attributes, and the tag passes through untouched.
pub fn attributes(list: &str) -> Vec<(String, String)> {
    media::hls::attribute_list(list.trim()).unwrap_or_default()
}

/// The value of one attribute.
pub fn attribute(list: &str, key: &str) -> Option<String> {
    attributes(list)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// One line of a media playlist, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Line<'a> {
    /// `#EXTINF:d,` — a segment starts.
    Inf(f64, &'a str),
    /// A URI line (ends a segment).
    Uri(&'a str),
    /// Any other tag or comment or blank line.
    Other(&'a str),
}

pub fn classify(line: &str) -> Line<'_> {
    if let Some(rest) = line.strip_prefix("#EXTINF:") {
        let d = rest.split(',').next().unwrap_or("").trim();
        return Line::Inf(d.parse().unwrap_or(0.0), line);
    }
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        Line::Other(line)
    } else {
        Line::Uri(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_lists() {
        let a = attributes(r#"BANDWIDTH=800000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=640x360"#);
        assert_eq!(a.len(), 3);
        assert_eq!(a[1].1, "avc1.64001f,mp4a.40.2");
        assert_eq!(attribute("A=1,B=2", "B").as_deref(), Some("2"));
        // A malformed list reads as no attributes (the tag passes through as it came).
        assert!(attributes(r#"X="unterminated"#).is_empty());
        assert!(attributes("garbage").is_empty());
        assert!(attributes("").is_empty());
    }

    #[test]
    fn lines() {
        assert_eq!(classify("#EXTINF:2.000,"), Line::Inf(2.0, "#EXTINF:2.000,"));
        assert_eq!(classify("seg1.m4s"), Line::Uri("seg1.m4s"));
        assert_eq!(classify("#EXT-X-PART:x"), Line::Other("#EXT-X-PART:x"));
        assert_eq!(classify("#EXTINF:bad"), Line::Inf(0.0, "#EXTINF:bad"));
    }
}
