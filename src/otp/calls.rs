//! The library functions that call a server, for callers that run them on this node
//! through `:erpc`/`:rpc` (or the `cnode` command's `call`): `gen_server:call/2,3`,
//! `cast/2` and `stop/1,3`, Elixir's `GenServer.call`, `cast` and `stop`,
//! `sys:get_state/1,2` and `get_status/1,2`, the supervisors' `which_children/1` and
//! `count_children/1`, `Task.Supervisor.children/1`. Every BEAM node has the Erlang
//! ones (an Elixir node the Elixir ones too), so `:rpc.call(node, :sys, :get_state, [name])` asked of a Rust node
//! answers as asked of a BEAM node, and so does a script's `cnode call node
//! GenServer.call '{Counter, :node@host}' :get`. They run in the rpc's process: a
//! failure exits it as the function exits its caller (`{:noproc, {GenServer, :call,
//! [server, request, 5000]}}`), which the caller gets as from a BEAM node.

use super::gen_server::CallErrorKind;
use crate::node::Node;
use crate::process::{Dest, Exception, Process};
use crate::term::{atom, int, list, nil, tuple, Match, Term};
use std::time::Duration;

/// A call's default timeout, gen_server's and GenServer's.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);

pub(crate) fn register(node: &Node) {
    for (module, arity) in [
        ("gen_server", 2),
        ("gen_server", 3),
        ("Elixir.GenServer", 2),
        ("Elixir.GenServer", 3),
    ] {
        node.register_function(module, "call", arity, move |mut p, args| async move {
            let timeout = timeout_arg(args.get(2), module, "call", &args)?;
            let failed = |reason: Term| {
                let mut call = vec![args[0].clone(), args[1].clone()];
                // gen_server:call/2 exits with its own two arguments; GenServer.call/2
                // with the default timeout added.
                if args.len() == 3 || module == "Elixir.GenServer" {
                    call.push(crate::term::timeout(timeout));
                }
                exited(reason, module, "call", call)
            };
            let Some(to) = server(&p, &args[0], module, "call", &args)? else {
                return Err(failed(atom("noproc")));
            };
            p.gen_call("$gen_call", to, &args[1], timeout)
                .await
                .map_err(|e| failed(e.kind().reason()))
        });
    }
    for module in ["gen_server", "Elixir.GenServer"] {
        node.register_function(module, "cast", 2, move |p, args| async move {
            // A cast to a name nobody holds is `ok` all the same.
            if let Some(to) = server(&p, &args[0], module, "cast", &args)? {
                p.cast(to, &args[1]);
            }
            Ok(atom("ok"))
        });
    }
    // gen_server:stop/1,3 (gen:stop: a name nobody holds exits `noproc`) and
    // GenServer.stop/1,2,3 (the same exits wrapped in `{_, {GenServer, :stop, args}}`).
    for (module, arity) in [
        ("gen_server", 1),
        ("gen_server", 3),
        ("Elixir.GenServer", 1),
        ("Elixir.GenServer", 2),
        ("Elixir.GenServer", 3),
    ] {
        node.register_function(module, "stop", arity, move |mut p, args| async move {
            let reason = args.get(1).cloned().unwrap_or_else(|| atom("normal"));
            let timeout = match args.get(2) {
                None => None,
                Some(t) => timeout_arg(Some(t), module, "stop", &args)?,
            };
            let elixir = module.starts_with("Elixir.");
            let failed = |why: Term| {
                if elixir {
                    let call = vec![
                        args[0].clone(),
                        reason.clone(),
                        crate::term::timeout(timeout),
                    ];
                    exited(why, module, "stop", call)
                } else {
                    Exception::Exit(why)
                }
            };
            let to = match server(&p, &args[0], module, "stop", &args)? {
                Some(to) if registered(p.node(), &to) => to,
                _ => return Err(failed(atom("noproc"))),
            };
            stop(&mut p, to, reason.clone(), timeout)
                .await
                .map_err(failed)
        });
    }
    // Supervisor.which_children/count_children, and DynamicSupervisor's and
    // Task.Supervisor.children/1: calls with an infinite timeout.
    for (module, function, request) in [
        ("supervisor", "which_children", "which_children"),
        ("supervisor", "count_children", "count_children"),
        ("Elixir.Supervisor", "which_children", "which_children"),
        ("Elixir.Supervisor", "count_children", "count_children"),
        (
            "Elixir.DynamicSupervisor",
            "which_children",
            "which_children",
        ),
        (
            "Elixir.DynamicSupervisor",
            "count_children",
            "count_children",
        ),
        ("Elixir.Task.Supervisor", "children", "which_children"),
    ] {
        node.register_function(module, function, 1, move |mut p, args| async move {
            // supervisor.erl calls through gen_server, the Elixir modules through
            // GenServer: their exits name the one they call.
            let via = match module {
                "supervisor" | "Elixir.Supervisor" => "gen_server",
                _ => "Elixir.GenServer",
            };
            let failed = |reason: Term| {
                exited(
                    reason,
                    via,
                    "call",
                    vec![args[0].clone(), atom(request), atom("infinity")],
                )
            };
            let Some(to) = server(&p, &args[0], module, function, &args)? else {
                return Err(failed(atom("noproc")));
            };
            let reply = p
                .gen_call("$gen_call", to, &atom(request), None)
                .await
                .map_err(|e| failed(e.kind().reason()))?;
            Ok(match (module, function) {
                // A map, from the supervisor's keyword list (`:maps.from_list/1`).
                ("Elixir.Supervisor" | "Elixir.DynamicSupervisor", "count_children") => {
                    match reply.as_list() {
                        Some(counts) => {
                            crate::term::map(counts.iter().filter_map(|c| {
                                c.as_tuple_n(2).map(|e| (e[0].clone(), e[1].clone()))
                            }))
                        }
                        None => reply,
                    }
                }
                // The children's pids.
                (_, "children") => list(
                    reply
                        .as_list()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|c| c.as_tuple_n(4).and_then(|e| e[1].as_pid()))
                        .map(|pid| Term::Pid(*pid))
                        .collect(),
                ),
                _ => reply,
            })
        });
    }
    for (function, arity) in [
        ("get_state", 1),
        ("get_state", 2),
        ("get_status", 1),
        ("get_status", 2),
    ] {
        node.register_function("sys", function, arity, move |mut p, args| async move {
            let timeout = timeout_arg(args.get(1), "sys", function, &args)?;
            let failed = |reason: Term| exited(reason, "sys", function, args.clone());
            let Some(to) = server(&p, &args[0], "sys", function, &args)? else {
                return Err(failed(atom("noproc")));
            };
            let here = is_here(p.node(), &to);
            let reply = p
                .gen_call("system", to, &atom(function), timeout)
                .await
                .map_err(|e| failed(e.kind().reason()))?;
            if function == "get_status" {
                return Ok(reply);
            }
            // `{error, Reason}` is raised. A server of this node answers this caller
            // with its bare state, as OTP 25's `sys` does; a BEAM node's from OTP 26
            // on with `{ok, State}`, from OTP 25 with the bare state.
            match reply.as_tuple_n(2) {
                Some([tag, reason]) if tag.is_atom("error") => Err(Exception::bare(reason.clone())),
                Some([tag, state]) if tag.is_atom("ok") && !here => Ok(state.clone()),
                _ => Ok(reply),
            }
        });
    }
}

