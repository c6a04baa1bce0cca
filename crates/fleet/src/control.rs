//! Fleet-wide operator state in Redis: what the write API changes (P2P off per stream,
//! publish keys, kicks, edge drains, recording switches) kept where every origin, tracker and router of a
//! fleet reads it, so a change made on one node takes effect on all of them.
//!
//! Keys (all under [`PREFIX`](crate::registry::redis::PREFIX)):
//! - `control:p2p_off` — set of stream names whose P2P is off;
//! - `control:drain` — set of edge ids the routers send no new viewers;
//! - `control:keys` — hash: field `{stream}/{id}` → `{"digest", "added_ms", "source"}`
//!   (the SHA-256 of the secret, never the secret), and field `{stream}/` → `""`, the
//!   mark that the stream has (or had) keys: a stream with the mark and no key is
//!   locked, as on a single origin;
//! - `control:kicks` — hash: stream → a counter each kick increments; an origin that
//!   sees a stream's counter go up kicks its publisher of that stream;
//! - `control:record` — hash: stream → `on` | `off`, the write API's recording switch;
//!   every origin applies it, so the origin the stream is published to records it
//!   whichever origin was asked.
//!
//! A writer changes Redis first and itself second, so a change that did not reach
//! Redis changes nothing. Every node reads the whole state every second
//! ([`spawn_sync`]) and applies it. What is read is network input: every list is
//! bounded ([`MAX_ENTRIES`]) and every name, id and digest checked
//! ([`parse_state`]); bad entries are dropped and counted.
//!
//! Not here: what applying means (the binary wires it to `origin::live::Streams`,
//! the tracker and the router's drains), and no state without Redis: a single
//! process keeps its own, as before.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::registry::record::valid_stream;
use crate::registry::redis::{RedisStore, RedisTimeouts, PREFIX};
use crate::registry::RegistryError;

/// Most entries of each list read from Redis (streams off, drains, key fields, kicks).
pub const MAX_ENTRIES: usize = 20_000;
/// Largest value of one key field, bytes.
const MAX_KEY_VALUE: usize = 512;

/// Why a control operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("fleet control state in Redis holds {1} entries in {0}, over the {MAX_ENTRIES} limit; clean it up")]
    TooLarge(&'static str, usize),
}

/// Where a key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    Config,
    Api,
}

/// One publish key as the fleet holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRow {
    /// 12 lowercase hex digits (see `origin::live::keys::key_id`).
    pub id: String,
    /// SHA-256 of the secret.
    pub digest: [u8; 32],
    pub added_ms: u64,
    pub source: KeySource,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyValue {
    digest: String,
    added_ms: u64,
    source: KeySource,
}

/// The fleet's operator state as last read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControlState {
    pub p2p_off: BTreeSet<String>,
    pub drains: BTreeSet<String>,
    /// Stream → its keys; an empty list is a locked stream.
    pub keys: BTreeMap<String, Vec<KeyRow>>,
    /// Stream → kick counter.
    pub kicks: BTreeMap<String, u64>,
    /// Stream → recording switched on (`true`) or off by the write API.
    pub record: BTreeMap<String, bool>,
    /// Entries dropped as invalid in this read.
    pub invalid: usize,
}

