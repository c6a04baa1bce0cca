//! [`Swarm`]: the async shell around [`SignalCore`]. Owns the WebSocket
//! (tokio-tungstenite), makes offers/answers with [`crate::rtc`], and hands out
//! `(remote peer id, PeerLink)` pairs once their data channel is open.
//!
//! `ws://` and `wss://` (rustls; trust from [`super::tls`]: the system's roots, or
//! the configuration given to [`Swarm::join_with_tls`]). Not the decisions (see
//! `core`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::core::{Action, SignalConfig, SignalCore, SignalStats};
use crate::rtc::{LinkConfig, PeerLink, PendingOffer};
use crate::tracker::Id20;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on connecting to the tracker and on sending one frame.
const WS_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the `stopped` announce at shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how to join.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// `ws://host:port/path` of the tracker.
    pub tracker_url: String,
    pub signal: SignalConfig,
    pub link: LinkConfig,
    /// Bytes uploaded to peers of this swarm so far (the mesh adds to it); every
    /// announce reports it to the tracker as `uploaded`.
    pub uploaded: Arc<std::sync::atomic::AtomicU64>,
}

/// A joined swarm. Drop it or call [`Swarm::shutdown`] to leave.
pub struct Swarm {
    peers: mpsc::Receiver<(Id20, PeerLink)>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    stats: Arc<Mutex<SignalStats>>,
}

impl Swarm {
    /// Starts the tracker client (must run inside a tokio runtime).
    pub fn join(cfg: SwarmConfig) -> Swarm {
        Self::join_with_tls(cfg, None)
    }

    /// As [`Swarm::join`], trusting `tls` for a `wss://` tracker (`None`: the
    /// system's roots, [`super::tls::default_config`]).
    pub fn join_with_tls(cfg: SwarmConfig, tls: Option<Arc<rustls::ClientConfig>>) -> Swarm {
        let (peer_tx, peer_rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = oneshot::channel();
        let stats = Arc::new(Mutex::new(SignalStats::default()));
        let task = tokio::spawn(run(cfg, tls, peer_tx, stop_rx, stats.clone()));
        Swarm {
            peers: peer_rx,
            stop: Some(stop_tx),
            task: Some(task),
            stats,
        }
    }

    /// The next peer whose data channel is open; `None` once the swarm is left.
    pub async fn next_peer(&mut self) -> Option<(Id20, PeerLink)> {
        self.peers.recv().await
    }

    /// Counters of ignored input (bad frames, unknown answers, refused offers).
    pub fn stats(&self) -> SignalStats {
        self.stats.lock().clone()
    }

    /// Sends `stopped` to the tracker (bounded) and ends the client. Links already
    /// handed out stay up until dropped.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(STOP_TIMEOUT + WS_TIMEOUT, t).await;
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// State the shell keeps beside the core.
struct Shell {
    core: SignalCore,
    link_cfg: LinkConfig,
    pending: HashMap<Id20, PendingOffer>,
    /// Live links per peer (the driver holds the strong end).
    alive: HashMap<Id20, Weak<()>>,
    peer_tx: mpsc::Sender<(Id20, PeerLink)>,
    stats: Arc<Mutex<SignalStats>>,
}

impl Shell {
    fn new_guard(&mut self, peer: Id20) -> Arc<()> {
        let g = Arc::new(());
        self.alive.insert(peer, Arc::downgrade(&g));
        g
    }

    fn prune(&mut self) {
        let gone: Vec<Id20> = self
            .alive
            .iter()
            .filter(|(_, w)| w.strong_count() == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.alive.remove(&id);
            self.core.peer_gone(&id);
        }
    }

    /// Hands the link out once it is open; closes it (and so frees the slot) if not.
    fn hand_out(&self, peer: Id20, mut link: PeerLink, timeout: Duration) {
        let tx = self.peer_tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, link.wait_open()).await {
                Ok(Ok(_)) => {
                    let _ = tx.send((peer, link)).await;
                }
                _ => tracing::debug!(peer = %peer.to_hex(), "link did not open"),
            }
        });
    }

    /// Carries out actions; returns frames to send and whether to connect.
    fn act(&mut self, actions: Vec<Action>, frames: &mut Vec<String>) -> bool {
        let mut connect = false;
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Connect => connect = true,
                Action::Send(s) => frames.push(s),
                Action::DropOffer(id) => {
                    self.pending.remove(&id);
                }
                Action::MakeOffers(n) => {
                    let mut offers = Vec::with_capacity(n);
                    for _ in 0..n {
                        match PendingOffer::new(&self.link_cfg) {
                            Ok((p, sdp)) => {
                                let mut id = [0u8; 20];
                                rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut id);
                                self.pending.insert(Id20(id), p);
                                offers.push((Id20(id), sdp));
                            }
                            Err(e) => tracing::warn!(error = %e, "could not create offer"),
                        }
                    }
                    queue.extend(self.core.offers_made(&offers, Instant::now()));
                }
                Action::AnswerOffer(r) => {
                    let guard = self.new_guard(r.from);
                    match PeerLink::answer_guarded(&self.link_cfg, &r.sdp, Some(guard)) {
                        Ok((link, sdp)) => {
                            queue.extend(self.core.answer_made(&r.from, &r.offer_id, &sdp));
                            self.hand_out(r.from, link, self.link_cfg.connect_timeout);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "remote offer unusable");
                            self.alive.remove(&r.from);
                            self.core.link_failed(&r.from);
                        }
                    }
                }
                Action::UseAnswer(r) => {
                    let Some(p) = self.pending.remove(&r.offer_id) else {
                        continue;
                    };
                    let guard = self.new_guard(r.from);
                    match p.accept_answer_guarded(&r.sdp, Some(guard)) {
                        Ok(link) => self.hand_out(r.from, link, self.link_cfg.connect_timeout),
                        Err(e) => {
                            tracing::debug!(error = %e, "remote answer unusable");
                            self.alive.remove(&r.from);
                            self.core.link_failed(&r.from);
                        }
                    }
                }
            }
        }
        *self.stats.lock() = self.core.stats().clone();
        connect
    }
}

