//! The GenServer call protocol (`gen.erl`), served and issued.
//!
//! A call is `{'$gen_call', {Pid, Tag}, Request}` where OTP 24+ makes `Tag` the
//! improper list `[alias | Ref]` and the server replies by sending `{Tag, Reply}` to the
//! alias; older callers (and `global`'s locker) use a plain reference or `{Ref, Node}`
//! and get the reply at their pid (`gen:reply/2`). Calls from Rust monitor the target
//! with an alias, as `gen:do_call/4` does, and fail cleanly on `DOWN` or timeout.

use crate::node::Node;
use crate::process::{Dest, Exception, IntoMessage, Process};
use crate::term::{alias_tag, alias_tag_ref, atom, list, tuple, Match, Pid, Term};
use std::borrow::Cow;
use std::time::Duration;

/// Who made a call, and how to answer it (`gen_server:from()`).
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The caller.
    pub pid: Pid,
    /// The tag to send back with the reply.
    pub tag: Term,
}

impl Caller {
    /// `gen:reply/2`, sent by process `p`. A call is answered once: the `From` goes
    /// with the reply (clone it to keep one).
    pub fn reply(self, p: &Process, reply: impl IntoMessage) {
        if p.entry.is_exiting() {
            return; // killed while its callback ran: a BEAM process would not reply
        }
        self.reply_from(&p.node, &p.entry.pid, reply);
    }

    /// `GenServer.reply/2` from code that is no process: a tokio task the callback
    /// handed the caller to, answering once its work is done (the callback returned
    /// [`Reply::NoReply`](super::Reply::NoReply)). Sent as [`Node::send`] sends.
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node, from: cnode::Caller) {
    /// use cnode::term::atom;
    /// tokio::spawn(async move {
    ///     // ... the slow work ...
    ///     from.reply_from_node(&node, atom("done"));
    /// });
    /// # }
    /// ```
    pub fn reply_from_node(self, node: &Node, reply: impl IntoMessage) {
        let sender = node.user_pid();
        self.reply_from(node, &sender, reply);
    }

    /// `{Pid, Tag}`, the `From` a callback is given on a BEAM node.
    pub(crate) fn to_term(&self) -> Term {
        crate::term::tuple(vec![Term::Pid(self.pid), self.tag.clone()])
    }

    /// `gen:reply/2` on behalf of `sender`, for code that no longer holds its `Process`.
    pub(crate) fn reply_from(self, node: &Node, sender: &Pid, reply: impl IntoMessage) {
        let to = match alias_tag_ref(&self.tag) {
            Some(alias) => Dest::Alias(alias.clone()),
            None => Dest::Pid(self.pid),
        };
        node.route_in(sender, to, vec![self.tag], reply);
    }
}

/// [`parse_call`] on a message this code owns: its parts are moved out, not copied.
/// The message comes back untouched when it is not a call.
pub(crate) fn take_call(message: Term) -> Result<(Caller, Term), Term> {
    if request_parts(&message, "$gen_call").is_none() {
        return Err(message);
    }
    let Term::Tuple(call) = message else {
        unreachable!("request_parts matched a tuple")
    };
    let [_, from, request]: [Term; 3] = call.elements.try_into().expect("three elements");
    let Term::Tuple(from) = from else {
        unreachable!("request_parts matched a {{pid, tag}} tuple")
    };
    let [pid, tag]: [Term; 2] = from.elements.try_into().expect("two elements");
    let Term::Pid(pid) = pid else {
        unreachable!("request_parts matched a pid")
    };
    Ok((Caller { pid, tag }, request))
}

/// `{'$gen_call', From, Request}`, with `From` well formed.
pub fn parse_call(message: &Term) -> Option<(Caller, &Term)> {
    parse_request(message, "$gen_call")
}

/// `{Kind, {Pid, Tag}, Request}`, the shape of `$gen_call` and `system` requests.
pub(crate) fn parse_request<'a>(message: &'a Term, kind: &str) -> Option<(Caller, &'a Term)> {
    let (pid, tag, request) = request_parts(message, kind)?;
    Some((
        Caller {
            pid: *pid,
            tag: tag.clone(),
        },
        request,
    ))
}