/// Whether `id` is an edge id (`[A-Za-z0-9._-]`, 1–128).
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_key_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Builds the state from what Redis answered, dropping (and counting) whatever is not
/// valid. Pure: what the fuzz target drives.
pub fn parse_state(
    p2p_off: Vec<String>,
    drains: Vec<String>,
    keys: Vec<(String, String)>,
    kicks: Vec<(String, String)>,
    record: Vec<(String, String)>,
) -> ControlState {
    let mut s = ControlState::default();
    for name in p2p_off.into_iter().take(MAX_ENTRIES) {
        if valid_stream(&name) {
            s.p2p_off.insert(name);
        } else {
            s.invalid += 1;
        }
    }
    for id in drains.into_iter().take(MAX_ENTRIES) {
        if valid_node_id(&id) {
            s.drains.insert(id);
        } else {
            s.invalid += 1;
        }
    }
    for (field, value) in keys.into_iter().take(MAX_ENTRIES) {
        let Some((stream, id)) = field.split_once('/') else {
            s.invalid += 1;
            continue;
        };
        if !valid_stream(stream) {
            s.invalid += 1;
            continue;
        }
        if id.is_empty() {
            s.keys.entry(stream.to_string()).or_default();
            continue;
        }
        let row = (valid_key_id(id) && value.len() <= MAX_KEY_VALUE)
            .then(|| serde_json::from_str::<KeyValue>(&value).ok())
            .flatten()
            .and_then(|v| {
                let mut digest = [0u8; 32];
                hex_decode(&v.digest, &mut digest).then_some(KeyRow {
                    id: id.to_string(),
                    digest,
                    added_ms: v.added_ms,
                    source: v.source,
                })
            });
        match row {
            Some(r) => s.keys.entry(stream.to_string()).or_default().push(r),
            None => s.invalid += 1,
        }
    }
    for rows in s.keys.values_mut() {
        rows.sort_by(|a, b| a.added_ms.cmp(&b.added_ms).then(a.id.cmp(&b.id)));
    }
    for (stream, n) in kicks.into_iter().take(MAX_ENTRIES) {
        match (valid_stream(&stream), n.parse::<u64>()) {
            (true, Ok(n)) => {
                s.kicks.insert(stream, n);
            }
            _ => s.invalid += 1,
        }
    }
    for (stream, on) in record.into_iter().take(MAX_ENTRIES) {
        let on = match on.as_str() {
            "on" => true,
            "off" => false,
            _ => {
                s.invalid += 1;
                continue;
            }
        };
        if valid_stream(&stream) {
            s.record.insert(stream, on);
        } else {
            s.invalid += 1;
        }
    }
    s
}

fn hex_decode(text: &str, out: &mut [u8; 32]) -> bool {
    let b = text.as_bytes();
    if b.len() != 64 {
        return false;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, o) in out.iter_mut().enumerate() {
        match (nib(b[2 * i]), nib(b[2 * i + 1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

fn hex_encode(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn key(name: &str) -> String {
    format!("{PREFIX}control:{name}")
}

/// Adds a key field unless it is there; sets the stream's mark. Returns 1 if added.
const ADD_KEY: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], '')
return redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3])
";

/// Revokes one key field (ARGV[2] non-empty) or every key of the stream; the mark
/// stays (the stream stays locked). Returns how many were revoked.
const REVOKE: &str = r"
if ARGV[2] ~= '' then
  return redis.call('HDEL', KEYS[1], ARGV[1] .. ARGV[2])
end
local n = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if #f > #ARGV[1] and string.sub(f, 1, #ARGV[1]) == ARGV[1] then
    n = n + redis.call('HDEL', KEYS[1], f)
  end
end
return n
";

/// Seeds configured keys of a stream the fleet does not know yet (no mark): returns 1
/// if seeded, 0 if the fleet already had the stream (its table wins).
const SEED: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], '') == 0 then
  return 0
end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
";

/// The fleet's operator state in Redis.
pub struct Control {
    store: RedisStore,
    op: Duration,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("redis", &self.store)
            .finish()
    }
}

