//! Errors say whose fault it was: the peer (or the host in between), the caller, or the input.

use backchannel_wire::DecodeError;

/// Everything that can go wrong in the protocol core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// Bytes that do not parse: damaged in transit, truncated, or not ours at all.
    #[error("malformed {what}: {source}")]
    Malformed { what: &'static str, source: DecodeError },
    /// Authentication failed: altered, injected, or sealed under another key.
    #[error("{0} failed authentication (altered, forged or not meant for us)")]
    Forged(&'static str),
    /// A message whose keys were already used: a replay or a duplicate.
    #[error("replayed or duplicate message")]
    Replayed,
    /// The message's key is gone: it arrived after too many later messages (Olm keeps 40
    /// skipped keys per chain), or it is a replay of one processed long ago.
    #[error("message arrived too late to decrypt (or is an old replay); it stays missing")]
    TooLate,
    /// The peer broke the protocol in a way authentication alone does not catch.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(&'static str),
    /// The invitation's time is up.
    #[error("this invitation expired; ask for a new one")]
    InvitationExpired,
    /// The caller asked for something the protocol forbids (a bug on our side).
    #[error("invalid use: {0}")]
    ApiMisuse(&'static str),
    /// An agreement or its signatures do not check out; the message names what and whom.
    #[error(transparent)]
    Agreement(#[from] crate::agreement::AgreementError),
}

impl ProtoError {
    pub(crate) fn malformed(what: &'static str) -> impl FnOnce(DecodeError) -> Self {
        move |source| Self::Malformed { what, source }
    }
}

pub type Result<T, E = ProtoError> = std::result::Result<T, E>;
