//! Tracker scale-out over Redis pub/sub: several `mediamesh tracker` processes share
//! swarms, so peers connected to different trackers still exchange offers.
//!
//! Each tracker has a node id. It publishes its local peers' joins and leaves on
//! `mediamesh:tracker:peers` and listens there to learn the other trackers' peers;
//! offers and answers for a peer another tracker holds go to that tracker's channel
//! `mediamesh:tracker:to:{node}`. A tracker that (re)connects asks the others to
//! publish their peers again (`resync`). Offers are relayed as the tracker would
//! relay them locally; nothing here decides protocol (that is `p2p::tracker::core`).
//!
//! Not persistent and best effort: while Redis is away each tracker serves its own
//! peers only, and remote peers expire like local ones.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use p2p::tracker::core::{PeerChange, RemoteOutgoing};
use p2p::tracker::ws::{Relay, TrackerService};
use p2p::tracker::Id20;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::registry::redis::PREFIX;

/// Most relay messages queued while Redis is slow; more are dropped (peers retry).
const QUEUE: usize = 4096;
/// Largest relayed message accepted from Redis.
const MAX_MESSAGE: usize = 64 * 1024;

/// What travels on the shared channel.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "t", rename_all = "lowercase")]
enum PeerMsg {
    Peer {
        node: String,
        swarm: String,
        peer: String,
        present: bool,
    },
    Resync {
        node: String,
    },
}

/// What travels on a tracker's own channel.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Direct {
    swarm: String,
    to_peer: String,
    text: String,
}

fn peers_channel() -> String {
    format!("{PREFIX}tracker:peers")
}

fn node_channel(node: &str) -> String {
    format!("{PREFIX}tracker:to:{node}")
}

enum Out {
    Publish(String, String),
}

/// The queueing side the tracker calls (never blocks).
struct Queue {
    node: String,
    tx: mpsc::Sender<Out>,
}

impl Relay for Queue {
    fn peer_changed(&self, c: PeerChange) {
        let msg = PeerMsg::Peer {
            node: self.node.clone(),
            swarm: c.swarm.to_hex(),
            peer: c.peer.to_hex(),
            present: c.present,
        };
        if let Ok(json) = serde_json::to_string(&msg) {
            let _ = self.tx.try_send(Out::Publish(peers_channel(), json));
        }
    }

    fn send(&self, m: RemoteOutgoing) {
        let d = Direct {
            swarm: m.swarm.to_hex(),
            to_peer: m.to_peer.to_hex(),
            text: m.text,
        };
        if let Ok(json) = serde_json::to_string(&d) {
            if self
                .tx
                .try_send(Out::Publish(node_channel(&m.node), json))
                .is_err()
            {
                ::metrics::counter!("mediamesh_tracker_relay_dropped_total").increment(1);
            }
        }
    }
}

/// A running relay; dropping it stops it.
pub struct RedisRelay {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RedisRelay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RedisRelay {
    /// Connects `tracker` to the fleet at `url` as `node`.
    pub fn start(
        tracker: TrackerService,
        url: &str,
        node: &str,
    ) -> Result<RedisRelay, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tracker.set_relay(Arc::new(Queue {
            node: node.to_string(),
            tx: tx.clone(),
        }));
        let tasks = vec![
            tokio::spawn(publisher(client.clone(), rx)),
            tokio::spawn(subscriber(client, tracker, node.to_string(), tx)),
        ];
        Ok(RedisRelay { tasks })
    }
}

async fn publisher(client: redis::Client, mut rx: mpsc::Receiver<Out>) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    while let Some(Out::Publish(channel, payload)) = rx.recv().await {
        if conn.is_none() {
            conn = tokio::time::timeout(
                Duration::from_secs(1),
                client.get_multiplexed_async_connection(),
            )
            .await
            .ok()
            .and_then(Result::ok);
        }
        let Some(c) = conn.as_mut() else {
            ::metrics::counter!("mediamesh_tracker_relay_dropped_total").increment(1);
            continue;
        };
        let sent = tokio::time::timeout(
            Duration::from_secs(1),
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&payload)
                .query_async::<i64>(c),
        )
        .await;
        if !matches!(sent, Ok(Ok(_))) {
            conn = None;
            ::metrics::counter!("mediamesh_tracker_relay_dropped_total").increment(1);
        }
    }
}

