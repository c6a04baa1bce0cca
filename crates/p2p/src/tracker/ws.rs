//! Thin async shell around [`Tracker`]: the axum WebSocket route, one task per
//! connection with a bounded outgoing queue, a periodic expiry tick, metrics and
//! logs. Protocol decisions are all in [`super::core`]; nothing here parses JSON.
//!
//! No socket is held for free: each WebSocket is PINGed every
//! [`TrackerConfig::ping_every`] and closed after [`TrackerConfig::ws_idle_timeout`]
//! without a frame from the client; its read buffer starts small (4 KiB instead of
//! tungstenite's 128 KiB, which made an idle socket cost ~130 KiB). The write side
//! keeps tungstenite's defaults: capping the write backlog near one message made
//! bursts of relayed offers fail the send and drop browser peers. Served through
//! `service::serve` (as `mediamesh tracker` and `serve` do), the upgraded socket also
//! keeps its connection slot until it closes.
//!
//! Metrics: `mediamesh_tracker_peers`, `mediamesh_tracker_swarms`, `mediamesh_tracker_connections` (gauges),
//! `mediamesh_tracker_announces_total`, `mediamesh_tracker_offers_relayed_total`,
//! `mediamesh_tracker_answers_relayed_total`, `mediamesh_tracker_rejected_total{reason}` (counters;
//! `reason="idle"` counts WebSockets closed for silence).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Instant;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::config::TrackerConfig;
use super::core::{ConnId, Handled, Outgoing, PeerChange, RemoteOutgoing, Tracker};
use super::id::Id20;

/// Fleet scale-out hook: several trackers share swarms through a relay (crate
/// `fleet` implements it over Redis pub/sub). Called with the tracker's lock held,
/// so implementations only queue and return.
pub trait Relay: Send + Sync + 'static {
    /// A local peer joined or left a swarm.
    fn peer_changed(&self, change: PeerChange);
    /// A message for a peer another tracker holds.
    fn send(&self, msg: RemoteOutgoing);
}

/// Path the tracker is served on (clients announce to `ws://HOST/tracker`).
pub const TRACKER_PATH: &str = "/tracker";

const UPGRADE_HINT: &str = "426 Upgrade Required: this is a WebTorrent tracker. \
Connect with a WebSocket client (ws:// or wss://), e.g. p2p-media-loader or bittorrent-tracker.\n";

/// A shareable tracker: state plus the outgoing queues of live connections.
#[derive(Clone)]
pub struct TrackerService {
    shared: Arc<Mutex<Inner>>,
}

struct Link {
    tx: mpsc::Sender<String>,
    kick: Arc<Notify>,
}

struct Inner {
    tracker: Tracker,
    links: HashMap<ConnId, Link>,
    relay: Option<Arc<dyn Relay>>,
}

impl TrackerService {
    pub fn new(cfg: TrackerConfig) -> Self {
        TrackerService {
            shared: Arc::new(Mutex::new(Inner {
                tracker: Tracker::new(cfg),
                links: HashMap::new(),
                relay: None,
            })),
        }
    }

    /// `GET /tracker` (WebSocket upgrade; a plain GET gets 426). Does not start the
    /// expiry tick: call [`TrackerService::spawn_ticker`] once as well.
    pub fn router(&self) -> Router {
        Router::new()
            .route(TRACKER_PATH, any(upgrade))
            .with_state(self.clone())
    }

    /// Spawns the task that expires idle peers every `tick_every`. It ends by
    /// itself once every clone of this service (and its routers) is dropped.
    /// Replaces the swarms where P2P is off (announces to them get a failure reason).
    pub fn set_disabled_swarms(&self, swarms: std::collections::HashSet<super::Id20>) {
        metrics::gauge!("mediamesh_tracker_disabled_swarms").set(swarms.len() as f64);
        self.shared.lock().tracker.set_disabled_swarms(swarms);
    }

