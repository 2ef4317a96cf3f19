//! Rust-side benchmarks of the distribution: a cnode `Node` as the caller.
//!
//! `cargo bench --bench dist` (no subcommand) is self-contained and pure Rust: two nodes
//! in this process (a server with an `echo` GenServer, a `Chat.TaskSupervisor` and
//! `Chat.receive_message/1`, and a client), connected over real TCP through an
//! in-process EPMD, run every workload and print a table. `-- --quick` runs small sizes,
//! `-- --only W` one workload (call_small, call_list, task, send; handy under `perf`);
//! without `--bench` (as `cargo test --all-targets` runs it) it is a smoke test on tiny
//! sizes.
//!
//! `scripts/bench` uses two more modes against real nodes (EPMD from `ERL_EPMD_PORT`):
//!
//! ```text
//! dist client --target NODE --cookie C --workload W --n N [--inflight K]
//!     W: call_small | call_list | task | send. One line
//!     `RESULT <workload> <inflight> <ops_per_sec> <seconds> <n> <cpu_ticks>` on success,
//!     cpu_ticks being this process's CPU time during the run (/proc/self/stat).
//! dist peers --target NODE --cookie C --count N [--hold S]
//!     Opens N hidden distribution connections (real handshakes, then ticks), prints
//!     `RESULT peers_up N` and `RESULT peers_connect_s S`, `READY`, and holds them
//!     until stdin closes (at most S seconds, default 120).
//! ```

use cnode::otp::gen_server;
use cnode::term::{atom, binary, int, list, tuple, Match, Term};
use cnode::{Caller, Exception, GenServer, Next, Node, NodeConfig, Process, Reply};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for one whole workload run.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// `{:ping, 1}`: the small term of the call workloads (the same on the BEAM side).
fn small() -> Term {
    tuple(vec![atom("ping"), int(1)])
}

/// `Enum.to_list(1001..1200)`: 200 integers, each an INTEGER_EXT on the wire.
fn list200() -> Term {
    list((1001..=1200).map(int).collect())
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Workload {
    CallSmall,
    CallList,
    Task,
    Send,
}

impl Workload {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "call_small" => Workload::CallSmall,
            "call_list" => Workload::CallList,
            "task" => Workload::Task,
            "send" => Workload::Send,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Workload::CallSmall => "call_small",
            Workload::CallList => "call_list",
            Workload::Task => "task",
            Workload::Send => "send",
        }
    }
}

/// One operation of a call-shaped workload, from process `p` to `target`.
async fn one_op(p: &mut Process, w: Workload, target: &str, term: &Term) -> Result<(), String> {
    match w {
        Workload::CallSmall | Workload::CallList => {
            let reply = p
                .call(("echo", target), term, Some(CALL_TIMEOUT))
                .await
                .map_err(|e| format!("GenServer.call to echo: {e}"))?;
            if &reply != term {
                return Err(format!("echo answered {reply}"));
            }
        }
        Workload::Task => {
            let task = p
                .task_async(
                    ("Elixir.Chat.TaskSupervisor", target),
                    "Elixir.Chat",
                    "receive_message",
                    vec![binary("hi")],
                )
                .await
                .map_err(|e| format!("Task.Supervisor.async: {e}"))?;
            let r = p
                .task_await(task, Some(CALL_TIMEOUT))
                .await
                .map_err(|e| format!("Task.await: {e}"))?;
            if !r.is_atom("ok") {
                return Err(format!("the task returned {r}"));
            }
        }
        Workload::Send => unreachable!("send is not call-shaped"),
    }
    Ok(())
}

