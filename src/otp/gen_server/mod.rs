//! GenServer, as in Elixir: a process that keeps a state and answers calls, casts and
//! plain messages one at a time, with `init`, `handle_continue`, timeouts, `terminate`
//! and the `sys` requests a BEAM user sends (`:sys.get_state/1`, `:sys.get_status/1`,
//! `:sys.suspend/1`, `GenServer.stop/3`). Its callbacks are `async`: a handler can await
//! a call to another node, an erpc or I/O.
//!
//! ```no_run
//! use cnode::term::{Inspect, IntoTerm, Match, Term};
//! use cnode::{Exception, Caller, GenServer, Next, Node, Process, Reply};
//!
//! /// `GenServer.call({:counter, :mynode@localhost}, :get)` answers the count;
//! /// `GenServer.cast({:counter, :mynode@localhost}, :inc)` adds one.
//! struct Counter {
//!     count: i64,
//! }
//!
//! impl GenServer for Counter {
//!     async fn handle_call(&mut self, request: Term, _from: &Caller, _p: &mut Process)
//!         -> Result<Reply, Exception> {
//!         match request.as_atom() {
//!             Some("get") => Ok(Reply::reply(self.count.into_term())),
//!             _ => Err(Exception::argument_error(format!("unknown call {}", request.inspect()))),
//!         }
//!     }
//!
//!     async fn handle_cast(&mut self, request: Term, _p: &mut Process)
//!         -> Result<Next, Exception> {
//!         if request.is_atom("inc") {
//!             self.count += 1;
//!         }
//!         Ok(Next::Wait)
//!     }
//!
//!     fn state(&self) -> Term {
//!         self.count.into_term()
//!     }
//! }
//!
//! # async fn demo(node: Node) -> Result<(), Exception> {
//! let pid = cnode::gen_server::start(&node, Some("counter"), Counter { count: 0 }).await?;
//! # Ok(()) }
//! ```
//!
//! Requests and replies can be Rust types, converted with serde in the shapes Elixir
//! writes (see [`term`](mod@crate::term)): `request.decode::<Request>()` and `to_term(&reply)`.

mod call;

pub(crate) use call::parse_request;
pub(crate) use call::{is_malformed_call, take_call};
pub use call::{parse_call, parse_cast, CallError, CallErrorKind, Caller};

use super::sys;
use crate::node::{caught, Node};
use crate::process::{Exception, Process};
use crate::term::Inspect;
use crate::term::{atom, tuple, Atom, Pid, Term};
use std::future::Future;
use std::time::Duration;
use tokio::sync::oneshot;

/// What the server does after a callback: the tail of Elixir's return tuples
/// (`{:noreply, state}`, `{:noreply, state, timeout}`, `{:noreply, state, {:continue,
/// arg}}`, `{:stop, reason, state}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Wait for the next message.
    Wait,
    /// Wait for the next message, and call `handle_info(:timeout)` when none comes in
    /// this time.
    Timeout(Duration),
    /// Call `handle_continue(arg)` before taking the next message.
    Continue(Term),
    /// Call `terminate(reason)`, then exit with `reason`.
    Stop(Term),
    /// From `init` only, Elixir's `:ignore`: the server does not start and its process
    /// ends `normal`. [`start`] returns an `Err` whose [`ignored`](StartError::ignored)
    /// is true, and a supervisor keeps the child's spec with no process (`:undefined`),
    /// as for an Elixir child (a `:temporary` one is dropped). From any other callback
    /// it is a bad return value: the server stops with `{:bad_return_value, :ignore}`.
    Ignore,
}

/// What [`GenServer::handle_call`] answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `{:reply, reply, state}` (with [`Next::Wait`]), or with a timeout or a continue.
    Reply(Term, Next),
    /// `{:noreply, state}`: the reply comes later, from [`Caller::reply`] (or
    /// [`Caller::reply_from_node`] in a task of its own).
    /// `Reply::NoReply(Next::Stop(reason))` is `{:stop, reason, state}`: stop without
    /// answering (the caller's `GenServer.call` exits with `{reason, {GenServer, :call,
    /// ...}}`, as from Elixir).
    NoReply(Next),
    /// `{:stop, reason, reply, state}`: reply, then stop.
    Stop(Term, Term),
}

impl Reply {
    /// `{:reply, reply, state}`.
    #[allow(clippy::self_named_constructors)] // `Reply::reply(x)` reads as Elixir's tuple
    pub fn reply(reply: Term) -> Self {
        Reply::Reply(reply, Next::Wait)
    }

    /// `{:noreply, state}`.
    pub fn noreply() -> Self {
        Reply::NoReply(Next::Wait)
    }
}

