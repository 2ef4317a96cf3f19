//! Remote spawn: `SPAWN_REQUEST` from a BEAM node (`Node.spawn/4`, `spawn_link`,
//! `spawn_monitor`, `:erlang.spawn_opt`, and erpc/rpc, which spawn
//! `erpc:execute_call/4`). Every request is answered (a BEAM caller waits for it): the process
//! always starts; one whose MFA nobody registered exits `{undef, [{M, F, Args, []}]}`,
//! as on a BEAM node where the module is missing.

use crate::connection::message::PidOrAtom;
use crate::connection::message::{Message, SpawnRequest};
use crate::connection::ConnHandle;
use crate::node::Node;
use crate::process::{Exception, Process};
use crate::term::{atom, tuple, Atom, Match, Pid, Reference, Term};
use std::sync::Arc;

pub(crate) fn handle_request(node: &Node, conn: &Arc<ConnHandle>, request: SpawnRequest) {
    let module = request.mfa.module.name().to_owned();
    let function = request.mfa.function.name().to_owned();
    let args = request.arg_list.elements;
    let mut link = false;
    let mut monitor = false;
    let mut bad = false;
    for opt in &request.opt_list.elements {
        match opt {
            Term::Atom(a) if a.name() == "link" => link = true,
            Term::Atom(a) if a.name() == "monitor" => monitor = true,
            Term::Tuple(t) if t.elements.first().is_some_and(|e| e.is_atom("monitor")) => {
                monitor = true
            }
            // Scheduling and heap settings mean nothing to a Rust process; their values
            // are checked as the BEAM checks them.
            Term::Tuple(t) => bad |= !setting_ok(&t.elements),
            _ => bad = true,
        }
    }
    if bad {
        // As a BEAM node answers an option it does not take: the caller's
        // `spawn_opt/5` raises `badarg` (cause `badopt`), and nothing runs.
        return refuse(conn, request.req_id, request.from_pid, "badopt");
    }
    if node.process_count() >= node.0.config.max_processes {
        tracing::error!("Too many processes (max={})", node.0.config.max_processes);
        return refuse(conn, request.req_id, request.from_pid, "system_limit");
    }
    let mut opts = node.spawn_opts(request.group_leader);
    opts.initial_call = (
        Atom::from(module.as_str()),
        Atom::from(function.as_str()),
        args.len(),
    );
    if link {
        opts.link = Some(request.from_pid);
    }
    if monitor {
        opts.monitored_by = Some((request.from_pid, request.req_id.clone()));
    }
    let prepared = match node.prepare(opts) {
        Ok(p) => p,
        Err(_) => return refuse(conn, request.req_id, request.from_pid, "system_limit"),
    };
    let flags = i32::from(link) | (i32::from(monitor) << 1);
    conn.send(Message::spawn_reply(
        request.req_id,
        request.from_pid,
        flags.into(),
        PidOrAtom::Pid(*prepared.pid()),
    ));
    let node2 = node.clone();
    node.start_prepared(prepared, move |p| async move {
        if module == "erpc" && function == "execute_call" && args.len() == 4 {
            return Err(Exception::Exit(execute_call(&node2, p, args).await));
        }
        if module == "erpc" && function == "execute_cast" && args.len() == 3 {
            let [m, f, a] = <[Term; 3]>::try_from(args).unwrap();
            return match mfa_args(&m, &f, &a) {
                Some((m, f, a)) => node2.apply(p, &m, &f, a).await.map(|_| ()),
                None => Err(Exception::bare(tuple(vec![atom("erpc"), atom("badarg")]))),
            };
        }
        node2.apply(p, &module, &function, args).await.map(|_| ())
    });
}

