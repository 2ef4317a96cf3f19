//! The connection table: connecting on demand when a local process sends to a node we
//! are not connected to, accepting peers (bounded, each handshake within
//! `net_setuptime`), and resolving simultaneous connects as `dist_util` does.

use super::dest::IntoMessage;
use super::Node;
use crate::connection::codec::{self, Payload, To};
use crate::connection::message::Message;
use crate::connection::terms::TermLimits;
use crate::connection::{self, ConnHandle, Limits};
use crate::epmd;
use crate::handshake::{self, HandshakeError, LocalIdentity, PeerIdentity, Status};
use crate::sync::lock;
use crate::term::{Atom, Pid, Reference, Term};
use crate::transport::Stream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// A peer's entry in the table.
pub(super) enum ConnState {
    /// Connecting: messages wait here, in order, until the handshake is done.
    Pending {
        queue: Vec<Queued>,
        /// About how many bytes `queue` holds: beyond the busy limit, a sender waits
        /// for the connection, as a BEAM process is suspended.
        bytes: usize,
        attempt: u64,
        /// Taken by a peer's handshake we accept (not by an attempt of ours): the peer
        /// has only named itself, nothing is proven yet.
        accepting: bool,
    },
    Up(Arc<ConnHandle>),
}

/// What waits for a connection coming up.
pub(super) enum Queued {
    Message(Message),
    /// A priority message (`erlang:send/3` with `priority`): whether it travels as one
    /// depends on the peer's flags, known once the handshake is done.
    PriorityAlias {
        from: Pid,
        alias: Reference,
        message: Term,
    },
}

impl Queued {
    /// About the bytes it takes to hold it.
    fn size(&self) -> usize {
        match self {
            Queued::Message(Message::Send(m)) => approx_size(&m.message),
            Queued::Message(Message::RegSend(m)) => approx_size(&m.message),
            Queued::Message(Message::SendSender(m)) => approx_size(&m.message),
            Queued::Message(Message::AliasSend(m)) => approx_size(&m.message),
            Queued::PriorityAlias { message, .. } => approx_size(message),
            Queued::Message(_) => 64,
        }
    }

    fn send_on(self, h: &ConnHandle) -> bool {
        match self {
            Queued::Message(m) => h.send(m),
            Queued::PriorityAlias {
                from,
                alias,
                mut message,
            } => {
                let tail = connection::large_tail(&mut message);
                h.send_to(
                    &from,
                    To::PriorityAlias(&alias),
                    Payload::Term(&message),
                    tail,
                )
            }
        }
    }
}

static NEXT_ATTEMPT: AtomicU64 = AtomicU64::new(1);

fn identity(node: &Node) -> LocalIdentity {
    LocalIdentity {
        wide_lengths: node.0.config.tls.is_some(),
        name: node.0.name.name().to_owned(),
        creation: node.0.creation,
        flags: crate::flags::advertised(!node.0.config.hidden),
        cookie: node.0.config.cookie.clone(),
    }
}

fn limits(node: &Node) -> Limits {
    Limits {
        max_message_size: node.0.config.max_message_size,
        max_reassembly: node.0.config.max_reassembly,
        tick_time: node.0.config.tick_time,
        busy_poll: node.0.config.busy_poll,
        busy_limit: node.0.config.dist_buf_busy_limit,
        terms: TermLimits {
            max_depth: node.0.config.max_term_depth,
        },
    }
}

/// The peers with a live connection, each with whether it is visible (`PUBLISHED`).
pub(super) fn connected(node: &Node) -> Vec<(String, bool)> {
    lock(&node.0.conns)
        .iter()
        .filter_map(|(name, s)| match s {
            ConnState::Up(h) if h.is_open() => Some((name.clone(), node.is_visible(h))),
            _ => None,
        })
        .collect()
}

