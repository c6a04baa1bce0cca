//! A future that is polled only when something it waits on woke the task: the
//! connection's timers (the watchdog, the linger before parking) beside a socket
//! that wakes the task once per request.
//!
//! Why: a connection task is woken by its socket for every request, and a `select!`
//! polls every branch at every wake. Polling a timer that has not fired re-checks
//! its deadline and re-registers the task's waker, for nothing; per quick answer that
//! was about a tenth of the user-space instructions. [`Gated`] gives the inner future
//! a waker of its own, which marks the gate before waking the task, and skips the
//! inner poll while the mark is clear. What the inner future waits on (a `Sleep`, a
//! `Notify`) wakes it through that waker, so no wake-up it asked for is missed.
//!
//! What it is not: a scheduler. It saves polls; it does not delay or reorder them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// `inner`, polled at its first poll, when the task's waker changed, and after its
/// own waker was woken; otherwise `Pending` at once.
pub(crate) struct Gated<F> {
    inner: F,
    mark: Arc<Mark>,
    /// The waker `inner` is polled with (wakes `mark`).
    own: Waker,
    /// The task's waker that `mark` wakes, as last stored there.
    task: Option<Waker>,
}

/// Set by the inner future's waker; holds the task's waker to pass the wake-up on.
struct Mark {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Mark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Marked before the task is woken: the poll that follows sees it.
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = task.as_ref() {
            w.wake_by_ref();
        }
    }
}

impl<F: Future + Unpin> Gated<F> {
    pub(crate) fn new(inner: F) -> Self {
        let mark = Arc::new(Mark {
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        Gated {
            inner,
            own: Waker::from(mark.clone()),
            mark,
            task: None,
        }
    }
}

impl<F: Future + Unpin> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if !this.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            // A new task waker (the first poll, or the future moved to another
            // task): store it, and poll the inner future so that all it waits on
            // is registered again.
            let w = cx.waker().clone();
            *this
                .mark
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(w.clone());
            this.task = Some(w);
            this.mark.woken.store(true, Ordering::Release);
        }
        if !this.mark.woken.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        // Cleared before the poll: a wake-up during it marks the gate again.
        this.mark.woken.store(false, Ordering::Release);
        Pin::new(&mut this.inner).poll(&mut Context::from_waker(&this.own))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts its polls; ready once `ready` is set, waking through the waker it was
    /// polled with last.
    struct Probe {
        polls: Arc<AtomicUsize>,
        ready: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.ready.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[test]
    fn the_inner_future_is_polled_only_after_its_own_wake_up() {
        let polls = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicBool::new(false));
        let inner_waker = Arc::new(Mutex::new(None::<Waker>));
        let mut gated = Gated::new(Probe {
            polls: polls.clone(),
            ready: ready.clone(),
            waker: inner_waker.clone(),
        });
        let task_woken = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let task = Waker::from(Arc::new(Count(task_woken.clone())));
        let mut cx = Context::from_waker(&task);
        assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "the first poll goes through"
        );
        for _ in 0..5 {
            assert!(Pin::new(&mut gated).poll(&mut cx).is_pending());
        }
        assert_eq!(
            polls.load(Ordering::SeqCst),
            1,
            "wakes for others are skipped"
        );
        ready.store(true, Ordering::SeqCst);
        let w = inner_waker.lock().unwrap().take().unwrap();
        w.wake();
        assert_eq!(task_woken.load(Ordering::SeqCst), 1, "the task is woken");
        assert!(Pin::new(&mut gated).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_new_task_waker_polls_the_inner_future_again() {
        let polls = Arc::new(AtomicUsize::new(0));
        let mut gated = Gated::new(Probe {
            polls: polls.clone(),
            ready: Arc::new(AtomicBool::new(false)),
            waker: Arc::new(Mutex::new(None)),
        });
        let a = Waker::noop().clone();
        struct Other;
        impl Wake for Other {
            fn wake(self: Arc<Self>) {}
        }
        let b = Waker::from(Arc::new(Other));
        assert!(Pin::new(&mut gated)
            .poll(&mut Context::from_waker(&a))
            .is_pending());
        assert!(Pin::new(&mut gated)
            .poll(&mut Context::from_waker(&b))
            .is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_gated_sleep_fires_beside_a_busy_branch() {
        let sleep = Box::pin(tokio::time::sleep(Duration::from_millis(200)));
        let mut gated = Gated::new(sleep);
        let mut ticks = 0u32;
        let mut interval = tokio::time::interval(Duration::from_millis(5));
        let run = async {
            loop {
                tokio::select! {
                    biased;
                    _ = interval.tick() => ticks += 1,
                    () = &mut gated => break,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(15), run)
            .await
            .expect("the gated sleep woke the task");
        assert!(ticks > 1, "the busy branch ran meanwhile ({ticks} ticks)");
    }
}
