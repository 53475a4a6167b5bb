//! Receiving: blocks are opened, reassembled into frames, and each whole frame is processed
//! inside one transaction for the burst (session advanced, timeline appended, frame marked
//! seen). Only then are its blocks acknowledged to the relay, so a crash at any point loses
//! nothing and shows nothing twice.
//!
//! Each frame runs on its own inside the transaction: whatever goes wrong with one (a peer's
//! message the rules cannot take, a reply that cannot be sealed) becomes a rejection in the
//! conversation and the frame is acknowledged; only a storage failure ends the burst. So no
//! peer can make `sync` fail for good. Pieces of frames that never complete are bounded per
//! inbox, by count and by age, then acknowledged and reported.

use std::collections::{BTreeSet, HashMap};

use backchannel_party::channel::{HeldMessages, Incoming};
use backchannel_party::event::Conversation;
use backchannel_party::why::MessageFault;
use backchannel_party::{Entry, Event, Why, conversation};
use backchannel_proto::block::{FrameId, Reassembler, open_block};
use backchannel_proto::delivery::Arrival;
use backchannel_proto::identity::safety_number;
use backchannel_proto::invitation::PendingInvitation;
use backchannel_proto::message::{ChannelId, Kind, Message};
use backchannel_proto::session;
use backchannel_wire::Delivered;
use serde::{Deserialize, Serialize};

use super::invite::{AcceptedInvite, PendingRecord};
use super::ops::{channel_by_id, record_id};
use super::routes::InboxRef;
use super::routes::OutRoute;
use super::{Batch, ContactRecord, Inbox};
use crate::error::Result;
use crate::store::Record;

/// Most frames one inbox may have in pieces at once; beyond it the oldest are dropped.
pub(crate) const MAX_PARTIAL_FRAMES: usize = 16;
/// How long a frame may stay in pieces before its pieces are dropped (a sender's request
/// stores all of a frame's blocks at once; only very large texts span requests).
pub(crate) const PARTIAL_TTL_MS: u64 = 60 * 60 * 1000;
/// Most frames kept waiting on an invitation's queue for the handshake they overtook.
const MAX_WAITING_FOR_HELLO: usize = 16;

/// Frames in progress, per inbox, with the relay seqs of their blocks.
#[derive(Default)]
pub(crate) struct Receiver {
    partial: HashMap<String, Partial>,
}

#[derive(Default)]
struct Partial {
    reassembler: Reassembler,
    seqs: HashMap<FrameId, BTreeSet<u64>>,
    /// Whole frames kept back (unacknowledged) until a handshake makes their session.
    waiting_for_hello: usize,
}

/// When each incomplete frame of an inbox was first seen (by frame id), so their age survives
/// restarts and re-fetches.
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct PartialRecord(Vec<(String, u64)>);

impl Record for PartialRecord {
    const KIND: &'static str = "partial";
}

/// What a burst leaves to do: acknowledge these relay seqs.
#[derive(Default)]
pub(crate) struct Received {
    pub acks: Vec<u64>,
}

impl Batch<'_, '_> {
    /// Takes delivered blocks of one inbox and processes every frame they complete.
    pub fn receive_blocks(
        &mut self,
        rx: &mut Receiver,
        inbox: &InboxRef,
        items: Vec<Delivered>,
    ) -> Result<Received> {
        let mut out = Received::default();
        for item in items {
            self.receive_one(rx, inbox, item, &mut out)?;
        }
        self.expire_partial(rx, inbox, &mut out)?;
        self.send_receipts()?;
        Ok(out)
    }

    fn label(&self, id: &str) -> String {
        self.contacts.get(id).map_or_else(|| "an invitation".to_owned(), |c| c.card.name.clone())
    }

    /// A rejection on an inbox: in its contact's conversation.
    pub fn reject(&mut self, id: &str, why: Why) -> Result<()> {
        let from = self.label(id);
        let conversation = Conversation::contact(id, &from);
        let entry = Entry::rejected(&from, why, self.now_ms);
        self.tx.append_timeline(&conversation.key, &entry)?;
        self.events.push(Event::Entry { conversation, entry });
        Ok(())
    }

