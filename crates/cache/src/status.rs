//! How an answer was produced, as the `X-Cache` header, logs and metrics name it.
//!
//! Not here: deciding it (the edge's request path, with `policy::decide`).

/// How an answer was produced (X-Cache, logs, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    Hit,
    Miss,
    /// Stale while a refresh runs.
    Stale,
    /// Stale because every upstream failed.
    StaleIfError,
    /// Not from the cache (errors, local answers).
    Pass,
}

impl CacheStatus {
    /// The `X-Cache` value: `HIT`, `MISS`, `STALE`, `STALE-IF-ERROR` or `PASS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::StaleIfError => "STALE-IF-ERROR",
            Self::Pass => "PASS",
        }
    }
}
