//! A small live swarm driven in simulated time: the scheduler's promises (no stalls
//! from P2P, close to 1 − 1/N offload, bad peers banned) checked end to end.

use super::*;

const SEG_MS: u64 = 2_000;
const HTTP_MS: u64 = 80;
const PEER_MS: u64 = 120;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Honest,
    /// Sends bytes that fail verification.
    Corrupt,
    /// Accepts requests and never answers.
    Silent,
}

struct Viewer {
    key: PeerKey,
    sched: Scheduler,
    head: Playhead,
    behaviour: Behaviour,
    /// (done_at, segment, from) of transfers under way.
    pending: Vec<(u64, SegmentId, Option<PeerKey>)>,
}

struct Run {
    http_bytes: u64,
    p2p_bytes: u64,
    stall_ms: u64,
    rejected: u64,
    banned_by_all: bool,
}

fn run(n: usize, p2p: bool, behaviours: &[Behaviour], seconds: u64) -> Run {
    let cfg = SchedulerConfig {
        p2p,
        ..SchedulerConfig::default()
    };
    let size = 500_000u64;
    let mut viewers: Vec<Viewer> = (0..n)
        .map(|i| {
            let key = PeerKey::from_peer_id(format!("viewer-{i}").as_bytes());
            Viewer {
                key,
                sched: Scheduler::new(cfg.clone(), key),
                head: Playhead::new(0, 0, SEG_MS, SEG_MS),
                behaviour: behaviours.get(i).copied().unwrap_or(Behaviour::Honest),
                pending: Vec::new(),
            }
        })
        .collect();
    let keys: Vec<PeerKey> = viewers.iter().map(|v| v.key).collect();
    for v in viewers.iter_mut() {
        for k in &keys {
            if *k != v.key {
                v.sched.peer_joined(0, *k);
            }
        }
    }
    // The live edge: segment i exists from (i + 4) × SEG_MS, so a viewer at
    // position 0 joining at time 0 is 3 segments behind the edge after the first.
    let mut next_seg = 0u64;
    let end = seconds * 1000;
    let mut now = 0u64;
    while now <= end {
        while (next_seg + 1) * SEG_MS <= now + 3 * SEG_MS + SEG_MS {
            for v in viewers.iter_mut() {
                v.sched.segment_listed(
                    now,
                    SegmentInfo {
                        id: SegmentId(next_seg),
                        start_ms: next_seg * SEG_MS,
                        duration_ms: SEG_MS,
                    },
                );
            }
            next_seg += 1;
        }
        // Deliver finished transfers.
        for i in 0..viewers.len() {
            let due: Vec<_> = viewers[i]
                .pending
                .iter()
                .copied()
                .filter(|(t, _, _)| *t <= now)
                .collect();
            viewers[i].pending.retain(|(t, _, _)| *t > now);
            for (_, seg, from) in due {
                match from {
                    None => viewers[i].sched.http_done(now, seg, size),
                    Some(p) => {
                        let sender = viewers.iter().find(|v| v.key == p).map(|v| v.behaviour);
                        if sender == Some(Behaviour::Corrupt) {
                            viewers[i]
                                .sched
                                .peer_failed(now, p, seg, PeerFailure::Corrupt);
                        } else {
                            viewers[i].sched.peer_done(now, p, seg, size);
                        }
                    }
                }
            }
        }
        for v in viewers.iter_mut() {
            let end_ms = v.sched.contiguous_end(v.head.position_ms());
            let pos = v.head.advance(now, end_ms);
            v.sched.set_position(now, pos);
            v.sched.tick(now);
        }
        // Carry out actions; announcements reach the others at once.
        let mut announces = Vec::new();
        for i in 0..viewers.len() {
            while let Some(a) = viewers[i].sched.poll_action() {
                match a {
                    Action::FetchHttp(seg) => viewers[i].pending.push((now + HTTP_MS, seg, None)),
                    Action::RequestPeer { peer, segment } => {
                        let honest_has = viewers
                            .iter()
                            .find(|v| v.key == peer)
                            .map(|v| (v.behaviour, v.sched.has(segment)));
                        match honest_has {
                            Some((Behaviour::Silent, _)) => {}
                            Some((Behaviour::Corrupt, _)) | Some((Behaviour::Honest, true)) => {
                                viewers[i]
                                    .pending
                                    .push((now + PEER_MS, segment, Some(peer)))
                            }
                            _ => viewers[i].sched.peer_failed(
                                now,
                                peer,
                                segment,
                                PeerFailure::Absent,
                            ),
                        }
                    }
                    Action::CancelPeer { .. } | Action::Disconnect(_) => {}
                    Action::Announce => announces.push(i),
                }
            }
        }
        announces.dedup();
        for i in announces {
            let key = viewers[i].key;
            let (mut loaded, loading): (Vec<_>, Vec<_>) = (
                viewers[i].sched.loaded().collect(),
                viewers[i].sched.loading().collect(),
            );
            if viewers[i].behaviour != Behaviour::Honest {
                // Liars claim everything that is listed.
                loaded = (0..next_seg).map(SegmentId).collect();
            }
            for (j, v) in viewers.iter_mut().enumerate() {
                if j != i {
                    v.sched
                        .peer_announced(now, key, loaded.clone(), loading.clone());
                }
            }
        }
        now += 10;
    }
    let honest: Vec<&Viewer> = viewers
        .iter()
        .filter(|v| v.behaviour == Behaviour::Honest)
        .collect();
    let bad: Vec<PeerKey> = viewers
        .iter()
        .filter(|v| v.behaviour == Behaviour::Corrupt)
        .map(|v| v.key)
        .collect();
    Run {
        http_bytes: honest.iter().map(|v| v.sched.stats().http_bytes).sum(),
        p2p_bytes: honest.iter().map(|v| v.sched.stats().p2p_bytes).sum(),
        stall_ms: honest.iter().map(|v| v.head.stall_ms()).sum(),
        rejected: honest
            .iter()
            .map(|v| v.sched.stats().rejected_segments)
            .sum(),
        banned_by_all: !bad.is_empty()
            && honest
                .iter()
                .all(|v| bad.iter().all(|b| v.sched.is_banned(*b))),
    }
}

