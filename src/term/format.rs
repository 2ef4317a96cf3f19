//! The errors of the external term format: why bytes were refused as a term
//! ([`Term::from_binary`](super::Term::from_binary), and a peer's frames), and why a
//! term cannot be written ([`Term::to_binary`](super::Term::to_binary)).

/// Why bytes were refused. Positions are byte offsets into the bytes given to the
/// reader (a frame body, after its pass-through byte).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty frame where a term was expected")]
    Empty,
    #[error("expected version byte 131 at byte {pos}, found {found}")]
    BadVersion { pos: usize, found: u8 },
    #[error("term truncated at byte {0}")]
    Truncated(usize),
    #[error("term nested deeper than {0} levels (max_term_depth)")]
    TooDeep(usize),
    #[error("unknown term tag {tag} at byte {pos}")]
    UnknownTag { tag: u8, pos: usize },
    #[error("count {count} at byte {pos} exceeds the {left} bytes left")]
    CountTooLarge { count: u64, pos: usize, left: u64 },
    #[error("compressed terms are not accepted in distribution messages")]
    Compressed,
    #[error("atom cache reference {index} at byte {pos}, but the header lists {refs}")]
    AtomCacheRef { index: u8, refs: usize, pos: usize },
    #[error("LOCAL_EXT terms are only meaningful inside the runtime that made them")]
    Local,
    #[error("expected {expected} at byte {pos}, found tag {tag}")]
    Unexpected {
        expected: &'static str,
        tag: u8,
        pos: usize,
    },
    #[error("reference at byte {pos} has {words} id words, at most 5 are allowed")]
    ReferenceWords { words: u16, pos: usize },
    #[error("bit binary at byte {pos} has {len} bytes and {bits} bits in its last byte")]
    BitCount { len: u32, bits: u8, pos: usize },
    #[error("fun at byte {pos} announces {size} bytes but its fields take {actual}")]
    FunSize {
        size: u32,
        actual: usize,
        pos: usize,
    },
    #[error("trailing bytes after the last term, from byte {0}")]
    Trailing(usize),
    /// Well-formed bytes that are still no term we take: a float that is not finite,
    /// an atom that is not UTF-8, a kind `eetf` refuses.
    #[error("{what} at byte {pos}")]
    Invalid { what: String, pos: usize },
}

impl DecodeError {
    /// The byte the error names, if it names one.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn position(&self) -> Option<usize> {
        use DecodeError::*;
        match *self {
            BadVersion { pos, .. }
            | UnknownTag { pos, .. }
            | CountTooLarge { pos, .. }
            | Unexpected { pos, .. }
            | ReferenceWords { pos, .. }
            | BitCount { pos, .. }
            | FunSize { pos, .. }
            | AtomCacheRef { pos, .. }
            | Invalid { pos, .. } => Some(pos),
            Truncated(pos) | Trailing(pos) => Some(pos),
            Empty | TooDeep(_) | Compressed | Local => None,
        }
    }
}

/// A term no BEAM node would take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The BEAM refuses atoms of more than 255 characters.
    #[error("atom of {0} characters (at most 255)")]
    AtomTooLong(usize),
    /// A reference carries at most 5 words of id.
    #[error("reference with {0} id words (at most 5)")]
    ReferenceTooLong(usize),
    /// A container or binary of more than 4,294,967,295 elements or bytes, or a
    /// message of more than 4,294,967,295 bytes.
    #[error("{0} of {1} elements, more than the format counts")]
    TooLarge(&'static str, usize),
}
