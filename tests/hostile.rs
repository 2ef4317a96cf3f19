//! Network-level attacks against the real Moebi binary: the node never falls over and
//! never lets the wrong node in. Every attack comes from a raw socket or from the fake
//! peer in `tests/fakepeer/` (which completes the real handshake when it has the
//! cookie); after each, a real BEAM node still chats with Moebi, and Moebi's log says
//! what it refused.

mod fakepeer;
mod support;

use fakepeer::{
    cache_header, closed_within, frag_cont, frag_header, headed, hs_message, name_message, raw,
    Peer, Rng, OTP25_FLAGS,
};
use std::io::Write;
use std::time::{Duration, Instant};
use support::{chats, chats_once_settled, unique_name, BeamNode, Epmd, RustNode};

const COOKIE: &str = "secret_token";
const WAIT: Duration = Duration::from_secs(15);

/// Moebi on a fresh EPMD, and its distribution port.
fn moebi(extra: &[&str]) -> (Epmd, RustNode, u16) {
    let epmd = Epmd::start();
    let moebi = RustNode::start(&unique_name("moebi"), COOKIE, &epmd, extra);
    let alive = moebi.node_name().split('@').next().unwrap().to_owned();
    let port = fakepeer::node_port(epmd.port(), &alive);
    (epmd, moebi, port)
}

/// `name@localhost` for a fake peer.
fn fake_name(prefix: &str) -> String {
    format!("{}@localhost", unique_name(prefix))
}

/// Nothing panicked in Moebi but `Moebi.panic/0`, which does on purpose: no panic
/// of the program's (`panicked`), and no crash of a process by a panic (`rust_panic`).
fn assert_no_panic(moebi: &RustNode) {
    let log = moebi.log();
    let lines: Vec<&str> = log.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let on_purpose = lines
            .get(i + 1)
            .is_some_and(|next| next.contains("Moebi panicked on purpose"));
        let panic = line.contains("panicked") || line.contains("rust_panic");
        assert!(
            !panic || line.contains("on purpose") || on_purpose,
            "moebi panicked:\n{log}"
        );
    }
}

// ------------------------------------------------------------------ handshake ----

#[test]
fn a_wrong_cookie_is_always_refused_and_logged_with_the_peers_name() {
    let (_epmd, moebi, port) = moebi(&[]);
    for i in 0..5 {
        let name = fake_name(&format!("mallory{i}"));
        let err = Peer::connect(port, &name, &format!("wrong{i}"), OTP25_FLAGS)
            .err()
            .expect("a wrong cookie never completes the handshake");
        // The node closes right after our challenge reply, without an ack.
        assert!(err.starts_with("challenge ack"), "{err}");
        let line =
            format!("Connection attempt from node {name} rejected. Invalid challenge reply.");
        assert!(
            moebi.wait_for_log(&line, WAIT),
            "moebi logs {line:?}:\n{}",
            moebi.log()
        );
    }
    // The right cookie still gets in.
    let mut good = Peer::connect(port, &fake_name("good"), COOKIE, OTP25_FLAGS).unwrap();
    assert!(good.ping(WAIT));
}

/// Handshakes that fail make no atom of the name they gave: a client without the
/// cookie cannot fill the node's table of atoms (and halt it) with names, however many
/// it tries.
#[test]
fn failed_handshakes_make_no_atoms() {
    use eetf::Term;
    use fakepeer::{atom, tuple};
    let (_epmd, moebi, port) = moebi(&[]);
    let mut good = Peer::connect(port, &fake_name("counter"), COOKIE, OTP25_FLAGS).unwrap();
    // `:erlang.system_info(:atom_count)` through the node's `rex`.
    let atom_count = |p: &mut Peer, n: u32| -> i64 {
        let (me, tag) = (Term::from(p.pid(1)), Term::from(p.reference(n)));
        let call = tuple(vec![
            atom("call"),
            atom("erlang"),
            atom("system_info"),
            Term::from(eetf::List::from(vec![atom("atom_count")])),
            me.clone(),
        ]);
        let from = tuple(vec![me, tag.clone()]);
        p.reg_send("rex", tuple(vec![atom("$gen_call"), from, call]))
            .unwrap();
        let (_, reply) = p
            .next_message_where(WAIT, |_, payload| {
                matches!(payload, Some(Term::Tuple(t)) if t.elements.len() == 2 && t.elements[0] == tag)
            })
            .expect("rex answers");
        match reply {
            Some(Term::Tuple(t)) => match &t.elements[1] {
                Term::FixInteger(n) => i64::from(n.value),
                other => panic!("not a count: {other}"),
            },
            other => panic!("not a reply: {other:?}"),
        }
    };
    let before = atom_count(&mut good, 1);
    for i in 0..100 {
        let name = fake_name(&format!("stranger{i}"));
        // A wrong cookie, and a peer that names itself and goes.
        let _ = Peer::connect(port, &name, "not_the_cookie", OTP25_FLAGS);
        let mut s = raw(port);
        s.write_all(&hs_message(&name_message(
            &format!("x{name}"),
            OTP25_FLAGS,
            1,
        )))
        .unwrap();
        let mut reply = [0u8; 64];
        let _ = std::io::Read::read(&mut s, &mut reply);
    }
    let after = atom_count(&mut good, 2);
    assert!(
        after - before < 20,
        "200 failed handshakes made {} atoms",
        after - before
    );
    assert!(good.ping(WAIT), "{}", moebi.log());
}

/// A peer that hangs up during the handshake, after naming itself (as a node does that
/// finds it reached another node than the one it asked EPMD for): nothing to warn of, as
/// a BEAM node says nothing of it.
#[test]
fn a_peer_hanging_up_in_the_handshake_is_no_warning() {
    let (_epmd, moebi, port) = moebi(&[]);
    for _ in 0..3 {
        let mut s = raw(port);
        s.write_all(&hs_message(&name_message(
            &fake_name("gone"),
            OTP25_FLAGS,
            1,
        )))
        .unwrap();
        // The status and the challenge, then we are gone.
        let mut reply = [0u8; 64];
        let _ = std::io::Read::read(&mut s, &mut reply);
    }
    // A handshake after them completes, so theirs are over.
    let mut good = Peer::connect(port, &fake_name("good"), COOKIE, OTP25_FLAGS).unwrap();
    assert!(good.ping(WAIT));
    std::thread::sleep(Duration::from_millis(200));
    let log = moebi.log();
    assert!(!log.contains("handshake from"), "{log}");
    assert_no_panic(&moebi);
}

#[test]
fn a_stalled_handshake_is_dropped_after_net_setuptime() {
    let (_epmd, moebi, port) = moebi(&["--net-setuptime", "1"]);
    let t0 = Instant::now();
    // Nothing at all; half a length; a name message and then silence (we are waiting
    // for the challenge reply); a length announcing more than ever comes.
    let mut silent = raw(port);
    let mut half_length = raw(port);
    half_length.write_all(&[0]).unwrap();
    let mut after_name = raw(port);
    after_name
        .write_all(&hs_message(&name_message(
            &fake_name("slow"),
            OTP25_FLAGS,
            1,
        )))
        .unwrap();
    let mut short_body = raw(port);
    short_body.write_all(&[0, 200, b'N', 0, 0]).unwrap();
    for (what, s) in [
        ("silent", &mut silent),
        ("half a length", &mut half_length),
        ("silent after the name", &mut after_name),
        ("short body", &mut short_body),
    ] {
        let closed = closed_within(s, Duration::from_secs(5));
        assert!(closed.is_some(), "{what}: still open after 5 s");
        let at = t0.elapsed();
        // The node's log with it: a close before net_setuptime can only be a reset.
        assert!(
            at >= Duration::from_millis(950) && at < Duration::from_secs(3),
            "{what}: closed after {at:?}, expected about net_setuptime (1 s); the node's log:\n{}",
            moebi.log()
        );
    }
    assert!(
        moebi.wait_for_log("timed out (net_setuptime)", WAIT),
        "{}",
        moebi.log()
    );
    assert_no_panic(&moebi);
}

/// Handshake openings that are refused at once: the node closes the socket without
/// waiting for net_setuptime.
fn garbage_openings() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("zero length".into(), vec![0, 0]),
        ("unknown tag".into(), hs_message(b"Xhello")),
        (
            "old v5 name message".into(),
            hs_message(&[&b"n\x00\x05\x00\x07\x7f\xbd"[..], b"old@localhost"].concat()),
        ),
        ("name message cut short".into(), hs_message(b"N\x00\x00")),
        (
            "name length beyond the message".into(),
            hs_message(
                &[
                    &name_message("a@b", OTP25_FLAGS, 1)[..13],
                    &[0xff, 0xff],
                    b"a@b",
                ]
                .concat(),
            ),
        ),
        (
            "name without host".into(),
            hs_message(&name_message("nohost", OTP25_FLAGS, 1)),
        ),
        (
            "name with two @".into(),
            hs_message(&name_message("a@b@c", OTP25_FLAGS, 1)),
        ),
        (
            "name with a control character".into(),
            hs_message(&name_message("a\n@b", OTP25_FLAGS, 1)),
        ),
        (
            "name not UTF-8".into(),
            hs_message(&[&name_message("ab@c", OTP25_FLAGS, 1)[..17], b"\xff\xfe@c"].concat()),
        ),
        (
            "mandatory flags missing".into(),
            hs_message(&name_message(&fake_name("old"), 0x7, 1)),
        ),
    ];
    for i in 0..10 {
        // Random bytes behind a length that fits them: whatever the tag, refused.
        let len = 1 + (rng.next() % 300) as usize;
        let mut body = rng.bytes(len);
        if body[0] == b'N' {
            body[0] = b'M';
        }
        cases.push((format!("random body {i}"), hs_message(&body)));
    }
    cases
}

#[test]
fn garbage_handshakes_are_refused_and_nothing_else_is_affected() {
    let (epmd, moebi, port) = moebi(&["--net-setuptime", "1"]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();
    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");

    for (what, bytes) in garbage_openings() {
        let mut s = raw(port);
        s.write_all(&bytes).unwrap();
        let closed = closed_within(&mut s, Duration::from_secs(5));
        assert!(
            closed.is_some_and(|t| t < Duration::from_millis(900)),
            "{what}: expected an immediate close, got {closed:?}\n{}",
            moebi.log()
        );
    }
    // Lengths no handshake message has: refused at once too.
    let mut rng = Rng(42);
    let mut absurd: Vec<(String, Vec<u8>)> = vec![
        ("absurd length".into(), vec![0xff, 0xff, b'N', 1, 2, 3]),
        // Its first two bytes read as a length of 18,245.
        ("http".into(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
    ];
    for i in 0..5 {
        let mut b = rng.bytes(64);
        b[0] = 0x7f; // a length of at least 32,512
        absurd.push((format!("random {i}"), b));
    }
    for (what, bytes) in absurd {
        let mut s = raw(port);
        s.write_all(&bytes).unwrap();
        let closed = closed_within(&mut s, Duration::from_secs(5));
        assert!(
            closed.is_some_and(|t| t < Duration::from_millis(900)),
            "{what}: expected an immediate close, got {closed:?}"
        );
    }
    // Openings that can only be refused by the clock: a truncated name message, a
    // plausible length with too few bytes behind it.
    let mut slow: Vec<(String, Vec<u8>)> = vec![(
        "truncated name message".into(),
        hs_message(&name_message(&fake_name("t"), OTP25_FLAGS, 1))[..12].to_vec(),
    )];
    for i in 0..5 {
        let mut b = rng.bytes(40);
        b[0] = 1; // a length of 256 to 511
        slow.push((format!("random {i}"), b));
    }
    let mut socks: Vec<_> = slow
        .iter()
        .map(|(what, bytes)| {
            let mut s = raw(port);
            s.write_all(bytes).unwrap();
            (what, s)
        })
        .collect();
    for (what, s) in &mut socks {
        let closed = closed_within(s, Duration::from_secs(5));
        assert!(closed.is_some(), "{what}: still open after 5 s");
    }

    // Refused with the statuses a BEAM sends, and logged.
    let mut s = raw(port);
    s.write_all(&hs_message(&name_message(&fake_name("old"), 0x7, 1)))
        .unwrap();
    let mut reply = vec![0u8; 14];
    std::io::Read::read_exact(&mut s, &mut reply).unwrap();
    assert_eq!(&reply[2..], b"snot_allowed");
    assert!(moebi.wait_for_log("cannot handle", WAIT), "{}", moebi.log());
    assert!(moebi.log().contains("(v5) name message"), "{}", moebi.log());

    // A flood of them does not flood the log: at most 10 warnings of a kind in 10 s,
    // the rest at debug (a BEAM node logs none).
    for _ in 0..40 {
        let mut s = raw(port);
        s.write_all(b"\x00\x05GET /").unwrap();
        let _ = closed_within(&mut s, Duration::from_secs(5));
    }
    let warned = moebi
        .log()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("handshake from") && l.contains("failed:"))
        .count();
    // More than 50 failed in all, the 40 within a moment.
    assert!(warned < 40, "{warned} warnings:\n{}", moebi.log());

    // alex's connection never noticed.
    assert!(alex.eval("Node.list()").contains(&m));
    assert!(!moebi.log().contains("node down"), "{}", moebi.log());
    chats(&alex, &moebi, "still here");
    assert_no_panic(&moebi);
}

#[test]
fn five_hundred_half_open_sockets_do_not_keep_a_real_node_out() {
    let (epmd, moebi, port) = moebi(&[]);
    let m = moebi.node_name();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    // 500 connections that send nothing, held open (net_setuptime is 7 s).
    let t_open = Instant::now();
    let mut idle: Vec<_> = (0..500).map(|_| raw(port)).collect();
    // At most 256 handshakes are pending at once: the oldest make room for the newest.
    let mut closed = vec![false; idle.len()];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for (s, c) in idle.iter_mut().zip(&mut closed) {
            *c = *c || closed_within(s, Duration::from_millis(1)).is_some();
        }
        let dropped = closed.iter().filter(|&&c| c).count();
        if dropped >= 500 - 256 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {dropped} of 500 were dropped"
        );
    }
    let t0 = Instant::now();
    assert_eq!(
        alex.eval(&format!("Node.ping(:{m})")),
        ":pong",
        "{}",
        moebi.log()
    );
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "the ping took {took:?}");
    chats(&alex, &moebi, "through the crowd");
    // A fake peer with the cookie gets in too.
    let mut peer = Peer::connect(port, &fake_name("late"), COOKIE, OTP25_FLAGS).unwrap();
    assert!(peer.ping(WAIT));
    // The rest are dropped when net_setuptime runs out.
    for s in &mut idle {
        let left = Duration::from_secs(12).saturating_sub(t_open.elapsed());
        assert!(
            closed_within(s, left).is_some(),
            "a half-open socket outlived net_setuptime"
        );
    }
    assert!(moebi
        .log()
        .contains("handshakes pending, it was the oldest"));
    assert!(moebi.log().contains("timed out (net_setuptime)"));
    assert!(alex.eval("Node.list()").contains(&m));
    assert_no_panic(&moebi);
}

