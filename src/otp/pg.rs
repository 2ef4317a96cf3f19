//! `pg`: process groups, as OTP's `pg` keeps them (OTP 23+), so Rust processes take part
//! in the groups of BEAM nodes (`:pg.join/3` there, [`Node::pg_join`] here) and see
//! theirs (`:pg.get_members/2`, [`Node::pg_members`]).
//!
//! A scope is a process registered under the scope's name on every node that runs it.
//! The scopes of two nodes find each other (`{discover, Scope}` when a connection comes
//! up, answered by a `sync` of the groups with their local members and a `discover`
//! back), then tell each other every `join` and `leave` of their own processes; a
//! scope that goes away (its node lost) takes its members with it. Only local processes
//! join, and a member that ends leaves its groups. This is the protocol of OTP 23 to 28
//! (`pg` version 0), which OTP 29's `pg` speaks too with a peer that speaks it: it
//! answers a version-1 `discover` in that form and gets updates back as `join` and
//! `leave`. Every node keeps the whole view; reading it takes no message.

use super::gen_server::{parse_call, parse_cast, CallError, Caller, StartError};
use super::sys;
use crate::node::Node;
use crate::process::{Exception, Process};
use crate::term::{atom, list, tuple, Atom, Match, Pid, Reference, Short, Term};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Internal message: a connection to a visible node came up.
const NODE_UP: &str = "$cnode_nodeup";

/// Each scope's view of its groups, where readers find it: `Group => (all members,
/// local members)`.
#[derive(Default)]
pub(crate) struct Scopes(RwLock<HashMap<Atom, Arc<RwLock<View>>>>);

type View = HashMap<Term, (Vec<Pid>, Vec<Pid>)>;

impl Node {
    /// `:pg.start_link(scope)`: starts the scope registered as `scope` (`"pg"` is the
    /// default scope of `:pg.join/2`; Elixir libraries name their own; none runs until
    /// started, as on a BEAM node, whose kernel starts `pg` only with `start_pg`), which finds the
    /// same scope on the nodes this node is connected to and keeps the groups in step
    /// with theirs. Started again if it ends (its local members are then lost, as on the
    /// BEAM). Returns its pid; `Err` when the name is taken, `{:already_started, pid}`
    /// as `:pg.start_link/1` answers.
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node) -> Result<(), Box<dyn std::error::Error>> {
    /// use cnode::term::atom;
    /// node.start_pg("pg")?;
    /// let worker = node.spawn(|mut p| async move { loop { p.receive().await; } });
    /// node.pg_join("pg", atom("workers"), &[worker]).await?;
    /// // On a BEAM node: :pg.get_members(:workers) includes the Rust worker.
    /// let everyone = node.pg_members("pg", &atom("workers"));
    /// # Ok(()) }
    /// ```
    pub fn start_pg(&self, scope: &str) -> Result<Pid, StartError> {
        let (name, view) = self.scope_view(scope);
        super::keep_registered(self, scope, move |p, parent| {
            serve(p, parent, name, view.clone())
        })
        .map_err(|_| StartError::taken(self.whereis(scope)))
    }

    /// The view the scope `scope` keeps, where readers find it.
    fn scope_view(&self, scope: &str) -> (Atom, Arc<RwLock<View>>) {
        let name = Atom::from(scope);
        let scopes = self.0.extensions.get::<Scopes>();
        let mut scopes = scopes.0.write().unwrap_or_else(|e| e.into_inner());
        (name, scopes.entry(name).or_default().clone())
    }

    /// `:pg.join(scope, group, pids)`: the processes (of this node) join `group`, here
    /// and on every node of the scope. A process may join a group more than once.
    pub async fn pg_join(&self, scope: &str, group: Term, pids: &[Pid]) -> Result<(), PgError> {
        let request = tuple(vec![atom("join_local"), group, self.local_pids(pids)?]);
        self.call(scope, request, None).await?;
        Ok(())
    }

    /// `:pg.leave(scope, group, pids)`: the processes leave `group` (one join each);
    /// `false` (`:not_joined`) when none of them had joined it.
    pub async fn pg_leave(&self, scope: &str, group: Term, pids: &[Pid]) -> Result<bool, PgError> {
        let request = tuple(vec![atom("leave_local"), group, self.local_pids(pids)?]);
        Ok(self.call(scope, request, None).await?.is_atom("ok"))
    }

    /// `pids` as a list, if all are of this node (`ensure_local/1`).
    fn local_pids(&self, pids: &[Pid]) -> Result<Term, PgError> {
        match pids.iter().find(|p| !self.is_local(&p.node)) {
            Some(pid) => Err(PgError::NotLocal(*pid)),
            None => Ok(list(pids.iter().copied().map(Term::Pid).collect())),
        }
    }

    /// `:pg.get_members(scope, group)`: every member of `group`, on every node of the
    /// scope, as this node knows them (a process that joined more than once is there
    /// more than once).
    pub fn pg_members(&self, scope: &str, group: &Term) -> Vec<Pid> {
        self.pg_view(scope, |v| v.get(group).map(|(all, _)| all.clone()))
            .unwrap_or_default()
    }

    /// `:pg.get_local_members(scope, group)`: the members on this node.
    pub fn pg_local_members(&self, scope: &str, group: &Term) -> Vec<Pid> {
        self.pg_view(scope, |v| v.get(group).map(|(_, local)| local.clone()))
            .unwrap_or_default()
    }

    /// `:pg.which_groups(scope)`: the groups with a member anywhere.
    pub fn pg_groups(&self, scope: &str) -> Vec<Term> {
        self.pg_view(scope, |v| Some(v.keys().cloned().collect()))
            .unwrap_or_default()
    }

    fn pg_view<T>(&self, scope: &str, read: impl FnOnce(&View) -> Option<T>) -> Option<T> {
        let scopes = self.0.extensions.get::<Scopes>();
        let view = scopes
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&Atom::from(scope))?
            .clone();
        let view = view.read().unwrap_or_else(|e| e.into_inner());
        read(&view)
    }
}

