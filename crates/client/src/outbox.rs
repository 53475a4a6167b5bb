//! The durable outbox: a note is sealed and stored in one transaction, then delivered when
//! its relay answers. A crash between the two resends it; the receiver drops the duplicate.

use std::collections::BTreeMap;

use backchannel_proto::message::{ChannelId, Kind};
use backchannel_proto::session::Session;
use backchannel_wire::{MAX_BATCH, RelayAddress, SendItem, SendOutcome};

use crate::error::{ClientError, Result};
use crate::model::{CONTACT, Entry, OutboxItem, Queued};
use crate::party::{Party, find_contact, now_ms};
use crate::store::{OutboxRow, Tx};

/// Largest note text, in bytes.
pub const MAX_NOTE: usize = 1024 * 1024;

/// How a flush of the outbox went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: usize,
    pub still_queued: usize,
    /// Messages the relay refused for good (their queue is gone); each is noted in its
    /// conversation and removed from the outbox.
    pub refused: usize,
    pub unreachable: Vec<String>,
}

pub(crate) fn check_note(text: &str) -> Result<()> {
    if text.is_empty() || text.len() > MAX_NOTE {
        let why = format!("a note has 1 to {MAX_NOTE} bytes (this one has {})", text.len());
        return Err(ClientError::InvalidInput { what: "note", why });
    }
    Ok(())
}

impl Party {
    /// Seals a note to a contact and puts it in the outbox. Nothing is sent yet.
    pub fn queue_note(&mut self, name: &str, text: &str) -> Result<()> {
        self.queue_notes(name, &[text])
    }

    /// Seals several notes to one contact, in order, in one durable transaction: a client
    /// sending in bursts pays for one disk sync, not one per note.
    pub fn queue_notes(&mut self, name: &str, texts: &[&str]) -> Result<()> {
        texts.iter().try_for_each(|t| check_note(t))?;
        self.store.tx(|tx| {
            let (id, mut contact) = find_contact(tx, name)?;
            let me = crate::party::load_card(tx)?.name;
            let mut session = Session::from_pickle(contact.session);
            for text in texts {
                let now = now_ms();
                let sealed = session.seal(ChannelId::DIRECT, Kind::Note, text.as_bytes().to_vec(), now)?;
                let seq = sealed.message.sender_seq;
                let entry = Entry::Note {
                    from: me.clone(),
                    outgoing: true,
                    text: (*text).to_owned(),
                    sent_at: now,
                    at: now,
                    seq,
                    relayed_by: None,
                    rephrased: false,
                };
                tx.append_timeline(&id, &entry)?;
                tx.outbox_push(&OutboxItem::new(&id, &session.send_route), &sealed.blocks)?;
            }
            contact.session = session.pickle();
            tx.put(CONTACT, &id, &contact)
        })
    }

