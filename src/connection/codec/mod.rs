//! Control messages to and from frame bytes.
//!
//! A [`Message`] is written downgraded to the older operation
//! when the peer lacks the flag for the newer one (as the BEAM does),
//! its control tuple and payload straight into the frame by [`write`](super::write). A
//! message to a process is written from borrows ([`To`], [`Payload`]), so a term the
//! sender keeps (a lent request) needs no copy. Frames are read with the bounded reader
//! of [`terms`](super::terms), and the `Message` built from its terms, taking every shape
//! real nodes send (spawn arguments that arrive as a `STRING_EXT` charlist, `[1, 2,
//! 3]`, which erl_dist's own decoder refuses).

use super::ext::{BINARY_EXT, VERSION};
use super::header::{AtomRefs, Body, HeaderError, Incoming, OutCache, DIST_HEADER};
use super::terms::{fill_tail, frame_terms, TermError, TermLimits, TermReader};
use super::write::{EncodeError, Out};
use crate::connection::message::{self as m, Message};
use crate::connection::message::{Mfa, PidOrAtom};
use crate::flags;
use crate::term::{Atom, FixInteger, List, Match, Pid, Reference, Term};

/// The pass-through frame tag: no distribution header follows.
pub(crate) const PASS_THROUGH: u8 = 112;

/// A frame we could not turn into a message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("empty frame")]
    Empty,
    #[error("frame tag {0} (only pass-through frames, 112, are negotiated)")]
    UnexpectedTag(u8),
    #[error("{0}")]
    Header(#[from] HeaderError),
    /// A term too deep is well formed, and said so.
    #[error("{}", match .0 { TermError::TooDeep(_) => .0.to_string(), e => format!("malformed term: {e}") })]
    Term(#[from] TermError),
    #[error("control message {0} is malformed")]
    BadControl(String),
    /// What a BEAM node logs as `Invalid distribution message` and closes the
    /// connection for: an operation no release defines, or a signal whose sender is a
    /// process of another node than the peer's.
    #[error("invalid distribution message: {0}")]
    Invalid(String),
}

/// What a data frame held.
// Decoded values are moved once, from the reader to dispatch: boxing the large variant
// would add an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decoded {
    Message(Message),
    /// `ALTACT_SIG_SEND`, which erl_dist 0.8 predates.
    AltAct(AltAct),
}

/// `ALTACT_SIG_SEND` (OTP 28+, control message 37): `{37, Flags, SenderPid, To}` or
/// `{37, Flags, SenderPid, To, Token}`, followed by the message, or by the exit reason
/// when the `EXIT` bit is set. Alias sends (every `GenServer.call` reply and `Task`
/// result), priority messages (EEP 76) and exit signals to aliases travel this way to
/// a node that advertises `DFLAG_ALTACT_SIG`.
#[derive(Debug)]
pub(crate) struct AltAct {
    /// The flag bits ([`altact`]); bits no release defines yet are dropped, as the
    /// BEAM keeps only the low byte.
    pub flags: u8,
    pub from: Pid,
    pub to: AltActTo,
    /// The message, or the exit reason.
    pub data: Term,
}

/// Where an [`AltAct`] signal goes, as its flags say.
#[derive(Debug)]
pub(crate) enum AltActTo {
    Pid(Pid),
    Name(Atom),
    Alias(Reference),
}

/// The flag bits of `ALTACT_SIG_SEND` (`ERTS_DOP_ALTACT_SIG_FLG_*` in `dist.h`).
pub(crate) mod altact {
    pub(crate) const OP: u8 = 37;
    pub(crate) const PRIO: u8 = 1;
    pub(crate) const TOKEN: u8 = 2;
    pub(crate) const ALIAS: u8 = 4;
    pub(crate) const NAME: u8 = 8;
    pub(crate) const EXIT: u8 = 16;
}

/// Decodes one data frame body (after the length): `None` when it was a fragment of a
/// message still in progress.
pub(crate) fn decode(
    frame: &[u8],
    incoming: &mut Incoming,
    limits: &TermLimits,
) -> Result<Option<Decoded>, DecodeError> {
    decode_body(incoming.read(frame)?, limits)
}

