//! `mediamesh peer`: N headless viewers in one process that play a live or VOD HLS
//! stream the way a player does (follow the playlist, keep a buffer at a live offset,
//! pick a rendition) and fetch each segment over HTTP or from peers of the swarm, as
//! the [`crate::scheduler`] decides. Used as a load generator, for the offload
//! benchmark, and as an always-on "super peer".
//!
//! `--latency` picks the granularity: `max-offload` (default) plays three target
//! durations back and shares whole segments (`viewer.rs`); `low` and `balanced`
//! play at the LL-HLS part hold-back (plus a target duration for `balanced`) and
//! share parts through the protocol's part extension (`viewer_parts.rs`). Both
//! sample latency to live from the player clock against EXT-X-PROGRAM-DATE-TIME.
//!
//! Not a decoder: playback is modelled by [`crate::scheduler::Playhead`] (real-time
//! clock, stalls when the buffer is dry); bytes are verified, not decoded.

pub mod digests;
pub mod hls;
pub mod mesh;
pub mod rtc_mesh;
mod run;
pub mod stats;
mod viewer;
mod viewer_parts;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use reqwest::{Client, Url};

pub use self::hls::RenditionChoice;
pub use self::mesh::{MeshCommand, MeshEvent, MeshFactory, MeshLink, SwarmSpec};
use self::run::run_viewer;
pub use self::stats::{Report, Totals, ViewerStats};
use self::viewer::ViewerParams;
use crate::scheduler::SchedulerConfig;

/// Why a viewer could not play.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("HTTP request for {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("playlist {url} is unusable: {reason}")]
    Playlist { url: String, reason: String },
    #[error("digest list {url} is unusable: {reason}")]
    Digests { url: String, reason: String },
    #[error("cannot join the swarm: {0}")]
    Mesh(String),
    #[error("invalid option: {0}")]
    Options(String),
}

/// The latency target of `--latency`: how close to live a viewer plays, and so at
/// what granularity it shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Latency {
    /// Near the playlist's PART-HOLD-BACK (three parts; one part more with P2P on),
    /// sharing LL-HLS parts.
    Low,
    /// PART-HOLD-BACK plus one target duration, sharing parts: more time for peers,
    /// more offload.
    Balanced,
    /// Three target durations back, whole segments only (the stock protocol).
    #[default]
    MaxOffload,
}

impl Latency {
    /// Whether this target shares parts (speaks the part extension).
    pub fn parts(self) -> bool {
        self != Latency::MaxOffload
    }
}

impl std::str::FromStr for Latency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "low" => Ok(Latency::Low),
            "balanced" => Ok(Latency::Balanced),
            "max-offload" => Ok(Latency::MaxOffload),
            other => Err(format!("want low, balanced or max-offload, got {other:?}")),
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Latency::Low => "low",
            Latency::Balanced => "balanced",
            Latency::MaxOffload => "max-offload",
        })
    }
}

/// Settings of a `mediamesh peer` run.
#[derive(Clone)]
pub struct PeerOptions {
    /// Multivariant or media playlist URL.
    pub url: String,
    /// Viewers at once.
    pub count: usize,
    /// How long the run lasts.
    pub duration: Duration,
    /// Segment scheduler settings (`p2p: false` for `--no-p2p`).
    pub sched: SchedulerConfig,
    pub choice: RenditionChoice,
    /// Tracker WebSocket URL; default `ws(s)://{host of url}/tracker`.
    pub tracker: Option<String>,
    /// Whom to trust for a `wss://` tracker (`None`: the system's roots); see
    /// [`crate::signal::tls::client_config`].
    pub tracker_tls: Option<Arc<rustls::ClientConfig>>,
    pub live_offset: Option<Duration>,
    /// Upload slots per viewer.
    pub upload_slots: usize,
    /// Upload cap per viewer in bytes/s (0 = none).
    pub upload_rate: u64,
    /// Peers per viewer.
    pub max_peers: usize,
    /// With churn, each viewer leaves after a while and a new one takes its place:
    /// viewer k stays `churn × (1 + k mod count)`.
    pub churn: Option<Duration>,
    /// Start viewers this far apart.
    pub stagger: Duration,
    /// The origin's public key, if pinned; else taken from the CDN on first use.
    pub origin_key: Option<VerifyingKey>,
    /// The first this-many viewers corrupt every segment they upload (to test that
    /// the others reject and ban them). Applies to parts as well.
    pub corrupt_uploads: usize,
    /// Latency target; `Low`/`Balanced` share LL-HLS parts.
    pub latency: Latency,
    /// STUN/TURN servers (`--ice-server`) for server-reflexive and relayed
    /// candidates; empty: host candidates only. Used by
    /// [`rtc_mesh::RtcMeshFactory`].
    pub ice_servers: Vec<crate::signal::ice::NativeIceServer>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            url: String::new(),
            count: 1,
            duration: Duration::from_secs(60),
            sched: SchedulerConfig::default(),
            choice: RenditionChoice::Highest,
            tracker: None,
            tracker_tls: None,
            live_offset: None,
            upload_slots: 4,
            upload_rate: 0,
            max_peers: 20,
            churn: None,
            stagger: Duration::from_millis(200),
            origin_key: None,
            corrupt_uploads: 0,
            latency: Latency::default(),
            ice_servers: Vec::new(),
        }
    }
}

