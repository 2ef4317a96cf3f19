//! The names `global` keeps: every node of a `global` cluster holds a copy of every name
//! registered in it (`global_names`), so `:global.whereis_name/1` is answered locally.
//! The copy changes as a BEAM node's does: the names a peer has when we sync with it
//! (`exchange`, where the lesser node of the pair resolves a clash), the operations of
//! a sync (`resolved`, `new_nodes`), and each `register` / `unregister` call (from any
//! node's registrar, ours included: [`registrar`](super::registrar)). A name goes when
//! its process ends or its node goes down (our monitor of it fires).

use super::Global;
use crate::node::Node;
use crate::process::Process;
use crate::term::{atom, tuple, Match, Pid, Reference, Term};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// The names, where `whereis` reads them; written by `global_name_server` only.
#[derive(Default)]
pub(crate) struct Names(RwLock<HashMap<Term, Pid>>);

impl Names {
    fn of(node: &Node) -> Arc<Names> {
        node.0.extensions.get::<Names>()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Term, Pid>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// `name` is `pid`'s now, or nobody's.
    fn set(node: &Node, name: Term, pid: Option<Pid>) {
        let names = Names::of(node);
        let mut names = names.0.write().unwrap_or_else(|e| e.into_inner());
        match pid {
            Some(pid) => names.insert(name, pid),
            None => names.remove(&name),
        };
    }
}

impl Node {
    /// `:global.sync()`: waits until `global` on this node is in sync with every
    /// visible node connected (their names known here, ours there): what to await
    /// after [`connect`](Node::connect) before [`whereis_global`](Node::whereis_global)
    /// or a call to [`Dest::global`](crate::Dest::global), as on a BEAM node, where
    /// the names of a node just connected arrive a moment later too. At once on a
    /// hidden node, which syncs with no peer.
    pub async fn global_sync(&self) {
        if self.0.config.hidden {
            return;
        }
        let _ = self
            .run_process(|mut p| async move { p.call(super::NAME, atom(super::SYNC), None).await })
            .await;
    }

    /// `:global.whereis_name(name)`: the process registered in `global` as `name` (an
    /// atom such as `atom("Elixir.MyApp.Leader")` for Elixir's `{:global,
    /// MyApp.Leader}`), as this node knows it from the BEAM nodes of its cluster; `None`
    /// for a name nobody registered (on a hidden node: the names registered on it).
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
        let found = Names::of(self).read().get(name).copied();
        found.filter(|pid| self.may_hold_name(pid))
    }

    /// Whether `pid` holds a `global` name (OTP refuses it a second one).
    pub(crate) fn has_global_name(&self, pid: &Pid) -> bool {
        Names::of(self).read().values().any(|p| p == pid) && self.may_hold_name(pid)
    }

    /// `where/1`: a process of this node that has ended holds no name, even before
    /// its monitor has fired.
    fn may_hold_name(&self, pid: &Pid) -> bool {
        !self.is_local(&pid.node) || self.is_alive(pid)
    }

    /// `:global.registered_names()`: every name registered in `global`, as this node
    /// knows them.
    pub fn global_names(&self) -> Vec<Term> {
        Names::of(self).read().keys().cloned().collect()
    }
}

impl Global {
    /// `ins_name/6`: `name` is `pid`'s now, with its resolve method, watched so that it
    /// goes with the process.
    pub(super) fn insert_name(&mut self, p: &mut Process, name: Term, pid: Pid, method: Term) {
        self.delete_name(p, &name);
        let monitor = p.monitor(pid);
        self.name_monitors.insert(monitor.clone(), name.clone());
        Names::set(p.node(), name.clone(), Some(pid));
        self.names.insert(
            name,
            Registered {
                pid,
                method,
                monitor,
            },
        );
    }

    /// `delete_global_name2/2`.
    pub(super) fn delete_name(&mut self, p: &mut Process, name: &Term) {
        if let Some(gone) = self.names.remove(name) {
            p.demonitor(&gone.monitor, true);
            self.name_monitors.remove(&gone.monitor);
            Names::set(p.node(), name.clone(), None);
        }
    }

    /// A monitor of a registered process fired: its name goes. False if the monitor
    /// was no name's.
    pub(super) fn name_down(&mut self, p: &mut Process, monitor: &Reference) -> bool {
        let Some(name) = self.name_monitors.get(monitor).cloned() else {
            return false;
        };
        self.delete_name(p, &name);
        true
    }

    /// `exchange_names/4` on the names of the peer `peer`: `(Ops, Resolved)`, the
    /// operations for us (a name we do not have is ours to insert) and those we resolved
    /// for the peer, both done once the sync is resolved. A name both have with another
    /// process is resolved by the lesser node, with the method of the name as we have
    /// it ([`resolve`]); a method that is not one of `global`'s own is BEAM code, which
    /// we cannot run: that is the BEAM's `badrpc` case, the peer's process is ours too.
    pub(super) fn exchange_names(
        &mut self,
        p: &mut Process,
        peer: &str,
        names: &Term,
    ) -> (Vec<Term>, Vec<Term>) {
        let insert = |name: &Term, pid: &Pid, method: &Term| {
            tuple(vec![
                atom("insert"),
                tuple(vec![name.clone(), Term::Pid(*pid), method.clone()]),
            ])
        };
        let (mut ops, mut resolved) = (Vec::new(), Vec::new());
        for entry in names.as_list().unwrap_or(&[]) {
            let Some([name, Term::Pid(pid), method]) = entry.as_tuple_n(3) else {
                continue;
            };
            let Some(ours) = self.names.get(name) else {
                ops.push(insert(name, pid, method));
                continue;
            };
            if ours.pid == *pid || p.node().name() >= peer {
                // The same, or the peer resolves it.
                continue;
            }
            let (pid2, method2) = (ours.pid, ours.method.clone());
            match resolve(p, &method2, name, *pid, pid2) {
                Some(Term::Pid(winner)) if winner == *pid => ops.push(insert(name, pid, method)),
                Some(Term::Pid(winner)) if winner == pid2 => {
                    resolved.push(insert(name, &pid2, &method2))
                }
                None => ops.push(insert(name, pid, method)),
                Some(_) => {
                    let delete = tuple(vec![atom("delete"), name.clone()]);
                    ops.push(delete.clone());
                    resolved.push(delete);
                }
            }
        }
        (ops, resolved)
    }

