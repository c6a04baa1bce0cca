//! Recording and live-to-VOD: live streams' CMAF segments written to disk as they
//! stream, each recording served as a VOD asset (`/vod/recordings/{name}/…`, HLS and
//! DASH, no re-encode) and listed at `GET /api/v1/recordings`.
//!
//! [`Recordings`] is the shelf: every recording in the recordings folder, which
//! streams are recorded (`--record`, `--record-stream`, the write API's switch), the
//! disk bound and age limit (oldest finished recordings deleted first), and the
//! supervisor task that attaches a recorder (`recorder.rs`) to each live stream that
//! should be recorded. A recording's files and manifests are `recording.rs` (the names
//! of its files, `files.rs`); moving fragments on the timeline after a reconnect is
//! `retime.rs`.
//!
//! Only streams that exist here are recorded, and a stream exists only after its
//! publish passed the publish key and the `on_publish` hook. Every path is built from
//! a recording name this module made or found on disk and checked with
//! [`recording::valid_name`]; a name from a request is only ever looked up, never
//! joined to a path unchecked. With object storage (`--s3`), finished recordings are
//! uploaded (`s3.rs`, `upload.rs`) and the disk bound and age limit delete only the
//! local media of recordings whose upload is confirmed (their `recording.json`,
//! segment index and upload state stay, so they are still listed and play from S3).
//! Not here: HTTP (`http/recordings.rs`, `http/admin.rs`).

pub mod files;
pub mod recorder;
pub mod recording;
pub mod retime;
pub mod s3;
pub mod upload;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::hooks::Hooks;
use crate::live::store::unix_ms;
use crate::live::{LiveStream, StreamState, Streams};
use recording::{EndReason, Meta, Recording, SegmentEntry, State};

/// Folder under the data folder that holds the recordings.
pub const FOLDER: &str = "recordings";

/// Most per-stream switches the write API keeps.
const MAX_SWITCHES: usize = 10_000;

/// What to record and how much to keep.
#[derive(Clone, Debug)]
pub struct RecordConfig {
    /// Record every live stream (`--record`).
    pub all: bool,
    /// Record these streams (`--record-stream NAME`), besides `all`.
    pub streams: Vec<String>,
    /// Bytes all recordings together may take on disk (`--record-max-bytes`).
    pub max_bytes: u64,
    /// Finished recordings older than this are deleted (`--record-keep-days`);
    /// `None`: kept until `max_bytes` needs their room.
    pub keep: Option<Duration>,
    /// A recording that reaches this length finishes and the next one continues
    /// (`--record-split-minutes`).
    pub split: Duration,
    /// Upload finished recordings to S3-compatible object storage (`--s3`).
    pub s3: Option<s3::S3Config>,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            all: false,
            streams: Vec::new(),
            max_bytes: 10 * 1024 * 1024 * 1024,
            keep: None,
            split: Duration::from_secs(60 * 60),
            s3: None,
        }
    }
}

/// Why a recording operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Corrupt { path: String, problem: String },
    #[error("stream name {0:?} is not allowed: use 1-64 characters of A-Z a-z 0-9 _ - .")]
    BadStreamName(String),
    #[error("no recording named {0:?}")]
    NoSuchRecording(String),
    #[error("recording {0:?} is still being recorded: stop it first")]
    Busy(String),
    #[error("too many per-stream recording switches (limit {0})")]
    TooMany(usize),
}

/// What `start` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The stream is live now: recording starts with its next segment. Otherwise it
    /// starts when the stream is next published.
    pub live: bool,
    /// It was being recorded already.
    pub already: bool,
}

/// A recorder at work on one live stream.
#[derive(Debug)]
struct Active {
    live: Arc<LiveStream>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
    /// The recording it writes now, once it has written a segment.
    recording: Option<String>,
}

#[derive(Debug, Default)]
struct Shelf {
    recordings: BTreeMap<String, Recording>,
    /// The write API's per-stream switch (over `--record` and `--record-stream`).
    switches: BTreeMap<String, bool>,
    /// By stream name.
    active: HashMap<String, Active>,
    /// Streams switched on through the API while live: record from the next segment
    /// (not from the start of the DVR window).
    from_next: HashSet<String>,
    /// Live streams not to attach a recorder to again (a disk-limit stop), until they
    /// end or the API switches them on.
    declined: Vec<Arc<LiveStream>>,
}

impl Shelf {
    /// Bytes of all recordings on the local disk.
    fn total_bytes(&self) -> u64 {
        self.recordings.values().map(Recording::disk_bytes).sum()
    }
}

