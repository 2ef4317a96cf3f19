//! The `Task.Supervisor` protocol (Elixir's `Task.Supervisor` and `Task.Supervised`),
//! hosted and used.
//!
//! Hosting: a registered process answers `{start_task, Args, Restart, Shutdown}` calls
//! with `{ok, Pid}`. The task monitors its owner until it gets the start message
//! `{Owner, Ref, ReplyTo, Callers, {M, F, A}}` (Elixir 1.10+; `Args` is
//! `[{Node, Owner, Owner}, monitor]`) or `{Owner, Ref}` (older Elixir, where `Args` is
//! `[Owner, monitor, {Node, Owner}, {M, F, A}]`, the form in the seed's error message),
//! runs the registered function, sends `{Ref, Result}` and exits `normal`; a failure
//! exits with the BEAM's reason, e.g. `{undef, [{M, F, Args, []}]}`, so `Task.await`
//! raises on the caller exactly as against a BEAM node (protocol notes §4, §5).
//!
//! Using: [`Process::task_async`] / [`Process::task_await`] start a task on a remote
//! `{Supervisor, Node}` the way `Task.Supervisor.async/4` + `Task.await/2` do.

use super::gen_server::{parse_call, From};
use crate::node::Node;
use crate::process::{handle::exit_message, Dest, Exception, Process};
use crate::term::{atom, int, list, nil, tuple, Match, Pid, Reference, Term};
use std::collections::HashSet;
use std::time::Duration;

/// `@ref_timeout` in `Task.Supervised`: how long a task waits for its start message.
const START_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn start(node: &Node, name: &str) -> Pid {
    let name_owned = name.to_owned();
    node.spawn_registered(name, move |mut p| async move {
        p.trap_exit(true);
        let mut children: HashSet<Pid> = HashSet::new();
        loop {
            let message = p.receive().await;
            if let Some((pid, _)) = exit_message(&message) {
                children.remove(pid);
                continue;
            }
            let Some((from, request)) = parse_call(&message) else {
                if super::gen_server::is_malformed_call(&message) {
                    tracing::warn!("{name_owned}: dropping a $gen_call with a malformed From");
                } else {
                    tracing::debug!("{name_owned}: ignoring {message}");
                }
                continue;
            };
            match handle_call(&p, request) {
                Some(Call::StartTask(start)) => {
                    let pid = spawn_task(&p, start);
                    children.insert(pid.clone());
                    from.reply(&p, tuple(vec![atom("ok"), Term::Pid(pid)]));
                }
                Some(Call::Reply(r)) => from.reply(&p, r),
                Some(Call::WhichChildren) => {
                    let kids = children
                        .iter()
                        .map(|c| {
                            tuple(vec![
                                atom("undefined"),
                                Term::Pid(c.clone()),
                                atom("worker"),
                                list(vec![atom("Elixir.Task.Supervised")]),
                            ])
                        })
                        .collect();
                    from.reply(&p, list(kids));
                }
                Some(Call::CountChildren) => {
                    let n = int(children.len() as i64);
                    let counts = [
                        ("specs", n.clone()),
                        ("active", n.clone()),
                        ("supervisors", int(0)),
                        ("workers", n),
                    ];
                    from.reply(
                        &p,
                        crate::term::map(counts.into_iter().map(|(k, v)| (atom(k), v))),
                    );
                }
                Some(Call::TerminateChild(pid)) => {
                    let reply = if children.remove(&pid) {
                        p.exit(&pid, atom("shutdown"));
                        atom("ok")
                    } else {
                        tuple(vec![atom("error"), atom("not_found")])
                    };
                    from.reply(&p, reply);
                }
                None => unexpected(&p, &from, request),
            }
        }
    })
    .unwrap_or_else(|_| panic!("the name {name} is already registered on this node"))
}

/// A call `DynamicSupervisor` does not know crashes it on the BEAM (function clause);
/// we keep serving and log, and the caller times out as it would against a restarted
/// supervisor.
fn unexpected(p: &Process, from: &From, request: &Term) {
    tracing::warn!(
        supervisor = %p.pid(),
        "unexpected call {} from {}",
        crate::term::Short(request),
        from.pid
    );
}

