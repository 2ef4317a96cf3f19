//! Terms as text: [`Elixir`] prints what Elixir's `inspect/1` prints, [`Erlang`] what
//! `io_lib:format("~p", [Term])` prints (without line breaks).
//!
//! Two things a node prints from its own tables, and a term alone cannot know, are
//! printed in a form of their own: a pid, port or reference shows its node's name where
//! the BEAM shows the node's slot in its table (`#PID<moebi@localhost.14.0>` for what iex
//! on another node shows as `#PID<13207.14.0>`), unless the display is told which node
//! is its own ([`Elixir::local`]), where `#PID<0.14.0>` is printed as on that node. Maps
//! print their keys in Erlang's term order (as OTP 25 prints a map of up to 32 keys;
//! a larger one the BEAM prints in the order of its hash, and later releases small
//! maps of atoms in the order of their atom table), and nothing is cut short (as
//! `inspect(term, limit: :infinity)`).

use super::{Atom, InternalFun, Match, Pid, Port, Reference, Term};
use std::fmt::{self, Write};

/// A term printed in Elixir's syntax, as `inspect/1` prints it: `{:echoed, "hello"}`,
/// `%{name: "alex"}`, `[a: 1]`, `~c"abc"`, `Chat.Message`, `#PID<0.14.0>`.
///
/// ```
/// use cnode::term::{atom, binary, tuple, Elixir, Inspect};
/// let t = tuple(vec![atom("echoed"), binary("hello")]);
/// assert_eq!(Elixir(&t).to_string(), r#"{:echoed, "hello"}"#);
/// assert_eq!(t.inspect().to_string(), r#"{:echoed, "hello"}"#);
/// ```
#[derive(Clone, Copy)]
pub struct Elixir<'a>(pub &'a Term);

/// A term printed in Erlang's syntax, as `io_lib:format("~p", [Term])` prints it on one
/// line: `{echoed,<<"hello">>}`, `#{name => <<"alex">>}`, `"abc"`, `'Elixir.Chat.Message'`.
///
/// ```
/// use cnode::term::{atom, binary, tuple, Erlang};
/// let t = tuple(vec![atom("echoed"), binary("hello")]);
/// assert_eq!(Erlang(&t).to_string(), r#"{echoed,<<"hello">>}"#);
/// ```
#[derive(Clone, Copy)]
pub struct Erlang<'a>(pub &'a Term);

impl<'a> Elixir<'a> {
    /// Prints the pids, ports and references of `node` as that node prints its own
    /// (`#PID<0.14.0>`); those of other nodes keep their node's name.
    pub fn local(term: &'a Term, node: &'a Atom) -> Local<'a> {
        Local {
            term,
            node,
            syntax: Syntax::Elixir,
        }
    }
}

impl<'a> Erlang<'a> {
    /// As [`Elixir::local`]: `<0.14.0>` for the pids of `node`.
    pub fn local(term: &'a Term, node: &'a Atom) -> Local<'a> {
        Local {
            term,
            node,
            syntax: Syntax::Erlang,
        }
    }
}

/// A term printed from the point of view of one node (see [`Elixir::local`]).
#[derive(Clone, Copy)]
pub struct Local<'a> {
    term: &'a Term,
    node: &'a Atom,
    syntax: Syntax,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Elixir,
    Erlang,
}

impl fmt::Display for Elixir<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Printer::new(f, Syntax::Elixir).term(self.0)
    }
}

impl fmt::Display for Erlang<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Printer::new(f, Syntax::Erlang).term(self.0)
    }
}

impl fmt::Display for Local<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Printer {
            local: Some(self.node),
            ..Printer::new(f, self.syntax)
        }
        .term(self.term)
    }
}

impl fmt::Debug for Elixir<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for Erlang<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `term.inspect()`, `pid.inspect()`: a term, or a pid, reference or atom alone, in
/// Elixir's syntax for `{}` (see [`Elixir`]); `.erlang()` in Erlang's.
///
/// ```
/// use cnode::term::{Inspect, Pid};
/// let pid = Pid::new("alex@localhost", 90, 0, 0);
/// assert_eq!(pid.inspect().to_string(), "#PID<alex@localhost.90.0>");
/// assert_eq!(pid.erlang().to_string(), "<alex@localhost.90.0>");
/// ```
pub trait Inspect {
    /// As Elixir's `inspect/1` prints it.
    fn inspect(&self) -> Shown<'_>;
    /// As Erlang's `io_lib:format("~p", ...)` prints it.
    fn erlang(&self) -> Shown<'_>;
}

