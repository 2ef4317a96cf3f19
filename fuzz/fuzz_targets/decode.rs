//! One frame body through the term reader and the control-message decoder: no panic, no
//! stack overflow, no allocation beyond the input's size (`cnode::fuzzing::decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = cnode::fuzzing::decode(frame);
    // The term reader alone, against the limits it enforces (depth, terms per byte,
    // refusals at a byte of the input).
    let _ = cnode::fuzzing::check_terms(frame);
});