    fn receive_one(
        &mut self,
        rx: &mut Receiver,
        inbox: &InboxRef,
        item: Delivered,
        out: &mut Received,
    ) -> Result<()> {
        let fragment = match open_block(&item.block, &inbox.key) {
            Ok(f) => f,
            Err(e) => {
                out.acks.push(item.seq);
                return self.reject(&inbox.id, Why::Message { fault: MessageFault::from(&e) });
            }
        };
        if let Some(first) = self.tx.seen_at(&inbox.id, &fragment.frame_id)? {
            out.acks.push(item.seq);
            self.heard_on(inbox);
            self.reconfirm(&inbox.id, &fragment.frame_id, first)?;
            // Not told: with several hosts every frame comes once per route, and relays
            // deliver at least once; a copy of a frame taken in is expected, not news.
            return Ok(());
        }
        let partial = rx.partial.entry(inbox.queue()).or_default();
        partial.seqs.entry(fragment.frame_id).or_default().insert(item.seq);
        let whole = match partial.reassembler.push(fragment) {
            Ok(w) => w,
            Err(e) => {
                out.acks.push(item.seq);
                return self.reject(&inbox.id, Why::Message { fault: MessageFault::from(&e) });
            }
        };
        let Some((frame_id, frame)) = whole else { return Ok(()) };
        let frame_seqs = partial.seqs.remove(&frame_id).unwrap_or_default();
        self.forget_partial(&inbox.queue(), &frame_id)?;
        if self.waits_for_handshake(&inbox.id, &frame)? {
            if partial.waiting_for_hello < MAX_WAITING_FOR_HELLO {
                partial.waiting_for_hello += 1;
                return Ok(());
            }
            out.acks.extend(frame_seqs);
            return self.reject(
                &inbox.id,
                Why::Message {
                    fault: MessageFault::Misbehaved { what: "messages before the handshake".into() },
                },
            );
        }
        out.acks.extend(frame_seqs);
        if !self.tx.mark_seen(&inbox.id, &frame_id, self.now_ms)? {
            let conversation = Conversation::contact(&inbox.id, &self.label(&inbox.id));
            self.events.push(Event::Duplicate { conversation }); // another process took it
            return Ok(());
        }
        let id = inbox.id.clone();
        match self.isolated(|b| b.process_frame(&id, inbox, &frame_id, &frame)) {
            Ok(()) => Ok(()),
            Err(e) if e.is_storage() => Err(e),
            Err(e) => self
                .reject(&inbox.id, Why::Message { fault: MessageFault::Misbehaved { what: e.to_string() } }),
        }
    }

    /// A frame that overtook the handshake on an invitation's queue (the host reordered them)
    /// stays on the relay, unacknowledged, until the handshake has made the session.
    fn waits_for_handshake(&self, id: &str, frame: &[u8]) -> Result<bool> {
        Ok(!session::is_handshake(frame) && self.tx.load::<PendingRecord>(id)?.is_some())
    }

    fn forget_partial(&mut self, id: &str, frame: &FrameId) -> Result<()> {
        let Some(mut record) = self.tx.load::<PartialRecord>(id)? else { return Ok(()) };
        let key = backchannel_wire::hex_encode(frame);
        record.0.retain(|(f, _)| *f != key);
        self.tx.save(id, &record)
    }

    /// Frames still in pieces after the burst: remembered from when they were first seen;
    /// beyond the bounds, their pieces are acknowledged (so they leave the relay) and the
    /// conversation says a message arrived incomplete.
    fn expire_partial(&mut self, rx: &mut Receiver, inbox: &InboxRef, out: &mut Received) -> Result<()> {
        let Some(partial) = rx.partial.get_mut(&inbox.queue()) else { return Ok(()) };
        if partial.seqs.is_empty() {
            return Ok(());
        }
        let mut record = self.tx.load::<PartialRecord>(&inbox.queue())?.unwrap_or_default();
        let now = self.now_ms;
        let mut open: Vec<(String, u64)> = partial
            .seqs
            .keys()
            .map(|f| {
                let key = backchannel_wire::hex_encode(f);
                let seen = record.0.iter().find(|(k, _)| *k == key).map_or(now, |(_, at)| *at);
                (key, seen)
            })
            .collect();
        open.sort_by_key(|(_, at)| *at);
        let excess = open.len().saturating_sub(MAX_PARTIAL_FRAMES);
        let stale: Vec<String> = open
            .iter()
            .enumerate()
            .filter(|(i, (_, at))| *i < excess || now.saturating_sub(*at) > PARTIAL_TTL_MS)
            .map(|(_, (k, _))| k.clone())
            .collect();
        let mut dropped = 0;
        partial.seqs.retain(|frame, seqs| {
            let drop = stale.contains(&backchannel_wire::hex_encode(frame));
            if drop {
                out.acks.extend(seqs.iter().copied());
                partial.reassembler.forget(frame);
                dropped += 1;
            }
            !drop
        });
        record.0 = open.into_iter().filter(|(k, _)| !stale.contains(k)).collect();
        self.tx.save(&inbox.queue(), &record)?;
        if dropped > 0 {
            self.reject(&inbox.id, Why::Incomplete { frames: dropped })?;
        }
        Ok(())
    }

