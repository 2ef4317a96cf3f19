//! Erlang terms: the [`Term`] type, and the ways to make, read and print them.
//!
//! - The type: [`Term`] and its kinds, shaped after `eetf`'s (the same names and fields),
//!   with atoms interned: an [`Atom`] is copied and compared as a pointer, and a [`Pid`]
//!   holds no allocation of its own. A term is 32 bytes: the larger kinds are boxed
//!   (`Term::Reference(Box::new(r))`; `Term::from(r)` or `r.into()` boxes for you, for
//!   every kind, and `Reference::try_from(term)` takes one back out). [`Term::to_binary`] and
//!   [`Term::from_binary`] are `:erlang.term_to_binary/1` and `binary_to_term/1`.
//!
//! - Building: the [`term!`](crate::term!) macro in Elixir's syntax
//!   (`term!({:ok, %{count: n}})`), [`IntoTerm`] for Rust values, and the functions
//!   [`atom`], [`tuple()`], [`list`], [`map`], [`binary`], [`int`].
//! - Rust types: [`to_term`] and [`from_term`] with serde, in the shapes an Elixir user
//!   writes (structs as maps with atom keys, enums as atoms and tagged tuples; see
//!   [`convert`](self#rust-types-and-serde)).
//! - Matching: [`Match`], a trait with `as_atom`, `as_tuple`, ... and `decode` on `Term`.
//! - Reading text: [`parse()`] (Elixir's syntax) and [`parse_erlang`], with the line and
//!   column of what is wrong.
//! - Printing: a term's `Display` and `Debug` (`{term}`, `{term:?}`) print as Elixir's
//!   `inspect/1` ([`Elixir`], `term.inspect()`), [`Erlang`] (`term.erlang()`) as
//!   `io_lib:format("~p")`; the crate's own log lines print terms in Elixir's syntax.
//!
//! # Rust types and serde
//!
//! | Rust | Elixir |
//! |---|---|
//! | `i64`, `u8`, ... / `f64` | integer / float |
//! | `bool` | `true` / `false` |
//! | `String`, `&str`, `char` | a string (binary); [`as_charlist`] for a charlist |
//! | `Option<T>` | the value or `nil` |
//! | `Result<T, E>` | `{:ok, value}` or `{:error, reason}` (`:ok` / `:error` for `Ok(())` / `Err(())`) |
//! | `()` and a unit struct | `nil` |
//! | `Vec<T>`, slices, sets | a list |
//! | `(A, B)`, tuple structs | a tuple `{a, b}` |
//! | `HashMap<K, V>` | a map |
//! | a struct | a map with atom keys `%{name: "alex", age: 3}` |
//! | a struct renamed `"Elixir.Chat.Message"` | the Elixir struct `%Chat.Message{...}` |
//! | unit variant `Ping` | the atom `:Ping` (`#[serde(rename_all = "snake_case")]` gives `:ping`) |
//! | newtype variant `Add(5)` | `{:Add, 5}` |
//! | tuple variant `Move(1, 2)` | `{:Move, 1, 2}` |
//! | struct variant `Set { key: 1 }` | `{:Set, %{key: 1}}` |
//! | [`Pid`], [`Reference`], [`Port`], [`Term`] | the term as it is |
//! | [`Atom`] | an atom |
//!
//! and field by field: [`as_atom`] for a `String` that is an atom, [`as_keyword`] for a
//! struct or map that is a keyword list, [`as_term`] for any type a [`Term`] converts
//! to, kept as it is. Reading is lenient: an atom or a charlist reads as a string, a
//! keyword list as a struct, a tuple as a sequence, `nil` as `None`; a `__struct__` key
//! is ignored unless a field asks for it. So `{:who, :lobby}` and `{:who, "lobby"}`
//! both read as `Who(String::from("lobby"))`, where an Elixir pattern tells them apart:
//! where that matters, take the field as an [`Atom`] or a [`Term`] and look.
//!
//! ```
//! use cnode::term::{from_term, to_term, Inspect};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! #[serde(rename_all = "snake_case")]
//! enum Request {
//!     Get { key: String },
//!     Put { key: String, value: i64 },
//!     Count,
//! }
//!
//! let t = to_term(&Request::Put { key: "a".into(), value: 1 }).unwrap();
//! assert_eq!(t.inspect().to_string(), r#"{:put, %{key: "a", value: 1}}"#);
//! assert_eq!(from_term::<Request>(&t).unwrap(), Request::Put { key: "a".into(), value: 1 });
//! assert_eq!(to_term(&Request::Count).unwrap().inspect().to_string(), ":count");
//! ```

