//! The few STUN messages the native peer reads and writes itself, as pure functions
//! over bytes (no sockets, no clock), so they are unit-tested and fuzzed directly
//! (`fuzz/fuzz_targets/stun_datagram.rs`): Binding requests to STUN/TURN servers and
//! their responses (RFC 8489, XOR-MAPPED-ADDRESS → server-reflexive candidate), and
//! the demultiplexing of datagrams that arrive on a socket shared by several links
//! ([`classify`]).
//!
//! Encoding and parsing are `stun-types` (through `turn-client-proto`, see
//! [`super::hub`]); here only size bounds, class/method/transaction checks and
//! turning every parse failure into an error value. Not TURN: allocations,
//! permissions and Send/Data indications are `turn-client-proto`'s.

use std::net::SocketAddr;

use turn_client_proto::stun::types::attribute::{Username, XorMappedAddress};
use turn_client_proto::stun::types::message::{
    Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec, TransactionId, BINDING,
};

/// Largest datagram read from the network; WebRTC and STUN keep them under the MTU.
pub const MAX_DATAGRAM: usize = 2048;
/// Longest ICE username fragment we route on (RFC 8445 allows 4–256 characters).
const MAX_UFRAG: usize = 256;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// Why a datagram is not the Binding response we wait for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("not a STUN message")]
    NotStun,
    #[error("datagram of {0} bytes is larger than {MAX_DATAGRAM}")]
    TooLarge(usize),
    #[error("malformed STUN message: {0}")]
    Parse(String),
    #[error("not a Binding success response")]
    NotBindingSuccess,
    #[error("Binding response without a usable XOR-MAPPED-ADDRESS: {0}")]
    NoMappedAddress(String),
}

/// What a datagram on a shared socket is, for routing it (RFC 7983 first-byte rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram {
    /// A STUN Binding request with `USERNAME = local:remote`: an ICE connectivity
    /// check for the link whose local ufrag is `local_ufrag`.
    IceCheck { local_ufrag: String },
    /// Another STUN message (a response, an indication, a TURN message).
    Stun,
    /// DTLS (and so SCTP data-channel traffic once connected).
    Dtls,
    /// Anything else (RTP, TURN ChannelData, garbage).
    Other,
}

/// Whether `data` starts like a STUN message (RFC 7983: first byte 0–3, magic cookie).
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] < 4 && data[4..8] == MAGIC_COOKIE
}

/// Classifies one received datagram. Never panics; malformed STUN is `Stun` (the
/// link or TURN client that receives it will ignore it) unless it is a well-formed
/// Binding request with a sane `USERNAME`.
pub fn classify(data: &[u8]) -> Datagram {
    if data.len() > MAX_DATAGRAM {
        return Datagram::Other;
    }
    if is_stun(data) {
        return match ice_check_ufrag(data) {
            Some(local_ufrag) => Datagram::IceCheck { local_ufrag },
            None => Datagram::Stun,
        };
    }
    match data.first() {
        Some(20..=63) => Datagram::Dtls,
        _ => Datagram::Other,
    }
}

/// The receiving side's ufrag of an ICE Binding request (`USERNAME = ours:theirs`).
fn ice_check_ufrag(data: &[u8]) -> Option<String> {
    let msg = Message::from_bytes(data).ok()?;
    if !msg.has_method(BINDING) || !msg.has_class(MessageClass::Request) {
        return None;
    }
    let user = msg.attribute::<Username>().ok()?;
    let (local, _remote) = user.username().split_once(':')?;
    let ok = !local.is_empty()
        && local.len() <= MAX_UFRAG
        && local.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| local.to_string())
}

/// A new Binding request (with FINGERPRINT) and its transaction id.
pub fn binding_request() -> Result<(TransactionId, Vec<u8>), StunError> {
    let mut msg = Message::builder_request(BINDING, MessageWriteVec::new());
    msg.add_fingerprint()
        .map_err(|e| StunError::Parse(e.to_string()))?;
    let id = msg.transaction_id();
    Ok((id, msg.finish()))
}

