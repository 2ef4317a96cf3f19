//! A process's mailbox: a queue under a lock that senders push to and the process takes
//! from a batch at a time.
//!
//! Not tokio's unbounded channel, which costs a message about eight atomic operations
//! between the two sides (a slot claimed and released in a block list, a semaphore, the
//! receiver's waker looked at on every send): here a send takes the lock and gives it
//! back, the process takes everything queued with one lock and then reads its own copy
//! without any, and the waker is only touched when the process waits. Receiving
//! one-way messages is most of what a node serving another one does (one-way sends
//! between Rust nodes: 9-10% more a second than through the channel).

use crate::sync::lock;
use crate::term::Term;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

/// The most messages' room an empty queue keeps (a message takes 56 bytes of it).
const KEPT_CAPACITY: usize = 1024;

#[derive(Debug, Default)]
struct Queue {
    messages: VecDeque<Term>,
    /// The process waits for a message.
    waiting: Option<Waker>,
    /// The process is gone: what is sent now is dropped, as the BEAM drops a message to
    /// a dead process.
    closed: bool,
}

/// The senders' side, held by the process's table entry.
#[derive(Debug, Clone)]
pub(crate) struct Sender(Arc<Mutex<Queue>>);

/// The process's side; dropping it closes the mailbox.
#[derive(Debug)]
pub(crate) struct Mailbox {
    shared: Arc<Mutex<Queue>>,
    /// Taken from the shared queue, not yet received.
    taken: VecDeque<Term>,
}

/// A new mailbox: the senders' side and the process's.
pub(crate) fn mailbox() -> (Sender, Mailbox) {
    let shared = Arc::new(Mutex::new(Queue::default()));
    (
        Sender(shared.clone()),
        Mailbox {
            shared,
            taken: VecDeque::new(),
        },
    )
}

impl Sender {
    /// Queues `message`; false (and the message dropped) when the process is gone.
    pub(crate) fn send(&self, message: Term) -> bool {
        let waker = {
            let mut queue = lock(&self.0);
            if queue.closed {
                return false;
            }
            queue.messages.push_back(message);
            queue.waiting.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

impl Mailbox {
    /// The next message, waiting for one. Cancel-safe: a message is only taken when it
    /// is returned. Each message spends a unit of tokio's cooperative budget, so a
    /// process with a long queue still lets the others on its thread run.
    pub(crate) async fn recv(&mut self) -> Term {
        poll_fn(|cx| {
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            if self.taken.is_empty() {
                let mut queue = lock(&self.shared);
                if queue.messages.is_empty() {
                    match &mut queue.waiting {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        waiting => *waiting = Some(cx.waker().clone()),
                    }
                    return Poll::Pending;
                }
                take_all(&mut self.taken, &mut queue.messages);
            }
            coop.made_progress();
            Poll::Ready(self.taken.pop_front().expect("a message taken"))
        })
        .await
    }

    /// The next message if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Term> {
        if self.taken.is_empty() {
            take_all(&mut self.taken, &mut lock(&self.shared).messages);
        }
        self.taken.pop_front()
    }
}

/// Takes every queued message into `taken` (empty): the two queues trade places, so
/// the senders go on with the one just read. One that a burst grew beyond
/// [`KEPT_CAPACITY`] is freed instead: the memory a mailbox holds follows its backlog
/// down, as the BEAM's does.
fn take_all(taken: &mut VecDeque<Term>, queued: &mut VecDeque<Term>) {
    debug_assert!(taken.is_empty());
    if taken.capacity() > KEPT_CAPACITY {
        *taken = VecDeque::new();
    }
    std::mem::swap(taken, queued);
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let dropped = {
            let mut queue = lock(&self.shared);
            queue.closed = true;
            queue.waiting = None;
            std::mem::take(&mut queue.messages)
        };
        // Freed now, not when the last sender lets go of the queue.
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::int;

    #[tokio::test]
    async fn in_order_across_batches_and_waits() {
        let (tx, mut rx) = mailbox();
        assert_eq!(rx.try_recv(), None);
        for i in 0..3 {
            assert!(tx.send(int(i)));
        }
        assert_eq!(rx.recv().await, int(0));
        assert!(tx.send(int(3)));
        for i in 1..4 {
            assert_eq!(rx.recv().await, int(i));
        }
        // Waiting, then woken by a send from another task.
        let sender = tx.clone();
        let later = tokio::spawn(async move {
            tokio::task::yield_now().await;
            sender.send(int(4))
        });
        assert_eq!(rx.recv().await, int(4));
        assert!(later.await.unwrap());
    }

    #[tokio::test]
    async fn a_cancelled_receive_loses_nothing() {
        let (tx, mut rx) = mailbox();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(10), rx.recv()).await;
        assert!(waited.is_err());
        assert!(tx.send(int(1)));
        assert_eq!(rx.recv().await, int(1));
    }

    #[test]
    fn a_closed_mailbox_drops_what_is_sent() {
        let (tx, rx) = mailbox();
        assert!(tx.send(int(1)));
        drop(rx);
        assert!(!tx.send(int(2)));
        assert!(lock(&tx.0).messages.is_empty());
    }

    #[test]
    fn a_burst_leaves_no_large_queue_behind() {
        let (tx, mut rx) = mailbox();
        for i in 0..100_000 {
            tx.send(int(i));
        }
        for i in 0..100_000 {
            assert_eq!(rx.try_recv(), Some(int(i)));
        }
        tx.send(int(0));
        assert_eq!(rx.try_recv(), Some(int(0)));
        assert!(rx.taken.capacity() <= KEPT_CAPACITY);
        assert!(lock(&tx.0).messages.capacity() <= KEPT_CAPACITY);
    }
}
