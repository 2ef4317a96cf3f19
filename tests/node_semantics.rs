//! Node semantics seen from a real iex session: what a BEAM user does with any node
//! (remote spawn, links, monitors, GenServer calls, rpc), done against the Rust Moebi
//! node and, for reference, against a BEAM node `kate` that runs the same functions
//! written in Elixir. The BEAM's answer is the specification: for every scenario alex
//! gets the same text from Moebi as from kate, once pids, references and the node's
//! name are blanked out.

mod support;

use std::time::Duration;
use support::{unique_name, BeamNode, Epmd, RustNode};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(15);

/// Moebi's functions (examples/moebi.rs) in Elixir, and the `:echo` GenServer, so kate
/// can serve as the reference BEAM node.
const MOEBI_IN_ELIXIR: &str = r#"
defmodule Moebi do
  def say_name, do: IO.puts("Hi, my name is Moebi")

  def sup do
    receive do
      {:hi, from} -> send(from, :sup?)
    end
  end

  def wait do
    receive do
      reason -> exit(reason)
    end
  end

  def wait(name) do
    Process.register(self(), name)
    wait()
  end
end
{:ok, _} = Chat.Echo.start(:echo)
:ok
"#;

/// Moebi, the caller alex, and the reference BEAM node kate, on one private EPMD.
struct Cluster {
    alex: BeamNode,
    moebi: Option<RustNode>,
    kate: Option<BeamNode>,
    moebi_name: String,
    kate_name: String,
    _epmd: Epmd,
}

impl Cluster {
    fn start() -> Cluster {
        let epmd = Epmd::start();
        let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
        let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
        let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
        assert_eq!(kate.eval(MOEBI_IN_ELIXIR), ":ok");
        Cluster {
            moebi_name: moebi.node_name(),
            kate_name: kate.node_name(),
            alex,
            moebi: Some(moebi),
            kate: Some(kate),
            _epmd: epmd,
        }
    }

    fn moebi(&self) -> &RustNode {
        self.moebi.as_ref().expect("moebi is running")
    }

    /// `scenario` with `NODE` replaced by the node's atom.
    fn for_node(scenario: &str, node: &str) -> String {
        scenario.replace("NODE", &format!(":\"{node}\""))
    }

    /// Runs `scenario` on alex against kate, then against Moebi; asserts both give the
    /// same result (or fail the same way) and returns Moebi's, blanked.
    fn same_as_beam(&self, scenario: &str) -> Result<String, String> {
        let run = |node: &str| {
            self.alex
                .eval_timeout(&Self::for_node(scenario, node), WAIT)
                .map(|r| self.blank(&r))
                .map_err(|e| self.blank(&e))
        };
        let beam = run(&self.kate_name);
        let rust = run(&self.moebi_name);
        assert_eq!(
            rust, beam,
            "Moebi (left) answers unlike a BEAM node (right) to:\n{scenario}\n--- moebi log ---\n{}",
            self.moebi().log()
        );
        rust
    }

    /// Like [`same_as_beam`](Cluster::same_as_beam), for scenarios that succeed.
    fn same_ok(&self, scenario: &str) -> String {
        self.same_as_beam(scenario)
            .unwrap_or_else(|e| panic!("scenario failed on both nodes: {e}\n{scenario}"))
    }

    /// Pids, references and the two node names blanked out, so answers compare.
    fn blank(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for name in [&self.moebi_name, &self.kate_name] {
            out = out
                .replace(&format!(":\"{name}\""), "NODE")
                .replace(&format!(":{name}"), "NODE")
                .replace(name.as_str(), "NODE");
        }
        for opening in ["#PID<", "#Reference<"] {
            out = blank_between(&out, opening, '>');
        }
        // The driver numbers each evaluation's lines after the ones before it (as iex
        // does), so a stack trace through the scenario itself names another line for
        // each node; the line is the script's, not the node's answer.
        for marker in ["cnode_eval:", "cnode_eval', line: ", "cnode_eval\", line: "] {
            out = blank_number_after(&out, marker);
        }
        out
    }

    /// Bullet 7 of the issue: after whatever a scenario did, Moebi keeps serving.
    fn assert_moebi_still_serves(&self) {
        let m = &self.moebi_name;
        assert_eq!(
            self.alex
                .eval(&format!("Chat.send_message(:\"{m}\", \"still there?\")")),
            ":ok"
        );
        assert!(
            self.moebi().wait_for_lines("still there?", 1, WAIT),
            "moebi prints the message:\n{}",
            self.moebi().output()
        );
    }
}