/// Decodes what [`Incoming`] made of a frame (see [`decode`]).
pub(crate) fn decode_body(
    body: Body<'_>,
    limits: &TermLimits,
) -> Result<Option<Decoded>, DecodeError> {
    let (body, atoms) = match body {
        Body::Partial => return Ok(None),
        Body::Versioned(body) => (body, None),
        Body::Headed(body, atoms) => (body, Some(atoms)),
        Body::Reassembled(bytes, atoms) => return reassembled(bytes, atoms, limits).map(Some),
        Body::Split(head, tail, atoms) => return split(head, tail, atoms, limits).map(Some),
    };
    let reader = || match atoms {
        None => TermReader::new(body, limits),
        Some(atoms) => TermReader::headed(body, atoms, limits),
    };
    let (control, payload) = frame_terms(&mut reader())?;
    from_terms(control, payload).map(Some).or_else(|e| {
        // The fields were moved out as they matched: the control message in the log
        // line is decoded again from the bytes.
        let control = reader().next_term()?;
        malformed(e, control).map(Some)
    })
}

/// A message put together from fragments: a large binary that ends it is not copied
/// out of its bytes but becomes the term's, the bytes before it drained.
fn reassembled(
    mut bytes: Vec<u8>,
    atoms: AtomRefs<'_>,
    limits: &TermLimits,
) -> Result<Decoded, DecodeError> {
    let mut reader = TermReader::headed(&bytes, atoms, limits).lend_tail();
    let (control, payload) = frame_terms(&mut reader)?;
    let Some(start) = reader.lent_tail() else {
        let control_again = || TermReader::headed(&bytes, atoms, limits).next_term();
        return from_terms(control, payload).or_else(|e| malformed(e, control_again()?));
    };
    bytes.drain(..start);
    bytes.shrink_to_fit();
    with_lent(control, payload, bytes)
}

/// The message of `control` and `payload`, read with a large binary lent (left empty),
/// with `bytes` put in that binary.
fn with_lent(
    mut control: Term,
    mut payload: Option<Term>,
    bytes: Vec<u8>,
) -> Result<Decoded, DecodeError> {
    // The control message for a log line, should it be malformed (small: the binary,
    // if it is in there, shows empty).
    let logged = control.clone();
    let filled = fill_tail(payload.as_mut().unwrap_or(&mut control), bytes);
    debug_assert!(filled, "the lent binary ends the last term");
    from_terms(control, payload).or_else(|e| malformed(e, logged))
}

/// A message put together from fragments in two parts, `head` and `tail`, where the
/// bytes of a large binary began in its first fragment: when that binary ends the
/// message, `tail` becomes the term's as it is (nothing is moved); otherwise the two
/// are joined and read as one.
fn split(
    mut head: Vec<u8>,
    mut tail: Vec<u8>,
    atoms: AtomRefs<'_>,
    limits: &TermLimits,
) -> Result<Decoded, DecodeError> {
    let mut reader = TermReader::headed(&head, atoms, limits).lend_tail_after(tail.len());
    if let Ok((control, payload)) = frame_terms(&mut reader) {
        if reader.lent_tail() == Some(head.len()) {
            return with_lent(control, payload, tail);
        }
    }
    head.append(&mut tail);
    reassembled(head, atoms, limits)
}

fn malformed(e: Malformed, control: Term) -> Result<Decoded, DecodeError> {
    match e {
        Malformed::Unknown => Err(DecodeError::Invalid(crate::term::truncated(
            &control,
            crate::term::LOG_TERM_CHARS,
        ))),
        Malformed::Bad => Err(bad(&control)),
    }
}

/// Why a decoded control tuple is not a message.
enum Malformed {
    /// An operation no release defines (closes the connection, as on a BEAM node).
    Unknown,
    /// A known operation with fields of the wrong kind (closes the connection).
    Bad,
}

fn bad(control: &Term) -> DecodeError {
    DecodeError::BadControl(crate::term::truncated(control, crate::term::LOG_TERM_CHARS))
}

