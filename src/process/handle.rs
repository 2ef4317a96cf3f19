//! The handle a process's own code uses: its mailbox and the BEAM process operations.

use crate::node::{Dest, Exception, IntoMessage, Mailbox, Node, ProcEntry};
use crate::term::{Match, Pid, Reference, Term};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A running process, as its own code sees it.
///
/// ```no_run
/// # async fn demo(node: cnode::Node) {
/// use cnode::term::{atom, tuple, Match, Term};
/// let pid = node.spawn(|mut p| async move {
///     // Answer {:hi, from} with :sup?, as in the seed's first example.
///     let msg = p.receive().await;
///     if let Some([tag, Term::Pid(from)]) = msg.as_tuple_n(2).map(|e| [e[0].clone(), e[1].clone()]) {
///         if tag.is_atom("hi") {
///             p.send(from, atom("sup?"));
///         }
///     }
///     Ok(())
/// });
/// # }
/// ```
pub struct Process {
    pub(crate) node: Node,
    pub(crate) entry: Arc<ProcEntry>,
    rx: Mailbox,
    /// Messages passed over by a selective receive, oldest first.
    saved: VecDeque<Term>,
    /// Whether this process made a priority alias, and so may get priority messages
    /// (until then its receives never look at the priority queue).
    priority_enabled: bool,
    /// A connection a send of this process left busy: the process waits for it to
    /// drain at its next receive (or `yield_now`), as a BEAM process is suspended.
    busy: std::sync::Mutex<Option<crate::node::Busy>>,
}

/// See [`Process::demonitor_on_drop`].
pub(crate) struct Demonitor {
    node: Node,
    entry: Arc<ProcEntry>,
    reference: Option<Reference>,
    /// A spawn request's monitor: abandon the request too.
    spawn: bool,
}

impl Demonitor {
    /// The call ended: its own code takes care of the monitor.
    pub(crate) fn done(mut self) {
        self.reference = None;
    }
}

impl Drop for Demonitor {
    fn drop(&mut self) {
        if let Some(reference) = self.reference.take() {
            if self.spawn {
                self.node.abandon_spawn(&self.entry, &reference);
            }
            self.node.demonitor(&self.entry, &reference);
        }
    }
}

impl Process {
    pub(crate) fn new(node: Node, entry: Arc<ProcEntry>, rx: Mailbox) -> Self {
        Process {
            node,
            entry,
            rx,
            saved: VecDeque::new(),
            priority_enabled: false,
            busy: std::sync::Mutex::new(None),
        }
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        self.entry.pid
    }

    /// The node this process runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// `send(Dest, Message)`. Sending to a remote node connects to it first if needed;
    /// a message to a process or name that does not exist is dropped, as on the BEAM.
    ///
    /// The message is a `Term` given away or a `&Term` lent ([`IntoMessage`]). It never
    /// waits: the message is encoded and queued for the connection's writer. When that
    /// leaves more than `NodeConfig::dist_buf_busy_limit` (1 MiB) waiting for the peer
    /// (or for its connection, while that is coming up), this process waits for the
    /// writer to catch up (or the connection to be up, or given up) at its next `receive` or
    /// [`yield_now`](Self::yield_now), as a BEAM process that sends to a busy
    /// distribution port is suspended. A process sending many messages in a row
    /// should `p.yield_now().await` now and then (the BEAM preempts a process after
    /// its reductions): that bounds what waits for a slow peer, and on a one-thread
    /// runtime it is what lets the writer run at all.
    pub fn send(&self, to: impl Into<Dest>, message: impl IntoMessage) {
        if self.entry.is_exiting() {
            return;
        }
        let busy = self.node.route(&self.entry.pid, to.into(), message);
        self.suspend_on(busy);
    }

