//! The Task.Supervisor protocol as recorded on the wire, replayed message by message
//! against the library's `Task.Supervisor`: the OTP 25 / Elixir 1.14 form,
//! `start_child` as Elixir 1.14 and as 1.15 to 1.20 send it, and the older
//! form of the seed's error message, where the MFA travels inside the `start_task` call:
//!
//! ```text
//! GenServer.call({Chat.TaskSupervisor, :moebi@localhost}, {:start_task, [#PID<0.158.0>,
//!   :monitor, {:sophie@localhost, #PID<0.158.0>}, {Chat, :receive_message_for_moebi,
//!   ["hi", :sophie@localhost]}], :temporary, nil}, :infinity)
//! ```

mod support;

use support::in_process;

use cnode::epmd::server::EpmdServer;
use cnode::term::{atom, binary, int, list, tuple, Match, Term};
use cnode::{Node, NodeConfig};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn two_nodes() -> (EpmdServer, Node, Node) {
    let epmd = EpmdServer::bind(0).await.expect("in-process EPMD");
    let mut nodes = Vec::new();
    for prefix in ["sophie", "moebi"] {
        let name = format!("{}@localhost", support::unique_name(prefix));
        let mut config = NodeConfig::new(&name, "secret_token");
        config.epmd_port = epmd.local_port();
        nodes.push(Node::start(config).await.expect("the node starts"));
    }
    let moebi = nodes.pop().unwrap();
    let sophie = nodes.pop().unwrap();
    moebi.register_function("Elixir.Chat", "receive_message", 1, |_p, args| async move {
        Ok(tuple(vec![atom("received"), args[0].clone()]))
    });
    moebi
        .start_task_supervisor("Elixir.Chat.TaskSupervisor")
        .expect("the task supervisor starts");
    (epmd, sophie, moebi)
}