/// The caller's pid, the tag and the request of a `{Kind, {Pid, Tag}, Request}`.
fn request_parts<'a>(message: &'a Term, kind: &str) -> Option<(&'a Pid, &'a Term, &'a Term)> {
    let e = message.as_tuple_n(3)?;
    if !e[0].is_atom(kind) {
        return None;
    }
    let from = e[1].as_tuple_n(2)?;
    Some((from[0].as_pid()?, &from[1], &e[2]))
}

/// True for a `$gen_call` whose `From` is malformed: dropped with a log line, as a BEAM
/// gen_server would crash on it only if it tried to reply.
pub(crate) fn is_malformed_call(message: &Term) -> bool {
    message
        .as_tuple()
        .map(|e| e.first().map(|t| t.is_atom("$gen_call")).unwrap_or(false))
        .unwrap_or(false)
        && request_parts(message, "$gen_call").is_none()
}

/// `{'$gen_cast', Request}`.
pub fn parse_cast(message: &Term) -> Option<&Term> {
    let e = message.as_tuple_n(2)?;
    e[0].is_atom("$gen_cast").then_some(&e[1])
}

/// [`parse_cast`] on a message this code owns: the request is moved out, not copied.
/// The message comes back untouched when it is not a cast.
pub(super) fn take_cast(message: Term) -> Result<Term, Term> {
    if parse_cast(&message).is_none() {
        return Err(message);
    }
    let Term::Tuple(cast) = message else {
        unreachable!("parse_cast matched a tuple")
    };
    let [_, request]: [Term; 2] = cast.elements.try_into().expect("two elements");
    Ok(request)
}

/// What went wrong in a call that returned no reply ([`CallError::kind`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallErrorKind {
    /// The target did not exist (`noproc`).
    NoProc,
    /// The target's node went away or could not be reached (`{nodedown, Node}`).
    NodeDown(String),
    /// No reply in time (`timeout`).
    Timeout,
    /// The target was the calling process itself (`calling_self`): nobody would answer.
    CallingSelf,
    /// The target exited with this reason before replying: for a raise there,
    /// `{exception, stacktrace}`, the exception a struct that
    /// [`decode`](crate::term::Match::decode) reads into a Rust type
    /// (`#[serde(rename = "Elixir.ArgumentError")]`).
    Exit(Term),
}

/// `e.kind() == CallErrorKind::NoProc`, where `kind()` lends the kind.
impl PartialEq<CallErrorKind> for &CallErrorKind {
    fn eq(&self, other: &CallErrorKind) -> bool {
        *self == other
    }
}

impl CallErrorKind {
    /// The kind a call's exit reason (the first element of [`CallError::reason`]) says:
    /// what [`reason`](Self::reason) gives, read back.
    pub(crate) fn of(reason: &Term) -> CallErrorKind {
        match reason {
            r if r.is_atom("noproc") => CallErrorKind::NoProc,
            r if r.is_atom("timeout") => CallErrorKind::Timeout,
            r if r.is_atom("calling_self") => CallErrorKind::CallingSelf,
            r => match r.as_tuple_n(2) {
                Some([down, Term::Atom(node)]) if down.is_atom("nodedown") => {
                    CallErrorKind::NodeDown(node.name().to_owned())
                }
                _ => CallErrorKind::Exit(reason.clone()),
            },
        }
    }

    /// The reason as `gen:call` exits with it, the first element of
    /// [`CallError::reason`]: `noproc`, `{nodedown, Node}`, `timeout`, `calling_self`, or
    /// the target's exit reason.
    pub fn reason(&self) -> Term {
        match self {
            CallErrorKind::NoProc => atom("noproc"),
            CallErrorKind::NodeDown(n) => tuple(vec![atom("nodedown"), atom(n)]),
            CallErrorKind::Timeout => atom("timeout"),
            CallErrorKind::CallingSelf => atom("calling_self"),
            CallErrorKind::Exit(r) => r.clone(),
        }
    }
}

