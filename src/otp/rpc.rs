//! `rex`, the rpc server, and erpc calls from Rust.
//!
//! OTP 25 nodes run `rpc:call` as `erpc:call` (a `SPAWN_REQUEST` of
//! `erpc:execute_call/4`, see `otp/spawn.rs`); `rex` itself gets the `features_request`
//! every visible node sends a new peer, `rpc:block_call/4`,
//! `rpc:sbcast/3` and `rpc:multi_server_call/3`, and the old `{call, M, F, A,
//! GroupLeader}` calls and casts of nodes without erpc (C nodes among them).

use super::gen_server::parse_call;
use super::sys;
use crate::connection::message::Message;
use crate::node::Node;
use crate::process::{Exception, Process};
use crate::term::{atom, list, map, tuple, Atom, Match, Term};
use std::time::Duration;

pub(crate) fn start(node: &Node) {
    let _ = super::keep_registered(node, "rex", |mut p, parent| async move {
        super::shown_as_gen_server(&p, parent, "rpc");
        let mut suspended = false;
        loop {
            // `rex` keeps no state of its own here (a BEAM's keeps its nodes observer).
            let state = || map(Vec::new());
            let message = sys::receive(&mut p, Some(&parent), &mut suspended, &state, None).await;
            if let Some(done) = serve(&p, message.map_err(Exception::Exit)?) {
                // A `block_call`: nothing else is served until it has returned.
                let _ = done.await;
            }
        }
    });
}

/// One message to `rex`, as `rpc`'s `handle_call`, `handle_cast` and `handle_info`
/// take it. For a `block_call`, what resolves when it has returned.
fn serve(p: &Process, message: Term) -> Option<tokio::sync::oneshot::Receiver<()>> {
    if let Some((from, request)) = parse_call(&message) {
        // `{call, M, F, A, GroupLeader}` (`rpc:call/4` from nodes without erpc) and
        // `{block_call, ...}` (`rpc:block_call/4`, which a BEAM's `rex` runs itself,
        // serving nothing else meanwhile).
        let call = request
            .as_tuple_n(5)
            .filter(|e| e[0].is_atom("call") || e[0].is_atom("block_call"));
        let blocks = call.is_some_and(|e| e[0].is_atom("block_call"));
        match call.and_then(|e| rpc_mfa(&e[1..])) {
            Some((m, f, a, gl)) => {
                // Only a `block_call` waits for the end of the process it runs.
                let (done, returned) = blocks.then(tokio::sync::oneshot::channel).unzip();
                run(p, m, f, a, gl, Some(ReplyTo::Caller(from)), done);
                return returned;
            }
            // Ignored, as `rex` ignores them.
            None => tracing::warn!("rex: unexpected call {}", crate::term::Short(request)),
        }
        return None;
    }
    if let Some(request) = super::gen_server::parse_cast(&message) {
        // `{cast, M, F, A, GroupLeader}`: `rpc:cast/4` from nodes without erpc.
        let cast = request.as_tuple_n(5).filter(|e| e[0].is_atom("cast"));
        if let Some((m, f, a, gl)) = cast.and_then(|e| rpc_mfa(&e[1..])) {
            run(p, m, f, a, gl, None, None);
        }
        return None;
    }
    serve_info(p, message);
    None
}

/// A message to `rex` that is no call or cast.
fn serve_info(p: &Process, message: Term) {
    let Some([from, request]) = message.as_tuple_n(2) else {
        tracing::debug!("rex: ignoring {}", crate::term::Short(&message));
        return;
    };
    let Some(from) = from.as_pid().copied() else {
        return;
    };
    let me = atom(p.node().name());
    if request.is_atom("features_request") {
        // From a peer's rpc nodes observer.
        p.send(
            from,
            tuple(vec![atom("features_reply"), me, list(vec![atom("erpc")])]),
        );
        return;
    }
    let Some(e) = request.as_tuple() else {
        return;
    };
    match (e.first().and_then(Match::as_atom), e.len()) {
        // `rpc:sbcast/3` (the message itself) and `rpc:multi_server_call/3` (with the
        // sender): `{rex, Node, Node}` or, for a name nobody has here,
        // `{rex, Node, {nonexisting_name, Name}}`.
        (Some(kind @ ("sbcast" | "send")), 3) => {
            let Some(name) = e[1].as_atom() else {
                return;
            };
            let message = match kind {
                "sbcast" => e[2].clone(),
                _ => tuple(vec![Term::Pid(from), e[2].clone()]),
            };
            let answer = match p.node().whereis(name) {
                Some(pid) => {
                    p.send(pid, message);
                    if kind == "send" {
                        // It is up to the named process to answer.
                        return;
                    }
                    me.clone()
                }
                None => tuple(vec![atom("nonexisting_name"), e[1].clone()]),
            };
            p.send(from, tuple(vec![atom("rex"), me, answer]));
        }
        // `{call, M, F, A, GroupLeader}` from a hidden C node: answered `{rex, Reply}`.
        (Some("call"), 5) => {
            if let Some((m, f, a, gl)) = rpc_mfa(&e[1..]) {
                run(p, m, f, a, gl, Some(ReplyTo::Plain(from)), None);
            }
        }
        _ => tracing::debug!("rex: ignoring {}", crate::term::Short(&message)),
    }
}

