//! `global_name_server`: taking part in OTP's `global` as a visible node.
//!
//! Every BEAM node runs a `global` session with each new visible peer and waits for it in
//! `global:sync/0`; a peer that starts a session and stalls leaves a BEAM locker holding
//! the cluster-wide `global` lock, and every `register_name` hangs. So a visible node
//! must play its part fully. We keep `global`'s cluster as a BEAM node does: we report
//! the nodes we know, and a peer connects to them (`sync_others/1`), so nodes that meet
//! through us end up connected to each other (`connect_all`); and when two nodes of the
//! cluster lose each other, we drop both, as every node does
//! (`prevent_overlapping_partitions`, R15 and R16). We register no names ourselves, but
//! keep a copy of the names the BEAM nodes register, as every node does ([`names`]),
//! and we answer the lock and registration calls every node receives.
//!
//! The rules below (R1, R2, ...) are those of `global.erl` (kernel-8.5.3) as the session sees
//! them from a peer, checked against real OTP 25 nodes. Messages to a peer's server are
//! casts `{'$gen_cast', Msg}` to `{global_name_server, Node}` unless marked plain.

mod locks;
mod names;
mod partitions;
mod registrar;

pub(crate) use names::register_functions;
pub(crate) use registrar::{register_lock_functions, register_resolve_it};

use super::gen_server::{parse_call, parse_cast};
use super::sys;
use crate::node::Node;
use crate::process::{Dest, Exception, Process};
use crate::term::Short;
use crate::term::{atom, int, nil, tuple, Atom, Match, Pid, Reference, Term};
use locks::Lock;
use partitions::{Leaving, Lost};
use std::collections::{HashMap, HashSet};

const NAME: &str = "global_name_server";
/// The `global` protocol version we speak (OTP 25 sends 8).
const VSN: i64 = 8;
/// The version from which peers take part in preventing overlapping partitions
/// (`?pop_vsn`).
const POP_VSN: i64 = 7;

/// A call of this node's registrar: the nodes `global` knows.
const KNOWN: &str = "$cnode_known";
/// `global:sync/0`'s call: answered once every visible node connected is in sync.
const SYNC: &str = "$cnode_sync";
/// Internal messages from the node to this process.
const NODE_UP: &str = "$cnode_nodeup";
const NODE_DOWN: &str = "$cnode_nodedown";

/// The session with one peer (`global`'s `{pending, Node}` and locker state).
#[derive(Debug)]
struct Session {
    /// When we sent our `init_connect`.
    started: std::time::Instant,
    /// The peer's `global` protocol version, from its `init_connect`.
    vsn: i64,
    my_tag: Term,
    his_tag: Option<Term>,
    sent_lock_set: bool,
    /// The peer's locker used our `lock_set true` but failed to lock its side: we owe it
    /// another `true`.
    owe: bool,
    lock_ok: bool,
    his_exchange: bool,
    sent_exchange: bool,
    sent_resolved: bool,
    /// The name operations the peer's `exchange` made ours, done once resolved.
    ops: Vec<Term>,
    /// Those we resolved for the peer, sent in our `resolved`.
    resolved: Vec<Term>,
}

struct Global {
    me: Atom,
    pid: Pid,
    sessions: HashMap<String, Session>,
    /// Nodes in sync with us, each with its `global` protocol version (0 when a peer
    /// named it without one), as `global`'s `known` map.
    known: HashMap<String, i64>,
    synced: HashSet<String>,
    /// Nodes we are dropping: their coming nodedown is not reported (`{removing, N}`).
    removing: HashSet<String>,
    /// `lost_connection` reports seen, by `{Reporter, LostNode}`.
    lost: HashMap<(String, String), Lost>,
    /// This incarnation of the node, in our `lost_connection` reports.
    xcreation: i64,
    /// `NodeConfig::prevent_overlapping_partitions`: reports sent and acted on.
    prevent_overlapping_partitions: bool,
    locks: HashMap<Term, Lock>,
    /// Monitors on lock holders, so a dead holder's locks are freed.
    holder_monitors: HashMap<Pid, Reference>,
    /// The names registered in the cluster ([`names`]), and the monitor of each name's
    /// process.
    names: HashMap<Term, names::Registered>,
    name_monitors: HashMap<Reference, Term>,
    next_tag: i64,
    /// Callers of `global:sync/0` waiting for the nodes connected to be in sync.
    syncers: Vec<super::gen_server::Caller>,
}

