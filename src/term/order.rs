//! Erlang's term order, a total order on every term (sorting with it never finds it
//! inconsistent, whatever a peer sent): number < atom < reference < fun < port < pid <
//! tuple < map < nil < list < bitstring, and within a kind as the BEAM compares. Two
//! flavours: [`order`], as `<` compares (`1 == 1.0`), and [`key_order`], the order of
//! map keys, in which every integer comes before every float (`1` and `1.0` are
//! different keys), as a BEAM lays out and prints a map.

use super::types::{BitBinary, InternalFun, Term};
use num_bigint::BigInt;
use std::cmp::Ordering;

/// Erlang's term order, as `<` and `Enum.sort/1` compare (`1` and `1.0` equal).
pub(crate) fn order(a: &Term, b: &Term) -> Ordering {
    compare(a, b, false)
}

/// The order of map keys: term order where integers come before floats (and `-0.0`
/// before `0.0`), each kind by value.
pub(crate) fn key_order(a: &Term, b: &Term) -> Ordering {
    compare(a, b, true)
}

fn rank(t: &Term) -> u8 {
    match t {
        Term::FixInteger(_) | Term::BigInteger(_) | Term::Float(_) => 0,
        Term::Atom(_) => 1,
        Term::Reference(_) => 2,
        Term::ExternalFun(_) | Term::InternalFun(_) => 3,
        Term::Port(_) => 4,
        Term::Pid(_) => 5,
        Term::Tuple(_) => 6,
        Term::Map(_) => 7,
        Term::List(l) if l.elements.is_empty() => 8,
        Term::List(_) | Term::ImproperList(_) => 9,
        Term::Binary(_) | Term::BitBinary(_) => 10,
    }
}

/// `exact`: map keys' order (integers before floats). Containers' elements are a level
/// down, on a fresh stack segment when this one runs low (`term::deep`).
fn compare(a: &Term, b: &Term, exact: bool) -> Ordering {
    let (ra, rb) = (rank(a), rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    super::deep(|| compare_ranked(a, b, exact))
}

fn compare_ranked(a: &Term, b: &Term, exact: bool) -> Ordering {
    match (a, b) {
        (Term::Atom(x), Term::Atom(y)) => x.name().cmp(y.name()),
        (Term::Tuple(x), Term::Tuple(y)) => x
            .elements
            .len()
            .cmp(&y.elements.len())
            .then_with(|| elements(&x.elements, &y.elements, exact)),
        (Term::Pid(x), Term::Pid(y)) => (x.node.name(), x.serial, x.id, x.creation).cmp(&(
            y.node.name(),
            y.serial,
            y.id,
            y.creation,
        )),
        (Term::Port(x), Term::Port(y)) => {
            (x.node.name(), x.id, x.creation).cmp(&(y.node.name(), y.id, y.creation))
        }
        (Term::Reference(x), Term::Reference(y)) => x
            .node
            .name()
            .cmp(y.node.name())
            .then_with(|| x.id.len().cmp(&y.id.len()))
            .then_with(|| x.id.iter().rev().cmp(y.id.iter().rev()))
            .then_with(|| x.creation.cmp(&y.creation)),
        (Term::Map(x), Term::Map(y)) => {
            x.map.len().cmp(&y.map.len()).then_with(|| {
                // Keys in key order, then the values in that order.
                let mut xs: Vec<_> = x.map.iter().collect();
                let mut ys: Vec<_> = y.map.iter().collect();
                xs.sort_by(|a, b| key_order(a.0, b.0));
                ys.sort_by(|a, b| key_order(a.0, b.0));
                let keys = xs.iter().zip(&ys).map(|(a, b)| key_order(a.0, b.0));
                let values = || xs.iter().zip(&ys).map(|(a, b)| compare(a.1, b.1, exact));
                keys.chain(values())
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            })
        }
        (Term::ExternalFun(x), Term::ExternalFun(y)) => (
            x.module.name(),
            x.function.name(),
            x.arity,
        )
            .cmp(&(y.module.name(), y.function.name(), y.arity)),
        (Term::InternalFun(x), Term::InternalFun(y)) => internal_funs(x, y, exact),
        // Local funs before external ones.
        (Term::InternalFun(_), Term::ExternalFun(_)) => Ordering::Less,
        (Term::ExternalFun(_), Term::InternalFun(_)) => Ordering::Greater,
        (Term::List(_) | Term::ImproperList(_), Term::List(_) | Term::ImproperList(_)) => {
            lists(Cons::of(a), Cons::of(b), exact)
        }
        (Term::Binary(_) | Term::BitBinary(_), Term::Binary(_) | Term::BitBinary(_)) => bits(a, b),
        _ => numbers(a, b, exact),
    }
}

fn elements(a: &[Term], b: &[Term], exact: bool) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| compare(x, y, exact))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

