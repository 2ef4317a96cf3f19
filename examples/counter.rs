//! A counter GenServer under a supervisor, as an Elixir application would have it, on a
//! Rust node:
//!
//! ```text
//! cargo run --example counter -- --sname counter@localhost --cookie secret_token
//!
//! iex --sname alex@localhost --cookie secret_token
//! iex> GenServer.call({:counter, :counter@localhost}, :get)
//! 0
//! iex> GenServer.cast({:counter, :counter@localhost}, {:add, 5})
//! iex> :sys.get_state({:counter, :counter@localhost})
//! 5
//! iex> Supervisor.which_children({:counter_sup, :counter@localhost})
//! [{:counter, #PID<13020.5.0>, :worker, [Counter]}]
//! iex> GenServer.call({:counter, :counter@localhost}, :crash)   # restarted, at 0
//! ```
//!
//! The Elixir it stands for:
//!
//! ```elixir
//! defmodule Counter do
//!   use GenServer
//!   def init(_), do: {:ok, 0}
//!   def handle_call(:get, _from, n), do: {:reply, n, n}
//!   def handle_cast({:add, k}, n), do: {:noreply, n + k}
//! end
//! Supervisor.start_link([%{id: :counter, start: {GenServer, :start_link, [Counter, nil, [name: :counter]]}}],
//!                       strategy: :one_for_one, name: :counter_sup)
//! ```

use clap::Parser;
use cnode::supervisor::{self, ChildSpec, Strategy};
use cnode::term::{IntoTerm, Match, Term};
use cnode::{Caller, Exception, GenServer, Next, Node, NodeConfig, Process, Reply};
use serde::Deserialize;

#[derive(Parser)]
struct Args {
    /// Short node name, `NAME[@HOST]` (as `iex --sname`).
    #[arg(long, default_value = "counter")]
    sname: String,
    /// The cookie; default: $RELEASE_COOKIE, else ~/.erlang.cookie.
    #[arg(long)]
    cookie: Option<String>,
}

/// The count is the server's state.
struct Counter {
    n: i64,
}

/// The calls it answers: `:get`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Call {
    Get,
}

/// The casts it takes: `{:add, k}`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Cast {
    Add(i64),
}

impl GenServer for Counter {
    // The module Elixir code knows it as (its `which_children/1` entry, its stack frames).
    fn module() -> &'static str {
        "Elixir.Counter"
    }

    async fn handle_call(
        &mut self,
        request: Term,
        _from: &Caller,
        _p: &mut Process,
    ) -> Result<Reply, Exception> {
        match request.decode() {
            Ok(Call::Get) => Ok(Reply::reply(self.n.into_term())),
            // A raise in a callback: the supervisor starts a fresh counter.
            Err(_) => Err(Exception::argument_error(format!(
                "Counter does not know the call {request}"
            ))),
        }
    }

    async fn handle_cast(&mut self, request: Term, _p: &mut Process) -> Result<Next, Exception> {
        if let Ok(Cast::Add(k)) = request.decode() {
            self.n += k;
        }
        Ok(Next::Wait)
    }

    fn state(&self) -> Term {
        self.n.into_term()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        // Lines go to stderr from a thread of their own (a log nobody reads does not
        // stall the node); one that cannot be written (a closed pipe) is dropped,
        // where the subscriber's own report of it would panic.
        .with_writer(cnode::log_writer)
        .log_internal_errors(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let cookie = match args.cookie {
        Some(c) => c,
        None => cnode::release_cookie()?,
    };
    let node = Node::start(NodeConfig::new(
        &NodeConfig::short_name(&args.sname),
        &cookie,
    ))
    .await?;
    let children = vec![ChildSpec::gen_server("counter", Some("counter"), || {
        Counter { n: 0 }
    })];
    let sup = supervisor::start(&node, Some("counter_sup"), Strategy::OneForOne, children).await?;
    println!(
        "{} is up: GenServer.call({{:counter, :{}}}, :get)",
        node.name(),
        node.name()
    );
    // As a BEAM node whose permanent application's top supervisor gives up, the program
    // ends (status 1) when counter_sup does; Ctrl-C, SIGTERM or `:init.stop(status)` from
    // a BEAM node end it too, with their status.
    std::process::exit(node.serve_while(sup).await)
}
