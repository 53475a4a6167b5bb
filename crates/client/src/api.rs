//! The engine's one door: [`Engine`], a cloneable handle on one party. Front ends (the CLI,
//! the web app) call its commands and listen to [`Engine::subscribe`]; they never touch the
//! store, the rules or the network themselves.
//!
//! Exactly one engine owns a party's home at a time (an OS file lock): two would fork its
//! ratchets. A second process talks to the running one over the home's local socket
//! (`crate::local`), through the same commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use backchannel_party::Entry;
use backchannel_party::channel::ChannelView;
use backchannel_party::documents::{PaperVersion, ProposalView};
use backchannel_party::event::channel_key;
use backchannel_party::probes::{ProbeRequest, ProbeView, ProbesView};
use backchannel_proto::channel::{Mode, Phase, Role};
use backchannel_proto::identity::{Card, Identity};
use backchannel_proto::message::ChannelId;
use backchannel_wire::RelayAddress;
use serde::{Deserialize, Serialize};

use crate::config::EngineConfig;
use crate::engine::{
    CardRecord, ContactView, Core, DeliveryView, Driver, Fanout, FlushReport, IdentityRecord, QueuedView,
    RouteView, Shared, SyncReport, Update,
};
use crate::error::{ClientError, Result};
use crate::home::HomeLock;
use crate::store::{Passphrase, Store};

/// A timeline entry as shown by `read`: a gap also says whether it is still open.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryView {
    #[serde(flatten)]
    pub entry: Entry,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<bool>,
    /// For a gap: the numbers in it that have still not arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub still_missing: Option<Vec<(u64, u64)>>,
    /// For a note of ours: how its delivery goes (`status`, the hosts that stored it, and
    /// each recipient's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryView>,
}

/// What a command that sends did: what it took in first (when the engine is not running,
/// so that, e.g., a member removed meanwhile gets nothing), and how delivery went.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Delivery {
    pub caught_up: Option<SyncReport>,
    pub flush: FlushReport,
}

impl Delivery {
    /// Everything went (nothing waits in the outbox).
    pub fn complete(&self) -> bool {
        self.flush.still_queued == 0 && self.flush.held == 0 && self.flush.refused == 0
    }
}

/// A handle on one party's engine. Clones share it.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    _lock: Arc<HomeLock>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("home", &self.shared.home).finish_non_exhaustive()
    }
}

impl Engine {
    /// Creates a new party (identity keys and an empty store) in `home`.
    pub fn init(
        home: &Path,
        passphrase: &Passphrase,
        name: &str,
        side: &str,
        config: EngineConfig,
    ) -> Result<Self> {
        let identity = Identity::generate(name, side)
            .map_err(|why| ClientError::InvalidInput { what: "name or side".into(), why: why.to_owned() })?;
        let lock = HomeLock::take(home, true)?;
        let mut store = Store::create(home, passphrase)?;
        store.tx(|tx| {
            tx.save("self", &IdentityRecord(identity.pickle()))?;
            tx.save("self", &CardRecord(identity.card()))
        })?;
        Self::start(store, lock, config)
    }

    /// Opens the party in `home`. Fails with [`ClientError::Locked`] while another engine
    /// holds it (talk to that one: [`crate::local::Remote`]).
    pub fn open(home: &Path, passphrase: &Passphrase, config: EngineConfig) -> Result<Self> {
        let lock = HomeLock::take(home, false)?;
        let store = Store::open(home, passphrase)?;
        Self::start(store, lock, config)
    }

    /// Whether `home` holds a party already (a front end's first screen creates or unlocks).
    pub fn exists(home: &Path) -> bool {
        Store::exists(home)
    }

    fn start(store: Store, lock: HomeLock, config: EngineConfig) -> Result<Self> {
        let home = store.dir().to_path_buf();
        let core = Core::new(store, config)?;
        Ok(Self { shared: Arc::new(Shared::new(core, home)), _lock: Arc::new(lock) })
    }

    pub fn home(&self) -> &Path {
        &self.shared.home
    }

    pub(crate) fn home_buf(&self) -> PathBuf {
        self.shared.home.clone()
    }

