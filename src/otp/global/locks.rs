//! The lock and registration calls every node's `global_name_server` answers (R13): we
//! hold `global:set_lock/1` locks as a BEAM node does and register no names.

use super::Global;
use crate::otp::gen_server::Caller;
use crate::process::Process;
use crate::term::{atom, Match, Pid, Term};

/// How long a peer's `global` has to answer our `init_connect` before the sync it
/// does not take part in stops holding up this node's registrations.
const SILENT_PEER: std::time::Duration = std::time::Duration::from_secs(2);

/// A lock `{ResourceId, LockRequesterId}` as `global:set_lock/1` takes it, held by pids.
#[derive(Debug)]
pub(super) struct Lock {
    requester: Term,
    holders: Vec<Pid>,
}

impl Global {
    /// R13: the calls every node's `global_name_server` answers.
    pub(super) fn call(&mut self, p: &mut Process, from: Caller, request: &Term) {
        if request.is_atom(super::SYNC) {
            return self.syncers.push(from);
        }
        if request.is_atom(super::KNOWN) {
            let known = self.known.keys().map(|n| crate::term::atom(n)).collect();
            return from.reply(p, crate::term::list(known));
        }
        let Some(e) = request.as_tuple() else {
            return tracing::warn!("global: unexpected call {}", crate::term::Short(request));
        };
        let reply = match (e.first().and_then(Match::as_atom), e.len()) {
            (Some("set_lock"), 2) => {
                let Some([res, req]) = e[1].as_tuple_n(2).map(|t| [t[0].clone(), t[1].clone()])
                else {
                    return;
                };
                crate::term::boolean(self.set_lock(p, res, req, &from.pid))
            }
            (Some("del_lock"), 2) => {
                if let Some(t) = e[1].as_tuple_n(2) {
                    self.del_lock(p, &t[0], &t[1], &from.pid);
                }
                atom("true")
            }
            // The registrar of the node registering a name asks every node, holding
            // the cluster's lock.
            (Some("register"), 4) | (Some("register_ext"), 5) => {
                if let Some(pid) = e[2].as_pid() {
                    self.insert_name(p, e[1].clone(), *pid, e[3].clone());
                }
                atom("yes")
            }
            (Some("unregister"), 2) | (Some("unregister_ext"), _) => {
                self.delete_name(p, &e[1]);
                atom("ok")
            }
            _ => return tracing::warn!("global: unexpected call {}", crate::term::Short(request)),
        };
        from.reply(p, reply);
    }

    fn set_lock(&mut self, p: &mut Process, res: Term, req: Term, pid: &Pid) -> bool {
        // While we sync names with a peer, the `global` lock is our locker's, as on a
        // BEAM node: this node's registrar waits for the sync to end (so a name
        // registered right after a connection reaches the new peer with the sync). A
        // peer that has not answered our `init_connect` within [`SILENT_PEER`] (one
        // started with `-connect_all false`, whose `global` ignores us) is no sync, and
        // holds up nothing more, as with a BEAM node.
        let ours = p.node().is_local(&pid.node);
        let syncing = self
            .sessions
            .values()
            .any(|s| s.his_tag.is_some() || s.started.elapsed() < SILENT_PEER);
        if ours && res.is_atom("global") && syncing {
            return false;
        }
        match self.locks.get_mut(&res) {
            Some(lock) if lock.requester == req => {
                if !lock.holders.contains(pid) {
                    lock.holders.push(*pid);
                }
            }
            Some(_) => return false,
            None => {
                self.locks.insert(
                    res,
                    Lock {
                        requester: req,
                        holders: vec![*pid],
                    },
                );
            }
        }
        if !self.holder_monitors.contains_key(pid) {
            let r = p.monitor(*pid);
            self.holder_monitors.insert(*pid, r);
        }
        true
    }

    fn del_lock(&mut self, p: &mut Process, res: &Term, req: &Term, pid: &Pid) {
        if let Some(lock) = self.locks.get_mut(res) {
            if &lock.requester == req {
                lock.holders.retain(|h| h != pid);
                if lock.holders.is_empty() {
                    self.locks.remove(res);
                }
            }
        }
        if !self.locks.values().any(|l| l.holders.contains(pid)) {
            if let Some(r) = self.holder_monitors.remove(pid) {
                p.demonitor(&r, true);
            }
        }
    }

    pub(super) fn release_holder(&mut self, pid: &Pid) {
        self.holder_monitors.remove(pid);
        self.locks.retain(|_, l| {
            l.holders.retain(|h| h != pid);
            !l.holders.is_empty()
        });
    }
}
