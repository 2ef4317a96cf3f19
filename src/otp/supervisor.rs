//! Supervisor, as in Elixir: starts its children in order, restarts them by their
//! `restart` value and its strategy, gives up (exiting `:shutdown`) after too many
//! restarts in a period, and stops them in reverse order with their `shutdown`. The
//! children are Rust processes, GenServers and supervisors. A BEAM user's
//! `Supervisor.which_children/1`, `count_children/1`, `terminate_child/2`,
//! `restart_child/2` and `delete_child/2` on it answer as for an Elixir supervisor, and
//! Rust code asks them of any supervisor with [`which_children`], [`count_children`],
//! [`terminate_child`], [`restart_child`] and [`delete_child`].
//!
//! ```no_run
//! use cnode::supervisor::{self, ChildSpec, Strategy};
//! # use cnode::{Node, Exception};
//! # struct Counter;
//! # impl cnode::GenServer for Counter {
//! #     async fn handle_call(&mut self, r: cnode::term::Term, _: &cnode::Caller, _: &mut cnode::Process)
//! #         -> Result<cnode::Reply, Exception> { Ok(cnode::Reply::reply(r)) }
//! # }
//! # async fn demo(node: Node) -> Result<(), Exception> {
//! // Supervisor.start_link([{Counter, name: :counter}, Ticker], strategy: :one_for_one)
//! let children = vec![
//!     ChildSpec::gen_server("counter", Some("counter"), || Counter),
//!     ChildSpec::process("ticker", |mut p| async move {
//!         loop {
//!             p.receive().await;
//!         }
//!     }),
//! ];
//! supervisor::start(&node, Some("my_sup"), Strategy::OneForOne, children).await?;
//! # Ok(()) }
//! ```
//!
//! A supervisor that gives up ends, and the node goes on without it. Where the program
//! should end then, as a BEAM node does when its permanent application's top supervisor
//! ends, `main` serves while it lives ([`Node::serve_while`]): the node stops with
//! status 1 when it ends.
//!
//! ```no_run
//! # async fn demo(node: cnode::Node, children: Vec<cnode::supervisor::ChildSpec>) -> Result<(), Box<dyn std::error::Error>> {
//! use cnode::supervisor::{self, Strategy};
//! let sup = supervisor::start(&node, Some("my_sup"), Strategy::OneForOne, children).await?;
//! // Until SIGTERM or `:init.stop/1` from a peer (their status), or until it gives up (1).
//! std::process::exit(node.serve_while(sup).await)
//! # }
//! ```

use super::gen_server::{self, Caller, GenServer, Next, Reply, StartError};
use super::task_supervisor::Flavor;
use crate::node::Node;
use crate::process::handle::exit_message;
use crate::process::{Exception, Process};
use crate::term::Inspect;
use crate::term::Short;
use crate::term::{atom, int, list, tuple, Match, Pid, Term};
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which children are restarted when one exits (`:strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// Every child: the others are stopped, then all start again in order.
    OneForAll,
    /// The child that exited and those started after it.
    RestForOne,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
        }
    }
}

/// The callback module of a supervisor started without one of its own, as
/// `Supervisor.start_link/2` starts it: what `:supervisor.get_callback_module/1` and
/// `$initial_call` name.
pub(crate) const SUPERVISOR_MODULE: &str = "Elixir.Supervisor.Default";

/// The module a supervisor child lists (`modules: [Supervisor]`), as Elixir's
/// `Supervisor.start_link/2` child spec has it.
const ELIXIR_SUPERVISOR: &str = "Elixir.Supervisor";

/// When a child is restarted (`:restart`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// When it exits abnormally (not `:normal`, `:shutdown` or `{:shutdown, _}`).
    Transient,
    /// Never; it is forgotten when it exits.
    Temporary,
}

/// How a child is stopped (`:shutdown`): asked with an exit signal `:shutdown`, then
/// killed when the time is up; or killed at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// `:brutal_kill`.
    BrutalKill,
    /// Milliseconds, 5000 by default for a worker.
    Timeout(Duration),
    /// `:infinity`, the default for a supervisor.
    Infinity,
}

/// The options of `Task.Supervisor.start_child/5` (`restart:` and `shutdown:`), for
/// [`Process::task_start_child`](crate::Process::task_start_child): a [`Restart`] alone
/// converts into them, keeping the supervisor's default shutdown (5 seconds).
///
/// ```
/// use cnode::supervisor::{Restart, Shutdown, TaskOptions};
/// use std::time::Duration;
/// // restart: :transient, shutdown: 10_000
/// let options = TaskOptions::from(Restart::Transient).shutdown(Shutdown::Timeout(Duration::from_secs(10)));
/// // shutdown: :brutal_kill (restart: :temporary, the default)
/// let options = TaskOptions::new().shutdown(Shutdown::BrutalKill);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOptions {
    pub(crate) restart: Restart,
    pub(crate) shutdown: Option<Shutdown>,
}

impl TaskOptions {
    /// `restart: :temporary` and the supervisor's default shutdown, as
    /// `Task.Supervisor.start_child/4`.
    pub fn new() -> TaskOptions {
        TaskOptions {
            restart: Restart::Temporary,
            shutdown: None,
        }
    }

    /// `restart:`.
    pub fn restart(mut self, restart: Restart) -> TaskOptions {
        self.restart = restart;
        self
    }

    /// `shutdown:` (`:brutal_kill`, milliseconds or `:infinity`).
    pub fn shutdown(mut self, shutdown: Shutdown) -> TaskOptions {
        self.shutdown = Some(shutdown);
        self
    }
}

impl Default for TaskOptions {
    fn default() -> TaskOptions {
        TaskOptions::new()
    }
}

impl From<Restart> for TaskOptions {
    fn from(restart: Restart) -> TaskOptions {
        TaskOptions::new().restart(restart)
    }
}

impl Restart {
    /// Its name as a child spec's `restart` (`permanent`, ...).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Restart::Permanent => "permanent",
            Restart::Transient => "transient",
            Restart::Temporary => "temporary",
        }
    }

    /// The restart a child spec names.
    pub(crate) fn from_name(name: &str) -> Option<Restart> {
        match name {
            "permanent" => Some(Restart::Permanent),
            "transient" => Some(Restart::Transient),
            "temporary" => Some(Restart::Temporary),
            _ => None,
        }
    }
}

impl Shutdown {
    /// As a child spec's `shutdown`: `brutal_kill`, milliseconds or `infinity`.
    pub(crate) fn to_term(self) -> Term {
        match self {
            Shutdown::BrutalKill => atom("brutal_kill"),
            Shutdown::Timeout(t) => crate::term::millis(t),
            Shutdown::Infinity => atom("infinity"),
        }
    }

