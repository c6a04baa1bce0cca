//! The live store of one rendition: its init segment, the CMAF parts and segments of
//! the DVR window, and the wake-ups that blocking playlist reloads and preload-hinted
//! part requests wait on.
//!
//! It holds bytes and timing only; cutting media into parts is the packager's job and
//! writing playlists is `playlist.rs`'s. A segment is stored as its parts: the segment
//! object is their concatenation, so no byte is kept twice.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// One LL-HLS part: a CMAF chunk (moof + mdat).
#[derive(Debug)]
pub struct Part {
    pub bytes: Bytes,
    pub duration: f64,
    pub independent: bool,
    /// SHA-256 of `bytes`, computed on first use (most parts are never asked for).
    sha256: OnceLock<[u8; 32]>,
    /// The origin's signature of the part, made on its first request.
    signature: OnceLock<String>,
    /// Decode time of the first video sample, 90 kHz.
    pub decode_time: u64,
}

impl Part {
    /// SHA-256 of the part's bytes.
    pub fn sha256(&self) -> [u8; 32] {
        *self
            .sha256
            .get_or_init(|| Sha256::digest(&self.bytes).into())
    }

    /// The origin's signature of the part: `sign` (given the digest) runs on the first
    /// call only, so a part requested by many edges and viewers is signed once.
    pub fn signature(&self, sign: impl FnOnce(&[u8; 32]) -> String) -> &str {
        self.signature.get_or_init(|| sign(&self.sha256()))
    }
}

/// A complete segment: the concatenation of its parts.
#[derive(Debug, Clone)]
pub struct Segment {
    pub msn: u64,
    pub parts: Vec<Arc<Part>>,
    pub duration: f64,
    pub discontinuity: bool,
    /// Wall clock of the first sample, unix milliseconds.
    pub pdt_ms: u64,
    /// SHA-256 of the concatenated parts, computed on first use.
    sha256: Arc<OnceLock<[u8; 32]>>,
    /// The origin's signature of the segment, made on its first request.
    signature: Arc<OnceLock<String>>,
    pub size: usize,
}

impl Segment {
    /// SHA-256 of the segment (its parts concatenated).
    pub fn sha256(&self) -> [u8; 32] {
        *self.sha256.get_or_init(|| {
            let mut hasher = Sha256::new();
            for p in &self.parts {
                hasher.update(&p.bytes);
            }
            hasher.finalize().into()
        })
    }

    /// The origin's signature of the segment (see [`Part::signature`]).
    pub fn signature(&self, sign: impl FnOnce(&[u8; 32]) -> String) -> &str {
        self.signature.get_or_init(|| sign(&self.sha256()))
    }

    /// Decode time of the first sample, 90 kHz.
    pub fn start(&self) -> u64 {
        self.parts.first().map_or(0, |p| p.decode_time)
    }
}

/// The segment being produced: its parts so far.
#[derive(Debug, Clone)]
pub struct OpenSegment {
    pub msn: u64,
    pub parts: Vec<Arc<Part>>,
    pub discontinuity: bool,
    pub pdt_ms: u64,
}

impl OpenSegment {
    fn duration(&self) -> f64 {
        self.parts.iter().map(|p| p.duration).sum()
    }
}

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub segment_target: Duration,
    pub part_target: Duration,
    pub dvr_window: Duration,
    pub max_bytes: usize,
    /// Media sequence number of the first segment until [`RenditionStore::begin`]
    /// places the stream on its numbering grid (see `numbering.rs`). Taken from the
    /// wall clock, so a stream that restarts under the same name never reuses an object
    /// name that a cache may still hold.
    pub first_msn: u64,
}

/// Everything behind the lock.
#[derive(Debug, Default)]
pub struct Timeline {
    pub init: Option<Bytes>,
    /// Bumped whenever the init segment changes (a publisher came back with other
    /// codec settings): playlists name `init-{version}.mp4`, so players fetch the new
    /// one instead of reusing a cached init that no longer matches.
    pub init_version: u64,
    pub segments: VecDeque<Segment>,
    pub open: Option<OpenSegment>,
    pub next_msn: u64,
    pub discontinuity_sequence: u64,
    pub ended: bool,
    pub bytes: usize,
    /// Longest segment seen, seconds (for TARGETDURATION).
    pub max_segment_duration: f64,
    /// Set when the next part starts a new segment after a discontinuity.
    pending_discontinuity: bool,
}

