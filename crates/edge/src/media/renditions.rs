//! Per-viewer multivariant playlists: renditions above what the viewer can use are
//! left out — by the top bit rate the player declares in CMCD (`tb`, kbit/s) or by a
//! device class recognised from the User-Agent (configured as substring → maximum
//! height). At least the lowest rendition always stays, so no viewer gets an empty
//! ladder.
//!
//! Not here: CMCD parsing (the edge's `cmcd` module gives `tb`).

use super::hls;

/// What one viewer can use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewerCaps {
    /// Bits per second.
    pub max_bitrate: Option<u64>,
    pub max_height: Option<u32>,
}

/// A device class: a User-Agent substring (case-insensitive) and the tallest picture
/// it should get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub user_agent_contains: String,
    pub max_height: u32,
}

/// Caps from CMCD `tb` (kbit/s) and the User-Agent.
pub fn caps(
    cmcd_top_kbps: Option<u64>,
    user_agent: Option<&str>,
    rules: &[DeviceRule],
) -> ViewerCaps {
    let ua = user_agent.unwrap_or("").to_ascii_lowercase();
    let max_height = rules
        .iter()
        .filter(|r| {
            !r.user_agent_contains.is_empty()
                && ua.contains(&r.user_agent_contains.to_ascii_lowercase())
        })
        .map(|r| r.max_height)
        .min();
    ViewerCaps {
        max_bitrate: cmcd_top_kbps.map(|k| k.saturating_mul(1000)),
        max_height,
    }
}

struct Variant {
    /// Line indexes of the tag and its URI (the URI is absent for I-frame tags).
    tag: usize,
    uri: Option<usize>,
    bandwidth: u64,
    height: u32,
}

/// Leaves out the variants above `caps`. `None` when `text` is not a multivariant
/// playlist or nothing would change.
pub fn filter_multivariant(text: &str, caps: &ViewerCaps) -> Option<String> {
    if caps.max_bitrate.is_none() && caps.max_height.is_none() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut variants = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let (attrs, iframe) = if let Some(a) = l.strip_prefix("#EXT-X-STREAM-INF:") {
            (a, false)
        } else if let Some(a) = l.strip_prefix("#EXT-X-I-FRAME-STREAM-INF:") {
            (a, true)
        } else {
            i += 1;
            continue;
        };
        let bandwidth = hls::attribute(attrs, "BANDWIDTH")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let height = hls::attribute(attrs, "RESOLUTION")
            .and_then(|r| r.split_once('x').and_then(|(_, h)| h.parse().ok()))
            .unwrap_or(0);
        let uri = if iframe {
            None
        } else {
            (i + 1..lines.len()).find(|&j| matches!(hls::classify(lines[j]), hls::Line::Uri(_)))
        };
        variants.push(Variant {
            tag: i,
            uri,
            bandwidth,
            height,
        });
        i = uri.map_or(i + 1, |u| u + 1);
    }
    if variants.is_empty() {
        return None;
    }
    let fits = |v: &Variant| {
        caps.max_bitrate.is_none_or(|m| v.bandwidth <= m)
            && caps.max_height.is_none_or(|m| v.height <= m)
    };
    let mut keep: Vec<bool> = variants.iter().map(fits).collect();
    // Always keep the lowest regular variant.
    if !variants
        .iter()
        .zip(&keep)
        .any(|(v, k)| *k && v.uri.is_some())
    {
        if let Some((idx, _)) = variants
            .iter()
            .enumerate()
            .filter(|(_, v)| v.uri.is_some())
            .min_by_key(|(_, v)| v.bandwidth)
        {
            keep[idx] = true;
        }
    }
    if keep.iter().all(|k| *k) {
        return None;
    }
    let mut drop = vec![false; lines.len()];
    for (v, k) in variants.iter().zip(&keep) {
        if !k {
            drop[v.tag] = true;
            if let Some(u) = v.uri {
                drop[u] = true;
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    for (l, d) in lines.iter().zip(&drop) {
        if !d {
            out.push_str(l);
            out.push('\n');
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MV: &str = "#EXTM3U\n#EXT-X-VERSION:7\n\
#EXT-X-STREAM-INF:BANDWIDTH=6000000,CODECS=\"avc1.640028,mp4a.40.2\",RESOLUTION=1920x1080\n1080p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720\n720p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=1200000,CODECS=\"avc1.64001e,mp4a.40.2\",RESOLUTION=854x480\n480p/index.m3u8\n\
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=900000,RESOLUTION=1920x1080,URI=\"1080p/iframes.m3u8\"\n";

    #[test]
    fn cmcd_top_bitrate_cuts_the_ladder() {
        let c = caps(Some(3500), None, &[]);
        let out = filter_multivariant(MV, &c).expect("changed");
        assert!(!out.contains("1080p/index.m3u8"));
        assert!(out.contains("720p/index.m3u8") && out.contains("480p/index.m3u8"));
        assert!(out.contains("iframes"), "I-frame variant fits the bit rate");
        assert!(out.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
    }

    #[test]
    fn device_rule_by_height_and_floor() {
        let rules = vec![DeviceRule {
            user_agent_contains: "Watch".into(),
            max_height: 480,
        }];
        let c = caps(None, Some("Mozilla/5.0 (SmartWatch)"), &rules);
        let out = filter_multivariant(MV, &c).expect("changed");
        assert_eq!(out.matches("#EXT-X-STREAM-INF").count(), 1);
        assert!(out.contains("480p/index.m3u8"));
        assert!(!out.contains("iframes"));
        // Below every rendition: the lowest stays.
        let out = filter_multivariant(MV, &caps(Some(10), None, &[])).expect("changed");
        assert!(out.contains("480p/index.m3u8"));
        assert_eq!(out.matches("#EXT-X-STREAM-INF").count(), 1);
    }

    #[test]
    fn untouched_cases() {
        assert_eq!(filter_multivariant(MV, &ViewerCaps::default()), None);
        assert_eq!(
            filter_multivariant(MV, &caps(Some(100_000), None, &[])),
            None
        );
        assert_eq!(
            filter_multivariant("#EXTM3U\n#EXTINF:2,\na.m4s\n", &caps(Some(1), None, &[])),
            None
        );
        assert_eq!(filter_multivariant("", &caps(Some(1), None, &[])), None);
    }
}