/// A GenServer, as Elixir's behaviour of that name: the struct is its state, and each
/// callback may await. A callback that returns `Err` (or panics: `{rust_panic,
/// Message}`) crashes the server as a raise in an Elixir callback does: `terminate`
/// runs, the process exits with the exception, and a caller waiting in
/// `GenServer.call` exits with it. The exception's stack frame names the server's type
/// and the callback (see [`Exception::Error`]).
///
/// Callbacks run one at a time, in the server's own process ([`Process`]): to answer a
/// call while awaiting something long, return [`Reply::NoReply`] and answer from another
/// process with a clone of the [`Caller`].
pub trait GenServer: Send + Sized + 'static {
    /// `init/1`: runs in the new process before [`start`] returns; `Err` (or
    /// [`Next::Stop`]) makes `start` fail with that reason, and [`Next::Ignore`] is
    /// `:ignore`.
    fn init(
        &mut self,
        _process: &mut Process,
    ) -> impl Future<Output = Result<Next, Exception>> + Send {
        async { Ok(Next::Wait) }
    }

    /// `handle_call/3`. A server that is called must define it: by default, as with
    /// Elixir's `use GenServer`, a call stops the server with a `RuntimeError`
    /// (`attempted to call GenServer :ticker but no handle_call/3 clause was
    /// provided`), and the caller exits with it.
    fn handle_call(
        &mut self,
        _request: Term,
        _from: &Caller,
        process: &mut Process,
    ) -> impl Future<Output = Result<Reply, Exception>> + Send {
        let error = no_clause(process, "call", "handle_call/3");
        async move { Err(error) }
    }

    /// `handle_cast/2`. A server that is cast to must define it: by default, as with
    /// Elixir's `use GenServer`, a cast stops the server with a `RuntimeError`.
    fn handle_cast(
        &mut self,
        _request: Term,
        process: &mut Process,
    ) -> impl Future<Output = Result<Next, Exception>> + Send {
        let error = no_clause(process, "cast", "handle_cast/2");
        async move { Err(error) }
    }

    /// `handle_info/2`: any other message (`:timeout` after [`Next::Timeout`], a
    /// timer's message for periodic work: [`Process::send_after`]). By default logged
    /// and dropped, as Elixir's default does (`Counter :counter received unexpected
    /// message in handle_info/2: :hello`: the server's module, then its name or pid).
    fn handle_info(
        &mut self,
        message: Term,
        process: &mut Process,
    ) -> impl Future<Output = Result<Next, Exception>> + Send {
        let server = match process.registered_name() {
            Some(name) => atom(&name).inspect().to_string(),
            None => process.pid().inspect().to_string(),
        };
        async move {
            tracing::error!(
                "{} {server} received unexpected message in handle_info/2: {}",
                atom(Self::module()).inspect(),
                crate::term::Short(&message)
            );
            Ok(Next::Wait)
        }
    }

    /// `handle_continue/2`, after a callback returned [`Next::Continue`]. A server that
    /// continues must define it (Elixir's default raises too).
    fn handle_continue(
        &mut self,
        arg: Term,
        _process: &mut Process,
    ) -> impl Future<Output = Result<Next, Exception>> + Send {
        async move {
            Err(Exception::undef(
                "Elixir.GenServer",
                "handle_continue",
                vec![arg, atom("state")],
            ))
        }
    }

    /// `terminate/2`: the server is stopping with `reason` (a [`Next::Stop`], an error
    /// of a callback, `GenServer.stop/3`, or the exit of its parent while it traps
    /// exits).
    fn terminate(
        &mut self,
        _reason: &Term,
        _process: &mut Process,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The module this server is to BEAM users: in the stack frame of an exception a
    /// callback raises (`{Module, :handle_call, 3, [file: ..., line: ...]}`) and in
    /// its supervisor's `which_children/1`. By default the Rust type's path
    /// (`:"inventory::Inventory"`); a server Elixir code knows as a module says so:
    /// `fn module() -> &'static str { "Elixir.Inventory" }`.
    fn module() -> &'static str {
        std::any::type_name::<Self>()
    }

    /// The state as a term, for `:sys.get_state/1` and `:sys.get_status/1`, and for
    /// the `State` of the report a server whose group leader is on another node sends
    /// there when it fails. By default `:undefined`.
    fn state(&self) -> Term {
        atom("undefined")
    }

    /// How long it has to stop (`use GenServer, shutdown: 10_000`): as a child of a
    /// supervisor ([`ChildSpec::gen_server`](crate::supervisor::ChildSpec::gen_server)),
    /// and when the node stops, for one started by no process; past it, it is ended
    /// (exit signal `shutdown`, then `kill`). By default 5 s, as a worker's; a
    /// supervisor's is `Infinity`, so that its children stop as theirs say.
    fn shutdown() -> crate::otp::supervisor::Shutdown {
        crate::otp::supervisor::Shutdown::Timeout(Duration::from_secs(5))
    }
}

