//! Calling Elixir from Rust: plain async code that uses a node of the seed's Chat
//! cluster, no process of its own to write.
//!
//! ```text
//! iex --sname alex@localhost --cookie secret_token -S mix        # in the Chat app
//! cargo run --example call_elixir -- --peer alex@localhost --cookie secret_token
//! ```
//!
//! It prints what alex answered, and alex prints the message the Rust side sent through
//! alex's own `Chat.TaskSupervisor` (as `Chat.send_message/2` does between BEAM nodes).

use clap::Parser;
use cnode::term::IntoTerm;
use cnode::{term, Node, NodeConfig};
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// The Elixir node to call.
    #[arg(long, default_value = "alex@localhost")]
    peer: String,
    /// This node's short name; a hidden node, as `erl_call` is.
    #[arg(long, default_value = "rusty")]
    sname: String,
    /// The cookie; default: $RELEASE_COOKIE, else ~/.erlang.cookie.
    #[arg(long)]
    cookie: Option<String>,
    /// What to tell alex.
    #[arg(long, default_value = "hello from Rust")]
    message: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Warnings only: why the peer could not be reached (a wrong cookie, a name its
    // node does not have) goes to stderr before the error.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
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
    let peer = args.peer.as_str();
    let timeout = Duration::from_secs(5);

    // :erpc.call(peer, Enum, :sum, [[1, 2, 3]])
    let sum = node
        .erpc_call(peer, "Elixir.Enum", "sum", vec![term!([1, 2, 3])], timeout)
        .await?;
    println!("Enum.sum([1, 2, 3]) on {peer}: {sum}");

    // Task.Supervisor.async({Chat.TaskSupervisor, peer}, Chat, :receive_message, [message])
    // |> Task.await()
    let printed = node
        .task_async(
            ("Elixir.Chat.TaskSupervisor", peer),
            "Elixir.Chat",
            "receive_message",
            vec![args.message.into_term()],
        )
        .await_timeout(timeout)
        .await?;
    println!("Chat.receive_message/1 on {peer} returned {printed}");

    // :erpc.call(peer, :erlang, :nodes, []): the Node.list() of the peer.
    let nodes = node
        .erpc_call(peer, "erlang", "nodes", vec![], timeout)
        .await?;
    println!("Node.list() on {peer}: {nodes}");
    Ok(())
}
