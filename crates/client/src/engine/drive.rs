//! The one driver. A turn delivers the outbox, takes in what arrived (fetched on request, or
//! pushed over live links), runs the tasks receiving asked for, deletes notes past their
//! channel's retention and forgets expired invitations, then delivers what all that queued.
//! `sync` is one turn with fetching; `run` keeps links open and turns as blocks arrive.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Instant;

use backchannel_party::Event;
use backchannel_party::channel::Channel;
use backchannel_wire::{Delivered, MAX_BATCH, RelayAddress};
use serde::{Deserialize, Serialize};

use super::invite::PendingRecord;
use super::links::{Grouped, LinkChange, Links, group};
use super::receive::Receiver;
use super::routes::InboxRef;
use super::tasks::TaskTrouble;
use super::{Shared, now_ms};
use crate::error::{ClientError, Result};
use crate::net::RelayClient;
use crate::store::Tx;

/// What subscribers of an engine hear: everything the party's rules recorded, and what the
/// engine itself has to say about its links and work.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "update", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "most updates carry an entry, made once and cloned to each subscriber: a box would only add an allocation"
)]
pub enum Update {
    /// An entry, a duplicate dropped, a gap closed.
    Party { event: Event },
    /// A live link to a relay came up, or went down (the driver retries by itself).
    Link { relay: String, up: bool, detail: Option<String> },
    /// Work that could not be done now (it says whether it is retried).
    Task { trouble: TaskTrouble },
    /// Something the driver met and went on past (a relay refusing a queue, a full disk).
    Trouble { error: ClientError },
    /// A route to or from a contact went up or down.
    Route { contact: String, relay: String, direction: super::Direction, state: super::RouteState },
}

/// Totals of one turn.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub sent: usize,
    pub still_queued: usize,
    /// Items the relay refused that wait for the user (`outbox`).
    pub held: usize,
    /// What the user should see, in the order it happened.
    pub events: Vec<backchannel_party::Event>,
    /// Relays that could not be reached (what is queued for them stays queued).
    pub unreachable: Vec<String>,
    /// Queues a relay refused to read (e.g. expired after its TTL); the others went on.
    pub problems: Vec<String>,
    pub tasks: Vec<TaskTrouble>,
}

/// The driver's own state between turns.
#[derive(Default)]
pub(crate) struct Driver {
    receiver: Receiver,
}

/// Every queue we read: each contact's inboxes (until deleted) and each unanswered
/// invitation's.
fn inboxes(tx: &Tx<'_>, contacts: &mut super::Contacts) -> Result<Vec<InboxRef>> {
    let ids: Vec<String> = contacts.iter().map(|(id, _)| id.clone()).collect();
    let mut out = Vec::new();
    for id in ids {
        let Some(c) = contacts.get(&id) else { continue };
        let list: Vec<super::Inbox> = c.inboxes.iter().filter(|i| !i.released).cloned().collect();
        // Inboxes of earlier versions are sealed under the session's key: load it only then.
        let session_key = match list.iter().any(|i| i.block_key().is_none()) {
            true => Some(contacts.session(tx, &id)?.recv_block_key.clone()),
            false => None,
        };
        for inbox in list {
            let Some(key) = inbox.block_key().cloned().or_else(|| session_key.clone()) else { continue };
            out.push(InboxRef { id: id.clone(), inbox, key });
        }
    }
    for (id, p) in tx.load_all::<PendingRecord>()? {
        let first = (p.0.route.clone(), p.0.recv_id, p.0.recv_secret.clone());
        let more = p.0.more.iter().map(|q| (q.route.clone(), q.recv_id, q.recv_secret.clone()));
        for (route, recv_id, secret) in std::iter::once(first).chain(more) {
            let inbox = super::Inbox::new(route.relay.clone(), recv_id, secret, &route);
            out.push(InboxRef { id: id.clone(), inbox, key: route.block_key });
        }
    }
    Ok(out)
}

impl Shared {
    pub(crate) fn inboxes(&self) -> Result<Vec<InboxRef>> {
        self.with_core(inboxes)
    }

    /// Receives one burst of blocks of one inbox in one transaction; returns the relay seqs
    /// to acknowledge and what it recorded.
    fn take_in(
        &self,
        rx: &mut Receiver,
        inbox: &InboxRef,
        items: Vec<Delivered>,
    ) -> Result<(Vec<u64>, Vec<Event>)> {
        let (received, events) = self.batch_events(|b| b.receive_blocks(rx, inbox, items))?;
        Ok((received.acks, events))
    }