mod build;
mod convert;
mod deep;
pub(crate) use deep::deep;
pub(crate) mod display;
mod format;
mod order;
mod parse;
mod types;
#[cfg(test)]
pub(crate) use types::eetf_compat;

pub use build::IntoTerm;
#[doc(hidden)]
pub use build::{export_fun, is_alias};
pub use convert::{as_atom, as_charlist, as_keyword, as_term, from_term, to_term, ConvertError};
pub use display::{Elixir, Erlang, Inspect, Local, Shown};
pub(crate) use order::key_order;
pub use parse::{parse, parse_erlang, ParseError, LOCAL_NODE};

/// Compares two terms in Erlang's term order, as `<` and `Enum.sort/1` do: number < atom
/// < reference < fun < port < pid < tuple < map < list < bitstring (`1` and `1.0` are
/// equal here, as with `==`).
///
/// ```
/// use cnode::term;
/// use cnode::term::compare;
/// let mut terms = vec![term!("b"), term!({:a}), term!(:z), term!(2.5), term!(10)];
/// terms.sort_by(compare);
/// assert_eq!(terms, vec![term!(2.5), term!(10), term!(:z), term!({:a}), term!("b")]);
/// ```
pub fn compare(a: &Term, b: &Term) -> std::cmp::Ordering {
    order::order(a, b)
}

pub use format::{DecodeError, EncodeError};
pub use types::{
    Atom, BigInteger, Binary, BitBinary, ExternalFun, FixInteger, Float, ImproperList, InternalFun,
    List, Map, NonFiniteFloat, Pid, Port, Reference, Term, Tuple,
};

/// An atom term.
pub fn atom(name: &str) -> Term {
    Term::Atom(Atom::from(name))
}

/// A tuple term.
pub fn tuple(elements: Vec<Term>) -> Term {
    Term::Tuple(Tuple::from(elements))
}

/// A proper list term.
pub fn list(elements: Vec<Term>) -> Term {
    Term::List(List::from(elements))
}

/// The empty list `[]`.
pub fn nil() -> Term {
    Term::List(List::nil())
}

/// A binary term (an Elixir string when it holds UTF-8): from a `Vec<u8>` or a
/// `String` (taken as they are), or from a `&str`, `&String`, `&[u8]`, `&Vec<u8>` or
/// byte array (copied).
pub fn binary(bytes: impl IntoBytes) -> Term {
    Term::Binary(Binary::from(bytes.into_bytes()))
}

/// What [`binary`] takes: bytes, owned or lent.
pub trait IntoBytes {
    /// The bytes, as a vector of their own.
    fn into_bytes(self) -> Vec<u8>;
}

impl IntoBytes for Vec<u8> {
    fn into_bytes(self) -> Vec<u8> {
        self
    }
}

impl IntoBytes for String {
    fn into_bytes(self) -> Vec<u8> {
        String::into_bytes(self)
    }
}

impl IntoBytes for Box<[u8]> {
    fn into_bytes(self) -> Vec<u8> {
        self.into_vec()
    }
}

