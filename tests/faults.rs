//! Faults around the real Moebi binary: a peer killed with SIGKILL, a peer that stops
//! ticking, EPMD restarted under the node. Links and monitors across a lost connection
//! fire with `noconnection`, the node logs what happened, and later connections work.

mod fakepeer;
mod support;

use eetf::Term;
use fakepeer::{atom, closed_within, int, tuple, Peer, OTP25_FLAGS};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{unique_name, BeamNode, Epmd, RustNode};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(15);

/// Waits on `node` until `name` is registered on Moebi `m`, and returns an expression
/// for its pid there.
fn await_registered(node: &BeamNode, m: &str, name: &str) {
    assert_eq!(
        node.eval(&format!(
            "Enum.find_value(1..200, :timeout, fn _ ->
               case :rpc.call(:{m}, :erlang, :whereis, [:{name}]) do
                 pid when is_pid(pid) -> :registered
                 _ -> Process.sleep(25); nil
               end
             end)"
        )),
        ":registered"
    );
}

/// `kate` monitors `name` on Moebi; the monitor's reference is bound to `var`.
fn monitor_name(kate: &BeamNode, m: &str, name: &str, var: &str) {
    kate.eval(&format!(
        "{var} = Process.monitor(:rpc.call(:{m}, :erlang, :whereis, [:{name}])); :ok"
    ));
}

/// The reason of the `DOWN` for the monitor bound to `var`.
fn down_reason(kate: &BeamNode, var: &str) -> String {
    kate.eval(&format!(
        "receive do {{:DOWN, ^{var}, :process, _, reason}} -> reason after 10_000 -> :no_down end"
    ))
}

#[test]
fn a_peer_killed_with_sigkill_fires_links_and_monitors_with_noconnection() {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let m = moebi.node_name();
    let alex_name = unique_name("alex");
    let alex = BeamNode::start(&alex_name, COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");
    assert_eq!(kate.eval(&format!("Node.ping(:{m})")), ":pong");

    // A Moebi process linked to alex's shell, and one monitoring a process of alex's.
    alex.eval(&format!(
        "Node.spawn_link(:{m}, Moebi, :wait, [:linked_to_alex])"
    ));
    alex.eval("Process.register(spawn(fn -> Process.sleep(:infinity) end), :target); :ok");
    kate.eval(&format!(
        "target = :rpc.call(:{}, Process, :whereis, [:target])
         watcher = Node.spawn(:{m}, Moebi, :watch, [target])
         watching = Process.monitor(watcher); :ok",
        alex.node_name()
    ));
    await_registered(&kate, &m, "linked_to_alex");
    monitor_name(&kate, &m, "linked_to_alex", "linked");
    // The watcher's monitor is in place once a call through Moebi has come back.
    assert_eq!(
        kate.eval(&format!("GenServer.call({{:echo, :{m}}}, :sync)")),
        ":sync"
    );

    let status = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", alex.os_pid())])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        down_reason(&kate, "linked"),
        ":noconnection",
        "{}",
        moebi.log()
    );
    assert_eq!(
        down_reason(&kate, "watching"),
        ":noconnection",
        "{}",
        moebi.log()
    );
    assert!(
        moebi.wait_for_log(&format!("node down: {}", alex.node_name()), WAIT),
        "{}",
        moebi.log()
    );
    drop(alex);

    // kate never noticed; alex, restarted under the same name, gets in and chats.
    assert!(kate.eval("Node.list()").contains(&m));
    let alex = BeamNode::start(&alex_name, COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{m})")),
        ":pong",
        "{}",
        moebi.log()
    );
    assert_eq!(
        alex.eval(&format!("Chat.send_message(:{m}, \"I am back\")")),
        ":ok"
    );
    assert!(moebi.wait_for_lines("I am back", 1, WAIT));
    assert!(alex.wait_for_output("chicken?", WAIT), "{}", alex.output());
    let log = moebi.log();
    assert!(
        !log.contains("panicked") && !log.contains("rust_panic"),
        "{log}"
    );
}

/// Moebi with `--net-ticktime 4`, and the port its distribution listens on.
fn moebi_ticking_every_4s(epmd: &Epmd) -> (RustNode, u16) {
    let moebi = RustNode::start(
        &unique_name("moebi"),
        COOKIE,
        epmd,
        &["--net-ticktime", "4"],
    );
    let name = moebi.node_name();
    let alive = name.split('@').next().unwrap();
    let port = fakepeer::node_port(epmd.port(), alive);
    (moebi, port)
}

