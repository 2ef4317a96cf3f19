//! Moebi, a medium-sized white dog who cannot type, as a Rust node of the seed's Chat
//! cluster. Whatever you tell him, he answers "chicken?".
//!
//! ```text
//! cargo run --release --example moebi -- --sname moebi@localhost --cookie secret_token
//! ```
//!
//! The functions read like the seed's `lib/chat.ex`: `Chat.receive_message/1` prints the
//! message; `Chat.receive_message_for_moebi/2` prints it and answers "chicken?" by starting
//! a task on the sender's own `Chat.TaskSupervisor`. `Moebi.say_name/0` and `Moebi.sup/0`
//! are the seed's first examples (`Node.spawn_link`), written for Moebi. `Moebi.wait/0,1`
//! waits for one message and exits with it as reason (to watch links and monitors from
//! iex), `Moebi.watch/1` monitors a pid and exits with the `DOWN` reason,
//! `Moebi.panic/0` panics (a Rust panic is an error exit of that one process, as a raise
//! on the BEAM), and `:echo` is a GenServer that answers every call with the request.

use clap::Parser;
use cnode::otp::gen_server;
use cnode::supervisor::{self, ChildSpec, Strategy};
use cnode::term::{atom, binary, list, map, puts_text, tuple, Match, Term};
use cnode::{Caller, Dest, Exception, GenServer, Next, Node, NodeConfig, Process, Reply};
use std::io::Write as _;
use std::time::Duration;

/// Moebi: a Rust node that joins an Elixir Chat cluster.
#[derive(Parser)]
#[command(
    name = "moebi",
    version,
    about = "Moebi, the seed's dog, as a Rust node of an Erlang/Elixir cluster",
    after_help = "Environment:\n  ERL_EPMD_PORT  the EPMD port, as for erl and epmd (default 4369)\n  RUST_LOG       log filter, e.g. debug or cnode=debug (default info; logs go to stderr)"
)]
struct Args {
    /// Short node name, `NAME[@HOST]` (as `iex --sname`).
    #[arg(long, conflicts_with = "name")]
    sname: Option<String>,
    /// Long node name, `NAME[@HOST]` (as `iex --name`).
    #[arg(long)]
    name: Option<String>,
    /// The cookie; default: $RELEASE_COOKIE (as an Elixir release reads it), else
    /// ~/.erlang.cookie (created as erl does when absent).
    #[arg(long)]
    cookie: Option<String>,
    /// Do not appear in the peers' Node.list() (as `iex --hidden`).
    #[arg(long)]
    hidden: bool,
    /// The distribution port, as `-kernel inet_dist_listen_min P inet_dist_listen_max
    /// P` (default: a free one, which EPMD tells the peers).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    listen_port: u16,
    /// The address the distribution listens on, as `-kernel inet_dist_use_interface`
    /// (127.0.0.1: this machine only); default every interface (`::` for a name whose
    /// host is an IPv6 address, else 0.0.0.0).
    #[arg(long, value_name = "ADDR")]
    listen_address: Option<std::net::IpAddr>,
    /// net_ticktime in seconds: a silent peer is dropped after this long.
    #[arg(long, default_value_t = 60)]
    net_ticktime: u64,
    /// net_setuptime in seconds: the longest a handshake may take.
    #[arg(long, default_value_t = 7)]
    net_setuptime: u64,
    /// Scheduler threads (1: every process and connection on the main thread, the
    /// fastest for a node that mostly moves messages, see README "Performance"; 0: one
    /// per core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Microseconds a connection that has just received data keeps polling for more
    /// before sleeping, as the BEAM's schedulers busy-wait (0: never).
    #[arg(long, default_value_t = 100)]
    busy_poll_us: u64,
    /// The largest distribution message accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    max_message_size: usize,
    /// The bytes of fragmented messages a peer may have in progress on one connection,
    /// together.
    #[arg(long, value_name = "B", default_value_t = 1024 * 1024 * 1024)]
    max_reassembly: usize,
    /// How deeply the terms of a message may nest (a BEAM node has no such limit:
    /// iodata built by appending in a loop nests a level per append). The threads get
    /// the stack it takes.
    #[arg(long, value_name = "LEVELS", default_value_t = 4096)]
    max_term_depth: usize,
    /// How many processes the node runs at most for its peers, as `erl +P`: a remote
    /// spawn or rpc beyond it is refused with `system_limit`.
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    max_processes: usize,
    /// The distribution buffer busy limit in KiB, as `erl +zdbbl`: beyond it a process
    /// sending to that peer waits until the connection drains.
    #[arg(long, default_value_t = 1024, value_name = "KIB")]
    zdbbl: usize,
    /// `global`'s prevent_overlapping_partitions, as `-kernel
    /// prevent_overlapping_partitions` on the BEAM: when two nodes of the cluster lose
    /// each other, the others drop both.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    prevent_overlapping_partitions: bool,
    /// TLS distribution, as `-proto_dist inet_tls`: this node's certificate (PEM), as
    /// `certfile` in an `-ssl_dist_optfile`. With --tls-key and --tls-ca.
    #[arg(long, requires_all = ["tls_key", "tls_ca"], value_name = "PEM")]
    tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM), as `keyfile`.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<std::path::PathBuf>,
    /// The CA peers' certificates must chain to (PEM), as `cacertfile`; peers are
    /// verified both ways, as with `{verify, verify_peer}` and `{fail_if_no_peer_cert, true}`.
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    tls_ca: Option<std::path::PathBuf>,
    /// TLS distribution from the `-ssl_dist_optfile` the BEAM nodes use: each
    /// section's certfile, keyfile and cacertfile, versions, ciphers, depth and
    /// server_name_indication (README "Under TLS distribution"); what it cannot honour
    /// stops it with the reason.
    #[arg(long, conflicts_with = "tls_cert", value_name = "FILE")]
    ssl_dist_optfile: Option<std::path::PathBuf>,
    /// Stop (as on SIGTERM) when stdin reaches its end: for a test harness that starts
    /// Moebi through a pipe, so that a harness that dies leaves no node behind.
    #[arg(long)]
    stop_on_stdin_eof: bool,
}

