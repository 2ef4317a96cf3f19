//! Locks as the whole crate takes them.

use std::sync::{Mutex, MutexGuard};

/// A lock of the node's tables or of a connection's outbox, taken even when poisoned:
/// the node keeps serving. (The outbox stays whole: a frame being encoded when a bug
/// panics is cut back, see `codec::framed`.)
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
