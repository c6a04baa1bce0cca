//! Segment verification for a native viewer: the origin's Ed25519-signed SHA-256
//! list (`digests.json` beside the media playlist, key from `/api/v1/keys`), fetched
//! over HTTP from the CDN and refreshed when a segment is not listed yet.
//!
//! A part from a peer usually comes with the origin's own signature of it (the
//! `mediamesh-signature` header the first viewer got over HTTP, passed along in
//! `PartData`): that is checked first ([`Digests::check_signed`]) and costs no HTTP
//! request; the list is the fallback.
//!
//! Not trust in peers: bytes from a peer are only used when their digest is in a list
//! whose signature verifies, or carry an object signature that verifies. The key is taken from the CDN on first use unless the
//! operator pins it (`--origin-key`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use ed25519_dalek::VerifyingKey;
use integrity::SignedList;
use reqwest::{Client, Url};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::hls::get_bytes;
use super::PeerError;

const MAX_LIST_BYTES: usize = 8 << 20;
/// Shortest time between two refreshes of the list.
const MIN_REFRESH: Duration = Duration::from_millis(200);

/// What the signed list says about some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    /// Listed, and the bytes differ: the sender lied.
    Mismatch,
    /// Not listed (yet): the bytes cannot be used, nobody is blamed.
    Unknown,
}

#[derive(Deserialize)]
struct Keys {
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    kid: String,
    public_key: String,
}

/// The verified digests of one rendition.
#[derive(Debug)]
pub struct Digests {
    client: Client,
    keys_url: Url,
    list_url: Url,
    keys: HashMap<String, VerifyingKey>,
    pinned: bool,
    objects: HashMap<String, [u8; 32]>,
    refreshed: Option<Instant>,
    fetched_bytes: u64,
    /// Stream and rendition as the origin names them (from `/…/{stream}/{rendition}/`
    /// of the media playlist URL): what object signatures are bound to.
    place: Option<(String, String)>,
}

impl Digests {
    /// For the media playlist at `media_url`; `pinned` is the origin key if known.
    pub fn new(
        client: Client,
        media_url: &Url,
        pinned: Option<VerifyingKey>,
    ) -> Result<Self, PeerError> {
        let bad = |_| PeerError::Playlist {
            url: media_url.to_string(),
            reason: "cannot derive digests.json and /api/v1/keys URLs".into(),
        };
        let list_url = media_url.join("digests.json").map_err(bad)?;
        let place = media_url.path_segments().and_then(|segs| {
            let segs: Vec<&str> = segs.collect();
            match segs.as_slice() {
                [.., stream, rendition, _file] if !stream.is_empty() && !rendition.is_empty() => {
                    Some((stream.to_string(), rendition.to_string()))
                }
                _ => None,
            }
        });
        let keys_url = media_url.join("/api/v1/keys").map_err(bad)?;
        let mut keys = HashMap::new();
        if let Some(k) = pinned {
            keys.insert(kid_of(&k), k);
        }
        Ok(Digests {
            client,
            keys_url,
            list_url,
            keys,
            pinned: pinned.is_some(),
            objects: HashMap::new(),
            refreshed: None,
            fetched_bytes: 0,
            place,
        })
    }

    /// Checks `bytes` as the object called `name` (`seg12.m4s`).
    pub async fn check(&mut self, name: &str, bytes: &[u8]) -> Verdict {
        if !self.objects.contains_key(name) {
            if let Err(e) = self.refresh().await {
                tracing::debug!(error = %e, "digest list refresh failed");
            }
        }
        self.check_known(name, bytes)
    }