struct StartTask {
    owner: Pid,
    monitor: bool,
    /// The older form carries the MFA in the start_task call itself.
    legacy_mfa: Option<Term>,
}

enum Call {
    StartTask(StartTask),
    Reply(Term),
    WhichChildren,
    CountChildren,
    TerminateChild(Pid),
}

fn handle_call(_p: &Process, request: &Term) -> Option<Call> {
    if request.is_atom("which_children") {
        return Some(Call::WhichChildren);
    }
    if request.is_atom("count_children") {
        return Some(Call::CountChildren);
    }
    let e = request.as_tuple()?;
    match (e.first()?.as_atom()?, e.len()) {
        ("start_task", 4) => {
            let args = e[1].as_list()?;
            match args {
                // Elixir 1.10+: [{Node, Owner, Owner} | OwnerPid, monitor | nomonitor]
                [owner_info, mode] => Some(Call::StartTask(StartTask {
                    owner: owner_pid(owner_info)?,
                    monitor: mode.is_atom("monitor"),
                    legacy_mfa: None,
                })),
                // Older Elixir: [Owner, monitor, {Node, Owner}, {M, F, A}]
                [owner, mode, _info, mfa] => Some(Call::StartTask(StartTask {
                    owner: owner.as_pid()?.clone(),
                    monitor: mode.is_atom("monitor"),
                    legacy_mfa: Some(mfa.clone()),
                })),
                _ => None,
            }
        }
        ("terminate_child", 2) => Some(Call::TerminateChild(e[1].as_pid()?.clone())),
        ("get_childspec", 2) => Some(Call::Reply(tuple(vec![atom("error"), atom("not_found")]))),
        _ => None,
    }
}

fn owner_pid(info: &Term) -> Option<Pid> {
    match info {
        Term::Pid(p) => Some(p.clone()),
        _ => info.as_tuple_n(3)?[1].as_pid().cloned(),
    }
}

fn spawn_task(sup: &Process, start: StartTask) -> Pid {
    let node = sup.node().clone();
    let opts = node.spawn_opts(node.user_pid()).linked_to(sup.pid());
    let pid = node
        .clone()
        .spawn_with(opts, move |p| run_task(node, p, start));
    sup.entry.state().links.insert(pid.clone());
    pid
}

/// `Task.Supervised.reply/2` and `invoke_mfa/2`.
async fn run_task(node: Node, mut p: Process, start: StartTask) -> Result<(), Exception> {
    let owner = Term::Pid(start.owner.clone());
    let mref = start.monitor.then(|| p.monitor(start.owner.clone()));
    let started = p
        .receive_match(Some(START_TIMEOUT), |m| {
            let starts = match &start.legacy_mfa {
                None => m.as_tuple_n(5).is_some_and(|e| e[0] == owner),
                Some(_) => m.as_tuple_n(2).is_some_and(|e| e[0] == owner),
            };
            starts
                || mref
                    .as_ref()
                    .is_some_and(|r| crate::process::handle::is_down_for(m, r))
        })
        .await;
    let Some(started) = started else {
        return Err(Exception::Exit(atom("timeout")));
    };
    let e = started.as_tuple().unwrap_or(&[]).to_vec();
    if e.len() == 5 && e[0].is_atom("DOWN") {
        return Err(Exception::Exit(tuple(vec![atom("shutdown"), e[4].clone()])));
    }
    if let Some(r) = &mref {
        p.demonitor(r, true);
    }
    let (reference, reply_to, mfa) = match start.legacy_mfa {
        Some(mfa) => (e[1].clone(), Dest::Pid(start.owner.clone()), mfa),
        None => {
            let reply_to = match &e[2] {
                Term::Reference(r) => Dest::Alias((**r).clone()),
                Term::Pid(pid) => Dest::Pid(pid.clone()),
                _ => return Err(Exception::Exit(atom("badarg"))),
            };
            (e[1].clone(), reply_to, e[4].clone())
        }
    };
    let Some((m, f, args)) = mfa.as_tuple_n(3).and_then(|t| {
        Some((
            t[0].as_atom()?.to_owned(),
            t[1].as_atom()?.to_owned(),
            t[2].as_list()?.to_vec(),
        ))
    }) else {
        return Err(Exception::badarg());
    };
    let me = p.pid();
    match node.apply(p, &m, &f, args).await {
        Ok(result) => {
            node.route(&me, reply_to, tuple(vec![reference, result]));
            Ok(())
        }
        Err(e) => {
            // proc_lib's crash report, then exit(Reason): no second, emulator report.
            tracing::error!(
                "Task {me} started from {} terminating: {e} in {m}.{f}",
                start.owner
            );
            Err(Exception::Exit(e.exit_reason()))
        }
    }
}

