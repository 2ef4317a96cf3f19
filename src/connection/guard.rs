//! Bounds check of the external term format (ETF) before any bytes reach `eetf`.
//!
//! `eetf` decodes recursively and calls `Vec::with_capacity(count)` with counts the peer
//! announces, so one hostile frame (a list announcing 4 billion elements, or lists nested
//! two million deep) would abort the process or overflow the stack. This scanner keeps
//! its own explicit stack, never allocates from an announced count, and believes a count
//! only when the bytes left can back it. The term reader ([`terms`](super::terms)), which
//! decodes every frame, keeps the same rules as it reads; it asks this scanner about the
//! rare kinds it hands to `eetf`, and about a frame it refused, to say exactly why.
//!
//! Reference: <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html>.

/// Version byte in front of every externally encoded term.
pub(super) const VERSION: u8 = 131;

pub(super) const NEW_FLOAT_EXT: u8 = 70;
pub(super) const BIT_BINARY_EXT: u8 = 77;
pub(super) const COMPRESSED: u8 = 80;
pub(super) const ATOM_CACHE_REF: u8 = 82;
pub(super) const NEW_PID_EXT: u8 = 88;
pub(super) const NEW_PORT_EXT: u8 = 89;
pub(super) const NEWER_REFERENCE_EXT: u8 = 90;
pub(super) const SMALL_INTEGER_EXT: u8 = 97;
pub(super) const INTEGER_EXT: u8 = 98;
pub(super) const FLOAT_EXT: u8 = 99;
pub(super) const ATOM_EXT: u8 = 100;
pub(super) const REFERENCE_EXT: u8 = 101;
pub(super) const PORT_EXT: u8 = 102;
pub(super) const PID_EXT: u8 = 103;
pub(super) const SMALL_TUPLE_EXT: u8 = 104;
pub(super) const LARGE_TUPLE_EXT: u8 = 105;
pub(super) const NIL_EXT: u8 = 106;
pub(super) const STRING_EXT: u8 = 107;
pub(super) const LIST_EXT: u8 = 108;
pub(super) const BINARY_EXT: u8 = 109;
pub(super) const SMALL_BIG_EXT: u8 = 110;
pub(super) const LARGE_BIG_EXT: u8 = 111;
pub(super) const NEW_FUN_EXT: u8 = 112;
pub(super) const EXPORT_EXT: u8 = 113;
pub(super) const NEW_REFERENCE_EXT: u8 = 114;
pub(super) const SMALL_ATOM_EXT: u8 = 115;
pub(super) const MAP_EXT: u8 = 116;
pub(super) const FUN_EXT: u8 = 117;
pub(super) const ATOM_UTF8_EXT: u8 = 118;
pub(super) const SMALL_ATOM_UTF8_EXT: u8 = 119;
pub(super) const V4_PORT_EXT: u8 = 120;
pub(super) const LOCAL_EXT: u8 = 121;

/// Most id words a reference may carry (V4_NC, OTP 24 and later).
pub(super) const MAX_REFERENCE_WORDS: u16 = 5;

/// Limits for one frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TermLimits {
    /// Deepest container nesting accepted. `eetf` recurses (and later drops and hashes
    /// recursively) once per level, so this bounds its stack use.
    pub max_depth: usize,
}

impl Default for TermLimits {
    /// 512 levels: far beyond what real OTP messages use, well within a 2 MiB stack.
    fn default() -> Self {
        Self { max_depth: 512 }
    }
}

/// Why a frame was refused. Positions are byte offsets into the checked slice.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum GuardError {
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
}

/// Checks that `bytes` is exactly a sequence of 1..=max_terms externally encoded terms, each
/// starting with the version byte 131, and returns how many terms it holds. Every count and
/// length is checked against the bytes left before anything is believed; nesting deeper than
/// `limits.max_depth` is refused.
pub(crate) fn check_terms(
    bytes: &[u8],
    max_terms: usize,
    limits: &TermLimits,
) -> Result<usize, GuardError> {
    if bytes.is_empty() {
        return Err(GuardError::Empty);
    }
    let mut pos = 0;
    let mut terms = 0;
    while pos < bytes.len() {
        if terms == max_terms {
            return Err(GuardError::Trailing(pos));
        }
        if bytes[pos] != VERSION {
            return Err(GuardError::BadVersion {
                pos,
                found: bytes[pos],
            });
        }
        let start = pos + 1;
        pos = start + term_len(&bytes[start..], limits).map_err(|e| e.shifted(start))?;
        terms += 1;
    }
    Ok(terms)
}

