//! Swarm and peer identifiers exactly as p2p-media-loader 2.3 derives them
//! (`utils/stream.ts`, `utils/peer.ts`, and `segment-manager.ts` of
//! `p2p-media-loader-hlsjs` 2.3), so native peers join the browsers' swarms.
//!
//! Not for tracker messages themselves (see `tracker` / `signal`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::Rng;
use sha1::{Digest, Sha1};

/// The peer protocol version in every stream swarm id.
pub const PEER_PROTOCOL_VERSION: &str = "v2";
/// The `-PM{major:02}{minor:02}-` prefix of 2.3 peer ids.
pub const PEER_ID_PREFIX: &str = "-PM0203-";
/// Alphabet of the random part of a peer id.
pub const PEER_ID_SYMBOLS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const PEER_ID_LEN: usize = 20;

/// Main (video or muxed) or secondary (separate audio) stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    Main,
    Secondary,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Secondary => "secondary",
        }
    }
}

/// The swarm id when the player config sets no `swarmId`: the master playlist's
/// response URL with everything from the first `?` removed (`Core.setManifestResponseUrl`).
/// The fragment, if any, stays; hls.js never sends one.
pub fn default_swarm_id(manifest_response_url: &str) -> &str {
    manifest_response_url
        .split_once('?')
        .map_or(manifest_response_url, |(before, _)| before)
}

/// `v2-{swarmId}-{main|secondary}-{index}`. In 2.3 the hls.js integration's `index`
/// is [`stream_short_id`] of the variant (2.2 used the variant's position, 0, 1, …).
pub fn stream_swarm_id(swarm_id: &str, kind: StreamKind, index: &str) -> String {
    format!(
        "{PEER_PROTOCOL_VERSION}-{swarm_id}-{}-{index}",
        kind.as_str()
    )
}

/// The tracker `info_hash` of a stream swarm: base64 of the first 15 bytes of
/// SHA-1(stream swarm id), a 20-character ASCII string sent as-is (its UTF-8 bytes) —
/// not the binary SHA-1. (2.2 took bytes 1..16 of MD5 instead.)
pub fn info_hash(stream_swarm_id: &str) -> [u8; 20] {
    let digest = Sha1::digest(stream_swarm_id.as_bytes());
    let mut out = [0u8; 20];
    // 15 bytes encode to exactly 20 base64 characters, no padding.
    let _ = STANDARD.encode_slice(&digest[..15], &mut out);
    out
}

/// A fresh 2.3 peer id: [`PEER_ID_PREFIX`] then 12 random alphanumerics (ASCII, so
/// its 20 UTF-8 bytes are the tracker's `peer_id`).
pub fn generate_peer_id<R: Rng + ?Sized>(rng: &mut R) -> [u8; PEER_ID_LEN] {
    let mut id = [0u8; PEER_ID_LEN];
    id[..PEER_ID_PREFIX.len()].copy_from_slice(PEER_ID_PREFIX.as_bytes());
    for b in &mut id[PEER_ID_PREFIX.len()..] {
        *b = PEER_ID_SYMBOLS[rng.gen_range(0..PEER_ID_SYMBOLS.len())];
    }
    id
}

/// What hls.js knows of a variant or audio rendition; the input of
/// [`stream_short_id`]. Fill it as `p2p-media-loader-hlsjs` 2.3 does:
///
/// - variant (`StreamKind::Main`): `bitrate` = `BANDWIDTH`; if that is 0, leave
///   every other field empty. Else `codecs` = the *video* codec of `CODECS` (hls.js
///   `videoCodec`), `width`/`height` from `RESOLUTION`, `frame_rate` = the
///   `FRAME-RATE` attribute text, `video_range` = `VIDEO-RANGE`.
/// - audio rendition (`StreamKind::Secondary`): `bitrate` = 0, `codecs` = its audio
///   codec, `language` = `LANGUAGE`, `channels` = `CHANNELS`, `name` = `NAME`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamProps<'a> {
    pub bitrate: Option<u64>,
    pub codecs: Option<&'a str>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub language: Option<&'a str>,
    pub channels: Option<&'a str>,
    pub name: Option<&'a str>,
    pub frame_rate: Option<&'a str>,
    pub video_range: Option<&'a str>,
}

