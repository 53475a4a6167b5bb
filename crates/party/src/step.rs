//! Decisions as data: what a rule asks the engine to do. The engine carries out a whole step
//! in one store transaction, and tells subscribers only after it committed.

use backchannel_proto::channel::{ChannelBody, MemberKey};
use backchannel_proto::identity::PartyKey;
use backchannel_proto::message::{ChannelId, Kind};
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use crate::event::{Conversation, Entry, Event};

/// One thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Seal `body` for each party in `to`, over its pairwise session (the engine picks the
    /// routes; a party we have no session with yet gets it once its introduction completes).
    Seal { to: Vec<PartyKey>, channel: ChannelId, kind: Kind, body: Vec<u8> },
    /// Add an entry to a conversation's timeline, and tell subscribers.
    Record { conversation: Conversation, entry: Entry },
    /// Tell subscribers something that is not stored.
    Notify(Event),
    /// Network work to do after the transaction commits (durable: a crash only delays it).
    Schedule(Task),
    /// Store a document's text (texts are kept apart from the records that list them).
    PutText { id: TextId, text: String },
    /// `to` left `channel`: drop what waited for its session there.
    ForgetWaiting { channel: ChannelId, to: PartyKey },
}

/// A rule's effects, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    pub effects: Vec<Effect>,
}

impl Step {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn push(&mut self, effect: Effect) -> &mut Self {
        self.effects.push(effect);
        self
    }

    /// This step's effects, then `other`'s.
    pub fn and(mut self, other: Step) -> Self {
        self.effects.extend(other.effects);
        self
    }

    pub fn record(&mut self, conversation: &Conversation, entry: Entry) -> &mut Self {
        self.push(Effect::Record { conversation: conversation.clone(), entry })
    }

    /// Seals a channel message for members (nothing when `to` is empty).
    pub fn seal(&mut self, to: Vec<MemberKey>, channel: ChannelId, body: &ChannelBody) -> &mut Self {
        if !to.is_empty() {
            self.push(Effect::Seal { to, channel, kind: Kind::Channel, body: body.encode() });
        }
        self
    }

    /// The entries this step records, in order (for tests and for reports).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.effects.iter().filter_map(|e| match e {
            Effect::Record { entry, .. } => Some(entry),
            _ => None,
        })
    }
}

/// Network work found while receiving (which runs in a transaction, offline), done after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// We joined after `to`: make an invitation for it and pass it through the creator.
    Introduce { channel: ChannelId, to: MemberKey },
    /// The creator passed us `from`'s invitation: accept it.
    AcceptIntroduction { channel: ChannelId, from: MemberKey, invitation: String },
}

impl Task {
    /// Its key in the store: one task per channel and member, so a repeat replaces it.
    pub fn key(&self) -> String {
        match self {
            Task::Introduce { channel, to } => {
                format!("intro/{}/{}", hex_encode(&channel.0), hex_encode(&to.0))
            }
            Task::AcceptIntroduction { channel, from, .. } => {
                format!("accept/{}/{}", hex_encode(&channel.0), hex_encode(&from.0))
            }
        }
    }
}

/// Names a stored document text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TextId {
    pub channel: ChannelId,
    pub kind: TextKind,
    /// sha256 of the text.
    pub sha256: [u8; 32],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextKind {
    Paper,
    Proposal,
}

impl TextId {
    /// Its key in the store (as earlier versions wrote it).
    pub fn key(&self) -> String {
        let kind = match self.kind {
            TextKind::Paper => "paper",
            TextKind::Proposal => "proposal",
        };
        format!("{}/{kind}/{}", hex_encode(&self.channel.0), hex_encode(&self.sha256))
    }
}