pub(crate) fn start(node: &Node) {
    let _ = super::keep_registered(node, NAME, |mut p, parent| async move {
        super::shown_as_gen_server(&p, parent, "global");
        let mut g = Global {
            me: Atom::from(p.node().name()),
            pid: p.pid(),
            sessions: HashMap::new(),
            known: HashMap::new(),
            synced: HashSet::new(),
            removing: HashSet::new(),
            lost: HashMap::new(),
            xcreation: i64::from(p.node().creation()),
            prevent_overlapping_partitions: p.node().0.config.prevent_overlapping_partitions,
            locks: HashMap::new(),
            holder_monitors: HashMap::new(),
            names: HashMap::new(),
            name_monitors: HashMap::new(),
            // Like the tags `erlang:unique_integer([monotonic])` gives a BEAM node.
            next_tag: -(1 << 59),
            syncers: Vec::new(),
        };
        let mut suspended = false;
        loop {
            let state = || g.state();
            let message = sys::receive(&mut p, Some(&parent), &mut suspended, &state, None).await;
            g.handle(&mut p, message.map_err(Exception::Exit)?);
            g.answer_syncers(&mut p);
        }
    });
}

/// Tells `global_name_server` a connection to a visible peer came up.
pub(crate) fn node_up(node: &Node, peer: &Atom) {
    node.send(NAME, tuple(vec![atom(NODE_UP), Term::Atom(*peer)]));
}

/// Tells `global_name_server` a connection went down.
pub(crate) fn node_down(node: &Node, peer: &Atom) {
    node.send(NAME, tuple(vec![atom(NODE_DOWN), Term::Atom(*peer)]));
}

fn cast(p: &Process, to: &str, message: Term) {
    tracing::trace!("global -> {to}: {}", Short(&message));
    p.send(
        Dest::RemoteName(Atom::from(NAME), Atom::from(to)),
        tuple(vec![atom("$gen_cast"), message]),
    );
}

fn plain(p: &Process, to: &str, message: Term) {
    p.send(Dest::RemoteName(Atom::from(NAME), Atom::from(to)), message);
}

/// `gns_volatile_send/2`: a plain message that never brings up a connection.
fn volatile(p: &Process, to: &str, message: &Term) {
    tracing::trace!("global -> {to} (if connected): {}", Short(message));
    p.node()
        .send_noconnect(&p.pid(), &Atom::from(NAME), to, message);
}

fn node_name(t: &Term) -> Option<String> {
    match t {
        Term::Atom(a) => Some(a.name().to_owned()),
        // `lock_set` names the peer by its locker's pid.
        Term::Pid(p) => Some(p.node.name().to_owned()),
        // Known lists hold `{Node, Vsn}` from vsn 8 on.
        Term::Tuple(tu) => tu
            .elements
            .first()
            .and_then(Match::as_atom)
            .map(str::to_owned),
        _ => None,
    }
}

/// An entry of a peer's known list: `Node`, or `{Node, Vsn}` from vsn 7 on.
fn known_node(t: &Term) -> Option<(String, i64)> {
    let vsn = t.as_tuple_n(2).and_then(|e| e[1].as_int()).unwrap_or(0);
    Some((node_name(t)?, vsn))
}

/// `nodes` as `mk_known_list/2` writes a known list for a peer of `vsn`: `{Node, Vsn}`
/// from vsn 7 on, bare names before.
fn known_list<'a>(nodes: impl Iterator<Item = (&'a String, &'a i64)>, vsn: i64) -> Term {
    const PGPV_VSN: i64 = 7;
    crate::term::list(
        nodes
            .map(|(n, v)| {
                if vsn >= PGPV_VSN {
                    tuple(vec![atom(n), int(*v)])
                } else {
                    atom(n)
                }
            })
            .collect(),
    )
}

