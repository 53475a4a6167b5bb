//! The durable outbox: a message is sealed and queued in one transaction, then delivered when
//! its relay answers. A crash between the two resends it; the receiver drops the duplicate.
//!
//! Each request carries the items for one destination queue only (never a channel's whole
//! fan-out in one request, which would show the host the membership set), in random order.
//! A refusal holds back only the items it concerns: they stay listed (`outbox`) until they
//! go, or the user drops them; nothing else waits behind them.

use std::collections::{BTreeMap, HashMap};

use backchannel_party::Entry;
use backchannel_party::event::Conversation;
use backchannel_proto::message::Route;
use backchannel_wire::{ApiError, MAX_BATCH, QueueId, QueueSecret, RelayAddress, SendItem, SendOutcome};
use serde::{Deserialize, Serialize};

use super::{Shared, now_ms};
use crate::error::{ClientError, Result};
use crate::store::{OutboxRow, Tx};

/// One outbound message: for whom, and (for items that keep their blocks) where they go. The
/// stored value beside it (see [`crate::store::Tx::outbox_push`]) is the message's frame, or,
/// for the handshake and items queued by earlier versions, its blocks.
#[derive(Serialize, Deserialize)]
pub(crate) struct OutboxItem {
    /// The contact it is for, so a refusal can be shown in that conversation.
    pub contact: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_id: Option<QueueId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<QueueSecret>,
    /// Only in items queued before blocks had a column of their own.
    #[serde(default, rename = "blocks", deserialize_with = "blocks_b64::deserialize", skip_serializing)]
    pub legacy_blocks: Vec<Vec<u8>>,
    /// Set when the relay refused the item for a reason a retry cannot fix by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The item keeps its frame (Olm and post-quantum layers), not blocks: they are cut for
    /// the contact's route when it is delivered (the same frame id every time, so a resend
    /// after a crash is taken in once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frame: bool,
}

impl OutboxItem {
    /// An item whose stored value is its blocks for `route` (the handshake, queued whole).
    pub fn new(contact: &str, route: &Route) -> Self {
        Self {
            contact: contact.to_owned(),
            relay: Some(route.relay.clone()),
            send_id: Some(route.send_id),
            secret: Some(route.send_secret.clone()),
            legacy_blocks: Vec::new(),
            held: None,
            frame: false,
        }
    }

    /// An item whose stored value is one frame for `contact`.
    pub fn frame(contact: &str) -> Self {
        Self {
            contact: contact.to_owned(),
            relay: None,
            send_id: None,
            secret: None,
            legacy_blocks: Vec::new(),
            held: None,
            frame: true,
        }
    }
}

/// An item in the outbox: its number, where it goes, its blocks.
pub(crate) struct Queued {
    pub n: i64,
    pub item: OutboxItem,
    pub relay: RelayAddress,
    pub send_id: QueueId,
    pub secret: QueueSecret,
    pub blocks: Vec<Vec<u8>>,
}

/// An outbox item as listed for the user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct QueuedView {
    pub n: i64,
    /// The contact it is for.
    pub to: String,
    pub relay: String,
    pub blocks: usize,
    /// Why the relay refused it (it waits for the user), if it did.
    pub held: Option<String>,
}

/// How a flush of the outbox went.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushReport {
    pub sent: usize,
    pub still_queued: usize,
    /// Messages the relay refused for good (their queue is gone); each is noted in its
    /// conversation and removed from the outbox.
    pub refused: usize,
    /// Items held back after a refusal a retry cannot fix (listed by `outbox`).
    pub held: usize,
    pub unreachable: Vec<String>,
}

/// What the outbox holds, in order, with where each item goes and its blocks: items that
/// keep a frame are cut for their contact's route (or take the blocks cut when it was sealed,
/// from `cut`); items queued by earlier versions bring their blocks in their header. An item
/// without blocks, or for a contact that is gone, was damaged.
pub(crate) fn queued(
    tx: &Tx<'_>,
    contacts: &mut super::Contacts,
    cut: &mut HashMap<i64, Vec<Vec<u8>>>,
) -> Result<Vec<Queued>> {
    let items: Vec<OutboxRow<OutboxItem>> = tx.outbox()?;
    items.into_iter().map(|(n, item, stored)| resolve(tx, contacts, cut, n, item, stored)).collect()
}

