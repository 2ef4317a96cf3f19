//! Links, monitors, aliases and exit signals between processes, local or remote, and
//! what a lost connection does to them (`erts_do_net_exits`).

use super::entry::{ExitOutcome, Monitor, MonitorTarget, ProcEntry, Watcher};
use super::keys::{pid_key, RefKey};
use super::{Dest, Node};
use crate::connection::message::Message;
use crate::connection::message::PidOrAtom;
use crate::sync::lock;
use crate::term::{atom, tuple, Atom, Pid, Reference, Term};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How long a process an exit signal ended may hold its thread before the rest of the
/// node sees it gone without waiting for its task (see [`Node::exit_signal_to`]).
const STUCK: std::time::Duration = std::time::Duration::from_millis(100);

/// The most abandoned spawn requests a process keeps (see [`Node::abandon_spawn`]).
const MAX_ABANDONED: usize = 1024;

impl Node {
    pub(crate) fn link(&self, entry: &Arc<ProcEntry>, to: &Pid) {
        if to == &entry.pid {
            return;
        }
        if self.is_local(&to.node) {
            match self.local_entry(to) {
                Some(other) => {
                    entry.state().links.insert(*to);
                    let inserted = {
                        let mut st = other.state();
                        !st.gone() && st.links.insert(entry.pid)
                    };
                    if !inserted && !other.state().links.contains(&entry.pid) {
                        entry.state().links.remove(to);
                        self.exit_signal_to(entry, to, atom("noproc"), false, false);
                    }
                }
                None => {
                    self.exit_signal_to(entry, to, atom("noproc"), false, false);
                }
            }
        } else {
            entry.state().links.insert(*to);
            self.send_to_node(&to.node, Message::link(entry.pid, *to));
        }
    }

    pub(crate) fn unlink(&self, entry: &Arc<ProcEntry>, to: &Pid) {
        if !entry.state().links.remove(to) {
            return;
        }
        if let Some(other) = self.local_entry(to) {
            other.state().links.remove(&entry.pid);
        } else if !self.is_local(&to.node) {
            // UNLINK_ID: the id only needs to be unique per link; the peer echoes it.
            let id = crate::term::int(
                (self.0.next_ref.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff) as i64,
            );
            self.send_to_node(&to.node, Message::unlink_id(id, entry.pid, *to));
        }
    }

    /// `Process.exit(pid, reason)` from code that is no process: an exit signal to
    /// `pid`, local or remote, from this node's `user` process.
    pub fn exit(&self, pid: &Pid, reason: Term) {
        self.send_exit_signal(&self.user_pid(), pid, reason, false);
    }

    /// `exit(Alias, Reason, Options)` (OTP 28): an exit signal to the process `alias`
    /// names while it is active (else dropped); with `priority`, through a priority
    /// alias, the `EXIT` message of a process trapping exits goes ahead of the ordinary
    /// ones. A peer without `ALTACT_SIG` cannot address an alias: dropped there.
    pub(crate) fn send_exit_to_alias(
        &self,
        from: &Pid,
        alias: &Reference,
        reason: Term,
        priority: bool,
    ) {
        if self.is_local(&alias.node) {
            if let Some(entry) = self.alias_entry(alias) {
                let priority = priority && self.is_priority_alias(&entry, alias);
                self.exit_signal_to(&entry, from, reason, false, priority);
            }
            return;
        }
        match super::connect::handle(self, alias.node.name()) {
            Some(h) if h.flags & crate::flags::ALTACT_SIG != 0 => {
                h.send(Message::AliasExit(crate::connection::message::AliasExit {
                    from_pid: *from,
                    alias: alias.clone(),
                    reason,
                    priority,
                }));
            }
            _ => tracing::debug!(
                "exit signal from {} to alias {} dropped: {} is not connected or cannot take it",
                crate::term::Inspect::inspect(from),
                crate::term::Inspect::inspect(alias),
                alias.node.name()
            ),
        }
    }

