//! BIFs BEAM nodes call on us through erpc: above all `erlang:process_info/2`, which a
//! crashing BEAM task's crash report asks about a linked Rust process (15 calls, each
//! answered before the crash completes).

use crate::node::{mfa_term, Dest, Node};
use crate::process::{Exception, Process};
use crate::term::{atom, int, list, map, nil, tuple, Match, Term};
use std::future::Future;
use std::sync::atomic::Ordering;

pub(crate) fn register(node: &Node) {
    bif(node, "process_info", 2, |p, args| async move {
        process_info(p.node(), &args[0], &args[1])
    });
    // The items a BEAM's `process_info/1` gives, in its order (`garbage_collection`
    // with OTP 25's settings); `registered_name` only for a registered one.
    bif(node, "process_info", 1, |p, args| async move {
        let items = [
            "registered_name",
            "current_function",
            "initial_call",
            "status",
            "message_queue_len",
            "links",
            "dictionary",
            "trap_exit",
            "error_handler",
            "priority",
            "group_leader",
            "total_heap_size",
            "heap_size",
            "stack_size",
            "reductions",
            "garbage_collection",
            "suspending",
        ];
        let info = process_info(
            p.node(),
            &args[0],
            &list(items.iter().map(|i| atom(i)).collect()),
        )?;
        let unnamed = |item: &Term| {
            item.as_tuple_n(2)
                .is_some_and(|e| e[0].is_atom("registered_name") && e[1].as_list() == Some(&[]))
        };
        Ok(match info.as_list() {
            Some(items) => list(items.iter().filter(|i| !unnamed(i)).cloned().collect()),
            None => info,
        })
    });
    bif(
        node,
        "node",
        0,
        |p, _| async move { Ok(atom(p.node().name())) },
    );
    // `Node.list()`: visible nodes only.
    bif(node, "nodes", 0, |p, _| async move {
        nodes(p.node(), &atom("visible"))
    });
    bif(node, "nodes", 1, |p, args| async move {
        nodes(p.node(), &args[0])
    });
    bif(node, "nodes", 2, |p, args| async move {
        nodes_info(p.node(), &args[0], &args[1])
    });
    // `false` for what is not a connected node, a non-atom included, as OTP 25 answers.
    bif(node, "disconnect_node", 1, |p, args| async move {
        let done = args[0].as_atom().is_some_and(|n| p.node().disconnect(n));
        Ok(crate::term::boolean(done))
    });
    bif(node, "is_process_alive", 1, |p, args| async move {
        match args[0].as_pid() {
            Some(pid) if p.node().is_local(&pid.node) => {
                Ok(crate::term::boolean(p.node().is_alive(pid)))
            }
            _ => Err(Exception::bare_badarg()),
        }
    });
    bif(node, "registered", 0, |p, _| async move {
        let names = p.node().registered_names();
        Ok(list(names.into_iter().map(Term::Atom).collect()))
    });
    bif(node, "processes", 0, |p, _| async move {
        Ok(list(p.node().pids().into_iter().map(Term::Pid).collect()))
    });
    bif(
        node,
        "self",
        0,
        |p, _| async move { Ok(Term::Pid(p.pid())) },
    );
    bif(node, "is_alive", 0, |_, _| async move { Ok(atom("true")) });
    // `erlang:send/2` and `exit/2` as the process running the call: what a script
    // does with `:rpc.call(node, :erlang, :exit, [pid, reason])`. A name registered
    // nowhere here is `badarg`, as `send/2` raises.
    bif(node, "send", 2, |p, args| async move {
        let [to, message]: [Term; 2] = args.try_into().expect("arity 2");
        send(&p, &to, &message)?;
        Ok(message)
    });
    bif(node, "exit", 2, |p, args| async move {
        let [to, reason]: [Term; 2] = args.try_into().expect("arity 2");
        // A pid, or (OTP 28 on) an alias, as `exit/3` takes them.
        match &to {
            Term::Pid(to) => p.exit(to, reason),
            Term::Reference(alias) => p.exit_alias(alias, reason, false),
            _ => return Err(Exception::bare_badarg()),
        }
        Ok(atom("true"))
    });
    // What a caller raises through erpc to see its own error handling work: the
    // exception in the class asked for.
    bif(node, "exit", 1, |_, args| async move {
        Err(Exception::Exit(args[0].clone()))
    });
    bif(node, "error", 1, |_, args| async move {
        Err(Exception::bare(args[0].clone()))
    });
    bif(node, "throw", 1, |_, args| async move {
        Err(Exception::Throw(args[0].clone()))
    });
    // `init:stop/0,1`: `ok`, then the node stops ([`Node::stop`]) once the caller has
    // that answer, as a BEAM node's `init` takes it down after answering.
    node.register_function("init", "stop", 0, |p, _| async move {
        Ok(stop_after_answer(p, 0))
    });
    node.register_function("init", "stop", 1, |p, args| async move {
        match exit_status(&args[0], false) {
            Some(status) => Ok(stop_after_answer(p, status)),
            None => Err(Exception::Error {
                reason: atom("badarg"),
                stacktrace: vec![tuple(vec![atom("init"), atom("stop"), int(1), nil()])],
            }),
        }
    });
    // `erlang:halt/0,1,2`: the node stops at once and the call is never answered (an
    // erpc caller gets `noconnection`).
    bif(node, "halt", 0, |p, _| halt(p, Some(0)));
    bif(node, "halt", 1, |p, args| {
        let status = exit_status(&args[0], true);
        if status.is_some() {
            slogan(&args[0]);
        }
        halt(p, status)
    });
    bif(node, "halt", 2, |p, args| {
        let status = exit_status(&args[0], true).filter(|_| args[1].as_list().is_some());
        if status.is_some() {
            slogan(&args[0]);
        }
        halt(p, status)
    });
    // `apply(Module, Function, Args)` and `apply(Fun, Args)`: what `:erpc.call(node,
    // fun)`, `Node.spawn(node, fun)` and a task given a fun run; and `spawn(Module,
    // Function, Args)`, a process of this node running the registered function with
    // the caller's group leader. Registered as they are (not through `bif`, which
    // keeps a copy of every call's arguments): the arguments may be large, and a
    // failure of the function applied has that function's frame.
    node.register_function("erlang", "apply", 3, |p, args| async move {
        let Some((m, f, a)) = super::spawn::mfa_args(&args[0], &args[1], &args[2]) else {
            return Err(with_bif_frame(Exception::bare_badarg(), "apply", args));
        };
        p.node().clone().apply(p, &m, &f, a).await
    });
    node.register_function("erlang", "apply", 2, |p, args| async move {
        apply_fun(p, args).await
    });
    node.register_function("erlang", "spawn", 3, |p, args| async move {
        let Some((m, f, a)) = super::spawn::mfa_args(&args[0], &args[1], &args[2]) else {
            return Err(with_bif_frame(Exception::bare_badarg(), "spawn", args));
        };
        let node = p.node().clone();
        let mut opts = node.spawn_opts(p.group_leader());
        // As `spawn/3` starts it: `process_info` gives `{M, F, Arity}` as its initial call.
        opts.initial_call = (m.as_str().into(), f.as_str().into(), a.len());
        let pid = node.clone().spawn_with(opts, move |child| async move {
            node.apply(child, &m, &f, a).await.map(|_| ())
        });
        Ok(Term::Pid(pid))
    });
    // `proc_lib:spawn/4` and `spawn_link/4` with a node: the process spawned there runs
    // `proc_lib:init_p(Parent, Ancestors, M, F, A)`, which runs `M:F(A)`.
    node.register_function("proc_lib", "init_p", 5, |p, args| async move {
        let Some((m, f, a)) = super::spawn::mfa_args(&args[2], &args[3], &args[4]) else {
            return Err(Exception::bare_badarg());
        };
        p.node().clone().apply(p, &m, &f, a).await
    });
    // `node(Arg)`: the node of a pid, port or reference.
    bif(node, "node", 1, |_, args| async move {
        let of = match &args[0] {
            Term::Pid(pid) => pid.node,
            Term::Port(port) => port.node,
            Term::Reference(reference) => reference.node,
            _ => return Err(Exception::bare_badarg()),
        };
        Ok(Term::Atom(of))
    });
    harness_functions(node);
    everyday_functions(node);
    // `register/2` of a process of this node (`badarg` for a name taken, `undefined`, a
    // process with a name, one not alive or of another node) and `unregister/1`.
    bif(node, "register", 2, |p, args| async move {
        let name = args[0].as_atom().filter(|n| *n != "undefined");
        let entry = args[1].as_pid().and_then(|pid| p.node().local_entry(pid));
        match (name, entry) {
            (Some(name), Some(entry)) => match p.node().register_name(name, &entry) {
                Ok(()) => Ok(atom("true")),
                Err(_) => Err(Exception::bare_badarg()),
            },
            _ => Err(Exception::bare_badarg()),
        }
    });
    bif(node, "unregister", 1, |p, args| async move {
        match args[0].as_atom() {
            Some(name) if p.node().unregister_name(name) => Ok(atom("true")),
            _ => Err(Exception::bare_badarg()),
        }
    });
    bif(node, "whereis", 1, |p, args| async move {
        match args[0].as_atom() {
            Some(name) => Ok(p
                .node()
                .whereis(name)
                .map(Term::Pid)
                .unwrap_or_else(|| atom("undefined"))),
            None => Err(Exception::bare_badarg()),
        }
    });
}