/// What [`Inspect`] shows, for `{}`.
#[derive(Clone, Copy)]
pub struct Shown<'a> {
    what: What<'a>,
    syntax: Syntax,
}

#[derive(Clone, Copy)]
enum What<'a> {
    Term(&'a Term),
    Pid(&'a Pid),
    Reference(&'a Reference),
    Atom(&'a Atom),
}

macro_rules! inspect {
    ($($t:ident),*) => {$(
        impl Inspect for $t {
            fn inspect(&self) -> Shown<'_> {
                Shown { what: What::$t(self), syntax: Syntax::Elixir }
            }
            fn erlang(&self) -> Shown<'_> {
                Shown { what: What::$t(self), syntax: Syntax::Erlang }
            }
        }
    )*};
}
inspect!(Term, Pid, Reference, Atom);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut p = Printer::new(f, self.syntax);
        match self.what {
            What::Term(t) => p.term(t),
            What::Pid(pid) => p.pid(pid),
            What::Reference(r) => p.reference(r),
            What::Atom(a) => p.atom(a.name()),
        }
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

struct Printer<'a, W> {
    out: W,
    syntax: Syntax,
    local: Option<&'a Atom>,
    /// How many bytes of a binary or list to look at to decide how to print it: all of
    /// them, unless the output is cut short anyway (as Elixir's `printable_limit`).
    scan: usize,
    /// In Erlang's syntax, which lists and binaries print as text.
    strings: Strings,
}

/// Which lists and binaries Erlang's syntax prints as text, as `io_lib:format` takes
/// its controls.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strings {
    /// `~p`: those of printable Latin-1 characters.
    Latin1,
    /// `~tp`: a binary as UTF-8 (`<<"ü"/utf8>>`), of characters in the printable
    /// range (Latin-1's, as a BEAM's default `+pc latin1`).
    Unicode,
    /// `~w`: none (`[97,98]`, `<<97,98>>`).
    None,
}

/// `pid` as Elixir prints it on `node`: `#PID<0.13.0>` for one of `node`'s own, as a
/// BEAM node's log names its processes.
pub(crate) fn local_pid(pid: &super::Pid, node: &str) -> String {
    Elixir::local(&Term::Pid(*pid), &Atom::from(node)).to_string()
}

/// `term` in Erlang's syntax, as `io_lib:format` prints it for `~w` (`Strings::None`),
/// `~p` (`Latin1`) or `~tp` (`Unicode`), on one line.
pub(crate) fn erlang_with(term: &Term, strings: Strings) -> String {
    let mut out = String::new();
    let _ = Printer {
        strings,
        ..Printer::new(&mut out, Syntax::Erlang)
    }
    .term(term);
    out
}

/// `term` in Elixir's syntax into `out`, deciding the form of a binary or list from at
/// most its first `scan` bytes or elements: for output that is cut after `scan` bytes.
pub(super) fn elixir_bounded(out: &mut impl Write, term: &Term, scan: usize) -> fmt::Result {
    Printer {
        scan,
        ..Printer::new(out, Syntax::Elixir)
    }
    .term(term)
}

