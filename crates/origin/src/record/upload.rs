//! The upload of one finished recording to S3-compatible object storage, as a state
//! machine with no IO (sans-IO): which request comes next ([`Upload::next`]), what its
//! answer changes ([`Upload::apply`]), and the persisted form (`upload.json` in the
//! recording's folder, rewritten after every answer so that a restart resumes where
//! it was: whole files already stored are not sent again, nor are the parts of a
//! multipart upload that S3 confirmed). Also here: object keys ([`object_key`]), the
//! `s3://bucket/prefix` URL ([`parse_s3_url`]) and the retry back-off ([`backoff`]).
//!
//! Files go in a fixed order: init segments, media segments, the manifests, the
//! segment index and `recording.json` last, so an object store holding
//! `recording.json` holds the whole recording. A file at or above the multipart
//! threshold goes as a multipart upload (create, parts, complete); smaller ones with
//! one PUT. A multipart upload that S3 no longer knows (it was aborted or expired while
//! we were away) starts that file again from its first part.
//!
//! Not here: sending requests, reading files, timing the retries (`s3.rs`); which
//! recordings to upload and deleting local copies (`mod.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::files::{
    segment_index, AUDIO_INIT_FILE, INDEX_FILE, INIT_FILE, MEDIA_PLAYLIST_FILE, META_FILE,
    MPD_FILE, MULTIVARIANT_FILE, VIDEO_INIT_FILE,
};

/// S3 needs every part but the last to be at least this big.
pub const S3_MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3 allows at most this many parts per multipart upload.
pub const MAX_PARTS: u64 = 10_000;

/// Where a recording's upload is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing stored yet.
    Pending,
    /// Some files are stored, not all.
    Uploading,
    /// Every file is stored and S3 confirmed each: the local copy may go.
    Uploaded,
    /// A local file could not be read: the upload cannot complete (retried at the
    /// next start).
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Uploading => "uploading",
            Phase::Uploaded => "uploaded",
            Phase::Failed => "failed",
        }
    }
}

/// One file of the recording and whether it is stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub file: String,
    pub bytes: u64,
    pub done: bool,
}

/// A multipart upload in progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Multipart {
    pub file: String,
    pub upload_id: String,
    /// Part size chosen when it was created (kept: the setting may change across a
    /// restart).
    pub part_bytes: u64,
    /// ETags of the parts S3 confirmed, part 1 first.
    pub parts: Vec<String>,
}

/// How files are cut (the settings `--s3-multipart-bytes` and `--s3-part-bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizing {
    /// Files of at least this many bytes go as multipart uploads.
    pub multipart_bytes: u64,
    /// Bytes per part (the last part may be smaller).
    pub part_bytes: u64,
}

/// The persisted upload of one recording (`upload.json`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Upload {
    pub bucket: String,
    /// Key prefix of the recording's objects, ending with `/` (`prefix/name/`).
    pub key_prefix: String,
    pub phase: Phase,
    pub files: Vec<FileEntry>,
    pub multipart: Option<Multipart>,
    /// When S3 confirmed the last file, unix milliseconds.
    pub uploaded_ms: Option<u64>,
    /// The media files were deleted from the local disk (only ever after `Uploaded`):
    /// the recording plays from S3.
    #[serde(default)]
    pub local_deleted: bool,
    /// Why it failed (`Failed`).
    #[serde(default)]
    pub error: Option<String>,
}

/// The next request of an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// PUT the whole file.
    Put { file: String, key: String },
    /// Start a multipart upload of the file.
    Create { file: String, key: String },
    /// Upload part `part` (0-based; S3 numbers it `part + 1`): `len` bytes from
    /// `offset` of the file.
    Part {
        file: String,
        key: String,
        upload_id: String,
        part: usize,
        offset: u64,
        len: u64,
    },
    /// Complete the multipart upload with these ETags.
    Complete {
        file: String,
        key: String,
        upload_id: String,
        parts: Vec<String>,
    },
    /// Everything is stored.
    Done,
}

/// A successful answer to a [`Step`], or S3 saying the multipart upload is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Put,
    Created {
        upload_id: String,
    },
    Part {
        etag: String,
    },
    Completed,
    /// `NoSuchUpload`: the multipart upload must start again.
    UploadGone,
}

