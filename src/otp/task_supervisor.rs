//! The `Task.Supervisor` protocol (Elixir's `Task.Supervisor` and `Task.Supervised`),
//! hosted and used.
//!
//! Hosting: a registered process answers `{start_task, Args, Restart, Shutdown}` calls
//! with `{ok, Pid}`. The task monitors its owner until it gets the start message
//! `{Owner, Ref, ReplyTo, Callers, {M, F, A}}` (Elixir 1.10+; `Args` is
//! `[{Node, Owner, Owner}, monitor]`) or `{Owner, Ref}` (older Elixir, where `Args` is
//! `[Owner, monitor, {Node, Owner}, {M, F, A}]`, the form in the seed's error message),
//! runs the registered function, sends `{Ref, Result}` and exits `normal`; a failure
//! exits with the BEAM's reason, e.g. `{undef, [{M, F, Args, []}]}`, so `Task.await`
//! raises on the caller exactly as against a BEAM node (tests/task_protocol.rs). Being a
//! `DynamicSupervisor`, it also answers `DynamicSupervisor.start_child/2`'s
//! `{start_child, {MFA, Restart, Shutdown, Type, Modules}}`: `Task.start_link` as a task
//! of its own, any other start as the registered function of that name.
//!
//! Using: [`Process::task_async`] / [`Process::task_await`] start a task on a remote
//! `{Supervisor, Node}` the way `Task.Supervisor.async/4` + `Task.await/2` do, and
//! [`Process::task_start_child`] one nobody awaits, as `Task.Supervisor.start_child/5`.

use super::gen_server::{parse_call, CallError, CallErrorKind, Caller, StartError};
use super::supervisor::{
    is_normal_exit, stop_child, DynamicSupervisor, Intensity, Restart, Shutdown, TaskOptions,
};
use super::sys;
use crate::node::Node;
use crate::process::handle::{ancestors_of, exit_message};
use crate::process::{Dest, Exception, Process};
use crate::term::Inspect;
use crate::term::Short;
use crate::term::{atom, int, list, map, nil, tuple, Atom, Match, Pid, Reference, Term};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// `@ref_timeout` in `Task.Supervised`: how long a task waits for its start message.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// `DynamicSupervisor`'s defaults, which `Task.Supervisor.start_link/1` keeps: at most
/// 3 restarts in 5 seconds, then the supervisor shuts down.
pub(crate) const MAX_RESTARTS: usize = 3;
pub(crate) const MAX_SECONDS: Duration = Duration::from_secs(5);
/// What a `DynamicSupervisor` of this node is: a `Task.Supervisor`, or one that Rust
/// code starts its own children under (`DynamicSupervisor.start_link/1`).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Flavor {
    Task,
    Dynamic,
}

impl Flavor {
    /// The callback module, which `:sys.get_status/1` and `:sys.get_state/1` name.
    fn module(self) -> &'static str {
        match self {
            Flavor::Task => "Elixir.Task.Supervisor",
            Flavor::Dynamic => super::supervisor::SUPERVISOR_MODULE,
        }
    }
}
/// The shutdown a task gets when the request names none (`Task.Supervisor`'s default).
const DEFAULT_SHUTDOWN: Shutdown = Shutdown::Timeout(Duration::from_secs(5));

impl Node {
    /// Hosts a `Task.Supervisor`-compatible process registered as `name` (e.g.
    /// `"Elixir.Chat.TaskSupervisor"`): BEAM nodes start tasks on it with
    /// `Task.Supervisor.async({name, node}, M, F, A)`, running registered functions.
    /// The node starts it again whenever it ends, and stops it with `shutdown` when the
    /// node stops. (In a supervision tree of your own: [`ChildSpec::task_supervisor`].)
    /// A name already registered on this node is `{:already_started, pid}`, as
    /// `Task.Supervisor.start_link/1` answers.
    ///
    /// [`ChildSpec::task_supervisor`]: crate::supervisor::ChildSpec::task_supervisor
    pub fn start_task_supervisor(&self, name: &str) -> Result<Pid, StartError> {
        start(self, name)
    }
}

/// Starts the supervisor registered as `name` under a parent that starts it again when
/// it exits, as the application's supervisor restarts `Chat.TaskSupervisor` on a BEAM
/// node (its tasks die with it, being linked to it). Returns the supervisor's pid.
pub(crate) fn start(node: &Node, name: &str) -> Result<Pid, StartError> {
    if let Some(holder) = node.whereis(name) {
        return Err(StartError::taken(Some(holder)));
    }
    let owned = name.to_owned();
    super::keep_registered_app(node, name, move |p, parent| {
        supervise(
            p,
            parent,
            owned.clone(),
            Flavor::Task,
            DynamicSupervisor::default(),
        )
    })
    .map_err(|_| StartError::taken(node.whereis(name)))
}

struct Child {
    start: StartChild,
    restart: Restart,
    shutdown: Shutdown,
    spec: Spec,
}

/// The rest of a child's spec, as `DynamicSupervisor` keeps it and shows it.
enum Spec {
    /// A task: `{Task.Supervised, :start_link, args}`, a worker of
    /// `[Task.Supervised]`; made only when asked for (`:sys.get_state/1`), not for
    /// every task started.
    Task {
        /// The start's arguments (`undefined` for a temporary task, which is not
        /// started again).
        args: Term,
    },
    /// A spec given to `DynamicSupervisor.start_child/2`: `{M, F, Args}` (`{M, F,
    /// undefined}` for a temporary child), `worker` or `supervisor`, and the modules.
    Given {
        mfa: Term,
        kind: Term,
        modules: Term,
    },
}

/// Rust children handed to a supervisor of this node (`supervisor::start_child`), by
/// the key its call names: a `ChildSpec` holds closures, which no message carries.
#[derive(Default)]
pub(crate) struct HandedChildren {
    next: std::sync::atomic::AtomicU64,
    specs: std::sync::Mutex<HashMap<u64, super::supervisor::ChildSpec>>,
}

/// The call that starts a handed child: `{"$cnode_start_child", Key}`.
pub(crate) const START_HANDED: &str = "$cnode_start_child";

/// Hands `spec` over for the supervisor to take: the request to call it with.
pub(crate) fn hand_over(node: &Node, spec: super::supervisor::ChildSpec) -> Term {
    let handed = node.0.extensions.get::<HandedChildren>();
    let key = handed
        .next
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::sync::lock(&handed.specs).insert(key, spec);
    tuple(vec![atom(START_HANDED), int(key as i64)])
}

/// Takes back what [`hand_over`] gave, when the call to the supervisor failed.
pub(crate) fn take_back(node: &Node, request: &Term) -> Option<super::supervisor::ChildSpec> {
    let key = request.as_tuple_n(2)?[1].as_int()?;
    let handed = node.0.extensions.get::<HandedChildren>();
    let spec = crate::sync::lock(&handed.specs).remove(&(key as u64));
    spec
}

