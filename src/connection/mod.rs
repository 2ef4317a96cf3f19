//! A connection to one peer node after the handshake: a reader task that turns frames
//! into control messages for the node, a writer task that batches outgoing frames, and
//! ticks both ways (`net_ticktime`).
//!
//! A malformed frame or term ends this connection with a logged reason and nothing else:
//! the node sees an ordinary node-down (`noconnection` for links and monitors).

pub(crate) mod codec;
pub(crate) mod ext;
pub(crate) mod frame;
pub(crate) mod header;
pub(crate) mod message;
mod pages;
pub(crate) mod terms;
pub(crate) mod write;

use crate::connection::message::Message;
use crate::sync::lock;
use crate::term::{Atom, Pid};
use crate::transport::{ReadHalf, Stream, WriteHalf};
use codec::Decoded;
use codec::{Framing, Written};
use frame::{Frame, FrameReader};
use futures::FutureExt;
use header::{Incoming, FRAGMENT_SIZE};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Who a connection hands what it reads to (the node), and tells when it ends.
pub(crate) trait Owner: Clone + Send + Sync + 'static {
    /// What the owner keeps from one message of a connection to the next (its reader
    /// holds one).
    type Memo: Default + Send;
    /// A control message (and its payload) the peer sent.
    fn take(&self, conn: &Arc<ConnHandle>, decoded: Decoded, memo: &mut Self::Memo);
    /// The connection ended: `reason` is why (already logged when it is the peer's
    /// fault).
    fn down(&self, conn: &Arc<ConnHandle>, reason: &str);
}

/// The limits a connection enforces (see `NodeConfig`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_message_size: usize,
    pub max_reassembly: usize,
    pub tick_time: Duration,
    pub busy_poll: Duration,
    /// Bytes waiting for the peer beyond which the connection is busy (`+zdbbl`).
    pub busy_limit: usize,
    pub terms: terms::TermLimits,
}

/// The sending side of a live connection, shared by everything that sends to the peer.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub peer: Atom,
    pub flags: u64,
    pub creation: u32,
    /// Distinguishes this connection from earlier or later ones to the same node.
    pub id: u64,
    outbox: Outbox,
    /// Frames queued so far (the reader's busy polling looks at it).
    sent: AtomicU64,
    closing: tokio_util::sync::CancellationToken,
    busy_limit: usize,
}

/// Frames waiting for the writer. Senders encode straight onto the end of `pending`, so
/// a frame costs no buffer of its own, and the writer takes everything there in one
/// swap and one system call. Encoding happens under the lock: on a multi-thread
/// runtime two processes sending to the same peer at once wait for each other's
/// encoding (on one thread, Moebi's default, nobody ever waits). The lock also orders
/// the atom cache's entries as the frames that set them.
#[derive(Debug, Default)]
struct Outbox {
    pending: Mutex<Pending>,
    ready: tokio::sync::Notify,
    /// The writer has ended: nothing queued would be written.
    closed: AtomicBool,
    /// The writer took what was queued: senders waiting on a busy connection look again.
    drained: tokio::sync::Notify,
    /// Bytes queued (in `pending`), for senders to look at without the lock.
    queued: AtomicUsize,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    frames: usize,
    framing: Framing,
    /// Whether the peer takes fragments.
    fragments: bool,
    /// Fragmented messages still going out, one fragment per batch, oldest first.
    large: VecDeque<Large>,
    /// Bytes of `large` still to go.
    large_bytes: usize,
    next_seq: u64,
}

/// A message going out in fragments, so that the frames queued behind it go out
/// between its fragments instead of after all of it, as the BEAM interleaves them.
#[derive(Debug)]
struct Large {
    seq: u64,
    /// The buffer its frame (a `DIST_HEADER` frame) was encoded in, which may start with
    /// frames queued before it (copied out when it was fragmented); the terms from
    /// `next` on are still to go.
    frame: Vec<u8>,
    /// The bytes of a large binary that ends the message, given away by its sender:
    /// written from here after `frame`, not copied into it.
    tail: Vec<u8>,
    /// Where the frame's distribution header is in `frame`, until the first fragment
    /// (which carries it) is written.
    header: Option<std::ops::Range<usize>>,
    /// Where the next fragment starts, in `frame` then `tail`.
    next: usize,
    /// The fragment id of the next fragment (the last is 1).
    frag: u64,
    /// Who sent it: what the same process sends next waits in `after` (in frames that
    /// neither use nor set cache entries, or in a `Large` of its own behind this one),
    /// as signals between two processes keep their order.
    sender: Option<Pid>,
    after: Vec<u8>,
}

impl Large {
    /// The message of the frame written at `w` in `frame`, with `tail` its last bytes,
    /// to go out in fragments of sequence `seq`.
    fn new(seq: u64, frame: Vec<u8>, w: Written, tail: Vec<u8>, sender: Option<&Pid>) -> Self {
        let count = (frame.len() + tail.len() - w.body).div_ceil(FRAGMENT_SIZE) as u64;
        Large {
            seq,
            header: Some(w.start + 6..w.body),
            next: w.body,
            frag: count,
            frame,
            tail,
            sender: sender.cloned(),
            after: Vec::new(),
        }
    }

    /// The bytes of the message still to go.
    fn left(&self) -> usize {
        self.frame.len() + self.tail.len() - self.next
    }

    /// Appends the next fragment to `out`: the first carries the frame's distribution
    /// header (`131, 69, SequenceId, FragmentId`, then the header as it was), the others
    /// `131, 70, SequenceId, FragmentId`; then up to a fragment's worth of the message's
    /// bytes, from `frame` then `tail`. Returns how many of those.
    fn fragment_into(&mut self, out: &mut Vec<u8>) -> usize {
        let end = (self.next + FRAGMENT_SIZE).min(self.frame.len() + self.tail.len());
        let len = end - self.next;
        let header = match self.header.take() {
            Some(range) => &self.frame[range],
            None => &[],
        };
        let tag = if header.is_empty() {
            header::DIST_FRAG_CONT
        } else {
            header::DIST_FRAG_HEADER
        };
        out.extend_from_slice(&((2 + 16 + header.len() + len) as u32).to_be_bytes());
        out.extend_from_slice(&[ext::VERSION, tag]);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.frag.to_be_bytes());
        out.extend_from_slice(header);
        let split = self.frame.len();
        if self.next < split {
            out.extend_from_slice(&self.frame[self.next..end.min(split)]);
        }
        if end > split {
            out.extend_from_slice(&self.tail[self.next.max(split) - split..end - split]);
        }
        self.next = end;
        self.frag -= 1;
        len
    }
}

/// The bytes of a large binary that ends `term` as it is written, taken out of it (left
/// empty there), for [`ConnHandle::send_to`] to write from where they are; empty when
/// `term` ends otherwise or the binary is smaller than a fragment.
pub(crate) fn large_tail(term: &mut crate::term::Term) -> Vec<u8> {
    match terms::tail_binary(term) {
        Some(bytes) if bytes.len() >= terms::LARGE_BINARY => std::mem::take(bytes),
        _ => Vec::new(),
    }
}

