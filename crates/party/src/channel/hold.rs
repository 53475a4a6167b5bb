//! Messages from senders a channel does not (yet) list: a new member's first words can
//! overtake the creator's state that admits it (they travel over other sessions, maybe other
//! relays). They are kept until the next state explains them, or refused then; bounded, so a
//! stranger cannot fill the store.

use backchannel_proto::identity::Card;
use backchannel_proto::message::{Kind, Message};
use serde::{Deserialize, Serialize};

use crate::lookup::Lookup;

/// Messages kept per channel while waiting for a state that explains them.
pub const MAX_HELD: usize = 64;
/// Bytes kept per channel.
pub const MAX_HELD_BYTES: usize = 4 * 1024 * 1024;
/// Channels we are not (yet) in for which messages may be kept.
pub const MAX_HELD_CHANNELS: usize = 16;

/// One channel's held messages, oldest first.
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HeldMessages(pub Vec<Held>);

/// A message kept until the next state, with whom it came from.
#[derive(Clone, Serialize, Deserialize)]
pub struct Held {
    pub contact: String,
    pub sender: Card,
    kind: u8,
    seq: u64,
    sent_at: u64,
    #[serde(with = "crate::b64")]
    body: Vec<u8>,
}

impl Held {
    pub fn message(&self, channel: backchannel_proto::message::ChannelId) -> Message {
        let kind = if self.kind == 3 { Kind::Channel } else { Kind::Note };
        Message::new(channel, self.seq, self.sent_at, kind, self.body.clone())
    }
}

impl HeldMessages {
    /// Keeps `msg` until the next state; false when the limits are reached (then it is
    /// refused at once). `in_channel`: we hold the channel (else it counts against the few
    /// channels we are not in).
    pub fn hold(
        &mut self,
        in_channel: bool,
        lookup: &dyn Lookup,
        contact: &str,
        sender: &Card,
        msg: &Message,
    ) -> bool {
        let bytes: usize = self.0.iter().map(|h| h.body.len()).sum();
        let new_channel = !in_channel && self.0.is_empty();
        if self.0.len() >= MAX_HELD
            || bytes + msg.body.len() > MAX_HELD_BYTES
            || (new_channel && lookup.held_channels() >= MAX_HELD_CHANNELS)
        {
            return false;
        }
        self.0.push(Held {
            contact: contact.to_owned(),
            sender: sender.clone(),
            kind: if msg.kind == Kind::Channel { 3 } else { 2 },
            seq: msg.sender_seq,
            sent_at: msg.sent_at,
            body: msg.body.clone(),
        });
        true
    }

    pub fn take(&mut self) -> Vec<Held> {
        std::mem::take(&mut self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