/// Where `rex` sends a call's result.
enum ReplyTo {
    /// A `$gen_call`'s caller.
    Caller(super::gen_server::Caller),
    /// A C node's `{From, {call, ...}}`: `{rex, Reply}` to `From`.
    Plain(crate::term::Pid),
}

/// `[M, F, A, GroupLeader]` of an rpc request; a group leader that is no pid (a C
/// node's `user` or `send_stdout_to_caller`) is this node's `user`.
fn rpc_mfa(e: &[Term]) -> Option<(String, String, Vec<Term>, Option<crate::term::Pid>)> {
    let (m, f, a) = super::spawn::mfa_args(&e[0], &e[1], &e[2])?;
    Some((m, f, a, e[3].as_pid().copied()))
}

/// Runs `m:f(a)` in a process of its own with the caller's group leader, as `rex`
/// does, and sends the result as `rpc` gives it: the value, a thrown value, or
/// `{badrpc, {'EXIT', Reason}}`; `done`, if any, is dropped when that process ends.
fn run(
    p: &Process,
    m: String,
    f: String,
    a: Vec<Term>,
    gl: Option<crate::term::Pid>,
    reply: Option<ReplyTo>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let node = p.node().clone();
    let opts = node.spawn_opts(gl.unwrap_or_else(|| node.user_pid()));
    node.clone().spawn_with(opts, move |worker| async move {
        let _done = done;
        let me = worker.pid();
        let result = match node.apply(worker, &m, &f, a).await {
            Ok(v) | Err(Exception::Throw(v)) => v,
            Err(e) => {
                crate::node::log_answered_panic(&me, &e);
                tuple(vec![
                    atom("badrpc"),
                    tuple(vec![atom("EXIT"), e.exit_reason()]),
                ])
            }
        };
        match reply {
            Some(ReplyTo::Caller(from)) => from.reply_from(&node, &me, result),
            Some(ReplyTo::Plain(to)) => {
                // `{rex, Reply}`.
                let _ = node.route_in(
                    &me,
                    crate::process::Dest::Pid(to),
                    vec![atom("rex")],
                    result,
                );
            }
            None => {}
        }
        Ok(())
    });
}

/// Why an erpc call failed, as `erpc:call/5` reports it. Each is, through `?` in a
/// process body (or `Exception::from(e)` anywhere), what `:erpc.call` raises in a BEAM
/// caller: `error({exception, Reason,
/// Stack})`, `exit({exception, Reason})` or `throw(Value)` for the function's own
/// exception, `exit({signal, Reason})`, `error({erpc, noconnection})`, `error({erpc,
/// timeout})`, `error({erpc, Reason})`.
///
/// ```no_run
/// # async fn demo(node: cnode::Node) {
/// use cnode::term::Match;
/// use cnode::{Exception, RpcError};
/// use std::time::Duration;
/// match node.erpc_call("alex@localhost", "Elixir.Nope", "f", vec![], Duration::from_secs(5)).await {
///     Ok(value) => println!("{value}"),
///     Err(RpcError::Exception(Exception::Error { reason, .. })) if reason.is_atom("undef") => {
///         println!("no such function there")
///     }
///     // `** (UndefinedFunctionError) ...` and the remote stack, as iex prints them.
///     Err(e) => println!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The function raised, exited or threw there: the exception, an error with the
    /// remote stack (an Elixir raise carries the exception struct as its reason). It
    /// prints as iex prints it (`** (ArgumentError) boom` and the stack).
    #[error("{}", .0.format())]
    Exception(Exception),
    /// The process running the function ended by a signal before it returned (killed,
    /// or the exit signal of a process it was linked to), with that reason.
    #[error("the remote process ended: {}", Exception::format_exit(.0))]
    Signal(Term),
    /// The node could not be reached (`{erpc, noconnection}`). Why is logged (a cookie
    /// refused, no EPMD, the name not registered); [`Node::try_connect`](crate::Node::try_connect)
    /// gives it as a [`HandshakeError`](crate::HandshakeError). With the node's name.
    #[error("no connection to {0}")]
    NoConnection(String),
    /// No answer in time (`{erpc, timeout}`).
    #[error("no answer in time (erpc timeout)")]
    Timeout,
    /// The node refused to spawn (`{erpc, Reason}`).
    #[error("spawn failed: {}", crate::term::Elixir(.0))]
    Spawn(Term),
    /// The process making the call here ended before the answer came
    /// ([`Node::erpc_call`](crate::Node::erpc_call): this node stopping, or the process
    /// killed), with its exit reason; the remote function may have run.
    #[error("the call's process here ended before the answer: {}", crate::term::Elixir(.0))]
    CallerEnded(Term),
}

