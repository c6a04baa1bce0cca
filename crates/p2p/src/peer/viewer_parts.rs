//! One headless viewer at low latency (`--latency low|balanced`): plays LL-HLS at
//! part granularity close to the live edge and shares parts with peers that speak
//! the part extension (`PROTOCOL.md` §5), as the [`PartScheduler`] decides (a pull
//! mesh; its module doc says why). Every part from a peer is checked before it is
//! played or passed on: against the origin's object signature that came with it
//! (the `mediamesh-signature` header, relayed hop by hop in `PartData`), else against
//! the origin's signed digest list (`part{msn}.{i}.m4s`); a mismatch bans the sender,
//! as for segments. Parts of a finished segment are
//! joined into the segment (a CMAF segment is its parts back to back), which is
//! then served to whole-segment peers (browsers with stock p2p-media-loader).
//!
//! Not here: the whole-segment viewer (`viewer.rs`), used at `max-offload`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::{Client, Url};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use super::digests::{Digests, Verdict};
use super::hls::{get_bytes, get_text, Follower};
use super::mesh::{MeshCommand, MeshEvent};
use super::stats::ViewerStats;
use super::viewer::{
    corrupt, fetch_signed, sample_latency, ViewerParams, HTTP_TIMEOUT, MAX_SEGMENT_BYTES,
    OPEN_ATTEMPTS, OPEN_RETRY,
};
use super::{Latency, PeerError};
use crate::scheduler::{
    PartAction, PartConfig, PartInfo, PartKey, PartScheduler, PeerFailure, PeerKey, Playhead,
    SegmentId, UploadGate,
};

/// Parts announced at most (the newest); a few segments' worth.
const MAX_ANNOUNCED_PARTS: usize = 64;
/// How often the loop runs without other wake-ups.
const TICK: Duration = Duration::from_millis(50);
/// Playback resumes / starts with this much media buffered.
const START_BUFFER_MS: u64 = 500;

/// A part's bytes and the origin's signature of them (`KID:BASE64`), if known.
type Signed = (Bytes, Option<String>);
type HttpResult = (PartKey, Result<Signed, PeerError>);

struct Session<'a> {
    started: Instant,
    follower: Follower,
    digests: Digests,
    sched: PartScheduler,
    head: Playhead,
    gate: UploadGate,
    parts: BTreeMap<PartKey, Signed>,
    /// Whole segments joined from verified parts, for whole-segment peers.
    segments: BTreeMap<SegmentId, Bytes>,
    http: JoinSet<HttpResult>,
    mesh_tx: Option<mpsc::Sender<MeshCommand>>,
    client: &'a Client,
    corrupt: bool,
    peers: usize,
    /// Where playback joined, and the last segment played through.
    join_at: u64,
    played_through: Option<SegmentId>,
}

