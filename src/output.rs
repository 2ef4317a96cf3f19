//! Standard output and standard error, each written by a thread of its own: what the
//! node's `user` prints and what the log says never stall the node's own threads when
//! the reader of a pipe stops reading (a stalled journald, a `| logger` that hangs), as
//! a BEAM node keeps serving while its `user` waits on the port.

use crate::sync::lock;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What the log may hold unwritten before it drops lines, as the BEAM's logger drops
/// events when overloaded. The node's `user` output is never dropped (a BEAM's `user`
/// keeps its requests too).
const LOG_BACKLOG: usize = 16 << 20;

/// Bytes on their way to one stream, and the thread that writes them.
pub(crate) struct Background {
    stream: fn() -> Box<dyn Write>,
    /// Its file descriptor: one that cannot stall (a file, `/dev/null`) is written at
    /// once, where a thread would cost a wakeup per line.
    fd: i32,
    direct: OnceLock<bool>,
    name: &'static str,
    limit: Option<usize>,
    /// What was written last did not end its line.
    mid_line: std::sync::atomic::AtomicBool,
    pending: Mutex<Pending>,
    more: Condvar,
    drained: Condvar,
}

struct Pending {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    writing: bool,
    started: bool,
    /// The thread waits for more (and must be woken).
    idle: bool,
    /// Bytes dropped while over the limit, said once the stream takes bytes again.
    dropped: usize,
}

static STDOUT: Background =
    Background::new("cnode-stdout", 1, None, || Box::new(std::io::stdout()));
static STDERR: Background = Background::new("cnode-stderr", 2, Some(LOG_BACKLOG), || {
    Box::new(std::io::stderr())
});

/// What the node's `user` prints when [`user_output_to_stderr`] asked for it there.
static USER_ON_STDERR: Background =
    Background::new("cnode-user", 2, None, || Box::new(std::io::stderr()));

static USER_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Where the node's `user` prints: standard output, written in order (by its own
/// thread where it can stall), or standard error.
pub(crate) fn stdout() -> &'static Background {
    match USER_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        true => &USER_ON_STDERR,
        false => &STDOUT,
    }
}

