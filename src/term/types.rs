//! The term type: what a BEAM process holds, in Rust.
//!
//! Shaped after `eetf`'s (the same kinds, names and fields, so that code written
//! against one reads against the other), with the changes that make it cheaper to hold
//! and to pass around: atoms are interned ([`Atom`] is a pointer, compared and copied as
//! one, its name stored once for the life of the program, as the BEAM's atom table
//! does), so a pid is 24 bytes with no allocation of its own, and the rare large kinds
//! are boxed, so that a term is 32 bytes where `eetf`'s is 56 (the BEAM's list cell is
//! 16). There is no separate charlist kind: a charlist is a list of integers.

use num_bigint::BigInt;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{LazyLock, RwLock};

/// An Erlang term.
///
/// `Display` and `Debug` print it in Elixir's syntax (`{:ok, "hi"}`, see
/// [`Elixir`](super::Elixir)); [`Erlang`](super::Erlang) prints Erlang's.
#[derive(PartialEq, Eq, Hash, Clone)]
pub enum Term {
    Atom(Atom),
    FixInteger(FixInteger),
    BigInteger(Box<BigInteger>),
    Float(Float),
    Pid(Pid),
    Port(Port),
    Reference(Box<Reference>),
    ExternalFun(Box<ExternalFun>),
    InternalFun(Box<InternalFun>),
    Binary(Binary),
    BitBinary(Box<BitBinary>),
    List(List),
    ImproperList(Box<ImproperList>),
    Tuple(Tuple),
    Map(Box<Map>),
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&super::Elixir(self), f)
    }
}

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&super::Elixir(self), f)
    }
}

/// `From<Kind> for Term` and `TryFrom<Term> for Kind` (the term back when it is of
/// another kind), for the kinds held as they are and those held in a box.
macro_rules! kinds {
    (plain: $($plain:ident),*; boxed: $($boxed:ident),*) => {
        $(kinds!(@one $plain, |x| x, |x| x);)*
        $(kinds!(@one $boxed, Box::new, |x: Box<$boxed>| *x);)*
    };
    (@one $kind:ident, $wrap:expr, $unwrap:expr) => {
        impl From<$kind> for Term {
            fn from(x: $kind) -> Self {
                Term::$kind($wrap(x))
            }
        }
        impl TryFrom<Term> for $kind {
            type Error = Term;
            fn try_from(term: Term) -> Result<Self, Term> {
                match term {
                    Term::$kind(x) => Ok($unwrap(x)),
                    other => Err(other),
                }
            }
        }
    };
}
kinds!(
    plain: Atom, FixInteger, Float, Pid, Port, Binary, List, Tuple;
    boxed: BigInteger, Reference, ExternalFun, InternalFun, BitBinary, ImproperList, Map
);

