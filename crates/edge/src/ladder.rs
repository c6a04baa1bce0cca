//! The edge ABR ladder: the edge advertises lower renditions ("rungs") of a live
//! stream whose origin publishes only its source rendition, and makes a rung's init
//! and media segments the first time they are asked for by transcoding the one source
//! segment with ffmpeg (every source segment starts on an IDR, so segments are
//! independent).
//!
//! - Playlists (the multivariant with the rungs added, a rung's media playlist) are
//!   derived per request from the source playlists, which come through the edge's own
//!   cache; rungs are regular HLS (no parts or blocking reloads).
//! - Rung segments go through the ordinary miss path: N concurrent first requests join
//!   one flight, whose leader (this module) fetches the source init and segment
//!   through the cache (so the origin sees each source object once), runs one ffmpeg
//!   under a semaphore (`--ladder-jobs`), and stores the result like any object. A
//!   failed transcode answers 502 and is not cached. At most `max_queue` transcodes
//!   wait for a job slot; past that the edge answers 503 (not cached) rather than
//!   queueing without bound. Junk query parameters cannot multiply transcodes: the
//!   cache key of a rung segment keeps none (see `cache::key`).
//! - ffmpeg runs as a subprocess with its stdin/stdout piped, killed when dropped or
//!   after a time-out; the command line is `crate::media::ladder::ffmpeg_args`.
//!
//! It plugs into the request path as a hook (`phase::Hook`: route and fill phases)
//! and reaches source objects through `phase::ObjectSource`, not the edge itself.
//!
//! Not here: the playlist rewriting and naming rules (`crate::media::ladder`), P2P
//! digests (rungs have none: they exist only at this edge, the origin cannot sign
//! them, so P2P viewers of a rung fetch over HTTP).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::media::ladder::{self as logic, Ladder, Rung, RungObject, RungPath};
use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use media::hls::MediaPlaylist;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::coalesce::{Flight, FlightError, Head};
use crate::phase::{Hook, HookFuture, ObjectSource, Phases, Session, SourceError};
use crate::response::{full, Body};

/// Settings of the ladder.
#[derive(Debug, Clone)]
pub struct LadderConfig {
    pub ladder: Ladder,
    /// Transcodes running at once (default: the number of cores).
    pub jobs: usize,
    /// The ffmpeg program.
    pub ffmpeg: PathBuf,
    /// Longest one transcode may take before ffmpeg is killed.
    pub timeout: Duration,
    /// Transcodes that may wait for a job slot (16); more answer 503.
    pub max_queue: usize,
}

