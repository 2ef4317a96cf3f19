//! Terms written straight into a frame, byte for byte as a BEAM writes them: pushed
//! onto the frame's `Vec` directly (an encoder behind `io::Write`, as `eetf`'s, pays a
//! call and a capacity check per byte or word). A test compares the bytes with `eetf`'s
//! on every kind.

use super::ext::{
    ATOM_CACHE_REF, ATOM_UTF8_EXT, BINARY_EXT, BIT_BINARY_EXT, EXPORT_EXT, FUN_EXT, INTEGER_EXT,
    LARGE_BIG_EXT, LARGE_TUPLE_EXT, LIST_EXT, MAP_EXT, MAX_REFERENCE_WORDS, NEWER_REFERENCE_EXT,
    NEW_FLOAT_EXT, NEW_FUN_EXT, NEW_PID_EXT, NEW_PORT_EXT, NIL_EXT, SMALL_ATOM_UTF8_EXT,
    SMALL_BIG_EXT, SMALL_INTEGER_EXT, SMALL_TUPLE_EXT, STRING_EXT, V4_PORT_EXT, VERSION,
};
use super::header::OutCache;
use crate::term::{Atom, BigInteger, InternalFun, Pid, Port, Reference, Term};
use std::collections::HashMap;

pub(crate) use crate::term::EncodeError;

// The external term format's writer is the connection's (with its atom cache); a term
// written alone is one more use of it.
impl Term {
    /// The term in the external term format, as `:erlang.term_to_binary/1` writes it
    /// (uncompressed): what `:erlang.binary_to_term/1` on any node reads back. Byte for
    /// byte, it is what `:erlang.term_to_binary(term, minor_version: 2)` gives on any
    /// release (atoms in UTF-8, as distribution and OTP 26's default have them; OTP 25
    /// writes ASCII atoms as latin-1 `ATOM_EXT` by default), the keys of maps of up to
    /// 32 entries in term order.
    ///
    /// ```
    /// use cnode::{term, term::Term};
    /// let t = term!({:ok, [1, 2]});
    /// let bytes = t.to_binary().unwrap();
    /// assert_eq!(bytes, [131, 104, 2, 119, 2, b'o', b'k', 107, 0, 2, 1, 2]);
    /// assert_eq!(Term::from_binary(&bytes).unwrap(), t);
    /// ```
    pub fn to_binary(&self) -> Result<Vec<u8>, EncodeError> {
        let mut bytes = Vec::new();
        let mut out = Out::versioned(&mut bytes);
        out.version();
        self::term(&mut out, self)?;
        Ok(bytes)
    }
}

/// A count the format writes in 32 bits.
fn count(what: &'static str, n: usize) -> Result<[u8; 4], EncodeError> {
    u32::try_from(n)
        .map(u32::to_be_bytes)
        .map_err(|_| EncodeError::TooLarge(what, n))
}

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
        // A level down: on a fresh stack segment when this one runs low (`term::deep`).
        Term::Tuple(t) => crate::term::deep(|| tuple(out, &t.elements))?,
        Term::List(l) => crate::term::deep(|| list(out, &l.elements))?,
        Term::ImproperList(l) => crate::term::deep(|| improper_list(out, &l.elements, &l.last))?,
        Term::Binary(b) => binary(out, &b.bytes)?,
        Term::Pid(p) => pid(out, p)?,
        Term::Reference(r) => reference(out, r)?,
        Term::Float(f) => {
            out.push(NEW_FLOAT_EXT);
            out.extend_from_slice(&f.value.to_be_bytes());
        }
        Term::Map(m) => crate::term::deep(|| map(out, &m.map))?,
        Term::BigInteger(b) => big(out, b)?,
        Term::Port(p) => port(out, p)?,
        Term::ExternalFun(f) => {
            out.push(EXPORT_EXT);
            atom(out, &f.module)?;
            atom(out, &f.function)?;
            out.extend_from_slice(&[SMALL_INTEGER_EXT, f.arity]);
        }
        Term::InternalFun(f) => crate::term::deep(|| fun(out, f))?,
        Term::BitBinary(b)
            if b.tail_bits_size == 0 || b.tail_bits_size >= 8 || b.bytes.is_empty() =>
        {
            binary(out, &b.bytes)?
        }
        Term::BitBinary(b) => {
            out.push(BIT_BINARY_EXT);
            out.extend_from_slice(&count("binary", b.bytes.len())?);
            out.push(b.tail_bits_size);
            // The last byte's bits are its low ones here, its high ones on the wire.
            let (last, whole) = b.bytes.split_last().expect("a last byte");
            out.extend_from_slice(whole);
            out.push(last << (8 - b.tail_bits_size));
        }
    }
    Ok(())
}