/// Runs `n` operations of `w` against `target` from `inflight` processes of `node` (each
/// doing its share one after the other); returns the wall time.
async fn run(
    node: &Node,
    target: &str,
    w: Workload,
    n: usize,
    inflight: usize,
) -> Result<Duration, String> {
    if w == Workload::Send {
        return run_send(node, target, n).await;
    }
    let inflight = inflight.clamp(1, n.max(1));
    let per = n / inflight;
    let term = if w == Workload::CallList {
        list200()
    } else {
        small()
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let start = Instant::now();
    for _ in 0..inflight {
        let tx = tx.clone();
        let target = target.to_owned();
        let term = term.clone();
        node.spawn(move |mut p| async move {
            let mut result = Ok(());
            for _ in 0..per {
                if let Err(e) = one_op(&mut p, w, &target, &term).await {
                    result = Err(e);
                    break;
                }
            }
            let _ = tx.send(result);
            Ok(())
        });
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    for _ in 0..inflight {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => return Err("a worker process died".into()),
            Err(_) => return Err(format!("no result within {RUN_TIMEOUT:?}")),
        }
    }
    Ok(start.elapsed())
}

/// `n` one-way sends of `{:msg, i}` to `{:echo, target}`, then `{self(), :done}`: the
/// echo process answers `:done` once it has taken every message before it.
async fn run_send(node: &Node, target: &str, n: usize) -> Result<Duration, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let target = target.to_owned();
    node.spawn(move |mut p| async move {
        let start = Instant::now();
        for i in 0..n {
            p.send(
                ("echo", target.as_str()),
                tuple(vec![atom("msg"), int(i as i64)]),
            );
            // `send` never waits: let the connection's writer run now and then, as the
            // BEAM preempts a sending process after its reductions.
            if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
        }
        p.send(
            ("echo", target.as_str()),
            tuple(vec![Term::Pid(p.pid()), atom("done")]),
        );
        let done = p
            .receive_match(Some(RUN_TIMEOUT), |m| m.is_atom("done"))
            .await;
        let _ = tx.send(match done {
            Some(_) => Ok(start.elapsed()),
            None => Err(format!("no :done within {RUN_TIMEOUT:?}")),
        });
        Ok(())
    });
    rx.await
        .map_err(|_| "the sender process died".to_string())?
}

/// Answers calls with the request, and `{pid, term}` messages with `term` (as Moebi's and
/// `Chat.Echo`).
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
    async fn handle_info(&mut self, message: Term, p: &mut Process) -> Result<Next, Exception> {
        if let Term::Tuple(t) = message {
            if let Ok([Term::Pid(pid), term]) = <[Term; 2]>::try_from(t.elements) {
                p.send(&pid, term);
            }
        }
        Ok(Next::Wait)
    }
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}@localhost",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::Relaxed)
    )
}

struct Args(Vec<String>);

impl Args {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .position(|a| a == key)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }
    fn req(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| die(&format!("missing {key}")))
    }
    fn num(&self, key: &str, default: usize) -> usize {
        self.get(key)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| die(&format!("{key}: not a number")))
            })
            .unwrap_or(default)
    }
    fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }
}

fn die(msg: &str) -> ! {
    eprintln!("dist: {msg}");
    std::process::exit(2)
}

fn main() {
    let args = Args(std::env::args().skip(1).collect());
    // One thread, as the Rust Moebi runs by default (see its `--threads`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async {
        match args.0.first().map(String::as_str) {
            Some("client") => client(&args).await,
            Some("peers") => peers(&args).await,
            // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary
            // without it: then a smoke test on tiny sizes, not a benchmark.
            _ if args.has("--bench") => {
                let scale = if args.has("--quick") { 10 } else { 1 };
                standalone(scale, args.get("--only")).await
            }
            _ => standalone(100, None).await,
        }
    });
    // Do not wait for the node's background tasks (connections, EPMD registration).
    rt.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code);
}

async fn client_node(cookie: &str, epmd_port: Option<u16>) -> Node {
    let mut config = NodeConfig::new(&unique("rust_client"), cookie);
    // Hidden: no `global` traffic with the servers, as for a pure client.
    config.hidden = true;
    if let Some(p) = epmd_port {
        config.epmd_port = p;
    }
    Node::start(config)
        .await
        .unwrap_or_else(|e| die(&format!("cannot start the client node: {e}")))
}

