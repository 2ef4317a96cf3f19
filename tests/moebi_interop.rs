//! The seed's session with the Rust Moebi node: real `epmd`, real Elixir nodes running the
//! Chat app, and the Moebi example binary, each test on its own EPMD port and names.

mod support;

use std::time::{Duration, Instant};
use support::{chats_once_settled, reaches, unique_name, BeamNode, Epmd, RustNode};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(15);

#[test]
fn alex_and_kate_chat_with_moebi() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    let m = moebi.node_name();

    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");
    assert!(
        alex.eval("Node.list()").contains(&m),
        "moebi is in Node.list()"
    );

    // iex(alex)> Chat.send_message(:moebi@localhost, "hi")  =>  chicken? / :ok
    assert_eq!(
        alex.eval(&format!("Chat.send_message(:{m}, \"hi\")")),
        ":ok"
    );
    assert!(
        moebi.wait_for_lines("hi", 1, WAIT),
        "moebi prints hi:\n{}",
        moebi.output()
    );
    assert!(
        alex.wait_for_output("chicken?", WAIT),
        "alex prints chicken?:\n{}",
        alex.output()
    );

    // The same from kate.
    assert_eq!(
        kate.eval(&format!("Chat.send_message(:{m}, \"hello from kate\")")),
        ":ok"
    );
    assert!(moebi.wait_for_lines("hello from kate", 1, WAIT));
    assert!(
        kate.wait_for_output("chicken?", WAIT),
        "kate prints chicken?:\n{}",
        kate.output()
    );
    // Moebi answered each sender only: kate's chicken? did not go to alex.
    assert_eq!(alex.count_in_output("chicken?"), 1);
    assert_eq!(kate.eval(&format!("Node.ping(:{m})")), ":pong");
    assert!(kate.eval("Node.list()").contains(&m));
}

#[test]
fn wrong_cookie_is_refused_and_logged() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let intruder = BeamNode::start_plain(&unique_name("mallory"), "not_the_cookie", &epmd);
    let m = moebi.node_name();

    assert_eq!(intruder.eval(&format!("Node.ping(:{m})")), ":pang");
    assert!(
        moebi.wait_for_log(
            &format!("Connection attempt from node {}", intruder.node_name()),
            WAIT
        ),
        "moebi logs who was refused and why:\n{}",
        moebi.log()
    );
    assert!(moebi.log().contains("Invalid challenge reply"));
    // Moebi keeps serving nodes with the right cookie.
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");
}

#[test]
fn two_hundred_concurrent_tasks_from_one_caller() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();

    let results = alex.eval(&format!(
        "1..200
         |> Enum.map(&Task.Supervisor.async({{Chat.TaskSupervisor, :{m}}}, Chat, :receive_message, [\"message #{{&1}}\"]))
         |> Enum.map(&Task.await(&1, 20_000))
         |> Enum.uniq()"
    ));
    assert_eq!(results, "[:ok]");
    assert!(moebi.wait_for_lines("message 200", 1, WAIT));
    for i in 1..=200 {
        assert_eq!(
            moebi.count_lines(&format!("message {i}")),
            1,
            "message {i} printed once"
        );
    }
}

/// Large messages sent at once by several processes of one BEAM node reach Moebi
/// whole: their fragments interleave on the connection, so more bytes are in progress
/// at once than any one message holds (here 8 x 600 KB beside a 1 MB maximum message),
/// as a BEAM node takes them.
#[test]
fn large_messages_sent_at_once_by_many_processes() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(
        &unique_name("moebi"),
        COOKIE,
        &epmd,
        &["--max-message-size", "1000000"],
    );
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();
    for _ in 0..3 {
        let sizes = alex.eval(&format!(
            "1..8
             |> Enum.map(fn i -> Task.async(fn ->
                  big = :binary.copy(<<i>>, 600_000)
                  byte_size(GenServer.call({{:echo, :{m}}}, {{i, big}}, 20_000) |> elem(1))
                end) end)
             |> Enum.map(&Task.await(&1, 30_000))
             |> Enum.uniq()"
        ));
        assert_eq!(sizes, "[600000]", "{}", moebi.log());
    }
    assert!(
        !moebi.log().contains("closing connection"),
        "{}",
        moebi.log()
    );
}

/// A message larger than 128 MiB, which a BEAM node takes (it has no limit), reaches
/// Moebi with its defaults and comes back whole.
#[test]
fn a_message_of_130_mib_with_the_default_limits() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();
    let size = alex.eval(&format!(
        "big = :binary.copy(<<7>>, 130 * 1024 * 1024)
         GenServer.call({{:echo, :{m}}}, big, 120_000) |> byte_size()"
    ));
    assert_eq!(size, "136314880", "{}", moebi.log());
}