    /// `Process.send_after(dest, message, delay)`: sends `message` to `to` after
    /// `delay`, as from this process, and returns the timer's reference for
    /// [`cancel_timer`](Self::cancel_timer) and [`read_timer`](Self::read_timer). A
    /// timer to a process of this node goes when that process ends (so a process that
    /// ends early leaves no timer behind), as on the BEAM; a name is looked up when the
    /// timer fires. The periodic work of a GenServer:
    ///
    /// ```no_run
    /// use cnode::term::{atom, Match, Term};
    /// use cnode::{Exception, GenServer, Next, Process};
    /// use std::time::Duration;
    ///
    /// const EVERY: Duration = Duration::from_secs(2);
    ///
    /// struct Restocker;
    ///
    /// impl GenServer for Restocker {
    ///     async fn init(&mut self, p: &mut Process) -> Result<Next, Exception> {
    ///         p.send_after(p.pid(), atom("restock"), EVERY); // Process.send_after(self(), :restock, 2000)
    ///         Ok(Next::Wait)
    ///     }
    ///
    ///     async fn handle_info(&mut self, message: Term, p: &mut Process) -> Result<Next, Exception> {
    ///         if message.is_atom("restock") {
    ///             // ... the periodic work ...
    ///             p.send_after(p.pid(), atom("restock"), EVERY);
    ///         }
    ///         Ok(Next::Wait)
    ///     }
    /// }
    /// ```
    pub fn send_after(&self, to: impl Into<Dest>, message: Term, delay: Duration) -> Reference {
        self.node
            .start_timer_from(self.entry.pid, to.into(), message, delay, false)
    }

    /// `:erlang.start_timer(delay, dest, message)`: as [`send_after`](Self::send_after),
    /// the message being `{:timeout, timer_ref, message}`, so that a receiver tells this
    /// timer's message from an earlier one it cancelled too late.
    pub fn start_timer(&self, to: impl Into<Dest>, message: Term, delay: Duration) -> Reference {
        self.node
            .start_timer_from(self.entry.pid, to.into(), message, delay, true)
    }

    /// `Process.cancel_timer(timer)`: the time that was left, or `None` when `timer`
    /// is not running (it fired, was cancelled, or is no timer). A message it already
    /// sent stays in the mailbox. Any process of the node may cancel any timer.
    pub fn cancel_timer(&self, timer: &Reference) -> Option<Duration> {
        self.node.cancel_timer(timer)
    }

    /// `Process.read_timer(timer)`: the time left before `timer` fires, or `None` when
    /// it is not running.
    pub fn read_timer(&self, timer: &Reference) -> Option<Duration> {
        self.node.read_timer(timer)
    }

    /// `Node.monitor(node, true)` (`erlang:monitor_node/2`): this process gets
    /// `{:nodedown, node}` when the connection to `node` goes, or at once if it cannot
    /// be made (a node not connected is connected to). Each call is a monitor of its
    /// own, with a `nodedown` of its own; `false` takes one away. Monitoring this
    /// node itself does nothing.
    pub fn monitor_node(&self, node: &str, on: bool) {
        self.node.monitor_node(&self.entry, node, on);
    }

    /// `:net_kernel.monitor_nodes(on)`: this process gets `{:nodeup, node}` for each
    /// visible node that connects from now on and `{:nodedown, node}` for each that
    /// goes; `false` ends it. In a GenServer, they come to `handle_info`:
    ///
    /// ```no_run
    /// use cnode::term::{Match, Term};
    /// use cnode::{Exception, GenServer, Next, Process};
    ///
    /// struct Membership;
    ///
    /// impl GenServer for Membership {
    ///     async fn init(&mut self, p: &mut Process) -> Result<Next, Exception> {
    ///         p.monitor_nodes(true);
    ///         Ok(Next::Wait)
    ///     }
    ///
    ///     async fn handle_info(&mut self, message: Term, _p: &mut Process) -> Result<Next, Exception> {
    ///         match message.as_tuple_n(2).map(|t| (t[0].as_atom(), t[1].as_atom())) {
    ///             Some((Some("nodeup"), Some(node))) => println!("{node} joined"),
    ///             Some((Some("nodedown"), Some(node))) => println!("{node} left"),
    ///             _ => {}
    ///         }
    ///         Ok(Next::Wait)
    ///     }
    /// }
    /// ```
    pub fn monitor_nodes(&self, on: bool) {
        self.monitor_nodes_with(on, crate::node::NodeEvents::default());
    }

