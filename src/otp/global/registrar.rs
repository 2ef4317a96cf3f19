//! Registering names in `global` from this node, as `global:register_name/2` and
//! `unregister_name/1` do on a BEAM node (`trans_all_known/1`): take the cluster's
//! `global` lock on every node we know (first on the greatest, "the boss", then on all;
//! a refusal releases what was taken, and the registrar tries again after a random
//! sleep, up to 8 s, as `random_sleep/1`), ask each node's `global_name_server` to
//! `register` (or `unregister`) the name, and release the lock, the boss last. The
//! resolve method of a name registered here is `global:random_exit_name/3`, which a BEAM
//! node resolving a clash with it asks this node to run (`global:resolve_it/4`). The
//! same calls give Rust code `global:set_lock/3`, `del_lock/2` and `trans/4`.

use crate::node::Node;
use crate::process::{Exception, Process};
use crate::term::{atom, list, tuple, ExternalFun, Match, Pid, Term};
use std::time::Duration;

/// `?GLOBAL_RID`: the resource of the cluster-wide lock.
const GLOBAL_RID: &str = "global";

impl Node {
    /// `:global.register_name(name, pid)`: registers `pid` (of any node) as `name` on
    /// every node of the `global` cluster, so `GenServer.call({:global, name}, ...)`
    /// reaches it from any of them; the name goes when the process ends. `true` for
    /// `:yes`; `false` for `:no`: the name is taken, the process has a `global` name
    /// already (as OTP refuses by default). On a hidden node the name is the node's
    /// own: no peer syncs `global` with a hidden node, as with a BEAM one.
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node, server: cnode::term::Pid) {
    /// use cnode::term::atom;
    /// // GenServer.start_link(Leader, [], name: {:global, MyApp.Leader})
    /// let registered = node.register_global(atom("Elixir.MyApp.Leader"), server).await;
    /// # }
    /// ```
    pub async fn register_global(&self, name: Term, pid: Pid) -> bool {
        self.register_global_with(name, pid, random_exit_name(), false)
            .await
    }

    /// `:global.re_register_name(name, pid)`: registers `pid` as `name` on every node of
    /// the cluster whether or not the name is taken (its holder keeps running, without
    /// the name).
    pub async fn re_register_global(&self, name: Term, pid: Pid) -> bool {
        self.register_global_with(name, pid, random_exit_name(), true)
            .await
    }

    /// `register_name/3` (`again`: `re_register_name/3`) with the resolve `method`.
    pub(crate) async fn register_global_with(
        &self,
        name: Term,
        pid: Pid,
        method: Term,
        again: bool,
    ) -> bool {
        let work = Work::Register {
            name,
            pid,
            method,
            again,
        };
        let done =
            self.run_process(move |mut p| async move { trans_all_known(&mut p, work).await });
        done.await.unwrap_or(false)
    }

    /// `:global.unregister_name(name)`: removes `name` on every node of the cluster.
    pub async fn unregister_global(&self, name: &Term) {
        if self.whereis_global(name).is_none() {
            return;
        }
        let work = Work::Unregister(name.clone());
        let _ = self
            .run_process(move |mut p| async move { trans_all_known(&mut p, work).await })
            .await;
    }
}

impl Process {
    /// `:global.set_lock({resource, requester}, nodes, retries)`: takes the lock
    /// `resource` for `requester` on each of `nodes` (`None`: this node and every visible
    /// node connected, `[node() | Node.list()]`), held by this process. A lock another
    /// requester holds is tried again after a random sleep (up to 1/4 s the first time,
    /// doubling up to 8 s), `retries` times (`None`: until it is taken); `false` when
    /// the tries ran out. Processes that ask for the same `{resource, requester}` share
    /// the lock, and each must delete it; a holder that ends (or whose node goes away)
    /// releases its locks. Nodes that cannot be reached do not count, as in OTP.
    ///
    /// ```no_run
    /// # async fn demo(mut p: cnode::Process) {
    /// use cnode::term::{atom, Term};
    /// // :global.set_lock({:ledger, self()}, [node() | Node.list()], 3)
    /// let (resource, me) = (atom("ledger"), Term::Pid(p.pid()));
    /// if p.global_set_lock(&resource, &me, None, Some(3)).await {
    ///     // ... the work no other node's process may do meanwhile ...
    ///     p.global_del_lock(&resource, &me, None).await;
    /// }
    /// # }
    /// ```
    pub async fn global_set_lock(
        &mut self,
        resource: &Term,
        requester: &Term,
        nodes: Option<&[&str]>,
        retries: Option<u32>,
    ) -> bool {
        let id = tuple(vec![resource.clone(), requester.clone()]);
        let nodes = lock_nodes(self, nodes);
        set_lock(self, &id, &nodes, retries).await
    }