/// Length in bytes of the one term starting at `bytes[0]` (no version byte in front).
/// Bytes after that term are left alone.
pub(crate) fn term_len(bytes: &[u8], limits: &TermLimits) -> Result<usize, GuardError> {
    scan(bytes, limits)
}

impl GuardError {
    /// The same error with its byte positions moved by `by`, for a term that was checked
    /// as a slice of a larger frame.
    fn shifted(self, by: usize) -> Self {
        use GuardError::*;
        match self {
            Truncated(pos) => Truncated(pos + by),
            UnknownTag { tag, pos } => UnknownTag { tag, pos: pos + by },
            CountTooLarge { count, pos, left } => CountTooLarge {
                count,
                pos: pos + by,
                left,
            },
            Unexpected { expected, tag, pos } => Unexpected {
                expected,
                tag,
                pos: pos + by,
            },
            ReferenceWords { words, pos } => ReferenceWords {
                words,
                pos: pos + by,
            },
            BitCount { len, bits, pos } => BitCount {
                len,
                bits,
                pos: pos + by,
            },
            FunSize { size, actual, pos } => FunSize {
                size,
                actual,
                pos: pos + by,
            },
            BadVersion { pos, found } => BadVersion {
                pos: pos + by,
                found,
            },
            Trailing(pos) => Trailing(pos + by),
            Empty | TooDeep(_) | Compressed | AtomCacheRef | Local => self,
        }
    }
}

/// One open container: how many of its child terms have not been started yet.
struct Frame {
    remaining: u64,
    /// For `NEW_FUN_EXT`: where its announced size says it ends, and where it started.
    fun_end: Option<(usize, usize)>,
}