/// An atom: a pointer into the table of atoms, compared, hashed and copied as one.
///
/// Atoms are never freed, as on the BEAM. Those a peer sends are bounded: past
/// [`Atom::LIMIT`] atoms (the BEAM's default `+t`), a frame with a new one is refused
/// and its connection closed, where a BEAM node would stop.
#[derive(Clone, Copy)]
pub struct Atom(&'static AtomEntry);

struct AtomEntry {
    name: Box<str>,
}

/// FNV-1a: atom names are short and hashed on every lookup.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type AtomTable = HashMap<&'static str, Atom, BuildHasherDefault<Fnv>>;

static ATOMS: LazyLock<RwLock<AtomTable>> = LazyLock::new(Default::default);

/// What a peer's new atom is refused with once the table of atoms is full.
const ATOMS_FULL: &str = "a new atom, with the table of atoms full";

impl Atom {
    /// How many atoms peers may make: a frame with an atom that would be the
    /// 1,048,577th is refused (the BEAM's default atom table size).
    pub const LIMIT: usize = 1_048_576;

    /// How many atoms there are (`erlang:system_info(atom_count)`).
    pub(crate) fn count() -> usize {
        ATOMS.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The atom named `name`, made if it is new.
    pub fn new(name: &str) -> Atom {
        Self::intern(name, usize::MAX).expect("no limit")
    }

    /// The atom named `name` if it exists or the table has room below `limit` atoms.
    pub(crate) fn intern(name: &str, limit: usize) -> Option<Atom> {
        if let Some(atom) = Self::existing(name) {
            return Some(atom);
        }
        let mut table = ATOMS.write().unwrap_or_else(|e| e.into_inner());
        if let Some(atom) = table.get(name) {
            return Some(*atom);
        }
        if table.len() >= limit {
            return None;
        }
        let entry: &'static AtomEntry = Box::leak(Box::new(AtomEntry { name: name.into() }));
        let atom = Atom(entry);
        table.insert(&entry.name, atom);
        Some(atom)
    }

    /// Whether the table of atoms has no room for a peer's new atom.
    pub(crate) fn table_is_full() -> bool {
        ATOMS.read().unwrap_or_else(|e| e.into_inner()).len() >= Self::LIMIT
    }

    /// The atom a peer names, bounded as the BEAM bounds its atom table: at most 255
    /// characters, and no new atom past [`Atom::LIMIT`].
    pub(crate) fn from_peer(name: &str) -> Result<Atom, String> {
        const MAX_CHARS: usize = 255;
        if name.len() > MAX_CHARS && name.chars().count() > MAX_CHARS {
            return Err(format!("atom of more than {MAX_CHARS} characters"));
        }
        Self::intern(name, Self::LIMIT)
            .ok_or_else(|| format!("{ATOMS_FULL} ({} atoms)", Self::LIMIT))
    }

    /// The atom named `name` if it exists already (as `String.to_existing_atom/1`).
    pub fn existing(name: &str) -> Option<Atom> {
        ATOMS
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied()
    }

    /// Where the atom lives: the same for the life of the program, and for no other atom.
    #[inline]
    pub(crate) fn address(&self) -> usize {
        self.0 as *const AtomEntry as usize
    }

    /// The atom's name.
    #[inline]
    pub fn name(&self) -> &'static str {
        &self.0.name
    }

    /// The atom's name (as [`name`](Self::name)).
    #[inline]
    pub fn as_str(&self) -> &'static str {
        &self.0.name
    }
}

impl PartialEq for Atom {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Atom {}

impl Hash for Atom {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.address().hash(state)
    }
}

/// Atoms order by name, as Erlang's term order has it.
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Atom {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

impl PartialEq<&str> for Atom {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&super::Elixir(&Term::Atom(*self)), f)
    }
}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&str> for Atom {
    fn from(name: &str) -> Self {
        Atom::new(name)
    }
}

impl From<&String> for Atom {
    fn from(name: &String) -> Self {
        Atom::new(name)
    }
}

impl From<String> for Atom {
    fn from(name: String) -> Self {
        Atom::new(&name)
    }
}

/// An integer that fits 32 bits (`SMALL_INTEGER_EXT`, `INTEGER_EXT`).
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
pub struct FixInteger {
    pub value: i32,
}

/// `From<$t> for $kind` for each Rust integer type `$t` its value type takes losslessly.
macro_rules! integer_from {
    ($kind:ident($value:ty): $($t:ty),*) => {$(
        impl From<$t> for $kind {
            fn from(value: $t) -> Self {
                $kind { value: <$value>::from(value) }
            }
        }
    )*};
}
integer_from!(FixInteger(i32): u8, i8, u16, i16, i32);

/// An integer of any size (`SMALL_BIG_EXT`, `LARGE_BIG_EXT`).
#[derive(Debug, PartialEq, Eq, Hash, Clone)]
pub struct BigInteger {
    pub value: BigInt,
}

integer_from!(BigInteger(BigInt): i8, u8, i16, u16, i32, u32, i64, u64, i128, u128, isize, usize);

impl From<&FixInteger> for BigInteger {
    fn from(i: &FixInteger) -> Self {
        BigInteger {
            value: BigInt::from(i.value),
        }
    }
}

/// A float. Erlang has no NaN or infinities: [`Float::try_from`] refuses them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Float {
    pub value: f64,
}

/// A float that is not finite, which no Erlang term holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a finite float, and Erlang has no other")]
pub struct NonFiniteFloat(pub &'static str);

impl TryFrom<f64> for Float {
    type Error = NonFiniteFloat;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        if value.is_finite() {
            Ok(Float { value })
        } else if value.is_nan() {
            Err(NonFiniteFloat("NaN"))
        } else {
            Err(NonFiniteFloat("an infinity"))
        }
    }
}

impl TryFrom<f32> for Float {
    type Error = NonFiniteFloat;
    fn try_from(value: f32) -> Result<Self, Self::Error> {
        Float::try_from(f64::from(value))
    }
}

impl Eq for Float {}

impl Hash for Float {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.value == 0.0 {
            0.0f64.to_bits().hash(state);
        } else {
            self.value.to_bits().hash(state);
        }
    }
}

