//! Framing after the handshake: a 4-byte big-endian length, then that many bytes; a
//! length of zero is a tick.
//!
//! Like mini-redis's `Connection::read_frame`, a frame is parsed only once it is wholly
//! buffered, except that the rest of a large frame can be handed to its place and read
//! straight into it ([`FrameReader::take_partial`], [`FrameReader::read_into`]: a large
//! message's continuation fragments, see `Direct` in the connection). The buffer grows
//! with what actually arrives (at most [`READ_CHUNK`] beyond it), never with what the
//! header announces, so a peer announcing 4 GiB and sending 1 KB costs about 1 KB;
//! lengths above the configured maximum end the connection.

use bytes::BufMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much the buffer may grow ahead of the bytes that have arrived.
const READ_CHUNK: usize = 64 * 1024;
/// The least room a read is given; a read that fills its room doubles it for the next
/// one, up to [`READ_CHUNK`] (64 calls in flight carrying a 1 KB list each took a read
/// per 4 KB, now one per 64 KB).
const MIN_READ: usize = 4 * 1024;

/// One frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Tick,
    Data(&'a [u8]),
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("connection closed by peer")]
    Closed,
    #[error("connection closed by peer in the middle of a frame")]
    ClosedMidFrame,
    #[error("frame of {len} bytes exceeds the maximum message size of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads frames from the read half of a connection.
