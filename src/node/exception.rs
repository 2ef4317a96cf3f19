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

    /// Names the function of the innermost frame of Rust code, where the code that
    /// raised left it unnamed: `module`, `function` and `arity` are what ran it.
    pub(crate) fn in_function(mut self, module: &str, function: &str, arity: usize) -> Self {
        if let Exception::Error { stacktrace, .. } = &mut self {
            // The first frame of Rust code, after those of the BIFs it called (a failed
            // `register/2` puts its own first).
            for frame in stacktrace.iter_mut() {
                let Term::Tuple(Tuple { elements }) = frame else {
                    continue;
                };
                if let [m, f, a, _] = elements.as_mut_slice() {
                    if m.as_atom() == Some(UNNAMED.0) && f.as_atom() == Some(UNNAMED.1) {
                        *m = atom(module);
                        *f = atom(function);
                        *a = crate::term::int(arity as i64);
                        break;
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
        Exception::error(exception_struct(module, message.into()))
    }

    /// `raise` of a `RuntimeError` in code the program did not write (a callback's
    /// default, as `use GenServer` puts it in the module): its frame has no file and
    /// line, only the function that whoever runs it names.
    pub(crate) fn runtime_error_unplaced(message: String) -> Self {
        Exception::Error {
            reason: exception_struct("Elixir.RuntimeError", message),
            stacktrace: vec![tuple(vec![
                atom(UNNAMED.0),
                atom(UNNAMED.1),
                crate::term::int(0),
                crate::term::nil(),
            ])],
        }
    }

    /// `function_clause`: what an Elixir function raises when no clause matches its
    /// arguments. Returned by a GenServer's `handle_call` for a request it does not
    /// know, the caller sees what an Elixir server without a matching clause gives:
    /// `** (FunctionClauseError) no function clause matching in
    /// Inventory.handle_call/3` (the frame named after the server's
    /// [`module`](crate::GenServer::module) and the callback).
    #[track_caller]
    pub fn function_clause() -> Self {
        Exception::error(atom("function_clause"))
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
/// `%Module{message: message}`, an Elixir exception.
fn exception_struct(module: &str, message: String) -> Term {
    crate::term::map([
        (atom("__struct__"), atom(module)),
        (atom("__exception__"), atom("true")),
        (atom("message"), crate::term::binary(message)),
    ])
}

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
        location(file, i64::from(line)),
    ]))
}

/// A frame's location, `[file: File, line: Line]`.
pub(crate) fn location(file: &str, line: i64) -> Term {
    crate::term::list(vec![
        tuple(vec![atom("file"), crate::term::charlist(file)]),
        tuple(vec![atom("line"), crate::term::int(line)]),
    ])
}

/// The file and line of a frame `{M, F, A, Location}`, where its location has them.
pub(crate) fn frame_place(frame: &Term) -> (Option<String>, Option<i64>) {
    let Some([.., location]) = frame.as_tuple_n(4) else {
        return (None, None);
    };
    let get = |key: &str| {
        location
            .as_list()?
            .iter()
            .find_map(|kv| match kv.as_tuple_n(2) {
                Some([k, v]) if k.as_atom() == Some(key) => Some(v.clone()),
                _ => None,
            })
    };
    let file = get("file").and_then(|f| crate::term::chardata_to_string(&f));
    (file, get("line").and_then(|l| l.as_int()))
}

impl Exception {
    /// The line Elixir prints for it, as iex does: `** (ArgumentError) message` for an
    /// Elixir exception, Erlang errors as `Exception.normalize/3` makes them (`badarg`:
    /// `** (ArgumentError) argument error`, `undef`: `** (UndefinedFunctionError) ...`),
    /// `** (ErlangError) Erlang error: ...` for the others, `** (exit) ...` with the
    /// reason as [`format_exit`](Self::format_exit) prints it, `** (throw) ...`.
    pub fn banner(&self) -> String {
        let (reason, stacktrace) = match self {
            Exception::Error { reason, stacktrace } => (reason, stacktrace),
            Exception::Exit(reason) => return format!("** (exit) {}", Self::format_exit(reason)),
            Exception::Throw(value) => return format!("** (throw) {}", Elixir(value)),
        };
        raised_banner(reason, stacktrace)
    }

    /// As Elixir's logger reports a `gen_server` that ends with this exception (its
    /// `format_reason`): an error that is an Elixir exception, or an Erlang error that
    /// stands for one, as [`format`](Self::format) prints it; any other reason
    /// `** (stop) ` and the reason as [`format_exit`](Self::format_exit) prints it, then
    /// the frames.
    pub(crate) fn format_stop(&self) -> String {
        let nocatch;
        let (reason, stacktrace) = match self {
            Exception::Error { reason, stacktrace } => (reason, stacktrace.as_slice()),
            // An exit with `{reason, stacktrace}` is reported as that error.
            Exception::Exit(reason) => match reason.as_tuple_n(2) {
                Some([error, Term::List(stack)]) if is_stacktrace(&stack.elements) => {
                    (error, stack.elements.as_slice())
                }
                _ => return format!("** (stop) {}", Self::format_exit(reason)),
            },
            Exception::Throw(value) => {
                nocatch = tuple(vec![atom("nocatch"), value.clone()]);
                (&nocatch, &[][..])
            }
        };
        let banner = error_banner(reason, stacktrace)
            .unwrap_or_else(|| format!("** (stop) {}", Self::format_exit(reason)));
        banner + &frame_lines(stacktrace, "\n    ")
    }

    /// [`format_stop`](Self::format_stop) (`with_frames`) or [`format`](Self::format)
    /// for a log line: a reason too large to print whole (over 4096 elements, or 64
    /// bytes of a binary each) is printed cut after 8 KiB, as Elixir's logger cuts what
    /// it prints, so that what a peer sent cannot make megabytes of log.
    pub(crate) fn format_logged(&self, with_frames: bool) -> String {
        let (what, frames) = match self {
            Exception::Error { reason, stacktrace } => (reason, stacktrace.as_slice()),
            Exception::Exit(reason) | Exception::Throw(reason) => (reason, &[][..]),
        };
        if crate::term::is_small(what, LOGGED_UNITS) {
            return if with_frames {
                self.format_stop()
            } else {
                self.format()
            };
        }
        let cut = crate::term::truncated(what, LOGGED_CHARS);
        match self {
            Exception::Error { .. } => {
                format!("** (ErlangError) Erlang error: {cut}") + &frame_lines(frames, "\n    ")
            }
            Exception::Exit(_) if with_frames => format!("** (stop) {cut}"),
            Exception::Exit(_) => format!("** (exit) {cut}"),
            Exception::Throw(_) if with_frames => format!("** (stop) {{:nocatch, {cut}}}"),
            Exception::Throw(_) => format!("** (throw) {cut}"),
        }
    }

    /// An exit reason as Elixir's `Exception.format_exit/1` prints it (and iex after
    /// `** (exit) `): `normal`, `no connection to alex@localhost`, `exited in:
    /// GenServer.call(...)` then `** (EXIT) ` and the reason it wraps, an `{exception,
    /// stacktrace}` as `an exception was raised:` and the exception; others inspected.
    pub fn format_exit(reason: &Term) -> String {
        format_exit(reason, "\n    ")
    }

    /// As Elixir prints it: the [`banner`](Self::banner), then a line per stack frame
    /// (`    src/main.rs:22: :"parrot::Parrot".handle_call/3`).
    pub fn format(&self) -> String {
        match self {
            Exception::Error { stacktrace, .. } => {
                self.banner() + &frame_lines(stacktrace, "\n    ")
            }
            _ => self.banner(),
        }
    }
}

/// The largest reason a log line prints whole, in [`crate::term::is_small`]'s units.
const LOGGED_UNITS: usize = 4096;
/// Where a larger one is cut, in bytes: Elixir's logger's `truncate` default.
const LOGGED_CHARS: usize = 8096;

/// The banner of an error raised with `reason`: [`error_banner`]'s, or `** (ErlangError)
/// Erlang error: ...` for an error that stands for no Elixir exception.
fn raised_banner(reason: &Term, stacktrace: &[Term]) -> String {
    error_banner(reason, stacktrace)
        .unwrap_or_else(|| format!("** (ErlangError) Erlang error: {}", Elixir(reason)))
}

/// The banner of an error that is an Elixir exception (`** (RuntimeError) message`) or
/// an Erlang error that stands for one, as `Exception.normalize/3` makes it; `None` for
/// the others (an `ErlangError`).
fn error_banner(reason: &Term, stacktrace: &[Term]) -> Option<String> {
    // An Elixir exception struct: `** (RuntimeError) message`.
    if let Term::Map(m) = reason {
        let get = |k: &str| m.map.get(&atom(k));
        let exception = get("__exception__").is_some_and(|e| e.is_atom("true"));
        if let Some(Term::Atom(module)) = get("__struct__") {
            if exception || get("message").is_some() {
                let name = module
                    .name()
                    .strip_prefix("Elixir.")
                    .unwrap_or(module.name());
                return Some(format!("** ({name}) {}", exception_message(reason, m)));
            }
        }
    }
    normalized(reason, stacktrace)
}

/// An exception's message, as its module's `message/1` makes it for the exceptions a
/// script meets (its `message` field; a compiler's `file:line:column: description`;
/// `KeyError`'s), else the struct inspected. (`message/1` is BEAM code: it cannot run
/// here.)
fn exception_message(reason: &Term, m: &crate::term::Map) -> String {
    let get = |k: &str| m.map.get(&atom(k)).filter(|v| !v.is_atom("nil"));
    let text = |t: &Term| {
        t.as_binary()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_else(|| Elixir(t).to_string())
    };
    if let Some(message) = get("message") {
        return text(message);
    }
    let module = m.map.get(&atom("__struct__")).and_then(|s| s.as_atom());
    if module == Some("Elixir.Protocol.UndefinedError") {
        if let (Some(protocol), Some(value)) = (get("protocol"), m.map.get(&atom("value"))) {
            let description = get("description").map(text).unwrap_or_default();
            let description = match description.is_empty() {
                true => description,
                false => format!(", {description}"),
            };
            return format!(
                "protocol {} not implemented for {} of type {}{description}",
                Elixir(protocol),
                Elixir(value),
                value_type(value)
            );
        }
    }
    if let Some(description) = get("description") {
        let file = get("file").map_or_else(|| "nofile".to_owned(), text);
        let place = match (get("line"), get("column")) {
            (Some(line), Some(column)) => format!(
                "{file}:{line}:{column}: ",
                line = Elixir(line),
                column = Elixir(column)
            ),
            (Some(line), None) => format!("{file}:{}: ", Elixir(line)),
            _ => String::new(),
        };
        return format!("{place}{}", text(description));
    }
    if m.map
        .get(&atom("__struct__"))
        .is_some_and(|s| s.is_atom("Elixir.KeyError"))
    {
        if let Some(key) = m.map.get(&atom("key")) {
            return match get("term") {
                Some(term) => format!("key {} not found in: {}", Elixir(key), Elixir(term)),
                None => format!("key {} not found", Elixir(key)),
            };
        }
    }
    Elixir(reason).to_string()
}

/// The type `Protocol.UndefinedError` names a value's: `Tuple`, `Atom`, `BitString`,
/// or a struct's module `(a struct)`.
fn value_type(value: &Term) -> String {
    match value {
        Term::Map(m) => match m.map.get(&atom("__struct__")) {
            Some(s @ Term::Atom(_)) => format!("{} (a struct)", Elixir(s)),
            _ => "Map".into(),
        },
        Term::Atom(_) => "Atom".into(),
        Term::Binary(_) | Term::BitBinary(_) => "BitString".into(),
        Term::Float(_) => "Float".into(),
        Term::FixInteger(_) | Term::BigInteger(_) => "Integer".into(),
        Term::List(_) | Term::ImproperList(_) => "List".into(),
        Term::Tuple(_) => "Tuple".into(),
        Term::Pid(_) => "PID".into(),
        Term::Port(_) => "Port".into(),
        Term::Reference(_) => "Reference".into(),
        Term::ExternalFun(_) | Term::InternalFun(_) => "Function".into(),
    }
}

/// A frame's function as `Exception.format_mfa/3` prints it: `Chat.hello/1`.
fn mfa(frame: &Term) -> Option<String> {
    let frame = frame.as_tuple()?;
    let (m, f, a) = (frame.first()?, frame.get(1)?, frame.get(2)?);
    Some(format!(
        "{}.{}/{}",
        Elixir(m),
        f.as_atom().unwrap_or("?"),
        arity(a)
    ))
}

/// The Elixir exception an Erlang error reason stands for, as iex prints it.
fn normalized(reason: &Term, stacktrace: &[Term]) -> Option<String> {
    if let Some(name) = reason.as_atom() {
        return match name {
            "badarg" => Some("** (ArgumentError) argument error".into()),
            "badarith" => Some("** (ArithmeticError) bad argument in arithmetic expression".into()),
            // The first frame is the function that does not exist.
            "undef" => Some(format!(
                "** (UndefinedFunctionError) function {} is undefined or private",
                mfa(stacktrace.first()?)?
            )),
            // The first frame is the function no clause of which matched.
            "function_clause" => Some(match stacktrace.first().and_then(mfa) {
                Some(mfa) => {
                    format!("** (FunctionClauseError) no function clause matching in {mfa}")
                }
                None => "** (FunctionClauseError) no function clause matches".into(),
            }),
            _ => None,
        };
    }
    let [tag, value] = reason.as_tuple_n(2)? else {
        return None;
    };
    match tag.as_atom()? {
        "badmatch" => Some(format!(
            "** (MatchError) no match of right hand side value: {}",
            Elixir(value)
        )),
        "case_clause" => Some(format!(
            "** (CaseClauseError) no case clause matching: {}",
            Elixir(value)
        )),
        "badarg" => Some(format!(
            "** (ArgumentError) argument error: {}",
            Elixir(value)
        )),
        "badkey" => Some(format!("** (KeyError) key {} not found", Elixir(value))),
        "badmap" => Some(format!(
            "** (BadMapError) expected a map, got: {}",
            Elixir(value)
        )),
        "try_clause" => Some(format!(
            "** (TryClauseError) no try clause matching: {}",
            Elixir(value)
        )),
        _ => None,
    }
}

/// `Exception.format_exit/2`: `joiner` starts each line of a wrapped reason.
fn format_exit(reason: &Term, joiner: &str) -> String {
    let deeper = || format!("{joiner}    ");
    if let Some([first, second]) = reason.as_tuple_n(2) {
        // {exception, stacktrace}: an exit caused by an error.
        if let Some(stack) = second.as_list().filter(|s| is_stacktrace(s)) {
            return format!(
                "an exception was raised:{joiner}{}{}",
                raised_banner(first, stack),
                frame_lines(stack, &deeper())
            );
        }
        // {:shutdown, {:failed_to_start_child, child, reason}}: a supervisor's start.
        if first.is_atom("shutdown") {
            if let Some([tag, child, why]) = second.as_tuple_n(3) {
                if tag.is_atom("failed_to_start_child") {
                    let why = match why.as_tuple_n(2) {
                        Some([exit, inner]) if exit.is_atom("EXIT") => inner,
                        _ => why,
                    };
                    return format!(
                        "shutdown: failed to start child: {}{joiner}** (EXIT) {}",
                        Elixir(child),
                        format_exit(why, &deeper())
                    );
                }
            }
        }
        // {reason, {M, F, Args}}: an exit of a call made with M.F(Args), as GenServer.call's.
        if let Some([m, f, args]) = second.as_tuple_n(3) {
            if let (Some(_), Some(fun), Some(args)) = (m.as_atom(), f.as_atom(), args.as_list()) {
                if args.len() < 256 {
                    let args: Vec<String> = args.iter().map(|a| Elixir(a).to_string()).collect();
                    return format!(
                        "exited in: {}.{fun}({}){joiner}** (EXIT) {}",
                        Elixir(m),
                        args.join(", "),
                        format_exit(first, &deeper())
                    );
                }
            }
        }
    }
    format_exit_reason(reason)
}

/// A non-empty list of frames `{M, F, ArityOrArgs, Location}`, as Elixir takes a
/// reason's second element for a stacktrace when it can print each frame.
fn is_stacktrace(frames: &[Term]) -> bool {
    !frames.is_empty()
        && frames.iter().all(|frame| {
            matches!(frame.as_tuple_n(4), Some([m, f, a, location])
                if m.as_atom().is_some() && f.as_atom().is_some()
                    && (a.as_int().is_some() || a.as_list().is_some())
                    && location.as_list().is_some())
        })
}

/// The reasons `Exception.format_exit/1` has words for; the others inspected.
fn format_exit_reason(reason: &Term) -> String {
    if let Some(name) = reason.as_atom() {
        let words = match name {
            "normal" | "shutdown" | "killed" => name,
            "calling_self" => "process attempted to call itself",
            "timeout" => "time out",
            "noconnection" => "no connection",
            "noproc" => "no process: the process is not alive or there's no process currently associated with the given name, possibly because its application isn't started",
            _ => return Elixir(reason).to_string(),
        };
        return words.to_owned();
    }
    if let Some([tag, value]) = reason.as_tuple_n(2) {
        if let (Some("nodedown"), Some(node)) = (tag.as_atom(), value.as_atom()) {
            return format!("no connection to {node}");
        }
        let words = match tag.as_atom() {
            Some("shutdown") => "shutdown: ",
            Some("already_started") => "already started: ",
            Some("bad_return_value") => "bad return value: ",
            Some("bad_call") => "bad call: ",
            Some("bad_cast") => "bad cast: ",
            _ => return Elixir(reason).to_string(),
        };
        return format!("{words}{}", Elixir(value));
    }
    Elixir(reason).to_string()
}

/// A frame's arity, given as a number or as the arguments.
fn arity(a: &Term) -> i64 {
    a.as_list()
        .map_or_else(|| a.as_int().unwrap_or(0), |l| l.len() as i64)
}

/// Each frame as [`format_frame`] prints it, after `joiner` (a line break and the
/// indentation).
fn frame_lines(frames: &[Term], joiner: &str) -> String {
    frames
        .iter()
        .map(|frame| format!("{joiner}{}", format_frame(frame)))
        .collect()
}

/// `{M, F, A, Location}` as `Exception.format_stacktrace_entry/1` prints it:
/// `file:line: Module.fun/arity`.
fn format_frame(frame: &Term) -> String {
    let Some([m, f, a, _]) = frame.as_tuple_n(4) else {
        return Elixir(frame).to_string();
    };
    let name = f.as_atom().unwrap_or("?");
    let name = match crate::term::display::elixir_bare_call(name) {
        true => name.to_owned(),
        false => Elixir(&atom(name)).to_string()[1..].to_owned(),
    };
    // With the arguments when the frame has them, as `Exception.format_mfa/3`:
    // `:erlang.binary_to_integer("x")`.
    let mfa = match a.as_list() {
        Some(args) => {
            let args: Vec<String> = args.iter().map(|a| Elixir(a).to_string()).collect();
            format!("{}.{name}({})", Elixir(m), args.join(", "))
        }
        None => format!("{}.{name}/{}", Elixir(m), arity(a)),
    };
    match frame_place(frame) {
        (Some(file), Some(line)) => format!("{file}:{line}: {mfa}"),
        (Some(file), None) => format!("{file}: {mfa}"),
        _ => mfa,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{binary, int, list};

    #[test]
    fn printed_as_elixir_prints_it() {
        let line = line!() + 1;
        let raised = Exception::argument_error("nothing to repeat");
        let raised = raised.in_function("parrot::Parrot", "handle_call", 3);
        assert_eq!(
            raised.format(),
            format!(
                "** (ArgumentError) nothing to repeat\n    {}:{line}: :\"parrot::Parrot\".handle_call/3",
                file!()
            )
        );
        // Named once: who ran it does not rename a frame already named.
        let again = raised.clone().in_function("Elixir.Other", "f", 0);
        assert_eq!(again, raised);
        let undef = Exception::undef("Elixir.Chat", "nope", vec![int(1)]);
        assert_eq!(
            undef.format(),
            "** (UndefinedFunctionError) function Chat.nope/1 is undefined or private\n    Chat.nope(1)"
        );
        // Protocol.UndefinedError's message, as Elixir 1.14 words it.
        let undefined = Exception::Error {
            reason: crate::term::parse(
                r#"%{__struct__: Protocol.UndefinedError, __exception__: true, protocol: String.Chars, value: {1}, description: ""}"#,
            )
            .unwrap(),
            stacktrace: vec![],
        };
        assert_eq!(
            undefined.banner(),
            "** (Protocol.UndefinedError) protocol String.Chars not implemented for {1} of type Tuple"
        );
        // A frame with its arguments, and a name Elixir quotes, as Exception.format/3.
        let frames = Exception::Error {
            reason: atom("badarg"),
            stacktrace: vec![
                crate::term::parse(r#"{:erlang, :binary_to_integer, ["x"], [error_info: %{}]}"#)
                    .unwrap(),
                crate::term::parse(r#"{M, :"-fun-0-", 1, [file: ~c"a.ex", line: 3]}"#).unwrap(),
            ],
        };
        assert_eq!(
            frames.format(),
            "** (ArgumentError) argument error\n    :erlang.binary_to_integer(\"x\")\n    a.ex:3: M.\"-fun-0-\"/1"
        );
        let no_clause =
            Exception::function_clause().in_function("Elixir.Inventory", "handle_call", 3);
        assert_eq!(
            no_clause.banner(),
            "** (FunctionClauseError) no function clause matching in Inventory.handle_call/3"
        );
        assert_eq!(
            Exception::bare(atom("function_clause")).banner(),
            "** (FunctionClauseError) no function clause matches"
        );
        let struct_of = |fields: Vec<(&str, Term)>| {
            let mut entries = vec![(atom("__exception__"), atom("true"))];
            entries.extend(fields.into_iter().map(|(k, v)| (atom(k), v)));
            Exception::bare(crate::term::map(entries))
        };
        let missing = struct_of(vec![
            ("__struct__", atom("Elixir.TokenMissingError")),
            ("file", binary("nofile")),
            ("line", int(1)),
            ("column", int(3)),
            (
                "description",
                binary("syntax error: expression is incomplete"),
            ),
        ]);
        assert_eq!(
            missing.banner(),
            "** (TokenMissingError) nofile:1:3: syntax error: expression is incomplete"
        );
        let key = struct_of(vec![
            ("__struct__", atom("Elixir.KeyError")),
            ("key", atom("a")),
            ("term", crate::term::map(Vec::<(Term, Term)>::new())),
            ("message", atom("nil")),
        ]);
        assert_eq!(key.banner(), "** (KeyError) key :a not found in: %{}");
        let panic = Exception::bare(tuple(vec![atom("rust_panic"), binary("oops")]));
        assert_eq!(
            panic.banner(),
            "** (ErlangError) Erlang error: {:rust_panic, \"oops\"}"
        );
        assert_eq!(Exception::exit(atom("normal")).banner(), "** (exit) normal");
        assert_eq!(Exception::Throw(list(vec![])).banner(), "** (throw) []");
    }

    #[test]
    fn exits_printed_as_elixir_prints_them() {
        let exit = |t: Term| Exception::format_exit(&t);
        assert_eq!(exit(atom("noconnection")), "no connection");
        assert_eq!(
            exit(tuple(vec![atom("nodedown"), atom("alex@localhost")])),
            "no connection to alex@localhost"
        );
        assert_eq!(
            exit(tuple(vec![atom("shutdown"), atom("closed")])),
            "shutdown: :closed"
        );
        assert_eq!(exit(tuple(vec![atom("boom"), int(1)])), "{:boom, 1}");
        // GenServer.call's exit: the call, then the reason it wraps.
        let call = tuple(vec![
            atom("Elixir.GenServer"),
            atom("call"),
            list(vec![atom("counter"), atom("get"), int(5000)]),
        ]);
        assert_eq!(
            exit(tuple(vec![atom("timeout"), call.clone()])),
            "exited in: GenServer.call(:counter, :get, 5000)\n    ** (EXIT) time out"
        );
        // {exception, stacktrace}: an exit caused by an error.
        let frame = tuple(vec![
            atom("Elixir.Chat"),
            atom("f"),
            int(0),
            list(vec![
                tuple(vec![atom("file"), crate::term::charlist("lib/chat.ex")]),
                tuple(vec![atom("line"), int(7)]),
            ]),
        ]);
        let raised = tuple(vec![atom("badarg"), list(vec![frame.clone()])]);
        assert_eq!(
            exit(tuple(vec![raised.clone(), call])),
            "exited in: GenServer.call(:counter, :get, 5000)\n    ** (EXIT) an exception was raised:\n        ** (ArgumentError) argument error\n            lib/chat.ex:7: Chat.f/0"
        );
        // Not a stacktrace: inspected.
        assert_eq!(
            exit(tuple(vec![atom("boom"), list(vec![int(1)])])),
            "{:boom, [1]}"
        );

        // As a gen_server's end is reported: exceptions as raised, other reasons as stops.
        let stop = |e: Exception| e.format_stop();
        assert_eq!(stop(Exception::exit(atom("boom"))), "** (stop) :boom");
        assert_eq!(
            stop(Exception::exit(raised)),
            "** (ArgumentError) argument error\n    lib/chat.ex:7: Chat.f/0"
        );
        let panic = Exception::Error {
            reason: tuple(vec![atom("rust_panic"), binary("oops")]),
            stacktrace: vec![frame],
        };
        assert_eq!(
            stop(panic),
            "** (stop) {:rust_panic, \"oops\"}\n    lib/chat.ex:7: Chat.f/0"
        );
        assert_eq!(
            stop(Exception::runtime_error("oops")).lines().next(),
            Some("** (RuntimeError) oops")
        );
    }
}
