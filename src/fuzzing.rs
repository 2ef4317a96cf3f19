//! Entry points for fuzzing (`fuzz/`, `tests/fuzz_regressions.rs`): every parser that
//! takes bytes from the network, fed from a byte slice instead of a socket. Only with
//! the `fuzzing` feature; not a stable API.
//!
//! Each function must return for every input, without panicking, and in time linear in
//! the input: that is what the fuzz targets check. Inputs are self-describing (a leading
//! byte picks the variant) so that a saved input replays the same run.

use crate::connection::codec;
use crate::connection::frame::{Frame, FrameReader};
use crate::connection::header::Incoming;
use crate::connection::terms::{depth_and_size, TermLimits, TermReader};
use crate::connection::{read_some, Direct};
use crate::handshake::{self, LocalIdentity, Status};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest frame the fuzzed frame reader accepts (a node's default is 1 GiB; a
/// smaller one lets the fuzzer reach the refusal).
pub const MAX_FRAME: usize = 1 << 20;

/// A peer that sends `input` in pieces of `chunk` bytes, then closes, and takes in
/// whatever is written to it.
struct Scripted<'a> {
    input: &'a [u8],
    chunk: usize,
    written: usize,
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.input.len()).min(self.chunk);
        let (now, later) = self.input.split_at(n);
        buf.put_slice(now);
        self.input = later;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// `input[0]` picks how the rest arrives: in pieces of 1, 2, 4, ... 65,536 bytes.
fn scripted(input: &[u8]) -> Scripted<'_> {
    let (chunk, rest) = match input.split_first() {
        Some((&c, rest)) => (1usize << (c % 17), rest),
        None => (1, input),
    };
    Scripted {
        input: rest,
        chunk,
        written: 0,
    }
}

fn identity() -> LocalIdentity {
    LocalIdentity {
        wide_lengths: false,
        name: "fuzz@localhost".into(),
        creation: 1,
        flags: crate::flags::advertised(true),
        cookie: "cookie".into(),
    }
}

/// Either side of the handshake: `input[0]` picks it (even: [`handshake_accept`], odd:
/// [`handshake_connect`]), the rest is that side's input. `Err("empty")` for no input.
pub fn handshake(input: &[u8]) -> Result<String, String> {
    match input.split_first() {
        Some((&side, rest)) if side & 1 == 0 => handshake_accept(rest),
        Some((_, rest)) => handshake_connect(rest),
        None => Err("empty".into()),
    }
}

/// The accepting side of the handshake. `input[0]` picks the status our connection table
/// would give, `input[1]` how the peer's bytes (the rest) arrive. `Ok` holds the name of
/// a peer that completed the handshake (only possible with the cookie).
pub fn handshake_accept(input: &[u8]) -> Result<String, String> {
    let Some((&pick, rest)) = input.split_first() else {
        return Err("empty".into());
    };
    let status = [
        Status::Ok,
        Status::OkSimultaneous,
        Status::Nok,
        Status::Alive,
        Status::NotAllowed,
    ][usize::from(pick) % 5];
    let mut peer = scripted(rest);
    let local = identity();
    futures::executor::block_on(handshake::accept(&mut peer, &local, |_, _| status))
        .map(|p| p.name)
        .map_err(|e| e.to_string())
}

/// The initiating side, against a node that sends the rest of `input`; `input[0]` says
/// whether our attempt is still the pending one (for the `alive` status).
pub fn handshake_connect(input: &[u8]) -> Result<String, String> {
    let Some((&pick, rest)) = input.split_first() else {
        return Err("empty".into());
    };
    let mut peer = scripted(rest);
    let local = identity();
    let pending = pick & 1 == 1;
    futures::executor::block_on(handshake::connect(
        &mut peer,
        &local,
        "peer@localhost",
        || pending,
    ))
    .map(|p| p.name)
    .map_err(|e| e.to_string())
}

/// The frame reader over a stream, each data frame decoded as a connection's reader
/// does, until the stream ends or is refused. Returns how many frames were decoded into
/// messages, and why reading stopped. Pass-through frames, as from a peer that has
/// neither `DIST_HDR_ATOM_CACHE` nor `FRAGMENTS`.
pub fn frames(input: &[u8]) -> (usize, String) {
    stream(input, 0)
}