impl Process {
    /// `:erpc.call(node, m, f, args, timeout)`: runs `m.f(args)` on `node` and returns its
    /// value. The timeout is a `Duration`, or `None` to wait for ever (`:erpc.call/4`'s
    /// `:infinity`). The wire exchange is the BEAM's: `SPAWN_REQUEST` of
    /// `erpc:execute_call/4` with `[monitor]`, the result arriving as the `DOWN` reason.
    pub async fn erpc_call(
        &mut self,
        node: &str,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Term, RpcError> {
        let timeout = timeout.into();
        let req_id = self.node().make_ref();
        let res = self.node().make_ref();
        let res_term = Term::Reference(Box::new(res.clone()));
        let node_atom = Atom::from(node);
        self.node()
            .add_spawn_monitor(&self.entry, req_id.clone(), node_atom);
        let mfa = crate::connection::message::Mfa {
            module: Atom::from("erpc"),
            function: Atom::from("execute_call"),
            arity: 4.into(),
        };
        let args = vec![res_term.clone(), atom(module), atom(function), list(args)];
        if node == self.node().name() {
            super::spawn::execute_call_here(self.node(), self.pid(), req_id.clone(), args);
        } else {
            self.node().send_to_node(
                &node_atom,
                Message::spawn_request(
                    req_id.clone(),
                    self.pid(),
                    self.node().user_pid(),
                    mfa,
                    crate::term::List::from(vec![atom("monitor")]),
                    crate::term::List::from(args),
                ),
            );
        }
        let req_term = Term::Reference(Box::new(req_id.clone()));
        // Dropped before the answer: the monitor goes, and the spawn's reply with it.
        let remote = node != self.node().name();
        let dropped = match remote {
            true => self.abandon_spawn_on_drop(&req_id),
            false => self.demonitor_on_drop(&req_id),
        };
        let reply = self
            .receive_match(timeout, |m| {
                crate::process::handle::is_down_for(m, &req_id)
                    || m.as_tuple_n(4)
                        .map(|e| {
                            e[0].is_atom("spawn_reply") && e[1] == req_term && e[2].is_atom("error")
                        })
                        .unwrap_or(false)
            })
            .await;
        dropped.done();
        // (A successful spawn's reply is not delivered: `{reply, error_only}`.)
        let Some(reply) = reply else {
            if remote {
                // Given up before the spawn's reply came: it is dropped when it does, as
                // `erpc:call` abandons the request.
                self.node().abandon_spawn(&self.entry, &req_id);
            }
            self.demonitor(&req_id, true);
            return Err(RpcError::Timeout);
        };
        let e = reply.as_tuple().unwrap_or(&[]);
        if e.len() == 4 {
            return Err(RpcError::Spawn(e[3].clone()));
        }
        let reason = &e[4];
        if reason.is_atom("noconnection") {
            return Err(RpcError::NoConnection(node.to_owned()));
        }
        // `erpc:execute_call/4`'s exit: `{Res, return | throw | exit, Value}` or `{Res,
        // error, Reason, Stack}`; any other reason is a signal that ended it.
        match reason.as_tuple() {
            Some([r, class, value]) if *r == res_term => match class.as_atom() {
                Some("return") => Ok(value.clone()),
                Some("throw") => Err(RpcError::Exception(Exception::Throw(value.clone()))),
                Some("exit") => Err(RpcError::Exception(Exception::Exit(value.clone()))),
                _ => Err(RpcError::Signal(reason.clone())),
            },
            Some([r, class, value, stack]) if *r == res_term && class.is_atom("error") => {
                Err(RpcError::Exception(Exception::Error {
                    reason: value.clone(),
                    stacktrace: stack.as_list().map(<[Term]>::to_vec).unwrap_or_default(),
                }))
            }
            _ => Err(RpcError::Signal(reason.clone())),
        }
    }
}

impl Process {
    /// `:rpc.call(node, m, f, args, timeout)`: as [`erpc_call`](Self::erpc_call), with
    /// a failure as rpc gives it, a value: `{:badrpc, {:EXIT, {reason, stack}}}` for an
    /// error raised there, `{:badrpc, {:EXIT, reason}}` for an exit, `{:badrpc,
    /// :nodedown}`, `{:badrpc, :timeout}`; a thrown value is the value (rpc.erl's
    /// `rpcify_exception/2`).
    pub async fn rpc_call(
        &mut self,
        node: &str,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: impl Into<Option<Duration>>,
    ) -> Term {
        rpc_value(self.erpc_call(node, module, function, args, timeout).await)
    }
}

impl Node {
    /// `:rpc.call(node, module, function, args, timeout)` from code that is no process;
    /// see [`Process::rpc_call`]. A call whose process here ended first (this node
    /// stopping) is `{:badrpc, {:EXIT, reason}}`.
    pub async fn rpc_call(
        &self,
        node: &str,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: impl Into<Option<Duration>>,
    ) -> Term {
        rpc_value(self.erpc_call(node, module, function, args, timeout).await)
    }

