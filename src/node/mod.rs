//! The node: its identity, its process table and names, its connections, and the routing
//! of every signal between local processes and remote nodes. This is the runtime the
//! layers above build on: [`process`](crate::process) gives a process's own code its
//! handle and adds `spawn` to [`Node`]; [`otp`](crate::otp) adds `Node::start` and the
//! services a BEAM node runs, which the node calls only through its hooks.

mod config;
mod connect;
mod deadlines;
mod dest;
mod dist;
pub(crate) mod entry;
pub(crate) mod exception;
mod hooks;
pub(crate) mod keys;
mod mailbox;
mod names;
mod node_watch;
mod route;
mod signals;
mod stop;
mod table;
mod timers;

pub(crate) use config::hostname;
pub use config::{default_cookie, release_cookie, NodeConfig};
pub(crate) use connect::Busy;
pub use dest::{Dest, IntoMessage};
pub(crate) use entry::{mfa_term, MonitorTarget, Prepared, ProcEntry, ProcLib, SpawnOpts};
pub(crate) use exception::location;
pub use exception::Exception;
pub(crate) use hooks::{Extensions, Hooks};
pub(crate) use mailbox::Mailbox;
pub use node_watch::{NodeEvents, NodeType};
pub(crate) use table::{caught, log_answered_panic};

use crate::epmd;
use crate::term::{Atom, Pid, Reference};
use keys::{OwnMap, RefKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node name is not `name@host` with a name of letters, digits, `_` and `-`
    /// (what `erl -sname` and `-name` accept).
    #[error(
        "Invalid node name! {0:?}: expected name@host, the name of letters, digits, '_' and '-'"
    )]
    InvalidName(String),
    /// A long name was asked for without a host, and this machine's host name has no
    /// domain to make it fully qualified ([`NodeConfig::long_name`]); `erl -name`
    /// refuses to start so.
    #[error(
        "Can't set long node name! The host name {0:?} has no domain: give the name's host, NAME@HOST, fully qualified or an IP address"
    )]
    NoDomain(String),
    /// EPMD has a node of that name: `erl` says the same.
    #[error("the name {0} seems to be in use by another Erlang node")]
    NameInUse(String),
    /// Listening or EPMD failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// EPMD refused us.
    #[error("EPMD: {0}")]
    Epmd(String),
}

/// A running node. Cheap to clone; all clones are the same node, which runs until
/// [`stop`](Node::stop) (dropping the handles does not stop it).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use cnode::{Node, NodeConfig};
/// let node = Node::start(NodeConfig::new("moebi@localhost", "secret_token")).await?;
/// node.register_function("Elixir.Moebi", "bark", 0, |mut p, _args| async move {
///     p.puts("Woof!").await?;
///     Ok(cnode::term::atom("ok"))
/// });
/// node.start_task_supervisor("Elixir.Chat.TaskSupervisor")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Node(pub(crate) Arc<NodeInner>);

pub(crate) struct NodeInner {
    pub name: Atom,
    pub creation: u32,
    pub config: NodeConfig,
    pub port: u16,
    procs: Mutex<OwnMap<u64, Arc<ProcEntry>>>,
    names: names::Names,
    /// Active aliases: the pid key of the process each one reaches.
    aliases: Mutex<OwnMap<RefKey, u64>>,
    conns: Mutex<HashMap<String, connect::ConnState>>,
    /// Told when a connection coming up is up or has failed: what waits for it (a
    /// sender held by its queue, a second caller of `connect`) looks again.
    conns_settled: tokio::sync::Notify,
    /// Peers an attempt to connect to has failed since they were last connected: the
    /// first failure is a warning, the next ones (every message to it tries again) are
    /// not.
    unreachable: Mutex<std::collections::HashSet<String>>,
    /// `net_kernel:allow/1`: once set, the only nodes connections are made with.
    allowed: Mutex<Option<std::collections::HashSet<String>>>,
    /// Top supervisors [`Node::serve_while`] watches: their end is the node's, and says
    /// so itself.
    served_while: Mutex<std::collections::HashSet<Pid>>,
    next_pid: AtomicU64,
    next_ref: AtomicU64,
    ref_salt: u32,
    /// The node's `user` process: the group leader of processes started here.
    user: OnceLock<Pid>,
    /// What the node calls in the layers above it.
    hooks: Hooks,
    /// State the layers above keep per node.
    pub extensions: Extensions,
    /// The deadlines of its processes' timed waits.
    deadlines: deadlines::Deadlines,
    /// Its processes' timers (`send_after`, `start_timer`).
    timers: timers::Timers,
    /// Its processes' watches of other nodes (`monitor_node`, `monitor_nodes`).
    node_watch: node_watch::NodeWatch,
    /// Our EPMD registration (none without `dist_listen`, or once stopped): dropping it
    /// unregisters.
    epmd: Mutex<Option<epmd::Registration>>,
    /// Stopping ([`Node::stop`]): nothing new connects, no new process runs.
    stopping: tokio_util::sync::CancellationToken,
    /// Stopped: every connection closed, every process ended.
    stopped: tokio_util::sync::CancellationToken,
    /// The exit status the node was stopped with.
    status: OnceLock<i32>,
}

