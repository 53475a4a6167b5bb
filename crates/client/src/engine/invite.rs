//! Invitations: making one (a fresh receive queue plus keys, as text) and accepting one (our
//! own queue, an outbound session, and a Hello in the outbox).

use backchannel_party::Entry;
use backchannel_party::event::Conversation;
use backchannel_proto::crypto::SecretKey;
use backchannel_proto::identity::safety_number;
use backchannel_proto::invitation::{self, Invitation, PendingInvitation, PendingQueue};
use backchannel_proto::message::{ChannelId, Route};
use backchannel_proto::session;
use backchannel_wire::{RelayAddress, hex_encode};
use serde::{Deserialize, Serialize};

use super::item::OutboxItem;
use super::routes::OutRoute;
use super::{Batch, ContactRecord, ContactView, Inbox, Shared, now_ms};
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
    let route = Route {
        relay: relay.clone(),
        block_size: created.block_size as u32,
        send_id: created.send_id,
        send_secret,
        block_key: SecretKey::random(),
    };
    Ok((Inbox::new(relay, created.recv_id, recv_secret, &route), route))
}

fn no_hosts() -> ClientError {
    ClientError::InvalidInput { what: "relays".into(), why: "no host given".into() }
}

/// Each host once, in the order given.
fn distinct(relays: &[RelayAddress]) -> Vec<RelayAddress> {
    let mut out: Vec<RelayAddress> = Vec::new();
    for r in relays {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

impl Shared {
    pub(crate) async fn inbox_on(&self, relay: &RelayAddress) -> Result<(Inbox, Route)> {
        let mut client = self.pool.take(relay).await?;
        let made = new_inbox(&mut client).await;
        self.pool.keep(client).await;
        made
    }

    /// A fresh inbox on each host, or the first failure.
    async fn inboxes_on(&self, relays: &[RelayAddress]) -> Result<Vec<(Inbox, Route)>> {
        let mut made = Vec::new();
        for relay in distinct(relays) {
            made.push(self.inbox_on(&relay).await?);
        }
        Ok(made)
    }

    /// Makes a one-time invitation valid for `ttl_secs`, with a fresh queue on each of
    /// `relays` (the Hello that answers it comes over all of them).
    pub async fn invite(&self, relays: &[RelayAddress], ttl_secs: u64) -> Result<String> {
        if relays.is_empty() || relays.len() > 1 + invitation::MAX_MORE_ROUTES {
            let why = format!("an invitation names 1 to {} hosts", 1 + invitation::MAX_MORE_ROUTES);
            return Err(ClientError::InvalidInput { what: "relays".into(), why });
        }
        let mut made = self.inboxes_on(relays).await?.into_iter();
        let Some((inbox, route)) = made.next() else { return Err(no_hosts()) };
        let more: Vec<PendingQueue> = made
            .map(|(i, r)| PendingQueue { recv_id: i.recv_id, recv_secret: i.recv_secret, route: r })
            .collect();
        let expires_at = now_ms() / 1000 + ttl_secs;
        self.batch(|b| {
            let mut identity = b.identity()?;
            let (mut inv, mut pending) =
                invitation::create(&mut identity, route, inbox.recv_id, inbox.recv_secret, expires_at)?;
            inv.more_routes = more.iter().map(|q| q.route.clone()).collect();
            pending.more = more;
            b.save_identity(&identity)?;
            b.tx.save(&hex_encode(&pending.id), &PendingRecord(pending))?;
            Ok(inv.to_text())
        })
    }

    /// Accepts an invitation text: the contact exists at once, with an inbox of ours on each of
    /// `relays` (none given: the invitation's hosts), and the Hello that introduces us goes
    /// over every route of the invitation. If every one of them is gone from its host, the
    /// invitation was used already: the contact is forgotten and the user told.
    pub async fn accept(&self, text: &str, relays: &[RelayAddress]) -> Result<ContactView> {
        let inv = Invitation::from_text(text)?;
        inv.check_not_expired(now_ms() / 1000)?;
        let id = hex_encode(&inv.id);
        if inv.inviter.identity_key == self.me().identity_key {
            return Err(ClientError::OwnInvitation);
        }
        if self.read(|tx, _| tx.load::<AcceptedInvite>(&id))?.is_some() {
            return Err(ClientError::InvitationReused);
        }
        let theirs: Vec<Route> =
            std::iter::once(inv.route.clone()).chain(inv.more_routes.iter().cloned()).collect();
        let mut hosts = match relays {
            [] => theirs.iter().map(|r| r.relay.clone()).collect(),
            given => given.to_vec(),
        };
        // An inviter of an earlier version hears of one reply route only.
        if inv.version < 2 {
            hosts.truncate(1);
        }
        let ours = self.inboxes_on(&hosts).await?;
        for (_, reply) in &ours {
            if let Some(r) =
                theirs.iter().find(|r| r.relay == reply.relay && r.block_size != reply.block_size)
            {
                let why = format!(
                    "it says its relay uses {}-byte blocks, the relay says {}; it was altered or made for another relay",
                    r.block_size, reply.block_size
                );
                return Err(ClientError::Invitation { why });
            }
        }
        let view = self.batch(|b| b.accepted(&id, inv, theirs, ours))?;
        let sent = self.flush_where(|item| item.hello && item.contact == id).await?;
        if sent.refused > 0 && sent.sent == 0 && sent.still_queued == 0 {
            self.forget_contact(&id).await?;
            return Err(ClientError::InvitationUsed);
        }
        Ok(view)
    }

    /// Undoes an accept whose invitation was used already: the contact, its session and
    /// conversation, what it queued, and our inboxes for it (deleted at their hosts).
    async fn forget_contact(&self, id: &str) -> Result<()> {
        let inboxes = self.batch(|b| {
            let inboxes = b.contacts.get(id).map(|c| c.inboxes.clone()).unwrap_or_default();
            for (n, item, _) in b.tx.outbox::<OutboxItem>()? {
                if item.contact == id {
                    b.tx.outbox_remove(n)?;
                }
            }
            for (n, _) in b.tx.timeline_numbered::<serde_json::Value>(id)? {
                b.tx.timeline_remove(n)?;
            }
            b.tx.remove::<ContactRecord>(id)?;
            b.tx.remove::<super::contacts::SessionRecord>(id)?;
            b.tx.remove::<AcceptedInvite>(id)?;
            b.contacts.reload(b.tx, id)?;
            Ok(inboxes)
        })?;
        for inbox in inboxes {
            // Best effort: an inbox left behind expires at its host.
            self.delete_queue(&inbox.relay, &inbox.recv_id, &inbox.recv_secret).await;
        }
        Ok(())
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
            // Forget the invitation only once its queues are gone from their relays too.
            let queues = std::iter::once((&p.0.route.relay, &p.0.recv_id, &p.0.recv_secret))
                .chain(p.0.more.iter().map(|q| (&q.route.relay, &q.recv_id, &q.recv_secret)));
            let mut gone = true;
            for (relay, recv_id, secret) in queues {
                gone &= self.delete_queue(relay, recv_id, secret).await;
            }
            if gone {
                self.write(|tx, _| tx.remove::<PendingRecord>(id))?;
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

impl Shared {
    /// Deletes one of our queues at its host; true once it is gone (deleted now, or already).
    pub(crate) async fn delete_queue(
        &self,
        relay: &RelayAddress,
        recv_id: &backchannel_wire::QueueId,
        secret: &backchannel_wire::QueueSecret,
    ) -> bool {
        let Ok(mut client) = self.pool.take(relay).await else { return false };
        match client.delete_queue(recv_id, secret).await {
            Ok(()) => {
                self.pool.keep(client).await;
                true
            }
            Err(ClientError::RelayRefused { .. }) => true, // already expired there
            Err(_) => false,
        }
    }
}

impl Batch<'_, '_> {
    /// The accepting side of a handshake, in one transaction: session, contact (our inboxes,
    /// the invitation's routes), and the Hello queued for each of those routes.
    fn accepted(
        &mut self,
        id: &str,
        inv: Invitation,
        theirs: Vec<Route>,
        ours: Vec<(Inbox, Route)>,
    ) -> Result<ContactView> {
        let identity = self.identity()?;
        let control = inv.version >= 2;
        let mut replies = ours.iter().map(|(_, r)| r.clone());
        let reply = replies.next().ok_or_else(no_hosts)?;
        let more = control.then(|| replies.collect());
        let (session, hello) = session::accept_with(inv, &identity, reply, more, self.now_ms)?;
        let card = session.peer.clone();
        let inboxes = ours.into_iter().map(|(i, _)| i).collect();
        let mut contact = ContactRecord::new(
            card.clone(),
            inboxes,
            theirs.iter().cloned().map(OutRoute::new).collect(),
            self.now_ms,
        );
        contact.lines.control = control;
        contact.lines.version = 1;
        contact.tracker(ChannelId::DIRECT);
        self.tx.save(id, &AcceptedInvite(self.now_ms))?;
        self.contacts.insert(id.to_owned(), contact, Some(session));
        self.touch_session(id);
        let entry = Entry::Joined {
            from: card.name.clone(),
            at: self.now_ms,
            side: Some(card.side.clone()),
            safety_number: Some(safety_number(self.me, &card)),
        };
        self.tx.append_timeline(&Conversation::contact(id, &card.name).key, &entry)?;
        // The same frame over every route: the inviter takes in the first copy to arrive.
        for route in &theirs {
            let blocks = route.seal_blocks(&hello.frame)?.1;
            self.tx.outbox_push(&OutboxItem::hello(id, route), &blocks)?;
        }
        // The Hello goes first; what waited for this party (a channel introduction) follows.
        self.release_waiting(&card.party())?;
        let record = self.contacts.get(id).ok_or_else(|| self.tx.damaged("contact vanished".into()))?;
        Ok(ContactView::new(self.me, record, self.now_ms, None))
    }
}
