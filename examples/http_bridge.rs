//! A small HTTP service in front of an Elixir node: each handler calls the cluster
//! (a GenServer, a function, a task on the node's `Task.Supervisor`) from plain async
//! Rust, as a Phoenix controller would call it from Elixir.
//!
//! ```text
//! iex --sname alex@localhost --cookie secret_token -S mix        # in the Chat app
//! iex(alex@localhost)> Chat.Echo.start(:echo)
//! cargo run --example http_bridge -- --peer alex@localhost --cookie secret_token --port 8080
//!
//! curl 'localhost:8080/sum?numbers=1,2,3'         # 6             (:erpc.call Enum.sum)
//! curl localhost:8080/echo/woof                  # woof          (GenServer.call {:echo, alex})
//! curl -d 'hello alex' localhost:8080/message    # :ok, and alex prints "hello alex"
//! ```
//!
//! A failure on the Elixir side is a 502 with what went wrong, as text.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use cnode::term::{chardata_to_string, IntoTerm, Term};
use cnode::{Node, NodeConfig};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// The Elixir node behind the service.
    #[arg(long, default_value = "alex@localhost")]
    peer: String,
    /// This node's short name (a hidden node).
    #[arg(long, default_value = "bridge")]
    sname: String,
    /// The cookie; default: $RELEASE_COOKIE, else ~/.erlang.cookie.
    #[arg(long)]
    cookie: Option<String>,
    /// The HTTP port, on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

#[derive(Clone)]
struct Bridge {
    node: Node,
    peer: String,
}

const TIMEOUT: Duration = Duration::from_secs(5);

type Answer = Result<String, (StatusCode, String)>;

/// What went wrong on the Elixir side, as a 502 and its text.
fn bad_gateway(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::BAD_GATEWAY, format!("{e}\n"))
}

/// The term as the body of a reply: a string as its text, anything else as printed.
fn text(term: &Term) -> String {
    match term {
        Term::Binary(_) => chardata_to_string(term).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// GET /sum?numbers=1,2,3: `:erpc.call(peer, Enum, :sum, [[1, 2, 3]])`.
async fn sum(State(b): State<Bridge>, Query(q): Query<HashMap<String, String>>) -> Answer {
    let numbers = q.get("numbers").map(String::as_str).unwrap_or("");
    let numbers: Vec<i64> = numbers
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("numbers: {e}\n")))?;
    let sum = b
        .node
        .erpc_call(
            &b.peer,
            "Elixir.Enum",
            "sum",
            vec![numbers.into_term()],
            TIMEOUT,
        )
        .await
        .map_err(bad_gateway)?;
    Ok(format!("{}\n", text(&sum)))
}

/// GET /echo/WORD: `GenServer.call({:echo, peer}, "WORD")`.
async fn echo(State(b): State<Bridge>, Path(word): Path<String>) -> Answer {
    let reply = b
        .node
        .call(("echo", b.peer.as_str()), word.into_term(), Some(TIMEOUT))
        .await
        .map_err(bad_gateway)?;
    Ok(format!("{}\n", text(&reply)))
}

/// POST /message: `Task.Supervisor.async({Chat.TaskSupervisor, peer}, Chat,
/// :receive_message, [body]) |> Task.await()`: the peer prints the body.
async fn message(State(b): State<Bridge>, body: String) -> Answer {
    let done = b
        .node
        .task_async(
            ("Elixir.Chat.TaskSupervisor", b.peer.as_str()),
            "Elixir.Chat",
            "receive_message",
            vec![body.into_term()],
        )
        .await_timeout(TIMEOUT)
        .await
        .map_err(bad_gateway)?;
    Ok(format!("{}\n", text(&done)))
}

#[tokio::main]
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
    let mut config = NodeConfig::new(&NodeConfig::short_name(&args.sname), &cookie);
    config.hidden = true;
    let node = Node::start(config).await?;
    // SIGTERM or Ctrl-C: the requests in flight finish, then the node stops, as Phoenix
    // drains its connections before its node stops (docs/deploying.md). A peer's
    // `:init.stop()` stops the node, and the server with it.
    let stopped = node.clone();
    let shutdown = async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM can be caught");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = stopped.stopped() => {}
        }
    };
    let app = Router::new()
        .route("/sum", get(sum))
        .route("/echo/{word}", get(echo))
        .route("/message", post(message))
        .with_state(Bridge {
            node: node.clone(),
            peer: args.peer,
        });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    tracing::info!("HTTP on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    std::process::exit(node.stop().await)
}
