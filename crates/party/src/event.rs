//! What the user sees happen: timeline entries (stored) and events (told to subscribers).
//! Both are data; front ends put them in words, and escape whatever a peer wrote.

use backchannel_proto::channel::{ChannelState, Mode, Phase, Role};
use backchannel_proto::message::ChannelId;
use backchannel_redline::{ProbeResult, ProbeTerms};
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use crate::why::{PeerReason, Why};

/// Which conversation something belongs to: a contact's direct thread, or a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub kind: ConversationKind,
    /// The timeline it is stored in (stable; names can repeat).
    pub key: String,
    /// The contact's or channel's name, as shown.
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    Contact,
    Channel,
}

impl Conversation {
    pub fn contact(id: &str, name: &str) -> Self {
        Self { kind: ConversationKind::Contact, key: id.to_owned(), name: name.to_owned() }
    }

    pub fn channel(state: &ChannelState) -> Self {
        Self { kind: ConversationKind::Channel, key: channel_key(&state.id), name: state.name.clone() }
    }
}

/// The timeline key of a channel.
pub fn channel_key(id: &ChannelId) -> String {
    format!("ch/{}", hex_encode(&id.0))
}

/// One line of a conversation: a note, or something the party detected or did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Note {
        from: String,
        outgoing: bool,
        text: String,
        /// Sender's clock, ms since the epoch.
        sent_at: u64,
        /// Our clock when it arrived (or was queued), ms since the epoch.
        at: u64,
        seq: u64,
        /// In a shuttle channel: the intermediary that passed this on (its words, not `from`'s).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        relayed_by: Option<String>,
        /// The intermediary says it reworded the note.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        rephrased: bool,
    },
    /// Notes from `from` numbered `first..=last` have not arrived (dropped or delayed).
    Gap {
        from: String,
        first: u64,
        last: u64,
        at: u64,
        /// Whose numbering the gap is in: the contact and the channel (absent: direct talk).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<(String, ChannelId)>,
    },
    /// Something happened in a channel: a member joined, the phase moved, a draft arrived.
    Channel { what: ChannelEvent, at: u64 },
    /// Something arrived that failed checks and was not shown as genuine.
    Rejected {
        from: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<Why>,
        /// Written by an earlier version: the reason in its words.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        at: u64,
    },
    /// The session was set up.
    Joined {
        from: String,
        at: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        side: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        safety_number: Option<String>,
    },
    /// A channel event written by an earlier version, in its words.
    #[serde(rename = "event")]
    Legacy { text: String, at: u64 },
}

impl Entry {
    pub fn rejected(from: &str, why: Why, at: u64) -> Self {
        Entry::Rejected { from: from.to_owned(), why: Some(why), detail: None, at }
    }

    pub fn channel(what: ChannelEvent, at: u64) -> Self {
        Entry::Channel { what, at }
    }

    /// Our clock when it was recorded.
    pub fn at(&self) -> u64 {
        match self {
            Entry::Note { at, .. }
            | Entry::Gap { at, .. }
            | Entry::Channel { at, .. }
            | Entry::Rejected { at, .. }
            | Entry::Joined { at, .. }
            | Entry::Legacy { at, .. } => *at,
        }
    }
}

/// What happened in a channel. `None` for a name means it was us.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ChannelEvent {
    Created {
        mode: Mode,
    },
    AddedYou {
        by: String,
        members: Vec<String>,
    },
    MemberJoined {
        name: String,
        side: String,
        role: Role,
    },
    MemberRemoved {
        name: String,
        side: String,
    },
    RemovedYou,
    Introducing {
        name: String,
        side: String,
    },
    Connected {
        name: String,
        side: String,
        safety_number: String,
    },
    Consented {
        name: Option<String>,
        side: String,
        phase: Phase,
    },
    PhaseMoved {
        phase: Phase,
        every_side_consented: bool,
    },
    /// We passed a side's note on (shuttle).
    Relayed {
        from: String,
        entry: usize,
        to: Vec<String>,
        rephrased: bool,
    },
    PaperPut {
        title: String,
        version: u32,
        bytes: usize,
        yours: bool,
    },
    Proposed {
        by: Option<String>,
        title: String,
        id: String,
        signatories: Vec<String>,
    },
    Ratified {
        name: Option<String>,
        side: String,
        title: String,
    },
    RatifiedByAll {
        title: String,
    },
    /// A ratification of a proposal that has not arrived yet: it counts once it does.
    EarlySeal {
        name: String,
        side: String,
        proposal: String,
    },
    /// A seal passed on by the intermediary under a key we know only through it (not counted).
    SealOnlyThroughHub {
        name: String,
        side: String,
        title: String,
    },
    /// A member holds another state than ours under the same version: the creator published
    /// two different states (to different members).
    StateForked {
        name: String,
        side: String,
        version: u64,
    },
    /// The channel's state differs from what a member holds (it says which version).
    StateDiverges {
        name: String,
        theirs: u64,
        ours: u64,
    },
    Probe {
        probe: String,
        what: ProbeEvent,
    },
}

/// What happened to a probe.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "probe_event", rename_all = "snake_case")]
pub enum ProbeEvent {
    Proposed {
        by_you: bool,
        peer: String,
        peer_side: String,
        terms: ProbeTerms,
    },
    /// A proposal refused on arrival (and declined back at once).
    AutoDeclined {
        peer: String,
        terms: ProbeTerms,
        why: Why,
    },
    RepeatedIgnored {
        peer: String,
    },
    Accepted {
        by_you: bool,
        peer: String,
    },
    Declined {
        by_you: bool,
        peer: String,
        reason: Option<PeerReason>,
    },
    QuerySent {
        peer: String,
    },
    QueryArrived {
        peer: String,
    },
    ReplySent {
        peer: String,
    },
    Done {
        terms: ProbeTerms,
        result: ProbeResult,
    },
    Aborted {
        reason: AbortReason,
    },
    /// The other side aborted a probe that had ended here.
    PeerAborted {
        peer: String,
        reason: PeerReason,
    },
}

/// Why a probe ended before its result.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum AbortReason {
    /// We stopped it: a rule of ours, or the probe protocol refusing a message.
    Ours { why: Why },
    /// The other side ended it.
    Peer { name: String, reason: PeerReason },
    /// As an earlier version stored it.
    Legacy { text: String },
}

/// What subscribers of an engine are told.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "most events are entries, each made once and moved to its subscribers: a box would only add an allocation"
)]
pub enum Event {
    /// An entry was added to a conversation (and to its timeline).
    Entry { conversation: Conversation, entry: Entry },
    /// A copy of something already taken in was dropped.
    Duplicate { conversation: Conversation },
    /// A note that had left a gap arrived late.
    GapClosed { conversation: Conversation, from: String, seq: u64 },
}
