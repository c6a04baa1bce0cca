//! The disk tier: objects in files under one folder, bounded in bytes, that survive a
//! restart. One file per object, named by the SHA-256 of its key (two levels of
//! fan-out folders), written to a temporary file and renamed into place so a crash
//! never leaves a half-written object under a real name.
//!
//! File format: `MMC1` magic, u32 big-endian metadata length, the metadata as JSON
//! (the key and the `CachedObject` without body), u64 big-endian body length, body.
//! Files that do not parse or whose lengths disagree are deleted when found. Eviction
//! is least-recently-used within the byte bound. Blocking I/O: call from
//! `spawn_blocking`.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CachedObject;

const MAGIC: &[u8; 4] = b"MMC1";
/// Largest metadata block accepted from disk.
const MAX_META: u32 = 1 << 20;

/// Disk tier errors.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata: {0}")]
    Meta(#[from] serde_json::Error),
    #[error("object of {0} bytes exceeds the disk tier")]
    TooLarge(u64),
}

#[derive(Serialize, Deserialize)]
struct Meta {
    key: String,
    object: CachedObject,
}

#[derive(Debug)]
struct IndexEntry {
    path: PathBuf,
    size: u64,
    last_use: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, IndexEntry>,
    bytes: u64,
    clock: u64,
}

/// The disk tier.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
}

impl DiskCache {
    /// Opens (or creates) the folder, indexes what is there, drops what is broken and
    /// evicts down to `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, DiskError> {
        fs::create_dir_all(dir)?;
        let cache = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            index: Mutex::new(Index::default()),
        };
        let mut found = Vec::new();
        for l1 in fs::read_dir(dir)?.flatten() {
            let Ok(rd) = fs::read_dir(l1.path()) else {
                continue;
            };
            for l2 in rd.flatten() {
                let Ok(rd) = fs::read_dir(l2.path()) else {
                    continue;
                };
                for f in rd.flatten() {
                    let path = f.path();
                    if path.extension().and_then(|e| e.to_str()) != Some("obj") {
                        let _ = fs::remove_file(&path); // leftover temp file
                        continue;
                    }
                    match read_meta(&path) {
                        Some((meta, size)) => {
                            found.push((meta.key, meta.object.stored_ms, path, size))
                        }
                        None => {
                            tracing::warn!(path = %path.display(), "dropping unreadable disk cache file");
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
            }
        }
        // Oldest first gets the lowest use stamp.
        found.sort_by_key(|(_, stored, _, _)| *stored);
        {
            let mut idx = cache.index.lock();
            for (key, _, path, size) in found {
                idx.clock += 1;
                let clock = idx.clock;
                idx.bytes += size;
                if let Some(old) = idx.entries.insert(
                    key,
                    IndexEntry {
                        path,
                        size,
                        last_use: clock,
                    },
                ) {
                    idx.bytes = idx.bytes.saturating_sub(old.size);
                }
            }
            cache.evict(&mut idx);
        }
        Ok(cache)
    }

    fn path_for(&self, key: &str) -> PathBuf {
        let h = hex::encode(Sha256::digest(key.as_bytes()));
        self.dir
            .join(&h[..2])
            .join(&h[2..4])
            .join(format!("{h}.obj"))
    }

    pub fn get(&self, key: &str) -> Option<CachedObject> {
        let path = {
            let mut idx = self.index.lock();
            idx.clock += 1;
            let clock = idx.clock;
            let e = idx.entries.get_mut(key)?;
            e.last_use = clock;
            e.path.clone()
        };
        match read_object(&path) {
            Some((meta, body)) if meta.key == key => Some(CachedObject {
                body,
                ..meta.object
            }),
            _ => {
                self.remove(key);
                None
            }
        }
    }

    pub fn insert(&self, key: &str, obj: &CachedObject) -> Result<(), DiskError> {
        let meta = serde_json::to_vec(&Meta {
            key: key.to_string(),
            object: obj.clone(),
        })?;
        let size = (4 + 4 + meta.len() + 8 + obj.body.len()) as u64;
        if size > self.max_bytes / 2 {
            return Err(DiskError::TooLarge(size));
        }
        let path = self.path_for(key);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&u32::try_from(meta.len()).unwrap_or(u32::MAX).to_be_bytes())?;
            f.write_all(&meta)?;
            f.write_all(&(obj.body.len() as u64).to_be_bytes())?;
            f.write_all(&obj.body)?;
            f.sync_data()?;
        }
        fs::rename(&tmp, &path)?;
        let mut idx = self.index.lock();
        idx.clock += 1;
        let clock = idx.clock;
        idx.bytes += size;
        if let Some(old) = idx.entries.insert(
            key.to_string(),
            IndexEntry {
                path,
                size,
                last_use: clock,
            },
        ) {
            idx.bytes = idx.bytes.saturating_sub(old.size);
        }
        self.evict(&mut idx);
        Ok(())
    }

    pub fn remove(&self, key: &str) {
        let mut idx = self.index.lock();
        if let Some(e) = idx.entries.remove(key) {
            idx.bytes = idx.bytes.saturating_sub(e.size);
            let _ = fs::remove_file(&e.path);
        }
    }

    /// Bytes held on disk.
    pub fn bytes(&self) -> u64 {
        self.index.lock().bytes
    }

    fn evict(&self, idx: &mut Index) {
        while idx.bytes > self.max_bytes {
            let Some(victim) = idx
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_use)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = idx.entries.remove(&victim) {
                idx.bytes = idx.bytes.saturating_sub(e.size);
                let _ = fs::remove_file(&e.path);
            }
        }
    }
}