impl Child {
    /// A task of `Task.Supervisor.start_child/3`, `async/3` and the like.
    fn task(start: StartTask, restart: Restart, shutdown: Shutdown, args: Term) -> Child {
        Child {
            start: StartChild::Task(start),
            restart,
            shutdown,
            spec: Spec::Task { args },
        }
    }

    fn mfa(&self) -> Term {
        match &self.spec {
            Spec::Task { args } => tuple(vec![
                atom("Elixir.Task.Supervised"),
                atom("start_link"),
                args.clone(),
            ]),
            Spec::Given { mfa, .. } => mfa.clone(),
        }
    }

    fn kind(&self) -> Term {
        match &self.spec {
            Spec::Task { .. } => atom("worker"),
            Spec::Given { kind, .. } => kind.clone(),
        }
    }

    fn modules(&self) -> Term {
        match &self.spec {
            Spec::Task { .. } => list(vec![atom("Elixir.Task.Supervised")]),
            Spec::Given { modules, .. } => modules.clone(),
        }
    }

    /// `{Pid, {MFA, Restart, Shutdown, Type, Modules}}` in `DynamicSupervisor`'s state.
    fn to_term(&self, pid: &Pid) -> (Term, Term) {
        let spec = tuple(vec![
            self.mfa(),
            atom(self.restart.name()),
            self.shutdown.to_term(),
            self.kind(),
            self.modules(),
        ]);
        (Term::Pid(*pid), spec)
    }
}

/// How a child is started, and started again.
#[derive(Clone)]
enum StartChild {
    /// A task, which this node runs itself.
    Task(StartTask),
    /// A Rust child spec's start.
    Rust(super::supervisor::ChildSpec),
    /// `apply(M, F, Args)` as `DynamicSupervisor.start_child/2` does: a registered
    /// function that returns `{:ok, pid}`.
    Apply(String, String, Vec<Term>),
    /// A start that raises before anything runs (`Task.start_link/1` of what is no
    /// fun of no arguments): `{:error, reason}`, as DynamicSupervisor catches it.
    Raises(Term),
}

/// What starting a child gave, as `DynamicSupervisor` reads it.
enum Started {
    /// `{:ok, pid}`, or `{:ok, pid, info}`.
    Ok(Pid, Option<Term>),
    /// `:ignore`: nothing to supervise.
    Ignore,
    /// `{:error, reason}`; anything else `other` is `{:error, other}`.
    Error(Term),
}

impl Started {
    /// The reply to `DynamicSupervisor.start_child/2`.
    fn reply(&self) -> Term {
        match self {
            Started::Ok(pid, None) => tuple(vec![atom("ok"), Term::Pid(*pid)]),
            Started::Ok(pid, Some(info)) => tuple(vec![atom("ok"), Term::Pid(*pid), info.clone()]),
            Started::Ignore => atom("ignore"),
            Started::Error(reason) => tuple(vec![atom("error"), reason.clone()]),
        }
    }
}

/// The supervisor's loop (`DynamicSupervisor` with `Task.Supervisor`'s callbacks).
pub(crate) async fn supervise(
    mut p: Process,
    parent: Pid,
    name: String,
    flavor: Flavor,
    limits: DynamicSupervisor,
) -> Result<(), Exception> {
    p.trap_exit(true);
    let initial_call = (Atom::from("supervisor"), Atom::from(flavor.module()), 1);
    p.set_proc_lib(super::gen_server::gen_server_proc_lib(
        initial_call,
        ancestors_of(p.node(), &parent),
    ));
    let mut children: HashMap<Pid, Child> = HashMap::new();
    let mut intensity = Intensity::new(limits.max_restarts, limits.max_seconds);
    let mut suspended = false;
    loop {
        let state = || dynamic_supervisor(&name, &children, flavor, &limits);
        let module = Some(flavor.module());
        let received = sys::receive(&mut p, Some(&parent), &mut suspended, &state, module);
        let message = match received.await {
            // gen_server: the parent's EXIT stops it as a sys terminate does.
            Ok(message) => match exit_message(&message) {
                Some((from, reason)) if *from == parent => Err(reason.clone()),
                _ => Ok(message),
            },
            Err(reason) => Err(reason),
        };
        let message = match message {
            Ok(message) => message,
            Err(reason) => {
                // `DynamicSupervisor.terminate/2`: the children first, all at once.
                stop_all(&mut p, &mut children).await;
                return Err(Exception::Exit(reason));
            }
        };
        // `:sys.trace/2`, as for a gen_server: what it takes, and what follows.
        let traced = sys::traced(&p);
        if traced {
            sys::print_event(&mut p, sys::Event::In(&message)).await;
        }
        let state_of = |children: &HashMap<Pid, Child>| {
            sys::Event::NoReply(dynamic_supervisor(&name, children, flavor, &limits))
        };
        if let Some((pid, reason)) = exit_message(&message) {
            let Some(child) = children.remove(pid) else {
                if traced {
                    sys::print_event(&mut p, state_of(&children)).await;
                }
                continue;
            };
            let restart = match child.restart {
                Restart::Permanent => true,
                Restart::Transient => !is_normal_exit(reason),
                Restart::Temporary => false,
            };
            if !restart {
                if traced {
                    sys::print_event(&mut p, state_of(&children)).await;
                }
                continue;
            }
            // Started again until it starts, each try counted against the intensity.
            loop {
                if !intensity.add_restart() {
                    // Under the supervisors' target, whichever kind this one is.
                    tracing::error!(
                        target: "cnode::otp::supervisor",
                        "Supervisor {}: reached_max_restart_intensity (child {} exited: {}); shutting down",
                        super::supervisor::shown_name(&p),
                        pid.inspect(),
                        Short(reason)
                    );
                    stop_all(&mut p, &mut children).await;
                    return Err(Exception::Exit(atom("shutdown")));
                }
                match start_child(&mut p, &child.start).await {
                    Started::Ok(pid, _) => {
                        children.insert(pid, child);
                        break;
                    }
                    Started::Ignore => break,
                    Started::Error(why) => tracing::error!(
                        "{name}: child {} failed to start again: {}",
                        Short(&child.mfa()),
                        Short(&why)
                    ),
                }
            }
            if traced {
                sys::print_event(&mut p, state_of(&children)).await;
            }
            continue;
        }
        let Some((from, request)) = parse_call(&message) else {
            if super::gen_server::is_malformed_call(&message) {
                tracing::warn!("{name}: dropping a $gen_call with a malformed From");
            } else if super::gen_server::parse_cast(&message).is_some() {
                // DynamicSupervisor.handle_cast/2 takes any cast and does nothing.
                tracing::debug!("{name}: ignoring {}", Short(&message));
            } else {
                tracing::error!(
                    "DynamicSupervisor received unexpected message: {}",
                    Short(&message)
                );
            }
            if traced {
                sys::print_event(&mut p, state_of(&children)).await;
            }
            continue;
        };
        let call = match handle_call(request, p.pid()) {
            // A Rust child handed over by this node's code.
            Some(Call::StartHanded(key)) => {
                let handed = p.node().0.extensions.get::<HandedChildren>();
                let spec = crate::sync::lock(&handed.specs).remove(&key);
                // Taken back: its caller gave up (dropped its `start_child`) before
                // the supervisor got to it.
                let Some(spec) = spec else {
                    from.reply(&p, tuple(vec![atom("error"), atom("abandoned")]));
                    continue;
                };
                let kind = if spec.is_supervisor() {
                    "supervisor"
                } else {
                    "worker"
                };
                Some(Call::Start(Child {
                    restart: spec.restart_value(),
                    shutdown: spec.shutdown_value(),
                    spec: Spec::Given {
                        mfa: spec.mfa(),
                        kind: atom(kind),
                        modules: spec.modules_term(),
                    },
                    start: StartChild::Rust(spec),
                }))
            }
            call => call,
        };
        let reply = match call {
            Some(Call::StartHanded(_)) => unreachable!("taken above"),
            // `max_children` reached: refused, as `DynamicSupervisor` refuses it.
            Some(Call::Start(_)) if limits.max_children.is_some_and(|m| children.len() >= m) => {
                tuple(vec![atom("error"), atom("max_children")])
            }
            Some(Call::Start(child)) => {
                let started = start_child(&mut p, &child.start).await;
                if let Started::Ok(pid, _) = &started {
                    children.insert(*pid, child);
                }
                started.reply()
            }
            Some(Call::WhichChildren) => {
                // In pid order, as a DynamicSupervisor's map of children lists them.
                let mut sorted: Vec<_> = children.iter().collect();
                sorted.sort_by(|a, b| crate::term::compare(&Term::Pid(*a.0), &Term::Pid(*b.0)));
                let kids = sorted
                    .into_iter()
                    .map(|(pid, child)| {
                        tuple(vec![
                            atom("undefined"),
                            Term::Pid(*pid),
                            child.kind(),
                            child.modules(),
                        ])
                    })
                    .collect();
                list(kids)
            }
            Some(Call::CountChildren) => {
                // A keyword list: `DynamicSupervisor.count_children/1` makes the map.
                let all = children.len();
                let supervisors = children
                    .values()
                    .filter(|c| c.kind().is_atom("supervisor"))
                    .count();
                let counts = [
                    ("specs", all),
                    ("active", all),
                    ("supervisors", supervisors),
                    ("workers", all - supervisors),
                ];
                let counts = counts
                    .into_iter()
                    .map(|(k, v)| tuple(vec![atom(k), int(v as i64)]));
                list(counts.collect())
            }
            Some(Call::TerminateChild(pid)) => match children.remove(&pid) {
                Some(child) => {
                    stop_child(&mut p, &pid, child.shutdown).await;
                    atom("ok")
                }
                None => tuple(vec![atom("error"), atom("not_found")]),
            },
            None => {
                let state = dynamic_supervisor(&name, &children, flavor, &limits);
                let crashed = unexpected(&p, &name, &from, request, state);
                // gen_server runs `terminate/2` after a crash too: DynamicSupervisor's
                // stops the children with `shutdown`, as for any other end.
                stop_all(&mut p, &mut children).await;
                return Err(crashed);
            }
        };
        let shown = traced.then(|| reply.clone());
        let to = from.pid;
        from.reply(&p, reply);
        if let Some(reply) = shown {
            let state = dynamic_supervisor(&name, &children, flavor, &limits);
            sys::print_event(&mut p, sys::Event::Out(&reply, &to, state)).await;
        }
    }
}