fn from_terms(control: Term, payload: Option<Term>) -> Result<Decoded, Malformed> {
    let Term::Tuple(tuple) = control else {
        return Err(Malformed::Bad);
    };
    let Some(op) = tuple.elements.first().and_then(Match::as_int) else {
        return Err(Malformed::Bad);
    };
    let n = tuple.elements.len();
    if op == i64::from(altact::OP) {
        return alt_act(tuple.elements, payload)
            .map(Decoded::AltAct)
            .ok_or(Malformed::Bad);
    }
    // Fields are moved out of the tuple as they are taken (a pid or an atom holds a
    // `String`: a copy would be an allocation each), leaving an empty list behind.
    let e = std::cell::RefCell::new(tuple.elements);
    let take = |i: usize| std::mem::replace(&mut e.borrow_mut()[i], Term::List(List::nil()));
    let pid = |i: usize| match take(i) {
        Term::Pid(p) => Some(p),
        _ => None,
    };
    let reference = |i: usize| match take(i) {
        Term::Reference(r) => Some(*r),
        _ => None,
    };
    let proc = |i: usize| match take(i) {
        Term::Pid(p) => Some(PidOrAtom::Pid(p)),
        Term::Atom(a) => Some(PidOrAtom::Atom(a)),
        _ => None,
    };
    let atom = |i: usize| match take(i) {
        Term::Atom(a) => Some(a),
        _ => None,
    };
    // Each operation takes the payload at most once: moved, not copied.
    let payload = std::cell::RefCell::new(payload);
    let msg = || payload.borrow_mut().take();
    // The positions of each operation's fields, per the erl_dist_protocol docs; the
    // `_TT` variants carry a trace token we accept and drop.
    let decoded = (|| -> Option<Message> {
        Some(match (op, n) {
            (1, 3) => Message::Link(m::Link {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
            }),
            (2, 3) | (12, 4) => Message::Send(m::Send {
                to_pid: pid(2)?,
                message: msg()?,
            }),
            (22, 3) | (23, 4) => Message::SendSender(m::SendSender {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
                message: msg()?,
            }),
            (3, 4) => Message::Exit(m::Exit {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
                reason: take(3),
            }),
            (13, 5) => Message::Exit(m::Exit {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
                reason: take(4),
            }),
            (4, 3) => Message::Unlink(m::Unlink {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
            }),
            (5, 1) => Message::NodeLink(m::NodeLink),
            (6, 4) | (16, 5) => Message::RegSend(m::RegSend {
                from_pid: pid(1)?,
                to_name: atom(3)?,
                message: msg()?,
            }),
            (7, 3) => Message::GroupLeader(m::GroupLeader {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
            }),
            (8, 4) => Message::Exit2(m::Exit2 {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
                reason: take(3),
            }),
            (18, 5) => Message::Exit2(m::Exit2 {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
                reason: take(4),
            }),
            (19, 4) => Message::MonitorP(m::MonitorP {
                from_pid: pid(1)?,
                to_proc: proc(2)?,
                reference: reference(3)?,
            }),
            (20, 4) => Message::DemonitorP(m::DemonitorP {
                from_pid: pid(1)?,
                to_proc: proc(2)?,
                reference: reference(3)?,
            }),
            (21, 5) => Message::MonitorPExit(m::MonitorPExit {
                from_proc: proc(1)?,
                to_pid: pid(2)?,
                reference: reference(3)?,
                reason: take(4),
            }),
            (24, 3) | (25, 4) => Message::Exit(m::Exit {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
                reason: msg()?,
            }),
            (26, 3) | (27, 4) => Message::Exit2(m::Exit2 {
                from_pid: pid(1)?,
                to_pid: pid(2)?,
                reason: msg()?,
            }),
            (28, 4) => Message::MonitorPExit(m::MonitorPExit {
                from_proc: proc(1)?,
                to_pid: pid(2)?,
                reference: reference(3)?,
                reason: msg()?,
            }),
            (29, 6) | (30, 7) => Message::SpawnRequest(m::SpawnRequest {
                req_id: reference(1)?,
                from_pid: pid(2)?,
                group_leader: pid(3)?,
                mfa: mfa(take(4))?,
                opt_list: proper_list(take(5))?,
                arg_list: proper_list(msg()?)?,
            }),
            (31, 5) | (32, 6) => Message::SpawnReply(m::SpawnReply {
                req_id: reference(1)?,
                to_pid: pid(2)?,
                flags: FixInteger::from(i32::try_from(take(3).as_int()?).ok()?),
                result: proc(4)?,
            }),
            (35, 4) => Message::UnlinkId(m::UnlinkId {
                id: take(1),
                from_pid: pid(2)?,
                to_pid: pid(3)?,
            }),
            (36, 4) => Message::UnlinkIdAck(m::UnlinkIdAck {
                id: take(1),
                from_pid: pid(2)?,
                to_pid: pid(3)?,
            }),
            (33, 3) | (34, 4) => Message::AliasSend(m::AliasSend {
                from_pid: pid(1)?,
                alias: reference(2)?,
                message: msg()?,
            }),
            _ => return None,
        })
    })();
    match decoded {
        Some(message) => Ok(Decoded::Message(message)),
        None if !(1..=i64::from(altact::OP)).contains(&op) => Err(Malformed::Unknown),
        None => Err(Malformed::Bad),
    }
}