impl Timeline {
    /// Media sequence number of the last segment the playlist lists (open or complete).
    pub fn last_msn(&self) -> Option<u64> {
        match &self.open {
            Some(open) => Some(open.msn),
            None => self.segments.back().map(|s| s.msn),
        }
    }

    /// True when segment `msn` is complete, or (with `part`) when that part exists.
    pub fn has(&self, msn: u64, part: Option<u64>) -> bool {
        if let Some(last) = self.segments.back() {
            if last.msn >= msn {
                return true;
            }
        }
        match (part, &self.open) {
            (Some(p), Some(open)) => {
                open.msn > msn || (open.msn == msn && (open.parts.len() as u64) > p)
            }
            _ => false,
        }
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        let seg = self
            .segments
            .get(usize::try_from(msn.checked_sub(first)?).ok()?)?;
        (seg.msn == msn).then_some(seg)
    }

    pub fn part(&self, msn: u64, index: u64) -> Option<Arc<Part>> {
        let idx = usize::try_from(index).ok()?;
        if let Some(open) = &self.open {
            if open.msn == msn {
                return open.parts.get(idx).cloned();
            }
        }
        self.segment(msn)?.parts.get(idx).cloned()
    }

    /// Where the next part will go: (msn, part index).
    pub fn next_part(&self) -> (u64, u64) {
        match &self.open {
            Some(open) => (open.msn, open.parts.len() as u64),
            None => (self.next_msn, 0),
        }
    }

    /// Discontinuity sequence number of the last segment listed (open or complete):
    /// `EXT-X-DISCONTINUITY-SEQUENCE` plus the discontinuities in the window.
    pub fn last_cc(&self) -> u64 {
        let marked = self.segments.iter().filter(|s| s.discontinuity).count() as u64
            + u64::from(self.open.as_ref().is_some_and(|o| o.discontinuity));
        self.discontinuity_sequence + marked
    }

    /// MSN of the last complete segment.
    pub fn last_complete_msn(&self) -> Option<u64> {
        self.segments.back().map(|s| s.msn)
    }

    /// Total duration of what is listed, seconds.
    pub fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum::<f64>()
            + self.open.as_ref().map_or(0.0, OpenSegment::duration)
    }
}

/// The store of one rendition, shared between its packager (writer) and HTTP (readers).
#[derive(Debug)]
pub struct RenditionStore {
    config: StoreConfig,
    timeline: RwLock<Timeline>,
    changed: watch::Sender<u64>,
}