#[test]
fn an_unauthenticated_impostor_cannot_keep_a_node_out_or_down() {
    let (epmd, moebi, port) = moebi(&["--net-setuptime", "3"]);
    let m = moebi.node_name();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);

    // Someone claims to be alex and stalls after the status: alex still gets in.
    let mut impostor = raw(port);
    impostor
        .write_all(&hs_message(&name_message(
            &alex.node_name(),
            OTP25_FLAGS,
            1,
        )))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        alex.eval(&format!("Node.ping(:{m})")),
        ":pong",
        "{}",
        moebi.log()
    );
    chats(&alex, &moebi, "it is really me");

    // Someone claims to be kate, now connected, and answers `alive` with `true`, then
    // fails the challenge: kate's connection stays up.
    assert_eq!(kate.eval(&format!("Node.ping(:{m})")), ":pong");
    let mut s = raw(port);
    s.write_all(&hs_message(&name_message(
        &kate.node_name(),
        OTP25_FLAGS,
        2,
    )))
    .unwrap();
    let mut status = vec![0u8; 8];
    std::io::Read::read_exact(&mut s, &mut status).unwrap();
    assert_eq!(&status[2..], b"salive");
    s.write_all(&hs_message(b"strue")).unwrap();
    let mut len = [0u8; 2];
    std::io::Read::read_exact(&mut s, &mut len).unwrap();
    let mut challenge = vec![0u8; u16::from_be_bytes(len) as usize];
    std::io::Read::read_exact(&mut s, &mut challenge).unwrap();
    let mut reply = vec![b'r', 0, 0, 0, 1];
    reply.extend_from_slice(&[0; 16]);
    s.write_all(&hs_message(&reply)).unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)).is_some());
    assert!(moebi.wait_for_log(&format!("node {} rejected", kate.node_name()), WAIT));
    assert!(!moebi.log().contains("node down"), "{}", moebi.log());
    assert!(kate.eval("Node.list()").contains(&m));
    chats(&kate, &moebi, "kate is still kate");

    // Someone claims to be Moebi itself: `nok`, with the BEAM's words, and nobody is
    // told of a node going down when it leaves.
    let mut s = raw(port);
    s.write_all(&hs_message(&name_message(&m, OTP25_FLAGS, 3)))
        .unwrap();
    let mut status = vec![0u8; 6];
    std::io::Read::read_exact(&mut s, &mut status).unwrap();
    assert_eq!(&status[2..], b"snok");
    assert!(closed_within(&mut s, WAIT).is_some());
    assert!(moebi.wait_for_log(&format!("** Cannot get connection id for node {m}"), WAIT));
    assert!(!moebi.log().contains("node down"), "{}", moebi.log());
    assert!(
        !moebi.log().contains(&format!("node up: {m}")),
        "{}",
        moebi.log()
    );
    assert!(alex.eval("Node.list()").contains(&m));
    chats(&kate, &moebi, "and Moebi is Moebi");
    drop(impostor);
    assert_no_panic(&moebi);
}

// --------------------------------------------------------------------- frames ----

/// Virtual and resident memory of a process, in KiB.
fn vm_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmSize:"), field("VmRSS:"))
}

