//! Viewer sessions per live stream, as this edge sees them, for the fleet's viewer
//! accounting (the edge reports [`Viewers::report`] with its registry heartbeat).
//!
//! A *viewer* is a player session: its CMCD session id (`sid`) when the request
//! carries one, else its client address and `User-Agent`, seen requesting a playlist
//! or media object under `/live/{stream}/` with a 2xx or 3xx answer within the window
//! (15 s by default: players reload live playlists every few seconds, so a session
//! that stops fetching drops out after one window). Requests from another edge (the
//! `Via: 1.1 mediamesh-edge` a lower tier sends to its parent) are not viewers: only
//! the tier that faces players counts them. Two players behind one address with the
//! same browser and no CMCD count as one.
//!
//! CMCD quality per stream (requests, `bs` starvation flags, sums of `br`, `mtp`,
//! `bl`) is kept in two generations of one window each, so a report covers the last
//! one to two windows.
//!
//! Bounds: sessions are keyed by a 64-bit keyed hash (ids and user agents are not
//! kept), at most `max_sessions` over all streams and [`MAX_STREAMS`] streams; when
//! full, expired sessions are pruned at most once a second and new ones are dropped
//! (counted in `mediamesh_edge_viewer_sessions_dropped_total`) until room frees up, so
//! a client spraying session ids costs O(1) per request.
//!
//! Not here: parsing CMCD (`cmcd`), deciding access, the fleet's totals (crate
//! `fleet`).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cmcd::Cmcd;

/// Default window a session counts for after its last request.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(15);
/// Most streams tracked at once.
pub const MAX_STREAMS: usize = 1_000;
/// Longest `User-Agent` or `sid` hashed (longer ones are cut).
const MAX_KEY_BYTES: usize = 256;
/// Largest per-request CMCD figure summed.
const MAX_VALUE: u64 = 10_000_000;

/// What identifies a player session.
#[derive(Debug, Clone, Copy)]
pub enum SessionKey<'a> {
    /// A CMCD session id.
    Sid(&'a str),
    /// A client address and `User-Agent` (empty when absent).
    Client(IpAddr, &'a [u8]),
}

/// CMCD figures summed over requests (see `fleet::viewers::CmcdCounts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CmcdSums {
    pub requests: u64,
    pub starved: u64,
    pub br_sum: u64,
    pub br_n: u64,
    pub mtp_sum: u64,
    pub mtp_n: u64,
    pub bl_sum: u64,
    pub bl_n: u64,
}

impl CmcdSums {
    fn note(&mut self, c: &Cmcd) {
        self.requests += 1;
        self.starved += u64::from(c.bs);
        let add = |v: Option<u64>, sum: &mut u64, n: &mut u64| {
            if let Some(v) = v {
                *sum = sum.saturating_add(v.min(MAX_VALUE));
                *n += 1;
            }
        };
        add(c.br, &mut self.br_sum, &mut self.br_n);
        add(c.mtp, &mut self.mtp_sum, &mut self.mtp_n);
        add(c.bl, &mut self.bl_sum, &mut self.bl_n);
    }

    fn add(&mut self, o: &CmcdSums) {
        self.requests = self.requests.saturating_add(o.requests);
        self.starved = self.starved.saturating_add(o.starved);
        self.br_sum = self.br_sum.saturating_add(o.br_sum);
        self.br_n = self.br_n.saturating_add(o.br_n);
        self.mtp_sum = self.mtp_sum.saturating_add(o.mtp_sum);
        self.mtp_n = self.mtp_n.saturating_add(o.mtp_n);
        self.bl_sum = self.bl_sum.saturating_add(o.bl_sum);
        self.bl_n = self.bl_n.saturating_add(o.bl_n);
    }
}

/// One stream's line of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamReport {
    pub stream: String,
    pub sessions: u64,
    /// `None` when no request of the stream carried CMCD in the window.
    pub cmcd: Option<CmcdSums>,
}

#[derive(Debug)]
struct PerStream {
    seen: HashMap<u64, Instant>,
    cmcd: CmcdSums,
    cmcd_previous: CmcdSums,
    cmcd_since: Instant,
    last: Instant,
}

