//! Keeping partitions from overlapping (`prevent_overlapping_partitions`, R14 to R16):
//! when two nodes of the cluster lose each other, every node hears of it and drops one
//! of the two, as `global` does on every BEAM node.

use super::{volatile, Global, POP_VSN};
use crate::process::Process;
use crate::term::{atom, int, tuple, Match, Pid, Term};
use std::time::{Duration, Instant};

/// How long a `lost_connection` report is remembered, so that its repeats are ignored
/// (`?lost_conn_info_cleanup_time`).
const LOST_MEMORY: Duration = Duration::from_secs(60 * 60);
/// The most reports remembered at once: peers can name nodes without end.
const LOST_MAX: usize = 4096;

/// A `lost_connection` report seen (`global_lost_connections`): the reporting node's
/// incarnation and the report's operation id.
#[derive(Debug)]
pub(super) struct Lost {
    xcreation: i64,
    op_id: i64,
    at: Instant,
}

/// Why a node leaves `global`'s cluster here (`handle_nodedown/3`'s `What`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Leaving {
    /// Its connection went down: the others hear of it (`lost_connection`), unless we
    /// were removing it.
    Disconnected,
    /// We drop it to keep partitions from overlapping; its connection goes down next.
    Removed,
}

impl Global {
    /// R14: `n` leaves our cluster (`handle_nodedown/3`).
    pub(super) fn node_down(&mut self, p: &mut Process, n: &str, why: Leaving) {
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
            .filter(|pid| pid.node.name() == n)
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
    pub(super) fn lost_connection(&mut self, p: &mut Process, report: &Term) {
        if !self.prevent_overlapping_partitions {
            return;
        }
        let Some([_, Term::Atom(a), xcreation, op_id, Term::Atom(b)]) = report.as_tuple_n(5) else {
            return;
        };
        let (Some(xcreation), Some(op_id)) = (xcreation.as_int(), op_id.as_int()) else {
            return;
        };
        let key = (a.name().to_owned(), b.name().to_owned());
        if self.lost.get(&key).is_some_and(|l| {
            l.xcreation == xcreation && op_id <= l.op_id && l.at.elapsed() < LOST_MEMORY
        }) {
            return;
        }
        self.multicast(p, report, a.name());
        self.remember_lost(key, xcreation, op_id);
        let gone = if b.name() == self.me.name() {
            &a.name()
        } else {
            &b.name()
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
            self.me.name()
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
    pub(super) fn potentially_known(&self, n: &str) -> bool {
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
}
