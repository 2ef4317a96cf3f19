//! The node's process table: pids, registered names and aliases, and the life of a
//! process from its entry to its exit (`erts_do_exit_process`).

use super::entry::{Prepared, ProcEntry, SpawnOpts};
use super::keys::pid_key;
use super::names::LastName;
use super::{Exception, Mailbox, Node};
use crate::sync::lock;
use crate::term::{atom, tuple, Atom, Pid, Reference, Term};
use futures::FutureExt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Node {
    /// The pid registered as `name` here.
    pub fn whereis(&self, name: &str) -> Option<Pid> {
        let name = Atom::existing(name)?;
        self.0.names.get(&name).map(|e| e.pid)
    }

    /// Whether a local process is alive.
    pub fn is_alive(&self, pid: &Pid) -> bool {
        self.local_entry(pid).is_some()
    }

    /// Resolves when the local process `pid` has ended (at once if it has), its name
    /// and aliases free, as its `run_process` waiter is told.
    pub(crate) async fn ended(&self, pid: &Pid) {
        let waiter = self.local_entry(pid).and_then(|entry| {
            let mut st = entry.state();
            if st.dead {
                return None;
            }
            let (told, waiter) = tokio::sync::oneshot::channel();
            st.exit_to.push(told);
            Some(waiter)
        });
        if let Some(waiter) = waiter {
            let _ = waiter.await;
        }
    }

    fn new_pid(&self) -> Pid {
        loop {
            let n = self.0.next_pid.fetch_add(1, Ordering::Relaxed);
            // Like the BEAM: 15 bits of id, 13 of serial, so peers without V4_NC cope.
            let pid = Pid::new(
                self.0.name.name(),
                (n & 0x7fff) as u32,
                ((n >> 15) & 0x1fff) as u32,
                self.0.creation,
            );
            if !lock(&self.0.procs).contains_key(&pid_key(&pid)) {
                return pid;
            }
        }
    }

    pub(crate) fn spawn_opts(&self, group_leader: Pid) -> SpawnOpts {
        SpawnOpts {
            group_leader,
            link: None,
            monitored_by: None,
            name: None,
            initial_call: (Atom::from("erlang"), Atom::from("apply"), 2),
        }
    }

    /// Creates the entry of a new process so its pid exists; `run_prepared` runs it.
    /// Panics, before anything is made, outside a tokio runtime, where the process
    /// could not run (a call from a plain thread must enter the node's runtime first).
    #[track_caller]
    pub(crate) fn prepare(&self, opts: SpawnOpts) -> Result<Prepared, Exception> {
        assert!(
            tokio::runtime::Handle::try_current().is_ok(),
            "cnode: a node's processes run on a tokio runtime: call this from a task of \
             one, or from a thread that entered it (`Handle::enter`)"
        );
        let pid = self.new_pid();
        let prepared = ProcEntry::prepare(pid, &opts);
        if let Some(name) = &opts.name {
            if !self.0.names.insert_new(*name, &prepared.entry) {
                return Err(Exception::bare_badarg());
            }
        }
        lock(&self.0.procs).insert(pid_key(&pid), prepared.entry.clone());
        Ok(prepared)
    }

    /// Runs a prepared process: `body` gets its node, entry and mailbox; when it ends
    /// (returns, fails, panics or is killed) its links and monitors fire.
    pub(crate) fn run_prepared<F, Fut>(&self, prepared: Prepared, body: F) -> Pid
    where
        F: FnOnce(Node, Arc<ProcEntry>, Mailbox) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let Prepared { entry, rx, kill_rx } = prepared;
        let pid = entry.pid;
        let node = self.clone();
        let run = body(node.clone(), entry.clone(), rx);
        tokio::spawn(async move {
            // On a stopped node nothing runs (one prepared before the stop began is
            // among those the stop ends).
            let reason = if node.is_stopping() {
                atom("shutdown")
            } else {
                tokio::select! {
                biased;
                killed = kill_rx => killed.unwrap_or_else(|_| atom("killed")),
                // Not `caught`: its per-poll marking costs the hot paths (a quarter of
                // the 200-element calls with 64 in flight, `benches/dist.rs`, in
                // alternated runs); the callbacks and functions a process runs are
                // `caught` each, so their panics are logged as process code. A panic
                // in a body's own code is still this process's exit.
                result = std::panic::AssertUnwindSafe(run).catch_unwind() => match result {
                    Ok(Ok(())) => atom("normal"),
                    Ok(Err(Exception::Exit(reason))) => reason,
                    Ok(Err(e)) => node.report_crash(&entry, e.exit_reason()),
                    Err(panic) => node.report_crash(&entry, panic_exception(panic).exit_reason()),
                },
                }
            };
            node.process_exited(&entry, reason);
        });
        pid
    }

    /// A process died of an error (a raise, throw or panic, not `exit/1`): reported as the
    /// BEAM reports it; returns its exit reason.
    fn report_crash(&self, entry: &ProcEntry, reason: Term) -> Term {
        let group_leader = entry.state().group_leader;
        (self.0.hooks.crashed)(self, &entry.pid, &group_leader, &reason);
        reason
    }

    /// How many processes the node runs.
    pub(crate) fn process_count(&self) -> usize {
        lock(&self.0.procs).len()
    }

    /// Every process of this node.
    pub(crate) fn all_entries(&self) -> Vec<Arc<ProcEntry>> {
        lock(&self.0.procs).values().cloned().collect()
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

    pub(crate) fn registered_entry(&self, name: &Atom) -> Option<Arc<ProcEntry>> {
        // A name holds its process's entry: one lookup for each message sent to it.
        self.0.names.get(name)
    }

    /// [`registered_entry`](Self::registered_entry) for a connection's reader, which
    /// keeps the last name its messages went to in `last`.
    pub(crate) fn registered_entry_through<'a>(
        &self,
        name: &Atom,
        last: &'a mut LastName,
    ) -> Option<&'a ProcEntry> {
        self.0.names.get_through(name, last)
    }

    pub(crate) fn register_name(
        &self,
        name: &str,
        entry: &Arc<ProcEntry>,
    ) -> Result<(), Exception> {
        let name = Atom::from(name);
        let mut st = entry.state();
        if st.name.is_some() || st.dead || !self.0.names.insert_new(name, entry) {
            return Err(Exception::bare_badarg());
        }
        st.name = Some(name);
        Ok(())
    }

    /// `erlang:unregister/1`: `false` when nobody here is registered as `name`.
    pub(crate) fn unregister_name(&self, name: &str) -> bool {
        let Some(pid) = self.whereis(name) else {
            return false;
        };
        let Some(entry) = self.local_entry(&pid) else {
            return false;
        };
        let name = Atom::from(name);
        let mut st = entry.state();
        if st.name != Some(name) {
            return false;
        }
        st.name = None;
        self.0.names.remove_if_held(&name, &pid);
        true
    }

    /// The names registered here (`erlang:registered/0`).
    pub(crate) fn registered_names(&self) -> Vec<Atom> {
        self.0.names.keys()
    }

    /// The pids of the processes alive here (`erlang:processes/0`), in the order they
    /// were made.
    pub(crate) fn pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = lock(&self.0.procs).values().map(|e| e.pid).collect();
        pids.sort_by_key(|p| (p.serial, p.id));
        pids
    }

    /// All local process entries (for node-down handling).
    pub(super) fn entries(&self) -> Vec<Arc<ProcEntry>> {
        lock(&self.0.procs).values().cloned().collect()
    }

    /// A process ended with `reason`: unregister it and fire its links and monitors
    /// (`erts_do_exit_process` / `erts_continue_exit_process`).
    pub(crate) fn process_exited(&self, entry: &Arc<ProcEntry>, reason: Term) {
        let (links, watchers, monitors, name, aliases, timers, watched_nodes, waiters) = {
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
                std::mem::take(&mut st.timers),
                st.watches_nodes,
                std::mem::take(&mut st.exit_to),
            )
        };
        self.cancel_timers_of(timers);
        if watched_nodes {
            self.forget_node_watcher(entry);
        }
        let pid = &entry.pid;
        lock(&self.0.procs).remove(&pid_key(pid));
        if let Some(name) = &name {
            self.0.names.remove_if_held(name, pid);
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
        // Its waiters hear of its end once its name and aliases are free.
        for waiter in waiters {
            let _ = waiter.send(reason.clone());
        }
        // Other nodes' signals first: a local process woken by this end (one that
        // waits for it to stop the node, say) could otherwise close the connections
        // before they are queued, and a peer would see `noconnection`.
        // The monitors fire in the order they were made, other nodes' first (the hash
        // map's order changed from run to run, where a BEAM node's is the same each time).
        let remote = |p: &Pid| !self.is_local(&p.node);
        let mut watchers: Vec<_> = watchers.into_iter().collect();
        if watchers.len() > 1 {
            watchers.sort_by(|(a, x), (b, y)| {
                remote(&y.pid)
                    .cmp(&remote(&x.pid))
                    .then_with(|| made_order(a, b))
            });
        }
        let mut watchers = watchers.into_iter().peekable();
        for linked in links.iter().filter(|p| remote(p)) {
            self.send_exit_signal(pid, linked, reason.clone(), true);
        }
        while let Some((reference, watcher)) = watchers.next_if(|(_, w)| remote(&w.pid)) {
            self.send_down(pid, watcher, reference, reason.clone());
        }
        for linked in links.iter().filter(|p| !remote(p)) {
            self.send_exit_signal(pid, linked, reason.clone(), true);
        }
        for (reference, watcher) in watchers {
            self.send_down(pid, watcher, reference, reason.clone());
        }
        for (key, monitor) in monitors {
            self.drop_monitor_at_target(pid, self.own_ref(key), monitor.target);
        }
    }
}

