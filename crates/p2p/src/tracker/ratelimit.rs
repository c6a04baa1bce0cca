//! Per-connection token bucket. Pure arithmetic on caller-supplied instants; it
//! knows nothing about connections or messages.

use std::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(burst: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if available, refilling at `rate` per second up to `burst`.
    pub(crate) fn try_take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