// def receive_message(message), do: IO.puts message
async fn receive_message(mut p: Process, args: Vec<Term>) -> Result<Term, Exception> {
    p.puts(&text(&args[0])?).await?;
    Ok(atom("ok"))
}

// def receive_message_for_moebi(message, from) do
//   IO.puts message
//   send_message(from, "chicken?")
// end
async fn receive_message_for_moebi(mut p: Process, args: Vec<Term>) -> Result<Term, Exception> {
    p.puts(&text(&args[0])?).await?;
    // A `from` that is no node name fails where Elixir's does, in the GenServer.whereis/1
    // of Task.Supervisor.async, after the message is printed.
    let Some(from) = args[1].as_atom().map(str::to_owned) else {
        let server = tuple(vec![atom("Elixir.Chat.TaskSupervisor"), args[1].clone()]);
        return Err(Exception::Error {
            reason: atom("function_clause"),
            stacktrace: vec![tuple(vec![
                atom("Elixir.GenServer"),
                atom("whereis"),
                list(vec![server]),
                list(vec![]),
            ])],
        });
    };
    send_message(&mut p, &from, "chicken?").await
}

// def send_message(recipient, message) do
//   spawn_task(__MODULE__, :receive_message, recipient, [message])
// end
async fn send_message(p: &mut Process, recipient: &str, message: &str) -> Result<Term, Exception> {
    spawn_task(
        p,
        "Elixir.Chat",
        "receive_message",
        recipient,
        vec![binary(message)],
    )
    .await
}

// def spawn_task(module, fun, recipient, args) do
//   recipient |> remote_supervisor() |> Task.Supervisor.async(module, fun, args) |> Task.await()
// end
async fn spawn_task(
    p: &mut Process,
    module: &str,
    fun: &str,
    recipient: &str,
    args: Vec<Term>,
) -> Result<Term, Exception> {
    let task = p
        .task_async(remote_supervisor(recipient), module, fun, args)
        .await?;
    Ok(p.task_await(task, Some(Duration::from_secs(5))).await?)
}

// defp remote_supervisor(recipient), do: {Chat.TaskSupervisor, recipient}
fn remote_supervisor(recipient: &str) -> Dest {
    ("Elixir.Chat.TaskSupervisor", recipient).into()
}

// def say_name, do: IO.puts "Hi, my name is Moebi"
async fn say_name(mut p: Process, _args: Vec<Term>) -> Result<Term, Exception> {
    p.puts("Hi, my name is Moebi").await?;
    Ok(atom("ok"))
}

// def sup do
//   receive do
//     {:hi, from} -> send from, :sup?
//   end
// end
async fn sup(mut p: Process, _args: Vec<Term>) -> Result<Term, Exception> {
    loop {
        let message = p.receive().await;
        // `from` is whatever `send/2` takes: a pid, a name, `{name, node}`, an alias.
        if let Some([hi, from]) = message.as_tuple_n(2) {
            if hi.is_atom("hi") {
                let Ok(to) = cnode::Dest::try_from(from) else {
                    return Err(Exception::badarg());
                };
                p.send(to, atom("sup?"));
                return Ok(atom("ok"));
            }
        }
    }
}

