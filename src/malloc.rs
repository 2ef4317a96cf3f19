//! The C allocator's handling of freed memory, for programs that receive large messages.

use std::sync::OnceLock;
use std::time::Duration;

/// Free heap that may stay with the process however long it is unused.
const KEEP: usize = 4 << 20;
/// How often the heap's free memory is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Has glibc's allocator keep freed memory, large blocks included, for the next
/// allocations, and give it back to the system once it has stayed unused (when there
/// was more than 4 MiB of it at two looks a second apart). For programs that receive
/// large messages (megabytes), as a BEAM keeps the memory of the binaries it frees for
/// the next ones.
///
/// Call it first in `main`, before any other thread starts, the runtime's included; so
/// not inside `#[tokio::main]`, whose runtime is up before the body runs:
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     cnode::reuse_freed_memory();
///     tokio::runtime::Runtime::new()?.block_on(async {
///         // Node::start(...) and the rest, as under #[tokio::main]
///     });
///     Ok(())
/// }
/// ```
///
/// By default glibc gives a large block a mapping of its own (from 128 KiB up, and
/// always from 32 MiB) and unmaps it when it is freed. A received message goes to its
/// process with the buffer its bytes were gathered in, so each 64 MB message then takes
/// fresh pages from the kernel, zeroed and mapped one by one: on a two-core machine that
/// was 45% of a node's CPU time receiving a stream of them from a Rust sender, which made
/// it slower than the sender, so megabytes waited in its socket ahead of the small
/// messages behind them (`docs/benchmarks.md`, "Small calls beside 64 MB messages").
/// With this call such blocks come from the heap, and the next message reuses the pages
/// of the last.
///
/// Sets `M_ARENA_MAX` to 1 (every thread allocates from the one heap, so all of it can
/// be given back; glibc's per-thread caches still serve small blocks without a lock),
/// `M_MMAP_MAX` to 0 (no block gets a mapping of its own while the heap can grow) and
/// `M_TRIM_THRESHOLD` to its largest value (`free` never gives memory back; the looks
/// above do, with `malloc_trim`, from a thread of their own).
///
/// Returns whether it did: `false`, the allocator freeing as before, when the process
/// already runs other threads (one of them may have a heap of its own, whose top
/// `malloc_trim` never gives back) or no thread could be started for the looks, and on
/// other platforms and C libraries. Later calls return what the first one did.
pub fn reuse_freed_memory() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(imp::start)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use super::{KEEP, LOOK_EVERY};

    pub(super) fn start() -> bool {
        let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count());
        if !matches!(threads, Ok(1)) {
            tracing::warn!(
                "reuse_freed_memory called with other threads running: allocator left as it is"
            );
            return false;
        }
        // SAFETY: mallopt sets allocator parameters, under the allocator's own lock.
        // First, so that the trimming thread, whose heap is chosen at its first
        // allocation, shares the one heap too.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
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
            // Without the looks, freed memory would stay for good.
            tracing::warn!(error = %e, "no thread to give freed memory back: freed memory goes back as before");
            return false;
        }
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
        true
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn start() -> bool {
        false
    }
}
