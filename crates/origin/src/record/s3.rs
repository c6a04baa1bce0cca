//! Finished recordings to S3-compatible object storage (`--s3 s3://BUCKET/PREFIX`):
//! the uploader task that drives each recording's upload state machine
//! (`upload.rs`) against the store, one recording at a time, oldest first, with
//! retries and exponential back-off for as long as the store is down; and the reads
//! that serve a recording's objects when its local copy is gone.
//!
//! The client is the `object_store` crate (Apache Arrow's, `aws` feature only): it is
//! maintained by a large project, signs with SigV4 using `ring` and talks HTTP through
//! `reqwest` 0.12, both already in this workspace, so it adds little to the build
//! (`aws-sdk-s3` brings the whole smithy runtime; `rust-s3` its own credential and
//! region crates). Its `MultipartStore` exposes upload ids and part ETags, which is
//! what a multipart upload that survives a restart needs. Its own retries are off:
//! retries, back-off and their metrics are ours.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally
//! `AWS_SESSION_TOKEN`; they are never logged, and without them the origin does not
//! start (no instance-metadata lookups). Not here: which recordings exist and when
//! local copies are deleted (`mod.rs`), the upload order and what is persisted
//! (`upload.rs`), HTTP (`http/recordings.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::Instrument;

use super::files::STATE_FILE;
use super::upload::{self, Outcome, Phase, Sizing, Step, Upload};
use super::Recordings;
use crate::live::store::unix_ms;

/// First retry after this; doubled per failure up to [`S3Config::retry_max`].
const RETRY_BASE: Duration = Duration::from_millis(500);
/// A multipart upload whose completion failed this many times in a row is started
/// again (that file only). S3 answers `NoSuchUpload` for an upload it dropped, which
/// starts it again at once; a store that lost the parts another way (an S3-compatible
/// server restarted with its staging area gone answers 500) would otherwise be
/// retried for ever while every other file waits behind it.
const COMPLETE_TRIES: u32 = 3;
/// Longest wait for the abort of a multipart upload that is started again.
const ABORT_WAIT: Duration = Duration::from_secs(10);
/// Most S3 reads for viewers at once; more wait.
const MAX_FETCHES: usize = 32;

/// Object storage settings (`--s3` and the `--s3-*` flags).
#[derive(Clone, Debug, PartialEq)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix without slashes at its ends; may be empty.
    pub prefix: String,
    /// `http(s)://HOST:PORT` of an S3-compatible server; `None`: AWS by region.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style requests (`ENDPOINT/BUCKET/KEY`, MinIO and most S3-compatible
    /// servers) instead of virtual-hosted style (`BUCKET.ENDPOINT/KEY`).
    pub path_style: bool,
    pub sizing: Sizing,
    /// Delete the local media of a recording as soon as its upload is confirmed.
    pub delete_local: bool,
    /// Upload at most this many bytes per second (`None`: as fast as it goes).
    pub upload_rate: Option<u64>,
    /// One request: connect, send, answer.
    pub timeout: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
    /// Biggest object served to viewers from S3.
    pub max_fetch_bytes: u64,
}

impl S3Config {
    /// Settings for `url` (`s3://BUCKET/PREFIX`) with the defaults.
    pub fn new(url: &str) -> Result<Self, upload::UrlError> {
        let (bucket, prefix) = upload::parse_s3_url(url)?;
        Ok(Self::defaults(bucket, prefix))
    }

    /// The defaults, for a URL known to be valid (`--help` shows them); an invalid
    /// one gives bucket `bucket`.
    pub fn default_for(url: &str) -> Self {
        Self::new(url).unwrap_or_else(|_| Self::defaults("bucket".into(), String::new()))
    }

