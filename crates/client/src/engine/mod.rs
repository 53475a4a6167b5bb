//! The engine's inside: what it holds for one party (the store; contacts and their sessions in
//! memory) and [`Batch`], one store transaction in which a rule's [`Step`] is carried out.
//! Events reach subscribers only after the transaction commits.

mod contacts;
mod control;
mod delivery;
mod drive;
mod hotline;
mod invite;
mod item;
mod links;
mod ops;
mod outbox;
mod receive;
mod relays;
mod routes;
mod seal;
mod tasks;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use backchannel_party::step::TextId;
use backchannel_party::{Effect, Event, Lookup, Step};
use backchannel_proto::identity::{Card, Identity, IdentityPickle, PartyKey};
use serde::{Deserialize, Serialize};

pub use contacts::ContactView;
pub(crate) use contacts::{ContactRecord, Contacts};
pub(crate) use delivery::view as delivery_view;
pub use delivery::{DeliveryStatus, DeliveryView, RecipientView};
pub(crate) use drive::Driver;
pub use drive::{SyncReport, Update};
pub(crate) use invite::pending as pending_invitations;
pub use ops::Fanout;
pub(crate) use ops::find_channel;
pub(crate) use outbox::list as list_outbox;
pub use outbox::{FlushReport, QueuedView};
pub(crate) use relays::allow as allow_relay;
pub(crate) use routes::Inbox;
pub(crate) use routes::views as route_views;
pub use routes::{Direction, RouteNote, RouteState, RouteView};
pub use tasks::TaskTrouble;

use crate::config::EngineConfig;
use crate::error::{ClientError, Result};
use crate::net::Pool;
use crate::store::{Record, Store, Tx};

/// Everything an engine's handles share: the core behind its lock, connections, subscribers.
/// The lock is never held across a network wait: each step reads or writes the store, then
/// lets go.
pub(crate) struct Shared {
    core: Mutex<Core>,
    pub pool: Pool,
    pub events: tokio::sync::broadcast::Sender<Update>,
    pub home: PathBuf,
    /// The driver is running (pushed blocks arrive as they come): commands need not fetch first.
    pub driving: AtomicBool,
    /// Wakes the driver to flush the outbox now.
    pub wake: tokio::sync::Notify,
    /// Blocks cut when their frames were sealed, by outbox row and route, until delivered
    /// (the store keeps only the frames; after a restart they are cut again).
    cut: Mutex<outbox::CutCache>,
}