impl<W: Write> Printer<'_, W> {
    /// A printer of whole terms, with `~p`'s strings and pids in full.
    fn new(out: W, syntax: Syntax) -> Self {
        Printer {
            out,
            syntax,
            local: None,
            scan: usize::MAX,
            strings: Strings::Latin1,
        }
    }

    /// One term; its elements a level down, on a fresh stack segment when this one
    /// runs low (`term::deep`).
    fn term(&mut self, term: &Term) -> fmt::Result {
        super::deep(|| self.term_here(term))
    }

    fn term_here(&mut self, term: &Term) -> fmt::Result {
        match term {
            Term::Atom(a) => self.atom(a.name()),
            Term::FixInteger(i) => write!(self.out, "{}", i.value),
            Term::BigInteger(i) => write!(self.out, "{}", i.value),
            Term::Float(x) => self.float(x.value),
            Term::Pid(p) => self.pid(p),
            Term::Port(p) => self.port(p),
            Term::Reference(r) => self.reference(r),
            Term::ExternalFun(fun) => match self.syntax {
                Syntax::Elixir => {
                    self.out.write_char('&')?;
                    self.module(fun.module.name())?;
                    self.out.write_char('.')?;
                    self.call_name(fun.function.name())?;
                    write!(self.out, "/{}", fun.arity)
                }
                Syntax::Erlang => {
                    self.out.write_str("fun ")?;
                    self.atom(fun.module.name())?;
                    self.out.write_char(':')?;
                    self.atom(fun.function.name())?;
                    write!(self.out, "/{}", fun.arity)
                }
            },
            Term::InternalFun(fun) => self.internal_fun(fun),
            Term::Binary(b) => self.binary(&b.bytes, 0),
            Term::BitBinary(b) => self.binary(&b.bytes, b.tail_bits_size),
            Term::List(l) => self.list(&l.elements, None),
            Term::ImproperList(l) => self.list(&l.elements, Some(&l.last)),
            Term::Tuple(t) => {
                self.out.write_char('{')?;
                self.sequence(&t.elements)?;
                self.out.write_char('}')
            }
            Term::Map(m) => self.map(m.map.iter().collect()),
        }
    }

    fn separator(&mut self) -> fmt::Result {
        match self.syntax {
            Syntax::Elixir => self.out.write_str(", "),
            Syntax::Erlang => self.out.write_char(','),
        }
    }

    fn sequence(&mut self, elements: &[Term]) -> fmt::Result {
        for (i, e) in elements.iter().enumerate() {
            if i > 0 {
                self.separator()?;
            }
            self.term(e)?;
        }
        Ok(())
    }

    fn atom(&mut self, name: &str) -> fmt::Result {
        match self.syntax {
            Syntax::Erlang => {
                if erlang_bare_atom(name) {
                    self.out.write_str(name)
                } else {
                    self.quoted(name, '\'')
                }
            }
            Syntax::Elixir => {
                if matches!(name, "nil" | "true" | "false") {
                    self.out.write_str(name)
                } else if let Some(alias) = elixir_alias(name) {
                    self.out.write_str(alias)
                } else if elixir_bare_atom(name) || ELIXIR_OPERATORS.contains(&name) {
                    write!(self.out, ":{name}")
                } else {
                    self.out.write_char(':')?;
                    self.quoted(name, '"')
                }
            }
        }
    }

    /// A module where Elixir names one (`Chat`, `:erlang`).
    fn module(&mut self, name: &str) -> fmt::Result {
        match elixir_alias(name) {
            Some(alias) => self.out.write_str(alias),
            None => self.atom(name),
        }
    }

    /// A function name after `Module.` in Elixir.
    fn call_name(&mut self, name: &str) -> fmt::Result {
        if elixir_bare_call(name) {
            self.out.write_str(name)
        } else {
            self.quoted(name, '"')
        }
    }

    /// `text` between `quote`s, escaped as both languages escape it.
    fn quoted(&mut self, text: &str, quote: char) -> fmt::Result {
        self.out.write_char(quote)?;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            // Elixir escapes interpolation: `"\#{x}"`.
            if c == '#'
                && quote == '"'
                && self.syntax == Syntax::Elixir
                && chars.peek() == Some(&'{')
            {
                self.out.write_char('\\')?;
            }
            self.escaped(c, quote)?;
        }
        self.out.write_char(quote)
    }

    fn escaped(&mut self, c: char, quote: char) -> fmt::Result {
        match c {
            '\\' => self.out.write_str("\\\\"),
            '\n' => self.out.write_str("\\n"),
            '\r' => self.out.write_str("\\r"),
            '\t' => self.out.write_str("\\t"),
            '\u{b}' => self.out.write_str("\\v"),
            '\u{8}' => self.out.write_str("\\b"),
            '\u{c}' => self.out.write_str("\\f"),
            '\u{1b}' => self.out.write_str("\\e"),
            '\u{7f}' => self.out.write_str("\\d"),
            '\u{7}' if self.syntax == Syntax::Elixir => self.out.write_str("\\a"),
            c if c == quote => {
                self.out.write_char('\\')?;
                self.out.write_char(c)
            }
            c if (c as u32) < 0x20 => write!(self.out, "\\x{:02X}", c as u32),
            c => self.out.write_char(c),
        }
    }

    fn float(&mut self, x: f64) -> fmt::Result {
        if !x.is_finite() {
            // Neither language has a literal for them; no node sends them.
            return write!(self.out, "{x}");
        }
        let decimal = with_point(format!("{x}"));
        let exponent = scientific(x);
        let text = match self.syntax {
            // Elixir's Float.to_string: decimal from 1.0e-4 up to 1.0e16.
            Syntax::Elixir => {
                let a = x.abs();
                if a == 0.0 || (1e-4..1e16).contains(&a) {
                    decimal
                } else {
                    exponent
                }
            }
            // float_to_list(X, [short]): the shorter one, decimal on a tie.
            Syntax::Erlang => {
                if exponent.len() < decimal.len() {
                    exponent
                } else {
                    decimal
                }
            }
        };
        self.out.write_str(&text)
    }

    fn node_prefix(&mut self, node: &Atom) -> fmt::Result {
        if self.local.is_some_and(|local| local.name() == node.name()) {
            self.out.write_char('0')
        } else {
            self.out.write_str(node.name())
        }
    }

    fn pid(&mut self, p: &Pid) -> fmt::Result {
        self.out.write_str(match self.syntax {
            Syntax::Elixir => "#PID<",
            Syntax::Erlang => "<",
        })?;
        self.node_prefix(&p.node)?;
        write!(self.out, ".{}.{}>", p.id, p.serial)
    }

    fn port(&mut self, p: &Port) -> fmt::Result {
        self.out.write_str("#Port<")?;
        self.node_prefix(&p.node)?;
        write!(self.out, ".{}>", p.id)
    }

    fn reference(&mut self, r: &Reference) -> fmt::Result {
        self.out.write_str(match self.syntax {
            Syntax::Elixir => "#Reference<",
            Syntax::Erlang => "#Ref<",
        })?;
        self.node_prefix(&r.node)?;
        // Printed most significant word first, the reverse of the wire's order.
        for id in r.id.iter().rev() {
            write!(self.out, ".{id}")?;
        }
        self.out.write_char('>')
    }

    fn internal_fun(&mut self, fun: &InternalFun) -> fmt::Result {
        let (module, index, uniq, arity) = match fun {
            InternalFun::Old {
                module,
                index,
                uniq,
                free_vars,
                ..
            } => (module, *index as i64, *uniq as i64, free_vars.len() as i64),
            InternalFun::New {
                module,
                old_index,
                old_uniq,
                arity,
                ..
            } => (module, *old_index as i64, *old_uniq as i64, *arity as i64),
        };
        match self.syntax {
            Syntax::Elixir => {
                write!(self.out, "#Function<{index}.{uniq}/{arity} in ")?;
                self.module(module.name())?;
                self.out.write_char('>')
            }
            Syntax::Erlang => {
                self.out.write_str("#Fun<")?;
                self.atom(module.name())?;
                write!(self.out, ".{index}.{uniq}>")
            }
        }
    }

    fn binary(&mut self, bytes: &[u8], tail_bits: u8) -> fmt::Result {
        // A bitstring's last byte holds `tail_bits` bits (8 means a whole byte), kept
        // as `eetf` decodes them: in its low bits.
        let whole = if tail_bits > 0 && tail_bits < 8 {
            &bytes[..bytes.len().saturating_sub(1)]
        } else {
            bytes
        };
        let partial = (tail_bits > 0 && tail_bits < 8 && !bytes.is_empty())
            .then(|| (bytes[bytes.len() - 1] & ((1u8 << tail_bits) - 1), tail_bits));
        let seen = &whole[..whole.len().min(self.scan)];
        if partial.is_none() {
            match self.syntax {
                Syntax::Elixir => {
                    let text = match std::str::from_utf8(seen) {
                        Ok(text) => Some(text),
                        // Cut inside a character: the part before it.
                        Err(e) if seen.len() < whole.len() && e.error_len().is_none() => {
                            std::str::from_utf8(&seen[..e.valid_up_to()]).ok()
                        }
                        Err(_) => None,
                    };
                    if let Some(text) = text.filter(|t| t.chars().all(elixir_printable)) {
                        if seen.len() == whole.len() {
                            return self.quoted(text, '"');
                        }
                        // Only the part that fits is shown; the rest is not looked at.
                        self.quoted(text, '"')?;
                        return Err(fmt::Error);
                    }
                }
                Syntax::Erlang if self.strings == Strings::None => {}
                Syntax::Erlang if self.strings == Strings::Unicode => {
                    // UTF-8 of characters in the printable range (Latin-1's, the
                    // default `+pc`), or numbers: the bytes are not read as Latin-1.
                    let text = std::str::from_utf8(whole)
                        .ok()
                        .filter(|t| !t.is_empty() && t.chars().all(|c| erlang_printable(c.into())));
                    if let Some(text) = text {
                        self.out.write_str("<<")?;
                        self.quoted(text, '"')?;
                        let utf8 = if text.is_ascii() { "" } else { "/utf8" };
                        return write!(self.out, "{utf8}>>");
                    }
                }
                Syntax::Erlang => {
                    if !whole.is_empty() && seen.iter().all(|&b| erlang_printable(b.into())) {
                        self.out.write_str("<<")?;
                        let text: String = whole.iter().map(|&b| char::from(b)).collect();
                        self.quoted(&text, '"')?;
                        return self.out.write_str(">>");
                    }
                }
            }
        }
        self.out.write_str("<<")?;
        for (i, b) in whole.iter().enumerate() {
            if i > 0 {
                self.separator()?;
            }
            write!(self.out, "{b}")?;
        }
        if let Some((value, bits)) = partial {
            if !whole.is_empty() {
                self.separator()?;
            }
            match self.syntax {
                Syntax::Elixir => write!(self.out, "{value}::size({bits})")?,
                Syntax::Erlang => write!(self.out, "{value}:{bits}")?,
            }
        }
        self.out.write_str(">>")
    }

    fn list(&mut self, elements: &[Term], tail: Option<&Term>) -> fmt::Result {
        if tail.is_none() && !elements.is_empty() {
            let codes: Option<Vec<u32>> = elements[..elements.len().min(self.scan)]
                .iter()
                .map(|e| match e {
                    Term::FixInteger(i) => u32::try_from(i.value).ok(),
                    _ => None,
                })
                .collect();
            if let Some(codes) = codes {
                let printable = match self.syntax {
                    // List.ascii_printable?/1
                    // (DEL, 127, is not one of its characters, though a string prints it.)
                    Syntax::Elixir => codes.iter().all(|&c| c < 127 && elixir_printable_code(c)),
                    // The printable range is Latin-1's (the default `+pc`), `~tp` too.
                    Syntax::Erlang => {
                        self.strings != Strings::None && codes.iter().all(|&c| erlang_printable(c))
                    }
                };
                if printable {
                    let text: String = codes.iter().filter_map(|&c| char::from_u32(c)).collect();
                    if self.syntax == Syntax::Elixir {
                        self.out.write_str("~c")?;
                    }
                    self.quoted(&text, '"')?;
                    // Only the part that fits was looked at, and shown.
                    return match codes.len() == elements.len() {
                        true => Ok(()),
                        false => Err(fmt::Error),
                    };
                }
            }
            if self.syntax == Syntax::Elixir && elements.iter().all(keyword_pair) {
                self.out.write_char('[')?;
                for (i, e) in elements.iter().enumerate() {
                    if i > 0 {
                        self.separator()?;
                    }
                    let Term::Tuple(pair) = e else { unreachable!() };
                    self.key(&pair.elements[0])?;
                    self.term(&pair.elements[1])?;
                }
                return self.out.write_char(']');
            }
        }
        self.out.write_char('[')?;
        self.sequence(elements)?;
        if let Some(tail) = tail {
            self.out.write_str(match self.syntax {
                Syntax::Elixir => " | ",
                Syntax::Erlang => "|",
            })?;
            self.term(tail)?;
        }
        self.out.write_char(']')
    }

    /// `name: ` in a keyword list or a map of atom keys.
    fn key(&mut self, key: &Term) -> fmt::Result {
        let Term::Atom(a) = key else {
            return self.term(key);
        };
        if elixir_bare_atom(a.name()) || matches!(a.name(), "nil" | "true" | "false") {
            self.out.write_str(a.name())?;
        } else {
            self.quoted(a.name(), '"')?;
        }
        self.out.write_str(": ")
    }

    fn map(&mut self, mut entries: Vec<(&Term, &Term)>) -> fmt::Result {
        entries.sort_by(|a, b| super::order::key_order(a.0, b.0));
        if self.syntax == Syntax::Erlang {
            self.out.write_str("#{")?;
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    self.out.write_char(',')?;
                }
                self.term(k)?;
                self.out.write_str(" => ")?;
                self.term(v)?;
            }
            return self.out.write_char('}');
        }
        let atom_keys = entries.iter().all(|(k, _)| keyword_key(k));
        let structure = entries.iter().find_map(|(k, v)| match (k, v) {
            (Term::Atom(k), Term::Atom(module)) if k.name() == "__struct__" => {
                elixir_alias(module.name())
            }
            _ => None,
        });
        if let Some(done) = structure.and_then(|module| self.known_struct(module, &entries)) {
            return done;
        }
        match structure {
            Some(module) => write!(self.out, "%{module}{{")?,
            None => self.out.write_str("%{")?,
        }
        let mut first = true;
        for (k, v) in entries {
            // An exception's `__exception__: true` is not shown either.
            if structure.is_some() && matches!(k.as_atom(), Some("__struct__" | "__exception__")) {
                continue;
            }
            if !first {
                self.separator()?;
            }
            first = false;
            if atom_keys {
                self.key(k)?;
            } else {
                self.term(k)?;
                self.out.write_str(" => ")?;
            }
            self.term(v)?;
        }
        self.out.write_char('}')
    }

    /// The structs whose `Inspect` Elixir's standard library defines in a form of its
    /// own, printed in that form: `1..3`, `1..9//2`, `MapSet.new([1, 2])`,
    /// `~D[2026-12-04]`, `~T[12:00:00.123]`, `~N[...]`, `~U[...Z]` and
    /// `#DateTime<... CET Europe/Paris>`. `None` when the struct does not have exactly
    /// the fields of that form (then it prints as any struct).
    fn known_struct(&mut self, module: &str, entries: &[(&Term, &Term)]) -> Option<fmt::Result> {
        let field = |name: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_atom() == Some(name))
                .map(|(_, v)| *v)
        };
        let int = |name: &str| field(name)?.as_int();
        let iso = field("calendar").and_then(|c| c.as_atom()) == Some("Elixir.Calendar.ISO");
        let date = || -> Option<String> {
            let (year, month, day) = (int("year")?, int("month")?, int("day")?);
            let sign = if year < 0 { "-" } else { "" };
            Some(format!(
                "{sign}{:04}-{month:02}-{day:02}",
                year.unsigned_abs()
            ))
        };
        let time = || -> Option<String> {
            let (hour, minute, second) = (int("hour")?, int("minute")?, int("second")?);
            let [us, precision] = field("microsecond")?.as_tuple_n(2)? else {
                return None;
            };
            let (us, precision) = (us.as_int()?, usize::try_from(precision.as_int()?).ok()?);
            let mut text = format!("{hour:02}:{minute:02}:{second:02}");
            if precision > 0 {
                text.push('.');
                text.push_str(format!("{us:06}").get(..precision.min(6))?);
            }
            Some(text)
        };
        let text = match (module, entries.len()) {
            ("Range", 4) => {
                let first = field("first").filter(|t| t.as_int().is_some())?;
                let last = field("last").filter(|t| t.as_int().is_some())?;
                let step = field("step")?.as_int()?;
                let result = self
                    .term(first)
                    .and_then(|()| self.out.write_str(".."))
                    .and_then(|()| self.term(last));
                if step != 1 || last.as_int() < first.as_int() {
                    return Some(result.and_then(|()| write!(self.out, "//{step}")));
                }
                return Some(result);
            }
            ("MapSet", 2 | 3) => {
                let Term::Map(set) = field("map")? else {
                    return None;
                };
                let mut elements: Vec<&Term> = set.map.keys().collect();
                elements.sort_by(|a, b| super::order::key_order(a, b));
                let elements: Vec<Term> = elements.into_iter().cloned().collect();
                return Some(
                    self.out
                        .write_str("MapSet.new(")
                        .and_then(|()| self.list(&elements, None))
                        .and_then(|()| self.out.write_char(')')),
                );
            }
            ("Date", 5) if iso => format!("~D[{}]", date()?),
            ("Time", 6) if iso => format!("~T[{}]", time()?),
            ("NaiveDateTime", 9) if iso => format!("~N[{} {}]", date()?, time()?),
            ("DateTime", 13) if iso => {
                let zone = field("time_zone")?.as_binary()?;
                let zone = std::str::from_utf8(zone).ok()?;
                let abbr = field("zone_abbr")?.as_binary()?;
                let abbr = std::str::from_utf8(abbr).ok()?;
                let offset = int("utc_offset")?.checked_add(int("std_offset")?)?;
                if zone == "Etc/UTC" && offset == 0 && int("std_offset")? == 0 {
                    format!("~U[{} {}Z]", date()?, time()?)
                } else {
                    let sign = if offset < 0 { '-' } else { '+' };
                    let (h, m) = (
                        offset.unsigned_abs() / 3600,
                        offset.unsigned_abs() % 3600 / 60,
                    );
                    format!(
                        "#DateTime<{} {}{sign}{h:02}:{m:02} {abbr} {zone}>",
                        date()?,
                        time()?
                    )
                }
            }
            _ => return None,
        };
        Some(self.out.write_str(&text))
    }
}

