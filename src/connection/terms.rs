//! Terms from a peer's bytes, checked and built in one pass: the one place that knows
//! the bounds of the external term format and says why a frame was refused.
//!
//! `eetf`'s decoder reads through `io::Read` a byte or a word at a time, trusts the
//! counts a peer announces (`Vec::with_capacity(count)`), recurses without a bound, and
//! gives charlists (`STRING_EXT`) a representation of their own. This reader takes the
//! slice directly and builds the final representation at once: charlists as lists of
//! integers, latin-1 atoms as latin-1. A container's count is believed only when the
//! bytes left, less one per child still promised by the containers around it, can back
//! it, so everything preallocated is bounded by the frame's size; nesting is bounded by
//! [`TermLimits::max_depth`] (the reader recurses once per level); every read checks its
//! bounds. Funs are built here too, their free variables read as any container's
//! children; only the rare leaf kinds (bignums, old floats, ports, bit strings, old
//! references, external funs) go to `eetf`, for just their own bytes, once checked.
//!
//! Reference: <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html>.

use super::ext::*;
use crate::term::{Atom, FixInteger, List, Term};
use eetf::{Binary, Float, ImproperList, InternalFun, Map, Pid, Reference, Tuple};

/// Limits for one frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TermLimits {
    /// Deepest container nesting accepted. The reader recurses (and drops and hashes
    /// recursively later) once per level, so this bounds its stack use.
    pub max_depth: usize,
}

impl Default for TermLimits {
    /// 512 levels: far beyond what real OTP messages use, well within a 2 MiB stack.
    fn default() -> Self {
        Self { max_depth: 512 }
    }
}

/// Why bytes were refused. Positions are byte offsets into the bytes given to the
/// reader (a frame body, after its pass-through byte).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TermError {
    #[error("empty frame where a term was expected")]
    Empty,
    #[error("expected version byte 131 at byte {pos}, found {found}")]
    BadVersion { pos: usize, found: u8 },
    #[error("term truncated at byte {0}")]
    Truncated(usize),
    #[error("term nested deeper than {0}")]
    TooDeep(usize),
    #[error("unknown term tag {tag} at byte {pos}")]
    UnknownTag { tag: u8, pos: usize },
    #[error("count {count} at byte {pos} exceeds the {left} bytes left")]
    CountTooLarge { count: u64, pos: usize, left: u64 },
    #[error("compressed terms are not accepted in distribution messages")]
    Compressed,
    #[error("atom cache reference outside a distribution header")]
    AtomCacheRef,
    #[error("LOCAL_EXT terms are only meaningful inside the runtime that made them")]
    Local,
    #[error("expected {expected} at byte {pos}, found tag {tag}")]
    Unexpected {
        expected: &'static str,
        tag: u8,
        pos: usize,
    },
    #[error("reference at byte {pos} has {words} id words, at most 5 are allowed")]
    ReferenceWords { words: u16, pos: usize },
    #[error("bit binary at byte {pos} has {len} bytes and {bits} bits in its last byte")]
    BitCount { len: u32, bits: u8, pos: usize },
    #[error("fun at byte {pos} announces {size} bytes but its fields take {actual}")]
    FunSize {
        size: u32,
        actual: usize,
        pos: usize,
    },
    #[error("trailing bytes after the last term, from byte {0}")]
    Trailing(usize),
    /// Well-formed bytes that are still no term we take: a float that is not finite,
    /// an atom that is not UTF-8, a kind `eetf` refuses.
    #[error("{what} at byte {pos}")]
    Invalid { what: String, pos: usize },
}

impl TermError {
    /// The byte the error names, if it names one.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn position(&self) -> Option<usize> {
        use TermError::*;
        match *self {
            BadVersion { pos, .. }
            | UnknownTag { pos, .. }
            | CountTooLarge { pos, .. }
            | Unexpected { pos, .. }
            | ReferenceWords { pos, .. }
            | BitCount { pos, .. }
            | FunSize { pos, .. }
            | Invalid { pos, .. } => Some(pos),
            Truncated(pos) | Trailing(pos) => Some(pos),
            Empty | TooDeep(_) | Compressed | AtomCacheRef | Local => None,
        }
    }
}

