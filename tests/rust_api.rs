//! The Rust API a service writer uses, against real BEAM nodes: the cluster called from
//! plain tokio code (`Node::call`, `cast`, `erpc_call`, `task_async`), a Rust GenServer
//! as iex sees it (`:sys`, `GenServer.stop`, init, continue, timeouts, terminate), and
//! Rust errors reaching BEAM callers as Elixir exceptions.

mod support;

use cnode::term::{atom, binary, int, list, tuple, Inspect, Match, Term};
use cnode::{
    CallErrorKind, Caller, Dest, Exception, GenServer, Next, Node, NodeConfig, Process, Reply,
    RpcError,
};
use std::future::IntoFuture;
use std::time::Duration;
use support::{unique_name, BeamNode, Epmd};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(20);

async fn start_node(prefix: &str, epmd_port: u16) -> Node {
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name(prefix)), COOKIE);
    config.epmd_port = epmd_port;
    Node::start(config).await.expect("the node starts")
}

/// An EPMD of the test's own, an Elixir node `alex` on it, and a Rust node named after
/// `prefix` (the EPMD dropped last).
async fn alex_and_node(prefix: &str) -> (Epmd, BeamNode, Node) {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    let node = start_node(prefix, epmd.port()).await;
    (epmd, alex, node)
}

/// A call into the (blocking) harness from a multi-threaded tokio test.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rust_code_calls_the_cluster() {
    let epmd = Epmd::start();
    let alex = blocking(|| BeamNode::start(&unique_name("alex"), COOKIE, &epmd));
    blocking(|| {
        alex.eval(
            "{:ok, _} = Chat.Echo.start(:echo)
             Process.register(self(), :shell)",
        )
    });
    let node = start_node("bridge", epmd.port()).await;
    let a = alex.node_name();

    // GenServer.call and GenServer.cast, with no process of ours in sight.
    // A timeout is a Duration (or Some), or None for :infinity, in every call.
    let echoed = node
        .call(
            ("echo", a.as_str()),
            tuple(vec![atom("hello"), int(1)]),
            WAIT,
        )
        .await;
    assert_eq!(echoed, Ok(tuple(vec![atom("hello"), int(1)])));
    let missing = node
        .call(("nobody", a.as_str()), atom("hi"), Some(WAIT))
        .await;
    let missing = missing.unwrap_err();
    assert_eq!(missing.kind(), &CallErrorKind::NoProc);
    // As GenServer.call exits, and prints as Elixir prints that exit.
    let exit = format!("{{:noproc, {{GenServer, :call, [{{:nobody, :{a}}}, :hi, 20000]}}}}");
    assert_eq!(missing.reason().to_string(), exit);
    assert!(
        missing.to_string().starts_with(&format!(
            "exited in: GenServer.call({{:nobody, :{a}}}, :hi, 20000)\n    ** (EXIT) no process: "
        )),
        "{missing}"
    );

    // A cast {pid, term} makes Chat.Echo send term to pid: the shell's.
    let shell = node
        .erpc_call(&a, "erlang", "whereis", vec![atom("shell")], WAIT)
        .await
        .expect("whereis");
    node.cast(
        ("echo", a.as_str()),
        tuple(vec![shell, atom("cast_arrived")]),
    );
    assert_eq!(
        blocking(|| alex.eval("receive do :cast_arrived -> :yes after 20_000 -> :no end")),
        ":yes"
    );

    // :erpc.call.
    let six = node
        .erpc_call(
            &a,
            "Elixir.Enum",
            "sum",
            vec![list(vec![int(1), int(2), int(3)])],
            WAIT,
        )
        .await;
    assert_eq!(six, Ok(int(6)));
    // :erpc.call(node(), ...): run here, with no connection to itself, and what peers
    // call here goes on.
    let me = node.name().to_owned();
    let here = node.erpc_call(&me, "erlang", "node", vec![], None).await;
    assert_eq!(here, Ok(atom(&me)));
    match node.erpc_call(&me, "Nope", "f", vec![], WAIT).await {
        Err(RpcError::Exception(Exception::Error { reason, .. })) => {
            assert_eq!(reason, atom("undef"))
        }
        other => panic!("an undefined function here: {other:?}"),
    }
    assert_eq!(
        blocking(|| alex.eval(&format!(":rpc.call(:\"{me}\", :erlang, :node, [])"))),
        format!(":{me}")
    );

    // Calls given up on (a timeout around the future, an HTTP client gone): each
    // call's process ends with it, and so does its monitor on the server, as when a
    // BEAM caller dies in its call.
    let r = node.name().to_owned();
    let processes = || {
        blocking(|| {
            alex.eval(&format!(
                ":erpc.call(:\"{r}\", :erlang, :processes, []) |> length()"
            ))
        })
    };
    let before = processes();
    blocking(|| alex.eval(":sys.suspend(:echo)"));
    for _ in 0..20 {
        let call = node.call(("echo", a.as_str()), atom("never answered"), None);
        assert!(tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err());
        let run = node.run_process(|mut p| async move { p.receive().await });
        assert!(tokio::time::timeout(Duration::from_millis(20), run)
            .await
            .is_err());
    }
    let watchers = blocking(|| {
        alex.eval(
            "Enum.find_value(1..200, fn _ ->
               case Process.info(Process.whereis(:echo), :monitored_by) do
                 {:monitored_by, []} -> :none
                 _ -> Process.sleep(50); nil
               end
             end)",
        )
    });
    assert_eq!(watchers, ":none");
    assert_eq!(processes(), before);
    blocking(|| alex.eval(":sys.resume(:echo)"));

    // Task.Supervisor.async + Task.await on alex's Chat.TaskSupervisor.
    let sup = ("Elixir.Chat.TaskSupervisor", a.as_str());
    // send_async to a node that cannot be reached returns once the connection failed.
    tokio::time::timeout(
        WAIT,
        node.send_async(("sink", "nobody_here@localhost"), atom("x")),
    )
    .await
    .expect("send_async gives up with the connection");

    // A task given up on (its future dropped): it ends, as a task whose caller ended.
    let sleeping = node.task_async(sup, "timer", "sleep", vec![atom("infinity")]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sleeping.into_future())
            .await
            .is_err()
    );
    // Until alex's Chat.TaskSupervisor runs no task (within 20 s).
    let no_tasks_left = || {
        blocking(|| {
            alex.eval(
                "Enum.find_value(1..200, fn _ ->
                   case Task.Supervisor.children(Chat.TaskSupervisor) do
                     [] -> :none_left
                     _ -> Process.sleep(100); nil
                   end
                 end)",
            )
        })
    };
    assert_eq!(no_tasks_left(), ":none_left");
    let upcased = node
        .task_async(sup, "Elixir.String", "upcase", vec![binary(b"woof")])
        .await;
    assert_eq!(upcased, Ok(binary(b"WOOF")));
    // A task that fails: the exit Task.await makes in a caller that traps exits,
    // {{:undef, _}, {Task, :await, _}}.
    match node.task_async(sup, "Elixir.Chat", "nope", vec![]).await {
        Err(e) => {
            let reason = e.reason();
            let e = reason.as_tuple_n(2).unwrap_or_else(|| panic!("{reason}"));
            assert!(
                e[0].as_tuple().is_some_and(|u| u[0].is_atom("undef")),
                "{reason}"
            );
            assert!(
                e[1].as_tuple()
                    .is_some_and(|t| t[0].is_atom("Elixir.Task") && t[1].is_atom("await")),
                "{reason}"
            );
            // As from an Elixir caller: Task.await's arguments are the %Task{} and the
            // timeout.
            let args = e[1].as_tuple().and_then(|t| t[2].as_list()).unwrap();
            let Term::Map(task) = &args[0] else {
                panic!("{reason}")
            };
            assert_eq!(
                task.map.get(&atom("__struct__")),
                Some(&atom("Elixir.Task"))
            );
            assert_eq!(
                task.map.get(&atom("mfa")),
                Some(&tuple(vec![atom("Elixir.Chat"), atom("nope"), int(0)]))
            );
            for key in ["owner", "pid", "ref"] {
                assert!(task.map.contains_key(&atom(key)), "{reason}");
            }
            assert_eq!(args[1], atom("infinity"));
        }
        other => panic!("a failing task: {other:?}"),
    }
    // A task that takes too long: Task.await's timeout exit, and the task is stopped.
    let slow = node.task_async(sup, "Elixir.Process", "sleep", vec![int(60_000)]);
    match slow.await_timeout(Duration::from_millis(300)).await {
        Err(e) => {
            let reason = e.reason();
            assert!(
                reason.as_tuple().is_some_and(|e| e[0].is_atom("timeout")),
                "{reason}"
            );
            // {:timeout, {Task, :await, [%Task{...}, 300]}}, as Task.await exits.
            let args = reason
                .as_tuple()
                .and_then(|e| e[1].as_tuple())
                .and_then(|t| t[2].as_list());
            let task = args.and_then(|a| match &a[0] {
                Term::Map(m) => m.map.get(&atom("__struct__")).cloned(),
                _ => None,
            });
            assert_eq!(task, Some(atom("Elixir.Task")), "{reason}");
        }
        other => panic!("a slow task: {other:?}"),
    }
    // A linked process's exit ends run_process with its reason.
    let ended = node
        .run_process(|p| async move {
            let _linked = p.spawn_link(|_| async { Err(Exception::exit(atom("boom"))) });
            std::future::pending::<()>().await
        })
        .await;
    assert_eq!(ended, Err(Exception::Exit(atom("boom"))));
    // Its future borrows no node: a task of its own runs it.
    let own = tokio::spawn(node.run_process(|p| async move { p.pid() }))
        .await
        .expect("the task ends");
    assert!(own.is_ok_and(|pid| pid.node.name() == node.name()));
    assert_eq!(no_tasks_left(), ":none_left");
    // No such supervisor: the exit of GenServer.call with Task.Supervisor's request,
    // as Task.Supervisor.async exits an Elixir caller.
    let nope = ("Elixir.Nope", a.as_str());
    match node
        .task_async(nope, "Elixir.String", "upcase", vec![])
        .await
    {
        Err(e) => {
            let reason = e.reason();
            let text = reason.to_string();
            let start = format!(
                "{{:noproc, {{GenServer, :call, [{{Nope, :{a}}}, {{:start_task, [{{:{}, #PID<",
                node.name()
            );
            assert!(text.starts_with(&start), "{text}");
            assert!(
                text.ends_with("}, :monitor], :temporary, nil}, :infinity]}}"),
                "{text}"
            );
        }
        other => panic!("no supervisor: {other:?}"),
    }

    // The task's node lost while it runs: `{:nodedown, node}`, as Task.await words
    // the monitor's `:noconnection`.
    let sleeping = node.task_async(sup, "timer", "sleep", vec![atom("infinity")]);
    let running = blocking(|| {
        alex.eval(
            // Running the sleep: its owner here has the task, and has told it to start.
            "Enum.find_value(1..400, fn _ ->
               sleeping = Task.Supervisor.children(Chat.TaskSupervisor)
                 |> Enum.any?(&(Process.info(&1, :current_function) == {:current_function, {:timer, :sleep, 1}}))
               if sleeping, do: :running, else: (Process.sleep(25); nil)
             end)",
        )
    });
    assert_eq!(running, ":running");
    assert!(node.disconnect(&a));
    match sleeping.await_timeout(Duration::from_secs(600)).await {
        Err(e) => {
            let text = e.reason().to_string();
            let down = format!("{{{{:nodedown, :{a}}}, {{Task, :await, [%Task{{");
            assert!(text.starts_with(&down), "{text}");
            // The time the caller gave, as its own `Task.await(task, 600_000)` exits.
            assert!(text.ends_with(", 600000]}}"), "{text}");
            // Said as Elixir says it, and what went wrong at hand.
            assert_eq!(e.kind(), CallErrorKind::NodeDown(a.clone()));
            let said = e.to_string();
            assert!(said.starts_with("exited in: Task.await(%Task{"), "{said}");
            assert!(
                said.ends_with(&format!("** (EXIT) no connection to {a}")),
                "{said}"
            );
        }
        other => panic!("the task's node lost: {other:?}"),
    }
}

/// Runs `:erpc.call(at, m, f, args)` in a process whose body gives its error to `?`:
/// the call's outcome and the process's exit reason.
async fn ended_at(
    node: &Node,
    at: &str,
    m: &'static str,
    f: &'static str,
    args: Vec<Term>,
) -> (Result<Term, RpcError>, Option<Term>) {
    let a = at.to_owned();
    let (done, result) = tokio::sync::oneshot::channel();
    let reason = node
        .run_process(move |mut p| async move {
            let caller = p.node().spawn(move |mut c| async move {
                c.receive().await;
                let outcome = c.erpc_call(&a, m, f, args, WAIT).await;
                let _ = done.send(outcome.clone());
                outcome?;
                Ok(())
            });
            p.monitor(caller);
            p.send(caller, atom("go"));
            p.receive_timeout(WAIT).await
        })
        .await
        .ok()
        .flatten()
        .and_then(|down| down.as_tuple().map(|e| e[4].clone()));
    let outcome = result.await.expect("the call ends");
    (outcome, reason)
}

