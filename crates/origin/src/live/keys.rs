//! Publish keys: which secrets let an encoder publish which stream name. The store is
//! seeded from the settings (`--publish-key NAME=KEY`, `--require-keys`) and changed at
//! run time through the write API (add, list, revoke).
//!
//! Rules: a stream with at least one key entry needs one of its keys; a stream whose
//! keys were all revoked stays locked (revoking never opens a stream); a stream with no
//! entry is open unless `require_keys` is set. Secrets are compared in constant time
//! and never listed: a key is named by its id, a short hash of stream and secret.
//!
//! Not here: the HTTP routes (`http::admin`) and where the key comes from in a publish
//! (`ingest::rtmp`).

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::name::valid_name;
use super::store::unix_ms;

/// Keys the store holds at most (configured ones included).
pub const MAX_KEYS: usize = 10_000;
/// Shortest and longest secret accepted through the API.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// Why a key was not added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("stream name {0:?} is not allowed: use 1-64 characters of A-Z a-z 0-9 _ - .")]
    BadName(String),
    #[error("a publish key must be 16 to 256 characters of A-Z a-z 0-9 _ - . ~ (got {0} characters or others); leave it out to have one generated")]
    BadSecret(usize),
    #[error("stream {0:?} already has this key")]
    Exists(String),
    #[error("too many publish keys (limit {MAX_KEYS}); revoke some first")]
    TooMany,
}

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// `--publish-key` or the config file.
    Config,
    /// Added through the write API.
    Api,
}

/// One key as the store holds it: its id and the SHA-256 of its secret (the secret
/// itself is not kept, so the fleet can share the table without sharing secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub id: String,
    pub digest: [u8; 32],
    pub added_ms: u64,
    pub source: KeySource,
}

type Entry = KeyEntry;

/// SHA-256 of a secret, what [`KeyEntry::digest`] holds.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// What the API shows of one key (never the secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    pub added_ms: u64,
    pub source: KeySource,
}

/// The keys of one stream; `keys` empty = locked (every key revoked).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StreamKeys {
    pub stream: String,
    pub keys: Vec<KeyInfo>,
}

/// The runtime store of publish keys.
#[derive(Debug)]
pub struct PublishKeys {
    map: RwLock<BTreeMap<String, Vec<Entry>>>,
    require_keys: bool,
}

/// The id of a key: 12 hex digits of SHA-256 over stream and secret. The same on every
/// origin that holds the same key, and says nothing useful about the secret.
pub fn key_id(stream: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(stream.as_bytes());
    h.update([0u8]);
    h.update(secret.as_bytes());
    hex::encode(&h.finalize()[..6])
}

/// Whether `secret` may be added through the API (a query value and an RTMP stream
/// key without escaping).
pub fn valid_secret(secret: &str) -> bool {
    SECRET_LEN.contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~'))
}

/// A fresh random secret (32 hex digits, 128 bits).
pub fn generate_secret() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

impl PublishKeys {
    /// A store holding the configured keys (not checked: they were accepted before).
    pub fn new(seed: HashMap<String, String>, require_keys: bool) -> Self {
        let now = unix_ms();
        let mut map: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for (stream, secret) in seed {
            let id = key_id(&stream, &secret);
            map.entry(stream).or_default().push(Entry {
                id,
                digest: digest(&secret),
                added_ms: now,
                source: KeySource::Config,
            });
        }
        Self {
            map: RwLock::new(map),
            require_keys,
        }
    }

    /// Whether publishing `stream` with `key` is allowed.
    pub fn allows(&self, stream: &str, key: Option<&str>) -> bool {
        let map = self.map.read();
        match (map.get(stream), key) {
            // Every entry is compared, so the time does not tell which one matched.
            (Some(entries), Some(got)) => {
                let got = digest(got);
                entries
                    .iter()
                    .fold(false, |ok, e| ct_eq(&e.digest, &got) | ok)
            }
            (Some(_), None) => false,
            (None, _) => !self.require_keys,
        }
    }

    /// The stream whose publish key is `secret`, for encoders configured with the key
    /// alone as the stream key (OBS style).
    pub fn stream_for_key(&self, secret: &str) -> Option<String> {
        let map = self.map.read();
        let got = digest(secret);
        let mut found = None;
        for (stream, entries) in map.iter() {
            for e in entries {
                if ct_eq(&e.digest, &got) && found.is_none() {
                    found = Some(stream.clone());
                }
            }
        }
        found
    }

    /// Adds a key for `stream`; `None` generates one. Answers the key's id and the
    /// secret (shown once, to the caller).
    pub fn add(&self, stream: &str, secret: Option<String>) -> Result<(KeyInfo, String), KeyError> {
        let (entry, secret) = self.prepare(stream, secret)?;
        let info = info(&entry);
        self.insert(stream, entry)?;
        Ok((info, secret))
    }

