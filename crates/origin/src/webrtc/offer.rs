//! Checks an SDP offer before the WebRTC stack sees it: size, text, that it is SDP at
//! all, how many lines and media sections it has, and that one of its open video
//! sections lists H.264 in the direction the endpoint needs: a WHIP publisher's offer
//! *sends* video (`sendonly` or `sendrecv`), a WHEP player's offer *receives* it
//! (`recvonly` or `sendrecv`). Opus audio is noted, in the same direction and in any.
//!
//! Sans-IO and allocation-free, so it is fuzzed directly (`fuzz/fuzz_targets/
//! whip_offer.rs`, `whep_offer.rs`). It is not an SDP parser: str0m parses the offer
//! after this, and our answer is summarised again ([`summarize`]) to see that the
//! H.264 section was accepted (a rejected section has port 0).

/// Media sections an offer may carry (a browser sends two: video and audio).
pub const MAX_MEDIA_SECTIONS: usize = 16;
/// Lines an offer may carry (Chromium's offers have 100 to 120).
pub const MAX_LINES: usize = 2_000;

/// What the offerer must do with the video: publish it (WHIP) or play it (WHEP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publish,
    Play,
}

impl Role {
    /// The SDP direction to tell the client to use.
    fn direction(self) -> &'static str {
        match self {
            Role::Publish => "sendonly",
            Role::Play => "recvonly",
        }
    }

    fn no_video_hint(self) -> &'static str {
        match self {
            Role::Publish => "add a sendonly video track",
            Role::Play => "add a recvonly video transceiver",
        }
    }

    fn no_h264_hint(self) -> &'static str {
        match self {
            Role::Publish => {
                "offer's video cannot be H.264; this server takes H.264 video (packetization-mode 1) only"
            }
            Role::Play => {
                "offer's video sections cannot receive H.264 (packetization-mode 1); this server sends H.264 only"
            }
        }
    }

    fn wrong_direction_hint(self) -> &'static str {
        match self {
            Role::Publish => {
                "offer's video sections do not send (direction recvonly or inactive); publish with"
            }
            Role::Play => {
                "offer's video sections do not receive (direction sendonly or inactive); use"
            }
        }
    }
}

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
    #[error("offer has no video section; {}", .0.no_video_hint())]
    NoVideo(Role),
    #[error("{}", .0.no_h264_hint())]
    NoH264(Role),
    #[error("{} {}", .0.wrong_direction_hint(), .0.direction())]
    WrongDirection(Role),
}

/// What an offer (or answer) carries, from the offerer's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Media sections (`m=` lines).
    pub sections: usize,
    /// An open video section (non-zero port) of any codec.
    pub video: bool,
    /// An open video section that lists H.264.
    pub video_h264: bool,
    /// … and sends (not `recvonly`/`inactive`).
    pub video_h264_sends: bool,
    /// … and receives (not `sendonly`/`inactive`).
    pub video_h264_receives: bool,
    /// An open audio section that lists Opus, in any direction.
    pub audio_opus: bool,
    /// … that sends.
    pub audio_opus_sends: bool,
}

#[derive(Default)]
struct Section {
    video: bool,
    audio: bool,
    open: bool,
    h264: bool,
    opus: bool,
    sends: bool,
    receives: bool,
}

impl Section {
    fn finish(&self, s: &mut Summary) {
        if !self.open {
            return;
        }
        if self.video {
            s.video = true;
            if self.h264 {
                s.video_h264 = true;
                s.video_h264_sends |= self.sends;
                s.video_h264_receives |= self.receives;
            }
        }
        if self.audio && self.opus {
            s.audio_opus = true;
            s.audio_opus_sends |= self.sends;
        }
    }
}

