//! How a process body or a function failed, in the BEAM's three classes.

use crate::term::Elixir;
use crate::term::{atom, tuple, Match, Term, Tuple};
use std::panic::Location;

/// How a function or process body failed, in the BEAM's three classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Exception {
    /// `raise`/`erlang:error`: the process exits with `{Reason, Stacktrace}`.
    ///
    /// The constructors below ([`error`](Self::error), [`raise`](Self::raise), ...) and
    /// `?` on a Rust error record where in the Rust code they were called, as the
    /// stack's one frame: `{Module, Function, Arity, [file: File, line: Line]}`. Who ran
    /// the code names the function when it can (a [`GenServer`](crate::GenServer)'s
    /// callback: its Rust type and `handle_call/3`; a function registered with
    /// [`Node::register_function`](crate::Node::register_function): its module and function);
    /// elsewhere the frame is `{rust, anonymous, 0, Location}`. So a BEAM caller's
    /// `** (ArgumentError) ...` comes with a line such as `src/main.rs:22:
    /// :"parrot::Parrot".handle_call/3`. A panic in a process becomes one of these
    /// too, `{rust_panic, Message}` with the frame where it panicked. Two exceptions made
    /// at different places differ in their stacks: compare their `reason`s.
    Error {
        /// The error reason, e.g. `undef`, `badarg` or an Elixir exception struct.
        reason: Term,
        /// Stack frames `{M, F, ArityOrArgs, Location}`, the innermost first.
        stacktrace: Vec<Term>,
    },
    /// `exit(Reason)`: the process exits with `Reason`.
    Exit(Term),
    /// `throw(Value)` not caught: the process exits with `{{nocatch, Value}, []}`.
    Throw(Term),
}

/// The module and function of a frame that nobody has named yet.
const UNNAMED: (&str, &str) = ("rust", "anonymous");

impl Exception {
    /// `erlang:error(Reason)`, with the frame of the code that called this.
    #[track_caller]
    pub fn error(reason: Term) -> Self {
        Exception::Error {
            reason,
            stacktrace: frame_at(Location::caller()).into_iter().collect(),
        }
    }

    /// An error with no stack frames: what this crate itself raises for the BEAM's
    /// built-in functions, whose frames a caller does not look for in Rust.
    pub(crate) fn bare(reason: Term) -> Self {
        Exception::Error {
            reason,
            stacktrace: Vec::new(),
        }
    }

    /// `badarg` with no stack frames (see [`bare`](Self::bare)).
    pub(crate) fn bare_badarg() -> Self {
        Exception::bare(atom("badarg"))
    }

    /// Names the function of the innermost frame, where the code that raised left it
    /// unnamed: `module`, `function` and `arity` are what ran it.
    pub(crate) fn in_function(mut self, module: &str, function: &str, arity: usize) -> Self {
        if let Exception::Error { stacktrace, .. } = &mut self {
            if let Some(Term::Tuple(Tuple { elements })) = stacktrace.first_mut() {
                if let [m, f, a, _] = elements.as_mut_slice() {
                    if m.as_atom() == Some(UNNAMED.0) && f.as_atom() == Some(UNNAMED.1) {
                        *m = atom(module);
                        *f = atom(function);
                        *a = crate::term::int(arity as i64);
                    }
                }
            }
        }
        self
    }

    /// `exit(Reason)`.
    pub fn exit(reason: Term) -> Self {
        Exception::Exit(reason)
    }

    /// `badarg`, as a BIF called with the wrong arguments raises it.
    ///
    /// Its frame is where it is called from: give it in a closure, `ok_or_else(||
    /// Exception::badarg())`; passed as a function (`ok_or_else(Exception::badarg)`),
    /// the standard library calls it, and it has no frame.
    #[track_caller]
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

    /// An Elixir exception raised with `message`: `%RuntimeError{message: message}`
    /// for `module` `"Elixir.RuntimeError"`, as `raise` makes it.
    #[track_caller]
    pub fn raise(module: &str, message: impl Into<String>) -> Self {
        Exception::error(crate::term::map([
            (atom("__struct__"), atom(module)),
            (atom("__exception__"), atom("true")),
            (atom("message"), crate::term::binary(message.into())),
        ]))
    }

    /// `raise ArgumentError, message`.
    #[track_caller]
    pub fn argument_error(message: impl Into<String>) -> Self {
        Exception::raise("Elixir.ArgumentError", message)
    }

    /// `raise message` (a `RuntimeError`): what any other Rust error becomes.
    #[track_caller]
    pub fn runtime_error(message: impl Into<String>) -> Self {
        Exception::raise("Elixir.RuntimeError", message)
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

/// The frame of Rust code at `location`, unnamed until who ran it names it
/// ([`Exception::in_function`]). None inside the standard library: a constructor passed
/// as a function (`ok_or_else(Exception::badarg)`) is called from there, not from the
/// code that raised.
fn frame_at(location: &'static Location<'static>) -> Option<Term> {
    frame(location.file(), location.line())
}

/// The unnamed frame of Rust code at `file`, `line`; none inside the standard library.
pub(crate) fn frame(file: &str, line: u32) -> Option<Term> {
    if file.starts_with("/rustc/") {
        return None;
    }
    Some(tuple(vec![
        atom(UNNAMED.0),
        atom(UNNAMED.1),
        crate::term::int(0),
        crate::term::list(vec![
            tuple(vec![atom("file"), crate::term::charlist(file)]),
            tuple(vec![atom("line"), crate::term::int(i64::from(line))]),
        ]),
    ]))
}

impl std::fmt::Display for Exception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exception::Error { reason, .. } => write!(f, "error: {}", Elixir(reason)),
            Exception::Exit(reason) => write!(f, "exit: {}", Elixir(reason)),
            Exception::Throw(value) => write!(f, "throw: {}", Elixir(value)),
        }
    }
}

/// A process's own code may end with any error through `?`: `Exception` converts from
/// every [`std::error::Error`] (the conversion is in `otp`, which knows the errors that
/// are exits). So, like `anyhow::Error`, it is not itself an `Error`; `?` still takes it
/// into a `Box<dyn Error>`.
impl From<Exception> for Box<dyn std::error::Error + Send + Sync> {
    fn from(e: Exception) -> Self {
        e.to_string().into()
    }
}

impl From<Exception> for Box<dyn std::error::Error> {
    fn from(e: Exception) -> Self {
        e.to_string().into()
    }
}
