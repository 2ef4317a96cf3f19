//! The library's own nodes, in this test process, over real TCP: against real BEAM nodes
//! (erpc, GenServer calls, signals, a crashing BEAM task linked to a Rust process, a
//! peer lost and restarted) and against each other (GenServer calls, tasks, links,
//! monitors, `noconnection`, simultaneous connects, `global`'s cluster). Rust-only tests
//! use the in-process EPMD; tests with BEAM nodes use the harness's real `epmd`.

mod support;

use cnode::epmd::server::EpmdServer;
use cnode::otp::gen_server;
use cnode::term::{atom, binary, int, list, tuple, Match, Pid, Term};
use cnode::{
    CallErrorKind, Caller, Dest, Exception, GenServer, Next, Node, NodeConfig, Process, Reply,
    RpcError,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{in_process, unique_name, BeamNode, Epmd, RustNode};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(10);

async fn start_node(prefix: &str, epmd_port: u16) -> Node {
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name(prefix)), COOKIE);
    config.epmd_port = epmd_port;
    Node::start(config).await.expect("the node starts")
}

/// A call into the (blocking) harness from a multi-threaded tokio test.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// `{'EXIT', From, Reason}` and `{'DOWN', Ref, process, Object, Reason}` as `(tag, reason)`.
fn signal(m: &Term) -> (String, Term) {
    let e = m.as_tuple().unwrap_or_else(|| panic!("not a signal: {m}"));
    (
        e[0].as_atom().unwrap_or("?").to_owned(),
        e[e.len() - 1].clone(),
    )
}

/// The next `EXIT` / `DOWN` messages, `n` of them, sorted by tag.
async fn signals(p: &mut Process, n: usize) -> Vec<(String, Term)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let m = p
            .receive_match(Some(WAIT), |m| {
                m.as_tuple()
                    .is_some_and(|e| e[0].is_atom("EXIT") || e[0].is_atom("DOWN"))
            })
            .await
            .unwrap_or_else(|| panic!("no signal within {WAIT:?}; got {got:?}"));
        got.push(signal(&m));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

/// `GenServer` answering every call with the request (the Moebi example's `:echo`),
/// `{:nap, ms}` after that many milliseconds.
struct Echo;

impl GenServer for Echo {
    async fn handle_call(
        &mut self,
        request: Term,
        _from: &Caller,
        _p: &mut Process,
    ) -> Result<Reply, Exception> {
        if let Some([tag, ms]) = request.as_tuple_n(2) {
            if let (true, Some(ms)) = (tag.is_atom("nap"), ms.as_int()) {
                tokio::time::sleep(Duration::from_millis(ms.unsigned_abs())).await;
            }
        }
        Ok(Reply::reply(request))
    }
}

/// A server whose `init` fails (`{:stop, :no_init}`), or with `hang` never answers.
struct NoInit {
    hang: bool,
}

impl GenServer for NoInit {
    async fn init(&mut self, _p: &mut Process) -> Result<Next, Exception> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(Next::Stop(atom("no_init")))
    }
}

/// Waits for one message and exits with it as reason (`Moebi.wait/0`).
async fn wait(mut p: Process) -> Result<(), Exception> {
    Err(Exception::exit(p.receive().await))
}

fn pid_of(t: Term) -> Pid {
    *t.as_pid().unwrap_or_else(|| panic!("not a pid: {t}"))
}

// ---------------------------------------------------------- against BEAM nodes ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_process_uses_a_beam_node_like_a_beam_process() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    blocking(|| {
        alex.eval(
            "{:ok, _} = Chat.Echo.start(:echo)
             Process.register(self(), :shell)
             Process.register(spawn(fn -> receive do r -> exit(r) end end), :waiter)",
        )
    });
    let node = start_node("rusty", epmd.port()).await;
    let a = alex.node_name();

    in_process(&node, move |mut p| async move {
        // erpc: a value, an Erlang error, an Elixir exception, an undefined function.
        let sum = p
            .erpc_call(
                &a,
                "Elixir.Enum",
                "sum",
                vec![list(vec![int(1), int(2), int(3)])],
                WAIT,
            )
            .await;
        assert_eq!(sum, Ok(int(6)));
        match p
            .erpc_call(&a, "Elixir.Enum", "sum", vec![list(vec![atom("a")])], WAIT)
            .await
        {
            Err(RpcError::Exception(Exception::Error { reason, stacktrace })) => {
                assert_eq!(reason, atom("badarith"));
                assert!(!stacktrace.is_empty(), "{stacktrace:?}");
            }
            other => panic!("Enum.sum([:a]): {other:?}"),
        }
        match p
            .erpc_call(
                &a,
                "Elixir.Enum",
                "fetch!",
                vec![list(vec![int(1)]), int(5)],
                WAIT,
            )
            .await
        {
            Err(RpcError::Exception(Exception::Error {
                reason: Term::Map(m),
                ..
            })) => {
                assert_eq!(
                    m.map.get(&atom("__struct__")),
                    Some(&atom("Elixir.Enum.OutOfBoundsError"))
                );
            }
            other => panic!("Enum.fetch!([1], 5): {other:?}"),
        }
        match p
            .erpc_call(&a, "Elixir.Chat", "no_such_fun", vec![], WAIT)
            .await
        {
            Err(RpcError::Exception(Exception::Error { reason, .. })) => {
                assert_eq!(reason, atom("undef"))
            }
            other => panic!("Chat.no_such_fun(): {other:?}"),
        }

        // GenServer.call to a BEAM GenServer, and to a name nobody registered.
        let request = tuple(vec![atom("hello"), binary("from rust"), list(vec![int(1)])]);
        assert_eq!(
            p.call(("echo", a.as_str()), request.clone(), Some(WAIT))
                .await,
            Ok(request)
        );
        assert_eq!(
            p.call(("nobody", a.as_str()), atom("x"), Some(WAIT))
                .await
                .map_err(|e| e.reason().to_string()),
            Err(format!(
                "{{:noproc, {{GenServer, :call, [{{:nobody, :{a}}}, :x, 10000]}}}}"
            ))
        );

        // Sends to {name, node} and to a pid.
        p.send(
            ("shell", a.as_str()),
            tuple(vec![atom("from_rust"), int(1)]),
        );
        let shell = pid_of(
            p.erpc_call(&a, "erlang", "whereis", vec![atom("shell")], WAIT)
                .await
                .unwrap(),
        );
        p.send(shell, tuple(vec![atom("from_rust"), int(2)]));

        // Links and monitors (by pid and by name) on a BEAM process, trapping exits.
        let waiter = pid_of(
            p.erpc_call(&a, "erlang", "whereis", vec![atom("waiter")], WAIT)
                .await
                .unwrap(),
        );
        p.trap_exit(true);
        p.link(&waiter);
        p.monitor(waiter);
        p.monitor(("waiter", a.as_str()));
        p.send(("waiter", a.as_str()), atom("boom"));
        let boom = vec![
            ("DOWN".into(), atom("boom")),
            ("DOWN".into(), atom("boom")),
            ("EXIT".into(), atom("boom")),
        ];
        assert_eq!(signals(&mut p, 3).await, boom);
        // What no longer exists: noproc.
        p.link(&waiter);
        p.monitor(waiter);
        p.monitor(("nobody", a.as_str()));
        let noproc = vec![
            ("DOWN".into(), atom("noproc")),
            ("DOWN".into(), atom("noproc")),
            ("EXIT".into(), atom("noproc")),
        ];
        assert_eq!(signals(&mut p, 3).await, noproc);
        // Receive with a timeout: nothing else came.
        assert_eq!(p.receive_timeout(Duration::from_millis(200)).await, None);
    })
    .await;
    assert_eq!(
        blocking(|| alex.eval("flush()")),
        "[from_rust: 1, from_rust: 2]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_beam_task_linked_to_a_rust_process_completes_at_once() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("rusty", epmd.port()).await;
    let a = alex.node_name();
    let sup = ("Elixir.Chat.TaskSupervisor", a.as_str());
    let undef = |reason: &Term| {
        let e = reason.as_tuple_n(2).unwrap_or_else(|| panic!("{reason}"));
        assert!(e[0].is_atom("undef"), "{reason}");
        let frame = tuple(vec![
            atom("Elixir.Chat"),
            atom("no_such_fun"),
            list(vec![binary("hi")]),
            list(vec![]),
        ]);
        assert_eq!(
            e[1].as_list().and_then(|s| s.first()),
            Some(&frame),
            "{reason}"
        );
    };

    // A caller trapping exits: Task.await exits {{undef, _}, {Task, await, _}} at once,
    // and the task's exit is in the mailbox.
    let sup_trapping = (sup.0.to_owned(), sup.1.to_owned());
    let (elapsed, awaited, exit) = in_process(&node, move |mut p| async move {
        p.trap_exit(true);
        let task = p
            .task_async(
                (sup_trapping.0.as_str(), sup_trapping.1.as_str()),
                "Elixir.Chat",
                "no_such_fun",
                vec![binary("hi")],
            )
            .await
            .expect("the task starts");
        let t0 = Instant::now();
        let awaited = p.task_await(task, Some(WAIT)).await;
        let exit = p.receive_timeout(WAIT).await;
        (t0.elapsed(), awaited, exit)
    })
    .await;
    assert!(
        elapsed < Duration::from_secs(2),
        "Task.await took {elapsed:?}"
    );
    match awaited {
        Err(e) => {
            let reason = e.reason();
            let e = reason.as_tuple_n(2).unwrap_or_else(|| panic!("{reason}"));
            undef(&e[0]);
            assert_eq!(
                e[1].as_tuple().map(|t| t[..2].to_vec()),
                Some(vec![atom("Elixir.Task"), atom("await")])
            );
        }
        other => panic!("Task.await: {other:?}"),
    }
    let (tag, reason) = signal(&exit.expect("the task's EXIT"));
    assert_eq!(tag, "EXIT");
    undef(&reason);

    // A caller that does not trap exits: the BEAM's crash report asks this node about it
    // (erpc process_info) and then the link kills it, at once.
    let sup_plain = (sup.0.to_owned(), sup.1.to_owned());
    let (elapsed, down) = in_process(&node, move |mut p| async move {
        let caller = p.node().spawn(move |mut c| async move {
            c.receive().await;
            let task = c
                .task_async(
                    (sup_plain.0.as_str(), sup_plain.1.as_str()),
                    "Elixir.Chat",
                    "no_such_fun",
                    vec![binary("hi")],
                )
                .await?;
            c.task_await(task, None).await?;
            Ok(())
        });
        p.monitor(caller);
        let t0 = Instant::now();
        p.send(caller, atom("go"));
        let down = p.receive_timeout(WAIT).await;
        (t0.elapsed(), down)
    })
    .await;
    assert!(
        elapsed < Duration::from_secs(2),
        "the linked caller died after {elapsed:?}"
    );
    let (tag, reason) = signal(&down.expect("the caller's DOWN"));
    assert_eq!(tag, "DOWN");
    undef(&reason);
    // alex logged the task's crash, as a BEAM node does; nothing hung.
    let logged = blocking(|| {
        alex.wait_for_output_count("function Chat.no_such_fun/1 is undefined", 2, WAIT)
    });
    assert!(logged, "{}", alex.output());
    assert!(alex.output().contains("terminating"), "{}", alex.output());
}