// def wait do
//   receive do
//     reason -> exit(reason)
//   end
// end
async fn wait(mut p: Process, _args: Vec<Term>) -> Result<Term, Exception> {
    Err(Exception::exit(p.receive().await))
}

// def wait(name) do
//   Process.register(self(), name)
//   wait()
// end
async fn wait_as(p: Process, args: Vec<Term>) -> Result<Term, Exception> {
    p.register(args[0].as_atom().ok_or_else(|| Exception::badarg())?)?;
    wait(p, args).await
}

// def watch(pid) do
//   ref = Process.monitor(pid)
//   receive do
//     {:DOWN, ^ref, :process, _, reason} -> exit(reason)
//   end
// end
async fn watch(mut p: Process, args: Vec<Term>) -> Result<Term, Exception> {
    let pid = *args[0].as_pid().ok_or_else(|| Exception::badarg())?;
    let reference = p.monitor(pid);
    loop {
        if let Some([down, Term::Reference(r), _, _, reason]) = p.receive().await.as_tuple_n(5) {
            if down.is_atom("DOWN") && **r == reference {
                return Err(Exception::exit(reason.clone()));
            }
        }
    }
}

// def panic, do: raise "Moebi panicked on purpose"  (a Rust panic, not an Exception)
async fn panic(_p: Process, _args: Vec<Term>) -> Result<Term, Exception> {
    panic!("Moebi panicked on purpose");
}

// defmodule Echo do
//   use GenServer
//   def handle_call(request, _from, state), do: {:reply, request, state}
//   def handle_cast({pid, term}, state), do: (send(pid, term); {:noreply, state})
//   def handle_info({pid, term}, state), do: (send(pid, term); {:noreply, state})
// end
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

    async fn handle_cast(&mut self, request: Term, p: &mut Process) -> Result<Next, Exception> {
        echo_back(request, p);
        Ok(Next::Wait)
    }

    async fn handle_info(&mut self, message: Term, p: &mut Process) -> Result<Next, Exception> {
        echo_back(message, p);
        Ok(Next::Wait)
    }
}

/// `{pid, term}`: sends `term` to `pid`.
fn echo_back(message: Term, p: &Process) {
    if let Term::Tuple(t) = message {
        if let Ok([Term::Pid(pid), term]) = <[Term; 2]>::try_from(t.elements) {
            p.send(pid, term);
        }
    }
}

/// What `IO.puts(message)` prints. What it cannot print raises as there: a term with no
/// `String.Chars` (a tuple, a map, a pid) `Protocol.UndefinedError`, a list or binary
/// that is no character data `badarg`.
fn text(term: &Term) -> Result<String, Exception> {
    if let Some(text) = puts_text(term) {
        return Ok(text);
    }
    match term {
        Term::List(_) | Term::ImproperList(_) | Term::Binary(_) | Term::BitBinary(_) => {
            Err(Exception::badarg())
        }
        _ => {
            let undefined = map(vec![
                (atom("__struct__"), atom("Elixir.Protocol.UndefinedError")),
                (atom("__exception__"), atom("true")),
                (atom("protocol"), atom("Elixir.String.Chars")),
                (atom("value"), term.clone()),
                (atom("description"), binary("")),
            ]);
            // Raised in String.Chars.impl_for!/1, then this function's frame.
            let Exception::Error { reason, stacktrace } = Exception::error(undefined) else {
                unreachable!("Exception::error makes an error");
            };
            let impl_for = tuple(vec![
                atom("Elixir.String.Chars"),
                atom("impl_for!"),
                cnode::term::int(1),
                list(vec![]),
            ]);
            Err(Exception::Error {
                reason,
                stacktrace: std::iter::once(impl_for).chain(stacktrace).collect(),
            })
        }
    }
}

