//! A/B forensic watermarking in the DASH-IF style: the origin holds two variants of
//! every media segment (`…/A/segN.m4s` and `…/B/segN.m4s`, identical but for an
//! invisible mark); each viewer's token carries a bit pattern, signed by the operator;
//! the edge serves segment N from variant A or B by bit `N mod len` of that pattern.
//! The manifest is the same for every viewer (it names `segN.m4s`); only the edge's
//! upstream path differs, so a leaked copy identifies its viewer by its A/B sequence.
//!
//! Token: `{pattern_hex}.{expires_unix}.{hmac_sha256_hex}`, the HMAC over
//! `{pattern_hex}.{expires_unix}` with the edge's watermark key.
//!
//! Not here: embedding the marks (done when the origin makes the variants).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Which copy of a segment a viewer gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    A,
    B,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("watermark token is not pattern.expires.signature")]
    Malformed,
    #[error("watermark token pattern is not hex (1 to 64 bytes)")]
    BadPattern,
    #[error("watermark token signature does not match")]
    BadSignature,
    #[error("watermark token expired")]
    Expired,
}

/// A verified bit pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    bytes: Vec<u8>,
}

impl Pattern {
    /// Bit `n mod len`, most significant bit first.
    pub fn variant(&self, segment: u64) -> Variant {
        let bits = self.bytes.len() as u64 * 8;
        let i = segment % bits;
        let byte = self.bytes[(i / 8) as usize];
        if (byte >> (7 - (i % 8))) & 1 == 1 {
            Variant::B
        } else {
            Variant::A
        }
    }
}

fn mac(key: &[u8], msg: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut m = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable_key(),
    };
    m.update(msg.as_bytes());
    m
}

#[cold]
fn unreachable_key() -> ! {
    panic!("HMAC-SHA256 accepts every key length")
}

/// Mints a token for `pattern` valid until `expires` (unix seconds).
pub fn mint(key: &[u8], pattern: &[u8], expires: u64) -> String {
    let msg = format!("{}.{expires}", hex::encode(pattern));
    let sig = mac(key, &msg).finalize().into_bytes();
    format!("{msg}.{}", hex::encode(sig))
}

/// Checks a token and returns its pattern.
pub fn verify(key: &[u8], token: &str, now: u64) -> Result<Pattern, TokenError> {
    let mut it = token.splitn(3, '.');
    let (Some(p), Some(e), Some(s)) = (it.next(), it.next(), it.next()) else {
        return Err(TokenError::Malformed);
    };
    let expires: u64 = e.parse().map_err(|_| TokenError::Malformed)?;
    let bytes = hex::decode(p).map_err(|_| TokenError::BadPattern)?;
    if bytes.is_empty() || bytes.len() > 64 {
        return Err(TokenError::BadPattern);
    }
    let sig = hex::decode(s).map_err(|_| TokenError::BadSignature)?;
    mac(key, &format!("{p}.{e}"))
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if now > expires {
        return Err(TokenError::Expired);
    }
    Ok(Pattern { bytes })
}

/// Segment number of a media segment path (last run of digits in the file name), or
/// `None` for init segments, playlists and other files.
pub fn segment_number(path: &str) -> Option<u64> {
    let file = path.rsplit('/').next()?;
    let (stem, ext) = file.rsplit_once('.')?;
    if !matches!(ext, "m4s" | "ts" | "mp4" | "m4v" | "m4a" | "cmfv" | "cmfa")
        || stem.starts_with("init")
    {
        return None;
    }
    let end = stem.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = stem[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    stem[start..end].parse().ok()
}

/// The upstream path of `path`'s variant: `…/dir/segN.m4s` → `…/dir/A/segN.m4s`.
pub fn variant_path(path: &str, variant: Variant) -> Option<String> {
    segment_number(path)?;
    let (dir, file) = path.rsplit_once('/')?;
    Some(format!("{dir}/{}/{file}", variant.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"watermark-key";

    #[test]
    fn token_round_trip_and_refusals() {
        let t = mint(KEY, &[0b1010_0000], 2000);
        let p = verify(KEY, &t, 1000).expect("valid");
        assert_eq!(p.variant(0), Variant::B);
        assert_eq!(p.variant(1), Variant::A);
        assert_eq!(p.variant(2), Variant::B);
        assert_eq!(p.variant(8), Variant::B, "wraps around");
        assert_eq!(verify(KEY, &t, 3000), Err(TokenError::Expired));
        assert_eq!(verify(b"other", &t, 1000), Err(TokenError::BadSignature));
        let tampered = t.replacen("a0", "a1", 1);
        assert_eq!(verify(KEY, &tampered, 1000), Err(TokenError::BadSignature));
        assert_eq!(verify(KEY, "nodots", 0), Err(TokenError::Malformed));
        assert_eq!(verify(KEY, "zz.1.00", 0), Err(TokenError::BadPattern));
        assert_eq!(verify(KEY, ".1.00", 0), Err(TokenError::BadPattern));
        assert_eq!(verify(KEY, "aa.x.00", 0), Err(TokenError::Malformed));
    }

    #[test]
    fn two_viewers_get_different_sequences() {
        let a = verify(KEY, &mint(KEY, &[0x5a, 0x0f], 10), 0).expect("a");
        let b = verify(KEY, &mint(KEY, &[0xa5, 0x0f], 10), 0).expect("b");
        let seq = |p: &Pattern| (0..16).map(|n| p.variant(n).as_str()).collect::<String>();
        assert_eq!(seq(&a), "ABABBABAAAAABBBB");
        assert_eq!(seq(&b), "BABAABABAAAABBBB");
    }

    #[test]
    fn paths() {
        assert_eq!(segment_number("/vod/m/seg12.m4s"), Some(12));
        assert_eq!(
            segment_number("/live/c/src/seg1764000123.m4s"),
            Some(1_764_000_123)
        );
        assert_eq!(segment_number("/vod/m/init.mp4"), None);
        assert_eq!(segment_number("/vod/m/index.m3u8"), None);
        assert_eq!(segment_number("/vod/m/part12.3.m4s"), Some(3));
        assert_eq!(segment_number("/x/noext"), None);
        assert_eq!(
            variant_path("/vod/m/seg12.m4s", Variant::B).as_deref(),
            Some("/vod/m/B/seg12.m4s")
        );
        assert_eq!(variant_path("/vod/m/index.m3u8", Variant::A), None);
    }
}
