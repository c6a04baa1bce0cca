//! The real swarm of a native viewer: the WebTorrent tracker client
//! ([`crate::signal`]) finds peers, WebRTC data channels ([`crate::rtc`]) carry the
//! p2p-media-loader 2.3 peer protocol ([`crate::proto`]), so native viewers and
//! browsers running p2p-media-loader share one swarm.
//!
//! One task per viewer owns the protocol sessions of all its links; one reader task
//! per link forwards what arrives, and one writer task per link sends in order with
//! the link's back-pressure. A peer that breaks the protocol is dropped and refused
//! for the rest of the session. Not here: choosing what to fetch (the scheduler) and
//! verifying bytes (the viewer, against the signed digests).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::mesh::{MeshCommand, MeshEvent, MeshFactory, MeshLink, SwarmSpec};
use super::PeerError;
use crate::proto::{
    self, RequestId, Session, SessionEvent, SessionLimits, StreamKind, WirePart, EXT_PARTS,
};
use crate::rtc::{IceHub, LinkConfig, LinkEvent, LinkSender, PeerLink};
use crate::scheduler::{PartKey, PeerKey, SegmentId};
use crate::signal::ice::NativeIceServer;
use crate::signal::{SignalConfig, Swarm, SwarmConfig};
use crate::tracker::Id20;

/// Messages (or whole uploads) queued per link before more are dropped.
const WRITE_QUEUE: usize = 32;

/// Bound on gathering server-reflexive and relayed candidates before joining.
const GATHER_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Makes WebRTC meshes.
#[derive(Debug, Clone, Default)]
pub struct RtcMeshFactory {
    pub link: LinkConfig,
    /// With servers, each viewer first gathers its candidates through one shared
    /// socket ([`IceHub`]) and then joins the swarm with them.
    pub ice_servers: Vec<NativeIceServer>,
}

impl MeshFactory for RtcMeshFactory {
    fn join(&self, spec: &SwarmSpec, viewer: usize) -> Result<MeshLink, PeerError> {
        let peer_id = proto::ids::generate_peer_id(&mut rand::thread_rng());
        let me = PeerKey::from_peer_id(&peer_id);
        let stream = proto::stream_swarm_id(&spec.swarm_id, StreamKind::Main, &spec.stream_index);
        let info_hash = proto::info_hash(&stream);
        tracing::debug!(viewer, stream, "joining swarm");
        let mut signal = SignalConfig::new(Id20(info_hash), Id20(peer_id));
        signal.max_peers = spec.max_peers.max(1);
        let uploaded = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let swarm_cfg = SwarmConfig {
            tracker_url: spec.tracker.clone(),
            signal,
            link: self.link.clone(),
            uploaded: uploaded.clone(),
        };
        let tls = spec.tracker_tls.clone();
        let servers = self.ice_servers.clone();
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let parts = spec.parts;
        let span = tracing::info_span!("mesh", viewer);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut swarm_cfg = swarm_cfg;
                if !servers.is_empty() {
                    match IceHub::gather(&servers, GATHER_LIMIT).await {
                        Ok(hub) => swarm_cfg.link.ice = Some(hub),
                        Err(e) => {
                            tracing::warn!(error = %e, "no STUN/TURN candidates: host candidates only")
                        }
                    }
                }
                let swarm = Swarm::join_with_tls(swarm_cfg, tls);
                run(swarm, cmd_rx, ev_tx, parts, uploaded).await
            },
            span,
        ));
        Ok(MeshLink {
            me,
            commands: cmd_tx,
            events: ev_rx,
        })
    }
}

struct Conn {
    session: Session,
    writer: mpsc::Sender<Vec<Bytes>>,
    reader: JoinHandle<()>,
    writer_task: JoinHandle<()>,
    /// The remote's open request: segment → request id.
    asked: HashMap<i64, RequestId>,
    /// The remote's open part request.
    asked_part: Option<(WirePart, RequestId)>,
    /// Whether we sent our part announcement since the remote said it speaks parts.
    parts_sent: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer_task.abort();
    }
}

impl Conn {
    fn send(&self, msgs: Vec<Vec<u8>>) {
        if msgs.is_empty() {
            return;
        }
        // A full queue drops the batch: the remote's request times out and it
        // falls back, which is what a congested link should cause anyway.
        let _ = self
            .writer
            .try_send(msgs.into_iter().map(Bytes::from).collect());
    }
}

