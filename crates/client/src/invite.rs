//! Invitations: making one (a fresh receive queue plus keys, as text) and accepting one
//! (our own queue, an outbound session, and a Hello in the outbox).

use backchannel_proto::crypto::SecretKey;
use backchannel_proto::invitation::{self, Invitation, PendingInvitation};
use backchannel_proto::message::{ChannelId, Route};
use backchannel_proto::session;
use backchannel_wire::{RelayAddress, hex_encode};

use crate::error::{ClientError, Result};
use crate::model::{
    ACCEPTED, CONTACT, ContactRecord, ContactView, Entry, IDENTITY, Inbox, OutboxItem, PENDING,
};
use crate::party::{Party, load_identity, now_ms};
use crate::transport::RelayClient;

impl Party {
    /// Makes a one-time invitation valid for `ttl_secs`, with a fresh queue on `relay`.
    pub async fn invite(&mut self, relay: &RelayAddress, ttl_secs: u64) -> Result<String> {
        let mut client = self.take_relay(relay).await?;
        let (inbox, route) = new_inbox(&mut client).await?;
        self.keep_relay(client);
        let expires_at = now_ms() / 1000 + ttl_secs;
        self.store.tx(|tx| {
            let mut identity = load_identity(tx)?;
            let (inv, pending) = invitation::create(
                &mut identity,
                route,
                inbox.recv_id,
                inbox.recv_secret.clone(),
                expires_at,
            )?;
            tx.put(IDENTITY.0, IDENTITY.1, &identity.pickle())?;
            tx.put(PENDING, &hex_encode(&pending.id), &pending)?;
            Ok(inv.to_text())
        })
    }

    /// Accepts an invitation text: the contact exists at once, and the Hello that introduces
    /// us waits in the outbox (sent now if the relay answers).
    pub async fn accept(&mut self, text: &str) -> Result<ContactView> {
        let inv = Invitation::from_text(text)?;
        inv.check_not_expired(now_ms() / 1000)?;
        let id = hex_encode(&inv.id);
        let me = self.me()?;
        if inv.inviter.identity_key == me.identity_key {
            return Err(ClientError::OwnInvitation);
        }
        if self.store.tx(|tx| tx.get::<u64>(ACCEPTED, &id))?.is_some() {
            return Err(ClientError::InvitationReused);
        }
        let mut client = self.take_relay(&inv.route.relay).await?;
        let (inbox, reply) = new_inbox(&mut client).await?;
        self.keep_relay(client);
        let view = self.store.tx(|tx| {
            let identity = load_identity(tx)?;
            let now = now_ms();
            let (session, hello) = session::accept(inv, &identity, reply, now)?;
            let route = session.send_route.clone();
            let mut contact = ContactRecord {
                card: session.peer.clone(),
                verified: false,
                session: session.pickle(),
                inbox,
                trackers: Vec::new(),
                added_at: now,
            };
            contact.tracker(ChannelId::DIRECT);
            tx.put(CONTACT, &id, &contact)?;
            crate::channels::index_contact(tx, &id, &contact.card)?;
            tx.put(ACCEPTED, &id, &now)?;
            tx.append_timeline(&id, &Entry::Joined { from: contact.card.name.clone(), at: now })?;
            tx.outbox_push(&OutboxItem::new(&id, &route), &hello.blocks)?;
            // The Hello goes first; what waited for this party (a channel introduction) follows.
            crate::channels::release_waiting(tx, &contact.card.identity_key)?;
            Ok(ContactView::new(&identity.card(), &contact))
        })?;
        let _ = self.flush_outbox().await;
        Ok(view)
    }

    /// Forgets invitations that expired more than a day ago and deletes their relay queues.
    pub(crate) async fn drop_expired_invitations(&mut self) -> Result<usize> {
        let cutoff = (now_ms() / 1000).saturating_sub(24 * 3600);
        let expired: Vec<(String, PendingInvitation)> = self
            .store
            .tx(|tx| tx.all::<PendingInvitation>(PENDING))?
            .into_iter()
            .filter(|(_, p)| p.expires_at < cutoff)
            .collect();
        let mut dropped = 0;
        for (id, p) in &expired {
            // Forget the invitation only once its queue is gone from the relay too.
            let Ok(mut relay) = self.take_relay(&p.route.relay).await else { continue };
            match relay.delete_queue(&p.recv_id, &p.recv_secret).await {
                Ok(()) => self.keep_relay(relay),
                Err(ClientError::RelayRefused { .. }) => {} // already expired there
                Err(_) => continue,
            }
            self.store.tx(|tx| tx.delete(PENDING, id))?;
            dropped += 1;
        }
        Ok(dropped)
    }
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
