//! Receiving: blocks are opened, reassembled into frames, and each whole frame is processed
//! in one transaction (session advanced, timeline appended, frame marked seen). Only then
//! are its blocks acknowledged to the relay, so a crash at any point loses nothing and shows
//! nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use backchannel_proto::ProtoError;
use backchannel_proto::block::{FrameId, Reassembler, open_block};
use backchannel_proto::crypto::SecretKey;
use backchannel_proto::delivery::Arrival;
use backchannel_proto::invitation::PendingInvitation;
use backchannel_proto::message::{ChannelId, Kind, Message};
use backchannel_proto::session::{self, Session};
use backchannel_wire::{Delivered, MAX_BATCH, RelayAddress};

use crate::channels;
use crate::error::{ClientError, Result};
use crate::model::{CONTACT, ContactRecord, Entry, Event, IDENTITY, Inbox, PENDING, SyncReport};
use crate::party::{Party, load_identity, now_ms};
use crate::store::Tx;
use crate::transport::RelayClient;

/// One of our receive queues and what its blocks are sealed under.
#[derive(Clone, Debug)]
pub(crate) struct InboxRef {
    /// Contact id (or, before the handshake arrives, the pending invitation's id).
    pub id: String,
    pub inbox: Inbox,
    pub key: SecretKey,
}

/// Frames in progress, per inbox, with the relay seqs of their blocks.
#[derive(Default)]
pub(crate) struct Receiver {
    partial: HashMap<String, (Reassembler, HashMap<FrameId, BTreeSet<u64>>)>,
}

impl Party {
    /// Every queue we read: one per contact and one per unanswered invitation.
    pub(crate) fn inboxes(&mut self) -> Result<Vec<InboxRef>> {
        self.store.tx(|tx| {
            let contacts = tx.all::<ContactRecord>(CONTACT)?.into_iter().map(|(id, c)| {
                let key = Session::from_pickle(c.session).recv_block_key.clone();
                InboxRef { id, inbox: c.inbox, key }
            });
            let pending = tx.all::<PendingInvitation>(PENDING)?.into_iter().map(|(id, p)| InboxRef {
                id,
                inbox: Inbox {
                    relay: p.route.relay.clone(),
                    recv_id: p.recv_id,
                    recv_secret: p.recv_secret.clone(),
                },
                key: p.route.block_key.clone(),
            });
            Ok(contacts.chain(pending).collect())
        })
    }