/// Every recording, and what is being recorded (see the module docs).
#[derive(Debug)]
pub struct Recordings {
    config: RecordConfig,
    root: PathBuf,
    hooks: Hooks,
    shelf: Mutex<Shelf>,
    /// Wakes the supervisor (a switch changed).
    wake: Notify,
    /// Object storage, when on.
    s3: Option<Arc<s3::S3>>,
    /// Wakes the uploader (a recording finished).
    pub(crate) upload_wake: Notify,
    /// Names looked up in S3 and not found there, and when: not asked again for
    /// [`MISS_TTL`].
    misses: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a recording not found in S3 is not looked up again.
const MISS_TTL: Duration = Duration::from_secs(60);
/// Most such names remembered (then forgotten all at once).
const MAX_MISSES: usize = 10_000;

impl Recordings {
    /// The recordings under `data_dir/recordings`, as found there. A recording the
    /// server was writing when it stopped is finished now (reason `interrupted`);
    /// folders that are not recordings are left alone (and logged).
    /// With `s3`, finished recordings not uploaded yet are queued for upload (one
    /// whose upload failed is tried again).
    pub fn open(
        config: RecordConfig,
        data_dir: &Path,
        hooks: Hooks,
        s3: Option<Arc<s3::S3>>,
    ) -> Self {
        let root = data_dir.join(FOLDER);
        let mut recordings = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !recording::valid_name(&name) || !e.path().is_dir() {
                    tracing::warn!(path = %e.path().display(), "not a recording; left alone");
                    continue;
                }
                match Recording::load(&e.path()) {
                    Ok(mut r) => {
                        if r.meta.state == State::Recording {
                            r.meta.state = State::Finished;
                            r.meta.reason = Some(EndReason::Interrupted);
                            r.meta.ended_ms =
                                Some(r.segments.last().map_or(r.meta.started_ms, |s| {
                                    s.pdt_ms + (s.duration * 1000.0) as u64
                                }));
                            if let Err(e) = write_meta(&r.dir, &r.meta) {
                                tracing::warn!(error = %e, "cannot mark an interrupted recording finished");
                            }
                            tracing::info!(recording = %name, "recording interrupted by a restart: finished as it was");
                        }
                        if r.upload
                            .as_ref()
                            .is_some_and(|u| u.phase == upload::Phase::Failed && !u.local_deleted)
                        {
                            r.upload = None;
                        }
                        recordings.insert(name, r);
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable recording; left alone"),
                }
            }
        }
        tracing::info!(
            folder = %root.display(),
            recordings = recordings.len(),
            all = config.all,
            "recordings"
        );
        let shelf = Shelf {
            recordings,
            ..Shelf::default()
        };
        metrics::gauge!("mediamesh_recordings_bytes").set(shelf.total_bytes() as f64);
        Self {
            config,
            root,
            hooks,
            shelf: Mutex::new(shelf),
            wake: Notify::new(),
            s3,
            upload_wake: Notify::new(),
            misses: Mutex::new(HashMap::new()),
        }
    }

    /// Recording `name`, from the shelf or, with object storage, from the bucket: a
    /// finished recording this server does not have (its folder was lost, or another
    /// origin uploaded it under the same prefix) is read from its `recording.json`
    /// and `segments.jsonl` in S3 and kept as a local stub that plays from S3.
    pub async fn get_or_fetch(&self, name: &str) -> Option<Recording> {
        if let Some(r) = self.get(name) {
            return Some(r);
        }
        let s3 = self.s3.as_ref()?;
        if !recording::valid_name(name) {
            return None;
        }
        {
            let mut misses = self.misses.lock();
            if misses.get(name).is_some_and(|t| t.elapsed() < MISS_TTL) {
                return None;
            }
            if misses.len() >= MAX_MISSES {
                misses.clear();
            }
        }
        match self.fetch_stub(s3, name).await {
            Ok(Some(r)) => Some(r),
            Ok(None) => {
                self.misses
                    .lock()
                    .insert(name.to_string(), std::time::Instant::now());
                None
            }
            Err(e) => {
                tracing::warn!(recording = %name, error = %e, "cannot look a recording up in S3");
                None
            }
        }
    }

    async fn fetch_stub(&self, s3: &s3::S3, name: &str) -> Result<Option<Recording>, s3::S3Error> {
        let key_prefix = s3.recording_prefix(name);
        let Some(meta_bytes) = s3
            .fetch(&format!("{key_prefix}{}", files::META_FILE))
            .await?
        else {
            return Ok(None);
        };
        let Some(index) = s3
            .fetch(&format!("{key_prefix}{}", files::INDEX_FILE))
            .await?
        else {
            return Ok(None);
        };
        let corrupt = |problem: String| s3::S3Error::Local {
            path: s3.url_of(&key_prefix),
            problem,
        };
        let meta: Meta = serde_json::from_slice(&meta_bytes).map_err(|e| corrupt(e.to_string()))?;
        if meta.name != name || meta.state != State::Finished {
            return Err(corrupt(format!(
                "recording.json names {:?} ({:?})",
                meta.name, meta.state
            )));
        }
        let segments: Vec<SegmentEntry> = index
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map_while(|l| serde_json::from_slice(l).ok())
            .collect();
        let dir = self.root.join(name);
        let mut u =
            upload::Upload::plan(&s3.config().bucket, &s3.config().prefix, name, Vec::new());
        u.phase = upload::Phase::Uploaded;
        u.local_deleted = true;
        let rec = Recording {
            bytes: segments.iter().map(|s| s.bytes).sum(),
            meta,
            segments,
            dir: dir.clone(),
            upload: Some(u.clone()),
            local: false,
        };
        {
            let mut shelf = self.shelf.lock();
            if let Some(r) = shelf.recordings.get(name) {
                return Ok(Some(r.clone()));
            }
            shelf.recordings.insert(name.to_string(), rec.clone());
        }
        // The stub on disk, so a restart still lists it.
        let local = |e: std::io::Error| s3::S3Error::Local {
            path: dir.display().to_string(),
            problem: e.to_string(),
        };
        let written: Result<(), s3::S3Error> = async {
            tokio::fs::create_dir_all(&dir).await.map_err(local)?;
            tokio::fs::write(dir.join(files::META_FILE), &meta_bytes)
                .await
                .map_err(local)?;
            tokio::fs::write(dir.join(files::INDEX_FILE), &index)
                .await
                .map_err(local)?;
            s3::save_state(&dir, &u).await
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(recording = %name, error = %e, "cannot keep a stub of a recording found in S3");
        }
        tracing::info!(recording = %name, segments = rec.segments.len(), "recording found in S3: it plays from there");
        Ok(Some(rec))
    }

    /// The object store, when `--s3` is on.
    pub fn s3(&self) -> Option<&Arc<s3::S3>> {
        self.s3.as_ref()
    }

