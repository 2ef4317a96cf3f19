//! A cluster that mixes OTP releases, as during a rolling upgrade: an Elixir node on the
//! release first on `PATH` and one on another release (`scripts/test --otp 29` runs this
//! with OTP 29 / Elixir 1.20 on `PATH` and the system's OTP 25 / Elixir 1.14 as the
//! other), with Moebi between them. Each node chats with Moebi in the seed's way, and
//! with the other through the cluster Moebi keeps.
//!
//! Ignored by a plain `cargo test`, which has one release only; scripts/test runs it
//! with `--include-ignored` on every release it is given.

mod support;

use std::time::Duration;
use support::{unique_name, BeamNode, Epmd, Release, RustNode};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(15);

#[test]
#[ignore = "needs a second OTP release: scripts/test --otp 29 runs it"]
fn nodes_of_two_releases_chat_through_moebi() {
    let other = Release::other();
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start_release(&unique_name("kate"), COOKIE, &epmd, &other);
    let (m, k) = (moebi.node_name(), kate.node_name());
    let release = ":erlang.system_info(:otp_release)";
    assert_ne!(
        alex.eval(release),
        kate.eval(release),
        "the two nodes run different releases"
    );

    // Each chats with Moebi as in the seed: Moebi prints, and answers chicken? through
    // the caller's own Task.Supervisor.
    for (node, text) in [(&alex, "hi from alex"), (&kate, "hi from kate")] {
        assert_eq!(
            node.eval(&format!("Chat.send_message(:{m}, \"{text}\")")),
            ":ok"
        );
        assert!(moebi.wait_for_lines(text, 1, WAIT), "{}", moebi.output());
        assert!(
            node.wait_for_output("chicken?", WAIT),
            "{} prints chicken?:\n{}",
            node.node_name(),
            node.output()
        );
    }

    // Task.Supervisor.start_child on Moebi from both releases' Elixir (1.14 sends the
    // MFA in the call, 1.15+ after it), and a GenServer.call whose reply travels as
    // each release sends alias messages.
    for node in [&alex, &kate] {
        let started = node.eval(&format!(
            "{{:ok, pid}} = Task.Supervisor.start_child({{Chat.TaskSupervisor, :{m}}}, \
             Chat, :receive_message, [\"child of {}\"])
             node(pid)",
            node.node_name()
        ));
        assert_eq!(started, format!(":{m}"));
        assert!(
            moebi.wait_for_lines(&format!("child of {}", node.node_name()), 1, WAIT),
            "{}",
            moebi.output()
        );
        assert_eq!(
            node.eval(&format!("GenServer.call({{:echo, :{m}}}, :hello)")),
            ":hello"
        );
    }

    // alex and kate met only through Moebi: global connects them, and they chat.
    let met =
        format!("Enum.any?(1..200, fn _ -> :{k} in Node.list() or (Process.sleep(50); false) end)");
    assert_eq!(alex.eval(&met), "true", "{}", moebi.log());
    assert_eq!(
        alex.eval(&format!("Chat.send_message(:{k}, \"across releases\")")),
        ":ok"
    );
    assert!(
        kate.wait_for_output("across releases", WAIT),
        "{}",
        kate.output()
    );
}
