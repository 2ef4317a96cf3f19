//! Watching other nodes, as a BEAM process does: `erlang:monitor_node/2` (`Node.monitor/2`:
//! one `{nodedown, Node}` per monitor when the connection to `Node` goes, or cannot be
//! made) and `net_kernel:monitor_nodes/1,2` (`{nodeup, Node}` and `{nodedown, Node}` for
//! every node that connects or goes, with `node_type` and `nodedown_reason` as options).
//!
//! As on the BEAM, a `nodeup` comes after the node is among [`Node::connected_nodes`],
//! a `nodedown` after it has left them and after the links and monitors across the
//! connection have fired; a node that goes and comes back gives its `nodedown` before
//! its `nodeup`. Both go when the process ends.

use super::{Node, ProcEntry};
use crate::connection::ConnHandle;
use crate::sync::lock;
use crate::term::{atom, list, tuple, Atom, Term};
use std::sync::{Arc, Mutex};

/// What [`Process::monitor_nodes_with`](crate::Process::monitor_nodes_with) tells of,
/// and what its messages hold: the options of `net_kernel:monitor_nodes/2`, as a
/// keyword list. The default (no option) is `monitor_nodes/1`'s: visible nodes, and
/// the messages `{:nodeup, node}` and `{:nodedown, node}`; with any option they are
/// `{:nodeup, node, info}` and `{:nodedown, node, info}`, `info` a keyword list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeEvents {
    /// `node_type: :visible | :hidden | :all`: the nodes told of, each message's
    /// `info` saying which the node is (`node_type: :hidden`). `None`: visible nodes,
    /// and no `node_type` in `info`.
    pub node_type: Option<NodeType>,
    /// `:nodedown_reason`: a `nodedown`'s `info` says why the connection went:
    /// `:connection_closed`, `:net_tick_timeout`, `:disconnect` (this node's
    /// `Node.disconnect/1`) or `:shutdown` (this node stopped).
    pub nodedown_reason: bool,
}

/// The nodes [`NodeEvents`] tells of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    /// Nodes in `Node.list()`.
    Visible,
    /// Hidden nodes (`Node.list(:hidden)`): `erl_call`, the `cnode` command, a
    /// `--hidden` node.
    Hidden,
    /// Both.
    All,
}

impl NodeEvents {
    fn tells_of(&self, visible: bool) -> bool {
        match self.node_type {
            None | Some(NodeType::Visible) => visible,
            Some(NodeType::Hidden) => !visible,
            Some(NodeType::All) => true,
        }
    }

    /// The message telling of `peer` (`up`, or down for `reason`).
    fn message(&self, up: bool, peer: Atom, visible: bool, reason: &str) -> Term {
        let tag = atom(if up { "nodeup" } else { "nodedown" });
        if *self == NodeEvents::default() {
            return tuple(vec![tag, Term::Atom(peer)]);
        }
        // In the BEAM's order: the reason first.
        let mut info = Vec::new();
        if self.nodedown_reason && !up {
            info.push(tuple(vec![
                atom("nodedown_reason"),
                atom(nodedown_reason(reason)),
            ]));
        }
        if self.node_type.is_some() {
            let kind = if visible { "visible" } else { "hidden" };
            info.push(tuple(vec![atom("node_type"), atom(kind)]));
        }
        tuple(vec![tag, Term::Atom(peer), list(info)])
    }
}

/// The `nodedown_reason` of the TCP distribution for why a connection went (as
/// [`connect`](super::connect) and the connection's reader say it).
fn nodedown_reason(why: &str) -> &'static str {
    match why {
        "net_tick_timeout" => "net_tick_timeout",
        "disconnected" => "disconnect",
        "node stopped" => "shutdown",
        _ => "connection_closed",
    }
}

/// The node's watchers of other nodes.
#[derive(Default)]
pub(crate) struct NodeWatch {
    inner: Mutex<Watchers>,
}

#[derive(Default)]
struct Watchers {
    /// One per `monitor_node(Node, true)` still in force.
    monitors: Vec<(Arc<ProcEntry>, Atom)>,
    /// One per `monitor_nodes(true, Options)` still in force.
    subscribers: Vec<(Arc<ProcEntry>, NodeEvents)>,
}