    /// The shutdown a child spec gives: `brutal_kill`, milliseconds or `infinity`.
    pub(crate) fn from_term(term: &Term) -> Option<Shutdown> {
        match term {
            t if t.is_atom("brutal_kill") => Some(Shutdown::BrutalKill),
            t if t.is_atom("infinity") => Some(Shutdown::Infinity),
            t => Some(Shutdown::Timeout(Duration::from_millis(
                u64::try_from(t.as_int()?).ok()?,
            ))),
        }
    }
}

/// Starts a child linked to the supervisor (the supervisor's process is given) and
/// returns its pid, or `None` for a GenServer whose `init` returned `:ignore`.
type Start = Arc<
    dyn for<'a> Fn(&'a mut Process) -> BoxFuture<'a, Result<Option<Pid>, Exception>> + Send + Sync,
>;

/// One child of a supervisor, as Elixir's child specification map.
#[derive(Clone)]
pub struct ChildSpec {
    id: String,
    start: Start,
    restart: Restart,
    shutdown: Shutdown,
    supervisor: bool,
    /// `modules`, as `which_children/1` lists them: a GenServer's
    /// [`module`](GenServer::module).
    modules: Option<crate::term::Atom>,
}

impl ChildSpec {
    /// `start`, `{Module, start_link, []}`: a Rust child's start is no function a BEAM
    /// node could call, so its arguments are none.
    fn mfargs(&self) -> Term {
        let module = self.modules.map_or_else(|| atom("rust"), Term::Atom);
        tuple(vec![module, atom("start_link"), list(Vec::new())])
    }

    /// The spec as `supervisor:get_childspec/2` gives it.
    fn to_map(&self) -> Term {
        let start = self.mfargs();
        let kind = if self.supervisor {
            "supervisor"
        } else {
            "worker"
        };
        crate::term::map(vec![
            (atom("id"), atom(&self.id)),
            (atom("start"), start),
            (atom("restart"), atom(self.restart.name())),
            (atom("shutdown"), self.shutdown.to_term()),
            (atom("type"), atom(kind)),
            (
                atom("modules"),
                list(self.modules.map(Term::Atom).into_iter().collect()),
            ),
            (atom("significant"), atom("false")),
        ])
    }
}

/// A GenServer child's start as the supervisor reads it: `:ignore` is no failure.
fn started(result: Result<Pid, StartError>) -> Result<Option<Pid>, Exception> {
    match result {
        Ok(pid) => Ok(Some(pid)),
        Err(e) if e.ignored() => Ok(None),
        Err(e) => Err(e.0),
    }
}

/// `start` as a [`Start`]: the closure's future borrows the supervisor's process.
fn start_fn<F>(f: F) -> Start
where
    F: for<'a> Fn(&'a mut Process) -> BoxFuture<'a, Result<Option<Pid>, Exception>>
        + Send
        + Sync
        + 'static,
{
    Arc::new(f)
}

