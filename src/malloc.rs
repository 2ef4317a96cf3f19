//! The C allocator's handling of freed memory, for programs that receive large messages.

use std::time::Duration;

/// Free heap that may stay with the process however long it is unused.
const KEEP: usize = 4 << 20;
/// How often the heap's free memory is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Has glibc's allocator keep freed memory, large blocks included, for the next
/// allocations, and give it back to the system once it has stayed unused: the heap's free
/// memory is returned when there was more than 4 MiB of it at two looks a second apart. Call it
/// first in `main`; it is for programs that receive large messages (megabytes), as a
/// BEAM keeps the memory of the binaries it frees for the next ones.
///
/// By default glibc gives a large block a mapping of its own (from 128 KiB up, and
/// always from 32 MiB) and unmaps it when it is freed. A received message goes to its process with the buffer its bytes were
/// gathered in, so each 64 MB message then takes fresh pages from the kernel, zeroed and
/// mapped one by one: on a two-core machine that was 45% of a node's CPU time receiving
/// a stream of them from a Rust sender, which made it slower than the sender, so
/// megabytes waited in its socket ahead of the small messages behind them
/// (`docs/benchmarks.md`, "large messages"). With this call, such blocks come from the
/// heap and the next message reuses the pages of the last.
///
/// Sets `M_ARENA_MAX` to 1 (every thread allocates from the one heap, so all of it is
/// given back; glibc's per-thread caches still serve small blocks without a lock),
/// `M_MMAP_MAX` to 0 (no block gets a mapping of its own while the heap can grow) and
/// `M_TRIM_THRESHOLD` to its largest value (`free` never gives memory back; the looks
/// above do, with `malloc_trim`, from a thread of their own). Call it before starting
/// threads (the runtime's included): a thread that allocated before has a heap of its
/// own, whose top `malloc_trim` does not give back. Later calls do nothing; on other
/// platforms and C libraries it does nothing.
pub fn reuse_freed_memory() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(imp::start);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::{KEEP, LOOK_EVERY};

    pub(super) fn start() {
        let spawned = std::thread::Builder::new()
            .name("cnode-trim".into())
            .spawn(|| {
                let mut was_free = false;
                loop {
                    std::thread::sleep(LOOK_EVERY);
                    // SAFETY: mallinfo2 reads the allocator's statistics (glibc 2.33 on).
                    let free = unsafe { libc::mallinfo2() }.fordblks > KEEP;
                    if free && was_free {
                        // SAFETY: malloc_trim returns the free heap's whole pages to
                        // the system. All of them: at most once a second, a heap
                        // busy with small blocks takes a few pages back.
                        unsafe { libc::malloc_trim(0) };
                    }
                    was_free = free;
                }
            });
        if let Err(e) = spawned {
            // Without the looks, freed memory would stay for good: keep glibc's ways.
            tracing::warn!(error = %e, "no thread to give freed memory back; allocator left as it is");
            return;
        }
        // SAFETY: mallopt sets allocator parameters, under the allocator's own lock.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn start() {}
}
