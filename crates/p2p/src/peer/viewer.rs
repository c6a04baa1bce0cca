//! One headless viewer session: loads the playlist, joins at a live offset (or the
//! start of a VOD), plays in real time with a [`Playhead`], and lets the
//! [`Scheduler`] choose HTTP or a peer for each segment. Bytes from peers are checked
//! against the signed digests before they count; peers asking for segments get them
//! within the upload slots and rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use reqwest::{Client, Url};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use super::digests::{Digests, Verdict};
use super::hls::{get_bytes, get_object, Follower, RenditionChoice};
use super::mesh::{MeshCommand, MeshEvent, MeshFactory, SwarmSpec};
use super::stats::ViewerStats;
use super::Latency;
use super::PeerError;
use crate::scheduler::{
    Action, PeerFailure, PeerKey, PlayState, Playhead, Scheduler, SchedulerConfig, SegmentId,
    UploadGate,
};

/// Largest segment accepted over HTTP.
pub(super) const MAX_SEGMENT_BYTES: usize = 64 << 20;
pub(super) const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// First playlist load: attempts and the pause between them.
pub(super) const OPEN_ATTEMPTS: u32 = 5;
pub(super) const OPEN_RETRY: Duration = Duration::from_secs(1);
/// Segments kept for sharing this long after they played.
const KEEP_BEHIND_MS: u64 = 30_000;

/// How one viewer session behaves.
#[derive(Clone)]
pub(crate) struct ViewerParams {
    pub index: usize,
    pub url: Url,
    pub choice: RenditionChoice,
    /// Distance from the live edge at which playback starts; `None` = 3 target durations.
    pub live_offset_ms: Option<u64>,
    pub lifetime: Duration,
    pub sched: SchedulerConfig,
    pub upload_slots: usize,
    pub upload_rate: u64,
    pub pinned_key: Option<VerifyingKey>,
    pub mesh: Option<(Arc<dyn MeshFactory>, SwarmSpec)>,
    /// Media buffered before playback starts (and resumes after a stall).
    pub start_buffer_ms: u64,
    /// Test double of a malicious peer: flips a byte in every segment (and part)
    /// it uploads.
    pub corrupt_uploads: bool,
    pub latency: Latency,
}

/// Wall clock, unix ms.
pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One latency-to-live sample while playing: now minus the capture time of the
/// media at the playhead.
pub(super) fn sample_latency(
    head: &Playhead,
    follower: &super::hls::Follower,
    stats: &mut ViewerStats,
) {
    if head.state() != PlayState::Playing {
        return;
    }
    if let Some(wall) = follower.wall_ms_at(head.position_ms()) {
        let lag = unix_ms().saturating_sub(wall) as f64 / 1000.0;
        // Bounded: a sample every 100 ms for a week is 6 M floats; keep 100 k.
        if stats.latency_samples.len() < 100_000 {
            stats.latency_samples.push(lag);
        }
    }
}

/// One segment or part over HTTP, bounded in bytes ([`MAX_SEGMENT_BYTES`]) and time
/// ([`HTTP_TIMEOUT`]).
pub(super) async fn fetch(client: &Client, url: &Url) -> Result<Bytes, PeerError> {
    fetch_signed(client, url).await.map(|(body, _)| body)
}

/// [`fetch`], with the origin's object signature if the answer carried one.
pub(super) async fn fetch_signed(
    client: &Client,
    url: &Url,
) -> Result<(Bytes, Option<String>), PeerError> {
    tokio::time::timeout(HTTP_TIMEOUT, get_object(client, url, MAX_SEGMENT_BYTES))
        .await
        .unwrap_or_else(|_| {
            Err(PeerError::Http {
                url: url.to_string(),
                reason: "timed out".into(),
            })
        })
}

/// Flips a byte in the middle (the `--corrupt-uploads` test double).
pub(super) fn corrupt(bytes: Bytes) -> Bytes {
    if bytes.is_empty() {
        return bytes;
    }
    let mut v = bytes.to_vec();
    let mid = v.len() / 2;
    v[mid] ^= 0xff;
    Bytes::from(v)
}

