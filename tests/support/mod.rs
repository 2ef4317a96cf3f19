//! Test harness: drives REAL Erlang/Elixir nodes from integration tests.
//!
//! Use it from an integration test with `mod support;`.
//!
//! * Every test starts its own EPMD ([`Epmd::start`], on a free port) and
//!   gives its nodes their own names ([`unique_name`]), so tests run in
//!   parallel with each other and with anything else on the machine. Nodes
//!   find their EPMD through `ERL_EPMD_PORT` and are started with
//!   `-start_epmd false`, so they never spawn (or use) a system-wide EPMD.
//! * [`BeamNode`] starts `elixir --sname NAME@localhost --cookie COOKIE`, with
//!   the Chat app (`-S mix run`, [`BeamNode::start`]) or without
//!   ([`BeamNode::start_plain`]), and runs `tests/support/driver.exs` on it:
//!   an iex-like evaluator fed through stdin. [`BeamNode::eval`] evaluates an
//!   Elixir expression there and returns the result as `inspect/2` text.
//! * Names are short (`--sname NAME@localhost`) unless a test asks for long
//!   ones with the `_long` starters ([`BeamNode::start_long`],
//!   [`RustNode::start_long`]): `--name NAME@127.0.0.1`. As on the BEAM, short
//!   and long name nodes do not talk to each other.
//! * Every wait is bounded. Everything a test starts is killed when its
//!   handle is dropped (each child runs in its own process group, which is
//!   killed with `SIGKILL`). If the test process dies without running
//!   destructors (Ctrl-C, `SIGKILL`), the children see their stdin close and exit by
//!   themselves.
#![allow(dead_code)] // each test binary uses its own subset of the harness

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default bound for [`BeamNode::eval`].
pub const EVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for a node to start (VM boot, app start, EPMD registration).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for `mix compile` of the chat app.
pub const COMPILE_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound for a fresh EPMD to answer.
pub const EPMD_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP port that was free a moment ago (bind `127.0.0.1:0`, read, drop), and that
/// this test process has not handed out before: two tests running side by side never
/// get the same port (the kernel may offer a released port again), so one test's EPMD
/// is never the one another test's nodes register with, to vanish when the first test
/// ends.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("cannot bind 127.0.0.1:0")
            .port();
        let mut given = lock(&GIVEN);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `"<prefix>_<pid>_<counter>"`: unique within this test process, and across
/// test processes running at the same time. A valid `--sname` (letters,
/// digits, `_`) if the prefix is, and it keeps the prefix first (so
/// `unique_name("moebi")` is still a moebi to the Chat app).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}

/// The Chat mix project: `<crate>/chat`.
pub fn chat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("chat")
}

/// The evaluator script run on every [`BeamNode`].
pub fn driver_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/driver.exs")
}

/// An OTP release other than the one first on `PATH`, with the Chat app already
/// compiled for it (`scripts/test --otp N` names the system's one this way when it runs
/// the tests on release N: `CNODE_OTHER_OTP_BIN`, `CNODE_OTHER_MIX_BUILD_ROOT`).
pub struct Release {
    /// The folder of its `erl` and `elixir`.
    pub bin: PathBuf,
    /// Its `MIX_BUILD_ROOT`, relative to [`chat_dir`].
    pub build_root: String,
}

impl Release {
    /// The other release `scripts/test` names, or a panic that says how to get one.
    pub fn other() -> Release {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: this test needs a second OTP release; \
                     `scripts/test --otp 29` runs it"
                )
            })
        };
        Release {
            bin: PathBuf::from(var("CNODE_OTHER_OTP_BIN")),
            build_root: var("CNODE_OTHER_MIX_BUILD_ROOT"),
        }
    }
}

/// Runs `MIX_ENV=dev mix compile` in [`chat_dir`] once per test binary.
/// Panics (in every caller) with mix's output if it fails.
pub fn ensure_chat_compiled() {
    static COMPILED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = COMPILED.get_or_init(compile_chat) {
        panic!("{e}");
    }
}