/// An erpc call's failure, through `?` in a process, ends it as `:erpc.call` ends a
/// BEAM process (erpc.erl's `result/4`): an exit there is `{:exception, reason}`, an
/// error `{:exception, reason, stack}`, a throw the throw, the process there killed
/// `{:signal, :killed}`; and each prints as iex prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erpc_failure_ends_a_process_as_it_ends_a_beam_one() {
    let (_epmd, alex, node) = alex_and_node("erpc").await;
    let a = alex.node_name();
    let ended = |m: &'static str, f: &'static str, args: Vec<Term>| {
        let (node, a) = (node.clone(), a.clone());
        async move { ended_at(&node, &a, m, f, args).await }
    };

    let (outcome, reason) = ended("erlang", "exit", vec![atom("boom")]).await;
    assert_eq!(
        outcome,
        Err(RpcError::Exception(Exception::Exit(atom("boom"))))
    );
    assert_eq!(outcome.unwrap_err().to_string(), "** (exit) :boom");
    assert_eq!(reason, Some(tuple(vec![atom("exception"), atom("boom")])));

    let (outcome, reason) = ended("erlang", "throw", vec![atom("ball")]).await;
    assert_eq!(
        outcome,
        Err(RpcError::Exception(Exception::Throw(atom("ball"))))
    );
    let reason = reason.expect("DOWN");
    assert_eq!(
        reason.as_tuple().map(|e| e[0].to_string()),
        Some("{:nocatch, :ball}".into())
    );

    let (outcome, reason) = ended("Elixir.String", "to_integer", vec![binary("x")]).await;
    let e = outcome.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("** (ArgumentError) argument error\n    :erlang.binary_to_integer(\"x\")"),
        "{e}"
    );
    // {{:exception, :badarg, [{:erlang, :binary_to_integer, ["x"], _} | _]}, _}
    let reason = reason.expect("DOWN");
    let raised = reason
        .as_tuple()
        .and_then(|e| e[0].as_tuple())
        .expect("{{...}, stack}");
    assert_eq!(
        (raised[0].clone(), raised[1].clone()),
        (atom("exception"), atom("badarg"))
    );
    assert!(
        raised[2]
            .to_string()
            .starts_with("[{:erlang, :binary_to_integer, [\"x\"]"),
        "{reason}"
    );

    // Killed there while it sleeps.
    let sleeping = tokio::spawn(ended("timer", "sleep", vec![atom("infinity")]));
    let killed = blocking(|| {
        alex.eval(
            "Enum.find_value(1..400, fn _ ->
               case Enum.filter(Process.list(), &(Process.info(&1, :current_function) == {:current_function, {:timer, :sleep, 1}})) do
                 [pid] -> Process.exit(pid, :kill) && :killed
                 _ -> Process.sleep(25) && nil
               end
             end)",
        )
    });
    assert_eq!(killed, ":killed");
    let (outcome, reason) = sleeping.await.expect("the call ends");
    assert_eq!(outcome, Err(RpcError::Signal(atom("killed"))));
    assert_eq!(reason, Some(tuple(vec![atom("signal"), atom("killed")])));

    // A node not running: `{:erpc, :noconnection}`, and why, from `try_connect`.
    let nobody = format!("{}@localhost", unique_name("nobody"));
    let (outcome, reason) = ended_at(&node, &nobody, "erlang", "node", vec![]).await;
    assert_eq!(outcome, Err(RpcError::NoConnection(nobody.clone())));
    // With the frame of the `?`, as `?` gives every error.
    let reason = reason.map(|r| r.to_string()).unwrap_or_default();
    assert!(
        reason.starts_with(
            "{{:erpc, :noconnection}, [{:rust, :anonymous, 0, [file: ~c\"tests/rust_api.rs\""
        ),
        "{reason}"
    );
    match node.try_connect(&nobody).await {
        Err(cnode::HandshakeError::NotRegistered { name, host }) => {
            assert_eq!(format!("{name}@{host}"), nobody)
        }
        other => panic!("{other:?}"),
    }
}

/// `Counter` as a user writes it: its count is its state.
struct Counter {
    count: i64,
    /// Who hears of `terminate` (a process on the BEAM node).
    watcher: String,
}

impl GenServer for Counter {
    async fn init(&mut self, _p: &mut Process) -> Result<Next, Exception> {
        // {:ok, state, {:continue, :load}}
        Ok(Next::Continue(atom("load")))
    }

    async fn handle_continue(&mut self, arg: Term, _p: &mut Process) -> Result<Next, Exception> {
        if arg.is_atom("load") {
            self.count = 10;
        }
        Ok(Next::Wait)
    }

