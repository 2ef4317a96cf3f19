//! The normal distribution header, both ways: the atom cache (`DIST_HDR_ATOM_CACHE`)
//! and fragmented messages (`FRAGMENTS`).
//!
//! Once either flag is negotiated every frame starts `131, 68` (`DIST_HEADER`), `131, 69`
//! (`DIST_FRAG_HEADER`) or `131, 70` (`DIST_FRAG_CONT`), and its terms carry no version
//! byte (`erts_prepare_dist_ext` in `external.c` takes nothing else). The header lists
//! the atoms the frame's `ATOM_CACHE_REF`s (tag 82) name: each either an index into the
//! per-connection, per-direction cache of 2048 atoms or a new entry with its text,
//! stored at that index for later frames. A BEAM peer resolves a cached atom by index
//! instead of by hashing its text into the atom table, so frames written this way cost
//! it less to decode, and are smaller.
//!
//! A large message travels as a `DIST_FRAG_HEADER` (its header, and the first bytes)
//! then `DIST_FRAG_CONT`s, the fragment ids counting down to 1; other messages may come
//! in between. The header of a first fragment updates the cache at once, as
//! `external.c` does, so the frames after it may use its entries.
//!
//! erl_dist 0.8 has the flags but neither the header nor fragments: this module is
//! ours. Reference: <https://www.erlang.org/doc/apps/erts/erl_ext_dist.html>,
//! "Distribution Header".

use super::codec::DecodeError;
use super::ext::VERSION;
use super::terms::{TermError, TermLimits, TermReader};
use crate::term::Atom;
use std::collections::HashMap;

pub(crate) const DIST_HEADER: u8 = 68;
pub(crate) const DIST_FRAG_HEADER: u8 = 69;
pub(crate) const DIST_FRAG_CONT: u8 = 70;
/// Atoms in each direction's cache (`ERTS_ATOM_CACHE_SIZE`): 8 segments of 256.
pub(crate) const CACHE_SIZE: usize = 2048;
/// References a header can list: its count is one byte.
const MAX_REFS: usize = 255;
/// Fragmented messages a peer may have in progress at once on one connection (a BEAM
/// has one per process in the middle of sending a large message).
pub(crate) const MAX_SEQUENCES: usize = 256;
/// The size of the fragments we send, as a BEAM's (`erts_dist_frag_size`, 64 KiB).
pub(crate) const FRAGMENT_SIZE: usize = 64 * 1024;
/// The bytes of a continuation fragment's header: `131, 70`, its sequence id and its
/// fragment id.
pub(crate) const CONT_HEADER: usize = 18;

/// Why a header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HeaderError {
    #[error("distribution header truncated")]
    Truncated,
    #[error("frame without a distribution header (tag {0}) after the header was negotiated")]
    Missing(u8),
    #[error("fragment header, but FRAGMENTS was not negotiated")]
    NoFragments,
    #[error("atom cache reference to entry {0}, which was never set")]
    UnsetEntry(usize),
    #[error("atom in the distribution header is not UTF-8")]
    NotUtf8,
    #[error("refused in the distribution header: {0}")]
    Atom(String),
    #[error("fragment {frag} of sequence {seq}, which was never started")]
    UnknownSequence { seq: u64, frag: u64 },
    #[error("fragment {got} of sequence {seq} where fragment {expected} was due")]
    OutOfOrder { seq: u64, got: u64, expected: u64 },
    #[error("sequence {0} started twice")]
    Restarted(u64),
    #[error("fragment id 0 in sequence {0}")]
    ZeroFragment(u64),
    #[error("more than {MAX_SEQUENCES} fragmented messages in progress at once")]
    TooManySequences,
    #[error("a fragmented message exceeds the maximum message size of {0} bytes")]
    TooLarge(usize),
    #[error(
        "fragmented messages in progress exceed {0} bytes together (NodeConfig::max_reassembly)"
    )]
    TooMuchInProgress(usize),
}

/// The atoms a frame's `ATOM_CACHE_REF`s name, by their position in its header.
#[derive(Clone, Copy, Default)]
pub(crate) struct AtomRefs<'a> {
    refs: &'a [u16],
    cache: &'a [Option<Atom>],
}

impl<'a> AtomRefs<'a> {
    /// The atom of reference `i`, if the header has that many.
    #[inline]
    pub(crate) fn get(&self, i: u8) -> Option<&'a Atom> {
        let ix = *self.refs.get(usize::from(i))?;
        self.cache.get(usize::from(ix))?.as_ref()
    }

    pub(crate) fn len(&self) -> usize {
        self.refs.len()
    }
}

