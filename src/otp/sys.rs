//! The `sys` protocol (`sys:handle_system_msg/6` and `gen_server`'s `system_*`
//! callbacks): the `{system, From, Request}` requests a BEAM user sends a process that
//! runs as a gen_server (`:sys.get_state/1`, `:sys.get_status/1`, `:sys.suspend/1`,
//! `GenServer.stop/3`). Rust GenServers, the `Task.Supervisor` and the system processes
//! (`net_kernel`, `rex`, `global_name_server`, `logger_proxy`) answer them, as their
//! BEAM counterparts do: a process that left them unanswered would leave the caller
//! waiting until its timeout (`GenServer.stop/3`'s is `infinity`).

use super::gen_server::{parse_request, Caller};
use crate::process::Process;
use crate::term::{atom, charlist, list, nil, tuple, Match, Pid, Term};

/// The callback module a supervisor's `:sys.get_status/1` names
/// (`{supervisor, [{"Callback", Module}]}`), which `:supervisor.get_callback_module/1`
/// reads.
#[derive(Clone, Copy)]
pub(crate) enum Callback<'a> {
    None,
    /// Named to callers of OTP 25 and earlier only, as Elixir's `DynamicSupervisor`
    /// does up to Elixir 1.16 (its `format_status/2`).
    UpToOtp25(&'a str),
    /// Named to every caller: a supervisor's record differs between OTP releases
    /// (12 fields up to OTP 27, 15 and 16 in OTP 28 and 29), and a caller of OTP 26 or
    /// later that finds no callback in the status reads it from the record at the
    /// place its own release has it.
    Always(&'a str),
}

/// `{system, From, Request}`, with `From` well formed.
pub(crate) fn parse(message: &Term) -> Option<(Caller, &Term)> {
    parse_request(message, "system")
}

/// Answers one `sys` request, with `state` giving the process's state as a term;
/// `Some(reason)` when the process is to stop with it (`{terminate, Reason}`, answered
/// `ok` first, as `sys` does). `parent` is the process that started it, if any;
/// `supervisor` the callback module of a supervisor, which its status names.
pub(crate) fn handle(
    p: &Process,
    parent: Option<&Pid>,
    from: Caller,
    request: &Term,
    suspended: &mut bool,
    state: &dyn Fn() -> Term,
    supervisor: Callback,
) -> Option<Term> {
    let reply = match request {
        Term::Atom(a) => match a.name() {
            // OTP 26.1 and later want `{ok, State}` (a state of `{error, _}` is no
            // longer taken for an error), OTP 25 the bare state.
            "get_state" if otp26_or_later(&from) => tuple(vec![atom("ok"), state()]),
            "get_state" => state(),
            "get_status" => {
                // Elixir's supervisors name their callback module in their status up
                // to OTP 25 and Elixir 1.16 (`format_status/2`), not from OTP 26 and
                // Elixir 1.17 on (`format_status/1`): a caller of OTP 26 or later is
                // taken for one of the later.
                let supervisor = match supervisor {
                    Callback::Always(module) => Some(module),
                    Callback::UpToOtp25(module) if !otp26_or_later(&from) => Some(module),
                    _ => None,
                };
                status(p, parent, *suspended, state(), supervisor)
            }
            "suspend" => {
                *suspended = true;
                atom("ok")
            }
            "resume" => {
                *suspended = false;
                atom("ok")
            }
            _ => unknown(request),
        },
        _ => match request.as_tuple_n(2) {
            Some([t, reason]) if t.is_atom("terminate") => {
                from.reply(p, atom("ok"));
                return Some(reason.clone());
            }
            // The state fun is BEAM code: it cannot run here, and fails as a fun of a
            // module this node does not have does (`sys:replace_state/2` raises it).
            Some([t, _fun]) if t.is_atom("replace_state") => tuple(vec![
                atom("error"),
                tuple(vec![
                    atom("callback_failed"),
                    tuple(vec![atom("gen_server"), atom("system_replace_state")]),
                    tuple(vec![atom("error"), atom("undef")]),
                ]),
            ]),
            // sys:trace/2: the events printed from now on (by a gen_server's loop,
            // [`print_event`]); sys:no_debug/1 ends it.
            Some([t, what]) if t.is_atom("debug") && is_trace(what).is_some() => {
                p.entry.state().sys_trace = is_trace(what) == Some(true);
                atom("ok")
            }
            Some([t, what]) if t.is_atom("debug") => debug_option(what),
            _ => unknown(request),
        },
    };
    from.reply(p, reply);
    None
}

/// sys:log/2, sys:statistics/2 and the other debug options but `trace`: none is
/// kept. A valid one is answered `ok`, and a `get` what `sys` gives when it was never
/// turned on (`{ok, no_statistics}`, `{ok, []}`); one `sys:debug_cmd/2` does not know
/// is `unknown_debug`, as there. `log_to_file` opens nothing: `{error, open_file}`.
fn debug_option(what: &Term) -> Term {
    let Some([kind, arg]) = what.as_tuple_n(2) else {
        return atom("unknown_debug");
    };
    let Term::Atom(kind) = kind else {
        return atom("unknown_debug");
    };
    let flag = arg.is_atom("true") || arg.is_atom("false");
    let known = match kind.name() {
        "statistics" if arg.is_atom("get") => {
            return tuple(vec![atom("ok"), atom("no_statistics")])
        }
        "log" if arg.is_atom("get") => return tuple(vec![atom("ok"), nil()]),
        "statistics" => flag,
        "log" => {
            flag || arg.is_atom("print")
                || matches!(arg.as_tuple_n(2), Some([t, n]) if t.is_atom("true")
                && match n {
                    Term::FixInteger(n) => n.value >= 1,
                    // sys takes any integer from 1 up, a bignum as well.
                    Term::BigInteger(n) => n.value.sign() == num_bigint::Sign::Plus,
                    _ => false,
                })
        }
        // sys opens the file and answers `{error, open_file}` when it cannot. This node
        // opens no file a peer names (that would let any peer create or truncate files
        // on its host), so it answers as for a file it cannot open.
        "log_to_file" if !arg.is_atom("false") => {
            return tuple(vec![atom("error"), atom("open_file")])
        }
        "log_to_file" | "remove" => true,
        "install" => matches!(arg, Term::Tuple(t) if matches!(t.elements.len(), 2 | 3)),
        _ => false,
    };
    atom(if known { "ok" } else { "unknown_debug" })
}

/// `{trace, Flag}` (`sys:trace/2`) or `no_debug` (`sys:no_debug/1`): whether it turns
/// tracing on.
fn is_trace(what: &Term) -> Option<bool> {
    if what.is_atom("no_debug") {
        return Some(false);
    }
    match what.as_tuple_n(2) {
        Some([t, flag])
            if t.is_atom("trace") && (flag.is_atom("true") || flag.is_atom("false")) =>
        {
            Some(flag.is_atom("true"))
        }
        _ => None,
    }
}

/// Whether `:sys.trace/2` turned tracing on for this process.
pub(crate) fn traced(p: &Process) -> bool {
    p.entry.state().sys_trace
}

/// An event of a traced gen_server, as gen_server's `print_event/3` prints it.
pub(crate) enum Event<'a> {
    /// A message it takes (`got call ... from ...`, `got cast ...`, `got ...`).
    In(&'a Term),
    /// The reply to a call, and the state after it.
    Out(&'a Term, &'a Pid, Term),
    /// The state after a callback that replied nothing.
    NoReply(Term),
}

/// Prints `event` through the process's group leader (`standard_io`), as
/// `sys:handle_debug/4` has gen_server print a traced server's events: `*DBG* Name got
/// call Request from Pid`, `*DBG* Name sent Reply to Pid, new state State`, in
/// Erlang's syntax. `Name` is its registered name, else its pid.
pub(crate) async fn print_event(p: &mut Process, event: Event<'_>) {
    let me = crate::term::Atom::from(p.node().name());
    let show = |t: &Term| crate::term::Erlang::local(t, &me).to_string();
    let name = match p.registered_name() {
        Some(n) => show(&atom(&n)),
        None => show(&Term::Pid(p.pid())),
    };
    let line = match event {
        Event::In(message) => match (
            super::gen_server::parse_call(message),
            message.as_tuple_n(2),
        ) {
            (Some((from, request)), _) => {
                format!(
                    "*DBG* {name} got call {} from {}",
                    show(request),
                    show(&Term::Pid(from.pid))
                )
            }
            (None, Some([cast, request])) if cast.is_atom("$gen_cast") => {
                format!("*DBG* {name} got cast {}", show(request))
            }
            _ => format!("*DBG* {name} got {}", show(message)),
        },
        Event::Out(reply, to, state) => format!(
            "*DBG* {name} sent {} to {}, new state {}",
            show(reply),
            show(&Term::Pid(*to)),
            show(&state)
        ),
        Event::NoReply(state) => format!("*DBG* {name} new state {}", show(&state)),
    };
    // As io:format/3 to a group leader gone: the server goes on.
    let _ = p.puts(&line).await;
}

/// Whether the caller runs OTP 26 or later. Both send the same requests with the same
/// flags; what tells them apart is the tag's reference: the caller's monitor alias is a
/// process-bound reference of five words from OTP 26 on, and of three before.
fn otp26_or_later(from: &Caller) -> bool {
    crate::term::alias_tag_ref(&from.tag).is_some_and(|r| r.id.len() > 3)
}

/// The answer `sys` gives to a request it does not know.
fn unknown(request: &Term) -> Term {
    tuple(vec![
        atom("error"),
        tuple(vec![atom("unknown_system_msg"), request.clone()]),
    ])
}

/// `:sys.get_status/1`'s answer, as `gen_server:format_status/2` builds it:
/// `{status, Pid, {module, gen_server}, [PDict, SysState, Parent, Debug, Status]}`; with
/// `supervisor`, the status ends with `{supervisor, [{"Callback", Module}]}`.
fn status(
    p: &Process,
    parent: Option<&Pid>,
    suspended: bool,
    state: Term,
    supervisor: Option<&str>,
) -> Term {
    let pid = p.pid();
    let sys_state = atom(if suspended { "suspended" } else { "running" });
    // The parent of a server not started by a process is itself, as for
    // `gen_server:start/3`.
    let parent = Term::Pid(parent.cloned().unwrap_or(pid));
    let name = p
        .registered_name()
        .unwrap_or_else(|| format!("<{}.{}.{}>", 0, pid.id, pid.serial));
    let header = tuple(vec![
        atom("header"),
        charlist(&format!("Status for generic server {name}")),
    ]);
    let data = tuple(vec![
        atom("data"),
        list(vec![
            tuple(vec![charlist("Status"), sys_state.clone()]),
            tuple(vec![charlist("Parent"), parent.clone()]),
            tuple(vec![charlist("Logged events"), nil()]),
        ]),
    ]);
    let state = tuple(vec![
        atom("data"),
        list(vec![tuple(vec![charlist("State"), state])]),
    ]);
    tuple(vec![
        atom("status"),
        Term::Pid(pid),
        tuple(vec![atom("module"), atom("gen_server")]),
        list(vec![
            list(p.dictionary()),
            sys_state,
            parent,
            nil(),
            list(
                [header, data, state]
                    .into_iter()
                    .chain(supervisor.map(|module| {
                        let callback = tuple(vec![charlist("Callback"), atom(module)]);
                        tuple(vec![atom("supervisor"), list(vec![callback])])
                    }))
                    .collect(),
            ),
        ]),
    ])
}

/// While suspended, a process takes only `sys` requests; everything else waits in its
/// mailbox, in order.
pub(crate) async fn next_system_message(p: &mut Process, parent: Option<&Pid>) -> Term {
    // sys's suspended loop takes its parent's `EXIT` too: a suspended server still
    // stops when its supervisor (or the node) stops it.
    let from_parent = |m: &Term| {
        crate::process::handle::exit_message(m).is_some_and(|(from, _)| Some(from) == parent)
    };
    p.receive_match(None, |m| parse(m).is_some() || from_parent(m))
        .await
        .expect("a receive without a timeout returns a message")
}

/// The next message for a process loop that takes no part in `sys` itself: `sys`
/// requests are answered on the way (`state` gives the state they ask for), and only
/// they are taken while suspended. `Err(reason)` when a request stops the process.
pub(crate) async fn receive(
    p: &mut Process,
    parent: Option<&Pid>,
    suspended: &mut bool,
    state: &(dyn Fn() -> Term + Sync),
    supervisor: Option<&str>,
) -> Result<Term, Term> {
    loop {
        let message = if *suspended {
            next_system_message(p, parent).await
        } else {
            p.receive().await
        };
        let Some((from, request)) = parse(&message) else {
            return Ok(message);
        };
        let callback = supervisor.map_or(Callback::None, Callback::UpToOtp25);
        if let Some(reason) = handle(p, parent, from, request, suspended, state, callback) {
            return Err(reason);
        }
    }
}
