//! Room for large messages: the pages of a large buffer are taken from the kernel a
//! mebibyte at a time, ahead of the bytes that fill them.
//!
//! A message of tens of megabytes is put together (from its fragments, or encoded) in a
//! buffer of its own, and a received one goes with its bytes to its process, so the
//! buffer's memory is fresh from the kernel: each 4 KiB page is a page fault the first
//! time it is written, 16,384 for 64 MiB. Receiving 64 MB messages from a BEAM node,
//! those faults were half of this node's CPU time (a BEAM reuses the memory of the
//! binaries it has freed, so it mostly does not fault). `MADV_POPULATE_WRITE` (Linux
//! 5.14) has the kernel take the pages of a whole range in one call, without a fault
//! per page; on a kernel without it the call fails and the writes fault as before.
//! (Transparent huge pages, `MADV_HUGEPAGE`, were slower here: most faults still took
//! small pages, after the kernel had looked for a huge one.)

/// Buffers from this capacity up have their pages taken ahead.
const LARGE: usize = 1 << 20;
/// How much is taken at once.
const STEP: usize = 1 << 20;

/// Makes room in `buf` for `additional` more bytes, as `Vec::reserve` does; in a large
/// buffer, the pages of the mebibyte those bytes reach are taken from the kernel at once
/// when they first reach it.
#[inline]
pub(crate) fn reserve(buf: &mut Vec<u8>, additional: usize) {
    buf.reserve(additional);
    if buf.capacity() >= LARGE {
        take_ahead(buf, additional);
    }
}

/// As [`reserve`], for a buffer that may hold at most `limit` bytes (a message being
/// put together, under the maximum message size): it grows by doubling, as a `Vec`
/// does, but never past `limit`, so that memory stays within the limit a node is given
/// (a 16 MiB buffer doubled to 32 MiB for a message capped at 20 MB went past it).
pub(crate) fn reserve_within(buf: &mut Vec<u8>, additional: usize, limit: usize) {
    let needed = buf.len().saturating_add(additional);
    if needed > buf.capacity() {
        let grown = buf
            .capacity()
            .saturating_mul(2)
            .clamp(needed, limit.max(needed));
        buf.reserve_exact(grown - buf.len());
    }
    reserve(buf, additional);
}

/// Takes the pages of `buf`'s spare capacity from the next mebibyte boundary at or after
/// its length up to the one at or after `len + additional` (clipped to the capacity),
/// when the write of `additional` bytes crosses or starts at such a boundary. Returns
/// whether the kernel took them.
fn take_ahead(buf: &mut Vec<u8>, additional: usize) -> bool {
    let len = buf.len();
    let end = len.saturating_add(additional);
    let next = len.next_multiple_of(STEP);
    if end <= next && len != next {
        // Within a mebibyte whose pages were taken when the writes reached it.
        return false;
    }
    let to = end.next_multiple_of(STEP).min(buf.capacity());
    populate(&mut buf.spare_capacity_mut()[next - len..to - len])
}

#[cfg(target_os = "linux")]
fn populate(spare: &mut [std::mem::MaybeUninit<u8>]) -> bool {
    const PAGE: usize = 4096;
    let start = spare.as_mut_ptr() as usize;
    // Whole pages only (a page size of more than 4 KiB rounds further inside).
    let from = start.next_multiple_of(PAGE);
    let to = (start + spare.len()) / PAGE * PAGE;
    if from >= to {
        return false;
    }
    // SAFETY: `from..to` lies within `spare`, memory we hold mutably and that holds no
    // value yet; MADV_POPULATE_WRITE backs it with pages as a write would, without
    // writing, and changes nothing else.
    let done = unsafe {
        libc::madvise(
            from as *mut libc::c_void,
            to - from,
            libc::MADV_POPULATE_WRITE,
        )
    };
    done == 0
}

#[cfg(not(target_os = "linux"))]
fn populate(_spare: &mut [std::mem::MaybeUninit<u8>]) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer filled in fragments keeps its bytes, and from its first mebibyte on
    /// the pages are taken once per mebibyte.
    #[test]
    fn a_large_buffer_is_filled_a_mebibyte_of_pages_at_a_time() {
        let fragment: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let mut buf = Vec::new();
        let mut taken = 0;
        for _ in 0..256 {
            buf.reserve(fragment.len());
            if buf.capacity() >= LARGE && take_ahead(&mut buf, fragment.len()) {
                taken += 1;
            }
            buf.extend_from_slice(&fragment);
        }
        assert_eq!(buf.len(), 16 << 20);
        assert!(buf.chunks(fragment.len()).all(|c| c == fragment));
        if cfg!(target_os = "linux") && taken > 0 {
            // Every mebibyte from the first large capacity on, once (the kernel has
            // MADV_POPULATE_WRITE; without it nothing is taken and nothing to check).
            assert!((14..=16).contains(&taken), "{taken}");
        }
        // Within a mebibyte already reached, nothing more.
        let mut buf = Vec::with_capacity(4 << 20);
        buf.extend_from_slice(&[1; 100]);
        assert!(!take_ahead(&mut buf, 1000));
    }

    #[test]
    fn small_buffers_are_left_alone() {
        let mut buf = vec![7u8; 10];
        reserve(&mut buf, 100);
        assert!(buf.capacity() >= 110);
        assert_eq!(buf, [7; 10]);
    }
}

#[cfg(test)]
mod within_tests {
    use super::reserve_within;

    #[test]
    fn a_buffer_grows_by_doubling_but_not_past_its_limit() {
        const MIB: usize = 1 << 20;
        let mut buf = vec![1u8; 16 * MIB];
        buf.shrink_to_fit();
        // Doubling would make 32 MiB: the limit, 20 MB, holds it back.
        reserve_within(&mut buf, MIB, 20_000_000);
        assert!(buf.capacity() >= 17 * MIB && buf.capacity() <= 20_000_000);
        // Below the limit it doubles, as a Vec does.
        let mut small = vec![1u8; MIB];
        small.shrink_to_fit();
        reserve_within(&mut small, 1, 20_000_000);
        assert!(small.capacity() >= 2 * MIB);
        // What is needed is always made room for.
        let mut over = vec![1u8; MIB];
        reserve_within(&mut over, 2 * MIB, MIB);
        assert!(over.capacity() >= 3 * MIB);
    }
}