impl Pending {
    /// Encodes a frame onto the end of what is queued (or behind the sender's large
    /// message in progress); fragments it when it is large and the peer takes
    /// fragments. `tail`, when not empty, is the last bytes of the frame, the bytes of
    /// the binary it ends with ([`large_tail`]), which `encode` counted and did not
    /// write: a fragmented frame writes them from where they are.
    fn queue(
        &mut self,
        sender: Option<&Pid>,
        tail: Vec<u8>,
        encode: impl FnOnce(
            &mut Vec<u8>,
            &mut Framing,
        ) -> Result<Written, crate::connection::write::EncodeError>,
    ) -> Result<(), crate::connection::write::EncodeError> {
        let behind = sender.and_then(|s| {
            self.large
                .iter()
                .rposition(|l| l.sender.as_ref() == Some(s))
        });
        let large = |bytes: &[u8], w: Written| {
            self.fragments && bytes.len() + tail.len() - w.body > FRAGMENT_SIZE
        };
        match behind {
            // Goes after the sender's fragmented message, written in its own time: in
            // its frames to go after it, or, large too, fragmented after it in turn.
            Some(i) => {
                let mut frame = Vec::new();
                let w = encode(&mut frame, &mut self.framing.uncached())?;
                if large(&frame, w) {
                    self.next_seq += 1;
                    let next = Large::new(self.next_seq, frame, w, tail, sender);
                    self.large_bytes += next.left();
                    self.large.push_back(next);
                } else {
                    let after = &mut self.large[i].after;
                    after.extend_from_slice(&frame);
                    after.extend_from_slice(&tail);
                    self.large_bytes += frame.len() + tail.len();
                }
                Ok(())
            }
            None => {
                let w = encode(&mut self.bytes, &mut self.framing)?;
                if large(&self.bytes, w) {
                    self.fragment(w, sender, tail);
                } else {
                    self.bytes.extend_from_slice(&tail);
                }
                self.frames += 1;
                Ok(())
            }
        }
    }

    fn queued(&self) -> usize {
        self.bytes.len() + self.large_bytes
    }

    /// Turns the frame just written at `w` (and `tail`, its last bytes) into a
    /// [`Large`], its first fragment queued at once.
    fn fragment(&mut self, w: Written, sender: Option<&Pid>, tail: Vec<u8>) {
        // The large frame keeps the buffer it was written in (its pages are the
        // message's), and the frames queued before it are copied out of it: splitting
        // the large frame off would copy all of it into fresh memory.
        let frame = std::mem::take(&mut self.bytes);
        self.bytes.extend_from_slice(&frame[..w.start]);
        // From 1: a BEAM takes sequence 0 for a message that is not fragmented (and
        // an OTP 25 node crashes on fragments numbered 0).
        self.next_seq += 1;
        let mut large = Large::new(self.next_seq, frame, w, tail, sender);
        large.fragment_into(&mut self.bytes);
        self.large_bytes += large.left();
        self.large.push_back(large);
    }

    /// Moves what is queued into `batch`: every whole frame, and the next fragment of
    /// the oldest large message (then the frames waiting for its end, if it was the
    /// last). Returns how many frames.
    fn take(&mut self, batch: &mut Vec<u8>) -> usize {
        std::mem::swap(&mut self.bytes, batch);
        let mut frames = std::mem::take(&mut self.frames);
        if let Some(large) = self.large.front_mut() {
            self.large_bytes -= large.fragment_into(batch);
            frames += 1;
            if large.frag == 0 {
                let done = self.large.pop_front().expect("the front one");
                self.large_bytes -= done.after.len();
                batch.extend_from_slice(&done.after);
            }
        }
        frames
    }
}

impl ConnHandle {
    /// Queues `message` for the peer. Encoding happens here, in the sender's task, so
    /// the writer only writes bytes. Returns whether the connection is now busy (see
    /// [`drained`](Self::drained)).
    pub(crate) fn send(&self, mut message: Message) -> bool {
        let sender = sender_of(&message).cloned();
        let flags = self.flags;
        let tail = message.sent_mut().map(large_tail).unwrap_or_default();
        let tail_len = tail.len();
        self.queue(sender.as_ref(), tail, |out, framing| {
            codec::encode_into(out, framing, message, tail_len, flags)
        })
    }

    /// Queues a message from `from` to `to`, written from borrows (see
    /// [`codec::Payload`]), and from `tail`, when not empty: the bytes of the binary
    /// the payload ends with, taken out of it by [`large_tail`] (a 64 MB binary given
    /// away goes out from its own buffer, not copied). Returns whether the connection
    /// is now busy.
    pub(crate) fn send_to(
        &self,
        from: &Pid,
        to: codec::To<'_>,
        payload: codec::Payload<'_>,
        tail: Vec<u8>,
    ) -> bool {
        let tail_len = tail.len();
        self.queue(Some(from), tail, |out, framing| {
            codec::encode_send_into(out, framing, from, to, payload, tail_len, self.flags)
        })
    }

    fn queue(
        &self,
        sender: Option<&Pid>,
        tail: Vec<u8>,
        encode: impl FnOnce(
            &mut Vec<u8>,
            &mut Framing,
        ) -> Result<Written, crate::connection::write::EncodeError>,
    ) -> bool {
        let (encoded, queued) = {
            let mut guard = lock(&self.outbox.pending);
            // The writer is gone: the connection is going down, and the node will
            // report that through links and monitors. (Looked at under the lock, which
            // the writer takes to empty the outbox as it ends: nothing is left behind.)
            if self.outbox.closed.load(Ordering::Acquire) {
                return false;
            }
            let pending = &mut *guard;
            let encoded = pending.queue(sender, tail, encode);
            let queued = pending.queued();
            self.outbox.queued.store(queued, Ordering::Relaxed);
            (encoded, queued)
        };
        match encoded {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                self.outbox.ready.notify_one();
            }
            Err(e) => tracing::error!(peer = %self.peer.name(), "cannot encode a message: {e}"),
        }
        queued > self.busy_limit
    }

    /// Whether more than the busy limit is waiting for the peer (`+zdbbl`): a BEAM
    /// process sending to it would be suspended.
    pub(crate) fn is_busy(&self) -> bool {
        self.outbox.queued.load(Ordering::Relaxed) > self.busy_limit
    }

    /// Waits until the connection is no longer busy (or has closed), as a BEAM process
    /// that sent to a busy distribution port is suspended until it drains.
    pub(crate) async fn drained(&self) {
        loop {
            let drained = self.outbox.drained.notified();
            if !self.is_busy() || !self.is_open() {
                return;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.closing.cancelled() => return,
            }
        }
    }

    /// Waits until everything queued has been handed to the socket (or the connection
    /// has closed).
    pub(crate) async fn flushed(&self) {
        loop {
            let drained = self.outbox.drained.notified();
            if self.outbox.queued.load(Ordering::Relaxed) == 0 || !self.is_open() {
                return;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.closing.cancelled() => return,
                // `drained` is only told below the busy limit's worth of change.
                _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
            }
        }
    }

    /// Whether the peer is a visible node (`PUBLISHED`): in `nodes()` and in `global`.
    pub(crate) fn is_visible(&self) -> bool {
        self.flags & crate::flags::PUBLISHED != 0
    }

    /// Whether the writer is still running.
    pub(crate) fn is_open(&self) -> bool {
        !self.outbox.closed.load(Ordering::Acquire) && !self.closing.is_cancelled()
    }

    /// Closes the connection (the peer sees the TCP connection end, as with the BEAM).
    pub(crate) fn close(&self) {
        self.closing.cancel();
    }
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Starts the reader and writer tasks of an established connection.
pub(crate) fn start(
    owner: impl Owner,
    stream: Stream,
    peer: Atom,
    flags: u64,
    creation: u32,
    limits: Limits,
) -> Arc<ConnHandle> {
    let (read_half, write_half) = stream.split();
    let handle = Arc::new(ConnHandle {
        peer,
        flags,
        creation,
        id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
        outbox: Outbox {
            pending: Mutex::new(Pending {
                framing: Framing::for_peer(flags),
                fragments: flags & crate::flags::FRAGMENTS != 0,
                ..Pending::default()
            }),
            ..Outbox::default()
        },
        sent: AtomicU64::new(0),
        closing: tokio_util::sync::CancellationToken::new(),
        busy_limit: limits.busy_limit,
    });
    let writer = tokio::spawn(write_loop(write_half, handle.clone(), limits.tick_time / 4));
    let conn = handle.clone();
    tokio::spawn(async move {
        let reason = read_loop(&owner, &conn, read_half, writer, limits).await;
        owner.down(&conn, &reason);
    });
    handle
}

