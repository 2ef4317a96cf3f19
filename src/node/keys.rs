//! Keys of the tables a node looks up for every message: its processes (by pid), the
//! monitors and aliases of its processes (by reference), and its registered names (by
//! atom). The first two are numbers this node hands out itself, the names atoms its own
//! code registers (an interned atom is hashed by its address), so they are hashed with
//! one multiplication, where SipHash over a `Pid`'s or a `Reference`'s node name (and a
//! copy of that name per entry) would only cost time: no peer can choose what goes into
//! these tables.

use crate::term::{Atom, Pid, Reference};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

/// A map keyed by [`pid_key`]s or [`RefKey`]s.
pub(crate) type OwnMap<K, V> = HashMap<K, V, BuildHasherDefault<OwnKeyHasher>>;
/// A map keyed by atoms (the registered names).
pub(crate) type AtomMap<V> = HashMap<Atom, V, BuildHasherDefault<AtomKeyHasher>>;
/// A set of [`RefKey`]s.
pub(crate) type OwnSet<K> = HashSet<K, BuildHasherDefault<OwnKeyHasher>>;

/// The key of a local pid in the process table.
pub(crate) fn pid_key(pid: &Pid) -> u64 {
    u64::from(pid.id) | (u64::from(pid.serial) << 32)
}

/// A reference this node made (`make_ref`), by its three id words: the node name and
/// creation are the node's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RefKey(u128);

impl RefKey {
    /// Three id words, as `make_ref` lays them out.
    pub(crate) fn new(words: [u32; 3]) -> Self {
        let [a, b, c] = words.map(u128::from);
        RefKey(a | (b << 32) | (c << 64))
    }

    /// The key of `r` if node `name` (incarnation `creation`) made it, `None` for any
    /// other reference, which no table of ours holds.
    pub(crate) fn of(r: &Reference, name: &Atom, creation: u32) -> Option<Self> {
        match *r.id.as_slice() {
            [a, b, c] if r.creation == creation && &r.node == name => Some(Self::new([a, b, c])),
            _ => None,
        }
    }

    /// Orders the keys one node made by when it made them (`make_ref` counts up from
    /// the first word into the next ones).
    pub(crate) fn made_order(self) -> (u32, u32, u32) {
        let word = |i: u32| (self.0 >> (32 * i)) as u32;
        (word(2), word(1), word(0))
    }

    /// The reference itself again, as node `name` (incarnation `creation`) made it.
    pub(crate) fn reference(self, name: &Atom, creation: u32) -> Reference {
        let word = |i: u32| (self.0 >> (32 * i)) as u32;
        Reference {
            node: *name,
            id: vec![word(0), word(1), word(2)],
            creation,
        }
    }
}

/// Fibonacci hashing of the keys above.
#[derive(Default)]
pub(crate) struct OwnKeyHasher(u64);

impl std::hash::Hasher for OwnKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, key: u64) {
        // The high bits, which hashbrown uses for its tags, depend on every bit of the
        // key.
        self.0 = (self.0 ^ key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u128(&mut self, key: u128) {
        self.write_u64(key as u64);
        self.write_u64((key >> 64) as u64);
    }
}

/// Fibonacci hashing of an atom's address, its product's high bits first: an address
/// has its low bits zero (so would the product's), and the low bits pick the bucket.
#[derive(Default)]
pub(crate) struct AtomKeyHasher(u64);

impl std::hash::Hasher for AtomKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    /// Only an atom's address is hashed (`write_usize`); bytes as a word each.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_usize(usize::from(b));
        }
    }
    fn write_usize(&mut self, address: usize) {
        self.0 = (self.0 ^ address as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(26);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoms_spread_over_the_buckets() {
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<AtomKeyHasher>::default();
        let buckets: HashSet<u64> = (0..64)
            .map(|i| hasher.hash_one(Atom::from(format!("spread_{i}").as_str())) & 63)
            .collect();
        // 64 atoms into 64 buckets fill about 40 at random; their addresses' zero low
        // bits, hashed as pids are, would leave them in one or two.
        assert!(buckets.len() > 30, "{} buckets", buckets.len());
    }

    #[test]
    fn a_reference_key_is_only_ours() {
        let name = Atom::from("a@h");
        let ours = RefKey::new([1, 2, 3]).reference(&name, 7);
        assert_eq!(ours.id, [1, 2, 3]);
        assert_eq!(RefKey::of(&ours, &name, 7), Some(RefKey::new([1, 2, 3])));
        let other_node = Reference {
            node: Atom::from("b@h"),
            ..ours.clone()
        };
        let other_creation = Reference {
            creation: 8,
            ..ours.clone()
        };
        let other_shape = Reference {
            id: vec![1, 2, 3, 4],
            ..ours.clone()
        };
        for r in [other_node, other_creation, other_shape] {
            assert_eq!(RefKey::of(&r, &name, 7), None);
        }
    }
}
