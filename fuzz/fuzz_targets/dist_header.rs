//! The frame reader over an arbitrary byte stream from a peer that negotiated the
//! distribution header: atom cache references and updates, fragments reassembled, each
//! message through the term reader and the control-message decoder
//! (`cnode::fuzzing::headed_frames`, which asserts the bytes held for reassembly stay
//! bounded).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = cnode::fuzzing::headed_frames(input);
});
