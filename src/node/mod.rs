//! The node: its identity, its process table and names, its connections, and the routing
//! of every signal between local processes and remote nodes.

mod config;
mod connect;
mod dist;
pub(crate) mod keys;

pub use config::{default_cookie, NodeConfig};

use crate::connection::codec::{Payload, To};
use crate::connection::ConnHandle;
use crate::epmd;
use crate::otp;
use crate::process::table::Watcher;
use crate::process::{
    Dest, Exception, IntoMessage, Monitor, MonitorTarget, Prepared, ProcEntry, Process, SpawnOpts,
};
use crate::term::{atom, tuple, Atom, Pid, Reference, Term};
use erl_dist::message::Message;
use erl_dist::term::PidOrAtom;
use futures::future::BoxFuture;
use futures::FutureExt;
use keys::{pid_key, OwnMap, RefKey};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

/// A function BEAM nodes can call on this node by `{Module, Function, Arity}`: through
/// `Task.Supervisor`, remote spawn, `:rpc`/`:erpc`. It runs in its own process.
pub type Function =
    Arc<dyn Fn(Process, Vec<Term>) -> BoxFuture<'static, Result<Term, Exception>> + Send + Sync>;

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node name is not `name@host`.
    #[error("invalid node name {0:?}: expected name@host")]
    InvalidName(String),
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

/// A running node. Cheap to clone; all clones are the same node.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use cnode::{Node, NodeConfig};
/// let node = Node::start(NodeConfig::new("moebi@localhost", "secret_token")).await?;
/// node.register_function("Elixir.Moebi", "bark", 0, |mut p, _args| async move {
///     p.puts("Woof!").await?;
///     Ok(cnode::term::atom("ok"))
/// });
/// node.start_task_supervisor("Elixir.Chat.TaskSupervisor");
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
    names: Mutex<HashMap<String, Pid>>,
    /// Active aliases: the pid key of the process each one reaches.
    aliases: Mutex<OwnMap<RefKey, u64>>,
    conns: Mutex<HashMap<String, connect::ConnState>>,
    functions: RwLock<HashMap<(String, String, usize), Function>>,
    next_pid: AtomicU64,
    next_ref: AtomicU64,
    ref_salt: u32,
    /// The node's `user` process: the group leader of processes started here.
    user: OnceLock<Pid>,
    _epmd: OnceLock<epmd::Registration>,
}