impl Process {
    /// `:pg.monitor_scope(scope)` (OTP 25.1): every group of `scope` with its members,
    /// and a reference; from then on this process receives `{ref, :join, group, pids}`
    /// and `{ref, :leave, group, pids}` for every change of membership in the scope,
    /// on any node, until [`pg_demonitor`](Self::pg_demonitor).
    ///
    /// ```no_run
    /// # async fn demo(mut p: cnode::Process) -> Result<(), cnode::PgError> {
    /// use cnode::term::{Match, Term};
    /// let (r, groups) = p.pg_monitor_scope("chat_scope").await?;
    /// let event = p
    ///     .receive_match(None, |m| matches!(m.as_tuple(), Some([Term::Reference(x), ..]) if **x == r))
    ///     .await;
    /// # Ok(()) }
    /// ```
    pub async fn pg_monitor_scope(
        &mut self,
        scope: &str,
    ) -> Result<(Reference, Vec<(Term, Vec<Pid>)>), PgError> {
        let reply = self.call(scope, atom("monitor"), None).await?;
        let Some([Term::Reference(r), Term::Map(groups)]) = reply.as_tuple_n(2) else {
            return Err(PgError::Reply(reply));
        };
        let groups = groups
            .map
            .iter()
            .map(|(group, members)| (group.clone(), pid_list(members)))
            .collect();
        Ok(((**r).clone(), groups))
    }

    /// `:pg.monitor(scope, group)` (OTP 25.1): the members of `group` and a reference;
    /// from then on this process receives `{ref, :join, group, pids}` and `{ref, :leave,
    /// group, pids}` for every change of that group, until
    /// [`pg_demonitor`](Self::pg_demonitor).
    pub async fn pg_monitor(
        &mut self,
        scope: &str,
        group: Term,
    ) -> Result<(Reference, Vec<Pid>), PgError> {
        let request = tuple(vec![atom("monitor"), group]);
        let reply = self.call(scope, request, None).await?;
        match reply.as_tuple_n(2) {
            Some([Term::Reference(r), members]) => Ok(((**r).clone(), pid_list(members))),
            _ => Err(PgError::Reply(reply)),
        }
    }

    /// `:pg.demonitor(scope, ref)`: no more events for `reference`, and those already
    /// in the mailbox are dropped; `false` when `reference` is no monitor of `scope`.
    pub async fn pg_demonitor(
        &mut self,
        scope: &str,
        reference: &Reference,
    ) -> Result<bool, PgError> {
        let request = tuple(vec![atom("demonitor"), Term::from(reference.clone())]);
        if !self.call(scope, request, None).await?.is_atom("ok") {
            return Ok(false);
        }
        let ours = |m: &Term| matches!(m.as_tuple(), Some([Term::Reference(r), _, _, _]) if **r == *reference);
        while self
            .receive_match(Some(std::time::Duration::ZERO), ours)
            .await
            .is_some()
        {}
        Ok(true)
    }
}