/// The control term and the payload, if any, of a frame body: exactly one or two terms.
pub(crate) fn frame_terms(
    body: &[u8],
    limits: &TermLimits,
) -> Result<(Term, Option<Term>), TermError> {
    let mut reader = TermReader::new(body, limits);
    let control = reader.next_term()?;
    let payload = if reader.at_end() {
        None
    } else {
        Some(reader.next_term()?)
    };
    if !reader.at_end() {
        return Err(TermError::Trailing(reader.pos));
    }
    Ok((control, payload))
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

/// The fields of a fun before its free variables (`FUN_EXT` keeps its index and uniq
/// in `old_index` and `old_uniq`).
struct FunHeader {
    /// Where a `NEW_FUN_EXT`'s size says it ends.
    end: usize,
    arity: u8,
    uniq: [u8; 16],
    index: u32,
    free: u32,
    module: Atom,
    old_index: i32,
    old_uniq: i32,
    pid: Pid,
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
        if self.bytes.is_empty() {
            return Err(TermError::Empty);
        }
        let pos = self.pos;
        let found = self.u8()?;
        if found != VERSION {
            return Err(TermError::BadVersion { pos, found });
        }
        let mut one = None;
        self.push_term(&mut one)?;
        Ok(one.expect("one term"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TermError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(TermError::Truncated(self.pos))?;
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
    ///
    /// Containers recurse through here, so what is on the stack per level is kept
    /// small: each kind is read by a function of its own, and the leaves (whatever has
    /// no child term) by one that is never inlined.
    fn push_term(&mut self, out: &mut impl Slot) -> Result<(), TermError> {
        if let Some(n) = self.integer() {
            out.push(Term::FixInteger(FixInteger::from(n)));
            return Ok(());
        }
        let start = self.pos;
        let tag = self.u8()?;
        match tag {
            LIST_EXT => self.list(out, start),
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => self.tuple(out, tag, start),
            MAP_EXT => self.map(out, start),
            NEW_FUN_EXT | FUN_EXT => {
                let fun = self.fun(tag, start)?;
                out.push(fun);
                Ok(())
            }
            _ => self.leaf(out, tag, start),
        }
    }

    /// `LIST_EXT`: the elements, then the tail (usually NIL): `count + 1` children.
    fn list(&mut self, out: &mut impl Slot, start: usize) -> Result<(), TermError> {
        let count = self.u32()?;
        let children = (count as usize).saturating_add(1);
        self.open(count.into(), children, start)?;
        let mut elements = self.terms(count as usize, 1)?;
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
        Ok(())
    }

    fn tuple(&mut self, out: &mut impl Slot, tag: u8, start: usize) -> Result<(), TermError> {
        let count = if tag == SMALL_TUPLE_EXT {
            self.u8()?.into()
        } else {
            self.u32()?
        };
        self.open(count.into(), count as usize, start)?;
        let elements = self.terms(count as usize, 0)?;
        self.close(count as usize);
        out.push(Term::Tuple(Tuple::from(elements)));
        Ok(())
    }

    fn map(&mut self, out: &mut impl Slot, start: usize) -> Result<(), TermError> {
        let count = self.u32()?;
        let children = (count as usize).saturating_mul(2);
        self.open(count.into(), children, start)?;
        let pairs = self.terms(children, 0)?;
        self.close(children);
        let mut map = std::collections::HashMap::with_capacity(count as usize);
        let mut pairs = pairs.into_iter();
        while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
            map.insert(key, value);
        }
        out.push(Term::Map(Map::from(map)));
        Ok(())
    }

    /// Every kind without child terms.
    #[inline(never)]
    fn leaf(&mut self, out: &mut impl Slot, tag: u8, start: usize) -> Result<(), TermError> {
        match tag {
            // Reached only when cut short (`integer` takes whole ones).
            SMALL_INTEGER_EXT | INTEGER_EXT => return Err(TermError::Truncated(self.pos)),
            NEW_FLOAT_EXT => {
                let value = f64::from_be_bytes(self.array()?);
                let float = Float::try_from(value).map_err(|e| TermError::Invalid {
                    what: e.to_string(),
                    pos: start,
                })?;
                out.push(Term::Float(float));
            }
            ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT => {
                let atom = self.atom_body(tag, start)?;
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
                if words > MAX_REFERENCE_WORDS {
                    return Err(TermError::ReferenceWords { words, pos: start });
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
            FLOAT_EXT | BIT_BINARY_EXT | SMALL_BIG_EXT | LARGE_BIG_EXT | PORT_EXT
            | NEW_PORT_EXT | V4_PORT_EXT | REFERENCE_EXT | EXPORT_EXT => {
                self.skip_leaf(tag, start)?;
                // Checked, and with no child term: `eetf` decodes just these bytes.
                let mut bytes = Vec::with_capacity(1 + self.pos - start);
                bytes.push(VERSION);
                bytes.extend_from_slice(&self.bytes[start..self.pos]);
                let term = Term::decode(&bytes[..]).map_err(|e| TermError::Invalid {
                    what: e.to_string(),
                    pos: start,
                })?;
                out.push(term);
            }
            ATOM_CACHE_REF => return Err(TermError::AtomCacheRef),
            COMPRESSED => return Err(TermError::Compressed),
            LOCAL_EXT => return Err(TermError::Local),
            tag => return Err(TermError::UnknownTag { tag, pos: start }),
        }
        Ok(())
    }

    /// Reads over a term of a kind with no child terms, checking it as `eetf` needs.
    fn skip_leaf(&mut self, tag: u8, start: usize) -> Result<(), TermError> {
        match tag {
            FLOAT_EXT => {
                self.take(31)?;
            }
            BIT_BINARY_EXT => {
                let len = self.u32()?;
                let bits = self.u8()?;
                // As erts: 1..=8 bits are used in a last byte, and there is no last byte
                // without bits. (`eetf` would shift by 8 - bits and panic otherwise.)
                if bits > 8 || (bits == 0) != (len == 0) {
                    return Err(TermError::BitCount {
                        len,
                        bits,
                        pos: start,
                    });
                }
                self.take(len as usize)?;
            }
            SMALL_BIG_EXT => {
                let len = self.u8()?;
                self.take(1 + usize::from(len))?;
            }
            LARGE_BIG_EXT => {
                let len = self.u32()? as usize;
                self.take(len.saturating_add(1))?;
            }
            PORT_EXT | REFERENCE_EXT => {
                self.atom()?;
                self.take(4 + 1)?;
            }
            NEW_PORT_EXT => {
                self.atom()?;
                self.take(4 + 4)?;
            }
            V4_PORT_EXT => {
                self.atom()?;
                self.take(8 + 4)?;
            }
            EXPORT_EXT => {
                self.atom()?;
                self.atom()?;
                let pos = self.pos;
                match self.u8()? {
                    SMALL_INTEGER_EXT => {
                        self.take(1)?;
                    }
                    tag => {
                        return Err(TermError::Unexpected {
                            expected: "a small integer arity",
                            tag,
                            pos,
                        })
                    }
                }
            }
            _ => unreachable!("skip_leaf of tag {tag}"),
        }
        Ok(())
    }

    /// `NEW_FUN_EXT` (and `FUN_EXT`, as OTP before 23 sent funs): the fields, then the
    /// free variables, child terms as a container's. A new fun's size counts itself and
    /// everything after it, and must match.
    fn fun(&mut self, tag: u8, start: usize) -> Result<Term, TermError> {
        let header = self.fun_header(tag, start)?;
        self.open(header.free.into(), header.free as usize, start)?;
        let free_vars = self.terms(header.free as usize, 0)?;
        self.close(header.free as usize);
        let FunHeader {
            end,
            arity,
            uniq,
            index,
            module,
            old_index,
            old_uniq,
            pid,
            ..
        } = header;
        if tag == FUN_EXT {
            return Ok(Term::from(InternalFun::Old {
                module,
                pid,
                free_vars,
                index: old_index,
                uniq: old_uniq,
            }));
        }
        if self.pos != end {
            return Err(TermError::FunSize {
                size: (end - start - 1) as u32,
                actual: self.pos - start - 1,
                pos: start,
            });
        }
        Ok(Term::from(InternalFun::New {
            module,
            arity,
            pid,
            free_vars,
            index,
            uniq,
            old_index,
            old_uniq,
        }))
    }

    /// A fun's fields before its free variables.
    #[inline(never)]
    fn fun_header(&mut self, tag: u8, start: usize) -> Result<FunHeader, TermError> {
        if tag == FUN_EXT {
            let free = self.u32()?;
            let pid = self.pid()?;
            let module = self.atom()?;
            let index = self.fix_integer()?;
            let uniq = self.fix_integer()?;
            return Ok(FunHeader {
                end: 0,
                arity: 0,
                uniq: [0; 16],
                index: 0,
                free,
                module,
                old_index: index,
                old_uniq: uniq,
                pid,
            });
        }
        let size_pos = self.pos;
        let size = self.u32()?;
        let end = size_pos.saturating_add(size as usize);
        if size < 4 || end > self.bytes.len() {
            return Err(TermError::CountTooLarge {
                count: size.into(),
                pos: start,
                left: (self.bytes.len() - self.pos) as u64 + 4,
            });
        }
        let arity = self.u8()?;
        let uniq: [u8; 16] = self.array()?;
        let index = self.u32()?;
        let free = self.u32()?;
        let module = self.atom()?;
        let old_index = self.fix_integer()?;
        let old_uniq = self.fix_integer()?;
        let pid = self.pid()?;
        Ok(FunHeader {
            end,
            arity,
            uniq,
            index,
            free,
            module,
            old_index,
            old_uniq,
            pid,
        })
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

    /// `SMALL_INTEGER_EXT` or `INTEGER_EXT`, where the format requires one (the fun
    /// fields).
    fn fix_integer(&mut self) -> Result<i32, TermError> {
        if let Some(n) = self.integer() {
            return Ok(n);
        }
        let pos = self.pos;
        match self.u8()? {
            SMALL_INTEGER_EXT | INTEGER_EXT => Err(TermError::Truncated(self.pos)),
            tag => Err(TermError::Unexpected {
                expected: "an integer",
                tag,
                pos,
            }),
        }
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Opens a container announcing `count` that has `children` child terms: each
    /// child must be backed by at least one byte not promised to another, and the
    /// nesting must stay within the limit. An empty container opens nothing.
    fn open(&mut self, count: u64, children: usize, pos: usize) -> Result<(), TermError> {
        if children == 0 {
            return Ok(());
        }
        let left = self.left().saturating_sub(self.promised);
        if children > left {
            return Err(TermError::CountTooLarge {
                count,
                pos,
                left: left as u64,
            });
        }
        if self.depth >= self.limits.max_depth {
            return Err(TermError::TooDeep(self.limits.max_depth));
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

    /// An atom where the format requires one (node, module, function names): no
    /// container can hide in those places.
    fn atom(&mut self) -> Result<Atom, TermError> {
        let pos = self.pos;
        let tag = self.u8()?;
        match tag {
            ATOM_EXT | SMALL_ATOM_EXT | ATOM_UTF8_EXT | SMALL_ATOM_UTF8_EXT => {
                self.atom_body(tag, pos)
            }
            ATOM_CACHE_REF => Err(TermError::AtomCacheRef),
            tag => Err(TermError::Unexpected {
                expected: "an atom",
                tag,
                pos,
            }),
        }
    }

    fn atom_body(&mut self, tag: u8, start: usize) -> Result<Atom, TermError> {
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
            Err(e) => {
                return Err(TermError::Invalid {
                    what: format!("atom is not UTF-8: {e}"),
                    pos: start,
                })
            }
        };
        Ok(Atom { name })
    }

    /// A pid where the format requires one (a fun's creator).
    fn pid(&mut self) -> Result<Pid, TermError> {
        let pos = self.pos;
        match self.u8()? {
            tag @ (PID_EXT | NEW_PID_EXT) => self.pid_body(tag),
            tag => Err(TermError::Unexpected {
                expected: "a pid",
                tag,
                pos,
            }),
        }
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

#[cfg(any(test, feature = "fuzzing"))]
/// The deepest container nesting in `term`, and how many terms it holds. Iterative: a
/// term at the depth limit would take its own stack otherwise.
pub(crate) fn depth_and_size(term: &Term) -> (usize, usize) {
    let mut deepest = 0;
    let mut size = 0;
    let mut stack = vec![(term, 0usize)];
    while let Some((t, depth)) = stack.pop() {
        size += 1;
        let children: Vec<&Term> = match t {
            Term::List(l) => l.elements.iter().collect(),
            Term::ImproperList(l) => l.elements.iter().chain([&*l.last]).collect(),
            Term::Tuple(t) => t.elements.iter().collect(),
            Term::Map(m) => m.map.iter().flat_map(|(k, v)| [k, v]).collect(),
            Term::InternalFun(f) => match &**f {
                eetf::InternalFun::New { free_vars, .. }
                | eetf::InternalFun::Old { free_vars, .. } => free_vars.iter().collect(),
            },
            _ => Vec::new(),
        };
        if !children.is_empty() {
            deepest = deepest.max(depth + 1);
        }
        stack.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
    (deepest, size)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::term::{atom, binary, int, list, tuple};
    use eetf::{BigInteger, BitBinary, ExternalFun, Port};
    use std::collections::HashMap;

    /// How many terms `bytes` holds (each with its version byte), at most `max_terms`,
    /// as the reader takes them.
    fn check_terms(
        bytes: &[u8],
        max_terms: usize,
        limits: &TermLimits,
    ) -> Result<usize, TermError> {
        let mut reader = TermReader::new(bytes, limits);
        let mut n = 0;
        loop {
            if n == max_terms {
                return Err(TermError::Trailing(reader.pos));
            }
            reader.next_term()?;
            n += 1;
            if reader.at_end() {
                return Ok(n);
            }
        }
    }

    /// The length of the one term at the start of `bytes` (version byte included);
    /// what follows is left alone.
    fn term_len(bytes: &[u8], limits: &TermLimits) -> Result<usize, TermError> {
        let mut reader = TermReader::new(bytes, limits);
        reader.next_term()?;
        Ok(reader.pos)
    }

    fn encoded(term: &Term) -> Vec<u8> {
        let mut out = Vec::new();
        term.encode(&mut out).unwrap();
        out
    }

    fn round_trip(term: &Term) -> Term {
        let bytes = encoded(term);
        let limits = TermLimits::default();
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

    /// The limits at their edges: what is accepted and what is refused, and why.
    #[test]
    fn refuses_what_exceeds_the_limits() {
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
            // siblings are owed: they are counted before the list's count.
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
            if reads_one(bytes, &limits) {
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

    fn limits() -> TermLimits {
        TermLimits::default()
    }

    fn encode(term: &Term) -> Vec<u8> {
        let mut buf = Vec::new();
        term.encode(&mut buf).expect("encode");
        buf
    }

    fn decode(bytes: &[u8]) -> Term {
        Term::decode(bytes).expect("decode")
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn pid(node: &str) -> Pid {
        Pid::new(node, 77, 3, 0x1234_5678)
    }

    /// A term of every kind `eetf` can encode.
    fn samples() -> Vec<Term> {
        let long_atom = "é".repeat(200); // 400 bytes: ATOM_UTF8_EXT
        let nested: HashMap<Term, Term> = [
            (Term::from(Atom::from("k")), Term::from(Atom::from("v"))),
            (
                Term::from(Tuple::from(vec![Term::from(FixInteger::from(1))])),
                Term::from(Map::from([(
                    Term::from(Binary::from(vec![1, 2])),
                    Term::from(List::nil()),
                )])),
            ),
        ]
        .into_iter()
        .collect();
        let new_fun = InternalFun::New {
            module: Atom::from("erl_eval"),
            arity: 2,
            pid: pid("a@host"),
            free_vars: vec![
                Term::from(FixInteger::from(7)),
                Term::from(List::from(vec![Term::from(Atom::from("x"))])),
            ],
            index: 42,
            uniq: [9; 16],
            old_index: 1,
            old_uniq: 100_000,
        };
        let new_fun_closed = InternalFun::New {
            module: Atom::from("m"),
            arity: 0,
            pid: pid("a@host"),
            free_vars: vec![],
            index: 0,
            uniq: [0; 16],
            old_index: -1,
            old_uniq: 0,
        };
        let old_fun = InternalFun::Old {
            module: Atom::from("m"),
            pid: pid("a@host"),
            free_vars: vec![Term::from(Atom::from("free"))],
            index: 3,
            uniq: -4,
        };
        let big = BigInteger {
            value: BigInteger::from(u64::MAX).value.pow(40),
        };
        let mixed = List::from(vec![
            Term::from(Atom::from("a")),
            Term::from(FixInteger::from(1000)),
            Term::from(Binary::from(vec![0; 3])),
        ]);
        vec![
            Term::from(Atom::from("")),
            Term::from(Atom::from("hello")),
            Term::from(Atom::from(long_atom.as_str())),
            Term::from(FixInteger::from(0)),
            Term::from(FixInteger::from(255)),
            Term::from(FixInteger::from(-1)),
            Term::from(FixInteger::from(i32::MAX)),
            Term::from(BigInteger::from(u64::MAX)),
            Term::from(BigInteger::from(i64::MIN)),
            Term::from(big),
            Term::from(Float::try_from(3.5f64).expect("float")),
            Term::from(pid("node@host")),
            Term::from(Port {
                node: Atom::from("n@h"),
                id: 5,
                creation: 9,
            }),
            Term::from(Port {
                node: Atom::from("n@h"),
                id: 1 << 40,
                creation: 9,
            }),
            Term::from(Reference::from(("n@h", vec![1, 2, 3]))),
            Term::from(Reference::from(("n@h", vec![1, 2, 3, 4, 5]))),
            Term::from(ExternalFun::from(("lists", "map", 2))),
            Term::from(new_fun),
            Term::from(new_fun_closed),
            Term::from(old_fun),
            Term::from(Binary::from(vec![])),
            Term::from(Binary::from(vec![1, 2, 3])),
            Term::from(BitBinary::from((vec![1, 2, 3], 3))),
            Term::from(BitBinary::from((vec![0xff], 8))),
            Term::from(List::nil()),
            Term::from(List::from(vec![
                Term::from(FixInteger::from(1)),
                Term::from(FixInteger::from(2)),
            ])),
            Term::from(mixed.clone()),
            Term::from(ImproperList::from((
                vec![Term::from(Atom::from("a"))],
                Term::from(Atom::from("tail")),
            ))),
            Term::from(Tuple::from(vec![])),
            Term::from(Tuple::from(vec![Term::from(mixed); 3])),
            Term::from(Tuple::from(vec![Term::from(List::nil()); 300])),
            Term::from(Map::from(HashMap::<Term, Term>::new())),
            Term::from(Map::from(nested)),
        ]
    }

    #[test]
    fn eetf_encodings_pass_and_decode() {
        for term in samples() {
            let bytes = encode(&term);
            assert_eq!(check_terms(&bytes, 2, &limits()), Ok(1), "{term}");
            assert_eq!(term_len(&bytes, &limits()), Ok(bytes.len()));
            // eetf writes lists of bytes as STRING_EXT, which are read as lists.
            let back = TermReader::new(&bytes, &limits())
                .next_term()
                .expect("read");
            assert!(back == term || encode(&back) == bytes, "{term}");
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        for term in samples() {
            let bytes = encode(&term);
            for cut in 0..bytes.len() {
                assert!(
                    check_terms(&bytes[..cut], 2, &limits()).is_err(),
                    "{term} {cut}"
                );
                assert!(term_len(&bytes[..cut], &limits()).is_err());
            }
        }
    }

    #[test]
    fn two_terms_and_trailing_bytes() {
        let a = encode(&Term::from(Tuple::from(vec![Term::from(
            FixInteger::from(2),
        )])));
        let b = encode(&Term::from(Atom::from("msg")));
        let both = [a.clone(), b.clone()].concat();
        assert_eq!(check_terms(&both, 2, &limits()), Ok(2));
        assert_eq!(
            check_terms(&both, 1, &limits()),
            Err(TermError::Trailing(a.len()))
        );
        let three = [both.clone(), b].concat();
        assert_eq!(
            check_terms(&three, 2, &limits()),
            Err(TermError::Trailing(both.len()))
        );
        let junk = [a.clone(), vec![0]].concat();
        assert_eq!(
            check_terms(&junk, 2, &limits()),
            Err(TermError::BadVersion {
                pos: a.len(),
                found: 0
            })
        );
        assert_eq!(check_terms(&[], 2, &limits()), Err(TermError::Empty));
        assert_eq!(
            check_terms(&[131], 2, &limits()),
            Err(TermError::Truncated(1))
        );
        // term_len ignores what follows the first term.
        assert_eq!(term_len(&both, &limits()), Ok(a.len()));
    }

    /// Tags `eetf` never writes, encoded by hand as older or other runtimes send them.
    #[test]
    fn hand_encoded_tags_pass_and_decode() {
        let atom = [100, 0, 3, b'n', b'@', b'h']; // ATOM_EXT
        let small_atom = [115, 1, b'm']; // SMALL_ATOM_EXT
        let cases: Vec<Vec<u8>> = vec![
            [&[131][..], &atom].concat(),
            [&[131][..], &small_atom].concat(),
            // PID_EXT
            [&[131, 103][..], &atom, &[0, 0, 0, 1, 0, 0, 0, 2, 3]].concat(),
            // PORT_EXT
            [&[131, 102][..], &atom, &[0, 0, 0, 1, 2]].concat(),
            // REFERENCE_EXT
            [&[131, 101][..], &atom, &[0, 0, 0, 1, 2]].concat(),
            // NEW_REFERENCE_EXT with 3 words
            [&[131, 114, 0, 3][..], &atom, &[1], &[0; 12]].concat(),
            // FLOAT_EXT
            [&[131, 99][..], b"1.50000000000000000000e+00\0\0\0\0\0"].concat(),
            // LARGE_TUPLE_EXT with 2 elements
            vec![131, 105, 0, 0, 0, 2, 97, 1, 106],
            // STRING_EXT
            vec![131, 107, 0, 2, b'h', b'i'],
            // LARGE_BIG_EXT
            vec![131, 111, 0, 0, 0, 2, 1, 0, 1],
            // EXPORT_EXT with latin-1 atoms
            [&[131, 113][..], &small_atom, &small_atom, &[97, 0]].concat(),
        ];
        for bytes in cases {
            assert_eq!(check_terms(&bytes, 1, &limits()), Ok(1), "{bytes:?}");
            decode(&bytes);
        }
    }

    #[test]
    fn refused_tags() {
        let l = limits();
        assert_eq!(
            check_terms(&[131, 82, 0], 2, &l),
            Err(TermError::AtomCacheRef)
        );
        assert_eq!(
            check_terms(&[131, 80, 0, 0, 0, 1, 120, 156], 2, &l),
            Err(TermError::Compressed)
        );
        assert_eq!(
            check_terms(&[131, 121, 0, 0, 0, 0], 2, &l),
            Err(TermError::Local)
        );
        for tag in [0, 68, 69, 71, 255] {
            assert_eq!(
                check_terms(&[131, 104, 1, tag], 2, &l),
                Err(TermError::UnknownTag { tag, pos: 3 })
            );
        }
        // A pid whose node is a list, not an atom.
        assert_eq!(
            check_terms(&[131, 88, 108, 0, 0, 0, 0, 106], 2, &l),
            Err(TermError::Unexpected {
                expected: "an atom",
                tag: 108,
                pos: 2
            })
        );
        // Six reference words.
        let mut six = vec![131, 90, 0, 6, 119, 1, b'n', 0, 0, 0, 1];
        six.extend([0; 24]);
        assert_eq!(
            check_terms(&six, 2, &l),
            Err(TermError::ReferenceWords { words: 6, pos: 1 })
        );
        // Bit binaries with 0 or 9 bits in a last byte, or bits without a byte.
        for (len, bits) in [(1u8, 0u8), (1, 9), (0, 3)] {
            let mut bytes = vec![131, 77, 0, 0, 0, len, bits];
            bytes.extend(vec![0xff; len.into()]);
            assert_eq!(
                check_terms(&bytes, 2, &l),
                Err(TermError::BitCount {
                    len: len.into(),
                    bits,
                    pos: 1
                })
            );
        }
        // An export whose arity is an INTEGER_EXT.
        assert!(matches!(
            check_terms(
                &[131, 113, 119, 1, b'm', 119, 1, b'f', 98, 0, 0, 0, 1],
                2,
                &l
            ),
            Err(TermError::Unexpected { tag: 98, .. })
        ));
    }

    #[test]
    fn fun_size_must_match_its_fields() {
        let fun = InternalFun::New {
            module: Atom::from("m"),
            arity: 1,
            pid: pid("a@h"),
            free_vars: vec![Term::from(FixInteger::from(1))],
            index: 0,
            uniq: [0; 16],
            old_index: 0,
            old_uniq: 0,
        };
        let good = encode(&Term::from(fun));
        let size = u32::from_be_bytes([good[2], good[3], good[4], good[5]]);
        // One byte short: the free variable pushes the fun past its announced end.
        let mut short = good.clone();
        short[2..6].copy_from_slice(&(size - 1).to_be_bytes());
        assert_eq!(
            check_terms(&short, 2, &limits()),
            Err(TermError::FunSize {
                size: size - 1,
                actual: size as usize,
                pos: 1
            })
        );
        // Announcing more than is there.
        let mut long = good;
        long[2..6].copy_from_slice(&(size + 1).to_be_bytes());
        assert!(matches!(
            check_terms(&long, 2, &limits()),
            Err(TermError::CountTooLarge { pos: 1, .. })
        ));
    }

    #[test]
    fn huge_counts_are_refused_without_allocating() {
        let l = limits();
        let mut list = vec![131, 108, 0xff, 0xff, 0xff, 0xff];
        list.extend([97; 10]);
        assert_eq!(
            check_terms(&list, 2, &l),
            Err(TermError::CountTooLarge {
                count: u32::MAX.into(),
                pos: 1,
                left: 10
            })
        );
        for tag in [105, 116, 117] {
            let mut bytes = vec![131, tag, 0xff, 0xff, 0xff, 0xff];
            if tag == 117 {
                // FUN_EXT: pid, module, index and uniq come before the free variables.
                bytes.extend([88, 119, 1, b'n', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                bytes.extend([119, 1, b'm', 97, 0, 97, 0]);
            }
            bytes.extend([97; 10]);
            assert!(
                matches!(
                    check_terms(&bytes, 2, &l),
                    Err(TermError::CountTooLarge { .. })
                ),
                "tag {tag}"
            );
        }
        for tag in [109, 111] {
            let mut bytes = vec![131, tag, 0xff, 0xff, 0xff, 0xff];
            bytes.extend([0; 10]);
            assert!(matches!(
                check_terms(&bytes, 2, &l),
                Err(TermError::Truncated(_))
            ));
        }
        // A map needs two bytes per pair: 5 pairs do not fit in 9 bytes.
        let mut map = vec![131, 116, 0, 0, 0, 5];
        map.extend([106; 9]);
        assert_eq!(
            check_terms(&map, 2, &l),
            Err(TermError::CountTooLarge {
                count: 5,
                pos: 1,
                left: 9
            })
        );
        // Counts that fit alone but not together: each level claims nearly all bytes
        // left, which would let eetf preallocate that much once per level.
        let mut greedy = vec![131];
        for _ in 0..100 {
            greedy.extend([108, 0, 0, 1, 0]);
        }
        greedy.extend([106; 300]);
        assert_eq!(
            check_terms(&greedy, 2, &l),
            Err(TermError::CountTooLarge {
                count: 256,
                pos: 16,
                left: 12
            })
        );
    }

    fn nested_lists(depth: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + depth * 6 + 1);
        bytes.push(131);
        for _ in 0..depth {
            bytes.extend([108, 0, 0, 0, 1]);
        }
        bytes.push(106);
        bytes.resize(bytes.len() + depth, 106);
        bytes
    }

    #[test]
    fn deep_nesting_is_refused_quickly() {
        let bytes = nested_lists(2_000_000);
        let started = std::time::Instant::now();
        assert_eq!(
            check_terms(&bytes, 2, &limits()),
            Err(TermError::TooDeep(512))
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_decodes() {
        let ok = nested_lists(512);
        assert_eq!(check_terms(&ok, 2, &limits()), Ok(1));
        decode(&ok);
        assert_eq!(
            check_terms(&nested_lists(513), 2, &limits()),
            Err(TermError::TooDeep(512))
        );
        let tight = TermLimits { max_depth: 3 };
        assert_eq!(check_terms(&nested_lists(3), 1, &tight), Ok(1));
        assert_eq!(
            check_terms(&nested_lists(4), 1, &tight),
            Err(TermError::TooDeep(3))
        );
        // Empty containers open no level.
        let flat = TermLimits { max_depth: 0 };
        assert_eq!(check_terms(&[131, 104, 0], 1, &flat), Ok(1));
        assert_eq!(
            check_terms(&[131, 104, 1, 106], 1, &flat),
            Err(TermError::TooDeep(0))
        );
    }

    /// Each container kind costs one level; at the limit eetf still decodes on a test
    /// thread's stack (the size of a tokio worker's).
    #[test]
    fn mixed_nesting_at_the_limit_decodes() {
        let mut term = Term::from(Atom::from("core"));
        for level in 0..512 {
            term = match level % 4 {
                0 => Term::from(Tuple::from(vec![term])),
                1 => Term::from(Map::from([(Term::from(FixInteger::from(1)), term)])),
                2 => Term::from(ImproperList::from((vec![Term::from(List::nil())], term))),
                _ => Term::from(InternalFun::New {
                    module: Atom::from("m"),
                    arity: 0,
                    pid: pid("a@h"),
                    free_vars: vec![term],
                    index: 0,
                    uniq: [0; 16],
                    old_index: 0,
                    old_uniq: 0,
                }),
            };
        }
        let bytes = encode(&term);
        assert_eq!(check_terms(&bytes, 1, &limits()), Ok(1));
        assert_eq!(decode(&bytes), term);
        let deeper = encode(&Term::from(Tuple::from(vec![term])));
        assert_eq!(
            check_terms(&deeper, 1, &limits()),
            Err(TermError::TooDeep(512))
        );
    }

    /// Deterministic xorshift64, enough to fuzz without another crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Reads `bytes` as a frame body is read; what it accepts keeps the limits: no
    /// deeper than `max_depth`, no more terms than bytes. What it refuses, it refuses at
    /// a byte of the input.
    fn check_then_decode(bytes: &[u8]) {
        let limits = limits();
        let mut reader = TermReader::new(bytes, &limits);
        for _ in 0..2 {
            match reader.next_term() {
                Ok(term) => {
                    let (depth, size) = depth_and_size(&term);
                    assert!(depth <= limits.max_depth, "{depth} levels from {bytes:?}");
                    assert!(
                        size <= bytes.len(),
                        "{size} terms from {} bytes",
                        bytes.len()
                    );
                }
                Err(e) => {
                    assert!(e.position().is_none_or(|p| p <= bytes.len()), "{e}");
                    return;
                }
            }
            if reader.at_end() {
                return;
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        // Tags that are valid ETF, to get past the first byte more often.
        let tags = [
            70, 77, 88, 89, 90, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110,
            111, 112, 113, 114, 115, 116, 117, 118, 119, 120,
        ];
        let mut accepted = 0;
        for _ in 0..200_000 {
            let len = rng.below(48);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if !bytes.is_empty() && rng.below(4) > 0 {
                bytes[0] = 131;
            }
            for b in bytes.iter_mut().skip(1) {
                if rng.below(3) == 0 {
                    *b = tags[rng.below(tags.len())];
                } else if rng.below(2) == 0 {
                    *b = rng.below(4) as u8;
                }
            }
            if check_terms(&bytes, 2, &limits()).is_ok() {
                accepted += 1;
            }
            check_then_decode(&bytes);
            let _ = term_len(&bytes, &limits());
        }
        assert!(accepted > 0);
    }

    #[test]
    fn mutated_encodings_never_panic() {
        let mut rng = XorShift(42);
        let mut inputs: Vec<Vec<u8>> = samples().iter().map(encode).collect();
        inputs.extend([ERL_MIXED, ERL_KINDS, FRAME_REG_SEND, FRAME_SPAWN_REQUEST].map(hex));
        for _ in 0..100_000 {
            let mut bytes = inputs[rng.below(inputs.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => bytes[at] ^= 1 << rng.below(8),
                    2 => bytes.truncate(at.max(1)),
                    _ => bytes.insert(at, rng.next() as u8),
                }
            }
            check_then_decode(&bytes);
        }
    }

    // Produced by OTP 25's term_to_binary/1,2 on a node named gen@vm; the terms are
    // described on the tests that use them.
    const ERL_MIXED: &str = concat!(
        "83680961016c00000002640001616d00000001626a74000000016400016b64000176586400066765",
        "6e40766d00000009000000006b00e5ca5a000364000667656e40766d6b00e5ca0000d96636100001",
        "2e6342db46400c0000000000006e0d00d20a3f4eeee073c3f60fe98e01716400056c697374736400",
        "036d617061026b0003737472",
    );
    const ERL_KINDS: &str = concat!(
        "836812700000004301b1bcfcf6e752b96f3e66815c43e032c5000000000000000077086775617264",
        "766563610062058de7e758770667656e40766d00000009000000006b00e5ca59770667656e40766d",
        "000000006b00e5ca4d00000003030102606f00000178000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000000000000000000000000000000000000000000000000162",
        "fffffffb620001117062fffeee90690000012c610161026103610461056106610761086109610a61",
        "0b610c610d610e610f6110611161126113611461156116611761186119611a611b611c611d611e61",
        "1f6120612161226123612461256126612761286129612a612b612c612d612e612f61306131613261",
        "33613461356136613761386139613a613b613c613d613e613f614061416142614361446145614661",
        "4761486149614a614b614c614d614e614f6150615161526153615461556156615761586159615a61",
        "5b615c615d615e615f6160616161626163616461656166616761686169616a616b616c616d616e61",
        "6f6170617161726173617461756176617761786179617a617b617c617d617e617f61806181618261",
        "83618461856186618761886189618a618b618c618d618e618f619061916192619361946195619661",
        "9761986199619a619b619c619d619e619f61a061a161a261a361a461a561a661a761a861a961aa61",
        "ab61ac61ad61ae61af61b061b161b261b361b461b561b661b761b861b961ba61bb61bc61bd61be61",
        "bf61c061c161c261c361c461c561c661c761c861c961ca61cb61cc61cd61ce61cf61d061d161d261",
        "d361d461d561d661d761d861d961da61db61dc61dd61de61df61e061e161e261e361e461e561e661",
        "e761e861e961ea61eb61ec61ed61ee61ef61f061f161f261f361f461f561f661f761f861f961fa61",
        "fb61fc61fd61fe61ff62000001006200000101620000010262000001036200000104620000010562",
        "00000106620000010762000001086200000109620000010a620000010b620000010c620000010d62",
        "0000010e620000010f62000001106200000111620000011262000001136200000114620000011562",
        "00000116620000011762000001186200000119620000011a620000011b620000011c620000011d62",
        "0000011e620000011f62000001206200000121620000012262000001236200000124620000012562",
        "00000126620000012762000001286200000129620000012a620000012b620000012c6c0000000161",
        "0161027709c3bc6ec3af636f64657708d0b0d182d0bed0bc467e37e43c8800759c6a6d0000000074",
        "0000000068006c00000004616161626163620000012c6a740000000261016b000102680177017874",
        "0000000177017977017a",
    );
    const ERL_OLD_FLOATS: &str = concat!(
        "83680263332e3530303030303030303030303030303030303030652b30300000000000632d312e32",
        "35303030303030303030303030303030303030652b303000000000",
    );
    const ERL_COMPRESSED: &str = "835000000196789ccb616060484961604c1cc5830767010030464e93";
    const FRAME_REG_SEND: &str = concat!(
        "836804610658770667656e40766d00000009000000006b00e5ca7700770372657883680377092467",
        "656e5f63616c6c680258770667656e40766d00000009000000006b00e5ca5a0003770667656e4076",
        "6d6b00e5ca0000d966361000012e6342db6805770463616c6c770665726c616e6777046e6f64656a",
        "58770667656e40766d00000009000000006b00e5ca",
    );
    const FRAME_SEND_SENDER: &str = concat!(
        "836803611658770667656e40766d00000009000000006b00e5ca58770667656e40766d0000000900",
        "0000006b00e5ca836804770568656c6c6f6b00030102036d0000000362696e740000000177016146",
        "3ff8000000000000",
    );
    const FRAME_MONITOR_P: &str = concat!(
        "836804611358770667656e40766d00000009000000006b00e5ca58770667656e40766d0000000900",
        "0000006b00e5ca5a0003770667656e40766d6b00e5ca0000d966361000012e6342db",
    );
    const FRAME_ALIAS_SEND: &str = concat!(
        "836803612158770667656e40766d00000009000000006b00e5ca5a0003770667656e40766d6b00e5",
        "ca0000d967361100012e6342db83680277057265706c79700000004301b1bcfcf6e752b96f3e6681",
        "5c43e032c5000000000000000077086775617264766563610062058de7e758770667656e40766d00",
        "000009000000006b00e5ca",
    );
    const FRAME_SPAWN_REQUEST: &str = concat!(
        "836806611d5a0003770667656e40766d6b00e5ca0000d966361000012e6342db58770667656e4076",
        "6d00000009000000006b00e5ca58770667656e40766d00000009000000006b00e5ca680377056c69",
        "737473770373657161026c0000000277046c696e6b77076d6f6e69746f726a836b0002010a",
    );

    /// `{1, [a, <<"b">>], #{k => v}, self(), make_ref(), 3.5, 123456789012345678901234567890,
    /// fun lists:map/2, "str"}` (ATOM_EXT atoms); then, with UTF-8 atoms, a local fun with
    /// free variables, a port, a bitstring, big and negative integers, a 300-tuple, an
    /// improper list, non-ASCII atoms, empty containers and nested maps; then FLOAT_EXT.
    #[test]
    fn erlang_terms_pass_and_decode() {
        for vector in [ERL_MIXED, ERL_KINDS, ERL_OLD_FLOATS] {
            let bytes = hex(vector);
            assert_eq!(check_terms(&bytes, 1, &limits()), Ok(1));
            decode(&bytes);
            for cut in 0..bytes.len() {
                assert!(check_terms(&bytes[..cut], 1, &limits()).is_err());
            }
        }
        assert_eq!(
            check_terms(&hex(ERL_COMPRESSED), 1, &limits()),
            Err(TermError::Compressed)
        );
    }

    /// Pass-through frame bodies (after the 112 byte) as a node sends them: control tuple
    /// and message, encoded with UTF-8 atoms.
    #[test]
    fn erlang_frames_pass_and_decode() {
        for (vector, terms) in [
            (FRAME_REG_SEND, 2),
            (FRAME_SEND_SENDER, 2),
            (FRAME_MONITOR_P, 1),
            (FRAME_ALIAS_SEND, 2),
        ] {
            let bytes = hex(vector);
            assert_eq!(check_terms(&bytes, 2, &limits()), Ok(terms));
            erl_dist::message::Message::read_from(&mut bytes.as_slice()).expect("message");
        }
        // erl_dist 0.8 wants SPAWN_REQUEST arguments as LIST_EXT, but OTP sends `[1, 10]`
        // as STRING_EXT; the reader takes it, and eetf decodes both terms too.
        let spawn = hex(FRAME_SPAWN_REQUEST);
        assert_eq!(check_terms(&spawn, 2, &limits()), Ok(2));
        let control = term_len(&spawn, &limits()).expect("control");
        decode(&spawn[..control]);
        decode(&spawn[control..]);
        assert!(erl_dist::message::Message::read_from(&mut spawn.as_slice()).is_err());
    }

    /// OTP writes non-ASCII latin-1 atoms as ATOM_EXT outside distribution. eetf 0.11
    /// refuses the bytes as invalid UTF-8 (no panic); the reader takes them as latin-1,
    /// as the BEAM does.
    #[test]
    fn latin1_atoms_are_read_where_eetf_refuses_them() {
        let bytes = [131, 100, 0, 1, 252]; // 'ü'
        assert_eq!(check_terms(&bytes, 1, &limits()), Ok(1));
        assert!(Term::decode(&bytes[..]).is_err());
    }
}
