//! Sealing to parties: one frame per party (its session's Olm and post-quantum layers), cut
//! into blocks for its route and queued in the outbox, in the transaction that advanced the
//! session. A party without a session yet (its introduction is under way) gets the message
//! once the session exists.

use backchannel_party::event::Conversation;
use backchannel_party::{Entry, Why};
use backchannel_proto::identity::PartyKey;
use backchannel_proto::message::{ChannelId, Kind};
use backchannel_wire::hex_encode;
use serde::{Deserialize, Serialize};

use super::Batch;
use super::outbox::OutboxItem;
use crate::error::Result;
use crate::store::{Record, Tx};

/// Messages for one party that wait for its session, oldest first.
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct WaitingRecord(pub Vec<Waiting>);

impl Record for WaitingRecord {
    const KIND: &'static str = "waiting";
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Waiting {
    pub channel: ChannelId,
    pub kind: u8,
    #[serde(with = "crate::b64")]
    pub body: Vec<u8>,
}

fn kind_byte(kind: Kind) -> u8 {
    if kind == Kind::Channel { 3 } else { 2 }
}

fn kind_of(byte: u8) -> Kind {
    if byte == 3 { Kind::Channel } else { Kind::Note }
}

/// Parks a message for a party we have no session with yet.
pub(crate) fn park(tx: &Tx<'_>, party: &PartyKey, channel: ChannelId, kind: Kind, body: &[u8]) -> Result<()> {
    let key = hex_encode(&party.0);
    let mut waiting = tx.load::<WaitingRecord>(&key)?.unwrap_or_default();
    waiting.0.push(Waiting { channel, kind: kind_byte(kind), body: body.to_vec() });
    tx.save(&key, &waiting)
}

/// `to` left `channel`: what waited for it there is dropped.
pub(crate) fn forget_waiting(tx: &Tx<'_>, to: &PartyKey, channel: ChannelId) -> Result<()> {
    let key = hex_encode(&to.0);
    let Some(mut waiting) = tx.load::<WaitingRecord>(&key)? else { return Ok(()) };
    waiting.0.retain(|w| w.channel != channel);
    match waiting.0.is_empty() {
        true => tx.remove::<WaitingRecord>(&key),
        false => tx.save(&key, &waiting),
    }
}

impl Batch<'_, '_> {
    /// Seals `body` for each party, or parks it for those without a session yet.
    pub fn seal_to(&mut self, to: &[PartyKey], channel: ChannelId, kind: Kind, body: &[u8]) -> Result<()> {
        for party in to {
            match self.contacts.id_of(party).map(str::to_owned) {
                Some(id) => {
                    self.seal_for(&id, channel, kind, body)?;
                }
                None => park(self.tx, party, channel, kind, body)?,
            }
        }
        Ok(())
    }

    /// Seals one message for one contact and queues its blocks; returns its number in its
    /// channel, or `None` when it cannot fit the contact's route (said in the conversation:
    /// one peer's small blocks must not stop a fan-out or a receive).
    pub fn seal_for(&mut self, id: &str, channel: ChannelId, kind: Kind, body: &[u8]) -> Result<Option<u64>> {
        let now = self.now_ms;
        let session = self.contacts.session(self.tx, id)?;
        let route = session.send_route.clone();
        if !route.fits(body.len()) {
            let name = session.peer.name.clone();
            let why =
                Why::TooLargeForRoute { name: name.clone(), len: body.len(), block_size: route.block_size };
            let conversation = Conversation::contact(id, &name);
            self.tx.append_timeline(&conversation.key, &Entry::rejected(&name, why.clone(), now))?;
            self.events.push(backchannel_party::Event::Entry {
                conversation,
                entry: Entry::rejected(&name, why, now),
            });
            return Ok(None);
        }
        let frame = session.seal_frame(channel, kind, body.to_vec(), now)?;
        let seq = frame.message.sender_seq;
        let (_, blocks) = route.seal_blocks(&frame.bytes)?;
        self.touch_session(id);
        // The store keeps the frame (small); the blocks just cut wait in memory for delivery.
        let n = self.tx.outbox_push(&OutboxItem::frame(id), &[frame.bytes])?;
        self.cut.push((n, blocks));
        Ok(Some(seq))
    }

    /// A session with `party` now exists: what waited for it is sealed, in order.
    pub fn release_waiting(&mut self, party: &PartyKey) -> Result<()> {
        let key = hex_encode(&party.0);
        let Some(waiting) = self.tx.load::<WaitingRecord>(&key)? else { return Ok(()) };
        self.tx.remove::<WaitingRecord>(&key)?;
        let Some(id) = self.contacts.id_of(party).map(str::to_owned) else { return Ok(()) };
        for w in waiting.0 {
            self.seal_for(&id, w.channel, kind_of(w.kind), &w.body)?;
        }
        Ok(())
    }
}
