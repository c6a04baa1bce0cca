//! WHEP end to end inside one process: the demo clip publishes, native str0m viewers
//! (a WebRTC stack of their own, over loopback UDP) play, and the shared fan-out, the
//! limits and the refusals are checked. Browser playback is the e2e suite's part.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, RtcConfig};
use tokio::net::UdpSocket;

use super::*;
use crate::config::{Limits, PackagingConfig};
use crate::ingest::demo::{self, Clip, DEMO_CLIP};

fn streams() -> Arc<Streams> {
    Arc::new(Streams::new(
        PackagingConfig::default(),
        Limits::default(),
        HashMap::new(),
        false,
    ))
}

/// A native viewer's offer (recvonly video and audio) and its pending state.
fn offer() -> (str0m::Rtc, str0m::change::SdpPendingOffer, String) {
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = api.apply().expect("changes");
    let text = offer.to_sdp_string();
    (rtc, pending, text)
}

/// Plays `stream` until it saw `frames` video frames and some audio (or 20 s);
/// returns (video frames, audio packets) and then DELETEs its session.
async fn viewer(whep: Arc<Whep>, stream: &str, frames: u32) -> (u32, u32) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = sock.local_addr().expect("addr");
    let (mut rtc, pending, text) = offer();
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
    let answer = whep.play(stream, text.as_bytes()).expect("answered");
    let sdp = SdpAnswer::from_sdp_string(&answer.sdp).expect("answer parses");
    rtc.sdp_api()
        .accept_answer(pending, sdp)
        .expect("answer accepted");
    let (mut video, mut audio) = (0u32, 0u32);
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 2048];
    while tokio::time::Instant::now() < until && (video < frames || audio < 5) {
        let wake = loop {
            match rtc.poll_output().expect("poll") {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::MediaData(d)) => match d.params.spec().codec {
                    Codec::H264 => video += 1,
                    Codec::Opus => audio += 1,
                    _ => {}
                },
                Output::Event(_) => {}
            }
        };
        let wake = tokio::time::Instant::from_std(wake).min(until);
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
    assert!(whep.stop(stream, &answer.session), "session known");
    (video, audio)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_viewers_share_one_fanout_and_get_video_and_opus() {
    let streams = streams();
    let clip = Clip::parse(DEMO_CLIP).expect("clip");
    let publish = tokio::spawn(demo::run(streams.clone(), "cam", clip));
    let whep = Whep::start(streams.clone(), WhepConfig::default())
        .await
        .expect("start")
        .expect("on");
    wait_for("the stream", || streams.get("cam").is_some()).await;
    let tap_idle = !streams.get("cam").expect("cam").whep_tap.is_attached();
    assert!(tap_idle, "no fan-out before the first viewer");

    let viewers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(viewer(whep.clone(), "cam", 30)))
        .collect();
    for v in viewers {
        let (video, audio) = v.await.expect("viewer");
        assert!(video >= 30, "video frames {video}");
        assert!(audio >= 5, "Opus packets {audio}");
    }
    // One fan-out for three viewers: the stream was prepared once.
    assert_eq!(whep.fanouts_started(), 1);
    // Everyone gone: sessions end, the fan-out stops, the tap goes idle.
    wait_for("sessions to end", || whep.sessions() == 0).await;
    let cam = streams.get("cam").expect("cam");
    wait_for("the tap to go idle", || !cam.whep_tap.is_attached()).await;
    // A new viewer starts a new fan-out.
    let (video, _) = viewer(whep.clone(), "cam", 5).await;
    assert!(video >= 5);
    assert_eq!(whep.fanouts_started(), 2);
    publish.abort();
}

#[tokio::test]
async fn refusals_and_the_session_limit() {
    let streams = streams();
    let _publisher = streams.publish("cam", None).expect("publish");
    let config = WhepConfig {
        max_sessions: 2,
        max_offer_bytes: 16 * 1024,
        ..WhepConfig::default()
    };
    let whep = Whep::start(streams.clone(), config)
        .await
        .expect("start")
        .expect("on");
    let (_, _, text) = offer();
    assert!(matches!(
        whep.play("nope", text.as_bytes()),
        Err(PlayError::NoStream(_))
    ));
    assert!(matches!(
        whep.play("cam", b"garbage"),
        Err(PlayError::Offer(OfferError::NotSdp))
    ));
    assert!(matches!(
        whep.play("cam", &vec![b'v'; 20_000]),
        Err(PlayError::Offer(OfferError::TooLarge { .. }))
    ));
    let broken = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n";
    assert!(matches!(
        whep.play("cam", broken.as_bytes()),
        Err(PlayError::Sdp(_) | PlayError::Answer(_))
    ));
    assert_eq!(whep.sessions(), 0, "refused offers hold no slot");
    let a = whep.play("cam", text.as_bytes()).expect("first");
    let (_, _, text2) = offer();
    let _b = whep.play("cam", text2.as_bytes()).expect("second");
    let (_, _, text3) = offer();
    assert!(matches!(
        whep.play("cam", text3.as_bytes()),
        Err(PlayError::TooMany(2))
    ));
    assert!(!whep.stop("cam", "no-such-session"));
    assert!(!whep.stop("other", &a.session), "the stream must match");
    assert!(whep.stop("cam", &a.session));
    wait_for("a slot to free", || whep.sessions() == 1).await;
    assert!(whep.play("cam", text3.as_bytes()).is_ok());
    assert_eq!(whep.fanouts_started(), 1);
}

#[tokio::test]
async fn an_unconnected_session_ends_after_the_idle_timeout() {
    let streams = streams();
    let _publisher = streams.publish("cam", None).expect("publish");
    let config = WhepConfig {
        idle_timeout: Duration::from_millis(300),
        ..WhepConfig::default()
    };
    let whep = Whep::start(streams.clone(), config)
        .await
        .expect("start")
        .expect("on");
    let (_, _, text) = offer();
    whep.play("cam", text.as_bytes()).expect("answered");
    assert_eq!(whep.sessions(), 1);
    wait_for("the idle session to end", || whep.sessions() == 0).await;
}

#[tokio::test]
async fn off_when_no_sessions_are_allowed_or_no_address_is_given() {
    let off = WhepConfig {
        max_sessions: 0,
        ..WhepConfig::default()
    };
    assert!(Whep::start(streams(), off).await.expect("ok").is_none());
    let any = WhepConfig {
        udp: Some(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
        ..WhepConfig::default()
    };
    assert!(matches!(
        Whep::start(streams(), any).await,
        Err(WhepStartError::NoCandidate(_))
    ));
}