    async fn handle_call(
        &mut self,
        request: Term,
        from: &Caller,
        p: &mut Process,
    ) -> Result<Reply, Exception> {
        match request.as_atom() {
            Some("get") => Ok(Reply::reply(int(self.count))),
            // {:noreply, state}, and GenServer.reply/2 from a task of its own later.
            Some("later") => {
                let (node, from) = (p.node().clone(), from.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    from.reply_from_node(&node, atom("later"));
                });
                Ok(Reply::NoReply(Next::Wait))
            }
            // {:reply, :ok, state, 200}: handle_info(:timeout) when nothing comes.
            Some("arm") => Ok(Reply::Reply(
                atom("ok"),
                Next::Timeout(Duration::from_millis(200)),
            )),
            // PANIC_LINE
            Some("panic") => panic!("the counter panicked"),
            Some("quit") => Err(Exception::exit(atom("shutdown"))),
            // NOMATCH_LINE
            Some("nomatch") => Err(Exception::function_clause()),
            Some("crash") => {
                // CRASH_LINE
                let n: i64 = "not a number".parse()?;
                Ok(Reply::reply(int(n)))
            }
            // BOGUS_LINE
            _ => Err(Exception::argument_error(format!(
                "unknown call {}",
                request.inspect()
            ))),
        }
    }

    async fn handle_cast(&mut self, request: Term, _p: &mut Process) -> Result<Next, Exception> {
        if request.is_atom("inc") {
            self.count += 1;
        }
        // Its terminate is to fail.
        if request.is_atom("doom") {
            self.count = -1;
        }
        Ok(Next::Wait)
    }

    async fn handle_info(&mut self, message: Term, _p: &mut Process) -> Result<Next, Exception> {
        if message.is_atom("timeout") {
            self.count += 100;
        }
        Ok(Next::Wait)
    }

    async fn terminate(&mut self, reason: &Term, p: &mut Process) {
        if self.count == -1 {
            // TERMINATE_LINE
            panic!("terminate panicked");
        }
        p.send(
            ("watcher", self.watcher.as_str()),
            tuple(vec![atom("terminated"), reason.clone(), int(self.count)]),
        );
    }

    fn state(&self) -> Term {
        int(self.count)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_genserver_is_a_genserver_to_iex() {
    logs(); // captured from here on
    let (_epmd, alex, node) = alex_and_node("counter").await;
    let n = node.name().to_owned();
    let a = alex.node_name();
    blocking(|| alex.eval("Process.register(self(), :watcher)"));
    let counter = Counter {
        count: 0,
        watcher: a.clone(),
    };
    cnode::gen_server::start(&node, Some("counter"), counter)
        .await
        .expect("the counter starts");
    // The name is taken: a StartError, which `?` takes into anyhow as any error.
    let again = Counter {
        count: 0,
        watcher: a.clone(),
    };
    let taken: anyhow::Result<_> =
        async { Ok(cnode::gen_server::start(&node, Some("counter"), again).await?) }.await;
    let taken = taken.expect_err("the name is taken");
    assert!(taken.to_string().starts_with("did not start"), "{taken}");
    let taken = taken.downcast::<cnode::StartError>().unwrap();
    let reason = taken.reason();
    assert!(
        reason
            .as_tuple()
            .is_some_and(|e| e[0].is_atom("already_started")),
        "{reason}"
    );
    assert_eq!(taken.already_started(), node.whereis("counter"));
    let server = format!("{{:counter, :{n}}}");
    let eval = |expr: &str| blocking(|| alex.eval(&expr.replace("SERVER", &server)));

    // init continued to handle_continue before the first call.
    assert_eq!(eval("GenServer.call(SERVER, :get)"), "10");
    assert_eq!(eval("GenServer.call(SERVER, :later)"), ":later");
    eval("GenServer.cast(SERVER, :inc)");
    assert_eq!(eval(":sys.get_state(SERVER)"), "11");
    assert_eq!(
        eval(
            "{:status, pid, {:module, :gen_server}, [_, :running, _, _, status]} = :sys.get_status(SERVER)
             [header: 'Status for generic server counter', data: _, data: [{'State', state}]] = status
             {is_pid(pid), state}"
        ),
        "{true, 11}"
    );

    // Suspended, it answers no call (the call times out) until resumed.
    assert_eq!(eval(":sys.suspend(SERVER)"), ":ok");
    assert_eq!(
        eval(
            "try do GenServer.call(SERVER, :get, 300) catch :exit, {:timeout, _} -> :timed_out end"
        ),
        ":timed_out"
    );
    assert_eq!(eval(":sys.resume(SERVER)"), ":ok");
    assert_eq!(eval("GenServer.call(SERVER, :get)"), "11");

    // A timeout after a reply: handle_info(:timeout).
    assert_eq!(eval("GenServer.call(SERVER, :arm)"), ":ok");
    assert_eq!(
        // Polled with :sys.get_state a second apart: a sys request restarts the
        // timeout, as gen_server's loop does, and a second is far more than 200 ms.
        eval("Enum.find_value(1..20, fn _ -> Process.sleep(1000); (c = :sys.get_state(SERVER)) > 11 && c end)"),
        "111"
    );

    // An error in a callback raises in the caller as an Elixir exception would, with
    // the frame of the Rust code that raised, named after the server's type and the
    // callback as a BEAM's stack names the module's function: Elixir prints it as it
    // prints a BEAM's frames.
    let raised = |request: &str| {
        eval(&format!(
            "try do GenServer.call(SERVER, {request}) catch
               :exit, {{{{reason, stack}}, {{GenServer, :call, _}}}} ->
                 {{reason, Exception.format_stacktrace(stack)}}
             end"
        ))
    };
    let start_counter = || {
        let counter = Counter {
            count: 0,
            watcher: a.clone(),
        };
        cnode::gen_server::start(&node, Some("counter"), counter)
    };
    // An `Err`; `?` on a Rust error (a RuntimeError with the frame of the `?`); a panic
    // (an error as a raise is): each time terminate/2 runs first, with the reason.
    for (request, reason, marker, count) in [
        (
            ":bogus",
            "%ArgumentError{message: \"unknown call :bogus\"}",
            "BOGUS_LINE",
            111,
        ),
        (
            ":crash",
            "%RuntimeError{message: \"invalid digit found in string\"}",
            "CRASH_LINE",
            10,
        ),
        (
            ":panic",
            "{:rust_panic, \"the counter panicked\"}",
            "PANIC_LINE",
            10,
        ),
        // An Elixir server's handle_call with no clause for the request.
        (":nomatch", ":function_clause", "NOMATCH_LINE", 10),
    ] {
        if count == 10 {
            start_counter().await.expect("the counter starts again");
        }
        let frame = format!(
            "    tests/rust_api.rs:{}: :\\\"rust_api::Counter\\\".handle_call/3\\n",
            line_of(marker)
        );
        assert_eq!(raised(request), format!("{{{reason}, \"{frame}\"}}"));
        assert_eq!(
            eval(&format!(
                "receive do {{:terminated, {{{reason}, _}}, {count}}} -> :terminate_ran after 20_000 -> :no end"
            )),
            ":terminate_ran"
        );
    }

    // The server's node reports each as gen_server does, the exception as Elixir prints
    // it; an exit `shutdown` from a callback ends the server as quietly as on the BEAM.
    let reports = logs();
    assert!(
        reports.contains("GenServer :counter terminating\n** (ArgumentError) unknown call :bogus\n    tests/rust_api.rs:"),
        "{reports}"
    );
    assert!(
        reports.contains("GenServer :counter terminating\n** (stop) {:rust_panic, \"the counter panicked\"}\n    tests/rust_api.rs:"),
        "{reports}"
    );
    // Once, as the BEAM reports a crash: the panic itself is not a second error line.
    assert_eq!(
        reports.matches("the counter panicked").count(),
        1,
        "{reports}"
    );
    start_counter().await.expect("the counter starts again");
    assert_eq!(
        eval("try do GenServer.call(SERVER, :quit) catch :exit, {reason, {GenServer, :call, _}} -> reason end"),
        ":shutdown"
    );
    assert_eq!(
        eval("receive do {:terminated, :shutdown, 10} -> :terminate_ran after 20_000 -> :no end"),
        ":terminate_ran"
    );
    let after = logs_after(&reports);
    assert!(!after.contains("GenServer :counter terminating"), "{after}");

    // Started again, it is stopped as GenServer.stop stops an Elixir server, and the
    // stop with a reason other than normal or shutdown is reported as gen_server does.
    start_counter().await.expect("the counter starts again");
    let before = logs();
    assert_eq!(eval("GenServer.stop(SERVER, :bye)"), ":ok");
    assert_eq!(
        eval("receive do {:terminated, :bye, 10} -> :terminate_ran after 20_000 -> :no end"),
        ":terminate_ran"
    );
    let after = logs_after(&before);
    assert!(
        after.contains("GenServer :counter terminating\n** (stop) :bye"),
        "{after}"
    );

    // A terminate that fails ends the server with its own exception, named after it,
    // and reported so, as a raise in an Elixir terminate/2: GenServer.stop exits with it.
    start_counter().await.expect("the counter starts again");
    eval("GenServer.cast(SERVER, :doom)");
    let before = logs();
    assert_eq!(
        eval(
            "try do GenServer.stop(SERVER, :normal) catch
               :exit, {{{:rust_panic, msg}, [{_, f, a, _} | _]}, {GenServer, :stop, _}} -> {msg, f, a}
             end"
        ),
        "{\"terminate panicked\", :terminate, 2}"
    );
    let report = format!(
        "GenServer :counter terminating\n** (stop) {{:rust_panic, \"terminate panicked\"}}\n    tests/rust_api.rs:{}: :\"rust_api::Counter\".terminate/2",
        line_of("TERMINATE_LINE")
    );
    assert!(logged(&before, &report).await, "{}", logs_after(&before));
    assert_eq!(
        eval(
            ":rpc.call(:NODE, :erlang, :whereis, [:counter])"
                .replace("NODE", &n)
                .as_str()
        ),
        ":undefined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_errors_reach_the_beam_as_elixir_exceptions() {
    let (_epmd, alex, node) = alex_and_node("errors").await;
    let n = node.name().to_owned();
    // Rusty.parse(text): any Rust error through `?`.
    node.register_function("Elixir.Rusty", "parse", 1, |_p, args| async move {
        let text = cnode::term::chardata_to_string(&args[0])
            .ok_or_else(|| Exception::argument_error("expected a string"))?;
        // PARSE_LINE
        let n: i64 = text.trim().parse()?;
        Ok(int(n))
    });
    // Rusty.ask(node): a call to a name nobody holds there, and one to itself; a failed
    // call through `?` exits as a failed GenServer.call exits an Elixir process.
    node.register_function("Elixir.Rusty", "ask", 1, |mut p, args| async move {
        let there = args[0].as_atom().unwrap_or("nonode@nohost").to_owned();
        let five_s = Some(Duration::from_secs(5));
        let silence = p.call(("nobody", there.as_str()), atom("hi"), five_s).await;
        assert_eq!(
            silence.as_ref().map_err(|e| e.kind()),
            Err(&CallErrorKind::NoProc)
        );
        let request = silence.unwrap_err().into_request();
        assert_eq!(request, atom("hi"));
        p.register("asker").unwrap();
        let me = p.node().name().to_owned();
        for to in [
            Dest::from(p.pid()),
            Dest::from("asker"),
            Dest::from(("asker", &*me)),
        ] {
            match p.call(to, &request, five_s).await {
                Err(e) if e.kind() == CallErrorKind::CallingSelf => {}
                other => panic!("a call to itself: {other:?}"),
            }
        }
        Ok(p.call(("nobody", there.as_str()), request, five_s).await?)
    });
    node.start_task_supervisor("Elixir.Rusty.TaskSupervisor")
        .expect("the task supervisor starts");
    let eval = |expr: &str| blocking(|| alex.eval(&expr.replace("NODE", &n)));

    // The exit is the one an Elixir process gets from the same call.
    assert_eq!(
        eval(
            "task = Task.Supervisor.async_nolink({Rusty.TaskSupervisor, :NODE}, Rusty, :ask, [node()])
             rust = try do Task.await(task, 20_000) catch :exit, {reason, {Task, :await, _}} -> reason end
             elixir = try do GenServer.call({:nobody, node()}, :hi, 5000) catch :exit, reason -> reason end
             {rust == elixir, rust}"
        ),
        format!(
            "{{true, {{:noproc, {{GenServer, :call, [{{:nobody, :{}}}, :hi, 5000]}}}}}}",
            alex.node_name()
        )
    );

    assert_eq!(eval(":erpc.call(:NODE, Rusty, :parse, [\"42\"])"), "42");
    assert_eq!(
        // :erpc.call raises {:exception, reason, stack} for an error on the other node,
        // a BEAM node or this one.
        eval("try do :erpc.call(:NODE, Rusty, :parse, [\"forty-two\"]) catch :error, {:exception, %RuntimeError{message: m}, _} -> m end"),
        "\"invalid digit found in string\""
    );
    // Its stack has the frame of the `?`, named as the function was registered.
    assert_eq!(
        eval("try do :erpc.call(:NODE, Rusty, :parse, [\"forty-two\"]) catch :error, {:exception, _, stack} -> Exception.format_stacktrace(stack) end"),
        format!("\"    tests/rust_api.rs:{}: Rusty.parse/1\\n\"", line_of("PARSE_LINE"))
    );
    assert_eq!(
        eval("try do :erpc.call(:NODE, Rusty, :parse, [:forty_two]) catch :error, {:exception, %ArgumentError{message: m}, _} -> m end"),
        "\"expected a string\""
    );
    // Task.await exits with the exception, as for a task raising on a BEAM node.
    assert_eq!(
        eval(
            "task = Task.Supervisor.async_nolink({Rusty.TaskSupervisor, :NODE}, Rusty, :parse, [\"x\"])
             try do Task.await(task, 20_000) catch :exit, {{%RuntimeError{message: m}, _}, _} -> m end"
        ),
        "\"invalid digit found in string\""
    );
}

/// A GenServer whose state is a number: `:stop` stops it with `:bye`, a cast of
/// `{:crash, _}` fails.
struct Brittle(i64);

impl GenServer for Brittle {
    async fn handle_call(
        &mut self,
        request: Term,
        _from: &Caller,
        _p: &mut Process,
    ) -> Result<Reply, Exception> {
        Ok(Reply::Stop(atom("bye"), request))
    }

    async fn handle_cast(&mut self, _request: Term, _p: &mut Process) -> Result<Next, Exception> {
        self.0 += 1;
        Err(Exception::argument_error("asked to crash"))
    }

    fn state(&self) -> Term {
        int(self.0)
    }
}

/// What a BEAM node logs for a process whose group leader is here (an erpc call made
/// from Rust, a process spawned there) is logged here, through `tracing`, as a BEAM
/// caller prints it on its console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_beam_node_logs_for_a_rust_caller_is_logged_here() {
    let (_epmd, alex, node) = alex_and_node("logged").await;
    let a = alex.node_name();
    let before = logs();
    let format = cnode::term::charlist("warned for ~p");
    let args = vec![format, list(vec![atom("rusty")])];
    let logged = node.erpc_call(&a, "logger", "warning", args, WAIT).await;
    assert_eq!(logged.expect("logger:warning/2 answers"), atom("ok"));
    let report = cnode::term::map(vec![(atom("what"), atom("a_report"))]);
    node.erpc_call(&a, "logger", "error", vec![report], WAIT)
        .await
        .expect("logger:error/1 answers");
    // A task that crashes there: Elixir's report of it comes here as well.
    let task = "Task.start(fn -> raise ArgumentError, \"crashed for rusty\" end)";
    node.erpc_call(
        &a,
        "Elixir.Code",
        "eval_string",
        vec![binary(task.as_bytes())],
        WAIT,
    )
    .await
    .expect("the task starts");

    let deadline = std::time::Instant::now() + WAIT;
    let wanted = [
        "WARN cnode::logger_proxy: warned for rusty",
        "a_report",
        "crashed for rusty",
    ];
    let mut after = logs_after(&before);
    while !wanted.iter().all(|w| after.contains(w)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = logs_after(&before);
    }
    for w in wanted {
        assert!(after.contains(w), "{w:?} is not in:\n{after}");
    }
    assert!(
        after.contains(&format!("pid=#PID<{a}.")),
        "the line names the process:\n{after}"
    );
    // The crash's SASL report, which a BEAM node's console leaves out, is not among
    // them (this binary's subscriber logs from info up); it follows the task's report
    // within a few hundred ms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = logs_after(&before);
    assert!(!after.contains("proc_lib, :crash"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genserver_started_for_a_beam_caller_reports_its_end_on_the_callers_node() {
    let (_epmd, alex, node) = alex_and_node("brittle").await;
    let n = node.name().to_owned();
    // Rusty.start_brittle(): a GenServer started by the calling process (`Process::start`,
    // unlinked: an erpc process exits with its result as the reason), so that its
    // group leader is the caller's, as `GenServer.start` run by `:erpc` on a BEAM node.
    node.register_function("Elixir.Rusty", "start_brittle", 0, |p, _args| async move {
        Ok(Term::Pid(p.start(None, Brittle(1)).await?))
    });
    let eval = |expr: &str| blocking(|| alex.eval(&expr.replace("NODE", &n)));

    // A failed cast: the report shows on alex's terminal, as gen_server's from a BEAM
    // node with alex's group leader does (the last message, the state as it was).
    eval(
        "pid = :erpc.call(:NODE, Rusty, :start_brittle, [])
         ref = Process.monitor(pid)
         GenServer.cast(pid, {:crash, 1})
         receive do {:DOWN, ^ref, :process, _, _} -> :ok after 10_000 -> :no_down end",
    );
    let report = "** (ArgumentError) asked to crash";
    // The output is read as the node writes it: wait for the report's last line.
    assert!(
        blocking(|| alex.wait_for_output("State: 2", WAIT)),
        "alex shows the report:\n{}",
        alex.output()
    );
    let output = alex.output();
    let at = output.find(report).unwrap();
    let (before, after) = output.split_at(at);
    assert!(before.trim_end().ends_with("terminating"), "{output}");
    assert!(before.contains("GenServer #PID<"), "{output}");
    assert!(
        after.contains("Last message: {:\"$gen_cast\", {:crash, 1}}\nState: 2"),
        "{output}"
    );

    // A stop from a call: the caller named, and where it is.
    eval(
        "pid = :erpc.call(:NODE, Rusty, :start_brittle, [])
         GenServer.call(pid, :stop)",
    );
    let stop = "** (stop) :bye";
    let client = format!("is remote on node :{}", alex.node_name());
    assert!(
        blocking(|| alex.wait_for_output(&client, WAIT)),
        "alex shows the report:\n{}",
        alex.output()
    );
    let output = alex.output();
    let after = &output[output.find(stop).unwrap()..];
    assert!(after.contains("Last message (from #PID<0."), "{output}");
    assert!(
        after.contains("): :stop\nState: 1\nClient #PID<0."),
        "{output}"
    );
    assert!(after.contains(&client), "{output}");
    // Once each.
    assert_eq!(alex.count_in_output(report), 1, "{output}");
    assert_eq!(alex.count_in_output(stop), 1, "{output}");

    // A process spawned by the calling process (`spawn`) prints on the caller's
    // terminal too, after the call has returned.
    node.register_function("Elixir.Rusty", "spawn_printer", 0, |p, _args| async move {
        let pid = p.spawn(|mut child| async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            child.puts("printed by a spawned process").await
        });
        Ok(Term::Pid(pid))
    });
    eval(":erpc.call(:NODE, Rusty, :spawn_printer, [])");
    assert!(
        blocking(|| alex.wait_for_output("printed by a spawned process", WAIT)),
        "alex shows it:\n{}",
        alex.output()
    );
}

/// Chat.Echo in Rust: answers a call with the request, sends `term` to `pid` for a cast
/// `{pid, term}`, and its state is `nil`.
struct Echo;

impl GenServer for Echo {
    async fn handle_call(
        &mut self,
        request: Term,
        _from: &Caller,
        _p: &mut Process,
    ) -> Result<Reply, Exception> {
        Ok(Reply::reply(request))
    }

    async fn handle_cast(&mut self, request: Term, p: &mut Process) -> Result<Next, Exception> {
        if let Some([Term::Pid(to), term]) = request.as_tuple_n(2) {
            p.send(*to, term);
        }
        Ok(Next::Wait)
    }

    fn state(&self) -> Term {
        atom("nil")
    }
}

/// A server whose calls hold their thread for a while, as blocking code should:
/// through `block_in_place`, so the node's other work goes on meanwhile.
struct Sleeper;

/// The sleeper's callback has returned.
static SLEEPER_WOKE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl GenServer for Sleeper {
    async fn handle_call(
        &mut self,
        request: Term,
        _from: &Caller,
        _p: &mut Process,
    ) -> Result<Reply, Exception> {
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_secs(12)));
        SLEEPER_WOKE.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(Reply::reply(request))
    }
}

/// Monitors on a Rust process fire in the order they were made, the same each time (a
/// BEAM node's order is also the same each time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_fire_in_the_order_they_were_made() {
    let (_epmd, alex, node) = alex_and_node("watched").await;
    node.register_function("Elixir.Rusty", "idle", 0, |p, _args| async move {
        idle(p).await?;
        Ok(atom("ok"))
    });
    let orders = blocking(|| {
        alex.eval(&format!(
            "for _ <- 1..5 do
               pid = Node.spawn(:{}, Rusty, :idle, [])
               refs = Map.new(1..5, fn i -> {{Process.monitor(pid), i}} end)
               Process.exit(pid, :kill)
               for _ <- 1..5, do: (receive do {{:DOWN, r, _, _, _}} -> refs[r] after 10_000 -> :none end)
             end |> Enum.uniq()",
            node.name()
        ))
    });
    assert_eq!(orders, "[[1, 2, 3, 4, 5]]");

    // Those a process here holds on another node's process, by pid and by name, when
    // the connection is lost: in the order they were made too, as on a BEAM node.
    let a = alex.node_name();
    blocking(|| alex.eval("Process.register(spawn(fn -> Process.sleep(:infinity) end), :watched)"));
    for _ in 0..3 {
        let watched = node
            .erpc_call(&a, "erlang", "whereis", vec![atom("watched")], WAIT)
            .await
            .expect("whereis");
        let (a2, node2) = (a.clone(), node.clone());
        let order = node
            .run_process(move |mut p| async move {
                let pid = *watched.as_pid().expect("a pid");
                let by_name = ("watched", a2.as_str());
                let refs: Vec<Term> = (0..6)
                    .map(|i| match i % 2 {
                        0 => p.monitor(pid),
                        _ => p.monitor(by_name),
                    })
                    .map(|r| Term::Reference(Box::new(r)))
                    .collect();
                node2.disconnect(&a2);
                let mut order = Vec::new();
                for _ in 0..6 {
                    let down = p
                        .receive_match(Some(WAIT), |m| {
                            m.as_tuple().is_some_and(|e| e[0].is_atom("DOWN"))
                        })
                        .await;
                    let r = down.and_then(|d| d.as_tuple().map(|e| e[1].clone()));
                    order.push(refs.iter().position(|x| Some(x) == r.as_ref()));
                }
                order
            })
            .await
            .expect("the watcher");
        assert_eq!(order, (0..6).map(Some).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_its_callback_blocks_sends_nothing() {
    let (_epmd, alex, node) = alex_and_node("sleeper").await;
    let n = node.name().to_owned();
    cnode::gen_server::start(&node, Some("sleeper"), Sleeper)
        .await
        .expect("the sleeper starts");
    // Killed while its callback holds the thread, the server is gone for everyone at
    // once (its monitor fires, the caller exits `killed`, as with a BEAM server killed
    // in `:timer.sleep/1`), before the callback returns, and its reply never leaves.
    // Other processes answer meanwhile.
    let killed = blocking(|| {
        alex.eval(&format!(
            "pid = :rpc.call(:{n}, :erlang, :whereis, [:sleeper])
             ref = Process.monitor(pid)
             task = Task.async(fn ->
               try do GenServer.call({{:sleeper, :{n}}}, :late, 10_000) catch :exit, r -> r end
             end)
             Process.sleep(500)
             node = :rpc.call(:{n}, :erlang, :node, [])
             Process.exit(pid, :kill)
             down = receive do {{:DOWN, ^ref, :process, _, r}} -> r after 10_000 -> :no_down end
             {{Task.await(task, 15_000), down, node}}"
        ))
    });
    assert_eq!(
        killed,
        format!("{{{{:killed, {{GenServer, :call, [{{:sleeper, :{n}}}, :late, 10000]}}}}, :killed, :{n}}}")
    );
    assert!(
        !SLEEPER_WOKE.load(std::sync::atomic::Ordering::SeqCst),
        "the kill was seen only once the callback returned"
    );
    assert_eq!(node.whereis("sleeper"), None);
}

/// Every message to a node that cannot be reached tries to connect again, as on the
/// BEAM (each call fails `{:nodedown, node}`); the log warns of it once, not once a
/// try, until it has been connected again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_be_reached_is_warned_of_once() {
    logs(); // captured from here on
    let epmd = Epmd::start();
    let node = start_node("lonely", epmd.port()).await;
    let earlier = logs();
    let nobody = format!("{}@localhost", unique_name("nobody"));
    for _ in 0..3 {
        let failed = node
            .call(("echo", nobody.as_str()), atom("hi"), Some(WAIT))
            .await
            .expect_err("nobody is there");
        assert_eq!(failed.kind(), &CallErrorKind::NodeDown(nobody.clone()));
    }
    let warning = format!("cannot connect to {nobody}:");
    let after = logs_after(&earlier);
    let warned = after
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains(&warning))
        .count();
    assert_eq!(warned, 1, "{after}");
}

/// A job worker: answers `:id`, stops with `{:stop, :bad_job}` on `:fail` (a transient
/// child, started again), and refuses to start for a job of 0.
struct Job(i64);

impl GenServer for Job {
    async fn init(&mut self, _p: &mut Process) -> Result<Next, Exception> {
        match self.0 {
            0 => Ok(Next::Stop(atom("no_job"))),
            _ => Ok(Next::Wait),
        }
    }

    async fn handle_call(
        &mut self,
        request: Term,
        _from: &Caller,
        _p: &mut Process,
    ) -> Result<Reply, Exception> {
        match request.as_atom() {
            Some("fail") => Ok(Reply::Stop(atom("bad_job"), atom("ok"))),
            _ => Ok(Reply::reply(int(self.0))),
        }
    }

    fn module() -> &'static str {
        "Elixir.Jobs.Worker"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_supervisor_of_rust_children_is_one_to_iex() {
    use cnode::supervisor::{self, ChildSpec, Restart, Strategy};
    let (_epmd, alex, node) = alex_and_node("dynsup").await;
    let n = node.name().to_owned();
    let sup = supervisor::start_dynamic(&node, Some("Elixir.Jobs.WorkerSup"))
        .await
        .expect("the dynamic supervisor starts");
    let job = |id| ChildSpec::gen_server("job", None, move || Job(id)).restart(Restart::Transient);
    let worker = supervisor::start_child(&node, "Elixir.Jobs.WorkerSup", job(7))
        .await
        .expect("a job starts");
    let eval = |expr: &str| {
        blocking(|| alex.eval(&expr.replace("SUP", &format!("{{Jobs.WorkerSup, :{n}}}"))))
    };
    assert_eq!(
        // Sorted: OTP 26+ prints a small map's keys in another order.
        eval("DynamicSupervisor.count_children(SUP) |> Enum.sort()"),
        "[active: 1, specs: 1, supervisors: 0, workers: 1]"
    );
    assert_eq!(
        eval(
            "[{:undefined, pid, :worker, [Jobs.Worker]}] = DynamicSupervisor.which_children(SUP)
              GenServer.call(pid, :id)"
        ),
        "7"
    );
    // A transient child that stops abnormally is started again; `init` failing is the
    // start's error, as `DynamicSupervisor.start_child/2` answers it.
    assert_eq!(
        eval(
            "[{_, pid, _, _}] = DynamicSupervisor.which_children(SUP)
              ref = Process.monitor(pid)
              :ok = GenServer.call(pid, :fail)
              receive do {:DOWN, ^ref, _, _, reason} -> reason after 20_000 -> :no_down end"
        ),
        ":bad_job"
    );
    let again = eval(
        "Enum.find_value(1..200, fn _ ->
          case DynamicSupervisor.which_children(SUP) do
            [{_, pid, _, _}] -> GenServer.call(pid, :id)
            _ -> Process.sleep(50); nil
          end
        end)",
    );
    assert_eq!(again, "7");
    let refused = supervisor::start_child(&node, "Elixir.Jobs.WorkerSup", job(0))
        .await
        .expect_err("init stops");
    assert_eq!(refused.reason(), atom("no_job"));
    let nobody = supervisor::start_child(&node, "nobody", job(1))
        .await
        .expect_err("no such supervisor");
    assert_eq!(nobody.reason(), atom("noproc"));
    // terminate_child from iex, and the supervisor's state as Elixir's.
    assert_eq!(
        eval("[{_, pid, _, _}] = DynamicSupervisor.which_children(SUP)
              {DynamicSupervisor.terminate_child(SUP, pid), DynamicSupervisor.terminate_child(SUP, pid),
               DynamicSupervisor.count_children(SUP).active, :sys.get_state(SUP).strategy}"),
        "{:ok, {:error, :not_found}, 0, :one_for_one}"
    );
    assert!(!node.is_alive(&worker));
    // From Rust: which_children, terminate_child; a process child named by its module.
    let spec = ChildSpec::process("plain", |mut p| async move {
        p.receive().await;
        Ok(())
    })
    .module("Elixir.Jobs.Plain");
    let plain = supervisor::start_child(&node, "Elixir.Jobs.WorkerSup", spec)
        .await
        .expect("a process child starts");
    assert_eq!(
        supervisor::which_children(&node, "Elixir.Jobs.WorkerSup").await,
        Ok(vec![tuple(vec![
            atom("undefined"),
            Term::Pid(plain),
            atom("worker"),
            list(vec![atom("Elixir.Jobs.Plain")]),
        ])])
    );
    assert_eq!(
        supervisor::terminate_child(&node, "Elixir.Jobs.WorkerSup", plain).await,
        Ok(true)
    );
    assert_eq!(
        supervisor::terminate_child(&node, "Elixir.Jobs.WorkerSup", plain).await,
        Ok(false)
    );
    assert!(!node.is_alive(&plain));
    assert_eq!(
        supervisor::which_children(&node, "Elixir.Jobs.WorkerSup").await,
        Ok(vec![])
    );
    // Listed in pid order, as DynamicSupervisor's map of children lists them.
    let mut started = Vec::new();
    for _ in 0..6 {
        let spec = ChildSpec::process("plain", |mut p| async move {
            p.receive().await;
            Ok(())
        });
        started.push(
            supervisor::start_child(&node, "Elixir.Jobs.WorkerSup", spec)
                .await
                .expect("a child starts"),
        );
    }
    let listed: Vec<Term> = supervisor::which_children(&node, "Elixir.Jobs.WorkerSup")
        .await
        .unwrap()
        .iter()
        .map(|c| c.as_tuple().unwrap()[1].clone())
        .collect();
    let mut in_order: Vec<Term> = started.iter().map(|p| Term::Pid(*p)).collect();
    in_order.sort_by(cnode::term::compare);
    assert_eq!(listed, in_order);
    for pid in started {
        assert_eq!(
            supervisor::terminate_child(&node, "Elixir.Jobs.WorkerSup", pid).await,
            Ok(true)
        );
    }

    // With options: max_children refuses the one too many, as DynamicSupervisor does.
    let opts = supervisor::DynamicSupervisor::new()
        .max_children(2)
        .max_restarts(1, Duration::from_secs(5));
    supervisor::start_dynamic_with(&node, Some("few_workers"), opts)
        .await
        .expect("a limited dynamic supervisor starts");
    for id in [1, 2] {
        supervisor::start_child(&node, "few_workers", job(id))
            .await
            .expect("within max_children");
    }
    let third = supervisor::start_child(&node, "few_workers", job(3))
        .await
        .expect_err("beyond max_children");
    assert_eq!(third.reason(), atom("max_children"));
    assert_eq!(
        eval(&format!(
            "s = :sys.get_state({{:few_workers, :{n}}}); {{s.max_children, s.max_restarts, map_size(s.children)}}"
        )),
        "{2, 1, 2}"
    );

    // Under a static supervisor: a dynamic supervisor and a Task.Supervisor as children.
    let children = vec![
        ChildSpec::dynamic_supervisor("workers", Some("more_workers")),
        ChildSpec::task_supervisor("tasks", "Elixir.Jobs.TaskSup"),
    ];
    supervisor::start(&node, Some("jobs_sup"), Strategy::OneForOne, children)
        .await
        .expect("the tree starts");
    supervisor::start_child(&node, "more_workers", job(8))
        .await
        .expect("a job under the nested supervisor");
    assert_eq!(
        eval(&format!(
            "{{Supervisor.which_children({{:jobs_sup, :{n}}}) |> Enum.map(fn {{id, _, type, mods}} -> {{id, type, mods}} end),
              Task.Supervisor.async({{Jobs.TaskSup, :{n}}}, :erlang, :node, []) |> Task.await()}}"
        )),
        format!(
            "{{[{{:tasks, :supervisor, [Task.Supervisor]}}, {{:workers, :supervisor, [DynamicSupervisor]}}], :{n}}}"
        )
    );
    // start_child to a supervisor that is not dynamic is refused, as supervisor.erl
    // refuses what DynamicSupervisor.start_child sends it, and it goes on; to one of
    // another node, refused here.
    let refused = supervisor::start_child(&node, "jobs_sup", job(9))
        .await
        .expect_err("not a dynamic supervisor");
    assert!(
        refused
            .reason()
            .as_tuple()
            .is_some_and(|e| e[0].is_atom("invalid_child_spec")),
        "{}",
        refused.reason()
    );
    assert!(node.whereis("jobs_sup").is_some());
    let a = alex.node_name();
    let elsewhere = supervisor::start_child(&node, ("Elixir.Jobs.WorkerSup", a.as_str()), job(9))
        .await
        .expect_err("not on this node");
    assert!(
        elsewhere.to_string().contains("supervisor of this node"),
        "{elsewhere}"
    );

    // Stopped, it stops its children all at once, as DynamicSupervisor does: four
    // that take far longer than their 3 s shutdown are killed together.
    for id in 1..=4 {
        let spec = ChildSpec::gen_server("slow", None, move || Slow(id))
            .shutdown(cnode::supervisor::Shutdown::Timeout(Duration::from_secs(3)));
        supervisor::start_child(&node, "Elixir.Jobs.WorkerSup", spec)
            .await
            .expect("a slow job starts");
    }
    let started = std::time::Instant::now();
    cnode::gen_server::stop(&node, sup, atom("shutdown"), None)
        .await
        .expect("the dynamic supervisor stops");
    // One after the other it would take 12 s at least.
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "{:?}",
        started.elapsed()
    );
}