/// `Task.Supervisor.start_child/5` from Rust: a task on a BEAM node's Task.Supervisor
/// that nobody awaits, temporary or transient, as `Task.Supervisor.children/1` there
/// lists it; without the supervisor, `GenServer.call`'s `noproc` exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_process_starts_tasks_nobody_awaits_on_a_beam_task_supervisor() {
    use cnode::supervisor::{Restart, Shutdown, TaskOptions};
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("rusty", epmd.port()).await;
    let a = alex.node_name();
    let sup = ("Elixir.Chat.TaskSupervisor", a.clone());

    let s = sup.clone();
    let (started, ran) = in_process(&node, move |mut p| async move {
        let me = Term::Pid(p.pid());
        let started = p
            .task_start_child(
                (s.0, s.1.as_str()),
                "erlang",
                "send",
                vec![me, atom("ran")],
                Restart::Temporary,
            )
            .await;
        (started, p.receive_timeout(WAIT).await)
    })
    .await;
    let started = started.expect("the task starts");
    assert_eq!(started.node.name(), a);
    assert_eq!(ran, Some(atom("ran")));

    // A transient task that sleeps, with `shutdown: :brutal_kill`, is the supervisor's
    // child there, with the restart and shutdown it was given.
    let sleeper = node
        .task_start_child(
            (sup.0, sup.1.as_str()),
            "Elixir.Process",
            "sleep",
            vec![int(60_000)],
            TaskOptions::from(Restart::Transient).shutdown(Shutdown::BrutalKill),
        )
        .await
        .expect("the task starts");
    let children =
        blocking(|| alex.eval("Task.Supervisor.children(Chat.TaskSupervisor) |> length()"));
    assert_eq!(children, "1");
    let listed = blocking(|| {
        alex.eval(&format!(
            "Task.Supervisor.children(Chat.TaskSupervisor) == [:c.pid(0, {}, {})]",
            sleeper.id, sleeper.serial
        ))
    });
    assert_eq!(listed, "true");
    let spec = blocking(|| {
        alex.eval(
            ":sys.get_state(Chat.TaskSupervisor).children |> Map.values() \
             |> Enum.map(fn {_, restart, shutdown, _, _} -> {restart, shutdown} end)",
        )
    });
    assert_eq!(spec, "[transient: :brutal_kill]");

    // No such supervisor: the exit of GenServer.call.
    let reason = node
        .task_start_child(
            ("nobody", a.as_str()),
            "erlang",
            "send",
            vec![],
            Restart::Temporary,
        )
        .await
        .expect_err("no supervisor")
        .reason();
    let e = reason.as_tuple_n(2).unwrap_or_else(|| panic!("{reason}"));
    assert!(e[0].is_atom("noproc"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_info_about_rust_processes_is_real() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    blocking(|| alex.eval("Process.register(self(), :shell)"));
    let node = start_node("rusty", epmd.port()).await;
    let a = alex.node_name();

    // A named process trapping exits, linked to alex's shell, that leaves its messages
    // queued; and an unnamed one. Each introduces itself to the shell.
    let a2 = a.clone();
    node.spawn_registered("named", move |mut p| async move {
        p.trap_exit(true);
        let shell = pid_of(
            p.erpc_call(&a2, "erlang", "whereis", vec![atom("shell")], WAIT)
                .await?,
        );
        p.link(&shell);
        p.send(shell, tuple(vec![atom("named"), Term::Pid(p.pid())]));
        p.receive_match(None, |_| false).await;
        Ok(())
    })
    .unwrap();
    let a3 = a.clone();
    node.spawn(move |p| async move {
        p.send(
            ("shell", a3.as_str()),
            tuple(vec![atom("unnamed"), Term::Pid(p.pid())]),
        );
        wait(p).await
    });

    let r = format!(":\"{}\"", node.name());
    let eval = |expr: &str| blocking(|| alex.eval(&expr.replace("RUST", &r)));
    eval("named = receive do {:named, pid} -> pid after 5000 -> :timeout end");
    eval("unnamed = receive do {:unnamed, pid} -> pid after 5000 -> :timeout end");
    eval("send(named, :queued); send(named, :queued_too); Process.sleep(100)");
    // What the BEAM's crash report asks about a linked process, answered truthfully.
    assert_eq!(
        eval(":erpc.call(RUST, :erlang, :process_info, [named, [:registered_name, :trap_exit, :message_queue_len, :links]])"),
        "[registered_name: :named, trap_exit: true, message_queue_len: 2, links: [#{self}]]"
            .replace("#{self}", &eval("self()"))
    );
    assert_eq!(
        eval(":erpc.call(RUST, :erlang, :process_info, [named, :status])"),
        "{:status, :waiting}"
    );
    // As on the BEAM: registered_name of an unnamed process is [] alone, a pair in a list.
    assert_eq!(
        eval(":erpc.call(RUST, :erlang, :process_info, [unnamed, :registered_name])"),
        "[]"
    );
    assert_eq!(
        eval(":erpc.call(RUST, :erlang, :process_info, [unnamed, [:registered_name, :links]])"),
        "[registered_name: [], links: []]"
    );
    eval("ref = Process.monitor(unnamed); send(unnamed, :bye); receive do {:DOWN, ^ref, _, _, _} -> :ok end");
    assert_eq!(
        eval(":erpc.call(RUST, :erlang, :process_info, [unnamed, :links])"),
        ":undefined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beam_peer_lost_and_restarted() {
    let epmd = Epmd::start();
    let alex_name = unique_name("alex");
    let setup = "{:ok, _} = Chat.Echo.start(:echo)
                 Process.register(spawn(fn -> receive do r -> exit(r) end end), :waiter)";
    let alex = blocking(|| BeamNode::start(&alex_name, COOKIE, &epmd));
    blocking(|| alex.eval(setup));
    let node = start_node("rusty", epmd.port()).await;
    let a = alex.node_name();

    // A process links to and monitors alex's processes, then alex is killed.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (a2, node2) = (a.clone(), node.clone());
    let watcher = tokio::spawn(async move {
        in_process(&node2, move |mut p| async move {
            let waiter = pid_of(
                p.erpc_call(&a2, "erlang", "whereis", vec![atom("waiter")], WAIT)
                    .await
                    .unwrap(),
            );
            p.trap_exit(true);
            p.link(&waiter);
            p.monitor(waiter);
            p.monitor(("echo", a2.as_str()));
            // The link and monitors are in place once a call over the same connection returns.
            p.call(("echo", a2.as_str()), atom("sync"), Some(WAIT))
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            (signals(&mut p, 3).await, waiter)
        })
        .await
    });
    ready_rx.await.expect("the watcher is ready");
    drop(alex);
    let (lost, old_waiter) = watcher.await.unwrap();
    let noconnection = vec![
        ("DOWN".into(), atom("noconnection")),
        ("DOWN".into(), atom("noconnection")),
        ("EXIT".into(), atom("noconnection")),
    ];
    assert_eq!(lost, noconnection);
    assert!(!node.connected_nodes().contains(&a));

    // alex comes back (a new creation): the next call connects again; the old pid is
    // gone for good (noproc), the new one is a new incarnation.
    let alex = blocking(|| BeamNode::start(&alex_name, COOKIE, &epmd));
    blocking(|| alex.eval(setup));
    let a2 = a.clone();
    in_process(&node, move |mut p| async move {
        assert_eq!(
            p.call(("echo", a2.as_str()), atom("again"), Some(WAIT))
                .await,
            Ok(atom("again"))
        );
        let waiter = pid_of(
            p.erpc_call(&a2, "erlang", "whereis", vec![atom("waiter")], WAIT)
                .await
                .unwrap(),
        );
        assert_ne!(waiter.creation, old_waiter.creation);
        p.trap_exit(true);
        p.monitor(old_waiter);
        p.link(&old_waiter);
        let noproc = vec![
            ("DOWN".into(), atom("noproc")),
            ("EXIT".into(), atom("noproc")),
        ];
        assert_eq!(signals(&mut p, 2).await, noproc);
    })
    .await;
    assert!(node.connected_nodes().contains(&a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_peer_lost_and_restarted() {
    let epmd = Epmd::start();
    let moebi_name = unique_name("moebi");
    let moebi = blocking(|| RustNode::start(&moebi_name, COOKIE, &epmd, &[]));
    let node = start_node("rusty", epmd.port()).await;
    let m = moebi.node_name();

    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (m2, node2) = (m.clone(), node.clone());
    let watcher = tokio::spawn(async move {
        in_process(&node2, move |mut p| async move {
            let echo = pid_of(
                p.erpc_call(&m2, "erlang", "whereis", vec![atom("echo")], WAIT)
                    .await
                    .unwrap(),
            );
            p.trap_exit(true);
            p.link(&echo);
            p.monitor(echo);
            p.monitor(("echo", m2.as_str()));
            p.call(("echo", m2.as_str()), atom("sync"), Some(WAIT))
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            (signals(&mut p, 3).await, echo)
        })
        .await
    });
    ready_rx.await.expect("the watcher is ready");
    drop(moebi);
    let (lost, old_echo) = watcher.await.unwrap();
    let noconnection = vec![
        ("DOWN".into(), atom("noconnection")),
        ("DOWN".into(), atom("noconnection")),
        ("EXIT".into(), atom("noconnection")),
    ];
    assert_eq!(lost, noconnection);

    let _moebi = blocking(|| RustNode::start(&moebi_name, COOKIE, &epmd, &[]));
    let m2 = m.clone();
    in_process(&node, move |mut p| async move {
        assert_eq!(
            p.call(("echo", m2.as_str()), atom("again"), Some(WAIT))
                .await,
            Ok(atom("again"))
        );
        let echo = pid_of(
            p.erpc_call(&m2, "erlang", "whereis", vec![atom("echo")], WAIT)
                .await
                .unwrap(),
        );
        assert_ne!(echo.creation, old_echo.creation);
        assert_eq!(
            p.call(old_echo, atom("stale"), Some(WAIT))
                .await
                .map_err(|e| e.kind().clone()),
            Err(CallErrorKind::NoProc)
        );
    })
    .await;
}

/// A BEAM node's messages to a registered name on a Rust node reach whoever holds the
/// name when they arrive: over one connection, as the name passes from one Rust process
/// to the next and is for a while nobody's (those are dropped, as a BEAM node drops
/// them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beam_nodes_messages_to_a_name_follow_it_from_process_to_process() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("boxes", epmd.port()).await;
    gen_server::start(&node, Some("echo"), Echo).await.unwrap();
    let n = node.name().to_owned();
    // A pid to synchronise on: a name would be the last one the reader looked up.
    blocking(|| {
        alex.eval(&format!(
            "echo = :erpc.call(:\"{n}\", :erlang, :whereis, [:echo]); :ok"
        ))
    });
    for holder in 1..=3i64 {
        let pid = node
            .spawn_registered("box", move |mut q| async move {
                loop {
                    let m = q.receive().await;
                    if m.is_atom("stop") {
                        return Ok(());
                    }
                    if let Some([from, msg]) = m.as_tuple_n(2) {
                        if let Some(from) = from.as_pid() {
                            q.send(*from, tuple(vec![int(holder), msg.clone()]));
                        }
                    }
                }
            })
            .unwrap();
        let answers = blocking(|| {
            alex.eval(&format!(
                "for i <- 0..2 do
                   send({{:box, :\"{n}\"}}, {{self(), i}})
                   receive do m -> m after 10_000 -> :no_answer end
                 end"
            ))
        });
        assert_eq!(
            answers,
            format!("[{{{holder}, 0}}, {{{holder}, 1}}, {{{holder}, 2}}]")
        );
        blocking(|| alex.eval(&format!("send({{:box, :\"{n}\"}}, :stop); :ok")));
        let deadline = Instant::now() + WAIT;
        while node.whereis("box") == Some(pid) {
            assert!(Instant::now() < deadline, "box {holder} did not stop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Nobody holds the name; once echo answers, that message was dropped.
        let sync = blocking(|| {
            alex.eval(&format!(
                "send({{:box, :\"{n}\"}}, {{self(), :nobody}}); GenServer.call(echo, :sync)"
            ))
        });
        assert_eq!(sync, ":sync");
    }
    assert_eq!(
        blocking(|| alex.eval("receive do m -> m after 200 -> :none end")),
        ":none"
    );
}

// ---------------------------------------------------------- Rust to Rust ----

/// Two nodes on an in-process EPMD; `b` runs an `echo` GenServer, a Task.Supervisor
/// and `Elixir.Math.add/2`.
async fn two_nodes() -> (EpmdServer, Node, Node) {
    let epmd = EpmdServer::bind(0).await.expect("in-process EPMD");
    let a = start_node("a", epmd.local_port()).await;
    let b = start_node("b", epmd.local_port()).await;
    gen_server::start(&b, Some("echo"), Echo).await.unwrap();
    b.start_task_supervisor("Elixir.Chat.TaskSupervisor")
        .expect("the task supervisor starts");
    b.register_function("Elixir.Math", "add", 2, |_p, args| async move {
        match (args[0].as_int(), args[1].as_int()) {
            (Some(x), Some(y)) => Ok(int(x + y)),
            _ => Err(Exception::error(atom("badarith"))),
        }
    });
    (epmd, a, b)
}

#[tokio::test]
async fn genserver_calls_tasks_and_erpc_across_rust_nodes() {
    let (_epmd, a, b) = two_nodes().await;
    let bn = b.name().to_owned();
    in_process(&a, move |mut p| async move {
        let b = bn.as_str();
        let request = tuple(vec![atom("hello"), binary("b"), list(vec![int(1), int(2)])]);
        assert_eq!(
            p.call(("echo", b), request.clone(), Some(WAIT)).await,
            Ok(request)
        );
        assert_eq!(
            p.call(("nobody", b), atom("x"), Some(WAIT))
                .await
                .map_err(|e| e.kind().clone()),
            Err(CallErrorKind::NoProc)
        );

        let sup = ("Elixir.Chat.TaskSupervisor", b);
        let task = p
            .task_async(sup, "Elixir.Math", "add", vec![int(2), int(3)])
            .await
            .unwrap();
        assert_eq!(p.task_await(task, Some(WAIT)).await, Ok(int(5)));
        p.trap_exit(true);
        let task = p
            .task_async(sup, "Elixir.Math", "nope", vec![])
            .await
            .unwrap();
        match p.task_await(task, Some(WAIT)).await {
            Err(e) => {
                let reason = e.reason();
                let e = reason.as_tuple_n(2).unwrap_or_else(|| panic!("{reason}"));
                let undef = tuple(vec![
                    atom("undef"),
                    list(vec![tuple(vec![
                        atom("Elixir.Math"),
                        atom("nope"),
                        list(vec![]),
                        list(vec![]),
                    ])]),
                ]);
                assert_eq!(e[0], undef);
            }
            other => panic!("Task.await of an undefined function: {other:?}"),
        }

        assert_eq!(
            p.erpc_call(b, "Elixir.Math", "add", vec![int(20), int(22)], WAIT)
                .await,
            Ok(int(42))
        );
        match p
            .erpc_call(b, "Elixir.Math", "add", vec![atom("x"), int(1)], WAIT)
            .await
        {
            Err(RpcError::Exception(Exception::Error { reason, .. })) => {
                assert_eq!(reason, atom("badarith"))
            }
            other => panic!("{other:?}"),
        }
        match p.erpc_call(b, "Elixir.Math", "nope", vec![], WAIT).await {
            Err(RpcError::Exception(Exception::Error { reason, .. })) => {
                assert_eq!(reason, atom("undef"))
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// A node without `dist_listen`, against a BEAM node and the real `epmd`: hidden though
/// its config says visible (as `erl -dist_listen false` implies `-hidden`), and never
/// in EPMD's names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_listen_is_hidden_to_a_beam_node() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name("quiet")), COOKIE);
    config.epmd_port = epmd.port();
    config.dist_listen = false;
    assert!(!config.hidden);
    let quiet = Node::start(config).await.expect("the node starts");
    let (a, q) = (alex.node_name(), quiet.name().to_owned());
    let nodes = |kind: &str| {
        let (a, kind) = (a.clone(), atom(kind));
        in_process(&quiet, move |mut p| async move {
            p.erpc_call(&a, "erlang", "nodes", vec![kind], WAIT)
                .await
                .expect("erlang:nodes/1 on alex")
        })
    };
    assert_eq!(nodes("visible").await, list(vec![]));
    assert_eq!(nodes("hidden").await, list(vec![atom(&q)]));
    let alive = q.split('@').next().unwrap().to_owned();
    let names = blocking(|| epmd.names());
    assert!(!names.iter().any(|(n, _)| *n == alive), "{names:?}");
}

/// A node without `dist_listen` (as `erl_call`, or `erl -dist_listen false`): no port, no
/// EPMD entry; it calls out as any node does, and a peer cannot reach it first.
#[tokio::test]
async fn a_node_that_does_not_listen_calls_out_and_cannot_be_called() {
    let (epmd, _a, b) = two_nodes().await;
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name("quiet")), COOKIE);
    config.epmd_port = epmd.local_port();
    config.dist_listen = false;
    let quiet = Node::start(config).await.expect("the node starts");
    assert_eq!(quiet.port(), 0);
    assert!(quiet.creation() > 3, "creation {}", quiet.creation());
    let registered = cnode::epmd::names("localhost", epmd.local_port())
        .await
        .unwrap();
    let alive = quiet.name().split('@').next().unwrap().to_owned();
    assert!(
        !registered.iter().any(|(n, _)| *n == alive),
        "{alive} registered: {registered:?}"
    );

    let bn = b.name().to_owned();
    in_process(&quiet, move |mut p| async move {
        assert_eq!(
            p.call(("echo", bn.as_str()), atom("hi"), Some(WAIT)).await,
            Ok(atom("hi"))
        );
    })
    .await;
    assert!(b.connected_nodes().contains(&quiet.name().to_owned()));
    // A third node cannot find it.
    let c = start_node("c", epmd.local_port()).await;
    assert!(!c.connect(quiet.name()).await);
}

/// A lent term (`&Term`) arrives as the same term given away would: through calls,
/// casts and sends, to processes on another node (before and after the connection is
/// up) and on this one.
#[tokio::test]
async fn lent_terms_arrive_as_given_ones() {
    let (_epmd, a, b) = two_nodes().await;
    gen_server::start(&a, Some("echo"), Echo).await.unwrap();
    let (an, bn) = (a.name().to_owned(), b.name().to_owned());
    let b2 = b.clone();
    in_process(&a, move |mut p| async move {
        let request = tuple(vec![
            atom("hello"),
            binary("b"),
            list((1001..1201).map(int).collect()),
        ]);
        for node in [bn.as_str(), an.as_str(), bn.as_str()] {
            assert_eq!(
                p.call(("echo", node), &request, Some(WAIT)).await,
                Ok(request.clone())
            );
        }
        // A process on b that sends everything it receives back, lent.
        let me = p.pid();
        let to = me;
        let back = b2.spawn(move |mut q| async move {
            loop {
                let m = q.receive().await;
                q.send(to, &m);
            }
        });
        p.send(back, &request);
        assert_eq!(p.receive_timeout(WAIT).await, Some(request.clone()));
        p.cast(back, &request);
        let cast = tuple(vec![atom("$gen_cast"), request.clone()]);
        assert_eq!(p.receive_timeout(WAIT).await, Some(cast));
        p.send(me, &request);
        assert_eq!(p.receive_timeout(WAIT).await, Some(request));
    })
    .await;
}

/// A peer's messages to a registered name reach whoever holds the name when they
/// arrive: over one connection, as the name passes from one process to the next and is
/// for a while nobody's (those are dropped, as the BEAM drops them).
#[tokio::test]
async fn messages_to_a_name_follow_it_from_process_to_process() {
    let (_epmd, a, b) = two_nodes().await;
    let bn = b.name().to_owned();
    let echo = b.whereis("echo").expect("b's echo");
    in_process(&a, move |mut p| async move {
        let me = p.pid();
        for holder in 1..=3i64 {
            let pid = b
                .spawn_registered("box", move |mut q| async move {
                    loop {
                        let m = q.receive().await;
                        if m.is_atom("stop") {
                            return Ok(());
                        }
                        q.send(me, tuple(vec![int(holder), m]));
                    }
                })
                .unwrap();
            for i in 0..3 {
                p.send(("box", bn.as_str()), int(i));
                assert_eq!(
                    p.receive_timeout(WAIT).await,
                    Some(tuple(vec![int(holder), int(i)]))
                );
            }
            p.send(("box", bn.as_str()), atom("stop"));
            let deadline = Instant::now() + WAIT;
            while b.whereis("box") == Some(pid) {
                assert!(Instant::now() < deadline, "box {holder} did not stop");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            p.send(("box", bn.as_str()), atom("nobody"));
            // The connection keeps order: once b answers this, it has dropped that. (To
            // a pid: a name here would be the last name b's reader looked up.)
            let sync = p.call(echo, atom("sync"), Some(WAIT)).await;
            assert_eq!(sync, Ok(atom("sync")));
        }
        assert_eq!(p.receive_timeout(Duration::from_millis(200)).await, None);
    })
    .await;
}

/// `message_queue_len` counts what was sent and not yet received, from a peer node and
/// from here, a message a selective receive passed over still counted, as the BEAM
/// counts it.
#[tokio::test]
async fn the_queue_length_counts_what_is_not_yet_received() {
    let (_epmd, a, b) = two_nodes().await;
    in_process(&a, move |mut p| async move {
        let me = p.pid();
        assert_eq!(p.message_queue_len(), 0);
        b.spawn(move |q| async move {
            for i in 0..3 {
                q.send(me, int(i));
            }
            q.send(me, atom("done"));
            Ok(())
        });
        let done = p.receive_match(Some(WAIT), |m| m.is_atom("done")).await;
        assert_eq!(done, Some(atom("done")));
        assert_eq!(p.message_queue_len(), 3, "passed over, still queued");
        p.send(me, int(3));
        assert_eq!(p.message_queue_len(), 4);
        for i in 0..4 {
            assert_eq!(p.receive_timeout(WAIT).await, Some(int(i)));
            assert_eq!(p.message_queue_len(), 3 - i as usize);
        }
    })
    .await;
}

/// A local `DOWN` names the process as it was monitored: by its pid, or as
/// `{Name, Node}` when monitored by name, as the BEAM does.
#[tokio::test]
async fn a_local_down_names_the_process_as_it_was_monitored() {
    let (_epmd, a, _b) = two_nodes().await;
    let a2 = a.clone();
    in_process(&a, move |mut p| async move {
        let waiter = a2.spawn_registered("local_waiter", wait).unwrap();
        let by_pid = p.monitor(waiter);
        let by_name = p.monitor("local_waiter");
        p.send(waiter, atom("bye"));
        let mut objects = Vec::new();
        for _ in 0..2 {
            let down = p
                .receive_match(Some(WAIT), |m| {
                    m.as_tuple().is_some_and(|e| e[0].is_atom("DOWN"))
                })
                .await
                .expect("a DOWN");
            let e = down
                .as_tuple_n(5)
                .expect("{DOWN, Ref, process, Object, Reason}");
            assert_eq!(e[4], atom("bye"));
            objects.push((e[1].clone(), e[3].clone()));
        }
        objects.sort_by_key(|(r, _)| *r != Term::from(by_pid.clone()));
        let node = atom(a2.name());
        assert_eq!(
            objects,
            vec![
                (Term::from(by_pid), Term::Pid(waiter)),
                (Term::from(by_name), tuple(vec![atom("local_waiter"), node])),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn links_monitors_and_unlink_across_rust_nodes() {
    let (_epmd, a, b) = two_nodes().await;
    let bn = b.name().to_owned();
    let b2 = b.clone();
    in_process(&a, move |mut p| async move {
        let b = bn.as_str();
        // Trapping: the real reason through the link, the monitor and the monitor by name.
        let waiter = b2.spawn_registered("waiter", wait).unwrap();
        p.trap_exit(true);
        p.link(&waiter);
        p.monitor(waiter);
        p.monitor(("waiter", b));
        p.send(("waiter", b), tuple(vec![atom("shutdown"), atom("bye")]));
        let bye = tuple(vec![atom("shutdown"), atom("bye")]);
        assert_eq!(
            signals(&mut p, 3).await,
            vec![
                ("DOWN".into(), bye.clone()),
                ("DOWN".into(), bye.clone()),
                ("EXIT".into(), bye)
            ]
        );
        // What does not exist.
        p.link(&waiter);
        p.monitor(waiter);
        p.monitor(("nobody", b));
        let noproc = vec![
            ("DOWN".into(), atom("noproc")),
            ("DOWN".into(), atom("noproc")),
            ("EXIT".into(), atom("noproc")),
        ];
        assert_eq!(signals(&mut p, 3).await, noproc);
        // exit/2 across nodes: kill cannot be trapped and reaches a linked process as killed.
        let victim = b2.spawn(wait);
        p.link(&victim);
        p.exit(&victim, atom("kill"));
        assert_eq!(
            signals(&mut p, 1).await,
            vec![("EXIT".into(), atom("killed"))]
        );
        p.trap_exit(false);
    })
    .await;

    // Not trapping: unlinked (UNLINK_ID), the other process's crash does not reach us.
    let b2 = b.clone();
    let survived = in_process(&a, move |mut p| async move {
        let other = b2.spawn(wait);
        p.link(&other);
        p.unlink(&other);
        p.monitor(other);
        p.send(other, atom("boom"));
        let down = signals(&mut p, 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        down
    })
    .await;
    assert_eq!(survived, vec![("DOWN".into(), atom("boom"))]);

    // Linked and not trapping: the crash kills us with the same reason.
    let b2 = b.clone();
    let reason = in_process(&a, move |mut p| async move {
        let victim = p.node().spawn(move |v| async move {
            let other = b2.spawn(wait);
            v.link(&other);
            v.send(other, atom("boom"));
            tokio::time::sleep(WAIT).await;
            Ok(())
        });
        p.monitor(victim);
        signals(&mut p, 1).await
    })
    .await;
    assert_eq!(reason, vec![("DOWN".into(), atom("boom"))]);
}

#[tokio::test]
async fn noconnection_when_the_connection_dies_then_reconnection() {
    let (_epmd, a, b) = two_nodes().await;
    for closing_side in ["a", "b"] {
        let bn = b.name().to_owned();
        let b2 = b.clone();
        let closer = if closing_side == "a" {
            a.clone()
        } else {
            b.clone()
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let watcher = tokio::spawn({
            let a = a.clone();
            async move {
                in_process(&a, move |mut p| async move {
                    let b = bn.as_str();
                    // On b, a process linked to ours that does not trap exits, watched by
                    // a local observer.
                    let linked = b2.spawn(wait);
                    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
                    let linked2 = linked;
                    b2.spawn(move |mut o| async move {
                        o.monitor(linked2);
                        let _ = seen_tx.send(signals(&mut o, 1).await);
                        Ok(())
                    });
                    p.trap_exit(true);
                    p.link(&linked);
                    p.monitor(linked);
                    p.monitor(("echo", b));
                    p.call(("echo", b), atom("sync"), Some(WAIT)).await.unwrap();
                    ready_tx.send(()).unwrap();
                    let here = signals(&mut p, 3).await;
                    let there = tokio::time::timeout(WAIT, seen_rx).await.unwrap().unwrap();
                    // The next message connects again.
                    assert_eq!(
                        p.call(("echo", b), atom("again"), Some(WAIT)).await,
                        Ok(atom("again"))
                    );
                    (here, there)
                })
                .await
            }
        });
        ready_rx.await.unwrap();
        let peer = if closing_side == "a" {
            b.name()
        } else {
            a.name()
        };
        assert!(
            closer.disconnect(peer),
            "{closing_side} was connected to {peer}"
        );
        let (here, there) = watcher.await.unwrap();
        let noconnection = vec![
            ("DOWN".into(), atom("noconnection")),
            ("DOWN".into(), atom("noconnection")),
            ("EXIT".into(), atom("noconnection")),
        ];
        assert_eq!(here, noconnection, "on a, {closing_side} closing");
        assert_eq!(
            there,
            vec![("DOWN".into(), atom("noconnection"))],
            "on b, {closing_side} closing"
        );
        assert_eq!(a.connected_nodes(), vec![b.name().to_owned()]);
        assert_eq!(b.connected_nodes(), vec![a.name().to_owned()]);
    }
}

/// A call waiting on a process of a node whose connection dies fails as `gen:call`
/// exits: `{nodedown, Node}`, naming the node whether the server was called by name or
/// by pid. One that is not answered in time is a timeout, with the call in its reason.
#[tokio::test]
async fn a_call_waiting_when_the_connection_dies_is_nodedown() {
    let (_epmd, a, b) = two_nodes().await;
    // Takes every call and answers none, saying when one arrived.
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let deaf = b
        .spawn_registered("deaf", |mut p| async move {
            loop {
                p.receive().await;
                let _ = heard_tx.send(());
            }
        })
        .unwrap();
    // Unanswered in time: `{:timeout, {GenServer, :call, [server, request, ms]}}`.
    let bn = b.name().to_owned();
    let late = in_process(&a, move |mut p| async move {
        let short = Some(Duration::from_millis(50));
        p.call(("deaf", bn.as_str()), atom("hello?"), short).await
    })
    .await
    .unwrap_err();
    tokio::time::timeout(WAIT, heard.recv()).await.unwrap();
    assert_eq!(late.kind(), &CallErrorKind::Timeout);
    assert_eq!(
        late.reason().to_string(),
        format!(
            "{{:timeout, {{GenServer, :call, [{{:deaf, :{}}}, :hello?, 50]}}}}",
            b.name()
        )
    );
    for target in [Dest::from(("deaf", b.name())), Dest::from(deaf)] {
        let a2 = a.clone();
        let caller = tokio::spawn(async move {
            in_process(&a2, move |mut p| async move {
                p.call(target, atom("hello?"), Some(WAIT)).await
            })
            .await
        });
        tokio::time::timeout(WAIT, heard.recv()).await.unwrap();
        assert!(a.disconnect(b.name()));
        let result = tokio::time::timeout(WAIT, caller).await.unwrap().unwrap();
        let e = result.unwrap_err();
        assert_eq!(e.kind(), &CallErrorKind::NodeDown(b.name().to_owned()));
        assert_eq!(
            e.reason().as_tuple_n(2).map(|r| r[0].clone()),
            Some(tuple(vec![atom("nodedown"), atom(b.name())]))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_connects_resolve_to_one_connection() {
    let epmd = EpmdServer::bind(0).await.expect("in-process EPMD");
    for round in 0..10 {
        let a = start_node("a", epmd.local_port()).await;
        let b = start_node("b", epmd.local_port()).await;
        gen_server::start(&a, Some("echo"), Echo).await.unwrap();
        gen_server::start(&b, Some("echo"), Echo).await.unwrap();
        // Both call each other at the same instant: both connect at once.
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let call = |from: &Node, to: &Node| {
            let (from, start, to) = (from.clone(), start.clone(), to.name().to_owned());
            async move {
                in_process(&from, move |mut p| async move {
                    start.wait().await;
                    p.call(("echo", to.as_str()), atom("hi"), Some(WAIT)).await
                })
                .await
            }
        };
        let (ab, ba) = tokio::join!(call(&a, &b), call(&b, &a));
        assert_eq!((ab, ba), (Ok(atom("hi")), Ok(atom("hi"))), "round {round}");
        // One connection survived, on both sides, and it stays.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            a.connected_nodes(),
            vec![b.name().to_owned()],
            "round {round}"
        );
        assert_eq!(
            b.connected_nodes(),
            vec![a.name().to_owned()],
            "round {round}"
        );
        let (ab, ba) = tokio::join!(call(&a, &b), call(&b, &a));
        assert_eq!(
            (ab, ba),
            (Ok(atom("hi")), Ok(atom("hi"))),
            "round {round}, again"
        );
    }
}

/// Polls `condition` every 20 ms for up to [`WAIT`].
async fn eventually(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Rust nodes keep `global`'s cluster among themselves as BEAM nodes do: two that
/// connect to a third get connected to each other, and when the third loses one of
/// them, the other hears of it and drops that one too (`prevent_overlapping_partitions`).
#[tokio::test]
async fn rust_nodes_keep_globals_cluster_among_themselves() {
    let epmd = EpmdServer::bind(0).await.expect("in-process EPMD");
    let a = start_node("a", epmd.local_port()).await;
    let b = start_node("b", epmd.local_port()).await;
    let c = start_node("c", epmd.local_port()).await;
    assert!(b.connect(a.name()).await);
    assert!(c.connect(a.name()).await);
    let (bn, cn) = (b.name().to_owned(), c.name().to_owned());
    assert!(
        eventually(|| b.connected_nodes().contains(&cn)).await,
        "b and c met through a"
    );
    assert!(a.disconnect(&cn));
    assert!(
        eventually(|| !b.connected_nodes().contains(&cn) && !c.connected_nodes().contains(&bn))
            .await,
        "b dropped c on a's report"
    );
}

/// EEP 76 between Rust processes, on one node and across two: a message sent with
/// `send_priority` through a priority alias is received before the ordinary messages
/// already queued; an ordinary send through it, and a priority send through a plain
/// alias, are ordinary messages, in their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_messages_through_priority_aliases() {
    let (_epmd, a, b) = two_nodes().await;
    for sender_node in [a.clone(), b.clone()] {
        let sender = sender_node.name().to_owned();
        let order = in_process(&a, move |mut p| async move {
            let urgent = p.priority_alias();
            let plain = p.alias();
            let me = p.pid();
            sender_node.spawn(move |q| async move {
                q.send(me, atom("first"));
                q.send_priority(&urgent, atom("urgent"));
                q.send(Dest::Alias(urgent.clone()), atom("second"));
                q.send_priority(&plain, atom("third"));
                q.send(me, atom("done"));
                Ok(())
            });
            p.receive_match(Some(WAIT), |m| m.is_atom("done"))
                .await
                .expect("done");
            let mut order = Vec::new();
            for _ in 0..4 {
                order.push(p.receive_timeout(WAIT).await.expect("a message"));
            }
            order
        })
        .await;
        let names = ["urgent", "first", "second", "third"].map(atom).to_vec();
        assert_eq!(order, names, "sent from {sender}");
    }
}

/// EEP 76 from a real BEAM node: on OTP 28+, `:erlang.send(alias, msg, [:priority])` to a
/// Rust process's priority alias arrives (as `ALTACT_SIG_SEND` with the PRIO bit) ahead
/// of the messages already queued. On an older release the BEAM itself refuses the
/// option (`badarg`), which is what this test then checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_messages_from_a_beam_node() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let release: u32 =
        blocking(|| alex.eval(":erlang.system_info(:otp_release) |> List.to_integer()"))
            .parse()
            .expect("a release number");
    let node = start_node("rusty", epmd.port()).await;
    let me = node.name().to_owned();
    let in_node = node.clone();
    let rust = tokio::spawn(async move {
        in_process(&in_node, move |mut p| async move {
            p.register("prio").unwrap();
            let urgent = p.priority_alias();
            let want = p.receive_timeout(WAIT).await.expect("{:want, pid}");
            let from = want
                .as_tuple_n(2)
                .and_then(|e| e[1].as_pid().cloned())
                .expect("a pid");
            p.send(
                from,
                tuple(vec![atom("alias"), Term::Reference(Box::new(urgent))]),
            );
            p.receive_match(Some(WAIT), |m| m.is_atom("done"))
                .await
                .expect(":done");
            let mut order = Vec::new();
            while let Some(m) = p.receive_timeout(Duration::from_millis(200)).await {
                order.push(m);
            }
            order
        })
        .await
    });
    for _ in 0..1000 {
        if node.whereis("prio").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = blocking(|| {
        alex.eval(&format!(
            "to = {{:prio, :\"{me}\"}}
             send(to, {{:want, self()}})
             alias = receive do {{:alias, a}} -> a after 10_000 -> :timeout end
             send(to, :first)
             sent = try do
               :erlang.send(alias, :urgent, [:priority])
             catch
               :error, reason -> reason
             end
             send(to, :done)
             sent"
        ))
    });
    let order = rust.await.expect("the Rust process");
    if release >= 28 {
        assert_eq!(sent, ":ok");
        assert_eq!(order, vec![atom("urgent"), atom("first")], "OTP {release}");
    } else {
        assert_eq!(sent, ":badarg", "OTP {release} has no priority messages");
        assert_eq!(order, vec![atom("first")]);
    }
}

/// `Node::stop`: its servers stop first (a monitor of the `echo` server, started by no
/// process, fires with `shutdown`), then the peer sees the node go down (a link to a
/// plain process fires with `noconnection`), the node leaves EPMD, its processes end, and it connects to nobody
/// again; `stopped()` gives 0. A peer's `init:stop(3)` is answered `ok` and stops the
/// other node with status 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_leaves_the_cluster() {
    let (epmd, a, b) = two_nodes().await;
    let bn = b.name().to_owned();
    let waiting = b.spawn(wait);
    let (linked_tx, linked_rx) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn({
        let a = a.clone();
        async move {
            in_process(&a, move |mut p| async move {
                p.trap_exit(true);
                p.link(&waiting);
                p.monitor(("echo", bn.as_str()));
                p.call(("echo", bn.as_str()), atom("sync"), Some(WAIT))
                    .await
                    .unwrap();
                linked_tx.send(()).unwrap();
                signals(&mut p, 2).await
            })
            .await
        }
    });
    linked_rx.await.unwrap();
    tokio::time::timeout(WAIT, b.stop())
        .await
        .expect("stopped in time");
    assert_eq!(b.stopped().await, 0);
    let seen = tokio::time::timeout(WAIT, watcher).await.unwrap().unwrap();
    assert_eq!(
        seen,
        vec![
            ("DOWN".into(), atom("shutdown")),
            ("EXIT".into(), atom("noconnection")),
        ]
    );
    assert!(!b.is_alive(&waiting));
    assert!(b.whereis("echo").is_none());
    let names = cnode::epmd::names("localhost", epmd.local_port())
        .await
        .unwrap();
    assert!(
        names
            .iter()
            .all(|(n, _)| !b.name().starts_with(&format!("{n}@"))),
        "{names:?}"
    );
    assert!(!b.connect(a.name()).await);
    assert!(a.connected_nodes().is_empty());
    // What needs a process fails at once: no process runs on a stopped node.
    let call = b.call(("echo", a.name()), atom("hi"), Some(WAIT));
    let failed = tokio::time::timeout(WAIT, call).await.expect("no hang");
    assert!(failed.is_err(), "{failed:?}");

    // A peer's init:stop(3): answered, then the node stops with that status.
    let c = start_node("c", epmd.local_port()).await;
    let cn = c.name().to_owned();
    let answer = a.erpc_call(&cn, "init", "stop", vec![int(3)], WAIT).await;
    assert_eq!(answer, Ok(atom("ok")));
    assert_eq!(tokio::time::timeout(WAIT, c.stopped()).await, Ok(3));
}

/// The names BEAM nodes register in `global` are known here, as on every node of the
/// cluster: those registered before we joined (the sync's `exchange`), those
/// registered after (the registrar's call), each gone when its process ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_names_of_the_cluster_are_known_here() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let early = "Elixir.Early";
    blocking(|| {
        alex.eval(
            "pid = spawn(fn -> receive do r -> exit(r) end end)
             :yes = :global.register_name(Early, pid)",
        )
    });
    let node = start_node("rusty", epmd.port()).await;
    assert!(node.connect(&alex.node_name()).await);
    // `:global.sync()`: once in sync, the names of the node just met are here.
    tokio::time::timeout(WAIT, node.global_sync())
        .await
        .expect("in sync");
    assert!(node.whereis_global(&atom(early)).is_some());
    let n = node.name().to_owned();
    assert_eq!(
        blocking(|| alex.eval(&format!(":rpc.call(:\"{n}\", :global, :sync, [])"))),
        ":ok"
    );
    let known = |name: &'static str| {
        let node = node.clone();
        async move {
            for _ in 0..200 {
                if let Some(pid) = node.whereis_global(&atom(name)) {
                    return Some(pid);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            None
        }
    };
    let pid = known(early)
        .await
        .expect("a name registered before we joined");
    assert_eq!(pid.node.name(), alex.node_name());

    // Called by `{:global, name}` (and `{:via, :global, name}`), as GenServer.call
    // takes it; a name nobody holds is `noproc`, the exit naming `{:global, name}`.
    blocking(|| alex.eval("{:ok, _} = GenServer.start(Chat.Echo, nil, name: {:global, EchoG})"));
    known("Elixir.EchoG").await.expect("EchoG");
    let by_via = Dest::server(&tuple(vec![
        atom("via"),
        atom("global"),
        atom("Elixir.EchoG"),
    ]));
    assert_eq!(by_via, Some(Dest::global(atom("Elixir.EchoG"))));
    assert_eq!(
        node.call(Dest::global(atom("Elixir.EchoG")), atom("hi"), Some(WAIT))
            .await,
        Ok(atom("hi"))
    );
    let missing = node
        .call(Dest::global(atom("Elixir.Nobody")), atom("hi"), Some(WAIT))
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), &CallErrorKind::NoProc);
    assert!(
        missing
            .to_string()
            .starts_with("exited in: GenServer.call({:global, Nobody}, :hi, "),
        "{missing}"
    );
    // As `send/2` reads it, `{:global, :x}` is a name on a node `x`.
    assert_eq!(
        Dest::try_from(&tuple(vec![atom("global"), atom("x")])),
        Ok(Dest::RemoteName(
            cnode::term::Atom::from("global"),
            cnode::term::Atom::from("x")
        ))
    );
    let n = node.name().to_owned();
    let whereis = blocking(|| {
        alex.eval(&format!(
            "{{:rpc.call(:\"{n}\", GenServer, :whereis, [{{:via, :global, EchoG}}]) == :global.whereis_name(EchoG),
              :rpc.call(:\"{n}\", GenServer, :whereis, [{{:via, :global, Nobody}}])}}"
        ))
    });
    assert_eq!(whereis, "{true, nil}");

    // Registered now: the registrar asks this node too.
    let late = blocking(|| {
        alex.eval(
            "pid = spawn(fn -> receive do r -> exit(r) end end)
             :yes = :global.register_name(Late, pid)
             inspect(pid)",
        )
    });
    let pid = known("Elixir.Late").await.expect("a name registered after");
    let as_alex_prints = format!("\"#PID<0.{}.{}>\"", pid.id, pid.serial);
    assert_eq!(as_alex_prints, late, "the same process");
    let mut names: Vec<String> = node.global_names().iter().map(|n| n.to_string()).collect();
    names.sort();
    assert_eq!(names, ["Early", "EchoG", "Late"]);

    // Its process ends: the name goes.
    node.send(pid, atom("bye"));
    let mut gone = false;
    for _ in 0..200 {
        if node.whereis_global(&atom("Elixir.Late")).is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the name of a process that ended");
    assert!(node.whereis_global(&atom(early)).is_some());
}

/// A Rust node registers a `global` name as a BEAM node does (the cluster's lock, then
/// every node): BEAM code calls `{:global, name}`, a taken name or a second name for the
/// same process is refused, and the name goes when it is unregistered or its process
/// ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_node_registers_global_names() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("rusty", epmd.port()).await;
    gen_server::start(&node, Some("echo"), Echo).await.unwrap();
    assert!(node.connect(&alex.node_name()).await);
    let echo = node.whereis("echo").unwrap();
    let name = atom("Elixir.Rusty.Echo");
    assert!(node.register_global(name.clone(), echo).await);
    let called = blocking(|| alex.eval("GenServer.call({:global, Rusty.Echo}, :hello)"));
    assert_eq!(called, ":hello");
    // Taken; and the process has a name already.
    let other = node.spawn(wait);
    assert!(!node.register_global(name.clone(), other).await);
    assert!(!node.register_global(atom("second"), echo).await);
    let taken = blocking(|| {
        alex.eval("pid = spawn(fn -> Process.sleep(:infinity) end); :global.register_name(Rusty.Echo, pid)")
    });
    assert_eq!(taken, ":no");

    // A BEAM caller registers through the Rust node; the name is everywhere.
    let through_rpc = blocking(|| {
        alex.eval(&format!(
            "pid = spawn(fn -> Process.sleep(:infinity) end)
             :yes = :rpc.call(:\"{}\", :global, :register_name, [:by_rpc, pid])
             :global.whereis_name(:by_rpc) == pid",
            node.name()
        ))
    });
    assert_eq!(through_rpc, "true");
    // What is no pid is no clause of global.erl's, as on a BEAM node.
    let no_pid = blocking(|| {
        alex.eval(&format!(
            ":rpc.call(:\"{}\", :global, :register_name, [:x, :notapid])",
            node.name()
        ))
    });
    assert_eq!(
        no_pid,
        "{:badrpc, {:EXIT, {:function_clause, [{:global, :register_name, [:x, :notapid], []}]}}}"
    );

    // A BEAM node resolving a clash over a name whose process is here asks this node
    // to run the name's method.
    let resolved = blocking(|| {
        alex.eval(&format!(
            "other = spawn(fn -> Process.sleep(:infinity) end)
             kept = :rpc.call(:\"{}\", :global, :resolve_it, [&:global.random_notify_name/3, :n, self(), other])
             {{kept == other, receive do m -> m after 5000 -> :none end}}",
            node.name()
        ))
    });
    assert_eq!(resolved, "{true, {:global_name_conflict, :n}}");

    node.unregister_global(&name).await;
    let gone = blocking(|| {
        alex.eval("Enum.find_value(1..100, fn _ -> :global.whereis_name(Rusty.Echo) == :undefined || (Process.sleep(50); nil) end)")
    });
    assert_eq!(gone, "true");
    assert!(node.whereis_global(&name).is_none());

    // The process ends: alex forgets the name.
    assert!(node.register_global(atom("waiting"), other).await);
    let seen = blocking(|| alex.eval("node(:global.whereis_name(:waiting)) != node()"));
    assert_eq!(seen, "true");
    node.exit(&other, atom("kill"));
    let forgotten = blocking(|| {
        alex.eval("Enum.find_value(1..100, fn _ -> :global.whereis_name(:waiting) == :undefined || (Process.sleep(50); nil) end)")
    });
    assert_eq!(forgotten, "true");
}

/// A peer outside `global`'s syncing (`-connect_all false`: its `global` never answers
/// ours) holds up no registration here, as it holds up none on a BEAM node; and
/// `re_register_name` moves a taken name, from Rust and over rpc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_global_holds_up_no_registration() {
    let epmd = Epmd::start();
    let loner = blocking(|| {
        BeamNode::start_plain_with(
            &unique_name("loner"),
            COOKIE,
            &epmd,
            &["--erl", "-connect_all false"],
        )
    });
    let node = start_node("rusty", epmd.port()).await;
    assert!(node.connect(&loner.node_name()).await);
    let first = node.spawn(wait);
    let registered = tokio::time::timeout(WAIT, node.register_global(atom("first"), first))
        .await
        .expect("registered while the loner is connected");
    assert!(registered);
    let asked = blocking(|| {
        loner.eval(&format!(
            "n = :\"{}\"
             pid = spawn(fn -> Process.sleep(:infinity) end)
             {{:rpc.call(n, :global, :register_name, [:by_loner, pid], 20_000),
              :rpc.call(n, :global, :re_register_name, [:first, pid], 20_000),
              :rpc.call(n, :global, :whereis_name, [:first]) == pid}}",
            node.name()
        ))
    });
    assert_eq!(asked, "{:yes, :yes, true}");
    assert!(
        node.is_alive(&first),
        "re_register_name leaves the holder running"
    );
    let second = node.spawn(wait);
    assert!(node.re_register_global(atom("first"), second).await);
    assert_eq!(node.whereis_global(&atom("first")), Some(second));
}

/// `net_kernel:allow/1`, from Rust or over rpc: from then on the node connects with the
/// nodes named only; another is refused in the handshake (`Node.ping` is `:pang`, and
/// the node logs it as dist_util does), and none is attempted to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_nodes_connect_once_a_list_is_given() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let kate = blocking(|| BeamNode::start(&unique_name("kate"), COOKIE, &epmd));
    let node = start_node("guarded", epmd.port()).await;
    let n = node.name().to_owned();
    let a = alex.node_name();
    // alex names itself, over rpc, as a BEAM node would be told to.
    let allowed = blocking(|| {
        alex.eval(&format!(
            "{{:rpc.call(:\"{n}\", :net_kernel, :allow, [[node()]]), :rpc.call(:\"{n}\", :net_kernel, :allow, [[1]])}}"
        ))
    });
    assert_eq!(allowed, "{:ok, :error}");
    let pinged = blocking(|| kate.eval(&format!("Node.ping(:\"{n}\")")));
    assert_eq!(pinged, ":pang");
    assert!(!node.connect(&kate.node_name()).await);
    assert!(node.connect(&a).await);
    // And from Rust: kate now too.
    node.allow(&[kate.node_name().as_str()]);
    let pinged = blocking(|| kate.eval(&format!("Node.ping(:\"{n}\")")));
    assert_eq!(pinged, ":pong");
}

/// A hidden node registers `global` names as a hidden BEAM node does: they are its own,
/// its peers do not see them, and it does not see theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_node_keeps_its_global_names_to_itself() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    blocking(|| alex.eval(":yes = :global.register_name(:alexs, self())"));
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name("hidden")), COOKIE);
    config.epmd_port = epmd.port();
    config.hidden = true;
    let node = Node::start(config).await.expect("the node starts");
    assert!(node.connect(&alex.node_name()).await);
    let mine = node.spawn(wait);
    assert!(node.register_global(atom("hiddens"), mine).await);
    assert_eq!(node.whereis_global(&atom("hiddens")), Some(mine));
    assert_eq!(node.whereis_global(&atom("alexs")), None);
    // And over rpc, as iex asks a hidden BEAM node.
    let asked = blocking(|| {
        alex.eval(&format!(
            "n = :\"{}\"
             {{:global.whereis_name(:hiddens), :rpc.call(n, :global, :register_name, [:by_rpc, self()]),
              :rpc.call(n, :global, :whereis_name, [:by_rpc]) == self(), :global.whereis_name(:by_rpc)}}",
            node.name()
        ))
    });
    assert_eq!(asked, "{:undefined, :yes, true, :undefined}");
}

/// Two partitions that registered the same name meet: the lesser node resolves the clash
/// with the name's method (`random_exit_name`: the process on the greater node is
/// killed), a Rust node as a BEAM node, and every node ends with the same process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_clash_between_partitions_is_resolved_as_among_beam_nodes() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    blocking(|| {
        alex.eval(
            "for name <- [Clash, Clash2] do
               pid = spawn(fn -> Process.sleep(:infinity) end)
               Process.register(pid, name)
               :yes = :global.register_name(name, pid)
             end
             :ok",
        )
    });
    // Each Rust node registers the name before it meets alex: "aaa" is the lesser node
    // of its pair and resolves; alex resolves against "zzz".
    for (prefix, name, survivor) in [
        ("aaa", "Elixir.Clash", "rust"),
        ("zzz", "Elixir.Clash2", "alex"),
    ] {
        let node = start_node(prefix, epmd.port()).await;
        let mine = node.spawn(wait);
        assert!(node.register_global(atom(name), mine).await);
        assert!(node.connect(&alex.node_name()).await);
        let mut settled = None;
        for _ in 0..200 {
            let here = node.whereis_global(&atom(name));
            let alive = node.is_alive(&mine);
            let there = blocking(|| {
                alex.eval(&format!(
                    "p = :global.whereis_name({n})
                     {{is_pid(p) and node(p) == node(), Process.whereis({n}) != nil}}",
                    n = name.trim_start_matches("Elixir.")
                ))
            });
            match (here, alive, there.as_str()) {
                (Some(p), true, "{false, false}") if p == mine => {
                    settled = Some("rust");
                    break;
                }
                (Some(p), false, "{true, true}") if p.node.name() == alex.node_name() => {
                    settled = Some("alex");
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        assert_eq!(settled, Some(survivor), "{name} on {}", node.name());
    }
}

/// `pg` with BEAM nodes: a Rust scope finds the same scope on the nodes it is connected
/// to and on those that connect later, sees their members, and they see its own (joined
/// twice, left once, gone when the process ends), as between two BEAM nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_groups_are_shared_with_beam_nodes() {
    let epmd = Epmd::start();
    let start_scope = "{:ok, _} = :pg.start(:chat_scope)
        pid = spawn(fn -> receive do r -> exit(r) end end)
        :ok = :pg.join(:chat_scope, :room, pid)
        Process.register(pid, :member)
        :ok";
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    blocking(|| alex.eval(start_scope));
    let node = start_node("rusty", epmd.port()).await;
    assert!(node.connect(&alex.node_name()).await);
    let scope = node.start_pg("chat_scope").unwrap();
    // Started twice: `{:already_started, pid}`, as `:pg.start_link/1` answers.
    let again = node.start_pg("chat_scope").unwrap_err().reason();
    assert_eq!(
        again,
        tuple(vec![atom("already_started"), Term::Pid(scope)])
    );
    let room = atom("room");
    let members_here = |n: usize| {
        let node = node.clone();
        let room = room.clone();
        async move {
            for _ in 0..200 {
                let members = node.pg_members("chat_scope", &room);
                if members.len() == n {
                    return members;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            node.pg_members("chat_scope", &room)
        }
    };
    // alex's member, found by the scope started after the connection.
    let found = members_here(1).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].node.name(), alex.node_name());

    // Subscribed to the scope and to the room (`:pg.monitor_scope/1`, `:pg.monitor/2`,
    // OTP 25.1): what is there, then every join and leave, here or on a BEAM node.
    let (events, mut watched) = tokio::sync::mpsc::unbounded_channel();
    let (stop_watching, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = node.spawn(move |mut p| async move {
        let (scope_ref, groups) = p.pg_monitor_scope("chat_scope").await.expect("a scope");
        let (room_ref, members) = p.pg_monitor("chat_scope", atom("room")).await.expect("a scope");
        let _ = events.send(format!("scope {} room {}", groups.len(), members.len()));
        let mut stopped = std::pin::pin!(stopped);
        loop {
            tokio::select! {
                m = p.receive() => {
                    let Some([Term::Reference(r), action, group, pids]) = m.as_tuple_n(4) else {
                        continue;
                    };
                    let by = if **r == scope_ref { "scope" } else if **r == room_ref { "room" } else { "?" };
                    let n = pids.as_list().map_or(0, |l| l.len());
                    let _ = events.send(format!("{by} {action} {group} {n}"));
                }
                _ = &mut stopped => break,
            }
        }
        assert_eq!(p.pg_demonitor("chat_scope", &scope_ref).await, Ok(true));
        assert_eq!(p.pg_demonitor("chat_scope", &scope_ref).await, Ok(false));
        let _ = events.send("demonitored".to_owned());
        p.receive().await;
        Ok(())
    });
    // The next `n` events, sorted (the scope's and the room's come in either order).
    async fn next_events(
        watched: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
        n: usize,
    ) -> Vec<String> {
        let mut got = Vec::new();
        for _ in 0..n {
            let event = tokio::time::timeout(WAIT, watched.recv()).await;
            got.push(
                event
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| format!("none after {got:?}")),
            );
        }
        got.sort();
        got
    }
    assert_eq!(next_events(&mut watched, 1).await, ["scope 1 room 1"]);

    // A Rust member, joined twice: alex sees it twice; left once, once.
    let worker = node.spawn(wait);
    node.pg_join("chat_scope", room.clone(), &[worker])
        .await
        .unwrap();
    node.pg_join("chat_scope", room.clone(), &[worker])
        .await
        .unwrap();
    assert_eq!(
        node.pg_local_members("chat_scope", &room),
        vec![worker, worker]
    );
    let on_alex = |n: usize| {
        format!(
            "Enum.find_value(1..200, fn _ ->
               m = :pg.get_members(:chat_scope, :room)
               length(Enum.filter(m, &(node(&1) != node()))) == {n} || (Process.sleep(50); nil)
             end)"
        )
    };
    assert_eq!(blocking(|| alex.eval(&on_alex(2))), "true");
    assert_eq!(
        node.pg_leave("chat_scope", room.clone(), &[worker]).await,
        Ok(true)
    );
    assert_eq!(blocking(|| alex.eval(&on_alex(1))), "true");
    assert_eq!(
        next_events(&mut watched, 6).await,
        [
            "room :join :room 1",
            "room :join :room 1",
            "room :leave :room 1",
            "scope :join :room 1",
            "scope :join :room 1",
            "scope :leave :room 1"
        ]
    );
    // A member of alex's joins another group: the scope's subscriber hears of it.
    blocking(|| {
        alex.eval("p = spawn(fn -> Process.sleep(:infinity) end); :ok = :pg.join(:chat_scope, :lobby, p); :ok = :pg.leave(:chat_scope, :lobby, p)")
    });
    assert_eq!(
        next_events(&mut watched, 2).await,
        ["scope :join :lobby 1", "scope :leave :lobby 1"]
    );
    let _ = stop_watching.send(());
    assert_eq!(next_events(&mut watched, 1).await, ["demonitored"]);
    node.exit(&watcher, atom("kill"));
    // Over rpc, as a BEAM node answers (held by the call's process).
    let subscribed = blocking(|| {
        alex.eval(&format!(
            "{{r, groups}} = :rpc.call(:\"{n}\", :pg, :monitor_scope, [:chat_scope])
             {{r2, members}} = :rpc.call(:\"{n}\", :pg, :monitor, [:chat_scope, :room])
             {{is_reference(r) and is_reference(r2), Map.keys(groups), length(members),
              :rpc.call(:\"{n}\", :pg, :demonitor, [:chat_scope, make_ref()])}}",
            n = node.name()
        ))
    });
    assert_eq!(subscribed, "{true, [:room], 2, false}");
    assert_eq!(
        node.pg_leave("chat_scope", atom("elsewhere"), &[worker])
            .await,
        Ok(false)
    );

    // A node that connects later: its scope and ours find each other.
    let kate = blocking(|| BeamNode::start(&unique_name("kate"), COOKIE, &epmd));
    blocking(|| kate.eval(start_scope));
    assert!(node.connect(&kate.node_name()).await);
    assert_eq!(members_here(3).await.len(), 3, "alex's, kate's and ours");
    let asked = blocking(|| {
        kate.eval(&format!(
            "Enum.find_value(1..200, fn _ ->
               m = :pg.get_members(:chat_scope, :room)
               (length(m) == 3 and length(:rpc.call(:\"{}\", :pg, :get_members, [:chat_scope, :room])) == 3) || (Process.sleep(50); nil)
             end)",
            node.name()
        ))
    });
    assert_eq!(asked, "true");

    // Members that end leave: ours on alex (each of its joins), alex's here.
    for _ in 0..2 {
        node.pg_join("chat_scope", room.clone(), &[worker])
            .await
            .unwrap();
    }
    assert_eq!(
        blocking(|| alex.eval(&on_alex(4))),
        "true",
        "3 joins, kate's"
    );
    node.exit(&worker, atom("kill"));
    assert_eq!(blocking(|| alex.eval(&on_alex(1))), "true", "kate's left");
    blocking(|| alex.eval("send(:member, :bye)"));
    let left = members_here(1).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].node.name(), kate.node_name());
    assert_eq!(node.pg_groups("chat_scope"), vec![room.clone()]);
    let stranger = Pid::new(alex.node_name().as_str(), 1, 0, 1);
    assert!(matches!(
        node.pg_join("chat_scope", room, &[stranger]).await,
        Err(cnode::PgError::NotLocal(_))
    ));

    // The forms without a scope ask the default scope, `pg`.
    node.start_pg("pg").unwrap();
    let lobby = node.spawn(wait);
    node.pg_join("pg", atom("lobby"), &[lobby]).await.unwrap();
    let asked = blocking(|| {
        alex.eval(&format!(
            "n = :\"{}\"
            {{:rpc.call(n, :pg, :which_groups, []), :rpc.call(n, :pg, :get_members, [:lobby]) |> length(),
             :rpc.call(n, :pg, :get_local_members, [:lobby]) |> length(),
             match?({{:badrpc, {{:EXIT, {{:badarg, [{{:ets, :match, [:no_such_scope, _], [error_info: %{{cause: :id}}]}}, {{:pg, :which_groups, 1, _}}]}}}}}},
                    :rpc.call(n, :pg, :which_groups, [:no_such_scope])),
             :rpc.call(n, :pg, :get_members, [:no_such_scope, :lobby]),
             :rpc.call(n, :pg, :get_local_members, [:no_such_scope, :lobby])}}",
            node.name()
        ))
    });
    // Members of a scope not running are [], as pg.erl answers them; its groups the
    // badarg of ets:match/2 on its missing table, with the frames of a BEAM node.
    assert_eq!(asked, "{[:lobby], 1, 1, true, [], []}");

    // A scope started over rpc, as a harness starts one on each node: it runs, and
    // sees a BEAM node's members of the same scope.
    let started = blocking(|| {
        alex.eval(&format!(
            "n = :\"{}\"
            {{:ok, pid}} = :rpc.call(n, :pg, :start, [:rpc_scope])
            {{:ok, _}} = :pg.start(:rpc_scope)
            :ok = :pg.join(:rpc_scope, :room, self())
            seen = Enum.find_value(1..200, fn _ ->
              :rpc.call(n, :pg, :get_members, [:rpc_scope, :room]) == [self()] || (Process.sleep(50); nil)
            end)
            count = fn -> :erpc.call(n, :erlang, :system_info, [:process_count]) end
            before = count.()
            again = for _ <- 1..5, do: :rpc.call(n, :pg, :start, [:rpc_scope])
            # A start refused leaves no process behind.
            settled = Enum.find_value(1..100, false, fn _ -> count.() == before || (Process.sleep(50); nil) end)
            {{node(pid) == n, Enum.uniq(again) == [{{:error, {{:already_started, pid}}}}], seen, settled}}",
            node.name()
        ))
    });
    assert_eq!(started, "{true, true, true, true}");

    // A process of the Rust node joins and leaves over rpc, as a BEAM node's would.
    let joined = blocking(|| {
        alex.eval(&format!(
            "n = :\"{}\"
            rex = :rpc.call(n, Process, :whereis, [:rex])
            ok = :rpc.call(n, :pg, :join, [:rpc_scope, :rust_room, rex])
            seen = Enum.find_value(1..200, fn _ ->
              :pg.get_members(:rpc_scope, :rust_room) == [rex] || (Process.sleep(50); nil)
            end)
            left = :rpc.call(n, :pg, :leave, [:rpc_scope, :rust_room, [rex]])
            again = :rpc.call(n, :pg, :leave, [:rpc_scope, :rust_room, rex])
            {{:badrpc, {{:EXIT, {{{{nolocal, pid}}, frames}}}}}} = :rpc.call(n, :pg, :join, [:rpc_scope, :x, [self()]])
            noproc = :rpc.call(n, :pg, :join, [:no_scope, :x, rex])
            {{ok, seen, left, again, nolocal, pid == self(), frames, noproc == {{:badrpc, {{:EXIT,
              {{:noproc, {{:gen_server, :call, [:no_scope, {{:join_local, :x, rex}}, :infinity]}}}}}}}}}}",
            node.name()
        ))
    });
    assert_eq!(
        joined,
        "{:ok, true, :ok, :not_joined, :nolocal, true, [{:pg, :ensure_local, 1, []}, {:pg, :join, 3, []}], true}"
    );
}

/// `Task.Supervisor.async_nolink`, `Task.yield` and `Task.shutdown` from a Rust process,
/// and `:rpc.call`, against a BEAM node's Task.Supervisor: the outcomes an Elixir caller
/// on that node gets for the same tasks and calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinked_tasks_yield_and_shut_down_as_an_elixir_callers_do() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("rusty", epmd.port()).await;
    let a = alex.node_name();
    let elixir = blocking(|| {
        alex.eval(
            "sup = Chat.TaskSupervisor
            t1 = Task.Supervisor.async_nolink(sup, :erlang, :exit, [:bye])
            r1 = Task.yield(t1, 5000)
            t2 = Task.Supervisor.async_nolink(sup, Process, :sleep, [60_000])
            r2 = {Task.yield(t2, 200), Task.shutdown(t2, 5000)}
            t3 = Task.Supervisor.async_nolink(sup, Process, :sleep, [60_000])
            r3 = Task.shutdown(t3, :brutal_kill)
            t4 = Task.Supervisor.async_nolink(sup, :erlang, :node, [])
            Process.sleep(500)
            r4 = Task.shutdown(t4, 5000)
            t5 = Task.Supervisor.async_nolink(sup, :erlang, :exit, [:bye])
            Process.sleep(500)
            r5 = Task.shutdown(t5, 5000)
            {r1, r2, r3, r4, r5, Task.Supervisor.children(sup)}",
        )
    });
    let sup = a.clone();
    let rust = in_process(&node, move |mut p| async move {
        let sup = ("Elixir.Chat.TaskSupervisor", sup.as_str());
        let shown = |r: Option<Result<Term, Term>>| match r {
            None => "nil".to_owned(),
            Some(Ok(v)) => format!("{{:ok, {v}}}"),
            Some(Err(reason)) => format!("{{:exit, {reason}}}"),
        };
        let t1 = p.task_async_nolink(sup, "erlang", "exit", vec![atom("bye")]);
        let t1 = t1.await.expect("started");
        let r1 = shown(p.task_yield(&t1, WAIT).await.expect("yields"));
        let sleep = vec![int(60_000)];
        let t2 = p.task_async_nolink(sup, "Elixir.Process", "sleep", sleep.clone());
        let t2 = t2.await.expect("started");
        let early = shown(
            p.task_yield(&t2, Duration::from_millis(200))
                .await
                .expect("yields"),
        );
        let r2 = shown(p.task_shutdown(t2, WAIT).await.expect("shuts down"));
        let t3 = p.task_async_nolink(sup, "Elixir.Process", "sleep", sleep);
        let t3 = t3.await.expect("started");
        let r3 = shown(p.task_shutdown(t3, None).await.expect("shuts down"));
        let t4 = p.task_async_nolink(sup, "erlang", "node", vec![]);
        let t4 = t4.await.expect("started");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r4 = shown(p.task_shutdown(t4, WAIT).await.expect("shuts down"));
        let t5 = p.task_async_nolink(sup, "erlang", "exit", vec![atom("bye")]);
        let t5 = t5.await.expect("started");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r5 = shown(p.task_shutdown(t5, WAIT).await.expect("shuts down"));
        // The DOWN of a monitor, its reason.
        let gone = p.monitor(t1.pid);
        assert_eq!(p.receive_down(&gone, WAIT).await, Some(atom("noproc")));
        format!("{{{r1}, {{{early}, {r2}}}, {r3}, {r4}, {r5}, []}}")
    })
    .await;
    assert_eq!(rust, elixir);
    assert_eq!(
        elixir,
        format!("{{{{:exit, :bye}}, {{nil, nil}}, nil, {{:ok, :{a}}}, {{:exit, :bye}}, []}}")
    );

    // `:rpc.call`: a failure as a value, as rpc gives it.
    let elixir = blocking(|| {
        alex.eval(
            "{:rpc.call(node(), :erlang, :exit, [:bye]), :rpc.call(node(), :erlang, :throw, [:ball]),
              :rpc.call(:nobody@localhost, :erlang, :node, []),
              :rpc.call(node(), Process, :sleep, [1000], 100), :rpc.call(node(), :erlang, :node, [])}",
        )
    });
    let rpc = |m: &'static str, f: &'static str, args: Vec<Term>, to: &str, t: u64| {
        let (node, to) = (node.clone(), to.to_owned());
        async move {
            node.rpc_call(&to, m, f, args, Duration::from_millis(t))
                .await
        }
    };
    let rust = format!(
        "{{{}, {}, {}, {}, {}}}",
        rpc("erlang", "exit", vec![atom("bye")], &a, 5000).await,
        rpc("erlang", "throw", vec![atom("ball")], &a, 5000).await,
        rpc("erlang", "node", vec![], "nobody@localhost", 5000).await,
        rpc("Elixir.Process", "sleep", vec![int(1000)], &a, 100).await,
        rpc("erlang", "node", vec![], &a, 5000).await,
    );
    assert_eq!(rust, elixir);
}

/// A `pg` scope in a supervision tree (`ChildSpec::pg`): a BEAM node sees its members
/// and the supervisor's child as an Elixir supervisor lists `{:pg, :start_link, [scope]}`;
/// killed, it is started again by the supervisor, its local members lost as on the BEAM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_scope_under_a_supervisor() {
    use cnode::supervisor::{self, ChildSpec, Strategy};
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    blocking(|| alex.eval("{:ok, _} = :pg.start(:jobs_scope)"));
    let node = start_node("rusty", epmd.port()).await;
    assert!(node.connect(&alex.node_name()).await);
    supervisor::start(
        &node,
        Some("Elixir.Jobs.Supervisor"),
        Strategy::OneForOne,
        vec![ChildSpec::pg("pg", "jobs_scope")],
    )
    .await
    .expect("the tree starts");
    let scope = node.whereis("jobs_scope").expect("the scope is registered");
    let worker = node.spawn(wait);
    node.pg_join("jobs_scope", atom("workers"), &[worker])
        .await
        .unwrap();
    let members_on_alex = |n: usize| {
        format!(
            "Enum.find_value(1..200, fn _ ->
               length(:pg.get_members(:jobs_scope, :workers)) == {n} || (Process.sleep(50); nil)
             end)"
        )
    };
    assert_eq!(blocking(|| alex.eval(&members_on_alex(1))), "true");
    let n = node.name().to_owned();
    let children = blocking(|| {
        alex.eval(&format!(
            "[{{_, pid, :worker, [:pg]}}] = Supervisor.which_children({{Jobs.Supervisor, :'{n}'}})
             pid == :rpc.call(:'{n}', Process, :whereis, [:jobs_scope])"
        ))
    });
    assert_eq!(children, "true");

    // Killed: the supervisor starts it again; the member is gone, everywhere.
    node.exit(&scope, atom("kill"));
    let mut again = None;
    for _ in 0..200 {
        again = node.whereis("jobs_scope").filter(|p| *p != scope);
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again.is_some(), "the scope is started again");
    assert_eq!(blocking(|| alex.eval(&members_on_alex(0))), "true");
    assert_eq!(node.pg_members("jobs_scope", &atom("workers")), vec![]);
}

/// `pg` between Rust nodes: the same protocol both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_groups_among_rust_nodes() {
    let (_epmd, a, b) = two_nodes().await;
    a.start_pg("pg").unwrap();
    b.start_pg("pg").unwrap();
    assert!(a.connect(b.name()).await);
    let on_a = a.spawn(wait);
    let on_b = b.spawn(wait);
    a.pg_join("pg", atom("g"), &[on_a]).await.unwrap();
    b.pg_join("pg", atom("g"), &[on_b]).await.unwrap();
    let mut seen = (Vec::new(), Vec::new());
    for _ in 0..200 {
        seen = (
            a.pg_members("pg", &atom("g")),
            b.pg_members("pg", &atom("g")),
        );
        if seen.0.len() == 2 && seen.1.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (mut on_a_view, mut on_b_view) = seen;
    on_a_view.sort_by_key(|p| p.node.name().to_owned());
    on_b_view.sort_by_key(|p| p.node.name().to_owned());
    assert_eq!(on_a_view, on_b_view);
    assert_eq!(on_a_view.len(), 2);
    // b goes away: a forgets b's member.
    b.stop().await;
    for _ in 0..200 {
        if a.pg_members("pg", &atom("g")) == vec![on_a] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("b's member stays: {:?}", a.pg_members("pg", &atom("g")));
}

/// `GenServer.start(module, arg, name: {:global, name})` in Rust: Elixir code calls the
/// server as `{:global, name}`; a name taken (by a Rust or a BEAM process) is
/// `{:already_started, pid}`, and the name goes with the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genserver_started_with_a_global_name() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("rusty", epmd.port()).await;
    assert!(node.connect(&alex.node_name()).await);
    let name = atom("Elixir.Rusty.Leader");
    let pid = gen_server::start_global(&node, name.clone(), Echo)
        .await
        .unwrap();
    let called = blocking(|| alex.eval("GenServer.call({:global, Rusty.Leader}, :hello)"));
    assert_eq!(called, ":hello");
    let again = gen_server::start_global(&node, name.clone(), Echo).await;
    assert_eq!(
        again.map_err(|e| e.reason()),
        Err(tuple(vec![atom("already_started"), Term::Pid(pid)]))
    );
    let theirs = blocking(|| {
        alex.eval("{:ok, _} = GenServer.start(Chat.Echo, nil, name: {:global, :theirs}); :ok")
    });
    assert_eq!(theirs, ":ok");
    let taken = gen_server::start_global(&node, atom("theirs"), Echo).await;
    let reason = taken.map_err(|e| e.reason()).unwrap_err();
    let held = reason
        .as_tuple_n(2)
        .map(|e| (e[0].clone(), e[1].as_pid().map(|p| p.node)));
    assert_eq!(
        held,
        Some((
            atom("already_started"),
            Some(cnode::term::Atom::from(alex.node_name().as_str()))
        ))
    );
    // Linked to its starter, as `start_link` with the name.
    let linked = in_process(&node, |p| async move {
        let linked = gen_server::start_link_global(&p, atom("linked"), Echo).await;
        (linked, p.pid())
    })
    .await;
    let (linked, starter) = (linked.0.unwrap(), linked.1);
    assert_eq!(node.whereis_global(&atom("linked")), Some(linked));
    assert_ne!(linked, starter);
    // Under a supervisor: killed, it is started again and takes the name again.
    let children = vec![cnode::supervisor::ChildSpec::gen_server_global(
        "leader",
        atom("supervised"),
        || Echo,
    )];
    cnode::supervisor::start(
        &node,
        None,
        cnode::supervisor::Strategy::OneForOne,
        children,
    )
    .await
    .unwrap();
    let first = node.whereis_global(&atom("supervised")).unwrap();
    node.exit(&first, atom("kill"));
    let restarted = blocking(|| {
        alex.eval(
            "Enum.find_value(1..200, fn _ ->
               p = :global.whereis_name(:supervised)
               (is_pid(p) and GenServer.call(p, :again) == :again and p) || (Process.sleep(50); nil)
             end) |> inspect()",
        )
    });
    assert_ne!(restarted, "\"nil\"");
    let again = node.whereis_global(&atom("supervised")).unwrap();
    assert_ne!(again, first);
    // Stopped, the server's name goes.
    node.exit(&pid, atom("kill"));
    let gone = blocking(|| {
        alex.eval("Enum.find_value(1..100, fn _ -> :global.whereis_name(Rusty.Leader) == :undefined || (Process.sleep(50); nil) end)")
    });
    assert_eq!(gone, "true");
    // An init that fails: the name is free by the time the start returns, as
    // gen_server unregisters it first.
    for _ in 0..20 {
        let failed = gen_server::start_global(&node, atom("no_init"), NoInit { hang: false }).await;
        assert_eq!(failed.map_err(|e| e.reason()), Err(atom("no_init")));
        assert_eq!(node.whereis_global(&atom("no_init")), None);
    }
    // A start given up on (a timeout around it): the half-started server goes.
    let given_up = tokio::time::timeout(
        Duration::from_millis(300),
        gen_server::start(&node, Some("hangs"), NoInit { hang: true }),
    )
    .await;
    assert!(given_up.is_err());
    let deadline = std::time::Instant::now() + WAIT;
    while node.whereis("hangs").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server is still there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `global`'s locks from Rust, against a BEAM node's processes holding the same:
/// `Process::global_set_lock` and `global_del_lock` (`:global.set_lock/3`,
/// `del_lock/2`), `Node::global_trans` (`:global.trans/4`: `:aborted` when the tries
/// run out, the lock shared by the same requester, released when the work ends or is
/// dropped), and `set_lock`/`del_lock` over rpc, as a BEAM node answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_locks_as_on_a_beam_node() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("locky", epmd.port()).await;
    assert!(node.connect(&alex.node_name()).await);
    tokio::time::timeout(WAIT, node.global_sync())
        .await
        .expect("in sync");
    let n = node.name().to_owned();
    // A process of alex holds `{:ledger, :alex}` on both nodes until told.
    let held = blocking(|| {
        alex.eval(&format!(
            "me = self()
             pid = spawn(fn ->
               send(me, {{:locked, :global.set_lock({{:ledger, :alex}}, [node(), :\"{n}\"], 0)}})
               receive do
                 {{:release, from}} ->
                   :global.del_lock({{:ledger, :alex}}, [node(), :\"{n}\"])
                   send(from, :released)
               end
             end)
             Process.register(pid, :holder)
             receive do {{:locked, l}} -> l after 30_000 -> :timeout end"
        ))
    });
    assert_eq!(held, "true");
    let ledger = atom("ledger");
    // Another requester: refused, and `:aborted` once the tries run out.
    let refused = node.run_process(|mut p| async move {
        p.global_set_lock(&atom("ledger"), &atom("rust"), None, Some(1))
            .await
    });
    assert_eq!(refused.await, Ok(false));
    let aborted = node.global_trans(ledger.clone(), atom("rust"), Some(0), async { 1 });
    assert_eq!(aborted.await.expect("no exit"), None);
    let released = blocking(|| {
        alex.eval(
            "send(:holder, {:release, self()})
             receive do :released -> :ok after 30_000 -> :timeout end",
        )
    });
    assert_eq!(released, ":ok");

    // Held by a Rust transaction: refused to alex's other requester, shared with the
    // same requester, free again when the work ends.
    let (started, is_started) = tokio::sync::oneshot::channel();
    let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    let (here, resource) = (node.clone(), ledger.clone());
    let trans = tokio::spawn(async move {
        let work = async {
            let _ = started.send(());
            let _ = finished.await;
            7
        };
        here.global_trans(resource, atom("rust"), None, work).await
    });
    tokio::time::timeout(WAIT, is_started)
        .await
        .expect("the lock taken")
        .expect("the work started");
    let try_lock = |requester: &'static str| {
        let n = n.clone();
        let alex = &alex;
        move || {
            alex.eval(&format!(
                "took = :global.set_lock({{:ledger, :{requester}}}, [node(), :\"{n}\"], 0)
                 if took, do: :global.del_lock({{:ledger, :{requester}}}, [node(), :\"{n}\"])
                 took"
            ))
        }
    };
    assert_eq!(blocking(try_lock("other")), "false");
    assert_eq!(blocking(try_lock("rust")), "true");
    let _ = finish.send(());
    let done = tokio::time::timeout(WAIT, trans)
        .await
        .expect("the work ends");
    assert_eq!(done.expect("the task").expect("no exit"), Some(7));
    assert_eq!(blocking(try_lock("other")), "true");

    // Work that panics: the transaction fails with the panic, as `:global.trans/4`
    // raises what its fun raised, and the lock is free again.
    let panicked = node
        .global_trans(ledger.clone(), atom("rust"), None, async {
            panic!("the ledger is on fire");
        })
        .await;
    let reason = panicked.expect_err("the work panicked").exit_reason();
    assert!(
        reason.to_string().contains("the ledger is on fire"),
        "{reason}"
    );
    assert_eq!(blocking(try_lock("other")), "true");

    // A transaction given up on: its process ends, and the lock with it on both nodes.
    let given_up = tokio::time::timeout(
        Duration::from_millis(500),
        node.global_trans(ledger, atom("rust"), None, std::future::pending::<()>()),
    );
    assert!(given_up.await.is_err());
    let free = blocking(|| {
        alex.eval(&format!(
            "took = :global.set_lock({{:ledger, :other}}, [node(), :\"{n}\"], 6)
             :global.del_lock({{:ledger, :other}}, [node(), :\"{n}\"])
             took"
        ))
    });
    assert_eq!(free, "true");

    // Over rpc, as a BEAM node answers: held by the call's process, gone with it.
    let rpc = |call: &str| {
        let expr = format!(":rpc.call(:\"{n}\", :global, {call})");
        blocking(|| alex.eval(&expr))
    };
    assert_eq!(rpc(":set_lock, [{:x, :y}]"), "true");
    assert_eq!(
        rpc(&format!(":set_lock, [{{:x, :y}}, [:\"{n}\"], 0]")),
        "true"
    );
    assert_eq!(rpc(":del_lock, [{:x, :y}]"), "true");
    let bad = rpc(":set_lock, [:not_a_pair]");
    assert!(
        bad.starts_with("{:badrpc, {:EXIT, {:function_clause,"),
        "{bad}"
    );
    // `trans/2,4` over rpc: the fun's value under the lock; `:aborted` while another
    // holds it; a fun that fails fails the call and leaves the lock free.
    assert_eq!(rpc(":trans, [{:t, :x}, &:erlang.node/0]"), format!(":{n}"));
    let trans = blocking(|| {
        alex.eval(&format!(
            "n = :\"{n}\"
             true = :global.set_lock({{:t, :alex}}, [node(), n], 0)
             held = :rpc.call(n, :global, :trans, [{{:t, :x}}, &:erlang.node/0, [node(), n], 0])
             :global.del_lock({{:t, :alex}}, [node(), n])
             {{:badrpc, {{:EXIT, {{:undef, _}}}}}} =
               :rpc.call(n, :global, :trans, [{{:t, :x}}, &NoSuch.f/0, [node(), n], 0])
             {{held, :global.set_lock({{:t, :alex}}, [node(), n], 0)}}"
        ))
    });
    assert_eq!(trans, "{:aborted, true}");
}

/// `gen_server:multi_call/4` to a Rust server: the replies, and nothing in the caller's
/// mailbox after a timeout: OTP 26's `multi_call` tags its requests `[[alias | Alias] |
/// Ref]`, and a late reply goes to the alias, which drops it, as `gen:reply/2` sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_call_that_timed_out_leaves_no_late_reply() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node("rusty", epmd.port()).await;
    gen_server::start(&node, Some("echo"), Echo).await.unwrap();
    let n = node.name().to_owned();
    let answered = blocking(|| {
        alex.eval(&format!(
            ":gen_server.multi_call([:\"{n}\"], :echo, :hi, 10_000)"
        ))
    });
    assert_eq!(answered, format!("{{[{n}: :hi], []}}"));
    let late = blocking(|| {
        alex.eval(&format!(
            "result = :gen_server.multi_call([:\"{n}\"], :echo, {{:nap, 500}}, 100)
             Process.sleep(1_500)
             {{result, Process.info(self(), :messages)}}"
        ))
    });
    assert_eq!(late, format!("{{{{[], [:{n}]}}, {{:messages, []}}}}"));
}

/// Answers each call 300 ms later, from a task of its own.
struct Late;

impl GenServer for Late {
    async fn handle_call(
        &mut self,
        request: Term,
        from: &Caller,
        p: &mut Process,
    ) -> Result<Reply, Exception> {
        let (from, node) = (from.clone(), p.node().clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            from.reply_from_node(&node, request);
        });
        Ok(Reply::noreply())
    }
}

/// Calls whose futures are dropped mid-flight (a `select!` losing to a timer) leave
/// nothing behind, as OTP's calls leave nothing: no monitor on the server, no late reply
/// in the caller's mailbox (a call's alias goes with it, and an erpc's spawn reply is
/// dropped), no spec of a `start_child` in the node's hands; `process_info(:monitors)`
/// shows monitors taken by name; and a call from a thread outside the runtime is a
/// clear panic that leaves no process behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_calls_leave_nothing_behind() {
    use cnode::supervisor::{self, ChildSpec};
    let (_epmd, a, b) = two_nodes().await;
    let bn = b.name().to_owned();
    gen_server::start(&b, Some("late"), Late).await.unwrap();
    b.register_function("Elixir.Slow", "sleep", 0, |_p, _args| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(atom("slept"))
    });
    let late = b.whereis("late").expect("late runs");
    let at = bn.clone();
    let (left, monitors) = a
        .run_process(move |mut p| async move {
            let (five, zero) = (Duration::from_secs(5), Duration::ZERO);
            for _ in 0..100 {
                tokio::select! {
                    _ = p.call(("late", at.as_str()), atom("hi"), five) => {}
                    _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
                tokio::select! {
                    _ = p.erpc_call(&at, "Elixir.Slow", "sleep", vec![], five) => {}
                    _ = tokio::time::sleep(Duration::from_millis(1)) => {}
                }
                let _ = p.erpc_call(&at, "Elixir.Slow", "sleep", vec![], zero).await;
            }
            // A monitor by name, as process_info shows it.
            let watched = p.monitor(("late", at.as_str()));
            let (here, me) = (p.node().name().to_owned(), Term::Pid(p.pid()));
            let args = vec![me, atom("monitors")];
            let info = p
                .erpc_call(&here, "erlang", "process_info", args, five)
                .await;
            p.demonitor(&watched, true);
            // Every late answer has come by now, and none reached the mailbox.
            tokio::time::sleep(Duration::from_millis(800)).await;
            let left = p.receive_timeout(Duration::from_millis(100)).await;
            (left, info)
        })
        .await
        .expect("the caller runs");
    assert_eq!(left, None, "a late answer reached the caller");
    assert_eq!(
        monitors.expect("process_info").to_string(),
        format!("{{:monitors, [process: {{:late, :{bn}}}]}}")
    );
    let mut monitored = String::new();
    for _ in 0..100 {
        let args = vec![Term::Pid(late), atom("monitored_by")];
        let info = a
            .erpc_call(&bn, "erlang", "process_info", args, Duration::from_secs(5))
            .await
            .expect("process_info");
        monitored = info.to_string();
        if monitored == "{:monitored_by, []}" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(monitored, "{:monitored_by, []}");

    // start_child dropped at once: its spec is not kept.
    supervisor::start_dynamic(&b, Some("dropped_sup"))
        .await
        .unwrap();
    let marker = std::sync::Arc::new(());
    for i in 0..100 {
        let kept = marker.clone();
        let spec = ChildSpec::process(&format!("c{i}"), move |mut p| {
            let _kept = kept.clone();
            async move {
                p.receive().await;
                Ok(())
            }
        });
        let started = supervisor::start_child(&b, "dropped_sup", spec);
        let _ = futures::FutureExt::now_or_never(started);
    }
    let counts = supervisor::count_children(&b, "dropped_sup").await.unwrap();
    assert_eq!(std::sync::Arc::strong_count(&marker), 1 + counts.active);

    // From a plain thread: a clear panic, and no process left.
    let count = || {
        let args = vec![atom("process_count")];
        a.erpc_call(&bn, "erlang", "system_info", args, Duration::from_secs(5))
    };
    // Counted once what the steps above started has ended (the erpc processes of the
    // slow calls, the supervisor's children): the same count twice, 300 ms apart.
    let settled = || async {
        let mut last = count().await.unwrap();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = count().await.unwrap();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    };
    let before = settled().await;
    let from_thread = b.clone();
    let panicked = std::thread::spawn(move || {
        let call = from_thread.call("echo", atom("hi"), Duration::from_secs(1));
        futures::executor::block_on(call)
    })
    .join()
    .expect_err("outside a runtime it panics");
    let message = panicked
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panicked.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(message.contains("tokio runtime"), "{message}");
    assert_eq!(settled().await, before);
}

/// A process that sends to a node whose connection is still coming up waits once more
/// than the busy limit waits for it, as a BEAM process is suspended: what it sends is
/// not held without bound while the handshake stalls. Here the peer accepts and never
/// answers, so the sender goes on only when the setup time is up (and what waited is
/// dropped, as the BEAM drops it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_waits_for_a_connection_coming_up_beyond_the_busy_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let epmd = EpmdServer::bind(0).await.expect("in-process EPMD");
    // A "node" that accepts connections and never says a word.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = stalled.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = stalled.accept().await {
            held.push(socket);
        }
    });
    // Registered with EPMD under a name (ALIVE2_REQ), for as long as this socket lives.
    let name = unique_name("stalled");
    let mut registration = tokio::net::TcpStream::connect(("127.0.0.1", epmd.local_port()))
        .await
        .unwrap();
    let mut request = vec![120];
    request.extend_from_slice(&port.to_be_bytes());
    request.extend_from_slice(&[77, 0, 0, 6, 0, 5]);
    request.extend_from_slice(&(name.len() as u16).to_be_bytes());
    request.extend_from_slice(name.as_bytes());
    request.extend_from_slice(&[0, 0]);
    let mut framed = (request.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&request);
    registration.write_all(&framed).await.unwrap();
    let mut answer = [0u8; 2];
    registration.read_exact(&mut answer).await.unwrap();
    // ALIVE2_X_RESP (or ALIVE2_RESP), result 0.
    assert!(
        matches!(answer, [118 | 121, 0]),
        "EPMD took the name: {answer:?}"
    );

    let setup = Duration::from_secs(3);
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name("sender")), COOKIE);
    config.epmd_port = epmd.local_port();
    config.setup_time = setup;
    let node = Node::start(config).await.expect("the node starts");
    let peer = format!("{name}@localhost");
    let (done, finished) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    node.spawn(move |mut p| async move {
        // 4 MiB in all, four times the default busy limit.
        let chunk = binary(vec![0u8; 64 * 1024]);
        for _ in 0..64 {
            p.send(("sink", peer.as_str()), &chunk);
            p.yield_now().await;
        }
        let _ = done.send(Instant::now());
        Ok(())
    });
    let finished = tokio::time::timeout(Duration::from_secs(60), finished)
        .await
        .expect("the sender goes on once the setup has failed")
        .unwrap();
    assert!(
        finished - started >= setup - Duration::from_millis(500),
        "the sender went on after {:?}, before the setup failed",
        finished - started
    );
}
