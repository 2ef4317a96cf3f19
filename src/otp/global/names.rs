//! The names `global` keeps: every node of a `global` cluster holds a copy of every name
//! registered in it (`global_names`), so `:global.whereis_name/1` is answered locally.
//! We register none ourselves; we take what the BEAM nodes tell us: the names a peer
//! has when we sync with it (`exchange`), the operations of a sync (`resolved`,
//! `new_nodes`), and each `register` / `unregister` call. A name goes when its process
//! ends or its node goes down (our monitor of it fires), as on a BEAM node. Name
//! clashes between partitions are resolved by the BEAM nodes between themselves (we
//! never run a resolve function: we are never the node that resolves), and their
//! outcome reaches us as operations.

use super::Global;
use crate::node::Node;
use crate::process::Process;
use crate::term::{atom, Match, Pid, Reference, Term};
use std::collections::HashMap;
use std::sync::RwLock;

/// The names, where `whereis` reads them; written by `global_name_server` only.
#[derive(Default)]
pub(crate) struct Names(RwLock<HashMap<Term, Pid>>);

impl Node {
    /// `:global.whereis_name(name)`: the process registered in `global` as `name` (an
    /// atom such as `atom("Elixir.MyApp.Leader")` for Elixir's `{:global,
    /// MyApp.Leader}`), as this node knows it from the BEAM nodes of its cluster; `None`
    /// for a name nobody registered, or on a hidden node (outside `global`).
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node) -> Result<(), cnode::CallError> {
    /// use cnode::term::atom;
    /// // GenServer.call({:global, MyApp.Leader}, :whoami)
    /// if let Some(leader) = node.whereis_global(&atom("Elixir.MyApp.Leader")) {
    ///     let me = node.call(leader, atom("whoami"), None).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn whereis_global(&self, name: &Term) -> Option<Pid> {
        let names = self.0.extensions.get::<Names>();
        let found = names
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied();
        found
    }

    /// `:global.registered_names()`: every name registered in `global`, as this node
    /// knows them.
    pub fn global_names(&self) -> Vec<Term> {
        let names = self.0.extensions.get::<Names>();
        let all = names.0.read().unwrap_or_else(|e| e.into_inner());
        all.keys().cloned().collect()
    }
}

impl Global {
    /// `ins_name/6`: `name` is `pid`'s now, watched so that it goes with the process.
    pub(super) fn insert_name(&mut self, p: &mut Process, name: Term, pid: Pid) {
        self.delete_name(p, &name);
        let monitor = p.monitor(pid);
        self.name_monitors.insert(monitor.clone(), name.clone());
        let names = p.node().0.extensions.get::<Names>();
        names
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), pid);
        self.names.insert(name, monitor);
    }

    /// `delete_global_name2/2`.
    pub(super) fn delete_name(&mut self, p: &mut Process, name: &Term) {
        if let Some(gone) = self.names.remove(name) {
            p.demonitor(&gone, true);
            self.name_monitors.remove(&gone);
            let names = p.node().0.extensions.get::<Names>();
            names
                .0
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
        }
    }

    /// A monitor of a registered process fired: its names go. False if the monitor
    /// was no name's.
    pub(super) fn name_down(&mut self, p: &mut Process, monitor: &Reference) -> bool {
        let Some(name) = self.name_monitors.remove(monitor) else {
            return false;
        };
        if self.names.get(&name) == Some(monitor) {
            self.names.remove(&name);
            let names = p.node().0.extensions.get::<Names>();
            names
                .0
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
        }
        true
    }

    /// `exchange_names/4` on a peer's names: the ones we do not have are ours to insert
    /// once the sync is resolved; a clash is for the BEAM nodes to resolve.
    pub(super) fn exchange_ops(&self, names: &Term) -> Vec<Term> {
        names
            .as_list()
            .unwrap_or(&[])
            .iter()
            .filter(|entry| {
                entry
                    .as_tuple_n(3)
                    .is_some_and(|e| e[1].as_pid().is_some() && !self.names.contains_key(&e[0]))
            })
            .map(|entry| crate::term::tuple(vec![atom("insert"), entry.clone()]))
            .collect()
    }

    /// `do_ops/5`: `{insert, {Name, Pid, Method}}` and `{delete, Name}`.
    pub(super) fn do_ops(&mut self, p: &mut Process, ops: &[Term]) {
        for op in ops {
            match op.as_tuple_n(2) {
                Some([tag, entry]) if tag.is_atom("insert") => {
                    if let Some([name, Term::Pid(pid), _method]) = entry.as_tuple_n(3) {
                        self.insert_name(p, name.clone(), *pid);
                    }
                }
                Some([tag, name]) if tag.is_atom("delete") => self.delete_name(p, name),
                _ => {}
            }
        }
    }
}

/// `global:whereis_name/1`, `global:registered_names/0` and `global:send/2`, for BEAM
/// nodes and scripts that ask this node (`:rpc.call(node, :global, :whereis_name,
/// [name])`).
pub(crate) fn register_functions(node: &Node) {
    node.register_function("global", "whereis_name", 1, |p, args| async move {
        Ok(p.node()
            .whereis_global(&args[0])
            .map_or_else(|| atom("undefined"), Term::Pid))
    });
    node.register_function("global", "registered_names", 0, |p, _| async move {
        Ok(crate::term::list(p.node().global_names()))
    });
    // `{badarg, {Name, Msg}}` for a name nobody registered, as `global:send/2` exits.
    node.register_function("global", "send", 2, |p, args| async move {
        match p.node().whereis_global(&args[0]) {
            Some(pid) => {
                p.send(pid, args[1].clone());
                Ok(Term::Pid(pid))
            }
            None => Err(crate::process::Exception::Exit(crate::term::tuple(vec![
                atom("badarg"),
                crate::term::tuple(vec![args[0].clone(), args[1].clone()]),
            ]))),
        }
    });
}