/// An answer that does not fit the step the machine is at (a bug in the caller).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("upload answer {outcome} does not fit step {step}")]
pub struct Mismatch {
    pub step: String,
    pub outcome: String,
}

/// Rank of a recording file in the upload order; `None` for files not uploaded.
pub fn file_rank(file: &str) -> Option<(u8, u64)> {
    match file {
        INIT_FILE => Some((0, 0)),
        VIDEO_INIT_FILE => Some((0, 1)),
        AUDIO_INIT_FILE => Some((0, 2)),
        MULTIVARIANT_FILE => Some((2, 0)),
        MEDIA_PLAYLIST_FILE => Some((2, 1)),
        MPD_FILE => Some((2, 2)),
        INDEX_FILE => Some((3, 0)),
        META_FILE => Some((4, 0)),
        _ => segment_index(file).map(|n| (1, n)),
    }
}

/// Whether a file holds media (and so is deleted with the local copy).
pub fn is_media(file: &str) -> bool {
    matches!(file_rank(file), Some((0 | 1, _)))
}

/// Key of `file` of recording `name` under `prefix` (no slashes at its ends).
pub fn object_key(prefix: &str, name: &str, file: &str) -> String {
    format!("{}{file}", recording_prefix(prefix, name))
}

/// Key prefix of recording `name`: `prefix/name/` (or `name/` without a prefix).
pub fn recording_prefix(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        format!("{name}/")
    } else {
        format!("{prefix}/{name}/")
    }
}

/// Why an `s3://` URL is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{0:?} is not an s3:// URL: write s3://BUCKET or s3://BUCKET/PREFIX")]
    Scheme(String),
    #[error("bucket {0:?} is not a bucket name: 3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit")]
    Bucket(String),
    #[error("prefix {0:?} is not allowed: use folders of A-Z a-z 0-9 _ - . separated by /, none of them . or ..")]
    Prefix(String),
}

/// `s3://bucket/some/prefix/` → (`bucket`, `some/prefix`).
pub fn parse_s3_url(url: &str) -> Result<(String, String), UrlError> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| UrlError::Scheme(url.to_string()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let b = bucket.as_bytes();
    let edge_ok = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&b.len())
        || !edge_ok(b.first())
        || !edge_ok(b.last())
        || !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'-'))
        || bucket.contains("..")
    {
        return Err(UrlError::Bucket(bucket.to_string()));
    }
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty()
        && (prefix.len() > 512
            || !prefix.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
            }))
    {
        return Err(UrlError::Prefix(prefix.to_string()));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// Delay before retry `attempt` (0 for the first retry): `base` doubled per attempt,
/// at most `max`, scaled by `0.5 + jitter / 2` (`jitter` in 0..1) so that uploads that
/// failed together do not retry together.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let factor = 2f64.powi(attempt.min(30) as i32);
    let raw = (base.as_secs_f64() * factor).min(max.as_secs_f64());
    Duration::from_secs_f64(raw * (0.5 + jitter.clamp(0.0, 1.0) / 2.0))
}

/// Part size for a file of `bytes`: the setting, grown if the file would need more
/// than [`MAX_PARTS`] parts.
pub fn part_size(bytes: u64, setting: u64) -> u64 {
    let setting = setting.max(1);
    setting.max(bytes.div_ceil(MAX_PARTS))
}

impl Upload {
    /// A new upload of `files` (name, bytes) of recording `name`, in upload order;
    /// files that are not part of a recording are left out.
    pub fn plan(bucket: &str, prefix: &str, name: &str, files: Vec<(String, u64)>) -> Upload {
        let mut files: Vec<(String, u64)> = files
            .into_iter()
            .filter(|(f, _)| file_rank(f).is_some())
            .collect();
        files.sort_by_key(|(f, _)| file_rank(f));
        Upload {
            bucket: bucket.to_string(),
            key_prefix: recording_prefix(prefix, name),
            phase: Phase::Pending,
            files: files
                .into_iter()
                .map(|(file, bytes)| FileEntry {
                    file,
                    bytes,
                    done: false,
                })
                .collect(),
            multipart: None,
            uploaded_ms: None,
            local_deleted: false,
            error: None,
        }
    }