/// Why a GenServer (or a supervisor) did not start: the `{:error, reason}` of
/// `GenServer.start/3` (its `init` failed or stopped, or the name is taken), as a
/// [`std::error::Error`], so that `?` takes it into `anyhow::Error` or a
/// `Box<dyn Error>`. In a process body, `?` turns it back into that exit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("did not start: {0}")]
pub struct StartError(pub Exception);

impl StartError {
    /// The name is taken, by `holder` if it is still there: `{:already_started, pid}`.
    pub(crate) fn taken(holder: Option<Pid>) -> StartError {
        StartError(Exception::Exit(already_started(holder)))
    }

    /// The reason, as `{:error, reason}` would carry it.
    pub fn reason(&self) -> Term {
        self.0.exit_reason()
    }

    /// The server's `init` returned [`Next::Ignore`] (`:ignore`): it did not start, and
    /// nothing failed.
    pub fn ignored(&self) -> bool {
        use crate::term::Match;
        matches!(&self.0, Exception::Exit(reason) if reason.is_atom("ignore"))
    }

    /// The process that holds the name, for `{:error, {:already_started, pid}}`: what a
    /// caller matches to use the server already running.
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node, server: impl cnode::GenServer) -> Result<(), cnode::StartError> {
    /// let pid = match cnode::gen_server::start(&node, Some("counter"), server).await {
    ///     Ok(pid) => pid,
    ///     Err(e) => e.already_started().ok_or(e)?,
    /// };
    /// # Ok(()) }
    /// ```
    pub fn already_started(&self) -> Option<crate::term::Pid> {
        use crate::term::Match;
        let reason = self.reason();
        match reason.as_tuple_n(2) {
            Some([tag, Term::Pid(pid)]) if tag.is_atom("already_started") => Some(*pid),
            _ => None,
        }
    }
}

/// Starts `server` in a process of `node`, registered as `name` when given, and
/// returns once its `init` has: `GenServer.start/3`. The `Err` is the reason it did not
/// start: its `init` failed or stopped, or the name is taken (`{:already_started, pid}`).
pub async fn start<S: GenServer>(
    node: &Node,
    name: Option<&str>,
    server: S,
) -> Result<Pid, StartError> {
    start_named(
        node,
        None,
        ServerName::Local(name.map(str::to_owned)),
        server,
    )
    .await
}

/// [`start`], linked to `parent`: `GenServer.start_link/3` called by that process. The
/// server stops (with `terminate`) when its parent exits, if it traps exits.
pub async fn start_link<S: GenServer>(
    parent: &Process,
    name: Option<&str>,
    server: S,
) -> Result<Pid, StartError> {
    let name = ServerName::Local(name.map(str::to_owned));
    start_named(parent.node(), Some(parent), name, server).await
}

/// [`start`] with a `global` name: `GenServer.start(module, arg, name: {:global,
/// name})`. The server registers as `name` on every node of the cluster
/// ([`Node::register_global`]) before its `init`, so Elixir code reaches it as
/// `{:global, name}` from any node; when the name is taken, `init` does not run and the
/// `Err` is `{:already_started, pid}`. The name goes when the server ends.
///
/// ```no_run
/// # async fn demo(node: cnode::Node, leader: impl cnode::GenServer) {
/// use cnode::term::atom;
/// // GenServer.start(Leader, [], name: {:global, MyApp.Leader})
/// let pid = cnode::gen_server::start_global(&node, atom("Elixir.MyApp.Leader"), leader).await;
/// # }
/// ```
pub async fn start_global<S: GenServer>(
    node: &Node,
    name: Term,
    server: S,
) -> Result<Pid, StartError> {
    start_named(node, None, ServerName::Global(name), server).await
}

/// [`start_global`], linked to `parent`: `GenServer.start_link(module, arg, name:
/// {:global, name})` called by that process.
pub async fn start_link_global<S: GenServer>(
    parent: &Process,
    name: Term,
    server: S,
) -> Result<Pid, StartError> {
    start_named(
        parent.node(),
        Some(parent),
        ServerName::Global(name),
        server,
    )
    .await
}

