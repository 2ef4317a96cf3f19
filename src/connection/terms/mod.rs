//! Terms from a peer's bytes, checked and built in one pass: the one place that knows
//! the bounds of the external term format and says why a frame was refused.
//!
//! The reader takes the slice directly and builds the [`Term`] at once: charlists as
//! lists of integers, latin-1 atoms as latin-1, atoms interned (bounded as the BEAM
//! bounds its atom table). A container's count is believed only when the bytes left,
//! less one per child still promised by the containers around it, can back it, so
//! everything preallocated is bounded by the frame's size (a decoder that trusts counts,
//! as `eetf`'s does with `Vec::with_capacity(count)`, allocates what a peer merely
//! announces); nesting is bounded by [`TermLimits::max_depth`] (the reader recurses once
//! per level); every read checks its bounds. Every kind is read here, funs' free
//! variables as any container's children.
//!
//! Reference: <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html>.

use super::ext::*;
use super::header::AtomRefs;
use crate::term::{
    Atom, BigInteger, Binary, BitBinary, ExternalFun, FixInteger, Float, ImproperList, InternalFun,
    List, Map, Pid, Port, Reference, Term, Tuple,
};

/// Limits for one frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TermLimits {
    /// Deepest container nesting accepted. The reader recurses once per level, on
    /// fresh stack segments when the thread's runs low (`term::deep`), as do the
    /// encoder, printing, comparing and cloning; dropping a term recurses on the
    /// thread's own stack (about 200 bytes a level in a debug build).
    pub max_depth: usize,
}

impl Default for TermLimits {
    /// 4,096 levels, as `NodeConfig::max_term_depth`.
    fn default() -> Self {
        Self { max_depth: 4096 }
    }
}

pub(crate) use crate::term::DecodeError as TermError;

// The external term format's reader is the connection's (with its limits and atom
// cache); a term read alone is one more use of it.
impl Term {
    /// The term `bytes` hold in the external term format, as `:erlang.binary_to_term/1`
    /// reads it; compressed terms are refused, and so is anything after the term.
    pub fn from_binary(bytes: &[u8]) -> Result<Term, crate::term::DecodeError> {
        let limits = TermLimits::default();
        let mut reader = TermReader::new(bytes, &limits);
        let term = reader.next_term()?;
        if !reader.at_end() {
            return Err(TermError::Trailing(reader.pos));
        }
        Ok(term)
    }
}