/// A warm-up call: connects and checks the echo process is there.
async fn warm_up(node: &Node, target: &str) -> Result<(), String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let t = target.to_owned();
    node.spawn(move |mut p| async move {
        let mut r = Err("no attempt".to_string());
        for _ in 0..50 {
            r = p
                .call(
                    ("echo", t.as_str()),
                    atom("warm_up"),
                    Some(Duration::from_secs(2)),
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("echo on {t}: {e}"));
            if r.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = tx.send(r);
        Ok(())
    });
    rx.await.map_err(|_| "warm-up process died".to_string())?
}

async fn client(args: &Args) -> i32 {
    let target = args.req("--target").to_owned();
    let cookie = args.req("--cookie");
    let w = Workload::parse(args.req("--workload")).unwrap_or_else(|| die("unknown --workload"));
    let n = args.num("--n", 10_000);
    let inflight = args.num("--inflight", 1);
    let node = client_node(cookie, None).await;
    if let Err(e) = warm_up(&node, &target).await {
        eprintln!("dist client: {e}");
        return 1;
    }
    let ticks = cpu_ticks();
    match run(&node, &target, w, n, inflight).await {
        Ok(t) => {
            let ticks = cpu_ticks().saturating_sub(ticks);
            let done = if w == Workload::Send {
                n
            } else {
                (n / inflight.clamp(1, n.max(1))) * inflight.clamp(1, n.max(1))
            };
            println!(
                "RESULT {} {} {:.1} {:.4} {} {}",
                w.name(),
                inflight,
                done as f64 / t.as_secs_f64(),
                t.as_secs_f64(),
                done,
                ticks
            );
            0
        }
        Err(e) => {
            eprintln!("dist client: {} x{inflight}: {e}", w.name());
            1
        }
    }
}

