//! `net_kernel`: what a peer asks of it. `Node.ping/1` is a `$gen_call` of
//! `{is_auth, Node}` answered `yes` (protocol notes §3); `net_kernel` replies with a plain
//! send to the caller's pid, keeping the `[alias | Ref]` tag.

use super::gen_server::{parse_call, Caller};
use crate::node::Node;
use crate::process::Process;
use crate::term::Inspect;
use crate::term::{atom, Match, Term};

pub(crate) fn start(node: &Node) {
    let _ = node.spawn_registered("net_kernel", |mut p| async move {
        loop {
            let message = p.receive().await;
            match parse_call(&message) {
                Some((from, request)) => handle_call(&p, from, request),
                None => tracing::debug!("net_kernel: ignoring {}", crate::term::Short(&message)),
            }
        }
    });
}

fn handle_call(p: &Process, from: Caller, request: &Term) {
    let tag = request
        .as_tuple()
        .and_then(|e| e.first())
        .and_then(Match::as_atom);
    match tag {
        Some("is_auth") => {
            // A plain send to the pid, as net_kernel does (not to the alias).
            p.send(
                from.pid,
                crate::term::tuple(vec![from.tag.clone(), atom("yes")]),
            );
        }
        _ => tracing::warn!(
            "net_kernel: unexpected call {} from {}",
            crate::term::Short(request),
            from.pid.inspect()
        ),
    }
}
