//! `cnode`: one step of an interop script against a running Erlang or Elixir node.
//!
//! ```text
//! cnode ping alex@localhost
//! cnode call alex@localhost Enum.sum '[1, 2, 3]'          # prints 6
//! cnode eval alex@localhost 'Enum.sum([1, 2, 3])'
//! cnode send alex@localhost shell '{:hello, "from a script"}'
//! cnode wait alex@localhost Chat.TaskSupervisor
//! cnode names
//! ```
//!
//! Exit status: 0 success, 1 a raised exception or the node could not run the call
//! (`badrpc`), 2 bad usage or a malformed term, 3 the node cannot be reached (or the
//! connection was lost), 4 the node refused the cookie, 5 no answer within `--timeout`.

use clap::{Parser, Subcommand};
use cnode::term::{
    binary, list, map, parse, parse_erlang, tuple, Atom, Elixir, Erlang, Match, ParseError, Pid,
    Term, LOCAL_NODE,
};
use cnode::{Exception, HandshakeError, Node, NodeConfig, RpcError};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_RAISED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNREACHABLE: u8 = 3;
const EXIT_COOKIE: u8 = 4;
const EXIT_TIMEOUT: u8 = 5;

/// How deeply a result may nest: far beyond a node's default of 4,096, as a BEAM caller
/// takes any depth (iodata built by appending in a loop nests a level per append).
const MAX_TERM_DEPTH: usize = 100_000;