/// `GenServer.stop(server, reason, timeout)`: asks the server to stop with `reason`
/// and returns once it has ended. Its `terminate` runs first (a supervisor's stops its
/// children, the last started first); `timeout` bounds the wait (a `Duration`, or
/// `None` for `:infinity`, GenServer's default). `server` is a pid, a name of this node or
/// `{name, node}`. It runs in a process of its own, so plain Rust code and processes
/// call it alike; a supervisor stops the same way (`Supervisor.stop/3`).
///
/// The `Err` is a [`CallError`] as for a call: its [`kind`](CallError::kind) `NoProc`
/// (no such process), `Timeout`, or `Exit` with the reason the server ended with when
/// it is not `reason`, and its reason the exit `GenServer.stop` exits its caller with,
/// `{why, {GenServer, :stop, [server, reason, timeout]}}`.
///
/// ```no_run
/// # async fn demo(node: cnode::Node) -> Result<(), cnode::Exception> {
/// use cnode::term::atom;
/// cnode::gen_server::stop(&node, "counter", atom("normal"), None).await?;
/// # Ok(()) }
/// ```
pub async fn stop(
    node: &Node,
    server: impl Into<crate::process::Dest>,
    reason: Term,
    timeout: impl Into<Option<Duration>>,
) -> Result<(), CallError> {
    let (to, timeout) = (server.into(), timeout.into());
    let failed = |why: Term, to: &crate::process::Dest, reason: Term| {
        CallError::stop(CallErrorKind::of(&why), to, reason, timeout)
    };
    if !super::calls::registered(node, &to) {
        return Err(failed(atom("noproc"), &to, reason));
    }
    let (asked, shown) = (reason.clone(), to.clone());
    let stopped = node
        .run_process(
            move |mut p| async move { super::calls::stop(&mut p, to, asked, timeout).await },
        )
        .await;
    match stopped {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => Err(failed(why, &shown, reason)),
        // The process making the stop ended first (the node stopping).
        Err(ended) => Err(failed(ended.exit_reason(), &shown, reason)),
    }
}

/// How a server is registered: under a name of its node (or none), or in `global`.
#[derive(Clone)]
pub(crate) enum ServerName {
    Local(Option<String>),
    Global(Term),
}

/// `gen:start`: the server's process, linked to `parent` when given, registered under
/// `name` (`gen:name_register/1`: a local name as the process is made, a `global` one by
/// the process before its `init`), then the server; returns once `init` has.
pub(crate) async fn start_named<S: GenServer>(
    node: &Node,
    parent: Option<&Process>,
    name: ServerName,
    server: S,
) -> Result<Pid, StartError> {
    start_from(node, parent.map(|p| (p, true)), name, server).await
}

/// [`start_named`] by `starter` when given, linked to it when its flag says so; the
/// server has the starter's group leader, as `GenServer.start/3` called by a process.
async fn start_from<S: GenServer>(
    node: &Node,
    starter: Option<(&Process, bool)>,
    name: ServerName,
    server: S,
) -> Result<Pid, StartError> {
    let parent = starter.and_then(|(p, link)| link.then_some(p));
    let (local, global) = match name {
        ServerName::Local(local) => (local, None),
        ServerName::Global(global) => (None, Some(global)),
    };
    if let Some(holder) = local.as_deref().and_then(|n| node.whereis(n)) {
        return Err(StartError::taken(Some(holder)));
    }
    let (ack, started) = oneshot::channel();
    let link = parent.map(Process::pid);
    let ancestors = starter.map(|(p, _)| p.ancestors()).unwrap_or_default();
    let global_name = global.clone();
    let body = move |p: Process| async move {
        p.set_proc_lib(gen_server_proc_lib(initial_call::<S>(), ancestors));
        if let Some(name) = global {
            let node = p.node().clone();
            if !node.register_global(name.clone(), p.pid()).await {
                let holder = node.whereis_global(&name);
                let _ = ack.send(Err(already_started(holder)));
                return Ok(());
            }
        }
        run(server, p, link, ack).await
    };
    let pid = match (starter, local.as_deref()) {
        (Some((starter, link)), local) => starter.spawn_from(local, link, body),
        (None, Some(local)) => node.spawn_registered(local, body),
        (None, None) => Ok(node.spawn(body)),
    };
    let pid = pid.map_err(StartError)?;
    // A caller that gives up on the start (a `tokio::time::timeout` around it, as
    // `GenServer.start/3`'s `timeout:`) takes the half-started server with it.
    let abandoned = crate::process::Abandoned::new(node.clone(), pid);
    let started = wait_for_init(pid, started).await;
    if started.is_err() {
        // As OTP 26's `proc_lib:init_fail`: the starter hears of a failed or ignored
        // start once the process has ended, its name free (it ends right after).
        node.ended(&pid).await;
    }
    abandoned.done();
    if let (Err(_), Some(name)) = (&started, global_name) {
        // As gen_server does before `start` returns the error: the name is free.
        if node.whereis_global(&name) == Some(pid) {
            node.unregister_global(&name).await;
        }
    }
    let pid = started?;
    if starter.is_none() {
        // Started by no process: one of the node's applications, stopped with
        // `shutdown` when the node stops.
        super::applications::add_server(node, pid, S::shutdown());
    }
    Ok(pid)
}