    /// `:net_kernel.monitor_nodes(on, options)`: as [`monitor_nodes`](Self::monitor_nodes),
    /// for the nodes and with the messages `events` says (`node_type: :all`,
    /// `:nodedown_reason`): `{:nodeup, node, info}` and `{:nodedown, node, info}`.
    /// `false` ends every subscription made with the same `events`.
    pub fn monitor_nodes_with(&self, on: bool, events: crate::node::NodeEvents) {
        self.node.monitor_nodes(&self.entry, on, events);
    }

    fn suspend_on(&self, busy: Option<crate::node::Busy>) {
        if busy.is_some() {
            *crate::sync::lock(&self.busy) = busy;
        }
    }

    /// Waits while a connection this process sent to is busy (see [`send`](Self::send)),
    /// then lets the runtime run other tasks, as `tokio::task::yield_now`.
    pub async fn yield_now(&mut self) {
        self.unsuspend().await;
        tokio::task::yield_now().await;
    }

    async fn unsuspend(&mut self) {
        let busy = self
            .busy
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(conn) = busy {
            self.entry.suspended.store(true, Ordering::Relaxed);
            conn.drained().await;
            self.entry.suspended.store(false, Ordering::Relaxed);
        }
    }

    /// The next message.
    pub async fn receive(&mut self) -> Term {
        self.unsuspend().await;
        if self.priority_enabled {
            return self
                .receive_match(None, |_| true)
                .await
                .expect("a receive without a timeout returns a message");
        }
        let m = match self.saved.pop_front() {
            Some(m) => m,
            None => self.rx.recv().await,
        };
        self.taken();
        m
    }

    /// A message left the queue. Messages a selective receive passed over stay counted,
    /// as they stay in a BEAM process's queue (`process_info(Pid, message_queue_len)`).
    fn taken(&self) {
        self.entry.queue_len.fetch_sub(1, Ordering::Relaxed);
    }

    /// The next message, or `None` after `timeout`.
    pub async fn receive_timeout(&mut self, timeout: Duration) -> Option<Term> {
        self.receive_match(Some(timeout), |_| true).await
    }

    /// The `DOWN` of the monitor `reference` ([`monitor`](Self::monitor)), as
    /// `receive do {:DOWN, ^ref, _, _, reason} -> reason after timeout -> nil end`:
    /// its reason (`:noproc` for a process that was not there, `:noconnection` for its
    /// node gone), the other messages left queued; `None` after `timeout` (`None`
    /// waits for ever).
    ///
    /// ```no_run
    /// # async fn demo(mut p: cnode::Process, pid: cnode::term::Pid) {
    /// use std::time::Duration;
    /// let watched = p.monitor(pid);
    /// if let Some(reason) = p.receive_down(&watched, Duration::from_secs(5)).await {
    ///     println!("{pid} ended: {reason}");
    /// }
    /// # }
    /// ```
    pub async fn receive_down(
        &mut self,
        reference: &Reference,
        timeout: impl Into<Option<Duration>>,
    ) -> Option<Term> {
        let down = self
            .receive_match(timeout.into(), |m| is_down_for(m, reference))
            .await?;
        match down {
            Term::Tuple(mut t) => t.elements.pop(),
            _ => None,
        }
    }

    /// Selective receive: the oldest message for which `matches` is true, leaving the
    /// others queued in order; `None` after `timeout` (`None` waits for ever).
    pub async fn receive_match(
        &mut self,
        timeout: Option<Duration>,
        mut matches: impl FnMut(&Term) -> bool,
    ) -> Option<Term> {
        self.unsuspend().await;
        if let Some(m) = self.take_priority(&mut matches) {
            return Some(m);
        }
        if let Some(i) = self.saved.iter().position(&mut matches) {
            self.taken();
            return self.saved.remove(i);
        }
        // Registered with the node's watchdog at its first poll, which a message
        // already queued spares it.
        let mut deadline = timeout.map(|t| self.node.deadline_after(t));
        loop {
            let (rx, entry, priority) = (&mut self.rx, &self.entry, self.priority_enabled);
            // `None`: a priority message arrived (looked at before anything else).
            let next = async move {
                if priority {
                    tokio::select! {
                        biased;
                        _ = entry.priority_ready.notified() => None,
                        m = rx.recv() => Some(m),
                    }
                } else {
                    Some(rx.recv().await)
                }
            };
            let next = match &mut deadline {
                Some(deadline) => deadline.bound(next).await?,
                None => next.await,
            };
            let Some(m) = next else {
                if let Some(m) = self.take_priority(&mut matches) {
                    return Some(m);
                }
                continue;
            };
            if matches(&m) {
                self.taken();
                return Some(m);
            }
            self.saved.push_back(m);
        }
    }