/// Normalises one codec as the JS does: trim, lowercase, and `avc1.P.L` decimal
/// form to `avc1.PP00LL` hex.
fn normalize_codec(c: &str) -> String {
    let c = c.trim().to_lowercase();
    let parts: Vec<&str> = c.split('.').collect();
    if let [family @ ("avc1" | "avc"), p, l] = parts.as_slice() {
        if let (Ok(profile), Ok(level)) = (p.parse::<u64>(), l.parse::<u64>()) {
            if *p == profile.to_string() && *l == level.to_string() {
                return format!("{family}.{profile:02x}00{level:02x}");
            }
        }
    }
    c
}

/// JS `Number(text).toString()` for the frame rates that occur (`30.000` → `30`).
fn normalize_frame_rate(text: &str) -> String {
    let t = text.trim();
    let numeric = t
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if text.is_empty() || !numeric {
        return String::new();
    }
    let t = if t.is_empty() { "0" } else { t };
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => {
            if v.fract() == 0.0 && v.abs() < 1e21 {
                format!("{}", v as i64)
            } else {
                format!("{v}")
            }
        }
        _ => String::new(),
    }
}

/// The 2.3 stream `index`: standard base64 (with padding) of
/// SHA-1(`{bitrate}-{codecs}-{width}-{height}-{lang}-{channels}-{name}-{fps}-{range}`)
/// after the JS normalisation (`generateStreamShortId`).
pub fn stream_short_id(p: &StreamProps<'_>) -> String {
    let codecs = match p.codecs {
        Some(c) if !c.is_empty() => {
            let mut v: Vec<String> = c.split(',').map(normalize_codec).collect();
            v.sort();
            v.join(",")
        }
        _ => String::new(),
    };
    let language = match p.language {
        Some(l) if !l.is_empty() && l != "und" => {
            l.chars().take(2).collect::<String>().to_lowercase()
        }
        _ => String::new(),
    };
    let channels = match p.channels {
        Some(c) if !c.is_empty() => c.split('/').next().unwrap_or_default().to_owned(),
        _ => String::new(),
    };
    let name = p
        .name
        .map(|n| n.to_lowercase().trim().to_owned())
        .unwrap_or_default();
    let frame_rate = p.frame_rate.map(normalize_frame_rate).unwrap_or_default();
    let video_range = p
        .video_range
        .map(|r| r.to_uppercase().trim().to_owned())
        .unwrap_or_default();
    let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
    let text = format!(
        "{}-{codecs}-{}-{}-{language}-{channels}-{name}-{frame_rate}-{video_range}",
        p.bitrate.unwrap_or(0),
        opt(p.width),
        opt(p.height),
    );
    STANDARD.encode(Sha1::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_have_the_23_prefix() {
        let id = generate_peer_id(&mut rand::thread_rng());
        assert!(id.starts_with(b"-PM0203-"));
        assert!(id[8..].iter().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn default_swarm_id_drops_the_query() {
        assert_eq!(
            default_swarm_id("http://h/live/demo/index.m3u8?token=1?x"),
            "http://h/live/demo/index.m3u8"
        );
        assert_eq!(default_swarm_id("http://h/a.m3u8"), "http://h/a.m3u8");
    }

    #[test]
    fn codec_normalisation() {
        assert_eq!(normalize_codec(" AVC1.66.30"), "avc1.42001e");
        assert_eq!(normalize_codec("avc1.640028"), "avc1.640028");
        assert_eq!(normalize_codec("avc1.066.30"), "avc1.066.30");
        assert_eq!(normalize_frame_rate("30.000"), "30");
        assert_eq!(normalize_frame_rate("29.97"), "29.97");
        assert_eq!(normalize_frame_rate("abc"), "");
    }
}
