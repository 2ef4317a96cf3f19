//! Timers: `erlang:send_after/3` and `start_timer/3` (Elixir's `Process.send_after/3`),
//! `cancel_timer/1` and `read_timer/1`, as the BEAM keeps them.
//!
//! A timer is a reference this node made, in one node-wide table (any process may
//! cancel or read any timer whose reference it has, as on the BEAM), and a tokio task
//! that sleeps until its time and sends the message. A timer to a process of this node
//! is also listed in that process's state, so that it goes when the process ends (as a
//! BEAM timer to a pid is cancelled when that process exits): a process that sets a
//! long timer for each request and ends early leaves nothing behind. Taking a timer out
//! of the table is what decides between its firing and its cancelling, so exactly one
//! of them happens; the table and a process's state are never locked together.

use super::keys::{OwnMap, RefKey};
use super::{Dest, Node, ProcEntry};
use crate::sync::lock;
use crate::term::{atom, tuple, Pid, Reference, Term};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A node's running timers, by reference.
#[derive(Default)]
pub(crate) struct Timers {
    table: Mutex<OwnMap<RefKey, Timer>>,
}

struct Timer {
    at: Instant,
    task: tokio::task::AbortHandle,
    /// The process of this node the message goes to, when it goes to a pid here.
    target: Option<Arc<ProcEntry>>,
}

impl Node {
    /// A timer sending `message` from `from` to `to` after `delay`; with `tagged`, the
    /// message is `{:timeout, TimerRef, message}` (`erlang:start_timer/3`).
    pub(crate) fn start_timer_from(
        &self,
        from: Pid,
        to: Dest,
        message: Term,
        delay: Duration,
        tagged: bool,
    ) -> Reference {
        let key = self.new_ref_key();
        let reference = self.own_ref(key);
        let message = if tagged {
            tuple(vec![
                atom("timeout"),
                Term::Reference(Box::new(reference.clone())),
                message,
            ])
        } else {
            message
        };
        let target = match &to {
            Dest::Pid(pid) if self.is_local(&pid.node) => match self.local_entry(pid) {
                Some(entry) => Some(entry),
                // A timer to a process that has ended is cancelled at once.
                None => return reference,
            },
            _ => None,
        };
        let at = super::instant_after(delay);
        {
            let mut table = lock(&self.0.timers.table);
            let node = self.clone();
            // Spawned under the table's lock: the task cannot look for its entry before
            // it is there, even with no delay.
            let task = tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                if let Some(timer) = node.take_timer(key) {
                    node.route(&from, to, message);
                    drop(timer);
                }
            });
            table.insert(
                key,
                Timer {
                    at,
                    task: task.abort_handle(),
                    target: target.clone(),
                },
            );
        }
        if let Some(entry) = target {
            let mut st = entry.state();
            if st.dead {
                drop(st);
                self.cancel_timer(&reference);
            } else {
                st.timers.push(key);
            }
        }
        reference
    }

    /// [`Process::send_after`](crate::Process::send_after) from plain Rust code: the
    /// message comes from no process in particular, as [`send`](Node::send)'s.
    pub fn send_after(&self, to: impl Into<Dest>, message: Term, delay: Duration) -> Reference {
        self.start_timer_from(self.user_pid(), to.into(), message, delay, false)
    }

    /// Takes timer `key` out of the table (and out of its target's list): whoever gets
    /// it fires or cancels it.
    fn take_timer(&self, key: RefKey) -> Option<Timer> {
        let timer = lock(&self.0.timers.table).remove(&key)?;
        if let Some(entry) = &timer.target {
            let mut st = entry.state();
            if let Some(i) = st.timers.iter().position(|k| *k == key) {
                st.timers.swap_remove(i);
            }
        }
        Some(timer)
    }

    /// `erlang:cancel_timer/1` (`Process.cancel_timer/1`): the time that was left, or
    /// `None` when `timer` is not a running timer (it fired, was cancelled, or is no
    /// timer at all). A message already sent stays in the receiver's mailbox.
    pub fn cancel_timer(&self, timer: &Reference) -> Option<Duration> {
        let timer = self.take_timer(self.ref_key(timer)?)?;
        timer.task.abort();
        Some(timer.at.saturating_duration_since(Instant::now()))
    }

    /// `erlang:read_timer/1` (`Process.read_timer/1`): the time left before `timer`
    /// fires, or `None` when it is not a running timer.
    pub fn read_timer(&self, timer: &Reference) -> Option<Duration> {
        let key = self.ref_key(timer)?;
        let at = lock(&self.0.timers.table).get(&key)?.at;
        Some(at.saturating_duration_since(Instant::now()))
    }

    /// A process of this node ended: the timers that were to send to it go.
    pub(crate) fn cancel_timers_of(&self, keys: Vec<RefKey>) {
        if keys.is_empty() {
            return;
        }
        let mut table = lock(&self.0.timers.table);
        for key in keys {
            if let Some(timer) = table.remove(&key) {
                timer.task.abort();
            }
        }
    }

    /// The node is stopping: no timer fires any more.
    pub(crate) fn cancel_all_timers(&self) {
        let timers = std::mem::take(&mut *lock(&self.0.timers.table));
        for timer in timers.into_values() {
            timer.task.abort();
        }
    }
}
