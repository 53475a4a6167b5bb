//! Control messages between two parties (routes, receipts, heartbeats, path tests): what we
//! do when one arrives, how we seal ours, and the network work routes need (fresh inboxes,
//! queues deleted once the contact has moved off them).

use backchannel_party::Why;
use backchannel_proto::block::FrameId;
use backchannel_proto::control::{Control, NEVER};
use backchannel_proto::message::{ChannelId, Kind, Message, Route};
use backchannel_wire::{QueueId, RelayAddress};
use serde::{Deserialize, Serialize};

use super::routes::InboxRef;
use super::routes::OutRoute;
use super::seal::Shape;
use super::{Batch, Shared, now_ms};
use crate::error::Result;
use crate::store::Record;

/// A duplicate that comes this long after the first copy is most likely a resend (its sender
/// missed our receipt): it is confirmed again.
pub(crate) const RECONFIRM_AFTER_MS: u64 = 2_000;

/// Route work waiting for the network, for one contact (by its id).
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct RotateRecord {
    /// Make a fresh inbox on each of these hosts; ours there until now retire.
    #[serde(default)]
    pub fresh: Vec<RelayAddress>,
    /// Add an inbox on each of these (nothing retires).
    #[serde(default)]
    pub add: Vec<RelayAddress>,
    /// Our inboxes on these retire.
    #[serde(default)]
    pub leave: Vec<RelayAddress>,
    /// Ask the contact to add inboxes on these, or to leave these.
    #[serde(default)]
    pub ask_join: Vec<RelayAddress>,
    #[serde(default)]
    pub ask_leave: Vec<RelayAddress>,
}

impl Record for RotateRecord {
    const KIND: &'static str = "rotate";
}

impl RotateRecord {
    /// After a handshake, the invitation's queues (a capability in a text) are replaced.
    pub fn fresh(relays: Vec<RelayAddress>) -> Self {
        Self { fresh: relays, ..Self::default() }
    }

    fn merge(&mut self, other: RotateRecord) {
        fn add(to: &mut Vec<RelayAddress>, from: Vec<RelayAddress>) {
            from.into_iter().for_each(|r| {
                if !to.contains(&r) {
                    to.push(r);
                }
            });
        }
        add(&mut self.fresh, other.fresh);
        add(&mut self.add, other.add);
        add(&mut self.leave, other.leave);
        add(&mut self.ask_join, other.ask_join);
        add(&mut self.ask_leave, other.ask_leave);
    }
}

/// Adds route work for contact `id` to what already waits.
pub(crate) fn schedule(tx: &crate::store::Tx<'_>, id: &str, work: RotateRecord) -> Result<()> {
    let mut record = tx.load::<RotateRecord>(id)?.unwrap_or_default();
    record.merge(work);
    tx.save(id, &record)
}

impl Batch<'_, '_> {
    /// Seals a control message for a contact that speaks them (others are sent none).
    pub fn seal_control(&mut self, id: &str, control: &Control, shape: Shape) -> Result<()> {
        let speaks = self.contacts.get(id).is_some_and(|c| c.lines.control);
        if speaks || matches!(control, Control::Routes { .. }) {
            self.seal_shaped(id, ChannelId::CONTROL, Kind::Control, &control.encode(), shape)?;
        }
        Ok(())
    }

    /// A note or channel message from `id` was taken in: confirm it, in one receipt per
    /// contact at the end of the burst.
    pub fn confirm_later(&mut self, id: &str, frame: &FrameId) -> Result<()> {
        if self.contacts.get(id).is_some_and(|c| c.lines.control) {
            self.tx.mark_seen(&receipted(id), frame, self.now_ms)?;
            self.receipts.entry(id.to_owned()).or_default().push(*frame);
        }
        Ok(())
    }

    /// A duplicate of a frame we confirmed, long after the first copy: its sender most likely
    /// missed our receipt and sent it again, so it is confirmed again.
    pub fn reconfirm(&mut self, id: &str, frame: &FrameId, first_seen: u64) -> Result<()> {
        let late = self.now_ms.saturating_sub(first_seen) > RECONFIRM_AFTER_MS;
        if late && self.tx.was_seen(&receipted(id), frame)? {
            self.receipts.entry(id.to_owned()).or_default().push(*frame);
        }
        Ok(())
    }

    /// Seals the receipts a burst gathered.
    pub fn send_receipts(&mut self) -> Result<()> {
        for (id, frames) in std::mem::take(&mut self.receipts) {
            for chunk in frames.chunks(backchannel_proto::control::MAX_RECEIPT) {
                let receipt = Control::Receipt { frames: chunk.to_vec() };
                self.seal_control(&id, &receipt, Shape::any())?;
            }
        }
        Ok(())
    }