/// The swarm id shared with browser viewers: the path of the playlist URL (no host,
/// no query), so viewers reaching the stream through different edges share a swarm.
pub fn swarm_id(url: &Url) -> String {
    url.path().to_string()
}

/// The HTTP client of one headless viewer: the shared settings plus the viewer's own
/// CMCD session id on every request (`CMCD-Session: sid="…",sf=h,st=l`, CTA-5004
/// header mode), so that edges count each viewer of `--count N` as one player
/// session. Falls back to the shared client if it cannot be built.
fn viewer_client(shared: &Client) -> Client {
    let sid = format!("{:032x}", rand::random::<u128>());
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("sid=\"{sid}\",sf=h,st=l")) {
        headers.insert("cmcd-session", v);
    }
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .default_headers(headers)
        .build()
        .unwrap_or_else(|_| shared.clone())
}

/// The default tracker of a playlist URL: `ws(s)://{host}/tracker`.
pub fn default_tracker(url: &Url) -> String {
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    let host = url.host_str().unwrap_or("127.0.0.1");
    match url.port() {
        Some(p) => format!("{scheme}://{host}:{p}/tracker"),
        None => format!("{scheme}://{host}/tracker"),
    }
}

/// Runs the viewers until `duration` is over and returns their stats.
pub async fn run(
    opts: PeerOptions,
    mesh: Option<Arc<dyn MeshFactory>>,
) -> Result<Report, PeerError> {
    if opts.count == 0 {
        return Err(PeerError::Options("--count must be at least 1".into()));
    }
    let url = Url::parse(&opts.url).map_err(|e| PeerError::Options(format!("bad URL: {e}")))?;
    let client = Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .build()
        .map_err(|e| PeerError::Options(e.to_string()))?;
    let spec = SwarmSpec {
        swarm_id: swarm_id(&url),
        variant_index: 0,
        stream_index: String::new(),
        tracker: opts
            .tracker
            .clone()
            .unwrap_or_else(|| default_tracker(&url)),
        max_peers: opts.max_peers,
        tracker_tls: opts.tracker_tls.clone(),
        parts: opts.latency.parts(),
    };
    let end = Instant::now() + opts.duration;
    let base = ViewerParams {
        index: 0,
        url,
        choice: opts.choice,
        live_offset_ms: opts.live_offset.map(|d| d.as_millis() as u64),
        lifetime: opts.duration,
        sched: opts.sched.clone(),
        upload_slots: opts.upload_slots,
        upload_rate: opts.upload_rate,
        pinned_key: opts.origin_key,
        mesh: mesh.map(|m| (m, spec)),
        start_buffer_ms: 1_000,
        corrupt_uploads: false,
        latency: opts.latency,
    };
    let mut next_index = 0usize;
    let mut reports = Vec::new();
    metrics::describe_counter!(
        "mediamesh_peer_http_bytes_total",
        "Segment bytes fetched over HTTP by headless viewers"
    );
    metrics::describe_counter!(
        "mediamesh_peer_p2p_bytes_total",
        "Verified segment bytes received from peers"
    );
    metrics::describe_counter!(
        "mediamesh_peer_uploaded_bytes_total",
        "Segment bytes sent to peers"
    );
    metrics::describe_counter!(
        "mediamesh_peer_rejected_segments_total",
        "Segments from peers that failed their signed digest"
    );
    metrics::describe_counter!(
        "mediamesh_peer_stalls_total",
        "Playback stalls of headless viewers"
    );
    metrics::describe_counter!(
        "mediamesh_peer_p2p_part_bytes_total",
        "Verified LL-HLS part bytes received from peers"
    );
    metrics::describe_counter!(
        "mediamesh_peer_rejected_parts_total",
        "Parts from peers that failed their signed digest"
    );
    let mut tasks_slots: tokio::task::JoinSet<(usize, ViewerStats)> = tokio::task::JoinSet::new();
    for slot in 0..opts.count {
        spawn_viewer(
            &mut tasks_slots,
            &base,
            &client,
            &opts,
            end,
            next_index,
            slot,
        );
        next_index += 1;
        tokio::time::sleep(opts.stagger).await;
    }
    while let Some(done) = tasks_slots.join_next().await {
        let Ok((slot, stats)) = done else { continue };
        reports.push(stats);
        // A churned viewer is replaced by a newcomer while time is left.
        if opts.churn.is_some()
            && end.saturating_duration_since(Instant::now()) > Duration::from_secs(2)
        {
            spawn_viewer(
                &mut tasks_slots,
                &base,
                &client,
                &opts,
                end,
                next_index,
                slot,
            );
            next_index += 1;
        }
    }
    Ok(Report::new(reports))
}

