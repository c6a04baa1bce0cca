//! The executor hyper's HTTP/2 connections hand each request's stream to: it polls
//! the stream once where it was accepted, in the connection's task, and spawns a
//! task for it only when it must wait.
//!
//! Why: hyper runs every h2 request as a future of its own (the handler's future,
//! then the response and its body on their way into the connection), given to an
//! executor; `hyper_util`'s `TokioExecutor` spawns a task for each. An answer the
//! handler has at once (an edge's cache hit, a playlist from memory) is done in that
//! first poll: the response and a body known whole are queued on the connection, which
//! writes them when its own task runs next. For those, the task cost an allocation of
//! its own, a trip through the scheduler's queue, a poll later with the connection's
//! state cold again, and a wake of the connection. Counted per 1 KB hit over h2
//! (`bench/edge_hit_profile.sh`, see bench/README.md).
//!
//! Soundness: the first poll is given a waker that does nothing. A future that is not
//! done after it is spawned, and tokio polls a new task at least once; a future
//! registers the waker of every poll (the `Future` contract), so from that poll on it
//! is woken as any other task, and nothing that happened between the two polls is
//! missed (the second poll sees it). The first poll runs inside the connection's poll,
//! after hyper has let go of the h2 connection's state (a stream is handed over once
//! it is accepted), and nothing here re-enters hyper.
//!
//! A panic in the first poll ends that stream alone, as a panic in its task would.
//!
//! What it is not: a scheduler. Upgrades (h2 `CONNECT`, extended CONNECT) and
//! anything else hyper hands an executor go the same way: polled once, then spawned.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll, Waker};

/// See the module doc.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PollFirst;

impl<F> hyper::rt::Executor<F> for PollFirst
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut fut = Box::pin(fut);
        let mut cx = Context::from_waker(Waker::noop());
        // A panic in the first poll ends that stream alone, as it would end its task
        // (tokio drops a task's future when it panics); the panic hook has reported it.
        let first = std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)));
        if let Ok(Poll::Pending) = first {
            tokio::spawn(fut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_ready_future_runs_at_once_and_a_waiting_one_is_woken_later() {
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        PollFirst.execute(async move {
            d.fetch_add(1, Ordering::SeqCst);
        });
        // Ran in `execute` itself: no task was needed.
        assert_eq!(done.load(Ordering::SeqCst), 1);

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let d = done.clone();
        PollFirst.execute(async move {
            let _ = rx.await;
            d.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(done.load(Ordering::SeqCst), 1);
        // The first poll registered a waker that does nothing; the spawned task's
        // poll registers its own, so the send below wakes it.
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        reaches(&done, 2).await;
    }

    #[tokio::test]
    async fn a_panic_in_the_first_poll_ends_that_future_alone() {
        let done = Arc::new(AtomicUsize::new(0));
        PollFirst.execute(async {
            panic!("a handler's bug");
        });
        let d = done.clone();
        PollFirst.execute(async move {
            d.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_event_between_the_two_polls_is_not_missed() {
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let d = done.clone();
        PollFirst.execute(async move {
            let _ = rx.await;
            d.fetch_add(1, Ordering::SeqCst);
        });
        // Sent before the spawned task was ever polled: only the do-nothing waker
        // was registered when this happened.
        tx.send(()).unwrap();
        reaches(&done, 1).await;
    }

    /// Waits (bounded) until `done` counts `n`, letting spawned tasks run.
    async fn reaches(done: &AtomicUsize, n: usize) {
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while done.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the spawned future ran in time");
    }
}