async fn subscriber(
    client: redis::Client,
    tracker: TrackerService,
    node: String,
    tx: mpsc::Sender<Out>,
) {
    let mine = node_channel(&node);
    let shared = peers_channel();
    let mut logged_down = false;
    loop {
        let pubsub =
            match tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub()).await {
                Ok(Ok(p)) => Some(p),
                _ => None,
            };
        let Some(mut pubsub) = pubsub else {
            if !logged_down {
                tracing::warn!("tracker relay: Redis unreachable; serving local peers only");
                logged_down = true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if pubsub.subscribe(&shared).await.is_err() || pubsub.subscribe(&mine).await.is_err() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tracing::info!(node = %node, "tracker relay: sharing swarms through Redis");
        logged_down = false;
        // Ask the others for their peers, and tell them ours.
        if let Ok(j) = serde_json::to_string(&PeerMsg::Resync { node: node.clone() }) {
            let _ = tx.try_send(Out::Publish(shared.clone(), j));
        }
        announce_all(&tracker, &node, &tx);
        let mut stream = pubsub.on_message();
        while let Some(msg) = stream.next().await {
            let channel = msg.get_channel_name().to_string();
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            if payload.len() > MAX_MESSAGE {
                continue;
            }
            if channel == mine {
                handle_direct(&tracker, &payload);
            } else {
                handle_shared(&tracker, &node, &tx, &payload);
            }
        }
        tracing::warn!("tracker relay: Redis connection lost; reconnecting");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn announce_all(tracker: &TrackerService, node: &str, tx: &mpsc::Sender<Out>) {
    for (swarm, peer) in tracker.local_peers() {
        let m = PeerMsg::Peer {
            node: node.to_string(),
            swarm: swarm.to_hex(),
            peer: peer.to_hex(),
            present: true,
        };
        if let Ok(j) = serde_json::to_string(&m) {
            let _ = tx.try_send(Out::Publish(peers_channel(), j));
        }
    }
}

fn handle_direct(tracker: &TrackerService, payload: &str) {
    let Ok(d) = serde_json::from_str::<Direct>(payload) else {
        ::metrics::counter!("mediamesh_tracker_relay_invalid_total").increment(1);
        return;
    };
    let (Some(swarm), Some(to)) = (Id20::from_hex(&d.swarm), Id20::from_hex(&d.to_peer)) else {
        ::metrics::counter!("mediamesh_tracker_relay_invalid_total").increment(1);
        return;
    };
    if tracker.deliver(swarm, to, d.text) {
        ::metrics::counter!("mediamesh_tracker_relay_delivered_total").increment(1);
    }
}

fn handle_shared(tracker: &TrackerService, node: &str, tx: &mpsc::Sender<Out>, payload: &str) {
    match serde_json::from_str::<PeerMsg>(payload) {
        Ok(PeerMsg::Peer {
            node: from,
            swarm,
            peer,
            present,
        }) if from != node => {
            if let (Some(s), Some(p)) = (Id20::from_hex(&swarm), Id20::from_hex(&peer)) {
                tracker.remote_peer(s, p, &from, present);
            }
        }
        Ok(PeerMsg::Resync { node: from }) if from != node => announce_all(tracker, node, tx),
        Ok(_) => {}
        Err(_) => {
            ::metrics::counter!("mediamesh_tracker_relay_invalid_total").increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p::tracker::{Tracker, TrackerConfig};
    use std::time::Instant;

    fn bin(b: u8) -> Id20 {
        Id20([b; 20])
    }

    fn announce(ih: Id20, pid: Id20, offers: bool) -> Vec<u8> {
        let mut v = serde_json::json!({
            "action": "announce", "info_hash": ih.to_binary_string(), "peer_id": pid.to_binary_string(),
            "numwant": 1, "uploaded": 0, "downloaded": 0, "left": 100, "event": "started",
        });
        if offers {
            v["offers"] = serde_json::json!([{"offer": {"type": "offer", "sdp": "x"}, "offer_id": bin(9).to_binary_string()}]);
        }
        v.to_string().into_bytes()
    }

    /// The core hook, two trackers wired by hand (what the Redis relay does).
    #[test]
    fn offers_and_answers_cross_trackers() {
        let now = Instant::now();
        let (mut a, mut b) = (
            Tracker::new(TrackerConfig::default()),
            Tracker::new(TrackerConfig::default()),
        );
        a.set_sharing(true);
        b.set_sharing(true);
        let ih = bin(1);
        // Peer 2 on tracker A.
        let ca = a.open(now);
        a.handle_frame(ca, &announce(ih, bin(2), false), now);
        for c in a.drain_changes() {
            b.remote_peer(c.swarm, c.peer, "a", c.present, now);
        }
        // Peer 3 on tracker B sends an offer: it goes to A's peer 2.
        let cb = b.open(now);
        let h = b.handle_frame(cb, &announce(ih, bin(3), true), now);
        assert_eq!(h.remote_out.len(), 1, "{h:?}");
        let m = &h.remote_out[0];
        assert_eq!(m.node, "a");
        let out = a
            .deliver(m.swarm, m.to_peer, m.text.clone())
            .expect("delivered");
        assert_eq!(out.conn, ca);
        let offer: serde_json::Value = serde_json::from_str(&out.text).expect("json");
        assert_eq!(offer["offer"]["sdp"], "x");
        // B learns about its peer 3; A's peer 2 answers, the answer reaches B's peer 3.
        for c in b.drain_changes() {
            a.remote_peer(c.swarm, c.peer, "b", c.present, now);
        }
        let answer = serde_json::json!({
            "action": "announce", "info_hash": ih.to_binary_string(), "peer_id": bin(2).to_binary_string(),
            "to_peer_id": bin(3).to_binary_string(), "offer_id": bin(9).to_binary_string(),
            "answer": {"type": "answer", "sdp": "y"},
        });
        let h = a.handle_frame(ca, answer.to_string().as_bytes(), now);
        assert_eq!(h.remote_out.len(), 1);
        let back = b
            .deliver(
                h.remote_out[0].swarm,
                h.remote_out[0].to_peer,
                h.remote_out[0].text.clone(),
            )
            .expect("answer delivered");
        assert_eq!(back.conn, cb);
        // Peer 2 leaves: B forgets it.
        a.close(ca);
        let gone = a.drain_changes();
        assert!(gone.iter().any(|c| !c.present && c.peer == bin(2)));
        for c in gone {
            b.remote_peer(c.swarm, c.peer, "a", c.present, now);
        }
        let h = b.handle_frame(cb, &announce(ih, bin(3), true), now);
        assert!(h.remote_out.is_empty());
    }

    #[test]
    fn hostile_relay_messages_are_ignored() {
        let svc = TrackerService::new(TrackerConfig::default());
        let (tx, _rx) = mpsc::channel(4);
        for p in [
            "",
            "{}",
            "null",
            "{\"t\":\"peer\",\"node\":\"x\",\"swarm\":\"zz\",\"peer\":\"00\",\"present\":true}",
        ] {
            handle_shared(&svc, "me", &tx, p);
            handle_direct(&svc, p);
        }
        handle_direct(
            &svc,
            &serde_json::to_string(&Direct {
                swarm: bin(1).to_hex(),
                to_peer: bin(2).to_hex(),
                text: "x".into(),
            })
            .expect("json"),
        );
        assert_eq!(svc.stats().0, 0);
    }

    #[test]
    fn channel_messages_round_trip() {
        let m = PeerMsg::Peer {
            node: "n".into(),
            swarm: "ab".into(),
            peer: "cd".into(),
            present: true,
        };
        let j = serde_json::to_string(&m).expect("json");
        assert_eq!(serde_json::from_str::<PeerMsg>(&j).expect("back"), m);
        assert!(j.contains("\"t\":\"peer\""));
    }
}