    /// `:global.del_lock({resource, requester}, nodes)`: this process's hold on the lock,
    /// released on each of `nodes` (`None`: this node and every visible node
    /// connected).
    pub async fn global_del_lock(
        &mut self,
        resource: &Term,
        requester: &Term,
        nodes: Option<&[&str]>,
    ) {
        let id = tuple(vec![resource.clone(), requester.clone()]);
        let nodes = lock_nodes(self, nodes);
        del_lock(self, &id, &nodes).await;
    }
}

impl Node {
    /// `:global.trans({resource, requester}, fun, nodes, retries)` from code that is no
    /// process: takes the lock as [`Process::global_set_lock`] does (on this node and
    /// every visible node connected), runs `work` while a process of this node holds
    /// it, and releases it: `Ok(Some(value))`, or `Ok(None)` (`:aborted`) when the tries
    /// ran out (`retries`; `None` tries until the lock is taken). `Err` when the process
    /// ended before the work did (the work panicked, the node stopped), with its exit
    /// reason, as `:global.trans/4` raises what its fun raised; the lock goes with the
    /// process. Dropped before it ends (a `tokio::time::timeout`, a `select!`), its
    /// process ends, and the lock goes with it on every node.
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node) {
    /// use cnode::term::atom;
    /// // :global.trans({:nightly_report, node()}, fn -> ... end)
    /// let done = node
    ///     .global_trans(atom("nightly_report"), atom(node.name()), None, async {
    ///         // ... run once in the cluster at a time ...
    ///         "sent"
    ///     })
    ///     .await;
    /// assert!(matches!(done, Ok(Some("sent")) | Ok(None)));
    /// # }
    /// ```
    pub async fn global_trans<T: Send + 'static>(
        &self,
        resource: Term,
        requester: Term,
        retries: Option<u32>,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<Option<T>, Exception> {
        let done = self.run_process(move |mut p| async move {
            if !p
                .global_set_lock(&resource, &requester, None, retries)
                .await
            {
                return Ok(None);
            }
            // As global:trans/4's `after`: the lock goes before a panic in the work
            // is the caller's error.
            let outcome = crate::node::caught(p.pid(), async { Ok(work.await) }).await;
            p.global_del_lock(&resource, &requester, None).await;
            outcome.map(Some)
        });
        done.await?
    }
}

/// The nodes a lock is asked of: those given, or `[node() | nodes()]`.
fn lock_nodes(p: &Process, nodes: Option<&[&str]>) -> Vec<String> {
    match nodes {
        Some(nodes) => nodes.iter().map(|n| (*n).to_owned()).collect(),
        None => {
            let mut all = vec![p.node().name().to_owned()];
            all.extend(p.node().nodes(true));
            all
        }
    }
}

/// `set_lock/4`: `{set_lock, Id}` on `nodes`, tried again after a random sleep while
/// `retries` (`None`: for ever) last.
async fn set_lock(p: &mut Process, id: &Term, nodes: &[String], retries: Option<u32>) -> bool {
    // Counted from 1, as `set_lock/3` counts: the first sleep is up to 1/4 s.
    let mut times = 1u32;
    loop {
        if nodes.is_empty() || set_lock_on_nodes(p, id, nodes).await {
            return true;
        }
        if retries.is_some_and(|r| times > r) {
            return false;
        }
        random_sleep(times).await;
        times += 1;
    }
}

