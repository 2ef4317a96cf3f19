//! A minimal, scriptable distribution peer for the hostile-input and fault tests: raw
//! sockets to the node under test, the v6 handshake as the initiating side (with any
//! name, cookie and flags), frames with any length and any bytes, and the observations
//! the tests need (was our socket closed, and how fast; the node's resident memory).
//!
//! Use it with `mod fakepeer;` next to `mod support;`. Everything is blocking and
//! bounded: every read has a deadline.
//!
//! With [`HEADED_FLAGS`] the peer speaks the distribution header, as an OTP node does:
//! its control messages go in `131, 68` frames (no references), and the node's headed
//! frames (atom cache references, fragments) are read back into pass-through form, so
//! [`Peer::ping`] and the `next_*` readers work the same with either flags.
#![allow(dead_code)] // each test binary uses its own subset

use eetf::{Atom, FixInteger, Pid, Reference, Term, Tuple};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What OTP 25 advertises (0xd07df7fbd) without the atom cache and fragments, so the
/// node sends us plain pass-through frames.
pub const OTP25_FLAGS: u64 = 0xd07df7fbd & !(0x2000 | 0x800000);
/// `DIST_HDR_ATOM_CACHE`: the atom cache of the distribution header.
pub const DIST_HDR_ATOM_CACHE: u64 = 0x2000;
/// `FRAGMENTS`: large messages in fragments.
pub const FRAGMENTS: u64 = 0x800000;
/// All of what OTP 25 advertises: frames both ways start with a distribution header
/// (`131, 68`, or `131, 69` / `131, 70` for fragments), and a pass-through frame is
/// refused.
pub const HEADED_FLAGS: u64 = OTP25_FLAGS | DIST_HDR_ATOM_CACHE | FRAGMENTS;
/// Entries in each direction's atom cache.
pub const CACHE_SIZE: usize = 2048;
/// `PUBLISHED`: a visible node.
pub const PUBLISHED: u64 = 0x01;
/// Pass-through frame tag (no distribution header).
pub const PASS_THROUGH: u8 = 112;

/// A connection to a node's distribution port.
pub struct Peer {
    pub stream: TcpStream,
    /// Our name (`name@localhost`).
    pub name: String,
    /// Our creation, as sent in the handshake.
    pub creation: u32,
    /// The node's name, once the handshake told us.
    pub peer_name: String,
    /// The node's challenge message (`N`, its flags, challenge, creation and name).
    pub challenge: Vec<u8>,
    /// Bytes read past the last frame handed out.
    buf: Vec<u8>,
    /// Both sides have the distribution header: frames both ways carry one.
    pub headed: bool,
    /// The node's atom cache for its frames to us, as their headers set it.
    cache: Vec<Option<String>>,
    /// The node's fragmented messages in progress: the atoms of the first fragment's
    /// header, and the bytes so far.
    partial: HashMap<u64, (Vec<String>, Vec<u8>)>,
}

/// The distribution port `alive` (the part before `@`) registered with the EPMD on
/// `epmd_port`.
pub fn node_port(epmd_port: u16, alive: &str) -> u16 {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, epmd_port)).expect("epmd");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = vec![0, (1 + alive.len()) as u8, 122];
    req.extend_from_slice(alive.as_bytes());
    s.write_all(&req).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        reply.len() >= 4 && reply[0] == 119 && reply[1] == 0,
        "{alive} is not registered with epmd on {epmd_port}: {reply:?}"
    );
    u16::from_be_bytes([reply[2], reply[3]])
}

/// A raw TCP connection to `port` on 127.0.0.1.
pub fn raw(port: u16) -> TcpStream {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_nodelay(true).unwrap();
    s
}

/// Waits (at most `bound`) until the other side closes `s`, discarding what it sends.
/// Returns how long that took, or `None` if the socket is still open after `bound`.
pub fn closed_within(s: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let deadline = t0 + bound;
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        s.set_read_timeout(Some(deadline - now)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {}
            // A signal to this thread, not the node: look again.
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            // Reset by the node: closed too.
            Err(_) => return Some(t0.elapsed()),
        }
    }
}