impl Shared {
    pub fn new(core: Core, home: PathBuf) -> Self {
        let (events, _) = tokio::sync::broadcast::channel(crate::config::EVENT_BUFFER);
        Self {
            core: Mutex::new(core),
            pool: Pool::default(),
            events,
            home,
            driving: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            cut: Mutex::new(outbox::CutCache::new()),
        }
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock would be a bug; the store is transactional either
        // way, so what the core holds is still what was committed.
        self.core.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` as one transaction (see [`Core::batch`]) and tells subscribers what it did.
    pub fn batch<T>(&self, f: impl FnOnce(&mut Batch<'_, '_>) -> Result<T>) -> Result<T> {
        Ok(self.batch_events(f)?.0)
    }

    /// Like [`Shared::batch`], and also returns what it told subscribers.
    pub fn batch_events<T>(
        &self,
        f: impl FnOnce(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<(T, Vec<Event>)> {
        let (value, events, cut) = self.core().batch(f)?;
        if !cut.is_empty() {
            self.cut.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(cut);
        }
        for event in &events {
            self.tell(Update::Party { event: event.clone() });
        }
        Ok((value, events))
    }

    /// The blocks cut at sealing time, for a flush (what it does not send is cut again later).
    pub fn take_cut(&self) -> outbox::CutCache {
        std::mem::take(&mut *self.cut.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Tells every subscriber (none listening is not an error: the timeline has it).
    pub fn tell(&self, update: Update) {
        let _ = self.events.send(update);
    }

    /// Works with the store and the contacts in memory (sessions load on first use).
    pub fn with_core<T>(&self, f: impl FnOnce(&Tx<'_>, &mut Contacts) -> Result<T>) -> Result<T> {
        let mut core = self.core();
        let Core { store, contacts, .. } = &mut *core;
        store.tx(|tx| f(tx, contacts))
    }

    /// Reads (in a transaction, so what is read belongs together).
    pub fn read<T>(&self, f: impl FnOnce(&Tx<'_>, &Contacts) -> Result<T>) -> Result<T> {
        let mut core = self.core();
        let Core { store, contacts, .. } = &mut *core;
        store.tx(|tx| f(tx, contacts))
    }

    /// A durable change outside any rule.
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>, &Contacts) -> Result<T>) -> Result<T> {
        self.read(f)
    }

    /// Reads with the contacts and what the engine keeps in memory about its lines.
    pub(crate) fn with_lines<T>(
        &self,
        f: impl FnOnce(&Tx<'_>, &mut Contacts, &mut hotline::LineMemory) -> Result<T>,
    ) -> Result<T> {
        let mut core = self.core();
        let Core { store, contacts, lines, .. } = &mut *core;
        store.tx_unsynced(|tx| f(tx, contacts, lines))
    }

    /// [`Shared::write_unsynced`], with the contacts in memory.
    pub fn with_core_unsynced<T>(&self, f: impl FnOnce(&Tx<'_>, &mut Contacts) -> Result<T>) -> Result<T> {
        let mut core = self.core();
        let Core { store, contacts, .. } = &mut *core;
        store.tx_unsynced(|tx| f(tx, contacts))
    }

    pub fn me(&self) -> Card {
        self.core().me.clone()
    }

    pub fn config(&self) -> EngineConfig {
        self.core().config.clone()
    }

    /// Whether `passphrase` unlocks this party's store.
    pub fn admits(&self, passphrase: &crate::store::Passphrase) -> Result<bool> {
        self.core().store.admits(passphrase)
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct IdentityRecord(pub IdentityPickle);

impl Record for IdentityRecord {
    const KIND: &'static str = "identity";
}

/// The public card alone: read at open, so it must not cost an account unpickle.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct CardRecord(pub Card);

impl Record for CardRecord {
    const KIND: &'static str = "card";
}

/// A stored document text.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct TextRecord(pub String);

impl Record for TextRecord {
    const KIND: &'static str = "text";
}

const SELF: &str = "self";

/// What the engine holds for its party.
pub(crate) struct Core {
    pub store: Store,
    pub me: Card,
    pub contacts: Contacts,
    pub config: EngineConfig,
    pub lines: hotline::LineMemory,
}

impl Core {
    pub fn new(mut store: Store, config: EngineConfig) -> Result<Self> {
        let (me, contacts) = store.tx(|tx| {
            upgrade(tx)?;
            let me = tx.load::<CardRecord>(SELF)?.ok_or_else(|| tx.damaged("card missing".into()))?.0;
            Ok((me, Contacts::load(tx)?))
        })?;
        Ok(Self { store, me, contacts, config, lines: hotline::LineMemory::default() })
    }

    /// Runs `f` in one durable transaction. On success the events it gathered are returned
    /// for publishing; on failure every contact it touched is read again from the store, so
    /// memory never runs ahead of what was committed.
    pub fn batch<T>(
        &mut self,
        f: impl FnOnce(&mut Batch<'_, '_>) -> Result<T>,
    ) -> Result<(T, Vec<Event>, Cut)> {
        let Core { store, me, contacts, .. } = self;
        let mut touched = BTreeSet::new();
        let out = store.tx(|tx| {
            let mut batch = Batch::new(tx, contacts, me);
            let value = f(&mut batch);
            touched = batch.all_touched.clone();
            let value = value?;
            batch.write_back()?;
            Ok((value, batch.events, batch.cut))
        });
        if out.is_err() && !touched.is_empty() {
            // The store is as it was before the transaction; so is memory, after this.
            store.tx(|tx| touched.iter().try_for_each(|id| contacts.reload(tx, id)))?;
        }
        out
    }
}

/// Moves records written by earlier versions into today's form: sessions out of contact
/// records; the one inbox into the list of inboxes, and the session's route into the
/// contact's routes. Runs at every open; it finds nothing to do once done.
fn upgrade(tx: &Tx<'_>) -> Result<()> {
    for (id, mut contact) in tx.load_all::<ContactRecord>()? {
        let mut changed = false;
        if let Some(pickle) = contact.session.take() {
            tx.save(&id, &contacts::SessionRecord(pickle))?;
            changed = true;
        }
        if let Some(inbox) = contact.legacy_inbox.take() {
            contact.inboxes.push(inbox);
            changed = true;
        }
        let session = match contact.routes.is_empty() {
            true => tx.load::<contacts::SessionRecord>(&id)?,
            false => None,
        };
        if let Some(contacts::SessionRecord(pickle)) = session {
            let session = backchannel_proto::session::Session::from_pickle(pickle);
            contact.routes.push(routes::OutRoute::new(session.send_route.clone()));
            changed = true;
        }
        if changed {
            tx.save(&id, &contact)?;
        }
    }
    Ok(())
}

/// One transaction: the store, the contacts in memory, and what to tell subscribers.
pub(crate) struct Batch<'b, 't> {
    pub tx: &'b mut Tx<'t>,
    pub contacts: &'b mut Contacts,
    pub me: &'b Card,
    pub now_ms: u64,
    pub events: Vec<Event>,
    /// Contacts whose record or session changed: written back before commit.
    touched: BTreeSet<String>,
    sessions_touched: BTreeSet<String>,
    /// Every contact touched in the whole transaction: read again if it fails.
    all_touched: BTreeSet<String>,
    /// A store error met while a rule was reading through [`Lookup`] (which cannot fail).
    lookup_error: RefCell<Option<ClientError>>,
    /// Blocks cut for the outbox rows this transaction queued.
    pub cut: Cut,
    /// Receipts to seal at the end of a burst, by contact.
    pub receipts: std::collections::BTreeMap<String, Vec<backchannel_proto::block::FrameId>>,
    /// Channels' hotline policies, as read in this transaction.
    hotlines: std::collections::HashMap<
        backchannel_proto::message::ChannelId,
        Option<backchannel_proto::channel::Hotline>,
    >,
}

/// Blocks cut for outbox rows, by row and route.
pub(crate) type Cut = Vec<((i64, backchannel_wire::QueueId), Vec<Vec<u8>>)>;

impl<'b, 't> Batch<'b, 't> {
    fn new(tx: &'b mut Tx<'t>, contacts: &'b mut Contacts, me: &'b Card) -> Self {
        Self {
            tx,
            contacts,
            me,
            now_ms: now_ms(),
            events: Vec::new(),
            touched: BTreeSet::new(),
            sessions_touched: BTreeSet::new(),
            all_touched: BTreeSet::new(),
            lookup_error: RefCell::new(None),
            cut: Vec::new(),
            receipts: std::collections::BTreeMap::new(),
            hotlines: std::collections::HashMap::new(),
        }
    }

    pub fn ctx(&self) -> backchannel_party::Ctx<'b> {
        backchannel_party::Ctx { me: self.me, now_ms: self.now_ms }
    }

    /// A contact's record changed: it is written back before commit.
    pub fn touch(&mut self, id: &str) {
        self.touched.insert(id.to_owned());
        self.all_touched.insert(id.to_owned());
    }

    /// A contact's session advanced: it is written back before commit.
    pub fn touch_session(&mut self, id: &str) {
        self.touch(id);
        self.sessions_touched.insert(id.to_owned());
    }

    fn write_back(&mut self) -> Result<()> {
        self.check_lookup()?;
        for id in &self.touched {
            self.contacts.save_record(self.tx, id)?;
        }
        for id in &self.sessions_touched {
            self.contacts.save_session(self.tx, id)?;
        }
        Ok(())
    }

    /// Runs `f` so that a failure undoes only what `f` wrote (store, memory, events) and the
    /// rest of the transaction stands. A storage failure still ends the whole transaction.
    pub fn isolated<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        // What memory holds goes into the transaction first, so that rolling back to the mark
        // and reading the contacts `f` touched again gives exactly the state before `f`.
        self.write_back()?;
        self.touched.clear();
        self.sessions_touched.clear();
        self.tx.mark()?;
        let (events, cut) = (self.events.len(), self.cut.len());
        match f(self) {
            Ok(v) => {
                self.tx.release_mark()?;
                Ok(v)
            }
            Err(e) if e.is_storage() => Err(e),
            Err(e) => {
                self.tx.rollback_to_mark()?;
                self.events.truncate(events);
                self.cut.truncate(cut);
                for id in std::mem::take(&mut self.touched) {
                    self.contacts.reload(self.tx, &id)?;
                }
                self.sessions_touched.clear();
                Err(e)
            }
        }
    }

    /// Fails if a rule's reads met a store error (the rule then decided on missing data).
    pub fn check_lookup(&self) -> Result<()> {
        match self.lookup_error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The party's secret identity (for invitations, answers, ratification).
    pub fn identity(&self) -> Result<Identity> {
        let pickle = self
            .tx
            .load::<IdentityRecord>(SELF)?
            .ok_or_else(|| self.tx.damaged("identity missing".into()))?;
        Ok(Identity::from_pickle(pickle.0))
    }

    pub fn save_identity(&self, identity: &Identity) -> Result<()> {
        self.tx.save(SELF, &IdentityRecord(identity.pickle()))
    }

    /// Carries out a rule's step. The notes it seals are followed (delivery, receipts) under
    /// the entry of ours it records after them.
    pub fn apply(&mut self, step: Step) -> Result<()> {
        self.check_lookup()?;
        let mut notes = Vec::new();
        for effect in step.effects {
            match effect {
                Effect::Seal { to, channel, kind, body } => {
                    notes.extend(self.seal_to(&to, channel, kind, &body)?)
                }
                Effect::Record { conversation, entry } => self.record(&conversation, entry, &mut notes)?,
                Effect::Notify(event) => self.events.push(event),
                Effect::Schedule(task) => self.tx.save(&task.key(), &tasks::TaskRecord(task.clone()))?,
                Effect::PutText { id, text } => self.tx.save(&id.key(), &TextRecord(text))?,
                Effect::ForgetWaiting { channel, to } => seal::forget_waiting(self.tx, &to, channel)?,
            }
        }
        Ok(())
    }

    /// Appends an entry; a note of ours starts following the delivery of `notes`, the frames
    /// just sealed for it.
    pub fn record(
        &mut self,
        conversation: &backchannel_party::event::Conversation,
        entry: backchannel_party::Entry,
        notes: &mut Vec<delivery::SealedNote>,
    ) -> Result<()> {
        let n = self.tx.append_timeline(&conversation.key, &entry)?;
        if matches!(entry, backchannel_party::Entry::Note { outgoing: true, .. }) && !notes.is_empty() {
            delivery::open(self.tx, &mut self.contacts.frames, n, self.now_ms, std::mem::take(notes))?;
        }
        self.events.push(Event::Entry { conversation: conversation.clone(), entry });
        Ok(())
    }
}

impl Lookup for Batch<'_, '_> {
    fn has_session(&self, party: &PartyKey) -> bool {
        self.contacts.id_of(party).is_some()
    }

    fn contact(&self, party: &PartyKey) -> Option<(Card, bool)> {
        let c = self.contacts.get(self.contacts.id_of(party)?)?;
        Some((c.card.clone(), c.verified))
    }

    fn text(&self, id: &TextId) -> Option<String> {
        match self.tx.load::<TextRecord>(&id.key()) {
            Ok(text) => text.map(|t| t.0),
            Err(e) => {
                self.lookup_error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    fn probes_elsewhere(
        &self,
        channel: &backchannel_proto::message::ChannelId,
        side: &str,
        issue: &str,
    ) -> u32 {
        let counted = self.tx.load_all::<backchannel_party::channel::Channel>().map(|all| {
            all.iter()
                .filter(|(_, c)| c.state.id != *channel)
                .map(|(_, c)| c.probes.spent_with(side, issue))
                .fold(0u32, u32::saturating_add)
        });
        match counted {
            Ok(n) => n,
            Err(e) => {
                self.lookup_error.borrow_mut().get_or_insert(e);
                u32::MAX
            }
        }
    }

    fn held_channels(&self) -> usize {
        let held = self.tx.load_all::<backchannel_party::channel::HeldMessages>().and_then(|all| {
            let mut count = 0;
            for (id, h) in all {
                // Only channels we are not in count against the few a stranger may fill.
                if !h.is_empty() && self.tx.load::<backchannel_party::channel::Channel>(&id)?.is_none() {
                    count += 1;
                }
            }
            Ok(count)
        });
        match held {
            Ok(count) => count,
            Err(e) => {
                self.lookup_error.borrow_mut().get_or_insert(e);
                usize::MAX
            }
        }
    }
}
