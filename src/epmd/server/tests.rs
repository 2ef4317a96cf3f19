//! The in-process EPMD against `erl_dist`'s client, raw bytes and the real daemon.

use super::messages::{ALIVE2_RESP, ALIVE2_X_RESP, PORT2_RESP};
use super::*;
use erl_dist::epmd::{EpmdClient, EpmdError, NodeEntry};
use std::process::Stdio;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

const WAIT: Duration = Duration::from_secs(5);

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .expect("connect")
}

async fn client(port: u16) -> EpmdClient<Compat<TcpStream>> {
    EpmdClient::new(connect(port).await.compat())
}

async fn names_of(port: u16) -> Vec<(String, u16)> {
    timeout(WAIT, client(port).await.get_names())
        .await
        .expect("names in time")
        .expect("names")
}

/// Polls until the server lists exactly `expected`.
async fn wait_for_names(port: u16, expected: &[(&str, u16)]) {
    let expected: Vec<(String, u16)> = expected.iter().map(|(n, p)| (n.to_string(), *p)).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let names = names_of(port).await;
        if names == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "names {names:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends raw bytes and reads everything until the server closes.
async fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = connect(port).await;
    stream.write_all(bytes).await.expect("write");
    // Half-close, so that even a registration made by accident ends.
    let _ = stream.shutdown().await;
    let mut reply = Vec::new();
    let _ = timeout(WAIT, stream.read_to_end(&mut reply))
        .await
        .expect("server closes");
    reply
}

fn request(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u16).to_be_bytes().to_vec();
    bytes.extend(body);
    bytes
}

#[tokio::test]
async fn register_look_up_list_and_unregister() {
    let server = EpmdServer::bind(0).await.expect("bind");
    let port = server.local_port();
    assert_ne!(port, 0);

    let entry = NodeEntry::new_hidden("alpha", 5555);
    let (registration, creation) = client(port)
        .await
        .register(entry.clone())
        .await
        .expect("register");
    assert!(creation.get() > 3);

    let found = client(port).await.get_node("alpha").await.expect("lookup");
    assert_eq!(found, Some(entry));
    let missing = client(port).await.get_node("beta").await.expect("lookup");
    assert_eq!(missing, None);
    assert_eq!(names_of(port).await, vec![("alpha".to_string(), 5555)]);

    // Newest first, as epmd lists them.
    let (second, next) = client(port)
        .await
        .register(NodeEntry::new("beta", 6666))
        .await
        .expect("register");
    assert_ne!(next.get(), creation.get());
    wait_for_names(port, &[("beta", 6666), ("alpha", 5555)]).await;

    drop(registration);
    wait_for_names(port, &[("beta", 6666)]).await;
    drop(second);
    wait_for_names(port, &[]).await;
    server.shutdown();
}

#[tokio::test]
async fn duplicate_name_is_refused() {
    let server = EpmdServer::bind(0).await.expect("bind");
    let port = server.local_port();
    let (first, creation) = client(port)
        .await
        .register(NodeEntry::new("dup", 1000))
        .await
        .expect("register");
    let second = client(port)
        .await
        .register(NodeEntry::new("dup", 2000))
        .await;
    assert!(matches!(
        second,
        Err(EpmdError::RegisterNodeError { code: 1 })
    ));
    assert_eq!(names_of(port).await, vec![("dup".to_string(), 1000)]);

    // Once the first connection is gone the name is free again, with a new creation.
    drop(first);
    wait_for_names(port, &[]).await;
    let (_again, again) = client(port)
        .await
        .register(NodeEntry::new("dup", 2000))
        .await
        .expect("register again");
    assert_ne!(again.get(), creation.get());
}