#[derive(Parser)]
#[command(
    name = "cnode",
    version,
    about = "One step of an interop script against an Erlang or Elixir node",
    after_help = "Exit status: 0 success; 1 an exception, or the node could not run the call \
                  (printed on stderr); 2 bad usage or a malformed term; 3 the node cannot be \
                  reached, or the connection was lost; \
                  4 the node refused the cookie; 5 no answer within --timeout.\n\
                  EPMD is found on ERL_EPMD_PORT (default 4369); the cookie is --cookie, \
                  else $RELEASE_COOKIE, else ~/.erlang.cookie or \
                  $XDG_CONFIG_HOME/erlang/.erlang.cookie (made in HOME when there is \
                  neither, as erl makes it).\n\
                  An argument `-` is a term read from stdin.\n\
                  RUST_LOG=info (or debug) logs what the node does on stderr: connections, \
                  refused handshakes, closed connections and why."
)]
struct Cli {
    /// The cookie (default: $RELEASE_COOKIE, as an Elixir release reads it, else
    /// ~/.erlang.cookie, as erl reads it).
    #[arg(long, global = true)]
    cookie: Option<String>,
    /// This node's short name, NAME[@HOST] (default: a unique hidden name).
    #[arg(long, global = true, conflicts_with = "name")]
    sname: Option<String>,
    /// This node's long name, NAME[@HOST].
    #[arg(long, global = true)]
    name: Option<String>,
    /// Seconds to wait for the connection and for the answer (a node EPMD does not
    /// know fails at once).
    #[arg(long, global = true, default_value_t = 10.0)]
    timeout: f64,
    /// Arguments and results in Erlang's syntax.
    #[arg(long, global = true, conflicts_with = "json")]
    erlang: bool,
    /// Results as JSON (arguments stay in Elixir's syntax).
    #[arg(long, global = true)]
    json: bool,
    /// TLS distribution (a cluster started with `-proto_dist inet_tls`): the
    /// `-ssl_dist_optfile` its nodes read (each section's certfile, keyfile and
    /// cacertfile, versions, ciphers, depth and server_name_indication; what cannot be
    /// honoured is refused with the reason).
    #[arg(long, global = true, value_name = "FILE")]
    ssl_dist_optfile: Option<std::path::PathBuf>,
    /// TLS distribution: this node's certificate (PEM), with --tls-key and --tls-ca.
    #[arg(long, global = true, requires_all = ["tls_key", "tls_ca"], conflicts_with = "ssl_dist_optfile", value_name = "PEM")]
    tls_cert: Option<std::path::PathBuf>,
    /// Its private key (PEM).
    #[arg(long, global = true, requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<std::path::PathBuf>,
    /// The CA the nodes' certificates chain to (PEM); peers are verified.
    #[arg(long, global = true, requires = "tls_cert", value_name = "PEM")]
    tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Node.ping/1: prints pong, or pang and exits 3 (4 when the node refuses the cookie,
    /// 5 when it does not answer within --timeout).
    Ping {
        /// The node: name@host, or a bare name on this host (as erl_call -sname).
        node: String,
    },
    /// :erpc.call(NODE, Module, fun, ARGS): Module.fun or :module.fun, each ARG a term.
    Call {
        /// The node: name@host, or a bare name on this host.
        node: String,
        /// `Enum.sum`, `:erlang.node`, `erlang:node` (with --erlang).
        function: String,
        /// Terms: `-1` and `-2.5` are arguments, not options.
        #[arg(allow_negative_numbers = true)]
        args: Vec<String>,
    },
    /// Evaluates CODE on NODE: Code.eval_string/1 on an Elixir node, erl_eval on an
    /// Erlang one (or with --erlang), as erl_call -e does.
    Eval {
        /// The node: name@host, or a bare name on this host.
        node: String,
        /// Elixir code (Erlang with --erlang); its value is printed.
        code: String,
    },
    /// send({NAME, NODE}, TERM): NAME `shell` or `:shell`, a module's name
    /// `Chat.Server` (`Elixir.Chat.Server`); with --erlang, the atom as written.
    Send {
        /// The node: name@host, or a bare name on this host.
        node: String,
        /// The registered name: `shell`, `:shell`, or a module's name `Chat.Server`.
        // Not `name`: that is the id of the global `--name`, which clap would fill.
        #[arg(value_name = "NAME")]
        registered: String,
        /// The message, a term.
        #[arg(allow_negative_numbers = true)]
        term: String,
    },
    /// Waits until NODE answers, and NAME is registered there when given (a script's
    /// wait for a node it started): prints pong, or NAME's pid; exits 5 when --timeout
    /// passes first, 4 at once when the node refuses the cookie.
    Wait {
        /// The node: name@host, or a bare name on this host.
        node: String,
        /// A registered name, as for send.
        #[arg(value_name = "NAME")]
        registered: Option<String>,
    },
    /// The nodes EPMD knows on HOST (default localhost), as `epmd -names`.
    Names {
        #[arg(default_value = "localhost")]
        host: String,
    },
}

/// Why a step failed: what to print on stderr, and the exit status.
struct Failure {
    code: u8,
    message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().map(signed_exponent).collect();
    let mut cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        // With --json, a usage error is an object too, as every other failure.
        Err(e) if e.use_stderr() && args.iter().any(|a| a == "--json") => {
            let message = e.to_string();
            let message = message.trim_end().trim_start_matches("error: ");
            eprintln!(
                "{{\"error\":\"usage\",\"message\":{}}}",
                json_string(message)
            );
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    // A bare node name is on this host, as `erl_call -sname` takes it: `moebi` is
    // `moebi@<short host name>`.
    match &mut cli.command {
        Command::Ping { node }
        | Command::Call { node, .. }
        | Command::Eval { node, .. }
        | Command::Send { node, .. }
        | Command::Wait { node, .. } => *node = NodeConfig::short_name(node),
        Command::Names { .. } => {}
    }
    // With --json, stdout holds the result alone: what the function prints goes to
    // stderr.
    if cli.json {
        cnode::user_output_to_stderr();
    }
    // Silent unless asked: a script reads stdout and the exit status.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(cnode::log_writer)
            .log_internal_errors(false)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cnode: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let json = cli.json;
    // The command runs on a thread with the stack a result as deep as MAX_TERM_DEPTH
    // takes (dropping a term nests as deep as it does).
    let command = std::thread::Builder::new()
        .name("cnode".into())
        .stack_size(MAX_TERM_DEPTH * 512 + (2 << 20))
        .spawn(move || runtime.block_on(run(&cli)));
    let outcome = match command.map(|thread| thread.join()) {
        Ok(Ok(outcome)) => outcome,
        // A panic, already reported by the panic hook: the status Rust gives one.
        Ok(Err(_)) => return ExitCode::from(101),
        Err(e) => {
            eprintln!("cnode: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match outcome {
        Ok(text) if text.is_empty() => ExitCode::SUCCESS,
        Ok(text) => out(&text).unwrap_or(ExitCode::SUCCESS),
        Err(f) => {
            use std::io::Write as _;
            // With --json, every failure is an object (an exception's says its class).
            let message = if json && !f.message.starts_with('{') {
                let kind = match f.code {
                    EXIT_USAGE => "usage",
                    EXIT_UNREACHABLE => "unreachable",
                    EXIT_COOKIE => "cookie",
                    EXIT_TIMEOUT => "timeout",
                    _ => "failed",
                };
                format!(
                    "{{\"error\":{},\"message\":{}}}",
                    json_string(kind),
                    json_string(&f.message)
                )
            } else {
                f.message
            };
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitCode::from(f.code)
        }
    }
}

/// A negative number with a signed exponent (`-2.5e-3`), which clap takes for an option
/// (it knows `-2.5e3`), written as the same number without one (`-0.0025`), so that it
/// is an argument as every other negative number.
fn signed_exponent(arg: std::ffi::OsString) -> std::ffi::OsString {
    let Some(text) = arg.to_str() else {
        return arg;
    };
    let signed = text.starts_with('-')
        && text[1..].starts_with(|c: char| c.is_ascii_digit())
        && (text.contains("e-")
            || text.contains("e+")
            || text.contains("E-")
            || text.contains("E+"));
    match text.parse::<f64>() {
        // Written out in full (Display has no exponent), and a float still.
        Ok(x) if signed && x.is_finite() => {
            let full = x.to_string();
            match full.contains('.') {
                true => full.into(),
                false => format!("{full}.0").into(),
            }
        }
        _ => arg,
    }
}

/// Exit status when stdout is a closed pipe (`cnode ... | head -c5`): 128 + SIGPIPE,
/// as a program the signal ends (erl_call) leaves a shell.
const EXIT_BROKEN_PIPE: u8 = 141;

/// `text` and a line end on stdout; `Some` exit status when it cannot be written (a
/// closed pipe, a full disk), where `println!` would panic. (A stdout closed before
/// the start, `>&-`, is `/dev/null` by then, as Rust's runtime opens it.)
fn out(text: &str) -> Option<ExitCode> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    // On a line of its own, after what the node printed (`IO.write("...")`).
    let start = if cnode::stdout_mid_line() { "\n" } else { "" };
    match writeln!(stdout, "{start}{text}").and_then(|()| stdout.flush()) {
        Ok(()) => None,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Some(ExitCode::from(EXIT_BROKEN_PIPE))
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cnode: cannot write the result: {e}");
            Some(ExitCode::from(EXIT_USAGE))
        }
    }
}

async fn run(cli: &Cli) -> Result<String, Failure> {
    if !(cli.timeout > 0.0 && cli.timeout < 1e9) {
        return Err(fail(
            EXIT_USAGE,
            "cnode: --timeout takes a number of seconds above 0 and below 1e9 (31 years)",
        ));
    }
    let timeout = Duration::from_secs_f64(cli.timeout);
    // Parse what the command line gives before starting anything.
    let plan = match &cli.command {
        Command::Names { host } => return names(host, timeout, cli.json).await,
        Command::Wait { node, registered } => {
            let name = match registered {
                Some(r) => Some((registered_name(r, cli.erlang)?, r.clone())),
                None => None,
            };
            return wait(cli, node, name, timeout).await;
        }
        Command::Ping { node } => Plan::Ping(node),
        Command::Call {
            node,
            function,
            args,
        } => {
            let (module, fun) = split_function(function, cli.erlang)?;
            let args = args
                .iter()
                .enumerate()
                .map(|(i, a)| term_arg(a, cli.erlang, &format!("argument {}", i + 1)))
                .collect::<Result<Vec<_>, _>>()?;
            Plan::Call(node, module, fun, args)
        }
        Command::Eval { node, code } => Plan::Eval(node, from_stdin(code, "the code")?),
        Command::Send {
            node,
            registered,
            term,
        } => {
            // A pid as the node printed it, or a registered name.
            let pid = if cli.erlang { "<" } else { "#PID<" };
            let to = match registered.starts_with(pid) {
                true => term_arg(registered, cli.erlang, "the pid")?,
                false => cnode::term::atom(&registered_name(registered, cli.erlang)?),
            };
            Plan::Send(node, to, term_arg(term, cli.erlang, "the message")?)
        }
    };
    let target = plan.node();
    node_name(target, "the node")?;
    let _ = TARGET.set(Atom::from(target));
    let node = match start(cli, target).await {
        Ok(node) => node,
        Err(f) => {
            // No node to ping from (its --sname is taken): the ping fails as well.
            if matches!(plan, Plan::Ping(_)) && f.code == EXIT_UNREACHABLE {
                out(if cli.json { "\"pang\"" } else { "pang" });
            }
            return Err(f);
        }
    };
    match tokio::time::timeout(timeout, node.try_connect(target)).await {
        Err(_) => {
            if let Plan::Ping(_) = plan {
                out(if cli.json { "\"pang\"" } else { "pang" });
            }
            return Err(fail(
                EXIT_TIMEOUT,
                format!("cnode: {target} did not answer within {}s", cli.timeout),
            ));
        }
        Ok(Err(e)) => {
            if let Plan::Ping(_) = plan {
                out(if cli.json { "\"pang\"" } else { "pang" });
            }
            return Err(connect_failure(target, &e));
        }
        Ok(Ok(())) => {}
    }
    match plan {
        Plan::Ping(_) => Ok(if cli.json { "\"pong\"" } else { "pong" }.into()),
        Plan::Call(target, module, fun, mut args) => {
            if args.iter().any(has_local_pid) {
                args = own_pids(cli, &node, target, args, timeout).await?;
            }
            let mut built = Vec::with_capacity(args.len());
            for a in args {
                built.push(structs(cli, &node, target, a, timeout).await?);
            }
            let args = built;
            match node.erpc_call(target, &module, &fun, args, timeout).await {
                Ok(t) => Ok(shown(cli, &node, target, t, timeout).await),
                Err(e) => Err(call_failure(cli, &node, target, e, timeout).await),
            }
        }
        Plan::Eval(target, code) => eval(cli, &node, target, &code, timeout).await,
        Plan::Send(target, to, term) => {
            let (to, term) = if has_local_pid(&term) || has_local_pid(&to) {
                let mut both = own_pids(cli, &node, target, vec![to, term], timeout).await?;
                let term = both.pop().expect("two");
                (both.pop().expect("two"), term)
            } else {
                (to, term)
            };
            let term = structs(cli, &node, target, term, timeout).await?;
            match &to {
                Term::Pid(pid) => node.send(*pid, term),
                _ => node.send((to.as_atom().unwrap_or(""), target.as_str()), term),
            }
            // A round trip on the same connection: the message has reached the node
            // (and the name's process, if it exists) once the answer is back.
            let echoed = node
                .erpc_call(target, "erlang", "node", vec![], timeout)
                .await;
            answer(cli, echoed).map(|_| String::new())
        }
    }
}

/// `wait NODE [NAME]`: tries to connect (and to find NAME there) every 100 ms until it
/// can or `timeout` has passed.
async fn wait(
    cli: &Cli,
    target: &str,
    name: Option<(String, String)>,
    timeout: Duration,
) -> Result<String, Failure> {
    node_name(target, "the node")?;
    let _ = TARGET.set(Atom::from(target));
    let node = start(cli, target).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no answer");
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            let what = match &name {
                Some((_, as_given)) => format!("{as_given} was not registered on {target}"),
                None => format!("{target} did not answer"),
            };
            return Err(fail(
                EXIT_TIMEOUT,
                format!("cnode: {what} within {}s ({last})", cli.timeout),
            ));
        }
        match tokio::time::timeout(left, node.try_connect(target)).await {
            Ok(Ok(())) => {
                let Some((name, as_given)) = &name else {
                    return Ok(if cli.json { "\"pong\"" } else { "pong" }.into());
                };
                let args = vec![cnode::term::atom(name)];
                match node
                    .erpc_call(target, "erlang", "whereis", args, left)
                    .await
                {
                    Ok(pid @ Term::Pid(_)) => return Ok(show(cli, &pid)),
                    Ok(_) => last = format!("{as_given} not registered yet"),
                    Err(RpcError::NoConnection(_)) => last = "the connection was lost".into(),
                    Err(RpcError::Timeout) => {}
                    Err(e) => return Err(rpc_failure(cli, e)),
                }
            }
            Ok(Err(e)) => {
                let failure = connect_failure(target, &e);
                // A refused cookie, or a node that is up under another name: waiting
                // changes neither.
                if failure.code == EXIT_COOKIE || matches!(e, HandshakeError::OtherName { .. }) {
                    return Err(failure);
                }
                last = failure.message.trim_start_matches("cnode: ").to_owned();
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100).min(left)).await;
    }
}