struct Session<'a> {
    started: Instant,
    follower: Follower,
    digests: Digests,
    sched: Scheduler,
    head: Playhead,
    gate: UploadGate,
    store: BTreeMap<SegmentId, Bytes>,
    http: JoinSet<(SegmentId, Result<Bytes, PeerError>)>,
    mesh_tx: Option<mpsc::Sender<MeshCommand>>,
    client: &'a Client,
    corrupt: bool,
    peers: usize,
    played_through: Option<SegmentId>,
}

impl Session<'_> {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn send(&self, cmd: MeshCommand) {
        if let Some(tx) = &self.mesh_tx {
            // A full or closed mesh drops the command: the scheduler's time-outs and
            // the HTTP fallback cover whatever it was.
            let _ = tx.try_send(cmd);
        }
    }

    fn drain_actions(&mut self) {
        let mut announce = false;
        while let Some(action) = self.sched.poll_action() {
            match action {
                Action::FetchHttp(id) => {
                    let Some(seg) = self.follower.segment(id) else {
                        self.sched.http_failed(self.now(), id);
                        continue;
                    };
                    let url = seg.url.clone();
                    let client = self.client.clone();
                    self.http
                        .spawn(async move { (id, fetch(&client, &url).await) });
                }
                Action::RequestPeer { peer, segment } => {
                    self.send(MeshCommand::Request { peer, segment })
                }
                Action::CancelPeer { peer, segment } => {
                    self.send(MeshCommand::Cancel { peer, segment })
                }
                Action::Disconnect(peer) => self.send(MeshCommand::Ban(peer)),
                Action::Announce => announce = true,
            }
        }
        if announce && self.mesh_tx.is_some() {
            let loaded = self.sched.loaded().collect();
            let loading = self.sched.loading().collect();
            self.send(MeshCommand::Announce { loaded, loading });
        }
    }

    async fn on_mesh(&mut self, ev: MeshEvent, stats: &mut ViewerStats) {
        let now = self.now();
        match ev {
            MeshEvent::PeerUp(k) => {
                metrics::gauge!("mediamesh_peer_connections").increment(1.0);
                self.peers += 1;
                stats.peers_max = stats.peers_max.max(self.peers);
                self.sched.peer_joined(now, k);
                // Tell the newcomer what we hold.
                let loaded = self.sched.loaded().collect();
                let loading = self.sched.loading().collect();
                self.send(MeshCommand::Announce { loaded, loading });
            }
            MeshEvent::PeerDown(k) => {
                metrics::gauge!("mediamesh_peer_connections").decrement(1.0);
                self.peers = self.peers.saturating_sub(1);
                self.sched.peer_left(now, k);
            }
            MeshEvent::Announced {
                peer,
                loaded,
                loading,
            } => self.sched.peer_announced(now, peer, loaded, loading),
            MeshEvent::Requested { peer, segment } => self.on_request(peer, segment),
            MeshEvent::Cancelled { .. } => {}
            MeshEvent::Received {
                peer,
                segment,
                bytes,
            } => self.on_received(peer, segment, bytes).await,
            MeshEvent::Failed { peer, segment } => {
                self.sched
                    .peer_failed(now, peer, segment, PeerFailure::Absent)
            }
            // Whole-segment mode holds no parts (and never asks for any).
            MeshEvent::PartRequested { peer, part } => {
                self.send(MeshCommand::PartAbsent { peer, part })
            }
            MeshEvent::PartsAnnounced { .. }
            | MeshEvent::PartReceived { .. }
            | MeshEvent::PartFailed { .. } => {}
        }
    }

    fn on_request(&mut self, peer: PeerKey, segment: SegmentId) {
        let Some(mut bytes) = self.store.get(&segment).cloned() else {
            self.send(MeshCommand::Absent { peer, segment });
            return;
        };
        if !self.gate.try_start() {
            self.send(MeshCommand::Absent { peer, segment });
            return;
        }
        if self.corrupt {
            bytes = corrupt(bytes);
        }
        let wait = self.gate.take(self.now(), bytes.len() as u64);
        self.gate.finish();
        metrics::counter!("mediamesh_peer_uploaded_bytes_total").increment(bytes.len() as u64);
        let cmd = MeshCommand::Send {
            peer,
            segment,
            bytes,
        };
        if wait == 0 {
            self.send(cmd);
        } else if let Some(tx) = self.mesh_tx.clone() {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait)).await;
                let _ = tx.send(cmd).await;
            });
        }
    }

    async fn on_received(&mut self, peer: PeerKey, segment: SegmentId, bytes: Bytes) {
        let Some(name) = self.follower.segment(segment).map(|s| s.name.clone()) else {
            self.sched
                .peer_failed(self.now(), peer, segment, PeerFailure::Absent);
            return;
        };
        let verdict = self.digests.check(&name, &bytes).await;
        let now = self.now();
        match verdict {
            Verdict::Match => {
                let len = bytes.len() as u64;
                metrics::counter!("mediamesh_peer_p2p_bytes_total").increment(len);
                self.store.entry(segment).or_insert(bytes);
                self.sched.peer_done(now, peer, segment, len);
            }
            Verdict::Mismatch => {
                tracing::warn!(
                    segment = segment.0,
                    "peer sent a segment that fails its digest; banned"
                );
                metrics::counter!("mediamesh_peer_rejected_segments_total").increment(1);
                self.sched
                    .peer_failed(now, peer, segment, PeerFailure::Corrupt)
            }
            Verdict::Unknown => self
                .sched
                .peer_failed(now, peer, segment, PeerFailure::Absent),
        }
    }

    fn on_http(&mut self, id: SegmentId, r: Result<Bytes, PeerError>) {
        let now = self.now();
        match r {
            Ok(bytes) => {
                let len = bytes.len() as u64;
                metrics::counter!("mediamesh_peer_http_bytes_total").increment(len);
                self.store.entry(id).or_insert(bytes);
                self.sched.http_done(now, id, len);
            }
            Err(e) => {
                tracing::debug!(segment = id.0, error = %e, "HTTP fetch failed");
                self.sched.http_failed(now, id);
            }
        }
    }

    /// Moves the playhead and lets the scheduler react.
    fn step(&mut self, stats: &mut ViewerStats) {
        let now = self.now();
        let end = self.sched.contiguous_end(self.head.position_ms());
        let stalls = self.head.stalls();
        let pos = self.head.advance(now, end);
        if self.head.stalls() > stalls {
            metrics::counter!("mediamesh_peer_stalls_total").increment(1);
        }
        self.sched.set_position(now, pos);
        self.sched.tick(now);
        sample_latency(&self.head, &self.follower, stats);
        // Count segments played through.
        let from = self
            .played_through
            .map_or(SegmentId(0), |s| SegmentId(s.0 + 1));
        for (id, _) in self.store.range(from..) {
            match self.follower.segment(*id) {
                Some(s) if s.info.start_ms + s.info.duration_ms <= pos => {
                    stats.segments_played += 1;
                    self.played_through = Some(*id);
                }
                _ => break,
            }
        }
        let keep = pos.saturating_sub(KEEP_BEHIND_MS);
        self.follower.forget_before(keep);
        while let Some((&id, _)) = self.store.first_key_value() {
            if self.follower.segment(id).is_some() {
                break;
            }
            self.store.remove(&id);
        }
        self.drain_actions();
    }
}

