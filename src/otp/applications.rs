//! What a node runs as its applications: the servers started by no process
//! ([`gen_server::start`](super::gen_server::start), [`supervisor::start`](super::supervisor::start))
//! and the node's `Task.Supervisor`s. When the node stops, they are stopped with
//! `shutdown`, the last started first, before its connections close, as `init:stop/0`
//! stops a BEAM node's applications (each top supervisor terminating its children)
//! before `kernel` and the connections: their `terminate` callbacks run, and links and
//! monitors on other nodes see `shutdown` where they would otherwise see
//! `noconnection`. Processes spawned outside them end afterwards, as the processes a
//! BEAM node's `init` kills last.

use super::calls;
use super::supervisor::Shutdown;
use crate::node::Node;
use crate::process::handle::is_down_for;
use crate::process::Dest;
use crate::sync::lock;
use crate::term::{atom, Atom, Pid};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a stopping node waits for its applications (their supervisors wait for
/// each child as its `shutdown` says; a BEAM node's `init` waits for ever by default).
const SHUTDOWN: Duration = Duration::from_secs(30);

/// The node's applications, in start order.
#[derive(Default)]
pub(crate) struct Applications(Mutex<Roots>);

#[derive(Default)]
struct Roots {
    list: Vec<Root>,
    /// How many were left after the ended ones were last dropped.
    kept: usize,
}

enum Root {
    /// A server started by no process: stopped as `GenServer.stop(pid, :shutdown)`,
    /// given its [`shutdown`](crate::GenServer::shutdown).
    Server(Pid, Shutdown),
    /// A process its keeper starts again when it ends: the keeper stops doing so, and
    /// stops it as its parent (an exit signal `shutdown`).
    Kept {
        keeper: Pid,
        name: Atom,
        stopping: Arc<AtomicBool>,
    },
}

impl Root {
    fn is_alive(&self, node: &Node) -> bool {
        match self {
            Root::Server(pid, _) => node.is_alive(pid),
            Root::Kept { keeper, .. } => node.is_alive(keeper),
        }
    }
}

fn add(node: &Node, root: Root) {
    let apps = node.0.extensions.get::<Applications>();
    let mut roots = lock(&apps.0);
    // A program that starts servers for ever (one per session, say) keeps only those
    // still running: the ended ones go each time the list doubles.
    if roots.list.len() >= 2 * roots.kept.max(8) {
        roots.list.retain(|r| r.is_alive(node));
        roots.kept = roots.list.len();
    }
    roots.list.push(root);
}

/// A server started by no process has started.
pub(crate) fn add_server(node: &Node, pid: Pid, shutdown: Shutdown) {
    add(node, Root::Server(pid, shutdown));
}

/// A kept process (a `Task.Supervisor` of the node) has started; its keeper stops
/// starting it again once `stopping` is set.
pub(crate) fn add_kept(node: &Node, keeper: Pid, name: &str, stopping: Arc<AtomicBool>) {
    let name = Atom::from(name);
    add(
        node,
        Root::Kept {
            keeper,
            name,
            stopping,
        },
    );
}

/// The node hook: stops the applications, the last started first; returns when they
/// have ended (or after [`SHUTDOWN`]).
pub(crate) fn stop(node: &Node) -> BoxFuture<'static, ()> {
    let roots = std::mem::take(&mut lock(&node.0.extensions.get::<Applications>().0).list);
    let node = node.clone();
    Box::pin(async move {
        if roots.is_empty() {
            return;
        }
        let stopped = node.run_process(move |mut p| async move {
            for root in roots.iter().rev() {
                match root {
                    Root::Server(pid, shutdown) => {
                        if p.node().is_alive(pid) {
                            stop_server(&mut p, *pid, *shutdown).await;
                        }
                    }
                    Root::Kept {
                        keeper,
                        name,
                        stopping,
                    } => {
                        stopping.store(true, Ordering::Relaxed);
                        let node = p.node().clone();
                        let Some(child) = node.whereis(name.name()) else {
                            continue;
                        };
                        let monitor = p.monitor(child);
                        node.send_exit_signal(keeper, &child, atom("shutdown"), true);
                        p.receive_match(None, |m| is_down_for(m, &monitor)).await;
                    }
                }
            }
        });
        if tokio::time::timeout(SHUTDOWN, stopped).await.is_err() {
            tracing::warn!(
                node = %node.name(),
                "the node's servers did not stop within {} s; ending them",
                SHUTDOWN.as_secs()
            );
        }
    })
}

/// A server started by no process: `GenServer.stop(pid, :shutdown)`; one that does not
/// stop within its `shutdown` (stuck in a callback) gets the exit signal `shutdown` a
/// supervisor sends a child, and `kill` if that does not end it either, so that its
/// links and monitors see it end while the connections are still up. A supervisor's
/// (`Infinity`) waits for its children, within the node's [`SHUTDOWN`].
async fn stop_server(p: &mut crate::process::Process, pid: Pid, shutdown: Shutdown) {
    let to = Dest::Pid(pid);
    let stopped = match shutdown {
        Shutdown::Timeout(t) => calls::stop(p, to, atom("shutdown"), Some(t)).await.is_ok(),
        Shutdown::Infinity => calls::stop(p, to, atom("shutdown"), None).await.is_ok(),
        Shutdown::BrutalKill => false,
    };
    if stopped || !p.node().is_alive(&pid) {
        return;
    }
    let signals: &[&str] = if shutdown == Shutdown::BrutalKill {
        &["kill"]
    } else {
        // Named as it is registered, when it is (`echo`), else by its pid.
        let name = p
            .node()
            .local_entry(&pid)
            .and_then(|e| e.state().name)
            .map_or_else(
                || crate::term::Inspect::inspect(&pid).to_string(),
                |n| n.name().to_owned(),
            );
        tracing::warn!(
            node = %p.node().name(),
            "server {name} did not stop within its shutdown ({}); ending it",
            shutdown.to_term()
        );
        &["shutdown", "kill"]
    };
    let monitor = p.monitor(pid);
    for reason in signals {
        p.node()
            .send_exit_signal(&p.pid(), &pid, atom(reason), false);
        let down = p.receive_match(Some(Duration::from_secs(1)), |m| is_down_for(m, &monitor));
        if down.await.is_some() {
            return;
        }
    }
    p.demonitor(&monitor, true);
}

/// Whether the kept process's keeper is to stop starting it again.
pub(crate) fn is_stopping(stopping: &AtomicBool) -> bool {
    stopping.load(Ordering::Relaxed)
}