/// The number right after each `marker` replaced by `N`.
fn blank_number_after(text: &str, marker: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('N');
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// `opening…close` spans reduced to `opening close`.
fn blank_between(text: &str, opening: &str, close: char) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(opening) {
        out.push_str(&rest[..at + opening.len()]);
        rest = &rest[at + opening.len()..];
        match rest.find(close) {
            Some(end) => rest = &rest[end..],
            None => break,
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn spawn_link_output_appears_on_the_callers_terminal() {
    let c = Cluster::start();
    let m = format!(":\"{}\"", c.moebi_name);

    // iex(alex)> Node.spawn_link(:moebi@localhost, Moebi, :say_name, [])
    // Hi, my name is Moebi
    let pid = c
        .alex
        .eval(&format!("Node.spawn_link({m}, Moebi, :say_name, [])"));
    assert!(pid.starts_with("#PID<"), "{pid}");
    assert!(
        c.alex.wait_for_output("Hi, my name is Moebi\n", WAIT),
        "the caller (group leader) prints it:\n{}",
        c.alex.output()
    );
    assert!(
        !c.moebi().output().contains("Hi, my name is Moebi"),
        "{}",
        c.moebi().output()
    );

    // iex(alex)> pid = Node.spawn_link(:moebi@localhost, Moebi, :sup, [])
    // iex(alex)> send(pid, {:hi, self()}); flush()  =>  :sup?
    c.alex
        .eval(&format!("pid = Node.spawn_link({m}, Moebi, :sup, [])"));
    c.alex.eval("send(pid, {:hi, self()})");
    assert_eq!(c.alex.eval("next_message()"), ":sup?");

    // Both answer exactly as a BEAM node running the same functions does.
    let sup = "pid = Node.spawn_link(NODE, Moebi, :sup, [])
               send(pid, {:hi, self()})
               {next_message(), flush()}";
    assert_eq!(c.same_ok(sup), "{:sup?, []}");
    c.same_ok("Node.spawn_link(NODE, Moebi, :say_name, []) |> is_pid()");
    assert!(
        c.alex
            .wait_for_output_count("Hi, my name is Moebi\n", 3, WAIT),
        "{}",
        c.alex.output()
    );

    // Tasks of Chat.TaskSupervisor have Moebi's own group leader: they print there.
    assert_eq!(
        c.alex.eval(&format!("Chat.send_message({m}, \"hi\")")),
        ":ok"
    );
    assert!(
        c.moebi().wait_for_lines("hi", 1, WAIT),
        "{}",
        c.moebi().output()
    );
    c.assert_moebi_still_serves();
}

#[test]
fn remote_spawn_of_registered_and_unknown_functions() {
    let c = Cluster::start();

    // Node.spawn/4: output on the caller's terminal.
    c.same_ok("Node.spawn(NODE, Moebi, :say_name, []) |> is_pid()");
    assert!(
        c.alex
            .wait_for_output_count("Hi, my name is Moebi\n", 2, WAIT),
        "{}",
        c.alex.output()
    );

    // Node.spawn_monitor/4: the DOWN carries the process's exit reason.
    let monitored = "flush()
        {pid, ref} = Node.spawn_monitor(NODE, Moebi, :wait, [])
        send(pid, {:shutdown, :done})
        receive do {:DOWN, ^ref, :process, ^pid, reason} -> reason after 5000 -> :timeout end";
    assert_eq!(c.same_ok(monitored), "{:shutdown, :done}");

    // :erlang.spawn_opt/5 with [:link, :monitor], the caller trapping exits.
    let linked_and_monitored = "Process.flag(:trap_exit, true)
        {pid, ref} = :erlang.spawn_opt(NODE, Moebi, :wait, [], [:link, :monitor])
        send(pid, :boom)
        exit = receive do {:EXIT, ^pid, r} -> r after 5000 -> :timeout end
        down = receive do {:DOWN, ^ref, :process, ^pid, r} -> r after 5000 -> :timeout end
        Process.flag(:trap_exit, false)
        {exit, down}";
    assert_eq!(c.same_ok(linked_and_monitored), "{:boom, :boom}");

    // The seed's functions fail as Elixir's: IO.puts of a term with no String.Chars, and
    // a reply address that is no node, after printing.
    let failing = "sup = {Chat.TaskSupervisor, NODE}
        run = fn f, args ->
          t = Task.Supervisor.async_nolink(sup, Chat, f, args)
          case Task.yield(t, 5000) do
            {:exit, {reason, [{m, f, _, _} | _]}} -> {reason, m, f}
            other -> other
          end
        end
        {run.(:receive_message, [{1}]), run.(:receive_message_for_moebi, [\"printed first\", \"no node\"])}";
    assert_eq!(
        c.same_ok(failing),
        "{{%Protocol.UndefinedError{protocol: String.Chars, value: {1}, description: \"\"}, String.Chars, :impl_for!}, \
         {:function_clause, GenServer, :whereis}}"
    );

    // A name taken: `register/2`'s badarg, its frame and then the function's, where
    // its `?` took it out (as the BEAM's stack has the BIF and the caller).
    let taken = Cluster::for_node(
        "{pid, ref} = Node.spawn_monitor(NODE, Moebi, :wait, [:echo])
        receive do {:DOWN, ^ref, :process, ^pid, r} -> r after 5000 -> :timeout end",
        &c.moebi_name,
    );
    let taken = c.alex.eval(&taken);
    assert!(
        taken.starts_with("{:badarg, [{:erlang, :register, [:echo, #PID<")
            && taken
                .contains("[error_info: %{module: :erl_erts_errors}]}, {Moebi, :wait, 1, [file: ")
            && taken.contains("examples/moebi.rs"),
        "{taken}"
    );

    // A function nobody registered: the process exits {:undef, [{M, F, Args, []}]}.
    let undef_linked = "Process.flag(:trap_exit, true)
        pid = Node.spawn_link(NODE, Chat, :no_such_fun, [\"hi\"])
        reason = receive do {:EXIT, ^pid, r} -> r after 5000 -> :timeout end
        Process.flag(:trap_exit, false)
        reason";
    assert_eq!(
        c.same_ok(undef_linked),
        "{:undef, [{Chat, :no_such_fun, [\"hi\"], []}]}"
    );
    let undef_monitored = "{pid, ref} = Node.spawn_monitor(NODE, NoSuchModule, :f, [])
        receive do {:DOWN, ^ref, :process, ^pid, r} -> r after 5000 -> :timeout end";
    assert_eq!(
        c.same_ok(undef_monitored),
        "{:undef, [{NoSuchModule, :f, [], []}]}"
    );

    // As on the BEAM, the crash is reported on the terminal of the group leader's node.
    for node in [&c.kate_name, &c.moebi_name] {
        let report = format!("on node :{node} raised an exception");
        assert!(
            c.alex.wait_for_output_count(&report, 2, WAIT),
            "alex shows the crash reports of {node}:\n{}",
            c.alex.output()
        );
    }
    assert!(c
        .alex
        .output()
        .contains("function Chat.no_such_fun/1 is undefined"));
    // And only there: a BEAM node's default handler drops an event whose group leader
    // is remote, and so does Moebi's log.
    assert!(
        !c.moebi().log().contains("Error in process"),
        "{}",
        c.moebi().log()
    );
    c.assert_moebi_still_serves();
}

#[test]
fn monitors_see_the_real_exit_reason_or_noproc() {
    let c = Cluster::start();

    let by_pid = "flush()
        pid = Node.spawn(NODE, Moebi, :wait, [])
        ref = Process.monitor(pid)
        send(pid, {:shutdown, :bye})
        receive do {:DOWN, ^ref, :process, ^pid, r} -> r after 5000 -> :timeout end";
    assert_eq!(c.same_ok(by_pid), "{:shutdown, :bye}");

    // Monitor by {name, node}: the DOWN names the process {name, node}.
    let by_name = "flush()
        Node.spawn(NODE, Moebi, :wait, [:waiter])
        Enum.find(1..250, fn _ -> is_pid(:erpc.call(NODE, :erlang, :whereis, [:waiter])) or Process.sleep(20) end)
        ref = Process.monitor({:waiter, NODE})
        send({:waiter, NODE}, :bye)
        receive do {:DOWN, ^ref, :process, object, r} -> {object, r} after 5000 -> :timeout end";
    assert_eq!(c.same_ok(by_name), "{{:waiter, NODE}, :bye}");

    // What does not exist: a dead pid, a name nobody registered.
    let noproc = "flush()
        {pid, ref} = Node.spawn_monitor(NODE, Moebi, :wait, [])
        send(pid, :bye)
        receive do {:DOWN, ^ref, :process, ^pid, _} -> :ok after 5000 -> :timeout end
        ref = Process.monitor(pid)
        dead = receive do {:DOWN, ^ref, :process, ^pid, r} -> r after 5000 -> :timeout end
        ref = Process.monitor({:nobody, NODE})
        nobody = receive do {:DOWN, ^ref, :process, o, r} -> {o, r} after 5000 -> :timeout end
        {dead, nobody}";
    assert_eq!(c.same_ok(noproc), "{:noproc, {{:nobody, NODE}, :noproc}}");

    // exit/2: :normal is ignored by a process not trapping exits, anything else kills it.
    let exit2 = "flush()
        {pid, ref} = Node.spawn_monitor(NODE, Moebi, :wait, [])
        Process.exit(pid, :normal)
        Process.exit(pid, :shutdown)
        receive do {:DOWN, ^ref, :process, ^pid, r} -> r after 5000 -> :timeout end";
    assert_eq!(c.same_ok(exit2), ":shutdown");

    // Signals from one process arrive in order: a monitor or link that follows an exit
    // signal finds the process gone (`noproc`), however soon after it comes.
    let after_exit = "flush()
        Process.flag(:trap_exit, true)
        seen = for reason <- [:kill, :boom], _ <- 1..20 do
          pid = Node.spawn(NODE, Moebi, :wait, [])
          ref = Process.monitor(pid)
          Process.exit(pid, reason)
          again = Process.monitor(pid)
          Process.link(pid)
          first = receive do {:DOWN, ^ref, :process, _, r} -> r after 5000 -> :timeout end
          second = receive do {:DOWN, ^again, :process, _, r} -> r after 5000 -> :timeout end
          linked = receive do {:EXIT, ^pid, r} -> r after 5000 -> :timeout end
          {first, second, linked}
        end
        Process.flag(:trap_exit, false)
        Enum.frequencies(seen)";
    assert_eq!(
        c.same_ok(after_exit),
        "%{{:boom, :noproc, :noproc} => 20, {:killed, :noproc, :noproc} => 20}"
    );
    c.assert_moebi_still_serves();
}

#[test]
fn links_carry_exits_both_ways_and_unlink_cuts_them() {
    let c = Cluster::start();

    let trapped = "flush()
        Process.flag(:trap_exit, true)
        pid = Node.spawn(NODE, Moebi, :wait, [])
        Process.link(pid)
        send(pid, :boom)
        boom = receive do {:EXIT, ^pid, r} -> r after 5000 -> :timeout end
        Process.link(pid)
        noproc = receive do {:EXIT, ^pid, r} -> r after 5000 -> :timeout end
        killer = Node.spawn(NODE, Moebi, :wait, [])
        Process.link(killer)
        Process.exit(killer, :kill)
        killed = receive do {:EXIT, ^killer, r} -> r after 5000 -> :timeout end
        Process.flag(:trap_exit, false)
        {boom, noproc, killed}";
    assert_eq!(c.same_ok(trapped), "{:boom, :noproc, :killed}");

    // Not trapping: the linked caller dies with the Rust process's reason.
    let killed_caller = "pid = Node.spawn(NODE, Moebi, :wait, [])
        Process.link(pid)
        send(pid, {:shutdown, :linked})
        Process.sleep(5000)
        :survived";
    let died = c
        .same_as_beam(killed_caller)
        .expect_err("the linked caller is killed");
    assert!(died.contains("{:shutdown, :linked}"), "{died}");

    // Process.unlink (UNLINK_ID): the process's later exit no longer reaches the caller.
    let unlinked = "flush()
        me = self()
        pid = Node.spawn(NODE, Moebi, :wait, [])
        Process.link(pid)
        Process.unlink(pid)
        ref = Process.monitor(pid)
        send(pid, :boom)
        down = receive do {:DOWN, ^ref, :process, ^pid, r} -> r after 5000 -> :timeout end
        Process.sleep(300)
        {down, self() == me, Process.info(self(), :links), flush()}";
    assert_eq!(c.same_ok(unlinked), "{:boom, true, {:links, []}, []}");
    c.assert_moebi_still_serves();
}

#[test]
fn noconnection_when_the_node_goes_away() {
    let mut c = Cluster::start();
    let setup = "flush()
        Process.flag(:trap_exit, true)
        pid = Node.spawn(NODE, Moebi, :wait, [])
        Process.link(pid)
        by_pid = Process.monitor(pid)
        by_name = Process.monitor({:echo, NODE})
        :ok";
    let collect = "got = for _ <- 1..3 do
          receive do
            {:EXIT, ^pid, r} -> {:exit, r}
            {:DOWN, ^by_pid, :process, ^pid, r} -> {:down, r}
            {:DOWN, ^by_name, :process, {:echo, _}, r} -> {:down_by_name, r}
          after 5000 -> :timeout
          end
        end
        Process.flag(:trap_exit, false)
        Enum.sort(got)";
    let expected = "[down: :noconnection, down_by_name: :noconnection, exit: :noconnection]";

    // The BEAM node kate goes away (killed)...
    let kate_name = c.kate_name.clone();
    assert_eq!(c.alex.eval(&Cluster::for_node(setup, &kate_name)), ":ok");
    drop(c.kate.take());
    assert_eq!(c.alex.eval(collect), expected);
    // ... and so does Moebi: the same signals.
    let moebi_name = c.moebi_name.clone();
    assert_eq!(c.alex.eval(&Cluster::for_node(setup, &moebi_name)), ":ok");
    drop(c.moebi.take());
    assert_eq!(c.alex.eval(collect), expected);
    assert_eq!(
        c.alex
            .eval(&format!("Node.list() |> Enum.member?(:\"{moebi_name}\")")),
        "false"
    );
}

#[test]
fn genserver_calls_and_casts_to_a_rust_genserver() {
    let c = Cluster::start();

    assert_eq!(
        c.same_ok("GenServer.call({:echo, NODE}, {:hello, [1, 2.5, \"three\", %{four: 4}, self()]}) |> elem(1) |> Enum.take(4)"),
        "[1, 2.5, \"three\", %{four: 4}]"
    );
    assert_eq!(
        c.same_ok("GenServer.call({:echo, NODE}, :ping, 1000)"),
        ":ping"
    );
    assert_eq!(
        c.same_ok("flush(); GenServer.cast({:echo, NODE}, {self(), :cast_back}); next_message()"),
        ":cast_back"
    );
    assert_eq!(
        c.same_ok("flush(); send({:echo, NODE}, {self(), :info_back}); next_message()"),
        ":info_back"
    );
    let pid_call = "pid = :erpc.call(NODE, :erlang, :whereis, [:echo])
        {GenServer.call(pid, :by_pid), node(pid) == NODE}";
    assert_eq!(c.same_ok(pid_call), "{:by_pid, true}");

    // A name nobody registered: the caller exits {:noproc, {GenServer, :call, ...}}.
    let noproc = "try do
          GenServer.call({:nobody, NODE}, :hello)
        catch
          :exit, reason -> {:exit, reason}
        end";
    assert_eq!(
        c.same_ok(noproc),
        "{:exit, {:noproc, {GenServer, :call, [{:nobody, NODE}, :hello, 5000]}}}"
    );
    let uncaught = c
        .same_as_beam("GenServer.call({:nobody, NODE}, :hello)")
        .expect_err("the call exits");
    assert!(uncaught.contains("no process"), "{uncaught}");

    // GenServer.stop (the sys protocol's terminate): the server exits with the reason.
    let stop = "ref = Process.monitor({:echo, NODE})
        stopped = GenServer.stop({:echo, NODE}, {:shutdown, :bye}, 5000)
        down = receive do {:DOWN, ^ref, :process, _, r} -> r after 5000 -> :timeout end
        after_stop = try do GenServer.call({:echo, NODE}, :x) catch :exit, {r, _} -> r end
        {stopped, down, after_stop}";
    assert_eq!(c.same_ok(stop), "{:ok, {:shutdown, :bye}, :noproc}");
    c.assert_moebi_still_serves();
}

/// `:sys.trace/2` on a GenServer and on a `Task.Supervisor`: each event printed on the
/// traced node's terminal, as gen_server's debug options print them; `false` ends it.
#[test]
fn sys_trace_prints_the_events_as_a_beam_node_does() {
    let c = Cluster::start();
    let scenario = ":ok = :sys.trace({:echo, NODE}, true)
        {:hi, 1} = GenServer.call({:echo, NODE}, {:hi, 1})
        :ok = :sys.trace({:echo, NODE}, false)
        {:hi, 2} = GenServer.call({:echo, NODE}, {:hi, 2})
        :ok = :sys.trace({Chat.TaskSupervisor, NODE}, true)
        [] = Task.Supervisor.children({Chat.TaskSupervisor, NODE})
        :sys.no_debug({Chat.TaskSupervisor, NODE})";
    assert_eq!(c.same_ok(scenario), ":ok");
    let kate = c.kate.as_ref().expect("kate runs");
    for line in [
        "*DBG* echo got call {hi,1} from <",
        "*DBG* echo sent {hi,1} to <",
        "*DBG* 'Elixir.Chat.TaskSupervisor' got call which_children from <",
        "*DBG* 'Elixir.Chat.TaskSupervisor' sent [] to <",
    ] {
        assert!(
            kate.wait_for_output(line, WAIT),
            "kate: {line}\n{}",
            kate.output()
        );
        let deadline = std::time::Instant::now() + WAIT;
        while !c.moebi().output().contains(line) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            c.moebi().output().contains(line),
            "moebi: {line}\n{}",
            c.moebi().output()
        );
    }
    // Off: the second call printed nothing.
    assert!(!kate.output().contains("{hi,2}"), "{}", kate.output());
    assert!(
        !c.moebi().output().contains("{hi,2}"),
        "{}",
        c.moebi().output()
    );
}

#[test]
fn rpc_and_erpc_as_on_a_beam_node() {
    let c = Cluster::start();

    // What a test harness or an operator's console asks first.
    let harness = ":pong = Node.ping(NODE)
        r = fn m, f, a -> :rpc.call(NODE, m, f, a) end
        os_pid = r.(:os, :getpid, [])
        {is_list(os_pid) and List.to_string(os_pid) == r.(System, :pid, []),
         is_pid(r.(Process, :whereis, [Chat.TaskSupervisor])), r.(Process, :whereis, [:no_such_name]),
         node() in r.(Node, :list, []), r.(Node, :list, [:this]) == [NODE],
         r.(:timer, :sleep, [10]), r.(Process, :sleep, [10]), r.(:net_adm, :ping, [node()]),
         r.(:code, :ensure_loaded, [Chat]), r.(:code, :ensure_loaded, [:no_such_module]),
         match?({:file, _}, r.(:code, :is_loaded, [Chat])), r.(:code, :is_loaded, [:no_such_module]),
         r.(:erlang, :function_exported, [Chat, :receive_message, 1]),
         r.(:erlang, :function_exported, [Chat, :no_such_function, 1]),
         is_pid(r.(:erlang, :group_leader, [])),
         r.(Node, :self, []) == NODE, r.(Kernel, :node, []) == NODE,
         r.(Kernel, :node, [r.(Process, :whereis, [Chat.TaskSupervisor])]) == NODE,
         r.(Process, :alive?, [r.(Process, :whereis, [Chat.TaskSupervisor])])}";
    assert_eq!(
        c.same_ok(harness),
        "{true, true, nil, true, true, :ok, :ok, :pong, {:module, Chat}, {:error, :nofile}, true, false, true, false, true, true, true, true, true}"
    );

    // What scripts ask any node over rpc: the clocks, a reference, the cookie, a
    // connection, the host name, and Elixir's names for Erlang's functions.
    let everyday = "r = fn m, f, a -> :rpc.call(NODE, m, f, a) end
        now = System.system_time(:millisecond)
        echo = r.(Process, :whereis, [:echo])
        {abs(r.(:erlang, :system_time, [:millisecond]) - now) < 5_000,
         abs(div(r.(:os, :system_time, []), 1_000_000) - now) < 5_000,
         abs(r.(System, :system_time, [:second]) - div(now, 1000)) < 5,
         is_integer(r.(:erlang, :monotonic_time, [])), is_integer(r.(System, :monotonic_time, [:millisecond])),
         r.(:erlang, :system_time, [:fortnight]),
         node(r.(:erlang, :make_ref, [])) == NODE, r.(:erlang, :get_cookie, []) == Node.get_cookie(),
         r.(Node, :get_cookie, []) == Node.get_cookie(),
         r.(:net_kernel, :connect_node, [node()]), r.(Node, :connect, [node()]),
         r.(:net_kernel, :get_net_ticktime, []), r.(Node, :alive?, []), r.(Node, :ping, [node()]),
         match?({:ok, [_ | _]}, r.(:inet, :gethostname, [])),
         r.(Process, :info, [echo, :registered_name]), r.(Process, :info, [echo]) |> Keyword.get(:registered_name),
         echo in r.(Process, :list, []), :echo in r.(Process, :registered, []),
         r.(Process, :send, [:echo, :hi, []]), r.(:erlang, :send, [:echo, :hi, [:noconnect]]),
         is_pid(r.(Process, :group_leader, [])),
         r.(GenServer, :whereis, [:echo]) == echo, r.(GenServer, :whereis, [:nobody]),
         r.(GenServer, :whereis, [{:echo, NODE}]) == echo, r.(GenServer, :whereis, [{:x, :elsewhere@nohost}]),
         r.(GenServer, :whereis, [{:global, :nobody}]), r.(GenServer, :whereis, [echo]) == echo}";
    assert_eq!(
        c.same_ok(everyday),
        "{true, true, true, true, true, {:badrpc, {:EXIT, {:badarg, [{:erlang, :system_time, [:fortnight], [error_info: %{module: :erl_erts_errors}]}]}}}, \
         true, true, true, true, true, 60, true, :pong, true, {:registered_name, :echo}, :echo, true, true, \
         :ok, :ok, true, true, nil, true, {:x, :elsewhere@nohost}, nil, true}"
    );

    // register/2 and unregister/1 of a process of the node, badarg where taken or
    // not there.
    let registering = "pid = :rpc.call(NODE, :erlang, :spawn, [Moebi, :wait, []])
        bad = &match?({:badrpc, {:EXIT, {:badarg, _}}}, &1)
        r = {:rpc.call(NODE, :erlang, :register, [:reg_test, pid]),
             :rpc.call(NODE, :erlang, :whereis, [:reg_test]) == pid,
             bad.(:rpc.call(NODE, :erlang, :register, [:reg_test, pid])),
             bad.(:rpc.call(NODE, :erlang, :register, [:undefined, pid])),
             :rpc.call(NODE, :erlang, :unregister, [:reg_test]),
             bad.(:rpc.call(NODE, :erlang, :unregister, [:reg_test]))}
        Process.exit(pid, :kill)
        r";
    assert_eq!(
        c.same_ok(registering),
        "{true, true, true, true, true, true}"
    );
    // io:format/3 and put_chars/2 to a device: standard_io is the caller's terminal,
    // user the node's own.
    let devices = ":rpc.call(NODE, :io, :format, [:user, ~c\"on the node's terminal ~p~n\", [1]])
        {:rpc.call(NODE, :io, :format, [:standard_io, ~c\"device ~s~n\", [\"standard_io\"]]),
         :rpc.call(NODE, :io, :put_chars, [:standard_io, \"put_chars/2\\n\"]),
         match?({:badrpc, {:EXIT, {:badarg, _}}}, :rpc.call(NODE, :io, :format, [:no_such_device, ~c\"x\", []]))}";
    assert_eq!(c.same_ok(devices), "{:ok, :ok, true}");
    assert!(
        c.moebi()
            .wait_for_lines("on the node's terminal 1", 1, WAIT),
        "{}",
        c.moebi().output()
    );
    assert!(
        c.alex.wait_for_output("device standard_io\n", WAIT)
            && c.alex.wait_for_output("put_chars/2\n", WAIT),
        "{}",
        c.alex.output()
    );

    // Elixir's Process.info/2: `{:registered_name, []}` for a process with no name,
    // `nil` for one that has ended.
    let info = "pid = :rpc.call(NODE, :erlang, :spawn, [Moebi, :wait, []])
        unnamed = :rpc.call(NODE, Process, :info, [pid, :registered_name])
        Process.exit(pid, :kill)
        Process.sleep(100)
        {unnamed, :rpc.call(NODE, Process, :info, [pid, :registered_name]),
         :rpc.call(NODE, Process, :info, [pid]), :rpc.call(NODE, Process, :info, [pid, :links])}";
    assert_eq!(c.same_ok(info), "{{:registered_name, []}, nil, nil, nil}");

    // What an operator's tools ask first (observer_cli, LiveDashboard): the BEAM's
    // shapes, badarg for a key it does not know.
    let operator = "m = :rpc.call(NODE, :erlang, :memory, [])
        {Keyword.keys(m), is_integer(m[:total]) and m[:total] > 0,
         is_integer(:rpc.call(NODE, :erlang, :memory, [:total])),
         :rpc.call(NODE, :erlang, :memory, [[:ets, :code]]) |> Keyword.keys(),
         is_integer(:rpc.call(NODE, :erlang, :system_info, [:process_count])),
         :rpc.call(NODE, :erlang, :system_info, [:atom_limit]),
         match?({t, _} when is_integer(t), :rpc.call(NODE, :erlang, :statistics, [:wall_clock])),
         is_integer(:rpc.call(NODE, :erlang, :statistics, [:run_queue])),
         :rpc.call(NODE, :erlang, :garbage_collect, []),
         match?({:badrpc, {:EXIT, {:badarg, [{:erlang, :memory, [:nope], [error_info: _]} | _]}}},
                :rpc.call(NODE, :erlang, :memory, [:nope])),
         match?({:badrpc, {:EXIT, {:badarg, [{:erlang, :system_info, [:nope], [error_info: _]} | _]}}},
                :rpc.call(NODE, :erlang, :system_info, [:nope]))}";
    assert_eq!(
        c.same_ok(operator),
        "{[:total, :processes, :processes_used, :system, :atom, :atom_used, :binary, :code, :ets], true, true, [:ets, :code], true, 1048576, true, true, true, true, true}"
    );
    // Its schedulers are the threads that run its processes: Moebi's one (`--threads
    // 1`), as `+S 1` gives a BEAM node one.
    let schedulers = Cluster::for_node(
        ":rpc.call(NODE, :erlang, :system_info, [:schedulers_online])",
        &c.moebi_name,
    );
    assert_eq!(c.alex.eval(&schedulers).trim(), "1");
    // The rest of what observer_cli, etop and recon read: the time since the last
    // call, atoms taken no less than used, per-scheduler lists, what is not enabled;
    // a process spawned over rpc known by what it runs, system processes as the
    // gen_servers they are (in OTP 25 to 27's loop, /7; OTP 29's is /5).
    let tools = "stats = fn key -> :rpc.call(NODE, :erlang, :statistics, [key]) end
        {_, _} = stats.(:wall_clock)
        Process.sleep(300)
        {total, since} = stats.(:wall_clock)
        m = :rpc.call(NODE, :erlang, :memory, [])
        pid = :rpc.call(NODE, :erlang, :spawn, [Moebi, :wait, []])
        info = :rpc.call(NODE, Process, :info, [pid, [:initial_call, :current_stacktrace]])
        Process.exit(pid, :kill)
        rex = :rpc.call(NODE, :erlang, :whereis, [:rex])
        {since >= 250 and since < total, m[:atom] >= m[:atom_used],
         is_list(stats.(:run_queue_lengths)), stats.(:scheduler_wall_time),
         is_list(stats.(:microstate_accounting)), info[:initial_call],
         is_list(info[:current_stacktrace]) and info[:current_stacktrace] != [],
         match?({:current_function, {:gen_server, :loop, _}},
                :rpc.call(NODE, Process, :info, [rex, :current_function]))}";
    assert_eq!(
        c.same_ok(tools),
        "{true, true, true, :undefined, true, {Moebi, :wait, 0}, true, true}"
    );

    // A registry of another module than `global` is asked, as `GenServer.whereis/1`
    // asks it: `undef` for one that is not there.
    assert_eq!(
        c.same_ok(
            "match?({:badrpc, {:EXIT, {:undef, [{NoSuchRegistry, :whereis_name, [:x], _} | _]}}},
               :rpc.call(NODE, GenServer, :whereis, [{:via, NoSuchRegistry, :x}]))"
        ),
        "true"
    );

    // The function's output goes to the caller's group leader, alex's terminal.
    assert_eq!(
        c.same_ok(":rpc.call(NODE, Chat, :receive_message, [\"hi from rpc\"])"),
        ":ok"
    );
    assert_eq!(
        c.same_ok(":erpc.call(NODE, Chat, :receive_message, [\"hi from erpc\"])"),
        ":ok"
    );
    assert_eq!(
        c.same_ok(":erpc.cast(NODE, Chat, :receive_message, [\"hi from erpc cast\"])"),
        ":ok"
    );
    // io:format and put_chars over rpc print there too; a bad format is badarg.
    assert_eq!(
        c.same_ok(
            "{:rpc.call(NODE, :io, :format, [~c\"io:format from rpc ~p~n\", [1]]),
              :rpc.call(NODE, :io, :format, [~c\"io:format w ~w ~w tp ~tp~n\", [\"ab\", ~c\"ab\", \"\\u03b1\"]]),
              :rpc.call(NODE, :io, :format, [~c\"long ~p~n\", [Enum.to_list(1..40)]]),
              :rpc.call(NODE, :io, :format, [~c\"depth ~P ~lp~n\", [Enum.to_list(1..20), 5, [~c\"abc\"]]]),
              :rpc.call(NODE, :io, :put_chars, [\"put_chars from rpc\\n\"]),
              match?({:badrpc, {:EXIT, {:badarg, _}}}, :rpc.call(NODE, :io, :format, [~c\"~p ~p~n\", [1]])),
              :rpc.call(NODE, IO, :puts, [[\"IO.puts from \", ~c\"rpc\"]]),
              :rpc.call(NODE, IO, :write, [:io_write_from_rpc]),
              :rpc.call(NODE, IO, :puts, [\"\"]),
              :rpc.call(NODE, IO, :puts, [:stdio, \"IO.puts to stdio from rpc\"]),
              :rpc.call(NODE, IO, :puts, [:stderr, \"IO.puts to stderr from rpc\"]),
              :rpc.call(NODE, IO, :inspect, [%{a: [1, \"x\"]}, [label: \"inspected\"]])}"
        ),
        "{:ok, :ok, :ok, :ok, :ok, true, :ok, :ok, :ok, :ok, :ok, %{a: [1, \"x\"]}}"
    );
    // proc_lib:spawn_link/4 with a node, the OTP way to spawn there: it runs the
    // function, with the caller's group leader, and exits normal.
    assert_eq!(
        c.same_ok(
            "Process.flag(:trap_exit, true)
             pid = :proc_lib.spawn_link(NODE, Chat, :receive_message, [\"hi from proc_lib\"])
             receive do {:EXIT, ^pid, reason} -> reason after 10_000 -> :no_exit end"
        ),
        ":normal"
    );
    for line in [
        "hi from rpc\n",
        "hi from erpc\n",
        "hi from erpc cast\n",
        "io:format from rpc 1\n",
        "io:format w <<97,98>> [97,98] tp <<206,177>>\n",
        // Formatted where the group leader is, as a BEAM caller's text is: `~p` broken
        // at 80 columns, `~P` cut at its depth, `~lp` with no strings.
        "long [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,\n      28,29,30,31,32,33,34,35,36,37,38,39,40]\n",
        "depth [1,2,3,4|...] [[97,98,99]]\n",
        "put_chars from rpc\n",
        "IO.puts from rpc\n",
        "io_write_from_rpc\n",
        "IO.puts to stdio from rpc\n",
        "inspected: %{a: [1, \"x\"]}\n",
        "hi from proc_lib\n",
    ] {
        assert!(
            c.alex.wait_for_output_count(line, 2, WAIT),
            "alex prints {line:?} for both:\n{}",
            c.alex.output()
        );
        assert!(
            !c.moebi().output().contains(line.trim()),
            "{}",
            c.moebi().output()
        );
    }

    assert_eq!(c.same_ok(":rpc.call(NODE, :erlang, :node, [])"), "NODE");
    assert_eq!(
        c.same_ok(":rpc.call(NODE, Chat, :no_such_fun, [])"),
        "{:badrpc, {:EXIT, {:undef, [{Chat, :no_such_fun, [], []}]}}}"
    );
    let erpc_undef = "try do
          :erpc.call(NODE, Chat, :no_such_fun, [])
        catch
          kind, reason -> {kind, reason}
        end";
    assert_eq!(
        c.same_ok(erpc_undef),
        "{:error, {:exception, :undef, [{Chat, :no_such_fun, [], []}]}}"
    );
    let raised = c
        .same_as_beam(":erpc.call(NODE, Chat, :no_such_fun, [])")
        .expect_err("erpc raises");
    assert!(
        raised.contains("Erlang error: {:exception, :undef, [{Chat, :no_such_fun, [], []}]}"),
        "{raised}"
    );
    assert_eq!(
        c.same_ok(":rpc.call(NODE, :erlang, :whereis, [:echo]) |> is_pid()"),
        "true"
    );
    // The BIFs a script asks a node about itself, and raises through to test its own
    // error handling, answer as on a BEAM node.
    assert_eq!(
        c.same_ok(
            "{:rpc.call(NODE, :erlang, :registered, []) |> Enum.member?(:echo),
              :rpc.call(NODE, :erlang, :processes, []) |> Enum.member?(:rpc.call(NODE, :erlang, :whereis, [:echo])),
              node(:rpc.call(NODE, :erlang, :self, [])) == NODE,
              :rpc.call(NODE, :erlang, :is_alive, [])}"
        ),
        "{true, true, true, true}"
    );
    let raises = "for {f, a} <- [exit: {:shutdown, :closed}, throw: :ball, error: :boom] do
          try do
            :erpc.call(NODE, :erlang, f, [a])
          catch
            :error, {:exception, reason, _stack} -> {:error, reason}
            kind, reason -> {kind, reason}
          end
        end";
    assert_eq!(
        c.same_ok(raises),
        "[exit: {:exception, {:shutdown, :closed}}, throw: :ball, error: :boom]"
    );
    assert_eq!(
        c.same_ok("for f <- [:exit, :throw], do: :rpc.call(NODE, :erlang, f, [:x])"),
        "[{:badrpc, {:EXIT, :x}}, :x]"
    );
    // A BIF's error has the BIF's frame, with the `error_info` that has the caller's
    // shell say which argument was wrong.
    let bif_errors = "for {f, a} <- [error: [:boom], is_process_alive: [self()], whereis: [1],
                        process_info: [self(), :links], nodes: [:bad], node: [1]] do
          try do
            :erpc.call(NODE, :erlang, f, a)
          catch
            :error, {:exception, reason, stack} -> {reason, stack}
          end
        end";
    assert_eq!(
        c.same_ok(bif_errors),
        "[boom: [{:erlang, :error, [:boom], []}], \
         badarg: [{:erlang, :is_process_alive, [#PID<>], [error_info: %{module: :erl_erts_errors}]}], \
         badarg: [{:erlang, :whereis, [1], [error_info: %{module: :erl_erts_errors}]}], \
         badarg: [{:erlang, :process_info, [#PID<>, :links], [error_info: %{module: :erl_erts_errors}]}], \
         badarg: [{:erlang, :nodes, [:bad], [error_info: %{module: :erl_erts_errors}]}], \
         badarg: [{:erlang, :node, [1], [error_info: %{module: :erl_erts_errors}]}]]"
    );
    assert_eq!(
        c.same_ok(":rpc.call(NODE, :erlang, :node, [self()]) == node()"),
        "true"
    );
    // `erlang:apply/2,3`, which runs what a caller gives as a fun: an export fun runs
    // the function, one of a module not there fails `undef` with its frame, then
    // `apply`'s; a term that is no fun is a `badfun`.
    let applied = "raised = fn call ->
          try do call.() catch :error, {:exception, reason, stack} -> {reason, stack} end
        end
        {:erpc.call(NODE, &:erlang.node/0) == NODE,
         :erpc.call(NODE, :erlang, :apply, [Chat, :receive_message, [\"applied\"]]),
         raised.(fn -> :erpc.call(NODE, &NoSuch.f/0) end),
         raised.(fn -> :erpc.call(NODE, :erlang, :apply, [NoSuch, :f, [1]]) end),
         raised.(fn -> :erpc.call(NODE, :erlang, :apply, [1, []]) end),
         Task.Supervisor.async_nolink({Chat.TaskSupervisor, NODE}, &:erlang.node/0) |> Task.await() == NODE}";
    assert_eq!(
        c.same_ok(applied),
        "{true, :ok, {:undef, [{NoSuch, :f, [], []}, {:erlang, :apply, 2, []}]}, \
         {:undef, [{NoSuch, :f, [1], []}, {:erlang, :apply, 3, []}]}, \
         {{:badfun, 1}, [{:erlang, :apply, 2, []}]}, true}"
    );
    // `process_info/1,2` of a registered process and `spawn/3`, as a script asks them.
    let info = "p = :rpc.call(NODE, :erlang, :whereis, [:echo])
        items = [:error_handler, :message_queue_data, :suspending, :priority, :registered_name]
        {:erpc.call(NODE, :erlang, :process_info, [p, items]),
         :erpc.call(NODE, :erlang, :process_info, [p]) |> Keyword.keys(),
         node(:erpc.call(NODE, :erlang, :spawn, [Chat, :receive_message, [\"spawned\"]])) == NODE}";
    assert_eq!(
        c.same_ok(info),
        "{[error_handler: :error_handler, message_queue_data: :on_heap, suspending: [], \
         priority: :normal, registered_name: :echo], [:registered_name, :current_function, \
         :initial_call, :status, :message_queue_len, :links, :dictionary, :trap_exit, \
         :error_handler, :priority, :group_leader, :total_heap_size, :heap_size, :stack_size, \
         :reductions, :garbage_collection, :suspending], true}"
    );
    // The items a debugging tool asks for beside those, and the settings it shows.
    let more_info = "p = :rpc.call(NODE, :erlang, :whereis, [:echo])
        info = :erpc.call(NODE, :erlang, :process_info, [p, [:last_calls, :catchlevel, :garbage_collection,
          :sequential_trace_token, :garbage_collection_info]])
        {Keyword.take(info, [:last_calls, :sequential_trace_token]), is_integer(info[:catchlevel]),
         Keyword.keys(info[:garbage_collection]), Keyword.keys(info[:garbage_collection_info])}";
    assert_eq!(
        c.same_ok(more_info),
        "{[last_calls: false, sequential_trace_token: []], true, \
         [:max_heap_size, :min_bin_vheap_size, :min_heap_size, :fullsweep_after, :minor_gcs], \
         [:old_heap_block_size, :heap_block_size, :mbuf_size, :recent_size, :stack_size, \
         :old_heap_size, :heap_size, :bin_vheap_size, :bin_vheap_block_size, :bin_old_vheap_size, \
         :bin_old_vheap_block_size]}"
    );
    // A BEAM process linked to one here that crashes: OTP 29's `proc_lib` asks this
    // node about its neighbour for the crash report (`{dictionary, Key}` items, OTP 26
    // on), and the process exits with its own reason, not the `badarg` of a report it
    // could not make.
    let neighbour = "{:ok, agent} = Agent.start(fn ->
          Process.link(Node.spawn(NODE, :timer, :sleep, [:infinity])); 0 end)
        ref = Process.monitor(agent)
        Agent.cast(agent, fn _ -> raise ArgumentError, \"agent boom\" end)
        receive do {:DOWN, ^ref, :process, _, {e, _}} -> e after 5000 -> :none end";
    assert_eq!(
        c.same_ok(neighbour),
        "%ArgumentError{message: \"agent boom\"}"
    );
    // A process asleep in `timer:sleep/1` keeps what is sent to it; timers set over rpc.
    let asleep = "p = Node.spawn(NODE, :timer, :sleep, [:infinity])
        for i <- 1..3, do: send(p, {:m, i})
        queued = Enum.find_value(1..100, fn _ ->
          case :erpc.call(NODE, :erlang, :process_info, [p, :message_queue_len]) do
            {:message_queue_len, 3} = q -> q
            _ -> Process.sleep(20); nil
          end
        end)
        Process.exit(p, :kill)
        t = :erpc.call(NODE, :erlang, :send_after, [60_000, :echo, :never])
        left = :erpc.call(NODE, :erlang, :read_timer, [t])
        cancelled = :erpc.call(NODE, :erlang, :cancel_timer, [t])
        {queued, left in 50_000..60_000, cancelled in 50_000..60_000,
         :erpc.call(NODE, :erlang, :read_timer, [t]),
         is_reference(:erpc.call(NODE, :erlang, :start_timer, [0, :echo, :ignored])),
         try do :erpc.call(NODE, :erlang, :send_after, [10, self(), :x]) catch :error, {:exception, r, _} -> r end}";
    assert_eq!(
        c.same_ok(asleep),
        "{{:message_queue_len, 3}, true, true, false, true, :badarg}"
    );
    // Options: `send/3`'s and remote spawn's, good and bad.
    let options = "raised = fn f -> try do f.() catch :error, r -> r end end
        {:erpc.call(NODE, :erlang, :send, [self(), :x, [:noconnect, :nosuspend]]),
         receive do :x -> :got after 5000 -> :none end,
         raised.(fn -> :erpc.call(NODE, :erlang, :send, [self(), :x, [:bogus]]) end),
         raised.(fn -> :erpc.call(NODE, :erlang, :send, [self(), :x, :bogus]) end),
         raised.(fn -> :erlang.spawn_opt(NODE, Chat, :receive_message, [\"x\"], [:bogus]) end),
         raised.(fn -> :erlang.spawn_opt(NODE, Chat, :receive_message, [\"x\"], [{:priority, :ultra}]) end),
         is_pid(:erlang.spawn_opt(NODE, Chat, :receive_message, [\"spawned with options\"],
           [{:priority, :high}, {:fullsweep_after, 10}, {:message_queue_data, :off_heap}]))}";
    let options = c.same_ok(options);
    assert!(options.starts_with("{:ok, :got, "), "{options}");
    assert!(options.ends_with(", true}"), "{options}");
    let release = c
        .alex
        .eval(":erlang.system_info(:otp_release) |> List.to_integer()");
    let release: u32 = release.parse().expect("a release number");
    if release >= 28 {
        // Priority messages (OTP 28) sent over rpc, `exit/3`, and labels (OTP 27).
        let newer = "a = :erlang.alias([:priority])
            send(self(), :o1)
            send(self(), :o2)
            sent = :erpc.call(NODE, :erlang, :send, [a, :prio, [:priority]])
            got = for _ <- 1..3, do: (receive do m when m in [:o1, :o2, :prio] -> m after 5000 -> :none end)
            p = Node.spawn(NODE, :timer, :sleep, [:infinity])
            ref = Process.monitor(p)
            Process.set_label(:caller)
            label = {:erpc.call(NODE, :proc_lib, :get_label, [p]),
                     :erpc.call(NODE, Process, :set_label, [:worker]),
                     :erpc.call(NODE, :proc_lib, :get_label, [self()]),
                     :erpc.call(NODE, :proc_lib, :get_label, [:not_a_pid])}
            exited = :erpc.call(NODE, :erlang, :exit, [p, :bye, [:priority]])
            down = receive do {:DOWN, ^ref, :process, _, r} -> r after 5000 -> :none end
            {sent, got, label, exited, down}";
        assert_eq!(
            c.same_ok(newer),
            "{:ok, [:prio, :o1, :o2], {:undefined, :ok, :caller, :undefined}, true, :bye}"
        );
        // `exit/3` to an alias: to a priority alias with `[:priority]`, the `EXIT` of a
        // process trapping exits goes ahead; to a plain alias, in turn; once the alias
        // is gone, nowhere.
        let to_alias = "flush()
            Process.flag(:trap_exit, true)
            prio = :erlang.alias([:priority])
            plain = :erlang.alias()
            send(self(), :m1)
            r1 = :erpc.call(NODE, :erlang, :exit, [prio, :prio_exit, [:priority]])
            r2 = :erpc.call(NODE, :erlang, :exit, [plain, :plain_exit, []])
            :erlang.unalias(plain)
            r3 = :erpc.call(NODE, :erlang, :exit, [plain, :unaliased, []])
            other = :erlang.alias()
            r4 = :erpc.call(NODE, :erlang, :exit, [other, :exit2])
            got = for _ <- 1..4, do: (receive do {:EXIT, _, r} -> r; m when m == :m1 -> m after 2000 -> :none end)
            Process.flag(:trap_exit, false)
            {r1, r2, r3, r4, got, flush()}";
        assert_eq!(
            c.same_ok(to_alias),
            "{true, true, true, true, [:prio_exit, :m1, :plain_exit, :exit2], []}"
        );
    }
    // `nodes/2` (OTP 25.1): the caller as the node sees it, and itself.
    let nodes_info = "{:found, {_, me}} = :erpc.call(NODE, :erlang, :nodes, [:visible, %{node_type: true, connection_id: true}])
           |> Enum.find(fn {n, _} -> n == node() end) |> then(&{:found, &1})
        {me.node_type, is_integer(me.connection_id),
         :erpc.call(NODE, :erlang, :nodes, [:this, %{node_type: true, connection_id: true}]),
         :erpc.call(NODE, :erlang, :nodes, [:this, %{}]),
         try do :erpc.call(NODE, :erlang, :nodes, [:this, %{bogus: true}]) catch :error, {:exception, r, _} -> r end}";
    assert_eq!(
        c.same_ok(nodes_info),
        "{:visible, true, [NODE: %{connection_id: :undefined, node_type: :this}], [NODE: %{}], :badarg}"
    );
    if release >= 26 {
        let items = "p = Node.spawn(NODE, :timer, :sleep, [:infinity])
            items = [{:dictionary, :\"$initial_call\"}, {:dictionary, :\"$process_label\"},
                     :min_heap_size, :fullsweep_after, :async_dist]
            info = :erpc.call(NODE, :erlang, :process_info, [p, items])
            Process.exit(p, :kill)
            info";
        assert_eq!(
            c.same_ok(items),
            "[{{:dictionary, :\"$initial_call\"}, :undefined}, \
             {{:dictionary, :\"$process_label\"}, :undefined}, \
             {:min_heap_size, 233}, {:fullsweep_after, 65535}, {:async_dist, false}]"
        );
    }
    // `send/2` and `exit/2` as the process running the call: to a pid, to `{Name,
    // Node}`, an exit signal; a name nobody registered and a non-pid are `badarg`.
    let signals = "Process.register(self(), :rpc_sink)
        victim = spawn(fn -> receive do _ -> :ok end end)
        ref = Process.monitor(victim)
        sent = {:rpc.call(NODE, :erlang, :send, [{:rpc_sink, node()}, :by_name]),
                :rpc.call(NODE, :erlang, :send, [self(), :by_pid]),
                :rpc.call(NODE, :erlang, :exit, [victim, :bye])}
        got = for _ <- 1..2, do: (receive do m when m in [:by_name, :by_pid] -> m after 5000 -> :none end)
        down = receive do {:DOWN, ^ref, :process, _, r} -> r after 5000 -> :none end
        Process.unregister(:rpc_sink)
        bad = for {f, a} <- [send: [:nobody_here, :x], send: [1, :x], exit: [1, :x]] do
          try do :erpc.call(NODE, :erlang, f, a) catch :error, {:exception, r, s} -> {r, s} end
        end
        {sent, Enum.sort(got), down, bad}";
    assert_eq!(
        c.same_ok(signals),
        "{{:by_name, :by_pid, true}, [:by_name, :by_pid], :bye, \
         [badarg: [{:erlang, :send, [:nobody_here, :x], [error_info: %{module: :erl_erts_errors}]}], \
         badarg: [{:erlang, :send, [1, :x], [error_info: %{module: :erl_erts_errors}]}], \
         badarg: [{:erlang, :exit, [1, :x], [error_info: %{module: :erl_erts_errors}]}]]}"
    );
    // What `rex` itself serves: `rpc:block_call/4`, `rpc:sbcast/3` (to a name there
    // and to one nobody has), `rpc:multi_server_call/3`.
    let rex = "{:rpc.block_call(NODE, Chat, :receive_message, [\"blocked\"]),
         :rpc.block_call(NODE, :erlang, :throw, [:ball]),
         :rpc.block_call(NODE, Chat, :no_such_fun, []),
         :rpc.sbcast([NODE], :echo, :hello), :rpc.sbcast([NODE], :nobody_here, :hello),
         :rpc.multi_server_call([NODE], :nobody_here, :hello)}";
    assert_eq!(
        c.same_ok(rex),
        "{:ok, :ball, {:badrpc, {:EXIT, {:undef, [{Chat, :no_such_fun, [], []}]}}}, \
         {[NODE], []}, {[], [NODE]}, {[], [NODE]}}"
    );
    // A `block_call` holds `rex` until it returns: the next waits for it.
    let blocked = "first = Task.async(fn -> :rpc.block_call(NODE, :timer, :sleep, [1000]) end)
        Process.sleep(300)
        {us, at} = :timer.tc(fn -> :rpc.block_call(NODE, :erlang, :node, []) end)
        {Task.await(first), at == NODE, us > 300_000}";
    assert_eq!(c.same_ok(blocked), "{:ok, true, true}");
    let spawned = "{_, ref} = Node.spawn_monitor(NODE, &NoSuch.f/0)
        receive do {:DOWN, ^ref, :process, _, reason} -> reason after 5000 -> :timeout end";
    assert_eq!(c.same_ok(spawned), "{:undef, [{NoSuch, :f, [], []}]}");
    let not_connected = "for n <- [:nobody@nowhere, \"not an atom\"],
          do: :erpc.call(NODE, :erlang, :disconnect_node, [n])";
    assert_eq!(c.same_ok(not_connected), "[false, false]");
    // `rpc:call` and `erpc:call` run there: another node reached through it, this one,
    // and each failure as rpc gives it or erpc raises it.
    let through = "{:rpc.call(NODE, :rpc, :call, [node(), :erlang, :node, []]),
         :rpc.call(NODE, :erpc, :call, [node(), :erlang, :node, [], 5000]),
         :rpc.call(NODE, :rpc, :call, [NODE, :erlang, :node, []]),
         :rpc.call(NODE, :rpc, :call, [node(), :erlang, :error, [:boom]]),
         :rpc.call(NODE, :rpc, :call, [node(), :erlang, :exit, [:bye]]),
         :rpc.call(NODE, :rpc, :call, [node(), :erlang, :throw, [:ball]]),
         :rpc.call(NODE, :rpc, :call, [node(), :timer, :sleep, [2000], 100]),
         :rpc.call(NODE, :rpc, :call, [:nobody@nowhere, :erlang, :node, []]),
         :rpc.call(NODE, :erpc, :call, [node(), :erlang, :error, [:boom]]),
         :rpc.call(NODE, :erpc, :call, [:nobody@nowhere, :erlang, :node, []])}
         # erpc's own frames, whose lines are each release's.
         |> Tuple.to_list()
         |> Enum.map(fn
           {:badrpc, {:EXIT, {r, [{:erpc, :call, 5, _}, {:erpc, :call, 4, []}]}}} -> {:erpc, r}
           x -> x
         end)";
    let alex = c.alex.node_name();
    assert_eq!(
        c.same_ok(through).replace(&alex, "alex"),
        "[:alex, :alex, NODE, {:badrpc, {:EXIT, {:boom, [{:erlang, :error, [:boom], []}]}}}, \
         {:badrpc, {:EXIT, :bye}}, :ball, {:badrpc, :timeout}, {:badrpc, :nodedown}, \
         {:erpc, {:exception, :boom, [{:erlang, :error, [:boom], []}]}}, \
         {:erpc, {:erpc, :noconnection}}]"
    );
    // `net_kernel:disconnect/1` of a node not connected and of the node itself (the
    // caller's own connection is not dropped here: `global` on every node would then
    // take the caller out of the cluster, the next scenario with it).
    let dropped = "{:rpc.call(NODE, :net_kernel, :disconnect, [:nobody@nowhere]),
         :rpc.call(NODE, :net_kernel, :disconnect, [NODE])}";
    assert_eq!(c.same_ok(dropped), "{false, false}");
    c.assert_moebi_still_serves();
}

#[test]
fn long_names_work_like_short_ones() {
    let epmd = Epmd::start();
    let moebi = RustNode::start_long(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let alex = BeamNode::start_long(&unique_name("alex"), COOKIE, &epmd);
    let m = format!(":\"{}\"", moebi.node_name());
    assert!(moebi.node_name().ends_with("@127.0.0.1"));

    assert_eq!(alex.eval(&format!("Node.ping({m})")), ":pong");
    assert_eq!(alex.eval(&format!("Chat.send_message({m}, \"hi\")")), ":ok");
    assert!(moebi.wait_for_lines("hi", 1, WAIT), "{}", moebi.output());
    assert!(alex.wait_for_output("chicken?", WAIT), "{}", alex.output());
    assert_eq!(
        alex.eval(&format!("GenServer.call({{:echo, {m}}}, :long)")),
        ":long"
    );
    alex.eval(&format!("Node.spawn_link({m}, Moebi, :say_name, [])"));
    assert!(
        alex.wait_for_output("Hi, my name is Moebi\n", WAIT),
        "{}",
        alex.output()
    );
    assert_eq!(alex.eval(&format!(":rpc.call({m}, :erlang, :node, [])")), m);

    // Short and long names do not mix: a node of one kind refuses to connect to one of
    // the other, the BEAM's words in its log, as alex and kate refuse each other.
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    let short = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let (k, a, s) = (kate.node_name(), alex.node_name(), short.node_name());
    assert_eq!(alex.eval(&format!("Node.ping(:{k})")), ":pang");
    assert_eq!(kate.eval(&format!("Node.ping(:\"{a}\")")), ":pang");
    assert_eq!(
        alex.eval(&format!(":rpc.call({m}, :net_adm, :ping, [:{k}])")),
        ":pang"
    );
    assert!(
        moebi.wait_for_log(
            "** System running to use fully qualified hostnames ** ** Hostname localhost is illegal **",
            WAIT
        ),
        "{}",
        moebi.log()
    );
    // Said once, as the BEAM says it, not again as a failed connection.
    assert_eq!(
        moebi.log().matches("Hostname localhost is illegal").count(),
        1,
        "{}",
        moebi.log()
    );
    assert_eq!(
        kate.eval(&format!(":rpc.call(:{s}, :net_adm, :ping, [:\"{a}\"])")),
        ":pang"
    );
    assert!(
        short.wait_for_log(
            "** System NOT running to use fully qualified hostnames ** ** Hostname 127.0.0.1 is illegal **",
            WAIT
        ),
        "{}",
        short.log()
    );

    // One address family, as a BEAM node's: an IPv4 node does not reach a node named
    // with an IPv6 address (which a BEAM node of `inet_tcp` cannot reach either).
    assert_eq!(
        alex.eval(&format!(
            ":rpc.call({m}, :net_adm, :ping, [:\"nobody@::1\"])"
        )),
        ":pang"
    );
    assert!(
        moebi.wait_for_log("::1 has no IPv4 address", WAIT),
        "{}",
        moebi.log()
    );

    // `--name` is long names whatever the host, as `erl -name app@localhost`: it
    // reaches alex, a long name (a node of short names would refuse 127.0.0.1).
    let local = RustNode::start_long(
        &format!("{}@localhost", unique_name("moebi")),
        COOKIE,
        &epmd,
        &[],
    );
    let l = local.node_name();
    assert_eq!(
        kate.eval(&format!(":rpc.call(:\"{l}\", :net_adm, :ping, [:\"{a}\"])")),
        ":pong"
    );
}

/// A fixed distribution port on one address (`-kernel inet_dist_listen_min/max`,
/// `inet_dist_use_interface`): EPMD gives that port, and peers reach it there.
#[test]
fn a_fixed_distribution_port_and_address() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = free.local_addr().unwrap().port();
    drop(free);
    let epmd = Epmd::start();
    let moebi = RustNode::start(
        &unique_name("moebi"),
        COOKIE,
        &epmd,
        &[
            "--listen-port",
            &port.to_string(),
            "--listen-address",
            "127.0.0.1",
        ],
    );
    let short = moebi.node_name().split('@').next().unwrap().to_owned();
    assert!(epmd.names().contains(&(short, port)), "{:?}", epmd.names());
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{})", moebi.node_name())),
        ":pong"
    );
}

/// `{Chat.TaskSupervisor, NODE}` in a scenario.
const SUP: &str = "sup = {Chat.TaskSupervisor, NODE}";

#[test]
fn task_supervisor_start_child_children_and_terminate_child() {
    let c = Cluster::start();

    // start_child/5, temporary (Elixir 1.14 sends the MFA in the call; 1.15+ sends
    // [owner, :monitor], then the MFA to the task): {:ok, pid}, and the MFA runs.
    let started = format!(
        "{SUP}
        {{:ok, pid}} = Task.Supervisor.start_child(sup, Chat, :receive_message, [\"started child\"])
        is_pid(pid) and node(pid) == NODE"
    );
    assert_eq!(c.same_ok(&started), "true");
    assert!(
        c.moebi().wait_for_lines("started child", 1, WAIT),
        "the task runs on Moebi and prints there:\n{}",
        c.moebi().output()
    );

    // A task as tools see it: the function it runs, its supervisor's line and its
    // caller in its dictionary (its initial call and how its supervisor is named there
    // differ between Elixir 1.14 and 1.20: `{:proc_lib, :init_p, 5}` and the name,
    // `{Task.Supervised, :reply, 3}` and the pid).
    let seen = format!(
        "{SUP}
        {{:ok, pid}} = Task.Supervisor.start_child(sup, Moebi, :wait, [])
        info = :rpc.call(NODE, Process, :info, [pid, [:initial_call, :dictionary]])
        Process.exit(pid, :kill)
        d = info[:dictionary]
        {{d[:\"$initial_call\"], Enum.at(d[:\"$ancestors\"], 1), d[:\"$callers\"] == [self()]}}"
    );
    assert_eq!(
        c.same_ok(&seen),
        "{{Moebi, :wait, 0}, Chat.Supervisor, true}"
    );

    // A task that exits `normal`, `shutdown` or `{shutdown, _}` ends quietly; another
    // exit is reported, as Task.Supervised reports it.
    let exits = format!(
        "{SUP}
        for reason <- [:normal, :shutdown, {{:shutdown, :quiet_exit}}, :loud_exit] do
          {{:ok, pid}} = Task.Supervisor.start_child(sup, Moebi, :wait, [])
          ref = Process.monitor(pid)
          send(pid, reason)
          receive do {{:DOWN, ^ref, _, _, r}} -> r after 5000 -> :timeout end
        end"
    );
    assert_eq!(
        c.alex.eval(&Cluster::for_node(&exits, &c.moebi_name)),
        "[:normal, :shutdown, {:shutdown, :quiet_exit}, :loud_exit]"
    );
    assert!(
        c.moebi().wait_for_log("loud_exit", WAIT),
        "{}",
        c.moebi().log()
    );
    let log = c.moebi().log();
    assert!(
        !log.contains("exit: :normal")
            && !log.contains(":shutdown in")
            && !log.contains("quiet_exit"),
        "{log}"
    );

    // The Chat tree as the seed's application has it: the Task.Supervisor's id is
    // its name, so that it can be terminated and restarted by it.
    let tree = "sup = {Chat.Supervisor, NODE}
        [{id, _, :supervisor, [Task.Supervisor]}] = Supervisor.which_children(sup)
        {id, Supervisor.terminate_child(sup, Chat.TaskSupervisor),
         elem(Supervisor.restart_child(sup, Chat.TaskSupervisor), 0)}";
    assert_eq!(c.same_ok(tree), "{Chat.TaskSupervisor, :ok, :ok}");
    // supervisor:get_childspec/2 by id (a pid is not an id there); the supervisor
    // goes on.
    let spec = "sup = {Chat.Supervisor, NODE}
        [{_, pid, _, _}] = Supervisor.which_children(sup)
        {:ok, spec} = :supervisor.get_childspec(sup, Chat.TaskSupervisor)
        {Map.take(spec, [:id, :type, :restart, :shutdown, :modules]) |> Enum.sort(),
         :supervisor.get_childspec(sup, pid), :supervisor.get_childspec(sup, :nobody),
         length(Supervisor.which_children(sup))}";
    assert_eq!(
        c.same_ok(spec),
        "{[id: Chat.TaskSupervisor, modules: [Task.Supervisor], restart: :permanent, shutdown: :infinity, type: :supervisor], {:error, :not_found}, {:error, :not_found}, 1}"
    );

    // supervisor:start_child/2 of a spec naming BEAM code the node does not have, of
    // an id already there, of specs check_childspec refuses; the tree goes on.
    let start = "sup = {Chat.Supervisor, NODE}
        {:error, {{:EXIT, {:undef, [frame | _]}}, child}} =
          Supervisor.start_child(sup, %{id: :x, start: {NoSuch, :start_link, [1]}})
        {frame, child,
         elem(elem(Supervisor.start_child(sup, %{id: Chat.TaskSupervisor, start: {NoSuch, :f, []}}), 1), 0),
         :supervisor.start_child(sup, %{start: {NoSuch, :f, []}}),
         :supervisor.start_child(sup, %{id: :y}),
         :supervisor.start_child(sup, %{id: :y, start: :bad}),
         length(Supervisor.which_children(sup))}";
    assert_eq!(
        c.same_ok(start),
        "{{NoSuch, :start_link, [1], []}, \
         {:child, :undefined, :x, {NoSuch, :start_link, [1]}, :permanent, false, 5000, :worker, [NoSuch]}, \
         :already_started, \
         {:error, :missing_id}, {:error, :missing_start}, {:error, {:invalid_mfa, :bad}}, 1}"
    );

    // What the seed's `IO.puts(message)` takes besides text: an atom, a number; a
    // binary that is not UTF-8 raises.
    let puts = "for x <- [42, :an_atom, 3.5, <<255, 104, 105>>] do
          case Task.Supervisor.async_nolink({Chat.TaskSupervisor, NODE}, Chat, :receive_message, [x])
               |> Task.yield(5000) do
            {:ok, r} -> r
            {:exit, reason} -> elem(reason, 0)
          end
        end";
    assert_eq!(c.same_ok(puts), "[:ok, :ok, :ok, :badarg]");
    for printed in ["42", "an_atom", "3.5"] {
        assert!(
            c.moebi().wait_for_lines(printed, 1, WAIT),
            "{printed} on Moebi:\n{}",
            c.moebi().output()
        );
    }

    // A restart or shutdown `DynamicSupervisor` does not know: it keeps them unchecked
    // (they matter only if the task fails or is terminated) and starts the task; the
    // supervisor and the tasks it runs go on.
    let unchecked = format!(
        "{SUP}
        before = :rpc.call(NODE, :erlang, :whereis, [Chat.TaskSupervisor])
        {{:ok, waiting}} = Task.Supervisor.start_child(sup, Moebi, :wait, [])
        results = for opts <- [[restart: :bogus], [shutdown: :soon], [restart: :later, shutdown: -1]] do
          {{:ok, pid}} = Task.Supervisor.start_child(sup, Chat, :receive_message, [\"unchecked\"], opts)
          is_pid(pid)
        end
        Process.sleep(100)
        after_ = :rpc.call(NODE, :erlang, :whereis, [Chat.TaskSupervisor])
        alive = :rpc.call(NODE, :erlang, :is_process_alive, [waiting])
        Task.Supervisor.terminate_child(sup, waiting)
        {{results, before == after_, alive}}"
    );
    assert_eq!(c.same_ok(&unchecked), "{[true, true, true], true, true}");

    // children/1, count_children, terminate_child/2 of a running task, and of one gone.
    let lifecycle = format!(
        "{SUP}
        {{:ok, pid}} = Task.Supervisor.start_child(sup, Moebi, :wait, [])
        ref = Process.monitor(pid)
        listed = pid in Task.Supervisor.children(sup)
        # Sorted: how a small map prints differs between releases.
        counts = DynamicSupervisor.count_children(sup) |> Enum.sort()
        terminated = Task.Supervisor.terminate_child(sup, pid)
        down = receive do {{:DOWN, ^ref, :process, ^pid, r}} -> r after 5000 -> :timeout end
        again = Task.Supervisor.terminate_child(sup, pid)
        {{listed, counts, terminated, down, again, Task.Supervisor.children(sup)}}"
    );
    assert_eq!(
        c.same_ok(&lifecycle),
        "{true, [active: 1, specs: 1, supervisors: 0, workers: 1], :ok, :shutdown, {:error, :not_found}, []}"
    );

    // restart: :transient, a child that crashes is started again with the same MFA;
    // one that exits :normal is not. (The 1.14 form on every Elixir.)
    let transient = format!(
        "{SUP}
        {{:ok, pid}} = Task.Supervisor.start_child(sup, Moebi, :wait, [], restart: :transient)
        ref = Process.monitor(pid)
        send(pid, :boom)
        receive do {{:DOWN, ^ref, :process, ^pid, _}} -> :ok after 5000 -> :timeout end
        restarted = Enum.find_value(1..100, fn _ ->
          case Task.Supervisor.children(sup) do
            [new] when new != pid -> new
            _ -> Process.sleep(20); nil
          end
        end)
        ref = Process.monitor(restarted)
        send(restarted, :normal)
        down = receive do {{:DOWN, ^ref, :process, ^restarted, r}} -> r after 5000 -> :timeout end
        Process.sleep(100)
        {{is_pid(restarted), down, Task.Supervisor.children(sup)}}"
    );
    assert_eq!(c.same_ok(&transient), "{true, :normal, []}");
    c.assert_moebi_still_serves();
}

/// The `sys` requests a BEAM user sends a `Task.Supervisor` (the `DynamicSupervisor`
/// it runs as): its state, its status, suspend and resume, and `GenServer.stop/3`,
/// after which the application starts it again.
#[test]
fn task_supervisor_answers_sys_requests() {
    let c = Cluster::start();

    let state = format!(
        "{SUP}
        {{:ok, pid}} = Task.Supervisor.start_child(sup, Moebi, :wait, [], restart: :transient)
        %DynamicSupervisor{{}} = s = :sys.get_state(sup)
        child = s.children[pid]
        supervisor = :rpc.call(NODE, :erlang, :whereis, [Chat.TaskSupervisor])
        {{:status, ^supervisor, {{:module, :gen_server}}, [_, running, _, _, info]}} = :sys.get_status(sup)
        # A supervisor's callback module is named up to OTP 25 and Elixir 1.16.
        [{{:header, _}}, {{:data, data}}, {{:data, [{{~c\"State\", ^s}}]}} | callback] = info
        callback = Keyword.get(callback, :supervisor, [{{~c\"Callback\", Task.Supervisor}}])
        Task.Supervisor.terminate_child(sup, pid)
        # Charlists print unlike from one Elixir release to the next.
        strings = fn pairs -> Enum.map(pairs, fn {{k, v}} -> {{List.to_string(k), v}} end) end
        {{%{{s | children: map_size(s.children)}}, elem(child, 0) |> Tuple.delete_at(2),
         Tuple.delete_at(child, 0), running, strings.(data), strings.(callback)}}"
    );
    assert_eq!(
        c.same_ok(&state),
        "{%DynamicSupervisor{args: {{:temporary, 5000}, []}, extra_arguments: [], mod: Task.Supervisor, \
         name: {:local, Chat.TaskSupervisor}, strategy: :one_for_one, max_children: :infinity, \
         max_restarts: 3, max_seconds: 5, children: 1, restarts: []}, \
         {Task.Supervised, :start_link}, {:transient, 5000, :worker, [Task.Supervised]}, :running, \
         [{\"Status\", :running}, {\"Parent\", #PID<>}, {\"Logged events\", []}], \
         [{\"Callback\", Task.Supervisor}]}"
    );

    // Whether its status names the callback module: up to OTP 25 and Elixir 1.16.
    let parts = format!(
        "{SUP}
        {{:status, _, _, [_, _, _, _, info]}} = :sys.get_status(sup)
        Keyword.keys(info)"
    );
    c.same_ok(&parts);

    // Suspended, it takes no call until it is resumed.
    let suspended = format!(
        "{SUP}
        :ok = :sys.suspend(sup)
        t = Task.async(fn -> Task.Supervisor.children(sup) end)
        waiting = Task.yield(t, 300)
        :ok = :sys.resume(sup)
        {{waiting, Task.await(t)}}"
    );
    assert_eq!(c.same_ok(&suspended), "{nil, []}");

    // GenServer.stop/3: its tasks are shut down, it stops with the reason, and it is
    // started again under its name.
    let stop = format!(
        "{SUP}
        until_started = fn -> Enum.find_value(1..250, fn _ ->
          try do Task.Supervisor.children(sup) catch :exit, _ -> Process.sleep(20); nil end
        end) end
        until_started.()
        {{:ok, pid}} = Task.Supervisor.start_child(sup, Moebi, :wait, [])
        ref = Process.monitor(pid)
        stopped = GenServer.stop(sup, :normal, 5000)
        down = receive do {{:DOWN, ^ref, :process, ^pid, r}} -> r after 5000 -> :timeout end
        {{stopped, down, until_started.()}}"
    );
    assert_eq!(c.same_ok(&stop), "{:ok, :shutdown, []}");
    c.assert_moebi_still_serves();
}

/// `:sys.get_state/1` and `:sys.get_status/1` of the system processes a BEAM user may
/// look at: answered, as a BEAM node's are (the state is this node's own; a BEAM's is
/// each module's record).
#[test]
fn system_processes_answer_sys_requests() {
    let c = Cluster::start();
    let status = "for name <- [:net_kernel, :rex, :global_name_server] do
          {:status, pid, {:module, :gen_server}, [_, :running, _, _, _]} = :sys.get_status({name, NODE})
          {name, node(pid) == NODE}
        end";
    assert_eq!(
        c.same_ok(status),
        "[net_kernel: true, rex: true, global_name_server: true]"
    );
    // sys's debug requests with nothing turned on: `ok`, and what a `get` gives then;
    // `unknown_debug` for one sys does not know.
    let debug = "s = {:echo, NODE}
        {:sys.statistics(s, :get), :sys.log(s, :get), :sys.trace(s, false), :sys.statistics(s, false),
         :sys.log(s, {true, 5}), :sys.log(s, {true, 100_000_000_000_000_000_000}), :sys.log(s, false),
         :sys.statistics(s, :maybe),
         :sys.log(s, {true, 0}), :sys.trace(s, :yes),
         :sys.log_to_file(s, ~c(/nonexistent/cnode-sys.log)), :sys.log_to_file(s, false)}";
    assert_eq!(
        c.same_ok(debug),
        "{{:ok, :no_statistics}, {:ok, []}, :ok, :ok, :ok, :ok, :ok, :unknown_debug, :unknown_debug, \
         :unknown_debug, {:error, :open_file}, :ok}"
    );
    let moebi = Cluster::for_node(
        "s = :sys.get_state({:net_kernel, NODE})
        {s.node == NODE, s.tick_time, node() in s.connections, :sys.get_state({:rex, NODE}),
         is_list(:sys.get_state({:global_name_server, NODE}).known)}",
        &c.moebi_name,
    );
    assert_eq!(
        c.blank(&c.alex.eval(&moebi)),
        "{true, 60000, true, %{}, true}"
    );
    c.assert_moebi_still_serves();
}

#[test]
fn task_supervisor_async_streams_and_shutdown() {
    let c = Cluster::start();

    let nolink = format!(
        "{SUP}
        ok = Task.Supervisor.async_nolink(sup, Chat, :receive_message, [\"nolink\"]) |> Task.await()
        task = Task.Supervisor.async_nolink(sup, Chat, :no_such_fun, [\"hi\"])
        # The frame that failed (a BEAM adds Task.Supervised's own frames below it).
        {{:exit, {{reason, [frame | _]}}}} = Task.yield(task, 5000)
        {{ok, reason, frame}}"
    );
    assert_eq!(
        c.same_ok(&nolink),
        "{:ok, :undef, {Chat, :no_such_fun, [\"hi\"], []}}"
    );

    for stream in ["async_stream", "async_stream_nolink"] {
        let scenario = format!(
            "{SUP}
            Task.Supervisor.{stream}(sup, [\"s1\", \"s2\", \"s3\"], Chat, :receive_message, [])
            |> Enum.to_list()"
        );
        assert_eq!(c.same_ok(&scenario), "[ok: :ok, ok: :ok, ok: :ok]");
    }
    assert!(
        c.moebi().wait_for_lines("s3", 2, WAIT),
        "{}",
        c.moebi().output()
    );

    // Task.shutdown/2 of a task running on the node: with a timeout, and brutally.
    let shutdown = format!(
        "{SUP}
        t1 = Task.Supervisor.async_nolink(sup, Moebi, :wait, [])
        t2 = Task.Supervisor.async(sup, Moebi, :wait, [])
        {{Task.shutdown(t1, 5000), Task.shutdown(t2, :brutal_kill), Process.alive?(self())}}"
    );
    assert_eq!(c.same_ok(&shutdown), "{nil, nil, true}");
    c.assert_moebi_still_serves();
}

#[test]
fn a_call_the_task_supervisor_does_not_know_exits_the_caller() {
    let c = Cluster::start();

    // DynamicSupervisor has no clause for it: the caller exits with the function
    // clause error, the supervisor is started again by its parent, and serves.
    let unknown = format!(
        "{SUP}
        caught = try do
          GenServer.call(sup, :no_such_request, 5000)
        catch
          :exit, {{{{kind, [{{m, f, _, _}} | _]}}, {{GenServer, :call, _}}}} -> {{kind, m, f}}
        end
        served = Enum.find_value(1..100, fn _ ->
          try do
            Task.Supervisor.async_nolink(sup, Chat, :receive_message, [\"after the crash\"]) |> Task.await()
          catch
            :exit, _ -> Process.sleep(50); nil
          end
        end)
        {{caught, served}}"
    );
    assert_eq!(
        c.same_ok(&unknown),
        "{{:function_clause, DynamicSupervisor, :handle_call}, :ok}"
    );

    // The exit names the failed clause's arguments: the call, its `From` and the
    // supervisor's state.
    let no_clause = format!(
        "{SUP}
        try do
          GenServer.call(sup, :no_such_call)
        catch
          :exit, {{{{:function_clause, [{{DynamicSupervisor, :handle_call, [request, {{from, _}}, state], _}} | _]}}, _}} ->
            {{request, from == self(), state.__struct__}}
        end"
    );
    assert_eq!(
        c.same_ok(&no_clause),
        "{:no_such_call, true, DynamicSupervisor}"
    );

    // Its tasks in flight are shut down as it terminates (DynamicSupervisor's
    // `terminate/2` runs after the crash too), once it is back.
    let in_flight = format!(
        "{SUP}
        Enum.find_value(1..100, fn _ ->
          if :rpc.call(NODE, :erlang, :whereis, [Chat.TaskSupervisor]) |> is_pid(), do: true, else: (Process.sleep(50); nil)
        end)
        t = Task.Supervisor.async_nolink(sup, Moebi, :wait, [])
        try do GenServer.call(sup, :no_such_request, 5000) catch :exit, _ -> :crashed end
        Task.yield(t, 5000)"
    );
    assert_eq!(c.same_ok(&in_flight), "{:exit, :shutdown}");
    c.assert_moebi_still_serves();
}

/// A transient task that keeps crashing takes its `Task.Supervisor` down (3 restarts in
/// 5 s), and a `Task.Supervisor` that keeps going down takes `Chat.Supervisor` down: the
/// Chat application is gone, and the node goes on without it.
#[test]
fn a_task_supervisor_in_a_crash_loop_takes_the_chat_tree_down() {
    let c = Cluster::start();

    let crash_loop = format!(
        "{SUP}
        whereis = fn name ->
          Enum.find_value(1..50, :gone, fn _ ->
            case :rpc.call(NODE, :erlang, :whereis, [name]) do
              pid when is_pid(pid) -> pid
              _ -> Process.sleep(20); nil
            end
          end)
        end
        rounds = Enum.map(1..6, fn _ ->
          case whereis.(Chat.TaskSupervisor) do
            :gone -> :gone
            pid ->
              ref = Process.monitor(pid)
              Task.Supervisor.start_child(sup, :erlang, :exit, [:boom], restart: :transient)
              receive do {{:DOWN, ^ref, :process, ^pid, r}} -> r after 5000 -> :timeout end
          end
        end)
        {{rounds, :rpc.call(NODE, :erlang, :whereis, [Chat.Supervisor]), :rpc.call(NODE, :erlang, :node, []) == NODE}}"
    );
    assert_eq!(
        c.same_ok(&crash_loop),
        "{[:shutdown, :shutdown, :shutdown, :shutdown, :gone, :gone], :undefined, true}"
    );
}

/// `DynamicSupervisor.start_child/2` on the Task.Supervisor (it is one): a task from
/// `Task.start_link/3` is supervised by its child spec, a start function the node does
/// not have or one that returns no pid is `{:error, reason}`, and the supervisor goes on.
#[test]
fn dynamic_supervisor_start_child_on_the_task_supervisor() {
    let c = Cluster::start();

    let task = format!(
        "{SUP}
        before = GenServer.whereis(sup)
        spec = %{{id: :w, start: {{Task, :start_link, [Moebi, :wait, []]}}, restart: :transient}}
        {{:ok, pid}} = DynamicSupervisor.start_child(sup, spec)
        kept = :sys.get_state(sup).children[pid]
        [{{:undefined, ^pid, kind, modules}}] = Supervisor.which_children(sup)
        counts = DynamicSupervisor.count_children(sup) |> Enum.sort()
        # Transient: an abnormal exit starts it again.
        ref = Process.monitor(pid)
        send(pid, :boom)
        down = receive do {{:DOWN, ^ref, _, _, r}} -> r after 5000 -> :timeout end
        again = Enum.find_value(1..100, fn _ ->
          case Task.Supervisor.children(sup) do
            [^pid] -> Process.sleep(50); nil
            [] -> Process.sleep(50); nil
            [other] -> other
          end
        end)
        :ok = Task.Supervisor.terminate_child(sup, again)
        {{kept, kind, modules, counts, down, node(again) == node(pid), GenServer.whereis(sup) == before}}"
    );
    assert_eq!(
        c.same_ok(&task),
        "{{{Task, :start_link, [Moebi, :wait, []]}, :transient, 5000, :worker, [Task]}, :worker, \
         [Task], [active: 1, specs: 1, supervisors: 0, workers: 1], :boom, true, true}"
    );

    let temporary = format!(
        "{SUP}
        {{:ok, pid}} = DynamicSupervisor.start_child(sup, {{Task, fn -> :ok end}} |> Supervisor.child_spec(start: {{Task, :start_link, [Moebi, :wait, []]}}))
        kept = :sys.get_state(sup).children[pid]
        :ok = DynamicSupervisor.terminate_child(sup, pid)
        kept"
    );
    assert_eq!(
        c.same_ok(&temporary),
        "{{Task, :start_link, :undefined}, :temporary, 5000, :worker, [Task]}"
    );

    let failed = format!(
        "{SUP}
        before = GenServer.whereis(sup)
        {{:error, {{:undef, [frame | _]}}}} = DynamicSupervisor.start_child(sup, %{{id: :x, start: {{NoSuch, :start_link, [1]}}}})
        not_a_pid = DynamicSupervisor.start_child(sup, %{{id: :y, start: {{Chat, :receive_message, [\"as a child\"]}}}})
        # A Task child spec of an MFA tuple: Task.start_link/1 takes only a fun.
        {{:error, {{:function_clause, [{{Task, :start_link, mfa, _}} | _]}}}} = DynamicSupervisor.start_child(sup, {{Task, {{Moebi, :wait, []}}}})
        {{frame, not_a_pid, mfa, Task.Supervisor.children(sup), GenServer.whereis(sup) == before}}"
    );
    assert_eq!(
        c.same_ok(&failed),
        "{{NoSuch, :start_link, [1], []}, {:error, :ok}, [{Moebi, :wait, []}], [], true}"
    );
    c.assert_moebi_still_serves();
}

/// A BEAM process writing to the node's `user` (its group leader when it was spawned
/// from here): the options it reads, and a format `io_lib` cannot apply.
#[test]
fn the_nodes_user_is_an_io_server_as_a_beam_nodes() {
    let c = Cluster::start();
    let io = "u = :rpc.call(NODE, :erlang, :whereis, [:user])
        opts = :io.getopts(u) |> Keyword.take([:binary, :encoding])
        bad = try do :io.format(u, \"~bad\", []) catch :error, e -> e end
        few = try do :io.format(u, \"~p ~p~n\", [:x]) catch :error, e -> e end
        {opts, bad, few, :io.format(u, \"~s ~.2f~n\", [\"written\", 1.5])}";
    assert_eq!(
        c.same_ok(io),
        "{[binary: true, encoding: :unicode], :badarg, :badarg, :ok}"
    );
    assert!(
        c.moebi().wait_for_lines("written 1.50", 1, WAIT),
        "{}",
        c.moebi().output()
    );
    // `sys` requests are answered, as OTP 26+'s `user` answers them (OTP 25's does not).
    let sys = Cluster::for_node(
        "{:status, _, _, _} = :sys.get_status({:user, NODE}, 5000)
        :sys.get_state({:user, NODE}, 5000)",
        &c.moebi_name,
    );
    assert_eq!(c.alex.eval(&sys), "[binary: true, encoding: :unicode]");
    c.assert_moebi_still_serves();
}

/// `:init.stop/0,1` and `:erlang.halt/1` from iex: the node answers `:ok` (`halt` does
/// not answer: the caller's erpc gets `noconnection`), goes down, and its program ends
/// with the status asked for.
#[test]
fn init_stop_and_halt_end_the_node_as_a_beam_nodes() {
    let stop = "Node.monitor(NODE, true)
        answer = :rpc.call(NODE, :init, :stop, [])
        down = receive do {:nodedown, NODE} -> :nodedown after 10000 -> :timeout end
        {answer, down, :net_adm.ping(NODE)}";
    // halt takes the applications down with the rest: no `shutdown` for them.
    let halt = "Node.monitor(NODE, true)
        ref = Process.monitor({Chat.TaskSupervisor, NODE})
        answer = try do :erpc.call(NODE, :erlang, :halt, [7]) catch :error, e -> e end
        down = receive do {:nodedown, NODE} -> :nodedown after 10000 -> :timeout end
        sup = receive do {:DOWN, ^ref, _, _, reason} -> reason after 10000 -> :timeout end
        {answer, down, sup}";
    for (scenario, expected, status) in [
        (stop, "{:ok, :nodedown, :pang}", 0),
        (
            halt,
            "{{:erpc, :noconnection}, :nodedown, :noconnection}",
            7,
        ),
    ] {
        let mut c = Cluster::start();
        assert_eq!(c.same_ok(scenario), expected);
        let moebi = c.moebi.as_mut().expect("moebi");
        assert_eq!(moebi.wait_exit(WAIT), Some(status), "{}", moebi.log());
    }

    // A slogan: status 1, and the slogan in the node's log, where a BEAM node writes it
    // to its crash dump (not run on kate, whose dump would land in chat/).
    let mut c = Cluster::start();
    // A binary is no status: badarg, and nothing logged or halted.
    let binary = "try do :erpc.call(NODE, :erlang, :halt, [\"not a status\"]) catch :error, {:exception, r, _} -> r end";
    assert_eq!(c.same_ok(binary), ":badarg");
    assert!(!c.moebi().log().contains("halted"), "{}", c.moebi().log());
    c.assert_moebi_still_serves();
    let slogan = "Node.monitor(NODE, true)
        answer = try do :erpc.call(NODE, :erlang, :halt, [~c\"out of kibble\"]) catch :error, e -> e end
        {answer, receive do {:nodedown, NODE} -> :nodedown after 10000 -> :timeout end}";
    assert_eq!(
        c.alex.eval(&Cluster::for_node(slogan, &c.moebi_name)),
        "{{:erpc, :noconnection}, :nodedown}"
    );
    let moebi = c.moebi.as_mut().expect("moebi");
    assert_eq!(moebi.wait_exit(WAIT), Some(1), "{}", moebi.log());
    assert!(
        moebi.log().contains("halted: out of kibble"),
        "{}",
        moebi.log()
    );
}

/// A harness that starts Moebi through a pipe and ends (an ExUnit run killed, say):
/// with `--stop-on-stdin-eof` the node stops as on SIGTERM and leaves EPMD, as a
/// `:peer` node with `connection: :standard_io` stops; without it, as a BEAM node
/// started by `erl`, it goes on.
#[test]
fn a_node_told_so_stops_when_its_stdin_closes() {
    let epmd = Epmd::start();
    let mut told = RustNode::start(&unique_name("eof"), COOKIE, &epmd, &["--stop-on-stdin-eof"]);
    let mut plain = RustNode::start(&unique_name("noeof"), COOKIE, &epmd, &[]);
    told.close_stdin();
    plain.close_stdin();
    assert_eq!(told.wait_exit(WAIT), Some(0), "{}", told.log());
    assert!(
        told.log().contains("stdin closed - shutting down"),
        "{}",
        told.log()
    );
    let short = |n: &str| n.split('@').next().unwrap_or_default().to_owned();
    let names = epmd.names();
    assert!(
        !names.iter().any(|(n, _)| *n == short(&told.node_name())),
        "{names:?}"
    );
    assert!(
        names.iter().any(|(n, _)| *n == short(&plain.node_name())),
        "{names:?}"
    );
    assert_eq!(
        plain.wait_exit(Duration::from_secs(1)),
        None,
        "{}",
        plain.log()
    );
}

/// SIGTERM, as systemd, Docker and Kubernetes stop a service: a BEAM node (OTP 23+)
/// takes it as `init:stop()`, so its applications stop first (alex sees
/// `Chat.TaskSupervisor` go down with `shutdown`, not `noconnection`), it logs
/// `SIGTERM received - shutting down`, and its program exits 0.
#[test]
fn sigterm_stops_the_node_as_init_stop_does() {
    let mut c = Cluster::start();
    let watch = ":pong = Node.ping(NODE)
        for name <- [Chat.TaskSupervisor, :echo], do: Process.monitor({name, NODE})
        :ok";
    assert_eq!(c.alex.eval(&Cluster::for_node(watch, &c.moebi_name)), ":ok");
    let moebi = c.moebi.as_mut().expect("moebi");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &moebi.os_pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    assert_eq!(moebi.wait_exit(WAIT), Some(0), "{}", moebi.log());
    assert!(
        moebi.log().contains("SIGTERM received - shutting down"),
        "{}",
        moebi.log()
    );
    let downs = "for _ <- 1..2 do
          receive do {:DOWN, _, :process, {name, _}, reason} -> {name, reason} after 10_000 -> :missing end
        end |> Enum.sort()";
    assert_eq!(
        c.alex.eval(downs),
        "[{Chat.TaskSupervisor, :shutdown}, {:echo, :shutdown}]",
        "{}",
        c.moebi().log()
    );
}

/// A Moebi started by a test itself (its stdio set up as a service manager's would),
/// killed when the test ends, whether it passed or not.
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Spawned {
    /// Waits until `name` is registered with `epmd`.
    fn registered(&mut self, epmd: &Epmd, name: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        while !epmd.names().iter().any(|(n, _)| n == name) {
            let ended = self.0.try_wait().ok().flatten();
            assert!(
                std::time::Instant::now() < deadline && ended.is_none(),
                "moebi did not register: {ended:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then its exit status within `WAIT`.
    fn terminated(&mut self) -> Option<i32> {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(kill.success());
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// A service whose log pipe's reader has gone (`moebi 2>&1 | logger`, the logger
/// stopped): Moebi runs on, losing the lines it cannot write, and SIGTERM still stops
/// it with 0, as a BEAM node in its place (it panicked, or never ended its stop).
#[test]
fn sigterm_stops_the_node_whose_log_pipe_is_closed() {
    use std::process::{Command, Stdio};
    let epmd = Epmd::start();
    let name = unique_name("moebi");
    let mut moebi = Spawned(
        Command::new(support::moebi_binary())
            .args(["--sname", &format!("{name}@localhost"), "--cookie", "c"])
            .env("ERL_EPMD_PORT", epmd.port().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moebi starts"),
    );
    drop(moebi.0.stderr.take());
    moebi.registered(&epmd, &name);
    assert_eq!(moebi.terminated(), Some(0));
}

/// A service whose stdout and log pipes are full and not read (a stalled journald):
/// the node goes on serving, as a BEAM node whose `user` waits on its port does, and
/// SIGTERM still stops it with 0 (it froze, its one thread in a write).
#[test]
fn a_node_whose_output_is_not_read_goes_on_serving() {
    use std::process::{Command, Stdio};
    let epmd = Epmd::start();
    let name = unique_name("moebi");
    let mut moebi = Spawned(
        Command::new(support::moebi_binary())
            .args(["--sname", &format!("{name}@localhost"), "--cookie", COOKIE])
            .env("ERL_EPMD_PORT", epmd.port().to_string())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moebi starts"),
    );
    // Held, never read: the pipes fill.
    let (_out, _err) = (moebi.0.stdout.take(), moebi.0.stderr.take());
    moebi.registered(&epmd, &name);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = format!("{name}@localhost");
    let flood = format!(
        "u = :rpc.call(:{m}, :erlang, :whereis, [:user])
         for _ <- 1..3, do: :io.put_chars(u, String.duplicate(\"y\", 200_000) <> \"\\n\")
         :ok"
    );
    assert_eq!(alex.eval(&flood), ":ok");
    for i in 0..3 {
        assert_eq!(
            alex.eval(&format!("GenServer.call({{:echo, :{m}}}, {i}, 10_000)")),
            i.to_string()
        );
    }
    assert_eq!(moebi.terminated(), Some(0));
}

/// The process a node's server is linked to answers as a BEAM node's kernel_sup does
/// when a tool walks the links: `which_children` lists the server, `count_children`
/// and `sys` answer (they hung on the Rust node).
#[test]
fn the_parent_of_a_nodes_server_answers_as_a_supervisor() {
    let c = Cluster::start();
    let walk = "rex = :rpc.call(NODE, :erlang, :whereis, [:rex])
        {:links, [parent]} = :rpc.call(NODE, :erlang, :process_info, [rex, :links])
        listed = Enum.any?(Supervisor.which_children(parent), fn {_, pid, _, _} -> pid == rex end)
        counted = Supervisor.count_children(parent)[:active] >= 1
        {listed, counted, match?({:status, ^parent, _, _}, :sys.get_status(parent, 5000))}";
    assert_eq!(c.same_ok(walk), "{true, true, true}");
}

/// A suspended `Chat.TaskSupervisor` still stops when the node stops: its parent's exit
/// ends it, as sys's suspended loop takes its parent's `EXIT` (the node went down within
/// a second or two, where it waited 30 s for the supervisor).
#[test]
fn a_suspended_supervisor_stops_with_the_node() {
    let mut c = Cluster::start();
    let stop = ":ok = :sys.suspend({Chat.TaskSupervisor, NODE})
        Node.monitor(NODE, true)
        t0 = System.monotonic_time(:millisecond)
        :ok = :rpc.call(NODE, :init, :stop, [])
        receive do {:nodedown, _} -> System.monotonic_time(:millisecond) - t0 < 10_000 after 20_000 -> :late end";
    assert_eq!(
        c.alex
            .eval_timeout(&Cluster::for_node(stop, &c.moebi_name), WAIT * 2)
            .expect("the scenario runs"),
        "true",
        "{}",
        c.moebi().log()
    );
    let moebi = c.moebi.as_mut().expect("moebi");
    assert_eq!(moebi.wait_exit(WAIT), Some(0), "{}", moebi.log());
}

/// `:global` asked on the node: it knows the names registered in the cluster, as every
/// node of it does (`whereis_name/1`, `registered_names/0`, `send/2`), and forgets one
/// whose process ended.
#[test]
fn global_names_are_known_on_the_node_as_on_a_beam_node() {
    let c = Cluster::start();
    let scenario = "pid = spawn(fn -> receive do m -> exit(m) end end)
        :yes = :global.register_name(:ns_name, pid)
        on_node = fn -> :rpc.call(NODE, :global, :whereis_name, [:ns_name]) end
        seen = Enum.find_value(1..200, fn _ -> on_node.() == pid || (Process.sleep(50); nil) end)
        listed = :ns_name in :rpc.call(NODE, :global, :registered_names, [])
        sent = :rpc.call(NODE, :global, :send, [:ns_name, :bye]) == pid
        gone = Enum.find_value(1..200, fn _ -> on_node.() == :undefined || (Process.sleep(50); nil) end)
        {seen, listed, sent, gone, Process.alive?(pid), :rpc.call(NODE, :global, :send, [:ns_none, :x])}";
    assert_eq!(
        c.same_ok(scenario),
        "{true, true, true, true, false, {:badrpc, {:EXIT, {:badarg, {:ns_none, :x}}}}}"
    );
    c.assert_moebi_still_serves();
}
