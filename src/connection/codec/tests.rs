//! Control messages against erl_dist's encodings and real OTP frames.

use super::*;
use crate::term::eetf_compat::{eetf_bytes, EetfCodec};
use crate::term::{atom, binary, int, list, tuple, Pid, Reference};

/// Encoded for a peer of OTP 25 to 27 (every flag but ALTACT_SIG), then decoded.
fn round_trip(message: Message) -> Message {
    let frame = encode(message, !flags::ALTACT_SIG).unwrap();
    match decode_pt(&frame[4..], &TermLimits::default()).unwrap() {
        Decoded::Message(m) => m,
        Decoded::AltAct(a) => panic!("ALTACT_SIG_SEND {a:?}"),
    }
}

/// A pass-through frame body decoded, as from a peer without the header flags.
fn decode_pt(frame: &[u8], limits: &TermLimits) -> Result<Decoded, DecodeError> {
    decode(frame, &mut Incoming::new(0, usize::MAX, usize::MAX), limits)
        .map(|d| d.expect("a whole message"))
}

/// A frame body of `control` and `data`.
fn body(control: Vec<Term>, data: Term) -> Vec<u8> {
    let mut body = vec![PASS_THROUGH];
    tuple(control).encode(&mut body).unwrap();
    data.encode(&mut body).unwrap();
    body
}

