//! Delivery of our own notes, as their senders see it: `queued` (in the outbox), `sent`
//! (stored by at least one host: which), `delivered` (the recipient's device took it in and
//! said so in a receipt), or `not confirmed` (no receipt within the bound, or a later frame
//! confirmed while this one was not: most likely lost on the way). Receipts are sealed in the
//! pairwise session like notes: deniable, never signed, and nothing a host can forge.

use std::collections::HashMap;

use backchannel_proto::block::FrameId;
use serde::{Deserialize, Serialize};

use super::Contacts;
use super::item::{Done, OutboxItem, Outcome};
use crate::error::Result;
use crate::store::{Record, Tx};

/// Outside hotlines, how long a receipt may take before a note shows as not confirmed (the
/// other side may simply not have opened Backchannel).
pub(crate) const ORDINARY_BOUND_MS: u64 = 24 * 3600 * 1000;
/// A frame sealed this long before one that was confirmed, and still unconfirmed, was lost.
const OVERTAKEN_MS: u64 = 2_000;

/// The delivery of one note of ours (a timeline entry, by its number) to each recipient.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DeliveryRecord {
    pub sealed_at: u64,
    /// A receipt is expected within this long.
    pub bound_ms: u64,
    pub to: Vec<Recipient>,
}

impl Record for DeliveryRecord {
    const KIND: &'static str = "delivery";
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Recipient {
    pub contact: String,
    #[serde(with = "hex16")]
    pub frame: FrameId,
    /// Its outbox item, while it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<i64>,
    /// The hosts that stored it.
    #[serde(default)]
    pub stored_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<u64>,
    /// The contact sends receipts (contacts of earlier versions do not: their notes stay `sent`).
    pub receipts: bool,
}

/// Deliveries still waiting for a receipt, by timeline number: so that a receipt finds its
/// note without an index row per recipient.
/// Marks a note (by its timeline number) whose delivery is still open: one small record per
/// note, so opening and closing one costs the same however many are open.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct OpenDelivery {}

impl Record for OpenDelivery {
    const KIND: &'static str = "open_delivery";
}

/// Which note each frame still waiting for a receipt belongs to (built from the store once).
#[derive(Default)]
pub(crate) struct FrameIndex {
    loaded: bool,
    by_frame: HashMap<FrameId, i64>,
}

impl FrameIndex {
    /// The note a frame of ours carries, while its delivery is open.
    pub fn lookup(&mut self, tx: &Tx<'_>, frame: &FrameId) -> Result<Option<i64>> {
        self.load(tx)?;
        Ok(self.by_frame.get(frame).copied())
    }

