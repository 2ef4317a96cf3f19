//! The shared half of a process, as the node's process table holds it, and how signals
//! (messages, exit signals) reach it.

use super::keys::{OwnMap, OwnSet, RefKey};
use super::Dest;
use crate::term::{atom, tuple, Atom, Match, Pid, Reference, Term};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// A monitor this process holds on another.
#[derive(Debug, Clone)]
pub(crate) struct Monitor {
    pub target: MonitorTarget,
    /// The monitor reference is also an alias of the owner (`monitor/3` with
    /// `{alias, demonitor}`), deactivated when the monitor goes.
    pub alias: bool,
}

/// What a monitor watches.
#[derive(Debug, Clone)]
pub(crate) enum MonitorTarget {
    /// A process or name; `DOWN` names it by [`Dest::down_object`].
    Process(Dest),
    /// The process a `SPAWN_REQUEST` with the `monitor` option creates on `node`; the
    /// monitor reference is the request id (erpc relies on that).
    Spawn { node: Atom },
}

/// What `proc_lib` keeps in the dictionary of a process it starts, and tools read
/// (`:proc_lib.translate_initial_call/1`, observer, crash reports).
#[derive(Debug, Clone)]
pub(crate) struct ProcLib {
    /// `$initial_call`: `{Module, init, 1}` for a GenServer, `{supervisor,
    /// Supervisor.Default, 1}` for a supervisor.
    pub initial_call: (Atom, Atom, usize),
    /// `$ancestors`: the starter, by its registered name if it has one, then the
    /// starter's own ancestors.
    pub ancestors: Vec<Term>,
    /// `$callers` (Elixir's tasks): the process that asked for it, then its callers.
    pub callers: Option<Term>,
    /// What `current_function` shows while it waits: gen_server's loop for a server,
    /// the function a task runs.
    pub current: (Atom, Atom, usize),
}

impl ProcState {
    /// Dead, or ending: an exit signal has ended it and its task has not finished yet.
    /// A link or monitor that comes now finds no process (`noproc`), as the signals that
    /// follow an exit signal find an exiting BEAM process.
    pub(crate) fn gone(&self) -> bool {
        self.dead || self.kill.is_none()
    }

    /// `process_info(Pid, initial_call)`: `{proc_lib, init_p, 5}` for a process
    /// `proc_lib` started, else what it was spawned to run.
    pub(crate) fn shown_initial_call(&self) -> (Atom, Atom, usize) {
        match &self.proc_lib {
            Some(_) => (Atom::from("proc_lib"), Atom::from("init_p"), 5),
            None => self.initial_call,
        }
    }

    /// `process_info(Pid, current_function)`: where a `proc_lib` process waits (see
    /// [`ProcLib::current`]), else its initial call.
    pub(crate) fn current_function(&self) -> (Atom, Atom, usize) {
        self.proc_lib
            .as_ref()
            .map_or(self.initial_call, |p| p.current)
    }

    /// The process dictionary as the BEAM would show it: what `proc_lib` put there,
    /// and the label (`$process_label`); a Rust process keeps nothing else there.
    pub(crate) fn dictionary(&self) -> Vec<Term> {
        let entry = |key: &str, value: Term| tuple(vec![atom(key), value]);
        let mut dictionary = Vec::new();
        if let Some(proc_lib) = &self.proc_lib {
            dictionary.push(entry("$initial_call", mfa_term(proc_lib.initial_call)));
            dictionary.push(entry(
                "$ancestors",
                crate::term::list(proc_lib.ancestors.clone()),
            ));
            if let Some(callers) = &proc_lib.callers {
                dictionary.push(entry("$callers", callers.clone()));
            }
        }
        if let Some(label) = &self.label {
            dictionary.push(entry("$process_label", label.clone()));
        }
        dictionary
    }
}

/// `{Module, Function, Arity}`.
pub(crate) fn mfa_term((m, f, a): (Atom, Atom, usize)) -> Term {
    tuple(vec![
        Term::Atom(m),
        Term::Atom(f),
        crate::term::int(a as i64),
    ])
}

/// Someone watching this process.
#[derive(Debug, Clone)]
pub(crate) struct Watcher {
    pub pid: Pid,
    /// The registered name it monitored us by: the `DOWN` then names us `{Name, Node}`
    /// (else by our pid), and a remote `MONITOR_P_EXIT`'s FromProc is the name.
    pub by_name: Option<Atom>,
}