/// Summarises `sdp` without judging it (used on our own answers too).
pub fn summarize(sdp: &str) -> Summary {
    let mut s = Summary::default();
    let mut cur: Option<Section> = None;
    for line in sdp.lines().take(MAX_LINES) {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            if let Some(c) = cur.take() {
                c.finish(&mut s);
            }
            s.sections += 1;
            let mut parts = m.split(' ');
            let kind = parts.next().unwrap_or("");
            let port = parts.next().unwrap_or("0");
            cur = Some(Section {
                video: kind == "video",
                audio: kind == "audio",
                open: port != "0",
                sends: true,
                receives: true,
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
        } else {
            match line {
                "a=sendonly" => c.receives = false,
                "a=recvonly" => c.sends = false,
                "a=inactive" => (c.sends, c.receives) = (false, false),
                _ => {}
            }
        }
    }
    if let Some(c) = cur.take() {
        c.finish(&mut s);
    }
    s
}

/// Checks an offer body: at most `max_bytes`, UTF-8 SDP, at most [`MAX_LINES`] lines
/// and [`MAX_MEDIA_SECTIONS`] media sections, and an open video section that lists
/// H.264 in the direction `role` needs.
pub fn check(body: &[u8], max_bytes: usize, role: Role) -> Result<(&str, Summary), OfferError> {
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
    let ok = match role {
        Role::Publish => s.video_h264_sends,
        Role::Play => s.video_h264_receives,
    };
    if !ok {
        return Err(if !s.video {
            OfferError::NoVideo(role)
        } else if !s.video_h264 {
            OfferError::NoH264(role)
        } else {
            OfferError::WrongDirection(role)
        });
    }
    Ok((text, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of Chromium's WHIP offer (sendonly video with VP8 and H.264, Opus).
    const PUBLISH: &str =
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    /// The shape of Chromium's WHEP offer (recvonly video and audio).
    const PLAY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n\
a=rtpmap:111 opus/48000/2\r\n";

    const MAX: usize = 64 * 1024;

    #[test]
    fn browser_offers_pass_in_their_own_direction_only() {
        let (_, s) = check(PUBLISH.as_bytes(), MAX, Role::Publish).expect("publish");
        assert_eq!(
            s,
            Summary {
                sections: 2,
                video: true,
                video_h264: true,
                video_h264_sends: true,
                video_h264_receives: false,
                audio_opus: true,
                audio_opus_sends: true,
            }
        );
        let (_, s) = check(PLAY.as_bytes(), MAX, Role::Play).expect("play");
        assert!(s.video_h264_receives && !s.video_h264_sends && s.audio_opus);
        assert!(!s.audio_opus_sends);
        // Each sent to the other endpoint is refused, and the text says what to use.
        let e = check(PLAY.as_bytes(), MAX, Role::Publish).expect_err("play offer to WHIP");
        assert_eq!(e, OfferError::WrongDirection(Role::Publish));
        assert!(e.to_string().ends_with("publish with sendonly"), "{e}");
        let e = check(PUBLISH.as_bytes(), MAX, Role::Play).expect_err("publish offer to WHEP");
        assert_eq!(e, OfferError::WrongDirection(Role::Play));
        assert!(e.to_string().ends_with("use recvonly"), "{e}");
        // sendrecv (or no direction at all) goes both ways; video alone is enough.
        let both = PUBLISH.replace("a=mid:1\r\na=sendonly", "a=mid:1\r\na=sendrecv");
        assert!(check(both.as_bytes(), MAX, Role::Publish).is_ok());
        assert!(check(both.as_bytes(), MAX, Role::Play).is_ok());
        let video_only = format!(
            "v=0\r\nm=video{}",
            PUBLISH.split("m=video").nth(1).unwrap_or("")
        );
        let (_, s) = check(video_only.as_bytes(), MAX, Role::Publish).expect("video only");
        assert!(!s.audio_opus);
        let inactive = PLAY.replace("a=mid:0\r\na=recvonly", "a=mid:0\r\na=inactive");
        assert_eq!(
            check(inactive.as_bytes(), MAX, Role::Play),
            Err(OfferError::WrongDirection(Role::Play))
        );
    }

    #[test]
    fn bad_offers_are_named() {
        for role in [Role::Publish, Role::Play] {
            assert_eq!(
                check(PUBLISH.as_bytes(), 100, role),
                Err(OfferError::TooLarge {
                    len: PUBLISH.len(),
                    max: 100
                })
            );
            assert_eq!(check(b"\xff\xfe", 100, role), Err(OfferError::NotText));
            assert_eq!(check(b"hello", 100, role), Err(OfferError::NotSdp));
            let audio_only =
                "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
            assert_eq!(
                check(audio_only.as_bytes(), 1000, role),
                Err(OfferError::NoVideo(role))
            );
            let vp8 = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n";
            assert_eq!(
                check(vp8.as_bytes(), 1000, role),
                Err(OfferError::NoH264(role))
            );
            let closed = PUBLISH.replace("m=video 9 ", "m=video 0 ");
            assert_eq!(
                check(closed.as_bytes(), MAX, role),
                Err(OfferError::NoVideo(role))
            );
            let many = format!(
                "v=0\r\n{}",
                "m=video 9 X 96\r\n".repeat(MAX_MEDIA_SECTIONS + 1)
            );
            assert_eq!(
                check(many.as_bytes(), MAX, role),
                Err(OfferError::TooManySections)
            );
            let long = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_LINES + 1));
            assert_eq!(
                check(long.as_bytes(), MAX, role),
                Err(OfferError::TooManyLines)
            );
        }
        assert!(OfferError::NoVideo(Role::Publish)
            .to_string()
            .contains("sendonly video track"));
        assert!(OfferError::NoVideo(Role::Play)
            .to_string()
            .contains("recvonly video transceiver"));
    }

    #[test]
    fn a_rejected_video_section_in_an_answer_shows() {
        let answer = "v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n";
        assert!(!summarize(answer).video_h264);
    }
}
