//! WHIP inside one process: a native str0m publisher (a WebRTC stack of its own, over
//! loopback UDP) sends the demo clip's H.264 and Opus-shaped packets, and the stream
//! it publishes is checked: live with source `whip`, H.264 and Opus in the packager,
//! parts stored, PLIs reaching the publisher, DELETE ending it; and the refusals and
//! limits. Browser publishing is the e2e suite's part.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, RtcConfig};
use tokio::net::UdpSocket;

use super::*;
use crate::config::{Limits, PackagingConfig};
use crate::ingest::demo::{Clip, DEMO_CLIP};
use crate::whep::fanout::annex_b;

fn streams(keys: &[(&str, &str)]) -> Arc<Streams> {
    Arc::new(Streams::new(
        PackagingConfig::default(),
        Limits::default(),
        keys.iter()
            .map(|(s, k)| (s.to_string(), k.to_string()))
            .collect::<HashMap<_, _>>(),
        false,
    ))
}

async fn whip(streams: &Arc<Streams>, config: WhipConfig) -> Arc<Whip> {
    Whip::start(
        streams.clone(),
        Hooks::none(),
        config,
        None,
        &crate::whep::WhepConfig::default(),
    )
    .await
    .expect("start")
    .expect("on")
}

/// A native publisher's offer (sendonly video and audio).
fn offer() -> (
    str0m::Rtc,
    str0m::change::SdpPendingOffer,
    String,
    str0m::media::Mid,
    str0m::media::Mid,
) {
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().expect("changes");
    let text = offer.to_sdp_string();
    (rtc, pending, text, video, audio)
}

/// What the native publisher saw.
#[derive(Debug, Default)]
struct Sent {
    video: u32,
    audio: u32,
    keyframe_requests: u32,
}

/// Publishes the clip's video (paced, 90 kHz RTP from its timestamps) and 20 ms
/// Opus-shaped packets for `seconds`, then DELETEs its session.
async fn publish(whip: Arc<Whip>, stream: &str, key: Option<&str>, seconds: u64) -> Sent {
    let clip = Clip::parse(DEMO_CLIP).expect("clip");
    let cfg = media::codec::AvcConfig::parse(clip.avcc()).expect("avcC");
    let frames = clip.video_frames();
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = sock.local_addr().expect("addr");
    let (mut rtc, pending, text, video_mid, audio_mid) = offer();
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let answer = whip
        .publish(stream, key, text.as_bytes(), ip, None)
        .await
        .expect("answered");
    let sdp = SdpAnswer::from_sdp_string(&answer.sdp).expect("answer parses");
    rtc.sdp_api()
        .accept_answer(pending, sdp)
        .expect("answer accepted");
    let mut sent = Sent::default();
    let mut connected_at: Option<Instant> = None;
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds + 10);
    let mut buf = vec![0u8; 2048];
    let (mut next_video, mut next_audio) = (0usize, 0u64);
    let opus: &[u8] = &[31 << 3, 0xde, 0xad, 0xbe, 0xef];
    loop {
        let wake = loop {
            match rtc.poll_output().expect("poll") {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::Connected) => connected_at = Some(Instant::now()),
                Output::Event(Event::KeyframeRequest(_)) => sent.keyframe_requests += 1,
                Output::Event(_) => {}
            }
        };
        let now = Instant::now();
        if tokio::time::Instant::now() > until {
            break;
        }
        if let Some(t0) = connected_at {
            let elapsed = now.duration_since(t0);
            if elapsed > Duration::from_secs(seconds) {
                break;
            }
            // Video: the clip's frames at their own pace (looped).
            let loop_ms = frames.last().map_or(1, |f| f.0 + 40);
            while let Some((ms, key, data)) = frames.get(next_video % frames.len()) {
                let ms = ms + (next_video / frames.len()) as u64 * loop_ms;
                if Duration::from_millis(ms) > elapsed {
                    break;
                }
                next_video += 1;
                let Some(au) = annex_b(data, &cfg, *key) else {
                    continue;
                };
                let Some(w) = rtc.writer(video_mid) else {
                    continue;
                };
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::H264)
                    .map(|p| p.pt())
                    .expect("H.264 negotiated");
                w.write(pt, now, MediaTime::from_90khz(ms * 90), au)
                    .expect("write video");
                sent.video += 1;
            }
            // Audio: 20 ms packets.
            while next_audio * 20 <= elapsed.as_millis() as u64 {
                let Some(w) = rtc.writer(audio_mid) else {
                    break;
                };
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Opus)
                    .map(|p| p.pt())
                    .expect("Opus negotiated");
                let t = MediaTime::new(next_audio * 960, str0m::media::Frequency::FORTY_EIGHT_KHZ);
                w.write(pt, now, t, opus.to_vec()).expect("write audio");
                next_audio += 1;
                sent.audio += 1;
            }
        }
        let wake = tokio::time::Instant::from_std(wake)
            .min(tokio::time::Instant::now() + Duration::from_millis(10))
            .min(until);
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { continue };
                let Ok(contents) = buf[..n].try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp, source, destination: local, contents,
                });
                rtc.handle_input(input).expect("input");
            }
            _ = tokio::time::sleep_until(wake) => {
                rtc.handle_input(Input::Timeout(Instant::now())).expect("timeout");
            }
        }
    }
    assert!(connected_at.is_some(), "never connected");
    assert!(whip.stop(stream, &answer.session), "session known");
    sent
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_publisher_feeds_the_packager_h264_and_opus() {
    let streams = streams(&[("cam", "k1")]);
    let whip = whip(&streams, WhipConfig::default()).await;
    let sent = publish(whip.clone(), "cam", Some("k1"), 5).await;
    assert!(sent.video > 100 && sent.audio > 200, "{sent:?}");
    assert!(
        sent.keyframe_requests >= 1,
        "PLIs reach the publisher: {sent:?}"
    );
    let cam = streams.get("cam").expect("cam");
    assert_eq!(cam.source(), "whip");
    let r = cam.rendition("src").expect("src");
    let info = r.info.read().clone();
    assert_eq!(
        info.video.as_ref().map(|v| (v.width(), v.height())),
        Some((640, 360))
    );
    assert!(
        matches!(info.audio, Some(media::codec::AudioConfig::Opus(_))),
        "{info:?}"
    );
    assert!(info.codecs().ends_with(",opus"), "{}", info.codecs());
    assert!(r.store.read().last_msn().is_some(), "segments were stored");
    // The DELETE ended the publish: the stream is no longer live.
    wait_for("the session to end", || whip.sessions() == 0).await;
    wait_for("the stream to stop being live", || {
        !matches!(cam.state(), crate::live::StreamState::Live)
    })
    .await;
}

