//! What an operator's tools ask a node about itself over rpc (observer_cli, recon,
//! Phoenix LiveDashboard, a remote shell's first calls): `erlang:memory/0,1`,
//! `system_info/1`, `statistics/1` and `garbage_collect/0,1,2`, answered with this
//! program's figures in the BEAM's shapes. A Rust node has no process heaps, no ETS and
//! no loaded code: those parts are 0, and `total` is the program's resident memory. A
//! key the BEAM does not know is `badarg`, as there; one it knows that means nothing
//! here (`otp_release`, `schedulers_state`...) is `badarg` too, with the BIF's frame.

use crate::node::Node;
use crate::process::Exception;
use crate::term::{atom, int, list, tuple, Atom, Match, Term};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// When the node's functions were registered: its start, for `wall_clock`.
static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

pub(crate) fn register(node: &Node) {
    LazyLock::force(&STARTED);
    super::builtins::bif(node, "memory", 0, |_, _| async move {
        let memory = Memory::now();
        Ok(list(
            MEMORY
                .iter()
                .map(|k| tuple(vec![atom(k), int(memory.get(k))]))
                .collect(),
        ))
    });
    super::builtins::bif(node, "memory", 1, |_, args| async move {
        let memory = Memory::now();
        let known = |t: &Term| {
            t.as_atom()
                .filter(|k| MEMORY.contains(k))
                .map(|k| memory.get(k))
        };
        match &args[0] {
            Term::Atom(_) => known(&args[0]).map(int).ok_or_else(Exception::bare_badarg),
            Term::List(l) => l
                .elements
                .iter()
                .map(|k| known(k).map(|v| tuple(vec![k.clone(), int(v)])))
                .collect::<Option<Vec<_>>>()
                .map(list)
                .ok_or_else(Exception::bare_badarg),
            _ => Err(Exception::bare_badarg()),
        }
    });
    super::builtins::bif(node, "system_info", 1, |p, args| async move {
        system_info(p.node(), &args[0]).ok_or_else(Exception::bare_badarg)
    });
    super::builtins::bif(node, "statistics", 1, |_, args| async move {
        statistics(&args[0]).ok_or_else(Exception::bare_badarg)
    });
    // Nothing to collect: a Rust process has no heap of its own.
    super::builtins::bif(node, "garbage_collect", 0, |_, _| async move {
        Ok(atom("true"))
    });
    for arity in [1, 2] {
        super::builtins::bif(node, "garbage_collect", arity, |p, args| async move {
            match args[0].as_pid() {
                Some(pid) if p.node().is_local(&pid.node) => {
                    Ok(crate::term::boolean(p.node().is_alive(pid)))
                }
                _ => Err(Exception::bare_badarg()),
            }
        });
    }
}

/// The keys of `erlang:memory/0`, in its order.
const MEMORY: [&str; 9] = [
    "total",
    "processes",
    "processes_used",
    "system",
    "atom",
    "atom_used",
    "binary",
    "code",
    "ets",
];

/// The figures of one `erlang:memory/0,1` call, read once so that they agree.
struct Memory {
    resident: i64,
    atoms: i64,
}

impl Memory {
    fn now() -> Memory {
        Memory {
            resident: resident_bytes(),
            atoms: (Atom::count() * 32) as i64,
        }
    }

    /// Bytes for a key: the whole program's resident memory is `total` and `system`;
    /// the atoms' names (about their text and a table entry each) are `atom_used`, and
    /// `atom` that rounded up to the 64 KiB blocks a table grows by (as the BEAM's
    /// `atom` is what its atom table has taken, never less than `atom_used`); the rest
    /// is 0.
    fn get(&self, key: &str) -> i64 {
        const BLOCK: i64 = 64 * 1024;
        match key {
            "total" | "system" => self.resident,
            "atom_used" => self.atoms,
            "atom" => (self.atoms + BLOCK - 1) / BLOCK * BLOCK,
            _ => 0,
        }
    }
}

/// The program's resident set (`/proc/self/statm`), in bytes.
fn resident_bytes() -> i64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> i64 {
    // SAFETY: sysconf reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as i64
    } else {
        4096
    }
}