/// Stops every child (`DynamicSupervisor.terminate_children/2`).
async fn stop_all(p: &mut Process, children: &mut HashMap<Pid, Child>) {
    let all = std::mem::take(children);
    super::supervisor::stop_children(
        p,
        all.into_iter().map(|(pid, c)| (pid, c.shutdown)).collect(),
    )
    .await;
}

/// Starts a child, linked to the supervisor `p`. A task is this node's own; an `apply`
/// runs the registered function in a process of its own (with the supervisor's group
/// leader) while the supervisor waits, as a BEAM supervisor waits for its `start_link`,
/// and a child it returns is linked to the supervisor.
async fn start_child(p: &mut Process, start: &StartChild) -> Started {
    let (m, f, args) = match start {
        StartChild::Task(start) => return Started::Ok(spawn_task(p, start.clone()), None),
        StartChild::Rust(spec) => {
            return match spec.start_under(p).await {
                Ok(Some(pid)) => Started::Ok(pid, None),
                Ok(None) => Started::Ignore,
                Err(e) => Started::Error(e.exit_reason()),
            }
        }
        StartChild::Apply(m, f, args) => (m.clone(), f.clone(), args.clone()),
        StartChild::Raises(reason) => return Started::Error(reason.clone()),
    };
    let node = p.node().clone();
    let (done, result) = tokio::sync::oneshot::channel();
    let opts = node.spawn_opts(p.group_leader());
    node.spawn_with(opts, move |starter| async move {
        let node = starter.node().clone();
        let _ = done.send(node.apply(starter, &m, &f, args).await);
        Ok(())
    });
    // `DynamicSupervisor.start_child/3`: an exception is `{:error, reason}` too.
    let returned = match result.await {
        Ok(Ok(returned)) => returned,
        Ok(Err(e)) => return Started::Error(e.exit_reason()),
        Err(_) => return Started::Error(atom("killed")),
    };
    let started = match returned.as_tuple() {
        Some([ok, Term::Pid(pid)]) if ok.is_atom("ok") => Started::Ok(*pid, None),
        Some([ok, Term::Pid(pid), info]) if ok.is_atom("ok") => {
            Started::Ok(*pid, Some(info.clone()))
        }
        Some([error, reason]) if error.is_atom("error") => Started::Error(reason.clone()),
        _ if returned.is_atom("ignore") => Started::Ignore,
        _ => Started::Error(returned),
    };
    if let Started::Ok(pid, _) = &started {
        p.link(pid);
    }
    started
}

/// A call `DynamicSupervisor` does not know crashes it on the BEAM (no clause of
/// `handle_call/3` matches): the caller's `GenServer.call` exits with that reason, the
/// tasks are shut down (`shutdown`) as the supervisor terminates, and its parent starts
/// it again. So here.
fn unexpected(p: &Process, name: &str, from: &Caller, request: &Term, state: Term) -> Exception {
    // As Elixir's logger prints gen_server's report of it.
    tracing::error!(
        supervisor = %crate::term::display::local_pid(&p.pid(), p.node().name()),
        "GenServer {} terminating\n** (FunctionClauseError) no function clause matching in \
         DynamicSupervisor.handle_call/3\nLast message (from {}): {}\nState: {}",
        crate::term::Elixir(&atom(name)),
        crate::term::display::local_pid(&from.pid, p.node().name()),
        crate::term::Short(request),
        crate::term::Short(&state)
    );
    Exception::Exit(tuple(vec![
        atom("function_clause"),
        list(vec![tuple(vec![
            atom("Elixir.DynamicSupervisor"),
            atom("handle_call"),
            list(vec![request.clone(), from.to_term(), state]),
            nil(),
        ])]),
    ]))
}

