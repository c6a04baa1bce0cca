//! The binary's wiring of fleet-wide viewer accounting and operator state:
//! - what each role adds to its heartbeat, as a [`FillFn`] (edges: viewer sessions and
//!   CMCD quality per stream; origins: their direct viewers; trackers: their own peers
//!   per swarm);
//! - the origin's [`AudienceSource`] (its streams' totals over the fleet, swarms mapped
//!   to streams by the info hashes of the origin's own multivariant playlists);
//! - the origin's [`FleetControl`] over `fleet::control` (Redis), and applying the
//!   fleet's state back to origins, trackers and routers every second.
//!
//! Not here: the counting rule and the Redis layout (`fleet::viewers`,
//! `fleet::control`), the write API itself (`origin::http::admin`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet::control::{Control, ControlState, KeyRow, KeySource};
use fleet::registry::membership::View;
use fleet::registry::NodeRecord;
use fleet::viewers::{CmcdCounts, StreamViewers, SwarmPeers, MAX_SWARMS, MAX_VIEWER_STREAMS};
use origin::live::fleet::{Audience, AudienceSource, FleetControl, FleetError, FleetFuture};
use origin::live::keys::{KeyEntry, KeySource as OriginKeySource};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

/// Background tasks of a role, stopped when dropped.
#[derive(Debug, Default)]
pub struct Tasks(pub Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// How often every node reads the fleet's operator state.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How long the info hashes of a stream's swarms are reused.
const HASHES_TTL: Duration = Duration::from_secs(5);

/// Keeps the busiest `max` (by `key`).
fn busiest<T>(mut v: Vec<T>, max: usize, key: impl Fn(&T) -> u64) -> Vec<T> {
    if v.len() > max {
        v.sort_by_key(|t| std::cmp::Reverse(key(t)));
        v.truncate(max);
    }
    v
}

/// Adds what a node kind says beyond its load to each heartbeat's record (origins:
/// the stream directory).
pub type FillFn = Arc<dyn Fn(&mut NodeRecord) + Send + Sync>;

/// An edge's heartbeat addition: its viewer sessions and CMCD per stream.
pub fn edge_fill(edge: Arc<edge::node::Edge>) -> FillFn {
    Arc::new(move |r: &mut NodeRecord| {
        let lines = edge
            .viewers
            .report()
            .into_iter()
            .map(|l| StreamViewers {
                stream: l.stream,
                sessions: l.sessions,
                cmcd: l.cmcd.map(|c| CmcdCounts {
                    requests: c.requests,
                    starved: c.starved,
                    br_sum: c.br_sum,
                    br_n: c.br_n,
                    mtp_sum: c.mtp_sum,
                    mtp_n: c.mtp_n,
                    bl_sum: c.bl_sum,
                    bl_n: c.bl_n,
                }),
            })
            .collect();
        r.viewers = busiest(lines, MAX_VIEWER_STREAMS, |v| v.sessions);
    })
}

/// `serve`'s edge record: its viewer sessions, and the swarms of the tracker that runs
/// in the same process (so `serve` needs no tracker record of its own, which would
/// count the process's load twice).
pub fn serve_edge_fill(
    edge: Arc<edge::node::Edge>,
    tracker: p2p::tracker::ws::TrackerService,
) -> FillFn {
    let (viewers, swarms) = (edge_fill(edge), tracker_fill(tracker));
    Arc::new(move |r: &mut NodeRecord| {
        viewers(r);
        swarms(r);
    })
}

/// An origin's heartbeat addition for viewer accounting: its direct viewers.
pub fn origin_viewers(streams: &origin::live::Streams, r: &mut NodeRecord) {
    let lines = streams
        .list()
        .iter()
        .filter_map(|s| {
            let n = s.viewers() as u64;
            (n > 0).then(|| StreamViewers {
                stream: s.name.clone(),
                sessions: n,
                cmcd: None,
            })
        })
        .collect();
    r.viewers = busiest(lines, MAX_VIEWER_STREAMS, |v| v.sessions);
}

/// A tracker's heartbeat addition: its own peers per swarm.
pub fn tracker_fill(tracker: p2p::tracker::ws::TrackerService) -> FillFn {
    Arc::new(move |r: &mut NodeRecord| {
        let swarms = tracker
            .local_swarm_counts()
            .into_iter()
            .map(|(ih, n)| SwarmPeers {
                info_hash: hex(&ih.0),
                peers: n as u64,
            })
            .collect();
        r.swarms = busiest(swarms, MAX_SWARMS, |s| s.peers);
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The info hashes (hex) of the swarms of `stream`'s renditions, from the origin's
/// own multivariant playlist, as players compute them from the path
/// `/live/{stream}/index.m3u8`.
fn stream_hashes(s: &origin::live::LiveStream) -> HashSet<String> {
    let text = origin::live::manifest::multivariant(s).write();
    let path = format!("/live/{}/index.m3u8", s.name);
    p2p::peer::hls::info_hashes_of_text(&path, &text)
        .unwrap_or_default()
        .iter()
        .map(|h| hex(h))
        .collect()
}

/// An origin's view of its streams' audience over the fleet.
pub struct FleetAudience {
    view: Arc<View>,
    streams: Arc<origin::live::Streams>,
    hashes: Mutex<HashMap<String, (Instant, HashSet<String>)>>,
}

impl std::fmt::Debug for FleetAudience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetAudience").finish()
    }
}

impl FleetAudience {
    pub fn new(view: Arc<View>, streams: Arc<origin::live::Streams>) -> Self {
        FleetAudience {
            view,
            streams,
            hashes: Mutex::new(HashMap::new()),
        }
    }

    fn hashes_of(&self, name: &str) -> HashSet<String> {
        let now = Instant::now();
        if let Some((at, h)) = self.hashes.lock().get(name) {
            if now.duration_since(*at) < HASHES_TTL {
                return h.clone();
            }
        }
        let h = self
            .streams
            .get(name)
            .map(|s| stream_hashes(&s))
            .unwrap_or_default();
        let mut map = self.hashes.lock();
        map.retain(|_, (at, _)| now.duration_since(*at) < HASHES_TTL * 4);
        map.insert(name.to_string(), (now, h.clone()));
        h
    }
}

impl AudienceSource for FleetAudience {
    fn audience(&self, stream: &str) -> Option<Audience> {
        let nodes = self.view.nodes();
        let a = fleet::viewers::audience(&nodes, stream, &self.hashes_of(stream));
        Some(Audience {
            viewers: a.viewers,
            detail: serde_json::to_value(&a).ok()?,
        })
    }
}

/// The origin's writes to the fleet's Redis, and the kick counters it has seen (its
/// own kicks included, so that its next read does not kick a publisher that came
/// back within the second).
#[derive(Debug)]
pub struct RedisControl {
    control: Arc<Control>,
    kicks: Arc<Mutex<BTreeMap<String, u64>>>,
}

fn fleet_err(e: fleet::control::ControlError) -> FleetError {
    FleetError(e.to_string())
}

fn row(e: &KeyEntry) -> KeyRow {
    KeyRow {
        id: e.id.clone(),
        digest: e.digest,
        added_ms: e.added_ms,
        source: match e.source {
            OriginKeySource::Config => KeySource::Config,
            OriginKeySource::Api => KeySource::Api,
        },
    }
}

fn entry(r: &KeyRow) -> KeyEntry {
    KeyEntry {
        id: r.id.clone(),
        digest: r.digest,
        added_ms: r.added_ms,
        source: match r.source {
            KeySource::Config => OriginKeySource::Config,
            KeySource::Api => OriginKeySource::Api,
        },
    }
}

impl FleetControl for RedisControl {
    fn add_key<'a>(&'a self, stream: &'a str, e: &'a KeyEntry) -> FleetFuture<'a, bool> {
        Box::pin(async move {
            self.control
                .add_key(stream, &row(e))
                .await
                .map_err(fleet_err)
        })
    }

    fn revoke_keys<'a>(&'a self, stream: &'a str, id: Option<&'a str>) -> FleetFuture<'a, u64> {
        Box::pin(async move {
            self.control
                .revoke_keys(stream, id)
                .await
                .map_err(fleet_err)
        })
    }

    fn set_p2p<'a>(&'a self, stream: &'a str, enabled: bool) -> FleetFuture<'a, ()> {
        Box::pin(async move {
            self.control
                .set_p2p(stream, enabled)
                .await
                .map_err(fleet_err)
        })
    }

    fn set_record<'a>(&'a self, stream: &'a str, on: bool) -> FleetFuture<'a, ()> {
        Box::pin(async move { self.control.set_record(stream, on).await.map_err(fleet_err) })
    }

    fn kick<'a>(&'a self, stream: &'a str) -> FleetFuture<'a, ()> {
        Box::pin(async move {
            let n = self.control.kick(stream).await.map_err(fleet_err)?;
            let mut seen = self.kicks.lock();
            let at = seen.entry(stream.to_string()).or_default();
            *at = (*at).max(n);
            Ok(())
        })
    }
}