/// Why [`Node::pg_join`] or [`Node::pg_leave`] did nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PgError {
    /// The scope is not running on this node (`noproc`).
    #[error("{0}")]
    Call(#[from] CallError),
    /// A process of another node: only local processes join and leave (`{nolocal,
    /// Pid}` on the BEAM).
    #[error("{0} is not a process of this node: only local processes join or leave a group")]
    NotLocal(Pid),
    /// The process registered under the scope's name answered what no `pg` scope
    /// answers (it is no scope).
    #[error("the scope's process answered {0}, which is no pg scope's answer")]
    Reply(Term),
}

/// A connection to a visible node came up: every scope of this node looks for its twin
/// there (`net_kernel:monitor_nodes/1`'s `nodeup`, which `pg` gets).
pub(crate) fn node_up(node: &Node, peer: &Atom) {
    let scopes = node.0.extensions.get::<Scopes>();
    let names: Vec<Atom> = scopes
        .0
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .copied()
        .collect();
    for scope in names {
        node.send(scope.name(), tuple(vec![atom(NODE_UP), Term::Atom(*peer)]));
    }
}

/// `pg:get_members/1,2`, `get_local_members/1,2`, `which_groups/0,1` and `start/1`,
/// for BEAM callers that ask this node (the forms without a scope: the default scope, `pg`).
/// Members of a scope not running here are `[]`, as pg.erl catches the `badarg` of its
/// table's absence for them; `which_groups` of one raises it ([`no_table`]).
pub(crate) fn register_functions(node: &Node) {
    scoped(
        node,
        "get_members",
        1,
        Absent::Empty,
        |node, scope, args| pids(node.pg_members(scope, &args[0])),
    );
    scoped(
        node,
        "get_local_members",
        1,
        Absent::Empty,
        |node, scope, args| pids(node.pg_local_members(scope, &args[0])),
    );
    scoped(node, "which_groups", 0, Absent::Badarg, |node, scope, _| {
        list(node.pg_groups(scope))
    });
    // `pg:start/1`: a scope started over rpc, as a harness starts one on each node.
    node.register_function("pg", "start", 1, |p, args| async move {
        let scope = args[0].as_atom().ok_or_else(Exception::bare_badarg)?;
        Ok(match p.node().start_pg(scope) {
            Ok(pid) => tuple(vec![atom("ok"), Term::Pid(pid)]),
            Err(taken) => tuple(vec![atom("error"), taken.reason()]),
        })
    });
    // `pg:join/2,3` and `pg:leave/2,3` over rpc: a process of this node (or a list of
    // them) joins or leaves, as the scope's `join_local` and `leave_local` calls take
    // it; another node's pid is `error({nolocal, Pid})`, as in pg.erl.
    for (name, request) in [("join", "join_local"), ("leave", "leave_local")] {
        for with_scope in [false, true] {
            let arity = 2 + usize::from(with_scope);
            node.register_function("pg", name, arity, move |mut p, args| async move {
                let (scope, args) = scoped_args(with_scope, &args)?;
                let pids = match &args[1] {
                    Term::Pid(_) => std::slice::from_ref(&args[1]),
                    other => other.as_list().ok_or_else(Exception::function_clause)?,
                };
                for pid in pids {
                    let pid = pid.as_pid().ok_or_else(|| Exception::badarg())?;
                    if !p.node().is_local(&pid.node) {
                        // pg.erl's frames, without its file and line.
                        let frame = |f: &str, arity: usize| {
                            tuple(vec![
                                atom("pg"),
                                atom(f),
                                Term::from(arity as i64),
                                list(vec![]),
                            ])
                        };
                        return Err(Exception::Error {
                            reason: tuple(vec![atom("nolocal"), Term::Pid(*pid)]),
                            stacktrace: vec![frame("ensure_local", 1), frame(name, arity)],
                        });
                    }
                }
                // As pg.erl calls its scope: the pid or pids as given, and an exit
                // that names gen_server.
                let request = tuple(vec![atom(request), args[0].clone(), args[1].clone()]);
                let failed = |reason| {
                    let args = vec![atom(scope), request.clone(), atom("infinity")];
                    super::calls::exited(reason, "gen_server", "call", args)
                };
                let reply = p.call(scope, &request, None).await;
                reply.map_err(|e| failed(e.kind().reason()))
            });
        }
    }
    // The subscriptions of OTP 25.1, held by the process that runs the call (over rpc,
    // they go with it, as on a BEAM node).
    for (name, arity) in [("monitor_scope", 0), ("monitor", 1), ("demonitor", 1)] {
        for with_scope in [false, true] {
            let arity = arity + usize::from(with_scope);
            node.register_function("pg", name, arity, move |mut p, args| async move {
                let (scope, args) = scoped_args(with_scope, &args)?;
                let request = match (name, args) {
                    ("monitor_scope", []) => atom("monitor"),
                    ("monitor", [group]) => tuple(vec![atom("monitor"), group.clone()]),
                    (_, [r]) => tuple(vec![atom("demonitor"), r.clone()]),
                    _ => return Err(Exception::bare_badarg()),
                };
                let reply = p.call(scope, request, None).await;
                reply.map_err(|e| Exception::Exit(e.reason()))
            });
        }
    }
}