impl IntoBytes for &str {
    fn into_bytes(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl IntoBytes for &String {
    fn into_bytes(self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl IntoBytes for &[u8] {
    fn into_bytes(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl IntoBytes for &Vec<u8> {
    fn into_bytes(self) -> Vec<u8> {
        self.clone()
    }
}

impl<const N: usize> IntoBytes for [u8; N] {
    fn into_bytes(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl<const N: usize> IntoBytes for &[u8; N] {
    fn into_bytes(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl IntoBytes for std::borrow::Cow<'_, str> {
    fn into_bytes(self) -> Vec<u8> {
        self.into_owned().into_bytes()
    }
}

impl IntoBytes for std::borrow::Cow<'_, [u8]> {
    fn into_bytes(self) -> Vec<u8> {
        self.into_owned()
    }
}

/// An integer term, small or big as the value needs.
pub fn int(value: i64) -> Term {
    match i32::try_from(value) {
        Ok(small) => Term::FixInteger(FixInteger::from(small)),
        Err(_) => Term::from(BigInteger::from(value)),
    }
}

/// A duration as the BEAM writes timeouts: whole milliseconds.
pub(crate) fn millis(duration: std::time::Duration) -> Term {
    int(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

/// A timeout as the BEAM writes it: whole milliseconds, or `infinity` for `None`.
pub(crate) fn timeout(duration: Option<std::time::Duration>) -> Term {
    duration.map_or_else(|| atom("infinity"), millis)
}

/// A map term.
pub fn map(entries: impl IntoIterator<Item = (Term, Term)>) -> Term {
    Term::from(Map::from(
        entries
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
    ))
}

/// The atoms `true` / `false`.
pub fn boolean(value: bool) -> Term {
    atom(if value { "true" } else { "false" })
}

/// A charlist (`STRING_EXT` on the wire), as Erlang uses for file names in stack traces.
pub fn charlist(text: &str) -> Term {
    list(text.chars().map(|c| int(c as i64)).collect())
}

/// Drops `term` as `drop` would, without a call per element of a list or tuple whose
/// elements are all integers or floats. Dropping a `Vec<Term>` calls the drop of every
/// element, even when none owns anything: half a microsecond for a 200-integer list,
/// in the middle of every round trip that carries one.
pub(crate) fn discard(term: Term) {
    match term {
        Term::List(l) => discard_all(l.elements),
        Term::Tuple(t) => discard_all(t.elements),
        other => drop(other),
    }
}

fn discard_all(mut elements: Vec<Term>) {
    if elements
        .iter()
        .all(|e| matches!(e, Term::FixInteger(_) | Term::Float(_)))
    {
        // SAFETY: a length of 0 is within the capacity and covers no element; the
        // elements are forgotten rather than dropped, and they own no memory.
        unsafe { elements.set_len(0) };
    } else {
        elements.into_iter().for_each(discard);
    }
}

/// Read access to the shapes of a term without cloning.
pub trait Match {
    /// The atom's name.
    fn as_atom(&self) -> Option<&str>;
    /// The elements of a tuple.
    fn as_tuple(&self) -> Option<&[Term]>;
    /// The elements of a tuple of exactly `n` elements.
    fn as_tuple_n(&self, n: usize) -> Option<&[Term]>;
    /// The elements of a proper list (`[]` gives an empty slice).
    fn as_list(&self) -> Option<&[Term]>;
    /// A pid.
    fn as_pid(&self) -> Option<&Pid>;
    /// A reference.
    fn as_reference(&self) -> Option<&Reference>;
    /// The bytes of a binary.
    fn as_binary(&self) -> Option<&[u8]>;
    /// A small or big integer that fits an `i64`.
    fn as_int(&self) -> Option<i64>;
    /// True if this is the atom `name`.
    fn is_atom(&self, name: &str) -> bool {
        self.as_atom() == Some(name)
    }
    /// The term as a Rust type, through serde (see [`from_term`]).
    fn decode<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, ConvertError>;
}

impl Match for Term {
    fn decode<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, ConvertError> {
        from_term(self)
    }
    fn as_atom(&self) -> Option<&str> {
        match self {
            Term::Atom(a) => Some(a.name()),
            _ => None,
        }
    }
    fn as_tuple(&self) -> Option<&[Term]> {
        match self {
            Term::Tuple(t) => Some(&t.elements),
            _ => None,
        }
    }
    fn as_tuple_n(&self, n: usize) -> Option<&[Term]> {
        self.as_tuple().filter(|e| e.len() == n)
    }
    fn as_list(&self) -> Option<&[Term]> {
        match self {
            // Charlists that arrive as STRING_EXT are decoded as lists too.
            Term::List(l) => Some(&l.elements),
            _ => None,
        }
    }
    fn as_pid(&self) -> Option<&Pid> {
        match self {
            Term::Pid(p) => Some(p),
            _ => None,
        }
    }
    fn as_reference(&self) -> Option<&Reference> {
        match self {
            Term::Reference(r) => Some(r),
            _ => None,
        }
    }
    fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Term::Binary(b) => Some(&b.bytes),
            _ => None,
        }
    }
    fn as_int(&self) -> Option<i64> {
        match self {
            Term::FixInteger(i) => Some(i64::from(i.value)),
            Term::BigInteger(b) => i64::try_from(&b.value).ok(),
            _ => None,
        }
    }
}

/// Flattens Erlang chardata / iodata (binaries, charlists, nested lists of both) into
/// text, as `IO.chardata_to_string/1` does; a bare integer is taken as a codepoint,
/// and a binary that is not UTF-8 is read lossily. `None` when the term is not
/// chardata (an atom, a number: `IO.puts` prints those through `String.Chars`).
pub fn chardata_to_string(term: &Term) -> Option<String> {
    // As deep as the term nests (iodata appended in a loop nests a level per append),
    // each level on a fresh stack segment when this one runs low.
    fn walk(term: &Term, out: &mut String) -> Option<()> {
        match term {
            Term::Binary(b) => out.push_str(&String::from_utf8_lossy(&b.bytes)),
            Term::List(l) => deep(|| {
                for e in &l.elements {
                    match e {
                        Term::FixInteger(i) => out.push(char::from_u32(i.value as u32)?),
                        other => walk(other, out)?,
                    }
                }
                Some(())
            })?,
            Term::ImproperList(l) => deep(|| {
                for e in &l.elements {
                    walk(e, out)?;
                }
                walk(&l.last, out)
            })?,
            Term::FixInteger(i) => out.push(char::from_u32(i.value as u32)?),
            _ => return None,
        }
        Some(())
    }
    let mut out = String::new();
    walk(term, &mut out).map(|_| out)
}

/// What `IO.puts(term)` prints, without its newline: chardata (binaries must be
/// UTF-8, as `:io.put_chars/2` takes them), or what `String.Chars` makes of an atom or
/// a number (`nil` is empty). `None` for anything else, where `IO.puts` raises.
pub fn puts_text(term: &Term) -> Option<String> {
    match term {
        Term::Atom(a) if a.name() == "nil" => Some(String::new()),
        Term::Atom(a) => Some(a.name().to_owned()),
        Term::FixInteger(_) | Term::BigInteger(_) | Term::Float(_) => Some(term.to_string()),
        Term::Binary(b) => String::from_utf8(b.bytes.to_vec()).ok(),
        _ => chardata_to_string(term),
    }
}

/// `[alias | Ref]`: the tag OTP 24+ `gen:call` puts in `$gen_call` requests.
pub fn alias_tag(reference: Reference) -> Term {
    Term::from(ImproperList::from((
        vec![atom("alias")],
        Term::Reference(Box::new(reference)),
    )))
}

/// The alias a reply goes to, as `gen:reply/2` finds it in the tag: `[alias | Alias]`
/// (a call), or `[[alias | Alias] | Ref]` (OTP 26's `gen_server:multi_call`, whose late
/// replies the alias, deactivated, drops).
pub fn alias_tag_ref(tag: &Term) -> Option<&Reference> {
    match tag {
        Term::ImproperList(l) if l.elements.len() == 1 && l.elements[0].is_atom("alias") => {
            l.last.as_reference()
        }
        Term::ImproperList(l) if l.elements.len() == 1 => match &l.elements[0] {
            Term::ImproperList(inner)
                if inner.elements.len() == 1 && inner.elements[0].is_atom("alias") =>
            {
                inner.last.as_reference()
            }
            _ => None,
        },
        _ => None,
    }
}

/// How much of a term [`truncated`] shows.
pub(crate) const LOG_TERM_CHARS: usize = 200;

/// `term` as text, cut after `max` bytes with `...`: for log lines about terms a peer
/// sent, which can be as large as the largest message. Formatting stops at the cut, so
/// a huge term costs no more than a small one.
pub(crate) fn truncated(term: &Term, max: usize) -> String {
    struct Bounded {
        out: String,
        max: usize,
    }
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = self.max.saturating_sub(self.out.len());
            if s.len() <= room {
                self.out.push_str(s);
                return Ok(());
            }
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.out.push_str(&s[..cut]);
            Err(std::fmt::Error)
        }
    }
    let mut b = Bounded {
        out: String::new(),
        max,
    };
    if display::elixir_bounded(&mut b, term, max).is_err() {
        b.out.push_str("...");
    }
    b.out
}

/// Whether `term` is small: at most `budget` units, an element (a map entry's key and
/// value each, a fun's captured values) or 64 bytes of a binary each, nested at most 64
/// deep. The walk stops at the budget, so its cost is bounded whatever a peer sent.
pub(crate) fn is_small(term: &Term, budget: usize) -> bool {
    fn walk(t: &Term, left: &mut usize, depth: usize) -> Option<()> {
        let cost = match t {
            Term::Binary(b) => 1 + b.bytes.len() / 64,
            Term::BitBinary(b) => 1 + b.bytes.len() / 64,
            _ => 1,
        };
        *left = left.checked_sub(cost)?;
        if depth > 64 {
            return None;
        }
        // A container of more elements than are left is refused before it is walked.
        let all = |ts: &[Term], left: &mut usize| {
            if ts.len() > *left {
                return None;
            }
            ts.iter().try_for_each(|e| walk(e, left, depth + 1))
        };
        match t {
            Term::List(l) => all(&l.elements, left),
            Term::Tuple(tu) => all(&tu.elements, left),
            Term::ImproperList(l) => {
                all(&l.elements, left)?;
                walk(&l.last, left, depth + 1)
            }
            Term::Map(m) if m.map.len().saturating_mul(2) > *left => None,
            Term::Map(m) => m.map.iter().try_for_each(|(k, v)| {
                walk(k, left, depth + 1).and_then(|()| walk(v, left, depth + 1))
            }),
            Term::InternalFun(f) => match &**f {
                InternalFun::Old { free_vars, .. } | InternalFun::New { free_vars, .. } => {
                    all(free_vars, left)
                }
            },
            _ => Some(()),
        }
    }
    let mut left = budget;
    walk(term, &mut left, 0).is_some()
}

/// A copy of `term` if it [`is_small`] within `budget`; `None`, having copied nothing,
/// for a larger one. For what is kept only in case it is to be shown (the message a
/// server was handling when it failed).
pub(crate) fn copy_if_small(term: &Term, budget: usize) -> Option<Term> {
    is_small(term, budget).then(|| term.clone())
}

/// Shows a term as [`truncated`] does, for `{}` in log lines: `Short(&request)`.
pub(crate) struct Short<'a>(pub &'a Term);

impl std::fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&truncated(self.0, LOG_TERM_CHARS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discard_takes_every_shape() {
        // Lists and tuples of numbers only (forgotten), mixed ones (each element
        // dropped), and containers inside both.
        let numbers = list((0..200).map(int).collect());
        let floats = tuple(vec![Term::Float(Float { value: 1.5 }), int(1)]);
        discard(numbers.clone());
        discard(floats.clone());
        discard(tuple(vec![
            atom("$gen_call"),
            numbers.clone(),
            binary("hi"),
        ]));
        discard(list(vec![
            numbers,
            floats,
            nil(),
            map([(int(1), binary("x"))]),
        ]));
        discard(binary("alone"));
    }

    #[test]
    fn truncated_stops_formatting_at_the_cut() {
        assert_eq!(truncated(&atom("ok"), 10), ":ok");
        let big = binary(vec![7u8; 50_000_000]);
        let t0 = std::time::Instant::now();
        let text = truncated(&tuple(vec![atom("x"), big]), 20);
        assert_eq!(text, r#"{:x, "\a\a\a\a\a\a\a..."#);
        assert!(t0.elapsed() < std::time::Duration::from_millis(500));
        assert_eq!(truncated(&binary("é".repeat(10)), 3), "\"é...");
        assert_eq!(truncated(&binary(vec![0u8; 100]), 9), "<<0, 0, 0...");
    }

    #[test]
    fn builds_and_matches() {
        let t = tuple(vec![atom("ok"), int(42), binary("hi")]);
        let e = t.as_tuple_n(3).unwrap();
        assert!(e[0].is_atom("ok"));
        assert_eq!(e[1].as_int(), Some(42));
        assert_eq!(e[2].as_binary(), Some(&b"hi"[..]));
        assert_eq!(int(1 << 40).as_int(), Some(1 << 40));
    }

    #[test]
    fn chardata_flattens_like_io_puts() {
        let t = list(vec![binary("a"), int('b' as i64), list(vec![binary("c")])]);
        assert_eq!(chardata_to_string(&t).unwrap(), "abc");
        assert!(chardata_to_string(&atom("x")).is_none());
    }

    #[test]
    fn alias_tag_round_trip() {
        let r = Reference::from(("n@h", vec![1, 2, 3]));
        let tag = alias_tag(r.clone());
        assert_eq!(alias_tag_ref(&tag), Some(&r));
        // OTP 26's multi_call: `[[alias | Alias] | Ref]`.
        let other = Reference::from(("n@h", vec![4, 5, 6]));
        let nested = Term::from(ImproperList::from((
            vec![tag],
            Term::Reference(Box::new(other)),
        )));
        assert_eq!(alias_tag_ref(&nested), Some(&r));
    }
}

#[cfg(test)]
mod shapes_tests;
