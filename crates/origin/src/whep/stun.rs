//! Just enough STUN (RFC 8489) to route a datagram on the shared WHEP socket: the
//! local ICE ufrag named in a Binding request's `USERNAME` ("ours:theirs"). Which
//! session a datagram belongs to is decided from this (and from the source address
//! once a session has been seen there); str0m does the real STUN work.
//!
//! Sans-IO and fuzzed (`fuzz/fuzz_targets/whep_offer.rs` feeds it too).

const HEADER: usize = 20;
const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const USERNAME: u16 = 0x0006;

/// Whether `d` looks like a STUN message (RFC 7983 demultiplexing: first byte 0..=3
/// and the magic cookie).
pub fn is_stun(d: &[u8]) -> bool {
    d.len() >= HEADER && d[0] < 4 && d[4..8] == MAGIC
}

/// The local (our) ufrag of a Binding request, or `None` for anything else.
pub fn local_ufrag(d: &[u8]) -> Option<&str> {
    if !is_stun(d) {
        return None;
    }
    let kind = u16::from_be_bytes([d[0], d[1]]);
    if kind != BINDING_REQUEST {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([d[2], d[3]]));
    let body = d.get(HEADER..HEADER.checked_add(len)?)?;
    let mut at = 0usize;
    while at + 4 <= body.len() {
        let t = u16::from_be_bytes([body[at], body[at + 1]]);
        let l = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + l)?;
        if t == USERNAME {
            let s = std::str::from_utf8(value).ok()?;
            return s.split(':').next().filter(|u| !u.is_empty());
        }
        // Attributes are padded to 4 bytes.
        at = at + 4 + l.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &[u8]) -> Vec<u8> {
        let pad = username.len().div_ceil(4) * 4;
        let mut d = vec![0x00, 0x01];
        // A padding attribute first, then USERNAME.
        let len = 8 + 4 + pad;
        d.extend_from_slice(&(len as u16).to_be_bytes());
        d.extend_from_slice(&MAGIC);
        d.extend_from_slice(&[7; 12]);
        d.extend_from_slice(&[0x80, 0x22, 0x00, 0x03, b'a', b'b', b'c', 0]);
        d.extend_from_slice(&USERNAME.to_be_bytes());
        d.extend_from_slice(&(username.len() as u16).to_be_bytes());
        d.extend_from_slice(username);
        d.resize(d.len() + pad - username.len(), 0);
        d
    }

    #[test]
    fn the_local_ufrag_is_found() {
        assert_eq!(local_ufrag(&binding(b"srv1:brow")), Some("srv1"));
        assert_eq!(local_ufrag(&binding(b":x")), None);
        let mut response = binding(b"srv1:brow");
        response[1] = 0x01;
        response[0] = 0x01;
        assert_eq!(local_ufrag(&response), None);
        assert_eq!(local_ufrag(&[0x80, 0x60, 0, 0]), None);
        let mut cut = binding(b"srv1:brow");
        cut.truncate(30);
        assert_eq!(local_ufrag(&cut), None);
    }
}