impl LadderConfig {
    pub fn new(ladder: Ladder) -> Self {
        Self {
            ladder,
            jobs: cores(),
            ffmpeg: PathBuf::from("ffmpeg"),
            timeout: Duration::from_secs(30),
            max_queue: 16,
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Most bytes of ffmpeg's stderr kept for the error message.
const MAX_STDERR: usize = 4096;

/// The ladder's run-time state in an edge.
#[derive(Debug)]
pub struct Transcoder {
    pub config: LadderConfig,
    jobs: Semaphore,
    /// Transcodes waiting for a job slot now.
    waiting: AtomicUsize,
    /// `avcC` of the first encode per (stream, rung, source init): later encodes are
    /// checked against it, so a segment that would not fit the rung's init is noticed.
    avcc: Mutex<HashMap<String, Bytes>>,
}

/// Why a rung object could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LadderFailure {
    /// The source object or the rung does not exist (answered 404, not cached).
    #[error("{0}")]
    NotFound(String),
    /// Fetching the source failed (502).
    #[error("source: {0}")]
    Source(String),
    /// ffmpeg failed, timed out or wrote something unusable (502).
    #[error("transcode: {0}")]
    Transcode(String),
    /// Every job slot is busy and `max_queue` transcodes already wait (503).
    #[error("the transcode queue is full ({0} waiting)")]
    Busy(usize),
}

/// Counts one waiting transcode while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize, max: usize) -> Result<Self, LadderFailure> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| Waiting(counter))
            .map_err(LadderFailure::Busy)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Transcoder {
    pub fn new(config: LadderConfig) -> Self {
        let rungs: Vec<String> = config
            .ladder
            .rungs
            .iter()
            .map(|r| format!("{}={}x{}@{}", r.name, r.width, r.height, r.video_kbps))
            .collect();
        tracing::info!(rungs = %rungs.join(" "), jobs = config.jobs, "edge ABR ladder on");
        Self {
            jobs: Semaphore::new(config.jobs.max(1)),
            waiting: AtomicUsize::new(0),
            config,
            avcc: Mutex::new(HashMap::new()),
        }
    }

    /// Starts the transcoder. "Text file busy" (the program file is still open for
    /// writing somewhere: being replaced by a package upgrade, or held by a child
    /// that another thread forked and has not yet exec'd) is transient, so it is
    /// retried a few times, 20 ms apart; every other error is returned at once.
    async fn spawn(
        &self,
        rung: &Rung,
        size: (u32, u32),
        threads: u32,
    ) -> std::io::Result<tokio::process::Child> {
        const ETXTBSY: i32 = 26;
        let mut tries = 0;
        loop {
            let r = tokio::process::Command::new(&self.config.ffmpeg)
                .args(logic::ffmpeg_args(rung, size, threads))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn();
            match r {
                Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 10 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    /// Runs ffmpeg on `input` (source init + segment) for `rung` at `size`, bounded by
    /// the job semaphore and the time-out; returns (init, media segment).
    pub async fn transcode(
        &self,
        rung: &Rung,
        size: (u32, u32),
        input: Vec<Bytes>,
        max_bytes: usize,
    ) -> Result<(Bytes, Bytes), LadderFailure> {
        let closed = |_| LadderFailure::Transcode("the job queue is closed".into());
        let _permit = match self.jobs.try_acquire() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(closed(())),
            Err(TryAcquireError::NoPermits) => {
                let _waiting = Waiting::enter(&self.waiting, self.config.max_queue)?;
                self.jobs.acquire().await.map_err(|_| closed(()))?
            }
        };
        let started = Instant::now();
        let threads = u32::try_from(cores()).unwrap_or(1);
        let mut child = self.spawn(rung, size, threads).await.map_err(|e| {
            LadderFailure::Transcode(format!(
                "cannot start {}: {e} (install ffmpeg or pass --ladder-ffmpeg)",
                self.config.ffmpeg.display()
            ))
        })?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(LadderFailure::Transcode("ffmpeg pipes missing".into()));
        };
        let feed = async move {
            for chunk in input {
                stdin.write_all(&chunk).await?;
            }
            stdin.shutdown().await
        };
        let read_out = async move {
            let mut out = Vec::new();
            (&mut stdout)
                .take(max_bytes as u64 + 1)
                .read_to_end(&mut out)
                .await
                .map(|_| out)
        };
        let read_err = async move {
            let mut err = Vec::new();
            let _ = (&mut stderr)
                .take(MAX_STDERR as u64)
                .read_to_end(&mut err)
                .await;
            err
        };
        let run = async {
            let (fed, out, err) = tokio::join!(feed, read_out, read_err);
            let status = child.wait().await;
            (fed, out, err, status)
        };
        let (fed, out, err, status) = tokio::time::timeout(self.config.timeout, run)
            .await
            .map_err(|_| {
                LadderFailure::Transcode(format!(
                    "ffmpeg took longer than {:?} and was killed",
                    self.config.timeout
                ))
            })?;
        let err_text = String::from_utf8_lossy(&err).trim().to_string();
        let status = status.map_err(|e| LadderFailure::Transcode(format!("ffmpeg: {e}")))?;
        if !status.success() {
            return Err(LadderFailure::Transcode(format!(
                "ffmpeg exited with {status}: {err_text}"
            )));
        }
        if let Err(e) = fed {
            return Err(LadderFailure::Transcode(format!(
                "ffmpeg did not read its input: {e}: {err_text}"
            )));
        }
        let out = out.map_err(|e| LadderFailure::Transcode(format!("ffmpeg output: {e}")))?;
        if out.len() > max_bytes {
            return Err(LadderFailure::Transcode(format!(
                "output larger than {max_bytes} bytes"
            )));
        }
        let secs = started.elapsed().as_secs_f64();
        ::metrics::histogram!("mediamesh_edge_ladder_transcode_seconds").record(secs);
        ::metrics::counter!("mediamesh_edge_ladder_transcodes_total", "rung" => rung.name.clone())
            .increment(1);
        logic::split_output(&Bytes::from(out)).map_err(|e| LadderFailure::Transcode(e.to_string()))
    }

    /// Notes the `avcC` of an encode; `false` when it differs from the first one made
    /// for the same (stream, rung, source init).
    fn same_avcc(&self, key: String, init: &[u8]) -> bool {
        let Ok(Some(avcc)) = logic::avc_config(init) else {
            return false;
        };
        let mut map = self.avcc.lock();
        if map.len() > 10_000 {
            map.clear();
        }
        map.entry(key).or_insert_with(|| avcc.clone()) == &avcc
    }
}

fn source_dir(ladder: &Ladder, stream: &str) -> String {
    format!("/live/{stream}/{}", ladder.source)
}

fn failure_status(e: SourceError) -> LadderFailure {
    if matches!(e.status(), 404 | 410) {
        LadderFailure::NotFound(e.to_string())
    } else {
        LadderFailure::Source(e.to_string())
    }
}

/// Answers the ladder's playlists; `None` for every other path.
pub async fn route(edge: &dyn ObjectSource, t: &Transcoder, path: &str) -> Option<Response<Body>> {
    let ladder = &t.config.ladder;
    if ladder.multivariant_path(path).is_some() {
        let text = match edge.get(path).await {
            Ok(b) => b,
            Err(e) => return Some(error(e.status(), &e.to_string())),
        };
        let rewritten = std::str::from_utf8(&text)
            .ok()
            .and_then(|s| ladder.rewrite_multivariant(s).ok().flatten());
        return Some(playlist(rewritten.map_or(text, Bytes::from)));
    }
    let rp = ladder.rung_path(path)?;
    if rp.object != RungObject::Playlist {
        return None;
    }
    let multivariant = format!("/live/{}/index.m3u8", rp.stream);
    let src = format!("{}/index.m3u8", source_dir(ladder, rp.stream));
    let (multi, media) = tokio::join!(edge.get(&multivariant), edge.get(&src));
    let (multi, media) = match (multi, media) {
        (Ok(m), Ok(s)) => (m, s),
        (Err(e), _) | (_, Err(e)) => return Some(error(e.status(), &e.to_string())),
    };
    let offered = std::str::from_utf8(&multi)
        .ok()
        .and_then(|s| ladder.rewrite_multivariant(s).ok().flatten())
        .is_some_and(|s| s.contains(&format!("\n{}/index.m3u8\n", rp.rung.name)));
    if !offered {
        return Some(error(
            404,
            &format!(
                "rendition {} is not offered for stream {} (it would be taller than the source)",
                rp.rung.name, rp.stream
            ),
        ));
    }
    let derived = std::str::from_utf8(&media)
        .map_err(|e| e.to_string())
        .and_then(|s| ladder.rung_playlist(s).map_err(|e| e.to_string()));
    Some(match derived {
        Ok(text) => playlist(Bytes::from(text)),
        Err(e) => error(502, &format!("source playlist unusable: {e}")),
    })
}

/// Leads the flight of a rung init or segment; `false` when `path` is not one (the
/// caller then fetches from upstream as usual).
pub async fn fetch(
    edge: &dyn ObjectSource,
    t: &Transcoder,
    key: &str,
    path: &str,
    flight: &Flight,
) -> bool {
    let Some(rp) = t.config.ladder.rung_path(path) else {
        return false;
    };
    if rp.object == RungObject::Playlist {
        return false;
    }
    match make(edge, t, &rp).await {
        Ok(body) => {
            let cache = match rp.object {
                RungObject::Init(None) => "public, max-age=2",
                _ => "public, max-age=86400",
            };
            let head = Head {
                status: 200,
                headers: vec![
                    ("content-type".into(), "video/mp4".into()),
                    ("content-length".into(), body.len().to_string()),
                    ("cache-control".into(), cache.into()),
                    ("x-ladder-rung".into(), rp.rung.name.clone()),
                ],
            };
            flight.set_head(head.clone());
            flight.push(body.clone());
            flight.finish();
            edge.store(key, path, head, body);
        }
        Err(LadderFailure::NotFound(msg)) => {
            let body = Bytes::from(format!("{msg}\n"));
            flight.set_head(Head {
                status: 404,
                headers: vec![
                    ("content-type".into(), "text/plain; charset=utf-8".into()),
                    ("content-length".into(), body.len().to_string()),
                    ("cache-control".into(), "no-store".into()),
                ],
            });
            flight.push(body);
            flight.finish();
        }
        Err(LadderFailure::Busy(n)) => {
            ::metrics::counter!("mediamesh_edge_ladder_errors_total", "reason" => "busy")
                .increment(1);
            tracing::warn!(
                path,
                waiting = n,
                "rung object refused: the transcode queue is full"
            );
            let body = Bytes::from("the transcode queue is full; retry shortly\n");
            flight.set_head(Head {
                status: 503,
                headers: vec![
                    ("content-type".into(), "text/plain; charset=utf-8".into()),
                    ("content-length".into(), body.len().to_string()),
                    ("cache-control".into(), "no-store".into()),
                    ("retry-after".into(), "1".into()),
                ],
            });
            flight.push(body);
            flight.finish();
        }
        Err(e) => {
            let reason = match e {
                LadderFailure::Source(_) => "source",
                _ => "transcode",
            };
            ::metrics::counter!("mediamesh_edge_ladder_errors_total", "reason" => reason)
                .increment(1);
            tracing::warn!(path, error = %e, "rung object not made");
            flight.fail(FlightError::Made(std::sync::Arc::new(e)));
        }
    }
    true
}

/// Makes one rung init or media segment.
async fn make(
    edge: &dyn ObjectSource,
    t: &Transcoder,
    rp: &RungPath<'_>,
) -> Result<Bytes, LadderFailure> {
    let ladder = &t.config.ladder;
    let dir = source_dir(ladder, rp.stream);
    let src_playlist = edge
        .get(&format!("{dir}/index.m3u8"))
        .await
        .map_err(failure_status)?;
    let pl = std::str::from_utf8(&src_playlist)
        .ok()
        .and_then(|s| MediaPlaylist::parse(s).ok())
        .ok_or_else(|| LadderFailure::Source("source playlist unusable".into()))?;
    let (init_name, msn) = match rp.object {
        RungObject::Init(v) => {
            let last = pl
                .segments
                .last()
                .map(|_| pl.next_msn() - 1)
                .ok_or_else(|| LadderFailure::NotFound("the source has no segment yet".into()))?;
            let name = v.map_or_else(|| "init.mp4".to_string(), |v| format!("init-{v}.mp4"));
            (name, last)
        }
        RungObject::Segment(n) => {
            let name = pl.map_uri.clone().unwrap_or_else(|| "init.mp4".into());
            (name, n)
        }
        RungObject::Playlist => return Err(LadderFailure::NotFound("not a media object".into())),
    };
    let (init_path, seg_path) = (format!("{dir}/{init_name}"), format!("{dir}/seg{msn}.m4s"));
    let (init, seg) = tokio::join!(edge.get(&init_path), edge.get(&seg_path));
    let (init, seg) = (init.map_err(failure_status)?, seg.map_err(failure_status)?);
    let source = logic::video_size(&init).map_err(|e| LadderFailure::Source(e.to_string()))?;
    let size = rp.rung.output_size(source).ok_or_else(|| {
        LadderFailure::NotFound(format!(
            "rendition {} is not offered: the source is {}x{}",
            rp.rung.name, source.0, source.1
        ))
    })?;
    let (out_init, out_media) = t
        .transcode(rp.rung, size, vec![init, seg], edge.max_object_bytes())
        .await?;
    let check = format!("{}/{}/{init_name}", rp.stream, rp.rung.name);
    if !t.same_avcc(check, &out_init) {
        ::metrics::counter!("mediamesh_edge_ladder_init_mismatch_total").increment(1);
        tracing::warn!(
            stream = rp.stream,
            rung = %rp.rung.name,
            "a rung encode has other SPS/PPS than the rung's first encode"
        );
    }
    Ok(match rp.object {
        RungObject::Init(_) => out_init,
        _ => out_media,
    })
}

/// The ladder as a hook of the request path (see `phase`): it answers its playlists
/// at the route phase and makes rung objects at the miss phase.
impl Hook for Transcoder {
    fn phases(&self) -> Phases {
        Phases {
            route: true,
            fill: true,
            ..Phases::NONE
        }
    }

    fn route<'a>(
        &'a self,
        src: &'a dyn ObjectSource,
        s: &'a Session,
    ) -> HookFuture<'a, Option<Response<Body>>> {
        Box::pin(route(src, self, &s.path))
    }

    fn fill<'a>(
        &'a self,
        src: &'a dyn ObjectSource,
        key: &'a str,
        path: &'a str,
        flight: &'a Flight,
    ) -> HookFuture<'a, bool> {
        Box::pin(fetch(src, self, key, path, flight))
    }
}

