//! Server-side ad insertion in HLS media playlists. An ad break starts at an
//! `#EXT-X-DATERANGE` carrying `SCTE35-OUT` (length from `DURATION` or
//! `PLANNED-DURATION`) or at `#EXT-X-CUE-OUT:<seconds>`; the content segments that
//! follow, up to the break's length (or until `#EXT-X-CUE-IN`), are replaced one for
//! one by the ad pod's segments (cycled), wrapped in `#EXT-X-DISCONTINUITY` with the
//! ad's `#EXT-X-MAP` inside and the content's restored after.
//!
//! One ad segment per replaced content segment keeps media sequence numbers stable
//! across reloads of a live playlist (so ads should be cut to the stream's segment
//! duration; each keeps its own `#EXTINF`). LL-HLS parts and preload hints inside a
//! break are dropped, so low-latency players fetch whole ad segments. Not handled: a
//! break whose marker has already slid out of a live window (its remaining segments
//! stay content), and `EXT-X-DISCONTINUITY-SEQUENCE` is left as the origin wrote it.
//!
//! Marker lines stay in the playlist (players and analytics read them).

use super::hls::{self, Line};

/// One segment of an ad.
#[derive(Debug, Clone, PartialEq)]
pub struct AdSegment {
    pub uri: String,
    pub duration: f64,
}

/// What fills a break.
#[derive(Debug, Clone, PartialEq)]
pub struct AdPod {
    /// Init segment of the ad's CMAF track, if it has one.
    pub init: Option<String>,
    pub segments: Vec<AdSegment>,
}

impl AdPod {
    /// Reads an ad pod from an HLS media playlist of the ad (its `#EXT-X-MAP`,
    /// `#EXTINF` and URIs); relative URIs are resolved against `base` (a URL prefix
    /// ending in `/`, or empty to keep them as written).
    pub fn from_playlist(text: &str, base: &str) -> Self {
        let abs = |u: &str| {
            if u.contains("://") || u.starts_with('/') || base.is_empty() {
                u.to_string()
            } else {
                format!("{base}{u}")
            }
        };
        let mut pod = AdPod {
            init: None,
            segments: Vec::new(),
        };
        let mut dur = None;
        for line in text.lines() {
            if let Some(a) = line.strip_prefix("#EXT-X-MAP:") {
                pod.init = hls::attribute(a, "URI").map(|u| abs(&u));
                continue;
            }
            match hls::classify(line) {
                Line::Inf(d, _) => dur = Some(d),
                Line::Uri(u) => {
                    if let Some(d) = dur.take() {
                        pod.segments.push(AdSegment {
                            uri: abs(u.trim()),
                            duration: d,
                        });
                    }
                }
                Line::Other(_) => {}
            }
        }
        pod
    }
}

/// Seconds of a break if `line` starts one.
fn break_start(line: &str) -> Option<f64> {
    if let Some(a) = line.strip_prefix("#EXT-X-DATERANGE:") {
        let attrs = hls::attributes(a);
        if !attrs.iter().any(|(k, _)| k == "SCTE35-OUT") {
            return None;
        }
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(n, _)| n == k)
                .and_then(|(_, v)| v.parse::<f64>().ok())
        };
        return get("DURATION")
            .or_else(|| get("PLANNED-DURATION"))
            .filter(|d| d.is_finite() && *d > 0.0);
    }
    let rest = line.strip_prefix("#EXT-X-CUE-OUT:")?;
    let v = rest.strip_prefix("DURATION=").unwrap_or(rest);
    v.split(',')
        .next()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && *d > 0.0)
}

struct Break {
    remaining: f64,
    index: usize,
    started: bool,
}

