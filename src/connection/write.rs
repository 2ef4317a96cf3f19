//! Terms written straight into a frame, byte for byte as `eetf` writes them.
//!
//! `eetf`'s encoder goes through `io::Write` a byte or a word at a time (each a call
//! and a capacity check behind a trait); every message's payload is encoded, so here
//! the usual kinds are pushed onto the frame's `Vec` directly. Funs, bignums, ports and
//! bit strings are rare in messages: `eetf` writes those. A test compares both encoders
//! on every kind.

use super::ext::{
    ATOM_CACHE_REF, ATOM_UTF8_EXT, BINARY_EXT, INTEGER_EXT, LARGE_TUPLE_EXT, LIST_EXT, MAP_EXT,
    NEWER_REFERENCE_EXT, NEW_FLOAT_EXT, NEW_PID_EXT, NIL_EXT, SMALL_ATOM_UTF8_EXT,
    SMALL_INTEGER_EXT, SMALL_TUPLE_EXT, STRING_EXT, VERSION,
};
use super::header::OutCache;
use crate::term::{Atom, Pid, Reference, Term};
use eetf::EncodeError;

/// Where a frame's terms are written: its bytes (`Out` derefs to them), with or without
/// version bytes, and, on a connection with the atom cache, the cache that turns atoms
/// into references (see [`header`](super::header)).
pub(crate) struct Out<'a> {
    bytes: &'a mut Vec<u8>,
    /// Pass-through frames: each term starts with the version byte.
    versioned: bool,
    cache: Option<&'a mut OutCache>,
}

impl<'a> Out<'a> {
    /// Terms of a pass-through frame.
    pub(crate) fn versioned(bytes: &'a mut Vec<u8>) -> Self {
        Out {
            bytes,
            versioned: true,
            cache: None,
        }
    }

    /// Terms after a distribution header, atoms through `cache` when there is one.
    pub(crate) fn headed(bytes: &'a mut Vec<u8>, cache: Option<&'a mut OutCache>) -> Self {
        Out {
            bytes,
            versioned: false,
            cache,
        }
    }

    /// Whether terms carry a version byte (a pass-through frame).
    pub(crate) fn is_versioned(&self) -> bool {
        self.versioned
    }

    /// The version byte, where terms carry one.
    #[inline]
    pub(crate) fn version(&mut self) {
        if self.versioned {
            self.bytes.push(VERSION);
        }
    }
}

impl std::ops::Deref for Out<'_> {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        self.bytes
    }
}

impl std::ops::DerefMut for Out<'_> {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        self.bytes
    }
}

