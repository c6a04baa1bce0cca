//! Unit tests of the sans-IO tracker core and the wire helpers. No sockets here;
//! the end-to-end test with the npm client lives in `tests/`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::config::TrackerConfig;
use super::core::{ConnId, Handled, Tracker};
use super::error::Reject;
use super::id::Id20;

fn id(tag: u8) -> Id20 {
    let mut b = [tag; 20];
    // Include awkward bytes: NUL, a quote, a backslash, and high bytes.
    b[0] = 0;
    b[1] = b'"';
    b[2] = b'\\';
    b[3] = 0xff;
    b[4] = 0x80;
    Id20(b)
}

fn bin(i: Id20) -> String {
    i.to_binary_string()
}

fn frame(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn announce(ih: Id20, pid: Id20, extra: Value) -> Vec<u8> {
    let mut v = json!({
        "action": "announce", "info_hash": bin(ih), "peer_id": bin(pid),
        "numwant": 0, "uploaded": 0, "downloaded": 0, "left": 100, "event": "started",
    });
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    frame(v)
}

fn offers(n: usize) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| json!({"offer": {"type": "offer", "sdp": format!("sdp{i}")}, "offer_id": bin(id(100 + i as u8))}))
        .collect();
    json!({ "offers": list, "numwant": n })
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn to(h: &Handled, conn: ConnId) -> Vec<Value> {
    h.out
        .iter()
        .filter(|o| o.conn == conn)
        .map(|o| parse(&o.text))
        .collect()
}

fn setup() -> (Tracker, Instant) {
    (Tracker::new(TrackerConfig::default()), Instant::now())
}

#[test]
fn binary_string_round_trip_all_bytes() {
    for start in [0u8, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220, 236] {
        let mut b = [0u8; 20];
        for (i, x) in b.iter_mut().enumerate() {
            *x = start.wrapping_add(i as u8);
        }
        let id = Id20(b);
        let json = serde_json::to_string(&id.to_binary_string()).unwrap_or_default();
        let back: String = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(Id20::from_binary_str(&back), Some(id));
        assert_eq!(Id20::from_hex(&id.to_hex()), Some(id));
    }
    // JS-style escapes parse too.
    let s: String =
        serde_json::from_str(r#""\u0000\u00ff\u0080abcdefghijklmnopq""#).unwrap_or_default();
    let id = Id20::from_binary_str(&s);
    assert_eq!(id.map(|i| (i.0[0], i.0[1], i.0[2])), Some((0, 0xff, 0x80)));
    assert_eq!(Id20::from_binary_str(&"a".repeat(19)), None);
    assert_eq!(Id20::from_binary_str(&"a".repeat(21)), None);
    assert_eq!(
        Id20::from_binary_str(&format!("{}\u{100}", "a".repeat(19))),
        None
    );
}

#[test]
fn announce_replies_with_counts_and_interval() {
    let (mut t, now) = setup();
    let (a, b) = (t.open(now), t.open(now));
    let ih = id(1);
    let h = t.handle_frame(a, &announce(ih, id(2), json!({})), now);
    assert!(h.announced && h.rejected.is_none());
    let r = to(&h, a);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["action"], "announce");
    assert_eq!(r[0]["interval"], 120);
    assert_eq!(r[0]["info_hash"], bin(ih));
    assert_eq!(
        (r[0]["complete"].as_u64(), r[0]["incomplete"].as_u64()),
        (Some(0), Some(1))
    );

    let h = t.handle_frame(b, &announce(ih, id(3), json!({"left": 0})), now);
    let r = to(&h, b);
    assert_eq!(
        (r[0]["complete"].as_u64(), r[0]["incomplete"].as_u64()),
        (Some(1), Some(1))
    );
    // Leecher finishes: update with left 0 makes it a seeder.
    t.handle_frame(
        a,
        &announce(ih, id(2), json!({"event": "update", "left": "0"})),
        now,
    );
    assert_eq!(t.swarm_stats(&ih), Some((2, 0)));
    assert_eq!((t.peer_count(), t.swarm_count()), (2, 1));
}