/// Messages a reader hands over before it lets other tasks run.
const YIELD_EVERY: usize = 128;
/// Bytes a reader takes in before it lets other tasks run: a large message's fragments
/// (64 KiB each from a BEAM) do not hold up the processes that answer the small
/// messages between them.
const YIELD_BYTES: usize = 64 * 1024;

async fn read_loop(
    owner: &impl Owner,
    conn: &Arc<ConnHandle>,
    read_half: ReadHalf,
    mut writer: tokio::task::JoinHandle<()>,
    limits: Limits,
) -> String {
    let reason = read_frames(owner, conn, read_half, &mut writer, limits).await;
    writer.abort();
    reason
}

/// Takes in frames until the connection ends; returns why (the reasons that are the
/// connection's fault are logged).
async fn read_frames<O: Owner>(
    owner: &O,
    conn: &Arc<ConnHandle>,
    read_half: ReadHalf,
    writer: &mut tokio::task::JoinHandle<()>,
    limits: Limits,
) -> String {
    let closing = |reason: String| {
        tracing::warn!(peer = %conn.peer.name(), "closing connection: {reason}");
        reason
    };
    let mut reader = FrameReader::new(read_half, limits.max_message_size);
    // Liveness as `net_kernel` checks it: every quarter of the tick time, was a whole
    // packet (a frame, a tick) received since the last look? Bytes of a frame not yet
    // whole do not count, as the BEAM counts packets: a link that trickles is as dead
    // as a silent one. Four silent quarters in a row end the connection.
    // (A timer per frame would cost a clock read and a timer update per message.)
    // The first look a quarter from now: `interval`'s immediate first tick still waits
    // for the timer wheel's next millisecond, which would hold up the first frame.
    let quarter = limits.tick_time / 4;
    let mut quarters = tokio::time::interval_at(tokio::time::Instant::now() + quarter, quarter);
    quarters.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = false;
    let mut silent_quarters = 0;
    let mut taken: usize = 0;
    let mut taken_bytes: usize = 0;
    let mut talk = Conversation::new(micros_since_start());
    let mut incoming = Incoming::new(conn.flags, limits.max_message_size, limits.max_reassembly);
    let mut memo = O::Memo::default();
    // A continuation fragment whose bytes are being read straight into its message's
    // buffer.
    let mut direct: Option<Direct> = None;
    loop {
        // Every frame already buffered, without going back to the runtime in between.
        loop {
            let data = match reader.try_frame() {
                Ok(Some(Frame::Data(d))) => d,
                Ok(Some(Frame::Tick)) => {
                    heard = true;
                    continue;
                }
                Ok(None) => break,
                Err(e) => return closing(e.to_string()),
            };
            heard = true;
            taken_bytes += data.len();
            if let Err(reason) =
                guarded(|| take_in(owner, conn, data, &mut incoming, &limits, &mut memo))
            {
                return closing(reason);
            }
            // Now and then let the processes take what was delivered: the messages are
            // still in the cache, and other connections get their turn.
            taken += 1;
            if taken.is_multiple_of(YIELD_EVERY) || taken_bytes >= YIELD_BYTES {
                taken_bytes = 0;
                tokio::task::yield_now().await;
            }
        }
        if direct.is_none() {
            direct = match Direct::start(&mut reader, &mut incoming) {
                Ok(d) => d,
                Err(e) => return closing(e.to_string()),
            };
        }
        let mut look = || read_some(&mut reader, &mut incoming, &mut direct).now_or_never();
        let read = match spin_for_more(&mut look, limits.busy_poll, conn, &mut talk, taken).await {
            Some(r) => r,
            None => tokio::select! {
                r = read_some(&mut reader, &mut incoming, &mut direct) => r,
                _ = &mut *writer => return "connection_closed".into(),
                _ = quarters.tick() => {
                    if std::mem::take(&mut heard) {
                        silent_quarters = 0;
                    } else {
                        silent_quarters += 1;
                    }
                    if silent_quarters < 4 {
                        continue;
                    }
                    // An error, as the BEAM's net_kernel reports it.
                    tracing::error!(
                        peer = %conn.peer.name(),
                        "** Node {} not responding ** ** Removing (timedout) connection **",
                        conn.peer.name()
                    );
                    return "net_tick_timeout".into();
                }
            },
        };
        match read {
            Ok(n) => {
                talk.read(conn);
                taken_bytes += n;
            }
            // A reset is the peer gone too (a node killed with data unread): the BEAM
            // says `connection_closed` for either.
            Err(frame::FrameError::Closed) => return "connection_closed".into(),
            Err(frame::FrameError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return "connection_closed".into()
            }
            Err(e) => return closing(e.to_string()),
        }
        if let Some(d) = direct.take_if(|d| d.missing == 0) {
            heard = true;
            let done = guarded(|| {
                if let Some(decoded) = d.finish(&mut incoming, &limits.terms)? {
                    owner.take(conn, decoded, &mut memo);
                }
                Ok(())
            });
            if let Err(reason) = done {
                return closing(reason);
            }
        }
        if taken_bytes >= YIELD_BYTES {
            taken_bytes = 0;
            tokio::task::yield_now().await;
        }
    }
}

/// Takes in one message's frame, or a fragment of it; a panic while doing so (a bug,
/// whatever the peer sent) ends this connection like any other fault of it, with a log
/// line. Uncaught, it would end the reader task without `connection_down`: a
/// connection nobody reads, still ticking. `Err` is the reason to close.
fn guarded(take: impl FnOnce() -> Result<(), codec::DecodeError>) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(take)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(format!(
            "handling a message panicked: {}",
            panic_text(&*panic)
        )),
    }
}

/// A continuation fragment of a large message read straight from the connection into
/// the message's buffer: each of its bytes is copied once (by the kernel), not once
/// more from the frame buffer. The first fragment, which carries the message's header,
/// and the small frames between fragments (other processes' messages) still go through
/// the frame buffer.
pub(crate) struct Direct {
    seq: u64,
    /// Bytes of the fragment still to come.
    pub(crate) missing: usize,
}

