//! Both sides of the distribution handshake, against whatever the other side sends:
//! `cnode::fuzzing::handshake` (`input[0]` picks the side, the rest is that side's
//! input). Nothing may panic, hang or complete without the cookie.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let result = cnode::fuzzing::handshake(input);
    // Completing needs the digest of a random challenge with the cookie: never by chance.
    assert!(result.is_err(), "a handshake completed: {result:?}");
});