impl ChildSpec {
    /// A process running `body` (each restart runs a fresh call of it), a permanent
    /// worker stopped with a 5 s shutdown.
    pub fn process<F, Fut>(id: &str, body: F) -> Self
    where
        F: Fn(Process) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let body = Arc::new(body);
        ChildSpec::new(
            id,
            start_fn(move |sup| {
                let body = body.clone();
                Box::pin(async move { Ok(Some(sup.spawn_link(move |p| body(p)))) })
            }),
            false,
        )
    }

    /// A GenServer made by `make` (on each start) and started with
    /// `GenServer.start_link/3`, registered as `name` when given.
    pub fn gen_server<S, F>(id: &str, name: Option<&str>, make: F) -> Self
    where
        S: GenServer,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let name = gen_server::ServerName::Local(name.map(str::to_owned));
        ChildSpec::named_gen_server(id, name, make)
    }

    /// A GenServer made by `make` (on each start) and started with
    /// `GenServer.start_link(module, arg, name: {:global, name})`
    /// ([`gen_server::start_link_global`]): started again, it takes the name again.
    pub fn gen_server_global<S, F>(id: &str, name: Term, make: F) -> Self
    where
        S: GenServer,
        F: Fn() -> S + Send + Sync + 'static,
    {
        ChildSpec::named_gen_server(id, gen_server::ServerName::Global(name), make)
    }

    fn named_gen_server<S, F>(id: &str, name: gen_server::ServerName, make: F) -> Self
    where
        S: GenServer,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let mut spec = ChildSpec::new(
            id,
            start_fn(move |sup| {
                let server = make();
                let name = name.clone();
                Box::pin(async move {
                    let node = sup.node().clone();
                    started(gen_server::start_named(&node, Some(sup), name, server).await)
                })
            }),
            false,
        );
        spec.modules = Some(S::module().into());
        spec.shutdown = S::shutdown();
        if gen_server::supervisor_module::<S>().is_some() {
            // A [`Supervisor`] started as a GenServer is a supervisor child all the same.
            spec.supervisor = true;
            spec.modules = Some(ELIXIR_SUPERVISOR.into());
        }
        spec
    }

    /// A supervisor of `children`, as a child (`shutdown: :infinity`), with Elixir's
    /// default intensity: [`ChildSpec::supervisor_of`] for another.
    pub fn supervisor(
        id: &str,
        name: Option<&str>,
        strategy: Strategy,
        children: Vec<ChildSpec>,
    ) -> Self {
        ChildSpec::supervisor_of(id, name, Supervisor::new(strategy, children))
    }

    /// `supervisor` as a child (`shutdown: :infinity`), started afresh from it on each
    /// start: its strategy, children and intensity, as
    /// `%{id: :inner, start: {Supervisor, :start_link, [children, opts]}, type:
    /// :supervisor}` in an Elixir supervisor's children.
    ///
    /// ```no_run
    /// # fn demo(children: Vec<cnode::supervisor::ChildSpec>) {
    /// use cnode::supervisor::{ChildSpec, Strategy, Supervisor};
    /// use std::time::Duration;
    /// // strategy: :one_for_all, max_restarts: 2, max_seconds: 5
    /// let inner = Supervisor::new(Strategy::OneForAll, children).max_restarts(2, Duration::from_secs(5));
    /// let spec = ChildSpec::supervisor_of("inner", Some("inner"), inner);
    /// # }
    /// ```
    pub fn supervisor_of(id: &str, name: Option<&str>, supervisor: Supervisor) -> Self {
        let name = name.map(str::to_owned);
        let mut spec = ChildSpec::new(
            id,
            start_fn(move |sup| {
                let server = supervisor.fresh();
                let name = name.clone();
                Box::pin(async move {
                    started(gen_server::start_link(sup, name.as_deref(), server).await)
                })
            }),
            true,
        );
        spec.shutdown = Shutdown::Infinity;
        spec.modules = Some(ELIXIR_SUPERVISOR.into());
        spec
    }

    fn new(id: &str, start: Start, supervisor: bool) -> Self {
        ChildSpec {
            id: id.to_owned(),
            start,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            supervisor,
            modules: None,
        }
    }

    /// A `DynamicSupervisor` (`one_for_one`, 3 restarts in 5 s) registered as `name`
    /// when given, as a child (`shutdown: :infinity`): Rust code starts children under
    /// it with [`start_child`], BEAM callers see a `DynamicSupervisor`.
    pub fn dynamic_supervisor(id: &str, name: Option<&str>) -> Self {
        ChildSpec::dynamic_supervisor_with(id, name, DynamicSupervisor::new())
    }

    /// [`dynamic_supervisor`](Self::dynamic_supervisor) with its options
    /// ([`DynamicSupervisor`]: `max_restarts`, `max_children`).
    pub fn dynamic_supervisor_with(
        id: &str,
        name: Option<&str>,
        options: DynamicSupervisor,
    ) -> Self {
        ChildSpec::dynamic(
            id,
            name,
            Flavor::Dynamic,
            "Elixir.DynamicSupervisor",
            options,
        )
    }

    /// A `Task.Supervisor` registered as `name`, as a child (`{Task.Supervisor, name:
    /// name}` in an Elixir supervisor's children, whose id is the name: give `name` as
    /// `id` too, so that `Supervisor.terminate_child(sup, name)` finds it): BEAM nodes
    /// start tasks on it as on the one [`Node::start_task_supervisor`] starts, and it
    /// ends with its supervisor.
    pub fn task_supervisor(id: &str, name: &str) -> Self {
        ChildSpec::dynamic(
            id,
            Some(name),
            Flavor::Task,
            "Elixir.Task.Supervisor",
            DynamicSupervisor::new(),
        )
    }

    /// A `pg` scope registered as `scope`, as a child (`%{id: ..., start: {:pg,
    /// :start_link, [scope]}}` in an Elixir supervisor's children): the scope
    /// [`Node::start_pg`] starts, restarted by this supervisor instead of the node, its
    /// local members lost when it ends (as on the BEAM). A permanent worker.
    pub fn pg(id: &str, scope: &str) -> Self {
        let scope = scope.to_owned();
        let mut spec = ChildSpec::new(
            id,
            start_fn(move |sup| {
                let body = super::pg::scope_body(sup.node(), &scope, sup.pid());
                let pid = sup.spawn_link_named(Some(&scope), body);
                Box::pin(async move { pid.map(Some) })
            }),
            false,
        );
        spec.modules = Some("pg".into());
        spec
    }

    /// A dynamic supervisor of `flavor` as a child: a supervisor, `shutdown: :infinity`,
    /// listed with `module`.
    fn dynamic(
        id: &str,
        name: Option<&str>,
        flavor: Flavor,
        module: &'static str,
        options: DynamicSupervisor,
    ) -> Self {
        let name = name.map(str::to_owned);
        let mut spec = ChildSpec::new(
            id,
            start_fn(move |sup| {
                let body = dynamic_body(sup.pid(), name.clone(), flavor, options);
                let pid = sup.spawn_link_named(name.as_deref(), body);
                Box::pin(async move { pid.map(Some) })
            }),
            true,
        );
        spec.shutdown = Shutdown::Infinity;
        spec.modules = Some(module.into());
        spec
    }

    /// `restart: ...`.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub(crate) fn restart_value(&self) -> Restart {
        self.restart
    }

    pub(crate) fn shutdown_value(&self) -> Shutdown {
        self.shutdown
    }

    pub(crate) fn is_supervisor(&self) -> bool {
        self.supervisor
    }

    /// `[Module]` for `which_children/1`, or `[]`.
    pub(crate) fn modules_term(&self) -> Term {
        list(self.modules.map(Term::Atom).into_iter().collect())
    }

    /// The start as a dynamic supervisor's state shows it: `{Module, :start_link, :undefined}`.
    pub(crate) fn mfa(&self) -> Term {
        let module = self.modules.map_or_else(|| atom(&self.id), Term::Atom);
        tuple(vec![module, atom("start_link"), atom("undefined")])
    }

    /// Starts the child, linked to the supervisor `sup` (`None`: it ignored the start).
    pub(crate) async fn start_under(&self, sup: &mut Process) -> Result<Option<Pid>, Exception> {
        (self.start)(sup).await
    }

    /// `shutdown: ...`.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// `modules: [module]`, the module `which_children/1` lists for the child (e.g.
    /// `"Elixir.Jobs.Worker"`), as an Elixir child spec takes it from the module that
    /// defines it. A GenServer's is its [`module`](GenServer::module) already.
    pub fn module(mut self, module: &str) -> Self {
        self.modules = Some(module.into());
        self
    }
}

/// Starts a supervisor of `children` on `node`, registered as `name` when given, with
/// Elixir's default intensity (3 restarts in 5 s): `Supervisor.start_link/2` called by
/// no process. Returns once every child has started; a child that fails to start stops
/// the others and fails the start. For another intensity, start a [`Supervisor::new`]
/// with [`max_restarts`](Supervisor::max_restarts) through [`gen_server::start`] (under
/// another supervisor: [`ChildSpec::supervisor_of`]).
pub async fn start(
    node: &Node,
    name: Option<&str>,
    strategy: Strategy,
    children: Vec<ChildSpec>,
) -> Result<Pid, StartError> {
    let pid = gen_server::start(node, name, Supervisor::new(strategy, children)).await?;
    say_when_it_ends(node, pid, name);
    Ok(pid)
}

/// A supervisor as its logs name it, as Elixir's logger does: its registered name as
/// an alias or atom (`Chat.Supervisor`, `:sup`), else its pid.
pub(crate) fn shown_name(p: &Process) -> String {
    match p.registered_name() {
        Some(name) => crate::term::Elixir(&atom(&name)).to_string(),
        None => p.pid().inspect().to_string(),
    }
}

/// A top supervisor (one started by no process) that ends while the node goes on is
/// said in the log, as a BEAM node's application controller says
/// `Application chat exited: killed`: killed, or given up (after its own report).
fn say_when_it_ends(node: &Node, top: Pid, name: Option<&str>) {
    let name = name.map_or_else(
        || top.inspect().to_string(),
        |n| crate::term::Elixir(&crate::term::atom(n)).to_string(),
    );
    node.spawn(move |mut p| async move {
        p.monitor(top);
        let down = p.receive().await;
        let reason = down.as_tuple().and_then(|d| d.last().cloned());
        match reason {
            // Where `serve_while` watches it, the node stops and says why itself.
            Some(reason)
                if !reason.is_atom("normal")
                    && !p.node().stop_begun()
                    && !p.node().serves_while(&top) =>
            {
                tracing::warn!(
                    "top supervisor {name} exited: {}; the node goes on without it",
                    Short(&reason)
                );
            }
            _ => {}
        }
        Ok(())
    });
}

