//! The Redis store: one key per node (`mediamesh:node:{id}`, JSON, expiring with
//! `PX`) plus a set of ids (`mediamesh:nodes`) to list them without `KEYS`.
//!
//! Every call is bounded by [`RedisTimeouts`] and fails fast while Redis is away; the
//! connection (redis' `ConnectionManager`) is made lazily and remade after errors, so a
//! node started before Redis, or across a Redis restart, registers as soon as Redis
//! answers. Callers ([`super::membership::Membership`]) keep their last view meanwhile.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::Mutex;

use super::{NodeRecord, RegistryError, Store};

/// Key prefix of every key the fleet writes.
pub const PREFIX: &str = "mediamesh:";

/// Bounds on Redis calls.
#[derive(Clone, Copy, Debug)]
pub struct RedisTimeouts {
    /// Connecting (TCP + handshake).
    pub connect: Duration,
    /// One command or pipeline.
    pub op: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        RedisTimeouts {
            connect: Duration::from_millis(500),
            op: Duration::from_millis(800),
        }
    }
}

/// Node records in Redis.
pub struct RedisStore {
    client: redis::Client,
    conn: Mutex<Option<ConnectionManager>>,
    timeouts: RedisTimeouts,
    address: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.address)
            .finish()
    }
}

/// `redis://user:secret@host:port/0` → `redis://host:port/0` (for logs).
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl RedisStore {
    /// Parses the URL; does not connect yet.
    pub fn new(url: &str, timeouts: RedisTimeouts) -> Result<Self, RegistryError> {
        Ok(RedisStore {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
            timeouts,
            address: redact(url),
        })
    }

    /// The shared connection, made on first use (bounded by the connect timeout).
    pub async fn connection(&self) -> Result<ConnectionManager, RegistryError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeouts.connect)
            .set_response_timeout(self.timeouts.op)
            .set_number_of_retries(1)
            .set_max_delay(200);
        let limit = self.timeouts.connect + self.timeouts.op;
        let c = tokio::time::timeout(
            limit,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| RegistryError::Timeout(limit))??;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The client, for pub/sub connections of other fleet parts.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    async fn bounded<T, F>(&self, f: F) -> Result<T, RegistryError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        tokio::time::timeout(self.timeouts.op, f)
            .await
            .map_err(|_| RegistryError::Timeout(self.timeouts.op))?
            .map_err(RegistryError::from)
    }
}

fn node_key(id: &str) -> String {
    format!("{PREFIX}node:{id}")
}

fn set_key() -> String {
    format!("{PREFIX}nodes")
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn put(&self, node: &NodeRecord, ttl: Duration) -> Result<(), RegistryError> {
        let json = serde_json::to_string(node)?;
        let mut c = self.connection().await?;
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(node_key(&node.id))
            .arg(json)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(set_key())
            .arg(&node.id)
            .ignore();
        self.bounded(pipe.query_async::<()>(&mut c)).await
    }

    async fn remove(&self, id: &str) -> Result<(), RegistryError> {
        let mut c = self.connection().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(node_key(id))
            .ignore()
            .srem(set_key(), id)
            .ignore();
        self.bounded(pipe.query_async::<()>(&mut c)).await
    }

    async fn list(&self) -> Result<Vec<NodeRecord>, RegistryError> {
        let mut c = self.connection().await?;
        let mut ids: Vec<String> = self.bounded(c.smembers(set_key())).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|i| node_key(i)).collect();
        let values: Vec<Option<String>> = self
            .bounded(redis::cmd("MGET").arg(&keys).query_async(&mut c))
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for (id, v) in ids.iter().zip(values) {
            match v.map(|v| super::record::parse_record(&v)) {
                Some(Ok(n)) => out.push(n),
                Some(Err(e)) => {
                    tracing::warn!(node = %id, error = %e, "ignoring a registry record that is not valid");
                }
                None => gone.push(id.clone()),
            }
        }
        if !gone.is_empty() {
            // Expired records: drop their ids from the set too.
            let _ = self.bounded(c.srem::<_, _, ()>(set_key(), &gone)).await;
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.address.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redact("redis://u:pw@h:6379/0"), "redis://h:6379/0");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }

    #[tokio::test]
    async fn an_absent_redis_fails_fast() {
        // Port 1 on loopback: nothing listens; the call must fail, not hang.
        let s = RedisStore::new("redis://127.0.0.1:1", RedisTimeouts::default()).expect("url");
        let r = tokio::time::timeout(Duration::from_secs(30), s.list()).await;
        assert!(matches!(r, Ok(Err(_))), "{r:?}");
    }
}