    /// The oldest priority message that `matches`, if this process can have any.
    fn take_priority(&mut self, matches: impl FnMut(&Term) -> bool) -> Option<Term> {
        if !self.priority_enabled {
            return None;
        }
        let m = {
            let mut queue = self
                .entry
                .priority
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let i = queue.iter().position(matches)?;
            queue.remove(i)
        };
        self.taken();
        m
    }

    /// `link(Pid)`. Linking to a process that does not exist sends us an exit signal
    /// with reason `noproc`, as on the BEAM.
    pub fn link(&self, to: &Pid) {
        self.node.link(&self.entry, to);
    }

    /// `unlink(Pid)`.
    pub fn unlink(&self, to: &Pid) {
        self.node.unlink(&self.entry, to);
    }

    /// `monitor(process, Target)`; the `DOWN` message arrives in the mailbox.
    pub fn monitor(&self, target: impl Into<Dest>) -> Reference {
        self.node.monitor(&self.entry, target.into(), false)
    }

    /// `monitor(process, Target, [{alias, demonitor}])`: the reference is also an alias
    /// of this process until the monitor goes, as `gen:call` and `Task` use it.
    pub fn monitor_with_alias(&self, target: impl Into<Dest>) -> Reference {
        self.node.monitor(&self.entry, target.into(), true)
    }

    /// A guard that demonitors `reference` (and so deactivates its alias) if it is
    /// dropped before [`Demonitor::done`]: a call whose future is dropped mid-flight (a
    /// `select!`, a `timeout`) leaves no monitor behind, and a late reply to its alias is
    /// dropped, as OTP's calls leave none.
    pub(crate) fn demonitor_on_drop(&self, reference: &Reference) -> Demonitor {
        Demonitor {
            node: self.node.clone(),
            entry: self.entry.clone(),
            reference: Some(reference.clone()),
            spawn: false,
        }
    }

    /// [`demonitor_on_drop`](Self::demonitor_on_drop) for a spawn request's monitor:
    /// dropped, the request is abandoned too (its `SPAWN_REPLY` dropped when it comes).
    pub(crate) fn abandon_spawn_on_drop(&self, reference: &Reference) -> Demonitor {
        let mut guard = self.demonitor_on_drop(reference);
        guard.spawn = true;
        guard
    }

    /// `demonitor(Ref)`, with `flush` removing a `DOWN` already queued.
    pub fn demonitor(&mut self, reference: &Reference, flush: bool) {
        self.node.demonitor(&self.entry, reference);
        if flush {
            self.flush_matching(|m| is_down_for(m, reference));
        }
    }

    /// `alias()`: a reference that routes messages to this process until `unalias`.
    pub fn alias(&self) -> Reference {
        self.node.new_alias(&self.entry)
    }

    /// `alias([priority])`: an alias through which [`send_priority`](Self::send_priority)
    /// (or `:erlang.send(alias, msg, [:priority])` on an OTP 28+ node, or `exit/3` with
    /// `[:priority]` while this process traps exits) puts a message ahead of every
    /// ordinary message in the queue, after earlier priority messages (EEP 76). An
    /// ordinary send through it is an ordinary message.
    pub fn priority_alias(&mut self) -> Reference {
        self.priority_enabled = true;
        self.node.new_priority_alias(&self.entry)
    }