    /// Delivers the outbox, then fetches, opens and acknowledges everything waiting.
    pub async fn sync(&mut self) -> Result<SyncReport> {
        let flushed = self.flush_outbox().await?;
        let mut report = SyncReport {
            sent: flushed.sent,
            still_queued: flushed.still_queued,
            unreachable: flushed.unreachable,
            ..SyncReport::default()
        };
        let mut by_relay: BTreeMap<String, (RelayAddress, Vec<InboxRef>)> = BTreeMap::new();
        for inbox in self.inboxes()? {
            let key = inbox.inbox.relay.to_string();
            by_relay.entry(key).or_insert_with(|| (inbox.inbox.relay.clone(), Vec::new())).1.push(inbox);
        }
        for (name, (relay, inboxes)) in by_relay {
            let mut client = match self.take_relay(&relay).await {
                Ok(c) => c,
                Err(e) => {
                    if !report.unreachable.iter().any(|u| u.contains(&name)) {
                        report.unreachable.push(e.to_string());
                    }
                    continue;
                }
            };
            for inbox in &inboxes {
                match self.drain(&mut client, inbox, &mut report.events).await {
                    Ok(()) => {}
                    // One queue the relay no longer has must not stop the others.
                    Err(e @ (ClientError::RelayRefused { .. } | ClientError::RelayProtocol { .. })) => {
                        report.problems.push(e.to_string());
                    }
                    Err(e @ ClientError::RelayUnreachable { .. }) => {
                        report.unreachable.push(e.to_string());
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !client.is_closed() {
                self.keep_relay(client);
            }
        }
        report.events.extend(self.run_tasks().await?);
        self.store.tx(|tx| channels::expire_notes(tx, now_ms()))?;
        // What receiving queued (introductions, phase moves, waiting notes) goes out now.
        let again = self.flush_outbox().await?;
        report.sent += again.sent;
        report.still_queued = again.still_queued;
        let _ = self.drop_expired_invitations().await;
        Ok(report)
    }

    async fn drain(
        &mut self,
        client: &mut RelayClient,
        inbox: &InboxRef,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let (id, secret) = (&inbox.inbox.recv_id, &inbox.inbox.recv_secret);
        let mut rx = Receiver::default();
        let mut after = 0;
        loop {
            let batch = client.fetch_after(id, secret, after, MAX_BATCH).await?;
            let Some(last) = batch.items.last().map(|i| i.seq) else { return Ok(()) };
            // Page on past what stays unacknowledged (pieces of frames still incomplete).
            after = last;
            let (acks, new_events) = self.receive_blocks(&mut rx, inbox, batch.items)?;
            events.extend(new_events);
            if !acks.is_empty() {
                client.ack(id, secret, acks).await?;
            }
        }
    }

    /// Takes delivered blocks of one inbox and processes every frame they complete in ONE
    /// transaction (one disk sync for a burst, not one per note). Returns the relay seqs now
    /// safe to acknowledge, and what the user should see.
    pub(crate) fn receive_blocks(
        &mut self,
        rx: &mut Receiver,
        inbox: &InboxRef,
        items: Vec<Delivered>,
    ) -> Result<(Vec<u64>, Vec<Event>)> {
        self.store.tx(|tx| {
            let mut out = Received::default();
            for item in items {
                receive_one(tx, rx, inbox, item, &mut out)?;
            }
            Ok((out.acks, out.events))
        })
    }
}

#[derive(Default)]
struct Received {
    acks: Vec<u64>,
    events: Vec<Event>,
}

fn receive_one(
    tx: &Tx<'_>,
    rx: &mut Receiver,
    inbox: &InboxRef,
    item: Delivered,
    out: &mut Received,
) -> Result<()> {
    let fragment = match open_block(&item.block, &inbox.key) {
        Ok(f) => f,
        Err(e) => {
            out.acks.push(item.seq);
            out.events.push(reject(tx, &inbox.id, &format!("{e}: dropped a block"))?);
            return Ok(());
        }
    };
    if tx.was_seen(&inbox.id, &fragment.frame_id)? {
        out.acks.push(item.seq);
        out.events.push(Event::Duplicate { from: label(tx, &inbox.id) });
        return Ok(());
    }
    let (reassembler, seqs) = rx.partial.entry(inbox.id.clone()).or_default();
    seqs.entry(fragment.frame_id).or_default().insert(item.seq);
    let whole = match reassembler.push(fragment) {
        Ok(w) => w,
        Err(e) => {
            out.acks.push(item.seq);
            out.events.push(reject(tx, &inbox.id, &e.to_string())?);
            return Ok(());
        }
    };
    let Some((frame_id, frame)) = whole else { return Ok(()) };
    let frame_seqs = seqs.remove(&frame_id).unwrap_or_default();
    if waits_for_handshake(tx, &inbox.id, &frame)? {
        return Ok(());
    }
    out.acks.extend(frame_seqs);
    if !tx.mark_seen(&inbox.id, &frame_id, now_ms())? {
        out.events.push(Event::Duplicate { from: label(tx, &inbox.id) }); // another process took it
        return Ok(());
    }
    out.events.extend(process_frame(tx, &inbox.id, &frame)?);
    Ok(())
}

/// A note that overtook the handshake on an invitation's queue (the host reordered them)
/// stays on the relay, unacknowledged, until the handshake has made the session.
fn waits_for_handshake(tx: &Tx<'_>, id: &str, frame: &[u8]) -> Result<bool> {
    Ok(!session::is_handshake(frame) && tx.get::<PendingInvitation>(PENDING, id)?.is_some())
}

fn label(tx: &Tx<'_>, id: &str) -> String {
    match tx.get::<ContactRecord>(CONTACT, id) {
        Ok(Some(c)) => c.card.name,
        _ => "an invitation".to_owned(),
    }
}

pub(crate) fn reject(tx: &Tx<'_>, id: &str, detail: &str) -> Result<Event> {
    let from = label(tx, id);
    tx.append_timeline(id, &Entry::Rejected { from: from.clone(), detail: detail.to_owned(), at: now_ms() })?;
    Ok(Event::Rejected { from, detail: detail.to_owned() })
}

/// One whole frame, inside the caller's transaction.
fn process_frame(tx: &Tx<'_>, id: &str, frame: &[u8]) -> Result<Vec<Event>> {
    if let Some(contact) = tx.get::<ContactRecord>(CONTACT, id)? {
        return from_contact(tx, id, contact, frame);
    }
    if let Some(pending) = tx.get::<PendingInvitation>(PENDING, id)? {
        return answer_invitation(tx, id, &pending, frame);
    }
    Ok(Vec::new())
}

fn from_contact(tx: &Tx<'_>, id: &str, mut contact: ContactRecord, frame: &[u8]) -> Result<Vec<Event>> {
    let mut session = Session::from_pickle(contact.session);
    let opened = session.open(frame);
    contact.session = session.pickle();
    let msg = match opened {
        Ok(msg) => msg,
        Err(e) => {
            tx.put(CONTACT, id, &contact)?;
            let detail = if e == ProtoError::Replayed {
                "a replayed message was dropped".into()
            } else {
                format!("{e}; not shown")
            };
            return Ok(vec![reject(tx, id, &detail)?]);
        }
    };
    // Every kind is numbered, so a newer peer's other kinds leave no false gap.
    let (arrival, mut events) = track(tx, id, &mut contact, &msg)?;
    // Saved before anything else runs: channel handling may seal to this same contact.
    tx.put(CONTACT, id, &contact)?;
    if arrival == Arrival::Duplicate {
        return Ok(vec![Event::Duplicate { from: contact.card.name }]);
    }
    match (msg.kind, msg.channel == ChannelId::DIRECT) {
        (Kind::Note, true) => events.push(note(tx, id, &contact.card.name, msg)?),
        (Kind::Note | Kind::Channel, false) => events.extend(channels::receive(tx, id, &contact.card, msg)?),
        (kind, _) => {
            events.push(reject(tx, id, &format!("unsupported message kind {kind:?}; upgrade Backchannel"))?)
        }
    }
    Ok(events)
}

/// Records the message's number in its sender's channel; shows gaps that opened (in the
/// timeline the message belongs to) and late arrivals that closed one.
fn track(tx: &Tx<'_>, id: &str, contact: &mut ContactRecord, msg: &Message) -> Result<(Arrival, Vec<Event>)> {
    let from = contact.card.name.clone();
    let tracker = contact.tracker(msg.channel);
    let before = tracker.missing();
    let arrival = tracker.record(msg.sender_seq);
    let after = tracker.missing();
    let mut events = Vec::new();
    if arrival == Arrival::Duplicate {
        return Ok((arrival, events));
    }
    let new_gaps: Vec<(u64, u64)> =
        after.into_iter().filter(|(a, b)| !before.iter().any(|(c, d)| a <= d && b >= c)).collect();
    let (timeline, source) = if msg.channel == ChannelId::DIRECT {
        (id.to_owned(), None)
    } else {
        (channels::timeline_key(&msg.channel), Some((id.to_owned(), msg.channel)))
    };
    let at = now_ms();
    for (first, last) in &new_gaps {
        let gap = Entry::Gap { from: from.clone(), first: *first, last: *last, at, source: source.clone() };
        tx.append_timeline(&timeline, &gap)?;
    }
    if !new_gaps.is_empty() {
        events.push(Event::Gap { from: from.clone(), missing: new_gaps });
    }
    if arrival == Arrival::Late {
        events.push(Event::GapClosed { from, seq: msg.sender_seq });
    }
    Ok((arrival, events))
}

fn note(tx: &Tx<'_>, id: &str, from: &str, msg: Message) -> Result<Event> {
    let text = String::from_utf8_lossy(&msg.body).into_owned();
    tx.append_timeline(id, &Entry::received(from, &msg, text.clone(), None))?;
    Ok(Event::Note { from: from.to_owned(), text, sent_at: msg.sent_at, channel: None, relayed_by: None })
}

fn answer_invitation(tx: &Tx<'_>, id: &str, pending: &PendingInvitation, frame: &[u8]) -> Result<Vec<Event>> {
    let mut identity = load_identity(tx)?;
    let (session, hello) = match session::answer(pending, &mut identity, frame) {
        Ok(done) => done,
        Err(e) => return Ok(vec![reject(tx, id, &format!("invitation answer refused: {e}"))?]),
    };
    let now = now_ms();
    let inbox = Inbox {
        relay: pending.route.relay.clone(),
        recv_id: pending.recv_id,
        recv_secret: pending.recv_secret.clone(),
    };
    let contact = ContactRecord {
        card: hello.card.clone(),
        verified: false,
        session: session.pickle(),
        inbox,
        trackers: Vec::new(),
        added_at: now,
    };
    tx.put(IDENTITY.0, IDENTITY.1, &identity.pickle())?;
    tx.delete(PENDING, id)?;
    tx.put(CONTACT, id, &contact)?;
    channels::index_contact(tx, id, &contact.card)?;
    channels::release_waiting(tx, &contact.card.identity_key)?;
    tx.append_timeline(id, &Entry::Joined { from: hello.card.name.clone(), at: now })?;
    let safety_number = backchannel_proto::identity::safety_number(&identity.card(), &hello.card);
    Ok(vec![Event::Joined { name: hello.card.name, side: hello.card.side, safety_number }])
}