/// `ALTACT_SIG_SEND`, read as `dist.c` reads it: at least four elements (later releases
/// may add more), flags a non-negative integer of which the low byte counts, a token
/// only when the `TOKEN` bit says so, and `To` of the kind the `ALIAS`/`NAME` bits say.
fn alt_act(elements: Vec<Term>, payload: Option<Term>) -> Option<AltAct> {
    let mut e = elements.into_iter().skip(1);
    let flags = match e.next()? {
        Term::FixInteger(i) => u8::try_from(i.value & 0xff).ok().filter(|_| i.value >= 0)?,
        Term::BigInteger(b) => {
            // Two's complement, least significant byte first: the sign is the top bit.
            let bytes = b.value.to_signed_bytes_le();
            if bytes.last().is_some_and(|top| top & 0x80 != 0) {
                return None;
            }
            bytes.first().copied().unwrap_or(0)
        }
        _ => return None,
    };
    let Term::Pid(from) = e.next()? else {
        return None;
    };
    let to = match (
        e.next()?,
        flags & altact::ALIAS != 0,
        flags & altact::NAME != 0,
    ) {
        (Term::Reference(r), true, false) => AltActTo::Alias(*r),
        (Term::Atom(a), false, true) => AltActTo::Name(a),
        (Term::Pid(p), false, false) => AltActTo::Pid(p),
        _ => return None,
    };
    if flags & altact::TOKEN != 0 {
        e.next()?;
    }
    Some(AltAct {
        flags,
        from,
        to,
        data: payload?,
    })
}

fn mfa(term: Term) -> Option<Mfa> {
    let Term::Tuple(t) = term else { return None };
    let [module, function, arity]: [Term; 3] = t.elements.try_into().ok()?;
    Some(Mfa {
        module: atom_of(module)?,
        function: atom_of(function)?,
        arity: FixInteger::from(i32::try_from(arity.as_int()?).ok()?),
    })
}

fn atom_of(term: Term) -> Option<Atom> {
    match term {
        Term::Atom(a) => Some(a),
        _ => None,
    }
}

/// A proper list (charlists are decoded as lists, see `terms`).
fn proper_list(term: Term) -> Option<List> {
    match term {
        Term::List(l) => Some(l),
        _ => None,
    }
}