impl RenditionStore {
    pub fn new(config: StoreConfig) -> Self {
        let (changed, _) = watch::channel(0);
        let timeline = Timeline {
            next_msn: config.first_msn,
            ..Timeline::default()
        };
        Self {
            config,
            timeline: RwLock::new(timeline),
            changed,
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Read access for playlist writers and object lookups.
    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, Timeline> {
        self.timeline.read()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Sets (or replaces, after a reconnect with new codec settings) the init segment.
    pub fn set_init(&self, init: Bytes) {
        let mut t = self.timeline.write();
        let replaced = t.init.as_ref().is_some_and(|old| *old != init);
        if replaced {
            t.init_version += 1;
        }
        t.init = Some(init);
        if replaced {
            t.pending_discontinuity = true;
        }
        drop(t);
        self.bump();
    }

    /// Places the next segment at `msn` (never lower than where the store is) and, for
    /// a store that has listed nothing yet, starts its discontinuity sequence at
    /// `discontinuity_sequence`. `discontinuity` marks the next segment as following
    /// another timeline.
    pub fn begin(&self, msn: u64, discontinuity: bool, discontinuity_sequence: u64) {
        let mut t = self.timeline.write();
        if let Some(open) = t.open.take() {
            close_segment(&mut t, open);
        }
        let empty = t.segments.is_empty();
        if empty {
            t.next_msn = msn;
            t.discontinuity_sequence = discontinuity_sequence;
        } else {
            t.next_msn = t.next_msn.max(msn);
        }
        if discontinuity {
            t.pending_discontinuity = true;
        }
        drop(t);
        self.bump();
    }

    /// Marks that the next segment follows a timestamp or encoder discontinuity.
    pub fn mark_discontinuity(&self) {
        let mut t = self.timeline.write();
        if let Some(open) = t.open.take() {
            close_segment(&mut t, open);
        }
        t.pending_discontinuity = true;
        drop(t);
        self.bump();
    }

    /// Appends a part to the open segment, opening one if needed.
    pub fn push_part(&self, bytes: Bytes, duration: f64, independent: bool, decode_time: u64) {
        self.push_part_at(bytes, duration, independent, decode_time, None);
    }

    /// [`push_part`](Self::push_part) with the wall-clock time of the part's first
    /// sample (PROGRAM-DATE-TIME of a segment it opens); `None` uses the clock now.
    pub fn push_part_at(
        &self,
        bytes: Bytes,
        duration: f64,
        independent: bool,
        decode_time: u64,
        pdt_ms: Option<u64>,
    ) {
        let part = Arc::new(Part {
            bytes,
            duration,
            independent,
            sha256: OnceLock::new(),
            signature: OnceLock::new(),
            decode_time,
        });
        let mut t = self.timeline.write();
        t.bytes += part.bytes.len();
        if t.open.is_none() {
            let msn = t.next_msn;
            t.next_msn += 1;
            let discontinuity = std::mem::take(&mut t.pending_discontinuity);
            t.open = Some(OpenSegment {
                msn,
                parts: Vec::new(),
                discontinuity,
                pdt_ms: pdt_ms.unwrap_or_else(unix_ms),
            });
        }
        if let Some(open) = t.open.as_mut() {
            open.parts.push(part);
        }
        t.ended = false;
        self.evict(&mut t);
        drop(t);
        self.bump();
    }

    /// Closes the open segment: its EXTINF line appears in the playlist.
    pub fn end_segment(&self) {
        let mut t = self.timeline.write();
        if let Some(open) = t.open.take() {
            close_segment(&mut t, open);
        }
        self.evict(&mut t);
        drop(t);
        self.bump();
    }

    /// The stream is over: close what is open and add EXT-X-ENDLIST.
    pub fn end_stream(&self) {
        let mut t = self.timeline.write();
        if let Some(open) = t.open.take() {
            close_segment(&mut t, open);
        }
        t.ended = true;
        drop(t);
        self.bump();
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.timeline.read().bytes
    }

    fn evict(&self, t: &mut Timeline) {
        let window = self.config.dvr_window.as_secs_f64();
        loop {
            let total = t.duration();
            let Some(first) = t.segments.front() else {
                break;
            };
            let over_time = total - first.duration >= window;
            let over_bytes = t.bytes > self.config.max_bytes;
            if !(over_time || over_bytes) {
                break;
            }
            if let Some(gone) = t.segments.pop_front() {
                t.bytes = t.bytes.saturating_sub(gone.size);
                // The playlist's EXT-X-DISCONTINUITY-SEQUENCE counts the
                // discontinuities that slid out of the window.
                if gone.discontinuity {
                    t.discontinuity_sequence += 1;
                }
            }
        }
    }

    /// Waits until `has(msn, part)` holds or `timeout` passes. Returns whether it holds.
    pub async fn wait_for(&self, msn: u64, part: Option<u64>, timeout: Duration) -> bool {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let t = self.read();
                if t.has(msn, part) {
                    return true;
                }
                if t.ended {
                    return false;
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return false,
            }
        }
    }
}

fn close_segment(t: &mut Timeline, open: OpenSegment) {
    if open.parts.is_empty() {
        return;
    }
    let size = open.parts.iter().map(|p| p.bytes.len()).sum();
    let duration = open.duration();
    if duration > t.max_segment_duration {
        t.max_segment_duration = duration;
    }
    t.segments.push_back(Segment {
        msn: open.msn,
        parts: open.parts,
        duration,
        discontinuity: open.discontinuity,
        pdt_ms: open.pdt_ms,
        sha256: Arc::new(OnceLock::new()),
        signature: Arc::new(OnceLock::new()),
        size,
    });
}

/// Wall clock in unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(window_s: u64, max_bytes: usize) -> RenditionStore {
        RenditionStore::new(StoreConfig {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(500),
            dvr_window: Duration::from_secs(window_s),
            max_bytes,
            first_msn: 0,
        })
    }