/// One handshake message: 2-byte length, body.
pub fn hs_message(body: &[u8]) -> Vec<u8> {
    let mut m = (body.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(body);
    m
}

/// The v6 name message `N`.
pub fn name_message(name: &str, flags: u64, creation: u32) -> Vec<u8> {
    let mut m = vec![b'N'];
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&creation.to_be_bytes());
    m.extend_from_slice(&(name.len() as u16).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m
}

pub fn digest(cookie: &str, challenge: u32) -> [u8; 16] {
    md5::compute(format!("{cookie}{challenge}")).0
}

fn read_exact_by(s: &mut TcpStream, n: usize, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut out = vec![0; n];
    let mut got = 0;
    while got < n {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("timed out after {got}/{n} bytes"));
        }
        s.set_read_timeout(Some(deadline - now)).unwrap();
        match s.read(&mut out[got..]) {
            Ok(0) => return Err(format!("closed after {got}/{n} bytes")),
            Ok(k) => got += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(format!("timed out after {got}/{n} bytes"))
            }
            Err(e) => return Err(format!("{e} after {got}/{n} bytes")),
        }
    }
    Ok(out)
}

fn read_hs(s: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, String> {
    let len = read_exact_by(s, 2, deadline)?;
    read_exact_by(s, u16::from_be_bytes([len[0], len[1]]) as usize, deadline)
}

impl Peer {
    /// Connects to `port` and runs the initiating side of the handshake as `name` with
    /// `cookie` and `flags`. `Err` says where it stopped (e.g. the node closed the
    /// socket after our challenge reply: wrong cookie).
    pub fn connect(port: u16, name: &str, cookie: &str, flags: u64) -> Result<Peer, String> {
        let mut s = raw(port);
        let creation = 0x1234_0000 | (std::process::id() & 0xffff);
        let deadline = Instant::now() + Duration::from_secs(10);
        s.write_all(&hs_message(&name_message(name, flags, creation)))
            .map_err(|e| e.to_string())?;
        let status = read_hs(&mut s, deadline).map_err(|e| format!("status: {e}"))?;
        if status != b"sok" {
            return Err(format!("status {:?}", String::from_utf8_lossy(&status)));
        }
        let challenge = read_hs(&mut s, deadline).map_err(|e| format!("challenge: {e}"))?;
        if challenge.len() < 19 || challenge[0] != b'N' {
            return Err(format!("bad challenge {challenge:?}"));
        }
        let their_challenge = u32::from_be_bytes(challenge[9..13].try_into().unwrap());
        let name_len = u16::from_be_bytes([challenge[17], challenge[18]]) as usize;
        let peer_name = String::from_utf8_lossy(&challenge[19..19 + name_len]).into_owned();
        let ours: u32 = 0x0bad_cafe;
        let mut reply = vec![b'r'];
        reply.extend_from_slice(&ours.to_be_bytes());
        reply.extend_from_slice(&digest(cookie, their_challenge));
        s.write_all(&hs_message(&reply))
            .map_err(|e| e.to_string())?;
        let ack = read_hs(&mut s, deadline).map_err(|e| format!("challenge ack: {e}"))?;
        if ack.len() != 17 || ack[0] != b'a' || ack[1..] != digest(cookie, ours) {
            return Err(format!("bad challenge ack {ack:?}"));
        }
        let their_flags = u64::from_be_bytes(challenge[1..9].try_into().unwrap());
        Ok(Peer {
            stream: s,
            name: name.to_owned(),
            creation,
            peer_name,
            challenge,
            buf: Vec::new(),
            headed: flags & their_flags & (DIST_HDR_ATOM_CACHE | FRAGMENTS) != 0,
            cache: vec![None; CACHE_SIZE],
            partial: HashMap::new(),
        })
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes one frame: 4-byte length, then `body`.
    pub fn send_frame(&mut self, body: &[u8]) -> std::io::Result<()> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        self.stream.write_all(&f)
    }

    /// Sends a control message, with its payload if any: pass-through, or after a
    /// distribution header without references when the header was negotiated.
    pub fn send_control(&mut self, control: Term, payload: Option<Term>) -> std::io::Result<()> {
        let mut body = if self.headed {
            vec![131, 68, 0]
        } else {
            vec![PASS_THROUGH]
        };
        for t in std::iter::once(control).chain(payload) {
            if self.headed {
                body.extend_from_slice(&unversioned(&t));
            } else {
                t.encode(&mut body).unwrap();
            }
        }
        self.send_frame(&body)
    }

    /// Our pid number `n`.
    pub fn pid(&self, n: u32) -> Pid {
        Pid::new(self.name.as_str(), n, 0, self.creation)
    }

    /// A reference of ours.
    pub fn reference(&self, n: u32) -> Reference {
        Reference {
            node: Atom::from(self.name.as_str()),
            id: vec![n, 0xabc, 0xdef],
            creation: self.creation,
        }
    }

    /// `REG_SEND` from our pid 1 to `name` on the node.
    pub fn reg_send(&mut self, name: &str, message: Term) -> std::io::Result<()> {
        let ctl = tuple(vec![
            int(6),
            Term::from(self.pid(1)),
            Term::from(Atom::from("")),
            Term::from(Atom::from(name)),
        ]);
        self.send_control(ctl, Some(message))
    }

    /// The next data frame (ticks are skipped) within `bound`, or `None` (timeout or
    /// closed). A headed frame comes out as the pass-through frame it stands for: its
    /// atom cache references replaced by the atoms, a version byte before each term,
    /// and a fragmented message once its last fragment arrived.
    pub fn next_frame(&mut self, bound: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + bound;
        loop {
            while self.buf.len() >= 4 {
                let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if self.buf.len() < 4 + len {
                    break;
                }
                let frame: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
                if frame.is_empty() {
                    continue;
                }
                if !self.headed {
                    return Some(frame);
                }
                if let Some(frame) = self.unhead(&frame) {
                    return Some(frame);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// A headed frame from the node in pass-through form, or `None` for a fragment of a
    /// message not yet complete. Panics on anything an OTP node would not send.
    fn unhead(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        assert_eq!(frame[0], 131, "a headed frame: {frame:?}");
        let mut r = Reader {
            bytes: frame,
            pos: 2,
        };
        let ids = |r: &mut Reader| (r.u64(), r.u64());
        match frame[1] {
            68 => {
                let atoms = self.header(&mut r);
                Some(pass_through(&frame[r.pos..], &atoms))
            }
            69 => {
                let (seq, frag) = ids(&mut r);
                let atoms = self.header(&mut r);
                let data = frame[r.pos..].to_vec();
                if frag == 1 {
                    return Some(pass_through(&data, &atoms));
                }
                let old = self.partial.insert(seq, (atoms, data));
                assert!(old.is_none(), "sequence {seq} started twice");
                None
            }
            70 => {
                let (seq, frag) = ids(&mut r);
                let (_, bytes) = self.partial.get_mut(&seq).expect("a sequence started");
                bytes.extend_from_slice(&frame[r.pos..]);
                if frag > 1 {
                    return None;
                }
                let (atoms, bytes) = self.partial.remove(&seq).unwrap();
                Some(pass_through(&bytes, &atoms))
            }
            tag => panic!("distribution header tag {tag}"),
        }
    }

    /// Reads the atom cache part of a header: the atoms its references name, setting
    /// the entries it sets.
    fn header(&mut self, r: &mut Reader) -> Vec<String> {
        let n = usize::from(r.u8());
        if n == 0 {
            return Vec::new();
        }
        let flags = r.take(n / 2 + 1).to_vec();
        let nibble = |i: usize| (flags[i / 2] >> ((i % 2) * 4)) & 0xf;
        let long_atoms = nibble(n) & 1 != 0;
        (0..n)
            .map(|i| {
                let ix = usize::from(nibble(i) & 7) << 8 | usize::from(r.u8());
                if nibble(i) & 8 != 0 {
                    let len = if long_atoms {
                        r.u16()
                    } else {
                        usize::from(r.u8())
                    };
                    let text = String::from_utf8(r.take(len).to_vec()).expect("UTF-8");
                    self.cache[ix] = Some(text);
                }
                self.cache[ix].clone().expect("a cache entry the node set")
            })
            .collect()
    }

    /// The next message (control, payload) within `bound` whose control or payload
    /// satisfies `want`; other messages are skipped.
    pub fn next_message_where(
        &mut self,
        bound: Duration,
        want: impl FnMut(&Term, Option<&Term>) -> bool,
    ) -> Option<(Term, Option<Term>)> {
        let frame = self.next_frame_where(bound, want)?;
        Some(decode_frame(&frame))
    }

    /// The next data frame within `bound` whose control message (and payload) satisfy
    /// `want`, as the bytes it came in (after the length); others are skipped.
    pub fn next_frame_where(
        &mut self,
        bound: Duration,
        mut want: impl FnMut(&Term, Option<&Term>) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + bound;
        loop {
            let frame = self.next_frame(deadline.saturating_duration_since(Instant::now()))?;
            let (control, payload) = decode_frame(&frame);
            if want(&control, payload.as_ref()) {
                return Some(frame);
            }
        }
    }

    /// A `$gen_call` to the node's `net_kernel` asking `{is_auth, Us}`, as `Node.ping`
    /// does; true if `yes` comes back within `bound`. Proves the connection still works.
    pub fn ping(&mut self, bound: Duration) -> bool {
        let tag = self.reference(777);
        let call = tuple(vec![
            atom("$gen_call"),
            tuple(vec![Term::from(self.pid(1)), Term::from(tag.clone())]),
            tuple(vec![atom("is_auth"), atom(&self.name.clone())]),
        ]);
        if self.reg_send("net_kernel", call).is_err() {
            return false;
        }
        let tag = Term::from(tag);
        self.next_message_where(bound, |_, p| {
            matches!(p, Some(Term::Tuple(t)) if t.elements.len() == 2 && t.elements[0] == tag)
        })
        .is_some_and(|(_, p)| match p {
            Some(Term::Tuple(t)) => t.elements[1] == atom("yes"),
            _ => false,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> usize {
        usize::from(u16::from_be_bytes(self.take(2).try_into().unwrap()))
    }
    fn u32(&mut self) -> usize {
        u32::from_be_bytes(self.take(4).try_into().unwrap()) as usize
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take(8).try_into().unwrap())
    }
}

/// The terms of a headed frame (no version bytes, `ATOM_CACHE_REF`s into `atoms`) as a
/// pass-through frame body.
fn pass_through(terms: &[u8], atoms: &[String]) -> Vec<u8> {
    let mut r = Reader {
        bytes: terms,
        pos: 0,
    };
    let mut out = vec![PASS_THROUGH];
    while r.pos < terms.len() {
        out.push(131);
        copy_term(&mut r, atoms, &mut out);
    }
    out
}

/// Copies one term, each `ATOM_CACHE_REF` (82) written as the `ATOM_UTF8_EXT` it names.
fn copy_term(r: &mut Reader, atoms: &[String], out: &mut Vec<u8>) {
    let start = r.pos;
    let tag = r.u8();
    // Copies what was read since `start` (the tag and fixed fields) as is.
    let flush = |r: &Reader, out: &mut Vec<u8>, from: usize| {
        out.extend_from_slice(&r.bytes[from..r.pos]);
    };
    match tag {
        82 => {
            let atom = atoms[usize::from(r.u8())].as_bytes();
            out.push(118);
            out.extend_from_slice(&(atom.len() as u16).to_be_bytes());
            out.extend_from_slice(atom);
        }
        97 | 98 | 70 | 99 | 106 => {
            r.take(match tag {
                97 => 1,
                98 => 4,
                70 => 8,
                99 => 31,
                _ => 0,
            });
            flush(r, out, start);
        }
        100 | 118 | 107 => {
            let n = r.u16();
            r.take(n);
            flush(r, out, start);
        }
        115 | 119 => {
            let n = usize::from(r.u8());
            r.take(n);
            flush(r, out, start);
        }
        109 => {
            let n = r.u32();
            r.take(n);
            flush(r, out, start);
        }
        77 => {
            let n = r.u32();
            r.take(1 + n);
            flush(r, out, start);
        }
        110 => {
            let n = usize::from(r.u8());
            r.take(1 + n);
            flush(r, out, start);
        }
        111 => {
            let n = r.u32();
            r.take(1 + n);
            flush(r, out, start);
        }
        104 | 105 | 108 | 116 | 113 => {
            let n = match tag {
                104 => usize::from(r.u8()),
                105 => r.u32(),
                108 => r.u32() + 1,
                116 => 2 * r.u32(),
                _ => 3,
            };
            flush(r, out, start);
            for _ in 0..n {
                copy_term(r, atoms, out);
            }
        }
        // Pids, ports, references: a node name, then fixed fields.
        88 | 103 | 89 | 120 | 102 => {
            out.push(tag);
            copy_term(r, atoms, out);
            let from = r.pos;
            r.take(match tag {
                88 => 12,
                103 => 9,
                89 => 8,
                120 => 12,
                _ => 5,
            });
            flush(r, out, from);
        }
        90 | 114 => {
            let words = r.u16();
            flush(r, out, start);
            copy_term(r, atoms, out);
            let from = r.pos;
            r.take(if tag == 90 { 4 } else { 1 } + 4 * words);
            flush(r, out, from);
        }
        112 => {
            // NEW_FUN_EXT: its size changes with its atoms.
            r.u32();
            let size_at = out.len() + 1;
            let from = r.pos;
            r.take(1 + 16 + 4);
            let free = r.u32();
            out.push(112);
            out.extend_from_slice(&[0; 4]);
            flush(r, out, from);
            for _ in 0..4 + free {
                copy_term(r, atoms, out);
            }
            let size = (out.len() - size_at) as u32;
            out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
        }
        tag => panic!("fake peer: no reader for term tag {tag}"),
    }
}

/// `term` in external term format without its version byte, as in a headed frame.
pub fn unversioned(term: &Term) -> Vec<u8> {
    let mut out = Vec::new();
    term.encode(&mut out).unwrap();
    out.remove(0);
    out
}

/// The atom cache part of a distribution header: for each reference, its cache entry
/// and, for an entry it sets, the atom's text (with the LongAtoms flag when one is
/// longer than 255 bytes).
pub fn cache_header(refs: &[(u16, Option<&str>)]) -> Vec<u8> {
    let n = refs.len();
    let mut out = vec![n as u8];
    if n == 0 {
        return out;
    }
    let long = refs.iter().any(|(_, t)| t.is_some_and(|t| t.len() > 255));
    out.resize(1 + n / 2 + 1, 0);
    let mut set = |i: usize, nibble: u8| out[1 + i / 2] |= nibble << ((i % 2) * 4);
    for (i, (ix, text)) in refs.iter().enumerate() {
        set(i, (ix >> 8) as u8 | if text.is_some() { 8 } else { 0 });
    }
    set(n, u8::from(long));
    for (ix, text) in refs {
        out.push(*ix as u8);
        if let Some(text) = text {
            if long {
                out.extend_from_slice(&(text.len() as u16).to_be_bytes());
            } else {
                out.push(text.len() as u8);
            }
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

/// A `DIST_HEADER` frame body: `header` (from [`cache_header`]), then `terms`.
pub fn headed(header: &[u8], terms: &[u8]) -> Vec<u8> {
    [&[131, 68][..], header, terms].concat()
}

/// A `DIST_FRAG_HEADER` frame body: the first fragment of sequence `seq`, `frag`
/// fragments to go (this one included).
pub fn frag_header(seq: u64, frag: u64, header: &[u8], data: &[u8]) -> Vec<u8> {
    [
        &[131, 69][..],
        &seq.to_be_bytes(),
        &frag.to_be_bytes(),
        header,
        data,
    ]
    .concat()
}

/// A `DIST_FRAG_CONT` frame body.
pub fn frag_cont(seq: u64, frag: u64, data: &[u8]) -> Vec<u8> {
    [
        &[131, 70][..],
        &seq.to_be_bytes(),
        &frag.to_be_bytes(),
        data,
    ]
    .concat()
}

/// A pass-through frame body's control message and payload, if any.
pub fn decode_frame(frame: &[u8]) -> (Term, Option<Term>) {
    assert_eq!(frame[0], PASS_THROUGH, "the node sends pass-through frames");
    let mut r = &frame[1..];
    let control = Term::decode(&mut r).expect("control");
    let payload = (!r.is_empty()).then(|| Term::decode(&mut r).expect("payload"));
    (control, payload)
}

pub fn atom(name: &str) -> Term {
    Term::from(Atom::from(name))
}

pub fn int(n: i32) -> Term {
    Term::from(FixInteger::from(n))
}

pub fn tuple(elements: Vec<Term>) -> Term {
    Term::from(Tuple::from(elements))
}

/// A frame body holding `{2, '', Pid}` (SEND to `to`) and then `payload_bytes`
/// verbatim as the message: for payloads no encoder would write.
pub fn send_with_raw_payload(to: &Pid, payload_bytes: &[u8]) -> Vec<u8> {
    let mut body = vec![PASS_THROUGH];
    tuple(vec![int(2), atom(""), Term::from(to.clone())])
        .encode(&mut body)
        .unwrap();
    body.extend_from_slice(payload_bytes);
    body
}

/// `[[[...[]...]]]` nested `depth` deep, as external term format (with the version
/// byte): `LIST_EXT` of one element, `depth` times, then `NIL_EXT` tails.
pub fn nested_list(depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + depth * 6 + 1);
    out.push(131);
    for _ in 0..depth {
        out.extend_from_slice(&[108, 0, 0, 0, 1]);
    }
    out.push(106);
    out.extend(std::iter::repeat_n(106, depth));
    out
}

/// Resident memory of process `pid`, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Resident memory of process `pid`, in KiB, once it is at most `ceiling` (memory an
/// allocator keeps for reuse is given back in its own time), or when `bound` has passed.
pub fn rss_down_to(pid: u32, ceiling: u64, bound: Duration) -> u64 {
    let deadline = Instant::now() + bound;
    loop {
        let rss = rss_kib(pid);
        if rss <= ceiling || Instant::now() >= deadline {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A deterministic pseudo-random generator (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
