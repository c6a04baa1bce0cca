//! `rtc::IceHub::gather` against small hostile STUN servers on loopback: answers
//! with the wrong transaction id, garbage and truncated messages are ignored, the
//! right answer is taken, and a silent server costs a bounded wait. (The real
//! coturn, NATs and TURN relaying are in `crates/mediamesh/tests/e2e/nat.rs`.)

use std::net::SocketAddr;
use std::time::Duration;

use p2p::rtc::stun::{binding_request, transaction_id};
use p2p::rtc::IceHub;
use p2p::signal::ice::IceServer;
use tokio::net::UdpSocket;
use turn_client_proto::stun::types::attribute::XorMappedAddress;
use turn_client_proto::stun::types::message::{
    Message, MessageClass, MessageType, MessageWrite, MessageWriteExt, MessageWriteVec,
    TransactionId, BINDING,
};

fn success(id: TransactionId, mapped: SocketAddr) -> Vec<u8> {
    let mut m = Message::builder(
        MessageType::from_class_method(MessageClass::Success, BINDING),
        id,
        MessageWriteVec::new(),
    );
    m.add_attribute(&XorMappedAddress::new(mapped, id))
        .expect("attribute");
    m.finish()
}

/// Answers every Binding request with hostile datagrams first, then (if `mapped`)
/// the right answer.
async fn hostile_stun(mapped: Option<SocketAddr>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let Some(id) = transaction_id(&buf[..n]) else {
                continue;
            };
            let (other, _) = binding_request().expect("request");
            let wrong_id = success(other, "192.0.2.66:6666".parse().expect("addr"));
            let good = success(id, mapped.unwrap_or("192.0.2.1:1".parse().expect("addr")));
            let mut truncated = good.clone();
            truncated.truncate(good.len() - 3);
            let mut lying_length = good.clone();
            lying_length[3] = 0xf0;
            for d in [
                wrong_id.as_slice(),
                truncated.as_slice(),
                lying_length.as_slice(),
                b"\x01\x01\x00\x00\x21\x12\xa4\x42garbage-garbage",
                &[0u8; 3000][..],
            ] {
                let _ = sock.send_to(d, from).await;
            }
            if mapped.is_some() {
                let _ = sock.send_to(&good, from).await;
            }
        }
    });
    addr
}

fn stun(addr: SocketAddr) -> p2p::signal::ice::NativeIceServer {
    IceServer::parse(&format!("stun:{addr}"))
        .expect("url")
        .native()
        .expect("native")
}

#[tokio::test]
async fn gathers_the_mapped_address_and_ignores_hostile_answers() {
    let mapped: SocketAddr = "203.0.113.7:5555".parse().expect("addr");
    let server = hostile_stun(Some(mapped)).await;
    let hub = IceHub::gather(&[stun(server)], Duration::from_secs(5))
        .await
        .expect("gather");
    assert_eq!(hub.server_reflexive(), vec![mapped]);
    assert_eq!(hub.host().ip(), server.ip());
    assert_eq!(hub.relayed(), None);
}

#[tokio::test]
async fn a_server_that_never_answers_rightly_costs_a_bounded_wait() {
    let server = hostile_stun(None).await;
    let limit = Duration::from_secs(2);
    let gathered = tokio::time::timeout(
        limit + Duration::from_secs(3),
        IceHub::gather(&[stun(server)], limit),
    )
    .await
    .expect("gather ends")
    .expect("gather");
    assert!(gathered.server_reflexive().is_empty());
}

#[tokio::test]
async fn unresolvable_servers_are_an_error() {
    let s = IceServer::parse("stun:does-not-exist.invalid:3478")
        .expect("url")
        .native()
        .expect("native");
    assert!(IceHub::gather(&[s], Duration::from_secs(3)).await.is_err());
}