/// Every connection that is up.
pub(super) fn all(node: &Node) -> Vec<Arc<ConnHandle>> {
    lock(&node.0.conns)
        .values()
        .filter_map(|c| match c {
            ConnState::Up(h) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

/// The live connection to `peer`, if any.
pub(crate) fn handle(node: &Node, peer: &str) -> Option<Arc<ConnHandle>> {
    match lock(&node.0.conns).get(peer) {
        Some(ConnState::Up(h)) if h.is_open() => Some(h.clone()),
        _ => None,
    }
}

/// About the bytes a term takes (its binaries' bytes, a word or two per element): what
/// a queue of messages waiting for a connection holds. Walked without recursion.
fn approx_size(term: &Term) -> usize {
    let mut size = 0usize;
    let mut stack = vec![term];
    while let Some(t) = stack.pop() {
        size = size.saturating_add(16);
        match t {
            Term::Binary(b) => size = size.saturating_add(b.bytes.len()),
            Term::BitBinary(b) => size = size.saturating_add(b.bytes.len()),
            Term::List(l) => stack.extend(l.elements.iter()),
            Term::ImproperList(l) => {
                stack.extend(l.elements.iter());
                stack.push(&l.last);
            }
            Term::Tuple(t) => stack.extend(t.elements.iter()),
            Term::Map(m) => stack.extend(m.map.iter().flat_map(|(k, v)| [k, v])),
            _ => {}
        }
    }
    size
}

/// What a send left too full to take more at once: a connection's outbox (beyond the
/// busy limit, `+zdbbl`), or the queue of one still coming up.
pub(crate) enum Busy {
    Conn(Arc<ConnHandle>),
    Connecting(Node, Atom),
}

impl Busy {
    /// Waits as a BEAM process that sent there is suspended: until the outbox drains,
    /// or the connection coming up is up and its outbox drained, or it failed (what
    /// waited for it is then dropped, as the BEAM drops it).
    pub(crate) async fn drained(&self) {
        match self {
            Busy::Conn(h) => h.drained().await,
            Busy::Connecting(node, peer) => loop {
                let settled = node.0.conns_settled.notified();
                tokio::pin!(settled);
                settled.as_mut().enable();
                let up = match lock(&node.0.conns).get(peer.name()) {
                    Some(ConnState::Pending { .. }) => None,
                    Some(ConnState::Up(h)) => Some(h.clone()),
                    None => return,
                };
                if let Some(h) = up {
                    return h.drained().await;
                }
                settled_or_a_while(settled).await;
            },
        }
    }
}

/// Waits until `settled` (the table's `conns_settled`, enabled before the table was
/// looked at) is told, or 100 ms at most: a change told to nobody is still seen.
async fn settled_or_a_while(settled: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) {
    let _ = tokio::time::timeout(std::time::Duration::from_millis(100), settled).await;
}

/// Tells what waits for a connection coming up that it is up or has failed.
fn settled(node: &Node) {
    node.0.conns_settled.notify_waiters();
}

pub(super) fn send(node: &Node, peer: &Atom, message: Message) {
    send_queued(node, peer, Queued::Message(message));
}

/// `message` to `peer`: on its connection, or queued for the one coming up (started
/// if none is); the queue when it holds more than the busy limit.
fn send_queued(node: &Node, peer: &Atom, message: Queued) -> Option<Busy> {
    if peer == &node.0.name {
        // A node does not connect to itself (what reaches here names an earlier
        // incarnation of it, or nobody): dropped, as the BEAM drops it.
        tracing::debug!("a message to this node's own name over distribution, dropped");
        return None;
    }
    // Estimated before the table is locked (a walk of the message's term; a control
    // message, the common case here, costs nothing).
    let size = message.size();
    let mut conns = lock(&node.0.conns);
    match conns.get_mut(peer.name()) {
        Some(ConnState::Up(h)) if h.is_open() => {
            let h = h.clone();
            drop(conns);
            message.send_on(&h).then_some(Busy::Conn(h))
        }
        Some(ConnState::Up(_)) => {
            drop(conns);
            reap_closed(node, peer.name());
            send_queued(node, peer, message)
        }
        Some(ConnState::Pending { queue, bytes, .. }) => {
            *bytes = bytes.saturating_add(size);
            queue.push(message);
            (*bytes > node.0.config.dist_buf_busy_limit)
                .then(|| Busy::Connecting(node.clone(), *peer))
        }
        // A stopped node connects to nobody: the message is dropped, as to a node
        // that cannot be reached.
        _ if node.is_stopping() => None,
        _ => {
            let attempt = NEXT_ATTEMPT.fetch_add(1, Ordering::Relaxed);
            let bytes = size;
            conns.insert(
                peer.name().to_owned(),
                ConnState::Pending {
                    queue: vec![message],
                    bytes,
                    attempt,
                    accepting: false,
                },
            );
            drop(conns);
            tokio::spawn(connect(node.clone(), *peer, attempt));
            (bytes > node.0.config.dist_buf_busy_limit)
                .then(|| Busy::Connecting(node.clone(), *peer))
        }
    }
}

/// `send` of a message to a process on `peer`: `message`, or the tuple of `head`'s
/// elements then `message` (the `$gen_call` and `$gen_cast` wrappers around a request
/// that may be lent). Written from borrows when the connection is up (a large binary
/// that ends a message given away from its own buffer); while it is coming up, the
/// queue keeps the message (a lent one copied, one given away moved, so a large message
/// given away is never copied). Returns what is busy, if the send left it so.
pub(super) fn send_to(
    node: &Node,
    peer: &Atom,
    from: &Pid,
    to: To<'_>,
    head: Vec<Term>,
    mut message: impl IntoMessage,
) -> Option<Busy> {
    if let Some(h) = handle(node, peer.name()) {
        let tail = message.take_tail();
        let payload = if head.is_empty() {
            Payload::Term(message.as_term())
        } else {
            Payload::Wrapped(&head, message.as_term())
        };
        let busy = h.send_to(from, to, payload, tail);
        message.spent();
        return busy.then_some(Busy::Conn(h));
    }
    let message = if head.is_empty() {
        message.into_term()
    } else {
        let mut elements = head;
        elements.push(message.into_term());
        crate::term::tuple(elements)
    };
    let queued = match to {
        To::PriorityAlias(alias) => Queued::PriorityAlias {
            from: *from,
            alias: alias.clone(),
            message,
        },
        _ => Queued::Message(codec::to_message(from, to, message)),
    };
    send_queued(node, peer, queued)
}

/// A connection that is closed but whose reader has not reported it yet goes down now,
/// before a new connection to the peer can take its place and carry anything.
fn reap_closed(node: &Node, peer: &str) {
    let closed = match lock(&node.0.conns).get(peer) {
        Some(ConnState::Up(h)) if !h.is_open() => Some(h.clone()),
        _ => None,
    };
    if let Some(h) = closed {
        down(node, &h, "connection_closed");
    }
}

/// Sets up a connection to `peer` without sending anything (`net_kernel:connect_node`).
pub(crate) async fn connect_node(node: &Node, peer: &str) -> bool {
    try_connect(node, peer).await.is_ok()
}

/// As [`connect_node`], with the reason when it fails: ours if this call made the
/// attempt, a generic one if it waited on another's.
pub(crate) async fn try_connect(node: &Node, peer: &str) -> Result<(), HandshakeError> {
    let lost = || {
        HandshakeError::Io(std::io::Error::other(format!(
            "the connection to {peer} did not come up"
        )))
    };
    if peer == node.name() {
        return Ok(());
    }
    if node.is_stopping() {
        return Err(HandshakeError::Io(std::io::Error::other(
            "this node is stopped",
        )));
    }
    reap_closed(node, peer);
    if handle(node, peer).is_some() {
        return Ok(());
    }
    // Our own attempt, to run once the table lock is released; None while another runs.
    let ours = {
        let mut conns = lock(&node.0.conns);
        match conns.get(peer) {
            Some(ConnState::Up(h)) if h.is_open() => return Ok(()),
            Some(ConnState::Pending { .. }) => None,
            _ => {
                let attempt = NEXT_ATTEMPT.fetch_add(1, Ordering::Relaxed);
                conns.insert(
                    peer.to_owned(),
                    ConnState::Pending {
                        queue: Vec::new(),
                        bytes: 0,
                        attempt,
                        accepting: false,
                    },
                );
                Some(attempt)
            }
        }
    };
    if let Some(attempt) = ours {
        connect(node.clone(), Atom::from(peer), attempt).await?;
    } else {
        // Someone else is connecting: wait for the outcome, within the setup time.
        let deadline = tokio::time::Instant::now() + node.0.config.setup_time * 2;
        while tokio::time::Instant::now() < deadline {
            let settled = node.0.conns_settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            match lock(&node.0.conns).get(peer) {
                Some(ConnState::Pending { .. }) => {}
                Some(ConnState::Up(h)) if h.is_open() => return Ok(()),
                Some(ConnState::Up(_)) | None => return Err(lost()),
            }
            settled_or_a_while(settled).await;
        }
    }
    handle(node, peer).map(|_| ()).ok_or_else(lost)
}

/// A node of short names connects to short names only and one of long names to long
/// names only, as a BEAM node does (`inet_tcp_dist:splitnode/3`): the other is refused
/// before anything is sent, with the BEAM's words.
fn names_of_one_kind(own: &str, own_long: bool, host: &str) -> Result<(), HandshakeError> {
    let allowed = match own_long {
        true => super::config::is_long_host(host),
        false => !host.contains('.'),
    };
    if allowed {
        return Ok(());
    }
    let (system, kind) = if own_long {
        ("System running to use fully qualified hostnames", "long")
    } else {
        (
            "System NOT running to use fully qualified hostnames",
            "short",
        )
    };
    let text = format!(
        "** {system} ** ** Hostname {host} is illegal ** (this node, {own}, has {kind} names; a BEAM node so named does not connect there either)"
    );
    tracing::error!("{text}");
    Err(HandshakeError::Io(std::io::Error::other(text)))
}

/// One attempt to connect to `peer`; what failed, if it did.
async fn connect(node: Node, peer: Atom, attempt: u64) -> Result<(), HandshakeError> {
    let setup = node.0.config.setup_time;
    let result = tokio::time::timeout(setup, async {
        let (alive, host) = peer.name().split_once('@').ok_or_else(|| {
            HandshakeError::Protocol(format!("invalid node name {}", peer.name()))
        })?;
        names_of_one_kind(node.name(), node.0.config.long_names, host)?;
        if !node.is_allowed(peer.name()) {
            // As net_kernel's setup_check refuses it.
            let text = format!(
                "** Connection attempt with disallowed node {} **",
                peer.name()
            );
            tracing::error!("{text}");
            return Err(HandshakeError::Io(std::io::Error::other(text)));
        }
        // Resolved once for EPMD and the node (the lookup of a name runs on the
        // blocking pool).
        let mut ips = resolve(host).await.map_err(HandshakeError::Io)?;
        if !node.0.config.listen_address.is_ipv6() {
            // One address family, as a BEAM node's: `inet_tcp` resolves a host's IPv4
            // addresses only, and a node of this family reaches no IPv6 one (else it
            // would connect nodes of the cluster that cannot reach each other).
            ips.retain(std::net::IpAddr::is_ipv4);
            if ips.is_empty() {
                let text = format!(
                    "{host} has no IPv4 address (this node, {}, uses IPv4, as a BEAM node without -proto_dist inet6_tcp; a node named with an IPv6 address, or with --listen-address ::, uses IPv6)",
                    node.name()
                );
                return Err(HandshakeError::Io(std::io::Error::new(
                    std::io::ErrorKind::AddrNotAvailable,
                    text,
                )));
            }
        }
        let epmd_port = node.0.config.epmd_port;
        let port = epmd::lookup(&ips, alive, epmd_port)
            .await
            .map_err(|e| {
                let what = match e.kind() {
                    std::io::ErrorKind::ConnectionRefused => "no EPMD",
                    _ => "EPMD",
                };
                HandshakeError::Io(std::io::Error::new(
                    e.kind(),
                    format!("{what} on {host} port {epmd_port}: {e}"),
                ))
            })?
            .ok_or_else(|| HandshakeError::NotRegistered {
                name: alive.to_owned(),
                host: host.to_owned(),
            })?;
        let mut stream = Stream::connect(host, &ips, port, node.0.config.tls.as_ref()).await?;
        let still_pending = || {
            matches!(lock(&node.0.conns).get(peer.name()),
                Some(ConnState::Pending { attempt: a, .. }) if *a == attempt)
        };
        let peer_id =
            handshake::connect(&mut stream, &identity(&node), peer.name(), still_pending).await?;
        Ok::<_, HandshakeError>((stream, peer_id))
    })
    .await;
    match result {
        Ok(Ok((stream, peer_id))) => {
            install(&node, stream, peer_id);
            Ok(())
        }
        Ok(Err(HandshakeError::Refused { status, .. })) if status == "nok" => {
            // Simultaneous connect and the peer's attempt wins: the connection it
            // initiated will take our queue. Give up only if it never arrives.
            tokio::time::sleep(setup).await;
            fail_pending(
                &node,
                peer.name(),
                attempt,
                "simultaneous connect did not complete",
            );
            Ok(())
        }
        Ok(Err(e)) => {
            fail_pending(&node, peer.name(), attempt, &e.to_string());
            Err(e)
        }
        Err(_) => {
            fail_pending(&node, peer.name(), attempt, "connection setup timed out");
            Err(HandshakeError::Timeout)
        }
    }
}

/// The addresses of `host`, in the resolver's order.
async fn resolve(host: &str) -> std::io::Result<Vec<std::net::IpAddr>> {
    let ips: Vec<std::net::IpAddr> = tokio::net::lookup_host((host, 0))
        .await?
        .map(|a| a.ip())
        .collect();
    if ips.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(ips)
}

/// `peer` as a name, not an atom: a handshake from an unknown client that fails makes
/// no atom of the name it gave (the atom table is the node's, and bounded).
fn fail_pending(node: &Node, peer: &str, attempt: u64, why: &str) {
    // (failed, worth a warning): a refused incoming handshake nobody waited on is
    // already logged where it was refused.
    let (failed, warn) = {
        let mut conns = lock(&node.0.conns);
        match conns.get(peer) {
            Some(ConnState::Pending {
                attempt: a,
                queue,
                accepting,
                ..
            }) if *a == attempt => {
                let warn = !*accepting || !queue.is_empty();
                conns.remove(peer);
                settled(node);
                (true, warn)
            }
            _ => (false, false),
        }
    };
    if failed {
        let first = warn && {
            let mut unreachable = lock(&node.0.unreachable);
            if unreachable.len() >= MAX_UNREACHABLE {
                unreachable.clear();
            }
            unreachable.insert(peer.to_owned())
        };
        // A refusal in the BEAM's words (`** ... **`) was logged as an error where it
        // was made: once is enough.
        if why.starts_with("** ") {
            tracing::debug!(peer = %peer, "cannot connect to {}: {why}", peer);
        } else if first {
            tracing::warn!(peer = %peer, "cannot connect to {}: {why}", peer);
        } else if warn {
            tracing::debug!(peer = %peer, "still cannot connect to {}: {why}", peer);
        } else {
            tracing::debug!(peer = %peer, "handshake from {} failed: {why}", peer);
        }
        // Nothing of that node is here unless its name is an atom already.
        if let Some(peer) = Atom::existing(peer) {
            node.node_down(&peer, None);
        }
    }
}

/// The most peers remembered as unreachable (beyond, they are forgotten: a warning
/// again, not memory without bound).
const MAX_UNREACHABLE: usize = 1024;

/// Makes a completed handshake the connection to that peer and sends what waited.
fn install(node: &Node, stream: Stream, peer: PeerIdentity) {
    lock(&node.0.unreachable).remove(&peer.name);
    if node.is_stopping() {
        // A handshake that finished as the node stopped: the peer sees the socket close.
        drop(stream);
        lock(&node.0.conns).remove(&peer.name);
        settled(node);
        node.node_down(&Atom::from(peer.name.as_str()), None);
        return;
    }
    let name = Atom::from(peer.name.as_str());
    let handle = connection::start(
        node.clone(),
        stream,
        name,
        peer.flags,
        peer.creation,
        limits(node),
    );
    // The peer dropped the connection we still hold (it answered `alive` with `true`, or
    // it restarted): that one is gone, with everything that crossed it.
    let old = match lock(&node.0.conns).get(&peer.name) {
        Some(ConnState::Up(old)) => Some(old.clone()),
        _ => None,
    };
    if let Some(old) = old {
        down(node, &old, "replaced by a new connection");
    }
    let replaced = {
        let mut conns = lock(&node.0.conns);
        let previous = conns.insert(peer.name.clone(), ConnState::Up(handle.clone()));
        match previous {
            Some(ConnState::Pending { queue, .. }) => {
                // Sent under the lock so nothing sent later can overtake them.
                for m in queue {
                    m.send_on(&handle);
                }
                None
            }
            Some(ConnState::Up(old)) => Some(old),
            None => None,
        }
    };
    settled(node);
    if let Some(old) = replaced {
        lost(node, &old, "replaced by a new connection");
    }
    // A hidden node (a script's `erl_call` or `cnode` command, come and gone within a
    // second) is logged at debug level: a BEAM node logs no connection at all.
    if handle.is_visible() {
        tracing::info!(peer = %name.name(), "node up: {}", name.name());
    } else {
        tracing::debug!(peer = %name.name(), "node up: {} (hidden)", name.name());
    }
    node.tell_node_up(&handle);
    (node.hooks().node_up)(node, &handle);
}

/// `conn` is gone: if it is still the peer's connection in the table, it leaves the
/// table and everything that crossed it fires (once, whoever notices first).
pub(super) fn down(node: &Node, conn: &Arc<ConnHandle>, reason: &str) {
    let removed = {
        let mut conns = lock(&node.0.conns);
        match conns.get(conn.peer.name()) {
            Some(ConnState::Up(h)) if h.id == conn.id => {
                conns.remove(conn.peer.name());
                settled(node);
                true
            }
            _ => false,
        }
    };
    if removed {
        lost(node, conn, reason);
    }
}

/// Closes a connection no longer in the table; links and monitors across it fire with
/// `noconnection` (`erts_do_net_exits`).
fn lost(node: &Node, conn: &Arc<ConnHandle>, reason: &str) {
    conn.close();
    if conn.is_visible() {
        tracing::info!(peer = %conn.peer.name(), "node down: {} ({reason})", conn.peer.name());
    } else {
        tracing::debug!(peer = %conn.peer.name(), "node down: {} ({reason}, hidden)", conn.peer.name());
    }
    node.node_down(&conn.peer, Some(conn.creation));
    node.tell_node_down(conn, reason);
    (node.hooks().node_down)(node, conn);
    // The table's own state, not the reason's words: a reason can quote what a peer
    // sent (a malformed control message is logged with its text).
    if crate::term::Atom::table_is_full() {
        // The table of atoms is full for good: every peer's next new atom would close
        // its connection, a node half there. A BEAM node halts (and is restarted by
        // what watches it): so does this one, with status 1.
        tracing::error!(
            "no more index entries in atom_tab (max={}): the node halts",
            crate::term::Atom::LIMIT
        );
        let node = node.clone();
        tokio::spawn(async move { node.halt_with(1).await });
    }
}

/// `erlang:disconnect_node/1`: closes the connection to `peer`, firing what crossed it
/// here at once; the peer sees the TCP connection end. False if there was none.
pub(crate) fn disconnect(node: &Node, peer: &str) -> bool {
    let conn = match lock(&node.0.conns).get(peer) {
        Some(ConnState::Up(h)) => h.clone(),
        _ => return false,
    };
    down(node, &conn, "disconnected");
    true
}

pub(super) fn spawn_acceptor(node: Node, listener: TcpListener) {
    // Handshakes in progress, oldest first, each with the token that drops it. At the
    // limit the oldest is dropped to make room, rather than accepting nothing until a
    // slot frees: sockets that stall are the ones that hold a slot longest, and a real
    // peer's handshake takes a few round trips, so a crowd of half-open sockets cannot
    // keep a real peer waiting in the listen backlog until it gives up.
    let max = node.0.config.max_pending_handshakes.max(1);
    let pending = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        u64,
        tokio_util::sync::CancellationToken,
    >::new()));
    tokio::spawn(async move {
        let mut next_id = 0u64;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                // The listener closes with the node.
                _ = node.stopping() => return,
            };
            let (stream, addr) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let id = next_id;
            next_id += 1;
            let dropped = tokio_util::sync::CancellationToken::new();
            {
                let mut pending = lock(&pending);
                while pending.len() >= max {
                    if let Some((_, oldest)) = pending.pop_first() {
                        oldest.cancel();
                    }
                }
                pending.insert(id, dropped.clone());
            }
            let node = node.clone();
            let pending = pending.clone();
            tokio::spawn(async move {
                accept(node, stream, addr, dropped).await;
                lock(&pending).remove(&id);
            });
        }
    });
}