    pub fn spawn_ticker(&self) -> JoinHandle<()> {
        let weak: Weak<Mutex<Inner>> = Arc::downgrade(&self.shared);
        let every = self.shared.lock().tracker.config().tick_every;
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(every);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                let Some(shared) = weak.upgrade() else { break };
                let mut g = shared.lock();
                let n = g.tracker.tick(Instant::now());
                g.relay_out(Vec::new());
                if n > 0 {
                    debug!(expired = n, "tracker: expired idle peers");
                }
                g.gauges();
            }
        })
    }

    /// Shares swarms with other trackers through `relay` (see [`Relay`]).
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        let mut g = self.shared.lock();
        g.tracker.set_sharing(true);
        g.relay = Some(relay);
    }

    /// Another tracker's peer joined or left a swarm.
    pub fn remote_peer(&self, swarm: Id20, peer: Id20, node: &str, present: bool) {
        self.shared
            .lock()
            .tracker
            .remote_peer(swarm, peer, node, present, Instant::now());
    }

    /// Another tracker relayed a message for one of our peers.
    pub fn deliver(&self, swarm: Id20, to_peer: Id20, text: String) -> bool {
        let mut g = self.shared.lock();
        match g.tracker.deliver(swarm, to_peer, text) {
            Some(out) => {
                g.dispatch(vec![out]);
                true
            }
            None => false,
        }
    }

    /// Every local peer, to announce to a tracker that just joined the fleet.
    pub fn local_peers(&self) -> Vec<(Id20, Id20)> {
        self.shared.lock().tracker.local_peers()
    }

    /// This tracker's own peers per swarm (for the fleet's viewer accounting).
    pub fn local_swarm_counts(&self) -> Vec<(Id20, usize)> {
        self.shared.lock().tracker.local_swarm_counts()
    }

    /// `(peers, swarms, connections)` right now.
    pub fn stats(&self) -> (usize, usize, usize) {
        let g = self.shared.lock();
        (
            g.tracker.peer_count(),
            g.tracker.swarm_count(),
            g.tracker.connection_count(),
        )
    }

    fn on_frame(&self, conn: ConnId, frame: &[u8]) {
        let mut g = self.shared.lock();
        let mut h = g.tracker.handle_frame(conn, frame, Instant::now());
        g.account(conn, &h);
        let remote = std::mem::take(&mut h.remote_out);
        g.dispatch(h.out);
        g.relay_out(remote);
        g.gauges();
    }

    /// One event of a connection's socket; false when the connection ends.
    fn on_message(&self, conn: ConnId, msg: Option<Result<Message, axum::Error>>) -> bool {
        match msg {
            Some(Ok(Message::Text(t))) => self.on_frame(conn, t.as_bytes()),
            Some(Ok(Message::Binary(b))) => self.on_frame(conn, &b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None => return false,
            Some(Err(e)) => {
                debug!(conn = conn.0, error = %e, "tracker: websocket error");
                metrics::counter!("mediamesh_tracker_rejected_total", "reason" => "ws_error")
                    .increment(1);
                return false;
            }
        }
        true
    }

    fn disconnect(&self, conn: ConnId) {
        let mut g = self.shared.lock();
        g.links.remove(&conn);
        let removed = g.tracker.close(conn);
        g.relay_out(Vec::new());
        g.gauges();
        debug!(conn = conn.0, removed, "tracker: connection closed");
    }
}

impl Inner {
    fn account(&self, conn: ConnId, h: &Handled) {
        if h.announced {
            metrics::counter!("mediamesh_tracker_announces_total").increment(1);
        }
        if h.uploaded_bytes > 0 {
            metrics::counter!("mediamesh_tracker_peer_uploaded_bytes_total")
                .increment(h.uploaded_bytes);
        }
        if h.offers_relayed > 0 {
            metrics::counter!("mediamesh_tracker_offers_relayed_total")
                .increment(h.offers_relayed as u64);
        }
        if h.answers_relayed > 0 {
            metrics::counter!("mediamesh_tracker_answers_relayed_total")
                .increment(h.answers_relayed as u64);
        }
        if let Some(r) = h.rejected {
            metrics::counter!("mediamesh_tracker_rejected_total", "reason" => r.label())
                .increment(1);
            debug!(conn = conn.0, reason = r.label(), "tracker: rejected");
        }
    }

    /// Queues each message; a connection whose queue is full is too slow and is
    /// disconnected (its peers leave their swarms now).
    fn dispatch(&mut self, out: Vec<Outgoing>) {
        for Outgoing { conn, text } in out {
            let Some(link) = self.links.get(&conn) else {
                continue;
            };
            if link.tx.try_send(text).is_err() {
                warn!(conn = conn.0, "tracker: client too slow, disconnecting");
                metrics::counter!("mediamesh_tracker_rejected_total", "reason" => "slow_consumer")
                    .increment(1);
                if let Some(link) = self.links.remove(&conn) {
                    link.kick.notify_one();
                }
                self.tracker.close(conn);
            }
        }
    }

    /// Hands remote messages and peer changes to the relay (if any).
    fn relay_out(&mut self, remote: Vec<RemoteOutgoing>) {
        let Some(relay) = self.relay.clone() else {
            return;
        };
        for c in self.tracker.drain_changes() {
            relay.peer_changed(c);
        }
        for m in remote {
            relay.send(m);
        }
    }

