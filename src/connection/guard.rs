//! TEMPORARY placeholder (the real bounds checker is being written): accepts 1..=max_terms
//! terms by trusting eetf. Replaced wholesale.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TermLimits {
    pub max_depth: usize,
}
impl Default for TermLimits {
    fn default() -> Self {
        TermLimits { max_depth: 512 }
    }
}
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum GuardError {
    #[error("bad term")]
    Bad,
}
pub(crate) fn check_terms(bytes: &[u8], max_terms: usize, _l: &TermLimits) -> Result<usize, GuardError> {
    let mut r = bytes;
    let mut n = 0;
    while !r.is_empty() {
        eetf::Term::decode(&mut r).map_err(|_| GuardError::Bad)?;
        n += 1;
        if n > max_terms {
            return Err(GuardError::Bad);
        }
    }
    Ok(n)
}
