//! The durable outbox: a message is sealed and queued in one transaction, then delivered when
//! its relay answers. A crash between the two resends it; the receiver drops the duplicate.
//!
//! Each request carries the items for one destination queue only (never a channel's whole
//! fan-out in one request, which would show the host the membership set), in random order.
//! A refusal holds back only the items it concerns: they stay listed (`outbox`) until they
//! go, or the user drops them; nothing else waits behind them.

use std::collections::{BTreeMap, HashMap};

use backchannel_party::event::Conversation;
use backchannel_party::{Entry, Why};
use backchannel_proto::block::{FrameId, frame_id_of};
use backchannel_proto::message::Route;
use backchannel_wire::{ApiError, MAX_BATCH, QueueId, QueueSecret, RelayAddress, SendItem, SendOutcome};
use serde::{Deserialize, Serialize};

pub(crate) use super::item::{Done, OutboxItem, Outcome};
use super::{Shared, now_ms};
use crate::error::{ClientError, Result};
use crate::store::{OutboxRow, Tx};

/// One item's copy for one route: its number, where it goes, its blocks.
pub(crate) struct Queued {
    pub n: i64,
    pub item: OutboxItem,
    /// The frame's id (for items that keep a frame).
    pub frame_id: Option<FrameId>,
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
    /// The hosts it still goes to (comma-separated).
    pub relay: String,
    pub blocks: usize,
    /// Why the relay refused it (it waits for the user), if it did.
    pub held: Option<String>,
    /// Stored by every host; kept until the contact's receipt comes (a hotline note).
    #[serde(default)]
    pub awaiting_receipt: bool,
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

/// Blocks cut when their frames were sealed, by outbox row and route, until delivered.
pub(crate) type CutCache = HashMap<(i64, QueueId), Vec<Vec<u8>>>;

/// What the outbox holds, in order, as one copy per route still to deliver: items that keep a
/// frame are cut for each usable route of their contact not yet done (or take the blocks cut
/// when it was sealed, from `cut`); items with one destination bring their blocks. An item
/// without blocks, or for a contact that is gone, was damaged.
pub(crate) fn queued(tx: &Tx<'_>, contacts: &mut super::Contacts, cut: &mut CutCache) -> Result<Vec<Queued>> {
    let now = now_ms();
    let items: Vec<OutboxRow<OutboxItem>> = tx.outbox()?;
    let mut out = Vec::new();
    for (n, item, stored) in items {
        out.extend(resolve(tx, contacts, cut, now, n, item, stored)?);
    }
    Ok(out)
}

fn resolve(
    tx: &Tx<'_>,
    contacts: &mut super::Contacts,
    cut: &mut CutCache,
    now: u64,
    n: i64,
    mut item: OutboxItem,
    stored: Option<Vec<Vec<u8>>>,
) -> Result<Vec<Queued>> {
    let damaged = |why: &str| tx.damaged(format!("outbox item {n} {why}"));
    let stored = stored.unwrap_or_else(|| std::mem::take(&mut item.legacy_blocks));
    if !item.frame {
        let (Some(relay), Some(send_id), Some(secret)) =
            (item.relay.clone(), item.send_id, item.secret.clone())
        else {
            return Err(damaged("has no destination"));
        };
        if stored.is_empty() {
            return Err(damaged("has no blocks"));
        }
        return Ok(vec![Queued { n, item, frame_id: None, relay, send_id, secret, blocks: stored }]);
    }
    let [frame] = stored.as_slice() else { return Err(damaged("has a damaged frame")) };
    let Some(contact) = contacts.get(&item.contact) else {
        return Err(damaged("is for a contact the store no longer has"));
    };
    if item.resend_at.is_some_and(|at| now < at) {
        return Ok(Vec::new());
    }
    let frame_id = Some(frame_id_of(frame));
    let targets: Vec<Route> = contact
        .routes
        .iter()
        .filter(|r| r.usable() && !item.stored.contains(&r.route.send_id))
        .filter(|r| item.only.is_none_or(|only| only == r.route.send_id))
        .map(|r| r.route.clone())
        .collect();
    let mut out = Vec::new();
    for route in targets {
        let blocks = match cut.remove(&(n, route.send_id)) {
            Some(blocks) => blocks,
            None => route.seal_blocks(frame)?.1,
        };
        out.push(Queued {
            n,
            item: item.clone(),
            frame_id,
            relay: route.relay,
            send_id: route.send_id,
            secret: route.send_secret,
            blocks,
        });
    }
    Ok(out)
}

pub(crate) fn list(tx: &Tx<'_>, contacts: &mut super::Contacts) -> Result<Vec<QueuedView>> {
    let mut views: Vec<QueuedView> = Vec::new();
    for (n, item, stored) in tx.outbox::<OutboxItem>()? {
        if item.ephemeral {
            continue;
        }
        let awaiting = item.awaiting_receipt();
        let mut probe = item.clone();
        probe.resend_at = None;
        let copies = resolve(tx, contacts, &mut HashMap::new(), 0, n, probe, stored)?;
        let relays: Vec<String> = copies.iter().map(|q| q.relay.to_string()).collect();
        views.push(QueuedView {
            n,
            to: contacts.get(&item.contact).map_or_else(|| item.contact.clone(), |c| c.card.name.clone()),
            relay: relays.join(", "),
            blocks: copies.first().map_or(0, |q| q.blocks.len()),
            held: item.held,
            awaiting_receipt: awaiting,
        });
    }
    Ok(views)
}

/// No route is left that could take the item: it leaves the outbox and the conversation says
/// why (for a Hello: the invitation was used; otherwise the contact's queues are gone).
fn give_up(tx: &Tx<'_>, contacts: &super::Contacts, n: i64, item: &OutboxItem) -> Result<()> {
    tx.outbox_remove(n)?;
    if item.ephemeral || item.any_route {
        return Ok(());
    }
    let name = contacts.get(&item.contact).map_or("", |c| c.card.name.as_str()).to_owned();
    let why = if item.hello { Why::InvitationUsed { name } } else { Why::QueueGone { name } };
    let key = Conversation::contact(&item.contact, "").key;
    tx.append_timeline(&key, &Entry::rejected("the relay", why, now_ms())).map(drop)
}

/// One request: its host, and the copies it carries (all for one destination queue).
type Request = (RelayAddress, Vec<Queued>);

/// Groups copies so each request carries the items of one destination queue, at most
/// `MAX_BATCH` blocks (a larger item goes alone and the relay refuses it with a clear error).
/// Hotline traffic goes first; the rest in random order.
fn requests(items: Vec<Queued>) -> Vec<Request> {
    let mut by_queue: BTreeMap<QueueId, (RelayAddress, Vec<Queued>)> = BTreeMap::new();
    for q in items {
        let slot = by_queue.entry(q.send_id).or_insert_with(|| (q.relay.clone(), Vec::new()));
        slot.1.push(q);
    }
    let mut out = Vec::new();
    for (_, (relay, mut items)) in by_queue {
        items.sort_by_key(|q| !q.item.flash);
        let mut chunk: Vec<Queued> = Vec::new();
        let mut blocks = 0;
        for q in items {
            if !chunk.is_empty()
                && (blocks + q.blocks.len() > MAX_BATCH || q.item.flash != chunk[0].item.flash)
            {
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
    out.sort_by_key(|(_, chunk)| !chunk[0].item.flash);
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
        self.flush_where(|_| true).await
    }

    /// Delivers the items `wanted` picks: every host at once, so one that is down or slow
    /// holds back nothing meant for the others; then records, in one write, what each host
    /// did with each copy.
    pub async fn flush_where(&self, wanted: impl Fn(&OutboxItem) -> bool) -> Result<FlushReport> {
        let mut cut = self.take_cut();
        let copies = self.with_core(|tx, contacts| queued(tx, contacts, &mut cut))?;
        let (held, copies): (Vec<Queued>, Vec<Queued>) =
            copies.into_iter().filter(|q| wanted(&q.item)).partition(|q| q.item.held.is_some());
        let mut by_relay: Vec<(RelayAddress, Vec<Request>)> = Vec::new();
        for (relay, chunk) in requests(copies) {
            match by_relay.iter_mut().find(|(r, _)| *r == relay) {
                Some((_, list)) => list.push((relay, chunk)),
                None => by_relay.push((relay.clone(), vec![(relay, chunk)])),
            }
        }
        let sends = by_relay.into_iter().map(|(relay, chunks)| self.send_to(relay, chunks));
        let done: Vec<Done> = futures_util::future::join_all(sends).await.into_iter().flatten().collect();
        let mut report = self.settle(done)?;
        report.held += held.len();
        Ok(report)
    }

    /// Sends one host's requests in turn; the first failure that means the host is down ends
    /// them (the rest wait for the next flush).
    async fn send_to(&self, relay: RelayAddress, chunks: Vec<Request>) -> Vec<Done> {
        let mut done = Vec::new();
        let mut down: Option<String> = None;
        for (_, chunk) in chunks {
            let outcomes = match &down {
                Some(why) => vec![Outcome::Later(why.clone()); chunk.len()],
                None => match self.send_chunk(&relay, &chunk).await {
                    Ok(outcomes) => outcomes,
                    Err(e) if e.relay_down() || is_busy(&e) => {
                        if !is_busy(&e) {
                            down = Some(e.to_string());
                        }
                        vec![Outcome::Later(e.to_string()); chunk.len()]
                    }
                    Err(e) => vec![Outcome::Held(e.to_string()); chunk.len()],
                },
            };
            for (q, outcome) in chunk.into_iter().zip(outcomes) {
                done.push(Done {
                    n: q.n,
                    item: q.item,
                    frame_id: q.frame_id,
                    relay: q.relay,
                    send_id: q.send_id,
                    outcome,
                });
            }
        }
        done
    }

    /// Sends one request; returns what became of each copy in it.
    async fn send_chunk(&self, relay: &RelayAddress, chunk: &[Queued]) -> Result<Vec<Outcome>> {
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
        Ok(chunk
            .iter()
            .map(|q| {
                let outcomes = results.get(offset..offset + q.blocks.len()).unwrap_or(&[]);
                offset += q.blocks.len();
                if outcomes.len() == q.blocks.len() && outcomes.iter().all(|o| *o == SendOutcome::Stored) {
                    Outcome::Stored
                } else if outcomes.contains(&SendOutcome::Refused) {
                    Outcome::Refused
                } else {
                    Outcome::Later("the queue is full".into())
                }
            })
            .collect())
    }

    /// Records what each host did: routes' health, items done, given up or kept.
    fn settle(&self, done: Vec<Done>) -> Result<FlushReport> {
        let now = now_ms();
        let mut report = FlushReport::default();
        for d in &done {
            if let Outcome::Later(why) = &d.outcome {
                let text = format!("{}: {why}", d.relay);
                if !report.unreachable.contains(&text) {
                    report.unreachable.push(text);
                }
            }
        }
        let mut by_item: BTreeMap<i64, Vec<Done>> = BTreeMap::new();
        for d in done {
            by_item.entry(d.n).or_default().push(d);
        }
        // Not synced to disk on its own: if a crash forgets it, an item is sent again and
        // the receiver drops the duplicate; the next durable commit covers it.
        self.with_core_unsynced(|tx, contacts| {
            for (n, copies) in by_item {
                let item = copies[0].item.clone();
                let fate = super::delivery::settle_item(tx, contacts, now, n, item, &copies)?;
                match fate {
                    super::delivery::Fate::Sent => report.sent += 1,
                    super::delivery::Fate::Waits => report.still_queued += 1,
                    super::delivery::Fate::Held => report.held += 1,
                    super::delivery::Fate::GaveUp(item) => {
                        give_up(tx, contacts, n, &item)?;
                        report.refused += 1;
                    }
                }
            }
            Ok(())
        })?;
        Ok(report)
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
                let mut header = serde_json::to_value(OutboxItem::hello("c1", &route())).unwrap();
                let b64: Vec<String> = old.iter().map(|b| base64_no_pad(b)).collect();
                header["blocks"] = serde_json::json!(b64);
                tx.outbox_push_legacy(&header)?;
                tx.outbox_push(&OutboxItem::hello("c2", &route()), &new)
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
            item: OutboxItem::hello("c", r),
            frame_id: None,
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
