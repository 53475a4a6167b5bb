//! What can go wrong for a party, each with what to do about it.

use backchannel_proto::ProtoError;
use backchannel_proto::invitation::InvitationError;
use backchannel_wire::ApiError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("no party here ({0}); run `backchannel init --name NAME --side SIDE` first")]
    NotInitialized(String),
    #[error("a party already exists in {0}; use another BACKCHANNEL_HOME for a second one")]
    AlreadyInitialized(String),
    #[error("wrong passphrase for the store in {0}")]
    WrongPassphrase(String),
    #[error("invalid {what}: {why}")]
    InvalidInput { what: &'static str, why: String },
    #[error("no contact named {0:?}; `backchannel contacts` lists them")]
    UnknownContact(String),
    #[error("{0:?} names more than one contact; use NAME@SIDE")]
    AmbiguousContact(String),
    #[error(
        "no contact or channel named {0:?}; `backchannel contacts` and `backchannel channel list` list them"
    )]
    UnknownName(String),
    #[error("no channel named {0:?}; `backchannel channel list` lists them")]
    UnknownChannel(String),
    /// A channel rule said no (not a member, wrong phase, not the creator...).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Invitation(#[from] InvitationError),
    #[error("this invitation was already accepted; ask for a new one")]
    InvitationReused,
    #[error("you cannot accept your own invitation")]
    OwnInvitation,
    #[error("relay {relay} unreachable: {why}. Nothing is lost; try again later")]
    RelayUnreachable { relay: String, why: String },
    #[error("relay {relay} presented a different certificate than its address pins; refusing to talk to it")]
    RelayNotPinned { relay: String },
    #[error("relay {relay} refused: {error}")]
    RelayRefused { relay: String, error: ApiError },
    #[error("relay {relay} answered something unreadable: {why}")]
    RelayProtocol { relay: String, why: String },
    #[error("the disk holding {0} is full; free some space and retry (nothing was changed)")]
    DiskFull(String),
    #[error("local store error in {path}: {why}")]
    Store { path: String, why: String },
    #[error("protocol error: {0}")]
    Proto(#[from] ProtoError),
    #[error(transparent)]
    Agreement(#[from] backchannel_proto::agreement::AgreementError),
}

impl From<backchannel_proto::channel::Refused> for ClientError {
    fn from(r: backchannel_proto::channel::Refused) -> Self {
        ClientError::Refused(r.0)
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
