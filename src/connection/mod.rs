//! A connection to one peer node: framing, ticks, and decoding of control messages.

pub(crate) mod guard;
