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
//! dist client --target NODE --cookie C --workload beside_large --n N
//!     Sequential small calls to `:echo` while another process sends N 64 MB messages
//!     to it over the same connection: `RESULT beside_large <calls> <µs,µs,...>`.
//! dist peers --target NODE --cookie C --count N [--hold S]
//!     Opens N hidden distribution connections (real handshakes, then ticks), prints
//!     `RESULT peers_up N` and `RESULT peers_connect_s S`, `READY`, and holds them
//!     until stdin closes (at most S seconds, default 120).
//! dist pending --target NODE --count N [--hello] [--hold S] (TLS options required)
//!     Opens N TCP connections to a TLS node's distribution port that never finish a
//!     handshake: silent after the TCP connect, or with `--hello` after sending the
//!     ClientHello a real peer sends, never reading the server's answer. Prints
//!     `RESULT pending_port P` (the server's), `RESULT pending_open N` (connected),
//!     with `--hello` `RESULT pending_answered N` (answered within 3 s), `RESULT
//!     pending_s S` (the time that took), `READY`, and holds them until stdin closes (at
//!     most S seconds, default 5: the server drops them at its net_setuptime anyway).
//! ```
//!
//! `client`, `peers` and `pending` take `--tls-cert PEM --tls-key PEM --tls-ca PEM` for
//! a TLS node (`-proto_dist inet_tls`): the same three files as the servers'.

use cnode::otp::gen_server;
use cnode::term::{atom, binary, int, list, tuple, Match, Term};
use cnode::{Caller, Exception, GenServer, Next, Node, NodeConfig, Process, Reply, TlsConfig};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_rustls::rustls;

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
                p.send(pid, term);
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
    /// `--tls-cert PEM --tls-key PEM --tls-ca PEM`, all three or none.
    fn tls_files(&self) -> Option<[&str; 3]> {
        match [
            self.get("--tls-cert"),
            self.get("--tls-key"),
            self.get("--tls-ca"),
        ] {
            [Some(cert), Some(key), Some(ca)] => Some([cert, key, ca]),
            [None, None, None] => None,
            _ => die("--tls-cert, --tls-key and --tls-ca go together"),
        }
    }
    /// The node's TLS configuration, as the Rust Moebi makes it from the same files.
    fn tls_config(&self) -> Option<TlsConfig> {
        self.tls_files().map(|[cert, key, ca]| {
            TlsConfig::from_pem_files(cert, key, ca)
                .unwrap_or_else(|e| die(&format!("TLS files: {e}")))
        })
    }
    /// The same files as a rustls client configuration, for `peers` and `pending`, which
    /// drive the handshakes themselves: this node's certificate offered, the server's
    /// checked against the CA, as `verify_peer` on a BEAM client.
    fn tls_client(&self) -> Option<Arc<rustls::ClientConfig>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let [cert, key, ca] = self.tls_files()?;
        let bad = |what: &str, e: &dyn std::fmt::Display| -> ! { die(&format!("{what}: {e}")) };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect())
            .unwrap_or_else(|e| bad(cert, &e));
        let key = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| bad(key, &e));
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).unwrap_or_else(|e| bad(ca, &e)) {
            roots
                .add(c.unwrap_or_else(|e| bad(ca, &e)))
                .unwrap_or_else(|e| bad(ca, &e));
        }
        #[allow(deprecated)] // ring's provider, as the library's (src/transport.rs)
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| bad("rustls", &e))
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap_or_else(|e| bad("rustls", &e));
        Some(Arc::new(config))
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
            Some("pending") => pending(&args).await,
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

