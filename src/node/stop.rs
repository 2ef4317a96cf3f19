//! Stopping a node, as `init:stop/0` stops a BEAM node: first the layers above stop
//! what the node runs as applications (the servers started by no process and the
//! node's `Task.Supervisor`s, with `shutdown`, their `terminate` callbacks run), then
//! what was sent goes out, every connection closes (the peers see the node go down, and links and monitors across
//! them fire with `noconnection`), the node leaves EPMD and accepts no more
//! connections, no timer fires, and every process ends. The program that hosts the node goes on.

use super::{connect, Node};
use crate::sync::lock;
use crate::term::atom;
use std::time::Duration;

/// How long stopping waits for what was queued for the peers to go out.
const FLUSH: Duration = Duration::from_secs(1);

impl Node {
    /// Stops the node as `init:stop/0` stops a BEAM node, and returns once it has
    /// stopped; [`stopped`](Node::stopped) then gives 0. First its applications stop:
    /// the servers and supervisors started by no process ([`gen_server::start`],
    /// [`supervisor::start`]) and its `Task.Supervisor`s are stopped with `shutdown`,
    /// the last started first (their `terminate` runs; a supervisor stops its children
    /// first), so links and monitors on other nodes see `shutdown`. Then what was sent
    /// goes out, every connection closes (links and monitors across them fire with
    /// `noconnection`), the node leaves EPMD, no timer fires, and every other process
    /// ends. The program goes on. Stopping a stopped node does nothing.
    ///
    /// Returns the exit status the node stopped with: 0, or the status of a stop that
    /// was already under way (`init:stop(3)` from a peer, say). Dropping the future
    /// does not undo or stall the stop: it goes on, and [`stopped`](Node::stopped)
    /// resolves when it is done.
    ///
    /// [`gen_server::start`]: crate::gen_server::start
    /// [`supervisor::start`]: crate::supervisor::start
    pub async fn stop(&self) -> i32 {
        self.stop_with(0).await
    }

    /// Resolves once the node has stopped, with the exit status it was stopped with: 0
    /// for [`stop`](Node::stop) and `init:stop/0`, `Status` for `init:stop(Status)` and
    /// `erlang:halt(Status)`.
    pub async fn stopped(&self) -> i32 {
        self.0.stopped.cancelled().await;
        self.0.status.get().copied().unwrap_or(0)
    }

    /// Stops the node, as [`stop`](Node::stop), once the program's standard input
    /// reaches its end: the program that started it closed the pipe, or ended. A test
    /// harness (an ExUnit `setup` that starts the node through a `Port`, say) that
    /// crashes or is killed then leaves no node running and registered with EPMD, as
    /// a BEAM node started by `:peer` with `connection: :standard_io` stops when that
    /// connection closes. What comes in on stdin is read and dropped, and nothing else
    /// in the program may read it; a stdin that is `/dev/null` or closed (a program
    /// started with `&` from a script) stops the node at once. Call it from within the
    /// Tokio runtime (in `main` after [`Node::start`], say).
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node) {
    /// node.stop_on_stdin_eof();
    /// std::process::exit(node.serve_forever().await)
    /// # }
    /// ```
    pub fn stop_on_stdin_eof(&self) {
        let node = self.clone();
        let runtime = tokio::runtime::Handle::current();
        // A thread of its own: a blocking read of stdin in Tokio's blocking pool would
        // hold up the runtime's shutdown until a line came.
        let reader = move || {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 4096];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            runtime.spawn(async move {
                if !node.stop_begun() {
                    tracing::info!(node = %node.name(), "stdin closed - shutting down");
                    node.stop().await;
                }
            });
        };
        if let Err(e) = std::thread::Builder::new()
            .name("stdin-eof".into())
            .spawn(reader)
        {
            tracing::warn!("cannot watch stdin for its end: {e}");
        }
    }

    /// Whether the node is stopping or has stopped: nothing new connects, no new
    /// process runs.
    pub(crate) fn is_stopping(&self) -> bool {
        self.0.stopping.is_cancelled()
    }

    /// Whether a stop has been asked for: from then on, what ends is not started again
    /// and not taken for a failure (the stop ends the applications first, before
    /// [`is_stopping`](Node::is_stopping) is true).
    pub(crate) fn stop_begun(&self) -> bool {
        self.0.status.get().is_some()
    }

    /// Resolves when the node begins to stop.
    pub(crate) async fn stopping(&self) {
        self.0.stopping.cancelled().await
    }

    /// [`stop`](Node::stop) with the exit status `status` for [`stopped`](Node::stopped)
    /// and [`serve_forever`](Node::serve_forever) to give, as `System.stop(status)` (a
    /// node whose application's supervisor gave up, say). Returns the status the node
    /// stopped with: `status`, or that of a stop already under way, which it waits for.
    pub async fn stop_with(&self, status: i32) -> i32 {
        self.end(status, true).await
    }

    /// `erlang:halt(Status)`: stops the node at once, its applications with the rest
    /// (no `terminate` runs; links and monitors across the connections fire with
    /// `noconnection`), as a BEAM node halts.
    pub(crate) async fn halt_with(&self, status: i32) -> i32 {
        self.end(status, false).await
    }

    /// Starts the stop, unless one is under way, and waits for it. The stop runs in a
    /// task of its own: a caller that drops this future (a `select!` whose other branch
    /// won, as when a supervisor watched by `main` ends because the node is stopping)
    /// leaves it running, and whoever waits on `stopped` is not left waiting forever.
    async fn end(&self, status: i32, orderly: bool) -> i32 {
        if self.0.status.set(status).is_ok() {
            let node = self.clone();
            tokio::spawn(async move {
                use futures::FutureExt;
                let steps = std::panic::AssertUnwindSafe(node.run_stop(status, orderly));
                if steps.catch_unwind().await.is_err() {
                    // A step panicked (an application's `terminate`, or a log
                    // subscriber that panics when its stderr is a closed pipe): the
                    // stop still ends, so that `stopped` and `serve_forever` return and
                    // the program can exit, which closes what is left.
                    node.0.stopping.cancel();
                    node.0.stopped.cancel();
                }
            });
        }
        self.stopped().await
    }

    async fn run_stop(&self, status: i32, orderly: bool) {
        tracing::info!(node = %self.name(), status, "node stopping");
        if orderly {
            (self.hooks().stopping)(self).await;
        }
        self.0.stopping.cancel();
        drop(lock(&self.0.epmd).take());
        self.cancel_all_timers();
        let conns = connect::all(self);
        let flushed = futures::future::join_all(conns.iter().map(|c| c.flushed()));
        let _ = tokio::time::timeout(FLUSH, flushed).await;
        for conn in &conns {
            connect::down(self, conn, "node stopped");
        }
        for entry in self.all_entries() {
            entry.halt(atom("shutdown"));
        }
        // What was printed and logged goes out before the program may exit, as
        // `erlang:halt` flushes.
        let _ = tokio::task::spawn_blocking(|| crate::output::flush(FLUSH)).await;
        self.0.stopped.cancel();
    }
}