/// Mutable state of a process, behind one short-held lock.
#[derive(Debug)]
pub(crate) struct ProcState {
    pub links: HashSet<Pid>,
    /// By the watcher's reference (made by whichever node the watcher is on).
    pub monitored_by: HashMap<Reference, Watcher>,
    /// By reference: every monitor a process holds was made here.
    pub monitors: OwnMap<RefKey, Monitor>,
    pub trap_exit: bool,
    pub name: Option<Atom>,
    pub group_leader: Pid,
    pub aliases: OwnSet<RefKey>,
    /// The aliases made with `alias([priority])` (a subset of `aliases`).
    pub priority_aliases: OwnSet<RefKey>,
    pub initial_call: (Atom, Atom, usize),
    /// `proc_lib:set_label/1` (OTP 27), what tools show of the process.
    pub label: Option<crate::term::Term>,
    /// Started as `proc_lib` starts a BEAM process (a GenServer, a supervisor): what
    /// its dictionary holds of that.
    pub proc_lib: Option<Box<ProcLib>>,
    /// The running timers that send to this process: they go when it ends.
    pub timers: Vec<RefKey>,
    /// Spawn requests whose caller gave up (an `erpc_call` timed out or dropped): their
    /// `SPAWN_REPLY` is dropped when it comes, as OTP drops an abandoned request's.
    pub abandoned_spawns: Vec<RefKey>,
    /// `:sys.trace(pid, true)`: a gen_server prints its events.
    pub sys_trace: bool,
    /// It watched other nodes (`monitor_node`, `monitor_nodes`): its end removes that.
    pub watches_nodes: bool,
    pub dead: bool,
    kill: Option<oneshot::Sender<Term>>,
    /// Told the exit reason when the process ends (`Node::run_process`'s waiter, and
    /// whoever waits in `Node::ended`).
    pub exit_to: Vec<oneshot::Sender<Term>>,
}

/// The part of a process that others signal: its mailbox and its state.
#[derive(Debug)]
pub(crate) struct ProcEntry {
    pub pid: Pid,
    mailbox: super::mailbox::Sender,
    /// Messages sent and not yet received, for `process_info(Pid, message_queue_len)`.
    pub queue_len: AtomicUsize,
    pub state: Mutex<ProcState>,
    /// Messages accepted as priority messages (EEP 76), oldest first: received before
    /// every ordinary message. Only a process with a priority alias gets any.
    pub priority: Mutex<std::collections::VecDeque<Term>>,
    /// Wakes the process's receive when a priority message arrives.
    pub priority_ready: tokio::sync::Notify,
    /// An exit signal ended it (`kill`, or a reason it does not trap): its task ends
    /// at its next await. Code still running until then (a callback that blocks its
    /// thread) sends nothing more, as a killed BEAM process sends nothing.
    exiting: AtomicBool,
    /// It waits for a busy connection to drain (`process_info(Pid, status)` is
    /// `suspended`, as a BEAM process's that sent to a busy distribution port).
    pub suspended: AtomicBool,
}

/// How a process starts out.
#[derive(Debug, Clone)]
pub(crate) struct SpawnOpts {
    pub group_leader: Pid,
    pub link: Option<Pid>,
    /// `(watcher, reference)`: a monitor set up before the process runs.
    pub monitored_by: Option<(Pid, Reference)>,
    pub name: Option<Atom>,
    pub initial_call: (Atom, Atom, usize),
}

/// A process whose entry exists (so its pid can be handed out) but whose body has not
/// started yet: `SPAWN_REPLY` must reach the spawner before the new process can signal it.
pub(crate) struct Prepared {
    pub entry: std::sync::Arc<ProcEntry>,
    pub rx: super::Mailbox,
    pub kill_rx: oneshot::Receiver<Term>,
}

/// What an exit signal did to its target.
#[derive(Debug, PartialEq)]
pub(crate) enum ExitOutcome {
    Ignored,
    Message,
    /// It ends, with this reason.
    Killed(Term),
}