    /// Everything that happens from now on: entries recorded, links, troubles.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Update> {
        self.shared.events.subscribe()
    }

    /// Whether `passphrase` unlocks this party (asked of a second process's commands).
    pub fn admits(&self, passphrase: &Passphrase) -> Result<bool> {
        self.shared.admits(passphrase)
    }

    /// One turn: deliver, fetch everything waiting, run tasks, apply retention, deliver again.
    pub async fn sync_once(&self) -> Result<SyncReport> {
        self.shared.sync_once().await
    }

    /// Runs the engine until `shutdown`: live links to the relays, blocks taken in as they
    /// come, the outbox delivered at once. [`crate::run_serving`] also answers other
    /// processes' commands meanwhile.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        let mut driver = Driver::default();
        self.shared.run(&mut driver, shutdown).await
    }

    /// Delivers what the outbox holds.
    pub async fn flush(&self) -> Result<FlushReport> {
        self.shared.flush().await
    }

    /// Takes in what waits before acting on a channel, when no driver does so already.
    async fn catch_up(&self) -> Result<Option<SyncReport>> {
        if self.shared.driving.load(Ordering::SeqCst) || !self.shared.config().catch_up_before_acting {
            return Ok(None);
        }
        self.sync_once().await.map(Some)
    }

    async fn deliver(&self, caught_up: Option<SyncReport>) -> Result<Delivery> {
        let flush = self.flush().await?;
        Ok(Delivery { caught_up, flush })
    }

    pub fn me(&self) -> Card {
        self.shared.me()
    }

    pub fn contacts(&self) -> Result<Vec<ContactView>> {
        let me = self.me();
        let beats = self.shared.beats()?;
        let now = crate::engine::now_ms();
        self.shared.read(|_, contacts| {
            Ok(contacts.iter().map(|(id, c)| ContactView::new(&me, c, now, beats.get(id).copied())).collect())
        })
    }

    /// Every contact's seal key, with its `NAME (SIDE)`: for checking an agreement's seals.
    pub fn seal_keys(&self) -> Result<Vec<(String, [u8; 32])>> {
        self.shared.read(|_, contacts| {
            Ok(contacts
                .iter()
                .map(|(_, c)| (format!("{} ({})", c.card.name, c.card.side), c.card.seal_key))
                .collect())
        })
    }

    /// Marks a contact verified, after the humans compared safety numbers out of band.
    pub fn verify(&self, name: &str) -> Result<ContactView> {
        self.shared.batch(|b| {
            let id = b.contacts.find(name)?;
            let contact =
                b.contacts.get_mut(&id).ok_or(ClientError::UnknownContact { name: name.to_owned() })?;
            contact.verified = true;
            b.touch(&id);
            let record = b.contacts.get(&id).ok_or(ClientError::UnknownContact { name: name.to_owned() })?;
            Ok(ContactView::new(b.me, record, b.now_ms, None))
        })
    }

    /// Makes a one-time invitation valid for `ttl_secs`, with a fresh queue on each of
    /// `relays` (one to eight hosts; the contact is then reached over all of them).
    pub async fn invite(&self, relays: &[RelayAddress], ttl_secs: u64) -> Result<String> {
        self.shared.invite(relays, ttl_secs).await
    }

    /// Accepts an invitation, with our inboxes on `relays` (none: the invitation's hosts).
    /// The Hello goes out at once over every route of the invitation; if every one of them
    /// is gone, the invitation was already used ([`ClientError::InvitationUsed`]).
    pub async fn accept(&self, text: &str, relays: &[RelayAddress]) -> Result<(ContactView, Delivery)> {
        let view = self.shared.accept(text, relays).await?;
        Ok((view, self.deliver(None).await?))
    }

    /// The conversation with a contact or in a channel, oldest first, with gaps marked open
    /// or closed. Channel notes past the phase's retention are deleted first.
    pub fn read(&self, name: &str) -> Result<Vec<EntryView>> {
        let (key, direct) = match self.shared.batch(|b| b.channel(name).map(|c| c.state.id)) {
            Ok(id) => {
                self.shared.expire_notes()?;
                (channel_key(&id), None)
            }
            Err(ClientError::UnknownChannel { .. }) => {
                let id = self.shared.read(|_, contacts| contacts.find(name)).map_err(|e| match e {
                    ClientError::UnknownContact { name } => ClientError::UnknownName { name },
                    other => other,
                })?;
                (id.clone(), Some(id))
            }
            Err(e) => return Err(e),
        };
        let now = crate::engine::now_ms();
        self.shared.read(|tx, contacts| {
            let entries: Vec<(i64, Entry)> = tx.timeline_numbered(&key)?;
            entries
                .into_iter()
                .map(|(n, e)| {
                    let mut v = view(contacts, e, direct.as_deref());
                    if matches!(v.entry, Entry::Note { outgoing: true, .. }) {
                        v.delivery = crate::engine::delivery_view(tx, contacts, n, now)?;
                    }
                    Ok(v)
                })
                .collect()
        })
    }

    /// Whether `name` is one of our channels.
    pub fn is_channel(&self, name: &str) -> Result<bool> {
        match self.shared.batch(|b| b.channel(name).map(drop)) {
            Ok(()) => Ok(true),
            Err(ClientError::UnknownChannel { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends a note to a contact or a channel (in a shuttle the hub names the members in
    /// `to`). A channel note takes in what waits first, so a member removed meanwhile gets
    /// nothing.
    pub async fn send(&self, name: &str, text: &str, to: &[String]) -> Result<(Option<Fanout>, Delivery)> {
        if self.is_channel(name)? {
            let caught_up = self.catch_up().await?;
            let out = self.shared.batch(|b| b.channel_note(name, text, to))?;
            return Ok((Some(out), self.deliver(caught_up).await?));
        }
        if !to.is_empty() {
            return Err(ClientError::InvalidInput {
                what: "recipients".into(),
                why: format!("{name} is a contact, not a shuttle channel"),
            });
        }
        self.queue_notes(name, &[text])?;
        Ok((None, self.deliver(None).await?))
    }

    /// Seals a note to a channel's members into the outbox; nothing is sent yet (and nothing
    /// taken in first: [`Engine::send`] does both).
    pub fn channel_note(&self, name: &str, text: &str, to: &[String]) -> Result<Fanout> {
        self.shared.batch(|b| b.channel_note(name, text, to))
    }

    /// Seals several notes to one contact, in order, in one durable transaction (a burst
    /// pays for one disk sync, not one per note). Nothing is sent yet.
    pub fn queue_notes(&self, name: &str, texts: &[&str]) -> Result<()> {
        texts.iter().try_for_each(|t| backchannel_party::conversation::check_note(t))?;
        self.shared.batch(|b| {
            let id = b.contacts.find(name)?;
            let ctx = b.ctx();
            for text in texts {
                let note = backchannel_proto::message::Kind::Note;
                let Some(sealed) = b.seal_for(&id, ChannelId::DIRECT, note, text.as_bytes())? else {
                    continue;
                };
                let name = b.contacts.get(&id).map(|c| c.card.name.clone()).unwrap_or_default();
                let conversation = backchannel_party::event::Conversation::contact(&id, &name);
                let entry = backchannel_party::conversation::sent(&ctx, text, sealed.seq);
                b.record(&conversation, entry, &mut sealed.note.into_iter().collect())?;
            }
            Ok(())
        })
    }

    pub fn channel_create(
        &self,
        name: &str,
        mode: Mode,
        role: Role,
        retention: Option<u64>,
        hotline: Option<backchannel_proto::channel::Hotline>,
    ) -> Result<ChannelView> {
        self.shared.batch(|b| b.channel_create(name, mode, role, retention, hotline))
    }

    pub async fn channel_add(
        &self,
        name: &str,
        contact: &str,
        role: Role,
    ) -> Result<(ChannelView, Delivery)> {
        let view = self.shared.batch(|b| b.channel_add(name, contact, role))?;
        Ok((view, self.deliver(None).await?))
    }

    pub async fn channel_remove(&self, name: &str, member: &str) -> Result<(ChannelView, Delivery)> {
        let view = self.shared.batch(|b| b.channel_remove(name, member))?;
        Ok((view, self.deliver(None).await?))
    }

    pub fn channel(&self, name: &str) -> Result<ChannelView> {
        self.shared.batch(|b| {
            let channel = b.channel(name)?;
            Ok(b.view(&channel))
        })
    }

    /// A channel's hotline discipline (heartbeat and path-test intervals), if it is a hotline.
    pub fn channel_hotline(&self, name: &str) -> Result<Option<backchannel_proto::channel::Hotline>> {
        self.shared.batch(|b| b.channel(name).map(|c| c.state.hotline))
    }

    pub fn channels(&self) -> Result<Vec<ChannelView>> {
        self.shared.batch(|b| {
            let all = b.tx.load_all::<backchannel_party::channel::Channel>()?;
            Ok(all.iter().map(|(_, c)| b.view(c)).collect())
        })
    }

    /// The hub of a shuttle passes a side's note on, marked as relayed by it.
    pub async fn forward(
        &self,
        name: &str,
        entry: usize,
        to: &[String],
        rephrased: Option<&str>,
    ) -> Result<(Fanout, Delivery)> {
        let out = self.shared.batch(|b| b.channel_forward(name, entry, to, rephrased))?;
        Ok((out, self.deliver(None).await?))
    }

    /// Proposes the next phase (or consents to the one proposed).
    pub async fn phase_consent(&self, name: &str, phase: Option<Phase>) -> Result<(ChannelView, Delivery)> {
        let caught_up = self.catch_up().await?;
        let view = self.shared.batch(|b| b.phase_consent(name, phase))?;
        Ok((view, self.deliver(caught_up).await?))
    }

    pub async fn nonpaper_put(&self, name: &str, title: &str, text: &str) -> Result<(u32, Fanout, Delivery)> {
        let caught_up = self.catch_up().await?;
        let (version, out) = self.shared.batch(|b| b.nonpaper_put(name, title, text))?;
        Ok((version, out, self.deliver(caught_up).await?))
    }

    pub fn nonpapers(&self, name: &str) -> Result<Vec<PaperVersion>> {
        self.shared.batch(|b| b.nonpapers(name))
    }

    /// A version's text (the latest without `version`).
    pub fn nonpaper(&self, name: &str, title: &str, version: Option<u32>) -> Result<(u32, String)> {
        self.shared.batch(|b| b.nonpaper(name, title, version))
    }

    pub async fn propose(
        &self,
        name: &str,
        title: &str,
        text: &str,
        signatories: &[String],
    ) -> Result<(ProposalView, Delivery)> {
        let caught_up = self.catch_up().await?;
        let view = self.shared.batch(|b| b.propose(name, title, text, signatories))?;
        Ok((view, self.deliver(caught_up).await?))
    }

    pub fn proposals(&self, name: &str) -> Result<Vec<ProposalView>> {
        self.shared.batch(|b| b.proposals(name))
    }

    /// Signs a proposal with our seal; the signature goes to the members it reaches.
    pub async fn ratify(&self, name: &str, proposal: &str) -> Result<(ProposalView, Delivery)> {
        let caught_up = self.catch_up().await?;
        let view = self.shared.batch(|b| b.ratify(name, proposal))?;
        Ok((view, self.deliver(caught_up).await?))
    }

    /// The agreement as exported: text, the seals counted so far, the sides required.
    pub fn agreement(&self, name: &str, proposal: &str) -> Result<backchannel_proto::agreement::Agreement> {
        self.shared.batch(|b| b.agreement(name, proposal))
    }

    pub async fn probe_propose(&self, name: &str, req: &ProbeRequest) -> Result<(ProbeView, Delivery)> {
        let caught_up = self.catch_up().await?;
        let view = self.shared.batch(|b| b.probe_propose(name, req))?;
        Ok((view, self.deliver(caught_up).await?))
    }

    pub async fn probe_accept(&self, name: &str, id: &str) -> Result<(ProbeView, Delivery)> {
        let caught_up = self.catch_up().await?;
        let view = self.shared.batch(|b| b.probe_accept(name, id))?;
        Ok((view, self.deliver(caught_up).await?))
    }

    pub async fn probe_decline(&self, name: &str, id: &str) -> Result<(ProbeView, Delivery)> {
        let caught_up = self.catch_up().await?;
        let view = self.shared.batch(|b| b.probe_decline(name, id))?;
        Ok((view, self.deliver(caught_up).await?))
    }

    /// Our private input to a probe: kept in the encrypted store until the probe runs, never sent.
    pub async fn probe_input(
        &self,
        name: &str,
        id: &str,
        input: &ProbeInputSpec,
    ) -> Result<(ProbeView, Delivery)> {
        let caught_up = self.catch_up().await?;
        let view = self.shared.batch(|b| match input {
            ProbeInputSpec::Value(v) => b.probe_input_value(name, id, *v),
            ProbeInputSpec::Packages(p) => b.probe_input_packages(name, id, p),
        })?;
        Ok((view, self.deliver(caught_up).await?))
    }

    pub fn probes(&self, name: &str) -> Result<ProbesView> {
        self.shared.batch(|b| b.probes(name))
    }

    /// Unanswered invitations of ours, by expiry (seconds since the epoch).
    pub fn pending_invitations(&self) -> Result<Vec<u64>> {
        self.shared.read(crate::engine::pending_invitations)
    }

    /// What waits in the outbox (with why, for items a relay refused).
    pub fn outbox(&self) -> Result<Vec<QueuedView>> {
        self.shared.with_core(crate::engine::list_outbox)
    }

    /// Drops an outbox item the user gave up on.
    pub fn outbox_drop(&self, n: i64) -> Result<()> {
        self.shared.drop_queued(n)
    }

    /// Lets items a relay refused go again at the next delivery.
    pub async fn outbox_retry(&self) -> Result<(usize, Delivery)> {
        let count = self.shared.retry_held()?;
        Ok((count, self.deliver(None).await?))
    }

    /// Allows connecting to `relay` for introductions (peers cannot pick our hosts otherwise).
    /// Allows a host peers asked us to use (an introduction's, or a contact's new route).
    pub fn allow_relay(&self, relay: &RelayAddress) -> Result<()> {
        self.shared.batch(|b| {
            crate::engine::allow_relay(b.tx, &relay.to_string())?;
            b.routes_allowed(&relay.to_string())
        })?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// A contact's routes, both ways, with their states.
    pub fn contact_routes(&self, name: &str) -> Result<Vec<RouteView>> {
        let beats = self.shared.beats()?;
        let now = crate::engine::now_ms();
        self.shared.read(|_, contacts| {
            let id = contacts.find(name)?;
            let c = contacts.get(&id).ok_or(ClientError::UnknownContact { name: name.to_owned() })?;
            Ok(crate::engine::route_views(c, now, beats.get(&id).copied()))
        })
    }

    /// The routes to and from every member of a channel we have a session with (by member
    /// name; ourselves and members not yet connected are left out).
    pub fn channel_routes(&self, name: &str) -> Result<Vec<(String, Vec<RouteView>)>> {
        let beats = self.shared.beats()?;
        let now = crate::engine::now_ms();
        self.shared.read(|tx, contacts| {
            let channel = crate::engine::find_channel(tx, name)?;
            Ok(channel
                .state
                .members
                .iter()
                .filter_map(|m| {
                    let id = contacts.id_of(&m.key())?;
                    let c = contacts.get(id)?;
                    Some((m.card.name.clone(), crate::engine::route_views(c, now, beats.get(id).copied())))
                })
                .collect())
        })
    }

    /// Adds a host between us and a contact: a fresh inbox of ours there, announced over the
    /// session (the contact is asked to add one there too). Nothing needs a new invitation.
    pub async fn add_relay(&self, name: &str, relay: &RelayAddress) -> Result<Vec<RouteView>> {
        self.shared.add_relay(name, relay).await?;
        self.deliver(None).await?;
        self.contact_routes(name)
    }

    /// Leaves a host between us and a contact: our inbox there is no longer announced (and is
    /// deleted once the contact confirms), and the contact is asked to leave it too. Works
    /// while that host is down.
    pub async fn drop_relay(&self, name: &str, relay: &RelayAddress) -> Result<Vec<RouteView>> {
        self.shared.drop_relay(name, relay)?;
        self.deliver(None).await?;
        self.contact_routes(name)
    }
}

/// A probe input as the user gives it: a number, or packages as option names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeInputSpec {
    Value(u64),
    Packages(Vec<Vec<String>>),
}

/// A gap is open while some of its numbers are still missing from its sender's tracker.
fn view(contacts: &crate::engine::Contacts, entry: Entry, direct: Option<&str>) -> EntryView {
    let still_missing = match &entry {
        Entry::Gap { first, last, source, .. } => {
            let (id, channel) = match (source, direct) {
                (Some((id, channel)), _) => (id.as_str(), *channel),
                (None, Some(id)) => (id, ChannelId::DIRECT),
                (None, None) => ("", ChannelId::DIRECT),
            };
            let missing = contacts
                .get(id)
                .and_then(|c| c.trackers.iter().find(|(ch, _)| *ch == channel).map(|(_, t)| t.missing()))
                .unwrap_or_default();
            let overlap = missing.iter().filter(|(a, b)| a <= last && b >= first);
            Some(overlap.map(|(a, b)| (*a.max(first), *b.min(last))).collect::<Vec<_>>())
        }
        _ => None,
    };
    EntryView { open: still_missing.as_ref().map(|m| !m.is_empty()), entry, still_missing, delivery: None }
}