    /// Delivers what the outbox holds, relay by relay. Items a relay did not fully store stay.
    pub async fn flush_outbox(&mut self) -> Result<FlushReport> {
        let items = self.store.tx(|tx| queued(tx))?;
        let mut by_relay: BTreeMap<String, (RelayAddress, Vec<Queued>)> = BTreeMap::new();
        for q in items {
            by_relay
                .entry(q.item.relay.to_string())
                .or_insert_with(|| (q.item.relay.clone(), Vec::new()))
                .1
                .push(q);
        }
        let mut report = FlushReport::default();
        for (_, (relay, items)) in by_relay {
            match self.flush_to(&relay, &items).await {
                Ok((sent, refused)) => {
                    report.sent += sent;
                    report.refused += refused;
                    report.still_queued += items.len() - sent - refused;
                }
                // A relay that cannot store right now (its disk is full) is like one that is
                // down: the items wait in the outbox for the next flush.
                Err(
                    e @ (ClientError::RelayUnreachable { .. }
                    | ClientError::RelayNotPinned { .. }
                    | ClientError::RelayRefused {
                        error: backchannel_wire::ApiError::Unavailable(_), ..
                    }),
                ) => {
                    report.unreachable.push(e.to_string());
                    report.still_queued += items.len();
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Sends whole items in batches; returns how many items were fully stored (and removed).
    /// Returns how many items were stored, and how many refused.
    async fn flush_to(&mut self, relay: &RelayAddress, items: &[Queued]) -> Result<(usize, usize)> {
        let mut client = self.take_relay(relay).await?;
        let (mut sent, mut refused_total) = (0, 0);
        for chunk in batches(items) {
            let send_items: Vec<SendItem> = chunk
                .iter()
                .flat_map(|q| {
                    q.blocks.iter().map(|b| SendItem {
                        send_id: q.item.send_id,
                        secret: q.item.secret.clone(),
                        block: b.clone(),
                    })
                })
                .collect();
            let results = client.send(send_items).await?.results;
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
            sent += done.len();
            refused_total += refused.len();
            // Not synced to disk on its own: if a crash forgets the removal, the item is sent
            // again and the receiver drops the duplicate; the next durable commit covers it.
            self.store.tx_unsynced(|tx| {
                done.iter().try_for_each(|n| tx.outbox_remove(*n))?;
                refused.iter().try_for_each(|(n, contact)| give_up(tx, *n, contact))
            })?;
        }
        self.keep_relay(client);
        Ok((sent, refused_total))
    }
}

/// What the outbox holds, in order; items queued by earlier versions bring their blocks in
/// their header. An item without blocks was damaged (every item is queued with at least one).
fn queued(tx: &Tx<'_>) -> Result<Vec<Queued>> {
    let items: Vec<OutboxRow<OutboxItem>> = tx.outbox()?;
    items
        .into_iter()
        .map(|(n, mut item, blocks)| {
            let blocks = blocks.unwrap_or_else(|| std::mem::take(&mut item.legacy_blocks));
            if blocks.is_empty() {
                return Err(tx.damaged(format!("outbox item {n} has no blocks")));
            }
            Ok(Queued { n, item, blocks })
        })
        .collect()
}

/// The relay refused the item: the contact's queue is gone (expired or deleted). Resending
/// cannot help, so it leaves the outbox and the conversation says so.
fn give_up(tx: &Tx<'_>, n: i64, contact: &str) -> Result<()> {
    tx.outbox_remove(n)?;
    let detail = "not delivered: the relay no longer has this contact's queue (expired or deleted); \
                  exchange a new invitation";
    tx.append_timeline(
        contact,
        &Entry::Rejected { from: "the relay".into(), detail: detail.into(), at: now_ms() },
    )
}

/// Groups items so each request carries at most `MAX_BATCH` blocks (a larger item goes alone
/// and the relay refuses it with a clear error).
fn batches(items: &[Queued]) -> Vec<&[Queued]> {
    let mut out = Vec::new();
    let (mut start, mut blocks) = (0, 0);
    for (i, q) in items.iter().enumerate() {
        if blocks > 0 && blocks + q.blocks.len() > MAX_BATCH {
            out.push(&items[start..i]);
            (start, blocks) = (i, 0);
        }
        blocks += q.blocks.len();
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use backchannel_proto::crypto::SecretKey;
    use backchannel_proto::message::Route;
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
        let items = store.tx(|tx| queued(tx)).unwrap();
        let got: Vec<(&str, &Vec<Vec<u8>>)> =
            items.iter().map(|q| (q.item.contact.as_str(), &q.blocks)).collect();
        assert_eq!(got, [("c1", &old), ("c2", &new)]);
        store.execute_raw("UPDATE outbox SET blocks = NULL WHERE n = 2");
        let err = store.tx(|tx| queued(tx).map(drop)).unwrap_err();
        assert!(err.to_string().contains("outbox item 2 has no blocks"), "{err}");
    }

    fn base64_no_pad(b: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(b)
    }
}