async fn accept(
    node: Node,
    tcp: TcpStream,
    addr: std::net::SocketAddr,
    dropped: tokio_util::sync::CancellationToken,
) {
    let local = identity(&node);
    let our_name = node.0.name.name().to_owned();
    let decide_node = node.clone();
    // The peer this handshake holds the table entry of, if it took one (status `ok`).
    let attempt = NEXT_ATTEMPT.fetch_add(1, Ordering::Relaxed);
    let claimed = Arc::new(std::sync::OnceLock::<String>::new());
    let claim = claimed.clone();
    let tls = node.0.config.tls.clone();
    // TLS first when configured, then the distribution handshake inside it: both
    // within `net_setuptime`.
    let handshake = tokio::time::timeout(node.0.config.setup_time, async move {
        let mut stream = Stream::accept(tcp, tls.as_ref()).await?;
        let peer = handshake::accept(&mut stream, &local, move |peer, _flags| {
            if !decide_node.is_allowed(peer) {
                // As dist_util refuses a node `net_kernel:allow/1` did not name.
                tracing::error!("** Connection attempt from disallowed node {peer} **");
                return Status::NotAllowed;
            }
            if peer == our_name {
                // A peer under this node's own name: net_kernel has no connection to
                // give it (`erts_internal:new_connection/1` fails) and says `nok`.
                tracing::error!("** Cannot get connection id for node {peer}");
                return Status::Nok;
            }
            reap_closed(&decide_node, peer);
            let mut conns = lock(&decide_node.0.conns);
            match conns.get(peer) {
                Some(ConnState::Up(_)) => Status::Alive,
                // dist_util: the node with the greater name keeps its own attempt.
                Some(ConnState::Pending {
                    accepting: false, ..
                }) if our_name.as_str() > peer => Status::Nok,
                // Another handshake we accept named the same node (a retry, or an
                // impostor stalling): neither has proven anything yet, so this one goes
                // on too, and the first to prove the cookie becomes the connection.
                // (`nok` would keep the real node out for as long as the other stalls.)
                Some(ConnState::Pending {
                    accepting: true, ..
                }) => Status::Ok,
                Some(ConnState::Pending { .. }) => Status::OkSimultaneous,
                None => {
                    // net_kernel's accept_pending: from now on messages to the peer wait
                    // for this connection, instead of starting a second one that the
                    // peer, its own attempt pending, would also accept.
                    conns.insert(
                        peer.to_owned(),
                        ConnState::Pending {
                            queue: Vec::new(),
                            bytes: 0,
                            attempt,
                            accepting: true,
                        },
                    );
                    let _ = claim.set(peer.to_owned());
                    Status::Ok
                }
            }
        })
        .await?;
        Ok::<_, HandshakeError>((stream, peer))
    });
    let result = tokio::select! {
        r = handshake => Some(r),
        () = dropped.cancelled() => None,
    };
    if !matches!(result, Some(Ok(Ok(_)))) {
        if let Some(peer) = claimed.get() {
            fail_pending(&node, peer, attempt, "the handshake it started failed");
        }
    }
    let Some(result) = result else {
        handshake_warning(
            Failed::Dropped,
            format_args!(
                "handshake from {addr} dropped: {} handshakes pending, it was the oldest",
                node.0.config.max_pending_handshakes
            ),
        );
        return;
    };
    match result {
        Ok(Ok((stream, peer))) => install(&node, stream, peer),
        Ok(Err(HandshakeError::WrongCookie { peer })) => tracing::error!(
            "** Connection attempt from node {peer} rejected. Invalid challenge reply. ** (wrong cookie, from {addr})"
        ),
        Ok(Err(HandshakeError::MissingFlags { peer, missing })) => tracing::error!(
            "** Connection attempt from node {peer} rejected since it cannot handle [{missing}] **"
        ),
        Ok(Err(HandshakeError::Declined { .. })) => {}
        // Closed by the peer: before it named itself, a node whose own attempt to
        // reach us won (two nodes connecting at once, under TLS closed in the TLS
        // handshake), or a port scan; after, a node that found we are not the node it
        // asked EPMD for, or that refused our digest (and says so itself). A BEAM node
        // says nothing of either. A peer gone before what we wrote reached it resets
        // the connection instead: the same hang-up.
        Ok(Err(HandshakeError::Io(e)))
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            match claimed.get() {
                Some(peer) => tracing::debug!("handshake from {peer} ({addr}) closed by the peer"),
                None => tracing::debug!("handshake from {addr} closed before the peer named itself"),
            }
        }
        Ok(Err(e)) => match claimed.get() {
            Some(peer) => handshake_warning(Failed::Refused, format_args!("handshake from {peer} ({addr}) failed: {e}")),
            None => handshake_warning(Failed::Refused, format_args!("handshake from {addr} failed: {e}")),
        },
        Err(_) => match claimed.get() {
            Some(peer) => handshake_warning(Failed::TimedOut, format_args!(
                "handshake from {peer} ({addr}) timed out (net_setuptime)"
            )),
            None => handshake_warning(Failed::TimedOut, format_args!(
                "handshake from {addr} timed out (net_setuptime)"
            )),
        },
    }
}