    /// A control message from contact `id`, on `inbox`.
    pub fn on_control(&mut self, id: &str, inbox: &InboxRef, msg: &Message) -> Result<()> {
        let control = match Control::decode(&msg.body) {
            Ok(c) => c,
            Err(e) => return self.reject(id, Why::Message { fault: (&e).into() }),
        };
        let now = self.now_ms;
        let Some(contact) = self.contacts.get_mut(id) else { return Ok(()) };
        contact.lines.control = true;
        match control {
            Control::Routes { version, routes, join, leave } => {
                self.touch(id);
                return self.on_routes(id, version, routes, join, leave);
            }
            Control::RoutesAck { version } => {
                for i in contact.inboxes.iter_mut() {
                    if i.retired.is_some_and(|v| v <= version) {
                        i.released = true;
                    }
                }
            }
            Control::Receipt { frames } => {
                super::delivery::confirmed(self.tx, self.contacts, id, &frames, now)?;
            }
            Control::Heartbeat { interval_ms, heard } => {
                contact.lines.peer_interval_ms = Some(u64::from(interval_ms));
                for (send_id, ago) in heard.into_iter().filter(|(_, ago)| *ago != NEVER) {
                    if let Some(r) = contact.routes.iter_mut().find(|r| r.route.send_id == send_id) {
                        r.heard_ms = Some(now.saturating_sub(u64::from(ago)).max(r.heard_ms.unwrap_or(0)));
                    }
                }
            }
            Control::PathTest { nonce } => {
                self.touch(id);
                return match inbox.inbox.send_id() {
                    Some(via) => self.seal_control(id, &Control::PathEcho { nonce, via }, Shape::any()),
                    None => Ok(()),
                };
            }
            Control::PathEcho { nonce, via } => {
                if let Some(sent) = self.contacts.path_tests.remove(&nonce) {
                    let route = self
                        .contacts
                        .get_mut(id)
                        .and_then(|c| c.routes.iter_mut().find(|r| r.route.send_id == via));
                    if let Some(r) = route {
                        r.tested_ms = Some(now);
                        r.rtt_ms = Some(now.saturating_sub(sent));
                    }
                }
            }
        }
        self.touch(id);
        Ok(())
    }

    /// The contact's whole set of inboxes (a newer version than we hold replaces ours, keeping
    /// how each route did). Routes on hosts we neither use nor allowed wait for the user; if
    /// none of the new set is usable, the old routes stay in use and the version is not
    /// confirmed (so the contact keeps its old inboxes) until the user allows one.
    fn on_routes(
        &mut self,
        id: &str,
        version: u32,
        routes: Vec<Route>,
        join: Vec<RelayAddress>,
        leave: Vec<RelayAddress>,
    ) -> Result<()> {
        let Some(c) = self.contacts.get(id) else { return Ok(()) };
        let name = c.card.name.clone();
        if version <= c.lines.peer_version {
            // A copy of what we took (our confirmation may have been lost): confirm again.
            if version == c.lines.peer_version && c.lines.unconfirmed.is_none() {
                return self.seal_control(id, &Control::RoutesAck { version }, Shape::all());
            }
            return Ok(());
        }
        let mut new = Vec::new();
        let mut asks = Vec::new();
        for route in routes {
            let mut out = c
                .routes
                .iter()
                .find(|r| r.route.send_id == route.send_id)
                .cloned()
                .unwrap_or_else(|| OutRoute::new(route.clone()));
            out.route = route;
            out.needs_allow = !super::relays::known(self.tx, self.contacts, &out.route.relay.to_string())?;
            if out.needs_allow {
                asks.push(out.route.relay.to_string());
            }
            new.push(out);
        }
        let usable = new.iter().any(OutRoute::usable);
        let Some(c) = self.contacts.get_mut(id) else { return Ok(()) };
        c.lines.peer_version = version;
        if usable {
            c.routes = new;
            c.lines.unconfirmed = None;
        } else {
            let set: Vec<QueueId> = new.iter().map(|n| n.route.send_id).collect();
            c.routes.retain(|r| !set.contains(&r.route.send_id));
            c.routes.extend(new);
            c.lines.unconfirmed = Some((version, set));
        }
        let ours: Vec<RelayAddress> =
            c.inboxes.iter().filter(|i| i.current()).map(|i| i.relay.clone()).collect();
        let theirs: Vec<RelayAddress> =
            c.routes.iter().filter(|r| r.usable()).map(|r| r.route.relay.clone()).collect();
        self.touch(id);
        for relay in asks {
            self.reject(id, Why::RouteNeedsAllow { name: name.clone(), relay })?;
        }
        let mut work = RotateRecord::default();
        for relay in join.into_iter().filter(|r| !ours.contains(r)) {
            match super::relays::known(self.tx, self.contacts, &relay.to_string())? {
                true => work.add.push(relay),
                false => {
                    self.reject(id, Why::RouteNeedsAllow { name: name.clone(), relay: relay.to_string() })?;
                    if let Some(c) = self.contacts.get_mut(id) {
                        c.lines.asked_join.push(relay);
                    }
                }
            }
        }
        for relay in leave.into_iter().filter(|r| ours.contains(r)) {
            // Never left with no inbox at all: move to one of the hosts the contact is on.
            let elsewhere = theirs.iter().find(|t| **t != relay);
            if let Some(elsewhere) =
                elsewhere.filter(|_| ours.iter().all(|o| *o == relay) && work.add.is_empty())
            {
                work.add.push(elsewhere.clone());
            }
            work.leave.push(relay);
        }
        if !(work.add.is_empty() && work.leave.is_empty()) {
            schedule(self.tx, id, work)?;
        }
        match usable {
            true => self.seal_control(id, &Control::RoutesAck { version }, Shape::all()),
            false => Ok(()),
        }
    }