/// A process identifier: 24 bytes, no allocation.
#[derive(PartialEq, Eq, Hash, Clone, Copy)]
pub struct Pid {
    pub node: Atom,
    pub id: u32,
    pub serial: u32,
    pub creation: u32,
}

impl Pid {
    pub fn new<T>(node: T, id: u32, serial: u32, creation: u32) -> Self
    where
        Atom: From<T>,
    {
        Pid {
            node: Atom::from(node),
            id,
            serial,
            creation,
        }
    }
}

/// A port identifier.
#[derive(PartialEq, Eq, Hash, Clone, Copy)]
pub struct Port {
    pub node: Atom,
    pub id: u64,
    pub creation: u32,
}

/// A reference (`NEWER_REFERENCE_EXT`: up to 5 words of id).
#[derive(PartialEq, Eq, Hash, Clone)]
pub struct Reference {
    pub node: Atom,
    pub id: Vec<u32>,
    pub creation: u32,
}

macro_rules! display_as_term {
    ($($kind:ident),*) => {$(
        impl fmt::Display for $kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&Term::from(self.clone()), f)
            }
        }
        impl fmt::Debug for $kind {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )*};
}
display_as_term!(Pid, Port, Reference);

impl From<(&str, Vec<u32>)> for Reference {
    fn from((node, id): (&str, Vec<u32>)) -> Self {
        Reference {
            node: Atom::from(node),
            id,
            creation: 0,
        }
    }
}

/// An external fun, `&Module.function/arity` (`EXPORT_EXT`).
#[derive(Debug, PartialEq, Eq, Hash, Clone)]
pub struct ExternalFun {
    pub module: Atom,
    pub function: Atom,
    pub arity: u8,
}

impl From<(&str, &str, u8)> for ExternalFun {
    fn from((module, function, arity): (&str, &str, u8)) -> Self {
        ExternalFun {
            module: Atom::from(module),
            function: Atom::from(function),
            arity,
        }
    }
}

/// A fun defined in a module (`NEW_FUN_EXT`; the old `FUN_EXT` is read only).
#[derive(Debug, Eq)]
pub enum InternalFun {
    /// `FUN_EXT`, from releases before R8.
    Old {
        module: Atom,
        pid: Pid,
        free_vars: Vec<Term>,
        index: i32,
        uniq: i32,
    },
    /// `NEW_FUN_EXT`.
    New {
        module: Atom,
        arity: u8,
        pid: Pid,
        free_vars: Vec<Term>,
        index: u32,
        uniq: [u8; 16],
        old_index: i32,
        old_uniq: i32,
    },
}

/// A binary: an Elixir string when its bytes are UTF-8.
#[derive(Debug, PartialEq, Eq, Hash, Clone)]
pub struct Binary {
    pub bytes: Vec<u8>,
}

impl From<&[u8]> for Binary {
    fn from(bytes: &[u8]) -> Self {
        Binary {
            bytes: bytes.to_vec(),
        }
    }
}

impl From<Vec<u8>> for Binary {
    fn from(bytes: Vec<u8>) -> Self {
        Binary { bytes }
    }
}

/// A bitstring whose last byte holds `tail_bits_size` bits (1 to 8), its low ones:
/// `<<1, 2::size(3)>>` is `bytes: [1, 2]`, `tail_bits_size: 3`.
#[derive(Debug, PartialEq, Eq, Hash, Clone)]
pub struct BitBinary {
    pub bytes: Vec<u8>,
    pub tail_bits_size: u8,
}

impl From<Binary> for BitBinary {
    fn from(binary: Binary) -> Self {
        BitBinary {
            bytes: binary.bytes,
            tail_bits_size: 8,
        }
    }
}

impl From<(Vec<u8>, u8)> for BitBinary {
    fn from((bytes, tail_bits_size): (Vec<u8>, u8)) -> Self {
        BitBinary {
            bytes,
            tail_bits_size,
        }
    }
}

/// A proper list; `[]` is the list with no elements.
#[derive(Debug, Eq)]
pub struct List {
    pub elements: Vec<Term>,
}

impl List {
    /// The empty list `[]`.
    pub fn nil() -> Self {
        List {
            elements: Vec::new(),
        }
    }

    /// Whether this is `[]`.
    pub fn is_nil(&self) -> bool {
        self.elements.is_empty()
    }
}