/// The node a pid read from text is of, `target` for one as its node prints it
/// (`#PID<0.107.0>`); `None` for a pid with its incarnation, not read from text.
fn text_pid_node<'a>(p: &'a Pid, target: &'a str) -> Option<&'a str> {
    match p.node.name() {
        LOCAL_NODE => Some(target),
        named if p.creation == 0 => Some(named),
        _ => None,
    }
}

/// Calls `f` with each pid in `t`'s lists, tuples and maps.
fn each_pid(t: &Term, f: &mut impl FnMut(&Pid)) {
    match t {
        Term::Pid(p) => f(p),
        Term::List(l) => l.elements.iter().for_each(|e| each_pid(e, f)),
        Term::Tuple(t) => t.elements.iter().for_each(|e| each_pid(e, f)),
        Term::Map(m) => m.map.iter().for_each(|(k, v)| {
            each_pid(k, f);
            each_pid(v, f);
        }),
        _ => {}
    }
}

/// Whether `t` holds a pid read from text: as its node prints it (`#PID<0.107.0>`), or
/// with its node named and no incarnation (`#PID<bob@localhost.85.0>`, creation 0).
fn has_local_pid(t: &Term) -> bool {
    let mut found = false;
    each_pid(t, &mut |p| found |= text_pid_node(p, "").is_some());
    found
}

/// Each pid read from text whose number or serial is beyond OTP 25's (15 and 13 bits),
/// with its node: `<0.N.S>`, as `list_to_pid/1` takes it there.
fn wide_pids(t: &Term, target: &str, out: &mut Vec<(String, String)>) {
    each_pid(t, &mut |p| {
        if p.id <= 0x7fff && p.serial <= 0x1fff {
            return;
        }
        if let Some(n) = text_pid_node(p, target) {
            let text = format!("<0.{}.{}>", p.id, p.serial);
            if !out.iter().any(|(m, t)| m == n && *t == text) {
                out.push((n.to_owned(), text));
            }
        }
    });
}