/// Writes `term` (without a version byte) onto the end of `out`.
pub(super) fn term(out: &mut Out<'_>, term: &Term) -> Result<(), EncodeError> {
    match term {
        Term::FixInteger(i) => integer(out, i.value),
        Term::Atom(a) => atom(out, a)?,
        Term::Tuple(t) => {
            tuple_header(out, t.elements.len());
            terms(out, &t.elements)?;
        }
        Term::List(l) => list(out, &l.elements)?,
        Term::ImproperList(l) => {
            out.push(LIST_EXT);
            out.extend_from_slice(&(l.elements.len() as u32).to_be_bytes());
            terms(out, &l.elements)?;
            self::term(out, &l.last)?;
        }
        Term::Binary(b) => {
            out.push(BINARY_EXT);
            out.extend_from_slice(&(b.bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(&b.bytes);
        }
        Term::Pid(p) => pid(out, p)?,
        Term::Reference(r) => reference(out, r)?,
        Term::Float(f) => {
            out.push(NEW_FLOAT_EXT);
            out.extend_from_slice(&f.value.to_be_bytes());
        }
        Term::Map(m) => {
            out.push(MAP_EXT);
            out.extend_from_slice(&(m.map.len() as u32).to_be_bytes());
            for (k, v) in &m.map {
                self::term(out, k)?;
                self::term(out, v)?;
            }
        }
        Term::ByteList(b) => {
            out.push(STRING_EXT);
            out.extend_from_slice(&(b.bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(&b.bytes);
        }
        Term::BigInteger(_)
        | Term::Port(_)
        | Term::ExternalFun(_)
        | Term::InternalFun(_)
        | Term::BitBinary(_) => {
            // `eetf` writes the version byte first: the term's own bytes follow it.
            let start = out.len();
            term.encode(&mut **out)?;
            out.remove(start);
        }
    }
    Ok(())
}

/// The start of a tuple of `arity` elements.
pub(super) fn tuple_header(out: &mut Out<'_>, arity: usize) {
    match u8::try_from(arity) {
        Ok(arity) => out.extend_from_slice(&[SMALL_TUPLE_EXT, arity]),
        Err(_) => {
            out.push(LARGE_TUPLE_EXT);
            out.extend_from_slice(&(arity as u32).to_be_bytes());
        }
    }
}

/// The terms of `elements`, one after another (a tuple's or a list's elements).
pub(super) fn terms(out: &mut Out<'_>, elements: &[Term]) -> Result<(), EncodeError> {
    elements.iter().try_for_each(|e| term(out, e))
}

/// `SMALL_INTEGER_EXT` for 0..=255, `INTEGER_EXT` otherwise.
#[inline(always)]
fn integer(out: &mut Out<'_>, n: i32) {
    match u8::try_from(n) {
        Ok(byte) => out.extend_from_slice(&[SMALL_INTEGER_EXT, byte]),
        Err(_) => {
            let [a, b, c, d] = n.to_be_bytes();
            out.extend_from_slice(&[INTEGER_EXT, a, b, c, d]);
        }
    }
}

/// A proper list; as a `STRING_EXT` when every element is an integer in 0..=255 and
/// there are at most 65,535 of them (as the BEAM and `eetf` write `[1, 2, 3]`).
fn list(out: &mut Out<'_>, elements: &[Term]) -> Result<(), EncodeError> {
    let byte = |e: &Term| match e {
        Term::FixInteger(i) => u8::try_from(i.value).ok(),
        _ => None,
    };
    if let Ok(len @ 1..) = u16::try_from(elements.len()) {
        if elements.iter().all(|e| byte(e).is_some()) {
            out.push(STRING_EXT);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend(elements.iter().filter_map(byte));
            return Ok(());
        }
    }
    if !elements.is_empty() {
        out.push(LIST_EXT);
        out.extend_from_slice(&(elements.len() as u32).to_be_bytes());
        for e in elements {
            // Integers (list elements, mostly) without a call each.
            match e {
                Term::FixInteger(i) => integer(out, i.value),
                e => term(out, e)?,
            }
        }
    }
    out.push(NIL_EXT);
    Ok(())
}

pub(super) fn atom(out: &mut Out<'_>, atom: &Atom) -> Result<(), EncodeError> {
    if let Some(r) = out.cache.as_mut().and_then(|c| c.reference(&atom.name)) {
        out.extend_from_slice(&[ATOM_CACHE_REF, r]);
        return Ok(());
    }
    let name = atom.name.as_bytes();
    if let Ok(len) = u8::try_from(name.len()) {
        out.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, len]);
    } else if let Ok(len) = u16::try_from(name.len()) {
        out.push(ATOM_UTF8_EXT);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        return Err(EncodeError::TooLongAtomName(atom.clone()));
    }
    out.extend_from_slice(name);
    Ok(())
}

pub(super) fn pid(out: &mut Out<'_>, pid: &Pid) -> Result<(), EncodeError> {
    out.push(NEW_PID_EXT);
    atom(out, &pid.node)?;
    out.extend_from_slice(&pid.id.to_be_bytes());
    out.extend_from_slice(&pid.serial.to_be_bytes());
    out.extend_from_slice(&pid.creation.to_be_bytes());
    Ok(())
}

pub(super) fn reference(out: &mut Out<'_>, r: &Reference) -> Result<(), EncodeError> {
    let words =
        u16::try_from(r.id.len()).map_err(|_| EncodeError::TooLargeReferenceId(r.clone()))?;
    out.push(NEWER_REFERENCE_EXT);
    out.extend_from_slice(&words.to_be_bytes());
    atom(out, &r.node)?;
    out.extend_from_slice(&r.creation.to_be_bytes());
    for word in &r.id {
        out.extend_from_slice(&word.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::tuple;

    /// Every kind, alone and nested, comes out as `eetf` writes it.
    #[test]
    fn writes_what_eetf_writes() {
        let mut kinds = crate::connection::terms::tests::every_kind();
        kinds.push(Term::ByteList(eetf::ByteList::from(vec![1, 2, 3])));
        let all = tuple(kinds.clone());
        for t in kinds.iter().chain([&all]) {
            let mut theirs = Vec::new();
            t.encode(&mut theirs).unwrap();
            let mut ours = Vec::new();
            let mut out = Out::versioned(&mut ours);
            out.version();
            term(&mut out, t).unwrap();
            assert_eq!(ours, theirs, "{}", crate::term::truncated(t, 80));
        }
    }
}