    fn gauges(&self) {
        metrics::gauge!("mediamesh_tracker_peers").set(self.tracker.peer_count() as f64);
        metrics::gauge!("mediamesh_tracker_swarms").set(self.tracker.swarm_count() as f64);
        metrics::gauge!("mediamesh_tracker_connections")
            .set(self.tracker.connection_count() as f64);
    }
}

/// The client's address, when the server put it in the request (`ConnectInfo`).
/// Forwarding headers are not trusted: regions are the tracker's own view.
struct ClientAddr(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

async fn upgrade(
    State(svc): State<TrackerService>,
    ClientAddr(client): ClientAddr,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => {
            let (max, read_buffer) = {
                let g = svc.shared.lock();
                let c = g.tracker.config();
                (c.max_message_bytes, c.ws_read_buffer)
            };
            ws.max_message_size(max)
                .max_frame_size(max)
                .read_buffer_size(read_buffer.clamp(256, max.max(256)))
                .on_upgrade(move |socket| {
                    // One span per WebSocket: every line it logs names the client.
                    let span = tracing::info_span!("ws", client = ?client);
                    tracing::Instrument::instrument(run_connection(svc, socket, client), span)
                })
        }
        Err(
            WebSocketUpgradeRejection::InvalidConnectionHeader(_)
            | WebSocketUpgradeRejection::InvalidUpgradeHeader(_),
        ) => (
            StatusCode::UPGRADE_REQUIRED,
            [
                (header::UPGRADE, "websocket"),
                (header::CONNECTION, "Upgrade"),
            ],
            UPGRADE_HINT,
        )
            .into_response(),
        Err(other) => other.into_response(),
    }
}

async fn run_connection(svc: TrackerService, mut socket: WebSocket, client: Option<SocketAddr>) {
    let (queue, send_timeout, ping_every, idle_timeout) = {
        let g = svc.shared.lock();
        let c = g.tracker.config();
        (
            c.outgoing_queue.max(1),
            c.send_timeout,
            c.ping_every.max(std::time::Duration::from_millis(10)),
            c.ws_idle_timeout(),
        )
    };
    let (tx, mut rx) = mpsc::channel::<String>(queue);
    let kick = Arc::new(Notify::new());
    let conn = {
        let mut g = svc.shared.lock();
        let conn = g.tracker.open_from(Instant::now(), client.map(|a| a.ip()));
        let link = Link {
            tx,
            kick: kick.clone(),
        };
        g.links.insert(conn, link);
        g.gauges();
        conn
    };
    debug!(conn = conn.0, "tracker: connection opened");
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            _ = kick.notified() => break,
            () = &mut idle => {
                debug!(conn = conn.0, "tracker: silent for too long, closing");
                metrics::counter!("mediamesh_tracker_rejected_total", "reason" => "idle").increment(1);
                let _ = tokio::time::timeout(send_timeout, socket.send(Message::Close(None))).await;
                break;
            }
            _ = ping.tick() => {
                let sent = tokio::time::timeout(send_timeout, socket.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    debug!(conn = conn.0, "tracker: ping failed or timed out, disconnecting");
                    break;
                }
            }
            out = rx.recv() => {
                let Some(text) = out else { break };
                let sent = tokio::time::timeout(send_timeout, socket.send(Message::Text(text.into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    info!(conn = conn.0, "tracker: send failed or timed out, disconnecting");
                    break;
                }
            }
            msg = socket.recv() => {
                if matches!(msg, Some(Ok(_))) {
                    idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                }
                if !svc.on_message(conn, msg) {
                    break;
                }
            }
        }
    }
    svc.disconnect(conn);
}

/// A router for `/tracker` with default limits. Starts the expiry tick if called
/// inside a Tokio runtime (it stops when the router is dropped).
pub fn router() -> Router {
    let svc = TrackerService::new(TrackerConfig::default());
    if tokio::runtime::Handle::try_current().is_ok() {
        svc.spawn_ticker();
    }
    svc.router()
}

/// Serves the tracker on `listener` until `shutdown` resolves (axum's own accept
/// loop, no connection bounds: for tests and embedding). The binary's listeners
/// (`mediamesh tracker`, `serve`) go through `service::serve`, which bounds
/// connections, per-IP shares and silence, and keeps an upgraded WebSocket's slot.
pub async fn serve(
    listener: TcpListener,
    cfg: TrackerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let svc = TrackerService::new(cfg);
    let ticker = svc.spawn_ticker();
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, path = TRACKER_PATH, "tracker: listening");
    }
    let app = svc
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let res = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    ticker.abort();
    res
}
