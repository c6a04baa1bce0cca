//! Upstream health: a per-target circuit breaker (pure state machine) and the active
//! health checker (a thin tokio loop around it).
//!
//! Breaker: `Closed` → N consecutive failures → `Open` (the target is skipped) → after
//! the cooldown → `HalfOpen` (exactly one trial request is let through) → a success
//! closes it, a failure re-opens it for another cooldown. Time is always passed in as an
//! [`Instant`], so the machine is tested with a fake clock. A failure reported while
//! already open does not extend the cooldown (the open period is fixed).
//!
//! Checker: every `health_interval` it GETs `health_path` on every target, all targets
//! in parallel, and waits for the round to finish before the next (rounds never
//! overlap). A check passes when the target answers with any status below 500 within
//! the check timeout (a server that answers 404 for an unimplemented health path is up;
//! 503 is the usual "draining" answer). A passing check closes the breaker; a failing
//! one counts as one failure.
//!
//! Not here: choosing targets or sending real requests (see `mod.rs`).

use std::sync::Weak;
use std::time::Duration;

// tokio's clock (the system clock unless a test pauses it), so tests move time
// with `tokio::time::advance` instead of sleeping.
use tokio::time::Instant;

use tokio::task::JoinSet;

use super::Upstreams;

/// What a breaker reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests skip this target until the cooldown has passed.
    Open,
    /// The cooldown has passed: one trial request may go through.
    HalfOpen,
}

impl BreakerState {
    /// A short lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Whether a request may go to the target now, and in which role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed.
    Normal,
    /// The single half-open trial; its outcome decides the breaker. If the request is
    /// abandoned without an outcome, call [`Breaker::release_trial`].
    Trial,
    /// Skip the target.
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { since: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// A consecutive-failures circuit breaker. Not thread-safe by itself; the owner locks.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    phase: Phase,
}

impl Breaker {
    /// `threshold` consecutive failures open the breaker (0 is treated as 1); it stays
    /// open for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            failures: 0,
            phase: Phase::Closed,
        }
    }

    /// The state as seen at `now` (an open breaker whose cooldown has passed reports
    /// `HalfOpen`, even before the lazy transition has happened).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.phase {
            Phase::Closed => BreakerState::Closed,
            Phase::Open { since } if self.cooled(since, now) => BreakerState::HalfOpen,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Would [`try_acquire`](Self::try_acquire) let a request through at `now`? Does not
    /// change anything.
    pub fn is_available(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Closed => true,
            Phase::Open { since } => self.cooled(since, now),
            Phase::HalfOpen { trial_in_flight } => !trial_in_flight,
        }
    }

    /// Asks to send one request at `now`. In half-open, only the first caller gets the
    /// trial; the others are rejected until the trial's outcome is recorded or released.
    pub fn try_acquire(&mut self, now: Instant) -> Admission {
        match self.phase {
            Phase::Closed => Admission::Normal,
            Phase::Open { since } if self.cooled(since, now) => {
                self.phase = Phase::HalfOpen {
                    trial_in_flight: true,
                };
                Admission::Trial
            }
            Phase::Open { .. } => Admission::Rejected,
            Phase::HalfOpen {
                trial_in_flight: false,
            } => {
                self.phase = Phase::HalfOpen {
                    trial_in_flight: true,
                };
                Admission::Trial
            }
            Phase::HalfOpen {
                trial_in_flight: true,
            } => Admission::Rejected,
        }
    }

    /// A trial was abandoned with no outcome (the request was cancelled): let the next
    /// caller have the trial. No effect in other states.
    pub fn release_trial(&mut self) {
        if let Phase::HalfOpen {
            trial_in_flight: true,
        } = self.phase
        {
            self.phase = Phase::HalfOpen {
                trial_in_flight: false,
            };
        }
    }

    /// A request or health check succeeded: close.
    pub fn record_success(&mut self) {
        self.failures = 0;
        self.phase = Phase::Closed;
    }

    /// A request or health check failed at `now`.
    pub fn record_failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        match self.phase {
            Phase::Closed if self.failures >= self.threshold => {
                self.phase = Phase::Open { since: now };
            }
            Phase::Closed => {}
            Phase::HalfOpen { .. } => self.phase = Phase::Open { since: now },
            // Already open: the cooldown is not extended.
            Phase::Open { .. } => {}
        }
    }

    fn cooled(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) >= self.cooldown
    }
}