/// The arguments with each pid read from text put on its node's present incarnation
/// (which a pid of it tells: its `self()`): `#PID<0.107.0>` on `target`,
/// `#PID<bob@localhost.85.0>` on bob.
async fn own_pids(
    cli: &Cli,
    node: &Node,
    target: &str,
    args: Vec<Term>,
    timeout: Duration,
) -> Result<Vec<Term>, Failure> {
    let mut named: Vec<String> = Vec::new();
    for a in &args {
        each_pid(a, &mut |p| {
            if let Some(n) = text_pid_node(p, target) {
                if !named.iter().any(|o| o == n) {
                    named.push(n.to_owned());
                }
            }
        });
    }
    let mut creations = std::collections::HashMap::new();
    for n in named {
        let creation = match node.erpc_call(&n, "erlang", "self", vec![], timeout).await {
            Ok(Term::Pid(p)) => p.creation,
            Ok(other) => {
                return Err(fail(
                    EXIT_RAISED,
                    format!("cnode: {n} answered self() with {}", Elixir(&other)),
                ))
            }
            Err(RpcError::NoConnection(_)) if n != target => {
                return Err(fail(
                    EXIT_UNREACHABLE,
                    format!("cnode: cannot reach {n}, whose pid is an argument"),
                ))
            }
            Err(e) => return Err(rpc_failure(cli, e)),
        };
        creations.insert(n, creation);
    }
    // A pid's number and serial of more than 15 and 13 bits: a node of OTP 25 refuses it
    // (`list_to_pid/1` raises `badarg`) and takes one on the wire for a corrupted term,
    // dropping the connection. Newer releases make such pids. The node says which it is.
    let mut wide = Vec::new();
    args.iter().for_each(|a| wide_pids(a, target, &mut wide));
    for (n, text) in wide {
        let text_term = cnode::term::charlist(&text);
        match node
            .erpc_call(&n, "erlang", "list_to_pid", vec![text_term], timeout)
            .await
        {
            Err(RpcError::Exception(Exception::Error { reason, .. }))
                if reason.is_atom("badarg") =>
            {
                return Err(fail(
                    EXIT_USAGE,
                    format!(
                        "cnode: {text} is no pid of {n}: its release takes pid numbers up to \
                         32767 and serials up to 8191"
                    ),
                ))
            }
            // A node without list_to_pid/1 (a Rust node) or one that takes it.
            Ok(_) | Err(RpcError::Exception(_)) => {}
            Err(e) => return Err(rpc_failure(cli, e)),
        }
    }
    fn on(t: Term, target: &str, creations: &std::collections::HashMap<String, u32>) -> Term {
        match t {
            Term::Pid(p) => match text_pid_node(&p, target) {
                Some(n) => Term::Pid(Pid::new(n, p.id, p.serial, creations[n])),
                None => Term::Pid(p),
            },
            Term::List(l) => list(
                l.elements
                    .into_iter()
                    .map(|e| on(e, target, creations))
                    .collect(),
            ),
            Term::Tuple(t) => tuple(
                t.elements
                    .into_iter()
                    .map(|e| on(e, target, creations))
                    .collect(),
            ),
            Term::Map(m) => map(m
                .map
                .into_iter()
                .map(|(k, v)| (on(k, target, creations), on(v, target, creations)))),
            other => other,
        }
    }
    Ok(args
        .into_iter()
        .map(|a| on(a, target, &creations))
        .collect())
}

/// `t` with each struct written as a literal (`%URI{host: "x"}`) made as Elixir makes
/// it, by `URI.__struct__/1` on `target`: the fields not given take their defaults, and
/// a field the struct does not have raises `KeyError` there. A node without the
/// module (a Rust node's own structs) takes the map as written.
fn structs<'a>(
    cli: &'a Cli,
    node: &'a Node,
    target: &'a str,
    t: Term,
    timeout: Duration,
) -> futures::future::BoxFuture<'a, Result<Term, Failure>> {
    Box::pin(async move {
        Ok(match t {
            Term::List(l) => {
                let mut out = Vec::with_capacity(l.elements.len());
                for e in l.elements {
                    out.push(structs(cli, node, target, e, timeout).await?);
                }
                list(out)
            }
            Term::Tuple(t) => {
                let mut out = Vec::with_capacity(t.elements.len());
                for e in t.elements {
                    out.push(structs(cli, node, target, e, timeout).await?);
                }
                tuple(out)
            }
            Term::Map(m) => {
                let module = m
                    .map
                    .get(&cnode::term::atom("__struct__"))
                    .and_then(|s| s.as_atom().map(str::to_owned));
                let mut fields = Vec::with_capacity(m.map.len());
                for (k, v) in m.map {
                    fields.push((k, structs(cli, node, target, v, timeout).await?));
                }
                let Some(module) = module else {
                    return Ok(map(fields));
                };
                let given: Vec<Term> = fields
                    .iter()
                    .filter(|(k, _)| !k.is_atom("__struct__"))
                    .map(|(k, v)| tuple(vec![k.clone(), v.clone()]))
                    .collect();
                match node
                    .erpc_call(target, &module, "__struct__", vec![list(given)], timeout)
                    .await
                {
                    Ok(made) => made,
                    Err(RpcError::Exception(Exception::Error { reason, .. }))
                        if reason.is_atom("undef") =>
                    {
                        map(fields)
                    }
                    Err(e) => return Err(rpc_failure(cli, e)),
                }
            }
            other => other,
        })
    })
}