/// The supervisor's state as `DynamicSupervisor` keeps it (`:sys.get_state/1`): a
/// `%DynamicSupervisor{}` with `Task.Supervisor`'s arguments and its children, a task as
/// `%{pid => {{Task.Supervised, :start_link, args}, restart, shutdown, :worker,
/// [Task.Supervised]}}`.
fn dynamic_supervisor(
    name: &str,
    children: &HashMap<Pid, Child>,
    flavor: Flavor,
    limits: &DynamicSupervisor,
) -> Term {
    let children = children.iter().map(|(pid, child)| child.to_term(pid));
    let default_shutdown = DEFAULT_SHUTDOWN.to_term();
    map(vec![
        (atom("__struct__"), atom("Elixir.DynamicSupervisor")),
        (
            atom("args"),
            tuple(vec![
                tuple(vec![atom("temporary"), default_shutdown]),
                nil(),
            ]),
        ),
        (atom("extra_arguments"), nil()),
        (atom("mod"), atom(flavor.module())),
        (atom("name"), tuple(vec![atom("local"), atom(name)])),
        (atom("strategy"), atom("one_for_one")),
        (
            atom("max_children"),
            limits
                .max_children
                .map_or_else(|| atom("infinity"), |m| int(m as i64)),
        ),
        (atom("max_restarts"), int(limits.max_restarts as i64)),
        (
            atom("max_seconds"),
            int(limits.max_seconds.as_secs() as i64),
        ),
        (atom("children"), map(children)),
        (atom("restarts"), nil()),
    ])
}

/// What a task is started with; kept to start it again.
#[derive(Clone)]
enum StartTask {
    /// `Task.Supervised.start_link(Owner, monitor | nomonitor)`: the task waits for
    /// `{Owner, Ref, ReplyTo, Callers, MFA}` (`async`, `async_nolink`, `async_stream`,
    /// and `start_child` since Elixir 1.15).
    Reply { owner: Pid, monitor: bool },
    /// `Task.Supervised.start_link(Owner, Callers, MFA)`: runs the MFA at once and
    /// replies to nobody (`start_child` up to Elixir 1.14, and with a restart other than
    /// `temporary` since).
    NoReply {
        owner: Pid,
        callers: Term,
        mfa: Term,
    },
    /// The form older Elixir sent, `[Owner, monitor, {Node, Owner}, MFA]`: waits for
    /// `{Owner, Ref}`, then replies to Owner.
    Legacy {
        owner: Pid,
        monitor: bool,
        mfa: Term,
    },
}

enum Call {
    /// `{start_task, ...}` and `{start_child, Spec}`.
    Start(Child),
    /// A Rust child this node's code handed over, by its key.
    StartHanded(u64),
    WhichChildren,
    CountChildren,
    TerminateChild(Pid),
}

/// The call `request` to the supervisor `me`.
fn handle_call(request: &Term, me: Pid) -> Option<Call> {
    if request.is_atom("which_children") {
        return Some(Call::WhichChildren);
    }
    if request.is_atom("count_children") {
        return Some(Call::CountChildren);
    }
    let e = request.as_tuple()?;
    match (e.first()?.as_atom()?, e.len()) {
        (START_HANDED, 2) => Some(Call::StartHanded(u64::try_from(e[1].as_int()?).ok()?)),
        ("start_task", 4) => {
            let start = start_task(e[1].as_list()?)?;
            // `nil` takes the supervisor's own (temporary, 5000): ours are never other,
            // so the `{restart, R}` answer of a BEAM supervisor started with another
            // restart is never due.
            // A restart or shutdown it does not know, `DynamicSupervisor` keeps
            // unchecked (it fails only on using it: when the task fails, or is
            // terminated) and starts the task; here such a task is temporary, with the
            // default shutdown.
            let restart = e[2]
                .as_atom()
                .and_then(Restart::from_name)
                .unwrap_or(Restart::Temporary);
            let shutdown = Shutdown::from_term(&e[3]).unwrap_or(DEFAULT_SHUTDOWN);
            let args = match restart {
                Restart::Temporary => atom("undefined"),
                _ => e[1].clone(),
            };
            Some(Call::Start(Child::task(start, restart, shutdown, args)))
        }
        // `DynamicSupervisor.start_child/2`, the spec validated by the caller.
        ("start_child", 2) => {
            let [mfa, restart, shutdown, kind, modules] = e[1].as_tuple_n(5)? else {
                return None;
            };
            let [m, f, args] = mfa.as_tuple_n(3)? else {
                return None;
            };
            let (m, f, args) = (m.as_atom()?, f.as_atom()?, args.as_list()?);
            let restart = Restart::from_name(restart.as_atom()?)?;
            let start = match (m, f, args) {
                ("Elixir.Task.Supervised", "start_link", args) => {
                    StartChild::Task(start_task(args)?)
                }
                // `Task.start_link/1,3` of what its guards refuse (a child spec
                // `{Task, {M, F, A}}`): its function_clause error.
                ("Elixir.Task", "start_link", [fun]) if !is_fun0(fun) => {
                    StartChild::Raises(task_start_link_clause(args))
                }
                ("Elixir.Task", "start_link", [m, f, a])
                    if !(m.as_atom().is_some()
                        && f.as_atom().is_some()
                        && a.as_list().is_some()) =>
                {
                    StartChild::Raises(task_start_link_clause(args))
                }
                // `Task.start_link/1,3` in the supervisor: a task it owns, run at once.
                ("Elixir.Task", "start_link", [fun]) => StartChild::Task(StartTask::NoReply {
                    owner: me,
                    callers: list(vec![Term::Pid(me)]),
                    mfa: tuple(vec![
                        atom("erlang"),
                        atom("apply"),
                        list(vec![fun.clone(), nil()]),
                    ]),
                }),
                ("Elixir.Task", "start_link", [m, f, a]) => StartChild::Task(StartTask::NoReply {
                    owner: me,
                    callers: list(vec![Term::Pid(me)]),
                    mfa: tuple(vec![m.clone(), f.clone(), a.clone()]),
                }),
                _ => StartChild::Apply(m.to_owned(), f.to_owned(), args.to_vec()),
            };
            Some(Call::Start(Child {
                start,
                restart,
                shutdown: Shutdown::from_term(shutdown)?,
                spec: Spec::Given {
                    mfa: kept_mfa(mfa, restart),
                    kind: kind.clone(),
                    modules: modules.clone(),
                },
            }))
        }
        ("terminate_child", 2) => Some(Call::TerminateChild(*e[1].as_pid()?)),
        _ => None,
    }
}

/// A fun of no arguments (`is_function(fun, 0)`).
fn is_fun0(fun: &Term) -> bool {
    match fun {
        Term::ExternalFun(f) => f.arity == 0,
        Term::InternalFun(f) => matches!(**f, crate::term::InternalFun::New { arity: 0, .. }),
        _ => false,
    }
}

/// `{function_clause, [{Task, start_link, Args, []}]}`: what `Task.start_link/1,3`
/// raises for arguments its guards refuse.
fn task_start_link_clause(args: &[Term]) -> Term {
    let frame = tuple(vec![
        atom("Elixir.Task"),
        atom("start_link"),
        list(args.to_vec()),
        nil(),
    ]);
    tuple(vec![atom("function_clause"), list(vec![frame])])
}

