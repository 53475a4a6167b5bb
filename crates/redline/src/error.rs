//! Errors say whose fault it was: the message in transit (damaged, replayed or altered by
//! someone in between), the other side (it broke the protocol), the terms or our own caller
//! (input out of range, a refused probe). Every error ends the probe: states are consumed.

/// Everything that can abort or refuse a probe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedlineError {
    // --- The message: damaged, cut short, replayed or altered on the way. ---
    /// Bytes that do not parse: truncated, trailing bytes, an unknown tag.
    #[error("malformed probe message: {0}")]
    Malformed(&'static str),
    /// A message format we do not speak.
    #[error("unsupported probe message version {0}")]
    UnsupportedVersion(u8),
    /// More items than any probe may carry; refused before allocating.
    #[error("probe message too large: {items} items (limit {limit})")]
    Oversized { items: u64, limit: u64 },
    /// A message for another step of the protocol (out of order, or a duplicate).
    #[error("expected probe message step {expected}, got step {got}")]
    WrongStep { expected: u8, got: u8 },
    /// A message of another probe: replayed or misdirected.
    #[error("message belongs to another probe (replayed or misdirected)")]
    WrongProbe,
    /// The transcript hash does not match: the message was altered in transit, or the other
    /// side runs the probe under other terms.
    #[error("transcript mismatch: message altered in transit, or the other side used other terms")]
    TranscriptMismatch,
    /// This probe was already answered: the opening message was replayed.
    #[error("this probe was already answered (replayed opening message)")]
    Replayed,

    // --- The other side: well-formed messages that break the protocol. ---
    /// The other side sent something an honest client never sends.
    #[error("the other side misbehaved: {0}")]
    PeerMisbehaved(&'static str),

    // --- Terms and policy: refusals both sides agreed to. ---
    /// Terms that cannot be run (empty option space, range too large, cap out of bounds).
    #[error("invalid probe terms: {0}")]
    InvalidTerms(&'static str),
    /// The probe budget for this issue or phase is spent.
    #[error("probe budget spent: {used} of {limit} probes {scope} already run")]
    BudgetSpent { scope: String, used: u32, limit: u32 },
    /// The terms do not let this side ask (or let only this side ask).
    #[error("the terms do not allow {0} to ask this probe")]
    NotAllowedToAsk(String),

    // --- Our caller: a bug or a mistaken input on this side. ---
    /// A private input the terms refuse (out of range, outside the option space, over the cap).
    #[error("input refused: {0}")]
    InvalidInput(&'static str),
    /// The caller asked for something the protocol forbids.
    #[error("invalid use: {0}")]
    ApiMisuse(&'static str),
}

/// Whose fault an error was, for callers that route errors (show, retry, report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The message in transit: damaged, replayed or altered.
    Transit,
    /// The other side broke the protocol.
    Peer,
    /// The agreed terms or budget refuse the probe.
    Policy,
    /// This side's caller: bad input or misuse.
    Caller,
}

impl RedlineError {
    /// Whose fault it was.
    pub fn fault(&self) -> Fault {
        use RedlineError::*;
        match self {
            Malformed(_)
            | UnsupportedVersion(_)
            | Oversized { .. }
            | WrongStep { .. }
            | WrongProbe
            | TranscriptMismatch
            | Replayed => Fault::Transit,
            PeerMisbehaved(_) => Fault::Peer,
            InvalidTerms(_) | BudgetSpent { .. } | NotAllowedToAsk(_) => Fault::Policy,
            InvalidInput(_) | ApiMisuse(_) => Fault::Caller,
        }
    }
}

pub type Result<T, E = RedlineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_attributed() {
        assert_eq!(RedlineError::TranscriptMismatch.fault(), Fault::Transit);
        assert_eq!(RedlineError::PeerMisbehaved("x").fault(), Fault::Peer);
        assert_eq!(RedlineError::InvalidInput("x").fault(), Fault::Caller);
        let spent = RedlineError::BudgetSpent { scope: "on issue \"a\"".into(), used: 2, limit: 2 };
        assert_eq!(spent.fault(), Fault::Policy);
        assert_eq!(spent.to_string(), "probe budget spent: 2 of 2 probes on issue \"a\" already run");
    }
}