/// A call that returned no reply: what went wrong ([`kind`](Self::kind)) in which call.
/// Through `?` in a process it exits the process as a failed `GenServer.call` exits an
/// Elixir process, with [`reason`](Self::reason):
/// `{:noproc, {GenServer, :call, [server, request, timeout]}}`; it prints as Elixir
/// prints that exit (`exited in: GenServer.call(:nope, :hi, 5000)` and the reason below
/// it).
///
/// ```no_run
/// # async fn demo(p: &mut cnode::Process) {
/// use cnode::term::atom;
/// use cnode::CallErrorKind;
/// match p.call(("Elixir.Counter", "alex@localhost"), atom("get"), None).await {
///     Ok(count) => println!("{count}"),
///     Err(e) if e.kind() == CallErrorKind::NoProc => println!("no counter yet"),
///     Err(e) => println!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", Exception::format_exit(&self.reason()))]
pub struct CallError(Box<FailedCall>);

#[derive(Debug, Clone, PartialEq)]
struct FailedCall {
    kind: CallErrorKind,
    /// `call`, or `stop` ([`stop`](super::stop)).
    function: &'static str,
    server: Term,
    request: Term,
    timeout: Option<Duration>,
}

impl CallError {
    pub(crate) fn new(
        kind: CallErrorKind,
        to: &Dest,
        request: Term,
        timeout: Option<Duration>,
    ) -> Self {
        CallError(Box::new(FailedCall {
            kind,
            function: "call",
            server: to.to_term(),
            request,
            timeout,
        }))
    }

    /// A failed `GenServer.stop(server, reason, timeout)`.
    pub(crate) fn stop(
        kind: CallErrorKind,
        to: &Dest,
        reason: Term,
        timeout: Option<Duration>,
    ) -> Self {
        let mut e = CallError::new(kind, to, reason, timeout);
        e.0.function = "stop";
        e
    }

    /// What went wrong.
    pub fn kind(&self) -> &CallErrorKind {
        &self.0.kind
    }

    /// The exit reason `GenServer.call` exits the caller with:
    /// `{Reason, {GenServer, :call, [server, request, timeout]}}`, `Reason` as
    /// [`CallErrorKind::reason`] gives it and `timeout` in milliseconds or `:infinity`.
    pub fn reason(&self) -> Term {
        let call = &*self.0;
        let timeout = crate::term::timeout(call.timeout);
        tuple(vec![
            call.kind.reason(),
            tuple(vec![
                atom("Elixir.GenServer"),
                atom(call.function),
                list(vec![call.server.clone(), call.request.clone(), timeout]),
            ]),
        ])
    }

    /// The request, to send again: a request given away comes back here.
    pub fn into_request(self) -> Term {
        self.0.request
    }
}

impl Process {
    /// `GenServer.call(Dest, Request, Timeout)`, the timeout a `Duration` (or `Some`) or
    /// `None` to wait for ever (`:infinity`), as
    /// `gen:do_call/4`: monitor with alias, send, wait for the reply or the `DOWN`.
    /// The request is a `Term` given away or a `&Term` lent ([`IntoMessage`]); either way
    /// it is sent as lent, and kept until the reply for the error a failed call returns
    /// (a lent one is cloned only then).
    pub async fn call(
        &mut self,
        to: impl Into<Dest>,
        request: impl IntoMessage,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Term, CallError> {
        self.gen_call("$gen_call", to.into(), request, timeout.into())
            .await
    }

    /// `gen:call/4`: [`call`](Self::call) with the message's `label` (`$gen_call`, or
    /// `system` for a `sys` request).
    pub(crate) async fn gen_call(
        &mut self,
        label: &str,
        to: Dest,
        request: impl IntoMessage,
        timeout: Option<Duration>,
    ) -> Result<Term, CallError> {
        let request = request.into_kept();
        let failed = |kind, request: Cow<'_, Term>| {
            Err(CallError::new(kind, &to, request.into_owned(), timeout))
        };
        if self.is_me(&to) {
            return failed(CallErrorKind::CallingSelf, request);
        }
        // `{:global, Name}`: found first, as `gen:call` asks `global:whereis_name/1`;
        // nobody holding it is `noproc`.
        let Some(target) = self.node.resolved(to.clone()) else {
            return failed(CallErrorKind::NoProc, request);
        };
        let mref = self.monitor_with_alias(target.clone());
        let dropped = self.demonitor_on_drop(&mref);
        let tag = alias_tag(mref.clone());
        let me = &self.entry.pid;
        let from = tuple(vec![Term::Pid(*me), tag]);
        self.node
            .route_in(me, target, vec![atom(label), from], &*request);
        let reply = self
            .receive_match(timeout, |m| {
                m.as_tuple_n(2)
                    .map(|e| alias_tag_ref(&e[0]) == Some(&mref))
                    .unwrap_or(false)
                    || crate::process::handle::is_down_for(m, &mref)
            })
            .await;
        dropped.done();
        match reply {
            None => {
                self.demonitor(&mref, true);
                failed(CallErrorKind::Timeout, request)
            }
            Some(Term::Tuple(mut t)) if t.elements.len() == 2 => {
                self.demonitor(&mref, true);
                Ok(t.elements.pop().unwrap())
            }
            Some(down) => {
                let down = down.as_tuple_n(5);
                let reason = down.map(|e| e[4].clone()).unwrap_or(atom("noproc"));
                let kind = match reason.as_atom() {
                    Some("noproc") => CallErrorKind::NoProc,
                    Some("noconnection") => {
                        let node = down.and_then(|e| node_of(&e[3]));
                        CallErrorKind::NodeDown(
                            node.unwrap_or_else(|| self.node().name().to_owned()),
                        )
                    }
                    _ => CallErrorKind::Exit(reason),
                };
                failed(kind, request)
            }
        }
    }