/// [`start`] linked to `parent`: `Supervisor.start_link/2` called by that process. For
/// another intensity than the default, start a [`Supervisor::new`] with
/// [`max_restarts`](Supervisor::max_restarts) through [`gen_server::start_link`] (or
/// [`gen_server::start`]); [`gen_server::stop`] stops a supervisor as
/// `Supervisor.stop/3` does.
pub async fn start_link(
    parent: &Process,
    name: Option<&str>,
    strategy: Strategy,
    children: Vec<ChildSpec>,
) -> Result<Pid, StartError> {
    gen_server::start_link(parent, name, Supervisor::new(strategy, children)).await
}

/// `DynamicSupervisor.start_link(strategy: :one_for_one, name: name)` called by no
/// process: a supervisor that starts no child of its own; Rust code starts each with
/// [`start_child`] (`DynamicSupervisor.start_child/2`), a worker per job or per
/// session, say. It restarts them by their `restart` (3 restarts in 5 s at most, then it
/// gives up), and BEAM callers see a `DynamicSupervisor`: `which_children/1`,
/// `count_children/1`, `terminate_child/2`, `:sys.get_state/1`. It stops, with its
/// children, when the node stops, and with [`gen_server::stop`].
///
/// ```no_run
/// # struct Worker(u32);
/// # impl cnode::GenServer for Worker {}
/// # async fn demo(node: cnode::Node) -> Result<(), cnode::Exception> {
/// use cnode::supervisor::{self, ChildSpec, Restart};
/// supervisor::start_dynamic(&node, Some("Elixir.Jobs.WorkerSup")).await?;
/// // DynamicSupervisor.start_child(Jobs.WorkerSup, {Jobs.Worker, 7})
/// let spec = ChildSpec::gen_server("worker", None, || Worker(7)).restart(Restart::Transient);
/// let worker = supervisor::start_child(&node, "Elixir.Jobs.WorkerSup", spec).await?;
/// # Ok(()) }
/// ```
pub async fn start_dynamic(node: &Node, name: Option<&str>) -> Result<Pid, StartError> {
    start_dynamic_with(node, name, DynamicSupervisor::new()).await
}

/// [`start_dynamic`] with `DynamicSupervisor.start_link/1`'s options:
/// `supervisor::start_dynamic_with(&node, Some("Elixir.Jobs.Workers"),
/// DynamicSupervisor::new().max_children(100))`.
pub async fn start_dynamic_with(
    node: &Node,
    name: Option<&str>,
    options: DynamicSupervisor,
) -> Result<Pid, StartError> {
    if let Some(holder) = name.and_then(|n| node.whereis(n)) {
        return Err(StartError::taken(Some(holder)));
    }
    let body = dynamic_body(
        node.user_pid(),
        name.map(str::to_owned),
        Flavor::Dynamic,
        options,
    );
    let pid = match name {
        Some(name) => node.spawn_registered(name, body).map_err(StartError)?,
        None => node.spawn(body),
    };
    super::applications::add_server(node, pid, Shutdown::Infinity);
    say_when_it_ends(node, pid, name);
    Ok(pid)
}

/// `DynamicSupervisor.start_child(supervisor, spec)`: starts `spec` under a dynamic
/// supervisor of this node ([`start_dynamic`], [`ChildSpec::dynamic_supervisor`]) and
/// returns its pid once it has started (a GenServer's `init` has run). The `Err` is why
/// it did not start (its `init` failed, its name is taken; [`StartError::ignored`] when
/// its `init` returned [`Next::Ignore`], Elixir's `:ignore`), or
/// `:noproc` when there is no such supervisor; a child spec holds Rust code, so the
/// supervisor is on this node.
pub async fn start_child(
    node: &Node,
    supervisor: impl Into<crate::process::Dest>,
    spec: ChildSpec,
) -> Result<Pid, StartError> {
    let to = supervisor.into();
    let local = match &to {
        crate::process::Dest::Pid(pid) => node.is_local(&pid.node),
        crate::process::Dest::RemoteName(_, at) => node.is_local(at),
        _ => true,
    };
    if !local {
        return Err(StartError(Exception::argument_error(
            "a Rust child spec is started under a supervisor of this node, not of another",
        )));
    }
    let request = super::task_supervisor::hand_over(node, spec);
    // Taken back however the call ends, a dropped call too (the supervisor that took
    // it leaves nothing to take back).
    struct TakeBack<'a>(&'a Node, &'a Term);
    impl Drop for TakeBack<'_> {
        fn drop(&mut self) {
            drop(super::task_supervisor::take_back(self.0, self.1));
        }
    }
    let _taken_back = TakeBack(node, &request);
    let replied = node.call(to, &request, None).await;
    let reply = match replied {
        Ok(reply) => reply,
        // Not taken: the supervisor was not there (or not a dynamic one).
        Err(e) => return Err(StartError(Exception::Exit(e.kind().reason()))),
    };
    match reply.as_tuple() {
        Some([ok, Term::Pid(pid), ..]) if ok.is_atom("ok") => Ok(*pid),
        Some([error, reason]) if error.is_atom("error") => {
            Err(StartError(Exception::Exit(reason.clone())))
        }
        _ => Err(StartError(Exception::Exit(reply))),
    }
}

/// `DynamicSupervisor.terminate_child(supervisor, pid)` from Rust code: stops the child
/// as its `shutdown` says (it is not started again); `Ok(false)` when `pid` is not a
/// child of it (`{:error, :not_found}`). For a supervisor of this node or a BEAM one.
/// `Supervisor.terminate_child(supervisor, id)` with an id (`"counter"`): the child is
/// stopped and its spec kept, for [`restart_child`].
pub async fn terminate_child(
    node: &Node,
    supervisor: impl Into<crate::process::Dest>,
    child: impl Into<ChildRef>,
) -> Result<bool, super::gen_server::CallError> {
    let request = tuple(vec![atom("terminate_child"), child.into().to_term()]);
    Ok(node.call(supervisor, request, None).await?.is_atom("ok"))
}

/// A child of a supervisor: its pid (a `DynamicSupervisor`'s children have no other
/// name) or its id (a `Supervisor`'s, `"counter"`).
#[derive(Debug, Clone, PartialEq)]
pub enum ChildRef {
    /// The child's pid.
    Pid(Pid),
    /// The child's id in its spec (an atom: `"counter"` is `:counter`).
    Id(String),
}

impl ChildRef {
    fn to_term(&self) -> Term {
        match self {
            ChildRef::Pid(pid) => Term::Pid(*pid),
            ChildRef::Id(id) => atom(id),
        }
    }
}

impl From<Pid> for ChildRef {
    fn from(pid: Pid) -> Self {
        ChildRef::Pid(pid)
    }
}

