//! Segment integrity: the origin's Ed25519 signing key and the signed lists of SHA-256
//! digests that edges and peers use to verify every segment and part they did not get
//! straight from the origin.
//!
//! Format (also in the README): `GET …/{rendition}/digests.json` answers
//! `{"kid": KID, "payload": STRING, "signature": BASE64}` where `signature` is the
//! Ed25519 signature of the UTF-8 bytes of `payload`, and `payload` is itself JSON:
//! `{"version":1,"stream":…,"rendition":…,"generated_ms":…,"objects":{NAME: SHA256_HEX}}`
//! with NAME the object's file name (`init.mp4`, `seg12.m4s`, `part12.3.m4s`). The public
//! key is at `/api/v1/keys`.
//!
//! Object signatures: the origin also signs each init segment, segment and part on
//! its own and sends that in the response header [`SIGNATURE_HEADER`]
//! (`mediamesh-signature: KID:BASE64`), which edges replay with the object. The
//! signature is Ed25519 over the UTF-8 bytes of [`object_message`]:
//! `mediamesh-object/1\n{stream}\n{rendition}\n{name}\n{sha256 hex}`. A peer that got
//! a part over HTTP passes the header value on with the part, so the receiver verifies
//! it with no list to fetch: a part a few hundred ms old is in no list it already
//! holds, and fetching the list per part cost more than a third of the bytes P2P saved.
//!
//! A crate of its own, below both `origin` (which signs) and `p2p` (which verifies), so
//! a viewer does not compile the origin to check a segment. Not here: HTTP, and where
//! the lists are served (crate `origin`).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Errors loading or creating the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the signing key at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "signing key file {0} is corrupt (want 64 hex characters); delete it to make a new key"
    )]
    Corrupt(String),
}

/// Errors verifying a digest list.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    #[error("digest list is not valid JSON of the expected shape")]
    Malformed,
    #[error("signature does not verify with the origin's key")]
    BadSignature,
}

/// The response header that carries an object's signature.
pub const SIGNATURE_HEADER: &str = "mediamesh-signature";

/// Longest header value accepted (a 16-character kid, `:` and 88 base64 characters
/// are 105).
const MAX_SIGNATURE_LEN: usize = 128;

/// What an object signature covers: the object's place (stream, rendition, file name
/// as the origin serves it) and the SHA-256 of its bytes.
pub fn object_message(stream: &str, rendition: &str, name: &str, sha256: &[u8; 32]) -> String {
    format!(
        "mediamesh-object/1\n{stream}\n{rendition}\n{name}\n{}",
        hex::encode(sha256)
    )
}

/// A parsed [`SIGNATURE_HEADER`] value: `KID:BASE64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSignature {
    pub kid: String,
    signature: [u8; 64],
}

impl ObjectSignature {
    /// Parses a header value from the network: bounded, strict.
    pub fn parse(value: &str) -> Result<Self, VerifyError> {
        if value.len() > MAX_SIGNATURE_LEN {
            return Err(VerifyError::Malformed);
        }
        let (kid, b64) = value.split_once(':').ok_or(VerifyError::Malformed)?;
        if kid.is_empty() || !kid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(VerifyError::Malformed);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| VerifyError::Malformed)?;
        let signature: [u8; 64] = raw.try_into().map_err(|_| VerifyError::Malformed)?;
        Ok(Self {
            kid: kid.to_string(),
            signature,
        })
    }

    /// Checks that `key` signed this object: bytes with SHA-256 `sha256`, served as
    /// `name` of `rendition` of `stream`.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        stream: &str,
        rendition: &str,
        name: &str,
        sha256: &[u8; 32],
    ) -> Result<(), VerifyError> {
        let message = object_message(stream, rendition, name, sha256);
        key.verify(message.as_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// The signed envelope served to clients.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignedList {
    pub kid: String,
    pub payload: String,
    pub signature: String,
}

/// What the payload string holds.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct DigestList {
    pub version: u32,
    pub stream: String,
    pub rendition: String,
    pub generated_ms: u64,
    pub objects: BTreeMap<String, String>,
}

/// The origin's signing key.
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Signer").field("kid", &self.kid()).finish()
    }
}

const KEY_FILE: &str = "origin-ed25519.key";