/// The `$initial_call` of a server, as `proc_lib` records it: `{Module, init, 1}`, and
/// for a supervisor `{supervisor, Supervisor.Default, 1}`, as Elixir's
/// `Supervisor.start_link/2` starts one.
fn initial_call<S: GenServer>() -> (Atom, Atom, usize) {
    match supervisor_module::<S>() {
        Some(module) => (Atom::from("supervisor"), Atom::from(module), 1),
        None => (Atom::from(S::module()), Atom::from("init"), 1),
    }
}

/// What `proc_lib` records of a gen_server (a GenServer, a supervisor, a
/// `DynamicSupervisor`): it waits in gen_server's loop (OTP 25 to 27's arity).
pub(crate) fn gen_server_proc_lib(
    initial_call: (Atom, Atom, usize),
    ancestors: Vec<Term>,
) -> crate::node::ProcLib {
    crate::node::ProcLib {
        initial_call,
        ancestors,
        callers: None,
        current: (Atom::from("gen_server"), Atom::from("loop"), 7),
    }
}

/// The callback module a supervisor's `:sys.get_status/1` names, for a [`Supervisor`]
/// (run by this same loop, as supervisor.erl runs as a gen_server).
///
/// [`Supervisor`]: super::supervisor::Supervisor
pub(crate) fn supervisor_module<S: GenServer>() -> Option<&'static str> {
    let supervisor = std::any::TypeId::of::<super::supervisor::Supervisor>();
    (std::any::TypeId::of::<S>() == supervisor).then_some(super::supervisor::SUPERVISOR_MODULE)
}

/// `{already_started, Pid}`, as `GenServer.start/3` answers for a name that is taken
/// (`undefined` when its holder ended meanwhile).
pub(crate) fn already_started(holder: Option<Pid>) -> Term {
    let holder = holder.map_or_else(|| atom("undefined"), Term::Pid);
    tuple(vec![atom("already_started"), holder])
}

async fn wait_for_init(
    pid: Pid,
    started: oneshot::Receiver<Result<(), Term>>,
) -> Result<Pid, StartError> {
    match started.await {
        Ok(Ok(())) => Ok(pid),
        Ok(Err(reason)) => Err(StartError(Exception::Exit(reason))),
        // The process ended before its init answered (killed).
        Err(_) => Err(StartError(Exception::Exit(atom("killed")))),
    }
}