    fn defaults(bucket: String, prefix: String) -> Self {
        Self {
            bucket,
            prefix,
            endpoint: None,
            region: "us-east-1".into(),
            path_style: false,
            sizing: Sizing {
                multipart_bytes: 8 * 1024 * 1024,
                part_bytes: 8 * 1024 * 1024,
            },
            delete_local: false,
            upload_rate: None,
            timeout: Duration::from_secs(30),
            retry_max: Duration::from_secs(60),
            max_fetch_bytes: 64 * 1024 * 1024,
        }
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Smallest part accepted (AWS itself wants [`upload::S3_MIN_PART_BYTES`]; smaller
/// parts are for S3-compatible servers that allow them, such as test servers).
pub const MIN_PART_BYTES: u64 = 64 * 1024;
/// S3's largest part.
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Why an S3 operation failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("S3 credentials are missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")]
    NoCredentials,
    #[error("S3 settings: {0}")]
    Config(String),
    #[error("S3 {op} {key}: {message}")]
    Request {
        op: &'static str,
        key: String,
        message: String,
        /// S3 answered that the object or upload does not exist.
        not_found: bool,
    },
    #[error("S3 object {key} is {size} bytes, more than the {limit} served from S3")]
    TooBig { key: String, size: u64, limit: u64 },
    #[error("{path}: {problem}")]
    Local { path: String, problem: String },
}

/// The object store of the recordings.
#[derive(Debug)]
pub struct S3 {
    store: AmazonS3,
    config: S3Config,
    fetches: tokio::sync::Semaphore,
}

fn request_error(op: &'static str, key: &str, e: object_store::Error) -> S3Error {
    let not_found = matches!(e, object_store::Error::NotFound { .. });
    metrics::counter!("mediamesh_record_s3_requests_total", "op" => op, "result" => "error")
        .increment(1);
    S3Error::Request {
        op,
        key: key.to_string(),
        message: e.to_string(),
        not_found,
    }
}

fn ok(op: &'static str) {
    metrics::counter!("mediamesh_record_s3_requests_total", "op" => op, "result" => "ok")
        .increment(1);
}

fn path(key: &str) -> Result<ObjectPath, S3Error> {
    ObjectPath::parse(key).map_err(|e| S3Error::Config(format!("object key {key:?}: {e}")))
}

impl S3 {
    /// A client for `config`, with credentials from the environment.
    pub fn connect(config: S3Config) -> Result<S3, S3Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(S3Error::NoCredentials);
        };
        Self::with_credentials(config, id, secret, var("AWS_SESSION_TOKEN"))
    }

    /// A client for `config` with these credentials (no request is made here).
    pub fn with_credentials(
        config: S3Config,
        id: String,
        secret: String,
        token: Option<String>,
    ) -> Result<S3, S3Error> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(id)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 0,
                retry_timeout: config.timeout,
            })
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(config.timeout)
                    .with_connect_timeout(config.timeout.min(Duration::from_secs(10)))
                    .with_allow_http(true),
            );
        if let Some(token) = token {
            b = b.with_token(token);
        }
        if let Some(endpoint) = &config.endpoint {
            b = b.with_endpoint(endpoint);
        }
        let store = b.build().map_err(|e| S3Error::Config(e.to_string()))?;
        Ok(S3 {
            store,
            config,
            fetches: tokio::sync::Semaphore::new(MAX_FETCHES),
        })
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// Key prefix of recording `name` (`prefix/name/`).
    pub fn recording_prefix(&self, name: &str) -> String {
        upload::recording_prefix(&self.config.prefix, name)
    }

    /// `s3://bucket/` + `key`.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.config.bucket)
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), S3Error> {
        self.store
            .put(&path(key)?, data.into())
            .await
            .map_err(|e| request_error("put", key, e))?;
        ok("put");
        Ok(())
    }

    async fn create(&self, key: &str) -> Result<String, S3Error> {
        let id = self
            .store
            .create_multipart(&path(key)?)
            .await
            .map_err(|e| request_error("create_multipart", key, e))?;
        ok("create_multipart");
        Ok(id)
    }

    async fn part(
        &self,
        key: &str,
        upload_id: &str,
        part: usize,
        data: Bytes,
    ) -> Result<String, S3Error> {
        let id = self
            .store
            .put_part(&path(key)?, &upload_id.to_string(), part, data.into())
            .await
            .map_err(|e| request_error("upload_part", key, e))?;
        ok("upload_part");
        Ok(id.content_id)
    }

    async fn complete(&self, key: &str, upload_id: &str, parts: &[String]) -> Result<(), S3Error> {
        let parts = parts
            .iter()
            .map(|e| PartId {
                content_id: e.clone(),
            })
            .collect();
        self.store
            .complete_multipart(&path(key)?, &upload_id.to_string(), parts)
            .await
            .map_err(|e| request_error("complete_multipart", key, e))?;
        ok("complete_multipart");
        Ok(())
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        if let Ok(p) = path(key) {
            let _ = self.store.abort_multipart(&p, &upload_id.to_string()).await;
        }
    }

    /// Object `key` for a viewer: `None` if S3 does not have it; refused when bigger
    /// than `--s3-max-fetch-bytes` (checked before its body is read).
    pub async fn fetch(&self, key: &str) -> Result<Option<Bytes>, S3Error> {
        let _permit = self.fetches.acquire().await.map_err(|_| S3Error::Request {
            op: "get",
            key: key.to_string(),
            message: "shutting down".into(),
            not_found: false,
        })?;
        let got = match self.store.get(&path(key)?).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                metrics::counter!("mediamesh_record_s3_fetches_total", "result" => "not_found")
                    .increment(1);
                return Ok(None);
            }
            Err(e) => {
                metrics::counter!("mediamesh_record_s3_fetches_total", "result" => "error")
                    .increment(1);
                return Err(request_error("get", key, e));
            }
        };
        let limit = self.config.max_fetch_bytes;
        if got.meta.size > limit {
            metrics::counter!("mediamesh_record_s3_fetches_total", "result" => "too_big")
                .increment(1);
            return Err(S3Error::TooBig {
                key: key.to_string(),
                size: got.meta.size,
                limit,
            });
        }
        let body = got
            .bytes()
            .await
            .map_err(|e| request_error("get", key, e))?;
        metrics::counter!("mediamesh_record_s3_fetches_total", "result" => "ok").increment(1);
        metrics::counter!("mediamesh_record_s3_fetched_bytes_total").increment(body.len() as u64);
        Ok(Some(body))
    }

    /// Deletes every object under `key_prefix` (a recording deleted through the API);
    /// returns how many.
    pub async fn delete_prefix(&self, key_prefix: &str) -> Result<usize, S3Error> {
        use futures_util::StreamExt;
        let prefix = path(key_prefix.trim_end_matches('/'))?;
        let mut listing = self.store.list(Some(&prefix));
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| request_error("list", key_prefix, e))?;
            keys.push(meta.location);
        }
        for k in &keys {
            self.store
                .delete(k)
                .await
                .map_err(|e| request_error("delete", k.as_ref(), e))?;
        }
        ok("delete");
        Ok(keys.len())
    }
}