/// What the node's `user` prints goes to standard error from now on: the `cnode`
/// command's `--json` keeps standard output for the result alone.
#[doc(hidden)]
pub fn user_output_to_stderr() {
    USER_TO_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether what the node's `user` printed last left a line open (`IO.write("...")`
/// without a line end): the `cnode` command starts its result on a line of its own.
#[doc(hidden)]
pub fn stdout_mid_line() -> bool {
    STDOUT.mid_line.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits, at most `timeout` in all, until what was handed to standard output and the
/// log writer has been written (or failed to be: a closed pipe), as `erlang:halt`
/// flushes before the node ends.
pub(crate) fn flush(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    STDOUT.flush_until(deadline);
    USER_ON_STDERR.flush_until(deadline);
    STDERR.flush_until(deadline);
}

impl Background {
    const fn new(
        name: &'static str,
        fd: i32,
        limit: Option<usize>,
        stream: fn() -> Box<dyn Write>,
    ) -> Self {
        Background {
            stream,
            fd,
            direct: OnceLock::new(),
            name,
            limit,
            mid_line: std::sync::atomic::AtomicBool::new(false),
            pending: Mutex::new(Pending {
                chunks: VecDeque::new(),
                bytes: 0,
                writing: false,
                started: false,
                idle: false,
                dropped: 0,
            }),
            more: Condvar::new(),
            drained: Condvar::new(),
        }
    }

    /// Writes `bytes` at once where that cannot wait (a file, or a pipe with room for
    /// them and nothing queued before them), else hands them to the thread: in order
    /// either way, and never waiting for a stream that stalls.
    pub(crate) fn write(&'static self, bytes: &[u8]) {
        if let Some(last) = bytes.last() {
            self.mid_line
                .store(*last != b'\n', std::sync::atomic::Ordering::Relaxed);
        }
        if *self.direct.get_or_init(|| never_stalls(self.fd)) {
            return self.write_now(bytes);
        }
        let mut p = lock(&self.pending);
        if p.chunks.is_empty() && !p.writing && bytes.len() <= ATOMIC_WRITE && has_room(self.fd) {
            // Under the lock, so that nothing the thread writes overtakes it.
            return self.write_now(bytes);
        }
        if !p.started {
            p.started = true;
            let spawned = std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || self.run());
            if spawned.is_err() {
                // No thread to be had: write here, as before.
                p.started = false;
                drop(p);
                return self.write_now(bytes);
            }
        }
        if self
            .limit
            .is_some_and(|limit| p.bytes + bytes.len() > limit)
        {
            p.dropped += bytes.len();
            return;
        }
        p.bytes += bytes.len();
        p.chunks.push_back(bytes.to_vec());
        if p.idle {
            p.idle = false;
            self.more.notify_one();
        }
    }

    /// Writes `bytes` here and now; what fails is lost, as the thread's writes.
    fn write_now(&self, bytes: &[u8]) {
        let mut out = (self.stream)();
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    fn run(&self) {
        let mut out = (self.stream)();
        loop {
            let (chunks, dropped) = {
                let mut p = lock(&self.pending);
                while p.chunks.is_empty() {
                    p.writing = false;
                    p.idle = true;
                    self.drained.notify_all();
                    p = self.more.wait(p).unwrap_or_else(|e| e.into_inner());
                }
                p.idle = false;
                p.writing = true;
                p.bytes = 0;
                (
                    std::mem::take(&mut p.chunks),
                    std::mem::take(&mut p.dropped),
                )
            };
            for chunk in chunks {
                // A stream that fails (a closed pipe, a full disk) loses what it could
                // not take; the node goes on.
                let _ = out.write_all(&chunk);
            }
            if dropped > 0 {
                let _ = writeln!(
                    out,
                    "cnode: {dropped} bytes of log dropped: the log was not read"
                );
            }
            let _ = out.flush();
        }
    }

    fn flush_until(&self, deadline: Instant) {
        let mut p = lock(&self.pending);
        while p.started && (p.writing || !p.chunks.is_empty()) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            p = self
                .drained
                .wait_timeout(p, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// What a pipe with room takes in one write without waiting (`PIPE_BUF`).
const ATOMIC_WRITE: usize = 4096;

/// Whether `fd` takes `ATOMIC_WRITE` bytes now (`poll` says `POLLOUT`: a pipe with a
/// page free), or fails at once (its reader gone).
#[cfg(target_os = "linux")]
fn has_room(fd: i32) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one pollfd, and no waiting.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready == 1 && poll.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0
}

#[cfg(not(target_os = "linux"))]
fn has_room(_fd: i32) -> bool {
    false
}

/// Whether writing to `fd` cannot stall: a regular file, or `/dev/null`. A pipe, a
/// socket or a terminal can.
#[cfg(target_os = "linux")]
fn never_stalls(fd: i32) -> bool {
    // SAFETY: fstat and stat fill the zeroed structs they are given, nothing more.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return false;
        }
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => true,
            libc::S_IFCHR => {
                let mut null: libc::stat = std::mem::zeroed();
                libc::stat(c"/dev/null".as_ptr(), &mut null) == 0 && null.st_rdev == st.st_rdev
            }
            _ => false,
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn never_stalls(_fd: i32) -> bool {
    false
}

/// A log writer for `tracing-subscriber` (`fmt().with_writer(cnode::log_writer)`, with
/// `.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))` for no colour
/// codes in a file or journald)
/// that hands each line to a thread of its own writing standard error: a log whose
/// reader stalls (a pipe nobody reads) does not stall the node, and beyond 16 MiB
/// unwritten, lines are dropped (and the count said once it is read again), as the
/// BEAM's logger drops events when overloaded. A closed pipe loses the lines.
pub fn log_writer() -> LogWriter {
    LogWriter(Vec::new())
}

/// What [`log_writer`] gives: a line collected, handed over when flushed or dropped.
#[derive(Debug)]
pub struct LogWriter(Vec<u8>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.0.is_empty() {
            STDERR.write(&self.0);
            self.0.clear();
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