/// `{M, F, Args}`, or `{M, F, undefined}` for a temporary child, which
/// `DynamicSupervisor` will not start again.
fn kept_mfa(mfa: &Term, restart: Restart) -> Term {
    match (restart, mfa.as_tuple_n(3)) {
        (Restart::Temporary, Some([m, f, _])) => {
            tuple(vec![m.clone(), f.clone(), atom("undefined")])
        }
        _ => mfa.clone(),
    }
}

/// A task from the arguments of `Task.Supervised.start_link`.
fn start_task(args: &[Term]) -> Option<StartTask> {
    Some(match args {
        [owner_info, mode] => StartTask::Reply {
            owner: owner_pid(owner_info)?,
            monitor: mode.is_atom("monitor"),
        },
        [owner_info, callers, mfa] if callers.as_list().is_some() => StartTask::NoReply {
            owner: owner_pid(owner_info)?,
            callers: callers.clone(),
            mfa: mfa.clone(),
        },
        [owner, mode, _info, mfa] => StartTask::Legacy {
            owner: *owner.as_pid()?,
            monitor: mode.is_atom("monitor"),
            mfa: mfa.clone(),
        },
        _ => return None,
    })
}

fn owner_pid(info: &Term) -> Option<Pid> {
    match info {
        Term::Pid(p) => Some(*p),
        _ => info.as_tuple_n(3)?[2].as_pid().cloned(),
    }
}

/// A task, linked to its supervisor (whose group leader it inherits, as on the BEAM).
fn spawn_task(sup: &Process, start: StartTask) -> Pid {
    let node = sup.node().clone();
    let ancestors = sup.ancestors();
    sup.spawn_link(move |p| run_task(node, p, start, ancestors))
}

/// `Task.Supervised.reply/3` and `noreply/4`, then `invoke_mfa/2`.
async fn run_task(
    node: Node,
    mut p: Process,
    start: StartTask,
    ancestors: Vec<Term>,
) -> Result<(), Exception> {
    let (owner, reference, reply_to, callers, mfa) = match start {
        StartTask::NoReply {
            owner,
            callers,
            mfa,
        } => (owner, None, None, callers, mfa),
        StartTask::Reply { owner, monitor } => {
            let e = wait_for_start(&mut p, &owner, monitor, 5).await?;
            let reply_to = match &e[2] {
                Term::Reference(r) => Dest::Alias((**r).clone()),
                Term::Pid(pid) => Dest::Pid(*pid),
                _ => return Err(Exception::Exit(atom("badarg"))),
            };
            let [_, reference, _, callers, mfa]: [Term; 5] = e.try_into().expect("a 5-tuple");
            (owner, Some(reference), Some(reply_to), callers, mfa)
        }
        StartTask::Legacy {
            owner,
            monitor,
            mfa,
        } => {
            let e = wait_for_start(&mut p, &owner, monitor, 2).await?;
            let reply_to = Dest::Pid(owner);
            let callers = list(vec![Term::Pid(owner)]);
            (owner, Some(e[1].clone()), Some(reply_to), callers, mfa)
        }
    };
    let Some((m, f, args)) = mfa.as_tuple_n(3).and_then(|t| {
        Some((
            t[0].as_atom()?.to_owned(),
            t[1].as_atom()?.to_owned(),
            t[2].as_list()?.to_vec(),
        ))
    }) else {
        return Err(Exception::bare_badarg());
    };
    // As Task.Supervised records it: the function it runs, its supervisor's line, and
    // who asked for it.
    let running = (Atom::from(m.as_str()), Atom::from(f.as_str()), args.len());
    p.set_proc_lib(crate::node::ProcLib {
        initial_call: running,
        ancestors,
        callers: Some(callers),
        current: running,
    });
    let me = p.pid();
    match node.apply(p, &m, &f, args).await {
        Ok(result) => {
            if let (Some(reference), Some(reply_to)) = (reference, reply_to) {
                node.route(&me, reply_to, tuple(vec![reference, result]));
            }
            Ok(())
        }
        Err(e) => {
            // proc_lib's crash report, then exit(Reason): no second, emulator report.
            // An exit `normal`, `shutdown` or `{shutdown, _}` is none: Task.Supervised
            // exits with it and reports nothing.
            let clean = matches!(&e, Exception::Exit(r) if super::supervisor::is_normal_exit(r));
            if !clean {
                // As Elixir's logger prints Task.Supervised's report.
                let arity = u8::try_from(running.2).unwrap_or(u8::MAX);
                let fun = Term::from(crate::term::ExternalFun::from((
                    m.as_str(),
                    f.as_str(),
                    arity,
                )));
                let args = mfa
                    .as_tuple_n(3)
                    .map_or_else(crate::term::nil, |t| t[2].clone());
                tracing::error!(
                    "Task {} started from {} terminating\n{}\nFunction: {fun}\n    Args: {}",
                    crate::term::display::local_pid(&me, node.name()),
                    crate::term::display::local_pid(&owner, node.name()),
                    e.format_logged(false),
                    crate::term::Short(&args)
                );
            }
            Err(Exception::Exit(e.exit_reason()))
        }
    }
}

/// The owner's start message, a tuple of `arity` led by the owner's pid, within
/// `@ref_timeout`; `{shutdown, Reason}` if a monitored owner dies first.
async fn wait_for_start(
    p: &mut Process,
    owner: &Pid,
    monitor: bool,
    arity: usize,
) -> Result<Vec<Term>, Exception> {
    let owner_term = Term::Pid(*owner);
    let mref = monitor.then(|| p.monitor(*owner));
    let started = p
        .receive_match(Some(START_TIMEOUT), |m| {
            m.as_tuple_n(arity).is_some_and(|e| e[0] == owner_term)
                || mref
                    .as_ref()
                    .is_some_and(|r| crate::process::handle::is_down_for(m, r))
        })
        .await;
    let Some(Term::Tuple(started)) = started else {
        return Err(Exception::Exit(atom("timeout")));
    };
    let e = started.elements;
    if let Some(r) = &mref {
        // The start message leads with the owner's pid: an atom first is the DOWN.
        if e[0].is_atom("DOWN") {
            return Err(Exception::Exit(tuple(vec![atom("shutdown"), e[4].clone()])));
        }
        p.demonitor(r, true);
    }
    Ok(e)
}

/// The exit `Task.yield` or `Task.shutdown` makes when the task's node is gone:
/// `{{:nodedown, node}, {Task, function, [task, timeout]}}`.
fn task_exit(task: &Task, owner: &Pid, function: &str, timeout: Option<Duration>) -> TaskError {
    let timeout = match (function, timeout) {
        ("shutdown", None) => atom("brutal_kill"),
        (_, t) => crate::term::timeout(t),
    };
    TaskError::exit(tuple(vec![
        tuple(vec![atom("nodedown"), Term::Atom(task.pid.node)]),
        tuple(vec![
            atom("Elixir.Task"),
            atom(function),
            list(vec![task.to_struct(owner), timeout]),
        ]),
    ]))
}

