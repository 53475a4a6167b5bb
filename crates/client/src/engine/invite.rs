//! Invitations: making one (a fresh receive queue plus keys, as text) and accepting one (our
//! own queue, an outbound session, and a Hello in the outbox).

use backchannel_party::Entry;
use backchannel_party::event::Conversation;
use backchannel_proto::crypto::SecretKey;
use backchannel_proto::identity::safety_number;
use backchannel_proto::invitation::{self, Invitation, PendingInvitation};
use backchannel_proto::message::{ChannelId, Route};
use backchannel_proto::session;
use backchannel_wire::{RelayAddress, hex_encode};
use serde::{Deserialize, Serialize};

use super::outbox::OutboxItem;
use super::{ContactRecord, ContactView, Inbox, Shared, now_ms};
use crate::error::{ClientError, Result};
use crate::net::RelayClient;
use crate::store::Record;

/// An invitation of ours not yet answered.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct PendingRecord(pub PendingInvitation);

impl Record for PendingRecord {
    const KIND: &'static str = "pending";
}

/// An invitation we accepted (or answered), by id, with when: used once.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct AcceptedInvite(pub u64);

impl Record for AcceptedInvite {
    const KIND: &'static str = "accepted";
}

/// Unanswered invitations, by expiry.
pub(crate) fn pending(tx: &crate::store::Tx<'_>, _: &super::Contacts) -> Result<Vec<u64>> {
    Ok(tx.load_all::<PendingRecord>()?.into_iter().map(|(_, p)| p.0.expires_at).collect())
}

/// Creates a receive queue on `relay`; returns it and the route others use to reach it.
async fn new_inbox(client: &mut RelayClient) -> Result<(Inbox, Route)> {
    let relay = client.address().clone();
    let (created, recv_secret, send_secret) = client.create_queue().await?;
    let inbox = Inbox { relay: relay.clone(), recv_id: created.recv_id, recv_secret };
    let route = Route {
        relay,
        block_size: created.block_size as u32,
        send_id: created.send_id,
        send_secret,
        block_key: SecretKey::random(),
    };
    Ok((inbox, route))
}

impl Shared {
    async fn inbox_on(&self, relay: &RelayAddress) -> Result<(Inbox, Route)> {
        let mut client = self.pool.take(relay).await?;
        let made = new_inbox(&mut client).await;
        self.pool.keep(client).await;
        made
    }

    /// Makes a one-time invitation valid for `ttl_secs`, with a fresh queue on `relay`.
    pub async fn invite(&self, relay: &RelayAddress, ttl_secs: u64) -> Result<String> {
        let (inbox, route) = self.inbox_on(relay).await?;
        let expires_at = now_ms() / 1000 + ttl_secs;
        self.batch(|b| {
            let mut identity = b.identity()?;
            let (inv, pending) = invitation::create(
                &mut identity,
                route,
                inbox.recv_id,
                inbox.recv_secret.clone(),
                expires_at,
            )?;
            b.save_identity(&identity)?;
            b.tx.save(&hex_encode(&pending.id), &PendingRecord(pending))?;
            Ok(inv.to_text())
        })
    }

    /// Accepts an invitation text: the contact exists at once, and the Hello that introduces
    /// us waits in the outbox.
    pub async fn accept(&self, text: &str) -> Result<ContactView> {
        let inv = Invitation::from_text(text)?;
        inv.check_not_expired(now_ms() / 1000)?;
        let id = hex_encode(&inv.id);
        if inv.inviter.identity_key == self.me().identity_key {
            return Err(ClientError::OwnInvitation);
        }
        if self.read(|tx, _| tx.load::<AcceptedInvite>(&id))?.is_some() {
            return Err(ClientError::InvitationReused);
        }
        let (inbox, reply) = self.inbox_on(&inv.route.relay).await?;
        if reply.block_size != inv.route.block_size {
            let why = format!(
                "it says its relay uses {}-byte blocks, the relay says {}; it was altered or made for another relay",
                inv.route.block_size, reply.block_size
            );
            return Err(ClientError::Invitation { why });
        }
        self.batch(|b| {
            let identity = b.identity()?;
            let (session, hello) = session::accept(inv, &identity, reply, b.now_ms)?;
            let route = session.send_route.clone();
            let card = session.peer.clone();
            let mut contact = ContactRecord::new(card.clone(), inbox, b.now_ms);
            contact.tracker(ChannelId::DIRECT);
            b.tx.save(&id, &AcceptedInvite(b.now_ms))?;
            b.contacts.insert(id.clone(), contact, Some(session));
            b.touch_session(&id);
            let entry = Entry::Joined {
                from: card.name.clone(),
                at: b.now_ms,
                side: Some(card.side.clone()),
                safety_number: Some(safety_number(b.me, &card)),
            };
            b.tx.append_timeline(&Conversation::contact(&id, &card.name).key, &entry)?;
            b.tx.outbox_push(&OutboxItem::new(&id, &route), &hello.blocks)?;
            // The Hello goes first; what waited for this party (a channel introduction) follows.
            b.release_waiting(&card.party())?;
            let record = b.contacts.get(&id).ok_or_else(|| b.tx.damaged("contact vanished".into()))?;
            Ok(ContactView::new(b.me, record))
        })
    }

    /// Forgets invitations that expired more than a grace period ago (a day) and deletes their
    /// relay queues.
    pub async fn drop_expired_invitations(&self) -> Result<usize> {
        let cutoff = (now_ms() / 1000).saturating_sub(self.config().invitation_grace_secs);
        let expired: Vec<(String, PendingRecord)> = self
            .read(|tx, _| tx.load_all::<PendingRecord>())?
            .into_iter()
            .filter(|(_, p)| p.0.expires_at < cutoff)
            .collect();
        let mut dropped = 0;
        for (id, p) in &expired {
            // Forget the invitation only once its queue is gone from the relay too.
            let Ok(mut relay) = self.pool.take(&p.0.route.relay).await else { continue };
            match relay.delete_queue(&p.0.recv_id, &p.0.recv_secret).await {
                Ok(()) => self.pool.keep(relay).await,
                Err(ClientError::RelayRefused { .. }) => {} // already expired there
                Err(_) => continue,
            }
            self.write(|tx, _| tx.remove::<PendingRecord>(id))?;
            dropped += 1;
        }
        Ok(dropped)
    }
}
