//! Frames recorded from a real OTP 29.1 / Elixir 1.20 node (`tests/frames/otp29.txt`),
//! replayed here so that a machine without that release still checks them:
//!
//! * `challenge`: the node's handshake challenge, with the flags OTP 29 advertises
//!   (`DFLAG_ALTACT_SIG` among them): a Rust node accepts a peer with exactly those;
//! * `echo_reply`: a `GenServer.call` reply, which OTP 28+ sends as `ALTACT_SIG_SEND`
//!   to an alias (read by the decoder, `--features fuzzing`);
//! * `start_task_call` and `start_message`: `Task.Supervisor.start_child/5` as Elixir
//!   1.15+ sends it (`[owner, :monitor]`, then the MFA with a plain reference to reply
//!   to), replayed byte for byte against a Rust node's `Task.Supervisor`.
//!
//! The recording was made by the ignored test `record` with OTP 29 first on `PATH`:
//! `PATH=$(scripts/otp 29):$PATH cargo test --test otp_frames -- --ignored record`. It
//! plays the Rust node's part with a scripted peer (`tests/fakepeer`) that advertises
//! OTP 25's flags and `ALTACT_SIG`, against a real Elixir node running the Chat app.

mod fakepeer;
mod support;

use eetf::{Atom, Pid, Term, Tuple};
use fakepeer::{atom, decode_frame, int, node_port, tuple, Peer, PASS_THROUGH};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(10);
/// `DFLAG_ALTACT_SIG`.
const ALTACT_SIG: u64 = 1 << 37;
/// What the scripted peer advertises: OTP 25's flags (no atom cache, no fragments)
/// and `ALTACT_SIG`, hidden.
const PEER_FLAGS: u64 = fakepeer::OTP25_FLAGS & !fakepeer::PUBLISHED | ALTACT_SIG;
/// The names in the recording: the Elixir node, and the node whose part the scripted
/// peer played (the Rust node's, in the replay).
const ELIXIR: &str = "alex@localhost";
const RUST: &str = "moebi@localhost";

fn fixture(release: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/frames/otp{release}.txt"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The recorded frames by label.
fn recorded(release: &str) -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(fixture(release)).expect("the recording");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (label, bytes) = l.split_once(' ').expect("label hex");
            (label.to_owned(), unhex(bytes.trim()))
        })
        .collect()
}

fn elements(t: &Term) -> &[Term] {
    match t {
        Term::Tuple(t) => &t.elements,
        _ => panic!("not a tuple: {t}"),
    }
}

fn frame_of(control: Term, payload: Term) -> Vec<u8> {
    let mut body = vec![PASS_THROUGH];
    control.encode(&mut body).unwrap();
    payload.encode(&mut body).unwrap();
    body
}

#[test]
#[ignore = "records tests/frames/otpN.txt from the release on PATH: cargo test --test otp_frames -- --ignored record"]
fn record() {
    let epmd = support::Epmd::start();
    let alex = support::BeamNode::start(ELIXIR, COOKIE, &epmd);
    let release = alex.eval(":erlang.system_info(:otp_release) |> List.to_string()");
    let release = release.trim_matches('"').to_owned();
    let elixir = alex.eval("System.version()").trim_matches('"').to_owned();
    assert_eq!(alex.eval("{:ok, _} = Chat.Echo.start(:echo); :ok"), ":ok");
    let port = node_port(epmd.port(), "alex");
    let mut peer = Peer::connect(port, RUST, COOKIE, PEER_FLAGS).expect("handshake");
    let mut frames = vec![("challenge", peer.challenge.clone())];

    // GenServer.call from the peer: OTP 28+ replies to the alias with ALTACT_SIG_SEND.
    // `[alias | Ref]`, the tag gen:call makes since OTP 24.
    let tag = Term::from(eetf::ImproperList::from((
        vec![atom("alias")],
        Term::from(peer.reference(1)),
    )));
    let call = tuple(vec![
        atom("$gen_call"),
        tuple(vec![Term::from(peer.pid(1)), tag.clone()]),
        atom("hello"),
    ]);
    peer.reg_send("echo", call).unwrap();
    let reply = peer
        .next_frame_where(WAIT, |c, _| elements(c)[0] == int(37))
        .expect("the echo reply");
    frames.push(("echo_reply", reply));

    // Task.Supervisor.start_child on the peer's Chat.TaskSupervisor, from the Elixir node.
    alex.eval(&format!(
        "spawn(fn -> Task.Supervisor.start_child({{Chat.TaskSupervisor, :\"{RUST}\"}}, \
         Chat, :receive_message, [\"recorded\"]) end); :ok"
    ));
    let call = peer
        .next_frame_where(WAIT, |c, _| elements(c)[0] == int(6))
        .expect("the start_task call");
    let (_, payload) = decode_frame(&call);
    let payload = payload.expect("$gen_call");
    let from = elements(&payload)[1].clone();
    frames.push(("start_task_call", call));
    let tag = elements(&from)[1].clone();
    let alias = match &tag {
        Term::ImproperList(l) => l.last.as_ref().clone(),
        other => other.clone(),
    };
    // {:ok, pid} back, through the alias, as the Rust node does.
    let task = peer.pid(7);
    let ok = tuple(vec![tag, tuple(vec![atom("ok"), Term::from(task.clone())])]);
    let control = tuple(vec![int(37), int(4), Term::from(peer.pid(2)), alias]);
    peer.send_frame(&frame_of(control, ok)).unwrap();
    let start = peer
        .next_frame_where(WAIT, |c, _| {
            elements(c)[0] == int(22) && elements(c)[2] == Term::from(task.clone())
        })
        .expect("the start message");
    frames.push(("start_message", start));

    let mut text = format!(
        "# Recorded from OTP {release} / Elixir {elixir} by tests/otp_frames.rs (`record`):\n\
         # the node {ELIXIR}, talking to {RUST} (a scripted peer with flags {PEER_FLAGS:#x}).\n"
    );
    for (label, bytes) in frames {
        text.push_str(&format!("{label} {}\n", hex(&bytes)));
    }
    std::fs::create_dir_all(fixture(&release).parent().unwrap()).unwrap();
    std::fs::write(fixture(&release), text).unwrap();
}