/// What one frame held, once its header was read.
pub(crate) enum Body<'a> {
    /// Terms with version bytes (a pass-through frame).
    Versioned(&'a [u8]),
    /// Terms without version bytes, and the atoms their references name.
    Headed(&'a [u8], AtomRefs<'a>),
    /// The same, of a message whose fragments were put together: the bytes are the
    /// decoder's to keep (a large binary at their end becomes the term's).
    Reassembled(Vec<u8>, AtomRefs<'a>),
    /// The same in two parts: the bytes up to where a large binary's bytes begin, and
    /// those bytes, which are likely the binary (see [`TermReader::lend_tail_after`]).
    ///
    /// [`TermReader::lend_tail_after`]: super::terms::TermReader::lend_tail_after
    Split(Vec<u8>, Vec<u8>, AtomRefs<'a>),
    /// A fragment of a message still in progress: nothing to decode yet.
    Partial,
}

/// The receiving side of one connection's header state: the peer's cache, as its
/// frames set it, and the fragmented messages in progress. Owned by the reader task.
pub(crate) struct Incoming {
    headed: bool,
    fragments: bool,
    max_message_size: usize,
    /// The most bytes of `partial`, together.
    max_reassembly: usize,
    /// Allocated at the first header that sets an entry.
    cache: Vec<Option<Atom>>,
    /// The cache indices of the current frame's references (reused).
    refs: Vec<u16>,
    partial: HashMap<u64, Partial>,
    /// Bytes held by `partial`.
    partial_bytes: usize,
    /// The message whose last fragment just arrived: the atoms its decoding reads (its
    /// bytes went to the decoder).
    done: Option<Partial>,
    /// The last header's atom cache part, if it set no entry: `refs` is its reading.
    last: Vec<u8>,
}

/// A fragmented message in progress.
struct Partial {
    /// The fragment id due next.
    next: u64,
    /// When the first fragment ended in the middle of a large binary that may end the
    /// message (as `{:big, i, <<...>>}`): the bytes before the binary's, and its length.
    /// `bytes` then holds the binary's bytes, which become the term's as they are.
    head: Option<(Vec<u8>, usize)>,
    bytes: Vec<u8>,
    /// The atoms of its header, as they were when it arrived (later frames may reuse
    /// their cache entries), at indices `0..n`.
    atoms: Vec<Option<Atom>>,
    refs: Vec<u16>,
}

impl Incoming {
    /// For a connection whose peer has `peer_flags` (we advertise both flags).
    pub(crate) fn new(peer_flags: u64, max_message_size: usize, max_reassembly: usize) -> Self {
        use crate::flags::{DIST_HDR_ATOM_CACHE, FRAGMENTS};
        Incoming {
            headed: peer_flags & (DIST_HDR_ATOM_CACHE | FRAGMENTS) != 0,
            fragments: peer_flags & FRAGMENTS != 0,
            max_message_size,
            max_reassembly,
            cache: Vec::new(),
            refs: Vec::new(),
            partial: HashMap::new(),
            partial_bytes: 0,
            done: None,
            last: Vec::new(),
        }
    }

    /// Reads the header of `frame` (a frame body, after its length), updating the
    /// cache and the messages in progress; returns the terms to decode.
    pub(crate) fn read<'s>(&'s mut self, frame: &'s [u8]) -> Result<Body<'s>, DecodeError> {
        let (&first, rest) = frame.split_first().ok_or(DecodeError::Empty)?;
        if !self.headed {
            return match first {
                super::codec::PASS_THROUGH => Ok(Body::Versioned(rest)),
                tag => Err(DecodeError::UnexpectedTag(tag)),
            };
        }
        let mut r = Cursor {
            bytes: frame,
            pos: 1,
        };
        if first != VERSION {
            return Err(HeaderError::Missing(first).into());
        }
        match r.u8()? {
            DIST_HEADER => {
                self.atoms(&mut r)?;
                Ok(Body::Headed(
                    &frame[r.pos..],
                    AtomRefs {
                        refs: &self.refs,
                        cache: &self.cache,
                    },
                ))
            }
            DIST_FRAG_HEADER if self.fragments => {
                let (seq, frag) = (r.u64()?, r.u64()?);
                if frag == 0 {
                    return Err(HeaderError::ZeroFragment(seq).into());
                }
                self.atoms(&mut r)?;
                let data = &frame[r.pos..];
                if frag == 1 {
                    return Ok(Body::Headed(
                        data,
                        AtomRefs {
                            refs: &self.refs,
                            cache: &self.cache,
                        },
                    ));
                }
                if self.partial.contains_key(&seq) {
                    return Err(HeaderError::Restarted(seq).into());
                }
                if self.partial.len() >= MAX_SEQUENCES {
                    return Err(HeaderError::TooManySequences.into());
                }
                self.hold(data.len())?;
                let atoms: Vec<Option<Atom>> = self
                    .refs
                    .iter()
                    .map(|&ix| self.cache[usize::from(ix)])
                    .collect();
                let head = cut_binary(
                    data,
                    AtomRefs {
                        refs: &self.refs,
                        cache: &self.cache,
                    },
                );
                let (head, bytes) = match head {
                    Some((at, len)) => (Some((data[..at].to_vec(), len)), data[at..].to_vec()),
                    None => (None, data.to_vec()),
                };
                self.partial.insert(
                    seq,
                    Partial {
                        next: frag - 1,
                        head,
                        bytes,
                        refs: (0..atoms.len() as u16).collect(),
                        atoms,
                    },
                );
                Ok(Body::Partial)
            }
            DIST_FRAG_CONT if self.fragments => {
                let (seq, frag) = (r.u64()?, r.u64()?);
                let data = &frame[r.pos..];
                let max = self.max_message_size;
                let bytes = self.continued(seq, frag, data.len())?;
                super::pages::reserve_within(bytes, data.len(), max);
                bytes.extend_from_slice(data);
                self.fragment_in(seq)
            }
            DIST_FRAG_HEADER | DIST_FRAG_CONT => Err(HeaderError::NoFragments.into()),
            tag => Err(HeaderError::Missing(tag).into()),
        }
    }

    /// Where the rest of a continuation fragment can go straight from the connection,
    /// without passing through the frame buffer (a copy of every byte less): given the
    /// first bytes of a frame body (at least [`CONT_HEADER`]) and its whole length, the
    /// sequence of the message in progress it continues, in order, its bytes counted
    /// held. The frame's bytes after [`CONT_HEADER`] then go to
    /// [`direct_buf`](Self::direct_buf) and [`fragment_in`](Self::fragment_in) takes the
    /// fragment in. `None` for any other frame, a fragment out of order included: read
    /// whole, it gets the usual treatment (and its error).
    pub(crate) fn direct(&mut self, head: &[u8], len: usize) -> Result<Option<u64>, DecodeError> {
        if !self.fragments || head.len() < CONT_HEADER || head[..2] != [VERSION, DIST_FRAG_CONT] {
            return Ok(None);
        }
        let mut r = Cursor {
            bytes: head,
            pos: 2,
        };
        let (seq, frag) = (r.u64()?, r.u64()?);
        if !matches!(self.partial.get(&seq), Some(p) if p.next == frag) {
            return Ok(None);
        }
        self.continued(seq, frag, len - CONT_HEADER)?;
        Ok(Some(seq))
    }

    /// The buffer of the message in progress of sequence `seq` (see
    /// [`direct`](Self::direct)).
    pub(crate) fn direct_buf(&mut self, seq: u64) -> Option<&mut Vec<u8>> {
        self.partial.get_mut(&seq).map(|p| &mut p.bytes)
    }

    /// The buffer of the message in progress that fragment `frag` of sequence `seq`
    /// continues with `len` bytes, which are counted held.
    fn continued(&mut self, seq: u64, frag: u64, len: usize) -> Result<&mut Vec<u8>, DecodeError> {
        let Some(p) = self.partial.get(&seq) else {
            return Err(HeaderError::UnknownSequence { seq, frag }.into());
        };
        if frag != p.next {
            let expected = p.next;
            return Err(HeaderError::OutOfOrder {
                seq,
                got: frag,
                expected,
            }
            .into());
        }
        let size = p.bytes.len() + p.head.as_ref().map_or(0, |(h, _)| h.len());
        if size.saturating_add(len) > self.max_message_size {
            return Err(HeaderError::TooLarge(self.max_message_size).into());
        }
        self.hold(len)?;
        Ok(&mut self.partial.get_mut(&seq).expect("looked up above").bytes)
    }

    /// Counts in a continuation fragment of sequence `seq`, its bytes appended (by
    /// [`read`](Self::read), or in [`direct_buf`](Self::direct_buf)): the message, when
    /// it was the last.
    pub(crate) fn fragment_in(&mut self, seq: u64) -> Result<Body<'_>, DecodeError> {
        let Some(p) = self.partial.get_mut(&seq) else {
            return Err(HeaderError::UnknownSequence { seq, frag: 0 }.into());
        };
        p.next -= 1;
        if p.next > 0 {
            return Ok(Body::Partial);
        }
        let mut p = self.partial.remove(&seq).expect("looked up above");
        let mut bytes = std::mem::take(&mut p.bytes);
        let head = p.head.take();
        self.partial_bytes -= bytes.len() + head.as_ref().map_or(0, |(h, _)| h.len());
        let p = self.done.insert(p);
        let atoms = AtomRefs {
            refs: &p.refs,
            cache: &p.atoms,
        };
        Ok(match head {
            None => Body::Reassembled(bytes, atoms),
            Some((head, len)) if len == bytes.len() => Body::Split(head, bytes, atoms),
            // More after the binary: one buffer after all.
            Some((mut head, _)) => {
                head.append(&mut bytes);
                Body::Reassembled(head, atoms)
            }
        })
    }

    /// Bytes of fragmented messages held for reassembly.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn held(&self) -> usize {
        self.partial_bytes
    }

    /// Counts `n` more bytes of fragments against the reassembly budget.
    fn hold(&mut self, n: usize) -> Result<(), HeaderError> {
        self.partial_bytes += n;
        if self.partial_bytes > self.max_reassembly {
            return Err(HeaderError::TooMuchInProgress(self.max_reassembly));
        }
        Ok(())
    }

    /// Reads the atom cache part of a header into `refs`, setting new entries.
    fn atoms(&mut self, r: &mut Cursor<'_>) -> Result<(), HeaderError> {
        // The message decoded from `done` has been handed over by now.
        self.done = None;
        let start = r.pos;
        // The same references as the last header, none new (in a conversation the
        // same atoms recur): `refs` stands.
        if !self.last.is_empty() && r.bytes[start..].starts_with(&self.last) {
            r.pos += self.last.len();
            return Ok(());
        }
        self.refs.clear();
        self.last.clear();
        let n = usize::from(r.u8()?);
        if n == 0 {
            return Ok(());
        }
        let flags = r.take(n / 2 + 1)?;
        let nibble = |i: usize| (flags[i / 2] >> ((i % 2) * 4)) & 0xf;
        let long_atoms = nibble(n) & 1 != 0;
        let mut any_new = false;
        for i in 0..n {
            let flag = nibble(i);
            // Three bits of segment and a byte: always within the 2048 entries.
            let ix = usize::from(flag & 7) << 8 | usize::from(r.u8()?);
            if flag & 8 != 0 {
                any_new = true;
                let len = if long_atoms {
                    usize::from(u16::from_be_bytes(r.array()?))
                } else {
                    usize::from(r.u8()?)
                };
                let text = std::str::from_utf8(r.take(len)?).map_err(|_| HeaderError::NotUtf8)?;
                if self.cache.is_empty() {
                    self.cache = vec![None; CACHE_SIZE];
                }
                self.cache[ix] = Some(Atom::from_peer(text).map_err(HeaderError::Atom)?);
            } else if !matches!(self.cache.get(ix), Some(Some(_))) {
                return Err(HeaderError::UnsetEntry(ix));
            }
            self.refs.push(ix as u16);
        }
        if !any_new {
            self.last.extend_from_slice(&r.bytes[start..r.pos]);
        }
        Ok(())
    }
}

