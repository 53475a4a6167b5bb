//! Why a rule said no: data, never words. A refusal of one of our own commands is the user's
//! to act on (the engine returns it as an error); a refusal while receiving is the peer's (the
//! engine records it as a rejection and goes on). Front ends say each in their own words.

use backchannel_proto::ProtoError;
use backchannel_proto::channel::{Phase, Refused};
use backchannel_redline::ProbeBudget;
use serde::{Deserialize, Serialize};

/// What kind of trouble a refusal is, for front ends that map kinds (HTTP statuses, exit codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhyKind {
    /// The input itself is wrong (a bad number, an id that is not hex).
    Input,
    /// What was named does not exist.
    NotFound,
    /// The state does not allow it now (wrong phase, not the creator, already done).
    Conflict,
}

/// Why a message from a peer could not be taken in, at the layers below the rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum MessageFault {
    /// Altered, forged, or sealed under another key.
    Forged { what: String },
    /// Already taken in: the host (or someone) sent it again.
    Replayed,
    /// Held back so long that its key is gone (not altered: delayed).
    TooLate,
    /// Bytes that do not parse.
    Malformed { what: String },
    /// The peer broke the protocol in a way authentication alone does not catch.
    Misbehaved { what: String },
    /// A kind of message this version does not know.
    UnsupportedKind { kind: u8 },
}

impl From<&ProtoError> for MessageFault {
    fn from(e: &ProtoError) -> Self {
        match e {
            ProtoError::Forged(what) => MessageFault::Forged { what: (*what).to_owned() },
            ProtoError::Replayed => MessageFault::Replayed,
            ProtoError::TooLate => MessageFault::TooLate,
            ProtoError::Malformed { what, source } => {
                MessageFault::Malformed { what: format!("{what}: {source}") }
            }
            other => MessageFault::Misbehaved { what: other.to_string() },
        }
    }
}

