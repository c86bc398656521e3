//! Where a request's time goes, split as Kafka's `RequestMetrics` splits it. This
//! module measures the one part the connection cannot see from outside the handler:
//! **remote time**, the time a handler spends waiting on other parties — an acks=all
//! produce waiting for the in-sync replicas, a fetch long-poll waiting for data or its
//! `max_wait_ms`, a JoinGroup or SyncGroup parked until the group's other members
//! arrive, an offset commit waiting for `__consumer_offsets`' ISR.
//!
//! The connection runs each handler inside [`measure`], which gives the request a
//! total of its own, current on the thread while the handler is polled; a wait wrapped in [`waiting_on_others`] adds its duration to it
//! (a cancelled wait too: it was waited). Nested waits count once, the outermost, so
//! a handler may wrap a call whose insides wrap their own waits. A wait outside
//! [`measure`] (the admin API's requests, background tasks, `metrics.request.enable`
//! off) runs the same, reading no clock.
//!
//! A leaf: any module may use it, it uses only the leaf `clock`.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::clock::monotonic_ns;

/// One request's remote time so far, and how many waits are open.
///
/// Two words without padding or niche, so the swap around each poll is four moves
/// (an `Option<Remote>` with a `Duration` was copied field by field, padding bytes
/// included).
#[derive(Debug, Clone, Copy, Default)]
struct Remote {
    total_ns: u64,
    open_waits: u32,
    /// 1 while a request's handler is polled, 0 when none is.
    measured: u32,
}

impl Remote {
    const NONE: Remote = Remote {
        total_ns: 0,
        open_waits: 0,
        measured: 0,
    };
}

thread_local! {
    /// The remote time of the request being polled on this thread, if any: set by
    /// [`Measured`] around each poll of its handler (a `tokio::task_local!` did the same
    /// with a `RefCell` swap that cost more than every histogram together).
    static CURRENT: Cell<Remote> = const { Cell::new(Remote::NONE) };
}

/// Runs a request's handler, counting the time it spends in [`waiting_on_others`]
/// ([`Measured::remote_ns`] once it is done). The handler is polled in place
/// (`Unpin`: pin it and pass `Pin<&mut _>`), and its output is handed on as it is
/// (await `&mut` the returned future), so neither is ever copied.
pub fn measure<F: Future + Unpin>(handler: F) -> Measured<F> {
    Measured {
        handler,
        remote: Remote {
            measured: 1,
            ..Remote::NONE
        },
    }
}

/// The future of [`measure`].
pub struct Measured<F> {
    handler: F,
    remote: Remote,
}

impl<F> Measured<F> {
    /// The handler's time in [`waiting_on_others`] so far, in nanoseconds of
    /// [`monotonic_ns`].
    pub fn remote_ns(&self) -> u64 {
        self.remote.total_ns
    }
}

/// Puts back the thread's previous request (none, outside nested polls) when a poll
/// ends, even by a panic.
struct Restore<'a> {
    remote: &'a mut Remote,
    outer: Remote,
}

impl Drop for Restore<'_> {
    #[inline]
    fn drop(&mut self) {
        let current = CURRENT.replace(self.outer);
        if current.measured != 0 {
            *self.remote = current;
        }
    }
}

impl<F: Future + Unpin> Future for Measured<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let outer = CURRENT.replace(this.remote);
        let restore = Restore {
            remote: &mut this.remote,
            outer,
        };
        let polled = Pin::new(&mut this.handler).poll(cx);
        drop(restore);
        polled
    }
}

/// Awaits `wait` and counts its duration as the current request's remote time.
pub async fn waiting_on_others<F: Future>(wait: F) -> F::Output {
    let _waiting = Waiting::start();
    wait.await
}

/// An open wait: counted when dropped, whether the wait finished or was cancelled.
struct Waiting {
    started_ns: u64,
}

impl Waiting {
    /// `None` outside a request: nothing to count.
    fn start() -> Option<Waiting> {
        let mut remote = CURRENT.get();
        if remote.measured == 0 {
            return None;
        }
        remote.open_waits += 1;
        CURRENT.set(remote);
        Some(Waiting {
            started_ns: monotonic_ns(),
        })
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        // A wait is dropped while its request is polled (finished, or cancelled by its
        // handler); a request dropped whole leaves nothing to add to.
        let mut remote = CURRENT.get();
        if remote.measured != 0 {
            remote.open_waits = remote.open_waits.saturating_sub(1);
            if remote.open_waits == 0 {
                remote.total_ns += monotonic_ns().saturating_sub(self.started_ns);
            }
            CURRENT.set(remote);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `measure`, its remote time as a `Duration`.
    async fn measured<F: Future + Unpin>(handler: F) -> (F::Output, Duration) {
        let mut measured = measure(handler);
        let output = (&mut measured).await;
        (output, Duration::from_nanos(measured.remote_ns()))
    }

    #[tokio::test]
    async fn waits_add_up_and_local_work_does_not_count() {
        let (value, remote) = measured(Box::pin(async {
            waiting_on_others(tokio::time::sleep(Duration::from_millis(30))).await;
            // Local work (not wrapped) is not remote time.
            tokio::time::sleep(Duration::from_millis(200)).await;
            waiting_on_others(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                7
            })
            .await
        }))
        .await;
        assert_eq!(value, 7);
        // Sleeps end no earlier than asked; the local 200 ms would double the total.
        assert!(
            remote >= Duration::from_millis(50) && remote < Duration::from_millis(200),
            "{remote:?}"
        );
    }

    #[tokio::test]
    async fn nested_waits_count_once() {
        let ((), remote) = measured(Box::pin(waiting_on_others(async {
            waiting_on_others(tokio::time::sleep(Duration::from_millis(30))).await;
            waiting_on_others(tokio::time::sleep(Duration::from_millis(30))).await;
        })))
        .await;
        assert!(
            remote >= Duration::from_millis(60) && remote < Duration::from_millis(120),
            "{remote:?}"
        );
    }

    #[tokio::test]
    async fn a_cancelled_wait_counts_what_it_waited() {
        let ((), remote) = measured(Box::pin(async {
            let never = waiting_on_others(std::future::pending::<()>());
            let _ = tokio::time::timeout(Duration::from_millis(30), never).await;
            // The cancelled wait is closed: a later one counts on its own.
            waiting_on_others(tokio::time::sleep(Duration::from_millis(10))).await;
        }))
        .await;
        assert!(
            remote >= Duration::from_millis(40) && remote < Duration::from_millis(200),
            "{remote:?}"
        );
    }

    #[tokio::test]
    async fn a_wait_outside_a_request_is_just_awaited() {
        assert_eq!(waiting_on_others(async { 3 }).await, 3);
        let ((), remote) = measured(Box::pin(async {})).await;
        assert_eq!(remote, Duration::ZERO);
    }

    #[tokio::test]
    async fn requests_on_concurrent_tasks_keep_their_own_totals() {
        let slow = tokio::spawn(measured(Box::pin(waiting_on_others(tokio::time::sleep(
            Duration::from_millis(40),
        )))));
        // Polled on the same thread as the slow one (a current-thread runtime).
        let ((), fast) = measured(Box::pin(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }))
        .await;
        let ((), slow) = slow.await.unwrap();
        assert_eq!(fast, Duration::ZERO);
        assert!(slow >= Duration::from_millis(40), "{slow:?}");
    }
}
