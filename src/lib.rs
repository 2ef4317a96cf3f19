//! cnode: a Rust program as a first-class node of an Erlang/Elixir cluster.
//!
//! The crate registers with EPMD, performs the real distribution handshake and hosts
//! processes (pids, mailboxes, links, monitors, aliases) that BEAM nodes talk to exactly
//! as they talk to each other. OTP behaviours the BEAM expects of a node (`net_kernel`
//! pings, `rex`/erpc, remote spawn, group-leader I/O, `global`, GenServer calls and the
//! `Task.Supervisor` protocol) are built on those processes.

pub mod epmd;
pub mod term;

mod connection;
