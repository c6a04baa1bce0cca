//! NAT traversal for native peers: one UDP socket per viewer, shared by all its
//! links, that also talks to the operator's STUN and TURN servers (`mediamesh peer
//! --ice-server URL`). Before the viewer joins the swarm, [`IceHub::gather`] learns
//! the **server-reflexive** address of that socket (a STUN Binding request to every
//! server, RFC 8489) and, with a `turn:` server, a **relayed** address (a TURN
//! allocation with long-term credentials, RFC 8656). Every link then offers three
//! kinds of candidates: host, srflx and relay, in its complete (non-trickle) SDP.
//!
//! Why one shared socket: SDP is complete when it is sent (simple-peer with
//! `trickle: false`), so candidates must be known before a link is created, and
//! links are created synchronously by the tracker client. Gathering once per viewer
//! and sharing the socket (the way str0m's own multi-client example does) keeps link
//! creation instant, costs one NAT mapping and one TURN allocation per viewer instead
//! of one per link, and keeps the srflx address valid for every link (Linux
//! MASQUERADE and most home NATs map one socket to one public port).
//!
//! Demultiplexing what arrives: datagrams from the TURN server go to the TURN client
//! (Data indications become peer datagrams "received on" the relayed address, which
//! is how str0m expects relayed traffic); Binding responses with a transaction id we
//! sent go to the gatherer; ICE checks (Binding requests) go to the link whose local
//! ufrag is the first half of `USERNAME`; everything else goes to the link that last
//! exchanged traffic with the source address. Sending: str0m's `Transmit` whose
//! source is the relayed address is wrapped in a Send indication to the TURN server
//! (a CreatePermission for the peer's IP is sent first; the datagrams before it
//! completes are dropped and ICE retransmits), anything else leaves the socket as is.
//!
//! # Crate: `turn-client-proto`
//!
//! The TURN client and the STUN message codec are `turn-client-proto` 0.7 (with its
//! `stun-proto`/`stun-types`): a **sans-IO** TURN client (fed datagrams and time,
//! polled for datagrams, events and its next deadline, like str0m) that does the
//! 401 challenge with long-term credentials, Refresh before the allocation expires,
//! CreatePermission and its refresh, ChannelBind and Send/Data indications; no
//! runtime, no TLS dependency with default features off. The alternatives:
//! webrtc-rs `turn` is async (its own tokio tasks and `Conn` trait), which is what
//! we avoided by choosing str0m; `stun_codec`/`rusturn` are built on `bytecodec`
//! and rusturn's client is futures-0.1 era; `stun-rs` encodes messages but has no
//! TURN client state machine, so allocation, refresh and permissions would be ours.
//! Our own code is the glue here and the small Binding/demultiplexing helpers in
//! [`super::stun`], which are fuzzed.
//!
//! Limits: IPv4 only; UDP to the servers only (`stuns:`/`turns:` and
//! `?transport=tcp` are refused by [`crate::signal::ice::IceServer::native`]); one
//! TURN allocation per viewer (the first `turn:` server; the others still answer
//! Binding requests).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tracing::Instrument;
use turn_client_proto::api::{SendError, TurnClientApi, TurnConfig, TurnEvent, TurnPollRet};
use turn_client_proto::stun::types::message::TransactionId;
use turn_client_proto::stun::types::TransportType;
use turn_client_proto::types::TurnCredentials;
use turn_client_proto::udp::{TurnClientUdp, TurnRecvRet};

use super::datagram::Datagram;
use super::stun::{self, MAX_DATAGRAM};
use crate::signal::ice::NativeIceServer;

/// Bound on resolving one server name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Binding requests are sent at these offsets from the start (RFC 8489 RTO 500 ms,
/// doubled), then we give up on that server.
const BINDING_RETRIES: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(500),
    Duration::from_millis(1500),
];
/// How long the last Binding request may wait for its answer.
const BINDING_LAST_WAIT: Duration = Duration::from_millis(1500);
/// Datagrams queued towards one link before more are dropped (like packet loss).
const LINK_QUEUE: usize = 256;
/// The TURN timer task looks at least this often.
const TURN_TICK: Duration = Duration::from_secs(1);
/// Remote addresses remembered for routing, per hub (a few per link; bounds what
/// ICE checks from many source addresses can make us keep).
const MAX_ROUTES: usize = 4096;

/// Why gathering could not even start (per-server failures are only logged).
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("no ICE server could be resolved to an IPv4 address")]
    NoServer,
    #[error("udp: {0}")]
    Io(#[from] std::io::Error),
}