/// Writes `upload.json` of the recording in `dir` (through a temporary file).
pub(crate) async fn save_state(dir: &Path, u: &Upload) -> Result<(), S3Error> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{}.tmp", STATE_FILE));
    let local = |e: std::io::Error| S3Error::Local {
        path: path.display().to_string(),
        problem: e.to_string(),
    };
    let body = serde_json::to_vec_pretty(u).map_err(|e| S3Error::Local {
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    tokio::fs::write(&tmp, body).await.map_err(local)?;
    tokio::fs::rename(&tmp, &path).await.map_err(local)
}

/// Reads `upload.json` in `dir`, if there is a readable one.
pub(crate) fn load_state(dir: &Path) -> Option<Upload> {
    let bytes = std::fs::read(dir.join(STATE_FILE)).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "unreadable upload state: the upload starts again");
            None
        }
    }
}

/// `len` bytes at `offset` of `path`, which must be `expect` bytes long.
async fn read_range(path: &Path, offset: u64, len: u64, expect: u64) -> Result<Bytes, S3Error> {
    let local = |e: std::io::Error| S3Error::Local {
        path: path.display().to_string(),
        problem: e.to_string(),
    };
    let mut f = tokio::fs::File::open(path).await.map_err(local)?;
    let size = f.metadata().await.map_err(local)?.len();
    if size != expect {
        return Err(S3Error::Local {
            path: path.display().to_string(),
            problem: format!("is {size} bytes, was {expect} when the upload was planned"),
        });
    }
    let len = usize::try_from(len).map_err(|_| S3Error::Local {
        path: path.display().to_string(),
        problem: "part too big for this machine".into(),
    })?;
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(local)?;
    let mut buf = vec![0u8; len];
    f.read_exact(&mut buf).await.map_err(local)?;
    Ok(Bytes::from(buf))
}

