//! Two native peers join one swarm on our in-process tracker (`p2p::tracker::ws`),
//! get linked through WebTorrent-protocol signalling (offers/answers relayed by the
//! tracker), and exchange binary messages of 1 byte, 64 KiB and 2 MB (in 64 KiB
//! chunks) both ways. Also: hostile frames from a fake "tracker" are counted and
//! ignored.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use p2p::rtc::{LinkConfig, LinkEvent, PeerLink, MAX_MESSAGE};
use p2p::signal::{SignalConfig, Swarm, SwarmConfig};
use p2p::tracker::ws::TrackerService;
use p2p::tracker::{Id20, TrackerConfig};
use tokio::net::TcpListener;
use tokio::time::timeout;

async fn start_tracker() -> (String, tokio::task::JoinHandle<()>) {
    let svc = TrackerService::new(TrackerConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = svc.router();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("ws://{addr}/tracker"), task)
}

fn swarm_cfg(url: &str, ih: Id20, me: u8) -> SwarmConfig {
    let mut signal = SignalConfig::new(ih, Id20([me; 20]));
    signal.numwant = 2;
    SwarmConfig {
        tracker_url: url.to_string(),
        signal,
        link: LinkConfig::default(),
        uploaded: Default::default(),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

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
            other => panic!("at {} of {}: {other:?}", got.len(), data.len()),
        }
    }
    send.await.expect("sender");
    assert_eq!(got, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_native_peers_meet_through_the_tracker() {
    let (url, server) = start_tracker().await;
    let ih = Id20([0x42; 20]);
    let mut a = Swarm::join(swarm_cfg(&url, ih, 0xa1));
    // b joins once a is known to the tracker, so b's offers reach a.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = Swarm::join(swarm_cfg(&url, ih, 0xb2));

    let (pa, mut la) = timeout(Duration::from_secs(30), a.next_peer())
        .await
        .expect("a got a peer in time")
        .expect("a peer");
    let (pb, mut lb) = timeout(Duration::from_secs(30), b.next_peer())
        .await
        .expect("b got a peer in time")
        .expect("b peer");
    assert_eq!(pa, Id20([0xb2; 20]));
    assert_eq!(pb, Id20([0xa1; 20]));

    for (len, seed) in [(1usize, 5u8), (64 * 1024, 6), (2 * 1024 * 1024, 7)] {
        transfer(&la, &mut lb, pattern(len, seed)).await;
        transfer(&lb, &mut la, pattern(len, seed ^ 0x55)).await;
    }
    println!("stats a={:?} b={:?}", a.stats(), b.stats());
    assert_eq!(a.stats().bad_frames, 0);
    a.shutdown().await;
    b.shutdown().await;
    server.abort();
}

/// A fake tracker that answers the announce with junk, wrong answers and a huge
/// SDP; the client counts and ignores them and keeps its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tracker_frames_are_counted_and_ignored() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let ih = Id20([0x43; 20]);
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<String>();
    let fake = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("ws");
        let Some(Ok(first)) = ws.next().await else {
            return;
        };
        let _ = seen_tx.send(first.to_text().unwrap_or_default().to_string());
        let ihs = ih.to_binary_string();
        let other = Id20([9; 20]).to_binary_string();
        let frames = vec![
            "{not json".to_string(),
            "[]".to_string(),
            serde_json::json!({"action":"announce","info_hash":ihs,"peer_id":other,"offer_id":other,
                "answer":{"type":"answer","sdp":"v=0"}}).to_string(),
            serde_json::json!({"action":"announce","info_hash":ihs,"peer_id":other,"offer_id":other,
                "offer":{"type":"offer","sdp":"x".repeat(40_000)}}).to_string(),
            serde_json::json!({"action":"announce","info_hash":ihs,"peer_id":other,"offer_id":other,
                "offer":{"type":"offer","sdp":"v=0 but not sdp"}}).to_string(),
            serde_json::json!({"action":"announce","info_hash":ihs,"interval":"soon"}).to_string(),
        ];
        for f in frames {
            if ws
                .send(tokio_tungstenite::tungstenite::Message::text(f))
                .await
                .is_err()
            {
                return;
            }
        }
        // Keep the socket open until the client leaves.
        while let Some(Ok(_)) = ws.next().await {}
    });
    let swarm = Swarm::join(swarm_cfg(&format!("ws://{addr}/tracker"), ih, 0xc3));
    let first = timeout(Duration::from_secs(10), seen_rx)
        .await
        .expect("announce in time")
        .expect("announce");
    let v: serde_json::Value = serde_json::from_str(&first).expect("announce is json");
    assert_eq!(v["action"], "announce");
    assert_eq!(v["event"], "started");
    assert_eq!(v["info_hash"].as_str().map(|s| s.chars().count()), Some(20));
    assert!(
        v["offers"].as_array().is_some_and(|o| o.len() == 2),
        "{first:.200}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = swarm.stats();
        if s.bad_frames >= 3 && s.unknown_answers >= 1 {
            assert_eq!(s.reconnects, 0, "{s:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not counted: {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    swarm.shutdown().await;
    let _ = timeout(Duration::from_secs(5), fake).await;
}