#[test]
fn a_peer_that_stops_ticking_is_dropped_after_net_ticktime() {
    let epmd = Epmd::start();
    let (moebi, port) = moebi_ticking_every_4s(&epmd);
    let m = moebi.node_name();
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    // Nodes of a cluster share net_ticktime (kate would tick every 15 s otherwise, and
    // Moebi, as a BEAM node would, drop her after 4 s without a word).
    kate.eval(":net_kernel.set_net_ticktime(4, 0)");
    assert_eq!(
        kate.eval("Process.sleep(100); :net_kernel.get_net_ticktime()"),
        "4"
    );
    assert_eq!(kate.eval(&format!("Node.ping(:{m})")), ":pong");

    // A peer that completes the handshake, spawns a process linked to it on Moebi
    // (`Moebi.wait(:linked_to_silent)`), and then says nothing more.
    let name = format!("{}@localhost", unique_name("silent"));
    let mut silent = Peer::connect(port, &name, COOKIE, OTP25_FLAGS).unwrap();
    let me = Term::from(silent.pid(1));
    let req = Term::from(silent.reference(5));
    silent
        .send_control(
            tuple(vec![
                int(29),
                req.clone(),
                me.clone(),
                me.clone(),
                tuple(vec![atom("Elixir.Moebi"), atom("wait"), int(1)]),
                Term::from(eetf::List::from(vec![atom("link")])),
            ]),
            Some(Term::from(eetf::List::from(vec![atom("linked_to_silent")]))),
        )
        .unwrap();
    let reply = silent.next_message_where(
        WAIT,
        |c, _| matches!(c, Term::Tuple(t) if t.elements.first() == Some(&int(31))),
    );
    let t0 = Instant::now();
    assert!(reply.is_some(), "SPAWN_REPLY\n{}", moebi.log());
    await_registered(&kate, &m, "linked_to_silent");
    monitor_name(&kate, &m, "linked_to_silent", "linked");

    let closed = closed_within(&mut silent.stream, Duration::from_secs(12));
    let at = t0.elapsed();
    assert!(
        closed.is_some(),
        "still connected after 12 s\n{}",
        moebi.log()
    );
    assert!(
        at >= Duration::from_millis(3500) && at <= Duration::from_millis(6500),
        "dropped after {at:?}, expected about net_ticktime (4 s)"
    );
    assert!(
        moebi.wait_for_log(&format!("** Node {name} not responding **"), WAIT),
        "{}",
        moebi.log()
    );
    assert_eq!(
        down_reason(&kate, "linked"),
        ":noconnection",
        "{}",
        moebi.log()
    );
    // kate ticks: still connected after all that.
    assert!(kate.eval("Node.list()").contains(&m));
    assert_eq!(
        kate.eval(&format!("Chat.send_message(:{m}, \"tick tock\")")),
        ":ok"
    );
    assert!(moebi.wait_for_lines("tick tock", 1, WAIT));
    // The same peer may come back.
    let mut again = Peer::connect(port, &name, COOKIE, OTP25_FLAGS).unwrap();
    assert!(again.ping(WAIT));
}

/// A link that trickles is as dead as a silent one: the BEAM counts whole packets as
/// input, not bytes, so a peer that sends a frame a byte at a time (a link throttled to
/// nothing) is dropped after net_ticktime, as a silent one is.
#[test]
fn a_peer_that_trickles_is_dropped_after_net_ticktime() {
    let epmd = Epmd::start();
    let (moebi, port) = moebi_ticking_every_4s(&epmd);
    let name = format!("{}@localhost", unique_name("trickle"));
    let mut peer = Peer::connect(port, &name, COOKIE, OTP25_FLAGS).unwrap();
    let t0 = Instant::now();
    // A frame of 1 MB announced, then one byte of it every 200 ms.
    peer.send_raw(&(1_000_000u32).to_be_bytes()).unwrap();
    let mut writer = peer.stream.try_clone().unwrap();
    std::thread::spawn(move || {
        use std::io::Write as _;
        while writer.write_all(&[112]).is_ok() {
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let closed = closed_within(&mut peer.stream, Duration::from_secs(20));
    let at = t0.elapsed();
    assert!(
        closed.is_some(),
        "still connected after 20 s\n{}",
        moebi.log()
    );
    assert!(
        at >= Duration::from_millis(3500),
        "dropped after {at:?}, before net_ticktime (4 s)"
    );
    assert!(
        moebi.wait_for_log(&format!("** Node {name} not responding **"), WAIT),
        "{}",
        moebi.log()
    );
}

#[test]
fn epmd_restarted_under_the_node() {
    let mut epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, &[]);
    let m = moebi.node_name();
    let alive = m.split('@').next().unwrap().to_owned();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");

    epmd.kill();
    assert!(
        moebi.wait_for_log("lost the EPMD registration", WAIT),
        "{}",
        moebi.log()
    );
    // While it is being restarted, nobody takes its port (the node waits for it).
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        Command::new("epmd")
            .args(["-names"])
            .env("ERL_EPMD_PORT", epmd.port().to_string())
            .output()
            .is_ok_and(|o| !o.status.success()),
        "an EPMD answers on port {} before the restart",
        epmd.port()
    );
    epmd.restart();
    let t0 = Instant::now();
    let registered_within = |alive: &str, secs| loop {
        if epmd.names().iter().any(|(n, _)| n == alive) {
            return true;
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        registered_within(&alive, 5),
        "not registered again within 5 s\n{}",
        moebi.log()
    );
    // alex registers again too, by itself (its `erl_epmd` retries every 2 s). Until it
    // has, a node that joins cannot reach alex, and `global` then takes alex out of the
    // cluster to prevent overlapping partitions, on Moebi as on a BEAM node: kate starts
    // once both are there.
    let alex_alive = alex.node_name().split('@').next().unwrap().to_owned();
    assert!(
        registered_within(&alex_alive, 30),
        "alex not registered again within 30 s: {:?}",
        epmd.names()
    );
    let listed = Command::new("epmd")
        .args(["-names"])
        .env("ERL_EPMD_PORT", epmd.port().to_string())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&format!("name {alive} at port")),
        "{listed:?}"
    );
    assert!(moebi.wait_for_log("registered with EPMD again", WAIT));

    // A node started now finds Moebi through the new EPMD; alex stayed connected.
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    assert_eq!(
        kate.eval(&format!("Node.ping(:{m})")),
        ":pong",
        "{}",
        moebi.log()
    );
    assert_eq!(
        kate.eval(&format!("Chat.send_message(:{m}, \"found you\")")),
        ":ok"
    );
    assert!(moebi.wait_for_lines("found you", 1, WAIT));
    assert!(kate.wait_for_output("chicken?", WAIT), "{}", kate.output());
    let listed = alex.eval("Node.list()");
    assert!(
        listed.contains(&m),
        "alex lists {listed}\n--- moebi ---\n{}\n--- alex ---\n{}\n--- kate ---\n{}",
        moebi.log(),
        alex.output(),
        kate.output()
    );
}