/// The scope a `pg` function is called with (its first argument, when `with_scope`,
/// else the default scope) and the arguments after it.
fn scoped_args(with_scope: bool, args: &[Term]) -> Result<(&str, &[Term]), Exception> {
    match with_scope {
        true => Ok((
            args[0].as_atom().ok_or_else(Exception::bare_badarg)?,
            &args[1..],
        )),
        false => Ok((DEFAULT_SCOPE, args)),
    }
}

/// What a read of a scope that does not run here gives.
#[derive(Clone, Copy)]
enum Absent {
    Empty,
    Badarg,
}

/// Registers `pg:name` with a scope first (`arity + 1` arguments) and without one (the
/// default scope); `read` gets the scope, running, and the arguments after it.
fn scoped(
    node: &Node,
    name: &str,
    arity: usize,
    absent: Absent,
    read: fn(&Node, &str, &[Term]) -> Term,
) {
    let answer = move |node: &Node, scope: &str, args: &[Term], default: bool| match (
        node.pg_view(scope, |_| Some(())),
        absent,
    ) {
        (Some(()), _) => Ok(read(node, scope, args)),
        (None, Absent::Empty) => Ok(list(Vec::new())),
        (None, Absent::Badarg) => Err(no_table(scope, default)),
    };
    node.register_function("pg", name, arity + 1, move |p, args| async move {
        let scope = args[0].as_atom().ok_or_else(Exception::bare_badarg)?;
        answer(p.node(), scope, &args[1..], false)
    });
    node.register_function("pg", name, arity, move |p, args| async move {
        answer(p.node(), DEFAULT_SCOPE, &args, true)
    });
}

/// `pg:which_groups/1` of a scope not running here: the `badarg` of `ets:match/2` on
/// the scope's missing table, with OTP 25's frames, whose `error_info` has the caller's
/// shell say "the table identifier does not refer to an existing ETS table".
fn no_table(scope: &str, default: bool) -> Exception {
    let error_info = crate::term::map(vec![
        (atom("cause"), atom("id")),
        (atom("module"), atom("erl_stdlib_errors")),
    ]);
    let pattern = tuple(vec![atom("$1"), atom("_"), atom("_")]);
    let mut stacktrace = vec![
        tuple(vec![
            atom("ets"),
            atom("match"),
            list(vec![atom(scope), pattern]),
            list(vec![tuple(vec![atom("error_info"), error_info])]),
        ]),
        tuple(vec![
            atom("pg"),
            atom("which_groups"),
            crate::term::int(1),
            crate::node::location("pg.erl", 238),
        ]),
    ];
    if default {
        stacktrace.push(tuple(vec![
            atom("pg"),
            atom("which_groups"),
            crate::term::int(0),
            list(vec![]),
        ]));
    }
    Exception::Error {
        reason: atom("badarg"),
        stacktrace,
    }
}

/// `pg`'s default scope, `?DEFAULT_SCOPE` in pg.erl.
const DEFAULT_SCOPE: &str = "pg";

fn pids(pids: Vec<Pid>) -> Term {
    list(pids.into_iter().map(Term::Pid).collect())
}

