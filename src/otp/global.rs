//! `global_name_server`: taking part in OTP's `global` as a visible node.
//!
//! Every BEAM node runs a `global` session with each new visible peer and waits for it in
//! `global:sync/0`; a peer that starts a session and stalls leaves a BEAM locker holding
//! the cluster-wide `global` lock, and every `register_name` hangs. So a visible node
//! must play its part fully. We keep `global`'s cluster as a BEAM node does: we report
//! the nodes we know, and a peer connects to them (`sync_others/1`), so nodes that meet
//! through us end up connected to each other (`connect_all`); and when two nodes of the
//! cluster lose each other, we drop both, as every node does
//! (`prevent_overlapping_partitions`, R15 and R16). We register no names: we never copy or
//! forward the names BEAM nodes register (each BEAM node keeps a full copy and they
//! exchange names with each other), and we answer the lock and registration calls every
//! node receives.
//!
//! The rules below (R1, R2, ...) are those of `global.erl` (kernel-8.5.3) as the session sees
//! them from a peer, checked against real OTP 25 nodes. Messages to a peer's server are
//! casts `{'$gen_cast', Msg}` to `{global_name_server, Node}` unless marked plain.

use super::gen_server::{parse_call, parse_cast, From};
use crate::node::Node;
use crate::process::{Dest, Process};
use crate::term::{atom, int, nil, tuple, Atom, Match, Pid, Reference, Term};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const NAME: &str = "global_name_server";
/// The `global` protocol version we speak (OTP 25 sends 8).
const VSN: i64 = 8;
/// The version from which peers take part in preventing overlapping partitions
/// (`?pop_vsn`).
const POP_VSN: i64 = 7;
/// How long a `lost_connection` report is remembered, so that its repeats are ignored
/// (`?lost_conn_info_cleanup_time`).
const LOST_MEMORY: Duration = Duration::from_secs(60 * 60);
/// The most reports remembered at once: peers can name nodes without end.
const LOST_MAX: usize = 4096;

/// Internal messages from the node to this process.
const NODE_UP: &str = "$cnode_nodeup";
const NODE_DOWN: &str = "$cnode_nodedown";

/// The session with one peer (`global`'s `{pending, Node}` and locker state).
#[derive(Debug)]
struct Session {
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
}

/// A `lost_connection` report seen (`global_lost_connections`): the reporting node's
/// incarnation and the report's operation id.
#[derive(Debug)]
struct Lost {
    xcreation: i64,
    op_id: i64,
    at: Instant,
}

/// Why a node leaves `global`'s cluster here (`handle_nodedown/3`'s `What`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaving {
    /// Its connection went down: the others hear of it (`lost_connection`), unless we
    /// were removing it.
    Disconnected,
    /// We drop it to keep partitions from overlapping; its connection goes down next.
    Removed,
}

/// A lock `{ResourceId, LockRequesterId}` as `global:set_lock/1` takes it, held by pids.
#[derive(Debug)]
struct Lock {
    requester: Term,
    holders: Vec<Pid>,
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
    next_tag: i64,
}

pub(crate) fn start(node: &Node) {
    let _ = node.spawn_registered(NAME, |mut p| async move {
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
            // Like the tags `erlang:unique_integer([monotonic])` gives a BEAM node.
            next_tag: -(1 << 59),
        };
        loop {
            let message = p.receive().await;
            g.handle(&mut p, message);
        }
    });
}

/// Tells `global_name_server` a connection to a visible peer came up.
pub(crate) fn node_up(node: &Node, peer: &Atom) {
    node.send(NAME, tuple(vec![atom(NODE_UP), Term::Atom(peer.clone())]));
}

/// Tells `global_name_server` a connection went down.
pub(crate) fn node_down(node: &Node, peer: &Atom) {
    node.send(NAME, tuple(vec![atom(NODE_DOWN), Term::Atom(peer.clone())]));
}

fn cast(p: &Process, to: &str, message: Term) {
    tracing::trace!("global -> {to}: {message}");
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
    tracing::trace!("global -> {to} (if connected): {message}");
    p.node()
        .send_noconnect(&p.pid(), &Atom::from(NAME), to, message);
}