/// Where a message to a process goes: `SEND_SENDER` (`SEND` for a peer without that
/// flag), `REG_SEND` or `ALIAS_SEND`.
#[derive(Clone, Copy)]
pub(crate) enum To<'a> {
    Pid(&'a Pid),
    Name(&'a Atom),
    Alias(&'a Reference),
    /// Sent with the `priority` option (`erlang:send/3`): `ALTACT_SIG_SEND` with the
    /// `PRIO` bit to a peer that has it, a plain alias send to one that does not.
    PriorityAlias(&'a Reference),
}

/// What a message to a process carries, borrowed: a term sent again and again (or a
/// `$gen_call` around one) is written from the sender's own copy.
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    Term(&'a Term),
    /// The tuple of `head`'s elements then `last`: `{'$gen_call', From, Request}`
    /// around a lent `Request`.
    Wrapped(&'a [Term], &'a Term),
}

impl Payload<'_> {
    fn write(self, out: &mut Out<'_>) -> Result<(), EncodeError> {
        out.version();
        match self {
            Payload::Term(t) => super::write::term(out, t),
            Payload::Wrapped(head, last) => {
                super::write::tuple_header(out, head.len() + 1)?;
                super::write::terms(out, head)?;
                super::write::term(out, last)
            }
        }
    }
}

/// The message from `from` to `to` carrying `message`, as an owned `Message` (for a
/// connection that is not up yet).
pub(crate) fn to_message(from: &Pid, to: To<'_>, message: Term) -> Message {
    let from = *from;
    match to {
        To::Pid(p) => Message::send_sender(from, *p, message),
        To::Name(n) => Message::reg_send(from, *n, message),
        To::Alias(a) | To::PriorityAlias(a) => Message::alias_send(from, a.clone(), message),
    }
}

/// How a connection's frames are written: pass-through (tag 112, terms with version
/// bytes), or after a distribution header, with the sending side of the atom cache
/// where the peer has it (see [`header`](super::header)).
#[derive(Debug, Default)]
pub(crate) struct Framing {
    headed: bool,
    cache: Option<Box<OutCache>>,
}

impl Framing {
    /// The framing a peer with `peer_flags` reads (we advertise both header flags).
    pub(crate) fn for_peer(peer_flags: u64) -> Self {
        Framing {
            headed: peer_flags & (flags::DIST_HDR_ATOM_CACHE | flags::FRAGMENTS) != 0,
            cache: (peer_flags & flags::DIST_HDR_ATOM_CACHE != 0).then(Box::default),
        }
    }

    /// Headed frames without cache references, for frames written out of order with
    /// the others (after a fragmented message): they may neither use nor set entries.
    pub(crate) fn uncached(&self) -> Self {
        Framing {
            headed: self.headed,
            cache: None,
        }
    }
}

/// Where a frame appended by [`encode_into`] starts, and where the terms after its
/// header start (offsets into the buffer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written {
    pub start: usize,
    pub body: usize,
}

/// Appends a message from `from` to `to` as a whole frame (length header included),
/// written from borrows, for a peer with `peer_flags`. On an error `out` is as it was.
/// With a `tail` of more than 0 bytes, the payload ends with an empty binary that
/// stands for that many bytes, which the caller writes after the frame: the frame's
/// length and the binary's count are theirs (see [`framed`]).
pub(crate) fn encode_send_into(
    out: &mut Vec<u8>,
    framing: &mut Framing,
    from: &Pid,
    to: To<'_>,
    payload: Payload<'_>,
    tail: usize,
    peer_flags: u64,
) -> Result<Written, EncodeError> {
    framed(out, framing, tail, |out| {
        hot::send(out, from, to, payload, peer_flags)
    })
}

/// Appends `message` as a whole frame (length header included) for a peer with
/// `peer_flags`, with a `tail` as [`encode_send_into`]'s. On an error `out` is as it
/// was.
pub(crate) fn encode_into(
    out: &mut Vec<u8>,
    framing: &mut Framing,
    message: Message,
    tail: usize,
    peer_flags: u64,
) -> Result<Written, EncodeError> {
    let message = downgrade(message, peer_flags);
    framed(out, framing, tail, |out| {
        hot::write(out, message, peer_flags)
    })
}

/// `message` as a pass-through frame of its own.
#[cfg(test)]
pub(crate) fn encode(message: Message, peer_flags: u64) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(&mut out, &mut Framing::default(), message, 0, peer_flags).map(|_| out)
}