/// The most warnings of each kind of failed incoming handshake logged in
/// [`WARNING_WINDOW`]; the rest are logged at debug, and counted in the next warning
/// of that kind.
const WARNINGS_PER_WINDOW: u32 = 10;
const WARNING_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// How an incoming handshake failed, for [`handshake_warning`].
#[derive(Clone, Copy)]
enum Failed {
    Dropped = 0,
    Refused = 1,
    TimedOut = 2,
}

/// The warnings of each kind of failed incoming handshake: this window's start, how
/// many were shown in it, how many left out since the last one shown.
static HANDSHAKE_WARNINGS: std::sync::Mutex<[Option<(std::time::Instant, u32, u64)>; 3]> =
    std::sync::Mutex::new([None; 3]);

/// A failed incoming handshake (garbage, a stall, a flood of them), logged as a warning
/// at most [`WARNINGS_PER_WINDOW`] times a [`WARNING_WINDOW`] for each kind, so that
/// clients without the cookie cannot flood the log (a BEAM node logs none of these);
/// the ones left out are logged at debug and counted.
fn handshake_warning(kind: Failed, message: std::fmt::Arguments<'_>) {
    let now = std::time::Instant::now();
    let (shown, left_out) = {
        let mut warnings = lock(&HANDSHAKE_WARNINGS);
        let (start, shown, left_out) = warnings[kind as usize].get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= WARNING_WINDOW {
            (*start, *shown) = (now, 0);
        }
        *shown += 1;
        if *shown > WARNINGS_PER_WINDOW {
            *left_out += 1;
            (false, 0)
        } else {
            (true, std::mem::take(left_out))
        }
    };
    match (shown, left_out) {
        (false, _) => tracing::debug!("{message}"),
        (true, 0) => tracing::warn!("{message}"),
        (true, n) => tracing::warn!("{message} ({n} more like it were logged at debug only)"),
    }
}
