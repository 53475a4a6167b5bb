//! What the party keeps (sealed in its store) and what it shows.

use backchannel_proto::delivery::SeqTracker;
use backchannel_proto::identity::{Card, safety_number};
use backchannel_proto::message::{ChannelId, Message};
use backchannel_proto::session::SessionPickle;
use backchannel_wire::{QueueId, QueueSecret, RelayAddress};
use serde::{Deserialize, Serialize};

pub(crate) const IDENTITY: (&str, &str) = ("identity", "self");
/// The public card alone: read on every send, so it must not cost an account unpickle.
pub(crate) const CARD: (&str, &str) = ("card", "self");
pub(crate) const CONTACT: &str = "contact";
pub(crate) const PENDING: &str = "pending";
pub(crate) const ACCEPTED: &str = "accepted";

/// A receive queue of ours on some relay.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Inbox {
    pub relay: RelayAddress,
    pub recv_id: QueueId,
    pub recv_secret: QueueSecret,
}

/// A contact as stored: card, trust, session, inbox and delivery trackers.
#[derive(Serialize, Deserialize)]
pub(crate) struct ContactRecord {
    pub card: Card,
    pub verified: bool,
    pub session: SessionPickle,
    pub inbox: Inbox,
    pub trackers: Vec<(ChannelId, SeqTracker)>,
    pub added_at: u64,
}

impl ContactRecord {
    pub fn tracker(&mut self, channel: ChannelId) -> &mut SeqTracker {
        let i = match self.trackers.iter().position(|(c, _)| *c == channel) {
            Some(i) => i,
            None => {
                self.trackers.push((channel, SeqTracker::starting_at(1)));
                self.trackers.len() - 1
            }
        };
        &mut self.trackers[i].1
    }
}

/// A contact as shown to the user.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ContactView {
    pub name: String,
    pub side: String,
    pub safety_number: String,
    pub verified: bool,
    pub relay: String,
}

impl ContactView {
    pub(crate) fn new(me: &Card, c: &ContactRecord) -> Self {
        Self {
            name: c.card.name.clone(),
            side: c.card.side.clone(),
            safety_number: safety_number(me, &c.card),
            verified: c.verified,
            relay: c.send_relay(),
        }
    }
}

impl ContactRecord {
    fn send_relay(&self) -> String {
        self.inbox.relay.to_string()
    }
}

/// One line of a conversation: a note, or something the client detected.
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
    Event { text: String, at: u64 },
    /// Something arrived that failed checks and was not shown as genuine.
    Rejected { from: String, detail: String, at: u64 },
    /// The session was set up.
    Joined { from: String, at: u64 },
}

impl Entry {
    /// A note as it arrived; `relayed_by` names the shuttle's intermediary that passed it on.
    pub(crate) fn received(
        from: &str,
        msg: &Message,
        text: String,
        relayed_by: Option<(String, bool)>,
    ) -> Self {
        Entry::Note {
            from: from.to_owned(),
            outgoing: false,
            text,
            sent_at: msg.sent_at,
            at: crate::party::now_ms(),
            seq: msg.sender_seq,
            rephrased: relayed_by.as_ref().is_some_and(|(_, r)| *r),
            relayed_by: relayed_by.map(|(hub, _)| hub),
        }
    }
}

/// A timeline entry as shown by `read`: a gap also says whether it is still open.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EntryView {
    #[serde(flatten)]
    pub entry: Entry,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    /// For a gap: the numbers in it that have still not arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub still_missing: Option<Vec<(u64, u64)>>,
}

/// Where one fresh outbound message goes; its blocks are stored beside it (see
/// [`crate::store::Tx::outbox_push`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct OutboxItem {
    /// The contact it is for, so a refusal can be shown in that conversation.
    pub contact: String,
    pub relay: RelayAddress,
    pub send_id: QueueId,
    pub secret: QueueSecret,
    /// Only in items queued before blocks had a column of their own.
    #[serde(default, rename = "blocks", deserialize_with = "blocks_b64::deserialize", skip_serializing)]
    pub legacy_blocks: Vec<Vec<u8>>,
}

impl OutboxItem {
    pub fn new(contact: &str, route: &backchannel_proto::message::Route) -> Self {
        Self {
            contact: contact.to_owned(),
            relay: route.relay.clone(),
            send_id: route.send_id,
            secret: route.send_secret.clone(),
            legacy_blocks: Vec::new(),
        }
    }
}

/// An item in the outbox: its number, where it goes, its blocks.
pub(crate) struct Queued {
    pub n: i64,
    pub item: OutboxItem,
    pub blocks: Vec<Vec<u8>>,
}

/// What happened during receiving, for the user to see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `channel` is the channel's name, `None` for direct talk.
    Note {
        from: String,
        text: String,
        sent_at: u64,
        channel: Option<String>,
        relayed_by: Option<String>,
    },
    /// Something happened in a channel (membership, phase, drafts, proposals).
    Channel {
        channel: String,
        text: String,
    },
    Joined {
        name: String,
        side: String,
        safety_number: String,
    },
    Gap {
        from: String,
        missing: Vec<(u64, u64)>,
    },
    GapClosed {
        from: String,
        seq: u64,
    },
    Rejected {
        from: String,
        detail: String,
    },
    Duplicate {
        from: String,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Note { from, text, channel, relayed_by, .. } => {
                if let Some(c) = channel {
                    write!(f, "[{c}] ")?;
                }
                match relayed_by {
                    Some(hub) => write!(f, "{from} (relayed by {hub}): {text}"),
                    None => write!(f, "{from}: {text}"),
                }
            }
            Event::Channel { channel, text } => write!(f, "[{channel}] {text}"),
            Event::Joined { name, side, safety_number } => {
                write!(f, "new contact {name} ({side}); safety number {safety_number}")
            }
            Event::Gap { from, missing } => {
                write!(f, "gap: notes from {from} missing: {}", format_ranges(missing))
            }
            Event::GapClosed { from, seq } => write!(f, "late note #{seq} from {from} arrived"),
            Event::Rejected { from, detail } => write!(f, "REJECTED from {from}'s queue: {detail}"),
            Event::Duplicate { from } => write!(f, "duplicate from {from} dropped"),
        }
    }
}

/// `#3, #5-#7`: ranges of sequence numbers as shown to people.
pub fn format_ranges(r: &[(u64, u64)]) -> String {
    let parts: Vec<String> =
        r.iter().map(|(a, b)| if a == b { format!("#{a}") } else { format!("#{a}-#{b}") }).collect();
    parts.join(", ")
}

/// Totals of one `sync`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub sent: usize,
    pub still_queued: usize,
    pub events: Vec<Event>,
    /// Relays that could not be reached (what is queued for them stays queued).
    pub unreachable: Vec<String>,
    /// Queues a relay refused to read (e.g. expired after its TTL); the others went on.
    pub problems: Vec<String>,
}

/// One byte string as base64 text (JSON arrays of numbers would triple its size).
pub(crate) mod bytes_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD_NO_PAD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD_NO_PAD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod blocks_b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| STANDARD_NO_PAD.decode(t).map_err(serde::de::Error::custom)).collect()
    }
}