impl Global {
    /// What `:sys.get_state/1` shows (a BEAM's is `global`'s own record): the nodes in
    /// sync with this one, those a session is under way with, the locks held and the
    /// names registered.
    fn state(&self) -> Term {
        let nodes = |names: &mut dyn Iterator<Item = &String>| {
            let mut names: Vec<&String> = names.collect();
            names.sort();
            crate::term::list(names.into_iter().map(|n| atom(n)).collect())
        };
        crate::term::map(vec![
            (atom("known"), nodes(&mut self.known.keys())),
            (atom("syncing"), nodes(&mut self.sessions.keys())),
            (
                atom("locks"),
                crate::term::list(self.locks.keys().cloned().collect()),
            ),
            (
                atom("names"),
                crate::term::list(self.names.keys().cloned().collect()),
            ),
        ])
    }

    fn me(&self) -> Term {
        Term::Atom(self.me)
    }

    /// Whether every visible node connected is in sync with this one, its session done.
    fn in_sync(&self, p: &Process) -> bool {
        p.node()
            .nodes(true)
            .iter()
            .all(|n| self.synced.contains(n) && !self.sessions.contains_key(n))
    }

    /// `global:sync/0`'s callers get `ok` once all is in sync.
    fn answer_syncers(&mut self, p: &mut Process) {
        if !self.syncers.is_empty() && self.in_sync(p) {
            for from in std::mem::take(&mut self.syncers) {
                from.reply(p, atom("ok"));
            }
        }
    }

    fn locker(&self) -> Term {
        // Any pid of ours will do as the "locker" peers put in lock ids; we use our own.
        Term::Pid(self.pid)
    }

    fn handle(&mut self, p: &mut Process, message: Term) {
        tracing::trace!("global <- {}", Short(&message));
        if let Some((from, request)) = parse_call(&message) {
            return self.call(p, from, request);
        }
        if let Some(m) = parse_cast(&message) {
            return self.cast(p, m);
        }
        let Some(e) = message.as_tuple() else {
            return;
        };
        match (e.first().and_then(Match::as_atom), e.len()) {
            (Some(NODE_UP), 2) => {
                if let Some(n) = node_name(&e[1]) {
                    self.node_up(p, n);
                }
            }
            (Some(NODE_DOWN), 2) => {
                if let Some(n) = node_name(&e[1]) {
                    self.node_down(p, &n, Leaving::Disconnected);
                }
            }
            // R3
            (Some("init_connect_ack"), 4) => {
                let Some(n) = node_name(&e[1]) else { return };
                if let Some(s) = self.sessions.get(&n) {
                    if e[2] != s.my_tag || Some(&e[3]) != s.his_tag.as_ref() {
                        plain(
                            p,
                            &n,
                            tuple(vec![atom("cancel_connect"), self.me(), e[3].clone()]),
                        );
                        self.start_session(p, n);
                    }
                }
            }
            // R4
            (Some("cancel_connect"), 3) => {
                let Some(n) = node_name(&e[1]) else { return };
                if self.sessions.get(&n).is_some_and(|s| s.my_tag == e[2]) {
                    self.start_session(p, n);
                }
            }
            // R11: a node that heard we lost a node it knows drops us.
            (Some("remove_connection"), 2) => {
                let Some(n) = node_name(&e[1]) else { return };
                if self.potentially_known(&n) {
                    p.node().disconnect(&n);
                    self.node_down(p, &n, Leaving::Removed);
                    tracing::warn!(
                        "'global' at node {} disconnected node {n} in order to prevent \
                         overlapping partitions",
                        self.me.name()
                    );
                }
            }
            // R16
            (Some("lost_connection"), 5) => self.lost_connection(p, &message),
            (Some("DOWN"), 5) => {
                let name = match &e[1] {
                    Term::Reference(r) => self.name_down(p, r),
                    _ => false,
                };
                if let (false, Some(pid)) = (name, e[3].as_pid()) {
                    self.release_holder(pid);
                }
            }
            // `{lock_set, Locker, false, Known}` sent plain to our "locker" (vsn 5 form).
            (Some("lock_set"), _) => {}
            _ => tracing::debug!("global: ignoring {}", Short(&message)),
        }
    }

    /// R1: a connection to a visible peer is up.
    fn node_up(&mut self, p: &mut Process, n: String) {
        if self.known.contains_key(&n) {
            return;
        }
        self.start_session(p, n);
    }