/// Where `server` is, as `gen:call/4` finds it: a pid, a local name, `{Name, Node}`,
/// `{:global, Name}` or `{:via, :global, Name}`; `None` for a `global` name nobody
/// holds. Any other term raises as `gen:where/1` does.
fn server(
    p: &Process,
    server: &Term,
    module: &str,
    function: &str,
    args: &[Term],
) -> Result<Option<Dest>, Exception> {
    let global = |name: &Term| Ok(p.node().whereis_global(name).map(Dest::Pid));
    match server {
        Term::Pid(pid) => return Ok(Some(Dest::Pid(*pid))),
        Term::Atom(name) => return Ok(Some(Dest::Name(*name))),
        _ => {}
    }
    match server.as_tuple() {
        Some([Term::Atom(tag), name]) if tag.name() == "global" => global(name),
        Some([Term::Atom(name), Term::Atom(node)]) => Ok(Some(Dest::RemoteName(*name, *node))),
        Some([Term::Atom(tag), Term::Atom(via), name]) if tag.name() == "via" => {
            if via.name() == "global" {
                global(name)
            } else {
                // The registry module is BEAM code: not here.
                Err(Exception::undef(
                    via.name(),
                    "whereis_name",
                    vec![name.clone()],
                ))
            }
        }
        _ => Err(Exception::Error {
            reason: atom("function_clause"),
            stacktrace: vec![
                tuple(vec![
                    atom("gen"),
                    atom("where"),
                    list(vec![server.clone()]),
                    nil(),
                ]),
                tuple(vec![
                    atom(module),
                    atom(function),
                    int(args.len() as i64),
                    nil(),
                ]),
            ],
        }),
    }
}

