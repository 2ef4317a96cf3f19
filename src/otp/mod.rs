//! The OTP behaviours a BEAM node has, built on processes: `net_kernel`, `rex` and erpc,
//! remote spawn, the `user` I/O server, `global`, GenServer calls and the
//! `Task.Supervisor` protocol.

pub(crate) mod builtins;
pub mod gen_server;
pub(crate) mod global;
pub(crate) mod io;
pub(crate) mod net_kernel;
pub mod rpc;
pub(crate) mod spawn;
pub mod task_supervisor;

use crate::connection::ConnHandle;
use crate::node::Node;
use crate::term::{Atom, Pid, Term};
use std::sync::Arc;

/// The processes every node runs from the start.
pub(crate) fn start_system_processes(node: &Node) {
    io::start_user(node);
    net_kernel::start(node);
    rpc::start(node);
    builtins::register(node);
    if !node.0.config.hidden {
        global::start(node);
    }
}

/// A connection came up: a visible node starts a `global` session with a visible peer,
/// as `global` does on `nodeup`.
pub(crate) fn node_up(node: &Node, conn: &Arc<ConnHandle>) {
    if !node.0.config.hidden && conn.is_visible() {
        global::node_up(node, &conn.peer);
    }
}

/// A connection went down: `global` hears of a visible peer's, as of its `nodeup`.
pub(crate) fn node_down(node: &Node, conn: &ConnHandle) {
    if !node.0.config.hidden && conn.is_visible() {
        global::node_down(node, &conn.peer);
    }
}

/// A message to a name nobody registered here: dropped, as the BEAM drops it.
pub(crate) fn unregistered_name(_node: &Node, from: &Pid, name: &Atom, _message: Term) {
    tracing::debug!("message from {from} to unregistered name {name} dropped");
}