#[tokio::test]
async fn replies_match_the_epmd_daemon() {
    let server = EpmdServer::bind(0).await.expect("bind");
    let port = server.local_port();
    // A distribution version 5 node gets the 16-bit ALIVE2_RESP with creation 1..=3.
    let mut alive = vec![ALIVE2_REQ, 0x15, 0xb3, 77, 0, 0, 5, 0, 5, 0, 3];
    alive.extend(b"old\0\0");
    let mut old = connect(port).await;
    old.write_all(&request(&alive)).await.expect("write");
    let mut reply = [0; 4];
    old.read_exact(&mut reply).await.expect("ALIVE2_RESP");
    assert_eq!(reply[..2], [ALIVE2_RESP, 0]);
    assert!((1..=3).contains(&u16::from_be_bytes([reply[2], reply[3]])));
    // The same name again: result 1, creation 99, like epmd.
    alive[6] = 6;
    let reply = exchange(port, &request(&alive)).await;
    assert_eq!(reply, [ALIVE2_X_RESP, 1, 0, 0, 0, 99]);

    let mut names = u32::from(port).to_be_bytes().to_vec();
    names.extend(b"name old at port 5555\n");
    assert_eq!(exchange(port, &request(&[NAMES_REQ])).await, names);
    let dump = exchange(port, &request(&[DUMP_REQ])).await;
    assert!(dump.ends_with(b"active name     <old> at port 5555, fd = 1\n\0"));
    let dump_text = client(port).await.dump().await.expect("dump");
    assert!(dump_text.starts_with("active name     <old> at port 5555"));

    // Lookups, with and without the NUL old clients append.
    let found = exchange(port, &request(b"zold\0")).await;
    assert_eq!(
        found,
        [119, 0, 0x15, 0xb3, 77, 0, 0, 5, 0, 5, 0, 3, b'o', b'l', b'd', 0, 0]
    );
    assert_eq!(exchange(port, &request(b"zx")).await, [PORT2_RESP, 1]);
    assert_eq!(exchange(port, &request(b"z")).await, b"");

    // KILL is refused, STOP and unknown requests are closed without a reply.
    assert_eq!(exchange(port, &request(&[KILL_REQ])).await, b"NO");
    assert_eq!(client(port).await.kill().await.expect("kill"), "NO");
    assert_eq!(exchange(port, &request(b"sold")).await, b"");
    assert_eq!(exchange(port, &request(b"Q")).await, b"");
    wait_for_names(port, &[("old", 5555)]).await;

    // Bytes after a registration end it, as with epmd.
    old.write_all(b"x").await.expect("write");
    wait_for_names(port, &[]).await;
}

#[tokio::test]
async fn bad_lengths_and_stalls_are_dropped() {
    let server = EpmdServer::bind(0).await.expect("bind");
    let port = server.local_port();
    assert_eq!(exchange(port, &[0, 0]).await, b"");
    let mut huge = vec![0x40, 0x00];
    huge.extend(vec![NAMES_REQ; 0x4000]);
    assert_eq!(exchange(port, &huge).await, b"");

    // A client that never finishes its request is dropped after REQUEST_TIMEOUT.
    let mut stall = connect(port).await;
    stall.write_all(&[0, 5, NAMES_REQ]).await.expect("write");
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    timeout(WAIT, stall.read_to_end(&mut rest))
        .await
        .expect("dropped in time")
        .expect("clean close");
    assert!(rest.is_empty());
    assert!(started.elapsed() >= REQUEST_TIMEOUT - Duration::from_millis(100));

    // Malformed registrations get no reply and register nothing.
    for body in [
        vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 200, b'a', 0, 0],
        vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 1, b'a', 0, 9],
        vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 2, b'a', 0, 0, 0],
        vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 1, b'a', 0],
    ] {
        assert_eq!(exchange(port, &request(&body)).await, b"", "{body:?}");
    }
    // A name that is not UTF-8, or empty, is refused with result 1.
    for body in [
        vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 1, 0xff, 0, 0],
        vec![ALIVE2_REQ, 0, 1, 77, 0, 0, 6, 0, 5, 0, 0, 0, 1, 0],
    ] {
        assert_eq!(
            exchange(port, &request(&body)).await,
            [ALIVE2_X_RESP, 1, 0, 0, 0, 99]
        );
    }
    wait_for_names(port, &[]).await;
}

