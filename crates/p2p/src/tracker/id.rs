//! 20-byte identifiers (`info_hash`, `peer_id`) as they travel on the wire.
//!
//! The WebTorrent protocol puts raw bytes into JSON strings as "binary strings":
//! each character's code point is one byte (0–255). This module converts between
//! that form and bytes/hex. It does not validate anything else about the ids.

use std::fmt;

/// A 20-byte BitTorrent id: an info hash or a peer id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id20(pub [u8; 20]);

impl Id20 {
    /// Parses a binary string: exactly 20 characters, each U+0000..=U+00FF.
    pub fn from_binary_str(s: &str) -> Option<Self> {
        let mut out = [0u8; 20];
        let mut n = 0usize;
        for c in s.chars() {
            let slot = out.get_mut(n)?;
            *slot = u8::try_from(u32::from(c)).ok()?;
            n += 1;
        }
        (n == 20).then_some(Id20(out))
    }

    /// The binary-string form (what goes into JSON on the wire).
    pub fn to_binary_string(&self) -> String {
        self.0.iter().map(|&b| char::from(b)).collect()
    }

    /// Lower-case hex, 40 characters (for logs and tests).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 40 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id20(out))
    }
}

impl fmt::Debug for Id20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id20({})", self.to_hex())
    }
}

impl fmt::Display for Id20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
