//! Both sides of the distribution handshake, against whatever the other side sends:
//! `input[0]` picks the side, the rest is `cnode::fuzzing::handshake_accept` /
//! `handshake_connect`'s input. Nothing may panic, hang or complete without the cookie.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&side, rest)) = input.split_first() else {
        return;
    };
    let result = if side & 1 == 0 {
        cnode::fuzzing::handshake_accept(rest)
    } else {
        cnode::fuzzing::handshake_connect(rest)
    };
    // Completing needs the digest of a random challenge with the cookie: never by chance.
    assert!(result.is_err(), "a handshake completed: {result:?}");
});