/// The frame `write` appends: a length header, then the pass-through tag or the
/// distribution header, and what `write` wrote; nothing when it fails or panics (frames
/// of other messages may be before it in `out`, and the peer must get whole frames
/// only), and then no cache entry it set stays set. With a `tail` of more than 0 bytes,
/// `write` ends with an empty binary: the frame counts `tail` bytes more, and the
/// binary that many, for the caller to write after it.
fn framed(
    out: &mut Vec<u8>,
    framing: &mut Framing,
    tail: usize,
    write: impl FnOnce(&mut Out<'_>) -> Result<(), EncodeError>,
) -> Result<Written, EncodeError> {
    /// Cuts `out` back to `start` unless the frame was finished.
    struct Frame<'a> {
        out: &'a mut Vec<u8>,
        cache: Option<&'a mut OutCache>,
        start: usize,
        finished: bool,
    }
    impl Drop for Frame<'_> {
        fn drop(&mut self) {
            if !self.finished {
                self.out.truncate(self.start);
                if let Some(cache) = self.cache.as_deref_mut() {
                    cache.abandon();
                }
            }
        }
    }
    let start = out.len();
    let headed = framing.headed;
    let mut frame = Frame {
        out,
        cache: framing.cache.as_deref_mut(),
        start,
        finished: false,
    };
    if !headed {
        frame.out.extend_from_slice(&[0, 0, 0, 0, PASS_THROUGH]);
        write(&mut Out::versioned(frame.out))?;
    } else if let Some(cache) = frame.cache.as_deref_mut() {
        frame
            .out
            .extend_from_slice(&[0, 0, 0, 0, VERSION, DIST_HEADER]);
        cache.begin();
        // The header names the atoms the terms use, so it is known only after them:
        // the terms go after room for a header as long as the last one (in a
        // conversation the same atoms recur, and so does the header's length), and
        // move only when this header is longer or shorter.
        let header_at = frame.out.len();
        let guess = cache.header_len().max(1);
        frame.out.resize(header_at + guess, 0);
        write(&mut Out::headed(frame.out, Some(&mut *cache)))?;
        let header = cache.header();
        let (terms, end) = (header_at + guess, frame.out.len());
        let wanted = header_at + header.len();
        if wanted > terms {
            frame.out.resize(end + (wanted - terms), 0);
            frame.out.copy_within(terms..end, wanted);
        } else if wanted < terms {
            frame.out.copy_within(terms..end, wanted);
            frame.out.truncate(end - (terms - wanted));
        }
        frame.out[header_at..wanted].copy_from_slice(header);
    } else {
        frame
            .out
            .extend_from_slice(&[0, 0, 0, 0, VERSION, DIST_HEADER, 0]);
        write(&mut Out::headed(frame.out, None))?;
    }
    if tail > 0 {
        let end = frame.out.len();
        assert!(
            frame.out.ends_with(&[BINARY_EXT, 0, 0, 0, 0]),
            "a frame given a tail ends with an empty binary"
        );
        let count = u32::try_from(tail).map_err(|_| EncodeError::TooLarge("binary", tail))?;
        frame.out[end - 4..].copy_from_slice(&count.to_be_bytes());
    }
    // The frame's length is 32 bits even where it goes out in fragments.
    let len = frame.out.len() - start - 4 + tail;
    let len = u32::try_from(len).map_err(|_| EncodeError::TooLarge("message", len))?;
    frame.out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    let body = match frame.cache.as_deref() {
        Some(cache) if headed => start + 6 + cache.header_len(),
        _ if headed => start + 7,
        _ => start + 5,
    };
    frame.finished = true;
    Ok(Written { start, body })
}

/// The control messages of every call, reply and monitor, written straight into the
/// frame. erl_dist builds each control tuple as a `Vec` of terms (and boxes each
/// reference) before encoding it: two allocations per message, in the same bytes.
mod hot {
    use super::*;
    use crate::connection::ext::{SMALL_INTEGER_EXT, SMALL_TUPLE_EXT};
    use crate::connection::write::{atom, pid, reference, term};

