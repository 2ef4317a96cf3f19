//! How a process body or a function failed, in the BEAM's three classes.

use crate::term::Elixir;
use crate::term::{atom, tuple, Term};

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

    /// An Elixir exception raised with `message`: `%RuntimeError{message: message}`
    /// for `module` `"Elixir.RuntimeError"`, as `raise` makes it.
    pub fn raise(module: &str, message: impl Into<String>) -> Self {
        Exception::error(crate::term::map([
            (atom("__struct__"), atom(module)),
            (atom("__exception__"), atom("true")),
            (atom("message"), crate::term::binary(message.into())),
        ]))
    }

    /// `raise ArgumentError, message`.
    pub fn argument_error(message: impl Into<String>) -> Self {
        Exception::raise("Elixir.ArgumentError", message)
    }

    /// `raise message` (a `RuntimeError`): what any other Rust error becomes.
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
