//! cnode: a Rust program as a first-class node of an Erlang/Elixir cluster.
//!
//! The crate registers with EPMD, performs the real distribution handshake and hosts
//! processes (pids, mailboxes, links, monitors, aliases) that BEAM nodes talk to exactly
//! as they talk to each other. The OTP behaviours the BEAM expects of a node are built on
//! those processes: `net_kernel` pings, `rex`/erpc, remote spawn, group-leader I/O,
//! `global`, GenServer calls and the `Task.Supervisor` protocol.
//!
//! Layout, each layer using only those before it (`docs/architecture.md`): [`epmd`]
//! (registration, lookup, an in-process EPMD), `handshake`, `connection` (framing, ticks,
//! bounded decoding), [`node`] (the process table, links, monitors, exit signals, routing
//! between connections and local processes), [`process`] (the handle a process's code
//! holds, and spawning) and [`otp`] (the services a BEAM node runs, and `Node::start`).
//!
//! ```no_run
//! use cnode::term::{atom, chardata_to_string, int, list};
//! use cnode::{Node, NodeConfig};
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::start(NodeConfig::new("moebi@localhost", "secret_token")).await?;
//! // Reachable from BEAM nodes as Chat.receive_message/1 (Task.Supervisor, spawn, rpc, erpc).
//! node.register_function("Elixir.Chat", "receive_message", 1, |mut p, args| async move {
//!     p.puts(&chardata_to_string(&args[0]).unwrap_or_default()).await?;
//!     Ok(atom("ok"))
//! });
//! node.start_task_supervisor("Elixir.Chat.TaskSupervisor");
//!
//! // A process of our own, calling into Elixir.
//! node.spawn(|mut p| async move {
//!     let six = p
//!         .erpc_call("alex@localhost", "Elixir.Enum", "sum",
//!                    vec![list(vec![int(1), int(2), int(3)])], Duration::from_secs(5))
//!         .await?;
//!     let _echoed = p.call(("echo", "alex@localhost"), six, Some(Duration::from_secs(5))).await?;
//!     Ok(())
//! });
//! # Ok(()) }
//! ```

pub mod epmd;
mod flags;
mod handshake;
pub mod node;
pub mod otp;
pub mod process;
mod sync;
pub mod term;

mod connection;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use handshake::HandshakeError;
pub use node::{default_cookie, Node, NodeConfig, NodeError};
pub use otp::gen_server::{self, CallError, Caller, GenServer, Next, Reply};
pub use otp::rpc::RpcError;
pub use otp::supervisor;
pub use otp::task_supervisor::{NodeTask, Task};
pub use process::{Dest, Exception, Function, IntoMessage, Process};
