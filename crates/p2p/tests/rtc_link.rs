//! Two native `PeerLink`s on 127.0.0.1, SDP handed over in-process: the data
//! channel opens and binary messages of 1 byte, 64 KiB and 2 MB (in 64 KiB chunks)
//! cross both ways intact. Hostile SDP is refused without a panic.

use std::time::Duration;

use bytes::Bytes;
use p2p::rtc::{LinkConfig, LinkEvent, PeerLink, PendingOffer, RtcError, MAX_MESSAGE};
use tokio::time::timeout;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends `data` in MAX_MESSAGE chunks on one link while reading it on the other.
async fn transfer(from: &PeerLink, to: &mut PeerLink, data: Vec<u8>) {
    let sender = from.sender();
    let out = data.clone();
    let send = tokio::spawn(async move {
        for c in out.chunks(MAX_MESSAGE) {
            sender.send(Bytes::copy_from_slice(c)).await.expect("send");
        }
    });
    let mut got = Vec::with_capacity(data.len());
    while got.len() < data.len() {
        match timeout(Duration::from_secs(30), to.recv()).await {
            Ok(Some(LinkEvent::Message(m))) => got.extend_from_slice(&m),
            other => panic!("while receiving {} of {}: {other:?}", got.len(), data.len()),
        }
    }
    send.await.expect("sender task");
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_native_links_exchange_binary_both_ways() {
    let cfg = LinkConfig::default();
    let (pending, offer) = PendingOffer::new(&cfg).expect("offer");
    assert!(
        offer.contains("a=candidate:") && offer.contains("127.0.0.1"),
        "{offer}"
    );
    let (mut b, answer) = PeerLink::answer(&cfg, &offer).expect("answer");
    let mut a = pending.accept_answer(&answer).expect("accept");
    timeout(Duration::from_secs(20), a.wait_open())
        .await
        .expect("a open in time")
        .expect("a open");
    timeout(Duration::from_secs(20), b.wait_open())
        .await
        .expect("b open in time")
        .expect("b open");

    for (len, seed) in [(1usize, 1u8), (64 * 1024, 2), (2 * 1024 * 1024, 3)] {
        transfer(&a, &mut b, pattern(len, seed)).await;
        transfer(&b, &mut a, pattern(len, seed.wrapping_add(100))).await;
    }
    assert!(matches!(
        a.send(Bytes::from(vec![0; MAX_MESSAGE + 1])).await,
        Err(RtcError::TooLarge(_))
    ));

    drop(a);
    let t = std::time::Instant::now();
    // The other side learns about it (DTLS close / SCTP abort / ICE), bounded.
    let closed = timeout(Duration::from_secs(60), async {
        loop {
            match b.recv().await {
                Some(LinkEvent::Closed(_)) | None => return,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "remote close not noticed");
    println!("remote close noticed after {:?}", t.elapsed());
}

#[tokio::test]
async fn hostile_sdp_is_refused() {
    let cfg = LinkConfig::default();
    for bad in [
        "",
        "garbage",
        &"v=0\r\n".repeat(10_000),
        "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
    ] {
        assert!(PeerLink::answer(&cfg, bad).is_err(), "accepted {bad:.40}");
        let (pending, _) = PendingOffer::new(&cfg).expect("offer");
        assert!(pending.accept_answer(bad).is_err());
    }
}

#[tokio::test]
async fn unanswered_link_times_out() {
    let cfg = LinkConfig {
        connect_timeout: Duration::from_millis(300),
        ..LinkConfig::default()
    };
    let (pending, offer) = PendingOffer::new(&cfg).expect("offer");
    // Answer it, then throw the answerer away: the offerer never gets a reply.
    let (b, answer) = PeerLink::answer(&cfg, &offer).expect("answer");
    drop(b);
    let mut a = pending.accept_answer(&answer).expect("accept");
    let ev = timeout(Duration::from_secs(10), a.recv())
        .await
        .expect("bounded");
    assert!(matches!(ev, Some(LinkEvent::Closed(_))), "{ev:?}");
}
