//! The heartbeat loop and the last known view.
//!
//! A node (origin, edge, tracker) or a reader (router, edge looking up the stream
//! directory) runs one [`Membership`]: every `interval` it writes its own record (when
//! it has one) and reads the whole list into a [`View`]. Readers call
//! [`View::nodes`], which never waits on the store. When the store fails the view keeps
//! the last list it read, the failure is logged once, and the next successful
//! heartbeat re-registers the node (a restarted Redis holds nothing until then).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::task::JoinHandle;

use super::{now_ms, NodeKind, NodeRecord, Store};

/// How long the view remembers a stream timeline after the origin that wrote it has
/// gone: a publisher moving to another origin finds its predecessor for this long.
pub const TIMELINE_MEMORY: Duration = Duration::from_secs(600);

/// A stream timeline an origin wrote, as the view last saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenTimeline {
    /// The origin's node id.
    pub node: String,
    /// The origin's opaque timeline (see [`NodeRecord::timelines`]).
    pub timeline: serde_json::Value,
    /// Wall-clock ms of the last read that still listed it.
    pub seen_ms: u64,
}

/// Timing of the heartbeat.
#[derive(Clone, Copy, Debug)]
pub struct MembershipConfig {
    pub interval: Duration,
    /// How long a record outlives its last heartbeat.
    pub ttl: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            interval: Duration::from_secs(1),
            ttl: Duration::from_secs(3),
        }
    }
}

/// The last list of nodes read from the store.
#[derive(Debug, Default)]
pub struct View {
    nodes: RwLock<Arc<Vec<NodeRecord>>>,
    store_up: AtomicBool,
    /// Wall-clock ms of the last successful read.
    read_ms: AtomicU64,
    /// Successful heartbeats that followed a failed one.
    reregistrations: AtomicU64,
    /// (stream, origin id) → the timeline last seen, kept for [`TIMELINE_MEMORY`].
    timelines: RwLock<HashMap<(String, String), SeenTimeline>>,
}

impl View {
    /// A view fixed to `nodes` (a router given `--edge` URLs instead of a registry).
    pub fn fixed(nodes: Vec<NodeRecord>) -> Arc<View> {
        let v = View::default();
        *v.nodes.write() = Arc::new(nodes);
        v.store_up.store(true, Ordering::Relaxed);
        Arc::new(v)
    }

    /// The last known nodes; never waits on the store.
    pub fn nodes(&self) -> Arc<Vec<NodeRecord>> {
        self.nodes.read().clone()
    }

    /// Whether the last call to the store succeeded.
    pub fn store_up(&self) -> bool {
        self.store_up.load(Ordering::Relaxed)
    }

    /// Wall-clock ms of the last successful read (0: never).
    pub fn read_ms(&self) -> u64 {
        self.read_ms.load(Ordering::Relaxed)
    }

    /// Timelines origins other than `exclude` wrote for `stream`, most recently seen
    /// first (records of origins that have gone are remembered for
    /// [`TIMELINE_MEMORY`]). Never waits on the store.
    pub fn timelines(&self, stream: &str, exclude: &str) -> Vec<SeenTimeline> {
        let mut out: Vec<SeenTimeline> = self
            .timelines
            .read()
            .iter()
            .filter(|((s, node), _)| s == stream && node != exclude)
            .map(|(_, t)| t.clone())
            .collect();
        out.sort_by(|a, b| b.seen_ms.cmp(&a.seen_ms).then_with(|| a.node.cmp(&b.node)));
        out
    }

    fn remember(&self, nodes: &[NodeRecord], now: u64) {
        let mut map = self.timelines.write();
        for n in nodes.iter().filter(|n| n.kind == NodeKind::Origin) {
            for (stream, timeline) in &n.timelines {
                map.insert(
                    (stream.clone(), n.id.clone()),
                    SeenTimeline {
                        node: n.id.clone(),
                        timeline: timeline.clone(),
                        seen_ms: now,
                    },
                );
            }
        }
        let keep = TIMELINE_MEMORY.as_millis() as u64;
        map.retain(|_, t| now.saturating_sub(t.seen_ms) <= keep);
    }

    /// How often the node registered again after the store had failed.
    pub fn reregistrations(&self) -> u64 {
        self.reregistrations.load(Ordering::Relaxed)
    }
}

/// Builds this node's record for each heartbeat (fresh load and streams).
pub type RecordFn = Arc<dyn Fn() -> NodeRecord + Send + Sync>;

/// The running heartbeat loop; stops (and deregisters, best effort) when dropped.
pub struct Membership {
    pub view: Arc<View>,
    task: JoinHandle<()>,
    store: Arc<dyn Store>,
    id: Option<String>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("store", &self.store.describe())
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(id) = self.id.take() {
            let store = self.store.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(1), store.remove(&id)).await;
                });
            }
        }
    }
}

impl Membership {
    /// Starts the loop. `record` is `None` for readers that do not register.
    pub fn spawn(
        store: Arc<dyn Store>,
        config: MembershipConfig,
        record: Option<RecordFn>,
    ) -> Membership {
        let view = Arc::new(View::default());
        let id = record.as_ref().map(|f| f().id);
        let task = tokio::spawn(run(store.clone(), config, record, view.clone()));
        Membership {
            view,
            task,
            store,
            id,
        }
    }