fn internal_funs(x: &InternalFun, y: &InternalFun, exact: bool) -> Ordering {
    match (x, y) {
        (
            InternalFun::New {
                module: m1,
                index: i1,
                uniq: u1,
                arity: a1,
                pid: p1,
                free_vars: v1,
                ..
            },
            InternalFun::New {
                module: m2,
                index: i2,
                uniq: u2,
                arity: a2,
                pid: p2,
                free_vars: v2,
                ..
            },
        ) => (m1.name(), i1, u1, a1)
            .cmp(&(m2.name(), i2, u2, a2))
            .then_with(|| compare(&Term::Pid(*p1), &Term::Pid(*p2), exact))
            .then_with(|| elements(v1, v2, exact)),
        (
            InternalFun::Old {
                module: m1,
                index: i1,
                uniq: u1,
                pid: p1,
                free_vars: v1,
            },
            InternalFun::Old {
                module: m2,
                index: i2,
                uniq: u2,
                pid: p2,
                free_vars: v2,
            },
        ) => (m1.name(), i1, u1)
            .cmp(&(m2.name(), i2, u2))
            .then_with(|| compare(&Term::Pid(*p1), &Term::Pid(*p2), exact))
            .then_with(|| elements(v1, v2, exact)),
        (InternalFun::Old { .. }, InternalFun::New { .. }) => Ordering::Less,
        (InternalFun::New { .. }, InternalFun::Old { .. }) => Ordering::Greater,
    }
}

/// A list seen as cons cells: its elements, then its tail (`None`: `[]`).
#[derive(Clone, Copy)]
struct Cons<'a> {
    elements: &'a [Term],
    tail: Option<&'a Term>,
}

impl<'a> Cons<'a> {
    fn of(t: &'a Term) -> Cons<'a> {
        match t {
            Term::List(l) => Cons {
                elements: &l.elements,
                tail: None,
            },
            Term::ImproperList(l) => Cons {
                elements: &l.elements,
                tail: Some(&l.last),
            },
            t => Cons {
                elements: &[],
                tail: Some(t),
            },
        }
    }

    /// With no elements left, the tail; a tail that is itself a list (as a peer may
    /// encode it) goes on as that list.
    fn settled(self) -> Cons<'a> {
        match (self.elements, self.tail) {
            ([], Some(t @ (Term::List(_) | Term::ImproperList(_)))) => Cons::of(t).settled(),
            _ => self,
        }
    }
}

/// Two lists, cell by cell: heads, then the rest; where one has no cell left, its tail
/// (`[]` or another term) is compared with what the other has left.
fn lists(a: Cons<'_>, b: Cons<'_>, exact: bool) -> Ordering {
    let (mut a, mut b) = (a.settled(), b.settled());
    loop {
        match (a.elements, b.elements) {
            ([x, xs @ ..], [y, ys @ ..]) => {
                let o = compare(x, y, exact);
                if o.is_ne() {
                    return o;
                }
                a = Cons { elements: xs, ..a }.settled();
                b = Cons { elements: ys, ..b }.settled();
            }
            // `[]` (rank 8) or a tail that is no list, against a non-empty list (rank 9).
            ([], [_, ..]) => return tail_rank(a.tail).cmp(&9),
            ([_, ..], []) => return 9.cmp(&tail_rank(b.tail)),
            ([], []) => {
                return match (a.tail, b.tail) {
                    (None, None) => Ordering::Equal,
                    (None, Some(t)) => 8.cmp(&rank(t)),
                    (Some(t), None) => rank(t).cmp(&8),
                    (Some(x), Some(y)) => compare(x, y, exact),
                }
            }
        }
    }
}

fn tail_rank(tail: Option<&Term>) -> u8 {
    tail.map_or(8, rank)
}

/// Bitstrings bit by bit, a prefix before what extends it.
fn bits(a: &Term, b: &Term) -> Ordering {
    let (xa, xb) = (aligned(a), aligned(b));
    let (bytes_a, bits_a) = (&xa.0, xa.1);
    let (bytes_b, bits_b) = (&xb.0, xb.1);
    let common = bits_a.min(bits_b);
    let full = common / 8;
    let o = bytes_a[..full].cmp(&bytes_b[..full]);
    if o.is_ne() {
        return o;
    }
    let rest = common % 8;
    if rest > 0 {
        let mask = 0xffu8 << (8 - rest);
        let o = (bytes_a[full] & mask).cmp(&(bytes_b[full] & mask));
        if o.is_ne() {
            return o;
        }
    }
    bits_a.cmp(&bits_b)
}

/// A binary or bitstring as bytes whose bits run from the high end, and its length in
/// bits (a bitstring keeps its last byte's bits at the low end).
fn aligned(t: &Term) -> (std::borrow::Cow<'_, [u8]>, usize) {
    match t {
        Term::Binary(b) => (std::borrow::Cow::Borrowed(&b.bytes[..]), b.bytes.len() * 8),
        Term::BitBinary(b) => {
            let BitBinary {
                bytes,
                tail_bits_size,
            } = &**b;
            let tail = usize::from((*tail_bits_size).clamp(1, 8));
            let mut bytes = bytes.clone();
            if let Some(last) = bytes.last_mut() {
                *last <<= 8 - tail;
            }
            let len = bytes.len().saturating_sub(1) * 8 + if bytes.is_empty() { 0 } else { tail };
            (std::borrow::Cow::Owned(bytes), len)
        }
        _ => (std::borrow::Cow::Borrowed(&[][..]), 0),
    }
}