struct Mesh {
    conns: HashMap<PeerKey, Conn>,
    banned: HashSet<PeerKey>,
    events: mpsc::Sender<MeshEvent>,
    link_events: mpsc::Sender<(PeerKey, LinkEvent)>,
    /// Our last announcement (protocol segment ids), for newcomers.
    last_announce: (Vec<i64>, Vec<i64>),
    /// Our last part announcement, for peers that start speaking parts.
    last_parts: Vec<WirePart>,
    /// Whether we speak the part extension.
    parts: bool,
    /// Bytes handed to peers so far (the swarm client reports it to the tracker).
    uploaded: Arc<std::sync::atomic::AtomicU64>,
}

async fn run(
    mut swarm: Swarm,
    mut commands: mpsc::Receiver<MeshCommand>,
    events: mpsc::Sender<MeshEvent>,
    parts: bool,
    uploaded: Arc<std::sync::atomic::AtomicU64>,
) {
    let (link_tx, mut link_rx) = mpsc::channel::<(PeerKey, LinkEvent)>(1024);
    let mut mesh = Mesh {
        uploaded,
        conns: HashMap::new(),
        banned: HashSet::new(),
        events,
        link_events: link_tx,
        last_announce: (Vec::new(), Vec::new()),
        last_parts: Vec::new(),
        parts,
    };
    loop {
        tokio::select! {
            peer = swarm.next_peer() => match peer {
                Some((id, link)) => mesh.add(id, link).await,
                None => break,
            },
            Some((key, ev)) = link_rx.recv() => mesh.on_link(key, ev).await,
            cmd = commands.recv() => match cmd {
                Some(cmd) => mesh.on_command(cmd).await,
                // The viewer ended: leave the swarm.
                None => break,
            },
        }
    }
    mesh.conns.clear();
    swarm.shutdown().await;
}

impl Mesh {
    async fn emit(&self, ev: MeshEvent) {
        let _ = self.events.send(ev).await;
    }

    async fn add(&mut self, id: Id20, mut link: PeerLink) {
        let key = PeerKey::from_peer_id(&id.0);
        if self.banned.contains(&key) || self.conns.contains_key(&key) {
            return;
        }
        let Ok(session) = Session::new(SessionLimits::default()) else {
            return;
        };
        let session = if self.parts {
            session.with_extensions(EXT_PARTS)
        } else {
            session
        };
        let sender = link.sender();
        let (wtx, wrx) = mpsc::channel(WRITE_QUEUE);
        // One span per peer connection, on both of its tasks.
        let span = tracing::info_span!("peer", peer = %hex::encode(&id.0[..6]));
        let writer_task = tokio::spawn(tracing::Instrument::instrument(
            write_loop(sender, wrx),
            span.clone(),
        ));
        let tx = self.link_events.clone();
        let reader = tokio::spawn(tracing::Instrument::instrument(
            async move {
                while let Some(ev) = link.recv().await {
                    let closed = matches!(ev, LinkEvent::Closed(_));
                    if tx.send((key, ev)).await.is_err() || closed {
                        return;
                    }
                }
                let _ = tx.send((key, LinkEvent::Closed("ended".into()))).await;
            },
            span,
        ));
        let conn = Conn {
            session,
            writer: wtx,
            reader,
            writer_task,
            asked: HashMap::new(),
            asked_part: None,
            parts_sent: false,
        };
        // Tell the newcomer what we hold right away.
        if let Ok(m) = conn
            .session
            .announce(&self.last_announce.0, &self.last_announce.1)
        {
            conn.send(m);
        }
        self.conns.insert(key, conn);
        self.emit(MeshEvent::PeerUp(key)).await;
    }

    async fn drop_peer(&mut self, key: PeerKey, ban: bool) {
        if ban {
            self.banned.insert(key);
        }
        if self.conns.remove(&key).is_some() {
            self.emit(MeshEvent::PeerDown(key)).await;
        }
    }