/// Byte counters of one hub (what went through the TURN relay and what went direct).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HubStats {
    pub relayed_sent: u64,
    pub relayed_received: u64,
    pub direct_sent: u64,
    pub direct_received: u64,
    /// Datagrams that no link or server claimed.
    pub unrouted: u64,
}

#[derive(Default)]
struct Counters {
    relayed_sent: AtomicU64,
    relayed_received: AtomicU64,
    direct_sent: AtomicU64,
    direct_received: AtomicU64,
    unrouted: AtomicU64,
}

struct LinkRoute {
    tx: mpsc::Sender<Datagram>,
    ufrag: String,
    /// Where its data (non-STUN) datagrams last went: through the relay or not, and
    /// to whom. Logged when it changes (ICE may switch to a better pair later).
    data_path: Option<(bool, SocketAddr)>,
}

#[derive(Default)]
struct Routes {
    next: u64,
    links: HashMap<u64, LinkRoute>,
    by_ufrag: HashMap<String, u64>,
    by_addr: HashMap<SocketAddr, u64>,
}

impl Routes {
    /// Routes datagrams from `addr` to link `id` (the newest link wins an address).
    fn remember(&mut self, addr: SocketAddr, id: u64) {
        if self.by_addr.len() < MAX_ROUTES || self.by_addr.contains_key(&addr) {
            self.by_addr.insert(addr, id);
        }
    }
}

struct Turn {
    client: TurnClientUdp,
    server: SocketAddr,
    /// Peer IPs we asked a permission for (so we ask once, the client refreshes).
    asked: HashSet<IpAddr>,
    failed: bool,
}

struct Inner {
    sock: Arc<UdpSocket>,
    /// The host candidate: the routable local IP with the socket's port.
    host: SocketAddr,
    srflx: Mutex<Vec<SocketAddr>>,
    relayed: Mutex<Option<SocketAddr>>,
    turn: Mutex<Option<Turn>>,
    /// Wakes the TURN timer task (new client, new deadline).
    turn_wake: Notify,
    /// Tells the gatherer that the allocation succeeded or failed.
    turn_state: Notify,
    bindings: Mutex<HashMap<TransactionId, (SocketAddr, oneshot::Sender<SocketAddr>)>>,
    routes: Mutex<Routes>,
    /// Zero point of the TURN client's clock.
    epoch: Instant,
    counters: Counters,
}

/// One viewer's shared socket with its gathered candidates. Links hold it through
/// [`super::LinkConfig::ice`] and their registration; when the last holder goes,
/// the TURN allocation is deleted (best effort) and the tasks end.
pub struct IceHub {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for IceHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceHub")
            .field("host", &self.inner.host)
            .field("srflx", &*self.inner.srflx.lock())
            .field("relayed", &*self.inner.relayed.lock())
            .finish()
    }
}

/// A link's registration with the hub: its datagrams arrive on `rx`.
pub(super) struct HubLink {
    pub hub: Arc<IceHub>,
    pub id: u64,
}

impl Drop for HubLink {
    fn drop(&mut self) {
        let mut r = self.hub.inner.routes.lock();
        if let Some(l) = r.links.remove(&self.id) {
            r.by_ufrag.remove(&l.ufrag);
        }
        let id = self.id;
        r.by_addr.retain(|_, v| *v != id);
    }
}