fn keyword_pair(e: &Term) -> bool {
    matches!(e, Term::Tuple(t) if t.elements.len() == 2 && keyword_key(&t.elements[0]))
}

/// An atom Elixir writes as `key:` (Inspect.List.keyword?/1): any but an alias.
fn keyword_key(k: &Term) -> bool {
    matches!(k, Term::Atom(a) if !a.name().starts_with("Elixir."))
}

/// Rust's shortest round-trip digits with the `.0` both languages always print.
fn with_point(mut text: String) -> String {
    if !text.contains(['.', 'e', 'E', 'i', 'N']) {
        text.push_str(".0");
    }
    text
}

/// `1.0e20`, `2.5e-5`.
fn scientific(x: f64) -> String {
    let text = format!("{x:e}");
    match text.split_once('e') {
        Some((mantissa, exp)) if !mantissa.contains('.') => format!("{mantissa}.0e{exp}"),
        _ => text,
    }
}

/// `Elixir.Chat.Message` as Elixir writes it (`Chat.Message`), when it is an alias.
fn elixir_alias(name: &str) -> Option<&str> {
    if name == "Elixir" {
        return Some(name);
    }
    let rest = name.strip_prefix("Elixir.")?;
    // `:"Elixir.Elixir"` is written `Elixir.Elixir`: `Elixir` alone is `:Elixir`.
    let rest = if rest == "Elixir" || rest.starts_with("Elixir.") {
        name
    } else {
        rest
    };
    let valid = rest.split('.').all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    valid.then_some(rest)
}