/// Where the bytes of a large binary that may end a fragmented message begin in its
/// first fragment `data`, which ends before they do, and how many there are: found by
/// reading the fragment's terms until they stop short (at most a fragment's work, once
/// per message). `None` when the terms stop short of anything else.
fn cut_binary(data: &[u8], atoms: AtomRefs<'_>) -> Option<(usize, usize)> {
    let limits = TermLimits::default();
    let mut reader = TermReader::headed(data, atoms, &limits).lend_tail();
    match super::terms::frame_terms(&mut reader) {
        Err(TermError::Truncated(pos)) => reader.cut_binary().filter(|&(at, _)| at == pos),
        _ => None,
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HeaderError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(HeaderError::Truncated)?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], HeaderError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, HeaderError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, HeaderError> {
        self.array().map(u64::from_be_bytes)
    }
}

/// The sending side's cache: which atom each of the 2048 entries holds for the peer.
/// Lives with the outbox, under its lock, so entries are set in the order the frames
/// are written.
#[derive(Debug)]
pub(crate) struct OutCache {
    entries: Vec<Option<Atom>>,
    /// Per entry, the frame (by `stamp`) that last referred to it, and its reference
    /// number there: one lookup finds an atom already in the frame.
    used: Vec<(u32, u8)>,
    stamp: u32,
    /// The current frame's references: entry index, and whether it is new.
    refs: Vec<(u16, bool)>,
    /// The current frame's header, once written, and the references it was written
    /// for (the next frame with the same ones, none new, reuses it).
    header: Vec<u8>,
    header_refs: Vec<(u16, bool)>,
}