/// What test harnesses and operators' consoles ask a node before anything else, with
/// the answers that hold here: its OS pid (`:os.getpid/0`, `System.pid/0`), `System.stop`,
/// `Process.whereis/1`, a sleep (`:timer.sleep/1`, `Process.sleep/1`),
/// `:net_adm.ping/1` from this node, `erlang:group_leader/0`, and the code server's
/// view: a module is loaded when some function of it is registered
/// (`:code.is_loaded/1`, `ensure_loaded/1`, `erlang:function_exported/3`), so that
/// `iex --remsh` and tools that look for a module first hear `{:error, :nofile}` for
/// one this node does not have, as from a BEAM node without it.
fn harness_functions(node: &Node) {
    node.register_function("os", "getpid", 0, |_, _| async move {
        Ok(crate::term::charlist(&std::process::id().to_string()))
    });
    node.register_function("Elixir.System", "pid", 0, |_, _| async move {
        Ok(crate::term::binary(
            std::process::id().to_string().as_bytes(),
        ))
    });
    node.register_function("Elixir.System", "stop", 0, |p, _| async move {
        Ok(stop_after_answer(p, 0))
    });
    node.register_function("Elixir.System", "stop", 1, |p, args| async move {
        match args[0].as_int().filter(|i| *i >= 0) {
            Some(status) => Ok(stop_after_answer(p, (status & 0xff) as i32)),
            None => Err(Exception::bare(atom("function_clause"))),
        }
    });
    node.register_function("Elixir.Process", "whereis", 1, |p, args| async move {
        let name = args[0].as_atom().ok_or_else(Exception::bare_badarg)?;
        Ok(p.node()
            .whereis(name)
            .map(Term::Pid)
            .unwrap_or_else(nil_atom))
    });
    for (module, name) in [("timer", "sleep"), ("Elixir.Process", "sleep")] {
        // The process is held while it sleeps: what is sent to it queues in its
        // mailbox (and `message_queue_len` counts it), as on a BEAM node.
        node.register_function(module, name, 1, |p, args| async move {
            let _held = p;
            match (&args[0], args[0].as_int()) {
                (_, Some(ms)) if ms >= 0 => {
                    tokio::time::sleep(std::time::Duration::from_millis(ms as u64)).await
                }
                (t, _) if t.is_atom("infinity") => std::future::pending::<()>().await,
                _ => return Err(Exception::bare(atom("timeout_value"))),
            }
            Ok(atom("ok"))
        });
    }
    node.register_function("net_adm", "ping", 1, |p, args| async move {
        let up = reached(&p, &args[0]).await?;
        Ok(atom(if up { "pong" } else { "pang" }))
    });
    bif(node, "group_leader", 0, |p, _| async move {
        Ok(Term::Pid(p.group_leader()))
    });
    node.register_function("code", "is_loaded", 1, |p, args| async move {
        let module = args[0]
            .as_atom()
            .ok_or_else(|| Exception::bare(atom("function_clause")))?;
        Ok(if p.node().has_module(module) {
            tuple(vec![atom("file"), atom("in_memory")])
        } else {
            atom("false")
        })
    });
    node.register_function("code", "ensure_loaded", 1, |p, args| async move {
        let module = args[0]
            .as_atom()
            .ok_or_else(|| Exception::bare(atom("function_clause")))?;
        Ok(if p.node().has_module(module) {
            tuple(vec![atom("module"), args[0].clone()])
        } else {
            tuple(vec![atom("error"), atom("nofile")])
        })
    });
    bif(node, "function_exported", 3, |p, args| async move {
        let (Some(m), Some(f), Some(a)) = (args[0].as_atom(), args[1].as_atom(), args[2].as_int())
        else {
            return Err(Exception::bare_badarg());
        };
        let known = usize::try_from(a).is_ok_and(|a| p.node().function(m, f, a).is_some());
        Ok(crate::term::boolean(known))
    });
}