enum Plan<'a> {
    Ping(&'a String),
    Call(&'a String, String, String, Vec<Term>),
    Eval(&'a String, String),
    /// The node, a registered name (an atom) or a pid, the message.
    Send(&'a String, Term, Term),
}

impl Plan<'_> {
    fn node(&self) -> &str {
        match self {
            Plan::Ping(n) | Plan::Call(n, ..) | Plan::Eval(n, _) | Plan::Send(n, ..) => n,
        }
    }
}

/// A term given on the command line, or exit 2 with where it is malformed.
fn term_arg(text: &str, erlang: bool, what: &str) -> Result<Term, Failure> {
    let text = from_stdin(text, what)?;
    let text = text.as_str();
    let parsed = if erlang {
        parse_erlang(text)
    } else {
        parse(text)
    };
    parsed.map_err(|e| fail(EXIT_USAGE, malformed(what, text, &e)))
}

/// `text`, or for `-` what stdin holds (read once: a second `-` is empty).
fn from_stdin(text: &str, what: &str) -> Result<String, Failure> {
    use std::io::Read as _;
    static READ: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if text != "-" {
        return Ok(text.to_owned());
    }
    if READ.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return Err(fail(
            EXIT_USAGE,
            format!("cnode: {what} is -, but stdin was read for an earlier one: only one can be -"),
        ));
    }
    let mut read = String::new();
    std::io::stdin()
        .read_to_string(&mut read)
        .map_err(|e| fail(EXIT_USAGE, format!("cnode: {what} from stdin: {e}")))?;
    Ok(read)
}

/// A node name as `erl` takes one, `name@host`, or exit 2 saying what it is not.
fn node_name(text: &str, what: &str) -> Result<(), Failure> {
    let valid = text.split_once('@').is_some_and(|(name, host)| {
        !name.is_empty()
            && !host.is_empty()
            && !host.contains('@')
            && !text.contains(|c: char| c.is_whitespace() || c.is_control())
    });
    if valid {
        Ok(())
    } else {
        Err(fail(
            EXIT_USAGE,
            format!("cnode: {what} {text:?} is not a node name (name@host)"),
        ))
    }
}

/// The error, and the line it is on with a caret under the place: up to
/// `MALFORMED_CONTEXT` characters each side of it, so that a long line (a term of
/// megabytes on one line) is not written out again whole.
fn malformed(what: &str, text: &str, e: &ParseError) -> String {
    const MALFORMED_CONTEXT: usize = 60;
    let line = text.lines().nth(e.line - 1).unwrap_or("");
    let column = e.column - 1;
    let start = column.saturating_sub(MALFORMED_CONTEXT);
    let mut shown = String::new();
    if start > 0 {
        shown.push_str("...");
    }
    let mut rest = line.chars().skip(start);
    shown.extend(rest.by_ref().take(2 * MALFORMED_CONTEXT));
    if rest.next().is_some() {
        shown.push_str("...");
    }
    let caret = column - start + if start > 0 { 3 } else { 0 };
    format!(
        "cnode: {what} is not a term: {e}\n  {shown}\n  {}^",
        " ".repeat(caret)
    )
}

/// NAME as `send` and `wait` take it: a bare word (`shell`) is the atom of that name,
/// as `Process.register(self(), :shell)` registers it; anything else an atom as Elixir
/// (or, with --erlang, Erlang) reads one: `:shell`, `:"a b"`, `Chat.Server`
/// (`Elixir.Chat.Server`), `'a b'`. What is no atom is refused: no process is
/// registered under it.
fn registered_name(text: &str, erlang: bool) -> Result<String, Failure> {
    let bare = text.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '@');
    if bare {
        return Ok(text.to_owned());
    }
    let parsed = if erlang {
        parse_erlang(text)
    } else {
        parse(text)
    };
    match parsed {
        Ok(Term::Atom(name)) => Ok(name.name().to_owned()),
        _ => {
            let examples = match erlang {
                true => "shell, 'a b', 'Elixir.Chat.Server'",
                false => "shell, :shell, :\"a b\", Chat.Server",
            };
            Err(fail(
                EXIT_USAGE,
                format!("cnode: {text:?} is not a registered name: write an atom ({examples})"),
            ))
        }
    }
}

/// `Enum.sum` → (`Elixir.Enum`, `sum`); `:erlang.node` and (Erlang) `erlang:node` →
/// (`erlang`, `node`).
fn split_function(text: &str, erlang: bool) -> Result<(String, String), Failure> {
    let bad = || {
        fail(
            EXIT_USAGE,
            format!(
                "cnode: {text:?} is not a function: write Module.fun (Enum.sum, :erlang.node){}",
                if erlang { " or module:fun" } else { "" }
            ),
        )
    };
    if erlang {
        if let Some((m, f)) = text.split_once(':') {
            if !m.is_empty() && !f.is_empty() {
                return Ok((
                    m.trim_matches('\'').to_owned(),
                    f.trim_matches('\'').to_owned(),
                ));
            }
        }
    }
    let (module, fun) = text.rsplit_once('.').ok_or_else(bad)?;
    if fun.is_empty() || module.is_empty() {
        return Err(bad());
    }
    let module = match module.strip_prefix(':') {
        Some(erlang_module) => erlang_module.trim_matches('"').to_owned(),
        // `Elixir.Enum` is `Enum`, as Elixir reads it.
        None if module == "Elixir" || module.starts_with("Elixir.") => module.to_owned(),
        None if module.starts_with(char::is_uppercase) => format!("Elixir.{module}"),
        None => module.to_owned(),
    };
    Ok((module, fun.to_owned()))
}

/// This command's node: hidden, named after the process unless told otherwise (and then
/// connecting out only, unregistered), short or long as the target is.
async fn start(cli: &Cli, target: &str) -> Result<Node, Failure> {
    let cookie = match cli.cookie.clone() {
        Some(c) => c,
        None => cnode::release_cookie().map_err(|e| {
            fail(
                EXIT_USAGE,
                format!("cnode: no cookie: {e} (or give --cookie)"),
            )
        })?,
    };
    let name = match (&cli.sname, &cli.name) {
        (Some(s), _) => {
            let name = NodeConfig::short_name(s);
            node_name(&name, "--sname")?;
            if NodeConfig::is_long(&name) {
                return Err(fail(
                    EXIT_USAGE,
                    format!("cnode: --sname {name}: Can't set short node name! A long name's host (use --name)"),
                ));
            }
            name
        }
        (_, Some(n)) => {
            let name = NodeConfig::long_name(n)
                .map_err(|e| fail(EXIT_USAGE, format!("cnode: --name {n}: {e}")))?;
            node_name(&name, "--name")?;
            name
        }
        (None, None) => {
            let unique = format!(
                "cnode_{}_{}",
                std::process::id(),
                rand::random::<u32>() % 100_000
            );
            // Our host as the target names its own: `localhost` for `alex@localhost`,
            // `127.0.0.1` for a long name there.
            let host = target.split_once('@').map_or("localhost", |(_, h)| h);
            format!("{unique}@{host}")
        }
    };
    let mut config = NodeConfig::new(&name, &cookie);
    if cli.name.is_some() {
        // Long names whatever the host, as `erl -name app@localhost`.
        config.long_names = true;
    }
    config.hidden = true;
    config.max_term_depth = MAX_TERM_DEPTH;
    // A name of our own making is unique: no need to claim it with EPMD, nor to listen
    // (as `erl_call`). A name the user gave is registered, so that EPMD refuses it
    // while a node of that name is up.
    config.dist_listen = cli.sname.is_some() || cli.name.is_some();
    config.setup_time = Duration::from_secs_f64(cli.timeout.min(60.0));
    let tls = match (
        &cli.ssl_dist_optfile,
        &cli.tls_cert,
        &cli.tls_key,
        &cli.tls_ca,
    ) {
        (Some(optfile), ..) => Some(cnode::TlsConfig::from_optfile(optfile)),
        (None, Some(cert), Some(key), Some(ca)) => {
            Some(cnode::TlsConfig::from_pem_files(cert, key, ca))
        }
        _ => None,
    };
    if let Some(tls) = tls {
        let tls = tls.map_err(|e| fail(EXIT_USAGE, format!("cnode: TLS: {e}")))?;
        config.tls = Some(tls);
    }
    Node::start(config).await.map_err(|e| {
        fail(
            EXIT_UNREACHABLE,
            format!("cnode: cannot start a node as {name}: {e}"),
        )
    })
}

