//! The one UDP socket all WHEP sessions share, and the routing of what arrives on it:
//! a STUN Binding request goes to the session whose ICE ufrag it names (and teaches
//! us its source address); anything else goes to the session last seen at its source
//! address. Unclaimed datagrams are counted and dropped. Each session has a bounded
//! queue; a full queue drops the datagram (as the network would).
//!
//! WHIP publishers use the same socket and routing (`crate::whip`).
//!
//! One port for every viewer (like str0m's multi-client example and most SFUs): one
//! firewall rule, no port range to size. Not the WebRTC work (sessions do that).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::stun;

/// Largest datagram we read (WebRTC keeps to the path MTU).
pub const MAX_DATAGRAM: usize = 2048;
/// Datagrams queued towards one session before more are dropped.
pub const SESSION_QUEUE: usize = 256;
/// Source addresses one session may be known by (ICE may try a few).
const ADDRS_PER_SESSION: usize = 8;

/// One received datagram.
#[derive(Debug)]
pub struct Datagram {
    pub source: SocketAddr,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Table {
    by_ufrag: HashMap<String, u64>,
    by_addr: HashMap<SocketAddr, u64>,
    sessions: HashMap<u64, (mpsc::Sender<Datagram>, Vec<SocketAddr>, String)>,
}

/// The shared socket and its routing table.
pub struct Mux {
    pub socket: Arc<UdpSocket>,
    pub local: SocketAddr,
    table: Mutex<Table>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Mux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mux").field("local", &self.local).finish()
    }
}

impl Mux {
    pub fn new(socket: UdpSocket) -> std::io::Result<Arc<Self>> {
        let local = socket.local_addr()?;
        Ok(Arc::new(Self {
            socket: Arc::new(socket),
            local,
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(1),
        }))
    }

    /// A session id not used before on this socket (WHEP viewers and WHIP
    /// publishers share it).
    pub fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Routes datagrams for session `id` (ICE ufrag `ufrag`) to the returned queue.
    pub fn register(&self, id: u64, ufrag: &str) -> mpsc::Receiver<Datagram> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut t = self.table.lock();
        t.by_ufrag.insert(ufrag.to_string(), id);
        t.sessions.insert(id, (tx, Vec::new(), ufrag.to_string()));
        rx
    }

    pub fn unregister(&self, id: u64) {
        let mut t = self.table.lock();
        if let Some((_, addrs, ufrag)) = t.sessions.remove(&id) {
            t.by_ufrag.remove(&ufrag);
            for a in addrs {
                if t.by_addr.get(&a) == Some(&id) {
                    t.by_addr.remove(&a);
                }
            }
        }
    }

    /// Which session `data` from `source` is for, learning `source` from a Binding
    /// request.
    fn route(&self, source: SocketAddr, data: &[u8]) -> Option<mpsc::Sender<Datagram>> {
        let mut t = self.table.lock();
        if let Some(ufrag) = stun::local_ufrag(data) {
            let id = *t.by_ufrag.get(ufrag)?;
            let previous = t.by_addr.get(&source).copied();
            if previous != Some(id) {
                let (_, addrs, _) = t.sessions.get_mut(&id)?;
                if addrs.len() >= ADDRS_PER_SESSION {
                    let old = addrs.remove(0);
                    t.by_addr.remove(&old);
                }
                if let Some((_, addrs, _)) = t.sessions.get_mut(&id) {
                    addrs.push(source);
                }
                if let Some(p) = previous {
                    if let Some((_, addrs, _)) = t.sessions.get_mut(&p) {
                        addrs.retain(|a| *a != source);
                    }
                }
                t.by_addr.insert(source, id);
            }
            return t.sessions.get(&id).map(|s| s.0.clone());
        }
        let id = t.by_addr.get(&source)?;
        t.sessions.get(id).map(|s| s.0.clone())
    }

    /// Reads the socket until it fails for good (the task is aborted on shutdown).
    pub async fn read_loop(self: Arc<Self>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let unrouted = metrics::counter!("mediamesh_whep_unrouted_datagrams_total");
        loop {
            let (n, source) = match self.socket.recv_from(&mut buf).await {
                Ok(r) => r,
                // ICMP port unreachable from a viewer that left, and friends.
                Err(e) => {
                    tracing::trace!(error = %e, "whep udp recv");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let data = &buf[..n];
            match self.route(source, data) {
                Some(tx) => {
                    let _ = tx.try_send(Datagram {
                        source,
                        data: data.to_vec(),
                    });
                }
                None => unrouted.increment(1),
            }
        }
    }

    /// Sends one datagram; a full socket buffer makes the calling session wait for
    /// room (its frames queue in the fan-out meanwhile, and it skips to the next
    /// keyframe if it falls a whole queue behind) instead of losing packets.
    pub async fn send(&self, dest: SocketAddr, data: &[u8]) {
        if let Err(e) = self.socket.send_to(data, dest).await {
            tracing::trace!(error = %e, %dest, "whep udp send");
        }
    }
}