/// `global:set_lock/1,2,3` and `del_lock/1,2` for a BEAM node that asks this one
/// (`:rpc.call(node, :global, :set_lock, [id])`), held by the process that runs them,
/// as on a BEAM node (over rpc, the lock goes when the call's process ends).
pub(crate) fn register_lock_functions(node: &Node) {
    for arity in 1..=3 {
        node.register_function("global", "set_lock", arity, |mut p, args| async move {
            let lock = lock_args(&args)?;
            let nodes = lock.node_names();
            let taken = p
                .global_set_lock(
                    &lock.resource,
                    &lock.requester,
                    nodes.as_deref(),
                    lock.retries,
                )
                .await;
            Ok(crate::term::boolean(taken))
        });
    }
    // `global:trans/2,3,4`: the lock, then `Fun()` (an export fun: a closure is BEAM
    // code this node does not have, and fails `undef` as `erlang:apply/2` here fails
    // it), then the lock released whatever the fun did; `aborted` when the lock was
    // not taken.
    for arity in 2..=4 {
        node.register_function("global", "trans", arity, |mut p, mut args| async move {
            let fun = args.remove(1);
            let lock = lock_args(&args)?;
            let nodes = lock.node_names();
            let (resource, requester) = (&lock.resource, &lock.requester);
            if !p
                .global_set_lock(resource, requester, nodes.as_deref(), lock.retries)
                .await
            {
                return Ok(atom("aborted"));
            }
            let work = p.node().run_process(move |w| {
                let node = w.node().clone();
                async move {
                    node.apply(w, "erlang", "apply", vec![fun, crate::term::nil()])
                        .await
                }
            });
            let outcome = work.await.and_then(|r| r);
            p.global_del_lock(resource, requester, nodes.as_deref())
                .await;
            outcome
        });
    }
    for arity in 1..=2 {
        node.register_function("global", "del_lock", arity, |mut p, args| async move {
            let lock = lock_args(&args)?;
            let nodes = lock.node_names();
            p.global_del_lock(&lock.resource, &lock.requester, nodes.as_deref())
                .await;
            Ok(atom("true"))
        });
    }
}

