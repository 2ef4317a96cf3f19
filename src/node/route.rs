//! Where a message goes: to a process here, or written to the connection to its node;
//! and what a connection hands the node (the [`connection::Owner`] the node is).

use super::names::LastName;
use super::{connect, dist, Dest, IntoMessage, Node};
use crate::connection::codec::{Decoded, Payload, To};
use crate::connection::message::Message;
use crate::connection::{self, ConnHandle};
use crate::term::{tuple, Atom, Pid, Reference, Term};
use std::sync::Arc;

impl Node {
    /// Sends a message from no process in particular (a pid-less sender, as a port
    /// would be); replies cannot come back to it. It never waits: to a peer that reads
    /// slowly or not at all, what is sent queues up in memory; [`send_async`](Self::send_async)
    /// waits instead.
    pub fn send(&self, to: impl Into<Dest>, message: impl IntoMessage) {
        let from = self.user_pid();
        self.route(&from, to.into(), message);
    }

    /// [`send`](Self::send) that waits, when the message leaves on a busy connection
    /// (more than `NodeConfig::dist_buf_busy_limit` bytes waiting for a slow or stalled
    /// peer), until that connection has drained or closed, and to a node not connected
    /// yet, until the connection is up (or failed: the message is then dropped), as a
    /// BEAM process that sends is suspended: a loop of sends from code that is no
    /// process then holds memory to the limit, where `send` would queue whatever it is
    /// given.
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node) {
    /// use cnode::term::int;
    /// for n in 0..1_000_000 {
    ///     node.send_async(("sink", "alex@localhost"), int(n)).await;
    /// }
    /// # }
    /// ```
    pub async fn send_async(&self, to: impl Into<Dest>, message: impl IntoMessage) {
        let Some(to) = self.resolved(to.into()) else {
            return;
        };
        // To a node not connected yet: the connection first, as a BEAM process that
        // sends is suspended while its node connects (what waits for a connection to
        // come up is not bounded by the busy limit). A node that cannot be reached gets
        // nothing, as from a BEAM process.
        let peer = match &to {
            Dest::Pid(p) => Some(p.node),
            Dest::RemoteName(_, n) => Some(*n),
            Dest::Alias(r) => Some(r.node),
            Dest::Name(_) | Dest::Global(_) => None,
        };
        if let Some(peer) = peer.filter(|n| !self.is_local(n)) {
            if !self.connect(peer.name()).await {
                return;
            }
        }
        let from = self.user_pid();
        if let Some(busy) = self.route(&from, to, message) {
            busy.drained().await;
        }
    }

    /// `to`, a `{:global, Name}` replaced by the process holding the name (found now,
    /// as `global:send/2` and `gen:call` find it); `None` when nobody holds it.
    pub(crate) fn resolved(&self, to: Dest) -> Option<Dest> {
        match to {
            Dest::Global(name) => (self.hooks().global_name)(self, &name).map(Dest::Pid),
            to => Some(to),
        }
    }

    /// Sends `message` from `from` to `to`: delivered to a process here, written to the
    /// connection (from a borrow) for a process elsewhere. Returns that connection when
    /// it is busy (`NodeConfig::dist_buf_busy_limit`).
    pub(crate) fn route(
        &self,
        from: &Pid,
        to: Dest,
        message: impl IntoMessage,
    ) -> Option<crate::node::Busy> {
        self.route_in(from, to, Vec::new(), message)
    }

    /// [`route`](Self::route) of the tuple of `head`'s elements then `message` (just
    /// `message` when `head` is empty): the `$gen_call` and `$gen_cast` wrappers around
    /// a request that may be lent.
    pub(crate) fn route_in(
        &self,
        from: &Pid,
        to: Dest,
        head: Vec<Term>,
        message: impl IntoMessage,
    ) -> Option<crate::node::Busy> {
        let Some(to) = self.resolved(to) else {
            tracing::debug!("message to a global name nobody holds, dropped");
            return None;
        };
        let remote = match &to {
            Dest::Pid(pid) if !self.is_local(&pid.node) => Some((&pid.node, To::Pid(pid))),
            Dest::RemoteName(name, node) if !self.is_local(node) => Some((node, To::Name(name))),
            Dest::Alias(alias) if !self.is_local(&alias.node) => {
                Some((&alias.node, To::Alias(alias)))
            }
            _ => None,
        };
        if let Some((node, to)) = remote {
            return connect::send_to(self, node, from, to, head, message);
        }
        let entry = match &to {
            Dest::Pid(pid) if pid.creation != self.0.creation => {
                // A pid of an earlier run of this node: dropped, and said, as the BEAM
                // says it.
                use crate::term::Inspect;
                let mut elements = head;
                elements.push(message.into_term());
                let message = match elements.len() {
                    1 => elements.pop().expect("one"),
                    _ => tuple(elements),
                };
                tracing::error!(
                    "Discarding message {} from {} to {} in an old incarnation ({}) of this \
                     node ({})",
                    message.erlang(),
                    Term::Pid(*from).erlang(),
                    Term::Pid(*pid).erlang(),
                    pid.creation,
                    self.0.creation
                );
                return None;
            }
            Dest::Pid(pid) => self.local_entry(pid),
            Dest::Name(name) | Dest::RemoteName(name, _) => {
                let entry = self.registered_entry(name);
                if entry.is_none() {
                    tracing::debug!("message to unregistered name {name} dropped");
                }
                entry
            }
            Dest::Alias(alias) => self.alias_entry(alias),
            Dest::Global(_) => None,
        };
        if let Some(e) = entry {
            let mut message = message.into_term();
            if !head.is_empty() {
                let mut elements = head;
                elements.push(message);
                message = tuple(elements);
            }
            e.deliver(message);
        }
        None
    }

    /// A message sent with the `priority` option to `alias` (`erlang:send/3`).
    pub(crate) fn route_priority(
        &self,
        from: &Pid,
        alias: &Reference,
        message: impl IntoMessage,
    ) -> Option<crate::node::Busy> {
        if !self.is_local(&alias.node) {
            return connect::send_to(
                self,
                &alias.node,
                from,
                To::PriorityAlias(alias),
                Vec::new(),
                message,
            );
        }
        let entry = self.alias_entry(alias)?;
        if self.is_priority_alias(&entry, alias) {
            entry.deliver_priority(message.into_term());
        } else {
            entry.deliver(message.into_term());
        }
        None
    }

    /// `erlang:send({Name, Node}, Message, [noconnect])`: sent only over a connection
    /// to `node` that is up, never bringing one up (dropped when there is none), as
    /// `global` sends what must not connect nodes.
    pub(crate) fn send_noconnect(&self, from: &Pid, name: &Atom, node: &str, message: &Term) {
        if let Some(h) = connect::handle(self, node) {
            h.send_to(from, To::Name(name), Payload::Term(message), Vec::new());
        }
    }

    /// Queues a control message for `node`, connecting first if needed.
    pub(crate) fn send_to_node(&self, node: &Atom, message: Message) {
        connect::send(self, node, message);
    }
}

impl connection::Owner for Node {
    type Memo = LastName;

    fn take(&self, conn: &Arc<ConnHandle>, decoded: Decoded, last: &mut LastName) {
        match decoded {
            Decoded::Message(message) => dist::dispatch(self, conn, message, last),
            Decoded::AltAct(signal) => dist::alt_act(self, signal, last),
        }
    }

    fn down(&self, conn: &Arc<ConnHandle>, reason: &str) {
        connect::down(self, conn, reason);
    }
}
