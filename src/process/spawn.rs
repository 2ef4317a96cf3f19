//! Starting processes on a node, and the functions BEAM nodes call on it: what
//! [`Node`] can do once there are [`Process`]es.

use super::Process;
use crate::node::{caught, Exception, Node, Prepared, SpawnOpts};
use crate::term::{Atom, Pid, Term};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

/// A function BEAM nodes can call on this node by `{Module, Function, Arity}`: through
/// `Task.Supervisor`, remote spawn, `:rpc`/`:erpc`. It runs in its own process.
pub type Function =
    Arc<dyn Fn(Process, Vec<Term>) -> BoxFuture<'static, Result<Term, Exception>> + Send + Sync>;

/// The functions registered on a node, by `{Module, Function, Arity}`.
#[derive(Default)]
struct Functions(RwLock<HashMap<(String, String, usize), Function>>);

impl Node {
    /// Spawns a process running `body`, with this node's `user` as group leader.
    pub fn spawn<F, Fut>(&self, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        self.spawn_with(self.spawn_opts(self.user_pid()), body)
    }

    /// Spawns a process registered as `name`.
    pub fn spawn_registered<F, Fut>(&self, name: &str, body: F) -> Result<Pid, Exception>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let mut opts = self.spawn_opts(self.user_pid());
        opts.name = Some(Atom::from(name));
        let prepared = self.prepare(opts)?;
        Ok(self.start_prepared(prepared, body))
    }

    /// Runs `body` in a new process of this node and returns what it returns: how code
    /// that is no process (an HTTP handler, `main`) does what only a process can
    /// (`receive`, `call`, `erpc_call`, `task_async`). `Err` when the process ended
    /// before `body` did, with its exit reason: `:shutdown` when the node stopped (or
    /// is stopped: nothing runs then), a linked process's reason (the process does not
    /// trap exits unless `body` says so), `:killed`, or the panic `body` made. A
    /// `Node::call` in flight when the node stops fails so, at once.
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node) -> Result<(), cnode::Exception> {
    /// use cnode::term::atom;
    /// let pong = node
    ///     .run_process(|mut p| async move {
    ///         p.send(("echo", "alex@localhost"), atom("ping"));
    ///         p.receive().await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The future holds no borrow of the node: `tokio::spawn(node.run_process(...))`
    /// runs it on its own. Dropped before it resolves (`tokio::time::timeout` around
    /// it, a `select!`, an HTTP client gone), it kills the process (exit reason
    /// `:killed` for its links), as a BEAM caller's end ends what it was doing: the
    /// monitors it held go, and a reply that comes later finds nobody.
    pub fn run_process<F, Fut, T>(
        &self,
        body: F,
    ) -> impl Future<Output = Result<T, Exception>> + Send + 'static
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let node = self.clone();
        async move { node.run_body(body).await }
    }

    async fn run_body<F, Fut, T>(&self, body: F) -> Result<T, Exception>
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let (exit_to, exited) = tokio::sync::oneshot::channel();
        let prepared = self
            .prepare(self.spawn_opts(self.user_pid()))
            .expect("a process without a name always prepares");
        prepared.entry.state().exit_to.push(exit_to);
        let pid = self.start_prepared(prepared, move |p| async move {
            let _ = done.send(body(p).await);
            Ok(())
        });
        // The caller that gave up on the answer (a `tokio::time::timeout`, a `select!`,
        // an HTTP client gone): the process goes with it, as a BEAM process's call ends
        // with the process, taking its monitors and the call's alias with it.
        let abandoned = Abandoned::new(self.clone(), pid);
        let outcome = result.await;
        abandoned.done();
        match outcome {
            Ok(value) => Ok(value),
            // Ended before `body` did: by an exit signal (a link's), a panic, the node's
            // stop; its exit reason.
            Err(_) => Err(Exception::Exit(
                exited
                    .await
                    .unwrap_or_else(|_| crate::term::atom("shutdown")),
            )),
        }
    }

    /// Runs a prepared process (`Node::prepare`) with `body` as its code.
    pub(crate) fn start_prepared<F, Fut>(&self, prepared: Prepared, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        self.run_prepared(prepared, move |node, entry, mailbox| {
            body(Process::new(node, entry, mailbox))
        })
    }

    pub(crate) fn spawn_with<F, Fut>(&self, opts: SpawnOpts, body: F) -> Pid
    where
        F: FnOnce(Process) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), Exception>> + Send + 'static,
    {
        let prepared = self
            .prepare(SpawnOpts { name: None, ..opts })
            .expect("a process without a name always prepares");
        self.start_prepared(prepared, body)
    }

    /// Registers the function BEAM nodes reach as `Module.function/arity` (use the
    /// Erlang atom for Elixir modules: `"Elixir.Chat"`). It runs in a process of its own
    /// whose group leader decides where its output goes.
    pub fn register_function<F, Fut>(&self, module: &str, function: &str, arity: usize, f: F)
    where
        F: Fn(Process, Vec<Term>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Term, Exception>> + Send + 'static,
    {
        let f: Function = Arc::new(move |p, args| f(p, args).boxed());
        self.0
            .extensions
            .get::<Functions>()
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((module.to_owned(), function.to_owned(), arity), f);
    }

    /// Whether some function of `module` is registered: the module is "loaded" here.
    pub(crate) fn has_module(&self, module: &str) -> bool {
        self.0
            .extensions
            .get::<Functions>()
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .any(|(m, _, _)| m == module)
    }

    pub(crate) fn function(&self, module: &str, function: &str, arity: usize) -> Option<Function> {
        self.0
            .extensions
            .get::<Functions>()
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(module.to_owned(), function.to_owned(), arity))
            .cloned()
    }

    /// Runs `module:function(args)` in process `p`: the registered function, or
    /// `{undef, [{M, F, Args, []}]}` as the BEAM raises for a function that is not there.
    pub async fn apply(
        &self,
        p: Process,
        module: &str,
        function: &str,
        args: Vec<Term>,
    ) -> Result<Term, Exception> {
        let arity = args.len();
        match self.function(module, function, arity) {
            Some(f) => caught(p.pid(), f(p, args))
                .await
                .map_err(|e| e.in_function(module, function, arity)),
            None => Err(Exception::undef(module, function, args)),
        }
    }
}