/// [`frames`] from a peer that has both: every frame after a distribution header, atom
/// cache references and updates, fragments reassembled (bounded by `MAX_FRAME`, which
/// stands for the maximum message size here).
pub fn headed_frames(input: &[u8]) -> (usize, String) {
    stream(
        input,
        crate::flags::DIST_HDR_ATOM_CACHE | crate::flags::FRAGMENTS,
    )
}

/// As a connection's reader takes a stream: every frame buffered, then, when the next
/// is a large continuation fragment, its rest read straight into its message's buffer
/// (`Direct`), else one more read into the frame buffer.
fn stream(input: &[u8], peer_flags: u64) -> (usize, String) {
    let mut reader = FrameReader::new(scripted(input), MAX_FRAME);
    let limits = TermLimits::default();
    let mut incoming = Incoming::new(peer_flags, MAX_FRAME, MAX_FRAME);
    let mut direct: Option<Direct> = None;
    let mut messages = 0;
    let stopped = futures::executor::block_on(async {
        loop {
            loop {
                match reader.try_frame() {
                    Ok(Some(Frame::Tick)) => {}
                    Ok(Some(Frame::Data(d))) => match codec::decode(d, &mut incoming, &limits) {
                        Ok(Some(_)) => messages += 1,
                        Ok(None) => {}
                        Err(e) => return e.to_string(),
                    },
                    Ok(None) => break,
                    Err(e) => return e.to_string(),
                }
                assert_bounded(&incoming);
            }
            if direct.is_none() {
                direct = match Direct::start(&mut reader, &mut incoming) {
                    Ok(d) => d,
                    Err(e) => return e.to_string(),
                };
                assert_bounded(&incoming);
            }
            if let Err(e) = read_some(&mut reader, &mut incoming, &mut direct).await {
                return e.to_string();
            }
            if let Some(d) = direct.take_if(|d| d.missing == 0) {
                match d.finish(&mut incoming, &limits) {
                    Ok(Some(_)) => messages += 1,
                    Ok(None) => {}
                    Err(e) => return e.to_string(),
                }
            }
        }
    });
    (messages, stopped)
}

fn assert_bounded(incoming: &Incoming) {
    assert!(
        incoming.held() <= MAX_FRAME,
        "{} bytes of fragments held",
        incoming.held()
    );
}

/// One frame body (after the length) through the term reader and the control-message
/// decoder. `Ok` describes the message.
pub fn decode(frame: &[u8]) -> Result<String, String> {
    match codec::decode(
        frame,
        &mut Incoming::new(0, MAX_FRAME, MAX_FRAME),
        &TermLimits::default(),
    ) {
        Ok(Some(codec::Decoded::Message(_))) => Ok("a control message".into()),
        Ok(Some(codec::Decoded::AltAct(a))) => Ok(format!(
            "ALTACT_SIG_SEND flags {} from {} to {:?}",
            a.flags, a.from, a.to
        )),
        Ok(None) => Ok("a fragment".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The term reader alone, on up to two terms, against the limits it enforces: a term
/// it accepts nests no deeper than `TermLimits::max_depth` and holds no more terms than
/// the input has bytes; bytes it refuses are refused at a byte of the input. Panics when
/// that does not hold. Returns how many terms were read, or why the bytes were refused.
pub fn check_terms(bytes: &[u8]) -> Result<usize, String> {
    let limits = TermLimits::default();
    let mut reader = TermReader::new(bytes, &limits);
    let mut read = 0;
    while read < 2 {
        match reader.next_term() {
            Ok(term) => {
                let (depth, size) = depth_and_size(&term);
                assert!(
                    depth <= limits.max_depth,
                    "the reader accepted a term {depth} levels deep"
                );
                assert!(
                    size <= bytes.len(),
                    "the reader accepted {size} terms from {} bytes",
                    bytes.len()
                );
                read += 1;
            }
            Err(e) => {
                if let Some(pos) = e.position() {
                    assert!(
                        pos <= bytes.len(),
                        "refused at byte {pos} of {}: {e}",
                        bytes.len()
                    );
                }
                return Err(e.to_string());
            }
        }
        if reader.at_end() {
            return Ok(read);
        }
    }
    Err("trailing bytes after two terms".into())
}