/// What orders the references one node made by when it made them: its node, then its
/// words from the last (a BEAM's, and this node's, count up from the first word, 18
/// bits, into the next ones).
fn made_order(a: &crate::term::Reference, b: &crate::term::Reference) -> std::cmp::Ordering {
    (a.node.as_str().cmp(b.node.as_str())).then_with(|| a.id.iter().rev().cmp(b.id.iter().rev()))
}

/// Logs the panic an rpc or erpc answer carries to its caller, where no crash report
/// says it (a raise there is the caller's to report; a panic is a bug here): one line,
/// with the process and where it panicked.
pub(crate) fn log_answered_panic(pid: &Pid, e: &Exception) {
    use super::exception::frame_place;
    use crate::term::Match;
    let Exception::Error { reason, stacktrace } = e else {
        return;
    };
    let Some([tag, Term::Binary(message)]) = reason.as_tuple_n(2) else {
        return;
    };
    if !tag.is_atom("rust_panic") {
        return;
    }
    let at = match stacktrace.first().map(frame_place) {
        Some((Some(file), Some(line))) => format!(" at {file}:{line}"),
        _ => String::new(),
    };
    let message = String::from_utf8_lossy(&message.bytes);
    tracing::error!("process {pid} panicked{at}: {message}");
}

/// A panic in a function becomes an error exit of its process, as a raise does on the
/// BEAM: reason `{rust_panic, Message}`, with the frame of where it panicked when
/// [`record_panic_locations`] saw it.
fn panic_exception(panic: Box<dyn std::any::Any + Send>) -> Exception {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    let at = PANICKED_AT.with(|at| at.take());
    Exception::Error {
        reason: tuple(vec![atom("rust_panic"), crate::term::binary(text)]),
        stacktrace: at
            .and_then(|(file, line)| super::exception::frame(&file, line))
            .into_iter()
            .collect(),
    }
}