fn alt_act(body: &[u8]) -> Result<AltAct, String> {
    match decode_pt(body, &TermLimits::default()) {
        Ok(Decoded::AltAct(a)) => Ok(a),
        Ok(_) => Err("not an ALTACT_SIG_SEND".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Every form of `ALTACT_SIG_SEND` an OTP 28+ node sends (`dist.c`): to a pid, a
/// name or an alias, message or exit, with or without priority and token; flags
/// as a bignum, and a tuple longer than today's (a later release may extend it).
#[test]
fn altact_sig_send_in_every_form() {
    let from = Pid::new("a@h", 1, 0, 5);
    let to = Pid::new("b@h", 2, 0, 6);
    let alias = Reference::from(("b@h", vec![1, 2, 3]));
    let f = |bits: u8| int(i64::from(bits));
    let cases: Vec<(Vec<Term>, &str)> = vec![
        (vec![int(37), f(0), Term::Pid(from), Term::Pid(to)], "pid"),
        (vec![int(37), f(1), Term::Pid(from), Term::Pid(to)], "pid"),
        (
            vec![int(37), f(4), Term::Pid(from), Term::from(alias.clone())],
            "alias",
        ),
        (
            vec![int(37), f(5), Term::Pid(from), Term::from(alias.clone())],
            "alias",
        ),
        (vec![int(37), f(8), Term::Pid(from), atom("rex")], "name"),
        (vec![int(37), f(9), Term::Pid(from), atom("rex")], "name"),
        (vec![int(37), f(16), Term::Pid(from), Term::Pid(to)], "pid"),
        (
            vec![int(37), f(21), Term::Pid(from), Term::from(alias.clone())],
            "alias",
        ),
        (
            vec![
                int(37),
                f(6),
                Term::Pid(from),
                Term::from(alias.clone()),
                atom("token"),
            ],
            "alias",
        ),
        (
            vec![
                int(37),
                f(4),
                Term::Pid(from),
                Term::from(alias.clone()),
                atom("later"),
            ],
            "alias",
        ),
        (
            vec![
                int(37),
                Term::from(crate::term::BigInteger::from(1u64 << 40 | 8)),
                Term::Pid(from),
                atom("rex"),
            ],
            "name",
        ),
    ];
    for (control, kind) in cases {
        let flags = match &control[1] {
            Term::FixInteger(i) => i.value as u8,
            _ => 8,
        };
        let a = alt_act(&body(control.clone(), atom("data")))
            .unwrap_or_else(|e| panic!("{e}: {}", tuple(control.clone())));
        assert_eq!(a.flags, flags);
        assert_eq!(a.from, from);
        assert_eq!(a.data, atom("data"));
        let got = match a.to {
            AltActTo::Pid(p) => (p == to).then_some("pid"),
            AltActTo::Alias(r) => (r == alias).then_some("alias"),
            AltActTo::Name(n) => (n.name() == "rex").then_some("name"),
        };
        assert_eq!(got, Some(kind), "{}", tuple(control));
    }
}

/// What `dist.c` calls an invalid message closes the connection here too.
#[test]
fn malformed_altact_sig_send_is_refused() {
    let from = || Term::Pid(Pid::new("a@h", 1, 0, 5));
    let to = || Term::Pid(Pid::new("b@h", 2, 0, 6));
    let alias = || Term::from(Reference::from(("b@h", vec![1, 2, 3])));
    for control in [
        vec![int(37), int(0), from()],            // too short
        vec![int(37), int(-1), from(), to()],     // negative flags
        vec![int(37), atom("x"), from(), to()],   // flags not an integer
        vec![int(37), int(0), atom("x"), to()],   // sender not a pid
        vec![int(37), int(4), from(), to()],      // ALIAS but a pid
        vec![int(37), int(8), from(), alias()],   // NAME but a reference
        vec![int(37), int(12), from(), alias()],  // ALIAS and NAME
        vec![int(37), int(0), from(), atom("x")], // neither, but an atom
        vec![int(37), int(2), from(), to()],      // TOKEN but no token
    ] {
        let refused = alt_act(&body(control.clone(), atom("data")));
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("malformed")),
            "{} gave {refused:?}",
            tuple(control)
        );
    }
}

/// To a peer with ALTACT_SIG an alias send is `{37, ALIAS, From, Alias}`; to an
/// older peer it stays `ALIAS_SEND`.
#[test]
fn alias_sends_use_altact_sig_where_the_peer_has_it() {
    let from = Pid::new("a@h", 1, 0, 5);
    let alias = Reference::from(("b@h", vec![1, 2, 3]));
    let message = Message::alias_send(from, alias.clone(), atom("reply"));
    let frame = encode(message.clone(), flags::advertised(true)).unwrap();
    let a = alt_act(&frame[4..]).unwrap();
    assert_eq!(a.flags, altact::ALIAS);
    assert!(matches!(a.to, AltActTo::Alias(r) if r == alias));
    assert_eq!(a.data, atom("reply"));
    let frame = encode(
        message.clone(),
        flags::advertised(true) & !flags::ALTACT_SIG,
    )
    .unwrap();
    assert!(matches!(
        decode_pt(&frame[4..], &TermLimits::default()).unwrap(),
        Decoded::Message(Message::AliasSend(_))
    ));

    // With the `priority` option: PRIO as well, or a plain ALIAS_SEND to an older peer.
    let prio = |peer_flags: u64| {
        let mut out = Vec::new();
        let to = To::PriorityAlias(&alias);
        encode_send_into(
            &mut out,
            &mut Framing::default(),
            &from,
            to,
            Payload::Term(&atom("urgent")),
            0,
            peer_flags,
        )
        .unwrap();
        decode_pt(&out[4..], &TermLimits::default()).unwrap()
    };
    match prio(flags::advertised(true)) {
        Decoded::AltAct(a) => assert_eq!(a.flags, altact::ALIAS | altact::PRIO),
        _ => panic!("not an ALTACT_SIG_SEND"),
    }
    assert!(matches!(
        prio(flags::advertised(true) & !flags::ALTACT_SIG),
        Decoded::Message(Message::AliasSend(_))
    ));
}

#[test]
fn messages_round_trip() {
    let a = Pid::new("a@h", 1, 0, 5);
    let b = Pid::new("b@h", 2, 0, 6);
    let r = Reference::from(("a@h", vec![1, 2, 3]));
    for msg in [
        Message::send_sender(a, b, binary("hi")),
        Message::reg_send(a, Atom::from("rex"), atom("x")),
        Message::link(a, b),
        Message::exit(a, b, atom("normal")),
        Message::alias_send(a, r.clone(), tuple(vec![atom("ok")])),
        Message::monitor_p(a, PidOrAtom::Atom(Atom::from("n")), r.clone()),
    ] {
        assert_eq!(round_trip(msg.clone()), msg);
    }
}

#[test]
fn spawn_args_as_charlist_are_accepted() {
    // A BEAM sends [1,2,3] as STRING_EXT; erl_dist's decoder refuses it.
    let ctl = tuple(vec![
        Term::from(FixInteger::from(29)),
        Term::from(Reference::from(("a@h", vec![1, 2, 3]))),
        Term::from(Pid::new("a@h", 1, 0, 5)),
        Term::from(Pid::new("a@h", 2, 0, 5)),
        tuple(vec![atom("m"), atom("f"), Term::from(FixInteger::from(1))]),
        list(vec![atom("monitor")]),
    ]);
    let mut body = vec![PASS_THROUGH];
    ctl.encode(&mut body).unwrap();
    // The argument list itself as a charlist (`STRING_EXT`):
    body.extend_from_slice(&[131, 107, 0, 3, 1, 2, 3]);
    match decode_pt(&body, &TermLimits::default()).unwrap() {
        Decoded::Message(Message::SpawnRequest(s)) => assert_eq!(s.arg_list.elements.len(), 3),
        _ => panic!("not a spawn request"),
    }
}

#[test]
fn charlists_decode_as_the_lists_they_are() {
    // Written by this crate's writer, which writes `[1, 2]` as a BEAM does (`STRING_EXT`).
    let charlist = || list(vec![int(1), int(2)]);
    let ints = || {
        list(vec![
            Term::from(FixInteger::from(1)),
            Term::from(FixInteger::from(2)),
        ])
    };
    let map = |v: Term| Term::from(crate::term::Map::from([(charlist(), v)]));
    let term = tuple(vec![charlist(), list(vec![charlist()]), map(charlist())]);
    let to = Pid::new("a@h", 1, 0, 5);
    let mut body = vec![PASS_THROUGH];
    tuple(vec![int(2), atom(""), Term::Pid(to)])
        .encode(&mut body)
        .unwrap();
    let bytes = term.to_binary().unwrap();
    assert_eq!(bytes[3], crate::connection::ext::STRING_EXT);
    body.extend_from_slice(&bytes);
    let Decoded::Message(Message::Send(send)) = decode_pt(&body, &TermLimits::default()).unwrap()
    else {
        panic!("not a send")
    };
    let inner = Term::from(crate::term::Map::from([(ints(), ints())]));
    assert_eq!(send.message, tuple(vec![ints(), list(vec![ints()]), inner]));
}

/// The control tuple and payload of `message`, as the protocol documentation lists
/// them (`Unused` as the empty tuple, which is what a BEAM writes there), for a peer
/// with or without `EXIT_PAYLOAD`.
fn as_terms(message: &Message, exit_payload: bool) -> (Term, Option<Term>) {
    let p = |p: &Pid| Term::Pid(*p);
    let r = |r: &Reference| Term::from(r.clone());
    let proc = |x: &PidOrAtom| Term::from(x.clone());
    let t = |op: i64, rest: Vec<Term>| {
        let mut elements = vec![int(op)];
        elements.extend(rest);
        tuple(elements)
    };
    let unused = || tuple(vec![]);
    match message.clone() {
        Message::Link(m) => (t(1, vec![p(&m.from_pid), p(&m.to_pid)]), None),
        Message::Send(m) => (t(2, vec![unused(), p(&m.to_pid)]), Some(m.message)),
        Message::Exit(m) if exit_payload => {
            (t(24, vec![p(&m.from_pid), p(&m.to_pid)]), Some(m.reason))
        }
        Message::Exit(m) => (t(3, vec![p(&m.from_pid), p(&m.to_pid), m.reason]), None),
        Message::Unlink(m) => (t(4, vec![p(&m.from_pid), p(&m.to_pid)]), None),
        Message::NodeLink(_) => (t(5, vec![]), None),
        Message::RegSend(m) => (
            t(6, vec![p(&m.from_pid), unused(), Term::Atom(m.to_name)]),
            Some(m.message),
        ),
        Message::GroupLeader(m) => (t(7, vec![p(&m.from_pid), p(&m.to_pid)]), None),
        Message::Exit2(m) if exit_payload => {
            (t(26, vec![p(&m.from_pid), p(&m.to_pid)]), Some(m.reason))
        }
        Message::Exit2(m) => (t(8, vec![p(&m.from_pid), p(&m.to_pid), m.reason]), None),
        Message::MonitorP(m) => (
            t(19, vec![p(&m.from_pid), proc(&m.to_proc), r(&m.reference)]),
            None,
        ),
        Message::DemonitorP(m) => (
            t(20, vec![p(&m.from_pid), proc(&m.to_proc), r(&m.reference)]),
            None,
        ),
        Message::MonitorPExit(m) if exit_payload => (
            t(28, vec![proc(&m.from_proc), p(&m.to_pid), r(&m.reference)]),
            Some(m.reason),
        ),
        Message::MonitorPExit(m) => (
            t(
                21,
                vec![proc(&m.from_proc), p(&m.to_pid), r(&m.reference), m.reason],
            ),
            None,
        ),
        Message::SendSender(m) => (t(22, vec![p(&m.from_pid), p(&m.to_pid)]), Some(m.message)),
        Message::SpawnRequest(m) => (
            t(
                29,
                vec![
                    r(&m.req_id),
                    p(&m.from_pid),
                    p(&m.group_leader),
                    Term::from(m.mfa),
                    Term::List(m.opt_list),
                ],
            ),
            Some(Term::List(m.arg_list)),
        ),
        Message::SpawnReply(m) => (
            t(
                31,
                vec![
                    r(&m.req_id),
                    p(&m.to_pid),
                    Term::from(m.flags),
                    proc(&m.result),
                ],
            ),
            None,
        ),
        Message::AliasSend(m) => (t(33, vec![p(&m.from_pid), r(&m.alias)]), Some(m.message)),
        Message::AliasExit(m) => {
            let bits = super::altact::ALIAS | super::altact::EXIT;
            let bits = if m.priority {
                bits | super::altact::PRIO
            } else {
                bits
            };
            (
                t(37, vec![int(i64::from(bits)), p(&m.from_pid), r(&m.alias)]),
                Some(m.reason),
            )
        }
        Message::UnlinkId(m) => (t(35, vec![m.id, p(&m.from_pid), p(&m.to_pid)]), None),
        Message::UnlinkIdAck(m) => (t(36, vec![m.id, p(&m.from_pid), p(&m.to_pid)]), None),
    }
}

/// `message` as `eetf` encodes its terms in a pass-through frame (after the tag).
fn eetf_frame(message: &Message, exit_payload: bool) -> Vec<u8> {
    let (control, payload) = as_terms(message, exit_payload);
    let mut out = eetf_bytes(&control);
    if let Some(payload) = payload {
        out.extend(eetf_bytes(&payload));
    }
    out
}

/// Every control message is written byte for byte as `eetf` encodes its terms.
#[test]
fn control_messages_are_written_as_eetf_encodes_their_terms() {
    let a = Pid::new("alex@localhost", 102, 0, 1795235418);
    let b = Pid::new("moebi@localhost", 7, 3, 12);
    let r = Reference::from(("alex@localhost", vec![1, 2, 3]));
    let name = Atom::from("Elixir.Chat.TaskSupervisor");
    let payload = || tuple(vec![atom("$gen_call"), int(1), binary(b"hi")]);
    let messages = vec![
        Message::reg_send(a, name, payload()),
        Message::send_sender(a, b, payload()),
        Message::AliasSend(m::AliasSend {
            from_pid: b,
            alias: r.clone(),
            message: payload(),
        }),
        Message::AliasExit(m::AliasExit {
            from_pid: b,
            alias: r.clone(),
            reason: atom("prio_exit"),
            priority: true,
        }),
        Message::monitor_p(a, PidOrAtom::Atom(name), r.clone()),
        Message::monitor_p(a, PidOrAtom::Pid(b), r.clone()),
        Message::demonitor_p(a, PidOrAtom::Atom(name), r.clone()),
        Message::monitor_p_exit(PidOrAtom::Atom(name), a, r.clone(), atom("noproc")),
        Message::link(a, b),
        Message::exit(a, b, atom("normal")),
        Message::exit2(a, b, atom("kill")),
        Message::unlink_id(int(7), a, b),
        Message::unlink_id_ack(int(7), a, b),
        Message::SpawnReply(m::SpawnReply {
            req_id: r.clone(),
            to_pid: a,
            flags: FixInteger::from(3),
            result: PidOrAtom::Pid(b),
        }),
        Message::SpawnReply(m::SpawnReply {
            req_id: r.clone(),
            to_pid: a,
            flags: FixInteger::from(0),
            result: PidOrAtom::Atom(Atom::from("badarg")),
        }),
        Message::SpawnRequest(m::SpawnRequest {
            req_id: r.clone(),
            from_pid: a,
            group_leader: b,
            mfa: Mfa {
                module: Atom::from("Elixir.Chat"),
                function: Atom::from("receive_message"),
                arity: FixInteger::from(1),
            },
            opt_list: List::from(vec![atom("link"), atom("monitor")]),
            arg_list: List::from(vec![binary(b"hi")]),
        }),
    ];
    let cold = vec![
        Message::Send(m::Send {
            to_pid: b,
            message: payload(),
        }),
        Message::Exit(m::Exit {
            from_pid: a,
            to_pid: b,
            reason: atom("normal"),
        }),
        Message::Unlink(m::Unlink {
            from_pid: a,
            to_pid: b,
        }),
        Message::NodeLink(m::NodeLink),
        Message::GroupLeader(m::GroupLeader {
            from_pid: a,
            to_pid: b,
        }),
        Message::Exit2(m::Exit2 {
            from_pid: a,
            to_pid: b,
            reason: atom("kill"),
        }),
        Message::MonitorPExit(m::MonitorPExit {
            from_proc: PidOrAtom::Pid(b),
            to_pid: a,
            reference: r.clone(),
            reason: atom("noproc"),
        }),
    ];
    for message in messages.into_iter().chain(cold) {
        // Every flag but ALTACT_SIG (alias_sends_use_altact_sig_where_the_peer_has_it),
        // and those without EXIT_PAYLOAD too.
        for exit_payload in [true, false] {
            let mut theirs = eetf_frame(&message, exit_payload);
            if matches!(message, Message::RegSend(_) | Message::Send(_)) {
                theirs = unused_as_empty_atom(theirs);
            }
            let mut ours = Vec::new();
            let mut flags = !flags::ALTACT_SIG;
            if !exit_payload {
                flags &= !flags::EXIT_PAYLOAD;
            }
            hot::write(&mut Out::versioned(&mut ours), message.clone(), flags).unwrap();
            assert_eq!(ours, theirs, "{message:?}, EXIT_PAYLOAD {exit_payload}");
        }
    }
    // `SEND` to a peer without `SEND_SENDER`.
    let send = Message::Send(m::Send {
        to_pid: b,
        message: payload(),
    });
    let mut ours = Vec::new();
    hot::send(
        &mut Out::versioned(&mut ours),
        &a,
        To::Pid(&b),
        Payload::Term(&payload()),
        0,
    )
    .unwrap();
    assert_eq!(ours, unused_as_empty_atom(eetf_frame(&send, true)));
    // An atom no BEAM takes is refused, not sent.
    let long = Atom::from("x".repeat(300).as_str());
    let refused = hot::write(
        &mut Out::versioned(&mut Vec::new()),
        Message::reg_send(a, long, payload()),
        u64::MAX,
    );
    assert_eq!(refused, Err(EncodeError::AtomTooLong(300)));
}

/// The unused field of `SEND` and `REG_SEND` as the BEAM writes it, the empty atom
/// (`SMALL_ATOM_UTF8_EXT`, 0), where erl_dist's messages hold an empty tuple.
fn unused_as_empty_atom(mut frame: Vec<u8>) -> Vec<u8> {
    let at = frame
        .windows(2)
        .position(|w| w == [104, 0])
        .expect("the empty tuple");
    frame[at] = 119;
    frame
}

/// A message that cannot be written, or whose writing panics, leaves the frames
/// before it whole.
#[test]
fn a_frame_is_appended_whole_or_not_at_all() {
    let mut out = b"earlier frames".to_vec();
    let failed = framed(&mut out, &mut Framing::default(), 0, |out| {
        out.extend_from_slice(b"half");
        Err(EncodeError::AtomTooLong(256))
    });
    assert!(failed.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        framed(&mut out, &mut Framing::default(), 0, |out| {
            out.extend_from_slice(b"half");
            panic!("a bug in a writer")
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(out, b"earlier frames");
    framed(&mut out, &mut Framing::default(), 0, |out| {
        out.push(1);
        Ok(())
    })
    .unwrap();
    assert_eq!(out[14..], [0, 0, 0, 2, PASS_THROUGH, 1]);
}

/// A message written from borrows, its payload whole or wrapped around a lent
/// term, is the frame of the same message owned.
#[test]
fn lent_payloads_are_written_as_owned_ones() {
    let a = Pid::new("alex@localhost", 102, 0, 1795235418);
    let r = Reference::from(("alex@localhost", vec![1, 2, 3]));
    let name = Atom::from("echo");
    let request = list((1001..1201).map(int).collect());
    let head = [atom("$gen_call"), tuple(vec![Term::Pid(a), atom("t")])];
    let wrapped = tuple([&head[..], std::slice::from_ref(&request)].concat());
    let payloads = [
        (Payload::Term(&request), &request),
        (Payload::Wrapped(&head, &request), &wrapped),
    ];
    for to in [To::Pid(&a), To::Name(&name), To::Alias(&r)] {
        for (payload, whole) in payloads {
            for flags in [u64::MAX, 0] {
                let owned = encode(to_message(&a, to, whole.clone()), flags).unwrap();
                let mut lent = b"before".to_vec();
                encode_send_into(
                    &mut lent,
                    &mut Framing::default(),
                    &a,
                    to,
                    payload,
                    0,
                    flags,
                )
                .unwrap();
                assert_eq!(lent[..6], *b"before");
                assert_eq!(lent[6..], owned);
            }
        }
    }
}

/// Fields are moved out of the control tuple as they match; the error still shows
/// the control message as it arrived.
#[test]
fn a_malformed_control_message_is_reported_whole() {
    let mut body = vec![PASS_THROUGH];
    let from = Term::Pid(Pid::new("a@h", 1, 0, 5));
    tuple(vec![int(6), from, atom(""), int(42)])
        .encode(&mut body)
        .unwrap();
    atom("m").encode(&mut body).unwrap();
    match decode_pt(&body, &TermLimits::default()) {
        Err(DecodeError::BadControl(text)) => {
            assert!(text.contains("a@h") && text.contains("42"), "{text}")
        }
        _ => panic!("a REG_SEND to 42 is malformed"),
    }
}

#[test]
fn unknown_ops_are_invalid_messages() {
    let mut body = vec![PASS_THROUGH];
    tuple(vec![Term::from(FixInteger::from(99))])
        .encode(&mut body)
        .unwrap();
    match decode_pt(&body, &TermLimits::default()) {
        Err(e @ DecodeError::Invalid(_)) => {
            assert_eq!(e.to_string(), "invalid distribution message: {99}")
        }
        _ => panic!("an operation nobody defines is an invalid message"),
    }
}

#[test]
fn old_ops_for_old_peers() {
    let a = Pid::new("a@h", 1, 0, 5);
    let minimal = crate::flags::advertised(false) & !(flags::SEND_SENDER | flags::EXIT_PAYLOAD);
    let frame = encode(Message::send_sender(a, a, atom("x")), minimal).unwrap();
    match decode_pt(&frame[4..], &TermLimits::default()).unwrap() {
        Decoded::Message(Message::Send(_)) => {}
        _ => panic!("expected SEND"),
    }
}
