//! `net_kernel`: what a peer asks of it. `Node.ping/1` is a `$gen_call` of
//! `{is_auth, Node}` answered `yes` (what a BEAM peer asks first); `net_kernel` replies with a plain
//! send to the caller's pid, keeping the `[alias | Ref]` tag.

use super::gen_server::{parse_call, Caller};
use super::sys;
use crate::node::Node;
use crate::process::{Exception, Process};
use crate::term::Inspect;
use crate::term::{atom, list, map, millis, Match, Term};

pub(crate) fn start(node: &Node) {
    let _ = super::keep_registered(node, "net_kernel", |mut p, parent| async move {
        super::shown_as_gen_server(&p, parent, "net_kernel");
        let mut suspended = false;
        loop {
            let node = p.node().clone();
            let message = sys::receive(
                &mut p,
                Some(&parent),
                &mut suspended,
                &|| state(&node),
                None,
            )
            .await;
            let message = message.map_err(Exception::Exit)?;
            match parse_call(&message) {
                Some((from, request)) => handle_call(&p, from, request),
                None => tracing::debug!("net_kernel: ignoring {}", crate::term::Short(&message)),
            }
        }
    });
}

/// What `:sys.get_state/1` shows of this node's `net_kernel` (a BEAM's is a record of
/// `net_kernel`'s own, different from release to release): the node's name, its tick
/// and setup times in milliseconds, and the nodes it is connected to.
fn state(node: &Node) -> Term {
    let config = &node.0.config;
    let connected = node.connected_nodes().iter().map(|n| atom(n)).collect();
    map(vec![
        (atom("node"), atom(node.name())),
        (atom("tick_time"), millis(config.tick_time)),
        (atom("setup_time"), millis(config.setup_time)),
        (atom("connections"), list(connected)),
    ])
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