/// The result of `body`, a panic in it being an error exit as a raise is
/// ([`panic_exception`]): for code that runs in a process and must fail as a BEAM
/// function does, a registered function or a GenServer callback.
pub(crate) async fn caught<T>(
    pid: Pid,
    body: impl Future<Output = Result<T, Exception>>,
) -> Result<T, Exception> {
    let mut body = std::pin::pin!(body);
    // Polled as process code: a panic in it is that process's exit, not the program's.
    let in_process = std::future::poll_fn(|cx| {
        let _code = InProcess::enter(pid);
        body.as_mut().poll(cx)
    });
    match std::panic::AssertUnwindSafe(in_process)
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(panic) => Err(panic_exception(panic)),
    }
}

/// While process code runs on this thread (nested calls counted), and whose.
struct InProcess(Option<Pid>);

impl InProcess {
    fn enter(pid: Pid) -> Self {
        IN_PROCESS.with(|depth| depth.set(depth.get() + 1));
        InProcess(RUNNING.with(|running| running.replace(Some(pid))))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        IN_PROCESS.with(|depth| depth.set(depth.get().saturating_sub(1)));
        RUNNING.with(|running| running.set(self.0));
    }
}

thread_local! {
    /// How deep in process code this thread is (see [`caught`]).
    static IN_PROCESS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// The process whose code this thread runs, for the line its panic is logged with.
    static RUNNING: std::cell::Cell<Option<Pid>> = const { std::cell::Cell::new(None) };
    /// Where this thread last panicked (file, line), until its process's exit takes it.
    static PANICKED_AT: std::cell::Cell<Option<(String, u32)>> = const { std::cell::Cell::new(None) };
}

/// Installs, once per program, a panic hook that notes where each panic happened for
/// [`panic_exception`] (the unwinding that follows stays on the panicking thread, up to
/// the process's `catch_unwind`). A panic in process code ends there, as the process's
/// exit (logged at debug here; its crash report or [`log_answered_panic`] says it); any
/// other (the program's own) goes on to the hook that was there, printed or handled as
/// the program set it up. A hook the program sets later replaces this one; its
/// processes' panics then come without a frame, and printed.
pub(crate) fn record_panic_locations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(location) = info.location() {
                let at = (location.file().to_owned(), location.line());
                PANICKED_AT.with(|cell| cell.set(Some(at)));
            }
            // A panic in process code is that process's exit, `{rust_panic, Message}`
            // with where it happened: logged as one line, as the node logs the rest,
            // without the backtrace the program's own panics may take (10 to 100 ms).
            if IN_PROCESS.with(|depth| depth.get()) > 0 {
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                let at = info.location().map_or_else(String::new, |l| {
                    format!(" at {}:{}:{}", l.file(), l.line(), l.column())
                });
                // At debug: the process's exit is reported as the BEAM reports a crash
                // (`GenServer ... terminating`, `Error in process ...`), once; an
                // answer that carries the panic to a caller is logged where it is sent
                // ([`log_answered_panic`]).
                match RUNNING.with(|running| running.get()) {
                    Some(pid) => tracing::debug!("process {pid} panicked{at}: {message}"),
                    None => tracing::debug!("process code panicked{at}: {message}"),
                }
                return;
            }
            previous(info);
        }));
    });
}
