//! What can go wrong for the user of an engine. Each error has a [`ErrorKind`] that every
//! front end maps from (an exit code, an HTTP status, a sentence); the words are the front
//! end's. A peer's fault never arrives here: the engine records it as a rejection and goes on.
//!
//! Errors travel between processes (a command given to a running engine over the local
//! socket), so they are data: library errors below the engine are kept as their message.

use backchannel_party::Why;
use backchannel_party::why::WhyKind;
use backchannel_wire::ApiError;
use serde::{Deserialize, Serialize};

/// What kind of trouble, for front ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The user's input is wrong: fix it and try again.
    Input,
    /// What was named does not exist here.
    NotFound,
    /// The state does not allow it now.
    Conflict,
    /// Another engine holds this home (or it is not unlocked).
    Locked,
    /// A relay could not be reached or did not prove its identity; nothing was lost.
    RelayDown,
    /// A relay refused the request.
    RelayRefused,
    /// The local store or disk failed.
    Storage,
    /// A bug on our side.
    Bug,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientError {
    #[error("no party in {home}")]
    NotInitialized { home: String },
    #[error("a party already exists in {home}")]
    AlreadyInitialized { home: String },
    #[error("wrong passphrase for the store in {home}")]
    WrongPassphrase { home: String },
    #[error("another engine is running on {home}")]
    Locked { home: String },
    #[error("invalid {what}: {why}")]
    InvalidInput { what: String, why: String },
    #[error("no contact named {name:?}")]
    UnknownContact { name: String },
    #[error("{name:?} names more than one contact")]
    AmbiguousContact { name: String },
    #[error("no contact or channel named {name:?}")]
    UnknownName { name: String },
    #[error("no channel named {name:?}")]
    UnknownChannel { name: String },
    #[error("{name:?} names more than one channel: {candidates:?}")]
    AmbiguousChannel { name: String, candidates: Vec<String> },
    /// A rule said no to the user's command.
    #[error("refused: {why:?}")]
    Refused { why: Why },
    #[error("invitation: {why}")]
    Invitation { why: String },
    #[error("this invitation was already accepted")]
    InvitationReused,
    #[error("this invitation was already used by someone else")]
    InvitationUsed,
    #[error("you cannot accept your own invitation")]
    OwnInvitation,
    #[error("relay {relay} unreachable: {why}")]
    RelayUnreachable { relay: String, why: String },
    #[error("relay {relay} presented a different certificate than its address pins")]
    RelayNotPinned { relay: String },
    #[error("relay {relay} refused: {error}")]
    RelayRefused {
        relay: String,
        #[serde(with = "api_error")]
        error: ApiError,
    },
    #[error("relay {relay} answered something unreadable: {why}")]
    RelayProtocol { relay: String, why: String },
    #[error("the disk holding {path} is full")]
    DiskFull { path: String },
    #[error("local store error in {path}: {why}")]
    Store { path: String, why: String },
    #[error("protocol error: {why}")]
    Proto { why: String },
    #[error("agreement: {why}")]
    Agreement { why: String },
    #[error("no outbox item {n}")]
    NoOutboxItem { n: i64 },
    #[error("the local engine socket: {why}")]
    Local { why: String },
}

impl ClientError {
    pub fn kind(&self) -> ErrorKind {
        use ClientError as E;
        match self {
            E::InvalidInput { .. } | E::Invitation { .. } | E::OwnInvitation | E::AmbiguousContact { .. } => {
                ErrorKind::Input
            }
            E::AmbiguousChannel { .. } => ErrorKind::Input,
            E::NotInitialized { .. }
            | E::UnknownContact { .. }
            | E::UnknownName { .. }
            | E::UnknownChannel { .. }
            | E::NoOutboxItem { .. } => ErrorKind::NotFound,
            E::AlreadyInitialized { .. } | E::InvitationReused | E::InvitationUsed | E::Agreement { .. } => {
                ErrorKind::Conflict
            }
            E::Refused { why } => match why.kind() {
                WhyKind::Input => ErrorKind::Input,
                WhyKind::NotFound => ErrorKind::NotFound,
                WhyKind::Conflict => ErrorKind::Conflict,
            },
            E::WrongPassphrase { .. } | E::Locked { .. } => ErrorKind::Locked,
            E::RelayUnreachable { .. } | E::RelayNotPinned { .. } => ErrorKind::RelayDown,
            E::RelayRefused { error: ApiError::Unavailable(_), .. } => ErrorKind::RelayDown,
            E::RelayRefused { .. } | E::RelayProtocol { .. } => ErrorKind::RelayRefused,
            E::DiskFull { .. } | E::Store { .. } => ErrorKind::Storage,
            E::Proto { .. } | E::Local { .. } => ErrorKind::Bug,
        }
    }

    /// A relay that is down, unpinned or full: what was queued waits, nothing is lost.
    pub fn relay_down(&self) -> bool {
        self.kind() == ErrorKind::RelayDown
    }

    /// The store failed: the transaction must end, nothing may be acknowledged.
    pub fn is_storage(&self) -> bool {
        self.kind() == ErrorKind::Storage
    }
}

impl From<Why> for ClientError {
    fn from(why: Why) -> Self {
        ClientError::Refused { why }
    }
}

impl From<backchannel_proto::ProtoError> for ClientError {
    fn from(e: backchannel_proto::ProtoError) -> Self {
        match e {
            backchannel_proto::ProtoError::Agreement(a) => ClientError::Agreement { why: a.to_string() },
            e @ backchannel_proto::ProtoError::InvitationExpired => {
                ClientError::Invitation { why: e.to_string() }
            }
            other => ClientError::Proto { why: other.to_string() },
        }
    }
}

impl From<backchannel_proto::agreement::AgreementError> for ClientError {
    fn from(e: backchannel_proto::agreement::AgreementError) -> Self {
        ClientError::Agreement { why: e.to_string() }
    }
}

impl From<backchannel_proto::invitation::InvitationError> for ClientError {
    fn from(e: backchannel_proto::invitation::InvitationError) -> Self {
        ClientError::Invitation { why: e.to_string() }
    }
}

impl From<backchannel_proto::channel::Refused> for ClientError {
    fn from(r: backchannel_proto::channel::Refused) -> Self {
        ClientError::Refused { why: Why::from(r) }
    }
}

/// An [`ApiError`] as the relay's own JSON error body.
mod api_error {
    use backchannel_wire::{ApiError, ApiErrorBody};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(e: &ApiError, s: S) -> Result<S::Ok, S::Error> {
        e.body().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ApiError, D::Error> {
        Ok(ApiError::from_body(&ApiErrorBody::deserialize(d)?))
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