    fn start_session(&mut self, p: &mut Process, n: String) {
        self.next_tag += 1;
        let my_tag = int(self.next_tag);
        let init = tuple(vec![
            atom("init_connect"),
            tuple(vec![int(VSN), my_tag.clone()]),
            self.me(),
            tuple(vec![
                atom("locker"),
                atom("no_longer_a_pid"),
                Term::from(crate::term::Map::default()),
                self.locker(),
            ]),
        ]);
        cast(p, &n, init);
        self.sessions.insert(
            n,
            Session {
                started: std::time::Instant::now(),
                vsn: 0,
                my_tag,
                his_tag: None,
                sent_lock_set: false,
                owe: false,
                lock_ok: false,
                his_exchange: false,
                sent_exchange: false,
                sent_resolved: false,
                ops: Vec::new(),
                resolved: Vec::new(),
            },
        );
    }

    fn cast(&mut self, p: &mut Process, m: &Term) {
        let Some(e) = m.as_tuple() else { return };
        let op = e.first().and_then(Match::as_atom);
        // The sending node: third in init_connect (after the version), else second.
        let at = if op == Some("init_connect") { 2 } else { 1 };
        let Some(n) = e.get(at).and_then(node_name) else {
            return;
        };
        match (op, e.len()) {
            // R2
            (Some("init_connect"), 4) => {
                // `{Vsn, Tag}`.
                let Some(his_tag) = e[1].as_tuple().and_then(|v| v.get(1)).cloned() else {
                    return;
                };
                let vsn = e[1].as_tuple().and_then(|v| v[0].as_int()).unwrap_or(0);
                let me = self.me();
                let lock_set = self.lock_set_msg(his_tag.clone());
                let Some(s) = self.sessions.get_mut(&n) else {
                    return;
                };
                if s.his_tag.is_some() {
                    plain(
                        p,
                        &n,
                        tuple(vec![atom("cancel_connect"), self.me(), his_tag]),
                    );
                    return self.start_session(p, n);
                }
                s.his_tag = Some(his_tag.clone());
                s.vsn = vsn;
                s.sent_lock_set = true;
                s.owe = false;
                let ack = tuple(vec![
                    atom("init_connect_ack"),
                    me,
                    his_tag,
                    s.my_tag.clone(),
                ]);
                plain(p, &n, ack);
                // The proactive lock_set: our side of the lock is trivially ours.
                cast(p, &n, lock_set);
            }
            // R5 / R6
            (Some("lock_set"), 5) => {
                let node_of_locker = n;
                let me = self.me();
                let locker = self.locker();
                let Some(s) = self.sessions.get_mut(&node_of_locker) else {
                    return;
                };
                if e[4] != s.my_tag {
                    return;
                }
                let Some(his_tag) = s.his_tag.clone() else {
                    return;
                };
                if !e[2].is_atom("true") {
                    s.owe = true;
                    return;
                }
                if s.owe || !s.sent_lock_set {
                    s.owe = false;
                    s.sent_lock_set = true;
                    let msg = tuple(vec![
                        atom("lock_set"),
                        locker,
                        atom("true"),
                        nil(),
                        his_tag.clone(),
                    ]);
                    cast(p, &node_of_locker, msg);
                }
                if !s.lock_ok {
                    s.lock_ok = true;
                    s.sent_exchange = true;
                    let names = self.names_list();
                    cast(
                        p,
                        &node_of_locker,
                        tuple(vec![atom("exchange"), me, names, nil(), his_tag]),
                    );
                    self.maybe_resolved(p, &node_of_locker);
                }
            }
            // R7
            (Some("exchange"), 5) => {
                if !self.sessions.get(&n).is_some_and(|s| e[4] == s.my_tag) {
                    return;
                }
                let (ops, resolved) = self.exchange_names(p, &n, &e[2]);
                if let Some(s) = self.sessions.get_mut(&n) {
                    s.his_exchange = true;
                    s.ops = ops;
                    s.resolved = resolved;
                    self.maybe_resolved(p, &n);
                }
            }
            // R8
            (Some("resolved"), 7) => {
                if !self.sessions.get(&n).is_some_and(|s| e[6] == s.my_tag) {
                    return;
                }
                if let Some(s) = self.sessions.get_mut(&n) {
                    s.his_exchange = true;
                    s.sent_exchange = true;
                }
                self.maybe_resolved(p, &n);
                let (vsn, mut ops) = self
                    .sessions
                    .remove(&n)
                    .map_or((0, Vec::new()), |s| (s.vsn, s.ops));
                // `resolved/5`: our operations, then those the peer resolved for us.
                ops.extend(e[2].as_list().unwrap_or(&[]).iter().cloned());
                self.do_ops(p, &ops);
                // `resolved/5`: the nodes we knew hear of the new ones (`new_nodes`)
                // and connect to them, as they connect to us.
                let mut new_nodes = vec![(n.clone(), vsn)];
                new_nodes.extend(
                    e[3].as_list()
                        .unwrap_or(&[])
                        .iter()
                        .filter_map(known_node)
                        .filter(|(x, _)| *x != self.me.name()),
                );
                self.tell_new_nodes(p, &new_nodes, vsn, &ops);
                self.known.insert(n.clone(), vsn);
                self.synced.insert(n.clone());
                for (x, vsn) in new_nodes.into_iter().skip(1) {
                    self.sessions.remove(&x);
                    self.known.insert(x.clone(), vsn);
                    self.sync_other(p, &x);
                }
            }
            // R9
            (Some("new_nodes"), 6) => {
                let ops = e[2].as_list().unwrap_or(&[]).to_vec();
                self.do_ops(p, &ops);
                for (x, vsn) in e[4].as_list().unwrap_or(&[]).iter().filter_map(known_node) {
                    if x != self.me.name() && !self.known.contains_key(&x) {
                        self.known.insert(x.clone(), vsn);
                        self.sync_other(p, &x);
                    }
                }
            }
            // R10
            (Some("in_sync"), 3) => {
                self.synced.insert(n.clone());
                let vsn = self.sessions.remove(&n).map_or(0, |s| s.vsn);
                self.known.entry(n).or_insert(vsn);
            }
            _ => tracing::debug!("global: ignoring cast {}", Short(m)),
        }
    }