/// A scope's state: its peers (the same scope on other nodes) with their members, its
/// own members, and the monitor of each.
struct Scope {
    name: Atom,
    view: Arc<RwLock<View>>,
    peers: HashMap<Pid, (Reference, HashMap<Term, Vec<Pid>>)>,
    local: HashMap<Term, Vec<Pid>>,
    /// Each local member: the monitor and the groups it joined (once per join).
    members: HashMap<Pid, (Reference, Vec<Term>)>,
    /// `pg:monitor_scope/1` subscribers, by the monitor on each.
    scope_monitors: HashMap<Reference, Pid>,
    /// `pg:monitor/2` subscribers, by the monitor on each, with their group.
    group_monitors: HashMap<Reference, (Pid, Term)>,
}

/// The body of the scope `scope`'s process under the supervisor `parent`
/// ([`ChildSpec::pg`](super::supervisor::ChildSpec::pg)).
pub(crate) fn scope_body(
    node: &Node,
    scope: &str,
    parent: Pid,
) -> impl FnOnce(Process) -> futures::future::BoxFuture<'static, Result<(), Exception>> + Send + 'static
{
    let (name, view) = node.scope_view(scope);
    move |p: Process| Box::pin(serve(p, parent, name, view))
}

async fn serve(
    mut p: Process,
    parent: Pid,
    name: Atom,
    view: Arc<RwLock<View>>,
) -> Result<(), Exception> {
    view.write().unwrap_or_else(|e| e.into_inner()).clear();
    let mut scope = Scope {
        name,
        view,
        peers: HashMap::new(),
        local: HashMap::new(),
        members: HashMap::new(),
        scope_monitors: HashMap::new(),
        group_monitors: HashMap::new(),
    };
    // `init/1`: discover the scope on every node already connected.
    let discover = discover(&p);
    for n in p.node().nodes(true) {
        p.node()
            .send_noconnect(&p.pid(), &scope.name, &n, &discover);
    }
    let mut suspended = false;
    loop {
        let state = || scope.state();
        let message = sys::receive(&mut p, Some(&parent), &mut suspended, &state, None).await;
        let message = message.map_err(Exception::Exit)?;
        scope.handle(&mut p, message);
    }
}

impl Scope {
    /// What `:sys.get_state/1` shows: the groups, each with all its members.
    fn state(&self) -> Term {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        let groups = view
            .iter()
            .map(|(g, (all, _))| (g.clone(), pids(all.clone())));
        crate::term::map(groups.collect::<Vec<_>>())
    }

    fn handle(&mut self, p: &mut Process, message: Term) {
        if let Some((from, request)) = parse_call(&message) {
            return self.call(p, from, request);
        }
        if let Some(cast) = parse_cast(&message) {
            // `{sync, Peer, [{Group, Pids}]}`: a peer's local members, all of them.
            if let Some([tag, Term::Pid(peer), groups]) = cast.as_tuple_n(3) {
                if tag.is_atom("sync") {
                    return self.sync(p, *peer, groups);
                }
            }
            return tracing::debug!("pg {}: ignoring cast {}", self.name.name(), Short(cast));
        }
        let Some(e) = message.as_tuple() else {
            return;
        };
        match (e.first().and_then(Match::as_atom), e) {
            (Some(NODE_UP), [_, Term::Atom(n)]) => {
                let discover = tuple(vec![atom("discover"), Term::Pid(p.pid())]);
                p.node()
                    .send_noconnect(&p.pid(), &self.name, n.name(), &discover);
            }
            // `{discover, Peer}` (OTP 23-28) or `{discover, Peer, Version}` (OTP 29):
            // answered in the form every release takes.
            (Some("discover"), [_, Term::Pid(peer)] | [_, Term::Pid(peer), _]) => {
                let peer = *peer;
                let groups = self
                    .local
                    .iter()
                    .map(|(g, m)| tuple(vec![g.clone(), pids(m.clone())]));
                let sync = tuple(vec![
                    atom("sync"),
                    Term::Pid(p.pid()),
                    list(groups.collect()),
                ]);
                p.send(peer, tuple(vec![atom("$gen_cast"), sync]));
                if let std::collections::hash_map::Entry::Vacant(new) = self.peers.entry(peer) {
                    new.insert((p.monitor(peer), HashMap::new()));
                    p.send(peer, discover(p));
                }
            }
            (Some("join"), [_, Term::Pid(peer), group, members]) => {
                let Some((_, groups)) = self.peers.get_mut(peer) else {
                    return;
                };
                let added = pid_list(members);
                let members = groups.entry(group.clone()).or_default();
                members.splice(0..0, added);
                self.refresh(p, group);
            }
            (Some("leave"), [_, Term::Pid(peer), members, left]) => {
                let Some((_, groups)) = self.peers.get_mut(peer) else {
                    return;
                };
                let removed = pid_list(members);
                let left: Vec<Term> = left.as_list().unwrap_or(&[]).to_vec();
                for group in &left {
                    if let Some(members) = groups.get_mut(group) {
                        subtract(members, &removed);
                        if members.is_empty() {
                            groups.remove(group);
                        }
                    }
                }
                for group in &left {
                    self.refresh(p, group);
                }
            }
            (Some("DOWN"), [_, Term::Reference(r), _, Term::Pid(pid), _]) => {
                self.down(p, r, *pid);
            }
            _ => tracing::debug!("pg {}: ignoring {}", self.name.name(), Short(&message)),
        }
    }