/// A fragment whose rest is shorter goes through the frame buffer: a read of its own
/// would cost more than the copy it saves. (Fuzzing takes any: its inputs are short.)
const DIRECT_AT_LEAST: usize = if cfg!(feature = "fuzzing") {
    1
} else {
    8 * 1024
};

impl Direct {
    /// When the frame partly buffered is a continuation fragment, in order, of a
    /// message in progress, with at least [`DIRECT_AT_LEAST`] bytes still to come: its
    /// buffered bytes go to the message's buffer, and the rest will follow them there.
    pub(crate) fn start<R: tokio::io::AsyncRead + Unpin>(
        reader: &mut FrameReader<R>,
        incoming: &mut Incoming,
    ) -> Result<Option<Direct>, codec::DecodeError> {
        let Some((len, head)) = reader.partial() else {
            return Ok(None);
        };
        if len - head.len() < DIRECT_AT_LEAST {
            return Ok(None);
        }
        if head.len() < header::CONT_HEADER {
            // Too little to tell what it is: the next read takes a little more, not
            // the frame.
            reader.short_read();
            return Ok(None);
        }
        let Some(seq) = incoming.direct(head, len)? else {
            return Ok(None);
        };
        let buf = incoming.direct_buf(seq).expect("a message in progress");
        let missing = reader.take_partial(header::CONT_HEADER, buf);
        Ok(Some(Direct { seq, missing }))
    }

    /// Takes in the fragment once all its bytes came (`missing` is 0): the message,
    /// when it was the last.
    pub(crate) fn finish(
        self,
        incoming: &mut Incoming,
        limits: &terms::TermLimits,
    ) -> Result<Option<Decoded>, codec::DecodeError> {
        debug_assert_eq!(self.missing, 0);
        codec::decode_body(incoming.fragment_in(self.seq)?, limits)
    }
}

/// One read: into the frame buffer, or, while a continuation fragment is read straight
/// into its message's buffer ([`Direct`]), into that. Returns the bytes that went
/// straight in (0 for a read into the frame buffer). Cancel-safe.
pub(crate) async fn read_some<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    incoming: &mut Incoming,
    direct: &mut Option<Direct>,
) -> Result<usize, frame::FrameError> {
    let Some(d) = direct else {
        return reader.fill().await.map(|()| 0);
    };
    let buf = incoming.direct_buf(d.seq).expect("a message in progress");
    let n = reader.read_into(buf, d.missing).await?;
    d.missing -= n;
    Ok(n)
}

/// At most this many readers of a process spin at once: while one does, its thread is
/// awake and the runtime sees every other connection's input between its looks.
const MAX_SPINNERS: usize = 1;
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// Whether a connection is in a conversation: something was sent to the peer within
/// the last few reads (a call and its answer; the BEAM's calls take up to four reads
/// each: monitor, request, our reply, demonitor); and whether the peer talks in lock
/// step (one exchange at a time) or keeps several in flight; and whether polling pays
/// with it.
struct Conversation {
    reads: u64,
    sent_seen: u64,
    talked_at: u64,
    /// One bit per poll of the last 8: whether input was already waiting at its first
    /// look.
    waiting: u8,
    /// What `conn.sent` was at the last read.
    sent_at_read: u64,
    trial: PollTrial,
}

impl Conversation {
    const READS: u64 = 8;

    /// A connection's, made `now` (µs since start).
    fn new(now: u64) -> Self {
        Conversation {
            reads: 0,
            sent_seen: 0,
            talked_at: 0,
            waiting: 0,
            sent_at_read: 0,
            trial: PollTrial::new(now),
        }
    }

    /// Notes whether the first look of a poll found input waiting, and whether this node
    /// had answered since its last read when the poll began ([`Conversation::answered`]).
    fn looked(&mut self, found: bool, answered: bool) {
        self.waiting = (self.waiting << 1) | u8::from(found);
        if answered {
            self.trial.looked(found);
        }
    }

    /// Whether this node has sent the peer anything since its last read.
    fn answered(&self, conn: &ConnHandle) -> bool {
        conn.sent.load(Ordering::Relaxed) != self.sent_at_read
    }

    /// Whether most of the last 8 polls found input already waiting when they began:
    /// the peer keeps several exchanges in flight, so its next input comes whether or
    /// not we poll for it. A peer in lock step has sent nothing yet when we have just
    /// answered it.
    fn pipelined(&self) -> bool {
        self.waiting.count_ones() > 4
    }

    fn read(&mut self, conn: &ConnHandle) {
        self.reads += 1;
        self.is_on(conn);
        self.sent_at_read = self.sent_seen;
    }

    fn is_on(&mut self, conn: &ConnHandle) -> bool {
        let sent = conn.sent.load(Ordering::Relaxed);
        if sent != self.sent_seen {
            self.sent_seen = sent;
            self.talked_at = self.reads;
        }
        self.reads - self.talked_at < Self::READS
    }
}

/// Whether polling pays with a peer that keeps exchanges in flight, found by trying:
/// in alternate turns, polling and not, the frames taken in each compared (each turn
/// [`PollTrial::SETTLE`] of changeover, then [`PollTrial::TURN`] counted). With such a
/// peer our polling helps only while its next input is about to come, and it takes a
/// core the peer may need to send it: which weighs more depends on the peer and the
/// machine (on two cores, a BEAM caller with 64 calls in flight sent 15% more calls a
/// second when we did not poll, a Rust client a sixth fewer), and only a trial tells.
/// Polling wins unless not polling took [`PollTrial::MARGIN`] more frames a second; a
/// turn without polling a quarter slower ends the trial at once. The verdict holds for
/// [`PollTrial::HOLD`], twice as long each time a trial agrees with the last (up to
/// [`PollTrial::MAX_HOLD`]); not polling, though, holds only while the peer's frames
/// keep coming at half the trial's rate or more: a peer that changed (back to lock
/// step, or paused) is polled for again at once. A trial starts only when the peer
/// looks like it keeps exchanges in flight ([`PollTrial::in_flight`]): a peer in lock
/// step is always polled for (see [`spin_for_more`]).
struct PollTrial {
    /// The turn under way: even ones poll, odd ones do not; [`PollTrial::TURNS`] while
    /// a verdict holds.
    turn: u8,
    /// When the turn (or, while a verdict holds, the window of the same length) began,
    /// in µs since start, and the frames taken then.
    turn_began: u64,
    frames_then: u64,
    /// Whether the turn's changeover is over and its frames are being counted.
    settled: bool,
    /// The trial's frames and time so far: [not polling, polling].
    frames: [u64; 2],
    micros: [u64; 2],
    /// The verdict, until when it holds (µs since start), and how long the next holds.
    polls: bool,
    until: u64,
    hold: u64,
    /// The last 32 polls that began after this node had answered since its last read:
    /// one bit each, whether input was already waiting at its first look (see
    /// [`PollTrial::in_flight`]). Not polling, nothing is looked at: the bits stay as
    /// they were.
    after_answer: u32,
}