/// `proc_lib:stop/3`: `sys:terminate(To, Reason, Timeout)`, then the process's `DOWN`;
/// `Err` is the reason the caller exits with (`noproc`, `timeout`, or the process's
/// exit reason when it is not `reason`).
pub(crate) async fn stop(
    p: &mut Process,
    to: Dest,
    reason: Term,
    timeout: Option<Duration>,
) -> Result<Term, Term> {
    let started = std::time::Instant::now();
    let monitor = p.monitor(to.clone());
    let request = tuple(vec![atom("terminate"), reason.clone()]);
    match p.gen_call("system", to, request, timeout).await {
        Ok(_) => {}
        Err(e) => match e.kind() {
            CallErrorKind::NoProc | CallErrorKind::Timeout => {
                p.demonitor(&monitor, true);
                return Err(e.kind().reason());
            }
            // It ended with the reason asked for before it answered.
            CallErrorKind::Exit(r) if *r == reason => {}
            other => {
                p.demonitor(&monitor, true);
                return Err(other.reason());
            }
        },
    }
    let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
    match p
        .receive_match(left, |m| crate::process::handle::is_down_for(m, &monitor))
        .await
    {
        Some(down) => match down.as_tuple_n(5) {
            Some([.., why]) if *why == reason => Ok(atom("ok")),
            Some([.., why]) => Err(why.clone()),
            _ => Ok(atom("ok")),
        },
        None => {
            p.demonitor(&monitor, true);
            Err(atom("timeout"))
        }
    }
}

/// Whether a name of this node that `to` is has a process (what `GenServer.stop` and
/// `gen:stop` look up first); true for anything else, which the stop finds out.
pub(crate) fn registered(node: &Node, to: &Dest) -> bool {
    match to {
        Dest::Name(name) => node.whereis(name.name()).is_some(),
        Dest::RemoteName(name, n) if node.is_local(n) => node.whereis(name.name()).is_some(),
        Dest::Global(name) => node.whereis_global(name).is_some(),
        _ => true,
    }
}

/// Whether `to` is a process of this node.
fn is_here(node: &Node, to: &Dest) -> bool {
    match to {
        Dest::Pid(pid) => node.is_local(&pid.node),
        Dest::Name(_) => true,
        Dest::RemoteName(_, n) => node.is_local(n),
        Dest::Alias(r) => node.is_local(&r.node),
        Dest::Global(name) => node
            .whereis_global(name)
            .is_some_and(|pid| node.is_local(&pid.node)),
    }
}

/// A call's timeout argument: milliseconds or `infinity` (`None`); the default when
/// there is none.
fn timeout_arg(
    arg: Option<&Term>,
    module: &str,
    function: &str,
    args: &[Term],
) -> Result<Option<Duration>, Exception> {
    match arg {
        None => Ok(Some(DEFAULT_TIMEOUT)),
        Some(t) if t.is_atom("infinity") => Ok(None),
        Some(t) => match t.as_int() {
            Some(ms) if ms >= 0 => Ok(Some(Duration::from_millis(ms as u64))),
            _ => Err(Exception::Exit(tuple(vec![
                atom("badarg"),
                tuple(vec![atom(module), atom(function), list(args.to_vec())]),
            ]))),
        },
    }
}

/// The exit of a call that failed: `{Reason, {Module, Function, Args}}`.
pub(crate) fn exited(reason: Term, module: &str, function: &str, args: Vec<Term>) -> Exception {
    Exception::Exit(tuple(vec![
        reason,
        tuple(vec![atom(module), atom(function), list(args)]),
    ]))
}