/// Parses a Binding success response: its transaction id and the mapped address
/// (our server-reflexive address as the server saw it). The caller checks that the
/// transaction id is one it sent.
pub fn binding_response(data: &[u8]) -> Result<(TransactionId, SocketAddr), StunError> {
    if data.len() > MAX_DATAGRAM {
        return Err(StunError::TooLarge(data.len()));
    }
    if !is_stun(data) {
        return Err(StunError::NotStun);
    }
    let msg = Message::from_bytes(data).map_err(|e| StunError::Parse(e.to_string()))?;
    if !msg.has_method(BINDING) || !msg.has_class(MessageClass::Success) {
        return Err(StunError::NotBindingSuccess);
    }
    let id = msg.transaction_id();
    let xor = msg
        .attribute::<XorMappedAddress>()
        .map_err(|e| StunError::NoMappedAddress(e.to_string()))?;
    let addr = xor.addr(id);
    if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
        return Err(StunError::NoMappedAddress(format!(
            "unusable address {addr}"
        )));
    }
    Ok((id, addr))
}

/// The transaction id of a STUN message's header, if `data` looks like STUN.
pub fn transaction_id(data: &[u8]) -> Option<TransactionId> {
    if !is_stun(data) {
        return None;
    }
    let b: [u8; 12] = data.get(8..20)?.try_into().ok()?;
    let mut id = [0u8; 16];
    id[4..].copy_from_slice(&b);
    Some(TransactionId::from(u128::from_be_bytes(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use turn_client_proto::stun::types::message::MessageType;

    fn success(id: TransactionId, addr: SocketAddr) -> Vec<u8> {
        let mut m = Message::builder(
            MessageType::from_class_method(MessageClass::Success, BINDING),
            id,
            MessageWriteVec::new(),
        );
        m.add_attribute(&XorMappedAddress::new(addr, id))
            .expect("attr");
        m.finish()
    }

    #[test]
    fn a_binding_round_trip_yields_the_mapped_address() {
        let (id, req) = binding_request().expect("request");
        assert!(is_stun(&req));
        assert_eq!(transaction_id(&req), Some(id));
        let mapped: SocketAddr = "198.51.100.11:40000".parse().expect("addr");
        let resp = success(id, mapped);
        assert_eq!(binding_response(&resp), Ok((id, mapped)));
        assert_eq!(classify(&resp), Datagram::Stun);
        // The request itself is not a response.
        assert_eq!(binding_response(&req), Err(StunError::NotBindingSuccess));
    }

    #[test]
    fn hostile_binding_responses_are_errors_not_panics() {
        let (id, _) = binding_request().expect("request");
        let good = success(id, "198.51.100.11:40000".parse().expect("addr"));
        // Every truncation, and every single-byte corruption.
        for n in 0..good.len() {
            let _ = binding_response(&good[..n]);
            let _ = classify(&good[..n]);
            for v in [0u8, 0xff, 0x80, 0x01] {
                let mut bad = good.clone();
                bad[n] = v;
                let _ = binding_response(&bad);
                let _ = classify(&bad);
                let _ = transaction_id(&bad);
            }
        }
        assert_eq!(binding_response(b"hello"), Err(StunError::NotStun));
        assert!(matches!(
            binding_response(&vec![0u8; MAX_DATAGRAM + 1]),
            Err(StunError::TooLarge(_))
        ));
        // A success without XOR-MAPPED-ADDRESS.
        let m = Message::builder(
            MessageType::from_class_method(MessageClass::Success, BINDING),
            id,
            MessageWriteVec::new(),
        )
        .finish();
        assert!(matches!(
            binding_response(&m),
            Err(StunError::NoMappedAddress(_))
        ));
        // A length field that claims more than the datagram holds.
        let mut long = good.clone();
        long[2] = 0xff;
        assert!(matches!(binding_response(&long), Err(StunError::Parse(_))));
        // An unspecified mapped address is refused.
        let zero = success(id, "0.0.0.0:1".parse().expect("addr"));
        assert!(matches!(
            binding_response(&zero),
            Err(StunError::NoMappedAddress(_))
        ));
    }

    #[test]
    fn ice_checks_are_routed_by_the_receivers_ufrag() {
        let mut m = Message::builder_request(BINDING, MessageWriteVec::new());
        m.add_attribute(&Username::new("abcd:wxyz").expect("user"))
            .expect("attr");
        let req = m.finish();
        assert_eq!(
            classify(&req),
            Datagram::IceCheck {
                local_ufrag: "abcd".into()
            }
        );
        let mut m = Message::builder_request(BINDING, MessageWriteVec::new());
        m.add_attribute(&Username::new("nocolon").expect("user"))
            .expect("attr");
        assert_eq!(classify(&m.finish()), Datagram::Stun);
        assert_eq!(classify(&[22, 254, 253, 0]), Datagram::Dtls);
        assert_eq!(classify(&[0x40, 0, 0, 4, 1, 2, 3, 4]), Datagram::Other);
        assert_eq!(classify(&[]), Datagram::Other);
    }
}