#[test]
fn without_peers_everything_comes_over_http_without_stalls() {
    let r = run(1, true, &[], 60);
    assert_eq!(r.p2p_bytes, 0);
    assert!(r.http_bytes > 0);
    assert_eq!(r.stall_ms, 0);
}

#[test]
fn p2p_off_never_asks_peers() {
    let r = run(4, false, &[], 40);
    assert_eq!(r.p2p_bytes, 0);
    assert_eq!(r.stall_ms, 0);
}

#[test]
fn twelve_viewers_reach_most_of_the_offload_ceiling() {
    let n = 12;
    let r = run(n, true, &[], 80);
    let offload = r.p2p_bytes as f64 / (r.p2p_bytes + r.http_bytes) as f64;
    let ceiling = 1.0 - 1.0 / n as f64;
    eprintln!(
        "offload {offload:.3} http {} p2p {}",
        r.http_bytes, r.p2p_bytes
    );
    assert!(
        offload >= 0.9 * ceiling,
        "offload {offload:.3}, ceiling {ceiling:.3}"
    );
    assert_eq!(r.stall_ms, 0);
}

#[test]
fn a_corrupting_peer_is_banned_and_costs_no_stall() {
    let r = run(6, true, &[Behaviour::Corrupt], 60);
    assert!(r.rejected > 0);
    assert!(r.banned_by_all);
    assert_eq!(r.stall_ms, 0);
}

#[test]
fn a_silent_peer_costs_time_outs_not_stalls() {
    let r = run(6, true, &[Behaviour::Silent, Behaviour::Silent], 60);
    assert_eq!(r.stall_ms, 0);
    assert!(r.p2p_bytes > 0);
}

#[test]
fn urgent_segments_come_over_http_even_with_peers() {
    let key = PeerKey(1);
    let mut s = Scheduler::new(SchedulerConfig::default(), key);
    s.peer_joined(0, PeerKey(2));
    s.peer_announced(0, PeerKey(2), [SegmentId(0), SegmentId(1)], []);
    s.set_position(0, 0);
    s.segment_listed(
        0,
        SegmentInfo {
            id: SegmentId(0),
            start_ms: 0,
            duration_ms: SEG_MS,
        },
    );
    s.segment_listed(
        0,
        SegmentInfo {
            id: SegmentId(1),
            start_ms: SEG_MS,
            duration_ms: SEG_MS,
        },
    );
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(actions.contains(&Action::FetchHttp(SegmentId(0))));
    assert!(actions.contains(&Action::RequestPeer {
        peer: PeerKey(2),
        segment: SegmentId(1)
    }));
}