async fn connect(url: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> Option<Ws> {
    // A frame over the parser's limit is dropped by the WebSocket layer already.
    let limit = super::message::MAX_FRAME * 2;
    let ws_cfg = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let secure = url
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("wss://"));
    let connector = if secure {
        match tls.cloned().or_else(super::tls::default_config) {
            Some(c) => Some(Connector::Rustls(c)),
            None => {
                tracing::warn!(url, "no TLS configuration for a wss:// tracker");
                return None;
            }
        }
    } else {
        Some(Connector::Plain)
    };
    let fut = tokio_tungstenite::connect_async_tls_with_config(url, Some(ws_cfg), true, connector);
    match tokio::time::timeout(WS_TIMEOUT, fut).await {
        Ok(Ok((ws, _))) => Some(ws),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "tracker connect failed");
            None
        }
        Err(_) => {
            tracing::info!("tracker connect timed out");
            None
        }
    }
}

async fn send_all(ws: &mut Ws, frames: &mut Vec<String>) -> bool {
    for f in frames.drain(..) {
        match tokio::time::timeout(WS_TIMEOUT, ws.send(Message::text(f))).await {
            Ok(Ok(())) => {}
            _ => return false,
        }
    }
    true
}

async fn run(
    cfg: SwarmConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    peer_tx: mpsc::Sender<(Id20, PeerLink)>,
    mut stop_rx: oneshot::Receiver<()>,
    stats: Arc<Mutex<SignalStats>>,
) {
    let mut sh = Shell {
        core: SignalCore::new(cfg.signal.clone(), Instant::now()),
        link_cfg: cfg.link.clone(),
        pending: HashMap::new(),
        alive: HashMap::new(),
        peer_tx,
        stats,
    };
    let mut ws: Option<Ws> = None;
    let mut frames = Vec::new();
    // Re-check for closed links this often (they free slots for new peers).
    let mut prune_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        sh.prune();
        sh.core
            .set_uploaded(cfg.uploaded.load(std::sync::atomic::Ordering::Relaxed));
        let actions = sh.core.poll(Instant::now());
        if sh.act(actions, &mut frames) {
            ws = connect(&cfg.tracker_url, tls.as_ref()).await;
            match ws {
                Some(_) => sh.core.connected(Instant::now()),
                None => sh.core.disconnected(Instant::now()),
            }
            continue;
        }
        if let Some(w) = ws.as_mut() {
            if !send_all(w, &mut frames).await {
                ws = None;
                sh.core.disconnected(Instant::now());
                continue;
            }
        } else {
            frames.clear();
        }
        let wake = sh
            .core
            .next_wake()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = &mut stop_rx => break,
            _ = tokio::time::sleep_until(wake) => {}
            _ = prune_tick.tick() => {}
            msg = async { match ws.as_mut() { Some(w) => w.next().await, None => std::future::pending().await } } => {
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        let actions = sh.core.frame(t.as_str(), Instant::now());
                        sh.act(actions, &mut frames);
                    }
                    Some(Ok(Message::Binary(b))) => {
                        // bittorrent-tracker's server only sends text; accept UTF-8 anyway.
                        let actions = sh.core.frame(&String::from_utf8_lossy(&b), Instant::now());
                        sh.act(actions, &mut frames);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        ws = None;
                        sh.core.disconnected(Instant::now());
                    }
                }
            }
        }
    }
    let actions = sh.core.stop();
    sh.act(actions, &mut frames);
    if let Some(mut w) = ws {
        let _ = tokio::time::timeout(STOP_TIMEOUT, async {
            send_all(&mut w, &mut frames).await;
            let _ = w.close(None).await;
        })
        .await;
    }
}