/// What an origin seeds into the fleet before it follows it: its configured keys
/// (for streams the fleet does not know yet) and its `--p2p-off` streams.
fn seed_of(streams: &origin::live::Streams) -> fleet::control::Seed {
    fleet::control::Seed {
        keys: streams
            .keys()
            .snapshot()
            .into_iter()
            .map(|(s, entries)| (s, entries.iter().map(row).collect()))
            .collect(),
        p2p_off: streams.p2p_off(),
    }
}

/// Applies the fleet's state to an origin: its key table, its P2P and recording
/// switches, and the kicks made since the last read.
fn apply_to_origin(
    streams: &origin::live::Streams,
    recordings: &origin::record::Recordings,
    kicks: &Mutex<BTreeMap<String, u64>>,
    state: &ControlState,
    first: bool,
) {
    let table: BTreeMap<String, Vec<KeyEntry>> = state
        .keys
        .iter()
        .map(|(s, rows)| (s.clone(), rows.iter().map(entry).collect()))
        .collect();
    if table != streams.keys().snapshot() {
        streams.keys().replace(table);
    }
    let here: BTreeSet<String> = streams.p2p_off().into_iter().collect();
    for name in here.difference(&state.p2p_off) {
        let _ = streams.set_p2p(name, true);
    }
    for name in state.p2p_off.difference(&here) {
        let _ = streams.set_p2p(name, false);
    }
    for (name, &on) in &state.record {
        if recordings.switch(name) == Some(on) {
            continue;
        }
        let done = if on {
            recordings.start(name, streams).map(|_| ())
        } else {
            recordings.stop(name).map(|_| ())
        };
        match done {
            Ok(()) => tracing::info!(stream = %name, on, "fleet: recording switched"),
            Err(e) => {
                tracing::warn!(stream = %name, error = %e, "fleet: recording switch not applied")
            }
        }
    }
    let mut seen = kicks.lock();
    for (name, n) in &state.kicks {
        // Counters only grow: an older read never lowers what was seen (this origin's
        // own kicks are marked seen as they are made).
        if seen.get(name).is_some_and(|b| b >= n) {
            continue;
        }
        seen.insert(name.clone(), *n);
        if !first && streams.kick(name).is_ok() {
            tracing::info!(stream = %name, "fleet: publisher kicked (asked on another node)");
        }
    }
}