    /// One heartbeat now, for tests and start-up (the loop also runs one at once).
    pub async fn beat_once(
        store: &dyn Store,
        config: &MembershipConfig,
        record: Option<&RecordFn>,
        view: &View,
    ) -> bool {
        let mut ok = true;
        if let Some(f) = record {
            let mut r = f();
            r.updated_ms = now_ms();
            if let Err(e) = store.put(&r, config.ttl).await {
                tracing::debug!(error = %e, "heartbeat failed");
                ok = false;
            }
        }
        if ok {
            match store.list().await {
                Ok(nodes) => {
                    let now = now_ms();
                    view.remember(&nodes, now);
                    *view.nodes.write() = Arc::new(nodes);
                    view.read_ms.store(now, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "registry read failed");
                    ok = false;
                }
            }
        }
        ok
    }
}

async fn run(
    store: Arc<dyn Store>,
    config: MembershipConfig,
    record: Option<RecordFn>,
    view: Arc<View>,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tick.tick().await;
        let ok = Membership::beat_once(&*store, &config, record.as_ref(), &view).await;
        let was = view.store_up.swap(ok, Ordering::Relaxed);
        ::metrics::gauge!("mediamesh_fleet_registry_up").set(if ok { 1.0 } else { 0.0 });
        if !ok {
            ::metrics::counter!("mediamesh_fleet_registry_errors_total").increment(1);
        }
        match (first, was, ok) {
            (true, _, true) => {
                tracing::info!(registry = %store.describe(), nodes = view.nodes().len(), "joined the registry")
            }
            (true, _, false) | (false, true, false) => tracing::warn!(
                registry = %store.describe(),
                nodes = view.nodes().len(),
                "registry unreachable; serving with the last known view and retrying every {:?}",
                config.interval
            ),
            (false, false, true) => {
                view.reregistrations.fetch_add(1, Ordering::Relaxed);
                tracing::info!(registry = %store.describe(), nodes = view.nodes().len(), "registry back; registered again");
            }
            _ => {}
        }
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::memory::MemoryStore;
    use crate::registry::{NodeKind, RegistryError};

    /// A store that fails while `down` is set, to test the last-known view.
    #[derive(Default)]
    struct Flaky {
        inner: MemoryStore,
        down: AtomicBool,
    }

    #[async_trait::async_trait]
    impl Store for Flaky {
        async fn put(&self, n: &NodeRecord, ttl: Duration) -> Result<(), RegistryError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(RegistryError::Timeout(ttl));
            }
            self.inner.put(n, ttl).await
        }
        async fn remove(&self, id: &str) -> Result<(), RegistryError> {
            self.inner.remove(id).await
        }
        async fn list(&self) -> Result<Vec<NodeRecord>, RegistryError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(RegistryError::Timeout(Duration::ZERO));
            }
            self.inner.list().await
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    #[tokio::test]
    async fn timelines_are_remembered_after_their_origin_leaves() {
        let store = MemoryStore::default();
        let config = MembershipConfig::default();
        let view = View::default();
        let mut a = NodeRecord::new(NodeKind::Origin, "http://a:1", "eu");
        a.timelines
            .insert("cam".into(), serde_json::json!({"anchor": 1}));
        let b = NodeRecord::new(NodeKind::Origin, "http://b:1", "eu");
        store.put(&a, Duration::from_secs(60)).await.expect("put");
        let rec: RecordFn = Arc::new(move || b.clone());
        assert!(Membership::beat_once(&store, &config, Some(&rec), &view).await);
        let seen = view.timelines("cam", "origin-b-1");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].node, a.id);
        assert!(
            view.timelines("cam", &a.id).is_empty(),
            "own records are excluded"
        );
        assert!(view.timelines("other", "origin-b-1").is_empty());
        // A leaves (its record expires): the view still knows its last timeline.
        store.remove(&a.id).await.expect("remove");
        assert!(Membership::beat_once(&store, &config, Some(&rec), &view).await);
        assert_eq!(view.timelines("cam", "origin-b-1").len(), 1);
        // Until the memory runs out.
        view.remember(&[], now_ms() + TIMELINE_MEMORY.as_millis() as u64 + 1);
        assert!(view.timelines("cam", "origin-b-1").is_empty());
    }

    #[tokio::test]
    async fn the_view_survives_a_store_outage() {
        let store = Flaky::default();
        let config = MembershipConfig::default();
        let view = View::default();
        let rec: RecordFn = Arc::new(|| NodeRecord::new(NodeKind::Edge, "http://a:1", "eu"));
        assert!(Membership::beat_once(&store, &config, Some(&rec), &view).await);
        assert_eq!(view.nodes().len(), 1);
        store.down.store(true, Ordering::Relaxed);
        assert!(!Membership::beat_once(&store, &config, Some(&rec), &view).await);
        assert_eq!(view.nodes().len(), 1, "last known view kept");
        // The store comes back empty (a restarted Redis); the next beat registers again.
        store.inner.remove("edge-a-1").await.expect("remove");
        store.down.store(false, Ordering::Relaxed);
        assert!(Membership::beat_once(&store, &config, Some(&rec), &view).await);
        assert_eq!(store.inner.list().await.expect("list").len(), 1);
    }
}
