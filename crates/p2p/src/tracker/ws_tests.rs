//! The WebSocket shell against real sockets: silent WebSockets are closed, answering
//! ones are PINGed and kept, and (served through `service::serve`) an upgraded
//! WebSocket keeps its connection slot. Every wait is bounded; nothing depends on
//! how fast the machine is. `service` is a dev-dependency only: the tracker stays
//! below the services layer.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::ws::TrackerService;
use super::TrackerConfig;

const BOUND: Duration = Duration::from_secs(15);

async fn start(cfg: TrackerConfig, max_connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = service::ServeLimits {
        max_connections,
        ..service::ServeLimits::default()
    };
    let svc = TrackerService::new(cfg);
    svc.spawn_ticker();
    let app = svc.router();
    // As `mediamesh tracker` wires it: the accept loop, the client's address as
    // `ConnectInfo`, the router.
    tokio::spawn(service::serve(
        listener,
        limits,
        None,
        move |req: hyper::Request<hyper::body::Incoming>, peer: SocketAddr| {
            let mut app = app.clone();
            async move {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                match tower::Service::call(&mut app, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            }
        },
    ));
    addr
}

fn quick() -> TrackerConfig {
    TrackerConfig {
        ping_every: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(300),
        ..TrackerConfig::default()
    }
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn client(addr: SocketAddr) -> Result<Client, String> {
    let url = format!("ws://{addr}/tracker");
    match tokio::time::timeout(BOUND, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

/// A WebSocket handshake by hand; the socket then never answers anything.
async fn deaf_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"GET /tracker HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(BOUND, s.read(&mut b))
            .await
            .expect("handshake answer in time")
            .unwrap();
        assert_eq!(n, 1, "closed during the handshake");
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    s
}

#[tokio::test]
async fn a_silent_websocket_is_pinged_then_closed() {
    let addr = start(quick(), 100).await;
    let mut s = deaf_client(addr).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(BOUND, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("a silent WebSocket was kept open"),
        }
    }
    // Server frames are unmasked: 0x89 = PING, 0x88 = CLOSE.
    assert!(got.contains(&0x89), "no PING before closing: {got:?}");
    assert!(got.contains(&0x88), "no CLOSE frame: {got:?}");
}

#[tokio::test]
async fn a_websocket_that_answers_pings_stays_open() {
    let addr = start(quick(), 100).await;
    let mut ws = client(addr).await.expect("connect");
    // The client library answers each PING; ten of them span more than three idle
    // timeouts, and the socket must still be open after them.
    let mut pings = 0;
    while pings < 10 {
        match tokio::time::timeout(BOUND, ws.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => {
                panic!("closed after {pings} pings although the client answered")
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("error after {pings} pings: {e}"),
            Err(_) => panic!("no PING within {BOUND:?}"),
        }
    }
    ws.send(Message::Close(None)).await.ok();
}

#[tokio::test]
async fn websockets_keep_their_connection_slot() {
    let addr = start(TrackerConfig::default(), 3).await;
    let first = client(addr).await.expect("1st");
    let _second = client(addr).await.expect("2nd");
    let _third = client(addr).await.expect("3rd");
    // Three upgraded sockets hold all three slots.
    assert!(
        client(addr).await.is_err(),
        "a 4th WebSocket got in: upgrades released their slot"
    );
    // Closing one gives its slot back.
    let mut first = first;
    first.close(None).await.ok();
    drop(first);
    let until = tokio::time::Instant::now() + BOUND;
    loop {
        if client(addr).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "slot not given back after close"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn messages_larger_than_the_read_buffer_still_arrive() {
    let addr = start(TrackerConfig::default(), 100).await;
    let mut ws = client(addr).await.expect("connect");
    // A 20 KiB scrape (5x the 4 KiB initial read buffer) gets its answer.
    let pad = "x".repeat(20 * 1024);
    let msg = format!(r#"{{"action":"scrape","info_hash":[],"pad":"{pad}"}}"#);
    ws.send(Message::Text(msg.into())).await.expect("send");
    match tokio::time::timeout(BOUND, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => assert!(t.contains("scrape"), "{t}"),
        other => panic!("no answer to a 20 KiB message: {other:?}"),
    }
}