    fn lock_set_msg(&self, his_tag: Term) -> Term {
        tuple(vec![
            atom("lock_set"),
            self.locker(),
            atom("true"),
            nil(),
            his_tag,
        ])
    }

    /// R7: `resolved` goes out once both exchanges are done.
    fn maybe_resolved(&mut self, p: &mut Process, n: &str) {
        let me = self.me();
        let Some(s) = self.sessions.get_mut(n) else {
            return;
        };
        if s.sent_exchange && s.his_exchange && !s.sent_resolved {
            s.sent_resolved = true;
            if let Some(his_tag) = s.his_tag.clone() {
                // `{resolved, Node, Resolved, Known, unused, NamesExt, HisTag}`: the
                // peer connects to every node in Known.
                let others = self.known.iter().filter(|(x, _)| x.as_str() != n);
                let known = known_list(others, s.vsn);
                let msg = tuple(vec![
                    atom("resolved"),
                    me,
                    crate::term::list(s.resolved.clone()),
                    known,
                    atom("unused"),
                    nil(),
                    his_tag,
                ]);
                cast(p, n, msg);
            }
        }
    }

    /// `{new_nodes, Node, Ops, NamesExt, NewNodes, ExtraInfo}` to every node we knew:
    /// they connect to the new ones, and do the name operations this sync made ours
    /// (the names of the new nodes' side, and how clashes were resolved), as `global`'s
    /// `resolved/5` passes them on: the nodes on our side learn the other side's names
    /// from us, not by an exchange of their own with it.
    fn tell_new_nodes(
        &self,
        p: &Process,
        new_nodes: &[(String, i64)],
        peer_vsn: i64,
        ops: &[Term],
    ) {
        let extra = crate::term::list(vec![
            tuple(vec![atom("vsn"), int(peer_vsn)]),
            tuple(vec![atom("lock"), atom("undefined")]),
        ]);
        for (to, to_vsn) in &self.known {
            if new_nodes.iter().any(|(x, _)| x == to) {
                continue;
            }
            let nodes = new_nodes.iter().map(|(x, v)| (x, v));
            let msg = tuple(vec![
                atom("new_nodes"),
                self.me(),
                crate::term::list(ops.to_vec()),
                nil(),
                known_list(nodes, *to_vsn),
                extra.clone(),
            ]);
            cast(p, to, msg);
        }
    }

    /// `sync_other/2`: tell a node we learned of through a peer that we are in sync;
    /// sending connects to it if needed.
    fn sync_other(&mut self, p: &mut Process, x: &str) {
        cast(p, x, tuple(vec![atom("in_sync"), self.me(), atom("true")]));
    }
}
