//! The OTP behaviours a BEAM node has, built on processes: `net_kernel`, `rex` and erpc,
//! remote spawn, the `user` I/O server, `global`, GenServer calls and the
//! `Task.Supervisor` protocol. [`Node::start`] starts a node with them: the node core
//! reaches them only through the hooks given here.

mod applications;
pub(crate) mod builtins;
mod calls;
mod errors;
pub mod gen_server;
pub(crate) mod global;
pub(crate) mod io;
pub(crate) mod net_kernel;
pub(crate) mod pg;
pub mod rpc;
pub(crate) mod spawn;
pub mod supervisor;
pub(crate) mod sys;
mod system;
pub mod task_supervisor;

use crate::connection::ConnHandle;
use crate::node::{Hooks, Node, NodeConfig, NodeError};
use crate::process::{handle::exit_message, Exception, Process};
use crate::term::{atom, int, list, tuple, Inspect, Match, Pid, Short, Term};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What the node core calls in this layer.
const HOOKS: Hooks = Hooks {
    crashed: io::report_crash,
    node_up,
    node_down,
    spawn_request: spawn::handle_request,
    global_name: Node::whereis_global,
    stopping: applications::stop,
};

impl Node {
    /// Starts a node: listens, registers with EPMD (starting one when none answers),
    /// starts the system processes a BEAM node has (`net_kernel`, `rex`, `user`,
    /// `logger_proxy`, `global_name_server`), then accepts connections. It runs until
    /// [`stop`](Node::stop) (or `halt`, or the end of its tokio runtime): dropping
    /// every `Node` handle does not stop it, as its own tasks hold one.
    ///
    /// The first node of a program also wraps the panic hook (see
    /// [`std::panic::set_hook`]) to note where a panic happens, so a process that
    /// panics exits with that frame in its stack, as a BEAM process's error has its
    /// frames. A panic in process code (a callback, a registered function, a process
    /// body) is that process's exit, logged as the BEAM logs a crash (an error-level
    /// `tracing` event, where an error tracker that reads the log sees it): the hook
    /// that was there does not run for it; it runs for every other panic, the
    /// program's own. A program that sets a panic hook of its own sets it before the
    /// first node starts: one set later replaces the wrapper, and panics then exit
    /// without their frame.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let bound = Node::bind(config, HOOKS).await?;
        start_system_processes(&bound.node);
        Ok(bound.accept())
    }
}

/// The processes every node runs from the start.
fn start_system_processes(node: &Node) {
    io::start_user(node);
    io::start_logger_proxy(node);
    net_kernel::start(node);
    rpc::start(node);
    builtins::register(node);
    system::register(node);
    io::register_functions(node);
    calls::register(node);
    global::register_functions(node);
    global::register_resolve_it(node);
    global::register_lock_functions(node);
    pg::register_functions(node);
    rpc::register_functions(node);
    // A hidden node runs `global` too, as a BEAM node does: no peer syncs with it, and
    // the names registered on it are its own.
    global::start(node);
}

/// A connection came up: a visible node starts a `global` session with a visible peer,
/// as `global` does on `nodeup`.
fn node_up(node: &Node, conn: &ConnHandle) {
    if node.is_visible(conn) {
        global::node_up(node, &conn.peer);
        pg::node_up(node, &conn.peer);
    }
}

/// A connection went down: `global` hears of a visible peer's, as of its `nodeup`.
fn node_down(node: &Node, conn: &ConnHandle) {
    if node.is_visible(conn) {
        global::node_down(node, &conn.peer);
    }
}

/// Starts a process registered as `name` under a parent that starts it again whenever
/// it exits, as a BEAM node's supervisors keep its system processes (`kernel_sup`) and
/// an application's processes running: `body` gets the process and its parent's pid.
/// Returns the first process's pid; `Err` when the name is taken.
/// Has tools see a system process as the gen_server it is on a BEAM node
/// (`{gen_server, loop, 7}` as its current function, `{Module, init, 1}` as its
/// `$initial_call`, its keeper as its ancestor).
pub(crate) fn shown_as_gen_server(p: &Process, parent: crate::term::Pid, module: &str) {
    use crate::term::Atom;
    let initial_call = (Atom::from(module), Atom::from("init"), 1);
    p.set_proc_lib(gen_server::gen_server_proc_lib(
        initial_call,
        vec![crate::term::Term::Pid(parent)],
    ));
}