fn system_info(node: &Node, key: &Term) -> Option<Term> {
    let cores = cores() as i64;
    Some(match key.as_atom()? {
        "process_count" => int(node.process_count() as i64),
        "process_limit" => int(node.0.config.max_processes as i64),
        "atom_count" => int(Atom::count() as i64),
        "atom_limit" => int(Atom::LIMIT as i64),
        "port_count" => int(0),
        "port_limit" => int(65536),
        "ets_count" => int(0),
        "ets_limit" => int(8192),
        // The threads that run the node's processes: the runtime's workers (1 on a
        // current-thread runtime, Moebi's `--threads 1`), as `+S` sets a BEAM's.
        "schedulers" | "schedulers_online" => {
            int(tokio::runtime::Handle::current().metrics().num_workers() as i64)
        }
        "logical_processors" | "logical_processors_available" | "logical_processors_online" => {
            int(cores)
        }
        "dirty_cpu_schedulers" | "dirty_cpu_schedulers_online" | "dirty_io_schedulers" => int(0),
        "wordsize" => int(8),
        "thread_pool_size" => int(0),
        "threads" => atom("true"),
        "smp_support" => atom("true"),
        "multi_scheduling" => atom("enabled"),
        "creation" => int(i64::from(node.creation())),
        "dist_buf_busy_limit" => int(node.0.config.dist_buf_busy_limit as i64),
        _ => return None,
    })
}

/// The totals `wall_clock` and `runtime` gave at their last call, for the time since
/// it (the start, before the first).
static LAST: std::sync::Mutex<(i64, i64)> = std::sync::Mutex::new((0, 0));

fn statistics(key: &Term) -> Option<Term> {
    let pair = |a: i64, b: i64| tuple(vec![int(a), int(b)]);
    // The total, and the time since the last call of the same key.
    let since_last = |total: i64, last: fn(&mut (i64, i64)) -> &mut i64| {
        let mut last_totals = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let before = std::mem::replace(last(&mut last_totals), total);
        pair(total, total - before)
    };
    let cores = cores();
    Some(match key.as_atom()? {
        "wall_clock" => since_last(millis(STARTED.elapsed()), |l| &mut l.0),
        "runtime" => since_last(millis(cpu_time()), |l| &mut l.1),
        // One per scheduler; `_all` with the dirty CPU and IO run queues after them.
        "run_queue_lengths" | "active_tasks" => list(vec![int(0); cores]),
        "run_queue_lengths_all" | "active_tasks_all" => list(vec![int(0); cores + 2]),
        // Not enabled (`erlang:system_flag/2` turns it on on a BEAM node).
        "scheduler_wall_time" | "scheduler_wall_time_all" => atom("undefined"),
        // Each thread's counters, as a BEAM node not measuring them gives them: 0.
        "microstate_accounting" => microstate_accounting(cores),
        "run_queue"
        | "total_run_queue_lengths"
        | "total_run_queue_lengths_all"
        | "total_active_tasks"
        | "total_active_tasks_all" => int(0),
        // No reductions counted, no context switches of schedulers.
        "reductions" | "exact_reductions" | "context_switches" => pair(0, 0),
        "garbage_collection" => tuple(vec![int(0), int(0), int(0)]),
        "io" => tuple(vec![
            tuple(vec![atom("input"), int(0)]),
            tuple(vec![atom("output"), int(0)]),
        ]),
        _ => return None,
    })
}

/// `statistics(microstate_accounting)` with every counter 0: a map per thread kind
/// and number, `%{type: scheduler, id: 1, counters: %{...}}`.
fn microstate_accounting(cores: usize) -> Term {
    let counters = crate::term::map(
        [
            "aux", "check_io", "emulator", "gc", "other", "port", "sleep",
        ]
        .iter()
        .map(|k| (atom(k), int(0)))
        .collect::<Vec<_>>(),
    );
    let thread = |kind: &str, id: usize| {
        crate::term::map(vec![
            (atom("counters"), counters.clone()),
            (atom("id"), int(id as i64)),
            (atom("type"), atom(kind)),
        ])
    };
    let mut threads = vec![thread("poll", 0), thread("async", 0), thread("aux", 1)];
    threads.extend((1..=cores).map(|id| thread("scheduler", id)));
    list(threads)
}

/// The cores the program may run on: the schedulers a BEAM node would start.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The CPU time the program has used (user and system).
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