    /// An exit signal from `from` to a process of this node, through a link (`linked`)
    /// or `exit/2` (`priority`: through a priority alias). One that ends it ends it at
    /// once for the rest of the node, as on the BEAM: its task ends at its next await,
    /// and when its code holds the thread meanwhile (a callback that blocks), its links,
    /// monitors and name go after [`STUCK`] all the same; the code still running sends
    /// nothing more.
    pub(crate) fn exit_signal_to(
        &self,
        entry: &ProcEntry,
        from: &Pid,
        reason: Term,
        linked: bool,
        priority: bool,
    ) {
        let ExitOutcome::Killed(reason) = entry.exit_signal_as(from, reason, linked, priority)
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Ended meanwhile (its task already out of the table): nothing to do.
        let Some(entry) = self.local_entry(&entry.pid) else {
            return;
        };
        let node = self.clone();
        runtime.spawn(async move {
            tokio::time::sleep(STUCK).await;
            // Nothing when its task has ended it meanwhile.
            node.process_exited(&entry, reason);
        });
    }

    /// An exit signal from `from` to `to`: through a link (`linked`) or `exit/2`.
    pub(crate) fn send_exit_signal(&self, from: &Pid, to: &Pid, reason: Term, linked: bool) {
        if let Some(e) = self.local_entry(to) {
            self.exit_signal_to(&e, from, reason, linked, false);
        } else if !self.is_local(&to.node) {
            let msg = if linked {
                Message::exit(*from, *to, reason)
            } else {
                Message::exit2(*from, *to, reason)
            };
            self.send_to_node(&to.node, msg);
        }
    }

    pub(crate) fn monitor(&self, entry: &Arc<ProcEntry>, target: Dest, alias: bool) -> Reference {
        let key = self.new_ref_key();
        if alias {
            lock(&self.0.aliases).insert(key, pid_key(&entry.pid));
        }
        let reference = self.own_ref(key);
        self.monitor_with_ref(entry, target, alias, key, reference.clone());
        reference
    }

    fn monitor_with_ref(
        &self,
        entry: &Arc<ProcEntry>,
        target: Dest,
        alias: bool,
        key: RefKey,
        reference: Reference,
    ) {
        /// Who keeps the other end of the monitor.
        enum Watched {
            /// A peer node: it gets `MONITOR_P` (and makes the DOWN's object).
            Remote(Atom, PidOrAtom),
            /// A process of ours (if it exists), monitored by pid or by name.
            Local(Option<Arc<ProcEntry>>, Option<Atom>),
        }
        let target = self.resolved(target.clone()).unwrap_or(target);
        let watched = match &target {
            Dest::Pid(p) if self.is_local(&p.node) => Watched::Local(self.local_entry(p), None),
            Dest::Pid(p) => Watched::Remote(p.node, PidOrAtom::Pid(*p)),
            Dest::Name(n) => Watched::Local(self.registered_entry(n), Some(*n)),
            Dest::RemoteName(n, node) if self.is_local(node) => {
                Watched::Local(self.registered_entry(n), Some(*n))
            }
            Dest::RemoteName(n, node) => Watched::Remote(*node, PidOrAtom::Atom(*n)),
            Dest::Alias(_) | Dest::Global(_) => Watched::Local(None, None),
        };
        entry.state().monitors.insert(
            key,
            Monitor {
                target: MonitorTarget::Process(target),
                alias,
            },
        );
        let (local, by_name) = match watched {
            Watched::Remote(node, to) => {
                self.send_to_node(&node, Message::monitor_p(entry.pid, to, reference));
                return;
            }
            Watched::Local(local, by_name) => (local, by_name),
        };
        let added = match local {
            Some(t) => {
                let mut st = t.state();
                if st.gone() {
                    false
                } else {
                    let watcher = Watcher {
                        pid: entry.pid,
                        by_name,
                    };
                    st.monitored_by.insert(reference, watcher);
                    true
                }
            }
            None => false,
        };
        if !added {
            self.fire_monitor(entry, key, atom("noproc"));
        }
    }