impl From<&str> for ChildRef {
    fn from(id: &str) -> Self {
        ChildRef::Id(id.to_owned())
    }
}

/// `Supervisor.restart_child(supervisor, id)`: starts again a child that
/// [`terminate_child`] stopped. `Ok(Ok(Some(pid)))`; `Ok(Ok(None))` for `{:ok,
/// :undefined}`, a child whose `init` returned `:ignore` ([`Next::Ignore`]);
/// or `Ok(Err(reason))` with the supervisor's `{:error, reason}`: `:running`,
/// `:restarting`, `:not_found`, or why it did not start.
pub async fn restart_child(
    node: &Node,
    supervisor: impl Into<crate::process::Dest>,
    id: &str,
) -> Result<Result<Option<Pid>, Term>, super::gen_server::CallError> {
    let request = tuple(vec![atom("restart_child"), atom(id)]);
    let reply = node.call(supervisor, request, None).await?;
    Ok(match reply.as_tuple() {
        Some([ok, Term::Pid(pid), ..]) if ok.is_atom("ok") => Ok(Some(*pid)),
        Some([ok, undefined, ..]) if ok.is_atom("ok") && undefined.is_atom("undefined") => Ok(None),
        Some([error, reason]) if error.is_atom("error") => Err(reason.clone()),
        _ => Err(reply),
    })
}

/// `Supervisor.delete_child(supervisor, id)`: forgets the spec of a child that is not
/// running. `Ok(Err(reason))` with the supervisor's `{:error, reason}`: `:running`,
/// `:restarting`, `:not_found`.
pub async fn delete_child(
    node: &Node,
    supervisor: impl Into<crate::process::Dest>,
    id: &str,
) -> Result<Result<(), Term>, super::gen_server::CallError> {
    let request = tuple(vec![atom("delete_child"), atom(id)]);
    let reply = node.call(supervisor, request, None).await?;
    Ok(match reply.as_tuple() {
        _ if reply.is_atom("ok") => Ok(()),
        Some([error, reason]) if error.is_atom("error") => Err(reason.clone()),
        _ => Err(reply),
    })
}

/// What [`count_children`] counts, as `Supervisor.count_children/1` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// Every child, running or not.
    pub specs: usize,
    /// The children running.
    pub active: usize,
    /// The children that are supervisors.
    pub supervisors: usize,
    /// The children that are workers.
    pub workers: usize,
}

/// `Supervisor.count_children(supervisor)` (or `DynamicSupervisor`'s), for a supervisor
/// of this node or a BEAM one.
pub async fn count_children(
    node: &Node,
    supervisor: impl Into<crate::process::Dest>,
) -> Result<ChildCounts, super::gen_server::CallError> {
    let reply = node.call(supervisor, atom("count_children"), None).await?;
    let mut counts = ChildCounts::default();
    for entry in reply.as_list().unwrap_or(&[]) {
        if let Some([key, n]) = entry.as_tuple_n(2) {
            let n = n.as_int().map_or(0, |n| n.max(0) as usize);
            match key.as_atom() {
                Some("specs") => counts.specs = n,
                Some("active") => counts.active = n,
                Some("supervisors") => counts.supervisors = n,
                Some("workers") => counts.workers = n,
                _ => {}
            }
        }
    }
    Ok(counts)
}

/// `Supervisor.which_children(supervisor)` (or `DynamicSupervisor`'s) from Rust code:
/// a `{id, child, type, modules}` tuple for each child, as a BEAM caller gets them.
pub async fn which_children(
    node: &Node,
    supervisor: impl Into<crate::process::Dest>,
) -> Result<Vec<Term>, super::gen_server::CallError> {
    let children = node.call(supervisor, atom("which_children"), None).await?;
    Ok(children.as_list().map(<[Term]>::to_vec).unwrap_or_default())
}

/// The code of a dynamic supervisor's process under `parent`, named in its logs by
/// `name` (else its pid).
fn dynamic_body(
    parent: Pid,
    name: Option<String>,
    flavor: Flavor,
    options: DynamicSupervisor,
) -> impl FnOnce(Process) -> BoxFuture<'static, Result<(), Exception>> + Send + 'static {
    move |p: Process| {
        let label = name.unwrap_or_else(|| p.pid().inspect().to_string());
        Box::pin(super::task_supervisor::supervise(
            p, parent, label, flavor, options,
        ))
    }
}

/// A `DynamicSupervisor`'s options (`DynamicSupervisor.start_link/1`): at most
/// `max_restarts` restarts in `max_seconds` (3 in 5 s by default) before it gives up,
/// and at most `max_children` children (no limit by default; beyond it,
/// [`start_child`] is `{:error, :max_children}`, as from Elixir).
#[derive(Clone, Copy, Debug)]
pub struct DynamicSupervisor {
    pub(crate) max_restarts: usize,
    pub(crate) max_seconds: Duration,
    pub(crate) max_children: Option<usize>,
}

impl Default for DynamicSupervisor {
    fn default() -> Self {
        DynamicSupervisor {
            max_restarts: super::task_supervisor::MAX_RESTARTS,
            max_seconds: super::task_supervisor::MAX_SECONDS,
            max_children: None,
        }
    }
}

impl DynamicSupervisor {
    /// The defaults: 3 restarts in 5 s, children without limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// `max_restarts:` and `max_seconds:`.
    pub fn max_restarts(mut self, max_restarts: usize, max_seconds: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.max_seconds = max_seconds;
        self
    }

    /// `max_children:`.
    pub fn max_children(mut self, max_children: usize) -> Self {
        self.max_children = Some(max_children);
        self
    }
}

/// A supervisor: a GenServer that traps exits.
pub struct Supervisor {
    strategy: Strategy,
    intensity: Intensity,
    /// In start order.
    children: Vec<Child>,
    /// `{local, Name}`, or `{Pid, Module}` for one without a name: as its state's
    /// record names it (set in `init`).
    name: Term,
}

struct Child {
    spec: ChildSpec,
    /// `None` while stopped (by `terminate_child`, or in a restart).
    pid: Option<Pid>,
}

impl Child {
    /// supervisor.erl's `#child{}` record.
    fn child_record(&self) -> Term {
        let spec = &self.spec;
        tuple(vec![
            atom("child"),
            self.pid.map_or(atom("undefined"), Term::Pid),
            atom(&spec.id),
            spec.mfargs(),
            atom(spec.restart.name()),
            atom("false"),
            spec.shutdown.to_term(),
            atom(if spec.supervisor {
                "supervisor"
            } else {
                "worker"
            }),
            list(spec.modules.map(Term::Atom).into_iter().collect()),
        ])
    }
}