impl Default for OutCache {
    fn default() -> Self {
        OutCache {
            entries: vec![None; CACHE_SIZE],
            used: vec![(0, 0); CACHE_SIZE],
            stamp: 0,
            refs: Vec::new(),
            header: Vec::new(),
            header_refs: Vec::new(),
        }
    }
}

impl OutCache {
    /// Starts a frame.
    pub(crate) fn begin(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            // Wrapped: no entry may look used by this frame.
            self.used.iter_mut().for_each(|u| *u = (0, 0));
            self.stamp = 1;
        }
        self.refs.clear();
    }

    /// The reference number of `atom` in the current frame, or `None` when it must be
    /// written in full (its entry is taken by another atom of this frame, or the frame
    /// has 255 references already).
    #[inline]
    pub(crate) fn reference(&mut self, atom: Atom) -> Option<u8> {
        let ix = entry_of(atom);
        let (stamp, r) = self.used[ix];
        if stamp == self.stamp {
            return (self.entries[ix] == Some(atom)).then_some(r);
        }
        if self.refs.len() >= MAX_REFS {
            return None;
        }
        let r = self.refs.len() as u8;
        let new = self.entries[ix] != Some(atom);
        if new {
            self.entries[ix] = Some(atom);
        }
        self.refs.push((ix as u16, new));
        self.used[ix] = (self.stamp, r);
        Some(r)
    }

    /// The frame could not be written: the entries it set are unknown to the peer.
    pub(crate) fn abandon(&mut self) {
        for &(ix, new) in &self.refs {
            if new {
                self.entries[usize::from(ix)] = None;
            }
        }
        self.refs.clear();
    }

    /// The header of the current frame (after `131, 68`, or a fragment's ids): the
    /// count, the flags, and each reference, new ones with their text.
    pub(crate) fn header(&mut self) -> &[u8] {
        if self.refs == self.header_refs && self.refs.iter().all(|&(_, new)| !new) {
            return &self.header;
        }
        self.header_refs.clone_from(&self.refs);
        let out = &mut self.header;
        out.clear();
        let n = self.refs.len();
        out.push(n as u8);
        if n == 0 {
            return out;
        }
        let entries = &self.entries;
        let text = |ix: u16| entries[usize::from(ix)].map_or("", |a| a.name());
        let long_atoms = self
            .refs
            .iter()
            .any(|&(ix, new)| new && text(ix).len() > 255);
        // Four bits a reference (new entry, segment), low nibble first; then LongAtoms.
        let mut byte = 0u8;
        for (i, &(ix, new)) in self.refs.iter().enumerate() {
            let nibble = (ix >> 8) as u8 | if new { 8 } else { 0 };
            if i % 2 == 0 {
                byte = nibble;
            } else {
                out.push(byte | nibble << 4);
            }
        }
        let last = u8::from(long_atoms);
        out.push(if n.is_multiple_of(2) {
            last
        } else {
            byte | last << 4
        });
        for &(ix, new) in &self.refs {
            out.push(ix as u8);
            if new {
                let text = text(ix).as_bytes();
                if long_atoms {
                    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
                } else {
                    out.push(text.len() as u8);
                }
                out.extend_from_slice(text);
            }
        }
        out
    }

    /// The length of what [`header`](Self::header) returned last.
    pub(crate) fn header_len(&self) -> usize {
        self.header.len()
    }
}

/// The cache entry of an atom: a hash of where it lives (an atom is interned, so its
/// address is its identity; any hash will do, both ends only need the index the header
/// names).
#[inline]
fn entry_of(atom: Atom) -> usize {
    let h = (atom.address() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The top 11 bits: 0..2048.
    (h >> 53) as usize
}

#[cfg(test)]
mod tests;