/// An atom Elixir writes as `:name` or `:Name` (and a key as `name:`, `Name:`).
fn elixir_bare_atom(name: &str) -> bool {
    elixir_identifier(name, true)
}

/// A function name Elixir writes bare after `Module.` (`Mod.name`, but `Mod."Name"`).
pub(crate) fn elixir_bare_call(name: &str) -> bool {
    elixir_identifier(name, false)
}

fn elixir_identifier(name: &str, upper_first: bool) -> bool {
    let body = name
        .strip_suffix(['?', '!'])
        .filter(|b| !b.is_empty())
        .unwrap_or(name);
    let mut chars = body.chars();
    chars.next().is_some_and(|c| {
        c.is_ascii_lowercase()
            || c == '_'
            || (upper_first && c.is_ascii_uppercase())
            || (!c.is_ascii() && identifier_start(c, upper_first))
    }) && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '@')
}

/// A letter other than ASCII that may start an Elixir identifier: a lower-case one or
/// one with no case (`é`, `日`), and for an atom an upper-case one too (`:Été`), not a
/// title-case one (`ǅ`), as Elixir writes them unquoted.
fn identifier_start(c: char, upper_first: bool) -> bool {
    let caseless = || c.to_uppercase().eq([c]) && c.to_lowercase().eq([c]);
    c.is_alphabetic() && (c.is_lowercase() || (upper_first && c.is_uppercase()) || caseless())
}