/// What scripts and consoles call on any node over rpc, answered as a BEAM node
/// answers: the clocks (`erlang:system_time/0,1`, `monotonic_time/0,1`,
/// `os:system_time/0,1` and Elixir's `System` names for them), `erlang:make_ref/0`,
/// `erlang:get_cookie/0`, `net_kernel:connect_node/1` and `get_net_ticktime/0`,
/// `inet:gethostname/0`, `erlang:send/3`, `GenServer.whereis/1`, and the Elixir names
/// of what is registered here in Erlang's (`Node.self/0`, `Node.list/0,1`,
/// `Process.alive?/1`, `Node.ping/1`, `Process.info/1,2`, ...: Elixir's functions
/// that call them, inlined by Elixir's compiler but called by name over rpc).
fn everyday_functions(node: &Node) {
    let started = std::time::Instant::now();
    bif(node, "system_time", 0, |_, _| async move {
        Ok(int(nanos_since_epoch()))
    });
    bif(node, "system_time", 1, |_, args| async move {
        in_unit(nanos_since_epoch(), &args[0])
    });
    node.register_function("os", "system_time", 0, |_, _| async move {
        Ok(int(nanos_since_epoch()))
    });
    node.register_function("os", "system_time", 1, |_, args| async move {
        in_unit(nanos_since_epoch(), &args[0])
    });
    // Monotonic: nanoseconds since the node started (a BEAM's has another origin,
    // and only differences between readings mean anything on either).
    bif(node, "monotonic_time", 0, move |_, _| async move {
        Ok(int(started.elapsed().as_nanos() as i64))
    });
    bif(node, "monotonic_time", 1, move |_, args| async move {
        in_unit(started.elapsed().as_nanos() as i64, &args[0])
    });
    // Timers set over rpc: `send_after/3` and `start_timer/3` to a process here (a pid
    // or a name), `cancel_timer/1` and `read_timer/1` (the milliseconds left, or
    // `false`).
    for (name, start) in [("send_after", false), ("start_timer", true)] {
        bif(node, name, 3, move |p, args| async move {
            let delay = args[0]
                .as_int()
                .and_then(|ms| u64::try_from(ms).ok())
                .ok_or_else(Exception::bare_badarg)?;
            let dest = match &args[1] {
                Term::Pid(pid) if p.node().is_local(&pid.node) => Dest::Pid(*pid),
                Term::Atom(name) => Dest::Name(*name),
                _ => return Err(Exception::bare_badarg()),
            };
            let delay = std::time::Duration::from_millis(delay);
            let message = args[2].clone();
            let timer = if start {
                p.start_timer(dest, message, delay)
            } else {
                p.send_after(dest, message, delay)
            };
            Ok(Term::Reference(Box::new(timer)))
        });
    }
    for (name, cancel) in [("cancel_timer", true), ("read_timer", false)] {
        bif(node, name, 1, move |p, args| async move {
            let Term::Reference(timer) = &args[0] else {
                return Err(Exception::bare_badarg());
            };
            let left = if cancel {
                p.cancel_timer(timer)
            } else {
                p.read_timer(timer)
            };
            Ok(left.map_or_else(|| atom("false"), |d| int(d.as_millis() as i64)))
        });
    }
    bif(node, "make_ref", 0, |p, _| async move {
        Ok(Term::Reference(Box::new(p.node().make_ref())))
    });
    bif(node, "get_cookie", 0, |p, _| async move {
        Ok(atom(&p.node().0.config.cookie))
    });
    // `send(Dest, Msg, Options)`: `ok`, as `send/2` sends (a name registered nowhere
    // here is `badarg`); `priority` (OTP 28) to a priority alias is a priority message,
    // `nosuspend` and `noconnect` change nothing here, and anything else is `badarg`
    // with the BEAM's cause, `badopt`.
    bif(node, "send", 3, |p, args| async move {
        let options = args[2].as_list().map(<[Term]>::to_vec);
        let priority = match options.as_deref().map(send_options) {
            Some(Some(priority)) => priority,
            _ => return Err(badopt("send", args)),
        };
        let [to, message, _]: [Term; 3] = args.try_into().expect("arity 3");
        if let (true, Term::Reference(alias)) = (priority, &to) {
            p.send_priority(alias, &message);
            return Ok(atom("ok"));
        }
        send(&p, &to, &message)?;
        Ok(atom("ok"))
    });
    // `exit(PidOrAlias, Reason, [priority])` (OTP 28): as `exit/2` to a pid; to an
    // alias, the exit signal goes to the process it names.
    bif(node, "exit", 3, |p, args| async move {
        let options_ok = args[2]
            .as_list()
            .is_some_and(|o| o.iter().all(|o| o.is_atom("priority")));
        if !options_ok {
            return Err(badopt("exit", args));
        }
        let priority = args[2].as_list().is_some_and(|o| !o.is_empty());
        match &args[0] {
            Term::Pid(to) => p.exit(to, args[1].clone()),
            Term::Reference(alias) => p.exit_alias(alias, args[1].clone(), priority),
            _ => return Err(Exception::bare_badarg()),
        }
        Ok(atom("true"))
    });
    node.register_function("net_kernel", "connect_node", 1, |p, args| async move {
        Ok(crate::term::boolean(reached(&p, &args[0]).await?))
    });
    // `net_kernel:allow/1`: `error` for a list with what is no atom.
    node.register_function("net_kernel", "allow", 1, |p, args| async move {
        let names: Option<Vec<&str>> = args[0]
            .as_list()
            .and_then(|l| l.iter().map(|n| n.as_atom()).collect());
        Ok(match names {
            Some(names) => {
                p.node().allow(&names);
                atom("ok")
            }
            None => atom("error"),
        })
    });
    // `net_kernel:disconnect/1`: as `erlang:disconnect_node/1` (`false` for this node
    // and for one not connected, as net_kernel answers).
    node.register_function("net_kernel", "disconnect", 1, |p, args| async move {
        let done = args[0].as_atom().is_some_and(|n| p.node().disconnect(n));
        Ok(crate::term::boolean(done))
    });
    node.register_function("net_kernel", "get_net_ticktime", 0, |p, _| async move {
        Ok(int(p.node().0.config.tick_time.as_secs() as i64))
    });
    // Labels (OTP 27): of the process running the call (`Process.set_label/1`), and of
    // a process here; `undefined` for one without, or gone.
    node.register_function("proc_lib", "set_label", 1, |p, args| async move {
        p.set_label(args[0].clone());
        Ok(atom("ok"))
    });
    // `proc_lib:get_label/1` (OTP 27): a process of another node asked on its node, as
    // proc_lib asks it (`{dictionary, '$process_label'}`); what is no pid, `undefined`.
    node.register_function("proc_lib", "get_label", 1, |mut p, args| async move {
        let undefined = || atom("undefined");
        let Some(pid) = args[0].as_pid().copied() else {
            return Ok(undefined());
        };
        if p.node().is_local(&pid.node) {
            let label = p
                .node()
                .local_entry(&pid)
                .and_then(|e| e.state().label.clone());
            return Ok(label.unwrap_or_else(undefined));
        }
        let item = tuple(vec![atom("dictionary"), atom("$process_label")]);
        let asked = p
            .erpc_call(
                pid.node.name(),
                "erlang",
                "process_info",
                vec![Term::Pid(pid), item],
                None,
            )
            .await;
        Ok(match asked.as_ref().ok().and_then(|r| r.as_tuple_n(2)) {
            Some([_, label]) => label.clone(),
            _ => undefined(),
        })
    });
    node.register_function("inet", "gethostname", 0, |_, _| async move {
        let host = crate::node::hostname();
        Ok(tuple(vec![atom("ok"), crate::term::charlist(&host)]))
    });
    node.register_function("Elixir.GenServer", "whereis", 1, |p, args| async move {
        let node = p.node();
        // `{:via, module, name}` of a registry other than `global` asks that module,
        // BEAM code this node does not have (`Registry.whereis_name/1`: `undef`).
        if let Some([via, Term::Atom(module), name]) = args[0].as_tuple_n(3) {
            if via.is_atom("via") && module.name() != "global" {
                return Err(Exception::undef(
                    module.name(),
                    "whereis_name",
                    vec![name.clone()],
                ));
            }
        }
        // The names `GenServer.call/3` takes, read as `Dest::server` reads them; a name
        // on another node is answered as it is, as `GenServer.whereis/1` answers it.
        let found = match Dest::server(&args[0]) {
            Some(Dest::Pid(pid)) => Some(Term::Pid(pid)),
            Some(Dest::Name(name)) => node.whereis(name.as_str()).map(Term::Pid),
            Some(Dest::RemoteName(name, at)) if node.is_local(&at) => {
                node.whereis(name.as_str()).map(Term::Pid)
            }
            Some(Dest::RemoteName(..)) => Some(args[0].clone()),
            Some(Dest::Global(name)) => node.whereis_global(&name).map(Term::Pid),
            Some(Dest::Alias(_)) | None => return Err(Exception::bare(atom("function_clause"))),
        };
        Ok(found.unwrap_or_else(nil_atom))
    });
    // Elixir's names for what is registered here under Erlang's.
    let elixir_names: [(&str, &str, usize, &str, &str); 21] = [
        ("Elixir.Node", "self", 0, "erlang", "node"),
        ("Elixir.Kernel", "node", 0, "erlang", "node"),
        ("Elixir.Kernel", "node", 1, "erlang", "node"),
        ("Elixir.Process", "alive?", 1, "erlang", "is_process_alive"),
        ("Elixir.Node", "list", 0, "erlang", "nodes"),
        ("Elixir.Node", "list", 1, "erlang", "nodes"),
        ("Elixir.Node", "alive?", 0, "erlang", "is_alive"),
        ("Elixir.Node", "ping", 1, "net_adm", "ping"),
        ("Elixir.Node", "connect", 1, "net_kernel", "connect_node"),
        ("Elixir.Node", "disconnect", 1, "erlang", "disconnect_node"),
        ("Elixir.Node", "get_cookie", 0, "erlang", "get_cookie"),
        ("Elixir.Process", "exit", 2, "erlang", "exit"),
        ("Elixir.Process", "list", 0, "erlang", "processes"),
        ("Elixir.Process", "registered", 0, "erlang", "registered"),
        ("Elixir.Process", "send", 3, "erlang", "send"),
        ("Elixir.Process", "set_label", 1, "proc_lib", "set_label"),
        (
            "Elixir.Process",
            "group_leader",
            0,
            "erlang",
            "group_leader",
        ),
        ("Elixir.System", "system_time", 0, "erlang", "system_time"),
        ("Elixir.System", "system_time", 1, "erlang", "system_time"),
        (
            "Elixir.System",
            "monotonic_time",
            0,
            "erlang",
            "monotonic_time",
        ),
        (
            "Elixir.System",
            "monotonic_time",
            1,
            "erlang",
            "monotonic_time",
        ),
    ];
    // `Process.info/1,2`: `erlang:process_info`, `nil` for a process that is not alive,
    // and `{:registered_name, []}` for one with no name (where `process_info/2` gives
    // `[]`).
    for arity in [1, 2] {
        node.register_function("Elixir.Process", "info", arity, |p, args| async move {
            let unnamed = args.get(1).is_some_and(|i| i.is_atom("registered_name"));
            let node = p.node().clone();
            let info = node.apply(p, "erlang", "process_info", args).await?;
            Ok(match info {
                i if i.is_atom("undefined") => nil_atom(),
                Term::List(l) if unnamed && l.elements.is_empty() => {
                    tuple(vec![atom("registered_name"), nil()])
                }
                i => i,
            })
        });
    }
    for (module, name, arity, erlang_module, erlang_name) in elixir_names {
        node.register_function(module, name, arity, move |p, args| async move {
            let node = p.node().clone();
            node.apply(p, erlang_module, erlang_name, args).await
        });
    }
}

