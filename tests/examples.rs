//! The example programs (`examples/`) as a user runs them, against real BEAM nodes
//! running the Chat app: the counter under its supervisor, calling Elixir from Rust,
//! and the HTTP bridge answering real HTTP requests.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use support::{free_port, unique_name, BeamNode, Epmd, Example};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn the_counter_under_its_supervisor() {
    let epmd = Epmd::start();
    let name = unique_name("counter");
    let sname = format!("{name}@localhost");
    let counter = Example::start("counter", &["--sname", &sname, "--cookie", COOKIE], &epmd);
    assert!(
        counter.wait_for_output("is up", WAIT),
        "{}",
        counter.output()
    );
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let server = format!("{{:counter, :{name}@localhost}}");
    let eval = |expr: &str| alex.eval(&expr.replace("SERVER", &server));
    assert_eq!(eval("GenServer.call(SERVER, :get)"), "0");
    eval("GenServer.cast(SERVER, {:add, 5})");
    assert_eq!(eval(":sys.get_state(SERVER)"), "5");
    assert_eq!(
        eval(&format!(
            "Supervisor.which_children({{:counter_sup, :{name}@localhost}}) |> Enum.map(fn {{id, _, type, modules}} -> {{id, type, modules}} end)"
        )),
        "[{:counter, :worker, [Counter]}]"
    );
    // A raise in the counter: the caller exits with the ArgumentError, the supervisor
    // starts a fresh counter.
    assert_eq!(
        eval("try do GenServer.call(SERVER, :crash) catch :exit, {{%ArgumentError{}, _}, _} -> :raised end"),
        ":raised"
    );
    // The counter's node reports it as gen_server does, the exception as Elixir prints
    // it, with the frame of the raise.
    assert!(
        counter.wait_for_output(
            "GenServer :counter terminating\n** (ArgumentError) Counter does not know the call :crash\n    examples/counter.rs:",
            WAIT
        ),
        "{}",
        counter.output()
    );
    assert!(
        counter.output().contains(": Counter.handle_call/3"),
        "{}",
        counter.output()
    );
    // Then what it was handling, its state and its caller, as Elixir's logger words
    // gen_server's report.
    let alex_name = alex.node_name();
    let tail = format!("Last message (from #PID<{alex_name}.");
    assert!(counter.output().contains(&tail), "{}", counter.output());
    let tail = format!("): :crash\nState: 5\nClient #PID<{alex_name}.");
    assert!(counter.output().contains(&tail), "{}", counter.output());
    let tail = format!("is remote on node :{alex_name}");
    assert!(counter.output().contains(&tail), "{}", counter.output());
    // The process named as its own node names it.
    assert!(
        counter.output().contains(" pid=#PID<0."),
        "{}",
        counter.output()
    );
    assert_eq!(
        eval("Enum.find_value(1..200, fn _ -> try do GenServer.call(SERVER, :get) catch :exit, _ -> Process.sleep(50); nil end end)"),
        "0"
    );
}

/// Sends SIGTERM, as a service manager stops a program, and gives the exit status
/// (within `WAIT`).
fn sigterm(example: &mut Example) -> Option<i32> {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &example.os_pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    example.wait(WAIT).and_then(|s| s.code())
}