/// A lock of the node's tables or of a connection's outbox, taken even when poisoned:
/// the node keeps serving. (The outbox stays whole: a frame being encoded when a bug
/// panics is cut back, see `codec::framed`.)
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    /// Starts a node: listens, registers with EPMD (starting one when none answers),
    /// and starts the system processes a BEAM node has (`net_kernel`, `rex`, `user`,
    /// and `global_name_server` when visible).
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let (alive, _host) = config
            .name
            .split_once('@')
            .filter(|_| crate::handshake::valid_node_name(&config.name))
            .ok_or_else(|| NodeError::InvalidName(config.name.clone()))?;
        let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.listen_port))
            .await
            .map_err(|source| NodeError::Io {
                context: format!("listening on port {}", config.listen_port),
                source,
            })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let registration = epmd::register(alive, port, config.epmd_port)
            .await
            .map_err(|e| NodeError::Epmd(e.to_string()))?;
        let creation = registration.creation();
        let node = Node(Arc::new(NodeInner {
            name: Atom::from(config.name.as_str()),
            creation,
            port,
            procs: Mutex::new(OwnMap::default()),
            names: Mutex::new(HashMap::new()),
            aliases: Mutex::new(OwnMap::default()),
            conns: Mutex::new(HashMap::new()),
            functions: RwLock::new(HashMap::new()),
            // Pids start at <N.1.0>, serial 0, as a BEAM node's do.
            next_pid: AtomicU64::new(1),
            next_ref: AtomicU64::new(1),
            ref_salt: rand::random(),
            user: OnceLock::new(),
            _epmd: OnceLock::new(),
            config,
        }));
        let _ = node.0._epmd.set(registration);
        otp::start_system_processes(&node);
        connect::spawn_acceptor(node.clone(), listener);
        tracing::info!(
            node = %node.0.name,
            port,
            creation,
            hidden = node.0.config.hidden,
            "node started"
        );
        Ok(node)
    }

    /// This node's name, `name@host`.
    pub fn name(&self) -> &str {
        &self.0.name.name
    }

    /// The port this node accepts distribution connections on.
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

    /// `Node.disconnect/1`: closes the connection to `node`. Links and monitors across
    /// it fire with `noconnection` on both sides; the next message to `node` connects
    /// again. False when there was no connection.
    pub fn disconnect(&self, node: &str) -> bool {
        connect::disconnect(self, node)
    }

    /// `erlang:send({Name, Node}, Message, [noconnect])`: sent only over a connection
    /// to `node` that is up, never bringing one up (dropped when there is none), as
    /// `global` sends what must not connect nodes.
    pub(crate) fn send_noconnect(&self, from: &Pid, name: &Atom, node: &str, message: &Term) {
        if let Some(h) = connect::handle(self, node) {
            h.send_to(from, To::Name(name), Payload::Term(message));
        }
    }

    /// Registers the function BEAM nodes reach as `Module.function/arity` (use the
    /// Erlang atom for Elixir modules: `"Elixir.Chat"`). It runs in a process of its own
    /// whose group leader decides where its output goes.
    pub fn register_function<F, Fut>(&self, module: &str, function: &str, arity: usize, f: F)
    where
        F: Fn(Process, Vec<Term>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Term, Exception>> + Send + 'static,
    {
        let f: Function = Arc::new(move |p, args| f(p, args).boxed());
        self.0
            .functions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((module.to_owned(), function.to_owned(), arity), f);
    }

    pub(crate) fn function(&self, module: &str, function: &str, arity: usize) -> Option<Function> {
        self.0
            .functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(module.to_owned(), function.to_owned(), arity))
            .cloned()
    }

    /// Runs `module:function(args)` in process `p`: the registered function, or
    /// `{undef, [{M, F, Args, []}]}` as the BEAM raises for a function that is not there.
    pub async fn apply(
        &self,
        p: Process,
        module: &str,
        function: &str,
        args: Vec<Term>,
    ) -> Result<Term, Exception> {
        match self.function(module, function, args.len()) {
            Some(f) => match std::panic::AssertUnwindSafe(f(p, args))
                .catch_unwind()
                .await
            {
                Ok(result) => result,
                Err(panic) => Err(panic_exception(panic)),
            },
            None => Err(Exception::undef(module, function, args)),
        }
    }

    /// Hosts a `Task.Supervisor`-compatible process registered as `name` (e.g.
    /// `"Elixir.Chat.TaskSupervisor"`): BEAM nodes start tasks on it with
    /// `Task.Supervisor.async({name, node}, M, F, A)`, running registered functions.
    pub fn start_task_supervisor(&self, name: &str) -> Pid {
        otp::task_supervisor::start(self, name)
    }

    /// Spawns a process running `body`, with this node's `user` as group leader.
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        self.spawn_with(self.spawn_opts(self.user_pid()), body)
    }

    /// Spawns a process registered as `name`.
    pub fn spawn_registered<F, Fut>(&self, name: &str, body: F) -> Result<Pid, Exception>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let mut opts = self.spawn_opts(self.user_pid());
        opts.name = Some(Atom::from(name));
        let prepared = self.prepare(opts)?;
        Ok(self.start_prepared(prepared, body))
    }

    /// The pid registered as `name` here.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        lock(&self.0.names).get(name).cloned()
    }

    /// Whether a local process is alive.
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.local_entry(pid).is_some()
    }

    /// Sends a message from no process in particular (a pid-less sender, as a port
    /// would be); replies cannot come back to it.
    pub fn send(&self, to: impl Into<Dest>, message: impl IntoMessage) {
        let from = self.user_pid();
        self.route(&from, to.into(), message);
    }

    /// Runs until the process end (Ctrl-C or SIGTERM).
    pub async fn serve_forever(&self) {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(node = %self.0.name, "stopping");
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
            .unwrap_or_else(|| Pid::new(self.0.name.name.as_str(), 0, 0, self.0.creation))
    }

    pub(crate) fn set_user_pid(&self, pid: Pid) {
        let _ = self.0.user.set(pid);
    }

    fn new_pid(&self) -> Pid {
        loop {
            let n = self.0.next_pid.fetch_add(1, Ordering::Relaxed);
            // Like the BEAM: 15 bits of id, 13 of serial, so peers without V4_NC cope.
            let pid = Pid::new(
                self.0.name.name.as_str(),
                (n & 0x7fff) as u32,
                ((n >> 15) & 0x1fff) as u32,
                self.0.creation,
            );
            if !lock(&self.0.procs).contains_key(&pid_key(&pid)) {
                return pid;
            }
        }
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

    // ---- processes ------------------------------------------------------------------

    pub(crate) fn spawn_opts(&self, group_leader: Pid) -> SpawnOpts {
        SpawnOpts {
            group_leader,
            link: None,
            monitored_by: None,
            name: None,
            initial_call: (Atom::from("erlang"), Atom::from("apply"), 2),
        }
    }

    pub(crate) fn spawn_with<F, Fut>(&self, opts: SpawnOpts, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let prepared = self
            .prepare(SpawnOpts { name: None, ..opts })
            .expect("a process without a name always prepares");
        self.start_prepared(prepared, body)
    }

    /// Creates the entry of a new process so its pid exists; `start_prepared` runs it.
    pub(crate) fn prepare(&self, opts: SpawnOpts) -> Result<Prepared, Exception> {
        let pid = self.new_pid();
        let prepared = ProcEntry::prepare(pid.clone(), &opts);
        if let Some(name) = &opts.name {
            let mut names = lock(&self.0.names);
            if names.contains_key(&name.name) {
                return Err(Exception::badarg());
            }
            names.insert(name.name.clone(), pid.clone());
        }
        lock(&self.0.procs).insert(pid_key(&pid), prepared.entry.clone());
        Ok(prepared)
    }

    pub(crate) fn start_prepared<F, Fut>(&self, prepared: Prepared, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let Prepared { entry, rx, kill_rx } = prepared;
        let pid = entry.pid.clone();
        let node = self.clone();
        let process = Process::new(node.clone(), entry.clone(), rx);
        tokio::spawn(async move {
            let run = std::panic::AssertUnwindSafe(body(process)).catch_unwind();
            let reason = tokio::select! {
                biased;
                killed = kill_rx => killed.unwrap_or_else(|_| atom("killed")),
                result = run => match result {
                    Ok(Ok(())) => atom("normal"),
                    Ok(Err(Exception::Exit(reason))) => reason,
                    Ok(Err(e)) => node.report_crash(&entry, e.exit_reason()),
                    Err(panic) => node.report_crash(&entry, panic_exception(panic).exit_reason()),
                },
            };
            node.process_exited(&entry, reason);
        });
        pid
    }

    /// A process died of an error (a raise, throw or panic, not `exit/1`): reported as the
    /// BEAM reports it; returns its exit reason.
    fn report_crash(&self, entry: &ProcEntry, reason: Term) -> Term {
        let group_leader = entry.state().group_leader.clone();
        otp::io::report_crash(self, &entry.pid, &group_leader, &reason);
        reason
    }

    pub(crate) fn local_entry(&self, pid: &Pid) -> Option<Arc<ProcEntry>> {
        if !self.is_local(&pid.node) || pid.creation != self.0.creation {
            return None;
        }
        lock(&self.0.procs).get(&pid_key(pid)).cloned()
    }

    /// The process an active alias of this node reaches.
    pub(crate) fn alias_entry(&self, alias: &Reference) -> Option<Arc<ProcEntry>> {
        let owner = self
            .ref_key(alias)
            .and_then(|k| lock(&self.0.aliases).get(&k).copied())?;
        lock(&self.0.procs).get(&owner).cloned()
    }

    pub(crate) fn registered_entry(&self, name: &str) -> Option<Arc<ProcEntry>> {
        // Names hold only this node's pids; no copy of the pid on the way.
        let key = pid_key(lock(&self.0.names).get(name)?);
        lock(&self.0.procs).get(&key).cloned()
    }

    pub(crate) fn register_name(
        &self,
        name: &str,
        entry: &Arc<ProcEntry>,
    ) -> Result<(), Exception> {
        let mut st = entry.state();
        let mut names = lock(&self.0.names);
        if st.name.is_some() || names.contains_key(name) || st.dead {
            return Err(Exception::badarg());
        }
        names.insert(name.to_owned(), entry.pid.clone());
        st.name = Some(Atom::from(name));
        Ok(())
    }

    /// All local process entries (for node-down handling).
    fn entries(&self) -> Vec<Arc<ProcEntry>> {
        lock(&self.0.procs).values().cloned().collect()
    }

    /// A process ended with `reason`: unregister it and fire its links and monitors
    /// (`erts_do_exit_process` / `erts_continue_exit_process`).
    pub(crate) fn process_exited(&self, entry: &Arc<ProcEntry>, reason: Term) {
        let (links, watchers, monitors, name, aliases) = {
            let mut st = entry.state();
            if st.dead {
                return;
            }
            st.dead = true;
            (
                std::mem::take(&mut st.links),
                std::mem::take(&mut st.monitored_by),
                std::mem::take(&mut st.monitors),
                st.name.take(),
                std::mem::take(&mut st.aliases),
            )
        };
        let pid = &entry.pid;
        lock(&self.0.procs).remove(&pid_key(pid));
        if let Some(name) = &name {
            let mut names = lock(&self.0.names);
            if names.get(&name.name) == Some(pid) {
                names.remove(&name.name);
            }
        }
        {
            let mut table = lock(&self.0.aliases);
            for a in aliases
                .iter()
                .chain(monitors.iter().filter(|(_, m)| m.alias).map(|(r, _)| r))
            {
                table.remove(a);
            }
        }
        for linked in links {
            self.send_exit_signal(pid, &linked, reason.clone(), true);
        }
        for (reference, watcher) in watchers {
            self.send_down(pid, watcher, reference, reason.clone());
        }
        for (key, monitor) in monitors {
            self.drop_monitor_at_target(pid, self.own_ref(key), monitor.target);
        }
    }

    /// Delivers the `DOWN` of `from` to a watcher, local or remote.
    fn send_down(&self, from: &Pid, watcher: Watcher, reference: Reference, reason: Term) {
        if let Some(w) = self.local_entry(&watcher.pid) {
            if let Some(key) = self.ref_key(&reference) {
                let monitor = w.state().monitors.remove(&key);
                if monitor.is_some_and(|m| m.alias) {
                    lock(&self.0.aliases).remove(&key);
                }
            }
            let watched = match watcher.by_name {
                Some(name) => Dest::Name(name),
                None => Dest::Pid(from.clone()),
            };
            w.deliver(down_message(
                reference,
                watched.down_object(&self.0.name),
                reason,
            ));
        } else if !self.is_local(&watcher.pid.node) {
            let from_proc = match watcher.by_name {
                Some(name) => PidOrAtom::Atom(name),
                None => PidOrAtom::Pid(from.clone()),
            };
            let node = watcher.pid.node.clone();
            self.send_to_node(
                &node,
                Message::payload_monitor_p_exit(from_proc, watcher.pid, reference, reason),
            );
        }
    }

    /// Removes a monitor from its target's side (local state or `DEMONITOR_P`).
    fn drop_monitor_at_target(&self, owner: &Pid, reference: Reference, target: MonitorTarget) {
        let MonitorTarget::Process(dest) = target else {
            return;
        };
        let local = match &dest {
            Dest::Pid(p) if self.is_local(&p.node) => self.local_entry(p),
            Dest::Name(n) => self.registered_entry(&n.name),
            Dest::RemoteName(n, node) if self.is_local(node) => self.registered_entry(&n.name),
            _ => None,
        };
        if let Some(t) = local {
            t.state().monitored_by.remove(&reference);
            return;
        }
        let (node, to_proc) = match dest {
            Dest::Pid(p) if !self.is_local(&p.node) => (p.node.clone(), PidOrAtom::Pid(p)),
            Dest::RemoteName(n, node) if !self.is_local(&node) => (node, PidOrAtom::Atom(n)),
            _ => return,
        };
        self.send_to_node(
            &node,
            Message::demonitor_p(owner.clone(), to_proc, reference),
        );
    }

    // ---- signals from local processes ----------------------------------------------

    /// Sends `message` from `from` to `to`: delivered to a process here, written to the
    /// connection (from a borrow) for a process elsewhere.
    pub(crate) fn route(&self, from: &Pid, to: Dest, message: impl IntoMessage) {
        self.route_in(from, to, Vec::new(), message)
    }

    /// [`route`](Self::route) of the tuple of `head`'s elements then `message` (just
    /// `message` when `head` is empty): the `$gen_call` and `$gen_cast` wrappers around
    /// a request that may be lent.
    pub(crate) fn route_in(
        &self,
        from: &Pid,
        to: Dest,
        head: Vec<Term>,
        message: impl IntoMessage,
    ) {
        let remote = match &to {
            Dest::Pid(pid) if !self.is_local(&pid.node) => Some((&pid.node, To::Pid(pid))),
            Dest::RemoteName(name, node) if !self.is_local(node) => Some((node, To::Name(name))),
            Dest::Alias(alias) if !self.is_local(&alias.node) => {
                Some((&alias.node, To::Alias(alias)))
            }
            _ => None,
        };
        if let Some((node, to)) = remote {
            let payload = if head.is_empty() {
                Payload::Term(message.as_term())
            } else {
                Payload::Wrapped(&head, message.as_term())
            };
            connect::send_to(self, node, from, to, payload);
            message.spent();
            return;
        }
        let entry = match &to {
            Dest::Pid(pid) => self.local_entry(pid),
            Dest::Name(name) | Dest::RemoteName(name, _) => {
                let entry = self.registered_entry(&name.name);
                if entry.is_none() {
                    tracing::debug!("message to unregistered name {name} dropped");
                }
                entry
            }
            Dest::Alias(alias) => self.alias_entry(alias),
        };
        if let Some(e) = entry {
            let mut message = message.into_term();
            if !head.is_empty() {
                let mut elements = head;
                elements.push(message);
                message = tuple(elements);
            }
            e.deliver(message);
        }
    }

    pub(crate) fn link(&self, entry: &Arc<ProcEntry>, to: &Pid) {
        if to == &entry.pid {
            return;
        }
        if self.is_local(&to.node) {
            match self.local_entry(to) {
                Some(other) => {
                    entry.state().links.insert(to.clone());
                    let inserted = {
                        let mut st = other.state();
                        !st.dead && st.links.insert(entry.pid.clone())
                    };
                    if !inserted && !other.state().links.contains(&entry.pid) {
                        entry.state().links.remove(to);
                        entry.exit_signal(to, atom("noproc"), false);
                    }
                }
                None => {
                    entry.exit_signal(to, atom("noproc"), false);
                }
            }
        } else {
            entry.state().links.insert(to.clone());
            self.send_to_node(&to.node, Message::link(entry.pid.clone(), to.clone()));
        }
    }

    pub(crate) fn unlink(&self, entry: &Arc<ProcEntry>, to: &Pid) {
        if !entry.state().links.remove(to) {
            return;
        }
        if let Some(other) = self.local_entry(to) {
            other.state().links.remove(&entry.pid);
        } else if !self.is_local(&to.node) {
            // UNLINK_ID: the id only needs to be unique per link; the peer echoes it.
            let id = crate::term::int(
                (self.0.next_ref.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff) as i64,
            );
            self.send_to_node(
                &to.node,
                Message::unlink_id(id, entry.pid.clone(), to.clone()),
            );
        }
    }

    /// An exit signal from `from` to `to`: through a link (`linked`) or `exit/2`.
    pub(crate) fn send_exit_signal(&self, from: &Pid, to: &Pid, reason: Term, linked: bool) {
        if let Some(e) = self.local_entry(to) {
            e.exit_signal(from, reason, linked);
        } else if !self.is_local(&to.node) {
            let msg = if linked {
                Message::payload_exit(from.clone(), to.clone(), reason)
            } else {
                Message::payload_exit2(from.clone(), to.clone(), reason)
            };
            self.send_to_node(&to.node, msg);
        }
    }

    pub(crate) fn monitor(&self, entry: &Arc<ProcEntry>, target: Dest, alias: bool) -> Reference {
        let key = self.new_ref_key();
        if alias {
            lock(&self.0.aliases).insert(key, pid_key(&entry.pid));
        }
        let reference = self.own_ref(key);
        self.monitor_with_ref(entry, target, alias, key, reference.clone());
        reference
    }

    fn monitor_with_ref(
        &self,
        entry: &Arc<ProcEntry>,
        target: Dest,
        alias: bool,
        key: RefKey,
        reference: Reference,
    ) {
        /// Who keeps the other end of the monitor.
        enum Watched {
            /// A peer node: it gets `MONITOR_P` (and makes the DOWN's object).
            Remote(Atom, PidOrAtom),
            /// A process of ours (if it exists), monitored by pid or by name.
            Local(Option<Arc<ProcEntry>>, Option<Atom>),
        }
        let watched = match &target {
            Dest::Pid(p) if self.is_local(&p.node) => Watched::Local(self.local_entry(p), None),
            Dest::Pid(p) => Watched::Remote(p.node.clone(), PidOrAtom::Pid(p.clone())),
            Dest::Name(n) => Watched::Local(self.registered_entry(&n.name), Some(n.clone())),
            Dest::RemoteName(n, node) if self.is_local(node) => {
                Watched::Local(self.registered_entry(&n.name), Some(n.clone()))
            }
            Dest::RemoteName(n, node) => Watched::Remote(node.clone(), PidOrAtom::Atom(n.clone())),
            Dest::Alias(_) => Watched::Local(None, None),
        };
        entry.state().monitors.insert(
            key,
            Monitor {
                target: MonitorTarget::Process(target),
                alias,
            },
        );
        let (local, by_name) = match watched {
            Watched::Remote(node, to) => {
                self.send_to_node(&node, Message::monitor_p(entry.pid.clone(), to, reference));
                return;
            }
            Watched::Local(local, by_name) => (local, by_name),
        };
        let added = match local {
            Some(t) => {
                let mut st = t.state();
                if st.dead {
                    false
                } else {
                    let watcher = Watcher {
                        pid: entry.pid.clone(),
                        by_name,
                    };
                    st.monitored_by.insert(reference, watcher);
                    true
                }
            }
            None => false,
        };
        if !added {
            self.fire_monitor(entry, key, atom("noproc"));
        }
    }

    /// Removes monitor `key` from `entry`'s monitors and delivers its `DOWN` with
    /// `reason`.
    pub(crate) fn fire_monitor(&self, entry: &Arc<ProcEntry>, key: RefKey, reason: Term) {
        let Some(monitor) = entry.state().monitors.remove(&key) else {
            return;
        };
        if monitor.alias {
            lock(&self.0.aliases).remove(&key);
        }
        let object = match &monitor.target {
            MonitorTarget::Process(d) => d.down_object(&self.0.name),
            MonitorTarget::Spawn { .. } => atom("undefined"),
        };
        entry.deliver(down_message(self.own_ref(key), object, reason));
    }

    pub(crate) fn demonitor(&self, entry: &Arc<ProcEntry>, reference: &Reference) {
        let Some(key) = self.ref_key(reference) else {
            return;
        };
        let Some(monitor) = entry.state().monitors.remove(&key) else {
            return;
        };
        if monitor.alias {
            lock(&self.0.aliases).remove(&key);
        }
        self.drop_monitor_at_target(&entry.pid, reference.clone(), monitor.target);
    }

    pub(crate) fn new_alias(&self, entry: &Arc<ProcEntry>) -> Reference {
        let key = self.new_ref_key();
        entry.state().aliases.insert(key);
        lock(&self.0.aliases).insert(key, pid_key(&entry.pid));
        self.own_ref(key)
    }

    pub(crate) fn new_priority_alias(&self, entry: &Arc<ProcEntry>) -> Reference {
        let alias = self.new_alias(entry);
        if let Some(key) = self.ref_key(&alias) {
            entry.state().priority_aliases.insert(key);
        }
        alias
    }

    pub(crate) fn remove_alias(&self, entry: &Arc<ProcEntry>, alias: &Reference) {
        let Some(key) = self.ref_key(alias) else {
            return;
        };
        let removed = {
            let mut st = entry.state();
            st.priority_aliases.remove(&key);
            st.aliases.remove(&key)
        };
        if removed {
            lock(&self.0.aliases).remove(&key);
        }
    }

    /// Whether `alias` is an active priority alias of `entry`.
    pub(crate) fn is_priority_alias(&self, entry: &ProcEntry, alias: &Reference) -> bool {
        self.ref_key(alias)
            .is_some_and(|k| entry.state().priority_aliases.contains(&k))
    }

    /// A message sent with the `priority` option to `alias` (`erlang:send/3`).
    pub(crate) fn route_priority(&self, from: &Pid, alias: &Reference, message: impl IntoMessage) {
        if !self.is_local(&alias.node) {
            connect::send_to(
                self,
                &alias.node,
                from,
                To::PriorityAlias(alias),
                Payload::Term(message.as_term()),
            );
            message.spent();
            return;
        }
        let Some(entry) = self.alias_entry(alias) else {
            return;
        };
        if self.is_priority_alias(&entry, alias) {
            entry.deliver_priority(message.into_term());
        } else {
            entry.deliver(message.into_term());
        }
    }

    // ---- node down ----------------------------------------------------------------

    /// Every link and monitor across the lost connection fires with `noconnection`
    /// (`erts_do_net_exits`). `creation` limits it to one incarnation of the peer.
    pub(crate) fn node_down(&self, node: &Atom, creation: Option<u32>) {
        let on_node = |p: &Pid| &p.node == node && creation.map_or(true, |c| p.creation == c);
        for entry in self.entries() {
            let (links, monitors): (Vec<Pid>, Vec<RefKey>) = {
                let mut st = entry.state();
                if st.dead {
                    continue;
                }
                let links: Vec<Pid> = st.links.iter().filter(|p| on_node(p)).cloned().collect();
                st.monitored_by.retain(|_, w| !on_node(&w.pid));
                let monitors = st
                    .monitors
                    .iter()
                    .filter(|(_, m)| match &m.target {
                        MonitorTarget::Process(Dest::Pid(p)) => on_node(p),
                        MonitorTarget::Process(Dest::RemoteName(_, n)) => n == node,
                        MonitorTarget::Spawn { node: n } => n == node,
                        _ => false,
                    })
                    .map(|(&k, _)| k)
                    .collect();
                (links, monitors)
            };
            for l in links {
                entry.exit_signal(&l, atom("noconnection"), true);
            }
            for k in monitors {
                self.fire_monitor(&entry, k, atom("noconnection"));
            }
        }
    }

    // ---- the remote side --------------------------------------------------------------

    /// Queues a control message for `node`, connecting first if needed.
    pub(crate) fn send_to_node(&self, node: &Atom, message: Message) {
        connect::send(self, node, message);
    }

    pub(crate) fn dispatch(&self, conn: &Arc<ConnHandle>, message: Message) {
        dist::dispatch(self, conn, message);
    }

    pub(crate) fn dispatch_alt_act(&self, signal: crate::connection::codec::AltAct) {
        dist::alt_act(self, signal);
    }

    pub(crate) fn connection_down(&self, conn: &Arc<ConnHandle>, reason: &str) {
        connect::down(self, conn, reason);
    }

    /// Registers a monitor for a `SPAWN_REQUEST` we send with the `monitor` option.
    pub(crate) fn add_spawn_monitor(
        &self,
        entry: &Arc<ProcEntry>,
        reference: Reference,
        node: Atom,
    ) {
        let Some(key) = self.ref_key(&reference) else {
            return;
        };
        entry.state().monitors.insert(
            key,
            Monitor {
                target: MonitorTarget::Spawn { node },
                alias: false,
            },
        );
    }
}

/// `{'DOWN', Ref, process, Object, Reason}`.
pub(crate) fn down_message(reference: Reference, object: Term, reason: Term) -> Term {
    tuple(vec![
        atom("DOWN"),
        Term::Reference(Box::new(reference)),
        atom("process"),
        object,
        reason,
    ])
}

/// A panic in a function becomes an error exit of its process, as a raise does on the
/// BEAM: reason `{rust_panic, Message}`.
pub(crate) fn panic_exception(panic: Box<dyn std::any::Any + Send>) -> Exception {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    Exception::error(tuple(vec![atom("rust_panic"), crate::term::binary(text)]))
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.0.name.name)
            .finish()
    }
}