/// The server's loop: `gen_server:loop/7`.
async fn run<S: GenServer>(
    mut server: S,
    mut p: Process,
    parent: Option<Pid>,
    ack: oneshot::Sender<Result<(), Term>>,
) -> Result<(), Exception> {
    let mut next = match caught(p.pid(), server.init(&mut p)).await {
        Ok(Next::Stop(reason)) => {
            let _ = ack.send(Err(reason.clone()));
            return Err(Exception::Exit(reason));
        }
        Ok(Next::Ignore) => {
            let _ = ack.send(Err(atom("ignore")));
            return Ok(());
        }
        Ok(next) => next,
        Err(e) => {
            let e = named::<S>(e, "init", 1);
            let reason = e.exit_reason();
            let _ = ack.send(Err(reason.clone()));
            // As gen_server's init_it: the starter gets the reason and the process exits
            // with it, with no emulator report of an error (its crash report is SASL's,
            // which a BEAM node's default logger leaves out). A panic is logged, as a
            // fault of Rust code.
            if crate::otp::io::is_rust_panic(&reason) {
                return Err(e);
            }
            tracing::debug!(
                pid = %crate::term::display::local_pid(&p.pid(), p.node().name()),
                "GenServer {} failed to start\n{}",
                server_name(&p),
                e.format_logged(true)
            );
            return Err(Exception::Exit(reason));
        }
    };
    let _ = ack.send(Ok(()));
    let mut suspended = false;
    // `:sys.trace/2`: each event printed, as gen_server's debug options have it.
    let mut traced = false;
    let mut last = Last::new(&p);
    loop {
        // A sys request leaves the server waiting as it was: its timeout starts again,
        // as in gen_server's loop.
        let waiting = match next {
            Next::Timeout(after) => Next::Timeout(after),
            _ => Next::Wait,
        };
        let message = match next {
            Next::Stop(reason) => {
                return Err(fail(&mut server, &mut p, Exception::Exit(reason), &last).await);
            }
            Next::Ignore => {
                let reason = tuple(vec![atom("bad_return_value"), atom("ignore")]);
                return Err(fail(&mut server, &mut p, Exception::Exit(reason), &last).await);
            }
            Next::Continue(arg) => {
                last.keep(&arg, |a| tuple(vec![atom("continue"), a]), None);
                let result = caught(p.pid(), server.handle_continue(arg, &mut p)).await;
                let callback = ("handle_continue", 2);
                next = ok_or_fail(&mut server, &mut p, result, callback, &last).await?;
                if traced && !matches!(next, Next::Stop(_)) {
                    sys::print_event(&mut p, sys::Event::NoReply(server.state())).await;
                }
                continue;
            }
            _ if suspended => sys::next_system_message(&mut p, parent.as_ref()).await,
            Next::Wait => p.receive().await,
            Next::Timeout(after) => match p.receive_timeout(after).await {
                Some(message) => message,
                None => atom("timeout"),
            },
        };
        if traced && sys::parse(&message).is_none() {
            sys::print_event(&mut p, sys::Event::In(&message)).await;
        }
        // A callback that replied nothing: its new state is an event when traced.
        let mut noreply = true;
        next = match take_call(message) {
            Ok((from, request)) => {
                last.keep(&request, |r| r, Some(from.pid));
                let reply = caught(p.pid(), server.handle_call(request, &from, &mut p)).await;
                match reply {
                    Ok(Reply::Reply(reply, then)) => {
                        noreply = false;
                        let shown = traced.then(|| reply.clone());
                        let to = from.pid;
                        from.reply(&p, reply);
                        if let Some(reply) = shown {
                            let out = sys::Event::Out(&reply, &to, server.state());
                            sys::print_event(&mut p, out).await;
                        }
                        then
                    }
                    Ok(Reply::NoReply(then)) => then,
                    Ok(Reply::Stop(reason, reply)) => {
                        from.reply(&p, reply);
                        Next::Stop(reason)
                    }
                    Err(e) => {
                        let e = named::<S>(e, "handle_call", 3);
                        return Err(fail(&mut server, &mut p, e, &last).await);
                    }
                }
            }
            Err(message) => match call::take_cast(message) {
                Ok(request) => {
                    last.keep(&request, |r| tuple(vec![atom("$gen_cast"), r]), None);
                    let result = caught(p.pid(), server.handle_cast(request, &mut p)).await;
                    ok_or_fail(&mut server, &mut p, result, ("handle_cast", 2), &last).await?
                }
                Err(message) => {
                    if let Some((from, request)) = sys::parse(&message) {
                        let state = || server.state();
                        match sys::handle(
                            &p,
                            parent.as_ref(),
                            from,
                            request,
                            &mut suspended,
                            &state,
                            supervisor_module::<S>()
                                .map_or(sys::Callback::None, sys::Callback::Always),
                        ) {
                            Some(reason) => {
                                // gen_server's report of a stop by `sys` has `[]`.
                                last.keep(&crate::term::nil(), |r| r, None);
                                Next::Stop(reason)
                            }
                            None => {
                                noreply = false;
                                traced = sys::traced(&p);
                                waiting
                            }
                        }
                    } else if is_malformed_call(&message) {
                        tracing::warn!(pid = %crate::term::display::local_pid(&p.pid(), p.node().name()), "dropping a $gen_call with a malformed From: {}",
                            crate::term::Short(&message));
                        Next::Wait
                    } else if let Some(reason) = parent_exit(&message, parent.as_ref()) {
                        // gen_server: the parent's EXIT stops a server that traps exits.
                        last.keep(&message, |m| m, None);
                        Next::Stop(reason)
                    } else {
                        last.keep(&message, |m| m, None);
                        let result = caught(p.pid(), server.handle_info(message, &mut p)).await;
                        ok_or_fail(&mut server, &mut p, result, ("handle_info", 2), &last).await?
                    }
                }
            },
        };
        if traced && noreply && !matches!(next, Next::Stop(_)) {
            sys::print_event(&mut p, sys::Event::NoReply(server.state())).await;
        }
    }
}

async fn ok_or_fail<S: GenServer>(
    server: &mut S,
    p: &mut Process,
    result: Result<Next, Exception>,
    (callback, arity): (&str, usize),
    last: &Last,
) -> Result<Next, Exception> {
    match result {
        Ok(next) => Ok(next),
        Err(e) => Err(fail(server, p, named::<S>(e, callback, arity), last).await),
    }
}