/// Whether `peer` is this node or one it is (or now gets) connected to, for
/// `net_adm:ping/1` and `net_kernel:connect_node/1`; `function_clause` for a non-atom.
async fn reached(p: &Process, peer: &Term) -> Result<bool, Exception> {
    let peer = peer
        .as_atom()
        .ok_or_else(|| Exception::bare(atom("function_clause")))?;
    Ok(p.node().is_local(&crate::term::Atom::from(peer)) || p.node().connect(peer).await)
}

/// Nanoseconds since the Unix epoch: the BEAM's native time unit on Linux.
fn nanos_since_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `ns` in the time unit `unit` names (`erlang:convert_time_unit/3`'s units: `second`,
/// `millisecond`, `microsecond`, `nanosecond`, `native`, `perf_counter`, the old
/// plural names, or parts per second); `badarg` for anything else.
fn in_unit(ns: i64, unit: &Term) -> Result<Term, Exception> {
    let per_second = match unit {
        Term::Atom(a) => match a.as_str() {
            "second" | "seconds" => 1,
            "millisecond" | "milli_seconds" => 1_000,
            "microsecond" | "micro_seconds" => 1_000_000,
            "nanosecond" | "nano_seconds" | "native" | "perf_counter" => 1_000_000_000,
            _ => return Err(Exception::bare_badarg()),
        },
        other => other
            .as_int()
            .filter(|n| *n > 0)
            .ok_or_else(Exception::bare_badarg)?,
    };
    let scaled = (i128::from(ns) * i128::from(per_second)).div_euclid(1_000_000_000);
    Ok(int(
        i64::try_from(scaled).map_err(|_| Exception::bare_badarg())?
    ))
}

/// Elixir's `nil`.
fn nil_atom() -> Term {
    atom("nil")
}

/// Registers `erlang:Name/Arity`, run by `body`, whose errors are raised as the BEAM's
/// built-in function raises them: with its frame, `{erlang, Name, Args, Location}`, the
/// location holding the `error_info` that has the caller's shell say which argument was
/// wrong (Elixir: "errors were found at the given arguments"); `erlang:error/1`'s frame
/// has none.
pub(crate) fn bif<F, Fut>(node: &Node, name: &'static str, arity: usize, body: F)
where
    F: Fn(Process, Vec<Term>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Term, Exception>> + Send + 'static,
{
    node.register_function("erlang", name, arity, move |p, args| {
        let called_with = args.clone();
        let result = body(p, args);
        async move {
            result
                .await
                .map_err(|e| with_bif_frame(e, name, called_with))
        }
    });
}

fn with_bif_frame(e: Exception, name: &str, args: Vec<Term>) -> Exception {
    match e {
        Exception::Error { reason, stacktrace } if stacktrace.is_empty() => {
            let location = if name == "error" {
                nil()
            } else {
                let info = map(vec![(atom("module"), atom("erl_erts_errors"))]);
                list(vec![tuple(vec![atom("error_info"), info])])
            };
            let frame = tuple(vec![atom("erlang"), atom(name), list(args), location]);
            Exception::Error {
                reason,
                stacktrace: vec![frame],
            }
        }
        e => e,
    }
}

/// `erlang:apply(Fun, Args)`. An export fun (`&Chat.receive_message/1`) runs the
/// registered function; a closure is BEAM code, and fails as one of a module this node
/// does not have: `undef`, its frame `{Fun, Args, []}`.
async fn apply_fun(p: Process, call: Vec<Term>) -> Result<Term, Exception> {
    let Ok([fun, args]) = <[Term; 2]>::try_from(call) else {
        return Err(Exception::bare_badarg());
    };
    let Some(list_args) = args.as_list() else {
        return Err(with_bif_frame(
            Exception::bare_badarg(),
            "apply",
            vec![fun, args],
        ));
    };
    let failed = |reason: Term, frame: Term| Exception::Error {
        reason,
        stacktrace: vec![frame],
    };
    match &fun {
        Term::ExternalFun(f) if usize::from(f.arity) == list_args.len() => {
            let node = p.node().clone();
            let (m, f) = (f.module, f.function);
            node.apply(p, m.name(), f.name(), list_args.to_vec()).await
        }
        Term::ExternalFun(_) => Err(failed(
            tuple(vec![
                atom("badarity"),
                tuple(vec![fun.clone(), args.clone()]),
            ]),
            apply_frame(2),
        )),
        Term::InternalFun(_) => Err(failed(
            atom("undef"),
            tuple(vec![fun.clone(), args.clone(), nil()]),
        )),
        _ => Err(failed(
            tuple(vec![atom("badfun"), fun.clone()]),
            apply_frame(2),
        )),
    }
}

/// The exit status of `init:stop(Status)` and `erlang:halt(Status)`: a non-negative
/// integer (the low 8 bits, as the process's exit status keeps them), or a string (a
/// crash dump's slogan on the BEAM: 1); `abort` for `halt` (1).
fn exit_status(status: &Term, halt: bool) -> Option<i32> {
    if let Some(i) = status.as_int() {
        return (i >= 0).then_some((i & 0xff) as i32);
    }
    if halt && status.is_atom("abort") {
        return Some(1);
    }
    let bytes = status.as_list()?;
    bytes
        .iter()
        .all(|b| b.as_int().is_some_and(|b| (0..256).contains(&b)))
        .then_some(1)
}

/// Answers `ok`; the node stops once the process that runs the call (which sends the
/// answer as it ends) has ended.
fn stop_after_answer(p: Process, status: i32) -> Term {
    let node = p.node().clone();
    let caller = node.local_entry(&p.pid());
    tokio::spawn(async move {
        if let Some(caller) = caller {
            // The process's own task holds it until it has ended and its answer is
            // on its way; then only this one does.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::sync::Arc::strong_count(&caller) > 1
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        node.stop_with(status).await;
    });
    atom("ok")
}

/// `erlang:halt(Slogan)`, a string: where the BEAM writes the slogan to its crash dump
/// and says so on stderr, the node logs it (it writes no dump).
fn slogan(status: &Term) {
    if status.as_int().is_none() {
        if let Some(text) = crate::term::chardata_to_string(status).filter(|t| !t.is_empty()) {
            tracing::error!("halted: {text}");
        }
    }
}

/// `erlang:halt`: stops the node with `status` (`badarg` for none) and never returns.
async fn halt(p: Process, status: Option<i32>) -> Result<Term, Exception> {
    let status = status.ok_or_else(Exception::bare_badarg)?;
    let node = p.node().clone();
    tokio::spawn(async move { node.halt_with(status).await });
    std::future::pending().await
}

/// `{erlang, apply, Arity, []}`: the frame of `erlang:apply/2,3` in a stack.
pub(crate) fn apply_frame(arity: usize) -> Term {
    tuple(vec![
        atom("erlang"),
        atom("apply"),
        int(arity as i64),
        nil(),
    ])
}

/// `{M, F, Arity, []}`: where a process waits, as `current_location` gives it.
fn current_location((m, f, a): (crate::term::Atom, crate::term::Atom, usize)) -> Term {
    tuple(vec![Term::Atom(m), Term::Atom(f), int(a as i64), nil()])
}

/// `erlang:process_info(Pid, ItemOrItems)` for a local pid.
fn process_info(node: &Node, pid: &Term, items: &Term) -> Result<Term, Exception> {
    let pid = pid.as_pid().ok_or_else(Exception::bare_badarg)?;
    if !node.is_local(&pid.node) {
        return Err(Exception::bare_badarg());
    }
    let Some(entry) = node.local_entry(pid) else {
        return Ok(atom("undefined"));
    };
    let one = |item: &Term| -> Result<Term, Exception> {
        // `{dictionary, Key}` (OTP 26; OTP 29's `proc_lib` asks it in the crash report
        // of a process linked to one here): a Rust process keeps no dictionary but its
        // label, which `proc_lib` keeps under `$process_label`.
        if let Some([d, key]) = item.as_tuple_n(2) {
            if d.is_atom("dictionary") {
                let dictionary = entry.state().dictionary();
                let value = dictionary
                    .iter()
                    .find_map(|e| match e.as_tuple_n(2) {
                        Some([k, v]) if k == key => Some(v.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| atom("undefined"));
                return Ok(tuple(vec![item.clone(), value]));
            }
        }
        let item = item.as_atom().ok_or_else(Exception::bare_badarg)?;
        let st = entry.state();
        let value = match item {
            "trap_exit" => crate::term::boolean(st.trap_exit),
            "links" => list(st.links.iter().cloned().map(Term::Pid).collect()),
            "registered_name" => match &st.name {
                Some(n) => Term::Atom(*n),
                None => nil(),
            },
            "dictionary" => list(st.dictionary()),
            "initial_call" => mfa_term(st.shown_initial_call()),
            "current_function" => mfa_term(st.current_function()),
            "message_queue_len" => int(entry.queue_len.load(Ordering::Relaxed) as i64),
            "status" if entry.suspended.load(Ordering::Relaxed) => atom("suspended"),
            "status" => atom("waiting"),
            "heap_size" | "total_heap_size" | "stack_size" | "reductions" | "memory" => int(0),
            // Where it waits, the one frame known of it (`current_location`'s).
            "current_stacktrace" => list(vec![current_location(st.current_function())]),
            "group_leader" => Term::Pid(st.group_leader),
            // By pid, or `{RegName, Node}` for a monitor taken by name.
            "monitors" => list(
                st.monitors
                    .values()
                    .filter_map(|m| {
                        let target = match &m.target {
                            crate::node::MonitorTarget::Process(crate::node::Dest::Pid(p)) => {
                                Term::Pid(*p)
                            }
                            crate::node::MonitorTarget::Process(crate::node::Dest::RemoteName(
                                name,
                                at,
                            )) => tuple(vec![Term::Atom(*name), Term::Atom(*at)]),
                            crate::node::MonitorTarget::Process(crate::node::Dest::Name(name)) => {
                                tuple(vec![Term::Atom(*name), Term::Atom(node.0.name)])
                            }
                            _ => return None,
                        };
                        Some(tuple(vec![atom("process"), target]))
                    })
                    .collect(),
            ),
            "monitored_by" => list(st.monitored_by.values().map(|w| Term::Pid(w.pid)).collect()),
            "priority" => atom("normal"),
            "error_handler" => atom("error_handler"),
            "message_queue_data" => atom("on_heap"),
            "suspending" => nil(),
            "binary" => nil(),
            "last_calls" => atom("false"),
            "catchlevel" => int(0),
            "current_location" => current_location(st.current_function()),
            // OTP 25's defaults; a Rust process has no heap of its own to collect.
            "garbage_collection" => list(vec![
                tuple(vec![atom("max_heap_size"), max_heap_size()]),
                tuple(vec![atom("min_bin_vheap_size"), int(MIN_BIN_VHEAP_SIZE)]),
                tuple(vec![atom("min_heap_size"), int(MIN_HEAP_SIZE)]),
                tuple(vec![atom("fullsweep_after"), int(FULLSWEEP_AFTER)]),
                tuple(vec![atom("minor_gcs"), int(0)]),
            ]),
            "label" => st.label.clone().unwrap_or_else(|| atom("undefined")),
            // No sequential trace runs here.
            "sequential_trace_token" => nil(),
            // A fresh BEAM process's figures at OTP 25's defaults: there is no heap of
            // its own to measure.
            "garbage_collection_info" => list(
                [
                    ("old_heap_block_size", 0),
                    ("heap_block_size", MIN_HEAP_SIZE),
                    ("mbuf_size", 0),
                    ("recent_size", 0),
                    ("stack_size", 0),
                    ("old_heap_size", 0),
                    ("heap_size", 0),
                    ("bin_vheap_size", 0),
                    ("bin_vheap_block_size", MIN_BIN_VHEAP_SIZE),
                    ("bin_old_vheap_size", 0),
                    ("bin_old_vheap_block_size", MIN_BIN_VHEAP_SIZE),
                ]
                .map(|(k, v)| tuple(vec![atom(k), int(v)]))
                .to_vec(),
            ),
            // The settings `garbage_collection` gives, one by one, and OTP 25.3 to 28's
            // flags, at a BEAM process's defaults.
            "min_heap_size" => int(MIN_HEAP_SIZE),
            "min_bin_vheap_size" => int(MIN_BIN_VHEAP_SIZE),
            "fullsweep_after" => int(FULLSWEEP_AFTER),
            "max_heap_size" => max_heap_size(),
            "async_dist" | "priority_messages" => atom("false"),
            _ => return Err(Exception::bare_badarg()),
        };
        Ok(tuple(vec![atom(item), value]))
    };
    match items {
        // process_info(Pid, registered_name) is [] for an unnamed process, but
        // process_info(Pid, [registered_name]) is [{registered_name, []}].
        Term::Atom(a) if a.name() == "registered_name" && entry.state().name.is_none() => Ok(nil()),
        Term::List(l) => Ok(list(l.elements.iter().map(one).collect::<Result<_, _>>()?)),
        item => one(item),
    }
}

/// `erlang:send/2` as the process running the call: `badarg` for what is no
/// destination, or a name registered nowhere here.
fn send(p: &Process, to: &Term, message: &Term) -> Result<(), Exception> {
    let dest = Dest::try_from(to).map_err(|()| Exception::bare_badarg())?;
    if !super::calls::registered(p.node(), &dest) {
        return Err(Exception::bare_badarg());
    }
    p.send(dest, message);
    Ok(())
}

/// Whether `send/3`'s options ask for a priority message; `None` when one is not an
/// option.
fn send_options(options: &[Term]) -> Option<bool> {
    let mut priority = false;
    for option in options {
        match option.as_atom()? {
            "priority" => priority = true,
            "nosuspend" | "noconnect" => {}
            _ => return None,
        }
    }
    Some(priority)
}

/// `badarg` from `erlang:Name(Args)` with the cause the BEAM gives a bad option list,
/// which the caller's shell words ("invalid option in list").
fn badopt(name: &str, args: Vec<Term>) -> Exception {
    let info = map(vec![
        (atom("cause"), atom("badopt")),
        (atom("module"), atom("erl_erts_errors")),
    ]);
    let location = list(vec![tuple(vec![atom("error_info"), info])]);
    Exception::Error {
        reason: atom("badarg"),
        stacktrace: vec![tuple(vec![
            atom("erlang"),
            atom(name),
            list(args),
            location,
        ])],
    }
}

/// `erlang:nodes(Arg, InfoOpts)` (OTP 25.1): `[{Node, Info}]` for the nodes
/// `nodes(Arg)` gives, `Info` a map with the `connection_id` and `node_type` that
/// `InfoOpts` asks for (`#{connection_id => true, node_type => true}`).
fn nodes_info(node: &Node, kinds: &Term, options: &Term) -> Result<Term, Exception> {
    let Term::Map(options) = options else {
        return Err(Exception::bare_badarg());
    };
    let (mut with_id, mut with_type) = (false, false);
    for (key, value) in &options.map {
        let on = match value.as_atom() {
            Some("true") => true,
            Some("false") => false,
            _ => return Err(Exception::bare_badarg()),
        };
        match key.as_atom() {
            Some("connection_id") => with_id = on,
            Some("node_type") => with_type = on,
            _ => return Err(Exception::bare_badarg()),
        }
    }
    let names = nodes(node, kinds)?;
    let connections = node.connections();
    let info = names.as_list().unwrap_or(&[]).iter().map(|name| {
        let this = name.as_atom() == Some(node.name());
        let connection = connections
            .iter()
            .find(|(peer, _, _)| Some(peer.as_str()) == name.as_atom());
        let mut entries = Vec::new();
        if with_id {
            let id = match connection {
                Some((_, _, id)) if !this => int(*id as i64),
                _ => atom("undefined"),
            };
            entries.push((atom("connection_id"), id));
        }
        if with_type {
            let kind = match connection {
                _ if this => "this",
                Some((_, true, _)) => "visible",
                Some((_, false, _)) => "hidden",
                None => "known",
            };
            entries.push((atom("node_type"), atom(kind)));
        }
        tuple(vec![name.clone(), map(entries)])
    });
    Ok(list(info.collect()))
}

/// `max_heap_size` as `process_info/2` gives it for a process without a limit.
/// A BEAM process's default minimum heap, in words (`+hms`).
const MIN_HEAP_SIZE: i64 = 233;
/// A BEAM process's default minimum binary virtual heap, in words (`+hmbs`).
const MIN_BIN_VHEAP_SIZE: i64 = 46422;
/// A BEAM process's default `fullsweep_after`, the system's default.
const FULLSWEEP_AFTER: i64 = 65535;

/// A BEAM process's default `max_heap_size`: none (`+hmax 0`).
fn max_heap_size() -> Term {
    map(vec![
        (atom("error_logger"), atom("true")),
        (atom("kill"), atom("true")),
        (atom("size"), int(0)),
    ])
}

/// `erlang:nodes/1`: `visible`, `hidden`, `connected` (both) and `this`, alone or in a
/// list; `known` as `this` and `connected` (the BEAM adds nodes it knew whose pids or
/// references are still about). Anything else is `badarg`.
fn nodes(node: &Node, kinds: &Term) -> Result<Term, Exception> {
    let kinds = match kinds {
        Term::Atom(_) => std::slice::from_ref(kinds),
        other => other.as_list().ok_or_else(Exception::bare_badarg)?,
    };
    let mut names: Vec<String> = Vec::new();
    for kind in kinds {
        let more = match kind.as_atom() {
            Some("this") => vec![node.name().to_owned()],
            Some("visible") => node.nodes(true),
            Some("hidden") => node.nodes(false),
            Some("connected") => node.connected_nodes(),
            Some("known") => std::iter::once(node.name().to_owned())
                .chain(node.connected_nodes())
                .collect(),
            _ => return Err(Exception::bare_badarg()),
        };
        for n in more {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Ok(list(names.iter().map(|n| atom(n)).collect()))
}