    /// Removes monitor `key` from `entry`'s monitors and delivers its `DOWN` with
    /// `reason`.
    pub(crate) fn fire_monitor(&self, entry: &Arc<ProcEntry>, key: RefKey, reason: Term) {
        let Some(monitor) = entry.state().monitors.remove(&key) else {
            return;
        };
        if monitor.alias {
            lock(&self.0.aliases).remove(&key);
        }
        let object = match &monitor.target {
            MonitorTarget::Process(d) => d.down_object(&self.0.name),
            MonitorTarget::Spawn { .. } => atom("undefined"),
        };
        entry.deliver(down_message(self.own_ref(key), object, reason));
    }

    pub(crate) fn demonitor(&self, entry: &Arc<ProcEntry>, reference: &Reference) {
        let Some(key) = self.ref_key(reference) else {
            return;
        };
        let Some(monitor) = entry.state().monitors.remove(&key) else {
            return;
        };
        if monitor.alias {
            lock(&self.0.aliases).remove(&key);
        }
        self.drop_monitor_at_target(&entry.pid, reference.clone(), monitor.target);
    }

    /// Delivers the `DOWN` of `from` to a watcher, local or remote.
    pub(super) fn send_down(
        &self,
        from: &Pid,
        watcher: Watcher,
        reference: Reference,
        reason: Term,
    ) {
        if let Some(w) = self.local_entry(&watcher.pid) {
            if let Some(key) = self.ref_key(&reference) {
                let monitor = w.state().monitors.remove(&key);
                if monitor.is_some_and(|m| m.alias) {
                    lock(&self.0.aliases).remove(&key);
                }
            }
            let watched = match watcher.by_name {
                Some(name) => Dest::Name(name),
                None => Dest::Pid(*from),
            };
            w.deliver(down_message(
                reference,
                watched.down_object(&self.0.name),
                reason,
            ));
        } else if !self.is_local(&watcher.pid.node) {
            let from_proc = match watcher.by_name {
                Some(name) => PidOrAtom::Atom(name),
                None => PidOrAtom::Pid(*from),
            };
            let node = watcher.pid.node;
            self.send_to_node(
                &node,
                Message::monitor_p_exit(from_proc, watcher.pid, reference, reason),
            );
        }
    }

    /// Removes a monitor from its target's side (local state or `DEMONITOR_P`).
    pub(super) fn drop_monitor_at_target(
        &self,
        owner: &Pid,
        reference: Reference,
        target: MonitorTarget,
    ) {
        let MonitorTarget::Process(dest) = target else {
            return;
        };
        let local = match &dest {
            Dest::Pid(p) if self.is_local(&p.node) => self.local_entry(p),
            Dest::Name(n) => self.registered_entry(n),
            Dest::RemoteName(n, node) if self.is_local(node) => self.registered_entry(n),
            _ => None,
        };
        if let Some(t) = local {
            t.state().monitored_by.remove(&reference);
            return;
        }
        let (node, to_proc) = match dest {
            Dest::Pid(p) if !self.is_local(&p.node) => (p.node, PidOrAtom::Pid(p)),
            Dest::RemoteName(n, node) if !self.is_local(&node) => (node, PidOrAtom::Atom(n)),
            _ => return,
        };
        self.send_to_node(&node, Message::demonitor_p(*owner, to_proc, reference));
    }

    /// Registers a monitor for a `SPAWN_REQUEST` we send with the `monitor` option.
    pub(crate) fn add_spawn_monitor(
        &self,
        entry: &Arc<ProcEntry>,
        reference: Reference,
        node: Atom,
    ) {
        let Some(key) = self.ref_key(&reference) else {
            return;
        };
        entry.state().monitors.insert(
            key,
            Monitor {
                target: MonitorTarget::Spawn { node },
                alias: false,
            },
        );
    }

