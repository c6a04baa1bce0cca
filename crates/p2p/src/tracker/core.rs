//! Sans-IO tracker state: swarms, connections, and the handling of one frame.
//!
//! Callers feed frames with [`Tracker::handle_frame`] and get back the messages to
//! send, as `(connection, JSON text)` pairs; time is always passed in. This module
//! never touches sockets, clocks, tasks or metrics — that is [`super::ws`]'s job.
//!
//! Semantics follow npm `bittorrent-tracker`'s WebSocket server: a peer is a seeder
//! once it announces `left == 0` (or `completed`), every announce except an answer
//! gets `{action, interval, info_hash, complete, incomplete}` back, offers go to
//! random other peers of the swarm (one offer per peer), and answers go to
//! `to_peer_id`. On top of that: a peer id belongs to the connection that announced
//! it first, every collection is bounded by [`TrackerConfig`], and idle peers expire.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

use rand::seq::IteratorRandom;

use super::config::TrackerConfig;
use super::error::Reject;
use super::id::Id20;
use super::ratelimit::TokenBucket;
use super::region::regional_key;
use super::wire::{self, Event, OneOrMany, RawRequest};

/// Identifies one client connection (one WebSocket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// One message to send: JSON `text` to connection `conn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub conn: ConnId,
    pub text: String,
}

/// A message for a peer that another tracker of the fleet holds: the shell hands it
/// to its [`super::ws::Relay`], which delivers it to tracker `node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutgoing {
    pub node: String,
    pub swarm: Id20,
    pub to_peer: Id20,
    pub text: String,
}

/// A local peer joined (`present`) or left a swarm; with sharing on, the shell tells
/// the other trackers so their peers can send offers here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerChange {
    pub swarm: Id20,
    pub peer: Id20,
    pub present: bool,
}

/// What handling one frame produced.
#[derive(Debug, Default)]
pub struct Handled {
    /// Messages to send, in order.
    pub out: Vec<Outgoing>,
    /// The frame was an accepted announce.
    pub announced: bool,
    /// Offers forwarded to other peers.
    pub offers_relayed: usize,
    /// Answers forwarded to their `to_peer_id`.
    pub answers_relayed: usize,
    /// Why (part of) the frame was refused, if it was.
    pub rejected: Option<Reject>,
    /// Messages for peers held by other trackers (only with sharing on).
    pub remote_out: Vec<RemoteOutgoing>,
    /// Bytes the announcing peer says it uploaded to other peers since its last
    /// announce (from the `uploaded` field; client-reported, so fit for a
    /// dashboard, not for billing).
    pub uploaded_bytes: u64,
}

#[derive(Debug)]
struct Peer {
    conn: ConnId,
    seeder: bool,
    last_seen: Instant,
    /// The last `uploaded` it announced (bytes it handed to other peers).
    uploaded: u64,
}

