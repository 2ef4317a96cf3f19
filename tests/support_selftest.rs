//! Self-test of the harness in `tests/support`: real BEAM nodes, each test
//! with its own EPMD and node names, so these run in parallel.

mod support;

use std::time::Duration;
use support::{unique_name, BeamNode, Epmd};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn alex_sends_hi_to_kate() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    eprintln!(
        "startup: alex {:?}, kate {:?}",
        alex.startup_time(),
        kate.startup_time()
    );

    let kate_name = kate.node_name();
    assert_eq!(
        alex.eval(&format!(r#"Chat.send_message(:"{kate_name}", "hi")"#)),
        ":ok"
    );
    assert!(
        kate.wait_for_output("hi\n", WAIT),
        "kate did not print hi: {:?}",
        kate.output()
    );
    assert_eq!(kate.count_in_output("hi\n"), 1);
    assert!(!alex.output().contains("hi"), "{:?}", alex.output());

    let mut names: Vec<String> = epmd.names().into_iter().map(|(n, _)| n).collect();
    names.sort();
    let mut expected = vec![
        alex.node_name().replace("@localhost", ""),
        kate_name.replace("@localhost", ""),
    ];
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn ping_pong_and_wrong_cookie_pang() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start_plain(&unique_name("kate"), COOKIE, &epmd);
    let eve = BeamNode::start_plain(&unique_name("eve"), "not_the_cookie", &epmd);

    let ping =
        |from: &BeamNode, to: &BeamNode| from.eval(&format!(r#"Node.ping(:"{}")"#, to.node_name()));
    assert_eq!(ping(&alex, &kate), ":pong");
    assert_eq!(ping(&kate, &alex), ":pong");
    assert_eq!(alex.eval("Node.list()"), format!("[:{}]", kate.node_name()));
    assert_eq!(ping(&eve, &alex), ":pang");
    assert_eq!(ping(&alex, &eve), ":pang");
    assert_eq!(eve.eval("Node.list()"), "[]");

    // The plain node has no Chat app (not even the modules).
    assert_eq!(kate.eval("Process.whereis(Chat.TaskSupervisor)"), "nil");
    assert_eq!(kate.eval("Code.ensure_loaded?(Chat)"), "false");
    assert_eq!(alex.eval("Code.ensure_loaded?(Chat)"), "true");
}

#[test]
fn evaluator_behaves_like_an_iex_session() {
    let epmd = Epmd::start();
    let node = BeamNode::start_plain(&unique_name("iex"), COOKIE, &epmd);

    // Bindings, aliases and the process persist between evals.
    assert_eq!(node.eval("x = 21"), "21");
    assert_eq!(node.eval("x * 2"), "42");
    assert_eq!(node.eval("alias String, as: S"), "String");
    assert_eq!(node.eval(r#"S.upcase("a")"#), r#""A""#);
    let pid = node.eval("self()");
    assert_eq!(node.eval("self()"), pid);
    assert_eq!(node.eval("Process.flag(:trap_exit, true)"), "false");
    assert_eq!(node.eval("Process.flag(:trap_exit, true)"), "true");

    // Mailbox: flush() returns the messages; next_message/1 waits for one.
    node.eval("send(self(), {:a, 1}); send(self(), :b)");
    assert_eq!(node.eval("flush()"), "[{:a, 1}, :b]");
    assert_eq!(node.eval("flush()"), "[]");
    node.eval("me = self(); spawn(fn -> Process.sleep(200); send(me, :late) end)");
    assert_eq!(node.eval("next_message(5000)"), ":late");
    assert_eq!(node.eval("next_message(10)"), ":timeout");

    // Multi-line expressions, strings with any characters, no truncation.
    assert_eq!(
        node.eval("case 1 + 1 do\n  2 -> \"two\\n>>\\\"\"\n  _ -> :other\nend"),
        r#""two\n>>\"""#
    );
    assert_eq!(node.eval("Enum.to_list(1..100) |> length()"), "100");
    assert_eq!(node.eval("Enum.to_list(1..60)").matches(", ").count(), 59);

    // Output printed by the evaluator, and by other processes of the node.
    assert_eq!(node.eval(r#"IO.puts("printed by eval")"#), ":ok");
    assert!(node.output().contains("printed by eval\n"));
    node.eval(r#"spawn(fn -> IO.write("no newline") end); Process.sleep(50)"#);
    assert!(node.wait_for_output("no newline", WAIT));
    assert!(!node.output().contains("cnode-driver"), "{}", node.output());

    // Errors come back as iex prints them, and the session survives them.
    let err = node
        .eval_timeout(r#"raise "boom""#, WAIT)
        .expect_err("raise must fail");
    assert!(err.starts_with("** (RuntimeError) boom"), "{err}");
    assert_eq!(node.eval("x"), "21");
    let err = node.eval_timeout("1 +", WAIT).unwrap_err();
    assert!(err.starts_with("** (TokenMissingError)"), "{err}");

    // Timeouts are bounded; later evals queue behind the slow one.
    let err = node
        .eval_timeout("Process.sleep(1500); :slow", Duration::from_millis(100))
        .unwrap_err();
    assert!(err.starts_with("timeout"), "{err}");
    assert_eq!(node.eval(":after_slow"), ":after_slow");

    // A dying evaluator is replaced (fresh bindings), like the iex shell.
    node.eval("Process.flag(:trap_exit, false)");
    let err = node
        .eval_timeout(
            "spawn_link(fn -> exit(:crash) end); Process.sleep(1000)",
            WAIT,
        )
        .unwrap_err();
    assert!(err.contains("EXIT") && err.contains(":crash"), "{err}");
    assert_ne!(node.eval("self()"), pid);
    assert_eq!(node.eval("binding()"), "[]");
}

#[test]
fn beam_moebi_answers_chicken() {
    // The reference behaviour a Rust moebi must reproduce: alex sends "hi" to
    // a moebi node, moebi prints it and sends "chicken?" back to alex.
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let moebi = BeamNode::start(&unique_name("moebi"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!(
            r#"Chat.send_message(:"{}", "hi")"#,
            moebi.node_name()
        )),
        ":ok"
    );
    assert!(moebi.wait_for_output("hi\n", WAIT), "{}", moebi.output());
    assert!(
        alex.wait_for_output("chicken?\n", WAIT),
        "{}",
        alex.output()
    );
    assert_eq!(moebi.count_in_output("chicken?"), 0);
}

#[test]
fn remote_process_prints_on_its_group_leader_node() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    let kate_name = kate.node_name();
    // Node.spawn inherits alex's group leader: output shows up on alex.
    alex.eval(&format!(
        r#"Node.spawn(:"{kate_name}", fn -> IO.puts("from kate, on alex") end)"#
    ));
    assert!(alex.wait_for_output("from kate, on alex\n", WAIT));
    // Echo server on kate, called from alex.
    assert!(kate
        .eval("Chat.Echo.start(:echo)")
        .starts_with("{:ok, #PID<"));
    assert_eq!(
        alex.eval(&format!(
            r#"GenServer.call({{:echo, :"{kate_name}"}}, {{:hello, [1, 2.5, "x"]}})"#
        )),
        r#"{:hello, [1, 2.5, "x"]}"#
    );
    assert_eq!(kate.count_in_output("from kate"), 0);
}

#[test]
fn dropping_a_node_kills_it() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start_plain(&unique_name("kate"), COOKIE, &epmd);
    let kate_pid = kate.os_pid();
    let kate_name = kate.node_name();
    assert_eq!(alex.eval(&format!(r#"Node.ping(:"{kate_name}")"#)), ":pong");
    alex.eval(&format!(r#"Node.monitor(:"{kate_name}", true)"#));
    drop(kate);
    assert_eq!(
        alex.eval("next_message(10000)"),
        format!("{{:nodedown, :{kate_name}}}")
    );
    assert!(!std::path::Path::new(&format!("/proc/{kate_pid}")).exists());
    let deadline = std::time::Instant::now() + WAIT;
    while epmd.names().len() != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(epmd.names().len(), 1, "{:?}", epmd.names());
}