impl ProcEntry {
    pub(crate) fn prepare(pid: Pid, opts: &SpawnOpts) -> Prepared {
        let (tx, rx) = super::mailbox::mailbox();
        let (kill_tx, kill_rx) = oneshot::channel();
        let entry = ProcEntry {
            pid,
            mailbox: tx,
            queue_len: AtomicUsize::new(0),
            priority: Mutex::new(std::collections::VecDeque::new()),
            priority_ready: tokio::sync::Notify::new(),
            exiting: AtomicBool::new(false),
            suspended: AtomicBool::new(false),
            state: Mutex::new(ProcState {
                links: opts.link.iter().cloned().collect(),
                monitored_by: HashMap::new(),
                monitors: OwnMap::default(),
                trap_exit: false,
                name: opts.name,
                group_leader: opts.group_leader,
                aliases: OwnSet::default(),
                priority_aliases: OwnSet::default(),
                initial_call: opts.initial_call,
                label: None,
                proc_lib: None,
                timers: Vec::new(),
                abandoned_spawns: Vec::new(),
                sys_trace: false,
                watches_nodes: false,
                dead: false,
                kill: Some(kill_tx),
                exit_to: Vec::new(),
            }),
        };
        if let Some((watcher, reference)) = &opts.monitored_by {
            entry.state().monitored_by.insert(
                reference.clone(),
                Watcher {
                    pid: *watcher,
                    by_name: None,
                },
            );
        }
        Prepared {
            entry: std::sync::Arc::new(entry),
            rx,
            kill_rx,
        }
    }

    /// The state lock. A panic while holding it can only come from a bug in this crate;
    /// we keep serving with the state as it was rather than poison every later signal.
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, ProcState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a message in the mailbox (dropped if the process is gone, as on the BEAM).
    pub(crate) fn deliver(&self, message: Term) {
        if self.mailbox.send(message) {
            self.queue_len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Puts a message ahead of the ordinary ones, after earlier priority messages (a
    /// priority message sent through one of this process's priority aliases).
    pub(crate) fn deliver_priority(&self, message: Term) {
        if self.state().dead {
            return;
        }
        self.priority
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(message);
        self.queue_len.fetch_add(1, Ordering::Relaxed);
        self.priority_ready.notify_one();
    }

    /// Delivers an exit signal from `from` (`erts_proc_sig_send_exit` semantics):
    /// `linked` for the exit of a linked process (dropped when no link exists any more),
    /// otherwise `exit/2`, where `kill` cannot be trapped; with `priority`, the `EXIT`
    /// message a trapping process gets is a priority message (`exit/3` through a
    /// priority alias). Through [`Node::exit_signal_to`](super::Node::exit_signal_to).
    pub(crate) fn exit_signal_as(
        &self,
        from: &Pid,
        reason: Term,
        linked: bool,
        priority: bool,
    ) -> ExitOutcome {
        let mut st = self.state();
        if st.dead {
            return ExitOutcome::Ignored;
        }
        if linked && !st.links.remove(from) {
            return ExitOutcome::Ignored;
        }
        if !linked && reason.is_atom("kill") {
            self.end(&mut st, atom("killed"));
            return ExitOutcome::Killed(atom("killed"));
        }
        if st.trap_exit {
            drop(st);
            let message = tuple(vec![atom("EXIT"), Term::Pid(*from), reason]);
            if priority {
                self.deliver_priority(message);
            } else {
                self.deliver(message);
            }
            return ExitOutcome::Message;
        }
        if reason.is_atom("normal") && from != &self.pid {
            return ExitOutcome::Ignored;
        }
        self.end(&mut st, reason.clone());
        ExitOutcome::Killed(reason)
    }

    /// Ends the process with `reason` (once: the first reason wins).
    fn end(&self, st: &mut ProcState, reason: Term) {
        if let Some(kill) = st.kill.take() {
            self.exiting.store(true, Ordering::Relaxed);
            let _ = kill.send(reason);
        }
    }

    /// An exit signal has ended the process while its code still runs.
    pub(crate) fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::Relaxed)
    }
}

impl ProcEntry {
    /// Ends the process with `reason`, trapping exits or not (the node is stopping).
    pub(crate) fn halt(&self, reason: Term) {
        self.end(&mut self.state(), reason);
    }
}

impl SpawnOpts {
    /// The same options with a link to `pid` set up before the process runs.
    pub(crate) fn linked_to(mut self, pid: Pid) -> Self {
        self.link = Some(pid);
        self
    }
}

impl Prepared {
    pub(crate) fn pid(&self) -> &Pid {
        &self.entry.pid
    }
}