    /// `:erpc.call(node, module, function, args, timeout)` from code that is no process;
    /// see [`Process::erpc_call`].
    pub async fn erpc_call(
        &self,
        node: &str,
        module: &str,
        function: &str,
        args: Vec<Term>,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Term, RpcError> {
        let timeout = timeout.into();
        let (node, module, function) = (node.to_owned(), module.to_owned(), function.to_owned());
        let result = self
            .run_process(move |mut p| async move {
                p.erpc_call(&node, &module, &function, args, timeout).await
            })
            .await;
        match result {
            Ok(result) => result,
            Err(e) => Err(RpcError::CallerEnded(e.exit_reason())),
        }
    }
}

/// `erpc:call/4,5` and `rpc:call/4,5` run here, as a BEAM node runs them for a caller
/// that reaches another node through this one (`:rpc.call(gateway, :rpc, :call,
/// [other, m, f, a])`): the call made from the process running them, its failure raised
/// as erpc raises it, or as rpc gives it (`{badrpc, Reason}`, rpc.erl's
/// `rpcify_exception/2`).
pub(crate) fn register_functions(node: &Node) {
    for (module, arity) in [("erpc", 4), ("erpc", 5), ("rpc", 4), ("rpc", 5)] {
        node.register_function(module, "call", arity, move |mut p, args| async move {
            let (Some(to), Some(m), Some(f), Some(a)) = (
                args[0].as_atom(),
                args[1].as_atom(),
                args[2].as_atom(),
                args[3].as_list(),
            ) else {
                return Err(Exception::bare_badarg());
            };
            let timeout = match args.get(4) {
                None => None,
                Some(t) if t.is_atom("infinity") => None,
                Some(t) => Some(Duration::from_millis(
                    t.as_int()
                        .and_then(|ms| u64::try_from(ms).ok())
                        .ok_or_else(Exception::bare_badarg)?,
                )),
            };
            let result = p.erpc_call(to, m, f, a.to_vec(), timeout).await;
            match (module, result) {
                (_, Ok(value)) => Ok(value),
                ("erpc", Err(e)) => Err(in_erpc(rpc_exception(e), arity)),
                (_, Err(e)) => rpcify(e),
            }
        });
    }
}

/// An error `erpc:call/4,5` raises, with the frames of erpc.erl it raises it from
/// (OTP 25's lines), not those of this file.
fn in_erpc(e: Exception, arity: usize) -> Exception {
    match e {
        Exception::Error { reason, .. } => {
            let line = match reason.as_tuple() {
                Some([tag, ..]) if tag.is_atom("exception") => 702,
                _ => 710,
            };
            let mut stacktrace = vec![tuple(vec![
                atom("erpc"),
                atom("call"),
                crate::term::int(5),
                crate::node::location("erpc.erl", line),
            ])];
            if arity == 4 {
                stacktrace.push(tuple(vec![
                    atom("erpc"),
                    atom("call"),
                    crate::term::int(4),
                    crate::term::nil(),
                ]));
            }
            Exception::Error { reason, stacktrace }
        }
        e => e,
    }
}

/// An erpc call's outcome as `rpc:call` returns it; a call whose process here ended
/// first is `{badrpc, {'EXIT', Reason}}`.
fn rpc_value(result: Result<Term, RpcError>) -> Term {
    result.unwrap_or_else(|e| {
        rpcify(e).unwrap_or_else(|ended| {
            tuple(vec![
                atom("badrpc"),
                tuple(vec![atom("EXIT"), ended.exit_reason()]),
            ])
        })
    })
}

/// What `rpc:call` returns (or raises) for an erpc failure: rpc.erl's
/// `rpcify_exception/2`.
fn rpcify(e: RpcError) -> Result<Term, Exception> {
    let badrpc = |reason| Ok(tuple(vec![atom("badrpc"), reason]));
    let exit = |reason| badrpc(tuple(vec![atom("EXIT"), reason]));
    match e {
        RpcError::Exception(Exception::Throw(value)) => match value.as_tuple_n(2) {
            Some([tag, _]) if tag.is_atom("EXIT") => badrpc(value),
            _ => Ok(value),
        },
        RpcError::Exception(Exception::Exit(reason)) | RpcError::Signal(reason) => exit(reason),
        RpcError::Exception(Exception::Error { reason, stacktrace }) => {
            exit(tuple(vec![reason, list(stacktrace)]))
        }
        RpcError::NoConnection(_) => badrpc(atom("nodedown")),
        RpcError::Timeout => badrpc(atom("timeout")),
        RpcError::Spawn(reason) => exit(reason),
        RpcError::CallerEnded(reason) => Err(Exception::Exit(reason)),
    }
}

/// What `:erpc.call` raises for `e` in the calling process (erpc.erl's `result/4`); an
/// error with the frame of the code that converted it (the `?`), as other errors.
#[track_caller]
pub(crate) fn rpc_exception(e: RpcError) -> Exception {
    let erpc = |reason| tuple(vec![atom("erpc"), reason]);
    match e {
        RpcError::Exception(Exception::Throw(value)) => Exception::Throw(value),
        RpcError::Exception(Exception::Exit(reason)) => {
            Exception::Exit(tuple(vec![atom("exception"), reason]))
        }
        RpcError::Exception(Exception::Error { reason, stacktrace }) => {
            Exception::error(tuple(vec![atom("exception"), reason, list(stacktrace)]))
        }
        RpcError::Signal(reason) => Exception::Exit(tuple(vec![atom("signal"), reason])),
        RpcError::NoConnection(_) => Exception::error(erpc(atom("noconnection"))),
        RpcError::Timeout => Exception::error(erpc(atom("timeout"))),
        RpcError::Spawn(r) => Exception::error(erpc(r)),
        // A process whose call ended with it goes on ending so.
        RpcError::CallerEnded(r) => Exception::Exit(r),
    }
}

#[cfg(test)]
mod tests {
    use super::{rpc_exception, RpcError};
    use crate::process::Exception;
    use crate::term::{atom, int, list, nil, parse, tuple};

