//! Network-level attacks against the real Moebi binary: the node never falls over and
//! never lets the wrong node in. Every attack comes from a raw socket or from the fake
//! peer in `tests/fakepeer/` (which completes the real handshake when it has the
//! cookie); after each, a real BEAM node still chats with Moebi, and Moebi's log says
//! what it refused.

mod fakepeer;
mod support;

use fakepeer::{closed_within, hs_message, name_message, raw, Peer, Rng, OTP25_FLAGS};
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

/// Nothing panicked in Moebi but `Moebi.panic/0`, which does on purpose.
fn assert_no_panic(moebi: &RustNode) {
    let log = moebi.log();
    let lines: Vec<&str> = log.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let on_purpose = lines
            .get(i + 1)
            .is_some_and(|next| next.contains("Moebi panicked on purpose"));
        assert!(
            !line.contains("panicked") || line.contains("on purpose") || on_purpose,
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
        assert!(
            at >= Duration::from_millis(950) && at < Duration::from_secs(3),
            "{what}: closed after {at:?}, expected about net_setuptime (1 s)"
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
    let line = format!(
        "exceeds the maximum message size of 100000 bytes peer={}",
        alex.node_name()
    );
    assert!(
        moebi.wait_for_log("exceeds the maximum message size of 100000 bytes", WAIT),
        "{}",
        moebi.log()
    );
    assert!(
        moebi
            .log()
            .lines()
            .any(|l| l.contains(&line[..50]) && l.contains(&alex.node_name())),
        "the log line names the peer:\n{}",
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
        .chain(std::iter::repeat([104u8, 1]).take(depth).flatten())
        .chain([106])
        .collect();
    let maps: Vec<u8> = std::iter::once(131)
        .chain(
            std::iter::repeat([116u8, 0, 0, 0, 1, 106])
                .take(depth)
                .flatten(),
        )
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
        moebi.log().contains("term nested deeper than 512"),
        "{}",
        moebi.log()
    );
    // Still there, still chatting.
    assert!(alex.eval("Node.list()").contains(&moebi.node_name()));
    chats(&alex, &moebi, "deep breath");
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

#[test]
fn meaningless_control_messages_are_answered_or_dropped() {
    use eetf::Term;
    use fakepeer::{atom, int, tuple};
    let (_epmd, moebi, port) = moebi(&[]);
    let mut p = Peer::connect(port, &fake_name("nonsense"), COOKIE, OTP25_FLAGS).unwrap();
    let me = Term::from(p.pid(1));
    let moebi_name = moebi.node_name();
    let nobody = Term::from(eetf::Pid::new(moebi_name.as_str(), 30000, 0, 0));
    let r = Term::from(p.reference(1));

    // Operations nobody knows, and known ones with the wrong arity.
    p.send_control(tuple(vec![int(99)]), None).unwrap();
    p.send_control(tuple(vec![int(1000), atom("x")]), Some(atom("y")))
        .unwrap();
    assert!(
        p.ping(WAIT),
        "unknown operations do not close the connection"
    );
    assert!(moebi.wait_for_log("dropping unknown control message", WAIT));

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
    p.send_control(tuple(vec![int(99), big.clone()]), None)
        .unwrap();
    // The connection is up and the node answers; nothing panicked.
    assert!(p.ping(WAIT), "{}", moebi.log());
    assert!(moebi.log().contains("node up"));
    assert!(!moebi.log().contains("node down"), "{}", moebi.log());
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
             receive do {{:EXIT, ^pid, {{:badarg, _}}}} -> :badarg after 5000 -> flush() end"
        )),
        ":badarg"
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
    let mut p = Peer::connect(port, &name("nonsense"), COOKIE, OTP25_FLAGS).unwrap();
    let me = Term::from(p.pid(1));
    let r = Term::from(p.reference(1));
    p.send_control(tuple(vec![int(99)]), None).unwrap();
    let big = Term::from(eetf::Binary::from(vec![b'x'; 4 << 20]));
    for name in [
        "net_kernel",
        "rex",
        "Elixir.Chat.TaskSupervisor",
        "echo",
        "nobody",
    ] {
        p.reg_send(
            name,
            tuple(vec![
                atom("$gen_call"),
                tuple(vec![me.clone(), r.clone()]),
                big.clone(),
            ]),
        )
        .unwrap();
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

#[test]
fn memory_stays_flat_under_a_battery_of_attacks() {
    let (epmd, moebi, port) = moebi(&["--net-setuptime", "2"]);
    let alex = BeamNode::start(&unique_name("alex"), COOKIE, &epmd);
    // Warm-up: the allocator, the tables and the log reach their working size.
    battery(port, &moebi, &alex, 0);
    battery(port, &moebi, &alex, 1);
    std::thread::sleep(Duration::from_secs(1));
    let before = fakepeer::rss_kib(moebi.os_pid());
    for round in 2..5 {
        battery(port, &moebi, &alex, round);
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = fakepeer::rss_kib(moebi.os_pid());
    eprintln!("moebi VmRSS: {before} KiB after the warm-up, {after} KiB after 3 more rounds");
    assert!(
        after <= before + 4 * 1024,
        "VmRSS grew from {before} KiB to {after} KiB"
    );
    chats(&alex, &moebi, "all done");
    assert_no_panic(&moebi);
}