    /// Writes `message`: its control tuple, then its payload if it has one.
    pub(super) fn write(
        out: &mut Out<'_>,
        message: Message,
        peer_flags: u64,
    ) -> Result<(), EncodeError> {
        match message {
            Message::RegSend(m) => given(
                out,
                &m.from_pid,
                To::Name(&m.to_name),
                m.message,
                peer_flags,
            ),
            Message::SendSender(m) => {
                given(out, &m.from_pid, To::Pid(&m.to_pid), m.message, peer_flags)
            }
            Message::AliasSend(m) => {
                given(out, &m.from_pid, To::Alias(&m.alias), m.message, peer_flags)
            }
            Message::MonitorP(m) => {
                tuple(out, 4, 19);
                pid(out, &m.from_pid)?;
                proc(out, &m.to_proc)?;
                reference(out, &m.reference)
            }
            Message::DemonitorP(m) => {
                tuple(out, 4, 20);
                pid(out, &m.from_pid)?;
                proc(out, &m.to_proc)?;
                reference(out, &m.reference)
            }
            // Exit signals and `DOWN`s: the reason as a payload after the control tuple
            // (`EXIT_PAYLOAD`), or inside it for a peer without that flag.
            Message::Exit(m) => {
                exit_signal(out, (24, 3), &m.from_pid, &m.to_pid, m.reason, peer_flags)
            }
            Message::Exit2(m) => {
                exit_signal(out, (26, 8), &m.from_pid, &m.to_pid, m.reason, peer_flags)
            }
            Message::MonitorPExit(m) => {
                let payload = peer_flags & flags::EXIT_PAYLOAD != 0;
                tuple(
                    out,
                    if payload { 4 } else { 5 },
                    if payload { 28 } else { 21 },
                );
                proc(out, &m.from_proc)?;
                pid(out, &m.to_pid)?;
                reference(out, &m.reference)?;
                reason(out, m.reason, payload)
            }
            // What a task's caller (`Task.Supervisor.async` from a BEAM node) and a
            // task started on a BEAM node (`Node::task_async`) cost besides the sends.
            Message::SpawnReply(m) => {
                tuple(out, 5, 31);
                reference(out, &m.req_id)?;
                pid(out, &m.to_pid)?;
                term(out, &Term::from(m.flags))?;
                proc(out, &m.result)
            }
            Message::SpawnRequest(m) => {
                tuple(out, 6, 29);
                reference(out, &m.req_id)?;
                pid(out, &m.from_pid)?;
                pid(out, &m.group_leader)?;
                out.extend_from_slice(&[SMALL_TUPLE_EXT, 3]);
                atom(out, &m.mfa.module)?;
                atom(out, &m.mfa.function)?;
                term(out, &Term::from(m.mfa.arity))?;
                term(out, &Term::List(m.opt_list))?;
                Payload::Term(&Term::List(m.arg_list)).write(out)
            }
            Message::Link(m) => {
                tuple(out, 3, 1);
                pid(out, &m.from_pid)?;
                pid(out, &m.to_pid)
            }
            Message::UnlinkId(m) => {
                tuple(out, 4, 35);
                term(out, &m.id)?;
                pid(out, &m.from_pid)?;
                pid(out, &m.to_pid)
            }
            Message::UnlinkIdAck(m) => {
                tuple(out, 4, 36);
                term(out, &m.id)?;
                pid(out, &m.from_pid)?;
                pid(out, &m.to_pid)
            }
            // The rest are rare: to peers without the newer operations, and `SEND`.
            Message::Send(m) => send(
                out,
                &m.to_pid,
                To::Pid(&m.to_pid),
                Payload::Term(&m.message),
                0,
            ),
            Message::Unlink(m) => {
                tuple(out, 3, 4);
                pid(out, &m.from_pid)?;
                pid(out, &m.to_pid)
            }
            Message::NodeLink(_) => {
                out.version();
                out.extend_from_slice(&[SMALL_TUPLE_EXT, 1, SMALL_INTEGER_EXT, 5]);
                Ok(())
            }
            Message::GroupLeader(m) => {
                tuple(out, 3, 7);
                pid(out, &m.from_pid)?;
                pid(out, &m.to_pid)
            }
            // `{37, Flags, From, Alias}` and the reason as the payload.
            Message::AliasExit(m) => {
                let prio = if m.priority { altact::PRIO } else { 0 };
                tuple(out, 4, altact::OP);
                out.extend_from_slice(&[SMALL_INTEGER_EXT, altact::ALIAS | altact::EXIT | prio]);
                pid(out, &m.from_pid)?;
                reference(out, &m.alias)?;
                reason(out, m.reason, true)
            }
        }
    }