/// A task started with [`Process::task_async`] (`%Task{}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The task process.
    pub pid: Pid,
    /// The monitor reference, also the alias the result is sent to.
    pub reference: Reference,
}

impl Process {
    /// `Task.Supervisor.async(supervisor, module, function, args)`: starts a task on a
    /// (usually remote) `Task.Supervisor`, linked to and monitored by this process.
    pub async fn task_async(
        &mut self,
        supervisor: impl Into<Dest>,
        module: &str,
        function: &str,
        args: Vec<Term>,
    ) -> Result<Task, Exception> {
        let me = Term::Pid(self.pid());
        let owner = tuple(vec![atom(self.node().name()), me.clone(), me.clone()]);
        let request = tuple(vec![
            atom("start_task"),
            list(vec![owner, atom("monitor")]),
            atom("temporary"),
            atom("nil"),
        ]);
        let supervisor = supervisor.into();
        let reply = self
            .call(supervisor.clone(), request, None)
            .await
            .map_err(|e| {
                Exception::Exit(tuple(vec![
                    e.reason(),
                    tuple(vec![
                        atom("Elixir.GenServer"),
                        atom("call"),
                        list(vec![
                            supervisor.down_object(&crate::term::Atom::from(self.node().name())),
                            atom("infinity"),
                        ]),
                    ]),
                ]))
            })?;
        let pid = match reply.as_tuple_n(2) {
            Some([ok, Term::Pid(pid)]) if ok.is_atom("ok") => pid.clone(),
            _ => return Err(Exception::Exit(reply)),
        };
        self.link(&pid);
        let alias = self.monitor_with_alias(pid.clone());
        let alias_term = Term::Reference(Box::new(alias.clone()));
        self.send(
            pid.clone(),
            tuple(vec![
                me.clone(),
                alias_term.clone(),
                alias_term,
                list(vec![me]),
                tuple(vec![atom(module), atom(function), list(args)]),
            ]),
        );
        Ok(Task {
            pid,
            reference: alias,
        })
    }

    /// `Task.await(task, timeout)`: the task's result, or the exit `Task.await` makes.
    pub async fn task_await(
        &mut self,
        task: Task,
        timeout: Option<Duration>,
    ) -> Result<Term, Exception> {
        let reference = Term::Reference(Box::new(task.reference.clone()));
        let reply = self
            .receive_match(timeout, |m| {
                m.as_tuple_n(2).is_some_and(|e| e[0] == reference)
                    || crate::process::handle::is_down_for(m, &task.reference)
            })
            .await;
        let await_info = || {
            tuple(vec![
                atom("Elixir.Task"),
                atom("await"),
                list(vec![
                    Term::Pid(task.pid.clone()),
                    timeout
                        .map(|t| int(t.as_millis() as i64))
                        .unwrap_or(atom("infinity")),
                ]),
            ])
        };
        match reply {
            Some(Term::Tuple(mut t)) if t.elements.len() == 2 => {
                self.demonitor(&task.reference, true);
                Ok(t.elements.pop().unwrap())
            }
            Some(down) => {
                let reason = down.as_tuple().map(|e| e[4].clone()).unwrap_or_else(nil);
                Err(Exception::Exit(tuple(vec![reason, await_info()])))
            }
            None => {
                self.demonitor(&task.reference, true);
                Err(Exception::Exit(tuple(vec![atom("timeout"), await_info()])))
            }
        }
    }
}