    /// One whole frame.
    fn process_frame(&mut self, id: &str, inbox: &InboxRef, frame_id: &FrameId, frame: &[u8]) -> Result<()> {
        if self.contacts.get(id).is_some() {
            return self.contact_frame(id, inbox, frame_id, frame);
        }
        if let Some(pending) = self.tx.load::<PendingRecord>(id)? {
            return self.answer_invitation(id, &pending.0, frame);
        }
        Ok(())
    }

    /// A frame from `inbox`'s contact came in on it: the route is alive.
    fn heard_on(&mut self, inbox: &InboxRef) {
        let now = self.now_ms;
        if let Some(i) = self.contacts.get_mut(&inbox.id).and_then(|c| c.inbox_mut(&inbox.inbox.recv_id)) {
            i.heard_ms = Some(now);
        }
    }

    fn contact_frame(&mut self, id: &str, inbox: &InboxRef, frame_id: &FrameId, frame: &[u8]) -> Result<()> {
        let session = self.contacts.session(self.tx, id)?;
        let opened = session.open(frame);
        let msg = match opened {
            Ok(msg) => msg,
            Err(e) => return self.reject(id, Why::Message { fault: MessageFault::from(&e) }),
        };
        self.touch_session(id);
        self.heard_on(inbox);
        if msg.kind == Kind::Control {
            return self.on_control(id, inbox, &msg);
        }
        self.confirm_later(id, frame_id)?;
        let ctx = self.ctx();
        let Some(contact) = self.contacts.get_mut(id) else { return Ok(()) };
        let from = contact.card.clone();
        let channel_name = self.channel_name(&msg.channel)?;
        let Some(contact) = self.contacts.get_mut(id) else { return Ok(()) };
        // A channel we hold has a name; one we are not in shows as "" (bounded trackers).
        let ours = channel_name.as_deref().is_none_or(|n| !n.is_empty());
        // Every kind is numbered, so a newer peer's other kinds leave no false gap.
        let (arrival, step) = conversation::track(
            &ctx,
            contact.tracker_for(msg.channel, ours),
            id,
            &from.name,
            channel_name.as_deref(),
            &msg,
        );
        self.touch(id);
        self.apply(step)?;
        if arrival == Arrival::Duplicate {
            let conversation = Conversation::contact(id, &from.name);
            self.events.push(Event::Duplicate { conversation });
            return Ok(());
        }
        match (msg.kind, msg.channel == ChannelId::DIRECT) {
            (Kind::Note, true) => self.apply(conversation::note(&ctx, id, &from.name, &msg)),
            (Kind::Note | Kind::Channel, false) => self.channel_message(id, &from, &msg),
            (kind, _) => self
                .reject(id, Why::Message { fault: MessageFault::UnsupportedKind { kind: kind_byte(kind) } }),
        }
    }

    fn channel_name(&self, channel: &ChannelId) -> Result<Option<String>> {
        if *channel == ChannelId::DIRECT {
            return Ok(None);
        }
        Ok(Some(channel_by_id(self.tx, channel)?.map_or_else(String::new, |c| c.state.name)))
    }

    /// A channel message: the rules of `backchannel_party::channel` decide, this stores.
    fn channel_message(
        &mut self,
        id: &str,
        from: &backchannel_proto::identity::Card,
        msg: &Message,
    ) -> Result<()> {
        let key = record_id(&msg.channel);
        let channel = channel_by_id(self.tx, &msg.channel)?;
        let mut held = self.tx.load::<HeldMessages>(&key)?.unwrap_or_default();
        let ctx = self.ctx();
        let received = backchannel_party::channel::receive(
            &ctx,
            self,
            channel,
            &mut held,
            Incoming { contact: id, sender: from, msg },
        );
        self.apply(received.step)?;
        if let Some(channel) = received.channel.filter(|_| received.changed) {
            self.save_channel(&channel)?;
        }
        match held.is_empty() {
            true => self.tx.remove::<HeldMessages>(&key),
            false => self.tx.save(&key, &held),
        }
    }