fn main() -> std::process::ExitCode {
    // The pages of a large message freed are the next one's, as on a BEAM.
    cnode::reuse_freed_memory();
    let args = Args::parse();
    // Why it could not start, on one line (as `erl` says it), whatever RUST_BACKTRACE says.
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The causes, each once (a cause its error already words is left out).
            let mut text = e.to_string();
            for cause in e.chain().skip(1).map(|c| c.to_string()) {
                if !text.contains(&cause) {
                    text = format!("{text}: {cause}");
                }
            }
            let _ = writeln!(std::io::stderr(), "Error: {text}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // Stack for the deepest term taken: dropping one takes about 200 bytes a level in
    // a debug build (the rest of a term's walks move onto stack segments of their own
    // as they go deeper; README "Limits").
    let stack = (args.max_term_depth * 512).max(2 << 20) + (1 << 20);
    let runtime = match args.threads {
        // One thread: every process and connection on it.
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Builder::new_multi_thread()
            .thread_stack_size(stack)
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .thread_stack_size(stack)
            .enable_all()
            .build()?,
    };
    std::thread::Builder::new()
        .name("moebi".into())
        .stack_size(stack)
        .spawn(move || runtime.block_on(moebi(args)))?
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

async fn moebi(args: Args) -> anyhow::Result<()> {
    // RUST_LOG as set, or `info`; one that does not parse is said so, not ignored. By
    // default rustls's note on each OTP 29 peer of a long name with an IP address (it
    // sends the address as the TLS server name, which TLS ignores) is left out.
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(e) => {
            if std::env::var_os("RUST_LOG").is_some() {
                eprintln!("RUST_LOG: {e}; logging at info");
            }
            "info,rustls::msgs::handshake=error".into()
        }
    };
    tracing_subscriber::fmt()
        // Lines go to stderr from a thread of their own (a log nobody reads does not
        // stall the node); one that cannot be written (a closed pipe) is dropped,
        // where the subscriber's own report of it would panic.
        .with_writer(cnode::log_writer)
        .log_internal_errors(false)
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let name = match (&args.sname, &args.name) {
        (_, Some(n)) => NodeConfig::long_name(n)?,
        (Some(n), None) => {
            let name = NodeConfig::short_name(n);
            if NodeConfig::is_long(&name) {
                // As `erl -sname` refuses it.
                anyhow::bail!(
                    "Can't set short node name! {name} has a long name's host (use --name)"
                );
            }
            name
        }
        (None, None) => NodeConfig::short_name("moebi"),
    };
    let cookie = match args.cookie {
        Some(c) => c,
        None => cnode::release_cookie()?,
    };
    let mut config = NodeConfig::new(&name, &cookie);
    // `--name` runs long names whatever the host, as `erl -name app@localhost`.
    config.long_names = args.name.is_some();
    config.hidden = args.hidden;
    config.listen_port = args.listen_port;
    if let Some(address) = args.listen_address {
        config.listen_address = address;
    }
    config.tick_time = Duration::from_secs(args.net_ticktime.max(1));
    config.setup_time = Duration::from_secs(args.net_setuptime.max(1));
    config.max_message_size = args.max_message_size;
    config.max_reassembly = args.max_reassembly;
    config.max_term_depth = args.max_term_depth;
    config.max_processes = args.max_processes;
    config.dist_buf_busy_limit = args.zdbbl.saturating_mul(1024);
    config.busy_poll = Duration::from_micros(args.busy_poll_us);
    config.prevent_overlapping_partitions = args.prevent_overlapping_partitions;
    if let (Some(cert), Some(key), Some(ca)) = (&args.tls_cert, &args.tls_key, &args.tls_ca) {
        config.tls = Some(cnode::TlsConfig::from_pem_files(cert, key, ca)?);
    }
    if let Some(optfile) = &args.ssl_dist_optfile {
        config.tls = Some(cnode::TlsConfig::from_optfile(optfile)?);
    }

    let node = Node::start(config).await?;
    node.register_function("Elixir.Chat", "receive_message", 1, receive_message);
    node.register_function(
        "Elixir.Chat",
        "receive_message_for_moebi",
        2,
        receive_message_for_moebi,
    );
    node.register_function("Elixir.Moebi", "say_name", 0, say_name);
    node.register_function("Elixir.Moebi", "sup", 0, sup);
    node.register_function("Elixir.Moebi", "wait", 0, wait);
    node.register_function("Elixir.Moebi", "wait", 1, wait_as);
    node.register_function("Elixir.Moebi", "watch", 1, watch);
    node.register_function("Elixir.Moebi", "panic", 0, panic);
    // Chat.Application's tree: Chat.Supervisor, one_for_one, over Chat.TaskSupervisor.
    // A Task.Supervisor that keeps crashing is restarted 3 times in 5 s, then the
    // tree gives up, as the Chat application stops on a BEAM node.
    supervisor::start(
        &node,
        Some("Elixir.Chat.Supervisor"),
        Strategy::OneForOne,
        // `{Task.Supervisor, name: Chat.TaskSupervisor}`: its id is its name.
        vec![ChildSpec::task_supervisor(
            "Elixir.Chat.TaskSupervisor",
            "Elixir.Chat.TaskSupervisor",
        )],
    )
    .await?;
    gen_server::start(&node, Some("echo"), Echo).await?;
    if args.stop_on_stdin_eof {
        node.stop_on_stdin_eof();
    }
    // Written as the log is: a closed stderr loses the line, and Moebi goes on.
    let _ = writeln!(
        std::io::stderr(),
        "Moebi is listening as {} (Ctrl-C to stop)",
        node.name()
    );
    // Until Ctrl-C or `:init.stop()` from a BEAM node; exits with the status asked for.
    std::process::exit(node.serve_forever().await)
}
