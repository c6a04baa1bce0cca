//! Sans-IO tracker client: frames and clock in, [`Action`]s out. Decides when to
//! (re)connect and re-announce, how many offers to make, which relayed offers to
//! answer and which answers belong to our pending offers.
//!
//! Not WebRTC (the shell makes SDP), not the socket. One swarm (info hash) per core.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::message::{self, BadMessage, Relayed};
use crate::tracker::Id20;

/// What the tracker client is asked to do.
#[derive(Debug, Clone)]
pub struct SignalConfig {
    pub info_hash: Id20,
    pub peer_id: Id20,
    /// Offers per announce (bittorrent-tracker caps this at 5; so do we by default).
    pub numwant: usize,
    /// Links (open or being set up) we keep at most.
    pub max_peers: usize,
    /// Until the tracker says otherwise.
    pub default_interval: Duration,
    /// A pending offer nobody answered is dropped after this (bittorrent-tracker: 50 s).
    pub offer_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl SignalConfig {
    pub fn new(info_hash: Id20, peer_id: Id20) -> Self {
        SignalConfig {
            info_hash,
            peer_id,
            numwant: 5,
            max_peers: 20,
            default_interval: Duration::from_secs(120),
            offer_timeout: Duration::from_secs(50),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
        }
    }
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open the WebSocket to the tracker.
    Connect,
    /// Send this text frame.
    Send(String),
    /// Create this many offers, then call [`SignalCore::offers_made`].
    MakeOffers(usize),
    /// Answer this remote offer, then call [`SignalCore::answer_made`].
    AnswerOffer(Relayed),
    /// This answer is for our pending offer `offer_id`: complete that link.
    UseAnswer(Relayed),
    /// Forget this pending offer (expired).
    DropOffer(Id20),
}

/// Things counted and ignored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SignalStats {
    pub bad_frames: u64,
    pub unknown_answers: u64,
    pub refused_offers: u64,
    pub failures: u64,
    pub announces: u64,
    pub reconnects: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Conn {
    Down { retry_at: Instant },
    Connecting,
    Up,
}

/// The state machine.
#[derive(Debug)]
pub struct SignalCore {
    cfg: SignalConfig,
    conn: Conn,
    backoff: Duration,
    interval: Duration,
    next_announce: Option<Instant>,
    making_offers: bool,
    started_sent: bool,
    stopped: bool,
    /// offer_id -> expiry
    pending: HashMap<Id20, Instant>,
    /// peers we have a link with (or are setting one up)
    peers: HashSet<Id20>,
    stats: SignalStats,
    /// Bytes uploaded to peers of this swarm so far, sent in every announce.
    uploaded: u64,
}

impl SignalCore {
    pub fn new(cfg: SignalConfig, now: Instant) -> Self {
        SignalCore {
            interval: cfg.default_interval,
            backoff: cfg.reconnect_min,
            cfg,
            conn: Conn::Down { retry_at: now },
            next_announce: None,
            making_offers: false,
            started_sent: false,
            stopped: false,
            pending: HashMap::new(),
            peers: HashSet::new(),
            stats: SignalStats::default(),
            uploaded: 0,
        }
    }

    /// Bytes uploaded to peers of this swarm so far (the next announce says so).
    pub fn set_uploaded(&mut self, bytes: u64) {
        self.uploaded = bytes;
    }

    pub fn stats(&self) -> &SignalStats {
        &self.stats
    }

    pub fn config(&self) -> &SignalConfig {
        &self.cfg
    }

    fn room(&self) -> usize {
        self.cfg
            .max_peers
            .saturating_sub(self.peers.len() + self.pending.len())
    }

    /// The WebSocket is up: announce at once.
    pub fn connected(&mut self, now: Instant) {
        self.conn = Conn::Up;
        self.backoff = self.cfg.reconnect_min;
        self.next_announce = Some(now);
    }

    /// The WebSocket failed or closed: retry after a doubling back-off.
    pub fn disconnected(&mut self, now: Instant) {
        if self.conn == Conn::Up || self.conn == Conn::Connecting {
            self.stats.reconnects += 1;
        }
        self.conn = Conn::Down {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.cfg.reconnect_max);
        self.next_announce = None;
        self.making_offers = false;
    }

    /// A link with `peer` went away; it may connect again later.
    pub fn peer_gone(&mut self, peer: &Id20) {
        self.peers.remove(peer);
    }