/// Kills a process whose caller gave up on it (the future of a [`Node::run_process`],
/// or a `NodeTask`, dropped before it finished), unless [`done`](Self::done).
#[derive(Debug)]
pub(crate) struct Abandoned(Option<(Node, Pid)>);

impl Abandoned {
    pub(crate) fn new(node: Node, pid: Pid) -> Self {
        Abandoned(Some((node, pid)))
    }

    /// The caller has what it waited for: nothing to kill.
    pub(crate) fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some((node, pid)) = self.0.take() {
            node.exit(&pid, crate::term::atom("kill"));
        }
    }
}

// Here rather than with the node's other ways to serve: it watches `top` from a
// process, which the node core below does not know.
impl Node {
    /// [`serve_forever`](Node::serve_forever), and the end of the program when
    /// `top` (a top supervisor) ends: it gave up, and the node stops with status 1, as a
    /// BEAM node stops when its permanent application's top supervisor does (logged:
    /// `application's top supervisor #PID<...> exited: shutdown`).
    ///
    /// ```no_run
    /// # async fn demo(node: cnode::Node, children: Vec<cnode::supervisor::ChildSpec>) -> Result<(), Box<dyn std::error::Error>> {
    /// use cnode::supervisor::{self, Strategy};
    /// let sup = supervisor::start(&node, Some("my_sup"), Strategy::OneForOne, children).await?;
    /// std::process::exit(node.serve_while(sup).await)
    /// # }
    /// ```
    pub async fn serve_while(&self, top: crate::term::Pid) -> i32 {
        self.serve_while_watches(top);
        let gone = self.run_process(move |mut p| async move {
            p.monitor(top);
            p.receive().await
        });
        tokio::select! {
            status = self.serve_forever() => status,
            down = gone => {
                // A DOWN, or the node stopping (which ended the watcher): then
                // `stop_with` gives the status of that stop. A stop under way ends
                // the supervisor with `shutdown`: that is no failure.
                if self.stop_begun() {
                    return self.stopped().await;
                }
                if let Ok(down) = down {
                    let reason = crate::term::Match::as_tuple(&down).and_then(|d| d.last().cloned());
                    if let Some(reason) = reason {
                        tracing::error!(
                            node = %self.name(),
                            "application's top supervisor {top} exited: {reason}"
                        );
                    }
                }
                self.stop_with(1).await
            }
        }
    }
}