    /// A message to a process: the control tuple, then the payload.
    pub(super) fn send(
        out: &mut Out<'_>,
        from: &Pid,
        to: To<'_>,
        payload: Payload<'_>,
        peer_flags: u64,
    ) -> Result<(), EncodeError> {
        match to {
            To::Pid(to) if peer_flags & flags::SEND_SENDER != 0 => {
                tuple(out, 3, 22);
                pid(out, from)?;
                pid(out, to)?;
            }
            To::Pid(to) => {
                // `{2, Unused, ToPid}` (`SEND`); the unused field the empty atom, as the
                // BEAM writes it: erl_interface (`erl_call`, C nodes) reads an atom there.
                tuple(out, 3, 2);
                atom(out, &Atom::from(""))?;
                pid(out, to)?;
            }
            To::Name(name) => {
                // `{6, From, Unused, ToName}`; the unused field the empty atom, as above.
                tuple(out, 4, 6);
                pid(out, from)?;
                atom(out, &Atom::from(""))?;
                atom(out, name)?;
            }
            To::Alias(alias) | To::PriorityAlias(alias) if peer_flags & flags::ALTACT_SIG != 0 => {
                // `{37, Flags, From, Alias}`: ALIAS_SEND goes in OTP 30.
                let bits = match to {
                    To::PriorityAlias(_) => altact::ALIAS | altact::PRIO,
                    _ => altact::ALIAS,
                };
                tuple(out, 4, altact::OP);
                out.extend_from_slice(&[SMALL_INTEGER_EXT, bits]);
                pid(out, from)?;
                reference(out, alias)?;
            }
            To::Alias(alias) | To::PriorityAlias(alias) => {
                tuple(out, 3, 33);
                pid(out, from)?;
                reference(out, alias)?;
            }
        }
        payload.write(out)
    }

    /// [`send`] of a message given away, dropped once written (see `discard`).
    fn given(
        out: &mut Out<'_>,
        from: &Pid,
        to: To<'_>,
        message: Term,
        peer_flags: u64,
    ) -> Result<(), EncodeError> {
        let written = send(out, from, to, Payload::Term(&message), peer_flags);
        crate::term::discard(message);
        written
    }

    /// `{Op, From, To}` and the reason as a payload (`EXIT_PAYLOAD`, `ops.0`), or
    /// `{Op, From, To, Reason}` (`ops.1`).
    fn exit_signal(
        out: &mut Out<'_>,
        ops: (u8, u8),
        from: &Pid,
        to: &Pid,
        why: Term,
        peer_flags: u64,
    ) -> Result<(), EncodeError> {
        let payload = peer_flags & flags::EXIT_PAYLOAD != 0;
        tuple(
            out,
            if payload { 3 } else { 4 },
            if payload { ops.0 } else { ops.1 },
        );
        pid(out, from)?;
        pid(out, to)?;
        reason(out, why, payload)
    }

    /// An exit reason, last in the control tuple or as the payload, dropped once written
    /// (see `discard`).
    fn reason(out: &mut Out<'_>, reason: Term, payload: bool) -> Result<(), EncodeError> {
        let written = if payload {
            Payload::Term(&reason).write(out)
        } else {
            term(out, &reason)
        };
        crate::term::discard(reason);
        written
    }

    /// The version byte, a tuple of `arity` and its first element, the operation.
    fn tuple(out: &mut Out<'_>, arity: u8, op: u8) {
        out.version();
        out.extend_from_slice(&[SMALL_TUPLE_EXT, arity, SMALL_INTEGER_EXT, op]);
    }

    fn proc(out: &mut Out<'_>, p: &PidOrAtom) -> Result<(), EncodeError> {
        match p {
            PidOrAtom::Pid(p) => pid(out, p),
            PidOrAtom::Atom(a) => atom(out, a),
        }
    }
}

/// The older operation when the peer lacks the newer one's flag (`SEND_SENDER`'s is
/// chosen where messages to processes are written, `hot::send`, and `EXIT_PAYLOAD`'s
/// where exit signals are, `hot::exit_signal`).
fn downgrade(message: Message, peer: u64) -> Message {
    match message {
        Message::UnlinkId(x) if peer & flags::UNLINK_ID == 0 => Message::Unlink(m::Unlink {
            from_pid: x.from_pid,
            to_pid: x.to_pid,
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests;
