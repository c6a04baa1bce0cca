//! The disk tier: objects in files under one folder, bounded in bytes, surviving a
//! restart. One file per object, named by the hex SHA-256 of its key under two levels
//! of fan-out folders (`ab/cd/abcd….obj`), written to a uniquely named temporary file
//! and renamed into place, so a crash never leaves a half-written object under a real
//! name and two writers of one key never mix their bytes.
//!
//! File format (integers big-endian): `MMCO` magic, version byte (1), u32 metadata
//! length, metadata JSON (`{key, body_sha256, object}` — the `CachedObject` without
//! its body), u64 body length, body. On open, files whose header, lengths or name do
//! not check out are deleted; on read the key and the body's SHA-256 are checked too
//! (data is not fsynced, so after a power loss a file may be whole in length and wrong
//! in content), and a bad file is deleted. Only names this tier writes are ever
//! touched, so pointing it at the wrong folder deletes nothing else.
//!
//! Eviction is least-recently-used within the byte bound (file sizes). Blocking I/O:
//! call from `spawn_blocking`. One process per folder.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CachedObject;

const MAGIC: &[u8; 4] = b"MMCO";
const VERSION: u8 = 1;
/// magic + version + meta length.
const PREFIX_LEN: u64 = 4 + 1 + 4;
/// Largest metadata block written or accepted.
const MAX_META: usize = 1 << 20;
const OBJ_EXT: &str = "obj";

/// Disk tier errors.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata: {0}")]
    Meta(#[from] serde_json::Error),
    #[error("object of {size} bytes exceeds the disk tier's limit of {max}")]
    TooLarge { size: u64, max: u64 },
}

#[derive(Serialize, Deserialize)]
struct Meta {
    key: String,
    body_sha256: String,
    object: CachedObject,
}

#[derive(Debug)]
struct Entry {
    size: u64,
    /// Last use; also the entry's position in `Index::lru`.
    tick: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<String, Entry>,
    /// tick → key, oldest use first.
    lru: BTreeMap<u64, String>,
    bytes: u64,
    clock: u64,
}

impl Index {
    fn touch(&mut self, key: &str) -> Option<u64> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.entries.get_mut(key)?;
        let old = std::mem::replace(&mut e.tick, clock);
        self.lru.remove(&old);
        self.lru.insert(clock, key.to_string());
        Some(clock)
    }

    fn put(&mut self, key: &str, size: u64) -> u64 {
        self.remove(key);
        self.clock += 1;
        let tick = self.clock;
        self.entries.insert(key.to_string(), Entry { size, tick });
        self.lru.insert(tick, key.to_string());
        self.bytes += size;
        tick
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.lru.remove(&e.tick);
        self.bytes = self.bytes.saturating_sub(e.size);
        Some(e)
    }
}

/// The disk tier.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    tmp_seq: AtomicU64,
}