impl PollTrial {
    /// A turn counts the frames of its last `TURN` µs, after `SETTLE` µs of changeover:
    /// what polling or not polling does to the peer (which threads the kernel runs
    /// where) takes some tens of milliseconds to show; counted from the changeover, a
    /// turn showed a third of the difference.
    const TURN: u64 = 60_000;
    const SETTLE: u64 = 40_000;
    const TURNS: u8 = 4;
    /// Not polling must take this much more to win: 1/16 (6%).
    const MARGIN: u64 = 16;
    /// Nor does it win with fewer frames than this in its turns (a peer too slow for
    /// polling to matter either way).
    const MIN_FRAMES: u64 = 200;
    const HOLD: u64 = 500_000;
    const MAX_HOLD: u64 = 2_000_000;
    const FIRST: u64 = 1_000_000;

    /// A connection's, made `now` (µs since start): its first trial comes no sooner
    /// than [`PollTrial::FIRST`] from now. A trial costs a peer that polling suits, and
    /// one that keeps exchanges in flight for less than that would not repay it.
    fn new(now: u64) -> Self {
        PollTrial {
            turn: Self::TURNS,
            turn_began: 0,
            frames_then: 0,
            settled: true,
            frames: [0; 2],
            micros: [0; 2],
            polls: true,
            until: now + Self::FIRST,
            hold: Self::HOLD,
            after_answer: 0,
        }
    }

    /// Notes whether the first look of a poll begun after we answered found input.
    fn looked(&mut self, found: bool) {
        self.after_answer = (self.after_answer << 1) | u32::from(found);
    }

    /// How sure it is that the peer keeps exchanges in flight, from the polls that
    /// began after we had answered: a peer in lock step has sent nothing yet then, and
    /// one with calls in flight has. (The polls that began before we answered say
    /// nothing: a BEAM caller in lock step writes a call's `MONITOR_P` and its request
    /// apart, and a look after the first finds the second.) `Some(true)` at 12 or more
    /// of the last 32, `Some(false)` at 3 or fewer, `None` between: with 64 calls in
    /// flight from a BEAM caller, counts of a few out of 8 are common.
    fn in_flight(&self) -> Option<bool> {
        match self.after_answer.count_ones() {
            12.. => Some(true),
            ..=3 => Some(false),
            _ => None,
        }
    }

    /// Whether to poll now (`now` in µs since start), `frames` having been taken from
    /// `peer` so far.
    fn polls(&mut self, now: u64, frames: u64, peer: &str) -> bool {
        let took = now.saturating_sub(self.turn_began);
        let taken = frames.saturating_sub(self.frames_then);
        if self.turn < Self::TURNS && self.in_flight() == Some(false) {
            // Back in lock step (seen in the polling turns): the trial is void.
            self.poll_again(now);
        }
        if self.turn < Self::TURNS {
            if !self.settled {
                if took >= Self::SETTLE {
                    self.settled = true;
                    self.window(now, frames);
                }
            } else if took > 2 * Self::TURN {
                // The peer paused: the turn says nothing.
                self.poll_again(now);
            } else if took >= Self::TURN {
                let i = usize::from(self.turn.is_multiple_of(2));
                self.frames[i] += taken;
                self.micros[i] += took;
                self.turn += 1;
                if self.turn == Self::TURNS || self.clearly_worse_without() {
                    self.decide(now, peer);
                } else {
                    self.settled = false;
                }
                self.window(now, frames);
            }
            if self.turn < Self::TURNS {
                return self.turn.is_multiple_of(2);
            }
            return self.polls;
        }
        if took >= Self::TURN {
            // Not polling holds while the frames come at half the trial's rate or
            // more: taken / took >= frames[0] / micros[0] / 2.
            if !self.polls
                && (took > 2 * Self::TURN
                    || u128::from(taken) * u128::from(self.micros[0]) * 2
                        < u128::from(self.frames[0]) * u128::from(took))
            {
                // The peer changed: polled for, and tried again only once it is seen
                // to keep exchanges in flight again.
                self.poll_again(now);
                self.after_answer = 0;
            }
            self.window(now, frames);
        }
        if now >= self.until && self.in_flight() == Some(true) {
            self.turn = 0;
            self.settled = false;
            self.frames = [0; 2];
            self.micros = [0; 2];
            self.window(now, frames);
            return true;
        }
        self.polls
    }

    /// Ends a trial under way, or a verdict not to poll: polled for from `now`, and tried
    /// again as soon as the peer keeps exchanges in flight.
    fn poll_again(&mut self, now: u64) {
        self.turn = Self::TURNS;
        self.polls = true;
        self.until = now;
    }

    /// Starts counting (a turn's frames, or a verdict's window) from `now`.
    fn window(&mut self, now: u64, frames: u64) {
        self.turn_began = now;
        self.frames_then = frames;
    }

    /// Whether the turns so far found not polling a quarter slower or worse: the
    /// trial ends there, sparing a peer that polling suits the rest of it.
    fn clearly_worse_without(&self) -> bool {
        let [off, on] = self.frames;
        let [off_time, on_time] = self.micros;
        off_time > 0
            && u128::from(off) * u128::from(on_time) * 4
                <= u128::from(on) * u128::from(off_time) * 3
    }

    fn decide(&mut self, now: u64, peer: &str) {
        // Frames a second, compared as cross products: not polling wins when
        // off / off_time > on / on_time * (1 + 1/MARGIN).
        let [off, on] = self.frames;
        let [off_time, on_time] = self.micros;
        let polls = off < Self::MIN_FRAMES
            || u128::from(off) * u128::from(on_time) * u128::from(Self::MARGIN)
                <= u128::from(on) * u128::from(off_time) * u128::from(Self::MARGIN + 1);
        let per_second = |frames: u64, micros: u64| frames * 1_000_000 / micros.max(1);
        tracing::debug!(
            peer,
            polling = per_second(on, on_time),
            not_polling = per_second(off, off_time),
            "busy-polling trial with {peer}: {} (frames a second)",
            if polls {
                "polling kept"
            } else {
                "polling stopped"
            }
        );
        self.hold = if polls == self.polls {
            (self.hold * 2).min(Self::MAX_HOLD)
        } else {
            Self::HOLD
        };
        self.polls = polls;
        self.until = now + self.hold;
        self.turn = Self::TURNS;
    }
}