    /// Checks a key to add (name, secret, not already there) and makes its entry,
    /// without adding it: a fleet writes it elsewhere first, then [`Self::insert`]s it.
    pub fn prepare(
        &self,
        stream: &str,
        secret: Option<String>,
    ) -> Result<(KeyEntry, String), KeyError> {
        if !valid_name(stream) {
            return Err(KeyError::BadName(stream.to_string()));
        }
        let secret = match secret {
            Some(s) if valid_secret(&s) => s,
            Some(s) => return Err(KeyError::BadSecret(s.len())),
            None => generate_secret(),
        };
        let id = key_id(stream, &secret);
        let map = self.map.read();
        if map.values().map(Vec::len).sum::<usize>() >= MAX_KEYS {
            return Err(KeyError::TooMany);
        }
        if map
            .get(stream)
            .is_some_and(|e| e.iter().any(|e| e.id == id))
        {
            return Err(KeyError::Exists(stream.to_string()));
        }
        let entry = Entry {
            id,
            digest: digest(&secret),
            added_ms: unix_ms(),
            source: KeySource::Api,
        };
        Ok((entry, secret))
    }

    /// Adds an entry made by [`Self::prepare`].
    pub fn insert(&self, stream: &str, entry: KeyEntry) -> Result<(), KeyError> {
        let mut map = self.map.write();
        if map.values().map(Vec::len).sum::<usize>() >= MAX_KEYS {
            return Err(KeyError::TooMany);
        }
        let entries = map.entry(stream.to_string()).or_default();
        if entries.iter().any(|e| e.id == entry.id) {
            return Err(KeyError::Exists(stream.to_string()));
        }
        entries.push(entry);
        Ok(())
    }

    /// The whole table (stream → entries; empty = locked), to seed a fleet's.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<KeyEntry>> {
        self.map.read().clone()
    }

    /// Replaces the whole table with the fleet's (cut to [`MAX_KEYS`] entries).
    pub fn replace(&self, table: BTreeMap<String, Vec<KeyEntry>>) {
        let mut left = MAX_KEYS;
        let mut table = table;
        for entries in table.values_mut() {
            entries.truncate(left);
            left -= entries.len();
        }
        *self.map.write() = table;
    }

    /// Revokes the key `id` of `stream`, or every key of it with `None`; the number
    /// revoked. The stream stays locked until a key is added.
    pub fn revoke(&self, stream: &str, id: Option<&str>) -> usize {
        let mut map = self.map.write();
        let Some(entries) = map.get_mut(stream) else {
            return 0;
        };
        let before = entries.len();
        entries.retain(|e| id.is_some_and(|id| e.id != id));
        before - entries.len()
    }

    /// Every stream with key entries, sorted by name.
    pub fn list(&self) -> Vec<StreamKeys> {
        self.map
            .read()
            .iter()
            .map(|(stream, entries)| StreamKeys {
                stream: stream.clone(),
                keys: entries.iter().map(info).collect(),
            })
            .collect()
    }

    /// Whether streams without an entry are refused.
    pub fn require_keys(&self) -> bool {
        self.require_keys
    }
}

fn info(e: &Entry) -> KeyInfo {
    KeyInfo {
        id: e.id.clone(),
        added_ms: e.added_ms,
        source: e.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> PublishKeys {
        PublishKeys::new(
            [("cam".to_string(), "configured".to_string())].into(),
            false,
        )
    }

    #[test]
    fn added_keys_work_and_revoked_ones_lock_the_stream() {
        let k = store();
        assert!(k.allows("cam", Some("configured")));
        assert!(!k.allows("cam", None));
        assert!(k.allows("open", None));
        let (info, secret) = k.add("cam", None).expect("add");
        assert_eq!(secret.len(), 32);
        assert!(k.allows("cam", Some(&secret)));
        assert_eq!(k.stream_for_key(&secret).as_deref(), Some("cam"));
        // Revoking one key leaves the other.
        assert_eq!(k.revoke("cam", Some(&info.id)), 1);
        assert!(!k.allows("cam", Some(&secret)));
        assert!(k.allows("cam", Some("configured")));
        // Revoking all locks the stream: no key and no missing key gets in.
        assert_eq!(k.revoke("cam", None), 1);
        assert!(!k.allows("cam", Some("configured")));
        assert!(!k.allows("cam", None));
        assert_eq!(k.list()[0].keys, vec![]);
        assert_eq!(k.revoke("nothing", None), 0);
    }

    #[test]
    fn bad_names_secrets_and_duplicates_are_refused() {
        let k = store();
        assert!(matches!(k.add("a/b", None), Err(KeyError::BadName(_))));
        assert!(matches!(
            k.add("cam", Some("short".into())),
            Err(KeyError::BadSecret(5))
        ));
        assert!(matches!(
            k.add("cam", Some("has&ampersand-0123456789".into())),
            Err(KeyError::BadSecret(_))
        ));
        let s = "0123456789abcdef".to_string();
        assert!(k.add("cam", Some(s.clone())).is_ok());
        assert_eq!(k.add("cam", Some(s)), Err(KeyError::Exists("cam".into())));
    }

    #[test]
    fn listing_never_shows_secrets() {
        let k = store();
        let text = serde_json::to_string(&k.list()).expect("json");
        assert!(!text.contains("configured"), "{text}");
        assert!(text.contains(&key_id("cam", "configured")), "{text}");
    }
}