/// Atoms that are operators, written bare after `:` in Elixir (`:+`, `:<>`).
const ELIXIR_OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "++", "--", "**", "..", "..//", "...", "<>", "==", "!=", "===", "!==", "<",
    ">", "<=", ">=", "=~", "&&", "&&&", "||", "|||", "!", "^", "<<<", ">>>", "|>", "<<~", "~>>",
    "<~", "~>", "<~>", "<|>", "\\\\", "@", "&", "=", "<-", "->", "|", ".", "%", "%{}", "{}",
    "<<>>",
];

/// An atom Erlang writes without quotes.
fn erlang_bare_atom(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case",
        "catch", "cond", "div", "else", "end", "fun", "if", "let", "maybe", "not", "of", "or",
        "orelse", "receive", "rem", "try", "when", "xor",
    ];
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
        && !RESERVED.contains(&name)
}

/// A character Elixir prints inside a string (String.printable?/1).
fn elixir_printable(c: char) -> bool {
    elixir_printable_code(c as u32)
}

fn elixir_printable_code(c: u32) -> bool {
    matches!(c, 0x20..=0x7e | 0xa0..=0xd7ff | 0xe000..=0xfffd | 0x10000..=0x10ffff)
        || matches!(c, 7..=13 | 27 | 127)
}

