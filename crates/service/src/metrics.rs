//! The process-wide Prometheus recorder (`metrics` crate facade). Counters are
//! incremented where things happen; this module installs the recorder once and renders
//! the text format for `/metrics`. One recorder serves every role in the process, so
//! `mediamesh serve` shows origin and edge figures on one page.
//!
//! [`StripedCounter`]: a counter for the hottest paths (the edge counts every cache
//! hit three times). The recorder's counters are one atomic each, plus a generation
//! count it bumps on every update, so two cores counting hits at once pass those
//! cache lines back and forth on every request. A striped counter adds into a slot
//! of the calling thread's own (on a cache line of its own) and is summed into its
//! recorder counter when `/metrics` is rendered ([`render`]), so what a scrape shows
//! is exact as of that moment. Every update of such a metric must go through it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The recorder handle, installed on first use. Call it at start-up so nothing
/// counted before the first scrape is lost.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if ::metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows only what it sees"
            );
        }
        handle
    })
}

/// All metrics in the Prometheus text format (striped counters summed first).
pub fn render() -> String {
    let striped = STRIPED.lock().unwrap_or_else(PoisonError::into_inner);
    for c in striped.iter() {
        c.counter.absolute(c.total());
    }
    drop(striped);
    handle().render()
}

/// Slots of a [`StripedCounter`]; threads beyond this share slots (still exact).
const STRIPES: usize = 16;

/// A slot on a cache line of its own.
#[repr(align(128))]
struct Slot(AtomicU64);

/// A sum that threads add to without sharing a cache line: each adds into a slot of
/// its own. For a hot-path count read rarely (a ratio made at scrape time).
pub struct Stripes {
    slots: [Slot; STRIPES],
}

impl Stripes {
    pub const fn new() -> Self {
        Stripes {
            slots: [const { Slot(AtomicU64::new(0)) }; STRIPES],
        }
    }

    pub fn add(&self, n: u64) {
        self.slots[slot()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of all slots.
    pub fn total(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }
}

impl Default for Stripes {
    fn default() -> Self {
        Self::new()
    }
}

/// A recorder counter kept in [`Stripes`] and summed into the recorder at [`render`]
/// (see the module doc).
pub struct StripedCounter {
    stripes: Stripes,
    counter: ::metrics::Counter,
}

/// Every striped counter, for [`render`].
static STRIPED: Mutex<Vec<&'static StripedCounter>> = Mutex::new(Vec::new());

impl StripedCounter {
    /// Stripes `counter` for the life of the process (one per metric and label set:
    /// make it once, as a `static`). It must be updated only through this.
    pub fn new(counter: ::metrics::Counter) -> &'static StripedCounter {
        let c: &'static StripedCounter = Box::leak(Box::new(StripedCounter {
            stripes: Stripes::new(),
            counter,
        }));
        STRIPED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(c);
        c
    }

    pub fn increment(&self, n: u64) {
        self.stripes.add(n);
    }

    /// What it has counted.
    pub fn total(&self) -> u64 {
        self.stripes.total()
    }
}

/// The calling thread's slot: threads take slots in turn as they first count.
fn slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    SLOT.with(|s| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_counts_from_many_threads_add_up_in_the_rendered_page() {
        handle();
        let c = StripedCounter::new(::metrics::counter!("mediamesh_test_striped_total"));
        std::thread::scope(|s| {
            for _ in 0..(STRIPES + 4) {
                s.spawn(|| {
                    for _ in 0..1000 {
                        c.increment(1);
                    }
                });
            }
        });
        c.increment(5);
        assert_eq!(c.total(), (STRIPES as u64 + 4) * 1000 + 5);
        let page = render();
        let line = page
            .lines()
            .find(|l| l.starts_with("mediamesh_test_striped_total"))
            .unwrap_or_else(|| panic!("no line in {page}"));
        assert!(line.ends_with(&format!(" {}", c.total())), "{line}");
        c.increment(1);
        assert!(render().contains(&format!("mediamesh_test_striped_total {}", c.total())));
    }
}