impl From<Vec<Term>> for List {
    fn from(elements: Vec<Term>) -> Self {
        List { elements }
    }
}

/// A list whose tail is not `[]` (`[1 | 2]`).
#[derive(Debug, Eq)]
pub struct ImproperList {
    pub elements: Vec<Term>,
    pub last: Box<Term>,
}

impl From<(Vec<Term>, Term)> for ImproperList {
    fn from((elements, last): (Vec<Term>, Term)) -> Self {
        ImproperList {
            elements,
            last: Box::new(last),
        }
    }
}

/// A tuple.
#[derive(Debug, Eq)]
pub struct Tuple {
    pub elements: Vec<Term>,
}

impl Tuple {
    /// The empty tuple `{}`.
    pub fn nil() -> Self {
        Tuple {
            elements: Vec::new(),
        }
    }
}

impl From<Vec<Term>> for Tuple {
    fn from(elements: Vec<Term>) -> Self {
        Tuple { elements }
    }
}

/// A map.
#[derive(Debug, Eq, Default)]
pub struct Map {
    pub map: HashMap<Term, Term>,
}

impl Hash for Map {
    /// Independent of the order of the entries, as the map's equality is.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let sum = super::deep(|| {
            let mut sum = 0u64;
            for entry in &self.map {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                entry.hash(&mut h);
                sum = sum.wrapping_add(h.finish());
            }
            sum
        });
        self.map.len().hash(state);
        sum.hash(state);
    }
}

// The containers' clones, comparisons and hashes go a level down a term each: through
// `deep`, so that a deeply nested term takes a fresh stack segment rather than
// overflowing (see `term::deep`). As derived otherwise.
macro_rules! walked_deep {
    ($type:ident { $($field:ident),+ }) => {
        impl Clone for $type {
            fn clone(&self) -> Self {
                super::deep(|| $type { $($field: self.$field.clone()),+ })
            }
        }
        impl PartialEq for $type {
            fn eq(&self, other: &Self) -> bool {
                super::deep(|| true $(&& self.$field == other.$field)+)
            }
        }
    };
}

macro_rules! hashed_deep {
    ($type:ident { $($field:ident),+ }) => {
        impl Hash for $type {
            fn hash<H: Hasher>(&self, state: &mut H) {
                super::deep(|| { $(self.$field.hash(state);)+ })
            }
        }
    };
}

// A fun's free variables are a level down too.
impl Clone for InternalFun {
    fn clone(&self) -> Self {
        super::deep(|| match self {
            InternalFun::Old {
                module,
                pid,
                free_vars,
                index,
                uniq,
            } => InternalFun::Old {
                module: *module,
                pid: *pid,
                free_vars: free_vars.clone(),
                index: *index,
                uniq: *uniq,
            },
            InternalFun::New {
                module,
                arity,
                pid,
                free_vars,
                index,
                uniq,
                old_index,
                old_uniq,
            } => InternalFun::New {
                module: *module,
                arity: *arity,
                pid: *pid,
                free_vars: free_vars.clone(),
                index: *index,
                uniq: *uniq,
                old_index: *old_index,
                old_uniq: *old_uniq,
            },
        })
    }
}

impl InternalFun {
    /// Everything but the free variables, to compare and hash.
    fn identity(&self) -> (u8, Atom, u8, &Pid, i64, [u8; 16], i32, i32) {
        match self {
            InternalFun::Old {
                module,
                pid,
                index,
                uniq,
                ..
            } => (0, *module, 0, pid, i64::from(*index), [0; 16], *uniq, 0),
            InternalFun::New {
                module,
                arity,
                pid,
                index,
                uniq,
                old_index,
                old_uniq,
                ..
            } => (
                1,
                *module,
                *arity,
                pid,
                i64::from(*index),
                *uniq,
                *old_index,
                *old_uniq,
            ),
        }
    }

    fn free_vars(&self) -> &[Term] {
        match self {
            InternalFun::Old { free_vars, .. } | InternalFun::New { free_vars, .. } => free_vars,
        }
    }
}

impl PartialEq for InternalFun {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity() && super::deep(|| self.free_vars() == other.free_vars())
    }
}

impl Hash for InternalFun {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
        super::deep(|| self.free_vars().hash(state));
    }
}

walked_deep!(List { elements });
walked_deep!(ImproperList { elements, last });
walked_deep!(Tuple { elements });
walked_deep!(Map { map });
hashed_deep!(List { elements });
hashed_deep!(ImproperList { elements, last });
hashed_deep!(Tuple { elements });

