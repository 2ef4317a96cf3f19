//! The deadlines of a node's timed waits (`receive ... after`, a call's timeout, a
//! task's start), kept by one watchdog task per node instead of a tokio timer each.
//!
//! Why not `tokio::time::timeout`: a wait that registers a tokio timer whose deadline
//! comes before the time driver's next wake-up makes the runtime unpark its driver (an
//! `eventfd` write and a spurious wake-up of the thread polling the network). A node
//! whose timed waits end in microseconds (a task waiting for its owner's start message,
//! a call answered at once) paid that on every one, on the critical path of the round
//! trip. Here a wait only puts its deadline in an ordered map; the watchdog sleeps until
//! the earliest it knows, and is not woken when waits end before their deadline: it
//! wakes at that instant, finds them gone, and sleeps until the next. So a stream of
//! short waits, each a few seconds long, costs one tokio timer every few seconds, and a
//! wait is woken at its deadline as precisely as a tokio timer would wake it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A node's pending deadlines and its watchdog.
#[derive(Default)]
pub(crate) struct Deadlines {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Arc<Wake>,
}

/// What the watchdog holds strongly while it waits (the state it holds weakly, so that
/// it never keeps it alive).
#[derive(Default)]
struct Wake {
    /// A deadline earlier than the one the watchdog sleeps until, or the node gone.
    notify: Notify,
    /// The node is gone: the watchdog ends.
    closed: AtomicBool,
}

#[derive(Default)]
struct State {
    pending: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    /// The instant the watchdog sleeps until; `None` when it waits for a deadline (or
    /// is not running).
    armed: Option<Instant>,
    /// Whether a watchdog task is running (it is started by the first deadline, again
    /// if its runtime went away).
    running: bool,
}

impl Deadlines {
    /// Resolves at `at` (at once when `at` is past).
    pub(crate) fn sleep_until(&self, at: Instant) -> Deadline {
        Deadline {
            shared: Arc::clone(&self.shared),
            at,
            key: None,
        }
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        self.shared.wake.closed.store(true, Ordering::Release);
        self.shared.wake.notify.notify_one();
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A wait for an instant, kept by the node's watchdog. Cancel-safe: dropped, it leaves
/// nothing behind.
pub(crate) struct Deadline {
    shared: Arc<Shared>,
    at: Instant,
    /// Its place among the pending deadlines, once it has waited.
    key: Option<(Instant, u64)>,
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if Instant::now() >= this.at {
            this.forget();
            return Poll::Ready(());
        }
        let mut state = lock(&this.shared);
        match this.key {
            Some(key) => match state.pending.get_mut(&key) {
                Some(waker) => {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                }
                // Fired by the watchdog: the clock has passed the instant.
                None => {
                    this.key = None;
                    return Poll::Ready(());
                }
            },
            None => {
                let key = (this.at, state.next_id);
                state.next_id += 1;
                state.pending.insert(key, cx.waker().clone());
                this.key = Some(key);
                let earlier = state.armed.is_none_or(|armed| this.at < armed);
                if !state.running {
                    state.running = true;
                    drop(state);
                    let wake = Arc::clone(&this.shared.wake);
                    tokio::spawn(watchdog(Arc::downgrade(&this.shared), wake));
                } else if earlier {
                    drop(state);
                    this.shared.wake.notify.notify_one();
                }
            }
        }
        Poll::Pending
    }
}

impl Deadline {
    /// `work`'s output, or `None` if this deadline comes first (`work` is looked at
    /// first, so an output ready at the deadline is not lost). The deadline stays
    /// usable for the next wait.
    pub(crate) async fn bound<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            output = work => Some(output),
            () = self => None,
        }
    }

    fn forget(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.shared).pending.remove(&key);
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.forget();
    }
}

/// Marks the watchdog stopped when its task ends, also when its runtime drops it: the
/// next deadline starts another.
struct Running(Weak<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            let mut state = lock(&shared);
            state.running = false;
            state.armed = None;
        }
    }
}