/// Why a rule refused. Every variant carries the names a front end needs to say it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Why {
    // --- channel rules (proto) and membership
    /// A rule of the channel state itself.
    Channel {
        refused: Refused,
    },
    ChannelExists {
        name: String,
    },
    NotCreator {
        channel: String,
    },
    NoSuchMember {
        query: String,
        channel: String,
    },
    AmbiguousMember {
        query: String,
        channel: String,
    },
    RemovedFromChannel {
        channel: String,
    },
    NotHub {
        channel: String,
    },
    NotAReceivedNote {
        channel: String,
        entry: usize,
    },
    NoPhaseProposed {
        channel: String,
    },
    /// A sender the channel does not list.
    SenderNotMember {
        name: String,
        channel: String,
    },
    ShuttleSidesApart,
    OnlyHubRelays,
    BadIntroduction,
    /// An introduction to `name` carried someone else's invitation.
    IntroductionNotTheirs {
        name: String,
    },
    /// An introduction to `name` asks us to connect to a relay we do not use yet: it waits
    /// until the user allows that relay.
    IntroductionRelayUnknown {
        name: String,
        relay: String,
    },
    IntroductionNotInShuttle,
    NotInChannel,
    StateNotFromCreator,
    /// A phase moved without every side's consent as this member heard it.
    PhaseWithoutConsent {
        channel: String,
        phase: Phase,
    },
    /// The channel id is held by another creator's channel.
    ChannelIdTaken,
    // --- documents and agreements
    OnlyHubDrafts {
        channel: String,
    },
    NotDraftingPhase {
        channel: String,
        phase: Phase,
    },
    NotASide {
        side: String,
        channel: String,
        sides: Vec<String>,
    },
    AlreadyAVersion {
        title: String,
    },
    NoPaper {
        title: String,
        channel: String,
    },
    NoSuchVersion {
        title: String,
        last: u32,
        wanted: u32,
    },
    AlreadyProposed,
    NotSignatory {
        side: String,
        title: String,
    },
    AlreadyRatified {
        title: String,
    },
    NoProposal {
        query: String,
        channel: String,
    },
    AmbiguousProposal {
        query: String,
    },
    SealDoesNotVerify {
        name: String,
        title: String,
        why: String,
    },
    SealForNonMember,
    SealPassedByNonHub,
    NotPrincipalSeal {
        name: String,
    },
    TooManyEarlySeals,
    TextMissing,
    DocumentSize {
        what: String,
        len: usize,
        max: usize,
    },
    EncodedTooLarge {
        what: String,
        encoded: usize,
        limit: usize,
    },
    BadBody {
        refused: Refused,
    },
    UnexpectedMessage,
    // --- probes
    ProbeNeedsOther,
    NoSessionYet {
        name: String,
    },
    BudgetFixed {
        budget: ProbeBudget,
    },
    PendingBudget {
        probe: String,
        budget: ProbeBudget,
    },
    BudgetMismatch {
        fixed: ProbeBudget,
        asked: ProbeBudget,
    },
    BudgetSpent {
        used: u32,
        limit: u32,
        issue: Option<String>,
        phase: String,
        budget: ProbeBudget,
    },
    NotYourProbeToAccept {
        probe: String,
        peer: String,
    },
    ProbeIs {
        probe: String,
        status: String,
    },
    ProbeInputUsed {
        probe: String,
        status: String,
    },
    ProbeEnded {
        probe: String,
    },
    BadProbeId {
        query: String,
        channel: String,
    },
    NoProbe {
        query: String,
        channel: String,
    },
    AmbiguousProbe {
        query: String,
        channel: String,
    },
    ProbeNotTheirs {
        name: String,
        probe: String,
    },
    ProbeUnknown {
        name: String,
        probe: String,
    },
    ProbeReplayed {
        what: String,
        probe: String,
    },
    ProbesNotAllowed {
        phase: String,
        channel: String,
    },
    ProbeOtherPhase {
        terms_phase: String,
        channel: String,
        phase: String,
    },
    ProbeNotMember {
        channel: String,
    },
    ObserversDoNotProbe {
        channel: String,
    },
    ProbeSameSide {
        side: String,
    },
    ProbeInShuttle {
        channel: String,
    },
    ProbeHolders {
        a: String,
        b: String,
    },
    ProbeCap {
        max: u32,
    },
    ProbeAsker {
        a: String,
        b: String,
    },
    ProbeSide {
        given: String,
        mine: String,
        theirs: String,
    },
    ProbeNeedsValue {
        probe: String,
    },
    ProbeNeedsPackages {
        probe: String,
    },
    NoBudgetAgreed,
    /// We declined a probe put to us (no reason given to the other side).
    ProbeDeclinedByUser,
    /// The probe protocol refused a message (a tampered reply, a malformed disclosure).
    ProbeProtocol {
        what: String,
    },
    /// A probe message out of the probe's order (replayed or misdirected).
    ProbeOutOfOrder {
        what: String,
    },
    /// Input or terms that the probe protocol refused, with its reason.
    ProbeInput {
        why: String,
        max: Option<u64>,
    },
    ProbeTerms {
        why: String,
    },
    ProbePackage {
        why: String,
        given: String,
        issues: Vec<String>,
    },
    // --- below the rules
    Message {
        fault: MessageFault,
    },
    NoteSize {
        len: usize,
        max: usize,
    },
    /// Pieces of `frames` messages that never completed were dropped (a sender cut off, or
    /// someone filling the inbox).
    Incomplete {
        frames: usize,
    },
    /// An answer to our invitation that did not check out.
    InvitationAnswer {
        fault: MessageFault,
    },
    /// An answer to our invitation asking us to write to another relay than the one it named.
    ReplyElsewhere {
        relay: String,
    },
    /// The relay no longer has the queue of `name` (expired or deleted): exchange a new invitation.
    QueueGone {
        name: String,
    },
    /// The invitation from `name` was already used by someone else (its queue is gone).
    InvitationUsed {
        name: String,
    },
    /// `name` asks to be reached through a host this party does not use: not used until the
    /// user allows it.
    RouteNeedsAllow {
        name: String,
        relay: String,
    },
    /// The host refused a route to `name` (its queue is not there): the other routes carry on.
    RouteRefused {
        name: String,
        relay: String,
    },
    /// Dropping that host would leave no route to or from `name`.
    LastRoute {
        name: String,
        relay: String,
    },
    /// No inbox of ours for `name` is on that host.
    NoRouteThere {
        name: String,
        relay: String,
    },
    /// A message too large for the blocks of the route to `name` (its relay's block size).
    TooLargeForRoute {
        name: String,
        len: usize,
        block_size: u32,
    },
}

/// A reason the other side gave, as it sent it: a [`Why`] from a client like ours, or text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeerReason {
    Why(Why),
    Text(String),
}

impl PeerReason {
    /// Reads a reason off the wire.
    pub fn parse(text: &str) -> Self {
        serde_json::from_str(text).map_or_else(|_| PeerReason::Text(text.to_owned()), PeerReason::Why)
    }
}

impl Why {
    /// The reason as it travels to the other side (which reads it with [`PeerReason::parse`]).
    pub fn to_wire(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl From<Refused> for Why {
    fn from(refused: Refused) -> Self {
        Why::Channel { refused }
    }
}

impl Why {
    pub fn kind(&self) -> WhyKind {
        match self {
            Why::NoSuchMember { .. }
            | Why::NoPaper { .. }
            | Why::NoSuchVersion { .. }
            | Why::NoProposal { .. }
            | Why::NoProbe { .. } => WhyKind::NotFound,
            Why::BadProbeId { .. }
            | Why::DocumentSize { .. }
            | Why::EncodedTooLarge { .. }
            | Why::NoteSize { .. }
            | Why::ProbeInput { .. }
            | Why::ProbeTerms { .. }
            | Why::ProbePackage { .. }
            | Why::ProbeSide { .. }
            | Why::AmbiguousMember { .. }
            | Why::AmbiguousProbe { .. }
            | Why::AmbiguousProposal { .. } => WhyKind::Input,
            Why::Channel { refused: Refused::BadName { .. } } => WhyKind::Input,
            _ => WhyKind::Conflict,
        }
    }
}
