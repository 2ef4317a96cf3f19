//! cnode: a Rust program as a first-class node of an Erlang/Elixir cluster.
//!
//! The crate registers with EPMD, performs the real distribution handshake and hosts
//! processes (pids, mailboxes, links, monitors, aliases) that BEAM nodes talk to exactly
//! as they talk to each other. On those processes it has what a BEAM node runs
//! (`net_kernel` pings, `rex`/erpc, remote spawn, group-leader I/O, `global` and its
//! names, `pg` groups, `Task.Supervisor`, `init:stop`) and what an Elixir programmer
//! writes: [`GenServer`], [`supervisor`], tasks, timers ([`Process::send_after`]),
//! node monitoring ([`Process::monitor_nodes`]), and calls into the cluster from any
//! async Rust code.
//!
//! A complete node: `cargo run` it, then from `iex --sname alex@localhost --cookie secret_token`,
//! `Node.ping(:rusty@localhost)`, `GenServer.call({:counter, :rusty@localhost}, :get)` or
//! `:erpc.call(:rusty@localhost, Greeter, :hello, ["alex"])`.
//!
//! ```no_run
//! use cnode::term::{IntoTerm, Match, Term};
//! use cnode::{term, Caller, Exception, GenServer, Next, Node, NodeConfig, Process, Reply};
//! use serde::Deserialize;
//!
//! /// What Elixir sends the counter: `:get` and `{:add, 5}`.
//! #[derive(Deserialize)]
//! #[serde(rename_all = "snake_case")]
//! enum Request {
//!     Get,
//!     Add(i64),
//! }
//!
//! struct Counter(i64);
//!
//! impl GenServer for Counter {
//!     async fn handle_call(&mut self, request: Term, _from: &Caller, _p: &mut Process)
//!         -> Result<Reply, Exception> {
//!         match request.decode() {
//!             Ok(Request::Get) => Ok(Reply::reply(self.0.into_term())),
//!             _ => Err(Exception::argument_error(format!("unknown call {request}"))),
//!         }
//!     }
//!
//!     async fn handle_cast(&mut self, request: Term, _p: &mut Process)
//!         -> Result<Next, Exception> {
//!         if let Ok(Request::Add(k)) = request.decode() {
//!             self.0 += k;
//!         }
//!         Ok(Next::Wait)
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Logs go through `tracing`: any subscriber shows them, this one at `info` (the
//!     // node's connections, a GenServer's crash) unless RUST_LOG says otherwise.
//!     tracing_subscriber::fmt()
//!         .with_env_filter(
//!             tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
//!         )
//!         .init();
//!     let node = Node::start(NodeConfig::new("rusty@localhost", "secret_token")).await?;
//!
//!     // Greeter.hello/1 for BEAM callers (:erpc, :rpc, Node.spawn/4, Task.Supervisor).
//!     // Elixir modules are atoms with the `Elixir.` prefix, as on the BEAM.
//!     node.register_function("Elixir.Greeter", "hello", 1, |mut p, args| async move {
//!         let name: String = args[0].decode()?; // not a string: a RuntimeError for the caller
//!         p.puts(&format!("hello called by {name}")).await?; // printed where the caller says
//!         Ok(format!("Hello, {name}!").into_term())
//!     });
//!     cnode::gen_server::start(&node, Some("counter"), Counter(0)).await?;
//!
//!     // The cluster from plain async code: no process to write.
//!     let timeout = std::time::Duration::from_secs(5);
//!     let sum = node
//!         .erpc_call("alex@localhost", "Elixir.Enum", "sum", vec![term!([1, 2])], timeout)
//!         .await?;
//!     println!("Enum.sum([1, 2]) on alex: {sum}");
//!
//!     // Until Ctrl-C or a peer's `:init.stop()`; the status it asked for.
//!     std::process::exit(node.serve_forever().await)
//! }
//! ```
//!
//! Terms are written as in Elixir with [`term!`], converted from Rust values with
//! [`IntoTerm`](term::IntoTerm) and from and to Rust types with serde
//! ([`term::to_term`], [`Match::decode`](term::Match::decode)); they print in Elixir's
//! syntax (`{term}`, as `inspect/1`; [`Erlang`](term::Erlang) for Erlang's), and the
//! crate's log lines print them so.
//!
//! Any error goes through `?` in a process body, a registered function or a GenServer
//! callback: the BEAM caller sees it as an Elixir exception (`%RuntimeError{message:
//! ...}`; [`Exception::argument_error`] and [`Exception::exit`] for the others), its
//! stack holding the Rust file and line of the `?` or the raise, named after the
//! function (`src/main.rs:33: Greeter.hello/1`, see [`Exception::Error`]).
//!
//! What a Rust node cannot do: run BEAM code. `Node.spawn(node, fn -> ... end)` and
//! calling a module this node did not register a function for fail with `:undef`, as on
//! a BEAM node without that module; `:sys.replace_state/2` (it takes a fun) fails as
//! its fun's `undef` (`{:callback_failed, {:gen_server, :system_replace_state},
//! {:error, :undef}}`).
//!
//! A program that receives large messages (megabytes each) calls [`reuse_freed_memory`]
//! first in `main`, before the runtime starts: each such message then reuses the pages
//! the last one freed, as a BEAM reuses its binaries' memory, instead of taking fresh
//! ones from the kernel.
//!
//! The modules: [`term`](mod@term) (terms: building, serde, parsing, printing), [`node`] (the
//! node: configuration, connections, the process table), [`process`] (what a process's
//! code holds, and spawning), [`gen_server`] and [`supervisor`] (the behaviours),
//! [`otp`] (the services a BEAM node runs: `rex`, `global`, `pg`, `Task.Supervisor`,
//! group leader I/O) and [`epmd`] (registration, lookup, an in-process EPMD). The `cnode`
//! command-line tool is built from the same crate (feature `cli`, on by default).

/// The README's Rust example compiles (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

pub mod epmd;
mod flags;
mod handshake;
mod malloc;
pub mod node;
pub mod otp;
mod output;
pub mod process;
mod sync;
pub mod term;
mod transport;

mod connection;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use handshake::HandshakeError;
pub use malloc::reuse_freed_memory;
pub use node::{default_cookie, release_cookie, Node, NodeConfig, NodeError, NodeEvents, NodeType};
pub use otp::gen_server::{
    self, CallError, CallErrorKind, Caller, GenServer, Next, Reply, StartError,
};
pub use otp::pg::PgError;
pub use otp::rpc::RpcError;
pub use otp::supervisor;
pub use otp::task_supervisor::{NodeTask, Task, TaskError};
pub use output::{log_writer, LogWriter};
#[doc(hidden)]
pub use output::{stdout_mid_line, user_output_to_stderr};
pub use process::{Dest, Exception, Function, IntoMessage, Process};
pub use transport::{TlsConfig, TlsError};
