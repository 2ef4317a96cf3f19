//! Text through the term parsers, Elixir's and Erlang's (what `cnode`'s arguments go
//! through): a term or an error, never a panic or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &[u8]| {
    if let Ok(text) = std::str::from_utf8(text) {
        let _ = cnode::term::parse(text);
        let _ = cnode::term::parse_erlang(text);
    }
});