/// OTP 29's flags: ALTACT_SIG and OTP 26's mandatory V4_NC and UNLINK_ID among them;
/// a Rust node accepts a peer that advertises exactly these.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otp29s_handshake_flags_are_accepted() {
    let frames = recorded("29");
    let challenge = &frames["challenge"];
    assert_eq!(challenge[0], b'N');
    let flags = u64::from_be_bytes(challenge[1..9].try_into().unwrap());
    assert_ne!(flags & ALTACT_SIG, 0, "{flags:#x}");
    assert_ne!(flags & (1 << 34), 0, "V4_NC");
    assert_ne!(flags & 0x2000000, 0, "UNLINK_ID");
    let (_epmd, node) = rust_node().await;
    let port = node.port();
    let accepted = tokio::task::spawn_blocking(move || {
        Peer::connect(port, ELIXIR, COOKIE, flags).map(|mut p| p.ping(WAIT))
    })
    .await
    .unwrap();
    assert_eq!(accepted, Ok(true));
}

/// `Task.Supervisor.start_child/5` from Elixir 1.20, byte for byte: the Rust node's
/// supervisor answers `{:ok, pid}` through the caller's alias (as `ALTACT_SIG_SEND`, the
/// caller having the flag), and the task runs the MFA the start message carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elixir_120s_start_child_replayed() {
    let frames = recorded("29");
    let (_epmd, node) = rust_node().await;
    let (ran_tx, mut ran_rx) = tokio::sync::mpsc::unbounded_channel();
    node.register_function("Elixir.Chat", "receive_message", 1, move |_p, args| {
        let _ = ran_tx.send(args[0].clone());
        async move { Ok(cnode::term::atom("ok")) }
    });
    node.start_task_supervisor("Elixir.Chat.TaskSupervisor")
        .expect("the task supervisor starts");
    let port = node.port();
    let call = frames["start_task_call"].clone();
    let start = frames["start_message"].clone();
    let replied = tokio::task::spawn_blocking(move || {
        let mut peer = Peer::connect(port, ELIXIR, COOKIE, PEER_FLAGS).expect("handshake");
        let (_, payload) = decode_frame(&call);
        let from = elements(&payload.expect("$gen_call"))[1].clone();
        let tag = elements(&from)[1].clone();
        peer.send_frame(&call).unwrap();
        let reply = peer
            .next_frame_where(WAIT, |c, p| {
                elements(c)[0] == int(37) && p.is_some_and(|p| elements(p)[0] == tag)
            })
            .expect("{tag, {:ok, pid}} through the alias");
        let (control, payload) = decode_frame(&reply);
        assert_eq!(elements(&control)[1], int(4), "ALTACT_SIG_SEND to an alias");
        let ok = elements(&payload.unwrap())[1].clone();
        let [status, pid] = elements(&ok) else {
            panic!("{ok}")
        };
        assert_eq!(status, &atom("ok"));
        // The recorded start message, to the task the node started.
        let (control, payload) = decode_frame(&start);
        let mut control = elements(&control).to_vec();
        control[2] = pid.clone();
        peer.send_frame(&frame_of(
            Term::from(Tuple::from(control)),
            payload.unwrap(),
        ))
        .unwrap();
        pid.clone()
    })
    .await
    .unwrap();
    assert!(matches!(replied, Term::Pid(Pid { ref node, .. }) if node == &Atom::from(RUST)));
    let ran = tokio::time::timeout(WAIT, ran_rx.recv()).await;
    assert_eq!(
        ran.ok().flatten(),
        Some(cnode::term::binary("recorded")),
        "the task ran the recorded MFA"
    );
}

/// The decoder reads OTP 29's `ALTACT_SIG_SEND` reply as an alias send.
#[cfg(feature = "fuzzing")]
#[test]
fn otp29s_altact_reply_decodes() {
    let frames = recorded("29");
    let described = cnode::fuzzing::decode(&frames["echo_reply"]).expect("decodes");
    assert!(
        described.starts_with("ALTACT_SIG_SEND flags 4 ") && described.contains("Alias"),
        "{described}"
    );
}

async fn rust_node() -> (cnode::epmd::server::EpmdServer, cnode::Node) {
    let epmd = cnode::epmd::server::EpmdServer::bind(0)
        .await
        .expect("in-process EPMD");
    let mut config = cnode::NodeConfig::new(RUST, COOKIE);
    config.epmd_port = epmd.local_port();
    let node = cnode::Node::start(config).await.expect("the node starts");
    (epmd, node)
}