/// User + system CPU time of this process so far, in clock ticks (`/proc/self/stat`).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// N hidden connections to `target`, with the real handshake (erl_dist's client side).
async fn peers(args: &Args) -> i32 {
    use erl_dist::handshake::{ClientSideHandshake, HandshakeStatus};
    use erl_dist::node::{Creation, LocalNode, NodeName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::compat::TokioAsyncReadCompatExt;

    let target = args.req("--target").to_owned();
    let cookie = args.req("--cookie").to_owned();
    let count = args.num("--count", 1000);
    let hold = Duration::from_secs(args.num("--hold", 120) as u64);
    let epmd_port = std::env::var("ERL_EPMD_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4369u16);
    let (alive, host) = target
        .split_once('@')
        .unwrap_or_else(|| die("--target NAME@HOST"));
    let port = match async {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", epmd_port)).await?;
        erl_dist::epmd::EpmdClient::new(s.compat())
            .get_node(alive)
            .await
            .map_err(std::io::Error::other)
    }
    .await
    {
        Ok(Some(e)) => e.port,
        Ok(None) => die(&format!("{alive} is not registered with EPMD")),
        Err(e) => die(&format!("EPMD: {e}")),
    };
    let host = host.to_owned();
    let start = Instant::now();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut handshakes = tokio::task::JoinSet::new();
    for i in 0..count {
        let slots = slots.clone();
        let (host, cookie) = (host.clone(), cookie.clone());
        handshakes.spawn(async move {
            let _slot = slots.acquire().await;
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let _ = stream.set_nodelay(true);
            let name = NodeName::new(&format!("bench_peer_{}_{i}", std::process::id()), &host)
                .map_err(std::io::Error::other)?;
            let local = LocalNode::new(name, Creation::random());
            let mut hs = ClientSideHandshake::new(stream.compat(), local, &cookie);
            let status = hs
                .execute_send_name(6)
                .await
                .map_err(std::io::Error::other)?;
            if !matches!(
                status,
                HandshakeStatus::Ok | HandshakeStatus::OkSimultaneous
            ) {
                return Err(std::io::Error::other(format!("status {status:?}")));
            }
            let (conn, _peer) = hs.execute_rest(true).await.map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(conn.into_inner())
        });
    }
    let mut streams = Vec::with_capacity(count);
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Ok(Some(r)) = tokio::time::timeout_at(deadline, handshakes.join_next()).await {
        match r {
            Ok(Ok(s)) => streams.push(s),
            Ok(Err(e)) => {
                if failed == 0 {
                    eprintln!("dist peers: a handshake failed: {e}");
                }
                failed += 1;
            }
            Err(e) => {
                eprintln!("dist peers: {e}");
                failed += 1;
            }
        }
    }
    let took = start.elapsed();
    let up = streams.len();
    // Keep each connection alive: discard what arrives, tick every 15 s (net_ticktime 60).
    let mut holders = tokio::task::JoinSet::new();
    for s in streams {
        holders.spawn(async move {
            let (mut r, mut w) = s.into_split();
            let reader = async move {
                let mut buf = [0u8; 256];
                while matches!(r.read(&mut buf).await, Ok(1..)) {}
            };
            let ticker = async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    if w.write_all(&[0, 0, 0, 0]).await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! { _ = reader => {}, _ = ticker => {} }
        });
    }
    println!("RESULT peers_up {up}");
    println!("RESULT peers_connect_s {:.3}", took.as_secs_f64());
    println!("READY");
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    let _ = tokio::time::timeout(hold, stdin_closed).await;
    holders.abort_all();
    if up == count && failed == 0 {
        0
    } else {
        eprintln!("dist peers: {up} of {count} connections up");
        1
    }
}

/// Two in-process nodes over TCP: the pure-Rust numbers of `cargo bench`.
/// `scale` divides the sizes: 1 for `cargo bench`, 10 with `--quick`, 100 as a smoke test.
async fn standalone(scale: usize, only: Option<&str>) -> i32 {
    let epmd = match cnode::epmd::server::EpmdServer::bind(0).await {
        Ok(s) => s,
        Err(e) => die(&format!("in-process EPMD: {e}")),
    };
    let epmd_port = epmd.local_port();
    let cookie = "cnode_bench";
    let mut config = NodeConfig::new(&unique("rust_server"), cookie);
    config.epmd_port = epmd_port;
    let server = Node::start(config)
        .await
        .unwrap_or_else(|e| die(&format!("server node: {e}")));
    gen_server::start(&server, Some("echo"), Echo)
        .await
        .unwrap_or_else(|e| die(&format!("echo: {e}")));
    server.start_task_supervisor("Elixir.Chat.TaskSupervisor");
    // As Moebi's, without the printing (this process's stdout is the report).
    server.register_function(
        "Elixir.Chat",
        "receive_message",
        1,
        |_p, _args| async move { Ok(atom("ok")) },
    );
    let client = client_node(cookie, Some(epmd_port)).await;
    let target = server.name().to_owned();
    if let Err(e) = warm_up(&client, &target).await {
        eprintln!("dist: {e}");
        return 1;
    }
    let plan = [
        (Workload::CallSmall, 20_000 / scale, 1),
        (Workload::CallSmall, 100_000 / scale, 64),
        (Workload::CallList, 20_000 / scale, 1),
        (Workload::CallList, 50_000 / scale, 64),
        (Workload::Task, 10_000 / scale, 1),
        (Workload::Task, 20_000 / scale, 64),
        (Workload::Send, 1_000_000 / scale, 1),
    ];
    let rounds = if scale == 1 { 3 } else { 1 };
    println!("Rust-to-Rust, two in-process nodes over TCP (median of {rounds} rounds)\n");
    println!("| workload | in flight | ops/s |");
    println!("|---|---:|---:|");
    let mut code = 0;
    for (w, n, inflight) in plan {
        if only.is_some_and(|o| o != w.name()) {
            continue;
        }
        let mut rates = Vec::new();
        for _ in 0..rounds {
            match run(&client, &target, w, n, inflight).await {
                Ok(t) => rates.push(n as f64 / t.as_secs_f64()),
                Err(e) => {
                    eprintln!("dist: {} x{inflight}: {e}", w.name());
                    code = 1;
                }
            }
        }
        rates.sort_by(f64::total_cmp);
        let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
        println!("| {} | {inflight} | {median:.0} |", w.name());
    }
    drop(epmd);
    code
}