/// The uploader: uploads finished recordings one at a time, oldest first, until
/// dropped. A recording whose upload cannot go on (a local file changed or vanished)
/// is marked failed and skipped.
pub async fn run(recordings: Arc<Recordings>, s3: Arc<S3>) {
    tracing::info!(bucket = %s3.config.bucket, prefix = %s3.config.prefix, "S3 uploader started");
    loop {
        let Some((name, dir)) = recordings.next_upload() else {
            tokio::select! {
                () = recordings.upload_wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        };
        let span = tracing::info_span!("s3_upload", recording = %name);
        upload_one(&recordings, &s3, &name, &dir)
            .instrument(span)
            .await;
    }
}

async fn upload_one(recordings: &Recordings, s3: &S3, name: &str, dir: &Path) {
    let mut state = match recordings.upload_state(name) {
        Some(u) => u,
        None => match recordings.plan_upload(name, s3).await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "cannot plan the upload of a recording");
                fail(recordings, dir, name, None, e).await;
                return;
            }
        },
    };
    let sizing = s3.config.sizing;
    let started = Instant::now();
    let first_bytes = state.done_bytes();
    tracing::info!(
        files = state.files.len(),
        bytes = state.total_bytes(),
        done_bytes = first_bytes,
        to = %s3.url_of(&state.key_prefix),
        "S3 upload started"
    );
    let mut failures: u32 = 0;
    loop {
        if !recordings.exists(name) {
            // Deleted through the API while it uploaded: take back what went up.
            if let Some(m) = &state.multipart {
                s3.abort(&format!("{}{}", state.key_prefix, m.file), &m.upload_id)
                    .await;
            }
            let _ = s3.delete_prefix(&state.key_prefix).await;
            tracing::info!("recording deleted while it uploaded: upload dropped");
            return;
        }
        let step = state.next(sizing);
        if step == Step::Done {
            break;
        }
        let t0 = Instant::now();
        match perform(s3, dir, &state, &step).await {
            Ok((outcome, sent)) => {
                failures = 0;
                metrics::gauge!("mediamesh_record_s3_up").set(1.0);
                metrics::counter!("mediamesh_record_s3_bytes_total").increment(sent);
                if let Err(e) = state.apply(&step, outcome, sizing, unix_ms()) {
                    tracing::error!(error = %e, "upload state machine out of step");
                    fail(
                        recordings,
                        dir,
                        name,
                        Some(state),
                        S3Error::Config(e.to_string()),
                    )
                    .await;
                    return;
                }
                if let Err(e) = save_state(dir, &state).await {
                    tracing::warn!(error = %e, "cannot save the upload state (a restart would send more again)");
                }
                recordings.set_upload(name, state.clone());
                if let Some(rate) = s3.config.upload_rate.filter(|r| *r > 0) {
                    let want = Duration::from_secs_f64(sent as f64 / rate as f64);
                    if let Some(rest) = want.checked_sub(t0.elapsed()) {
                        tokio::time::sleep(rest).await;
                    }
                }
            }
            Err(S3Error::Request {
                not_found: true, ..
            }) if matches!(step, Step::Part { .. } | Step::Complete { .. }) => {
                tracing::warn!("S3 no longer knows the multipart upload: that file starts again");
                if !start_file_again(recordings, dir, name, &mut state, &step, sizing).await {
                    return;
                }
            }
            Err(e @ S3Error::Local { .. }) => {
                tracing::error!(error = %e, "a file of the recording cannot be read: upload failed");
                fail(recordings, dir, name, Some(state), e).await;
                return;
            }
            Err(e) if matches!(step, Step::Complete { .. }) && failures + 1 >= COMPLETE_TRIES => {
                tracing::warn!(
                    error = %e,
                    tries = COMPLETE_TRIES,
                    "S3 did not complete the multipart upload: that file starts again"
                );
                metrics::counter!("mediamesh_record_s3_retries_total").increment(1);
                if let Step::Complete { key, upload_id, .. } = &step {
                    // Best effort, bounded: the parts of the old upload are not needed.
                    let _ = tokio::time::timeout(ABORT_WAIT, s3.abort(key, upload_id)).await;
                }
                if !start_file_again(recordings, dir, name, &mut state, &step, sizing).await {
                    return;
                }
                failures = 0;
            }
            Err(e) => {
                metrics::gauge!("mediamesh_record_s3_up").set(0.0);
                metrics::counter!("mediamesh_record_s3_retries_total").increment(1);
                let delay = upload::backoff(
                    failures,
                    RETRY_BASE,
                    s3.config.retry_max,
                    rand::random::<f64>(),
                );
                if failures.is_multiple_of(10) {
                    tracing::warn!(
                        error = %e,
                        failures = failures + 1,
                        retry_in_seconds = delay.as_secs_f64(),
                        "S3 request failed: retrying (nothing local is deleted until the upload is confirmed)"
                    );
                } else {
                    tracing::debug!(error = %e, "S3 request failed again");
                }
                failures = failures.saturating_add(1);
                tokio::time::sleep(delay).await;
            }
        }
    }
    let sent = state.done_bytes().saturating_sub(first_bytes);
    tracing::info!(
        bytes = state.total_bytes(),
        sent_bytes = sent,
        seconds = started.elapsed().as_secs_f64(),
        url = %s3.url_of(&state.key_prefix),
        "recording uploaded to S3"
    );
    metrics::counter!("mediamesh_record_s3_uploads_total", "result" => "uploaded").increment(1);
    recordings.uploaded(name, state, s3).await;
}