fn playlist(body: Bytes) -> Response<Body> {
    let mut r = Response::new(full(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apple.mpegurl"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
    r
}

fn error(status: u16, msg: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(format!("{msg}\n"))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcoder(ffmpeg: &str, timeout: Duration) -> Transcoder {
        let rung: Rung = "240p=426x240@300".parse().expect("rung");
        let ladder = Ladder::new(vec![rung], "src").expect("ladder");
        Transcoder::new(LadderConfig {
            ffmpeg: PathBuf::from(ffmpeg),
            timeout,
            jobs: 1,
            max_queue: 16,
            ladder,
        })
    }

    async fn run(t: &Transcoder) -> Result<(Bytes, Bytes), LadderFailure> {
        let rung = t.config.ladder.rungs[0].clone();
        t.transcode(
            &rung,
            (426, 240),
            vec![Bytes::from_static(b"not mp4")],
            1 << 20,
        )
        .await
    }

    #[tokio::test]
    async fn a_missing_program_is_a_transcode_error() {
        let t = transcoder("/nonexistent/ffmpeg", Duration::from_secs(5));
        let e = run(&t).await.expect_err("no program");
        assert!(
            matches!(&e, LadderFailure::Transcode(m) if m.contains("cannot start")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_failing_program_is_a_transcode_error() {
        let t = transcoder("/bin/false", Duration::from_secs(5));
        let e = run(&t).await.expect_err("exit 1");
        assert!(
            matches!(&e, LadderFailure::Transcode(m) if m.contains("exited")),
            "{e}"
        );
    }

    /// An executable shell script standing in for ffmpeg.
    fn script(dir: &tempfile::TempDir, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path.display().to_string()
    }

    #[tokio::test]
    async fn a_hanging_program_is_killed_at_the_time_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = script(&dir, "hang.sh", "exec sleep 600\n");
        let t = transcoder(&script, Duration::from_millis(300));
        let e = run(&t).await.expect_err("time-out");
        assert!(
            matches!(&e, LadderFailure::Transcode(m) if m.contains("killed")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn output_that_is_not_fmp4_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = script(&dir, "garbage.sh", "cat >/dev/null\necho garbage-out\n");
        let t = transcoder(&script, Duration::from_secs(10));
        let e = run(&t).await.expect_err("not fMP4");
        assert!(
            matches!(&e, LadderFailure::Transcode(m) if m.contains("fMP4")),
            "{e}"
        );
    }

    /// Finding 6: the transcode queue was unbounded. With one job slot and room for
    /// one waiter, a third transcode is refused at once (503) instead of queueing.
    #[tokio::test]
    async fn the_transcode_queue_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = script(&dir, "slow.sh", "exec sleep 600\n");
        let mut t = transcoder(&script, Duration::from_millis(500));
        t.config.max_queue = 1;
        let (a, b, c) = tokio::join!(run(&t), run(&t), run(&t));
        assert!(matches!(&c, Err(LadderFailure::Busy(1))), "{c:?}");
        for r in [a, b] {
            assert!(
                matches!(&r, Err(LadderFailure::Transcode(m)) if m.contains("killed")),
                "{r:?}"
            );
        }
        assert_eq!(t.waiting.load(Ordering::Acquire), 0);
    }

    #[test]
    fn avcc_consistency_is_tracked_per_key() {
        let t = transcoder("ffmpeg", Duration::from_secs(1));
        // Inits without avcC never count as consistent.
        assert!(!t.same_avcc("k".into(), b"junk"));
    }
}
