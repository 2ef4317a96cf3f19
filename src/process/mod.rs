//! Processes: pids with mailboxes, links, monitors, aliases, exit signals and group
//! leaders, with the BEAM's semantics.
//!
//! Each process is a tokio task that owns a [`Process`] handle: its mailbox (with
//! selective receive) and the operations a BEAM process has (`send`, `link`, `monitor`,
//! `trap_exit`, `exit`, GenServer-style `call`, I/O through its group leader). The node's
//! process table holds the shared half (`ProcEntry`, in `table.rs`) that other processes and remote
//! nodes signal through. A process ends when its body returns (`normal`), returns an
//! [`Exception`], panics (an error exit of that one process), or is killed by an exit
//! signal it does not trap; then its links and monitors fire as on the BEAM.

pub(crate) mod handle;
pub(crate) mod table;

pub use handle::Process;
pub(crate) use table::{Monitor, MonitorTarget, Prepared, ProcEntry, SpawnOpts};

use crate::term::{atom, tuple, Atom, Pid, Reference, Term};

/// Where a message goes: what `send/2` accepts on the BEAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A process, local or remote.
    Pid(Pid),
    /// A name registered on this node.
    Name(Atom),
    /// `{Name, Node}`: a name registered on a node (this one or another).
    RemoteName(Atom, Atom),
    /// A process alias (OTP 24+).
    Alias(Reference),
}

impl From<Pid> for Dest {
    fn from(p: Pid) -> Self {
        Dest::Pid(p)
    }
}
impl From<&Pid> for Dest {
    fn from(p: &Pid) -> Self {
        Dest::Pid(p.clone())
    }
}
impl From<&str> for Dest {
    fn from(name: &str) -> Self {
        Dest::Name(Atom::from(name))
    }
}
impl From<(&str, &str)> for Dest {
    fn from((name, node): (&str, &str)) -> Self {
        Dest::RemoteName(Atom::from(name), Atom::from(node))
    }
}
impl From<Reference> for Dest {
    fn from(r: Reference) -> Self {
        Dest::Alias(r)
    }
}

impl Dest {
    /// The term a `DOWN` message names the monitored process by: the pid, or
    /// `{Name, Node}` for a monitor by name.
    pub(crate) fn down_object(&self, local_node: &Atom) -> Term {
        match self {
            Dest::Pid(p) => Term::Pid(p.clone()),
            Dest::Name(n) => tuple(vec![Term::Atom(n.clone()), Term::Atom(local_node.clone())]),
            Dest::RemoteName(n, node) => {
                tuple(vec![Term::Atom(n.clone()), Term::Atom(node.clone())])
            }
            Dest::Alias(r) => Term::Reference(Box::new(r.clone())),
        }
    }
}

/// A message to send: a [`Term`] given away, or a `&Term` lent. Either is written to the
/// connection straight from the sender's term, so a process that sends the same term
/// again and again (a request, a broadcast) lends it instead of cloning it each time; a
/// process on this node gets its own copy of a lent term, as every process on the BEAM
/// gets its own copy of a message.
///
/// ```no_run
/// # async fn example(p: &mut cnode::Process) -> Result<(), cnode::CallError> {
/// use cnode::term::{int, list};
/// let numbers = list((1..=200).map(int).collect());
/// for _ in 0..1000 {
///     p.call(("echo", "moebi@localhost"), &numbers, None).await?;
/// }
/// p.send(("echo", "moebi@localhost"), numbers); // given away: no copy at all
/// # Ok(())
/// # }
/// ```
pub trait IntoMessage: sealed::Message {}

impl IntoMessage for Term {}
impl IntoMessage for &Term {}

/// What the node needs of an [`IntoMessage`] (sealed: only `Term` and `&Term` are
/// messages).
mod sealed {
    use crate::term::Term;

    pub trait Message {
        /// The term, to write.
        fn as_term(&self) -> &Term;
        /// The term, to deliver to a process here (a lent one is cloned).
        fn into_term(self) -> Term;
        /// Done with after writing: a term given away is dropped.
        fn spent(self);
    }

    impl Message for Term {
        fn as_term(&self) -> &Term {
            self
        }
        fn into_term(self) -> Term {
            self
        }
        fn spent(self) {
            crate::term::discard(self)
        }
    }

    impl Message for &Term {
        fn as_term(&self) -> &Term {
            self
        }
        fn into_term(self) -> Term {
            self.clone()
        }
        fn spent(self) {}
    }
}

/// How a function or process body failed, in the BEAM's three classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Exception {
    /// `raise`/`erlang:error`: the process exits with `{Reason, Stacktrace}`.
    Error {
        /// The error reason, e.g. `undef`, `badarg` or an Elixir exception struct.
        reason: Term,
        /// Stack frames `{M, F, ArityOrArgs, Location}`.
        stacktrace: Vec<Term>,
    },
    /// `exit(Reason)`: the process exits with `Reason`.
    Exit(Term),
    /// `throw(Value)` not caught: the process exits with `{{nocatch, Value}, []}`.
    Throw(Term),
}

impl Exception {
    /// An error with no stack frames.
    pub fn error(reason: Term) -> Self {
        Exception::Error {
            reason,
            stacktrace: Vec::new(),
        }
    }

    /// `exit(Reason)`.
    pub fn exit(reason: Term) -> Self {
        Exception::Exit(reason)
    }

    /// `badarg`, as a BIF called with the wrong arguments raises it.
    pub fn badarg() -> Self {
        Exception::error(atom("badarg"))
    }

    /// `{undef, [{M, F, Args, []}]}`: what calling a function nobody registered raises.
    pub fn undef(module: &str, function: &str, args: Vec<Term>) -> Self {
        Exception::Error {
            reason: atom("undef"),
            stacktrace: vec![tuple(vec![
                atom(module),
                atom(function),
                crate::term::list(args),
                crate::term::nil(),
            ])],
        }
    }

    /// The exit reason of a process that ends with this exception.
    pub fn exit_reason(&self) -> Term {
        match self {
            Exception::Error { reason, stacktrace } => {
                tuple(vec![reason.clone(), crate::term::list(stacktrace.clone())])
            }
            Exception::Exit(reason) => reason.clone(),
            Exception::Throw(value) => tuple(vec![
                tuple(vec![atom("nocatch"), value.clone()]),
                crate::term::nil(),
            ]),
        }
    }
}

impl std::fmt::Display for Exception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exception::Error { reason, .. } => write!(f, "error: {reason}"),
            Exception::Exit(reason) => write!(f, "exit: {reason}"),
            Exception::Throw(value) => write!(f, "throw: {value}"),
        }
    }
}

impl std::error::Error for Exception {}
