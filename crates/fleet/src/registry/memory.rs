//! The in-process store: a map of records with expiry instants, for `mediamesh serve`
//! (one process that is origin, edge, tracker and router at once) and for tests.
//! Not shared between processes; a fleet uses [`super::redis::RedisStore`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{NodeRecord, RegistryError, Store};

/// Records with their expiry.
#[derive(Default, Debug)]
pub struct MemoryStore {
    nodes: Mutex<HashMap<String, (NodeRecord, Instant)>>,
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn put(&self, node: &NodeRecord, ttl: Duration) -> Result<(), RegistryError> {
        self.nodes
            .lock()
            .insert(node.id.clone(), (node.clone(), Instant::now() + ttl));
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RegistryError> {
        self.nodes.lock().remove(id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<NodeRecord>, RegistryError> {
        let now = Instant::now();
        let mut nodes = self.nodes.lock();
        nodes.retain(|_, (_, until)| *until > now);
        let mut out: Vec<NodeRecord> = nodes.values().map(|(n, _)| n.clone()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::NodeKind;

    #[tokio::test]
    async fn records_expire_unless_renewed() {
        let s = MemoryStore::default();
        let a = NodeRecord::new(NodeKind::Edge, "http://a:1", "eu");
        let b = NodeRecord::new(NodeKind::Edge, "http://b:1", "eu");
        s.put(&a, Duration::from_millis(30)).await.expect("put");
        s.put(&b, Duration::from_secs(60)).await.expect("put");
        assert_eq!(s.list().await.expect("list").len(), 2);
        tokio::time::sleep(Duration::from_millis(60)).await;
        let left = s.list().await.expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, b.id);
        s.remove(&b.id).await.expect("remove");
        assert!(s.list().await.expect("list").is_empty());
    }
}
