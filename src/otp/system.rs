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
        Ok(list(
            MEMORY
                .iter()
                .map(|k| tuple(vec![atom(k), int(memory(k))]))
                .collect(),
        ))
    });
    super::builtins::bif(node, "memory", 1, |_, args| async move {
        let known = |t: &Term| t.as_atom().filter(|k| MEMORY.contains(k)).map(memory);
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

/// Bytes for a key of `erlang:memory/1`: the whole program's resident memory is
/// `total` and `system`; the atoms' names (about their text and a table entry each)
/// are `atom`; the rest is 0.
fn memory(key: &str) -> i64 {
    match key {
        "total" | "system" => resident_bytes(),
        "atom" | "atom_used" => (Atom::count() * 32) as i64,
        _ => 0,
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    Some(match key.as_atom()? {
        "process_count" => int(node.process_count() as i64),
        "process_limit" => int(node.0.config.max_processes as i64),
        "atom_count" => int(Atom::count() as i64),
        "atom_limit" => int(Atom::LIMIT as i64),
        "port_count" => int(0),
        "port_limit" => int(65536),
        "ets_count" => int(0),
        "ets_limit" => int(8192),
        "schedulers"
        | "schedulers_online"
        | "logical_processors"
        | "logical_processors_available"
        | "logical_processors_online" => int(cores),
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

fn statistics(key: &Term) -> Option<Term> {
    let pair = |a: i64, b: i64| tuple(vec![int(a), int(b)]);
    Some(match key.as_atom()? {
        // Since the start, and (as a BEAM node's first call gives) the same again.
        "wall_clock" => {
            let ms = millis(STARTED.elapsed());
            pair(ms, ms)
        }
        "runtime" => {
            let ms = millis(cpu_time());
            pair(ms, ms)
        }
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