/// The most entries a BEAM keeps in a flat map, whose keys it writes in term order.
const FLAT_MAP: usize = 32;

/// `MAP_EXT`: up to 32 entries (an Elixir struct, a small map), keys in Erlang's term
/// order, as a BEAM writes a map that small (OTP 25; later releases with
/// `[:deterministic]`), so the same map is the same bytes; a larger one in the order
/// of its table.
fn map(out: &mut Out<'_>, map: &HashMap<Term, Term>) -> Result<(), EncodeError> {
    out.push(MAP_EXT);
    out.extend_from_slice(&count("map", map.len())?);
    if (2..=FLAT_MAP).contains(&map.len()) {
        let mut sorted = [None; FLAT_MAP];
        for (slot, entry) in sorted.iter_mut().zip(map) {
            *slot = Some(entry);
        }
        let sorted = &mut sorted[..map.len()];
        sorted.sort_unstable_by(|a, b| match (a, b) {
            (Some(a), Some(b)) => crate::term::key_order(a.0, b.0),
            _ => std::cmp::Ordering::Equal,
        });
        for (k, v) in sorted.iter().flatten() {
            self::term(out, k)?;
            self::term(out, v)?;
        }
    } else {
        for (k, v) in map {
            self::term(out, k)?;
            self::term(out, v)?;
        }
    }
    Ok(())
}

/// An integer of any size: as a small one where it fits 32 bits, as the BEAM writes it.
fn big(out: &mut Out<'_>, b: &BigInteger) -> Result<(), EncodeError> {
    if let Ok(small) = i32::try_from(&b.value) {
        integer(out, small);
        return Ok(());
    }
    let (sign, digits) = b.value.to_bytes_le();
    let sign = u8::from(sign == num_bigint::Sign::Minus);
    match u8::try_from(digits.len()) {
        Ok(n) => out.extend_from_slice(&[SMALL_BIG_EXT, n]),
        Err(_) => {
            out.push(LARGE_BIG_EXT);
            out.extend_from_slice(&count("bignum", digits.len())?);
        }
    }
    out.push(sign);
    out.extend_from_slice(&digits);
    Ok(())
}

/// `NEW_PORT_EXT`, or `V4_PORT_EXT` for an id beyond 32 bits (as OTP 24 and later).
fn port(out: &mut Out<'_>, p: &Port) -> Result<(), EncodeError> {
    match u32::try_from(p.id) {
        Ok(id) => {
            out.push(NEW_PORT_EXT);
            atom(out, &p.node)?;
            out.extend_from_slice(&id.to_be_bytes());
        }
        Err(_) => {
            out.push(V4_PORT_EXT);
            atom(out, &p.node)?;
            out.extend_from_slice(&p.id.to_be_bytes());
        }
    }
    out.extend_from_slice(&p.creation.to_be_bytes());
    Ok(())
}

/// `NEW_FUN_EXT` (its size counts itself and everything after it), or `FUN_EXT`.
fn fun(out: &mut Out<'_>, f: &InternalFun) -> Result<(), EncodeError> {
    match f {
        InternalFun::New {
            module,
            arity,
            pid: creator,
            free_vars,
            index,
            uniq,
            old_index,
            old_uniq,
        } => {
            out.push(NEW_FUN_EXT);
            let size_at = out.len();
            out.extend_from_slice(&[0; 4]);
            out.push(*arity);
            out.extend_from_slice(uniq);
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&count("fun", free_vars.len())?);
            atom(out, module)?;
            integer(out, *old_index);
            integer(out, *old_uniq);
            pid(out, creator)?;
            terms(out, free_vars)?;
            let size = count("fun", out.len() - size_at)?;
            out[size_at..size_at + 4].copy_from_slice(&size);
        }
        InternalFun::Old {
            module,
            pid: creator,
            free_vars,
            index,
            uniq,
        } => {
            out.push(FUN_EXT);
            out.extend_from_slice(&count("fun", free_vars.len())?);
            pid(out, creator)?;
            atom(out, module)?;
            integer(out, *index);
            integer(out, *uniq);
            terms(out, free_vars)?;
        }
    }
    Ok(())
}

/// The start of a tuple of `arity` elements.
pub(super) fn tuple_header(out: &mut Out<'_>, arity: usize) -> Result<(), EncodeError> {
    match u8::try_from(arity) {
        Ok(arity) => out.extend_from_slice(&[SMALL_TUPLE_EXT, arity]),
        Err(_) => {
            out.push(LARGE_TUPLE_EXT);
            out.extend_from_slice(&count("tuple", arity)?);
        }
    }
    Ok(())
}