#[test]
fn a_length_header_is_never_trusted_for_allocation() {
    let (_epmd, moebi, port) = moebi(&[]);
    let mut bystander = Peer::connect(port, &fake_name("bystander"), COOKIE, OTP25_FLAGS).unwrap();
    assert!(bystander.ping(WAIT));
    // Warm up: a few connections come and go.
    for i in 0..5 {
        let mut p =
            Peer::connect(port, &fake_name(&format!("warm{i}")), COOKIE, OTP25_FLAGS).unwrap();
        assert!(p.ping(WAIT));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (vm0, rss0) = vm_kib(moebi.os_pid());

    // 4 GiB announced: beyond the maximum message size, refused at the header.
    let mut huge = Peer::connect(port, &fake_name("huge"), COOKIE, OTP25_FLAGS).unwrap();
    huge.send_raw(&u32::MAX.to_be_bytes()).unwrap();
    huge.send_raw(&[7; 1024]).unwrap();
    assert!(closed_within(&mut huge.stream, WAIT).is_some());
    assert!(
        moebi.wait_for_log(
            "frame of 4294967295 bytes exceeds the maximum message size",
            WAIT
        ),
        "{}",
        moebi.log()
    );

    // 120 MiB announced (within the maximum) and 1 KiB sent, on 10 connections at
    // once: each costs about what arrived.
    let mut liars: Vec<Peer> = (0..10)
        .map(|i| {
            let mut p =
                Peer::connect(port, &fake_name(&format!("liar{i}")), COOKIE, OTP25_FLAGS).unwrap();
            p.send_raw(&(120u32 << 20).to_be_bytes()).unwrap();
            p.send_raw(&[112; 1024]).unwrap();
            p
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (vm1, rss1) = vm_kib(moebi.os_pid());
    assert!(
        rss1 < rss0 + 4 * 1024,
        "resident memory grew from {rss0} KiB to {rss1} KiB"
    );
    // Trusting the headers would reserve 1.2 GiB of address space.
    assert!(
        vm1 < vm0 + 512 * 1024,
        "virtual memory grew from {vm0} KiB to {vm1} KiB"
    );
    // They are still connected (a frame may take its time), and the node serves.
    for p in &mut liars {
        assert!(closed_within(&mut p.stream, Duration::from_millis(10)).is_none());
    }
    assert!(bystander.ping(WAIT));
    drop(liars);
    assert_no_panic(&moebi);
}

#[test]
fn a_message_over_max_message_size_closes_only_that_connection() {
    let (epmd, moebi, _port) = moebi(&["--max-message-size", "100000"]);
    let m = moebi.node_name();
    // alex is hidden: were both in `global`'s cluster, kate would hear of the lost
    // connection and drop alex and perhaps Moebi (`prevent_overlapping_partitions`, as
    // with a BEAM node in Moebi's place; tests/moebi_interop.rs).
    let alex = BeamNode::start_hidden(&unique_name("alex"), COOKIE, &epmd);
    let kate = BeamNode::start(&unique_name("kate"), COOKIE, &epmd);
    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");
    assert_eq!(kate.eval(&format!("Node.ping(:{m})")), ":pong");
    // Just under the limit is fine.
    assert_eq!(
        alex.eval(&format!(
            "byte_size(GenServer.call({{:echo, :{m}}}, :binary.copy(\"x\", 90_000)))"
        )),
        "90000"
    );
    alex.eval(&format!(":erlang.monitor_node(:{m}, true)"));
    alex.eval(&format!(
        "GenServer.cast({{:echo, :{m}}}, {{self(), :binary.copy(\"x\", 200_000)}})"
    ));
    assert_eq!(
        alex.eval(&format!(
            "receive do {{:nodedown, :{m}}} -> :nodedown after 10_000 -> :still_up end"
        )),
        ":nodedown"
    );
    // alex sends 200 KB in 64 KiB fragments (FRAGMENTS): refused once the fragments
    // held pass the limit ("fragmented messages in progress exceed the maximum message
    // size"), as a frame over it would be ("frame of N bytes exceeds ...").
    assert!(
        closed_for(
            &moebi,
            &alex.node_name(),
            "the maximum message size of 100000 bytes"
        ),
        "the log line names the reason and the peer:\n{}",
        moebi.log()
    );
    // kate never noticed; alex connects again on the next message.
    assert!(kate.eval("Node.list()").contains(&m));
    chats(&kate, &moebi, "kate is fine");
    assert_eq!(
        alex.eval(&format!("GenServer.call({{:echo, :{m}}}, :again)")),
        ":again"
    );
    chats_once_settled(&alex, &moebi, "alex is back");
    assert_no_panic(&moebi);
}

// ---------------------------------------------------------------------- terms ----

/// `{6, Pid, '', echo}` (REG_SEND to `echo`) followed by `payload` as is.
fn reg_send_raw(peer: &Peer, to: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![fakepeer::PASS_THROUGH];
    fakepeer::tuple(vec![
        fakepeer::int(6),
        eetf::Term::from(peer.pid(1)),
        fakepeer::atom(""),
        fakepeer::atom(to),
    ])
    .encode(&mut body)
    .unwrap();
    body.extend_from_slice(payload);
    body
}

#[test]
fn terms_nested_millions_deep_do_not_overflow_the_stack() {
    let (epmd, moebi, port) = moebi(&[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{})", moebi.node_name())),
        ":pong"
    );

    let depth = 2_000_000;
    let tuples: Vec<u8> = std::iter::once(131)
        .chain(std::iter::repeat_n([104u8, 1], depth).flatten())
        .chain([106])
        .collect();
    let maps: Vec<u8> = std::iter::once(131)
        .chain(std::iter::repeat_n([116u8, 0, 0, 0, 1, 106], depth).flatten())
        .chain([106])
        .collect();
    for (what, payload) in [
        ("list", fakepeer::nested_list(depth)),
        ("tuple", tuples),
        ("map", maps),
    ] {
        let mut p = Peer::connect(port, &fake_name(what), COOKIE, OTP25_FLAGS).unwrap();
        assert!(p.ping(WAIT));
        let body = reg_send_raw(&p, "echo", &payload);
        p.send_frame(&body).unwrap();
        assert!(
            closed_within(&mut p.stream, WAIT).is_some(),
            "{what}: the connection is closed\n{}",
            moebi.log()
        );
    }
    assert!(
        moebi.log().contains("term nested deeper than 4096 levels"),
        "{}",
        moebi.log()
    );
    // Still there, still chatting.
    assert!(alex.eval("Node.list()").contains(&moebi.node_name()));
    chats(&alex, &moebi, "deep breath");
    assert_no_panic(&moebi);
}

/// A peer that asks for process after process (`Node.spawn`, `rpc`): beyond the limit
/// (`erl +P`, Moebi `--max-processes`) each is refused with `system_limit`, as a BEAM
/// node refuses, and once processes end there is room again.
#[test]
fn processes_for_peers_are_bounded() {
    let (epmd, moebi, _port) = moebi(&["--max-processes", "60"]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();
    let outcome = alex.eval(&format!(
        "results = for _ <- 1..100 do
           try do {{:ok, Node.spawn(:{m}, :timer, :sleep, [:infinity])}} catch :error, r -> r end
         end
         started = for {{:ok, pid}} <- results, do: pid
         refused = Enum.count(results, &(&1 == :system_limit))
         by_erpc = try do :erpc.call(:{m}, :erlang, :node, []) catch :error, r -> r end
         Enum.each(started, &Process.exit(&1, :kill))
         again = Enum.find_value(1..100, fn _ ->
           try do :erpc.call(:{m}, :erlang, :node, []) catch :error, _ -> Process.sleep(50); nil end
         end)
         {{length(started) in 30..59, refused + length(started), by_erpc, again}}"
    ));
    assert_eq!(
        outcome,
        format!("{{true, 100, {{:erpc, :system_limit}}, :{m}}}"),
        "{}",
        moebi.log()
    );
    assert!(moebi.log().contains("Too many processes (max=60)"));
    assert_no_panic(&moebi);
}

/// A peer that fills the table of atoms (1,048,576, as the BEAM's): the frame that
/// would make one more closes its connection, and the node halts with status 1, as a
/// BEAM node halts (`no more index entries in atom_tab`), where it would otherwise
/// stay up refusing every peer's next new atom.
#[test]
fn a_full_table_of_atoms_halts_the_node() {
    let (_epmd, mut moebi, port) = moebi(&[]);
    let mut p = Peer::connect(port, &fake_name("atoms"), COOKIE, OTP25_FLAGS).unwrap();
    let tag = unique_name("x");
    const PER_FRAME: usize = 8192;
    let mut closed = false;
    for frame in 0..(cnode::term::Atom::LIMIT / PER_FRAME + 2) {
        let mut payload = vec![131, 108];
        payload.extend_from_slice(&(PER_FRAME as u32).to_be_bytes());
        for i in 0..PER_FRAME {
            let name = format!("{tag}_{frame}_{i}");
            payload.push(119);
            payload.push(name.len() as u8);
            payload.extend_from_slice(name.as_bytes());
        }
        payload.push(106);
        if p.send_frame(&reg_send_raw(&p, "nobody_here", &payload))
            .is_err()
        {
            closed = true;
            break;
        }
    }
    assert!(closed || closed_within(&mut p.stream, WAIT).is_some());
    assert_eq!(moebi.wait_exit(WAIT), Some(1), "{}", moebi.log());
    assert!(moebi
        .log()
        .contains("no more index entries in atom_tab (max=1048576)"));
}

/// What closes a connection is logged with what the peer sent: words that a full table
/// of atoms would give do not make the node halt, the table's own state does.
#[test]
fn a_peer_quoting_a_full_table_of_atoms_does_not_halt_the_node() {
    let (_epmd, mut moebi, port) = moebi(&[]);
    let mut p = Peer::connect(port, &fake_name("quote"), COOKIE, OTP25_FLAGS).unwrap();
    let words = eetf::Term::from(eetf::Binary::from(
        &b"a new atom, with the table of atoms full (1048576 atoms)"[..],
    ));
    p.send_control(fakepeer::tuple(vec![fakepeer::int(6), words]), None)
        .unwrap();
    assert!(closed_within(&mut p.stream, WAIT).is_some());
    assert!(
        moebi.wait_for_log("table of atoms full", WAIT),
        "{}",
        moebi.log()
    );
    let mut again = Peer::connect(port, &fake_name("after"), COOKIE, OTP25_FLAGS).unwrap();
    assert!(again.ping(WAIT), "{}", moebi.log());
    assert_eq!(moebi.wait_exit(Duration::from_millis(500)), None);
    assert!(!moebi.log().contains("atom_tab"), "{}", moebi.log());
}

/// What a BEAM node sends without a thought: iodata built by appending in a loop, a
/// level per append. 4,000 levels go there and back with the default limit, printed by
/// `IO.puts` over rpc too; beyond 4,096 the connection closes (a BEAM node has no such
/// limit); with the limit raised (Moebi gives its threads the stack it takes), 10,000
/// levels go there and back.
#[test]
fn deep_iodata_as_a_beam_node_sends_it() {
    let (epmd, by_default, _port) = moebi(&[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = by_default.node_name();
    assert_eq!(
        alex.eval(&format!(
            "deep = Enum.reduce(1..4_000, [], fn x, acc -> [acc, Integer.to_string(x), ?\\n] end)
             {{GenServer.call({{:echo, :{m}}}, deep, 60_000) == deep,
              :rpc.call(:{m}, IO, :puts, [deep])}}"
        )),
        "{true, :ok}",
        "{}",
        by_default.log()
    );
    assert!(
        alex.wait_for_output("\n3999\n4000\n", WAIT),
        "{}",
        alex.output()
    );
    assert_no_panic(&by_default);
    drop((alex, by_default, epmd));

    let (epmd, moebi, _port) = moebi(&["--max-term-depth", "20000"]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();
    assert_eq!(
        alex.eval(&format!(
            "deep = Enum.reduce(1..10_000, [], fn x, acc -> [acc, Integer.to_string(x)] end)
             GenServer.call({{:echo, :{m}}}, deep, 60_000) == deep"
        )),
        "true",
        "{}",
        moebi.log()
    );
    assert_no_panic(&moebi);
}

/// Frame bodies that are not well-formed distribution messages.
fn malformed_frames(peer: &Peer) -> Vec<(&'static str, Vec<u8>)> {
    let echo = |payload: &[u8]| reg_send_raw(peer, "echo", payload);
    let mut control = vec![fakepeer::PASS_THROUGH];
    fakepeer::tuple(vec![
        fakepeer::int(6),
        eetf::Term::from(peer.pid(1)),
        fakepeer::atom(""),
        fakepeer::atom("echo"),
    ])
    .encode(&mut control)
    .unwrap();
    let mut fun = vec![131, 112, 0, 0, 0, 200];
    fun.extend_from_slice(&[0; 60]);
    vec![
        ("tag only", vec![112]),
        ("unknown frame tag", vec![113, 131, 106]),
        ("distribution header", vec![131, 68, 0, 131, 106]),
        ("bad version byte", vec![112, 130, 106]),
        ("control cut short", control[..control.len() - 3].to_vec()),
        ("unknown term tag", echo(&[131, 200, 1, 2, 3])),
        ("atom cache reference", echo(&[131, 82, 0])),
        (
            "compressed term",
            echo(&[131, 80, 0, 0, 0, 10, 120, 156, 203, 0, 0]),
        ),
        (
            "list of 4 billion",
            echo(&[131, 108, 255, 255, 255, 255, 106]),
        ),
        ("map of 4 billion", echo(&[131, 116, 255, 255, 255, 255])),
        ("tuple of 4 billion", echo(&[131, 105, 255, 255, 255, 255])),
        (
            "binary longer than the frame",
            echo(&[131, 109, 0, 0, 1, 0, 1, 2]),
        ),
        (
            "bit binary with 0 bits",
            echo(&[131, 77, 0, 0, 0, 1, 0, 255]),
        ),
        (
            "bit binary with 9 bits",
            echo(&[131, 77, 0, 0, 0, 1, 9, 255]),
        ),
        ("fun size beyond the frame", echo(&fun)),
        ("local term", echo(&[131, 121, 1, 2, 3])),
        (
            "reference with 6 words",
            echo(&[131, 90, 0, 6, 119, 1, b'a', 0, 0, 0, 1]),
        ),
        (
            "trailing bytes",
            [echo(&[131, 106]), vec![131, 106]].concat(),
        ),
        ("control not a tuple", vec![112, 131, 100, 0, 1, b'x']),
        (
            "operation not an integer",
            vec![112, 131, 104, 1, 100, 0, 1, b'x'],
        ),
        ("send without payload", {
            let mut b = vec![112];
            fakepeer::tuple(vec![
                fakepeer::int(2),
                fakepeer::atom(""),
                eetf::Term::from(peer.pid(2)),
            ])
            .encode(&mut b)
            .unwrap();
            b
        }),
        ("send to an atom", {
            let mut b = vec![112];
            fakepeer::tuple(vec![
                fakepeer::int(2),
                fakepeer::atom(""),
                fakepeer::atom("x"),
            ])
            .encode(&mut b)
            .unwrap();
            fakepeer::atom("m").encode(&mut b).unwrap();
            b
        }),
        // Atoms are never freed: no peer makes one longer than the BEAM's 255 characters.
        ("atom of 256 characters", {
            let mut atom = vec![131, 118, 1, 0];
            atom.extend_from_slice(&[b'x'; 256]);
            echo(&atom)
        }),
        // (ATOM_EXT with the same bytes is the latin-1 atom 'ÿþ', taken as the BEAM does.)
        (
            "UTF-8 atom that is not UTF-8",
            echo(&[131, 118, 0, 2, 0xff, 0xfe]),
        ),
    ]
}

/// `ATOM_EXT` is latin-1: a byte beyond ASCII is a character of its own, as the BEAM
/// reads it (OTP 25 itself writes latin-1 atoms so outside distribution). Moebi's echo
/// takes `{self(), :"ÿþ"}` in that form and answers the atom, in UTF-8.
#[test]
fn a_latin1_atom_is_the_atom_it_names() {
    let (_epmd, moebi, port) = moebi(&[]);
    let mut p = Peer::connect(port, &fake_name("latin1"), COOKIE, OTP25_FLAGS).unwrap();
    let mut me = Vec::new();
    eetf::Term::from(p.pid(1)).encode(&mut me).unwrap();
    let mut payload = vec![131, 104, 2];
    payload.extend_from_slice(&me[1..]);
    payload.extend_from_slice(&[100, 0, 2, 0xff, 0xfe]);
    p.send_frame(&reg_send_raw(&p, "echo", &payload)).unwrap();
    let echoed = p.next_message_where(WAIT, |c, _| matches!(op_of(c), Some(2 | 22)));
    let (_, payload) = echoed.unwrap_or_else(|| panic!("no echo\n{}", moebi.log()));
    assert_eq!(payload, Some(fakepeer::atom("ÿþ")));
    assert!(p.ping(WAIT), "the connection is still up");
    assert_no_panic(&moebi);
}

#[test]
fn malformed_external_term_format_closes_only_that_connection() {
    let (epmd, moebi, port) = moebi(&[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let m = moebi.node_name();
    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");
    let mut bystander = Peer::connect(port, &fake_name("bystander"), COOKIE, OTP25_FLAGS).unwrap();
    assert!(bystander.ping(WAIT));

    let cases = malformed_frames(&bystander).len();
    for i in 0..cases {
        let mut p = Peer::connect(port, &fake_name(&format!("bad{i}")), COOKIE, OTP25_FLAGS)
            .unwrap_or_else(|e| panic!("case {i}: {e}\n{}", moebi.log()));
        let (what, body) = malformed_frames(&p).swap_remove(i);
        p.send_frame(&body).unwrap();
        assert!(
            closed_within(&mut p.stream, WAIT).is_some(),
            "{what}: the connection is closed\n{}",
            moebi.log()
        );
    }
    // Random mutations of a well-formed message: whatever they become, the node lives.
    let good = {
        let p = Peer::connect(port, &fake_name("template"), COOKIE, OTP25_FLAGS).unwrap();
        let mut msg = vec![131];
        fakepeer::tuple(vec![
            eetf::Term::from(p.pid(1)),
            eetf::Term::from(eetf::List::from(vec![
                fakepeer::int(1),
                fakepeer::atom("two"),
            ])),
        ])
        .encode(&mut msg)
        .unwrap();
        reg_send_raw(&p, "echo", &msg[1..])
    };
    let mut rng = Rng(7);
    for i in 0..30 {
        let mut body = good.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % body.len();
            body[at] = rng.next() as u8;
        }
        let mut p =
            Peer::connect(port, &fake_name(&format!("mut{i}")), COOKIE, OTP25_FLAGS).unwrap();
        p.send_frame(&body).unwrap();
        // Either refused (closed) or taken as some message: both fine, the node lives.
        let _ = closed_within(&mut p.stream, Duration::from_millis(50));
    }
    assert!(bystander.ping(WAIT), "{}", moebi.log());
    assert!(alex.eval("Node.list()").contains(&m));
    assert!(
        !moebi
            .log()
            .contains(&format!("node down: {}", alex.node_name())),
        "{}",
        moebi.log()
    );
    chats(&alex, &moebi, "still well formed");
    assert_no_panic(&moebi);
}

// ------------------------------------------------------------------- messages ----

fn op_of(control: &eetf::Term) -> Option<i32> {
    match control {
        eetf::Term::Tuple(t) => match t.elements.first() {
            Some(eetf::Term::FixInteger(i)) => Some(i.value),
            _ => None,
        },
        _ => None,
    }
}

/// A signal whose sender is a process of a third node: the BEAM takes it for an
/// invalid message and closes the connection, so a peer cannot speak for processes
/// that are not its own; the process it was aimed at lives on.
#[test]
fn signals_in_the_name_of_another_nodes_process_close_the_connection() {
    use eetf::Term;
    use fakepeer::{atom, int, tuple};
    let (_epmd, moebi, port) = moebi(&[]);
    let third = Term::from(eetf::Pid::new("elsewhere@localhost", 1, 0, 1));
    let mut p = Peer::connect(port, &fake_name("caller"), COOKIE, OTP25_FLAGS).unwrap();
    let call = |p: &mut Peer| {
        let from = tuple(vec![Term::from(p.pid(1)), Term::from(p.reference(1))]);
        p.reg_send("echo", tuple(vec![atom("$gen_call"), from, atom("hi")]))
            .unwrap();
        let (control, _) = p
            .next_message_where(WAIT, |c, _| op_of(c) == Some(22))
            .expect("echo's reply");
        match control {
            Term::Tuple(t) => t.elements[1].clone(),
            _ => unreachable!(),
        }
    };
    let echo = call(&mut p);
    let r = Term::from(p.reference(2));
    for (what, control) in [
        (
            "EXIT2",
            vec![int(8), third.clone(), echo.clone(), atom("kill")],
        ),
        ("LINK", vec![int(1), third.clone(), echo.clone()]),
        (
            "EXIT",
            vec![int(3), third.clone(), echo.clone(), atom("kill")],
        ),
        (
            "MONITOR_P",
            vec![int(19), third.clone(), echo.clone(), r.clone()],
        ),
    ] {
        let mut spoof = Peer::connect(port, &fake_name("spoof"), COOKIE, OTP25_FLAGS).unwrap();
        spoof.send_control(tuple(control), None).unwrap();
        assert!(closed_within(&mut spoof.stream, WAIT).is_some(), "{what}");
        let said = format!("invalid distribution message: {what} from #PID<elsewhere@localhost");
        assert!(moebi.wait_for_log(&said, WAIT), "{what}: {}", moebi.log());
    }
    assert_eq!(call(&mut p), echo, "echo lives on, the same process");
    assert_no_panic(&moebi);
}

#[test]
fn meaningless_control_messages_are_answered_or_dropped() {
    use eetf::Term;
    use fakepeer::{atom, int, tuple};
    let (_epmd, moebi, port) = moebi(&[]);
    let moebi_name = moebi.node_name();
    let nobody = Term::from(eetf::Pid::new(moebi_name.as_str(), 30000, 0, 0));

    // Operations nobody defines close the connection, as a BEAM node closes it, with
    // its words in the log (once, where a flood of them would log each).
    for (control, payload) in [
        (tuple(vec![int(99)]), None),
        (tuple(vec![int(1000), atom("x")]), Some(atom("y"))),
    ] {
        let mut p = Peer::connect(port, &fake_name("unknown"), COOKIE, OTP25_FLAGS).unwrap();
        p.send_control(control, payload).unwrap();
        for _ in 0..1000 {
            if p.send_control(tuple(vec![int(99)]), None).is_err() {
                break;
            }
        }
        assert!(closed_within(&mut p.stream, WAIT).is_some());
    }
    assert!(moebi.wait_for_log("invalid distribution message: {99}", WAIT));
    assert!(moebi.wait_for_log("invalid distribution message: {1000, :x}", WAIT));
    assert!(
        moebi
            .log()
            .matches("closing connection: invalid distribution message")
            .count()
            == 2,
        "{}",
        moebi.log()
    );

    let mut p = Peer::connect(port, &fake_name("nonsense"), COOKIE, OTP25_FLAGS).unwrap();
    let me = Term::from(p.pid(1));
    let r = Term::from(p.reference(1));

    // LINK to a process that does not exist: an exit signal `noproc` comes back.
    p.send_control(tuple(vec![int(1), me.clone(), nobody.clone()]), None)
        .unwrap();
    let exit = p.next_message_where(WAIT, |c, _| matches!(op_of(c), Some(3 | 24)));
    let (control, payload) = exit.expect("an exit signal for the link");
    let reason = payload.unwrap_or_else(|| match &control {
        Term::Tuple(t) => t.elements[3].clone(),
        _ => unreachable!(),
    });
    assert_eq!(reason, atom("noproc"));

    // MONITOR_P of a name nobody registered: `noproc` at once.
    p.send_control(
        tuple(vec![int(19), me.clone(), atom("nobody_here"), r.clone()]),
        None,
    )
    .unwrap();
    let down = p.next_message_where(WAIT, |c, _| matches!(op_of(c), Some(21 | 28)));
    assert!(down.is_some(), "a monitor of a missing name fires at once");

    // Messages and signals to nobody, from nobody, about nothing.
    let calls = [
        tuple(vec![atom("$gen_call"), atom("not_a_from"), atom("req")]),
        tuple(vec![
            atom("$gen_call"),
            tuple(vec![atom("not_a_pid"), r.clone()]),
            atom("req"),
        ]),
        tuple(vec![
            atom("$gen_call"),
            tuple(vec![me.clone()]),
            atom("req"),
        ]),
        tuple(vec![atom("$gen_call")]),
        tuple(vec![atom("$gen_cast")]),
        tuple(vec![
            atom("$gen_call"),
            tuple(vec![me.clone(), r.clone()]),
            atom("nonsense"),
        ]),
        tuple(vec![atom("io_request"), atom("x"), atom("y"), atom("z")]),
        tuple(vec![
            atom("io_request"),
            me.clone(),
            r.clone(),
            tuple(vec![atom("put_chars")]),
        ]),
        tuple(vec![atom("io_request"), me.clone(), r.clone(), int(5)]),
        Term::from(eetf::List::from(vec![atom("a"); 3])),
        tuple(vec![]),
    ];
    for name in [
        "echo",
        "net_kernel",
        "rex",
        "user",
        "global_name_server",
        "Elixir.Chat.TaskSupervisor",
        "nobody_here",
    ] {
        for c in &calls {
            p.reg_send(name, c.clone()).unwrap();
        }
    }
    let ctl = |v: Vec<Term>| p_ctl(v);
    for (control, payload) in [
        (
            ctl(vec![int(2), atom(""), nobody.clone()]),
            Some(atom("hi")),
        ),
        (
            ctl(vec![int(22), me.clone(), nobody.clone()]),
            Some(atom("hi")),
        ),
        (
            ctl(vec![int(3), me.clone(), nobody.clone(), atom("kill")]),
            None,
        ),
        (
            ctl(vec![int(8), me.clone(), nobody.clone(), atom("kill")]),
            None,
        ),
        (ctl(vec![int(4), me.clone(), nobody.clone()]), None),
        (ctl(vec![int(7), me.clone(), nobody.clone()]), None),
        (
            ctl(vec![int(20), me.clone(), atom("nobody_here"), r.clone()]),
            None,
        ),
        (
            ctl(vec![
                int(21),
                me.clone(),
                nobody.clone(),
                r.clone(),
                atom("x"),
            ]),
            None,
        ),
        (
            ctl(vec![int(33), me.clone(), r.clone()]),
            Some(atom("to an alias of nobody")),
        ),
        (ctl(vec![int(35), int(1), me.clone(), nobody.clone()]), None),
        (ctl(vec![int(36), int(1), me.clone(), nobody.clone()]), None),
        (
            ctl(vec![
                int(31),
                r.clone(),
                nobody.clone(),
                int(0),
                atom("notsup"),
            ]),
            None,
        ),
        (ctl(vec![int(5)]), None),
        // SPAWN_REQUEST with an arity that does not match its arguments, of a function
        // nobody registered, and of erpc:execute_call with the wrong arguments.
        (
            ctl(vec![
                int(29),
                r.clone(),
                me.clone(),
                me.clone(),
                tuple(vec![atom("Elixir.Chat"), atom("receive_message"), int(1)]),
                Term::from(eetf::List::nil()),
            ]),
            Some(Term::from(eetf::List::nil())),
        ),
        (
            ctl(vec![
                int(29),
                r.clone(),
                me.clone(),
                me.clone(),
                tuple(vec![atom("erpc"), atom("execute_call"), int(4)]),
                Term::from(eetf::List::from(vec![atom("monitor"), atom("link")])),
            ]),
            Some(Term::from(eetf::List::from(vec![atom("a")]))),
        ),
    ] {
        p.send_control(control, payload).unwrap();
    }
    // Requests nobody understands, carrying a megabyte: logged, in a line of sane size
    // (formatted whole, each would be a 4 MB line).
    let big = Term::from(eetf::Binary::from(vec![b'x'; 1 << 20]));
    for name in [
        "net_kernel",
        "rex",
        "global_name_server",
        "Elixir.Chat.TaskSupervisor",
        "echo",
    ] {
        let from = if name == "echo" {
            atom("not_a_from")
        } else {
            tuple(vec![me.clone(), r.clone()])
        };
        p.reg_send(name, tuple(vec![atom("$gen_call"), from, big.clone()]))
            .unwrap();
    }
    // The connection is up and the node answers; nothing panicked.
    assert!(p.ping(WAIT), "{}", moebi.log());
    assert!(moebi.log().contains("node up"));
    assert!(
        !moebi.log().contains("node down: nonsense"),
        "{}",
        moebi.log()
    );
    let mut unknown = Peer::connect(port, &fake_name("unknown"), COOKIE, OTP25_FLAGS).unwrap();
    unknown
        .send_control(tuple(vec![int(99), big.clone()]), None)
        .unwrap();
    assert!(closed_within(&mut unknown.stream, WAIT).is_some());
    for needle in [
        "net_kernel: unexpected call",
        "rex: unexpected call",
        "global: unexpected call",
        "unexpected call \"xxxxxxxx",
        "malformed From",
    ] {
        assert!(
            moebi.wait_for_log(needle, WAIT),
            "{needle}:\n{}",
            moebi.log()
        );
    }
    let longest = moebi.log().lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2000, "a log line of {longest} bytes");
    assert_no_panic(&moebi);
}

fn p_ctl(v: Vec<eetf::Term>) -> eetf::Term {
    fakepeer::tuple(v)
}

#[test]
fn meaningless_requests_from_a_beam_node_are_answered_as_the_beam_would() {
    let (epmd, moebi, _port) = moebi(&[]);
    let m = moebi.node_name();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    alex.eval("Process.flag(:trap_exit, true)");

    // The wrong arity through Task.Supervisor: the task exits undef, as on a BEAM.
    assert_eq!(
        alex.eval(&format!(
            "task = Task.Supervisor.async({{Chat.TaskSupervisor, :{m}}}, Chat, :receive_message, [])
             try do
               Task.await(task)
             catch
               :exit, {{{{:undef, [{{Chat, :receive_message, [], []}} | _]}}, _}} -> :undef
             end"
        )),
        ":undef"
    );
    assert!(alex.eval("flush()").contains(":undef"));
    // ... and through rpc and erpc.
    assert_eq!(
        alex.eval(&format!(
            "case :rpc.call(:{m}, Chat, :receive_message, [1, 2, 3]) do
               {{:badrpc, {{:EXIT, {{:undef, [{{Chat, :receive_message, [1, 2, 3], []}} | _]}}}}}} -> :badrpc_undef
               other -> other
             end"
        )),
        ":badrpc_undef"
    );
    assert_eq!(
        alex.eval(&format!(
            "try do :erpc.call(:{m}, Chat, :no_such_function, [:x]) catch :error, {{:exception, :undef, _}} -> :undef end"
        )),
        ":undef"
    );
    // A bad argument to a builtin is badarg.
    assert_eq!(
        alex.eval(&format!(
            "case :rpc.call(:{m}, :erlang, :process_info, [:not_a_pid, :status]) do
               {{:badrpc, {{:EXIT, {{:badarg, _}}}}}} -> :badarg
               other -> other
             end"
        )),
        ":badarg"
    );
    // Calls to names nobody registered: noproc at once, as on a BEAM.
    assert_eq!(
        alex.eval(&format!(
            "try do GenServer.call({{:nobody_here, :{m}}}, :hi, 5000) catch :exit, {{:noproc, _}} -> :noproc end"
        )),
        ":noproc"
    );
    assert_eq!(
        alex.eval(&format!(
            "ref = Process.monitor({{:nobody_here, :{m}}})
             receive do {{:DOWN, ^ref, :process, _, reason}} -> reason after 5000 -> :none end"
        )),
        ":noproc"
    );
    assert_eq!(
        alex.eval(&format!("send({{:nobody_here, :{m}}}, :hi)")),
        ":hi"
    );
    // Calls with a bad `from`, and calls a server does not understand.
    for msg in [
        "{:\"$gen_call\", :bad_from, :req}",
        "{:\"$gen_call\", {self()}, :req}",
        "{:\"$gen_call\", {:not_a_pid, make_ref()}, :req}",
        "{:\"$gen_call\"}",
        "{:\"$gen_cast\"}",
    ] {
        for name in [
            "echo",
            "net_kernel",
            "rex",
            "Chat.TaskSupervisor",
            "global_name_server",
        ] {
            alex.eval(&format!("send({{:\"{name}\", :{m}}}, {msg})"));
        }
    }
    assert_eq!(
        alex.eval(&format!(
            "try do GenServer.call({{Chat.TaskSupervisor, :{m}}}, :nonsense, 1000) catch :exit, _ -> :exited end"
        )),
        ":exited"
    );
    // Spawns that cannot work: the process exits, the caller sees why.
    assert_eq!(
        alex.eval(&format!(
            "pid = Node.spawn_link(:{m}, Moebi, :wait, [\"not an atom\"])
             receive do {{:EXIT, ^pid, {{:badarg, _}}}} -> :badarg after 5000 -> flush() end"
        )),
        ":badarg"
    );
    assert_eq!(
        alex.eval(&format!(
            "pid = Node.spawn_link(:{m}, Chat, :receive_message_for_moebi, [\"hi\", \"not a node\"])
             receive do {{:EXIT, ^pid, {{:function_clause, [{{GenServer, :whereis, _, _}} | _]}}}} -> :function_clause after 5000 -> flush() end"
        )),
        ":function_clause"
    );
    // After all that, the echo server answers and Moebi chats.
    assert_eq!(
        alex.eval(&format!("GenServer.call({{:echo, :{m}}}, :still_there)")),
        ":still_there"
    );
    chats(&alex, &moebi, "after the nonsense");
    assert_no_panic(&moebi);
}

#[test]
fn a_panicking_rust_function_is_an_exit_of_that_one_process() {
    let (epmd, moebi, _port) = moebi(&[]);
    let m = moebi.node_name();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    let reason = "{{:rust_panic, \"Moebi panicked on purpose\"}, _}";

    // A monitor sees DOWN with the panic as reason, as it would a raise.
    assert_eq!(
        alex.eval(&format!(
            "{{pid, ref}} = :erlang.spawn_monitor(:{m}, Moebi, :panic, [])
             receive do {{:DOWN, ^ref, :process, ^pid, {reason}}} -> :down after 5000 -> flush() end"
        )),
        ":down"
    );
    // A link: the exit signal.
    alex.eval("Process.flag(:trap_exit, true)");
    assert_eq!(
        alex.eval(&format!(
            "pid = Node.spawn_link(:{m}, Moebi, :panic, [])
             receive do {{:EXIT, ^pid, {reason}}} -> :exit after 5000 -> flush() end"
        )),
        ":exit"
    );
    // A task: Task.yield says it exited; rpc and erpc report it.
    assert_eq!(
        alex.eval(&format!(
            "task = Task.Supervisor.async_nolink({{Chat.TaskSupervisor, :{m}}}, Moebi, :panic, [])
             case Task.yield(task, 5000) do {{:exit, {reason}}} -> :task_exit; other -> other end"
        )),
        ":task_exit"
    );
    assert_eq!(
        alex.eval(&format!(
            "case :rpc.call(:{m}, Moebi, :panic, []) do {{:badrpc, {{:EXIT, {reason}}}}} -> :badrpc; other -> other end"
        )),
        ":badrpc"
    );
    // With the frame of the panic, named as the function was registered.
    let line = include_str!("../examples/moebi.rs")
        .lines()
        .position(|l| l.trim() == "panic!(\"Moebi panicked on purpose\");")
        .expect("Moebi panics")
        + 1;
    assert_eq!(
        alex.eval(&format!(
            "{{:badrpc, {{:EXIT, {{_, stack}}}}}} = :rpc.call(:{m}, Moebi, :panic, [])
             Exception.format_stacktrace(stack)"
        )),
        format!("\"    examples/moebi.rs:{line}: Moebi.panic/0\\n\"")
    );
    // Logged here in one line with the process and where it panicked.
    assert!(
        moebi.wait_for_log(&format!("panicked at examples/moebi.rs:{line}:"), WAIT)
            && moebi
                .log()
                .lines()
                .any(|l| l.contains(&format!("#PID<{m}."))
                    && l.contains(&format!("panicked at examples/moebi.rs:{line}:"))
                    && l.ends_with(": Moebi panicked on purpose")),
        "{}",
        moebi.log()
    );
    // Many at once: each one is its own process's exit.
    assert_eq!(
        alex.eval(&format!(
            "1..50
             |> Enum.map(fn _ -> :erlang.spawn_monitor(:{m}, Moebi, :panic, []) end)
             |> Enum.map(fn {{pid, ref}} ->
                  receive do {{:DOWN, ^ref, :process, ^pid, {reason}}} -> :down after 5000 -> :none end
                end)
             |> Enum.uniq()"
        )),
        "[:down]"
    );
    // Moebi keeps serving.
    assert_eq!(alex.eval(&format!("Node.ping(:{m})")), ":pong");
    chats(&alex, &moebi, "are you ok?");
    assert_eq!(
        alex.eval(&format!("GenServer.call({{:echo, :{m}}}, :fine)")),
        ":fine"
    );
    assert_no_panic(&moebi);
}

// --------------------------------------------------------------------- memory ----

/// One round of most of the attacks above, against one node.
fn battery(port: u16, moebi: &RustNode, alex: &BeamNode, round: usize) {
    use eetf::Term;
    use fakepeer::{atom, int, tuple};
    let m = moebi.node_name();
    let name = |what: &str| fake_name(&format!("r{round}{what}"));
    // Handshakes: wrong cookies, garbage, half-open sockets.
    for i in 0..3 {
        assert!(Peer::connect(port, &name(&format!("mallory{i}")), "wrong", OTP25_FLAGS).is_err());
    }
    for (_, bytes) in garbage_openings() {
        let mut s = raw(port);
        let _ = s.write_all(&bytes);
        assert!(closed_within(&mut s, WAIT).is_some());
    }
    let half_open: Vec<_> = (0..300).map(|_| raw(port)).collect();
    std::thread::sleep(Duration::from_millis(200));
    drop(half_open);
    // Frames: lying lengths, too deep, malformed, meaningless.
    let mut liar = Peer::connect(port, &name("liar"), COOKIE, OTP25_FLAGS).unwrap();
    liar.send_raw(&(120u32 << 20).to_be_bytes()).unwrap();
    liar.send_raw(&[1; 1024]).unwrap();
    let mut huge = Peer::connect(port, &name("huge"), COOKIE, OTP25_FLAGS).unwrap();
    huge.send_raw(&u32::MAX.to_be_bytes()).unwrap();
    assert!(closed_within(&mut huge.stream, WAIT).is_some());
    let mut deep = Peer::connect(port, &name("deep"), COOKIE, OTP25_FLAGS).unwrap();
    let body = reg_send_raw(&deep, "echo", &fakepeer::nested_list(2_000_000));
    deep.send_frame(&body).unwrap();
    assert!(closed_within(&mut deep.stream, WAIT).is_some());
    let cases = malformed_frames(&liar).len();
    for i in 0..cases {
        let mut p = Peer::connect(port, &name(&format!("bad{i}")), COOKIE, OTP25_FLAGS).unwrap();
        let (what, body) = malformed_frames(&p).swap_remove(i);
        p.send_frame(&body).unwrap();
        assert!(closed_within(&mut p.stream, WAIT).is_some(), "{what}");
    }
    let mut unknown = Peer::connect(port, &name("unknown"), COOKIE, OTP25_FLAGS).unwrap();
    unknown.send_control(tuple(vec![int(99)]), None).unwrap();
    assert!(closed_within(&mut unknown.stream, WAIT).is_some());
    let mut p = Peer::connect(port, &name("nonsense"), COOKIE, OTP25_FLAGS).unwrap();
    let me = Term::from(p.pid(1));
    let r = Term::from(p.reference(1));
    let big = Term::from(eetf::Binary::from(vec![b'x'; 4 << 20]));
    for name in [
        "net_kernel",
        "rex",
        "Elixir.Chat.TaskSupervisor",
        "echo",
        "nobody",
    ] {
        // A call the Task.Supervisor does not know crashes it (function_clause, as a
        // DynamicSupervisor), and four such crashes in 5 s take the Chat tree down, as
        // on a BEAM node (ns::a_task_supervisor_in_a_crash_loop_takes_the_chat_tree_down):
        // the batteries run back to back, so it gets the malformed call only.
        if name != "Elixir.Chat.TaskSupervisor" {
            p.reg_send(
                name,
                tuple(vec![
                    atom("$gen_call"),
                    tuple(vec![me.clone(), r.clone()]),
                    big.clone(),
                ]),
            )
            .unwrap();
        }
        p.reg_send(name, tuple(vec![atom("$gen_call"), atom("bad"), atom("x")]))
            .unwrap();
    }
    p.send_control(
        tuple(vec![
            int(1),
            me.clone(),
            Term::from(eetf::Pid::new(m.as_str(), 9, 9, 0)),
        ]),
        None,
    )
    .unwrap();
    assert!(p.ping(WAIT));
    drop(p);
    drop(liar);
    // Requests from a BEAM node: the wrong arity, panics, large messages.
    assert_eq!(
        alex.eval(&format!(
            "task = Task.Supervisor.async_nolink({{Chat.TaskSupervisor, :{m}}}, Chat, :receive_message, [])
             case Task.yield(task, 5000) do {{:exit, {{:undef, _}}}} -> :undef; other -> other end"
        )),
        ":undef"
    );
    assert_eq!(
        alex.eval(&format!(
            "1..20
             |> Enum.map(fn _ -> :erlang.spawn_monitor(:{m}, Moebi, :panic, []) end)
             |> Enum.map(fn {{_, ref}} -> receive do {{:DOWN, ^ref, _, _, {{{{:rust_panic, _}}, _}}}} -> :down after 5000 -> :none end end)
             |> Enum.uniq()"
        )),
        "[:down]"
    );
    assert_eq!(
        alex.eval(&format!(
            "1..5 |> Enum.map(fn _ -> byte_size(GenServer.call({{:echo, :{m}}}, :binary.copy(\"y\", 1_000_000))) end) |> Enum.uniq()"
        )),
        "[1000000]"
    );
    chats(alex, moebi, &format!("round {round} done"));
}

/// Moebi's resident memory once its allocator has had the time to give back what it
/// keeps for reuse ([`cnode::reuse_freed_memory`]: free memory seen at two looks a
/// second apart), in KiB.
fn settled_rss(moebi: &RustNode) -> u64 {
    std::thread::sleep(Duration::from_secs(3));
    fakepeer::rss_kib(moebi.os_pid())
}

#[test]
fn memory_stays_flat_under_a_battery_of_attacks() {
    let (epmd, moebi, port) = moebi(&["--net-setuptime", "2"]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    // Warm-up: the allocator, the tables and the log reach their working size.
    battery(port, &moebi, &alex, 0);
    battery(port, &moebi, &alex, 1);
    let before = settled_rss(&moebi);
    for round in 2..5 {
        battery(port, &moebi, &alex, round);
    }
    // Memory freed is given back within about 2 s of the last use.
    let after = fakepeer::rss_down_to(moebi.os_pid(), before + 4 * 1024, Duration::from_secs(20));
    eprintln!("moebi VmRSS: {before} KiB after the warm-up, {after} KiB after 3 more rounds");
    assert!(
        after <= before + 4 * 1024,
        "VmRSS grew from {before} KiB to {after} KiB"
    );
    chats(&alex, &moebi, "all done");
    assert_no_panic(&moebi);
}

// ---------------------------------------------------------- distribution header ----

/// Waits until Moebi's log says it closed `peer`'s connection for `reason` (part of it).
fn closed_for(moebi: &RustNode, peer: &str, reason: &str) -> bool {
    let peer = format!("peer={peer}");
    let deadline = Instant::now() + WAIT;
    loop {
        let logged = moebi
            .log()
            .lines()
            .any(|l| l.contains("closing connection: ") && l.contains(reason) && l.contains(&peer));
        if logged {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fake peer that speaks the distribution header (the atom cache and fragments, as a
/// BEAM does), once Moebi answered its ping.
fn headed_peer(port: u16, moebi: &RustNode, name: &str) -> Peer {
    let mut p = Peer::connect(port, name, COOKIE, fakepeer::HEADED_FLAGS)
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", moebi.log()));
    assert!(p.headed, "both sides have the header");
    assert!(p.ping(WAIT), "{name}: no answer to a ping\n{}", moebi.log());
    p
}

/// `SMALL_ATOM_UTF8_EXT`, without a version byte.
fn small_atom(name: &str) -> Vec<u8> {
    [&[119, name.len() as u8][..], name.as_bytes()].concat()
}

/// `BINARY_EXT`, without a version byte.
fn binary_ext(bytes: &[u8]) -> Vec<u8> {
    [&[109][..], &(bytes.len() as u32).to_be_bytes(), bytes].concat()
}

/// A pid, without a version byte.
fn pid_ext(pid: &eetf::Pid) -> Vec<u8> {
    fakepeer::unversioned(&eetf::Term::from(pid.clone()))
}

/// `{6, From, '', To}` (REG_SEND) without a version byte, `to` as given: an atom, or an
/// `ATOM_CACHE_REF` (`[82, n]`).
fn reg_send_control(from: &eetf::Pid, to: &[u8]) -> Vec<u8> {
    [&[104, 4, 97, 6][..], &pid_ext(from), &small_atom(""), to].concat()
}

/// `{a, b}` of two terms without version bytes.
fn pair(a: &[u8], b: &[u8]) -> Vec<u8> {
    [&[104, 2][..], a, b].concat()
}

/// The pid of `node`'s evaluator process (the one `eval` runs in, the same every time).
fn evaluator_pid(node: &BeamNode) -> eetf::Pid {
    let text = node.eval("Enum.join(:binary.bin_to_list(:erlang.term_to_binary(self())), \",\")");
    let bytes: Vec<u8> = text
        .trim_matches('"')
        .split(',')
        .map(|b| b.parse().unwrap())
        .collect();
    match eetf::Term::decode(&bytes[..]).unwrap() {
        eetf::Term::Pid(pid) => pid,
        other => panic!("not a pid: {other}"),
    }
}

/// A REG_SEND of `x` to `echo` (which ignores it), cut in two after 10 bytes: a
/// message to send in two fragments.
fn two_parts(peer: &Peer) -> (Vec<u8>, Vec<u8>) {
    let terms = [
        reg_send_control(&peer.pid(1), &small_atom("echo")),
        small_atom("x"),
    ]
    .concat();
    let (a, b) = terms.split_at(10);
    (a.to_vec(), b.to_vec())
}

/// Attacks on one connection each: what it is, the frames, and (part of) the reason
/// Moebi's log gives for closing the connection.
type Cases = Vec<(&'static str, Vec<Vec<u8>>, &'static str)>;

/// Fragments no BEAM sends, each with the reason Moebi closes the connection for.
fn bad_fragments(peer: &Peer) -> Cases {
    let (a, b) = two_parts(peer);
    let none = cache_header(&[]);
    vec![
        (
            "out of order",
            vec![frag_header(1, 3, &none, &a), frag_cont(1, 1, &b)],
            "fragment 1 of sequence 1 where fragment 2 was due",
        ),
        (
            "a fragment twice",
            vec![
                frag_header(1, 3, &none, &a),
                frag_cont(1, 2, &b),
                frag_cont(1, 2, &b),
            ],
            "fragment 2 of sequence 1 where fragment 1 was due",
        ),
        (
            "a sequence never started",
            vec![frag_cont(7, 1, &b)],
            "fragment 1 of sequence 7, which was never started",
        ),
        (
            "a sequence already finished",
            vec![
                frag_header(2, 2, &none, &a),
                frag_cont(2, 1, &b),
                frag_cont(2, 1, &b),
            ],
            "fragment 1 of sequence 2, which was never started",
        ),
        (
            "a sequence started twice",
            vec![frag_header(5, 3, &none, &a), frag_header(5, 3, &none, &a)],
            "sequence 5 started twice",
        ),
        (
            "fragment id 0",
            vec![frag_header(1, 0, &none, &a)],
            "fragment id 0 in sequence 1",
        ),
    ]
}

/// Atom cache references to entries never set, each with Moebi's reason.
fn unset_references(peer: &Peer) -> Cases {
    let (a, _) = two_parts(peer);
    let to_ref = |n: u8, payload: &[u8]| {
        [reg_send_control(&peer.pid(1), &[82, n]), payload.to_vec()].concat()
    };
    vec![
        (
            "entry 0 of a fresh connection",
            vec![headed(
                &cache_header(&[(0, None)]),
                &to_ref(0, &small_atom("x")),
            )],
            "atom cache reference to entry 0, which was never set",
        ),
        (
            "an entry set, then the one next to it",
            vec![
                headed(
                    &cache_header(&[(5, Some("echo"))]),
                    &to_ref(0, &small_atom("x")),
                ),
                headed(&cache_header(&[(5, None)]), &to_ref(0, &small_atom("x"))),
                headed(&cache_header(&[(6, None)]), &to_ref(0, &small_atom("x"))),
            ],
            "atom cache reference to entry 6, which was never set",
        ),
        (
            "an unset entry in a first fragment's header",
            vec![frag_header(1, 2, &cache_header(&[(1234, None)]), &a)],
            "atom cache reference to entry 1234, which was never set",
        ),
        (
            "a reference past the header's list",
            vec![headed(
                &cache_header(&[(5, Some("echo"))]),
                &to_ref(0, &[82, 3]),
            )],
            "atom cache reference 3 at byte",
        ),
        (
            "a reference in a frame whose header lists none",
            vec![headed(&cache_header(&[]), &to_ref(0, &small_atom("x")))],
            "atom cache reference 0 at byte",
        ),
    ]
}

/// Distribution headers whose counts and lengths promise more than the frame holds, and
/// frames that have none where one is due, each with Moebi's reason.
fn lying_headers(peer: &Peer) -> Cases {
    let message = [
        reg_send_control(&peer.pid(1), &small_atom("echo")),
        small_atom("x"),
    ]
    .concat();
    let truncated = "distribution header truncated";
    let mut pass_through = vec![fakepeer::PASS_THROUGH];
    for t in [
        reg_send_control(&peer.pid(1), &small_atom("echo")),
        small_atom("x"),
    ] {
        pass_through.push(131);
        pass_through.extend_from_slice(&t);
    }
    vec![
        (
            "200 references, one there",
            vec![headed(&[200, 0x08, 5, 4, b'e', b'c', b'h', b'o'], &[])],
            truncated,
        ),
        (
            "5 references, flags cut short",
            vec![headed(&[5, 0x88], &[])],
            truncated,
        ),
        (
            "an atom of 200 bytes, 2 there",
            vec![headed(&[1, 0x08, 5, 200, b'e', b'c'], &[])],
            truncated,
        ),
        (
            "a long atom of 65,535 bytes, 1 there",
            vec![headed(&[1, 0x18, 5, 0xff, 0xff, b'x'], &[])],
            truncated,
        ),
        ("nothing after 131, 68", vec![vec![131, 68]], truncated),
        (
            "fragment ids cut short",
            vec![[&[131, 69][..], &[0; 7], &[1], &[0; 3]].concat()],
            truncated,
        ),
        (
            "a continuation's ids cut short",
            vec![vec![131, 70, 0, 0, 1]],
            truncated,
        ),
        (
            "an atom that is not UTF-8",
            vec![headed(&[1, 0x08, 5, 2, 0xff, 0xfe], &message)],
            "atom in the distribution header is not UTF-8",
        ),
        (
            "an atom of 256 characters",
            vec![headed(
                &[&[1, 0x18, 5, 1, 0][..], &[b'x'; 256]].concat(),
                &message,
            )],
            "refused in the distribution header: atom of more than 255 characters",
        ),
        (
            "a pass-through frame",
            vec![pass_through],
            "frame without a distribution header (tag 112) after the header was negotiated",
        ),
        (
            "an unknown header",
            vec![[&[131, 71, 0][..], &message].concat()],
            "frame without a distribution header (tag 71)",
        ),
    ]
}

/// Runs each case on a headed connection of its own: that connection is closed, and
/// Moebi's log names the peer and the reason.
fn each_closes(port: u16, moebi: &RustNode, prefix: &str, cases: fn(&Peer) -> Cases) {
    let count = cases(&headed_peer(port, moebi, &fake_name(prefix))).len();
    for i in 0..count {
        let name = fake_name(&format!("{prefix}{i}"));
        let mut p = headed_peer(port, moebi, &name);
        let (what, frames, reason) = cases(&p).swap_remove(i);
        for f in &frames {
            // The node may close the socket before the last frames.
            let _ = p.send_frame(f);
        }
        assert!(
            closed_within(&mut p.stream, WAIT).is_some(),
            "{what}: the connection is closed\n{}",
            moebi.log()
        );
        assert!(
            closed_for(moebi, &name, reason),
            "{what}: Moebi logs {reason:?} for {name}\n{}",
            moebi.log()
        );
    }
}

/// What the hostile header tests check at their end: a pass-through peer and a headed
/// one that were connected all along still get answers, the BEAM node never lost its
/// connection and still chats.
fn nobody_else_noticed(
    moebi: &RustNode,
    alex: &BeamNode,
    bystanders: &mut [&mut Peer],
    text: &str,
) {
    for b in bystanders.iter_mut() {
        assert!(
            b.ping(WAIT),
            "{} no longer answered\n{}",
            b.name,
            moebi.log()
        );
    }
    assert!(alex.eval("Node.list()").contains(&moebi.node_name()));
    assert!(
        !moebi
            .log()
            .contains(&format!("node down: {}", alex.node_name())),
        "{}",
        moebi.log()
    );
    chats(alex, moebi, text);
    assert_no_panic(moebi);
}

/// Moebi, a real BEAM node (alex) connected to it, and a fake peer with the distribution
/// header: where the fragment tests send their messages, through Moebi's `echo`, to
/// alex's evaluator (`alex_pid`).
struct Scene {
    _epmd: Epmd,
    moebi: RustNode,
    port: u16,
    alex: BeamNode,
    alex_pid: Vec<u8>,
    p: Peer,
}

fn scene(peer: &str) -> Scene {
    let (epmd, moebi, port) = moebi(&[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{})", moebi.node_name())),
        ":pong"
    );
    let alex_pid = pid_ext(&evaluator_pid(&alex));
    let p = headed_peer(port, &moebi, &fake_name(peer));
    alex.eval("flush()");
    Scene {
        _epmd: epmd,
        moebi,
        port,
        alex,
        alex_pid,
        p,
    }
}

impl Scene {
    /// The terms of `{alex, {tag, value}}` sent by `from` to `echo` (cache entry 0 of
    /// its frame's header).
    fn to_alex(&self, from: &eetf::Pid, tag: &[u8], value: &[u8]) -> Vec<u8> {
        [
            reg_send_control(from, &[82, 0]),
            pair(&self.alex_pid, &pair(tag, value)),
        ]
        .concat()
    }

    /// `{alex, {:small, k}}` from our pid 2, in a frame of its own, `echo` by cache
    /// entry 0x123 (set by the frames before it).
    fn small(&self, k: u8) -> Vec<u8> {
        let terms = self.to_alex(&self.p.pid(2), &small_atom("small"), &[97, k]);
        headed(&cache_header(&[(0x123, None)]), &terms)
    }

    /// What the next `n` messages to alex are: `small<k>` or `<tag>:<size>:<md5>`.
    fn received(&self, n: u64) -> String {
        self.alex.eval(&format!(
            "Enum.map_join(1..{n}, \" \", fn _ ->
               receive do
                 {{:small, k}} -> \"small#{{k}}\"
                 {{tag, b}} when is_binary(b) ->
                   \"#{{tag}}:#{{byte_size(b)}}:#{{Base.encode16(:erlang.md5(b), case: :lower)}}\"
               after 30_000 -> \"nothing\"
               end
             end)"
        ))
    }

    /// The peer's connection is fine and none was refused; alex and Moebi still chat.
    fn all_well(&mut self, text: &str) {
        let log = || self.moebi.log();
        assert!(self.p.ping(WAIT), "{}", log());
        assert!(!log().contains("closing connection"), "{}", log());
        chats(&self.alex, &self.moebi, text);
        assert_no_panic(&self.moebi);
    }
}

/// A message of 1 MiB in 64 KiB fragments, as a BEAM sends one: the first fragment's
/// header sets atom cache entries that the frames between its fragments already use;
/// small messages from other processes and a second fragmented message (200 KB) come
/// between its fragments. Moebi's `echo` forwards each to a real BEAM process once it
/// is whole: intact (md5), in the order they were completed.
#[test]
fn a_fragmented_message_is_delivered_with_others_between_its_fragments() {
    let mut sc = scene("frag");
    let mut rng = Rng(0xf4a9_1e55);
    let big = rng.bytes(1 << 20);
    let second = rng.bytes(200_000);
    let hex = |b: &[u8]| format!("{:x}", md5::compute(b));

    // From our pid 1: {alex, {:big, Big}} to echo, 'echo' and 'big' new entries.
    let big_terms = sc.to_alex(&sc.p.pid(1), &[82, 1], &binary_ext(&big));
    let big_header = cache_header(&[(0x123, Some("echo")), (0x456, Some("big"))]);
    // From pid 3: {alex, {:second, Bin}}, 'echo' by its entry alone.
    let second_terms = sc.to_alex(&sc.p.pid(3), &[82, 1], &binary_ext(&second));
    let second_header = cache_header(&[(0x123, None), (0x789, Some("second"))]);
    let fragments = |seq: u64, header: &[u8], terms: &[u8]| -> Vec<Vec<u8>> {
        let chunks: Vec<&[u8]> = terms.chunks(64 * 1024).collect();
        let n = chunks.len() as u64;
        let mut out = vec![frag_header(seq, n, header, chunks[0])];
        for (i, c) in chunks.iter().enumerate().skip(1) {
            out.push(frag_cont(seq, n - i as u64, c));
        }
        out
    };
    let big_frags = fragments(0x0000_0048_0000_0093, &big_header, &big_terms);
    let mut second_frags = fragments(7, &second_header, &second_terms).into_iter();
    assert_eq!(big_frags.len(), 17);
    assert_eq!(second_frags.len(), 4);

    for (i, f) in big_frags.iter().enumerate() {
        let small = |k| sc.small(k);
        let frames = match i {
            0 => vec![small(1)],
            2 => vec![second_frags.next().unwrap(), small(2)],
            3..=5 => vec![second_frags.next().unwrap()],
            6 => vec![small(3)],
            _ => vec![],
        };
        sc.p.send_frame(f).unwrap();
        for frame in frames {
            sc.p.send_frame(&frame).unwrap();
        }
    }
    let small4 = sc.small(4);
    sc.p.send_frame(&small4).unwrap();

    let expected = format!(
        "small1 small2 second:200000:{} small3 big:1048576:{} small4",
        hex(&second),
        hex(&big)
    );
    assert_eq!(
        sc.received(6),
        format!("{expected:?}"),
        "{}",
        sc.moebi.log()
    );
    sc.all_well("in one piece");
}

/// A fragmented message whose frames arrive a few pieces at a time, as a slow or busy
/// network hands them over: each continuation fragment cut inside its 18-byte header,
/// then after a few kilobytes, with a small message from another process after each
/// fragment. It arrives intact (md5), after the small messages sent before its last
/// fragment; a peer that closes in the middle of a fragment loses only its connection.
#[test]
fn a_fragmented_message_arriving_in_pieces_is_delivered_intact() {
    let mut sc = scene("pieces");
    let mut rng = Rng(0x51ce_d00d);
    // Its last fragment as large as the others, nearly.
    let big = rng.bytes((1 << 20) - 2000);
    let hex = |b: &[u8]| format!("{:x}", md5::compute(b));

    // From pid 1: {alex, {:big, Big}} to echo.
    let big_terms = sc.to_alex(&sc.p.pid(1), &[82, 1], &binary_ext(&big));
    let big_header = cache_header(&[(0x123, Some("echo")), (0x456, Some("big"))]);
    let chunks: Vec<&[u8]> = big_terms.chunks(64 * 1024).collect();
    let n = chunks.len() as u64;
    sc.p.send_frame(&frag_header(1, n, &big_header, chunks[0]))
        .unwrap();
    for (i, c) in chunks.iter().enumerate().skip(1) {
        let body = frag_cont(1, n - i as u64, c);
        let frame = [&(body.len() as u32).to_be_bytes()[..], &body].concat();
        // Cut inside the header (at 4 + 9 + i bytes), then a few kilobytes on.
        let cuts = [13 + i, 4096 + 7 * i, frame.len()].map(|c| c.min(frame.len()));
        let mut from = 0;
        for to in cuts {
            sc.p.send_raw(&frame[from..to]).unwrap();
            from = to;
            std::thread::sleep(Duration::from_millis(5));
        }
        if i < chunks.len() - 1 {
            let small = sc.small(i as u8);
            sc.p.send_frame(&small).unwrap();
        }
    }
    let smalls: Vec<String> = (1..n - 1).map(|k| format!("small{k}")).collect();
    let expected = format!("{} big:{}:{}", smalls.join(" "), big.len(), hex(&big));
    assert_eq!(
        sc.received(n - 1),
        format!("{expected:?}"),
        "{}",
        sc.moebi.log()
    );

    // Another peer stops in the middle of a continuation fragment: its connection ends,
    // with the reason; this one and alex's go on.
    let mut q = headed_peer(sc.port, &sc.moebi, &fake_name("halfway"));
    q.send_frame(&frag_header(1, 2, &big_header, chunks[0]))
        .unwrap();
    let body = frag_cont(1, 1, chunks[1]);
    let frame = [&(body.len() as u32).to_be_bytes()[..], &body].concat();
    q.send_raw(&frame[..20_000]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    q.stream.shutdown(std::net::Shutdown::Both).unwrap();
    let reason = "connection closed by peer in the middle of a frame";
    let deadline = Instant::now() + WAIT;
    while !sc.moebi.log().contains(reason) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sc.moebi.log().contains(reason), "{}", sc.moebi.log());
    assert!(sc.p.ping(WAIT), "{}", sc.moebi.log());
    chats(&sc.alex, &sc.moebi, "in pieces");
    assert_no_panic(&sc.moebi);
}

/// Entries set by one frame name their atoms in the next, from the first segment to the
/// last (2047: the 3-bit segment and the index byte can name nothing beyond the cache);
/// a reference to an entry never set, past its header's list, or in a frame whose
/// header lists none closes only that connection, with its reason. The cache is the
/// connection's: a peer that connects again under the same name starts with none.
#[test]
fn atom_cache_references_to_unset_entries_close_only_that_connection() {
    let (epmd, moebi, port) = moebi(&[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{})", moebi.node_name())),
        ":pong"
    );
    let mut bystander = Peer::connect(port, &fake_name("plain"), COOKIE, OTP25_FLAGS).unwrap();
    let mut headed_bystander = headed_peer(port, &moebi, &fake_name("headed"));

    // Set, then used: echo sends the atom of entry 2047 back, twice.
    let mut p = headed_peer(port, &moebi, &fake_name("cached"));
    let terms = [
        reg_send_control(&p.pid(1), &[82, 0]),
        pair(&pid_ext(&p.pid(1)), &[82, 1]),
    ]
    .concat();
    let set = cache_header(&[(5, Some("echo")), (2047, Some("segment_seven"))]);
    let used = cache_header(&[(5, None), (2047, None)]);
    for header in [set, used] {
        p.send_frame(&headed(&header, &terms)).unwrap();
        let echoed = p.next_message_where(WAIT, |_, m| m == Some(&fakepeer::atom("segment_seven")));
        assert!(echoed.is_some(), "{}", moebi.log());
    }

    each_closes(port, &moebi, "unset", unset_references);

    // A peer sets entry 300 and uses it, goes, comes back: entry 300 is unset.
    let name = fake_name("again");
    let to_entry = |p: &Peer, header: &[u8]| {
        let terms = [
            reg_send_control(&p.pid(1), &[82, 0]),
            pair(&pid_ext(&p.pid(1)), &small_atom("back")),
        ]
        .concat();
        headed(header, &terms)
    };
    let mut p = headed_peer(port, &moebi, &name);
    p.send_frame(&to_entry(&p, &cache_header(&[(300, Some("echo"))])))
        .unwrap();
    let back = |m: Option<&eetf::Term>| m == Some(&fakepeer::atom("back"));
    assert!(p.next_message_where(WAIT, |_, m| back(m)).is_some());
    drop(p);
    assert!(
        moebi.wait_for_log(&format!("node down: {name}"), WAIT),
        "{}",
        moebi.log()
    );
    let mut p = headed_peer(port, &moebi, &name);
    p.send_frame(&to_entry(&p, &cache_header(&[(300, None)])))
        .unwrap();
    assert!(closed_within(&mut p.stream, WAIT).is_some());
    assert!(
        closed_for(
            &moebi,
            &name,
            "atom cache reference to entry 300, which was never set"
        ),
        "{}",
        moebi.log()
    );

    nobody_else_noticed(
        &moebi,
        &alex,
        &mut [&mut bystander, &mut headed_bystander],
        "cache checked",
    );
}

/// A header that says it holds more references, or longer atoms, than its frame has;
/// fragment ids cut short; an atom that is not UTF-8; and once the header is
/// negotiated, a frame without one (pass-through, or an unknown header tag): each
/// closes only that connection, with its reason.
#[test]
fn a_lying_distribution_header_closes_only_that_connection() {
    let (epmd, moebi, port) = moebi(&[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{})", moebi.node_name())),
        ":pong"
    );
    let mut bystander = Peer::connect(port, &fake_name("plain"), COOKIE, OTP25_FLAGS).unwrap();
    let mut headed_bystander = headed_peer(port, &moebi, &fake_name("headed"));
    each_closes(port, &moebi, "liar", lying_headers);
    nobody_else_noticed(
        &moebi,
        &alex,
        &mut [&mut bystander, &mut headed_bystander],
        "no lies",
    );
}

/// Fragments out of order, repeated, of a sequence never started or already finished,
/// a sequence started twice, fragment id 0, and a fragment from a peer that did not
/// negotiate FRAGMENTS: each closes only that connection, with its reason.
#[test]
fn fragments_out_of_order_close_only_that_connection() {
    let (epmd, moebi, port) = moebi(&[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{})", moebi.node_name())),
        ":pong"
    );
    let mut bystander = Peer::connect(port, &fake_name("plain"), COOKIE, OTP25_FLAGS).unwrap();
    let mut headed_bystander = headed_peer(port, &moebi, &fake_name("headed"));
    each_closes(port, &moebi, "order", bad_fragments);

    // The atom cache without FRAGMENTS: headed frames, no fragments.
    let name = fake_name("nofrag");
    let flags = OTP25_FLAGS | fakepeer::DIST_HDR_ATOM_CACHE;
    let mut p = Peer::connect(port, &name, COOKIE, flags).unwrap();
    assert!(p.headed && p.ping(WAIT), "{}", moebi.log());
    let (a, _) = two_parts(&p);
    p.send_frame(&frag_header(1, 2, &cache_header(&[]), &a))
        .unwrap();
    assert!(closed_within(&mut p.stream, WAIT).is_some());
    assert!(
        closed_for(
            &moebi,
            &name,
            "fragment header, but FRAGMENTS was not negotiated"
        ),
        "{}",
        moebi.log()
    );

    nobody_else_noticed(
        &moebi,
        &alex,
        &mut [&mut bystander, &mut headed_bystander],
        "in order",
    );
}

/// The fragments of `count` messages from `peer` to echo, each `{peer's pid 1, n}` for n
/// in `from..from + count`: every first fragment, then every last one (all `count` in
/// progress at once).
fn sequences(peer: &Peer, from: u32, count: u32) -> Vec<u8> {
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    for n in from..from + count {
        let terms = [
            reg_send_control(&peer.pid(1), &small_atom("echo")),
            pair(
                &pid_ext(&peer.pid(1)),
                &[&[98][..], &n.to_be_bytes()].concat(),
            ),
        ]
        .concat();
        let (a, b) = terms.split_at(20);
        for (out, body) in [
            (
                &mut firsts,
                frag_header(u64::from(n), 2, &cache_header(&[]), a),
            ),
            (&mut lasts, frag_cont(u64::from(n), 1, b)),
        ] {
            out.extend_from_slice(&(body.len() as u32).to_be_bytes());
            out.extend_from_slice(&body);
        }
    }
    [firsts, lasts].concat()
}

/// 256 fragmented messages in progress at once on one connection are taken (a BEAM has
/// one per process in the middle of sending a large one), and thousands one batch after
/// another: every one is delivered. A peer that starts thousands at once is refused at
/// the 257th, and only its connection closes.
#[test]
fn thousands_of_fragmented_messages_at_once_are_refused_past_256() {
    let (epmd, moebi, port) = moebi(&[]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{})", moebi.node_name())),
        ":pong"
    );
    let mut bystander = Peer::connect(port, &fake_name("plain"), COOKIE, OTP25_FLAGS).unwrap();
    let mut headed_bystander = headed_peer(port, &moebi, &fake_name("headed"));

    let mut p = headed_peer(port, &moebi, &fake_name("many"));
    let total = 256 + 12 * 250;
    let mut sent = 0;
    for count in std::iter::once(256).chain(std::iter::repeat_n(250, 12)) {
        p.send_raw(&sequences(&p, sent, count)).unwrap();
        sent += count;
    }
    assert_eq!(sent, total);
    let mut echoed = vec![false; total as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while echoed.iter().any(|e| !e) {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = p.next_message_where(left, |_, m| matches!(m, Some(eetf::Term::FixInteger(_))));
        let Some((_, Some(eetf::Term::FixInteger(n)))) = got else {
            let missing = echoed.iter().filter(|e| !**e).count();
            panic!("{missing} of {total} never came back\n{}", moebi.log());
        };
        echoed[n.value as usize] = true;
    }
    assert!(p.ping(WAIT));

    // 5,000 at once.
    let name = fake_name("flood");
    let mut flood = headed_peer(port, &moebi, &name);
    let _ = flood.send_raw(&sequences(&flood, 0, 5000));
    assert!(closed_within(&mut flood.stream, WAIT).is_some());
    assert!(
        closed_for(
            &moebi,
            &name,
            "more than 256 fragmented messages in progress at once"
        ),
        "{}",
        moebi.log()
    );
    assert!(p.ping(WAIT), "{}", moebi.log());
    nobody_else_noticed(
        &moebi,
        &alex,
        &mut [&mut bystander, &mut headed_bystander],
        "one at a time",
    );
}

/// Sequences that never finish: a first fragment that announces 2^64 - 1 fragments, or
/// a gigabyte of them, costs Moebi what arrived, not what was announced; while they
/// wait, the connection carries other messages. Each message is bounded by the maximum
/// message size, and what a connection holds for reassembly, over all its sequences,
/// by `--max-reassembly`: past either, only that connection closes.
#[test]
fn a_sequence_never_finished_holds_no_more_than_max_message_size() {
    let (epmd, moebi, port) = moebi(&[
        "--max-message-size",
        "1000000",
        "--max-reassembly",
        "1000000",
    ]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("Node.ping(:{})", moebi.node_name())),
        ":pong"
    );
    let mut bystander = Peer::connect(port, &fake_name("plain"), COOKIE, OTP25_FLAGS).unwrap();
    let mut headed_bystander = headed_peer(port, &moebi, &fake_name("headed"));
    for i in 0..5 {
        let mut p = headed_peer(port, &moebi, &fake_name(&format!("warm{i}")));
        assert!(p.ping(WAIT));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (vm0, rss0) = vm_kib(moebi.os_pid());

    // 10 connections, each with 600 KB of a message of 2^64 - 1 fragments and 1 KiB of
    // one of a gigabyte (16,384 fragments of 64 KiB).
    let (a, _) = two_parts(&headed_bystander);
    let none = cache_header(&[]);
    let chunk = vec![0u8; 60_000];
    let mut waiting: Vec<Peer> = (0..10)
        .map(|i| {
            let mut p = headed_peer(port, &moebi, &fake_name(&format!("wait{i}")));
            p.send_frame(&frag_header(1, u64::MAX, &none, &a)).unwrap();
            for k in 0..10 {
                p.send_frame(&frag_cont(1, u64::MAX - 1 - k, &chunk))
                    .unwrap();
            }
            p.send_frame(&frag_header(
                2,
                1 << 14,
                &none,
                &[&a[..], &[0; 1024]].concat(),
            ))
            .unwrap();
            p
        })
        .collect();
    // Other messages get through meanwhile.
    for p in &mut waiting {
        assert!(p.ping(WAIT), "{}", moebi.log());
    }
    let (vm1, rss1) = vm_kib(moebi.os_pid());
    let sent_kib = 10 * 610_000 / 1024;
    eprintln!("moebi: VmRSS {rss0} -> {rss1} KiB, VmSize {vm0} -> {vm1} KiB, {sent_kib} KiB held");
    assert!(
        rss1 < rss0 + 2 * sent_kib + 4 * 1024,
        "resident memory grew from {rss0} KiB to {rss1} KiB for {sent_kib} KiB held"
    );
    assert!(
        vm1 < vm0 + 512 * 1024,
        "virtual memory grew from {vm0} KiB to {vm1} KiB"
    );
    for p in &mut waiting {
        assert!(closed_within(&mut p.stream, Duration::from_millis(10)).is_none());
    }

    // One of them goes on past the maximum message size.
    let over = "a fragmented message exceeds the maximum message size of 1000000 bytes";
    let mut p = waiting.pop().unwrap();
    for k in 10..20 {
        let _ = p.send_frame(&frag_cont(1, u64::MAX - 1 - k, &chunk));
    }
    assert!(closed_within(&mut p.stream, WAIT).is_some());
    assert!(closed_for(&moebi, &p.name, over), "{}", moebi.log());
    // Three sequences of 400 KB each: over it together.
    let mut p = headed_peer(port, &moebi, &fake_name("three"));
    for seq in 1..=3 {
        let _ = p.send_frame(&frag_header(seq, 10, &none, &a));
        for k in 0..7 {
            let _ = p.send_frame(&frag_cont(seq, 9 - k, &chunk));
        }
    }
    assert!(closed_within(&mut p.stream, WAIT).is_some());
    let together = "fragmented messages in progress exceed 1000000 bytes together";
    assert!(closed_for(&moebi, &p.name, together), "{}", moebi.log());

    // The others are still up.
    for p in &mut waiting {
        assert!(p.ping(WAIT), "{}", moebi.log());
    }
    drop(waiting);
    nobody_else_noticed(
        &moebi,
        &alex,
        &mut [&mut bystander, &mut headed_bystander],
        "nothing left waiting",
    );
}

/// A port and an export fun from a real BEAM node, whose atoms (`erlang`, `abs`, the
/// node's name) it writes as atom cache references, come back from Moebi's echo as they
/// went. (Found by the `dist_header` fuzz target.)
#[test]
fn ports_and_export_funs_come_through_the_atom_cache() {
    let (epmd, moebi, _port) = moebi(&[]);
    let m = moebi.node_name();
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    assert_eq!(
        alex.eval(&format!("GenServer.call({{:echo, :{m}}}, &:erlang.abs/1)")),
        "&:erlang.abs/1",
        "{}",
        moebi.log()
    );
    assert_eq!(
        alex.eval(&format!(
            "port = hd(Port.list())
             GenServer.call({{:echo, :{m}}}, {{:port, port}}) == {{:port, port}}"
        )),
        "true",
        "{}",
        moebi.log()
    );
    assert!(
        !moebi.log().contains("closing connection"),
        "{}",
        moebi.log()
    );
    chats(&alex, &moebi, "funs and ports");
    assert_no_panic(&moebi);
}

/// One round of the header attacks above, against a node started with
/// `--max-message-size 1000000`.
fn header_battery(port: u16, moebi: &RustNode, alex: &BeamNode, round: usize) {
    let m = moebi.node_name();
    let name = |what: &str| fake_name(&format!("h{round}{what}"));
    let none = cache_header(&[]);
    let chunk = vec![0u8; 60_000];
    // Sequences that never finish, 900 KB each (just under the limit), on 4 connections
    // that then go.
    let mut waiting = Vec::new();
    for i in 0..4 {
        let mut p = headed_peer(port, moebi, &name(&format!("wait{i}")));
        let (a, _) = two_parts(&p);
        p.send_frame(&frag_header(1, u64::MAX, &none, &a)).unwrap();
        for k in 0..15 {
            p.send_frame(&frag_cont(1, u64::MAX - 1 - k, &chunk))
                .unwrap();
        }
        assert!(p.ping(WAIT), "{}", moebi.log());
        waiting.push(p);
    }
    // Past the limit; thousands of sequences at once.
    let mut p = headed_peer(port, moebi, &name("over"));
    let (a, _) = two_parts(&p);
    let _ = p.send_frame(&frag_header(1, u64::MAX, &none, &a));
    for k in 0..20 {
        let _ = p.send_frame(&frag_cont(1, u64::MAX - 1 - k, &chunk));
    }
    assert!(closed_within(&mut p.stream, WAIT).is_some());
    let mut p = headed_peer(port, moebi, &name("flood"));
    let _ = p.send_raw(&sequences(&p, 0, 5000));
    assert!(closed_within(&mut p.stream, WAIT).is_some());
    // Fragments out of order, unset entries, lying headers.
    each_closes(port, moebi, &format!("h{round}order"), bad_fragments);
    each_closes(port, moebi, &format!("h{round}unset"), unset_references);
    each_closes(port, moebi, &format!("h{round}liar"), lying_headers);
    // A valid 800 KB message in fragments, echoed back to us in fragments.
    let mut p = headed_peer(port, moebi, &name("valid"));
    let terms = [
        reg_send_control(&p.pid(1), &small_atom("echo")),
        pair(
            &pid_ext(&p.pid(1)),
            &pair(&small_atom("big"), &binary_ext(&vec![7; 800_000])),
        ),
    ]
    .concat();
    let chunks: Vec<&[u8]> = terms.chunks(64 * 1024).collect();
    let n = chunks.len() as u64;
    p.send_frame(&frag_header(9, n, &none, chunks[0])).unwrap();
    for (i, c) in chunks.iter().enumerate().skip(1) {
        p.send_frame(&frag_cont(9, n - i as u64, c)).unwrap();
    }
    let echoed = p.next_message_where(WAIT, |_, m| {
        matches!(m, Some(eetf::Term::Tuple(t)) if t.elements.first() == Some(&fakepeer::atom("big")))
    });
    assert!(echoed.is_some(), "{}", moebi.log());
    drop(p);
    for p in waiting {
        let name = p.name.clone();
        drop(p);
        assert!(moebi.wait_for_log(&format!("node down: {name}"), WAIT));
    }
    // A BEAM node's large messages, in fragments both ways.
    assert_eq!(
        alex.eval(&format!(
            "1..3 |> Enum.map(fn _ -> byte_size(GenServer.call({{:echo, :{m}}}, :binary.copy(\"y\", 500_000))) end) |> Enum.uniq()"
        )),
        "[500000]"
    );
    chats(alex, moebi, &format!("header round {round} done"));
}

/// Rounds of the header attacks (sequences left unfinished just under the limit, past
/// it, thousands at once, every bad fragment, unset reference and lying header above)
/// with valid fragmented messages both ways between them: after a warm-up, Moebi's
/// resident memory stays where it was.
#[test]
fn memory_stays_flat_under_distribution_header_attacks() {
    let (epmd, moebi, port) = moebi(&["--max-message-size", "1000000"]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    // Warm-up: the allocator, the tables and the log reach their working size.
    header_battery(port, &moebi, &alex, 0);
    header_battery(port, &moebi, &alex, 1);
    let before = settled_rss(&moebi);
    for round in 2..5 {
        header_battery(port, &moebi, &alex, round);
    }
    // Memory freed is given back within about 2 s of the last use.
    let after = fakepeer::rss_down_to(moebi.os_pid(), before + 4 * 1024, Duration::from_secs(20));
    eprintln!("moebi VmRSS: {before} KiB after the warm-up, {after} KiB after 3 more rounds");
    assert!(
        after <= before + 4 * 1024,
        "VmRSS grew from {before} KiB to {after} KiB"
    );
    chats(&alex, &moebi, "all done");
    assert_no_panic(&moebi);
}
