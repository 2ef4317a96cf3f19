//! Terms from a peer's bytes, checked and built in one pass.
//!
//! `eetf`'s decoder reads through `io::Read` a byte or a word at a time, trusts the
//! counts a peer announces, recurses without a bound, and gives charlists (`STRING_EXT`)
//! a representation of their own that we then had to walk the whole term again to
//! replace. On the hot path (every message) this decoder reads the slice directly and
//! builds the final representation at once: charlists as lists of integers, latin-1
//! atoms as latin-1. The rare kinds (funs, bignums, old floats, ports, bit strings, old
//! references) are checked by the [`guard`](super::guard) and go to `eetf` for just
//! their own bytes.
//!
//! It keeps the guard's rules as it reads, so it accepts exactly the bytes the guard
//! accepts (the `decode` fuzz target compares the two): a container's count is believed
//! only when the bytes left, less one per child still promised by the containers around
//! it, can back it, so everything preallocated is bounded by the frame's size; nesting
//! is bounded by `TermLimits::max_depth` (this decoder recurses once per level); every
//! read checks its bounds. When it refuses a frame, the guard walks the bytes again to
//! say exactly why (a refused frame is rare; a second pass over every accepted one was a
//! tenth of the time spent on a message).

use super::guard::{self, TermLimits};
use crate::term::{Atom, FixInteger, List, Term};
use eetf::{Binary, Float, ImproperList, Map, Pid, Reference, Tuple};

use super::guard::{
    ATOM_EXT, ATOM_UTF8_EXT, BINARY_EXT, INTEGER_EXT, LARGE_TUPLE_EXT, LIST_EXT, MAP_EXT,
    NEWER_REFERENCE_EXT, NEW_FLOAT_EXT, NEW_PID_EXT, NEW_REFERENCE_EXT, NIL_EXT, PID_EXT,
    SMALL_ATOM_EXT, SMALL_ATOM_UTF8_EXT, SMALL_INTEGER_EXT, SMALL_TUPLE_EXT, STRING_EXT, VERSION,
};

/// Why checked bytes still did not make a term (a non-finite float, an atom that is not
/// UTF-8, a kind `eetf` refuses).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TermError(String);

impl TermError {
    /// Bytes left after the last term a frame may hold.
    pub(crate) fn trailing() -> Self {
        TermError("trailing bytes after the last term".into())
    }
}

/// Where a decoded term goes: the end of its parent's elements, or the one slot of a
/// frame's top-level term (a vector there was an allocation per term).
trait Slot {
    fn push(&mut self, term: Term);
}

impl Slot for Vec<Term> {
    #[inline(always)]
    fn push(&mut self, term: Term) {
        Vec::push(self, term)
    }
}

impl Slot for Option<Term> {
    #[inline(always)]
    fn push(&mut self, term: Term) {
        *self = Some(term);
    }
}

/// Reads the terms of a frame body one after another.
pub(crate) struct TermReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    limits: &'a TermLimits,
    /// Containers open around the read position.
    depth: usize,
    /// Child terms announced by the open containers and not started yet.
    promised: usize,
}

impl<'a> TermReader<'a> {
    pub(crate) fn new(bytes: &'a [u8], limits: &'a TermLimits) -> Self {
        TermReader {
            bytes,
            pos: 0,
            limits,
            depth: 0,
            promised: 0,
        }
    }

    /// True when every byte has been read.
    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// The next term, version byte included.
    pub(crate) fn next_term(&mut self) -> Result<Term, TermError> {
        if self.u8()? != VERSION {
            return Err(self.error("a version byte"));
        }
        let mut one = None;
        self.push_term(&mut one)?;
        Ok(one.expect("one term"))
    }