impl Signer {
    /// Loads the key from `data_dir`, or makes one on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, KeyError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .map_err(|_| KeyError::Corrupt(path.display().to_string()))?;
                let seed: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| KeyError::Corrupt(path.display().to_string()))?;
                Ok(Self {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let key = SigningKey::generate(&mut rand::rngs::OsRng);
                write_private(&path, &hex::encode(key.to_bytes())).map_err(io)?;
                tracing::info!(path = %path.display(), kid = %kid_of(&key.verifying_key()), "made a new segment signing key");
                Ok(Self { key })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A key that lives only in memory (tests).
    pub fn ephemeral() -> Self {
        Self {
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Short key id: first 8 bytes of SHA-256 of the public key, hex.
    pub fn kid(&self) -> String {
        kid_of(&self.public_key())
    }

    /// The [`SIGNATURE_HEADER`] value for one object (see [`object_message`]).
    pub fn sign_object(
        &self,
        stream: &str,
        rendition: &str,
        name: &str,
        sha256: &[u8; 32],
    ) -> String {
        let message = object_message(stream, rendition, name, sha256);
        let signature = self.key.sign(message.as_bytes());
        format!(
            "{}:{}",
            self.kid(),
            base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
        )
    }

    /// Signs a digest list.
    pub fn sign(&self, list: &DigestList) -> SignedList {
        let payload = serde_json::to_string(list).unwrap_or_default();
        let signature = self.key.sign(payload.as_bytes());
        SignedList {
            kid: self.kid(),
            payload,
            signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        }
    }
}

fn kid_of(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Verifies a signed list (what edges and peers do) and returns its payload.
pub fn verify(key: &VerifyingKey, signed: &SignedList) -> Result<DigestList, VerifyError> {
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&signed.signature)
        .map_err(|_| VerifyError::Malformed)?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| VerifyError::Malformed)?;
    key.verify(signed.payload.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| VerifyError::BadSignature)?;
    serde_json::from_str(&signed.payload).map_err(|_| VerifyError::Malformed)
}

/// Lowercase hex of a SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> DigestList {
        DigestList {
            version: 1,
            stream: "cam".into(),
            rendition: "src".into(),
            generated_ms: 1,
            objects: [("seg1.m4s".to_string(), sha256_hex(b"abc"))].into(),
        }
    }

    #[test]
    fn object_signature_binds_place_and_bytes() {
        let s = Signer::ephemeral();
        let sha: [u8; 32] = Sha256::digest(b"part bytes").into();
        let header = s.sign_object("cam", "src", "part12.3.m4s", &sha);
        assert!(header.starts_with(&format!("{}:", s.kid())));
        let sig = ObjectSignature::parse(&header).expect("parses");
        assert_eq!(sig.kid, s.kid());
        let key = s.public_key();
        assert_eq!(sig.verify(&key, "cam", "src", "part12.3.m4s", &sha), Ok(()));
        // Another part, rendition, stream or body: refused.
        let other: [u8; 32] = Sha256::digest(b"other bytes").into();
        for (st, r, n, d) in [
            ("cam", "src", "part12.4.m4s", &sha),
            ("cam", "720p", "part12.3.m4s", &sha),
            ("cam2", "src", "part12.3.m4s", &sha),
            ("cam", "src", "part12.3.m4s", &other),
        ] {
            assert_eq!(
                sig.verify(&key, st, r, n, d),
                Err(VerifyError::BadSignature)
            );
        }
        // Another key.
        let stranger = Signer::ephemeral().public_key();
        assert_eq!(
            sig.verify(&stranger, "cam", "src", "part12.3.m4s", &sha),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn hostile_signature_headers_are_malformed_not_panics() {
        let long = format!("ab:{}", "A".repeat(200));
        for bad in [
            "",
            ":",
            "abcd",
            "abcd:",
            "zz:AAAA",
            ":AAAA",
            "ab:!!!!",
            "ab:AAAA",
            long.as_str(),
            "ab:\u{0}",
        ] {
            assert_eq!(
                ObjectSignature::parse(bad),
                Err(VerifyError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn signed_list_verifies_and_tampering_is_caught() {
        let s = Signer::ephemeral();
        let signed = s.sign(&list());
        assert_eq!(verify(&s.public_key(), &signed), Ok(list()));
        let tampered = SignedList {
            payload: signed.payload.replace("seg1", "seg2"),
            ..signed
        };
        assert_eq!(
            verify(&s.public_key(), &tampered),
            Err(VerifyError::BadSignature)
        );
        let other = Signer::ephemeral();
        let signed = s.sign(&list());
        assert_eq!(
            verify(&other.public_key(), &signed),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn key_persists_in_data_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = Signer::load_or_create(dir.path()).map(|s| s.kid());
        let b = Signer::load_or_create(dir.path()).map(|s| s.kid());
        assert!(a.is_ok());
        assert_eq!(a.ok(), b.ok());
        assert!(!format!("{:?}", Signer::ephemeral()).contains("key:"));
    }
}