/// `origin`/`serve` with a Redis registry: writes go to the fleet first, and the
/// fleet's state is applied here every second. `None` without Redis.
pub fn join_origin_control(
    registry: &str,
    streams: Arc<origin::live::Streams>,
    recordings: Arc<origin::record::Recordings>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(control) = Control::open(registry).map_err(|e| anyhow::anyhow!("--registry: {e}"))?
    else {
        return Ok(None);
    };
    let control = Arc::new(control);
    let kicks = Arc::new(Mutex::new(BTreeMap::new()));
    streams.set_fleet_control(Arc::new(RedisControl {
        control: control.clone(),
        kicks: kicks.clone(),
    }));
    let seed = seed_of(&streams);
    tracing::info!("publish keys, P2P switches and kicks are shared with the fleet through Redis");
    Ok(Some(fleet::control::spawn_sync(
        control,
        SYNC_EVERY,
        Some(seed),
        Arc::new(move |state, first| apply_to_origin(&streams, &recordings, &kicks, state, first)),
    )))
}

/// `tracker --registry redis://…`: refuses the swarms of the streams the fleet
/// turned P2P off for, reading each one's playlist from an origin that holds it.
pub fn join_tracker_control(
    registry: &str,
    tracker: p2p::tracker::ws::TrackerService,
    view: Arc<View>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let Some(control) = Control::open(registry).map_err(|e| anyhow::anyhow!("--registry: {e}"))?
    else {
        return Ok(Vec::new());
    };
    let off: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let changed = Arc::new(tokio::sync::Notify::new());
    let sync = {
        let (off, changed) = (off.clone(), changed.clone());
        fleet::control::spawn_sync(
            Arc::new(control),
            SYNC_EVERY,
            None,
            Arc::new(move |state, _| {
                let mut o = off.lock();
                if *o != state.p2p_off {
                    tracing::info!(streams = ?state.p2p_off, "fleet: P2P off for these streams");
                    *o = state.p2p_off.clone();
                    changed.notify_one();
                }
            }),
        )
    };
    let refuser = tokio::spawn(p2p::peer::refuse_playlists(
        tracker,
        move || {
            let nodes = view.nodes();
            off.lock()
                .iter()
                .map(|s| {
                    let url = fleet::registry::origins_for(&nodes, s)
                        .into_iter()
                        .next()
                        .map(|o| format!("{}/live/{s}/index.m3u8", o.public_url));
                    (s.clone(), url)
                })
                .collect()
        },
        changed,
    ));
    Ok(vec![sync, refuser])
}