#[test]
fn completed_event_and_missing_event() {
    let (mut t, now) = setup();
    let a = t.open(now);
    let ih = id(1);
    let h = t.handle_frame(
        a,
        &announce(ih, id(2), json!({"event": null, "left": null})),
        now,
    );
    assert!(h.announced);
    assert_eq!(t.swarm_stats(&ih), Some((0, 1)));
    t.handle_frame(a, &announce(ih, id(2), json!({"event": "completed"})), now);
    assert_eq!(t.swarm_stats(&ih), Some((1, 0)));
    let h = t.handle_frame(a, &announce(ih, id(2), json!({"event": "bogus"})), now);
    assert_eq!(h.rejected, Some(Reject::InvalidEvent));
    let r = to(&h, a);
    assert_eq!(r[0]["failure reason"], "invalid event");
    assert_eq!(r[0]["action"], "announce");
    assert_eq!(r[0]["info_hash"], bin(ih));
}

#[test]
fn offers_are_relayed_one_per_other_peer() {
    let (mut t, now) = setup();
    let (a, b, c) = (t.open(now), t.open(now), t.open(now));
    let ih = id(1);
    t.handle_frame(a, &announce(ih, id(2), json!({})), now);
    t.handle_frame(b, &announce(ih, id(3), json!({})), now);
    let h = t.handle_frame(c, &announce(ih, id(4), offers(5)), now);
    assert_eq!(h.offers_relayed, 2);
    assert_eq!(to(&h, c).len(), 1, "announcer gets only its reply");
    let mut ids = Vec::new();
    for conn in [a, b] {
        let got = to(&h, conn);
        assert_eq!(got.len(), 1);
        let m = &got[0];
        assert_eq!(m["action"], "announce");
        assert_eq!(m["peer_id"], bin(id(4)));
        assert_eq!(m["info_hash"], bin(ih));
        assert_eq!(m["offer"]["type"], "offer");
        assert!(m.get("complete").is_none());
        ids.push(m["offer_id"].clone());
    }
    assert_ne!(ids[0], ids[1], "each peer gets a different offer");
}

#[test]
fn offers_capped_by_config_and_numwant() {
    let (mut t, now) = setup();
    let ih = id(1);
    for i in 0..15 {
        let c = t.open(now);
        t.handle_frame(c, &announce(ih, id(10 + i), json!({})), now);
    }
    let me = t.open(now);
    let h = t.handle_frame(me, &announce(ih, id(50), offers(12)), now);
    assert_eq!(h.offers_relayed, 10);
    let mut o = offers(6);
    o["numwant"] = json!(3);
    let h = t.handle_frame(me, &announce(ih, id(50), o), now);
    assert_eq!(h.offers_relayed, 3);
}

#[test]
fn answer_is_forwarded_to_peer_without_reply() {
    let (mut t, now) = setup();
    let (a, b) = (t.open(now), t.open(now));
    let ih = id(1);
    t.handle_frame(a, &announce(ih, id(2), offers(1)), now);
    let answer = json!({"action": "announce", "info_hash": bin(ih), "peer_id": bin(id(3)),
        "to_peer_id": bin(id(2)), "answer": {"type": "answer", "sdp": "x"}, "offer_id": bin(id(100))});
    let h = t.handle_frame(b, &frame(answer), now);
    assert_eq!(h.answers_relayed, 1);
    assert!(to(&h, b).is_empty(), "no reply to an answer");
    let got = to(&h, a);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["answer"]["type"], "answer");
    assert_eq!(got[0]["peer_id"], bin(id(3)));
    assert_eq!(got[0]["offer_id"], bin(id(100)));
    assert_eq!(got[0]["info_hash"], bin(ih));
    // The answerer joined the swarm (as bittorrent-tracker does).
    assert_eq!(t.swarm_stats(&ih), Some((0, 2)));

    let bad = json!({"action": "announce", "info_hash": bin(ih), "peer_id": bin(id(3)),
        "to_peer_id": bin(id(9)), "answer": {"sdp": "x"}, "offer_id": "o"});
    let h = t.handle_frame(b, &frame(bad), now);
    assert!(h.out.is_empty());
    assert_eq!(h.rejected, Some(Reject::UnknownPeer));
    let no_to = json!({"action": "announce", "info_hash": bin(ih), "peer_id": bin(id(3)),
        "answer": {"sdp": "x"}, "offer_id": "o"});
    let h = t.handle_frame(b, &frame(no_to), now);
    assert_eq!(h.rejected, Some(Reject::InvalidToPeerId));
}