fn connect_failure(target: &str, e: &HandshakeError) -> Failure {
    match e {
        HandshakeError::CookieRefused { .. } | HandshakeError::WrongCookieAck { .. } => fail(
            EXIT_COOKIE,
            format!("cnode: {target} refused the connection: the cookies differ"),
        ),
        HandshakeError::Timeout => fail(
            EXIT_TIMEOUT,
            format!("cnode: {target} did not complete the handshake in time"),
        ),
        e => fail(
            EXIT_UNREACHABLE,
            format!("cnode: cannot reach {target}: {e}"),
        ),
    }
}

/// The reply of an erpc call as output, or the failure it is.
fn answer(cli: &Cli, result: Result<Term, RpcError>) -> Result<String, Failure> {
    result
        .map(|t| show(cli, &t))
        .map_err(|e| rpc_failure(cli, e))
}

/// The failure an erpc call's error is.
fn rpc_failure(cli: &Cli, e: RpcError) -> Failure {
    match e {
        RpcError::Exception(exception) => fail(EXIT_RAISED, raised(cli, &exception, None)),
        // As `:erpc.call` exits a BEAM caller.
        RpcError::Signal(reason) => {
            let signal = cnode::term::tuple(vec![cnode::term::atom("signal"), reason]);
            fail(EXIT_RAISED, raised(cli, &Exception::Exit(signal), None))
        }
        RpcError::Timeout => fail(
            EXIT_TIMEOUT,
            format!("cnode: no answer within {}s", cli.timeout),
        ),
        RpcError::NoConnection(_) => fail(EXIT_UNREACHABLE, "cnode: the connection was lost"),
        RpcError::Spawn(reason) => fail(
            EXIT_RAISED,
            format!("** (ErlangError) badrpc: {}", Elixir(&reason)),
        ),
        RpcError::CallerEnded(reason) => fail(
            EXIT_UNREACHABLE,
            format!(
                "cnode: the node stopped before the answer ({})",
                Elixir(&reason)
            ),
        ),
        other => fail(EXIT_RAISED, format!("cnode: {other}")),
    }
}

/// A raised exception as the caller's language prints it (`banner`: as the node itself
/// formats it, when it could).
fn raised(cli: &Cli, exception: &Exception, banner: Option<String>) -> String {
    let (class, reason, stacktrace) = parts(exception);
    if cli.erlang {
        return format!(
            "** exception {class}: {}",
            erlang_reason(class, reason, &stacktrace)
        );
    }
    if cli.json {
        // The message too: the reason alone (`"undef"`) does not say what is undefined.
        return format!(
            "{{\"class\":{},\"reason\":{},\"message\":{}}}",
            json_string(class),
            json(reason),
            json_string(&banner.unwrap_or_else(|| exception.banner()))
        );
    }
    banner.unwrap_or_else(|| exception.banner())
}

/// An erpc call's failure, an exception worded as iex on the node words it
/// (`Exception.format_banner/3` there: `(module Nope is not available)` is the node's
/// to know); on a node without Elixir, as [`raised`] words it.
async fn call_failure(
    cli: &Cli,
    node: &Node,
    target: &str,
    e: RpcError,
    timeout: Duration,
) -> Failure {
    let RpcError::Exception(exception) = &e else {
        return rpc_failure(cli, e);
    };
    if cli.erlang {
        return rpc_failure(cli, e);
    }
    let (class, reason, stacktrace) = parts(exception);
    let args = vec![cnode::term::atom(class), reason.clone(), stacktrace];
    let banner = match node
        .erpc_call(target, "Elixir.Exception", "format_banner", args, timeout)
        .await
    {
        Ok(Term::Binary(b)) => Some(String::from_utf8_lossy(&b.bytes).into_owned()),
        _ => None,
    };
    fail(EXIT_RAISED, raised(cli, exception, banner))
}

/// An exception's class, reason and stack, as erpc carries them.
fn parts(exception: &Exception) -> (&'static str, &Term, Term) {
    match exception {
        Exception::Error { reason, stacktrace } => ("error", reason, list(stacktrace.clone())),
        Exception::Exit(reason) => ("exit", reason, list(Vec::new())),
        Exception::Throw(value) => ("throw", value, list(Vec::new())),
    }
}

/// An error's reason as the Erlang shell explains the common ones (`erl_error`):
/// `undefined function nope:nope/0`, `bad argument`; others printed as they are.
fn erlang_reason(class: &str, reason: &Term, stacktrace: &Term) -> String {
    let printed = || Erlang(reason).to_string();
    if class != "error" {
        return printed();
    }
    let frame = || {
        let frame = stacktrace.as_list()?.first()?.as_tuple()?;
        let (m, f) = (frame.first()?, frame.get(1)?);
        let arity = match frame.get(2)? {
            Term::List(args) => args.elements.len() as i64,
            a => a.as_int()?,
        };
        Some(format!("{}:{}/{arity}", Erlang(m), Erlang(f)))
    };
    if let Some(name) = reason.as_atom() {
        return match name {
            "undef" => frame().map_or_else(printed, |f| format!("undefined function {f}")),
            // With the arguments when the frame has them, as the shell prints it:
            // `no function clause matching my_mod:only_one(2)`.
            "function_clause" => {
                let called = || {
                    let frame = stacktrace.as_list()?.first()?.as_tuple()?;
                    let args = frame.get(2)?.as_list()?;
                    let args: Vec<String> = args.iter().map(|a| Erlang(a).to_string()).collect();
                    Some(format!(
                        "{}:{}({})",
                        Erlang(frame.first()?),
                        Erlang(frame.get(1)?),
                        args.join(",")
                    ))
                };
                called()
                    .or_else(frame)
                    .map_or_else(printed, |f| format!("no function clause matching {f}"))
            }
            "badarg" => "bad argument".into(),
            "badarith" => "an error occurred when evaluating an arithmetic expression".into(),
            _ => printed(),
        };
    }
    match reason.as_tuple() {
        Some([tag, value]) if tag.is_atom("badmatch") => {
            format!("no match of right hand side value {}", Erlang(value))
        }
        Some([tag, value]) if tag.is_atom("case_clause") => {
            format!("no case clause matching {}", Erlang(value))
        }
        _ => printed(),
    }
}