    /// Timers: reconnect, re-announce, expire offers.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        let expired: Vec<Id20> = self
            .pending
            .iter()
            .filter(|(_, &t)| t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.pending.remove(&id);
            out.push(Action::DropOffer(id));
        }
        match self.conn {
            Conn::Down { retry_at } if retry_at <= now => {
                self.conn = Conn::Connecting;
                out.push(Action::Connect);
            }
            Conn::Up if !self.making_offers && self.next_announce.is_some_and(|t| t <= now) => {
                let n = self.room().min(self.cfg.numwant);
                self.making_offers = true;
                self.next_announce = None;
                out.push(Action::MakeOffers(n));
            }
            _ => {}
        }
        out
    }

    /// When [`SignalCore::poll`] next has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        let conn = match self.conn {
            Conn::Down { retry_at } => Some(retry_at),
            Conn::Up if !self.making_offers => self.next_announce,
            _ => None,
        };
        conn.into_iter().chain(self.pending.values().copied()).min()
    }

    /// The shell made offers (possibly fewer than asked, possibly none): announce them.
    pub fn offers_made(&mut self, offers: &[(Id20, String)], now: Instant) -> Vec<Action> {
        self.making_offers = false;
        if self.conn != Conn::Up || self.stopped {
            return offers
                .iter()
                .map(|(id, _)| Action::DropOffer(*id))
                .collect();
        }
        for (id, _) in offers {
            self.pending.insert(*id, now + self.cfg.offer_timeout);
        }
        let event = (!self.started_sent).then_some("started");
        self.started_sent = true;
        self.stats.announces += 1;
        self.next_announce = Some(now + self.interval);
        vec![Action::Send(message::announce(
            &self.cfg.info_hash,
            &self.cfg.peer_id,
            offers.len(),
            event,
            offers,
            self.uploaded,
        ))]
    }

    /// The shell answered `to`'s offer.
    pub fn answer_made(&mut self, to: &Id20, offer_id: &Id20, sdp: &str) -> Vec<Action> {
        vec![Action::Send(message::answer(
            &self.cfg.info_hash,
            &self.cfg.peer_id,
            to,
            offer_id,
            sdp,
        ))]
    }

    /// The shell could not use an offer/answer from `peer` (bad SDP): forget it.
    pub fn link_failed(&mut self, peer: &Id20) {
        self.peers.remove(peer);
    }

    /// One text frame from the tracker.
    pub fn frame(&mut self, text: &str, now: Instant) -> Vec<Action> {
        let msg = match message::parse(text, &self.cfg.info_hash, &self.cfg.peer_id) {
            Ok(m) => m,
            Err(BadMessage::FromSelf | BadMessage::OtherSwarm) => return Vec::new(),
            Err(e) => {
                self.stats.bad_frames += 1;
                tracing::debug!(error = %e, "tracker frame ignored");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        if let Some(f) = msg.failure {
            self.stats.failures += 1;
            tracing::warn!(reason = %f, "tracker refused announce");
        }
        if let Some(w) = msg.warning {
            tracing::info!(warning = %w, "tracker warning");
        }
        if let Some(secs) = msg.interval {
            let secs = secs.clamp(5, 3600);
            self.interval = Duration::from_secs(secs);
            if let Some(t) = self.next_announce.as_mut() {
                *t = (*t).min(now + self.interval);
            }
        }
        if let Some(offer) = msg.offer {
            if self.peers.contains(&offer.from) || self.room() == 0 {
                self.stats.refused_offers += 1;
            } else {
                self.peers.insert(offer.from);
                out.push(Action::AnswerOffer(offer));
            }
        }
        if let Some(answer) = msg.answer {
            if self.pending.remove(&answer.offer_id).is_none() {
                self.stats.unknown_answers += 1;
            } else if self.peers.contains(&answer.from) {
                // Already linked (both sides offered to each other): keep one link.
                self.stats.refused_offers += 1;
                out.push(Action::DropOffer(answer.offer_id));
            } else {
                self.peers.insert(answer.from);
                out.push(Action::UseAnswer(answer));
            }
        }
        out
    }

    /// Shutting down: the `stopped` announce (if connected); nothing more afterwards.
    pub fn stop(&mut self) -> Vec<Action> {
        self.stopped = true;
        let mut out: Vec<Action> = self
            .pending
            .drain()
            .map(|(id, _)| Action::DropOffer(id))
            .collect();
        if self.conn == Conn::Up {
            out.push(Action::Send(message::announce(
                &self.cfg.info_hash,
                &self.cfg.peer_id,
                0,
                Some("stopped"),
                &[],
                self.uploaded,
            )));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IH: Id20 = Id20([1; 20]);
    const ME: Id20 = Id20([2; 20]);

    fn core(now: Instant) -> SignalCore {
        let mut c = SignalConfig::new(IH, ME);
        c.max_peers = 3;
        c.numwant = 2;
        SignalCore::new(c, now)
    }

    fn relayed(kind: &str, from: u8, oid: u8) -> String {
        json!({"action":"announce","info_hash":IH.to_binary_string(),"peer_id":Id20([from;20]).to_binary_string(),
            "offer_id":Id20([oid;20]).to_binary_string(), kind: {"type": kind, "sdp": "v=0"}})
        .to_string()
    }

    #[test]
    fn connect_announce_with_offers_then_reannounce_at_interval() {
        let t0 = Instant::now();
        let mut c = core(t0);
        assert_eq!(c.poll(t0), vec![Action::Connect]);
        assert!(c.poll(t0).is_empty());
        c.connected(t0);
        assert_eq!(c.poll(t0), vec![Action::MakeOffers(2)]);
        let acts = c.offers_made(&[(Id20([7; 20]), "v=0".into())], t0);
        let Action::Send(s) = &acts[0] else {
            panic!("{acts:?}")
        };
        assert!(s.contains("\"event\":\"started\"") && s.contains("offer_id"));
        // Tracker says interval 30 s.
        let reply = json!({"action":"announce","interval":30,"info_hash":IH.to_binary_string()})
            .to_string();
        assert!(c.frame(&reply, t0).is_empty());
        assert!(c.poll(t0 + Duration::from_secs(29)).is_empty());
        // One offer pending, max 3 → 2 more wanted.
        assert_eq!(
            c.poll(t0 + Duration::from_secs(30)),
            vec![Action::MakeOffers(2)]
        );
        let acts = c.offers_made(&[], t0 + Duration::from_secs(30));
        let Action::Send(s) = &acts[0] else { panic!() };
        assert!(!s.contains("started"));
        // The first offer expires at 50 s.
        assert_eq!(
            c.poll(t0 + Duration::from_secs(51)),
            vec![Action::DropOffer(Id20([7; 20]))]
        );
    }

    #[test]
    fn answers_matched_offers_answered_unknown_counted() {
        let t0 = Instant::now();
        let mut c = core(t0);
        c.poll(t0);
        c.connected(t0);
        c.poll(t0);
        c.offers_made(&[(Id20([7; 20]), "v=0".into())], t0);
        assert!(c.frame(&relayed("answer", 9, 8), t0).is_empty());
        assert_eq!(c.stats().unknown_answers, 1);
        assert!(
            matches!(&c.frame(&relayed("answer", 9, 7), t0)[..], [Action::UseAnswer(r)] if r.from == Id20([9;20]))
        );
        // Same answer again: offer no longer pending.
        assert!(c.frame(&relayed("answer", 9, 7), t0).is_empty());
        assert_eq!(c.stats().unknown_answers, 2);
        // An offer from an already-linked peer is refused; a new peer is answered.
        assert!(c.frame(&relayed("offer", 9, 1), t0).is_empty());
        assert!(matches!(
            &c.frame(&relayed("offer", 10, 1), t0)[..],
            [Action::AnswerOffer(_)]
        ));
        assert!(matches!(
            &c.frame(&relayed("offer", 11, 1), t0)[..],
            [Action::AnswerOffer(_)]
        ));
        // Full (3 peers).
        assert!(c.frame(&relayed("offer", 12, 1), t0).is_empty());
        assert_eq!(c.stats().refused_offers, 2);
        c.peer_gone(&Id20([10; 20]));
        assert!(matches!(
            &c.frame(&relayed("offer", 12, 1), t0)[..],
            [Action::AnswerOffer(_)]
        ));
        for junk in ["", "{", "[]", "{\"action\":\"announce\",\"offer\":{}}"] {
            assert!(c.frame(junk, t0).is_empty());
        }
        assert_eq!(c.stats().bad_frames, 4);
    }

    #[test]
    fn reconnect_backs_off_and_stop_sends_stopped() {
        let t0 = Instant::now();
        let mut c = core(t0);
        assert_eq!(c.poll(t0), vec![Action::Connect]);
        c.disconnected(t0);
        assert!(c.poll(t0).is_empty());
        assert_eq!(c.next_wake(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(c.poll(t0 + Duration::from_secs(1)), vec![Action::Connect]);
        c.disconnected(t0 + Duration::from_secs(1));
        assert_eq!(c.next_wake(), Some(t0 + Duration::from_secs(3)));
        c.connected(t0 + Duration::from_secs(3));
        let acts = c.stop();
        assert!(matches!(&acts[..], [Action::Send(s)] if s.contains("stopped")));
        assert!(c.poll(t0 + Duration::from_secs(100)).is_empty());
    }
}