/// The task of a `{:start_task, ...}` call's `{:ok, pid}`; another answer is the exit
/// (`Task.Supervisor`'s own `{:error, reason}`, say).
fn started_task(reply: Term) -> Result<Pid, TaskError> {
    match reply.as_tuple_n(2) {
        Some([ok, Term::Pid(pid)]) if ok.is_atom("ok") => Ok(*pid),
        _ => Err(TaskError::exit(reply)),
    }
}

/// A task started with [`Process::task_async`] (`%Task{}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task process.
    pub pid: Pid,
    /// The monitor reference, also the alias the result is sent to.
    pub reference: Reference,
    /// `{module, function, arity}`, for the `%Task{}` in `Task.await`'s exits.
    mfa: Term,
}

impl Task {
    /// The `%Task{}` an Elixir caller holds for this task, owned by `owner`.
    fn to_struct(&self, owner: &Pid) -> Term {
        map([
            (atom("__struct__"), atom("Elixir.Task")),
            (atom("mfa"), self.mfa.clone()),
            (atom("owner"), Term::Pid(*owner)),
            (atom("pid"), Term::Pid(self.pid)),
            (
                atom("ref"),
                Term::Reference(Box::new(self.reference.clone())),
            ),
        ])
    }
}

impl Process {
    /// `Task.Supervisor.async(supervisor, module, function, args)`: starts a task on a
    /// (usually remote) `Task.Supervisor`, linked to and monitored by this process.
    pub async fn task_async(
        &mut self,
        supervisor: impl Into<Dest>,
        module: &str,
        function: &str,
        args: Vec<Term>,
    ) -> Result<Task, TaskError> {
        self.start_async(supervisor.into(), module, function, args, true)
            .await
    }