pub(super) async fn play(
    client: &Client,
    p: &ViewerParams,
    stats: &mut ViewerStats,
) -> Result<(), PeerError> {
    let started = Instant::now();
    let deadline = started + p.lifetime;
    // Like a player, retry the first load a few times: a stream that is just
    // starting answers 404 until its first segment exists.
    let mut attempt = 0;
    let mut follower = loop {
        match Follower::open(client.clone(), &p.url, p.choice).await {
            Ok(f) => break f,
            Err(e) => {
                attempt += 1;
                if attempt >= OPEN_ATTEMPTS || Instant::now() + OPEN_RETRY >= deadline {
                    return Err(e);
                }
                tracing::debug!(error = %e, "playlist not ready; retrying");
                tokio::time::sleep(OPEN_RETRY).await;
            }
        }
    };
    let digests = Digests::new(client.clone(), &follower.media_url, p.pinned_key)?;
    if let Some(init) = &follower.init_url {
        let b = get_bytes(client, init, MAX_SEGMENT_BYTES).await?;
        stats.http_bytes += b.len() as u64;
    }
    let (mesh_tx, mut mesh_rx, me) = match &p.mesh {
        Some((factory, spec)) if p.sched.p2p => {
            let mut spec = spec.clone();
            spec.variant_index = follower.variant_index;
            spec.stream_index = follower.stream_index.clone();
            let link = factory.join(&spec, p.index)?;
            (Some(link.commands), Some(link.events), link.me)
        }
        _ => (None, None, PeerKey(rand::random())),
    };
    let live = !follower.ended;
    let offset = p.live_offset_ms.unwrap_or(3 * follower.target_duration_ms);
    // A stream that has just started lists less than the live offset: wait (like a
    // player buffering) until it does, so the viewer does not sit at the live edge
    // where every segment is urgent. Bounded by twice the offset.
    let wait_until = Instant::now() + Duration::from_millis(2 * offset);
    while live
        && follower.edge_ms().saturating_sub(follower.first_ms()) < offset
        && Instant::now() + follower.reload_interval() < wait_until.min(deadline)
    {
        tokio::time::sleep(follower.reload_interval()).await;
        if let Err(e) = follower.reload().await {
            tracing::debug!(error = %e, "playlist reload failed");
        }
    }
    let join_at = if live {
        follower
            .edge_ms()
            .saturating_sub(offset)
            .max(follower.first_ms())
    } else {
        follower.first_ms()
    };
    let now0 = started.elapsed().as_millis() as u64;
    let mut s = Session {
        started,
        sched: Scheduler::new(p.sched.clone(), me),
        // Start-up counts from the session's start, playlist and init fetches included.
        head: Playhead::new(0, join_at, p.start_buffer_ms, p.start_buffer_ms),
        gate: UploadGate::new(p.upload_slots, p.upload_rate),
        store: BTreeMap::new(),
        http: JoinSet::new(),
        mesh_tx,
        client,
        corrupt: p.corrupt_uploads,
        peers: 0,
        played_through: None,
        digests,
        follower,
    };
    s.sched.set_position(now0, join_at);
    let initial: Vec<_> = s.follower.segments_from(join_at).map(|l| l.info).collect();
    for info in initial {
        s.sched.segment_listed(now0, info);
    }
    s.drain_actions();
    let mut next_reload = Instant::now() + s.follower.reload_interval();
    loop {
        let mut wake = deadline.min(Instant::now() + Duration::from_millis(100));
        if live && !s.follower.ended {
            wake = wake.min(next_reload);
        }
        if let Some(t) = s.sched.next_wakeup() {
            wake = wake.min(started + Duration::from_millis(t));
        }
        tokio::select! {
            _ = sleep_until(wake.into()) => {}
            Some(joined) = s.http.join_next(), if !s.http.is_empty() => {
                if let Ok((id, r)) = joined {
                    s.on_http(id, r);
                }
            }
            ev = async { match mesh_rx.as_mut() { Some(rx) => rx.recv().await, None => None } }, if mesh_rx.is_some() => {
                match ev {
                    Some(ev) => s.on_mesh(ev, stats).await,
                    None => { mesh_rx = None; s.mesh_tx = None; }
                }
            }
        }
        if Instant::now() >= deadline {
            break;
        }
        if live && !s.follower.ended && Instant::now() >= next_reload {
            next_reload = Instant::now() + s.follower.reload_interval();
            match tokio::time::timeout(HTTP_TIMEOUT, s.follower.reload()).await {
                Ok(Ok(fresh)) => {
                    let now = s.now();
                    for l in fresh {
                        s.sched.segment_listed(now, l.info);
                    }
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "playlist reload failed"),
                Err(_) => tracing::debug!("playlist reload timed out"),
            }
        }
        s.step(stats);
        if s.follower.ended && s.head.position_ms() >= s.follower.edge_ms().saturating_sub(10) {
            break;
        }
    }
    metrics::gauge!("mediamesh_peer_connections").decrement(s.peers as f64);
    let st = s.sched.stats();
    stats.http_bytes += st.http_bytes;
    stats.p2p_bytes = st.p2p_bytes;
    stats.uploaded_bytes = s.gate.uploaded();
    stats.stalls = s.head.stalls();
    stats.stall_seconds = s.head.stall_ms() as f64 / 1000.0;
    stats.startup_seconds = s.head.startup_ms().map(|m| m as f64 / 1000.0);
    stats.watched_seconds = s.head.played_ms() as f64 / 1000.0;
    stats.rejected_segments = st.rejected_segments;
    stats.banned_peers = st.banned_peers;
    stats.peer_timeouts = st.peer_timeouts;
    stats.digest_bytes = s.digests.fetched_bytes();
    Ok(())
}