#[tokio::test]
async fn connections_are_bounded() {
    let server = EpmdServer::bind_with(0, 2).await.expect("bind");
    let port = server.local_port();
    let a = connect(port).await;
    let b = connect(port).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The third is closed at once, well before the request timeout.
    let mut c = connect(port).await;
    let mut rest = Vec::new();
    timeout(REQUEST_TIMEOUT / 2, c.read_to_end(&mut rest))
        .await
        .expect("closed at once")
        .expect("clean close");
    drop((a, b));
    // Slots come back once the idle ones are closed.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = exchange(port, &request(&[NAMES_REQ])).await;
        if reply == u32::from(port).to_be_bytes() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn garbage_never_stops_the_server() {
    let server = EpmdServer::bind(0).await.expect("bind");
    let port = server.local_port();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..300 {
        let len = (next() % 40) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(first) = body.first_mut() {
            *first = [ALIVE2_REQ, PORT_PLEASE2_REQ, NAMES_REQ, DUMP_REQ, KILL_REQ][i % 5];
        }
        let bytes = if i % 3 == 0 { body } else { request(&body) };
        exchange(port, &bytes).await;
    }
    // Whatever random registrations happened ended with their connections.
    wait_for_names(port, &[]).await;
    for _ in 0..10_000 {
        let len = (next() % 40) as usize;
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = Alive2::parse(&body);
        let _ = port_please(&Registry::new(), &body);
    }
}

#[tokio::test]
async fn shutdown_closes_everything() {
    let server = EpmdServer::bind(0).await.expect("bind");
    let port = server.local_port();
    let (mut registration, _) = client(port)
        .await
        .register(NodeEntry::new("gone", 1))
        .await
        .expect("register");
    server.shutdown();
    // The registration socket sees the end of stream, and the port stops answering.
    let mut rest = Vec::new();
    timeout(
        WAIT,
        futures::AsyncReadExt::read_to_end(&mut registration, &mut rest),
    )
    .await
    .expect("closed in time")
    .expect("clean close");
    // Nothing answers as our EPMD there. (The port is free again: on a busy machine
    // another program may take it at once, and accept a connection.)
    if let Ok(mut other) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
        let _ = other.write_all(&request(&[NAMES_REQ])).await;
        let _ = other.shutdown().await;
        let mut reply = Vec::new();
        let _ = timeout(WAIT, other.read_to_end(&mut reply)).await;
        assert!(
            !String::from_utf8_lossy(&reply).contains("name gone"),
            "the EPMD still answers"
        );
    }
}

#[test]
fn creations_skip_the_reserved_values() {
    let mut registry = Registry::new();
    registry.next_creation = u32::MAX - 1;
    let creations: Vec<u32> = (0..3).map(|_| registry.creation()).collect();
    assert_eq!(creations, [u32::MAX - 1, u32::MAX, 4]);
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A real `erl` registers with this server and `epmd -names` lists it. Skipped where
/// Erlang is not installed.
#[tokio::test]
async fn real_erlang_tools_interoperate() {
    if !on_path("erl") || !on_path("epmd") {
        eprintln!("erl or epmd not on PATH, skipping");
        return;
    }
    let server = EpmdServer::bind(0).await.expect("bind");
    let port = server.local_port();
    let name = format!("cnode_epmd_t{}", std::process::id());
    let mut erl = tokio::process::Command::new("erl")
        .args(["-sname", &name, "-setcookie", "x", "-noshell"])
        .args(["-start_epmd", "false"])
        .env("ERL_EPMD_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn erl");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let erl_port = loop {
        let names = names_of(port).await;
        if let Some((_, p)) = names.iter().find(|(n, _)| *n == name) {
            break *p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "erl never registered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let epmd = |arg: &'static str| {
        tokio::process::Command::new("epmd")
            .arg(arg)
            .env("ERL_EPMD_PORT", port.to_string())
            .kill_on_drop(true)
            .output()
    };
    let listed = timeout(WAIT, epmd("-names"))
        .await
        .expect("epmd -names in time")
        .expect("epmd -names");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains(&format!("up and running on port {port} with data:")));
    assert!(listed.contains(&format!("name {name} at port {erl_port}\n")));

    let kill = timeout(WAIT, epmd("-kill"))
        .await
        .expect("epmd -kill in time")
        .expect("epmd -kill");
    assert!(String::from_utf8_lossy(&kill.stdout).contains("Killing not allowed"));

    erl.kill().await.expect("kill erl");
    wait_for_names(port, &[]).await;
}
