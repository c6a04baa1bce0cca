//! Tracker scale-out: two `mediamesh tracker` processes share swarms through a real
//! `redis-server` (pub/sub). A peer announcing to tracker A and a peer announcing to
//! tracker B exchange an offer and its answer, as WebTorrent clients do.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::redis::Redis;
use crate::common::*;
use tungstenite::Message;

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// `mediamesh tracker --registry {redis}` on port 0; waits until it serves.
fn start_tracker(redis: &str) -> Server {
    Server::start_role("tracker", &["--registry", redis])
}

/// A 20-byte id as the protocol's "binary string" (Latin-1 code points).
fn bin(b: u8) -> String {
    std::iter::repeat_n(char::from(b), 20).collect()
}

fn connect(port: u16) -> Ws {
    let (ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}/tracker")).expect("ws");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
    }
    ws
}

fn send(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::text(v.to_string())).expect("send");
}

/// Reads messages until one satisfies `pred` (bounded).
fn wait_for(
    ws: &mut Ws,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                if pred(&v) {
                    return v;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{what}: websocket error {e}"),
        }
    }
    panic!("{what}: nothing arrived within 15 s");
}

fn announce(ih: &str, pid: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({
        "action": "announce", "info_hash": ih, "peer_id": pid, "numwant": 5,
        "uploaded": 0, "downloaded": 0, "left": 100, "event": "started",
    });
    if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v
}

#[test]
fn peers_on_different_trackers_exchange_offers_through_redis() {
    let rport = free_port();
    let _redis = Redis::start_on(rport);
    let url = format!("redis://127.0.0.1:{rport}");
    let tracker_a = start_tracker(&url);
    let tracker_b = start_tracker(&url);
    let (port_a, port_b) = (tracker_a.http, tracker_b.http);
    let ih = bin(0x42);
    let (peer_a, peer_b) = (bin(0x61), bin(0x62));

    // Peer A joins the swarm on tracker A.
    let mut wa = connect(port_a);
    send(&mut wa, announce(&ih, &peer_a, serde_json::json!({})));
    wait_for(&mut wa, "A's announce reply", |v| v["interval"].is_number());

    // Peer B on tracker B keeps offering until A's presence has crossed Redis.
    let mut wb = connect(port_b);
    let offer_id = bin(0x7f);
    let started = Instant::now();
    let offer = loop {
        send(
            &mut wb,
            announce(
                &ih,
                &peer_b,
                serde_json::json!({"offers": [{"offer": {"type": "offer", "sdp": "v=0 from-b"}, "offer_id": offer_id}]}),
            ),
        );
        wait_for(&mut wb, "B's announce reply", |v| v["interval"].is_number());
        // Any offer relayed to A?
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = wa.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .expect("timeout");
        }
        let got = match wa.read() {
            Ok(Message::Text(t)) => serde_json::from_str::<serde_json::Value>(&t).ok(),
            _ => None,
        };
        if let Some(v) = got.filter(|v| v["offer"].is_object()) {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tracker B never relayed B's offer to A's peer on tracker A"
        );
    };
    assert_eq!(offer["offer"]["sdp"], "v=0 from-b");
    assert_eq!(offer["peer_id"].as_str(), Some(peer_b.as_str()));
    eprintln!(
        "FLEET trackers: offer crossed trackers {:.2} s after B first offered",
        started.elapsed().as_secs_f64()
    );

    // A answers; the answer reaches B through tracker A → Redis → tracker B.
    send(
        &mut wa,
        announce(
            &ih,
            &peer_a,
            serde_json::json!({"to_peer_id": peer_b, "offer_id": offer_id, "answer": {"type": "answer", "sdp": "v=0 from-a"}}),
        ),
    );
    let answer = wait_for(&mut wb, "A's answer at B", |v| v["answer"].is_object());
    assert_eq!(answer["answer"]["sdp"], "v=0 from-a");
    assert_eq!(answer["peer_id"].as_str(), Some(peer_a.as_str()));
    assert_eq!(answer["offer_id"].as_str(), Some(offer_id.as_str()));
}