/// Resolves with the signal's name when the program is asked to stop: Ctrl-C
/// (SIGINT), or SIGTERM on Unix.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    "SIGINT"
}

/// A node that is listening and registered with EPMD (unless it does not listen), not
/// yet accepting connections (the services it runs start first).
pub(crate) struct Bound {
    pub node: Node,
    listener: Option<tokio::net::TcpListener>,
}

impl Node {
    /// Listens and registers with EPMD (starting one when none answers): a node with its
    /// name, port and creation, calling `hooks` for what the layers above do. Without
    /// `dist_listen`, neither: port 0, a random creation, hidden.
    pub(crate) async fn bind(mut config: NodeConfig, hooks: Hooks) -> Result<Bound, NodeError> {
        let alive = own_name_head(&config.name)
            .ok_or_else(|| NodeError::InvalidName(config.name.clone()))?;
        table::record_panic_locations();
        let (listener, port, registration, creation) = if config.dist_listen {
            let at = std::net::SocketAddr::new(config.listen_address, config.listen_port);
            let listener =
                tokio::net::TcpListener::bind(at)
                    .await
                    .map_err(|source| NodeError::Io {
                        context: format!("listening on {at}"),
                        source,
                    })?;
            let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
            let registration = epmd::register(alive, port, config.epmd_port)
                .await
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => NodeError::NameInUse(config.name.clone()),
                    _ => NodeError::Epmd(e.to_string()),
                })?;
            let creation = registration.creation();
            (Some(listener), port, Some(registration), creation)
        } else {
            config.hidden = true;
            // As EPMD hands them out: never 0 to 3, the creations of the 2-bit era.
            (None, 0, None, rand::random_range(4..=u32::MAX))
        };
        let node = Node(Arc::new(NodeInner {
            name: Atom::from(config.name.as_str()),
            creation,
            port,
            procs: Mutex::new(OwnMap::default()),
            names: names::Names::default(),
            aliases: Mutex::new(OwnMap::default()),
            conns: Mutex::new(HashMap::new()),
            conns_settled: tokio::sync::Notify::new(),
            unreachable: Mutex::new(std::collections::HashSet::new()),
            allowed: Mutex::new(None),
            served_while: Mutex::default(),
            // Pids start at <N.1.0>, serial 0, as a BEAM node's do.
            next_pid: AtomicU64::new(1),
            next_ref: AtomicU64::new(1),
            ref_salt: rand::random(),
            user: OnceLock::new(),
            hooks,
            extensions: Extensions::default(),
            deadlines: Default::default(),
            timers: Default::default(),
            node_watch: Default::default(),
            epmd: Mutex::new(registration),
            stopping: Default::default(),
            stopped: Default::default(),
            status: OnceLock::new(),
            config,
        }));
        Ok(Bound { node, listener })
    }
}

impl Bound {
    /// Starts accepting connections: the node is up.
    pub(crate) fn accept(self) -> Node {
        let Bound { node, listener } = self;
        if let Some(listener) = listener {
            connect::spawn_acceptor(node.clone(), listener);
        }
        tracing::info!(
            node = %node.0.name.name(),
            port = node.0.port,
            creation = node.0.creation,
            hidden = node.0.config.hidden,
            "node started"
        );
        node
    }
}