/// The counter's `main` serves while its supervisor lives (`Node::serve_while`): SIGTERM
/// and a peer's `:init.stop(3)` end it with their status (the supervisor, stopped on the
/// way, ends the watch too), and a supervisor that gives up ends it with 1, logged
/// (and not as a supervisor the node goes on without).
#[test]
fn the_counter_ends_as_its_node_is_stopped_or_its_supervisor_gives_up() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let start = || {
        let name = format!("{}@localhost", unique_name("counter"));
        let counter = Example::start("counter", &["--sname", &name, "--cookie", COOKIE], &epmd);
        assert!(
            counter.wait_for_output("is up", WAIT),
            "{}",
            counter.output()
        );
        (counter, name)
    };

    // With a peer connected, as in production: the supervisor the stop ends is no
    // failure, and the program says nothing of it.
    let (mut counter, name) = start();
    assert_eq!(alex.eval(&format!("Node.ping(:\"{name}\")")), ":pong");
    assert_eq!(sigterm(&mut counter), Some(0), "{}", counter.output());
    assert!(
        !counter.output().contains("top supervisor"),
        "{}",
        counter.output()
    );

    let (mut counter, name) = start();
    assert_eq!(
        alex.eval(&format!(":rpc.call(:\"{name}\", :init, :stop, [3])")),
        ":ok"
    );
    let exit = counter.wait(WAIT);
    assert_eq!(exit.and_then(|s| s.code()), Some(3), "{}", counter.output());
    assert!(
        !counter.output().contains("top supervisor"),
        "{}",
        counter.output()
    );

    // Four crashes in 5 s: the supervisor gives up, the program ends with 1.
    let (mut counter, name) = start();
    let crashes = format!(
        "for _ <- 1..4 do
          Enum.find_value(1..200, fn _ ->
            try do GenServer.call({{:counter, :\"{name}\"}}, :crash) catch
              :exit, {{{{%ArgumentError{{}}, _}}, _}} -> :crashed
              :exit, _ -> Process.sleep(20); nil
            end
          end)
        end"
    );
    assert_eq!(
        alex.eval(&crashes),
        "[:crashed, :crashed, :crashed, :crashed]"
    );
    let exit = counter.wait(WAIT);
    assert_eq!(exit.and_then(|s| s.code()), Some(1), "{}", counter.output());
    assert!(
        counter
            .output()
            .contains("application's top supervisor #PID<")
            && counter.output().contains("exited: :shutdown"),
        "{}",
        counter.output()
    );
    // The node's own line says it; none says the node goes on.
    assert!(
        !counter.output().contains("goes on without it"),
        "{}",
        counter.output()
    );
}

#[test]
fn calling_elixir_from_rust() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let peer = alex.node_name();
    let mut run = Example::start(
        "call_elixir",
        &[
            "--peer",
            &peer,
            "--sname",
            &format!("{}@localhost", unique_name("rusty")),
            "--cookie",
            COOKIE,
            "--message",
            "hello from Rust",
        ],
        &epmd,
    );
    let status = run.wait(WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        run.output()
    );
    let output = run.output();
    assert!(
        output.contains(&format!("Enum.sum([1, 2, 3]) on {peer}: 6")),
        "{output}"
    );
    assert!(
        output.contains(&format!("Chat.receive_message/1 on {peer} returned :ok")),
        "{output}"
    );
    assert!(
        alex.wait_for_output("hello from Rust", WAIT),
        "alex prints the message:\n{}",
        alex.output()
    );
}

/// One HTTP/1.1 request on a fresh connection: the status code and the body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_http_bridge_answers_from_the_elixir_node() {
    let epmd = Epmd::start();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    alex.eval("{:ok, _} = Chat.Echo.start(:echo)");
    let port = free_port();
    let mut bridge = Example::start(
        "http_bridge",
        &[
            "--peer",
            &alex.node_name(),
            "--sname",
            &format!("{}@localhost", unique_name("bridge")),
            "--cookie",
            COOKIE,
            "--port",
            &port.to_string(),
        ],
        &epmd,
    );
    assert!(
        bridge.wait_for_output("HTTP on", WAIT),
        "{}",
        bridge.output()
    );
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{}", bridge.output());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        http(port, "GET", "/sum?numbers=1,2,3", ""),
        (200, "6\n".into())
    );
    assert_eq!(http(port, "GET", "/echo/woof", ""), (200, "woof\n".into()));
    assert_eq!(
        http(port, "POST", "/message", "hello alex"),
        (200, ":ok\n".into())
    );
    assert!(
        alex.wait_for_output("hello alex", WAIT),
        "alex prints the message:\n{}",
        alex.output()
    );
    // What fails on the Elixir side is a 502 saying what.
    let (status, body) = http(port, "GET", "/sum?numbers=", "");
    assert_eq!((status, body.as_str()), (200, "0\n"));
    alex.eval("GenServer.stop(:echo)");
    let (status, body) = http(port, "GET", "/echo/woof", "");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("no process"), "{body}");
    let (status, _) = http(port, "GET", "/sum?numbers=x", "");
    assert_eq!(status, 400);

    // SIGTERM: the server drains, the node stops, the program exits 0.
    assert_eq!(sigterm(&mut bridge), Some(0), "{}", bridge.output());
    assert!(
        bridge.output().contains("node stopping"),
        "{}",
        bridge.output()
    );
}