    /// Our current inboxes for `id`, announced as a new version of our routes.
    pub fn announce_routes(
        &mut self,
        id: &str,
        join: Vec<RelayAddress>,
        leave: Vec<RelayAddress>,
    ) -> Result<()> {
        let Some(c) = self.contacts.get_mut(id) else { return Ok(()) };
        c.lines.version += 1;
        let version = c.lines.version;
        let routes = c.inboxes.iter().filter(|i| i.current()).filter_map(|i| i.route.clone()).collect();
        self.touch(id);
        self.seal_control(id, &Control::Routes { version, routes, join, leave }, Shape::all())
    }

    /// The user allowed `relay`: routes waiting for it are used, and a routes version that
    /// waited is confirmed.
    pub fn routes_allowed(&mut self, relay: &str) -> Result<()> {
        let ids: Vec<String> = self.contacts.iter().map(|(id, _)| id.clone()).collect();
        for id in ids {
            let Some(c) = self.contacts.get_mut(&id) else { continue };
            let asked = c.lines.asked_join.iter().position(|r| r.to_string() == relay);
            if let Some(i) = asked {
                let host = c.lines.asked_join.remove(i);
                self.touch(&id);
                schedule(self.tx, &id, RotateRecord { add: vec![host], ..RotateRecord::default() })?;
            }
            let Some(c) = self.contacts.get_mut(&id) else { continue };
            let mut changed = false;
            for r in c.routes.iter_mut().filter(|r| r.needs_allow && r.route.relay.to_string() == relay) {
                r.needs_allow = false;
                changed = true;
            }
            if !changed {
                continue;
            }
            let waited = c.lines.unconfirmed.take();
            if let Some((_, set)) = &waited {
                // The version that waited replaces the old routes now.
                c.routes.retain(|r| set.contains(&r.route.send_id));
            }
            self.touch(&id);
            if let Some((version, _)) = waited {
                self.seal_control(&id, &Control::RoutesAck { version }, Shape::all())?;
            }
        }
        Ok(())
    }
}

impl Shared {
    /// `contact NAME add-relay`: the work is scheduled and run at once (a host that is down
    /// leaves it for the next turn).
    pub async fn add_relay(&self, name: &str, relay: &RelayAddress) -> Result<()> {
        self.batch(|b| {
            let id = b.contacts.find(name)?;
            super::relays::allow(b.tx, &relay.to_string())?;
            let c = b.contacts.get(&id).ok_or_else(|| b.tx.damaged("contact vanished".into()))?;
            if c.inboxes.iter().any(|i| i.current() && i.relay == *relay) {
                return Ok(());
            }
            let work = RotateRecord {
                add: vec![relay.clone()],
                ask_join: vec![relay.clone()],
                ..RotateRecord::default()
            };
            schedule(b.tx, &id, work)
        })?;
        let trouble = self.run_route_work().await?;
        match trouble.into_iter().next() {
            Some(why) => Err(crate::error::ClientError::RelayUnreachable { relay: relay.to_string(), why }),
            None => Ok(()),
        }
    }