/// Wakes every wait whose instant has come, then sleeps until the earliest one left, or
/// until told of an earlier one. Waits that end before their instant do not wake it.
async fn watchdog(shared: Weak<Shared>, wake: Arc<Wake>) {
    let _running = Running(shared.clone());
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    loop {
        if wake.closed.load(Ordering::Acquire) {
            return;
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let next = {
            let mut state = lock(&strong);
            let now = Instant::now();
            while let Some(entry) = state.pending.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                entry.remove().wake();
            }
            let next = state.pending.first_key_value().map(|(k, _)| k.0);
            // Still sleeping until an instant no wait needs now: keep it, and look
            // again then (re-arming costs a timer; waits mostly end well before).
            let keep = state
                .armed
                .filter(|&a| a > now && next.is_none_or(|n| a <= n));
            state.armed = keep.or(next);
            state.armed
        };
        drop(strong);
        let woken = wake.notify.notified();
        match next {
            Some(at) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                tokio::select! {
                    () = &mut sleep => {}
                    () = woken => {}
                }
            }
            None => woken.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_end_at_their_instants_in_order() {
        let d = Deadlines::default();
        let t0 = Instant::now();
        let late = d.sleep_until(t0 + Duration::from_millis(60));
        let early = d.sleep_until(t0 + Duration::from_millis(20));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let tx2 = tx.clone();
        tokio::spawn(async move {
            late.await;
            tx.send(("late", t0.elapsed())).unwrap();
        });
        tokio::spawn(async move {
            early.await;
            tx2.send(("early", t0.elapsed())).unwrap();
        });
        let (first, at) = rx.recv().await.unwrap();
        assert_eq!(first, "early");
        assert!(at >= Duration::from_millis(20), "{at:?}");
        let (second, at) = rx.recv().await.unwrap();
        assert_eq!(second, "late");
        assert!(at >= Duration::from_millis(60), "{at:?}");
    }

    #[tokio::test]
    async fn an_earlier_wait_is_not_held_up_by_a_later_one() {
        let d = Deadlines::default();
        let t0 = Instant::now();
        // The watchdog sleeps until the far one; the near one must wake it sooner.
        let far = d.sleep_until(t0 + Duration::from_secs(3600));
        let mut far = Box::pin(far);
        assert!(futures::poll!(far.as_mut()).is_pending());
        tokio::time::timeout(
            Duration::from_secs(30),
            d.sleep_until(t0 + Duration::from_millis(10)),
        )
        .await
        .expect("the near deadline fires");
    }

    #[tokio::test]
    async fn a_wait_dropped_leaves_nothing_and_later_waits_still_fire() {
        let d = Deadlines::default();
        for _ in 0..1000 {
            let mut w = Box::pin(d.sleep_until(Instant::now() + Duration::from_secs(5)));
            assert!(futures::poll!(w.as_mut()).is_pending());
        }
        assert!(lock(&d.shared).pending.is_empty());
        tokio::time::timeout(
            Duration::from_secs(30),
            d.sleep_until(Instant::now() + Duration::from_millis(5)),
        )
        .await
        .expect("fires although the watchdog sleeps until a dropped wait's instant");
    }

    #[tokio::test]
    async fn the_watchdog_ends_with_its_node() {
        let d = Deadlines::default();
        d.sleep_until(Instant::now() + Duration::from_millis(1))
            .await;
        assert!(lock(&d.shared).running);
        // The watchdog holds the other count of `wake` while it runs.
        let wake = Arc::clone(&d.shared.wake);
        assert_eq!(Arc::strong_count(&wake), 3);
        drop(d);
        tokio::time::timeout(Duration::from_secs(30), async {
            while Arc::strong_count(&wake) > 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the watchdog ends");
    }

    #[test]
    fn a_watchdog_gone_with_its_runtime_is_started_again() {
        let d = Deadlines::default();
        let first = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        first.block_on(d.sleep_until(Instant::now() + Duration::from_millis(1)));
        drop(first);
        assert!(!lock(&d.shared).running);
        let second = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        second.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                d.sleep_until(Instant::now() + Duration::from_millis(5)),
            )
            .await
            .expect("a new watchdog keeps the deadline");
        });
    }
}
