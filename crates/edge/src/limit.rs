//! Per-client-address request rate limit: a token bucket per IP in a bounded map.
//! It only answers "allowed or not"; the caller sends the 429.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use parking_lot::Mutex;

/// Addresses tracked at once; past this, idle buckets are dropped first.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by client address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `rps` requests per second, bursts of two seconds' worth.
    pub fn new(rps: u32) -> Self {
        let rate = f64::from(rps.max(1));
        Self {
            rate,
            burst: rate * 2.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.buckets.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if map.len() >= MAX_TRACKED {
                return false;
            }
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills() {
        let l = RateLimiter::new(5);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let t0 = Instant::now();
        let allowed = (0..20).filter(|_| l.allow_at(ip, t0)).count();
        assert_eq!(allowed, 10);
        assert!(l.allow_at(ip, t0 + Duration::from_millis(250)));
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(l.allow_at(other, t0));
    }
}