async fn client_node(cookie: &str, epmd_port: Option<u16>, tls: Option<TlsConfig>) -> Node {
    let mut config = NodeConfig::new(&unique("rust_client"), cookie);
    // Hidden: no `global` traffic with the servers, as for a pure client.
    config.hidden = true;
    config.tls = tls;
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
    if args.req("--workload") == "beside_large" {
        return beside_large(args, &target, cookie).await;
    }
    let w = Workload::parse(args.req("--workload")).unwrap_or_else(|| die("unknown --workload"));
    let n = args.num("--n", 10_000);
    let inflight = args.num("--inflight", 1);
    let node = client_node(cookie, None, args.tls_config()).await;
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

/// Small `GenServer.call`s to `{:echo, target}`, one after the other, from one process
/// while another sends `--n` messages `{:big, 1, <<64 MB>>}` to the same `:echo` (each
/// given away, `send` then `yield_now`, as the docs ask of a process that sends in a
/// row), until
/// `:echo` has taken them all: `RESULT beside_large <calls> <µs,µs,...>`.
async fn beside_large(args: &Args, target: &str, cookie: &str) -> i32 {
    const BIG: usize = 64 * 1024 * 1024;
    let bigs = args.num("--n", 8);
    let node = client_node(cookie, None, args.tls_config()).await;
    if let Err(e) = warm_up(&node, target).await {
        eprintln!("dist client: {e}");
        return 1;
    }
    // Every message made before the calls start, and each given away: its binary goes
    // out from where it is, as a BEAM caller sends a binary it made before.
    let bigs: Vec<Term> = (0..bigs)
        .map(|_| tuple(vec![atom("big"), int(1), binary(vec![7u8; BIG])]))
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let (t, flag) = (target.to_owned(), done.clone());
    node.spawn(move |mut p| async move {
        for big in bigs {
            p.send(("echo", t.as_str()), big);
            p.yield_now().await;
        }
        p.send(
            ("echo", t.as_str()),
            tuple(vec![Term::Pid(p.pid()), atom("done")]),
        );
        let r = p
            .receive_match(Some(RUN_TIMEOUT), |m| m.is_atom("done"))
            .await;
        flag.store(true, Ordering::SeqCst);
        let _ = sent_tx.send(r.is_some());
        Ok(())
    });
    let (lat_tx, lat_rx) = tokio::sync::oneshot::channel();
    let t = target.to_owned();
    node.spawn(move |mut p| async move {
        let mut latencies = Vec::new();
        let small = small();
        while !done.load(Ordering::SeqCst) {
            let start = Instant::now();
            match p
                .call(("echo", t.as_str()), &small, Some(CALL_TIMEOUT))
                .await
            {
                Ok(r) if r == small => latencies.push(start.elapsed().as_micros()),
                r => {
                    let _ = lat_tx.send(Err(format!("echo answered {r:?}")));
                    return Ok(());
                }
            }
        }
        let _ = lat_tx.send(Ok(latencies));
        Ok(())
    });
    let sent = tokio::time::timeout(RUN_TIMEOUT, sent_rx).await;
    if !matches!(sent, Ok(Ok(true))) {
        eprintln!("dist client: the large messages were not all taken within {RUN_TIMEOUT:?}");
        return 1;
    }
    match tokio::time::timeout(RUN_TIMEOUT, lat_rx).await {
        Ok(Ok(Ok(latencies))) => {
            let list: Vec<String> = latencies.iter().map(u128::to_string).collect();
            println!("RESULT beside_large {} {}", latencies.len(), list.join(","));
            0
        }
        Ok(Ok(Err(e))) => {
            eprintln!("dist client: beside_large: {e}");
            1
        }
        _ => {
            eprintln!("dist client: beside_large: the caller did not finish");
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

/// A distribution socket of `peers`: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// The distribution port of `target` (`NAME@HOST`) from EPMD (`ERL_EPMD_PORT`), and its host.
async fn dist_port(target: &str) -> (u16, String) {
    use tokio_util::compat::TokioAsyncReadCompatExt;
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
    (port, host.to_owned())
}

/// The client side of the distribution handshake (erl_dist's) on `stream`, as hidden node
/// `name@host`; the stream back, ready for the connection.
async fn dist_handshake<S: Io>(
    stream: S,
    name: &str,
    host: &str,
    cookie: &str,
) -> std::io::Result<S> {
    use erl_dist::handshake::{ClientSideHandshake, HandshakeStatus};
    use erl_dist::node::{Creation, LocalNode, NodeName};
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let name = NodeName::new(name, host).map_err(std::io::Error::other)?;
    let local = LocalNode::new(name, Creation::random());
    let mut hs = ClientSideHandshake::new(stream.compat(), local, cookie);
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
    Ok(conn.into_inner())
}

/// Handshake messages with a 4-byte length inside TLS, as `inet_tls_dist` frames them
/// (`{packet, 4}`), for erl_dist's handshake, which writes and reads 2-byte lengths.
/// It never reads past the message being read, so after the handshake `inner` is the
/// connection's stream as it stands.
struct Packet4<S> {
    inner: S,
    /// What the handshake wrote and is not yet a whole message.
    written: Vec<u8>,
    /// Whole messages, reframed, not yet passed to `inner`.
    out: Vec<u8>,
    /// The incoming message's 4-byte length, as much as has arrived.
    header: [u8; 4],
    header_got: usize,
    /// Its 2-byte length for the handshake, and how much of it was handed over.
    short: [u8; 2],
    short_given: usize,
    /// The incoming message's bytes still to hand over.
    body_left: usize,
}

impl<S> Packet4<S> {
    fn new(inner: S) -> Self {
        Packet4 {
            inner,
            written: Vec::new(),
            out: Vec::new(),
            header: [0; 4],
            header_got: 0,
            short: [0; 2],
            short_given: 2,
            body_left: 0,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Packet4<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::{ready, Poll};
        let me = self.get_mut();
        if me.short_given == 2 && me.body_left == 0 {
            while me.header_got < 4 {
                let mut part = tokio::io::ReadBuf::new(&mut me.header[me.header_got..]);
                ready!(std::pin::Pin::new(&mut me.inner).poll_read(cx, &mut part))?;
                match part.filled().len() {
                    0 => return Poll::Ready(Ok(())),
                    n => me.header_got += n,
                }
            }
            me.header_got = 0;
            let len = u32::from_be_bytes(me.header);
            let short = u16::try_from(len).map_err(|_| {
                std::io::Error::other(format!("a handshake message of {len} bytes"))
            })?;
            me.short = short.to_be_bytes();
            me.short_given = 0;
            me.body_left = len as usize;
        }
        if me.short_given < 2 {
            let n = buf.remaining().min(2 - me.short_given);
            buf.put_slice(&me.short[me.short_given..me.short_given + n]);
            me.short_given += n;
            return Poll::Ready(Ok(()));
        }
        let n = buf.remaining().min(me.body_left);
        let mut part = tokio::io::ReadBuf::new(buf.initialize_unfilled_to(n));
        ready!(std::pin::Pin::new(&mut me.inner).poll_read(cx, &mut part))?;
        let got = part.filled().len();
        buf.advance(got);
        me.body_left -= got;
        Poll::Ready(Ok(()))
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Packet4<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        // Taken whole; each complete message goes out at the next flush (erl_dist flushes
        // after every message).
        let me = self.get_mut();
        me.written.extend_from_slice(buf);
        while me.written.len() >= 2 {
            let len = u16::from_be_bytes([me.written[0], me.written[1]]) as usize;
            if me.written.len() < 2 + len {
                break;
            }
            me.out.extend_from_slice(&(len as u32).to_be_bytes());
            me.out.extend_from_slice(&me.written[2..2 + len]);
            me.written.drain(..2 + len);
        }
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::ready;
        let me = self.get_mut();
        while !me.out.is_empty() {
            let n = ready!(std::pin::Pin::new(&mut me.inner).poll_write(cx, &me.out))?;
            if n == 0 {
                return std::task::Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            me.out.drain(..n);
        }
        std::pin::Pin::new(&mut me.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// N hidden connections to `target`, with the real handshake (erl_dist's client side),
/// inside TLS when the TLS options are given (as `inet_tls_dist` runs it).
async fn peers(args: &Args) -> i32 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let target = args.req("--target").to_owned();
    let cookie = args.req("--cookie").to_owned();
    let count = args.num("--count", 1000);
    let hold = Duration::from_secs(args.num("--hold", 120) as u64);
    let tls = args.tls_client();
    let (port, host) = dist_port(&target).await;
    let start = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(32));
    let mut handshakes = tokio::task::JoinSet::new();
    for i in 0..count {
        let slots = slots.clone();
        let (host, cookie, tls) = (host.clone(), cookie.clone(), tls.clone());
        handshakes.spawn(async move {
            let _slot = slots.acquire().await;
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let _ = tcp.set_nodelay(true);
            let name = format!("bench_peer_{}_{i}", std::process::id());
            let stream: Box<dyn Io> = match tls {
                None => dist_handshake(Box::new(tcp) as Box<dyn Io>, &name, &host, &cookie).await?,
                Some(config) => {
                    let server = rustls::pki_types::ServerName::try_from(host.clone())
                        .map_err(std::io::Error::other)?;
                    let tls = tokio_rustls::TlsConnector::from(config)
                        .connect(server, tcp)
                        .await?;
                    let framed = dist_handshake(Packet4::new(tls), &name, &host, &cookie).await?;
                    Box::new(framed.inner)
                }
            };
            Ok::<_, std::io::Error>(stream)
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
            let (mut r, mut w) = tokio::io::split(s);
            let reader = async move {
                let mut buf = [0u8; 256];
                while matches!(r.read(&mut buf).await, Ok(1..)) {}
            };
            let ticker = async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    // Flushed: under TLS the tick is a record of its own.
                    if w.write_all(&[0, 0, 0, 0]).await.is_err() || w.flush().await.is_err() {
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
    hold_until_stdin_closes(hold).await;
    holders.abort_all();
    if up == count && failed == 0 {
        0
    } else {
        eprintln!("dist peers: {up} of {count} connections up");
        1
    }
}

/// Waits until stdin closes (the driver closing its port), at most `hold`.
async fn hold_until_stdin_closes(hold: Duration) {
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    let _ = tokio::time::timeout(hold, stdin_closed).await;
}

/// N TLS handshakes to `target` left pending: what a crowd of stalled peers costs the
/// server while its net_setuptime runs. Silent sockets, or (`--hello`) sockets that
/// sent the ClientHello of a real peer (made by rustls with this node's configuration)
/// and then read nothing: the server that takes one answers with its part of the key
/// exchange, signed, and waits for the rest. A server need not take them all at once
/// (what it has not accepted waits in its listen queue): `pending_answered` counts the
/// ClientHellos answered within 3 s.
async fn pending(args: &Args) -> i32 {
    use tokio::io::AsyncWriteExt;

    let target = args.req("--target").to_owned();
    let count = args.num("--count", 200);
    let hold = Duration::from_secs(args.num("--hold", 5) as u64);
    let hello = args.has("--hello");
    let tls = args
        .tls_client()
        .unwrap_or_else(|| die("pending needs --tls-cert, --tls-key and --tls-ca"));
    let (port, host) = dist_port(&target).await;
    let name = rustls::pki_types::ServerName::try_from(host)
        .unwrap_or_else(|e| die(&format!("{target}: {e}")));
    let start = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(32));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (slots, tls, name) = (slots.clone(), tls.clone(), name.clone());
        opening.spawn(async move {
            let slot = slots.acquire().await;
            let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            let _ = tcp.set_nodelay(true);
            if hello {
                let mut tls =
                    rustls::ClientConnection::new(tls, name).map_err(std::io::Error::other)?;
                let mut client_hello = Vec::new();
                tls.write_tls(&mut client_hello)?;
                tcp.write_all(&client_hello).await?;
                // `tls` (the client's half of the handshake) is dropped: only the
                // server's side stays pending.
            }
            drop(slot);
            Ok::<_, std::io::Error>(tcp)
        });
    }
    let mut sockets = Vec::with_capacity(count);
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(r)) = tokio::time::timeout_at(deadline, opening.join_next()).await {
        match r {
            Ok(Ok(s)) => sockets.push(s),
            Ok(Err(e)) => {
                if failed == 0 {
                    eprintln!("dist pending: a socket failed: {e}");
                }
                failed += 1;
            }
            Err(e) => {
                eprintln!("dist pending: {e}");
                failed += 1;
            }
        }
    }
    opening.abort_all();
    let open = sockets.len();
    let mut answered = 0;
    if hello {
        // The server's first bytes on each: it has taken that ClientHello and answered.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut waiting = tokio::task::JoinSet::new();
        for tcp in sockets.drain(..) {
            waiting.spawn(async move {
                let mut byte = [0u8; 1];
                let got = tokio::time::timeout_at(deadline, tcp.peek(&mut byte)).await;
                (tcp, matches!(got, Ok(Ok(1..))))
            });
        }
        while let Some(r) = waiting.join_next().await {
            if let Ok((tcp, yes)) = r {
                answered += usize::from(yes);
                sockets.push(tcp);
            }
        }
    }
    let took = start.elapsed();
    println!("RESULT pending_port {port}");
    println!("RESULT pending_open {open}");
    if hello {
        println!("RESULT pending_answered {answered}");
    }
    println!("RESULT pending_s {:.3}", took.as_secs_f64());
    println!("READY");
    hold_until_stdin_closes(hold).await;
    drop(sockets);
    if open == count && failed == 0 {
        0
    } else {
        eprintln!("dist pending: {open} of {count} sockets open");
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
    server
        .start_task_supervisor("Elixir.Chat.TaskSupervisor")
        .expect("the task supervisor starts");
    // As Moebi's, without the printing (this process's stdout is the report).
    server.register_function(
        "Elixir.Chat",
        "receive_message",
        1,
        |_p, _args| async move { Ok(atom("ok")) },
    );
    let client = client_node(cookie, Some(epmd_port), None).await;
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
