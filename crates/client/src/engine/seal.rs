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

use backchannel_proto::block::frame_id_of;
use backchannel_proto::message::Route;
use backchannel_wire::QueueId;

use super::Batch;
use super::delivery::SealedNote;
use super::item::OutboxItem;
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
    match kind {
        Kind::Channel => 3,
        Kind::Control => 4,
        _ => 2,
    }
}

fn kind_of(byte: u8) -> Kind {
    match byte {
        3 => Kind::Channel,
        4 => Kind::Control,
        _ => Kind::Note,
    }
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
    /// Seals `body` for each party, or parks it for those without a session yet. Returns the
    /// notes sealed, for their delivery to be followed once their timeline entry exists.
    pub fn seal_to(
        &mut self,
        to: &[PartyKey],
        channel: ChannelId,
        kind: Kind,
        body: &[u8],
    ) -> Result<Vec<SealedNote>> {
        let mut notes = Vec::new();
        for party in to {
            match self.contacts.id_of(party).map(str::to_owned) {
                Some(id) => notes.extend(self.seal_for(&id, channel, kind, body)?.and_then(|s| s.note)),
                None => park(self.tx, party, channel, kind, body)?,
            }
        }
        Ok(notes)
    }

    /// Seals one message for one contact and queues it for every route; returns its number
    /// in its channel (and, for a note, what its delivery needs), or `None` when it cannot fit
    /// the contact's routes (said in the conversation: one peer's small blocks must not stop
    /// a fan-out or a receive).
    pub fn seal_for(
        &mut self,
        id: &str,
        channel: ChannelId,
        kind: Kind,
        body: &[u8],
    ) -> Result<Option<Sealed1>> {
        self.seal_shaped(id, channel, kind, body, Shape::all())
    }

    /// [`Batch::seal_for`], over the routes `shape` says.
    pub fn seal_shaped(
        &mut self,
        id: &str,
        channel: ChannelId,
        kind: Kind,
        body: &[u8],
        shape: Shape,
    ) -> Result<Option<Sealed1>> {
        let now = self.now_ms;
        let line = self.line(channel)?;
        let contact =
            self.contacts.get(id).ok_or_else(|| self.tx.damaged(format!("contact {id} vanished")))?;
        let routes: Vec<Route> = contact
            .routes
            .iter()
            .filter(|r| r.usable() && shape.only.is_none_or(|only| only == r.route.send_id))
            .map(|r| r.route.clone())
            .collect();
        let receipts = contact.lines.control;
        let name = contact.card.name.clone();
        if let Some(small) = routes.iter().find(|r| !r.fits(body.len())) {
            let why =
                Why::TooLargeForRoute { name: name.clone(), len: body.len(), block_size: small.block_size };
            let conversation = Conversation::contact(id, &name);
            self.tx.append_timeline(&conversation.key, &Entry::rejected(&name, why.clone(), now))?;
            self.events.push(backchannel_party::Event::Entry {
                conversation,
                entry: Entry::rejected(&name, why, now),
            });
            return Ok(None);
        }
        let session = self.contacts.session(self.tx, id)?;
        let frame = session.seal_frame(channel, kind, body.to_vec(), now)?;
        let seq = frame.message.sender_seq;
        self.touch_session(id);
        let mut item = OutboxItem::frame(id);
        item.flash = line.flash;
        (item.only, item.ephemeral, item.any_route) = (shape.only, shape.ephemeral, shape.any_route);
        if kind == Kind::Note && receipts {
            item.confirm_ms = line.keep_for_receipt;
        }
        let frame_id = frame_id_of(&frame.bytes);
        // The store keeps the frame (small); the blocks just cut wait in memory for delivery.
        let cut: Vec<(QueueId, Vec<Vec<u8>>)> =
            routes.iter().map(|r| Ok((r.send_id, r.seal_blocks(&frame.bytes)?.1))).collect::<Result<_>>()?;
        let n = self.tx.outbox_push(&item, &[frame.bytes])?;
        self.cut.extend(cut.into_iter().map(|(route, blocks)| ((n, route), blocks)));
        let note = (kind == Kind::Note).then(|| SealedNote {
            contact: id.to_owned(),
            frame: frame_id,
            outbox: n,
            receipts,
            bound_ms: line.bound_ms,
        });
        Ok(Some(Sealed1 { seq, note }))
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

/// Which routes a message goes over.
#[derive(Clone, Copy, Default)]
pub(crate) struct Shape {
    /// This route only (a heartbeat or path test tests one route).
    pub only: Option<QueueId>,
    /// Tried once, then dropped.
    pub ephemeral: bool,
    /// Done once one route stored it.
    pub any_route: bool,
}

impl Shape {
    /// Every usable route (notes, channel business, routes announcements).
    pub fn all() -> Self {
        Self::default()
    }

    /// Any one route (receipts, echoes).
    pub fn any() -> Self {
        Self { any_route: true, ..Self::default() }
    }

    /// One route, once (heartbeats, path tests).
    pub fn only(route: QueueId) -> Self {
        Self { only: Some(route), ephemeral: true, any_route: true }
    }
}

/// One message sealed for one contact.
pub(crate) struct Sealed1 {
    pub seq: u64,
    /// For a note: what following its delivery needs.
    pub note: Option<SealedNote>,
}