/// `Id`, `Nodes` (when given) and `Retries` of `set_lock/1,2,3` or `del_lock/1,2`: a
/// `function_clause` for an id that is no pair or retries that are neither a count nor
/// `infinity`, a `badarg` for nodes that are no list of atoms.
fn lock_args(args: &[Term]) -> Result<LockArgs, Exception> {
    let Some([resource, requester]) = args[0].as_tuple_n(2) else {
        return Err(Exception::function_clause());
    };
    let nodes = match args.get(1) {
        Some(nodes) => Some(
            nodes
                .as_list()
                .and_then(|l| {
                    l.iter()
                        .map(|n| n.as_atom().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(Exception::bare_badarg)?,
        ),
        None => None,
    };
    let retries = match args.get(2) {
        Some(r) if r.is_atom("infinity") => None,
        Some(r) => Some(
            r.as_int()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(Exception::function_clause)?,
        ),
        None => None,
    };
    Ok(LockArgs {
        resource: resource.clone(),
        requester: requester.clone(),
        nodes,
        retries,
    })
}

/// What `set_lock` or `del_lock` over rpc was given.
struct LockArgs {
    resource: Term,
    requester: Term,
    /// `None` where the call gave none: `[node() | nodes()]`.
    nodes: Option<Vec<String>>,
    retries: Option<u32>,
}

impl LockArgs {
    /// The nodes as `set_lock`/`del_lock` take them.
    fn node_names(&self) -> Option<Vec<&str>> {
        self.nodes
            .as_ref()
            .map(|n| n.iter().map(String::as_str).collect())
    }
}

/// What the registrar does with the lock held.
enum Work {
    /// `register_name/3`, or `re_register_name/3` when `again` (the name taken or not).
    Register {
        name: Term,
        pid: Pid,
        method: Term,
        again: bool,
    },
    Unregister(Term),
}

/// `fun global:random_exit_name/3`, the resolve method by default.
pub(crate) fn random_exit_name() -> Term {
    Term::ExternalFun(Box::new(ExternalFun::from((
        "global",
        "random_exit_name",
        3,
    ))))
}

/// `trans_all_known/1`: `work` with the `global` lock held on every node we know;
/// whether it was done (`yes`).
async fn trans_all_known(p: &mut Process, work: Work) -> bool {
    let id = tuple(vec![atom(GLOBAL_RID), Term::Pid(p.pid())]);
    let nodes = set_lock_known(p, &id).await;
    let done = match work {
        Work::Register {
            name,
            pid,
            method,
            again,
        } => {
            let node = p.node().clone();
            // `where(Name) =:= undefined andalso check_dupname(Name, Pid)`; none for
            // `re_register_name`.
            let free = again || node.whereis_global(&name).is_none() && !node.has_global_name(&pid);
            if free {
                let request = tuple(vec![atom("register"), name, Term::Pid(pid), method]);
                multi_call(p, &nodes, &request).await;
            }
            free
        }
        Work::Unregister(name) => {
            multi_call(p, &nodes, &tuple(vec![atom("unregister"), name])).await;
            true
        }
    };
    // `delete_global_lock/2`: the boss last.
    let boss = nodes.iter().max().cloned().unwrap_or_default();
    let others: Vec<String> = nodes.into_iter().filter(|n| *n != boss).collect();
    del_lock(p, &id, &others).await;
    del_lock(p, &id, &[boss]).await;
    done
}

/// `set_lock_known/2`: the lock on the boss, then on every node; the nodes it is held
/// on.
async fn set_lock_known(p: &mut Process, id: &Term) -> Vec<String> {
    let mut times = 0u32;
    loop {
        let known = known_nodes(p).await;
        let mut nodes = vec![p.node().name().to_owned()];
        nodes.extend(known.iter().cloned());
        let boss = nodes.iter().max().cloned().unwrap_or_default();
        if set_lock_on_nodes(p, id, std::slice::from_ref(&boss)).await {
            if set_lock_on_nodes(p, id, &nodes).await && known_now_within(p, &known).await {
                return nodes;
            }
            del_lock(p, id, std::slice::from_ref(&boss)).await;
        }
        random_sleep(times).await;
        times += 1;
    }
}

/// `lock_on_known_nodes/3`'s check: no node became known meanwhile.
async fn known_now_within(p: &mut Process, known: &[String]) -> bool {
    known_nodes(p).await.iter().all(|n| known.contains(n))
}

/// The nodes our `global_name_server` knows.
async fn known_nodes(p: &mut Process) -> Vec<String> {
    let me = p.node().name().to_owned();
    let reply = p
        .call((super::NAME, me.as_str()), atom(super::KNOWN), None)
        .await;
    reply
        .ok()
        .and_then(|r| {
            r.as_list().map(|l| {
                l.iter()
                    .filter_map(Match::as_atom)
                    .map(str::to_owned)
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// `set_lock_on_nodes/2`: `{set_lock, Id}` on each of `nodes`; on a refusal the nodes
/// that took it release it. Nodes that cannot be reached do not count.
async fn set_lock_on_nodes(p: &mut Process, id: &Term, nodes: &[String]) -> bool {
    let request = tuple(vec![atom("set_lock"), id.clone()]);
    let replies = multi_call(p, nodes, &request).await;
    if replies.iter().all(|(_, r)| r.is_atom("true")) {
        return true;
    }
    if nodes.len() > 1 {
        let took: Vec<String> = replies
            .into_iter()
            .filter(|(_, r)| r.is_atom("true"))
            .map(|(n, _)| n)
            .collect();
        del_lock(p, id, &took).await;
    }
    false
}

/// `del_lock/2`.
async fn del_lock(p: &mut Process, id: &Term, nodes: &[String]) {
    let request = tuple(vec![atom("del_lock"), id.clone()]);
    multi_call(p, nodes, &request).await;
}

/// `gen_server:multi_call/3` to `global_name_server` on `nodes`: the replies of those
/// that answered.
async fn multi_call(p: &mut Process, nodes: &[String], request: &Term) -> Vec<(String, Term)> {
    let mut replies = Vec::with_capacity(nodes.len());
    for n in nodes {
        if let Ok(reply) = p.call((super::NAME, n.as_str()), request, None).await {
            replies.push((n.clone(), reply));
        }
    }
    replies
}

/// `random_sleep/1`: up to 2^times / 8 s (1/4 s for the first try of `set_lock/3`),
/// doubling up to 8 s.
async fn random_sleep(times: u32) {
    let max_ms: u64 = if times > 5 {
        8000
    } else {
        (1u64 << times) * 1000 / 8
    };
    let ms = rand::random_range(1..=max_ms.max(1));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// `global:resolve_it/4`, which a BEAM node resolving a name clash asks the node of the
/// process that held the name to run: the standard methods (`random_exit_name`,
/// `random_notify_name`, `notify_all_name`); another fun is BEAM code, and fails as
/// `catch Method(...)` would, `{'EXIT', {undef, ...}}` (the name is then dropped).
pub(crate) fn register_resolve_it(node: &Node) {
    node.register_function("global", "resolve_it", 4, |p, args| async move {
        let [method, name, pid1, pid2] =
            <[Term; 4]>::try_from(args).map_err(|_| Exception::bare_badarg())?;
        let (Some(a), Some(b)) = (pid1.as_pid().copied(), pid2.as_pid().copied()) else {
            return Err(Exception::bare_badarg());
        };
        Ok(
            super::names::resolve(&p, &method, &name, a, b).unwrap_or_else(|| {
                // `catch Method(...)` of BEAM code this node does not have.
                let call = tuple(vec![
                    method,
                    list(vec![name, pid1, pid2]),
                    crate::term::nil(),
                ]);
                tuple(vec![
                    atom("EXIT"),
                    tuple(vec![atom("undef"), list(vec![call])]),
                ])
            }),
        )
    });
}