/// The exception of a callback, its frame named after the server's module
/// ([`GenServer::module`]: by default its Rust type's path) and the callback, as a BEAM
/// names the GenServer module's function: `{'parrot::Parrot', handle_call, 3, Location}`.
fn named<S: GenServer>(e: Exception, callback: &str, arity: usize) -> Exception {
    e.in_function(S::module(), callback, arity)
}

/// The server ends with `e` (a failed callback, or a stop with a reason, from a
/// callback or from `GenServer.stop`): `terminate` with the exit reason, then the
/// server's report, and the process exits with that reason and no second, emulator
/// report of the crash, as `gen_server` then `proc_lib` do. The report is gen_server's,
/// unless the reason is `normal`, `shutdown` or `{shutdown, _}`: `GenServer :parrot
/// terminating` and the reason as Elixir's logger prints it, logged here and, when the
/// group leader is on another node, sent to that node's logger as a BEAM node sends it
/// ([`report_at_group_leader`]).
async fn fail<S: GenServer>(
    server: &mut S,
    p: &mut Process,
    e: Exception,
    last: &Last,
) -> Exception {
    let reason = e.exit_reason();
    // The state as it was when the callback ended, as gen_server reports it.
    let state = server.state();
    let remote = group_leader_is_remote(p);
    // A `terminate` that fails (a panic, as a raise in an Elixir one) ends the server
    // with its own exception instead, reported as gen_server reports it.
    let pid = p.pid();
    let terminated = caught(pid, async {
        server.terminate(&reason, p).await;
        Ok(())
    })
    .await;
    let (e, reason) = match terminated {
        Ok(()) => (e, reason),
        Err(failed) => {
            let failed = named::<S>(failed, "terminate", 2);
            let reason = failed.exit_reason();
            (failed, reason)
        }
    };
    if crate::otp::supervisor::is_normal_exit(&reason) {
        return Exception::Exit(reason);
    }
    let name = server_name(p);
    let me = p.node().name();
    let shown = crate::term::display::local_pid(&p.pid(), me);
    if remote {
        // Reported to the group leader's node; a BEAM node's default handler drops an
        // event whose group leader is remote, so here at debug level only.
        tracing::debug!(pid = %shown, "GenServer {name} terminating\n{}", e.format_logged(true));
        report_at_group_leader(p, &reason, last, state);
    } else {
        // As Elixir's logger words gen_server's report: the last message, the state,
        // and the caller of a call (a Rust caller has no stack to show).
        let client = match last.from {
            Some(pid) if !p.node().is_local(&pid.node) => format!(
                "\nClient {} is remote on node {}",
                pid.inspect(),
                crate::term::Short(&Term::Atom(pid.node))
            ),
            Some(pid) => {
                let alive = if p.node().is_alive(&pid) {
                    "alive"
                } else {
                    "dead"
                };
                format!(
                    "\nClient {} is {alive}",
                    crate::term::display::local_pid(&pid, me)
                )
            }
            None => String::new(),
        };
        tracing::error!(
            pid = %shown,
            "GenServer {name} terminating\n{}\n{}\nState: {}{client}",
            e.format_logged(true),
            last.line(me),
            crate::term::Short(&state)
        );
    }
    Exception::Exit(reason)
}

/// The message a server is handling (for a call its request and caller, for a cast
/// `{:"$gen_cast", request}`), for the report of its end, which says, as gen_server's
/// does, what the server was handling (Elixir's `Last message`). A server whose group
/// leader was on another node when its `init` returned keeps the whole message, for
/// the report sent there (`:undefined` if the group leader moved there later); one
/// whose report is a log line here keeps a copy of a small message only
/// ([`LAST_MESSAGE_UNITS`]), so that a large one costs no copy.
struct Last {
    whole: bool,
    /// `None`: too large to keep.
    message: Option<Term>,
    from: Option<Pid>,
}

/// The largest message a server keeps for its log line (in elements, or 64 bytes of
/// a binary each), should it fail handling it: every message is looked at and copied
/// for it, so a small bound keeps that cheap (a 200-element list is not copied: a
/// copy of each took a third more instructions per call); Elixir's logger shows no
/// more than 50 elements of a list either.
const LAST_MESSAGE_UNITS: usize = 64;

impl Last {
    fn new(p: &Process) -> Self {
        Last {
            whole: group_leader_is_remote(p),
            message: Some(atom("undefined")),
            from: None,
        }
    }

    /// Keeps `wrap(message)`: a copy of `message` wrapped as the report shows it.
    fn keep(&mut self, message: &Term, wrap: impl FnOnce(Term) -> Term, from: Option<Pid>) {
        let copy = if self.whole {
            Some(message.clone())
        } else {
            crate::term::copy_if_small(message, LAST_MESSAGE_UNITS)
        };
        self.message = copy.map(wrap);
        self.from = from;
    }