fn resolve(
    tx: &Tx<'_>,
    contacts: &mut super::Contacts,
    cut: &mut HashMap<i64, Vec<Vec<u8>>>,
    n: i64,
    mut item: OutboxItem,
    stored: Option<Vec<Vec<u8>>>,
) -> Result<Queued> {
    let damaged = |why: &str| tx.damaged(format!("outbox item {n} {why}"));
    let stored = stored.unwrap_or_else(|| std::mem::take(&mut item.legacy_blocks));
    let (route, blocks) = if item.frame {
        if contacts.get(&item.contact).is_none() {
            return Err(damaged("is for a contact the store no longer has"));
        }
        let route = contacts.session(tx, &item.contact)?.send_route.clone();
        let blocks = match (cut.remove(&n), stored.as_slice()) {
            (Some(blocks), _) => blocks,
            (None, [frame]) => route.seal_blocks(frame)?.1,
            (None, _) => return Err(damaged("has a damaged frame")),
        };
        ((route.relay, route.send_id, route.send_secret), blocks)
    } else {
        let (Some(relay), Some(send_id), Some(secret)) =
            (item.relay.clone(), item.send_id, item.secret.clone())
        else {
            return Err(damaged("has no destination"));
        };
        ((relay, send_id, secret), stored)
    };
    if blocks.is_empty() {
        return Err(damaged("has no blocks"));
    }
    let (relay, send_id, secret) = route;
    Ok(Queued { n, item, relay, send_id, secret, blocks })
}

pub(crate) fn list(tx: &Tx<'_>, contacts: &mut super::Contacts) -> Result<Vec<QueuedView>> {
    Ok(queued(tx, contacts, &mut HashMap::new())?
        .into_iter()
        .map(|q| QueuedView {
            n: q.n,
            to: contacts.get(&q.item.contact).map_or_else(|| q.item.contact.clone(), |c| c.card.name.clone()),
            relay: q.relay.to_string(),
            blocks: q.blocks.len(),
            held: q.item.held,
        })
        .collect())
}

/// The relay refused the item: the contact's queue is gone (expired or deleted). Resending
/// cannot help, so it leaves the outbox and the conversation says so.
fn give_up(tx: &Tx<'_>, contacts: &super::Contacts, n: i64, contact: &str) -> Result<()> {
    tx.outbox_remove(n)?;
    let name = contacts.get(contact).map_or("", |c| c.card.name.as_str()).to_owned();
    let why = backchannel_party::Why::QueueGone { name };
    tx.append_timeline(&Conversation::contact(contact, "").key, &Entry::rejected("the relay", why, now_ms()))
}

/// Groups items so each request carries the items of one destination queue, at most
/// `MAX_BATCH` blocks (a larger item goes alone and the relay refuses it with a clear error).
fn requests(items: Vec<Queued>) -> Vec<(RelayAddress, Vec<Queued>)> {
    let mut by_queue: BTreeMap<QueueId, (RelayAddress, Vec<Queued>)> = BTreeMap::new();
    for q in items {
        let slot = by_queue.entry(q.send_id).or_insert_with(|| (q.relay.clone(), Vec::new()));
        slot.1.push(q);
    }
    let mut out = Vec::new();
    for (_, (relay, items)) in by_queue {
        let mut chunk: Vec<Queued> = Vec::new();
        let mut blocks = 0;
        for q in items {
            if !chunk.is_empty() && blocks + q.blocks.len() > MAX_BATCH {
                out.push((relay.clone(), std::mem::take(&mut chunk)));
                blocks = 0;
            }
            blocks += q.blocks.len();
            chunk.push(q);
        }
        if !chunk.is_empty() {
            out.push((relay.clone(), chunk));
        }
    }
    shuffle(&mut out);
    out
}