impl<const N: usize> From<[(Term, Term); N]> for Map {
    fn from(entries: [(Term, Term); N]) -> Self {
        Map {
            map: HashMap::from(entries),
        }
    }
}

impl From<HashMap<Term, Term>> for Map {
    fn from(map: HashMap<Term, Term>) -> Self {
        Map { map }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Atom>(), 8);
        assert_eq!(std::mem::size_of::<Pid>(), 24);
        assert_eq!(std::mem::size_of::<Term>(), 32);
    }

    #[test]
    fn atoms_are_interned() {
        let a = Atom::from("interned_here");
        let b = Atom::from(String::from("interned_here"));
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.name(), b.name()));
        assert_ne!(a, Atom::from("interned_there"));
        assert_eq!(Atom::existing("interned_here"), Some(a));
        assert_eq!(Atom::existing("never_made_anywhere_else"), None);
        assert!(Atom::intern("over_the_limit", 0).is_none());
        assert!(Atom::intern("interned_here", 0).is_some());
    }
}

/// Conversions to and from `eetf`'s terms, for tests that check this crate's reader and
/// writer against `eetf`'s, an encoder and decoder written apart from ours.
#[cfg(test)]
pub(crate) mod eetf_compat {
    use super::*;

    pub(crate) fn to_eetf(term: &Term) -> eetf::Term {
        let atom = |a: &Atom| eetf::Atom::from(a.name());
        let pid = |p: &Pid| eetf::Pid::new(p.node.name(), p.id, p.serial, p.creation);
        let all = |ts: &[Term]| ts.iter().map(to_eetf).collect::<Vec<_>>();
        match term {
            Term::Atom(a) => atom(a).into(),
            Term::FixInteger(i) => eetf::FixInteger::from(i.value).into(),
            Term::BigInteger(b) => eetf::BigInteger {
                value: b.value.clone(),
            }
            .into(),
            Term::Float(f) => eetf::Float { value: f.value }.into(),
            Term::Pid(p) => pid(p).into(),
            Term::Port(p) => eetf::Port {
                node: atom(&p.node),
                id: p.id,
                creation: p.creation,
            }
            .into(),
            Term::Reference(r) => eetf::Reference {
                node: atom(&r.node),
                id: r.id.clone(),
                creation: r.creation,
            }
            .into(),
            Term::ExternalFun(f) => eetf::ExternalFun {
                module: atom(&f.module),
                function: atom(&f.function),
                arity: f.arity,
            }
            .into(),
            Term::InternalFun(f) => fun_to_eetf(f).into(),
            Term::Binary(b) => eetf::Binary::from(b.bytes.clone()).into(),
            Term::BitBinary(b) => eetf::BitBinary::from((b.bytes.clone(), b.tail_bits_size)).into(),
            Term::List(l) => eetf::List::from(all(&l.elements)).into(),
            Term::ImproperList(l) => {
                eetf::ImproperList::from((all(&l.elements), to_eetf(&l.last))).into()
            }
            Term::Tuple(t) => eetf::Tuple::from(all(&t.elements)).into(),
            Term::Map(m) => eetf::Map::from(
                m.map
                    .iter()
                    .map(|(k, v)| (to_eetf(k), to_eetf(v)))
                    .collect::<HashMap<_, _>>(),
            )
            .into(),
        }
    }