    /// `Task.Supervisor.async_nolink(supervisor, module, function, args)`: as
    /// [`task_async`](Self::task_async), the task not linked to this process: its
    /// failure does not end this process, and [`task_yield`](Self::task_yield) or
    /// [`task_await`](Self::task_await) tell it.
    ///
    /// ```no_run
    /// # async fn demo(mut p: cnode::Process) -> Result<(), cnode::Exception> {
    /// use std::time::Duration;
    /// let supervisor = ("Elixir.Chat.TaskSupervisor", "alex@localhost");
    /// let task = p.task_async_nolink(supervisor, "Elixir.Work", "run", vec![]).await?;
    /// // `Task.yield(task, 5000) || Task.shutdown(task)`
    /// let outcome = match p.task_yield(&task, Duration::from_secs(5)).await? {
    ///     Some(outcome) => Some(outcome),
    ///     None => p.task_shutdown(task, Duration::from_secs(5)).await?,
    /// };
    /// match outcome {
    ///     Some(Ok(value)) => println!("{value}"),
    ///     Some(Err(reason)) => println!("it failed: {reason}"),
    ///     None => println!("no answer in time; it is stopped"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn task_async_nolink(
        &mut self,
        supervisor: impl Into<Dest>,
        module: &str,
        function: &str,
        args: Vec<Term>,
    ) -> Result<Task, TaskError> {
        self.start_async(supervisor.into(), module, function, args, false)
            .await
    }

    async fn start_async(
        &mut self,
        supervisor: Dest,
        module: &str,
        function: &str,
        args: Vec<Term>,
        link: bool,
    ) -> Result<Task, TaskError> {
        let arity = args.len() as i64;
        let me = Term::Pid(self.pid());
        let owner = tuple(vec![atom(self.node().name()), me.clone(), me.clone()]);
        let request = tuple(vec![
            atom("start_task"),
            list(vec![owner, atom("monitor")]),
            atom("temporary"),
            atom("nil"),
        ]);
        // Exits as `GenServer.call(supervisor, {:start_task, ...}, :infinity)` does.
        let reply = self.call(supervisor, request, None).await?;
        let pid = started_task(reply)?;
        if link {
            self.link(&pid);
        }
        let alias = self.monitor_with_alias(pid);
        let alias_term = Term::Reference(Box::new(alias.clone()));
        self.send(
            pid,
            tuple(vec![
                me.clone(),
                alias_term.clone(),
                alias_term,
                list(vec![me]),
                tuple(vec![atom(module), atom(function), list(args)]),
            ]),
        );
        Ok(Task {
            pid,
            reference: alias,
            mfa: tuple(vec![atom(module), atom(function), int(arity)]),
        })
    }

    /// `Task.await(task, timeout)`: the task's result, or the exit `Task.await` makes;
    /// the timeout a `Duration` (or `Some`), or `None` for `:infinity`.
    pub async fn task_await(
        &mut self,
        task: Task,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Term, TaskError> {
        let timeout = timeout.into();
        let me = self.pid();
        let dropped = self.demonitor_on_drop(&task.reference);
        let reply = self.receive_from_task(&task, timeout, true).await;
        dropped.done();
        let await_info = || {
            tuple(vec![
                atom("Elixir.Task"),
                atom("await"),
                list(vec![task.to_struct(&me), crate::term::timeout(timeout)]),
            ])
        };
        match reply {
            Some(Term::Tuple(mut t)) if t.elements.len() == 2 => {
                self.demonitor(&task.reference, true);
                Ok(t.elements.pop().unwrap())
            }
            Some(down) => {
                let reason = match down.as_tuple().map(|e| e[4].clone()) {
                    // `Task.await`'s own: a lost connection is `{:nodedown, node}`.
                    Some(r) if r.is_atom("noconnection") => {
                        tuple(vec![atom("nodedown"), Term::Atom(task.pid.node)])
                    }
                    r => r.unwrap_or_else(nil),
                };
                Err(TaskError::exit(tuple(vec![reason, await_info()])))
            }
            None => {
                self.demonitor(&task.reference, true);
                Err(TaskError::exit(tuple(vec![atom("timeout"), await_info()])))
            }
        }
    }

    /// The task's `{ref, result}` or, with `down`, its monitor's `DOWN`, whichever comes
    /// first; `None` after `timeout`.
    async fn receive_from_task(
        &mut self,
        task: &Task,
        timeout: Option<Duration>,
        down: bool,
    ) -> Option<Term> {
        let reference = Term::Reference(Box::new(task.reference.clone()));
        self.receive_match(timeout, |m| {
            m.as_tuple_n(2).is_some_and(|e| e[0] == reference)
                || (down && crate::process::handle::is_down_for(m, &task.reference))
        })
        .await
    }

    /// `Task.yield(task, timeout)`: `Some(Ok(value))` for the task's result,
    /// `Some(Err(reason))` for its end without one (`{:exit, reason}`: it raised, exited
    /// or was killed), `None` while it runs on (`nil`: await it again, or
    /// [`task_shutdown`](Self::task_shutdown) it). Its node gone is the exit
    /// `Task.yield` makes, `{{:nodedown, node}, {Task, :yield, [task, timeout]}}`.
    pub async fn task_yield(
        &mut self,
        task: &Task,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Option<Result<Term, Term>>, TaskError> {
        let timeout = timeout.into();
        let Some(reply) = self.receive_from_task(task, timeout, true).await else {
            return Ok(None);
        };
        match reply {
            Term::Tuple(mut t) if t.elements.len() == 2 => {
                self.demonitor(&task.reference, true);
                Ok(Some(Ok(t.elements.pop().unwrap_or_else(nil))))
            }
            down => {
                let reason = down.as_tuple().map_or_else(nil, |e| e[4].clone());
                if reason.is_atom("noconnection") {
                    let me = self.pid();
                    return Err(task_exit(task, &me, "yield", timeout));
                }
                Ok(Some(Err(reason)))
            }
        }
    }

    /// `Task.shutdown(task, timeout)`: unlinks the task and stops it (`:shutdown`,
    /// killed when `timeout` is up; `None` kills it at once, `:brutal_kill`), then
    /// says how it ended as [`task_yield`](Self::task_yield) does: `Some(Ok(value))` if
    /// its result came first, `Some(Err(reason))` if it ended otherwise than as asked,
    /// `None` if it was stopped without one.
    pub async fn task_shutdown(
        &mut self,
        task: Task,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Option<Result<Term, Term>>, TaskError> {
        let timeout = timeout.into();
        self.unlink(&task.pid);
        let monitor = self.monitor(task.pid);
        let asked = match timeout {
            Some(_) => atom("shutdown"),
            None => atom("kill"),
        };
        self.exit(&task.pid, asked);
        // What Task.shutdown takes for the end it asked: `:shutdown`, or `:killed`
        // for `:brutal_kill`; after the time is up and the kill, `:shutdown` only.
        let mut expected = if timeout.is_some() {
            "shutdown"
        } else {
            "killed"
        };
        let reason = match self.receive_down(&monitor, timeout).await {
            Some(reason) => reason,
            None => {
                self.exit(&task.pid, atom("kill"));
                expected = "shutdown";
                self.receive_down(&monitor, None).await.unwrap_or_else(nil)
            }
        };
        let outcome = if reason.is_atom(expected) {
            None
        } else if reason.is_atom("noproc") {
            // Gone before: how, its own monitor says.
            match self.receive_down(&task.reference, Duration::ZERO).await {
                Some(r) if r.is_atom(expected) => None,
                Some(r) => Some(r),
                None => Some(reason),
            }
        } else {
            Some(reason)
        };
        self.demonitor(&task.reference, true);
        // A result that came before the end counts.
        let reply = self
            .receive_from_task(&task, Some(Duration::ZERO), false)
            .await;
        if let Some(Term::Tuple(mut t)) = reply {
            return Ok(Some(Ok(t.elements.pop().unwrap_or_else(nil))));
        }
        match outcome {
            Some(r) if r.is_atom("noconnection") => {
                let me = self.pid();
                Err(task_exit(&task, &me, "shutdown", timeout))
            }
            outcome => Ok(outcome.map(Err)),
        }
    }

    /// `Task.Supervisor.start_child(supervisor, module, function, args, options)`:
    /// starts a task on a (usually remote) `Task.Supervisor` that nobody awaits, not
    /// linked to this process; `{:ok, pid}`'s pid. `options` is a [`Restart`]
    /// (`Restart::Temporary` is `Task.Supervisor`'s default; a `Transient` task that
    /// fails is started again) or [`TaskOptions`] with a `shutdown:` too.
    ///
    /// ```no_run
    /// # async fn demo(mut p: cnode::Process) -> Result<(), cnode::Exception> {
    /// use cnode::supervisor::Restart;
    /// use cnode::term::binary;
    /// let pid = p
    ///     .task_start_child(("Elixir.Chat.TaskSupervisor", "alex@localhost"), "Elixir.Chat",
    ///                       "receive_message", vec![binary("hi")], Restart::Temporary)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn task_start_child(
        &mut self,
        supervisor: impl Into<Dest>,
        module: &str,
        function: &str,
        args: Vec<Term>,
        options: impl Into<TaskOptions>,
    ) -> Result<Pid, TaskError> {
        let options = options.into();
        let me = Term::Pid(self.pid());
        // `get_owner/1` and `get_callers/1` of `Task.Supervisor`: `{node, self, self}`
        // and `[self]`, the form Elixir 1.14 to 1.20 send.
        let owner = tuple(vec![atom(self.node().name()), me.clone(), me.clone()]);
        let request = tuple(vec![
            atom("start_task"),
            list(vec![
                owner,
                list(vec![me]),
                tuple(vec![atom(module), atom(function), list(args)]),
            ]),
            atom(options.restart.name()),
            options
                .shutdown
                .map_or_else(|| atom("nil"), Shutdown::to_term),
        ]);
        started_task(self.call(supervisor, request, None).await?)
    }
}

impl Node {
    /// `Task.Supervisor.async(supervisor, module, function, args)` from code that is no
    /// process: the task is started at once, owned by a process of this node that waits
    /// for it. `.await` the [`NodeTask`] for the result (`Task.await(task, :infinity)`),
    /// or [`NodeTask::await_timeout`]. Its owner traps exits: a task that fails is an
    /// `Err`, as `Task.await` exits in a caller that traps exits. In a process body,
    /// [`Process::task_async`] and [`Process::task_await`] are Elixir's `Task.async` and
    /// `Task.await` there: the task linked to the process, which its failure ends.
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node) -> Result<(), cnode::TaskError> {
    /// use cnode::term::{int, list};
    /// let six = node
    ///     .task_async(("Elixir.Chat.TaskSupervisor", "alex@localhost"), "Elixir.Enum", "sum",
    ///                 vec![list(vec![int(1), int(2), int(3)])])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn task_async(
        &self,
        supervisor: impl Into<Dest>,
        module: &str,
        function: &str,
        args: Vec<Term>,
    ) -> NodeTask {
        let (done, result) = tokio::sync::oneshot::channel();
        let supervisor = supervisor.into();
        let (module, function) = (module.to_owned(), function.to_owned());
        let started = Arc::new(std::sync::OnceLock::new());
        let started_here = started.clone();
        let owner = self.spawn(move |mut p| async move {
            // As a caller that traps exits: a task that fails makes `Task.await` exit
            // with its reason, instead of taking the owner down through the link.
            p.trap_exit(true);
            let outcome = match p.task_async(supervisor, &module, &function, args).await {
                Ok(task) => {
                    let _ = started_here.set(task.to_struct(&p.pid()));
                    p.task_await(task, None).await
                }
                Err(e) => Err(e),
            };
            let _ = done.send(outcome);
            Ok(())
        });
        NodeTask {
            node: self.clone(),
            owner,
            abandoned: crate::process::Abandoned::new(self.clone(), owner),
            started,
            result,
        }
    }

    /// [`Process::task_start_child`] from code that is no process
    /// (`Task.Supervisor.start_child/5`): the task's pid, or the exit a BEAM caller's
    /// `GenServer.call` would make (`{:noproc, {GenServer, :call, ...}}` without the
    /// supervisor).
    pub async fn task_start_child(
        &self,
        supervisor: impl Into<Dest>,
        module: &str,
        function: &str,
        args: Vec<Term>,
        options: impl Into<TaskOptions>,
    ) -> Result<Pid, TaskError> {
        let (supervisor, options) = (supervisor.into(), options.into());
        let (module, function) = (module.to_owned(), function.to_owned());
        self.run_process(move |mut p| async move {
            p.task_start_child(supervisor, &module, &function, args, options)
                .await
        })
        .await
        // The process ended before it had an answer (the node stopping).
        .unwrap_or_else(|ended| Err(TaskError::exit(ended.exit_reason())))
    }
}