fn spawn_viewer(
    tasks: &mut tokio::task::JoinSet<(usize, ViewerStats)>,
    base: &ViewerParams,
    client: &Client,
    opts: &PeerOptions,
    end: Instant,
    index: usize,
    slot: usize,
) {
    let mut p = base.clone();
    p.index = index;
    p.corrupt_uploads = index < opts.corrupt_uploads;
    let left = end.saturating_duration_since(Instant::now());
    p.lifetime = match opts.churn {
        Some(c) => (c * (1 + (index % opts.count)) as u32).min(left),
        None => left,
    };
    let client = viewer_client(client);
    // One span per viewer: `peer --count N` runs N viewers in one process, and a
    // stall or a ban must be traceable to the viewer it happened to.
    let span = tracing::info_span!("viewer", index);
    tasks.spawn(tracing::Instrument::instrument(
        async move { (slot, run_viewer(client, p).await) },
        span,
    ));
}

/// Operator switch: keeps the tracker refusing the swarms of the streams `off()`
/// names (P2P off for them), a list the operator may change at run time. Every 2 s,
/// and at once when `changed` is notified, it reads each such stream's multivariant
/// playlist from `origin_base` (e.g. `http://127.0.0.1:8080`) and computes the info
/// hashes of its renditions' swarms exactly as browsers and native peers do. Runs
/// until the task is dropped.
pub async fn refuse_streams<F>(
    tracker: crate::tracker::ws::TrackerService,
    origin_base: String,
    off: F,
    changed: std::sync::Arc<tokio::sync::Notify>,
) where
    F: Fn() -> Vec<String> + Send + 'static,
{
    refuse_playlists(
        tracker,
        move || {
            off()
                .into_iter()
                .map(|name| {
                    let url = format!("{origin_base}/live/{name}/index.m3u8");
                    (name, Some(url))
                })
                .collect()
        },
        changed,
    )
    .await
}

/// [`refuse_streams`] with the playlist URLs given: `(stream, url)`, the URL `None`
/// when no origin is known to hold the stream right now (a tracker in a fleet reads
/// each stream from an origin of the registry that holds it). The requests say
/// `Via: 1.1 mediamesh-tracker`, so origins do not count them as viewers.
pub async fn refuse_playlists<F>(
    tracker: crate::tracker::ws::TrackerService,
    urls: F,
    changed: std::sync::Arc<tokio::sync::Notify>,
) where
    F: Fn() -> Vec<(String, Option<String>)> + Send + 'static,
{
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::VIA,
        reqwest::header::HeaderValue::from_static("1.1 mediamesh-tracker"),
    );
    let client = Client::builder()
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    // The swarms last read per stream: a read that fails, or finds no origin (one slow
    // or away for a moment), keeps them refused rather than opening P2P again.
    let mut known: std::collections::HashMap<String, Vec<crate::tracker::Id20>> =
        std::collections::HashMap::new();
    loop {
        let wanted = urls();
        known.retain(|stream, _| wanted.iter().any(|(s, _)| s == stream));
        for (stream, text) in wanted {
            let Some(Ok(url)) = text.as_deref().map(Url::parse) else {
                continue;
            };
            match tokio::time::timeout(
                Duration::from_secs(5),
                hls::swarm_info_hashes(&client, &url),
            )
            .await
            {
                Ok(Ok(hashes)) => {
                    known.insert(
                        stream,
                        hashes.into_iter().map(crate::tracker::Id20).collect(),
                    );
                }
                Ok(Err(e)) => tracing::debug!(url = %url, error = %e, "no playlist yet"),
                Err(_) => tracing::debug!(url = %url, "playlist timed out"),
            }
        }
        tracker.set_disabled_swarms(known.values().flatten().copied().collect());
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = changed.notified() => {}
        }
    }
}
