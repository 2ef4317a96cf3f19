//! Registering names in `global` from this node, as `global:register_name/2` and
//! `unregister_name/1` do on a BEAM node (`trans_all_known/1`): take the cluster's
//! `global` lock on every node we know (first on the greatest, "the boss", then on all;
//! a refusal releases what was taken, and the registrar tries again after a random
//! sleep, up to 8 s, as `random_sleep/1`), ask each node's `global_name_server` to
//! `register` (or `unregister`) the name, and release the lock, the boss last. The
//! resolve method of a name registered here is `global:random_exit_name/3`, which a BEAM
//! node resolving a clash with it asks this node to run (`global:resolve_it/4`).

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
    /// already (as OTP refuses by default), or the node is hidden (outside `global`).
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node, server: cnode::term::Pid) {
    /// use cnode::term::atom;
    /// // GenServer.start_link(Leader, [], name: {:global, MyApp.Leader})
    /// let registered = node.register_global(atom("Elixir.MyApp.Leader"), server).await;
    /// # }
    /// ```
    pub async fn register_global(&self, name: Term, pid: Pid) -> bool {
        if self.0.config.hidden {
            return false;
        }
        let work = Work::Register(name, pid);
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

/// What the registrar does with the lock held.
enum Work {
    Register(Term, Pid),
    Unregister(Term),
}

/// `trans_all_known/1`: `work` with the `global` lock held on every node we know;
/// whether it was done (`yes`).
async fn trans_all_known(p: &mut Process, work: Work) -> bool {
    let id = tuple(vec![atom(GLOBAL_RID), Term::Pid(p.pid())]);
    let nodes = set_lock_known(p, &id).await;
    let done = match work {
        Work::Register(name, pid) => {
            let node = p.node().clone();
            // `where(Name) =:= undefined andalso check_dupname(Name, Pid)`.
            let free = node.whereis_global(&name).is_none() && !node.has_global_name(&pid);
            if free {
                let method = ExternalFun::from(("global", "random_exit_name", 3));
                let request = tuple(vec![
                    atom("register"),
                    name,
                    Term::Pid(pid),
                    Term::ExternalFun(Box::new(method)),
                ]);
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

/// `random_sleep/1`: up to 1/4 s the first time, doubling up to 8 s.
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
