//! Large bodies of the memory tier in sealed memory files, so that a plain HTTP/1.1
//! connection can hand them to the kernel with `sendfile` instead of copying them
//! into the socket.
//!
//! Why: serving a 2 MB hit, 63 % of the edge's time was the kernel's copy of the
//! body into the socket (`perf`, `wrk -t2 -c100`), and Varnish (serving from memory)
//! served 2 MB hits at about the same rate and CPU per answer. `sendfile` from a
//! file skips that copy: the socket's buffers point at the file's pages. A body kept
//! as heap bytes has no file to point at, so a large body entering the memory tier
//! is written once into a memory file (`memfd_create`, its pages are plain RAM, as
//! the heap's are), sealed, and mapped read-only: everything that reads the body as
//! bytes (TLS, h2, ranges, the hyper path) reads the mapping, and the quick path
//! sends the file.
//!
//! Sound because sealed: the file is sealed against writes, growing and shrinking
//! (`F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK`, then `F_SEAL_SEAL`) before it is
//! mapped, so no one, this process included, can change or cut the bytes under the
//! mapping or under a socket's buffers that still point at its pages after the
//! object is evicted. That is the one `unsafe` block of the crate (the mapping).
//!
//! Limits: each sealed body holds a file descriptor and a mapping. At most
//! [`max_sealed`] are alive at once (a quarter of the open-file limit, at most
//! 16,384, under the kernel's default 65,530 mappings); past that, or if the kernel
//! refuses, a body stays on the heap and is served by copy as before. Bodies under
//! [`SEAL_MIN`] stay on the heap (small answers are one `writev` either way).
//!
//! Not here: reading or writing the disk tier (its files are not sealed, and a hit
//! from disk enters the memory tier, where it is sealed like any other), and the
//! sending itself (`service`'s quick path).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use rustix::fs::{MemfdFlags, SealFlags};

/// Bodies from this size are sealed.
pub const SEAL_MIN: usize = 64 * 1024;

/// Sealed bodies alive now (each holds a descriptor and a mapping).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// How many sealed bodies may be alive at once: a quarter of the open-file limit
/// (connections need the rest), at most 16,384.
pub fn max_sealed() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        usize::try_from(soft / 4).unwrap_or(usize::MAX).min(16_384)
    })
}

/// Sealed bodies alive now.
pub fn sealed_count() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// A body in a sealed memory file, mapped read-only.
pub struct SealedBody {
    map: memmap2::Mmap,
    file: File,
}

impl SealedBody {
    /// `bytes` in a new sealed memory file, or `None` when the budget is spent or the
    /// kernel refuses (out of descriptors, no `memfd`): the caller keeps the heap
    /// bytes.
    pub fn seal(bytes: &[u8]) -> Option<Arc<SealedBody>> {
        Self::seal_within(bytes, max_sealed())
    }

    /// [`SealedBody::seal`] with at most `max` sealed bodies alive.
    fn seal_within(bytes: &[u8], max: usize) -> Option<Arc<SealedBody>> {
        if bytes.is_empty() {
            return None;
        }
        // Counted before it exists, so threads sealing at once cannot overshoot.
        if LIVE.fetch_add(1, Ordering::Relaxed) >= max {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match Self::make(bytes) {
            Ok(body) => Some(Arc::new(body)),
            Err(e) => {
                LIVE.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "body stays on the heap");
                None
            }
        }
    }

    fn make(bytes: &[u8]) -> std::io::Result<SealedBody> {
        let fd = rustix::fs::memfd_create(
            "mediamesh-body",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        file.write_all(bytes)?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
        )?;
        #[allow(unsafe_code)]
        // SAFETY: memmap2's contract is that the file is not changed or truncated
        // while mapped. The seals just added forbid every write, growth and shrink
        // of this file by anyone, and no further seal can lift them (module doc).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(SealedBody { map, file })
    }

    /// The body's bytes, as a `Bytes` that keeps this file alive.
    pub fn bytes(self: &Arc<Self>) -> Bytes {
        Bytes::from_owner(Shared(self.clone()))
    }

    /// Where `view` starts in this file, if it is a view of this file's bytes.
    pub fn offset_of(&self, view: &[u8]) -> Option<u64> {
        let base = self.map.as_ptr() as usize;
        let start = view.as_ptr() as usize;
        let off = start.checked_sub(base)?;
        (off.checked_add(view.len())? <= self.map.len()).then_some(off as u64)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl AsFd for SealedBody {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Drop for SealedBody {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for SealedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedBody")
            .field("len", &self.map.len())
            .finish()
    }
}

/// The owner a sealed body's `Bytes` keeps.
struct Shared(Arc<SealedBody>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0.map
    }
}

/// A cached object's body file, when its body lives in one (`CachedObject::pages`).
/// Not stored on disk, not compared (the body compares the bytes).
#[derive(Clone, Default, Debug)]
pub struct Pages(pub(crate) Option<Arc<SealedBody>>);

impl PartialEq for Pages {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_sealed_body_reads_back_and_offsets_are_checked() {
        let data = pattern(200_000);
        let sealed = SealedBody::seal(&data).expect("memfd");
        let bytes = sealed.bytes();
        assert_eq!(&bytes[..], &data[..]);
        assert_eq!(sealed.offset_of(&bytes), Some(0));
        assert_eq!(sealed.offset_of(&bytes.slice(1000..5000)), Some(1000));
        assert_eq!(sealed.offset_of(&data), None);
        assert_eq!(sealed.len(), data.len());
    }

    #[test]
    fn a_sealed_body_cannot_be_written_grown_or_cut() {
        let sealed = SealedBody::seal(&pattern(70_000)).expect("memfd");
        let fd = sealed.as_fd();
        assert!(rustix::io::pwrite(fd, b"x", 0).is_err());
        assert!(rustix::fs::ftruncate(fd, 10).is_err());
        assert!(rustix::fs::ftruncate(fd, 1 << 20).is_err());
        // And the seals themselves are sealed.
        assert!(rustix::fs::fcntl_add_seals(fd, SealFlags::empty()).is_err());
        assert!(sealed.bytes().iter().take(10).eq(pattern(10).iter()));
    }

    #[test]
    fn past_the_budget_nothing_is_sealed_and_nothing_leaks() {
        let data = pattern(SEAL_MIN);
        let before = sealed_count();
        // Refused ones are not left counted (other tests may seal a few meanwhile,
        // so only a leak of many would show).
        for _ in 0..1000 {
            assert!(SealedBody::seal_within(&data, 0).is_none());
        }
        assert!(sealed_count() < before + 100);
        assert!(SealedBody::seal_within(&data, sealed_count() + 100).is_some());
    }

    #[test]
    fn sealed_bodies_are_counted_while_alive() {
        let a = SealedBody::seal(&pattern(SEAL_MIN)).expect("memfd");
        let bytes = a.bytes();
        assert!(sealed_count() >= 1);
        drop(a);
        // The bytes keep the file alive.
        assert_eq!(bytes.len(), SEAL_MIN);
        assert!(SealedBody::seal(&[]).is_none());
    }
}