/// A BEAM caller that keeps 64 calls in flight for a while gets a busy-polling trial
/// (polling against not polling; the verdict logged at debug), and every call is
/// answered, whichever way Moebi reads.
#[test]
fn calls_kept_in_flight_get_a_busy_polling_trial() {
    let epmd = Epmd::start();
    let filter = "info,cnode::connection=debug";
    let moebi = RustNode::start_logging(&unique_name("moebi"), COOKIE, &epmd, &[], filter);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();
    // 64 Elixir processes making 500 echo calls each, every answer checked, until a
    // trial has been logged (a trial needs the connection a second old and the calls
    // seen in flight; a busy machine may void some).
    let calls = format!(
        "1..64
         |> Enum.map(fn i -> Task.async(fn ->
              Enum.all?(1..500, fn j -> GenServer.call({{:echo, :{m}}}, {{i, j}}) == {{i, j}} end)
            end) end)
         |> Enum.map(&Task.await(&1, 60_000))
         |> Enum.uniq()"
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        assert_eq!(alex.eval(&calls), "[true]", "{}", moebi.log());
        if moebi.log().contains("busy-polling trial with ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no busy-polling trial in 3 minutes of calls in flight:\n{}",
            moebi.log()
        );
    }
}

#[test]
fn an_unregistered_function_raises_undef_on_the_caller() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();

    // As against a BEAM node: the task exits {:undef, [{Chat, :no_such_fun, ["hi"], []} | _]}
    // and Task.await exits the (trapping) caller with that reason.
    alex.eval("Process.flag(:trap_exit, true)");
    let result = alex.eval(&format!(
        "task = Task.Supervisor.async({{Chat.TaskSupervisor, :{m}}}, Chat, :no_such_fun, [\"hi\"])
         try do
           Task.await(task)
         catch
           :exit, {{{{:undef, [{{Chat, :no_such_fun, [\"hi\"], []}} | _]}}, {{Task, :await, _}}}} -> :undef_as_on_the_beam
         end"
    ));
    assert_eq!(result, ":undef_as_on_the_beam");
    let exit =
        alex.eval("receive do {:EXIT, _, reason} -> elem(reason, 0) after 5000 -> :none end");
    assert_eq!(exit, ":undef");
    // And Moebi keeps serving.
    assert_eq!(
        alex.eval(&format!("Chat.send_message(:{m}, \"still there?\")")),
        ":ok"
    );
    assert!(moebi.wait_for_lines("still there?", 1, WAIT));
}

/// Two BEAM nodes that each connect only to Moebi end up connected to each other, as
/// they would through a BEAM node in Moebi's place (`global` connects a node to the
/// nodes its peer knows; [`trio`] checks it), and `global` stays in sync.
#[test]
fn nodes_that_meet_through_moebi_get_connected() {
    let (_epmd, _moebi, alex, kate) = trio(&[]);
    global_syncs(&alex);
    global_syncs(&kate);
}

/// `:global.sync()` on `node` returns `:ok` (within 10 s): its `global` is in sync with
/// every node it is connected to.
fn global_syncs(node: &BeamNode) {
    let synced = node.eval_timeout(
        "Task.async(fn -> :global.sync() end) |> Task.await(10_000)",
        Duration::from_secs(15),
    );
    assert_eq!(
        synced.as_deref(),
        Ok(":ok"),
        "global:sync() on {}",
        node.node_name()
    );
}

/// Polls the Elixir boolean `condition` on `node` for up to 10 s.
fn eventually(node: &BeamNode, condition: &str) -> bool {
    node.eval(&format!(
        "Enum.any?(1..200, fn _ -> ({condition}) || (Process.sleep(50); false) end)"
    )) == "true"
}

/// Three nodes in one `global` cluster: alex and kate each connect to Moebi only, and
/// `global` connects them to each other.
fn trio(moebi_args: &[&str]) -> (Epmd, RustNode, BeamNode, BeamNode) {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, moebi_args);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    let (m, k) = (moebi.node_name(), kate.node_name());
    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");
    assert_eq!(alex.eval("Node.list()"), format!("[:{m}]"));
    assert_eq!(kate.eval(&format!("Node.ping(:{m})")), ":pong");
    assert!(
        eventually(&alex, &format!("Enum.member?(Node.list(), :{k})")),
        "alex is connected to kate"
    );
    (epmd, moebi, alex, kate)
}

/// When two nodes of a cluster lose each other, a third drops both so that no two
/// partitions overlap (`prevent_overlapping_partitions`): checked against three BEAM
/// nodes, where the third ends up with `Node.list() == []`. Moebi, as the third, hears
/// of it from both, passes it on, and asks each to disconnect it.
#[test]
fn moebi_drops_nodes_that_lost_each_other() {
    let (_epmd, moebi, alex, kate) = trio(&[]);
    let (m, k) = (moebi.node_name(), kate.node_name());
    assert_eq!(alex.eval(&format!(":erlang.disconnect_node(:{k})")), "true");
    // alex's report reaches Moebi before alex could drop it, so kate is asked.
    assert!(
        eventually(&kate, &format!("not Enum.member?(Node.list(), :{m})")),
        "kate dropped Moebi at Moebi's request:\n{}",
        moebi.log()
    );
    let line = format!("'global' at node {m} requested disconnect from node {k} in order to prevent overlapping partitions");
    assert!(moebi.wait_for_log(&line, WAIT), "{}", moebi.log());
    // The next message connects again.
    for node in [&kate, &alex] {
        assert!(reaches(node, &moebi), "{}", moebi.log());
    }
    chats_once_settled(&kate, &moebi, "kate is back");
    chats_once_settled(&alex, &moebi, "alex is back");
}

/// When Moebi loses a node, the nodes it knows hear of it (`lost_connection`) and drop
/// that node, as they would if a BEAM node had lost it.
#[test]
fn moebi_reports_the_nodes_it_loses() {
    let (_epmd, moebi, alex, kate) = trio(&[]);
    let (m, a) = (moebi.node_name(), alex.node_name());
    assert_eq!(
        kate.eval(&format!(
            ":erpc.call(:{m}, :erlang, :disconnect_node, [:{a}])"
        )),
        "true"
    );
    assert!(
        eventually(&kate, &format!("not Enum.member?(Node.list(), :{a})")),
        "kate dropped alex on Moebi's report:\n{}",
        moebi.log()
    );
    for node in [&kate, &alex] {
        assert!(reaches(node, &moebi), "{}", moebi.log());
    }
    chats_once_settled(&alex, &moebi, "alex is back");
}

/// `erlang:nodes/0,1` asked of Moebi over erpc answer as a BEAM node's: `Node.list()`
/// leaves hidden nodes out.
#[test]
fn erlang_nodes_on_moebi_lists_visible_and_hidden_nodes_apart() {
    let (epmd, moebi, alex, kate) = trio(&[]);
    let bob = BeamNode::start_hidden(&unique_name("bob"), COOKIE, &epmd);
    let (m, a, k, b) = (
        moebi.node_name(),
        alex.node_name(),
        kate.node_name(),
        bob.node_name(),
    );
    assert_eq!(bob.eval(&format!("Node.ping(:{m})")), ":pong");
    let nodes = |args: &str| {
        alex.eval(&format!(
            "try do :erpc.call(:{m}, :erlang, :nodes, [{args}]) |> Enum.sort() \
             catch :error, {{:exception, reason, _}} -> reason end"
        ))
    };
    let mut visible = [a.clone(), k.clone()];
    visible.sort();
    let visible = format!("[:{}, :{}]", visible[0], visible[1]);
    assert_eq!(nodes(""), visible);
    assert_eq!(nodes(":visible"), visible);
    assert_eq!(nodes(":hidden"), format!("[:{b}]"));
    let mut this_and_hidden = [m.clone(), b.clone()];
    this_and_hidden.sort();
    assert_eq!(
        nodes("[:this, :hidden]"),
        format!("[:{}, :{}]", this_and_hidden[0], this_and_hidden[1])
    );
    assert_eq!(nodes(":connected").matches(':').count(), 3);
    assert_eq!(nodes(":nope"), ":badarg");
    // A visible node's connection is logged; a hidden one's only at debug level.
    assert!(
        moebi.log().contains(&format!("node up: {a}")),
        "{}",
        moebi.log()
    );
    assert!(
        !moebi.log().contains(&format!("node up: {b}")),
        "{}",
        moebi.log()
    );
    assert_eq!(nodes("[:nope]"), ":badarg");
}

/// With `--prevent-overlapping-partitions false`, as with `-kernel
/// prevent_overlapping_partitions false` on a BEAM node, Moebi neither passes on nor acts
/// on the reports: it stays connected to both nodes that lost each other.
#[test]
fn without_prevent_overlapping_partitions_moebi_keeps_both() {
    let (_epmd, moebi, alex, kate) = trio(&["--prevent-overlapping-partitions", "false"]);
    let (m, k) = (moebi.node_name(), kate.node_name());
    assert_eq!(alex.eval(&format!(":erlang.disconnect_node(:{k})")), "true");
    // Each reported the loss to Moebi's global_name_server before this call to it.
    for node in [&alex, &kate] {
        assert_eq!(
            node.eval(&format!(
                "GenServer.call({{:global_name_server, :{m}}}, {{:del_lock, {{:x, self()}}}})"
            )),
            "true"
        );
        assert!(node.eval("Node.list()").contains(&m));
    }
    assert!(!moebi.log().contains("overlapping"), "{}", moebi.log());
}

/// Names reach a node through Moebi: kate knows only Moebi when Moebi meets alex, so
/// kate learns alex's names from what Moebi passes on (`new_nodes` with the sync's name
/// operations), as from a BEAM node in Moebi's place; and alex learns kate's.
#[test]
fn global_names_pass_through_moebi() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    let (m, a) = (moebi.node_name(), alex.node_name());
    let register = |node: &BeamNode, name: &str| {
        node.eval(&format!(
            "pid = spawn(fn -> Process.sleep(:infinity) end); :global.register_name(:{name}, pid)"
        ))
    };
    assert_eq!(register(&alex, "at_alex"), ":yes");
    assert_eq!(kate.eval(&format!("Node.ping(:{m})")), ":pong");
    global_syncs(&kate);
    assert_eq!(register(&kate, "at_kate"), ":yes");
    // Moebi meets alex, asked by kate.
    assert_eq!(
        kate.eval(&format!(
            ":rpc.call(:{m}, :net_kernel, :connect_node, [:{a}])"
        )),
        "true"
    );
    global_syncs(&alex);
    global_syncs(&kate);
    let whereis = |node: &BeamNode, name: &str| {
        node.eval(&format!(
            "Enum.find_value(1..100, fn _ ->
               case :global.whereis_name(:{name}) do
                 :undefined -> Process.sleep(50); nil
                 pid -> node(pid)
               end
             end)"
        ))
    };
    assert_eq!(
        whereis(&kate, "at_alex"),
        format!(":{a}"),
        "{}",
        moebi.log()
    );
    assert_eq!(whereis(&alex, "at_kate"), format!(":{}", kate.node_name()));
}

#[test]
fn global_stays_healthy_with_moebi_connected() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    let m = moebi.node_name();

    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");
    assert_eq!(kate.eval(&format!("Node.ping(:{m})")), ":pong");
    assert_eq!(
        kate.eval(&format!("Node.ping(:{})", alex.node_name())),
        ":pong"
    );
    global_syncs(&alex);
    global_syncs(&kate);
    assert_eq!(
        alex.eval(
            "pid = spawn(fn -> Process.sleep(:infinity) end); :global.register_name(:shared, pid)"
        ),
        ":yes"
    );
    let seen = kate.eval("Enum.find_value(1..100, fn _ -> (p = :global.whereis_name(:shared)) != :undefined && node(p) || (Process.sleep(50); nil) end)");
    assert_eq!(seen, format!(":{}", alex.node_name()));
    assert!(
        kate.eval("Node.list()").contains(&m),
        "moebi stays connected"
    );
}