    fn load(&mut self, tx: &Tx<'_>) -> Result<()> {
        if self.loaded {
            return Ok(());
        }
        for (id, _) in tx.load_all::<OpenDelivery>()? {
            let Ok(n) = id.parse::<i64>() else { continue };
            if let Some(d) = tx.load::<DeliveryRecord>(&id)? {
                d.to.iter().filter(|r| r.delivered_at.is_none()).for_each(|r| {
                    self.by_frame.insert(r.frame, n);
                });
            }
        }
        self.loaded = true;
        Ok(())
    }
}

/// A note of ours just sealed for one recipient, before its timeline entry exists.
pub(crate) struct SealedNote {
    pub contact: String,
    pub frame: FrameId,
    pub outbox: i64,
    pub receipts: bool,
    pub bound_ms: u64,
}

/// Starts tracking the delivery of the note recorded as timeline entry `n`.
pub(crate) fn open(
    tx: &Tx<'_>,
    index: &mut FrameIndex,
    n: i64,
    now: u64,
    notes: Vec<SealedNote>,
) -> Result<()> {
    let bound_ms = notes.iter().map(|s| s.bound_ms).min().unwrap_or(ORDINARY_BOUND_MS);
    let to: Vec<Recipient> = notes
        .into_iter()
        .map(|s| Recipient {
            contact: s.contact,
            frame: s.frame,
            outbox: Some(s.outbox),
            stored_on: Vec::new(),
            delivered_at: None,
            receipts: s.receipts,
        })
        .collect();
    index.load(tx)?;
    to.iter().for_each(|r| {
        index.by_frame.insert(r.frame, n);
    });
    tx.save(&n.to_string(), &OpenDelivery {})?;
    tx.save(&n.to_string(), &DeliveryRecord { sealed_at: now, bound_ms, to })
}

/// Receipts from `contact` for `frames`: their notes are delivered to it, and whatever of them
/// still waits in the outbox (for a host that is down, or for this receipt) can go.
pub(crate) fn confirmed(
    tx: &Tx<'_>,
    contacts: &mut Contacts,
    contact: &str,
    frames: &[FrameId],
    now: u64,
) -> Result<usize> {
    let mut index = std::mem::take(&mut contacts.frames);
    let out = confirm(tx, &mut index, contacts, contact, frames, now);
    contacts.frames = index;
    out
}

fn confirm(
    tx: &Tx<'_>,
    index: &mut FrameIndex,
    contacts: &mut Contacts,
    contact: &str,
    frames: &[FrameId],
    now: u64,
) -> Result<usize> {
    index.load(tx)?;
    let mut count = 0;
    for frame in frames {
        let Some(n) = index.by_frame.get(frame).copied() else { continue };
        let Some(mut d) = tx.load::<DeliveryRecord>(&n.to_string())? else { continue };
        // Only the recipient it was sealed for can confirm it.
        let Some(r) = d.to.iter_mut().find(|r| r.frame == *frame && r.contact == contact) else { continue };
        if r.delivered_at.is_none() {
            r.delivered_at = Some(now);
            if let Some(item) = r.outbox.take() {
                tx.outbox_remove(item)?;
            }
            count += 1;
        }
        index.by_frame.remove(frame);
        if let Some(c) = contacts.get_mut(contact) {
            c.lines.confirmed_through_ms = c.lines.confirmed_through_ms.max(d.sealed_at);
        }
        close_if_settled(tx, n, &d)?;
        tx.save(&n.to_string(), &d)?;
    }
    Ok(count)
}

/// A delivery is settled when every recipient confirmed it, or (a contact that sends no
/// receipts) its hosts stored it: it leaves the list of open ones.
fn settled(r: &Recipient) -> bool {
    r.delivered_at.is_some() || (!r.receipts && r.outbox.is_none())
}

fn close_if_settled(tx: &Tx<'_>, n: i64, d: &DeliveryRecord) -> Result<()> {
    if d.to.iter().all(settled) {
        tx.remove::<OpenDelivery>(&n.to_string())?;
    }
    Ok(())
}

/// What a flush did with one outbox item.
pub(crate) enum Fate {
    /// Delivered to its hosts (and removed, or kept for its receipt).
    Sent,
    /// Still to go to some host.
    Waits,
    /// Refused for a reason a retry cannot fix: held for the user.
    Held,
    /// No route is left that could take it.
    GaveUp(Box<OutboxItem>),
}

/// Records what the hosts did with an item's copies: the routes' health, the delivery of the
/// note it carries, and whether the item stays.
pub(crate) fn settle_item(
    tx: &Tx<'_>,
    contacts: &mut Contacts,
    now: u64,
    n: i64,
    mut item: OutboxItem,
    copies: &[Done],
) -> Result<Fate> {
    let mut stored_on = Vec::new();
    for d in copies {
        match &d.outcome {
            Outcome::Stored => {
                if item.frame && !item.stored.contains(&d.send_id) {
                    item.stored.push(d.send_id);
                }
                stored_on.push(d.relay.to_string());
            }
            Outcome::Held(why) => item.held = Some(why.clone()),
            _ => {}
        }
        if item.frame {
            route_health(tx, contacts, &item.contact, d, now)?;
        }
    }
    let entry = match copies.first().and_then(|d| d.frame_id) {
        Some(frame) => contacts.frames.lookup(tx, &frame)?,
        None => None,
    };
    if let Some(entry) = entry.filter(|_| !stored_on.is_empty()) {
        note_stored(tx, entry, &item.contact, &stored_on)?;
    }
    if !item.frame {
        return match copies.first().map(|d| &d.outcome) {
            Some(Outcome::Stored) => tx.outbox_remove(n).map(|()| Fate::Sent),
            Some(Outcome::Refused) => Ok(Fate::GaveUp(Box::new(item))),
            Some(Outcome::Held(_)) => tx.outbox_update(n, &item).map(|()| Fate::Held),
            _ => Ok(Fate::Waits),
        };
    }
    if item.held.is_some() {
        return tx.outbox_update(n, &item).map(|()| Fate::Held);
    }
    if item.ephemeral {
        return tx.outbox_remove(n).map(|()| Fate::Sent);
    }
    let usable: Vec<_> = contacts
        .get(&item.contact)
        .map(|c| c.routes.iter().filter(|r| r.usable()).map(|r| r.route.send_id).collect())
        .unwrap_or_default();
    if usable.is_empty() && item.stored.is_empty() {
        return Ok(Fate::GaveUp(Box::new(item)));
    }
    let complete = match item.any_route {
        true => !item.stored.is_empty(),
        false => usable.iter().all(|r| item.stored.contains(r)),
    };
    if !complete {
        tx.outbox_update(n, &item)?;
        return Ok(Fate::Waits);
    }
    match item.confirm_ms {
        // Kept for its receipt, and sent again over every route if none comes in time.
        Some(bound) => {
            item.resend_at = Some(now + bound);
            item.stored.clear();
            tx.outbox_update(n, &item).map(|()| Fate::Sent)
        }
        None => {
            if let (Some(entry), Some(frame)) = (entry, copies.first().and_then(|d| d.frame_id)) {
                forget_outbox(tx, &mut contacts.frames, entry, &item.contact, &frame)?;
            }
            tx.outbox_remove(n).map(|()| Fate::Sent)
        }
    }
}

/// A route's health after a delivery there. Kept in memory; written only when the route
/// turns from working to failing or back (not on every block).
fn route_health(tx: &Tx<'_>, contacts: &mut Contacts, contact: &str, d: &Done, now: u64) -> Result<()> {
    let Some(c) = contacts.get_mut(contact) else { return Ok(()) };
    let Some(r) = c.routes.iter_mut().find(|r| r.route.send_id == d.send_id) else { return Ok(()) };
    let was_failing = r.failed.is_some();
    match &d.outcome {
        Outcome::Stored => r.stored(now),
        Outcome::Refused => r.fail(now, "its host no longer has this queue".into(), true),
        Outcome::Later(why) => r.fail(now, why.clone(), false),
        Outcome::Held(_) => {}
    }
    if was_failing != r.failed.is_some() {
        contacts.save_record(tx, contact)?;
    }
    Ok(())
}

fn note_stored(tx: &Tx<'_>, entry: i64, contact: &str, relays: &[String]) -> Result<()> {
    let Some(mut d) = tx.load::<DeliveryRecord>(&entry.to_string())? else { return Ok(()) };
    let Some(r) = d.to.iter_mut().find(|r| r.contact == contact) else { return Ok(()) };
    let before = r.stored_on.len();
    for relay in relays {
        if !r.stored_on.contains(relay) {
            r.stored_on.push(relay.clone());
        }
    }
    match r.stored_on.len() == before {
        true => Ok(()),
        false => tx.save(&entry.to_string(), &d),
    }
}

/// The item left the outbox (stored everywhere, no receipt awaited there).
fn forget_outbox(
    tx: &Tx<'_>,
    index: &mut FrameIndex,
    entry: i64,
    contact: &str,
    frame: &FrameId,
) -> Result<()> {
    let Some(mut d) = tx.load::<DeliveryRecord>(&entry.to_string())? else { return Ok(()) };
    if let Some(r) = d.to.iter_mut().find(|r| r.contact == contact) {
        r.outbox = None;
        if !r.receipts {
            index.by_frame.remove(frame);
        }
    }
    close_if_settled(tx, entry, &d)?;
    tx.save(&entry.to_string(), &d)
}

/// How one of our notes is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    NotConfirmed,
}