/// `function_clause` raised in supervisor.erl's `Function` (at `line`) for `args`,
/// as the BEAM's supervisor raises it for a call or cast it has no clause for.
fn no_clause(function: &str, args: Vec<Term>, line: i64) -> Exception {
    let location = crate::node::location("supervisor.erl", line);
    Exception::Error {
        reason: atom("function_clause"),
        stacktrace: vec![tuple(vec![
            atom("supervisor"),
            atom(function),
            list(args),
            location,
        ])],
    }
}

impl Supervisor {
    /// A supervisor with Elixir's default intensity (3 restarts in 5 s), to start with
    /// [`gen_server::start`] or as a child.
    pub fn new(strategy: Strategy, children: Vec<ChildSpec>) -> Self {
        Supervisor {
            strategy,
            intensity: Intensity::new(3, Duration::from_secs(5)),
            children: children
                .into_iter()
                .map(|spec| Child { spec, pid: None })
                .collect(),
            name: atom("undefined"),
        }
    }

    /// `max_restarts` in `max_seconds`: more, and the supervisor gives up.
    pub fn max_restarts(mut self, max_restarts: usize, max_seconds: Duration) -> Self {
        self.intensity = Intensity::new(max_restarts, max_seconds);
        self
    }

    /// The same supervisor, not started: its strategy, children and intensity.
    fn fresh(&self) -> Self {
        let children = self.children.iter().map(|c| c.spec.clone()).collect();
        Supervisor::new(self.strategy, children)
            .max_restarts(self.intensity.max(), self.intensity.period())
    }