    fn call(&mut self, p: &mut Process, from: Caller, request: &Term) {
        if let Some(reply) = self.monitor_call(p, &from, request) {
            return from.reply(p, reply);
        }
        let reply = match request.as_tuple() {
            Some([tag, group, members]) if tag.is_atom("join_local") => {
                let added = pid_list(members);
                for pid in &added {
                    let entry = self
                        .members
                        .entry(*pid)
                        .or_insert_with(|| (p.monitor(*pid), Vec::new()));
                    entry.1.push(group.clone());
                }
                self.local
                    .entry(group.clone())
                    .or_default()
                    .splice(0..0, added.iter().copied());
                self.refresh(p, group);
                self.broadcast(
                    p,
                    tuple(vec![
                        atom("join"),
                        Term::Pid(p.pid()),
                        group.clone(),
                        pids(added),
                    ]),
                );
                atom("ok")
            }
            Some([tag, group, members]) if tag.is_atom("leave_local") => {
                let asked = pid_list(members);
                let joined: Vec<Pid> = match self.local.get(group) {
                    Some(m) => asked.into_iter().filter(|pid| m.contains(pid)).collect(),
                    None => Vec::new(),
                };
                if joined.is_empty() {
                    atom("not_joined")
                } else {
                    self.leave_local(p, group, &joined);
                    let groups = list(vec![group.clone()]);
                    self.broadcast(
                        p,
                        tuple(vec![
                            atom("leave"),
                            Term::Pid(p.pid()),
                            pids(joined),
                            groups,
                        ]),
                    );
                    atom("ok")
                }
            }
            _ => {
                tracing::warn!(
                    "pg {}: unexpected call {}",
                    self.name.name(),
                    Short(request)
                );
                return;
            }
        };
        from.reply(p, reply);
    }

    /// `monitor` (`pg:monitor_scope/1`), `{monitor, Group}` (`pg:monitor/2`) and
    /// `{demonitor, Ref}` (OTP 25.1): the reply, or `None` for another request. The
    /// reference is the scope's monitor on the subscriber, so a subscriber that ends is
    /// forgotten.
    fn monitor_call(&mut self, p: &mut Process, from: &Caller, request: &Term) -> Option<Term> {
        if request.is_atom("monitor") {
            let r = p.monitor(from.pid);
            self.scope_monitors.insert(r.clone(), from.pid);
            return Some(tuple(vec![Term::from(r), self.state()]));
        }
        match request.as_tuple_n(2)? {
            [tag, group] if tag.is_atom("monitor") => {
                let r = p.monitor(from.pid);
                self.group_monitors
                    .insert(r.clone(), (from.pid, group.clone()));
                let members = self.view.read().unwrap_or_else(|e| e.into_inner());
                let members = members.get(group).map(|(all, _)| all.clone());
                Some(tuple(vec![
                    Term::from(r),
                    pids(members.unwrap_or_default()),
                ]))
            }
            [tag, Term::Reference(r)] if tag.is_atom("demonitor") => {
                let known = self.scope_monitors.remove(r).is_some()
                    || self.group_monitors.remove(r).is_some();
                if known {
                    p.demonitor(r, true);
                }
                Some(if known { atom("ok") } else { atom("false") })
            }
            _ => None,
        }
    }

    /// `pids` (local) leave `group` once each, their monitors dropped with their last
    /// group.
    fn leave_local(&mut self, p: &mut Process, group: &Term, gone: &[Pid]) {
        if let Some(members) = self.local.get_mut(group) {
            subtract(members, gone);
            if members.is_empty() {
                self.local.remove(group);
            }
        }
        for pid in gone {
            if let Some((monitor, groups)) = self.members.get_mut(pid) {
                if let Some(i) = groups.iter().position(|g| g == group) {
                    groups.remove(i);
                }
                if groups.is_empty() {
                    p.demonitor(monitor, true);
                    self.members.remove(pid);
                }
            }
        }
        self.refresh(p, group);
    }