    fn key(&self, file: &str) -> String {
        format!("{}{file}", self.key_prefix)
    }

    /// Bytes of every file.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// Bytes of the media files (init and media segments).
    pub fn media_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| is_media(&f.file))
            .map(|f| f.bytes)
            .sum()
    }

    /// Bytes stored so far (whole files and confirmed parts).
    pub fn done_bytes(&self) -> u64 {
        let whole: u64 = self.files.iter().filter(|f| f.done).map(|f| f.bytes).sum();
        let parts = self.multipart.as_ref().map_or(0, |m| {
            let size = self
                .files
                .iter()
                .find(|f| f.file == m.file)
                .map_or(0, |f| f.bytes);
            (m.parts.len() as u64 * m.part_bytes).min(size)
        });
        whole + parts
    }

    /// The request to send next.
    pub fn next(&self, sizing: Sizing) -> Step {
        if matches!(self.phase, Phase::Uploaded | Phase::Failed) {
            return Step::Done;
        }
        if let Some(m) = &self.multipart {
            let size = self
                .files
                .iter()
                .find(|f| f.file == m.file)
                .map_or(0, |f| f.bytes);
            let offset = m.parts.len() as u64 * m.part_bytes;
            if offset < size {
                return Step::Part {
                    file: m.file.clone(),
                    key: self.key(&m.file),
                    upload_id: m.upload_id.clone(),
                    part: m.parts.len(),
                    offset,
                    len: m.part_bytes.min(size - offset),
                };
            }
            return Step::Complete {
                file: m.file.clone(),
                key: self.key(&m.file),
                upload_id: m.upload_id.clone(),
                parts: m.parts.clone(),
            };
        }
        match self.files.iter().find(|f| !f.done) {
            None => Step::Done,
            Some(f) if f.bytes >= sizing.multipart_bytes && f.bytes > 0 => Step::Create {
                file: f.file.clone(),
                key: self.key(&f.file),
            },
            Some(f) => Step::Put {
                file: f.file.clone(),
                key: self.key(&f.file),
            },
        }
    }

    /// Takes S3's answer to `step` (which [`Upload::next`] gave); `now_ms` stamps the
    /// end. Persist the state after each call.
    pub fn apply(
        &mut self,
        step: &Step,
        outcome: Outcome,
        sizing: Sizing,
        now_ms: u64,
    ) -> Result<(), Mismatch> {
        let mismatch = || Mismatch {
            step: format!("{step:?}"),
            outcome: format!("{outcome:?}"),
        };
        match (step, &outcome) {
            (Step::Put { file, .. }, Outcome::Put) => {
                let f = self
                    .files
                    .iter_mut()
                    .find(|f| &f.file == file && !f.done)
                    .ok_or_else(mismatch)?;
                f.done = true;
            }
            (Step::Create { file, .. }, Outcome::Created { upload_id }) => {
                if self.multipart.is_some() {
                    return Err(mismatch());
                }
                let bytes = self
                    .files
                    .iter()
                    .find(|f| &f.file == file)
                    .ok_or_else(mismatch)?
                    .bytes;
                self.multipart = Some(Multipart {
                    file: file.clone(),
                    upload_id: upload_id.clone(),
                    part_bytes: part_size(bytes, sizing.part_bytes),
                    parts: Vec::new(),
                });
            }
            (
                Step::Part {
                    part, upload_id, ..
                },
                Outcome::Part { etag },
            ) => {
                let m = self
                    .multipart
                    .as_mut()
                    .filter(|m| &m.upload_id == upload_id && m.parts.len() == *part)
                    .ok_or_else(mismatch)?;
                m.parts.push(etag.clone());
            }
            (
                Step::Complete {
                    file, upload_id, ..
                },
                Outcome::Completed,
            ) => {
                if self
                    .multipart
                    .as_ref()
                    .is_none_or(|m| &m.upload_id != upload_id)
                {
                    return Err(mismatch());
                }
                self.multipart = None;
                let f = self
                    .files
                    .iter_mut()
                    .find(|f| &f.file == file)
                    .ok_or_else(mismatch)?;
                f.done = true;
            }
            (Step::Part { .. } | Step::Complete { .. }, Outcome::UploadGone) => {
                self.multipart = None;
            }
            _ => return Err(mismatch()),
        }
        if self.files.iter().all(|f| f.done) && self.multipart.is_none() {
            self.phase = Phase::Uploaded;
            self.uploaded_ms = Some(now_ms);
        } else {
            self.phase = Phase::Uploading;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZING: Sizing = Sizing {
        multipart_bytes: 100,
        part_bytes: 40,
    };

    fn plan() -> Upload {
        Upload::plan(
            "bkt",
            "rec/origin-1",
            "cam-1",
            vec![
                ("recording.json".into(), 300),
                ("seg1.m4s".into(), 90),
                ("seg0.m4s".into(), 100),
                ("upload.json".into(), 5),
                ("init.mp4".into(), 10),
                ("segments.jsonl".into(), 20),
                ("index.m3u8".into(), 30),
                ("seg01.m4s".into(), 1),
                ("stray.txt".into(), 1),
            ],
        )
    }

    /// Answers every step as a well-behaved S3 would, until done; returns the steps.
    fn drive(u: &mut Upload, until: usize) -> Vec<Step> {
        let mut steps = Vec::new();
        for i in 0..until {
            let step = u.next(SIZING);
            let outcome = match &step {
                Step::Done => break,
                Step::Put { .. } => Outcome::Put,
                Step::Create { .. } => Outcome::Created {
                    upload_id: format!("up{i}"),
                },
                Step::Part { part, .. } => Outcome::Part {
                    etag: format!("e{part}"),
                },
                Step::Complete { .. } => Outcome::Completed,
            };
            u.apply(&step, outcome, SIZING, 7).expect("fits");
            steps.push(step);
        }
        steps
    }

    #[test]
    fn files_go_in_order_small_ones_whole_and_big_ones_in_parts() {
        let mut u = plan();
        let order: Vec<&str> = u.files.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(
            order,
            [
                "init.mp4",
                "seg0.m4s",
                "seg1.m4s",
                "index.m3u8",
                "segments.jsonl",
                "recording.json"
            ],
            "recording.json last; strays and upload.json left out"
        );
        assert_eq!(u.key_prefix, "rec/origin-1/cam-1/");
        let steps = drive(&mut u, 100);
        let names: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::Put { key, .. } => format!("put {key}"),
                Step::Create { file, .. } => format!("create {file}"),
                Step::Part {
                    part, offset, len, ..
                } => format!("part {part} {offset}+{len}"),
                Step::Complete { parts, .. } => format!("complete {}", parts.join(",")),
                Step::Done => "done".into(),
            })
            .collect();
        assert_eq!(
            names,
            [
                "put rec/origin-1/cam-1/init.mp4",
                "create seg0.m4s",
                "part 0 0+40",
                "part 1 40+40",
                "part 2 80+20",
                "complete e0,e1,e2",
                "put rec/origin-1/cam-1/seg1.m4s",
                "put rec/origin-1/cam-1/index.m3u8",
                "put rec/origin-1/cam-1/segments.jsonl",
                "create recording.json",
                "part 0 0+40",
                "part 1 40+40",
                "part 2 80+40",
                "part 3 120+40",
                "part 4 160+40",
                "part 5 200+40",
                "part 6 240+40",
                "part 7 280+20",
                "complete e0,e1,e2,e3,e4,e5,e6,e7",
            ]
        );
        assert_eq!(u.phase, Phase::Uploaded);
        assert_eq!(u.uploaded_ms, Some(7));
        assert_eq!(u.next(SIZING), Step::Done);
        assert_eq!(u.done_bytes(), u.total_bytes());
        assert_eq!(u.media_bytes(), 200);
    }

    #[test]
    fn a_restart_resumes_from_the_persisted_state() {
        let mut u = plan();
        drive(&mut u, 3); // init, create seg0, part 0
        assert_eq!(u.phase, Phase::Uploading);
        let saved = serde_json::to_string(&u).expect("json");
        let mut back: Upload = serde_json::from_str(&saved).expect("json");
        assert_eq!(back, u);
        // The part size chosen at creation holds even if the setting changed.
        let other = Sizing {
            multipart_bytes: 1,
            part_bytes: 1000,
        };
        match back.next(other) {
            Step::Part {
                part, offset, len, ..
            } => assert_eq!((part, offset, len), (1, 40, 40)),
            s => panic!("{s:?}"),
        }
        let before = back.done_bytes();
        assert_eq!(before, 10 + 40);
        drive(&mut back, 100);
        assert_eq!(back.phase, Phase::Uploaded);
    }

    #[test]
    fn a_multipart_upload_s3_forgot_starts_its_file_again() {
        let mut u = plan();
        drive(&mut u, 3);
        let step = u.next(SIZING);
        assert!(matches!(step, Step::Part { part: 1, .. }));
        u.apply(&step, Outcome::UploadGone, SIZING, 1)
            .expect("fits");
        assert!(u.multipart.is_none());
        assert!(matches!(u.next(SIZING), Step::Create { ref file, .. } if file == "seg0.m4s"));
        drive(&mut u, 100);
        assert_eq!(u.phase, Phase::Uploaded);
    }

    #[test]
    fn answers_that_do_not_fit_are_refused_and_change_nothing() {
        let mut u = plan();
        let step = u.next(SIZING);
        let before = u.clone();
        assert!(u
            .apply(
                &step,
                Outcome::Created {
                    upload_id: "x".into()
                },
                SIZING,
                1
            )
            .is_err());
        assert!(u
            .apply(
                &Step::Part {
                    file: "seg0.m4s".into(),
                    key: "k".into(),
                    upload_id: "nope".into(),
                    part: 0,
                    offset: 0,
                    len: 1
                },
                Outcome::Part { etag: "e".into() },
                SIZING,
                1
            )
            .is_err());
        assert_eq!(u, before);
        // The same PUT answered twice is refused the second time.
        u.apply(&step, Outcome::Put, SIZING, 1).expect("fits");
        assert!(u.apply(&step, Outcome::Put, SIZING, 1).is_err());
    }

    #[test]
    fn an_empty_plan_is_done_at_once_and_failed_uploads_send_nothing() {
        let u = Upload::plan("bkt", "", "cam-1", Vec::new());
        assert_eq!(u.next(SIZING), Step::Done);
        let mut f = plan();
        f.phase = Phase::Failed;
        assert_eq!(f.next(SIZING), Step::Done);
    }

    #[test]
    fn keys_and_urls() {
        assert_eq!(object_key("", "cam-1", "seg0.m4s"), "cam-1/seg0.m4s");
        assert_eq!(object_key("a/b", "cam-1", "init.mp4"), "a/b/cam-1/init.mp4");
        assert_eq!(
            parse_s3_url("s3://my-bucket/rec/origin-1/"),
            Ok(("my-bucket".into(), "rec/origin-1".into()))
        );
        assert_eq!(
            parse_s3_url("s3://my.bucket"),
            Ok(("my.bucket".into(), String::new()))
        );
        for bad in [
            "http://b/x",
            "s3://",
            "s3://ab",
            "s3://Bucket",
            "s3://-b-",
            "s3://a..b",
        ] {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
        for bad in [
            "s3://bkt/a/../b",
            "s3://bkt/a//b",
            "s3://bkt/./x",
            "s3://bkt/a b",
            "s3://bkt/%2e",
        ] {
            assert!(
                matches!(parse_s3_url(bad), Err(UrlError::Prefix(_))),
                "{bad}"
            );
        }
        assert!(is_media("seg3.m4s") && is_media("a-init.mp4"));
        assert!(!is_media("recording.json") && !is_media("index.mpd"));
    }

    #[test]
    fn back_off_doubles_up_to_its_cap_with_jitter() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(30);
        let full: Vec<u64> = (0..9)
            .map(|a| backoff(a, base, max, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(
            full,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff(2, base, max, 0.0), Duration::from_millis(1000));
        assert_eq!(backoff(u32::MAX, base, max, 0.0), Duration::from_secs(15));
        assert_eq!(backoff(0, base, max, 7.0), base, "jitter clamped");
    }

    #[test]
    fn part_sizes_respect_the_part_count_limit() {
        assert_eq!(part_size(100, 40), 40);
        assert_eq!(part_size(10_000 * 40 + 1, 40), 41);
        assert_eq!(part_size(5, 0), 1);
    }
}