/// A latin-1 code io_lib prints inside a string.
fn erlang_printable(c: u32) -> bool {
    matches!(c, 0x20..=0x7e | 0xa0..=0xff | 8..=13 | 27)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{atom, binary, int, map, tuple};

    /// Atoms of other scripts print unquoted where Elixir prints them so.
    #[test]
    fn atoms_of_other_scripts() {
        let shown = crate::term::list(
            ["日本", "été", "Été", "Ñandu", "ǅx", "_x", "日本?"]
                .into_iter()
                .map(atom)
                .collect(),
        );
        assert_eq!(
            shown.to_string(),
            r#"[:日本, :été, :Été, :Ñandu, :"ǅx", :_x, :日本?]"#
        );
        assert_eq!(map([(atom("日本"), int(1))]).to_string(), "%{日本: 1}");
        // And read back as written.
        assert_eq!(crate::term::parse(&shown.to_string()).unwrap(), shown);
    }

    /// A peer's struct with the standard library's name and absurd fields prints without
    /// a panic (a log line shows whatever a peer sent).
    #[test]
    fn known_structs_with_absurd_fields_print() {
        let date_time = |year: i64, utc_offset: i64, std_offset: i64| {
            map([
                (atom("__struct__"), atom("Elixir.DateTime")),
                (atom("calendar"), atom("Elixir.Calendar.ISO")),
                (atom("year"), int(year)),
                (atom("month"), int(-1)),
                (atom("day"), int(i64::MAX)),
                (atom("hour"), int(0)),
                (atom("minute"), int(0)),
                (atom("second"), int(0)),
                (atom("microsecond"), tuple(vec![int(-5), int(99)])),
                (atom("time_zone"), binary("X")),
                (atom("zone_abbr"), binary("X")),
                (atom("utc_offset"), int(utc_offset)),
                (atom("std_offset"), int(std_offset)),
            ])
        };
        for t in [
            date_time(i64::MIN, i64::MAX, 1),
            date_time(i64::MAX, i64::MIN, 0),
            date_time(0, 0, 0),
        ] {
            assert!(Elixir(&t).to_string().starts_with(['#', '%']));
        }
        let range = map([
            (atom("__struct__"), atom("Elixir.Range")),
            (atom("first"), int(1)),
            (atom("last"), atom("x")),
            (atom("step"), int(1)),
        ]);
        assert_eq!(
            Elixir(&range).to_string(),
            "%Range{first: 1, last: :x, step: 1}"
        );
    }
}
