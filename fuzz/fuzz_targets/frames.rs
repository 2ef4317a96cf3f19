//! The frame reader over an arbitrary byte stream, each frame through the term reader
//! and the control-message decoder (`cnode::fuzzing::frames`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let _ = cnode::fuzzing::frames(input);
});