    /// `erlang:send(Alias, Message, [priority])`: a priority message if `alias` is an
    /// active priority alias; otherwise an ordinary one (to a node older than OTP 28,
    /// which cannot take priority messages, as well).
    pub fn send_priority(&self, alias: &Reference, message: impl IntoMessage) {
        if self.entry.is_exiting() {
            return;
        }
        let busy = self.node.route_priority(&self.entry.pid, alias, message);
        self.suspend_on(busy);
    }

    /// `unalias(Alias)`.
    pub fn unalias(&self, alias: &Reference) {
        self.node.remove_alias(&self.entry, alias);
    }

    /// `Process.set_label(label)` (`proc_lib:set_label/1`, OTP 27): what
    /// `process_info(pid, :label)` and `:proc_lib.get_label/1` show of this process to
    /// any node.
    pub fn set_label(&self, label: impl Into<Term>) {
        self.entry.state().label = Some(label.into());
    }

    /// What a process this one starts as `proc_lib` does has as `$ancestors`: this
    /// process, by its registered name if it has one, then its own ancestors.
    pub(crate) fn ancestors(&self) -> Vec<Term> {
        ancestors_of(&self.node, &self.entry.pid)
    }

    /// The process dictionary as a BEAM tool sees it (`$initial_call`, `$ancestors`,
    /// `$process_label`), as `{Key, Value}` tuples.
    pub(crate) fn dictionary(&self) -> Vec<Term> {
        self.entry.state().dictionary()
    }

    /// Marks this process as one `proc_lib` started, with `$initial_call` and
    /// `$ancestors` (and `$callers`, for a task) in its dictionary.
    pub(crate) fn set_proc_lib(&self, proc_lib: crate::node::ProcLib) {
        self.entry.state().proc_lib = Some(Box::new(proc_lib));
    }

    /// `process_flag(trap_exit, On)`; returns the previous value.
    pub fn trap_exit(&self, on: bool) -> bool {
        std::mem::replace(&mut self.entry.state().trap_exit, on)
    }

    /// `register(Name, self())`. Fails with `badarg` when the name is taken or this
    /// process already has a name, as on the BEAM: its stack is `erlang:register/2`'s
    /// frame, then the caller's (where its `?` takes it out of a process body).
    #[track_caller]
    pub fn register(&self, name: &str) -> Result<(), Exception> {
        let at = std::panic::Location::caller();
        self.node.register_name(name, &self.entry).map_err(|_| {
            let info = crate::term::map(vec![(
                crate::term::atom("module"),
                crate::term::atom("erl_erts_errors"),
            )]);
            let bif = crate::term::tuple(vec![
                crate::term::atom("erlang"),
                crate::term::atom("register"),
                crate::term::list(vec![crate::term::atom(name), Term::Pid(self.pid())]),
                crate::term::list(vec![crate::term::tuple(vec![
                    crate::term::atom("error_info"),
                    info,
                ])]),
            ]);
            let caller = crate::node::exception::frame(at.file(), at.line());
            Exception::Error {
                reason: crate::term::atom("badarg"),
                stacktrace: std::iter::once(bif).chain(caller).collect(),
            }
        })
    }

    /// The name this process is registered under, if any (`Process.info(self(),
    /// :registered_name)`).
    pub fn registered_name(&self) -> Option<String> {
        self.entry
            .state()
            .name
            .as_ref()
            .map(|n| n.name().to_owned())
    }

    /// This process's group leader: where its I/O goes.
    pub fn group_leader(&self) -> Pid {
        self.entry.state().group_leader
    }

    /// `exit(Pid, Reason)`: sends an exit signal.
    pub fn exit(&self, to: &Pid, reason: Term) {
        if self.entry.is_exiting() {
            return;
        }
        self.node
            .send_exit_signal(&self.entry.pid, to, reason, false);
    }