    /// `Last message (from #PID<0.96.0>): :stop_me`, as Elixir's logger words it.
    fn line(&self, node: &str) -> String {
        let from = self
            .from
            .map(|pid| format!(" (from {})", crate::term::display::local_pid(&pid, node)))
            .unwrap_or_default();
        match &self.message {
            Some(m) => format!("Last message{from}: {}", crate::term::Short(m)),
            None => format!("Last message{from}: (not kept: over {LAST_MESSAGE_UNITS} elements)"),
        }
    }
}

/// Whether `p`'s group leader is on another node: its logger then gets the report.
fn group_leader_is_remote(p: &Process) -> bool {
    !p.node().is_local(&p.group_leader().node)
}

/// gen_server's report of a server's end (`{gen_server, terminate}`, with the last
/// message, the state and the caller), sent to the logger of the group leader's node,
/// which prints it as its own: `GenServer :parrot terminating`, `** (ArgumentError)
/// ...`, `Last message: ...`, `State: ...`. On an OTP 25 node with Elixir 1.14 it shows
/// on both nodes' terminals, as from a BEAM server.
fn report_at_group_leader(p: &Process, reason: &Term, last: &Last, state: Term) {
    let name = p.registered_name().map_or(Term::Pid(p.pid()), |n| atom(&n));
    // gen_server's client_info: a caller on another node is `remote`; one of ours is
    // alive, with no stack to show.
    let client = match last.from {
        Some(pid) if p.node().is_local(&pid.node) => tuple(vec![
            Term::Pid(pid),
            tuple(vec![Term::Pid(pid), crate::term::nil()]),
        ]),
        Some(pid) => tuple(vec![Term::Pid(pid), atom("remote")]),
        None => atom("undefined"),
    };
    let report = crate::term::map([
        (
            atom("label"),
            tuple(vec![atom("gen_server"), atom("terminate")]),
        ),
        (atom("name"), name),
        (
            atom("last_message"),
            last.message.clone().unwrap_or_else(|| atom("undefined")),
        ),
        (atom("state"), state),
        (atom("log"), crate::term::nil()),
        (atom("reason"), reason.clone()),
        (atom("client_info"), client),
        (atom("process_label"), atom("undefined")),
    ]);
    let format_log = |arity| {
        Term::from(crate::term::ExternalFun::from((
            "gen_server",
            "format_log",
            arity,
        )))
    };
    let meta = vec![
        (atom("domain"), crate::term::list(vec![atom("otp")])),
        (atom("report_cb"), format_log(2)),
        (
            atom("error_logger"),
            crate::term::map([
                (atom("tag"), atom("error")),
                (atom("report_cb"), format_log(1)),
            ]),
        ),
    ];
    crate::otp::io::log_at_group_leader(p.node(), &p.pid(), &p.group_leader(), || {
        (vec![atom("error"), report], meta)
    });
}

/// How gen_server's report and Elixir's default callbacks name a server: its registered
/// name, else its pid.
fn server_name(p: &Process) -> String {
    p.registered_name().map_or_else(
        || p.pid().inspect().to_string(),
        |n| atom(&n).inspect().to_string(),
    )
}

/// The `RuntimeError` of Elixir's default `handle_call/3` and `handle_cast/2`.
fn no_clause(p: &Process, what: &str, callback: &str) -> Exception {
    let name = server_name(p);
    Exception::runtime_error_unplaced(format!(
        "attempted to {what} GenServer {name} but no {callback} clause was provided"
    ))
}

/// `{'EXIT', Parent, Reason}` from the process that started this one with
/// [`start_link`].
fn parent_exit(message: &Term, parent: Option<&Pid>) -> Option<Term> {
    let (from, reason) = crate::process::handle::exit_message(message)?;
    (Some(from) == parent).then(|| reason.clone())
}

impl Process {
    /// Starts `server` from this process, not linked to it (`GenServer.start/3` called
    /// by a process): it has this process's group leader, so its output and the report
    /// of its crash go where this process's go (a BEAM caller's terminal, for a function
    /// it called over rpc). [`start`] gives the node's own. It outlives this process.
    pub async fn start<S: GenServer>(
        &self,
        name: Option<&str>,
        server: S,
    ) -> Result<Pid, StartError> {
        let name = ServerName::Local(name.map(str::to_owned));
        start_from(self.node(), Some((self, false)), name, server).await
    }

    /// Starts `server` linked to this process (`GenServer.start_link/3`); see
    /// [`start_link`].
    pub async fn start_link<S: GenServer>(
        &self,
        name: Option<&str>,
        server: S,
    ) -> Result<Pid, StartError> {
        start_link(self, name, server).await
    }
}