/// Traps exits and takes 30 s to terminate.
struct Slow(i64);

impl GenServer for Slow {
    async fn init(&mut self, p: &mut Process) -> Result<Next, Exception> {
        p.trap_exit(true);
        Ok(Next::Wait)
    }

    async fn terminate(&mut self, _reason: &Term, _p: &mut Process) {
        tokio::time::sleep(Duration::from_secs(30 + self.0 as u64)).await;
    }
}

/// Never answers a call: stuck in its callback for good.
struct Stuck;

impl GenServer for Stuck {
    async fn handle_call(
        &mut self,
        _request: Term,
        _from: &Caller,
        _p: &mut Process,
    ) -> Result<Reply, Exception> {
        std::future::pending().await
    }
}

/// Traps exits and tells alex's `watcher` how it ended.
struct Trapper {
    watcher: String,
}

impl GenServer for Trapper {
    async fn init(&mut self, p: &mut Process) -> Result<Next, Exception> {
        p.trap_exit(true);
        Ok(Next::Wait)
    }

    async fn terminate(&mut self, reason: &Term, p: &mut Process) {
        let name = p.registered_name().unwrap_or_default();
        let told = tuple(vec![atom("terminated"), atom(&name), reason.clone()]);
        p.send(("watcher", self.watcher.as_str()), told);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_stop_as_a_beam_nodes_applications_stop() {
    use cnode::supervisor::{self, ChildSpec, Strategy};
    let (_epmd, alex, node) = alex_and_node("apps").await;
    let n = node.name().to_owned();
    let a = alex.node_name();
    blocking(|| alex.eval("Process.register(self(), :watcher)"));
    let trapper = |a: &str| Trapper {
        watcher: a.to_owned(),
    };

    // GenServer.stop from Rust: terminate runs with the reason; a second stop finds
    // nobody, and fails as GenServer.stop exits.
    cnode::gen_server::start(&node, Some("short"), trapper(&a))
        .await
        .expect("short starts");
    cnode::gen_server::stop(&node, "short", atom("normal"), None)
        .await
        .expect("short stops");
    assert_eq!(
        blocking(|| alex.eval("receive do m -> m after 20_000 -> :nothing end")),
        "{:terminated, :short, :normal}"
    );
    let again = cnode::gen_server::stop(&node, "short", atom("normal"), None)
        .await
        .expect_err("nobody is there");
    assert_eq!(again.kind(), CallErrorKind::NoProc);
    assert_eq!(
        again.reason().inspect().to_string(),
        "{:noproc, {GenServer, :stop, [:short, :normal, :infinity]}}"
    );
    // Said as Elixir says that exit.
    assert!(
        again
            .to_string()
            .starts_with("exited in: GenServer.stop(:short, :normal, :infinity)"),
        "{again}"
    );

    // What the node runs: a supervisor of a server that traps exits, a server, a
    // Task.Supervisor, all started by no process, and a plain process.
    let w = a.clone();
    let children = vec![ChildSpec::gen_server(
        "trapper",
        Some("trapper"),
        move || trapper(&w),
    )];
    supervisor::start(&node, Some("app_sup"), Strategy::OneForOne, children)
        .await
        .expect("the supervisor starts");
    cnode::gen_server::start(&node, Some("lone"), trapper(&a))
        .await
        .expect("lone starts");
    node.start_task_supervisor("tsup")
        .expect("the task supervisor starts");
    // The name taken: {:already_started, pid}, as Task.Supervisor.start_link answers.
    let again = node.start_task_supervisor("tsup").expect_err("taken");
    assert_eq!(again.already_started(), node.whereis("tsup"));
    node.start_pg("pg").expect("the pg scope starts");
    node.spawn_registered("bare", idle).expect("bare starts");
    // A server stuck in a callback: it does not stop in time, and gets `shutdown` as a
    // supervisor's child would.
    cnode::gen_server::start(&node, Some("stuck"), Stuck)
        .await
        .expect("stuck starts");
    let hung = node.clone();
    let _hung = tokio::spawn(async move { hung.call("stuck", atom("hang"), None).await });
    blocking(|| {
        alex.eval(&format!(
            "for name <- [:app_sup, :trapper, :lone, :tsup, :bare, :stuck], do: Process.monitor({{name, :{n}}})"
        ))
    });

    // As `init:stop/0` on a BEAM node: its applications stop with `shutdown` (their
    // `terminate` runs, the supervisor's children first) while the connection is up;
    // a process in none of them is lost with the connection.
    let before = logs();
    node.stop().await;
    let seen = blocking(|| {
        alex.eval(
            "for _ <- 1..8 do
               receive do
                 {:DOWN, _, :process, {name, _}, reason} -> {:down, name, reason}
                 {:terminated, name, reason} -> {:terminated, name, reason}
               after 10_000 -> :missing
               end
             end |> Enum.sort()",
        )
    });
    assert_eq!(
        seen,
        "[{:down, :app_sup, :shutdown}, {:down, :bare, :noconnection}, \
         {:down, :lone, :shutdown}, {:down, :stuck, :shutdown}, {:down, :trapper, :shutdown}, \
         {:down, :tsup, :shutdown}, {:terminated, :lone, :shutdown}, {:terminated, :trapper, :shutdown}]"
    );
    // A call from plain Rust code on a stopped node fails as a process's would that
    // the node's stop ended: `:shutdown`.
    let after = node
        .call(("echo", a.as_str()), atom("hi"), Some(WAIT))
        .await
        .expect_err("the node has stopped");
    assert_eq!(after.kind(), &CallErrorKind::Exit(atom("shutdown")));
    // Nothing the node keeps (the pg scope) was started again on the way.
    let restarted = logs_after(&before)
        .lines()
        .filter(|line| line.contains(&n) && line.contains("starting it again"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(restarted.is_empty(), "{restarted:?}");
}

/// Counts its ticks: `Process.send_after(self(), :tick, 50)` in `init` and after each.
struct Ticker(i64);

const TICK: Duration = Duration::from_millis(50);

impl GenServer for Ticker {
    async fn init(&mut self, p: &mut Process) -> Result<Next, Exception> {
        p.send_after(p.pid(), atom("tick"), TICK);
        Ok(Next::Wait)
    }

    async fn handle_info(&mut self, message: Term, p: &mut Process) -> Result<Next, Exception> {
        if message.is_atom("tick") {
            self.0 += 1;
            p.send_after(p.pid(), atom("tick"), TICK);
        }
        Ok(Next::Wait)
    }

    fn state(&self) -> Term {
        int(self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_and_cancel_as_on_the_beam() {
    let (_epmd, alex, node) = alex_and_node("timers").await;
    let n = node.name().to_owned();
    let a = alex.node_name();
    let eval = |expr: &str| blocking(|| alex.eval(&expr.replace("NODE", &n)));

    // A GenServer's periodic work.
    cnode::gen_server::start(&node, Some("ticker"), Ticker(0))
        .await
        .expect("the ticker starts");
    assert_eq!(
        eval(
            "Enum.find_value(1..400, false, fn _ ->
               Process.sleep(50); :sys.get_state({:ticker, :NODE}) >= 3
             end)"
        ),
        "true"
    );

    // To a BEAM process, as from the process that set it; a cancelled timer tells the
    // time it had left and is gone, as `Process.cancel_timer/1` and `read_timer/1` on
    // the BEAM.
    eval("Process.register(self(), :shell)");
    let shell = a.clone();
    let (pid, read, cancelled, after) = node
        .run_process(move |p| async move {
            let shell = ("shell", shell.as_str());
            let hello = tuple(vec![atom("from"), Term::Pid(p.pid())]);
            p.send_after(shell, hello, Duration::from_millis(100));
            let long = p.send_after(shell, atom("never"), Duration::from_secs(3600));
            let read = p.read_timer(&long);
            let cancelled = p.cancel_timer(&long);
            let after = (p.read_timer(&long), p.cancel_timer(&long));
            (p.pid(), read, cancelled, after)
        })
        .await
        .expect("the process runs");
    let hour = Duration::from_secs(3600);
    assert!(
        read.is_some_and(|d| d <= hour && d > hour - WAIT),
        "{read:?}"
    );
    assert!(
        cancelled.is_some_and(|d| d <= read.unwrap()),
        "{cancelled:?}"
    );
    assert_eq!(after, (None, None));
    assert_eq!(
        eval(
            "receive do
               {:from, pid} -> {node(pid) == :NODE, :erlang.pid_to_list(pid) |> to_string() |> String.split(\".\") |> tl()}
             after 20_000 -> :none
             end"
        ),
        format!("{{true, [\"{}\", \"{}>\"]}}", pid.id, pid.serial)
    );
    assert_eq!(
        eval("receive do :never -> :got after 300 -> :none end"),
        ":none"
    );
    assert_eq!(node.cancel_timer(&node.make_ref()), None);
    // As long as Duration::MAX: a timer that never fires, a wait without end.
    let never = node.send_after("nobody", atom("x"), Duration::MAX);
    let year = Duration::from_secs(365 * 86_400);
    assert!(node.read_timer(&never).is_some_and(|d| d > year));
    assert!(node.cancel_timer(&never).is_some_and(|d| d > year));
    let got = node
        .run_process(|mut p| async move {
            p.send(p.pid(), atom("here"));
            p.receive_timeout(Duration::MAX).await
        })
        .await
        .expect("the process runs");
    assert_eq!(got, Some(atom("here")));

    // erlang:start_timer/3: the message names its timer.
    let (timer, got, read) = node
        .run_process(|mut p| async move {
            let timer = p.start_timer(p.pid(), atom("ping"), Duration::from_millis(10));
            let got = p.receive_timeout(WAIT).await;
            let read = p.read_timer(&timer);
            (timer, got, read)
        })
        .await
        .expect("the process runs");
    let expected = tuple(vec![
        atom("timeout"),
        Term::Reference(Box::new(timer)),
        atom("ping"),
    ]);
    assert_eq!(got, Some(expected));
    assert_eq!(read, None);

    // A timer to a process goes when that process ends.
    let orphan = node
        .run_process(
            |p| async move { p.send_after(p.pid(), atom("late"), Duration::from_secs(3600)) },
        )
        .await
        .expect("the process runs");
    let mut gone = false;
    for _ in 0..200 {
        if node.read_timer(&orphan).is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the timer outlived its process");

    // A name is looked up when the timer fires.
    node.send_after("later", atom("hi"), Duration::from_millis(200));
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn_registered("later", |mut p| async move {
        let _ = tx.send(p.receive_timeout(WAIT).await);
        Ok(())
    })
    .expect("the name is free");
    assert_eq!(rx.await.expect("the process answers"), Some(atom("hi")));
}

/// The next message a watcher forwarded, within `WAIT`.
async fn forwarded(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Term>) -> String {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(m)) => m.to_string(),
        _ => "nothing".into(),
    }
}

/// The next `n` messages a watcher forwarded, sorted as text (they come from several
/// sources).
async fn forwarded_n(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Term>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(forwarded(rx).await);
    }
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_are_watched_as_on_the_beam() {
    use cnode::{NodeEvents, NodeType};
    let (epmd, alex, node) = alex_and_node("watch").await;
    let n = node.name().to_owned();
    let a = alex.node_name();
    let hid = blocking(|| BeamNode::start_hidden(&unique_name("hid"), COOKIE, &epmd));
    let h = hid.node_name();

    // Subscribed twice (visible nodes; all nodes with reasons), and monitoring alex
    // three times less once, and a node that does not exist.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watched = a.clone();
    node.spawn(move |mut p| async move {
        p.monitor_nodes(true);
        let all = NodeEvents {
            node_type: Some(NodeType::All),
            nodedown_reason: true,
        };
        p.monitor_nodes_with(true, all);
        for _ in 0..3 {
            p.monitor_node(&watched, true);
        }
        p.monitor_node(&watched, false);
        p.monitor_node("nobody_here@localhost", true);
        while tx.send(p.receive().await).is_ok() {}
        Ok(())
    });
    // Monitoring alex connected to it.
    assert_eq!(
        forwarded_n(&mut rx, 3).await,
        [
            "{:nodedown, :nobody_here@localhost}".to_string(),
            format!("{{:nodeup, :{a}, [node_type: :visible]}}"),
            format!("{{:nodeup, :{a}}}"),
        ]
    );

    // A hidden node is told of to the subscription for all nodes only, and why it went.
    let connect_hid = || blocking(|| hid.eval(&format!("Node.connect(:{n})")));
    assert_eq!(connect_hid(), "true");
    assert_eq!(
        forwarded(&mut rx).await,
        format!("{{:nodeup, :{h}, [node_type: :hidden]}}")
    );
    assert!(node.disconnect(&h));
    assert_eq!(
        forwarded(&mut rx).await,
        format!("{{:nodedown, :{h}, [nodedown_reason: :disconnect, node_type: :hidden]}}")
    );
    assert_eq!(connect_hid(), "true");
    assert_eq!(
        forwarded(&mut rx).await,
        format!("{{:nodeup, :{h}, [node_type: :hidden]}}")
    );
    drop(hid);
    assert_eq!(
        forwarded(&mut rx).await,
        format!("{{:nodedown, :{h}, [nodedown_reason: :connection_closed, node_type: :hidden]}}")
    );

    // On a hidden node every connection is hidden, as on a hidden BEAM node.
    let mut config = NodeConfig::new(&format!("{}@localhost", unique_name("shy")), COOKIE);
    config.epmd_port = epmd.port();
    config.hidden = true;
    let shy = Node::start(config).await.expect("the hidden node starts");
    let (tx, mut shy_rx) = tokio::sync::mpsc::unbounded_channel();
    let (subscribed, ready) = tokio::sync::oneshot::channel();
    shy.spawn(move |mut p| async move {
        p.monitor_nodes(true);
        p.monitor_nodes_with(
            true,
            NodeEvents {
                node_type: Some(NodeType::All),
                nodedown_reason: false,
            },
        );
        let _ = subscribed.send(());
        while tx.send(p.receive().await).is_ok() {}
        Ok(())
    });
    ready.await.expect("subscribed");
    assert!(shy.connect(&a).await);
    assert_eq!(
        forwarded(&mut shy_rx).await,
        format!("{{:nodeup, :{a}, [node_type: :hidden]}}")
    );
    assert_eq!(shy.connected_nodes(), std::slice::from_ref(&a));
    shy.stop().await;

    // alex goes: one nodedown for each monitor left and for each subscription.
    drop(alex);
    assert_eq!(
        forwarded_n(&mut rx, 4).await,
        [
            format!(
                "{{:nodedown, :{a}, [nodedown_reason: :connection_closed, node_type: :visible]}}"
            ),
            format!("{{:nodedown, :{a}}}"),
            format!("{{:nodedown, :{a}}}"),
            format!("{{:nodedown, :{a}}}"),
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "nothing more"
    );
}

/// `gen_server:call`, `GenServer.call`, `sys:get_state` and the like, run on the node
/// through rpc: the same answers and exits from a Rust node as from a BEAM node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_called_through_rpc_as_on_a_beam_node() {
    let (_epmd, alex, node) = alex_and_node("rpccalls").await;
    let n = node.name().to_owned();
    cnode::gen_server::start(&node, Some("echo"), Echo)
        .await
        .expect("the echo starts");
    empty_supervisor(&node, "sup").await;
    node.start_task_supervisor("tsup")
        .expect("the task supervisor starts");
    blocking(|| {
        alex.eval(
            "{:ok, _} = Chat.Echo.start(:echo)
             Process.register(self(), :shell)
             {:ok, sup} = Supervisor.start_link([], strategy: :one_for_one, name: :sup)
             Process.unlink(sup)
             {:ok, tsup} = Task.Supervisor.start_link(name: :tsup)
             Process.unlink(tsup)",
        )
    });
    let on = |expr: &str, target: &str| {
        blocking(|| {
            alex.eval(&format!(
                "node = {target}
                 try do {expr} catch
                   # The stacks of exceptions differ: BEAM code has files and lines.
                   :error, {{:exception, reason, _}} -> {{:exception, reason}}
                   kind, reason -> {{kind, reason}}
                 end"
            ))
        })
    };
    for expr in [
        ":rpc.call(node, :gen_server, :call, [:echo, :hi])",
        ":erpc.call(node, :gen_server, :call, [{:echo, node}, {:hi, 1}, 1000])",
        ":erpc.call(node, GenServer, :call, [:echo, :hi])",
        ":erpc.call(node, GenServer, :call, [:nobody, :hi])",
        ":erpc.call(node, :gen_server, :call, [:nobody, :hi, 100])",
        ":erpc.call(node, :gen_server, :call, [:nobody, :hi])",
        ":erpc.call(node, GenServer, :call, [{:global, :nobody}, :hi, :infinity])",
        ":erpc.call(node, GenServer, :call, [{:via, :global, :nobody}, :hi])",
        ":erpc.call(node, GenServer, :call, [42, :hi])",
        ":erpc.call(node, GenServer, :cast, [:echo, {Process.whereis(:shell), :cast_back}])
         receive do :cast_back -> :cast_back after 20_000 -> :nothing end",
        ":erpc.call(node, :gen_server, :cast, [:nobody, :hi])",
        ":erpc.call(node, :sys, :get_state, [:echo])",
        ":erpc.call(node, :sys, :get_state, [:echo, 1000])",
        ":erpc.call(node, :sys, :get_state, [:nobody])",
        ":erpc.call(node, :sys, :get_status, [:nobody, 100])",
        "{:status, _, module, _} = :erpc.call(node, :sys, :get_status, [:echo]); module",
        ":erpc.call(node, Supervisor, :which_children, [:sup])",
        ":erpc.call(node, Supervisor, :count_children, [:sup])",
        ":erpc.call(node, :supervisor, :count_children, [{:sup, node}])",
        ":erpc.call(node, :supervisor, :which_children, [:nobody])",
        ":erpc.call(node, DynamicSupervisor, :count_children, [:tsup])",
        ":erpc.call(node, DynamicSupervisor, :which_children, [:nobody])",
        ":erpc.call(node, Task.Supervisor, :children, [:tsup])",
        ":erpc.call(node, GenServer, :stop, [:nobody])",
        ":erpc.call(node, :gen_server, :stop, [:nobody])",
        ":erpc.call(node, GenServer, :stop, [:echo, :normal, 5000])
         {:erpc.call(node, :erlang, :whereis, [:echo]), :erpc.call(node, GenServer, :stop, [:echo])}",
    ] {
        let beam = on(expr, "node()");
        let rust = on(expr, &format!(":{n}"));
        // The BEAM's exits name its own node where ours name this one.
        assert_eq!(rust, beam.replace(&alex.node_name(), &n), "{expr}");
    }
}

/// A one_for_one supervisor of no children, registered as `name`.
async fn empty_supervisor(node: &Node, name: &str) {
    cnode::supervisor::start(
        node,
        Some(name),
        cnode::supervisor::Strategy::OneForOne,
        vec![],
    )
    .await
    .expect("the supervisor starts");
}

/// A process that waits for ever.
async fn idle(mut p: Process) -> Result<(), Exception> {
    loop {
        p.receive().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_supervisor_is_a_supervisor_to_iex() {
    use cnode::supervisor::{self, ChildSpec, Restart, Strategy};
    let (_epmd, alex, node) = alex_and_node("sup").await;
    let n = node.name().to_owned();
    let children = vec![
        ChildSpec::gen_server("echo", Some("echo"), || Echo),
        ChildSpec::process("idle", idle),
        ChildSpec::process("once", idle).restart(Restart::Temporary),
    ];
    supervisor::start(&node, Some("sup"), Strategy::OneForOne, children)
        .await
        .expect("the supervisor starts");
    let eval = |expr: &str| blocking(|| alex.eval(&expr.replace("NODE", &n)));

    // The same supervisor in Elixir, with Agents for children.
    eval(
        "agent = fn id, restart -> %{id: id, start: {Agent, :start_link, [fn -> 0 end]}, restart: restart} end
         {:ok, _} = Supervisor.start_link([agent.(:echo, :permanent), agent.(:idle, :permanent), agent.(:once, :temporary)],
                                          strategy: :one_for_one, name: :beam_sup)
         shape = fn sup -> Enum.map(Supervisor.which_children(sup), fn {id, pid, type, _} -> {id, is_pid(pid), type} end) end
         Process.put(:shape, shape)",
    );
    let both = |expr: &str| {
        let ours = eval(&expr.replace("SUP", "{:sup, :NODE}"));
        let elixirs = eval(&expr.replace("SUP", ":beam_sup"));
        assert_eq!(ours, elixirs, "{expr}");
        ours
    };
    assert_eq!(
        both("Process.get(:shape).(SUP)"),
        "[{:once, true, :worker}, {:idle, true, :worker}, {:echo, true, :worker}]"
    );
    both("Supervisor.count_children(SUP)");
    // A stray message is logged as supervisor.erl logs it; the Task.Supervisor (a
    // DynamicSupervisor) takes casts silently and logs any other message.
    node.start_task_supervisor("Elixir.Stray.TaskSupervisor")
        .expect("the task supervisor starts");
    let before = logs();
    eval(
        "send({:sup, :NODE}, :stray)
         GenServer.cast({Stray.TaskSupervisor, :NODE}, :a_cast)
         send({Stray.TaskSupervisor, :NODE}, :stray_too)",
    );
    for line in [
        "Supervisor received unexpected message: :stray",
        "DynamicSupervisor received unexpected message: :stray_too",
    ] {
        assert!(
            logged(&before, line).await,
            "{line:?} not in:\n{}",
            logs_after(&before)
        );
    }
    assert!(!logs_after(&before).contains("a_cast"));

    // Tools see both supervisors and their children as `proc_lib` processes waiting
    // in gen_server's loop, with `$initial_call` and `$ancestors` in their dictionary
    // (the loop's arity is OTP 25 to 27's, 7; OTP 29's is 5).
    let info = "info = fn {n, at} -> pid = :rpc.call(at, :erlang, :whereis, [n])
                               :rpc.call(at, Process, :info, [pid, [:current_function, :initial_call, :dictionary]])
                          n -> Process.info(Process.whereis(n), [:current_function, :initial_call, :dictionary]) end
                [current_function: {m, f, _}, initial_call: i, dictionary: d] = info.(SUP)";
    assert_eq!(
        both(&format!("{info}\n{{m, f, i, d[:\"$initial_call\"]}}")),
        "{:gen_server, :loop, {:proc_lib, :init_p, 5}, {:supervisor, Supervisor.Default, 1}}"
    );
    assert_eq!(
        eval(&(info.replace("SUP", "{:echo, :NODE}") + "\n{m, f, i, d}")),
        "{:gen_server, :loop, {:proc_lib, :init_p, 5}, [\"$initial_call\": {:\"rust_api::Echo\", :init, 1}, \"$ancestors\": [:sup]]}"
    );

    // A GenServer child's module is the server's (GenServer::module).
    assert_eq!(
        eval("Supervisor.which_children({:sup, :NODE}) |> Enum.map(&elem(&1, 3))"),
        "[[], [], [:\"rust_api::Echo\"]]"
    );

    // A killed child comes back with a new pid and answers. The exit signal is taken
    // in its own time, on a BEAM node too: until then `whereis` may still give the old
    // pid, so the new one is waited for (10 s at most).
    let old = eval(":rpc.call(:NODE, :erlang, :whereis, [:echo])");
    eval("Process.exit(:rpc.call(:NODE, :erlang, :whereis, [:echo]), :kill)");
    assert_eq!(
        eval(
            &"Enum.find_value(1..200, false, fn _ ->
               case :rpc.call(:NODE, :erlang, :whereis, [:echo]) do
                 pid when is_pid(pid) -> inspect(pid) != OLD or (Process.sleep(50); nil)
                 _ -> Process.sleep(50); nil
               end
             end)"
                .replace("OLD", &format!("{old:?}"))
        ),
        "true"
    );
    assert_eq!(eval("GenServer.call({:echo, :NODE}, :hi)"), ":hi");

    // terminate_child, restart_child, delete_child answer as Elixir's.
    for call in [
        "Supervisor.terminate_child(SUP, :idle)",
        "Supervisor.terminate_child(SUP, :nobody)",
        "Process.get(:shape).(SUP)",
        "Supervisor.delete_child(SUP, :echo)",
        "elem(Supervisor.restart_child(SUP, :idle), 0)",
        "Supervisor.restart_child(SUP, :idle)",
        "Supervisor.terminate_child(SUP, :once)",
        "Supervisor.restart_child(SUP, :once)",
        "Supervisor.count_children(SUP)",
    ] {
        both(call);
    }
    // The same from Rust, to the Rust supervisor and to the Elixir one alike.
    let a = alex.node_name();
    let mut answers = Vec::new();
    for sup in [Dest::from("sup"), Dest::from(("beam_sup", a.as_str()))] {
        let counts = supervisor::count_children(&node, sup.clone()).await;
        let stopped = supervisor::terminate_child(&node, sup.clone(), "idle").await;
        let restarted = supervisor::restart_child(&node, sup.clone(), "idle").await;
        let running = supervisor::restart_child(&node, sup.clone(), "idle").await;
        let busy = supervisor::delete_child(&node, sup.clone(), "echo").await;
        let nobody = supervisor::terminate_child(&node, sup.clone(), "nobody").await;
        let unknown = supervisor::restart_child(&node, sup.clone(), "nobody").await;
        answers.push(format!(
            "{counts:?} {stopped:?} {} {running:?} {busy:?} {nobody:?} {unknown:?}",
            restarted.is_ok_and(|r| r.is_ok())
        ));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        answers[0],
        "Ok(ChildCounts { specs: 2, active: 2, supervisors: 0, workers: 2 }) Ok(true) true \
         Ok(Err(:running)) Ok(Err(:running)) Ok(false) Ok(Err(:not_found))"
    );
    // Its state is supervisor.erl's record, which tools read (the fields every
    // release has in the same place: the record grew in OTP 28).
    both(
        "s = :sys.get_state(SUP)
         {elem(s, 0), elem(s, 2), elem(s, 5), elem(s, 6), elem(elem(s, 3), 0),
          elem(elem(s, 3), 1) |> Map.values() |> Enum.map(&{elem(&1, 0), elem(&1, 4), elem(&1, 7)}) |> Enum.sort()}",
    );
    assert_eq!(
        both(":supervisor.get_callback_module(SUP)"),
        "Supervisor.Default"
    );

    // More restarts than 3 in 5 s: the supervisor gives up, exiting :shutdown; and
    // says so, then the node that goes on without it, as a BEAM node's application
    // controller says `Application ... exited: shutdown`.
    let before = logs();
    assert_eq!(
        eval(
            "ref = Process.monitor({:sup, :NODE})
             Enum.find_value(1..1000, :still_up, fn _ ->
               case :rpc.call(:NODE, :erlang, :whereis, [:echo]) do
                 pid when is_pid(pid) -> Process.exit(pid, :kill)
                 _ -> :restarting
               end
               receive do {:DOWN, ^ref, _, _, reason} -> reason after 20 -> nil end
             end)"
        ),
        ":shutdown"
    );
    assert!(
        logged(
            &before,
            "top supervisor :sup exited: :shutdown; the node goes on without it"
        )
        .await,
        "{}",
        logs_after(&before)
    );

    // A call it has no clause for crashes it, as supervisor.erl's handle_call/3.
    supervisor::start(&node, Some("bare_sup"), Strategy::OneForOne, vec![])
        .await
        .expect("the supervisor starts");
    eval(
        "{:ok, pid} = Supervisor.start_link([], strategy: :one_for_one, name: :beam_bare_sup)
          Process.unlink(pid)",
    );
    let before = logs();
    let what = "try do GenServer.call(SUP, :what) catch
                  :exit, {{:function_clause, [{m, f, [:what, _, state], _} | _]}, _} -> {m, f, elem(state, 0)}
                end";
    let ours = eval(&what.replace("SUP", "{:bare_sup, :NODE}"));
    assert_eq!(ours, eval(&what.replace("SUP", ":beam_bare_sup")));
    assert_eq!(ours, "{:supervisor, :handle_call, :state}");
    let line = "no function clause matching in :supervisor.handle_call/3";
    assert!(logged(&before, line).await, "{}", logs_after(&before));
}

/// A supervisor under a supervisor, with its own strategy and intensity, is listed,
/// described and limited as the same tree in Elixir: `ChildSpec::supervisor_of`, and a
/// `Supervisor` given to `ChildSpec::gen_server`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_supervisor_has_its_own_intensity_as_in_elixir() {
    use cnode::supervisor::{self, ChildSpec, Strategy, Supervisor};
    let (_epmd, alex, node) = alex_and_node("nested").await;
    let n = node.name().to_owned();
    let eval = |expr: &str| blocking(|| alex.eval(&expr.replace("NODE", &n)));
    let two = || vec![ChildSpec::process("a", idle), ChildSpec::process("b", idle)];
    let inner = Supervisor::new(Strategy::OneForAll, two()).max_restarts(1, Duration::from_secs(7));
    let children = vec![
        ChildSpec::supervisor_of("inner", Some("inner"), inner),
        ChildSpec::gen_server("as_server", Some("as_server"), move || {
            Supervisor::new(Strategy::RestForOne, two()).max_restarts(4, Duration::from_secs(9))
        }),
    ];
    supervisor::start(&node, Some("outer"), Strategy::OneForOne, children)
        .await
        .expect("the tree starts");
    eval(
        "agent = fn id -> %{id: id, start: {Agent, :start_link, [fn -> 0 end]}} end
         sup = fn id, name, strategy, max, secs ->
           opts = [strategy: strategy, max_restarts: max, max_seconds: secs, name: name]
           %{id: id, start: {Supervisor, :start_link, [[agent.(:a), agent.(:b)], opts]}, type: :supervisor}
         end
         {:ok, _} = Supervisor.start_link([sup.(:inner, :beam_inner, :one_for_all, 1, 7),
                                           sup.(:as_server, :beam_as_server, :rest_for_one, 4, 9)],
                                          strategy: :one_for_one, name: :beam_outer)",
    );
    let both = |expr: &str, ours: &str, elixirs: &str| {
        let got = eval(&expr.replace("SUP", ours));
        assert_eq!(got, eval(&expr.replace("SUP", elixirs)), "{expr}");
        got
    };
    assert_eq!(
        both(
            "Enum.map(Supervisor.which_children(SUP), fn {id, pid, type, mods} -> {id, is_pid(pid), type, mods} end)",
            "{:outer, :NODE}",
            ":beam_outer"
        ),
        "[{:as_server, true, :supervisor, [Supervisor]}, {:inner, true, :supervisor, [Supervisor]}]"
    );
    both(
        "for id <- [:inner, :as_server], do: :supervisor.get_childspec(SUP, id) |> elem(1) |> Map.take([:type, :modules, :shutdown])",
        "{:outer, :NODE}",
        ":beam_outer",
    );
    // Strategy, intensity and period, from the supervisor's own state.
    let limits = "s = :sys.get_state(SUP); {elem(s, 2), elem(s, 5), elem(s, 6)}";
    assert_eq!(
        both(limits, "{:inner, :NODE}", ":beam_inner"),
        "{:one_for_all, 1, 7}"
    );
    assert_eq!(
        both(limits, "{:as_server, :NODE}", ":beam_as_server"),
        "{:rest_for_one, 4, 9}"
    );
}

/// A GenServer whose `init` returns `:ignore`.
struct Ignores;

impl GenServer for Ignores {
    async fn init(&mut self, _p: &mut Process) -> Result<Next, Exception> {
        Ok(Next::Ignore)
    }
}

/// `init` returning `:ignore`: `start` says so and nothing runs under the name; a
/// supervisor keeps the child with no process (a temporary one is dropped), restarts it
/// to `{:ok, :undefined}`, and a dynamic one answers `:ignore`, as Elixir's do with a
/// module whose `init/1` returns `:ignore`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_its_start_is_kept_as_elixir_keeps_it() {
    use cnode::supervisor::{self, ChildSpec, Restart, Strategy};
    let (_epmd, alex, node) = alex_and_node("ignore").await;
    let n = node.name().to_owned();
    let eval = |expr: &str| blocking(|| alex.eval(&expr.replace("NODE", &n)));

    let ignored = cnode::gen_server::start(&node, Some("ig"), Ignores)
        .await
        .expect_err("an ignored start is no pid");
    assert!(ignored.ignored(), "{ignored}");
    assert_eq!(node.whereis("ig"), None);

    let children = vec![
        ChildSpec::gen_server("kept", None, || Ignores),
        ChildSpec::gen_server("dropped", None, || Ignores).restart(Restart::Temporary),
        ChildSpec::process("idle", idle),
    ];
    supervisor::start(&node, Some("ig_sup"), Strategy::OneForOne, children)
        .await
        .expect("a supervisor of ignoring children starts");
    supervisor::start_dynamic(&node, Some("ig_dyn"))
        .await
        .expect("the dynamic supervisor starts");
    let dynamic = supervisor::start_child(
        &node,
        "ig_dyn",
        ChildSpec::gen_server("x", None, || Ignores),
    )
    .await
    .expect_err("no child");
    assert!(dynamic.ignored(), "{dynamic}");

    // The same in Elixir.
    eval(
        "defmodule Ig do
           use GenServer
           def init(_), do: :ignore
         end
         ig = fn id, restart -> %{id: id, start: {GenServer, :start_link, [Ig, []]}, restart: restart} end
         {:ok, _} = Supervisor.start_link([ig.(:kept, :permanent), ig.(:dropped, :temporary),
                                           %{id: :idle, start: {Agent, :start_link, [fn -> 0 end]}}],
                                          strategy: :one_for_one, name: :beam_ig_sup)
         {:ok, _} = DynamicSupervisor.start_link(strategy: :one_for_one, name: :beam_ig_dyn)
         :ignore = DynamicSupervisor.start_child(:beam_ig_dyn, ig.(:x, :permanent))",
    );
    let both = |expr: &str, ours: &str, elixirs: &str| {
        let got = eval(&expr.replace("SUP", ours));
        assert_eq!(got, eval(&expr.replace("SUP", elixirs)), "{expr}");
        got
    };
    let statics = |expr: &str| both(expr, "{:ig_sup, :NODE}", ":beam_ig_sup");
    assert_eq!(
        statics("Enum.map(Supervisor.which_children(SUP), fn {id, pid, type, _} -> {id, is_pid(pid) or pid, type} end)"),
        "[{:idle, true, :worker}, {:kept, :undefined, :worker}]"
    );
    statics("Supervisor.count_children(SUP)");
    assert_eq!(
        statics("Supervisor.restart_child(SUP, :kept)"),
        "{:ok, :undefined}"
    );
    let a = alex.node_name();
    for sup in [
        Dest::from("ig_sup"),
        Dest::from(("beam_ig_sup", a.as_str())),
    ] {
        let restarted = supervisor::restart_child(&node, sup, "kept").await;
        assert!(matches!(restarted, Ok(Ok(None))), "{restarted:?}");
    }
    statics("Supervisor.delete_child(SUP, :kept)");
    both(
        "DynamicSupervisor.count_children(SUP)",
        "{:ig_dyn, :NODE}",
        ":beam_ig_dyn",
    );
}

#[tokio::test]
async fn rest_for_one_and_one_for_all_restart_the_children_they_name() {
    use cnode::supervisor::{self, ChildSpec, Strategy};
    let epmd = cnode::epmd::server::EpmdServer::bind(0)
        .await
        .expect("epmd");
    let node = start_node("strategies", epmd.local_port()).await;
    let which = |sup: &'static str| {
        let node = node.clone();
        async move {
            let reply = node
                .call(sup, atom("which_children"), Some(WAIT))
                .await
                .expect("which_children");
            reply
                .as_list()
                .expect("a list")
                .iter()
                .map(|c| {
                    let e = c.as_tuple().expect("a tuple");
                    (e[0].as_atom().unwrap().to_owned(), e[1].clone())
                })
                .collect::<Vec<_>>()
        }
    };
    let three = || {
        vec![
            ChildSpec::process("a", idle),
            ChildSpec::process("b", idle),
            ChildSpec::process("c", idle),
        ]
    };
    for (sup, strategy) in [
        ("rest", Strategy::RestForOne),
        ("all", Strategy::OneForAll),
        ("one", Strategy::OneForOne),
    ] {
        supervisor::start(&node, Some(sup), strategy, three())
            .await
            .expect("starts");
        let before = which(sup).await;
        assert_eq!(
            before.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            ["c", "b", "a"]
        );
        let b = *before[1].1.as_pid().unwrap();
        node.exit(&b, atom("kill"));
        let mut after = which(sup).await;
        for _ in 0..200 {
            if after.iter().all(|(_, pid)| pid.as_pid().is_some()) && after[1].1 != before[1].1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            after = which(sup).await;
        }
        let restarted: Vec<&str> = before
            .iter()
            .zip(&after)
            .filter(|(old, new)| old.1 != new.1)
            .map(|(old, _)| old.0.as_str())
            .collect();
        let expected: Vec<&str> = match strategy {
            Strategy::RestForOne => vec!["c", "b"],
            Strategy::OneForAll => vec!["c", "b", "a"],
            Strategy::OneForOne => vec!["b"],
        };
        assert_eq!(restarted, expected, "{sup}");
    }
}

/// A GenServer that only takes messages.
struct Quiet;

impl GenServer for Quiet {
    fn module() -> &'static str {
        "Elixir.Quiet"
    }
}

/// Elixir's `use GenServer` gives a server that defines no `handle_call/3` or
/// `handle_cast/2` clauses that raise: a call or a cast stops it with a
/// `RuntimeError`, and the caller of the call exits with it. The Rust server with the
/// trait's defaults ends the same way, with the same message, as iex sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_genserver_without_call_or_cast_clauses_stops_as_elixirs_does() {
    let (_epmd, alex, node) = alex_and_node("quiet").await;
    let n = node.name().to_owned();
    blocking(|| {
        alex.eval(
            "defmodule Quiet do
               use GenServer
               def init(x), do: {:ok, x}
             end
             :ok",
        )
    });
    // What happens to the server `{name, node}`, started (again) on that node: the
    // message a call exits with, then the reason a cast stops it with.
    let ending = |start: &dyn Fn(&str), target: &str| {
        start("quiet_call");
        let call = blocking(|| {
            alex.eval(&format!(
                "try do GenServer.call({{:quiet_call, {target}}}, :hello) catch
                   :exit, {{{{%RuntimeError{{message: m}}, [{{mod, f, a, _}} | _]}}, {{GenServer, :call, _}}}} ->
                     {{m, {{mod, f, a}}}}
                 end"
            ))
        });
        start("quiet_cast");
        let cast = blocking(|| {
            alex.eval(&format!(
                "server = {{:quiet_cast, {target}}}
                 ref = Process.monitor(server)
                 GenServer.cast(server, :hello)
                 receive do
                   {{:DOWN, ^ref, :process, _, {{%RuntimeError{{message: m}}, _}}}} -> m
                 after 10_000 -> :no_down
                 end"
            ))
        });
        (call, cast)
    };
    let beam = ending(
        &|name| {
            blocking(|| {
                alex.eval(&format!(
                    "{{:ok, _}} = GenServer.start(Quiet, nil, name: :{name})"
                ))
            });
        },
        "node()",
    );
    let rust = ending(
        &|name| {
            let node = node.clone();
            let name = name.to_owned();
            blocking(|| {
                tokio::runtime::Handle::current().block_on(async move {
                    cnode::gen_server::start(&node, Some(&name), Quiet)
                        .await
                        .expect("the server starts");
                })
            });
        },
        &format!(":{n}"),
    );
    assert_eq!(
        beam.0,
        "{\"attempted to call GenServer :quiet_call but no handle_call/3 clause was provided\", {Quiet, :handle_call, 3}}"
    );
    assert_eq!(
        beam.1,
        "\"attempted to cast GenServer :quiet_cast but no handle_cast/2 clause was provided\""
    );
    assert_eq!(rust, beam);

    // Without handle_info, a message is logged as Elixir's default logs it (`Quiet
    // :quiet_info received unexpected message in handle_info/2: :hello`) and dropped.
    let earlier = logs();
    cnode::gen_server::start(&node, Some("quiet_info"), Quiet)
        .await
        .expect("the server starts");
    blocking(|| alex.eval(&format!("send({{:quiet_info, :{n}}}, :hello)")));
    let line = "ERROR cnode::otp::gen_server: Quiet :quiet_info received unexpected message in handle_info/2: :hello";
    assert!(logged(&earlier, line).await, "{}", logs_after(&earlier));

    // A supervisor takes no casts: supervisor:handle_cast/2 has no clause for one.
    empty_supervisor(&node, "quiet_sup").await;
    blocking(|| {
        alex.eval(
            "{:ok, pid} = Supervisor.start_link([], strategy: :one_for_one, name: :quiet_sup)
             Process.unlink(pid)",
        )
    });
    let cast_to_supervisor = |target: &str| {
        blocking(|| {
            alex.eval(&format!(
                "server = {{:quiet_sup, {target}}}
                 ref = Process.monitor(server)
                 GenServer.cast(server, :hello)
                 receive do
                   {{:DOWN, ^ref, :process, _, reason}} -> elem(reason, 0)
                 after 10_000 -> :no_down
                 end"
            ))
        })
    };
    assert_eq!(cast_to_supervisor("node()"), ":function_clause");
    assert_eq!(cast_to_supervisor(&format!(":{n}")), ":function_clause");
}

#[tokio::test]
async fn names_are_refused_as_erl_refuses_them() {
    let epmd = cnode::epmd::server::EpmdServer::bind(0)
        .await
        .expect("epmd");
    let name = format!("{}@localhost", unique_name("taken"));
    let mut config = NodeConfig::new(&name, COOKIE);
    config.epmd_port = epmd.local_port();
    let _first = Node::start(config.clone()).await.expect("the first starts");
    match Node::start(config).await {
        Err(e) => assert_eq!(
            e.to_string(),
            format!("the name {name} seems to be in use by another Erlang node")
        ),
        Ok(_) => panic!("a second node took the name {name}"),
    }
    for bad in ["bad name@localhost", "moebi", "a@b@c"] {
        let mut config = NodeConfig::new(bad, COOKIE);
        config.epmd_port = epmd.local_port();
        match Node::start(config).await {
            Err(e) => assert!(e.to_string().starts_with("Invalid node name!"), "{e}"),
            Ok(_) => panic!("{bad:?} was taken as a node name"),
        }
    }
}

/// The line of this file after the comment `marker` (numbered from 1).
fn line_of(marker: &str) -> usize {
    let comment = format!("// {marker}");
    include_str!("rust_api.rs")
        .lines()
        .position(|line| line.trim() == comment)
        .expect("the marker is in this file")
        + 2
}

/// This test binary's log lines (every test's), captured from the first call on.
fn logs() -> String {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::default());
        struct Into(&'static Mutex<Vec<u8>>);
        impl std::io::Write for Into {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Into(logs))
            .init();
        logs
    });
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

/// Whether `line` is logged after `earlier`, waiting for it (`WAIT` at most).
async fn logged(earlier: &str, line: &str) -> bool {
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if logs_after(earlier).contains(line) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The log lines that came after `earlier` (what [`logs`] returned before).
fn logs_after(earlier: &str) -> String {
    logs()[earlier.len()..].to_owned()
}

/// A call in flight when the node stops: each kind of call says so (its process ended,
/// or the connection did), and none says the remote function raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_when_the_node_stops() {
    let (_epmd, alex, node) = alex_and_node("stopping").await;
    let a = alex.node_name();
    blocking(|| {
        alex.eval("Process.register(spawn(fn -> Process.sleep(:infinity) end), :nobody_answers)")
    });
    let rpc = {
        let (node, a) = (node.clone(), a.clone());
        tokio::spawn(async move {
            node.erpc_call(&a, "timer", "sleep", vec![int(10_000)], WAIT)
                .await
        })
    };
    let call = {
        let (node, a) = (node.clone(), a.clone());
        tokio::spawn(async move {
            node.call(("nobody_answers", a.as_str()), atom("x"), None)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.stop().await, 0);
    let rpc = tokio::time::timeout(WAIT, rpc)
        .await
        .expect("erpc ends")
        .unwrap();
    // The connections close before the processes that are in no application end, as
    // on a BEAM node that stops (its peers see such a process end `noconnection`): the
    // caller's process may read the connection's end before its own.
    match &rpc {
        Err(e @ RpcError::CallerEnded(reason)) => {
            assert_eq!(reason, &atom("shutdown"));
            assert!(
                e.to_string().starts_with("the call's process here ended"),
                "{e}"
            );
        }
        Err(RpcError::NoConnection(to)) => assert_eq!(to, &a),
        other => panic!("{other:?}"),
    }
    let call = tokio::time::timeout(WAIT, call)
        .await
        .expect("call ends")
        .unwrap();
    assert!(call.is_err(), "{call:?}");
}

/// An EPMD gone while a node is registered with it (here a test's own `EpmdServer`,
/// dropped): the node registers again if it comes back, says after 10 s that it is
/// missing, and starts no `epmd -daemon` in its place, as a BEAM node starts none after
/// its boot (it would take the port the operator's EPMD comes back on, and outlive a
/// test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_epmd_is_waited_for_not_replaced() {
    let before = logs();
    let epmd = cnode::epmd::server::EpmdServer::bind(0)
        .await
        .expect("epmd");
    let port = epmd.local_port();
    let node = start_node("orphan", port).await;
    drop(epmd);
    let lost = format!("lost the EPMD registration; registering again epmd_port={port}");
    assert!(logged(&before, &lost).await, "{}", logs_after(&before));
    // Past the 10 s a restart takes: said, and still waited for.
    let missing = "no EPMD for 10s: nodes cannot look this one up by name";
    assert!(logged(&before, missing).await, "{}", logs_after(&before));
    let started = format!("started epmd -daemon epmd_port={port}");
    assert!(
        !logs_after(&before).contains(&started),
        "{}",
        logs_after(&before)
    );
    node.stop().await;
}

/// A server whose callback blocks its thread for 15 s, with 1 s to shut down.
struct Blocked;

/// Blocked's callback has returned.
static BLOCKED_WOKE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl GenServer for Blocked {
    fn shutdown() -> cnode::supervisor::Shutdown {
        cnode::supervisor::Shutdown::Timeout(Duration::from_secs(1))
    }

    async fn handle_cast(&mut self, _request: Term, _p: &mut Process) -> Result<Next, Exception> {
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_secs(15)));
        BLOCKED_WOKE.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(Next::Wait)
    }
}

/// A stopping node's supervisor gives its child its shutdown time, then kills it, as
/// on `init:stop`: one whose callback holds its thread does not hold up the stop until
/// the callback returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_does_not_wait_for_a_blocked_callback() {
    let epmd = cnode::epmd::server::EpmdServer::bind(0)
        .await
        .expect("epmd");
    let node = start_node("blocked", epmd.local_port()).await;
    let child = cnode::supervisor::ChildSpec::gen_server("blocked", Some("blocked"), || Blocked);
    let one_for_one = cnode::supervisor::Strategy::OneForOne;
    cnode::supervisor::start(&node, Some("blocked_sup"), one_for_one, vec![child])
        .await
        .expect("the tree starts");
    node.cast("blocked", atom("block"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(node.stop().await, 0);
    assert!(
        !BLOCKED_WOKE.load(std::sync::atomic::Ordering::SeqCst),
        "the stop waited for the callback"
    );
}

/// A message to a pid of an earlier run of this node (same name, another creation) is
/// dropped and said, as the BEAM says it: `Discarding message ... in an old incarnation
/// (C) of this node (C')`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_an_old_incarnation_is_dropped_and_said() {
    let before = logs();
    let epmd = cnode::epmd::server::EpmdServer::bind(0)
        .await
        .expect("epmd");
    let node = start_node("incarnation", epmd.local_port()).await;
    let now = node.spawn(|mut p| async move {
        p.receive().await;
        Ok(())
    });
    let old = cnode::term::Pid::new(
        node.name(),
        now.id,
        now.serial,
        now.creation.wrapping_sub(1),
    );
    node.run_process(move |p| async move { p.send(old, atom("stale")) })
        .await
        .unwrap();
    let said = format!(
        "in an old incarnation ({}) of this node ({})",
        old.creation, now.creation
    );
    assert!(logged(&before, &said).await, "{}", logs_after(&before));
    assert!(logs_after(&before).contains("Discarding message stale from <"));
    node.stop().await;
}

/// A server that fails on every call, keeping a count as its state.
struct FailsOnCall(i64);

impl GenServer for FailsOnCall {
    async fn init(&mut self, _p: &mut Process) -> Result<Next, Exception> {
        match self.0 {
            0 => Err(Exception::runtime_error("no count")),
            _ => Ok(Next::Wait),
        }
    }