    fn push_segment(s: &RenditionStore, parts: usize) {
        for i in 0..parts {
            s.push_part(Bytes::from(vec![i as u8; 100]), 0.5, i == 0, 0);
        }
        s.end_segment();
    }

    #[test]
    fn parts_form_segments_and_msn_counts_up() {
        let s = store(60, usize::MAX);
        push_segment(&s, 4);
        s.push_part(Bytes::from_static(b"x"), 0.5, true, 0);
        let t = s.read();
        assert_eq!(t.segments.len(), 1);
        assert_eq!(t.segments[0].msn, 0);
        assert_eq!(t.segments[0].size, 400);
        assert!((t.segments[0].duration - 2.0).abs() < 1e-9);
        assert_eq!(t.next_part(), (1, 1));
        assert!(t.has(0, None));
        assert!(t.has(1, Some(0)));
        assert!(!t.has(1, Some(1)));
        assert!(!t.has(1, None));
        assert!(t.part(1, 0).is_some());
        assert!(t.part(0, 3).is_some());
        assert!(t.part(0, 4).is_none());
    }

    #[test]
    fn window_evicts_by_time_and_bytes() {
        let s = store(10, usize::MAX);
        for _ in 0..20 {
            push_segment(&s, 4);
        }
        let t = s.read();
        assert!(t.duration() >= 10.0 && t.duration() <= 12.0);
        assert_eq!(t.segments.back().map(|s| s.msn), Some(19));
        drop(t);

        let s = store(600, 1000);
        for _ in 0..20 {
            push_segment(&s, 4);
        }
        assert!(s.bytes() <= 1000 + 400);
    }

    #[test]
    fn a_new_init_gets_a_new_version_and_a_discontinuity() {
        let s = store(60, usize::MAX);
        s.set_init(Bytes::from_static(b"init-a"));
        s.set_init(Bytes::from_static(b"init-a"));
        assert_eq!(s.read().init_version, 0, "same bytes, same version");
        push_segment(&s, 2);
        s.set_init(Bytes::from_static(b"init-b"));
        push_segment(&s, 2);
        let t = s.read();
        assert_eq!(t.init_version, 1);
        assert_eq!(t.init.as_deref(), Some(&b"init-b"[..]));
        assert!(!t.segments[0].discontinuity && t.segments[1].discontinuity);
    }

    #[test]
    fn begin_places_the_first_segment_and_never_goes_back() {
        let s = store(60, usize::MAX);
        s.begin(1000, true, 7);
        push_segment(&s, 2);
        {
            let t = s.read();
            assert_eq!(t.segments[0].msn, 1000);
            assert!(t.segments[0].discontinuity);
            assert_eq!(t.discontinuity_sequence, 7);
            assert_eq!(t.last_cc(), 8);
        }
        // A later timeline continues above, with another discontinuity.
        s.begin(990, true, 0);
        push_segment(&s, 2);
        s.begin(1005, true, 0);
        push_segment(&s, 2);
        let t = s.read();
        let msns: Vec<u64> = t.segments.iter().map(|s| s.msn).collect();
        assert_eq!(msns, vec![1000, 1001, 1005]);
        assert_eq!(t.discontinuity_sequence, 7, "kept once something is listed");
        assert_eq!(t.last_cc(), 10);
        assert_eq!(t.last_complete_msn(), Some(1005));
    }

    #[test]
    fn segment_digest_is_hash_of_concatenated_parts() {
        let s = store(60, usize::MAX);
        push_segment(&s, 3);
        let t = s.read();
        let seg = &t.segments[0];
        let mut all = Vec::new();
        for p in &seg.parts {
            all.extend_from_slice(&p.bytes);
        }
        let want: [u8; 32] = Sha256::digest(&all).into();
        assert_eq!(seg.sha256(), want);
    }

    #[tokio::test]
    async fn waiters_wake_when_part_arrives_and_time_out_otherwise() {
        let s = Arc::new(store(60, usize::MAX));
        let s2 = s.clone();
        let waiter =
            tokio::spawn(async move { s2.wait_for(0, Some(1), Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.push_part(Bytes::from_static(b"a"), 0.5, true, 0);
        s.push_part(Bytes::from_static(b"b"), 0.5, false, 0);
        assert!(matches!(waiter.await, Ok(true)));
        assert!(!s.wait_for(5, None, Duration::from_millis(30)).await);
    }
}
