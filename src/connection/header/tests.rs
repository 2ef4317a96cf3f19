//! The header both ways: what we write, our reader reads back; what a peer may not
//! send is refused with its reason.

use super::*;
use crate::connection::codec::{self, Decoded, Framing, Payload, To};
use crate::connection::terms::{TermLimits, LARGE_BINARY};
use crate::flags::{DIST_HDR_ATOM_CACHE, FRAGMENTS};
use crate::term::eetf_compat::EetfCodec;
use crate::term::{atom, binary, int, tuple, Pid, Term};

const BOTH: u64 = DIST_HDR_ATOM_CACHE | FRAGMENTS;

fn send(framing: &mut Framing, to: &str, message: &Term) -> Vec<u8> {
    let from = Pid::new("alex@localhost", 102, 0, 7);
    let name = crate::term::Atom::from(to);
    let mut out = Vec::new();
    codec::encode_send_into(
        &mut out,
        framing,
        &from,
        To::Name(&name),
        Payload::Term(message),
        0,
        u64::MAX,
    )
    .unwrap();
    out
}

/// The message of one whole frame (length included).
fn read(incoming: &mut Incoming, frame: &[u8]) -> Result<Option<Term>, String> {
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    match codec::decode(&frame[4..], incoming, &TermLimits::default()) {
        Ok(None) => Ok(None),
        Ok(Some(Decoded::Message(crate::connection::message::Message::RegSend(m)))) => {
            Ok(Some(tuple(vec![Term::Atom(m.to_name), m.message])))
        }
        Ok(Some(_)) => Err("not a REG_SEND".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Atoms go as references: new ones with their text once, then by index alone.
#[test]
fn atoms_are_cached_across_frames() {
    let mut framing = Framing::for_peer(BOTH);
    let mut incoming = Incoming::new(BOTH, usize::MAX, usize::MAX);
    let message = tuple(vec![atom("hello"), atom("world"), atom("hello"), int(1)]);
    let first = send(&mut framing, "echo", &message);
    let second = send(&mut framing, "echo", &message);
    assert!(second.len() < first.len(), "{second:?} vs {first:?}");
    // Names, node names and message atoms: none in full the second time.
    assert!(!second.windows(5).any(|w| w == b"hello"));
    assert!(!second.windows(14).any(|w| w == b"alex@localhost"));
    // A third frame with the same references reuses the second's reading.
    let third = send(&mut framing, "echo", &message);
    assert_eq!(second, third);
    let other = send(
        &mut framing,
        "other",
        &tuple(vec![atom("world"), atom("hello")]),
    );
    for frame in [first, second, third] {
        assert_eq!(frame[4..6], [131, 68]);
        let got = read(&mut incoming, &frame).unwrap().unwrap();
        assert_eq!(got, tuple(vec![atom("echo"), message.clone()]));
    }
    let got = read(&mut incoming, &other).unwrap().unwrap();
    assert_eq!(
        got,
        tuple(vec![
            atom("other"),
            tuple(vec![atom("world"), atom("hello")])
        ])
    );
}

/// More distinct atoms than a header can name (255), atoms whose entries collide, and
/// atoms longer than 255 bytes (the LongAtoms flag).
#[test]
fn many_colliding_and_long_atoms() {
    let mut framing = Framing::for_peer(BOTH);
    let mut incoming = Incoming::new(BOTH, usize::MAX, usize::MAX);
    let long = "é".repeat(200);
    let mut atoms: Vec<Term> = (0..3000).map(|i| atom(&format!("a{i}"))).collect();
    atoms.push(atom(&long));
    let message = tuple(atoms);
    for _ in 0..3 {
        let frame = send(&mut framing, "echo", &message);
        let got = read(&mut incoming, &frame).unwrap().unwrap();
        assert_eq!(got, tuple(vec![atom("echo"), message.clone()]));
    }
}

/// A peer with FRAGMENTS only: headers with no references.
#[test]
fn fragments_without_the_cache() {
    let mut framing = Framing::for_peer(FRAGMENTS);
    let mut incoming = Incoming::new(FRAGMENTS, usize::MAX, usize::MAX);
    let frame = send(&mut framing, "echo", &atom("x"));
    assert_eq!(frame[4..7], [131, 68, 0]);
    assert_eq!(
        read(&mut incoming, &frame).unwrap(),
        Some(tuple(vec![atom("echo"), atom("x")]))
    );
}

/// A large message leaves in 64 KiB fragments, with other frames between them, and
/// is whole again on the other side; atoms its header set are usable at once.
#[test]
fn large_messages_go_in_fragments_with_others_between() {
    let conn_flags = BOTH;
    let mut pending = crate::connection::tests_support::pending(conn_flags);
    let big = tuple(vec![atom("big"), binary(&vec![7u8; 300_000][..])]);
    let from = Pid::new("alex@localhost", 1, 0, 7);
    let other = Pid::new("alex@localhost", 2, 0, 7);
    crate::connection::tests_support::queue(&mut pending, &from, "echo", &big);
    crate::connection::tests_support::queue(&mut pending, &other, "echo", &atom("big"));
    crate::connection::tests_support::queue(&mut pending, &from, "echo", &atom("after"));
    let mut incoming = Incoming::new(conn_flags, 1 << 20, 1 << 20);
    let (got, batches) = write_and_read(&mut pending, &mut incoming);
    // 300 KB in 5 fragments: the first goes with the frames queued before, and one
    // more with it; then one per batch.
    assert_eq!(batches, 4);
    assert_eq!(
        got,
        vec![
            // The other process's message overtakes the large one; the sender's own
            // next message does not.
            tuple(vec![atom("echo"), atom("big")]),
            tuple(vec![atom("echo"), big]),
            tuple(vec![atom("echo"), atom("after")]),
        ]
    );
    assert_eq!(incoming.held(), 0);
}

/// A large message queued behind other frames: they go first, untouched, and the
/// large one is whole on the other side.
#[test]
fn a_large_message_behind_others_is_fragmented_after_them() {
    let conn_flags = BOTH;
    let mut pending = crate::connection::tests_support::pending(conn_flags);
    let big = tuple(vec![
        atom("big"),
        binary(&(0..300_000u32).map(|i| i as u8).collect::<Vec<_>>()[..]),
    ]);
    let from = Pid::new("alex@localhost", 1, 0, 7);
    let other = Pid::new("alex@localhost", 2, 0, 7);
    for i in 0..3 {
        let small = tuple(vec![atom("small"), int(i)]);
        crate::connection::tests_support::queue(&mut pending, &other, "echo", &small);
    }
    crate::connection::tests_support::queue(&mut pending, &from, "echo", &big);
    crate::connection::tests_support::queue(&mut pending, &other, "echo", &atom("next"));
    let mut incoming = Incoming::new(conn_flags, 1 << 20, 1 << 20);
    let (got, batches) = write_and_read(&mut pending, &mut incoming);
    assert_eq!(batches, 4);
    let small = |i: i64| tuple(vec![atom("echo"), tuple(vec![atom("small"), int(i)])]);
    assert_eq!(
        got,
        vec![
            small(0),
            small(1),
            small(2),
            tuple(vec![atom("echo"), atom("next")]),
            tuple(vec![atom("echo"), big]),
        ]
    );
    assert_eq!(incoming.held(), 0);
}

/// A message given away whose large binary ends it goes out from the binary's own
/// buffer, in the very bytes of the same message lent (whole or in fragments, alone or
/// behind its sender's large message in progress); a binary elsewhere, or smaller than
/// a fragment, is written as any term.
#[test]
fn a_large_binary_given_away_goes_out_as_the_same_binary_lent() {
    let bytes = |n: usize| (0..n).map(|i| (i * 7) as u8).collect::<Vec<u8>>();
    let ends = |n: usize| tuple(vec![atom("big"), int(1), binary(bytes(n))]);
    let shapes = [
        (ends(LARGE_BINARY), true),
        (ends(300_000), true),
        (ends(LARGE_BINARY - 1), false),
        (tuple(vec![atom("nested"), ends(200_000)]), true),
        (
            Term::from(crate::term::ImproperList::from((
                vec![int(1)],
                binary(bytes(100_000)),
            ))),
            true,
        ),
        (tuple(vec![binary(bytes(200_000)), atom("last")]), false),
        (
            crate::term::map([(atom("k"), binary(bytes(200_000)))]),
            false,
        ),
    ];
    let from = Pid::new("alex@localhost", 1, 0, 7);
    let other = Pid::new("alex@localhost", 2, 0, 7);
    for conn_flags in [BOTH, DIST_HDR_ATOM_CACHE, 0] {
        for (message, taken) in &shapes {
            let mut copy = message.clone();
            assert_eq!(
                !crate::connection::large_tail(&mut copy).is_empty(),
                *taken,
                "{message:.60}"
            );
            let written = |given: bool| {
                let mut pending = crate::connection::tests_support::pending(conn_flags);
                for to in ["first", "second"] {
                    if given {
                        let m = message.clone();
                        crate::connection::tests_support::queue_given(&mut pending, &from, to, m);
                    } else {
                        crate::connection::tests_support::queue(&mut pending, &from, to, message);
                    }
                    crate::connection::tests_support::queue(&mut pending, &other, to, &atom("x"));
                }
                let mut all = Vec::new();
                let mut batch = Vec::new();
                while crate::connection::tests_support::take(&mut pending, &mut batch) > 0 {
                    all.append(&mut batch);
                }
                assert_eq!(crate::connection::tests_support::queued(&pending), 0);
                all
            };
            let given = written(true);
            assert!(given == written(false), "{conn_flags:x} {message:.60}");
            if conn_flags != BOTH {
                continue;
            }
            let mut incoming = Incoming::new(conn_flags, 1 << 20, 1 << 20);
            let mut pending = crate::connection::tests_support::pending(conn_flags);
            for to in ["first", "second"] {
                let m = message.clone();
                crate::connection::tests_support::queue_given(&mut pending, &from, to, m);
            }
            crate::connection::tests_support::queue(&mut pending, &other, "third", &atom("x"));
            let (got, _) = write_and_read(&mut pending, &mut incoming);
            let to = |name: &str, m: &Term| tuple(vec![atom(name), m.clone()]);
            // Every shape is over a fragment: the other process's small message
            // overtakes the large ones, which keep their order.
            let expected = vec![
                to("third", &atom("x")),
                to("first", message),
                to("second", message),
            ];
            assert_eq!(got, expected, "{message:.60}");
            assert_eq!(incoming.held(), 0);
        }
    }
}

/// Takes every batch the writer would write from `pending` and reads its frames (none
/// over a fragment and its header) into messages: the messages, and the batches.
fn write_and_read(
    pending: &mut crate::connection::tests_support::Outgoing,
    incoming: &mut Incoming,
) -> (Vec<Term>, usize) {
    let mut got = Vec::new();
    let mut batches = 0;
    loop {
        let mut batch = Vec::new();
        if crate::connection::tests_support::take(pending, &mut batch) == 0 {
            return (got, batches);
        }
        batches += 1;
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            assert!(len <= FRAGMENT_SIZE + 64, "a frame of {len} bytes");
            if let Some(m) = read(incoming, &rest[..4 + len]).unwrap() {
                got.push(m);
            }
            rest = &rest[4 + len..];
        }
    }
}

/// Messages whose large binary ends them, put together from fragments: the binary
/// becomes the term's without a copy, and the message is what was sent, in a map too
/// (copied there), as an exit reason, and with malformed and unknown control messages
/// around them.
#[test]
fn reassembled_messages_keep_their_large_binaries() {
    let big = || binary(&(0..200_000u32).map(|i| i as u8).collect::<Vec<_>>()[..]);
    let mut map = std::collections::HashMap::new();
    map.insert(atom("data"), big());
    let messages = [
        tuple(vec![atom("big"), int(1), big()]),
        big(),
        Term::from(crate::term::Map::from(map)),
        tuple(vec![big(), atom("after")]),
    ];
    let from = Pid::new("alex@localhost", 1, 0, 7);
    let mut pending = crate::connection::tests_support::pending(BOTH);
    // Each from a process of its own: a process's messages behind its large one wait
    // for it whole, unfragmented.
    for (i, m) in messages.iter().enumerate() {
        let from = Pid::new("alex@localhost", 10 + i as u32, 0, 7);
        crate::connection::tests_support::queue(&mut pending, &from, "echo", m);
    }
    let mut incoming = Incoming::new(BOTH, 1 << 20, 1 << 20);
    let (got, _) = write_and_read(&mut pending, &mut incoming);
    let want: Vec<Term> = messages
        .into_iter()
        .map(|m| tuple(vec![atom("echo"), m]))
        .collect();
    assert_eq!(got, want);
    assert_eq!(incoming.held(), 0);

    // A control message that carries the binary itself (an exit reason), and one of
    // an unknown operation, reported with the binary left out.
    let exit = |op: i64| {
        let control = tuple(vec![
            int(op),
            Term::from(from),
            Term::from(Pid::new("moebi@localhost", 2, 0, 7)),
            big(),
        ]);
        let mut terms = Vec::new();
        control.encode(&mut terms).unwrap();
        // Version byte off: a headed frame's terms have none.
        let terms = &terms[1..];
        let (head, tail) = terms.split_at(terms.len() / 2);
        [frag_header(9, 2, head), frag_cont(9, 1, tail)]
    };
    let [first, last] = exit(3);
    let mut incoming = Incoming::new(BOTH, 1 << 20, 1 << 20);
    let limits = TermLimits::default();
    assert!(codec::decode(&first, &mut incoming, &limits)
        .unwrap()
        .is_none());
    match codec::decode(&last, &mut incoming, &limits).unwrap() {
        Some(Decoded::Message(crate::connection::message::Message::Exit(e))) => {
            assert_eq!(e.reason, big())
        }
        _ => panic!("not an EXIT"),
    }
    let [first, last] = exit(99);
    assert!(codec::decode(&first, &mut incoming, &limits)
        .unwrap()
        .is_none());
    match codec::decode(&last, &mut incoming, &limits) {
        Err(codec::DecodeError::Invalid(control)) => assert!(
            control.starts_with("{99, #PID<"),
            "the control message reassembled: {control}"
        ),
        _ => panic!("not an invalid message"),
    }
}

fn headed(refs: &[u8], terms: &[u8]) -> Vec<u8> {
    [&[131, 68][..], refs, terms].concat()
}

/// The control tuple `{6, Pid, '', ATOM_CACHE_REF 0}` and the message `ATOM_CACHE_REF 0`.
fn reg_send_terms() -> Vec<u8> {
    let mut t = vec![104, 4, 97, 6, 88, 119, 3];
    t.extend_from_slice(b"a@h");
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    t.extend_from_slice(&[119, 0, 82, 0, 82, 0]);
    t
}

#[test]
fn bad_headers_close_with_their_reason() {
    let limits = TermLimits::default();
    let decode = |incoming: &mut Incoming, frame: &[u8]| {
        codec::decode(frame, incoming, &limits)
            .map(|d| d.is_some())
            .map_err(|e| e.to_string())
    };
    let fresh = || Incoming::new(BOTH, 1 << 20, 1 << 20);
    // One new entry (segment 0, index 5, "echo"), then a frame using it, old-style.
    let new_entry = [1, 0x08, 5, 4, b'e', b'c', b'h', b'o'];
    let mut incoming = fresh();
    assert_eq!(
        decode(&mut incoming, &headed(&new_entry, &reg_send_terms())),
        Ok(true)
    );
    assert_eq!(
        decode(&mut incoming, &headed(&[1, 0x00, 5], &reg_send_terms())),
        Ok(true)
    );
    // A reference to an entry never set.
    let e = decode(&mut fresh(), &headed(&[1, 0x00, 6], &reg_send_terms())).unwrap_err();
    assert!(e.contains("entry 6, which was never set"), "{e}");
    // A reference past the header's list.
    let mut t = reg_send_terms();
    *t.last_mut().unwrap() = 3;
    let e = decode(&mut fresh(), &headed(&new_entry, &t)).unwrap_err();
    assert!(e.contains("atom cache reference 3"), "{e}");
    // A header whose count promises more references than it holds.
    let e = decode(&mut fresh(), &headed(&[200, 0x88, 5], &[])).unwrap_err();
    assert!(e.contains("truncated"), "{e}");
    // Segment 7 is the last: index 7 * 256 + 255 is in the cache; no segment 8 exists
    // (the flag has 3 bits), so nothing beyond 2047 can be named.
    let last = [1, 0x0f, 255, 1, b'z'];
    assert!(decode(&mut fresh(), &headed(&last, &reg_send_terms())).is_ok());
    // Not UTF-8.
    let e = decode(
        &mut fresh(),
        &headed(&[1, 0x08, 5, 1, 0xff], &reg_send_terms()),
    )
    .unwrap_err();
    assert!(e.contains("not UTF-8"), "{e}");
    // A pass-through frame once the header is negotiated, and the reverse.
    let e = decode(&mut fresh(), &[112, 131, 106]).unwrap_err();
    assert!(e.contains("without a distribution header"), "{e}");
    let e = decode(&mut Incoming::new(0, 1 << 20, 1 << 20), &headed(&[0], &[])).unwrap_err();
    assert!(e.contains("frame tag 131"), "{e}");
    // Fragments from a peer that did not negotiate them.
    let frag = [&[131, 69][..], &[0; 7], &[1], &[0; 7], &[2], &[0]].concat();
    let e = decode(
        &mut Incoming::new(DIST_HDR_ATOM_CACHE, 1 << 20, 1 << 20),
        &frag,
    )
    .unwrap_err();
    assert!(e.contains("FRAGMENTS was not negotiated"), "{e}");
}

/// A message whose first fragment ends inside a large binary that ends the message is
/// kept in two parts, the binary's bytes apart from the first, and decoded into the
/// same term as one buffer would be; wherever the first fragment ends (at the binary's
/// first byte, inside its header, before it), and when the binary is not last after
/// all, or the fragments carry fewer bytes than it announced.
#[test]
fn a_large_binary_split_from_its_first_fragment_is_kept_apart() {
    let limits = TermLimits::default();
    let big = binary(
        (0..200_000u32)
            .map(|i| (i % 253) as u8)
            .collect::<Vec<u8>>(),
    );
    let control = tuple(vec![
        int(6),
        Term::from(Pid::new("alex@localhost", 1, 0, 7)),
        atom("x"),
        atom("echo"),
    ]);
    let encoded = |t: &Term| {
        let mut bytes = Vec::new();
        t.encode(&mut bytes).unwrap();
        bytes[1..].to_vec()
    };
    // REG_SEND's control, then the payload, without version bytes.
    let frame = |payload: &Term| [encoded(&control), encoded(payload)].concat();
    let ends = tuple(vec![atom("big"), int(1), big.clone()]);
    let not_last = tuple(vec![big.clone(), atom("after")]);
    // Where the binary's bytes begin: after the control, the tuple's first two
    // elements (a tuple's header is as long for 2 elements as for 3) and `109, Len`.
    let bin_at = encoded(&control).len() + encoded(&tuple(vec![atom("big"), int(1)])).len() + 5;
    // (payload, where the first fragment ends, split?)
    let cases = [
        (&ends, 100, true),
        (&ends, bin_at, true),
        (&ends, bin_at - 2, false),
        (&ends, 20, false),
        (&not_last, 100, false),
    ];
    for (payload, cut, split) in cases {
        let bytes = frame(payload);
        let mut incoming = Incoming::new(BOTH, 1 << 20, 1 << 20);
        let (first, rest) = bytes.split_at(cut);
        let (second, third) = rest.split_at(rest.len() / 2);
        assert!(matches!(
            incoming.read(&frag_header(3, 3, first)).unwrap(),
            Body::Partial
        ));
        assert!(matches!(
            incoming.read(&frag_cont(3, 2, second)).unwrap(),
            Body::Partial
        ));
        let last = frag_cont(3, 1, third);
        match incoming.read(&last).unwrap() {
            Body::Split(head, tail, _) => {
                assert!(split, "{cut}: split");
                assert_eq!(head.len(), bin_at);
                assert_eq!(tail.len(), 200_000);
            }
            Body::Reassembled(all, _) => assert!(!split && all == bytes, "{cut}: whole"),
            _ => panic!("{cut}: neither"),
        }
        let mut incoming = Incoming::new(BOTH, 1 << 20, 1 << 20);
        for f in [frag_header(3, 3, first), frag_cont(3, 2, second)] {
            assert!(codec::decode(&f, &mut incoming, &limits).unwrap().is_none());
        }
        match codec::decode(&last, &mut incoming, &limits).unwrap() {
            Some(Decoded::Message(crate::connection::message::Message::RegSend(m))) => {
                assert_eq!(&m.message, payload, "{cut}")
            }
            _ => panic!("{cut}: not the REG_SEND"),
        }
        assert_eq!(incoming.held(), 0);
    }
    // Fewer bytes than the binary announced: the reassembled message is refused as
    // truncated, as it would be in one buffer.
    let bytes = frame(&ends);
    let mut incoming = Incoming::new(BOTH, 1 << 20, 1 << 20);
    let first = frag_header(4, 2, &bytes[..100]);
    assert!(codec::decode(&first, &mut incoming, &limits)
        .unwrap()
        .is_none());
    let short = frag_cont(4, 1, &bytes[100..bytes.len() - 1]);
    assert!(codec::decode(&short, &mut incoming, &limits).is_err());
}

fn frag_header(seq: u64, frag: u64, data: &[u8]) -> Vec<u8> {
    [
        &[131, 69][..],
        &seq.to_be_bytes(),
        &frag.to_be_bytes(),
        &[0],
        data,
    ]
    .concat()
}

fn frag_cont(seq: u64, frag: u64, data: &[u8]) -> Vec<u8> {
    [
        &[131, 70][..],
        &seq.to_be_bytes(),
        &frag.to_be_bytes(),
        data,
    ]
    .concat()
}

#[test]
fn hostile_fragments_close_with_their_reason() {
    let limits = TermLimits::default();
    let decode = |incoming: &mut Incoming, frame: &[u8]| {
        codec::decode(frame, incoming, &limits)
            .map(|d| d.is_some())
            .map_err(|e| e.to_string())
    };
    let fresh = || Incoming::new(BOTH, 1 << 20, 1 << 20);
    // In order: whole once the last arrives.
    let mut terms = vec![104, 4, 97, 6, 88, 119, 3];
    terms.extend_from_slice(b"a@h");
    terms.extend_from_slice(&[
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 119, 0, 119, 1, b'e', 106,
    ]);
    let (a, b) = terms.split_at(10);
    let mut incoming = fresh();
    assert_eq!(decode(&mut incoming, &frag_header(9, 2, a)), Ok(false));
    assert_eq!(incoming.held(), a.len());
    assert_eq!(decode(&mut incoming, &frag_cont(9, 1, b)), Ok(true));
    assert_eq!(incoming.held(), 0);
    // Out of order, of an unknown sequence, a sequence started twice, fragment 0.
    let mut incoming = fresh();
    decode(&mut incoming, &frag_header(1, 3, a)).unwrap();
    let e = decode(&mut incoming, &frag_cont(1, 1, b)).unwrap_err();
    assert!(
        e.contains("fragment 1 of sequence 1 where fragment 2 was due"),
        "{e}"
    );
    let e = decode(&mut fresh(), &frag_cont(4, 1, b)).unwrap_err();
    assert!(e.contains("sequence 4, which was never started"), "{e}");
    let mut incoming = fresh();
    decode(&mut incoming, &frag_header(1, 3, a)).unwrap();
    let e = decode(&mut incoming, &frag_header(1, 3, a)).unwrap_err();
    assert!(e.contains("started twice"), "{e}");
    let e = decode(&mut fresh(), &frag_header(1, 0, a)).unwrap_err();
    assert!(e.contains("fragment id 0"), "{e}");
    // Thousands of sequences, none finished: refused past the limit, memory bounded.
    let mut incoming = fresh();
    let mut refused = None;
    for seq in 0..5000 {
        if let Err(e) = decode(&mut incoming, &frag_header(seq, u64::MAX, a)) {
            refused = Some((seq, e));
            break;
        }
    }
    let (seq, e) = refused.expect("refused at some point");
    assert_eq!(seq as usize, MAX_SEQUENCES);
    assert!(e.contains("fragmented messages in progress at once"), "{e}");
    // A sequence that never ends grows to the maximum message size, no further.
    let mut incoming = Incoming::new(BOTH, 100_000, usize::MAX);
    decode(&mut incoming, &frag_header(1, u64::MAX, &[0; 1000])).unwrap();
    let mut frag = u64::MAX - 1;
    let e = loop {
        match decode(&mut incoming, &frag_cont(1, frag, &[0; 1000])) {
            Ok(_) => frag -= 1,
            Err(e) => break e,
        }
    };
    assert!(
        e.contains("a fragmented message exceeds the maximum message size of 100000"),
        "{e}"
    );
    assert!(incoming.held() <= 101_000);
    // Sequences in progress together: each within the maximum message size, all of
    // them within the reassembly budget, no further.
    let mut incoming = Incoming::new(BOTH, 100_000, 250_000);
    for seq in 1..=2 {
        decode(&mut incoming, &frag_header(seq, 100, &[0; 1000])).unwrap();
        for frag in (1..100).rev().take(90) {
            decode(&mut incoming, &frag_cont(seq, frag, &[0; 1000])).unwrap();
        }
    }
    assert!(
        incoming.held() > 100_000,
        "two messages in progress, beyond one's size"
    );
    decode(&mut incoming, &frag_header(3, 100, &[0; 1000])).unwrap();
    let e = (1..100)
        .rev()
        .find_map(|frag| decode(&mut incoming, &frag_cont(3, frag, &[0; 1000])).err())
        .expect("refused past the budget");
    assert!(
        e.contains("in progress exceed 250000 bytes together"),
        "{e}"
    );
    assert!(incoming.held() <= 251_000);
}