/// Polls for more input for up to `spin` (`NodeConfig::busy_poll`), letting every other
/// ready task run between looks (each `yield_now` also lets the runtime poll the network
/// without blocking). Only in a conversation: a peer streaming one-way messages is read
/// in batches as they pile up, not one by one for a core's worth of polling. With a peer
/// that keeps several exchanges in flight ([`Conversation::pipelined`]), only while some
/// core would otherwise idle ([`cores_all_busy`]): its next input comes anyway, and
/// polling would take a core from it. A peer in lock step is polled for regardless: the
/// threads `/proc/loadavg` counts as runnable are then mostly its schedulers
/// busy-waiting for our answer (with an OTP 29 caller on two cores, the count stopped
/// the polling for its sequential calls, and each round trip took a fifth longer), and
/// every wake-up of ours adds to its round trips. With a peer that keeps exchanges in
/// flight, the connection also tries now and then not polling at all ([`PollTrial`]):
/// `frames` is the count of frames taken so far. `None` when nothing came (or another
/// reader is spinning, or nobody is answering this peer, or it keeps exchanges in flight
/// and every core is busy or the last trial found not polling faster).
async fn spin_for_more<T>(
    look: &mut impl FnMut() -> Option<T>,
    spin: Duration,
    conn: &ConnHandle,
    talk: &mut Conversation,
    frames: usize,
) -> Option<T> {
    struct Spinning;
    impl Drop for Spinning {
        fn drop(&mut self) {
            SPINNERS.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if spin.is_zero() {
        return None;
    }
    if SPINNERS.fetch_add(1, Ordering::Relaxed) >= MAX_SPINNERS {
        SPINNERS.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let _spinning = Spinning;
    let start = std::time::Instant::now();
    if !talk
        .trial
        .polls(micros_at(start), frames as u64, conn.peer.as_str())
    {
        return None;
    }
    let mut first = true;
    loop {
        tokio::task::yield_now().await;
        let read = look();
        if std::mem::take(&mut first) {
            talk.looked(read.is_some(), talk.answered(conn));
        }
        if let Some(read) = read {
            return Some(read);
        }
        if !polls_on(talk.is_on(conn), talk.pipelined(), cores_all_busy) {
            return None;
        }
        // Politely: a thread of another process waiting for this core (on a small
        // machine, often the very peer we wait for) gets it first.
        std::thread::yield_now();
        if start.elapsed() >= spin {
            return None;
        }
    }
}

/// Whether a poll goes on after a look that found nothing: only in a conversation, and,
/// with a peer that keeps exchanges in flight, only while some core would otherwise idle
/// (see [`spin_for_more`]). `all_busy` is asked last: a connection that is not in a
/// conversation (a one-way stream), or whose peer is in lock step, has no reason to
/// read `/proc/loadavg`.
fn polls_on(in_conversation: bool, pipelined: bool, all_busy: impl FnOnce() -> bool) -> bool {
    in_conversation && !(pipelined && all_busy())
}

/// Whether every core has a thread to run besides this one, as `/proc/loadavg` counts
/// the runnable threads right now: then the time we would spend polling is time a
/// thread that has work (often the very peer we wait for, on a small machine) would not
/// get, and sleeping costs little (no core goes idle). Polling pays only while a core
/// would otherwise idle. Looked at most once a millisecond, only by a connection that is
/// polling; the verdict is the majority of the last 8 looks. Where the file is not
/// there, never.
fn cores_all_busy() -> bool {
    static LOOKS: AtomicU64 = AtomicU64::new(0);
    static LAST_LOOK: AtomicU64 = AtomicU64::new(0);
    // The machine's cores, not this process's share of them: the count of runnable
    // threads is the machine's too.
    static CORES: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|text| cpu_count(&text))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    });
    let now = micros_since_start();
    if now.saturating_sub(LAST_LOOK.load(Ordering::Relaxed)) >= 1000 {
        LAST_LOOK.store(now, Ordering::Relaxed);
        let busy = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| runnable_threads(&text))
            .is_some_and(|runnable| runnable > *CORES);
        let looks = LOOKS.load(Ordering::Relaxed);
        LOOKS.store(((looks << 1) | u64::from(busy)) & 0xff, Ordering::Relaxed);
    }
    LOOKS.load(Ordering::Relaxed).count_ones() > 4
}

/// The threads runnable right now, this one included, from `/proc/loadavg`'s fourth
/// field: "0.52 0.58 0.59 3/245 12345" has 3 (of 245).
fn runnable_threads(loadavg: &str) -> Option<usize> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .0
        .parse()
        .ok()
}

/// The CPUs of a list such as `/sys/devices/system/cpu/online`'s: "0-3,6,8-9" has 7.
fn cpu_count(list: &str) -> Option<usize> {
    list.trim().split(',').try_fold(0, |n, range| {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (usize, usize) = (first.parse().ok()?, last.parse().ok()?);
        Some(n + last.checked_sub(first)? + 1)
    })
}

fn micros_since_start() -> u64 {
    micros_at(std::time::Instant::now())
}

/// `at` in µs since the process's first look at the clock here.
fn micros_at(at: std::time::Instant) -> u64 {
    static START: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    at.saturating_duration_since(*START).as_micros() as u64
}

/// Decodes one data frame and hands it to the owner.
fn take_in<O: Owner>(
    owner: &O,
    conn: &Arc<ConnHandle>,
    data: &[u8],
    incoming: &mut Incoming,
    limits: &Limits,
    memo: &mut O::Memo,
) -> Result<(), codec::DecodeError> {
    if let Some(decoded) = codec::decode(data, incoming, &limits.terms)? {
        if let codec::Decoded::Message(message) = &decoded {
            if let Some((op, from)) = signaller(message).filter(|(_, f)| f.node != conn.peer) {
                return Err(codec::DecodeError::Invalid(format!(
                    "{op} from {from}, a process of another node than {}",
                    conn.peer.name()
                )));
            }
        }
        owner.take(conn, decoded, memo);
    }
    Ok(())
}

/// The process a link, monitor or exit signal comes from: the BEAM takes one that is
/// not a process of the peer for an invalid message and closes the connection
/// (`dist.c`), so a peer cannot speak for a third node's processes. Messages are not
/// checked, as the BEAM does not check them.
fn signaller(message: &Message) -> Option<(&'static str, &Pid)> {
    use crate::connection::message::PidOrAtom;
    Some(match message {
        Message::Link(m) => ("LINK", &m.from_pid),
        Message::Unlink(m) => ("UNLINK", &m.from_pid),
        Message::UnlinkId(m) => ("UNLINK_ID", &m.from_pid),
        Message::UnlinkIdAck(m) => ("UNLINK_ID_ACK", &m.from_pid),
        Message::Exit(m) => ("EXIT", &m.from_pid),
        Message::Exit2(m) => ("EXIT2", &m.from_pid),
        Message::MonitorP(m) => ("MONITOR_P", &m.from_pid),
        Message::DemonitorP(m) => ("DEMONITOR_P", &m.from_pid),
        Message::MonitorPExit(m) => match &m.from_proc {
            PidOrAtom::Pid(p) => ("MONITOR_P_EXIT", p),
            PidOrAtom::Atom(_) => return None,
        },
        Message::SpawnRequest(m) => ("SPAWN_REQUEST", &m.from_pid),
        _ => return None,
    })
}

