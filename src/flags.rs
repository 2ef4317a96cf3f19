//! Distribution flags: the one place that says which capabilities we advertise.
//!
//! We advertise exactly what we implement: the OTP 25 mandatory set, plus the features
//! whose messages we fully answer, the distribution header with its atom cache and
//! fragments among them (`connection::header`); and we never set a flag whose messages
//! we would ignore (a visible node that sets SPAWN and ignores
//! SPAWN_REQUEST makes crashing BEAM tasks hang).
//!
//! Names and values as in the Erlang docs (`erl_dist_protocol`, `dist.hrl`).

pub(crate) const PUBLISHED: u64 = 0x01;
pub(crate) const EXTENDED_REFERENCES: u64 = 0x04;
pub(crate) const DIST_MONITOR: u64 = 0x08;
pub(crate) const FUN_TAGS: u64 = 0x10;
pub(crate) const DIST_MONITOR_NAME: u64 = 0x20;
pub(crate) const NEW_FUN_TAGS: u64 = 0x80;
pub(crate) const EXTENDED_PIDS_PORTS: u64 = 0x100;
pub(crate) const EXPORT_PTR_TAG: u64 = 0x200;
pub(crate) const BIT_BINARIES: u64 = 0x400;
pub(crate) const NEW_FLOATS: u64 = 0x800;
pub(crate) const UNICODE_IO: u64 = 0x1000;
pub(crate) const DIST_HDR_ATOM_CACHE: u64 = 0x2000;
pub(crate) const SMALL_ATOM_TAGS: u64 = 0x4000;
pub(crate) const UTF8_ATOMS: u64 = 0x10000;
pub(crate) const MAP_TAG: u64 = 0x20000;
pub(crate) const BIG_CREATION: u64 = 0x40000;
pub(crate) const SEND_SENDER: u64 = 0x80000;
pub(crate) const EXIT_PAYLOAD: u64 = 0x400000;
pub(crate) const FRAGMENTS: u64 = 0x800000;
pub(crate) const HANDSHAKE_23: u64 = 0x1000000;
pub(crate) const UNLINK_ID: u64 = 0x2000000;
/// `DFLAG_MANDATORY_25_DIGEST` is bit 26 in `dist.hrl` (and in the flags OTP 25 sends,
/// 0xd07df7fbd); erl_dist 0.8 has it at bit 36, which no BEAM knows.
pub(crate) const MANDATORY_25_DIGEST: u64 = 0x4000000;
pub(crate) const SPAWN: u64 = 1 << 32;
/// `DFLAG_NAME_ME`: the peer asks the node it connects to for a name (a dynamic node
/// name), giving only its host.
pub(crate) const NAME_ME: u64 = 1 << 33;
pub(crate) const V4_NC: u64 = 1 << 34;
pub(crate) const ALIAS: u64 = 1 << 35;
/// OTP 28+: `ALTACT_SIG_SEND` (control message 37), for alias sends, priority messages
/// and exit signals to aliases; `ALIAS_SEND` goes in OTP 30.
pub(crate) const ALTACT_SIG: u64 = 1 << 37;

/// `MANDATORY_DFLAGS_25` of `kernel/include/dist.hrl`: a peer lacking any is refused.
const MANDATORY_25: &[(u64, &str)] = &[
    (EXTENDED_REFERENCES, "EXTENDED_REFERENCES"),
    (FUN_TAGS, "FUN_TAGS"),
    (EXTENDED_PIDS_PORTS, "EXTENDED_PIDS_PORTS"),
    (NEW_FUN_TAGS, "NEW_FUN_TAGS"),
    (EXPORT_PTR_TAG, "EXPORT_PTR_TAG"),
    (BIT_BINARIES, "BIT_BINARIES"),
    (NEW_FLOATS, "NEW_FLOATS"),
    (UTF8_ATOMS, "UTF8_ATOMS"),
    (MAP_TAG, "MAP_TAG"),
    (BIG_CREATION, "BIG_CREATION"),
    (HANDSHAKE_23, "HANDSHAKE_23"),
];

/// The flags we send in the handshake. `visible` adds PUBLISHED (we then take part in
/// `global` and answer `rex`, as a BEAM node does).
pub(crate) fn advertised(visible: bool) -> u64 {
    let mandatory: u64 = MANDATORY_25.iter().map(|(f, _)| f).sum();
    let features = DIST_MONITOR
        | DIST_MONITOR_NAME
        | UNICODE_IO
        | DIST_HDR_ATOM_CACHE
        | FRAGMENTS
        | SMALL_ATOM_TAGS
        | SEND_SENDER
        | EXIT_PAYLOAD
        | UNLINK_ID
        | MANDATORY_25_DIGEST
        | SPAWN
        | V4_NC
        | ALIAS
        | ALTACT_SIG;
    mandatory | features | if visible { PUBLISHED } else { 0 }
}

/// Names of the mandatory flags missing from `peer`.
pub(crate) fn missing_mandatory(peer: u64) -> Vec<&'static str> {
    MANDATORY_25
        .iter()
        .filter(|(f, _)| peer & f == 0)
        .map(|(_, n)| *n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mandatory_set_is_dist_hrl_value() {
        let mandatory: u64 = MANDATORY_25.iter().map(|(f, _)| f).sum();
        assert_eq!(mandatory, 0x1070f94);
    }

    #[test]
    fn we_are_a_subset_of_what_otp_sends() {
        // OTP 25 sends 0xd07df7fbd, OTP 28+ adds ALTACT_SIG; we
        // leave out the atom cache and fragments, and the flags whose messages we don't
        // answer.
        let otp25 = 0xd07df7fbd_u64;
        assert_eq!(advertised(true) & !(otp25 | ALTACT_SIG), 0);
        assert!(missing_mandatory(advertised(false)).is_empty());
    }
}