    /// A monitor fired: a peer scope went away (its members with it), or a local member
    /// ended (it leaves its groups, and the peers hear of it).
    fn down(&mut self, p: &mut Process, r: &Reference, pid: Pid) {
        if self.scope_monitors.remove(r).is_some() || self.group_monitors.remove(r).is_some() {
            return;
        }
        if self.peers.get(&pid).is_some_and(|(m, _)| m == r) {
            let (_, groups) = self.peers.remove(&pid).expect("a peer");
            for group in groups.keys() {
                self.refresh(p, group);
            }
            return;
        }
        let Some((monitor, groups)) = self.members.remove(&pid) else {
            return;
        };
        if &monitor != r {
            self.members.insert(pid, (monitor, groups));
            return;
        }
        let mut left: Vec<&Term> = Vec::new();
        for group in &groups {
            if let Some(members) = self.local.get_mut(group) {
                members.retain(|m| *m != pid);
                if members.is_empty() {
                    self.local.remove(group);
                }
            }
            if !left.contains(&group) {
                left.push(group);
            }
        }
        for group in left {
            self.refresh(p, group);
        }
        // A group once per join, as pg.erl sends it: a peer takes the pid out of it
        // once per entry.
        let leave = tuple(vec![
            atom("leave"),
            Term::Pid(p.pid()),
            Term::Pid(pid),
            list(groups),
        ]);
        self.broadcast(p, leave);
    }

    /// A peer's `sync`: its local members, replacing what we had of it.
    fn sync(&mut self, p: &mut Process, peer: Pid, groups: &Term) {
        let mut new: HashMap<Term, Vec<Pid>> = HashMap::new();
        for entry in groups.as_list().unwrap_or(&[]) {
            if let Some([group, members]) = entry.as_tuple_n(2) {
                new.entry(group.clone())
                    .or_default()
                    .extend(pid_list(members));
            }
        }
        let old = match self.peers.get_mut(&peer) {
            Some((_, groups)) => std::mem::replace(groups, new.clone()),
            None => {
                let monitor = p.monitor(peer);
                self.peers.insert(peer, (monitor, new.clone()));
                HashMap::new()
            }
        };
        for group in old.keys().chain(new.keys()) {
            self.refresh(p, group);
        }
    }

    /// `{join, ...}` or `{leave, ...}` to every peer.
    fn broadcast(&self, p: &Process, message: Term) {
        for peer in self.peers.keys() {
            p.send(*peer, &message);
        }
    }

    /// The view of `group` again: our members first, then each peer's; the subscribers
    /// of the scope and of the group hear who joined and who left.
    fn refresh(&self, p: &Process, group: &Term) {
        let local = self.local.get(group).cloned().unwrap_or_default();
        let mut all = local.clone();
        for (_, groups) in self.peers.values() {
            if let Some(members) = groups.get(group) {
                all.extend(members.iter().copied());
            }
        }
        // Who joined and who left, for the subscribers, if there are any.
        let subscribed = !(self.scope_monitors.is_empty() && self.group_monitors.is_empty());
        let mut view = self.view.write().unwrap_or_else(|e| e.into_inner());
        let changes = subscribed.then(|| {
            let before = view.get(group).map_or(&[][..], |(all, _)| all.as_slice());
            changes(before, &all)
        });
        if all.is_empty() {
            view.remove(group);
        } else {
            view.insert(group.clone(), (all, local));
        }
        drop(view);
        let Some((left, joined)) = changes else {
            return;
        };
        for (action, changed) in [("leave", left), ("join", joined)] {
            if !changed.is_empty() {
                self.notify(p, action, group, pids(changed));
            }
        }
    }

    /// `{Ref, join | leave, Group, Pids}` to the scope's subscribers and the group's.
    fn notify(&self, p: &Process, action: &str, group: &Term, changed: Term) {
        let subscribers = self.scope_monitors.iter().chain(
            self.group_monitors
                .iter()
                .filter(|(_, (_, g))| g == group)
                .map(|(r, (pid, _))| (r, pid)),
        );
        for (r, pid) in subscribers {
            let event = tuple(vec![
                Term::from(r.clone()),
                atom(action),
                group.clone(),
                changed.clone(),
            ]);
            p.send(*pid, event);
        }
    }
}