/// The active health-check loop. Holds only a weak reference, so it ends by itself when
/// the `Upstreams` is dropped; normally the owner aborts it.
pub(super) async fn run(upstreams: Weak<Upstreams>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(up) = upstreams.upgrade() else {
            return;
        };
        let mut round = JoinSet::new();
        for target in up.all_targets() {
            let up = up.clone();
            round.spawn(async move {
                let result = up.check_one(&target).await;
                up.record_check(&target, result);
            });
        }
        drop(up);
        // Each check is bounded by its own timeout, so the round is bounded too.
        while round.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(5);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn opens_after_n_consecutive_failures() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, COOL);
        b.record_failure(t0);
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert_eq!(b.try_acquire(t0), Admission::Normal);
        b.record_failure(at(t0, 10));
        assert_eq!(b.state(at(t0, 10)), BreakerState::Open);
        assert!(!b.is_available(at(t0, 10)));
        assert_eq!(b.try_acquire(at(t0, 4_000)), Admission::Rejected);
        assert_eq!(b.consecutive_failures(), 3);
    }

    #[test]
    fn a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, COOL);
        b.record_failure(t0);
        b.record_failure(t0);
        b.record_success();
        b.record_failure(t0);
        b.record_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Closed);
        assert_eq!(b.consecutive_failures(), 2);
    }

    #[test]
    fn half_open_allows_exactly_one_trial_and_success_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, COOL);
        b.record_failure(t0);
        let later = at(t0, 5_000);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.is_available(later));
        assert_eq!(b.try_acquire(later), Admission::Trial);
        assert!(!b.is_available(later));
        assert_eq!(b.try_acquire(later), Admission::Rejected);
        b.record_success();
        assert_eq!(b.state(later), BreakerState::Closed);
        assert_eq!(b.try_acquire(later), Admission::Normal);
        assert_eq!(b.consecutive_failures(), 0);
    }

    #[test]
    fn trial_failure_reopens_for_a_full_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, COOL);
        b.record_failure(t0);
        b.record_failure(t0);
        assert_eq!(b.try_acquire(at(t0, 6_000)), Admission::Trial);
        b.record_failure(at(t0, 7_000));
        assert_eq!(b.state(at(t0, 7_000)), BreakerState::Open);
        assert_eq!(b.try_acquire(at(t0, 11_999)), Admission::Rejected);
        assert_eq!(b.try_acquire(at(t0, 12_000)), Admission::Trial);
    }

    #[test]
    fn failures_while_open_do_not_extend_the_cooldown() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, COOL);
        b.record_failure(t0);
        b.record_failure(at(t0, 4_000));
        assert_eq!(b.state(at(t0, 5_000)), BreakerState::HalfOpen);
    }

    #[test]
    fn released_trial_goes_to_the_next_caller() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, COOL);
        b.record_failure(t0);
        let later = at(t0, 5_000);
        assert_eq!(b.try_acquire(later), Admission::Trial);
        b.release_trial();
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert_eq!(b.try_acquire(later), Admission::Trial);
        // Release in closed is a no-op.
        b.record_success();
        b.release_trial();
        assert_eq!(b.state(later), BreakerState::Closed);
    }

    #[test]
    fn success_closes_from_open_too() {
        // A passing health check closes the breaker even before the cooldown.
        let t0 = Instant::now();
        let mut b = Breaker::new(1, COOL);
        b.record_failure(t0);
        b.record_success();
        assert_eq!(b.state(t0), BreakerState::Closed);
    }

    #[test]
    fn zero_threshold_means_one_and_clock_going_backwards_is_safe() {
        let t0 = Instant::now();
        let mut b = Breaker::new(0, COOL);
        b.record_failure(at(t0, 1_000));
        assert_eq!(b.state(at(t0, 1_000)), BreakerState::Open);
        // An earlier instant than `since` must not panic and counts as not cooled.
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
    }
}
