//! Checks a WHIP offer before the WebRTC stack sees it: size, text, that it is SDP at
//! all, how many lines and media sections it has, and that one of its video sections
//! *sends* H.264 (a WHIP publisher's offer is `sendonly`, or `sendrecv`). Audio is
//! optional; an Opus audio section is noted.
//!
//! Sans-IO and allocation-light, so it is fuzzed directly (`fuzz/fuzz_targets/
//! whip_offer.rs`). It is not an SDP parser: str0m parses the offer after this, and
//! our answer is checked again for an accepted H.264 section.

/// Media sections an offer may carry (a WHIP publisher sends two: video and audio).
pub const MAX_MEDIA_SECTIONS: usize = 16;
/// Lines an offer may carry (Chromium's sendonly offer has about 120).
pub const MAX_LINES: usize = 2_000;

/// Why an offer was refused; the text is sent to the publisher.
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
    #[error("offer has no video section; add a sendonly video track")]
    NoVideo,
    #[error(
        "offer's video cannot be H.264; this server takes H.264 video (packetization-mode 1) only"
    )]
    NoH264,
    #[error("offer's video sections do not send (direction recvonly or inactive); publish with sendonly")]
    NotSending,
}

/// What a WHIP offer carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Media sections (`m=` lines).
    pub sections: usize,
    /// An open video section that lists H.264 and sends.
    pub video_h264_sends: bool,
    /// An open audio section that lists Opus and sends.
    pub audio_opus_sends: bool,
}

#[derive(Default)]
struct Section {
    video: bool,
    audio: bool,
    open: bool,
    h264: bool,
    opus: bool,
    /// `a=recvonly` or `a=inactive` seen: the offerer will not send here.
    not_sending: bool,
}

/// Which video condition failed, for the error.
#[derive(Default)]
struct VideoSeen {
    any: bool,
    h264: bool,
}

impl Section {
    fn finish(&self, s: &mut Summary, seen: &mut VideoSeen) {
        if !self.open {
            return;
        }
        if self.video {
            seen.any = true;
            seen.h264 |= self.h264;
            s.video_h264_sends |= self.h264 && !self.not_sending;
        }
        if self.audio && self.opus && !self.not_sending {
            s.audio_opus_sends = true;
        }
    }
}

fn scan(sdp: &str) -> (Summary, VideoSeen) {
    let mut s = Summary::default();
    let mut seen = VideoSeen::default();
    let mut cur: Option<Section> = None;
    for line in sdp.lines().take(MAX_LINES) {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            if let Some(c) = cur.take() {
                c.finish(&mut s, &mut seen);
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
        } else if line == "a=recvonly" || line == "a=inactive" {
            c.not_sending = true;
        }
    }
    if let Some(c) = cur.take() {
        c.finish(&mut s, &mut seen);
    }
    (s, seen)
}

/// Summarises `sdp` without judging it.
pub fn summarize(sdp: &str) -> Summary {
    scan(sdp).0
}

/// Checks an offer body: at most `max_bytes`, UTF-8 SDP, at most [`MAX_LINES`] lines
/// and [`MAX_MEDIA_SECTIONS`] media sections, and a video section that sends H.264.
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
    let (s, seen) = scan(text);
    if s.sections > MAX_MEDIA_SECTIONS {
        return Err(OfferError::TooManySections);
    }
    if !s.video_h264_sends {
        return Err(if !seen.any {
            OfferError::NoVideo
        } else if !seen.h264 {
            OfferError::NoH264
        } else {
            OfferError::NotSending
        });
    }
    Ok((text, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Chromium's WHIP offer (sendonly video with VP8 and H.264, Opus).
    const CHROME: &str =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn a_browser_publish_offer_passes() {
        let (_, s) = check(CHROME.as_bytes(), 64 * 1024).expect("ok");
        assert_eq!(
            s,
            Summary {
                sections: 2,
                video_h264_sends: true,
                audio_opus_sends: true
            }
        );
        // sendrecv publishes too; video alone is enough.
        let sendrecv = CHROME.replace("a=mid:1\r\na=sendonly", "a=mid:1\r\na=sendrecv");
        assert!(check(sendrecv.as_bytes(), 64 * 1024).is_ok());
        let video_only = format!(
            "v=0\r\nm=video{}",
            CHROME.split("m=video").nth(1).unwrap_or("")
        );
        let (_, s) = check(video_only.as_bytes(), 64 * 1024).expect("video only");
        assert!(!s.audio_opus_sends);
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
        // A WHEP (playback) offer sent to WHIP by mistake.
        let recv = CHROME.replace("a=mid:1\r\na=sendonly", "a=mid:1\r\na=recvonly");
        assert_eq!(
            check(recv.as_bytes(), 64 * 1024),
            Err(OfferError::NotSending)
        );
        let closed = CHROME.replace("m=video 9 ", "m=video 0 ");
        assert_eq!(
            check(closed.as_bytes(), 64 * 1024),
            Err(OfferError::NoVideo)
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
}