    /// `do_ops/5`: `{insert, {Name, Pid, Method}}` and `{delete, Name}`.
    pub(super) fn do_ops(&mut self, p: &mut Process, ops: &[Term]) {
        for op in ops {
            match op.as_tuple_n(2) {
                Some([tag, entry]) if tag.is_atom("insert") => {
                    if let Some([name, Term::Pid(pid), method]) = entry.as_tuple_n(3) {
                        self.insert_name(p, name.clone(), *pid, method.clone());
                    }
                }
                Some([tag, name]) if tag.is_atom("delete") => self.delete_name(p, name),
                _ => {}
            }
        }
    }
}

/// `global:whereis_name/1`, `registered_names/0`, `send/2`, `register_name/2,3`,
/// `re_register_name/2,3` and `unregister_name/1`, for BEAM nodes and scripts that ask this node (`:rpc.call(node, :global, :whereis_name,
/// [name])`).
pub(crate) fn register_functions(node: &Node) {
    node.register_function("global", "whereis_name", 1, |p, args| async move {
        Ok(p.node()
            .whereis_global(&args[0])
            .map_or_else(|| atom("undefined"), Term::Pid))
    });
    node.register_function("global", "sync", 0, |p, _| async move {
        p.node().global_sync().await;
        Ok(atom("ok"))
    });
    node.register_function("global", "registered_names", 0, |p, _| async move {
        Ok(crate::term::list(p.node().global_names()))
    });
    // `register_name/2,3` and `re_register_name/2,3`; a method given is kept with the
    // name, for whichever node resolves a clash over it.
    for (function, again) in [("register_name", false), ("re_register_name", true)] {
        for arity in [2, 3] {
            node.register_function("global", function, arity, move |p, args| async move {
                // `when is_pid(Pid)`: anything else is no clause of global.erl's, its
                // frame with the arguments.
                if !matches!(args.get(1), Some(Term::Pid(_))) {
                    return Err(crate::process::Exception::Error {
                        reason: atom("function_clause"),
                        stacktrace: vec![crate::term::tuple(vec![
                            atom("global"),
                            atom(function),
                            crate::term::list(args),
                            crate::term::nil(),
                        ])],
                    });
                }
                let mut args = args.into_iter();
                let (Some(name), Some(Term::Pid(pid))) = (args.next(), args.next()) else {
                    return Err(crate::process::Exception::bare_badarg());
                };
                let method = args
                    .next()
                    .unwrap_or_else(super::registrar::random_exit_name);
                let node = p.node();
                let yes = node.register_global_with(name, pid, method, again).await;
                Ok(atom(if yes { "yes" } else { "no" }))
            });
        }
    }
    node.register_function("global", "unregister_name", 1, |p, args| async move {
        p.node().unregister_global(&args[0]).await;
        Ok(atom("ok"))
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

/// A name as `global` keeps it: its process, its resolve method, and our monitor of
/// the process.
pub(super) struct Registered {
    pid: Pid,
    method: Term,
    monitor: Reference,
}

impl Global {
    /// `get_names/0`: `[{Name, Pid, Method}]`, what we tell a peer in the sync's
    /// `exchange`.
    pub(super) fn names_list(&self) -> Term {
        let names = self.names.iter().map(|(name, r)| {
            crate::term::tuple(vec![name.clone(), Term::Pid(r.pid), r.method.clone()])
        });
        crate::term::list(names.collect())
    }
}

/// `resolve_it/4` with one of `global`'s own methods, by name: `random_exit_name` kills
/// the process of the greater node and keeps the other, `random_notify_name` tells it
/// `{global_name_conflict, Name}` instead, `notify_all_name` tells both `{global_name_conflict,
/// Name, OtherPid}` and keeps none. `None` for another method (BEAM code).
pub(super) fn resolve(p: &Process, method: &Term, name: &Term, a: Pid, b: Pid) -> Option<Term> {
    let Term::ExternalFun(f) = method else {
        return None;
    };
    if f.module.name() != "global" || f.arity != 3 {
        return None;
    }
    // `minmax/2`: by the pids' nodes.
    let (min, max) = if a.node.name() < b.node.name() {
        (a, b)
    } else {
        (b, a)
    };
    match f.function.name() {
        "random_exit_name" => {
            tracing::info!(
                "global: Name conflict terminating {}",
                tuple(vec![name.clone(), Term::Pid(max)])
            );
            p.exit(&max, atom("kill"));
            Some(Term::Pid(min))
        }
        "random_notify_name" => {
            p.send(max, tuple(vec![atom("global_name_conflict"), name.clone()]));
            Some(Term::Pid(min))
        }
        "notify_all_name" => {
            let conflict = |other: Pid| {
                tuple(vec![
                    atom("global_name_conflict"),
                    name.clone(),
                    Term::Pid(other),
                ])
            };
            p.send(a, conflict(b));
            p.send(b, conflict(a));
            Some(atom("none"))
        }
        _ => None,
    }
}