fn compile_chat() -> Result<(), String> {
    // Test binaries of one `cargo test` run one after the other, but two
    // `cargo test` may run at once: serialise compiles with a lock directory.
    let build = chat_dir().join("_build");
    let _ = std::fs::create_dir_all(&build);
    let _lock = DirLock::acquire(&build.join(".cnode-compile.lock"), COMPILE_TIMEOUT);
    let mut cmd = Command::new("mix");
    cmd.arg("compile")
        .current_dir(chat_dir())
        .env("MIX_ENV", "dev");
    let (status, out) = run_bounded(cmd, COMPILE_TIMEOUT)
        .map_err(|e| format!("cannot run `mix compile` in {}: {e}", chat_dir().display()))?;
    if status == Some(0) {
        Ok(())
    } else {
        Err(format!(
            "`MIX_ENV=dev mix compile` in {} failed (exit status {status:?}):\n{out}",
            chat_dir().display()
        ))
    }
}

/// A lock held as long as a directory created by us exists. Stale locks
/// (older than the bound) are broken.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path, bound: Duration) -> DirLock {
        let deadline = Instant::now() + bound;
        loop {
            if std::fs::create_dir(path).is_ok() || Instant::now() > deadline {
                return DirLock(path.to_owned());
            }
            let stale = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > bound);
            if stale {
                let _ = std::fs::remove_dir(path);
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `cmd` (stdin closed) for at most `bound`; returns its exit code
/// (`None` if killed by a signal) and its stdout+stderr.
fn run_bounded(mut cmd: Command, bound: Duration) -> Result<(Option<i32>, String), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = Arc::new(Mutex::new(Vec::new()));
    let readers: Vec<_> = output_streams(&mut child)
        .into_iter()
        .flatten()
        .map(|mut stream| {
            let out = out.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + bound;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                kill_group(&mut child);
                let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
                return Err(format!("timed out after {bound:?}; output so far:\n{text}"));
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    for r in readers {
        let _ = r.join();
    }
    let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    Ok((status.code(), text))
}

/// SIGKILLs the process group led by `child` (see `process_group(0)`), then
/// the child itself, and reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not hide
/// the node's output from the panic message of another).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:x}{n:x}", std::process::id(), nanos)
}

// ---------------------------------------------------------------- EPMD ----

/// A private EPMD (`epmd -port P`, in the foreground) on a free port, killed
/// on drop. Pass it to [`BeamNode::start`]; give its [`port`](Epmd::port) to
/// the Rust node under test (`ERL_EPMD_PORT`).
pub struct Epmd {
    child: Child,
    port: u16,
}

/// `epmd -port PORT` in a process group of its own, under a shell that keeps stdin
/// open: when the test process goes away without dropping the [`Epmd`], `cat` ends and
/// the shell kills epmd. The shell ends with epmd, so an epmd that could not take the
/// port shows as an exited child. (`cat` reads stdin through fd 3: a background
/// command of a shell without job control reads `/dev/null` on its fd 0.)
fn spawn_epmd(port: u16, stderr: Stdio) -> Child {
    Command::new("sh")
        .args([
            "-c",
            r#"exec 3<&0; epmd -port "$1" & e=$!; (cat <&3 >/dev/null; kill "$e" 2>/dev/null) & wait "$e""#,
            "sh",
            &port.to_string(),
        ])
        .env("ERL_EPMD_PORT", port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .expect("cannot spawn `epmd` (is Erlang installed?)")
}

impl Epmd {
    /// Starts an EPMD on a free port and waits (bounded) until it answers.
    pub fn start() -> Epmd {
        let mut errors = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = spawn_epmd(port, Stdio::piped());
            let deadline = Instant::now() + EPMD_TIMEOUT;
            while Instant::now() < deadline {
                if epmd_names(port).is_ok() {
                    return Epmd { child, port };
                }
                if let Ok(Some(status)) = child.try_wait() {
                    let _ = writeln!(errors, "epmd on port {port} exited: {status}");
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = writeln!(errors, "epmd on port {port} did not answer");
            kill_group(&mut child);
        }
        panic!("cannot start a private epmd:\n{errors}");
    }

    /// The port it listens on (all interfaces, IPv4 and IPv6).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The nodes registered right now, as `(short name, distribution port)`.
    pub fn names(&self) -> Vec<(String, u16)> {
        epmd_names(self.port).unwrap_or_else(|e| panic!("epmd on port {}: {e}", self.port))
    }

    /// Kills this EPMD (SIGKILL: every registration socket closes) and waits until the
    /// port no longer answers.
    pub fn kill(&mut self) {
        kill_group(&mut self.child);
        let deadline = Instant::now() + EPMD_TIMEOUT;
        while epmd_names(self.port).is_ok() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a new EPMD on the same port (after [`kill`](Epmd::kill)) and waits until it
    /// answers. Registrations are gone: nodes must register again.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + EPMD_TIMEOUT;
        loop {
            let mut child = spawn_epmd(self.port, Stdio::null());
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(2) {
                if epmd_names(self.port).is_ok() {
                    kill_group(&mut self.child);
                    self.child = child;
                    return;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
            kill_group(&mut child);
            assert!(
                Instant::now() < deadline,
                "cannot restart epmd on port {}",
                self.port
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Epmd {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// EPMD `NAMES_REQ`; checks the answer really comes from an EPMD on `port`.
fn epmd_names(port: u16) -> Result<Vec<(String, u16)>, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.write_all(&[0, 1, b'n']).map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    if reply.len() < 4 || reply[..4] != u32::from(port).to_be_bytes() {
        return Err(format!("not an epmd answer: {reply:?}"));
    }
    // Lines "name NAME at port PORT".
    Ok(String::from_utf8_lossy(&reply[4..])
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("name ")?;
            let (name, port) = rest.rsplit_once(" at port ")?;
            Some((name.to_owned(), port.trim().parse().ok()?))
        })
        .collect())
}

// -------------------------------------------------------------- Names ----

/// Short names (`--sname NAME@localhost`) or long ones (`--name NAME@127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    Short,
    Long,
}

impl Names {
    fn flag(self) -> &'static str {
        match self {
            Names::Short => "--sname",
            Names::Long => "--name",
        }
    }

    /// `name` with this kind's default host when it has none.
    fn full(self, name: &str) -> String {
        match (name.contains('@'), self) {
            (true, _) => name.to_owned(),
            (false, Names::Short) => format!("{name}@localhost"),
            (false, Names::Long) => format!("{name}@127.0.0.1"),
        }
    }
}

/// `mix run` of the Chat app, compiled beforehand by [`ensure_chat_compiled`].
const CHAT_ARGS: [&str; 6] = [
    "-S",
    "mix",
    "run",
    "--no-compile",
    "--no-deps-check",
    "--no-archives-check",
];

/// The child's stdout and stderr as readers, taken out of `child`.
fn output_streams(child: &mut Child) -> [Option<Box<dyn Read + Send>>; 2] {
    [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
}

// ----------------------------------------------------------- BeamNode ----

#[derive(Default)]
struct State {
    /// Everything the node printed, without driver markers.
    output: String,
    /// Results by request id: `Ok(inspect text)` or `Err(formatted error)`.
    results: HashMap<u64, Result<String, String>>,
    ready: bool,
    /// Output streams that reached end of file (2 = the node is gone).
    closed: usize,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

/// A real Erlang/Elixir node driven through `tests/support/driver.exs`,
/// killed (with everything it started) on drop.
///
/// Expressions are evaluated one after the other in one long-lived process,
/// like in an iex session: variables, `import`/`alias`, the mailbox and
/// process flags (`Process.flag(:trap_exit, true)`) persist between
/// [`eval`](BeamNode::eval)s. Its group leader is the node's `:user`, so
/// what it prints, and what the node's own processes print (e.g. the Chat
/// tasks), shows up in [`output`](BeamNode::output) as it would on an iex
/// console. Also imported: `flush()` (empties the mailbox and returns the
/// messages as a list) and `next_message(timeout \\ 5000)` (one message or
/// `:timeout`). If the evaluator dies (it was linked to a crashing process),
/// that eval fails and a fresh evaluator (no variables, empty mailbox)
/// takes over, as in iex.
pub struct BeamNode {
    name: String,
    cookie: String,
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    started: Duration,
}

impl BeamNode {
    /// Starts `elixir --sname NAME@localhost --cookie COOKIE -S mix run` in
    /// [`chat_dir`] (so the Chat app, with `Chat.TaskSupervisor`, is running)
    /// on `epmd`, and waits until it is registered there. `name` may be
    /// given with or without `@localhost`.
    pub fn start(name: &str, cookie: &str, epmd: &Epmd) -> BeamNode {
        ensure_chat_compiled();
        BeamNode::spawn(name, cookie, epmd, Names::Short, &CHAT_ARGS)
    }

    /// Like [`start`](BeamNode::start), with a long name:
    /// `elixir --name NAME@127.0.0.1` (`name` with or without the host).
    pub fn start_long(name: &str, cookie: &str, epmd: &Epmd) -> BeamNode {
        ensure_chat_compiled();
        BeamNode::spawn(name, cookie, epmd, Names::Long, &CHAT_ARGS)
    }

    /// Like [`start`](BeamNode::start), as a hidden node (`--hidden`): it takes no
    /// part in `global`, and its peers do not list it in `Node.list()`.
    pub fn start_hidden(name: &str, cookie: &str, epmd: &Epmd) -> BeamNode {
        ensure_chat_compiled();
        let args: Vec<&str> = ["--hidden"].into_iter().chain(CHAT_ARGS).collect();
        BeamNode::spawn(name, cookie, epmd, Names::Short, &args)
    }

    /// Starts a node without the Chat app (plain `elixir`, like `erl` with
    /// Elixir loaded; the Chat modules are not even in its code path), same
    /// driver.
    pub fn start_plain(name: &str, cookie: &str, epmd: &Epmd) -> BeamNode {
        BeamNode::spawn(name, cookie, epmd, Names::Short, &[])
    }

    /// [`start_plain`](BeamNode::start_plain) with `elixir` options besides
    /// (`["--erl", "-connect_all false"]`).
    pub fn start_plain_with(name: &str, cookie: &str, epmd: &Epmd, extra: &[&str]) -> BeamNode {
        BeamNode::spawn(name, cookie, epmd, Names::Short, extra)
    }

    /// Like [`start`](BeamNode::start), on another OTP release than the one on `PATH`:
    /// `elixir` from `release.bin`, the Chat app as compiled for it under
    /// `chat/<release.build_root>` (`MIX_BUILD_ROOT`). For clusters that mix releases.
    pub fn start_release(name: &str, cookie: &str, epmd: &Epmd, release: &Release) -> BeamNode {
        let path = std::env::var("PATH").unwrap_or_default();
        let env = [
            ("PATH", format!("{}:{path}", release.bin.display())),
            ("MIX_BUILD_ROOT", release.build_root.clone()),
        ];
        BeamNode::spawn_with_env(name, cookie, epmd, Names::Short, &CHAT_ARGS, &env)
    }

    fn spawn(name: &str, cookie: &str, epmd: &Epmd, names: Names, extra: &[&str]) -> BeamNode {
        BeamNode::spawn_with_env(name, cookie, epmd, names, extra, &[])
    }

    fn spawn_with_env(
        name: &str,
        cookie: &str,
        epmd: &Epmd,
        names: Names,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> BeamNode {
        let short = name.split('@').next().unwrap_or(name);
        let full = names.full(name);
        let token = token();
        let t0 = Instant::now();
        let mut cmd = Command::new("elixir");
        cmd.args([
            names.flag(),
            &full,
            "--cookie",
            cookie,
            "--erl",
            "-start_epmd false",
        ])
        .args(extra)
        .arg(driver_script())
        .current_dir(chat_dir())
        .env("ERL_EPMD_PORT", epmd.port().to_string())
        .env("MIX_ENV", "dev")
        .env("CNODE_DRIVER_TOKEN", &token)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
        let mut child = cmd
            .spawn()
            .expect("cannot spawn `elixir` (is Elixir installed?)");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let marker = format!("<<cnode-driver:{token}:");
        for stream in output_streams(&mut child).into_iter().flatten() {
            let shared = shared.clone();
            let marker = marker.clone();
            thread::spawn(move || read_output(stream, &shared, &marker));
        }
        let mut node = BeamNode {
            name: full,
            cookie: cookie.to_owned(),
            stdin: Mutex::new(child.stdin.take()),
            child,
            shared,
            next_id: AtomicU64::new(1),
            started: Duration::ZERO,
        };

        // Wait for the driver, then for the EPMD registration.
        let deadline = t0 + START_TIMEOUT;
        let ready = node.wait_state(deadline, |s| s.ready);
        assert!(
            ready,
            "node {} did not start within {START_TIMEOUT:?}{}\n--- output of {} ---\n{}",
            node.name,
            node.exit_note(),
            node.name,
            node.output()
        );
        while !epmd.names().iter().any(|(n, _)| n == short) {
            assert!(
                Instant::now() < deadline,
                "node {} is not registered in epmd on port {} after {START_TIMEOUT:?}\n--- output ---\n{}",
                node.name,
                epmd.port(),
                node.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
        node.started = t0.elapsed();
        node
    }

    /// `"name@localhost"` (`"name@127.0.0.1"` for long names).
    pub fn node_name(&self) -> String {
        self.name.clone()
    }

    /// The cookie it was started with.
    pub fn cookie(&self) -> String {
        self.cookie.clone()
    }

    /// How long [`start`](BeamNode::start) took (spawn to registered).
    pub fn startup_time(&self) -> Duration {
        self.started
    }

    /// OS pid of the node (the `beam.smp` process; it leads its own process
    /// group).
    pub fn os_pid(&self) -> u32 {
        self.child.id()
    }

    /// Evaluates `expr` and returns its value as `inspect/2` text (no
    /// truncation, one line). Panics, with the node's output, if it raises or
    /// no answer comes within [`EVAL_TIMEOUT`].
    pub fn eval(&self, expr: &str) -> String {
        self.eval_timeout(expr, EVAL_TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "eval of `{expr}` on {} failed: {e}\n--- output of {} ---\n{}",
                self.name,
                self.name,
                self.output()
            )
        })
    }

    /// Like [`eval`](BeamNode::eval), bounded by `t`, never panics: `Err`
    /// holds the formatted exception (as iex prints it, e.g.
    /// `** (RuntimeError) boom` + stacktrace) if it raised/threw/exited, or
    /// a message starting with `timeout:` / `node exited:`. After a timeout
    /// the expression keeps running on the node and later evals wait behind
    /// it.
    pub fn eval_timeout(&self, expr: &str, t: Duration) -> Result<String, String> {
        let deadline = Instant::now() + t;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut line = format!("{id} ");
        for b in expr.as_bytes() {
            let _ = write!(line, "{b:02X}");
        }
        line.push('\n');
        {
            let mut stdin = lock(&self.stdin);
            let sent = match stdin.as_mut() {
                Some(s) => s.write_all(line.as_bytes()).and_then(|()| s.flush()),
                None => Err(std::io::ErrorKind::BrokenPipe.into()),
            };
            if let Err(e) = sent {
                return Err(format!(
                    "node exited: cannot write to its stdin: {e}{}",
                    self.exit_note()
                ));
            }
        }
        let mut result = None;
        self.wait_state(deadline, |s| {
            result = s.results.remove(&id);
            result.is_some() || s.closed == 2
        });
        match result {
            Some(r) => r,
            None if lock(&self.shared.state).closed == 2 => {
                Err(format!("node exited{}", self.exit_note()))
            }
            None => Err(format!("timeout: no answer within {t:?}")),
        }
    }

    /// Everything the node printed so far (stdout and stderr), without the
    /// driver's markers.
    pub fn output(&self) -> String {
        lock(&self.shared.state).output.clone()
    }

    /// Waits (at most `t`) until `needle` appears in [`output`](BeamNode::output).
    pub fn wait_for_output(&self, needle: &str, t: Duration) -> bool {
        self.wait_state(Instant::now() + t, |s| s.output.contains(needle))
    }

    /// Waits (at most `t`) until `needle` appears `n` times in the output.
    pub fn wait_for_output_count(&self, needle: &str, n: usize, t: Duration) -> bool {
        self.wait_state(Instant::now() + t, |s| {
            s.output.matches(needle).count() >= n
        })
    }

    /// Number of (non-overlapping) occurrences of `needle` in the output.
    pub fn count_in_output(&self, needle: &str) -> usize {
        lock(&self.shared.state).output.matches(needle).count()
    }

    /// Waits until `done(state)` or the deadline; returns the last `done`.
    fn wait_state(&self, deadline: Instant, mut done: impl FnMut(&mut State) -> bool) -> bool {
        let mut state = lock(&self.shared.state);
        loop {
            if done(&mut state) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || state.closed == 2 {
                return false;
            }
            state = self
                .shared
                .cond
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    fn exit_note(&self) -> String {
        if lock(&self.shared.state).closed == 2 {
            " (its output streams are closed: the node exited)".to_owned()
        } else {
            String::new()
        }
    }
}

impl Drop for BeamNode {
    fn drop(&mut self) {
        lock(&self.stdin).take();
        kill_group(&mut self.child);
    }
}

/// Reader thread: appends the node's output to the shared state, taking out
/// the driver's markers (`<<cnode-driver:TOKEN:ready>>`,
/// `<<cnode-driver:TOKEN:result:ID:ok|error:HEX>>`).
fn read_output(stream: Box<dyn Read + Send>, shared: &Shared, marker: &str) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let mut state = lock(&shared.state);
        match line.find(marker) {
            None => state.output.push_str(&line),
            Some(at) => {
                // Text printed without a newline just before the marker.
                state.output.push_str(&line[..at]);
                let rest = &line[at + marker.len()..];
                let (body, after) = rest.split_once(">>").unwrap_or((rest, ""));
                let after = after.strip_prefix('\n').unwrap_or(after);
                state.output.push_str(after);
                if body == "ready" {
                    state.ready = true;
                } else if let Some((id, result)) = parse_result(body) {
                    state.results.insert(id, result);
                }
            }
        }
        drop(state);
        shared.cond.notify_all();
    }
    lock(&shared.state).closed += 1;
    shared.cond.notify_all();
}

fn parse_result(body: &str) -> Option<(u64, Result<String, String>)> {
    let mut parts = body.splitn(4, ':');
    if parts.next()? != "result" {
        return None;
    }
    let id = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let hex = parts.next()?;
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Some((id, if kind == "ok" { Ok(text) } else { Err(text) }))
}

// ----------------------------------------------------------- RustNode ----

/// The Moebi example binary (`examples/moebi.rs`), as a user runs it, on the
/// test's own EPMD; killed on drop. Its stdout (what Moebi prints) and stderr
/// (its log) are kept apart.
pub struct RustNode {
    name: String,
    child: Child,
    stdout: Arc<Shared>,
    stderr: Arc<Shared>,
}

/// `target/<profile>/examples/moebi`, built by `cargo test --all-targets`
/// (and built here if missing, e.g. under a plain `cargo test --test x`).
pub fn moebi_binary() -> PathBuf {
    example_binary("moebi")
}

/// `target/<profile>/examples/NAME`, built here once per test binary.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = lock(&BUILT);
    if let Some((_, bin)) = built.iter().find(|(n, _)| n == name) {
        return bin.clone();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("examples").join(name);
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo build --example");
    assert!(status.success(), "building the {name} example failed");
    built.push((name.to_owned(), bin.clone()));
    bin
}

impl RustNode {
    /// Starts Moebi as `--sname NAME@localhost --cookie COOKIE` plus `extra`
    /// arguments, and waits until it is registered with `epmd`.
    pub fn start(name: &str, cookie: &str, epmd: &Epmd, extra: &[&str]) -> RustNode {
        RustNode::spawn(name, cookie, epmd, Names::Short, extra, "info")
    }

    /// Like [`start`](RustNode::start), logging what `filter` (`RUST_LOG`) lets through.
    pub fn start_logging(
        name: &str,
        cookie: &str,
        epmd: &Epmd,
        extra: &[&str],
        filter: &str,
    ) -> RustNode {
        RustNode::spawn(name, cookie, epmd, Names::Short, extra, filter)
    }

    /// Like [`start`](RustNode::start), with a long name: `--name NAME@127.0.0.1`.
    pub fn start_long(name: &str, cookie: &str, epmd: &Epmd, extra: &[&str]) -> RustNode {
        RustNode::spawn(name, cookie, epmd, Names::Long, extra, "info")
    }

    fn spawn(
        name: &str,
        cookie: &str,
        epmd: &Epmd,
        names: Names,
        extra: &[&str],
        log: &str,
    ) -> RustNode {
        let full = names.full(name);
        let short = full.split('@').next().unwrap().to_owned();
        let mut child = Command::new(moebi_binary())
            .args([names.flag(), &full, "--cookie", cookie])
            .args(extra)
            .env("ERL_EPMD_PORT", epmd.port().to_string())
            .env("RUST_LOG", log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("cannot spawn the moebi example");
        let mk = || {
            Arc::new(Shared {
                state: Mutex::new(State::default()),
                cond: Condvar::new(),
            })
        };
        let (stdout, stderr) = (mk(), mk());
        for (stream, shared) in output_streams(&mut child)
            .into_iter()
            .zip([stdout.clone(), stderr.clone()])
        {
            if let Some(stream) = stream {
                thread::spawn(move || read_output(stream, &shared, "<<no-marker>>"));
            }
        }
        let node = RustNode {
            name: full,
            child,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !epmd.names().iter().any(|(n, _)| *n == short) {
            assert!(
                Instant::now() < deadline,
                "moebi {} did not register with epmd on port {}\n--- log ---\n{}",
                node.name,
                epmd.port(),
                node.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// `"name@localhost"`.
    pub fn node_name(&self) -> String {
        self.name.clone()
    }

    /// What Moebi printed on its terminal (standard output).
    pub fn output(&self) -> String {
        lock(&self.stdout.state).output.clone()
    }

    /// Moebi's log (standard error).
    pub fn log(&self) -> String {
        lock(&self.stderr.state).output.clone()
    }

    /// Times `line` was printed as a whole line on standard output.
    pub fn count_lines(&self, line: &str) -> usize {
        self.output().lines().filter(|l| *l == line).count()
    }

    /// Waits until `n` lines equal to `line` were printed.
    pub fn wait_for_lines(&self, line: &str, n: usize, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        loop {
            if self.count_lines(line) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The OS process id.
    pub fn os_pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit code once the program has ended, within `t`.
    pub fn wait_exit(&mut self, t: Duration) -> Option<i32> {
        let deadline = Instant::now() + t;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Closes Moebi's standard input, as a harness that started it through a pipe
    /// does when it ends.
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }
}

impl Drop for RustNode {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

// ----------------------------------------------------- in-process nodes ----

/// Runs `body` as a process of a library `node` inside the test and returns what it
/// returns, within 30 s. A panic in `body` (a failed assertion) ends that process and
/// fails here.
pub async fn in_process<T, F, Fut>(node: &cnode::Node, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(cnode::Process) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    node.spawn(move |p| async move {
        let _ = tx.send(body(p).await);
        Ok::<(), cnode::Exception>(())
    });
    tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .expect("the process finishes in time")
        .expect("the process ran to its end (see its panic above)")
}

/// Polls (10 s at most) until `node` gets an answer from Moebi's `:echo`, connecting
/// again if need be: after a connection in a `global` cluster is lost, the nodes'
/// `lost_connection` reports may still drop a connection made again just after it
/// (`prevent_overlapping_partitions`), among BEAM nodes as with Moebi.
pub fn reaches(node: &BeamNode, moebi: &RustNode) -> bool {
    let m = moebi.node_name();
    let answers = format!(
        "try do GenServer.call({{:echo, :{m}}}, :hello) == :hello catch :exit, _ -> false end"
    );
    node.eval(&format!(
        "Enum.any?(1..200, fn _ -> {answers} || (Process.sleep(50); false) end)"
    )) == "true"
}

/// Bound for a chat's lines to appear ([`chats`]).
pub const CHAT_TIMEOUT: Duration = Duration::from_secs(15);

/// alex says "hi" to Moebi through the seed's Chat app and gets "chicken?" back.
pub fn chats(alex: &BeamNode, moebi: &RustNode, text: &str) {
    let m = moebi.node_name();
    let before = alex.count_in_output("chicken?");
    assert_eq!(
        alex.eval(&format!("Chat.send_message(:{m}, \"{text}\")")),
        ":ok",
        "moebi log:\n{}",
        moebi.log()
    );
    assert!(
        moebi.wait_for_lines(text, 1, CHAT_TIMEOUT),
        "moebi prints {text}:\n{}",
        moebi.output()
    );
    assert!(
        alex.wait_for_output_count("chicken?", before + 1, CHAT_TIMEOUT),
        "alex prints chicken?:\n{}",
        alex.output()
    );
}

/// A connection lost under a call, as iex prints the exit (`no connection to NODE`, `no
/// process`) or as the exit's term (`:nodedown`, `:noconnection`, `:noproc`).
const CONNECTION_LOST: [&str; 5] = [
    "no connection to",
    "no process",
    "nodedown",
    "noconnection",
    "noproc",
];

/// [`chats`] in a cluster that has just lost connections: `global`'s
/// `lost_connection` reports (`prevent_overlapping_partitions`) still on their way may
/// drop a connection made again after they were sent, among BEAM nodes as with Moebi,
/// and a chat caught in such a drop fails with the connection. It is tried again once the
/// node reaches Moebi again, until the cluster has settled (a minute at most); anything
/// else fails at once.
pub fn chats_once_settled(alex: &BeamNode, moebi: &RustNode, text: &str) {
    let m = moebi.node_name();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(reaches(alex, moebi), "{}", moebi.log());
        let before = alex.count_in_output("chicken?");
        match alex.eval_timeout(
            &format!("Chat.send_message(:{m}, \"{text}\")"),
            EVAL_TIMEOUT,
        ) {
            Ok(ok) => {
                assert_eq!(ok, ":ok", "moebi log:\n{}", moebi.log());
                assert!(
                    moebi.wait_for_lines(text, 1, CHAT_TIMEOUT),
                    "moebi prints {text}:\n{}",
                    moebi.output()
                );
                assert!(
                    alex.wait_for_output_count("chicken?", before + 1, CHAT_TIMEOUT),
                    "alex prints chicken?:\n{}",
                    alex.output()
                );
                return;
            }
            Err(e)
                if CONNECTION_LOST.iter().any(|r| e.contains(r)) && Instant::now() < deadline =>
            {
                eprintln!("the connection went down during the chat, again: {e}");
            }
            Err(e) => panic!("Chat.send_message failed: {e}\nmoebi log:\n{}", moebi.log()),
        }
    }
}

// ------------------------------------------------------------ examples ----

/// An example program (`examples/NAME.rs`) run as a user runs it, with `args`, on the
/// test's EPMD; killed on drop. Its standard output and error are kept together.
pub struct Example {
    child: Child,
    output: Arc<Shared>,
}

impl Example {
    pub fn start(name: &str, args: &[&str], epmd: &Epmd) -> Example {
        let mut child = Command::new(example_binary(name))
            .args(args)
            .env("ERL_EPMD_PORT", epmd.port().to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn the {name} example: {e}"));
        let output = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        for stream in output_streams(&mut child).into_iter().flatten() {
            let output = output.clone();
            thread::spawn(move || read_output(stream, &output, "<<no-marker>>"));
        }
        Example { child, output }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        lock(&self.output.state).output.clone()
    }

    /// Waits until its output contains `needle`.
    pub fn wait_for_output(&self, needle: &str, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        while !self.output().contains(needle) {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Its OS process id, for a signal.
    pub fn os_pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to end (at most `t`); its exit status, `None` if it is still running.
    pub fn wait(&mut self, t: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + t;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