impl Node {
    /// `erlang:monitor_node(peer, on)` for the process `entry`.
    pub(crate) fn monitor_node(&self, entry: &Arc<ProcEntry>, peer: &str, on: bool) {
        let peer = Atom::from(peer);
        if self.is_local(&peer) {
            // The BEAM keeps no monitor of its own node: it never goes down alone.
            return;
        }
        if !on {
            let mut w = lock(&self.0.node_watch.inner);
            if let Some(i) = w
                .monitors
                .iter()
                .position(|(e, n)| Arc::ptr_eq(e, entry) && n == &peer)
            {
                w.monitors.remove(i);
            }
            return;
        }
        if !self.watches_nodes(entry) {
            return;
        }
        lock(&self.0.node_watch.inner)
            .monitors
            .push((entry.clone(), peer));
        if !self.connected_nodes().iter().any(|n| n == peer.name()) {
            // As the BEAM: an attempt to connect, whose failure is the `nodedown`.
            let node = self.clone();
            tokio::spawn(async move { node.connect(peer.name()).await });
        }
    }

    /// `net_kernel:monitor_nodes(on, events)` for the process `entry`: `false` ends
    /// every subscription it made with the same options.
    pub(crate) fn monitor_nodes(&self, entry: &Arc<ProcEntry>, on: bool, events: NodeEvents) {
        if !on {
            lock(&self.0.node_watch.inner)
                .subscribers
                .retain(|(e, ev)| !(Arc::ptr_eq(e, entry) && *ev == events));
            return;
        }
        if self.watches_nodes(entry) {
            lock(&self.0.node_watch.inner)
                .subscribers
                .push((entry.clone(), events));
        }
    }

    /// Marks `entry` as a watcher of nodes, for its end to remove what it watches;
    /// false when it has ended.
    fn watches_nodes(&self, entry: &ProcEntry) -> bool {
        let mut st = entry.state();
        st.watches_nodes = true;
        !st.dead
    }

    /// A process that watched nodes ended.
    pub(crate) fn forget_node_watcher(&self, entry: &Arc<ProcEntry>) {
        let mut w = lock(&self.0.node_watch.inner);
        w.monitors.retain(|(e, _)| !Arc::ptr_eq(e, entry));
        w.subscribers.retain(|(e, _)| !Arc::ptr_eq(e, entry));
    }

    /// The connection `conn` came up: its subscribers hear of it.
    pub(super) fn tell_node_up(&self, conn: &ConnHandle) {
        self.tell_subscribers(conn, true, "");
    }

    /// The connection `conn` went, for `why`: its subscribers hear of it.
    pub(super) fn tell_node_down(&self, conn: &ConnHandle, why: &str) {
        self.tell_subscribers(conn, false, why);
    }

    fn tell_subscribers(&self, conn: &ConnHandle, up: bool, why: &str) {
        let visible = self.is_visible(conn);
        let told: Vec<(Arc<ProcEntry>, Term)> = {
            let w = lock(&self.0.node_watch.inner);
            w.subscribers
                .iter()
                .filter(|(_, ev)| ev.tells_of(visible))
                .map(|(e, ev)| (e.clone(), ev.message(up, conn.peer, visible, why)))
                .collect()
        };
        for (entry, message) in told {
            entry.deliver(message);
        }
    }

    /// There is no connection to `peer` (it went, or could not be made): each
    /// `monitor_node` on it fires, once.
    pub(super) fn fire_node_monitors(&self, peer: &Atom) {
        let fired: Vec<Arc<ProcEntry>> = {
            let mut w = lock(&self.0.node_watch.inner);
            if w.monitors.is_empty() {
                return;
            }
            let (fired, kept) = std::mem::take(&mut w.monitors)
                .into_iter()
                .partition(|(_, n)| n == peer);
            w.monitors = kept;
            fired.into_iter().map(|(e, _)| e).collect()
        };
        for entry in fired {
            entry.deliver(tuple(vec![atom("nodedown"), Term::Atom(*peer)]));
        }
    }
}