/// A peer another tracker of the fleet holds.
#[derive(Debug)]
struct RemotePeer {
    node: String,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Swarm {
    peers: HashMap<Id20, Peer>,
    complete: usize,
    /// Peers of other trackers (fleet scale-out), offer targets like local ones.
    remote: HashMap<Id20, RemotePeer>,
}

/// Where an offer goes.
enum Target {
    Local(ConnId),
    Remote(String, Id20),
}

impl Swarm {
    fn incomplete(&self) -> usize {
        self.peers.len().saturating_sub(self.complete)
    }
}

#[derive(Debug)]
struct Conn {
    /// (swarm key, peer id) pairs this connection announced.
    peers: HashSet<(Id20, Id20)>,
    /// The client's region, if the operator partitions swarms by region.
    region: Option<String>,
    bucket: TokenBucket,
}

/// The tracker state machine.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackerConfig,
    swarms: HashMap<Id20, Swarm>,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    peers: usize,
    /// Fleet scale-out: record [`PeerChange`]s for the relay.
    sharing: bool,
    changes: Vec<PeerChange>,
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        Tracker {
            cfg,
            swarms: HashMap::new(),
            conns: HashMap::new(),
            next_conn: 1,
            peers: 0,
            sharing: false,
            changes: Vec::new(),
        }
    }

    /// Turns on fleet sharing: local peer changes are recorded for
    /// [`Tracker::drain_changes`] and offers may go to remote peers.
    pub fn set_sharing(&mut self, on: bool) {
        self.sharing = on;
        if !on {
            self.changes.clear();
        }
    }

    /// Local peer joins and leaves since the last call (empty unless sharing).
    pub fn drain_changes(&mut self) -> Vec<PeerChange> {
        std::mem::take(&mut self.changes)
    }

    /// Every local peer as `(swarm, peer)` (to tell a tracker that just joined).
    pub fn local_peers(&self) -> Vec<(Id20, Id20)> {
        self.swarms
            .iter()
            .flat_map(|(ih, s)| s.peers.keys().map(move |p| (*ih, *p)))
            .collect()
    }

    /// Peers per swarm connected to this tracker (not the ones other trackers hold),
    /// swarms without a local peer left out.
    pub fn local_swarm_counts(&self) -> Vec<(Id20, usize)> {
        self.swarms
            .iter()
            .filter(|(_, s)| !s.peers.is_empty())
            .map(|(ih, s)| (*ih, s.peers.len()))
            .collect()
    }

    /// Learns (or forgets) a peer that tracker `node` holds. Bounded like local
    /// peers; a remote id never displaces a local one.
    pub fn remote_peer(
        &mut self,
        swarm: Id20,
        peer: Id20,
        node: &str,
        present: bool,
        now: Instant,
    ) {
        if !present {
            if let Some(s) = self.swarms.get_mut(&swarm) {
                s.remote.remove(&peer);
                if s.peers.is_empty() && s.remote.is_empty() {
                    self.swarms.remove(&swarm);
                }
            }
            return;
        }
        if !self.swarms.contains_key(&swarm) && self.swarms.len() >= self.cfg.max_swarms {
            return;
        }
        let max = self.cfg.max_peers_per_swarm;
        let s = self.swarms.entry(swarm).or_default();
        if s.peers.contains_key(&peer) || (!s.remote.contains_key(&peer) && s.remote.len() >= max) {
            return;
        }
        s.remote.insert(
            peer,
            RemotePeer {
                node: node.chars().take(128).collect(),
                last_seen: now,
            },
        );
    }

    /// A message another tracker relayed for local peer `to_peer` of `swarm`.
    pub fn deliver(&self, swarm: Id20, to_peer: Id20, text: String) -> Option<Outgoing> {
        let conn = self.swarms.get(&swarm)?.peers.get(&to_peer)?.conn;
        Some(Outgoing { conn, text })
    }

    /// Replaces the set of swarms where the operator turned P2P off.
    pub fn set_disabled_swarms(&mut self, swarms: std::collections::HashSet<Id20>) {
        self.cfg.disabled_swarms = swarms;
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Peers over all swarms.
    pub fn peer_count(&self) -> usize {
        self.peers
    }

    pub fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// `(complete, incomplete)` of a swarm, if it exists.
    pub fn swarm_stats(&self, info_hash: &Id20) -> Option<(usize, usize)> {
        self.swarms
            .get(info_hash)
            .map(|s| (s.complete, s.incomplete()))
    }

    /// Registers a new connection whose address is unknown (no region).
    pub fn open(&mut self, now: Instant) -> ConnId {
        self.open_from(now, None)
    }

    /// Registers a new connection from `addr`; its region (if the operator maps
    /// regions) decides which swarms it joins.
    pub fn open_from(&mut self, now: Instant, addr: Option<IpAddr>) -> ConnId {
        let region = addr
            .and_then(|ip| self.cfg.regions.region_of(ip))
            .map(str::to_string);
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let bucket = TokenBucket::new(self.cfg.rate_burst, now);
        self.conns.insert(
            id,
            Conn {
                peers: HashSet::new(),
                region,
                bucket,
            },
        );
        id
    }

    /// Forgets a connection and every peer it announced. Returns the peers removed.
    /// Closing an unknown (or already closed) connection does nothing.
    pub fn close(&mut self, conn: ConnId) -> usize {
        let Some(c) = self.conns.remove(&conn) else {
            return 0;
        };
        let n = c.peers.len();
        for (ih, pid) in c.peers {
            self.drop_from_swarm(ih, pid);
        }
        n
    }

    /// Expires peers not heard from for [`TrackerConfig::peer_ttl`]. Returns how many.
    pub fn tick(&mut self, now: Instant) -> usize {
        let ttl = self.cfg.peer_ttl();
        let mut expired = Vec::new();
        for (ih, swarm) in &self.swarms {
            for (pid, p) in &swarm.peers {
                if now.saturating_duration_since(p.last_seen) > ttl {
                    expired.push((*ih, *pid, p.conn));
                }
            }
        }
        for &(ih, pid, conn) in &expired {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.peers.remove(&(ih, pid));
            }
            self.drop_from_swarm(ih, pid);
        }
        self.swarms.retain(|_, s| {
            s.remote
                .retain(|_, r| now.saturating_duration_since(r.last_seen) <= ttl);
            !(s.peers.is_empty() && s.remote.is_empty())
        });
        expired.len()
    }

    /// Handles one text (or binary) frame from `conn`.
    pub fn handle_frame(&mut self, conn: ConnId, frame: &[u8], now: Instant) -> Handled {
        let mut h = Handled::default();
        let Some(c) = self.conns.get_mut(&conn) else {
            h.rejected = Some(Reject::UnknownConnection);
            return h;
        };
        if !c
            .bucket
            .try_take(self.cfg.rate_per_sec, self.cfg.rate_burst, now)
        {
            return fail(h, conn, Reject::RateLimited, None, None);
        }
        if frame.len() > self.cfg.max_message_bytes {
            return fail(h, conn, Reject::TooLarge, None, None);
        }
        let req: RawRequest = match serde_json::from_slice(frame) {
            Ok(r) => r,
            Err(_) => return fail(h, conn, Reject::InvalidJson, None, None),
        };
        match req.action.as_deref() {
            Some("announce") => match self.announce(conn, req, now, &mut h) {
                Ok(()) => h,
                Err((e, ih)) => fail(h, conn, e, Some("announce"), ih),
            },
            Some("scrape") => match self.scrape(conn, req) {
                Ok(text) => {
                    h.out.push(Outgoing { conn, text });
                    h
                }
                Err(e) => fail(h, conn, e, Some("scrape"), None),
            },
            _ => fail(h, conn, Reject::InvalidAction, None, None),
        }
    }

    fn announce(
        &mut self,
        conn: ConnId,
        req: RawRequest,
        now: Instant,
        h: &mut Handled,
    ) -> Result<(), (Reject, Option<Id20>)> {
        let ih = match &req.info_hash {
            Some(OneOrMany::One(s)) => Id20::from_binary_str(s),
            _ => None,
        }
        .ok_or((Reject::InvalidInfoHash, None))?;
        let with_ih = |e: Reject| (e, Some(ih));
        if self.cfg.disabled_swarms.contains(&ih) {
            return Err(with_ih(Reject::P2pOff));
        }
        // Swarm bookkeeping uses the regional key; messages carry the client's hash.
        let key = self.swarm_key(conn, ih);
        let pid = wire::id_field(req.peer_id.as_deref(), Reject::InvalidPeerId).map_err(with_ih)?;
        let answer = req.answer.as_ref().filter(|a| !a.is_null());
        let answer_to = match answer {
            Some(a) => {
                let to = wire::id_field(req.to_peer_id.as_deref(), Reject::InvalidToPeerId)
                    .map_err(with_ih)?;
                let offer_id = req
                    .offer_id
                    .as_deref()
                    .ok_or(Reject::InvalidOfferId)
                    .map_err(with_ih)?;
                Some((to, a, offer_id))
            }
            None => None,
        };
        let event = Event::parse(req.event.as_deref()).map_err(with_ih)?;
        let left0 = wire::left_is_zero(req.left.as_ref());

        let uploaded = wire::byte_count(req.uploaded.as_ref());
        if event == Event::Stopped {
            h.uploaded_bytes = self.uploaded(conn, key, pid, uploaded);
            self.stop(conn, key, pid).map_err(with_ih)?;
        } else {
            self.upsert(conn, key, pid, event, left0, now)
                .map_err(with_ih)?;
            h.uploaded_bytes = self.uploaded(conn, key, pid, uploaded);
        }
        h.announced = true;
        let (complete, incomplete) = self.swarm_stats(&key).unwrap_or((0, 0));
        if answer_to.is_none() {
            let interval = self.cfg.interval.as_secs();
            let text = wire::announce_reply(ih, complete, incomplete, interval);
            h.out.push(Outgoing { conn, text });
        }
        if event != Event::Stopped {
            if let Some(offers) = &req.offers {
                let n = offers
                    .len()
                    .min(self.cfg.max_offers_per_announce)
                    .min(wire::numwant(req.numwant.as_ref()).unwrap_or(usize::MAX));
                let targets = self.pick_peers(key, pid, n);
                for (to, offer) in targets.into_iter().zip(offers) {
                    let text = wire::relayed_offer(ih, pid, &offer.offer, &offer.offer_id);
                    match to {
                        Target::Local(conn) => h.out.push(Outgoing { conn, text }),
                        Target::Remote(node, to_peer) => h.remote_out.push(RemoteOutgoing {
                            node,
                            swarm: key,
                            to_peer,
                            text,
                        }),
                    }
                    h.offers_relayed += 1;
                }
            }
        }
        if let Some((to, answer, offer_id)) = answer_to {
            let swarm = self.swarms.get(&key);
            let target = swarm.and_then(|s| s.peers.get(&to)).map(|p| p.conn);
            let remote = swarm
                .and_then(|s| s.remote.get(&to))
                .map(|r| r.node.clone());
            match (target, remote) {
                (Some(to_conn), _) => {
                    let text = wire::relayed_answer(ih, pid, answer, offer_id);
                    h.out.push(Outgoing {
                        conn: to_conn,
                        text,
                    });
                    h.answers_relayed += 1;
                }
                (None, Some(node)) => {
                    let text = wire::relayed_answer(ih, pid, answer, offer_id);
                    h.remote_out.push(RemoteOutgoing {
                        node,
                        swarm: key,
                        to_peer: to,
                        text,
                    });
                    h.answers_relayed += 1;
                }
                // bittorrent-tracker only logs this; the answerer gets no reply.
                (None, None) => h.rejected = Some(Reject::UnknownPeer),
            }
        }
        Ok(())
    }

    /// Takes `pid`'s new `uploaded` figure; returns the bytes it adds to the last one
    /// (0 for a first report of 0, a figure that went down, or a peer not `conn`'s).
    fn uploaded(&mut self, conn: ConnId, ih: Id20, pid: Id20, reported: Option<u64>) -> u64 {
        let Some(n) = reported else { return 0 };
        let Some(p) = self.swarms.get_mut(&ih).and_then(|s| s.peers.get_mut(&pid)) else {
            return 0;
        };
        if p.conn != conn {
            return 0;
        }
        let added = n.saturating_sub(p.uploaded);
        p.uploaded = n;
        added
    }

    /// Adds or refreshes `pid` in swarm `ih` on behalf of `conn`.
    fn upsert(
        &mut self,
        conn: ConnId,
        ih: Id20,
        pid: Id20,
        event: Event,
        left0: bool,
        now: Instant,
    ) -> Result<(), Reject> {
        let becomes_seeder = left0 || event == Event::Completed;
        if let Some(swarm) = self.swarms.get_mut(&ih) {
            if let Some(p) = swarm.peers.get_mut(&pid) {
                if p.conn != conn {
                    return Err(Reject::PeerIdTaken);
                }
                p.last_seen = now;
                if becomes_seeder && !p.seeder {
                    p.seeder = true;
                    swarm.complete += 1;
                }
                return Ok(());
            }
            if swarm.peers.len() >= self.cfg.max_peers_per_swarm {
                return Err(Reject::SwarmFull);
            }
        } else if self.swarms.len() >= self.cfg.max_swarms {
            return Err(Reject::TooManySwarms);
        }
        let c = self.conns.get_mut(&conn).ok_or(Reject::UnknownConnection)?;
        if c.peers.len() >= self.cfg.max_peers_per_connection {
            return Err(Reject::TooManyPeersOnConnection);
        }
        c.peers.insert((ih, pid));
        let swarm = self.swarms.entry(ih).or_default();
        swarm.peers.insert(
            pid,
            Peer {
                conn,
                seeder: becomes_seeder,
                last_seen: now,
                uploaded: 0,
            },
        );
        if becomes_seeder {
            swarm.complete += 1;
        }
        // A local peer shadows a remote one of the same id.
        swarm.remote.remove(&pid);
        self.peers += 1;
        if self.sharing {
            self.changes.push(PeerChange {
                swarm: ih,
                peer: pid,
                present: true,
            });
        }
        Ok(())
    }

    /// `stopped`: removes `pid` from `ih` if `conn` owns it; unknown peers are a no-op.
    fn stop(&mut self, conn: ConnId, ih: Id20, pid: Id20) -> Result<(), Reject> {
        let owner = self
            .swarms
            .get(&ih)
            .and_then(|s| s.peers.get(&pid))
            .map(|p| p.conn);
        match owner {
            None => Ok(()),
            Some(o) if o != conn => Err(Reject::PeerIdTaken),
            Some(_) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.peers.remove(&(ih, pid));
                }
                self.drop_from_swarm(ih, pid);
                Ok(())
            }
        }
    }

    /// Removes a peer from its swarm (and the swarm if it empties). Leaves the
    /// owning connection's set alone: callers handle that.
    fn drop_from_swarm(&mut self, ih: Id20, pid: Id20) {
        let Some(swarm) = self.swarms.get_mut(&ih) else {
            return;
        };
        if let Some(p) = swarm.peers.remove(&pid) {
            if p.seeder {
                swarm.complete = swarm.complete.saturating_sub(1);
            }
            self.peers = self.peers.saturating_sub(1);
            if self.sharing {
                self.changes.push(PeerChange {
                    swarm: ih,
                    peer: pid,
                    present: false,
                });
            }
        }
        if swarm.peers.is_empty() && swarm.remote.is_empty() {
            self.swarms.remove(&ih);
        }
    }

    /// Up to `n` random peers in `ih` other than `pid`: local ones, and with sharing
    /// on, those of other trackers.
    fn pick_peers(&self, ih: Id20, pid: Id20, n: usize) -> Vec<Target> {
        let Some(swarm) = self.swarms.get(&ih) else {
            return Vec::new();
        };
        let local = swarm
            .peers
            .iter()
            .filter(|(id, _)| **id != pid)
            .map(|(_, p)| Target::Local(p.conn));
        let remote = swarm
            .remote
            .iter()
            .filter(|(id, _)| self.sharing && **id != pid)
            .map(|(id, r)| Target::Remote(r.node.clone(), *id));
        local
            .chain(remote)
            .choose_multiple(&mut rand::thread_rng(), n)
    }

    /// The swarm a connection joins for `ih`: per region when regions are mapped.
    fn swarm_key(&self, conn: ConnId, ih: Id20) -> Id20 {
        match self.conns.get(&conn).and_then(|c| c.region.as_deref()) {
            Some(region) => regional_key(ih, region),
            None => ih,
        }
    }

    fn scrape(&self, conn: ConnId, req: RawRequest) -> Result<String, Reject> {
        let max = self.cfg.max_scrape_hashes;
        let hashes: Vec<Id20> = match &req.info_hash {
            None => self.swarms.keys().take(max).copied().collect(),
            Some(OneOrMany::One(s)) => {
                vec![Id20::from_binary_str(s).ok_or(Reject::InvalidInfoHash)?]
            }
            Some(OneOrMany::Many(v)) => {
                if v.len() > max {
                    return Err(Reject::TooManyScrapeHashes);
                }
                v.iter()
                    .map(|s| Id20::from_binary_str(s).ok_or(Reject::InvalidInfoHash))
                    .collect::<Result<_, _>>()?
            }
        };
        let files: Vec<(Id20, usize, usize)> = hashes
            .into_iter()
            .map(|ih| {
                let (c, i) = self
                    .swarm_stats(&self.swarm_key(conn, ih))
                    .unwrap_or((0, 0));
                (ih, c, i)
            })
            .collect();
        Ok(wire::scrape_reply(&files, self.cfg.interval.as_secs()))
    }
}

fn fail(
    mut h: Handled,
    conn: ConnId,
    reason: Reject,
    action: Option<&str>,
    info_hash: Option<Id20>,
) -> Handled {
    h.rejected = Some(reason);
    h.out.push(Outgoing {
        conn,
        text: wire::failure(reason, action, info_hash),
    });
    h
}