    #[test]
    fn a_raise_prints_as_iex_prints_it() {
        let raised = |m: &str| {
            RpcError::Exception(Exception::Error {
                reason: atom("undef"),
                stacktrace: vec![tuple(vec![
                    atom(m),
                    atom("sum"),
                    list(vec![list(vec![int(1)])]),
                    nil(),
                ])],
            })
        };
        assert_eq!(
            raised("Elixir.Enum").to_string(),
            "** (UndefinedFunctionError) function Enum.sum/1 is undefined or private\n    Enum.sum([1])"
        );
        let thrown = RpcError::Exception(Exception::Throw(atom("ball")));
        assert_eq!(thrown.to_string(), "** (throw) :ball");
    }

    #[test]
    fn through_question_mark_it_is_what_erpc_call_raises() {
        let exit = RpcError::Exception(Exception::Exit(atom("boom")));
        assert_eq!(
            rpc_exception(exit),
            Exception::Exit(parse("{:exception, :boom}").unwrap())
        );
        let killed = RpcError::Signal(atom("killed"));
        assert_eq!(
            rpc_exception(killed),
            Exception::Exit(parse("{:signal, :killed}").unwrap())
        );
        let frame = parse("{Svc, :boom, 0, []}").unwrap();
        let raised = RpcError::Exception(Exception::Error {
            reason: atom("badarg"),
            stacktrace: vec![frame],
        });
        let line = line!() + 1;
        let raised = rpc_exception(raised).exit_reason();
        let expected = format!(
            "{{{{:exception, :badarg, [{{Svc, :boom, 0, []}}]}}, [{{:rust, :anonymous, 0, [file: ~c\"{}\", line: {line}]}}]}}",
            file!()
        );
        assert_eq!(raised, parse(&expected).unwrap());
        let thrown = RpcError::Exception(Exception::Throw(atom("ball")));
        assert_eq!(rpc_exception(thrown), Exception::Throw(atom("ball")));
    }
}