/// `{discover, Scope}`: what a scope sends the same scope on another node.
fn discover(p: &Process) -> Term {
    tuple(vec![atom("discover"), Term::Pid(p.pid())])
}

/// A pid or a list of pids, as `join` and `leave` carry them.
fn pid_list(t: &Term) -> Vec<Pid> {
    match t {
        Term::Pid(p) => vec![*p],
        t => t
            .as_list()
            .unwrap_or(&[])
            .iter()
            .filter_map(|p| p.as_pid().copied())
            .collect(),
    }
}

/// Who left and who joined between two views of a group (`before -- now` and `now --
/// before`). A join or leave changes a few members of the view and leaves the rest in
/// place: what both views begin and end with alike is set aside first, with plain
/// comparisons, and only what differs is counted.
fn changes(before: &[Pid], now: &[Pid]) -> (Vec<Pid>, Vec<Pid>) {
    let head = before.iter().zip(now).take_while(|(a, b)| a == b).count();
    let (before, now) = (&before[head..], &now[head..]);
    let tail = before
        .iter()
        .rev()
        .zip(now.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (before, now) = (&before[..before.len() - tail], &now[..now.len() - tail]);
    let mut left = before.to_vec();
    subtract(&mut left, now);
    let mut joined = now.to_vec();
    subtract(&mut joined, before);
    (left, joined)
}

/// `Members -- Gone`: one occurrence of each (the first), in time linear in both: a
/// group's view is compared with the one before at every join and leave, and a group
/// may have thousands of members.
fn subtract(members: &mut Vec<Pid>, gone: &[Pid]) {
    match gone {
        [] => {}
        [one] => {
            if let Some(i) = members.iter().position(|m| m == one) {
                members.remove(i);
            }
        }
        _ => {
            let mut counts: std::collections::HashMap<Pid, usize> =
                std::collections::HashMap::with_capacity(gone.len());
            for pid in gone {
                *counts.entry(*pid).or_default() += 1;
            }
            members.retain(|m| match counts.get_mut(m) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    false
                }
                _ => true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtract_takes_one_occurrence_of_each_as_lists_subtract() {
        let p = |n| Pid::new("a@localhost", n, 0, 0);
        // [1, 2, 1, 3, 1] -- [1, 1, 4] is [2, 3, 1]; [1, 2] -- [1] is [2].
        let mut members = vec![p(1), p(2), p(1), p(3), p(1)];
        subtract(&mut members, &[p(1), p(1), p(4)]);
        assert_eq!(members, vec![p(2), p(3), p(1)]);
        let mut members = vec![p(1), p(2)];
        subtract(&mut members, &[p(1)]);
        assert_eq!(members, vec![p(2)]);
        // A large group compared with itself less one: linear, and exact.
        let all: Vec<Pid> = (0..50_000).map(p).collect();
        let mut joined = all.clone();
        subtract(&mut joined, &all[..49_999]);
        assert_eq!(joined, vec![p(49_999)]);
    }

    #[test]
    fn changes_between_views_are_the_two_differences() {
        let p = |n| Pid::new("a@localhost", n, 0, 0);
        let view = |ns: &[u32]| ns.iter().map(|&n| p(n)).collect::<Vec<_>>();
        // A join at the front, in the middle, at the end; a leave; both at once; a
        // member twice; from and to nothing.
        for (before, now, left, joined) in [
            (&[1, 2, 3][..], &[9, 1, 2, 3][..], &[][..], &[9][..]),
            (&[1, 2, 3], &[1, 9, 2, 3], &[], &[9]),
            (&[1, 2, 3], &[1, 2, 3, 9], &[], &[9]),
            (&[1, 2, 3], &[1, 3], &[2], &[]),
            (&[1, 2, 3], &[1, 9, 3], &[2], &[9]),
            (&[1, 2, 2, 3], &[1, 2, 3], &[2], &[]),
            (&[1, 2], &[2, 1, 1], &[], &[1]),
            (&[], &[1, 2], &[], &[1, 2]),
            (&[1, 2], &[], &[1, 2], &[]),
        ] {
            let (l, j) = changes(&view(before), &view(now));
            assert_eq!((l, j), (view(left), view(joined)), "{before:?} -> {now:?}");
        }
    }
}
