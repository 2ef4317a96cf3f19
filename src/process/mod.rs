//! Processes as their own code sees them: pids with mailboxes, links, monitors, aliases,
//! exit signals and group leaders, with the BEAM's semantics.
//!
//! Each process is a tokio task that owns a [`Process`] handle: its mailbox (with
//! selective receive) and the operations a BEAM process has (`send`, `link`, `monitor`,
//! `trap_exit`, `exit`, GenServer-style `call`, I/O through its group leader). The node
//! keeps the shared half (its process table entry) that other processes and remote
//! nodes signal through. A process ends when its body returns (`normal`), returns an
//! [`Exception`], panics (an error exit of that one process), or is killed by an exit
//! signal it does not trap; then its links and monitors fire as on the BEAM.
//!
//! This layer also gives [`Node`](crate::Node) what needs a `Process`: `spawn`,
//! `spawn_registered`, and the functions BEAM nodes call (`register_function`, `apply`).

pub(crate) mod handle;
mod spawn;
pub(crate) use spawn::Abandoned;

pub use crate::node::{Dest, Exception, IntoMessage};
pub use handle::Process;
pub use spawn::Function;