    /// One turn, fetching: delivers the outbox, fetches, opens and acknowledges everything
    /// waiting, runs tasks, applies retention, and delivers what that queued.
    pub async fn sync_once(&self) -> Result<SyncReport> {
        let flushed = self.flush().await?;
        let mut report = SyncReport {
            sent: flushed.sent,
            still_queued: flushed.still_queued,
            held: flushed.held,
            unreachable: flushed.unreachable,
            ..SyncReport::default()
        };
        let mut by_relay: Vec<(RelayAddress, Vec<InboxRef>)> = Vec::new();
        for inbox in self.inboxes()? {
            match by_relay.iter_mut().find(|(r, _)| *r == inbox.inbox.relay) {
                Some((_, list)) => list.push(inbox),
                None => by_relay.push((inbox.inbox.relay.clone(), vec![inbox])),
            }
        }
        for (relay, inboxes) in by_relay {
            self.fetch_relay(&relay, &inboxes, &mut report).await?;
        }
        self.after_receiving(&mut report).await?;
        Ok(report)
    }

    async fn fetch_relay(
        &self,
        relay: &RelayAddress,
        inboxes: &[InboxRef],
        report: &mut SyncReport,
    ) -> Result<()> {
        let mut client = match self.pool.take(relay).await {
            Ok(c) => c,
            Err(e) => {
                if !report.unreachable.iter().any(|u| u.contains(&relay.to_string())) {
                    report.unreachable.push(e.to_string());
                }
                return Ok(());
            }
        };
        for inbox in inboxes {
            let mut rx = Receiver::default();
            match self.drain(&mut client, &mut rx, inbox, &mut report.events).await {
                Ok(()) => {}
                // One queue the relay no longer has must not stop the others.
                Err(e @ (ClientError::RelayRefused { .. } | ClientError::RelayProtocol { .. })) => {
                    report.problems.push(e.to_string());
                }
                Err(e) if e.relay_down() => {
                    report.unreachable.push(e.to_string());
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        self.pool.keep(client).await;
        Ok(())
    }

    /// Fetches an inbox page by page. The relay's seqs must grow (a relay that repeats them
    /// would keep us here forever): anything else ends the drain and is reported.
    async fn drain(
        &self,
        client: &mut RelayClient,
        rx: &mut Receiver,
        inbox: &InboxRef,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let (id, secret) = (&inbox.inbox.recv_id, &inbox.inbox.recv_secret);
        let mut after = 0;
        loop {
            let batch = client.fetch_after(id, secret, after, MAX_BATCH).await?;
            let Some(last) = batch.items.last().map(|i| i.seq) else { return Ok(()) };
            let mut previous = after;
            if batch.items.iter().any(|i| std::mem::replace(&mut previous, i.seq) >= i.seq) {
                return Err(ClientError::RelayProtocol {
                    relay: inbox.inbox.relay.to_string(),
                    why: "it handed out blocks out of order or again".into(),
                });
            }
            // Page on past what stays unacknowledged (pieces of frames still incomplete).
            after = last;
            let (acks, new_events) = self.take_in(rx, inbox, batch.items)?;
            events.extend(new_events);
            if !acks.is_empty() {
                client.ack(id, secret, acks).await?;
            }
        }
    }

    /// The rest of a turn, after receiving.
    async fn after_receiving(&self, report: &mut SyncReport) -> Result<()> {
        report.tasks = self.run_tasks().await?;
        report.problems.extend(self.run_route_work().await?);
        self.release_inboxes().await?;
        self.keep_lines().await?;
        self.expire_notes()?;
        // What receiving queued (introductions, phase moves, waiting notes) goes out now.
        let again = self.flush().await?;
        report.sent += again.sent;
        report.still_queued = again.still_queued;
        report.held = again.held;
        // A relay that cannot delete a dead invitation's queue now is asked again next turn.
        let _ = self.drop_expired_invitations().await;
        Ok(())
    }

    /// Deletes channel notes older than their phase's retention allows.
    pub fn expire_notes(&self) -> Result<usize> {
        let now = now_ms();
        self.write(|tx, _| {
            let mut removed = 0;
            for (_, channel) in tx.load_all::<Channel>()? {
                if channel.state.policy().retention_secs.is_none() {
                    continue;
                }
                for (n, entry) in tx.timeline_numbered(&channel.conversation().key)? {
                    if channel.expired(now, &entry) {
                        tx.timeline_remove(n)?;
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
    }

    /// Runs the driver until `shutdown` resolves: live links to every relay we have inboxes
    /// on, blocks taken in as they are pushed, and the same turn's upkeep every few seconds.
    pub async fn run(&self, driver: &mut Driver, shutdown: impl Future<Output = ()>) -> Result<()> {
        self.driving.store(true, Ordering::SeqCst);
        let out = self.run_inner(driver, shutdown).await;
        self.driving.store(false, Ordering::SeqCst);
        out
    }

    async fn run_inner(&self, driver: &mut Driver, shutdown: impl Future<Output = ()>) -> Result<()> {
        let config = self.config();
        let (mut links, mut pushed) = Links::new();
        let mut inboxes = self.inboxes()?;
        let mut tick = tokio::time::interval(config.refresh);
        // Heartbeats, path tests, unconfirmed hotline notes and route states: checked often,
        // each acts only when due.
        let mut lines = tokio::time::interval(super::hotline::LINE_TICK);
        let mut last_upkeep = Instant::now() - config.upkeep;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = tick.tick() => {
                    inboxes = self.inboxes()?;
                    self.report_links(links.refresh(&inboxes).await);
                    if last_upkeep.elapsed() >= config.upkeep {
                        last_upkeep = Instant::now();
                        self.upkeep().await;
                    }
                    self.flush_reporting().await;
                }
                () = self.wake.notified() => {
                    // A command may have scheduled route work (a host allowed or added).
                    if let Err(error) = self.run_route_work().await {
                        self.tell(Update::Trouble { error });
                    }
                    self.flush_reporting().await;
                }
                _ = lines.tick() => {
                    if let Err(error) = self.keep_lines().await {
                        self.tell(Update::Trouble { error });
                    }
                }
                Some(first) = pushed.recv() => {
                    // Take everything already pushed, so a burst is committed once.
                    let mut burst = vec![first];
                    while let Ok(more) = pushed.try_recv() {
                        burst.push(more);
                    }
                    self.take_in_pushed(driver, &mut links, &mut inboxes, burst).await?;
                    self.flush_reporting().await;
                }
            }
        }
    }

    async fn take_in_pushed(
        &self,
        driver: &mut Driver,
        links: &mut Links,
        inboxes: &mut Vec<InboxRef>,
        burst: Vec<(String, super::links::Incoming)>,
    ) -> Result<()> {
        let mut received_tasks = false;
        for (relay, incoming) in group(burst) {
            match incoming {
                Grouped::Blocks(recv_id, items) => {
                    if !inboxes.iter().any(|i| i.inbox.recv_id == recv_id) {
                        *inboxes = self.inboxes()?;
                    }
                    let Some(inbox) = inboxes.iter().find(|i| i.inbox.recv_id == recv_id).cloned() else {
                        continue;
                    };
                    match self.take_in(&mut driver.receiver, &inbox, items) {
                        Ok((acks, _)) if !acks.is_empty() => links.ack(&relay, recv_id, acks).await,
                        Ok(_) => {}
                        // Nothing is acknowledged: the relay pushes it again after a reconnect.
                        Err(error) => self.tell(Update::Trouble { error }),
                    }
                    received_tasks = true;
                }
                Grouped::Notice(text) => self.tell(Update::Link { relay, up: true, detail: Some(text) }),
                Grouped::Refused(recv_id, text) => {
                    links.unfollow(&relay, &recv_id);
                    self.tell(Update::Link { relay, up: true, detail: Some(text) });
                }
                Grouped::Closed(why) => {
                    links.closed(&relay);
                    self.tell(Update::Link { relay, up: false, detail: Some(why) });
                }
            }
        }
        if received_tasks {
            self.run_tasks_reporting().await;
        }
        Ok(())
    }

    fn report_links(&self, changes: Vec<LinkChange>) {
        for change in changes {
            self.tell(match change {
                LinkChange::Up(relay) => Update::Link { relay, up: true, detail: None },
                LinkChange::Down(relay, why) => Update::Link { relay, up: false, detail: Some(why) },
            });
        }
    }

    /// Tasks and route work the rules or receiving asked for, and inboxes to delete.
    async fn run_tasks_reporting(&self) {
        match self.run_tasks().await {
            Ok(troubles) => troubles.into_iter().for_each(|trouble| self.tell(Update::Task { trouble })),
            Err(error) => self.tell(Update::Trouble { error }),
        }
        if let Err(error) = self.run_route_work().await {
            self.tell(Update::Trouble { error });
        }
        if let Err(error) = self.release_inboxes().await {
            self.tell(Update::Trouble { error });
        }
    }

    /// Delivers the outbox; a relay that is down shows as its link going down, and what
    /// waits for it goes at a later turn.
    async fn flush_reporting(&self) {
        if let Err(error) = self.flush().await {
            self.tell(Update::Trouble { error });
        }
    }

    /// The slower part of a turn: tasks, route work, retention, dead invitations.
    async fn upkeep(&self) {
        self.run_tasks_reporting().await;
        if let Err(error) = self.expire_notes() {
            self.tell(Update::Trouble { error });
        }
        let _ = self.drop_expired_invitations().await;
    }
}
