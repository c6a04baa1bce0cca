//! The router's own health probes: `GET {edge}/healthz` for every edge in the view,
//! so a dead edge leaves the answers before its registry record expires (and at all
//! when the registry is down or the edges are fixed with `--edge`).
//!
//! An edge is taken out after `fail_after` failed probes in a row and back in after
//! one success; an edge never probed yet counts as healthy (the registry just said it
//! is alive). Not a load probe: load comes from heartbeats.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

/// Timing of the probes.
#[derive(Clone, Copy, Debug)]
pub struct ProbeConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub fail_after: u32,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
            fail_after: 2,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct State {
    fails: u32,
    healthy: bool,
}

/// Probe results by edge base URL.
#[derive(Debug, Default)]
pub struct Health {
    states: RwLock<HashMap<String, State>>,
    fail_after: u32,
}

impl Health {
    pub fn new(fail_after: u32) -> Self {
        Health {
            states: RwLock::new(HashMap::new()),
            fail_after: fail_after.max(1),
        }
    }

    /// Whether `base` may get viewers.
    pub fn healthy(&self, base: &str) -> bool {
        self.states.read().get(base).is_none_or(|s| s.healthy)
    }

    /// Records one probe result; returns `Some(new state)` when it changed.
    pub fn record(&self, base: &str, ok: bool) -> Option<bool> {
        let mut m = self.states.write();
        let s = m.entry(base.to_string()).or_insert(State {
            fails: 0,
            healthy: true,
        });
        let before = s.healthy;
        if ok {
            s.fails = 0;
            s.healthy = true;
        } else {
            s.fails = s.fails.saturating_add(1);
            if s.fails >= self.fail_after {
                s.healthy = false;
            }
        }
        (before != s.healthy).then_some(s.healthy)
    }

    /// Forgets edges no longer in the view.
    pub fn retain(&self, bases: &[String]) {
        self.states.write().retain(|k, _| bases.contains(k));
    }
}

/// Probes `bases()` forever; spawn it.
pub async fn probe_loop(
    health: Arc<Health>,
    client: reqwest::Client,
    config: ProbeConfig,
    bases: impl Fn() -> Vec<String> + Send + 'static,
) {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let list = bases();
        health.retain(&list);
        let probes = list.iter().map(|b| {
            let client = client.clone();
            let url = format!("{b}/healthz");
            async move {
                let ok = matches!(
                    tokio::time::timeout(config.timeout, client.get(&url).send()).await,
                    Ok(Ok(r)) if r.status().is_success()
                );
                ok
            }
        });
        let results = futures_util::future::join_all(probes).await;
        for (b, ok) in list.iter().zip(results) {
            match health.record(b, ok) {
                Some(false) => {
                    tracing::warn!(edge = %b, "edge failed its health probes; no viewers go there")
                }
                Some(true) => tracing::info!(edge = %b, "edge healthy again"),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_after_consecutive_failures_back_after_one_success() {
        let h = Health::new(2);
        assert!(h.healthy("http://a"));
        assert_eq!(h.record("http://a", false), None);
        assert!(h.healthy("http://a"));
        assert_eq!(h.record("http://a", false), Some(false));
        assert!(!h.healthy("http://a"));
        assert_eq!(h.record("http://a", true), Some(true));
        h.retain(&[]);
        assert!(h.healthy("http://a"));
    }
}