#[tokio::test]
async fn refusals_and_the_session_limit() {
    let streams = streams(&[("locked", "k1")]);
    let config = WhipConfig {
        max_sessions: 2,
        max_offer_bytes: 16 * 1024,
        idle_timeout: Duration::from_millis(400),
    };
    let whip = whip(&streams, config).await;
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let text = offer().2;
    let publish = |stream: &'static str, key: Option<&'static str>, body: Vec<u8>| {
        let whip = whip.clone();
        async move { whip.publish(stream, key, &body, ip, None).await }
    };
    let body = || text.clone().into_bytes();
    assert!(matches!(
        publish("cam", None, b"garbage".to_vec()).await,
        Err(WhipError::Offer(OfferError::NotSdp))
    ));
    assert!(matches!(
        publish("cam", None, vec![b'v'; 20_000]).await,
        Err(WhipError::Offer(OfferError::TooLarge { .. }))
    ));
    let recv = text.replace("a=sendonly", "a=recvonly");
    assert!(matches!(
        publish("cam", None, recv.into_bytes()).await,
        Err(WhipError::Offer(OfferError::WrongDirection(_)))
    ));
    assert!(matches!(
        publish("locked", None, body()).await,
        Err(WhipError::NoKey(_))
    ));
    assert!(matches!(
        publish("locked", Some("nope"), body()).await,
        Err(WhipError::BadKey(_))
    ));
    assert!(matches!(
        publish("a b", None, body()).await,
        Err(WhipError::BadName(_))
    ));
    assert_eq!(whip.sessions(), 0, "refused offers hold no slot");
    let a = publish("one", None, body()).await.expect("first");
    assert!(matches!(
        publish("one", None, body()).await,
        Err(WhipError::AlreadyLive(_))
    ));
    let _b = publish("locked", Some("k1"), body()).await.expect("second");
    assert!(matches!(
        publish("three", None, body()).await,
        Err(WhipError::TooMany(2))
    ));
    assert!(!whip.stop("one", "no-such-session"));
    assert!(!whip.stop("other", &a.session), "the stream must match");
    // Nobody connects: both end after the idle timeout and their slots come back.
    wait_for("idle sessions to end", || whip.sessions() == 0).await;
    assert!(publish("three", None, body()).await.is_ok());
}

#[tokio::test]
async fn an_operator_kick_ends_a_whip_publish() {
    let streams = streams(&[]);
    let whip = whip(&streams, WhipConfig::default()).await;
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let text = offer().2;
    whip.publish("cam", None, text.as_bytes(), ip, None)
        .await
        .expect("answered");
    assert_eq!(whip.sessions(), 1);
    streams.kick("cam").expect("kickable");
    // Well before the idle timeout (15 s).
    wait_for("the kicked session to end", || whip.sessions() == 0).await;
}

#[tokio::test]
async fn a_request_dropped_while_its_hook_is_asked_frees_its_slot() {
    // A hook that never answers (a listener that accepts and stays silent).
    let hook = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", hook.local_addr().expect("addr"));
    let hooks = Hooks::new(crate::hooks::HookConfig {
        on_publish: Some(url),
        timeout: Duration::from_secs(30),
        ..crate::hooks::HookConfig::default()
    });
    let streams = streams(&[]);
    let whip = Whip::start(
        streams.clone(),
        hooks,
        WhipConfig::default(),
        None,
        &crate::whep::WhepConfig::default(),
    )
    .await
    .expect("start")
    .expect("on");
    let text = offer().2;
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let asking = {
        let whip = whip.clone();
        tokio::spawn(async move { whip.publish("cam", None, text.as_bytes(), ip, None).await })
    };
    wait_for("the slot to be taken", || whip.sessions() == 1).await;
    asking.abort();
    wait_for("the slot to be freed", || whip.sessions() == 0).await;
    drop(hook);
}
