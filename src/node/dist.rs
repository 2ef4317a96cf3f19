//! What the node does with each control message a peer sends
//! (`erts_net_message` in `dist.c`).

use super::entry::{MonitorTarget, Watcher};
use super::names::LastName;
use super::Dest;
use super::Node;
use crate::connection::codec::{altact, AltAct, AltActTo};
use crate::connection::message::Message;
use crate::connection::message::PidOrAtom;
use crate::connection::ConnHandle;
use crate::term::Inspect;
use crate::term::{atom, tuple, Atom, Pid, Term};
use std::sync::Arc;

pub(super) fn dispatch(node: &Node, conn: &Arc<ConnHandle>, message: Message, last: &mut LastName) {
    match message {
        Message::Send(m) => deliver_to_pid(node, &m.to_pid, m.message),
        Message::SendSender(m) => deliver_to_pid(node, &m.to_pid, m.message),
        Message::RegSend(m) => reg_send(node, &m.from_pid, &m.to_name, m.message, last),
        Message::AliasSend(m) => {
            node.route(&m.from_pid, Dest::Alias(m.alias), m.message);
        }
        Message::Link(m) => link(node, conn, &m.from_pid, &m.to_pid),
        Message::Unlink(m) => unlink(node, &m.from_pid, &m.to_pid),
        Message::UnlinkId(m) => {
            unlink(node, &m.from_pid, &m.to_pid);
            conn.send(Message::unlink_id_ack(m.id, m.to_pid, m.from_pid));
        }
        // We remove our side of a link as soon as we unlink; nothing waits for the ack.
        Message::UnlinkIdAck(_) => {}
        Message::Exit(m) => exit(node, &m.from_pid, &m.to_pid, m.reason, true),
        Message::Exit2(m) => exit(node, &m.from_pid, &m.to_pid, m.reason, false),
        Message::MonitorP(m) => monitor(node, conn, m.from_pid, m.to_proc, m.reference),
        Message::DemonitorP(m) => demonitor(node, &m.to_proc, &m.reference),
        Message::MonitorPExit(m) => monitor_exit(node, &m.to_pid, m.reference, m.reason),
        Message::GroupLeader(m) => {
            if let Some(e) = node.local_entry(&m.to_pid) {
                e.state().group_leader = m.from_pid;
            }
        }
        Message::SpawnRequest(r) => (node.hooks().spawn_request)(node, conn, r),
        Message::SpawnReply(r) => spawn_reply(node, &r.to_pid, r.req_id, r.flags.value, r.result),
        Message::NodeLink(_) => {}
        Message::AliasExit(m) => {
            node.send_exit_to_alias(&m.from_pid, &m.alias, m.reason, m.priority);
        }
    }
}

/// `ALTACT_SIG_SEND` (`dist.c`): a message, or with the `EXIT` bit an exit signal (as
/// `exit/2` sends it), to a pid, a registered name or an alias; to a name nobody holds
/// or an alias no longer active it is dropped. With the `PRIO` bit, through a priority
/// alias of the process, the message (or the `EXIT` message of a process trapping
/// exits) goes ahead of the ordinary ones (EEP 76); otherwise it is an ordinary one.
pub(super) fn alt_act(node: &Node, signal: AltAct, last: &mut LastName) {
    let AltAct {
        flags,
        from,
        to,
        data,
    } = signal;
    let found;
    let entry = match &to {
        AltActTo::Pid(pid) => {
            found = node.local_entry(pid);
            found.as_deref()
        }
        AltActTo::Name(name) => node.registered_entry_through(name, last),
        AltActTo::Alias(alias) => {
            found = node.alias_entry(alias);
            found.as_deref()
        }
    };
    let Some(entry) = entry else {
        tracing::debug!(
            "signal from {} to {to:?} dropped: no such process",
            from.inspect()
        );
        return;
    };
    let priority = flags & altact::PRIO != 0
        && matches!(&to, AltActTo::Alias(alias) if node.is_priority_alias(entry, alias));
    match (flags & altact::EXIT != 0, priority) {
        (true, priority) => node.exit_signal_to(entry, &from, data, false, priority),
        (false, true) => entry.deliver_priority(data),
        (false, false) => entry.deliver(data),
    }
}

fn deliver_to_pid(node: &Node, to: &Pid, message: Term) {
    if let Some(e) = node.local_entry(to) {
        e.deliver(message);
    }
}