/// The control term and the payload, if any, of a frame body: exactly one or two terms.
pub(crate) fn frame_terms(reader: &mut TermReader<'_>) -> Result<(Term, Option<Term>), TermError> {
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

/// The smallest binary [`TermReader::lend_tail`] leaves in place: a fragment's size.
pub(crate) const LARGE_BINARY: usize = 64 * 1024;

/// Puts `bytes` into the binary a reader left empty ([`TermReader::lent_tail`]).
/// False, and `term` unchanged, when there is no such binary.
pub(crate) fn fill_tail(term: &mut Term, bytes: Vec<u8>) -> bool {
    match tail_binary(term) {
        Some(binary) if binary.is_empty() => {
            *binary = bytes;
            true
        }
        _ => false,
    }
}

/// The bytes of the binary `term` ends with when encoded, if it does: the last leaf
/// down the last elements of tuples and the tails of improper lists (not inside a map
/// or a fun, whose elements are not written in order). A reader lends such a binary
/// ([`TermReader::lend_tail`]), and a sender writes it from its own buffer (see
/// `Pending::queue` in the connection).
pub(crate) fn tail_binary(term: &mut Term) -> Option<&mut Vec<u8>> {
    let mut t = term;
    loop {
        t = match t {
            Term::Tuple(tuple) => tuple.elements.last_mut()?,
            Term::ImproperList(list) => list.last.as_mut(),
            Term::Binary(binary) => return Some(&mut binary.bytes),
            _ => return None,
        }
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
    /// After a distribution header: terms without version bytes, and the atoms its
    /// references name.
    headed: bool,
    atoms: AtomRefs<'a>,
    /// Whether a large binary that ends the bytes may be left in place ([`lend_tail`]).
    ///
    /// [`lend_tail`]: Self::lend_tail
    lend: bool,
    /// Maps and funs open around the read position (their children are out of
    /// [`fill_tail`]'s reach).
    unordered: usize,
    /// Where the bytes of the binary left empty begin.
    lent: Option<usize>,
    /// The length of a binary whose bytes are not in `bytes` but follow them
    /// ([`lend_tail_after`](Self::lend_tail_after)).
    after: Option<usize>,
    /// A large binary in reach of [`fill_tail`] whose bytes went past the end of
    /// `bytes`: where they began, and how many were announced.
    cut: Option<(usize, usize)>,
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
            headed: false,
            atoms: AtomRefs::default(),
            lend: false,
            unordered: 0,
            lent: None,
            after: None,
            cut: None,
        }
    }

    /// Leaves a binary of at least [`LARGE_BINARY`] bytes that ends the bytes (as in
    /// `{:big, i, <<...>>}`) out of the term, empty, instead of copying it: its bytes
    /// begin at [`lent_tail`](Self::lent_tail), and whoever owns them can drain what
    /// comes before and put the rest into the term with [`fill_tail`]. A reassembled
    /// 64 MB message then costs a move within memory already in use, where a copy
    /// faulted in 64 MB more for a moment (a BEAM makes a sub-binary of its buffer).
    pub(crate) fn lend_tail(mut self) -> Self {
        self.lend = true;
        self
    }

    /// Where the bytes of the binary left empty begin, if one was.
    pub(crate) fn lent_tail(&self) -> Option<usize> {
        self.lent
    }

    /// As [`lend_tail`](Self::lend_tail), for bytes that stop where the bytes of a
    /// binary of `len` bytes would begin: such a binary at their end is read as lent
    /// (empty, [`lent_tail`](Self::lent_tail) at the end of the bytes) for the caller to
    /// fill with bytes it holds apart. A fragmented message whose first fragment ends in
    /// the middle of a large binary is so kept in two buffers, and never moved.
    pub(crate) fn lend_tail_after(mut self, len: usize) -> Self {
        self.lend = true;
        self.after = Some(len);
        self
    }

    /// A large binary that [`lend_tail`](Self::lend_tail) could lend, cut short by the
    /// end of the bytes (the read failed there): where its bytes began, and how many
    /// its header announced. What the first fragment of a message tells of where the
    /// rest of its bytes go.
    pub(crate) fn cut_binary(&self) -> Option<(usize, usize)> {
        self.cut
    }

    /// A reader of the terms after a distribution header.
    pub(crate) fn headed(bytes: &'a [u8], atoms: AtomRefs<'a>, limits: &'a TermLimits) -> Self {
        TermReader {
            headed: true,
            atoms,
            ..Self::new(bytes, limits)
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
        if !self.headed {
            let pos = self.pos;
            let found = self.u8()?;
            if found != VERSION {
                return Err(TermError::BadVersion { pos, found });
            }
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
        // A container's children are a level down: on a fresh stack segment when this
        // one runs low (`term::deep`).
        match tag {
            LIST_EXT => crate::term::deep(|| self.list(out, start)),
            SMALL_TUPLE_EXT | LARGE_TUPLE_EXT => crate::term::deep(|| self.tuple(out, tag, start)),
            MAP_EXT => crate::term::deep(|| self.map(out, start)),
            NEW_FUN_EXT | FUN_EXT => {
                let fun = crate::term::deep(|| self.fun(tag, start))?;
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
            out.push(Term::from(ImproperList::from((elements, last))));
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
        self.unordered += 1;
        let pairs = self.terms(children, 0)?;
        self.unordered -= 1;
        self.close(children);
        let mut map = std::collections::HashMap::with_capacity(count as usize);
        let mut pairs = pairs.into_iter();
        while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
            map.insert(key, value);
        }
        out.push(Term::from(Map::from(map)));
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
                let at = self.pos;
                let lendable = self.lend && self.unordered == 0 && len >= LARGE_BINARY;
                if lendable && at == self.bytes.len() && self.after == Some(len) {
                    self.lent = Some(at);
                    out.push(Term::Binary(Binary::from(Vec::new())));
                    return Ok(());
                }
                if lendable && self.bytes.len() - at < len {
                    self.cut = Some((at, len));
                }
                let bytes = self.take(len)?;
                if lendable && self.at_end() {
                    self.lent = Some(at);
                    out.push(Term::Binary(Binary::from(Vec::new())));
                } else {
                    out.push(Term::Binary(Binary::from(bytes.to_vec())));
                }
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
                let term = self.rare_leaf(tag, start)?;
                out.push(term);
            }
            ATOM_CACHE_REF => out.push(Term::Atom(self.cached_atom(start)?)),
            COMPRESSED => return Err(TermError::Compressed),
            LOCAL_EXT => return Err(TermError::Local),
            tag => return Err(TermError::UnknownTag { tag, pos: start }),
        }
        Ok(())
    }

    /// The kinds without child terms that messages rarely hold: old floats, bit
    /// strings, bignums, ports, old references and external funs.
    #[cold]
    fn rare_leaf(&mut self, tag: u8, start: usize) -> Result<Term, TermError> {
        let invalid = |what: String| TermError::Invalid { what, pos: start };
        Ok(match tag {
            FLOAT_EXT => {
                // The float printed with "%.20e" in 31 bytes, padded with zeros.
                let text = self.take(31)?;
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                let value = std::str::from_utf8(&text[..end])
                    .ok()
                    .and_then(|t| t.trim().parse::<f64>().ok())
                    .ok_or_else(|| invalid("FLOAT_EXT that is no float".into()))?;
                Term::Float(Float::try_from(value).map_err(|e| invalid(e.to_string()))?)
            }
            BIT_BINARY_EXT => {
                let len = self.u32()?;
                let bits = self.u8()?;
                // As erts: 1..=8 bits are used in a last byte, and there is no last byte
                // without bits.
                if bits > 8 || (bits == 0) != (len == 0) {
                    return Err(TermError::BitCount {
                        len,
                        bits,
                        pos: start,
                    });
                }
                let mut bytes = self.take(len as usize)?.to_vec();
                // The last byte's bits are its high ones on the wire, its low ones here.
                if let Some(last) = bytes.last_mut() {
                    *last >>= 8 - bits;
                }
                Term::from(BitBinary {
                    bytes,
                    tail_bits_size: bits,
                })
            }
            SMALL_BIG_EXT | LARGE_BIG_EXT => {
                let len = if tag == SMALL_BIG_EXT {
                    self.u8()?.into()
                } else {
                    self.u32()? as usize
                };
                let sign = match self.u8()? {
                    0 => num_bigint::Sign::Plus,
                    1 => num_bigint::Sign::Minus,
                    s => return Err(invalid(format!("bignum sign byte {s}"))),
                };
                let digits = self.take(len)?;
                let value = num_bigint::BigInt::from_bytes_le(sign, digits);
                // The BEAM writes what fits 32 bits as an integer, but reads either.
                match i32::try_from(&value) {
                    Ok(small) => Term::FixInteger(FixInteger::from(small)),
                    Err(_) => Term::from(BigInteger { value }),
                }
            }
            PORT_EXT | NEW_PORT_EXT | V4_PORT_EXT => {
                let node = self.atom()?;
                let id = match tag {
                    V4_PORT_EXT => u64::from_be_bytes(self.array()?),
                    _ => self.u32()?.into(),
                };
                let creation = match tag {
                    PORT_EXT => self.u8()?.into(),
                    _ => self.u32()?,
                };
                Term::Port(Port { node, id, creation })
            }
            REFERENCE_EXT => {
                let node = self.atom()?;
                let id = vec![self.u32()?];
                let creation = self.u8()?.into();
                Term::from(Reference { node, id, creation })
            }
            EXPORT_EXT => {
                let module = self.atom()?;
                let function = self.atom()?;
                let pos = self.pos;
                match self.u8()? {
                    SMALL_INTEGER_EXT => Term::from(ExternalFun {
                        module,
                        function,
                        arity: self.u8()?,
                    }),
                    tag => {
                        return Err(TermError::Unexpected {
                            expected: "a small integer arity",
                            tag,
                            pos,
                        })
                    }
                }
            }
            _ => unreachable!("rare_leaf of tag {tag}"),
        })
    }

    /// `NEW_FUN_EXT` (and `FUN_EXT`, as OTP before 23 sent funs): the fields, then the
    /// free variables, child terms as a container's. A new fun's size counts itself and
    /// everything after it, and must match.
    fn fun(&mut self, tag: u8, start: usize) -> Result<Term, TermError> {
        let header = self.fun_header(tag, start)?;
        self.open(header.free.into(), header.free as usize, start)?;
        self.unordered += 1;
        let free_vars = self.terms(header.free as usize, 0)?;
        self.unordered -= 1;
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
            ATOM_CACHE_REF => self.cached_atom(pos),
            tag => Err(TermError::Unexpected {
                expected: "an atom",
                tag,
                pos,
            }),
        }
    }

    /// The atom an `ATOM_CACHE_REF` at `pos` names.
    fn cached_atom(&mut self, pos: usize) -> Result<Atom, TermError> {
        let index = self.u8()?;
        self.atoms
            .get(index)
            .cloned()
            .ok_or(TermError::AtomCacheRef {
                index,
                refs: self.atoms.len(),
                pos,
            })
    }

    fn atom_body(&mut self, tag: u8, start: usize) -> Result<Atom, TermError> {
        let len = match tag {
            ATOM_EXT | ATOM_UTF8_EXT => self.u16()?.into(),
            _ => self.u8()?.into(),
        };
        let bytes = self.take(len)?;
        let latin1;
        let name = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            // ATOM_EXT and SMALL_ATOM_EXT are latin-1: each byte is its character.
            Err(_) if matches!(tag, ATOM_EXT | SMALL_ATOM_EXT) => {
                latin1 = bytes.iter().map(|&b| char::from(b)).collect::<String>();
                &latin1
            }
            Err(e) => {
                return Err(TermError::Invalid {
                    what: format!("atom is not UTF-8: {e}"),
                    pos: start,
                })
            }
        };
        // Atoms live as long as the program, as on the BEAM: where a BEAM node would
        // stop with its atom table full, the connection closes.
        Atom::from_peer(name).map_err(|what| TermError::Invalid { what, pos: start })
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
                InternalFun::New { free_vars, .. } | InternalFun::Old { free_vars, .. } => {
                    free_vars.iter().collect()
                }
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
pub(super) mod tests;