    fn answer_invitation(&mut self, id: &str, pending: &PendingInvitation, frame: &[u8]) -> Result<()> {
        let mut identity = self.identity()?;
        let (session, hello) = match session::answer(pending, &mut identity, frame) {
            Ok(done) => done,
            Err(e) => return self.reject(id, Why::InvitationAnswer { fault: MessageFault::from(&e) }),
        };
        // Peers do not choose which hosts we connect to: a reply route is used at once only
        // on a host the invitation named (with the blocks that host uses), or one we use or
        // allowed; at least one must be.
        if !hello.routes().iter().any(|r| on_invitation_host(pending, r)) {
            return self.reject(id, Why::ReplyElsewhere { relay: hello.reply.relay.to_string() });
        }
        let mut contact =
            ContactRecord::new(hello.card.clone(), invitation_inboxes(pending), Vec::new(), self.now_ms);
        contact.routes = self.hello_routes(pending, &hello)?;
        contact.lines.control = hello.more.is_some();
        self.save_identity(&identity)?;
        self.tx.remove::<PendingRecord>(id)?;
        self.tx.save(id, &AcceptedInvite(self.now_ms))?;
        self.contacts.insert(id.to_owned(), contact, Some(session));
        self.touch_session(id);
        let card = hello.card;
        self.release_waiting(&card.party())?;
        let entry = Entry::Joined {
            from: card.name.clone(),
            at: self.now_ms,
            side: Some(card.side.clone()),
            safety_number: Some(safety_number(self.me, &card)),
        };
        let conversation = Conversation::contact(id, &card.name);
        self.tx.append_timeline(&conversation.key, &entry)?;
        self.events.push(Event::Entry { conversation, entry });
        // The invitation's queues were a capability in a text: move to fresh ones, announced
        // inside the session only, and delete those once the contact has moved.
        let relays = invitation_inboxes(pending).into_iter().map(|i| i.relay).collect();
        super::control::schedule(self.tx, id, super::control::RotateRecord::fresh(relays))?;
        Ok(())
    }

    /// The Hello's routes we may use: those on the invitation's hosts at once, those elsewhere
    /// only on hosts we use or allowed (the others wait for the user, who is told).
    fn hello_routes(
        &mut self,
        pending: &PendingInvitation,
        hello: &backchannel_proto::message::Hello,
    ) -> Result<Vec<OutRoute>> {
        let mut routes = Vec::new();
        for route in hello.routes() {
            let mut out = OutRoute::new(route.clone());
            if !on_invitation_host(pending, &route) {
                let relay = route.relay.to_string();
                out.needs_allow = !super::relays::known(self.tx, self.contacts, &relay)?;
                if out.needs_allow {
                    let why = Why::RouteNeedsAllow { name: hello.card.name.clone(), relay };
                    self.events.push(Event::Entry {
                        conversation: Conversation::contact("", &hello.card.name),
                        entry: Entry::rejected(&hello.card.name, why, self.now_ms),
                    });
                }
            }
            routes.push(out);
        }
        Ok(routes)
    }
}

/// The invitation's queues, as the new contact's inboxes (until it moves to fresh ones).
fn invitation_inboxes(pending: &PendingInvitation) -> Vec<Inbox> {
    let first =
        Inbox::new(pending.route.relay.clone(), pending.recv_id, pending.recv_secret.clone(), &pending.route);
    let more = pending
        .more
        .iter()
        .map(|q| Inbox::new(q.route.relay.clone(), q.recv_id, q.recv_secret.clone(), &q.route));
    std::iter::once(first).chain(more).collect()
}

/// A route on one of the invitation's hosts, with the blocks that host uses.
fn on_invitation_host(pending: &PendingInvitation, route: &backchannel_proto::message::Route) -> bool {
    std::iter::once(&pending.route)
        .chain(pending.more.iter().map(|q| &q.route))
        .any(|r| r.relay == route.relay && r.block_size == route.block_size)
}

fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Hello => 1,
        Kind::Note => 2,
        Kind::Channel => 3,
        Kind::Unknown(b) => b,
        _ => 0,
    }
}
