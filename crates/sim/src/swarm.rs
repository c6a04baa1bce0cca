//! One swarm in simulated time: its viewers arrive, connect to each other through the
//! tracker, play, fetch segments over HTTP or from peers, and leave. Each viewer runs
//! the real `p2p::scheduler::Scheduler`, `Playhead` and `UploadGate` of
//! `mediamesh peer`; this module only plays the network and the clock for them.
//!
//! An event queue per swarm (time, then insertion order) keeps runs deterministic;
//! swarms do not talk to each other, they only share the CDN through the engine's
//! per-epoch [`EdgeView`], so different swarms can run on different threads.
//!
//! Not here: caches ([`crate::edge`]), totals ([`crate::report`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use p2p::scheduler::{
    PartConfig, PeerFailure, PeerKey, PlayState, Playhead, SchedulerConfig, UploadGate,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::edge::EdgeView;
use crate::net::transfer_ms;
use crate::player::{Act, Announcement, Player};
use crate::population::{substream, SwarmPlan, ViewerSpec};
use crate::scenario::{Mode, Preset, Scenario};
use crate::tally::{Field, Tally};
use crate::units::Units;

/// Where an edge-less HTTP request went (the origin), in [`Request::edge`].
pub const ORIGIN: usize = usize::MAX;
/// How long a failed HTTP request takes to fail (connect or upstream timeout).
const HTTP_FAIL_MS: u64 = 2_000;
/// Extra round trip when a region's viewers are sent to another region.
const CROSS_REGION_RTT_MS: u64 = 80;
/// Edge ← shield ← origin transfer rate of one miss.
const UPSTREAM_BPS: f64 = 10e9;
/// Media buffered before playback starts and after a stall at `--latency
/// low|balanced` (`START_BUFFER_MS` of `mediamesh peer`'s part viewer).
pub const PART_START_BUFFER_MS: u64 = 500;
/// Listed parts looked at for the next one to turn urgent (a few segments' worth).
const URGENCY_SCAN: u64 = 64;

/// One HTTP request, for the engine's caches and load figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub edge: usize,
    pub rendition: usize,
    /// The unit asked for ([`crate::units`]: a segment, or a part in part mode).
    pub seg: u64,
    pub bytes: u64,
}