/// `router --registry redis://…`: follows the fleet's drain marks, and answers the
/// control to write them through. `None` without Redis.
pub fn join_router_control(
    registry: &str,
    drains: Arc<fleet::router::server::Drains>,
) -> anyhow::Result<Option<(Arc<Control>, JoinHandle<()>)>> {
    let Some(control) = Control::open(registry).map_err(|e| anyhow::anyhow!("--registry: {e}"))?
    else {
        return Ok(None);
    };
    let control = Arc::new(control);
    let task = fleet::control::spawn_sync(
        control.clone(),
        SYNC_EVERY,
        None,
        Arc::new(move |state, _| {
            let here: BTreeSet<String> = drains.ids().into_iter().collect();
            for id in here.difference(&state.drains) {
                let _ = drains.set(id, false);
            }
            for id in state.drains.difference(&here) {
                let _ = drains.set(id, true);
            }
        }),
    );
    Ok(Some((control, task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kicks_apply_once_and_not_on_the_first_read() {
        let streams = origin::live::Streams::new(
            Default::default(),
            Default::default(),
            HashMap::new(),
            false,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let recordings = origin::record::Recordings::open(
            Default::default(),
            dir.path(),
            origin::hooks::Hooks::none(),
            None,
        );
        let kicks = Mutex::new(BTreeMap::new());
        let mut state = ControlState::default();
        state.kicks.insert("cam".into(), 3);
        state.p2p_off.insert("cam".into());
        apply_to_origin(&streams, &recordings, &kicks, &state, true);
        assert_eq!(kicks.lock()["cam"], 3);
        assert!(!streams.p2p_enabled("cam"));
        state.p2p_off.clear();
        apply_to_origin(&streams, &recordings, &kicks, &state, false);
        assert!(streams.p2p_enabled("cam"));
        // A key table from the fleet replaces the origin's.
        state.keys.insert(
            "cam".into(),
            vec![KeyRow {
                id: origin::live::keys::key_id("cam", "0123456789abcdef"),
                digest: origin::live::keys::digest("0123456789abcdef"),
                added_ms: 1,
                source: KeySource::Api,
            }],
        );
        apply_to_origin(&streams, &recordings, &kicks, &state, false);
        assert!(streams.keys().allows("cam", Some("0123456789abcdef")));
        assert!(!streams.keys().allows("cam", Some("another-key-0123456")));
        // Recording switches set anywhere in the fleet apply here; unset ones leave the
        // configuration in charge.
        assert_eq!(recordings.switch("cam"), None);
        state.record.insert("cam".into(), true);
        apply_to_origin(&streams, &recordings, &kicks, &state, false);
        assert_eq!(recordings.switch("cam"), Some(true));
        assert!(recordings.wanted("cam"));
        state.record.insert("cam".into(), false);
        apply_to_origin(&streams, &recordings, &kicks, &state, false);
        assert!(!recordings.wanted("cam"));
        assert_eq!(recordings.switch("other"), None);
    }
}