/// `erpc:call/5` to this node itself: the process `SPAWN_REQUEST` would start, started
/// here without a connection (a node does not connect to itself), monitored by `from`
/// under `req_id`, whose `DOWN` carries the result as from another node.
pub(crate) fn execute_call_here(node: &Node, from: Pid, req_id: Reference, args: Vec<Term>) {
    let mut opts = node.spawn_opts(node.user_pid());
    opts.initial_call = (Atom::from("erpc"), Atom::from("execute_call"), 4);
    opts.monitored_by = Some((from, req_id));
    let Ok(prepared) = node.prepare(opts) else {
        return;
    };
    let node2 = node.clone();
    node.start_prepared(prepared, move |p| async move {
        Err(Exception::Exit(execute_call(&node2, p, args).await))
    });
}

/// The `SPAWN_REPLY` of a spawn that did not happen: `reason` where the pid would be.
fn refuse(conn: &ConnHandle, req_id: Reference, from: Pid, reason: &str) {
    conn.send(Message::spawn_reply(
        req_id,
        from,
        0.into(),
        PidOrAtom::Atom(Atom::from(reason)),
    ));
}

/// Whether a `{Setting, Value}` spawn option has a value the BEAM takes; a setting of
/// a later release than this code knows passes.
fn setting_ok(option: &[Term]) -> bool {
    let [key, value] = option else {
        return false;
    };
    let is = |names: &[&str]| value.as_atom().is_some_and(|v| names.contains(&v));
    match key.as_atom() {
        Some("priority") => is(&["low", "normal", "high", "max"]),
        Some("fullsweep_after" | "min_heap_size" | "min_bin_vheap_size") => {
            value.as_int().is_some_and(|n| n >= 0)
        }
        Some("max_heap_size") => {
            value.as_int().is_some_and(|n| n >= 0) || matches!(value, Term::Map(_))
        }
        Some("message_queue_data") => is(&["off_heap", "on_heap"]),
        Some("async_dist") => is(&["true", "false"]),
        Some("link") => value.as_list().is_some(),
        Some(_) => true,
        None => false,
    }
}

/// `M`, `F` and `Args` of a call, when they are two atoms and a proper list.
pub(crate) fn mfa_args(m: &Term, f: &Term, a: &Term) -> Option<(String, String, Vec<Term>)> {
    Some((
        m.as_atom()?.to_owned(),
        f.as_atom()?.to_owned(),
        a.as_list()?.to_vec(),
    ))
}

/// `erpc:execute_call(Ref, M, F, A)`: the result travels back as the exit reason, which
/// the caller's monitor delivers, as an OTP 25 node sends it.
async fn execute_call(node: &Node, p: Process, args: Vec<Term>) -> Term {
    let [reference, m, f, a] = <[Term; 4]>::try_from(args).unwrap();
    let Some((m, f, a)) = mfa_args(&m, &f, &a) else {
        return tuple(vec![
            reference,
            atom("error"),
            tuple(vec![atom("erpc"), atom("badarg")]),
        ]);
    };
    let arity = a.len();
    let pid = p.pid();
    let result = node.apply(p, &m, &f, a).await;
    if let Err(e) = &result {
        crate::node::log_answered_panic(&pid, e);
    }
    let result = match result {
        // A function not there, called through `erlang:apply/2,3`: below its frame,
        // `apply`'s own, as erpc's caller sees it on the BEAM.
        Err(Exception::Error {
            reason,
            mut stacktrace,
        }) if m == "erlang" && f == "apply" && reason.is_atom("undef") => {
            stacktrace.push(super::builtins::apply_frame(arity));
            Err(Exception::Error { reason, stacktrace })
        }
        other => other,
    };
    match result {
        Ok(v) => tuple(vec![reference, atom("return"), v]),
        Err(Exception::Throw(v)) => tuple(vec![reference, atom("throw"), v]),
        Err(Exception::Exit(r)) => tuple(vec![reference, atom("exit"), r]),
        Err(Exception::Error { reason, stacktrace }) => tuple(vec![
            reference,
            atom("error"),
            reason,
            crate::term::list(stacktrace),
        ]),
    }
}