/// Numbers: integers exactly, floats by value; an integer against a float by value
/// (equal when they are), or, for map keys, every integer first.
fn numbers(a: &Term, b: &Term, exact: bool) -> Ordering {
    match (a, b) {
        (Term::FixInteger(x), Term::FixInteger(y)) => x.value.cmp(&y.value),
        (Term::Float(x), Term::Float(y)) if exact => x.value.total_cmp(&y.value),
        (Term::Float(x), Term::Float(y)) => {
            x.value.partial_cmp(&y.value).unwrap_or(Ordering::Equal)
        }
        (Term::Float(_), _) if exact => Ordering::Greater,
        (_, Term::Float(_)) if exact => Ordering::Less,
        (Term::Float(x), y) => integer(y).map_or(Ordering::Equal, |y| float_integer(x.value, &y)),
        (x, Term::Float(y)) => {
            integer(x).map_or(Ordering::Equal, |x| float_integer(y.value, &x).reverse())
        }
        (x, y) => match (integer(x), integer(y)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        },
    }
}

fn integer(t: &Term) -> Option<BigInt> {
    match t {
        Term::FixInteger(i) => Some(BigInt::from(i.value)),
        Term::BigInteger(i) => Some(i.value.clone()),
        _ => None,
    }
}

/// A float against an integer, exactly: by the integer part of the float, then its
/// fraction.
fn float_integer(f: f64, i: &BigInt) -> Ordering {
    if !f.is_finite() {
        return if f > 0.0 {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let floor = f.floor();
    match whole(floor).cmp(i) {
        Ordering::Equal if f > floor => Ordering::Greater,
        o => o,
    }
}

/// A finite float with no fraction as the integer it is.
fn whole(f: f64) -> BigInt {
    if f.abs() < 9.0e15 {
        return BigInt::from(f as i64);
    }
    // f = mantissa * 2^exponent exactly.
    let bits = f.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
    let magnitude = if exponent >= 0 {
        BigInt::from(mantissa) << (exponent as usize)
    } else {
        BigInt::from(mantissa >> ((-exponent) as u64))
    };
    if f < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{atom, binary, int, list, map, tuple};

    fn float(value: f64) -> Term {
        Term::Float(super::super::types::Float { value })
    }

    /// Sorting mixed terms never finds the order inconsistent, and the order is the
    /// BEAM's where it matters: bitstrings among binaries, improper lists among lists.
    #[test]
    fn a_total_order() {
        let bitstring = |bytes: Vec<u8>, tail: u8| {
            Term::from(BitBinary {
                bytes,
                tail_bits_size: tail,
            })
        };
        let improper = |elements: Vec<Term>, last: Term| {
            Term::from(super::super::types::ImproperList::from((elements, last)))
        };
        let mut terms = vec![
            binary(&[2][..]),
            bitstring(vec![1], 3),
            binary(&[1][..]),
            binary(&[][..]),
            bitstring(vec![0x01, 0x01], 1),
            list(vec![int(1)]),
            improper(vec![int(1)], int(2)),
            list(vec![int(2)]),
            list(vec![]),
            int(1),
            float(1.0),
            float(0.5),
            int(1 << 53),
            float(9007199254740992.0),
            atom("a"),
            map([(int(1), int(1))]),
            map([(float(1.0), int(1))]),
            tuple(vec![]),
        ];
        for _ in 0..50 {
            terms.reverse();
            terms.sort_by(order);
            terms.rotate_left(3);
            terms.sort_by(key_order);
        }
        // <<1::3>> is the bits 001: after <<1>> (00000001) and <<>>, before <<0x40>>
        // (01000000).
        assert_eq!(
            bits(&bitstring(vec![1], 3), &binary(&[1][..])),
            Ordering::Greater
        );
        assert_eq!(
            bits(&binary(&[][..]), &bitstring(vec![1], 3)),
            Ordering::Less
        );
        assert_eq!(
            bits(&bitstring(vec![1], 3), &binary(&[0x40][..])),
            Ordering::Less
        );
        // [1 | 2] before [1] (its tail 2, a number, before []), and before [2].
        let imp = improper(vec![int(1)], int(2));
        assert_eq!(order(&imp, &list(vec![int(1)])), Ordering::Less);
        assert_eq!(order(&imp, &list(vec![int(2)])), Ordering::Less);
        assert_eq!(
            order(&list(vec![int(1)]), &list(vec![int(1), int(0)])),
            Ordering::Less
        );
        // 1 == 1.0 in term order; for map keys, integers first.
        assert_eq!(order(&int(1), &float(1.0)), Ordering::Equal);
        assert_eq!(key_order(&int(2), &float(1.0)), Ordering::Less);
        assert_eq!(order(&int(2), &float(1.5)), Ordering::Greater);
        assert_eq!(
            order(&int((1 << 53) + 1), &float(9007199254740992.0)),
            Ordering::Greater
        );
        assert_eq!(key_order(&float(-0.0), &float(0.0)), Ordering::Less);
    }
}