#[test]
fn scrape_single_many_and_all() {
    let (mut t, now) = setup();
    let a = t.open(now);
    t.handle_frame(a, &announce(id(1), id(2), json!({"left": 0})), now);
    t.handle_frame(a, &announce(id(5), id(2), json!({})), now);
    let h = t.handle_frame(
        a,
        &frame(json!({"action": "scrape", "info_hash": bin(id(1))})),
        now,
    );
    let r = &to(&h, a)[0];
    assert_eq!(r["action"], "scrape");
    let f = &r["files"][bin(id(1))];
    assert_eq!(
        (
            f["complete"].as_u64(),
            f["incomplete"].as_u64(),
            f["downloaded"].as_u64()
        ),
        (Some(1), Some(0), Some(1))
    );

    let h = t.handle_frame(
        a,
        &frame(json!({"action": "scrape", "info_hash": [bin(id(5)), bin(id(7))]})),
        now,
    );
    let r = &to(&h, a)[0];
    assert_eq!(r["files"][bin(id(5))]["incomplete"], 1);
    assert_eq!(r["files"][bin(id(7))]["complete"], 0);

    let h = t.handle_frame(a, &frame(json!({"action": "scrape"})), now);
    assert_eq!(to(&h, a)[0]["files"].as_object().map(|m| m.len()), Some(2));

    let many: Vec<String> = (0..101).map(|i| bin(id(i))).collect();
    let h = t.handle_frame(
        a,
        &frame(json!({"action": "scrape", "info_hash": many})),
        now,
    );
    assert_eq!(h.rejected, Some(Reject::TooManyScrapeHashes));
    let h = t.handle_frame(
        a,
        &frame(json!({"action": "scrape", "info_hash": ["short"]})),
        now,
    );
    assert_eq!(h.rejected, Some(Reject::InvalidInfoHash));
    assert_eq!(to(&h, a)[0]["failure reason"], "invalid info_hash");
}