// Each kind that writes a count has a function of its own, so that `term`'s stack
// frame, once per level of nesting, stays small (in debug builds above all).

fn tuple(out: &mut Out<'_>, elements: &[Term]) -> Result<(), EncodeError> {
    tuple_header(out, elements.len())?;
    terms(out, elements)
}

fn improper_list(out: &mut Out<'_>, elements: &[Term], last: &Term) -> Result<(), EncodeError> {
    out.push(LIST_EXT);
    out.extend_from_slice(&count("list", elements.len())?);
    terms(out, elements)?;
    term(out, last)
}

fn binary(out: &mut Out<'_>, bytes: &[u8]) -> Result<(), EncodeError> {
    out.push(BINARY_EXT);
    out.extend_from_slice(&count("binary", bytes.len())?);
    super::pages::reserve(out.bytes, bytes.len());
    out.extend_from_slice(bytes);
    Ok(())
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
        out.extend_from_slice(&count("list", elements.len())?);
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
    if let Some(r) = out.cache.as_mut().and_then(|c| c.reference(*atom)) {
        out.extend_from_slice(&[ATOM_CACHE_REF, r]);
        return Ok(());
    }
    let name = atom.name().as_bytes();
    if let Ok(len) = u8::try_from(name.len()) {
        out.extend_from_slice(&[SMALL_ATOM_UTF8_EXT, len]);
    } else {
        let chars = atom.name().chars().count();
        if chars > 255 {
            return Err(EncodeError::AtomTooLong(chars));
        }
        out.push(ATOM_UTF8_EXT);
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
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
    let words = match u16::try_from(r.id.len()) {
        Ok(n @ 1..=MAX_REFERENCE_WORDS) => n,
        _ => return Err(EncodeError::ReferenceTooLong(r.id.len())),
    };
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
    use crate::term::eetf_compat::EetfCodec;
    use crate::term::tuple;

    /// A small map's keys are written in map-key order whatever its table's order:
    /// binaries with a bitstring, lists with an improper one, integers with floats (a
    /// sort by an order that was not total panicked on such keys, now and then).
    #[test]
    fn small_maps_are_the_same_bytes_whatever_their_keys() {
        use crate::term::{binary, int, list, map};
        let bitstring = Term::from(crate::term::BitBinary {
            bytes: vec![1],
            tail_bits_size: 3,
        });
        let improper = Term::from(crate::term::ImproperList::from((vec![int(1)], int(2))));
        let one_point_o = Term::Float(crate::term::Float { value: 1.0 });
        let entries = || {
            let mut entries: Vec<(Term, Term)> = (1..=20u8)
                .map(|i| (binary(&[i][..]), int(i.into())))
                .collect();
            entries.extend((1..=5).map(|i| (list(vec![int(i)]), int(i))));
            entries.push((bitstring.clone(), int(0)));
            entries.push((improper.clone(), int(0)));
            entries.push((int(1), int(0)));
            entries.push((one_point_o.clone(), int(0)));
            entries
        };
        let first = map(entries()).to_binary().unwrap();
        for _ in 0..200 {
            // A new table each time, with its own hash seed and so its own order.
            assert_eq!(map(entries()).to_binary().unwrap(), first);
        }
    }

    /// Every kind, alone and nested, comes out as `eetf` writes it (a map's entries in
    /// the order of its own table, which differs between the two: there, the same
    /// term as `eetf` reads them).
    #[test]
    fn writes_what_eetf_writes() {
        let kinds = crate::connection::terms::tests::every_kind();
        let all = tuple(kinds.clone());
        for t in kinds.iter().chain([&all]) {
            let mut theirs = Vec::new();
            t.encode(&mut theirs).unwrap();
            let mut ours = Vec::new();
            let mut out = Out::versioned(&mut ours);
            out.version();
            term(&mut out, t).unwrap();
            let shown = crate::term::truncated(t, 80);
            if ours != theirs && matches!(t, Term::Map(_) | Term::Tuple(_)) {
                let read = |b: &[u8]| eetf::Term::decode(b).unwrap();
                assert_eq!(read(&ours), read(&theirs), "{shown}");
                assert_eq!(ours.len(), theirs.len(), "{shown}");
            } else {
                assert_eq!(ours, theirs, "{shown}");
            }
        }
    }

    #[test]
    fn a_count_beyond_32_bits_is_an_error_not_a_wrapped_length() {
        assert_eq!(count("list", 7), Ok([0, 0, 0, 7]));
        assert_eq!(count("list", u32::MAX as usize), Ok([255; 4]));
        let over = u32::MAX as usize + 1;
        assert_eq!(
            count("binary", over),
            Err(EncodeError::TooLarge("binary", over))
        );
    }
}