#[test]
fn a_peer_request_times_out_before_the_segment_turns_urgent() {
    let mut s = Scheduler::new(SchedulerConfig::default(), PeerKey(1));
    s.peer_joined(0, PeerKey(2));
    s.peer_announced(0, PeerKey(2), [SegmentId(3)], []);
    s.set_position(0, 0);
    s.segment_listed(
        0,
        SegmentInfo {
            id: SegmentId(3),
            start_ms: 3_000,
            duration_ms: SEG_MS,
        },
    );
    while s.poll_action().is_some() {}
    let wake = s.next_wakeup().unwrap_or(u64::MAX);
    // 3 s of slack − 1.5 s urgent window: the request must end by 1.5 s.
    assert!(wake <= 1_500, "wake {wake}");
    s.set_position(wake, wake);
    s.tick(wake);
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(actions.contains(&Action::CancelPeer {
        peer: PeerKey(2),
        segment: SegmentId(3)
    }));
    assert!(actions.contains(&Action::FetchHttp(SegmentId(3))));
    assert_eq!(s.stats().peer_timeouts, 1);
}

#[test]
fn playhead_counts_startup_and_stalls() {
    let mut h = Playhead::new(1_000, 0, 2_000, 2_000);
    assert_eq!(h.advance(1_500, 1_000), 0);
    h.advance(2_000, 4_000);
    assert_eq!(h.startup_ms(), Some(1_000));
    // Plays 4 s of media in 5 s of wall time: stalls 1 s.
    h.advance(7_000, 4_000);
    assert_eq!(h.position_ms(), 4_000);
    assert_eq!(h.stalls(), 1);
    assert_eq!(h.stall_ms(), 1_000);
    h.advance(7_500, 6_000);
    assert_eq!(h.state(), PlayState::Playing);
    assert_eq!(h.stall_ms(), 1_500);
}

fn listed(s: &mut Scheduler, now: u64, ids: std::ops::Range<u64>) {
    for i in ids {
        s.segment_listed(
            now,
            SegmentInfo {
                id: SegmentId(i),
                start_ms: i * SEG_MS,
                duration_ms: SEG_MS,
            },
        );
    }
}

#[test]
fn a_joining_viewer_waits_for_its_first_peer_before_filling_its_buffer_over_http() {
    let cfg = SchedulerConfig::default();
    let grace = cfg.join_grace_ms;
    let mut s = Scheduler::new(cfg, PeerKey(1));
    s.set_position(0, 0);
    listed(&mut s, 0, 0..5);
    // Alone at start: only what is urgent comes over HTTP.
    let http: Vec<Action> = std::iter::from_fn(|| s.poll_action())
        .filter(|a| matches!(a, Action::FetchHttp(_)))
        .collect();
    assert_eq!(http, vec![Action::FetchHttp(SegmentId(0))]);
    s.http_done(100, SegmentId(0), 1);
    // A peer that holds the rest connects within the grace: it is asked for them.
    s.peer_joined(grace / 2, PeerKey(2));
    s.peer_announced(grace / 2, PeerKey(2), (1..5).map(SegmentId), []);
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::RequestPeer {
            peer: PeerKey(2),
            ..
        }
    )));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::FetchHttp(_))),
        "{actions:?}"
    );
}

#[test]
fn a_viewer_still_alone_after_the_grace_loads_its_buffer_over_http() {
    let cfg = SchedulerConfig::default();
    let grace = cfg.join_grace_ms;
    let mut s = Scheduler::new(cfg, PeerKey(1));
    s.set_position(0, 0);
    listed(&mut s, 0, 0..5);
    while s.poll_action().is_some() {}
    s.http_done(100, SegmentId(0), 1);
    // The grace's end is a wake-up (segment 1 turns urgent before it, at 0.6 s).
    let mut now = 100;
    while let Some(t) = s.next_wakeup().filter(|t| *t <= grace) {
        now = t;
        s.tick(t);
        if s.poll_action().is_some() {
            break;
        }
    }
    assert!(now <= grace);
    s.tick(grace);
    let actions: Vec<Action> = std::iter::from_fn(|| s.poll_action()).collect();
    assert!(actions.contains(&Action::FetchHttp(SegmentId(1))));
}