/// One recipient's side of a note's delivery, as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientView {
    pub name: String,
    pub status: DeliveryStatus,
    /// The hosts that stored it.
    pub hosts: Vec<String>,
    pub delivered_at: Option<u64>,
}

/// The delivery of a note of ours, as shown: the least advanced recipient's status, and
/// every recipient's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub status: DeliveryStatus,
    /// Every host that stored it for someone.
    pub hosts: Vec<String>,
    pub recipients: Vec<RecipientView>,
}

/// The note of entry `n`, at `now`.
pub(crate) fn view(tx: &Tx<'_>, contacts: &Contacts, n: i64, now: u64) -> Result<Option<DeliveryView>> {
    let Some(d) = tx.load::<DeliveryRecord>(&n.to_string())? else { return Ok(None) };
    let recipients: Vec<RecipientView> =
        d.to.iter()
            .map(|r| {
                let contact = contacts.get(&r.contact);
                let overtaken =
                    contact.is_some_and(|c| c.lines.confirmed_through_ms > d.sealed_at + OVERTAKEN_MS);
                let status = match (r.delivered_at, r.stored_on.is_empty()) {
                    (Some(_), _) => DeliveryStatus::Delivered,
                    _ if r.receipts && (now > d.sealed_at + d.bound_ms || overtaken) => {
                        DeliveryStatus::NotConfirmed
                    }
                    (None, true) => DeliveryStatus::Queued,
                    (None, false) => DeliveryStatus::Sent,
                };
                RecipientView {
                    name: contact.map_or_else(String::new, |c| c.card.name.clone()),
                    status,
                    hosts: r.stored_on.clone(),
                    delivered_at: r.delivered_at,
                }
            })
            .collect();
    let rank = |s: DeliveryStatus| match s {
        DeliveryStatus::NotConfirmed => 0,
        DeliveryStatus::Queued => 1,
        DeliveryStatus::Sent => 2,
        DeliveryStatus::Delivered => 3,
    };
    let status =
        recipients.iter().map(|r| r.status).min_by_key(|s| rank(*s)).unwrap_or(DeliveryStatus::Queued);
    let mut hosts: Vec<String> = recipients.iter().flat_map(|r| r.hosts.iter().cloned()).collect();
    hosts.sort();
    hosts.dedup();
    Ok(Some(DeliveryView { status, hosts, recipients }))
}

mod hex16 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&backchannel_wire::hex_encode(id))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 16], D::Error> {
        let text = String::deserialize(d)?;
        let bad = || serde::de::Error::custom("a frame id is 32 hex digits");
        if text.len() != 32 || !text.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}