impl IceHub {
    /// Binds the shared socket and gathers candidates from `servers`, bounded by
    /// `limit` (a server that does not answer in time is left out; with none
    /// answering the hub still offers its host candidate).
    #[tracing::instrument(name = "ice_gather", skip_all, fields(servers = servers.len()))]
    pub async fn gather(
        servers: &[NativeIceServer],
        limit: Duration,
    ) -> Result<Arc<IceHub>, GatherError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut resolved = Vec::new();
        for s in servers {
            match tokio::time::timeout_at(deadline, resolve(&s.host, s.port)).await {
                Ok(Some(a)) => resolved.push((s, a)),
                _ => tracing::warn!(server = %s, "ICE server did not resolve to IPv4"),
            }
        }
        let Some((_, first)) = resolved.first() else {
            return Err(GatherError::NoServer);
        };
        // The local address the system routes towards the servers is our host
        // candidate (the socket itself is bound to 0.0.0.0).
        let probe = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        probe.connect(first)?;
        let ip = probe.local_addr()?.ip();
        drop(probe);
        let sock = Arc::new(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?);
        let host = SocketAddr::new(ip, sock.local_addr()?.port());
        let inner = Arc::new(Inner {
            sock,
            host,
            srflx: Mutex::new(Vec::new()),
            relayed: Mutex::new(None),
            turn: Mutex::new(None),
            turn_wake: Notify::new(),
            turn_state: Notify::new(),
            bindings: Mutex::new(HashMap::new()),
            routes: Mutex::new(Routes::default()),
            epoch: Instant::now(),
            counters: Counters::default(),
        });
        let span = tracing::info_span!("ice_hub", %host);
        let tasks = vec![
            tokio::spawn(read_loop(inner.clone()).instrument(span.clone())),
            tokio::spawn(turn_loop(inner.clone()).instrument(span)),
        ];
        let hub = Arc::new(IceHub { inner, tasks });
        let turn = resolved
            .iter()
            .find_map(|(s, a)| s.turn.as_ref().map(|c| (*a, c)));
        if let Some((server, creds)) = turn {
            let cfg = TurnConfig::new(TurnCredentials::new(&creds.username, &creds.credential));
            let client = TurnClientUdp::allocate(host, server, cfg);
            *hub.inner.turn.lock() = Some(Turn {
                client,
                server,
                asked: HashSet::new(),
                failed: false,
            });
            hub.inner.turn_wake.notify_one();
        }
        let bindings = resolved
            .iter()
            .map(|(_, a)| binding(&hub.inner, *a, deadline));
        let mapped = futures_util::future::join_all(bindings).await;
        let mut srflx: Vec<SocketAddr> = Vec::new();
        for m in mapped.into_iter().flatten() {
            if m != host && !srflx.contains(&m) {
                srflx.push(m);
            }
        }
        *hub.inner.srflx.lock() = srflx.clone();
        if turn.is_some() {
            // The allocation runs beside the Binding requests; wait for it (bounded).
            while tokio::time::Instant::now() < deadline {
                let done = hub.inner.relayed.lock().is_some()
                    || hub.inner.turn.lock().as_ref().is_none_or(|t| t.failed);
                if done {
                    break;
                }
                let _ = tokio::time::timeout_at(deadline, hub.inner.turn_state.notified()).await;
            }
        }
        let relayed = *hub.inner.relayed.lock();
        tracing::info!(%host, ?srflx, ?relayed, "ice candidates gathered");
        Ok(hub)
    }

    /// The host candidate address.
    pub fn host(&self) -> SocketAddr {
        self.inner.host
    }

    /// Server-reflexive addresses (their base is [`IceHub::host`]).
    pub fn server_reflexive(&self) -> Vec<SocketAddr> {
        self.inner.srflx.lock().clone()
    }

    /// The relayed address of the TURN allocation, if there is one.
    pub fn relayed(&self) -> Option<SocketAddr> {
        *self.inner.relayed.lock()
    }

    /// Bytes through the relay and direct so far.
    pub fn stats(&self) -> HubStats {
        let c = &self.inner.counters;
        HubStats {
            relayed_sent: c.relayed_sent.load(Ordering::Relaxed),
            relayed_received: c.relayed_received.load(Ordering::Relaxed),
            direct_sent: c.direct_sent.load(Ordering::Relaxed),
            direct_received: c.direct_received.load(Ordering::Relaxed),
            unrouted: c.unrouted.load(Ordering::Relaxed),
        }
    }

    /// Registers a link by its local ICE ufrag; its datagrams arrive on the receiver.
    pub(super) fn register(self: &Arc<Self>, ufrag: String) -> (HubLink, mpsc::Receiver<Datagram>) {
        let (tx, rx) = mpsc::channel(LINK_QUEUE);
        let mut r = self.inner.routes.lock();
        r.next += 1;
        let id = r.next;
        r.by_ufrag.insert(ufrag.clone(), id);
        r.links.insert(
            id,
            LinkRoute {
                tx,
                ufrag,
                data_path: None,
            },
        );
        drop(r);
        (
            HubLink {
                hub: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Sends one of link `id`'s datagrams: through the TURN relay when `source` is
    /// the relayed address, else straight from the socket. Never waits: a full socket
    /// buffer drops the datagram like the network would.
    pub(super) fn send(&self, id: u64, source: SocketAddr, dest: SocketAddr, data: &[u8]) {
        let inner = &self.inner;
        let relayed = *inner.relayed.lock();
        let via_relay = relayed == Some(source);
        {
            let mut r = inner.routes.lock();
            r.remember(dest, id);
            if !stun::is_stun(data) {
                if let Some(l) = r.links.get_mut(&id) {
                    let now_path = Some((via_relay, dest));
                    if l.data_path != now_path {
                        l.data_path = now_path;
                        let path = if via_relay { "relay" } else { "direct" };
                        tracing::info!(link = id, path, %source, %dest, "link data path");
                    }
                }
            }
        }
        if !via_relay {
            if inner.sock.try_send_to(data, dest).is_ok() {
                inner
                    .counters
                    .direct_sent
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            return;
        }
        let now = inner.now();
        let mut guard = inner.turn.lock();
        let Some(turn) = guard.as_mut() else { return };
        match turn.client.send_to(TransportType::Udp, dest, data, now) {
            Ok(Some(t)) => {
                let t = t.build();
                if inner.sock.try_send_to(&t.data, t.to).is_ok() {
                    inner
                        .counters
                        .relayed_sent
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Ok(None) => {}
            Err(SendError::NoPermission) => {
                if turn.asked.insert(dest.ip()) {
                    if let Err(e) =
                        turn.client
                            .create_permission(TransportType::Udp, dest.ip(), now)
                    {
                        tracing::debug!(error = %e, peer = %dest.ip(), "no TURN permission");
                    }
                    inner.turn_wake.notify_one();
                }
            }
            Err(e) => tracing::trace!(error = %e, "TURN send"),
        }
        inner.flush_turn(turn, now);
    }
}

impl Drop for IceHub {
    fn drop(&mut self) {
        let inner = &self.inner;
        let now = inner.now();
        if let Some(turn) = inner.turn.lock().as_mut() {
            if turn.client.delete(now).is_ok() {
                inner.flush_turn(turn, now);
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        let s = self.stats();
        tracing::info!(
            relayed_sent = s.relayed_sent,
            relayed_received = s.relayed_received,
            direct_sent = s.direct_sent,
            direct_received = s.direct_received,
            unrouted = s.unrouted,
            "ice hub closed"
        );
    }
}

impl Inner {
    fn now(&self) -> turn_client_proto::stun::Instant {
        let nanos = self.epoch.elapsed().as_nanos().min(i64::MAX as u128) as i64;
        turn_client_proto::stun::Instant::from_nanos(nanos)
    }

    fn to_std(&self, t: turn_client_proto::stun::Instant) -> Instant {
        self.epoch + Duration::from_nanos(t.as_nanos().max(0) as u64)
    }

    /// Sends what the TURN client wants to send and handles its events.
    fn flush_turn(&self, turn: &mut Turn, now: turn_client_proto::stun::Instant) {
        while let Some(t) = turn.client.poll_transmit(now) {
            if let Err(e) = self.sock.try_send_to(t.data.as_ref(), t.to) {
                tracing::trace!(error = %e, "TURN transmit");
            }
        }
        while let Some(ev) = turn.client.poll_event() {
            match ev {
                TurnEvent::AllocationCreated(_, addr) => {
                    tracing::info!(relayed = %addr, server = %turn.server, "TURN allocation created");
                    *self.relayed.lock() = Some(addr);
                    self.turn_state.notify_one();
                }
                TurnEvent::AllocationCreateFailed(family) => {
                    tracing::warn!(?family, server = %turn.server, "TURN allocation failed");
                    turn.failed = true;
                    self.turn_state.notify_one();
                }
                TurnEvent::PermissionCreated(_, ip) => {
                    tracing::debug!(%ip, "TURN permission created")
                }
                TurnEvent::PermissionCreateFailed(_, ip) => {
                    tracing::debug!(%ip, "TURN permission refused");
                    turn.asked.remove(&ip);
                }
                other => tracing::debug!(event = ?other, "TURN event"),
            }
        }
    }

    /// Hands a datagram to the link it belongs to.
    fn deliver(&self, source: SocketAddr, local: SocketAddr, data: &[u8]) -> bool {
        let mut r = self.routes.lock();
        let id = match stun::classify(data) {
            stun::Datagram::IceCheck { local_ufrag } => {
                let id = r.by_ufrag.get(&local_ufrag).copied();
                if let Some(id) = id {
                    r.remember(source, id);
                }
                id
            }
            _ => r.by_addr.get(&source).copied(),
        };
        let Some(link) = id.and_then(|id| r.links.get(&id)) else {
            self.counters.unrouted.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let d = Datagram {
            local,
            source,
            data: data.to_vec(),
        };
        // A full queue drops the datagram (the link is not keeping up).
        link.tx.try_send(d).is_ok()
    }

    fn on_datagram(&self, from: SocketAddr, data: &[u8]) {
        // Answers to our Binding requests first (the TURN server answers them too,
        // and its TURN client must not see them).
        if self.binding_answer(from, data) {
            return;
        }
        let now = self.now();
        let mut turn_guard = self.turn.lock();
        if let Some(turn) = turn_guard.as_mut().filter(|t| t.server == from) {
            let t =
                turn_client_proto::api::Transmit::new(data, TransportType::Udp, from, self.host);
            let peer = match turn.client.recv(t, now) {
                TurnRecvRet::PeerData(p) => Some((p.peer, p.data().to_vec())),
                TurnRecvRet::Handled | TurnRecvRet::PeerIcmp { .. } | TurnRecvRet::Ignored(_) => {
                    None
                }
            };
            let relayed = *self.relayed.lock();
            self.flush_turn(turn, now);
            drop(turn_guard);
            if let (Some((peer, payload)), Some(relayed)) = (peer, relayed) {
                self.counters
                    .relayed_received
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                self.deliver(peer, relayed, &payload);
            }
            return;
        }
        drop(turn_guard);
        if self.deliver(from, self.host, data) {
            self.counters
                .direct_received
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }

    /// Completes a Binding transaction we started with `from`; whether it was one.
    fn binding_answer(&self, from: SocketAddr, data: &[u8]) -> bool {
        let Some(id) = stun::transaction_id(data) else {
            return false;
        };
        let mut b = self.bindings.lock();
        if b.get(&id).is_none_or(|(server, _)| *server != from) {
            return false;
        }
        match stun::binding_response(data) {
            Ok((_, mapped)) => {
                if let Some((_, tx)) = b.remove(&id) {
                    let _ = tx.send(mapped);
                }
            }
            Err(e) => tracing::debug!(error = %e, server = %from, "bad Binding response"),
        }
        true
    }
}

/// `host:port` to an IPv4 socket address, bounded.
async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Some(SocketAddr::new(IpAddr::V4(ip), port));
    }
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .ok()?
        .ok()?;
    let mut found = found;
    found.find(SocketAddr::is_ipv4)
}

/// One Binding transaction with `server` (retransmitted, bounded by `deadline`).
async fn binding(
    inner: &Arc<Inner>,
    server: SocketAddr,
    deadline: tokio::time::Instant,
) -> Option<SocketAddr> {
    let (id, req) = stun::binding_request().ok()?;
    let (tx, mut rx) = oneshot::channel();
    inner.bindings.lock().insert(id, (server, tx));
    let start = tokio::time::Instant::now();
    let mut got = None;
    for (i, at) in BINDING_RETRIES.iter().enumerate() {
        if start + *at > deadline {
            break;
        }
        tokio::time::sleep_until(start + *at).await;
        if let Err(e) = inner.sock.send_to(&req, server).await {
            tracing::debug!(error = %e, %server, "Binding request not sent");
        }
        let wait_until = match BINDING_RETRIES.get(i + 1) {
            Some(next) => start + *next,
            None => tokio::time::Instant::now() + BINDING_LAST_WAIT,
        };
        if let Ok(r) = tokio::time::timeout_at(wait_until.min(deadline), &mut rx).await {
            got = r.ok();
            break;
        }
    }
    inner.bindings.lock().remove(&id);
    match got {
        Some(a) => tracing::debug!(%server, mapped = %a, "server-reflexive address"),
        None => tracing::warn!(%server, "no Binding response from ICE server"),
    }
    got
}

async fn read_loop(inner: Arc<Inner>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match inner.sock.recv_from(&mut buf).await {
            // A datagram that filled the buffer may have been cut: drop it.
            Ok((n, _)) if n >= buf.len() => {}
            Ok((n, from)) => inner.on_datagram(from, &buf[..n]),
            // ICMP port unreachable and friends surface here on Linux.
            Err(e) => tracing::trace!(error = %e, "udp recv"),
        }
    }
}

/// Drives the TURN client's timers: refreshes of the allocation and permissions,
/// retransmissions.
async fn turn_loop(inner: Arc<Inner>) {
    loop {
        let wake = {
            let now = inner.now();
            let mut guard = inner.turn.lock();
            match guard.as_mut() {
                None => None,
                Some(turn) => {
                    let ret = turn.client.poll(now);
                    inner.flush_turn(turn, now);
                    match ret {
                        TurnPollRet::WaitUntil(t) => Some(inner.to_std(t)),
                        TurnPollRet::Closed => {
                            // The allocation is gone (or never came): new links
                            // must not offer it.
                            if inner.relayed.lock().take().is_some() {
                                tracing::warn!(server = %turn.server, "TURN allocation closed");
                            }
                            if !turn.failed {
                                turn.failed = true;
                                inner.turn_state.notify_one();
                            }
                            None
                        }
                        _ => None,
                    }
                }
            }
        };
        let tick = tokio::time::Instant::now() + TURN_TICK;
        let at = wake
            .map(tokio::time::Instant::from_std)
            .map_or(tick, |w| w.min(tick));
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = inner.turn_wake.notified() => {}
        }
    }
}