    async fn handle_call(
        &mut self,
        request: Term,
        _from: &Caller,
        _p: &mut Process,
    ) -> Result<Reply, Exception> {
        // A list request ends it with a reason that holds it (a large one, below).
        match request.as_list() {
            Some(_) => Err(Exception::exit(tuple(vec![atom("boom"), request]))),
            None => Err(Exception::exit(atom("boom"))),
        }
    }

    fn state(&self) -> Term {
        int(self.0)
    }
}

/// A Rust server's crash is logged as Elixir's logger words gen_server's report: the
/// last message and its caller, the state, and whether the caller is alive. A message
/// too large to keep a copy of is said to be so. A server whose init fails is not
/// logged as a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_servers_log_names_its_last_message_state_and_caller() {
    logs(); // captured from here on
    let epmd = Epmd::start();
    let node = start_node("crashlog", epmd.port()).await;
    let earlier = logs();
    for (name, request) in [
        ("fails_small", tuple(vec![atom("put"), int(1)])),
        ("fails_large", list((0..10_000).map(int).collect())),
    ] {
        cnode::gen_server::start(&node, Some(name), FailsOnCall(7))
            .await
            .expect("it starts");
        let failed = node.call(name, request, Some(WAIT)).await;
        assert!(failed.is_err(), "{failed:?}");
    }
    // An init that raises: the starter gets the error, and nothing is logged, as a
    // BEAM node's default logger leaves out the crash report of a gen_server that
    // failed to start (no `Error in process`: that is for a process's own error).
    let refused = cnode::gen_server::start(&node, Some("fails_init"), FailsOnCall(0)).await;
    assert!(refused.is_err());
    let after = logs_after(&earlier);
    assert!(!after.contains("Error in process"), "{after}");
    assert!(
        !after.contains(" ERROR ") || !after.contains("no count"),
        "{after}"
    );
    let small = after
        .split("GenServer :fails_small terminating\n")
        .nth(1)
        .unwrap_or_default();
    let lines: Vec<&str> = small.lines().take(4).collect();
    assert_eq!(lines[0], "** (stop) :boom", "{after}");
    assert!(
        lines[1].starts_with("Last message (from #PID<0.") && lines[1].ends_with(">): {:put, 1}"),
        "{after}"
    );
    assert_eq!(lines[2], "State: 7", "{after}");
    assert!(
        lines[3].starts_with("Client #PID<0.") && lines[3].contains("> is alive"),
        "{after}"
    );
    let large = after
        .split("GenServer :fails_large terminating\n")
        .nth(1)
        .unwrap_or_default();
    assert!(
        large.contains("): (not kept: over 64 elements)\nState: 7"),
        "{after}"
    );
    // Its reason, which holds the 10,000 elements, is printed cut after 8 KiB, as
    // Elixir's logger cuts a report: what a peer sent makes no megabytes of log.
    assert!(large.starts_with("** (stop) {:boom, [0, 1, 2,"), "{after}");
    let reason_line = large.lines().next().unwrap_or_default();
    assert!(reason_line.len() < 8200, "{}", reason_line.len());
    assert!(reason_line.ends_with("..."), "{reason_line}");
}