    pub fn config(&self) -> &RecordConfig {
        &self.config
    }

    /// The recordings folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every recording, oldest first, as `GET /api/v1/recordings` lists them.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let shelf = self.shelf.lock();
        let mut all: Vec<&Recording> = shelf.recordings.values().collect();
        all.sort_by(|a, b| {
            (a.meta.started_ms, &a.meta.name).cmp(&(b.meta.started_ms, &b.meta.name))
        });
        all.into_iter()
            .map(|r| {
                let mut v = r.listing();
                if let (Some(s3), Some(o)) = (&self.s3, v.as_object_mut()) {
                    let phase = r
                        .upload
                        .as_ref()
                        .map_or(upload::Phase::Pending, |u| u.phase);
                    o.insert("s3".into(), phase.as_str().into());
                    if let Some(u) = r
                        .upload
                        .as_ref()
                        .filter(|u| u.phase == upload::Phase::Uploading)
                    {
                        o.insert("s3_uploaded_bytes".into(), u.done_bytes().into());
                        o.insert("s3_total_bytes".into(), u.total_bytes().into());
                    }
                    if let Some(u) = r
                        .upload
                        .as_ref()
                        .filter(|u| u.phase == upload::Phase::Uploaded)
                    {
                        o.insert("s3_url".into(), s3.url_of(&u.key_prefix).into());
                    }
                }
                v
            })
            .collect()
    }

    /// Whether recording `name` is on the shelf.
    pub fn exists(&self, name: &str) -> bool {
        self.shelf.lock().recordings.contains_key(name)
    }

    /// The oldest finished recording still to upload: its name and folder.
    pub(crate) fn next_upload(&self) -> Option<(String, PathBuf)> {
        let shelf = self.shelf.lock();
        shelf
            .recordings
            .values()
            .filter(|r| {
                r.meta.state == State::Finished
                    && r.upload.as_ref().is_none_or(|u| {
                        matches!(u.phase, upload::Phase::Pending | upload::Phase::Uploading)
                    })
            })
            .min_by_key(|r| (r.meta.started_ms, r.meta.name.clone()))
            .map(|r| (r.meta.name.clone(), r.dir.clone()))
    }

    /// The upload state of `name`, once planned.
    pub(crate) fn upload_state(&self, name: &str) -> Option<upload::Upload> {
        self.shelf
            .lock()
            .recordings
            .get(name)
            .and_then(|r| r.upload.clone())
    }

    pub(crate) fn set_upload(&self, name: &str, u: upload::Upload) {
        if let Some(r) = self.shelf.lock().recordings.get_mut(name) {
            r.upload = Some(u);
        }
        self.upload_gauge();
    }

    fn upload_gauge(&self) {
        let shelf = self.shelf.lock();
        let waiting = shelf
            .recordings
            .values()
            .filter(|r| {
                r.meta.state == State::Finished
                    && r.upload.as_ref().is_none_or(|u| {
                        matches!(u.phase, upload::Phase::Pending | upload::Phase::Uploading)
                    })
            })
            .count();
        metrics::gauge!("mediamesh_record_s3_pending").set(waiting as f64);
    }

    /// Plans the upload of finished recording `name`: writes its manifests beside its
    /// media (they are uploaded too, so the bucket holds a playable HLS asset), lists
    /// its files and saves `upload.json`.
    pub(crate) async fn plan_upload(
        &self,
        name: &str,
        s3: &s3::S3,
    ) -> Result<upload::Upload, s3::S3Error> {
        let rec = self.get(name).ok_or_else(|| s3::S3Error::Local {
            path: name.to_string(),
            problem: "no such recording".into(),
        })?;
        let dir = rec.dir.clone();
        let local = |e: std::io::Error, p: &Path| s3::S3Error::Local {
            path: p.display().to_string(),
            problem: e.to_string(),
        };
        for (file, body) in [
            (files::MULTIVARIANT_FILE, rec.multivariant().write()),
            (files::MEDIA_PLAYLIST_FILE, rec.media_playlist().write()),
            (files::MPD_FILE, rec.mpd().write()),
        ] {
            let p = dir.join(file);
            tokio::fs::write(&p, body).await.map_err(|e| local(e, &p))?;
        }
        let mut files = Vec::new();
        let mut entries = tokio::fs::read_dir(&dir)
            .await
            .map_err(|e| local(e, &dir))?;
        while let Some(e) = entries.next_entry().await.map_err(|e| local(e, &dir))? {
            let file = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata().await else {
                continue;
            };
            let wanted = match files::segment_index(&file) {
                Some(n) => (n as usize) < rec.segments.len(),
                None => upload::file_rank(&file).is_some(),
            };
            if meta.is_file() && wanted {
                files.push((file, meta.len()));
            }
        }
        let u = upload::Upload::plan(&s3.config().bucket, &s3.config().prefix, name, files);
        s3::save_state(&dir, &u).await?;
        self.set_upload(name, u.clone());
        Ok(u)
    }

    /// The upload of `name` is confirmed: `on_record_done` is sent (with its S3 URL),
    /// and with `--s3-delete-local` its local media goes.
    pub(crate) async fn uploaded(&self, name: &str, u: upload::Upload, s3: &s3::S3) {
        let done = {
            let mut shelf = self.shelf.lock();
            let Some(r) = shelf.recordings.get_mut(name) else {
                return;
            };
            r.upload = Some(u.clone());
            r.clone()
        };
        self.upload_gauge();
        let mut fields = done.listing();
        if let Some(o) = fields.as_object_mut() {
            o.insert(
                "dir".into(),
                serde_json::Value::String(done.dir.display().to_string()),
            );
            o.insert("s3".into(), upload::Phase::Uploaded.as_str().into());
            o.insert("s3_url".into(), s3.url_of(&u.key_prefix).into());
            o.insert("s3_bucket".into(), u.bucket.clone().into());
            o.insert("s3_prefix".into(), u.key_prefix.clone().into());
        }
        self.hooks.on_record_done(&done.meta.stream, fields);
        if s3.config().delete_local {
            self.drop_local(name, "uploaded").await;
        }
    }

    /// The upload of `name` failed for good (a local file changed or vanished):
    /// `on_record_done` is sent with `"s3": "failed"`, since the recording is done and
    /// plays from the local disk.
    pub(crate) fn upload_failed(&self, name: &str) {
        let Some(done) = self.get(name) else {
            return;
        };
        self.upload_gauge();
        let mut fields = done.listing();
        if let Some(o) = fields.as_object_mut() {
            o.insert(
                "dir".into(),
                serde_json::Value::String(done.dir.display().to_string()),
            );
            o.insert("s3".into(), upload::Phase::Failed.as_str().into());
        }
        self.hooks.on_record_done(&done.meta.stream, fields);
    }

    /// Deletes the local media of uploaded recording `name` (it plays from S3 then).
    async fn drop_local(&self, name: &str, why: &'static str) {
        let (dir, mut u) = {
            let shelf = self.shelf.lock();
            let Some(r) = shelf.recordings.get(name) else {
                return;
            };
            let Some(u) = r
                .upload
                .clone()
                .filter(|u| u.phase == upload::Phase::Uploaded)
            else {
                return;
            };
            if !r.local {
                return;
            }
            (r.dir.clone(), u)
        };
        u.local_deleted = true;
        // The state says "deleted" before anything is, so a restart halfway through
        // serves from S3 rather than from a half-deleted folder.
        if let Err(e) = s3::save_state(&dir, &u).await {
            tracing::warn!(recording = %name, error = %e, "cannot save the upload state: local copy kept");
            return;
        }
        let freed = {
            let mut shelf = self.shelf.lock();
            let freed = shelf.recordings.get_mut(name).map_or(0, |r| {
                r.local = false;
                r.upload = Some(u.clone());
                r.bytes
            });
            metrics::gauge!("mediamesh_recordings_bytes").set(shelf.total_bytes() as f64);
            freed
        };
        for f in &u.files {
            if upload::is_media(&f.file) {
                let _ = tokio::fs::remove_file(dir.join(&f.file)).await;
            }
        }
        for f in [
            files::MULTIVARIANT_FILE,
            files::MEDIA_PLAYLIST_FILE,
            files::MPD_FILE,
        ] {
            let _ = tokio::fs::remove_file(dir.join(f)).await;
        }
        tracing::info!(recording = %name, bytes = freed, reason = why, "local copy of an uploaded recording deleted: it plays from S3");
        metrics::counter!("mediamesh_record_s3_local_deleted_total", "reason" => why).increment(1);
    }

    /// A copy of recording `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<Recording> {
        if !recording::valid_name(name) {
            return None;
        }
        self.shelf.lock().recordings.get(name).cloned()
    }

    /// Whether stream `name` is to be recorded when live.
    pub fn wanted(&self, name: &str) -> bool {
        let shelf = self.shelf.lock();
        self.wanted_in(&shelf, name)
    }

    /// The write API's switch for stream `name`, if one was set (`None`: the
    /// configuration, `--record` and `--record-stream`, decides).
    pub fn switch(&self, name: &str) -> Option<bool> {
        self.shelf.lock().switches.get(name).copied()
    }

    fn wanted_in(&self, shelf: &Shelf, name: &str) -> bool {
        shelf
            .switches
            .get(name)
            .copied()
            .unwrap_or_else(|| self.config.all || self.config.streams.iter().any(|s| s == name))
    }

    /// Streams whose recorder is at work, with the recording each writes.
    pub fn active(&self) -> Vec<(String, Option<String>)> {
        let shelf = self.shelf.lock();
        let mut v: Vec<_> = shelf
            .active
            .iter()
            .map(|(s, a)| (s.clone(), a.recording.clone()))
            .collect();
        v.sort();
        v
    }

    /// Switches recording of `stream` on (the write API's start). A live stream is
    /// recorded from its next segment, one that is not live from its next publish.
    pub fn start(&self, stream: &str, streams: &Streams) -> Result<Started, RecordError> {
        if !crate::live::name::valid_name(stream) {
            return Err(RecordError::BadStreamName(stream.to_string()));
        }
        let live = streams
            .get(stream)
            .is_some_and(|s| s.state() == StreamState::Live);
        let mut shelf = self.shelf.lock();
        if shelf.switches.len() >= MAX_SWITCHES && !shelf.switches.contains_key(stream) {
            return Err(RecordError::TooMany(MAX_SWITCHES));
        }
        let already = shelf.active.contains_key(stream);
        shelf.switches.insert(stream.to_string(), true);
        shelf.declined.retain(|s| s.name != stream);
        if live && !already {
            shelf.from_next.insert(stream.to_string());
        }
        drop(shelf);
        self.wake.notify_one();
        Ok(Started { live, already })
    }

    /// Switches recording of `stream` off (the write API's stop): a recording in
    /// progress finishes with the segments written so far and becomes a VOD asset.
    /// Returns that recording's name, if one was in progress.
    pub fn stop(&self, stream: &str) -> Result<Option<String>, RecordError> {
        if !crate::live::name::valid_name(stream) {
            return Err(RecordError::BadStreamName(stream.to_string()));
        }
        let mut shelf = self.shelf.lock();
        if shelf.switches.len() >= MAX_SWITCHES && !shelf.switches.contains_key(stream) {
            return Err(RecordError::TooMany(MAX_SWITCHES));
        }
        shelf.switches.insert(stream.to_string(), false);
        shelf.from_next.remove(stream);
        let Some(active) = shelf.active.get(stream) else {
            return Ok(None);
        };
        active.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        active.wake.notify_one();
        Ok(active.recording.clone())
    }

    /// Deletes finished recording `name` (the write API).
    pub async fn delete(&self, name: &str) -> Result<(), RecordError> {
        let victim = {
            let mut shelf = self.shelf.lock();
            match shelf.recordings.get(name) {
                None => return Err(RecordError::NoSuchRecording(name.to_string())),
                Some(r) if r.meta.state == State::Recording => {
                    return Err(RecordError::Busy(name.to_string()))
                }
                Some(_) => {}
            }
            let gone = shelf.recordings.remove(name);
            metrics::gauge!("mediamesh_recordings_bytes").set(shelf.total_bytes() as f64);
            gone
        };
        if let Some(r) = victim {
            let key_prefix = r
                .upload
                .as_ref()
                .filter(|u| u.phase != upload::Phase::Pending)
                .map(|u| u.key_prefix.clone());
            remove(r, "api").await;
            if let (Some(s3), Some(prefix)) = (self.s3.clone(), key_prefix) {
                match s3.delete_prefix(&prefix).await {
                    Ok(n) => {
                        tracing::info!(recording = %name, objects = n, "recording deleted from S3")
                    }
                    Err(e) => {
                        tracing::warn!(recording = %name, error = %e, "cannot delete the recording from S3")
                    }
                }
            }
        }
        Ok(())
    }

    /// The supervisor: attaches a recorder to every live stream that should be
    /// recorded, and applies the age limit. Runs until dropped (aborting it aborts
    /// the recorders too).
    pub async fn run(self: Arc<Self>, streams: Arc<Streams>) {
        let mut recorders: tokio::task::JoinSet<(String, Arc<LiveStream>, recorder::Exit)> =
            tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
                Some(done) = recorders.join_next(), if !recorders.is_empty() => {
                    if let Ok((stream, live, exit)) = done {
                        self.recorder_done(&stream, live, exit);
                    }
                }
            }
            self.attach(&streams, &mut recorders);
            if last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_sweep = Some(tokio::time::Instant::now());
                self.expire().await;
            }
        }
    }

    fn attach(
        self: &Arc<Self>,
        streams: &Streams,
        recorders: &mut tokio::task::JoinSet<(String, Arc<LiveStream>, recorder::Exit)>,
    ) {
        let live_now = streams.list();
        let mut shelf = self.shelf.lock();
        shelf.declined.retain(|d| {
            live_now.iter().any(|s| Arc::ptr_eq(s, d))
                && !matches!(d.state(), StreamState::Ended(_))
        });
        for s in live_now {
            if s.state() != StreamState::Live
                || shelf.active.contains_key(&s.name)
                || shelf.declined.iter().any(|d| Arc::ptr_eq(d, &s))
                || !self.wanted_in(&shelf, &s.name)
            {
                continue;
            }
            let from_start = !shelf.from_next.remove(&s.name);
            let stop = Arc::new(AtomicBool::new(false));
            let wake = Arc::new(Notify::new());
            shelf.active.insert(
                s.name.clone(),
                Active {
                    live: s.clone(),
                    stop: stop.clone(),
                    wake: wake.clone(),
                    recording: None,
                },
            );
            tracing::info!(stream = %s.name, from_start, "recorder attached");
            let this = self.clone();
            recorders.spawn(async move {
                let exit = recorder::record(this, s.clone(), from_start, stop, wake).await;
                (s.name.clone(), s, exit)
            });
        }
    }

    fn recorder_done(&self, stream: &str, live: Arc<LiveStream>, exit: recorder::Exit) {
        let mut shelf = self.shelf.lock();
        if shelf
            .active
            .get(stream)
            .is_some_and(|a| Arc::ptr_eq(&a.live, &live))
        {
            shelf.active.remove(stream);
        }
        if exit == recorder::Exit::Declined {
            shelf.declined.push(live);
        }
    }

    /// Whether the local copy of `r` may be deleted: it is finished and, with object
    /// storage, its upload is confirmed.
    fn deletable(&self, r: &Recording) -> bool {
        r.meta.state == State::Finished
            && r.local
            && (self.s3.is_none()
                || r.upload
                    .as_ref()
                    .is_some_and(|u| u.phase == upload::Phase::Uploaded))
    }

    /// Deletes finished recordings past the age limit (with object storage: the local
    /// copies of uploaded ones; those not uploaded yet wait).
    async fn expire(&self) {
        let Some(keep) = self.config.keep else {
            return;
        };
        let cutoff = unix_ms().saturating_sub(keep.as_millis() as u64);
        if self.s3.is_some() {
            let names: Vec<String> = {
                let shelf = self.shelf.lock();
                shelf
                    .recordings
                    .values()
                    .filter(|r| {
                        self.deletable(r) && r.meta.ended_ms.unwrap_or(r.meta.started_ms) < cutoff
                    })
                    .map(|r| r.meta.name.clone())
                    .collect()
            };
            for n in names {
                self.drop_local(&n, "age").await;
            }
            return;
        }
        let victims: Vec<Recording> = {
            let mut shelf = self.shelf.lock();
            let names: Vec<String> = shelf
                .recordings
                .values()
                .filter(|r| {
                    r.meta.state == State::Finished
                        && r.meta.ended_ms.unwrap_or(r.meta.started_ms) < cutoff
                })
                .map(|r| r.meta.name.clone())
                .collect();
            let v = names
                .iter()
                .filter_map(|n| shelf.recordings.remove(n))
                .collect();
            metrics::gauge!("mediamesh_recordings_bytes").set(shelf.total_bytes() as f64);
            v
        };
        for r in victims {
            remove(r, "age").await;
        }
    }

    /// Makes room for `bytes` more under the disk bound by deleting the oldest
    /// finished recordings; false when even deleting all of them would not do.
    /// With object storage, only the local copies of uploaded recordings are deleted
    /// (they stay listed and play from S3); recordings not uploaded yet are kept.
    pub(crate) async fn make_room(&self, bytes: u64) -> bool {
        if self.s3.is_some() {
            let (fits, names) = {
                let shelf = self.shelf.lock();
                let mut total = shelf.total_bytes();
                let mut candidates: Vec<(u64, String, u64)> = shelf
                    .recordings
                    .values()
                    .filter(|r| self.deletable(r))
                    .map(|r| (r.meta.started_ms, r.meta.name.clone(), r.bytes))
                    .collect();
                candidates.sort();
                let mut names = Vec::new();
                for (_, name, size) in candidates {
                    if total.saturating_add(bytes) <= self.config.max_bytes {
                        break;
                    }
                    names.push(name);
                    total = total.saturating_sub(size);
                }
                (total.saturating_add(bytes) <= self.config.max_bytes, names)
            };
            for n in names {
                self.drop_local(&n, "disk_limit").await;
            }
            return fits;
        }
        let (fits, victims) = {
            let mut shelf = self.shelf.lock();
            let mut total = shelf.total_bytes();
            let mut finished: Vec<(u64, String, u64)> = shelf
                .recordings
                .values()
                .filter(|r| r.meta.state == State::Finished)
                .map(|r| (r.meta.started_ms, r.meta.name.clone(), r.disk_bytes()))
                .collect();
            finished.sort();
            let mut victims = Vec::new();
            let mut finished = finished.into_iter();
            while total.saturating_add(bytes) > self.config.max_bytes {
                let Some((_, name, size)) = finished.next() else {
                    break;
                };
                if let Some(r) = shelf.recordings.remove(&name) {
                    victims.push(r);
                }
                total = total.saturating_sub(size);
            }
            metrics::gauge!("mediamesh_recordings_bytes").set(total as f64);
            (
                total.saturating_add(bytes) <= self.config.max_bytes,
                victims,
            )
        };
        for r in victims {
            remove(r, "disk_limit").await;
        }
        fits
    }

    /// Creates the folder, init segments and `recording.json` of a new recording of
    /// `live` and puts it on the shelf; returns its name.
    pub(crate) async fn begin(
        &self,
        live: &LiveStream,
        started_ms: u64,
        inits: Inits,
        meta_template: Meta,
    ) -> Result<String, RecordError> {
        let stamp = recording::compact_utc(unix_ms());
        let (name, meta) = {
            let mut shelf = self.shelf.lock();
            let base = format!("{}-{stamp}", live.name);
            let mut name = base.clone();
            let mut n = 2;
            while shelf.recordings.contains_key(&name) || self.root.join(&name).exists() {
                name = format!("{base}-{n}");
                n += 1;
            }
            if !recording::valid_name(&name) {
                return Err(RecordError::BadStreamName(live.name.clone()));
            }
            let meta = Meta {
                name: name.clone(),
                stream: live.name.clone(),
                started_ms,
                ended_ms: None,
                state: State::Recording,
                reason: None,
                ..meta_template
            };
            let bytes = inits.bytes();
            shelf.recordings.insert(
                name.clone(),
                Recording {
                    meta: meta.clone(),
                    segments: Vec::new(),
                    bytes,
                    dir: self.root.join(&name),
                    upload: None,
                    local: true,
                },
            );
            if let Some(a) = shelf.active.get_mut(&live.name) {
                a.recording = Some(name.clone());
            }
            (name, meta)
        };
        let dir = self.root.join(&name);
        let d = dir.clone();
        let written = blocking(move || {
            std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
            inits.write(&d)?;
            write_meta(&d, &meta)
        })
        .await;
        if let Err(e) = written {
            self.shelf.lock().recordings.remove(&name);
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
        tracing::info!(recording = %name, stream = %live.name, "recording started");
        Ok(name)
    }

    /// Writes segment bytes and its index line, then lists it.
    pub(crate) async fn add_segment(
        &self,
        name: &str,
        index: usize,
        bytes: Vec<u8>,
        entry: SegmentEntry,
    ) -> Result<(), RecordError> {
        let dir = self.root.join(name);
        let line = serde_json::to_string(&entry).map_err(|e| RecordError::Corrupt {
            path: dir.display().to_string(),
            problem: e.to_string(),
        })?;
        blocking(move || {
            use std::io::Write;
            let seg = dir.join(files::segment_file(index));
            std::fs::write(&seg, &bytes).map_err(|e| io_err(&seg, e))?;
            let idx = dir.join(files::INDEX_FILE);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&idx)
                .map_err(|e| io_err(&idx, e))?;
            f.write_all(format!("{line}\n").as_bytes())
                .map_err(|e| io_err(&idx, e))
        })
        .await?;
        let mut shelf = self.shelf.lock();
        if let Some(r) = shelf.recordings.get_mut(name) {
            r.bytes += entry.bytes;
            r.segments.push(entry);
        }
        metrics::gauge!("mediamesh_recordings_bytes").set(shelf.total_bytes() as f64);
        metrics::counter!("mediamesh_recording_segments_total").increment(1);
        Ok(())
    }

    /// Finishes recording `name`: `recording.json` says so, it plays as VOD, and
    /// `on_record_done` is sent.
    pub(crate) async fn finish(&self, name: &str, reason: EndReason) {
        let done = {
            let mut shelf = self.shelf.lock();
            let Some(r) = shelf.recordings.get_mut(name) else {
                return;
            };
            r.meta.state = State::Finished;
            r.meta.reason = Some(reason);
            r.meta.ended_ms = Some(unix_ms());
            let stream = r.meta.stream.clone();
            let done = r.clone();
            if let Some(a) = shelf.active.get_mut(&stream) {
                if a.recording.as_deref() == Some(name) {
                    a.recording = None;
                }
            }
            done
        };
        let (dir, meta) = (done.dir.clone(), done.meta.clone());
        if let Err(e) = blocking(move || write_meta(&dir, &meta)).await {
            tracing::warn!(recording = %name, error = %e, "cannot write that the recording finished");
        }
        tracing::info!(
            recording = %name,
            stream = %done.meta.stream,
            reason = reason.as_str(),
            segments = done.segments.len(),
            duration_seconds = done.duration(),
            bytes = done.bytes,
            "recording finished: playable as VOD"
        );
        metrics::counter!("mediamesh_recordings_finished_total", "reason" => reason.as_str())
            .increment(1);
        let mut fields = done.listing();
        if let Some(o) = fields.as_object_mut() {
            o.insert(
                "dir".into(),
                serde_json::Value::String(done.dir.display().to_string()),
            );
        }
        if self.s3.is_some() {
            // Sent once the upload is confirmed, with the recording's S3 URL.
            self.upload_gauge();
            self.upload_wake.notify_one();
        } else {
            self.hooks.on_record_done(&done.meta.stream, fields);
        }
    }
}

