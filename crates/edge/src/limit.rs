//! Per-client-address request rate limit: a GCRA cell per address (IPv6 per /64, so
//! one host cannot spray fresh addresses from its prefix), kept in `governor`'s
//! sharded keyed store. It only answers "allowed or not"; the caller sends the 429.
//!
//! Bounded without locking anyone out: a new address always gets its own cell (O(1)
//! into one shard). When the store holds more than `max_tracked` addresses, cells that
//! are back at full burst (indistinguishable from new ones) are swept out, at most
//! once a second, shard by shard; what remains is the set of addresses active within
//! the last burst window (2 s), which is what an address spray can cost at most.
//!
//! Not here: connection caps (the accept loop in `service`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::Quota;

type Keyed<C> = governor::RateLimiter<
    IpAddr,
    DashMapStateStore<IpAddr>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;

/// Least time between two sweeps of idle cells.
const SWEEP_EVERY_MS: u64 = 1000;

/// Rate limits keyed by client address.
pub struct RateLimiter<C: Clock = DefaultClock> {
    cells: Keyed<C>,
    max_tracked: usize,
    /// On the limiter's own clock, as the sweep throttle below (so a test's fake
    /// clock moves both).
    started: C::Instant,
    /// Milliseconds since `started` of the last sweep, plus one (0 = never).
    last_sweep: AtomicU64,
}

impl<C: Clock> std::fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("tracked", &self.cells.len())
            .field("max_tracked", &self.max_tracked)
            .finish()
    }
}

/// The address a client is limited as: IPv4 as is (IPv4-mapped IPv6 as IPv4), IPv6 by
/// its /64 prefix.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

fn quota(rps: u32) -> Quota {
    let rate = NonZeroU32::new(rps.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(rate.get().saturating_mul(2)).unwrap_or(rate);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimiter {
    /// `rps` requests per second, bursts of two seconds' worth; idle cells are swept
    /// once more than `max_tracked` addresses are held.
    pub fn new(rps: u32, max_tracked: usize) -> Self {
        Self::with_clock(rps, max_tracked, DefaultClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    fn with_clock(rps: u32, max_tracked: usize, clock: C) -> Self {
        let started = clock.now();
        Self {
            cells: governor::RateLimiter::dashmap_with_clock(quota(rps), clock),
            max_tracked: max_tracked.max(1),
            started,
            last_sweep: AtomicU64::new(0),
        }
    }

    /// Whether one more request from `ip` is allowed now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        let ok = self.cells.check_key(&limit_key(ip)).is_ok();
        if self.cells.len() > self.max_tracked {
            self.sweep();
        }
        ok
    }

    /// Addresses (or /64s) held now.
    pub fn tracked(&self) -> usize {
        self.cells.len()
    }

    fn sweep(&self) {
        let elapsed: Duration = self.cells.clock().now().duration_since(self.started).into();
        let now = elapsed.as_millis() as u64 + 1;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < SWEEP_EVERY_MS {
            return;
        }
        if self
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.cells.retain_recent();
        self.cells.shrink_to_fit();
        ::metrics::counter!("mediamesh_edge_rate_limit_sweeps_total").increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::Ipv6Addr;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(5, 100, clock.clone());
        let ip: IpAddr = [127, 0, 0, 1].into();
        let allowed = (0..20).filter(|_| l.allow(ip)).count();
        assert_eq!(allowed, 10);
        clock.advance(Duration::from_millis(250));
        assert!(l.allow(ip));
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(l.allow(other));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(1, 100, clock);
        let a: IpAddr = "2001:db8:1:2::1"
            .parse::<Ipv6Addr>()
            .map_or(IpAddr::from([0u8; 16]), IpAddr::V6);
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse::<Ipv6Addr>()
            .map_or(IpAddr::from([0u8; 16]), IpAddr::V6);
        let c: IpAddr = "2001:db8:1:3::1"
            .parse::<Ipv6Addr>()
            .map_or(IpAddr::from([0u8; 16]), IpAddr::V6);
        assert!(l.allow(a) && l.allow(a));
        // The burst (2) of the /64 is spent, whatever the host part.
        assert!(!l.allow(b));
        assert!(l.allow(c));
        let mapped: IpAddr = "::ffff:10.0.0.1"
            .parse::<Ipv6Addr>()
            .map_or(IpAddr::from([0u8; 16]), IpAddr::V6);
        assert_eq!(limit_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    /// Finding 8 (limiter): with 100,000 addresses tracked, the old limiter refused
    /// every new one. Now a newcomer is served, a busy address stays limited, and idle
    /// cells are swept.
    #[test]
    fn an_address_spray_does_not_lock_out_newcomers() {
        let l = RateLimiter::new(1, 100_000);
        for i in 0..100_001u32 {
            let ip = IpAddr::from(i.wrapping_add(0x0a00_0000).to_be_bytes());
            l.allow(ip);
        }
        let newcomer: IpAddr = [192, 0, 2, 1].into();
        assert!(l.allow(newcomer), "a new address was refused");
        assert!(l.allow(newcomer));
        assert!(!l.allow(newcomer), "the newcomer is still limited");
        assert!(l.tracked() <= 100_002 + 1);
    }

    #[test]
    fn idle_cells_are_swept_past_the_cap() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(1000, 10, clock.clone());
        for i in 0..50u32 {
            l.allow(IpAddr::from(i.to_be_bytes()));
        }
        // All cells refill within a few ms of fake time; the next insert sweeps them.
        // The sweep throttle runs on the same fake clock: no sleeping.
        clock.advance(Duration::from_secs(5));
        l.allow(IpAddr::from([9, 9, 9, 9]));
        l.allow(IpAddr::from([9, 9, 9, 10]));
        assert!(l.tracked() <= 11, "{}", l.tracked());
    }
}