    /// Whether `to` is this process, as `GenServer.call` finds it before it calls: its
    /// pid, or a name registered here that it holds.
    fn is_me(&self, to: &Dest) -> bool {
        let me = &self.entry.pid;
        let name = match to {
            Dest::Pid(pid) => return pid == me,
            Dest::Name(name) => name,
            Dest::RemoteName(name, node) if self.node.is_local(node) => name,
            Dest::Global(name) => return self.node.whereis_global(name).as_ref() == Some(me),
            Dest::RemoteName(..) | Dest::Alias(_) => return false,
        };
        self.node
            .registered_entry(name)
            .is_some_and(|e| &e.pid == me)
    }

    /// `GenServer.cast(Dest, Request)`.
    pub fn cast(&self, to: impl Into<Dest>, request: impl IntoMessage) {
        let me = &self.entry.pid;
        self.node
            .route_in(me, to.into(), vec![atom("$gen_cast")], request);
    }
}

/// The node of the process a `DOWN` names: a pid, `{Name, Node}` or an alias.
fn node_of(object: &Term) -> Option<String> {
    match object {
        Term::Pid(p) => Some(p.node.name().to_owned()),
        Term::Reference(r) => Some(r.node.name().to_owned()),
        _ => object.as_tuple_n(2)?[1].as_atom().map(str::to_owned),
    }
}

impl Node {
    /// `GenServer.call(to, request, timeout)` from code that is no process (an HTTP
    /// handler, `main`): made by a process of this node that lives for the call, and
    /// ends when the future is dropped before it resolves ([`Node::run_process`]).
    /// The timeout is a `Duration` (or `Some(Duration)`), or `None` to wait for ever
    /// (`:infinity`; Elixir's `GenServer.call/2` waits 5 s), as every call of this crate
    /// takes one. The request is a `Term` given away or a `&Term` lent, as for
    /// [`Process::call`].
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node) -> Result<(), cnode::CallError> {
    /// use cnode::term::atom;
    /// use std::time::Duration;
    /// let count = node
    ///     .call(("Elixir.Counter", "alex@localhost"), atom("get"), Duration::from_secs(5))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn call(
        &self,
        to: impl Into<Dest>,
        request: impl IntoMessage,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Term, CallError> {
        let (to, timeout) = (to.into(), timeout.into());
        // Kept here too: a process that ends before its call returns leaves the error
        // to be made here. (A lent request is copied: the process that calls needs one
        // of its own.)
        let request = std::sync::Arc::new(request.into_kept().into_owned());
        let (dest, kept) = (to.clone(), request.clone());
        self.run_process(move |mut p| async move { p.call(to, &*request, timeout).await })
            .await
            .unwrap_or_else(|e| {
                let request = std::sync::Arc::unwrap_or_clone(kept);
                let kind = CallErrorKind::Exit(e.exit_reason());
                Err(CallError::new(kind, &dest, request, timeout))
            })
    }

    /// `GenServer.cast(to, request)` from code that is no process.
    pub fn cast(&self, to: impl Into<Dest>, request: impl IntoMessage) {
        self.route_in(
            &self.user_pid(),
            to.into(),
            vec![atom("$gen_cast")],
            request,
        );
    }
}