/// Init segments of a recording: the muxed one (HLS) and one per track (DASH).
#[derive(Debug, Clone)]
pub(crate) struct Inits {
    pub muxed: Bytes,
    pub video: Option<Bytes>,
    pub audio: Option<Bytes>,
}

impl Inits {
    pub(crate) fn bytes(&self) -> u64 {
        (self.muxed.len()
            + self.video.as_ref().map_or(0, Bytes::len)
            + self.audio.as_ref().map_or(0, Bytes::len)) as u64
    }

    fn write(&self, dir: &Path) -> Result<(), RecordError> {
        for (file, bytes) in [
            (files::INIT_FILE, Some(&self.muxed)),
            (files::VIDEO_INIT_FILE, self.video.as_ref()),
            (files::AUDIO_INIT_FILE, self.audio.as_ref()),
        ] {
            if let Some(b) = bytes {
                let p = dir.join(file);
                std::fs::write(&p, b).map_err(|e| io_err(&p, e))?;
            }
        }
        Ok(())
    }
}

fn io_err(path: &Path, source: std::io::Error) -> RecordError {
    RecordError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `recording.json` (to a temporary file first, so a reader never sees half).
fn write_meta(dir: &Path, meta: &Meta) -> Result<(), RecordError> {
    let path = dir.join(files::META_FILE);
    let tmp = dir.join(format!("{}.tmp", files::META_FILE));
    let body = serde_json::to_vec_pretty(meta).map_err(|e| RecordError::Corrupt {
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    std::fs::write(&tmp, body).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RecordError> + Send + 'static,
) -> Result<T, RecordError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(RecordError::Io {
            path: String::new(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

/// Deletes a recording's folder (already off the shelf).
async fn remove(r: Recording, why: &'static str) {
    match tokio::fs::remove_dir_all(&r.dir).await {
        Ok(()) => {
            tracing::info!(recording = %r.meta.name, bytes = r.bytes, reason = why, "recording deleted");
            metrics::counter!("mediamesh_recordings_deleted_total", "reason" => why).increment(1);
        }
        Err(e) => {
            tracing::warn!(recording = %r.meta.name, error = %e, "cannot delete a recording")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished recording on disk, as the recorder leaves one.
    fn put(root: &Path, name: &str, stream: &str, started_ms: u64, bytes: usize) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        let meta = Meta {
            name: name.into(),
            stream: stream.into(),
            started_ms,
            ended_ms: Some(started_ms + 2000),
            state: State::Finished,
            reason: Some(EndReason::Ended),
            video_codec: None,
            width: None,
            height: None,
            audio_codec: None,
            audio_sample_rate: None,
        };
        write_meta(&dir, &meta).expect("meta");
        std::fs::write(dir.join(files::segment_file(0)), vec![0u8; bytes]).expect("seg");
        let entry = SegmentEntry {
            duration: 2.0,
            bytes: bytes as u64,
            start: 0,
            pdt_ms: started_ms,
        };
        let line = serde_json::to_string(&entry).expect("json");
        std::fs::write(dir.join(files::INDEX_FILE), format!("{line}\n{{\"torn")).expect("index");
    }

    fn shelf(data: &Path, max_bytes: u64) -> Recordings {
        let config = RecordConfig {
            max_bytes,
            ..RecordConfig::default()
        };
        Recordings::open(config, data, Hooks::none(), None)
    }

    #[tokio::test]
    async fn room_is_made_oldest_first_and_only_from_finished_recordings() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = data.path().join(FOLDER);
        put(&root, "b-2", "b", 2_000, 1000);
        put(&root, "a-1", "a", 1_000, 1000);
        put(&root, "c-3", "c", 3_000, 1000);
        // Not recordings: left alone.
        std::fs::create_dir_all(root.join(".hidden")).expect("dir");
        std::fs::write(root.join("stray.txt"), b"x").expect("file");
        // Each takes its segment and its two small files.
        let each = shelf(data.path(), 1 << 30)
            .get("a-1")
            .map_or(0, |x| x.bytes);
        assert!(each > 1000);
        let r = shelf(data.path(), 3 * each + 500);
        let names: Vec<String> = r
            .list()
            .iter()
            .map(|v| v["name"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(names, ["a-1", "b-2", "c-3"], "oldest first");
        assert_eq!(
            r.get("a-1").map(|x| x.segments.len()),
            Some(1),
            "torn line ignored"
        );
        assert!(r.make_room(400).await, "fits without deleting");
        assert_eq!(r.list().len(), 3);
        assert!(r.make_room(each).await);
        assert!(
            r.get("a-1").is_none() && !root.join("a-1").exists(),
            "the oldest went"
        );
        assert!(r.get("b-2").is_some());
        assert!(
            !r.make_room(4 * each).await,
            "more than the bound never fits"
        );
        assert!(r.list().is_empty(), "everything finished made way");
        assert!(root.join(".hidden").exists() && root.join("stray.txt").exists());
    }

    #[tokio::test]
    async fn with_s3_only_the_local_media_of_uploaded_recordings_is_deleted() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = data.path().join(FOLDER);
        put(&root, "a-1", "a", 1_000, 1000);
        put(&root, "b-2", "b", 2_000, 1000);
        // a-1 is uploaded; b-2 is not (its upload has not started).
        let files: Vec<(String, u64)> = std::fs::read_dir(root.join("a-1"))
            .expect("dir")
            .flatten()
            .map(|e| {
                let len = e.metadata().map_or(0, |m| m.len());
                (e.file_name().to_string_lossy().into_owned(), len)
            })
            .collect();
        let mut u = upload::Upload::plan("bkt", "p", "a-1", files);
        for f in &mut u.files {
            f.done = true;
        }
        u.phase = upload::Phase::Uploaded;
        std::fs::write(
            root.join("a-1").join(files::STATE_FILE),
            serde_json::to_vec(&u).expect("json"),
        )
        .expect("state");
        let config = s3::S3Config {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..s3::S3Config::new("s3://bkt/p").expect("url")
        };
        let client =
            s3::S3::with_credentials(config, "id".into(), "secret".into(), None).expect("client");
        let each = shelf(data.path(), 1 << 30)
            .get("a-1")
            .map_or(0, |x| x.bytes);
        let r = Recordings::open(
            RecordConfig {
                max_bytes: 2 * each + 100,
                ..RecordConfig::default()
            },
            data.path(),
            Hooks::none(),
            Some(Arc::new(client)),
        );
        let listed = r.list();
        assert_eq!(listed[0]["s3"], "uploaded");
        assert_eq!(listed[0]["s3_url"], "s3://bkt/p/a-1/");
        assert_eq!(listed[1]["s3"], "pending");
        assert_eq!(r.next_upload().map(|(n, _)| n).as_deref(), Some("b-2"));
        // Room for more than one recording: only a-1's media may go, and it does.
        assert!(!r.make_room(2 * each).await, "b-2 is never deleted");
        assert!(!root.join("a-1").join("seg0.m4s").exists());
        assert!(root.join("a-1").join(files::META_FILE).exists());
        assert!(root.join("b-2").join("seg0.m4s").exists());
        let listed = r.list();
        assert_eq!(listed.len(), 2, "both still listed");
        assert_eq!(listed[0]["local"], false);
        assert_eq!(listed[1]["local"], true);
        // Found so after a restart too, still counted off the disk.
        let again = shelf(data.path(), 1 << 30);
        let a = again.get("a-1").expect("listed");
        assert!(!a.local && a.disk_bytes() == 0 && a.bytes > 0);
    }

    #[tokio::test]
    async fn names_from_requests_are_only_looked_up() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = data.path().join(FOLDER);
        put(&root, "cam-1", "cam", 1_000, 10);
        let r = shelf(data.path(), 1 << 30);
        for bad in ["..", "../cam-1", "cam-1/..", "%2e%2e", "", ".cam-1"] {
            assert!(r.get(bad).is_none(), "{bad:?}");
            assert!(matches!(
                r.delete(bad).await,
                Err(RecordError::NoSuchRecording(_))
            ));
        }
        let streams = Streams::new(
            crate::config::PackagingConfig::default(),
            crate::config::Limits::default(),
            HashMap::new(),
            false,
        );
        assert!(matches!(
            r.start("../etc", &streams),
            Err(RecordError::BadStreamName(_))
        ));
        assert!(matches!(r.stop("a/b"), Err(RecordError::BadStreamName(_))));
        assert_eq!(
            r.start("cam", &streams).ok(),
            Some(Started {
                live: false,
                already: false
            })
        );
        assert!(r.wanted("cam") && !r.wanted("other"));
        assert_eq!(r.stop("cam").ok(), Some(None));
        assert!(!r.wanted("cam"));
        r.delete("cam-1").await.expect("deleted");
        assert!(!root.join("cam-1").exists());
    }

    #[tokio::test]
    async fn a_recording_cut_off_by_a_restart_is_finished_when_found() {
        let data = tempfile::tempdir().expect("tempdir");
        let root = data.path().join(FOLDER);
        put(&root, "cam-1", "cam", 1_000, 10);
        let dir = root.join("cam-1");
        let mut meta: Meta =
            serde_json::from_slice(&std::fs::read(dir.join(files::META_FILE)).expect("read"))
                .expect("json");
        meta.state = State::Recording;
        meta.reason = None;
        write_meta(&dir, &meta).expect("meta");
        let r = shelf(data.path(), 1 << 30);
        let found = r.get("cam-1").expect("found");
        assert_eq!(found.meta.state, State::Finished);
        assert_eq!(found.meta.reason, Some(EndReason::Interrupted));
        let on_disk = Recording::load(&dir).expect("load");
        assert_eq!(on_disk.meta.state, State::Finished);
    }
}