    async fn on_link(&mut self, key: PeerKey, ev: LinkEvent) {
        match ev {
            LinkEvent::Open => {}
            LinkEvent::Closed(reason) => {
                tracing::debug!(peer = key.0, reason, "link closed");
                self.drop_peer(key, false).await;
            }
            LinkEvent::Message(msg) => {
                let Some(conn) = self.conns.get_mut(&key) else {
                    return;
                };
                let out = match conn.session.handle_message(&msg) {
                    Ok(None) => None,
                    Ok(Some(ev)) => {
                        // A peer that just said it speaks parts learns ours.
                        if self.parts && !conn.parts_sent && conn.session.remote_speaks_parts() {
                            conn.parts_sent = true;
                            if let Ok(m) = conn.session.announce_parts(&self.last_parts) {
                                conn.send(m);
                            }
                        }
                        session_event(key, conn, ev)
                    }
                    Err(e) => {
                        tracing::info!(peer = key.0, error = %e, "peer broke the protocol; dropped");
                        metrics::counter!("mediamesh_peer_protocol_errors_total").increment(1);
                        self.drop_peer(key, true).await;
                        return;
                    }
                };
                if let Some(ev) = out {
                    self.emit(ev).await;
                }
            }
        }
    }

    async fn on_command(&mut self, cmd: MeshCommand) {
        match cmd {
            MeshCommand::Announce { loaded, loading } => {
                let l: Vec<i64> = loaded.iter().map(|s| s.0 as i64).collect();
                let h: Vec<i64> = loading.iter().map(|s| s.0 as i64).collect();
                for conn in self.conns.values() {
                    if let Ok(m) = conn.session.announce(&l, &h) {
                        conn.send(m);
                    }
                }
                self.last_announce = (l, h);
            }
            MeshCommand::Request { peer, segment } => {
                let result = self.conns.get_mut(&peer).map(|c| {
                    c.session
                        .request_segment(segment.0 as i64, 0)
                        .map(|(_, m)| c.send(m))
                });
                if !matches!(result, Some(Ok(()))) {
                    self.emit(MeshEvent::Failed { peer, segment }).await;
                }
            }
            MeshCommand::Cancel { peer, .. } => {
                if let Some(c) = self.conns.get_mut(&peer) {
                    if let Ok(m) = c.session.cancel_request() {
                        c.send(m);
                    }
                }
            }
            MeshCommand::Send {
                peer,
                segment,
                bytes,
            } => {
                if let Some(c) = self.conns.get_mut(&peer) {
                    let Some(rid) = c.asked.remove(&(segment.0 as i64)) else {
                        return;
                    };
                    let len = bytes.len() as u64;
                    if c.session.send_segment(rid, bytes).is_ok() {
                        self.uploaded
                            .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                        let mut msgs = Vec::new();
                        while let Some(m) = c.session.next_upload_message() {
                            msgs.push(m);
                        }
                        c.send(msgs);
                    }
                }
            }
            MeshCommand::Absent { peer, segment } => {
                if let Some(c) = self.conns.get_mut(&peer) {
                    if let Some(rid) = c.asked.remove(&(segment.0 as i64)) {
                        if let Ok(m) = c.session.segment_absent(rid) {
                            c.send(m);
                        }
                    }
                }
            }
            MeshCommand::Ban(peer) => self.drop_peer(peer, true).await,
            MeshCommand::AnnounceParts(parts) => {
                let parts: Vec<WirePart> = parts.into_iter().filter_map(to_wire).collect();
                for conn in self.conns.values_mut() {
                    if conn.session.remote_speaks_parts() {
                        conn.parts_sent = true;
                        if let Ok(m) = conn.session.announce_parts(&parts) {
                            conn.send(m);
                        }
                    }
                }
                self.last_parts = parts;
            }
            MeshCommand::RequestPart { peer, part } => {
                let result = match (self.conns.get_mut(&peer), to_wire(part)) {
                    (Some(c), Some(w)) => c.session.request_part(w).map(|(_, m)| c.send(m)).ok(),
                    _ => None,
                };
                if result.is_none() {
                    self.emit(MeshEvent::PartFailed { peer, part }).await;
                }
            }
            MeshCommand::SendPart {
                peer,
                part,
                bytes,
                signature,
            } => {
                if let Some(c) = self.conns.get_mut(&peer) {
                    let Some((w, rid)) = c.asked_part.take() else {
                        return;
                    };
                    if to_wire(part) != Some(w) {
                        c.asked_part = Some((w, rid));
                        return;
                    }
                    let len = bytes.len() as u64;
                    if c.session.send_part(rid, bytes, signature).is_ok() {
                        self.uploaded
                            .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
                        let mut msgs = Vec::new();
                        while let Some(m) = c.session.next_upload_message() {
                            msgs.push(m);
                        }
                        c.send(msgs);
                    }
                }
            }
            MeshCommand::PartAbsent { peer, part } => {
                if let Some(c) = self.conns.get_mut(&peer) {
                    if let Some((w, rid)) = c.asked_part {
                        if to_wire(part) == Some(w) {
                            c.asked_part = None;
                            if let Ok(m) = c.session.part_absent(rid) {
                                c.send(m);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What a session event means to the viewer.
fn session_event(key: PeerKey, conn: &mut Conn, ev: SessionEvent) -> Option<MeshEvent> {
    let seg = |s: i64| SegmentId(s.max(0) as u64);
    match ev {
        SessionEvent::Announced { .. } => {
            let loaded: Vec<SegmentId> = conn.session.remote_loaded().map(seg).collect();
            // Segments the remote is still fetching over HTTP are not listed by the
            // session; the scheduler's seeding order covers that case.
            let loading = Vec::new();
            Some(MeshEvent::Announced {
                peer: key,
                loaded,
                loading,
            })
        }
        SessionEvent::SegmentRequested {
            segment,
            request_id,
            ..
        } => {
            // A new request supersedes the remote's earlier one.
            conn.asked.clear();
            conn.asked_part = None;
            conn.asked.insert(segment, request_id);
            Some(MeshEvent::Requested {
                peer: key,
                segment: seg(segment),
            })
        }
        SessionEvent::RequestCancelled { segment, .. } => {
            conn.asked.remove(&segment);
            Some(MeshEvent::Cancelled {
                peer: key,
                segment: seg(segment),
            })
        }
        SessionEvent::SegmentReceived { segment, bytes, .. } => Some(MeshEvent::Received {
            peer: key,
            segment: seg(segment),
            bytes,
        }),
        SessionEvent::SegmentAbsent { segment, .. } => Some(MeshEvent::Failed {
            peer: key,
            segment: seg(segment),
        }),
        SessionEvent::PartsAnnounced { .. } => Some(MeshEvent::PartsAnnounced {
            peer: key,
            parts: conn.session.remote_parts().map(from_wire).collect(),
        }),
        SessionEvent::PartRequested { part, request_id } => {
            // A new request (of either kind) supersedes the remote's earlier one.
            conn.asked.clear();
            conn.asked_part = Some((part, request_id));
            Some(MeshEvent::PartRequested {
                peer: key,
                part: from_wire(part),
            })
        }
        SessionEvent::PartRequestCancelled { .. } => {
            conn.asked_part = None;
            None
        }
        SessionEvent::PartReceived {
            part,
            bytes,
            signature,
            ..
        } => Some(MeshEvent::PartReceived {
            peer: key,
            part: from_wire(part),
            bytes,
            signature,
        }),
        SessionEvent::PartAbsent { part, .. } => Some(MeshEvent::PartFailed {
            peer: key,
            part: from_wire(part),
        }),
        SessionEvent::ResponseStarted { .. } | SessionEvent::BytesReceived { .. } => None,
    }
}

fn to_wire(p: PartKey) -> Option<WirePart> {
    Some(WirePart {
        segment: i64::try_from(p.segment).ok()?,
        index: p.index,
    })
}

fn from_wire(p: WirePart) -> PartKey {
    PartKey {
        segment: p.segment.max(0) as u64,
        index: p.index,
    }
}

async fn write_loop(sender: LinkSender, mut rx: mpsc::Receiver<Vec<Bytes>>) {
    while let Some(batch) = rx.recv().await {
        for m in batch {
            if sender.send(m).await.is_err() {
                return;
            }
        }
    }
}

/// A shared factory for `mediamesh peer`.
pub fn factory() -> Arc<dyn MeshFactory> {
    Arc::new(RtcMeshFactory::default())
}

/// The WebRTC mesh with NAT traversal through `servers` (none: as [`factory`]).
pub fn factory_with_ice(servers: Vec<NativeIceServer>) -> Arc<dyn MeshFactory> {
    Arc::new(RtcMeshFactory {
        ice_servers: servers,
        ..RtcMeshFactory::default()
    })
}
