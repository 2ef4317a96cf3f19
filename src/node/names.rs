//! The node's registered names, and the lookup a connection's reader makes for each
//! message a peer sends to a name (`REG_SEND`): a stream of messages to one name (a
//! BEAM caller's `GenServer.call`s to `{:echo, node}`, one-way sends) looks the name up
//! once, then checks a version number, where a lookup takes and releases the table's
//! lock and counts a reference to the entry up and down (four atomic operations a
//! message, 5% of a receiving node's time in one-way sends).

use super::entry::ProcEntry;
use super::keys::AtomMap;
use crate::sync::lock;
use crate::term::{Atom, Pid};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Name to process entry; every change bumps `version` while the lock is held.
#[derive(Default)]
pub(crate) struct Names {
    map: Mutex<AtomMap<Arc<ProcEntry>>>,
    version: AtomicU64,
}

/// The last name one connection's messages went to: its entry, valid while the
/// table's version is the one read with it. It keeps that entry (not its process)
/// alive until the connection sends to another name or closes.
#[derive(Default)]
pub(crate) struct LastName(Option<(Atom, u64, Arc<ProcEntry>)>);

impl Names {
    pub fn get(&self, name: &Atom) -> Option<Arc<ProcEntry>> {
        lock(&self.map).get(name).cloned()
    }

    /// `name`'s entry, through `last` when the table has not changed since.
    pub fn get_through<'a>(&self, name: &Atom, last: &'a mut LastName) -> Option<&'a ProcEntry> {
        let version = self.version.load(Ordering::Acquire);
        let fresh = matches!(&last.0, Some((n, v, _)) if n == name && *v == version);
        if !fresh {
            let map = lock(&self.map);
            // Read under the lock: the version of the map as it is here.
            let version = self.version.load(Ordering::Relaxed);
            last.0 = map.get(name).map(|e| (*name, version, e.clone()));
        }
        last.0.as_ref().map(|(_, _, e)| &**e)
    }

    /// Registers `name` for `entry` unless it is taken.
    pub fn insert_new(&self, name: Atom, entry: &Arc<ProcEntry>) -> bool {
        let mut map = lock(&self.map);
        if map.contains_key(&name) {
            return false;
        }
        map.insert(name, entry.clone());
        self.version.fetch_add(1, Ordering::Release);
        true
    }

    /// Unregisters `name` if `pid` holds it.
    pub fn remove_if_held(&self, name: &Atom, pid: &Pid) {
        let mut map = lock(&self.map);
        if map.get(name).is_some_and(|e| e.pid == *pid) {
            map.remove(name);
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    pub fn keys(&self) -> Vec<Atom> {
        lock(&self.map).keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::SpawnOpts;

    fn entry(id: u32) -> Arc<ProcEntry> {
        let pid = Pid::new("names@host", id, 0, 1);
        let opts = SpawnOpts {
            group_leader: pid,
            link: None,
            monitored_by: None,
            name: None,
            initial_call: (Atom::from("erlang"), Atom::from("apply"), 2),
        };
        ProcEntry::prepare(pid, &opts).entry
    }

    fn through(names: &Names, name: &str, last: &mut LastName) -> Option<Pid> {
        names.get_through(&Atom::from(name), last).map(|e| e.pid)
    }

    #[test]
    fn a_readers_last_name_follows_every_change_of_the_table() {
        let names = Names::default();
        let mut last = LastName::default();
        let (a, b) = (entry(1), entry(2));
        let x = Atom::from("x");
        assert_eq!(through(&names, "x", &mut last), None);
        assert!(names.insert_new(x, &a));
        assert!(!names.insert_new(x, &b), "taken");
        assert_eq!(through(&names, "x", &mut last), Some(a.pid));
        assert_eq!(through(&names, "x", &mut last), Some(a.pid));
        names.remove_if_held(&x, &b.pid);
        assert_eq!(through(&names, "x", &mut last), Some(a.pid), "not b's");
        names.remove_if_held(&x, &a.pid);
        assert_eq!(through(&names, "x", &mut last), None);
        assert!(names.insert_new(x, &b));
        assert_eq!(through(&names, "x", &mut last), Some(b.pid));
        assert!(names.insert_new(Atom::from("y"), &a));
        assert_eq!(through(&names, "y", &mut last), Some(a.pid));
        assert_eq!(through(&names, "x", &mut last), Some(b.pid));
        assert_eq!(names.get(&x).map(|e| e.pid), Some(b.pid));
        let mut keys = names.keys();
        keys.sort();
        assert_eq!(keys, [x, Atom::from("y")]);
    }
}