/// The process a signal comes from, where it names one.
fn sender_of(message: &Message) -> Option<&Pid> {
    use crate::connection::message::PidOrAtom;
    Some(match message {
        Message::Link(m) => &m.from_pid,
        Message::Exit(m) => &m.from_pid,
        Message::Unlink(m) => &m.from_pid,
        Message::RegSend(m) => &m.from_pid,
        Message::GroupLeader(m) => &m.from_pid,
        Message::Exit2(m) => &m.from_pid,
        Message::MonitorP(m) => &m.from_pid,
        Message::DemonitorP(m) => &m.from_pid,
        Message::MonitorPExit(m) => match &m.from_proc {
            PidOrAtom::Pid(p) => p,
            PidOrAtom::Atom(_) => return None,
        },
        Message::SendSender(m) => &m.from_pid,
        Message::SpawnRequest(m) => &m.from_pid,
        Message::UnlinkId(m) => &m.from_pid,
        Message::UnlinkIdAck(m) => &m.from_pid,
        Message::AliasSend(m) => &m.from_pid,
        _ => return None,
    })
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

/// How long after small messages last went out beside a large one the writer still lets
/// other tasks run between the large one's fragments.
const TALK: Duration = Duration::from_millis(5);

/// Writes queued frames, all that are waiting in one system call, and a tick whenever a
/// tick interval passed without anything written (as `net_kernel`'s ticker does).
async fn write_loop(mut w: WriteHalf, conn: Arc<ConnHandle>, tick_interval: Duration) {
    /// Marks the outbox closed however the writer ends (returning, or aborted by the
    /// reader), so senders stop queuing.
    struct Closed<'a>(&'a Outbox);
    impl Drop for Closed<'_> {
        fn drop(&mut self) {
            self.0.closed.store(true, Ordering::Release);
            let mut pending = lock(&self.0.pending);
            pending.bytes = Vec::new();
            pending.large = VecDeque::new();
            pending.large_bytes = 0;
            self.0.queued.store(0, Ordering::Relaxed);
            drop(pending);
            self.0.drained.notify_waiters();
        }
    }
    /// A larger buffer than this is not kept for the next batch.
    const KEEP: usize = 256 * 1024;
    let outbox = &conn.outbox;
    let _closed = Closed(outbox);
    // The first tick one interval from now (as the reader's quarters).
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + tick_interval, tick_interval);
    let mut wrote = false;
    let mut batch = Vec::new();
    let mut busy = false;
    // When a batch last carried more than a fragment.
    let mut talked: Option<std::time::Instant> = None;
    'run: loop {
        tokio::select! {
            _ = conn.closing.cancelled() => break,
            _ = outbox.ready.notified() => {
                if busy && lock(&outbox.pending).frames == 1 {
                    // The last write carried several frames: let the processes that are
                    // ready run first, so their replies share this write instead of
                    // costing a system call each. A lone request/response never waits.
                    tokio::task::yield_now().await;
                }
                // Everything queued; then, while a large message is going out, a
                // fragment of it at a time with whatever was queued meanwhile.
                loop {
                    let (frames, more, queued) = {
                        let mut pending = lock(&outbox.pending);
                        let frames = pending.take(&mut batch);
                        let queued = pending.queued();
                        outbox.queued.store(queued, Ordering::Relaxed);
                        (frames, !pending.large.is_empty(), queued)
                    };
                    if frames == 0 {
                        break;
                    }
                    busy = frames > 1;
                    // (A flush is free on TCP; TLS sends what it holds on it.)
                    if w.write_all(&batch).await.is_err() || w.flush().await.is_err() {
                        break 'run;
                    }
                    batch.clear();
                    if batch.capacity() > KEEP {
                        batch = Vec::new();
                    }
                    wrote = true;
                    if queued <= conn.busy_limit {
                        outbox.drained.notify_waiters();
                    }
                    if !more {
                        break;
                    }
                    // While small messages go out beside a large one, the other tasks
                    // run between two of its fragments (on a one-thread runtime, the
                    // reader that takes in the answers among them), as a BEAM does other
                    // work between the fragments it writes: an exchange beside a large
                    // message does not wait for megabytes. A large message alone goes
                    // out without the pauses (tokio's budget still yields now and then).
                    if frames > 1 {
                        talked = Some(std::time::Instant::now());
                    }
                    if talked.is_some_and(|t| t.elapsed() < TALK) {
                        tokio::task::yield_now().await;
                    }
                }
            }
            _ = ticker.tick() => {
                if !wrote
                    && (w.write_all(&[0, 0, 0, 0]).await.is_err() || w.flush().await.is_err())
                {
                    break;
                }
                wrote = false;
            }
        }
    }
    let _ = w.shutdown().await;
}