fn ok_pid(reply: Term) -> cnode::term::Pid {
    match reply.as_tuple_n(2) {
        Some([ok, Term::Pid(pid)]) if ok.is_atom("ok") => *pid,
        _ => panic!("expected {{:ok, pid}}, got {reply}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otp25_start_task_exchange() {
    let (_epmd, sophie, moebi) = two_nodes().await;
    let target = moebi.name().to_owned();
    let result = in_process(&sophie, move |mut p| async move {
        let me = Term::Pid(p.pid());
        let sup = ("Elixir.Chat.TaskSupervisor", target.as_str());
        // {:start_task, [{node, owner, owner}, :monitor], :temporary, nil}
        let owner = tuple(vec![atom(p.node().name()), me.clone(), me.clone()]);
        let request = tuple(vec![
            atom("start_task"),
            list(vec![owner, atom("monitor")]),
            atom("temporary"),
            atom("nil"),
        ]);
        let pid = ok_pid(p.call(sup, request, Some(WAIT)).await.unwrap());
        // LINK, MONITOR_P (with alias), then {owner, ref, reply_to, callers, mfa}.
        p.trap_exit(true);
        p.link(&pid);
        let r3 = p.monitor_with_alias(pid);
        let r3t = Term::Reference(Box::new(r3.clone()));
        p.send(
            pid,
            tuple(vec![
                me.clone(),
                r3t.clone(),
                r3t.clone(),
                list(vec![me]),
                tuple(vec![
                    atom("Elixir.Chat"),
                    atom("receive_message"),
                    list(vec![binary("hi")]),
                ]),
            ]),
        );
        // {R3, result} to the alias, then the link's EXIT and the monitor's DOWN, normal.
        let reply = p.receive_timeout(WAIT).await.expect("the task's reply");
        let exit = p.receive_timeout(WAIT).await.expect("the link's exit");
        let down = p.receive_timeout(WAIT).await.expect("the monitor's DOWN");
        (r3t, reply, exit, down)
    })
    .await;
    let (r3, reply, exit, down) = result;
    assert_eq!(
        reply,
        tuple(vec![
            r3.clone(),
            tuple(vec![atom("received"), binary("hi")])
        ])
    );
    let exit = exit.as_tuple_n(3).expect("{:EXIT, pid, reason}").to_vec();
    assert!(
        exit[0].is_atom("EXIT") && exit[2].is_atom("normal"),
        "{exit:?}"
    );
    let down = down.as_tuple_n(5).expect("{:DOWN, ...}").to_vec();
    assert!(
        down[0].is_atom("DOWN") && down[1] == r3 && down[4].is_atom("normal"),
        "{down:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_older_start_task_form_of_the_seeds_error_message() {
    let (_epmd, sophie, moebi) = two_nodes().await;
    let target = moebi.name().to_owned();
    let (reference, reply) = in_process(&sophie, move |mut p| async move {
        let me = Term::Pid(p.pid());
        let sup = ("Elixir.Chat.TaskSupervisor", target.as_str());
        // {:start_task, [owner, :monitor, {node, owner}, {m, f, a}], :temporary, nil}
        let request = tuple(vec![
            atom("start_task"),
            list(vec![
                me.clone(),
                atom("monitor"),
                tuple(vec![atom(p.node().name()), me.clone()]),
                tuple(vec![
                    atom("Elixir.Chat"),
                    atom("receive_message"),
                    list(vec![binary("hi")]),
                ]),
            ]),
            atom("temporary"),
            atom("nil"),
        ]);
        let pid = ok_pid(p.call(sup, request, Some(WAIT)).await.unwrap());
        // The older Task: Process.link + Process.monitor, then {owner, ref}; the reply
        // {ref, result} comes to the owner's pid.
        p.link(&pid);
        let reference = p.monitor(pid);
        let rt = Term::Reference(Box::new(reference));
        p.send(pid, tuple(vec![me, rt.clone()]));
        let reply = p
            .receive_match(Some(WAIT), |m| m.as_tuple_n(2).is_some_and(|e| e[0] == rt))
            .await;
        (rt, reply)
    })
    .await;
    assert_eq!(
        reply,
        Some(tuple(vec![
            reference,
            tuple(vec![atom("received"), binary("hi")])
        ]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_never_started_times_out_like_task_supervised() {
    let (_epmd, sophie, moebi) = two_nodes().await;
    let target = moebi.name().to_owned();
    // The owner asks for a task but never sends the start message: after 5 s
    // (Task.Supervised's @ref_timeout) the task exits :timeout, as on the BEAM.
    let down = in_process(&sophie, move |mut p| async move {
        let me = Term::Pid(p.pid());
        let owner = tuple(vec![atom(p.node().name()), me.clone(), me]);
        let request = tuple(vec![
            atom("start_task"),
            list(vec![owner, atom("monitor")]),
            atom("temporary"),
            atom("nil"),
        ]);
        let pid = ok_pid(
            p.call(
                ("Elixir.Chat.TaskSupervisor", target.as_str()),
                request,
                Some(WAIT),
            )
            .await
            .unwrap(),
        );
        p.monitor(pid);
        p.receive_timeout(WAIT).await
    })
    .await
    .expect("a DOWN");
    assert!(
        down.as_tuple_n(5).is_some_and(|e| e[4].is_atom("timeout")),
        "{down}"
    );
}

/// `Task.Supervisor.start_child/5` from Elixir 1.14 (and from 1.15+ with a restart other
/// than `:temporary`): `{:start_task, [owner, callers, {m, f, a}], restart, shutdown}`,
/// answered `{:ok, pid}`; the task runs the MFA at once and replies to nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elixir_114_start_child_exchange() {
    let (_epmd, sophie, moebi) = two_nodes().await;
    // The MFA tells the owner (registered as `probe`) that it ran.
    let owner_node = sophie.name().to_owned();
    moebi.register_function("Elixir.Probe", "ran", 1, move |p, args| {
        let owner_node = owner_node.clone();
        async move {
            p.send(("probe", owner_node.as_str()), args[0].clone());
            Ok(atom("ok"))
        }
    });
    let target = moebi.name().to_owned();
    let (started, ran, after) = in_process(&sophie, move |mut p| async move {
        p.register("probe").unwrap();
        let me = Term::Pid(p.pid());
        let owner = tuple(vec![atom(p.node().name()), atom("probe"), me.clone()]);
        let request = tuple(vec![
            atom("start_task"),
            list(vec![
                owner,
                list(vec![me]),
                tuple(vec![
                    atom("Elixir.Probe"),
                    atom("ran"),
                    list(vec![binary("hi")]),
                ]),
            ]),
            atom("nil"),
            atom("nil"),
        ]);
        let sup = ("Elixir.Chat.TaskSupervisor", target.as_str());
        let started = p.call(sup, request, Some(WAIT)).await.unwrap();
        let ran = p.receive_timeout(WAIT).await;
        // Nothing else is sent to the owner.
        let after = p.receive_timeout(Duration::from_millis(300)).await;
        (started, ran, after)
    })
    .await;
    ok_pid(started);
    assert_eq!(ran, Some(binary("hi")));
    assert_eq!(after, None);
}

/// `Task.Supervisor.start_child/5` since Elixir 1.15 (temporary): `{:start_task, [owner,
/// :monitor], nil, nil}`, then `{owner, r, r, callers, mfa}` with `r = make_ref()`, a
/// plain reference: the task runs the MFA, and its reply to `r` is dropped by the
/// owner's node, as no alias is behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_elixir_115_start_child_exchange() {
    let (_epmd, sophie, moebi) = two_nodes().await;
    let target = moebi.name().to_owned();
    let (down, after) = in_process(&sophie, move |mut p| async move {
        let me = Term::Pid(p.pid());
        let owner = tuple(vec![atom(p.node().name()), me.clone(), me.clone()]);
        let request = tuple(vec![
            atom("start_task"),
            list(vec![owner, atom("monitor")]),
            atom("nil"),
            atom("nil"),
        ]);
        let sup = ("Elixir.Chat.TaskSupervisor", target.as_str());
        let pid = ok_pid(p.call(sup, request, Some(WAIT)).await.unwrap());
        let monitor = p.monitor(pid);
        let r = Term::Reference(Box::new(p.node().make_ref()));
        p.send(
            pid,
            tuple(vec![
                me.clone(),
                r.clone(),
                r,
                list(vec![me]),
                tuple(vec![
                    atom("Elixir.Chat"),
                    atom("receive_message"),
                    list(vec![binary("hi")]),
                ]),
            ]),
        );
        let down = p
            .receive_match(Some(WAIT), |m| {
                m.as_tuple_n(5)
                    .is_some_and(|e| e[1] == Term::Reference(Box::new(monitor.clone())))
            })
            .await;
        let after = p.receive_timeout(Duration::from_millis(300)).await;
        (down, after)
    })
    .await;
    let down = down.expect("the task's DOWN");
    assert!(
        down.as_tuple_n(5).is_some_and(|e| e[4].is_atom("normal")),
        "{down}"
    );
    assert_eq!(after, None, "the reply to a plain reference is dropped");
}

/// `DynamicSupervisor.start_child/2` naming a registered function: the supervisor
/// applies it as a `start_link`, supervises the pid of its `{:ok, pid, info}` by the
/// child spec, and applies it again when that permanent child is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_supervisor_start_child_applies_a_registered_start_function() {
    let (_epmd, sophie, moebi) = two_nodes().await;
    moebi.register_function("Elixir.Worker", "start_link", 1, |p, args| async move {
        let worker = p.spawn_link(|mut w| async move {
            loop {
                w.receive().await;
            }
        });
        Ok(tuple(vec![atom("ok"), Term::Pid(worker), args[0].clone()]))
    });
    let target = moebi.name().to_owned();
    let (started, children) = in_process(&sophie, move |mut p| async move {
        let sup = ("Elixir.Chat.TaskSupervisor", target.as_str());
        let worker = atom("Elixir.Worker");
        let spec = tuple(vec![
            tuple(vec![
                worker.clone(),
                atom("start_link"),
                list(vec![atom("info")]),
            ]),
            atom("permanent"),
            int(5000),
            atom("worker"),
            list(vec![worker]),
        ]);
        let request = tuple(vec![atom("start_child"), spec]);
        let started = p.call(sup, request, Some(WAIT)).await.unwrap();
        let first = started.as_tuple().expect("{:ok, pid, info}")[1].clone();
        p.exit(first.as_pid().unwrap(), atom("kill"));
        // Started again: a child of another pid.
        for _ in 0..200 {
            let children = p
                .call(sup, atom("which_children"), Some(WAIT))
                .await
                .unwrap();
            match children.as_list() {
                Some([child]) if child.as_tuple().unwrap()[1] != first => {
                    return (started, child.clone());
                }
                _ => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
        panic!("the killed child was not started again");
    })
    .await;
    let e = started.as_tuple().expect("{:ok, pid, info}");
    assert!(e[0].is_atom("ok") && e[2].is_atom("info"), "{started}");
    let e = children.as_tuple().expect("{id, pid, type, modules}");
    assert!(
        e[0].is_atom("undefined") && e[2].is_atom("worker"),
        "{children}"
    );
    assert_eq!(e[3], list(vec![atom("Elixir.Worker")]));
}