/// Walks the term starting at `bytes[0]` and returns the offset just past it.
///
/// Iterative on purpose: recursion here would reintroduce the stack overflow this guards
/// against. `promised` is the number of terms announced by open containers but not yet
/// started; each takes at least one byte, so a new count must fit in the bytes left after
/// them. That bounds the sum of everything `eetf` preallocates by the frame size, not just
/// each count on its own.
fn scan(bytes: &[u8], limits: &TermLimits) -> Result<usize, GuardError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut r = Reader { bytes, pos: 0 };
    let mut promised: u64 = 0;
    loop {
        if let Some(frame) = r.term(promised)? {
            if stack.len() >= limits.max_depth {
                return Err(GuardError::TooDeep(limits.max_depth));
            }
            promised += frame.remaining;
            stack.push(frame);
        }
        // Close every container whose last child just ended, then start the next child.
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(r.pos);
            };
            if top.remaining > 0 {
                top.remaining -= 1;
                promised -= 1;
                break;
            }
            if let Some((end, fun_pos)) = top.fun_end {
                r.check_fun_end(end, fun_pos)?;
            }
            stack.pop();
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8, GuardError> {
        let byte = *self
            .bytes
            .get(self.pos)
            .ok_or(GuardError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(byte)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GuardError> {
        let end = self
            .pos
            .checked_add(N)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(GuardError::Truncated(self.pos))?;
        let mut out = [0; N];
        out.copy_from_slice(&self.bytes[self.pos..end]);
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, GuardError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, GuardError> {
        self.array().map(u32::from_be_bytes)
    }

    /// Skips `n` bytes whose length the peer announced, if they are all there.
    fn skip(&mut self, n: u64) -> Result<(), GuardError> {
        if n > self.left() as u64 {
            return Err(GuardError::Truncated(self.pos));
        }
        self.pos += n as usize;
        Ok(())
    }

    /// Accepts a container announcing `count` (needing `children` child terms) only if the
    /// bytes left, minus one per term already promised, can hold one byte per child.
    fn claim(
        &self,
        count: u64,
        children: u64,
        pos: usize,
        promised: u64,
    ) -> Result<(), GuardError> {
        let left = (self.left() as u64).saturating_sub(promised);
        if children > left {
            return Err(GuardError::CountTooLarge { count, pos, left });
        }
        Ok(())
    }

    /// Scans one term's own bytes. Returns the container frame to open if the term has
    /// child terms still to scan, `None` if it is complete.
    fn term(&mut self, promised: u64) -> Result<Option<Frame>, GuardError> {
        let pos = self.pos;
        let tag = self.u8()?;
        let children = |remaining: u64| {
            Some(Frame {
                remaining,
                fun_end: None,
            })
            .filter(|f| f.remaining > 0)
        };
        match tag {
            SMALL_INTEGER_EXT => self.skip(1)?,
            INTEGER_EXT => self.skip(4)?,
            FLOAT_EXT => self.skip(31)?,
            NEW_FLOAT_EXT => self.skip(8)?,
            NIL_EXT => {}
            ATOM_EXT | ATOM_UTF8_EXT => {
                let len = self.u16()?;
                self.skip(len.into())?;
            }
            SMALL_ATOM_EXT | SMALL_ATOM_UTF8_EXT => {
                let len = self.u8()?;
                self.skip(len.into())?;
            }
            STRING_EXT => {
                let len = self.u16()?;
                self.skip(len.into())?;
            }
            BINARY_EXT => {
                let len = self.u32()?;
                self.skip(len.into())?;
            }
            BIT_BINARY_EXT => {
                let len = self.u32()?;
                let bits = self.u8()?;
                // As erts: 1..=8 bits are used in a last byte, and there is no last byte
                // without bits. (`eetf` would shift by 8 - bits and panic otherwise.)
                if bits > 8 || (bits == 0) != (len == 0) {
                    return Err(GuardError::BitCount { len, bits, pos });
                }
                self.skip(len.into())?;
            }
            SMALL_BIG_EXT => {
                let len = self.u8()?;
                self.skip(1 + u64::from(len))?;
            }
            LARGE_BIG_EXT => {
                let len = self.u32()?;
                self.skip(1 + u64::from(len))?;
            }
            PID_EXT | NEW_PID_EXT => self.pid_body(tag)?,
            PORT_EXT => {
                self.atom()?;
                self.skip(4 + 1)?;
            }
            NEW_PORT_EXT => {
                self.atom()?;
                self.skip(4 + 4)?;
            }
            V4_PORT_EXT => {
                self.atom()?;
                self.skip(8 + 4)?;
            }
            REFERENCE_EXT => {
                self.atom()?;
                self.skip(4 + 1)?;
            }
            NEW_REFERENCE_EXT | NEWER_REFERENCE_EXT => {
                let words = self.u16()?;
                if words > MAX_REFERENCE_WORDS {
                    return Err(GuardError::ReferenceWords { words, pos });
                }
                self.atom()?;
                let creation = if tag == NEW_REFERENCE_EXT { 1 } else { 4 };
                self.skip(creation + 4 * u64::from(words))?;
            }
            EXPORT_EXT => {
                self.atom()?;
                self.atom()?;
                let arity_pos = self.pos;
                match self.u8()? {
                    SMALL_INTEGER_EXT => self.skip(1)?,
                    tag => {
                        return Err(GuardError::Unexpected {
                            expected: "a small integer arity",
                            tag,
                            pos: arity_pos,
                        })
                    }
                }
            }
            SMALL_TUPLE_EXT => {
                let count = u64::from(self.u8()?);
                self.claim(count, count, pos, promised)?;
                return Ok(children(count));
            }
            LARGE_TUPLE_EXT => {
                let count = u64::from(self.u32()?);
                self.claim(count, count, pos, promised)?;
                return Ok(children(count));
            }
            LIST_EXT => {
                // The elements and then the tail, which is usually NIL.
                let count = u64::from(self.u32()?);
                self.claim(count, count + 1, pos, promised)?;
                return Ok(children(count + 1));
            }
            MAP_EXT => {
                let count = u64::from(self.u32()?);
                self.claim(count, 2 * count, pos, promised)?;
                return Ok(children(2 * count));
            }
            FUN_EXT => {
                let free = u64::from(self.u32()?);
                self.pid()?;
                self.atom()?;
                self.fix_integer()?;
                self.fix_integer()?;
                self.claim(free, free, pos, promised)?;
                return Ok(children(free));
            }
            NEW_FUN_EXT => {
                // Size counts itself and everything after it, free variables included.
                let size_pos = self.pos;
                let size = self.u32()?;
                let end = size_pos.saturating_add(size as usize);
                if size < 4 || end > self.bytes.len() {
                    return Err(GuardError::CountTooLarge {
                        count: size.into(),
                        pos,
                        left: self.left() as u64 + 4,
                    });
                }
                self.skip(1 + 16 + 4)?;
                let free = u64::from(self.u32()?);
                self.atom()?;
                self.fix_integer()?;
                self.fix_integer()?;
                self.pid()?;
                self.claim(free, free, pos, promised)?;
                if free == 0 {
                    self.check_fun_end(end, pos)?;
                    return Ok(None);
                }
                return Ok(Some(Frame {
                    remaining: free,
                    fun_end: Some((end, pos)),
                }));
            }
            ATOM_CACHE_REF => return Err(GuardError::AtomCacheRef),
            COMPRESSED => return Err(GuardError::Compressed),
            LOCAL_EXT => return Err(GuardError::Local),
            tag => return Err(GuardError::UnknownTag { tag, pos }),
        }
        Ok(None)
    }

    /// An atom where the format requires one (node, module, function names). Scanned here
    /// rather than as a general term so that no container can hide in those places.
    fn atom(&mut self) -> Result<(), GuardError> {
        let pos = self.pos;
        match self.u8()? {
            ATOM_EXT | ATOM_UTF8_EXT => {
                let len = self.u16()?;
                self.skip(len.into())
            }
            SMALL_ATOM_EXT | SMALL_ATOM_UTF8_EXT => {
                let len = self.u8()?;
                self.skip(len.into())
            }
            ATOM_CACHE_REF => Err(GuardError::AtomCacheRef),
            tag => Err(GuardError::Unexpected {
                expected: "an atom",
                tag,
                pos,
            }),
        }
    }

    fn pid(&mut self) -> Result<(), GuardError> {
        let pos = self.pos;
        match self.u8()? {
            tag @ (PID_EXT | NEW_PID_EXT) => self.pid_body(tag),
            tag => Err(GuardError::Unexpected {
                expected: "a pid",
                tag,
                pos,
            }),
        }
    }

    fn pid_body(&mut self, tag: u8) -> Result<(), GuardError> {
        self.atom()?;
        self.skip(if tag == PID_EXT { 4 + 4 + 1 } else { 4 + 4 + 4 })
    }

    /// `SMALL_INTEGER_EXT` or `INTEGER_EXT`, as the fun fields require.
    fn fix_integer(&mut self) -> Result<(), GuardError> {
        let pos = self.pos;
        match self.u8()? {
            SMALL_INTEGER_EXT => self.skip(1),
            INTEGER_EXT => self.skip(4),
            tag => Err(GuardError::Unexpected {
                expected: "an integer",
                tag,
                pos,
            }),
        }
    }

    fn check_fun_end(&self, end: usize, fun_pos: usize) -> Result<(), GuardError> {
        if self.pos != end {
            return Err(GuardError::FunSize {
                size: (end - fun_pos - 1) as u32,
                actual: self.pos - fun_pos - 1,
                pos: fun_pos,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use erl_dist::term::{
        Atom, BigInteger, Binary, BitBinary, ExternalFun, FixInteger, Float, ImproperList,
        InternalFun, List, Map, Pid, Port, Reference, Term, Tuple,
    };
    use std::collections::HashMap;

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
            assert_eq!(term_len(&bytes[1..], &limits()), Ok(bytes.len() - 1));
            // eetf writes lists of bytes as STRING_EXT, which decode as a ByteList.
            let back = decode(&bytes);
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
                if cut > 0 {
                    assert!(term_len(&bytes[1..cut], &limits()).is_err());
                }
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
            Err(GuardError::Trailing(a.len()))
        );
        let three = [both.clone(), b].concat();
        assert_eq!(
            check_terms(&three, 2, &limits()),
            Err(GuardError::Trailing(both.len()))
        );
        let junk = [a.clone(), vec![0]].concat();
        assert_eq!(
            check_terms(&junk, 2, &limits()),
            Err(GuardError::BadVersion {
                pos: a.len(),
                found: 0
            })
        );
        assert_eq!(check_terms(&[], 2, &limits()), Err(GuardError::Empty));
        assert_eq!(
            check_terms(&[131], 2, &limits()),
            Err(GuardError::Truncated(1))
        );
        // term_len ignores what follows the first term.
        assert_eq!(term_len(&both[1..], &limits()), Ok(a.len() - 1));
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
            Err(GuardError::AtomCacheRef)
        );
        assert_eq!(
            check_terms(&[131, 80, 0, 0, 0, 1, 120, 156], 2, &l),
            Err(GuardError::Compressed)
        );
        assert_eq!(
            check_terms(&[131, 121, 0, 0, 0, 0], 2, &l),
            Err(GuardError::Local)
        );
        for tag in [0, 68, 69, 71, 255] {
            assert_eq!(
                check_terms(&[131, 104, 1, tag], 2, &l),
                Err(GuardError::UnknownTag { tag, pos: 3 })
            );
        }
        // A pid whose node is a list, not an atom.
        assert_eq!(
            check_terms(&[131, 88, 108, 0, 0, 0, 0, 106], 2, &l),
            Err(GuardError::Unexpected {
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
            Err(GuardError::ReferenceWords { words: 6, pos: 1 })
        );
        // Bit binaries with 0 or 9 bits in a last byte, or bits without a byte.
        for (len, bits) in [(1u8, 0u8), (1, 9), (0, 3)] {
            let mut bytes = vec![131, 77, 0, 0, 0, len, bits];
            bytes.extend(vec![0xff; len.into()]);
            assert_eq!(
                check_terms(&bytes, 2, &l),
                Err(GuardError::BitCount {
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
            Err(GuardError::Unexpected { tag: 98, .. })
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
            Err(GuardError::FunSize {
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
            Err(GuardError::CountTooLarge { pos: 1, .. })
        ));
    }

    #[test]
    fn huge_counts_are_refused_without_allocating() {
        let l = limits();
        let mut list = vec![131, 108, 0xff, 0xff, 0xff, 0xff];
        list.extend([97; 10]);
        assert_eq!(
            check_terms(&list, 2, &l),
            Err(GuardError::CountTooLarge {
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
                    Err(GuardError::CountTooLarge { .. })
                ),
                "tag {tag}"
            );
        }
        for tag in [109, 111] {
            let mut bytes = vec![131, tag, 0xff, 0xff, 0xff, 0xff];
            bytes.extend([0; 10]);
            assert!(matches!(
                check_terms(&bytes, 2, &l),
                Err(GuardError::Truncated(_))
            ));
        }
        // A map needs two bytes per pair: 5 pairs do not fit in 9 bytes.
        let mut map = vec![131, 116, 0, 0, 0, 5];
        map.extend([106; 9]);
        assert_eq!(
            check_terms(&map, 2, &l),
            Err(GuardError::CountTooLarge {
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
            Err(GuardError::CountTooLarge {
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
            Err(GuardError::TooDeep(512))
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
            Err(GuardError::TooDeep(512))
        );
        let tight = TermLimits { max_depth: 3 };
        assert_eq!(check_terms(&nested_lists(3), 1, &tight), Ok(1));
        assert_eq!(
            check_terms(&nested_lists(4), 1, &tight),
            Err(GuardError::TooDeep(3))
        );
        // Empty containers open no level.
        let flat = TermLimits { max_depth: 0 };
        assert_eq!(check_terms(&[131, 104, 0], 1, &flat), Ok(1));
        assert_eq!(
            check_terms(&[131, 104, 1, 106], 1, &flat),
            Err(GuardError::TooDeep(0))
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
            Err(GuardError::TooDeep(512))
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

    /// Whatever the guard accepts must decode in `eetf` without panicking.
    fn check_then_decode(bytes: &[u8]) {
        if check_terms(bytes, 2, &limits()).is_ok() {
            let mut rest = bytes;
            while !rest.is_empty() {
                let len = 1 + term_len(&rest[1..], &limits()).expect("checked");
                let _ = Term::decode(&rest[..len]);
                rest = &rest[len..];
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
            Err(GuardError::Compressed)
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
        // as STRING_EXT; the guard passes it and eetf decodes both terms.
        let spawn = hex(FRAME_SPAWN_REQUEST);
        assert_eq!(check_terms(&spawn, 2, &limits()), Ok(2));
        let control = 1 + term_len(&spawn[1..], &limits()).expect("control");
        decode(&spawn[..control]);
        decode(&spawn[control..]);
        assert!(erl_dist::message::Message::read_from(&mut spawn.as_slice()).is_err());
    }

    /// OTP writes non-ASCII latin-1 atoms as ATOM_EXT outside distribution; the guard only
    /// checks bounds. eetf 0.11 refuses the bytes as invalid UTF-8 (no panic); our own
    /// decoder (`terms`) takes them as latin-1, as the BEAM does.
    #[test]
    fn latin1_atom_passes_the_guard_but_not_eetf() {
        let bytes = [131, 100, 0, 1, 252]; // 'ü'
        assert_eq!(check_terms(&bytes, 1, &limits()), Ok(1));
        assert!(Term::decode(&bytes[..]).is_err());
    }
}