    /// The spawn request `reference` of `entry` is given up (before its monitor goes):
    /// its `SPAWN_REPLY`, if it has not come, is dropped when it does (at most
    /// [`MAX_ABANDONED`] are kept: a reply that never comes, its node gone, is not kept
    /// for ever).
    pub(crate) fn abandon_spawn(&self, entry: &Arc<ProcEntry>, reference: &Reference) {
        let Some(key) = self.ref_key(reference) else {
            return;
        };
        let mut st = entry.state();
        // Only while its reply has not come: the monitor still waits for the spawn.
        let waiting = st
            .monitors
            .get(&key)
            .is_some_and(|m| matches!(m.target, MonitorTarget::Spawn { .. }));
        if !waiting {
            return;
        }
        if st.abandoned_spawns.len() >= MAX_ABANDONED {
            st.abandoned_spawns.remove(0);
        }
        st.abandoned_spawns.push(key);
    }

    pub(crate) fn new_alias(&self, entry: &Arc<ProcEntry>) -> Reference {
        let key = self.new_ref_key();
        entry.state().aliases.insert(key);
        lock(&self.0.aliases).insert(key, pid_key(&entry.pid));
        self.own_ref(key)
    }

    pub(crate) fn new_priority_alias(&self, entry: &Arc<ProcEntry>) -> Reference {
        let alias = self.new_alias(entry);
        if let Some(key) = self.ref_key(&alias) {
            entry.state().priority_aliases.insert(key);
        }
        alias
    }

    pub(crate) fn remove_alias(&self, entry: &Arc<ProcEntry>, alias: &Reference) {
        let Some(key) = self.ref_key(alias) else {
            return;
        };
        let removed = {
            let mut st = entry.state();
            st.priority_aliases.remove(&key);
            st.aliases.remove(&key)
        };
        if removed {
            lock(&self.0.aliases).remove(&key);
        }
    }

    /// Whether `alias` is an active priority alias of `entry`.
    pub(crate) fn is_priority_alias(&self, entry: &ProcEntry, alias: &Reference) -> bool {
        self.ref_key(alias)
            .is_some_and(|k| entry.state().priority_aliases.contains(&k))
    }

    /// Every link and monitor across the lost connection fires with `noconnection`
    /// (`erts_do_net_exits`). `creation` limits it to one incarnation of the peer.
    pub(crate) fn node_down(&self, node: &Atom, creation: Option<u32>) {
        let on_node = |p: &Pid| &p.node == node && creation.is_none_or(|c| p.creation == c);
        for entry in self.entries() {
            let (links, monitors): (Vec<Pid>, Vec<RefKey>) = {
                let mut st = entry.state();
                if st.dead {
                    continue;
                }
                let links: Vec<Pid> = st.links.iter().filter(|p| on_node(p)).cloned().collect();
                st.monitored_by.retain(|_, w| !on_node(&w.pid));
                let mut monitors: Vec<RefKey> = st
                    .monitors
                    .iter()
                    .filter(|(_, m)| match &m.target {
                        MonitorTarget::Process(Dest::Pid(p)) => on_node(p),
                        MonitorTarget::Process(Dest::RemoteName(_, n)) => n == node,
                        MonitorTarget::Spawn { node: n } => n == node,
                        _ => false,
                    })
                    .map(|(&k, _)| k)
                    .collect();
                // In the order they were made, as a BEAM process gets its `:DOWN`s.
                monitors.sort_unstable_by_key(|k| k.made_order());
                (links, monitors)
            };
            for l in links {
                self.exit_signal_to(&entry, &l, atom("noconnection"), true, false);
            }
            for k in monitors {
                self.fire_monitor(&entry, k, atom("noconnection"));
            }
        }
        self.fire_node_monitors(node);
    }
}

/// `{'DOWN', Ref, process, Object, Reason}`.
pub(crate) fn down_message(reference: Reference, object: Term, reason: Term) -> Term {
    tuple(vec![
        atom("DOWN"),
        Term::Reference(Box::new(reference)),
        atom("process"),
        object,
        reason,
    ])
}