    /// `exit(Alias, Reason, Options)` (OTP 28): an exit signal to the process the alias
    /// names, dropped once it is no longer active; `priority` (`[:priority]`) through a
    /// priority alias puts a trapping process's `EXIT` message ahead of the ordinary
    /// ones. A node of OTP 27 or earlier cannot take it (dropped).
    pub fn exit_alias(&self, alias: &Reference, reason: Term, priority: bool) {
        if self.entry.is_exiting() {
            return;
        }
        self.node
            .send_exit_to_alias(&self.entry.pid, alias, reason, priority);
    }

    /// Spawns a process (`spawn`): not linked to this one, with this process's group
    /// leader, so what it prints goes where this one's output goes (a BEAM caller's
    /// terminal, for a function it called over rpc). [`Node::spawn`](crate::Node::spawn)
    /// gives the node's own `user` instead.
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let opts = self.node.spawn_opts(self.group_leader());
        self.node.spawn_with(opts, body)
    }

    /// Spawns a process linked to this one (`spawn_link`).
    pub fn spawn_link<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), Exception>> + Send + 'static,
    {
        self.spawn_link_named(None, body)
            .expect("a process without a name always starts")
    }

    /// [`spawn_link`](Self::spawn_link), registered as `name` when given; `badarg` when
    /// the name is taken (nothing is started then).
    pub fn spawn_link_named<F, Fut>(&self, name: Option<&str>, body: F) -> Result<Pid, Exception>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), Exception>> + Send + 'static,
    {
        self.spawn_from(name, true, body)
    }

    /// A process of this one's group leader, registered as `name` when given, linked to
    /// this one when `link` says so.
    pub(crate) fn spawn_from<F, Fut>(
        &self,
        name: Option<&str>,
        link: bool,
        body: F,
    ) -> Result<Pid, Exception>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let mut opts = self.node.spawn_opts(self.group_leader());
        if link {
            opts = opts.linked_to(self.entry.pid);
        }
        opts.name = name.map(crate::term::Atom::from);
        let prepared = self.node.prepare(opts)?;
        let pid = prepared.entry.pid;
        if link {
            // Linked on both sides before the new process runs.
            self.entry.state().links.insert(pid);
        }
        self.node.start_prepared(prepared, body);
        Ok(pid)
    }

    /// Drops queued messages for which `matches` is true.
    pub(crate) fn flush_matching(&mut self, mut matches: impl FnMut(&Term) -> bool) {
        let before = self.saved.len();
        self.saved.retain(|m| !matches(m));
        let mut dropped = before - self.saved.len();
        while let Some(m) = self.rx.try_recv() {
            if matches(&m) {
                dropped += 1;
            } else {
                self.saved.push_back(m);
            }
        }
        self.entry.queue_len.fetch_sub(dropped, Ordering::Relaxed);
    }

    /// Messages waiting, for `process_info`.
    pub fn message_queue_len(&self) -> usize {
        self.entry.queue_len.load(Ordering::Relaxed)
    }
}

/// `{'DOWN', Ref, process, _, _}` for `reference`.
pub(crate) fn is_down_for(m: &Term, reference: &Reference) -> bool {
    m.as_tuple_n(5)
        .map(|e| e[0].is_atom("DOWN") && e[1].as_reference() == Some(reference))
        .unwrap_or(false)
}

/// `{'EXIT', Pid, Reason}` messages as a trapping process receives them.
pub fn exit_message(m: &Term) -> Option<(&Pid, &Term)> {
    let e = m.as_tuple_n(3)?;
    if !e[0].is_atom("EXIT") {
        return None;
    }
    Some((e[1].as_pid()?, &e[2]))
}

/// The `$ancestors` of a process that `pid`, a process of this node, starts as
/// `proc_lib` does: `pid`, by its registered name if it has one, then its own
/// ancestors (none known for a process gone or elsewhere).
pub(crate) fn ancestors_of(node: &Node, pid: &Pid) -> Vec<Term> {
    let Some(entry) = node.local_entry(pid) else {
        return vec![Term::Pid(*pid)];
    };
    let st = entry.state();
    let starter = st.name.map_or(Term::Pid(*pid), Term::Atom);
    let theirs = st.proc_lib.iter().flat_map(|p| p.ancestors.iter().cloned());
    std::iter::once(starter).chain(theirs).collect()
}