/// A record of what happened, kept only when auditing (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Viewer `viewer` received unit `seg` (a segment, or a part in part mode; see
    /// [`crate::units`]) at `at` (from a peer when `from` is set).
    Delivered {
        viewer: u16,
        seg: u64,
        at: u64,
        from: Option<u16>,
    },
    /// Viewer `sender` sends `bytes` over [start, end).
    Upload {
        sender: u16,
        start: u64,
        end: u64,
        bytes: u64,
        uplink_bps: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Join(u16),
    Leave(u16),
    Connect(u16, u16),
    /// A viewer's periodic tracker announce (offers to more peers if it has room).
    Reannounce(u16),
    Wake(u16),
    Announce(u16),
    HttpDone {
        v: u16,
        xfer: u64,
    },
    HttpFail {
        v: u16,
        xfer: u64,
    },
    PeerDone {
        v: u16,
        xfer: u64,
    },
    PeerFail {
        v: u16,
        xfer: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Xfer {
    id: u64,
    /// The unit moved (segment or part).
    seg: u64,
    bytes: u64,
    /// Sender slot for peer transfers.
    from: Option<u16>,
    /// The sender's upload slot is held.
    slot: bool,
}

/// A viewer that is present.
#[derive(Debug)]
struct Live {
    sched: Player,
    head: Playhead,
    gate: UploadGate,
    up_busy_until: u64,
    upload_busy_ms: u64,
    uploaded: u64,
    /// Next unit to list (part mode: to list as preload-hinted).
    next_list: u64,
    /// Part mode: next part to list as complete.
    next_complete: u64,
    wake_at: u64,
    announce_pending: bool,
    xfers: Vec<Xfer>,
    neighbors: u64,
    /// Links being set up (offer relayed, WebRTC not up yet).
    pending: u64,
    state: PlayState,
    stall_from: u64,
    last_t: u64,
    latency_sum: u128,
    latency_ms_time: u64,
}

#[derive(Debug)]
struct Viewer {
    spec: ViewerSpec,
    key: PeerKey,
    live: Option<Box<Live>>,
    gone: bool,
}

/// Settings shared by every swarm of a run.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    pub preset: Preset,
    pub mode: Mode,
    pub segment_ms: u64,
    pub segments: u64,
    /// What viewers fetch and share: segments, or parts at `--latency low|balanced`.
    pub units: Units,
    pub end_ms: u64,
    pub sched: SchedulerConfig,
    /// The part scheduler's settings (part mode).
    pub part_cfg: PartConfig,
    /// `peers.live_offset_ms` if set, and always in part mode (the target's hold-back).
    pub live_offset_ms: Option<u64>,
    pub connect_ms: u64,
    pub connect_jitter_ms: u64,
    pub announce_ms: u64,
    pub upload_slots: usize,
    pub offers_per_announce: u32,
    pub announce_interval_ms: u64,
    pub max_peers: u32,
    pub start_buffer_ms: u64,
    pub transcode_ms: u64,
    pub top_rendition: usize,
    /// Per region: (edge rtt, peer rtt, origin rtt, upstream rtt).
    pub rtts: Vec<(u64, u64, u64, u64)>,
    pub audit: bool,
}

impl SwarmConfig {
    pub fn new(s: &Scenario, audit: bool) -> SwarmConfig {
        let top = s
            .renditions
            .iter()
            .enumerate()
            .max_by_key(|(i, r)| (r.bitrate_kbps, usize::MAX - i))
            .map_or(0, |(i, _)| i);
        let units = Units::new(s);
        SwarmConfig {
            preset: s.preset,
            mode: s.mode,
            segment_ms: s.segment_ms,
            segments: s.segments(),
            units,
            end_ms: s.duration_s * 1000,
            sched: SchedulerConfig {
                p2p: s.preset.p2p(),
                keep_behind_ms: s.sim.keep_behind_ms,
                ..SchedulerConfig::default()
            },
            part_cfg: PartConfig {
                p2p: s.preset.p2p(),
                keep_behind_ms: s.sim.keep_behind_ms,
                ..PartConfig::default()
            },
            live_offset_ms: (units.parts() || s.peers.live_offset_ms > 0)
                .then(|| s.live_offset_ms()),
            connect_ms: s.peers.connect_ms,
            connect_jitter_ms: s.peers.connect_jitter_ms,
            announce_ms: s.peers.announce_ms,
            upload_slots: s.peers.upload_slots as usize,
            offers_per_announce: s.peers.offers_per_announce,
            announce_interval_ms: s.peers.announce_interval_s * 1000,
            max_peers: s.peers.max_peers,
            start_buffer_ms: s.peers.start_buffer_ms,
            transcode_ms: s.costs.transcode_ms,
            top_rendition: top,
            rtts: s
                .regions
                .iter()
                .map(|r| {
                    (
                        r.edge_rtt_ms,
                        r.peer_rtt_ms,
                        r.origin_rtt_ms,
                        r.upstream_rtt_ms,
                    )
                })
                .collect(),
            audit,
        }
    }

    /// Wall time at which unit `seg` (a segment, or a part in part mode) exists
    /// (live: when its last frame is made).
    pub fn produced_at(&self, seg: u64) -> u64 {
        self.units.produced_at(seg)
    }

    /// Part mode: how long after a part is made a viewer of `region` sees it listed
    /// as complete (and the next one preload-hinted). Viewers follow the playlist with
    /// blocking reloads that the origin answers the moment the part exists, so this
    /// is the way back: origin → edge → viewer, half of each round trip (origin →
    /// viewer without a CDN).
    pub fn part_list_delay_ms(&self, region: usize) -> u64 {
        let (edge, _, origin, upstream) = self.rtts[region];
        if self.preset.edges() {
            edge / 2 + upstream / 2
        } else {
            origin / 2
        }
    }

    /// The urgent window of the viewers' scheduler (HTTP inside it).
    pub fn urgent_ms(&self) -> u64 {
        if self.units.parts() {
            self.part_cfg.urgent_ms
        } else {
            self.sched.urgent_ms
        }
    }
}

/// A swarm and its event queue.
pub struct Swarm {
    pub plan: SwarmPlan,
    bitrate_bps: u64,
    viewers: Vec<Viewer>,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    xfer_seq: u64,
    rng: ChaCha8Rng,
    actions: Vec<Act>,
    /// Per viewer: what it last announced (segments held and being fetched over
    /// HTTP, or the newest parts held).
    snaps: Vec<Announcement>,
    /// Per viewer: neighbours whose latest announcement is held back (see
    /// [`Swarm::announce`]).
    held: Vec<u64>,
    /// HTTP requests made since the engine last took them.
    pub requests: Vec<Request>,
    pub audit: Vec<Audit>,
}

impl Swarm {
    pub fn new(s: &Scenario, plan: SwarmPlan, specs: Vec<ViewerSpec>) -> Swarm {
        let mut sw = Swarm {
            bitrate_bps: s.renditions[plan.class.rendition].bitrate_kbps * 1000,
            viewers: specs
                .into_iter()
                .enumerate()
                .map(|(i, spec)| Viewer {
                    spec,
                    key: PeerKey::from_peer_id(format!("sim-{}-{i}", plan.index).as_bytes()),
                    live: None,
                    gone: false,
                })
                .collect(),
            queue: BinaryHeap::new(),
            seq: 0,
            xfer_seq: 0,
            rng: ChaCha8Rng::seed_from_u64(substream(s.seed ^ 0xa11ce, plan.index)),
            actions: Vec::new(),
            snaps: Vec::new(),
            held: Vec::new(),
            requests: Vec::new(),
            audit: Vec::new(),
            plan,
        };
        sw.snaps = vec![Announcement::default(); sw.viewers.len()];
        sw.held = vec![0; sw.viewers.len()];
        for i in 0..sw.viewers.len() {
            let (j, l) = (sw.viewers[i].spec.join_ms, sw.viewers[i].spec.leave_ms);
            sw.push(j, Ev::Join(i as u16));
            sw.push(l, Ev::Leave(i as u16));
        }
        sw
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Runs every event before `until` (wall ms).
    pub fn run_until(&mut self, until: u64, cfg: &SwarmConfig, view: &EdgeView, t: &mut Tally) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at >= until {
                break;
            }
            let Some(Reverse((now, _, ev))) = self.queue.pop() else {
                break;
            };
            self.handle(now, ev, cfg, view, t);
        }
    }

    /// Every present viewer leaves at `now` with probability `share`.
    pub fn mass_leave(&mut self, now: u64, share: f64) {
        for i in 0..self.viewers.len() {
            if self.viewers[i].live.is_some() && self.rng.gen_bool(share.clamp(0.0, 1.0)) {
                self.push(now, Ev::Leave(i as u16));
            }
        }
    }

    /// Viewers present now.
    pub fn present(&self) -> usize {
        self.viewers.iter().filter(|v| v.live.is_some()).count()
    }

    fn class(&self) -> usize {
        self.plan.class_index
    }

    fn handle(&mut self, now: u64, ev: Ev, cfg: &SwarmConfig, view: &EdgeView, t: &mut Tally) {
        match ev {
            Ev::Join(v) => self.join(v, now, cfg, view, t),
            Ev::Leave(v) => self.leave(v, now, cfg, view, t),
            Ev::Connect(a, b) => self.connect(a, b, now, cfg, view, t),
            Ev::Reannounce(v) => {
                if self.live(v).is_some() {
                    self.offer(v, now, cfg);
                    self.push(now + cfg.announce_interval_ms, Ev::Reannounce(v));
                }
            }
            Ev::Wake(v) => {
                let due = self.live(v).is_some_and(|l| l.wake_at == now);
                if due {
                    if let Some(l) = self.live_mut(v) {
                        l.wake_at = u64::MAX;
                    }
                    self.service(v, now, cfg, view, t);
                }
            }
            Ev::Announce(v) => self.announce(v, now, cfg, view, t),
            Ev::HttpDone { v, xfer } => {
                let Some(x) = self.take_xfer(v, xfer) else {
                    return;
                };
                self.prepare(v, now, cfg, t);
                self.delivered(v, &x, now, cfg, t);
                if let Some(l) = self.live_mut(v) {
                    l.sched.http_done(now, x.seg, x.bytes);
                }
                t.totals[self.class()].http_delivered += x.bytes;
                t.add(self.class(), Field::HttpBytes, now, x.bytes);
                self.service(v, now, cfg, view, t);
            }
            Ev::HttpFail { v, xfer } => {
                let Some(x) = self.take_xfer(v, xfer) else {
                    return;
                };
                self.prepare(v, now, cfg, t);
                if let Some(l) = self.live_mut(v) {
                    l.sched.http_failed(now, x.seg);
                }
                self.service(v, now, cfg, view, t);
            }
            Ev::PeerDone { v, xfer } => {
                let Some(x) = self.take_xfer(v, xfer) else {
                    return;
                };
                self.prepare(v, now, cfg, t);
                let from = x.from.unwrap_or(0);
                self.release(from, x.slot);
                self.delivered(v, &x, now, cfg, t);
                let key = self.viewers[from as usize].key;
                if let Some(l) = self.live_mut(v) {
                    l.sched.peer_done(now, key, x.seg, x.bytes);
                }
                t.totals[self.class()].p2p_delivered += x.bytes;
                t.add(self.class(), Field::P2pBytes, now, x.bytes);
                self.service(v, now, cfg, view, t);
            }
            Ev::PeerFail { v, xfer } => {
                let Some(x) = self.take_xfer(v, xfer) else {
                    return;
                };
                self.prepare(v, now, cfg, t);
                let from = x.from.unwrap_or(0);
                self.release(from, x.slot);
                let key = self.viewers[from as usize].key;
                let gone = self.viewers[from as usize].live.is_none();
                if let Some(l) = self.live_mut(v) {
                    let why = if gone {
                        PeerFailure::Closed
                    } else {
                        PeerFailure::Absent
                    };
                    l.sched.peer_failed(now, key, x.seg, why);
                }
                self.service(v, now, cfg, view, t);
            }
        }
    }

    fn live(&self, v: u16) -> Option<&Live> {
        self.viewers.get(v as usize)?.live.as_deref()
    }

    fn live_mut(&mut self, v: u16) -> Option<&mut Live> {
        self.viewers.get_mut(v as usize)?.live.as_deref_mut()
    }

    fn take_xfer(&mut self, v: u16, id: u64) -> Option<Xfer> {
        let l = self.live_mut(v)?;
        let i = l.xfers.iter().position(|x| x.id == id)?;
        Some(l.xfers.swap_remove(i))
    }

    fn release(&mut self, sender: u16, slot: bool) {
        if slot {
            if let Some(l) = self.live_mut(sender) {
                l.gate.finish();
            }
        }
    }

    fn delivered(&mut self, v: u16, x: &Xfer, now: u64, cfg: &SwarmConfig, t: &mut Tally) {
        if now < cfg.produced_at(x.seg) {
            t.early_deliveries += 1;
        }
        if cfg.audit {
            self.audit.push(Audit::Delivered {
                viewer: v,
                seg: x.seg,
                at: now,
                from: x.from,
            });
        }
    }

    fn join(&mut self, v: u16, now: u64, cfg: &SwarmConfig, view: &EdgeView, t: &mut Tally) {
        let Some(viewer) = self.viewers.get(v as usize) else {
            return;
        };
        if viewer.gone || viewer.live.is_some() {
            return;
        }
        let spec = viewer.spec;
        let seg = cfg.segment_ms;
        let units = &cfg.units;
        // Where playback joins (media ms), the first unit to list, and the player.
        let (position, start, sched, buffer) = if units.parts() {
            // Part mode, as `mediamesh peer --latency low|balanced`: the live edge is
            // the end of the newest part listed as complete; join the offset behind.
            let delay = cfg.part_list_delay_ms(self.plan.class.region);
            let edge = match now.checked_sub(delay) {
                Some(m) if m >= units.end_ms(0) => {
                    let u = units.unit_at(m);
                    let last = if units.end_ms(u) <= m { u } else { u - 1 };
                    units.end_ms(last.min(units.count() - 1))
                }
                _ => 0,
            };
            let position = edge.saturating_sub(cfg.live_offset_ms.unwrap_or(0));
            let sched = Player::parts(cfg.part_cfg.clone(), viewer.key, *units);
            let start = units.unit_at(position);
            (position, start, sched, PART_START_BUFFER_MS)
        } else {
            let sched = Player::segments(cfg.sched.clone(), viewer.key);
            let (position, start) = match (cfg.mode, cfg.live_offset_ms) {
                // `--live-offset`: that far behind the end of the newest segment seen.
                (Mode::Live, Some(offset)) => {
                    let seen = (now.saturating_sub(spec.list_delay_ms) / seg).min(cfg.segments);
                    let position = (seen * seg).saturating_sub(offset);
                    (position, position / seg)
                }
                // Live: start three segments behind the newest one this viewer can see.
                (Mode::Live, None) => {
                    let seen = now.saturating_sub(spec.list_delay_ms) / seg;
                    let newest = seen.saturating_sub(1).min(cfg.segments.saturating_sub(1));
                    let start = newest.saturating_sub(2);
                    (start * seg, start)
                }
                (Mode::Vod, _) => (0, 0),
            };
            (position, start, sched, cfg.start_buffer_ms)
        };
        self.start(v, now, (position, start, sched, buffer), cfg, view, t);
    }

    /// Starts viewer `v`'s session: `(position, first unit to list, scheduler, start
    /// buffer)`.
    fn start(
        &mut self,
        v: u16,
        now: u64,
        (position, start, sched, buffer): (u64, u64, Player, u64),
        cfg: &SwarmConfig,
        view: &EdgeView,
        t: &mut Tally,
    ) {
        let viewer = &self.viewers[v as usize];
        let spec = viewer.spec;
        let mut live = Box::new(Live {
            sched,
            head: Playhead::new(now, position, buffer, buffer),
            gate: UploadGate::new(
                if spec.uplink_bps > 0 {
                    cfg.upload_slots
                } else {
                    0
                },
                spec.uplink_bps / 8,
            ),
            up_busy_until: 0,
            upload_busy_ms: 0,
            uploaded: 0,
            next_list: start,
            next_complete: start,
            wake_at: u64::MAX,
            announce_pending: false,
            xfers: Vec::new(),
            neighbors: 0,
            pending: 0,
            state: PlayState::Starting { since: now },
            stall_from: 0,
            last_t: now,
            latency_sum: 0,
            latency_ms_time: 0,
        });
        live.sched.set_position(now, position);
        self.viewers[v as usize].live = Some(live);
        t.mark(self.class(), Field::JoinDiff, now);
        if cfg.preset.p2p() {
            self.offer(v, now, cfg);
            self.push(now + cfg.announce_interval_ms, Ev::Reannounce(v));
        }
        self.service(v, now, cfg, view, t);
    }

    /// Links a viewer may still open or accept (`max_peers` minus open and pending).
    fn room(&self, v: u16, cfg: &SwarmConfig) -> u32 {
        self.live(v).map_or(0, |l| {
            cfg.max_peers
                .saturating_sub((l.neighbors | l.pending).count_ones())
        })
    }

    /// A tracker announce of `v` with offers: the tracker relays them to up to
    /// `offers_per_announce` other viewers present (at random), each of which
    /// answers if it has room; the link is up after the set-up time, unless both
    /// ends are behind symmetric NATs (no TURN), in which case ICE fails.
    fn offer(&mut self, v: u16, now: u64, cfg: &SwarmConfig) {
        let n = self.room(v, cfg).min(cfg.offers_per_announce) as usize;
        if n == 0 {
            return;
        }
        let (linked, nat) = match self.live(v) {
            Some(l) => (
                l.neighbors | l.pending,
                self.viewers[v as usize].spec.symmetric_nat,
            ),
            None => return,
        };
        let mut candidates: Vec<u16> = (0..self.viewers.len() as u16)
            .filter(|&u| u != v && linked & (1u64 << u) == 0 && self.live(u).is_some())
            .collect();
        let mut picked = 0;
        while picked < n && !candidates.is_empty() {
            let i = self.rng.gen_range(0..candidates.len());
            let u = candidates.swap_remove(i);
            picked += 1;
            if self.room(u, cfg) == 0 || (nat && self.viewers[u as usize].spec.symmetric_nat) {
                continue;
            }
            for (a, b) in [(v, u), (u, v)] {
                if let Some(l) = self.live_mut(a) {
                    l.pending |= 1u64 << b;
                }
            }
            let jitter = self.rng.gen_range(0..=cfg.connect_jitter_ms);
            self.push(now + cfg.connect_ms + jitter, Ev::Connect(v, u));
        }
    }

    fn leave(&mut self, v: u16, now: u64, cfg: &SwarmConfig, view: &EdgeView, t: &mut Tally) {
        let class = self.class();
        let Some(viewer) = self.viewers.get_mut(v as usize) else {
            return;
        };
        let Some(mut l) = viewer.live.take() else {
            return;
        };
        viewer.gone = true;
        let key = viewer.key;
        let uplink = viewer.spec.uplink_bps;
        let joined = viewer.spec.join_ms;
        // Close the books.
        let end = l.sched.contiguous_end(l.head.position_ms());
        l.head.advance(now, end);
        self.track(&mut l, now, t);
        if let PlayState::Stalled { .. } = l.state {
            t.mark(class, Field::StallEnd, now);
        }
        t.mark(class, Field::LeaveDiff, now);
        let tot = &mut t.totals[class];
        tot.viewers_done += 1;
        tot.viewer_ms += now.saturating_sub(joined);
        tot.played_ms += l.head.played_ms();
        tot.stall_ms += l.head.stall_ms();
        tot.stalls += u64::from(l.head.stalls());
        let st = l.sched.stats();
        tot.consumed += st.http_bytes + st.p2p_bytes;
        tot.uploaded += l.uploaded;
        tot.peer_requests += st.peer_requests;
        tot.peer_timeouts += st.peer_timeouts;
        match l.head.startup_ms() {
            Some(ms) => t
                .startup
                .push((ms.min(u64::from(u32::MAX)) as u32, class as u16)),
            None => tot.failed_starts += 1,
        }
        if l.latency_ms_time > 0 {
            let mean = l.latency_sum / u128::from(l.latency_ms_time);
            t.latency
                .push((mean.min(u128::from(u32::MAX)) as u32, class as u16));
        }
        if uplink > 0 && l.upload_busy_ms > 0 {
            let ppm = (l.uploaded as u128 * 8_000 * 1_000_000)
                / (u128::from(uplink) * u128::from(l.upload_busy_ms));
            t.max_uplink_ppm = t.max_uplink_ppm.max(ppm.min(u128::from(u64::MAX)) as u64);
        }
        // Our downloads from peers give their slots back.
        for x in &l.xfers {
            if let Some(from) = x.from {
                self.release(from, x.slot);
            }
        }
        // Neighbours lose us, and whatever we were sending them.
        self.held[v as usize] = 0;
        for u in 0..self.viewers.len() as u16 {
            if l.neighbors & (1 << u) == 0 {
                continue;
            }
            self.prepare(u, now, cfg, t);
            if let Some(ul) = self.live_mut(u) {
                ul.neighbors &= !(1u64 << v);
                ul.xfers.retain(|x| x.from != Some(v));
                ul.sched.peer_left(now, key);
            }
            self.after(u, now, cfg, view, t);
        }
    }

    fn connect(
        &mut self,
        a: u16,
        b: u16,
        now: u64,
        cfg: &SwarmConfig,
        view: &EdgeView,
        t: &mut Tally,
    ) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(l) = self.live_mut(x) {
                l.pending &= !(1u64 << y);
            }
        }
        if self.live(a).is_none() || self.live(b).is_none() {
            return;
        }
        self.prepare(a, now, cfg, t);
        self.prepare(b, now, cfg, t);
        let (ka, kb) = (self.viewers[a as usize].key, self.viewers[b as usize].key);
        let (ha, hb) = (self.holdings(a), self.holdings(b));
        if let Some(l) = self.live_mut(a) {
            l.neighbors |= 1 << b;
            l.sched.peer_joined(now, kb);
            l.sched.peer_announced(now, kb, &hb);
        }
        if let Some(l) = self.live_mut(b) {
            l.neighbors |= 1 << a;
            l.sched.peer_joined(now, ka);
            l.sched.peer_announced(now, ka, &ha);
        }
        self.after(a, now, cfg, view, t);
        self.after(b, now, cfg, view, t);
    }

    /// What `v` announces: segments held (not older than the scheduler keeps) and
    /// segments it is fetching over HTTP; in part mode, the newest parts it holds.
    fn holdings(&self, v: u16) -> Announcement {
        match self.live(v) {
            Some(l) => l.sched.announcement(),
            None => Announcement::default(),
        }
    }

    /// `v` announces what it holds to its neighbours. A neighbour for which the
    /// announcement changes nothing now (no missing segment in its window, so its
    /// scheduler would only record it; and a wake-up already booked) gets it held
    /// back: only its latest is handed over, right before that neighbour's scheduler
    /// is next called. Announcements replace each other, so this gives the same
    /// decisions as delivering every one, at a fraction of the cost (a swarm of 12
    /// delivers each segment's announcement about ten times per viewer).
    fn announce(&mut self, v: u16, now: u64, cfg: &SwarmConfig, view: &EdgeView, t: &mut Tally) {
        let Some(l) = self.live_mut(v) else {
            return;
        };
        l.announce_pending = false;
        let neighbors = l.neighbors;
        let new = self.holdings(v);
        let old = std::mem::replace(&mut self.snaps[v as usize], new);
        let bit = 1u64 << v;
        for u in 0..self.viewers.len() as u16 {
            if neighbors & (1 << u) == 0 {
                continue;
            }
            let quiet = self.live(u).is_some_and(|ul| {
                ul.wake_at > now
                    && if cfg.units.parts() {
                        self.parts_unchanged(ul, &old, &self.snaps[v as usize], cfg)
                    } else {
                        !ul.sched.has_missing()
                    }
            });
            self.held[u as usize] |= bit;
            if !quiet {
                self.prepare(u, now, cfg, t);
                self.after(u, now, cfg, view, t);
            }
        }
    }

    /// Part mode: whether a neighbour's new announcement leaves every part `l` still
    /// needs and is not already fetching (listed, ahead of the playhead) as it was
    /// in the previous one: then the part scheduler would only record it (it plans
    /// only missing parts, from who holds them), so it can be held back like an
    /// announcement in segment mode (see [`Swarm::announce`]).
    fn parts_unchanged(
        &self,
        l: &Live,
        old: &Announcement,
        new: &Announcement,
        cfg: &SwarmConfig,
    ) -> bool {
        let (Announcement::Parts(new), old) = (new, old) else {
            return false;
        };
        let old: &[p2p::scheduler::PartKey] = match old {
            Announcement::Parts(o) => o,
            Announcement::Segments(_) => &[],
        };
        let units = &cfg.units;
        let pos = l.head.position_ms();
        (units.unit_at(pos)..l.next_list).all(|x| {
            if units.end_ms(x) <= pos || l.sched.has(x) || l.xfers.iter().any(|f| f.seg == x) {
                return true;
            }
            let k = units.key(x);
            old.contains(&k) == new.contains(&k)
        })
    }

    /// Hands `u`'s scheduler the announcements held back for it (see
    /// [`Swarm::announce`]); called before every other call to that scheduler.
    fn flush(&mut self, u: u16, now: u64) {
        let Some(mut bits) = self.held.get_mut(u as usize).map(std::mem::take) else {
            return;
        };
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let key = self.viewers[b].key;
            if let Some(ul) = self.viewers[u as usize].live.as_deref_mut() {
                ul.sched.peer_announced(now, key, &self.snaps[b]);
            }
        }
    }

    /// Readies `u`'s scheduler for a call at `now`: in part mode its player clock and
    /// position move to `now` first (`mediamesh peer`'s part viewer steps its clock
    /// every 50 ms, so its scheduler never plans from a stale position; part windows
    /// are a few hundred ms); then the held-back announcements are handed over.
    fn prepare(&mut self, u: u16, now: u64, cfg: &SwarmConfig, t: &mut Tally) {
        if cfg.units.parts() {
            if let Some(mut l) = self.viewers.get_mut(u as usize).and_then(|x| x.live.take()) {
                let before = l.head.position_ms();
                let end = l.sched.contiguous_end(before);
                let pos = l.head.advance(now, end);
                self.track(&mut l, now, t);
                if pos != before {
                    l.sched.set_position(now, pos);
                }
                self.viewers[u as usize].live = Some(l);
            }
        }
        self.flush(u, now);
    }

    /// Moves the player clock, tells the scheduler, carries out its actions and sets
    /// the next wake-up.
    fn service(&mut self, v: u16, now: u64, cfg: &SwarmConfig, view: &EdgeView, t: &mut Tally) {
        self.prepare(v, now, cfg, t);
        let Some(mut l) = self.viewers.get_mut(v as usize).and_then(|x| x.live.take()) else {
            return;
        };
        let delay = self.viewers[v as usize].spec.list_delay_ms;
        self.list_due(&mut l, now, delay, cfg);
        let before = l.head.position_ms();
        let end = l.sched.contiguous_end(before);
        let pos = l.head.advance(now, end);
        self.track(&mut l, now, t);
        if pos != before {
            l.sched.set_position(now, pos);
        }
        l.sched.tick(now);
        self.viewers[v as usize].live = Some(l);
        self.after(v, now, cfg, view, t);
    }

    /// Books play-state changes: stall intervals into the series, time-weighted
    /// latency to live.
    fn track(&self, l: &mut Live, now: u64, t: &mut Tally) {
        let class = self.class();
        if let PlayState::Playing = l.state {
            let span = now.saturating_sub(l.last_t);
            // Latency stays what it was while playing at real-time speed.
            let latency = l
                .last_t
                .saturating_sub(l.head.position_ms().saturating_sub(span));
            l.latency_sum += u128::from(latency) * u128::from(span);
            l.latency_ms_time += span;
        }
        let new = l.head.state();
        match (l.state, new) {
            (PlayState::Playing, PlayState::Stalled { since }) => {
                l.stall_from = since;
                t.mark(class, Field::StallStart, since);
            }
            (PlayState::Stalled { .. }, PlayState::Playing) => {
                t.mark(class, Field::StallEnd, now);
            }
            _ => {}
        }
        l.state = new;
        l.last_t = now;
    }

    fn list_due(&self, l: &mut Live, now: u64, delay: u64, cfg: &SwarmConfig) {
        if cfg.units.parts() {
            self.list_parts_due(l, now, cfg);
            return;
        }
        let seg = cfg.segment_ms;
        while l.next_list < cfg.segments {
            let id = l.next_list;
            let visible = match cfg.mode {
                Mode::Live => cfg.produced_at(id) + delay <= now,
                Mode::Vod => id * seg < l.head.position_ms() + cfg.sched.ahead_ms + seg,
            };
            if !visible {
                break;
            }
            l.sched.list_segment(now, cfg.units.segment_info(id));
            l.next_list += 1;
        }
    }

    /// Part mode: the blocking playlist reloads of `mediamesh peer`. A part is
    /// listed complete [`SwarmConfig::part_list_delay_ms`] after it is made, and the
    /// part after the newest complete one is listed at the same moment as the
    /// playlist's preload hint (`EXT-X-PRELOAD-HINT`), which its elected fetcher GETs
    /// at once.
    fn list_parts_due(&self, l: &mut Live, now: u64, cfg: &SwarmConfig) {
        let units = &cfg.units;
        let delay = cfg.part_list_delay_ms(self.plan.class.region);
        let count = units.count();
        while l.next_complete < count && units.produced_at(l.next_complete) + delay <= now {
            l.sched
                .list_part(now, units.part_info(l.next_complete), true);
            l.next_complete += 1;
            l.next_list = l.next_list.max(l.next_complete);
        }
        if l.next_list == l.next_complete && l.next_list < count {
            l.sched.list_part(now, units.part_info(l.next_list), false);
            l.next_list += 1;
        }
    }

    /// Carries out the scheduler's actions and books the next wake-up.
    fn after(&mut self, v: u16, now: u64, cfg: &SwarmConfig, view: &EdgeView, t: &mut Tally) {
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        let Some(l) = self.live_mut(v) else {
            self.actions = actions;
            return;
        };
        while let Some(a) = l.sched.poll_action() {
            actions.push(a);
        }
        for a in actions.drain(..) {
            match a {
                Act::FetchHttp(unit) => self.fetch_http(v, unit, now, cfg, view, t),
                Act::RequestPeer { peer, unit } => self.request_peer(v, peer, unit, now, cfg),
                Act::CancelPeer { peer, unit } => {
                    let slot = self.slot_of(peer);
                    let mut freed = None;
                    if let Some(l) = self.live_mut(v) {
                        if let Some(i) = l
                            .xfers
                            .iter()
                            .position(|x| x.seg == unit && x.from.is_some() && x.from == slot)
                        {
                            let x = l.xfers.swap_remove(i);
                            freed = x.from.map(|f| (f, x.slot));
                        }
                    }
                    if let Some((f, s)) = freed {
                        self.release(f, s);
                    }
                }
                Act::Announce => {
                    let ms = cfg.announce_ms;
                    let mut send = false;
                    if let Some(l) = self.live_mut(v) {
                        if !l.announce_pending && l.neighbors != 0 {
                            l.announce_pending = true;
                            send = true;
                        }
                    }
                    if send {
                        self.push(now + ms, Ev::Announce(v));
                    }
                }
                Act::Disconnect(peer) => {
                    if let Some(u) = self.slot_of(peer) {
                        if let Some(l) = self.live_mut(v) {
                            l.neighbors &= !(1u64 << u);
                        }
                    }
                }
            }
        }
        self.actions = actions;
        self.wake(v, now, cfg);
    }

    fn slot_of(&self, key: PeerKey) -> Option<u16> {
        self.viewers
            .iter()
            .position(|x| x.key == key)
            .map(|i| i as u16)
    }

    fn wake(&mut self, v: u16, now: u64, cfg: &SwarmConfig) {
        let delay = self.viewers[v as usize].spec.list_delay_ms;
        let Some(l) = self.live(v) else {
            return;
        };
        let mut next = l.sched.next_wakeup().unwrap_or(u64::MAX);
        let end = l.sched.contiguous_end(l.head.position_ms());
        if let Some(dry) = l.head.dry_at(end) {
            next = next.min(dry.max(now + 1));
        }
        if cfg.units.parts() {
            next = next.min(self.part_wake(l, now, cfg));
        } else if l.next_list < cfg.segments {
            let at = match cfg.mode {
                Mode::Live => cfg.produced_at(l.next_list) + delay,
                Mode::Vod => now + cfg.segment_ms,
            };
            next = next.min(at.max(now + 1));
        }
        if next == u64::MAX || next >= cfg.end_ms + cfg.segment_ms {
            return;
        }
        let next = next.max(now + 1);
        if l.wake_at > now && l.wake_at <= next {
            return;
        }
        if let Some(l) = self.live_mut(v) {
            l.wake_at = next;
        }
        self.push(next, Ev::Wake(v));
    }

    /// Part mode: when the viewer must next look at its parts besides its
    /// scheduler's own wake-ups: the next part listed complete (with the following
    /// preload hint), and the moment the first listed part it lacks turns urgent
    /// (the part scheduler leaves that to the caller's periodic tick; the real
    /// viewer ticks every 50 ms, the simulator wakes exactly then).
    fn part_wake(&self, l: &Live, now: u64, cfg: &SwarmConfig) -> u64 {
        let units = &cfg.units;
        let mut next = u64::MAX;
        if l.next_complete < units.count() {
            let delay = cfg.part_list_delay_ms(self.plan.class.region);
            next = next.min((units.produced_at(l.next_complete) + delay).max(now + 1));
        }
        if let PlayState::Playing = l.head.state() {
            let pos = l.head.position_ms();
            let urgent = cfg.part_cfg.urgent_ms;
            let first = units.unit_at(pos);
            let last = l.next_list.min(first + URGENCY_SCAN);
            if let Some(u) =
                (first..last).find(|&u| !l.sched.has(u) && units.start_ms(u) > pos + urgent)
            {
                next = next.min(now + (units.start_ms(u) - urgent - pos));
            }
        }
        next
    }

    fn fetch_http(
        &mut self,
        v: u16,
        seg: u64,
        now: u64,
        cfg: &SwarmConfig,
        view: &EdgeView,
        t: &mut Tally,
    ) {
        let region = self.plan.class.region;
        let q = self.plan.class.rendition;
        let (edge_rtt, _, origin_rtt, upstream_rtt) = cfg.rtts[region];
        let units = &cfg.units;
        let bytes = units.bytes(self.bitrate_bps, seg);
        let down = self.viewers[v as usize].spec.downlink_bps as f64;
        if let Some(l) = self.live(v) {
            if units.start_ms(seg) <= l.head.position_ms() + cfg.urgent_ms() {
                t.totals[self.class()].urgent_http += 1;
            }
        }
        // Part mode: the request may be the preload hint's, for a part not made yet;
        // the origin (and an edge on a miss, coalesced) holds it until the part
        // exists. `made` is when the part can leave the origin.
        let made = units.produced_at(seg);
        self.xfer_seq += 1;
        let id = self.xfer_seq;
        let (done, ok) = if cfg.preset.edges() {
            match view.route(region, self.plan.edge) {
                None => (now + HTTP_FAIL_MS, false),
                Some((e, crossed)) => {
                    let rtt = edge_rtt + if crossed { CROSS_REGION_RTT_MS } else { 0 };
                    let cached = view.cached(e, q, seg);
                    if !cached && !view.origin_up {
                        (now + rtt + HTTP_FAIL_MS, false)
                    } else {
                        let mut miss = 0;
                        if !cached {
                            miss = upstream_rtt + transfer_ms(bytes, UPSTREAM_BPS);
                            if cfg.preset.edge_transcode() && q != cfg.top_rendition {
                                miss += cfg.transcode_ms;
                            }
                        }
                        self.requests.push(Request {
                            edge: e,
                            rendition: q,
                            seg,
                            bytes,
                        });
                        let rate = down * view.factor[e];
                        let sent = if units.parts() {
                            // The edge has the part at the latest of: the request's
                            // arrival (plus the upstream fetch on a miss), and the
                            // part's own way from the origin once made (a held
                            // request is already waiting there).
                            let extra = miss.saturating_sub(upstream_rtt);
                            let asked = now + rtt / 2 + miss;
                            let pushed = made + upstream_rtt / 2 + extra;
                            asked.max(pushed) + (rtt - rtt / 2)
                        } else {
                            now + rtt + miss
                        };
                        (sent + transfer_ms(bytes, rate), true)
                    }
                }
            }
        } else if view.origin_up {
            self.requests.push(Request {
                edge: ORIGIN,
                rendition: q,
                seg,
                bytes,
            });
            let rate = down * view.origin_factor;
            let sent = if units.parts() {
                (now + origin_rtt / 2).max(made) + (origin_rtt - origin_rtt / 2)
            } else {
                now + origin_rtt
            };
            (sent + transfer_ms(bytes, rate), true)
        } else {
            (now + origin_rtt + HTTP_FAIL_MS, false)
        };
        if let Some(l) = self.live_mut(v) {
            l.xfers.push(Xfer {
                id,
                seg,
                bytes,
                from: None,
                slot: false,
            });
        }
        let ev = if ok {
            Ev::HttpDone { v, xfer: id }
        } else {
            Ev::HttpFail { v, xfer: id }
        };
        self.push(done, ev);
    }

    fn request_peer(&mut self, v: u16, peer: PeerKey, seg: u64, now: u64, cfg: &SwarmConfig) {
        let region = self.plan.class.region;
        let rtt = cfg.rtts[region].1;
        let bytes = cfg.units.bytes(self.bitrate_bps, seg);
        let down = self.viewers[v as usize].spec.downlink_bps;
        self.xfer_seq += 1;
        let id = self.xfer_seq;
        let slot = self.slot_of(peer);
        let linked =
            slot.is_some_and(|u| self.live(v).is_some_and(|l| l.neighbors & (1 << u) != 0));
        let mut xfer = Xfer {
            id,
            seg,
            bytes,
            from: slot,
            slot: false,
        };
        let mut ev = (now + rtt, Ev::PeerFail { v, xfer: id });
        if let (true, Some(u)) = (linked, slot) {
            let uplink = self.viewers[u as usize].spec.uplink_bps;
            let audit = cfg.audit;
            if let Some(s) = self.live_mut(u) {
                if s.sched.has(seg) && uplink > 0 && s.gate.try_start() {
                    let start = (now + rtt / 2).max(s.up_busy_until);
                    let dur = transfer_ms(bytes, uplink.min(down) as f64);
                    s.up_busy_until = start + dur;
                    s.upload_busy_ms += dur;
                    s.uploaded += bytes;
                    xfer.slot = true;
                    ev = (start + dur + rtt / 2, Ev::PeerDone { v, xfer: id });
                    if audit {
                        self.audit.push(Audit::Upload {
                            sender: u,
                            start,
                            end: start + dur,
                            bytes,
                            uplink_bps: uplink,
                        });
                    }
                }
            }
        }
        if let Some(l) = self.live_mut(v) {
            l.xfers.push(xfer);
        }
        self.push(ev.0, ev.1);
    }
}