    /// Starts the children from `from` on, in order; on a failure, stops those it
    /// started (in reverse) and returns the reason.
    /// A child that ignores its start is kept with no process, and a temporary one is
    /// dropped, as supervisor.erl does.
    async fn start_from(&mut self, p: &mut Process, from: usize) -> Result<(), Term> {
        let mut i = from;
        while i < self.children.len() {
            let start = self.children[i].spec.start.clone();
            match start(p).await {
                Ok(None) if self.children[i].spec.restart == Restart::Temporary => {
                    self.children.remove(i);
                    continue;
                }
                Ok(pid) => self.children[i].pid = pid,
                Err(e) => {
                    let id = self.children[i].spec.id.clone();
                    self.stop_from(p, from).await;
                    return Err(tuple(vec![
                        atom("shutdown"),
                        tuple(vec![
                            atom("failed_to_start_child"),
                            atom(&id),
                            e.exit_reason(),
                        ]),
                    ]));
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Stops the children from `from` on, the last started first.
    async fn stop_from(&mut self, p: &mut Process, from: usize) {
        for child in self.children[from..].iter_mut().rev() {
            if let Some(pid) = child.pid.take() {
                stop_child(p, &pid, child.spec.shutdown).await;
            }
        }
    }

    /// A child exited: restart it, or them, as the strategy says. `Err` when the
    /// intensity is exceeded (the supervisor exits `:shutdown`).
    async fn child_exited(
        &mut self,
        p: &mut Process,
        pid: &Pid,
        reason: &Term,
    ) -> Result<(), Exception> {
        let Some(i) = self
            .children
            .iter()
            .position(|c| c.pid.as_ref() == Some(pid))
        else {
            return Ok(());
        };
        self.children[i].pid = None;
        let restart = match self.children[i].spec.restart {
            Restart::Permanent => true,
            Restart::Transient => !is_normal_exit(reason),
            Restart::Temporary => false,
        };
        if !restart {
            if self.children[i].spec.restart == Restart::Temporary {
                self.children.remove(i);
            }
            return Ok(());
        }
        loop {
            if !self.intensity.add_restart() {
                tracing::error!(
                    supervisor = %p.pid().inspect(),
                    "Supervisor {}: reached_max_restart_intensity (child {} exited: {}); shutting down",
                    shown_name(p),
                    self.children[i].spec.id,
                    Short(reason)
                );
                self.stop_from(p, 0).await;
                return Err(Exception::Exit(atom("shutdown")));
            }
            let first = match self.strategy {
                Strategy::OneForOne => {
                    let start = self.children[i].spec.start.clone();
                    match start(p).await {
                        Ok(pid) => {
                            self.children[i].pid = pid;
                            return Ok(());
                        }
                        Err(_) => continue,
                    }
                }
                Strategy::OneForAll => 0,
                Strategy::RestForOne => i,
            };
            self.stop_from(p, first).await;
            if self.start_from(p, first).await.is_ok() {
                return Ok(());
            }
        }
    }

    fn find(&self, id: &Term) -> Option<usize> {
        let id = id.as_atom()?;
        self.children.iter().position(|c| c.spec.id == id)
    }

    /// `supervisor:start_child/2` of a child spec (a map, or the old 6-tuple), as
    /// supervisor.erl answers it: a spec it cannot read refused as `check_childspec`
    /// refuses it, an id already there as such, and else the start, which names BEAM
    /// code (`{M, F, A}`) this node cannot run: it fails as `catch apply(M, F, A)` of a
    /// function that does not exist, `{error, {{'EXIT', {undef, Stack}}, Child}}`
    /// with the child as supervisor.erl's record holds it.
    fn start_beam_child(&self, p: &Process, spec: &Term) -> Term {
        let error = |reason: Term| tuple(vec![atom("error"), reason]);
        // The optional fields: restart, significant, shutdown, type, modules.
        let (id, start, [restart, significant, shutdown, kind, modules]) = match spec {
            Term::Map(m) => {
                let get = |k: &str| m.map.get(&atom(k)).cloned();
                let Some(id) = get("id") else {
                    return error(atom("missing_id"));
                };
                let Some(start) = get("start") else {
                    return error(atom("missing_start"));
                };
                let optional = ["restart", "significant", "shutdown", "type", "modules"];
                (id, start, optional.map(get))
            }
            _ => match spec.as_tuple_n(6) {
                Some(e) => {
                    let f = |i: usize| Some(e[i].clone());
                    (e[0].clone(), e[1].clone(), [f(2), None, f(3), f(4), f(5)])
                }
                None => return error(tuple(vec![atom("invalid_child_spec"), spec.clone()])),
            },
        };
        let mfa = start
            .as_tuple_n(3)
            .and_then(|e| Some((e[0].as_atom()?, e[1].as_atom()?, e[2].as_list()?)));
        let Some((m, f, a)) = mfa else {
            return error(tuple(vec![atom("invalid_mfa"), start.clone()]));
        };
        if let Some(i) = self.find(&id) {
            return error(match self.children[i].pid {
                Some(pid) => tuple(vec![atom("already_started"), Term::Pid(pid)]),
                None => atom("already_present"),
            });
        }
        let undef = Exception::undef(m, f, a.to_vec()).exit_reason();
        tracing::error!(
            supervisor = %p.pid().inspect(),
            "Child {} of Supervisor {} failed to start\n** (exit) {}",
            crate::term::Elixir(&id),
            shown_name(p),
            Exception::format_exit(&undef)
        );
        let kind = kind.unwrap_or_else(|| atom("worker"));
        let shutdown = shutdown.unwrap_or_else(|| match kind.is_atom("supervisor") {
            true => atom("infinity"),
            false => Term::from(5000),
        });
        let child = tuple(vec![
            atom("child"),
            atom("undefined"),
            id,
            start.clone(),
            restart.unwrap_or_else(|| atom("permanent")),
            significant.unwrap_or_else(|| atom("false")),
            shutdown,
            kind,
            modules.unwrap_or_else(|| list(vec![atom(m)])),
        ]);
        error(tuple(vec![tuple(vec![atom("EXIT"), undef]), child]))
    }

    /// The calls `supervisor.erl` answers.
    async fn supervisor_call(&mut self, p: &mut Process, request: &Term) -> Option<Term> {
        let ok = atom("ok");
        let not_found = || tuple(vec![atom("error"), atom("not_found")]);
        if let Some(what) = request.as_atom() {
            return match what {
                // Last started first, as supervisor.erl keeps them.
                "which_children" => Some(list(
                    self.children
                        .iter()
                        .rev()
                        .map(|c| {
                            tuple(vec![
                                atom(&c.spec.id),
                                c.pid.map_or(atom("undefined"), Term::Pid),
                                atom(if c.spec.supervisor {
                                    "supervisor"
                                } else {
                                    "worker"
                                }),
                                list(c.spec.modules.map(Term::Atom).into_iter().collect()),
                            ])
                        })
                        .collect(),
                )),
                "count_children" => {
                    let count = |f: &dyn Fn(&Child) -> bool| {
                        int(self.children.iter().filter(|c| f(c)).count() as i64)
                    };
                    Some(list(vec![
                        tuple(vec![atom("specs"), count(&|_| true)]),
                        tuple(vec![atom("active"), count(&|c| c.pid.is_some())]),
                        tuple(vec![atom("supervisors"), count(&|c| c.spec.supervisor)]),
                        tuple(vec![atom("workers"), count(&|c| !c.spec.supervisor)]),
                    ]))
                }
                _ => None,
            };
        }
        let e = request.as_tuple()?;
        let (what, arg) = match e {
            [what, arg] => (what.as_atom()?, arg),
            _ => return None,
        };
        match what {
            "terminate_child" => Some(match self.find(arg) {
                Some(i) => {
                    if let Some(pid) = self.children[i].pid.take() {
                        stop_child(p, &pid, self.children[i].spec.shutdown).await;
                    }
                    if self.children[i].spec.restart == Restart::Temporary {
                        self.children.remove(i);
                    }
                    ok
                }
                None => not_found(),
            }),
            "restart_child" => Some(match self.find(arg) {
                Some(i) if self.children[i].pid.is_some() => {
                    tuple(vec![atom("error"), atom("running")])
                }
                Some(i) => {
                    let start = self.children[i].spec.start.clone();
                    match start(p).await {
                        Ok(pid) => {
                            self.children[i].pid = pid;
                            tuple(vec![ok, pid.map_or(atom("undefined"), Term::Pid)])
                        }
                        Err(e) => tuple(vec![atom("error"), e.exit_reason()]),
                    }
                }
                None => not_found(),
            }),
            "delete_child" => Some(match self.find(arg) {
                Some(i) if self.children[i].pid.is_some() => {
                    tuple(vec![atom("error"), atom("running")])
                }
                Some(i) => {
                    self.children.remove(i);
                    ok
                }
                None => not_found(),
            }),
            // `supervisor:get_childspec/2` by id (a pid is `not_found`, as for a
            // supervisor that is not `simple_one_for_one`): the spec as a map. Its
            // `start` is Rust code: `{Module, :start_link, []}` names the module the
            // child is known by (`rust` for a plain process).
            "get_childspec" => Some(match self.find(arg) {
                Some(i) => tuple(vec![ok, self.children[i].spec.to_map()]),
                None => not_found(),
            }),
            "start_child" => Some(self.start_beam_child(p, arg)),
            // `start_child` (Rust's `DynamicSupervisor.start_child/2`) to a supervisor
            // that is not dynamic: refused as supervisor.erl refuses what
            // `DynamicSupervisor.start_child/2` sends it, and the supervisor goes on.
            super::task_supervisor::START_HANDED => {
                let spec = super::task_supervisor::take_back(p.node(), request);
                let mfa = spec.map_or_else(|| arg.clone(), |s| s.mfa());
                let invalid = tuple(vec![atom("invalid_child_spec"), mfa]);
                Some(tuple(vec![atom("error"), invalid]))
            }
            _ => None,
        }
    }
}

impl GenServer for Supervisor {
    /// A supervisor waits for its children, each as its own `shutdown` says.
    fn shutdown() -> Shutdown {
        Shutdown::Infinity
    }

    async fn init(&mut self, p: &mut Process) -> Result<Next, Exception> {
        p.trap_exit(true);
        self.name = match p.registered_name() {
            Some(name) => tuple(vec![atom("local"), atom(&name)]),
            None => tuple(vec![Term::Pid(p.pid()), atom(SUPERVISOR_MODULE)]),
        };
        match self.start_from(p, 0).await {
            Ok(()) => Ok(Next::Wait),
            Err(reason) => Ok(Next::Stop(reason)),
        }
    }

    async fn handle_call(
        &mut self,
        request: Term,
        from: &Caller,
        p: &mut Process,
    ) -> Result<Reply, Exception> {
        match self.supervisor_call(p, &request).await {
            Some(reply) => Ok(Reply::reply(reply)),
            // No clause of supervisor:handle_call/3 matches: it crashes, as on the BEAM.
            None => {
                let from = tuple(vec![Term::Pid(from.pid), from.tag.clone()]);
                Err(no_clause(
                    "handle_call",
                    vec![request, from, self.state()],
                    435,
                ))
            }
        }
    }

    async fn handle_cast(&mut self, request: Term, _p: &mut Process) -> Result<Next, Exception> {
        // supervisor:handle_cast/2 takes only its own `try_again_restart`: any cast
        // crashes it, as on the BEAM.
        Err(no_clause("handle_cast", vec![request, self.state()], 589))
    }

    /// supervisor.erl's `#state{}` record, as OTP 25 to 29 have it:
    /// `:supervisor.get_callback_module/1` reads the module from it.
    fn state(&self) -> Term {
        let children = self.children.iter().rev();
        let ids = list(children.clone().map(|c| atom(&c.spec.id)).collect());
        let db = crate::term::map(
            children
                .clone()
                .map(|c| (atom(&c.spec.id), c.child_record()))
                .collect::<Vec<_>>(),
        );
        let intensity = int(self.intensity.max() as i64);
        let period = int(self.intensity.period().as_secs() as i64);
        let flags = crate::term::map(vec![
            (atom("intensity"), intensity.clone()),
            (atom("period"), period.clone()),
            (atom("strategy"), atom(self.strategy.name())),
        ]);
        let specs = list(
            self.children
                .iter()
                .map(|c| {
                    crate::term::map(vec![
                        (atom("id"), atom(&c.spec.id)),
                        (atom("start"), c.spec.mfargs()),
                    ])
                })
                .collect(),
        );
        tuple(vec![
            atom("state"),
            self.name.clone(),
            atom(self.strategy.name()),
            tuple(vec![ids, db]),
            atom("undefined"),
            intensity,
            period,
            crate::term::nil(),
            int(0),
            atom("never"),
            atom(SUPERVISOR_MODULE),
            tuple(vec![atom("ok"), tuple(vec![flags, specs])]),
        ])
    }

    async fn handle_info(&mut self, message: Term, p: &mut Process) -> Result<Next, Exception> {
        if let Some((pid, reason)) = exit_message(&message) {
            let (pid, reason) = (*pid, reason.clone());
            self.child_exited(p, &pid, &reason).await?;
        } else {
            // As supervisor.erl's handle_info/2.
            tracing::error!(
                supervisor = %p.pid().inspect(),
                "Supervisor received unexpected message: {}",
                Short(&message)
            );
        }
        Ok(Next::Wait)
    }

    async fn terminate(&mut self, _reason: &Term, p: &mut Process) {
        self.stop_from(p, 0).await;
    }
}

/// Restarts in the last period, against the most allowed (`:max_restarts` in
/// `:max_seconds`).
pub(crate) struct Intensity {
    max: usize,
    period: Duration,
    /// When each restart was, in whole seconds of the node's monotonic clock.
    restarts: VecDeque<u64>,
}

impl Intensity {
    pub(crate) fn new(max: usize, period: Duration) -> Self {
        Intensity {
            max,
            period,
            restarts: VecDeque::new(),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn period(&self) -> Duration {
        self.period
    }

    /// Counts a restart now; false when that is one too many. In whole seconds, as
    /// `supervisor.erl`'s `add_restart/1` counts them (`erlang:monotonic_time(1)`, a
    /// restart kept while `R >= Now - Period`): 4 restarts within 5.1 s are too many
    /// for `max_restarts: 3, max_seconds: 5` when the first and the last are 5 whole
    /// seconds apart on that clock, as for an Elixir supervisor.
    pub(crate) fn add_restart(&mut self) -> bool {
        self.add_restart_at(monotonic_seconds())
    }

    fn add_restart_at(&mut self, now: u64) -> bool {
        let threshold = now.saturating_sub(self.period.as_secs());
        while self.restarts.front().is_some_and(|&r| r < threshold) {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.max
    }
}

/// Whole seconds on a monotonic clock whose origin is the first time it is asked,
/// `erlang:monotonic_time(1)` for the restart intensity.
fn monotonic_seconds() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_secs()
}

/// `normal`, `shutdown` and `{shutdown, _}`: the exits a transient child is not
/// restarted after.
pub(crate) fn is_normal_exit(reason: &Term) -> bool {
    reason.is_atom("normal")
        || reason.is_atom("shutdown")
        || reason
            .as_tuple_n(2)
            .is_some_and(|e| e[0].is_atom("shutdown"))
}

/// Stops one child as `supervisor.erl` does: `shutdown`, then `kill` once its shutdown
/// time has passed; returns when the child is gone.
/// Stops every child at once, as `DynamicSupervisor` terminates its children: each gets
/// its exit signal (`kill` for `brutal_kill`, else `shutdown`), then the supervisor
/// waits for them all, killing each one still there when its own `shutdown` time is up.
pub(crate) async fn stop_children(p: &mut Process, children: Vec<(Pid, Shutdown)>) {
    let now = Instant::now();
    let mut waiting: std::collections::HashMap<Pid, Option<Instant>> = Default::default();
    for (pid, shutdown) in children {
        let deadline = match shutdown {
            Shutdown::BrutalKill => {
                p.exit(&pid, atom("kill"));
                None
            }
            Shutdown::Timeout(t) => {
                p.exit(&pid, atom("shutdown"));
                Some(now + t)
            }
            Shutdown::Infinity => {
                p.exit(&pid, atom("shutdown"));
                None
            }
        };
        waiting.insert(pid, deadline);
    }
    while !waiting.is_empty() {
        let next = waiting.values().flatten().min().copied();
        let timeout = next.map(|d| d.saturating_duration_since(Instant::now()));
        let ended = p
            .receive_match(timeout, |m| {
                exit_message(m).is_some_and(|(from, _)| waiting.contains_key(from))
            })
            .await;
        match ended.as_ref().and_then(exit_message) {
            Some((from, _)) => {
                waiting.remove(from);
            }
            None => {
                let now = Instant::now();
                for (pid, deadline) in waiting.iter_mut() {
                    if deadline.is_some_and(|d| d <= now) {
                        p.exit(pid, atom("kill"));
                        *deadline = None;
                    }
                }
            }
        }
    }
}

pub(crate) async fn stop_child(p: &mut Process, pid: &Pid, shutdown: Shutdown) {
    let timeout = match shutdown {
        Shutdown::BrutalKill => {
            p.exit(pid, atom("kill"));
            None
        }
        Shutdown::Timeout(t) => {
            p.exit(pid, atom("shutdown"));
            Some(t)
        }
        Shutdown::Infinity => {
            p.exit(pid, atom("shutdown"));
            None
        }
    };
    let is_its_exit = |m: &Term| exit_message(m).is_some_and(|(from, _)| from == pid);
    if p.receive_match(timeout, is_its_exit).await.is_none() {
        p.exit(pid, atom("kill"));
        p.receive_match(None, is_its_exit).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `supervisor.erl`'s arithmetic: restarts at seconds 0, 1, 5 and 5 (a span of 5.1 s
    /// can be that) are 4 within `Now - 5`, one too many for 3 in 5; at 0, 1, 5 and 6
    /// the first has left the window.
    #[test]
    fn restarts_are_counted_in_whole_seconds_as_otp_counts_them() {
        let mut i = Intensity::new(3, Duration::from_secs(5));
        assert!(i.add_restart_at(100));
        assert!(i.add_restart_at(101));
        assert!(i.add_restart_at(105));
        assert!(!i.add_restart_at(105));
        let mut i = Intensity::new(3, Duration::from_secs(5));
        for at in [100, 101, 105, 106] {
            assert!(i.add_restart_at(at), "{at}");
        }
        let mut i = Intensity::new(0, Duration::from_secs(5));
        assert!(!i.add_restart_at(7));
    }
}