impl DiskCache {
    /// Opens (or creates) the folder, indexes the objects there, deletes broken ones
    /// and leftover temporary files, and evicts down to `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, DiskError> {
        fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for l1 in fan_out_dirs(dir)? {
            for l2 in fan_out_dirs(&l1)? {
                let Ok(files) = fs::read_dir(&l2) else {
                    continue;
                };
                for f in files.flatten() {
                    if let Some(item) = scan_file(&f.path()) {
                        found.push(item);
                    }
                }
            }
        }
        // Least recently stored gets the oldest tick.
        found.sort_by_key(|(_, stored_ms, _)| *stored_ms);
        let cache = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            index: Mutex::new(Index::default()),
            tmp_seq: AtomicU64::new(0),
        };
        {
            let mut idx = cache.index.lock();
            for (key, _, size) in found {
                idx.put(&key, size);
            }
            cache.evict(&mut idx);
            tracing::info!(
                dir = %dir.display(),
                objects = idx.entries.len(),
                bytes = idx.bytes,
                "disk cache opened"
            );
        }
        Ok(cache)
    }

    /// The object under `key`, if its file is whole; a broken file is deleted.
    pub fn get(&self, key: &str) -> Option<CachedObject> {
        let tick = self.index.lock().touch(key)?;
        let path = self.path_for(key);
        match read_object(&path, key, self.max_bytes) {
            Some(obj) => Some(obj),
            None => {
                tracing::warn!(path = %path.display(), "dropping unreadable disk cache file");
                let mut idx = self.index.lock();
                // Unless a newer version was stored meanwhile.
                if idx.entries.get(key).is_some_and(|e| e.tick == tick) {
                    idx.remove(key);
                    let _ = fs::remove_file(&path);
                }
                None
            }
        }
    }

    /// Stores `obj` under `key`, replacing what was there, then evicts the least
    /// recently used objects down to the bound. Objects over a quarter of the bound
    /// are refused.
    pub fn insert(&self, key: &str, obj: &CachedObject) -> Result<(), DiskError> {
        let meta = serde_json::to_vec(&Meta {
            key: key.to_string(),
            body_sha256: hex::encode(Sha256::digest(&obj.body)),
            object: obj.clone(),
        })?;
        let body_len = obj.body.len() as u64;
        let size = PREFIX_LEN + meta.len() as u64 + 8 + body_len;
        let max = self.max_bytes / 4;
        if size > max || meta.len() > MAX_META {
            return Err(DiskError::TooLarge { size, max });
        }
        let path = self.path_for(key);
        let tmp = path.with_extension(format!(
            "tmp.{}.{}",
            std::process::id(),
            self.tmp_seq.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = write_file(&tmp, &meta, &obj.body) {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        // Rename and index together, so the index always describes the file in place.
        let mut idx = self.index.lock();
        if let Err(e) = fs::rename(&tmp, &path) {
            drop(idx);
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        idx.put(key, size);
        self.evict(&mut idx);
        Ok(())
    }

    pub fn remove(&self, key: &str) {
        let mut idx = self.index.lock();
        if idx.remove(key).is_some() {
            let _ = fs::remove_file(self.path_for(key));
        }
    }

    /// Bytes held on disk (file lengths).
    pub fn bytes(&self) -> u64 {
        self.index.lock().bytes
    }

    /// Objects held.
    pub fn len(&self) -> usize {
        self.index.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn path_for(&self, key: &str) -> PathBuf {
        let h = hex::encode(Sha256::digest(key.as_bytes()));
        self.dir
            .join(&h[..2])
            .join(&h[2..4])
            .join(format!("{h}.{OBJ_EXT}"))
    }

    fn evict(&self, idx: &mut Index) {
        while idx.bytes > self.max_bytes {
            let Some((_, key)) = idx.lru.pop_first() else {
                break;
            };
            if let Some(e) = idx.entries.remove(&key) {
                idx.bytes = idx.bytes.saturating_sub(e.size);
                let _ = fs::remove_file(self.path_for(&key));
            }
        }
    }
}

/// Subfolders of `dir` named like a fan-out level (two lower-case hex digits).
fn fan_out_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(fs::read_dir(dir)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name().to_str().is_some_and(|n| is_hex(n, 2)))
        .map(|e| e.path())
        .collect())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One file met while opening: (key, stored_ms, size) when it is a whole object in
/// its right place; broken objects and temporary files are deleted, anything not
/// named like ours is left alone.
fn scan_file(path: &Path) -> Option<(String, u64, u64)> {
    let name = path.file_name()?.to_str()?;
    let (hash, ext) = name.split_once('.')?;
    if !is_hex(hash, 64) {
        return None;
    }
    if ext.starts_with("tmp.") {
        let _ = fs::remove_file(path); // a write cut short
        return None;
    }
    if ext != OBJ_EXT {
        return None;
    }
    let whole = open_checked(path).filter(|c| {
        let want = hex::encode(Sha256::digest(c.meta.key.as_bytes()));
        want == hash && in_place(path, &want)
    });
    match whole {
        Some(c) => Some((c.meta.key, c.meta.object.stored_ms, c.file_len)),
        None => {
            tracing::warn!(path = %path.display(), "dropping broken disk cache file");
            let _ = fs::remove_file(path);
            None
        }
    }
}

/// The file sits in the fan-out folders its hash names.
fn in_place(path: &Path, hash: &str) -> bool {
    let l2 = path.parent();
    let l1 = l2.and_then(Path::parent);
    dir_name(l2) == hash.get(2..4) && dir_name(l1) == hash.get(..2)
}

fn dir_name(p: Option<&Path>) -> Option<&str> {
    p.and_then(Path::file_name).and_then(|n| n.to_str())
}

fn write_file(path: &Path, meta: &[u8], body: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let meta_len = u32::try_from(meta.len()).map_err(std::io::Error::other)?;
    let mut f = std::io::BufWriter::new(fs::File::create(path)?);
    f.write_all(MAGIC)?;
    f.write_all(&[VERSION])?;
    f.write_all(&meta_len.to_be_bytes())?;
    f.write_all(meta)?;
    f.write_all(&(body.len() as u64).to_be_bytes())?;
    f.write_all(body)?;
    f.flush()
}

/// A file whose header checked out.
struct Checked {
    meta: Meta,
    /// Positioned at the body.
    file: fs::File,
    body_len: u64,
    file_len: u64,
}

/// Opens `path` and reads its header, if the magic and version are ours and the
/// lengths add up to the file's length.
fn open_checked(path: &Path) -> Option<Checked> {
    let mut file = fs::File::open(path).ok()?;
    let file_len = file.metadata().ok()?.len();
    let mut prefix = [0u8; PREFIX_LEN as usize];
    file.read_exact(&mut prefix).ok()?;
    let (magic, rest) = prefix.split_at(4);
    let (version, len) = rest.split_at(1);
    if magic != MAGIC || version != [VERSION] {
        return None;
    }
    let meta_len = u32::from_be_bytes(len.try_into().ok()?) as usize;
    let head_len = PREFIX_LEN + meta_len as u64 + 8;
    if meta_len > MAX_META || head_len > file_len {
        return None;
    }
    let mut meta = vec![0u8; meta_len];
    file.read_exact(&mut meta).ok()?;
    let meta: Meta = serde_json::from_slice(&meta).ok()?;
    let mut body_len = [0u8; 8];
    file.read_exact(&mut body_len).ok()?;
    let body_len = u64::from_be_bytes(body_len);
    (head_len.checked_add(body_len)? == file_len).then_some(Checked {
        meta,
        file,
        body_len,
        file_len,
    })
}

/// The whole object, if the header checks out, the key is `key` and the body has
/// its recorded length and digest.
fn read_object(path: &Path, key: &str, max_bytes: u64) -> Option<CachedObject> {
    let c = open_checked(path)?;
    if c.meta.key != key || c.file_len > max_bytes {
        return None;
    }
    let mut body = Vec::with_capacity(usize::try_from(c.body_len).ok()?);
    c.file.take(c.body_len).read_to_end(&mut body).ok()?;
    if body.len() as u64 != c.body_len || hex::encode(Sha256::digest(&body)) != c.meta.body_sha256 {
        return None;
    }
    Some(CachedObject {
        body: Bytes::from(body),
        ..c.meta.object
    })
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
            memo: crate::Memo::default(),
            pages: Default::default(),
        }
    }

    fn open(dir: &Path, max: u64) -> DiskCache {
        DiskCache::open(dir, max).expect("open")
    }

    #[test]
    fn objects_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(dir.path(), 1 << 20);
        c.insert("/a.m4s", &obj(b"hello")).expect("insert");
        c.insert("/b.m4s", &obj(b"")).expect("insert");
        c.insert("/a.m4s", &obj(b"hello again")).expect("replace");
        let bytes = c.bytes();
        drop(c);
        let c = open(dir.path(), 1 << 20);
        assert_eq!(c.get("/a.m4s"), Some(obj(b"hello again")));
        assert_eq!(c.get("/b.m4s"), Some(obj(b"")));
        assert!(c.get("/c.m4s").is_none());
        assert_eq!((c.len(), c.bytes()), (2, bytes));
        c.remove("/a.m4s");
        assert!(c.get("/a.m4s").is_none());
        assert!(!c.path_for("/a.m4s").exists());
        drop(c);
        assert_eq!(open(dir.path(), 1 << 20).len(), 1);
    }

    #[test]
    fn broken_files_are_dropped_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(dir.path(), 1 << 20);
        let keys = [
            "/trunc", "/garbage", "/long", "/magic", "/meta", "/moved", "/ok",
        ];
        for k in keys {
            c.insert(k, &obj(&[7u8; 1000])).expect("insert");
        }
        let p = |k: &str| c.path_for(k);
        let data = fs::read(p("/trunc")).expect("read");
        fs::write(p("/trunc"), &data[..data.len() - 10]).expect("write");
        fs::write(p("/garbage"), b"garbage").expect("write");
        fs::write(p("/long"), [data.as_slice(), b"x"].concat()).expect("write");
        let mut bad = data.clone();
        bad[0] = b'X';
        fs::write(p("/magic"), &bad).expect("write");
        let mut bad = data.clone();
        bad[PREFIX_LEN as usize] = b'[';
        fs::write(p("/meta"), &bad).expect("write");
        // A whole file under another key's name.
        fs::copy(p("/ok"), p("/moved")).expect("copy");
        let tmp = p("/ok").with_extension("tmp.1.1");
        fs::write(&tmp, b"half").expect("write");
        let foreign = dir.path().join("ab").join("cd").join("notes.txt");
        fs::create_dir_all(foreign.parent().expect("parent")).expect("mkdir");
        fs::write(&foreign, b"not ours").expect("write");
        let stray = dir.path().join("README");
        fs::write(&stray, b"not ours").expect("write");
        let paths: Vec<PathBuf> = keys.iter().map(|k| p(k)).collect();
        drop(c);

        let c = open(dir.path(), 1 << 20);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("/ok"), Some(obj(&[7u8; 1000])));
        for (k, path) in keys.iter().zip(&paths) {
            if *k != "/ok" {
                assert!(c.get(k).is_none(), "{k}");
                assert!(!path.exists(), "{k} deleted");
            }
        }
        assert!(!tmp.exists());
        assert!(
            foreign.exists() && stray.exists(),
            "foreign files are left alone"
        );
    }

    #[test]
    fn corruption_found_on_read_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(dir.path(), 1 << 20);
        c.insert("/a", &obj(b"0123456789")).expect("insert");
        let path = c.path_for("/a");
        // Same length, different body: only the digest can tell.
        let mut data = fs::read(&path).expect("read");
        let n = data.len();
        data[n - 1] ^= 0xff;
        fs::write(&path, &data).expect("write");
        assert!(c.get("/a").is_none());
        assert!(!path.exists());
        assert_eq!((c.len(), c.bytes()), (0, 0));
        // Deleted behind our back.
        c.insert("/b", &obj(b"x")).expect("insert");
        fs::remove_file(c.path_for("/b")).expect("rm");
        assert!(c.get("/b").is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn keys_cannot_collide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(dir.path(), 1 << 20);
        c.insert("/a", &obj(b"aaa")).expect("insert");
        // Pretend "/b" hashed to the same file: put /a's file where /b's would be.
        let pb = c.path_for("/b");
        fs::create_dir_all(pb.parent().expect("parent")).expect("mkdir");
        fs::copy(c.path_for("/a"), &pb).expect("copy");
        c.index.lock().put("/b", 1);
        assert!(c.get("/b").is_none(), "the stored key is compared");
        assert_eq!(c.get("/a"), Some(obj(b"aaa")));
    }

    #[test]
    fn byte_bound_evicts_least_recently_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = open(dir.path(), 20_000);
        for i in 0..40 {
            c.insert(&format!("/k{i}"), &obj(&[1u8; 1000]))
                .expect("insert");
            assert!(c.get("/k0").is_some(), "recently used survives");
            assert!(c.bytes() <= 20_000);
        }
        assert!(c.get("/k1").is_none(), "old unused is gone");
        assert!(!c.path_for("/k1").exists());
        assert!(c.get("/k39").is_some());
        assert!(matches!(
            c.insert("/big", &obj(&[0u8; 6000])),
            Err(DiskError::TooLarge { .. })
        ));
        // A smaller bound on reopen evicts down to it, oldest stored first.
        let n = c.len();
        drop(c);
        let c = open(dir.path(), 5_000);
        assert!(c.bytes() <= 5_000);
        assert!(c.len() < n && !c.is_empty());
        let files = walk(dir.path());
        assert_eq!(files, c.len(), "evicted files are deleted");
    }

    fn walk(dir: &Path) -> usize {
        fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }

    #[test]
    fn concurrent_writers_of_one_key_never_mix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = std::sync::Arc::new(open(dir.path(), 1 << 24));
        let threads: Vec<_> = (0u8..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        c.insert("/p.m3u8", &obj(&[t; 50_000])).expect("insert");
                        if let Some(o) = c.get("/p.m3u8") {
                            let first = o.body[0];
                            assert!(o.body.iter().all(|b| *b == first));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(c.len(), 1);
        let size = fs::metadata(c.path_for("/p.m3u8")).expect("meta").len();
        assert_eq!(c.bytes(), size);
        assert_eq!(walk(dir.path()), 1, "no temporary files left");
    }
}