#[test]
fn stopped_removes_peer_and_empty_swarm() {
    let (mut t, now) = setup();
    let a = t.open(now);
    let ih = id(1);
    t.handle_frame(a, &announce(ih, id(2), json!({"left": 0})), now);
    let h = t.handle_frame(a, &announce(ih, id(2), json!({"event": "stopped"})), now);
    let r = &to(&h, a)[0];
    assert_eq!(
        (r["complete"].as_u64(), r["incomplete"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!((t.peer_count(), t.swarm_count()), (0, 0));
    // Stopping an unknown peer does not create a swarm.
    t.handle_frame(a, &announce(id(9), id(2), json!({"event": "stopped"})), now);
    assert_eq!(t.swarm_count(), 0);
}

#[test]
fn close_removes_all_peers_of_connection() {
    let (mut t, now) = setup();
    let (a, b) = (t.open(now), t.open(now));
    t.handle_frame(a, &announce(id(1), id(2), json!({})), now);
    t.handle_frame(a, &announce(id(3), id(4), json!({})), now);
    t.handle_frame(b, &announce(id(1), id(5), json!({})), now);
    assert_eq!(t.close(a), 2);
    assert_eq!(t.close(a), 0);
    assert_eq!((t.peer_count(), t.swarm_count()), (1, 1));
    assert_eq!(t.swarm_stats(&id(1)), Some((0, 1)));
    let h = t.handle_frame(a, &announce(id(1), id(2), json!({})), now);
    assert_eq!(h.rejected, Some(Reject::UnknownConnection));
    assert!(h.out.is_empty());
}

#[test]
fn no_impersonation_across_connections() {
    let (mut t, now) = setup();
    let (a, evil) = (t.open(now), t.open(now));
    let ih = id(1);
    t.handle_frame(a, &announce(ih, id(2), json!({})), now);
    for ev in ["started", "update", "completed", "stopped"] {
        let h = t.handle_frame(
            evil,
            &announce(ih, id(2), json!({"event": ev, "left": 0})),
            now,
        );
        assert_eq!(h.rejected, Some(Reject::PeerIdTaken), "{ev}");
        let r = &to(&h, evil)[0];
        assert_eq!(
            r["failure reason"],
            "peer_id is announced by another connection"
        );
        assert_eq!(r["info_hash"], bin(ih));
        assert!(to(&h, a).is_empty());
    }
    // Forged answer "from" the victim is refused too.
    t.handle_frame(evil, &announce(ih, id(3), json!({})), now);
    let forged = json!({"action": "announce", "info_hash": bin(ih), "peer_id": bin(id(2)),
        "to_peer_id": bin(id(3)), "answer": {"sdp": "x"}, "offer_id": "o"});
    let h = t.handle_frame(evil, &frame(forged), now);
    assert_eq!(h.rejected, Some(Reject::PeerIdTaken));
    assert_eq!(t.swarm_stats(&ih), Some((0, 2)));
    // The same peer id in another swarm is a different peer.
    let h = t.handle_frame(evil, &announce(id(7), id(2), json!({})), now);
    assert!(h.rejected.is_none());
}

#[test]
fn limits_swarms_peers_connection() {
    let cfg = TrackerConfig {
        max_peers_per_swarm: 2,
        max_swarms: 2,
        max_peers_per_connection: 3,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(cfg);
    let now = Instant::now();
    let (a, b) = (t.open(now), t.open(now));
    t.handle_frame(a, &announce(id(1), id(10), json!({})), now);
    t.handle_frame(a, &announce(id(1), id(11), json!({})), now);
    let h = t.handle_frame(b, &announce(id(1), id(12), json!({})), now);
    assert_eq!(h.rejected, Some(Reject::SwarmFull));
    t.handle_frame(a, &announce(id(2), id(10), json!({})), now);
    let h = t.handle_frame(b, &announce(id(3), id(12), json!({})), now);
    assert_eq!(h.rejected, Some(Reject::TooManySwarms));
    let h = t.handle_frame(a, &announce(id(2), id(13), json!({})), now);
    assert_eq!(h.rejected, Some(Reject::TooManyPeersOnConnection));
    // Re-announcing existing peers is always fine.
    let h = t.handle_frame(a, &announce(id(1), id(10), json!({})), now);
    assert!(h.rejected.is_none());
    assert_eq!((t.peer_count(), t.swarm_count()), (3, 2));
}

#[test]
fn rate_limit_and_message_size() {
    let (mut t, now) = setup();
    let a = t.open(now);
    let ok = frame(json!({"action": "scrape"}));
    for _ in 0..20 {
        assert!(t.handle_frame(a, &ok, now).rejected.is_none());
    }
    let h = t.handle_frame(a, &ok, now);
    assert_eq!(h.rejected, Some(Reject::RateLimited));
    assert_eq!(to(&h, a)[0]["failure reason"], "rate limited");
    let later = now + Duration::from_millis(250);
    assert!(t.handle_frame(a, &ok, later).rejected.is_none());
    assert!(t.handle_frame(a, &ok, later).rejected.is_none());
    assert_eq!(
        t.handle_frame(a, &ok, later).rejected,
        Some(Reject::RateLimited)
    );

    let b = t.open(now);
    let big = vec![b' '; 64 * 1024 + 1];
    assert_eq!(
        t.handle_frame(b, &big, now).rejected,
        Some(Reject::TooLarge)
    );
}

#[test]
fn garbage_frames_get_failure_reason() {
    let cfg = TrackerConfig {
        rate_burst: 1000.0,
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(cfg);
    let now = Instant::now();
    let a = t.open(now);
    let deep = "[".repeat(10_000);
    let cases: Vec<(&[u8], Reject)> = vec![
        (b"", Reject::InvalidJson),
        (b"null", Reject::InvalidJson),
        (b"[]", Reject::InvalidJson),
        (b"\xff\xfe{}", Reject::InvalidJson),
        (deep.as_bytes(), Reject::InvalidJson),
        (br#"{"action":5}"#, Reject::InvalidJson),
        (br#"{"action":"announce","info_hash":"\ud800aaaaaaaaaaaaaaaaaaa"}"#, Reject::InvalidJson),
        (b"{}", Reject::InvalidAction),
        (br#"{"action":"connect"}"#, Reject::InvalidAction),
        (br#"{"action":"announce"}"#, Reject::InvalidInfoHash),
        (br#"{"action":"announce","info_hash":["aaaaaaaaaaaaaaaaaaaa"]}"#, Reject::InvalidInfoHash),
        (br#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"x"}"#, Reject::InvalidPeerId),
        (br#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","offers":5}"#, Reject::InvalidJson),
        (br#"{"action":"announce","info_hash":"aaaaaaaaaaaaaaaaaaaa","peer_id":"bbbbbbbbbbbbbbbbbbbb","answer":{},"to_peer_id":"cccccccccccccccccccc"}"#, Reject::InvalidOfferId),
        (br#"{"action":"scrape","info_hash":{}}"#, Reject::InvalidJson),
    ];
    for (bytes, want) in cases {
        let h = t.handle_frame(a, bytes, now);
        assert_eq!(
            h.rejected,
            Some(want),
            "{}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
        let r = to(&h, a);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["failure reason"], want.to_string());
    }
    assert_eq!((t.peer_count(), t.swarm_count()), (0, 0));
    // Weird but valid numbers are tolerated.
    let h = t.handle_frame(
        a,
        &announce(
            id(1),
            id(2),
            json!({"left": 1e308, "numwant": -1, "offers": []}),
        ),
        now,
    );
    assert!(h.rejected.is_none());
}

#[test]
fn tick_expires_idle_peers_only() {
    let (mut t, now) = setup();
    let (a, b) = (t.open(now), t.open(now));
    t.handle_frame(a, &announce(id(1), id(2), json!({})), now);
    t.handle_frame(b, &announce(id(1), id(3), json!({"left": 0})), now);
    let mid = now + Duration::from_secs(200);
    t.handle_frame(b, &announce(id(1), id(3), json!({"event": "update"})), mid);
    assert_eq!(t.tick(now + Duration::from_secs(240)), 0);
    assert_eq!(t.tick(now + Duration::from_secs(241)), 1);
    assert_eq!(t.swarm_stats(&id(1)), Some((1, 0)));
    assert_eq!(t.close(a), 0, "expired peer left its connection too");
    assert_eq!(t.tick(mid + Duration::from_secs(241)), 1);
    assert_eq!((t.peer_count(), t.swarm_count()), (0, 0));
}

#[test]
fn swarms_are_partitioned_by_region() {
    let cfg = TrackerConfig {
        regions: super::RegionMap::parse(["10.1.0.0/16=eu", "10.2.0.0/16=us"]).expect("regions"),
        ..TrackerConfig::default()
    };
    let mut t = Tracker::new(cfg);
    let now = Instant::now();
    let eu1 = t.open_from(now, Some("10.1.0.1".parse().expect("ip")));
    let eu2 = t.open_from(now, Some("10.1.0.2".parse().expect("ip")));
    let us = t.open_from(now, Some("10.2.0.1".parse().expect("ip")));
    let ih = id(1);
    t.handle_frame(eu1, &announce(ih, id(2), json!({})), now);
    t.handle_frame(us, &announce(ih, id(3), json!({})), now);
    // An offer from the second EU viewer reaches only the first EU viewer, and the
    // reply carries the info hash it announced.
    let h = t.handle_frame(eu2, &announce(ih, id(4), offers(5)), now);
    assert_eq!(h.offers_relayed, 1);
    assert_eq!(to(&h, eu1).len(), 1);
    assert_eq!(to(&h, eu1)[0]["info_hash"], bin(ih));
    assert!(to(&h, us).is_empty());
    let r = to(&h, eu2);
    assert_eq!(r[0]["info_hash"], bin(ih));
    assert_eq!(r[0]["incomplete"].as_u64(), Some(2));
    // The US viewer's answer cannot reach an EU peer.
    let h = t.handle_frame(
        us,
        &announce(
            ih,
            id(3),
            json!({"answer": {"type": "answer", "sdp": "x"}, "to_peer_id": bin(id(4)), "offer_id": bin(id(100))}),
        ),
        now,
    );
    assert_eq!(h.rejected, Some(Reject::UnknownPeer));
    assert!(to(&h, eu2).is_empty());
}

#[test]
fn operator_can_turn_p2p_off_for_a_swarm() {
    let off = id(9);
    let mut cfg = TrackerConfig::default();
    cfg.disabled_swarms.insert(off);
    let mut t = Tracker::new(cfg);
    let now = Instant::now();
    let a = t.open(now);
    let h = t.handle_frame(a, &announce(off, id(2), json!({})), now);
    assert_eq!(h.rejected, Some(Reject::P2pOff));
    let r = to(&h, a);
    assert_eq!(r[0]["failure reason"], "p2p is off for this stream");
    assert_eq!(t.peer_count(), 0);
    // Other swarms are unaffected.
    let h = t.handle_frame(a, &announce(id(1), id(2), json!({})), now);
    assert!(h.announced);
}

#[test]
fn uploaded_figures_add_what_is_new_per_peer() {
    let (mut t, now) = setup();
    let (a, b) = (t.open(now), t.open(now));
    let ih = id(1);
    let up = |v: Value| json!({"event": "update", "uploaded": v});
    // A first announce of 0 adds nothing; later figures add what is new.
    assert_eq!(
        t.handle_frame(a, &announce(ih, id(2), json!({})), now)
            .uploaded_bytes,
        0
    );
    assert_eq!(
        t.handle_frame(a, &announce(ih, id(2), up(json!(1000))), now)
            .uploaded_bytes,
        1000
    );
    assert_eq!(
        t.handle_frame(a, &announce(ih, id(2), up(json!("1500"))), now)
            .uploaded_bytes,
        500
    );
    // Another peer counts on its own; a figure that goes down adds nothing.
    assert_eq!(
        t.handle_frame(b, &announce(ih, id(3), up(json!(70))), now)
            .uploaded_bytes,
        70
    );
    assert_eq!(
        t.handle_frame(a, &announce(ih, id(2), up(json!(10))), now)
            .uploaded_bytes,
        0
    );
    assert_eq!(
        t.handle_frame(a, &announce(ih, id(2), up(json!(40))), now)
            .uploaded_bytes,
        30
    );
    // Nonsense is ignored: negative, fractional, huge, not a number.
    for bad in [
        json!(-5),
        json!(1.5),
        json!(u64::MAX),
        json!("lots"),
        json!(null),
    ] {
        assert_eq!(
            t.handle_frame(a, &announce(ih, id(2), up(bad)), now)
                .uploaded_bytes,
            0
        );
    }
    // A peer may not report for another connection's peer id.
    let h = t.handle_frame(b, &announce(ih, id(2), up(json!(99_999))), now);
    assert_eq!(h.uploaded_bytes, 0);
    // The stopped announce's last figure counts.
    let h = t.handle_frame(
        a,
        &announce(ih, id(2), json!({"event": "stopped", "uploaded": 100})),
        now,
    );
    assert_eq!(h.uploaded_bytes, 60);
}
