//! The WebSocket shell under pressure: a client that stops reading is disconnected
//! once its outgoing queue is full, and its peer leaves the swarm. Uses a tiny
//! hand-rolled WebSocket client over TCP so no extra crates are needed.

use std::time::{Duration, Instant};

use p2p::tracker::ws::TrackerService;
use p2p::tracker::{Id20, TrackerConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn ws_connect(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"GET /tracker HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("handshake write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("handshake read");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Sends one masked text frame (mask key 0, which leaves the payload as is).
async fn send_text(s: &mut TcpStream, text: &str) {
    let p = text.as_bytes();
    let mut f = vec![0x81u8];
    match p.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(p);
    s.write_all(&f).await.expect("frame write");
}

/// Reads one (unmasked, unfragmented) frame's payload.
async fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.expect("frame header");
    let len = match h[1] & 0x7f {
        126 => u64::from(s.read_u16().await.expect("len16")),
        127 => s.read_u64().await.expect("len64"),
        n => u64::from(n),
    };
    let mut p = vec![0u8; len as usize];
    s.read_exact(&mut p).await.expect("payload");
    p
}

fn announce(ih: Id20, pid: Id20, offer_sdp: Option<&str>) -> String {
    let offers = match offer_sdp {
        Some(sdp) => {
            json!([{"offer": {"type": "offer", "sdp": sdp}, "offer_id": Id20([1; 20]).to_binary_string()}])
        }
        None => json!([]),
    };
    json!({"action": "announce", "info_hash": ih.to_binary_string(), "peer_id": pid.to_binary_string(),
        "left": 1, "event": "started", "numwant": 1, "offers": offers})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_is_disconnected_and_leaves_swarm() {
    let cfg = TrackerConfig {
        outgoing_queue: 2,
        rate_per_sec: 1e6,
        rate_burst: 1e6,
        send_timeout: Duration::from_secs(60),
        ..TrackerConfig::default()
    };
    let svc = TrackerService::new(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = svc.router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let ih = Id20([5; 20]);
    let mut victim = ws_connect(addr).await;
    send_text(&mut victim, &announce(ih, Id20([6; 20]), None)).await;
    let reply = read_frame(&mut victim).await;
    assert!(String::from_utf8_lossy(&reply).contains("\"incomplete\":1"));
    // From now on the victim never reads.

    let mut flooder = ws_connect(addr).await;
    let sdp = "x".repeat(60_000);
    let frame = announce(ih, Id20([8; 20]), Some(&sdp));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut kicked = false;
    let mut rounds = 0u32;
    while Instant::now() < deadline {
        send_text(&mut flooder, &frame).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut flooder))
            .await
            .expect("flooder reply");
        let (peers, _, conns) = svc.stats();
        rounds += 1;
        if peers == 1 && conns == 1 {
            kicked = true;
            break;
        }
    }
    println!("victim disconnected after {rounds} flood rounds");
    assert!(kicked, "slow client not disconnected: {:?}", svc.stats());
    assert!(rounds > 2, "victim dropped before its queue could fill");
    server.abort();
}