    fn error(&self, what: &str) -> TermError {
        TermError(format!("expected {what} at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TermError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| TermError(format!("term truncated at byte {}", self.pos)))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TermError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u8(&mut self) -> Result<u8, TermError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, TermError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, TermError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Decodes one term onto the end of `out`. Terms are built where they will stay:
    /// returned by value instead, each (56 bytes) would be moved again at every level,
    /// which cost more than decoding it.
    fn push_term(&mut self, out: &mut impl Slot) -> Result<(), TermError> {
        if let Some(n) = self.integer() {
            out.push(Term::FixInteger(FixInteger::from(n)));
            return Ok(());
        }
        let start = self.pos;
        let tag = self.u8()?;
        match tag {
            NEW_FLOAT_EXT => {
                let value = f64::from_be_bytes(self.array()?);
                let float = Float::try_from(value).map_err(|e| TermError(e.to_string()))?;
                out.push(Term::Float(float));
            }
            ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT => {
                let atom = self.atom_body(tag)?;
                out.push(Term::Atom(atom));
            }
            NIL_EXT => out.push(Term::List(List::nil())),
            STRING_EXT => {
                // A list of small integers: `[1, 2, 3]` and `'abc'` travel so.
                let len = self.u16()?.into();
                let elements: Vec<Term> = self
                    .take(len)?
                    .iter()
                    .map(|&c| Term::FixInteger(FixInteger::from(i32::from(c))))
                    .collect();
                out.push(Term::List(List::from(elements)));
            }
            LIST_EXT => {
                // The elements, then the tail (usually NIL): `count + 1` children.
                let count = self.u32()? as usize;
                let children = count.saturating_add(1);
                self.open(children)?;
                let mut elements = self.terms(count, 1)?;
                self.promised -= 1;
                if self.bytes.get(self.pos) == Some(&NIL_EXT) {
                    self.pos += 1;
                    out.push(Term::List(List::from(elements)));
                } else {
                    self.push_term(&mut elements)?;
                    let last = elements.pop().expect("the tail");
                    out.push(Term::ImproperList(ImproperList::from((elements, last))));
                }
                self.close(children);
            }
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => {
                let count = if tag == SMALL_TUPLE_EXT {
                    self.u8()?.into()
                } else {
                    self.u32()? as usize
                };
                self.open(count)?;
                let elements = self.terms(count, 0)?;
                self.close(count);
                out.push(Term::Tuple(Tuple::from(elements)));
            }
            MAP_EXT => {
                let count = self.u32()? as usize;
                let children = count.saturating_mul(2);
                self.open(children)?;
                let pairs = self.terms(children, 0)?;
                self.close(children);
                let mut map = std::collections::HashMap::with_capacity(count);
                let mut pairs = pairs.into_iter();
                while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
                    map.insert(key, value);
                }
                out.push(Term::Map(Map::from(map)));
            }
            BINARY_EXT => {
                let len = self.u32()? as usize;
                let bytes = self.take(len)?.to_vec();
                out.push(Term::Binary(Binary::from(bytes)));
            }
            PID_EXT | NEW_PID_EXT => {
                let pid = self.pid_body(tag)?;
                out.push(Term::Pid(pid));
            }
            NEW_REFERENCE_EXT | NEWER_REFERENCE_EXT => {
                let words = self.u16()?;
                if words > guard::MAX_REFERENCE_WORDS {
                    return Err(self.error("at most 5 reference id words"));
                }
                let node = self.atom()?;
                let creation = if tag == NEW_REFERENCE_EXT {
                    self.u8()?.into()
                } else {
                    self.u32()?
                };
                let id = (0..words).map(|_| self.u32()).collect::<Result<_, _>>()?;
                out.push(Term::from(Reference { node, id, creation }));
            }
            _ => {
                // The rare kinds, and tags that are no term: the guard checks this
                // term's bytes (at the depth it is found), then `eetf` decodes them.
                let limits = TermLimits {
                    max_depth: self.limits.max_depth - self.depth,
                };
                let len = guard::term_len(&self.bytes[start..], &limits)
                    .map_err(|e| TermError(e.to_string()))?;
                self.pos = start;
                let body = self.take(len)?;
                let mut bytes = Vec::with_capacity(1 + len);
                bytes.push(VERSION);
                bytes.extend_from_slice(body);
                out.push(Term::decode(&bytes[..]).map_err(|e| TermError(e.to_string()))?);
            }
        }
        Ok(())
    }

    /// The `SMALL_INTEGER_EXT` or `INTEGER_EXT` at the read position, if that is what
    /// is there (whole).
    #[inline(always)]
    fn integer(&mut self) -> Option<i32> {
        let (n, len) = match *self.bytes.get(self.pos..)? {
            [SMALL_INTEGER_EXT, n, ..] => (i32::from(n), 2),
            [INTEGER_EXT, a, b, c, d, ..] => (i32::from_be_bytes([a, b, c, d]), 5),
            _ => return None,
        };
        self.pos += len;
        Some(n)
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Opens a container of `children` terms, as the guard accepts one: nested no
    /// deeper than the limit, and each child backed by at least one byte not promised to
    /// another. An empty container opens nothing (the guard does not count its depth).
    fn open(&mut self, children: usize) -> Result<(), TermError> {
        if children == 0 {
            return Ok(());
        }
        if self.depth >= self.limits.max_depth {
            return Err(self.error("less nesting"));
        }
        if children > self.left().saturating_sub(self.promised) {
            return Err(self.error("fewer children than announced"));
        }
        self.depth += 1;
        self.promised += children;
        Ok(())
    }

    /// Closes what [`open`](Self::open) opened, once its children are all read.
    fn close(&mut self, children: usize) {
        if children > 0 {
            self.depth -= 1;
        }
    }

    /// `count` terms in a row (children of an open container), in a vector with room
    /// for `extra` more.
    fn terms(&mut self, count: usize, extra: usize) -> Result<Vec<Term>, TermError> {
        let mut elements = Vec::with_capacity(count + extra);
        let mut left = count;
        while left > 0 {
            // A run of integers (list elements, mostly), read into a buffer and appended
            // in one go: pushed one at a time, each term was built on the stack and
            // copied into place, which took twice as long.
            let mut run = [0i32; 32];
            let mut k = 0;
            while k < run.len().min(left) {
                match self.integer() {
                    Some(n) => run[k] = n,
                    None => break,
                }
                k += 1;
            }
            elements.extend(
                run[..k]
                    .iter()
                    .map(|&n| Term::FixInteger(FixInteger::from(n))),
            );
            left -= k;
            self.promised -= k;
            if k < run.len() && left > 0 {
                self.promised -= 1;
                self.push_term(&mut elements)?;
                left -= 1;
            }
        }
        Ok(elements)
    }

    fn atom(&mut self) -> Result<Atom, TermError> {
        let tag = self.u8()?;
        match tag {
            ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT => self.atom_body(tag),
            _ => Err(self.error("an atom")),
        }
    }

    fn atom_body(&mut self, tag: u8) -> Result<Atom, TermError> {
        let len = match tag {
            ATOM_EXT | ATOM_UTF8_EXT => self.u16()?.into(),
            _ => self.u8()?.into(),
        };
        let bytes = self.take(len)?;
        let name = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            // ATOM_EXT and SMALL_ATOM_EXT are latin-1: each byte is its character.
            Err(_) if matches!(tag, ATOM_EXT | SMALL_ATOM_EXT) => {
                bytes.iter().map(|&b| char::from(b)).collect()
            }
            Err(e) => return Err(TermError(format!("atom is not UTF-8: {e}"))),
        };
        Ok(Atom { name })
    }

    fn pid_body(&mut self, tag: u8) -> Result<Pid, TermError> {
        let node = self.atom()?;
        let id = self.u32()?;
        let serial = self.u32()?;
        let creation = if tag == PID_EXT {
            self.u8()?.into()
        } else {
            self.u32()?
        };
        Ok(Pid {
            node,
            id,
            serial,
            creation,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::term::{atom, binary, int, list, tuple};

    fn encoded(term: &Term) -> Vec<u8> {
        let mut out = Vec::new();
        term.encode(&mut out).unwrap();
        out
    }

    fn round_trip(term: &Term) -> Term {
        let bytes = encoded(term);
        let limits = TermLimits::default();
        guard::check_terms(&bytes, 1, &limits).unwrap();
        TermReader::new(&bytes, &limits).next_term().unwrap()
    }

    /// A term of every kind `eetf` has (charlists aside: see below), with the edges of
    /// each encoding: the writer's test uses them too.
    pub(in crate::connection) fn every_kind() -> Vec<Term> {
        let pid = Term::Pid(Pid::new("a@b", 1, 2, 3));
        let reference = Term::from(Reference {
            node: Atom::from("a@b"),
            id: vec![1, 2, 3],
            creation: 7,
        });
        let mut map = std::collections::HashMap::new();
        map.insert(atom("k"), list(vec![int(1), atom("v")]));
        map.insert(int(2), binary(b"two"));
        vec![
            int(0),
            int(255),
            int(256),
            int(-1),
            int(i32::MAX.into()),
            int(i32::MIN.into()),
            Term::Float(Float::try_from(-1.5).unwrap()),
            atom("ok"),
            atom("ünïcödé"),
            atom(&"x".repeat(300)),
            list(vec![]),
            list(vec![int(1), int(2), int(255)]),
            list((0..70_000).map(|i| int(i % 256)).collect()),
            list(vec![int(1), atom("a"), list(vec![int(2)])]),
            list((1001..1200).map(int).collect()),
            Term::ImproperList(ImproperList::from((vec![int(1)], atom("tail")))),
            tuple(vec![]),
            tuple((0..300).map(int).collect()),
            binary(b""),
            binary(b"bytes"),
            pid,
            reference,
            Term::Map(Map::from(map)),
            Term::BigInteger(eetf::BigInteger::from(i64::MAX)),
            Term::from(eetf::ExternalFun::from(("erlang", "node", 0))),
            Term::BitBinary(eetf::BitBinary::from((vec![1, 2], 3))),
            Term::Port(eetf::Port {
                node: Atom::from("a@b"),
                id: 9,
                creation: 1,
            }),
        ]
    }

    /// Every kind `eetf` can encode comes back as the same term, alone and nested;
    /// charlists (which eetf decodes as `ByteList`) come back as lists of integers.
    #[test]
    fn every_kind_round_trips() {
        let terms = every_kind();
        let all = tuple(terms.clone());
        let terms = terms.into_iter().chain([all]);
        for term in terms {
            assert_eq!(round_trip(&term), term, "{term}");
        }
        let charlist = Term::ByteList(eetf::ByteList::from(vec![1, 2, 3]));
        assert_eq!(round_trip(&charlist), list(vec![int(1), int(2), int(3)]));
        let nested = tuple(vec![charlist.clone(), list(vec![charlist])]);
        let three = list(vec![int(1), int(2), int(3)]);
        assert_eq!(
            round_trip(&nested),
            tuple(vec![three.clone(), list(vec![three])])
        );
    }

    #[test]
    fn latin1_atoms_are_latin1() {
        // SMALL_ATOM_EXT "é" in latin-1: one byte, 0xE9.
        let bytes = [VERSION, SMALL_ATOM_EXT, 1, 0xE9];
        let limits = TermLimits::default();
        guard::check_terms(&bytes, 1, &limits).unwrap();
        let term = TermReader::new(&bytes, &limits).next_term().unwrap();
        assert_eq!(term, atom("é"));
    }

    #[test]
    fn invalid_utf8_atoms_and_nan_are_errors() {
        let limits = TermLimits::default();
        let bad_atom = [VERSION, SMALL_ATOM_UTF8_EXT, 1, 0xE9];
        assert!(TermReader::new(&bad_atom, &limits).next_term().is_err());
        let mut nan = vec![VERSION, NEW_FLOAT_EXT];
        nan.extend_from_slice(&f64::NAN.to_be_bytes());
        assert!(TermReader::new(&nan, &limits).next_term().is_err());
    }

    /// Whether the reader alone takes `bytes` as exactly one term.
    fn reads_one(bytes: &[u8], limits: &TermLimits) -> bool {
        let mut reader = TermReader::new(bytes, limits);
        reader.next_term().is_ok() && reader.at_end()
    }

    /// Without the guard in front, the reader keeps the guard's rules: it takes and
    /// refuses the same frames, at the same limits.
    #[test]
    fn refuses_what_the_guard_refuses() {
        let limits = TermLimits { max_depth: 8 };
        // `levels` one-element tuples around an atom.
        let nested = |levels: usize| {
            let mut bytes = vec![VERSION];
            bytes.extend(std::iter::repeat_n([SMALL_TUPLE_EXT, 1], levels).flatten());
            bytes.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, 1, b'a']);
            bytes
        };
        // `levels` one-element lists around an integer: `[[[1]]]`.
        let nested_lists = |levels: usize| {
            let mut bytes = vec![VERSION];
            bytes.extend(std::iter::repeat_n([LIST_EXT, 0, 0, 0, 1], levels).flatten());
            bytes.extend_from_slice(&[SMALL_INTEGER_EXT, 1]);
            bytes.extend(std::iter::repeat_n(NIL_EXT, levels));
            bytes
        };
        let mut cases = vec![
            ("8 levels", nested(8)),
            ("9 levels", nested(9)),
            ("8 levels of lists", nested_lists(8)),
            ("9 levels of lists", nested_lists(9)),
            // {[_ announcing 2^32 - 1], _}: more than the bytes left can back.
            (
                "a count beyond the bytes",
                vec![
                    VERSION,
                    SMALL_TUPLE_EXT,
                    2,
                    LIST_EXT,
                    255,
                    255,
                    255,
                    255,
                    NIL_EXT,
                ],
            ),
            // A tuple of 3 whose first child, a list of 2, takes the bytes its
            // siblings are owed: the guard counts them before the list's count.
            (
                "a count that takes the siblings' bytes",
                vec![
                    VERSION,
                    SMALL_TUPLE_EXT,
                    3,
                    LIST_EXT,
                    0,
                    0,
                    0,
                    5,
                    NIL_EXT,
                    NIL_EXT,
                    NIL_EXT,
                    NIL_EXT,
                    NIL_EXT,
                ],
            ),
            ("trailing bytes", {
                let mut b = encoded(&atom("a"));
                b.push(0);
                b
            }),
            ("compressed", vec![VERSION, 80, 0, 0, 0, 1, 0]),
            ("an atom cache reference", vec![VERSION, 82, 0]),
            ("an unknown tag", vec![VERSION, 1]),
            (
                "a bit binary with no bits",
                vec![VERSION, 77, 0, 0, 0, 1, 0, 7],
            ),
        ];
        // A reference with 6 id words, one more than any node makes.
        let mut reference = vec![
            VERSION,
            NEWER_REFERENCE_EXT,
            0,
            6,
            SMALL_ATOM_UTF8_EXT,
            1,
            b'a',
        ];
        reference.extend_from_slice(&[0; 4 + 6 * 4]);
        cases.push(("6 reference words", reference));
        let mut accepted = Vec::new();
        for (what, bytes) in &cases {
            let guard = guard::check_terms(bytes, 1, &limits).is_ok();
            assert_eq!(reads_one(bytes, &limits), guard, "{what}");
            if guard {
                accepted.push(*what);
            }
        }
        assert_eq!(accepted, ["8 levels", "8 levels of lists"]);
    }

    /// Unchecked bytes (not how it is used) still give an error, not a panic.
    #[test]
    fn truncated_input_is_an_error() {
        let bytes = encoded(&tuple(vec![atom("a"), binary(b"xyz"), int(300)]));
        let limits = TermLimits::default();
        for cut in 0..bytes.len() {
            assert!(TermReader::new(&bytes[..cut], &limits).next_term().is_err());
        }
    }
}