#[derive(Debug)]
struct Inner {
    streams: HashMap<String, PerStream>,
    sessions: usize,
    pruned: Instant,
}

/// The viewer sessions of this edge.
#[derive(Debug)]
pub struct Viewers {
    inner: Mutex<Inner>,
    window: Duration,
    max_sessions: usize,
    hasher: RandomState,
}

/// The stream of a canonical path `/live/{stream}/…`, if it names a valid one.
pub fn live_stream(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/live/")?;
    let (name, file) = rest.split_once('/')?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    (ok && !file.is_empty()).then_some(name)
}

impl Viewers {
    /// Sessions counted for `window` after their last request, at most `max_sessions`.
    pub fn new(window: Duration, max_sessions: usize) -> Self {
        let now = Instant::now();
        Viewers {
            inner: Mutex::new(Inner {
                streams: HashMap::new(),
                sessions: 0,
                pruned: now,
            }),
            window,
            max_sessions: max_sessions.max(1),
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, key: SessionKey<'_>) -> u64 {
        let cut = |b: &[u8]| -> Vec<u8> { b[..b.len().min(MAX_KEY_BYTES)].to_vec() };
        match key {
            SessionKey::Sid(s) => self.hasher.hash_one((0u8, cut(s.as_bytes()))),
            SessionKey::Client(ip, ua) => self.hasher.hash_one((1u8, ip, cut(ua))),
        }
    }

    /// Notes a request of `stream` by session `key` (with its CMCD, if any) now.
    pub fn record(&self, stream: &str, key: SessionKey<'_>, cmcd: Option<&Cmcd>) {
        self.record_at(stream, key, cmcd, Instant::now());
    }

    fn record_at(&self, stream: &str, key: SessionKey<'_>, cmcd: Option<&Cmcd>, now: Instant) {
        let h = self.hash(key);
        let window = self.window;
        let mut g = self.inner.lock();
        if !g.streams.contains_key(stream) && g.streams.len() >= MAX_STREAMS {
            self.prune(&mut g, now);
            if g.streams.len() >= MAX_STREAMS {
                ::metrics::counter!("mediamesh_edge_viewer_sessions_dropped_total").increment(1);
                return;
            }
        }
        let fresh = g
            .streams
            .get(stream)
            .is_none_or(|p| !p.seen.contains_key(&h));
        if fresh && g.sessions >= self.max_sessions {
            self.prune(&mut g, now);
            if g.sessions >= self.max_sessions {
                ::metrics::counter!("mediamesh_edge_viewer_sessions_dropped_total").increment(1);
                return;
            }
        }
        let p = g
            .streams
            .entry(stream.to_string())
            .or_insert_with(|| PerStream {
                seen: HashMap::new(),
                cmcd: CmcdSums::default(),
                cmcd_previous: CmcdSums::default(),
                cmcd_since: now,
                last: now,
            });
        p.last = now;
        let added = p.seen.insert(h, now).is_none();
        if let Some(c) = cmcd {
            if now.saturating_duration_since(p.cmcd_since) >= window {
                p.cmcd_previous = std::mem::take(&mut p.cmcd);
                p.cmcd_since = now;
            }
            p.cmcd.note(c);
        }
        if added {
            g.sessions += 1;
        }
    }

    /// Drops expired sessions and idle streams; at most once a second unless a
    /// report asks (`force` through [`Viewers::report`]).
    fn prune(&self, g: &mut Inner, now: Instant) {
        if now.saturating_duration_since(g.pruned) < Duration::from_secs(1) {
            return;
        }
        self.prune_now(g, now);
    }

    fn prune_now(&self, g: &mut Inner, now: Instant) {
        g.pruned = now;
        let window = self.window;
        let mut total = 0;
        g.streams.retain(|_, p| {
            p.seen
                .retain(|_, seen| now.saturating_duration_since(*seen) < window);
            total += p.seen.len();
            !p.seen.is_empty() || now.saturating_duration_since(p.last) < window * 2
        });
        g.sessions = total;
    }

    /// Sessions and CMCD per stream now (streams with no session left out), and
    /// prunes what expired.
    pub fn report(&self) -> Vec<StreamReport> {
        self.report_at(Instant::now())
    }

    fn report_at(&self, now: Instant) -> Vec<StreamReport> {
        let mut g = self.inner.lock();
        self.prune_now(&mut g, now);
        let window = self.window;
        let mut out: Vec<StreamReport> = g
            .streams
            .iter()
            .filter(|(_, p)| !p.seen.is_empty())
            .map(|(name, p)| {
                let age = now.saturating_duration_since(p.cmcd_since);
                let mut c = CmcdSums::default();
                if age < window * 2 {
                    c.add(&p.cmcd);
                }
                if age < window {
                    c.add(&p.cmcd_previous);
                }
                StreamReport {
                    stream: name.clone(),
                    sessions: p.seen.len() as u64,
                    cmcd: (c.requests > 0).then_some(c),
                }
            })
            .collect();
        out.sort_by(|a, b| a.stream.cmp(&b.stream));
        out
    }

    /// Sessions held now (every stream), for tests and the gauge.
    pub fn held(&self) -> usize {
        self.inner.lock().sessions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn sessions_are_sid_or_address_and_agent_and_expire() {
        let v = Viewers::new(Duration::from_secs(15), 1000);
        let t0 = Instant::now();
        // Two players behind one address: told apart by their user agents.
        v.record_at("cam", SessionKey::Client(ip(1), b"a"), None, t0);
        v.record_at("cam", SessionKey::Client(ip(1), b"a"), None, t0);
        v.record_at("cam", SessionKey::Client(ip(1), b"b"), None, t0);
        // CMCD session ids: each one is a session whatever the address.
        let c = Cmcd {
            bs: true,
            br: Some(3000),
            ..Default::default()
        };
        v.record_at("cam", SessionKey::Sid("s1"), Some(&c), t0);
        v.record_at("cam", SessionKey::Sid("s2"), None, t0);
        v.record_at("other", SessionKey::Sid("s1"), None, t0);
        let r = v.report_at(t0);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].stream.as_str(), r[0].sessions), ("cam", 4));
        let q = r[0].cmcd.expect("cmcd");
        assert_eq!((q.requests, q.starved, q.br_sum, q.br_n), (1, 1, 3000, 1));
        assert_eq!(r[1].sessions, 1);
        // One session keeps fetching; the rest go quiet and expire.
        let t1 = t0 + Duration::from_secs(10);
        v.record_at("cam", SessionKey::Sid("s1"), None, t1);
        let r = v.report_at(t0 + Duration::from_secs(16));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].sessions, 1);
        assert!(v.report_at(t0 + Duration::from_secs(40)).is_empty());
        assert_eq!(v.held(), 0);
    }

    #[test]
    fn a_spray_of_ids_stays_bounded_and_costs_little() {
        let v = Viewers::new(Duration::from_secs(15), 1000);
        let t0 = Instant::now();
        for i in 0..200_000u32 {
            v.record_at("cam", SessionKey::Sid(&format!("x{i}")), None, t0);
        }
        assert_eq!(v.held(), 1000);
        for i in 0..5_000u32 {
            v.record_at(&format!("s{i}"), SessionKey::Sid("a"), None, t0);
        }
        assert!(v.inner.lock().streams.len() <= MAX_STREAMS);
        // Once the window has passed, room frees up for new viewers.
        let later = t0 + Duration::from_secs(20);
        v.record_at("cam", SessionKey::Sid("real"), None, later);
        assert_eq!(v.report_at(later)[0].sessions, 1);
    }

    #[test]
    fn only_live_paths_name_a_stream() {
        assert_eq!(live_stream("/live/cam/index.m3u8"), Some("cam"));
        assert_eq!(live_stream("/live/cam/src/seg-1.m4s"), Some("cam"));
        assert_eq!(live_stream("/live/cam/"), None);
        assert_eq!(live_stream("/live/.x/a"), None);
        assert_eq!(live_stream("/vod/cam/index.m3u8"), None);
        assert_eq!(live_stream(&format!("/live/{}/a", "x".repeat(65))), None);
    }
}