/// S3 dropped the multipart upload of `step`'s file, or cannot complete it: that file
/// starts again (persisted). `false` when the state machine refused the step, and the
/// upload was marked failed.
async fn start_file_again(
    recordings: &Recordings,
    dir: &Path,
    name: &str,
    state: &mut Upload,
    step: &Step,
    sizing: Sizing,
) -> bool {
    if let Err(e) = state.apply(step, Outcome::UploadGone, sizing, unix_ms()) {
        tracing::error!(error = %e, "upload state machine out of step");
        let e = S3Error::Config(e.to_string());
        fail(recordings, dir, name, Some(state.clone()), e).await;
        return false;
    }
    let _ = save_state(dir, state).await;
    recordings.set_upload(name, state.clone());
    true
}

async fn fail(recordings: &Recordings, dir: &Path, name: &str, state: Option<Upload>, e: S3Error) {
    metrics::counter!("mediamesh_record_s3_uploads_total", "result" => "failed").increment(1);
    let mut u = state.unwrap_or_else(|| Upload::plan("", "", name, Vec::new()));
    u.phase = Phase::Failed;
    u.error = Some(e.to_string());
    let _ = save_state(dir, &u).await;
    recordings.set_upload(name, u);
    recordings.upload_failed(name);
}

/// Sends one step's request; returns the answer and the bytes it carried.
async fn perform(
    s3: &S3,
    dir: &Path,
    state: &Upload,
    step: &Step,
) -> Result<(Outcome, u64), S3Error> {
    let file_path = |file: &str| -> PathBuf { dir.join(file) };
    let planned = |file: &str| {
        state
            .files
            .iter()
            .find(|f| f.file == file)
            .map_or(0, |f| f.bytes)
    };
    match step {
        Step::Put { file, key } => {
            let data = read_range(&file_path(file), 0, planned(file), planned(file)).await?;
            let n = data.len() as u64;
            s3.put(key, data).await?;
            Ok((Outcome::Put, n))
        }
        Step::Create { key, .. } => Ok((
            Outcome::Created {
                upload_id: s3.create(key).await?,
            },
            0,
        )),
        Step::Part {
            file,
            key,
            upload_id,
            part,
            offset,
            len,
        } => {
            let data = read_range(&file_path(file), *offset, *len, planned(file)).await?;
            let etag = s3.part(key, upload_id, *part, data).await?;
            Ok((Outcome::Part { etag }, *len))
        }
        Step::Complete {
            key,
            upload_id,
            parts,
            ..
        } => {
            s3.complete(key, upload_id, parts).await?;
            Ok((Outcome::Completed, 0))
        }
        Step::Done => Ok((Outcome::Completed, 0)),
    }
}