fn node_name(t: &Term) -> Option<String> {
    match t {
        Term::Atom(a) => Some(a.name.clone()),
        // `lock_set` names the peer by its locker's pid.
        Term::Pid(p) => Some(p.node.name.clone()),
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
    fn me(&self) -> Term {
        Term::Atom(self.me.clone())
    }

    fn locker(&self) -> Term {
        // Any pid of ours will do as the "locker" peers put in lock ids; we use our own.
        Term::Pid(self.pid.clone())
    }

    fn handle(&mut self, p: &mut Process, message: Term) {
        tracing::trace!("global <- {message}");
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
                        self.me.name
                    );
                }
            }
            // R16
            (Some("lost_connection"), 5) => self.lost_connection(p, &message),
            (Some("DOWN"), 5) => {
                if let Some(pid) = e[3].as_pid() {
                    self.release_holder(pid);
                }
            }
            // `{lock_set, Locker, false, Known}` sent plain to our "locker" (vsn 5 form).
            (Some("lock_set"), _) => {}
            _ => tracing::debug!("global: ignoring {message}"),
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
                Term::Map(eetf::Map::from(HashMap::<Term, Term>::new())),
                self.locker(),
            ]),
        ]);
        cast(p, &n, init);
        self.sessions.insert(
            n,
            Session {
                vsn: 0,
                my_tag,
                his_tag: None,
                sent_lock_set: false,
                owe: false,
                lock_ok: false,
                his_exchange: false,
                sent_exchange: false,
                sent_resolved: false,
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
                    cast(
                        p,
                        &node_of_locker,
                        tuple(vec![atom("exchange"), me, nil(), nil(), his_tag]),
                    );
                    self.maybe_resolved(p, &node_of_locker);
                }
            }
            // R7
            (Some("exchange"), 5) => {
                if let Some(s) = self.sessions.get_mut(&n).filter(|s| e[4] == s.my_tag) {
                    s.his_exchange = true;
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
                let vsn = self.sessions.remove(&n).map_or(0, |s| s.vsn);
                // `resolved/5`: the nodes we knew hear of the new ones (`new_nodes`)
                // and connect to them, as they connect to us.
                let mut new_nodes = vec![(n.clone(), vsn)];
                new_nodes.extend(
                    e[3].as_list()
                        .unwrap_or(&[])
                        .iter()
                        .filter_map(known_node)
                        .filter(|(x, _)| *x != self.me.name),
                );
                self.tell_new_nodes(p, &new_nodes, vsn);
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
                for (x, vsn) in e[4].as_list().unwrap_or(&[]).iter().filter_map(known_node) {
                    if x != self.me.name && !self.known.contains_key(&x) {
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
            _ => tracing::debug!("global: ignoring cast {m}"),
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
                    nil(),
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
    /// they connect to the new ones. We resolved no names, so no operations.
    fn tell_new_nodes(&self, p: &Process, new_nodes: &[(String, i64)], peer_vsn: i64) {
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
                nil(),
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

    /// R14: `n` leaves our cluster (`handle_nodedown/3`).
    fn node_down(&mut self, p: &mut Process, n: &str, why: Leaving) {
        match why {
            Leaving::Removed => {
                self.removing.insert(n.to_owned());
            }
            Leaving::Disconnected => {
                if !self.removing.remove(n) && self.prevent_overlapping_partitions {
                    self.inform_connection_loss(p, n);
                }
            }
        }
        self.sessions.remove(n);
        self.known.remove(n);
        self.synced.remove(n);
        if why == Leaving::Removed {
            // Its lock holders' monitors fire when the connection goes.
            return;
        }
        let gone: Vec<Pid> = self
            .holder_monitors
            .keys()
            .filter(|pid| pid.node.name == n)
            .cloned()
            .collect();
        for pid in gone {
            if let Some(r) = self.holder_monitors.get(&pid).cloned() {
                p.demonitor(&r, true);
            }
            self.release_holder(&pid);
        }
    }

    /// R15: we lost `n`; every node we know hears of it and drops one of us two
    /// (`inform_connection_loss/2`).
    fn inform_connection_loss(&mut self, p: &Process, n: &str) {
        self.next_tag += 1;
        let report = tuple(vec![
            atom("lost_connection"),
            self.me(),
            int(self.xcreation),
            int(self.next_tag),
            atom(n),
        ]);
        self.multicast(p, &report, n);
    }

    /// R16: `{lost_connection, A, XCreation, OpId, B}`, node A lost B: passed on to every
    /// node we know, once, and whichever of the two is not us is dropped, as
    /// `global` does when `prevent_overlapping_partitions` is on (OTP 25's default).
    fn lost_connection(&mut self, p: &mut Process, report: &Term) {
        if !self.prevent_overlapping_partitions {
            return;
        }
        let Some([_, Term::Atom(a), xcreation, op_id, Term::Atom(b)]) = report.as_tuple_n(5) else {
            return;
        };
        let (Some(xcreation), Some(op_id)) = (xcreation.as_int(), op_id.as_int()) else {
            return;
        };
        let key = (a.name.clone(), b.name.clone());
        if self.lost.get(&key).is_some_and(|l| {
            l.xcreation == xcreation && op_id <= l.op_id && l.at.elapsed() < LOST_MEMORY
        }) {
            return;
        }
        self.multicast(p, report, &a.name);
        self.remember_lost(key, xcreation, op_id);
        let gone = if b.name == self.me.name {
            &a.name
        } else {
            &b.name
        };
        if !self.potentially_known(gone) {
            return;
        }
        let what = if self.vsn_of(gone) < POP_VSN {
            p.node().disconnect(gone);
            "disconnected old"
        } else {
            volatile(p, gone, &tuple(vec![atom("remove_connection"), self.me()]));
            "requested disconnect from"
        };
        tracing::warn!(
            "'global' at node {} {what} node {gone} in order to prevent overlapping partitions",
            self.me.name
        );
        self.node_down(p, gone, Leaving::Removed);
    }

    /// Keeps a report for an hour, the oldest making room when too many are kept.
    fn remember_lost(&mut self, key: (String, String), xcreation: i64, op_id: i64) {
        let now = Instant::now();
        if self.lost.len() >= LOST_MAX {
            self.lost
                .retain(|_, l| now.duration_since(l.at) < LOST_MEMORY);
        }
        if self.lost.len() >= LOST_MAX {
            let oldest = self
                .lost
                .iter()
                .min_by_key(|(_, l)| l.at)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.lost.remove(&oldest);
            }
        }
        let seen = Lost {
            xcreation,
            op_id,
            at: now,
        };
        self.lost.insert(key, seen);
    }

    /// `gns_volatile_multicast/5`: `message` to every node we know or are syncing with
    /// that takes part (vsn 7 on), but `except`, over the connections that are up.
    fn multicast(&self, p: &Process, message: &Term, except: &str) {
        let known = self.known.iter().map(|(n, vsn)| (n, *vsn));
        let pending = self
            .sessions
            .iter()
            .filter(|(n, s)| s.his_tag.is_some() && !self.known.contains_key(*n))
            .map(|(n, s)| (n, s.vsn));
        for (n, _) in known
            .chain(pending)
            .filter(|(n, vsn)| *vsn >= POP_VSN && n.as_str() != except)
        {
            volatile(p, n, message);
        }
    }

    /// In our cluster, or syncing with us since its `init_connect` (`global`'s
    /// `{pending, N}`; `is_node_potentially_known/2`).
    fn potentially_known(&self, n: &str) -> bool {
        self.known.contains_key(n) || self.sessions.get(n).is_some_and(|s| s.his_tag.is_some())
    }

    /// The `global` version `n` spoke (0 when we never heard it).
    fn vsn_of(&self, n: &str) -> i64 {
        match (self.known.get(n), self.sessions.get(n)) {
            (Some(vsn), _) => *vsn,
            (None, Some(s)) => s.vsn,
            (None, None) => 0,
        }
    }

    /// R13: the calls every node's `global_name_server` answers.
    fn call(&mut self, p: &mut Process, from: From, request: &Term) {
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
            (Some("register"), 4) | (Some("register_ext"), 5) => atom("yes"),
            (Some("unregister"), 2) | (Some("unregister_ext"), 2) => atom("ok"),
            _ => return tracing::warn!("global: unexpected call {}", crate::term::Short(request)),
        };
        from.reply(p, reply);
    }

    fn set_lock(&mut self, p: &mut Process, res: Term, req: Term, pid: &Pid) -> bool {
        match self.locks.get_mut(&res) {
            Some(lock) if lock.requester == req => {
                if !lock.holders.contains(pid) {
                    lock.holders.push(pid.clone());
                }
            }
            Some(_) => return false,
            None => {
                self.locks.insert(
                    res,
                    Lock {
                        requester: req,
                        holders: vec![pid.clone()],
                    },
                );
            }
        }
        if !self.holder_monitors.contains_key(pid) {
            let r = p.monitor(pid.clone());
            self.holder_monitors.insert(pid.clone(), r);
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

    fn release_holder(&mut self, pid: &Pid) {
        self.holder_monitors.remove(pid);
        self.locks.retain(|_, l| {
            l.holders.retain(|h| h != pid);
            !l.holders.is_empty()
        });
    }
}
