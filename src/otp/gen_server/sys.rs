//! The `sys` requests a BEAM user sends a GenServer (`sys:handle_system_msg/6` and
//! `gen_server`'s `system_*` callbacks): `{system, From, Request}`.

use super::{call, Caller, GenServer};
use crate::process::Process;
use crate::term::{atom, charlist, list, nil, tuple, Match, Term};

/// Answers one `sys` request; `Some(reason)` when the server is to stop with it
/// (`{terminate, Reason}`, answered `ok` first, as `sys` does).
pub(super) fn handle<S: GenServer>(
    server: &S,
    p: &Process,
    parent: Option<&crate::term::Pid>,
    from: Caller,
    request: &Term,
    suspended: &mut bool,
) -> Option<Term> {
    let reply = match request {
        Term::Atom(a) => match a.name() {
            "get_state" if answers_ok_state(&from) => tuple(vec![atom("ok"), server.state()]),
            "get_state" => server.state(),
            "get_status" => status(server, p, parent, *suspended),
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
            // sys:trace/2, sys:log/2, sys:statistics/2 and friends: no debug
            // options are kept, and `sys` answers these `ok`.
            Some([t, _]) if t.is_atom("debug") => atom("ok"),
            _ => unknown(request),
        },
    };
    from.reply(p, reply);
    None
}

/// Whether the caller's `sys:get_state` wants `{ok, State}` (OTP 26.1 and later, where a
/// state of `{error, _}` is no longer taken for an error) or the bare state (OTP 25).
/// Both send the same request with the same flags; what tells them apart is the tag's
/// reference: the caller's monitor alias is a process-bound reference of five words
/// from OTP 26 on, and of three before.
fn answers_ok_state(from: &Caller) -> bool {
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
/// `{status, Pid, {module, gen_server}, [PDict, SysState, Parent, Debug, Status]}`.
fn status<S: GenServer>(
    server: &S,
    p: &Process,
    parent: Option<&crate::term::Pid>,
    suspended: bool,
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
        list(vec![tuple(vec![charlist("State"), server.state()])]),
    ]);
    tuple(vec![
        atom("status"),
        Term::Pid(pid),
        tuple(vec![atom("module"), atom("gen_server")]),
        list(vec![
            nil(),
            sys_state,
            parent,
            nil(),
            list(vec![header, data, state]),
        ]),
    ])
}

/// While suspended, the server takes only `sys` requests; everything else waits in
/// its mailbox, in order.
pub(super) async fn next_system_message(p: &mut Process) -> Term {
    p.receive_match(None, |m| call::parse_system(m).is_some())
        .await
        .expect("a receive without a timeout returns a message")
}