/// The node the command talks to: its own pids, ports and references are printed as
/// its shell prints them (`#PID<0.107.0>`), those of other nodes with their node's name.
static TARGET: std::sync::OnceLock<Atom> = std::sync::OnceLock::new();

/// A call's result as output: one that holds a struct is inspected by the node, where
/// it has Elixir, as iex there shows it (the struct's field order, the fields its
/// `Inspect` hides); anything else, or on a node without Elixir, as [`show`] prints it.
/// (Not with another node's pids, references or ports in it, which the node would print
/// by its own numbering of nodes.)
async fn shown(cli: &Cli, node: &Node, target: &str, t: Term, timeout: Duration) -> String {
    // A struct, or a fun (whose name, `in QA.fun/0`, only the node knows).
    fn has_struct(t: &Term) -> bool {
        match t {
            Term::Map(m) => {
                m.map.contains_key(&cnode::term::atom("__struct__"))
                    || m.map.iter().any(|(k, v)| has_struct(k) || has_struct(v))
            }
            Term::List(l) => l.elements.iter().any(has_struct),
            Term::Tuple(t) => t.elements.iter().any(has_struct),
            Term::InternalFun(_) => true,
            _ => false,
        }
    }
    fn foreign(t: &Term, target: &str) -> bool {
        match t {
            Term::Pid(p) => p.node.name() != target,
            Term::Port(p) => p.node.name() != target,
            Term::Reference(r) => r.node.name() != target,
            Term::Map(m) => m
                .map
                .iter()
                .any(|(k, v)| foreign(k, target) || foreign(v, target)),
            Term::List(l) => l.elements.iter().any(|e| foreign(e, target)),
            Term::Tuple(t) => t.elements.iter().any(|e| foreign(e, target)),
            _ => false,
        }
    }
    if cli.erlang || cli.json || !has_struct(&t) || foreign(&t, target) {
        return show(cli, &t);
    }
    let whole = |k| tuple(vec![cnode::term::atom(k), cnode::term::atom("infinity")]);
    let opts = list(vec![whole("limit"), whole("printable_limit")]);
    match node
        .erpc_call(
            target,
            "Elixir.Kernel",
            "inspect",
            vec![t.clone(), opts],
            timeout,
        )
        .await
    {
        Ok(Term::Binary(b)) => String::from_utf8_lossy(&b.bytes).into_owned(),
        _ => show(cli, &t),
    }
}

fn show(cli: &Cli, t: &Term) -> String {
    if cli.json {
        json(t)
    } else {
        local(t, cli.erlang)
    }
}

/// `t` in Elixir's or Erlang's syntax, as the target node prints it.
fn local(t: &Term, erlang: bool) -> String {
    let Some(target) = TARGET.get() else {
        return if erlang {
            Erlang(t).to_string()
        } else {
            Elixir(t).to_string()
        };
    };
    if erlang {
        Erlang::local(t, target).to_string()
    } else {
        Elixir::local(t, target).to_string()
    }
}

/// `Code.eval_string/1` on an Elixir node; `erl_eval` on an Erlang one.
async fn eval(
    cli: &Cli,
    node: &Node,
    target: &str,
    code: &str,
    timeout: Duration,
) -> Result<String, Failure> {
    if !cli.erlang {
        let result = node
            .erpc_call(
                target,
                "Elixir.Code",
                "eval_string",
                vec![binary(code)],
                timeout,
            )
            .await;
        // Not an Elixir node: Code.eval_string/1 itself is undefined (not a function
        // the code calls).
        let undef = matches!(&result, Err(RpcError::Exception(Exception::Error { reason, stacktrace }))
            if reason.is_atom("undef")
                && stacktrace.first().and_then(|f| f.as_tuple())
                    .and_then(|f| f.first()).is_some_and(|m| m.is_atom("Elixir.Code")));
        if !undef {
            // Shown as `call` shows a value: a struct as the node inspects it.
            return match result {
                Ok(value) => Ok(shown(cli, node, target, first_of_tuple(value), timeout).await),
                Err(e) => answer(cli, Err(e)),
            };
        }
    }
    // As erl_call -e: scan, parse, evaluate.
    let mut code = code.trim().to_owned();
    if !code.ends_with('.') {
        code.push('.');
    }
    let tokens = node
        .erpc_call(
            target,
            "erl_scan",
            "string",
            vec![cnode::term::charlist(&code)],
            timeout,
        )
        .await;
    if matches!(&tokens, Err(RpcError::Exception(Exception::Error { reason, .. }))
        if reason.is_atom("undef"))
    {
        return Err(fail(
            EXIT_RAISED,
            format!(
                "cnode: {target} evaluates no code: it has neither Code.eval_string/1 nor \
                 erl_eval (a node that runs no BEAM code, as a Rust node)"
            ),
        ));
    }
    let tokens = ok_value(cli, tokens, "erl_scan")?;
    let exprs = node
        .erpc_call(target, "erl_parse", "parse_exprs", vec![tokens], timeout)
        .await;
    let exprs = ok_value(cli, exprs, "erl_parse")?;
    let value = node
        .erpc_call(
            target,
            "erl_eval",
            "exprs",
            vec![exprs, list(vec![])],
            timeout,
        )
        .await;
    // {value, Value, Bindings}
    answer(
        cli,
        value.map(|v| v.as_tuple_n(3).map_or(v.clone(), |e| e[1].clone())),
    )
}

fn first_of_tuple(t: Term) -> Term {
    match t.as_tuple_n(2) {
        Some(e) => e[0].clone(),
        None => t,
    }
}

/// `{ok, Value, _}` or `{ok, Value}` → Value; `{error, Info, _}` → a failure.
fn ok_value(cli: &Cli, result: Result<Term, RpcError>, step: &str) -> Result<Term, Failure> {
    let t = match result {
        Ok(t) => t,
        Err(e) => return answer(cli, Err(e)).map(|_| Term::Atom(Atom::from("ok"))),
    };
    match t.as_tuple() {
        Some([tag, value, ..]) if tag.is_atom("ok") => Ok(value.clone()),
        _ => Err(fail(
            EXIT_RAISED,
            format!(
                "** {step}: {}",
                if cli.erlang {
                    Erlang(&t).to_string()
                } else {
                    Elixir(&t).to_string()
                }
            ),
        )),
    }
}