/// Inserts `pod` at every break of `playlist`. Returns the playlist unchanged when it
/// has no break or the pod is empty.
pub fn insert_ads(playlist: &str, pod: &AdPod) -> String {
    if pod.segments.is_empty() {
        return playlist.to_string();
    }
    let mut out = String::with_capacity(playlist.len() + 256);
    let mut brk: Option<Break> = None;
    let mut content_map: Option<&str> = None;
    let mut replacing: Option<f64> = None;
    let push = |out: &mut String, l: &str| {
        out.push_str(l);
        out.push('\n');
    };
    // Ends a break that has run its length, before the next content line.
    let close = |out: &mut String, brk: &mut Option<Break>, map: Option<&str>| {
        if let Some(b) = brk.take() {
            if b.started {
                push(out, "#EXT-X-DISCONTINUITY");
                if let Some(m) = map {
                    push(out, m);
                }
            }
        }
    };
    for line in playlist.lines() {
        let is_segment_line = line.starts_with("#EXT-X-PART:")
            || line.starts_with("#EXT-X-PRELOAD-HINT:")
            || line.starts_with("#EXT-X-BYTERANGE:")
            || line.starts_with("#EXT-X-PROGRAM-DATE-TIME:")
            || matches!(hls::classify(line), Line::Inf(..) | Line::Uri(_));
        if is_segment_line
            && replacing.is_none()
            && brk.as_ref().is_some_and(|b| b.remaining <= 0.05)
        {
            close(&mut out, &mut brk, content_map);
        }
        if line.starts_with("#EXT-X-CUE-IN") {
            replacing = None;
            close(&mut out, &mut brk, content_map);
            push(&mut out, line);
            continue;
        }
        if let Some(d) = break_start(line) {
            push(&mut out, line);
            if brk.is_none() {
                brk = Some(Break {
                    remaining: d,
                    index: 0,
                    started: false,
                });
            }
            continue;
        }
        if line.starts_with("#EXT-X-MAP:") {
            content_map = Some(line);
            if brk.is_none() {
                push(&mut out, line);
            }
            continue;
        }
        let in_break = brk.as_ref().is_some_and(|b| b.remaining > 0.05);
        match hls::classify(line) {
            Line::Inf(d, _) if in_break => {
                replacing = Some(d);
            }
            Line::Uri(_) if replacing.is_some() => {
                let d = replacing.take().unwrap_or(0.0);
                if let Some(b) = brk.as_mut() {
                    if !b.started {
                        push(&mut out, "#EXT-X-DISCONTINUITY");
                        if let Some(init) = &pod.init {
                            push(&mut out, &format!("#EXT-X-MAP:URI=\"{init}\""));
                        }
                        b.started = true;
                    }
                    let ad = &pod.segments[b.index % pod.segments.len()];
                    push(&mut out, &format!("#EXTINF:{:.3},", ad.duration));
                    push(&mut out, &ad.uri);
                    b.index += 1;
                    b.remaining -= d;
                }
            }
            _ if in_break && is_segment_line => {}
            _ if replacing.is_some() => {}
            _ => push(&mut out, line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> AdPod {
        AdPod {
            init: Some("https://ads.example/init.mp4".into()),
            segments: vec![
                AdSegment {
                    uri: "https://ads.example/ad0.m4s".into(),
                    duration: 2.0,
                },
                AdSegment {
                    uri: "https://ads.example/ad1.m4s".into(),
                    duration: 2.0,
                },
            ],
        }
    }

    fn content(n: usize, marker_before: usize, marker: &str) -> String {
        let mut p = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-MAP:URI=\"init.mp4\"\n");
        for i in 0..n {
            if i == marker_before {
                p.push_str(marker);
                p.push('\n');
            }
            p.push_str(&format!("#EXTINF:2.000,\nseg{}.m4s\n", 100 + i));
        }
        p
    }

    #[test]
    fn daterange_break_replaced_one_for_one_with_discontinuities() {
        let marker = "#EXT-X-DATERANGE:ID=\"ad1\",START-DATE=\"2026-01-01T00:00:10Z\",DURATION=6.0,SCTE35-OUT=0xFC302000";
        let p = content(8, 2, marker);
        let out = insert_ads(&p, &pod());
        let uris: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            uris,
            [
                "seg100.m4s",
                "seg101.m4s",
                "https://ads.example/ad0.m4s",
                "https://ads.example/ad1.m4s",
                "https://ads.example/ad0.m4s",
                "seg105.m4s",
                "seg106.m4s",
                "seg107.m4s"
            ]
        );
        assert_eq!(out.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
        assert!(out.contains(marker), "marker kept");
        // Ad init inside the break, content init restored after it.
        let ad_map = out
            .find("#EXT-X-MAP:URI=\"https://ads.example/init.mp4\"")
            .expect("ad map");
        let restored = out
            .rfind("#EXT-X-MAP:URI=\"init.mp4\"")
            .expect("content map");
        assert!(ad_map < restored);
        assert!(out.find("seg105.m4s").expect("after") > restored);
        assert_eq!(out.matches("#EXTINF").count(), 8, "segment count unchanged");
    }

    #[test]
    fn cue_out_with_cue_in_and_ll_hls_parts() {
        let mut p = content(3, 1, "#EXT-X-CUE-OUT:30");
        p.push_str("#EXT-X-PART:DURATION=0.5,URI=\"part103.0.m4s\"\n#EXT-X-CUE-IN\n#EXT-X-PART:DURATION=0.5,URI=\"part104.0.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part104.1.m4s\"\n");
        let out = insert_ads(&p, &pod());
        assert!(!out.contains("seg101.m4s") && !out.contains("seg102.m4s"));
        assert!(
            !out.contains("part103.0"),
            "content parts inside the break are dropped"
        );
        assert!(out.contains("part104.0.m4s") && out.contains("part104.1.m4s"));
        assert_eq!(out.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
        assert!(out.find("#EXT-X-CUE-IN").expect("cue in") < out.find("part104.0").expect("part"));
    }

    #[test]
    fn pod_from_playlist() {
        let p = AdPod::from_playlist(
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\nad0.m4s\n#EXTINF:1.5,\nhttps://x/ad1.m4s\n",
            "http://ads/",
        );
        assert_eq!(p.init.as_deref(), Some("http://ads/init.mp4"));
        assert_eq!(p.segments.len(), 2);
        assert_eq!(p.segments[0].uri, "http://ads/ad0.m4s");
        assert_eq!(p.segments[1].uri, "https://x/ad1.m4s");
        assert_eq!(p.segments[1].duration, 1.5);
    }

    #[test]
    fn no_break_or_no_ads_is_identity_and_open_break_stays_open() {
        let p = content(4, 99, "");
        assert_eq!(insert_ads(&p, &pod()), p);
        let with = content(4, 1, "#EXT-X-CUE-OUT:60");
        assert_eq!(
            insert_ads(
                &with,
                &AdPod {
                    init: None,
                    segments: vec![]
                }
            ),
            with
        );
        // Break longer than what is listed yet: no closing discontinuity.
        let out = insert_ads(&with, &pod());
        assert_eq!(out.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        // Not SCTE-35: ignored.
        let other = content(
            4,
            1,
            "#EXT-X-DATERANGE:ID=\"x\",START-DATE=\"2026-01-01T00:00:00Z\",DURATION=4",
        );
        assert_eq!(insert_ads(&other, &pod()), other);
    }
}