/// Reads magic, metadata and body length: (metadata, metadata bytes, body length).
fn read_header(f: &mut fs::File) -> Option<(Meta, u64, u64)> {
    let mut head = [0u8; 8];
    f.read_exact(&mut head).ok()?;
    if &head[..4] != MAGIC {
        return None;
    }
    let meta_len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if meta_len > MAX_META {
        return None;
    }
    let mut meta = vec![0u8; meta_len as usize];
    f.read_exact(&mut meta).ok()?;
    let meta = serde_json::from_slice(&meta).ok()?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).ok()?;
    Some((meta, u64::from(meta_len), u64::from_be_bytes(len)))
}

/// Metadata and total file size, if the file is whole.
fn read_meta(path: &Path) -> Option<(Meta, u64)> {
    let mut f = fs::File::open(path).ok()?;
    let file_len = f.metadata().ok()?.len();
    let (meta, meta_len, body_len) = read_header(&mut f)?;
    (16u64.checked_add(meta_len)?.checked_add(body_len)? == file_len).then_some((meta, file_len))
}

fn read_object(path: &Path) -> Option<(Meta, Bytes)> {
    let mut f = fs::File::open(path).ok()?;
    let file_len = f.metadata().ok()?.len();
    let (meta, meta_len, body_len) = read_header(&mut f)?;
    if 16u64.checked_add(meta_len)?.checked_add(body_len)? != file_len {
        return None;
    }
    let mut body = vec![0u8; usize::try_from(body_len).ok()?];
    f.read_exact(&mut body).ok()?;
    // Trailing bytes mean the file is not what we wrote.
    let mut extra = [0u8; 1];
    if f.read(&mut extra).ok()? != 0 {
        return None;
    }
    Some((meta, Bytes::from(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(body: &[u8]) -> CachedObject {
        CachedObject {
            status: 200,
            headers: vec![("content-type".into(), "video/mp4".into())],
            body: Bytes::copy_from_slice(body),
            stored_ms: 1,
            fresh_until_ms: 2,
            stale_while_revalidate_until_ms: 3,
            stale_if_error_until_ms: 4,
        }
    }

    #[test]
    fn objects_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = DiskCache::open(dir.path(), 1 << 20).expect("open");
        c.insert("/a.m4s", &obj(b"hello")).expect("insert");
        drop(c);
        let c = DiskCache::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(c.get("/a.m4s"), Some(obj(b"hello")));
        assert!(c.get("/b.m4s").is_none());
        assert!(c.bytes() > 5);
    }

    #[test]
    fn broken_files_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = DiskCache::open(dir.path(), 1 << 20).expect("open");
        c.insert("/a", &obj(&[7u8; 1000])).expect("insert");
        c.insert("/b", &obj(&[8u8; 1000])).expect("insert");
        let pa = c.path_for("/a");
        let pb = c.path_for("/b");
        drop(c);
        // Truncate one, scribble over the other's header.
        let data = fs::read(&pa).expect("read");
        fs::write(&pa, &data[..data.len() - 10]).expect("write");
        fs::write(&pb, b"garbage").expect("write");
        fs::write(pa.with_extension("tmp42"), b"half").expect("write");
        let c = DiskCache::open(dir.path(), 1 << 20).expect("reopen");
        assert!(c.get("/a").is_none());
        assert!(c.get("/b").is_none());
        assert!(!pb.exists());
        assert!(!pa.with_extension("tmp42").exists());
    }

    #[test]
    fn byte_bound_evicts_least_recently_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = DiskCache::open(dir.path(), 10_000).expect("open");
        for i in 0..20 {
            c.insert(&format!("/k{i}"), &obj(&[1u8; 1000]))
                .expect("insert");
            c.get("/k0");
        }
        assert!(c.bytes() <= 10_000);
        assert!(c.get("/k0").is_some(), "recently used survives");
        assert!(c.get("/k1").is_none(), "old unused is gone");
        assert!(c.insert("/big", &obj(&[0u8; 9000])).is_err());
    }
}