/// `epmd -names` for `host`: `name NAME at port PORT` lines, or with --json an array
/// of `{"name": NAME, "port": PORT}`.
async fn names(host: &str, timeout: Duration, as_json: bool) -> Result<String, Failure> {
    let port = cnode::epmd::port_from_env();
    match tokio::time::timeout(timeout, cnode::epmd::names(host, port)).await {
        Err(_) => Err(fail(
            EXIT_TIMEOUT,
            format!("cnode: EPMD on {host}:{port} did not answer"),
        )),
        Ok(Err(e)) => Err(fail(
            EXIT_UNREACHABLE,
            format!("cnode: no EPMD on {host}:{port}: {e}"),
        )),
        Ok(Ok(nodes)) if as_json => {
            let objects: Vec<String> = nodes
                .iter()
                .map(|(name, port)| format!("{{\"name\":{},\"port\":{port}}}", json_string(name)))
                .collect();
            Ok(format!("[{}]", objects.join(",")))
        }
        Ok(Ok(nodes)) => {
            let mut out = String::new();
            for (i, (name, port)) in nodes.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let _ = write!(out, "name {name} at port {port}");
            }
            Ok(out)
        }
    }
}

/// A term as JSON: numbers, `true`/`false`/`null` for `true`/`false`/`nil`, other atoms
/// and UTF-8 binaries as strings, lists and tuples as arrays, maps with atom or string
/// keys as objects (other maps as arrays of `[key, value]`), charlists as the lists of
/// integers they are, dates and times in ISO 8601 and a `MapSet` as an array (as Jason
/// writes them), and what JSON has no kind for (pids, references, funs, binaries that
/// are not UTF-8, which Jason refuses) as its Elixir text.
fn json(t: &Term) -> String {
    let mut out = String::new();
    json_into(&mut out, t);
    out
}

/// Each level on a fresh stack segment when the thread's runs low, as the crate walks
/// terms (a result nests as deep as `MAX_TERM_DEPTH`).
fn json_into(out: &mut String, t: &Term) {
    stacker::maybe_grow(128 * 1024, 2 << 20, || json_level(out, t));
}

fn json_level(out: &mut String, t: &Term) {
    match t {
        Term::Atom(a) => match a.name() {
            "true" | "false" => out.push_str(a.name()),
            "nil" => out.push_str("null"),
            name => out.push_str(&json_string(name)),
        },
        Term::FixInteger(i) => {
            let _ = write!(out, "{}", i.value);
        }
        Term::BigInteger(i) => {
            let _ = write!(out, "{}", i.value);
        }
        // As Jason writes them, which is as inspect/1 does: `1.0`, `1.0e20`, `-0.0`.
        Term::Float(_) => out.push_str(&Elixir(t).to_string()),
        Term::Binary(b) => match std::str::from_utf8(&b.bytes) {
            Ok(s) => out.push_str(&json_string(s)),
            Err(_) => out.push_str(&json_string(&Elixir(t).to_string())),
        },
        // A charlist is a list of integers, as Jason writes it.
        Term::List(l) => json_array(out, &l.elements),
        Term::Tuple(tu) => json_array(out, &tu.elements),
        Term::Map(m) => {
            if let Some(iso) = calendar_iso8601(t, m) {
                out.push_str(&json_string(&iso));
                return;
            }
            if let Some(elements) = mapset_elements(m) {
                json_array(out, &elements);
                return;
            }
            let mut entries: Vec<_> = m.map.iter().collect();
            // Keys as Jason writes them: atoms and strings as they are, numbers by
            // `to_string/1`; a map with any other key is an array of pairs.
            let key = |k: &Term| match k {
                Term::Atom(a) => Some(a.name().to_owned()),
                Term::Binary(b) => String::from_utf8(b.bytes.clone()).ok(),
                Term::FixInteger(_) | Term::BigInteger(_) | Term::Float(_) => {
                    Some(Elixir(k).to_string())
                }
                _ => None,
            };
            match entries.iter().all(|(k, _)| key(k).is_some()) {
                true => {
                    entries.sort_by_key(|e| Elixir(e.0).to_string());
                    out.push('{');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let key = key(k).unwrap_or_default();
                        out.push_str(&json_string(&key));
                        out.push(':');
                        json_into(out, v);
                    }
                    out.push('}');
                }
                false => {
                    out.push('[');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        json_into(out, k);
                        out.push(',');
                        json_into(out, v);
                        out.push(']');
                    }
                    out.push(']');
                }
            }
        }
        other => out.push_str(&json_string(&local(other, false))),
    }
}

/// A `Date`, `Time`, `NaiveDateTime` or `DateTime` of Calendar.ISO in ISO 8601, as
/// Jason encodes them (`"2026-12-04"`, `"2026-12-04T12:00:00Z"`), from the sigil or
/// `#DateTime<...>` form it prints in.
fn calendar_iso8601(t: &Term, m: &cnode::term::Map) -> Option<String> {
    // Printed only when it is one of them, not for every map.
    let module = m
        .map
        .get(&Term::from(Atom::from("__struct__")))?
        .as_atom()?;
    if !matches!(
        module,
        "Elixir.Date" | "Elixir.Time" | "Elixir.NaiveDateTime" | "Elixir.DateTime"
    ) {
        return None;
    }
    let text = Elixir(t).to_string();
    if let Some(inner) = text
        .strip_prefix("~D[")
        .or_else(|| text.strip_prefix("~T["))
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return Some(inner.to_owned());
    }
    let (date, rest) = text
        .strip_prefix("~N[")
        .or_else(|| text.strip_prefix("~U["))
        .and_then(|rest| rest.strip_suffix(']'))
        // `#DateTime<2026-01-01 00:00:00+01:00 CET Europe/Paris>`: the offset is kept.
        .or_else(|| text.strip_prefix("#DateTime<")?.strip_suffix('>'))?
        .split_once(' ')?;
    let time = rest.split(' ').next()?;
    Some(format!("{date}T{time}"))
}

/// A `MapSet`'s elements, in term order (as it prints them).
fn mapset_elements(m: &cnode::term::Map) -> Option<Vec<Term>> {
    let field = |name: &str| m.map.get(&Term::from(Atom::from(name)));
    if field("__struct__")?.as_atom() != Some("Elixir.MapSet") {
        return None;
    }
    let Some(Term::Map(set)) = field("map") else {
        return None;
    };
    let mut elements: Vec<Term> = set.map.keys().cloned().collect();
    elements.sort_by(cnode::term::compare);
    Some(elements)
}

fn json_array(out: &mut String, items: &[Term]) {
    out.push('[');
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_into(out, e);
    }
    out.push(']');
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