/// A task started by [`Node::task_async`]. Dropped before its result (or its future
/// dropped: a `tokio::time::timeout` around it, a `select!`, an HTTP client gone), it
/// stops the task: its owner here is killed, and the task, linked to it, with it, as a
/// BEAM caller's end takes its `Task.async` task. [`await_timeout`](Self::await_timeout)
/// stops it when the time is up. A task that should run on without anyone waiting is
/// [`Node::task_start_child`]'s.
#[derive(Debug)]
pub struct NodeTask {
    node: Node,
    /// The process that owns the task (linked to it).
    owner: Pid,
    /// Kills the owner if the task is dropped before its result.
    abandoned: crate::process::Abandoned,
    /// The `%Task{}` once the task has started, for `Task.await`'s timeout exit.
    started: Arc<std::sync::OnceLock<Term>>,
    result: tokio::sync::oneshot::Receiver<Result<Term, TaskError>>,
}

impl NodeTask {
    /// `Task.await(task, timeout)`: the result, or the exit `Task.await` makes. When the
    /// time is up, the task is stopped (its owner exits, and the task, linked to it, with
    /// it), as a BEAM caller's `Task.await` timeout does. The time counts from
    /// [`Node::task_async`], the task's start included (an Elixir caller's
    /// `Task.Supervisor.async` returns once it has started); a task not started when it
    /// is up is named by its owner's pid in the exit, where `Task.await` has the `%Task{}`.
    pub async fn await_timeout(self, timeout: Duration) -> Result<Term, TaskError> {
        let NodeTask {
            node,
            owner,
            abandoned,
            started,
            result,
        } = self;
        let mut deadline = node.deadline_after(timeout);
        let outcome = deadline.bound(result).await;
        abandoned.done();
        match outcome {
            Some(outcome) => outcome
                .unwrap_or_else(|_| Err(owner_ended(&owner)))
                .map_err(|e| awaited_for(e, timeout)),
            None => {
                node.exit(&owner, atom("kill"));
                // The `%Task{}`, as `Task.await` exits; the owner if it never started.
                let task = started.get().cloned().unwrap_or(Term::Pid(owner));
                Err(TaskError::exit(tuple(vec![
                    atom("timeout"),
                    tuple(vec![
                        atom("Elixir.Task"),
                        atom("await"),
                        list(vec![task, crate::term::millis(timeout)]),
                    ]),
                ])))
            }
        }
    }
}

impl std::future::IntoFuture for NodeTask {
    type Output = Result<Term, TaskError>;
    type IntoFuture = futures::future::BoxFuture<'static, Self::Output>;

    /// `Task.await(task, :infinity)`.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let NodeTask {
                owner,
                abandoned,
                result,
                ..
            } = self;
            let outcome = result.await;
            abandoned.done();
            outcome.unwrap_or_else(|_| Err(owner_ended(&owner)))
        })
    }
}

/// The owner awaits with no time limit; an exit it made (`{reason, {Task, :await,
/// [task, :infinity]}}`, the task's node gone) names the time the caller of
/// [`NodeTask::await_timeout`] gave, as its own `Task.await(task, timeout)` would.
fn awaited_for(error: TaskError, timeout: Duration) -> TaskError {
    let Some([inner, call]) = error.reason.as_tuple_n(2) else {
        return error;
    };
    let Some([module, function, args]) = call.as_tuple_n(3) else {
        return error;
    };
    match args.as_list() {
        Some([task, infinity])
            if module == &atom("Elixir.Task")
                && function == &atom("await")
                && infinity == &atom("infinity") =>
        {
            TaskError::exit(tuple(vec![
                inner.clone(),
                tuple(vec![
                    module.clone(),
                    function.clone(),
                    list(vec![task.clone(), crate::term::millis(timeout)]),
                ]),
            ]))
        }
        _ => error,
    }
}

/// The owner of a task ended before it had the result (it was killed).
fn owner_ended(owner: &Pid) -> TaskError {
    TaskError::exit(tuple(vec![atom("process_ended"), Term::Pid(*owner)]))
}

/// Why a [`NodeTask`] gave no result: the exit `Task.await` makes in a BEAM caller (the
/// task raised, exited or was never started, the time was up), as a
/// [`std::error::Error`], so that `?` takes it into `anyhow::Error` or a
/// `Box<dyn Error>`. In a process body, `?` turns it back into that exit.
///
/// ```no_run
/// # async fn demo(node: cnode::Node) -> anyhow::Result<()> {
/// use cnode::term::{int, list};
/// let six = node
///     .task_async(("Elixir.Chat.TaskSupervisor", "alex@localhost"), "Elixir.Enum", "sum",
///                 vec![list(vec![int(1), int(2), int(3)])])
///     .await?;
/// # Ok(()) }
/// ```
///
/// It prints as Elixir prints that exit (`exited in: Task.await(%Task{...}, 5000)`,
/// the reason below it), and [`kind`](Self::kind) says what went wrong, as
/// [`CallError::kind`](super::gen_server::CallError::kind) does for a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", Exception::format_exit(&self.reason))]
pub struct TaskError {
    kind: CallErrorKind,
    reason: Term,
}

impl TaskError {
    /// The error of a task whose caller exits with `reason`.
    pub(crate) fn exit(reason: Term) -> TaskError {
        let inner = match reason.as_tuple_n(2) {
            Some([inner, call]) if call.as_tuple_n(3).is_some() => inner,
            _ => &reason,
        };
        TaskError {
            kind: CallErrorKind::of(inner),
            reason,
        }
    }

    /// What went wrong, as for a call: `NoProc` (no such supervisor), `NodeDown` (its
    /// node, or the task's, went away), `Timeout` (the time given to await it was up),
    /// or `Exit` with the task's own reason (it raised, exited, or was killed).
    pub fn kind(&self) -> &CallErrorKind {
        &self.kind
    }

    /// The exit reason, as `Task.await` exits a BEAM caller with it: `{:noproc,
    /// {GenServer, :call, ...}}` without the supervisor, `{:timeout, {Task, :await,
    /// ...}}`, or `{reason, {Task, :await, ...}}` with the task's own.
    pub fn reason(&self) -> Term {
        self.reason.clone()
    }

    /// The exit reason, taken.
    pub fn into_reason(self) -> Term {
        self.reason
    }
}

/// A start that failed in its call to the supervisor: the exit of that call.
impl From<CallError> for TaskError {
    fn from(e: CallError) -> Self {
        TaskError::exit(e.reason())
    }
}