impl Node {
    /// Resolves at `at`: the deadline of a timed wait, kept by the node's watchdog
    /// rather than a tokio timer of its own ([`deadlines`]).
    pub(crate) fn deadline(&self, at: tokio::time::Instant) -> deadlines::Deadline {
        self.0.deadlines.sleep_until(at)
    }

    /// [`deadline`](Self::deadline) `after` from now ([`instant_after`]).
    pub(crate) fn deadline_after(&self, after: std::time::Duration) -> deadlines::Deadline {
        self.deadline(instant_after(after))
    }

    /// This node's name, `name@host`.
    pub fn name(&self) -> &str {
        self.0.name.name()
    }

    /// The port this node accepts distribution connections on (0 without
    /// [`NodeConfig::dist_listen`]).
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// The creation EPMD gave this node (part of every pid and reference it makes).
    pub fn creation(&self) -> u32 {
        self.0.creation
    }

    /// Names of the nodes this node has a live connection to.
    pub fn connected_nodes(&self) -> Vec<String> {
        connect::connected(self)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// Whether the connection `conn` is visible here: the peer published itself, and
    /// this node is not hidden (a hidden node's connections are all hidden, as in
    /// `dist_util`).
    pub(crate) fn is_visible(&self, conn: &crate::connection::ConnHandle) -> bool {
        !self.0.config.hidden && conn.is_visible()
    }

    /// The connections that are up: each peer's name, whether it is visible here, and
    /// the connection's id (`erlang:nodes/2`'s `connection_id`).
    pub(crate) fn connections(&self) -> Vec<(String, bool, u64)> {
        connect::all(self)
            .into_iter()
            .filter(|h| h.is_open())
            .map(|h| (h.peer.name().to_owned(), self.is_visible(&h), h.id))
            .collect()
    }

    /// `erlang:nodes(visible)` (`Node.list()`): the connected nodes that are not
    /// hidden; `visible` false gives the hidden ones.
    pub(crate) fn nodes(&self, visible: bool) -> Vec<String> {
        connect::connected(self)
            .into_iter()
            .filter_map(|(n, v)| (v == visible).then_some(n))
            .collect()
    }

    /// `Node.connect/1`: connects to `node` (a no-op when connected); false when it
    /// cannot be reached or refuses us. Sending to a node connects as well.
    pub async fn connect(&self, node: &str) -> bool {
        connect::connect_node(self, node).await
    }

    /// As [`connect`](Node::connect), with why it failed: the peer could not be
    /// reached ([`HandshakeError::Io`](crate::HandshakeError::Io)), refused our cookie
    /// ([`HandshakeError::CookieRefused`](crate::HandshakeError::CookieRefused)), or did not finish in time
    /// ([`HandshakeError::Timeout`](crate::HandshakeError::Timeout)).
    pub async fn try_connect(&self, node: &str) -> Result<(), crate::handshake::HandshakeError> {
        connect::try_connect(self, node).await
    }

    /// `:net_kernel.allow(nodes)`: from now on, connections are made with these nodes
    /// only (and those of earlier calls): one from another node is refused in the
    /// handshake (`not_allowed`, logged as `** Connection attempt from disallowed node
    /// ... **`), and none is attempted to another (`connect` is false). Connections up
    /// already stay. Before the first call, any node with the cookie connects, as on a
    /// BEAM node. BEAM nodes ask it over rpc too (`:rpc.call(node, :net_kernel, :allow,
    /// [nodes])`).
    ///
    /// ```no_run
    /// # fn demo(node: cnode::Node) {
    /// node.allow(&["app@web1", "app@web2"]);
    /// # }
    /// ```
    pub fn allow(&self, nodes: &[&str]) {
        // An empty list restricts nothing, as net_kernel's empty `allowed` list.
        if nodes.is_empty() {
            return;
        }
        let mut allowed = crate::sync::lock(&self.0.allowed);
        allowed
            .get_or_insert_with(Default::default)
            .extend(nodes.iter().map(|n| (*n).to_owned()));
    }

    /// Whether connections with `peer` may be made ([`allow`](Node::allow)).
    pub(crate) fn is_allowed(&self, peer: &str) -> bool {
        crate::sync::lock(&self.0.allowed)
            .as_ref()
            .is_none_or(|allowed| allowed.contains(peer))
    }

    /// `Node.disconnect/1`: closes the connection to `node`. Links and monitors across
    /// it fire with `noconnection` on both sides; the next message to `node` connects
    /// again. False when there was no connection.
    pub fn disconnect(&self, node: &str) -> bool {
        connect::disconnect(self, node)
    }

    /// Runs until Ctrl-C or SIGTERM (then stops the node, as a BEAM node since OTP 23
    /// takes SIGTERM as `init:stop()`: what systemd, Docker and Kubernetes send) or
    /// until the node is stopped ([`stop`](Node::stop), or a peer's `init:stop/0,1` or
    /// `erlang:halt/0,1,2`); returns the exit status it was stopped with (0 after a
    /// signal), for [`std::process::exit`], as a BEAM node's `init:stop(Status)` ends
    /// its program.
    pub async fn serve_forever(&self) -> i32 {
        tokio::select! {
            status = self.stopped() => status,
            signal = stop_signal() => {
                tracing::info!(node = %self.0.name.name(), "{signal} received - shutting down");
                self.stop().await
            }
        }
    }

    /// Has [`serve_while`](Self::serve_while) watch `top`.
    pub(crate) fn serve_while_watches(&self, top: Pid) {
        crate::sync::lock(&self.0.served_while).insert(top);
    }

    /// Whether [`serve_while`](Self::serve_while) watches `top`: its end then stops the
    /// node, which says so.
    pub(crate) fn serves_while(&self, top: &Pid) -> bool {
        crate::sync::lock(&self.0.served_while).contains(top)
    }

    // ---- identity -------------------------------------------------------------------

    pub(crate) fn is_local(&self, node: &Atom) -> bool {
        node == &self.0.name
    }

    pub(crate) fn user_pid(&self) -> Pid {
        self.0
            .user
            .get()
            .cloned()
            .unwrap_or_else(|| Pid::new(self.0.name.name(), 0, 0, self.0.creation))
    }

    pub(crate) fn set_user_pid(&self, pid: Pid) {
        let _ = self.0.user.set(pid);
    }

    /// `make_ref()`.
    pub fn make_ref(&self) -> Reference {
        self.own_ref(self.new_ref_key())
    }

    /// The key of a new reference: three words, as the BEAM's.
    fn new_ref_key(&self) -> RefKey {
        let n = self.0.next_ref.fetch_add(1, Ordering::Relaxed);
        RefKey::new([
            (n & 0x3ffff) as u32,
            (n >> 18) as u32,
            ((n >> 50) as u32) ^ self.0.ref_salt,
        ])
    }

    /// The reference of a key this node made.
    pub(crate) fn own_ref(&self, key: RefKey) -> Reference {
        key.reference(&self.0.name, self.0.creation)
    }

    /// The key of `r` if this node (this incarnation) made it.
    pub(crate) fn ref_key(&self, r: &Reference) -> Option<RefKey> {
        RefKey::of(r, &self.0.name, self.0.creation)
    }
}

/// The instant `after` from now; for a wait as long as `Duration::MAX` (which no
/// instant is that far), one that never comes in practice: thirty years from now.
pub(crate) fn instant_after(after: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + std::time::Duration::from_secs(30 * 365 * 86_400))
}

/// The part before `@` of a name this node may take, as `net_kernel` checks it: letters,
/// digits, `_` and `-`, then `@` and a host (the peers' names are checked more loosely,
/// in the handshake).
fn own_name_head(name: &str) -> Option<&str> {
    let (head, host) = name.split_once('@')?;
    let head_ok = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (head_ok && crate::handshake::valid_node_name(name) && !host.is_empty()).then_some(head)
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.0.name.name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::own_name_head;

    #[test]
    fn own_names_are_checked_as_erl_checks_them() {
        assert_eq!(own_name_head("moebi@localhost"), Some("moebi"));
        assert_eq!(own_name_head("moe-bi_2@host.example.com"), Some("moe-bi_2"));
        for bad in [
            "bad name@localhost",
            "moebi",
            "@localhost",
            "moebi@",
            "a@b@c",
            "mö@host",
            "a.b@host",
        ] {
            assert_eq!(own_name_head(bad), None, "{bad}");
        }
    }
}