pub(crate) struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already handed out as a frame.
    consumed: usize,
    max_frame: usize,
    /// Room to give the next read: doubled when a read fills it.
    room: usize,
    /// The next read takes at most [`MIN_READ`] bytes: a large frame may follow, whose
    /// bytes after the first can go straight to where they belong
    /// ([`take_partial`](Self::take_partial)).
    short_next: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(inner: R, max_frame: usize) -> Self {
        FrameReader {
            inner,
            // Nothing up front: an idle connection holds only what it has needed.
            buf: Vec::new(),
            consumed: 0,
            max_frame,
            room: MIN_READ,
            short_next: false,
        }
    }

    /// The next frame, waiting for as many reads as it takes.
    #[cfg(test)]
    pub(crate) async fn next_frame(&mut self) -> Result<Frame<'_>, FrameError> {
        while self.complete_len()?.is_none() {
            self.fill().await?;
        }
        Ok(self.try_frame()?.expect("a whole frame is buffered"))
    }

    /// The next frame if it is wholly buffered, without reading.
    pub(crate) fn try_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        let Some(needed) = self.complete_len()? else {
            return Ok(None);
        };
        let start = self.consumed;
        self.consumed += needed;
        Ok(Some(if needed == 4 {
            Frame::Tick
        } else {
            Frame::Data(&self.buf[start + 4..start + needed])
        }))
    }

    /// One read into the buffer (call it when [`try_frame`](Self::try_frame) has nothing).
    /// Cancel-safe: a read that has not completed took nothing.
    pub(crate) async fn fill(&mut self) -> Result<(), FrameError> {
        // What was handed out goes only now, before reading more: one move of the rest
        // per read, not one per frame (a read can hold thousands of ticks).
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
            // A large frame leaves a large buffer behind: give it back.
            if self.buf.capacity() > 4 * READ_CHUNK && self.buf.len() < READ_CHUNK {
                self.buf.shrink_to(READ_CHUNK);
            }
        }
        let wanted = self.wanted().max(self.room);
        if self.buf.capacity() - self.buf.len() < wanted {
            // At least a page, so a header does not cost a read of its own.
            super::pages::reserve(&mut self.buf, wanted.clamp(MIN_READ, READ_CHUNK));
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = if self.short_next {
            let n = self
                .inner
                .read_buf(&mut (&mut self.buf).limit(MIN_READ))
                .await?;
            self.short_next = false;
            n
        } else {
            self.inner.read_buf(&mut self.buf).await?
        };
        if n == room {
            self.room = (2 * self.room).min(READ_CHUNK);
        }
        if n == 0 {
            return Err(if self.buf.is_empty() {
                FrameError::Closed
            } else {
                FrameError::ClosedMidFrame
            });
        }
        Ok(())
    }

    /// The next frame when only part of it is buffered: its length (after the four
    /// bytes of length) and its bytes buffered so far. `None` when it is whole, or its
    /// length has not all come.
    pub(crate) fn partial(&self) -> Option<(usize, &[u8])> {
        let pending = &self.buf[self.consumed..];
        let len = u32::from_be_bytes(pending.get(..4)?.try_into().unwrap()) as usize;
        (len <= self.max_frame && pending.len() < 4 + len).then(|| (len, &pending[4..]))
    }

    /// Hands over the buffered part of the next frame (see [`partial`](Self::partial)):
    /// its first `skip` bytes dropped, the rest appended to `dest`. Returns how many of
    /// its bytes are still to come: theirs is [`read_into`](Self::read_into), and the
    /// frame after it is read from the start of an empty buffer, with the least room
    /// (a read of what follows the frame's header leaves the rest of the frame to come
    /// straight into its place).
    pub(crate) fn take_partial(&mut self, skip: usize, dest: &mut Vec<u8>) -> usize {
        let (len, part) = self.partial().expect("a partial frame is buffered");
        let missing = len - part.len();
        dest.extend_from_slice(&part[skip..]);
        self.buf.clear();
        self.consumed = 0;
        self.room = MIN_READ;
        self.short_next = true;
        missing
    }

    /// Makes the next [`fill`](Self::fill) take at most [`MIN_READ`] bytes: enough to
    /// see what a large frame partly buffered is before its bytes are read.
    pub(crate) fn short_read(&mut self) {
        self.short_next = true;
    }

    /// One read of at most `n` bytes (and [`READ_CHUNK`]) of a frame handed over by
    /// [`take_partial`](Self::take_partial), straight into `dest`: how many came.
    /// Cancel-safe, as [`fill`](Self::fill).
    pub(crate) async fn read_into(
        &mut self,
        dest: &mut Vec<u8>,
        n: usize,
    ) -> Result<usize, FrameError> {
        let n = n.min(READ_CHUNK);
        // `dest` holds a message being put together: it grows within the largest a
        // message may be.
        super::pages::reserve_within(dest, n, self.max_frame);
        match self.inner.read_buf(&mut (&mut *dest).limit(n)).await? {
            0 => Err(FrameError::ClosedMidFrame),
            got => Ok(got),
        }
    }

    /// Length of the whole next frame (header included) if it is all buffered.
    fn complete_len(&self) -> Result<Option<usize>, FrameError> {
        let pending = &self.buf[self.consumed..];
        if pending.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes(pending[..4].try_into().unwrap()) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        Ok((pending.len() >= 4 + len).then_some(4 + len))
    }

    /// Bytes still missing for the first frame (or its header), once nothing before it
    /// is left in the buffer.
    fn wanted(&self) -> usize {
        if self.buf.len() < 4 {
            return 4 - self.buf.len();
        }
        let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
        (4 + len).saturating_sub(self.buf.len()).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn ticks_and_frames_across_partial_reads() {
        let (mut w, r) = tokio::io::duplex(8);
        let mut reader = FrameReader::new(r, 1024);
        tokio::spawn(async move {
            w.write_all(&[0, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c'])
                .await
                .unwrap();
        });
        assert_eq!(reader.next_frame().await.unwrap(), Frame::Tick);
        assert_eq!(reader.next_frame().await.unwrap(), Frame::Data(b"abc"));
        assert!(matches!(reader.next_frame().await, Err(FrameError::Closed)));
    }

    #[tokio::test]
    async fn announced_length_is_not_allocated() {
        let (mut w, r) = tokio::io::duplex(64 * 1024);
        let mut reader = FrameReader::new(r, usize::MAX);
        tokio::spawn(async move {
            w.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
            w.write_all(&[7; 1024]).await.unwrap();
        });
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::ClosedMidFrame)
        ));
        assert!(reader.buf.capacity() <= 2 * READ_CHUNK + 1024);
    }

    /// A large frame's bytes after those buffered go straight to where they belong, and
    /// the frames after it are read as before.
    #[tokio::test]
    async fn the_rest_of_a_frame_is_read_into_its_place() {
        let (mut w, r) = tokio::io::duplex(1 << 20);
        let body: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let frame = [&(body.len() as u32).to_be_bytes()[..], &body].concat();
        w.write_all(&frame[..1000]).await.unwrap();
        let mut reader = FrameReader::new(r, 1 << 20);
        reader.fill().await.unwrap();
        assert!(reader.try_frame().unwrap().is_none());
        let (len, head) = reader.partial().unwrap();
        assert_eq!((len, head), (20_000, &body[..996]));
        let mut dest = b"before".to_vec();
        let mut missing = reader.take_partial(10, &mut dest);
        assert_eq!(missing, 20_000 - 996);
        w.write_all(&frame[1000..]).await.unwrap();
        // A tick and a small frame after it, which the next fill reads (at most
        // MIN_READ of them).
        w.write_all(&[0, 0, 0, 0, 0, 0, 0, 2, 7, 7]).await.unwrap();
        w.write_all(&(2 * MIN_READ as u32).to_be_bytes())
            .await
            .unwrap();
        w.write_all(&[1; 2 * MIN_READ]).await.unwrap();
        while missing > 0 {
            missing -= reader.read_into(&mut dest, missing).await.unwrap();
        }
        assert_eq!(dest, [&b"before"[..], &body[10..]].concat());
        reader.fill().await.unwrap();
        assert_eq!(reader.buf.len(), MIN_READ, "a short read after the frame");
        assert_eq!(reader.try_frame().unwrap(), Some(Frame::Tick));
        assert_eq!(reader.try_frame().unwrap(), Some(Frame::Data(&[7, 7])));
        assert_eq!(reader.partial().unwrap().0, 2 * MIN_READ);
    }

    /// A peer that closes in the middle of the rest of a frame is told apart from one
    /// that closes between frames.
    #[tokio::test]
    async fn closing_in_the_rest_of_a_frame() {
        let (mut w, r) = tokio::io::duplex(1 << 16);
        w.write_all(&[0, 0, 1, 0, 1, 2, 3]).await.unwrap();
        let mut reader = FrameReader::new(r, 1 << 20);
        reader.fill().await.unwrap();
        let mut dest = Vec::new();
        let missing = reader.take_partial(0, &mut dest);
        assert_eq!((missing, &dest[..]), (253, &[1, 2, 3][..]));
        drop(w);
        assert!(matches!(
            reader.read_into(&mut dest, missing).await,
            Err(FrameError::ClosedMidFrame)
        ));
    }

    /// Handing out a frame must not move the bytes buffered behind it: a peer would
    /// otherwise make every small frame (a tick is 4 bytes) cost a move of the whole
    /// buffer, thousands of times the work for the same input.
    #[tokio::test]
    async fn frames_are_handed_out_in_place() {
        let (mut w, r) = tokio::io::duplex(1 << 16);
        // As many frames as the first read takes in (it gets MIN_READ bytes of room).
        let n = (MIN_READ / 5) as u16;
        let frames: Vec<u8> = (0..n).flat_map(|i| [0, 0, 0, 1, i as u8]).collect();
        w.write_all(&frames).await.unwrap();
        let mut reader = FrameReader::new(r, 1024);
        let mut last: Option<*const u8> = None;
        for i in 0..n {
            let Frame::Data(d) = reader.next_frame().await.unwrap() else {
                panic!("a data frame")
            };
            assert_eq!(d, [i as u8]);
            if let Some(p) = last {
                assert_eq!(d.as_ptr(), p.wrapping_add(5), "frame {i} was moved");
            }
            last = Some(d.as_ptr());
        }
    }

    /// A read that fills its room gets twice the room next time, up to READ_CHUNK: a
    /// busy peer is read in large gulps, an idle one keeps a small buffer.
    #[tokio::test]
    async fn reads_that_fill_their_room_get_more() {
        let (mut w, r) = tokio::io::duplex(1 << 20);
        let frames: Vec<u8> = (0..READ_CHUNK).flat_map(|_| [0, 0, 0, 1, 7]).collect();
        w.write_all(&frames).await.unwrap();
        let mut reader = FrameReader::new(r, 1024);
        let mut rooms = vec![reader.room];
        for _ in 0..6 {
            reader.fill().await.unwrap();
            rooms.push(reader.room);
        }
        let k = 1024;
        assert_eq!(
            rooms,
            [4 * k, 8 * k, 16 * k, 32 * k, 64 * k, 64 * k, 64 * k]
        );
        // An idle connection: one small frame, one small read, the room it had.
        let (mut w, r) = tokio::io::duplex(1 << 16);
        w.write_all(&[0, 0, 0, 1, 7]).await.unwrap();
        let mut reader = FrameReader::new(r, 1024);
        reader.fill().await.unwrap();
        assert_eq!((reader.room, reader.buf.capacity()), (MIN_READ, MIN_READ));
    }

    /// The buffer a large frame needed is given back once the frame is handled.
    #[tokio::test]
    async fn the_buffer_shrinks_after_a_large_frame() {
        let (mut w, r) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(r, 16 << 20);
        tokio::spawn(async move {
            w.write_all(&(8u32 << 20).to_be_bytes()).await.unwrap();
            w.write_all(&vec![1; 8 << 20]).await.unwrap();
            w.write_all(&[0, 0, 0, 1, 2]).await.unwrap();
        });
        assert!(matches!(reader.next_frame().await.unwrap(), Frame::Data(d) if d.len() == 8 << 20));
        assert_eq!(reader.next_frame().await.unwrap(), Frame::Data(&[2]));
        assert!(matches!(reader.next_frame().await, Err(FrameError::Closed)));
        assert!(
            reader.buf.capacity() <= 4 * READ_CHUNK,
            "{}",
            reader.buf.capacity()
        );
    }

    #[tokio::test]
    async fn oversized_frame_is_refused() {
        let (mut w, r) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(r, 100);
        tokio::spawn(async move {
            w.write_all(&1000u32.to_be_bytes()).await.unwrap();
        });
        assert!(matches!(
            reader.next_frame().await,
            Err(FrameError::TooLarge {
                len: 1000,
                max: 100
            })
        ));
    }
}
