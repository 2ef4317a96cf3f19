//! `cnode::reuse_freed_memory`: the pages of a large block freed are the next one's,
//! and the heap gives them back once they have stayed unused. Its own process, with the
//! call first in `main` as the docs ask (`harness = false`); and, run again by itself,
//! the call refused once another thread runs.

#![cfg_attr(
    not(all(target_os = "linux", target_env = "gnu")),
    allow(dead_code, unused_imports)
)]

mod fakepeer;

use std::time::{Duration, Instant};

const BLOCK: usize = 64 << 20;

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    fakepeer::rss_kib(std::process::id())
}

/// Page faults this process took without reading from disk.
fn minor_faults() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage.ru_minflt
    }
}

/// A block of `BLOCK` bytes, every page written.
fn block() -> Vec<u8> {
    std::hint::black_box(vec![1u8; BLOCK])
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    cnode::reuse_freed_memory();
    eprintln!("malloc: not glibc on Linux, where the call does nothing");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    const LATE: &str = "CNODE_MALLOC_TEST_LATE";
    if std::env::var_os(LATE).is_some() {
        // Another thread first: the call refuses.
        let other = std::thread::spawn(|| std::thread::sleep(Duration::from_secs(2)));
        assert!(!cnode::reuse_freed_memory());
        other.join().unwrap();
        return;
    }
    let late = std::process::Command::new(std::env::current_exe().unwrap())
        .env(LATE, "1")
        .status()
        .expect("the test runs itself again");
    assert!(late.success(), "called with another thread running: {late}");

    assert!(cnode::reuse_freed_memory());
    assert!(std::thread::spawn(cnode::reuse_freed_memory)
        .join()
        .unwrap());
    let base = rss_kib();
    let faults = minor_faults();
    drop(block());
    let fresh = minor_faults() - faults;
    let kept = rss_kib();
    let faults = minor_faults();
    drop(block());
    let reused = minor_faults() - faults;
    eprintln!(
        "RSS {base} KiB, {kept} KiB after a 64 MiB block freed; faults: {fresh} taking it, {reused} taking it again"
    );
    assert!(
        fresh >= (BLOCK / 4096 / 2) as i64,
        "{fresh} faults for fresh pages"
    );
    assert!(
        kept >= base + 48 * 1024,
        "the freed block's pages were given back at once"
    );
    assert!(reused < 1024, "{reused} faults for a block taken again");

    // Unused, they go back within about 2 s; 30 s is a bound for a busy machine.
    let freed = Instant::now();
    let rss = fakepeer::rss_down_to(std::process::id(), base + 8 * 1024, Duration::from_secs(30));
    eprintln!("RSS {rss} KiB after {:?} unused", freed.elapsed());
    assert!(
        rss <= base + 8 * 1024,
        "{rss} KiB still held (from {base} KiB)"
    );
    eprintln!("malloc: ok");
}