    /// `contact NAME drop-relay`: our inboxes there retire at once (no network needed), the
    /// contact is told and asked to leave that host too.
    pub fn drop_relay(&self, name: &str, relay: &RelayAddress) -> Result<()> {
        self.batch(|b| {
            let id = b.contacts.find(name)?;
            let c = b.contacts.get_mut(&id).ok_or_else(|| b.tx.damaged("contact vanished".into()))?;
            let name = c.card.name.clone();
            let there = c.inboxes.iter().any(|i| i.current() && i.relay == *relay);
            let theirs_there = c.routes.iter().any(|r| r.route.relay == *relay);
            if !there && !theirs_there {
                return Err(Why::NoRouteThere { name, relay: relay.to_string() }.into());
            }
            let ours_elsewhere = c.inboxes.iter().any(|i| i.current() && i.relay != *relay);
            let theirs_elsewhere = c.routes.iter().any(|r| r.usable() && r.route.relay != *relay);
            if !ours_elsewhere || !theirs_elsewhere {
                return Err(Why::LastRoute { name, relay: relay.to_string() }.into());
            }
            let next = c.lines.version + 1;
            c.inboxes
                .iter_mut()
                .filter(|i| i.current() && i.relay == *relay)
                .for_each(|i| i.retired = Some(next));
            b.touch(&id);
            b.announce_routes(&id, Vec::new(), vec![relay.clone()])
        })
    }
}

/// The seen-set scope of frames we confirmed (so a late duplicate is confirmed again, and a
/// duplicate of anything else is not).
fn receipted(id: &str) -> String {
    format!("receipted/{id}")
}

impl Shared {
    /// Runs waiting route work: fresh inboxes made (a host that is down leaves the work for
    /// the next turn), then announced to the contact in one transaction.
    pub async fn run_route_work(&self) -> Result<Vec<String>> {
        let work = self.read(|tx, _| tx.load_all::<RotateRecord>())?;
        let mut trouble = Vec::new();
        for (id, w) in work {
            let mut made = Vec::new();
            let mut waiting = false;
            for relay in w.fresh.iter().chain(&w.add) {
                match self.inbox_on(relay).await {
                    Ok(inbox) => made.push(inbox.0),
                    Err(e) if e.relay_down() => {
                        waiting = true;
                        trouble.push(e.to_string());
                    }
                    Err(e) => trouble.push(e.to_string()),
                }
            }
            if waiting {
                // What was made now is deleted again; all of it is made at the next turn.
                for inbox in made {
                    self.delete_queue(&inbox.relay, &inbox.recv_id, &inbox.recv_secret).await;
                }
                continue;
            }
            self.batch(|b| b.rotated(&id, &w, made))?;
        }
        Ok(trouble)
    }

    /// Deletes, at their hosts, the inboxes the contacts confirmed they left; an inbox on a
    /// host that is down stays listed (and is tried again) for a week, then is forgotten (the
    /// host's TTL removes it).
    pub async fn release_inboxes(&self) -> Result<()> {
        const GIVE_UP_MS: u64 = 7 * 24 * 3600 * 1000;
        let released: Vec<(String, super::Inbox)> = self.read(|_, contacts| {
            Ok(contacts
                .iter()
                .flat_map(|(id, c)| c.inboxes.iter().filter(|i| i.released).map(|i| (id.clone(), i.clone())))
                .collect())
        })?;
        for (id, inbox) in released {
            let gone = self.delete_queue(&inbox.relay, &inbox.recv_id, &inbox.recv_secret).await;
            let old = inbox.heard_ms.is_some_and(|h| now_ms().saturating_sub(h) > GIVE_UP_MS);
            if gone || old {
                self.batch(|b| {
                    if let Some(c) = b.contacts.get_mut(&id) {
                        c.inboxes.retain(|i| i.recv_id != inbox.recv_id);
                        b.touch(&id);
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

impl Batch<'_, '_> {
    /// Route work done at the hosts: the new inboxes join, those replaced or left retire (as
    /// of the version announced now), and the contact hears of it.
    fn rotated(&mut self, id: &str, w: &RotateRecord, made: Vec<super::Inbox>) -> Result<()> {
        self.tx.remove::<RotateRecord>(id)?;
        let Some(c) = self.contacts.get_mut(id) else { return Ok(()) };
        let next = c.lines.version + 1;
        for i in c.inboxes.iter_mut().filter(|i| i.current()) {
            if w.fresh.contains(&i.relay) || w.leave.contains(&i.relay) {
                i.retired = Some(next);
            }
        }
        c.inboxes.extend(made);
        if !c.inboxes.iter().any(super::routes::Inbox::current) {
            // Nothing made and everything retiring: keep what there was.
            c.inboxes.iter_mut().for_each(|i| i.retired = None);
        }
        self.touch(id);
        self.announce_routes(id, w.ask_join.clone(), w.ask_leave.clone())
    }
}