impl Control {
    /// For `redis://…` registry URLs; `None` for others (`memory`: no fleet state).
    pub fn open(url: &str) -> Result<Option<Control>, ControlError> {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Ok(None);
        }
        let timeouts = RedisTimeouts::default();
        Ok(Some(Control {
            store: RedisStore::new(url, timeouts)?,
            op: timeouts.op,
        }))
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ControlError> {
        let mut c = self.store.connection().await?;
        tokio::time::timeout(self.op, cmd.query_async::<T>(&mut c))
            .await
            .map_err(|_| RegistryError::Timeout(self.op))?
            .map_err(|e| ControlError::Registry(e.into()))
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        body: &str,
        key: &str,
        args: &[String],
    ) -> Result<T, ControlError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(body).arg(1).arg(key);
        for a in args {
            cmd.arg(a);
        }
        self.run(&cmd).await
    }

    /// Reads the whole state (bounded: a list over [`MAX_ENTRIES`] is an error).
    pub async fn read(&self) -> Result<ControlState, ControlError> {
        let mut c = self.store.connection().await?;
        let (p, d, k, q, w): (usize, usize, usize, usize, usize) = tokio::time::timeout(
            self.op,
            redis::pipe()
                .scard(key("p2p_off"))
                .scard(key("drain"))
                .hlen(key("keys"))
                .hlen(key("kicks"))
                .hlen(key("record"))
                .query_async(&mut c),
        )
        .await
        .map_err(|_| RegistryError::Timeout(self.op))?
        .map_err(|e| ControlError::Registry(e.into()))?;
        for (what, n) in [
            ("control:p2p_off", p),
            ("control:drain", d),
            ("control:keys", k),
            ("control:kicks", q),
            ("control:record", w),
        ] {
            if n > MAX_ENTRIES {
                return Err(ControlError::TooLarge(what, n));
            }
        }
        type All = (
            Vec<String>,
            Vec<String>,
            Vec<(String, String)>,
            Vec<(String, String)>,
            Vec<(String, String)>,
        );
        let (p2p, drains, keys, kicks, record): All = tokio::time::timeout(
            self.op,
            redis::pipe()
                .smembers(key("p2p_off"))
                .smembers(key("drain"))
                .hgetall(key("keys"))
                .hgetall(key("kicks"))
                .hgetall(key("record"))
                .query_async(&mut c),
        )
        .await
        .map_err(|_| RegistryError::Timeout(self.op))?
        .map_err(|e| ControlError::Registry(e.into()))?;
        Ok(parse_state(p2p, drains, keys, kicks, record))
    }

    /// Turns P2P of `stream` on or off for the fleet.
    pub async fn set_p2p(&self, stream: &str, enabled: bool) -> Result<(), ControlError> {
        let cmd = if enabled {
            redis::cmd("SREM")
        } else {
            redis::cmd("SADD")
        };
        let mut cmd = cmd;
        cmd.arg(key("p2p_off")).arg(stream);
        self.run::<i64>(&cmd).await.map(|_| ())
    }

    /// Switches recording of `stream` on or off for every origin.
    pub async fn set_record(&self, stream: &str, on: bool) -> Result<(), ControlError> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key("record"))
            .arg(stream)
            .arg(if on { "on" } else { "off" });
        self.run::<i64>(&cmd).await.map(|_| ())
    }

    /// Marks edge `id` draining (or not) for every router.
    pub async fn set_drain(&self, id: &str, draining: bool) -> Result<(), ControlError> {
        let mut cmd = redis::cmd(if draining { "SADD" } else { "SREM" });
        cmd.arg(key("drain")).arg(id);
        self.run::<i64>(&cmd).await.map(|_| ())
    }

    /// Adds a key; `false` if the stream already has it.
    pub async fn add_key(&self, stream: &str, row: &KeyRow) -> Result<bool, ControlError> {
        let value = serde_json::to_string(&KeyValue {
            digest: hex_encode(&row.digest),
            added_ms: row.added_ms,
            source: row.source,
        })
        .map_err(|e| ControlError::Registry(e.into()))?;
        let n: i64 = self
            .script(
                ADD_KEY,
                &key("keys"),
                &[format!("{stream}/"), format!("{stream}/{}", row.id), value],
            )
            .await?;
        Ok(n == 1)
    }

    /// Revokes key `id` of `stream`, or all of its keys; how many were revoked.
    pub async fn revoke_keys(&self, stream: &str, id: Option<&str>) -> Result<u64, ControlError> {
        let n: i64 = self
            .script(
                REVOKE,
                &key("keys"),
                &[format!("{stream}/"), id.unwrap_or("").to_string()],
            )
            .await?;
        Ok(n.max(0) as u64)
    }

    /// Seeds a stream's configured keys unless the fleet knows the stream already.
    pub async fn seed_keys(&self, stream: &str, rows: &[KeyRow]) -> Result<bool, ControlError> {
        let mut args = vec![format!("{stream}/")];
        for r in rows {
            args.push(format!("{stream}/{}", r.id));
            args.push(
                serde_json::to_string(&KeyValue {
                    digest: hex_encode(&r.digest),
                    added_ms: r.added_ms,
                    source: r.source,
                })
                .map_err(|e| ControlError::Registry(e.into()))?,
            );
        }
        let n: i64 = self.script(SEED, &key("keys"), &args).await?;
        Ok(n == 1)
    }

    /// Asks every origin to kick the publisher of `stream`; the stream's new kick
    /// counter (the caller, having kicked already, marks it seen).
    pub async fn kick(&self, stream: &str) -> Result<u64, ControlError> {
        let mut cmd = redis::cmd("HINCRBY");
        cmd.arg(key("kicks")).arg(stream).arg(1);
        self.run::<i64>(&cmd).await.map(|n| n.max(0) as u64)
    }
}