/// Fisher–Yates with the OS generator: the order of requests says nothing of the order the
/// messages were queued in (a channel's members, in its listing order).
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let r: [u8; 8] = backchannel_proto::crypto::random_array();
        let j = (u64::from_le_bytes(r) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

impl Shared {
    /// Delivers what the outbox holds. Items a relay did not fully store stay.
    pub async fn flush(&self) -> Result<FlushReport> {
        let mut cut = self.take_cut();
        let items = self.with_core(|tx, contacts| queued(tx, contacts, &mut cut))?;
        let mut report = FlushReport::default();
        let (held, items): (Vec<Queued>, Vec<Queued>) =
            items.into_iter().partition(|q| q.item.held.is_some());
        report.held = held.len();
        let mut down: Vec<RelayAddress> = Vec::new();
        for (relay, chunk) in requests(items) {
            if down.contains(&relay) {
                report.still_queued += chunk.len();
                continue;
            }
            match self.send_chunk(&relay, &chunk).await {
                Ok((sent, refused)) => {
                    report.sent += sent;
                    report.refused += refused;
                    report.still_queued += chunk.len() - sent - refused;
                }
                Err(e) if e.relay_down() || is_busy(&e) => {
                    if !is_busy(&e) {
                        down.push(relay);
                    }
                    report.unreachable.push(e.to_string());
                    report.still_queued += chunk.len();
                }
                Err(e @ (ClientError::RelayRefused { .. } | ClientError::RelayProtocol { .. })) => {
                    let why = e.to_string();
                    self.write_unsynced(|tx| chunk.iter().try_for_each(|q| hold(tx, q, &why)))?;
                    report.held += chunk.len();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Sends one request; returns how many items were stored (and removed), and how many
    /// refused for good.
    async fn send_chunk(&self, relay: &RelayAddress, chunk: &[Queued]) -> Result<(usize, usize)> {
        let send_items: Vec<SendItem> = chunk
            .iter()
            .flat_map(|q| {
                q.blocks.iter().map(|b| SendItem {
                    send_id: q.send_id,
                    secret: q.secret.clone(),
                    block: b.clone(),
                })
            })
            .collect();
        let mut client = self.pool.take(relay).await?;
        let results = client.send(send_items).await?.results;
        self.pool.keep(client).await;
        let mut offset = 0;
        let (mut done, mut refused) = (Vec::new(), Vec::new());
        for q in chunk {
            let outcomes = results.get(offset..offset + q.blocks.len()).unwrap_or(&[]);
            offset += q.blocks.len();
            if outcomes.len() == q.blocks.len() && outcomes.iter().all(|o| *o == SendOutcome::Stored) {
                done.push(q.n);
            } else if outcomes.contains(&SendOutcome::Refused) {
                refused.push((q.n, q.item.contact.as_str()));
            }
        }
        // Not synced to disk on its own: if a crash forgets the removal, the item is sent
        // again and the receiver drops the duplicate; the next durable commit covers it.
        self.write_unsynced(|tx| {
            done.iter().try_for_each(|n| tx.outbox_remove(*n))?;
            Ok(())
        })?;
        if !refused.is_empty() {
            self.write(|tx, contacts| {
                refused.iter().try_for_each(|(n, contact)| give_up(tx, contacts, *n, contact))
            })?;
        }
        Ok((done.len(), refused.len()))
    }

    /// Drops an item the user gave up on (listed by `outbox`).
    pub fn drop_queued(&self, n: i64) -> Result<()> {
        self.write(|tx, _| {
            if !tx.outbox::<OutboxItem>()?.iter().any(|(m, _, _)| *m == n) {
                return Err(ClientError::NoOutboxItem { n });
            }
            tx.outbox_remove(n)
        })
    }

    /// Lets held items go again at the next flush.
    pub fn retry_held(&self) -> Result<usize> {
        self.write(|tx, _| {
            let mut count = 0;
            for (n, mut item, _) in tx.outbox::<OutboxItem>()? {
                if item.held.take().is_some() {
                    tx.outbox_update(n, &item)?;
                    count += 1;
                }
            }
            Ok(count)
        })
    }
}

/// A busy relay (rate limited): the items wait, and the relay is tried again next time.
fn is_busy(e: &ClientError) -> bool {
    matches!(e, ClientError::RelayRefused { error: ApiError::RateLimited | ApiError::QueueFull, .. })
}

fn hold(tx: &Tx<'_>, q: &Queued, why: &str) -> Result<()> {
    tx.outbox_update(q.n, &OutboxItem { held: Some(why.to_owned()), ..clone_item(&q.item) })
}

fn clone_item(i: &OutboxItem) -> OutboxItem {
    OutboxItem {
        contact: i.contact.clone(),
        relay: i.relay.clone(),
        send_id: i.send_id,
        secret: i.secret.clone(),
        legacy_blocks: Vec::new(),
        held: i.held.clone(),
        frame: i.frame,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use backchannel_proto::crypto::SecretKey;
    use backchannel_wire::{QueueId, QueueSecret};

    use super::*;
    use crate::store::{Passphrase, Store};

    fn route() -> Route {
        Route {
            relay: "bcr://127.0.0.1:4443#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().unwrap(),
            block_size: 1024,
            send_id: QueueId::random(),
            send_secret: QueueSecret::random(),
            block_key: SecretKey([3; 32]),
        }
    }

    /// A store written before blocks had a column of their own still delivers what it queued,
    /// in order with what is queued after the upgrade.
    #[test]
    fn items_queued_before_the_upgrade_keep_their_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::create(dir.path(), &Passphrase::new("p".into())).unwrap();
        let (old, new) = (vec![vec![1u8; 1024], vec![2u8; 1024]], vec![vec![5u8; 1024]]);
        store
            .tx(|tx| {
                let mut header = serde_json::to_value(OutboxItem::new("c1", &route())).unwrap();
                let b64: Vec<String> = old.iter().map(|b| base64_no_pad(b)).collect();
                header["blocks"] = serde_json::json!(b64);
                tx.outbox_push_legacy(&header)?;
                tx.outbox_push(&OutboxItem::new("c2", &route()), &new)
            })
            .unwrap();
        let items = store.tx(|tx| queued(tx, &mut Default::default(), &mut Default::default())).unwrap();
        let got: Vec<(&str, &Vec<Vec<u8>>)> =
            items.iter().map(|q| (q.item.contact.as_str(), &q.blocks)).collect();
        assert_eq!(got, [("c1", &old), ("c2", &new)]);
        store.execute_raw("UPDATE outbox SET blocks = NULL WHERE n = 2");
        let err = store
            .tx(|tx| queued(tx, &mut Default::default(), &mut Default::default()).map(drop))
            .unwrap_err();
        assert!(err.to_string().contains("outbox item 2 has no blocks"), "{err}");
    }

    /// One request per destination queue: a channel's fan-out never shows the host its
    /// membership as one request, and one queue's trouble does not hold the others.
    #[test]
    fn requests_carry_one_destination_each() {
        let (a, b) = (route(), route());
        let item = |n, r: &Route, blocks| Queued {
            n,
            item: OutboxItem::new("c", r),
            relay: r.relay.clone(),
            send_id: r.send_id,
            secret: r.send_secret.clone(),
            blocks: vec![vec![0u8; 8]; blocks],
        };
        let items = vec![item(1, &a, 1), item(2, &b, 1), item(3, &a, MAX_BATCH - 1), item(4, &a, 1)];
        let mut got: Vec<Vec<i64>> =
            requests(items).into_iter().map(|(_, c)| c.iter().map(|q| q.n).collect()).collect();
        got.sort();
        assert_eq!(
            got,
            [vec![1, 3], vec![2], vec![4]],
            "by queue, in order, at most MAX_BATCH blocks a request"
        );
    }

    fn base64_no_pad(b: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
    }
}