fn reg_send(node: &Node, from: &Pid, name: &Atom, message: Term, last: &mut LastName) {
    match node.registered_entry_through(name, last) {
        Some(e) => e.deliver(message),
        // Dropped, as the BEAM drops it.
        None => tracing::debug!(
            "message from {} to unregistered name {} dropped",
            from.inspect(),
            name.inspect()
        ),
    }
}

/// A remote process links to one of ours; linking to a process that does not exist
/// answers with an exit signal `noproc`, as the BEAM does.
fn link(node: &Node, conn: &Arc<ConnHandle>, from: &Pid, to: &Pid) {
    let linked = node.local_entry(to).map(|e| {
        let mut st = e.state();
        !st.gone() && {
            st.links.insert(*from);
            true
        }
    });
    if linked != Some(true) {
        conn.send(Message::exit(*to, *from, atom("noproc")));
    }
}

fn unlink(node: &Node, from: &Pid, to: &Pid) {
    if let Some(e) = node.local_entry(to) {
        e.state().links.remove(from);
    }
}

fn exit(node: &Node, from: &Pid, to: &Pid, reason: Term, linked: bool) {
    if let Some(e) = node.local_entry(to) {
        node.exit_signal_to(&e, from, reason, linked, false);
    }
}

/// `MONITOR_P` from a remote process: watch the local process or name, or answer at once
/// with `noproc` (FromProc is the name when monitored by name, as an OTP 25 node sends it).
fn monitor(
    node: &Node,
    conn: &Arc<ConnHandle>,
    watcher: Pid,
    target: PidOrAtom,
    reference: crate::term::Reference,
) {
    let (entry, by_name) = match &target {
        PidOrAtom::Pid(p) => (node.local_entry(p), None),
        PidOrAtom::Atom(name) => (node.registered_entry(name), Some(*name)),
    };
    if let Some(e) = entry {
        let mut st = e.state();
        if !st.gone() {
            st.monitored_by.insert(
                reference,
                Watcher {
                    pid: watcher,
                    by_name,
                },
            );
            return;
        }
    }
    conn.send(Message::monitor_p_exit(
        target,
        watcher,
        reference,
        atom("noproc"),
    ));
}

fn demonitor(node: &Node, target: &PidOrAtom, reference: &crate::term::Reference) {
    let entry = match target {
        PidOrAtom::Pid(p) => node.local_entry(p),
        PidOrAtom::Atom(name) => node.registered_entry(name),
    };
    if let Some(e) = entry {
        e.state().monitored_by.remove(reference);
    }
}

/// A remote process we monitor went down (or never existed).
fn monitor_exit(node: &Node, to: &Pid, reference: crate::term::Reference, reason: Term) {
    if let (Some(entry), Some(key)) = (node.local_entry(to), node.ref_key(&reference)) {
        node.fire_monitor(&entry, key, reason);
    }
}

/// The answer to a `SPAWN_REQUEST` we sent: delivered as `erlang:spawn_request/5`
/// delivers it, `{spawn_reply, ReqId, ok, Pid}` or `{spawn_reply, ReqId, error, Reason}`.
fn spawn_reply(
    node: &Node,
    to: &Pid,
    req_id: crate::term::Reference,
    flags: i32,
    result: PidOrAtom,
) {
    let Some(entry) = node.local_entry(to) else {
        return;
    };
    let key = node.ref_key(&req_id);
    let mut st = entry.state();
    if let Some(i) = key.and_then(|k| st.abandoned_spawns.iter().position(|a| *a == k)) {
        st.abandoned_spawns.swap_remove(i);
        return;
    }
    let reply = match result {
        PidOrAtom::Pid(pid) => {
            if flags & 1 != 0 {
                st.links.insert(pid);
            }
            let error_only = match key.and_then(|k| st.monitors.get_mut(&k)) {
                Some(m) => {
                    // A spawn monitor is an erpc's, which asks for `{reply,
                    // error_only}`: its success is not delivered.
                    let spawn = matches!(m.target, MonitorTarget::Spawn { .. });
                    if flags & 2 != 0 {
                        m.target = MonitorTarget::Process(Dest::Pid(pid));
                    }
                    spawn
                }
                None => false,
            };
            if error_only {
                return;
            }
            tuple(vec![
                atom("spawn_reply"),
                Term::Reference(Box::new(req_id)),
                atom("ok"),
                Term::Pid(pid),
            ])
        }
        PidOrAtom::Atom(reason) => {
            if let Some(k) = key {
                st.monitors.remove(&k);
            }
            tuple(vec![
                atom("spawn_reply"),
                Term::Reference(Box::new(req_id)),
                atom("error"),
                Term::Atom(reason),
            ])
        }
    };
    drop(st);
    entry.deliver(reply);
}