impl Session<'_> {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn send(&self, cmd: MeshCommand) {
        if let Some(tx) = &self.mesh_tx {
            let _ = tx.try_send(cmd);
        }
    }

    fn list_parts(&mut self) {
        let now = self.now();
        let pos = self.head.position_ms();
        let listed: Vec<(PartInfo, bool)> = self
            .follower
            .parts_from(pos)
            .map(|p| (p.info, p.complete))
            .collect();
        for (info, complete) in listed {
            self.sched.part_listed(now, info, complete);
        }
        for key in self.sched.unheld() {
            if self.follower.part(key).is_none() {
                self.sched.forget(key);
            }
        }
    }

    fn announce(&self) {
        if self.mesh_tx.is_none() {
            return;
        }
        let held: Vec<PartKey> = self.sched.held().collect();
        let from = held.len().saturating_sub(MAX_ANNOUNCED_PARTS);
        self.send(MeshCommand::AnnounceParts(held[from..].to_vec()));
        self.send(MeshCommand::Announce {
            loaded: self.segments.keys().copied().collect(),
            loading: Vec::new(),
        });
    }

    fn drain_actions(&mut self) {
        let mut announce = false;
        while let Some(action) = self.sched.poll_action() {
            match action {
                PartAction::FetchHttp(key) => {
                    let Some(part) = self.follower.part(key) else {
                        self.sched.http_failed(self.now(), key);
                        continue;
                    };
                    let url = part.url.clone();
                    let client = self.client.clone();
                    self.http
                        .spawn(async move { (key, fetch_signed(&client, &url).await) });
                }
                PartAction::RequestPeer { peer, part } => {
                    self.send(MeshCommand::RequestPart { peer, part })
                }
                PartAction::CancelPeer { peer, part } => self.send(MeshCommand::Cancel {
                    peer,
                    segment: SegmentId(part.segment),
                }),
                PartAction::Disconnect(peer) => self.send(MeshCommand::Ban(peer)),
                PartAction::Announce => announce = true,
            }
        }
        if announce {
            self.announce();
        }
    }

    /// Stores a verified part; joins its segment when all its parts are here.
    fn keep(&mut self, key: PartKey, part: Signed) {
        self.parts.insert(key, part);
        let id = SegmentId(key.segment);
        let Some(count) = self.follower.segment(id).map(|s| s.parts) else {
            return;
        };
        if count == 0 || self.segments.contains_key(&id) {
            return;
        }
        let mut joined = BytesMut::new();
        for index in 0..count {
            match self.parts.get(&PartKey {
                segment: key.segment,
                index,
            }) {
                Some((b, _)) => joined.extend_from_slice(b),
                None => return,
            }
        }
        self.segments.insert(id, joined.freeze());
    }

    async fn on_mesh(&mut self, ev: MeshEvent, stats: &mut ViewerStats) {
        let now = self.now();
        match ev {
            MeshEvent::PeerUp(k) => {
                metrics::gauge!("mediamesh_peer_connections").increment(1.0);
                self.peers += 1;
                stats.peers_max = stats.peers_max.max(self.peers);
                self.sched.peer_joined(now, k);
                self.announce();
            }
            MeshEvent::PeerDown(k) => {
                metrics::gauge!("mediamesh_peer_connections").decrement(1.0);
                self.peers = self.peers.saturating_sub(1);
                self.sched.peer_left(now, k);
            }
            MeshEvent::PartsAnnounced { peer, parts } => {
                self.sched.peer_announced(now, peer, parts)
            }
            MeshEvent::PartRequested { peer, part } => {
                let held = self.parts.get(&part).cloned();
                match held {
                    Some((mut b, signature)) if self.gate.try_start() => {
                        if self.corrupt {
                            b = corrupt(b);
                        }
                        let wait = self.gate.take(now, b.len() as u64);
                        self.gate.finish();
                        metrics::counter!("mediamesh_peer_uploaded_bytes_total")
                            .increment(b.len() as u64);
                        let cmd = MeshCommand::SendPart {
                            peer,
                            part,
                            bytes: b,
                            signature,
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
                    _ => self.send(MeshCommand::PartAbsent { peer, part }),
                }
            }
            MeshEvent::PartReceived {
                peer,
                part,
                bytes,
                signature,
            } => self.on_part(peer, part, (bytes, signature)).await,
            MeshEvent::PartFailed { peer, part } => {
                self.sched.peer_failed(now, peer, part, PeerFailure::Absent)
            }
            // Whole segments: served from the joined parts; never asked for here.
            MeshEvent::Requested { peer, segment } => {
                let bytes = self.segments.get(&segment).cloned();
                match bytes {
                    Some(mut b) if self.gate.try_start() => {
                        if self.corrupt {
                            b = corrupt(b);
                        }
                        self.gate.take(now, b.len() as u64);
                        self.gate.finish();
                        self.send(MeshCommand::Send {
                            peer,
                            segment,
                            bytes: b,
                        });
                    }
                    _ => self.send(MeshCommand::Absent { peer, segment }),
                }
            }
            MeshEvent::Announced { .. }
            | MeshEvent::Cancelled { .. }
            | MeshEvent::Received { .. }
            | MeshEvent::Failed { .. } => {}
        }
    }

    async fn on_part(&mut self, peer: PeerKey, part: PartKey, (bytes, signature): Signed) {
        let name = match self.follower.part(part) {
            Some(p) => p.name.clone(),
            // Named as the origin names parts; the signed list decides.
            None => format!("part{}.{}.m4s", part.segment, part.index),
        };
        let verdict = self
            .digests
            .check_signed(&name, &bytes, signature.as_deref())
            .await;
        let now = self.now();
        match verdict {
            Verdict::Match => {
                let len = bytes.len() as u64;
                metrics::counter!("mediamesh_peer_p2p_bytes_total").increment(len);
                metrics::counter!("mediamesh_peer_p2p_part_bytes_total").increment(len);
                if !self.sched.has(part) {
                    self.keep(part, (bytes, signature));
                }
                self.sched.peer_done(now, peer, part, len);
            }
            Verdict::Mismatch => {
                tracing::warn!(
                    segment = part.segment,
                    part = part.index,
                    "peer sent a part that fails its digest; banned"
                );
                metrics::counter!("mediamesh_peer_rejected_parts_total").increment(1);
                self.sched
                    .peer_failed(now, peer, part, PeerFailure::Corrupt)
            }
            Verdict::Unknown => self.sched.peer_failed(now, peer, part, PeerFailure::Absent),
        }
    }

    fn on_http(&mut self, key: PartKey, r: Result<Signed, PeerError>) {
        let now = self.now();
        match r {
            Ok(part) => {
                let len = part.0.len() as u64;
                metrics::counter!("mediamesh_peer_http_bytes_total").increment(len);
                if !self.sched.has(key) {
                    self.keep(key, part);
                }
                self.sched.http_done(now, key, len);
            }
            Err(e) => {
                tracing::debug!(segment = key.segment, part = key.index, error = %e, "part fetch failed");
                self.sched.http_failed(now, key);
            }
        }
    }

    fn step(&mut self, stats: &mut ViewerStats) {
        let now = self.now();
        let end = self.sched.contiguous_end(self.head.position_ms());
        let stalls = self.head.stalls();
        let pos = self.head.advance(now, end);
        if self.head.stalls() > stalls {
            metrics::counter!("mediamesh_peer_stalls_total").increment(1);
            tracing::info!(
                position_ms = pos,
                urgent_ms = self.sched.urgent_ms(),
                peers = self.peers,
                waiting_for = %self.sched.explain(pos),
                "stalled"
            );
        }
        self.sched.set_position(now, pos);
        self.sched.tick(now);
        sample_latency(&self.head, &self.follower, stats);
        let done: Vec<SegmentId> = self
            .follower
            .segments_from(self.join_at)
            .filter(|s| {
                s.info.start_ms >= self.join_at
                    && s.info.start_ms + s.info.duration_ms <= pos
                    && self.played_through.is_none_or(|p| s.info.id > p)
            })
            .map(|s| s.info.id)
            .collect();
        if let Some(last) = done.last() {
            stats.segments_played += done.len() as u64;
            self.played_through = Some(*last);
        }
        let keep = pos.saturating_sub(20_000);
        self.follower.forget_before(keep);
        self.parts.retain(|k, _| self.follower.part(*k).is_some());
        self.segments
            .retain(|id, _| self.follower.segment(*id).is_some());
        self.drain_actions();
    }
}

async fn fetch_playlist(client: Client, url: Url) -> Result<String, PeerError> {
    tokio::time::timeout(HTTP_TIMEOUT, get_text(&client, &url))
        .await
        .unwrap_or_else(|_| {
            Err(PeerError::Http {
                url: url.to_string(),
                reason: "timed out".into(),
            })
        })
}

pub(super) async fn play(
    client: &Client,
    p: &ViewerParams,
    stats: &mut ViewerStats,
) -> Result<(), PeerError> {
    let started = Instant::now();
    let deadline = started + p.lifetime;
    let mut attempt = 0;
    let mut follower = loop {
        match Follower::open(client.clone(), &p.url, p.choice).await {
            Ok(f) => break f,
            Err(e) => {
                attempt += 1;
                if attempt >= OPEN_ATTEMPTS || Instant::now() + OPEN_RETRY >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(OPEN_RETRY).await;
            }
        }
    };
    let Some(part_target) = follower.part_target_ms else {
        return Err(PeerError::Playlist {
            url: follower.media_url.to_string(),
            reason: format!(
                "--latency {} needs an LL-HLS playlist (EXT-X-PART-INF); use --latency max-offload",
                p.latency
            ),
        });
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
            spec.parts = true;
            let link = factory.join(&spec, p.index)?;
            (Some(link.commands), Some(link.events), link.me)
        }
        _ => (None, None, PeerKey(rand::random())),
    };
    let hold_back = follower.part_hold_back_ms.unwrap_or(3 * part_target);
    let offset = p.live_offset_ms.unwrap_or_else(|| {
        live_offset_ms(
            p.latency,
            p.sched.p2p && mesh_tx.is_some(),
            hold_back,
            part_target,
            follower.target_duration_ms,
        )
    });
    // Wait until the stream lists more than the offset (a stream just started).
    while follower.part_edge_ms().saturating_sub(follower.first_ms()) < offset
        && Instant::now() + follower.reload_interval() < deadline
    {
        tokio::time::sleep(follower.reload_interval()).await;
        if let Err(e) = follower.reload().await {
            tracing::debug!(error = %e, "playlist reload failed");
        }
    }
    let join_at = follower
        .part_edge_ms()
        .saturating_sub(offset)
        .max(follower.first_ms());
    let cfg = PartConfig {
        p2p: p.sched.p2p && mesh_tx.is_some(),
        ..PartConfig::default()
    };
    let now0 = started.elapsed().as_millis() as u64;
    let mut s = Session {
        started,
        sched: PartScheduler::new(cfg, me),
        head: Playhead::new(0, join_at, START_BUFFER_MS, START_BUFFER_MS),
        gate: UploadGate::new(p.upload_slots, p.upload_rate),
        parts: BTreeMap::new(),
        segments: BTreeMap::new(),
        http: JoinSet::new(),
        mesh_tx,
        client,
        corrupt: p.corrupt_uploads,
        peers: 0,
        join_at,
        played_through: None,
        digests,
        follower,
    };
    s.sched.set_position(now0, join_at);
    s.list_parts();
    s.drain_actions();
    // Blocking playlist reloads, one at a time, in the background.
    let mut reload: JoinSet<Result<String, PeerError>> = JoinSet::new();
    reload.spawn(fetch_playlist(client.clone(), s.follower.reload_url()));
    loop {
        let mut wake = deadline.min(Instant::now() + TICK);
        if let Some(t) = s.sched.next_wakeup() {
            wake = wake.min(started + Duration::from_millis(t));
        }
        tokio::select! {
            _ = sleep_until(wake.into()) => {}
            Some(joined) = s.http.join_next(), if !s.http.is_empty() => {
                if let Ok((key, r)) = joined {
                    s.on_http(key, r);
                }
            }
            Some(joined) = reload.join_next(), if !reload.is_empty() => {
                match joined {
                    Ok(Ok(text)) => {
                        if let Err(e) = s.follower.apply_text(&text) {
                            tracing::debug!(error = %e, "playlist unusable");
                        }
                        s.list_parts();
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "playlist reload failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(_) => {}
                }
                if !s.follower.ended {
                    reload.spawn(fetch_playlist(client.clone(), s.follower.reload_url()));
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
        s.step(stats);
        if s.follower.ended && s.head.position_ms() >= s.follower.edge_ms().saturating_sub(10) {
            break;
        }
    }
    metrics::gauge!("mediamesh_peer_connections").decrement(s.peers as f64);
    let st = s.sched.stats();
    stats.http_bytes += st.http_bytes;
    stats.p2p_bytes = st.p2p_bytes;
    stats.p2p_part_bytes = st.p2p_bytes;
    stats.rejected_parts = st.rejected_parts;
    stats.uploaded_bytes = s.gate.uploaded();
    stats.stalls = s.head.stalls();
    stats.stall_seconds = s.head.stall_ms() as f64 / 1000.0;
    stats.startup_seconds = s.head.startup_ms().map(|m| m as f64 / 1000.0);
    stats.watched_seconds = s.head.played_ms() as f64 / 1000.0;
    stats.banned_peers = st.banned_peers;
    stats.peer_timeouts = st.peer_timeouts;
    stats.digest_bytes = s.digests.fetched_bytes();
    Ok(())
}

/// How far behind the newest part a viewer plays when `--live-offset` is not given.
///
/// `low` sits at the playlist's PART-HOLD-BACK when it takes everything from the CDN,
/// and one part further back with P2P on: a part that comes from a peer arrives after
/// the elected fetcher got it, verified and announced it and the holder answered the
/// request, and that pull costs about a part's time on a busy machine. Sitting right
/// on the hold-back, a viewer in the swarm stalled where the same viewer with P2P off
/// did not (bench/p2p_latency.sh); the player page's `?latency=low` keeps the same
/// extra part. `balanced` is one target duration behind `low`'s hold-back.
fn live_offset_ms(
    latency: Latency,
    p2p: bool,
    hold_back_ms: u64,
    part_target_ms: u64,
    target_duration_ms: u64,
) -> u64 {
    match latency {
        Latency::Balanced => hold_back_ms + target_duration_ms,
        _ if p2p => hold_back_ms + part_target_ms,
        _ => hold_back_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swarm_plays_one_part_behind_the_hold_back_and_the_cdn_alone_on_it() {
        // The demo's playlist: PART-HOLD-BACK 1.5 s, 0.5 s parts, 2 s segments.
        assert_eq!(
            live_offset_ms(Latency::Low, false, 1_500, 500, 2_000),
            1_500
        );
        assert_eq!(live_offset_ms(Latency::Low, true, 1_500, 500, 2_000), 2_000);
        assert_eq!(
            live_offset_ms(Latency::Balanced, true, 1_500, 500, 2_000),
            3_500
        );
        assert_eq!(
            live_offset_ms(Latency::Balanced, false, 1_500, 500, 2_000),
            3_500
        );
    }
}
