//! Fuzz what the native peer's shared ICE socket reads from the network
//! (`p2p::rtc::hub`): the demultiplexer (`classify`: ICE check → link by ufrag, STUN,
//! DTLS), the Binding-response parser that yields server-reflexive addresses
//! (XOR-MAPPED-ADDRESS), the header transaction-id reader, and the TURN client that
//! datagrams from the TURN server are handed to (`turn-client-proto`, fed exactly as
//! the hub feeds it). Also the `--ice-server` URL → native server conversion.
//! Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p::rtc::stun::{binding_response, classify, transaction_id};
use p2p::signal::ice::IceServer;
use turn_client_proto::api::{Transmit, TurnClientApi, TurnConfig};
use turn_client_proto::stun::types::TransportType;
use turn_client_proto::stun::Instant;
use turn_client_proto::types::TurnCredentials;
use turn_client_proto::udp::TurnClientUdp;

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    let _ = transaction_id(data);
    if let Ok((_, addr)) = binding_response(data) {
        assert!(addr.port() != 0);
    }

    let local = "192.168.1.2:40000".parse().expect("addr");
    let server = "198.51.100.1:3478".parse().expect("addr");
    let cfg = TurnConfig::new(TurnCredentials::new("user", "pass"));
    let mut client = TurnClientUdp::allocate(local, server, cfg);
    let now = Instant::from_nanos(0);
    let _ = client.poll(now);
    while client.poll_transmit(now).is_some() {}
    for chunk in std::iter::once(data).chain(data.split(|b| *b == 0xff).take(8)) {
        let _ = client.recv(Transmit::new(chunk, TransportType::Udp, server, local), now);
        while client.poll_transmit(now).is_some() {}
        while client.poll_event().is_some() {}
    }

    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(s) = IceServer::parse(text) {
            let _ = s.native();
        }
    }
});
