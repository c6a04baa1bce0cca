//! Server side of the RTMP "simple" handshake.
//!
//! This module is for turning C0+C1 into S0+S1+S2 and then consuming C2.
//! S1 carries a zero timestamp, zero version field and filler bytes; S2 echoes
//! C1. That is what ffmpeg, OBS (librtmp) and other publishers accept.
//!
//! It does *not* implement the digest ("complex", Flash Player 9+) handshake,
//! RTMPE encryption, or validate the content of C2.

use bytes::{Buf, BytesMut};
use thiserror::Error;

/// Protocol version carried in C0/S0 (plain RTMP).
pub const RTMP_VERSION: u8 = 3;
/// Size of C1/C2/S1/S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// Handshake failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    #[error("unsupported RTMP version byte {0} (only 3 is supported)")]
    BadVersion(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    WaitC0C1,
    WaitC2,
    Done,
}

/// Handshake state machine.
#[derive(Debug)]
pub struct Handshake {
    state: State,
}

impl Default for Handshake {
    fn default() -> Self {
        Self::new()
    }
}

impl Handshake {
    pub fn new() -> Self {
        Handshake {
            state: State::WaitC0C1,
        }
    }

    /// True once C2 has been consumed; chunk data follows.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consume handshake bytes from the front of `input`, appending the
    /// server's reply to `out`. Bytes after C2 are left in `input`.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<(), HandshakeError> {
        loop {
            match self.state {
                State::WaitC0C1 => {
                    // Check the version as early as possible so garbage is
                    // rejected without waiting for 1537 bytes.
                    match input.first() {
                        None => return Ok(()),
                        Some(&RTMP_VERSION) => {}
                        Some(&v) => return Err(HandshakeError::BadVersion(v)),
                    }
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(());
                    }
                    input.advance(1);
                    let c1 = input.split_to(HANDSHAKE_SIZE);
                    out.reserve(1 + 2 * HANDSHAKE_SIZE);
                    out.extend_from_slice(&[RTMP_VERSION]);
                    out.extend_from_slice(&s1(&c1));
                    out.extend_from_slice(&c1);
                    self.state = State::WaitC2;
                }
                State::WaitC2 => {
                    if input.len() < HANDSHAKE_SIZE {
                        return Ok(());
                    }
                    input.advance(HANDSHAKE_SIZE);
                    self.state = State::Done;
                }
                State::Done => return Ok(()),
            }
        }
    }
}

/// S1: time 0, zero field 0 (so clients use the simple handshake), then
/// filler. The filler needs no cryptographic quality; a xorshift seeded from
/// C1 keeps the module deterministic and dependency-free.
fn s1(c1: &[u8]) -> Vec<u8> {
    let mut s1 = vec![0u8; HANDSHAKE_SIZE];
    let mut x: u32 = c1
        .iter()
        .take(64)
        .fold(0x9e37_79b9u32, |acc, &b| acc.rotate_left(5) ^ u32::from(b))
        | 1;
    for byte in s1.iter_mut().skip(8) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *byte = x as u8;
    }
    s1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c0c1() -> Vec<u8> {
        let mut v = vec![RTMP_VERSION];
        v.extend((0..HANDSHAKE_SIZE).map(|i| (i % 251) as u8));
        v
    }

    #[test]
    fn full_handshake_in_one_go() {
        let mut hs = Handshake::new();
        let mut input = BytesMut::from(&c0c1()[..]);
        input.extend_from_slice(&[7u8; HANDSHAKE_SIZE]); // C2
        input.extend_from_slice(b"rest");
        let mut out = BytesMut::new();
        hs.process(&mut input, &mut out).unwrap();
        assert!(hs.is_done());
        assert_eq!(&input[..], b"rest");
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(out[0], RTMP_VERSION);
        assert_eq!(&out[1..9], &[0u8; 8]);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c0c1()[1..]);
    }

    #[test]
    fn byte_by_byte() {
        let mut hs = Handshake::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut all = c0c1();
        all.extend_from_slice(&[0u8; HANDSHAKE_SIZE]);
        for (i, b) in all.iter().enumerate() {
            input.extend_from_slice(&[*b]);
            hs.process(&mut input, &mut out).unwrap();
            if i < HANDSHAKE_SIZE {
                assert!(out.is_empty());
            }
        }
        assert!(hs.is_done());
        assert!(input.is_empty());
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
    }

    #[test]
    fn bad_version_is_rejected_immediately() {
        for v in [0u8, 6, b'G'] {
            let mut hs = Handshake::new();
            let mut input = BytesMut::from(&[v][..]);
            let mut out = BytesMut::new();
            assert_eq!(
                hs.process(&mut input, &mut out),
                Err(HandshakeError::BadVersion(v))
            );
            assert!(out.is_empty());
        }
    }
}