    /// Checks `bytes` as the object `name` with the object signature a peer sent
    /// (`KID:BASE64`), falling back to the list ([`Digests::check`]) when there is
    /// none or its key is not the origin's. A signature that is well formed, by the
    /// origin's key, and does not match the bytes is a [`Verdict::Mismatch`]: the
    /// sender changed the bytes or forged the signature.
    pub async fn check_signed(
        &mut self,
        name: &str,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> Verdict {
        let Some(sig) = signature.and_then(|g| integrity::ObjectSignature::parse(g).ok()) else {
            return self.check(name, bytes).await;
        };
        if !self.keys.contains_key(&sig.kid) && !self.pinned {
            if let Err(e) = self.load_keys().await {
                tracing::debug!(error = %e, "key list fetch failed");
            }
        }
        let (Some(key), Some((stream, rendition))) = (self.keys.get(&sig.kid), &self.place) else {
            return self.check(name, bytes).await;
        };
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        match sig.verify(key, stream, rendition, name, &digest) {
            Ok(()) => Verdict::Match,
            Err(_) => Verdict::Mismatch,
        }
    }

    /// Bytes of digest lists fetched so far (the price of verifying fresh objects).
    pub fn fetched_bytes(&self) -> u64 {
        self.fetched_bytes
    }

    /// Checks against what is already loaded, without I/O.
    pub fn check_known(&self, name: &str, bytes: &[u8]) -> Verdict {
        match self.objects.get(name) {
            None => Verdict::Unknown,
            Some(want) if Sha256::digest(bytes).as_slice() == want => Verdict::Match,
            Some(_) => Verdict::Mismatch,
        }
    }

    /// Fetches and verifies the list again (at most every 200 ms).
    pub async fn refresh(&mut self) -> Result<(), PeerError> {
        if self.refreshed.is_some_and(|t| t.elapsed() < MIN_REFRESH) {
            return Ok(());
        }
        self.refreshed = Some(Instant::now());
        let raw = get_bytes(&self.client, &self.list_url, MAX_LIST_BYTES).await?;
        self.fetched_bytes += raw.len() as u64;
        let signed: SignedList =
            serde_json::from_slice(&raw).map_err(|_| self.invalid("not a signed list"))?;
        if !self.keys.contains_key(&signed.kid) && !self.pinned {
            self.load_keys().await?;
        }
        let key = self
            .keys
            .get(&signed.kid)
            .ok_or_else(|| self.invalid("signed with an unknown key"))?;
        let list = integrity::verify(key, &signed).map_err(|e| self.invalid(&e.to_string()))?;
        for (name, hex_digest) in list.objects {
            let mut d = [0u8; 32];
            if hex::decode_to_slice(&hex_digest, &mut d).is_ok() {
                self.objects.insert(name, d);
            }
        }
        // Bounded: the origin lists a DVR window; keep a few windows' worth.
        if self.objects.len() > 20_000 {
            self.objects.clear();
        }
        Ok(())
    }

    async fn load_keys(&mut self) -> Result<(), PeerError> {
        let raw = get_bytes(&self.client, &self.keys_url, 64 << 10).await?;
        let keys: Keys = serde_json::from_slice(&raw).map_err(|_| self.invalid("bad key list"))?;
        for k in keys.keys {
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&k.public_key) else {
                continue;
            };
            let Ok(arr) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                continue;
            };
            if let Ok(vk) = VerifyingKey::from_bytes(&arr) {
                // The kid must be the key's own; a list cannot name another key's kid.
                if kid_of(&vk) == k.kid {
                    self.keys.insert(k.kid, vk);
                }
            }
        }
        Ok(())
    }

    fn invalid(&self, reason: &str) -> PeerError {
        PeerError::Digests {
            url: self.list_url.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// `kid`: hex of the first 8 bytes of SHA-256 of the public key.
pub fn kid_of(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use integrity::{DigestList, Signer};

    #[test]
    fn kid_matches_the_origin() {
        let s = Signer::ephemeral();
        assert_eq!(kid_of(&s.public_key()), s.kid());
    }

    #[test]
    fn verdicts() {
        let signer = Signer::ephemeral();
        let good = b"segment bytes";
        let mut objects = std::collections::BTreeMap::new();
        objects.insert("seg1.m4s".to_string(), integrity::sha256_hex(good));
        let signed = signer.sign(&DigestList {
            version: 1,
            stream: "s".into(),
            rendition: "src".into(),
            generated_ms: 0,
            objects,
        });
        let list = integrity::verify(&signer.public_key(), &signed).expect("verify");
        let url = Url::parse("http://127.0.0.1:1/live/s/src/index.m3u8").expect("url");
        let mut d = Digests::new(Client::new(), &url, Some(signer.public_key())).expect("new");
        for (n, h) in list.objects {
            let mut a = [0u8; 32];
            hex::decode_to_slice(h, &mut a).expect("hex");
            d.objects.insert(n, a);
        }
        assert_eq!(d.check_known("seg1.m4s", good), Verdict::Match);
        assert_eq!(
            d.check_known("seg1.m4s", b"segment bytez"),
            Verdict::Mismatch
        );
        assert_eq!(d.check_known("seg2.m4s", good), Verdict::Unknown);
        assert_eq!(d.list_url.path(), "/live/s/src/digests.json");
        assert_eq!(d.keys_url.path(), "/api/v1/keys");
    }

    #[tokio::test]
    async fn object_signatures_verify_without_a_list() {
        let signer = Signer::ephemeral();
        let good = b"part bytes";
        let sha: [u8; 32] = Sha256::digest(good).into();
        let sig = signer.sign_object("s", "src", "part3.1.m4s", &sha);
        // Port 1: any fetch of the list or keys fails, so a Match proves none was needed.
        let url = Url::parse("http://127.0.0.1:1/live/s/src/index.m3u8").expect("url");
        let mut d = Digests::new(Client::new(), &url, Some(signer.public_key())).expect("new");
        assert_eq!(
            d.check_signed("part3.1.m4s", good, Some(&sig)).await,
            Verdict::Match
        );
        assert_eq!(d.fetched_bytes(), 0);
        // Changed bytes, or the signature of another part: the sender lied.
        assert_eq!(
            d.check_signed("part3.1.m4s", b"part bytez", Some(&sig))
                .await,
            Verdict::Mismatch
        );
        assert_eq!(
            d.check_signed("part3.2.m4s", good, Some(&sig)).await,
            Verdict::Mismatch
        );
        // Another stream's viewer cannot use it either.
        let other = Url::parse("http://127.0.0.1:1/live/t/src/index.m3u8").expect("url");
        let mut e = Digests::new(Client::new(), &other, Some(signer.public_key())).expect("new");
        assert_eq!(
            e.check_signed("part3.1.m4s", good, Some(&sig)).await,
            Verdict::Mismatch
        );
        // No signature, garbage, or a stranger's key: the list decides (unreachable
        // here, so nothing is known and nobody is blamed).
        let stranger = Signer::ephemeral().sign_object("s", "src", "part3.1.m4s", &sha);
        for g in [None, Some("garbage"), Some(stranger.as_str())] {
            assert_eq!(
                d.check_signed("part3.1.m4s", good, g).await,
                Verdict::Unknown
            );
        }
    }
}
