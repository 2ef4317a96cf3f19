//! One frame body through the term guard and the control-message decoder: no panic, no
//! stack overflow, no allocation beyond the input's size (`cnode::fuzzing::decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = cnode::fuzzing::decode(frame);
    // The guard alone, on the same bytes read as terms, and the term reader (which
    // decodes frames without it) must refuse whatever it refuses.
    let _ = cnode::fuzzing::check_terms(frame);
});
