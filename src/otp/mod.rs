//! The OTP behaviours a BEAM node has, built on processes: `net_kernel`, `rex` and erpc,
//! remote spawn, the `user` I/O server, `global`, GenServer calls and the
//! `Task.Supervisor` protocol. [`Node::start`] starts a node with them: the node core
//! reaches them only through the hooks given here.

pub(crate) mod builtins;
mod errors;
pub mod gen_server;
pub(crate) mod global;
pub(crate) mod io;
pub(crate) mod net_kernel;
pub mod rpc;
pub(crate) mod spawn;
pub mod supervisor;
pub mod task_supervisor;

use crate::connection::ConnHandle;
use crate::node::{Hooks, Node, NodeConfig, NodeError};

/// What the node core calls in this layer.
const HOOKS: Hooks = Hooks {
    crashed: io::report_crash,
    node_up,
    node_down,
    spawn_request: spawn::handle_request,
};

impl Node {
    /// Starts a node: listens, registers with EPMD (starting one when none answers),
    /// starts the system processes a BEAM node has (`net_kernel`, `rex`, `user`, and
    /// `global_name_server` when visible), then accepts connections.
    ///
    /// The first node of a program also wraps the panic hook (see
    /// [`std::panic::set_hook`]) to note where a panic happens, so a process that
    /// panics exits with that frame in its stack, as a BEAM process's error has its
    /// frames; the hook that was there still runs after it. A program that sets a panic
    /// hook of its own sets it before the first node starts: one set later replaces the
    /// wrapper, and panics then exit without their frame.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let bound = Node::bind(config, HOOKS).await?;
        start_system_processes(&bound.node);
        Ok(bound.accept())
    }
}

/// The processes every node runs from the start.
fn start_system_processes(node: &Node) {
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
fn node_up(node: &Node, conn: &ConnHandle) {
    if !node.0.config.hidden && conn.is_visible() {
        global::node_up(node, &conn.peer);
    }
}

/// A connection went down: `global` hears of a visible peer's, as of its `nodeup`.
fn node_down(node: &Node, conn: &ConnHandle) {
    if !node.0.config.hidden && conn.is_visible() {
        global::node_down(node, &conn.peer);
    }
}