pub(crate) fn keep_registered<F, Fut>(node: &Node, name: &str, body: F) -> Result<Pid, Exception>
where
    F: Fn(Process, Pid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Exception>> + Send + 'static,
{
    keep(node, name, body, false)
}

/// [`keep_registered`] for a process of the node's applications (a `Task.Supervisor`):
/// stopped with `shutdown`, and not started again, when the node stops.
pub(crate) fn keep_registered_app<F, Fut>(
    node: &Node,
    name: &str,
    body: F,
) -> Result<Pid, Exception>
where
    F: Fn(Process, Pid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Exception>> + Send + 'static,
{
    keep(node, name, body, true)
}

fn keep<F, Fut>(node: &Node, name: &str, body: F, app: bool) -> Result<Pid, Exception>
where
    F: Fn(Process, Pid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Exception>> + Send + 'static,
{
    let body = Arc::new(body);
    let parent = node
        .prepare(node.spawn_opts(node.user_pid()))
        .expect("a process without a name always prepares");
    let parent_pid = parent.entry.pid;
    let first = match start_kept(node, name, parent_pid, &body) {
        Ok(first) => first,
        Err(taken) => {
            // The keeper has nothing to keep: it ends at once, and leaves the table.
            node.start_prepared(parent, |_| async { Ok(()) });
            return Err(taken);
        }
    };
    parent.entry.state().links.insert(first);
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if app {
        applications::add_kept(node, parent_pid, name, stopping.clone());
    }
    let name = name.to_owned();
    let mut current = first;
    node.start_prepared(parent, move |mut p| async move {
        p.trap_exit(true);
        let mut suspended = false;
        loop {
            // It stands where a BEAM node has kernel_sup or an application's top
            // supervisor: it answers `sys` and `which_children`/`count_children`, which
            // tools that walk links send it, where silence would hang them.
            let state = || kept_children(&name, current, app);
            let received = sys::receive(&mut p, None, &mut suspended, &state, None).await;
            let message = match received {
                Ok(message) => message,
                Err(reason) => return Err(Exception::Exit(reason)),
            };
            if let Some((from, request)) = gen_server::parse_call(&message) {
                match request.as_atom() {
                    Some("which_children") => from.reply(&p, kept_children(&name, current, app)),
                    Some("count_children") => {
                        let (supervisors, workers) = if app { (1, 0) } else { (0, 1) };
                        let counts = [
                            ("specs", 1),
                            ("active", 1),
                            ("supervisors", supervisors),
                            ("workers", workers),
                        ];
                        let counts = counts.iter().map(|(k, n)| tuple(vec![atom(k), int(*n)]));
                        from.reply(&p, list(counts.collect()));
                    }
                    _ => {}
                }
                continue;
            }
            let Some((pid, reason)) = exit_message(&message) else {
                continue;
            };
            if pid != &current {
                continue;
            }
            // Nothing starts again once the node stops (the node's stop ends every
            // process, a kept one too).
            if applications::is_stopping(&stopping) || p.node().stop_begun() {
                return Ok(());
            }
            if supervisor::is_normal_exit(reason) {
                tracing::info!(
                    "{name} ({}) stopped: {}; starting it again",
                    current.inspect(),
                    Short(reason)
                );
            } else {
                tracing::error!(
                    "{name} ({}) terminated: {}; starting it again",
                    current.inspect(),
                    Short(reason)
                );
            }
            // The name is free once the exit has been handled: wait for that.
            let node = p.node().clone();
            let started = loop {
                match start_kept(&node, &name, p.pid(), &body) {
                    Ok(pid) => break Some(pid),
                    Err(_) if node.whereis(&name).is_some_and(|n| n == current) => {
                        tokio::time::sleep(Duration::from_millis(1)).await
                    }
                    Err(_) => break None,
                }
            };
            let Some(pid) = started else {
                tracing::error!("{name}: the name is taken by another process; not restarted");
                return Ok(());
            };
            p.link(&pid);
            current = pid;
        }
    });
    Ok(first)
}

/// `which_children` of a keeper: its one child, `{Name, Pid, Type, Modules}` (a
/// `Task.Supervisor` for an application's, else a worker named after itself).
fn kept_children(name: &str, current: Pid, app: bool) -> Term {
    let (kind, module) = if app {
        ("supervisor", "Elixir.Task.Supervisor")
    } else {
        ("worker", name)
    };
    list(vec![tuple(vec![
        atom(name),
        Term::Pid(current),
        atom(kind),
        list(vec![atom(module)]),
    ])])
}

fn start_kept<F, Fut>(node: &Node, name: &str, parent: Pid, body: &Arc<F>) -> Result<Pid, Exception>
where
    F: Fn(Process, Pid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Exception>> + Send + 'static,
{
    let mut opts = node.spawn_opts(node.user_pid()).linked_to(parent);
    opts.name = Some(crate::term::Atom::from(name));
    let prepared = node.prepare(opts)?;
    let body = Arc::clone(body);
    Ok(node.start_prepared(prepared, move |p| body(p, parent)))
}
