//! Checks a WHEP offer before the WebRTC stack sees it: size, text, that it is SDP
//! at all, how many media sections it has, and that one of them can receive H.264
//! video. The same summary, taken of our answer, tells whether the stack accepted the
//! video (a rejected section has port 0).
//!
//! Sans-IO and allocation-light, so it is fuzzed directly (`fuzz/fuzz_targets/
//! whep_offer.rs`). It is not an SDP parser: str0m parses the offer after this.

/// Media sections an offer may carry (a WHEP player sends two: video and audio).
pub const MAX_MEDIA_SECTIONS: usize = 16;
/// Lines an offer may carry (Chromium's recvonly offer has about 100).
pub const MAX_LINES: usize = 2_000;

/// Why an offer was refused; the text is sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("offer of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("offer is not UTF-8 text")]
    NotText,
    #[error("body is not an SDP offer (it must start with \"v=0\")")]
    NotSdp,
    #[error("offer has more than {MAX_LINES} lines")]
    TooManyLines,
    #[error("offer has more than {MAX_MEDIA_SECTIONS} media sections")]
    TooManySections,
    #[error("offer has no video section; add a recvonly video transceiver")]
    NoVideo,
    #[error("offer's video sections cannot receive H.264 (packetization-mode 1); this server sends H.264 only")]
    NoH264,
    #[error(
        "offer's video sections do not receive (direction sendonly or inactive); use recvonly"
    )]
    NotReceiving,
}

/// What an offer (or answer) asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Media sections (`m=` lines).
    pub sections: usize,
    /// A video section with a non-zero port that lists H.264.
    pub video_h264: bool,
    /// Such a section is not `sendonly`/`inactive` (for an offer: the offerer receives).
    pub video_h264_receives: bool,
    /// An audio section with a non-zero port that lists Opus (any direction).
    pub audio_opus: bool,
}

#[derive(Default)]
struct Section {
    video: bool,
    audio: bool,
    open: bool,
    h264: bool,
    opus: bool,
    /// `a=sendonly` or `a=inactive` seen (from the offerer's side: it will not receive).
    not_receiving: bool,
}

impl Section {
    fn finish(&self, s: &mut Summary, any_video: &mut bool, video_no_h264: &mut bool) {
        if self.video && self.open {
            *any_video = true;
            if !self.h264 {
                *video_no_h264 = true;
            } else {
                s.video_h264 = true;
                s.video_h264_receives |= !self.not_receiving;
            }
        }
        if self.audio && self.open && self.opus {
            s.audio_opus = true;
        }
    }
}

/// Summarises `sdp` without judging it (used on our own answer too).
pub fn summarize(sdp: &str) -> Summary {
    let mut s = Summary::default();
    let (mut any_video, mut no_h264) = (false, false);
    let mut cur: Option<Section> = None;
    for line in sdp.lines().take(MAX_LINES) {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            if let Some(c) = cur.take() {
                c.finish(&mut s, &mut any_video, &mut no_h264);
            }
            s.sections += 1;
            let mut parts = m.split(' ');
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            cur = Some(Section {
                video: kind == "video",
                audio: kind == "audio",
                open: port != "0",
                ..Section::default()
            });
            continue;
        }
        let Some(c) = cur.as_mut() else { continue };
        if let Some(map) = line.strip_prefix("a=rtpmap:") {
            // "96 H264/90000"
            let codec = map.split(' ').nth(1).unwrap_or("");
            let name = codec.split('/').next().unwrap_or("");
            if name.eq_ignore_ascii_case("H264") {
                c.h264 = true;
            } else if name.eq_ignore_ascii_case("opus") {
                c.opus = true;
            }
        } else if line == "a=sendonly" || line == "a=inactive" {
            c.not_receiving = true;
        }
    }
    if let Some(c) = cur.take() {
        c.finish(&mut s, &mut any_video, &mut no_h264);
    }
    s
}

/// Checks an offer body: at most `max_bytes`, UTF-8 SDP, at most
/// [`MAX_MEDIA_SECTIONS`] media sections, and a video section that receives H.264.
pub fn check(body: &[u8], max_bytes: usize) -> Result<(&str, Summary), OfferError> {
    if body.len() > max_bytes {
        return Err(OfferError::TooLarge {
            len: body.len(),
            max: max_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| OfferError::NotText)?;
    if !text.trim_start().starts_with("v=0") {
        return Err(OfferError::NotSdp);
    }
    if text.lines().nth(MAX_LINES).is_some() {
        return Err(OfferError::TooManyLines);
    }
    let s = summarize(text);
    if s.sections > MAX_MEDIA_SECTIONS {
        return Err(OfferError::TooManySections);
    }
    if !s.video_h264_receives {
        // Say which of the video conditions failed.
        let mut any_video = false;
        let mut h264 = false;
        let mut cur_video = false;
        for line in text.lines() {
            if let Some(m) = line.strip_prefix("m=") {
                cur_video = m.starts_with("video ") && !m.starts_with("video 0 ");
                any_video |= cur_video;
            } else if cur_video && line.starts_with("a=rtpmap:") && line.contains(" H264/") {
                h264 = true;
            }
        }
        return Err(if !any_video {
            OfferError::NoVideo
        } else if !h264 {
            OfferError::NoH264
        } else {
            OfferError::NotReceiving
        });
    }
    Ok((text, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n\
a=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn a_browser_offer_passes() {
        let (_, s) = check(CHROME.as_bytes(), 64 * 1024).expect("ok");
        assert_eq!(
            s,
            Summary {
                sections: 2,
                video_h264: true,
                video_h264_receives: true,
                audio_opus: true
            }
        );
    }

    #[test]
    fn bad_offers_are_named() {
        assert_eq!(
            check(CHROME.as_bytes(), 100),
            Err(OfferError::TooLarge {
                len: CHROME.len(),
                max: 100
            })
        );
        assert_eq!(check(b"\xff\xfe", 100), Err(OfferError::NotText));
        assert_eq!(check(b"hello", 100), Err(OfferError::NotSdp));
        let audio_only = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(check(audio_only.as_bytes(), 1000), Err(OfferError::NoVideo));
        let vp8 = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
        assert_eq!(check(vp8.as_bytes(), 1000), Err(OfferError::NoH264));
        let send = CHROME.replace("a=mid:0\r\na=recvonly", "a=mid:0\r\na=sendonly");
        assert_eq!(
            check(send.as_bytes(), 64 * 1024),
            Err(OfferError::NotReceiving)
        );
        let many = format!(
            "v=0\r\n{}",
            "m=video 9 X 96\r\n".repeat(MAX_MEDIA_SECTIONS + 1)
        );
        assert_eq!(
            check(many.as_bytes(), 64 * 1024),
            Err(OfferError::TooManySections)
        );
        let long = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_LINES + 1));
        assert_eq!(
            check(long.as_bytes(), 64 * 1024),
            Err(OfferError::TooManyLines)
        );
    }

    #[test]
    fn a_rejected_video_section_in_an_answer_shows() {
        let answer = "v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
        assert!(!summarize(answer).video_h264);
    }
}
