//! Walking a deeply nested term without running out of stack.
//!
//! A term nests as deeply as its sender made it: iodata appended in a loop (`[acc,
//! line]`) nests a level per append, and a BEAM node takes any depth. The code that
//! walks a term recurses once per level: decoding and encoding it, printing it,
//! comparing, hashing and cloning it. Each such level goes through [`deep`], which
//! moves onto a fresh stack segment (`stacker`) when the thread's own stack runs low,
//! so that a term as deep as [`NodeConfig::max_term_depth`](crate::NodeConfig::max_term_depth)
//! allows is walked on any thread: a tokio worker's 2 MiB, a test's, `main`'s.

/// Below this much stack left, the next level runs on a new segment: more than a
/// level of any walk takes in a debug build (about 3 KiB), with room for the leaves'
/// own calls (a float or a big integer printed).
const RED_ZONE: usize = 128 * 1024;

/// The size of each new segment.
const SEGMENT: usize = 2 * 1024 * 1024;

/// Runs `f`, one level down a term, on a new stack segment if this one is low.
#[inline(always)]
pub(crate) fn deep<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}
