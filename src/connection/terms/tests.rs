//! The term reader against eetf's encodings, OTP's own bytes, every truncation, and
//! the limits at their edges.

use super::*;
use crate::term::eetf_compat::EetfCodec;
use crate::term::{atom, binary, int, list, tuple};
use crate::term::{BigInteger, BitBinary, ExternalFun, Port};
use std::collections::HashMap;

/// How many terms `bytes` holds (each with its version byte), at most `max_terms`,
/// as the reader takes them.
fn check_terms(bytes: &[u8], max_terms: usize, limits: &TermLimits) -> Result<usize, TermError> {
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
        atom(&"é".repeat(200)),
        list(vec![]),
        list(vec![int(1), int(2), int(255)]),
        list((0..70_000).map(|i| int(i % 256)).collect()),
        list(vec![int(1), atom("a"), list(vec![int(2)])]),
        list((1001..1200).map(int).collect()),
        Term::from(ImproperList::from((vec![int(1)], atom("tail")))),
        tuple(vec![]),
        tuple((0..300).map(int).collect()),
        binary(b""),
        binary(b"bytes"),
        pid,
        reference,
        Term::from(Map::from(map)),
        Term::from(BigInteger::from(i64::MAX)),
        Term::from(ExternalFun::from(("erlang", "node", 0))),
        Term::from(BitBinary::from((vec![1, 2], 3))),
        Term::Port(Port {
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
    // eetf writes charlists as `STRING_EXT` when told they are one (`ByteList`).
    let charlist = || eetf::Term::ByteList(eetf::ByteList::from(vec![1, 2, 3]));
    let read = |t: eetf::Term| {
        let mut bytes = Vec::new();
        t.encode(&mut bytes).unwrap();
        assert_eq!(bytes[1], STRING_EXT, "{t}");
        let limits = TermLimits::default();
        TermReader::new(&bytes, &limits).next_term().unwrap()
    };
    let three = list(vec![int(1), int(2), int(3)]);
    assert_eq!(read(charlist()), three);
    let nested = eetf::Term::from(eetf::Tuple::from(vec![
        charlist(),
        eetf::Term::from(eetf::List::from(vec![charlist()])),
    ]));
    let limits = TermLimits::default();
    let mut bytes = Vec::new();
    nested.encode(&mut bytes).unwrap();
    assert_eq!(
        TermReader::new(&bytes, &limits).next_term().unwrap(),
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
    Term::eetf_decode(bytes).expect("decode")
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
        Err(TermError::AtomCacheRef {
            index: 0,
            refs: 0,
            pos: 1
        })
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
        Err(TermError::TooDeep(4096))
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn nesting_up_to_the_limit_passes_and_decodes() {
    let ok = nested_lists(4096);
    assert_eq!(check_terms(&ok, 2, &limits()), Ok(1));
    let deep = Term::from_binary(&ok).expect("4,096 levels");
    assert!(deep.to_string().starts_with("[[[[") && deep.to_string().ends_with("]]]]"));
    assert_eq!(
        check_terms(&nested_lists(4097), 2, &limits()),
        Err(TermError::TooDeep(4096))
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

/// Each container kind costs one level; at the limit the term is encoded, decoded,
/// compared, cloned, hashed and printed on a test thread's stack (the size of a tokio
/// worker's), each walk moving onto stack segments of its own as it goes deeper.
#[test]
fn mixed_nesting_at_the_limit_decodes() {
    let mut term = Term::from(Atom::from("core"));
    for level in 0..4096 {
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
    let bytes = term.to_binary().unwrap();
    assert_eq!(check_terms(&bytes, 1, &limits()), Ok(1));
    let decoded = Term::from_binary(&bytes).expect("at the limit");
    assert_eq!(decoded, term.clone());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&decoded, &mut h);
    assert!(decoded.to_string().starts_with("#Function<"));
    assert_eq!(
        crate::term::compare(&decoded, &term),
        std::cmp::Ordering::Equal
    );
    let deeper = Term::from(Tuple::from(vec![term])).to_binary().unwrap();
    assert_eq!(
        check_terms(&deeper, 1, &limits()),
        Err(TermError::TooDeep(4096))
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
        70, 77, 88, 89, 90, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
        112, 113, 114, 115, 116, 117, 118, 119, 120,
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
    assert!(Term::eetf_decode(&bytes[..]).is_err());
}

/// A large binary that ends the bytes is lent, wherever `fill_tail` can find it again
/// (the last element of a tuple, the tail of an improper list, the term itself), and
/// copied elsewhere: inside a map or a fun, before other terms, or when small.
#[test]
fn a_large_binary_at_the_end_is_lent_where_it_can_be_put_back() {
    let big = binary(&vec![7u8; LARGE_BINARY][..]);
    let small = binary(&vec![7u8; LARGE_BINARY - 1][..]);
    let improper = Term::from(ImproperList::from((vec![int(1)], big.clone())));
    let mut in_map = HashMap::new();
    in_map.insert(atom("data"), big.clone());
    let cases = [
        (tuple(vec![atom("big"), int(1), big.clone()]), true),
        (
            tuple(vec![atom("outer"), tuple(vec![int(2), big.clone()])]),
            true,
        ),
        (improper, true),
        (big.clone(), true),
        (tuple(vec![atom("big"), small]), false),
        (tuple(vec![big.clone(), atom("after")]), false),
        (list(vec![big.clone()]), false),
        (Term::from(crate::term::Map::from(in_map)), false),
    ];
    let limits = TermLimits::default();
    for (term, lent) in cases {
        let bytes = encoded(&term);
        let mut reader = TermReader::new(&bytes, &limits).lend_tail();
        let mut got = reader.next_term().unwrap();
        assert!(reader.at_end());
        match reader.lent_tail() {
            Some(start) => {
                assert!(lent, "lent from {}", crate::term::truncated(&term, 60));
                assert_ne!(got, term);
                assert!(fill_tail(&mut got, bytes[start..].to_vec()));
            }
            None => assert!(!lent, "copied {}", crate::term::truncated(&term, 60)),
        }
        assert_eq!(got, term);
    }
    // Without lend_tail, nothing is lent.
    let bytes = encoded(&big);
    let mut reader = TermReader::new(&bytes, &limits);
    assert_eq!(reader.next_term().unwrap(), big);
    assert_eq!(reader.lent_tail(), None);
}