/// The outbox without a connection, for tests of what it writes.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) struct Outgoing(Pending);

    pub(crate) fn pending(peer_flags: u64) -> Outgoing {
        Outgoing(Pending {
            framing: Framing::for_peer(peer_flags),
            fragments: peer_flags & crate::flags::FRAGMENTS != 0,
            ..Pending::default()
        })
    }

    /// Queues a lent message.
    pub(crate) fn queue(p: &mut Outgoing, from: &Pid, to: &str, message: &crate::term::Term) {
        queue_tail(p, from, to, message, Vec::new());
    }

    /// Queues a message given away: a large binary that ends it goes out from its own
    /// buffer.
    pub(crate) fn queue_given(
        p: &mut Outgoing,
        from: &Pid,
        to: &str,
        mut message: crate::term::Term,
    ) {
        let tail = large_tail(&mut message);
        queue_tail(p, from, to, &message, tail);
    }

    fn queue_tail(
        p: &mut Outgoing,
        from: &Pid,
        to: &str,
        message: &crate::term::Term,
        tail: Vec<u8>,
    ) {
        let name = Atom::from(to);
        let to = codec::To::Name(&name);
        let payload = codec::Payload::Term(message);
        let tail_len = tail.len();
        p.0.queue(Some(from), tail, |out, framing| {
            codec::encode_send_into(out, framing, from, to, payload, tail_len, u64::MAX)
        })
        .unwrap();
    }

    pub(crate) fn take(p: &mut Outgoing, batch: &mut Vec<u8>) -> usize {
        p.0.take(batch)
    }

    /// The bytes queued, as the busy limit counts them.
    pub(crate) fn queued(p: &Outgoing) -> usize {
        p.0.queued()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_pipelined_while_most_of_the_last_8_polls_found_input_waiting() {
        let mut talk = Conversation::new(0);
        assert!(!talk.pipelined());
        // A peer in lock step: nothing has come yet when we have just answered.
        for _ in 0..8 {
            talk.looked(false, true);
            assert!(!talk.pipelined());
        }
        // Calls in flight: input is there at the first look, most of the time.
        for found in [true, true, false, true, true] {
            talk.looked(found, true);
        }
        assert!(!talk.pipelined(), "4 of the last 8");
        talk.looked(true, true);
        assert!(talk.pipelined(), "5 of the last 8");
        // Back to lock step once most of the last 8 found nothing.
        for _ in 0..4 {
            talk.looked(false, true);
        }
        assert!(!talk.pipelined());
    }

    #[test]
    fn only_polls_begun_after_an_answer_tell_exchanges_in_flight() {
        let mut talk = Conversation::new(0);
        assert_eq!(talk.trial.in_flight(), Some(false));
        // A BEAM caller in lock step: the request found after its MONITOR_P, before we
        // answered.
        for _ in 0..32 {
            talk.looked(true, false);
        }
        assert!(talk.pipelined());
        assert_eq!(talk.trial.in_flight(), Some(false));
        for _ in 0..4 {
            talk.looked(true, true);
        }
        assert_eq!(talk.trial.in_flight(), None, "4 of 32: not sure");
        for _ in 0..8 {
            talk.looked(true, true);
        }
        assert_eq!(talk.trial.in_flight(), Some(true), "12 of 32");
        // Now and then nothing waiting: still in flight.
        for _ in 0..4 {
            talk.looked(false, true);
            talk.looked(true, true);
        }
        assert_eq!(talk.trial.in_flight(), Some(true));
        for _ in 0..29 {
            talk.looked(false, true);
        }
        assert_eq!(talk.trial.in_flight(), Some(false), "3 of 32");
    }

    /// `t.polls(now, frames, "peer")` after looks that make [`PollTrial::in_flight`]
    /// `in_flight`.
    fn at(t: &mut PollTrial, now: u64, frames: u64, in_flight: Option<bool>) -> bool {
        t.after_answer = match in_flight {
            Some(true) => u32::MAX,
            Some(false) => 0,
            None => 0xff,
        };
        assert_eq!(t.in_flight(), in_flight);
        t.polls(now, frames, "peer")
    }

    /// Runs a trial with a peer whose frames come at `polling` and `not_polling` a
    /// millisecond, from `now` until its verdict: the verdict, and the time then.
    fn trial(t: &mut PollTrial, mut now: u64, polling: u64, not_polling: u64) -> (bool, u64) {
        let mut frames = 0;
        for _ in 0..10_000 {
            let polls = at(t, now, frames, Some(true));
            if t.turn == PollTrial::TURNS && t.until > now {
                return (polls, now);
            }
            frames += if polls { polling } else { not_polling };
            now += 1_000;
        }
        panic!("no verdict");
    }

    #[test]
    fn polling_a_peer_with_exchanges_in_flight_is_tried_against_not_polling() {
        let first = PollTrial::FIRST;
        let mut t = PollTrial::new(0);
        // Lock step, or not known yet: polled for, no trial.
        assert!(at(&mut t, first, 0, Some(false)));
        assert!(at(&mut t, first, 0, None));
        assert_eq!(t.turn, PollTrial::TURNS);
        // Exchanges in flight, but too soon in the connection's life: no trial.
        assert!(at(&mut t, first - 1, 0, Some(true)));
        assert_eq!(t.turn, PollTrial::TURNS);
        // Then the turns alternate, polling first; each is its changeover and its count.
        assert!(at(&mut t, first, 0, Some(true)));
        assert_eq!(t.turn, 0);
        let turn = PollTrial::SETTLE + PollTrial::TURN;
        assert!(at(&mut t, first + PollTrial::SETTLE, 10, Some(true)));
        assert!(at(&mut t, first + turn - 1, 10, Some(true)));
        assert!(!at(&mut t, first + turn, 20, Some(true)));
        assert_eq!(t.turn, 1);

        // Not polling brings a fifth more frames: it wins, and holds while the frames
        // keep coming, whatever the looks say.
        let mut t = PollTrial::new(0);
        let (polls, now) = trial(&mut t, first, 100, 120);
        assert!(!polls);
        assert_eq!(t.until, now + PollTrial::HOLD);
        let mut frames = 1_000_000;
        assert!(!at(&mut t, now, frames, Some(false)));
        for ms in 1..PollTrial::HOLD / 1000 {
            frames += 120;
            assert!(!at(&mut t, now + ms * 1000, frames, Some(false)));
        }
        // The hold over, a trial again; the same verdict holds twice as long.
        let (polls, now) = trial(&mut t, now + PollTrial::HOLD, 100, 120);
        assert!(!polls);
        assert_eq!(t.until, now + 2 * PollTrial::HOLD);
        // The frames slow to under half the trial's rate (the peer went back to lock
        // step, say): polled for at once, and the looks from before not polling
        // forgotten: no trial until it is seen to keep exchanges in flight again.
        at(&mut t, now, frames, Some(true));
        assert!(!t.polls(now + PollTrial::TURN, frames + 60 * 60, "peer"));
        assert!(t.polls(
            now + 2 * PollTrial::TURN,
            frames + 60 * 60 + 50 * 60,
            "peer"
        ));
        assert_eq!(t.turn, PollTrial::TURNS);
        assert_eq!(t.in_flight(), Some(false));
        assert!(t.polls(now + 3 * PollTrial::TURN, frames, "peer"));
        assert_eq!(t.turn, PollTrial::TURNS);
        assert!(at(
            &mut t,
            now + 3 * PollTrial::TURN + 1,
            frames,
            Some(true)
        ));
        assert_eq!(t.turn, 0, "a trial under way");
        // Lock step seen in a polling turn voids it.
        assert!(at(
            &mut t,
            now + 3 * PollTrial::TURN + 2,
            frames,
            Some(false)
        ));
        assert_eq!(t.turn, PollTrial::TURNS);
        assert!(at(&mut t, now + 3 * PollTrial::TURN + 3, frames, None));
        assert_eq!(t.turn, PollTrial::TURNS);

        // Not polling a quarter slower: the trial ends after its first turn without.
        let mut t = PollTrial::new(0);
        let (polls, now) = trial(&mut t, first, 100, 70);
        assert!(polls);
        assert_eq!(now, first + 2 * (PollTrial::SETTLE + PollTrial::TURN));

        // Polling wins ties, and anything within the margin; and a peer too slow for
        // polling to matter.
        for (polling, not_polling) in [(100, 100), (100, 105), (100, 90), (0, 1)] {
            let mut t = PollTrial::new(0);
            assert!(trial(&mut t, first, polling, not_polling).0);
        }

        // A peer that pauses within a turn voids the trial: polled for, then tried
        // again.
        let mut t = PollTrial::new(0);
        assert!(at(&mut t, first, 0, Some(true)));
        assert!(at(&mut t, first + PollTrial::SETTLE, 0, Some(true)));
        assert!(at(
            &mut t,
            first + PollTrial::SETTLE + 3 * PollTrial::TURN,
            5,
            Some(true)
        ));
        assert_eq!(t.turn, PollTrial::TURNS);
        assert!(at(
            &mut t,
            first + PollTrial::SETTLE + 3 * PollTrial::TURN + 1,
            5,
            Some(true)
        ));
        assert_eq!(t.turn, 0);
    }

    #[test]
    fn a_peer_in_lock_step_is_polled_for_even_when_every_core_is_busy() {
        let busy = || true;
        let idle = || false;
        let unasked = || -> bool { panic!("the load looked at for nothing") };
        // In lock step: polled for, busy cores or not, without reading the load.
        assert!(polls_on(true, false, unasked));
        // Exchanges in flight: only while a core would idle.
        assert!(polls_on(true, true, idle));
        assert!(!polls_on(true, true, busy));
        // Not in a conversation: never, without reading the load.
        assert!(!polls_on(false, true, unasked));
        assert!(!polls_on(false, false, unasked));
    }

    #[test]
    fn runnable_threads_and_cores_are_read_from_proc_and_sys() {
        assert_eq!(runnable_threads("0.52 0.58 0.59 3/245 12345\n"), Some(3));
        assert_eq!(runnable_threads("0.52 0.58 0.59"), None);
        assert_eq!(runnable_threads("a b c x/y z"), None);
        assert_eq!(cpu_count("0-1\n"), Some(2));
        assert_eq!(cpu_count("0-3,6,8-9"), Some(7));
        assert_eq!(cpu_count("0"), Some(1));
        assert_eq!(cpu_count("3-1"), None);
        assert_eq!(cpu_count(""), None);
        // This machine's, where there is one: at least this thread runs.
        if let Ok(text) = std::fs::read_to_string("/proc/loadavg") {
            assert!(runnable_threads(&text).is_some_and(|n| n >= 1), "{text}");
        }
    }
}
