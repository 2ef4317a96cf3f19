//! cnode: a Rust program as a first-class node of an Erlang/Elixir cluster.
//!
//! The crate registers with EPMD, performs the real distribution handshake and hosts
//! processes (pids, mailboxes, links, monitors, aliases) that BEAM nodes talk to exactly
//! as they talk to each other. The OTP behaviours the BEAM expects of a node are built on
//! those processes: `net_kernel` pings, `rex`/erpc, remote spawn, group-leader I/O,
//! `global`, GenServer calls and the `Task.Supervisor` protocol.
//!
//! Layout: [`epmd`] (registration, lookup, an in-process EPMD), `handshake`,
//! `connection` (framing, ticks, bounded decoding), [`node`] (routing between connections
//! and local processes), [`process`] (mailboxes, links, monitors, exit signals) and
//! [`otp`] (the behaviours).

pub mod epmd;
mod flags;
mod handshake;
pub mod node;
pub mod otp;
pub mod process;
pub mod term;

mod connection;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use handshake::HandshakeError;
pub use node::{default_cookie, Function, Node, NodeConfig, NodeError};
pub use otp::gen_server::{CallError, CallReply, GenServer};
pub use otp::rpc::RpcError;
pub use otp::task_supervisor::Task;
pub use process::{Dest, Exception, Process};