/// What a node does with each state read (the first read of a run is flagged, so
/// kicks that happened before the node started are not replayed).
pub type ApplyFn = Arc<dyn Fn(&ControlState, bool) + Send + Sync>;

/// What an origin brings to the fleet when it joins: its configured keys (written for
/// streams the fleet has no mark for; the fleet's table wins otherwise) and its
/// `--p2p-off` streams (added).
#[derive(Clone, Debug, Default)]
pub struct Seed {
    pub keys: Vec<(String, Vec<KeyRow>)>,
    pub p2p_off: Vec<String>,
}

async fn plant(control: &Control, seed: &Seed) -> Result<(), ControlError> {
    for (stream, rows) in &seed.keys {
        if control.seed_keys(stream, rows).await? {
            tracing::info!(stream = %stream, keys = rows.len(), "fleet: configured publish keys seeded");
        }
    }
    for stream in &seed.p2p_off {
        control.set_p2p(stream, false).await?;
    }
    Ok(())
}

/// Reads the state every `every` and hands it to `apply`; logs an outage once. With a
/// `seed`, nothing is read (or applied) until the seed is written: an origin must not
/// drop its configured keys for an empty table it has not seeded yet.
pub fn spawn_sync(
    control: Arc<Control>,
    every: Duration,
    seed: Option<Seed>,
    apply: ApplyFn,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = true;
        let mut down = false;
        let mut seed = seed;
        loop {
            tick.tick().await;
            let read = match &seed {
                Some(s) => match plant(&control, s).await {
                    Ok(()) => {
                        seed = None;
                        control.read().await
                    }
                    Err(e) => Err(e),
                },
                None => control.read().await,
            };
            match read {
                Ok(state) => {
                    if down {
                        tracing::info!("fleet control state readable again");
                        down = false;
                    }
                    if state.invalid > 0 {
                        ::metrics::counter!("mediamesh_fleet_control_invalid_total")
                            .increment(state.invalid as u64);
                    }
                    apply(&state, first);
                    first = false;
                }
                Err(e) => {
                    if !down {
                        tracing::warn!(error = %e, "fleet control state unreadable; keeping the last one");
                        down = true;
                    }
                    ::metrics::counter!("mediamesh_fleet_control_errors_total").increment(1);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(d: &str) -> String {
        format!(r#"{{"digest":"{d}","added_ms":5,"source":"api"}}"#)
    }

    #[test]
    fn state_is_parsed_and_bad_entries_dropped() {
        let d = "ab".repeat(32);
        let s = parse_state(
            vec!["cam".into(), "../x".into(), String::new()],
            vec!["edge-127.0.0.1-1".into(), "a b".into()],
            vec![
                ("cam/".into(), String::new()),
                ("cam/0123456789ab".into(), value(&d)),
                ("locked/".into(), String::new()),
                ("cam/short".into(), value(&d)),
                ("cam/0123456789ac".into(), value("zz")),
                ("nofield".into(), String::new()),
                ("cam/0123456789ad".into(), "{".into()),
            ],
            vec![("cam".into(), "3".into()), ("cam2".into(), "x".into())],
            vec![
                ("cam".into(), "on".into()),
                ("old".into(), "off".into()),
                ("cam3".into(), "yes".into()),
                ("../r".into(), "on".into()),
            ],
        );
        assert_eq!(s.p2p_off, ["cam".to_string()].into());
        assert_eq!(s.drains.len(), 1);
        assert_eq!(s.keys["cam"].len(), 1);
        assert_eq!(s.keys["cam"][0].digest, [0xab; 32]);
        assert!(s.keys["locked"].is_empty());
        assert_eq!(s.kicks["cam"], 3);
        assert_eq!(
            s.record,
            [("cam".to_string(), true), ("old".to_string(), false)].into()
        );
        assert_eq!(s.invalid, 10);
    }

    #[test]
    fn digests_round_trip() {
        let d = [7u8; 32];
        let mut back = [0u8; 32];
        assert!(hex_decode(&hex_encode(&d), &mut back));
        assert_eq!(back, d);
        assert!(!hex_decode("AB", &mut back));
    }

    #[test]
    fn only_redis_has_fleet_state() {
        assert!(Control::open("memory").expect("open").is_none());
        assert!(Control::open("redis://127.0.0.1:1")
            .expect("open")
            .is_some());
    }
}