    pub(crate) fn from_eetf(term: eetf::Term) -> Term {
        let atom = |a: eetf::Atom| Atom::from(a.name);
        let pid = |p: eetf::Pid| Pid::new(p.node.name, p.id, p.serial, p.creation);
        let all = |ts: Vec<eetf::Term>| ts.into_iter().map(from_eetf).collect::<Vec<_>>();
        match term {
            eetf::Term::Atom(a) => atom(a).into(),
            eetf::Term::FixInteger(i) => FixInteger::from(i.value).into(),
            eetf::Term::BigInteger(b) => BigInteger { value: b.value }.into(),
            eetf::Term::Float(f) => Float { value: f.value }.into(),
            eetf::Term::Pid(p) => pid(p).into(),
            eetf::Term::Port(p) => Port {
                node: atom(p.node),
                id: p.id,
                creation: p.creation,
            }
            .into(),
            eetf::Term::Reference(r) => Reference {
                node: atom(r.node),
                id: r.id,
                creation: r.creation,
            }
            .into(),
            eetf::Term::ExternalFun(f) => ExternalFun {
                module: atom(f.module),
                function: atom(f.function),
                arity: f.arity,
            }
            .into(),
            eetf::Term::InternalFun(f) => fun_from_eetf(*f).into(),
            eetf::Term::Binary(b) => Binary::from(b.bytes).into(),
            eetf::Term::BitBinary(b) => BitBinary {
                bytes: b.bytes,
                tail_bits_size: b.tail_bits_size,
            }
            .into(),
            eetf::Term::ByteList(l) => List::from(
                l.bytes
                    .into_iter()
                    .map(|b| Term::from(FixInteger::from(b)))
                    .collect::<Vec<_>>(),
            )
            .into(),
            eetf::Term::List(l) => List::from(all(l.elements)).into(),
            eetf::Term::ImproperList(l) => {
                ImproperList::from((all(l.elements), from_eetf(*l.last))).into()
            }
            eetf::Term::Tuple(t) => Tuple::from(all(t.elements)).into(),
            eetf::Term::Map(m) => Map::from(
                m.map
                    .into_iter()
                    .map(|(k, v)| (from_eetf(k), from_eetf(v)))
                    .collect::<HashMap<_, _>>(),
            )
            .into(),
        }
    }

    // Funs apart, so that the recursive conversions keep small frames (a test decodes
    // terms nested 512 deep on a test thread's stack, in a debug build).
    #[inline(never)]
    fn fun_to_eetf(f: &InternalFun) -> eetf::InternalFun {
        let atom = |a: &Atom| eetf::Atom::from(a.name());
        let pid = |p: &Pid| eetf::Pid::new(p.node.name(), p.id, p.serial, p.creation);
        let all = |ts: &[Term]| ts.iter().map(to_eetf).collect::<Vec<_>>();
        match f {
            InternalFun::Old {
                module,
                pid: p,
                free_vars,
                index,
                uniq,
            } => eetf::InternalFun::Old {
                module: atom(module),
                pid: pid(p),
                free_vars: all(free_vars),
                index: *index,
                uniq: *uniq,
            },
            InternalFun::New {
                module,
                arity,
                pid: p,
                free_vars,
                index,
                uniq,
                old_index,
                old_uniq,
            } => eetf::InternalFun::New {
                module: atom(module),
                arity: *arity,
                pid: pid(p),
                free_vars: all(free_vars),
                index: *index,
                uniq: *uniq,
                old_index: *old_index,
                old_uniq: *old_uniq,
            },
        }
    }

    #[inline(never)]
    fn fun_from_eetf(f: eetf::InternalFun) -> InternalFun {
        let atom = |a: eetf::Atom| Atom::from(a.name);
        let pid = |p: eetf::Pid| Pid::new(p.node.name, p.id, p.serial, p.creation);
        let all = |ts: Vec<eetf::Term>| ts.into_iter().map(from_eetf).collect::<Vec<_>>();
        match f {
            eetf::InternalFun::Old {
                module,
                pid: p,
                free_vars,
                index,
                uniq,
            } => InternalFun::Old {
                module: atom(module),
                pid: pid(p),
                free_vars: all(free_vars),
                index,
                uniq,
            },
            eetf::InternalFun::New {
                module,
                arity,
                pid: p,
                free_vars,
                index,
                uniq,
                old_index,
                old_uniq,
            } => InternalFun::New {
                module: atom(module),
                arity,
                pid: pid(p),
                free_vars: all(free_vars),
                index,
                uniq,
                old_index,
                old_uniq,
            },
        }
    }

    /// `eetf`'s encoder and decoder on this crate's terms, under their `eetf` names.
    pub(crate) trait EetfCodec {
        fn encode<W: std::io::Write>(&self, w: W) -> Result<(), eetf::EncodeError>;
    }

    impl EetfCodec for Term {
        fn encode<W: std::io::Write>(&self, w: W) -> Result<(), eetf::EncodeError> {
            to_eetf(self).encode(w)
        }
    }

    impl Term {
        /// A term read by `eetf`'s decoder.
        pub(crate) fn eetf_decode<R: std::io::Read>(r: R) -> Result<Term, eetf::DecodeError> {
            eetf::Term::decode(r).map(from_eetf)
        }
    }

    /// `term` as `eetf` encodes it (with the version byte).
    pub(crate) fn eetf_bytes(term: &Term) -> Vec<u8> {
        let mut out = Vec::new();
        to_eetf(term).encode(&mut out).expect("eetf encodes it");
        out
    }
}
